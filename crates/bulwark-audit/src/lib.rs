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
//! Proofs are lists of 32-byte hashes, bottom up. Two deliberate refusals: a consistency proof
//! from the empty tree (size 0) is refused, as is any proof of a different length than the sizes
//! imply. A proof binds a leaf to a *root*; what binds a root to its size is the signed
//! checkpoint, so a verifier takes both size and root from one.
//!
//! # Checkpoints (C2SP `tlog-checkpoint` in a C2SP `signed-note`)
//! The checkpoint text is, every line ending in `\n` (U+000A):
//! ```text
//! <origin>
//! <tree size: ASCII decimal, no sign, no leading zero>
//! <root hash: standard base64 with padding, exactly 32 bytes>
//! time <unix seconds: ASCII decimal, no sign, no leading zero>
//! ```
//! `time` is Bulwark's one extension line; a verifier of the plain C2SP format ignores it, ours
//! requires exactly one and ignores any other extension line. The signed note is that text, one
//! empty line, then one or more (at most [`checkpoint::MAX_SIGNATURES`]) signature lines
//! `— <key name> <base64(key id ‖ signature)>\n`, where `—` is U+2014 EM DASH followed by one
//! space, the key id is the first 4 bytes of `SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte Ed25519
//! public key)` and the signature is the 64-byte Ed25519 (RFC 8032, pure) signature of the text
//! bytes, final newline included. A note is at most [`checkpoint::MAX_NOTE_BYTES`] bytes of UTF-8
//! with no control character but newline. A verifier skips signature lines by other keys and
//! refuses the note when no line is by its key or a line naming its key and key id does not
//! verify. The verifier key is written `<key name>+<key id, 8 lowercase hex>+<base64(0x01 ‖
//! public key)>`; key names are non-empty with no whitespace and no `+`. The encoding reproduces
//! the published Go `sumdb/note` example byte for byte.

pub mod checkpoint;
pub mod cloudevents;
pub mod erasure;
pub mod event;
pub mod export;
pub mod merkle;
pub mod published;
pub mod retention;

pub use checkpoint::{Checkpoint, CheckpointError, NoteSigner, NoteVerifier};
pub use merkle::{CompactRange, Hash, ProofError};
pub use merkle::{leaf_hash, root, verify_log};
