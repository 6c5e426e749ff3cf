//! What the service provider offers, as a SCIM client discovers it: `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas`. Every flag is true of the server (a client falls back to
//! worse behaviour when one is missing, and breaks when one lies).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use bulwark_scim::error::ScimError;
use bulwark_scim::schema;
use serde_json::{Value, json};

use super::resource::{MAX_RESULTS, list_response};
use super::{Provider, ScimFailure, reply};

pub(super) async fn service_provider_config(provider: Provider) -> Response {
    let body = json!({
        "schemas": [schema::SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer API key",
            "description": "An organisation API key with the `scim` scope, sent as `Authorization: Bearer bwk_…`",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", provider.base),
        },
    });
    reply(StatusCode::OK, &body)
}

fn not_found() -> ScimFailure {
    ScimError::new(404, None, "no such resource").into()
}

fn listed(items: Vec<Value>) -> Response {
    let total = u64::try_from(items.len()).unwrap_or(u64::MAX);
    reply(StatusCode::OK, &list_response(total, 0, items))
}

pub(super) async fn resource_types(provider: Provider) -> Response {
    listed(schema::resource_types_document(&provider.base))
}

pub(super) async fn resource_type(
    provider: Provider,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimFailure> {
    schema::resource_types_document(&provider.base)
        .into_iter()
        .find(|t| t["id"].as_str() == Some(id.as_str()))
        .map(|t| reply(StatusCode::OK, &t))
        .ok_or_else(not_found)
}

pub(super) async fn schemas(provider: Provider) -> Response {
    listed(schema::schemas_document(&provider.base))
}

pub(super) async fn schema(
    provider: Provider,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimFailure> {
    schema::schemas_document(&provider.base)
        .into_iter()
        .find(|s| s["id"].as_str() == Some(id.as_str()))
        .map(|s| reply(StatusCode::OK, &s))
        .ok_or_else(not_found)
}

/// `POST /.search` across resource types: not offered (search `/Users/.search` or
/// `/Groups/.search`).
pub(super) async fn search_everywhere(_provider: Provider) -> ScimFailure {
    ScimError::new(
        501,
        None,
        "searching across resource types is not offered: POST /Users/.search or /Groups/.search",
    )
    .into()
}

/// Any other path under an org's SCIM base.
pub(super) async fn nothing_here() -> ScimFailure {
    not_found()
}
