//! The 32-byte workspace seed: the root of every key Bulwark derives.
//!
//! On disk it is one line, `bulwark-seed-v1:<64 lowercase hex>`, so a truncated or hand-edited
//! file is recognised as corrupt rather than silently used. Keys are derived with HKDF-SHA256
//! under fixed, documented labels (`docs/keys.md`).

use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use zeroize::{Zeroize, Zeroizing};

use crate::{CryptoError, random_bytes};

const FILE_PREFIX: &str = "bulwark-seed-v1:";
/// HKDF salt: fixed and public, it domain-separates Bulwark from any other use of the seed.
const HKDF_SALT: &[u8] = b"bulwark/v1/hkdf-salt";

/// Why a seed file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// The file does not start with the expected format marker.
    #[error("the seed file is not in the `bulwark-seed-v1` format")]
    Format,
    /// The hex part is not exactly 64 lowercase hex digits.
    #[error("the seed file does not hold exactly 32 bytes of hex")]
    Length,
}

/// What a derived key is for. Each purpose has its own fixed HKDF label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// A key-check value stored with the database so a different seed is recognised at start.
    SeedCheck,
    /// The Ed25519 key that signs audit-log checkpoints.
    AuditSigning,
    /// The HMAC key of CSRF tokens (bound to a session).
    Csrf,
    /// The HMAC key of opaque pagination cursors.
    Cursor,
    /// The AES-256-GCM key that seals users' TOTP secrets at rest (`SecretBox`).
    TotpSecrets,
    /// The HMAC pepper of stored API-key verifiers.
    ApiKeyPepper,
    /// The root of the vault's key-encryption keys: one KEK per org and key version is expanded
    /// under this label with `org ‖ ":" ‖ version` as context (`SeedWrapper`).
    VaultKek,
    /// The deployment's Ed25519 key: its public key's fingerprint is the deployment id licenses
    /// are issued to, and it signs license activation receipts.
    LicenseDeployment,
    /// The AES-256-GCM key that seals the browser-bound state of a single sign-on in flight
    /// (its `state`, `nonce` and PKCE verifier, in a short-lived cookie).
    SsoFlow,
    /// The HMAC key of a support bundle's pseudonyms (an email or an address becomes the same
    /// `eml_…` or `ip_…` in every bundle of the deployment; only the seed's holder can tell whom).
    SupportPseudonym,
}

impl KeyPurpose {
    /// The HKDF `info` label. INVARIANT: labels never change once released.
    #[must_use]
    pub const fn label(self) -> &'static [u8] {
        match self {
            Self::SeedCheck => b"bulwark/v1/seed-check",
            Self::AuditSigning => b"bulwark/v1/audit-signing",
            Self::Csrf => b"bulwark/v1/csrf",
            Self::Cursor => b"bulwark/v1/cursor",
            Self::TotpSecrets => b"bulwark/v1/totp-secrets",
            Self::ApiKeyPepper => b"bulwark/v1/api-key-pepper",
            Self::VaultKek => b"bulwark/v1/vault-kek",
            Self::LicenseDeployment => b"bulwark/v1/license-deployment",
            Self::SsoFlow => b"bulwark/v1/sso-flow",
            Self::SupportPseudonym => b"bulwark/v1/support-pseudonym",
        }
    }

    /// Whether the purpose's key is an encryption key (`SecretBox`), not a MAC, signing or
    /// check key: one key never serves two algorithms.
    #[must_use]
    pub const fn is_for_encryption(self) -> bool {
        matches!(self, Self::TotpSecrets | Self::SsoFlow)
    }
}

/// The workspace seed. Zeroized on drop; no `Debug`, `Display` or `Serialize`.
pub struct Seed(Zeroizing<[u8; 32]>);

struct Len32;
impl KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl Seed {
    /// A fresh seed from the OS CSPRNG.
    ///
    /// # Errors
    /// When the system random generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Zeroizing::new(random_bytes::<32>()?)))
    }

    /// Parses the seed file's content.
    ///
    /// # Errors
    /// When the content is not exactly one `bulwark-seed-v1:` line of 64 lowercase hex digits.
    pub fn parse_file(content: &[u8]) -> Result<Self, SeedError> {
        let text = std::str::from_utf8(content).map_err(|_| SeedError::Format)?;
        let hex = text
            .strip_suffix('\n')
            .unwrap_or(text)
            .strip_prefix(FILE_PREFIX)
            .ok_or(SeedError::Format)?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(SeedError::Length);
        }
        let mut out = Zeroizing::new([0u8; 32]);
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(i * 2..i * 2 + 2).ok_or(SeedError::Length)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| SeedError::Length)?;
        }
        Ok(Self(out))
    }

    /// The seed file's content. The caller writes it to a 0600 file and drops the buffer.
    #[must_use]
    pub fn to_file_content(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(FILE_PREFIX.len() + 65));
        s.push_str(FILE_PREFIX);
        for b in self.0.iter() {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
        s
    }

    /// Derives a 32-byte key for `purpose`, optionally bound to a context (e.g. an org id).
    ///
    /// # Errors
    /// When the HKDF provider fails (never with these fixed lengths).
    pub fn derive(
        &self,
        purpose: KeyPurpose,
        context: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let prk = self.prk();
        let info = [purpose.label(), context];
        let okm = prk.expand(&info, Len32).map_err(|_| CryptoError::Kdf)?;
        let mut out = Zeroizing::new([0u8; 32]);
        okm.fill(out.as_mut()).map_err(|_| CryptoError::Kdf)?;
        Ok(out)
    }

    /// The raw 32 bytes, for the recovery kit only.
    pub(crate) fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A seed from raw bytes, for the recovery kit only.
    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// The HKDF pseudorandom key every derivation expands from.
    pub(crate) fn prk(&self) -> Prk {
        Salt::new(HKDF_SALT_ALG, HKDF_SALT).extract(self.0.as_ref())
    }

    /// A public fingerprint of the seed, stored beside the data it protects so that starting
    /// with another seed is refused instead of orphaning encrypted records.
    ///
    /// # Errors
    /// When the HKDF provider fails.
    pub fn check_value(&self) -> Result<[u8; 32], CryptoError> {
        let key = self.derive(KeyPurpose::SeedCheck, b"")?;
        Ok(crate::sha256(key.as_ref()))
    }
}

const HKDF_SALT_ALG: aws_lc_rs::hkdf::Algorithm = HKDF_SHA256;

impl Drop for Seed {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_round_trips_through_its_file_format() {
        let seed = Seed::generate().unwrap();
        let content = seed.to_file_content();
        let back = Seed::parse_file(content.as_bytes()).unwrap();
        assert_eq!(seed.check_value().unwrap(), back.check_value().unwrap());
    }

    #[test]
    fn corrupt_seed_files_are_refused() {
        let good = Seed::generate().unwrap().to_file_content();
        let truncated = &good.as_bytes()[..good.len() - 3];
        assert_eq!(Seed::parse_file(truncated).err(), Some(SeedError::Length));
        assert_eq!(Seed::parse_file(b"").err(), Some(SeedError::Format));
        assert_eq!(
            Seed::parse_file(&[0xff, 0xfe]).err(),
            Some(SeedError::Format)
        );
        let upper = good.to_uppercase().replace("BULWARK-SEED-V1:", FILE_PREFIX);
        assert_eq!(
            Seed::parse_file(upper.as_bytes()).err(),
            Some(SeedError::Length)
        );
    }

    #[test]
    fn different_seeds_have_different_check_values() {
        let a = Seed::generate().unwrap();
        let b = Seed::generate().unwrap();
        assert_ne!(a.check_value().unwrap(), b.check_value().unwrap());
    }

    #[test]
    fn derivation_is_bound_to_purpose_context() {
        let s = Seed::generate().unwrap();
        let a = s.derive(KeyPurpose::SeedCheck, b"org_a").unwrap();
        let b = s.derive(KeyPurpose::SeedCheck, b"org_b").unwrap();
        assert_ne!(a.as_ref(), b.as_ref());
    }
}
