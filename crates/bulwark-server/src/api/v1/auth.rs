//! `POST /v1/auth/login`, `GET /v1/auth/session`, `POST /v1/auth/logout`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_core::model::Session;
use bulwark_core::session::{self, LoginInput};
use bulwark_types::{Email, OrgId, Role, SessionId, UserId};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::v1::mfa::PasswordIn;
use crate::auth::{self as authn, Signed};
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::{AuditContext, ValidJson, ValidQuery};
use crate::state::AppState;

/// Sign-in request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// Sign-in email.
    #[schema(value_type = String, example = "owner@acme.example", format = Email, max_length = 254)]
    pub email: Email,
    /// Password.
    #[schema(value_type = String, format = Password, max_length = 256)]
    pub password: SecretString,
}

/// The signed-in user and session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionOut {
    /// The user.
    pub user: UserOut,
    /// The session (its token is only ever in the cookie).
    pub session: SessionInfo,
    /// Echo this in `X-CSRF-Token` on every state-changing request (also in the
    /// `__Host-bulwark_csrf` cookie).
    pub csrf_token: String,
}

/// A user.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserOut {
    /// `usr_…`
    #[schema(value_type = String)]
    pub id: UserId,
    /// Email.
    #[schema(value_type = String)]
    pub email: Email,
}

/// A session's public facts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// `ses_…`
    #[schema(value_type = String)]
    pub id: SessionId,
    /// Sign-in time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it ends at the latest, whatever the activity.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// When it ends without further requests.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub idle_expires_at: OffsetDateTime,
    /// `active`, or `mfa_pending` when the second factor is still owed (POST it to
    /// `/v1/auth/mfa/verify`).
    pub stage: String,
    /// When this session passed a second factor; absent for a password-only session.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub mfa_at: Option<OffsetDateTime>,
    /// Client address at sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Client user agent at sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// When the last request was seen (to the minute).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
}

/// A session as listed to its user.
pub fn session_info(state: &AppState, s: &Session) -> SessionInfo {
    SessionInfo {
        id: s.id,
        created_at: s.created_at,
        expires_at: s.expires_at,
        idle_expires_at: (s.last_seen_at + state.sessions.idle).min(s.expires_at),
        stage: s.stage.as_str().to_owned(),
        mfa_at: s.mfa_at,
        source_ip: s.source_ip.clone(),
        user_agent: s.user_agent.clone(),
        last_seen_at: s.last_seen_at,
    }
}

/// The public facts of a session, with its CSRF token.
pub fn describe(state: &AppState, s: &Session) -> SessionOut {
    SessionOut {
        user: UserOut {
            id: s.user_id,
            email: s.email.clone(),
        },
        session: session_info(state, s),
        csrf_token: authn::csrf_token(&state.macs, s),
    }
}

/// Answers with `signed_in`'s session and the cookies that carry it.
pub fn signed_in_response(state: &AppState, signed_in: &session::SignedIn) -> Response {
    let out = describe(state, &signed_in.session);
    let cookies = cookies_for(signed_in, &out);
    with_cookies(Json(out).into_response(), cookies)
}

/// The cookies that carry a new session.
pub fn cookies_for(signed_in: &session::SignedIn, out: &SessionOut) -> [String; 2] {
    let max_age = (signed_in.session.expires_at - signed_in.session.created_at).whole_seconds();
    authn::login_cookies(&signed_in.token, &out.csrf_token, max_age)
}

/// Adds `cookies` and `Cache-Control: no-store` to `response`.
pub fn with_cookies(mut response: Response, cookies: [String; 2]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Signs in with email and password. An unknown email and a wrong password get the same answer.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginIn,
    responses(
        (status = 200, body = SessionOut, description = "Signed in; sets `__Host-bulwark_session` and `__Host-bulwark_csrf`"),
        (status = 401, body = Problem, description = "`invalid_credentials`"),
        (status = 403, body = Problem, description = "`cross_site_request`: sent by another site"),
        (status = 422, body = Problem, description = "`validation_failed`"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`"),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    _same_site: authn::SameSite,
    AuditContext(context): AuditContext,
    ValidJson(body): ValidJson<LoginIn>,
) -> Result<Response, ApiError> {
    state.limiter.check(context.source_ip.as_deref())?;
    let signed_in = session::login(
        &*state.store,
        &state.hasher,
        &*state.clock,
        state.sessions,
        &state.throttle,
        LoginInput {
            email: body.email,
            password: body.password,
            context,
        },
    )
    .await?;
    tracing::info!(session = %signed_in.session.id, user = %signed_in.session.user_id, stage = signed_in.session.stage.as_str(), "signed in");
    Ok(signed_in_response(&state, &signed_in))
}

/// Optional org to describe the signed-in user's standing in.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// `org_…`: adds the user's role there and whether MFA is required of it.
    #[param(value_type = Option<String>)]
    pub org: Option<OrgId>,
}

/// The user's second factor.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MfaOut {
    /// Whether a TOTP authenticator is enabled.
    pub totp_enrolled: bool,
    /// Unused backup codes.
    pub backup_codes_left: u32,
}

/// The user's standing in one org.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MembershipOut {
    /// `org_…`
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The user's role there.
    #[schema(value_type = String)]
    pub role: Role,
    /// Whether that org requires MFA of this role.
    pub mfa_required: bool,
}

/// Who is signed in, with their MFA state.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CurrentOut {
    /// The user and session.
    #[serde(flatten)]
    pub signed_in: SessionOut,
    /// Their second factor.
    pub mfa: MfaOut,
    /// Their role in the org asked about with `?org=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipOut>,
}

/// Who is signed in: user, session, MFA state, and with `?org=` their role there.
#[utoipa::path(get, path = "/v1/auth/session", tag = "auth", params(SessionQuery),
    responses(
        (status = 200, body = CurrentOut),
        (status = 401, body = Problem, description = "`unauthenticated`, `mfa_pending`"),
        (status = 404, body = Problem, description = "`not_found`: not a member of that org"),
    ))]
pub(crate) async fn current(
    State(state): State<AppState>,
    signed: Signed,
    ValidQuery(query): ValidQuery<SessionQuery>,
) -> Result<Json<CurrentOut>, ApiError> {
    let me = decide::account(&state, &signed)?;
    let (totp_enrolled, backup_codes_left) = state
        .session_cache
        .mfa_state(&*state.store, signed.session.user_id)
        .await
        .map_err(ApiError::from_store)?;
    let membership = match query.org {
        None => None,
        Some(org) => {
            let (member, policy) =
                bulwark_core::account::membership(&*state.store, &me, org).await?;
            Some(MembershipOut {
                org,
                role: member.role,
                mfa_required: policy.mfa_required.applies_to(member.role),
            })
        }
    };
    Ok(Json(CurrentOut {
        signed_in: describe(&state, &signed.session),
        mfa: MfaOut {
            totp_enrolled,
            backup_codes_left,
        },
        membership,
    }))
}

/// One org the signed-in user belongs to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyOrg {
    /// `org_…`
    #[schema(value_type = String)]
    pub id: OrgId,
    /// Its short name.
    #[schema(value_type = String)]
    pub slug: bulwark_types::Slug,
    /// Its display name.
    #[schema(value_type = String)]
    pub name: bulwark_types::OrgName,
    /// The user's role there.
    #[schema(value_type = String)]
    pub role: Role,
}

/// The orgs the signed-in user belongs to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyOrgs {
    /// Oldest membership first.
    pub orgs: Vec<MyOrg>,
}

/// Lists the orgs the signed-in user belongs to, with their role in each: where to go after
/// signing in (`/v1/orgs/{org}/…`).
#[utoipa::path(get, path = "/v1/me/orgs", tag = "auth",
    responses(
        (status = 200, body = MyOrgs),
        (status = 401, body = Problem, description = "`unauthenticated`, `mfa_pending`"),
    ))]
pub(crate) async fn my_orgs(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Json<MyOrgs>, ApiError> {
    let me = decide::account(&state, &signed)?;
    let orgs = bulwark_core::account::orgs(&*state.store, &me)
        .await?
        .into_iter()
        .map(|(org, role)| MyOrg {
            id: org.id,
            slug: org.slug,
            name: org.name,
            role,
        })
        .collect();
    Ok(Json(MyOrgs { orgs }))
}

/// The signed-in user's live sessions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Newest first; `current` marks the one making this request.
    pub sessions: Vec<ListedSession>,
}

/// One session in the list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListedSession {
    /// Its facts.
    #[serde(flatten)]
    pub session: SessionInfo,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// Lists the signed-in user's live sessions (device, address, last seen).
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "auth",
    responses(
        (status = 200, body = SessionList),
        (status = 401, body = Problem, description = "`unauthenticated`"),
    ))]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Json<SessionList>, ApiError> {
    let _me = decide::account(&state, &signed)?;
    let sessions = session::list(
        &*state.store,
        &*state.clock,
        state.sessions,
        signed.session.user_id,
    )
    .await?;
    Ok(Json(SessionList {
        sessions: sessions
            .iter()
            .map(|s| ListedSession {
                session: session_info(&state, s),
                current: s.id == signed.session.id,
            })
            .collect(),
    }))
}

/// Ends one of the signed-in user's sessions (another device, or this one), after the password
/// is checked again under the sign-in throttle.
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}", tag = "auth", request_body = PasswordIn,
    params(("id" = String, Path, description = "`ses_…`")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = Problem, description = "`invalid_credentials` (the password), `unauthenticated`"),
        (status = 404, body = Problem, description = "`not_found`: no such live session of yours"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`: this account or address must wait; the session ends after 5 wrong answers"),
    ))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PasswordIn>,
) -> Result<StatusCode, ApiError> {
    let me = decide::account(&state, &signed)?;
    let id: SessionId = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"))?;
    bulwark_core::mfa::check_password(
        state.reauth(),
        &signed.session,
        body.password,
        &me.context(),
    )
    .await?;
    session::revoke_own(
        &*state.store,
        &*state.clock,
        signed.session.user_id,
        id,
        me.context(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions a request ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionsRevoked {
    /// The number of sessions ended.
    pub sessions_revoked: u64,
}

/// Ends every other session of the signed-in user (this one stays), after the password is
/// checked again under the sign-in throttle.
#[utoipa::path(delete, path = "/v1/auth/sessions", tag = "auth", request_body = PasswordIn,
    responses(
        (status = 200, description = "The other sessions ended", body = SessionsRevoked),
        (status = 401, body = Problem, description = "`invalid_credentials` (the password), `unauthenticated`"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`: this account or address must wait; the session ends after 5 wrong answers"),
    ))]
pub(crate) async fn revoke_other_sessions(
    State(state): State<AppState>,
    signed: Signed,
    ValidJson(body): ValidJson<PasswordIn>,
) -> Result<Json<SessionsRevoked>, ApiError> {
    let me = decide::account(&state, &signed)?;
    bulwark_core::mfa::check_password(
        state.reauth(),
        &signed.session,
        body.password,
        &me.context(),
    )
    .await?;
    let sessions_revoked = session::revoke_others(
        &*state.store,
        &*state.clock,
        signed.session.user_id,
        signed.session.id,
        me.context(),
    )
    .await?;
    Ok(Json(SessionsRevoked { sessions_revoked }))
}

/// Password change request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeIn {
    /// The current password.
    #[schema(value_type = String, format = Password, max_length = 256)]
    pub current_password: SecretString,
    /// The new password.
    #[schema(value_type = String, format = Password, min_length = 15, max_length = 256)]
    pub new_password: SecretString,
}

/// The new session, and how many other sessions ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PasswordChanged {
    /// Sessions revoked (every other one; this one was replaced by the new one).
    pub sessions_revoked: u64,
    /// The new session (new cookies; the old session id no longer works).
    #[serde(flatten)]
    pub session: SessionOut,
}

/// Changes the signed-in user's password. This session is replaced by a new one (new cookies and
/// CSRF token) and every other session of theirs is revoked. The current password is checked
/// under the sign-in throttle; five wrong answers in one session end it.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", request_body = PasswordChangeIn,
    responses(
        (status = 200, body = PasswordChanged, description = "Changed; sets new `__Host-bulwark_session` and `__Host-bulwark_csrf`"),
        (status = 401, body = Problem, description = "`invalid_credentials` (current password), `unauthenticated`"),
        (status = 403, body = Problem, description = "`csrf_failed`, `cross_site_request`"),
        (status = 422, body = Problem, description = "`weak_password`, `validation_failed`"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`"),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    signed: Signed,
    ValidJson(body): ValidJson<PasswordChangeIn>,
) -> Result<Response, ApiError> {
    let me = decide::account(&state, &signed)?;
    let (signed_in, sessions_revoked) = bulwark_core::account::change_password(
        state.reauth(),
        &state.password_policy,
        state.sessions,
        &signed.session,
        body.current_password,
        body.new_password,
        me.context(),
    )
    .await?;
    let session = describe(&state, &signed_in.session);
    let cookies = cookies_for(&signed_in, &session);
    let out = PasswordChanged {
        sessions_revoked,
        session,
    };
    Ok(with_cookies(Json(out).into_response(), cookies))
}

/// Signs out: the session is revoked server-side and the cookies are cleared. Works also in a
/// session that still owes its second factor.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = Problem, description = "`unauthenticated`"),
        (status = 403, body = Problem, description = "`csrf_failed`, `cross_site_request`"),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    authn::AnyStage(signed): authn::AnyStage,
) -> Result<Response, ApiError> {
    let me = decide::account(&state, &signed)?;
    session::end(
        &*state.store,
        &*state.clock,
        &signed.session,
        "logout",
        me.context(),
    )
    .await?;
    tracing::info!(session = %signed.session.id, "signed out");
    let response = (StatusCode::NO_CONTENT, HeaderMap::new()).into_response();
    Ok(with_cookies(response, authn::logout_cookies()))
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(current))
        .routes(routes!(my_orgs))
        .routes(routes!(logout))
        .routes(routes!(list_sessions, revoke_other_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
}
