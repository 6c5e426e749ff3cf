//! Bulwark's cryptographic primitives, all over one provider (aws-lc-rs) except password hashing
//! (argon2id from RustCrypto).
//!
//! Nothing here performs I/O: the seed is parsed from bytes the caller read, and every secret is a
//! type that zeroizes on drop and cannot be printed or serialized.

mod mac;
mod password;
mod seed;
mod sign;
mod token;

pub use mac::MacKey;
pub use password::{
    PasswordError, PasswordHashString, PasswordParams, hash_password, verify_password,
};
pub use seed::{KeyPurpose, Seed, SeedError};
pub use sign::{Ed25519Signer, verify_ed25519};
pub use token::{SecretToken, TokenHash, constant_time_eq, random_bytes, sha256};

/// Errors from the crypto provider itself (not from bad input).
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The operating system's random generator failed.
    #[error("the system random generator failed")]
    Rng,
    /// A key derivation failed.
    #[error("key derivation failed")]
    Kdf,
}
