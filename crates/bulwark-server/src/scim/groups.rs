//! `/Groups`: teams the org's identity provider manages. List, show, create, replace, patch
//! (members added and removed one by one, or replaced wholesale) and delete.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bulwark_core::CoreError;
use bulwark_core::scim;
use bulwark_scim::error::{ScimError, ScimType};
use bulwark_scim::patch::PatchRequest;
use bulwark_scim::schema::{self, Resource};
use bulwark_types::TeamId;
use serde_json::Value;

use super::resource::{self, ListQuery};
use super::{
    Provider, ScimBody, ScimFailure, if_match, not_modified, reply, resource_id, resource_reply,
};
use crate::state::AppState;

/// Whether the answer leaves `members` out (so they need not be read).
fn without_members(attributes: Option<&str>, excluded: Option<&str>) -> bool {
    let names = |list: Option<&str>| {
        list.unwrap_or_default()
            .split(',')
            .map(|a| {
                a.trim()
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            })
            .collect::<Vec<_>>()
    };
    let asked = names(attributes);
    (attributes.is_some()
        && !asked
            .iter()
            .any(|a| a == "members" || a.starts_with("members.")))
        || names(excluded).iter().any(|a| a == "members")
}

pub(super) async fn list(
    State(state): State<AppState>,
    provider: Provider,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimFailure> {
    let query = super::list_query(query)?;
    listed(&state, &provider, &query).await
}

/// `POST /….search`: a list whose parameters are in the body.
pub(super) async fn search(
    State(state): State<AppState>,
    provider: Provider,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimFailure> {
    let query = resource::SearchRequest::into_query(body)?;
    listed(&state, &provider, &query).await
}

async fn listed(
    state: &AppState,
    provider: &Provider,
    query: &ListQuery,
) -> Result<Response, ScimFailure> {
    let (offset, count) = query.page()?;
    let filter = query.parsed_filter()?;
    let (attributes, excluded) = (
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
    );
    let members = filter.is_some() || !without_members(attributes, excluded);
    let groups = scim::groups(&*state.store, &provider.authorized, members).await?;
    let all = groups
        .iter()
        .map(|g| resource::group_json(g, &provider.base, members));
    let (total, mut page) = resource::filtered_page(
        Resource::Group,
        all,
        query,
        filter.as_ref(),
        (offset, count),
    )?;
    for r in &mut page {
        bulwark_scim::project::project(Resource::Group, r, attributes, excluded)?;
    }
    Ok(reply(
        StatusCode::OK,
        &resource::list_response(total, offset, page),
    ))
}

pub(super) async fn show(
    State(state): State<AppState>,
    provider: Provider,
    Path((_, raw)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ScimFailure> {
    let id = resource_id::<TeamId>(&raw)?;
    let group = scim::group(&*state.store, &provider.authorized, id).await?;
    if not_modified(&headers, group.version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut json = resource::group_json(&group, &provider.base, true);
    bulwark_scim::project::project(
        Resource::Group,
        &mut json,
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
    )?;
    Ok(resource_reply(StatusCode::OK, &json, group.version, false))
}

fn checked(mut body: Value) -> Result<scim::GroupState, ScimFailure> {
    schema::normalize(Resource::Group, &mut body)?;
    let attributes = resource::attribute_names(&body);
    Ok(resource::group_state(&body, attributes)?)
}

pub(super) async fn create(
    State(state): State<AppState>,
    provider: Provider,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimFailure> {
    let group_state = checked(body)?;
    let group = scim::create_group(&super::deps(&state), &provider.authorized, group_state).await?;
    let json = resource::group_json(&group, &provider.base, true);
    Ok(resource_reply(
        StatusCode::CREATED,
        &json,
        group.version,
        true,
    ))
}

pub(super) async fn replace(
    State(state): State<AppState>,
    provider: Provider,
    Path((_, raw)): Path<(String, String)>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimFailure> {
    let id = resource_id::<TeamId>(&raw)?;
    let group_state = checked(body)?;
    let group = scim::update_group(
        &super::deps(&state),
        &provider.authorized,
        id,
        if_match(&headers),
        "replace",
        move |_| Ok(group_state),
    )
    .await?;
    let json = resource::group_json(&group, &provider.base, true);
    Ok(resource_reply(StatusCode::OK, &json, group.version, false))
}

pub(super) async fn patch(
    State(state): State<AppState>,
    provider: Provider,
    Path((_, raw)): Path<(String, String)>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimFailure> {
    let id = resource_id::<TeamId>(&raw)?;
    let request: PatchRequest = serde_json::from_value(body).map_err(|e| {
        ScimError::bad(
            ScimType::InvalidSyntax,
            format!("not a PatchOp request: {e}"),
        )
    })?;
    let base = provider.base.clone();
    let group = scim::update_group(
        &super::deps(&state),
        &provider.authorized,
        id,
        if_match(&headers),
        "patch",
        move |current| {
            let mut json = resource::group_json(current, &base, true);
            let changed = bulwark_scim::patch::apply(Resource::Group, &mut json, &request)
                .map_err(CoreError::Scim)?;
            resource::group_state(&json, changed).map_err(CoreError::Scim)
        },
    )
    .await?;
    let json = resource::group_json(&group, &provider.base, true);
    Ok(resource_reply(StatusCode::OK, &json, group.version, false))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    provider: Provider,
    Path((_, raw)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimFailure> {
    let id = resource_id::<TeamId>(&raw)?;
    let keys = scim::delete_group(
        &super::deps(&state),
        &provider.authorized,
        id,
        if_match(&headers),
    )
    .await?;
    for key in &keys {
        state.key_cache.forget(*key);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
