//! My account: sessions (list, revoke), the second factor (enrol with a QR code rendered on the
//! server as SVG, backup codes shown once, new codes, removal) and the password. The `/v1`
//! handlers do each step; their cookies (a new session after MFA or a password change) are
//! passed on.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret as _, SecretString};

use crate::api::v1::auth::{self as auth_api, ListedSession, SessionQuery};
use crate::api::v1::mfa as mfa_api;
use crate::auth::Signed;
use crate::console::Routes;
use crate::console::access::Done;
use crate::console::form::{self, Kind};
use crate::console::page::{self, Chrome, PageForm, When};
use crate::console::secret;
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidQuery};
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new()
        .at("/account", get(show))
        .at("/account/sessions/{id}/revoke", post(revoke_session))
        .at("/account/sessions/revoke-others", post(revoke_others))
        .at("/account/password", post(change_password))
        .at("/account/mfa/start", post(mfa_start))
        .at("/account/mfa/confirm", post(mfa_confirm))
        .at("/account/mfa/backup-codes", post(mfa_codes))
        .at("/account/mfa/remove", post(mfa_remove))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    sessions: Vec<ListedSession>,
    totp: bool,
    codes_left: u32,
    error: String,
}

impl AccountPage {
    fn when(&self, t: &time::OffsetDateTime) -> When {
        When(*t)
    }
}

async fn account_page(
    state: &AppState,
    signed: Signed,
    chrome: Chrome,
    error: String,
) -> Result<AccountPage, ApiError> {
    let Json(current) = auth_api::current(
        State(state.clone()),
        signed.clone(),
        ValidQuery(SessionQuery { org: None }),
    )
    .await?;
    let Json(list) = auth_api::list_sessions(State(state.clone()), signed).await?;
    Ok(AccountPage {
        chrome,
        sessions: list.sessions,
        totp: current.mfa.totp_enrolled,
        codes_left: current.mfa.backup_codes_left,
        error,
    })
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::new(&state, &signed, None, "account")
        .await?
        .with_notice(q.done.as_deref());
    Ok(page::html(
        &account_page(&state, signed, chrome, String::new()).await?,
    ))
}

/// Shows the account page again with `e` when it is the user's mistake (a wrong password or
/// code, a weak new password); otherwise the error page.
async fn again(state: &AppState, signed: Signed, e: ApiError) -> Result<Response, ApiError> {
    let mine = matches!(
        e.code(),
        "invalid_credentials"
            | "invalid_code"
            | "weak_password"
            | "validation_failed"
            | "invalid_state"
    );
    if !mine {
        return Err(e);
    }
    let chrome = Chrome::new(state, &signed, None, "account").await?;
    let mut text = format!("Not done: {}", e.detail());
    for f in e.field_errors() {
        text.push_str(&format!(" {}", f.detail));
    }
    let status = e.status();
    Ok(page::html_status(
        status,
        &account_page(state, signed, chrome, text).await?,
    ))
}

async fn revoke_session(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("password", Kind::TextKeepEmpty)])?;
    match auth_api::revoke_session(
        State(state.clone()),
        signed.clone(),
        Path(id),
        ValidJson(body),
    )
    .await
    {
        Ok(_) => Ok(page::see_other("/account?done=session_revoked")),
        Err(e) => again(&state, signed, e).await,
    }
}

async fn revoke_others(
    State(state): State<AppState>,
    signed: Signed,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("password", Kind::TextKeepEmpty)])?;
    match auth_api::revoke_other_sessions(State(state.clone()), signed.clone(), ValidJson(body))
        .await
    {
        Ok(_) => Ok(page::see_other("/account?done=sessions_revoked")),
        Err(e) => again(&state, signed, e).await,
    }
}

/// `res`'s `Set-Cookie` headers added to `to`.
fn carry_cookies(from: &Response, mut to: Response) -> Response {
    for v in from.headers().get_all(header::SET_COOKIE) {
        to.headers_mut().append(header::SET_COOKIE, v.clone());
    }
    to.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    to
}

async fn change_password(
    State(state): State<AppState>,
    signed: Signed,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(
        &fields,
        &[
            ("current_password", Kind::TextKeepEmpty),
            ("new_password", Kind::TextKeepEmpty),
        ],
    )?;
    match auth_api::change_password(State(state.clone()), signed.clone(), ValidJson(body)).await {
        Ok(res) => Ok(carry_cookies(
            &res,
            page::see_other("/account?done=password_changed"),
        )),
        Err(e) => again(&state, signed, e).await,
    }
}

#[derive(Template)]
#[template(path = "mfa_enrol.html")]
struct EnrolPage<'a> {
    chrome: Chrome,
    secret: &'a str,
    qr_data_uri: String,
}

async fn mfa_start(
    State(state): State<AppState>,
    signed: Signed,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("password", Kind::TextKeepEmpty)])?;
    let res = match mfa_api::start(State(state.clone()), signed.clone(), ValidJson(body)).await {
        Ok(res) => res,
        Err(e) => return again(&state, signed, e).await,
    };
    let (svg, rest) = secret::read(res, "qr_svg").await?;
    let base32 = SecretString::from(secret::text(&rest, "secret"));
    let chrome = Chrome::new(&state, &signed, None, "account").await?;
    let mut res = page::html(&EnrolPage {
        chrome,
        secret: base32.expose_secret(),
        qr_data_uri: format!(
            "data:image/svg+xml;base64,{}",
            STANDARD.encode(svg.expose_secret())
        ),
    });
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

#[derive(Template)]
#[template(path = "backup_codes.html")]
struct CodesPage {
    chrome: Chrome,
    codes: Vec<String>,
}

/// Shows the backup codes of an API answer once (with the new session's CSRF token when the
/// answer replaced the session).
async fn codes_page(
    state: &AppState,
    signed: &Signed,
    res: Response,
) -> Result<Response, ApiError> {
    let cookies = res.headers().clone();
    let csrf = new_csrf(&res);
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::internal(format!("reading an API answer: {e}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("an API answer is not JSON: {e}")))?;
    let codes = value
        .get("backup_codes")
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut chrome = Chrome::new(state, signed, None, "account").await?;
    if let Some(csrf) = csrf {
        chrome.csrf = csrf;
    }
    let mut out = page::html(&CodesPage { chrome, codes });
    for v in cookies.get_all(header::SET_COOKIE) {
        out.headers_mut().append(header::SET_COOKIE, v.clone());
    }
    out.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(out)
}

async fn mfa_confirm(
    State(state): State<AppState>,
    signed: Signed,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("code", Kind::TextKeepEmpty)])?;
    match mfa_api::confirm(State(state.clone()), signed.clone(), ValidJson(body)).await {
        Ok(res) => codes_page(&state, &signed, res).await,
        Err(e) => again(&state, signed, e).await,
    }
}

/// The CSRF token a response's cookies set, if any.
fn new_csrf(res: &Response) -> Option<String> {
    let prefix = format!("{}=", crate::auth::CSRF_COOKIE);
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(prefix.as_str()))
        .and_then(|c| c.split(';').next())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

async fn mfa_codes(
    State(state): State<AppState>,
    signed: Signed,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("code", Kind::TextKeepEmpty)])?;
    match mfa_api::regenerate(State(state.clone()), signed.clone(), ValidJson(body)).await {
        Ok(res) => codes_page(&state, &signed, res).await,
        Err(e) => again(&state, signed, e).await,
    }
}

async fn mfa_remove(
    State(state): State<AppState>,
    signed: Signed,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    crate::console::access::confirmed(&fields)?;
    let body = form::body(&fields, &[("password", Kind::TextKeepEmpty)])?;
    match mfa_api::remove(State(state.clone()), signed.clone(), ValidJson(body)).await {
        Ok(_) => Ok(page::see_other("/login?done=mfa_removed")),
        Err(e) => again(&state, signed, e).await,
    }
}
