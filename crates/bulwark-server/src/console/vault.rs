//! The vault: credentials as metadata only (a value is never read back, here or anywhere);
//! create one, replace its value, delete it. The `/v1` handlers do each step.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};

use crate::api::v1::credentials::{self as api, CredentialOut};
use crate::console::Routes;
use crate::console::access::{Done, confirmed};
use crate::console::form::{self, Kind};
use crate::console::page::{self, Chrome, PageForm, When};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::org_route::{OrgAuthorized, act};
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new()
        .at("/orgs/{org}/vault", get(list).post(create))
        .at("/orgs/{org}/vault/{credential}/value", post(replace))
        .at("/orgs/{org}/vault/{credential}/delete", post(delete))
}

#[derive(Template)]
#[template(path = "vault.html")]
struct VaultPage {
    chrome: Chrome,
    credentials: Vec<CredentialOut>,
}

impl VaultPage {
    fn when(&self, t: &time::OffsetDateTime) -> When {
        When(*t)
    }
}

async fn list(
    State(state): State<AppState>,
    reader: OrgAuthorized<act::CredentialsRead>,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let (org, signed) = (reader.org, reader.signed.clone());
    let chrome = Chrome::new(&state, &signed, Some(org), "vault")
        .await?
        .with_notice(q.done.as_deref());
    let Json(list) = api::list(State(state.clone()), reader).await?;
    Ok(page::html(&VaultPage {
        chrome,
        credentials: list.credentials,
    }))
}

async fn create(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::CredentialsWrite>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let org = writer.org;
    let body = form::body(
        &fields,
        &[
            ("name", Kind::TextKeepEmpty),
            ("kind", Kind::TextKeepEmpty),
            ("value", Kind::TextKeepEmpty),
            ("destinations", Kind::Lines),
        ],
    )?;
    let _ = api::create(State(state), writer, ValidJson(body)).await?;
    Ok(page::see_other(&format!(
        "/orgs/{org}/vault?done=credential_saved"
    )))
}

async fn replace(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::CredentialsWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let org = writer.org;
    let body = form::body(&fields, &[("value", Kind::TextKeepEmpty)])?;
    let _ = api::replace(State(state), writer, Path(ids), ValidJson(body)).await?;
    Ok(page::see_other(&format!(
        "/orgs/{org}/vault?done=credential_saved"
    )))
}

async fn delete(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::CredentialsWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    confirmed(&fields)?;
    let org = writer.org;
    api::delete(State(state), writer, Path(ids)).await?;
    Ok(page::see_other(&format!(
        "/orgs/{org}/vault?done=credential_deleted"
    )))
}
