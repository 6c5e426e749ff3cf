//! An org's API keys: issued by a signed-in member (the key is shown once), listed with
//! metadata only, rotated with an overlap, revoked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bulwark_authz::Action;
use bulwark_core::apikeys::{self, NewKey};
use bulwark_core::authz::Target;
use bulwark_core::model::ApiKeyRecord;
use bulwark_crypto::ApiKey;
use bulwark_types::{ApiKeyId, UserId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::v1::audit::org_of;
use crate::auth::Signed;
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::ValidJson;
use crate::state::AppState;

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
}

fn key_of(raw: &str) -> Result<ApiKeyId, ApiError> {
    raw.parse().map_err(|_| not_found())
}

/// An API key's metadata (never the key).
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyOut {
    /// `key_…`
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// `live`, `revoked` or `expired`.
    pub state: &'static str,
    /// Who issued it.
    #[schema(value_type = Option<String>)]
    pub created_by: Option<UserId>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    /// When it stops working, if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<time::OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<time::OffsetDateTime>,
    /// The key it replaced.
    #[schema(value_type = Option<String>)]
    pub rotated_from: Option<ApiKeyId>,
    /// Last use, to the minute.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<time::OffsetDateTime>,
}

fn out(state: &AppState, k: ApiKeyRecord) -> KeyOut {
    let now = state.clock.now();
    KeyOut {
        state: if k.revoked_at.is_some() {
            "revoked"
        } else if apikeys::is_live(&k, now) {
            "live"
        } else {
            "expired"
        },
        id: k.id,
        name: k.name,
        scopes: k.scopes,
        created_by: k.created_by,
        created_at: k.created_at,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
        rotated_from: k.rotated_from,
        last_used_at: k.last_used_at,
    }
}

/// A list of keys.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Oldest first.
    pub keys: Vec<KeyOut>,
}

/// A key to issue.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// 1–100 characters.
    pub name: String,
    /// At least one of `audit:read`, `audit:write`, `members:read`, `webhooks:write`.
    pub scopes: Vec<String>,
    /// Days until it stops working (1–1098); absent or `null` for never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A rotation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// Seconds the old key keeps working (0–604800); 0 stops it now.
    #[serde(default)]
    pub overlap_secs: u32,
}

/// A newly issued key: the only time it is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedOut {
    /// `bwk_…`: store it now; Bulwark keeps only a verifier and cannot show it again.
    pub key: String,
    /// Its metadata.
    #[serde(flatten)]
    pub meta: KeyOut,
}

fn issued(state: &AppState, record: ApiKeyRecord, key: &ApiKey) -> Response {
    let body = IssuedOut {
        key: key.expose().to_owned(),
        meta: out(state, record),
    };
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Lists the org's API keys, metadata only (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/keys", tag = "keys",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = KeyList),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    let org = org_of(&org)?;
    decide::org(&state, &signed, org, Action::KeysRead, Target::Org).await?;
    let keys = state
        .store
        .org_read(org)
        .await
        .map_err(ApiError::from_store)?
        .api_keys()
        .await
        .map_err(ApiError::from_store)?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(|k| out(&state, k)).collect(),
    }))
}

/// Issues an API key (owners and admins). The key is in this answer only.
#[utoipa::path(post, path = "/v1/orgs/{org}/keys", tag = "keys", request_body = KeyIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = IssuedOut, description = "Shown once; `Cache-Control: no-store`"),
        (status = 403, body = Problem, description = "`forbidden`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
async fn issue(
    State(state): State<AppState>,
    signed: Signed,
    Path(org): Path<String>,
    ValidJson(body): ValidJson<KeyIn>,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    let authorized = decide::org(&state, &signed, org, Action::KeysWrite, Target::Org).await?;
    let new = NewKey {
        name: body.name,
        scopes: body.scopes,
        expires_in_days: body.expires_in_days,
    };
    let (record, key) = apikeys::issue(
        &*state.store,
        &*state.clock,
        &state.macs.api_keys,
        &authorized,
        &new,
    )
    .await?;
    Ok(issued(&state, record, &key))
}

/// The rotation chain of a key, oldest first: the keys it replaced and those that replaced it
/// (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/keys/{key}/chain", tag = "keys",
    params(("org" = String, Path, description = "`org_…`"), ("key" = String, Path, description = "`key_…`")),
    responses(
        (status = 200, body = KeyList),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
async fn chain(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, key)): Path<(String, String)>,
) -> Result<Json<KeyList>, ApiError> {
    let org = org_of(&org)?;
    let key = key_of(&key)?;
    decide::org(&state, &signed, org, Action::KeysRead, Target::Org).await?;
    let keys = state
        .store
        .org_read(org)
        .await
        .map_err(ApiError::from_store)?
        .api_keys()
        .await
        .map_err(ApiError::from_store)?;
    let chain = apikeys::chain(&keys, key);
    if chain.is_empty() {
        return Err(not_found());
    }
    Ok(Json(KeyList {
        keys: chain.into_iter().map(|k| out(&state, k)).collect(),
    }))
}

/// Replaces a live key with a new one (same name, scopes and expiry); the old one keeps working
/// for `overlap_secs` (owners and admins). The new key is in this answer only.
#[utoipa::path(post, path = "/v1/orgs/{org}/keys/{key}/rotate", tag = "keys", request_body = RotateIn,
    params(("org" = String, Path, description = "`org_…`"), ("key" = String, Path, description = "`key_…`")),
    responses(
        (status = 201, body = IssuedOut, description = "Shown once; `Cache-Control: no-store`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`invalid_state`: revoked or expired"),
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
async fn rotate(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, key)): Path<(String, String)>,
    ValidJson(body): ValidJson<RotateIn>,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    let id = key_of(&key)?;
    let authorized = decide::org(&state, &signed, org, Action::KeysWrite, Target::Org).await?;
    let (record, key) = apikeys::rotate(
        &*state.store,
        &*state.clock,
        &state.macs.api_keys,
        &authorized,
        id,
        body.overlap_secs,
    )
    .await?;
    Ok(issued(&state, record, &key))
}

/// Revokes a key (owners and admins): refused from the next request on, on every replica.
#[utoipa::path(delete, path = "/v1/orgs/{org}/keys/{key}", tag = "keys",
    params(("org" = String, Path, description = "`org_…`"), ("key" = String, Path, description = "`key_…`")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = Problem, description = "`not_found`: no such live key"),
    ))]
async fn revoke(
    State(state): State<AppState>,
    signed: Signed,
    Path((org, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = org_of(&org)?;
    let id = key_of(&key)?;
    let authorized = decide::org(&state, &signed, org, Action::KeysWrite, Target::Org).await?;
    apikeys::revoke(&*state.store, &*state.clock, &authorized, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, issue))
        .routes(routes!(chain))
        .routes(routes!(rotate))
        .routes(routes!(revoke))
}
