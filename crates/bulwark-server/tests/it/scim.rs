//! SCIM 2.0 on both engines: provisioning users and groups with an org key of scope `scim`
//! (never a session, never another org), filters and pages, ETags, PATCH all-or-nothing,
//! deprovisioning that cuts the session's access, the person's keys and invitations in the
//! same transaction, and concurrent group changes that lose nothing.

use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app};
use bulwark_types::Role;
use reqwest::Method;
use serde_json::{Value, json};

use super::sso::{has_event, members, org_events, own_domain, post, with_owner};

const PASSWORD: &str = "a long enough password";

/// A SCIM client of one org: its key and base URL.
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) key: String,
}

impl Client {
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        self.send_with(method, path, body, &[]).await
    }

    pub(crate) async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        req.send().await.unwrap()
    }

    /// `method path body`, which must answer `status`; its JSON (or null).
    pub(crate) async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let res = self.send(method.clone(), path, body).await;
        let got = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// An org with an owner, `acme.example` verified, and a SCIM key.
pub(crate) async fn provisioned(backend: Backend) -> (TestApp, SignedIn, String, Client) {
    let app = spawn_app(backend).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "acme.example").await;
    let client = scim_client(&app, &owner, &org).await;
    (app, owner, org, client)
}

pub(crate) async fn scim_client(app: &TestApp, owner: &SignedIn, org: &str) -> Client {
    let res = post(
        app,
        owner,
        &format!("/v1/orgs/{org}/keys"),
        &json!({"name": "idp", "scopes": ["scim"]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    Client {
        http: bulwark_testkit::app::client(),
        base: app.url(&format!("/scim/v2/orgs/{org}")),
        key: body["key"].as_str().unwrap().to_owned(),
    }
}

pub(crate) fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{name}@acme.example"),
        "externalId": format!("ext-{name}"),
        "name": {"givenName": name, "familyName": "Example"},
        "displayName": format!("{name} Example"),
        "emails": [{"value": format!("{name}@acme.example"), "type": "work", "primary": true}],
        "active": true,
    })
}

/// Users are created, read, found by filter, paged, replaced and patched; ETags guard
/// changes; errors are SCIM errors; every change is audited with names, not values.
async fn users_are_provisioned(backend: Backend) {
    let (app, owner, org, scim) = provisioned(backend).await;
    let res = scim
        .send(Method::POST, "/Users", Some(&user("alice")))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["content-type"], "application/scim+json");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let alice: Value = res.json().await.unwrap();
    let id = alice["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("usr_"));
    assert_eq!(location, format!("{}/Users/{id}", scim.base));
    assert_eq!(alice["meta"]["version"], etag);
    assert_eq!(alice["name"]["givenName"], "alice");
    assert_eq!(
        role(&app, &owner, &org, "alice@acme.example")
            .await
            .as_deref(),
        Some("member")
    );
    // The same userName again, in another case: refused.
    let mut again = user("bob");
    again["userName"] = json!("ALICE@acme.example");
    let err = scim.expect(Method::POST, "/Users", Some(&again), 409).await;
    assert_eq!(err["scimType"], "uniqueness");
    assert_eq!(err["status"], "409");
    for name in ["bob", "carol", "dave"] {
        scim.expect(Method::POST, "/Users", Some(&user(name)), 201)
            .await;
    }
    // Filters answered by the database and in memory, and pages.
    let found = scim
        .expect(
            Method::GET,
            "/Users?filter=userName%20eq%20%22Bob@ACME.example%22",
            None,
            200,
        )
        .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["userName"], "bob@acme.example");
    let found = scim
        .expect(
            Method::GET,
            "/Users?filter=emails%20co%20%22acme%22&startIndex=2&count=2",
            None,
            200,
        )
        .await;
    assert_eq!(
        (
            found["totalResults"].as_u64(),
            found["itemsPerPage"].as_u64(),
            found["startIndex"].as_u64()
        ),
        (Some(4), Some(2), Some(2))
    );
    let past = scim
        .expect(
            Method::GET,
            "/Users?filter=emails%20co%20%22acme%22&startIndex=50",
            None,
            200,
        )
        .await;
    assert_eq!(
        (
            past["totalResults"].as_u64(),
            past["Resources"].as_array().map(Vec::len)
        ),
        (Some(4), Some(0)),
        "a page past the end still counts"
    );
    let found = scim
        .expect(Method::GET, "/Users?filter=name.givenName%20sw%20%22c%22%20or%20externalId%20eq%20%22ext-dave%22&sortBy=userName&sortOrder=descending", None, 200)
        .await;
    let names: Vec<&str> = found["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dave@acme.example", "carol@acme.example"]);
    let err = scim
        .expect(
            Method::GET,
            "/Users?filter=nosuch%20eq%20%22x%22",
            None,
            400,
        )
        .await;
    assert_eq!(err["scimType"], "invalidFilter");
    let err = scim
        .expect(Method::GET, "/Users?filter=userName%20eq", None, 400)
        .await;
    assert_eq!(err["scimType"], "invalidFilter");
    let only = scim
        .expect(
            Method::GET,
            &format!("/Users/{id}?attributes=userName"),
            None,
            200,
        )
        .await;
    assert!(
        only.get("name").is_none() && only["id"] == id.as_str(),
        "{only}"
    );
    // A stale If-Match loses; a fresh one wins; If-None-Match answers 304.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "displayName", "value": "Alice E."}]});
    let res = scim
        .send_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&patch),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = scim
        .send_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&patch),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(res.status(), 412);
    let fresh = scim
        .expect(Method::GET, &format!("/Users/{id}"), None, 200)
        .await;
    assert_eq!(fresh["displayName"], "Alice E.");
    let version = fresh["meta"]["version"].as_str().unwrap().to_owned();
    let res = scim
        .send_with(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("if-none-match", &version)],
        )
        .await;
    assert_eq!(res.status(), 304);
    // All or nothing: the second operation fails, the first is not applied.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Changed"},
                       {"op": "replace", "path": "id", "value": "usr_other"}]});
    let err = scim
        .expect(Method::PATCH, &format!("/Users/{id}"), Some(&patch), 400)
        .await;
    assert_eq!(err["scimType"], "mutability");
    let unchanged = scim
        .expect(Method::GET, &format!("/Users/{id}"), None, 200)
        .await;
    assert_eq!(unchanged["displayName"], "Alice E.");
    // PUT replaces: what is left out is gone.
    let mut replaced = user("alice");
    replaced.as_object_mut().unwrap().remove("name");
    replaced["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
        json!({"department": "R&D", "employeeNumber": "42"});
    let body = scim
        .expect(Method::PUT, &format!("/Users/{id}"), Some(&replaced), 200)
        .await;
    assert!(body.get("name").is_none());
    assert_eq!(
        body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "R&D"
    );
    assert!(body["schemas"].as_array().unwrap().contains(&json!(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    )));
    // Errors are SCIM errors, for every kind of bad input.
    let err = scim.expect(Method::GET, "/Users/usr_nope", None, 404).await;
    assert_eq!(
        err["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    let res = scim
        .http
        .post(format!("{}/Users", scim.base))
        .bearer_auth(&scim.key)
        .header("content-type", "application/scim+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["scimType"], "invalidSyntax");
    let err = scim
        .expect(
            Method::POST,
            "/Users",
            Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})),
            400,
        )
        .await;
    assert_eq!(err["scimType"], "invalidValue");
    // What the provider manages is read-only in the API (and so in the console).
    let group = scim.expect(Method::POST, "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Managed", "members": [{"value": id}]})), 201).await;
    let team = group["id"].as_str().unwrap();
    for (method, path) in [
        (Method::DELETE, format!("/v1/orgs/{org}/teams/{team}")),
        (
            Method::DELETE,
            format!("/v1/orgs/{org}/teams/{team}/members/{id}"),
        ),
        (Method::DELETE, format!("/v1/orgs/{org}/members/{id}")),
    ] {
        let res = app.send_as(&owner, method, &path, &json!({})).await;
        assert_eq!(res.status(), 409, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "scim_managed", "{path}");
    }
    let events = org_events(&app, &owner, &org).await;
    assert!(has_event(&events, "scim.user_provisioned", None));
    assert!(has_event(&events, "scim.user_updated", None));
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains("R&D") && !text.contains("Alice E."),
        "values are not copied into events"
    );
}

async fn role(app: &TestApp, owner: &SignedIn, org: &str, email: &str) -> Option<String> {
    super::sso::role_of(&members(app, owner, org).await, email)
}

/// The channel: a SCIM key sees only its own org; a key without the scope, a session, and no
/// credentials at all are refused with SCIM errors.
async fn only_the_orgs_scim_key_gets_in(backend: Backend) {
    let (app, owner, org, scim) = provisioned(backend).await;
    let alice = scim
        .expect(Method::POST, "/Users", Some(&user("alice")), 201)
        .await;
    let id = alice["id"].as_str().unwrap();
    // Another org with its own SCIM key.
    let other_owner = app
        .add_member(
            org.parse().unwrap(),
            "boss@other.example",
            PASSWORD,
            Role::Member,
        )
        .await;
    let other_org = app.create_org("other", other_owner).await;
    let boss = app.login_mfa("boss@other.example", PASSWORD).await;
    let theirs = scim_client(&app, &boss, &other_org.to_string()).await;
    for path in [format!("/Users/{id}"), "/Users".to_owned()] {
        let res = theirs.send(Method::GET, &path, None).await;
        let body: Value = res.json().await.unwrap();
        assert!(
            body["totalResults"] == 0 || body["status"] == "404",
            "{path}: {body}"
        );
    }
    let crossed = Client {
        base: scim.base.replace(&org, &other_org.to_string()),
        ..Client {
            http: scim.http.clone(),
            base: String::new(),
            key: scim.key.clone(),
        }
    };
    let err = crossed.expect(Method::GET, "/Users", None, 404).await;
    assert_eq!(
        err["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    // A key without the scope.
    let res = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/keys"),
        &json!({"name": "audit", "scopes": ["audit:read"]}),
    )
    .await;
    let other_key: Value = res.json().await.unwrap();
    let narrow = Client {
        http: scim.http.clone(),
        base: scim.base.clone(),
        key: other_key["key"].as_str().unwrap().to_owned(),
    };
    narrow.expect(Method::GET, "/Users", None, 403).await;
    // A session instead of a key; nothing at all; a forged key.
    let res = app
        .get_as(&owner, &format!("/scim/v2/orgs/{org}/Users"))
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/scim+json");
    let res = scim
        .http
        .get(format!("{}/Users", scim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let forged = Client {
        http: scim.http.clone(),
        base: scim.base.clone(),
        // The last character changed (to `x`, or `y` where it was an `x` already).
        key: format!(
            "{}{}",
            &scim.key[..scim.key.len() - 1],
            if scim.key.ends_with('x') { 'y' } else { 'x' }
        ),
    };
    forged.expect(Method::GET, "/Users", None, 401).await;
    // Discovery needs the key too, and tells the truth.
    let config = scim
        .expect(Method::GET, "/ServiceProviderConfig", None, 200)
        .await;
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["bulk"]["supported"], false);
    assert_eq!(config["etag"]["supported"], true);
    let types = scim.expect(Method::GET, "/ResourceTypes", None, 200).await;
    assert_eq!(types["totalResults"], 2);
    scim.expect(
        Method::GET,
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        None,
        200,
    )
    .await;
    scim.expect(Method::GET, "/Schemas/urn:nope", None, 404)
        .await;
}

/// A person with a live session and a key of their own, calling the API in a loop while the
/// provider deactivates them: once the SCIM answer is back, nothing of theirs works; the key
/// stays revoked when they are reactivated, the membership and team come back.
async fn deprovisioning_cuts_every_path_at_once(backend: Backend) {
    let (app, owner, org, scim) = provisioned(backend).await;
    let org_id = org.parse().unwrap();
    // An existing member (an admin, so they can issue keys) is linked, not duplicated.
    app.add_member(org_id, "erin@acme.example", PASSWORD, Role::Admin)
        .await;
    let erin_session = app.login_mfa("erin@acme.example", PASSWORD).await;
    let res = post(
        &app,
        &erin_session,
        &format!("/v1/orgs/{org}/keys"),
        &json!({"name": "erin's", "scopes": ["members:read"]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let erin_key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = post(
        &app,
        &erin_session,
        &format!("/v1/orgs/{org}/invitations"),
        &json!({"email": "frank@acme.example", "role": "member"}),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let erin = scim
        .expect(Method::POST, "/Users", Some(&user("erin")), 201)
        .await;
    let id = erin["id"].as_str().unwrap().to_owned();
    let group = scim.expect(Method::POST, "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "members": [{"value": id}]})), 201).await;
    let members_path = format!("/v1/orgs/{org}/members");
    // Erin calls from her own address (a dead key is charged to its address's throttle, which
    // the provider's address does not share).
    let erin_http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    // Erin calls the API in a loop, with her session and her key.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caller = {
        let (client, url, cookie, csrf) = (
            erin_http.clone(),
            app.url(&members_path),
            erin_session.cookie.clone(),
            erin_session.csrf.clone(),
        );
        let key = erin_key.clone();
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let mut ok = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let by_session = client
                    .get(&url)
                    .header("cookie", &cookie)
                    .header("x-csrf-token", &csrf)
                    .send()
                    .await
                    .unwrap();
                let by_key = client.get(&url).bearer_auth(&key).send().await.unwrap();
                ok += usize::from(by_session.status() == 200) + usize::from(by_key.status() == 200);
            }
            ok
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let body = scim
        .expect(Method::PATCH, &format!("/Users/{id}"), Some(&patch), 200)
        .await;
    assert_eq!(body["active"], false);
    // From now on, nothing of hers succeeds.
    for _ in 0..20 {
        let by_session = erin_http
            .get(app.url(&members_path))
            .header("cookie", &erin_session.cookie)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(by_session.status().as_u16(), 401 | 404),
            "{}",
            by_session.status()
        );
        let by_key = erin_http
            .get(app.url(&members_path))
            .bearer_auth(&erin_key)
            .send()
            .await
            .unwrap();
        // Refused: 401, then 429 while the address that presented a dead key must wait.
        assert!(
            matches!(by_key.status().as_u16(), 401 | 429),
            "{}",
            by_key.status()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        caller.await.unwrap() > 0,
        "the loop ran while she was active"
    );
    assert_eq!(role(&app, &owner, &org, "erin@acme.example").await, None);
    let events = org_events(&app, &owner, &org).await;
    let deprovisioned = events
        .iter()
        .find(|e| e["action"] == "scim.user_deprovisioned")
        .unwrap();
    assert_eq!(
        deprovisioned["data"]["keys_revoked"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{deprovisioned}"
    );
    assert_eq!(deprovisioned["data"]["invitations_withdrawn"], 1);
    assert_eq!(deprovisioned["actor"]["type"], "api_key");
    // Reactivated: member again, in her team again, the key still revoked.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": true}}]});
    scim.expect(Method::PATCH, &format!("/Users/{id}"), Some(&patch), 200)
        .await;
    assert_eq!(
        role(&app, &owner, &org, "erin@acme.example")
            .await
            .as_deref(),
        Some("member")
    );
    let teams: Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/teams"))
        .await
        .json()
        .await
        .unwrap();
    let team = teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == group["id"])
        .unwrap();
    assert!(team["members"].to_string().contains(&id), "{team}");
    let by_key = erin_http
        .get(app.url(&members_path))
        .bearer_auth(&erin_key)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(by_key.status().as_u16(), 401 | 429),
        "{}",
        by_key.status()
    );
    // DELETE deprovisions too, and the resource is gone.
    let res = scim
        .send(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(res.status(), 204);
    scim.expect(Method::GET, &format!("/Users/{id}"), None, 404)
        .await;
    assert_eq!(role(&app, &owner, &org, "erin@acme.example").await, None);
    // The last owner cannot be deprovisioned.
    let me = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": super::sso::OWNER, "emails": [{"value": super::sso::OWNER}]});
    let owner_res = scim.send(Method::POST, "/Users", Some(&me)).await;
    assert_eq!(
        owner_res.status(),
        201,
        "a member already is linked whatever the domain"
    );
    let owner_id = owner_res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = scim
        .expect(Method::DELETE, &format!("/Users/{owner_id}"), None, 400)
        .await;
    assert_eq!(err["scimType"], "mutability");
}

/// 32 concurrent PATCHes, each adding a member, end with all 32; two PUTs with the same ETag:
/// one wins, one is refused with 412.
async fn concurrent_group_changes_lose_nothing(backend: Backend) {
    let (_app, _owner, _org, scim) = provisioned(backend).await;
    // Inactive: they take no seat (the community license has 25) and may still be in groups.
    let mut ids = Vec::new();
    for n in 0..32 {
        let mut body = user(&format!("u{n}"));
        body["active"] = json!(false);
        let body = scim.expect(Method::POST, "/Users", Some(&body), 201).await;
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let group = scim.expect(Method::POST, "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "All"})), 201).await;
    let gid = group["id"].as_str().unwrap().to_owned();
    let scim = std::sync::Arc::new(scim);
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (scim, gid, id) = (std::sync::Arc::clone(&scim), gid.clone(), id.clone());
            tokio::spawn(async move {
                let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
                scim.send(Method::PATCH, &format!("/Groups/{gid}"), Some(&patch))
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let body = scim
        .expect(Method::GET, &format!("/Groups/{gid}"), None, 200)
        .await;
    assert_eq!(body["members"].as_array().unwrap().len(), 32);
    let etag = body["meta"]["version"].as_str().unwrap().to_owned();
    let put = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name});
    let (path, a_body, b_body) = (format!("/Groups/{gid}"), put("A"), put("B"));
    let headers = [("if-match", etag.as_str())];
    let (a, b) = tokio::join!(
        scim.send_with(Method::PUT, &path, Some(&a_body), &headers),
        scim.send_with(Method::PUT, &path, Some(&b_body), &headers),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412]);
    // Removing one member by value filter, and one who is not a member (nothing happens).
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])},
                       {"op": "remove", "path": "members[value eq \"usr_nobody\"]"}]});
    let body = scim
        .expect(Method::PATCH, &format!("/Groups/{gid}"), Some(&patch), 200)
        .await;
    assert_eq!(
        body["members"].as_array().map(Vec::len),
        Some(0),
        "the PUT replaced the members: {body}"
    );
}

/// The independent conformance tester `scim2-tester` (every check, against a fresh org): no
/// check fails; the ones that do not apply are listed, with why, in
/// `peers/scim/expect_skip.json` (and in docs/scim.md).
async fn scim2_tester_finds_nothing_wrong(backend: Backend) {
    let app = bulwark_testkit::spawn_app_with(backend, |c| {
        // About 830 requests in a few seconds, all with one key.
        c.rate_limits.per_key_per_sec = 10_000;
        c.rate_limits.per_key_burst = 10_000;
        c.rate_limits.per_org_per_sec = 10_000;
        c.rate_limits.per_org_burst = 10_000;
    })
    .await;
    let (owner, org) = with_owner(&app).await;
    let scim = scim_client(&app, &owner, &org).await;
    let peers = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/scim");
    let python = std::env::var("BULWARK_TEST_PYTHON")
        .expect("BULWARK_TEST_PYTHON: the test virtualenv with scim2-tester (scripts/test)");
    let out = tokio::process::Command::new(python)
        .arg(format!("{peers}/scim_tester.py"))
        .args(["--url", &scim.base, "--min-checks", "130", "--seed", "7"])
        .args(["--expect-skip", &format!("{peers}/expect_skip.json")])
        .env("SCIM_TESTER_TOKEN", &scim.key)
        .kill_on_drop(true)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            !l.contains("\"status\": \"SUCCESS\"") && !l.contains("\"status\": \"EXPECTED_SKIP\"")
        })
        .collect();
    assert!(
        out.status.success(),
        "scim2-tester found problems:\n{}\n{}",
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains(&scim.key) && !String::from_utf8_lossy(&out.stderr).contains(&scim.key)
    );
}

fn op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// The requests Microsoft Entra ID sends (its SCIM tutorial's samples and the compliance
/// page's older forms), replayed, with the state each must leave.
async fn entra_id_provisions_as_it_does(backend: Backend) {
    let (app, owner, org, scim) = provisioned(backend).await;
    let empty = scim
        .expect(
            Method::GET,
            "/Users?filter=userName%20eq%20%22non-existent%20user%22",
            None,
            200,
        )
        .await;
    assert_eq!(
        (
            empty["totalResults"].as_u64(),
            empty["Resources"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let created = scim.expect(Method::POST, "/Users", Some(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@acme.example", "active": true,
        "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@acme.example"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []})), 201).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let account = "Test_User_fd0ea19b@acme.example";
    assert_eq!(
        role(&app, &owner, &org, account).await.as_deref(),
        Some("member")
    );
    let found = scim
        .expect(
            Method::GET,
            "/Users?filter=userName%20eq%20%22test_user_AB6490EE@acme.example%22",
            None,
            200,
        )
        .await;
    assert_eq!(
        found["Resources"][0]["id"],
        id.as_str(),
        "userName matches case-insensitively"
    );
    let user_path = format!("/Users/{id}");
    let after = scim.expect(Method::PATCH, &user_path, Some(&op(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@acme.example"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]))), 200).await;
    assert_eq!(after["emails"][0]["value"], "updatedEmail@acme.example");
    assert_eq!(after["emails"][0]["type"], "work");
    assert_eq!(after["name"]["givenName"], "givenName");
    assert_eq!(after["name"]["familyName"], "updatedFamilyName");
    let after = scim.expect(Method::PATCH, &user_path, Some(&op(json!([
        {"op": "Add", "path": "displayName", "value": "Jane Doe"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-1"}]))), 200).await;
    let enterprise = &after["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(
        (
            enterprise["department"].as_str(),
            enterprise["manager"]["value"].as_str()
        ),
        (Some("Sales"), Some("mgr-1"))
    );
    assert_eq!(
        scim.expect(
            Method::PATCH,
            &user_path,
            Some(&op(
                json!([{"op": "Replace", "path": "userName", "value": "5b50642d@acme.example"}])
            )),
            200
        )
        .await["userName"],
        "5b50642d@acme.example"
    );
    // Groups, with Microsoft's own schema URN and `$ref: null` members.
    let group = scim.expect(Method::POST, "/Groups", Some(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName", "meta": {"resourceType": "Group"}})), 201).await;
    let gid = group["id"].as_str().unwrap().to_owned();
    let group_path = format!("/Groups/{gid}");
    let listed = scim
        .expect(
            Method::GET,
            "/Groups?excludedAttributes=members&filter=displayName%20eq%20%22displayName%22",
            None,
            200,
        )
        .await;
    assert_eq!(listed["totalResults"], 1);
    assert!(listed["Resources"][0].get("members").is_none());
    let other = scim
        .expect(Method::POST, "/Users", Some(&user("kim")), 201)
        .await;
    let kim = other["id"].as_str().unwrap().to_owned();
    scim.expect(Method::PATCH, &group_path, Some(&op(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": id}, {"$ref": null, "value": kim}]}]))), 200).await;
    scim.expect(
        Method::PATCH,
        &group_path,
        Some(&op(
            json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": id}]}]),
        )),
        200,
    )
    .await;
    let renamed = scim.expect(Method::PATCH, &group_path, Some(&op(json!([{"op": "Replace", "path": "displayName", "value": "1879db59-updatedDisplayName"}]))), 200).await;
    assert_eq!(renamed["members"].as_array().map(Vec::len), Some(2));
    let teams: Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/teams"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        teams.to_string().contains("1879db59-updatedDisplayName"),
        "the team is renamed: {teams}"
    );
    let left = scim.expect(Method::PATCH, &group_path, Some(&op(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": kim}]}]))), 200).await;
    assert_eq!(
        left["members"].as_array().map(Vec::len),
        Some(1),
        "only the listed member leaves: {left}"
    );
    // Disable in the older form (a string boolean), then delete.
    let off = scim
        .expect(
            Method::PATCH,
            &user_path,
            Some(&op(
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
            )),
            200,
        )
        .await;
    assert_eq!(off["active"], false);
    assert_eq!(role(&app, &owner, &org, account).await, None);
    assert_eq!(
        scim.send(Method::DELETE, &user_path, None).await.status(),
        204
    );
    scim.expect(Method::GET, &user_path, None, 404).await;
    assert_eq!(
        scim.send(Method::DELETE, &group_path, None).await.status(),
        204
    );
    scim.expect(Method::GET, &group_path, None, 404).await;
}

/// The requests Okta sends (its SCIM 2.0 protocol reference), replayed.
async fn okta_provisions_as_it_does(backend: Backend) {
    let (app, owner, org, scim) = provisioned(backend).await;
    let none = scim
        .expect(
            Method::GET,
            "/Users?filter=userName%20eq%20%22test.user%40acme.example%22&startIndex=1&count=100",
            None,
            200,
        )
        .await;
    assert_eq!(none["totalResults"], 0);
    let created = scim.expect(Method::POST, "/Users", Some(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "test.user@acme.example",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@acme.example", "type": "work"}],
        "displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [], "password": "1mz050nq", "active": true})), 201).await;
    assert!(created.get("password").is_none() && !created.to_string().contains("1mz050nq"));
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        role(&app, &owner, &org, "test.user@acme.example")
            .await
            .as_deref(),
        Some("member")
    );
    for n in 0..3 {
        scim.expect(Method::POST, "/Users", Some(&user(&format!("p{n}"))), 201)
            .await;
    }
    let page = scim
        .expect(Method::GET, "/Users?startIndex=3&count=2", None, 200)
        .await;
    assert_eq!(
        (
            page["totalResults"].as_u64(),
            page["startIndex"].as_u64(),
            page["itemsPerPage"].as_u64()
        ),
        (Some(4), Some(3), Some(2))
    );
    let replaced = scim.expect(Method::PUT, &format!("/Users/{id}"), Some(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": "test.user@acme.example",
        "name": {"givenName": "Another", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@acme.example", "type": "work", "display": "test.user@acme.example"}],
        "displayName": "Another User", "externalId": "00ujl29u0le5T6Aj10h7", "groups": [], "active": true,
        "meta": {"resourceType": "User"}})), 200).await;
    assert_eq!(replaced["name"]["givenName"], "Another");
    assert!(
        replaced.get("locale").is_none(),
        "PUT replaces: what is left out is gone"
    );
    let group = scim.expect(Method::POST, "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Test SCIMv2", "members": []})), 201).await;
    let gid = group["id"].as_str().unwrap().to_owned();
    let found = scim
        .expect(
            Method::GET,
            "/Groups?filter=displayName%20eq%20%22Test%20SCIMv2%22&startIndex=1&count=100",
            None,
            200,
        )
        .await;
    assert_eq!(found["Resources"][0]["id"], gid.as_str());
    let path = format!("/Groups/{gid}");
    let renamed = scim
        .expect(
            Method::PATCH,
            &path,
            Some(&op(
                json!([{"op": "replace", "value": {"id": gid, "displayName": "Another Name"}}]),
            )),
            200,
        )
        .await;
    assert_eq!(renamed["displayName"], "Another Name");
    scim.expect(Method::PATCH, &path, Some(&op(json!([{"op": "add", "path": "members", "value": [{"value": id, "display": "test.user@acme.example"}]}]))), 200).await;
    let teams: Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/teams"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        teams.to_string().contains(&id),
        "the member is in the team: {teams}"
    );
    let out = scim
        .expect(
            Method::PATCH,
            &path,
            Some(&op(
                json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
            )),
            200,
        )
        .await;
    assert_eq!(out["members"].as_array().map(Vec::len), Some(0));
    // Deactivate and reactivate with path-less replaces (Okta never deletes users).
    let off = scim
        .expect(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&op(json!([{"op": "replace", "value": {"active": false}}]))),
            200,
        )
        .await;
    assert_eq!(off["active"], false);
    assert_eq!(
        role(&app, &owner, &org, "test.user@acme.example").await,
        None
    );
    scim.expect(
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(&op(json!([{"op": "replace", "value": {"active": true}}]))),
        200,
    )
    .await;
    assert_eq!(
        role(&app, &owner, &org, "test.user@acme.example")
            .await
            .as_deref(),
        Some("member")
    );
}

/// Every SCIM route (the list below is `scim::router()`'s, kept in step with it), walked: no
/// credentials, a session instead of a key, a key without the scope, and another org's SCIM key
/// are refused with SCIM errors, and nothing answers 500.
async fn every_scim_route_is_walked(backend: Backend) {
    let (app, owner, org, scim) = provisioned(backend).await;
    let alice = scim
        .expect(Method::POST, "/Users", Some(&user("alice")), 201)
        .await;
    let (uid, gid) = (alice["id"].as_str().unwrap().to_owned(), {
        let g = scim.expect(Method::POST, "/Groups", Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"})), 201).await;
        g["id"].as_str().unwrap().to_owned()
    });
    let routes: Vec<(Method, String)> = vec![
        (Method::GET, "/Users".into()),
        (Method::POST, "/Users".into()),
        (Method::POST, "/Users/.search".into()),
        (Method::GET, format!("/Users/{uid}")),
        (Method::PUT, format!("/Users/{uid}")),
        (Method::PATCH, format!("/Users/{uid}")),
        (Method::DELETE, format!("/Users/{uid}")),
        (Method::GET, "/Groups".into()),
        (Method::POST, "/Groups".into()),
        (Method::POST, "/Groups/.search".into()),
        (Method::GET, format!("/Groups/{gid}")),
        (Method::PUT, format!("/Groups/{gid}")),
        (Method::PATCH, format!("/Groups/{gid}")),
        (Method::DELETE, format!("/Groups/{gid}")),
        (Method::GET, "/ServiceProviderConfig".into()),
        (Method::GET, "/ResourceTypes".into()),
        (Method::GET, "/ResourceTypes/User".into()),
        (Method::GET, "/Schemas".into()),
        (
            Method::GET,
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User".into(),
        ),
        (Method::POST, "/.search".into()),
    ];
    let other_owner = app
        .add_member(
            org.parse().unwrap(),
            "boss@other.example",
            PASSWORD,
            Role::Member,
        )
        .await;
    let other_org = app.create_org("other", other_owner).await;
    let boss = app.login_mfa("boss@other.example", PASSWORD).await;
    let theirs = scim_client(&app, &boss, &other_org.to_string()).await;
    let res = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/keys"),
        &json!({"name": "audit", "scopes": ["audit:read"]}),
    )
    .await;
    let narrow_key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]});
    for (method, path) in &routes {
        let url = format!("{}{path}", scim.base);
        let send = |key: Option<&str>, cookie: Option<&str>| {
            let mut req = scim
                .http
                .request(method.clone(), &url)
                .header("content-type", "application/scim+json")
                .body(body.to_string());
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            if let Some(cookie) = cookie {
                req = req
                    .header("cookie", cookie)
                    .header("x-csrf-token", &owner.csrf);
            }
            req.send()
        };
        for (who, res, want) in [
            ("nobody", send(None, None).await.unwrap(), 401),
            (
                "a session",
                send(None, Some(&owner.cookie)).await.unwrap(),
                401,
            ),
            (
                "a key without the scope",
                send(Some(&narrow_key), None).await.unwrap(),
                403,
            ),
            (
                "another org's SCIM key",
                send(Some(&theirs.key), None).await.unwrap(),
                404,
            ),
        ] {
            assert_eq!(res.status().as_u16(), want, "{who}: {method} {path}");
            assert_eq!(
                res.headers()["content-type"],
                "application/scim+json",
                "{who}: {method} {path}"
            );
            let err: Value = res.json().await.unwrap();
            assert_eq!(
                err["schemas"],
                json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
                "{who}: {method} {path}"
            );
        }
        // With the key: answered, never a 500 (the cross-type search is not offered: 501).
        let res = scim.send(method.clone(), path, Some(&body)).await;
        let status = res.status().as_u16();
        assert!(
            status < 500 || (path == "/.search" && status == 501),
            "{method} {path}: {status}"
        );
    }
}

on_both_engines!(
    every_scim_route_is_walked,
    entra_id_provisions_as_it_does,
    okta_provisions_as_it_does,
    scim2_tester_finds_nothing_wrong,
    users_are_provisioned,
    only_the_orgs_scim_key_gets_in,
    deprovisioning_cuts_every_path_at_once,
    concurrent_group_changes_lose_nothing,
);

/// `value` percent-encoded for a query string: every byte but letters and digits.
fn query_escaped(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// SQL and LIKE metacharacters in filter values match only themselves (ASVS V1.2.4): quotes,
/// comments and statement separators are bound as data, `%`, `_` and `\` are escaped before
/// LIKE sees them, whether the filter is answered by the database or in memory.
async fn filters_match_sql_and_like_metacharacters_literally(backend: Backend) {
    let (_app, _owner, _org, scim) = provisioned(backend).await;
    let people = [
        ("ann", "x' OR '1'='1", "Robert'); DROP TABLE scim_users;--"),
        ("ben", "50%_off", "100% sure"),
        ("cal", "50Xoff", "100X sure"),
        ("dot", "back\\slash", "under_score"),
        ("eve", "backXslash", "underXscore"),
    ];
    for (name, external, display) in people {
        let mut body = user(name);
        body["externalId"] = json!(external);
        body["displayName"] = json!(display);
        scim.expect(Method::POST, "/Users", Some(&body), 201).await;
    }
    let found = |filter: String| {
        let scim = &scim;
        async move {
            let path = format!("/Users?filter={}", query_escaped(&filter));
            let page = scim.expect(Method::GET, &path, None, 200).await;
            let mut names: Vec<String> = page["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["userName"].as_str().unwrap().replace("@acme.example", ""))
                .collect();
            names.sort();
            assert_eq!(
                page["totalResults"].as_u64(),
                Some(names.len() as u64),
                "{filter}"
            );
            names
        }
    };
    let cases: [(&str, &[&str]); 16] = [
        (r#"externalId eq "x' OR '1'='1""#, &["ann"]),
        (r#"externalId eq "' OR 1=1 --""#, &[]),
        (r#"externalId eq "x' OR '1'='1' --""#, &[]),
        (r#"externalId eq "50%_off""#, &["ben"]),
        (r#"externalId eq "50%""#, &[]),
        (r#"externalId co "%""#, &["ben"]),
        (r#"externalId ew "\\slash""#, &["dot"]),
        (r#"displayName co "%""#, &["ben"]),
        (r#"displayName sw "100%""#, &["ben"]),
        (r#"displayName sw "under_""#, &["dot"]),
        (r#"displayName ew "_score""#, &["dot"]),
        (r#"displayName co "'); drop table""#, &["ann"]),
        (r#"displayName eq "' or ''='""#, &[]),
        (r#"userName co "%""#, &[]),
        (r#"userName sw "_""#, &[]),
        (r#"emails co "\\""#, &[]),
    ];
    for (filter, want) in cases {
        assert_eq!(found(filter.to_owned()).await, want, "{filter}");
    }
    // Nothing was dropped or widened: every person is still there, once.
    let all = scim.expect(Method::GET, "/Users", None, 200).await;
    assert_eq!(all["totalResults"], 5);
}

on_both_engines!(filters_match_sql_and_like_metacharacters_literally);
