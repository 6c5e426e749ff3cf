//! `POST /v1/setup`: create the first org and its owner with the one-time setup token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bulwark_core::setup::{self, SetupAuth, SetupInput};
use bulwark_crypto::SecretToken;
use bulwark_types::{Email, OrgId, OrgName, Slug, UserId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::{AuditContext, ValidJson};
use crate::state::AppState;

/// Setup request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupIn {
    /// The token printed once when the server first started.
    #[schema(value_type = String, example = "bwsetup_…")]
    pub setup_token: SecretString,
    /// The first organisation.
    pub org: SetupOrgIn,
    /// Its owner.
    pub owner: SetupOwnerIn,
}

/// The first organisation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupOrgIn {
    /// Display name, 1–200 characters.
    #[schema(value_type = String, example = "Acme Corp")]
    pub name: OrgName,
    /// URL-safe short name; derived from the name when absent.
    #[schema(value_type = Option<String>, example = "acme")]
    pub slug: Option<Slug>,
}

/// The owner account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupOwnerIn {
    /// Sign-in email.
    #[schema(value_type = String, example = "owner@acme.example", format = Email, max_length = 254)]
    pub email: Email,
    /// 15–256 characters.
    #[schema(value_type = String, format = Password, min_length = 15, max_length = 256)]
    pub password: SecretString,
}

/// What setup created.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SetupOut {
    /// The organisation.
    pub org: OrgOut,
    /// The owner.
    pub owner: OwnerOut,
}

/// An organisation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgOut {
    /// `org_…`
    #[schema(value_type = String)]
    pub id: OrgId,
    /// Short name.
    #[schema(value_type = String)]
    pub slug: Slug,
    /// Display name.
    #[schema(value_type = String)]
    pub name: OrgName,
}

/// The owner.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OwnerOut {
    /// `usr_…`
    #[schema(value_type = String)]
    pub id: UserId,
    /// Email.
    #[schema(value_type = String)]
    pub email: Email,
    /// Always `owner`.
    pub role: &'static str,
}

/// Creates the first organisation and its owner. Works once; afterwards it answers 410.
#[utoipa::path(post, path = "/v1/setup", tag = "setup", request_body = SetupIn,
    responses(
        (status = 201, body = SetupOut),
        (status = 401, body = Problem, description = "`invalid_setup_token`"),
        (status = 410, body = Problem, description = "`setup_completed`"),
        (status = 422, body = Problem, description = "`validation_failed`"),
        (status = 429, body = Problem, description = "`rate_limited`, `too_many_attempts` (with `Retry-After`)"),
        (status = 403, body = Problem, description = "`cross_site_request`: sent by another site"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    _same_site: crate::auth::SameSite,
    AuditContext(context): AuditContext,
    ValidJson(body): ValidJson<SetupIn>,
) -> Result<(StatusCode, Json<SetupOut>), ApiError> {
    state.limiter.check(context.source_ip.as_deref())?;
    let token = SecretToken::from_presented(body.setup_token.expose_secret());
    let input = SetupInput {
        org_name: body.org.name,
        org_slug: body.org.slug,
        owner_email: body.owner.email.clone(),
        owner_password: body.owner.password,
        context,
    };
    let attempt_context = input.context.clone();
    let completed = setup::complete_setup(
        &*state.store,
        &state.hasher,
        &*state.clock,
        SetupAuth::Token(token),
        input,
    );
    let out = crate::auth::token_check(&state, "setup_token", &attempt_context, completed).await?;
    tracing::info!(org = %out.org.id, owner = %out.owner_id, "setup completed");
    state.checkpointer.note(bulwark_core::audit::Log::System, 1);
    Ok((
        StatusCode::CREATED,
        Json(SetupOut {
            org: OrgOut {
                id: out.org.id,
                slug: out.org.slug,
                name: out.org.name,
            },
            owner: OwnerOut {
                id: out.owner_id,
                email: body.owner.email,
                role: "owner",
            },
        }),
    ))
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}
