//! `POST /v1/auth/login`, `GET /v1/auth/session`, `POST /v1/auth/logout`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_core::model::Session;
use bulwark_core::session::{self, LoginInput};
use bulwark_types::{Email, SessionId, UserId};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self as authn, Signed};
use crate::error::{ApiError, Problem};
use crate::extract::{AuditContext, ValidJson};
use crate::state::AppState;

/// Sign-in request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// Sign-in email.
    #[schema(value_type = String, example = "owner@acme.example")]
    pub email: Email,
    /// Password.
    #[schema(value_type = String, format = Password)]
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
}

fn describe(state: &AppState, s: &Session) -> SessionOut {
    SessionOut {
        user: UserOut {
            id: s.user_id,
            email: s.email.clone(),
        },
        session: SessionInfo {
            id: s.id,
            created_at: s.created_at,
            expires_at: s.expires_at,
            idle_expires_at: (s.last_seen_at + state.sessions.idle).min(s.expires_at),
        },
        csrf_token: authn::csrf_token(&state.macs, s),
    }
}

fn with_cookies(mut response: Response, cookies: [String; 2]) -> Response {
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
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
async fn login(
    State(state): State<AppState>,
    AuditContext(context): AuditContext,
    ValidJson(body): ValidJson<LoginIn>,
) -> Result<Response, ApiError> {
    let signed_in = session::login(
        &*state.store,
        &state.hasher,
        &*state.clock,
        state.sessions,
        LoginInput {
            email: body.email,
            password: body.password,
            context,
        },
    )
    .await?;
    tracing::info!(session = %signed_in.session.id, user = %signed_in.session.user_id, "signed in");
    let out = describe(&state, &signed_in.session);
    let max_age = (signed_in.session.expires_at - signed_in.session.created_at).whole_seconds();
    let cookies = authn::login_cookies(&signed_in.token, &out.csrf_token, max_age);
    Ok(with_cookies(Json(out).into_response(), cookies))
}

/// Who is signed in.
#[utoipa::path(get, path = "/v1/auth/session", tag = "auth",
    responses(
        (status = 200, body = SessionOut),
        (status = 401, body = Problem, description = "`unauthenticated`"),
    ))]
async fn current(State(state): State<AppState>, signed: Signed) -> Json<SessionOut> {
    Json(describe(&state, &signed.session))
}

/// Signs out: the session is revoked server-side and the cookies are cleared.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = Problem, description = "`unauthenticated`"),
        (status = 403, body = Problem, description = "`csrf_failed`, `cross_site_request`"),
    ))]
async fn logout(State(state): State<AppState>, signed: Signed) -> Result<Response, ApiError> {
    session::end(
        &*state.store,
        &*state.clock,
        &signed.session,
        "logout",
        signed.context,
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
        .routes(routes!(logout))
}
