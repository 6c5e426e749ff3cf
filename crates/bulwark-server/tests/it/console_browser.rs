//! The console in a real browser: headless Chromium through chromedriver (`bulwark_testkit::browser`).
//!
//! - `end_to_end` (both engines): setup, sign-in, TOTP enrolment, an invitation accepted in a
//!   second browser, an API key used and revoked, the audit log with the browser's own proof
//!   check, the export verified offline by the `bulwark` binary, a webhook secret rotated.
//! - `cross_origin_forms_change_nothing`: an attacker's page on another origin (same-site and
//!   cross-site) posts to every console form while the victim is signed in; nothing changes.
//! - `stored_markup_stays_text`: markup typed into every field a user controls is shown as text
//!   on every page that shows it; no script runs.
//! - `the_console_cannot_be_framed`: another origin's frame gets no console.
//! - `every_page_passes_axe_in_both_schemes`: axe-core (WCAG 2.2 AA rule set) on every page in
//!   light and dark, with screenshots at desktop and phone width.
//!
//! Every page visited is also watched for CSP violations and script errors as they happen
//! (`Browser::trouble`; `stored_markup_stays_text` first shows that the watch sees what the CSP
//! blocks), and each test ends with no CSP report received by the server. The watch is what
//! catches a violation here: with `report-to` in the policy, Chromium sends its reports through
//! the Reporting API rather than to `report-uri`, and sent none to this plain-HTTP loopback
//! server within two minutes when tried, so the server's count alone would prove nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_server::config::Config;
use bulwark_testkit::browser::{Browser, Driver, Scheme};
use bulwark_testkit::receiver::Receiver;
use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app_with, totp_now};
use bulwark_types::{OrgId, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::invitations::{mails, token_in};

const PASSWORD: &str = "a long enough password";
const NEW_PASSWORD: &str = "another long enough password";
const OWNER: &str = "owner@acme.test";
/// An address the server accepts and HTML's `type=email` would not (a non-ASCII local part).
const INVITEE: &str = "jürgen@acme.test";

/// Markup that runs script if a page ever emits it unescaped (in text, in an attribute, or
/// after breaking out of a `<textarea>`).
const XSS: &str =
    r#""></textarea><script>window.__xss=1</script><img src=x onerror="window.__xss=1">"#;
/// The same for places that allow no white space (an email's local part, a URL).
const XSS_TIGHT: &str = r#""><img/src=x/onerror=window.__xss=1>"#;

/// The axe-core rule tags every page must pass.
const AXE_TAGS: [&str; 5] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

/// Fast checkpoints (so an event's proof is there at once) and webhooks to the local receiver.
fn config(rx: &Receiver) -> impl FnOnce(&mut Config) + use<> {
    let allowed = vec![rx.addr.to_string()];
    move |c| {
        c.audit.checkpoint_every_events = 1;
        c.audit.checkpoint_every_secs = 1;
        c.egress.allow_loopback = allowed;
        c.egress.allow_http = true;
        c.webhooks.retry_schedule_ms = vec![100, 200];
        c.webhooks.retry_jitter = 0.0;
        c.webhooks.timeout_ms = 1000;
        c.webhooks.poll_interval_ms = 20;
    }
}

// ---------------------------------------------------------------------------------------------
// Steps a person takes.

/// Asserts the page saw no CSP violation, no script error and ran no injected script.
async fn clean(b: &Browser) {
    let trouble = b.trouble().await;
    let path = b.path().await;
    assert!(trouble.is_empty(), "{path}: {trouble:#?}");
    let xss = b
        .script("return typeof window.__xss === 'undefined';", vec![])
        .await;
    assert_eq!(xss, Value::Bool(true), "{path}: injected markup ran");
}

/// ASVS V14.3.3: after a walk through the console, the browser holds no web storage of ours
/// (local, session, IndexedDB, Cache Storage) and its cookie jar holds only the session cookie
/// and the CSRF token, both `__Host-` (host-only, `Secure`, path `/`), the session `HttpOnly`.
async fn browser_holds_only_the_session(b: &Browser) {
    let stored = b
        .script(
            "return Promise.all([
               indexedDB.databases ? indexedDB.databases() : Promise.resolve([]),
               window.caches ? caches.keys() : Promise.resolve([]),
             ]).then(([dbs, kept]) => ({
               local: localStorage.length, session: sessionStorage.length,
               indexed: dbs.length, caches: kept.length,
             }));",
            vec![],
        )
        .await;
    assert_eq!(
        stored,
        json!({"local": 0, "session": 0, "indexed": 0, "caches": 0}),
        "web storage"
    );
    let jar = b.cdp("Network.getAllCookies", json!({})).await;
    let mut names: Vec<&str> = jar["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["__Host-bulwark_csrf", "__Host-bulwark_session"],
        "{jar}"
    );
    for cookie in jar["cookies"].as_array().unwrap() {
        assert_eq!(cookie["path"], "/", "{cookie}");
        assert_eq!(
            cookie["httpOnly"],
            cookie["name"] == "__Host-bulwark_session",
            "{cookie}"
        );
    }
}

/// Opens `path` and checks it is clean.
async fn visit(b: &Browser, path: &str) {
    b.goto(path).await;
    clean(b).await;
}

async fn h1(b: &Browser) -> String {
    b.text("h1").await
}

/// Signs in through `/login`, with `code` at `/login/mfa` when the account has a second factor.
async fn sign_in(b: &Browser, email: &str, password: &str, code: Option<&str>) {
    b.goto("/login").await;
    b.fill("#email", email).await;
    b.fill("#password", password).await;
    b.submit("form[action='/login']").await;
    if let Some(code) = code {
        assert_eq!(h1(b).await, "Second factor", "{}", b.text("main").await);
        b.fill("#code", code).await;
        b.submit("form[action='/login/mfa']").await;
    }
    clean(b).await;
}

/// Setup through `/setup` with the app's setup token.
async fn setup(b: &Browser, app: &TestApp, org_name: &str) {
    b.goto("/setup").await;
    b.fill(
        "#setup-token",
        app.setup_token.as_deref().expect("setup pending"),
    )
    .await;
    b.fill("#org-name", org_name).await;
    b.fill("#email", OWNER).await;
    b.fill("#password", PASSWORD).await;
    b.submit("form[action='/setup']").await;
    assert_eq!(b.path().await, "/login?done=setup_done");
    assert_eq!(
        b.text("p.notice").await,
        "Setup is complete. Sign in as the owner."
    );
    clean(b).await;
}

/// The org of the page the browser is on (`/orgs/org_…`).
async fn org_of(b: &Browser) -> OrgId {
    let path = b.path().await;
    path.strip_prefix("/orgs/")
        .and_then(|rest| rest.split(['/', '?']).next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not an org page: {path}"))
}

/// Enrols an authenticator on `/account` as a person would: the secret read from the page, the
/// code computed from it. The backup codes shown.
async fn enrol_totp(b: &Browser, password: &str) -> (bulwark_crypto::TotpSecret, Vec<String>) {
    visit(b, "/account").await;
    b.fill("#mfa-password", password).await;
    b.submit("form[action='/account/mfa/start']").await;
    assert_eq!(h1(b).await, "Set up an authenticator");
    clean(b).await;
    let qr = b.attr("p.qr img", "src").await.unwrap_or_default();
    assert!(qr.starts_with("data:image/svg+xml;base64,"), "{qr}");
    let secret = bulwark_crypto::TotpSecret::from_base32(&b.text("#totp-secret").await)
        .expect("the page shows a base32 secret");
    b.fill("#confirm-code", &totp_now(&secret, 0)).await;
    b.submit("form[action='/account/mfa/confirm']").await;
    assert_eq!(h1(b).await, "Your backup codes");
    clean(b).await;
    let codes: Vec<String> = b
        .text("#backup-codes")
        .await
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(codes.len() >= 8, "{codes:?}");
    (secret, codes)
}

/// The value of the fact `name` of a page's `dl.facts`.
async fn fact(b: &Browser, name: &str) -> String {
    b.script(
        "const dt = [...document.querySelectorAll('dl.facts dt')].find(d => d.textContent === arguments[0]);\
         return dt ? dt.nextElementSibling.textContent : null;",
        vec![json!(name)],
    )
    .await
    .as_str()
    .unwrap_or_else(|| panic!("no fact {name}"))
    .to_owned()
}

/// Opens a `<details>` holding the form `form_css`.
async fn open(b: &Browser, form_css: &str) {
    let summary = format!("details:has({form_css}) > summary");
    let is_open = b
        .script(
            "return document.querySelector(arguments[0]).parentElement.open;",
            vec![json!(summary)],
        )
        .await;
    if is_open != Value::Bool(true) {
        b.click(&summary).await;
    }
}

/// The href of the audit row whose action is `action` (the first one).
async fn audit_link(b: &Browser, action: &str) -> Option<String> {
    b.script(
        "const row = [...document.querySelectorAll('#events tbody tr')]\
           .find(r => r.querySelector('code') && r.querySelector('code').textContent === arguments[0]);\
         return row ? row.querySelector('a').getAttribute('href') : null;",
        vec![json!(action)],
    )
    .await
    .as_str()
    .map(str::to_owned)
}

/// Opens an audit event and waits for the browser's own proof check to pass.
async fn open_verified_event(b: &Browser, href: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        visit(b, href).await;
        if b.exists("#proof").await {
            break;
        }
        assert!(Instant::now() < deadline, "{href}: no checkpoint covers it");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    b.wait_until(
        "return document.getElementById('browser-check').hasAttribute('data-result');",
        "the browser's inclusion proof check",
    )
    .await;
    assert_eq!(
        b.attr("#browser-check", "data-result").await.as_deref(),
        Some("verified"),
        "{}",
        b.text("#browser-check").await
    );
    clean(b).await;
}

/// The `bulwark` binary built beside this test binary (`<target>/<profile>/bulwark`).
fn bulwark_cli() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("bulwark"))
        .unwrap();
    assert!(
        bin.is_file(),
        "the `bulwark` binary is not built at {}: `cargo build -p bulwark-cli` (a whole \
         `scripts/test` run builds it)",
        bin.display()
    );
    bin
}

/// Calls `path` with the API key `key`.
async fn bearer(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header(reqwest::header::AUTHORIZATION, format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
}

/// No CSP report reached the server (after a moment for the browser to send any).
async fn no_csp_reports(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.state.csp_reports.count(),
        0,
        "CSP reports: {:#?}",
        app.state.csp_reports.latest()
    );
}

// ---------------------------------------------------------------------------------------------
// a. The whole path of an operator, on both engines.

async fn end_to_end(backend: Backend) {
    let started = Instant::now();
    let rx = Receiver::start().await;
    let app = spawn_app_with(backend, config(&rx)).await;
    let driver = Driver::start().await;
    let owner = driver.session(&app.base).await;

    setup(&owner, &app, "Acme").await;
    sign_in(&owner, OWNER, PASSWORD, None).await;
    // An owner without a second factor is refused the org, and told where to enrol.
    let org = org_of(&owner).await;
    assert!(owner.text("main").await.contains("mfa_enrollment_required"));
    owner
        .navigating(async { owner.click("main a[href='/account']").await })
        .await;
    assert_eq!(owner.path().await, "/account");
    enrol_totp(&owner, PASSWORD).await;
    visit(&owner, &format!("/orgs/{org}")).await;
    assert_eq!(h1(&owner).await, "Overview");

    // Invite a member; the invitee accepts in a browser of their own.
    visit(&owner, &format!("/orgs/{org}/members")).await;
    let invite = "form[action$='/members/invite']";
    owner
        .fill(&format!("{invite} input[name=email]"), INVITEE)
        .await;
    owner
        .select(&format!("{invite} select[name=role]"), "member")
        .await;
    owner.submit(invite).await;
    assert_eq!(owner.text("p.notice").await, "Invitation sent.");
    assert!(owner.text("main").await.contains(INVITEE));
    clean(&owner).await;
    let token = token_in(&mails(&app, 1).await[0], "bwinvite_");

    let invitee = driver.session(&app.base).await;
    visit(&invitee, "/invite").await;
    invitee.fill("#token", &token).await;
    invitee.fill("#password", NEW_PASSWORD).await;
    invitee.submit("form[action='/invite']").await;
    assert_eq!(invitee.path().await, "/login?done=invitation_accepted");
    sign_in(&invitee, INVITEE, NEW_PASSWORD, None).await;
    assert_eq!(invitee.path().await, format!("/orgs/{org}"));
    assert_eq!(h1(&invitee).await, "Overview");
    assert!(invitee.text("header").await.contains("(member)"));
    invitee.close().await;

    // An API key, read from the page once and used as a machine would.
    visit(&owner, &format!("/orgs/{org}/keys")).await;
    open(&owner, "form[action$='/keys']").await;
    owner.fill("#key-name", "deploy bot").await;
    owner
        .click("input[name=scopes][value='members:read']")
        .await;
    owner.submit("form[action$='/keys']").await;
    assert_eq!(h1(&owner).await, "API key created");
    clean(&owner).await;
    let key = owner.text("#secret-value").await;
    assert!(key.starts_with("bwk_"), "{key}");
    let key_id = fact(&owner, "Key id").await;
    assert_eq!(fact(&owner, "Name").await, "deploy bot");
    assert_eq!(fact(&owner, "Scopes").await, "members:read");
    assert_eq!(fact(&owner, "Expires").await, "never");
    let res = bearer(&app, &key, &format!("/v1/orgs/{org}/members")).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(INVITEE));

    // Both events in the log; the key's event proven in the browser.
    visit(&owner, &format!("/orgs/{org}/audit")).await;
    assert!(audit_link(&owner, "member.added").await.is_some());
    let created = audit_link(&owner, "apikey.created")
        .await
        .expect("apikey.created is listed");
    let verifier = owner.text("#verifier-key").await;
    assert_eq!(
        verifier,
        app.state.checkpointer.verifier_key(),
        "the page shows the deployment's verifier key"
    );
    open_verified_event(&owner, &created).await;
    assert!(owner.text("pre").await.contains(&key_id));

    // The export, fetched with the browser's session, verifies offline against that key.
    let session = owner
        .client()
        .get_named_cookie("__Host-bulwark_session")
        .await
        .expect("the browser holds the session cookie");
    let res = app
        .client
        .get(app.url(&format!("/v1/orgs/{org}/audit/export?format=jsonl")))
        .header(
            reqwest::header::COOKIE,
            format!("__Host-bulwark_session={}", session.value()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let export = app.data_dir.path().join("export.jsonl");
    std::fs::write(&export, res.bytes().await.unwrap()).unwrap();
    let out = std::process::Command::new(bulwark_cli())
        .arg("audit")
        .arg("verify")
        .arg(&export)
        .args(["--key", &verifier])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bulwark audit verify: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A webhook endpoint; its secret shown once, then rotated (the new one shown once).
    visit(&owner, &format!("/orgs/{org}/webhooks")).await;
    open(&owner, "form[action$='/webhooks']").await;
    owner.fill("#ep-url", &rx.url("/ok-console")).await;
    owner.fill("#ep-desc", "Deploy notifications").await;
    owner.submit("form[action$='/webhooks']").await;
    assert_eq!(h1(&owner).await, "Endpoint created");
    clean(&owner).await;
    let first = owner.text("#secret-value").await;
    let endpoint = owner
        .attr("main p a[href*='/webhooks/']", "href")
        .await
        .expect("a link to the endpoint");
    visit(&owner, &endpoint).await;
    open(&owner, "form[action$='/rotate']").await;
    owner.submit("form[action$='/rotate']").await;
    assert_eq!(h1(&owner).await, "Signing secret rotated");
    clean(&owner).await;
    let second = owner.text("#secret-value").await;
    assert!(!first.is_empty() && first != second);
    visit(&owner, &endpoint).await;
    let source = owner.client().source().await.unwrap();
    assert!(!source.contains(&first) && !source.contains(&second));

    // Revoking the key: the API refuses it from then on.
    visit(&owner, &format!("/orgs/{org}/keys")).await;
    let revoke = format!("form[action$='/keys/{key_id}/revoke']");
    open(&owner, &revoke).await;
    owner.click(&format!("{revoke} input[name=confirm]")).await;
    owner.submit(&revoke).await;
    assert_eq!(
        owner.text("p.notice").await,
        "Key revoked. Calls with it now fail."
    );
    clean(&owner).await;
    let res = bearer(&app, &key, &format!("/v1/orgs/{org}/members")).await;
    assert_eq!(res.status(), 401);
    // The endpoint got the events since it was added (signed deliveries to the receiver).
    rx.wait_for("/ok-console", 1, Duration::from_secs(15)).await;
    browser_holds_only_the_session(&owner).await;

    owner.close().await;
    no_csp_reports(&app).await;
    eprintln!("end_to_end ({backend:?}): {:?}", started.elapsed());
}

on_both_engines!(end_to_end);

// ---------------------------------------------------------------------------------------------
// b. Attacks.

/// An attacker's web server on another loopback port: serves whatever page it is given.
struct Attacker {
    port: u16,
    page: Arc<Mutex<String>>,
}

impl Attacker {
    async fn start() -> Self {
        let page: Arc<Mutex<String>> = Arc::default();
        let served = Arc::clone(&page);
        let app = axum::Router::new().fallback(move || {
            let html = served.lock().unwrap().clone();
            async move { axum::response::Html(html) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { port, page }
    }

    fn serve(&self, html: String) {
        *self.page.lock().unwrap() = html;
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A page that posts a form to `action` as soon as it loads (`no_referrer`: under
/// `Referrer-Policy: no-referrer`, so that the browser sends `Origin: null`).
fn auto_post(action: &str, fields: &[(&str, String)], no_referrer: bool) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=hidden name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    format!(
        "<!doctype html><title>Win a prize</title>{}<form method=post action=\"{}\">{inputs}</form>\
         <script>document.forms[0].submit()</script>",
        if no_referrer {
            "<meta name=referrer content=no-referrer>"
        } else {
            ""
        },
        escape(action)
    )
}

/// Everything an attack could change, as the owner's API session sees it (volatile fields out).
async fn snapshot(app: &TestApp, owner: &SignedIn, org: OrgId) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "members",
        "invitations",
        "teams",
        "keys",
        "authz/policies",
        "credentials",
        "webhooks/endpoints",
        "policy",
    ] {
        let res = app.get_as(owner, &format!("/v1/orgs/{org}/{path}")).await;
        assert_eq!(res.status(), 200, "{path}");
        let mut v: Value = res.json().await.unwrap();
        strip(&mut v, &["last_used_at", "last_seen_at"]);
        out.insert(path.to_owned(), v);
    }
    let sessions: Value = app
        .get_as(owner, "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    let mut ids = Vec::new();
    session_ids(&sessions, &mut ids);
    ids.sort();
    out.insert("sessions".into(), json!(ids));
    let license = app.get_as(owner, "/v1/license").await;
    assert_eq!(license.status(), 200);
    let mut v: Value = license.json().await.unwrap();
    strip(&mut v, &["judged_at"]);
    out.insert("license".into(), v);
    Value::Object(out)
}

fn session_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with("ses_") => out.push(s.clone()),
        Value::Object(m) => m.values().for_each(|x| session_ids(x, out)),
        Value::Array(a) => a.iter().for_each(|x| session_ids(x, out)),
        _ => {}
    }
}

fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !keys.contains(&k.as_str()));
            m.values_mut().for_each(|x| strip(x, keys));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, keys)),
        _ => {}
    }
}

/// Successful events in `org`'s log.
async fn successes(app: &TestApp, org: OrgId) -> usize {
    let mut read = app.state.store.org_read(org).await.unwrap();
    read.audit_events(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|row| row.body)
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .filter(|e| e["outcome"]["result"] == "success")
        .count()
}

async fn api_ok(app: &TestApp, who: &SignedIn, method: Method, path: &str, body: Value) -> Value {
    let res = app.send_as(who, method, path, &body).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// An org with one of everything, made through the API; the owner's API session and the
/// backup codes to sign in with in a browser.
struct Furnished {
    org: OrgId,
    owner: SignedIn,
    owner_id: String,
    member: bulwark_types::UserId,
    team: String,
    key: String,
    invitation: String,
    credential: String,
    endpoint: String,
}

async fn furnish(app: &TestApp, rx: &Receiver) -> Furnished {
    let setup = app.setup("Acme", OWNER, PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa(OWNER, PASSWORD).await;
    let owner_id = owner.body["user"]["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    let member = app
        .add_member(org, "ada@acme.test", PASSWORD, Role::Member)
        .await;
    app.add_member(org, "grace@acme.test", PASSWORD, Role::Admin)
        .await;
    let v = |path: &str| format!("/v1/orgs/{org}/{path}");
    let team = api_ok(
        app,
        &owner,
        Method::POST,
        &v("teams"),
        json!({"name": "Platform"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api_ok(
        app,
        &owner,
        Method::PUT,
        &v(&format!("teams/{team}/members/{member}")),
        json!({}),
    )
    .await;
    let key = api_ok(
        app,
        &owner,
        Method::POST,
        &v("keys"),
        json!({"name": "ci", "scopes": ["members:read", "audit:read"]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let invitation = api_ok(
        app,
        &owner,
        Method::POST,
        &v("invitations"),
        json!({"email": "later@acme.test", "role": "auditor"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let credential = api_ok(
        app,
        &owner,
        Method::POST,
        &v("credentials"),
        json!({"name": "tracker token", "kind": "bearer_token", "value": "s3cret-value-x",
               "destinations": ["https://tracker.acme.test/api/"]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint = api_ok(
        app,
        &owner,
        Method::POST,
        &v("webhooks/endpoints"),
        json!({"url": rx.url("/ok-hooks"), "description": "billing", "event_types": ["team.*"]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api_ok(
        app,
        &owner,
        Method::PUT,
        &v("authz/policies"),
        json!({"policies": "@id(\"org.admins-do-not-invite\")\nforbid(principal in Bulwark::Role::\"admin\", action == Bulwark::Action::\"invitations.create\", resource);\n"}),
    )
    .await;
    Furnished {
        org,
        owner,
        owner_id,
        member,
        team,
        key,
        invitation,
        credential,
        endpoint,
    }
}

/// One of the owner's backup codes (kept by `login_mfa`).
fn backup_code(app: &TestApp) -> String {
    app.backup_codes
        .lock()
        .unwrap()
        .get_mut(OWNER)
        .and_then(Vec::pop)
        .expect("a backup code left")
}

/// (i) Pages on another origin post to every console form while the victim is signed in:
/// every one is refused (the session's origin checks and CSRF token), and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_forms_change_nothing() {
    let started = Instant::now();
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, config(&rx)).await;
    let f = furnish(&app, &rx).await;
    let org = f.org;
    app.create_user("mallory@evil.test", PASSWORD).await;
    let driver = Driver::start().await;
    let victim = driver.session(&app.base).await;
    sign_in(&victim, OWNER, PASSWORD, Some(&backup_code(&app))).await;
    visit(&victim, &format!("/orgs/{org}")).await;
    assert_eq!(h1(&victim).await, "Overview");
    let csrf = victim
        .attr("form[action='/logout'] input[name=_csrf]", "value")
        .await
        .unwrap();

    let before = snapshot(&app, &f.owner, org).await;
    let events_before = successes(&app, org).await;
    let mails_before = std::fs::read_dir(crate::invitations::outbox(&app))
        .map(|d| d.count())
        .unwrap_or(0);

    let o = |rest: &str| format!("/orgs/{org}{rest}");
    let s = |v: &str| v.to_owned();
    let now = time::OffsetDateTime::now_utc();
    let local = |t: time::OffsetDateTime| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    };
    let (member, team, key, inv) = (&f.member, &f.team, &f.key, &f.invitation);
    let (cred, ep) = (&f.credential, &f.endpoint);
    let forms: Vec<(String, Vec<(&str, String)>)> = vec![
        (s("/logout"), vec![]),
        (
            s("/login"),
            vec![("email", s("mallory@evil.test")), ("password", s(PASSWORD))],
        ),
        (s("/login/mfa"), vec![("code", s("123456"))]),
        (
            s("/setup"),
            vec![
                ("setup_token", s("x")),
                ("org_name", s("Evil")),
                ("email", s("mallory@evil.test")),
                ("password", s(PASSWORD)),
            ],
        ),
        (s("/reset"), vec![("email", s(OWNER))]),
        (
            s("/reset/new"),
            vec![("token", s("bwreset_x")), ("new_password", s(NEW_PASSWORD))],
        ),
        (
            s("/invite"),
            vec![("token", s("bwinvite_x")), ("password", s(NEW_PASSWORD))],
        ),
        (s("/verify-email"), vec![("token", s("bwverify_x"))]),
        (
            o("/members/invite"),
            vec![("email", s("mallory@evil.test")), ("role", s("owner"))],
        ),
        (
            o(&format!("/members/{member}/role")),
            vec![("role", s("owner"))],
        ),
        (
            o(&format!("/members/{member}/remove")),
            vec![("confirm", s("yes"))],
        ),
        (o(&format!("/invitations/{inv}/revoke")), vec![]),
        (o("/teams"), vec![("name", s("Evil team"))]),
        (
            o(&format!("/teams/{team}/delete")),
            vec![("confirm", s("yes"))],
        ),
        (
            o(&format!("/teams/{team}/members")),
            vec![("op", s("remove")), ("user", member.to_string())],
        ),
        (o("/policies"), vec![("policies", s(""))]),
        (
            o("/keys"),
            vec![("name", s("evil")), ("scopes", s("members:read"))],
        ),
        (
            o(&format!("/keys/{key}/rotate")),
            vec![("overlap_secs", s("0"))],
        ),
        (
            o(&format!("/keys/{key}/revoke")),
            vec![("confirm", s("yes"))],
        ),
        (
            o("/vault"),
            vec![
                ("name", s("evil")),
                ("kind", s("generic")),
                ("value", s("x")),
                ("destinations", s("https://evil.test/")),
            ],
        ),
        (
            o(&format!("/vault/{cred}/value")),
            vec![("value", s("evil"))],
        ),
        (
            o(&format!("/vault/{cred}/delete")),
            vec![("confirm", s("yes"))],
        ),
        (o("/webhooks"), vec![("url", rx.url("/ok-evil"))]),
        (
            o(&format!("/webhooks/{ep}")),
            vec![("url", rx.url("/ok-evil")), ("enabled_field", s("yes"))],
        ),
        (
            o(&format!("/webhooks/{ep}/rotate")),
            vec![("overlap_secs", s("0"))],
        ),
        (
            o(&format!("/webhooks/{ep}/replay")),
            vec![
                ("since", local(now - time::Duration::hours(1))),
                ("until", local(now)),
            ],
        ),
        (
            o(&format!("/webhooks/{ep}/delete")),
            vec![("confirm", s("yes"))],
        ),
        (s("/license"), vec![("license", s("{}"))]),
        (
            s("/account/password"),
            vec![
                ("current_password", s(PASSWORD)),
                ("new_password", s(NEW_PASSWORD)),
            ],
        ),
        (s("/account/mfa/start"), vec![("password", s(PASSWORD))]),
        (
            format!(
                "/account/sessions/{}/revoke",
                f.owner.body["session"]["id"].as_str().unwrap()
            ),
            vec![("password", s(PASSWORD))],
        ),
        (
            s("/account/sessions/revoke-others"),
            vec![("password", s(PASSWORD))],
        ),
        (s("/account/mfa/backup-codes"), vec![("code", s("123456"))]),
        (
            s("/account/mfa/remove"),
            vec![("password", s(PASSWORD)), ("confirm", s("yes"))],
        ),
    ];

    let attacker = Attacker::start().await;
    // Same site, other origin: the browser sends the cookies (SameSite=Lax lets a same-site
    // post carry them), and the victim's real CSRF token is in the form, as if it had leaked;
    // only the origin check stands, and it refuses. Another site: SameSite=Lax keeps the cookies
    // home, so there is no session to act in (a form is kept for the victim to look at and send
    // themself, never sent by itself), and the session-less forms refuse the origin.
    let same_site = format!("http://127.0.0.1:{}", attacker.port);
    let other_site = format!("http://localhost:{}", attacker.port);
    for origin in [&same_site, &other_site] {
        for (i, (action, fields)) in forms.iter().enumerate() {
            let mut fields = fields.clone();
            fields.push(("_csrf", csrf.clone()));
            // Every other page hides its origin (`Origin: null`), as the console's own pages
            // do: the browser's `Sec-Fetch-Site` still says where it came from.
            attacker.serve(auto_post(&app.url(action), &fields, i % 2 == 1));
            victim.goto(&format!("{origin}/prize")).await;
            victim
                .wait_until(
                    &format!(
                        "return location.origin === '{}' && document.readyState === 'complete';",
                        app.base
                    ),
                    &format!("the attack on {action} from {origin}"),
                )
                .await;
            let text = victim.text("main").await;
            let refused = if origin == &same_site {
                text.contains("cross_site_request")
            } else {
                ["cross_site_request", "unauthenticated"]
                    .iter()
                    .any(|c| text.contains(c))
                    || text.contains("Your session ended before the form was sent")
            };
            assert!(refused, "{action} from {origin}: {text}");
            clean(&victim).await;
        }
    }

    // Nothing changed; the victim is still signed in as themself, with their password and
    // second factor; no email went out.
    assert_eq!(snapshot(&app, &f.owner, org).await, before);
    assert_eq!(successes(&app, org).await, events_before);
    visit(&victim, "/account").await;
    assert_eq!(h1(&victim).await, "My account");
    assert!(victim.text("header").await.contains(OWNER));
    assert!(
        victim
            .text("main")
            .await
            .contains("An authenticator app is enrolled")
    );
    let mails_after = std::fs::read_dir(crate::invitations::outbox(&app))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(mails_after, mails_before, "no email sent");
    app.login(OWNER, PASSWORD).await;
    assert!(rx.hits("/ok-evil").is_empty());

    victim.close().await;
    no_csp_reports(&app).await;
    eprintln!("cross_origin_forms_change_nothing: {:?}", started.elapsed());
}

/// (ii) Markup in every field a user controls is shown as text wherever it appears: no script
/// runs, no CSP violation, on every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_markup_stays_text() {
    let started = Instant::now();
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, config(&rx)).await;
    let driver = Driver::start().await;
    let b = driver.session(&app.base).await;

    // The org's name, at setup.
    setup(&b, &app, XSS).await;
    sign_in(&b, OWNER, PASSWORD, None).await;
    let org = org_of(&b).await;
    enrol_totp(&b, PASSWORD).await;
    let o = |rest: &str| format!("/orgs/{org}{rest}");

    // First, that the watch sees what the CSP blocks: script and a style attribute put into a
    // console page are refused, and noted at once.
    visit(&b, &o("")).await;
    b.script(
        "const s = document.createElement('script'); s.textContent = 'window.__xss = 1';\
         document.head.appendChild(s);\
         const d = document.createElement('div'); d.setAttribute('style', 'color: red');\
         document.body.appendChild(d);",
        vec![],
    )
    .await;
    let seen = b.trouble().await;
    assert!(
        seen.iter().any(|t| t.starts_with("CSP: script-src"))
            && seen.iter().any(|t| t.starts_with("CSP: style-src")),
        "{seen:#?}"
    );
    let ran = b.script("return window.__xss === 1;", vec![]).await;
    assert_eq!(ran, Value::Bool(false), "the CSP let inline script run");
    // And the browser reported both to the server's `report-uri`.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.csp_reports.count() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let control_reports = app.state.csp_reports.count();
    assert!(
        control_reports >= 2,
        "the browser sent {control_reports} CSP reports for the two violations"
    );
    assert!(
        app.state
            .csp_reports
            .latest()
            .iter()
            .any(|r| r.contains("script-src")),
        "{:#?}",
        app.state.csp_reports.latest()
    );

    // A team's name.
    visit(&b, &o("/teams")).await;
    b.fill("form[action$='/teams'] input[name=name]", XSS).await;
    b.submit("form[action$='/teams']").await;
    assert_eq!(b.text("p.notice").await, "Team created.");
    assert!(b.text("main").await.contains(XSS));
    clean(&b).await;

    // A key's name (shown on the secret page too).
    visit(&b, &o("/keys")).await;
    open(&b, "form[action$='/keys']").await;
    b.fill("#key-name", XSS).await;
    b.click("input[name=scopes][value='audit:read']").await;
    b.submit("form[action$='/keys']").await;
    assert_eq!(h1(&b).await, "API key created");
    assert!(b.text("main").await.contains(XSS));
    clean(&b).await;

    // A webhook endpoint's description, and markup in its URL's path and query.
    visit(&b, &o("/webhooks")).await;
    open(&b, "form[action$='/webhooks']").await;
    let hook_url = rx.url(&format!("/ok{XSS_TIGHT}?q={XSS_TIGHT}"));
    b.fill("#ep-url", &hook_url).await;
    b.fill("#ep-desc", XSS).await;
    b.submit("form[action$='/webhooks']").await;
    assert_eq!(h1(&b).await, "Endpoint created");
    clean(&b).await;
    let endpoint = b
        .attr("main p a[href*='/webhooks/']", "href")
        .await
        .unwrap();
    visit(&b, &endpoint).await;
    assert!(b.text("main").await.contains(XSS));
    // Markup as an event type: refused, and the refusal shows it as text.
    visit(&b, &o("/webhooks")).await;
    open(&b, "form[action$='/webhooks']").await;
    b.fill("#ep-url", &rx.url("/ok-types")).await;
    b.set_value("#ep-types", XSS).await;
    b.submit("form[action$='/webhooks']").await;
    assert!(b.text("main").await.contains(XSS));
    clean(&b).await;

    // A credential's name and destinations.
    visit(&b, &o("/vault")).await;
    open(&b, "form[action$='/vault']").await;
    b.fill("#cred-name", XSS).await;
    b.fill("#cred-value", "s3cret-value-x").await;
    b.set_value(
        "#cred-dest",
        &format!("https://tracker.acme.test/{XSS_TIGHT}/\nhttps://tracker.acme.test/api/"),
    )
    .await;
    b.submit("form[action$='/vault']").await;
    clean(&b).await;
    assert_eq!(
        b.text("p.notice").await,
        "Credential saved. Its value is sealed and will not be shown."
    );
    assert!(b.text("main").await.contains(XSS));
    clean(&b).await;

    // Policy text: a valid set with markup in a comment, then an invalid one that the page
    // shows back line by line.
    visit(&b, &o("/policies")).await;
    let valid = format!(
        "// {XSS}\n@id(\"org.admins-do-not-invite\")\nforbid(principal in Bulwark::Role::\"admin\", action == Bulwark::Action::\"invitations.create\", resource);\n"
    );
    b.set_value("#policies", &valid).await;
    b.submit("form[action$='/policies']").await;
    assert_eq!(b.text("p.notice").await, "Policies saved.");
    let shown = b
        .script("return document.getElementById('policies').value;", vec![])
        .await;
    assert_eq!(shown.as_str(), Some(valid.as_str()));
    clean(&b).await;
    let invalid = format!(
        "@id(\"org.{XSS_TIGHT}\")\npermit(principal, action == Bulwark::Action::\"{XSS_TIGHT}\", resource);\n// {XSS}\n"
    );
    b.set_value("#policies", &invalid).await;
    b.submit("form[action$='/policies']").await;
    let text = b.text("main").await;
    assert!(text.contains("Not saved"), "{text}");
    clean(&b).await;

    // An invitation to an address whose local part is markup (the address parser allows it);
    // accepted, so the member's address shows on the member pages.
    visit(&b, &o("/members")).await;
    let email = format!("{XSS_TIGHT}@acme.test");
    let invite = "form[action$='/members/invite']";
    b.fill(&format!("{invite} input[name=email]"), &email).await;
    b.submit(invite).await;
    assert_eq!(b.text("p.notice").await, "Invitation sent.");
    assert!(b.text("main").await.contains(&email));
    clean(&b).await;
    let token = token_in(&mails(&app, 1).await[0], "bwinvite_");
    let member = driver.session(&app.base).await;
    visit(&member, "/invite").await;
    member.fill("#token", &token).await;
    member.fill("#password", NEW_PASSWORD).await;
    member.submit("form[action='/invite']").await;
    assert_eq!(member.path().await, "/login?done=invitation_accepted");

    // A sign-in whose User-Agent is markup (the member's sessions and the org's audit log show
    // it), and a failed one whose email is markup (shown back in the form).
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .header(reqwest::header::USER_AGENT, XSS)
        .json(&json!({"email": email, "password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    visit(&member, "/login").await;
    member.fill("#email", &email).await;
    member.fill("#password", "not the password at all").await;
    member.submit("form[action='/login']").await;
    assert!(member.text("#login-error").await.contains("not right"));
    let kept = member
        .script("return document.getElementById('email').value;", vec![])
        .await;
    assert_eq!(kept.as_str(), Some(email.as_str()));
    clean(&member).await;
    sign_in(&member, &email, NEW_PASSWORD, None).await;
    visit(&member, "/account").await;
    assert!(member.text("main").await.contains(XSS));
    visit(&member, &o("")).await;
    assert!(member.text("header").await.contains(XSS));
    member.close().await;

    // Every page that shows any of it, as the owner.
    let team = app
        .state
        .store
        .org_read(org)
        .await
        .unwrap()
        .teams()
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("the team")
        .id;
    let pages = [
        o(""),
        o("/members"),
        o("/teams"),
        o("/policies"),
        o(&format!(
            "/policies?principal={}&action=members.read&target={team}",
            app.state
                .store
                .system()
                .await
                .unwrap()
                .user_by_email(&email.parse().unwrap())
                .await
                .unwrap()
                .unwrap()
                .id
        )),
        o("/keys"),
        o("/audit"),
        o("/vault"),
        o("/webhooks"),
        endpoint.clone(),
        "/license".to_owned(),
        "/evidence".to_owned(),
        "/account".to_owned(),
        format!("/orgs/{org}/{XSS_TIGHT}"),
    ];
    for page in &pages {
        visit(&b, page).await;
    }
    for (page, needle) in [
        (o("/members"), email.as_str()),
        (o("/teams"), XSS),
        (o("/keys"), XSS),
        (o("/vault"), XSS),
        (o("/webhooks"), XSS),
    ] {
        visit(&b, &page).await;
        assert!(b.text("main").await.contains(needle), "{page}");
    }
    // Every event of the log (the org's name, the team's, the key's, the invitation's address,
    // the User-Agent of the sign-in…).
    visit(&b, &o("/audit")).await;
    let events: Vec<String> = b
        .script(
            "return [...document.querySelectorAll('#events tbody a')].map(a => a.getAttribute('href'));",
            vec![],
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    assert!(events.len() >= 8, "{events:?}");
    let mut seen_agent = false;
    for href in &events {
        visit(&b, href).await;
        // (Within the event's JSON, so with its quotes escaped.)
        seen_agent |= b
            .text("main")
            .await
            .contains("<script>window.__xss=1</script>");
    }
    assert!(seen_agent, "the markup shows as text in some event");

    b.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.state.csp_reports.count(),
        control_reports,
        "CSP reports beyond the control's: {:#?}",
        app.state.csp_reports.latest()
    );
    eprintln!("stored_markup_stays_text: {:?}", started.elapsed());
}

/// (iii) Another origin's page frames the console: the browser refuses to render it there
/// (`frame-ancestors 'none'`, `X-Frame-Options: DENY`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_cannot_be_framed() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, config(&rx)).await;
    let f = furnish(&app, &rx).await;
    let org = f.org;
    let driver = Driver::start().await;
    let victim = driver.session(&app.base).await;
    sign_in(&victim, OWNER, PASSWORD, Some(&backup_code(&app))).await;
    visit(&victim, &format!("/orgs/{org}")).await;
    assert_eq!(h1(&victim).await, "Overview");

    let res = app.get_as(&f.owner, &format!("/orgs/{org}")).await;
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(res.headers()["x-frame-options"], "DENY");

    let attacker = Attacker::start().await;
    attacker.serve(format!(
        "<!doctype html><title>Framed</title><iframe id=f src=\"{}\" width=800 height=600></iframe>",
        app.url(&format!("/orgs/{org}"))
    ));
    for origin in [
        format!("http://127.0.0.1:{}", attacker.port),
        format!("http://localhost:{}", attacker.port),
    ] {
        victim.goto(&format!("{origin}/framed")).await;
        // Give the frame time to load whatever it is going to load.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let outer = victim
            .script(
                "const f = document.getElementById('f'); \
                 let doc = 'inaccessible'; try { doc = f.contentDocument ? 'accessible' : 'null'; } catch (e) {} \
                 return doc;",
                vec![],
            )
            .await;
        assert_ne!(outer, json!("accessible"), "{origin}");
        victim.client().enter_frame(0).await.unwrap();
        let inside = victim
            .script(
                "return [location.href, document.title, document.body ? document.body.innerText : ''];",
                vec![],
            )
            .await;
        victim.client().enter_parent_frame().await.unwrap();
        let inside = inside.as_array().unwrap();
        let (href, title, text) = (
            inside[0].as_str().unwrap_or_default(),
            inside[1].as_str().unwrap_or_default(),
            inside[2].as_str().unwrap_or_default(),
        );
        assert!(
            !title.contains("Bulwark") && !text.contains("Overview") && !text.contains("Acme"),
            "{origin}: the frame shows the console: {href} {title} {text}"
        );
        assert!(!href.starts_with(&app.base), "{origin}: {href}");
        assert!(
            href.starts_with("chrome-error://"),
            "{origin}: the frame holds an error page, not {href}"
        );
    }
    victim.close().await;
}

// ---------------------------------------------------------------------------------------------
// c, d. Accessibility and screenshots of every page.

/// Where screenshots go: `BULWARK_SCREENSHOTS_DIR`, else `$CARGO_TARGET_DIR/console-screenshots`
/// (the target directory the test binary runs from when that is not set).
fn screenshots_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BULWARK_SCREENSHOTS_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_owned()
        },
        PathBuf::from,
    );
    target.join("console-screenshots")
}

/// Screenshots copied into `docs/console/` (only with `BULWARK_UPDATE_DOCS_SCREENSHOTS=1`).
const FOR_DOCS: [&str; 6] = [
    "overview-light-desktop",
    "members-dark-desktop",
    "audit-event-light-desktop",
    "key-secret-light-desktop",
    "account-dark-phone",
    "policies-explain-light-desktop",
];

struct Review {
    dir: PathBuf,
    failures: Vec<String>,
    pages: usize,
}

impl Review {
    /// Runs axe on the page in light and dark, and takes its four screenshots.
    async fn page(&mut self, b: &Browser, name: &str) {
        self.page_at(b, name, None).await;
    }

    /// As [`Review::page`], with the screenshots scrolled to `shown` (what the page is for).
    async fn page_at(&mut self, b: &Browser, name: &str, shown: Option<&str>) {
        clean(b).await;
        self.pages += 1;
        for scheme in [Scheme::Light, Scheme::Dark] {
            b.color_scheme(scheme).await;
            for (w, h, label) in [(1280, 800, "desktop"), (390, 844, "phone")] {
                b.viewport(w, h, w < 600).await;
                if let Some(css) = shown {
                    b.scroll_to(css).await;
                }
                let png = b.capture().await;
                // And axe checks the page at that size.
                let found = b.axe(&AXE_TAGS).await;
                if !found.is_empty() {
                    self.failures.push(format!(
                        "{name} ({}, {label}, {}): {}",
                        scheme.as_str(),
                        b.path().await,
                        describe(&found)
                    ));
                }
                let file = self
                    .dir
                    .join(format!("{name}-{}-{label}.png", scheme.as_str()));
                std::fs::write(&file, png).unwrap();
            }
        }
        b.color_scheme(Scheme::Light).await;
        b.viewport(1280, 800, false).await;
        clean(b).await;
    }
}

fn describe(violations: &[Value]) -> String {
    let mut out = String::new();
    for v in violations {
        out.push_str(&format!(
            "\n  - {} ({}): {}",
            v["id"].as_str().unwrap_or_default(),
            v["impact"].as_str().unwrap_or_default(),
            v["help"].as_str().unwrap_or_default()
        ));
        for n in v["nodes"].as_array().into_iter().flatten().take(5) {
            let html = n["html"].as_str().unwrap_or_default();
            out.push_str(&format!(
                "\n      {} {}\n        {}",
                n["target"],
                html.get(..160).unwrap_or(html),
                n["summary"].as_str().unwrap_or_default().replace('\n', " ")
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_in_both_schemes() {
    let started = Instant::now();
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut review = Review {
        dir: dir.clone(),
        failures: Vec::new(),
        pages: 0,
    };
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, config(&rx)).await;
    let driver = Driver::start().await;
    let b = driver.session(&app.base).await;

    // Before and outside a session.
    visit(&b, "/setup").await;
    review.page(&b, "setup").await;
    let f = furnish(&app, &rx).await;
    let org = f.org;
    for (path, name) in [
        ("/login", "login"),
        ("/reset", "reset"),
        ("/reset/new", "reset-new"),
        ("/invite", "invite"),
        ("/verify-email", "verify-email"),
        ("/no/such/page", "error-404"),
    ] {
        visit(&b, path).await;
        review.page(&b, name).await;
    }
    b.goto("/login").await;
    b.fill("#email", OWNER).await;
    b.fill("#password", "not the password at all").await;
    b.submit("form[action='/login']").await;
    review.page(&b, "login-error").await;

    // The owner, signed in with a second factor.
    b.goto("/login").await;
    b.fill("#email", OWNER).await;
    b.fill("#password", PASSWORD).await;
    b.submit("form[action='/login']").await;
    review.page(&b, "mfa").await;
    b.fill("#code", &backup_code(&app)).await;
    b.submit("form[action='/login/mfa']").await;
    clean(&b).await;
    // Some history for the log and the endpoint (deliveries and attempts).
    api_ok(
        &app,
        &f.owner,
        Method::POST,
        &format!("/v1/orgs/{org}/teams"),
        json!({"name": "Support"}),
    )
    .await;
    rx.wait_for("/ok-hooks", 1, Duration::from_secs(15)).await;
    let o = |rest: &str| format!("/orgs/{org}{rest}");
    for (path, name) in [
        (o(""), "overview"),
        (o("/members"), "members"),
        (o("/teams"), "teams"),
        (o("/keys"), "keys"),
        (o("/audit"), "audit"),
        (o("/vault"), "vault"),
        (o("/webhooks"), "webhooks"),
        (o(&format!("/webhooks/{}", f.endpoint)), "webhook"),
        ("/license".to_owned(), "license"),
        ("/evidence".to_owned(), "evidence"),
        ("/account".to_owned(), "account"),
    ] {
        visit(&b, &path).await;
        review.page(&b, name).await;
    }
    visit(
        &b,
        &o(&format!(
            "/policies?principal={}&action=members.read&target=org&role=auditor",
            f.owner_id
        )),
    )
    .await;
    assert!(b.text("section[aria-live]").await.contains("Allowed"));
    review
        .page_at(&b, "policies-explain", Some("section[aria-live]"))
        .await;
    b.set_value(
        "#policies",
        "permit(principal, action, resource) when { nope };\n",
    )
    .await;
    b.submit("form[action$='/policies']").await;
    assert!(b.text("main").await.contains("Not saved"));
    review.page_at(&b, "policies-error", Some("p.error")).await;
    // An event with its proof checked in the browser.
    visit(&b, &o("/audit")).await;
    let href = audit_link(&b, "team.created").await.unwrap();
    open_verified_event(&b, &href).await;
    review
        .page_at(&b, "audit-event", Some("#browser-check"))
        .await;
    // The page that shows a new key once.
    visit(&b, &o("/keys")).await;
    open(&b, "form[action$='/keys']").await;
    b.fill("#key-name", "release bot").await;
    b.click("input[name=scopes][value='audit:read']").await;
    b.submit("form[action$='/keys']").await;
    assert_eq!(h1(&b).await, "API key created");
    review.page(&b, "key-secret").await;

    // A member without a second factor enrols one.
    let m = driver.session(&app.base).await;
    sign_in(&m, "ada@acme.test", PASSWORD, None).await;
    visit(&m, "/account").await;
    review.page(&m, "account-no-mfa").await;
    m.fill("#mfa-password", PASSWORD).await;
    m.submit("form[action='/account/mfa/start']").await;
    review.page(&m, "mfa-enrol").await;
    let secret = bulwark_crypto::TotpSecret::from_base32(&m.text("#totp-secret").await).unwrap();
    m.fill("#confirm-code", &totp_now(&secret, 0)).await;
    m.submit("form[action='/account/mfa/confirm']").await;
    assert_eq!(h1(&m).await, "Your backup codes");
    review.page(&m, "backup-codes").await;
    // The check itself finds what it should: an image without a text alternative.
    m.script(
        "const i = document.createElement('img'); i.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';\
         document.querySelector('main').appendChild(i);",
        vec![],
    )
    .await;
    let found = m.axe(&AXE_TAGS).await;
    assert!(
        found.iter().any(|v| v["id"] == "image-alt"),
        "axe did not see the image without alt: {found:?}"
    );
    m.close().await;
    b.close().await;

    if std::env::var("BULWARK_UPDATE_DOCS_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
        std::fs::create_dir_all(&docs).unwrap();
        for name in FOR_DOCS {
            let from = dir.join(format!("{name}.png"));
            let size = std::fs::metadata(&from).unwrap().len();
            assert!(size < 200 * 1024, "{name}.png is {size} bytes");
            std::fs::copy(&from, docs.join(format!("{name}.png"))).unwrap();
        }
    }
    assert!(
        review.failures.is_empty(),
        "axe-core found violations ({} of {} checks: pages × schemes × widths):\n{}",
        review.failures.len(),
        review.pages * 4,
        review.failures.join("\n")
    );
    no_csp_reports(&app).await;
    eprintln!(
        "every_page_passes_axe_in_both_schemes: {} pages, {:?}; screenshots in {}",
        review.pages,
        started.elapsed(),
        dir.display()
    );
}
