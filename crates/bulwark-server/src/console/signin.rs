//! Signing in and out: `/login` (password), `/login/mfa` (TOTP or backup code), `/logout`, and
//! `/` and `/orgs`, which lead to an org. The same core calls, throttle, limiter and cookies as
//! `/v1/auth/*`; the only difference is that answers are pages and redirects.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use bulwark_core::model::SessionStage;
use secrecy::SecretString;
use serde::Deserialize;

use crate::api::v1::auth::{self as auth_api, with_cookies};
use crate::api::v1::mfa as mfa_api;
use crate::auth::{self as authn, AnyStage, PendingMfa, Signed};
use crate::console::Routes;
use crate::console::errors::safe_next;
use crate::console::page::{self, Chrome, LoginPage, OrgLink, PageForm};
use crate::decide;
use crate::error::ApiError;
use crate::extract::{AuditContext, ValidJson};
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new()
        .at("/", get(|| async { page::see_other("/orgs") }))
        .at("/login", get(login_page).post(login))
        .at("/login/mfa", get(mfa_page).post(mfa))
        .at("/login/sso", get(sso))
        .at("/logout", post(logout))
        .at("/orgs", get(orgs))
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    done: Option<String>,
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    page::html(&LoginPage {
        next: q
            .next
            .as_deref()
            .and_then(safe_next)
            .unwrap_or_default()
            .to_owned(),
        email: String::new(),
        error: "",
        notice: q.done.as_deref().map(page::notice_text).unwrap_or_default(),
        resume_action: String::new(),
        kept: Vec::new(),
    })
}

#[derive(Deserialize)]
struct SsoQuery {
    email: Option<String>,
    next: Option<String>,
}

/// "Sign in with your work email": home-realm discovery through the API's own handler, then
/// to the first connection's start (its `return_to` the page asked for).
async fn sso(State(state): State<AppState>, Query(q): Query<SsoQuery>) -> Response {
    let next = q
        .next
        .as_deref()
        .and_then(safe_next)
        .unwrap_or("/orgs")
        .to_owned();
    let email = q.email.unwrap_or_default();
    let found = match email.parse() {
        Ok(email) => crate::api::v1::sso::discover(
            State(state),
            crate::extract::ValidQuery(crate::api::v1::sso::DiscoverQuery { email }),
        )
        .await
        .ok(),
        Err(_) => None,
    };
    match found.and_then(|f| f.0.connections.into_iter().next()) {
        Some(c) => page::see_other(&format!(
            "/v1/sso/{}/{}/start?return_to={}",
            c.protocol,
            c.id,
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        )),
        None => page::html(&LoginPage {
            next,
            email,
            error: "No single sign-on is set up for this email address: sign in with your password.",
            notice: "",
            resume_action: String::new(),
            kept: Vec::new(),
        }),
    }
}

/// Fields of the sign-in form; `keep.*` fields carry a form whose session had ended.
struct LoginForm {
    email: String,
    password: SecretString,
    next: String,
    resume: Resume,
}

/// A form kept across a sign-in.
#[derive(Default)]
struct Resume {
    action: String,
    kept: Vec<(String, String)>,
}

impl Resume {
    fn from_fields(fields: &mut Vec<(String, String)>) -> Self {
        let action = take(fields, "resume_action")
            .as_deref()
            .and_then(safe_next)
            .unwrap_or_default()
            .to_owned();
        let kept = fields
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("keep.").map(|k| (k.to_owned(), v.clone())))
            .filter(|(k, _)| k != "_csrf")
            .take(50)
            .collect();
        Self { action, kept }
    }
}

fn take(fields: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let at = fields.iter().position(|(k, _)| k == name)?;
    Some(fields.remove(at).1)
}

/// Parses the sign-in form by hand: the kept fields have names not known in advance.
fn login_form(
    PageForm(mut fields): PageForm<Vec<(String, String)>>,
) -> Result<LoginForm, ApiError> {
    let duplicated = ["email", "password", "next", "resume_action"]
        .iter()
        .any(|n| fields.iter().filter(|(k, _)| k == n).count() > 1);
    if duplicated {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_form",
            "the form is not valid: a field appears twice",
        ));
    }
    let missing = |n: &str| ApiError::invalid_field(format!("/{n}"), "is required");
    let email = take(&mut fields, "email").ok_or_else(|| missing("email"))?;
    let password = take(&mut fields, "password").ok_or_else(|| missing("password"))?;
    let next = take(&mut fields, "next").unwrap_or_default();
    Ok(LoginForm {
        email,
        password: SecretString::from(password),
        next,
        resume: Resume::from_fields(&mut fields),
    })
}

fn login_again(form: &LoginForm, error: &'static str) -> LoginPage {
    LoginPage {
        next: safe_next(&form.next).unwrap_or_default().to_owned(),
        email: form.email.chars().take(254).collect(),
        error,
        notice: "",
        resume_action: form.resume.action.clone(),
        kept: form.resume.kept.clone(),
    }
}

/// `POST /login`: the API's sign-in handler (same-site check, limiter, throttle, audit),
/// answered with the next page and the handler's cookies.
async fn login(
    State(state): State<AppState>,
    same_site: authn::SameSite,
    context: AuditContext,
    form: PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let form = login_form(form)?;
    let body = serde_json::json!({
        "email": form.email,
        "password": secrecy::ExposeSecret::expose_secret(&form.password),
    });
    let Ok(body) = crate::extract::parse(&serde_json::to_vec(&body).unwrap_or_default()) else {
        return Ok(page::html_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &login_again(&form, "Enter a valid email address."),
        ));
    };
    let res = match auth_api::login(State(state), same_site, context, ValidJson(body)).await {
        Ok(res) => res,
        Err(e) if e.code() == "invalid_credentials" => {
            return Ok(page::html_status(
                StatusCode::UNAUTHORIZED,
                &login_again(&form, "The email or password is not right."),
            ));
        }
        Err(e) => return Err(e),
    };
    let (signed_in, cookies) = signed_in_of(res).await?;
    let page = if signed_in.mfa_pending {
        page::html(&MfaPage {
            csrf: signed_in.csrf,
            next: safe_next(&form.next).unwrap_or_default().to_owned(),
            error: "",
            resume_action: form.resume.action.clone(),
            kept: form.resume.kept.clone(),
        })
    } else {
        after_sign_in(&form.next, form.resume, &signed_in.csrf)
    };
    Ok(with_set_cookies(page, &cookies))
}

/// What a sign-in answer of the API says the page needs.
struct SignedInAnswer {
    csrf: String,
    mfa_pending: bool,
}

/// Reads a sign-in answer of the API (`SessionOut`): the CSRF token, the stage and the cookies.
async fn signed_in_of(res: Response) -> Result<(SignedInAnswer, HeaderMap), ApiError> {
    let cookies = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::internal(format!("reading the sign-in answer: {e}")))?;
    let out: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("the sign-in answer is not JSON: {e}")))?;
    let csrf = out
        .get("csrf_token")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| ApiError::internal("the sign-in answer has no CSRF token"))?
        .to_owned();
    let mfa_pending = out
        .pointer("/session/stage")
        .and_then(serde_json::Value::as_str)
        == Some(SessionStage::MfaPending.as_str());
    Ok((SignedInAnswer { csrf, mfa_pending }, cookies))
}

/// `page` with the `Set-Cookie` headers of `from` and `Cache-Control: no-store`.
fn with_set_cookies(mut page: Response, from: &HeaderMap) -> Response {
    for v in from.get_all(header::SET_COOKIE) {
        page.headers_mut().append(header::SET_COOKIE, v.clone());
    }
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

/// Where a completed sign-in goes: the kept form, `next`, or the org list.
fn after_sign_in(next: &str, resume: Resume, csrf: &str) -> Response {
    if !resume.action.is_empty() {
        return page::html(&ResumePage {
            action: resume.action,
            kept: resume.kept,
            csrf: csrf.to_owned(),
        });
    }
    page::see_other(safe_next(next).unwrap_or("/orgs"))
}

/// The form offered again after signing in.
#[derive(Template)]
#[template(path = "resume.html")]
struct ResumePage {
    action: String,
    kept: Vec<(String, String)>,
    csrf: String,
}

/// The second-factor step.
#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    csrf: String,
    next: String,
    error: &'static str,
    resume_action: String,
    kept: Vec<(String, String)>,
}

async fn mfa_page(
    State(state): State<AppState>,
    PendingMfa(signed): PendingMfa,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    decide::account(&state, &signed)?;
    Ok(page::html(&MfaPage {
        csrf: authn::csrf_token(&state.macs, &signed.session),
        next: q
            .next
            .as_deref()
            .and_then(safe_next)
            .unwrap_or_default()
            .to_owned(),
        error: "",
        resume_action: String::new(),
        kept: Vec::new(),
    }))
}

/// `POST /login/mfa`: the API's second-step handler.
async fn mfa(
    State(state): State<AppState>,
    pending: PendingMfa,
    PageForm(mut fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let csrf = authn::csrf_token(&state.macs, &pending.0.session);
    let code = take(&mut fields, "code").unwrap_or_default();
    let next = take(&mut fields, "next").unwrap_or_default();
    let resume = Resume::from_fields(&mut fields);
    let again = |error| MfaPage {
        csrf: csrf.clone(),
        next: safe_next(&next).unwrap_or_default().to_owned(),
        error,
        resume_action: resume.action.clone(),
        kept: resume.kept.clone(),
    };
    let body = serde_json::to_vec(&serde_json::json!({ "code": code })).unwrap_or_default();
    let body = crate::extract::parse(&body)?;
    let res = match mfa_api::verify(State(state), pending, ValidJson(body)).await {
        Ok(res) => res,
        Err(e) if matches!(e.code(), "invalid_code" | "validation_failed") => {
            let status = e.status();
            return Ok(page::html_status(
                status,
                &again("That code is not right. Try the current code, or a backup code."),
            ));
        }
        Err(e) => return Err(e),
    };
    let (signed_in, cookies) = signed_in_of(res).await?;
    Ok(with_set_cookies(
        after_sign_in(&next, resume, &signed_in.csrf),
        &cookies,
    ))
}

/// `POST /logout`: also from a session that still owes its second factor.
async fn logout(
    State(state): State<AppState>,
    AnyStage(signed): AnyStage,
) -> Result<Response, ApiError> {
    let me = decide::account(&state, &signed)?;
    bulwark_core::session::end(
        &*state.store,
        &*state.clock,
        &signed.session,
        "logout",
        me.context(),
    )
    .await?;
    Ok(with_cookies(
        page::see_other("/login?done=signed_out"),
        authn::logout_cookies(),
    ))
}

/// The user's orgs.
#[derive(Template)]
#[template(path = "orgs.html")]
struct OrgsPage {
    chrome: Chrome,
}

impl OrgsPage {
    fn orgs(&self) -> &[OrgLink] {
        &self.chrome.orgs
    }
}

/// `GET /orgs`: straight to the only org, else the list.
async fn orgs(State(state): State<AppState>, signed: Signed) -> Result<Response, ApiError> {
    let chrome = Chrome::new(&state, &signed, None, "orgs").await?;
    if let [only] = chrome.orgs.as_slice() {
        return Ok(page::see_other(&format!("/orgs/{}", only.id)));
    }
    Ok(page::html(&OrgsPage { chrome }))
}
