//! Errors on console paths become pages. Every refusal the shared extractors and services
//! answer (a problem body) is rendered as an HTML page with the same status, the stable code and
//! the request id; an anonymous `GET` is sent to the sign-in page instead, and back afterwards.
//! Called by the observing middleware after it made sure every error is a problem, so framework
//! errors (unknown route, wrong method, oversized body, timeout) get the same page.

use askama::Template;
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde::Deserialize;

use crate::error::PROBLEM_JSON;

/// Whether `path` is the console's (everything but the API, the probes and `/.well-known`).
#[must_use]
pub fn is_console_path(path: &str) -> bool {
    !(path == "/v1"
        || path.starts_with("/v1/")
        || path.starts_with("/scim/")
        || path == "/healthz"
        || path == "/readyz"
        || path.starts_with("/.well-known/"))
}

#[derive(Deserialize, Default)]
struct Problem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    request_id: String,
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// HTTP status code.
    pub status: u16,
    /// Status reason.
    pub title: String,
    /// Stable code.
    pub code: String,
    /// What happened.
    pub detail: String,
    /// The request id.
    pub request_id: String,
}

/// A safe place to return to after sign-in: a console path of this site (not `//host`, not
/// `/\host`, no scheme, not the API), else `None`.
#[must_use]
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 1024
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && is_console_path(next.split('?').next().unwrap_or(next))
        && !next.starts_with("/login");
    ok.then_some(next)
}

/// Turns a problem answer on a console path into a page (or a redirect to sign in).
pub async fn to_page(res: Response, method: &Method, path_and_query: &str) -> Response {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !is_problem {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
    if parts.status == StatusCode::UNAUTHORIZED
        && matches!(*method, Method::GET | Method::HEAD)
        && matches!(problem.code.as_str(), "unauthenticated" | "mfa_pending")
    {
        let to = if problem.code == "mfa_pending" {
            "/login/mfa".to_owned()
        } else {
            match safe_next(path_and_query) {
                Some(next) if next != "/" => format!("/login?next={}", encode(next)),
                _ => "/login".to_owned(),
            }
        };
        let mut redirect = Redirect::to(&to).into_response();
        for name in [header::RETRY_AFTER, header::SET_COOKIE] {
            for v in parts.headers.get_all(&name) {
                redirect.headers_mut().append(name.clone(), v.clone());
            }
        }
        return redirect;
    }
    let page = ErrorPage {
        status: parts.status.as_u16(),
        title: problem.title,
        code: problem.code,
        detail: problem.detail.unwrap_or_default(),
        request_id: problem.request_id,
    };
    let html = page.render().unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(html))
}

/// Percent-encodes `s` for a query value.
#[must_use]
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
