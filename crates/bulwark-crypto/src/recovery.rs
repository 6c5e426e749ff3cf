//! Recovery kits: the workspace seed encrypted under a passphrase, for when the seed file is
//! lost. The passphrase is stretched with argon2id (64 MiB, 3 passes) into an AES-256-GCM key;
//! every public field of the kit is associated data, so a kit whose parameters were edited does
//! not open.
//!
//! A kit is one JSON document:
//! `{"format":"bulwark-recovery-kit-v1","kit_id":"…","kdf":{"alg":"argon2id","m_kib":…,"t":…,
//! "p":…,"salt":"<b64>"},"nonce":"<b64>","ciphertext":"<b64>","seed_check":"<hex>"}`.
//! `seed_check` is the seed's public check value: a restore compares it with the database's
//! before writing a seed file.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::hex::to_hex as hex;
use crate::primitive::{Aes256Gcm, GCM_NONCE_LEN};
use crate::{Seed, random_bytes};

const FORMAT: &str = "bulwark-recovery-kit-v1";
/// The shortest passphrase a kit accepts, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 16;
/// argon2id cost of new kits: 64 MiB, 3 passes, 1 lane.
const M_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;
/// Bounds a kit's parameters must fall in to be opened (a forged kit cannot ask for 4 GiB).
const M_KIB_RANGE: std::ops::RangeInclusive<u32> = 19_456..=262_144;
const T_RANGE: std::ops::RangeInclusive<u32> = 2..=10;
const SALT_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// Why a kit was not made or not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KitError {
    /// The passphrase is shorter than [`MIN_PASSPHRASE_CHARS`].
    #[error("the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    /// Not a kit of a known format, or a field is malformed or out of bounds.
    #[error("not a Bulwark recovery kit: {0}")]
    Malformed(&'static str),
    /// The passphrase is wrong or the kit was altered.
    #[error("the passphrase is wrong or the kit was altered")]
    Rejected,
    /// The key derivation or the random generator failed.
    #[error("the recovery kit could not be processed")]
    Crypto,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    alg: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kit {
    format: String,
    kit_id: String,
    kdf: Kdf,
    nonce: String,
    ciphertext: String,
    seed_check: String,
}

impl Kit {
    /// Every field but the ciphertext, length-prefixed.
    fn aad(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let m = self.kdf.m_kib.to_string();
        let t = self.kdf.t.to_string();
        let p = self.kdf.p.to_string();
        for part in [
            self.format.as_str(),
            self.kit_id.as_str(),
            self.kdf.alg.as_str(),
            &m,
            &t,
            &p,
            self.kdf.salt.as_str(),
            self.nonce.as_str(),
            self.seed_check.as_str(),
        ] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

fn stretch(passphrase: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> Result<Aes256Gcm, KitError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|_| KitError::Malformed("kdf"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|_| KitError::Crypto)?;
    Aes256Gcm::new(&key).map_err(|_| KitError::Crypto)
}

/// A recovery kit of `seed` under `passphrase`, with its public id.
///
/// # Errors
/// [`KitError::WeakPassphrase`]; [`KitError::Crypto`] when the generator or argon2 fails.
pub fn seal_kit(seed: &Seed, passphrase: &str) -> Result<(String, String), KitError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(KitError::WeakPassphrase);
    }
    let salt = random_bytes::<16>().map_err(|_| KitError::Crypto)?;
    let nonce = random_bytes::<GCM_NONCE_LEN>().map_err(|_| KitError::Crypto)?;
    let id = random_bytes::<8>().map_err(|_| KitError::Crypto)?;
    let check = seed.check_value().map_err(|_| KitError::Crypto)?;
    let mut kit = Kit {
        format: FORMAT.into(),
        kit_id: format!("kit_{}", hex(&id)),
        kdf: Kdf {
            alg: "argon2id".into(),
            m_kib: M_KIB,
            t: T_COST,
            p: P_COST,
            salt: STANDARD.encode(salt),
        },
        nonce: STANDARD.encode(nonce),
        ciphertext: String::new(),
        seed_check: hex(&check),
    };
    let key = stretch(passphrase.as_bytes(), &salt, M_KIB, T_COST, P_COST)?;
    let sealed = key
        .seal(&nonce, &kit.aad(), seed.expose_bytes())
        .map_err(|_| KitError::Crypto)?;
    kit.ciphertext = STANDARD.encode(sealed);
    let json = serde_json::to_string_pretty(&kit).map_err(|_| KitError::Crypto)?;
    Ok((json, kit.kit_id))
}

/// The seed in a kit made by [`seal_kit`], and the kit's id.
///
/// # Errors
/// [`KitError::Malformed`] for anything but a well-formed v1 kit within bounds;
/// [`KitError::Rejected`] for a wrong passphrase or altered content.
pub fn open_kit(json: &str, passphrase: &str) -> Result<(Seed, String), KitError> {
    let kit: Kit = serde_json::from_str(json)
        .map_err(|_| KitError::Malformed("not JSON of the kit format"))?;
    if kit.format != FORMAT {
        return Err(KitError::Malformed("unknown format"));
    }
    if kit.kdf.alg != "argon2id"
        || !M_KIB_RANGE.contains(&kit.kdf.m_kib)
        || !T_RANGE.contains(&kit.kdf.t)
        || kit.kdf.p != 1
    {
        return Err(KitError::Malformed("kdf parameters out of bounds"));
    }
    let salt = STANDARD
        .decode(&kit.kdf.salt)
        .ok()
        .filter(|s| SALT_LEN.contains(&s.len()))
        .ok_or(KitError::Malformed("salt"))?;
    let nonce: [u8; GCM_NONCE_LEN] = STANDARD
        .decode(&kit.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(KitError::Malformed("nonce"))?;
    let sealed = STANDARD
        .decode(&kit.ciphertext)
        .map_err(|_| KitError::Malformed("ciphertext"))?;
    let key = stretch(
        passphrase.as_bytes(),
        &salt,
        kit.kdf.m_kib,
        kit.kdf.t,
        kit.kdf.p,
    )?;
    let plain = key
        .open(&nonce, &kit.aad(), &sealed)
        .ok_or(KitError::Rejected)?;
    let bytes: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| KitError::Rejected)?;
    let seed = Seed::from_bytes(Zeroizing::new(bytes));
    let check = seed.check_value().map_err(|_| KitError::Crypto)?;
    if hex(&check) != kit.seed_check {
        return Err(KitError::Rejected);
    }
    Ok((seed, kit.kit_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery staple";

    #[test]
    fn a_kit_round_trips_and_refuses_wrong_passphrases_and_edits() {
        let seed = Seed::generate().unwrap();
        let (json, id) = seal_kit(&seed, PASS).unwrap();
        assert!(id.starts_with("kit_"));
        let (back, back_id) = open_kit(&json, PASS).unwrap();
        assert_eq!(back.check_value().unwrap(), seed.check_value().unwrap());
        assert_eq!(back_id, id);
        assert_eq!(
            open_kit(&json, "correct horse battery stapl3").err(),
            Some(KitError::Rejected)
        );
        let mut doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        doc["kit_id"] = "kit_0000000000000000".into();
        assert_eq!(
            open_kit(&doc.to_string(), PASS).err(),
            Some(KitError::Rejected)
        );
        let mut doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        doc["kdf"]["m_kib"] = 1_000_000_000u64.into();
        assert!(matches!(
            open_kit(&doc.to_string(), PASS).err(),
            Some(KitError::Malformed(_))
        ));
        let mut doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        doc["seed_check"] = "00".repeat(32).into();
        assert_eq!(
            open_kit(&doc.to_string(), PASS).err(),
            Some(KitError::Rejected)
        );
        assert!(matches!(
            open_kit("{}", PASS).err(),
            Some(KitError::Malformed(_))
        ));
        assert!(!json.contains(&hex(seed.expose_bytes())));
    }

    #[test]
    fn short_passphrases_are_refused() {
        let seed = Seed::generate().unwrap();
        assert_eq!(
            seal_kit(&seed, "fifteen chars!!").err(),
            Some(KitError::WeakPassphrase)
        );
    }
}
