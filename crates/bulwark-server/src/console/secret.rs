//! Secrets shown once: the API handler's own answer (a new API key, a webhook signing secret)
//! is read for the one field the user must copy, and shown on a page that is never cached.

use askama::Template;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use secrecy::{ExposeSecret as _, SecretString};

use crate::console::page::{self, Chrome};
use crate::error::ApiError;

/// Reads `field` (the secret) and the rest of a JSON answer of the API.
///
/// # Errors
/// 500 if the answer is not the JSON it should be.
pub async fn read(
    res: Response,
    field: &str,
) -> Result<(SecretString, serde_json::Value), ApiError> {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::internal(format!("reading an API answer: {e}")))?;
    let mut value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("an API answer is not JSON: {e}")))?;
    let secret = value
        .as_object_mut()
        .and_then(|o| o.remove(field))
        .and_then(|v| v.as_str().map(|s| SecretString::from(s.to_owned())))
        .ok_or_else(|| ApiError::internal(format!("an API answer has no `{field}`")))?;
    Ok((secret, value))
}

/// The page that shows a secret once.
#[derive(Template)]
#[template(path = "secret.html")]
struct SecretPage<'a> {
    chrome: Chrome,
    title: &'a str,
    what: &'a str,
    secret: &'a str,
    facts: Vec<(&'static str, String)>,
    back: String,
}

/// Shows `secret` once, with what it is and where to go next; `Cache-Control: no-store`.
#[must_use]
pub fn show(
    chrome: Chrome,
    title: &str,
    what: &str,
    secret: &SecretString,
    facts: Vec<(&'static str, String)>,
    back: String,
) -> Response {
    let mut res = page::html(&SecretPage {
        chrome,
        title,
        what,
        secret: secret.expose_secret(),
        facts,
        back,
    });
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A string field of a JSON answer.
#[must_use]
pub fn text(v: &serde_json::Value, field: &str) -> String {
    v.get(field)
        .map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_owned))
        .unwrap_or_default()
}
