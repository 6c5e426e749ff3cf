//! Outbound webhooks: an org's endpoints, the outbox, and the rules the delivery workers follow.
//!
//! INVARIANT: a message is stored in the transaction of the change it reports. Bulwark's own
//! events are the org's audit events: [`fan_out`] runs inside `audit::append_many`, so an event
//! and its outbox rows commit or roll back together. Applications queue their own `app.…`
//! messages through [`send`], with an optional idempotency key.
//!
//! Delivery (driven by the server's worker): [`claim`] takes due deliveries under a lease
//! (at-least-once: a worker that dies leaves its lease to expire, and another one retries);
//! [`finish`] logs each attempt and schedules the next by [`Schedule`]; an endpoint that keeps
//! failing is disabled ([`DisablePolicy`]), audited, and its queue waits for it.

use std::collections::HashMap;
use std::time::Duration;

use bulwark_audit::event::{CATALOG, Context, Event, Payload};
use bulwark_authz::Action;
use bulwark_crypto::vault::KeyWrapper;
use bulwark_crypto::webhook::WebhookSecret;
use bulwark_types::{Clock, CredentialId, DeliveryId, EndpointId, MessageId, OrgId};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::egress::{EgressError, EgressPolicy};
use crate::model::{
    AttemptResult, ClaimedDelivery, SignatureScheme, WebhookAttempt, WebhookDelivery,
    WebhookEndpoint, WebhookMessage,
};
use crate::ports::{AuditWrite, OrgTx, Store};
use crate::vault::{self, NewCredential};
use crate::{CoreError, StoreError};

/// The largest `data` of a message, as JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Event type patterns per endpoint at most.
pub const MAX_EVENT_TYPES: usize = 50;
/// The longest rotation overlap (the old secret signs at most this long).
pub const MAX_OVERLAP_SECS: u32 = 7 * 24 * 3600;
/// The overlap when none is given.
pub const DEFAULT_OVERLAP_SECS: u32 = 24 * 3600;
/// Deliveries per second per endpoint, at most and by default.
pub const MAX_RATE: u32 = 10_000;
const DEFAULT_RATE: u32 = 50;
/// Deliveries in flight per endpoint, at most and by default.
pub const MAX_IN_FLIGHT: u32 = 256;
const DEFAULT_IN_FLIGHT: u32 = 10;
/// The longest time range one replay covers.
pub const MAX_REPLAY_DAYS: i64 = 31;
/// Messages one replay queues at most.
pub const MAX_REPLAY_MESSAGES: u64 = 100_000;
/// The longest idempotency key.
pub const MAX_KEY_CHARS: usize = 255;
/// Response bytes kept in the attempt log.
pub const KEPT_RESPONSE_BYTES: usize = 1024;
/// Endpoints per org at most.
pub const MAX_ENDPOINTS: usize = 50;
/// The purpose recorded when the worker opens a signing secret (`credential.used`).
pub const SIGNING_PURPOSE: &str = "webhook.signing";

fn invalid(field: &'static str, message: impl Into<String>) -> CoreError {
    CoreError::Validation {
        field,
        message: message.into(),
    }
}

/// A time as Unix milliseconds, the unit of the queue's due times and leases.
#[must_use]
pub fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Event types

/// Whether `t` is an application event type: `app.` then dot-separated segments of
/// `[a-z0-9_-]`, at most 100 characters.
#[must_use]
pub fn is_app_type(t: &str) -> bool {
    t.len() <= 100
        && t.strip_prefix("app.").is_some_and(|rest| {
            rest.split('.').all(|seg| {
                !seg.is_empty()
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
            })
        })
}

/// Whether `t` is one of Bulwark's own event types (the audit catalog).
#[must_use]
pub fn is_bulwark_type(t: &str) -> bool {
    CATALOG.iter().any(|e| e.name == t)
}

/// The event types that are written to the system log only, never to an org's: an org's
/// endpoint can never receive them, so a subscription naming one is refused. (A member's
/// sign-ins, `auth.login.succeeded` and `auth.login.failed`, are recorded in their orgs' logs
/// too; the rest of the account's own life is not the org's.)
pub const SYSTEM_ONLY_TYPES: &[&str] = &[
    "setup.completed",
    "org.created",
    "auth.session.ended",
    "auth.mfa.challenged",
    "auth.sessions.revoked",
    "auth.mfa.enrolled",
    "auth.mfa.removed",
    "auth.mfa.backup_codes_generated",
    "auth.mfa.backup_code_used",
    "auth.password.changed",
    "auth.signed_up",
    "auth.email.verified",
    "auth.password.reset_requested",
    "vault.key_rotated",
    "vault.key_retired",
    "vault.checked",
    "vault.recovery_exported",
    "license.activated",
    "license.expiring",
    "license.read_only",
    "license.clock_reset",
    "license.clock_tampered",
    "license.entitlement_denied",
];

/// Whether events of Bulwark's type `t` can reach an org's log (and so its endpoints).
#[must_use]
pub fn reaches_orgs(t: &str) -> bool {
    is_bulwark_type(t) && !SYSTEM_ONLY_TYPES.contains(&t)
}

/// Whether `pattern` can match something an org's endpoint may receive: `*`, a known type that
/// reaches org logs or an application type, or `prefix.*` where such a type (or the
/// application namespace) lies under the prefix.
#[must_use]
pub fn valid_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => {
            prefix == "app"
                || is_app_type(prefix)
                || CATALOG.iter().any(|e| {
                    reaches_orgs(e.name)
                        && e.name
                            .strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('.'))
                })
        }
        None => reaches_orgs(pattern) || is_app_type(pattern),
    }
}

/// Whether an endpoint subscribed with `patterns` receives `event_type`.
#[must_use]
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event_type
            || p.strip_suffix('*')
                .is_some_and(|prefix| prefix.ends_with('.') && event_type.starts_with(prefix))
    })
}

fn check_patterns(patterns: Vec<String>) -> Result<Vec<String>, CoreError> {
    if patterns.is_empty() || patterns.len() > MAX_EVENT_TYPES {
        return Err(invalid(
            "/event_types",
            format!("must list 1 to {MAX_EVENT_TYPES} event types or patterns (`*` for all)"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(patterns.len());
    for p in patterns {
        if !valid_pattern(&p) {
            return Err(invalid(
                "/event_types",
                format!(
                    "unknown event type `{}`, or one that never reaches an org (system log only): use a type of the event catalog that orgs receive, `app.<name>`, `<prefix>.*` or `*`",
                    p.chars().take(100).collect::<String>()
                ),
            ));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The outbox

/// Queues each of `events` for the endpoints of the handle's org subscribed to its type, in the
/// handle's transaction. Called by `audit::append_many` for org logs.
///
/// # Errors
/// Storage failures.
pub async fn fan_out<T: AuditWrite + ?Sized>(
    tx: &mut T,
    events: &[Event],
) -> Result<(), CoreError> {
    let subscribers = tx.webhook_subscribers().await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    for event in events {
        // Opening a signing secret for a delivery is audited; reporting that as a webhook would
        // make every delivery cause another one.
        if matches!(&event.payload, Payload::CredentialUsed { purpose, .. } if purpose == SIGNING_PURPOSE)
        {
            continue;
        }
        let name = event.payload.name();
        let to: Vec<EndpointId> = subscribers
            .iter()
            .filter(|(_, patterns)| subscribed(patterns, name))
            .map(|(id, _)| *id)
            .collect();
        if to.is_empty() {
            continue;
        }
        let body = event.canonical_bytes().map_err(|_| CoreError::Crypto)?;
        let payload = String::from_utf8(body)
            .map_err(|_| CoreError::Store(StoreError::Corrupt("event body".into())))?;
        let message = WebhookMessage {
            id: MessageId::new(),
            event_type: name.to_owned(),
            payload,
            idempotency_key: None,
            request_hash: None,
            created_at: event.time,
        };
        tx.webhook_enqueue(&message, &to, unix_ms(event.time))
            .await?;
    }
    Ok(())
}

/// An application message to queue.
pub struct NewMessage {
    /// `app.<name>`.
    pub event_type: String,
    /// Any JSON value; delivered as `data`.
    pub payload: serde_json::Value,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
}

/// Queues an application message for the org's subscribed endpoints. With an idempotency key
/// seen before, the first message is returned (`true`) and nothing is queued; the same key
/// with a different request is refused (`Conflict("idempotency_key")`).
///
/// # Errors
/// `Validation` on `/event_type`, `/payload` or the key; `Conflict`; storage failures.
pub async fn send(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    new: NewMessage,
) -> Result<(WebhookMessage, bool), CoreError> {
    let org = authorized.org_for(Action::WebhooksSend)?;
    if !is_app_type(&new.event_type) {
        return Err(invalid(
            "/event_type",
            "must be `app.` followed by dot-separated segments of a-z, 0-9, `_` or `-` (at most 100 characters); Bulwark's own event types are sent by Bulwark",
        ));
    }
    let payload =
        serde_json::to_string(&new.payload).map_err(|_| invalid("/payload", "must be JSON"))?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(invalid(
            "/payload",
            format!("must be at most {MAX_PAYLOAD_BYTES} bytes as JSON"),
        ));
    }
    if let Some(key) = &new.idempotency_key
        && (key.is_empty()
            || key.chars().count() > MAX_KEY_CHARS
            || !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(invalid(
            "/idempotency_key",
            format!("the Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
        ));
    }
    let hash = {
        let mut request = new.event_type.clone().into_bytes();
        request.push(b'\n');
        request.extend_from_slice(payload.as_bytes());
        bulwark_crypto::sha256(&request).to_vec()
    };
    let now = clock.now();
    let message = WebhookMessage {
        id: MessageId::new(),
        event_type: new.event_type,
        payload,
        idempotency_key: new.idempotency_key,
        request_hash: Some(hash),
        created_at: now,
    };
    let mut tx = store.org(org).await?;
    if let Some(key) = &message.idempotency_key
        && let Some(first) = tx.webhook_message_by_key(key).await?
    {
        return same_request(first, &message);
    }
    let to: Vec<EndpointId> = tx
        .webhook_subscribers()
        .await?
        .into_iter()
        .filter(|(_, patterns)| subscribed(patterns, &message.event_type))
        .map(|(id, _)| id)
        .collect();
    let stored = async {
        tx.webhook_enqueue(&message, &to, unix_ms(now)).await?;
        tx.commit().await
    };
    match stored.await {
        Ok(()) => Ok((message, false)),
        // Two requests with one key at once: the other committed first.
        Err(StoreError::Conflict("webhook_messages.idempotency_key")) => {
            let key = message.idempotency_key.as_deref().unwrap_or_default();
            let mut read = store.org_read(org).await?;
            let first = read
                .webhook_message_by_key(key)
                .await?
                .ok_or(CoreError::Conflict("idempotency_key"))?;
            same_request(first, &message)
        }
        Err(e) => Err(e.into()),
    }
}

fn same_request(
    first: WebhookMessage,
    again: &WebhookMessage,
) -> Result<(WebhookMessage, bool), CoreError> {
    if first.request_hash == again.request_hash {
        Ok((first, true))
    } else {
        Err(CoreError::Conflict("idempotency_key"))
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints

/// An endpoint to create.
pub struct NewEndpoint {
    /// Where to POST.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// Patterns; `["*"]` when absent.
    pub event_types: Option<Vec<String>>,
    /// `standard` (default) or `stripe`.
    pub scheme: Option<String>,
    /// Deliveries per second.
    pub rate_limit: Option<u32>,
    /// Deliveries at once.
    pub max_in_flight: Option<u32>,
}

/// Changes to an endpoint (absent fields stay).
#[derive(Default)]
pub struct EndpointPatch {
    /// Where to POST.
    pub url: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Patterns.
    pub event_types: Option<Vec<String>>,
    /// `standard` or `stripe`.
    pub scheme: Option<String>,
    /// Deliveries per second.
    pub rate_limit: Option<u32>,
    /// Deliveries at once.
    pub max_in_flight: Option<u32>,
    /// Enable (resets the failure count) or disable.
    pub enabled: Option<bool>,
}

/// Checks an endpoint URL: absolute, `https` (or `http` where the deployment allows it), no
/// credentials, no fragment, no ambiguous path, on the allowlist, and not resolving to a denied
/// address (a name that does not resolve yet is accepted: it is vetted again at every send).
///
/// # Errors
/// `Validation` on `/url`.
pub async fn check_url(raw: &str, policy: &EgressPolicy) -> Result<url::Url, CoreError> {
    let bad = |why: &str| invalid("/url", format!("not an allowed webhook URL: {why}"));
    if raw.len() > 2048 {
        return Err(bad("longer than 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(bad("a fragment is not allowed"));
    }
    if vault::ambiguous_path(url.path()) {
        return Err(bad(
            "the path has `;`, a backslash or an encoded `.`, `/` or `\\`",
        ));
    }
    match crate::egress::vetted_addresses(&url, policy).await {
        Ok(_) | Err(EgressError::Unresolved) => Ok(url),
        Err(e) => Err(bad(&e.to_string())),
    }
}

/// Where the signing secret may be used: the endpoint's origin. The secret never leaves
/// Bulwark (it signs), and the path of a hook URL often carries a token of its own, which must
/// not reach the vault's metadata or the audit log.
fn destination(url: &url::Url) -> String {
    format!("{}/", url.origin().ascii_serialization())
}

fn check_description(d: Option<String>) -> Result<String, CoreError> {
    let d = d.unwrap_or_default();
    if d.chars().count() > 500 || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(
            "/description",
            "must be at most 500 characters, without control characters",
        ));
    }
    Ok(d)
}

fn check_scheme(s: Option<&str>) -> Result<Option<SignatureScheme>, CoreError> {
    s.map(|s| {
        SignatureScheme::parse(s)
            .ok_or_else(|| invalid("/scheme", "must be `standard` or `stripe`"))
    })
    .transpose()
}

fn check_range(field: &'static str, v: Option<u32>, max: u32) -> Result<Option<u32>, CoreError> {
    match v {
        Some(n) if n == 0 || n > max => Err(invalid(field, format!("must be 1 to {max}"))),
        other => Ok(other),
    }
}

/// Stores a fresh signing secret as a vault credential of the endpoint.
async fn new_secret(
    tx: &mut dyn OrgTx,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    org: OrgId,
    endpoint: EndpointId,
    url: &url::Url,
    by: Option<bulwark_types::UserId>,
) -> Result<(CredentialId, WebhookSecret, Draft), CoreError> {
    let secret = WebhookSecret::generate().map_err(|_| CoreError::Crypto)?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let credential = vault::store_managed(
        tx,
        clock,
        wrapper,
        org,
        NewCredential {
            name: format!("webhook {endpoint} signing {}", tag.get(..8).unwrap_or("")),
            kind: "webhook_secret".into(),
            value: Zeroizing::new(secret.expose().as_bytes().to_vec()),
            destinations: vec![destination(url)],
        },
        by,
    )
    .await?;
    let draft = Draft::success(
        Payload::CredentialCreated {
            credential_id: credential.id.to_string(),
            name: credential.name.clone(),
            kind: credential.kind.clone(),
            destinations: credential.destinations.clone(),
        },
        "credential",
        credential.id.to_string(),
        Context::system(None),
    );
    Ok((credential.id, secret, draft))
}

fn endpoint_draft(payload: Payload, id: EndpointId, context: Context) -> Draft {
    Draft::success(payload, "webhook_endpoint", id.to_string(), context)
}

/// Creates an endpoint (`webhook.endpoint_created`) with a fresh signing secret, returned here
/// once and stored only sealed in the vault.
///
/// # Errors
/// `Validation`, `KeyProvider`, storage failures.
pub async fn create_endpoint(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    policy: &EgressPolicy,
    authorized: &Authorized,
    new: NewEndpoint,
) -> Result<(WebhookEndpoint, WebhookSecret), CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let url = check_url(&new.url, policy).await?;
    let description = check_description(new.description)?;
    let event_types = check_patterns(new.event_types.unwrap_or_else(|| vec!["*".into()]))?;
    let scheme = check_scheme(new.scheme.as_deref())?.unwrap_or(SignatureScheme::Standard);
    let rate_limit = check_range("/rate_limit", new.rate_limit, MAX_RATE)?.unwrap_or(DEFAULT_RATE);
    let max_in_flight = check_range("/max_in_flight", new.max_in_flight, MAX_IN_FLIGHT)?
        .unwrap_or(DEFAULT_IN_FLIGHT);
    let id = EndpointId::new();
    let mut tx = store.org(org).await?;
    if tx.webhook_endpoints().await?.len() >= MAX_ENDPOINTS {
        return Err(CoreError::State(
            "the org has 50 webhook endpoints, the most it may have: delete one first",
        ));
    }
    let (secret_id, secret, secret_draft) =
        new_secret(&mut *tx, clock, wrapper, org, id, &url, authorized.user()).await?;
    let now = clock.now();
    let endpoint = WebhookEndpoint {
        id,
        org,
        url: url.to_string(),
        description,
        event_types,
        scheme,
        enabled: true,
        disabled_reason: None,
        rate_limit,
        max_in_flight,
        secret: secret_id,
        previous_secret: None,
        previous_until: None,
        failing_since: None,
        consecutive_failures: 0,
        created_at: now,
        updated_at: now,
    };
    tx.create_webhook_endpoint(&endpoint).await?;
    let created = endpoint_draft(
        Payload::WebhookEndpointCreated {
            endpoint_id: id.to_string(),
            url: audited_url(&url),
            event_types: endpoint.event_types.clone(),
            scheme: scheme.as_str().into(),
        },
        id,
        authorized.context(),
    );
    let secret_draft = Draft {
        context: authorized.context(),
        ..secret_draft
    };
    audit::append_many(&mut *tx, Log::Org(org), vec![secret_draft, created], clock).await?;
    tx.commit().await?;
    Ok((endpoint, secret))
}

/// A URL as recorded in the audit log: its origin only (the path and query of a hook URL
/// often carry a token, as Slack's and Teams' do).
fn audited_url(url: &url::Url) -> String {
    let rest = if url.path() == "/" && url.query().is_none() {
        ""
    } else {
        "…"
    };
    format!("{}/{rest}", url.origin().ascii_serialization())
}

/// Whether `patterns` can match one of Bulwark's own (audit) event types: subscribing to those
/// reads the audit log, so it needs `audit.read` as well.
#[must_use]
pub fn reads_audit_events(patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|p| !(p == "app.*" || p.starts_with("app.")))
}

/// The org's endpoints.
///
/// # Errors
/// Storage failures.
pub async fn list_endpoints(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<Vec<WebhookEndpoint>, CoreError> {
    let org = authorized.org_for(Action::WebhooksRead)?;
    Ok(store.org_read(org).await?.webhook_endpoints().await?)
}

/// One endpoint with its latest deliveries and attempts (at most `limit` of each).
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn endpoint_log(
    store: &dyn Store,
    authorized: &Authorized,
    id: EndpointId,
    limit: u32,
) -> Result<(WebhookEndpoint, Vec<WebhookDelivery>, Vec<WebhookAttempt>), CoreError> {
    let org = authorized.org_for(Action::WebhooksRead)?;
    let mut read = store.org_read(org).await?;
    let endpoint = read
        .webhook_endpoint(id)
        .await?
        .ok_or(CoreError::NotFound)?;
    let deliveries = read.webhook_deliveries(id, limit).await?;
    let attempts = read.webhook_attempts(id, limit).await?;
    Ok((endpoint, deliveries, attempts))
}

/// Changes an endpoint (`webhook.endpoint_updated`). Enabling it clears its failure count. A
/// new URL moves its signing secrets' destination, and their values are sealed again for it.
///
/// # Errors
/// `Validation`, `NotFound`, `Sealed` (a signing secret that does not open: nothing changes),
/// `KeyProvider`, storage failures.
pub async fn update_endpoint(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    policy: &EgressPolicy,
    authorized: &Authorized,
    id: EndpointId,
    patch: EndpointPatch,
) -> Result<WebhookEndpoint, CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let url = match &patch.url {
        Some(raw) => Some(check_url(raw, policy).await?),
        None => None,
    };
    let description = patch
        .description
        .map(|d| check_description(Some(d)))
        .transpose()?;
    let event_types = patch.event_types.map(check_patterns).transpose()?;
    let scheme = check_scheme(patch.scheme.as_deref())?;
    let rate_limit = check_range("/rate_limit", patch.rate_limit, MAX_RATE)?;
    let max_in_flight = check_range("/max_in_flight", patch.max_in_flight, MAX_IN_FLIGHT)?;
    let mut tx = store.org(org).await?;
    let mut e = tx
        .lock_webhook_endpoint(id)
        .await?
        .ok_or(CoreError::NotFound)?;
    if let Some(url) = &url {
        e.url = url.to_string();
        // The secrets' values are bound to their destinations: sealed again for the new one.
        for secret in [Some(e.secret), e.previous_secret].into_iter().flatten() {
            vault::set_managed_destinations(
                &mut *tx,
                clock,
                wrapper,
                secret,
                vec![destination(url)],
            )
            .await?;
        }
    }
    e.description = description.unwrap_or(e.description);
    e.event_types = event_types.unwrap_or(e.event_types);
    e.scheme = scheme.unwrap_or(e.scheme);
    e.rate_limit = rate_limit.unwrap_or(e.rate_limit);
    e.max_in_flight = max_in_flight.unwrap_or(e.max_in_flight);
    match patch.enabled {
        Some(true) if !e.enabled => {
            e.enabled = true;
            e.disabled_reason = None;
            e.failing_since = None;
            e.consecutive_failures = 0;
        }
        Some(false) => {
            e.enabled = false;
            e.disabled_reason = None;
        }
        _ => {}
    }
    e.updated_at = clock.now();
    if !tx.update_webhook_endpoint(&e).await? {
        return Err(CoreError::NotFound);
    }
    let url = url::Url::parse(&e.url)
        .map_err(|_| CoreError::Store(StoreError::Corrupt("endpoint url".into())))?;
    let draft = endpoint_draft(
        Payload::WebhookEndpointUpdated {
            endpoint_id: id.to_string(),
            url: audited_url(&url),
            event_types: e.event_types.clone(),
            enabled: e.enabled,
        },
        id,
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(e)
}

/// Deletes an endpoint with its queue, attempt log and signing secrets
/// (`webhook.endpoint_deleted`, `credential.deleted`).
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn delete_endpoint(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    id: EndpointId,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let mut tx = store.org(org).await?;
    let e = tx
        .lock_webhook_endpoint(id)
        .await?
        .ok_or(CoreError::NotFound)?;
    tx.delete_webhook_endpoint(id).await?;
    let mut drafts = vec![endpoint_draft(
        Payload::WebhookEndpointDeleted {
            endpoint_id: id.to_string(),
        },
        id,
        authorized.context(),
    )];
    for secret in [Some(e.secret), e.previous_secret].into_iter().flatten() {
        tx.delete_credential(secret).await?;
        drafts.push(Draft::success(
            Payload::CredentialDeleted {
                credential_id: secret.to_string(),
            },
            "credential",
            secret.to_string(),
            authorized.context(),
        ));
    }
    audit::append_many(&mut *tx, Log::Org(org), drafts, clock).await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces the signing secret (`webhook.secret_rotated`); the old one keeps signing for
/// `overlap_secs` (a secret older than that is deleted now). The new secret is returned once.
///
/// # Errors
/// `Validation` on `/overlap_secs`, `NotFound`, `KeyProvider`, storage failures.
pub async fn rotate_secret(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    authorized: &Authorized,
    id: EndpointId,
    overlap_secs: Option<u32>,
) -> Result<(WebhookEndpoint, WebhookSecret), CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let overlap = overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(invalid(
            "/overlap_secs",
            format!("must be 0 to {MAX_OVERLAP_SECS}"),
        ));
    }
    let mut tx = store.org(org).await?;
    let mut e = tx
        .lock_webhook_endpoint(id)
        .await?
        .ok_or(CoreError::NotFound)?;
    let url = url::Url::parse(&e.url)
        .map_err(|_| CoreError::Store(StoreError::Corrupt("endpoint url".into())))?;
    let (secret_id, secret, secret_draft) =
        new_secret(&mut *tx, clock, wrapper, org, id, &url, authorized.user()).await?;
    let mut drafts = vec![Draft {
        context: authorized.context(),
        ..secret_draft
    }];
    // Only one old secret signs at a time: one still in its overlap is dropped now (after the
    // endpoint stops pointing at it).
    let mut dropped: Vec<CredentialId> = e.previous_secret.take().into_iter().collect();
    let now = clock.now();
    if overlap == 0 {
        dropped.push(e.secret);
        e.previous_until = None;
    } else {
        e.previous_secret = Some(e.secret);
        e.previous_until = Some(now + time::Duration::seconds(i64::from(overlap)));
    }
    e.secret = secret_id;
    e.updated_at = now;
    tx.update_webhook_endpoint(&e).await?;
    for old in dropped {
        drafts.push(deleted_secret(&mut *tx, old, authorized.context()).await?);
    }
    drafts.push(endpoint_draft(
        Payload::WebhookSecretRotated {
            endpoint_id: id.to_string(),
            overlap_secs: overlap,
        },
        id,
        authorized.context(),
    ));
    audit::append_many(&mut *tx, Log::Org(org), drafts, clock).await?;
    tx.commit().await?;
    Ok((e, secret))
}

async fn deleted_secret(
    tx: &mut dyn OrgTx,
    id: CredentialId,
    context: Context,
) -> Result<Draft, CoreError> {
    tx.delete_credential(id).await?;
    Ok(Draft::success(
        Payload::CredentialDeleted {
            credential_id: id.to_string(),
        },
        "credential",
        id.to_string(),
        context,
    ))
}

/// Queues a delivery's message again for its endpoint (`webhook.requeued`, cause `resend`).
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn resend(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    delivery: DeliveryId,
) -> Result<DeliveryId, CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    let mut tx = store.org(org).await?;
    let d = tx
        .webhook_delivery(delivery)
        .await?
        .ok_or(CoreError::NotFound)?;
    let now = clock.now();
    let id = tx
        .webhook_requeue(d.message, d.endpoint, unix_ms(now), now)
        .await?;
    let draft = endpoint_draft(
        Payload::WebhookRequeued {
            endpoint_id: d.endpoint.to_string(),
            cause: "resend".into(),
            messages: 1,
            since: None,
            until: None,
        },
        d.endpoint,
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(id)
}

/// Queues again, for one endpoint, every message created in `[since, until)` that it is
/// subscribed to (`webhook.requeued`, cause `replay`); returns how many.
///
/// # Errors
/// `Validation` on `/since`/`/until`, `NotFound`, storage failures.
pub async fn replay(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    endpoint: EndpointId,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<u64, CoreError> {
    let org = authorized.org_for(Action::WebhooksWrite)?;
    if since >= until || until - since > time::Duration::days(MAX_REPLAY_DAYS) {
        return Err(invalid(
            "/until",
            format!("must be after `since`, at most {MAX_REPLAY_DAYS} days later"),
        ));
    }
    let mut tx = store.org(org).await?;
    let e = tx
        .webhook_endpoint(endpoint)
        .await?
        .ok_or(CoreError::NotFound)?;
    let now = clock.now();
    let (mut after, mut queued) = (None, 0u64);
    loop {
        let page = tx
            .webhook_messages_between(since, until, after, 500)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for m in page
            .iter()
            .filter(|m| subscribed(&e.event_types, &m.event_type))
        {
            queued += 1;
            if queued > MAX_REPLAY_MESSAGES {
                return Err(invalid(
                    "/until",
                    format!(
                        "the range holds more than {MAX_REPLAY_MESSAGES} messages for this endpoint; replay a shorter one"
                    ),
                ));
            }
            tx.webhook_requeue(m.id, endpoint, unix_ms(now), now)
                .await?;
        }
    }
    let draft = endpoint_draft(
        Payload::WebhookRequeued {
            endpoint_id: endpoint.to_string(),
            cause: "replay".into(),
            messages: queued,
            since: since
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
            until: until
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
        },
        endpoint,
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(queued)
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// The retry schedule: the delay after the n-th failed attempt, each stretched or shrunk by
/// up to `jitter` (a fraction) at random so that retries of many deliveries spread out.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Delays after attempt 1, 2, …; the delivery fails after `delays.len() + 1` attempts.
    pub delays: Vec<Duration>,
    /// 0.0–0.5.
    pub jitter: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        let h = 3600;
        Self {
            delays: [5, 300, 1800, 2 * h, 5 * h, 10 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
        }
    }
}

impl Schedule {
    /// When to try again after attempt `attempt` (1-based) failed at `now_ms`, with `unit` a
    /// random number in `[0, 1)`; `None` when the schedule is spent.
    #[must_use]
    pub fn retry_at(&self, attempt: u32, now_ms: i64, unit: f64) -> Option<i64> {
        let base = self
            .delays
            .get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let delay = (base.as_millis() as f64 * factor) as i64;
        Some(now_ms.saturating_add(delay.max(0)))
    }
}

/// When Bulwark disables an endpoint: after at least `failures` failed attempts in a row
/// spanning at least `period` (both, so a burst of failures in a minute does not disable, nor
/// does one failure a day).
#[derive(Debug, Clone, Copy)]
pub struct DisablePolicy {
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Since the first of them.
    pub period: Duration,
}

impl Default for DisablePolicy {
    fn default() -> Self {
        Self {
            failures: 20,
            period: Duration::from_secs(24 * 3600),
        }
    }
}

/// Deliveries claimed in one org, with the endpoints they go to.
pub struct Claimed {
    /// The deliveries.
    pub deliveries: Vec<ClaimedDelivery>,
    /// Their endpoints.
    pub endpoints: HashMap<EndpointId, WebhookEndpoint>,
}

/// Claims due deliveries of `org`, at most `max` in all, each endpoint at most up to its
/// in-flight cap and what `allow(endpoint, room)` grants (the caller's rate limiter), each
/// held until `now + lease`. A signing secret past its overlap is deleted on the way.
///
/// # Errors
/// Storage failures.
pub async fn claim(
    store: &dyn Store,
    clock: &dyn Clock,
    org: OrgId,
    lease: Duration,
    max: u32,
    allow: &mut (dyn FnMut(&WebhookEndpoint, u32) -> u32 + Send),
) -> Result<Claimed, CoreError> {
    let now = clock.now();
    let now_ms = unix_ms(now);
    let lease_until = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let mut tx = store.org(org).await?;
    let mut out = Claimed {
        deliveries: Vec::new(),
        endpoints: HashMap::new(),
    };
    let mut drafts = Vec::new();
    for (id, cap) in tx.webhook_due_endpoints(now_ms).await? {
        let left = max.saturating_sub(u32::try_from(out.deliveries.len()).unwrap_or(u32::MAX));
        if left == 0 {
            break;
        }
        let Some(mut e) = tx.webhook_endpoint(id).await? else {
            continue;
        };
        if e.previous_until.is_some_and(|until| until <= now)
            && let Some(old) = e.previous_secret.take()
        {
            e.previous_until = None;
            tx.update_webhook_endpoint(&e).await?;
            drafts.push(deleted_secret(&mut *tx, old, Context::system(None)).await?);
        }
        let room = cap.saturating_sub(tx.webhook_in_flight(id, now_ms).await?);
        let n = allow(&e, room.min(left));
        if n == 0 {
            continue;
        }
        let claimed = tx.webhook_claim(id, now_ms, lease_until, n).await?;
        if !claimed.is_empty() {
            out.deliveries.extend(claimed);
            out.endpoints.insert(id, e);
        }
    }
    if !drafts.is_empty() {
        audit::append_many(&mut *tx, Log::Org(org), drafts, clock).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// Logs attempts and moves their deliveries on; updates each endpoint's failure count and
/// disables one that has failed per `policy` (`webhook.endpoint_disabled`).
///
/// # Errors
/// Storage failures.
pub async fn finish(
    store: &dyn Store,
    clock: &dyn Clock,
    org: OrgId,
    results: &[AttemptResult],
    policy: DisablePolicy,
) -> Result<(), CoreError> {
    let mut tx = store.org(org).await?;
    // Endpoint rows first, in id order, as the admin paths take them: a delete that holds an
    // endpoint and waits for its deliveries cannot deadlock with this batch.
    let mut endpoints: Vec<EndpointId> = results.iter().map(|r| r.attempt.endpoint).collect();
    endpoints.sort_by_key(|e| e.as_uuid());
    endpoints.dedup();
    for id in &endpoints {
        tx.lock_webhook_endpoint(*id).await?;
    }
    tx.webhook_finish(results).await?;
    let mut by_endpoint: HashMap<EndpointId, Vec<&WebhookAttempt>> = HashMap::new();
    for r in results.iter().filter(|r| r.counts) {
        by_endpoint
            .entry(r.attempt.endpoint)
            .or_default()
            .push(&r.attempt);
    }
    let mut drafts = Vec::new();
    for (id, mut attempts) in by_endpoint {
        attempts.sort_by_key(|a| a.at);
        // Only the attempts after the last success count; a success resets the count.
        let last_ok = attempts.iter().rposition(|a| a.delivered);
        let after = last_ok.map_or(0, |i| i + 1);
        let failed = attempts.get(after..).unwrap_or_default();
        let first_failure = failed.first().map(|a| a.at);
        let failures = u32::try_from(failed.len()).unwrap_or(u32::MAX);
        let Some((enabled, count, since)) = tx
            .webhook_endpoint_health(id, last_ok.is_some(), failures, first_failure)
            .await?
        else {
            continue;
        };
        let sustained = since
            .is_some_and(|since| clock.now() - since >= policy.period && count >= policy.failures);
        if enabled && sustained && tx.disable_webhook_endpoint(id, "sustained_failure").await? {
            let since = since
                .and_then(|s| {
                    s.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            drafts.push(endpoint_draft(
                Payload::WebhookEndpointDisabled {
                    endpoint_id: id.to_string(),
                    consecutive_failures: count,
                    failing_since: since,
                },
                id,
                Context::system(None),
            ));
        }
    }
    if !drafts.is_empty() {
        audit::append_many(&mut *tx, Log::Org(org), drafts, clock).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes, in each org, messages older than `keep` with their deliveries (pending ones too: a
/// message never outlives the retention, which never outlives the audit event it copies) and
/// attempts. Returns how many messages; an org that fails is logged and skipped.
///
/// # Errors
/// Storage failures listing the orgs.
pub async fn prune(store: &dyn Store, clock: &dyn Clock, keep: Duration) -> Result<u64, CoreError> {
    let before =
        unix_ms(clock.now()).saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let mut pruned = 0;
    for org in store.webhook_prunable_orgs(before).await? {
        let done = async {
            let mut tx = store.org(org).await?;
            let n = tx.webhook_prune(before).await?;
            tx.commit().await?;
            Ok::<u64, StoreError>(n)
        };
        match done.await {
            Ok(n) => pruned += n,
            Err(e) => tracing::warn!(%org, error = %e, "cannot prune webhook messages"),
        }
    }
    Ok(pruned)
}

/// The delivered body: `{"type":…,"timestamp":…,"data":…}` (the same bytes on every attempt).
#[must_use]
pub fn body(m: &WebhookMessage) -> Vec<u8> {
    let ts = m
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"type\":{},\"timestamp\":{},\"data\":{}}}",
        quote(&m.event_type),
        quote(&ts),
        m.payload
    )
    .into_bytes()
}

/// The headers of one attempt at `timestamp` (Unix seconds), signed with each of `secrets`
/// (the current one first; the previous one too during a rotation overlap).
///
/// # Errors
/// `Crypto` when a stored secret is not a `whsec_` secret.
pub fn signed_headers(
    scheme: SignatureScheme,
    secrets: &[&WebhookSecret],
    message: MessageId,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, CoreError> {
    let id = message.to_string();
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("user-agent", "Bulwark-Webhooks/1".to_owned()),
        ("webhook-id", id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    match scheme {
        SignatureScheme::Standard => headers.push((
            "webhook-signature",
            bulwark_crypto::webhook::sign_standard(secrets, &id, timestamp, body)
                .map_err(|_| CoreError::Crypto)?,
        )),
        SignatureScheme::Stripe => headers.push((
            "bulwark-signature",
            bulwark_crypto::webhook::sign_stripe(secrets, timestamp, body),
        )),
    }
    Ok(headers)
}

/// The destination a signing secret is opened for (`vault::use_value` checks it).
#[must_use]
pub fn secret_destination(endpoint: &WebhookEndpoint) -> String {
    url::Url::parse(&endpoint.url).map_or_else(|_| endpoint.url.clone(), |u| destination(&u))
}

/// The start of a response body for the attempt log: at most [`KEPT_RESPONSE_BYTES`], invalid
/// UTF-8 and control characters replaced.
#[must_use]
pub fn kept_response(body: &[u8]) -> String {
    let cut = body.get(..KEPT_RESPONSE_BYTES).unwrap_or(body);
    // Control characters (NUL, which PostgreSQL text cannot hold, among them) become U+FFFD.
    let mut text: String = String::from_utf8_lossy(cut)
        .chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    if body.len() > KEPT_RESPONSE_BYTES {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_patterns() {
        for ok in [
            "*",
            "member.added",
            "member.*",
            "auth.*",
            "auth.login.*",
            "auth.login.failed",
            "app.invoice.paid",
            "app.*",
            "app.billing.*",
            "webhook.*",
        ] {
            assert!(valid_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "member",
            "nope.*",
            "member.nope",
            "app.",
            "app..x",
            "app.Invoice",
            "*.added",
            "member.**",
            "app",
            // Written to the system log only: an org's endpoint would never receive them.
            "auth.mfa.*",
            "auth.mfa.enrolled",
            "license.*",
            "license.activated",
            "setup.completed",
            "vault.key_rotated",
        ] {
            assert!(!valid_pattern(bad), "{bad}");
        }
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(subscribed(&p(&["member.*"]), "member.added"));
        assert!(!subscribed(&p(&["member.*"]), "members.added"));
        assert!(!subscribed(&p(&["member.added"]), "member.added2"));
        assert!(subscribed(&p(&["*"]), "app.x"));
        assert!(subscribed(&p(&["app.billing.*"]), "app.billing.paid"));
        assert!(!subscribed(&p(&["app.billing.*"]), "app.billingx"));
    }

    #[test]
    fn system_only_types_are_catalog_types() {
        for t in SYSTEM_ONLY_TYPES {
            assert!(is_bulwark_type(t), "`{t}` is not in the catalog");
            assert!(!reaches_orgs(t));
        }
    }

    #[test]
    fn the_schedule_backs_off_with_bounded_jitter_then_stops() {
        let s = Schedule::default();
        assert_eq!(s.retry_at(1, 0, 0.5), Some(5_000));
        assert_eq!(s.retry_at(1, 0, 0.0), Some(4_000));
        assert_eq!(s.retry_at(1, 0, 0.999_999), Some(5_999));
        assert_eq!(s.retry_at(2, 1_000, 0.5), Some(301_000));
        assert_eq!(s.retry_at(6, 0, 0.5), Some(36_000_000));
        assert_eq!(s.retry_at(7, 0, 0.5), None);
        assert_eq!(s.retry_at(0, 0, 0.5), None);
    }

    #[test]
    fn the_body_is_stable_json() {
        let m = WebhookMessage {
            id: MessageId::new(),
            event_type: "app.x".into(),
            payload: "{\"a\":\"\\\"q\"}".into(),
            idempotency_key: None,
            request_hash: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let b = body(&m);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "app.x");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v["data"]["a"], "\"q");
        assert_eq!(body(&m), b);
        assert_eq!(kept_response(&[b'a'; 2000]).chars().count(), 1025);
        assert_eq!(kept_response(b"ok"), "ok");
        assert_eq!(kept_response(b"ok\0\x1b[2J\n"), "ok\u{fffd}\u{fffd}[2J\n");
    }
}
