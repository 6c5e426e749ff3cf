//! The request path: headers, request ids, uniform errors, limits, CORS, readiness.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bulwark_testkit::{Backend, on_both_engines, spawn_app, spawn_app_with};
use serde_json::Value;

fn assert_security_headers(h: &reqwest::header::HeaderMap) {
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    for (method, path) in [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/v1/nope"),
        ("POST", "/v1/setup"),
        ("DELETE", "/healthz"),
    ] {
        let res = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_security_headers(res.headers());
    }
}

#[tokio::test]
async fn a_well_formed_request_id_is_kept_and_anything_else_replaced() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app
        .client
        .get(app.url("/v1/nope"))
        .header("x-request-id", "client-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-abc.123");
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["request_id"], "client-abc.123");
    for bad in ["has space", "quote\"d", &"x".repeat(200), "ünïcode"] {
        let res = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let got = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(got, bad);
        assert_eq!(got.len(), 36, "a fresh UUID: {got}");
        assert!(uuid::Uuid::parse_str(&got).is_ok());
    }
    let a = app.client.get(app.url("/healthz")).send().await.unwrap();
    let b = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);
}

#[tokio::test]
async fn framework_errors_are_problems_with_stable_codes() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app
        .client
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "not_found");
    let res = app.client.get(app.url("/v1/setup")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.headers().get("allow").is_some());
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "method_not_allowed"
    );
}

/// ASVS V13.4.4: TRACE and TRACK are answered by no route (405 with the problem shape, or 404),
/// and nothing of the request (its headers, a cookie) is echoed back.
#[tokio::test]
async fn trace_and_track_are_refused_and_echo_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    for method in ["TRACE", "TRACK"] {
        for path in [
            "/healthz",
            "/v1/auth/session",
            "/v1/setup",
            "/login",
            "/orgs",
        ] {
            let res = app
                .client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(path),
                )
                .header("cookie", "bulwark_session=echo-canary-cookie")
                .header("x-echo-canary", "echo-canary-header")
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            assert!(matches!(status, 404 | 405), "{method} {path}: {status}");
            let headers = format!("{:?}", res.headers());
            let body = res.text().await.unwrap();
            for canary in ["echo-canary-cookie", "echo-canary-header"] {
                assert!(
                    !body.contains(canary) && !headers.contains(canary),
                    "{method} {path}: {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_request_that_never_finishes_its_body_times_out() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.http.request_timeout_secs = 1).await;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"POST /v1/setup HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_request_in_flight_and_refuses_new_connections() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut app = spawn_app(Backend::Sqlite).await;
    let body = br#"{"setup_token":"bwsetup_wrong","org":{"name":"Acme"},"owner":{"email":"o@a.test","password":"a long enough password"}}"#;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/setup HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The in-flight request still completes with a real answer.
    s.write_all(&body[10..]).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    // New connections are no longer served (polled: the listener closes asynchronously).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(app.url("/healthz"))
            .send()
            .await;
        if fresh.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new requests were still served 10 s after shutdown began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let big = "a".repeat(32 * 1024);
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-big", big)
        .send()
        .await;
    match res {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(
            e.is_request() || e.is_connect() || e.to_string().contains("connection"),
            "{e}"
        ),
    }
    // The server is still fine afterwards.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn cors_is_closed_by_default_and_opens_only_to_listed_origins() {
    let closed = spawn_app(Backend::Sqlite).await;
    let res = closed
        .client
        .request(reqwest::Method::OPTIONS, closed.url("/v1/setup"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let open = spawn_app_with(Backend::Sqlite, |c| {
        c.http.cors_allowed_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        open.client
            .request(reqwest::Method::OPTIONS, open.url("/v1/setup"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let evil = preflight("https://evil.example.com").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

async fn readiness_reflects_database_keys_and_shutdown(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["checks"]["database"], "ok");
    assert_eq!(v["checks"]["migrations"], "ok");
    app.state.keys_loaded.store(false, Ordering::Release);
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["checks"]["keys"], "failing");
    assert!(v["reason"].as_str().unwrap().contains("keys"));
    app.state.keys_loaded.store(true, Ordering::Release);
    app.state.draining.store(true, Ordering::Release);
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "alive while draining"
    );
}

on_both_engines!(readiness_reflects_database_keys_and_shutdown);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_an_unreachable_database_and_recovers() {
    use sqlx::Connection as _;
    let app = spawn_app(Backend::Postgres).await;
    let db = app.pg.as_ref().unwrap();
    let mut admin = sqlx::PgConnection::connect(&bulwark_testkit::pg::superuser_base_url())
        .await
        .unwrap();
    let cut = format!(
        "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false",
        db.name
    );
    sqlx::query(sqlx::AssertSqlSafe(cut))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&db.name)
        .execute(&mut admin)
        .await
        .unwrap();
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["checks"]["database"], "failing", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("unreachable"), "{v}");
    assert!(
        !v.to_string().contains(&db.name),
        "no internals in the probe body"
    );
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let heal = format!("ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true", db.name);
    sqlx::query(sqlx::AssertSqlSafe(heal))
        .execute(&mut admin)
        .await
        .unwrap();
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200, "ready again once the database is back");
}
