//! Standard vectors through our wrappers.
#![expect(clippy::unwrap_used, reason = "tests")]

use bulwark_crypto::{
    Ed25519Signer, TotpAlgorithm, TotpParams, TotpSecret, totp_code_at, totp_step, verify_ed25519,
    verify_totp,
};
use zeroize::Zeroizing;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn ed25519_matches_rfc8032_section_7_1() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/ed25519-rfc8032.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let seed: [u8; 32] = hex(c["secret_key"].as_str().unwrap()).try_into().unwrap();
        let signer = Ed25519Signer::from_seed(&Zeroizing::new(seed)).unwrap();
        let public: [u8; 32] = hex(c["public_key"].as_str().unwrap()).try_into().unwrap();
        assert_eq!(signer.public_key(), public);
        let msg = hex(c["message"].as_str().unwrap());
        let sig = signer.sign(&msg);
        assert_eq!(sig.to_vec(), hex(c["signature"].as_str().unwrap()));
        assert!(verify_ed25519(&public, &msg, &sig));
        let mut forged = sig;
        forged[0] ^= 1;
        assert!(!verify_ed25519(&public, &msg, &forged));
        assert!(!verify_ed25519(&public, b"another message", &sig));
    }
}

#[test]
fn totp_matches_rfc6238_appendix_b() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/totp-rfc6238.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for c in cases {
        let algorithm = TotpAlgorithm::from_name(c["algorithm"].as_str().unwrap()).unwrap();
        let digits = u8::try_from(c["digits"].as_u64().unwrap()).unwrap();
        let params = TotpParams::new(algorithm, digits, c["step"].as_u64().unwrap()).unwrap();
        let encoded = c["secret_base32"].as_str().unwrap();
        let secret = TotpSecret::from_base32(encoded).unwrap();
        assert_eq!(
            secret.expose_bytes(),
            c["secret_ascii"].as_str().unwrap().as_bytes()
        );
        assert_eq!(secret.to_base32().as_str(), encoded);
        let time = c["time"].as_u64().unwrap();
        let code = c["code"].as_str().unwrap();
        assert_eq!(totp_code_at(&secret, params, time).as_str(), code, "{c}");
        let step = totp_step(params, time);
        assert_eq!(
            verify_totp(&secret, params, code, time, 0, None),
            Some(step)
        );
        assert_eq!(
            verify_totp(&secret, params, code, time, 0, Some(step)),
            None
        );
    }
}
