//! `/.well-known/security.txt` (RFC 9116) and `/v1/openapi.json`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::SecurityTxtConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// How to report a vulnerability in this deployment.
#[utoipa::path(get, path = "/.well-known/security.txt", tag = "meta",
    responses((status = 200, content_type = "text/plain", body = String), (status = 404)))]
async fn security_txt(State(state): State<AppState>) -> Response {
    match &state.security_txt {
        Some(text) => text_response(text, "text/plain; charset=utf-8"),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "no security contact is configured (security_txt.contact)",
        )
        .into_response(),
    }
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, content_type = "application/json")))]
async fn openapi(State(state): State<AppState>) -> Response {
    text_response(&state.openapi_json, "application/json")
}

fn text_response(body: &str, content_type: &'static str) -> Response {
    let mut res = body.to_owned().into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// Renders security.txt from config; `None` without a contact.
#[must_use]
pub fn render_security_txt(c: &SecurityTxtConfig, now: time::OffsetDateTime) -> Option<String> {
    if c.contact.is_empty() {
        return None;
    }
    let mut out = String::new();
    for contact in &c.contact {
        out.push_str(&format!("Contact: {contact}\n"));
    }
    let expires = c.expires.clone().unwrap_or_else(|| {
        let year = now + time::Duration::days(365);
        let year = year.replace_nanosecond(0).unwrap_or(year);
        year.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    });
    out.push_str(&format!("Expires: {expires}\n"));
    if let Some(p) = &c.policy {
        out.push_str(&format!("Policy: {p}\n"));
    }
    if let Some(l) = &c.preferred_languages {
        out.push_str(&format!("Preferred-Languages: {l}\n"));
    }
    Some(out)
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(security_txt))
        .routes(routes!(openapi))
}
