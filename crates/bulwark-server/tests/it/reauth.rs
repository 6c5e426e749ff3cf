//! Every check of a secret charges the sign-in throttle, as attacks on both engines: wrong TOTP
//! codes and passwords from a stolen session (backup codes, password change, MFA enrolment and
//! removal, ending other sessions), wrong tokens (password reset, email verification, invitations, setup) and wrong
//! API keys. A session that keeps answering wrongly ends, and a flood of throttled attempts
//! does not grow the audit log.

use bulwark_server::config::Config;
use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app_with, totp_now};
use bulwark_types::{OrgId, Role};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const WRONG: &str = "not the password at all";

async fn ready_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> (TestApp, OrgId) {
    let app = spawn_app_with(backend, tweak).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    (app, org)
}

async fn code_of(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

/// One wrong answer to each re-authenticating route, in turn, from `who`.
async fn wrong_answer(app: &TestApp, who: &SignedIn, route: usize) -> (u16, String) {
    let (method, path, body) = match route % 6 {
        0 => (
            Method::POST,
            "/v1/auth/mfa/backup-codes",
            json!({"code": "000000"}),
        ),
        1 => (
            Method::DELETE,
            "/v1/auth/mfa/totp",
            json!({"password": WRONG}),
        ),
        2 => (
            Method::POST,
            "/v1/auth/password",
            json!({"current_password": WRONG, "new_password": "quiet violet harbour lantern 42"}),
        ),
        3 => (
            Method::POST,
            "/v1/auth/mfa/totp",
            json!({"password": WRONG}),
        ),
        4 => (
            Method::DELETE,
            "/v1/auth/sessions",
            json!({"password": WRONG}),
        ),
        _ => (
            Method::DELETE,
            "/v1/auth/sessions/ses_01a24e024b9076ce8ee6b01f9d1fdb89",
            json!({"password": WRONG}),
        ),
    };
    code_of(app.send_as(who, method, path, &body).await).await
}

async fn system_events(app: &TestApp) -> Vec<Value> {
    let mut sys = app.state.store.system().await.unwrap();
    sys.audit_events(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| r.body.as_deref())
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect()
}

fn throttled_notes(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["action"] == "auth.login.failed" && e["outcome"]["reason"] == "throttled")
        .count()
}

/// A thief holding sessions of an enrolled owner guesses TOTP codes and passwords on every
/// route that re-checks one: after the account's five free failures every route — and sign-in
/// itself — answers 429 before looking at the answer, even a right one; the backup codes were
/// not replaced; and forty more throttled attempts add one audit event, not forty.
async fn reauthentication_is_throttled_like_sign_in(backend: Backend) {
    let (app, _) = ready_with(backend, |_| {}).await;
    let owner = "owner@acme.test";
    let first = app.login(owner, PASSWORD).await;
    let (a, secret, codes) = app.enroll_totp(&first, PASSWORD).await;
    let pending = app.login(owner, PASSWORD).await;
    let res = app
        .send_as(
            &pending,
            Method::POST,
            "/v1/auth/mfa/verify",
            &json!({"code": codes[0]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let b = SignedIn::from_response(res).await;
    let user: bulwark_types::UserId = a.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let codes_before = app.state.store.mfa_status(user).await.unwrap();

    for route in 0..5 {
        let who = if route % 2 == 0 { &a } else { &b };
        let (status, code) = wrong_answer(&app, who, route).await;
        assert_eq!(status, 401, "route {route}: {code}");
    }
    // Throttled now, whatever route, session or answer: a right TOTP code is not even tried.
    let res = app
        .send_as(
            &b,
            Method::POST,
            "/v1/auth/mfa/backup-codes",
            &json!({"code": totp_now(&secret, 0)}),
        )
        .await;
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(code_of(res).await.1, "too_many_attempts");
    let right_password =
        json!({"current_password": PASSWORD, "new_password": "quiet violet harbour lantern 42"});
    let res = app
        .send_as(&a, Method::POST, "/v1/auth/password", &right_password)
        .await;
    assert_eq!(code_of(res).await, (429, "too_many_attempts".into()));
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": owner, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "sign-in shares the account's counter");
    assert_eq!(
        app.state.store.mfa_status(user).await.unwrap(),
        codes_before,
        "no backup codes were minted"
    );

    let noted = throttled_notes(&system_events(&app).await);
    assert!(noted >= 1, "a throttled refusal is audited");
    for route in 0..40 {
        let (status, _) = wrong_answer(&app, &b, route).await;
        assert_eq!(status, 429);
    }
    assert_eq!(
        throttled_notes(&system_events(&app).await),
        noted,
        "a flood of throttled attempts is audited once per minute, not once per attempt"
    );
    // The password was not changed by anything above.
    let db_user = app
        .state
        .store
        .system()
        .await
        .unwrap()
        .user_by_id(user)
        .await
        .unwrap()
        .unwrap();
    assert!(
        bulwark_crypto::verify_password(
            &secrecy::SecretString::from(PASSWORD),
            &db_user.password_hash
        )
        .unwrap()
    );
}

/// With the account and address counters out of the way, a session that answers wrongly five
/// times is ended (`auth.session.ended`, cause `reauth_failed`); the user's other sessions
/// stay.
async fn wrong_answers_end_the_session_they_were_made_in(backend: Backend) {
    let (app, org) = ready_with(backend, |c| {
        c.throttle.account_free_failures = 1_000;
        c.throttle.address_free_failures = 1_000;
    })
    .await;
    app.add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    let stolen = app.login("member@acme.test", PASSWORD).await;
    let other = app.login("member@acme.test", PASSWORD).await;
    for route in 0..5 {
        // Route 0 needs an authenticator; the member has none: the other five.
        let (status, code) = wrong_answer(&app, &stolen, 1 + route % 5).await;
        assert_eq!(status, 401, "attempt {route}: {code}");
    }
    let res = app.get_as(&stolen, "/v1/auth/session").await;
    assert_eq!(code_of(res).await, (401, "unauthenticated".into()));
    assert_eq!(app.get_as(&other, "/v1/auth/session").await.status(), 200);
    let ended = system_events(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "auth.session.ended" && e["data"]["cause"] == "reauth_failed")
        .count();
    assert_eq!(ended, 1);
}

/// Someone who knows the password but not the second factor cannot reset the account's count
/// of wrong codes by signing in again: a right password clears it only when it completes the
/// sign-in, so after `account_free_failures` wrong codes spread over fresh sign-ins the account
/// must wait.
async fn signing_in_again_does_not_reset_the_count_of_wrong_codes(backend: Backend) {
    let (app, _org) = ready_with(backend, |c| {
        c.throttle.account_free_failures = 5;
        c.throttle.address_free_failures = 1_000;
    })
    .await;
    // Enrols the owner's authenticator (and keeps its backup codes).
    app.login_mfa("owner@acme.test", PASSWORD).await;
    let mut refused = None;
    'rounds: for round in 0..4 {
        // A fresh pending session each round: four wrong codes stay under the session's limit.
        let res = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": "owner@acme.test", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            refused = Some((round, "login"));
            break;
        }
        assert_eq!(res.status(), 200, "round {round}");
        let pending = SignedIn::from_response(res).await;
        for guess in 0..4 {
            let res = app
                .send_as(
                    &pending,
                    Method::POST,
                    "/v1/auth/mfa/verify",
                    &json!({"code": "000000"}),
                )
                .await;
            match code_of(res).await {
                (401, _) => {}
                (429, code) => {
                    assert_eq!(code, "too_many_attempts");
                    refused = Some((round, "verify"));
                    break 'rounds;
                }
                other => panic!("round {round} guess {guess}: {other:?}"),
            }
        }
    }
    let (round, at) = refused.expect("eight wrong codes over fresh sign-ins were never throttled");
    assert!(round <= 2, "throttled only in round {round} ({at})");
}

/// Tokens presented without a session (password reset, email verification, invitation, setup)
/// and API keys charge the address's counter: once it must wait, every one of them — and
/// sign-in from that address — answers 429, and a wrong key stops being looked at.
async fn token_and_key_checks_charge_the_address(backend: Backend) {
    let (app, org) = ready_with(backend, |c| {
        c.throttle.address_free_failures = 4;
        c.throttle.unauthenticated_per_minute = 10_000;
    })
    .await;
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let issued: Value = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/keys"),
            &json!({"name": "ci", "scopes": ["audit:read"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = issued["key"].as_str().unwrap().to_owned();
    let post = |path: &'static str, body: Value| {
        let app = &app;
        async move {
            code_of(
                app.client
                    .post(app.url(path))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let bearer = |key: String| {
        let app = &app;
        async move {
            code_of(
                app.client
                    .get(app.url(&format!("/v1/orgs/{org}/audit/retention")))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    // One character of the secret changed: refused (the checksum catches it).
    let mut forged = key.clone().into_bytes();
    forged[50] = if forged[50] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(bearer(key.clone()).await.0, 200);
    let wrong = [
        post("/v1/auth/password/reset", json!({"token": format!("bwreset_{}", "A".repeat(43)), "new_password": "quiet violet harbour lantern 42"})).await,
        post("/v1/auth/email/verify", json!({"token": format!("bwverify_{}", "A".repeat(43))})).await,
        post("/v1/invitations/accept", json!({"token": format!("bwinvite_{}", "A".repeat(43)), "password": "quiet violet harbour lantern 42"})).await,
        bearer(forged.clone()).await,
    ];
    for (i, (status, code)) in wrong.iter().enumerate() {
        assert_eq!(*status, 401, "wrong secret {i}: {code}");
    }
    // The address must wait now: every secret check from it answers 429, right or wrong.
    let throttled = [
        post("/v1/auth/password/reset", json!({"token": format!("bwreset_{}", "B".repeat(43)), "new_password": "quiet violet harbour lantern 42"})).await,
        post("/v1/auth/email/verify", json!({"token": format!("bwverify_{}", "B".repeat(43))})).await,
        post("/v1/invitations/accept", json!({"token": format!("bwinvite_{}", "B".repeat(43)), "password": "quiet violet harbour lantern 42"})).await,
        post("/v1/setup", json!({"setup_token": format!("bwsetup_{}", "B".repeat(43)), "org": {"name": "X"}, "owner": {"email": "x@x.test", "password": "quiet violet harbour lantern 42"}})).await,
        post("/v1/auth/login", json!({"email": "owner@acme.test", "password": PASSWORD})).await,
        bearer(forged).await,
        bearer(key).await,
    ];
    for (i, (status, code)) in throttled.iter().enumerate() {
        assert_eq!(
            (*status, code.as_str()),
            (429, "too_many_attempts"),
            "secret check {i} while the address must wait"
        );
    }
}

on_both_engines!(
    reauthentication_is_throttled_like_sign_in,
    wrong_answers_end_the_session_they_were_made_in,
    signing_in_again_does_not_reset_the_count_of_wrong_codes,
    token_and_key_checks_charge_the_address,
);

/// Sign-in and the other session-less routes that change something refuse what a browser says
/// came from another site (login CSRF would sign a victim into the attacker's account).
#[tokio::test]
async fn session_less_changes_refuse_cross_site_requests() {
    let (app, _) = ready_with(Backend::Sqlite, |_| {}).await;
    let login = |headers: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let mut req = app
                .client
                .post(app.url("/v1/auth/login"))
                .json(&json!({"email": "owner@acme.test", "password": PASSWORD}));
            for (name, value) in headers {
                req = req.header(name, value);
            }
            code_of(req.send().await.unwrap()).await
        }
    };
    let refused = (403, "cross_site_request".to_owned());
    assert_eq!(
        login(vec![("sec-fetch-site", "cross-site".into())]).await,
        refused
    );
    assert_eq!(
        login(vec![("origin", "https://evil.example".into())]).await,
        refused
    );
    let own = app.url("");
    assert_eq!(
        login(vec![
            ("origin", own.trim_end_matches('/').to_owned()),
            ("sec-fetch-site", "same-origin".into())
        ])
        .await
        .0,
        200
    );
    assert_eq!(
        login(vec![
            ("origin", "null".into()),
            ("sec-fetch-site", "same-origin".into())
        ])
        .await
        .0,
        200,
        "a console form under Referrer-Policy: no-referrer: the browser sends Origin: null"
    );
    for fetch_site in ["same-site", "none"] {
        assert_eq!(
            login(vec![
                ("origin", "null".into()),
                ("sec-fetch-site", fetch_site.into())
            ])
            .await,
            refused,
            "{fetch_site}"
        );
    }
    assert_eq!(
        login(vec![]).await.0,
        200,
        "a client that is no browser sends neither"
    );
    for path in [
        "/v1/auth/password/reset-request",
        "/v1/invitations/accept",
        "/v1/auth/password/reset",
        "/v1/auth/email/verify",
        "/v1/setup",
    ] {
        let res = app
            .client
            .post(app.url(path))
            .header("origin", "https://evil.example")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(code_of(res).await, refused, "{path}");
    }
}
