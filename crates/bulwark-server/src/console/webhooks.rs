//! Webhooks: endpoints with their filters and state, the signing secret shown once (at creation
//! and rotation, with the overlap), the delivery log with attempts and (truncated, redacted)
//! responses, resend, replay, enable/disable and delete. The `/v1` handlers do each step.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};

use crate::api::v1::webhooks::{self as api, AttemptLog, EndpointOut, LogQuery};
use crate::console::Routes;
use crate::console::access::{Done, confirmed};
use crate::console::form::{self, Kind};
use crate::console::page::{self, Chrome, PageForm};
use crate::console::secret;
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidQuery};
use crate::org_route::{OrgAuthorized, act};
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new()
        .at("/orgs/{org}/webhooks", get(list).post(create))
        .at("/orgs/{org}/webhooks/{endpoint}", get(show).post(update))
        .at("/orgs/{org}/webhooks/{endpoint}/rotate", post(rotate))
        .at("/orgs/{org}/webhooks/{endpoint}/replay", post(replay))
        .at("/orgs/{org}/webhooks/{endpoint}/delete", post(delete))
        .at(
            "/orgs/{org}/webhooks/deliveries/{delivery}/resend",
            post(resend),
        )
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    chrome: Chrome,
    endpoints: Vec<EndpointOut>,
}

async fn list(
    State(state): State<AppState>,
    reader: OrgAuthorized<act::WebhooksRead>,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let (org, signed) = (reader.org, reader.signed.clone());
    let chrome = Chrome::new(&state, &signed, Some(org), "webhooks")
        .await?
        .with_notice(q.done.as_deref());
    let Json(list) = api::list(State(state.clone()), reader).await?;
    Ok(page::html(&ListPage {
        chrome,
        endpoints: list.endpoints,
    }))
}

const ENDPOINT_FIELDS: &[(&str, Kind)] = &[
    ("url", Kind::Text),
    ("description", Kind::Text),
    ("event_types", Kind::Lines),
    ("scheme", Kind::Text),
    ("rate_limit", Kind::Number),
    ("max_in_flight", Kind::Number),
];

async fn create(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::WebhooksWrite>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (org, signed) = (writer.org, writer.signed.clone());
    let body = form::body(&fields, ENDPOINT_FIELDS)?;
    let res = api::create(State(state.clone()), writer, ValidJson(body)).await?;
    let (secret, meta) = secret::read(res, "secret").await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "webhooks").await?;
    let id = secret::text(&meta, "id");
    Ok(secret::show(
        chrome,
        "Endpoint created",
        "Store this signing secret in the receiver: it verifies each delivery's signature with it.",
        &secret,
        vec![
            ("Endpoint", id.clone()),
            ("URL", secret::text(&meta, "url")),
        ],
        format!("/orgs/{org}/webhooks/{id}"),
    ))
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct EndpointPage {
    chrome: Chrome,
    log: AttemptLog,
}

async fn show(
    State(state): State<AppState>,
    reader: OrgAuthorized<act::WebhooksRead>,
    Path(ids): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let (org, signed) = (reader.org, reader.signed.clone());
    let chrome = Chrome::new(&state, &signed, Some(org), "webhooks")
        .await?
        .with_notice(q.done.as_deref());
    let Json(log) = api::show(
        State(state.clone()),
        reader,
        Path(ids),
        ValidQuery(LogQuery { limit: Some(100) }),
    )
    .await?;
    Ok(page::html(&EndpointPage { chrome, log }))
}

async fn update(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::WebhooksWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let org = writer.org;
    let endpoint = ids.1.clone();
    let mut spec = ENDPOINT_FIELDS.to_vec();
    spec.push(("enabled", Kind::Text));
    let mut fields = fields;
    // A checkbox sends nothing when unticked: the form says which state it means.
    if form::field(&fields, "enabled_field") == "yes" {
        let on = form::field(&fields, "enabled") == "yes";
        fields.retain(|(k, _)| k != "enabled");
        fields.push(("enabled".into(), on.to_string()));
    }
    let mut body: serde_json::Map<String, serde_json::Value> = form::body(&fields, &spec)?;
    if let Some(v) = body.get_mut("enabled") {
        *v = serde_json::Value::Bool(v.as_str() == Some("true"));
    }
    let body = crate::extract::parse(&serde_json::to_vec(&body).unwrap_or_default())?;
    let _ = api::update(State(state), writer, Path(ids), ValidJson(body)).await?;
    Ok(page::see_other(&format!(
        "/orgs/{org}/webhooks/{endpoint}?done=endpoint_saved"
    )))
}

async fn rotate(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::WebhooksWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (org, signed) = (writer.org, writer.signed.clone());
    let endpoint = ids.1.clone();
    let body = form::body(&fields, &[("overlap_secs", Kind::Number)])?;
    let res = api::rotate(State(state.clone()), writer, Path(ids), ValidJson(body)).await?;
    let (secret, meta) = secret::read(res, "secret").await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "webhooks").await?;
    Ok(secret::show(
        chrome,
        "Signing secret rotated",
        "Deliveries are signed with both secrets until the overlap ends: update the receiver before then.",
        &secret,
        vec![
            ("Endpoint", endpoint.clone()),
            (
                "Old secret valid until",
                secret::text(&meta, "previous_secret_until"),
            ),
        ],
        format!("/orgs/{org}/webhooks/{endpoint}"),
    ))
}

async fn replay(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::WebhooksWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let org = writer.org;
    let endpoint = ids.1.clone();
    let mut fields = fields;
    for (k, v) in &mut fields {
        if (k == "since" || k == "until") && v.len() == 16 {
            v.push_str(":00Z");
        }
    }
    let body = form::body(&fields, &[("since", Kind::Text), ("until", Kind::Text)])?;
    let _ = api::replay(State(state), writer, Path(ids), ValidJson(body)).await?;
    Ok(page::see_other(&format!(
        "/orgs/{org}/webhooks/{endpoint}?done=replayed"
    )))
}

async fn delete(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::WebhooksWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    confirmed(&fields)?;
    let org = writer.org;
    api::delete(State(state), writer, Path(ids)).await?;
    Ok(page::see_other(&format!(
        "/orgs/{org}/webhooks?done=endpoint_deleted"
    )))
}

async fn resend(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::WebhooksWrite>,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let org = writer.org;
    let back = form::field(&fields, "endpoint").to_owned();
    let _ = api::resend(State(state), writer, Path(ids)).await?;
    let back = match back.parse::<bulwark_types::EndpointId>() {
        Ok(endpoint) => format!("/orgs/{org}/webhooks/{endpoint}?done=resent"),
        Err(_) => format!("/orgs/{org}/webhooks?done=resent"),
    };
    Ok(page::see_other(&back))
}
