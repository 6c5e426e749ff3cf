//! The console over HTTP, as a stranger's client sees it (the browser tests are in
//! `console_browser`): sign-in with a second factor through forms, bad input answered with a
//! page carrying the request id and nothing changed, a form whose session ended kept across a
//! new sign-in, the console's headers and its hashed assets.

use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app};
use reqwest::Method;
use serde_json::json;

use crate::authz::form_body;

const PASSWORD: &str = "a long enough password";

async fn post_form(
    app: &TestApp,
    who: Option<&SignedIn>,
    path: &str,
    pairs: &[(&str, String)],
) -> reqwest::Response {
    let mut pairs = pairs.to_vec();
    let mut req = app.client.post(app.url(path));
    if let Some(who) = who {
        pairs.push(("_csrf", who.csrf.clone()));
        req = req.header(reqwest::header::COOKIE, &who.cookie);
    }
    req.header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&pairs))
        .send()
        .await
        .unwrap()
}

async fn get_page(app: &TestApp, who: Option<&SignedIn>, path: &str) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(who) = who {
        req = req.header(reqwest::header::COOKIE, &who.cookie);
    }
    req.send().await.unwrap()
}

/// The secret a shown-once page shows.
fn shown_secret(page: &str) -> String {
    page.split("<code id=\"secret-value\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned()
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// The session cookie a response set.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| {
            c.starts_with("__Host-bulwark_session=") && !c.starts_with("__Host-bulwark_session=;")
        })
        .map(|c| c.split(';').next().unwrap().to_owned())
}

fn csrf_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("__Host-bulwark_csrf="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .filter(|c| !c.is_empty())
}

/// Sign-in through the forms: a wrong password answers the form again (401, no cookie); the
/// password step of an owner whose org requires MFA leads to the second-factor form; a wrong
/// code answers it again; a backup code completes sign-in and `next` is honoured only when it
/// is a console path; sign-out is a POST that ends the session.
async fn sign_in_through_the_forms(backend: Backend) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org = setup["org"]["id"].as_str().unwrap().to_owned();
    // Enrols MFA over the API and keeps backup codes for the form sign-in.
    app.login_mfa("owner@acme.test", PASSWORD).await;
    let code = app
        .backup_codes
        .lock()
        .unwrap()
        .get_mut("owner@acme.test")
        .and_then(Vec::pop)
        .unwrap();

    let wrong = post_form(
        &app,
        None,
        "/login",
        &[
            ("email", s("owner@acme.test")),
            ("password", s("not the password")),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(session_cookie(&wrong).is_none());
    let body = wrong.text().await.unwrap();
    assert!(body.contains("The email or password is not right."));
    assert!(
        body.contains("value=\"owner@acme.test\""),
        "the email is kept"
    );
    assert!(
        !body.contains("not the password"),
        "the password is never echoed"
    );

    let next = format!("/orgs/{org}/members");
    let first = post_form(
        &app,
        None,
        "/login",
        &[
            ("email", s("owner@acme.test")),
            ("password", s(PASSWORD)),
            ("next", next.clone()),
        ],
    )
    .await;
    assert_eq!(first.status(), 200);
    let pending = SignedIn {
        cookie: session_cookie(&first).unwrap(),
        csrf: csrf_cookie(&first).unwrap(),
        body: json!({}),
    };
    let body = first.text().await.unwrap();
    assert!(
        body.contains("action=\"/login/mfa\""),
        "the second-factor step"
    );
    // A pending session opens no page.
    let res = get_page(&app, Some(&pending), &next).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login/mfa");

    let res = post_form(
        &app,
        Some(&pending),
        "/login/mfa",
        &[("code", s("000000")), ("next", next.clone())],
    )
    .await;
    assert_eq!(res.status(), 401);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("That code is not right.")
    );

    let done = post_form(
        &app,
        Some(&pending),
        "/login/mfa",
        &[("code", code), ("next", next.clone())],
    )
    .await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], next.as_str());
    let signed = SignedIn {
        cookie: session_cookie(&done).unwrap(),
        csrf: csrf_cookie(&done).unwrap(),
        body: json!({}),
    };
    let page = get_page(&app, Some(&signed), &next).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("owner@acme.test"));

    // `next` outside the console is ignored.
    for evil in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "/v1/auth/session",
    ] {
        let res = post_form(
            &app,
            None,
            "/login",
            &[
                ("email", s("nobody@acme.test")),
                ("password", s("x")),
                ("next", s(evil)),
            ],
        )
        .await;
        let body = res.text().await.unwrap();
        assert!(
            !body.contains(&format!("value=\"{evil}\"")),
            "{evil} kept as next"
        );
    }

    let out = post_form(&app, Some(&signed), "/logout", &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/login?done=signed_out");
    let res = get_page(&app, Some(&signed), &next).await;
    assert_eq!(res.status(), 303, "the session ended");
    app.stop().await;
}

/// Bad input never gets a 500 or changes anything: unknown routes, wrong methods, oversized,
/// incomplete, duplicated and non-UTF-8 forms, a JSON body posted to a form route, an API key
/// sent to the console. Each answer is a page with the request id.
async fn bad_input_gets_a_page_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org = setup["org"]["id"].as_str().unwrap().to_owned();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let teams = format!("/orgs/{org}/teams");

    let page = |res: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(res.status(), status, "{code}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{code}"
        );
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = res.text().await.unwrap();
        assert!(body.contains(&id), "{code}: the request id");
        assert!(body.contains(code), "{code}: {body}");
    };
    page(
        get_page(&app, Some(&owner), "/no/such/page").await,
        404,
        "not_found",
    )
    .await;
    page(
        get_page(&app, Some(&owner), &format!("/orgs/{org}/nope")).await,
        404,
        "not_found",
    )
    .await;
    let res = app
        .client
        .delete(app.url(&teams))
        .header(reqwest::header::COOKIE, &owner.cookie)
        .send()
        .await
        .unwrap();
    page(res, 405, "method_not_allowed").await;
    page(
        post_form(&app, Some(&owner), &teams, &[]).await,
        422,
        "validation_failed",
    )
    .await;
    page(
        post_form(
            &app,
            Some(&owner),
            &teams,
            &[("name", s("a")), ("name", s("b"))],
        )
        .await,
        422,
        "invalid_form",
    )
    .await;
    // An oversized form is refused from its Content-Length, before it is read. (Sent raw: a
    // client still writing a body the server has already refused may see a broken pipe.)
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST {teams} HTTP/1.1\r\nhost: x\r\ncookie: {}\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
            owner.cookie,
            2 * 1024 * 1024
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 16384];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("</html>") {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(
            text.contains("text/html") && text.contains("payload_too_large"),
            "{text}"
        );
    }
    let res = app
        .client
        .post(app.url(&teams))
        .header(reqwest::header::COOKIE, &owner.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={}&name=%FF%FE", owner.csrf))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(res.status().as_u16(), 400 | 422),
        "{}",
        res.status()
    );
    let res = app
        .client
        .post(app.url(&teams))
        .header(reqwest::header::COOKIE, &owner.cookie)
        .header("x-csrf-token", &owner.csrf)
        .json(&json!({"name": "by json"}))
        .send()
        .await
        .unwrap();
    page(res, 415, "unsupported_media_type").await;
    let res = app
        .client
        .get(app.url(&format!("/orgs/{org}")))
        .header("authorization", "Bearer bwk_not_for_pages")
        .send()
        .await
        .unwrap();
    page(res, 400, "console_takes_a_session").await;

    // None of it created a team.
    let teams = app.get_as(&owner, &format!("/v1/orgs/{org}/teams")).await;
    let teams: serde_json::Value = teams.json().await.unwrap();
    assert_eq!(teams["teams"].as_array().unwrap().len(), 0, "{teams}");
    app.stop().await;
}

/// A form sent after its session ended is not lost: the answer is the sign-in form holding the
/// form's fields (never its secrets), and signing in offers the kept form again, with the new
/// session's CSRF token; sending it does what the first post would have done.
async fn a_form_outlives_its_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org = setup["org"]["id"].as_str().unwrap().to_owned();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    app.add_member(
        org.parse().unwrap(),
        "member@acme.test",
        PASSWORD,
        bulwark_types::Role::Member,
    )
    .await;
    let member = app.login("member@acme.test", PASSWORD).await;
    // The member's session ends (signed out elsewhere) while a form is open.
    let res = app
        .send_as(&member, Method::POST, "/v1/auth/logout", &json!({}))
        .await;
    assert_eq!(res.status(), 204);
    let action = "/account/password";
    let res = post_form(
        &app,
        Some(&member),
        action,
        &[
            ("current_password", s(PASSWORD)),
            ("new_password", s("kept secret new password")),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("Your session ended before the form was sent"),
        "{body}"
    );
    assert!(body.contains(&format!("name=\"resume_action\" value=\"{action}\"")));
    assert!(
        !body.contains("kept secret new password"),
        "secrets are not kept"
    );
    assert!(!body.contains(&member.csrf), "the old token is not kept");

    // A kept form with a harmless field: renaming a team.
    let res = post_form(
        &app,
        Some(&owner),
        &format!("/orgs/{org}/teams"),
        &[("name", s("first"))],
    )
    .await;
    assert_eq!(res.status(), 303);
    let res = app
        .send_as(&owner, Method::POST, "/v1/auth/logout", &json!({}))
        .await;
    assert_eq!(res.status(), 204);
    let teams_path = format!("/orgs/{org}/teams");
    let res = post_form(&app, Some(&owner), &teams_path, &[("name", s("kept team"))]).await;
    assert_eq!(res.status(), 401);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("name=\"keep.name\" value=\"kept team\""),
        "{body}"
    );
    // Nothing was created by the refused post.
    let code = app
        .backup_codes
        .lock()
        .unwrap()
        .get_mut("owner@acme.test")
        .and_then(Vec::pop)
        .unwrap();
    let first = post_form(
        &app,
        None,
        "/login",
        &[
            ("email", s("owner@acme.test")),
            ("password", s(PASSWORD)),
            ("resume_action", teams_path.clone()),
            ("keep.name", s("kept team")),
        ],
    )
    .await;
    assert_eq!(first.status(), 200);
    let pending = SignedIn {
        cookie: session_cookie(&first).unwrap(),
        csrf: csrf_cookie(&first).unwrap(),
        body: json!({}),
    };
    let body = first.text().await.unwrap();
    assert!(
        body.contains("name=\"keep.name\" value=\"kept team\""),
        "carried through the MFA step"
    );
    let done = post_form(
        &app,
        Some(&pending),
        "/login/mfa",
        &[
            ("code", code),
            ("resume_action", teams_path.clone()),
            ("keep.name", s("kept team")),
        ],
    )
    .await;
    assert_eq!(done.status(), 200);
    let signed = SignedIn {
        cookie: session_cookie(&done).unwrap(),
        csrf: csrf_cookie(&done).unwrap(),
        body: json!({}),
    };
    let body = done.text().await.unwrap();
    assert!(body.contains(&format!("action=\"{teams_path}\"")), "{body}");
    assert!(
        body.contains(&format!("value=\"{}\"", signed.csrf)),
        "the new session's token"
    );
    assert!(body.contains(">kept team</textarea>"), "{body}");
    let teams = app.get_as(&signed, &format!("/v1/orgs/{org}/teams")).await;
    let teams: serde_json::Value = teams.json().await.unwrap();
    assert_eq!(
        teams["teams"].as_array().unwrap().len(),
        1,
        "only the first team: {teams}"
    );
    let sent = post_form(
        &app,
        Some(&signed),
        &teams_path,
        &[("name", s("kept team"))],
    )
    .await;
    assert_eq!(sent.status(), 303);
    let teams = app.get_as(&signed, &format!("/v1/orgs/{org}/teams")).await;
    let teams: serde_json::Value = teams.json().await.unwrap();
    assert_eq!(teams["teams"].as_array().unwrap().len(), 2, "{teams}");
    app.stop().await;
}

/// Every console answer (page, redirect, error, asset) carries the console's CSP and framing
/// refusal; assets have content-hashed names, a year-long immutable lifetime, and any other name
/// is a 404; pages are never cached.
async fn console_headers_and_assets(backend: Backend) {
    let app = spawn_app(backend).await;
    let login = get_page(&app, None, "/login").await;
    let csp = bulwark_server::middleware::headers::CONSOLE_CSP;
    assert!(csp.starts_with(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ));
    assert!(!csp.contains("unsafe"));
    assert_eq!(login.headers()["cache-control"], "no-store");
    let body = login.text().await.unwrap();
    assert!(
        !body.contains(" style=") && !body.contains("<style"),
        "no inline style"
    );
    assert!(!body.contains("<script>"), "no inline script");
    let assets: Vec<String> = body
        .split('"')
        .filter(|p| p.starts_with("/assets/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(assets.len(), 2, "{assets:?}");
    for path in [
        "/login",
        "/",
        "/orgs",
        "/no/such/page",
        assets[0].as_str(),
        assets[1].as_str(),
    ] {
        let res = get_page(&app, None, path).await;
        assert_eq!(res.headers()["content-security-policy"], csp, "{path}");
        assert_eq!(res.headers()["x-frame-options"], "DENY", "{path}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    for asset in &assets {
        let res = get_page(&app, None, asset).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        let bytes = res.bytes().await.unwrap();
        let hash = asset.split('.').nth(1).unwrap();
        let digest = bulwark_crypto::sha256(&bytes);
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(hash, hex, "{asset}: the name carries the content's hash");
        assert!(
            ct.starts_with("text/css") || ct.starts_with("text/javascript"),
            "{ct}"
        );
    }
    let stale = assets[0].replace(assets[0].split('.').nth(1).unwrap(), "0000000000000000");
    assert_eq!(get_page(&app, None, &stale).await.status(), 404);
    // The API keeps its own policy.
    let api = get_page(&app, None, "/v1/openapi.json").await;
    assert_eq!(
        api.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    app.stop().await;
}

/// Keys through the console: a key is shown once on a `no-store` page and works at once; the
/// list never shows it; rotation shows the new one; revocation needs the confirmation and ends
/// it. A customer key in a key space is shown once and verifies through the API, then revoked.
async fn keys_through_the_console(backend: Backend) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org = setup["org"]["id"].as_str().unwrap().to_owned();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let keys = format!("/orgs/{org}/keys");
    let res = post_form(
        &app,
        Some(&owner),
        &keys,
        &[
            ("name", s("ci")),
            ("scopes", s("audit:read")),
            ("scopes", s("members:read")),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    let key = shown_secret(&page);
    assert!(key.starts_with("bwk_"), "{page}");
    let id = page
        .split("key_")
        .nth(1)
        .map(|rest| format!("key_{}", rest.split('<').next().unwrap()))
        .unwrap();
    let members = |key: String| {
        let app = &app;
        let org = org.clone();
        async move {
            app.client
                .get(app.url(&format!("/v1/orgs/{org}/members")))
                .header("authorization", format!("Bearer {key}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(members(key.clone()).await, 200);
    let list = get_page(&app, Some(&owner), &keys)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(&id) && !list.contains(&key),
        "listed, never shown again"
    );

    let res = post_form(
        &app,
        Some(&owner),
        &format!("{keys}/{id}/rotate"),
        &[("overlap_secs", s("0"))],
    )
    .await;
    assert_eq!(res.status(), 200);
    let rotated = res.text().await.unwrap();
    let new_key = shown_secret(&rotated);
    assert_ne!(new_key, key);
    assert_eq!(members(new_key.clone()).await, 200);
    assert_eq!(members(key).await, 401, "no overlap: the old key ended");
    let new_id = {
        let v: serde_json::Value = app
            .get_as(&owner, &format!("/v1/orgs/{org}/keys"))
            .await
            .json()
            .await
            .unwrap();
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["state"] == "live")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Revocation without the confirmation changes nothing.
    let res = post_form(&app, Some(&owner), &format!("{keys}/{new_id}/revoke"), &[]).await;
    assert_eq!(res.status(), 422);
    assert_eq!(members(new_key.clone()).await, 200);
    let res = post_form(
        &app,
        Some(&owner),
        &format!("{keys}/{new_id}/revoke"),
        &[("confirm", s("yes"))],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(members(new_key).await, 401);

    // A customer key.
    let res = post_form(
        &app,
        Some(&owner),
        &format!("/orgs/{org}/spaces/keys"),
        &[
            ("space", s("customers")),
            ("owner", s("cust_42")),
            ("name", s("acme")),
            ("scopes", s("read\nwrite")),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let customer = shown_secret(&page);
    let verifier: serde_json::Value = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/keys"),
            &json!({"name": "app", "scopes": ["spaces:verify"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let verify = app
        .client
        .post(app.url(&format!("/v1/orgs/{org}/keys/verify")))
        .header(
            "authorization",
            format!("Bearer {}", verifier["key"].as_str().unwrap()),
        )
        .json(&json!({"key": customer}))
        .send()
        .await
        .unwrap();
    let verdict: serde_json::Value = verify.json().await.unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["owner"], "cust_42");
    assert_eq!(verdict["scopes"], json!(["read", "write"]));
    app.stop().await;
}

/// The policy editor: an invalid set is refused with the validator's messages placed at their
/// line and the draft kept, nothing activated; a valid set is saved; the explain form answers
/// through `GET /v1/…/authz/explain` (the same answer the API gives), and records nothing.
async fn policies_edit_and_explain(backend: Backend) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org = setup["org"]["id"].as_str().unwrap().to_owned();
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let member = app
        .add_member(
            org.parse().unwrap(),
            "member@acme.test",
            PASSWORD,
            bulwark_types::Role::Member,
        )
        .await;
    let path = format!("/orgs/{org}/policies");
    let broken = "@id(\"org.ok\")\npermit (principal, action == Bulwark::Action::\"teams.read\", resource);\n\n@id(\"org.bad\")\npermit (principal, action == Bulwark::Action::\"no.such.action\", resource);\n";
    let res = post_form(&app, Some(&owner), &path, &[("policies", s(broken))]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Not saved: the policies are not valid."),
        "{page}"
    );
    assert!(
        page.contains("<li value=\"5\">"),
        "the error is placed at line 5: {page}"
    );
    assert!(page.contains("no.such.action"), "the draft is kept");
    let current: serde_json::Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/authz/policies"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(current["policies"], "", "nothing was activated");
    let forbid = "@id(\"org.no_member_keys\")\nforbid (principal in Bulwark::Role::\"member\", action == Bulwark::Action::\"keys.read\", resource);\n";
    let res = post_form(&app, Some(&owner), &path, &[("policies", s(forbid))]).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());

    let events_before: serde_json::Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/audit/events?limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    let q = format!("principal={member}&action=keys.read&target=org&role=");
    let page = get_page(&app, Some(&owner), &format!("{path}?{q}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Denied"), "{page}");
    let api: serde_json::Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/authz/explain?{q}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["allowed"], false, "{api}");
    assert_eq!(api["policies"], json!(["org.no_member_keys"]));
    assert!(page.contains("org.no_member_keys"));
    let as_admin = format!("principal={member}&action=keys.read&target=org&role=admin");
    let page = get_page(&app, Some(&owner), &format!("{path}?{as_admin}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Allowed"), "{page}");
    let events_after: serde_json::Value = app
        .get_as(&owner, &format!("/v1/orgs/{org}/audit/events?limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    let (before, after) = (
        events_before["events"].as_array().unwrap().len(),
        events_after["events"].as_array().unwrap().len(),
    );
    assert_eq!(after, before, "explaining records nothing");
    app.stop().await;
}

on_both_engines!(
    policies_edit_and_explain,
    keys_through_the_console,
    sign_in_through_the_forms,
    bad_input_gets_a_page_and_changes_nothing,
    a_form_outlives_its_session,
);

#[tokio::test]
async fn console_headers_and_assets_sqlite() {
    console_headers_and_assets(Backend::Sqlite).await;
}
