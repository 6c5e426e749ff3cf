//! Small secrets at rest (TOTP secrets, later integration credentials): AES-256-GCM under a key
//! derived from the workspace seed, in a versioned envelope.
//!
//! Envelope v1: `0x01 ‖ nonce (12 random bytes) ‖ ciphertext ‖ tag (16 bytes)`. The caller's
//! associated data binds a ciphertext to its row (e.g. the user id), so a ciphertext copied into
//! another row does not open. Random 96-bit nonces are safe far beyond the number of secrets
//! one deployment seals under one key (NIST SP 800-38D §8.3: 2^32 messages).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::{Zeroize as _, Zeroizing};

use crate::{CryptoError, KeyPurpose, Seed, random_bytes};

/// The envelope format this module writes. INVARIANT: a released version's layout never changes.
const VERSION: u8 = 0x01;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Why a sealed value did not open. Each means the stored bytes cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than a version byte, a nonce and a tag.
    #[error("the sealed value is truncated")]
    Truncated,
    /// The first byte names no envelope format this version knows.
    #[error("the sealed value has unknown format version `{0}`")]
    UnknownVersion(u8),
    /// Authentication failed: another key, other associated data, or altered bytes.
    #[error("the sealed value does not authenticate")]
    Rejected,
}

/// An AES-256-GCM key for one purpose. No `Debug`; the key never leaves the provider.
pub struct SecretBox(LessSafeKey);

impl SecretBox {
    /// The key for `purpose` derived from `seed`. Use a purpose meant for encryption (such as
    /// [`KeyPurpose::TotpSecrets`]), never one whose key already serves a MAC or a signature.
    ///
    /// # Errors
    /// When `purpose` is not an encryption purpose, or the HKDF provider fails.
    pub fn derive(seed: &Seed, purpose: KeyPurpose) -> Result<Self, CryptoError> {
        if !purpose.is_for_encryption() {
            return Err(CryptoError::Kdf);
        }
        Self::from_key(&seed.derive(purpose, b"")?)
    }

    fn from_key(key: &Zeroizing<[u8; 32]>) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| CryptoError::Kdf)?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// Encrypts `plaintext` bound to `aad` under a fresh random nonce.
    ///
    /// # Errors
    /// When the system random generator fails, or the plaintext is too long for AES-GCM.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_with_nonce(random_bytes::<NONCE_LEN>()?, plaintext, aad)
    }

    /// [`Self::seal`] with the nonce given: only `seal` and the known-answer tests call it.
    fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let Some(body) = out.get_mut(HEADER_LEN..) else {
            out.zeroize();
            return Err(CryptoError::Aead);
        };
        let sealed = self.0.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            body,
        );
        let Ok(tag) = sealed else {
            out.zeroize();
            return Err(CryptoError::Aead);
        };
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts a value made by [`Self::seal`] with the same `aad`.
    ///
    /// # Errors
    /// When `sealed` is truncated, has an unknown version, or does not authenticate under this
    /// key and `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (&version, rest) = sealed.split_first().ok_or(OpenError::Truncated)?;
        if version != VERSION {
            return Err(OpenError::UnknownVersion(version));
        }
        let (nonce, body) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(OpenError::Truncated)?;
        if body.len() < TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let mut buffer = Zeroizing::new(body.to_vec());
        let plaintext_len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                buffer.as_mut_slice(),
            )
            .map_err(|_| OpenError::Rejected)?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn totp_box(seed: &Seed) -> SecretBox {
        SecretBox::derive(seed, KeyPurpose::TotpSecrets).unwrap()
    }

    #[test]
    fn aes_256_gcm_matches_the_gcm_spec_vectors_through_the_envelope() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/aes256gcm.json")).unwrap();
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        for c in cases {
            let field = |name: &str| hex(c[name].as_str().unwrap());
            let key: [u8; 32] = field("key").try_into().unwrap();
            let nonce: [u8; NONCE_LEN] = field("nonce").try_into().unwrap();
            let (plaintext, aad) = (field("plaintext"), field("aad"));
            let sb = SecretBox::from_key(&Zeroizing::new(key)).unwrap();
            let sealed = sb.seal_with_nonce(nonce, &plaintext, &aad).unwrap();
            let mut expected = vec![VERSION];
            expected.extend(nonce);
            expected.extend(field("ciphertext"));
            expected.extend(field("tag"));
            assert_eq!(sealed, expected, "{}", c["case"]);
            assert_eq!(sb.open(&sealed, &aad).unwrap().as_slice(), plaintext);
        }
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_aad_only() {
        let seed = Seed::generate().unwrap();
        let sb = totp_box(&seed);
        let sealed = sb.seal(b"totp secret", b"usr_alice").unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + 11 + TAG_LEN);
        assert_eq!(sealed[0], VERSION);
        assert_eq!(
            sb.open(&sealed, b"usr_alice").unwrap().as_slice(),
            b"totp secret"
        );
        let again = sb.seal(b"totp secret", b"usr_alice").unwrap();
        assert_ne!(sealed, again, "nonces are fresh");
        assert_eq!(sb.open(&sealed, b"usr_bob"), Err(OpenError::Rejected));
        assert_eq!(sb.open(&sealed, b""), Err(OpenError::Rejected));
        let other_seed = totp_box(&Seed::generate().unwrap());
        assert_eq!(
            other_seed.open(&sealed, b"usr_alice"),
            Err(OpenError::Rejected)
        );
        for not_for_encryption in [KeyPurpose::Cursor, KeyPurpose::Csrf, KeyPurpose::VaultKek] {
            assert!(SecretBox::derive(&seed, not_for_encryption).is_err());
        }
    }

    #[test]
    fn ciphertexts_swapped_between_users_do_not_open() {
        let sb = totp_box(&Seed::generate().unwrap());
        let alice = sb.seal(b"alice's secret", b"usr_alice").unwrap();
        let bob = sb.seal(b"bob's secret", b"usr_bob").unwrap();
        assert_eq!(sb.open(&alice, b"usr_bob"), Err(OpenError::Rejected));
        assert_eq!(sb.open(&bob, b"usr_alice"), Err(OpenError::Rejected));
    }

    #[test]
    fn every_flipped_bit_after_the_version_is_rejected() {
        let sb = totp_box(&Seed::generate().unwrap());
        let sealed = sb.seal(b"0123456789", b"usr_alice").unwrap();
        for byte in 1..sealed.len() {
            for bit in 0..8 {
                let mut forged = sealed.clone();
                forged[byte] ^= 1 << bit;
                assert_eq!(
                    sb.open(&forged, b"usr_alice"),
                    Err(OpenError::Rejected),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn truncated_empty_and_unknown_version_inputs_are_refused() {
        let sb = totp_box(&Seed::generate().unwrap());
        let sealed = sb.seal(b"", b"usr_alice").unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + TAG_LEN);
        assert!(sb.open(&sealed, b"usr_alice").unwrap().is_empty());
        assert_eq!(sb.open(&[], b"usr_alice"), Err(OpenError::Truncated));
        for len in 1..sealed.len() {
            assert_eq!(
                sb.open(&sealed[..len], b"usr_alice"),
                Err(OpenError::Truncated),
                "{len}"
            );
        }
        let long = sb.seal(b"a longer secret", b"usr_alice").unwrap();
        assert_eq!(
            sb.open(&long[..long.len() - 1], b"usr_alice"),
            Err(OpenError::Rejected)
        );
        for version in [0x00, 0x02, 0xff] {
            let mut other = sealed.clone();
            other[0] = version;
            assert_eq!(
                sb.open(&other, b"usr_alice"),
                Err(OpenError::UnknownVersion(version))
            );
        }
    }
}
