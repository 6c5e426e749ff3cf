//! The SAML attack corpus against the verifier itself: every case forged by an independent
//! signer (signxml + lxml, `crates/bulwark-server/tests/it/peers/saml/saml_peer.py forge
//! --all`) with fresh keys and a pinned clock, each expected to be accepted or refused with
//! the named code. The same corpus goes through the server's ACS in the integration tests.
//!
//! Needs the Python peers that `scripts/test` installs (`BULWARK_TEST_PYTHON`).
#![expect(
    clippy::panic,
    reason = "integration tests: a failed step is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_crypto::xml::RsaDecryptionKey;
use bulwark_saml::{Algorithms, Expected, Refusal, Signed, SigningKey, decode, verify_response};

const NOW: i64 = 1_796_601_600; // 2026-12-07T00:00:00Z
const IDP: &str = "https://idp.example/metadata";
const SP: &str = "https://sp.example/saml/metadata";
const ACS: &str = "https://sp.example/saml/acs";
const REQUEST: &str = "_req1";

fn python() -> String {
    std::env::var("BULWARK_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("BULWARK_TEST_PYTHON is not set: run the tests with scripts/test (it installs pysaml2 and signxml)")
    })
}

fn peer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bulwark-server/tests/it/peers/saml/saml_peer.py")
}

/// `saml_peer.py ARGS` in `dir`: its standard output.
fn run(args: &[&str], dir: &Path) -> String {
    let out = Command::new(python())
        .arg(peer())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("the SAML peer did not start: {e}"));
    assert!(
        out.status.success(),
        "saml_peer.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

fn pem_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD
        .decode(body)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Corpus {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn corpus() -> Corpus {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(&["keys", "--out", "keys"], &path);
    let params = serde_json_text();
    std::fs::write(path.join("params.json"), params).unwrap_or_else(|e| panic!("{e}"));
    run(
        &[
            "forge",
            "--all",
            "--out",
            "corpus",
            "--params",
            "params.json",
        ],
        &path,
    );
    Corpus { _dir: dir, path }
}

fn serde_json_text() -> String {
    format!(
        concat!(
            r#"{{"idp_entity_id":"{}","sp_entity_id":"{}","acs_url":"{}","in_response_to":"{}","#,
            r#""idp_key":"keys/idp.key","idp_cert":"keys/idp.crt","attacker_key":"keys/attacker.key","#,
            r#""attacker_cert":"keys/attacker.crt","idp_ec_key":"keys/idp-ec.key","#,
            r#""idp_ec_cert":"keys/idp-ec.crt","sp_enc_cert":"keys/sp.crt","now":{},"#,
            r#""nesting_depth":10000}}"#
        ),
        IDP, SP, ACS, REQUEST, NOW
    )
}

/// What each case must come to: `Ok(name_id)` or the refusal.
fn expected(case: &str) -> Result<&'static str, Refusal> {
    use Refusal::*;
    match case {
        "valid"
        | "valid_response_signed"
        | "valid_both"
        | "replay"
        | "ec_valid"
        | "encrypted_valid" => Ok("alice@acme.example"),
        // Signed after the comment went in: valid, and read whole (never as the victim).
        "comment_in_nameid" => Ok("admin@acme.example.evil.example"),
        "xsw1"
        | "xsw2"
        | "xsw3"
        | "xsw4"
        | "xsw5"
        | "xsw6"
        | "xsw7"
        | "xsw8"
        | "signature_other_element"
        | "unsigned_assertion_first"
        | "duplicate_assertions"
        | "duplicate_ids" => Err(Structure),
        "signature_stripped_response"
        | "signature_stripped_assertion"
        | "signature_stripped_both"
        | "attacker_key"
        | "keyinfo_attacker_cert" => Err(Signature),
        "sha1" | "c14n_with_comments" | "xslt_transform" => Err(Algorithm),
        "wrong_audience" => Err(Audience),
        "wrong_recipient" | "wrong_destination" => Err(Destination),
        "wrong_in_response_to" => Err(InResponseTo),
        "unsolicited" => Err(Unsolicited),
        "wrong_issuer" => Err(Issuer),
        "expired" | "expired_subject_confirmation" | "not_yet_valid" => Err(Expired),
        "dtd_xxe" | "dtd_external_ssrf" | "billion_laughs" | "deep_nesting" | "oversized" => {
            Err(Malformed)
        }
        other => panic!("the corpus has a case this test does not know: {other}"),
    }
}

#[test]
fn every_forged_case_is_refused_for_its_reason_and_the_valid_ones_pass() {
    let c = corpus();
    let keys_dir = c.path.join("keys");
    let idp = SigningKey::from_certificate(&pem_der(&keys_dir.join("idp.crt")))
        .unwrap_or_else(|e| panic!("{e}"));
    let idp_ec = SigningKey::from_certificate(&pem_der(&keys_dir.join("idp-ec.crt")))
        .unwrap_or_else(|e| panic!("{e}"));
    let sp_key = RsaDecryptionKey::from_pkcs8(&pem_der(&keys_dir.join("sp.key")))
        .unwrap_or_else(|e| panic!("{e}"));
    let manifest: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(c.path.join("corpus/manifest.json")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        manifest.len() >= 41,
        "the corpus shrank: {}",
        manifest.len()
    );
    let mut failures = Vec::new();
    for case in &manifest {
        let name = case["name"].as_str().unwrap_or_default();
        let file = case["file"]
            .as_str()
            .unwrap_or_else(|| panic!("case {name} was skipped by the forger: {case}"));
        let posted = std::fs::read_to_string(c.path.join("corpus").join(file))
            .unwrap_or_else(|e| panic!("{e}"));
        let keys = if name == "ec_valid" {
            vec![idp_ec.clone()]
        } else {
            vec![idp.clone()]
        };
        let expect = Expected {
            idp_entity_id: IDP,
            keys: &keys,
            signed: Signed::Either,
            algorithms: Algorithms { allow_sha1: false },
            sp_entity_id: SP,
            acs_url: ACS,
            // With no request in flight, a response to none is unsolicited.
            request_id: (name != "unsolicited").then_some(REQUEST),
            allow_unsolicited: false,
            decryption_key: Some(&sp_key),
            now: NOW,
            skew: 60,
        };
        let got = decode(&posted)
            .and_then(|xml| verify_response(&xml, &expect))
            .map(|a| a.name_id);
        let want = expected(name).map(str::to_owned);
        if got != want {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn read_case(c: &Corpus, name: &str) -> Vec<u8> {
    let posted = std::fs::read_to_string(c.path.join("corpus").join(format!("{name}.b64")))
        .unwrap_or_else(|e| panic!("{e}"));
    decode(&posted).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_connection_settings_change_what_passes() {
    let c = corpus();
    let keys_dir = c.path.join("keys");
    let key = |f: &str| {
        SigningKey::from_certificate(&pem_der(&keys_dir.join(f))).unwrap_or_else(|e| panic!("{e}"))
    };
    let (idp, idp2) = (key("idp.crt"), key("idp2.crt"));
    let rollover = [idp2.clone(), idp.clone()];
    let base = |keys: &'static [SigningKey]| Expected {
        idp_entity_id: IDP,
        keys,
        signed: Signed::Either,
        algorithms: Algorithms { allow_sha1: false },
        sp_entity_id: SP,
        acs_url: ACS,
        request_id: Some(REQUEST),
        allow_unsolicited: false,
        decryption_key: None,
        now: NOW,
        skew: 60,
    };
    let keys: &'static [SigningKey] = Box::leak(Box::new(rollover));
    let only_new: &'static [SigningKey] = Box::leak(Box::new([idp2]));
    let none: &'static [SigningKey] = &[];
    let check =
        |name: &str, e: &Expected<'_>| verify_response(&read_case(&c, name), e).map(|a| a.name_id);
    // Rollover: either of two certificates; the new one alone does not verify the old.
    assert!(check("valid", &base(keys)).is_ok());
    assert_eq!(check("valid", &base(only_new)), Err(Refusal::Signature));
    // No certificate fails closed.
    assert_eq!(check("valid", &base(none)), Err(Refusal::Signature));
    // Which element must be signed.
    let want = |signed| Expected {
        signed,
        ..base(keys)
    };
    assert_eq!(
        check("valid_response_signed", &want(Signed::Assertion)),
        Err(Refusal::Signature)
    );
    assert_eq!(
        check("valid", &want(Signed::Response)),
        Err(Refusal::Signature)
    );
    assert_eq!(check("valid", &want(Signed::Both)), Err(Refusal::Signature));
    assert!(check("valid_both", &want(Signed::Both)).is_ok());
    // SHA-1 only on the operator's opt-in.
    let sha1 = Expected {
        algorithms: Algorithms { allow_sha1: true },
        ..base(keys)
    };
    assert!(check("sha1", &sha1).is_ok());
    // IdP-initiated: off refuses, on accepts a response to no request, and then refuses a
    // response to a request this browser did not make.
    let unsolicited = Expected {
        request_id: None,
        allow_unsolicited: true,
        ..base(keys)
    };
    assert!(check("unsolicited", &unsolicited).is_ok());
    assert_eq!(check("valid", &unsolicited), Err(Refusal::InResponseTo));
    assert_eq!(
        check("unsolicited", &base(keys)),
        Err(Refusal::InResponseTo)
    );
    // An encrypted assertion without the SP's key does not open.
    assert_eq!(check("encrypted_valid", &base(keys)), Err(Refusal::Decrypt));
    // The clock: 61 s past the end is expired, the skew covers 59 s.
    let later = |by| Expected {
        now: NOW + 300 + by,
        ..base(keys)
    };
    assert!(check("valid", &later(59)).is_ok());
    assert_eq!(check("valid", &later(61)), Err(Refusal::Expired));
}

/// One case forged with `extra` merged into the corpus parameters: the posted base64.
fn forge_one(dir: &Path, case: &str, extra: &str) -> String {
    let params = serde_json_text();
    let params = format!("{},{extra}}}", params.trim_end_matches('}'));
    run(&["forge", "--case", case, "--params", &params], dir)
}

/// Encrypted assertions are opened only with authenticated encryption and OAEP key transport
/// (ASVS V11.3.1, V11.3.2): AES-CBC (the padding oracle of XML Encryption 1.0), Triple DES and
/// RSA PKCS#1 v1.5 key transport (Bleichenbacher) are refused as algorithms before any
/// decryption is tried, even though the SP holds the key; AES-GCM with either OAEP is opened.
#[test]
fn encryption_outside_the_allowlist_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    run(&["keys", "--out", "keys"], dir.path());
    let keys_dir = dir.path().join("keys");
    let idp = [
        SigningKey::from_certificate(&pem_der(&keys_dir.join("idp.crt")))
            .unwrap_or_else(|e| panic!("{e}")),
    ];
    let sp_key = RsaDecryptionKey::from_pkcs8(&pem_der(&keys_dir.join("sp.key")))
        .unwrap_or_else(|e| panic!("{e}"));
    let expect = Expected {
        idp_entity_id: IDP,
        keys: &idp,
        signed: Signed::Either,
        algorithms: Algorithms { allow_sha1: false },
        sp_entity_id: SP,
        acs_url: ACS,
        request_id: Some(REQUEST),
        allow_unsolicited: false,
        decryption_key: Some(&sp_key),
        now: NOW,
        skew: 60,
    };
    let cases: [(&str, &str, Result<&str, Refusal>); 7] = [
        ("aes256-gcm", "rsa-oaep-mgf1p", Ok("alice@acme.example")),
        ("aes128-gcm", "rsa-oaep", Ok("alice@acme.example")),
        ("aes128-cbc", "rsa-oaep-mgf1p", Err(Refusal::Algorithm)),
        ("aes256-cbc", "rsa-oaep", Err(Refusal::Algorithm)),
        ("tripledes-cbc", "rsa-oaep-mgf1p", Err(Refusal::Algorithm)),
        ("aes256-gcm", "rsa-1_5", Err(Refusal::Algorithm)),
        ("aes128-cbc", "rsa-1_5", Err(Refusal::Algorithm)),
    ];
    for (content, transport, want) in cases {
        let extra = format!(r#""enc_alg":"{content}","key_transport":"{transport}""#);
        let posted = forge_one(dir.path(), "encrypted_valid", &extra);
        let got = decode(&posted)
            .and_then(|xml| verify_response(&xml, &expect))
            .map(|a| a.name_id);
        assert_eq!(got, want.map(str::to_owned), "{content} with {transport}");
    }
}
