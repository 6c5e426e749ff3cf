//! `bulwark-bench http`: `GET /healthz` through the full middleware stack beside a bare axum
//! handler, in alternating 1 s rounds, the client in the same process; the stack with metrics
//! recorded (and scraped every second) beside the same stack with recording off.

use std::net::SocketAddr;

use bulwark_server::config::Config;
use bulwark_server::startup;
use http_body_util::Full;
use hyper::body::Bytes;

use crate::measure::{Run, load_with, report};

/// `bulwark-bench http`: `GET /healthz` through Bulwark's whole middleware stack beside a bare
/// axum handler.
pub async fn run(conns: usize, secs: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.metrics.enabled = true;
    config.metrics.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let prepared = startup::prepare(config).await?;
    let ours = prepared.local_addr()?;
    let scraper = crate::measure::scrape_every_second(prepared.metrics_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = stop_rx.await;
    }));

    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_addr = bare.local_addr()?;
    let hello = axum::Router::new().route(
        "/healthz",
        axum::routing::get(|| async { "{\"status\":\"ok\"}" }),
    );
    tokio::spawn(async move { axum::serve(bare, hello).await });

    println!(
        "bench http: GET /healthz, {conns} connections, {secs} alternating 1 s rounds each, client in-process"
    );
    load(bare_addr, "/healthz", conns, 1).await?; // warm-up
    load(ours, "/healthz", conns, 1).await?;
    // Alternate 1 s rounds so drift on a shared machine hits every side alike.
    let (mut base, mut off, mut on) = (Run::default(), Run::default(), Run::default());
    for _ in 0..secs.max(1) {
        base.absorb(load(bare_addr, "/healthz", conns, 1).await?);
        bulwark_core::metrics::set_enabled(false);
        off.absorb(load(ours, "/healthz", conns, 1).await?);
        bulwark_core::metrics::set_enabled(true);
        on.absorb(load(ours, "/healthz", conns, 1).await?);
    }
    let (on_rate, off_rate) = (on.per_sec(), off.per_sec());
    report(
        "bulwark /healthz (full stack)",
        "bare axum handler",
        off,
        base,
    );
    println!(
        "with metrics recorded and scraped: {on_rate:.0}/s beside {off_rate:.0}/s without (ratio {:.3}; {} scrapes)",
        on_rate / off_rate,
        scraper.count()
    );
    let _ = stop_tx.send(());
    Ok(())
}

/// Drives `GET path` over `conns` keep-alive HTTP/1.1 connections for `secs`.
async fn load(
    addr: SocketAddr,
    path: &'static str,
    conns: usize,
    secs: u64,
) -> anyhow::Result<Run> {
    let get = std::sync::Arc::new(move || {
        Ok(hyper::Request::get(path)
            .header("host", "bench")
            .body(Full::new(Bytes::new()))?)
    });
    load_with(addr, conns, secs, get).await
}
