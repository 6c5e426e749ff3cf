//! Envelope encryption of stored credentials.
//!
//! Each value is sealed with its own random 256-bit data key (AES-256-GCM, random 96-bit nonce);
//! the data key is wrapped by a key-encryption key (KEK) of a numbered *key version*, held by a
//! [`KeyWrapper`]: derived from the workspace seed ([`SeedWrapper`], the default) or kept on an
//! HSM. The associated data of both the value and the wrapped key binds them to the org, the
//! record, the field and the key version, so a ciphertext moved to another record, org, field or
//! version does not open; the value's associated data also binds the record's *attributes* (for a
//! credential: its kind and destinations), so a value whose attributes were edited does not open.
//!
//! Value envelope v2: `0x02 ‖ nonce (12) ‖ ciphertext ‖ tag (16)`; the format byte is part of the
//! associated data. Envelope v1 (same layout, `0x01`) did not bind the attributes: [`open`]
//! refuses it ([`VaultError::Legacy`]) and only [`open_legacy`] reads it, for the one-time move
//! to v2. Rotation ([`rewrap`]) re-seals the value under a fresh data key with a fresh nonce and
//! the new version's associated data, and wraps the data key under the new KEK.

use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk};
use zeroize::Zeroizing;

use crate::primitive::{Aes256Gcm, GCM_NONCE_LEN, GCM_TAG_LEN};
use crate::{CryptoError, KeyPurpose, Seed, random_bytes};

/// The largest plaintext the vault seals (64 KiB): credentials are tokens, passwords and keys,
/// not files.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The value envelope this module writes. INVARIANT: a released format's layout never changes.
const VALUE_FORMAT: u8 = 0x02;
/// The envelope before the attributes were bound; read by [`open_legacy`] only.
const LEGACY_VALUE_FORMAT: u8 = 0x01;
/// The seed wrapper's wrapped-key format.
const SEED_WRAP_FORMAT: u8 = 0x01;
const HEADER_LEN: usize = 1 + GCM_NONCE_LEN;
/// Domain labels of the two kinds of associated data.
const VALUE_AAD_LABEL: &[u8] = b"bulwark/v1/vault/value";
const KEY_AAD_LABEL: &[u8] = b"bulwark/v1/vault/data-key";
/// Domain label of an org key's data-key masks.
const ORG_MASK_LABEL: &[u8] = b"bulwark/v1/vault/org-mask";

/// A 256-bit data key. Zeroized on drop; no `Debug`, `Clone` or `Serialize`.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random data key.
    ///
    /// # Errors
    /// When the system random generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Zeroizing::new(random_bytes::<32>()?)))
    }

    /// The key's bytes, for a [`KeyWrapper`] to wrap.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A data key from bytes a [`KeyWrapper`] unwrapped.
    #[must_use]
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }
}

/// Where a sealed value belongs: bound into its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The owning org's id (its public text form).
    pub org: &'a str,
    /// The record's id (its public text form).
    pub record: &'a str,
    /// The field of the record, e.g. `value`.
    pub field: &'a str,
    /// The record's attributes the value may only be used with, in a canonical encoding the
    /// caller chooses (a credential's kind and destinations): bound into the value's associated
    /// data from envelope v2 on, not into the wrapped key's.
    pub attributes: &'a [u8],
}

impl Binding<'_> {
    /// The associated data for `label` and `key_version`: the label, then each part prefixed by
    /// its length (so no two bindings encode alike), then the version and the format byte.
    /// Value envelope v2 adds the attributes (length-prefixed) after the field.
    fn aad(&self, label: &[u8], key_version: u32, format: u8) -> Vec<u8> {
        let with_attributes = label == VALUE_AAD_LABEL && format == VALUE_FORMAT;
        let mut out = Vec::with_capacity(
            label.len()
                + 16
                + self.org.len()
                + self.record.len()
                + self.field.len()
                + self.attributes.len()
                + 5,
        );
        out.extend_from_slice(label);
        let attributes: &[u8] = if with_attributes {
            self.attributes
        } else {
            &[]
        };
        let parts: [&[u8]; 4] = [
            self.org.as_bytes(),
            self.record.as_bytes(),
            self.field.as_bytes(),
            attributes,
        ];
        let count = if with_attributes { 4 } else { 3 };
        for part in parts.iter().take(count) {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&key_version.to_be_bytes());
        out.push(format);
        out
    }

    /// The associated data a [`KeyWrapper`] binds a wrapped data key to (without the
    /// attributes: the value's own associated data carries them).
    #[must_use]
    pub fn key_aad(&self, key_version: u32) -> Vec<u8> {
        self.aad(KEY_AAD_LABEL, key_version, SEED_WRAP_FORMAT)
    }
}

/// Why a wrapper could not wrap or unwrap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// The wrapped key does not authenticate under this version's KEK and binding.
    #[error("the wrapped data key does not authenticate")]
    Rejected,
    /// The wrapper holds no KEK for this version (never created, or destroyed).
    #[error("key version {0} is not available in the key provider")]
    NoKey(u32),
    /// The provider failed (an HSM error, the random generator); the text names no secret.
    #[error("the key provider failed: {0}")]
    Provider(String),
}

/// Holds the key-encryption keys, one per key version; wraps and unwraps data keys.
///
/// Implementations: [`SeedWrapper`] (KEKs derived from the workspace seed) and the PKCS#11
/// adapter in the server (KEKs generated on and never leaving a token). A cloud KMS adapter
/// implements the same four calls over its API (`docs/keys.md`).
pub trait KeyWrapper: Send + Sync {
    /// A short public name, e.g. `seed` or `pkcs11`.
    fn provider(&self) -> &'static str;
    /// Makes `version` usable: nothing for the seed (KEKs are derived), a new key on an HSM.
    ///
    /// # Errors
    /// When the provider cannot create the key.
    fn create_version(&self, version: u32) -> Result<(), WrapError>;
    /// Whether the provider holds `version`'s KEK (always, for derived keys).
    ///
    /// # Errors
    /// When the provider fails.
    fn holds_version(&self, version: u32) -> Result<bool, WrapError>;
    /// Destroys `version`'s KEK where the provider can (an HSM); the seed provider cannot
    /// forget a derivation, so retirement there is a refusal recorded by the caller.
    ///
    /// # Errors
    /// When the provider fails.
    fn destroy_version(&self, version: u32) -> Result<(), WrapError>;
    /// Wraps `key` under `version`'s KEK, bound to `binding`.
    ///
    /// # Errors
    /// When the version has no KEK or the provider fails.
    fn wrap(
        &self,
        binding: &Binding<'_>,
        version: u32,
        key: &DataKey,
    ) -> Result<Vec<u8>, WrapError>;
    /// Unwraps a key made by [`Self::wrap`] with the same binding and version.
    ///
    /// # Errors
    /// [`WrapError::Rejected`] when it does not authenticate; otherwise as `wrap`.
    fn unwrap(
        &self,
        binding: &Binding<'_>,
        version: u32,
        wrapped: &[u8],
    ) -> Result<DataKey, WrapError>;
}

/// KEKs derived from the workspace seed, one per org and key version:
/// `root = HKDF(seed, "bulwark/v1/vault-kek")`, `KEK = HKDF-Expand(root, org ‖ ":" ‖ version)`.
/// Only the vault's root is kept, not the seed (which also derives the CSRF, audit-signing and
/// other keys). A wrapped key is `0x01 ‖ nonce ‖ AES-256-GCM(KEK, data key) ‖ tag` with the
/// binding as associated data.
pub struct SeedWrapper(Prk);

impl SeedWrapper {
    /// The wrapper over `seed`'s vault key hierarchy.
    ///
    /// # Errors
    /// When the HKDF provider fails.
    pub fn new(seed: &Seed) -> Result<Self, CryptoError> {
        let root = seed.derive(KeyPurpose::VaultKek, b"")?;
        Ok(Self(Prk::new_less_safe(HKDF_SHA256, root.as_ref())))
    }

    fn kek(&self, org: &str, version: u32) -> Result<Aes256Gcm, WrapError> {
        struct Len32;
        impl KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        let version = version.to_string();
        let info = [org.as_bytes(), b":", version.as_bytes()];
        let okm = self
            .0
            .expand(&info, Len32)
            .map_err(|_| WrapError::Provider("key derivation failed".into()))?;
        let mut kek = Zeroizing::new([0u8; 32]);
        okm.fill(kek.as_mut())
            .map_err(|_| WrapError::Provider("key derivation failed".into()))?;
        Aes256Gcm::new(&kek).map_err(|_| WrapError::Provider("key derivation failed".into()))
    }
}

impl KeyWrapper for SeedWrapper {
    fn provider(&self) -> &'static str {
        "seed"
    }

    fn create_version(&self, _version: u32) -> Result<(), WrapError> {
        Ok(())
    }

    fn holds_version(&self, _version: u32) -> Result<bool, WrapError> {
        Ok(true)
    }

    fn destroy_version(&self, _version: u32) -> Result<(), WrapError> {
        Ok(())
    }

    fn wrap(
        &self,
        binding: &Binding<'_>,
        version: u32,
        key: &DataKey,
    ) -> Result<Vec<u8>, WrapError> {
        let kek = self.kek(binding.org, version)?;
        let nonce = random_bytes::<GCM_NONCE_LEN>()
            .map_err(|_| WrapError::Provider("the system random generator failed".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + 32 + GCM_TAG_LEN);
        out.push(SEED_WRAP_FORMAT);
        out.extend_from_slice(&nonce);
        kek.seal_into(&nonce, &binding.key_aad(version), key.expose(), &mut out)
            .map_err(|_| WrapError::Provider("encryption failed".into()))?;
        Ok(out)
    }

    fn unwrap(
        &self,
        binding: &Binding<'_>,
        version: u32,
        wrapped: &[u8],
    ) -> Result<DataKey, WrapError> {
        let Some((&SEED_WRAP_FORMAT, rest)) = wrapped.split_first() else {
            return Err(WrapError::Rejected);
        };
        let (nonce, body) = rest
            .split_first_chunk::<GCM_NONCE_LEN>()
            .ok_or(WrapError::Rejected)?;
        let kek = self.kek(binding.org, version)?;
        let plain = kek
            .open(nonce, &binding.key_aad(version), body)
            .ok_or(WrapError::Rejected)?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| WrapError::Rejected)?;
        Ok(DataKey(Zeroizing::new(bytes)))
    }
}

/// An org's own vault secret: 32 random bytes, stored in the org's rows (never derived from the
/// seed) and mixed into every data key the vault wraps for the org ([`OrgMasked`]). Deleting it
/// is the org's crypto-shredding: a wrapped key copied elsewhere (an old backup, a freed database
/// page) still unwraps under the seed's KEK, but only to the masked key, which opens nothing.
/// Zeroized on drop; no `Debug`, `Clone` or `Serialize`.
pub struct OrgKey(Zeroizing<[u8; 32]>);

impl OrgKey {
    /// A fresh random org key.
    ///
    /// # Errors
    /// When the system random generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Zeroizing::new(random_bytes::<32>()?)))
    }

    /// The key from its stored bytes; `None` unless exactly 32 bytes.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(bytes)))
    }

    /// The bytes, to store.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The mask of the data key wrapped for `binding` under `version`:
    /// `HMAC-SHA-256(org key, "bulwark/v1/vault/org-mask" ‖ key associated data)`.
    fn mask(&self, binding: &Binding<'_>, version: u32) -> Zeroizing<[u8; 32]> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.0.as_ref());
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
        ctx.update(ORG_MASK_LABEL);
        ctx.update(&binding.key_aad(version));
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// A [`KeyWrapper`] that masks each data key with the org's [`OrgKey`] before the inner wrapper
/// (seed or HSM) wraps it, and unmasks after it unwraps: `wrapped = inner.wrap(key ⊕ mask)`.
/// The inner KEK alone recovers only `key ⊕ mask`; the mask is a PRF of the org key over the
/// binding and version, so it differs for every record, field and version.
pub struct OrgMasked<'a> {
    inner: &'a dyn KeyWrapper,
    key: &'a OrgKey,
}

impl<'a> OrgMasked<'a> {
    /// `inner` masked with `key`.
    #[must_use]
    pub fn new(inner: &'a dyn KeyWrapper, key: &'a OrgKey) -> Self {
        Self { inner, key }
    }

    fn xor(key: &DataKey, mask: &[u8; 32]) -> DataKey {
        let mut out = Zeroizing::new([0u8; 32]);
        for ((o, k), m) in out.iter_mut().zip(key.expose()).zip(mask) {
            *o = k ^ m;
        }
        DataKey(out)
    }
}

impl KeyWrapper for OrgMasked<'_> {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    fn create_version(&self, version: u32) -> Result<(), WrapError> {
        self.inner.create_version(version)
    }

    fn holds_version(&self, version: u32) -> Result<bool, WrapError> {
        self.inner.holds_version(version)
    }

    fn destroy_version(&self, version: u32) -> Result<(), WrapError> {
        self.inner.destroy_version(version)
    }

    fn wrap(
        &self,
        binding: &Binding<'_>,
        version: u32,
        key: &DataKey,
    ) -> Result<Vec<u8>, WrapError> {
        let masked = Self::xor(key, &self.key.mask(binding, version));
        self.inner.wrap(binding, version, &masked)
    }

    fn unwrap(
        &self,
        binding: &Binding<'_>,
        version: u32,
        wrapped: &[u8],
    ) -> Result<DataKey, WrapError> {
        let masked = self.inner.unwrap(binding, version, wrapped)?;
        Ok(Self::xor(&masked, &self.key.mask(binding, version)))
    }
}

/// A sealed credential field as stored: the key version, the wrapped data key and the value
/// envelope. Public bytes only; opening needs the wrapper.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// The key version whose KEK wrapped the data key.
    pub key_version: u32,
    /// The data key, wrapped.
    pub wrapped_key: Vec<u8>,
    /// `0x01 ‖ nonce ‖ ciphertext ‖ tag`.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("key_version", &self.key_version)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Why a value was not sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Larger than [`MAX_VALUE_LEN`].
    #[error("the value is larger than {MAX_VALUE_LEN} bytes")]
    TooLarge,
    /// Shorter than a format byte, a nonce and a tag.
    #[error("the sealed value is truncated")]
    Truncated,
    /// The first byte names no value format this version knows.
    #[error("the sealed value has unknown format `{0}`")]
    UnknownFormat(u8),
    /// Envelope v1, which does not bind the record's attributes: opened only by
    /// [`open_legacy`], to move it to the current envelope.
    #[error("the sealed value is in the envelope that did not bind its attributes")]
    Legacy,
    /// The value does not authenticate: another record, org, field or version, or altered bytes.
    #[error("the sealed value does not authenticate")]
    Rejected,
    /// The wrapper refused or failed.
    #[error(transparent)]
    Wrap(#[from] WrapError),
}

/// Seals `plaintext` for `binding` under a fresh data key wrapped by `version`'s KEK.
///
/// # Errors
/// [`VaultError::TooLarge`] over [`MAX_VALUE_LEN`]; the wrapper's or the generator's failure.
pub fn seal(
    wrapper: &dyn KeyWrapper,
    binding: &Binding<'_>,
    version: u32,
    plaintext: &[u8],
) -> Result<SealedValue, VaultError> {
    let key = DataKey::generate().map_err(provider)?;
    seal_with(wrapper, binding, version, &key, plaintext, VALUE_FORMAT)
}

fn provider(e: CryptoError) -> VaultError {
    VaultError::Wrap(WrapError::Provider(e.to_string()))
}

fn seal_with(
    wrapper: &dyn KeyWrapper,
    binding: &Binding<'_>,
    version: u32,
    key: &DataKey,
    plaintext: &[u8],
    format: u8,
) -> Result<SealedValue, VaultError> {
    if plaintext.len() > MAX_VALUE_LEN {
        return Err(VaultError::TooLarge);
    }
    let nonce = random_bytes::<GCM_NONCE_LEN>().map_err(provider)?;
    let mut ciphertext = Vec::with_capacity(HEADER_LEN + plaintext.len() + GCM_TAG_LEN);
    ciphertext.push(format);
    ciphertext.extend_from_slice(&nonce);
    Aes256Gcm::new(key.expose())
        .and_then(|gcm| {
            gcm.seal_into(
                &nonce,
                &binding.aad(VALUE_AAD_LABEL, version, format),
                plaintext,
                &mut ciphertext,
            )
        })
        .map_err(provider)?;
    Ok(SealedValue {
        key_version: version,
        wrapped_key: wrapper.wrap(binding, version, key)?,
        ciphertext,
    })
}

/// Opens a value made by [`seal`] (or [`rewrap`]) for the same binding, attributes included.
///
/// # Errors
/// [`VaultError::Truncated`], [`VaultError::UnknownFormat`], [`VaultError::Legacy`] (envelope
/// v1), [`VaultError::Rejected`], or the wrapper's refusal of the data key.
pub fn open(
    wrapper: &dyn KeyWrapper,
    binding: &Binding<'_>,
    sealed: &SealedValue,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    open_format(wrapper, binding, sealed, VALUE_FORMAT)
}

/// Opens a value sealed in envelope v1, which bound the org, record, field and key version but
/// not the attributes (`binding.attributes` is ignored). Only for moving it to the current
/// envelope: the caller trusts the attributes it then binds.
///
/// # Errors
/// As [`open`]; [`VaultError::UnknownFormat`] for any other envelope.
pub fn open_legacy(
    wrapper: &dyn KeyWrapper,
    binding: &Binding<'_>,
    sealed: &SealedValue,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    open_format(wrapper, binding, sealed, LEGACY_VALUE_FORMAT)
}

/// Whether `sealed` is in envelope v1 (which [`open`] refuses).
#[must_use]
pub fn is_legacy(sealed: &SealedValue) -> bool {
    sealed.ciphertext.first() == Some(&LEGACY_VALUE_FORMAT)
}

fn open_format(
    wrapper: &dyn KeyWrapper,
    binding: &Binding<'_>,
    sealed: &SealedValue,
    expected: u8,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let (&format, rest) = sealed
        .ciphertext
        .split_first()
        .ok_or(VaultError::Truncated)?;
    if format == LEGACY_VALUE_FORMAT && expected == VALUE_FORMAT {
        return Err(VaultError::Legacy);
    }
    if format != expected {
        return Err(VaultError::UnknownFormat(format));
    }
    let (nonce, body) = rest
        .split_first_chunk::<GCM_NONCE_LEN>()
        .ok_or(VaultError::Truncated)?;
    if body.len() < GCM_TAG_LEN {
        return Err(VaultError::Truncated);
    }
    let key = wrapper.unwrap(binding, sealed.key_version, &sealed.wrapped_key)?;
    let gcm = Aes256Gcm::new(key.expose()).map_err(provider)?;
    let plain = gcm
        .open(
            nonce,
            &binding.aad(VALUE_AAD_LABEL, sealed.key_version, format),
            body,
        )
        .ok_or(VaultError::Rejected)?;
    Ok(plain)
}

/// Moves a sealed value to key version `to`: opens it, then seals it again under a fresh data
/// key (so a data key exposed before a rotation opens nothing after it), a fresh nonce and
/// `to`'s associated data, the data key wrapped under `to`.
///
/// # Errors
/// As [`open`] for the old value, as [`seal`] for the new one.
pub fn rewrap(
    wrapper: &dyn KeyWrapper,
    binding: &Binding<'_>,
    sealed: &SealedValue,
    to: u32,
) -> Result<SealedValue, VaultError> {
    let plain = open(wrapper, binding, sealed)?;
    seal(wrapper, binding, to, &plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG_A: &str = "org_0192a0a0a0a0a0a0a0a0a0a0a0a0a0a0";
    const ORG_B: &str = "org_0192b0b0b0b0b0b0b0b0b0b0b0b0b0b0";

    const ATTRS: &[u8] = b"bearer_token https://tracker.example.com/";

    fn at<'a>(org: &'a str, record: &'a str) -> Binding<'a> {
        Binding {
            org,
            record,
            field: "value",
            attributes: ATTRS,
        }
    }

    fn seal_legacy(w: &dyn KeyWrapper, b: &Binding<'_>, version: u32, plain: &[u8]) -> SealedValue {
        let key = DataKey::generate().unwrap();
        seal_with(w, b, version, &key, plain, LEGACY_VALUE_FORMAT).unwrap()
    }

    #[test]
    fn a_value_masked_with_an_org_key_opens_only_with_that_key() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let b = at(ORG_A, "cred_1");
        let org_key = OrgKey::generate().unwrap();
        let sealed = seal(&OrgMasked::new(&w, &org_key), &b, 1, b"ghp_secret").unwrap();
        let opened = open(&OrgMasked::new(&w, &org_key), &b, &sealed).unwrap();
        assert_eq!(opened.as_slice(), b"ghp_secret");
        // The seed's KEK alone unwraps the masked key, which opens nothing: the shredded case.
        assert_eq!(open(&w, &b, &sealed), Err(VaultError::Rejected));
        let other = OrgKey::generate().unwrap();
        assert_eq!(
            open(&OrgMasked::new(&w, &other), &b, &sealed),
            Err(VaultError::Rejected)
        );
        // The mask differs per record and version: a masked key moved to another record does not
        // open either (its binding also refuses it).
        let copy = OrgKey::from_slice(org_key.expose()).unwrap();
        assert!(matches!(
            open(&OrgMasked::new(&w, &copy), &at(ORG_A, "cred_2"), &sealed),
            Err(VaultError::Rejected | VaultError::Wrap(WrapError::Rejected))
        ));
        assert!(OrgKey::from_slice(&[0; 31]).is_none());
        let rewrapped = rewrap(&OrgMasked::new(&w, &org_key), &b, &sealed, 2).unwrap();
        assert_eq!(open(&w, &b, &rewrapped), Err(VaultError::Rejected));
        assert_eq!(
            open(&OrgMasked::new(&w, &copy), &b, &rewrapped)
                .unwrap()
                .as_slice(),
            b"ghp_secret"
        );
    }

    #[test]
    fn the_attributes_are_bound_into_the_value() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let b = at(ORG_A, "cred_1");
        let sealed = seal(&w, &b, 1, b"ghp_secret").unwrap();
        assert_eq!(sealed.ciphertext.first(), Some(&0x02));
        for edited in [
            &b"bearer_token https://evil.example.net/"[..],
            b"basic_password https://tracker.example.com/",
            b"",
        ] {
            let wrong = Binding {
                attributes: edited,
                ..b
            };
            assert_eq!(open(&w, &wrong, &sealed), Err(VaultError::Rejected));
        }
        assert_eq!(open(&w, &b, &sealed).unwrap().as_slice(), b"ghp_secret");
    }

    #[test]
    fn a_legacy_envelope_opens_only_through_open_legacy_and_moves_to_the_current_one() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let b = at(ORG_A, "cred_1");
        let old = seal_legacy(&w, &b, 1, b"from before");
        assert!(is_legacy(&old));
        assert_eq!(open(&w, &b, &old), Err(VaultError::Legacy));
        // v1 never bound the attributes: any attributes open it (the caller trusts the ones it
        // binds when it moves the value).
        let other = Binding {
            attributes: b"anything",
            ..b
        };
        assert_eq!(
            open_legacy(&w, &other, &old).unwrap().as_slice(),
            b"from before"
        );
        // Still bound to its record.
        assert!(open_legacy(&w, &at(ORG_A, "cred_2"), &old).is_err());
        let moved = seal(&w, &b, 2, &open_legacy(&w, &b, &old).unwrap()).unwrap();
        assert!(!is_legacy(&moved));
        assert_eq!(open(&w, &b, &moved).unwrap().as_slice(), b"from before");
        assert_eq!(
            open_legacy(&w, &b, &moved),
            Err(VaultError::UnknownFormat(2))
        );
        // A v2 value relabelled as v1 does not open either way.
        let mut relabelled = moved.clone();
        relabelled.ciphertext[0] = 0x01;
        assert_eq!(open_legacy(&w, &b, &relabelled), Err(VaultError::Rejected));
    }

    #[test]
    fn a_value_opens_for_its_own_binding_only() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let sealed = seal(&w, &at(ORG_A, "cred_1"), 1, b"ghp_secret").unwrap();
        assert_eq!(sealed.key_version, 1);
        assert_eq!(sealed.wrapped_key.len(), 1 + 12 + 32 + 16);
        assert_eq!(sealed.ciphertext.len(), 1 + 12 + 10 + 16);
        assert_eq!(
            open(&w, &at(ORG_A, "cred_1"), &sealed).unwrap().as_slice(),
            b"ghp_secret"
        );
        let other_field = Binding {
            field: "other",
            ..at(ORG_A, "cred_1")
        };
        for wrong in [at(ORG_B, "cred_1"), at(ORG_A, "cred_2"), other_field] {
            assert!(open(&w, &wrong, &sealed).is_err(), "{wrong:?}");
        }
        let other_seed = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        assert_eq!(
            open(&other_seed, &at(ORG_A, "cred_1"), &sealed),
            Err(VaultError::Wrap(WrapError::Rejected))
        );
    }

    #[test]
    fn ciphertexts_and_wrapped_keys_swapped_between_records_and_orgs_do_not_open() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let a1 = seal(&w, &at(ORG_A, "cred_1"), 1, b"secret one").unwrap();
        let a2 = seal(&w, &at(ORG_A, "cred_2"), 1, b"secret two").unwrap();
        let b1 = seal(&w, &at(ORG_B, "cred_1"), 1, b"secret three").unwrap();
        // The whole sealed value moved to another record or org.
        assert!(open(&w, &at(ORG_A, "cred_2"), &a1).is_err());
        assert!(open(&w, &at(ORG_B, "cred_1"), &a1).is_err());
        // Only the ciphertext swapped, the wrapped key left in place: the data key is the
        // record's own but the value's associated data names the other record.
        let swapped = SealedValue {
            ciphertext: a2.ciphertext.clone(),
            ..a1.clone()
        };
        assert_eq!(
            open(&w, &at(ORG_A, "cred_1"), &swapped),
            Err(VaultError::Rejected)
        );
        // Only the wrapped key swapped.
        let swapped = SealedValue {
            wrapped_key: b1.wrapped_key.clone(),
            ..a1.clone()
        };
        assert_eq!(
            open(&w, &at(ORG_A, "cred_1"), &swapped),
            Err(VaultError::Wrap(WrapError::Rejected))
        );
        // Both moved between orgs with the same record id.
        assert!(open(&w, &at(ORG_A, "cred_1"), &b1).is_err());
    }

    #[test]
    fn the_key_version_is_bound() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let sealed = seal(&w, &at(ORG_A, "cred_1"), 1, b"v").unwrap();
        let relabelled = SealedValue {
            key_version: 2,
            ..sealed.clone()
        };
        assert_eq!(
            open(&w, &at(ORG_A, "cred_1"), &relabelled),
            Err(VaultError::Wrap(WrapError::Rejected))
        );
    }

    #[test]
    fn rewrap_moves_a_value_to_the_new_version_and_keeps_its_plaintext() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let b = at(ORG_A, "cred_1");
        let v1 = seal(&w, &b, 1, b"rotate me").unwrap();
        let v2 = rewrap(&w, &b, &v1, 2).unwrap();
        assert_eq!(v2.key_version, 2);
        assert_ne!(v2.wrapped_key, v1.wrapped_key);
        assert_ne!(v2.ciphertext, v1.ciphertext);
        assert_eq!(open(&w, &b, &v2).unwrap().as_slice(), b"rotate me");
        assert_eq!(open(&w, &b, &v1).unwrap().as_slice(), b"rotate me");
        // A data key exposed before the rotation opens nothing after it.
        let old_key = w.unwrap(&b, 1, &v1.wrapped_key).unwrap();
        let new_key = w.unwrap(&b, 2, &v2.wrapped_key).unwrap();
        assert_ne!(old_key.expose(), new_key.expose());
        let gcm = Aes256Gcm::new(old_key.expose()).unwrap();
        let (nonce, body) = v2.ciphertext[1..]
            .split_first_chunk::<GCM_NONCE_LEN>()
            .unwrap();
        assert!(
            gcm.open(nonce, &b.aad(VALUE_AAD_LABEL, 2, VALUE_FORMAT), body)
                .is_none()
        );
        // The new ciphertext under the old wrapped key (a half-written rewrap) does not open.
        let torn = SealedValue {
            wrapped_key: v1.wrapped_key.clone(),
            ..v2.clone()
        };
        assert!(open(&w, &b, &torn).is_err());
    }

    #[test]
    fn truncated_oversized_and_unknown_inputs_are_refused() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let b = at(ORG_A, "cred_1");
        assert_eq!(
            seal(&w, &b, 1, &vec![0; MAX_VALUE_LEN + 1]),
            Err(VaultError::TooLarge)
        );
        let max = seal(&w, &b, 1, &vec![7; MAX_VALUE_LEN]).unwrap();
        assert_eq!(open(&w, &b, &max).unwrap().len(), MAX_VALUE_LEN);
        let sealed = seal(&w, &b, 1, b"").unwrap();
        assert!(open(&w, &b, &sealed).unwrap().is_empty());
        for len in 0..sealed.ciphertext.len() {
            let cut = SealedValue {
                ciphertext: sealed.ciphertext[..len].to_vec(),
                ..sealed.clone()
            };
            assert_eq!(open(&w, &b, &cut), Err(VaultError::Truncated), "{len}");
        }
        for len in 0..sealed.wrapped_key.len() {
            let cut = SealedValue {
                wrapped_key: sealed.wrapped_key[..len].to_vec(),
                ..sealed.clone()
            };
            assert_eq!(
                open(&w, &b, &cut),
                Err(VaultError::Wrap(WrapError::Rejected)),
                "{len}"
            );
        }
        let mut other = sealed.clone();
        other.ciphertext[0] = 0x03;
        assert_eq!(open(&w, &b, &other), Err(VaultError::UnknownFormat(3)));
        for byte in 0..sealed.ciphertext.len() {
            let mut forged = seal(&w, &b, 1, b"x").unwrap();
            let i = byte.min(forged.ciphertext.len() - 1);
            if i == 0 {
                continue;
            }
            forged.ciphertext[i] ^= 0x80;
            assert_eq!(open(&w, &b, &forged), Err(VaultError::Rejected), "{i}");
        }
    }

    #[test]
    fn sealed_values_print_no_bytes() {
        let w = SeedWrapper::new(&Seed::generate().unwrap()).unwrap();
        let sealed = seal(&w, &at(ORG_A, "cred_1"), 3, b"hunter2").unwrap();
        let shown = format!("{sealed:?}");
        assert_eq!(
            shown,
            "SealedValue { key_version: 3, wrapped_key_len: 61, ciphertext_len: 36 }"
        );
    }
}
