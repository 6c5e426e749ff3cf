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

const OWNER: &str = "owner@acme.example";
const PASSWORD: &str = "correct horse battery staple 42";
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
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .arg(&path)
            .env("BULWARK_TEST_NODE_MODULES", modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("the OpenID peer starts within a minute")
            .unwrap()
            .expect("the OpenID peer prints `ready <issuer>`");
        let issuer = ready.strip_prefix("ready ").unwrap().trim().to_owned();
        let port = url::Url::parse(&issuer).unwrap().port().unwrap();
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
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server whose `sso.public_url` is its own address, allowed to call `peers`.
async fn app_for(backend: Backend, peers: &[&Peer]) -> TestApp {
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
    })
    .await
}

/// An app with an owner (second factor enrolled), returned signed in with the org id.
async fn with_owner(app: &TestApp) -> (SignedIn, String) {
    let body = app.setup("Acme", OWNER, PASSWORD).await;
    let org = body["org"]["id"].as_str().unwrap().to_owned();
    let owner = app.login_mfa(OWNER, PASSWORD).await;
    (owner, org)
}

async fn post(app: &TestApp, who: &SignedIn, path: &str, body: &Value) -> reqwest::Response {
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
    });
    if method == "private_key_jwt" {
        client["jwks"] = json!({"keys": [o["public_jwk"]]});
    } else {
        client["client_secret"] = json!(CLIENT_SECRET);
    }
    peer.control("/_test/clients", &client).await;
}

/// Claims `domain` for `org` and verifies it (the owner owns the operator org too).
async fn own_domain(app: &TestApp, owner: &SignedIn, org: &str, domain: &str) {
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
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, res: &reqwest::Response) {
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

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn location(res: &reqwest::Response, base: &str) -> String {
    let raw = res
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {} answer", res.status()))
        .to_str()
        .unwrap();
    url::Url::parse(base).unwrap().join(raw).unwrap().to_string()
}

async fn get(client: &reqwest::Client, jar: &mut Jar, url: &str) -> reqwest::Response {
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

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Logs `sub` in at the real provider, returning the callback URL it sends the browser to.
async fn at_provider(peer: &Peer, jar: &mut Jar, authorize: &str, sub: &str) -> String {
    let res = get(&peer.http, jar, authorize).await;
    assert_eq!(res.status(), 303, "authorize: {}", res.text().await.unwrap());
    let interaction = location(&res, &peer.issuer);
    let res = peer
        .http
        .post(format!("{interaction}/login"))
        .header(COOKIE, jar.header())
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
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
async fn sign_in(app: &TestApp, peer: &Peer, connection: &Value, sub: &str) -> (reqwest::Response, Jar) {
    let (authorize, mut jar) = start(app, connection, "/welcome").await;
    let callback = at_provider(peer, &mut jar, &authorize, sub).await;
    let res = get(&app.client, &mut jar, &callback).await;
    (res, jar)
}

fn session_cookie(jar: &Jar) -> Option<String> {
    jar.0
        .get("__Host-bulwark_session")
        .map(|v| format!("__Host-bulwark_session={v}"))
}

async fn session(app: &TestApp, jar: &Jar) -> reqwest::Response {
    app.client
        .get(app.url("/v1/auth/session"))
        .header(COOKIE, session_cookie(jar).unwrap_or_default())
        .send()
        .await
        .unwrap()
}

async fn problem_code(res: reqwest::Response) -> String {
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

async fn org_events(app: &TestApp, who: &SignedIn, org: &str) -> Vec<Value> {
    let res = app
        .get_as(who, &format!("/v1/orgs/{org}/audit/events?limit=200"))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["events"].as_array().cloned().unwrap_or_default()
}

fn has_event(events: &[Value], kind: &str, reason: Option<&str>) -> bool {
    events.iter().any(|e| {
        e["action"] == kind
            && reason.is_none_or(|r| e["outcome"]["reason"].as_str() == Some(r))
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
    let connection = connect(&app, &owner, &org, &peer, "acme-idp", "client_secret_basic", json!({})).await;
    register(&peer, &connection).await;

    let (res, jar) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(res.headers()[LOCATION], "/welcome");
    assert!(!jar.0.contains_key("__Host-bulwark_sso"), "the flow cookie is dropped");
    let me = session(&app, &jar).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user"]["email"], "alice@acme.example");
    let first_id = me["user"]["id"].clone();

    let (res, jar) = sign_in(&app, &peer, &connection, "alice").await;
    assert_eq!(res.status(), 303);
    let me: Value = session(&app, &jar).await.json().await.unwrap();
    assert_eq!(me["user"]["id"], first_id, "the same account, found by its binding");

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
    assert!(events.iter().any(|e| e["action"] == "auth.login.succeeded"
        && e["data"]["method"] == "oidc"));
    assert!(!serde_json::to_string(&events).unwrap().contains(CLIENT_SECRET));
    app.stop().await;
}

on_both_engines!(a_person_signs_in_through_the_org_provider);
