//! The primitives a SAML service provider needs (issue 21), over aws-lc-rs: digests and
//! signature checks for XML signatures with a key taken from an identity provider's
//! certificate, RSA-OAEP key transport and AES-GCM for encrypted assertions, and the RSA key
//! pair those are encrypted to. Which algorithms a document may name is decided by the caller;
//! this module only maps names it was given to aws-lc-rs.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
    PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use zeroize::Zeroizing;

use crate::CryptoError;

/// A digest an XML signature may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// SHA-1 (only where the operator allowed it).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// The digest of `data`.
#[must_use]
pub fn digest(algorithm: Digest, data: &[u8]) -> Vec<u8> {
    let alg = match algorithm {
        Digest::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        Digest::Sha256 => &digest::SHA256,
        Digest::Sha384 => &digest::SHA384,
        Digest::Sha512 => &digest::SHA512,
    };
    digest::digest(alg, data).as_ref().to_vec()
}

/// A public key as a certificate's `subjectPublicKeyInfo` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA (the bit string is a DER `RSAPublicKey`).
    Rsa,
    /// ECDSA on P-256 (an uncompressed point).
    P256,
    /// ECDSA on P-384 (an uncompressed point).
    P384,
}

/// Whether `signature` over `message` verifies with `public_key` (of `kind`) under the
/// signature algorithm made of `kind` and `hash`. An ECDSA signature is the fixed-size `r ‖ s`
/// of XML signatures (RFC 6931). A hash that does not fit the curve (P-256 with SHA-384 …)
/// does not verify.
#[must_use]
pub fn verify_signature(
    kind: KeyKind,
    hash: Digest,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    let alg: &'static dyn VerificationAlgorithm = match (kind, hash) {
        (KeyKind::Rsa, Digest::Sha1) => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (KeyKind::Rsa, Digest::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (KeyKind::Rsa, Digest::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (KeyKind::Rsa, Digest::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (KeyKind::P256, Digest::Sha256) => &signature::ECDSA_P256_SHA256_FIXED,
        (KeyKind::P384, Digest::Sha384) => &signature::ECDSA_P384_SHA384_FIXED,
        _ => return false,
    };
    UnparsedPublicKey::new(alg, public_key)
        .verify(message, signature)
        .is_ok()
}

/// How a content key was wrapped to the service provider's RSA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oaep {
    /// `rsa-oaep-mgf1p` with SHA-1 (the XML Encryption 1.0 default).
    Sha1,
    /// `xmlenc11#rsa-oaep` with SHA-256 and MGF1-SHA-256.
    Sha256,
}

/// An RSA key pair for encrypted assertions: made here, kept as PKCS#8 (sealed by the caller).
pub struct RsaDecryptionKey(PrivateDecryptingKey);

impl RsaDecryptionKey {
    /// A new 3072-bit key (128-bit security, NIST SP 800-57) and its PKCS#8 document (secret:
    /// seal it).
    ///
    /// # Errors
    /// Key generation failed.
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), CryptoError> {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa3072).map_err(|_| CryptoError::Rng)?;
        let der: Pkcs8V1Der<'static> = key.as_der().map_err(|_| CryptoError::Kdf)?;
        let pkcs8 = Zeroizing::new(der.as_ref().to_vec());
        Ok((Self(key), pkcs8))
    }

    /// The key of a PKCS#8 document.
    ///
    /// # Errors
    /// Not an RSA PKCS#8 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, CryptoError> {
        PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map(Self)
            .map_err(|_| CryptoError::Kdf)
    }

    /// The size of the key's modulus in bits.
    #[must_use]
    pub fn bits(&self) -> usize {
        self.0.key_size_bits()
    }

    /// The PKCS#8 document of this key (secret).
    ///
    /// # Errors
    /// The provider failed to encode it.
    pub fn pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let der: Pkcs8V1Der<'static> = self.0.as_der().map_err(|_| CryptoError::Kdf)?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    /// The content key wrapped in `wrapped`.
    ///
    /// # Errors
    /// `Aead` when it does not unwrap.
    pub fn unwrap_key(
        &self,
        oaep: Oaep,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = OaepPrivateDecryptingKey::new(self.0.clone()).map_err(|_| CryptoError::Aead)?;
        let alg = match oaep {
            Oaep::Sha1 => &OAEP_SHA1_MGF1SHA1,
            Oaep::Sha256 => &OAEP_SHA256_MGF1SHA256,
        };
        let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
        let len = key
            .decrypt(alg, wrapped, &mut out, None)
            .map_err(|_| CryptoError::Aead)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

/// The plaintext of XML Encryption 1.1 AES-GCM content: `iv (12) ‖ ciphertext ‖ tag (16)`,
/// with a 16- or 32-byte key.
///
/// # Errors
/// `Aead` for a wrong key size, a short input or a failed tag.
pub fn aes_gcm_open(key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let alg = match key.len() {
        16 => &AES_128_GCM,
        32 => &AES_256_GCM,
        _ => return Err(CryptoError::Aead),
    };
    let (iv, sealed) = data.split_at_checked(12).ok_or(CryptoError::Aead)?;
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| CryptoError::Aead)?;
    let key = LessSafeKey::new(UnboundKey::new(alg, key).map_err(|_| CryptoError::Aead)?);
    let mut buf = Zeroizing::new(sealed.to_vec());
    let len = key
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| CryptoError::Aead)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// The `subjectPublicKeyInfo` (DER) of an RSA decryption key: for the service provider's
/// certificate.
///
/// # Errors
/// The provider failed to encode it.
pub fn rsa_public_der(key: &RsaDecryptionKey) -> Result<Vec<u8>, CryptoError> {
    let der: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
        key.0.public_key().as_der().map_err(|_| CryptoError::Kdf)?;
    Ok(der.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::RsaDecryptionKey;

    /// Every RSA key Bulwark makes is 3072 bits (ASVS V11.2.3: 128-bit security), also after a
    /// round trip through its sealed PKCS#8 form.
    #[test]
    fn generated_rsa_keys_have_128_bit_security() {
        let (key, pkcs8) = RsaDecryptionKey::generate().unwrap();
        assert_eq!(key.bits(), 3072);
        assert_eq!(RsaDecryptionKey::from_pkcs8(&pkcs8).unwrap().bits(), 3072);
    }
}
