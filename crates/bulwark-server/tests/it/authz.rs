//! Authorization on every request, tried as attacks on both engines: every route outside the
//! public list refuses the anonymous, every org route hides the org from an outsider and
//! refuses an auditor's changes, each refusal is recorded with its decision, and org policies,
//! teams and roles change who may do what.

use std::collections::BTreeMap;

use bulwark_server::decide::PUBLIC;
use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app_with};
use bulwark_types::{OrgId, Role, UserId};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let path = res.url().path().to_owned();
    assert_eq!(res.status(), status, "{path}");
    res.json().await.unwrap()
}

/// Every route in the API description, as (method, path template, has a request body).
fn routes() -> Vec<(Method, String, bool)> {
    let doc: Value = serde_json::from_str(&bulwark_server::openapi_json()).unwrap();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            // Required query parameters (all integers so far) get a value, so a request gets
            // past validation.
            let query: Vec<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .map(|p| format!("{}=1", p["name"].as_str().unwrap()))
                .collect();
            let path = if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{}", query.join("&"))
            };
            out.push((method, path, op.get("requestBody").is_some()));
        }
    }
    assert!(
        out.len() > 30,
        "the walk found too few routes: {}",
        out.len()
    );
    out
}

/// A well-formed body for each route that takes one, so a request gets past validation to the
/// decision. A new route with a body must be added here: the walk fails until it is.
fn sample_body(method: &Method, path: &str) -> Value {
    match (method.as_str(), path) {
        ("POST" | "DELETE", "/v1/auth/mfa/totp")
        | ("DELETE", "/v1/auth/sessions" | "/v1/auth/sessions/{id}") => {
            json!({"password": PASSWORD})
        }
        (
            "POST",
            "/v1/auth/mfa/totp/confirm" | "/v1/auth/mfa/verify" | "/v1/auth/mfa/backup-codes",
        ) => {
            json!({"code": "123456"})
        }
        ("POST", "/v1/auth/password") => {
            json!({"current_password": PASSWORD, "new_password": "another long enough passphrase"})
        }
        ("PUT", "/v1/orgs/{org}/audit/retention") => json!({"days": 40}),
        ("PUT", "/v1/orgs/{org}/deletion") => json!({"grace_days": 7}),
        ("POST", "/v1/orgs/{org}/invitations") => {
            json!({"email": "new@acme.test", "role": "member"})
        }
        ("PUT", "/v1/orgs/{org}/policy") => json!({
            "session_idle_secs": null, "session_absolute_secs": null,
            "mfa_required": "owners", "password_composition": false
        }),
        ("PUT", "/v1/orgs/{org}/members/{user}/role") => json!({"role": "admin"}),
        ("POST", "/v1/orgs/{org}/teams") => json!({"name": "walkers"}),
        ("PUT", "/v1/orgs/{org}/authz/policies") => json!({"policies": ""}),
        ("POST", "/v1/orgs/{org}/keys") => json!({"name": "ci", "scopes": ["audit:read"]}),
        ("POST", "/v1/orgs/{org}/keys/{key}/rotate") => json!({"overlap_secs": 0}),
        ("POST", "/v1/orgs/{org}/spaces/{space}/keys") => {
            json!({"owner": "cust_1", "name": "walk", "scopes": ["read"]})
        }
        ("POST", "/v1/orgs/{org}/keys/verify") => json!({"key": "bwk_nope"}),
        ("POST", "/v1/license") => json!({"license": {}, "signature": {}}),
        ("POST", "/v1/orgs") => json!({"name": "Walk", "owner_email": "owner@acme.test"}),
        ("POST", "/v1/orgs/{org}/credentials") => json!({
            "name": "walk-credential", "kind": "generic", "value": "walk-secret",
            "destinations": ["https://example.com/"]
        }),
        ("PUT", "/v1/orgs/{org}/credentials/{credential}/value") => json!({"value": "new-walk"}),
        ("POST", "/v1/orgs/{org}/webhooks/endpoints") => {
            json!({"url": "https://8.8.8.8/walk", "event_types": ["app.walk"]})
        }
        ("PATCH", "/v1/orgs/{org}/webhooks/endpoints/{endpoint}") => {
            json!({"description": "walked"})
        }
        ("POST", "/v1/orgs/{org}/webhooks/endpoints/{endpoint}/rotate") => {
            json!({"overlap_secs": 0})
        }
        ("POST", "/v1/orgs/{org}/webhooks/endpoints/{endpoint}/replay") => {
            json!({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"})
        }
        ("POST", "/v1/orgs/{org}/webhooks/deliveries/{delivery}/resend") => json!({}),
        ("POST", "/v1/orgs/{org}/webhooks/messages") => {
            json!({"event_type": "app.walk", "payload": {"n": 1}})
        }
        ("POST", "/v1/orgs/{org}/tickets/preview" | "/v1/orgs/{org}/tickets/push") => json!({
            "tracker": "github", "repository": "acme/walk", "audit_seq": 0, "fields": ["action"],
            "credential_id": "cred_00000000000000000000000000000000"
        }),
        ("POST", "/v1/orgs/{org}/sso/connections") => json!({
            "name": "walk-2", "oidc": {"issuer": "https://idp.example", "client_id": "walk",
            "client_secret": "walk-secret"}
        }),
        ("PATCH", "/v1/orgs/{org}/sso/connections/{connection}") => json!({"enabled": true}),
        ("POST", "/v1/orgs/{org}/sso/connections/{connection}/secret") => {
            json!({"client_secret": "walk-secret-2"})
        }
        ("PUT", "/v1/orgs/{org}/sso/settings") => {
            json!({"sso_required": false, "admin_emails": [], "idp_mfa": false})
        }
        ("POST", "/v1/orgs/{org}/sso/domains") => json!({"domain": "walk.example"}),
        ("POST", "/v1/sso/domains/verify") => {
            json!({"org": "org_00000000000000000000000000000000", "domain": "walk.example"})
        }
        ("POST", "/v1/sso/oidc/{connection}/backchannel-logout") => json!({}),
        _ => panic!("the router walk has no sample body for {method} {path}: add one"),
    }
}

/// Org B ("Acme") with an owner, a member, an auditor, a team and an open invitation; and an
/// outsider who owns org A.
struct World {
    app: TestApp,
    org: OrgId,
    other_org: OrgId,
    owner: SignedIn,
    member: UserId,
    outsider: UserId,
    auditor: UserId,
    team: String,
    invitation: String,
    key: String,
    credential: String,
    connection: String,
    endpoint: String,
    delivery: String,
}

async fn world(backend: Backend) -> World {
    // No delivery worker: the walk's webhook message stays queued, and no delivery attempt
    // (nor its audited use of the signing secret) happens during the walk.
    let app = spawn_app_with(backend, |c| c.webhooks.deliver = false).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let member = app
        .add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    let auditor = app
        .add_member(org, "auditor@acme.test", PASSWORD, Role::Auditor)
        .await;
    let outsider = app.create_user("mallory@other.test", PASSWORD).await;
    let other_org = app.create_org("other", outsider).await;
    let team = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/teams"),
            &json!({"name": "ops"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let invitation = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/invitations"),
            &json!({"email": "invited@acme.test", "role": "member"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/keys"),
            &json!({"name": "walk", "scopes": ["audit:read"]}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let credential = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/credentials"),
            &json!({"name": "tracker", "kind": "bearer_token", "value": "world-secret",
                    "destinations": ["https://tracker.example.com/api/"]}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints"),
            &json!({"url": "https://8.8.8.8/walk", "event_types": ["app.walk"]}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A delivery to resend.
    json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/messages"),
            &json!({"event_type": "app.walk", "payload": {}}),
        )
        .await,
        202,
    )
    .await;
    let shown = json_of(
        app.get_as(
            &owner,
            &format!("/v1/orgs/{org}/webhooks/endpoints/{endpoint}"),
        )
        .await,
        200,
    )
    .await;
    let delivery = shown["deliveries"][0]["id"].as_str().unwrap().to_owned();
    // An SSO connection, stored directly: adding one through the API fetches the provider's
    // discovery document (tests/it/sso.rs does that against a real provider).
    let connection = bulwark_core::model::SsoConnection {
        id: bulwark_types::ConnectionId::new(),
        org,
        protocol: "oidc".into(),
        name: "walk".into(),
        config: json!({"issuer": "https://idp.example", "client_id": "walk",
            "auth_method": "client_secret_basic", "scopes": ["openid"],
            "claims": {"email": "email", "groups": "groups"},
            "mapping": {"jit": true, "default_role": "member", "allow_linking": false,
                "group_roles": {}, "group_teams": {}}})
        .to_string(),
        secret_id: None,
        enabled: true,
        created_ms: 0,
        updated_ms: 0,
    };
    let mut tx = app.state.store.org(org).await.unwrap();
    tx.create_sso_connection(&connection).await.unwrap();
    tx.commit().await.unwrap();
    World {
        connection: connection.id.to_string(),
        endpoint,
        delivery,
        key,
        credential,
        app,
        org,
        other_org,
        owner,
        member,
        outsider,
        auditor,
        team,
        invitation,
    }
}

impl World {
    fn fill(&self, org: OrgId, path: &str) -> String {
        let id = if path.starts_with("/v1/orgs/{org}/invitations") {
            self.invitation.clone()
        } else {
            "ses_00000000000000000000000000".to_owned()
        };
        path.replace("{org}", &org.to_string())
            .replace("{user}", &self.member.to_string())
            .replace("{team}", &self.team)
            .replace("{key}", &self.key)
            .replace("{credential}", &self.credential)
            .replace("{endpoint}", &self.endpoint)
            .replace("{delivery}", &self.delivery)
            .replace("{connection}", &self.connection)
            .replace("{domain}", "walk.example")
            .replace("{space}", "customers")
            .replace("{id}", &id)
    }

    async fn call(
        &self,
        who: Option<&SignedIn>,
        method: &Method,
        url_path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .request(method.clone(), self.app.url(url_path));
        if let Some(who) = who {
            req = req
                .header(reqwest::header::COOKIE, &who.cookie)
                .header("x-csrf-token", &who.csrf);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.unwrap()
    }

    /// The org's events as JSON, oldest first.
    async fn events(&self) -> Vec<Value> {
        let mut read = self.app.state.store.org_read(self.org).await.unwrap();
        read.audit_events(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|row| row.body)
            .map(|b| serde_json::from_slice(&b).unwrap())
            .collect()
    }
}

/// The walk: anonymous → 401 on every protected route; an outsider (an owner of another org)
/// → 404 on every route of this org; its auditor → 403 on every change; each refusal by policy
/// recorded in the org's log with the decision; and nothing done by either.
async fn every_route_decides(backend: Backend) {
    let w = world(backend).await;
    let outsider = w.app.login_mfa("mallory@other.test", PASSWORD).await;
    let auditor = w.app.login("auditor@acme.test", PASSWORD).await;
    let before = w.events().await.len();
    let mut tried = BTreeMap::new();
    for (method, template, has_body) in routes() {
        if PUBLIC.contains(&template.split('?').next().unwrap()) {
            continue;
        }
        let body = has_body.then(|| sample_body(&method, &template));
        let path = w.fill(w.org, &template);
        let res = w.call(None, &method, &path, body.as_ref()).await;
        assert_eq!(res.status(), 401, "anonymous {method} {template}");
        let code = json_of(res, 401).await["code"].clone();
        if code == "api_key_required" {
            // A machine-only route: a session is refused too, whoever holds it.
            let res = w.call(Some(&outsider), &method, &path, body.as_ref()).await;
            assert_eq!(json_of(res, 401).await["code"], "api_key_required");
            let res = w.call(Some(&w.owner), &method, &path, body.as_ref()).await;
            assert_eq!(json_of(res, 401).await["code"], "api_key_required");
            continue;
        }
        assert_eq!(code, "unauthenticated", "{method} {template}");
        if !template.starts_with("/v1/orgs/{org}") {
            continue;
        }
        let res = w.call(Some(&outsider), &method, &path, body.as_ref()).await;
        let got = res.status().as_u16();
        assert_eq!(got, 404, "outsider {method} {template}");
        // The decision comes before the body is read: an outsider learns nothing from how a
        // body would have been validated. Only routes whose decision needs the body (the role
        // being granted) read it first.
        if has_body {
            let junk = json!({"not_a_field": true});
            let res = w.call(Some(&outsider), &method, &path, Some(&junk)).await;
            let body_first = [
                "/v1/orgs/{org}/members/{user}/role",
                "/v1/orgs/{org}/invitations",
            ];
            if body_first.contains(&template.as_str()) {
                assert!(
                    matches!(res.status().as_u16(), 404 | 422),
                    "outsider, junk body {method} {template}: {}",
                    res.status()
                );
            } else {
                assert_eq!(
                    res.status().as_u16(),
                    404,
                    "outsider, junk body {method} {template}"
                );
            }
        }
        // The outsider's own org id in the same URL, with this org's ids inside it: nothing
        // of org B is reachable through org A either.
        if [
            "{user}",
            "{team}",
            "{id}",
            "{key}",
            "{credential}",
            "{endpoint}",
            "{delivery}",
        ]
        .iter()
        .any(|p| template.contains(p))
        {
            let cross = w.fill(w.other_org, &template);
            let res = w
                .call(Some(&outsider), &method, &cross, body.as_ref())
                .await;
            assert!(
                matches!(res.status().as_u16(), 404 | 403 | 409),
                "outsider via own org {method} {template}: {}",
                res.status()
            );
            assert!(!res.status().is_success(), "{method} {template}");
        }
        if method != Method::GET {
            let res = w.call(Some(&auditor), &method, &path, body.as_ref()).await;
            let problem = json_of(res, 403).await;
            assert_eq!(problem["code"], "forbidden", "auditor {method} {template}");
        }
        tried.insert(format!("{method} {template}"), got);
    }
    assert!(tried.len() >= 15, "{tried:?}");

    // Nothing either of them tried was done; every policy refusal is on record with the
    // policy-set hash.
    let events = w.events().await;
    let theirs: Vec<&Value> = events[before..]
        .iter()
        .filter(|e| {
            let actor = e["actor"]["id"].as_str();
            actor == Some(&w.outsider.to_string()) || actor == Some(&w.auditor.to_string())
        })
        .collect();
    assert!(theirs.len() >= 10, "{}", theirs.len());
    for e in &theirs {
        assert_eq!(e["action"], "authz.denied", "{e}");
        assert_eq!(e["outcome"]["result"], "failure");
        assert_eq!(e["decision"]["effect"], "deny");
        assert_eq!(e["decision"]["policy_set"].as_str().unwrap().len(), 64);
    }
    assert_eq!(
        events.len() - before,
        theirs.len(),
        "only refusals were recorded"
    );
    w.app.stop().await;
}

/// The description's `security` of every route says truly whether an API key is taken: with a
/// key of every scope and no cookie, a route that lists `api_key` gets past authentication
/// (whatever it then answers), and every other protected route answers 401.
async fn api_key_reach_matches_the_description(backend: Backend) {
    let w = world(backend).await;
    let issued = json_of(
        w.app
            .send_as(
                &w.owner,
                Method::POST,
                &format!("/v1/orgs/{}/keys", w.org),
                &json!({"name": "reach", "scopes": bulwark_core::apikeys::SCOPES}),
            )
            .await,
        201,
    )
    .await;
    let key = issued["key"].as_str().unwrap().to_owned();
    let doc: Value = serde_json::from_str(&bulwark_server::openapi_json()).unwrap();
    let mut keyed = Vec::new();
    for (method, template, has_body) in routes() {
        let bare = template.split('?').next().unwrap();
        if PUBLIC.contains(&bare) {
            continue;
        }
        let security = &doc["paths"][bare][method.as_str().to_lowercase()]["security"];
        let takes_key = security
            .as_array()
            .unwrap()
            .iter()
            .any(|req| req.get("api_key").is_some());
        let body = has_body.then(|| sample_body(&method, &template));
        let mut req = w
            .app
            .client
            .request(method.clone(), w.app.url(&w.fill(w.org, &template)))
            .bearer_auth(&key);
        if let Some(body) = &body {
            req = req.json(body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        if takes_key {
            assert!(
                status != 401 && status != 400,
                "{method} {template} lists api_key but answered {status}: {}",
                res.text().await.unwrap()
            );
            keyed.push(format!("{method} {template}"));
        } else {
            assert_eq!(status, 401, "{method} {template} takes no key");
        }
    }
    assert!(keyed.len() >= 12, "{keyed:?}");
    w.app.stop().await;
}

/// The owner reaches every org read route without the guard objecting (a handler that made no
/// decision would answer 500 here).
async fn owner_reads_every_org_route(backend: Backend) {
    let w = world(backend).await;
    for (method, template, _) in routes() {
        if method != Method::GET || !template.starts_with("/v1/orgs/{org}") {
            continue;
        }
        let res = w
            .call(Some(&w.owner), &method, &w.fill(w.org, &template), None)
            .await;
        assert!(
            res.status().is_success() || res.status() == 422,
            "owner GET {template}: {}",
            res.status()
        );
    }
    w.app.stop().await;
}

/// An org's own Cedar policies: validated before activation, refused when they would lock every
/// owner out, audited with the hashes before and after, and in force at once (a team permit,
/// a forbid that beats a built-in permit).
async fn org_policies_are_validated_activated_and_enforced(backend: Backend) {
    let w = world(backend).await;
    let (app, org) = (&w.app, w.org);
    let path = format!("/v1/orgs/{org}/authz/policies");
    let builtin = json_of(app.get_as(&w.owner, &path).await, 200).await;
    let builtin_hash = builtin["hash"].as_str().unwrap().to_owned();
    assert_eq!(builtin["policies"], "");
    assert!(
        builtin["policy_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "builtin.owner")
    );

    let owner = &w.owner;
    let at = path.as_str();
    let put = |body: Value| async move { app.send_as(owner, Method::PUT, at, &body).await };
    // Not Cedar; no id; an unknown action; an attribute the schema does not have; a template.
    for bad in [
        "permit(principal, action, resource",
        "permit(principal, action, resource);",
        r#"@id("org.x") permit(principal, action == Bulwark::Action::"audit.delete", resource);"#,
        r#"@id("org.x") permit(principal, action, resource) when { resource.secret == 1 };"#,
        r#"@id("org.x") permit(principal == ?principal, action, resource);"#,
        r#"@id("builtin.owner") forbid(principal, action, resource);"#,
    ] {
        let problem = json_of(put(json!({"policies": bad})).await, 422).await;
        assert_eq!(problem["code"], "invalid_policies", "{bad}");
        assert!(!problem["errors"].as_array().unwrap().is_empty(), "{bad}");
    }
    // Locking every owner out is refused.
    let lockout = r#"@id("org.freeze") forbid(principal, action == Bulwark::Action::"authz.policies.write", resource);"#;
    let problem = json_of(put(json!({"policies": lockout})).await, 409).await;
    assert_eq!(problem["code"], "would_lock_out");
    assert_eq!(
        json_of(app.get_as(&w.owner, &path).await, 200).await["hash"],
        builtin_hash.as_str(),
        "nothing changed"
    );

    // The team may read the audit log; admins may not invite.
    let member = app.login("member@acme.test", PASSWORD).await;
    let events = format!("/v1/orgs/{org}/audit/events");
    assert_eq!(app.get_as(&member, &events).await.status(), 403);
    let team_members = format!("/v1/orgs/{org}/teams/{}/members/{}", w.team, w.member);
    let res = app
        .send_as(&w.owner, Method::PUT, &team_members, &json!({}))
        .await;
    assert_eq!(res.status(), 204);
    let custom = format!(
        "@id(\"org.ops-read-audit\")\npermit(principal in Bulwark::Team::\"{}\", action == Bulwark::Action::\"audit.read\", resource);\n\
         @id(\"org.admins-do-not-invite\")\nforbid(principal in Bulwark::Role::\"admin\", action == Bulwark::Action::\"invitations.create\", resource);\n",
        w.team
    );
    let active = json_of(put(json!({"policies": custom})).await, 200).await;
    let hash = active["hash"].as_str().unwrap().to_owned();
    assert_ne!(hash, builtin_hash);
    assert_eq!(active["policies"], custom.as_str());
    assert_eq!(app.get_as(&member, &events).await.status(), 200);

    let admin_id = app
        .add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let admin = app.login("admin@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &admin,
            Method::POST,
            &format!("/v1/orgs/{org}/invitations"),
            &json!({"email": "x@acme.test", "role": "member"}),
        )
        .await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");

    // Leaving the team takes the permit away again.
    let res = app
        .send_as(&w.owner, Method::DELETE, &team_members, &json!({}))
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_as(&member, &events).await.status(), 403);

    let all = w.events().await;
    let activated: Vec<&Value> = all
        .iter()
        .filter(|e| e["action"] == "authz.policies_activated")
        .collect();
    assert_eq!(activated.len(), 1);
    assert_eq!(activated[0]["data"]["from_hash"], builtin_hash.as_str());
    assert_eq!(activated[0]["data"]["to_hash"], hash.as_str());
    assert_eq!(
        activated[0]["data"]["policies"],
        json!(["org.admins-do-not-invite", "org.ops-read-audit"])
    );
    assert_eq!(activated[0]["decision"]["effect"], "permit");
    let denied = all
        .iter()
        .rev()
        .find(|e| e["action"] == "authz.denied" && e["decision"]["action"] == "invitations.create")
        .unwrap();
    assert_eq!(
        denied["decision"]["policies"],
        json!(["org.admins-do-not-invite"])
    );
    assert_eq!(denied["decision"]["policy_set"], hash.as_str());

    // Back to the built-in set.
    let back = json_of(put(json!({"policies": ""})).await, 200).await;
    assert_eq!(back["hash"], builtin_hash.as_str());

    // The refusal replays offline under the recorded hash, and would be a permit today.
    let replay = |policy_hash: Option<String>| {
        let question = bulwark_core::authz::Question {
            org,
            user: admin_id,
            role: None,
            action: bulwark_authz::Action::InvitationsCreate,
            target: bulwark_core::authz::Target::Invitation(Role::Member),
            facts: bulwark_authz::Facts::default(),
            policy_hash,
        };
        bulwark_core::authz::explain(&*app.state.store, &app.state.authz, question)
    };
    let then = replay(Some(hash.clone())).await.unwrap().decision;
    assert!(!then.allowed());
    assert_eq!(then.policies, ["org.admins-do-not-invite"]);
    let now = replay(None).await.unwrap().decision;
    assert!(now.allowed());
    assert_eq!(now.policies, ["builtin.admin"]);
    assert!(matches!(
        replay(Some("f".repeat(64))).await,
        Err(bulwark_core::CoreError::NotFound)
    ));
    w.app.stop().await;
}

/// Policies cannot open an org to outsiders (a `permit (principal, …)` means every member),
/// and owners always keep the power to change the policies, even when a policy they accepted
/// depends on a team they later leave.
async fn policies_cannot_admit_outsiders_or_lock_owners_out(backend: Backend) {
    let w = world(backend).await;
    let (app, org) = (&w.app, w.org);
    let path = format!("/v1/orgs/{org}/authz/policies");
    let put = |body: Value| {
        let (owner, at) = (&w.owner, path.as_str());
        async move { app.send_as(owner, Method::PUT, at, &body).await }
    };
    let everyone = r#"@id("org.everyone-reads") permit (principal, action in Bulwark::Action::"read", resource);"#;
    json_of(put(json!({"policies": everyone})).await, 200).await;
    let outsider = app.login_mfa("mallory@other.test", PASSWORD).await;
    let member = app.login("member@acme.test", PASSWORD).await;
    let members = format!("/v1/orgs/{org}/members");
    let audit = format!("/v1/orgs/{org}/audit/events");
    assert_eq!(
        app.get_as(&member, &audit).await.status(),
        200,
        "members read now"
    );
    for route in [&members, &audit, &path] {
        let res = app.get_as(&outsider, route).await;
        assert_eq!(json_of(res, 404).await["code"], "not_found", "{route}");
    }

    // Only members of the ops team may change the policies; the owner is one, so it passes.
    let owner_id = w.owner.body["user"]["id"].as_str().unwrap();
    let in_ops = format!("/v1/orgs/{org}/teams/{}/members/{owner_id}", w.team);
    assert_eq!(
        app.send_as(&w.owner, Method::PUT, &in_ops, &json!({}))
            .await
            .status(),
        204
    );
    let ops_only = format!(
        "@id(\"org.ops-only\") forbid (principal, action == Bulwark::Action::\"authz.policies.write\", resource) unless {{ principal in Bulwark::Team::\"{}\" }};",
        w.team
    );
    json_of(put(json!({"policies": ops_only})).await, 200).await;
    // An admin takes the owner out of the team: the owner still changes the policies.
    app.add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let admin = app.login("admin@acme.test", PASSWORD).await;
    assert_eq!(
        app.send_as(&admin, Method::DELETE, &in_ops, &json!({}))
            .await
            .status(),
        204
    );
    json_of(put(json!({"policies": ""})).await, 200).await;
    let activated = w
        .events()
        .await
        .into_iter()
        .rev()
        .find(|e| e["action"] == "authz.policies_activated")
        .unwrap();
    assert_eq!(
        activated["decision"]["policies"],
        json!([bulwark_core::authz::OWNERS_KEEP_THE_RULES])
    );
    // Nothing the outsider tried reached the org's log.
    let theirs = w
        .events()
        .await
        .into_iter()
        .filter(|e| e["actor"]["id"] == w.outsider.to_string())
        .count();
    assert_eq!(theirs, 0);
    w.app.stop().await;
}

/// Two owners demoting each other at the same moment: the org keeps an owner (the owner rows
/// are locked while "another owner remains" is checked).
async fn two_owners_demoting_each_other_leave_one(backend: Backend) {
    let w = world(backend).await;
    let (app, org) = (&w.app, w.org);
    let first: UserId = w.owner.body["user"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let second = app
        .add_member(org, "owner2@acme.test", PASSWORD, Role::Owner)
        .await;
    let role = |user: UserId| format!("/v1/orgs/{org}/members/{user}/role");
    for _ in 0..3 {
        let a = app.login_mfa("owner@acme.test", PASSWORD).await;
        let b = app.login_mfa("owner2@acme.test", PASSWORD).await;
        let demote = json!({"role": "admin"});
        let (pa, pb) = (role(second), role(first));
        let (ra, rb) = tokio::join!(
            app.send_as(&a, Method::PUT, &pa, &demote),
            app.send_as(&b, Method::PUT, &pb, &demote),
        );
        let ok = [ra.status(), rb.status()]
            .iter()
            .filter(|s| s.is_success())
            .count();
        assert!(ok <= 1, "{} {}", ra.status(), rb.status());
        let mut read = app.state.store.org_read(org).await.unwrap();
        let owners: Vec<UserId> = read
            .members()
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .map(|m| m.user_id)
            .collect();
        drop(read);
        assert!(!owners.is_empty(), "the org lost every owner");
        // Restore the second owner for the next round.
        if owners.len() == 1 {
            let (keeper, other) = if owners[0] == first {
                ("owner@acme.test", second)
            } else {
                ("owner2@acme.test", first)
            };
            let k = app.login_mfa(keeper, PASSWORD).await;
            let res = app
                .send_as(&k, Method::PUT, &role(other), &json!({"role": "owner"}))
                .await;
            assert_eq!(res.status(), 200);
        }
    }
    w.app.stop().await;
}

/// Roles: admins cannot grant owner or touch owners, the last owner stays an owner, and a
/// member whose role changed signs in again (their sessions end).
async fn roles_change_under_policy(backend: Backend) {
    let w = world(backend).await;
    let (app, org) = (&w.app, w.org);
    let admin_id = app
        .add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let admin = app.login("admin@acme.test", PASSWORD).await;
    let member = app.login("member@acme.test", PASSWORD).await;
    let owner_id: UserId = w.owner.body["user"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let role = |user: UserId| format!("/v1/orgs/{org}/members/{user}/role");

    let res = app
        .send_as(
            &admin,
            Method::PUT,
            &role(w.member),
            &json!({"role": "owner"}),
        )
        .await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");
    let res = app
        .send_as(
            &admin,
            Method::PUT,
            &role(owner_id),
            &json!({"role": "member"}),
        )
        .await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");
    let res = app
        .send_as(
            &w.owner,
            Method::PUT,
            &role(owner_id),
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(json_of(res, 409).await["code"], "would_lock_out");
    let res = app
        .send_as(
            &w.owner,
            Method::PUT,
            &role(w.member),
            &json!({"role": "superuser"}),
        )
        .await;
    assert_eq!(json_of(res, 422).await["code"], "validation_failed");
    let res = app
        .send_as(
            &w.owner,
            Method::PUT,
            &role(w.outsider),
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(json_of(res, 404).await["code"], "not_found");

    // The admin makes the member an auditor: the member's session ends.
    let res = app
        .send_as(
            &admin,
            Method::PUT,
            &role(w.member),
            &json!({"role": "auditor"}),
        )
        .await;
    let out = json_of(res, 200).await;
    assert_eq!(out["role"], "auditor");
    assert_eq!(out["sessions_revoked"], 1);
    assert_eq!(app.get_as(&member, "/v1/auth/session").await.status(), 401);
    let member = app.login("member@acme.test", PASSWORD).await;
    let list = json_of(
        app.get_as(&member, &format!("/v1/orgs/{org}/members"))
            .await,
        200,
    )
    .await;
    let me = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == w.member.to_string())
        .unwrap();
    assert_eq!(me["role"], "auditor");
    let changed = w
        .events()
        .await
        .into_iter()
        .rev()
        .find(|e| e["action"] == "member.role_changed")
        .unwrap();
    assert_eq!(changed["data"]["from"], "member");
    assert_eq!(changed["data"]["to"], "auditor");
    assert_eq!(changed["actor"]["id"], admin_id.to_string());
    assert_eq!(changed["decision"]["action"], "members.role.write");

    // Removal: admins not of owners, never the last owner; a removed member reaches nothing.
    let member_path = |user: UserId| format!("/v1/orgs/{org}/members/{user}");
    let res = app
        .send_as(&admin, Method::DELETE, &member_path(owner_id), &json!({}))
        .await;
    assert_eq!(json_of(res, 403).await["code"], "forbidden");
    let res = app
        .send_as(&w.owner, Method::DELETE, &member_path(owner_id), &json!({}))
        .await;
    assert_eq!(json_of(res, 409).await["code"], "would_lock_out");
    let res = app
        .send_as(&admin, Method::DELETE, &member_path(w.member), &json!({}))
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .get_as(&member, &format!("/v1/orgs/{org}/members"))
        .await;
    assert_eq!(json_of(res, 404).await["code"], "not_found");
    let res = app
        .send_as(&admin, Method::DELETE, &member_path(w.member), &json!({}))
        .await;
    assert_eq!(res.status(), 404);
    let removed = w
        .events()
        .await
        .into_iter()
        .rev()
        .find(|e| e["action"] == "member.removed");
    assert_eq!(removed.unwrap()["data"]["user_id"], w.member.to_string());
    w.app.stop().await;
}

/// Teams: names validated and unique per org, members must belong to the org, ids of another
/// org's teams are unknown here.
async fn teams_are_org_scoped(backend: Backend) {
    let w = world(backend).await;
    let (app, org) = (&w.app, w.org);
    let teams = format!("/v1/orgs/{org}/teams");
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "a\u{7}b"}),
    ] {
        let res = app.send_as(&w.owner, Method::POST, &teams, &bad).await;
        assert_eq!(
            json_of(res, 422).await["code"],
            "validation_failed",
            "{bad}"
        );
    }
    let res = app
        .send_as(&w.owner, Method::POST, &teams, &json!({"name": "ops"}))
        .await;
    assert_eq!(json_of(res, 409).await["code"], "conflict");
    // The outsider's own team in org A cannot be reached through org B, nor can they add
    // org B's member to it.
    let outsider = app.login_mfa("mallory@other.test", PASSWORD).await;
    let theirs = json_of(
        app.send_as(
            &outsider,
            Method::POST,
            &format!("/v1/orgs/{}/teams", w.other_org),
            &json!({"name": "ops"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .send_as(
            &w.owner,
            Method::DELETE,
            &format!("{teams}/{theirs}"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .send_as(
            &outsider,
            Method::PUT,
            &format!(
                "/v1/orgs/{}/teams/{theirs}/members/{}",
                w.other_org, w.member
            ),
            &json!({}),
        )
        .await;
    assert_eq!(json_of(res, 404).await["code"], "not_found");
    let listed = json_of(app.get_as(&w.owner, &teams).await, 200).await;
    assert_eq!(listed["teams"].as_array().unwrap().len(), 1);
    let res = app
        .send_as(
            &w.owner,
            Method::DELETE,
            &format!("{teams}/{}", w.team),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .send_as(
            &w.owner,
            Method::DELETE,
            &format!("{teams}/{}", w.team),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
    w.app.stop().await;
}

on_both_engines!(
    every_route_decides,
    owner_reads_every_org_route,
    api_key_reach_matches_the_description,
    org_policies_are_validated_activated_and_enforced,
    policies_cannot_admit_outsiders_or_lock_owners_out,
    two_owners_demoting_each_other_leave_one,
    roles_change_under_policy,
    teams_are_org_scoped,
);

/// A form for each console route that posts one, valid enough to reach the decision (the
/// auditor's refusal is the policy's, not the form's). A new console POST route must be added
/// here: the walk fails until it is.
fn sample_form(path: &str) -> Vec<(&'static str, String)> {
    let f = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    };
    match path {
        "/login" => f(&[("email", "owner@acme.test"), ("password", "wrong password")]),
        "/login/mfa" | "/account/mfa/confirm" | "/account/mfa/backup-codes" => {
            f(&[("code", "123456")])
        }
        "/logout" | "/csp-report" | "/orgs/{org}/invitations/{id}/revoke" => Vec::new(),
        "/setup" => f(&[
            ("setup_token", "bwsetup_nope"),
            ("org_name", "Walk"),
            ("email", "walk@acme.test"),
            ("password", PASSWORD),
        ]),
        "/reset" => f(&[("email", "nobody@acme.test")]),
        "/reset/new" => f(&[("token", "bwreset_nope"), ("new_password", PASSWORD)]),
        "/invite" => f(&[("token", "bwinv_nope"), ("password", PASSWORD)]),
        "/verify-email" => f(&[("token", "bwverify_nope")]),
        "/license" => f(&[("license", "{}")]),
        "/account/password" => f(&[
            ("current_password", PASSWORD),
            ("new_password", "another long enough passphrase"),
        ]),
        "/account/mfa/start" => f(&[("password", PASSWORD)]),
        "/account/mfa/remove" => f(&[("password", PASSWORD), ("confirm", "yes")]),
        "/account/sessions/{id}/revoke" | "/account/sessions/revoke-others" => {
            f(&[("password", PASSWORD)])
        }
        "/orgs/{org}/members/invite" => f(&[("email", "walk@acme.test"), ("role", "member")]),
        "/orgs/{org}/members/{user}/role" => f(&[("role", "admin")]),
        "/orgs/{org}/members/{user}/remove"
        | "/orgs/{org}/teams/{team}/delete"
        | "/orgs/{org}/keys/{key}/revoke"
        | "/orgs/{org}/vault/{credential}/delete"
        | "/orgs/{org}/webhooks/{endpoint}/delete" => f(&[("confirm", "yes")]),
        "/orgs/{org}/teams" => f(&[("name", "walkers")]),
        "/orgs/{org}/teams/{team}/members" => f(&[("op", "add"), ("user", "{user}")]),
        "/orgs/{org}/policies" => f(&[("policies", "")]),
        "/orgs/{org}/keys" => f(&[("name", "walk"), ("scopes", "audit:read")]),
        "/orgs/{org}/keys/{key}/rotate" | "/orgs/{org}/webhooks/{endpoint}/rotate" => {
            f(&[("overlap_secs", "0")])
        }
        "/orgs/{org}/vault" => f(&[
            ("name", "walk-credential"),
            ("kind", "generic"),
            ("value", "walk-secret"),
            ("destinations", "https://example.com/"),
        ]),
        "/orgs/{org}/vault/{credential}/value" => f(&[("value", "new-walk")]),
        "/orgs/{org}/webhooks" => f(&[("url", "https://8.8.8.8/walk")]),
        "/orgs/{org}/webhooks/{endpoint}" => f(&[("description", "walked")]),
        "/orgs/{org}/webhooks/{endpoint}/replay" => f(&[
            ("since", "2026-01-01T00:00:00Z"),
            ("until", "2026-01-02T00:00:00Z"),
        ]),
        "/orgs/{org}/webhooks/deliveries/{delivery}/resend" => Vec::new(),
        "/orgs/{org}/spaces/keys" => f(&[
            ("space", "customers"),
            ("owner", "cust_1"),
            ("name", "walk"),
            ("scopes", "read"),
        ]),
        "/orgs/{org}/spaces/keys/{key}/revoke" => f(&[("space", "customers"), ("confirm", "yes")]),
        "/orgs/{org}/tickets/preview" | "/orgs/{org}/tickets/push" => f(&[
            ("tracker", "github"),
            ("repository", "acme/walk"),
            ("audit_seq", "0"),
            ("fields", "action"),
            ("credential_id", "{credential}"),
        ]),
        _ => panic!("the console walk has no sample form for POST {path}: add one"),
    }
}

impl World {
    /// A console request: a form post (with the session's CSRF token in `_csrf` unless
    /// `csrf` is false) or a GET.
    async fn page(
        &self,
        who: Option<&SignedIn>,
        method: &Method,
        path: &str,
        form: &[(&'static str, String)],
        csrf: bool,
    ) -> reqwest::Response {
        let mut req = self.app.client.request(method.clone(), self.app.url(path));
        let mut form: Vec<(&str, String)> = form.to_vec();
        if let Some(who) = who {
            req = req.header(reqwest::header::COOKIE, &who.cookie);
            if csrf {
                form.push(("_csrf", who.csrf.clone()));
            }
        }
        if *method == Method::POST {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(&form));
        }
        req.send().await.unwrap()
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form_body(pairs: &[(&str, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// Asserts a console answer is a page (HTML, the console's CSP, the request id in the body).
async fn assert_page(res: reqwest::Response, status: u16, what: &str) -> String {
    assert_eq!(res.status(), status, "{what}");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{what}: {csp}"
    );
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{what}"
    );
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = res.text().await.unwrap();
    if status >= 400 && status != 401 {
        assert!(
            body.contains(&id),
            "{what}: the error page carries the request id"
        );
    }
    body
}

/// The console walk: every console route (from the console's own route table) refuses the
/// anonymous (a page view is sent to sign in, a form is refused and kept), hides an org from an
/// outsider (404 page), refuses an auditor's changes (403 page), refuses every form without the
/// session's CSRF token or sent cross-site (403 page) — and none of them changed anything.
async fn console_routes_decide(backend: Backend) {
    let w = world(backend).await;
    let outsider = w.app.login_mfa("mallory@other.test", PASSWORD).await;
    let auditor = w.app.login("auditor@acme.test", PASSWORD).await;
    let before = w.events().await.len();
    let public = |p: &str| bulwark_server::console::is_public(p);
    let mut posts = 0;
    for template in bulwark_server::console::paths() {
        let path = w
            .fill(w.org, template)
            .replace("{seq}", "0")
            .replace("{file}", "nope.css");
        let path = if template == "/account/sessions/{id}/revoke" {
            path.replace(
                "ses_00000000000000000000000000",
                "ses_01a24e024b9076ce8ee6b01f9d1fdb89",
            )
        } else {
            path
        };
        for method in [Method::GET, Method::POST] {
            // A method the route does not have: 405, as a page.
            let probe = w.page(None, &method, &path, &[], false).await;
            if probe.status() == 405 {
                assert_page(probe, 405, &format!("{method} {template}")).await;
                continue;
            }
            let form: Vec<(&str, String)> = if method == Method::POST {
                sample_form(template)
                    .into_iter()
                    .map(|(k, v)| (k, w.fill(w.org, &v)))
                    .collect()
            } else {
                Vec::new()
            };
            let anonymous = w.page(None, &method, &path, &form, false).await;
            let what = format!("{method} {template}");
            if public(template) {
                assert!(
                    anonymous.status().as_u16() < 500,
                    "{what}: {}",
                    anonymous.status()
                );
                continue;
            }
            if method == Method::GET {
                assert_eq!(anonymous.status(), 303, "anonymous {what}");
                let to = anonymous.headers()["location"].to_str().unwrap();
                assert!(to.starts_with("/login"), "anonymous {what} → {to}");
            } else {
                posts += 1;
                let body = assert_page(anonymous, 401, &format!("anonymous {what}")).await;
                assert!(
                    body.contains("action=\"/login\""),
                    "anonymous {what}: the sign-in form: {body}"
                );
                // Without the token, or cross-site with it, a signed-in owner is refused too.
                let res = w.page(Some(&w.owner), &method, &path, &form, false).await;
                let body = assert_page(res, 403, &format!("no CSRF {what}")).await;
                assert!(body.contains("csrf_failed"), "no CSRF {what}");
                let mut cross: Vec<(&str, String)> = form.clone();
                cross.push(("_csrf", w.owner.csrf.clone()));
                let res = w
                    .app
                    .client
                    .post(w.app.url(&path))
                    .header(reqwest::header::COOKIE, &w.owner.cookie)
                    .header("sec-fetch-site", "cross-site")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form_body(&cross))
                    .send()
                    .await
                    .unwrap();
                let body = assert_page(res, 403, &format!("cross-site {what}")).await;
                assert!(body.contains("cross_site_request"), "cross-site {what}");
            }
            if !template.starts_with("/orgs/{org}") {
                continue;
            }
            let res = w.page(Some(&outsider), &method, &path, &form, true).await;
            assert_page(res, 404, &format!("outsider {what}")).await;
            // The outsider's own org in the URL with this org's ids inside it.
            let rest = &template["/orgs/{org}".len()..];
            if rest.contains('{') && !rest.contains("{seq}") {
                let cross_org = w.fill(w.other_org, template);
                let res = w
                    .page(Some(&outsider), &method, &cross_org, &form, true)
                    .await;
                assert!(
                    !res.status().is_success() && res.status() != 303,
                    "outsider via own org {what}: {}",
                    res.status()
                );
            }
            if method == Method::POST {
                let res = w.page(Some(&auditor), &method, &path, &form, true).await;
                let body = assert_page(res, 403, &format!("auditor {what}")).await;
                assert!(body.contains("forbidden"), "auditor {what}");
            }
        }
    }
    assert!(
        posts >= 20,
        "the walk posted to too few console routes: {posts}"
    );
    // Nothing was done: the only new events are the refusals by policy.
    let events = w.events().await;
    for e in &events[before..] {
        assert_eq!(e["action"], "authz.denied", "{e}");
    }
    w.app.stop().await;
}

on_both_engines!(console_routes_decide);
