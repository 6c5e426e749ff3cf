//! API keys: listed with metadata only; issued (the key shown once), rotated with an overlap
//! (the new key shown once), revoked. The `/v1` handlers do each step.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};

use crate::api::v1::access::TeamOut;
use crate::api::v1::keys::{self as api, KeyOut, ListQuery};
use crate::console::Routes;
use crate::console::access::{Done, confirmed};
use crate::console::form::{self, Kind};
use crate::console::page::{self, Chrome, PageForm, When};
use crate::console::secret;
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidQuery};
use crate::org_route::{OrgAuthorized, OrgCaller, act};
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new()
        .at("/orgs/{org}/keys", get(list).post(issue))
        .at("/orgs/{org}/keys/{key}/rotate", post(rotate))
        .at("/orgs/{org}/keys/{key}/revoke", post(revoke))
        .at("/orgs/{org}/spaces/keys", post(issue_in_space))
        .at(
            "/orgs/{org}/spaces/keys/{key}/revoke",
            post(revoke_in_space),
        )
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyOut>,
    teams: Vec<TeamOut>,
    scopes: [&'static str; 6],
}

impl KeysPage {
    fn when(&self, t: &time::OffsetDateTime) -> When {
        When(*t)
    }
}

async fn list(
    State(state): State<AppState>,
    reader: OrgAuthorized<act::KeysRead>,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let (org, signed) = (reader.org, reader.signed.clone());
    let chrome = Chrome::new(&state, &signed, Some(org), "keys")
        .await?
        .with_notice(q.done.as_deref());
    let Json(keys) = api::list(
        State(state.clone()),
        reader,
        ValidQuery(ListQuery::default()),
    )
    .await?;
    let teams = OrgAuthorized::<act::TeamsRead>::decide(&state, signed, org).await?;
    let Json(teams) = crate::api::v1::access::list_teams(State(state.clone()), teams).await?;
    Ok(page::html(&KeysPage {
        chrome,
        keys: keys.keys,
        teams: teams.teams,
        scopes: bulwark_core::apikeys::SCOPES,
    }))
}

async fn issue(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::KeysWrite>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (org, signed) = (writer.org, writer.signed.clone());
    let body = form::body(
        &fields,
        &[
            ("name", Kind::TextKeepEmpty),
            ("scopes", Kind::List),
            ("expires_in_days", Kind::Number),
            ("team", Kind::Text),
        ],
    )?;
    let res = api::issue(State(state.clone()), writer, ValidJson(body)).await?;
    let (key, meta) = secret::read(res, "key").await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "keys").await?;
    Ok(secret::show(
        chrome,
        "API key created",
        "Send it as `Authorization: Bearer <key>`.",
        &key,
        vec![
            ("Key id", secret::text(&meta, "id")),
            ("Name", secret::text(&meta, "name")),
            (
                "Scopes",
                meta.get("scopes")
                    .and_then(serde_json::Value::as_array)
                    .map(|scopes| {
                        scopes
                            .iter()
                            .filter_map(serde_json::Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            ),
            (
                "Expires",
                meta.get("expires_at")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("never")
                    .to_owned(),
            ),
        ],
        format!("/orgs/{org}/keys"),
    ))
}

async fn rotate(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::KeysWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (org, signed) = (writer.org, writer.signed.clone());
    let body = form::body(&fields, &[("overlap_secs", Kind::Number)])?;
    let res = api::rotate(State(state.clone()), writer, Path(ids), ValidJson(body)).await?;
    let (key, meta) = secret::read(res, "key").await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "keys").await?;
    Ok(secret::show(
        chrome,
        "API key rotated",
        "The old key keeps working until the overlap ends, then stops.",
        &key,
        vec![
            ("New key id", secret::text(&meta, "id")),
            ("Replaces", secret::text(&meta, "rotated_from")),
            (
                "Overlap",
                format!("{} seconds", form::field(&fields, "overlap_secs")),
            ),
        ],
        format!("/orgs/{org}/keys"),
    ))
}

async fn revoke(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::KeysWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    confirmed(&fields)?;
    let org = writer.org;
    api::revoke(State(state), writer, Path(ids)).await?;
    Ok(page::see_other(&format!(
        "/orgs/{org}/keys?done=key_revoked"
    )))
}

/// A key for one of the host application's customers, in a key space (the app checks it with
/// `POST /v1/orgs/{org}/keys/verify`): shown once.
async fn issue_in_space(
    State(state): State<AppState>,
    writer: OrgCaller<act::SpaceKeysWrite>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let org = writer.org;
    let signed = crate::console::audit::person(&writer.caller)?.clone();
    let space = form::field(&fields, "space").to_owned();
    let body = form::body(
        &fields,
        &[
            ("owner", Kind::TextKeepEmpty),
            ("name", Kind::TextKeepEmpty),
            ("scopes", Kind::Lines),
            ("expires_in_days", Kind::Number),
        ],
    )?;
    let res = api::issue_in_space(
        State(state.clone()),
        writer,
        Path((org.to_string(), space.clone())),
        ValidJson(body),
    )
    .await?;
    let (key, meta) = secret::read(res, "key").await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "keys").await?;
    Ok(secret::show(
        chrome,
        "Customer key created",
        "Give it to the customer; your application verifies it with Bulwark.",
        &key,
        vec![
            ("Key id", secret::text(&meta, "id")),
            ("Space", space),
            ("Customer", secret::text(&meta, "owner")),
            (
                "Scopes",
                meta.get("scopes")
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
        ],
        format!("/orgs/{org}/keys"),
    ))
}

async fn revoke_in_space(
    State(state): State<AppState>,
    writer: OrgCaller<act::SpaceKeysWrite>,
    Path((org_text, key)): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    confirmed(&fields)?;
    let org = writer.org;
    let space = form::field(&fields, "space").to_owned();
    api::revoke_in_space(State(state), writer, Path((org_text, space, key))).await?;
    Ok(page::see_other(&format!(
        "/orgs/{org}/keys?done=key_revoked"
    )))
}
