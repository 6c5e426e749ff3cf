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
