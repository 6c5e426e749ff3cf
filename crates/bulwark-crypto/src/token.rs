//! Random secrets shown to a user once, and the hashes we keep of them.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use crate::CryptoError;

/// Fills a fresh array from the OS CSPRNG.
///
/// # Errors
/// When the system random generator fails.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Rng)?;
    Ok(out)
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-256 over data given in pieces: a backup hashes each table as it streams.
pub struct Sha256(digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256 {
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything added.
    #[must_use]
    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// Compares two byte strings in time independent of where they differ.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A bearer secret (setup token, later session tokens): 256 random bits, rendered as
/// `<prefix>_<base64url>`. It can be shown once and hashed; it cannot be logged or serialized.
pub struct SecretToken(SecretString);

impl SecretToken {
    /// A new random token with a human-recognisable prefix (e.g. `bwsetup`).
    ///
    /// # Errors
    /// When the system random generator fails.
    pub fn generate(prefix: &str) -> Result<Self, CryptoError> {
        let bytes = random_bytes::<32>()?;
        let text = format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes));
        Ok(Self(SecretString::from(text)))
    }

    /// Wraps a token a caller presented.
    #[must_use]
    pub fn from_presented(text: &str) -> Self {
        Self(SecretString::from(text.to_owned()))
    }

    /// The token text, for the one place it must be shown.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The hash we store instead of the token.
    #[must_use]
    pub fn hash(&self) -> TokenHash {
        TokenHash(sha256(self.0.expose_secret().as_bytes()))
    }
}

/// The SHA-256 of a high-entropy token: safe to store, compared in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wraps stored bytes; `None` if they are not 32 bytes long.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The bytes to store.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `presented` hashes to this value, compared in constant time.
    #[must_use]
    pub fn matches(&self, presented: &SecretToken) -> bool {
        constant_time_eq(&self.0, presented.hash().as_bytes())
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_verify_only_themselves() {
        let a = SecretToken::generate("bwsetup").unwrap();
        let b = SecretToken::generate("bwsetup").unwrap();
        assert!(a.expose().starts_with("bwsetup_"));
        assert_eq!(a.expose().len(), "bwsetup_".len() + 43);
        assert_ne!(a.expose(), b.expose());
        let stored = a.hash();
        assert!(stored.matches(&SecretToken::from_presented(a.expose())));
        assert!(!stored.matches(&b));
        assert!(!stored.matches(&SecretToken::from_presented("")));
    }

    #[test]
    fn sha256_matches_the_fips_180_example() {
        let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha256_in_pieces_equals_sha256_at_once() {
        let mut h = Sha256::default();
        h.update(b"a");
        h.update(b"");
        h.update(b"bc");
        assert_eq!(h.finish(), sha256(b"abc"));
    }

    #[test]
    fn constant_time_eq_handles_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
