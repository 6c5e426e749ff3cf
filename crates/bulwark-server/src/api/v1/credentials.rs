//! An org's credential vault: integration credentials that Bulwark uses but nobody reads back.
//! Create, list and show (metadata only), replace the value, delete. No answer ever carries a
//! value, not even the one just sent.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bulwark_core::model::Credential;
use bulwark_core::vault::{self, NewCredential};
use bulwark_types::{CredentialId, UserId};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::error::{ApiError, Problem};
use crate::extract::ValidJson;
use crate::org_route::{OrgAuthorized, act};
use crate::state::AppState;

fn credential_of(raw: &str) -> Result<CredentialId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"))
}

/// A credential's metadata (never its value).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CredentialOut {
    /// `cred_…`
    #[schema(value_type = String)]
    pub id: CredentialId,
    /// Its name, unique in the org.
    pub name: String,
    /// `bearer_token`, `basic_password`, `webhook_secret`, `smtp_password` or `generic`.
    pub kind: String,
    /// URL prefixes Bulwark may send it to.
    pub destinations: Vec<String>,
    /// The vault key version its data key is wrapped under.
    pub key_version: u32,
    /// Who created it.
    #[schema(value_type = Option<String>)]
    pub created_by: Option<UserId>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    /// When its value was last set.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: time::OffsetDateTime,
    /// When Bulwark last used it, to the minute.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<time::OffsetDateTime>,
}

impl From<Credential> for CredentialOut {
    fn from(c: Credential) -> Self {
        Self {
            id: c.id,
            name: c.name,
            kind: c.kind,
            destinations: c.destinations,
            key_version: c.sealed.key_version,
            created_by: c.created_by,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_used_at: c.last_used_at,
        }
    }
}

/// The org's credentials.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CredentialList {
    /// By name.
    pub credentials: Vec<CredentialOut>,
}

/// A credential to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialIn {
    /// 1–100 characters, unique in the org.
    pub name: String,
    /// `bearer_token`, `basic_password`, `webhook_secret`, `smtp_password` or `generic`.
    pub kind: String,
    /// The secret, 1 byte to 64 KiB of UTF-8. Sealed before it is stored; never shown again.
    #[schema(value_type = String, format = Password, min_length = 1, max_length = 65536)]
    pub value: SecretString,
    /// 1–20 `https://` or `http://` URL prefixes (no user info, query or fragment) that Bulwark
    /// may send it to.
    #[schema(min_items = 1, max_items = 20)]
    pub destinations: Vec<String>,
}

/// A new value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueIn {
    /// The secret, 1 byte to 64 KiB of UTF-8.
    #[schema(value_type = String, format = Password, min_length = 1, max_length = 65536)]
    pub value: SecretString,
}

fn bytes(value: &SecretString) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(value.expose_secret().as_bytes().to_vec())
}

/// Lists the org's credentials, metadata only (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/credentials", tag = "vault",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = CredentialList),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::CredentialsRead>,
) -> Result<Json<CredentialList>, ApiError> {
    let all = vault::list(&*state.store, &authorized).await?;
    Ok(Json(CredentialList {
        credentials: all.into_iter().map(CredentialOut::from).collect(),
    }))
}

/// Adds a credential (owners and admins). The answer is its metadata: the value is not echoed.
#[utoipa::path(post, path = "/v1/orgs/{org}/credentials", tag = "vault", request_body = CredentialIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = CredentialOut),
        (status = 403, body = Problem, description = "`forbidden`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`conflict`: the name is taken"),
        (status = 422, body = Problem, description = "`validation_failed` (`/name`, `/kind`, `/value`, `/destinations`)"),
        (status = 503, body = Problem, description = "`key_provider_unavailable`"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::CredentialsWrite>,
    ValidJson(body): ValidJson<CredentialIn>,
) -> Result<(StatusCode, Json<CredentialOut>), ApiError> {
    let new = NewCredential {
        value: bytes(&body.value),
        name: body.name,
        kind: body.kind,
        destinations: body.destinations,
    };
    let created = vault::create(
        &*state.store,
        &*state.clock,
        &*state.vault,
        &authorized,
        new,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// One credential's metadata (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/credentials/{credential}", tag = "vault",
    params(("org" = String, Path, description = "`org_…`"), ("credential" = String, Path, description = "`cred_…`")),
    responses(
        (status = 200, body = CredentialOut),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::CredentialsRead>,
    Path((_, credential)): Path<(String, String)>,
) -> Result<Json<CredentialOut>, ApiError> {
    let id = credential_of(&credential)?;
    Ok(Json(
        vault::get(&*state.store, &authorized, id).await?.into(),
    ))
}

/// Replaces a credential's value (owners and admins): sealed under a fresh data key and the
/// active key version.
#[utoipa::path(put, path = "/v1/orgs/{org}/credentials/{credential}/value", tag = "vault", request_body = ValueIn,
    params(("org" = String, Path, description = "`org_…`"), ("credential" = String, Path, description = "`cred_…`")),
    responses(
        (status = 200, body = CredentialOut),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`invalid_state`: a webhook endpoint's signing secret or a single sign-on connection's secret (replace it through the endpoint or the connection)"),
        (status = 422, body = Problem, description = "`validation_failed` (`/value`)"),
        (status = 503, body = Problem, description = "`key_provider_unavailable`"),
    ))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::CredentialsWrite>,
    Path((_, credential)): Path<(String, String)>,
    ValidJson(body): ValidJson<ValueIn>,
) -> Result<Json<CredentialOut>, ApiError> {
    let id = credential_of(&credential)?;
    let replaced = vault::replace(
        &*state.store,
        &*state.clock,
        &*state.vault,
        &authorized,
        id,
        bytes(&body.value),
    )
    .await?;
    Ok(Json(replaced.into()))
}

/// Deletes a credential and its data key (owners and admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/credentials/{credential}", tag = "vault",
    params(("org" = String, Path, description = "`org_…`"), ("credential" = String, Path, description = "`cred_…`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`invalid_state`: a webhook endpoint's signing secret or a single sign-on connection's secret (delete it through the endpoint or the connection)"),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::CredentialsWrite>,
    Path((_, credential)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = credential_of(&credential)?;
    vault::delete(&*state.store, &*state.clock, &authorized, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The vault's routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, delete))
        .routes(routes!(replace))
}
