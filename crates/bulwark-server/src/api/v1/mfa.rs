//! TOTP enrolment, the second step of sign-in, backup codes, and removing a second factor.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use bulwark_core::mfa;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::v1::auth::{SessionOut, cookies_for, describe, signed_in_response, with_cookies};
use crate::auth::{PendingMfa, Signed};
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::ValidJson;
use crate::state::AppState;

/// A password, to re-authenticate before changing what protects the account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordIn {
    /// The current password.
    #[schema(value_type = String, format = Password, max_length = 256)]
    pub password: SecretString,
}

/// A one-time code.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeIn {
    /// A 6-digit TOTP code, or (where accepted) a backup code `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`.
    #[schema(value_type = String)]
    pub code: SecretString,
}

/// A started enrolment, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnrollmentOut {
    /// The secret in base32, to type into an authenticator by hand.
    #[schema(value_type = String)]
    pub secret: super::ShownOnce,
    /// The `otpauth://totp/…` URI (it holds the secret).
    #[schema(value_type = String)]
    pub otpauth_uri: super::ShownOnce,
    /// The URI as an SVG QR code.
    #[schema(value_type = String)]
    pub qr_svg: super::ShownOnce,
}

/// Backup codes, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BackupCodesOut {
    /// Each works once in place of a TOTP code.
    #[schema(value_type = Vec<String>)]
    pub backup_codes: Vec<super::ShownOnce>,
}

fn code_text(code: &SecretString) -> Result<&str, ApiError> {
    let text = code.expose_secret();
    if text.is_empty() || text.len() > 64 {
        return Err(ApiError::invalid_field(
            "/code",
            "must be a 6-digit code or a backup code",
        ));
    }
    Ok(text)
}

/// Starts TOTP enrolment (re-checking the password). The authenticator counts only once a code
/// from it is confirmed.
#[utoipa::path(post, path = "/v1/auth/mfa/totp", tag = "mfa", request_body = PasswordIn,
    responses(
        (status = 200, body = EnrollmentOut, description = "Shown once; `Cache-Control: no-store`"),
        (status = 401, body = Problem, description = "`invalid_credentials`, `unauthenticated`"),
        (status = 409, body = Problem, description = "`invalid_state`: already enrolled"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`: this account or address must wait; the session ends after 5 wrong answers"),
    ))]
pub(crate) async fn start(
    State(state): State<AppState>,
    signed: Signed,
    ValidJson(body): ValidJson<PasswordIn>,
) -> Result<Response, ApiError> {
    let me = decide::account(&state, &signed)?;
    let e = mfa::start_enrollment(
        state.reauth(),
        &state.sealer,
        &signed.session,
        body.password,
        &me.context(),
    )
    .await?;
    let out = EnrollmentOut {
        secret: super::ShownOnce::new(e.secret_base32.to_string()),
        otpauth_uri: super::ShownOnce::new(e.otpauth_uri.to_string()),
        qr_svg: super::ShownOnce::new(e.qr_svg.to_string()),
    };
    Ok(no_store(Json(out)))
}

fn no_store(body: impl axum::response::IntoResponse) -> Response {
    let mut res = body.into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}

/// Confirmed enrolment: a new session (the old one ended) and the backup codes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConfirmedOut {
    /// Each works once in place of a TOTP code; shown only now.
    #[schema(value_type = Vec<String>)]
    pub backup_codes: Vec<super::ShownOnce>,
    /// The new session.
    #[serde(flatten)]
    pub session: SessionOut,
}

/// Confirms enrolment with a first code. The session is replaced by a new one (new cookie)
/// that counts as having passed MFA, and ten backup codes are shown once.
#[utoipa::path(post, path = "/v1/auth/mfa/totp/confirm", tag = "mfa", request_body = CodeIn,
    responses(
        (status = 200, body = ConfirmedOut),
        (status = 401, body = Problem, description = "`invalid_code`, `unauthenticated`"),
        (status = 409, body = Problem, description = "`invalid_state`"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`: this account or address must wait; the session ends after 5 wrong answers"),
    ))]
pub(crate) async fn confirm(
    State(state): State<AppState>,
    signed: Signed,
    ValidJson(body): ValidJson<CodeIn>,
) -> Result<Response, ApiError> {
    let me = decide::account(&state, &signed)?;
    let (signed_in, codes) = mfa::confirm_enrollment(
        state.reauth(),
        &state.sealer,
        state.sessions,
        &signed.session,
        code_text(&body.code)?,
        me.context(),
    )
    .await?;
    let session = describe(&state, &signed_in.session);
    let cookies = cookies_for(&signed_in, &session);
    let out = ConfirmedOut {
        backup_codes: codes
            .0
            .iter()
            .map(|c| super::ShownOnce::new(c.to_string()))
            .collect(),
        session,
    };
    Ok(with_cookies(Json(out).into_response(), cookies))
}

/// Completes a sign-in that owes its second factor, with a TOTP code or a backup code. The
/// pending session is replaced by a new active one (new cookies).
#[utoipa::path(post, path = "/v1/auth/mfa/verify", tag = "mfa", request_body = CodeIn,
    responses(
        (status = 200, body = crate::api::v1::auth::SessionOut),
        (status = 401, body = Problem, description = "`invalid_code`, `unauthenticated`"),
        (status = 409, body = Problem, description = "`invalid_state`: nothing pending"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`"),
    ))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    PendingMfa(signed): PendingMfa,
    ValidJson(body): ValidJson<CodeIn>,
) -> Result<Response, ApiError> {
    let me = decide::account(&state, &signed)?;
    state.limiter.check(signed.context.source_ip.as_deref())?;
    let signed_in = mfa::verify_login(
        &*state.store,
        &*state.clock,
        &state.sealer,
        state.sessions,
        &state.throttle,
        &signed.session,
        code_text(&body.code)?,
        me.context(),
    )
    .await?;
    Ok(signed_in_response(&state, &signed_in))
}

/// Replaces the backup codes (needs a current TOTP code); the new ones are shown once.
#[utoipa::path(post, path = "/v1/auth/mfa/backup-codes", tag = "mfa", request_body = CodeIn,
    responses(
        (status = 200, body = BackupCodesOut),
        (status = 401, body = Problem, description = "`invalid_code`, `unauthenticated`"),
        (status = 409, body = Problem, description = "`invalid_state`: no authenticator"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`: this account or address must wait; the session ends after 5 wrong answers"),
    ))]
pub(crate) async fn regenerate(
    State(state): State<AppState>,
    signed: Signed,
    ValidJson(body): ValidJson<CodeIn>,
) -> Result<Response, ApiError> {
    let me = decide::account(&state, &signed)?;
    let codes = mfa::regenerate_backup_codes(
        state.reauth(),
        &state.sealer,
        &signed.session,
        code_text(&body.code)?,
        me.context(),
    )
    .await?;
    Ok(no_store(Json(BackupCodesOut {
        backup_codes: codes
            .0
            .iter()
            .map(|c| super::ShownOnce::new(c.to_string()))
            .collect(),
    })))
}

/// Removes the signed-in user's authenticator and backup codes (re-checking the password).
/// Every session of theirs ends, this one included.
#[utoipa::path(delete, path = "/v1/auth/mfa/totp", tag = "mfa", request_body = PasswordIn,
    responses(
        (status = 204, description = "Removed; signed out everywhere"),
        (status = 401, body = Problem, description = "`invalid_credentials`, `unauthenticated`"),
        (status = 429, body = Problem, description = "`too_many_attempts`, with `Retry-After`: this account or address must wait; the session ends after 5 wrong answers"),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    signed: Signed,
    ValidJson(body): ValidJson<PasswordIn>,
) -> Result<StatusCode, ApiError> {
    let me = decide::account(&state, &signed)?;
    mfa::check_password(
        state.reauth(),
        &signed.session,
        body.password,
        &me.context(),
    )
    .await?;
    mfa::reset(
        &*state.store,
        &*state.clock,
        signed.session.user_id,
        "self",
        me.context(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start, remove))
        .routes(routes!(confirm))
        .routes(routes!(verify))
        .routes(routes!(regenerate))
}
