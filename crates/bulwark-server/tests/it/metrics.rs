//! The counters behind `/metrics` move with what happens, on both engines: sign-ins by method
//! and outcome, throttled checks, rate-limited keys, authorization denials, cache lookups,
//! webhook attempts by outcome, vault operations and audit appends; the scrape-time gauges read
//! the live webhook backlog. The listener itself, `promtool` and the format are tested against
//! the real binary (bulwark-cli `metrics`). Counts are compared before and after each step: the
//! registry is the process's.

use std::time::Duration;

use bulwark_core::metrics::metrics;
use bulwark_testkit::receiver::Receiver;
use bulwark_testkit::{Backend, on_both_engines, spawn_app_with};
use bulwark_types::OrgId;
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const WAIT: Duration = Duration::from_secs(20);

async fn bearer(app: &bulwark_testkit::TestApp, key: &str, path: &str) -> u16 {
    app.client
        .get(app.url(path))
        .header(reqwest::header::AUTHORIZATION, format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The value of `name{labels}` in a rendered exposition (0 when absent).
fn scraped(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn a_scripted_workload_moves_every_counter(backend: Backend) {
    let rx = Receiver::start().await;
    let receiver = rx.addr.to_string();
    let app = spawn_app_with(backend, |c| {
        c.egress.allow_loopback = vec![receiver];
        c.egress.allow_http = true;
        c.webhooks.retry_schedule_ms = vec![60_000];
        c.webhooks.poll_interval_ms = 20;
        c.rate_limits.per_key_per_sec = 1;
        c.rate_limits.per_key_burst = 2;
        c.sessions.cache_secs = 5;
        c.metrics.enabled = true;
        c.metrics.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    })
    .await;
    let m = metrics();
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();

    // Sign-ins: the owner's first (password, then enrolling a second factor), then with the
    // second factor (password, then a backup code).
    let ok = m.signins.value(&["password", "success"]);
    app.login_mfa("owner@acme.test", PASSWORD).await;
    assert_eq!(m.signins.value(&["password", "success"]), ok + 1);
    let second = m.signins.value(&["password", "second_factor_required"]);
    let code_ok = m.signins.value(&["backup_code", "success"]);
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    assert_eq!(
        m.signins.value(&["password", "second_factor_required"]),
        second + 1
    );
    assert_eq!(m.signins.value(&["backup_code", "success"]), code_ok + 1);
    // A wrong code at the second step is one failure (not one per record it leaves).
    let totp_failed = m.signins.value(&["totp", "failure"]);
    let pending = app.login("owner@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &pending,
            Method::POST,
            "/v1/auth/mfa/verify",
            &json!({"code": "000000"}),
        )
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(m.signins.value(&["totp", "failure"]), totp_failed + 1);

    // Cache lookups: the same session again, answered from memory.
    let hits = m.cache_lookups.value(&["session", "hit"]);
    for _ in 0..3 {
        let res = app.get_as(&owner, &format!("/v1/orgs/{org}/members")).await;
        assert_eq!(res.status(), 200);
    }
    assert!(m.cache_lookups.value(&["session", "hit"]) >= hits + 2);

    // A key without members:read is denied (audited and counted); its third request in the
    // second is rate limited.
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/keys"),
            &json!({"name": "siem", "scopes": ["audit:read"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let denials = m.authz_denials.total();
    let limited = m.rate_limited.value(&["api_key"]);
    let key_hits = m.cache_lookups.value(&["api_key", "hit"]);
    assert_eq!(
        bearer(&app, &key, &format!("/v1/orgs/{org}/members")).await,
        403
    );
    assert_eq!(m.authz_denials.total(), denials + 1);
    assert_eq!(
        bearer(&app, &key, &format!("/v1/orgs/{org}/audit/checkpoint")).await,
        200
    );
    assert_eq!(
        bearer(&app, &key, &format!("/v1/orgs/{org}/audit/checkpoint")).await,
        429
    );
    assert_eq!(m.rate_limited.value(&["api_key"]), limited + 1);
    assert!(m.cache_lookups.value(&["api_key", "hit"]) > key_hits);

    // Webhooks: one message to a receiver that answers 200, one to one that answers 500.
    let seals = m.vault_operations.value(&["seal", "ok"]);
    for path in ["/ok", "/fail"] {
        let res = app
            .send_as(
                &owner,
                Method::POST,
                &format!("/v1/orgs/{org}/webhooks/endpoints"),
                &json!({"url": rx.url(path), "event_types": [format!("app.{}", &path[1..])]}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    assert_eq!(
        m.vault_operations.value(&["seal", "ok"]),
        seals + 2,
        "each endpoint's signing secret is sealed"
    );
    let opens = m.vault_operations.value(&["open", "ok"]);
    let delivered = m.webhook_attempts.value(&["delivered", ""]);
    let failed = m.webhook_attempts.value(&["failed", ""]);
    let appended = m.audit_appended.value(&["org", ""]);
    for kind in ["app.ok", "app.fail"] {
        let res = app
            .send_as(
                &owner,
                Method::POST,
                &format!("/v1/orgs/{org}/webhooks/messages"),
                &json!({"event_type": kind, "payload": {"n": 1}}),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    rx.wait_for("/ok", 1, WAIT).await;
    rx.wait_for("/fail", 1, WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while m.webhook_attempts.value(&["failed", ""]) == failed
        || m.webhook_attempts.value(&["delivered", ""]) == delivered
    {
        assert!(tokio::time::Instant::now() < deadline, "attempts counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(m.webhook_attempts.value(&["delivered", ""]), delivered + 1);
    assert_eq!(m.webhook_attempts.value(&["failed", ""]), failed + 1);
    assert!(
        m.vault_operations.value(&["open", "ok"]) >= opens + 2,
        "the signing secrets are opened to sign"
    );
    assert!(m.audit_appended.value(&["org", ""]) > appended);

    // The backlog gauge reads the live queue: five messages to an endpoint allowed one delivery
    // a second wait their turn, due.
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints"),
            &json!({"url": rx.url("/ok-slow"), "event_types": ["app.slow"], "rate_limit": 1}),
        )
        .await;
    assert_eq!(res.status(), 201);
    for n in 0..5 {
        let res = app
            .send_as(
                &owner,
                Method::POST,
                &format!("/v1/orgs/{org}/webhooks/messages"),
                &json!({"event_type": "app.slow", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    let text = bulwark_server::metrics::render(&app.state).await;
    assert!(
        scraped(&text, "bulwark_webhook_queue_depth") >= 1.0,
        "{text}"
    );
    assert!(scraped(&text, "bulwark_webhook_oldest_due_age_seconds") >= 0.0);
    assert_eq!(
        scraped(
            &text,
            "bulwark_scrape_collector_success{collector=\"webhooks\"}"
        ),
        1.0
    );
    rx.wait_for("/ok-slow", 5, WAIT).await;
    let text = bulwark_server::metrics::render(&app.state).await;
    assert_eq!(scraped(&text, "bulwark_webhook_queue_depth"), 0.0, "{text}");

    // Throttled checks: wrong passwords until the account's throttle closes.
    let throttled = m.throttled.value(&[]);
    let failures = m.signins.value(&["password", "failure"]);
    let mut refused = 0;
    for _ in 0..12 {
        let res = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": "owner@acme.test", "password": "not the password at all"}))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            refused += 1;
        }
    }
    assert!(refused > 0, "the throttle closed");
    assert_eq!(m.throttled.value(&[]), throttled + refused);
    assert_eq!(
        m.signins.value(&["password", "failure"]),
        failures + (12 - refused),
        "checked attempts are failures; throttled ones are counted apart"
    );
    app.stop().await;
}

on_both_engines!(a_scripted_workload_moves_every_counter);
