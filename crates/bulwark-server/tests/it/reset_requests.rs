//! Password-reset and verification requests are no account oracle and no mail cannon (review
//! item 9): both kinds of address get the same answer, in the same time; one account gets at most
//! one token email per cooldown and a few a day, on both engines.

use std::time::{Duration, Instant};

use bulwark_testkit::{Backend, TestApp, on_both_engines, spawn_app_with};
use bulwark_types::{OrgId, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::invitations::{mails, outbox, post, token_in};

const PASSWORD: &str = "a long enough password";
const RESET: &str = "/v1/auth/password/reset-request";

async fn ready(
    backend: Backend,
    tweak: impl FnOnce(&mut bulwark_server::config::Config),
) -> (TestApp, OrgId) {
    let app = spawn_app_with(backend, tweak).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    app.add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    (app, org)
}

/// Waits until the mail worker has handled every queued request (a job is deleted only after
/// its mail was handed over).
async fn drained(app: &TestApp) {
    for _ in 0..100 {
        if app.state.store.mail_backlog().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the mail queue did not drain");
}

/// The emails in the outbox addressed to `to`.
fn mails_to(app: &TestApp, to: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(outbox(app)) else {
        return Vec::new();
    };
    let mut files: Vec<_> = dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| m.contains(&format!("To: {to}\r\n")))
        .collect()
}

/// The `auth.password.reset_requested` events of the system log, as (result, reason).
async fn reset_events(app: &TestApp) -> Vec<(String, Option<String>)> {
    let mut sys = app.state.store.system().await.unwrap();
    sys.audit_events(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(r.body.as_deref()?).ok())
        .filter(|e| e["action"] == "auth.password.reset_requested")
        .map(|e| {
            (
                e["outcome"]["result"].as_str().unwrap().to_owned(),
                e["outcome"]["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Status, headers (but the request id and date) and body of an answer.
async fn answer(res: reqwest::Response) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let status = res.status().as_u16();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .filter(|(k, _)| *k != "x-request-id" && *k != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

/// Ten rapid requests for one account send one email; an unknown address gets the very same
/// answer and no email; later requests inside the cooldown send nothing and are audited once.
async fn rapid_reset_requests_send_one_email_and_answer_alike(backend: Backend) {
    let (app, _) = ready(backend, |_| {}).await;
    for _ in 0..10 {
        let known = post(&app, RESET, &json!({"email": "member@acme.test"})).await;
        let unknown = post(&app, RESET, &json!({"email": "ghost@acme.test"})).await;
        let (known, unknown) = (answer(known).await, answer(unknown).await);
        assert_eq!(known.0, 202);
        assert_eq!(known, unknown, "the same status, headers and body");
    }
    drained(&app).await;
    let sent = mails(&app, 1).await;
    assert_eq!(sent.len(), 1, "one email for ten requests");
    assert!(sent[0].contains("To: member@acme.test\r\n"));
    assert!(mails_to(&app, "ghost@acme.test").is_empty());
    // Each of these is handled on its own, inside the cooldown: nothing sent, one record.
    for _ in 0..3 {
        let res = post(&app, RESET, &json!({"email": "MEMBER@acme.test"})).await;
        assert_eq!(res.status(), 202);
        drained(&app).await;
    }
    assert_eq!(mails_to(&app, "member@acme.test").len(), 1);
    assert_eq!(
        reset_events(&app).await,
        vec![
            ("success".to_owned(), None),
            ("failure".to_owned(), Some("cooldown".to_owned()))
        ],
        "the mail, then the refusal once"
    );
    let mut sys = app.state.store.system().await.unwrap();
    let events: Vec<String> = sys
        .audit_events(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            r.body
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .collect();
    let token = token_in(&sent[0], "bwreset_");
    assert!(events.iter().all(|e| !e.contains(&token)));
}

/// After the cooldown a second email follows, with a new token; the daily limit then holds even
/// after the cooldown.
async fn a_second_email_follows_the_cooldown_until_the_daily_limit(backend: Backend) {
    let (app, _) = ready(backend, |c| {
        c.mail.token_cooldown_secs = 1;
        c.mail.token_daily_limit = 2;
    })
    .await;
    let mut tokens = Vec::new();
    for n in 1..=3 {
        let res = post(&app, RESET, &json!({"email": "member@acme.test"})).await;
        assert_eq!(res.status(), 202);
        drained(&app).await;
        let sent = mails_to(&app, "member@acme.test");
        assert_eq!(sent.len(), n.min(2), "request {n}");
        tokens = sent.iter().map(|m| token_in(m, "bwreset_")).collect();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    assert_ne!(tokens[0], tokens[1]);
    assert_eq!(
        reset_events(&app).await,
        vec![
            ("success".to_owned(), None),
            ("success".to_owned(), None),
            ("failure".to_owned(), Some("daily_limit".to_owned()))
        ]
    );
    let res = post(
        &app,
        "/v1/auth/password/reset",
        &json!({"token": tokens[1], "new_password": "quiet violet harbour lantern 42"}),
    )
    .await;
    assert_eq!(res.status(), 204, "the latest token works");
}

/// Verification emails have the same limit: five requests, one email.
async fn repeated_verification_requests_send_one_email(backend: Backend) {
    let (app, _) = ready(backend, |_| {}).await;
    let member = app.login("member@acme.test", PASSWORD).await;
    for _ in 0..5 {
        let res = app
            .send_as(
                &member,
                Method::POST,
                "/v1/auth/email/verification",
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    drained(&app).await;
    let sent = mails_to(&app, "member@acme.test");
    assert_eq!(sent.len(), 1);
    token_in(&sent[0], "bwverify_");
}

/// When the relay refuses the mail, the account's limit is put back (asking again works at once)
/// and no reset is recorded as sent.
async fn a_refused_mail_does_not_use_up_the_cooldown(backend: Backend) {
    // A relay on loopback that is not there: every connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (app, _) = ready(backend, |c| {
        c.mail.smtp = Some(bulwark_server::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            security: bulwark_server::config::SmtpSecurity::None,
            username: None,
            password: None,
            ca_file: None,
            timeout_secs: 5,
            allow_plaintext_auth: false,
        });
    })
    .await;
    let user = app
        .state
        .store
        .system()
        .await
        .unwrap()
        .user_by_email(&"member@acme.test".parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    for _ in 0..2 {
        let res = post(&app, RESET, &json!({"email": "member@acme.test"})).await;
        assert_eq!(res.status(), 202);
        drained(&app).await;
        let mut sys = app.state.store.system().await.unwrap();
        let limit = sys
            .lock_mail_limit(user, bulwark_core::model::TokenPurpose::ResetPassword)
            .await
            .unwrap();
        assert_eq!(limit, Some(bulwark_core::model::MailLimit::default()));
    }
    assert!(reset_events(&app).await.is_empty());
}

on_both_engines!(
    rapid_reset_requests_send_one_email_and_answer_alike,
    a_refused_mail_does_not_use_up_the_cooldown,
    a_second_email_follows_the_cooldown_until_the_daily_limit,
    repeated_verification_requests_send_one_email,
);

/// Pairs of requests, one for an existing account and one for an unknown address, interleaved
/// (the order alternates): in how many pairs the existing account's answer was slower. Paired
/// samples cancel drifts in machine load; a sign test needs no assumption on their size.
async fn slower_known_pairs(app: &TestApp, pairs: usize) -> usize {
    let time = |email: &'static str| async move {
        let started = Instant::now();
        let res = post(app, RESET, &json!({ "email": email })).await;
        let took = started.elapsed();
        assert_eq!(res.status(), 202);
        res.bytes().await.unwrap();
        took
    };
    let mut slower = 0;
    for i in 0..pairs {
        let (known, unknown) = if i % 2 == 0 {
            let k = time("member@acme.test").await;
            (k, time("ghost@acme.test").await)
        } else {
            let u = time("ghost@acme.test").await;
            (time("member@acme.test").await, u)
        };
        slower += usize::from(known > unknown);
    }
    slower
}

/// The answer takes as long for an existing account as for an unknown address: in 400 paired
/// requests the existing one is slower in about half the pairs (within 4.5 standard deviations
/// of a fair coin: a false alarm about once in 150 000 runs), where the review's 2x gap puts it
/// near all or none. Runs alone in the `serial-timing` group.
async fn timing_reset_requests_answer_alike_for_known_and_unknown_addresses(backend: Backend) {
    let (app, _) = ready(backend, |c| c.throttle.unauthenticated_per_minute = 100_000).await;
    // Warm-up: connections, caches, the first mail.
    slower_known_pairs(&app, 20).await;
    drained(&app).await;
    let n = 400;
    let slower = slower_known_pairs(&app, n).await;
    let half = n / 2;
    let bound = 45; // 4.5 * sqrt(400) / 2
    assert!(
        slower.abs_diff(half) <= bound,
        "the existing account's answer was slower in {slower} of {n} pairs"
    );
}

on_both_engines!(timing_reset_requests_answer_alike_for_known_and_unknown_addresses);
