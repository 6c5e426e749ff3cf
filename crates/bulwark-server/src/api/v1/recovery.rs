//! Routes that work without a session: accepting an invitation, verifying an email address,
//! and resetting a forgotten password. Each is limited per client address.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bulwark_crypto::SecretToken;
use bulwark_types::{Email, OrgId, UserId};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self as authn, Signed};
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::{AuditContext, ValidJson};
use crate::state::AppState;

fn token(text: &SecretString, prefix: &str) -> Result<SecretToken, ApiError> {
    let t = text.expose_secret();
    // Anything that is not shaped like our token is simply not valid: same answer as a used one.
    if t.len() > 100 || !t.starts_with(prefix) {
        return Err(ApiError::from(bulwark_core::CoreError::InvalidCode));
    }
    Ok(SecretToken::from_presented(t))
}

/// Accepting an invitation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptIn {
    /// The token from the invitation email.
    #[schema(value_type = String)]
    pub token: SecretString,
    /// A new password for a new account, or the current password of an existing one.
    #[schema(value_type = String, format = Password, min_length = 15, max_length = 256)]
    pub password: SecretString,
}

/// The membership an invitation created.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AcceptedOut {
    /// The org joined.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The user (new or existing).
    #[schema(value_type = String)]
    pub user: UserId,
}

/// Accepts an invitation: creates the account (email counts as verified) or adds the existing
/// one, and the membership. Sign in afterwards.
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "auth", request_body = AcceptIn,
    responses(
        (status = 200, body = AcceptedOut),
        (status = 401, body = Problem, description = "`invalid_code` (unknown, used, withdrawn or expired token), `invalid_credentials`"),
        (status = 409, body = Problem, description = "`conflict`: already a member"),
        (status = 422, body = Problem, description = "`weak_password`"),
        (status = 429, body = Problem, description = "`rate_limited`, `too_many_attempts` (with `Retry-After`)"),
        (status = 403, body = Problem, description = "`cross_site_request`: sent by another site"),
    ))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    _same_site: authn::SameSite,
    AuditContext(context): AuditContext,
    ValidJson(body): ValidJson<AcceptIn>,
) -> Result<Json<AcceptedOut>, ApiError> {
    state.limiter.check(context.source_ip.as_deref())?;
    let token = token(&body.token, bulwark_core::invite::TOKEN_PREFIX)?;
    let accepted = bulwark_core::invite::accept(
        state.reauth(),
        &state.password_policy,
        &state.licensing,
        bulwark_core::invite::Acceptance {
            token,
            password: body.password,
            context: context.clone(),
        },
    );
    let (org, user) = authn::token_check(&state, "invitation", &context, accepted).await?;
    Ok(Json(AcceptedOut { org, user }))
}

/// Asks for a verification email for the signed-in user's address. The mail worker sends it,
/// at most once per `mail.token_cooldown_secs` and `mail.token_daily_limit` times a day.
#[utoipa::path(post, path = "/v1/auth/email/verification", tag = "auth",
    responses(
        (status = 202, description = "Queued; sent unless the account's cooldown or daily limit holds it back"),
        (status = 409, body = Problem, description = "`invalid_state`: already verified"),
    ))]
pub(crate) async fn send_verification(
    State(state): State<AppState>,
    AuditContext(context): AuditContext,
    signed: Signed,
) -> Result<StatusCode, ApiError> {
    let _me = decide::account(&state, &signed)?;
    bulwark_core::recovery::send_verification(
        &*state.store,
        &*state.clock,
        signed.session.user_id,
        &context,
    )
    .await?;
    state.mail_wake.notify_one();
    Ok(StatusCode::ACCEPTED)
}

/// A token from an email.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    /// The token.
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// Verifies an email address with the emailed token (no session needed).
#[utoipa::path(post, path = "/v1/auth/email/verify", tag = "auth", request_body = TokenIn,
    responses(
        (status = 204, description = "Verified"),
        (status = 401, body = Problem, description = "`invalid_code`"),
        (status = 429, body = Problem, description = "`rate_limited`, `too_many_attempts` (with `Retry-After`)"),
        (status = 403, body = Problem, description = "`cross_site_request`: sent by another site"),
    ))]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    _same_site: authn::SameSite,
    AuditContext(context): AuditContext,
    ValidJson(body): ValidJson<TokenIn>,
) -> Result<StatusCode, ApiError> {
    state.limiter.check(context.source_ip.as_deref())?;
    let t = token(&body.token, bulwark_core::recovery::VERIFY_TOKEN_PREFIX)?;
    let verified =
        bulwark_core::recovery::verify_email(&*state.store, &*state.clock, &t, context.clone());
    authn::token_check(&state, "email_token", &context, verified).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password reset request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestIn {
    /// The account's email.
    #[schema(value_type = String, format = Email, max_length = 254)]
    pub email: Email,
}

/// Asks for a password reset email. The request is only queued, so the answer — status, body,
/// headers and time — is the same whether or not the address has an account; the mail worker
/// sends the token at most once per `mail.token_cooldown_secs` and `mail.token_daily_limit`
/// times a day per account.
#[utoipa::path(post, path = "/v1/auth/password/reset-request", tag = "auth", request_body = ResetRequestIn,
    responses(
        (status = 202, description = "If the address has an account, a reset token is on its way (unless one was sent within the cooldown)"),
        (status = 429, body = Problem, description = "`rate_limited`, `too_many_attempts` (with `Retry-After`)"),
        (status = 403, body = Problem, description = "`cross_site_request`: sent by another site"),
    ))]
pub(crate) async fn request_reset(
    State(state): State<AppState>,
    _same_site: authn::SameSite,
    AuditContext(context): AuditContext,
    ValidJson(body): ValidJson<ResetRequestIn>,
) -> Result<StatusCode, ApiError> {
    state.limiter.check(context.source_ip.as_deref())?;
    bulwark_core::recovery::request_reset(&*state.store, &*state.clock, body.email, &context)
        .await?;
    state.mail_wake.notify_one();
    Ok(StatusCode::ACCEPTED)
}

/// A password reset.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetIn {
    /// The token from the reset email.
    #[schema(value_type = String)]
    pub token: SecretString,
    /// The new password.
    #[schema(value_type = String, format = Password, min_length = 15, max_length = 256)]
    pub new_password: SecretString,
}

/// Sets a new password with a reset token; every session of the account ends.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "auth", request_body = ResetIn,
    responses(
        (status = 204, description = "Password set; sign in with it"),
        (status = 401, body = Problem, description = "`invalid_code`"),
        (status = 422, body = Problem, description = "`weak_password`"),
        (status = 429, body = Problem, description = "`rate_limited`, `too_many_attempts` (with `Retry-After`)"),
        (status = 403, body = Problem, description = "`cross_site_request`: sent by another site"),
    ))]
pub(crate) async fn reset(
    State(state): State<AppState>,
    _same_site: authn::SameSite,
    AuditContext(context): AuditContext,
    ValidJson(body): ValidJson<ResetIn>,
) -> Result<StatusCode, ApiError> {
    state.limiter.check(context.source_ip.as_deref())?;
    let t = token(&body.token, bulwark_core::recovery::RESET_TOKEN_PREFIX)?;
    let reset = bulwark_core::recovery::reset_password(
        &*state.store,
        &state.hasher,
        &*state.clock,
        &state.password_policy,
        &t,
        body.new_password,
        context.clone(),
    );
    authn::token_check(&state, "reset_token", &context, reset).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A self-service sign-up.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupIn {
    /// The new account's email.
    #[schema(value_type = String, format = Email, max_length = 254)]
    pub email: Email,
    /// Its password.
    #[schema(value_type = String, format = Password, min_length = 15, max_length = 256)]
    pub password: SecretString,
}

/// Creates an account (when `signup.enabled`): the same answer whether or not the address has
/// one; a verification email follows (or, for an existing account, a note to its owner).
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth", request_body = SignupIn,
    responses(
        (status = 202, description = "Check your email"),
        (status = 403, body = Problem, description = "`signup_disabled`, `cross_site_request`"),
        (status = 422, body = Problem, description = "`weak_password`"),
        (status = 429, body = Problem, description = "`rate_limited`, `too_many_attempts` (with `Retry-After`)"),
    ))]
pub(crate) async fn signup(
    State(state): State<AppState>,
    _same_site: authn::SameSite,
    AuditContext(context): AuditContext,
    ValidJson(body): ValidJson<SignupIn>,
) -> Result<StatusCode, ApiError> {
    state.limiter.check(context.source_ip.as_deref())?;
    if !state.config.signup.enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signup_disabled",
            "self-service sign-up is off on this deployment; ask an administrator for an invitation",
        ));
    }
    bulwark_core::recovery::sign_up(
        state.store.clone(),
        &state.hasher,
        state.clock.clone(),
        state.mailer.clone(),
        &state.password_policy,
        body.email,
        body.password,
        context,
    )
    .await?;
    state.mail_wake.notify_one();
    Ok(StatusCode::ACCEPTED)
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(accept))
        .routes(routes!(send_verification))
        .routes(routes!(verify_email))
        .routes(routes!(request_reset))
        .routes(routes!(reset))
}
