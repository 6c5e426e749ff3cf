//! Logs: JSON, request ids on every line of a request, probes kept out, secrets redacted.

use bulwark_server::config::LogFormat;
use bulwark_testkit::logs::capture;
use bulwark_testkit::{Backend, on_both_engines, spawn_app};
use serde_json::{Value, json};

const SECRETS: &[&str] = &[
    "pw-Zq8#secret-1111",
    "tok-Zq8-secret-2222",
    "seed-Zq8-secret-3333",
    "cookie-Zq8-secret-4444",
    "key-Zq8-secret-5555",
];

#[derive(Debug)]
#[expect(dead_code, reason = "read through Debug")]
struct Login {
    email: String,
    password: String,
    inner: Inner,
}

#[derive(Debug)]
#[expect(dead_code, reason = "read through Debug")]
struct Inner {
    api_key: String,
    headers: Vec<(String, String)>,
}

fn log_everything() {
    let nested = Login {
        email: "ada@example.com".into(),
        password: SECRETS[0].into(),
        inner: Inner {
            api_key: SECRETS[4].into(),
            headers: vec![("cookie".into(), SECRETS[3].into())],
        },
    };
    let json = serde_json::json!({"a": {"b": [{"Token": SECRETS[1]}, {"SEED": SECRETS[2]}]}, "Set-Cookie": SECRETS[3]});
    tracing::info!(
        password = SECRETS[0],
        Authorization = format!("Bearer {}", SECRETS[1]),
        "flat fields"
    );
    tracing::info!(login = ?nested, "debug-formatted nested struct");
    tracing::info!(body = %json, "json string field");
    tracing::warn!(
        "message text with token={} and secret: \"{}\"",
        SECRETS[1],
        SECRETS[2]
    );
    // The credential after the scheme, not only the scheme.
    tracing::info!("forwarded authorization: Bearer {} as is", SECRETS[1]);
    tracing::info!(header = %format!("Authorization: Basic {}", SECRETS[4]), "display field");
    let span = tracing::info_span!("outer", api_key = SECRETS[4]);
    let _g = span.enter();
    tracing::info!("inside a span carrying a secret");
}

fn assert_clean(out: &str) {
    for s in SECRETS {
        assert!(!out.contains(s), "secret {s} leaked into:\n{out}");
    }
    assert!(out.contains("[REDACTED]"));
    assert!(out.contains("ada@example.com"), "non-secret fields survive");
}

#[tokio::test]
async fn json_logs_redact_secrets_at_any_depth() {
    let out = capture(LogFormat::Json, "info");
    log_everything();
    let text = out.text();
    assert_clean(&text);
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[tokio::test]
async fn text_logs_redact_secrets_too() {
    let out = capture(LogFormat::Text, "info");
    log_everything();
    assert_clean(&out.text());
}

#[tokio::test]
async fn request_logs_carry_the_request_id_skip_probes_and_hide_setup_secrets() {
    let out = capture(LogFormat::Json, "debug");
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.setup_token.clone().unwrap();
    app.client.get(app.url("/healthz")).send().await.unwrap();
    app.client.get(app.url("/readyz")).send().await.unwrap();
    let res = app.client.post(app.url("/v1/setup")).header("x-request-id", "req-setup-1")
        .json(&serde_json::json!({"setup_token": token, "org": {"name": "Acme"}, "owner": {"email": "o@acme.test", "password": SECRETS[0]}}))
        .send().await.unwrap();
    assert_eq!(res.status(), 201);
    app.stop().await;
    let text = out.text();
    assert!(!text.contains(&token), "setup token in log");
    assert!(!text.contains(SECRETS[0]), "password in log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"] == "req-setup-1")
        .collect();
    assert!(of_request.len() >= 2, "handler and access lines: {text}");
    assert!(
        of_request
            .iter()
            .any(|l| l["message"] == "request" && l["status"] == 201)
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["path"] == "/healthz" || l["path"] == "/readyz"),
        "probes are not access-logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_error_is_opaque_to_the_client_and_logged_with_its_cause() {
    use sqlx::Connection as _;
    let out = capture(LogFormat::Json, "info");
    let app = spawn_app(Backend::Postgres).await;
    let db = app.pg.as_ref().unwrap();
    // Break the database under the server: the app role loses its read grant on `instance`.
    let mut admin = sqlx::PgConnection::connect(&db.superuser_url)
        .await
        .unwrap();
    let revoke = format!("REVOKE SELECT ON instance FROM \"{}\"", db.app_role);
    sqlx::query(sqlx::AssertSqlSafe(revoke))
        .execute(&mut admin)
        .await
        .unwrap();

    let res = app
        .client
        .post(app.url("/v1/setup"))
        .header("x-request-id", "req-broken-1")
        .json(
            &serde_json::json!({"setup_token": app.setup_token, "org": {"name": "Acme"},
            "owner": {"email": "o@acme.test", "password": "a long enough password"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "internal_error");
    assert_eq!(body["request_id"], "req-broken-1");
    let text = body.to_string();
    for leak in [
        "permission denied",
        "instance",
        "sqlx",
        "SELECT",
        "postgres",
    ] {
        assert!(!text.contains(leak), "{leak} leaked to the client: {text}");
    }
    let logs = out.text();
    let cause = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["message"] == "request failed" && l["span"]["request_id"] == "req-broken-1")
        .unwrap_or_else(|| panic!("no error line for the request: {logs}"));
    assert!(
        cause["cause"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{cause}"
    );
}

/// Live secrets of every kind the server issues, sent where ids belong in URL paths and in query
/// strings (a key pasted in place of its id), never reach the log; the requests are logged.
async fn tokens_in_urls_never_reach_the_log(backend: Backend, format: LogFormat) {
    const PASSWORD: &str = "a long enough password";
    let out = capture(format, "debug");
    let app = spawn_app(backend).await;
    let setup_token = app.setup_token.clone().unwrap();
    let hit = |path: String| {
        let req = app.client.get(app.url(&path));
        async move { req.send().await.unwrap().status() }
    };
    // The setup token while it is live.
    hit(format!(
        "/v1/setup/{setup_token}?setup_token={setup_token}&t={setup_token}"
    ))
    .await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org = setup["org"]["id"].as_str().unwrap().to_owned();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let issued: Value = app
        .send_as(
            &owner,
            reqwest::Method::POST,
            &format!("/v1/orgs/{org}/keys"),
            &json!({"name": "ci", "scopes": ["audit:read"], "expires_in_days": 30}),
        )
        .await
        .json()
        .await
        .unwrap();
    let session = owner.cookie.split_once('=').unwrap().1.to_owned();
    assert!(session.starts_with("bwsess_"), "{session}");
    let mut live = vec![
        setup_token,
        session,
        issued["key"].as_str().unwrap().to_owned(),
    ];
    // The other kinds, in their real shape.
    for prefix in ["bwverify", "bwreset", "bwinvite"] {
        let t = bulwark_crypto::SecretToken::generate(prefix).unwrap();
        live.push(t.expose().to_owned());
    }
    let whsec = bulwark_crypto::webhook::WebhookSecret::generate().unwrap();
    live.push(whsec.expose().to_owned());
    for t in &live {
        for path in [
            format!("/v1/orgs/{org}/keys/{t}"),
            format!("/v1/orgs/{org}/keys/{t}/chain?key={t}"),
            format!("/v1/{t}"),
            format!("/v1/orgs/{org}/keys?cursor={t}&next={t}"),
        ] {
            let status = app.get_as(&owner, &path).await.status();
            assert!(status.is_client_error(), "{path}: {status}");
        }
    }
    app.stop().await;
    let text = out.text();
    for t in &live {
        assert!(
            !text.contains(t.as_str()),
            "{t} leaked into the log:\n{text}"
        );
        let tail = &t[t.len() - 16..];
        assert!(!text.contains(tail), "the end of {t} leaked into the log");
    }
    for shape in ["bwk_[REDACTED]", "whsec_[REDACTED]", "bwsetup_[REDACTED]"] {
        assert!(text.contains(shape), "{shape}: the requests are logged");
    }
}

async fn tokens_in_urls_never_reach_json_logs(backend: Backend) {
    tokens_in_urls_never_reach_the_log(backend, LogFormat::Json).await;
}

on_both_engines!(tokens_in_urls_never_reach_json_logs);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_in_urls_never_reach_text_logs() {
    tokens_in_urls_never_reach_the_log(Backend::Sqlite, LogFormat::Text).await;
}
