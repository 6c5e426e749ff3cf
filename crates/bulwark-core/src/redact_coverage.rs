//! Every kind of secret the system issues is recognised by the log redactor's shapes
//! (`bulwark_types::redact::TOKEN_SHAPES`): a new token kind without a shape fails here.

use bulwark_crypto::webhook::WebhookSecret;
use bulwark_crypto::{ApiKey, SecretToken, Seed};

use crate::redact::{redact_json_line, redact_token_shapes};

fn issued() -> Vec<(&'static str, String)> {
    let token = |prefix| SecretToken::generate(prefix).unwrap().expose().to_owned();
    vec![
        ("api key", ApiKey::generate().unwrap().expose().to_owned()),
        ("session", token(crate::session::TOKEN_PREFIX)),
        ("setup", token(crate::setup::SETUP_TOKEN_PREFIX)),
        ("verify", token(crate::recovery::VERIFY_TOKEN_PREFIX)),
        ("reset", token(crate::recovery::RESET_TOKEN_PREFIX)),
        ("invitation", token(crate::invite::TOKEN_PREFIX)),
        (
            "webhook secret",
            WebhookSecret::generate().unwrap().expose().to_owned(),
        ),
        (
            "seed file",
            Seed::generate()
                .unwrap()
                .to_file_content()
                .trim()
                .to_owned(),
        ),
    ]
}

#[test]
fn every_issued_secret_kind_is_redacted_by_shape() {
    for (kind, secret) in issued() {
        let out = redact_token_shapes(&format!("GET /v1/x/{secret}?t={secret}"))
            .unwrap_or_else(|| panic!("{kind} not recognised: {secret}"));
        assert!(!out.contains(&secret), "{kind}: {out}");
        // The secret's random part is gone too, not only the whole string.
        let tail = secret.get(secret.len() - 16..).unwrap();
        let line =
            serde_json::json!({"message": "m", "path": format!("/a/{secret}/b")}).to_string();
        assert!(!redact_json_line(&line).contains(tail), "{kind}");
    }
}
