//! API keys on both engines: shown once and stored as verifiers only, a separate channel
//! (Bearer only, never a session, never another org), scopes enforced by policy, rotation with
//! an overlap and a listable chain, revocation at the next request, and every malformed or
//! forged key refused alike.

use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app};
use bulwark_types::{OrgId, Role};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let path = res.url().path().to_owned();
    assert_eq!(res.status(), status, "{path}");
    res.json().await.unwrap()
}

async fn ready(backend: Backend) -> (TestApp, OrgId, SignedIn) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    (app, org, owner)
}

async fn issue(app: &TestApp, who: &SignedIn, org: OrgId, body: &Value) -> reqwest::Response {
    app.send_as(who, Method::POST, &format!("/v1/orgs/{org}/keys"), body)
        .await
}

/// Issues a key that must be issued (201); its answer.
async fn issued(app: &TestApp, who: &SignedIn, org: OrgId, body: &Value) -> Value {
    json_of(issue(app, who, org, body).await, 201).await
}

async fn bearer(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header(reqwest::header::AUTHORIZATION, format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
}

async fn org_events(app: &TestApp, org: OrgId) -> Vec<Value> {
    let mut read = app.state.store.org_read(org).await.unwrap();
    read.audit_events(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|row| row.body)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .collect()
}

/// Issued once with `no-store`; nothing afterwards (list, chain, audit log) contains the key or
/// its secret; bad input is refused with nothing issued; only owners and admins manage keys.
async fn keys_are_shown_once(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let res = issue(
        &app,
        &owner,
        org,
        &json!({"name": "ci", "scopes": ["audit:read", "audit:read"], "expires_in_days": 30}),
    )
    .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let issued = json_of(res, 201).await;
    let key = issued["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("bwk_") && key.len() == 86, "{key}");
    assert_eq!(issued["scopes"], json!(["audit:read"]));
    assert_eq!(issued["state"], "live");
    let secret = &key[37..80];
    let id = issued["id"].as_str().unwrap();
    let listed = app
        .get_as(&owner, &format!("/v1/orgs/{org}/keys"))
        .await
        .text()
        .await
        .unwrap();
    let chain = app
        .get_as(&owner, &format!("/v1/orgs/{org}/keys/{id}/chain"))
        .await
        .text()
        .await
        .unwrap();
    let events = serde_json::to_string(&org_events(&app, org).await).unwrap();
    for text in [&listed, &chain, &events] {
        assert!(text.contains(id), "{text:.300}");
        assert!(
            !text.contains(&key) && !text.contains(secret),
            "the key leaked: {text:.300}"
        );
    }
    assert!(events.contains("apikey.created"));

    for bad in [
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["audit:delete"]}),
        json!({"name": "", "scopes": ["audit:read"]}),
        json!({"name": "x", "scopes": ["audit:read"], "expires_in_days": 0}),
        json!({"name": "x", "scopes": ["audit:read"], "expires_in_days": 5000}),
        json!({"name": "x", "scopes": ["audit:read"], "owner": "me"}),
    ] {
        let res = issue(&app, &owner, org, &bad).await;
        assert_eq!(
            json_of(res, 422).await["code"],
            "validation_failed",
            "{bad}"
        );
    }
    let keys = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/keys")).await,
        200,
    )
    .await;
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        1,
        "nothing else was issued"
    );

    app.add_member(org, "auditor@acme.test", PASSWORD, Role::Auditor)
        .await;
    let auditor = app.login("auditor@acme.test", PASSWORD).await;
    let res = issue(
        &app,
        &auditor,
        org,
        &json!({"name": "x", "scopes": ["audit:read"]}),
    )
    .await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");
    let res = app.get_as(&auditor, &format!("/v1/orgs/{org}/keys")).await;
    assert_eq!(res.status(), 403);
    app.stop().await;
}

/// The key channel: Bearer only, its own org only, its scopes only; never a person's route.
async fn a_key_reads_its_own_log_and_nothing_else(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let reader = issued(
        &app,
        &owner,
        org,
        &json!({"name": "siem", "scopes": ["audit:read"]}),
    )
    .await;
    let reader_key = reader["key"].as_str().unwrap().to_owned();
    let members = issued(
        &app,
        &owner,
        org,
        &json!({"name": "hr", "scopes": ["members:read"]}),
    )
    .await;
    let members_key = members["key"].as_str().unwrap().to_owned();
    let events = format!("/v1/orgs/{org}/audit/events");

    let page = json_of(bearer(&app, &reader_key, &events).await, 200).await;
    assert!(!page["events"].as_array().unwrap().is_empty());
    let res = bearer(&app, &reader_key, &format!("/v1/orgs/{org}/audit/export")).await;
    assert_eq!(res.status(), 200);
    let after_export = org_events(&app, org).await;
    let exported = after_export
        .iter()
        .rev()
        .find(|e| e["action"] == "audit.exported")
        .unwrap();
    assert_eq!(exported["actor"]["type"], "api_key");
    assert_eq!(exported["actor"]["id"], reader["id"]);
    assert_eq!(
        exported["decision"]["policies"],
        json!(["builtin.key.audit-read"])
    );

    // Without the scope: refused, and the refusal is on record.
    let res = bearer(&app, &members_key, &events).await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");
    let denied = org_events(&app, org)
        .await
        .into_iter()
        .rev()
        .find(|e| e["action"] == "authz.denied")
        .unwrap();
    assert_eq!(denied["actor"]["id"], members["id"]);
    assert_eq!(denied["actor"]["type"], "api_key");

    // Another org's log: as if nothing were there.
    let outsider = app.create_user("mallory@other.test", PASSWORD).await;
    let other = app.create_org("other", outsider).await;
    let res = bearer(&app, &reader_key, &format!("/v1/orgs/{other}/audit/events")).await;
    assert_eq!(json_of(res, 404).await["code"], "not_found");

    // The member list takes a key with `members:read`, and no other.
    let list = json_of(
        bearer(&app, &members_key, &format!("/v1/orgs/{org}/members")).await,
        200,
    )
    .await;
    assert_eq!(list["members"][0]["email"], "owner@acme.test");
    let res = bearer(&app, &reader_key, &format!("/v1/orgs/{org}/members")).await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");
    let res = bearer(&app, &members_key, &format!("/v1/orgs/{other}/members")).await;
    assert_eq!(json_of(res, 404).await["code"], "not_found");

    // A person's routes do not take keys: no session, no key management, no changes.
    for path in [
        "/v1/auth/session".to_owned(),
        "/v1/auth/sessions".to_owned(),
        format!("/v1/orgs/{org}/keys"),
        format!("/v1/orgs/{org}/policy"),
    ] {
        let res = bearer(&app, &reader_key, &path).await;
        assert_eq!(json_of(res, 401).await["code"], "unauthenticated", "{path}");
    }
    let res = app
        .client
        .post(app.url(&format!("/v1/orgs/{org}/keys")))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {reader_key}"),
        )
        .json(&json!({"name": "self-made", "scopes": ["audit:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A key never sets a cookie.
    let res = bearer(&app, &reader_key, &events).await;
    assert!(res.headers().get(reqwest::header::SET_COOKIE).is_none());
    // Both credentials at once: refused.
    let res = app
        .client
        .get(app.url(&events))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {reader_key}"),
        )
        .header(reqwest::header::COOKIE, &owner.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res, 400).await["code"], "ambiguous_credentials");

    // Malformed, wrong checksum, forged with a recomputed checksum, unknown: all alike.
    let mut typo = reader_key.clone().into_bytes();
    typo[50] = if typo[50] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(typo).unwrap();
    let unknown = bulwark_crypto::ApiKey::generate().unwrap();
    for bad in [
        "bwk_nope".to_owned(),
        format!("{reader_key}x"),
        typo,
        unknown.expose().to_owned(),
        format!("Basic {reader_key}"),
    ] {
        let res = app
            .client
            .get(app.url(&events))
            .header(
                reqwest::header::AUTHORIZATION,
                if bad.starts_with("Basic") {
                    bad.clone()
                } else {
                    format!("Bearer {bad}")
                },
            )
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(res, 401).await["code"], "invalid_api_key", "{bad}");
    }
    app.stop().await;
}

/// Rotation keeps the old key for the overlap and links the chain; revocation and a zero
/// overlap take effect at the next request; dead keys cannot be rotated.
async fn keys_rotate_and_revoke(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let events = format!("/v1/orgs/{org}/audit/events");
    let first = issued(
        &app,
        &owner,
        org,
        &json!({"name": "ci", "scopes": ["audit:read"]}),
    )
    .await;
    let first_key = first["key"].as_str().unwrap().to_owned();
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&app, &first_key, &events).await.status(), 200);
    let listed = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/keys")).await,
        200,
    )
    .await;
    assert!(
        listed["keys"][0]["last_used_at"].is_string(),
        "use is noted"
    );

    let rotate = |id: String, overlap: u32| {
        let path = format!("/v1/orgs/{org}/keys/{id}/rotate");
        let owner = &owner;
        let app = &app;
        async move {
            app.send_as(
                owner,
                Method::POST,
                &path,
                &json!({"overlap_secs": overlap}),
            )
            .await
        }
    };
    let second = json_of(rotate(first_id.clone(), 3600).await, 201).await;
    let second_key = second["key"].as_str().unwrap().to_owned();
    let second_id = second["id"].as_str().unwrap().to_owned();
    assert_eq!(second["rotated_from"], first_id.as_str());
    assert_eq!(second["scopes"], json!(["audit:read"]));
    // Both work during the overlap.
    assert_eq!(bearer(&app, &first_key, &events).await.status(), 200);
    assert_eq!(bearer(&app, &second_key, &events).await.status(), 200);
    // Rotating again without overlap ends the second at once.
    let third = json_of(rotate(second_id.clone(), 0).await, 201).await;
    let third_key = third["key"].as_str().unwrap().to_owned();
    let third_id = third["id"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&app, &second_key, &events).await.status(), 401);
    assert_eq!(bearer(&app, &third_key, &events).await.status(), 200);
    let res = rotate(second_id.clone(), 0).await;
    assert_eq!(json_of(res, 409).await["code"], "invalid_state");
    let res = rotate(first_id.clone(), 8 * 24 * 3600).await;
    assert_eq!(json_of(res, 422).await["code"], "validation_failed");

    // The chain, from any of its keys.
    let chain = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/keys/{second_id}/chain"))
            .await,
        200,
    )
    .await;
    let ids: Vec<&str> = chain["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [first_id.as_str(), second_id.as_str(), third_id.as_str()]
    );
    assert_eq!(chain["keys"][1]["state"], "expired");

    // Revocation: refused at the next request; revoking twice is not found.
    let path = format!("/v1/orgs/{org}/keys/{third_id}");
    let res = app.send_as(&owner, Method::DELETE, &path, &json!({})).await;
    assert_eq!(res.status(), 204);
    assert_eq!(bearer(&app, &third_key, &events).await.status(), 401);
    let res = app.send_as(&owner, Method::DELETE, &path, &json!({})).await;
    assert_eq!(res.status(), 404);
    let actions: Vec<String> = org_events(&app, org)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .filter(|a| a.starts_with("apikey."))
        .collect();
    assert_eq!(
        actions,
        [
            "apikey.created",
            "apikey.rotated",
            "apikey.rotated",
            "apikey.revoked"
        ]
    );
    app.stop().await;
}

/// Key spaces: the host application issues keys to its customers and checks them with
/// `verify`; customer keys never authenticate to Bulwark; `verify` is for machines only and
/// says nothing about why a key is not valid; another org's customer keys are not valid here.
async fn key_spaces_let_the_app_check_its_customers_keys(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let machine = issued(
        &app,
        &owner,
        org,
        &json!({"name": "app", "scopes": ["spaces:write", "spaces:verify"]}),
    )
    .await;
    let machine_key = machine["key"].as_str().unwrap().to_owned();
    let as_machine = |method: Method, path: String, body: Value| {
        let app = &app;
        let key = machine_key.clone();
        async move {
            app.client
                .request(method, app.url(&path))
                .header(reqwest::header::AUTHORIZATION, format!("Bearer {key}"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let space = format!("/v1/orgs/{org}/spaces/customers/keys");
    let verify = format!("/v1/orgs/{org}/keys/verify");
    let customer = json_of(
        as_machine(
            Method::POST,
            space.clone(),
            json!({"owner": "cust_42", "name": "prod", "scopes": ["orders:read", "orders:read"]}),
        )
        .await,
        201,
    )
    .await;
    let customer_key = customer["key"].as_str().unwrap().to_owned();
    assert_eq!(customer["space"], "customers");
    assert_eq!(customer["owner"], "cust_42");

    let got = json_of(
        as_machine(Method::POST, verify.clone(), json!({"key": customer_key})).await,
        200,
    )
    .await;
    assert_eq!(got["valid"], true);
    assert_eq!(got["owner"], "cust_42");
    assert_eq!(got["space"], "customers");
    assert_eq!(got["scopes"], json!(["orders:read"]));
    assert_eq!(got["key_id"], customer["id"]);

    // A customer's key is not a key to Bulwark, and Bulwark's own keys are not customers'.
    let res = bearer(&app, &customer_key, &format!("/v1/orgs/{org}/audit/events")).await;
    assert_eq!(json_of(res, 401).await["code"], "invalid_api_key");
    let got = json_of(
        as_machine(Method::POST, verify.clone(), json!({"key": machine_key})).await,
        200,
    )
    .await;
    assert_eq!(got, json!({"valid": false, "rate_limit_remaining": null}));
    let mut flipped = customer_key.clone().into_bytes();
    flipped[60] = if flipped[60] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for junk in ["", "bwk_nope", &flipped] {
        let got = json_of(
            as_machine(Method::POST, verify.clone(), json!({"key": junk})).await,
            200,
        )
        .await;
        assert_eq!(got["valid"], false, "{junk}");
    }
    // Machines only.
    let res = app
        .send_as(&owner, Method::POST, &verify, &json!({"key": customer_key}))
        .await;
    assert_eq!(json_of(res, 401).await["code"], "api_key_required");
    // A key without the scope.
    let reader = issued(
        &app,
        &owner,
        org,
        &json!({"name": "r", "scopes": ["audit:read"]}),
    )
    .await;
    let res = app
        .client
        .post(app.url(&verify))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", reader["key"].as_str().unwrap()),
        )
        .json(&json!({"key": customer_key}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res, 403).await["code"], "forbidden");

    // Another org's app cannot check this org's customers' keys.
    let outsider = app.create_user("mallory@other.test", PASSWORD).await;
    let other = app.create_org("other", outsider).await;
    let mallory = app.login_mfa("mallory@other.test", PASSWORD).await;
    let theirs = issued(
        &app,
        &mallory,
        other,
        &json!({"name": "app", "scopes": ["spaces:verify", "spaces:write"]}),
    )
    .await;
    let res = app
        .client
        .post(app.url(&format!("/v1/orgs/{other}/keys/verify")))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", theirs["key"].as_str().unwrap()),
        )
        .json(&json!({"key": customer_key}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res, 200).await["valid"], false);
    // Nor list or revoke them through this org's URLs.
    let res = app
        .client
        .get(app.url(&space))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", theirs["key"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Listing and revoking; the plaintext appears in no listing or event.
    let listed = as_machine(Method::GET, space.clone(), Value::Null)
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains("cust_42") && !listed.contains(&customer_key));
    let events = serde_json::to_string(&org_events(&app, org).await).unwrap();
    assert!(!events.contains(&customer_key) && !events.contains(&machine_key));
    let res = as_machine(
        Method::DELETE,
        format!("{space}/{}", customer["id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    assert_eq!(res.status(), 204);
    let got = json_of(
        as_machine(Method::POST, verify.clone(), json!({"key": customer_key})).await,
        200,
    )
    .await;
    assert_eq!(got["valid"], false);
    let res = as_machine(
        Method::POST,
        space.replace("customers", "-bad"),
        json!({"owner": "x", "name": "x"}),
    )
    .await;
    assert_eq!(json_of(res, 422).await["code"], "validation_failed");
    app.stop().await;
}

/// Per-key and per-org token buckets: the burst passes with `RateLimit-*` headers, then `429`
/// with `Retry-After`; the org's bucket holds all its keys together; tokens come back at the
/// rate. On PostgreSQL a second store on the same database (another replica) sees the same
/// buckets.
async fn keys_are_rate_limited_per_key_and_per_org(backend: Backend) {
    let app = bulwark_testkit::spawn_app_with(backend, |c| {
        c.rate_limits.per_key_per_sec = 2;
        c.rate_limits.per_key_burst = 3;
        c.rate_limits.per_org_per_sec = 2;
        c.rate_limits.per_org_burst = 5;
    })
    .await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let mut keys = Vec::new();
    for name in ["a", "b"] {
        let k = issued(
            &app,
            &owner,
            org,
            &json!({"name": name, "scopes": ["audit:read"]}),
        )
        .await;
        keys.push(k["key"].as_str().unwrap().to_owned());
    }
    let path = format!("/v1/orgs/{org}/audit/checkpoint");
    let header = |res: &reqwest::Response, name: &str| -> u64 {
        res.headers()[name].to_str().unwrap().parse().unwrap()
    };
    for left in [2, 1, 0] {
        let res = bearer(&app, &keys[0], &path).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "ratelimit-limit"), 3);
        assert_eq!(header(&res, "ratelimit-remaining"), left);
    }
    let res = bearer(&app, &keys[0], &path).await;
    assert_eq!(res.status(), 429);
    assert!(header(&res, "retry-after") >= 1);
    assert_eq!(header(&res, "ratelimit-remaining"), 0);
    assert_eq!(json_of(res, 429).await["code"], "rate_limited");
    // Key b has its own bucket, but the org's (5) has 2 left after key a's 3.
    for _ in 0..2 {
        assert_eq!(bearer(&app, &keys[1], &path).await.status(), 200);
    }
    assert_eq!(bearer(&app, &keys[1], &path).await.status(), 429);
    // Tokens come back at 2 a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(bearer(&app, &keys[0], &path).await.status(), 200);

    if let Some(db) = &app.pg {
        // Another replica: a second store on the same database shares the buckets.
        let other = bulwark_store_postgres::PgStore::connect(&db.app_url, 2)
            .await
            .unwrap();
        let bucket = bulwark_core::rate::Bucket {
            per_sec: 0.001,
            burst: 2.0,
        };
        let now = app.state.clock.now();
        use bulwark_core::ports::Store as _;
        assert!(
            app.state
                .store
                .rate_take("test:shared", bucket, now)
                .await
                .unwrap()
                .allowed
        );
        assert!(
            other
                .rate_take("test:shared", bucket, now)
                .await
                .unwrap()
                .allowed
        );
        assert!(
            !app.state
                .store
                .rate_take("test:shared", bucket, now)
                .await
                .unwrap()
                .allowed
        );
        assert!(
            !other
                .rate_take("test:shared", bucket, now)
                .await
                .unwrap()
                .allowed
        );
    }
    app.stop().await;
}

/// A revocation made where this replica cannot hear of it (here: straight in the database, as
/// another replica would) applies within `rate_limits.key_cache_secs`.
async fn a_key_revoked_elsewhere_is_refused_within_the_cache_time(backend: Backend) {
    let app = bulwark_testkit::spawn_app_with(backend, |c| c.rate_limits.key_cache_secs = 1).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let k = issued(
        &app,
        &owner,
        org,
        &json!({"name": "a", "scopes": ["audit:read"]}),
    )
    .await;
    let key = k["key"].as_str().unwrap().to_owned();
    let id: bulwark_types::ApiKeyId = k["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/v1/orgs/{org}/audit/checkpoint");
    assert_eq!(bearer(&app, &key, &path).await.status(), 200);
    let mut tx = app.state.store.org(org).await.unwrap();
    assert!(tx.revoke_api_key(id, app.state.clock.now()).await.unwrap());
    tx.commit().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(bearer(&app, &key, &path).await.status(), 401);
    app.stop().await;
}

async fn new_team(app: &TestApp, who: &SignedIn, org: OrgId, name: &str) -> String {
    let path = format!("/v1/orgs/{org}/teams");
    let res = app
        .send_as(who, Method::POST, &path, &json!({ "name": name }))
        .await;
    json_of(res, 201).await["id"].as_str().unwrap().to_owned()
}

/// A key issued to a team: listed with it, kept by rotation, nameable by org policies, and
/// revoked (with the events on record) when the team is deleted; another org's team, a
/// malformed id or a customer's key with a team are refused with nothing issued.
async fn keys_issued_to_a_team(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    let ci = new_team(&app, &owner, org, "ci").await;
    let team_key = issued(
        &app,
        &owner,
        org,
        &json!({"name": "ci", "scopes": ["audit:read"], "team": ci}),
    )
    .await;
    assert_eq!(team_key["team"], ci.as_str());
    let org_key = issued(
        &app,
        &owner,
        org,
        &json!({"name": "siem", "scopes": ["audit:read"]}),
    )
    .await;
    assert!(org_key.get("team").is_none());
    let (team_secret, org_secret) = (
        team_key["key"].as_str().unwrap().to_owned(),
        org_key["key"].as_str().unwrap().to_owned(),
    );

    // Refused, nothing issued: another org's team, a malformed id, an unknown team.
    let other_owner = app.create_user("mallory@other.test", PASSWORD).await;
    let other = app.create_org("other", other_owner).await;
    let mallory = app.login_mfa("mallory@other.test", PASSWORD).await;
    let theirs = new_team(&app, &mallory, other, "theirs").await;
    for bad in [
        theirs.as_str(),
        "team_nope",
        "usr_0190c3e27b1a7c3d8e4f0123456789ab",
    ] {
        let body = json!({"name": "x", "scopes": ["audit:read"], "team": bad});
        let problem = json_of(issue(&app, &owner, org, &body).await, 422).await;
        assert_eq!(problem["code"], "validation_failed", "{bad}");
    }
    let listed = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/keys")).await,
        200,
    )
    .await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);
    let only_ci = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/keys?team={ci}"))
            .await,
        200,
    )
    .await;
    assert_eq!(only_ci["keys"].as_array().unwrap().len(), 1);
    assert_eq!(only_ci["keys"][0]["id"], team_key["id"]);
    let res = app
        .get_as(&owner, &format!("/v1/orgs/{org}/keys?team=nope"))
        .await;
    assert_eq!(json_of(res, 422).await["code"], "validation_failed");

    // An org policy names the team's keys: they lose the log, the org's key keeps it.
    let events = format!("/v1/orgs/{org}/audit/events");
    let rule = format!(
        r#"@id("org.ci-keys-no-audit") forbid (principal in Bulwark::Team::"{ci}", action == Bulwark::Action::"audit.read", resource);"#
    );
    let path = format!("/v1/orgs/{org}/authz/policies");
    let res = app
        .send_as(&owner, Method::PUT, &path, &json!({"policies": rule}))
        .await;
    assert_eq!(res.status(), 200);
    let res = bearer(&app, &team_secret, &events).await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");
    assert_eq!(bearer(&app, &org_secret, &events).await.status(), 200);
    // A policy written for the team's people reaches its keys only within their scopes: a
    // permit of everything to the team does not give an `audit:read` key the member list.
    let everything = format!(
        r#"@id("org.ci-does-all") permit (principal in Bulwark::Team::"{ci}", action, resource);"#
    );
    let res = app
        .send_as(&owner, Method::PUT, &path, &json!({"policies": everything}))
        .await;
    assert_eq!(res.status(), 200);
    let res = bearer(&app, &team_secret, &format!("/v1/orgs/{org}/members")).await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");
    let denied = org_events(&app, org)
        .await
        .into_iter()
        .rev()
        .find(|e| e["action"] == "authz.denied")
        .unwrap();
    assert_eq!(
        denied["decision"]["policies"],
        json!(["invariant.keys-stay-in-scope"])
    );
    assert_eq!(bearer(&app, &team_secret, &events).await.status(), 200);
    let res = app
        .send_as(&owner, Method::PUT, &path, &json!({"policies": ""}))
        .await;
    assert_eq!(res.status(), 200);

    // Rotation keeps the team; deleting the team revokes both keys of the chain at once.
    let rotated = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!(
                "/v1/orgs/{org}/keys/{}/rotate",
                team_key["id"].as_str().unwrap()
            ),
            &json!({"overlap_secs": 3600}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(rotated["team"], ci.as_str());
    let rotated_secret = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&app, &team_secret, &events).await.status(), 200);
    assert_eq!(bearer(&app, &rotated_secret, &events).await.status(), 200);
    let res = app
        .send_as(
            &owner,
            Method::DELETE,
            &format!("/v1/orgs/{org}/teams/{ci}"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    for gone in [&team_secret, &rotated_secret] {
        let res = bearer(&app, gone, &events).await;
        assert_eq!(json_of(res, 401).await["code"], "invalid_api_key");
    }
    assert_eq!(bearer(&app, &org_secret, &events).await.status(), 200);
    let revoked: Vec<Value> = org_events(&app, org)
        .await
        .into_iter()
        .filter(|e| e["action"] == "apikey.revoked")
        .collect();
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    let listed = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/keys?team={ci}"))
            .await,
        200,
    )
    .await;
    for key in listed["keys"].as_array().unwrap() {
        assert_eq!(key["state"], "revoked");
        assert_eq!(key["team"], ci.as_str(), "the history still names the team");
    }
}

/// A key issued to a team at the moment the team is deleted: either the issue is refused, or
/// the key is revoked with the team; never a live key of a deleted team (the team row is held
/// while the key is written, and deleted before its keys are revoked).
async fn no_key_outlives_its_team(backend: Backend) {
    let (app, org, owner) = ready(backend).await;
    for round in 0..20 {
        let team = new_team(&app, &owner, org, &format!("race-{round}")).await;
        let body = json!({"name": "racer", "scopes": ["audit:read"], "team": team});
        let (path, empty) = (format!("/v1/orgs/{org}/teams/{team}"), json!({}));
        let (issued, deleted) = tokio::join!(
            issue(&app, &owner, org, &body),
            app.send_as(&owner, Method::DELETE, &path, &empty),
        );
        assert_eq!(deleted.status(), 204);
        assert!(
            [201, 422].contains(&issued.status().as_u16()),
            "{}",
            issued.status()
        );
        let team: bulwark_types::TeamId = team.parse().unwrap();
        let mut read = app.state.store.org_read(org).await.unwrap();
        let live: Vec<_> = read
            .api_keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.team == Some(team) && k.revoked_at.is_none())
            .collect();
        assert!(
            live.is_empty(),
            "round {round}: a live key of a deleted team"
        );
    }
}

on_both_engines!(
    no_key_outlives_its_team,
    keys_issued_to_a_team,
    a_key_revoked_elsewhere_is_refused_within_the_cache_time,
    keys_are_rate_limited_per_key_and_per_org,
    key_spaces_let_the_app_check_its_customers_keys,
    keys_are_shown_once,
    a_key_reads_its_own_log_and_nothing_else,
    keys_rotate_and_revoke,
);
