//! `bulwark-bench auth`: successful sign-ins per second beside the ceiling argon2id sets, and
//! session validation beside a bare axum handler, on SQLite.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bulwark_core::model::User;
use bulwark_server::config::Config;
use bulwark_server::startup;
use bulwark_types::{Clock as _, SystemClock, UserId};
use http_body_util::Full;
use hyper::body::Bytes;

use crate::measure::{MakeRequest, Run, load_with, report, uuid_suffix};

/// The password of the user `bench auth` signs in as.
const BENCH_PASSWORD: &str = "a long enough bench password";

/// `bulwark-bench auth`: successful sign-ins/s beside the ceiling argon2id sets (cores / one
/// hash), and session validation (`GET /v1/auth/session` with the cookie) beside a bare axum
/// handler, on SQLite.
pub async fn run(secs: u64) -> anyhow::Result<()> {
    let secs = secs.max(1);
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    // Every request comes from 127.0.0.1: lift the per-address limit on unauthenticated routes
    // (120/min). Successful sign-ins are never throttled otherwise.
    config.throttle.unauthenticated_per_minute = u32::MAX;
    let params = config.passwords.params();
    let prepared = startup::prepare(config).await?;
    let ours = prepared.local_addr()?;
    let email = bench_user(&prepared.state).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = stop_rx.await;
    }));

    println!(
        "bench auth (SQLite): argon2id m={} KiB t={} p={}, {secs} s per measurement, client in-process",
        params.m_cost_kib, params.t_cost, params.p_cost
    );
    let login = sign_ins(ours, &email, params, secs).await?;
    let cookie = session_cookie(ours, &login).await?;
    session_validation(ours, &cookie, secs).await?;
    let _ = stop_tx.send(());
    Ok(())
}

/// Successful sign-ins/s beside `cores / hash time`, the ceiling argon2id sets, and beside the
/// rate of `cores` threads hashing at once; hashes are timed half before and half after the
/// sign-in run so drift on a shared machine hits both. Returns the sign-in request.
async fn sign_ins(
    ours: SocketAddr,
    email: &str,
    params: bulwark_crypto::PasswordParams,
    secs: u64,
) -> anyhow::Result<MakeRequest> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let body =
        Bytes::from(serde_json::json!({"email": email, "password": BENCH_PASSWORD}).to_string());
    let login: MakeRequest = std::sync::Arc::new(move || {
        Ok(hyper::Request::post("/v1/auth/login")
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?)
    });
    // Enough connections to keep every hash slot busy, few enough that latency is not all queue.
    let conns = cores * 4;
    load_with(ours, conns, 1, login.clone()).await?; // warm-up
    let mut hashes = hash_times(params, 10).await?;
    let before = parallel_hashes(params, cores, 5).await?;
    let mut run = load_with(ours, conns, secs, login.clone()).await?;
    hashes.extend(hash_times(params, 10).await?);
    let after = parallel_hashes(params, cores, 5).await?;
    let parallel = (cores * 10) as f64 / (before + after).as_secs_f64();
    hashes.sort_unstable();
    let ms = |d: Option<&Duration>| d.copied().unwrap_or_default().as_secs_f64() * 1000.0;
    let (fastest, slowest) = (ms(hashes.first()), ms(hashes.last()));
    let hash = hashes.get(hashes.len() / 2).copied().unwrap_or_default();
    let ceiling = cores as f64 / hash.as_secs_f64();
    let (p50, p99) = (run.pct(0.50), run.pct(0.99));
    println!(
        "{:<44} {:>10.2} ms   (fastest {fastest:.1}, slowest {slowest:.1})",
        "argon2id hash, one thread, median of 20",
        hash.as_secs_f64() * 1000.0
    );
    println!(
        "{:<44} {ceiling:>10.0} /s",
        format!("ceiling: {cores} cores / hash time")
    );
    println!(
        "{:<44} {:>10.0} /s   p50 {p50:.1} ms   p99 {p99:.1} ms",
        format!("POST /v1/auth/login (200), {conns} connections"),
        run.per_sec()
    );
    println!(
        "{:<44} {parallel:>10.0} /s",
        format!("argon2id hashes, {cores} threads at once")
    );
    println!(
        "ratio sign-ins / ceiling: {:.2}; sign-ins / parallel hash rate: {:.2}\n",
        run.per_sec() / ceiling,
        run.per_sec() / parallel
    );
    Ok(login)
}

/// Creates the user `bench auth` signs in as, with a real hash; returns its email.
async fn bench_user(state: &bulwark_server::state::AppState) -> anyhow::Result<String> {
    let email = format!("bench-{}@bench.test", uuid_suffix());
    let user = User {
        id: UserId::new(),
        email: email.parse()?,
        password_hash: state
            .hasher
            .hash(secrecy::SecretString::from(BENCH_PASSWORD.to_owned()))
            .await?,
        created_at: SystemClock.now(),
        email_verified_at: None,
        disabled_at: None,
    };
    let mut tx = state.store.system().await?;
    tx.create_user(&user).await?;
    tx.commit().await?;
    Ok(email)
}

/// The times of `runs` argon2id hashes under `params`, one after another on the blocking pool.
async fn hash_times(
    params: bulwark_crypto::PasswordParams,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    tokio::task::spawn_blocking(move || {
        let password = secrecy::SecretString::from(BENCH_PASSWORD.to_owned());
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                bulwark_crypto::hash_password(&password, params)?;
                Ok(t.elapsed())
            })
            .collect()
    })
    .await?
}

/// The time `threads` threads take to hash `each` times at once: the ceiling when the cores also
/// share memory bandwidth and caches, as they do under sign-in load.
async fn parallel_hashes(
    params: bulwark_crypto::PasswordParams,
    threads: usize,
    each: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| tokio::spawn(hash_times(params, each)))
        .collect();
    for h in handles {
        h.await??;
    }
    Ok(started.elapsed())
}

/// Signs in once with `login`; returns `__Host-bulwark_session=…` for a `Cookie` header.
async fn session_cookie(addr: SocketAddr, login: &MakeRequest) -> anyhow::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let res = sender.send_request(login()?).await?;
    anyhow::ensure!(
        res.status().is_success(),
        "sign-in: status {}",
        res.status()
    );
    res.headers()
        .get_all(hyper::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-bulwark_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("sign-in set no session cookie"))
}

/// `GET /v1/auth/session` with `cookie` beside the same request to a bare axum handler, in
/// alternating 1 s rounds over 64 connections (as `bench http`).
async fn session_validation(ours: SocketAddr, cookie: &str, secs: u64) -> anyhow::Result<()> {
    const CONNS: usize = 64;
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_addr = bare.local_addr()?;
    let hello = axum::Router::new().route(
        "/v1/auth/session",
        axum::routing::get(|| async { "{\"status\":\"ok\"}" }),
    );
    tokio::spawn(async move { axum::serve(bare, hello).await });
    let cookie = cookie.to_owned();
    let get: MakeRequest = std::sync::Arc::new(move || {
        Ok(hyper::Request::get("/v1/auth/session")
            .header("host", "bench")
            .header("cookie", cookie.as_str())
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
        "GET /v1/auth/session with the session cookie, {CONNS} connections, {secs} alternating 1 s rounds each"
    );
    report(
        "bulwark /v1/auth/session (validated)",
        "bare axum handler",
        mine,
        base,
    );
    Ok(())
}
