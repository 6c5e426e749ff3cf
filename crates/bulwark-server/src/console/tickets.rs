//! Tickets: push an audit event to GitHub Issues or Jira with a vault credential, after a
//! preview of exactly what will be sent (the `/v1/…/tickets/preview` handler's answer: URL,
//! headers with the credential named but never shown, and the body). The push form carries the
//! same fields, so what is pushed is what was previewed.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;

use crate::api::v1::tickets::{self as api, PreviewOut, PushedOut};
use crate::console::Routes;
use crate::console::form::{self, Kind};
use crate::console::page::{self, Chrome, PageForm};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::org_route::{OrgAuthorized, act};
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new()
        .at("/orgs/{org}/tickets/preview", post(preview))
        .at("/orgs/{org}/tickets/push", post(push))
}

/// The ticket form's fields, as the API takes them.
const FIELDS: &[(&str, Kind)] = &[
    ("tracker", Kind::Text),
    ("api_url", Kind::Text),
    ("repository", Kind::Text),
    ("site", Kind::Text),
    ("project", Kind::Text),
    ("issue_type", Kind::Text),
    ("credential_id", Kind::Text),
    ("audit_seq", Kind::Number),
    ("fields", Kind::List),
    ("title", Kind::Text),
];

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    chrome: Chrome,
    preview: Option<PreviewOut>,
    body: String,
    pushed: Option<PushedOut>,
    kept: Vec<(String, String)>,
    seq: String,
}

/// The form's fields to send again with the push (the CSRF token is the page's own).
fn kept(fields: &[(String, String)]) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|(k, _)| FIELDS.iter().any(|(name, _)| name == k))
        .cloned()
        .collect()
}

async fn preview(
    State(state): State<AppState>,
    pusher: OrgAuthorized<act::TicketsPush>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (org, signed) = (pusher.org, pusher.signed.clone());
    let body = form::body(&fields, FIELDS)?;
    let Json(preview) = api::preview(State(state.clone()), pusher, ValidJson(body)).await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "audit").await?;
    let body = serde_json::to_string_pretty(&preview.body).unwrap_or_default();
    Ok(page::html(&TicketPage {
        chrome,
        preview: Some(preview),
        body,
        pushed: None,
        kept: kept(&fields),
        seq: form::field(&fields, "audit_seq").to_owned(),
    }))
}

async fn push(
    State(state): State<AppState>,
    pusher: OrgAuthorized<act::TicketsPush>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (org, signed) = (pusher.org, pusher.signed.clone());
    let body = form::body(&fields, FIELDS)?;
    let (_, Json(pushed)) = api::push(State(state.clone()), pusher, ValidJson(body)).await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "audit").await?;
    Ok(page::html(&TicketPage {
        chrome,
        preview: None,
        body: String::new(),
        pushed: Some(pushed),
        kept: Vec::new(),
        seq: form::field(&fields, "audit_seq").to_owned(),
    }))
}
