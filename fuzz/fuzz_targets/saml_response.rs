//! Fuzzes the SAML response verifier (parser, structure rules, canonicalization, signature
//! checks, reading) and the IdP metadata reader: any bytes are refused or verified; nothing
//! panics. The seeds are responses from the attack corpus signed by `saml_idp.crt`'s key, so
//! mutations reach canonicalization and the signature check.
#![no_main]

use bulwark_saml::{Algorithms, Expected, Signed, SigningKey};
use libfuzzer_sys::fuzz_target;

const IDP_CERT: &str = include_str!("../saml_idp.crt");

fn key() -> SigningKey {
    use base64::Engine as _;
    let body: String = IDP_CERT.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("the committed certificate is base64");
    SigningKey::from_certificate(&der).expect("the committed certificate is RSA")
}

fuzz_target!(|data: &[u8]| {
    let keys = [key()];
    let expected = Expected {
        idp_entity_id: "https://idp.example/metadata",
        keys: &keys,
        signed: Signed::Either,
        algorithms: Algorithms { allow_sha1: false },
        sp_entity_id: "https://sp.example/saml/metadata",
        acs_url: "https://sp.example/saml/acs",
        request_id: Some("_req1"),
        allow_unsolicited: false,
        decryption_key: None,
        now: 1_796_601_600,
        skew: 60,
    };
    let _ = bulwark_saml::verify_response(data, &expected);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bulwark_saml::read_idp_metadata(text);
        if let Ok(doc) = bulwark_saml::parse(text) {
            let _ = bulwark_saml::canonicalize(doc.root_element(), None, &["xs", "#default"]);
        }
    }
});
