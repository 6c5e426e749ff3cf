//! `bulwark bench keys`: API-key-authenticated, authorized requests at 64 connections beside a
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
    tokio::spawn(async move { axum::serve(bare, hello).await });
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
        ("POST /keys/verify (all cached)", post),
        ("GET /audit/retention (1 read)", get),
    ] {
        load_with(bare_addr, CONNS, 1, make.clone()).await?; // warm-up
        load_with(ours, CONNS, 1, make.clone()).await?;
        let (mut base, mut mine) = (Run::default(), Run::default());
        for _ in 0..secs {
            base.absorb(load_with(bare_addr, CONNS, 1, make.clone()).await?);
            mine.absorb(load_with(ours, CONNS, 1, make.clone()).await?);
        }
        report(label, "bare axum handler", mine, base);
    }
    let _ = stop_tx.send(());
    Ok(())
}

async fn write_key(
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
    };
    let mut tx = state.store.org(org).await?;
    tx.create_api_key(&record).await?;
    tx.commit().await?;
    Ok(key)
}
