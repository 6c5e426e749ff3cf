//! The webhook delivery worker: claims due deliveries (`bulwark_core::webhooks::claim`), signs
//! and sends them through the guarded egress client, and records every attempt in batches
//! (`bulwark_core::webhooks::finish`).
//!
//! At-least-once: a delivery is held under a lease while it is sent; a process that dies mid-way
//! leaves the lease to expire and any replica sends it again. Receivers deduplicate on
//! `webhook-id`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_core::model::{AttemptResult, ClaimedDelivery, WebhookAttempt, WebhookEndpoint};
use bulwark_core::ports::Store;
use bulwark_core::webhooks::{self, DisablePolicy, Schedule, unix_ms};
use bulwark_crypto::vault::KeyWrapper;
use bulwark_crypto::webhook::WebhookSecret;
use bulwark_types::{Clock, CredentialId, EndpointId, OrgId};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::config::WebhooksConfig;
use crate::egress::{Egress, SendError};

/// How long an opened signing secret is kept in memory before it is opened (and audited) again.
const SECRET_TTL: Duration = Duration::from_secs(300);
/// How long a secret that did not open is not tried again (its deliveries wait as long).
const SECRET_RETRY: Duration = Duration::from_secs(30);
/// How often old messages are pruned and idle in-memory entries dropped.
const HOUSEKEEPING: Duration = Duration::from_secs(600);
/// Attempts recorded per transaction at most.
const RECORD_BATCH: usize = 500;

/// One delivery in flight for an org; counted down when dropped, however the task ends, and
/// the worker told that a slot came free (an org held at its share may then take it).
struct Busy(Arc<Mutex<HashMap<OrgId, usize>>>, OrgId, Arc<Notify>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut busy = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = busy.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                busy.remove(&self.1);
            }
        }
        self.2.notify_one();
    }
}

/// A secret opened at a time (`None`: it did not open).
type Opened = (Option<Arc<WebhookSecret>>, Instant);

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The worker.
pub struct Deliverer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    vault: Arc<dyn KeyWrapper>,
    egress: Egress,
    config: WebhooksConfig,
    schedule: Schedule,
    disable: DisablePolicy,
    wake: Arc<Notify>,
    /// Opened secrets (or `None`: did not open) by credential and destination, with when.
    secrets: Mutex<HashMap<(CredentialId, String), Opened>>,
    buckets: Mutex<HashMap<EndpointId, Bucket>>,
    rounds: std::sync::atomic::AtomicUsize,
    /// Deliveries in flight from this process, by org.
    busy: Arc<Mutex<HashMap<OrgId, usize>>>,
    /// Notified when a delivery ends (its slot came free).
    freed: Arc<Notify>,
}

impl Deliverer {
    /// A worker over `store`, sending through `egress`; `wake` cuts an idle wait short.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        vault: Arc<dyn KeyWrapper>,
        egress: Egress,
        config: WebhooksConfig,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            schedule: Schedule {
                delays: config
                    .retry_schedule_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
                jitter: config.retry_jitter,
            },
            disable: DisablePolicy {
                failures: config.disable_after_failures,
                period: Duration::from_secs(config.disable_after_secs),
            },
            store,
            clock,
            vault,
            egress,
            config,
            wake,
            secrets: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            rounds: std::sync::atomic::AtomicUsize::new(0),
            busy: Arc::default(),
            freed: Arc::new(Notify::new()),
        }
    }

    /// How long a claimed delivery is held: long enough to send it and record the attempt.
    fn lease(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms.saturating_mul(2)) + Duration::from_secs(5)
    }

    /// Runs until `stop` resolves, then lets deliveries in flight finish and records them.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()> + Send) {
        let concurrency = usize::try_from(self.config.concurrency).unwrap_or(64);
        let permits = Arc::new(Semaphore::new(concurrency));
        let (results, rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(Arc::clone(&self).record(rx));
        let housekeeper = tokio::spawn(Arc::clone(&self).housekeeping());
        tokio::pin!(stop);
        loop {
            let claimed = tokio::select! {
                () = &mut stop => break,
                n = self.round(&permits, &results) => n,
            };
            if claimed > 0 {
                continue;
            }
            let idle = Duration::from_millis(self.config.poll_interval_ms);
            // Nothing started: no work, or the due work waits for slots its orgs hold. Look
            // again after the poll interval, when woken, or when a delivery ends.
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(idle) => {}
                () = self.wake.notified() => {}
                () = self.freed.notified() => {}
            }
        }
        // Let sends in flight end (each is bounded by the timeout), then flush the log.
        let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(self.lease(), permits.acquire_many(all)).await;
        drop(results);
        housekeeper.abort();
        let _ = recorder.await;
    }

    /// Prunes messages past their retention and drops idle in-memory entries, now and then.
    async fn housekeeping(self: Arc<Self>) {
        let keep = Duration::from_secs(u64::from(self.config.message_retention_days) * 86_400);
        loop {
            match webhooks::prune(&*self.store, &*self.clock, keep).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(messages = n, "pruned webhook messages past their retention")
                }
                Err(e) => tracing::warn!(error = %e, "cannot prune webhook messages"),
            }
            self.secrets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|_, (_, at)| at.elapsed() < SECRET_TTL);
            self.buckets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|_, b| b.at.elapsed() < HOUSEKEEPING);
            tokio::time::sleep(HOUSEKEEPING).await;
        }
    }

    /// One look for due work across orgs; returns how many deliveries it started.
    async fn round(
        &self,
        permits: &Arc<Semaphore>,
        results: &mpsc::UnboundedSender<(OrgId, AttemptResult)>,
    ) -> usize {
        // Wait for room before looking, so a claim never outruns the senders; under load, let
        // a quarter of the slots free up (at most 10 ms) so claims come in batches, not one
        // transaction per delivery.
        match permits.acquire().await {
            Ok(p) => drop(p),
            Err(_) => return 0,
        }
        let quarter = usize::try_from(self.config.concurrency / 4)
            .unwrap_or(1)
            .max(1);
        let waited = Instant::now();
        while permits.available_permits() < quarter && waited.elapsed() < Duration::from_millis(10)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let now_ms = unix_ms(self.clock.now());
        let orgs = match self.store.webhook_due_orgs(now_ms).await {
            Ok(orgs) => orgs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for due webhook deliveries");
                return 0;
            }
        };
        let mut started = 0;
        // Fair shares: each org gets at most its part of the free room this round and of the
        // whole (its deliveries in flight count), and the first org turns from round to round.
        // An org alone still leaves a sixteenth of the slots (at least one) free, so another
        // org's first message never waits for a slow receiver's timeouts.
        let mut orgs = orgs;
        if !orgs.is_empty() {
            let turn = self
                .rounds
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n = orgs.len();
            orgs.rotate_left(turn % n);
        }
        let total = usize::try_from(self.config.concurrency).unwrap_or(64);
        let busy_now = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let active = busy_now
            .iter()
            .filter(|(org, n)| **n > 0 && !orgs.contains(org))
            .count()
            + orgs.len();
        let per_org = if active <= 1 {
            total.saturating_sub((total / 16).max(1)).max(1)
        } else {
            total.div_ceil(active)
        };
        let count = orgs.len();
        for (i, org) in orgs.into_iter().enumerate() {
            let available = permits.available_permits();
            let held = busy_now.get(&org).copied().unwrap_or(0);
            let share = available
                .div_ceil(count - i)
                .min(per_org.saturating_sub(held));
            let free = u32::try_from(share).unwrap_or(u32::MAX);
            if free == 0 {
                continue;
            }
            let mut allow = |e: &WebhookEndpoint, room: u32| self.take_tokens(e, room);
            let claimed = match webhooks::claim(
                &*self.store,
                &*self.clock,
                org,
                self.lease(),
                free,
                &mut allow,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%org, error = %e, "cannot claim webhook deliveries");
                    continue;
                }
            };
            let mut signing = HashMap::new();
            for (id, e) in &claimed.endpoints {
                signing.insert(*id, self.signing_secrets(org, e).await);
            }
            let endpoints = Arc::new(claimed.endpoints);
            let signing = Arc::new(signing);
            for d in claimed.deliveries {
                let Ok(permit) = Arc::clone(permits).acquire_owned().await else {
                    break;
                };
                started += 1;
                *self
                    .busy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(org)
                    .or_default() += 1;
                let busy = Busy(Arc::clone(&self.busy), org, Arc::clone(&self.freed));
                let (endpoints, signing, results) = (
                    Arc::clone(&endpoints),
                    Arc::clone(&signing),
                    results.clone(),
                );
                let egress = self.egress.clone();
                let (clock, schedule) = (Arc::clone(&self.clock), self.schedule.clone());
                tokio::spawn(async move {
                    let Some(e) = endpoints.get(&d.endpoint) else {
                        return;
                    };
                    let secrets = signing.get(&d.endpoint).and_then(Option::as_ref);
                    let result = attempt(&egress, &*clock, &schedule, e, secrets, d).await;
                    let outcome = match (result.attempt.delivered, result.counts) {
                        (true, _) => "delivered",
                        (false, true) => "failed",
                        (false, false) => "unavailable",
                    };
                    bulwark_core::metrics::metrics()
                        .webhook_attempts
                        .inc(&[outcome, &bulwark_core::metrics::org_label(Some(org))]);
                    drop(busy);
                    drop(permit);
                    let _ = results.send((org, result));
                });
            }
        }
        started
    }

    /// Takes up to `room` tokens from the endpoint's bucket (its rate per second, refilled
    /// continuously, at most one second's worth banked).
    fn take_tokens(&self, e: &WebhookEndpoint, room: u32) -> u32 {
        let rate = f64::from(e.rate_limit);
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = buckets.entry(e.id).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = rate.min(b.tokens + now.duration_since(b.at).as_secs_f64() * rate);
        b.at = now;
        let n = (b.tokens.floor() as u32).min(room);
        b.tokens -= f64::from(n);
        n
    }

    /// The endpoint's signing secrets (current first, then the previous one during its
    /// overlap), from memory or opened from the vault (each opening audited as a use).
    async fn signing_secrets(
        &self,
        org: OrgId,
        e: &WebhookEndpoint,
    ) -> Option<Vec<Arc<WebhookSecret>>> {
        let now = self.clock.now();
        let mut ids = vec![e.secret];
        if let (Some(prev), Some(until)) = (e.previous_secret, e.previous_until)
            && until > now
        {
            ids.push(prev);
        }
        let destination = webhooks::secret_destination(e);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let key = (id, destination.clone());
            let cached = self
                .secrets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&key)
                .filter(|(s, at)| {
                    at.elapsed()
                        < if s.is_some() {
                            SECRET_TTL
                        } else {
                            SECRET_RETRY
                        }
                })
                .map(|(s, _)| s.clone());
            let secret = match cached {
                Some(s) => s,
                None => {
                    let opened = bulwark_core::vault::use_value(
                        &*self.store,
                        &*self.clock,
                        &*self.vault,
                        org,
                        id,
                        &destination,
                        webhooks::SIGNING_PURPOSE,
                    )
                    .await;
                    let parsed = opened.ok().and_then(|bytes| {
                        std::str::from_utf8(&bytes)
                            .ok()
                            .and_then(|t| WebhookSecret::parse(t).ok())
                    });
                    let secret = parsed.map(Arc::new);
                    if secret.is_none() {
                        tracing::warn!(%org, endpoint = %e.id, "a webhook signing secret did not open");
                    }
                    self.secrets
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(key, (secret.clone(), Instant::now()));
                    secret
                }
            };
            out.push(secret?);
        }
        Some(out)
    }

    /// Records attempts as they come, a batch per org and transaction.
    async fn record(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<(OrgId, AttemptResult)>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < RECORD_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let mut by_org: HashMap<OrgId, Vec<AttemptResult>> = HashMap::new();
            for (org, r) in batch {
                by_org.entry(org).or_default().push(r);
            }
            for (org, results) in by_org {
                let mut tries = 0;
                while let Err(e) =
                    webhooks::finish(&*self.store, &*self.clock, org, &results, self.disable).await
                {
                    tries += 1;
                    if tries == 3 {
                        // One result the database refuses must not sink the others: record
                        // them one by one. What still fails is sent again once its lease
                        // expires (at least once).
                        tracing::warn!(%org, error = %e, attempts = results.len(), "cannot record a batch of webhook attempts; recording one by one");
                        for r in &results {
                            let one = std::slice::from_ref(r);
                            if let Err(e) =
                                webhooks::finish(&*self.store, &*self.clock, org, one, self.disable)
                                    .await
                            {
                                tracing::warn!(%org, delivery = %r.attempt.delivery, error = %e, "cannot record a webhook attempt");
                            }
                        }
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

fn unit_random() -> f64 {
    let bytes = bulwark_crypto::random_bytes::<8>().unwrap_or([0x80; 8]);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Signs and sends one delivery; what happened and what comes next.
async fn attempt(
    egress: &Egress,
    clock: &dyn Clock,
    schedule: &Schedule,
    e: &WebhookEndpoint,
    secrets: Option<&Vec<Arc<WebhookSecret>>>,
    d: ClaimedDelivery,
) -> AttemptResult {
    let at = clock.now();
    let start = Instant::now();
    let Some(secrets) = secrets else {
        // Bulwark's own failure (the key provider): the receiver is not at fault, and the
        // delivery waits, outside its schedule, for the secret to open again.
        return AttemptResult {
            attempt: WebhookAttempt {
                delivery: d.id,
                message: d.message.id,
                endpoint: d.endpoint,
                attempt: d.attempt,
                at,
                status: None,
                latency_ms: 0,
                error: Some("the signing secret is unavailable (key provider); retrying".into()),
                response: None,
                delivered: false,
            },
            retry_at_ms: Some(unix_ms(at).saturating_add(30_000)),
            counts: false,
        };
    };
    let outcome = send(egress, e, secrets, &d, at.unix_timestamp()).await;
    let latency_ms = u32::try_from(start.elapsed().as_millis()).unwrap_or(u32::MAX);
    let (status, error, response, delivered) = match outcome {
        Ok(answer) => (
            Some(answer.status),
            None,
            Some(webhooks::kept_response(&answer.body)),
            (200..300).contains(&answer.status),
        ),
        Err(why) => (None, Some(why), None, false),
    };
    let retry_at_ms = if delivered {
        None
    } else {
        schedule.retry_at(d.attempt, unix_ms(clock.now()), unit_random())
    };
    AttemptResult {
        attempt: WebhookAttempt {
            delivery: d.id,
            message: d.message.id,
            endpoint: d.endpoint,
            attempt: d.attempt,
            at,
            status,
            latency_ms,
            error,
            response,
            delivered,
        },
        retry_at_ms,
        counts: true,
    }
}

async fn send(
    egress: &Egress,
    e: &WebhookEndpoint,
    secrets: &[Arc<WebhookSecret>],
    d: &ClaimedDelivery,
    timestamp: i64,
) -> Result<crate::egress::Answer, String> {
    let refs: Vec<&WebhookSecret> = secrets.iter().map(AsRef::as_ref).collect();
    let url = url::Url::parse(&e.url).map_err(|_| "the endpoint URL does not parse".to_owned())?;
    let body = webhooks::body(&d.message);
    let headers = webhooks::signed_headers(e.scheme, &refs, d.message.id, timestamp, &body)
        .map_err(|_| "the signing secret is malformed".to_owned())?;
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    egress
        .post(&url, &headers, body)
        .await
        .map_err(|e| match e {
            SendError::Refused(why) => format!("destination refused: {why}"),
            SendError::Timeout(t) => format!("no answer within {} ms", t.as_millis()),
            SendError::Failed(why) => why,
        })
}
