//! OpenAPI document and security.txt.

use bulwark_testkit::{Backend, spawn_app, spawn_app_with};
use serde_json::Value;

#[tokio::test]
async fn the_openapi_document_is_3_1_and_matches_the_committed_copy() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let served = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/setup",
        "/healthz",
        "/readyz",
        "/.well-known/security.txt",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert_eq!(
        committed.trim_end(),
        bulwark_server::openapi_json().trim_end(),
        "docs/openapi.json is stale: regenerate it with `scripts/openapi`"
    );
}

#[tokio::test]
async fn security_txt_is_served_only_when_a_contact_is_configured() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app
        .client
        .get(app.url("/.well-known/security.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "not_configured");

    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.security_txt.contact = vec!["mailto:security@example.com".into()];
        c.security_txt.preferred_languages = Some("en".into());
    })
    .await;
    let res = app
        .client
        .get(app.url("/.well-known/security.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("Contact: mailto:security@example.com\n"),
        "{text}"
    );
    let expires = text
        .lines()
        .find_map(|l| l.strip_prefix("Expires: "))
        .unwrap();
    let when = time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(when > time::OffsetDateTime::now_utc());
}
