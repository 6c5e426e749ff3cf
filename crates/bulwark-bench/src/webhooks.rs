//! `bulwark-bench webhooks`: signed deliveries per second through the real queue and worker
//! (outbox rows, claims under leases, HMAC signing, the guarded egress client, the attempt log)
//! to a local receiver, beside a bare HTTP client loop posting the same bodies to the same
//! receiver at the same concurrency; then enqueue-to-delivery latency at a steady rate, beside
//! the bare request latency at that rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_core::model::{Credential, SignatureScheme, WebhookEndpoint, WebhookMessage};
use bulwark_core::ports::Store;
use bulwark_crypto::Seed;
use bulwark_crypto::vault::SeedWrapper;
use bulwark_crypto::webhook::WebhookSecret;
use bulwark_server::config::{Config, WebhooksConfig};
use bulwark_server::egress::{Egress, Limits};
use bulwark_server::workers::webhooks::Deliverer;
use bulwark_types::{Clock as _, CredentialId, EndpointId, MessageId, OrgId, SystemClock};

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A receiver that notes when each `webhook-id` (or `x-bench-id`) arrived and answers 204.
async fn receiver() -> anyhow::Result<(String, Arrivals)> {
    let seen: Arrivals = Arc::default();
    let hits = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let hits = Arc::clone(&hits);
        async move {
            let id = headers
                .get("webhook-id")
                .or_else(|| headers.get("x-bench-id"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            hits.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(id)
                .or_insert_with(Instant::now);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}/hooks"), seen))
}

fn payload(n: usize) -> String {
    format!(
        "{{\"invoice\":\"inv_{n:08}\",\"amount\":4200,\"currency\":\"EUR\",\"lines\":[{}]}}",
        (0..8)
            .map(|i| format!("{{\"sku\":\"sku-{i}\",\"qty\":{i}}}"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

async fn setup(
    store: &dyn Store,
    wrapper: &SeedWrapper,
    url: &str,
    concurrency: u32,
) -> anyhow::Result<(OrgId, EndpointId)> {
    let clock = SystemClock;
    bulwark_core::vault::ensure_initial_key(store, &clock, wrapper).await?;
    let org = crate::measure::seed_org(store).await?;
    let secret = WebhookSecret::generate()?;
    let now = clock.now();
    let credential = CredentialId::new();
    let endpoint = EndpointId::new();
    // As the API stores it: the endpoint's origin.
    let destinations = vec![format!(
        "{}/",
        url::Url::parse(url)?.origin().ascii_serialization()
    )];
    let sealed = bulwark_core::vault::seal(
        wrapper,
        org,
        credential,
        "webhook_secret",
        &destinations,
        1,
        secret.expose().as_bytes(),
    )?;
    let mut tx = store.org(org).await?;
    tx.create_credential(&Credential {
        id: credential,
        org,
        name: "bench signing secret".into(),
        kind: "webhook_secret".into(),
        destinations,
        sealed,
        created_by: None,
        created_at: now,
        updated_at: now,
        last_used_at: None,
    })
    .await?;
    tx.create_webhook_endpoint(&WebhookEndpoint {
        id: endpoint,
        org,
        url: url.into(),
        description: "bench".into(),
        event_types: vec!["app.*".into()],
        scheme: SignatureScheme::Standard,
        enabled: true,
        disabled_reason: None,
        rate_limit: bulwark_core::webhooks::MAX_RATE,
        max_in_flight: concurrency.min(bulwark_core::webhooks::MAX_IN_FLIGHT),
        secret: credential,
        previous_secret: None,
        previous_until: None,
        failing_since: None,
        consecutive_failures: 0,
        created_at: now,
        updated_at: now,
    })
    .await?;
    tx.commit().await?;
    Ok((org, endpoint))
}

/// Queues `ids.len()` messages in transactions of `batch`; returns each id's commit time.
async fn enqueue(
    store: &dyn Store,
    org: OrgId,
    endpoint: EndpointId,
    ids: &[MessageId],
    batch: usize,
    first: usize,
) -> anyhow::Result<Vec<(String, Instant)>> {
    let mut out = Vec::with_capacity(ids.len());
    for (c, chunk) in ids.chunks(batch.max(1)).enumerate() {
        let mut tx = store.org(org).await?;
        for (i, id) in chunk.iter().enumerate() {
            let now = SystemClock.now();
            let message = WebhookMessage {
                id: *id,
                event_type: "app.invoice.paid".into(),
                payload: payload(first + c * batch + i),
                idempotency_key: None,
                request_hash: None,
                created_at: now,
            };
            let due = i64::try_from(now.unix_timestamp_nanos() / 1_000_000)?;
            tx.webhook_enqueue(&message, &[endpoint], due).await?;
        }
        tx.commit().await?;
        let at = Instant::now();
        out.extend(chunk.iter().map(|id| (id.to_string(), at)));
    }
    Ok(out)
}

async fn wait_all(seen: &Arrivals, n: usize, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let got = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        if got >= n {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "{got} of {n} delivered after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn latencies(queued: &[(String, Instant)], seen: &Arrivals) -> Vec<f64> {
    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut ms: Vec<f64> = queued
        .iter()
        .filter_map(|(id, at)| {
            seen.get(id)
                .map(|got| got.duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

/// The bare loop: `concurrency` tasks posting bodies of the same size to the same receiver.
async fn bare(url: &str, n: usize, concurrency: usize) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, url) = (client.clone(), Arc::clone(&next), url.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), reqwest::Error>(());
                }
                client
                    .post(&url)
                    .header("x-bench-id", format!("bare-{i}"))
                    .header("content-type", "application/json")
                    .body(payload(i))
                    .send()
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs the benchmark.
pub async fn run(
    mut config: Config,
    messages: usize,
    concurrency: u32,
    rate: u32,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    if config.database_url.is_none() {
        config.data_dir = dir.path().join("data");
    }
    let store = bulwark_server::startup::open_store(&config).await?;
    let seed = Seed::generate()?;
    let wrapper = Arc::new(SeedWrapper::new(&seed)?);
    let (url, seen) = receiver().await?;
    let (org, endpoint) = setup(&*store, &wrapper, &url, concurrency).await?;
    let at = url::Url::parse(&url)?
        .socket_addrs(|| None)?
        .into_iter()
        .filter_map(bulwark_core::egress::LoopbackPort::exactly)
        .collect();
    let egress = Egress::new(
        bulwark_core::egress::EgressPolicy {
            allow_http: true,
            allow_loopback: at,
            ..Default::default()
        },
        Limits::default(),
    )?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let worker = Arc::new(Deliverer::new(
        store.clone(),
        Arc::new(SystemClock),
        wrapper.clone(),
        egress,
        WebhooksConfig {
            concurrency,
            poll_interval_ms: 10,
            ..WebhooksConfig::default()
        },
        wake.clone(),
    ));
    println!(
        "bench webhooks ({}): {messages} messages, {concurrency} deliveries in flight, 1 endpoint, local receiver",
        store.engine()
    );

    // Throughput: a backlog of `messages` (queued 100 per transaction), then the worker starts
    // and drains it.
    let ids: Vec<MessageId> = (0..messages).map(|_| MessageId::new()).collect();
    let start = Instant::now();
    enqueue(&*store, org, endpoint, &ids, 100, 0).await?;
    let queued_rate = messages as f64 / start.elapsed().as_secs_f64();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let running = tokio::spawn(worker.run(async move {
        let _ = stop_rx.await;
    }));
    wait_all(&seen, messages, Duration::from_secs(600)).await?;
    let ours = messages as f64 / start.elapsed().as_secs_f64();
    println!("  enqueue (outbox rows, 100 per transaction): {queued_rate:>8.0} messages/s");
    let base = bare(&url, messages, usize::try_from(concurrency)?).await?;
    println!(
        "  throughput: signed deliveries {ours:>8.0}/s   bare HTTP client loop {base:>8.0}/s   ratio {:.3}",
        ours / base
    );

    // Latency: one message per transaction at `rate`/s for 5 s (the API's path: commit, wake).
    let n = usize::try_from(rate)? * 5;
    let ids: Vec<MessageId> = (0..n).map(|_| MessageId::new()).collect();
    let gap = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut queued = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(gap);
    for (i, id) in ids.iter().enumerate() {
        tick.tick().await;
        queued.extend(
            enqueue(
                &*store,
                org,
                endpoint,
                std::slice::from_ref(id),
                1,
                messages + i,
            )
            .await?,
        );
        wake.notify_one();
    }
    wait_all(&seen, messages + n, Duration::from_secs(120)).await?;
    let ms = latencies(&queued, &seen);
    // The bare request latency at the same rate, for scale.
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut bare_ms = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(gap);
    for i in 0..n {
        tick.tick().await;
        let t = Instant::now();
        client
            .post(&url)
            .header("x-bench-id", format!("lat-{i}"))
            .body(payload(i))
            .send()
            .await?;
        bare_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    bare_ms.sort_by(f64::total_cmp);
    println!(
        "  enqueue → delivery at {rate}/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms   bare request p50 {:.2} ms, p99 {:.2} ms",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN),
        percentile(&bare_ms, 0.5),
        percentile(&bare_ms, 0.99),
    );
    let _ = stop_tx.send(());
    let _ = running.await;
    Ok(())
}
