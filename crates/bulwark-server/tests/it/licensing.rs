//! Offline licensing through the API, on both engines: community limits without a license;
//! activation bound to this deployment; forged, foreign, swapped, stale and replayed licenses
//! refused (each refusal audited, nothing changed); entitlements (features, seats) enforced and
//! denials audited; a clock moved backwards neither activates nor extends anything; grace, then
//! read-only mode that keeps sign-in, the audit log, export, revocation and activation open; a
//! stored activation that does not verify stops the server (fail closed).

use bulwark_server::startup::{self, StartError};
use bulwark_testkit::app::test_config;
use bulwark_testkit::license::{self as lic, claims, issue, issue_with, upload, vendor};
use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app_with};
use bulwark_types::{OrgId, Role};
use reqwest::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

const PASSWORD: &str = "a long enough password";

async fn ready(backend: Backend) -> (TestApp, OrgId, SignedIn) {
    let app = spawn_app_with(backend, |c| {
        c.license.extra_public_keys = vec![lic::vendor_public_key()];
    })
    .await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    (app, org, owner)
}

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

async fn refused(app: &TestApp, who: &SignedIn, text: &str, code: &str) {
    let body = json_of(upload(app, who, text).await, 422).await;
    assert_eq!(body["code"], code, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(!detail.contains("signature\":"), "{detail}");
}

/// The system log's license events (`license.*`), oldest first.
async fn license_events(app: &TestApp) -> Vec<Value> {
    let mut sys = app.state.store.system().await.unwrap();
    sys.audit_events(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(r.body.as_deref().unwrap()).unwrap())
        .filter(|e| e["action"].as_str().unwrap().starts_with("license."))
        .collect()
}

fn reasons(events: &[Value], action: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| {
            e["outcome"]["reason"]
                .as_str()
                .unwrap_or("success")
                .to_owned()
        })
        .collect()
}

async fn status(app: &TestApp, who: &SignedIn) -> Value {
    json_of(app.get_as(who, "/v1/license").await, 200).await
}

async fn community_then_licensed_entitlements(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let s = status(&app, &owner).await;
    assert_eq!(s["state"], "community");
    assert!(s["license"].is_null());
    assert_eq!(s["usage"]["orgs_limit"], 1);
    assert_eq!(s["usage"]["seats_limit"], 25);
    assert_eq!(s["usage"]["orgs"], 1);
    assert_eq!(s["usage"]["seats"], 1);
    let deployment = s["deployment_id"].as_str().unwrap().to_owned();
    assert!(deployment.starts_with("dep_"), "{deployment}");

    // Community: no licensed feature.
    let preview = json!({"tracker": "github", "repository": "acme/sec",
        "credential_id": "cred_00000000000000000000000000000000", "audit_seq": 0,
        "fields": ["id", "action"]});
    let path = format!("/v1/orgs/{org}/tickets/preview");
    let body = json_of(
        app.send_as(&owner, Method::POST, &path, &preview).await,
        403,
    )
    .await;
    assert_eq!(body["code"], "license_feature_missing");

    // Only owners of the operator org activate; admins read; members of other orgs see nothing.
    app.add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let admin = app.login_mfa("admin@acme.test", PASSWORD).await;
    status(&app, &admin).await;
    let mut c = claims("lic_acme", &deployment);
    c.limits.seats = Some(3);
    let text = issue(c);
    json_of(upload(&app, &admin, &text).await, 403).await;
    let outsider = app.create_user("out@other.test", PASSWORD).await;
    app.create_org("other", outsider).await;
    let other = app.login_mfa("out@other.test", PASSWORD).await;
    json_of(app.get_as(&other, "/v1/license").await, 404).await;
    json_of(upload(&app, &other, &text).await, 404).await;
    // Not JSON as a media type.
    let res = app
        .client
        .post(app.url("/v1/license"))
        .header(reqwest::header::COOKIE, &owner.cookie)
        .header("x-csrf-token", &owner.csrf)
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res, 415).await["code"], "unsupported_media_type");

    let s = json_of(upload(&app, &owner, &text).await, 201).await;
    assert_eq!(s["state"], "valid");
    assert_eq!(s["license"]["license_id"], "lic_acme");
    assert_eq!(s["license"]["features"], json!(["tickets"]));
    assert_eq!(s["usage"]["seats_limit"], 3);
    assert!(s["usage"]["orgs_limit"].is_null(), "unlimited");

    // The feature is granted: the preview now fails on its own merits (no such credential).
    let body = json_of(
        app.send_as(&owner, Method::POST, &path, &preview).await,
        404,
    )
    .await;
    assert_eq!(body["code"], "not_found");

    // Seats: owner, admin and the other org's owner take all 3; a fourth is refused at the
    // invitation and at its acceptance.
    let invite = json!({"email": "fourth@acme.test", "role": "member"});
    let path = format!("/v1/orgs/{org}/invitations");
    let body = json_of(app.send_as(&owner, Method::POST, &path, &invite).await, 403).await;
    assert_eq!(body["code"], "license_limit_seats");
    assert!(body["detail"].as_str().unwrap().contains("3"), "{body}");

    let events = license_events(&app).await;
    assert_eq!(reasons(&events, "license.activated"), ["success"]);
    assert_eq!(
        reasons(&events, "license.entitlement_denied"),
        ["license_feature_missing", "license_limit_seats"]
    );
    let activated = events
        .iter()
        .find(|e| e["action"] == "license.activated")
        .unwrap();
    assert_eq!(activated["data"]["deployment"], deployment.as_str());
    assert_eq!(activated["data"]["serial"], 1);
    assert_eq!(activated["actor"]["type"], "user");
    let denied = events
        .iter()
        .find(|e| e["outcome"]["reason"] == "license_limit_seats")
        .unwrap();
    assert_eq!(denied["data"]["limit"], 3);
    assert_eq!(denied["data"]["in_use"], 3);
    assert_eq!(denied["data"]["org_id"], org.to_string());
}

async fn forged_foreign_stale_and_replayed_licenses_are_refused(backend: Backend) {
    let (app, _org, owner) = ready(backend).await;
    let deployment = lic::deployment_id(&app, &owner).await;
    let good = claims("lic_acme", &deployment);

    // Tampered claims: seats raised after signing (the signature is over canonical claims).
    let mut tampered: Value = serde_json::from_str(&issue(good.clone())).unwrap();
    tampered["license"]["limits"]["seats"] = json!(100_000);
    refused(&app, &owner, &tampered.to_string(), "license_bad_signature").await;
    // Expiry moved out, a feature added.
    let mut tampered: Value = serde_json::from_str(&issue(good.clone())).unwrap();
    tampered["license"]["expires_at"] = json!("2099-01-01T00:00:00Z");
    refused(&app, &owner, &tampered.to_string(), "license_bad_signature").await;
    let mut tampered: Value = serde_json::from_str(&issue(good.clone())).unwrap();
    tampered["license"]["features"] = json!(["everything", "tickets"]);
    refused(&app, &owner, &tampered.to_string(), "license_bad_signature").await;
    // Signed by a key this deployment does not trust, also one claiming the trusted key id.
    refused(
        &app,
        &owner,
        &issue_with(good.clone(), &vendor(7)),
        "license_untrusted_key",
    )
    .await;
    let mut forged: Value = serde_json::from_str(&issue_with(good.clone(), &vendor(7))).unwrap();
    let trusted: Value = serde_json::from_str(&issue(good.clone())).unwrap();
    forged["signature"]["key_id"] = trusted["signature"]["key_id"].clone();
    refused(&app, &owner, &forged.to_string(), "license_bad_signature").await;
    // A duplicate key (parsers disagree on which wins) and junk.
    let dup = issue(good.clone()).replacen(
        "\"licensee\":",
        "\"licensee\": \"Someone Else\", \"licensee\":",
        1,
    );
    refused(&app, &owner, &dup, "license_malformed").await;
    refused(&app, &owner, "{not json", "license_malformed").await;

    // Issued to another deployment (a license swapped between deployments), or to none.
    let other =
        bulwark_core::licensing::Deployment::derive(&bulwark_crypto::Seed::generate().unwrap())
            .unwrap();
    refused(
        &app,
        &owner,
        &issue(claims("lic_acme", other.id())),
        "license_other_deployment",
    )
    .await;
    let mut unbound = good.clone();
    unbound.deployment = None;
    refused(&app, &owner, &issue(unbound), "license_not_bound").await;

    // Expired, and not yet valid.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut expired = good.clone();
    expired.issued_at = now - Duration::days(40);
    expired.not_before = now - Duration::days(40);
    expired.expires_at = now - Duration::days(1);
    refused(&app, &owner, &issue(expired), "license_expired").await;
    let mut early = good.clone();
    early.not_before = now + Duration::days(1);
    refused(&app, &owner, &issue(early), "license_not_yet_valid").await;

    // Canonicalisation: reordered keys, whitespace and \u escapes are the same claims.
    let file: Value = serde_json::from_str(&issue(good.clone())).unwrap();
    let reordered = format!(
        "{{\"signature\":{},\n  \"license\":{}}}",
        file["signature"],
        file["license"].to_string().replace("Acme", "\\u0041cme")
    );
    json_of(upload(&app, &owner, &reordered).await, 201).await;

    // A newer serial, then the older one again: refused (replay); the same file again is fine.
    let mut second = good.clone();
    second.serial = 2;
    let second_text = issue(second.clone());
    json_of(upload(&app, &owner, &second_text).await, 201).await;
    refused(&app, &owner, &issue(good.clone()), "license_superseded").await;
    json_of(upload(&app, &owner, &second_text).await, 201).await;
    let history = app
        .state
        .store
        .system()
        .await
        .unwrap()
        .license_activations()
        .await
        .unwrap();
    assert_eq!(
        history.len(),
        2,
        "the license in force again adds no record"
    );
    // Another file under a serial already activated.
    let mut conflicting = second.clone();
    conflicting.licensee = "Acme Renamed".into();
    refused(&app, &owner, &issue(conflicting), "license_serial_conflict").await;
    // A license issued before the one in force.
    let mut older = claims("lic_old", &deployment);
    older.issued_at = now - Duration::days(3);
    older.not_before = now - Duration::days(3);
    refused(&app, &owner, &issue(older), "license_superseded").await;

    let s = status(&app, &owner).await;
    assert_eq!(
        s["license"]["serial"], 2,
        "nothing refused changed anything"
    );
    let events = license_events(&app).await;
    assert_eq!(
        reasons(&events, "license.activated"),
        [
            "license_bad_signature",
            "license_bad_signature",
            "license_bad_signature",
            "license_untrusted_key",
            "license_bad_signature",
            "license_malformed",
            "license_malformed",
            "license_other_deployment",
            "license_not_bound",
            "license_expired",
            "license_not_yet_valid",
            "success",
            "success",
            "license_superseded",
            "success",
            "license_serial_conflict",
            "license_superseded",
        ]
    );
    // A refusal names what it could read, never the signature.
    let swapped = events
        .iter()
        .find(|e| e["outcome"]["reason"] == "license_other_deployment")
        .unwrap();
    assert_eq!(swapped["data"]["license_id"], "lic_acme");
    assert_eq!(swapped["data"]["deployment"], deployment.as_str());
    let junk = events
        .iter()
        .find(|e| e["outcome"]["reason"] == "license_malformed")
        .unwrap();
    assert!(junk["data"]["license_id"].is_null());
}

/// Moves the license clock's latest-seen time to `at`, as if the system clock had been there.
async fn seen_at(app: &TestApp, at: OffsetDateTime) {
    let mut tx = app.state.store.system().await.unwrap();
    let mut clock = tx.lock_license_clock().await.unwrap();
    clock.last_seen_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap();
    tx.set_license_clock(&clock).await.unwrap();
    tx.commit().await.unwrap();
    app.state
        .licensing
        .tick(&*app.state.store, &*app.state.clock)
        .await
        .unwrap();
}

async fn a_clock_moved_back_extends_nothing_and_read_only_keeps_the_way_out(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let deployment = lic::deployment_id(&app, &owner).await;
    let mut c = claims("lic_acme", &deployment);
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    c.expires_at = now + Duration::days(10);
    c.grace_days = 3;
    json_of(upload(&app, &owner, &issue(c.clone())).await, 201).await;
    // An API key, made while writable, to revoke later.
    let key = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/keys"),
            &json!({"name": "ci", "scopes": ["audit:read"]}),
        )
        .await,
        201,
    )
    .await;

    // The deployment saw a time 11 days on (expired, in grace); the clock is back at today.
    seen_at(&app, now + Duration::days(11)).await;
    let s = status(&app, &owner).await;
    assert_eq!(s["state"], "grace", "judged at the latest time seen: {s}");
    // Grace keeps every entitlement.
    let team = json!({"name": "grace-team"});
    let teams = format!("/v1/orgs/{org}/teams");
    json_of(app.send_as(&owner, Method::POST, &teams, &team).await, 201).await;
    // A renewal cannot be activated with the clock behind the latest time seen.
    let mut renewal = c.clone();
    renewal.serial = 2;
    renewal.expires_at = now + Duration::days(400);
    refused(
        &app,
        &owner,
        &issue(renewal.clone()),
        "license_clock_behind",
    )
    .await;

    // Past the grace period: read-only.
    seen_at(&app, now + Duration::days(14)).await;
    let s = status(&app, &owner).await;
    assert_eq!(s["state"], "read_only");
    let body = json_of(
        app.send_as(&owner, Method::POST, &teams, &json!({"name": "late"}))
            .await,
        403,
    )
    .await;
    assert_eq!(body["code"], "license_read_only");
    let creds = format!("/v1/orgs/{org}/credentials");
    let credential = json!({"name": "c", "kind": "generic", "value": "v",
        "destinations": ["https://example.com/"]});
    let body = json_of(
        app.send_as(&owner, Method::POST, &creds, &credential).await,
        403,
    )
    .await;
    assert_eq!(body["code"], "license_read_only");
    // Never lost, never locked out: reads, the audit log and its export, sign-in, revocation.
    json_of(app.get_as(&owner, &teams).await, 200).await;
    let log = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/audit/events"))
            .await,
        200,
    )
    .await;
    assert!(log.to_string().contains("grace-team"), "data kept");
    let export = app
        .get_as(&owner, &format!("/v1/orgs/{org}/audit/export"))
        .await;
    assert_eq!(export.status(), 200);
    let again = app.login_mfa("owner@acme.test", PASSWORD).await;
    let key_id = key["id"].as_str().unwrap();
    let res = app
        .send_as(
            &again,
            Method::DELETE,
            &format!("/v1/orgs/{org}/keys/{key_id}"),
            &json!({}),
        )
        .await;
    assert!(
        res.status().is_success(),
        "revocation stays open: {}",
        res.status()
    );
    // So do the security actions an incident needs: tightening the org's sign-in rules.
    let tighter = json!({"session_idle_secs": 600, "session_absolute_secs": null,
        "mfa_required": "owners_admins", "password_composition": false});
    let res = app
        .send_as(
            &again,
            Method::PUT,
            &format!("/v1/orgs/{org}/policy"),
            &tighter,
        )
        .await;
    assert!(
        res.status().is_success(),
        "policy stays open: {}",
        res.status()
    );
    // The audit retention may grow, never shrink: read-only mode deletes nothing.
    let retention = format!("/v1/orgs/{org}/audit/retention");
    let body = json_of(
        app.send_as(&again, Method::PUT, &retention, &json!({"days": 30}))
            .await,
        403,
    )
    .await;
    assert_eq!(body["code"], "license_read_only");
    json_of(
        app.send_as(&again, Method::PUT, &retention, &json!({"days": null}))
            .await,
        200,
    )
    .await;

    // A time from before the latest seen never makes a license valid again; after the clock
    // catches up, a renewal restores everything.
    seen_at(&app, now + Duration::days(14)).await;
    assert_eq!(status(&app, &owner).await["state"], "read_only");

    let events = license_events(&app).await;
    assert!(
        reasons(&events, "license.entitlement_denied")
            .iter()
            .all(|r| r == "license_read_only"),
        "{events:?}"
    );
    assert_eq!(reasons(&events, "license.entitlement_denied").len(), 3);
    assert_eq!(reasons(&events, "license.read_only"), ["success"]);
    let warnings: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "license.expiring")
        .collect();
    assert_eq!(warnings.len(), 1, "once a day at most: {warnings:?}");
    assert_eq!(warnings[0]["data"]["license_id"], "lic_acme");
    assert_eq!(warnings[0]["actor"]["type"], "system");
    assert!(reasons(&events, "license.activated").contains(&"license_clock_behind".to_owned()));
}

on_both_engines!(
    community_then_licensed_entitlements,
    forged_foreign_stale_and_replayed_licenses_are_refused,
    a_clock_moved_back_extends_nothing_and_read_only_keeps_the_way_out,
);

/// A license expiring in two seconds with no grace: read-only as soon as it expires, and a
/// renewal (a later serial) makes the deployment writable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_read_only_until_a_renewal() {
    let (app, org, owner) = ready(Backend::Sqlite).await;
    let deployment = lic::deployment_id(&app, &owner).await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut c = claims("lic_short", &deployment);
    c.expires_at = now + Duration::seconds(2);
    c.grace_days = 0;
    json_of(upload(&app, &owner, &issue(c.clone())).await, 201).await;
    let teams = format!("/v1/orgs/{org}/teams");
    json_of(
        app.send_as(&owner, Method::POST, &teams, &json!({"name": "a"}))
            .await,
        201,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let body = json_of(
        app.send_as(&owner, Method::POST, &teams, &json!({"name": "b"}))
            .await,
        403,
    )
    .await;
    assert_eq!(body["code"], "license_read_only");
    let mut renewal = c;
    renewal.serial = 2;
    renewal.expires_at = now + Duration::days(365);
    json_of(upload(&app, &owner, &issue(renewal)).await, 201).await;
    json_of(
        app.send_as(&owner, Method::POST, &teams, &json!({"name": "b"}))
            .await,
        201,
    )
    .await;
}

/// Activation records this deployment did not write count for nothing: one copied from
/// another deployment's store and a forged one (highest serial, latest issue time) neither put a
/// license in force nor block activating a real one. A license in force whose signing key is no
/// longer trusted stops the server (fail closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_records_count_for_nothing_and_an_untrusted_license_stops_the_server() {
    let (a, _, owner_a) = ready(Backend::Sqlite).await;
    lic::activate(&a, &owner_a).await;
    let stolen = {
        let mut tx = a.state.store.system().await.unwrap();
        tx.license_activations().await.unwrap().pop().unwrap()
    };
    // B: its own data dir and seed; A's activation, and a forged one, put into B's store.
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _) = test_config(Backend::Sqlite, dir.path()).await;
    config.license.extra_public_keys = vec![lic::vendor_public_key()];
    let b = startup::prepare(config).await.unwrap();
    let mut forged = stolen.clone();
    forged.seq = u64::try_from(i64::MAX).unwrap();
    forged.serial = u32::MAX;
    forged.issued_at_ms = i64::MAX;
    forged.receipt_signature = stolen.receipt_signature.replace('A', "B");
    {
        let mut tx = b.state.store.system().await.unwrap();
        tx.insert_license_activation(&stolen).await.unwrap();
        tx.insert_license_activation(&forged).await.unwrap();
        tx.commit().await.unwrap();
    }
    drop(b);
    let (mut config, _) = test_config(Backend::Sqlite, dir.path()).await;
    config.license.extra_public_keys = vec![lic::vendor_public_key()];
    let b = startup::prepare(config).await.unwrap();
    let (store, clock) = (&*b.state.store, &*b.state.clock);
    let status = b.state.licensing.status(store, clock).await.unwrap();
    assert!(status.license.is_none(), "A's license is not B's");
    assert_eq!(status.ignored_activations, 2);
    // B activates a license issued to B under the same id: the forged serial does not count.
    let own = issue(claims("lic_test", b.state.licensing.deployment().id()));
    let context = bulwark_audit::event::Context::system(None);
    b.state
        .licensing
        .activate(store, clock, own.as_bytes(), context)
        .await
        .unwrap();
    drop(b);

    // A second process on A's store that does not trust the key that signed its license.
    let dir_a = a.data_dir.path();
    let (config, _) = test_config(Backend::Sqlite, dir_a).await;
    let Err(err) = startup::prepare(config).await else {
        panic!("started with a license signed by an untrusted key");
    };
    assert!(matches!(err, StartError::License(_)), "{err}");
    assert!(err.to_string().contains("do not trust"), "{err}");
    let (mut config, _) = test_config(Backend::Sqlite, dir_a).await;
    config.license.extra_public_keys = vec![lic::vendor_public_key()];
    startup::prepare(config).await.unwrap();
}

/// A clock that says what the test says.
struct At(OffsetDateTime);

impl bulwark_types::Clock for At {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// A system clock that jumps decades ahead does not drag the latest time seen along (it moves
/// with monotonic time); if it was recorded anyway (a process that started with the wrong
/// time), `reset_clock` is the audited way back.
async fn a_clock_that_ran_ahead_is_contained_and_reset(backend: Backend) {
    let (app, _org, owner) = ready(backend).await;
    let (store, licensing) = (&*app.state.store, &app.state.licensing);
    let stored = || async {
        let mut tx = store.system().await.unwrap();
        tx.lock_license_clock().await.unwrap()
    };
    let write = |clock: bulwark_core::model::LicenseClock| async move {
        let mut tx = store.system().await.unwrap();
        tx.lock_license_clock().await.unwrap();
        tx.set_license_clock(&clock).await.unwrap();
        tx.commit().await.unwrap();
    };
    // This process's first tick (the ticker's, or this one) anchors the cap.
    licensing.tick(store, &*app.state.clock).await.unwrap();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
    for _ in 0..3 {
        licensing
            .tick(store, &At(now + Duration::days(365 * 70)))
            .await
            .unwrap();
    }
    assert!(
        stored().await.last_seen_ms < now_ms + 120_000,
        "a clock that jumped ahead is not recorded, however often it ticks"
    );

    // Activated while the clock ran ten days ahead: the signed activation time floors the
    // clock, so a renewal is refused as "clock behind" once the clock is right again…
    let deployment = lic::deployment_id(&app, &owner).await;
    let mut first = claims("lic_test", &deployment);
    first.expires_at = now + Duration::days(20);
    let context = bulwark_audit::event::Context::system(Some("test"));
    let ahead = At(now + Duration::days(10));
    licensing
        .activate(store, &ahead, issue(first).as_bytes(), context.clone())
        .await
        .unwrap();
    // Out-of-range stored values neither panic nor silence the warning (expiry is near).
    for edited in [i64::MIN, i64::MAX] {
        let before = reasons(&license_events(&app).await, "license.expiring").len();
        let mut clock = stored().await;
        clock.warned_at_ms = Some(edited);
        write(clock).await;
        licensing.tick(store, &*app.state.clock).await.unwrap();
        let after = reasons(&license_events(&app).await, "license.expiring").len();
        assert!(after > before, "warned again after warned_at_ms = {edited}");
        assert_ne!(stored().await.warned_at_ms, Some(edited));
    }
    // The database role cannot lift the floor: an unsigned reset marker counts for nothing.
    let mut clock = stored().await;
    clock.last_seen_ms = 0;
    clock.reset_after_seq = u64::try_from(i64::MAX).unwrap();
    clock.reset_signature = None;
    write(clock).await;
    licensing.tick(store, &*app.state.clock).await.unwrap();
    assert!(stored().await.last_seen_ms > now_ms, "restored");
    assert_eq!(
        reasons(&license_events(&app).await, "license.clock_tampered"),
        ["success"]
    );
    let mut renewal = claims("lic_test", &deployment);
    renewal.serial = 2;
    refused(
        &app,
        &owner,
        &issue(renewal.clone()),
        "license_clock_behind",
    )
    .await;
    // …until a host operator resets the clock (audited, signed), which lifts that floor.
    let (from, to) = licensing
        .reset_clock(store, &*app.state.clock, context)
        .await
        .unwrap();
    assert!(from > to, "{from} -> {to}");
    licensing.tick(store, &*app.state.clock).await.unwrap();
    assert_eq!(status(&app, &owner).await["state"], "valid");
    json_of(upload(&app, &owner, &issue(renewal)).await, 201).await;
    let events = license_events(&app).await;
    assert_eq!(reasons(&events, "license.clock_reset"), ["success"]);
}

/// Seats hold when invitations are accepted at once; a used token answers `invalid_code`
/// without a word about the license.
async fn seats_hold_under_concurrent_acceptance(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let deployment = lic::deployment_id(&app, &owner).await;
    let mut c = claims("lic_acme", &deployment);
    c.limits.seats = Some(3);
    json_of(upload(&app, &owner, &issue(c)).await, 201).await;
    let path = format!("/v1/orgs/{org}/invitations");
    for who in ["a", "b", "c"] {
        let invite = json!({"email": format!("{who}@acme.test"), "role": "member"});
        json_of(app.send_as(&owner, Method::POST, &path, &invite).await, 201).await;
    }
    let outbox = app.data_dir.path().join("data").join("outbox");
    let mut tokens = Vec::new();
    for _ in 0..50 {
        tokens = std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter_map(|m| {
                        let at = m.find(bulwark_core::invite::TOKEN_PREFIX)?;
                        Some(
                            m[at..]
                                .chars()
                                .take_while(|c| c.is_ascii_alphanumeric() || "_-".contains(*c))
                                .collect::<String>(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if tokens.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(tokens.len(), 3);
    let accept = |token: String| {
        let client = app.client.clone();
        let url = app.url("/v1/invitations/accept");
        async move {
            client
                .post(url)
                .json(&json!({"token": token, "password": "a brand new long passphrase"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let (x, y, z) = tokio::join!(
        accept(tokens[0].clone()),
        accept(tokens[1].clone()),
        accept(tokens[2].clone())
    );
    let mut got = vec![x, y, z];
    got.sort_unstable();
    assert_eq!(got, [200, 200, 403], "owner + two fill the three seats");
    let denied = reasons(&license_events(&app).await, "license.entitlement_denied");
    assert_eq!(denied, ["license_limit_seats"]);
    // Every token again: used ones and the refused one say nothing of the license.
    for token in &tokens {
        let status = accept(token.clone()).await;
        assert!(status == 401 || status == 403, "{status}");
    }
    let denied_after = reasons(&license_events(&app).await, "license.entitlement_denied");
    assert!(
        denied_after.len() <= 2,
        "only the still-open invitation reaches the seat check: {denied_after:?}"
    );
}

on_both_engines!(
    a_clock_that_ran_ahead_is_contained_and_reset,
    seats_hold_under_concurrent_acceptance,
);

async fn orgs_are_created_within_the_license(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let path = "/v1/orgs";
    let globex = json!({"name": "Globex", "owner_email": "owner@acme.test"});
    // Community: one org, the first.
    let body = json_of(app.send_as(&owner, Method::POST, path, &globex).await, 403).await;
    assert_eq!(body["code"], "license_limit_orgs");

    let deployment = lic::deployment_id(&app, &owner).await;
    let mut c = claims("lic_acme", &deployment);
    c.limits.orgs = Some(2);
    json_of(upload(&app, &owner, &issue(c)).await, 201).await;
    // Bad input and the wrong people change nothing.
    let body = json_of(
        app.send_as(
            &owner,
            Method::POST,
            path,
            &json!({"name": "Globex", "owner_email": "nobody@acme.test"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["pointer"], "/owner_email");
    let taken = json!({"name": "Acme", "owner_email": "owner@acme.test"});
    json_of(app.send_as(&owner, Method::POST, path, &taken).await, 409).await;
    app.add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let admin = app.login_mfa("admin@acme.test", PASSWORD).await;
    json_of(app.send_as(&admin, Method::POST, path, &globex).await, 403).await;

    let created = json_of(app.send_as(&owner, Method::POST, path, &globex).await, 201).await;
    assert_eq!(created["slug"], "globex");
    let new_org = created["id"].as_str().unwrap();
    // The owner works in it at once.
    let members = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{new_org}/members"))
            .await,
        200,
    )
    .await;
    assert!(members.to_string().contains("owner@acme.test"), "{members}");
    // An org created with a clock a day behind does not become the operator org.
    app.create_user("b@globex.test", PASSWORD).await;
    let yesterday = OffsetDateTime::now_utc() - Duration::days(1);
    let licensing = &app.state.licensing;
    let mut c = claims("lic_acme", &lic::deployment_id(&app, &owner).await);
    c.serial = 2;
    c.limits.orgs = Some(3);
    json_of(upload(&app, &owner, &issue(c)).await, 201).await;
    bulwark_core::setup::create_org(
        &*app.state.store,
        &At(yesterday),
        licensing,
        bulwark_core::setup::OrgCreator::LocalOperator,
        bulwark_core::setup::NewOrg {
            name: "Backdated".parse().unwrap(),
            slug: None,
            owner_email: "b@globex.test".parse().unwrap(),
            context: bulwark_audit::event::Context::system(Some("test")),
        },
    )
    .await
    .unwrap();
    let b = app.login_mfa("b@globex.test", PASSWORD).await;
    json_of(app.get_as(&b, "/v1/license").await, 404).await;
    status(&app, &owner).await;

    // The limit (three now) is reached.
    let third = json!({"name": "Initech", "owner_email": "admin@acme.test"});
    let body = json_of(app.send_as(&owner, Method::POST, path, &third).await, 403).await;
    assert_eq!(body["code"], "license_limit_orgs");
    let events = license_events(&app).await;
    assert_eq!(
        reasons(&events, "license.entitlement_denied"),
        ["license_limit_orgs", "license_limit_orgs"]
    );
    let mut sys = app.state.store.system().await.unwrap();
    let created: Vec<Value> = sys
        .audit_events(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(r.body.as_deref().unwrap()).unwrap())
        .filter(|e| e["action"] == "org.created")
        .collect();
    assert_eq!(created.len(), 2, "Globex, then Backdated");
    assert_eq!(created[0]["resource"]["id"], new_org);
    assert_eq!(created[0]["actor"]["type"], "user");
    assert!(
        created[0]["data"]["owner_id"]
            .as_str()
            .unwrap()
            .starts_with("usr_")
    );
}

on_both_engines!(orgs_are_created_within_the_license);

/// Read-only mode deletes nothing: the audit retention's background pruning pauses, and goes
/// on once a renewal is in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_pauses_while_read_only() {
    use bulwark_audit::event::Context;
    let (app, org, owner) = ready(Backend::Sqlite).await;
    let deployment = lic::deployment_id(&app, &owner).await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut c = claims("lic_acme", &deployment);
    c.expires_at = now + Duration::days(10);
    c.grace_days = 0;
    json_of(upload(&app, &owner, &issue(c.clone())).await, 201).await;
    let retention = format!("/v1/orgs/{org}/audit/retention");
    json_of(
        app.send_as(&owner, Method::PUT, &retention, &json!({"days": 30}))
            .await,
        200,
    )
    .await;
    // Read-only (the deployment saw a time past the end), then events from last quarter.
    seen_at(&app, now + Duration::days(11)).await;
    app.append_old_events(org, 3, 100).await;
    let pruned = || async {
        let mut read = app.state.store.org_read(org).await.unwrap();
        let rows = read.audit_events(0, 1000).await.unwrap();
        rows.iter().filter(|r| r.body.is_none()).count()
    };
    let checkpointer = &app.state.checkpointer;
    assert_eq!(checkpointer.prune_now(org).await.unwrap(), 0);
    assert_eq!(pruned().await, 0, "nothing pruned while read-only");

    // The clock reset makes the deployment writable again (the license runs 10 more days), and
    // a renewal follows: pruning goes on.
    let context = Context::system(Some("test"));
    app.state
        .licensing
        .reset_clock(&*app.state.store, &*app.state.clock, context)
        .await
        .unwrap();
    let mut renewal = c;
    renewal.serial = 2;
    renewal.expires_at = now + Duration::days(365);
    json_of(upload(&app, &owner, &issue(renewal)).await, 201).await;
    // (The background worker may get there first.)
    checkpointer.prune_now(org).await.unwrap();
    let got = pruned().await;
    assert_eq!(got, 3, "pruned once writable again");
}
