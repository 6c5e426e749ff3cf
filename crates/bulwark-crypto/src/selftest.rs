//! Known-answer self-tests run before the server touches any key: AES-256-GCM, HKDF-SHA-256,
//! HMAC-SHA-256, SHA-256 and Ed25519 against published vectors, through the same wrappers the
//! envelopes use. A failure means the provider computes something else than the standard says,
//! and the server must refuse to start (FIPS 140-3 asks the same of a module at power-up).
//!
//! The vectors are the standards' own (GCM spec 13–16, RFC 5869 A.1–A.3, RFC 4231 §4,
//! RFC 8032 §7.1, FIPS 180-2 "abc"), compiled into the binary from `tests/vectors/`.

use serde_json::Value;
use zeroize::Zeroizing;

use crate::hex::from_hex as hex;
use crate::primitive::{Aes256Gcm, GCM_NONCE_LEN, hkdf_sha256, hmac_sha256};
use crate::{Ed25519Signer, sha256, verify_ed25519};

const AES_GCM: &str = include_str!("../tests/vectors/aes256gcm.json");
const HKDF: &str = include_str!("../tests/vectors/hkdf-rfc5869.json");
const HMAC: &str = include_str!("../tests/vectors/hmac-sha256-rfc4231.json");
const ED25519: &str = include_str!("../tests/vectors/ed25519-rfc8032.json");

/// What the self-test checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfTestReport {
    /// Known-answer cases that passed, all algorithms together.
    pub cases: usize,
}

/// The first known-answer test that failed: the algorithm and the case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cryptographic self-test failed: {algorithm} case `{case}`")]
pub struct SelfTestFailure {
    /// The algorithm, e.g. `AES-256-GCM`.
    pub algorithm: &'static str,
    /// The vector's case name (or index).
    pub case: String,
}

/// Runs every known-answer test compiled into the binary.
///
/// # Errors
/// The first case whose result differs from the standard's.
pub fn self_test() -> Result<SelfTestReport, SelfTestFailure> {
    run(&Vectors {
        aes_gcm: AES_GCM,
        hkdf: HKDF,
        hmac: HMAC,
        ed25519: ED25519,
    })
}

#[derive(Clone, Copy)]
struct Vectors<'a> {
    aes_gcm: &'a str,
    hkdf: &'a str,
    hmac: &'a str,
    ed25519: &'a str,
}

fn run(v: &Vectors<'_>) -> Result<SelfTestReport, SelfTestFailure> {
    let mut cases = 0;
    cases += check_cases("AES-256-GCM", v.aes_gcm, 4, aes_gcm_case)?;
    cases += check_cases("HKDF-SHA-256", v.hkdf, 3, hkdf_case)?;
    cases += check_cases("HMAC-SHA-256", v.hmac, 6, hmac_case)?;
    cases += check_cases("Ed25519", v.ed25519, 3, ed25519_case)?;
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    if hex(abc).as_deref() != Some(sha256(b"abc").as_slice()) {
        return Err(failure("SHA-256", "FIPS 180-2 abc"));
    }
    Ok(SelfTestReport { cases: cases + 1 })
}

fn failure(algorithm: &'static str, case: impl Into<String>) -> SelfTestFailure {
    SelfTestFailure {
        algorithm,
        case: case.into(),
    }
}

/// Runs `check` on every case of `json`; there must be exactly `expected` cases.
fn check_cases(
    algorithm: &'static str,
    json: &str,
    expected: usize,
    check: fn(&Value) -> Option<bool>,
) -> Result<usize, SelfTestFailure> {
    let doc: Value = serde_json::from_str(json).map_err(|_| failure(algorithm, "vector file"))?;
    let cases = doc
        .get("cases")
        .and_then(Value::as_array)
        .filter(|c| c.len() == expected)
        .ok_or_else(|| failure(algorithm, "vector file"))?;
    for (i, case) in cases.iter().enumerate() {
        if check(case) != Some(true) {
            let name = case
                .get("case")
                .and_then(Value::as_str)
                .map_or_else(|| i.to_string(), str::to_owned);
            return Err(failure(algorithm, name));
        }
    }
    Ok(cases.len())
}

fn field(case: &Value, name: &str) -> Option<Vec<u8>> {
    hex(case.get(name)?.as_str()?)
}

fn aes_gcm_case(c: &Value) -> Option<bool> {
    let key: [u8; 32] = field(c, "key")?.try_into().ok()?;
    let nonce: [u8; GCM_NONCE_LEN] = field(c, "nonce")?.try_into().ok()?;
    let (plaintext, aad) = (field(c, "plaintext")?, field(c, "aad")?);
    let mut expected = field(c, "ciphertext")?;
    expected.extend(field(c, "tag")?);
    let gcm = Aes256Gcm::new(&key).ok()?;
    let sealed = gcm.seal(&nonce, &aad, &plaintext).ok()?;
    let opened = gcm.open(&nonce, &aad, &sealed)?;
    let mut forged = sealed.clone();
    *forged.last_mut()? ^= 1;
    Some(sealed == expected && *opened == plaintext && gcm.open(&nonce, &aad, &forged).is_none())
}

fn hkdf_case(c: &Value) -> Option<bool> {
    let len = usize::try_from(c.get("length")?.as_u64()?).ok()?;
    let mut okm = Zeroizing::new(vec![0u8; len]);
    hkdf_sha256(
        &field(c, "salt")?,
        &field(c, "ikm")?,
        &[&field(c, "info")?],
        &mut okm,
    )
    .ok()?;
    Some(*okm == field(c, "okm")?)
}

fn hmac_case(c: &Value) -> Option<bool> {
    let expected = field(c, "hmac_sha256")?;
    let tag = hmac_sha256(&field(c, "key")?, &field(c, "data")?);
    // RFC 4231 case 5 publishes the tag truncated to 128 bits.
    Some(tag.get(..expected.len())? == expected.as_slice())
}

fn ed25519_case(c: &Value) -> Option<bool> {
    let seed: [u8; 32] = field(c, "secret_key")?.try_into().ok()?;
    let public: [u8; 32] = field(c, "public_key")?.try_into().ok()?;
    let (message, signature) = (field(c, "message")?, field(c, "signature")?);
    let signer = Ed25519Signer::from_seed(&Zeroizing::new(seed)).ok()?;
    let mut forged = signature.clone();
    *forged.first_mut()? ^= 1;
    Some(
        signer.public_key() == public
            && signer.sign(&message).as_slice() == signature.as_slice()
            && verify_ed25519(&public, &message, &signature)
            && !verify_ed25519(&public, &message, &forged),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fips_build_runs_the_validated_module_and_the_default_does_not() {
        assert_eq!(crate::fips_mode(), cfg!(feature = "fips"));
    }

    #[test]
    fn the_compiled_in_vectors_pass() {
        assert_eq!(self_test(), Ok(SelfTestReport { cases: 17 }));
    }

    #[test]
    fn a_wrong_answer_fails_the_self_test_and_names_the_case() {
        let flip_last_hex = |json: &str, field: &str, case: &str| {
            let mut doc: Value = serde_json::from_str(json).unwrap();
            let cases = doc["cases"].as_array_mut().unwrap();
            let c = cases
                .iter_mut()
                .find(|c| c.get("case").and_then(Value::as_str) == Some(case))
                .unwrap();
            let mut s = c[field].as_str().unwrap().to_owned();
            let last = s.pop().unwrap();
            s.push(if last == '0' { '1' } else { '0' });
            c[field] = Value::String(s);
            doc.to_string()
        };
        let good = Vectors {
            aes_gcm: AES_GCM,
            hkdf: HKDF,
            hmac: HMAC,
            ed25519: ED25519,
        };
        let aes = flip_last_hex(AES_GCM, "tag", "tc16");
        let err = run(&Vectors {
            aes_gcm: &aes,
            ..good
        })
        .unwrap_err();
        assert_eq!(err, failure("AES-256-GCM", "tc16"));
        assert_eq!(
            err.to_string(),
            "cryptographic self-test failed: AES-256-GCM case `tc16`"
        );
        let hkdf = flip_last_hex(HKDF, "okm", "A.2");
        assert_eq!(
            run(&Vectors {
                hkdf: &hkdf,
                ..good
            })
            .unwrap_err(),
            failure("HKDF-SHA-256", "A.2")
        );
        let hmac = flip_last_hex(HMAC, "hmac_sha256", "4");
        assert_eq!(
            run(&Vectors {
                hmac: &hmac,
                ..good
            })
            .unwrap_err(),
            failure("HMAC-SHA-256", "4")
        );
        let mut ed: Value = serde_json::from_str(ED25519).unwrap();
        ed["cases"][1]["signature"] = Value::String("00".repeat(64));
        let ed = ed.to_string();
        assert_eq!(
            run(&Vectors {
                ed25519: &ed,
                ..good
            })
            .unwrap_err(),
            failure("Ed25519", "1")
        );
        let mut missing: Value = serde_json::from_str(HMAC).unwrap();
        missing["cases"].as_array_mut().unwrap().pop();
        let missing = missing.to_string();
        assert_eq!(
            run(&Vectors {
                hmac: &missing,
                ..good
            })
            .unwrap_err(),
            failure("HMAC-SHA-256", "vector file")
        );
    }
}
