//! Bulwark's cryptographic primitives, all over one provider (aws-lc-rs) except password hashing
//! (argon2id from RustCrypto).
//!
//! Beside the seed and its HKDF hierarchy: HMAC keys, Ed25519, bearer tokens, password hashes,
//! `SecretBox` (AES-256-GCM envelopes for small secrets at rest) and RFC 6238 TOTP with its
//! enrolment URI and QR code (drawn by the `qrcode` crate).
//!
//! Nothing here performs I/O: the seed is parsed from bytes the caller read, and every secret is a
//! type that zeroizes on drop and cannot be printed or serialized.

mod aead;
mod apikey;
mod base32;
mod hex;
mod mac;
mod password;
mod primitive;
pub mod recovery;
mod seed;
mod selftest;
mod sign;
mod token;
mod totp;
pub mod vault;
pub mod webhook;
pub mod xml;

pub use aead::{OpenError, SecretBox};
pub use apikey::{ApiKey, KeyFormatError};
pub use hex::to_hex;
pub use mac::MacKey;
pub use password::{
    PasswordError, PasswordHashString, PasswordParams, hash_password, verify_password,
};
pub use primitive::{
    Aes256Gcm, GCM_NONCE_LEN, GCM_TAG_LEN, hkdf_sha256, hmac_sha256, hmac_sha256_verify,
};
pub use seed::{KeyPurpose, Seed, SeedError};
pub use selftest::{SelfTestFailure, SelfTestReport, self_test};
pub use sign::{Ed25519Signer, Es256Signer, verify_ed25519};
pub use token::{SecretToken, Sha256, TokenHash, constant_time_eq, random_bytes, sha256};
pub use totp::{
    DEFAULT_TOTP_SKEW, TotpAlgorithm, TotpError, TotpParams, TotpSecret, otpauth_uri, qr_svg,
    totp_code_at, totp_step, verify_totp,
};

/// Whether the provider runs as AWS-LC's FIPS 140-3 validated module (built with the `fips`
/// feature and its power-on self-tests passed).
#[must_use]
pub fn fips_mode() -> bool {
    aws_lc_rs::try_fips_mode().is_ok()
}

/// Errors from the crypto provider itself (not from bad input).
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The operating system's random generator failed.
    #[error("the system random generator failed")]
    Rng,
    /// A key derivation failed.
    #[error("key derivation failed")]
    Kdf,
    /// Authenticated encryption failed (the plaintext is too long for AES-GCM).
    #[error("authenticated encryption failed")]
    Aead,
}
