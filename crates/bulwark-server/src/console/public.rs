//! The pages before one is signed in: first-run setup (with the setup token), password reset
//! (ask for a token, then set a new password with it), invitation acceptance and email
//! verification (paste the token from the email: tokens never travel in URLs). Each posts to
//! the `/v1` handler of the same step, under the same same-site check, limiter and throttle.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::api::v1::{recovery, setup};
use crate::auth::SameSite;
use crate::console::Routes;
use crate::console::access::Done;
use crate::console::form::{self, Kind};
use crate::console::page::{self, PageForm};
use crate::error::ApiError;
use crate::extract::{AuditContext, ValidJson};
use crate::state::AppState;

/// Routes that need no decision.
pub const PUBLIC: &[&str] = &["/setup", "/reset", "/reset/new", "/invite", "/verify-email"];

/// The routes.
pub fn router() -> Routes {
    Routes::new()
        .at("/setup", get(|| step(Step::Setup)).post(do_setup))
        .at(
            "/reset",
            get(|| step(Step::ResetRequest)).post(do_reset_request),
        )
        .at("/reset/new", get(|| step(Step::Reset)).post(do_reset))
        .at("/invite", get(|| step(Step::Invite)).post(do_invite))
        .at("/verify-email", get(verify_page).post(do_verify))
}

/// Which form.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// First-run setup.
    Setup,
    /// Ask for a reset token.
    ResetRequest,
    /// Set a new password with the token.
    Reset,
    /// Accept an invitation.
    Invite,
    /// Confirm an email address.
    Verify,
}

#[derive(Template)]
#[template(path = "public.html")]
struct PublicPage {
    step: Step,
    error: String,
    notice: &'static str,
}

async fn step(step: Step) -> Response {
    page::html(&PublicPage {
        step,
        error: String::new(),
        notice: "",
    })
}

async fn verify_page(Query(q): Query<Done>) -> Response {
    page::html(&PublicPage {
        step: Step::Verify,
        error: String::new(),
        notice: q.done.as_deref().map(page::notice_text).unwrap_or_default(),
    })
}

/// The form again with the error, when the mistake is the user's (a wrong or spent token, a
/// weak password, a bad field); otherwise the error page.
fn retry(step: Step, e: ApiError) -> Result<Response, ApiError> {
    if !e.status().is_client_error()
        || matches!(
            e.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::FORBIDDEN
        )
    {
        return Err(e);
    }
    let mut error = format!("Not done: {}", e.detail());
    for f in e.field_errors() {
        error.push_str(&format!(" ({}: {})", f.pointer, f.detail));
    }
    Ok(page::html_status(
        e.status(),
        &PublicPage {
            step,
            error,
            notice: "",
        },
    ))
}

async fn do_setup(
    State(state): State<AppState>,
    same_site: SameSite,
    context: AuditContext,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let flat = |name: &str| form::field(&fields, name).to_owned();
    let body = serde_json::json!({
        "setup_token": flat("setup_token"),
        "org": { "name": flat("org_name") },
        "owner": { "email": flat("email"), "password": flat("password") },
    });
    let body = crate::extract::parse(&serde_json::to_vec(&body).unwrap_or_default())?;
    match setup::create(State(state), same_site, context, ValidJson(body)).await {
        Ok((_, Json(_))) => Ok(page::see_other("/login?done=setup_done")),
        Err(e) if e.code() == "setup_completed" => Err(e),
        Err(e) => retry(Step::Setup, e),
    }
}

async fn do_reset_request(
    State(state): State<AppState>,
    same_site: SameSite,
    context: AuditContext,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("email", Kind::TextKeepEmpty)])?;
    match recovery::request_reset(State(state), same_site, context, ValidJson(body)).await {
        Ok(_) => Ok(page::see_other("/reset/new?done=reset_sent")),
        Err(e) => retry(Step::ResetRequest, e),
    }
}

async fn do_reset(
    State(state): State<AppState>,
    same_site: SameSite,
    context: AuditContext,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(
        &fields,
        &[
            ("token", Kind::TextKeepEmpty),
            ("new_password", Kind::TextKeepEmpty),
        ],
    )?;
    match recovery::reset(State(state), same_site, context, ValidJson(body)).await {
        Ok(_) => Ok(page::see_other("/login?done=password_reset")),
        Err(e) => retry(Step::Reset, e),
    }
}

async fn do_invite(
    State(state): State<AppState>,
    same_site: SameSite,
    context: AuditContext,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(
        &fields,
        &[
            ("token", Kind::TextKeepEmpty),
            ("password", Kind::TextKeepEmpty),
        ],
    )?;
    match recovery::accept(State(state), same_site, context, ValidJson(body)).await {
        Ok(_) => Ok(page::see_other("/login?done=invitation_accepted")),
        Err(e) => retry(Step::Invite, e),
    }
}

async fn do_verify(
    State(state): State<AppState>,
    same_site: SameSite,
    context: AuditContext,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("token", Kind::TextKeepEmpty)])?;
    match recovery::verify_email(State(state), same_site, context, ValidJson(body)).await {
        Ok(_) => Ok(page::see_other("/verify-email?done=email_verified")),
        Err(e) => retry(Step::Verify, e),
    }
}
