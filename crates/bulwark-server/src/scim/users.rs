//! `/Users`: list (filter, sort, pages, attribute selection), show, create, replace, patch and
//! delete provisioned users.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bulwark_core::CoreError;
use bulwark_core::model::ScimUserQuery;
use bulwark_core::scim;
use bulwark_scim::error::ScimError;
use bulwark_scim::patch::PatchRequest;
use bulwark_scim::schema::{self, Resource};
use bulwark_types::UserId;
use serde_json::Value;

use super::resource::{self, ListQuery};
use super::{
    Provider, ScimBody, ScimFailure, if_match, not_modified, reply, resource_id, resource_reply,
};
use crate::state::AppState;

/// Drops the revoked keys from this replica's cache at once (other replicas within its TTL).
fn forget(state: &AppState, keys: &[bulwark_types::ApiKeyId]) {
    for key in keys {
        state.key_cache.forget(*key);
    }
}

fn project(
    value: &mut Value,
    attributes: Option<&str>,
    excluded: Option<&str>,
) -> Result<(), ScimFailure> {
    bulwark_scim::project::project(Resource::User, value, attributes, excluded)?;
    Ok(())
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
    let exact = match &filter {
        None => Some(ScimUserQuery::All),
        Some(f) => resource::pushed_down(f),
    };
    let attrs = (
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
    );
    let (total, mut resources) = match exact.filter(|_| query.sort_by.is_none()) {
        Some(q) => {
            let (total, users) =
                scim::users(&*state.store, &provider.authorized, &q, offset, Some(count)).await?;
            let list = users
                .iter()
                .map(|u| resource::user_json(u, &[], &provider.base))
                .collect();
            (total, list)
        }
        None => {
            let q = filter
                .as_ref()
                .and_then(resource::pushed_down)
                .unwrap_or(ScimUserQuery::All);
            let (_, users) = scim::users(&*state.store, &provider.authorized, &q, 0, None).await?;
            let all = users
                .iter()
                .map(|u| resource::user_json(u, &[], &provider.base));
            resource::filtered_page(Resource::User, all, query, filter.as_ref(), (offset, count))?
        }
    };
    for r in &mut resources {
        project(r, attrs.0, attrs.1)?;
    }
    Ok(reply(
        StatusCode::OK,
        &resource::list_response(total, offset, resources),
    ))
}

pub(super) async fn show(
    State(state): State<AppState>,
    provider: Provider,
    Path((_, raw)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ScimFailure> {
    let id = resource_id::<UserId>(&raw)?;
    let (user, groups) = scim::user(&*state.store, &provider.authorized, id).await?;
    if not_modified(&headers, user.version) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut json = resource::user_json(&user, &groups, &provider.base);
    project(
        &mut json,
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
    )?;
    Ok(resource_reply(StatusCode::OK, &json, user.version, false))
}

/// A body checked against the User schema, with what it sets.
fn checked(mut body: Value) -> Result<scim::UserState, ScimFailure> {
    schema::normalize(Resource::User, &mut body)?;
    let attributes = resource::attribute_names(&body);
    Ok(resource::user_state(body, attributes)?)
}

pub(super) async fn create(
    State(state): State<AppState>,
    provider: Provider,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimFailure> {
    let user_state = checked(body)?;
    let user = scim::create_user(&super::deps(&state), &provider.authorized, user_state).await?;
    let json = resource::user_json(&user, &[], &provider.base);
    Ok(resource_reply(
        StatusCode::CREATED,
        &json,
        user.version,
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
    let id = resource_id::<UserId>(&raw)?;
    let user_state = checked(body)?;
    let updated = scim::update_user(
        &super::deps(&state),
        &provider.authorized,
        id,
        if_match(&headers),
        "replace",
        move |_| Ok(user_state),
    )
    .await?;
    forget(&state, &updated.revoked_keys);
    respond(&state, &provider, &updated.user).await
}

pub(super) async fn patch(
    State(state): State<AppState>,
    provider: Provider,
    Path((_, raw)): Path<(String, String)>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimFailure> {
    let id = resource_id::<UserId>(&raw)?;
    let request: PatchRequest = serde_json::from_value(body).map_err(|e| {
        ScimError::bad(
            bulwark_scim::error::ScimType::InvalidSyntax,
            format!("not a PatchOp request: {e}"),
        )
    })?;
    let base = provider.base.clone();
    let updated = scim::update_user(
        &super::deps(&state),
        &provider.authorized,
        id,
        if_match(&headers),
        "patch",
        move |current| {
            let mut json = resource::user_json(current, &[], &base);
            let changed = bulwark_scim::patch::apply(Resource::User, &mut json, &request)
                .map_err(CoreError::Scim)?;
            resource::user_state(json, changed).map_err(CoreError::Scim)
        },
    )
    .await?;
    forget(&state, &updated.revoked_keys);
    respond(&state, &provider, &updated.user).await
}

async fn respond(
    state: &AppState,
    provider: &Provider,
    user: &bulwark_core::model::ScimUser,
) -> Result<Response, ScimFailure> {
    let (_, groups) = scim::user(&*state.store, &provider.authorized, user.user_id).await?;
    let json = resource::user_json(user, &groups, &provider.base);
    Ok(resource_reply(StatusCode::OK, &json, user.version, false))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    provider: Provider,
    Path((_, raw)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimFailure> {
    let id = resource_id::<UserId>(&raw)?;
    let keys = scim::delete_user(
        &super::deps(&state),
        &provider.authorized,
        id,
        if_match(&headers),
    )
    .await?;
    forget(&state, &keys);
    Ok(StatusCode::NO_CONTENT.into_response())
}
