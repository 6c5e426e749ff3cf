//! Outbound webhooks: an org's endpoints (create, list, show with the attempt log, change,
//! delete, rotate the signing secret, replay a time range), resending one delivery, and
//! queueing an application message (with an `Idempotency-Key`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bulwark_authz::Action;
use bulwark_core::authz::Target;
use bulwark_core::model::{WebhookAttempt, WebhookDelivery, WebhookEndpoint};
use bulwark_core::webhooks::{self, EndpointPatch, NewEndpoint, NewMessage};
use bulwark_crypto::webhook::WebhookSecret;
use bulwark_types::{DeliveryId, EndpointId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::{ValidJson, ValidQuery};
use crate::org_route::{OrgAuthorized, OrgCaller, act};
use crate::state::AppState;

fn endpoint_of(raw: &str) -> Result<EndpointId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

fn delivery_of(raw: &str) -> Result<DeliveryId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An endpoint's settings and state (never its secret).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointOut {
    /// `ep_…`
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Event types or patterns it receives.
    pub event_types: Vec<String>,
    /// `standard` (Standard Webhooks headers) or `stripe` (`Bulwark-Signature`).
    pub scheme: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// `sustained_failure` when Bulwark disabled it.
    pub disabled_reason: Option<String>,
    /// Deliveries per second at most.
    pub rate_limit: u32,
    /// Deliveries in flight at most.
    pub max_in_flight: u32,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// Since when every attempt has failed.
    pub failing_since: Option<String>,
    /// Until when the previous signing secret also signs (after a rotation).
    pub previous_secret_until: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When its settings last changed.
    pub updated_at: String,
}

impl From<WebhookEndpoint> for EndpointOut {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            scheme: e.scheme.as_str().into(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            rate_limit: e.rate_limit,
            max_in_flight: e.max_in_flight,
            consecutive_failures: e.consecutive_failures,
            failing_since: e.failing_since.map(rfc3339),
            previous_secret_until: e.previous_until.map(rfc3339),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// An endpoint with its signing secret, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointWithSecret {
    /// `whsec_…`: store it now in the receiver; Bulwark keeps it sealed and cannot show it again.
    #[schema(value_type = String)]
    pub secret: super::ShownOnce,
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointOut,
}

fn with_secret(status: StatusCode, e: WebhookEndpoint, secret: &WebhookSecret) -> Response {
    let body = EndpointWithSecret {
        secret: super::ShownOnce::new(secret.expose()),
        endpoint: e.into(),
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The org's endpoints.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub endpoints: Vec<EndpointOut>,
}

/// An endpoint to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// `https://…` (no credentials or fragment); checked against the egress rules now and at
    /// every send.
    #[schema(max_length = 2048)]
    pub url: String,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// 1–50 event types (`member.added`, `app.invoice.paid`), families (`member.*`) or `*`
    /// (the default).
    #[schema(min_items = 1, max_items = 50)]
    pub event_types: Option<Vec<String>>,
    /// `standard` (default) or `stripe`.
    pub scheme: Option<String>,
    /// Deliveries per second, 1–10000 (default 50).
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<u32>,
    /// Deliveries in flight at once, 1–256 (default 10).
    #[schema(minimum = 1, maximum = 256)]
    pub max_in_flight: Option<u32>,
}

/// Changes to an endpoint; absent fields stay.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchIn {
    /// `https://…`.
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// 1–50 event types or patterns.
    #[schema(min_items = 1, max_items = 50)]
    pub event_types: Option<Vec<String>>,
    /// `standard` or `stripe`.
    pub scheme: Option<String>,
    /// 1–10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<u32>,
    /// 1–256.
    #[schema(minimum = 1, maximum = 256)]
    pub max_in_flight: Option<u32>,
    /// `true` enables (and clears the failure count); `false` disables (queued deliveries wait).
    pub enabled: Option<bool>,
}

/// A rotation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRotateIn {
    /// Seconds the old secret keeps signing beside the new one, 0–604800 (default 86400).
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_secs: Option<u32>,
}

/// A time range to deliver again.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// RFC 3339; messages created at or after.
    #[schema(format = DateTime)]
    pub since: String,
    /// RFC 3339; messages created before (at most 31 days after `since`).
    #[schema(format = DateTime)]
    pub until: String,
}

/// How many messages were queued again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReplayOut {
    /// Messages queued for the endpoint.
    pub queued: u64,
}

/// A new delivery.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResendOut {
    /// `dlv_…`
    pub delivery_id: String,
}

/// A delivery's state.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    /// `dlv_…`
    pub id: String,
    /// `msg_…` (the `webhook-id` header).
    pub message_id: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending ones).
    pub next_attempt_at: Option<String>,
    /// When it was queued.
    pub created_at: String,
}

impl From<WebhookDelivery> for DeliveryOut {
    fn from(d: WebhookDelivery) -> Self {
        Self {
            id: d.id.to_string(),
            message_id: d.message.to_string(),
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d
                .next_attempt_ms
                .and_then(|ms| {
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
                })
                .map(rfc3339),
            created_at: rfc3339(d.created_at),
        }
    }
}

/// One attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    /// `dlv_…`
    pub delivery_id: String,
    /// `msg_…`
    pub message_id: String,
    /// 1 for the first.
    pub attempt: u32,
    /// When it started.
    pub at: String,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Milliseconds.
    pub latency_ms: u32,
    /// Why it failed without an answer.
    pub error: Option<String>,
    /// The first KiB of the answer.
    pub response: Option<String>,
    /// Whether it delivered the message.
    pub delivered: bool,
}

impl From<WebhookAttempt> for AttemptOut {
    fn from(a: WebhookAttempt) -> Self {
        Self {
            delivery_id: a.delivery.to_string(),
            message_id: a.message.to_string(),
            attempt: a.attempt,
            at: rfc3339(a.at),
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error,
            response: a.response,
            delivered: a.delivered,
        }
    }
}

/// The latest deliveries and attempts of an endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptLog {
    /// The endpoint.
    pub endpoint: EndpointOut,
    /// Newest first.
    pub deliveries: Vec<DeliveryOut>,
    /// Newest first.
    pub attempts: Vec<AttemptOut>,
}

/// How much of the log.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Deliveries and attempts, each 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<u32>,
}

/// An application message.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// `app.` then dot-separated segments of `a-z0-9_-` (at most 100 characters).
    #[schema(max_length = 100, pattern = "^app(\\.[a-z0-9_-]+)+$")]
    pub event_type: String,
    /// Any JSON, at most 256 KiB; delivered as `data`.
    pub payload: serde_json::Value,
}

/// A queued message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    /// `msg_…` (the `webhook-id` receivers deduplicate on).
    pub id: String,
    /// Its type.
    pub event_type: String,
    /// When it was queued (the delivered `timestamp`).
    pub created_at: String,
}

/// Lists the org's webhook endpoints (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/webhooks/endpoints", tag = "webhooks",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = EndpointList),
        (status = 403, body = Problem, description = "`forbidden`"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::WebhooksRead>,
) -> Result<Json<EndpointList>, ApiError> {
    let all = webhooks::list_endpoints(&*state.store, &authorized).await?;
    Ok(Json(EndpointList {
        endpoints: all.into_iter().map(EndpointOut::from).collect(),
    }))
}

/// Adds an endpoint (owners and admins). The answer holds its signing secret, shown once.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/endpoints", tag = "webhooks", request_body = EndpointIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = EndpointWithSecret, description = "Shown once; `Cache-Control: no-store`"),
        (status = 403, body = Problem, description = "`forbidden`, `csrf_failed`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/url`, `/event_types`, `/scheme`, `/rate_limit`, `/max_in_flight`, `/description`)"),
        (status = 503, body = Problem, description = "`key_provider_unavailable`"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgAuthorized {
        org,
        signed,
        authorized,
        ..
    }: OrgAuthorized<act::WebhooksWrite>,
    ValidJson(body): ValidJson<EndpointIn>,
) -> Result<Response, ApiError> {
    // Bulwark's own events are the audit log: sending them somewhere needs reading it too.
    let patterns = body.event_types.clone().unwrap_or_else(|| vec!["*".into()]);
    if webhooks::reads_audit_events(&patterns) {
        decide::org(&state, &signed, org, Action::AuditRead, Target::Org).await?;
    }
    let new = NewEndpoint {
        url: body.url,
        description: body.description,
        event_types: body.event_types,
        scheme: body.scheme,
        rate_limit: body.rate_limit,
        max_in_flight: body.max_in_flight,
    };
    let (endpoint, secret) = webhooks::create_endpoint(
        &*state.store,
        &*state.clock,
        &*state.vault,
        state.webhook_egress.policy(),
        &authorized,
        new,
    )
    .await?;
    Ok(with_secret(StatusCode::CREATED, endpoint, &secret))
}

/// One endpoint with its latest deliveries and attempts (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/webhooks/endpoints/{endpoint}", tag = "webhooks",
    params(("org" = String, Path, description = "`org_…`"), ("endpoint" = String, Path, description = "`ep_…`"), LogQuery),
    responses(
        (status = 200, body = AttemptLog),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/limit`)"),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::WebhooksRead>,
    Path((_, endpoint)): Path<(String, String)>,
    ValidQuery(q): ValidQuery<LogQuery>,
) -> Result<Json<AttemptLog>, ApiError> {
    let id = endpoint_of(&endpoint)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_field("/limit", "must be 1–1000"));
    }
    let (e, deliveries, attempts) =
        webhooks::endpoint_log(&*state.store, &authorized, id, limit).await?;
    Ok(Json(AttemptLog {
        endpoint: e.into(),
        deliveries: deliveries.into_iter().map(DeliveryOut::from).collect(),
        attempts: attempts.into_iter().map(AttemptOut::from).collect(),
    }))
}

/// Changes an endpoint (owners and admins).
#[utoipa::path(patch, path = "/v1/orgs/{org}/webhooks/endpoints/{endpoint}", tag = "webhooks", request_body = EndpointPatchIn,
    params(("org" = String, Path, description = "`org_…`"), ("endpoint" = String, Path, description = "`ep_…`")),
    responses(
        (status = 200, body = EndpointOut),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`credential_unreadable`: a new URL needs the signing secrets sealed again, and one does not open (altered in the database); nothing was changed"),
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    OrgAuthorized {
        org,
        signed,
        authorized,
        ..
    }: OrgAuthorized<act::WebhooksWrite>,
    Path((_, endpoint)): Path<(String, String)>,
    ValidJson(body): ValidJson<EndpointPatchIn>,
) -> Result<Json<EndpointOut>, ApiError> {
    let id = endpoint_of(&endpoint)?;
    // A new URL or filter may point the org's audit events somewhere else.
    if body.url.is_some() || body.event_types.is_some() {
        decide::org(&state, &signed, org, Action::AuditRead, Target::Org).await?;
    }
    let patch = EndpointPatch {
        url: body.url,
        description: body.description,
        event_types: body.event_types,
        scheme: body.scheme,
        rate_limit: body.rate_limit,
        max_in_flight: body.max_in_flight,
        enabled: body.enabled,
    };
    let e = webhooks::update_endpoint(
        &*state.store,
        &*state.clock,
        &*state.vault,
        state.webhook_egress.policy(),
        &authorized,
        id,
        patch,
    )
    .await?;
    state.webhook_wake.notify_one();
    Ok(Json(e.into()))
}

/// Deletes an endpoint, its queue, attempt log and signing secrets (owners and admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/webhooks/endpoints/{endpoint}", tag = "webhooks",
    params(("org" = String, Path, description = "`org_…`"), ("endpoint" = String, Path, description = "`ep_…`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::WebhooksWrite>,
    Path((_, endpoint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = endpoint_of(&endpoint)?;
    webhooks::delete_endpoint(&*state.store, &*state.clock, &authorized, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret (owners and admins); the old one keeps signing beside it for
/// the overlap. The new secret is in this answer only.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/endpoints/{endpoint}/rotate", tag = "webhooks", request_body = SecretRotateIn,
    params(("org" = String, Path, description = "`org_…`"), ("endpoint" = String, Path, description = "`ep_…`")),
    responses(
        (status = 200, body = EndpointWithSecret, description = "Shown once; `Cache-Control: no-store`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/overlap_secs`)"),
    ))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::WebhooksWrite>,
    Path((_, endpoint)): Path<(String, String)>,
    ValidJson(body): ValidJson<SecretRotateIn>,
) -> Result<Response, ApiError> {
    let id = endpoint_of(&endpoint)?;
    let (e, secret) = webhooks::rotate_secret(
        &*state.store,
        &*state.clock,
        &*state.vault,
        &authorized,
        id,
        body.overlap_secs,
    )
    .await?;
    Ok(with_secret(StatusCode::OK, e, &secret))
}

fn parse_time(field: &'static str, raw: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::invalid_field(field, "must be an RFC 3339 time"))
}

/// Queues again every message of a time range the endpoint is subscribed to (owners and
/// admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/endpoints/{endpoint}/replay", tag = "webhooks", request_body = ReplayIn,
    params(("org" = String, Path, description = "`org_…`"), ("endpoint" = String, Path, description = "`ep_…`")),
    responses(
        (status = 200, body = ReplayOut),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/since`, `/until`)"),
    ))]
pub(crate) async fn replay(
    State(state): State<AppState>,
    OrgAuthorized {
        org,
        signed,
        authorized,
        ..
    }: OrgAuthorized<act::WebhooksWrite>,
    Path((_, endpoint)): Path<(String, String)>,
    ValidJson(body): ValidJson<ReplayIn>,
) -> Result<Json<ReplayOut>, ApiError> {
    let id = endpoint_of(&endpoint)?;
    let since = parse_time("/since", &body.since)?;
    let until = parse_time("/until", &body.until)?;
    // Past messages include the org's audit events.
    decide::org(&state, &signed, org, Action::AuditRead, Target::Org).await?;
    let queued =
        webhooks::replay(&*state.store, &*state.clock, &authorized, id, since, until).await?;
    state.webhook_wake.notify_one();
    Ok(Json(ReplayOut { queued }))
}

/// Queues a delivery's message again for its endpoint (owners and admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/deliveries/{delivery}/resend", tag = "webhooks",
    params(("org" = String, Path, description = "`org_…`"), ("delivery" = String, Path, description = "`dlv_…`")),
    responses(
        (status = 202, body = ResendOut),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn resend(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::WebhooksWrite>,
    Path((_, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<ResendOut>), ApiError> {
    let id = delivery_of(&delivery)?;
    let new = webhooks::resend(&*state.store, &*state.clock, &authorized, id).await?;
    state.webhook_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(ResendOut {
            delivery_id: new.to_string(),
        }),
    ))
}

/// Queues an application message for the org's subscribed endpoints (a person with
/// `webhooks.send`, or an API key with scope `webhooks:send`). With an `Idempotency-Key` seen
/// before, the first message is answered again (`Idempotent-Replayed: true`) and nothing is
/// queued; the same key with a different request is refused.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/messages", tag = "webhooks", security(("session" = []), ("api_key" = [])), request_body = MessageIn,
    params(("org" = String, Path, description = "`org_…`"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters", pattern = "^[\\x21-\\x7e]{1,255}$")),
    responses(
        (status = 202, body = MessageOut, description = "Queued"),
        (status = 200, body = MessageOut, description = "Queued before under this key"),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 422, body = Problem, description = "`validation_failed` (`/event_type`, `/payload`, `/idempotency_key`), `idempotency_key_reused`"),
    ))]
pub(crate) async fn send(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::WebhooksSend>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<MessageIn>,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::invalid_field(
                        "/idempotency_key",
                        "the Idempotency-Key must be visible ASCII",
                    )
                })?
                .to_owned(),
        ),
        None => None,
    };
    let (message, replayed) = webhooks::send(
        &*state.store,
        &*state.clock,
        &authorized,
        NewMessage {
            event_type: body.event_type,
            payload: body.payload,
            idempotency_key: key,
        },
    )
    .await?;
    if !replayed {
        state.webhook_wake.notify_one();
    }
    let out = MessageOut {
        id: message.id.to_string(),
        event_type: message.event_type,
        created_at: rfc3339(message.created_at),
    };
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut res = (status, Json(out)).into_response();
    if replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

/// The webhook routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(rotate))
        .routes(routes!(replay))
        .routes(routes!(resend))
        .routes(routes!(send))
}
