//! An org's API keys: issued by a signed-in member (the key is shown once), listed with
//! metadata only, rotated with an overlap, revoked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bulwark_authz::Action;
use bulwark_core::apikeys::{self, NewKey};
use bulwark_core::model::ApiKeyRecord;
use bulwark_crypto::ApiKey;
use bulwark_types::{ApiKeyId, TeamId, UserId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::KeyOnly;
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::{ValidJson, ValidQuery};
use crate::org_route::{OrgAuthorized, OrgCaller, OrgPath, act};
use crate::state::AppState;

fn key_of(raw: &str) -> Result<ApiKeyId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
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
    /// The key space, for a key of the host application's customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    /// The customer it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The team it was issued to (`team_…`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub team: Option<TeamId>,
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
        space: k.space,
        owner: k.owner,
        team: k.team,
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
    /// At least one of `audit:read`, `members:read`, `spaces:verify`, `spaces:write`,
    /// `webhooks:send`.
    #[schema(min_items = 1)]
    pub scopes: Vec<String>,
    /// Days until it stops working (1–1098); absent or `null` for never.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1098)]
    pub expires_in_days: Option<u32>,
    /// A team of the org (`team_…`) to issue it to: org policies can then name the team's
    /// keys, and deleting the team revokes them. Absent for an org-wide key.
    #[serde(default)]
    pub team: Option<String>,
}

/// Filters for the key list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct ListQuery {
    /// Only the keys issued to this team (`team_…`).
    pub team: Option<String>,
}

fn team_field(raw: Option<&str>) -> Result<Option<TeamId>, ApiError> {
    raw.map(|t| {
        t.parse().map_err(|_| {
            ApiError::from(bulwark_core::CoreError::Validation {
                field: "/team",
                message: "must be a team id (`team_…`)".into(),
            })
        })
    })
    .transpose()
}

/// A rotation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// Seconds the old key keeps working (0–604800); 0 stops it now.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_secs: u32,
}

/// A newly issued key: the only time it is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedOut {
    /// `bwk_…`: store it now; Bulwark keeps only a verifier and cannot show it again.
    #[schema(value_type = String)]
    pub key: super::ShownOnce,
    /// Its metadata.
    #[serde(flatten)]
    pub meta: KeyOut,
}

fn issued(state: &AppState, record: ApiKeyRecord, key: &ApiKey) -> Response {
    let body = IssuedOut {
        key: super::ShownOnce::new(key.expose()),
        meta: out(state, record),
    };
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Lists the org's API keys, metadata only (owners and admins), optionally only a team's.
#[utoipa::path(get, path = "/v1/orgs/{org}/keys", tag = "keys",
    params(("org" = String, Path, description = "`org_…`"), ListQuery),
    responses(
        (status = 200, body = KeyList),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/team`)"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::KeysRead>,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> Result<Json<KeyList>, ApiError> {
    let team = team_field(query.team.as_deref())?;
    let keys = apikeys::list(&*state.store, &authorized).await?;
    Ok(Json(KeyList {
        keys: keys
            .into_iter()
            .filter(|k| team.is_none() || k.team == team)
            .map(|k| out(&state, k))
            .collect(),
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
pub(crate) async fn issue(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::KeysWrite>,
    ValidJson(body): ValidJson<KeyIn>,
) -> Result<Response, ApiError> {
    let new = NewKey {
        name: body.name,
        scopes: body.scopes,
        expires_in_days: body.expires_in_days,
        team: team_field(body.team.as_deref())?,
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
pub(crate) async fn chain(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::KeysRead>,
    Path((_, key)): Path<(String, String)>,
) -> Result<Json<KeyList>, ApiError> {
    let key = key_of(&key)?;
    let chain = apikeys::chain_of(&*state.store, &authorized, key).await?;
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
pub(crate) async fn rotate(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::KeysWrite>,
    Path((_, key)): Path<(String, String)>,
    ValidJson(body): ValidJson<RotateIn>,
) -> Result<Response, ApiError> {
    let id = key_of(&key)?;
    let (record, key) = apikeys::rotate(
        &*state.store,
        &*state.clock,
        &state.macs.api_keys,
        &authorized,
        id,
        body.overlap_secs,
    )
    .await?;
    state.key_cache.forget(id);
    Ok(issued(&state, record, &key))
}

/// Revokes a key (owners and admins): refused from the next request on, on every replica.
#[utoipa::path(delete, path = "/v1/orgs/{org}/keys/{key}", tag = "keys",
    params(("org" = String, Path, description = "`org_…`"), ("key" = String, Path, description = "`key_…`")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = Problem, description = "`not_found`: no such live key"),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::KeysWrite>,
    Path((_, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = key_of(&key)?;
    apikeys::revoke(&*state.store, &*state.clock, &authorized, id).await?;
    state.key_cache.forget(id);
    Ok(StatusCode::NO_CONTENT)
}

/// A key for one of the host application's customers.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpaceKeyIn {
    /// The customer, as the application names them (1–200 characters).
    pub owner: String,
    /// 1–100 characters.
    pub name: String,
    /// The application's own scopes (each 1–64 of `a-z0-9:._-`, at most 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub scopes: Vec<String>,
    /// Days until it stops working (1–1098); absent for never.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1098)]
    pub expires_in_days: Option<u32>,
}

/// Issues a key in a key space for one of the host application's customers (a person with
/// `keys.write`-level rights, or an API key with scope `spaces:write`). The key is in this
/// answer only; Bulwark keeps a verifier.
#[utoipa::path(post, path = "/v1/orgs/{org}/spaces/{space}/keys", tag = "keys", security(("session" = []), ("api_key" = [])), request_body = SpaceKeyIn,
    params(("org" = String, Path, description = "`org_…`"), ("space" = String, Path, description = "1–63 of `a-z0-9-`", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    responses(
        (status = 201, body = IssuedOut, description = "Shown once; `Cache-Control: no-store`"),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
pub(crate) async fn issue_in_space(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::SpaceKeysWrite>,
    Path((_, space)): Path<(String, String)>,
    ValidJson(body): ValidJson<SpaceKeyIn>,
) -> Result<Response, ApiError> {
    let new = apikeys::SpaceKey {
        space,
        owner: body.owner,
        name: body.name,
        scopes: body.scopes,
        expires_in_days: body.expires_in_days,
    };
    let (record, key) = apikeys::issue_in_space(
        &*state.store,
        &*state.clock,
        &state.macs.api_keys,
        &authorized,
        &new,
    )
    .await?;
    Ok(issued(&state, record, &key))
}

/// Lists the keys of a key space, metadata only.
#[utoipa::path(get, path = "/v1/orgs/{org}/spaces/{space}/keys", tag = "keys", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`"), ("space" = String, Path, description = "1–63 of `a-z0-9-`", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    responses(
        (status = 200, body = KeyList),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 422, body = Problem, description = "`validation_failed`: not a key space name (`/space`)"),
    ))]
pub(crate) async fn list_space(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::SpaceKeysWrite>,
    Path((_, space)): Path<(String, String)>,
) -> Result<Json<KeyList>, ApiError> {
    let keys = apikeys::list_space(&*state.store, &authorized, &space).await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(|k| out(&state, k)).collect(),
    }))
}

/// Revokes a key of a key space.
#[utoipa::path(delete, path = "/v1/orgs/{org}/spaces/{space}/keys/{key}", tag = "keys", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`"), ("space" = String, Path, description = "1–63 of `a-z0-9-`", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("key" = String, Path, description = "`key_…`")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = Problem, description = "`not_found`: no such live key in that space"),
        (status = 422, body = Problem, description = "`validation_failed`: not a key space name (`/space`)"),
    ))]
pub(crate) async fn revoke_in_space(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::SpaceKeysWrite>,
    Path((_, space, key)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = key_of(&key)?;
    apikeys::revoke_in_space(&*state.store, &*state.clock, &authorized, &space, id).await?;
    state.key_cache.forget(id);
    Ok(StatusCode::NO_CONTENT)
}

/// A customer's key to check.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    /// The key as the customer presented it.
    #[schema(value_type = String)]
    pub key: secrecy::SecretString,
}

/// The answer for a customer's key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyOut {
    /// Whether it is a live key of one of this org's key spaces. Nothing says why not.
    pub valid: bool,
    /// `key_…`, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub key_id: Option<ApiKeyId>,
    /// Its key space, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    /// The customer it belongs to, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its scopes, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// When it stops working, if it does.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<time::OffsetDateTime>,
    /// Requests the customer's key has left in its bucket (this check took one), when valid.
    pub rate_limit_remaining: Option<u64>,
    /// Whether the customer's key is over its rate limit (answer them 429), when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<bool>,
    /// Seconds until it may be used again, when rate-limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// Checks a customer's key for the host application (machines only: an API key with scope
/// `spaces:verify`; a session is refused). Answers 200 either way, so the application never
/// stores its customers' keys.
#[utoipa::path(post, path = "/v1/orgs/{org}/keys/verify", tag = "keys", security(("api_key" = [])), request_body = VerifyIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = VerifyOut),
        (status = 401, body = Problem, description = "`api_key_required`, `invalid_api_key`"),
        (status = 403, body = Problem, description = "`forbidden`: the calling key lacks `spaces:verify`"),
    ))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    KeyOnly(caller): KeyOnly,
    OrgPath(org): OrgPath,
    ValidJson(body): ValidJson<VerifyIn>,
) -> Result<Response, ApiError> {
    use secrecy::ExposeSecret as _;
    let authorized = decide::org_caller(&state, &caller, org, Action::SpaceKeysVerify).await?;
    let found = apikeys::verify(
        &*state.store,
        &*state.clock,
        &state.macs.api_keys,
        &state.key_cache,
        &authorized,
        body.key.expose_secret(),
    )
    .await?;
    let out = match found {
        Some(k) => {
            // Each check is a use of the customer's key: it counts against the key's bucket.
            let verdict = state
                .store
                .rate_take(
                    &format!("key:{}", k.id),
                    state.config.rate_limits.per_key(),
                    state.clock.now(),
                )
                .await
                .map_err(ApiError::from_store)?;
            VerifyOut {
                valid: true,
                key_id: Some(k.id),
                space: k.space,
                owner: k.owner,
                scopes: Some(k.scopes),
                expires_at: k.expires_at,
                rate_limit_remaining: Some(verdict.remaining),
                rate_limited: Some(!verdict.allowed),
                retry_after_secs: (!verdict.allowed).then_some(verdict.retry_after_secs),
            }
        }
        None => VerifyOut {
            valid: false,
            key_id: None,
            space: None,
            owner: None,
            scopes: None,
            expires_at: None,
            rate_limit_remaining: None,
            rate_limited: None,
            retry_after_secs: None,
        },
    };
    let mut res = Json(out).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_in_space, list_space))
        .routes(routes!(revoke_in_space))
        .routes(routes!(verify))
        .routes(routes!(list, issue))
        .routes(routes!(chain))
        .routes(routes!(rotate))
        .routes(routes!(revoke))
}
