//! Enterprise single sign-on over OpenID Connect (issue 21), end to end against a real OpenID
//! provider (npm `oidc-provider`, the certified reference implementation) and, for the attack
//! corpus, a hostile provider that signs with an independent JOSE library (npm `jose`): both in
//! `peers/oidc_peer.mjs`, started here as processes.

use std::collections::BTreeMap;
use std::process::Stdio;

use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app_with};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

pub(crate) const OWNER: &str = "owner@acme.example";
pub(crate) const PASSWORD: &str = "correct horse battery staple 42";
const CLIENT_SECRET: &str = "oidc-client-secret-never-shown-9f2c";

/// A running `oidc_peer.mjs`.
pub struct Peer {
    /// Its issuer (`http://127.0.0.1:PORT`).
    pub issuer: String,
    port: u16,
    _child: tokio::process::Child,
    http: reqwest::Client,
}

impl Peer {
    async fn start(config: Value) -> Self {
        let modules = std::env::var("BULWARK_TEST_NODE_MODULES").expect(
            "BULWARK_TEST_NODE_MODULES: npm's node_modules with oidc-provider@9.13.3 and \
             jose@6.2.19 (scripts/test installs them)",
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/oidc_peer.mjs");
        let mut command = tokio::process::Command::new("node");
        command
            .arg(script)
            .arg(&path)
            .env("BULWARK_TEST_NODE_MODULES", modules);
        let (child, issuer, port) = spawn_ready(command, "the OpenID peer").await;
        drop(dir);
        Self {
            issuer,
            port,
            _child: child,
            http: bulwark_testkit::app::client(),
        }
    }

    async fn op(accounts: Value) -> Self {
        Self::start(json!({"mode": "op", "port": 0, "clients": [], "accounts": accounts})).await
    }

    async fn forge(client_id: &str, redirect_uri: &str) -> Self {
        Self::start(json!({"mode": "forge", "port": 0, "client_id": client_id,
            "redirect_uri": redirect_uri}))
        .await
    }

    async fn control(&self, path: &str, body: &Value) -> Value {
        let res = self
            .http
            .post(format!("{}{path}", self.issuer))
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap_or(Value::Null)
    }
}

/// A free loopback port (the server's public URL names it before it starts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server whose `sso.public_url` is its own address, allowed to call `peers`.
async fn app_for(backend: Backend, peers: &[&Peer]) -> TestApp {
    app_with(backend, peers, None).await
}

/// [`app_for`] with `free` failures per client address before the sign-in throttle applies.
async fn app_with_free_failures(backend: Backend, peer: &Peer, free: u32) -> TestApp {
    app_with(backend, &[peer], Some(free)).await
}

async fn app_with(backend: Backend, peers: &[&Peer], free: Option<u32>) -> TestApp {
    let port = free_port();
    let loopback: Vec<String> = peers
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.port))
        .collect();
    spawn_app_with(backend, move |c| {
        c.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        c.sso.public_url = Some(format!("http://127.0.0.1:{port}"));
        c.sso.idp_hosts = vec!["127.0.0.1".into()];
        c.egress.allow_http = true;
        c.egress.allow_loopback = loopback;
        if let Some(free) = free {
            c.throttle.address_free_failures = free;
        }
    })
    .await
}

/// An app with an owner (second factor enrolled), returned signed in with the org id.
pub(crate) async fn with_owner(app: &TestApp) -> (SignedIn, String) {
    let body = app.setup("Acme", OWNER, PASSWORD).await;
    let org = body["org"]["id"].as_str().unwrap().to_owned();
    let owner = app.login_mfa(OWNER, PASSWORD).await;
    (owner, org)
}

pub(crate) async fn post(
    app: &TestApp,
    who: &SignedIn,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    app.send_as(who, reqwest::Method::POST, path, body).await
}

/// Adds an OIDC connection at `peer` and registers its redirect URI there (real OP).
async fn connect(
    app: &TestApp,
    owner: &SignedIn,
    org: &str,
    peer: &Peer,
    name: &str,
    auth_method: &str,
    mapping: Value,
) -> Value {
    let mut oidc = json!({"issuer": peer.issuer, "client_id": name, "auth_method": auth_method,
        "scopes": ["openid", "email", "profile", "groups"]});
    if auth_method != "private_key_jwt" {
        oidc["client_secret"] = json!(CLIENT_SECRET);
    }
    let res = post(
        app,
        owner,
        &format!("/v1/orgs/{org}/sso/connections"),
        &json!({"name": name, "oidc": oidc, "mapping": mapping}),
    )
    .await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    assert!(!text.contains(CLIENT_SECRET), "the secret is never shown");
    let connection: Value = serde_json::from_str(&text).unwrap();
    connection
}

async fn register(peer: &Peer, connection: &Value) {
    let o = &connection["oidc"];
    let method = o["auth_method"].as_str().unwrap();
    let mut client = json!({
        "client_id": o["client_id"],
        "token_endpoint_auth_method": method,
        "redirect_uris": [o["redirect_uri"]],
        "backchannel_logout_uri": o["backchannel_logout_uri"],
        "backchannel_logout_session_required": true,
        "post_logout_redirect_uris": [o["post_logout_redirect_uri"]],
    });
    if method == "private_key_jwt" {
        client["jwks"] = json!({"keys": [o["public_jwk"]]});
    } else {
        client["client_secret"] = json!(CLIENT_SECRET);
    }
    peer.control("/_test/clients", &client).await;
}

/// Claims `domain` for `org` and verifies it (the owner owns the operator org too).
pub(crate) async fn own_domain(app: &TestApp, owner: &SignedIn, org: &str, domain: &str) {
    let res = post(
        app,
        owner,
        &format!("/v1/orgs/{org}/sso/domains"),
        &json!({"domain": domain}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = post(
        app,
        owner,
        "/v1/sso/domains/verify",
        &json!({"org": org, "domain": domain}),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// A browser's cookies, by name (paths ignored: harmless here).
#[derive(Default, Clone)]
pub(crate) struct Jar(pub(crate) BTreeMap<String, String>);

impl Jar {
    pub(crate) fn take(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || v.contains("Max-Age=0") {
                    self.0.remove(name);
                } else {
                    self.0.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }

    pub(crate) fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub(crate) fn location(res: &reqwest::Response, base: &str) -> String {
    let raw = res
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {} answer", res.status()))
        .to_str()
        .unwrap();
    url::Url::parse(base)
        .unwrap()
        .join(raw)
        .unwrap()
        .to_string()
}

pub(crate) async fn get(client: &reqwest::Client, jar: &mut Jar, url: &str) -> reqwest::Response {
    let res = client
        .get(url)
        .header(COOKIE, jar.header())
        .send()
        .await
        .unwrap();
    jar.take(&res);
    res
}

/// Starts a sign-in at Bulwark: the provider's authorization URL and the browser's jar.
async fn start(app: &TestApp, connection: &Value, return_to: &str) -> (String, Jar) {
    let mut jar = Jar::default();
    let url = format!(
        "{}?return_to={}",
        connection["start_url"].as_str().unwrap(),
        urlencode(return_to)
    );
    let res = get(&app.client, &mut jar, &url).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let to = location(&res, &app.base);
    assert!(jar.0.contains_key("__Host-bulwark_sso"));
    (to, jar)
}

pub(crate) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Logs `sub` in at the real provider, returning the callback URL it sends the browser to.
async fn at_provider(peer: &Peer, jar: &mut Jar, authorize: &str, sub: &str) -> String {
    let res = get(&peer.http, jar, authorize).await;
    assert_eq!(
        res.status(),
        303,
        "authorize: {}",
        res.text().await.unwrap()
    );
    let interaction = location(&res, &peer.issuer);
    let res = peer
        .http
        .post(format!("{interaction}/login"))
        .header(COOKIE, jar.header())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("login={}", urlencode(sub)))
        .send()
        .await
        .unwrap();
    jar.take(&res);
    assert_eq!(res.status(), 303, "login: {}", res.text().await.unwrap());
    let resume = location(&res, &peer.issuer);
    let res = get(&peer.http, jar, &resume).await;
    assert_eq!(res.status(), 303, "resume");
    location(&res, &peer.issuer)
}

/// A whole sign-in of `sub`; the callback's answer.
async fn sign_in(
    app: &TestApp,
    peer: &Peer,
    connection: &Value,
    sub: &str,
) -> (reqwest::Response, Jar) {
    let (authorize, mut jar) = start(app, connection, "/welcome").await;
    let callback = at_provider(peer, &mut jar, &authorize, sub).await;
    let res = get(&app.client, &mut jar, &callback).await;
    (res, jar)
}

pub(crate) fn session_cookie(jar: &Jar) -> Option<String> {
    jar.0
        .get("__Host-bulwark_session")
        .map(|v| format!("__Host-bulwark_session={v}"))
}

pub(crate) async fn session(app: &TestApp, jar: &Jar) -> reqwest::Response {
    app.client
        .get(app.url("/v1/auth/session"))
        .header(COOKIE, session_cookie(jar).unwrap_or_default())
        .send()
        .await
        .unwrap()
}

pub(crate) async fn problem_code(res: reqwest::Response) -> String {
    let body: Value = res.json().await.unwrap_or(Value::Null);
    body["code"].as_str().unwrap_or("").to_owned()
}

fn accounts() -> Value {
    json!([
        {"sub": "alice", "email": "alice@acme.example", "email_verified": true, "name": "Alice",
         "groups": ["staff"], "amr": ["pwd"]},
        {"sub": "bob", "email": "bob@acme.example", "email_verified": true, "name": "Bob",
         "groups": ["admins"], "amr": ["pwd", "mfa"]},
        {"sub": "carol", "email": "carol@acme.example", "email_verified": true, "name": "Carol",
         "groups": ["admins", "staff"], "amr": ["pwd", "mfa"]},
        {"sub": "dave", "email": "dave@acme.example", "email_verified": true, "name": "Dave",
         "groups": [], "amr": ["pwd"]},
        {"sub": "mallory", "email": "owner@acme.example", "email_verified": false,
         "name": "Not the owner", "groups": ["admins"], "amr": ["pwd"]},
        {"sub": "eve", "email": "eve@elsewhere.example", "email_verified": true, "name": "Eve",
         "groups": [], "amr": ["pwd"]},
    ])
}

pub(crate) async fn org_events(app: &TestApp, who: &SignedIn, org: &str) -> Vec<Value> {
    let res = app
        .get_as(who, &format!("/v1/orgs/{org}/audit/events?limit=200"))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["events"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn has_event(events: &[Value], kind: &str, reason: Option<&str>) -> bool {
    events.iter().any(|e| {
        e["action"] == kind && reason.is_none_or(|r| e["outcome"]["reason"].as_str() == Some(r))
    })
}

/// Code flow with PKCE against the reference provider: a first sign-in provisions the person
/// (just in time, in a verified domain), a second finds the same account; the session works;
/// every step is audited; the client secret is in no answer.
async fn a_person_signs_in_through_the_org_provider(backend: Backend) {
    let peer = Peer::op(accounts()).await;
    let app = app_for(backend, &[&peer]).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "acme.example").await;
    let connection = connect(
        &app,
        &owner,
        &org,
        &peer,
        "acme-idp",
        "client_secret_basic",
        json!({}),
    )
    .await;
    register(&peer, &connection).await;

    let (res, jar) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(res.headers()[LOCATION], "/welcome");
    assert!(
        !jar.0.contains_key("__Host-bulwark_sso"),
        "the flow cookie is dropped"
    );
    let me = session(&app, &jar).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user"]["email"], "alice@acme.example");
    let first_id = me["user"]["id"].clone();

    let (res, jar) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(res.status(), 303);
    let me: Value = session(&app, &jar).await.json().await.unwrap();
    assert_eq!(
        me["user"]["id"], first_id,
        "the same account, found by its binding"
    );

    let members: Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/members"))
        .await
        .json()
        .await
        .unwrap();
    let alice = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "alice@acme.example")
        .expect("alice is a member");
    assert_eq!(alice["role"], "member");
    let events = org_events(&app, &owner, &org).await;
    assert!(has_event(&events, "sso.identity_bound", None));
    assert!(has_event(&events, "sso.connection_created", None));
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "auth.login.succeeded" && e["data"]["method"] == "oidc")
    );
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains(CLIENT_SECRET)
    );
    app.stop().await;
}

on_both_engines!(a_person_signs_in_through_the_org_provider);

pub(crate) async fn members(app: &TestApp, owner: &SignedIn, org: &str) -> Vec<Value> {
    let body: Value = app
        .get_as(owner, &format!("/v1/orgs/{org}/members"))
        .await
        .json()
        .await
        .unwrap();
    body["members"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn role_of(members: &[Value], email: &str) -> Option<String> {
    members
        .iter()
        .find(|m| m["email"] == email)
        .and_then(|m| m["role"].as_str())
        .map(str::to_owned)
}

/// The admin-email binding: a group that maps to `owner` makes an owner only of a listed
/// email; anyone else gets the default role. Teams follow groups at every sign-in. An IdP
/// that asserts the owner's own address, unverified, gets nothing.
async fn groups_map_roles_and_teams_under_the_admin_email_binding(backend: Backend) {
    let peer = Peer::op(accounts()).await;
    let app = app_for(backend, &[&peer]).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "acme.example").await;
    let team = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/teams"),
        &json!({"name": "Staff"}),
    )
    .await;
    assert_eq!(team.status(), 201);
    let team: Value = team.json().await.unwrap();
    let team_id = team["id"].as_str().unwrap().to_owned();
    let res = app
        .send_as(
            &owner,
            reqwest::Method::PUT,
            &format!("/v1/orgs/{org}/sso/settings"),
            &json!({"sso_required": false, "admin_emails": ["Carol@acme.example"], "idp_mfa": true}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let mapping = json!({"group_roles": {"admins": "owner"}, "group_teams": {"staff": team_id}});
    let connection = connect(
        &app,
        &owner,
        &org,
        &peer,
        "acme-idp",
        "client_secret_post",
        mapping,
    )
    .await;
    register(&peer, &connection).await;

    for sub in ["bob", "carol", "alice"] {
        let (res, _) = sign_in(&app, &peer, &connection, sub).await;
        assert_eq!(res.status(), 303, "{sub}: {}", res.text().await.unwrap());
    }
    let all = members(&app, &owner, &org).await;
    assert_eq!(
        role_of(&all, "bob@acme.example").as_deref(),
        Some("member"),
        "not on the admin list"
    );
    assert_eq!(
        role_of(&all, "carol@acme.example").as_deref(),
        Some("owner"),
        "listed"
    );
    assert_eq!(
        role_of(&all, "alice@acme.example").as_deref(),
        Some("member")
    );
    let teams: Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/teams"))
        .await
        .json()
        .await
        .unwrap();
    let staff = &teams["teams"][0];
    let in_team = |email: &str| {
        let id = all.iter().find(|m| m["email"] == email).unwrap()["user_id"].clone();
        staff["members"].as_array().unwrap().contains(&id)
    };
    assert!(in_team("alice@acme.example") && in_team("carol@acme.example"));
    assert!(!in_team("bob@acme.example"));

    // The IdP claims the owner's address, unverified: refused, nothing bound or changed.
    let (res, jar) = sign_in(&app, &peer, &connection, "mallory").await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem_code(res).await, "sso_email_unverified");
    assert!(session_cookie(&jar).is_none());
    // Carol's IdP MFA counts (`idp_mfa`): her session passed a second factor.
    let (_, jar) = sign_in(&app, &peer, &connection, "carol").await;
    let me: Value = session(&app, &jar).await.json().await.unwrap();
    assert!(me["session"]["mfa_at"].is_string(), "{me}");
    app.stop().await;
}

/// Linking: an existing account is bound only when the org allows it, the email is verified
/// and in a verified domain. Outside the org's domains, only an invitation lets one in.
async fn linking_and_domains_are_refused_unless_allowed(backend: Backend) {
    let peer = Peer::op(accounts()).await;
    let app = app_for(backend, &[&peer]).await;
    let (owner, org) = with_owner(&app).await;
    let connection = connect(
        &app,
        &owner,
        &org,
        &peer,
        "acme-idp",
        "client_secret_basic",
        json!({}),
    )
    .await;
    register(&peer, &connection).await;
    let id = connection["id"].as_str().unwrap();

    // No verified domain yet: a claim alone routes nothing and admits nobody.
    let res = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/sso/domains"),
        &json!({"domain": "ACME.example."}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let (res, _) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(problem_code(res).await, "sso_email_domain");
    let discover = app
        .client
        .get(app.url("/v1/sso/discover?email=alice@acme.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(discover.status(), 404);
    let res = post(
        &app,
        &owner,
        "/v1/sso/domains/verify",
        &json!({"org": org, "domain": "acme.example"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let discover: Value = app
        .client
        .get(app.url("/v1/sso/discover?email=alice@ACME.example"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discover["connections"][0]["id"], id);
    // The console's sign-in page offers the same discovery, and sends the browser on.
    let login = app
        .client
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("action=\"/login/sso\""));
    let res = app
        .client
        .get(app.url("/login/sso?email=alice%40acme.example&next=%2Forgs%2Fx"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()[LOCATION].to_str().unwrap(),
        format!("/v1/sso/oidc/{id}/start?return_to=%2Forgs%2Fx")
    );
    let res = app
        .client
        .get(app.url("/login/sso?email=alice%40nowhere.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("No single sign-on is set up")
    );

    // Dave has a password account: not linked until the org allows it.
    app.create_user("dave@acme.example", PASSWORD).await;
    let (res, _) = sign_in(&app, &peer, &connection, "dave").await;
    assert_eq!(problem_code(res).await, "sso_link_refused");
    let res = app
        .send_as(
            &owner,
            reqwest::Method::PATCH,
            &format!("/v1/orgs/{org}/sso/connections/{id}"),
            &json!({"mapping": {"allow_linking": true}}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let (res, jar) = sign_in(&app, &peer, &connection, "dave").await;
    assert_eq!(res.status(), 303);
    assert_eq!(session(&app, &jar).await.status(), 200);

    // Eve is outside the org's domains: refused, then admitted by an invitation.
    let (res, _) = sign_in(&app, &peer, &connection, "eve").await;
    assert_eq!(problem_code(res).await, "sso_email_domain");
    let res = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/invitations"),
        &json!({"email": "eve@elsewhere.example", "role": "auditor"}),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let (res, _) = sign_in(&app, &peer, &connection, "eve").await;
    assert_eq!(res.status(), 303);
    let all = members(&app, &owner, &org).await;
    assert_eq!(
        role_of(&all, "eve@elsewhere.example").as_deref(),
        Some("auditor")
    );

    // Another org cannot claim the domain.
    let events = org_events(&app, &owner, &org).await;
    assert!(has_event(
        &events,
        "auth.login.failed",
        Some("sso_link_refused")
    ));
    assert!(has_event(&events, "sso.domain_verified", None));
    app.stop().await;
}

/// Back-channel logout: the provider ends the person's session there, and their Bulwark
/// sessions from it end; a replayed or forged logout token changes nothing.
async fn the_provider_signs_people_out_over_the_back_channel(backend: Backend) {
    let peer = Peer::op(accounts()).await;
    let app = app_for(backend, &[&peer]).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "acme.example").await;
    let connection = connect(
        &app,
        &owner,
        &org,
        &peer,
        "acme-idp",
        "client_secret_basic",
        json!({}),
    )
    .await;
    register(&peer, &connection).await;
    let (_, alice) = sign_in(&app, &peer, &connection, "alice").await;
    let (_, bob) = sign_in(&app, &peer, &connection, "bob").await;
    assert_eq!(session(&app, &alice).await.status(), 200);
    let out = peer
        .control("/_test/logout", &json!({"sub": "alice"}))
        .await;
    assert_eq!(out["backchannel"][0]["ok"], true, "{out}");
    assert_eq!(
        session(&app, &alice).await.status(),
        401,
        "alice's session ended"
    );
    assert_eq!(session(&app, &bob).await.status(), 200, "bob's did not");
    let events = org_events(&app, &owner, &org).await;
    assert!(has_event(&events, "sso.logged_out", None));
    // RP-initiated logout: Bulwark's session ends and the browser is sent to the provider.
    let csrf = bob.0.get("__Host-bulwark_csrf").cloned().unwrap();
    let res = app
        .client
        .post(app.url("/v1/sso/logout"))
        .header(COOKIE, session_cookie(&bob).unwrap())
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    let end = out["end_session_url"].as_str().unwrap();
    assert!(
        end.starts_with(&peer.issuer) && end.contains("client_id=acme-idp"),
        "{end}"
    );
    assert_eq!(session(&app, &bob).await.status(), 401);
    let mut op_jar = Jar::default();
    let at_op = get(&peer.http, &mut op_jar, end).await;
    assert!(
        at_op.status().is_success() || at_op.status().is_redirection(),
        "{}",
        at_op.status()
    );
    let (_, bob) = sign_in(&app, &peer, &connection, "bob").await;
    // A token that is not the provider's is refused.
    let res = app
        .client
        .post(
            connection["oidc"]["backchannel_logout_uri"]
                .as_str()
                .unwrap(),
        )
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body("logout_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ.")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(session(&app, &bob).await.status(), 200);
    app.stop().await;
}

/// `private_key_jwt`: Bulwark's key pair, its public key registered at the provider; a key
/// rotation at the provider is picked up (unknown `kid` → keys fetched again).
async fn private_key_jwt_and_provider_key_rotation(backend: Backend) {
    let peer = Peer::op(accounts()).await;
    let app = app_for(backend, &[&peer]).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "acme.example").await;
    let connection = connect(
        &app,
        &owner,
        &org,
        &peer,
        "acme-pkjwt",
        "private_key_jwt",
        json!({}),
    )
    .await;
    assert_eq!(connection["oidc"]["public_jwk"]["kty"], "EC");
    assert!(
        connection["oidc"]["public_jwk"].get("d").is_none(),
        "never the private part"
    );
    let jwks: Value = app
        .client
        .get(connection["oidc"]["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0], connection["oidc"]["public_jwk"]);
    register(&peer, &connection).await;
    let (res, _) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    peer.control("/_test/rotate", &json!({})).await;
    let (res, _) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(
        res.status(),
        303,
        "new keys fetched: {}",
        res.text().await.unwrap()
    );
    // A new key pair: the old public key no longer works at the provider.
    let id = connection["id"].as_str().unwrap();
    let rotated = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/sso/connections/{id}/secret"),
        &json!({}),
    )
    .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    assert_ne!(
        rotated["oidc"]["public_jwk"],
        connection["oidc"]["public_jwk"]
    );
    let (res, _) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(
        problem_code(res).await,
        "sso_code_rejected",
        "the provider has the old key"
    );
    register(&peer, &rotated).await;
    let (res, _) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(res.status(), 303);
    app.stop().await;
}

on_both_engines!(
    groups_map_roles_and_teams_under_the_admin_email_binding,
    linking_and_domains_are_refused_unless_allowed,
    the_provider_signs_people_out_over_the_back_channel,
    private_key_jwt_and_provider_key_rotation,
);

/// The forge's authorize step: it answers with a redirect to our callback at once.
async fn forged_callback(app: &TestApp, peer: &Peer, connection: &Value) -> (String, Jar) {
    let (authorize, mut jar) = start(app, connection, "/").await;
    let res = get(&peer.http, &mut jar, &authorize).await;
    assert!(
        res.status().is_redirection(),
        "forge authorize: {}",
        res.status()
    );
    (location(&res, &peer.issuer), jar)
}

async fn scenario(peer: &Peer, s: Value) {
    peer.control("/_scenario", &s).await;
}

/// One attack: the callback is refused with `code`, no session cookie is set, and the refusal
/// is audited with the code as its reason.
pub(crate) async fn refused_with(app: &TestApp, res: reqwest::Response, code: &str, case: &str) {
    let status = res.status();
    let set: Vec<String> = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let got = problem_code(res).await;
    assert_eq!((status.as_u16(), got.as_str()), (403, code), "{case}");
    assert!(
        set.iter()
            .all(|c| !c.starts_with("__Host-bulwark_session=")),
        "{case}: no session"
    );
    let _ = app;
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The OpenID Connect attack corpus, against a hostile provider signing with an independent
/// JOSE library: each forged or replayed response is refused with its code, audited, and
/// starts no session; the same provider's honest answers (RS256 and ES256) are accepted, so
/// every refusal is the check's doing.
async fn the_oidc_attack_corpus_is_refused(backend: Backend) {
    let forge = Peer::forge("corpus", "http://127.0.0.1:1/unused").await;
    let app = app_with_free_failures(backend, &forge, 1000).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "forge.example").await;
    let connection = connect(
        &app,
        &owner,
        &org,
        &forge,
        "corpus",
        "client_secret_basic",
        json!({}),
    )
    .await;
    let other = connect(
        &app,
        &owner,
        &org,
        &forge,
        "other",
        "client_secret_basic",
        json!({}),
    )
    .await;

    // Honest answers are accepted (and bind `forge-user`: the cases about email use a subject
    // not bound yet, since a bound subject signs in without its email).
    for sign in ["a", "a_es256"] {
        scenario(&forge, json!({"sign": sign})).await;
        let (callback, mut jar) = forged_callback(&app, &forge, &connection).await;
        let res = get(&app.client, &mut jar, &callback).await;
        assert_eq!(res.status(), 303, "{sign}: {}", res.text().await.unwrap());
    }

    let t = now();
    let issuer = forge.issuer.clone();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong state",
            json!({"state": "not-the-state"}),
            "sso_state_invalid",
        ),
        ("missing state", json!({"state": null}), "sso_state_invalid"),
        (
            "wrong nonce",
            json!({"claims": {"nonce": "not-the-nonce"}}),
            "sso_nonce_mismatch",
        ),
        (
            "missing nonce",
            json!({"claims": {"nonce": null}}),
            "sso_nonce_mismatch",
        ),
        (
            "signed by another key",
            json!({"sign": "b"}),
            "sso_token_signature",
        ),
        ("alg none", json!({"sign": "none"}), "sso_token_signature"),
        (
            "HS256 keyed with the public key (PEM)",
            json!({"sign": "hs256_pubkey"}),
            "sso_token_signature",
        ),
        (
            "HS256 keyed with the public key (JWK)",
            json!({"sign": "hs256_jwk"}),
            "sso_token_signature",
        ),
        (
            "wrong issuer",
            json!({"claims": {"iss": format!("{issuer}/other")}}),
            "sso_token_issuer",
        ),
        (
            "wrong audience",
            json!({"claims": {"aud": "someone-else"}}),
            "sso_token_audience",
        ),
        (
            "two audiences, no azp",
            json!({"claims": {"aud": ["corpus", "someone-else"]}}),
            "sso_token_audience",
        ),
        (
            "azp of another client",
            json!({"claims": {"azp": "someone-else"}}),
            "sso_token_audience",
        ),
        (
            "expired",
            json!({"claims": {"exp": t - 3600, "iat": t - 7200}}),
            "sso_token_expired",
        ),
        (
            "not yet valid",
            json!({"claims": {"nbf": t + 3600}}),
            "sso_token_expired",
        ),
        (
            "issued in the future",
            json!({"claims": {"iat": t + 3600, "exp": t + 7200}}),
            "sso_token_expired",
        ),
        (
            "unverified email",
            json!({"claims": {"sub": "new-1", "email_verified": false}}),
            "sso_email_unverified",
        ),
        (
            "no email",
            json!({"claims": {"sub": "new-2", "email": null}}),
            "sso_email_missing",
        ),
        (
            "email outside the org's domains",
            json!({"claims": {"sub": "new-3", "email": "user@evil.example"}}),
            "sso_email_domain",
        ),
        (
            "at_hash of another token",
            json!({"at_hash": "bad"}),
            "sso_at_hash_mismatch",
        ),
        (
            "mix-up: another issuer in the response",
            json!({"iss_param": format!("{issuer}/other")}),
            "sso_issuer_mismatch",
        ),
    ];
    for (case, s, code) in &cases {
        scenario(&forge, s.clone()).await;
        let (callback, mut jar) = forged_callback(&app, &forge, &connection).await;
        let res = get(&app.client, &mut jar, &callback).await;
        refused_with(&app, res, code, case).await;
    }
    scenario(&forge, json!({})).await;

    // No flow cookie (a response delivered to another browser: login CSRF).
    let (callback, _) = forged_callback(&app, &forge, &connection).await;
    let res = get(&app.client, &mut Jar::default(), &callback).await;
    refused_with(&app, res, "sso_state_invalid", "no flow cookie").await;

    // A replayed response: the state is single use.
    let (callback, mut jar) = forged_callback(&app, &forge, &connection).await;
    let mut copy = jar.clone();
    assert_eq!(get(&app.client, &mut jar, &callback).await.status(), 303);
    let res = get(&app.client, &mut copy, &callback).await;
    refused_with(&app, res, "sso_state_invalid", "replayed state").await;

    // A replayed code in a fresh flow: the provider refuses it.
    let old_code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (fresh, mut jar) = forged_callback(&app, &forge, &connection).await;
    let mut replay = url::Url::parse(&fresh).unwrap();
    let pairs: Vec<(String, String)> = replay
        .query_pairs()
        .map(|(k, v)| {
            let value = if k == "code" {
                old_code.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), value)
        })
        .collect();
    replay.query_pairs_mut().clear().extend_pairs(pairs);
    let res = get(&app.client, &mut jar, replay.as_str()).await;
    refused_with(&app, res, "sso_code_rejected", "replayed code").await;

    // IdP mix-up: a response for one connection delivered at another's callback.
    let (callback, mut jar) = forged_callback(&app, &forge, &connection).await;
    let a = connection["id"].as_str().unwrap();
    let b = other["id"].as_str().unwrap();
    let res = get(&app.client, &mut jar, &callback.replace(a, b)).await;
    refused_with(
        &app,
        res,
        "sso_state_invalid",
        "response at another connection's callback",
    )
    .await;

    // The provider's own error.
    let (authorize, mut jar) = start(&app, &connection, "/").await;
    let state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let err = format!(
        "{}?error=access_denied&state={state}",
        connection["oidc"]["redirect_uri"].as_str().unwrap()
    );
    let res = get(&app.client, &mut jar, &err).await;
    refused_with(&app, res, "sso_idp_error", "error response").await;

    // Open redirects are refused before anything starts.
    for bad in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "evil",
        "/café",
        "/a b",
    ] {
        let url = format!(
            "{}?return_to={}",
            connection["start_url"].as_str().unwrap(),
            urlencode(bad)
        );
        let res = app.client.get(url).send().await.unwrap();
        assert_eq!(res.status(), 422, "return_to {bad}");
    }

    // Every refusal is in the org's log with its code as the reason.
    let events = org_events(&app, &owner, &org).await;
    for (case, _, code) in &cases {
        assert!(
            has_event(&events, "auth.login.failed", Some(code)),
            "{case} audited"
        );
    }
    assert!(has_event(
        &events,
        "auth.login.failed",
        Some("sso_code_rejected")
    ));
    // The failed checks of a secret (state, token) were charged to the address.
    let rows = app
        .state
        .store
        .throttle_state(&["ip:127.0.0.1".to_owned()])
        .await
        .unwrap();
    assert!(
        rows.first().is_some_and(|r| r.failures >= 10),
        "charged: {:?}",
        rows.first().map(|r| r.failures)
    );
    app.stop().await;
}

/// Wrong states are charged to the client's address like wrong passwords: past the free
/// failures the callback is throttled before anything is checked.
async fn failed_callbacks_share_the_sign_in_throttle(backend: Backend) {
    let forge = Peer::forge("corpus", "http://127.0.0.1:1/unused").await;
    let app = app_with_free_failures(backend, &forge, 3).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "forge.example").await;
    let connection = connect(
        &app,
        &owner,
        &org,
        &forge,
        "corpus",
        "client_secret_basic",
        json!({}),
    )
    .await;
    scenario(&forge, json!({"state": "guess"})).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (callback, mut jar) = forged_callback(&app, &forge, &connection).await;
        statuses.push(
            get(&app.client, &mut jar, &callback)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..3], &[403, 403, 403]);
    assert_eq!(statuses[4], 429, "{statuses:?}");
    app.stop().await;
}

on_both_engines!(
    the_oidc_attack_corpus_is_refused,
    failed_callbacks_share_the_sign_in_throttle
);

/// The admin API: admins read, only owners write; the issuer must be an allowed provider host
/// and not a template; a domain is claimed by one org only; nothing echoes the secret.
async fn connections_are_configured_by_owners_only(backend: Backend) {
    let peer = Peer::op(accounts()).await;
    let app = app_for(backend, &[&peer]).await;
    let (owner, org) = with_owner(&app).await;
    let connection = connect(
        &app,
        &owner,
        &org,
        &peer,
        "acme-idp",
        "client_secret_basic",
        json!({}),
    )
    .await;
    let id = connection["id"].as_str().unwrap();
    let org_id: bulwark_types::OrgId = org.parse().unwrap();
    app.add_member(
        org_id,
        "admin@acme.example",
        PASSWORD,
        bulwark_types::Role::Admin,
    )
    .await;
    let admin = app.login_mfa("admin@acme.example", PASSWORD).await;
    let list = app
        .get_as(&admin, &format!("/v1/orgs/{org}/sso/connections"))
        .await;
    assert_eq!(list.status(), 200);
    let text = list.text().await.unwrap();
    assert!(text.contains(id) && !text.contains(CLIENT_SECRET));
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            format!("/v1/orgs/{org}/sso/connections"),
            json!({"name": "x", "oidc": {"issuer": peer.issuer, "client_id": "x", "client_secret": "y"}}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/orgs/{org}/sso/connections/{id}"),
            json!({"enabled": false}),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/orgs/{org}/sso/connections/{id}/secret"),
            json!({"client_secret": "z"}),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/orgs/{org}/sso/connections/{id}"),
            json!({}),
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/orgs/{org}/sso/settings"),
            json!({"sso_required": false, "admin_emails": ["admin@acme.example"], "idp_mfa": true}),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/orgs/{org}/sso/domains"),
            json!({"domain": "acme.example"}),
        ),
        (
            reqwest::Method::POST,
            "/v1/sso/domains/verify".to_owned(),
            json!({"org": org, "domain": "acme.example"}),
        ),
    ] {
        let res = app.send_as(&admin, method.clone(), &path, &body).await;
        assert_eq!(res.status(), 403, "{method} {path}");
    }
    // Nor through the vault, where the connection's secret is a credential: an admin's
    // `credentials.write` does not reach it, and an owner changes it through the connection.
    let credentials: Value = app
        .get_as(&admin, &format!("/v1/orgs/{org}/credentials"))
        .await
        .json()
        .await
        .unwrap();
    let secret = credentials["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "sso_secret")
        .expect("the connection's secret is listed")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for who in [&admin, &owner] {
        for (method, path, body) in [
            (
                reqwest::Method::PUT,
                format!("/v1/orgs/{org}/credentials/{secret}/value"),
                json!({"value": "an-admins-own-secret"}),
            ),
            (
                reqwest::Method::DELETE,
                format!("/v1/orgs/{org}/credentials/{secret}"),
                json!({}),
            ),
        ] {
            let res = app.send_as(who, method.clone(), &path, &body).await;
            assert_eq!(res.status(), 409, "{method} {path}");
            assert_eq!(problem_code(res).await, "invalid_state");
        }
    }
    // Validation: not an allowed host, a template, a missing secret, no `openid`.
    for (oidc, pointer) in [
        (
            json!({"issuer": "http://10.0.0.1/", "client_id": "x", "client_secret": "y"}),
            "/oidc/issuer",
        ),
        (
            json!({"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0", "client_id": "x", "client_secret": "y"}),
            "/oidc/issuer",
        ),
        (
            json!({"issuer": peer.issuer, "client_id": "x"}),
            "/oidc/client_secret",
        ),
        (
            json!({"issuer": peer.issuer, "client_id": "x", "client_secret": "y", "scopes": ["email"]}),
            "/oidc/scopes",
        ),
        (
            json!({"issuer": peer.issuer, "client_id": "x", "auth_method": "private_key_jwt", "client_secret": "y"}),
            "/oidc/client_secret",
        ),
    ] {
        let res = post(
            &app,
            &owner,
            &format!("/v1/orgs/{org}/sso/connections"),
            &json!({"name": "bad", "oidc": oidc}),
        )
        .await;
        assert_eq!(res.status(), 422);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["pointer"], pointer, "{body}");
    }
    let res = post(&app, &owner, &format!("/v1/orgs/{org}/sso/connections"), &json!({"name": "acme-idp", "oidc": {"issuer": peer.issuer, "client_id": "x", "client_secret": "y"}})).await;
    assert_eq!(res.status(), 409, "the name is taken");
    // A domain belongs to one org.
    assert_eq!(
        post(
            &app,
            &owner,
            &format!("/v1/orgs/{org}/sso/domains"),
            &json!({"domain": "acme.example"})
        )
        .await
        .status(),
        201
    );
    let owner_id: bulwark_types::UserId =
        owner.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let other = app.create_org("other", owner_id).await;
    let res = post(
        &app,
        &owner,
        &format!("/v1/orgs/{other}/sso/domains"),
        &json!({"domain": "Acme.Example"}),
    )
    .await;
    assert_eq!(res.status(), 409);
    // Rotation replaces the sealed secret; nothing shows it.
    let res = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/sso/connections/{id}/secret"),
        &json!({"client_secret": "rotated-secret-4b1d"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains("rotated-secret-4b1d"));
    let events = org_events(&app, &owner, &org).await;
    assert!(has_event(&events, "sso.secret_rotated", None));
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("rotated-secret-4b1d") && !all.contains(CLIENT_SECRET));
    let res = app
        .send_as(
            &owner,
            reqwest::Method::DELETE,
            &format!("/v1/orgs/{org}/sso/connections/{id}"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .client
        .get(connection["start_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.stop().await;
}

/// "SSO required": in the org, a member's password session is refused (`sso_required`) while
/// their session from the org's own provider works; the password still works for their other
/// orgs; an owner keeps a break-glass password sign-in with the second factor, recorded as
/// `sso.break_glass`.
async fn sso_required_refuses_password_sessions_in_the_org(backend: Backend) {
    let peer = Peer::op(accounts()).await;
    let app = app_for(backend, &[&peer]).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "acme.example").await;
    let org_id: bulwark_types::OrgId = org.parse().unwrap();
    let member = app
        .add_member(
            org_id,
            "member@acme.example",
            PASSWORD,
            bulwark_types::Role::Member,
        )
        .await;
    let owner_id: bulwark_types::UserId =
        owner.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let other = app.create_org("other", owner_id).await;
    let mut tx = app.state.store.org(other).await.unwrap();
    tx.add_member(member, bulwark_types::Role::Member, app.state.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let settings = json!({"sso_required": true, "admin_emails": [], "idp_mfa": false});
    let path = format!("/v1/orgs/{org}/sso/settings");
    let res = app
        .send_as(&owner, reqwest::Method::PUT, &path, &settings)
        .await;
    assert_eq!(res.status(), 409, "no connection yet");
    let connection = connect(
        &app,
        &owner,
        &org,
        &peer,
        "acme-idp",
        "client_secret_basic",
        json!({}),
    )
    .await;
    register(&peer, &connection).await;
    let res = app
        .send_as(&owner, reqwest::Method::PUT, &path, &settings)
        .await;
    assert_eq!(res.status(), 200);

    let password = app.login("member@acme.example", PASSWORD).await;
    let res = app
        .get_as(&password, &format!("/v1/orgs/{org}/members"))
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem_code(res).await, "sso_required");
    let res = app
        .get_as(&password, &format!("/v1/orgs/{other}/members"))
        .await;
    assert_eq!(res.status(), 200, "another org does not require it");

    let (res, jar) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(res.status(), 303);
    let res = app
        .client
        .get(app.url(&format!("/v1/orgs/{org}/members")))
        .header(COOKIE, session_cookie(&jar).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a session from the org's own provider");

    let owner_again = app.login_mfa(OWNER, PASSWORD).await;
    assert_eq!(
        app.get_as(&owner_again, &format!("/v1/orgs/{org}/members"))
            .await
            .status(),
        200
    );
    let events = org_events(&app, &owner_again, &org).await;
    assert!(has_event(&events, "sso.break_glass", None));
    app.stop().await;
}

on_both_engines!(
    connections_are_configured_by_owners_only,
    sso_required_refuses_password_sessions_in_the_org,
);

/// What a provider cannot do by changing claims of a person already bound: become an owner by
/// asserting a listed admin's address, redeem someone else's invitation. And a session that
/// passed Bulwark's second factor after SSO is still ended by the provider's logout.
async fn a_bound_person_cannot_change_claims_into_privileges(backend: Backend) {
    let forge = Peer::forge("corpus", "http://127.0.0.1:1/unused").await;
    let app = app_for(backend, &[&forge]).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "forge.example").await;
    own_domain(&app, &owner, &org, "acme.example").await;
    let settings =
        json!({"sso_required": false, "admin_emails": ["boss@forge.example"], "idp_mfa": true});
    let res = app
        .send_as(
            &owner,
            reqwest::Method::PUT,
            &format!("/v1/orgs/{org}/sso/settings"),
            &settings,
        )
        .await;
    assert_eq!(res.status(), 200);
    let mapping = json!({"group_roles": {"admins": "owner"}, "allow_linking": true});
    let connection = connect(
        &app,
        &owner,
        &org,
        &forge,
        "corpus",
        "client_secret_basic",
        mapping,
    )
    .await;
    let sign = |s: Value| {
        let (app, forge, connection) = (&app, &forge, &connection);
        async move {
            scenario(forge, s).await;
            let (callback, mut jar) = forged_callback(app, forge, connection).await;
            let res = get(&app.client, &mut jar, &callback).await;
            (res, jar)
        }
    };
    let (res, _) = sign(json!({})).await;
    assert_eq!(res.status(), 303);
    // The same subject now claims the listed admin's address and the owners' group.
    let (res, _) =
        sign(json!({"claims": {"email": "boss@forge.example", "groups": ["admins"]}})).await;
    assert_eq!(res.status(), 303);
    let all = members(&app, &owner, &org).await;
    assert_eq!(
        role_of(&all, "user@forge.example").as_deref(),
        Some("member"),
        "not promoted"
    );
    assert!(role_of(&all, "boss@forge.example").is_none());
    // ... or an invited address: the invitation stays open for its owner.
    let res = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/invitations"),
        &json!({"email": "guest@elsewhere.example", "role": "admin"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let (res, _) = sign(json!({"claims": {"email": "guest@elsewhere.example"}})).await;
    assert_eq!(res.status(), 303, "signs in as the bound account");
    let open: Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/invitations"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open["invitations"].as_array().unwrap().len(), 1, "{open}");

    // The owner links their account (TOTP enrolled): the provider's MFA does not replace it,
    // and the session after the second factor is still the provider's to end.
    let (res, jar) =
        sign(json!({"claims": {"sub": "owner-sub", "email": OWNER, "amr": ["mfa"]}})).await;
    assert_eq!(res.status(), 303);
    let pending = session(&app, &jar).await;
    assert_eq!(pending.status(), 401);
    assert_eq!(problem_code(pending).await, "mfa_pending");
    let code = app
        .backup_codes
        .lock()
        .unwrap()
        .get_mut(OWNER)
        .and_then(Vec::pop)
        .unwrap();
    let res = app
        .client
        .post(app.url("/v1/auth/mfa/verify"))
        .header(COOKIE, session_cookie(&jar).unwrap())
        .header("x-csrf-token", jar.0["__Host-bulwark_csrf"].clone())
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut after = jar.clone();
    after.take(&res);
    assert_eq!(session(&app, &after).await.status(), 200);
    let token = forge
        .control("/_logout_token", &json!({"claims": {"sub": "owner-sub"}}))
        .await;
    let res = app
        .client
        .post(
            connection["oidc"]["backchannel_logout_uri"]
                .as_str()
                .unwrap(),
        )
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!(
            "logout_token={}",
            token["logout_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        session(&app, &after).await.status(),
        401,
        "the rotated session ended"
    );
    app.stop().await;
}

on_both_engines!(a_bound_person_cannot_change_claims_into_privileges);

/// Starts a test peer that prints `ready <base URL>` on its first line of output: the
/// process (killed on drop), its base URL and its port.
pub async fn spawn_ready(
    mut command: tokio::process::Command,
    what: &str,
) -> (tokio::process::Child, String, u16) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} starts: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what} starts within a minute"))
        .unwrap()
        .unwrap_or_else(|| panic!("{what} prints `ready <base>`"));
    let base = ready.strip_prefix("ready ").unwrap().trim().to_owned();
    let port = url::Url::parse(&base).unwrap().port().unwrap();
    (child, base, port)
}

/// An org owning `forge.example` with a connection (`corpus`) to a hostile provider: the
/// provider, the app, the owner, the org and the connection.
async fn with_forge(backend: Backend) -> (Peer, TestApp, SignedIn, String, Value) {
    let forge = Peer::forge("corpus", "http://127.0.0.1:1/unused").await;
    let app = app_for(backend, &[&forge]).await;
    let (owner, org) = with_owner(&app).await;
    own_domain(&app, &owner, &org, "forge.example").await;
    let connection = connect(
        &app,
        &owner,
        &org,
        &forge,
        "corpus",
        "client_secret_basic",
        json!({}),
    )
    .await;
    (forge, app, owner, org, connection)
}

/// Signs `forge-user` in through the hostile provider under scenario `s`: the callback's answer
/// and the browser's jar.
async fn forged_sign_in(
    app: &TestApp,
    forge: &Peer,
    connection: &Value,
    s: Value,
) -> (reqwest::Response, Jar) {
    scenario(forge, s).await;
    let (callback, mut jar) = forged_callback(app, forge, connection).await;
    let res = get(&app.client, &mut jar, &callback).await;
    (res, jar)
}

/// The provider's tokens stay in the server (ASVS V10.1.1): after a sign-in whose access token
/// and ID token are known, neither they nor the authorization code appear in any header or
/// body the browser receives — the callback's redirect and cookies, the session, the console.
async fn provider_tokens_never_reach_the_browser(backend: Backend) {
    const ACCESS: &str = "at-canary-5d0c8e2f7a914b36";
    let (forge, app, _owner, _org, connection) = with_forge(backend).await;
    scenario(
        &forge,
        json!({"at_hash": "omit", "token_response": {"access_token": ACCESS}}),
    )
    .await;
    let (authorize, mut jar) = start(&app, &connection, "/").await;
    let res = get(&forge.http, &mut jar, &authorize).await;
    let callback = location(&res, &forge.issuer);
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let res = get(&app.client, &mut jar, &callback).await;
    assert_eq!(res.status(), 303);
    let token_request = forge
        .http
        .get(format!("{}/_last_token_request", forge.issuer))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        token_request.contains(&code),
        "the server redeemed the code"
    );
    let mut seen = String::new();
    let take = |seen: &mut String, res: &reqwest::Response| {
        for (name, value) in res.headers() {
            seen.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("")));
        }
    };
    take(&mut seen, &res);
    seen.push_str(&res.text().await.unwrap());
    for path in ["/v1/auth/session", "/v1/auth/sessions", "/", "/account"] {
        let res = app
            .client
            .get(app.url(path))
            .header(COOKIE, jar.header())
            .send()
            .await
            .unwrap();
        take(&mut seen, &res);
        seen.push_str(&res.text().await.unwrap());
    }
    assert!(seen.contains("__Host-bulwark_session="), "{seen}");
    for (what, secret) in [("access token", ACCESS), ("code", code.as_str())] {
        assert!(
            !seen.contains(secret),
            "the provider's {what} reached the browser"
        );
    }
    assert!(
        !seen.contains("eyJ"),
        "no JWT (the provider's ID token) reached the browser: {seen}"
    );
    assert!(
        jar.0
            .values()
            .all(|v| !v.contains(ACCESS) && !v.starts_with("eyJ")),
        "{:?}",
        jar.0.keys()
    );
    app.stop().await;
}

/// A provider whose discovery document names another issuer than the one configured is refused
/// (ASVS V10.5.3: the issuer is pinned), and no connection is made.
async fn a_discovery_document_naming_another_issuer_is_refused(backend: Backend) {
    let port = free_port();
    let elsewhere = format!("http://127.0.0.1:{port}/elsewhere");
    let forge = Peer::start(json!({"mode": "forge", "port": port, "issuer": elsewhere,
        "client_id": "corpus", "redirect_uri": "http://127.0.0.1:1/unused"}))
    .await;
    assert_eq!(forge.issuer, elsewhere);
    let app = app_for(backend, &[&forge]).await;
    let (owner, org) = with_owner(&app).await;
    let served_at = format!("http://127.0.0.1:{port}");
    let res = post(
        &app,
        &owner,
        &format!("/v1/orgs/{org}/sso/connections"),
        &json!({"name": "corpus", "mapping": {}, "oidc": {"issuer": served_at,
            "client_id": "corpus", "client_secret": CLIENT_SECRET,
            "auth_method": "client_secret_basic", "scopes": ["openid", "email"]}}),
    )
    .await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("the provider's discovery document is not usable"),
        "{body}"
    );
    let list: Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/sso/connections"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["connections"].as_array().map(Vec::len),
        Some(0),
        "{list}"
    );
    app.stop().await;
}

/// Back-channel logout tokens are checked before anything ends (ASVS V10.5.5): a token with a
/// nonce, without the logout event, naming neither subject nor session, of another type, an
/// ID token posted as one, one signed by a key the provider does not publish, for another
/// audience, expired, or replayed is refused, and the person's session survives each; an
/// honest token ends it.
async fn logout_tokens_are_checked_before_a_session_ends(backend: Backend) {
    let (forge, app, _owner, _org, connection) = with_forge(backend).await;
    let uri = connection["oidc"]["backchannel_logout_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let post_token = |token: String| {
        let (app, uri) = (&app, &uri);
        async move {
            app.client
                .post(uri.as_str())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(format!("logout_token={}", urlencode(&token)))
                .send()
                .await
                .unwrap()
        }
    };
    let forged = |spec: Value| {
        let forge = &forge;
        async move {
            forge.control("/_logout_token", &spec).await["logout_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (res, jar) = forged_sign_in(&app, &forge, &connection, json!({})).await;
    assert_eq!(res.status(), 303);
    assert_eq!(session(&app, &jar).await.status(), 200);
    let t = now();
    let id_token_claims = json!({"events": null, "nonce": "n-0", "email": "user@forge.example",
        "email_verified": true});
    let cases = [
        ("a nonce", json!({"claims": {"nonce": "n-1"}})),
        ("no logout event", json!({"claims": {"events": null}})),
        (
            "another event",
            json!({"claims": {"events": {"https://example.com/other": {}}}}),
        ),
        ("neither sub nor sid", json!({"claims": {"sub": null}})),
        (
            "an access token's type",
            json!({"header": {"typ": "at+jwt"}}),
        ),
        (
            "an ID token posted as one",
            json!({"claims": id_token_claims}),
        ),
        ("a key the provider does not publish", json!({"sign": "b"})),
        ("alg none", json!({"sign": "none"})),
        (
            "HMAC keyed with the public key",
            json!({"sign": "hs256_pubkey"}),
        ),
        (
            "another audience",
            json!({"claims": {"aud": "someone-else"}}),
        ),
        (
            "another issuer",
            json!({"claims": {"iss": "http://127.0.0.1:1"}}),
        ),
        (
            "expired",
            json!({"claims": {"iat": t - 900, "exp": t - 600}}),
        ),
        ("no jti", json!({"claims": {"jti": null}})),
    ];
    for (case, spec) in cases {
        let res = post_token(forged(spec).await).await;
        let status = res.status().as_u16();
        assert_eq!(
            (status, problem_code(res).await.as_str()),
            (400, "invalid_request"),
            "{case}"
        );
        assert_eq!(
            session(&app, &jar).await.status(),
            200,
            "{case}: the session survives"
        );
    }
    // An honest token ends the session; replayed after a new sign-in, it ends nothing.
    let honest = forged(json!({})).await;
    assert_eq!(post_token(honest.clone()).await.status(), 200);
    assert_eq!(session(&app, &jar).await.status(), 401);
    let (res, again) = forged_sign_in(&app, &forge, &connection, json!({})).await;
    assert_eq!(res.status(), 303);
    let replay = post_token(honest).await;
    assert_eq!(replay.status(), 400, "a replayed jti");
    assert_eq!(session(&app, &again).await.status(), 200);
    app.stop().await;
}

on_both_engines!(
    provider_tokens_never_reach_the_browser,
    a_discovery_document_naming_another_issuer_is_refused,
    logout_tokens_are_checked_before_a_session_ends,
);
