//! API keys: `bwk_<id>_<secret><check>`.
//!
//! - `id`: 32 lowercase hex digits (16 random bytes), public: it names the key in lists, logs
//!   and audit events, and finds its record.
//! - `secret`: 43 base64url characters (32 random bytes).
//! - `check`: 6 base62 digits of the CRC-32 (IEEE) of everything before it, so secret scanners
//!   (and our own parser) recognise a real key without a database lookup and typos are refused
//!   early. It is not a security measure: the secret is.
//!
//! Only an HMAC-SHA256 of the secret and id under a seed-derived pepper is stored: a stolen
//! database alone cannot be used to verify guesses.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::hex::to_hex as hex;
use crate::{CryptoError, MacKey, random_bytes};

/// Every key starts with this.
pub const PREFIX: &str = "bwk_";
/// The length of a key.
pub const LEN: usize = PREFIX.len() + 32 + 1 + 43 + 6;

/// Why a presented key was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Not shaped like a Bulwark key.
    #[error("not a Bulwark API key")]
    Malformed,
    /// Shaped like one, but the checksum does not match (a typo or a forgery).
    #[error("the API key's checksum does not match")]
    Checksum,
}

/// An API key in plaintext: shown once at issue, never stored. No `Debug`, `Display` or
/// `Serialize`.
pub struct ApiKey {
    id: [u8; 16],
    secret: Zeroizing<[u8; 32]>,
    text: SecretString,
}

impl ApiKey {
    /// A new random key.
    ///
    /// # Errors
    /// When the system random generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let id = random_bytes::<16>()?;
        let secret = Zeroizing::new(random_bytes::<32>()?);
        let body = Zeroizing::new(format!(
            "{PREFIX}{}_{}",
            hex(&id),
            URL_SAFE_NO_PAD.encode(*secret)
        ));
        let text = SecretString::from(format!("{}{}", *body, check(body.as_bytes())));
        Ok(Self { id, secret, text })
    }

    /// Parses a presented key, checking its shape and checksum.
    ///
    /// # Errors
    /// `Malformed` or `Checksum`.
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        if text.len() != LEN || !text.is_ascii() || !text.starts_with(PREFIX) {
            return Err(KeyFormatError::Malformed);
        }
        let (body, sum) = text.split_at(LEN - 6);
        let rest = body.get(PREFIX.len()..).ok_or(KeyFormatError::Malformed)?;
        let (id_hex, secret_b64) = match (rest.get(..32), rest.get(32..33), rest.get(33..)) {
            (Some(id), Some("_"), Some(secret)) => (id, secret),
            _ => return Err(KeyFormatError::Malformed),
        };
        let id = unhex(id_hex).ok_or(KeyFormatError::Malformed)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        match URL_SAFE_NO_PAD.decode(secret_b64) {
            Ok(bytes) if bytes.len() == 32 => secret.copy_from_slice(&bytes),
            _ => return Err(KeyFormatError::Malformed),
        }
        if !sum.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Malformed);
        }
        if check(body.as_bytes()) != sum {
            return Err(KeyFormatError::Checksum);
        }
        Ok(Self {
            id,
            secret,
            text: SecretString::from(text.to_owned()),
        })
    }

    /// The public id (16 bytes).
    #[must_use]
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// The key text, for the one response that shows it.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.text.expose_secret()
    }

    /// The stored verifier: HMAC-SHA256 under the pepper of the secret and the id.
    #[must_use]
    pub fn verifier(&self, pepper: &MacKey) -> [u8; 32] {
        let mut message = Zeroizing::new(Vec::with_capacity(48));
        message.extend_from_slice(&self.id);
        message.extend_from_slice(&*self.secret);
        pepper.tag(&message)
    }

    /// Whether this key's secret matches a stored verifier (in constant time).
    #[must_use]
    pub fn matches(&self, pepper: &MacKey, verifier: &[u8]) -> bool {
        let mut message = Zeroizing::new(Vec::with_capacity(48));
        message.extend_from_slice(&self.id);
        message.extend_from_slice(&*self.secret);
        pepper.verify(&message, verifier)
    }
}

fn unhex(text: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// CRC-32 (IEEE, reflected) of every byte value, computed at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u32;
        let mut bit = 0;
        while bit < 8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
            bit += 1;
        }
        #[expect(clippy::indexing_slicing, reason = "n < 256, checked at compile time")]
        {
            table[n] = crc;
        }
        n += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        let slot = usize::from((crc as u8) ^ byte);
        crc = (crc >> 8) ^ CRC_TABLE.get(slot).copied().unwrap_or(0);
    }
    !crc
}

/// The checksum: CRC-32 as 6 base62 digits, most significant first.
fn check(body: &[u8]) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = crc32(body);
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS.get((n % 62) as usize).copied().unwrap_or(b'0');
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::{KeyPurpose, Seed};

    fn pepper() -> MacKey {
        MacKey::derive(&Seed::generate().unwrap(), KeyPurpose::ApiKeyPepper).unwrap()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_generated_key_parses_and_verifies_against_its_verifier_only() {
        let key = ApiKey::generate().unwrap();
        assert_eq!(key.expose().len(), LEN);
        assert!(key.expose().starts_with("bwk_"));
        let back = ApiKey::parse(key.expose()).unwrap();
        assert_eq!(back.id(), key.id());
        let p = pepper();
        let stored = key.verifier(&p);
        assert!(back.matches(&p, &stored));
        let other = ApiKey::generate().unwrap();
        assert!(!other.matches(&p, &stored));
        // Another deployment's pepper does not verify it.
        let q = MacKey::derive(&Seed::generate().unwrap(), KeyPurpose::ApiKeyPepper).unwrap();
        assert!(!back.matches(&q, &stored));
    }

    #[test]
    fn malformed_and_tampered_keys_are_refused_before_any_lookup() {
        let key = ApiKey::generate().unwrap();
        let text = key.expose().to_owned();
        for bad in [
            String::new(),
            "bwk_".into(),
            text.replace("bwk_", "bwx_"),
            format!("{text}x"),
            text[..LEN - 1].to_owned(),
            text.to_uppercase(),
            format!("{}é", &text[..LEN - 2]),
        ] {
            assert_eq!(
                ApiKey::parse(&bad).err(),
                Some(KeyFormatError::Malformed),
                "{bad}"
            );
        }
        // One character of the secret changed: the checksum catches it.
        let mut chars: Vec<char> = text.chars().collect();
        let i = PREFIX.len() + 33 + 5;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(ApiKey::parse(&typo).err(), Some(KeyFormatError::Checksum));
        // A forger who recomputes the checksum gets a well-formed key that does not verify.
        let body = &typo[..LEN - 6];
        let forged = format!("{body}{}", check(body.as_bytes()));
        let p = pepper();
        let parsed = ApiKey::parse(&forged).unwrap();
        assert!(!parsed.matches(&p, &key.verifier(&p)));
    }
}
