//! `bulwark bench`: measured, never asserted. Each benchmark runs ours beside a baseline in the
//! same process and run, and prints the ratio (see `docs/BENCHMARKS.md`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bulwark_core::model::{Membership, Org, User};
use bulwark_core::ports::Store;
use bulwark_server::config::Config;
use bulwark_server::startup;
use bulwark_types::{Clock as _, OrgId, Role, SystemClock, UserId};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Bytes;

use crate::Exit;

/// Latency samples of one run.
#[derive(Default)]
pub(crate) struct Run {
    count: usize,
    elapsed: Duration,
    micros: Vec<u64>,
}

impl Run {
    pub(crate) fn absorb(&mut self, other: Run) {
        self.count += other.count;
        self.elapsed += other.elapsed;
        self.micros.extend(other.micros);
    }
    fn per_sec(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&mut self, p: f64) -> f64 {
        self.micros.sort_unstable();
        let idx = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros.get(idx).copied().unwrap_or(0) as f64 / 1000.0
    }
}

pub(crate) fn report(name: &str, base_name: &str, mut ours: Run, mut base: Run) {
    println!(
        "{:<34} {:>12} {:>10} {:>10}",
        "", "per second", "p50 ms", "p99 ms"
    );
    for (label, run) in [(base_name, &mut base), (name, &mut ours)] {
        let (p50, p99) = (run.pct(0.50), run.pct(0.99));
        println!(
            "{label:<34} {:>12.0} {p50:>10.3} {p99:>10.3}",
            run.per_sec()
        );
    }
    println!(
        "ratio ours / baseline: {:.2}",
        ours.per_sec() / base.per_sec()
    );
}

/// Builds each request a load driver sends.
pub(crate) type MakeRequest =
    std::sync::Arc<dyn Fn() -> anyhow::Result<hyper::Request<Full<Bytes>>> + Send + Sync>;

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

/// Sends `make()`'s requests over `conns` keep-alive HTTP/1.1 connections for `secs`; every
/// answer must be a success.
pub(crate) async fn load_with(
    addr: SocketAddr,
    conns: usize,
    secs: u64,
    make: MakeRequest,
) -> anyhow::Result<Run> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut micros = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let req = make()?;
                let t = Instant::now();
                let res = sender.send_request(req).await?;
                let status = res.status();
                res.into_body().collect().await?;
                anyhow::ensure!(status.is_success(), "status {status}");
                micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            anyhow::Ok(micros)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(Run {
        count: all.len(),
        elapsed: started.elapsed(),
        micros: all,
    })
}

/// `bulwark bench http`: `GET /healthz` through Bulwark's whole middleware stack beside a bare
/// axum handler.
pub async fn http(conns: usize, secs: u64) -> Exit {
    match http_inner(conns, secs).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failure
        }
    }
}

async fn http_inner(conns: usize, secs: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let prepared = startup::prepare(config).await?;
    let ours = prepared.local_addr()?;
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
    // Alternate 1 s rounds so drift on a shared machine hits both sides alike.
    let mut base = Run {
        count: 0,
        elapsed: Duration::ZERO,
        micros: Vec::new(),
    };
    let mut mine = Run {
        count: 0,
        elapsed: Duration::ZERO,
        micros: Vec::new(),
    };
    for _ in 0..secs.max(1) {
        base.absorb(load(bare_addr, "/healthz", conns, 1).await?);
        mine.absorb(load(ours, "/healthz", conns, 1).await?);
    }
    report(
        "bulwark /healthz (full stack)",
        "bare axum handler",
        mine,
        base,
    );
    let _ = stop_tx.send(());
    Ok(())
}

/// The password of the user `bench auth` signs in as.
const BENCH_PASSWORD: &str = "a long enough bench password";

/// `bulwark bench auth`: successful sign-ins/s beside the ceiling argon2id sets (cores / one
/// hash), and session validation (`GET /v1/auth/session` with the cookie) beside a bare axum
/// handler, on SQLite.
pub async fn auth(secs: u64) -> Exit {
    match auth_inner(secs.max(1)).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failure
        }
    }
}

async fn auth_inner(secs: u64) -> anyhow::Result<()> {
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

/// `bulwark bench store`: the org-scoped read path (open org transaction, read the org and its
/// members, commit) beside a bare `SELECT 1` round trip on the same engine.
pub async fn store(config: Config, tasks: usize, secs: u64) -> Exit {
    match store_inner(config, tasks, secs).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failure
        }
    }
}

async fn store_inner(mut config: Config, tasks: usize, secs: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    if config.database_url.is_none() {
        config.data_dir = dir.path().join("data");
    }
    let store = startup::open_store(&config).await?;
    let org = seed_org(&*store).await?;
    println!(
        "bench store ({}): {tasks} tasks, {secs} s each",
        store.engine()
    );
    let base = drive(tasks, secs, {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move {
                store
                    .health()
                    .await
                    .reachable
                    .then_some(())
                    .ok_or_else(|| anyhow::anyhow!("down"))
            }
        }
    })
    .await?;
    let mine = drive(tasks, secs, move || {
        let store = store.clone();
        async move {
            let mut tx = store.org_read(org).await?;
            tx.get().await?;
            anyhow::ensure!(tx.members().await?.len() == 5, "members");
            Ok(())
        }
    })
    .await?;
    report(
        "org-scoped read (org + members)",
        "health query (ping)",
        mine,
        base,
    );
    Ok(())
}

pub(crate) async fn seed_org(store: &dyn Store) -> anyhow::Result<OrgId> {
    let now = SystemClock.now();
    let org = Org {
        id: OrgId::new(),
        slug: format!("bench-{}", uuid_suffix()).parse()?,
        name: "Bench".parse()?,
        created_at: now,
    };
    let mut tx = store.system().await?;
    for i in 0..5 {
        let user = User {
            id: UserId::new(),
            email: format!("u{i}-{}@bench.test", org.id.as_uuid().simple()).parse()?,
            password_hash: bulwark_crypto::PasswordHashString::from_stored(
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            ),
            created_at: now,
            email_verified_at: None,
            disabled_at: None,
        };
        tx.create_user(&user).await?;
        if i == 0 {
            tx.create_org(
                &org,
                &Membership {
                    org_id: org.id,
                    user_id: user.id,
                    role: Role::Owner,
                    created_at: now,
                },
            )
            .await?;
            tx.commit().await?;
            tx = store.system().await?;
        } else {
            tx.commit().await?;
            let mut o = store.org(org.id).await?;
            o.add_member(user.id, Role::Member, now).await?;
            o.commit().await?;
            tx = store.system().await?;
        }
    }
    drop(tx);
    Ok(org.id)
}

fn uuid_suffix() -> String {
    OrgId::new().as_uuid().simple().to_string()
}

async fn drive<F, Fut>(tasks: usize, secs: u64, op: F) -> anyhow::Result<Run>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut micros = Vec::with_capacity(50_000);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    op().await?;
                    micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                anyhow::Ok(micros)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    Ok(Run {
        count: all.len(),
        elapsed: started.elapsed(),
        micros: all,
    })
}

/// `bulwark bench startup`.
pub async fn startup(runs: usize) -> Exit {
    match startup_inner(runs.max(1)).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failure
        }
    }
}

async fn startup_inner(runs: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // First start creates the data dir, database and seed; it is not measured.
    serve_until_ready(&exe, &data).await?;
    let mut cold = Vec::with_capacity(runs);
    let mut bare = Vec::with_capacity(runs);
    for _ in 0..runs {
        cold.push(serve_until_ready(&exe, &data).await?);
        let t = Instant::now();
        let status = tokio::process::Command::new(&exe)
            .arg("--version")
            .output()
            .await?
            .status;
        anyhow::ensure!(status.success(), "--version failed");
        bare.push(t.elapsed());
    }
    cold.sort_unstable();
    bare.sort_unstable();
    let median = |v: &[Duration]| {
        v.get(v.len() / 2)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    let max = |v: &[Duration]| v.last().copied().unwrap_or_default().as_secs_f64() * 1000.0;
    println!("bench startup: {runs} runs on an existing SQLite data dir");
    println!("{:<34} {:>10} {:>10}", "", "median ms", "max ms");
    println!(
        "{:<34} {:>10.1} {:>10.1}",
        "process start (bulwark --version)",
        median(&bare),
        max(&bare)
    );
    println!(
        "{:<34} {:>10.1} {:>10.1}",
        "serve until /readyz = 200",
        median(&cold),
        max(&cold)
    );
    Ok(())
}

/// Starts `serve` on `data` and an ephemeral port, waits for `/readyz` 200, stops it; returns the
/// time from spawn to ready.
async fn serve_until_ready(
    exe: &std::path::Path,
    data: &std::path::Path,
) -> anyhow::Result<Duration> {
    use tokio::io::AsyncBufReadExt as _;
    let t = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("BULWARK_LOG__FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr: SocketAddr = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("serve exited before listening"))?;
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v.get("message").and_then(|m| m.as_str()) == Some("listening") {
            break v
                .get("addr")
                .and_then(|a| a.as_str())
                .unwrap_or_default()
                .parse()?;
        }
    };
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let req = hyper::Request::get("/readyz")
                .header("host", "bench")
                .body(Empty::<Bytes>::new())?;
            if sender.send_request(req).await?.status() == 200 {
                break;
            }
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(10),
            "not ready within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = t.elapsed();
    child.kill().await?;
    Ok(elapsed)
}

/// `bulwark bench audit`: durable audit appends/s at 1, 16 and 128 appenders beside the raw
/// append+fdatasync rate of the same disk, and offline verification speed.
pub async fn audit(mut config: Config, events: u64, verify_events: u64) -> Exit {
    match audit_inner(&mut config, events, verify_events).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failure
        }
    }
}

async fn audit_inner(config: &mut Config, events: u64, verify_events: u64) -> anyhow::Result<()> {
    use bulwark_core::audit::{Log, append};
    let dir = tempfile::tempdir()?;
    if config.database_url.is_none() {
        config.data_dir = dir.path().join("data");
    }
    let store = startup::open_store(config).await?;
    let fsync = fsync_rate(dir.path(), Duration::from_secs(3))?;
    println!("bench audit ({}): {events} events per run", store.engine());
    println!(
        "{:<40} {:>12}",
        "raw 4 KiB append + fdatasync, 1 writer",
        format!("{fsync:.0}/s")
    );
    for tasks in [1usize, 16, 128] {
        let remaining = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(events));
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let store = store.clone();
                let remaining = remaining.clone();
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::{AcqRel, Acquire};
                    while remaining
                        .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let draft = bench_draft();
                        let mut tx = store.system().await?;
                        append(&mut *tx, Log::System, draft, &SystemClock).await?;
                        tx.commit().await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for h in handles {
            h.await??;
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        println!(
            "{:<40} {:>12} {:>8.2}× fsync",
            format!("one transaction each, {tasks} appenders"),
            format!("{rate:.0}/s"),
            rate / fsync
        );
    }
    for tasks in [1usize, 16, 128] {
        let writer = bulwark_core::audit::GroupWriter::spawn(
            store.clone(),
            Log::System,
            std::sync::Arc::new(SystemClock),
            512,
        );
        let remaining = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(events));
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let writer = writer.clone();
                let remaining = remaining.clone();
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::{AcqRel, Acquire};
                    while remaining
                        .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let draft = bench_draft();
                        writer.append(draft).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for h in handles {
            h.await??;
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        println!(
            "{:<40} {:>12} {:>8.2}× fsync",
            format!("group commit, {tasks} appenders"),
            format!("{rate:.0}/s"),
            rate / fsync
        );
    }
    verify_speed(verify_events)
}

/// The event every audit benchmark appends.
fn bench_draft() -> bulwark_core::audit::Draft {
    use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
    bulwark_core::audit::Draft {
        payload: Payload::OrgCreated {
            slug: "bench".into(),
            name: "bench".into(),
            owner_id: None,
        },
        resource: Resource {
            kind: "org".into(),
            id: "bench".into(),
        },
        outcome: Outcome {
            result: Result_::Success,
            reason: None,
        },
        context: Context::system(Some("bench")),
    }
}

/// Appends 4 KiB and `fdatasync`s in a loop for `dur`; returns the rate.
fn fsync_rate(dir: &std::path::Path, dur: Duration) -> anyhow::Result<f64> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fsync.bin"))?;
    let block = [0u8; 4096];
    let (started, mut n) = (Instant::now(), 0u64);
    while started.elapsed() < dur {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Builds an export of `n` events with one checkpoint and times the offline verifier on it.
fn verify_speed(n: u64) -> anyhow::Result<()> {
    use bulwark_audit::checkpoint::{Checkpoint, NoteSigner};
    use bulwark_audit::event::{Context, Event, Outcome, Payload, Resource, Result_};
    use bulwark_audit::merkle::{CompactRange, leaf_hash};
    let signer = NoteSigner::new(
        "bench",
        bulwark_crypto::Ed25519Signer::from_seed(&zeroize::Zeroizing::new([1; 32]))?,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut text = String::with_capacity(usize::try_from(n).unwrap_or(0) * 400);
    text.push_str(&bulwark_audit::export::header_line("bench/system"));
    text.push('\n');
    let mut range = CompactRange::new();
    let time = time::OffsetDateTime::now_utc();
    for seq in 0..n {
        let e = Event::new(
            "system".into(),
            seq,
            time,
            Payload::MemberAdded {
                user_id: format!("usr_{seq}"),
                role: "member".into(),
            },
            Resource {
                kind: "member".into(),
                id: format!("usr_{seq}"),
            },
            Outcome {
                result: Result_::Success,
                reason: None,
            },
            Context::system(Some("bench")),
            bulwark_types::EventId::new(),
        );
        let bytes = e.canonical_bytes()?;
        range.push(leaf_hash(&bytes));
        text.push_str(std::str::from_utf8(&bytes)?);
        text.push('\n');
    }
    let note = signer.sign(&Checkpoint {
        origin: "bench/system".into(),
        size: n,
        root: range.root(),
        time: 0,
    });
    text.push_str(&bulwark_audit::export::checkpoint_line(&note));
    text.push('\n');
    let started = Instant::now();
    let report = bulwark_audit::export::verify(text.as_bytes(), &signer.verifier(), &[note])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let mib = text.len() as f64 / (1024.0 * 1024.0);
    println!(
        "{:<40} {:>12} ({mib:.0} MiB, {:.0} events/s)",
        format!("verify {} events offline", report.events),
        format!("{secs:.2} s"),
        report.events as f64 / secs
    );
    Ok(())
}
