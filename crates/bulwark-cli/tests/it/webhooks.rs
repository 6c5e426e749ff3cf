//! Two `bulwark serve` processes share one PostgreSQL webhook queue (`FOR UPDATE SKIP LOCKED`):
//! no message is sent twice while both run; one is killed with SIGKILL mid-delivery; the other
//! takes over its leased deliveries once the lease ends, so every message arrives (at least
//! once: only the deliveries in flight at the kill may arrive twice).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_testkit::{Backend, spawn_app_with};
use reqwest::Method;
use serde_json::json;

use crate::harness::{bulwark, path_str, try_serve_cmd};

const MESSAGES: usize = 300;
const CONCURRENCY: usize = 8;

type Hits = Arc<Mutex<Vec<(String, Instant)>>>;

/// Every answered request's `webhook-id` and time, how many are being answered now, and a
/// switch that holds every request open until it is turned off (so the replica killed has
/// deliveries in flight however slow the machine is); each answer takes 40 ms.
async fn slow_receiver() -> (String, Hits, Arc<AtomicUsize>, Arc<AtomicBool>) {
    let seen: Hits = Arc::default();
    let busy = Arc::new(AtomicUsize::new(0));
    let hold = Arc::new(AtomicBool::new(false));
    let (hits, working, held) = (Arc::clone(&seen), Arc::clone(&busy), Arc::clone(&hold));
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let (hits, working, held) = (Arc::clone(&hits), Arc::clone(&working), Arc::clone(&held));
        async move {
            working.fetch_add(1, Ordering::SeqCst);
            let _done = Done(working);
            while held.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            // Counted once answered: a request cut by the kill is not a delivery.
            tokio::time::sleep(Duration::from_millis(40)).await;
            hits.lock().unwrap().push((id, Instant::now()));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks"), seen, busy, hold)
}

/// Counts a request as answered (or cut) when its handler ends either way.
struct Done(Arc<AtomicUsize>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn two_replicas_share_the_queue_and_a_killed_one_loses_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The app in this process queues the messages; it delivers nothing itself.
    let (url, seen, busy, hold) = rt.block_on(slow_receiver());
    // The receiver's loopback port, and no other, may be called.
    let receiver = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let app = rt.block_on(spawn_app_with(Backend::Postgres, |c| {
        c.webhooks.deliver = false;
        c.egress.allow_loopback = vec![receiver.clone()];
        c.egress.allow_http = true;
    }));
    let (org, owner) = rt.block_on(async {
        let setup = app.setup("Acme", "owner@acme.test", "a long enough password").await;
        let org = setup["org"]["id"].as_str().unwrap().to_owned();
        let owner = app.login_mfa("owner@acme.test", "a long enough password").await;
        let res = app
            .send_as(
                &owner,
                Method::POST,
                &format!("/v1/orgs/{org}/webhooks/endpoints"),
                &json!({"url": url, "event_types": ["app.*"], "rate_limit": 10000, "max_in_flight": 64}),
            )
            .await;
        assert_eq!(res.status(), 201);
        (org, owner)
    });
    let queued: Vec<String> = rt.block_on(async {
        let mut ids = Vec::with_capacity(MESSAGES);
        for n in 0..MESSAGES {
            let res = app
                .send_as(
                    &owner,
                    Method::POST,
                    &format!("/v1/orgs/{org}/webhooks/messages"),
                    &json!({"event_type": "app.tick", "payload": {"n": n}}),
                )
                .await;
            assert_eq!(res.status(), 202);
            let body: serde_json::Value = res.json().await.unwrap();
            ids.push(body["id"].as_str().unwrap().to_owned());
        }
        ids
    });

    // Two replicas on the same database and seed.
    let db = app.pg.as_ref().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let replica = |name: &str| {
        let data = cwd.path().join(name);
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        std::fs::copy(app.data_dir.path().join("data/seed"), data.join("seed")).unwrap();
        let mut cmd = bulwark(cwd.path());
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path_str(&data),
        ])
        .args(["--database-url", &db.app_url])
        .env(
            "BULWARK_EGRESS__ALLOW_LOOPBACK",
            format!("[\"{receiver}\"]"),
        )
        .env("BULWARK_EGRESS__ALLOW_HTTP", "true")
        .env("BULWARK_WEBHOOKS__TIMEOUT_MS", "1000")
        .env("BULWARK_WEBHOOKS__POLL_INTERVAL_MS", "20")
        .env("BULWARK_WEBHOOKS__CONCURRENCY", CONCURRENCY.to_string());
        try_serve_cmd(cmd).unwrap_or_else(|f| panic!("replica {name} did not start:\n{f}"))
    };
    let victim = replica("b");
    let survivor = replica("c");

    // Kill one replica while both are sending, after a sixth has arrived: the receiver then
    // holds every request open until more are open than one replica's concurrency (the victim
    // holds some, unanswered), and lets them go only after the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < MESSAGES / 6 {
        assert!(
            Instant::now() < deadline,
            "the replicas did not start sending"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    hold.store(true, Ordering::SeqCst);
    while busy.load(Ordering::SeqCst) <= CONCURRENCY {
        assert!(
            Instant::now() < deadline,
            "both replicas did not start sending"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = victim.proc.pid().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let killed_at = Instant::now();
    hold.store(false, Ordering::SeqCst);

    // The survivor finishes, taking over the victim's leases when they end (2 × 1 s + 5 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let counts: HashMap<String, usize> =
            seen.lock()
                .unwrap()
                .iter()
                .fold(HashMap::new(), |mut m, (id, _)| {
                    *m.entry(id.clone()).or_default() += 1;
                    m
                });
        if queued.iter().all(|id| counts.contains_key(id)) {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {MESSAGES} arrived",
            counts.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The victim's leases ran out and the survivor delivered what they held: the queue in the
    // database is done, and that took at least the lease.
    let done = rt.block_on(async {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.superuser_url)
            .await
            .unwrap();
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            if open == 0 {
                break Instant::now();
            }
            assert!(Instant::now() < deadline, "{open} deliveries still open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let held: i64 = rt.block_on(async {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.superuser_url)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE attempts > 1")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    });
    assert!(
        held >= 1,
        "the victim held deliveries when it was killed; victim log: {:?}; survivor log: {:?}",
        victim.proc.stderr_so_far(),
        survivor.log()
    );
    assert!(
        done - killed_at >= Duration::from_secs(6),
        "they waited for the lease: {:?}",
        done - killed_at
    );
    let hits = seen.lock().unwrap().clone();
    let before_kill: Vec<&String> = hits
        .iter()
        .filter(|(_, at)| *at < killed_at)
        .map(|(id, _)| id)
        .collect();
    let mut unique = before_kill.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        before_kill.len(),
        "no message was sent twice while both replicas ran"
    );
    let twice = counts.values().filter(|n| **n > 1).count();
    assert!(
        twice <= CONCURRENCY,
        "only the victim's deliveries in flight may arrive again: {twice}"
    );
    assert!(counts.values().all(|n| *n <= 2), "{counts:?}");
    assert!(hits.len() >= MESSAGES);
    drop(survivor);
    drop(app);
}
