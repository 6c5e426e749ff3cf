//! `bulwark-bench keys`: API-key-authenticated, authorized requests at 64 connections beside a
//! bare axum handler, on SQLite: `POST /v1/orgs/{org}/keys/verify` on the cached path (caller's
//! key, customer's key, policy set in force and decision all remembered; buckets in memory), and
//! `GET /v1/orgs/{org}/audit/retention`, which also reads the database.

use std::net::SocketAddr;

use bulwark_core::model::ApiKeyRecord;
use bulwark_server::config::Config;
use bulwark_server::startup;
use bulwark_types::{Clock as _, SystemClock};
use http_body_util::Full;
use hyper::body::Bytes;

use crate::measure::{MakeRequest, Run, load_with, report, seed_org};

/// Runs the benchmark and prints the tables.
pub async fn run(secs: u64) -> anyhow::Result<()> {
    let secs = secs.max(1);
    const CONNS: usize = 64;
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    // Measure the path, not the limiter's refusals: buckets far above what the run sends.
    config.rate_limits.per_key_per_sec = 1_000_000;
    config.rate_limits.per_key_burst = 10_000_000;
    config.rate_limits.per_org_per_sec = 1_000_000;
    config.rate_limits.per_org_burst = 10_000_000;
    config.metrics.enabled = true;
    config.metrics.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let prepared = startup::prepare(config).await?;
    let ours = prepared.local_addr()?;
    let scraper = crate::measure::scrape_every_second(prepared.metrics_addr());
    let state = prepared.state.clone();
    let org = seed_org(&*state.store).await?;
    // Keys are written as the API writes them (verifier under this deployment's pepper): the
    // application's key, and one of its customers' keys in a key space.
    let machine = write_key(
        &state,
        org,
        vec!["audit:read".into(), "spaces:verify".into()],
        None,
    )
    .await?;
    let customer = write_key(&state, org, vec!["orders:read".into()], Some("cust_1")).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = stop_rx.await;
    }));

    let retention = format!("/v1/orgs/{org}/audit/retention");
    let verify = format!("/v1/orgs/{org}/keys/verify");
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_addr = bare.local_addr()?;
    let hello = axum::Router::new()
        .route(
            &retention,
            axum::routing::get(|| async { "{\"days\":null}" }),
        )
        .route(
            &verify,
            axum::routing::post(|| async { "{\"valid\":true}" }),
        );
    let served = hello.clone();
    tokio::spawn(async move { axum::serve(bare, served).await });
    let bearer = format!("Bearer {}", machine.expose());
    let body = Bytes::from(serde_json::json!({"key": customer.expose()}).to_string());
    let (uri, auth) = (verify.clone(), bearer.clone());
    let post: MakeRequest = std::sync::Arc::new(move || {
        Ok(hyper::Request::post(uri.as_str())
            .header("host", "bench")
            .header("authorization", auth.as_str())
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?)
    });
    let (uri, auth) = (retention.clone(), bearer.clone());
    let get: MakeRequest = std::sync::Arc::new(move || {
        Ok(hyper::Request::get(uri.as_str())
            .header("host", "bench")
            .header("authorization", auth.as_str())
            .body(Full::new(Bytes::new()))?)
    });
    println!("bench keys (SQLite): {CONNS} connections, {secs} alternating 1 s rounds per side");
    for (label, make) in [
        ("POST /keys/verify (all cached)", post.clone()),
        ("GET /audit/retention (1 read)", get.clone()),
    ] {
        load_with(bare_addr, CONNS, 1, make.clone()).await?; // warm-up
        load_with(ours, CONNS, 1, make.clone()).await?;
        let (mut base, mut off, mut on) = (Run::default(), Run::default(), Run::default());
        for _ in 0..secs {
            base.absorb(load_with(bare_addr, CONNS, 1, make.clone()).await?);
            bulwark_core::metrics::set_enabled(false);
            off.absorb(load_with(ours, CONNS, 1, make.clone()).await?);
            bulwark_core::metrics::set_enabled(true);
            on.absorb(load_with(ours, CONNS, 1, make.clone()).await?);
        }
        let (on_rate, off_rate) = (on.per_sec(), off.per_sec());
        report(label, "bare axum handler", off, base);
        println!(
            "{label} with metrics recorded and scraped: {on_rate:.0}/s beside {off_rate:.0}/s \
             without (ratio {:.3}; {} scrapes so far)",
            on_rate / off_rate,
            scraper.count()
        );
    }
    let _ = stop_tx.send(());
    // The same requests straight into both routers, one at a time, with no sockets: what each
    // request costs the server's CPU, apart from TCP and the load generator.
    let app = bulwark_server::app(state.clone(), false);
    for (label, make) in [("POST /keys/verify", post), ("GET /audit/retention", get)] {
        for tasks in [1, CONNS] {
            let base = in_process(&hello, &make, tasks, secs).await?;
            let mine = in_process(&app, &make, tasks, secs).await?;
            println!(
                "{label}, in process, {tasks} task(s): {mine:.1} µs/request beside {base:.1} \
                 (ratio {:.2})",
                base / mine
            );
        }
    }
    Ok(())
}

/// Wall time per request of `make()`'s requests sent straight into `router` (no sockets) by
/// `tasks` concurrent tasks, in µs.
async fn in_process(
    router: &axum::Router,
    make: &MakeRequest,
    tasks: usize,
    secs: u64,
) -> anyhow::Result<f64> {
    use tower::ServiceExt as _;
    let peer = axum::extract::ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let started = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (router, make) = (router.clone(), make.clone());
        set.spawn(async move {
            let mut n = 0u32;
            while std::time::Instant::now() < deadline {
                for _ in 0..100 {
                    let mut req = make()?.map(axum::body::Body::new);
                    req.extensions_mut().insert(peer);
                    let res = router.clone().oneshot(req).await?;
                    anyhow::ensure!(res.status().is_success(), "status {}", res.status());
                    http_body_util::BodyExt::collect(res.into_body()).await?;
                }
                n += 100;
            }
            anyhow::Ok(n)
        });
    }
    let mut n = 0u32;
    while let Some(done) = set.join_next().await {
        n += done??;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1)))
}

pub(crate) async fn write_key(
    state: &bulwark_server::state::AppState,
    org: bulwark_types::OrgId,
    scopes: Vec<String>,
    customer: Option<&str>,
) -> anyhow::Result<bulwark_crypto::ApiKey> {
    let key = bulwark_crypto::ApiKey::generate()?;
    let record = ApiKeyRecord {
        id: bulwark_core::apikeys::key_id(&key),
        org,
        name: "bench".into(),
        scopes,
        verifier: key.verifier(&state.macs.api_keys),
        created_by: None,
        created_at: SystemClock.now(),
        expires_at: None,
        revoked_at: None,
        rotated_from: None,
        last_used_at: None,
        space: customer.map(|_| "customers".to_owned()),
        owner: customer.map(str::to_owned),
        team: None,
    };
    let mut tx = state.store.org(org).await?;
    tx.create_api_key(&record).await?;
    tx.commit().await?;
    Ok(key)
}
