//! Ed25519 signatures (RFC 8032) over aws-lc-rs.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::CryptoError;

/// An Ed25519 signing key made from a 32-byte seed (usually derived from the workspace seed).
/// No `Debug`, no `Serialize`; the seed is zeroized once the key pair is built.
pub struct Ed25519Signer {
    pair: Ed25519KeyPair,
    public: [u8; 32],
}

impl Ed25519Signer {
    /// The key pair of a 32-byte RFC 8032 private key (seed).
    ///
    /// # Errors
    /// When the provider refuses the seed.
    pub fn from_seed(seed: &Zeroizing<[u8; 32]>) -> Result<Self, CryptoError> {
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).map_err(|_| CryptoError::Kdf)?;
        let public =
            <[u8; 32]>::try_from(pair.public_key().as_ref()).map_err(|_| CryptoError::Kdf)?;
        Ok(Self { pair, public })
    }

    /// The 32-byte public key.
    #[must_use]
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The 64-byte signature of `msg`.
    #[must_use]
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

/// Whether `signature` is a valid Ed25519 signature of `msg` by `public_key`.
#[must_use]
pub fn verify_ed25519(public_key: &[u8; 32], msg: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(msg, signature)
        .is_ok()
}

/// An ECDSA P-256 key for JWS `ES256` (a relying party's `private_key_jwt` client assertions):
/// generated here, kept as PKCS#8 (sealed by the caller), signing with fixed-size `r ‖ s`.
pub struct Es256Signer(aws_lc_rs::signature::EcdsaKeyPair);

impl Es256Signer {
    /// A new key and its PKCS#8 document (secret: seal it).
    ///
    /// # Errors
    /// The RNG or key generation failed.
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), CryptoError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| CryptoError::Rng)?;
        let bytes = Zeroizing::new(pkcs8.as_ref().to_vec());
        Ok((Self::from_pkcs8(&bytes)?, bytes))
    }

    /// The key in a PKCS#8 document.
    ///
    /// # Errors
    /// Not a P-256 PKCS#8 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, CryptoError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map(Self)
            .map_err(|_| CryptoError::Kdf)
    }

    /// The ES256 signature of `message` (64 bytes, `r ‖ s`).
    ///
    /// # Errors
    /// The RNG failed.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.0
            .sign(&rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CryptoError::Rng)
    }

    /// The public key's affine coordinates `(x, y)`, 32 bytes each (for a JWK).
    #[must_use]
    pub fn public_xy(&self) -> ([u8; 32], [u8; 32]) {
        let point = self.0.public_key().as_ref();
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        // Uncompressed SEC1: 0x04 ‖ X ‖ Y.
        if let (Some(px), Some(py)) = (point.get(1..33), point.get(33..65)) {
            x.copy_from_slice(px);
            y.copy_from_slice(py);
        }
        (x, y)
    }
}
