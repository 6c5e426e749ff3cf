//! `bulwark bench keys`: an API-key-authenticated, authorized request on the cached path
//! (`GET /v1/orgs/{org}/audit/retention` with `Authorization: Bearer`, the key cache warm, the
//! decision remembered) at 64 connections, beside a bare axum handler, on SQLite.

use std::net::SocketAddr;

use bulwark_core::model::ApiKeyRecord;
use bulwark_server::config::Config;
use bulwark_server::startup;
use bulwark_types::{Clock as _, SystemClock};
use http_body_util::Full;
use hyper::body::Bytes;

use crate::Exit;
use crate::command::bench::{MakeRequest, Run, load_with, report, seed_org};

/// Runs the benchmark and prints the table.
pub async fn run(secs: u64) -> Exit {
    match inner(secs.max(1)).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failure
        }
    }
}

async fn inner(secs: u64) -> anyhow::Result<()> {
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
    let prepared = startup::prepare(config).await?;
    let ours = prepared.local_addr()?;
    let state = prepared.state.clone();
    let org = seed_org(&*state.store).await?;
    // The key is written as the API would write it (verifier under this deployment's pepper).
    let key = bulwark_crypto::ApiKey::generate()?;
    let record = ApiKeyRecord {
        id: bulwark_core::apikeys::key_id(&key),
        org,
        name: "bench".into(),
        scopes: vec!["audit:read".into()],
        verifier: key.verifier(&state.macs.api_keys),
        created_by: None,
        created_at: SystemClock.now(),
        expires_at: None,
        revoked_at: None,
        rotated_from: None,
        last_used_at: None,
        space: None,
        owner: None,
    };
    let mut tx = state.store.org(org).await?;
    tx.create_api_key(&record).await?;
    tx.commit().await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = stop_rx.await;
    }));

    let path = format!("/v1/orgs/{org}/audit/retention");
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_addr = bare.local_addr()?;
    let hello =
        axum::Router::new().route(&path, axum::routing::get(|| async { "{\"days\":null}" }));
    tokio::spawn(async move { axum::serve(bare, hello).await });
    let bearer = format!("Bearer {}", key.expose());
    let uri = path.clone();
    let get: MakeRequest = std::sync::Arc::new(move || {
        Ok(hyper::Request::get(uri.as_str())
            .header("host", "bench")
            .header("authorization", bearer.as_str())
            .body(Full::new(Bytes::new()))?)
    });
    load_with(bare_addr, CONNS, 1, get.clone()).await?; // warm-up
    load_with(ours, CONNS, 1, get.clone()).await?;
    let (mut base, mut mine) = (Run::default(), Run::default());
    for _ in 0..secs {
        base.absorb(load_with(bare_addr, CONNS, 1, get.clone()).await?);
        mine.absorb(load_with(ours, CONNS, 1, get.clone()).await?);
    }
    println!(
        "bench keys (SQLite): GET {path} with an API key, {CONNS} connections, {secs} alternating 1 s rounds each"
    );
    report(
        "bulwark, API key (cached path)",
        "bare axum handler",
        mine,
        base,
    );
    let _ = stop_tx.send(());
    Ok(())
}
