//! The pure core of Bulwark's tamper-evident audit log: no I/O, no async, no database, so it can
//! be audited, fuzzed and embedded in the offline verifier alone.
//!
//! # Hashing (RFC 9162 §2.1)
//! - leaf hash: `SHA-256(0x00 ‖ data)`, where `data` is an event's canonical bytes;
//! - interior node: `SHA-256(0x01 ‖ left ‖ right)`;
//! - the Merkle Tree Hash of `n > 1` leaves splits at `k`, the largest power of two below `n`:
//!   `MTH(D[0:n]) = node(MTH(D[0:k]), MTH(D[k:n]))`; of one leaf it is its leaf hash; of none it is
//!   `SHA-256("")`.
//!
//! Inclusion proofs (`PATH`) and consistency proofs (`PROOF`) are generated and verified exactly
//! as RFC 9162 §2.1.3 and §2.1.4 describe, so any RFC 9162 / RFC 6962 verifier (Certificate
//! Transparency, transparency-dev) accepts ours, and ours is checked against their test vectors.

pub mod checkpoint;
pub mod event;
pub mod export;
pub mod merkle;

pub use checkpoint::{Checkpoint, CheckpointError, NoteSigner, NoteVerifier};
pub use merkle::{CompactRange, Hash, ProofError};
