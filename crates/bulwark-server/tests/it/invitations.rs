//! Invitations, email verification and password reset through the mail outbox, on both
//! engines: tokens work once, expire, and never appear outside the email.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use bulwark_testkit::{Backend, TestApp, on_both_engines, spawn_app};
use bulwark_types::{OrgId, Role};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";
const NEW_PASSWORD: &str = "quiet violet harbour lantern 42";

async fn ready(backend: Backend) -> (TestApp, OrgId) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    (app, org)
}

pub(crate) fn outbox(app: &TestApp) -> std::path::PathBuf {
    app.data_dir.path().join("data").join("outbox")
}

/// The messages in the outbox, oldest first, waiting up to 5 s for `count` of them.
pub(crate) async fn mails(app: &TestApp, count: usize) -> Vec<String> {
    for _ in 0..50 {
        let mut files: Vec<_> = std::fs::read_dir(outbox(app))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        if files.len() >= count {
            return files
                .iter()
                .map(|p| {
                    let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode, 0o600, "{}", p.display());
                    std::fs::read_to_string(p).unwrap()
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {count} emails in the outbox");
}

pub(crate) fn token_in(mail: &str, prefix: &str) -> String {
    let start = mail
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} token in {mail}"));
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

pub(crate) async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The audit logs (system and the org's) as one text.
async fn all_audit_text(app: &TestApp, org: OrgId) -> String {
    let mut text = String::new();
    let mut sys = app.state.store.system().await.unwrap();
    for r in sys.audit_events(0, 10_000).await.unwrap() {
        text.push_str(&String::from_utf8_lossy(
            r.body.as_deref().unwrap_or_default(),
        ));
    }
    let mut read = app.state.store.org_read(org).await.unwrap();
    for r in read.audit_events(0, 10_000).await.unwrap() {
        text.push_str(&String::from_utf8_lossy(
            r.body.as_deref().unwrap_or_default(),
        ));
    }
    text
}

/// An owner invites; the token reaches only the email; a weak password does not spend it; the
/// invitee joins once with a verified address; a withdrawn or forged token is refused; an admin
/// cannot invite an owner.
async fn an_invitation_is_accepted_once(backend: Backend) {
    let (app, org) = ready(backend).await;
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let invitations = format!("/v1/orgs/{org}/invitations");
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &invitations,
            &json!({"email": "new@acme.test", "role": "member"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["role"], "member");
    let mode = std::fs::metadata(outbox(&app))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    let mail = mails(&app, 1).await.remove(0);
    assert!(mail.contains("To: new@acme.test\r\n"), "{mail}");
    let token = token_in(&mail, "bwinvite_");
    assert!(
        !created.to_string().contains(&token),
        "the token is only in the email"
    );
    let list: Value = app.get_as(&owner, &invitations).await.json().await.unwrap();
    assert_eq!(list["invitations"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&token));

    let accept = |token: &str, password: &str| json!({"token": token, "password": password});
    let res = post(
        &app,
        "/v1/invitations/accept",
        &accept(&token, "passwordpassword"),
    )
    .await;
    assert_eq!(
        res.status(),
        422,
        "a weak password is refused before the token is spent"
    );
    let forged = format!("{}x", &token[..token.len() - 1]);
    for bad in [forged.as_str(), "bwinvite_", "not-a-token"] {
        let res = post(&app, "/v1/invitations/accept", &accept(bad, NEW_PASSWORD)).await;
        assert_eq!(res.status(), 401, "{bad}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "invalid_code");
    }
    let res = post(
        &app,
        "/v1/invitations/accept",
        &accept(&token, NEW_PASSWORD),
    )
    .await;
    assert_eq!(res.status(), 200);
    let joined: Value = res.json().await.unwrap();
    assert_eq!(joined["org"], org.to_string());
    let res = post(
        &app,
        "/v1/invitations/accept",
        &accept(&token, NEW_PASSWORD),
    )
    .await;
    assert_eq!(res.status(), 401, "an invitation works once");
    let member = app.login("new@acme.test", NEW_PASSWORD).await;
    let me: Value = app
        .get_as(&member, &format!("/v1/auth/session?org={org}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["membership"]["role"], "member");
    let mut sys = app.state.store.system().await.unwrap();
    let user = sys
        .user_by_email(&"new@acme.test".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.email_verified_at.is_some(),
        "the token proved the address"
    );
    drop(sys);

    // A withdrawn invitation no longer works.
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &invitations,
            &json!({"email": "late@acme.test", "role": "auditor"}),
        )
        .await;
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let late = token_in(&mails(&app, 2).await[1], "bwinvite_");
    let parsed: bulwark_types::InvitationId = id.parse().expect("an `inv_…` id");
    // The bare UUID, or an id of another kind, names no invitation.
    for other in [
        parsed.as_uuid().to_string(),
        format!("usr_{}", parsed.as_uuid().simple()),
    ] {
        let res = app
            .send_as(
                &owner,
                Method::DELETE,
                &format!("{invitations}/{other}"),
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), 404, "{other}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "not_found");
    }
    let res = app
        .send_as(
            &owner,
            Method::DELETE,
            &format!("{invitations}/{id}"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = post(&app, "/v1/invitations/accept", &accept(&late, NEW_PASSWORD)).await;
    assert_eq!(res.status(), 401);

    // Admins invite, but not owners.
    app.add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let admin = app.login("admin@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &admin,
            Method::POST,
            &invitations,
            &json!({"email": "boss@acme.test", "role": "owner"}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .send_as(
            &admin,
            Method::POST,
            &invitations,
            &json!({"email": "x@acme.test", "role": "member"}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let audit = all_audit_text(&app, org).await;
    assert!(
        !audit.contains(&token) && !audit.contains(&late),
        "no token in any audit event"
    );
    assert!(audit.contains("member.invited") && audit.contains("member.invitation_revoked"));
}

/// An existing account joins another org by proving its password, not by setting a new one.
async fn an_existing_account_accepts_with_its_password(backend: Backend) {
    let (app, org) = ready(backend).await;
    app.add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &owner,
            Method::POST,
            &format!("/v1/orgs/{org}/invitations"),
            &json!({"email": "ADMIN@acme.test", "role": "auditor"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let token = token_in(&mails(&app, 1).await[0], "bwinvite_");
    let res = post(
        &app,
        "/v1/invitations/accept",
        &json!({"token": token, "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401, "not the account's password");
    let res = post(
        &app,
        "/v1/invitations/accept",
        &json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 409, "already a member of this org");
}

/// A reset request answers alike for known and unknown addresses; the token works once, sets a
/// strong password only, and ends every session.
async fn a_password_reset_works_once_and_ends_every_session(backend: Backend) {
    let (app, org) = ready(backend).await;
    app.add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    let before = app.login("member@acme.test", PASSWORD).await;
    let known = post(
        &app,
        "/v1/auth/password/reset-request",
        &json!({"email": "member@acme.test"}),
    )
    .await;
    let unknown = post(
        &app,
        "/v1/auth/password/reset-request",
        &json!({"email": "ghost@acme.test"}),
    )
    .await;
    assert_eq!(known.status(), 202);
    assert_eq!(unknown.status(), 202);
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    let mail = mails(&app, 1).await.remove(0);
    assert!(mail.contains("To: member@acme.test\r\n"));
    let token = token_in(&mail, "bwreset_");
    let reset = |password: &str| json!({"token": token, "new_password": password});
    let res = post(&app, "/v1/auth/password/reset", &reset("passwordpassword")).await;
    assert_eq!(res.status(), 422);
    let res = post(&app, "/v1/auth/password/reset", &reset(NEW_PASSWORD)).await;
    assert_eq!(res.status(), 204);
    let res = post(
        &app,
        "/v1/auth/password/reset",
        &reset("another quiet harbour lantern 7"),
    )
    .await;
    assert_eq!(res.status(), 401, "a reset token works once");
    assert_eq!(app.get_as(&before, "/v1/auth/session").await.status(), 401);
    let res = post(
        &app,
        "/v1/auth/login",
        &json!({"email": "member@acme.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401);
    app.login("member@acme.test", NEW_PASSWORD).await;
    assert_eq!(
        mails(&app, 1).await.len(),
        1,
        "no email for the unknown address"
    );
    let audit = all_audit_text(&app, org).await;
    assert!(!audit.contains(&token));
    assert!(audit.contains("auth.password.reset_requested") && audit.contains("password_reset"));
}

/// A member verifies their address once with the emailed token.
async fn an_email_address_is_verified_once(backend: Backend) {
    let (app, org) = ready(backend).await;
    let id = app
        .add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    let member = app.login("member@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &member,
            Method::POST,
            "/v1/auth/email/verification",
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let token = token_in(&mails(&app, 1).await[0], "bwverify_");
    let res = post(&app, "/v1/auth/email/verify", &json!({"token": token})).await;
    assert_eq!(res.status(), 204);
    let res = post(&app, "/v1/auth/email/verify", &json!({"token": token})).await;
    assert_eq!(res.status(), 401);
    let mut sys = app.state.store.system().await.unwrap();
    assert!(
        sys.user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .email_verified_at
            .is_some()
    );
    drop(sys);
    let res = app
        .send_as(
            &member,
            Method::POST,
            "/v1/auth/email/verification",
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 409, "already verified");
}

on_both_engines!(
    an_invitation_is_accepted_once,
    an_existing_account_accepts_with_its_password,
    a_password_reset_works_once_and_ends_every_session,
    an_email_address_is_verified_once,
);

/// Sign-up is off by default; when on, a new and an existing address get the same answer, the
/// new one an unverified account and a verification email, the existing one only a note.
async fn self_sign_up_is_off_by_default_and_does_not_enumerate(backend: Backend) {
    let (app, _) = ready(backend).await;
    let body = |email: &str| json!({"email": email, "password": NEW_PASSWORD});
    let res = post(&app, "/v1/auth/signup", &body("x@acme.test")).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "signup_disabled"
    );
    drop(app);

    let app = bulwark_testkit::spawn_app_with(backend, |c| c.signup.enabled = true).await;
    app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let weak = post(
        &app,
        "/v1/auth/signup",
        &json!({"email": "n@acme.test", "password": "short"}),
    )
    .await;
    assert_eq!(weak.status(), 422);
    let new = post(&app, "/v1/auth/signup", &body("new@acme.test")).await;
    let old = post(&app, "/v1/auth/signup", &body("owner@acme.test")).await;
    assert_eq!(new.status(), 202);
    assert_eq!(old.status(), 202);
    assert_eq!(new.text().await.unwrap(), old.text().await.unwrap());
    let sent = mails(&app, 2).await;
    let verify = sent
        .iter()
        .find(|m| m.contains("To: new@acme.test"))
        .unwrap();
    let note = sent
        .iter()
        .find(|m| m.contains("To: owner@acme.test"))
        .unwrap();
    assert!(note.contains("already has"), "{note}");
    assert!(!note.contains("bwverify_"));
    let token = token_in(verify, "bwverify_");
    assert_eq!(
        post(&app, "/v1/auth/email/verify", &json!({"token": token}))
            .await
            .status(),
        204
    );
    app.login("new@acme.test", NEW_PASSWORD).await;
    // The existing account is untouched: its own password still works, the new one does not.
    app.login("owner@acme.test", PASSWORD).await;
    let res = post(
        &app,
        "/v1/auth/login",
        &json!({"email": "owner@acme.test", "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401);
}

on_both_engines!(self_sign_up_is_off_by_default_and_does_not_enumerate);
