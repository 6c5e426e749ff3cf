//! HMAC-SHA-256 under a key derived from the workspace seed: tags that only this deployment can
//! make, for values handed to clients and checked when they come back (CSRF tokens, cursors).

use aws_lc_rs::hmac;

use crate::{CryptoError, KeyPurpose, Seed};

/// An HMAC-SHA-256 key for one purpose. No `Debug`; the key never leaves the provider.
pub struct MacKey(hmac::Key);

impl MacKey {
    /// The key for `purpose` derived from `seed`.
    ///
    /// # Errors
    /// When the HKDF provider fails.
    pub fn derive(seed: &Seed, purpose: KeyPurpose) -> Result<Self, CryptoError> {
        let raw = seed.derive(purpose, b"")?;
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, raw.as_ref())))
    }

    /// The tag of `message`.
    #[must_use]
    pub fn tag(&self, message: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.0, message).as_ref());
        out
    }

    /// Whether `tag` is the tag of `message` (constant time).
    #[must_use]
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.0, message, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_only_their_message_and_differ_by_purpose() {
        let seed = Seed::generate().unwrap();
        let csrf = MacKey::derive(&seed, KeyPurpose::Csrf).unwrap();
        let cursor = MacKey::derive(&seed, KeyPurpose::Cursor).unwrap();
        let t = csrf.tag(b"ses_1");
        assert!(csrf.verify(b"ses_1", &t));
        assert!(!csrf.verify(b"ses_2", &t));
        assert!(!csrf.verify(b"ses_1", &t[..31]));
        assert!(!cursor.verify(b"ses_1", &t));
        let other = MacKey::derive(&Seed::generate().unwrap(), KeyPurpose::Csrf).unwrap();
        assert!(!other.verify(b"ses_1", &t));
    }
}
