//! Outbound webhooks over HTTP on both engines: audited changes and application messages reach
//! subscribed endpoints signed (verified here with the receiver-side code a customer would
//! run); failures retry on the schedule and disable the endpoint; hanging and redirecting
//! receivers are bounded; SSRF tricks and bad input are refused with nothing stored; a change
//! that rolls back queues nothing; rotation signs with both secrets during the overlap.

use std::time::Duration;

use bulwark_crypto::webhook::{WebhookSecret, verify_standard, verify_stripe};
use bulwark_testkit::receiver::{Hit, Receiver};
use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app_with};
use bulwark_types::OrgId;
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const WAIT: Duration = Duration::from_secs(20);

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let path = res.url().path().to_owned();
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Plain http to the listed local receivers (no other loopback port), fast retries.
fn local(
    receivers: &[std::net::SocketAddr],
) -> impl FnOnce(&mut bulwark_server::config::Config) + use<> {
    let ports: Vec<String> = receivers.iter().map(ToString::to_string).collect();
    move |config| local_to(config, ports)
}

fn local_to(config: &mut bulwark_server::config::Config, ports: Vec<String>) {
    config.egress.allow_loopback = ports;
    config.egress.allow_http = true;
    config.webhooks.retry_schedule_ms = vec![100, 200];
    config.webhooks.retry_jitter = 0.0;
    config.webhooks.timeout_ms = 1000;
    config.webhooks.poll_interval_ms = 20;
    config.webhooks.disable_after_failures = 3;
    config.webhooks.disable_after_secs = 0;
}

async fn ready(
    backend: Backend,
    tweak: impl FnOnce(&mut bulwark_server::config::Config),
) -> (TestApp, OrgId, SignedIn) {
    let app = spawn_app_with(backend, tweak).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    (app, org, owner)
}

async fn endpoint(app: &TestApp, who: &SignedIn, org: OrgId, body: &Value) -> (String, String) {
    let res = app
        .send_as(
            who,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints"),
            body,
        )
        .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let out = json_of(res, 201).await;
    (
        out["id"].as_str().unwrap().to_owned(),
        out["secret"].as_str().unwrap().to_owned(),
    )
}

/// Queues an application message as `who` (202).
async fn queue(app: &TestApp, who: &SignedIn, org: OrgId, body: &Value) -> Value {
    let res = app
        .send_as(
            who,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/messages"),
            body,
        )
        .await;
    json_of(res, 202).await
}

fn verified(hit: &Hit, secret: &str) -> bool {
    let secret = WebhookSecret::parse(secret).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    verify_standard(
        &secret,
        hit.header("webhook-id"),
        hit.header("webhook-timestamp").parse().unwrap(),
        hit.header("webhook-signature"),
        &hit.body,
        now,
        300,
    )
    .is_ok()
}

async fn log(app: &TestApp, who: &SignedIn, org: OrgId, ep: &str) -> Value {
    json_of(
        app.get_as(who, &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}"))
            .await,
        200,
    )
    .await
}

/// An audited change (a team created) and an application message both reach the endpoint,
/// signed; the secret is shown once; idempotency keys deduplicate; the attempt log records
/// each delivery.
async fn changes_and_messages_are_delivered_signed(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    let (ep, secret) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["team.*", "app.invoice.*"], "description": "billing"}),
    )
    .await;
    let shown = log(&app, &owner, org, &ep).await;
    assert!(
        !shown.to_string().contains(&secret),
        "the secret is shown once"
    );
    let listed = app
        .get_as(&owner, &format!("/v1/orgs/{org}/webhooks/endpoints"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&secret));

    json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/teams"),
            &json!({"name": "ops"}),
        )
        .await,
        201,
    )
    .await;
    let hits = rx.wait_for("/ok", 1, WAIT).await;
    let first = &hits[0];
    assert!(
        verified(first, &secret),
        "a valid Standard Webhooks signature"
    );
    assert!(!verified(
        first,
        WebhookSecret::generate().unwrap().expose()
    ));
    let body = first.json();
    assert_eq!(body["type"], "team.created");
    assert_eq!(body["data"]["action"], "team.created");
    assert_eq!(body["data"]["data"]["name"], "ops");
    assert!(first.header("webhook-id").starts_with("msg_"));

    // An application message, with an idempotency key, sent twice: queued once.
    let path = format!("/v1/orgs/{org}/webhooks/messages");
    let msg =
        json!({"event_type": "app.invoice.paid", "payload": {"invoice": "inv_1", "amount": 42}});
    let send = |body: Value, key: &'static str| {
        let app = &app;
        let owner = &owner;
        let path = path.clone();
        async move {
            app.client
                .post(app.url(&path))
                .header("cookie", &owner.cookie)
                .header("x-csrf-token", &owner.csrf)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let queued = json_of(send(msg.clone(), "order-1").await, 202).await;
    let again = send(msg.clone(), "order-1").await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = json_of(again, 200).await;
    assert_eq!(queued["id"], again["id"]);
    let other = json!({"event_type": "app.invoice.paid", "payload": {"invoice": "inv_2"}});
    let reused = json_of(send(other, "order-1").await, 422).await;
    assert_eq!(reused["code"], "idempotency_key_reused");
    let hits = rx.wait_for("/ok", 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits_now = rx.hits("/ok");
    assert_eq!(
        hits_now.len(),
        2,
        "the replayed key queued nothing: {hits:?}"
    );
    let paid = &hits_now[1];
    assert!(verified(paid, &secret));
    assert_eq!(paid.header("webhook-id"), queued["id"].as_str().unwrap());
    assert_eq!(
        paid.json()["data"],
        json!({"invoice": "inv_1", "amount": 42})
    );

    // Not subscribed: nothing arrives.
    send(
        json!({"event_type": "app.user.created", "payload": {}}),
        "u-1",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits("/ok").len(), 2);

    let shown = log(&app, &owner, org, &ep).await;
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{shown}");
    assert!(
        attempts
            .iter()
            .all(|a| a["status"] == 200 && a["delivered"] == true && a["response"] == "thanks")
    );
    assert!(
        shown["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "delivered")
    );

    // A Stripe-style endpoint gets `Bulwark-Signature: t=…,v1=…`.
    let (_, stripe_secret) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok-stripe"), "event_types": ["team.created"], "scheme": "stripe"}),
    )
    .await;
    json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/teams"),
            &json!({"name": "dev"}),
        )
        .await,
        201,
    )
    .await;
    let hit = &rx.wait_for("/ok-stripe", 1, WAIT).await[0];
    let secret = WebhookSecret::parse(&stripe_secret).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        verify_stripe(
            &secret,
            hit.header("bulwark-signature"),
            &hit.body,
            now,
            300
        )
        .is_ok()
    );
    assert!(hit.header("webhook-signature").is_empty());
}

/// A receiver that keeps failing: attempts follow the schedule, the response is kept cut at
/// 1 KiB, the delivery fails after the schedule, the endpoint is disabled (audited) and its
/// queue waits; once fixed and enabled, a resend delivers.
async fn failures_retry_then_disable_the_endpoint(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    let (ep, secret) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/fail"), "event_types": ["app.*"]}),
    )
    .await;
    let msg = json!({"event_type": "app.ping", "payload": {"n": 1}});
    queue(&app, &owner, org, &msg).await;
    let hits = rx.wait_for("/fail", 3, WAIT).await;
    let gaps: Vec<u128> = hits
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis())
        .collect();
    assert!(
        gaps[0] >= 90 && gaps[1] >= 190,
        "backoff 100 ms then 200 ms: {gaps:?}"
    );
    assert_eq!(
        hits[0].header("webhook-id"),
        hits[2].header("webhook-id"),
        "one message id across retries"
    );
    assert!(hits.iter().all(|h| verified(h, &secret)));
    // Wait for the third attempt to be recorded.
    let mut shown = log(&app, &owner, org, &ep).await;
    for _ in 0..100 {
        if shown["endpoint"]["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        shown = log(&app, &owner, org, &ep).await;
    }
    assert_eq!(shown["endpoint"]["enabled"], false, "{shown}");
    assert_eq!(shown["endpoint"]["disabled_reason"], "sustained_failure");
    assert_eq!(shown["endpoint"]["consecutive_failures"], 3);
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    for a in attempts {
        assert_eq!(a["status"], 500);
        assert_eq!(a["delivered"], false);
        assert_eq!(
            a["response"].as_str().unwrap().chars().count(),
            1025,
            "1 KiB kept, then …"
        );
    }
    let delivery = &shown["deliveries"][0];
    assert_eq!(delivery["state"], "failed");
    assert_eq!(delivery["attempts"], 3);
    let events = json_of(
        app.get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/events?action=webhook.endpoint_disabled"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");

    // While disabled, a new message is not queued for it; a resend waits.
    let dlv = delivery["id"].as_str().unwrap();
    json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/deliveries/{dlv}/resend"),
            &json!({}),
        )
        .await,
        202,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        rx.hits("/fail").len(),
        3,
        "a disabled endpoint gets nothing"
    );
    // Fixed and enabled: the waiting resend is delivered.
    json_of(
        app.send_as(
            &owner,
            Method::PATCH,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}"),
            &json!({"url": rx.url("/ok-fixed"), "enabled": true}),
        )
        .await,
        200,
    )
    .await;
    let hits = rx.wait_for("/ok-fixed", 1, WAIT).await;
    assert!(
        verified(&hits[0], &secret),
        "the secret follows the URL change"
    );
    let shown = log(&app, &owner, org, &ep).await;
    assert_eq!(shown["endpoint"]["consecutive_failures"], 0);
}

/// Hanging and redirecting receivers: the attempt ends at the timeout; a redirect is an answer
/// (a failure), never followed.
async fn hanging_and_redirecting_receivers_are_bounded(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    let (hang, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/hang"), "event_types": ["app.*"]}),
    )
    .await;
    let (redirect, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/redirect"), "event_types": ["app.*"]}),
    )
    .await;
    let msg = json!({"event_type": "app.ping", "payload": {}});
    json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/messages"),
            &msg,
        )
        .await,
        202,
    )
    .await;
    rx.wait_for("/redirect", 1, WAIT).await;
    rx.wait_for("/hang", 1, WAIT).await;
    let started = std::time::Instant::now();
    let mut hang_log = log(&app, &owner, org, &hang).await;
    while hang_log["attempts"].as_array().unwrap().is_empty() {
        assert!(started.elapsed() < WAIT);
        tokio::time::sleep(Duration::from_millis(50)).await;
        hang_log = log(&app, &owner, org, &hang).await;
    }
    let a = &hang_log["attempts"][0];
    assert_eq!(a["error"], "no answer within 1000 ms", "{a}");
    assert!(a["latency_ms"].as_u64().unwrap() < 3000);
    let redirect_log = log(&app, &owner, org, &redirect).await;
    assert_eq!(redirect_log["attempts"][0]["status"], 302);
    assert_eq!(redirect_log["attempts"][0]["delivered"], false);
    assert!(
        rx.hits("/target").is_empty(),
        "the redirect was not followed"
    );
}

/// SSRF tricks and bad input: refused with a clear error, nothing stored.
async fn bad_input_and_ssrf_tricks_are_refused(backend: Backend) {
    // No loopback allowance here: the deployment's real rules.
    let (app, org, owner) = ready(backend, |_| {}).await;
    let path = format!("/v1/orgs/{org}/webhooks/endpoints");
    for url in [
        "not a url",
        "ftp://hooks.example.com/",
        "http://hooks.example.com/",
        "https://user:pass@hooks.example.com/",
        "https://hooks.example.com/#frag",
        "https://hooks.example.com/a%2f..%2fadmin",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://0177.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/",
        "https://[fd00::1]/",
        "https://localhost/",
    ] {
        let res = app
            .send_as(&owner, Method::POST, &path, &json!({"url": url}))
            .await;
        let body = json_of(res, 422).await;
        assert_eq!(body["errors"][0]["pointer"], "/url", "{url}: {body}");
    }
    let good = "https://8.8.8.8/hooks";
    for (body, pointer) in [
        (
            json!({"url": good, "event_types": ["member.nope"]}),
            "/event_types",
        ),
        (
            json!({"url": good, "event_types": ["nope.*"]}),
            "/event_types",
        ),
        (json!({"url": good, "event_types": []}), "/event_types"),
        (
            json!({"url": good, "event_types": vec!["*"; 51]}),
            "/event_types",
        ),
        (json!({"url": good, "scheme": "hmac"}), "/scheme"),
        (json!({"url": good, "rate_limit": 0}), "/rate_limit"),
        (
            json!({"url": good, "max_in_flight": 100_000}),
            "/max_in_flight",
        ),
        (
            json!({"url": good, "description": "x".repeat(501)}),
            "/description",
        ),
    ] {
        let res = app.send_as(&owner, Method::POST, &path, &body).await;
        let out = json_of(res, 422).await;
        assert_eq!(out["errors"][0]["pointer"], pointer, "{body}: {out}");
    }
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &path,
            &json!({"url": good, "secret": "whsec_mine"}),
        )
        .await;
    json_of(res, 422).await;
    let messages = format!("/v1/orgs/{org}/webhooks/messages");
    for (body, status) in [
        (json!({"event_type": "team.created", "payload": {}}), 422),
        (json!({"event_type": "invoice.paid", "payload": {}}), 422),
        (json!({"event_type": "app.Invoice", "payload": {}}), 422),
        (
            json!({"event_type": "app.big", "payload": {"blob": "x".repeat(300 * 1024)}}),
            422,
        ),
    ] {
        let res = app.send_as(&owner, Method::POST, &messages, &body).await;
        json_of(res, status).await;
    }
    let listed = json_of(app.get_as(&owner, &path).await, 200).await;
    assert_eq!(listed["endpoints"], json!([]), "nothing stored");
    let mut read = app.state.store.org_read(org).await.unwrap();
    let far = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let none = read
        .webhook_messages_between(time::OffsetDateTime::UNIX_EPOCH, far, None, 10)
        .await
        .unwrap();
    assert!(none.is_empty(), "no message stored: {none:?}");

    // An allowlist makes the deployment default-deny.
    let (app, org, owner) = ready(backend, |c| c.egress.allow_hosts = vec!["8.8.8.8".into()]).await;
    let path = format!("/v1/orgs/{org}/webhooks/endpoints");
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &path,
            &json!({"url": "https://1.1.1.1/hooks"}),
        )
        .await;
    let body = json_of(res, 422).await;
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("allowlist"),
        "{body}"
    );
    let res = app
        .send_as(&owner, Method::POST, &path, &json!({"url": good}))
        .await;
    json_of(res, 201).await;
}

/// The outbox is written in the change's transaction: an audit event appended in a transaction
/// that rolls back leaves no message; one that commits leaves exactly one.
async fn a_rolled_back_change_queues_nothing(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["audit.*"]}),
    )
    .await;
    let draft = || {
        bulwark_core::audit::Draft::success(
            bulwark_audit::event::Payload::AuditRetentionChanged {
                from_days: None,
                to_days: Some(90),
            },
            "org",
            org.to_string(),
            bulwark_audit::event::Context::system(None),
        )
    };
    let store = &app.state.store;
    let clock = &*app.state.clock;
    let mut tx = store.org(org).await.unwrap();
    bulwark_core::audit::append(&mut *tx, bulwark_core::audit::Log::Org(org), draft(), clock)
        .await
        .unwrap();
    drop(tx);
    let count = || async {
        let mut read = store.org_read(org).await.unwrap();
        let far = time::OffsetDateTime::now_utc() + time::Duration::days(1);
        read.webhook_messages_between(time::OffsetDateTime::UNIX_EPOCH, far, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.event_type == "audit.retention_changed")
            .count()
    };
    assert_eq!(count().await, 0, "rolled back with its change");
    let mut tx = store.org(org).await.unwrap();
    bulwark_core::audit::append(&mut *tx, bulwark_core::audit::Log::Org(org), draft(), clock)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count().await, 1);
    rx.wait_for("/ok", 1, WAIT).await;
}

/// Rotation: during the overlap every delivery carries two signatures, one per secret, and a
/// receiver holding either verifies it; with no overlap the old secret stops at once.
async fn rotation_signs_with_both_secrets_during_the_overlap(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    let (ep, old) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["app.*"]}),
    )
    .await;
    let rotate = |overlap: u32| {
        let (app, owner, ep) = (&app, &owner, ep.clone());
        async move {
            let res = app
                .send_as(
                    owner,
                    Method::POST,
                    &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}/rotate"),
                    &json!({"overlap_secs": overlap}),
                )
                .await;
            assert_eq!(res.headers()["cache-control"], "no-store");
            json_of(res, 200).await["secret"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let send = || async {
        let msg = json!({"event_type": "app.ping", "payload": {}});
        queue(&app, &owner, org, &msg).await;
    };
    let new = rotate(3600).await;
    assert_ne!(new, old);
    send().await;
    let hit = rx.wait_for("/ok", 1, WAIT).await.remove(0);
    assert_eq!(
        hit.header("webhook-signature").split(' ').count(),
        2,
        "{hit:?}"
    );
    assert!(verified(&hit, &old) && verified(&hit, &new));
    let newest = rotate(0).await;
    send().await;
    let hit = rx.wait_for("/ok", 2, WAIT).await.remove(1);
    assert_eq!(hit.header("webhook-signature").split(' ').count(), 1);
    assert!(verified(&hit, &newest) && !verified(&hit, &new) && !verified(&hit, &old));
    // The vault keeps exactly the current secret, and refuses to replace or delete it.
    let creds = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/credentials"))
            .await,
        200,
    )
    .await;
    let creds = creds["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 1, "{creds:?}");
    let id = creds[0]["id"].as_str().unwrap();
    let res = app
        .send_as(
            &owner,
            Method::DELETE,
            &format!("/v1/orgs/{org}/credentials/{id}"),
            &json!({}),
        )
        .await;
    assert_eq!(json_of(res, 409).await["code"], "invalid_state");
    let res = app
        .send_as(
            &owner,
            Method::PUT,
            &format!("/v1/orgs/{org}/credentials/{id}/value"),
            &json!({"value": "whsec_bW9jaw=="}),
        )
        .await;
    assert_eq!(json_of(res, 409).await["code"], "invalid_state");
    // Deleting the endpoint deletes its secret too.
    let res = app
        .send_as(
            &owner,
            Method::DELETE,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let creds = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/credentials"))
            .await,
        200,
    )
    .await;
    assert_eq!(creds["credentials"], json!([]));
}

/// Replay queues again the messages of a time range the endpoint is subscribed to; another
/// org's endpoint and delivery are not reachable.
async fn replay_and_isolation(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    let (ep, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["app.a.*"]}),
    )
    .await;
    let since = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);
    for t in ["app.a.one", "app.b.two", "app.a.three"] {
        let msg = json!({"event_type": t, "payload": {}});
        queue(&app, &owner, org, &msg).await;
    }
    rx.wait_for("/ok", 2, WAIT).await;
    let until = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}/replay"),
            &json!({"since": fmt(since), "until": fmt(until)}),
        )
        .await;
    assert_eq!(json_of(res, 200).await["queued"], 2);
    rx.wait_for("/ok", 4, WAIT).await;
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}/replay"),
            &json!({"since": fmt(until), "until": fmt(since)}),
        )
        .await;
    json_of(res, 422).await;

    // Another org's owner sees none of it, even with the ids.
    let owner_id: bulwark_types::UserId =
        owner.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let other_org = app.create_org("other", owner_id).await;
    let res = app
        .get_as(
            &owner,
            &format!("/v1/orgs/{other_org}/webhooks/endpoints/{ep}"),
        )
        .await;
    assert_eq!(res.status(), 404);
    let shown = log(&app, &owner, org, &ep).await;
    let dlv = shown["deliveries"][0]["id"].as_str().unwrap();
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{other_org}/webhooks/deliveries/{dlv}/resend"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
}

on_both_engines!(
    changes_and_messages_are_delivered_signed,
    failures_retry_then_disable_the_endpoint,
    hanging_and_redirecting_receivers_are_bounded,
    bad_input_and_ssrf_tricks_are_refused,
    a_rolled_back_change_queues_nothing,
    rotation_signs_with_both_secrets_during_the_overlap,
    replay_and_isolation,
);

/// The `standardwebhooks` package (PyPI), an implementation of the spec independent of ours,
/// receives real deliveries and verifies them: an audited change and an application message,
/// with one secret and with two during a rotation overlap; a receiver holding a wrong secret
/// refuses them (its 400s are logged as failed attempts).
async fn an_independent_verifier_accepts_the_deliveries(backend: Backend) {
    use std::io::BufRead as _;
    let python = std::env::var("BULWARK_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, wrong_file, log_file) = (
        dir.path().join("secret"),
        dir.path().join("wrong"),
        dir.path().join("log"),
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/peers/webhook_verifier.py"
    );
    let start = |secret: &std::path::Path| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(&python)
            .arg(script)
            .arg(port.to_string())
            .arg(secret)
            .arg(&log_file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the verifier peer needs standardwebhooks (scripts/test installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the verifier peer did not start");
        (child, port)
    };
    let (mut good, good_port) = start(&secret_file);
    let (mut bad, bad_port) = start(&wrong_file);
    std::fs::write(&wrong_file, WebhookSecret::generate().unwrap().expose()).unwrap();

    let peers = [good_port, bad_port].map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)));
    let (app, org, owner) = ready(backend, local(&peers)).await;
    let (ep, secret) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": format!("http://127.0.0.1:{good_port}/hooks"), "event_types": ["team.*", "app.*"]}),
    )
    .await;
    std::fs::write(&secret_file, &secret).unwrap();
    let (bad_ep, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": format!("http://127.0.0.1:{bad_port}/hooks"), "event_types": ["app.*"]}),
    )
    .await;
    json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/teams"),
            &json!({"name": "verifiers"}),
        )
        .await,
        201,
    )
    .await;
    let send = || async {
        let msg = json!({"event_type": "app.order.shipped", "payload": {"order": "o-1", "note": "ünïcode ✓"}});
        queue(&app, &owner, org, &msg).await;
    };
    send().await;
    // Rotate with overlap: the receiver still holds the old secret; deliveries carry both.
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}/rotate"),
            &json!({"overlap_secs": 600}),
        )
        .await;
    json_of(res, 200).await;
    send().await;
    let records = || -> Vec<Value> {
        std::fs::read_to_string(&log_file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let started = std::time::Instant::now();
    while records().len() < 5 {
        assert!(started.elapsed() < WAIT, "{:?}", records());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = records();
    let ok: Vec<&Value> = all.iter().filter(|r| r["ok"] == true).collect();
    assert_eq!(ok.len(), 3, "the change and both messages verify: {all:?}");
    assert!(ok.iter().any(|r| r["type"] == "team.created"));
    assert!(
        all.iter()
            .filter(|r| r["ok"] == false)
            .all(|r| r["error"] == "No matching signature found")
    );
    // The wrong-secret receiver's refusals are failed attempts with its status.
    let started = std::time::Instant::now();
    let mut refused = log(&app, &owner, org, &bad_ep).await;
    while refused["attempts"].as_array().unwrap().len() < 2 {
        assert!(started.elapsed() < WAIT);
        tokio::time::sleep(Duration::from_millis(50)).await;
        refused = log(&app, &owner, org, &bad_ep).await;
    }
    assert!(
        refused["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == 400)
    );
    let _ = good.kill();
    let _ = bad.kill();
    let _ = good.wait();
    let _ = bad.wait();
}

on_both_engines!(an_independent_verifier_accepts_the_deliveries);

/// Bulwark's own events are the audit log: an admin whom an org policy forbids `audit.read`
/// cannot point them (or a replay of them, or a ticket of one) anywhere, while application
/// events stay theirs to route.
async fn audit_events_need_audit_read_too(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    app.add_member(org, "admin@acme.test", PASSWORD, bulwark_types::Role::Admin)
        .await;
    let admin = app.login_mfa("admin@acme.test", PASSWORD).await;
    let policy = r#"@id("org.no-audit-for-admins") forbid (principal in Bulwark::Role::"admin", action == Bulwark::Action::"audit.read", resource);"#;
    json_of(
        app.send_as(
            &owner,
            Method::PUT,
            &format!("/v1/orgs/{org}/authz/policies"),
            &json!({"policies": policy}),
        )
        .await,
        200,
    )
    .await;
    let path = format!("/v1/orgs/{org}/webhooks/endpoints");
    for patterns in [json!(["*"]), json!(["member.*"]), json!(null)] {
        let mut body = json!({"url": rx.url("/ok")});
        if !patterns.is_null() {
            body["event_types"] = patterns.clone();
        }
        let res = app.send_as(&admin, Method::POST, &path, &body).await;
        assert_eq!(res.status(), 403, "{patterns}");
    }
    let (ep, _) = endpoint(
        &app,
        &admin,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["app.*"]}),
    )
    .await;
    let res = app
        .send_as(
            &admin,
            Method::PATCH,
            &format!("{path}/{ep}"),
            &json!({"event_types": ["*"]}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .send_as(
            &admin,
            Method::PATCH,
            &format!("{path}/{ep}"),
            &json!({"description": "fine"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .send_as(
            &admin,
            Method::POST,
            &format!("{path}/{ep}/replay"),
            &json!({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .send_as(
            &admin,
            Method::POST,
            &format!("/v1/orgs/{org}/tickets/preview"),
            &json!({"tracker": "github", "repository": "a/b", "audit_seq": 0, "fields": ["data"],
                    "credential_id": "cred_00000000000000000000000000000000"}),
        )
        .await;
    assert_eq!(res.status(), 403);
}

/// Hook URLs often carry a token in their path (Slack, Teams): the audit log and the vault's
/// metadata keep the origin only.
async fn hook_url_paths_stay_out_of_the_audit_log(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    let token_path = "/ok/services/T0001/B0002/XyZsecretHookToken123";
    let (ep, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url(token_path), "event_types": ["app.*"]}),
    )
    .await;
    let res = app
        .send_as(
            &owner,
            Method::PATCH,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}"),
            &json!({"url": rx.url("/ok/other/AnotherSecretPath999?token=qqq")}),
        )
        .await;
    json_of(res, 200).await;
    let events = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/audit/events?limit=1000"))
            .await,
        200,
    )
    .await;
    let text = events.to_string();
    for secret in ["XyZsecretHookToken123", "AnotherSecretPath999", "qqq"] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    let creds = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/credentials"))
            .await,
        200,
    )
    .await;
    assert!(!creds.to_string().contains("XyZsecretHookToken123"));
}

on_both_engines!(
    audit_events_need_audit_read_too,
    hook_url_paths_stay_out_of_the_audit_log
);

fn unix_ms_now() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// The queue's bookkeeping: a worker whose lease ran out (the delivery was claimed again) only
/// logs its attempt and cannot undo the newer claim; a result for a deleted endpoint's delivery
/// does not sink the batch; pruning drops finished old messages and keeps pending ones.
async fn stale_results_are_fenced_and_old_messages_pruned(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, |c| {
        local(&[rx.addr])(c);
        c.webhooks.deliver = false;
    })
    .await;
    let (ep, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["app.*"]}),
    )
    .await;
    let (gone, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok2"), "event_types": ["app.two"]}),
    )
    .await;
    for t in ["app.one", "app.two"] {
        queue(&app, &owner, org, &json!({"event_type": t, "payload": {}})).await;
    }
    let store = &app.state.store;
    let ep: bulwark_types::EndpointId = ep.parse().unwrap();
    let gone: bulwark_types::EndpointId = gone.parse().unwrap();
    let now = unix_ms_now();
    let claim = |at: i64, lease: i64, id| async move {
        let mut tx = store.org(org).await.unwrap();
        let got = tx.webhook_claim(id, at, lease, 10).await.unwrap();
        tx.commit().await.unwrap();
        got
    };
    let first = claim(now, now + 1, ep).await;
    assert_eq!(first.len(), 2);
    assert_eq!(claim(now, now + 1, ep).await.len(), 0, "held while leased");
    let again = claim(now + 2, now + 100_000, ep).await;
    assert_eq!(again.len(), 2, "taken over after the lease");
    assert!(again.iter().all(|d| d.attempt == 2));
    let to_gone = claim(now, now + 100_000, gone).await;
    assert_eq!(to_gone.len(), 1);
    let result = |d: &bulwark_core::model::ClaimedDelivery, delivered: bool| {
        bulwark_core::model::AttemptResult {
            attempt: bulwark_core::model::WebhookAttempt {
                delivery: d.id,
                message: d.message.id,
                endpoint: d.endpoint,
                attempt: d.attempt,
                at: time::OffsetDateTime::now_utc(),
                status: Some(if delivered { 200 } else { 500 }),
                latency_ms: 1,
                error: None,
                response: None,
                delivered,
            },
            retry_at_ms: (!delivered).then_some(now + 5),
            counts: true,
        }
    };
    // The endpoint of one delivery goes away before the batch is recorded.
    json_of(
        app.send_as(
            &owner,
            Method::DELETE,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{gone}"),
            &json!({}),
        )
        .await,
        204,
    )
    .await
    .to_string();
    let stale: Vec<_> = first
        .iter()
        .map(|d| result(d, false))
        .chain([result(&to_gone[0], true)])
        .collect();
    let clock = &*app.state.clock;
    bulwark_core::webhooks::finish(
        &**store,
        clock,
        org,
        &stale,
        bulwark_core::webhooks::DisablePolicy::default(),
    )
    .await
    .unwrap();
    let mut tx = store.org(org).await.unwrap();
    assert_eq!(
        tx.webhook_in_flight(ep, now + 3).await.unwrap(),
        2,
        "the newer claim holds"
    );
    let deliveries = tx.webhook_deliveries(ep, 10).await.unwrap();
    assert!(
        deliveries
            .iter()
            .all(|d| d.state == "pending" && d.attempts == 2),
        "{deliveries:?}"
    );
    drop(tx);
    let fresh: Vec<_> = again.iter().map(|d| result(d, true)).collect();
    bulwark_core::webhooks::finish(
        &**store,
        clock,
        org,
        &fresh,
        bulwark_core::webhooks::DisablePolicy::default(),
    )
    .await
    .unwrap();
    let mut read = store.org_read(org).await.unwrap();
    let deliveries = read.webhook_deliveries(ep, 10).await.unwrap();
    assert!(
        deliveries.iter().all(|d| d.state == "delivered"),
        "{deliveries:?}"
    );
    assert_eq!(
        read.webhook_attempts(ep, 10).await.unwrap().len(),
        4,
        "every attempt logged"
    );
    drop(read);

    // Messages past the retention go with their deliveries and log; a younger one stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    queue(
        &app,
        &owner,
        org,
        &json!({"event_type": "app.three", "payload": {}}),
    )
    .await;
    let pruned = bulwark_core::webhooks::prune(&**store, clock, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(pruned, 2, "the two old messages");
    let mut read = store.org_read(org).await.unwrap();
    let far = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let left = read
        .webhook_messages_between(time::OffsetDateTime::UNIX_EPOCH, far, None, 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_type, "app.three");
    assert!(read.webhook_attempts(ep, 10).await.unwrap().is_empty());
}

on_both_engines!(stale_results_are_fenced_and_old_messages_pruned);

/// A signing secret that does not open (a tampered row here; a key provider down in life): the
/// failure is audited once, not fanned out as a webhook, not retried in a loop, and does not
/// count against the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_does_not_open_is_not_a_loop() {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(Backend::Sqlite, local(&[rx.addr])).await;
    // Not `*`: the endpoint's own creation events would be delivered at once, and the worker
    // may open (and cache) the secret before the row is tampered with below. `credential.used`
    // is subscribed, so the refusal would be queued if it were fanned out.
    let (ep, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["app.*", "credential.used"]}),
    )
    .await;
    let db = app.data_dir.path().join("data/bulwark.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE credentials SET ciphertext = zeroblob(64)")
        .execute(&pool)
        .await
        .unwrap();
    queue(
        &app,
        &owner,
        org,
        &json!({"event_type": "app.x", "payload": {}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(rx.hits("/ok").is_empty());
    let used = json_of(
        app.get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/events?action=credential.used"),
        )
        .await,
        200,
    )
    .await;
    let used = used["events"].as_array().unwrap();
    assert_eq!(
        used.len(),
        1,
        "one refusal, then the failure is remembered: {used:?}"
    );
    assert_eq!(used[0]["outcome"]["reason"], "sealed_value_rejected");
    let mut read = app.state.store.org_read(org).await.unwrap();
    let far = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let messages = read
        .webhook_messages_between(time::OffsetDateTime::UNIX_EPOCH, far, None, 100)
        .await
        .unwrap();
    assert!(
        messages.iter().all(|m| m.event_type != "credential.used"),
        "the refusal was not sent as a webhook: {messages:?}"
    );
    drop(read);
    let shown = log(&app, &owner, org, &ep).await;
    assert_eq!(shown["endpoint"]["consecutive_failures"], 0, "{shown}");
    assert_eq!(shown["endpoint"]["enabled"], true);
    // One attempt per queued message (the app message), none retried yet: the deliveries
    // wait 30 s for the secret.
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), messages.len(), "{attempts:?}");
    for a in attempts {
        assert_eq!(a["attempt"], 1);
        assert!(
            a["error"]
                .as_str()
                .unwrap()
                .contains("signing secret is unavailable")
        );
    }
}

/// One org's backlog to a receiver that hangs does not starve another org: each round gives
/// every org with due work its share of the delivery slots.
async fn one_org_cannot_starve_another(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, |c| {
        local(&[rx.addr])(c);
        c.webhooks.concurrency = 4;
        c.webhooks.timeout_ms = 20_000;
    })
    .await;
    let owner_id: bulwark_types::UserId =
        owner.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let other = app.create_org("other", owner_id).await;
    endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/hang"), "event_types": ["app.*"], "max_in_flight": 256}),
    )
    .await;
    endpoint(
        &app,
        &owner,
        other,
        &json!({"url": rx.url("/ok-other"), "event_types": ["app.*"]}),
    )
    .await;
    for n in 0..40 {
        queue(
            &app,
            &owner,
            org,
            &json!({"event_type": "app.flood", "payload": {"n": n}}),
        )
        .await;
    }
    // The flooding org holds all it may (3 of 4 slots), each for the 20 s timeout.
    rx.wait_for("/hang", 3, WAIT).await;
    let start = std::time::Instant::now();
    queue(
        &app,
        &owner,
        other,
        &json!({"event_type": "app.ping", "payload": {}}),
    )
    .await;
    rx.wait_for("/ok-other", 1, Duration::from_secs(2)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

on_both_engines!(one_org_cannot_starve_another);

/// The host application queues messages with an API key holding `webhooks:send`; a key
/// without that scope cannot, and no key can manage endpoints.
async fn an_api_key_with_the_scope_queues_messages(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    let (ep, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["app.*"]}),
    )
    .await;
    let key = |scopes: Value| {
        let (app, owner) = (&app, &owner);
        async move {
            let res = app
                .send_as(
                    owner,
                    Method::POST,
                    &format!("/v1/orgs/{org}/keys"),
                    &json!({"name": "app", "scopes": scopes}),
                )
                .await;
            json_of(res, 201).await["key"].as_str().unwrap().to_owned()
        }
    };
    let sender = key(json!(["webhooks:send"])).await;
    let reader = key(json!(["audit:read"])).await;
    let post = |key: String, path: String, body: Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url(&path))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let messages = format!("/v1/orgs/{org}/webhooks/messages");
    let msg = json!({"event_type": "app.from.key", "payload": {"ok": true}});
    json_of(
        post(sender.clone(), messages.clone(), msg.clone()).await,
        202,
    )
    .await;
    rx.wait_for("/ok", 1, WAIT).await;
    assert_eq!(post(reader, messages, msg).await.status(), 403);
    let res = post(
        sender.clone(),
        format!("/v1/orgs/{org}/webhooks/endpoints"),
        json!({"url": rx.url("/ok2"), "event_types": ["app.*"]}),
    )
    .await;
    assert!(
        matches!(res.status().as_u16(), 401 | 403),
        "{}",
        res.status()
    );
    let res = app
        .client
        .get(app.url(&format!("/v1/orgs/{org}/webhooks/endpoints/{ep}")))
        .bearer_auth(sender)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(res.status().as_u16(), 401 | 403),
        "{}",
        res.status()
    );
}

on_both_engines!(an_api_key_with_the_scope_queues_messages);

/// A receiver answering with a NUL byte (which PostgreSQL text cannot hold) and a terminal
/// escape: the attempt is recorded with them replaced, and the delivery is delivered once.
async fn control_characters_in_an_answer_are_recorded_safely(backend: Backend) {
    let rx = Receiver::start().await;
    let (app, org, owner) = ready(backend, local(&[rx.addr])).await;
    let (ep, _) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/nul"), "event_types": ["app.*"]}),
    )
    .await;
    queue(
        &app,
        &owner,
        org,
        &json!({"event_type": "app.x", "payload": {}}),
    )
    .await;
    rx.wait_for("/nul", 1, WAIT).await;
    let started = std::time::Instant::now();
    let mut shown = log(&app, &owner, org, &ep).await;
    while shown["deliveries"][0]["state"] != "delivered" {
        assert!(started.elapsed() < WAIT, "{shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        shown = log(&app, &owner, org, &ep).await;
    }
    assert_eq!(
        shown["attempts"][0]["response"],
        "ok\u{fffd}then \u{fffd}[2J"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits("/nul").len(), 1, "delivered once");
}

on_both_engines!(control_characters_in_an_answer_are_recorded_safely);

/// Review item 5: a signing secret's value is bound to its destination (the endpoint's origin).
/// Moving the endpoint to another host seals both secrets (the current one and the one still in
/// its overlap) again for the new origin, in the same transaction: deliveries there verify with
/// either, and the old origin written back into the rows opens nothing.
async fn moving_an_endpoint_to_another_host_reseals_its_secrets(backend: Backend) {
    let (rx, moved) = (Receiver::start().await, Receiver::start().await);
    let (app, org, owner) = ready(backend, local(&[rx.addr, moved.addr])).await;
    let (ep, old) = endpoint(
        &app,
        &owner,
        org,
        &json!({"url": rx.url("/ok"), "event_types": ["app.*"]}),
    )
    .await;
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}/rotate"),
            &json!({"overlap_secs": 3600}),
        )
        .await;
    let new = json_of(res, 200).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    json_of(
        app.send_as(
            &owner,
            Method::PATCH,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}"),
            &json!({"url": moved.url("/ok-moved")}),
        )
        .await,
        200,
    )
    .await;
    queue(
        &app,
        &owner,
        org,
        &json!({"event_type": "app.ping", "payload": {}}),
    )
    .await;
    let hit = moved.wait_for("/ok-moved", 1, WAIT).await.remove(0);
    assert!(verified(&hit, &old) && verified(&hit, &new), "{hit:?}");
    let s = &app.state;
    let secrets: Vec<_> = {
        let mut read = s.store.org_read(org).await.unwrap();
        read.credentials().await.unwrap()
    };
    let secrets: Vec<_> = secrets
        .into_iter()
        .filter(|c| c.kind == "webhook_secret")
        .collect();
    assert_eq!(secrets.len(), 2);
    let use_value = |id, to: String| async move {
        bulwark_core::vault::use_value(&*s.store, &*s.clock, &*s.vault, org, id, &to, "test").await
    };
    for c in &secrets {
        assert_eq!(c.destinations, vec![format!("http://{}/", moved.addr)]);
        assert!(use_value(c.id, moved.url("/ok-moved")).await.is_ok());
        // Someone with database access points the secret back at the old host.
        let mut tx = s.store.org(org).await.unwrap();
        let old_origin = format!("http://{}/", rx.addr);
        assert!(
            tx.set_credential_destinations(c.id, &[old_origin])
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        assert!(matches!(
            use_value(c.id, rx.url("/ok")).await,
            Err(bulwark_core::CoreError::Sealed)
        ));
    }
    // A move of an endpoint whose secret does not open changes nothing, with a stable code.
    let res = app
        .send_as(
            &owner,
            Method::PATCH,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{ep}"),
            &json!({"url": rx.url("/ok-back")}),
        )
        .await;
    assert_eq!(json_of(res, 409).await["code"], "credential_unreadable");
    let shown = log(&app, &owner, org, &ep).await;
    assert_eq!(shown["endpoint"]["url"], moved.url("/ok-moved"));
}

on_both_engines!(moving_an_endpoint_to_another_host_reseals_its_secrets);
