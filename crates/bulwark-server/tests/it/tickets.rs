//! Ticket pushes against local fakes of GitHub's `POST /repos/{owner}/{repo}/issues` and
//! Jira's REST v3 `POST /rest/api/3/issue` that check what the real services check (auth,
//! required fields, media types) and answer with their real shapes. Previews equal what is
//! sent; only chosen fields go out; the credential never appears in a preview, answer or audit
//! event; failures are audited and clear.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app_with};
use bulwark_types::OrgId;
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const GH_TOKEN: &str = "ghp_FakeGitHubToken0000111122223333";
const JIRA_TOKEN: &str = "ops@acme.test:ATATT-fake-jira-token-4444";

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn fakes() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let (gh, jira) = (Arc::clone(&seen), Arc::clone(&seen));
    let app = axum::Router::new()
        .route(
            "/repos/{owner}/{repo}/issues",
            post(
                move |Path((owner, repo)): Path<(String, String)>,
                      h: HeaderMap,
                      Json(body): Json<Value>| {
                    let gh = Arc::clone(&gh);
                    async move {
                        gh.lock().unwrap().push((h.clone(), body.clone()));
                        github(&owner, &repo, &h, &body)
                    }
                },
            ),
        )
        .route(
            "/rest/api/3/issue",
            post(move |h: HeaderMap, Json(body): Json<Value>| {
                let jira = Arc::clone(&jira);
                async move {
                    jira.lock().unwrap().push((h.clone(), body.clone()));
                    jira_issue(&h, &body)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// GitHub: 401 `Bad credentials`; 422 `Validation Failed` without a title; 201 with the issue.
fn github(owner: &str, repo: &str, h: &HeaderMap, body: &Value) -> Response {
    if header(h, "authorization") != format!("Bearer {GH_TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
        )
            .into_response();
    }
    if header(h, "user-agent").is_empty() || header(h, "accept") != "application/vnd.github+json" {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "Request forbidden by administrative rules."})),
        )
            .into_response();
    }
    if !body["title"].is_string() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Validation Failed", "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}]})),
        )
            .into_response();
    }
    (
        StatusCode::CREATED,
        Json(json!({
            "id": 1_296_269, "number": 1347, "state": "open",
            "title": body["title"], "body": body["body"],
            "html_url": format!("https://github.com/{owner}/{repo}/issues/1347"),
            "url": format!("https://api.github.com/repos/{owner}/{repo}/issues/1347"),
        })),
    )
        .into_response()
}

/// Jira: 401 without Basic auth; 400 with `errors` for a missing project or summary; 201 with
/// `id`, `key`, `self`.
fn jira_issue(h: &HeaderMap, body: &Value) -> Response {
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(JIRA_TOKEN)
    );
    if header(h, "authorization") != expected {
        return (
            StatusCode::UNAUTHORIZED,
            "Client must be authenticated to access this resource.",
        )
            .into_response();
    }
    let fields = &body["fields"];
    let mut errors = serde_json::Map::new();
    if !fields["project"]["key"].is_string() {
        errors.insert("project".into(), "valid project is required".into());
    }
    if !fields["summary"].is_string() {
        errors.insert(
            "summary".into(),
            "You must specify a summary of the issue.".into(),
        );
    }
    if fields["description"]["type"] != "doc" || fields["description"]["version"] != 1 {
        errors.insert(
            "description".into(),
            "Operation value must be an Atlassian Document.".into(),
        );
    }
    if !errors.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errorMessages": [], "errors": errors})),
        )
            .into_response();
    }
    (
        StatusCode::CREATED,
        Json(json!({"id": "10000", "key": format!("{}-24", fields["project"]["key"].as_str().unwrap()), "self": "https://acme.atlassian.net/rest/api/3/issue/10000"})),
    )
        .into_response()
}

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let path = res.url().path().to_owned();
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// An app that may call the fakes at `bases` (`http://127.0.0.1:PORT`) and no other loopback
/// port.
async fn ready(backend: Backend, bases: &[&str]) -> (TestApp, OrgId, SignedIn) {
    let ports: Vec<String> = bases
        .iter()
        .map(|b| b.trim_start_matches("http://").to_owned())
        .collect();
    let app = spawn_app_with(backend, |c| {
        c.egress.allow_loopback = ports;
        c.egress.allow_http = true;
        c.license.extra_public_keys = vec![bulwark_testkit::license::vendor_public_key()];
    })
    .await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    // Ticket integrations are a licensed feature.
    bulwark_testkit::license::activate(&app, &owner).await;
    (app, org, owner)
}

async fn credential(
    app: &TestApp,
    who: &SignedIn,
    org: OrgId,
    kind: &str,
    value: &str,
    dest: &str,
) -> String {
    let res = app
        .send_as(
            who,
            Method::POST,
            &format!("/v1/orgs/{org}/credentials"),
            &json!({"name": format!("{kind} {}", &value[..9]), "kind": kind, "value": value, "destinations": [dest]}),
        )
        .await;
    json_of(res, 201).await["id"].as_str().unwrap().to_owned()
}

async fn ticket_pushes(backend: Backend) {
    let (base, seen) = fakes().await;
    let (app, org, owner) = ready(backend, &[&base]).await;
    let gh_cred = credential(
        &app,
        &owner,
        org,
        "bearer_token",
        GH_TOKEN,
        &format!("{base}/repos/acme/"),
    )
    .await;
    let jira_cred = credential(
        &app,
        &owner,
        org,
        "basic_password",
        JIRA_TOKEN,
        &format!("{base}/rest/api/3/"),
    )
    .await;
    // The record: a team created (audit seq from the log).
    json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/teams"),
            &json!({"name": "ir-team"}),
        )
        .await,
        201,
    )
    .await;
    let events = json_of(
        app.get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/events?action=team.created"),
        )
        .await,
        200,
    )
    .await;
    let seq = events["events"][0]["seq"].as_u64().unwrap();

    let gh = json!({"tracker": "github", "api_url": base, "repository": "acme/security",
        "credential_id": gh_cred, "audit_seq": seq, "fields": ["action", "data"]});
    let preview = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/tickets/preview"),
            &gh,
        )
        .await,
        200,
    )
    .await;
    let text = preview.to_string();
    assert!(!text.contains(GH_TOKEN), "no credential in the preview");
    assert!(text.contains("ir-team") && text.contains("team.created"));
    assert!(
        !text.contains("request_id") && !text.contains("\"actor\""),
        "only chosen fields: {text}"
    );
    assert_eq!(preview["url"], format!("{base}/repos/acme/security/issues"));
    assert!(seen.lock().unwrap().is_empty(), "a preview sends nothing");

    let pushed = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/tickets/push"),
            &gh,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(pushed["ticket"], "#1347");
    assert_eq!(
        pushed["url"],
        "https://github.com/acme/security/issues/1347"
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1, preview["body"], "what was previewed was sent");
        assert_eq!(header(&seen[0].0, "x-github-api-version"), "2022-11-28");
    }

    let jira = json!({"tracker": "jira", "site": base, "project": "SEC", "credential_id": jira_cred,
        "audit_seq": seq, "fields": ["action", "time", "resource"], "title": "Review new team"});
    let pushed = json_of(
        app.send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/tickets/push"),
            &jira,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(pushed["ticket"], "SEC-24");
    assert_eq!(pushed["url"], format!("{base}/browse/SEC-24"));
    let sent = seen.lock().unwrap()[1].1.clone();
    assert_eq!(sent["fields"]["summary"], "Review new team");
    assert_eq!(sent["fields"]["issuetype"]["name"], "Task");
    assert!(
        !sent.to_string().contains("ir-team"),
        "data was not chosen: {sent}"
    );

    // Failures: the tracker refuses the credential; a credential whose destinations do not
    // cover the tracker; bad input. Each clear, the refusals audited.
    let wrong = credential(
        &app,
        &owner,
        org,
        "bearer_token",
        "ghp_wrong",
        &format!("{base}/repos/"),
    )
    .await;
    let res = app
        .send_as(&owner, Method::POST, &format!("/v1/orgs/{org}/tickets/push"),
            &json!({"tracker": "github", "api_url": base, "repository": "acme/security", "credential_id": wrong, "audit_seq": seq, "fields": ["action"]}))
        .await;
    let body = json_of(res, 502).await;
    assert_eq!(body["code"], "tracker_failed");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("tracker_unauthorized")
    );
    let res = app
        .send_as(&owner, Method::POST, &format!("/v1/orgs/{org}/tickets/push"),
            &json!({"tracker": "github", "api_url": base, "repository": "other/repo", "credential_id": gh_cred, "audit_seq": seq, "fields": ["action"]}))
        .await;
    assert_eq!(
        json_of(res, 422).await["errors"][0]["pointer"],
        "/credential_id"
    );
    for (bad, pointer) in [
        (
            json!({"tracker": "gitlab", "credential_id": gh_cred, "audit_seq": seq, "fields": ["action"]}),
            "/tracker",
        ),
        (
            json!({"tracker": "github", "api_url": base, "repository": "acme", "credential_id": gh_cred, "audit_seq": seq, "fields": ["action"]}),
            "/repository",
        ),
        (
            json!({"tracker": "jira", "site": base, "project": "sec", "credential_id": jira_cred, "audit_seq": seq, "fields": ["action"]}),
            "/project",
        ),
        (
            json!({"tracker": "github", "api_url": base, "repository": "acme/security", "credential_id": gh_cred, "audit_seq": seq, "fields": ["password"]}),
            "/fields",
        ),
        (
            json!({"tracker": "github", "api_url": base, "repository": "acme/security", "credential_id": gh_cred, "audit_seq": seq, "fields": []}),
            "/fields",
        ),
    ] {
        let res = app
            .send_as(
                &owner,
                Method::POST,
                &format!("/v1/orgs/{org}/tickets/preview"),
                &bad,
            )
            .await;
        assert_eq!(
            json_of(res, 422).await["errors"][0]["pointer"],
            pointer,
            "{bad}"
        );
    }
    let res = app
        .send_as(&owner, Method::POST, &format!("/v1/orgs/{org}/tickets/preview"),
            &json!({"tracker": "github", "api_url": base, "repository": "acme/security", "credential_id": gh_cred, "audit_seq": 99_999, "fields": ["action"]}))
        .await;
    assert_eq!(res.status(), 404);

    let pushes = json_of(
        app.get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/events?action=ticket.pushed"),
        )
        .await,
        200,
    )
    .await;
    let pushes = pushes["events"].as_array().unwrap();
    assert_eq!(pushes.len(), 3, "two created, one refused: {pushes:?}");
    assert_eq!(pushes[0]["data"]["ticket"], "#1347");
    assert_eq!(pushes[2]["outcome"]["result"], "failure");
    assert_eq!(pushes[2]["outcome"]["reason"], "tracker_unauthorized");
    let all = json_of(
        app.get_as(&owner, &format!("/v1/orgs/{org}/audit/events?limit=1000"))
            .await,
        200,
    )
    .await;
    let all = all.to_string();
    assert!(
        !all.contains(GH_TOKEN) && !all.contains("ATATT-fake"),
        "no credential in the audit log"
    );
}

on_both_engines!(ticket_pushes);

/// Runs `sql` on the app's database as its owner would (someone with database access).
async fn raw_sql(app: &TestApp, sql: &str) {
    match &app.pg {
        Some(db) => bulwark_testkit::pg::superuser_exec(db, sql).await,
        None => {
            let file = app.data_dir.path().join("data/bulwark.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// The seq of a fresh audit event to push (a team created).
async fn a_record(app: &TestApp, owner: &SignedIn, org: OrgId, team: &str) -> u64 {
    json_of(
        app.send_as(
            owner,
            Method::POST,
            &format!("/v1/orgs/{org}/teams"),
            &json!({ "name": team }),
        )
        .await,
        201,
    )
    .await;
    let events = json_of(
        app.get_as(
            owner,
            &format!("/v1/orgs/{org}/audit/events?action=team.created"),
        )
        .await,
        200,
    )
    .await;
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["name"] == team)
        .unwrap()["seq"]
        .as_u64()
        .unwrap()
}

async fn push(app: &TestApp, owner: &SignedIn, org: OrgId, body: &Value) -> reqwest::Response {
    app.send_as(
        owner,
        Method::POST,
        &format!("/v1/orgs/{org}/tickets/push"),
        body,
    )
    .await
}

/// Review item 5: editing a credential's destinations (or kind) in the database redirected a
/// push, with the credential, to another host. The value is bound to both: the push is refused
/// with a stable code, audited, and neither host receives anything. Review item 10: a tampered
/// value answered 500; it is `409 credential_unreadable` now.
async fn a_credential_edited_in_the_database_sends_nothing(backend: Backend) {
    let (base, seen) = fakes().await;
    let (evil, evil_seen) = fakes().await;
    let (app, org, owner) = ready(backend, &[&base, &evil]).await;
    let cred = credential(
        &app,
        &owner,
        org,
        "bearer_token",
        GH_TOKEN,
        &format!("{base}/repos/acme/"),
    )
    .await;
    let seq = a_record(&app, &owner, org, "ir-team").await;
    let to = |api: &str| {
        json!({"tracker": "github", "api_url": api, "repository": "acme/security",
            "credential_id": cred, "audit_seq": seq, "fields": ["action"]})
    };
    // Before the edit, the other host is refused by the destinations.
    assert_eq!(
        json_of(push(&app, &owner, org, &to(&evil)).await, 422).await["errors"][0]["pointer"],
        "/credential_id"
    );
    // The row's id as each engine stores it (a blob on SQLite).
    let credential_id: bulwark_types::CredentialId = cred.parse().unwrap();
    let id = if app.pg.is_some() {
        format!("'{}'::uuid", credential_id.as_uuid())
    } else {
        format!("X'{}'", credential_id.as_uuid().simple())
    };
    let edits = [
        format!("UPDATE credentials SET destinations = '[\"{evil}/repos/acme/\"]' WHERE id = {id}"),
        format!(
            "UPDATE credentials SET destinations = '[\"{evil}/repos/acme/\",\"{base}/repos/acme/\"]' WHERE id = {id}"
        ),
    ];
    for edit in &edits {
        raw_sql(&app, edit).await;
        let body = json_of(push(&app, &owner, org, &to(&evil)).await, 409).await;
        assert_eq!(body["code"], "credential_unreadable", "{edit}: {body}");
    }
    // The kind edited (a bearer token sent as Basic, or the other way round) is refused too,
    // even to the host the credential was made for.
    raw_sql(
        &app,
        &format!(
            "UPDATE credentials SET destinations = '[\"{base}/repos/acme/\"]', kind = 'basic_password' WHERE id = {id}"
        ),
    )
    .await;
    let body = json_of(push(&app, &owner, org, &to(&base)).await, 409).await;
    assert_eq!(body["code"], "credential_unreadable");
    assert!(
        evil_seen.lock().unwrap().is_empty(),
        "nothing reached the other host"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent at all");
    // Put back as it was, it is usable again: the refusal was the binding, not the row.
    raw_sql(
        &app,
        &format!("UPDATE credentials SET kind = 'bearer_token' WHERE id = {id}"),
    )
    .await;
    json_of(push(&app, &owner, org, &to(&base)).await, 201).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    // A tampered value: a stable code, not a 500.
    let zeros = if app.pg.is_some() {
        "decode(repeat('00', 64), 'hex')"
    } else {
        "zeroblob(64)"
    };
    raw_sql(
        &app,
        &format!("UPDATE credentials SET ciphertext = {zeros} WHERE id = {id}"),
    )
    .await;
    let body = json_of(push(&app, &owner, org, &to(&base)).await, 409).await;
    assert_eq!(body["code"], "credential_unreadable");
    assert_eq!(seen.lock().unwrap().len(), 1);
    // Each refusal is evidence in the org's log, and the push is recorded as failed.
    let used = json_of(
        app.get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/events?action=credential.used&limit=100"),
        )
        .await,
        200,
    )
    .await;
    let refusals: Vec<&Value> = used["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"]["reason"] == "sealed_value_rejected")
        .collect();
    assert_eq!(refusals.len(), 4, "{used}");
    let pushes = json_of(
        app.get_as(
            &owner,
            &format!("/v1/orgs/{org}/audit/events?action=ticket.pushed&limit=100"),
        )
        .await,
        200,
    )
    .await;
    let failed = pushes["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"]["reason"] == "credential_unreadable")
        .count();
    assert_eq!(failed, 4, "{pushes}");
}

on_both_engines!(a_credential_edited_in_the_database_sends_nothing);

/// Review item 10: `egress.allow_loopback` opened every loopback port. Only the listed fake is
/// reachable now: Bulwark's own port is refused, for a push as for a webhook endpoint.
async fn only_listed_loopback_ports_are_called(backend: Backend) {
    let (base, seen) = fakes().await;
    let (app, org, owner) = ready(backend, &[&base]).await;
    let own = format!("http://{}", app.addr);
    let cred = credential(
        &app,
        &owner,
        org,
        "bearer_token",
        GH_TOKEN,
        &format!("{own}/repos/acme/"),
    )
    .await;
    let seq = a_record(&app, &owner, org, "ir-team").await;
    let body = json!({"tracker": "github", "api_url": own, "repository": "acme/security",
        "credential_id": cred, "audit_seq": seq, "fields": ["action"]});
    let refused = json_of(push(&app, &owner, org, &body).await, 422).await;
    assert_eq!(refused["code"], "destination_refused", "{refused}");
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints"),
            &json!({"url": format!("{own}/v1/health"), "event_types": ["*"]}),
        )
        .await;
    assert_eq!(res.status(), 422, "{}", res.text().await.unwrap());
    // The listed one is reachable.
    let ok = json!({"url": format!("{base}/hooks"), "event_types": ["app.*"]});
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/webhooks/endpoints"),
            &ok,
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    assert!(seen.lock().unwrap().is_empty());
}

on_both_engines!(only_listed_loopback_ports_are_called);

/// The console's ticket flow is the API's: the event page offers the form, the preview page
/// shows the exact request (the credential named, never its value), and the push form sends the
/// previewed fields; the tracker receives the credential and the event, and no console page
/// ever showed the token.
async fn the_console_previews_then_pushes(backend: Backend) {
    let (base, seen) = fakes().await;
    let (app, org, owner) = ready(backend, &[&base]).await;
    let gh_cred = credential(
        &app,
        &owner,
        org,
        "bearer_token",
        GH_TOKEN,
        &format!("{base}/repos/acme/"),
    )
    .await;
    let seq = a_record(&app, &owner, org, "console-team").await;
    let page = |path: String| {
        let app = &app;
        let owner = &owner;
        async move {
            let res = app.get_as(owner, &path).await;
            assert_eq!(res.status(), 200, "{path}");
            res.text().await.unwrap()
        }
    };
    let event = page(format!("/orgs/{org}/audit/{seq}")).await;
    assert!(event.contains(&format!("action=\"/orgs/{org}/tickets/preview\"")));
    assert!(event.contains(&gh_cred));
    let form = vec![
        ("tracker", "github".to_owned()),
        ("api_url", base.clone()),
        ("repository", "acme/security".to_owned()),
        ("credential_id", gh_cred.clone()),
        ("audit_seq", seq.to_string()),
        ("fields", "action".to_owned()),
        ("fields", "data".to_owned()),
        ("_csrf", owner.csrf.clone()),
    ];
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let app = &app;
        let owner = &owner;
        async move {
            app.client
                .post(app.url(&path))
                .header(reqwest::header::COOKIE, &owner.cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(crate::authz::form_body(&form))
                .send()
                .await
                .unwrap()
        }
    };
    let res = post(format!("/orgs/{org}/tickets/preview"), form.clone()).await;
    assert_eq!(res.status(), 200);
    let preview = res.text().await.unwrap();
    assert!(
        preview.contains(&format!("POST {base}/repos/acme/security/issues")),
        "{preview}"
    );
    assert!(
        preview.contains(&format!("Bearer &#60;credential {gh_cred}&#62;")),
        "{preview}"
    );
    assert!(
        preview.contains("console-team"),
        "the body holds the event's data"
    );
    assert!(!preview.contains(GH_TOKEN), "the token is never shown");
    assert!(seen.lock().unwrap().is_empty(), "a preview sends nothing");
    // The push form on the preview page carries the same fields.
    assert!(preview.contains("name=\"repository\" value=\"acme/security\""));
    let res = post(format!("/orgs/{org}/tickets/push"), form).await;
    assert_eq!(res.status(), 200);
    let pushed = res.text().await.unwrap();
    assert!(pushed.contains("Ticket created"), "{pushed}");
    assert!(!pushed.contains(GH_TOKEN));
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        header(&sent[0].0, "authorization"),
        format!("Bearer {GH_TOKEN}")
    );
    app.stop().await;
}

on_both_engines!(the_console_previews_then_pushes);
