//! Self-issued licenses for tests: a fixed test vendor key (trusted through
//! `license.extra_public_keys`, never compiled in) and claims that are valid now.

use base64::Engine as _;
use bulwark_crypto::Ed25519Signer;
use bulwark_license::{Claims, Limits};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// The test vendor's signing key (`byte` picks another, untrusted, vendor).
#[must_use]
pub fn vendor(byte: u8) -> Ed25519Signer {
    Ed25519Signer::from_seed(&Zeroizing::new([byte; 32])).unwrap()
}

/// The trusted test vendor's public key, base64, for `license.extra_public_keys`.
#[must_use]
pub fn vendor_public_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(vendor(42).public_key())
}

/// Claims valid from an hour ago for 30 days (7 days' grace), issued to `deployment`, with the
/// `tickets` feature and no limits.
#[must_use]
pub fn claims(license_id: &str, deployment: &str) -> Claims {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    Claims {
        format: 1,
        license_id: license_id.into(),
        licensee: "Acme Test Corp".into(),
        serial: 1,
        deployment: Some(deployment.into()),
        issued_at: now - Duration::hours(1),
        not_before: now - Duration::hours(1),
        expires_at: now + Duration::days(30),
        grace_days: 7,
        limits: Limits::default(),
        features: vec!["tickets".into()],
    }
}

/// The license file for `claims`, signed by the trusted test vendor.
#[must_use]
pub fn issue(claims: Claims) -> String {
    issue_with(claims, &vendor(42))
}

/// The license file for `claims`, signed by `signer`.
#[must_use]
pub fn issue_with(claims: Claims, signer: &Ed25519Signer) -> String {
    let file = bulwark_license::issue(claims, signer).unwrap();
    serde_json::to_string_pretty(&file).unwrap()
}

/// This deployment's id, from `GET /v1/license` as `who` (an owner or admin of the first org).
pub async fn deployment_id(app: &crate::TestApp, who: &crate::SignedIn) -> String {
    let res = app.get_as(who, "/v1/license").await;
    assert_eq!(res.status(), 200, "license status");
    let body: serde_json::Value = res.json().await.unwrap();
    body.get("deployment_id")
        .and_then(serde_json::Value::as_str)
        .unwrap()
        .to_owned()
}

/// Uploads `text` as a license file as `who`.
pub async fn upload(app: &crate::TestApp, who: &crate::SignedIn, text: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/license"))
        .header(reqwest::header::COOKIE, &who.cookie)
        .header("x-csrf-token", &who.csrf)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(text.to_owned())
        .send()
        .await
        .unwrap()
}

/// Activates a test license (see [`claims`]) as `who`, an owner of the first org; the app must
/// trust [`vendor_public_key`].
pub async fn activate(app: &crate::TestApp, who: &crate::SignedIn) {
    let deployment = deployment_id(app, who).await;
    let res = upload(app, who, &issue(claims("lic_test", &deployment))).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}
