//! Lookalike spellings of an existing member's address, on both engines: each is refused or is
//! the same account (never a second one), and sign-in and its throttling key on the normal form.

use bulwark_testkit::{Backend, TestApp, on_both_engines, spawn_app};
use bulwark_types::{Email, OrgId, Role};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const OTHER_PASSWORD: &str = "quiet violet harbour lantern 42";
const MEMBER: &str = "memberB@b.example";
/// `ｍemberB@b.example`: a fullwidth `ｍ` (U+FF4D).
const FULLWIDTH: &str = "\u{FF4D}emberB@b.example";
/// `member​B@b.example`: a zero-width space (U+200B) inside.
const ZERO_WIDTH: &str = "member\u{200B}B@b.example";
/// `memberB@b.examрle`: a Cyrillic `р` (U+0440) in a Latin label.
const CYRILLIC: &str = "memberB@b.exam\u{0440}le";

async fn ready(backend: Backend) -> (TestApp, OrgId) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    app.add_member(org, MEMBER, PASSWORD, Role::Member).await;
    (app, org)
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The emailed invitation token of the newest message in the outbox.
fn newest_token(app: &TestApp) -> String {
    let dir = app.data_dir.path().join("data").join("outbox");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    let mail = std::fs::read_to_string(files.last().unwrap()).unwrap();
    let start = mail.find("bwinvite_").unwrap();
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

async fn assert_refused(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 422, "{what}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "validation_failed", "{what}");
    assert_eq!(body["errors"][0]["pointer"], "/email", "{what}");
}

async fn member_count(app: &TestApp, org: OrgId) -> usize {
    let mut read = app.state.store.org_read(org).await.unwrap();
    read.members().await.unwrap().len()
}

/// Inviting a lookalike of an existing member: the fullwidth spelling is that member's address
/// (its acceptance needs the member's own password and makes no second account); the
/// zero-width and mixed-script spellings are refused with the field's pointer.
async fn lookalike_invitations_are_refused_or_reach_the_same_account(backend: Backend) {
    let (app, org) = ready(backend).await;
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let invitations = format!("/v1/orgs/{org}/invitations");
    let before = member_count(&app, org).await;
    for lookalike in [ZERO_WIDTH, CYRILLIC] {
        let body = json!({"email": lookalike, "role": "admin"});
        let res = app.send_as(&owner, Method::POST, &invitations, &body).await;
        assert_refused(res, lookalike).await;
    }
    let body = json!({"email": FULLWIDTH, "role": "admin"});
    let res = app.send_as(&owner, Method::POST, &invitations, &body).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["email"], MEMBER, "stored in its normal form");
    let token = newest_token(&app);
    // Before the fix this made a second account that looked like the member's.
    let res = post(
        &app,
        "/v1/invitations/accept",
        &json!({"token": token, "password": OTHER_PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401, "the existing account must prove itself");
    let res = post(
        &app,
        "/v1/invitations/accept",
        &json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 409, "the member is a member already");
    assert_eq!(member_count(&app, org).await, before, "no second account");
    let mut sys = app.state.store.system().await.unwrap();
    let real = sys
        .user_by_email(&MEMBER.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let spelled: Email = FULLWIDTH.parse().unwrap();
    let found = sys.user_by_email(&spelled).await.unwrap().unwrap();
    assert_eq!(found.id, real.id);
}

/// Sign-in with the fullwidth or upper-case spelling is the member's sign-in, and failures under
/// any spelling count against the one account; the invisible spelling is refused outright.
async fn sign_in_and_its_throttling_use_the_normal_form(backend: Backend) {
    let (app, _) = ready(backend).await;
    let ok = post(
        &app,
        "/v1/auth/login",
        &json!({"email": FULLWIDTH, "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        ok.status(),
        200,
        "the fullwidth spelling is the member's address"
    );
    let res = post(
        &app,
        "/v1/auth/login",
        &json!({"email": ZERO_WIDTH, "password": PASSWORD}),
    )
    .await;
    assert_refused(res, ZERO_WIDTH).await;
    let upper = MEMBER.to_uppercase();
    for spelling in [MEMBER, FULLWIDTH, upper.as_str(), FULLWIDTH, MEMBER] {
        let res = post(
            &app,
            "/v1/auth/login",
            &json!({"email": spelling, "password": "wrong password!!"}),
        )
        .await;
        assert_eq!(res.status(), 401, "{spelling}");
    }
    // Five failures spread over three spellings: the account waits, under any spelling.
    for spelling in [FULLWIDTH, MEMBER] {
        let res = post(
            &app,
            "/v1/auth/login",
            &json!({"email": spelling, "password": PASSWORD}),
        )
        .await;
        assert_eq!(res.status(), 429, "{spelling}");
    }
}

on_both_engines!(
    lookalike_invitations_are_refused_or_reach_the_same_account,
    sign_in_and_its_throttling_use_the_normal_form,
);
