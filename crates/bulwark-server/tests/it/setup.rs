//! `POST /v1/setup`: once, with the token, and nothing changes on bad input.

use bulwark_testkit::{Backend, on_both_engines, spawn_app};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn body(token: &str) -> Value {
    json!({"setup_token": token, "org": {"name": "Acme Corp"}, "owner": {"email": "owner@acme.test", "password": PASSWORD}})
}

async fn setup_works_once_then_answers_410(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.setup_token.clone().unwrap();
    let res = app
        .client
        .post(app.url("/v1/setup"))
        .json(&body(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["org"]["slug"], "acme-corp");
    assert!(out["org"]["id"].as_str().unwrap().starts_with("org_"));
    assert!(out["owner"]["id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(out["owner"]["role"], "owner");
    assert!(!out.to_string().contains(PASSWORD));

    let again = app
        .client
        .post(app.url("/v1/setup"))
        .json(&body(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410);
    assert_eq!(again.headers()["content-type"], "application/problem+json");
    let p: Value = again.json().await.unwrap();
    assert_eq!(p["code"], "setup_completed");
    app.stop().await;
}

async fn a_wrong_setup_token_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.setup_token.clone().unwrap();
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for wrong in [forged.as_str(), "", "bwsetup_", "x"] {
        let res = app
            .client
            .post(app.url("/v1/setup"))
            .json(&body(wrong))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{wrong:?}");
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["code"], "invalid_setup_token");
    }
    // Still pending: the right token works afterwards.
    let res = app
        .client
        .post(app.url("/v1/setup"))
        .json(&body(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    app.stop().await;
}

/// Content type, body, expected status, code and field pointer.
type Case = (
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
    Option<&'static str>,
);

async fn bad_setup_input_gets_clear_errors_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.setup_token.clone().unwrap();
    let post = |content_type: &'static str, bytes: Vec<u8>| {
        app.client
            .post(app.url("/v1/setup"))
            .header("content-type", content_type)
            .body(bytes)
            .send()
    };
    let cases: Vec<Case> = vec![
        ("application/json", b"{\"setup_token\": ".to_vec(), 400, "malformed_json", None),
        ("application/json", b"not json".to_vec(), 400, "malformed_json", None),
        ("application/json", [b"{\"setup_token\": \"".as_slice(), &[0xff, 0xfe], b"\"}"].concat(), 400, "malformed_json", None),
        ("application/json", format!("{} trailing", body(&token)).into_bytes(), 400, "malformed_json", None),
        ("text/plain", body(&token).to_string().into_bytes(), 415, "unsupported_media_type", None),
        ("application/x-www-form-urlencoded", b"a=b".to_vec(), 415, "unsupported_media_type", None),
        ("application/json", json!({"setup_token": token, "org": {"name": "A"}, "owner": {"email": "o@a.test", "password": PASSWORD}, "admin": true}).to_string().into_bytes(), 422, "validation_failed", Some("/admin")),
        ("application/json", json!({"setup_token": token, "org": {"name": "Acme", "extra": 1}, "owner": {"email": "o@a.test", "password": PASSWORD}}).to_string().into_bytes(), 422, "validation_failed", Some("/org/extra")),
        ("application/json", json!({"setup_token": token, "org": {"name": "Acme"}, "owner": {"email": "not-an-email", "password": PASSWORD}}).to_string().into_bytes(), 422, "validation_failed", Some("/owner/email")),
        ("application/json", json!({"setup_token": token, "org": {"name": "Acme"}, "owner": {"email": "o@a.test", "password": "short"}}).to_string().into_bytes(), 422, "weak_password", Some("/owner/password")),
        ("application/json", json!({"setup_token": token, "org": {"name": "Acme", "slug": "Bad Slug"}, "owner": {"email": "o@a.test", "password": PASSWORD}}).to_string().into_bytes(), 422, "validation_failed", Some("/org/slug")),
        ("application/json", json!({"setup_token": token, "org": {"name": 7}, "owner": {"email": "o@a.test", "password": PASSWORD}}).to_string().into_bytes(), 422, "validation_failed", Some("/org/name")),
        ("application/json", json!({"setup_token": token, "org": {"name": "Acme"}}).to_string().into_bytes(), 422, "validation_failed", None),
    ];
    for (ct, bytes, status, code, pointer) in cases {
        let res = post(ct, bytes).await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{ct} → {code}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["code"], code);
        assert_eq!(p["status"], status);
        assert_eq!(p["request_id"], request_id.as_str());
        if let Some(pointer) = pointer {
            assert_eq!(p["errors"][0]["pointer"], pointer, "{p}");
        }
        let text = p.to_string();
        for leak in ["sqlx", "SELECT", "/src/", ".rs:", "panicked", PASSWORD] {
            assert!(!text.contains(leak), "{leak} leaked: {text}");
        }
    }
    // An oversized body is refused from its Content-Length, before it is read. (Sent raw: a
    // client still writing a body the server has already refused may see a broken pipe.)
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /v1/setup HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            2 * 1024 * 1024
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 8192];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(
            text.contains("payload_too_large") && text.contains("application/problem+json"),
            "{text}"
        );
    }
    // None of that changed anything: setup is still pending and works.
    let res = app
        .client
        .post(app.url("/v1/setup"))
        .json(&body(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    app.stop().await;
}

on_both_engines!(
    setup_works_once_then_answers_410,
    a_wrong_setup_token_is_refused_and_changes_nothing,
    bad_setup_input_gets_clear_errors_and_changes_nothing,
);
