//! Sign-in, sessions, CSRF and sign-out over HTTP, as attacks as well as happy paths.

use bulwark_testkit::{Backend, TestApp, on_both_engines, spawn_app};
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::Value;

const PASSWORD: &str = "a long enough password";

async fn ready(backend: Backend) -> TestApp {
    let app = spawn_app(backend).await;
    app.setup("Acme", "owner@acme.test", PASSWORD).await;
    app
}

/// The system log's events as JSON, oldest first.
async fn system_events(app: &TestApp) -> Vec<Value> {
    let mut sys = app.state.store.system().await.unwrap();
    sys.audit_events(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(r.body.as_deref().unwrap()).unwrap())
        .collect()
}

async fn login_sets_hardened_cookies_and_the_session_says_who(backend: Backend) {
    let app = ready(backend).await;
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&serde_json::json!({"email": "OWNER@acme.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cookies: Vec<String> = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-bulwark_session=bwsess_"))
        .expect("session cookie");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(
            session.split("; ").any(|a| a == attr),
            "{attr} in {session}"
        );
    }
    assert!(!session.contains("Domain"));
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("__Host-bulwark_csrf="))
        .expect("csrf cookie");
    assert!(!csrf.contains("HttpOnly"), "the console's script reads it");
    let token = session.split(';').next().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert!(
        !body
            .to_string()
            .contains(&token["__Host-bulwark_session=".len()..]),
        "the token is only in the cookie"
    );

    let who: Value = app
        .client
        .get(app.url("/v1/auth/session"))
        .header(COOKIE, &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["user"]["email"], "owner@acme.test");
    assert_eq!(who["session"]["id"], body["session"]["id"]);
    assert_eq!(who["csrf_token"], body["csrf_token"]);

    // The success is in the system log, by the user, on the session; no secret is in it.
    let events = system_events(&app).await;
    let ok = events
        .iter()
        .find(|e| e["action"] == "auth.login.succeeded")
        .unwrap();
    assert_eq!(ok["actor"]["type"], "user");
    assert_eq!(ok["resource"]["id"], body["session"]["id"]);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(PASSWORD));
    assert!(!all.contains(&token["__Host-bulwark_session=".len()..]));
}

async fn an_unknown_email_and_a_wrong_password_look_the_same(backend: Backend) {
    let app = ready(backend).await;
    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let res = app
                .client
                .post(app.url("/v1/auth/login"))
                .json(&serde_json::json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            assert!(res.headers().get(SET_COOKIE).is_none());
            let status = res.status();
            let mut body: Value = res.json().await.unwrap();
            body.as_object_mut().unwrap().remove("request_id");
            (status, body)
        }
    };
    let unknown = attempt("nobody@acme.test", PASSWORD).await;
    let wrong = attempt("owner@acme.test", "not the right password at all").await;
    assert_eq!(unknown.0, 401);
    assert_eq!(unknown, wrong);
    assert_eq!(unknown.1["code"], "invalid_credentials");

    let failures: Vec<Value> = system_events(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "auth.login.failed")
        .collect();
    assert_eq!(failures.len(), 2);
    for f in &failures {
        assert_eq!(f["outcome"]["reason"], "invalid_credentials");
        assert_eq!(f["outcome"]["result"], "failure");
    }
    let all = serde_json::to_string(&failures).unwrap();
    assert!(!all.contains("not the right password"));
    assert!(
        !all.contains("nobody@acme.test"),
        "a mistyped secret may sit in the email field"
    );

    // Overlong passwords are refused before hashing; malformed emails are a validation error.
    let long = "x".repeat(257);
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&serde_json::json!({"email": "owner@acme.test", "password": long}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&serde_json::json!({"email": "not an email", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

async fn logout_needs_this_sessions_csrf_token_from_this_site(backend: Backend) {
    let app = ready(backend).await;
    let a = app.login("owner@acme.test", PASSWORD).await;
    let b = app.login("owner@acme.test", PASSWORD).await;
    assert_ne!(a.cookie, b.cookie, "a new session id at every login");
    let logout = |cookie: &str| {
        app.client
            .post(app.url("/v1/auth/logout"))
            .header(COOKIE, cookie.to_owned())
    };
    let code = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or_default();
        (status, body["code"].as_str().unwrap_or("").to_owned())
    };
    let refused = [
        ("no token", logout(&a.cookie)),
        (
            "another session's token",
            logout(&a.cookie).header("x-csrf-token", &b.csrf),
        ),
        (
            "a forged token",
            logout(&a.cookie).header(
                "x-csrf-token",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
        ),
        (
            "a cross-site origin",
            logout(&a.cookie)
                .header("x-csrf-token", &a.csrf)
                .header("origin", "https://evil.example"),
        ),
        (
            "a cross-site fetch",
            logout(&a.cookie)
                .header("x-csrf-token", &a.csrf)
                .header("sec-fetch-site", "cross-site"),
        ),
    ];
    for (what, req) in refused {
        let (status, c) = code(req.send().await.unwrap()).await;
        assert_eq!(status, 403, "{what}");
        assert!(
            c == "csrf_failed" || c == "cross_site_request",
            "{what}: {c}"
        );
    }
    assert_eq!(app.get_as(&a, "/v1/auth/session").await.status(), 200);

    let res = logout(&a.cookie)
        .header("x-csrf-token", &a.csrf)
        .header("origin", app.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let cleared: Vec<_> = res.headers().get_all(SET_COOKIE).iter().collect();
    assert!(
        cleared
            .iter()
            .all(|c| c.to_str().unwrap().contains("Max-Age=0"))
    );
    // Revoked server-side: replaying the cookie fails; the other session lives on.
    assert_eq!(app.get_as(&a, "/v1/auth/session").await.status(), 401);
    assert_eq!(app.get_as(&b, "/v1/auth/session").await.status(), 200);
    let (status, _) = code(
        logout(&a.cookie)
            .header("x-csrf-token", &a.csrf)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let ended: Vec<Value> = system_events(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "auth.session.ended")
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["data"]["cause"], "logout");
}

async fn forged_planted_and_malformed_session_cookies_are_refused(backend: Backend) {
    let app = ready(backend).await;
    let a = app.login("owner@acme.test", PASSWORD).await;
    let forged = format!("__Host-bulwark_session=bwsess_{}", "A".repeat(43));
    let planted = format!("{}; {forged}", a.cookie);
    let long = format!("__Host-bulwark_session=bwsess_{}", "A".repeat(5000));
    for cookie in [
        forged.as_str(),
        planted.as_str(),
        long.as_str(),
        "__Host-bulwark_session=",
        "bulwark_session=x",
        "__Host-bulwark_session=setup_token",
    ] {
        let res = app
            .client
            .get(app.url("/v1/auth/session"))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{cookie:.60}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{cookie:.60}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "unauthenticated");
    }
}

on_both_engines!(
    login_sets_hardened_cookies_and_the_session_says_who,
    an_unknown_email_and_a_wrong_password_look_the_same,
    logout_needs_this_sessions_csrf_token_from_this_site,
    forged_planted_and_malformed_session_cookies_are_refused,
);
