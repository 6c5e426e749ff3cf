//! The middleware in front of every console route.
//!
//! A console form carries the session's CSRF token in a hidden `_csrf` field; browsers cannot
//! put it in a header without script. This middleware copies that field into the
//! `X-CSRF-Token` header, so the *same* extractor that guards the API checks it (with the same
//! `Sec-Fetch-Site`/`Origin` refusal); it does not judge the token itself. A form whose session
//! ended meanwhile is not lost: the sign-in page comes back with the form's fields kept (except
//! secrets) and, once signed in, offers to send them again.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::auth::CSRF_HEADER;
use crate::console::page;

/// Form fields never echoed back into a page: they hold secrets.
const SECRET_FIELDS: &[&str] = &[
    "_csrf",
    "password",
    "current_password",
    "new_password",
    "code",
    "value",
    "token",
];

/// The middleware.
pub async fn shell(req: Request, next: Next) -> Response {
    // The console is for people in a session; API keys use `/v1` (a key never opens a page).
    if req.headers().contains_key(header::AUTHORIZATION) {
        return crate::error::ApiError::new(
            StatusCode::BAD_REQUEST,
            "console_takes_a_session",
            "the console takes a signed-in session, not an API key; call /v1 with the key",
        )
        .into_response();
    }
    let is_form = req.method() == Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // The body limit layer outside already bounds what is read here.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parts.headers.remove(CSRF_HEADER);
    let mut csrf = fields.iter().filter(|(k, _)| k == "_csrf");
    if let (Some((_, token)), None) = (csrf.next(), csrf.next())
        && let Ok(v) = HeaderValue::from_str(token)
    {
        parts.headers.insert(CSRF_HEADER, v);
    }
    let action = parts.uri.path().to_owned();
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if res.status() != StatusCode::UNAUTHORIZED || action == "/login" {
        return res;
    }
    let (res, code) = page::peek_code(res).await;
    if code != "unauthenticated" {
        return res;
    }
    let kept = fields
        .into_iter()
        .filter(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()))
        .collect();
    page::session_expired(&action, kept)
}
