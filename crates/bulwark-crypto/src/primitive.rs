//! The raw algorithms every other module builds on, as thin wrappers over aws-lc-rs: AES-256-GCM
//! with a 96-bit nonce, HKDF-SHA-256 and HMAC-SHA-256 with caller-given keys.
//!
//! They exist so that the start-up self-test and the Wycheproof suite exercise exactly the code
//! paths the envelopes use, not a parallel call into the provider.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use aws_lc_rs::hmac;
use zeroize::{Zeroize as _, Zeroizing};

use crate::CryptoError;

/// Length of an AES-GCM nonce (96 bits).
pub const GCM_NONCE_LEN: usize = NONCE_LEN;
/// Length of an AES-GCM tag (128 bits; shorter tags are never accepted).
pub const GCM_TAG_LEN: usize = 16;

/// An AES-256-GCM key. No `Debug`; the key schedule lives in the provider.
pub struct Aes256Gcm(LessSafeKey);

impl Aes256Gcm {
    /// The key made of these 32 bytes.
    ///
    /// # Errors
    /// When the provider refuses the key (never for 32 bytes).
    pub fn new(key: &[u8; 32]) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Aead)?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// Appends `ciphertext ‖ tag` of `plaintext` to `out`.
    ///
    /// The nonce must never repeat under one key: callers pass a fresh random nonce.
    ///
    /// # Errors
    /// When the plaintext is too long for AES-GCM; `out` is then left as it was.
    pub fn seal_into(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let start = out.len();
        out.extend_from_slice(plaintext);
        let Some(body) = out.get_mut(start..) else {
            return Err(CryptoError::Aead);
        };
        let sealed = self.0.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            body,
        );
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Ok(())
            }
            Err(_) => {
                if let Some(body) = out.get_mut(start..) {
                    body.zeroize();
                }
                out.truncate(start);
                Err(CryptoError::Aead)
            }
        }
    }

    /// `ciphertext ‖ tag` of `plaintext`.
    ///
    /// # Errors
    /// When the plaintext is too long for AES-GCM.
    pub fn seal(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plaintext.len() + GCM_TAG_LEN);
        self.seal_into(nonce, aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// The plaintext of `ciphertext ‖ tag`, or `None` when it does not authenticate (another
    /// key, nonce or associated data, altered bytes, or shorter than a tag).
    #[must_use]
    pub fn open(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < GCM_TAG_LEN {
            return None;
        }
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                buffer.as_mut_slice(),
            )
            .ok()?
            .len();
        buffer.truncate(len);
        Some(buffer)
    }
}

struct Len(usize);
impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA-256 (RFC 5869): fills `out` (at most 255 × 32 bytes) from `ikm`, `salt` and `info`.
///
/// # Errors
/// When `out` is empty or longer than HKDF-SHA-256 can produce.
pub fn hkdf_sha256(
    salt: &[u8],
    ikm: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    if out.is_empty() {
        return Err(CryptoError::Kdf);
    }
    let prk = Salt::new(HKDF_SHA256, salt).extract(ikm);
    let okm = prk
        .expand(info, Len(out.len()))
        .map_err(|_| CryptoError::Kdf)?;
    okm.fill(out).map_err(|_| CryptoError::Kdf)
}

/// HMAC-SHA-256 of `message` under a caller-given `key` (any length, RFC 2104).
#[must_use]
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&key, message).as_ref());
    out
}

/// Whether `tag` is the full 32-byte HMAC-SHA-256 of `message` under `key` (constant time).
/// Truncated tags are refused.
#[must_use]
pub fn hmac_sha256_verify(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, message, tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcm_refuses_tampering_and_short_input() {
        let key = Aes256Gcm::new(&[7; 32]).unwrap();
        let nonce = [1; GCM_NONCE_LEN];
        let sealed = key.seal(&nonce, b"aad", b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + GCM_TAG_LEN);
        assert_eq!(
            key.open(&nonce, b"aad", &sealed).unwrap().as_slice(),
            b"hello"
        );
        assert!(key.open(&nonce, b"aae", &sealed).is_none());
        assert!(key.open(&[2; GCM_NONCE_LEN], b"aad", &sealed).is_none());
        assert!(
            key.open(&nonce, b"aad", &sealed[..GCM_TAG_LEN - 1])
                .is_none()
        );
        let mut forged = sealed.clone();
        forged[0] ^= 1;
        assert!(key.open(&nonce, b"aad", &forged).is_none());
    }

    #[test]
    fn hkdf_refuses_impossible_lengths() {
        let mut empty = [];
        assert!(hkdf_sha256(b"s", b"k", &[b"i"], &mut empty).is_err());
        let mut too_long = vec![0u8; 255 * 32 + 1];
        assert!(hkdf_sha256(b"s", b"k", &[b"i"], &mut too_long).is_err());
        let mut max = vec![0u8; 255 * 32];
        assert!(hkdf_sha256(b"s", b"k", &[b"i"], &mut max).is_ok());
    }

    #[test]
    fn truncated_hmac_tags_are_refused() {
        let tag = hmac_sha256(b"key", b"msg");
        assert!(hmac_sha256_verify(b"key", b"msg", &tag));
        assert!(!hmac_sha256_verify(b"key", b"msg", &tag[..16]));
        assert!(!hmac_sha256_verify(b"key", b"msh", &tag));
    }
}
