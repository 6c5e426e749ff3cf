//! Who is calling: the session cookie, CSRF on state-changing requests, and org access.
//!
//! A request authenticated by the `__Host-bulwark_session` cookie that is not `GET`, `HEAD` or
//! `OPTIONS` must also carry `X-CSRF-Token`: an HMAC of the session id under a key derived from
//! the workspace seed, so a token is bound to one session and cannot be forged or reused with
//! another. The browser's `Sec-Fetch-Site` and `Origin` headers are checked as well: a
//! cross-site request is refused even with a token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_audit::event::{Actor, ActorKind, Context};
use bulwark_core::model::{Session, SessionStage};
use bulwark_core::session::{self, Refusal};
use bulwark_crypto::SecretToken;

use crate::error::ApiError;
use crate::extract::AuditContext;
use crate::state::{AppState, Macs};

/// The session cookie: `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`.
pub const SESSION_COOKIE: &str = "__Host-bulwark_session";
/// The CSRF cookie, readable by the console's script (not `HttpOnly`).
pub const CSRF_COOKIE: &str = "__Host-bulwark_csrf";
/// The header that must echo the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request, if present exactly once.
#[must_use]
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v);
    match (found.next(), found.next()) {
        // Two cookies of one name means someone planted one: trust neither.
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// The CSRF token of a session.
#[must_use]
pub fn csrf_token(macs: &Macs, session: &Session) -> String {
    URL_SAFE_NO_PAD.encode(macs.csrf.tag(session.id.to_string().as_bytes()))
}

fn csrf_ok(macs: &Macs, session: &Session, presented: Option<&HeaderValue>) -> bool {
    presented
        .and_then(|v| v.to_str().ok())
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .is_some_and(|tag| macs.csrf.verify(session.id.to_string().as_bytes(), &tag))
}

/// Whether the browser says this request came from another site (or another origin of this
/// site).
fn cross_site(headers: &HeaderMap, allowed: &[String]) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    match fetch_site {
        Some("cross-site") => return true,
        // The browser vouches that a page of this very origin sent it (no page can set this
        // header). Its `Origin` is then `null`: under `Referrer-Policy: no-referrer`, which every
        // response here carries, a browser sends `Origin: null` with a page's own form posts.
        Some("same-origin") => return false,
        _ => {}
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let same_host = origin
        .split_once("://")
        .is_some_and(|(_, rest)| Some(rest) == host);
    !(same_host || allowed.iter().any(|a| a == origin))
}

fn cross_site_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_site_request",
        "this request came from another site and was refused",
    )
}

/// Refuses a request that a browser says came from another site (`Sec-Fetch-Site: cross-site`,
/// or an `Origin` that is neither this host nor a configured CORS origin). For the routes that
/// change something without a session, so carry no CSRF token: sign-in (login CSRF would sign
/// the victim into the attacker's account), sign-up, invitations, password reset, setup.
pub struct SameSite;

impl FromRequestParts<AppState> for SameSite {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if cross_site(&parts.headers, &state.config.http.cors_allowed_origins) {
            return Err(cross_site_refused());
        }
        Ok(Self)
    }
}

/// `Set-Cookie` values that sign the client in.
#[must_use]
pub fn login_cookies(token: &SecretToken, csrf: &str, max_age_secs: i64) -> [String; 2] {
    [
        format!(
            "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}",
            token.expose()
        ),
        format!("{CSRF_COOKIE}={csrf}; Path=/; Secure; SameSite=Lax; Max-Age={max_age_secs}"),
    ]
}

/// `Set-Cookie` values that clear both cookies.
#[must_use]
pub fn logout_cookies() -> [String; 2] {
    [
        format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"),
        format!("{CSRF_COOKIE}=; Path=/; Secure; SameSite=Lax; Max-Age=0"),
    ]
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "sign in first: no valid session",
    )
}

/// A request made in a live session (and, if it changes state, with a valid CSRF token).
#[derive(Clone)]
pub struct Signed {
    /// The session.
    pub session: Session,
    /// The request's audit context, with the signed-in user as actor.
    pub context: Context,
}

/// A request in a session that still owes its second factor (the only thing such a session
/// can do is complete it). CSRF and origin checks apply as for [`Signed`].
pub struct PendingMfa(pub Signed);

async fn from_cookie(parts: &mut Parts, state: &AppState) -> Result<Signed, ApiError> {
    let token = cookie(&parts.headers, SESSION_COOKIE)
        .filter(|t| t.starts_with(session::TOKEN_PREFIX) && t.len() < 100)
        .map(SecretToken::from_presented)
        .ok_or_else(unauthenticated)?;
    let session = match session::authenticate(
        &*state.store,
        &*state.clock,
        state.sessions,
        &state.session_cache,
        &token,
    )
    .await
    .map_err(ApiError::from_store)?
    {
        Ok(s) => s,
        Err(refusal) => {
            let reason = match refusal {
                Refusal::Unknown => "unknown",
                Refusal::Revoked => "revoked",
                Refusal::Idle => "idle",
                Refusal::Expired => "expired",
                Refusal::Disabled => "user_disabled",
            };
            tracing::info!(reason, "session refused");
            return Err(unauthenticated());
        }
    };
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        if cross_site(&parts.headers, &state.config.http.cors_allowed_origins) {
            return Err(cross_site_refused());
        }
        if !csrf_ok(&state.macs, &session, parts.headers.get(CSRF_HEADER)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "send this session's CSRF token in the X-CSRF-Token header",
            ));
        }
    }
    let AuditContext(mut context) = AuditContext::from_request_parts(parts, state)
        .await
        .unwrap_or_else(|never| match never {});
    context.actor = Actor {
        kind: ActorKind::User,
        id: Some(session.user_id.to_string()),
    };
    Ok(Signed { session, context })
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let signed = from_cookie(parts, state).await?;
        match signed.session.stage {
            SessionStage::Active => Ok(signed),
            SessionStage::MfaPending => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_pending",
                "complete sign-in first: send your TOTP or backup code to /v1/auth/mfa/verify",
            )),
        }
    }
}

/// A request in any live session, whether or not it still owes its second factor: only for
/// signing out, which a user who gives up on MFA must be able to do too. CSRF and origin checks
/// apply as for [`Signed`].
pub struct AnyStage(pub Signed);

impl FromRequestParts<AppState> for AnyStage {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        from_cookie(parts, state).await.map(Self)
    }
}

impl FromRequestParts<AppState> for PendingMfa {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let signed = from_cookie(parts, state).await?;
        match signed.session.stage {
            SessionStage::MfaPending => Ok(Self(signed)),
            SessionStage::Active => Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_state",
                "this session has no second factor pending",
            )),
        }
    }
}

/// Who is calling an API route that machines may call too: a signed-in person (session
/// cookie, CSRF on changes) or an API key (`Authorization: Bearer bwk_…`, no cookies). A
/// request carrying both is refused; a key never creates a session.
pub enum Caller {
    /// A person in a session.
    Person(Signed),
    /// A machine with an org's API key.
    Key {
        /// The key, its org and scopes.
        caller: bulwark_core::apikeys::KeyCaller,
        /// The request's audit context, with the key as actor.
        context: Context,
    },
}

/// Runs `check`, a check of a token presented without a session (invitation, email
/// verification, password reset, setup), under the sign-in throttle of the caller's address:
/// refused with 429 while the address must wait, a wrong token charged to it.
///
/// # Errors
/// `too_many_attempts` (429), and whatever `check` answers.
pub async fn token_check<T>(
    state: &AppState,
    method: &'static str,
    context: &bulwark_audit::event::Context,
    check: impl Future<Output = Result<T, bulwark_core::CoreError>>,
) -> Result<T, ApiError> {
    let attempt = bulwark_core::throttle::Attempt {
        keys: bulwark_core::throttle::Keys::address(context.source_ip.as_deref()),
        session: None,
        method,
        subject: "unknown".into(),
        context: context.clone(),
    };
    Ok(bulwark_core::throttle::guard(
        &*state.store,
        &*state.clock,
        &state.throttle,
        attempt,
        check,
    )
    .await?)
}

fn invalid_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "the API key is not valid (malformed, unknown, expired or revoked)",
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION).cloned() else {
            return Signed::from_request_parts(parts, state)
                .await
                .map(Self::Person);
        };
        if parts.headers.contains_key(header::COOKIE)
            && cookie(&parts.headers, SESSION_COOKIE).is_some()
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ambiguous_credentials",
                "send either a session cookie or an API key, not both",
            ));
        }
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(invalid_key)?;
        let AuditContext(mut context) = AuditContext::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        let caller = checked_key(state, context.source_ip.as_deref(), token).await?;
        let limits = &state.config.rate_limits;
        let now = state.clock.now();
        let take = |key: String, bucket| async move {
            state
                .store
                .rate_take(&key, bucket, now)
                .await
                .map_err(ApiError::from_store)
        };
        let mut verdict = take(format!("key:{}", caller.key), limits.per_key()).await?;
        let mut limiter = "api_key";
        if verdict.allowed {
            verdict = verdict.and(take(format!("org:{}", caller.org), limits.per_org()).await?);
            limiter = "org";
        }
        crate::rate_verdict::note(verdict);
        if !verdict.allowed {
            bulwark_core::metrics::metrics()
                .rate_limited
                .inc(&[limiter]);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this API key, or its organisation, made too many requests; retry later",
            )
            .retry_after(verdict.retry_after_secs));
        }
        context.actor = Actor {
            kind: ActorKind::ApiKey,
            id: Some(caller.key.to_string()),
        };
        Ok(Self::Key { caller, context })
    }
}

/// Checks an API key under the sign-in throttle of the caller's address: an address that
/// presented a wrong key lately is asked to wait while its counter says so (before the key is
/// looked at), and every wrong key is charged to it.
async fn checked_key(
    state: &AppState,
    address: Option<&str>,
    token: &str,
) -> Result<bulwark_core::apikeys::KeyCaller, ApiError> {
    let keys = bulwark_core::throttle::Keys::address(address);
    if state.key_failures.failed_recently(address)
        && let Some(wait) = state
            .throttle
            .retry_after(&*state.store, &keys, state.clock.now())
            .await
            .map_err(ApiError::from_store)?
    {
        return Err(bulwark_core::session::throttled(wait).into());
    }
    let outcome = bulwark_core::apikeys::authenticate(
        &*state.store,
        &*state.clock,
        &state.macs.api_keys,
        &state.key_cache,
        token,
    )
    .await?;
    match outcome {
        Ok(caller) => Ok(caller),
        Err(refusal) => {
            tracing::info!(reason = refusal.as_str(), "api key refused");
            state.key_failures.note(address);
            state
                .throttle
                .record_failure(&*state.store, &keys, state.clock.now())
                .await
                .map_err(ApiError::from_store)?;
            Err(invalid_key())
        }
    }
}

/// A machine-only route's caller: an API key, never a session (a request without
/// `Authorization: Bearer` is refused even with a valid session cookie).
pub struct KeyOnly(pub Caller);

impl FromRequestParts<AppState> for KeyOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "api_key_required",
                "this route is for machines: send an API key in `Authorization: Bearer`",
            ));
        }
        Caller::from_request_parts(parts, state).await.map(Self)
    }
}
