//! SCIM 2.0 (RFC 7643/7644): the org's identity provider provisions users and groups under
//! `/scim/v2/orgs/{org}/`, with an org API key that carries the `scim` scope (never a
//! session). Requests and answers are `application/scim+json`; every refusal is a SCIM error
//! (`status`, `scimType`). The protocol (filters, patches, schemas) is `bulwark-scim`; what a
//! change does here is `bulwark_core::scim`.

mod discovery;
mod groups;
mod resource;
mod users;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bulwark_authz::Action;
use bulwark_core::CoreError;
use bulwark_core::authz::Authorized;
use bulwark_scim::error::{ScimError, ScimType};
use serde_json::Value;

use crate::auth::Caller;
use crate::decide;
use crate::error::{ApiError, LoggedCause};
use crate::org_route::OrgPath;
use crate::state::AppState;

/// The media type of every SCIM body.
pub const SCIM_JSON: &str = "application/scim+json";

/// The SCIM routes. The walk in `tests/it/scim.rs` (`every_scim_route_is_walked`) lists them
/// too: a route added here is added there.
pub fn router() -> Router<AppState> {
    let base = "/scim/v2/orgs/{org}";
    Router::new()
        .route(
            &format!("{base}/Users"),
            get(users::list).post(users::create),
        )
        .route(
            &format!("{base}/Users/{{id}}"),
            get(users::show)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route(
            &format!("{base}/Groups"),
            get(groups::list).post(groups::create),
        )
        .route(
            &format!("{base}/Groups/{{id}}"),
            get(groups::show)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route(
            &format!("{base}/ServiceProviderConfig"),
            get(discovery::service_provider_config),
        )
        .route(
            &format!("{base}/ResourceTypes"),
            get(discovery::resource_types),
        )
        .route(
            &format!("{base}/ResourceTypes/{{id}}"),
            get(discovery::resource_type),
        )
        .route(&format!("{base}/Schemas"), get(discovery::schemas))
        .route(&format!("{base}/Schemas/{{id}}"), get(discovery::schema))
        .route(&format!("{base}/Users/.search"), post(users::search))
        .route(&format!("{base}/Groups/.search"), post(groups::search))
        .route(
            &format!("{base}/.search"),
            post(discovery::search_everywhere),
        )
        .route(&format!("{base}/{{*rest}}"), any(discovery::nothing_here))
}

/// A refusal, answered as a SCIM error.
pub struct ScimFailure {
    error: ScimError,
    retry_after: Option<u64>,
    cause: Option<String>,
}

impl From<ScimError> for ScimFailure {
    fn from(error: ScimError) -> Self {
        Self {
            error,
            retry_after: None,
            cause: None,
        }
    }
}

impl From<ApiError> for ScimFailure {
    fn from(e: ApiError) -> Self {
        Self {
            error: ScimError::new(e.status().as_u16(), None, e.detail()),
            retry_after: e.retry_after_secs(),
            cause: e.cause().map(str::to_owned),
        }
    }
}

impl From<CoreError> for ScimFailure {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Scim(error) => error.into(),
            CoreError::NotFound => ScimError::new(404, None, "no such resource").into(),
            other => ApiError::from(other).into(),
        }
    }
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut res = reply(status, &self.error.body());
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(cause) = self.cause {
            res.extensions_mut().insert(LoggedCause(cause));
        }
        res
    }
}

/// An error answer under `/scim/` that is not a SCIM error already (a framework 404 or 405, a
/// 408 from the timeout, a 413 from the body limit) becomes one: a SCIM client reads one error
/// format.
pub fn ensure_scim_error(res: Response) -> Response {
    let status = res.status();
    let scim = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(SCIM_JSON.as_bytes()));
    if status.as_u16() < 400 || scim {
        return res;
    }
    let (_, detail) = crate::middleware::observe::generic_problem(status);
    let mut fresh =
        ScimFailure::from(ScimError::new(status.as_u16(), None, detail)).into_response();
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if let Some(cause) = res.extensions().get::<LoggedCause>() {
        fresh.extensions_mut().insert(cause.clone());
    }
    fresh
}

/// A SCIM answer: `value` as `application/scim+json`.
pub fn reply(status: StatusCode, value: &Value) -> Response {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = (status, bytes).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    res
}

/// A resource answer with its `ETag` (and `Location` when created).
fn resource_reply(status: StatusCode, value: &Value, version: i64, location: bool) -> Response {
    let mut res = reply(status, value);
    if let Ok(etag) = HeaderValue::from_str(&resource::etag(version)) {
        res.headers_mut().insert(header::ETAG, etag);
    }
    if location
        && let Some(url) = value.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(url)
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The org's identity provider, allowed `scim.provision` on the route's org with a key; and
/// the base URL of the org's SCIM resources (for `meta.location`).
pub struct Provider {
    /// The decision, for the core services.
    pub authorized: Authorized,
    /// `https://host/scim/v2/orgs/org_…`, no trailing slash.
    pub base: String,
}

impl FromRequestParts<AppState> for Provider {
    type Rejection = ScimFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimFailure> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ScimError::new(
                401,
                None,
                "send the organisation's SCIM key as `Authorization: Bearer bwk_…`",
            )
            .into());
        }
        let caller = Caller::from_request_parts(parts, state).await?;
        let OrgPath(org) = OrgPath::from_request_parts(parts, state).await?;
        let authorized = decide::org_caller(state, &caller, org, Action::ScimProvision).await?;
        let root = match state.config.sso.base() {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                let scheme = if state.config.tls.is_some() || state.config.behind_tls_proxy {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{host}")
            }
        };
        Ok(Self {
            authorized,
            base: format!("{root}/scim/v2/orgs/{org}"),
        })
    }
}

/// A SCIM request body: a JSON object (`application/scim+json` or `application/json`).
pub struct ScimBody(pub Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = ScimFailure;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ScimFailure> {
        let json_like = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                let v = v.split(';').next().unwrap_or_default().trim();
                v.eq_ignore_ascii_case(SCIM_JSON) || v.eq_ignore_ascii_case("application/json")
            });
        if !json_like {
            return Err(ScimError::new(415, None, "send the body as application/scim+json").into());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ScimError::new(413, None, "the body is too large or was cut off"))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ScimError::bad(
                ScimType::InvalidSyntax,
                format!(
                    "the body is not JSON: line {}, column {}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if !value.is_object() {
            return Err(
                ScimError::bad(ScimType::InvalidSyntax, "the body must be a JSON object").into(),
            );
        }
        Ok(Self(value))
    }
}

/// The tools a change needs, from the state.
fn deps(state: &AppState) -> bulwark_core::scim::Deps<'_> {
    bulwark_core::scim::Deps {
        store: &*state.store,
        clock: &*state.clock,
        hasher: &state.hasher,
        licensing: &state.licensing,
    }
}

/// A resource id from the path: one that does not parse is no resource (404).
fn resource_id<T: std::str::FromStr>(raw: &str) -> Result<T, ScimFailure> {
    raw.parse()
        .map_err(|_| ScimError::new(404, None, "no such resource").into())
}

/// The list parameters of a query string.
fn list_query(
    query: Result<
        axum::extract::Query<resource::ListQuery>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<resource::ListQuery, ScimFailure> {
    query.map(|q| q.0).map_err(|_| {
        ScimError::bad(ScimType::InvalidValue, "the query parameters do not parse").into()
    })
}

/// The version an `If-Match` header asks for: `None` without one (or for `*`); a tag that is
/// not one of ours matches nothing (-1).
fn if_match(headers: &HeaderMap) -> Option<i64> {
    let raw = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    if raw == "*" {
        return None;
    }
    Some(resource::parse_etag(raw).unwrap_or(-1))
}

/// Whether an `If-None-Match` header names `version` (a GET may answer 304).
fn not_modified(headers: &HeaderMap, version: i64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|raw| {
            raw.split(',')
                .any(|t| t.trim() == "*" || resource::parse_etag(t.trim()) == Some(version))
        })
}
