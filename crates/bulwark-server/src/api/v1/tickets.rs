//! Ticket trackers: preview, then push, an audit event to GitHub Issues or Jira with a vault
//! credential. The preview is the push's exact request without the credential.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use bulwark_authz::Action;
use bulwark_core::authz::Target;
use bulwark_core::tickets::{self, Prepared, Pushed, TicketRequest, Tracker};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::decide;
use crate::egress::SendError;
use crate::error::{ApiError, Problem};
use crate::extract::ValidJson;
use crate::org_route::{OrgAuthorized, act};
use crate::state::AppState;

/// What to push, and where.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketIn {
    /// `github` or `jira`.
    pub tracker: String,
    /// GitHub: the API base (default `https://api.github.com`; GitHub Enterprise Server:
    /// `https://HOST/api/v3`).
    pub api_url: Option<String>,
    /// GitHub: `owner/repo`.
    pub repository: Option<String>,
    /// Jira: the site, e.g. `https://acme.atlassian.net`.
    pub site: Option<String>,
    /// Jira: the project key, e.g. `SEC`.
    pub project: Option<String>,
    /// Jira: the issue type (default `Task`).
    pub issue_type: Option<String>,
    /// `cred_…`: a `bearer_token` (GitHub token, Jira PAT) or `basic_password` (`email:api_token`)
    /// whose destinations allow the tracker.
    pub credential_id: String,
    /// The record: an event of the org's audit log, by sequence number.
    pub audit_seq: u64,
    /// The event fields to send: any of `id`, `time`, `action`, `actor`, `resource`, `outcome`,
    /// `data`, `context`.
    #[schema(min_items = 1)]
    pub fields: Vec<String>,
    /// The title (default `Bulwark audit event <seq>`, with its type when `action` is sent).
    pub title: Option<String>,
}

/// The request a push would send.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PreviewOut {
    /// `github` or `jira`.
    pub tracker: String,
    /// `POST`.
    pub method: String,
    /// Where.
    pub url: String,
    /// The headers; `authorization` names the credential instead of holding it.
    #[schema(value_type = Object)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// The exact JSON body.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// The ticket made.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PushedOut {
    /// `github` or `jira`.
    pub tracker: String,
    /// `#12` or `SEC-7`.
    pub ticket: String,
    /// Its web page.
    pub url: Option<String>,
}

fn request_of(body: TicketIn) -> Result<TicketRequest, ApiError> {
    let url = |field: &'static str, raw: &str| {
        url::Url::parse(raw).map_err(|_| ApiError::invalid_field(field, "must be an absolute URL"))
    };
    let required = |field: &'static str, v: Option<String>| {
        v.ok_or_else(|| ApiError::invalid_field(field, "is required for this tracker"))
    };
    let tracker = match body.tracker.as_str() {
        "github" => Tracker::GitHub {
            api_url: url(
                "/api_url",
                body.api_url.as_deref().unwrap_or("https://api.github.com"),
            )?,
            repository: required("/repository", body.repository)?,
        },
        "jira" => Tracker::Jira {
            site: url("/site", &required("/site", body.site)?)?,
            project: required("/project", body.project)?,
            issue_type: body.issue_type.unwrap_or_else(|| "Task".into()),
        },
        _ => {
            return Err(ApiError::invalid_field(
                "/tracker",
                "must be `github` or `jira`",
            ));
        }
    };
    Ok(TicketRequest {
        tracker,
        credential: body
            .credential_id
            .parse()
            .map_err(|_| ApiError::invalid_field("/credential_id", "must be a `cred_…` id"))?,
        audit_seq: body.audit_seq,
        fields: body.fields,
        title: body.title,
    })
}

pub(crate) async fn prepared(
    state: &AppState,
    allowed: &OrgAuthorized<act::TicketsPush>,
    body: TicketIn,
) -> Result<Prepared, ApiError> {
    let OrgAuthorized {
        org,
        signed,
        authorized,
        ..
    } = allowed;
    let org = *org;
    let req = request_of(body)?;
    // The record is an audit event: sending it needs reading it.
    decide::org(state, signed, org, Action::AuditRead, Target::Org).await?;
    state
        .licensing
        .require_feature(
            &*state.store,
            &*state.clock,
            bulwark_core::licensing::TICKETS,
            Some(org),
            authorized.context(),
        )
        .await?;
    Ok(tickets::prepare(&*state.store, authorized, req).await?)
}

/// Shows the request a push would send: URL, headers (the credential named, not shown) and
/// the exact body (owners and admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/tickets/preview", tag = "tickets", request_body = TicketIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = PreviewOut),
        (status = 404, body = Problem, description = "`not_found`: no such event or credential"),
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    allowed: OrgAuthorized<act::TicketsPush>,
    ValidJson(body): ValidJson<TicketIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let p = prepared(&state, &allowed, body).await?;
    let mut headers = serde_json::Map::new();
    for (k, v) in &p.headers {
        headers.insert((*k).to_owned(), v.clone().into());
    }
    let scheme = if p.auth == "basic" { "Basic" } else { "Bearer" };
    headers.insert(
        "authorization".into(),
        format!("{scheme} <credential {}>", p.credential).into(),
    );
    Ok(Json(PreviewOut {
        tracker: p.tracker.into(),
        method: "POST".into(),
        url: p.url.to_string(),
        headers,
        body: p.body,
    }))
}

/// Creates the ticket (owners and admins): the previewed request, authenticated with the
/// credential (its use audited). Success and failure are audited as `ticket.pushed`.
#[utoipa::path(post, path = "/v1/orgs/{org}/tickets/push", tag = "tickets", request_body = TicketIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = PushedOut),
        (status = 404, body = Problem, description = "`not_found`: no such event or credential"),
        (status = 409, body = Problem, description = "`credential_unreadable`: the credential's stored value, kind or destinations were altered (or it is under a retired key version); nothing was sent"),
        (status = 422, body = Problem, description = "`validation_failed`, `destination_refused`"),
        (status = 502, body = Problem, description = "`tracker_failed`: the tracker refused or did not answer (the reason is in the detail and the audit log)"),
    ))]
pub(crate) async fn push(
    State(state): State<AppState>,
    allowed: OrgAuthorized<act::TicketsPush>,
    ValidJson(body): ValidJson<TicketIn>,
) -> Result<(StatusCode, Json<PushedOut>), ApiError> {
    let p = prepared(&state, &allowed, body).await?;
    let OrgAuthorized {
        org, authorized, ..
    } = allowed;
    let value = bulwark_core::vault::use_value(
        &*state.store,
        &*state.clock,
        &*state.vault,
        org,
        p.credential,
        p.url.as_str(),
        "ticket.push",
    )
    .await;
    let value = match value {
        Ok(value) => value,
        Err(e @ bulwark_core::CoreError::Sealed) => {
            // Refused before anything was sent (the refusal is in the log as `credential.used`).
            tickets::record(
                &*state.store,
                &*state.clock,
                &authorized,
                &p,
                &Pushed::Failed("credential_unreadable"),
            )
            .await?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let authorization = Zeroizing::new(if p.auth == "basic" {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(&*value)
        )
    } else {
        format!("Bearer {}", String::from_utf8_lossy(&value))
    });
    drop(value);
    let mut headers: Vec<(&str, &str)> = p.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.push(("authorization", authorization.as_str()));
    let body = serde_json::to_vec(&p.body).map_err(|_| ApiError::internal("ticket body"))?;
    let outcome = match state.egress.post(&p.url, &headers, body).await {
        Ok(answer) => tickets::read_answer(&p, answer.status, &answer.body),
        Err(SendError::Refused(why)) => {
            tickets::record(
                &*state.store,
                &*state.clock,
                &authorized,
                &p,
                &Pushed::Failed("destination_refused"),
            )
            .await?;
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "destination_refused",
                format!("the tracker's address is not allowed: {why}"),
            ));
        }
        Err(SendError::Timeout(_) | SendError::Failed(_)) => Pushed::Failed("tracker_unreachable"),
    };
    tickets::record(&*state.store, &*state.clock, &authorized, &p, &outcome).await?;
    match outcome {
        Pushed::Created { key, url } => Ok((
            StatusCode::CREATED,
            Json(PushedOut {
                tracker: p.tracker.into(),
                ticket: key,
                url,
            }),
        )),
        Pushed::Failed(reason) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "tracker_failed",
            format!("the tracker did not create the ticket ({reason}); nothing was created"),
        )),
    }
}

/// The ticket routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview))
        .routes(routes!(push))
}
