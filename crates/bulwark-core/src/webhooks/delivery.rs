//! The delivery side: what the server's workers follow to claim due deliveries, sign and send
//! them, log each attempt and schedule the next ([`Schedule`]), and disable an endpoint that
//! keeps failing ([`DisablePolicy`]); and the re-deliveries an admin asks for ([`resend`],
//! [`replay`]).

use std::collections::HashMap;
use std::time::Duration;

use bulwark_audit::event::{Context, Payload};
use bulwark_authz::Action;
use bulwark_crypto::webhook::WebhookSecret;
use bulwark_types::{Clock, DeliveryId, EndpointId, MessageId, OrgId};
use time::OffsetDateTime;

use super::endpoints::{deleted_secret, destination, endpoint_draft};
use super::{invalid, subscribed, unix_ms};
use crate::CoreError;
use crate::audit::{self, Log};
use crate::authz::Authorized;
use crate::model::{
    AttemptResult, ClaimedDelivery, SignatureScheme, WebhookAttempt, WebhookEndpoint,
    WebhookMessage,
};
use crate::ports::Store;

/// The longest time range one replay covers.
pub const MAX_REPLAY_DAYS: i64 = 31;
/// Messages one replay queues at most.
pub const MAX_REPLAY_MESSAGES: u64 = 100_000;
/// Response bytes kept in the attempt log.
pub const KEPT_RESPONSE_BYTES: usize = 1024;

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
            crate::metrics::metrics().webhook_disabled.inc(&[]);
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
