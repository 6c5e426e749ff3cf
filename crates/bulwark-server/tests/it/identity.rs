//! Throttling, TOTP MFA, session management and password changes over HTTP, as attacks as well
//! as happy paths, on both engines.

use bulwark_testkit::{Backend, SignedIn, TestApp, on_both_engines, spawn_app, totp_now};
use bulwark_types::{OrgId, Role};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a long enough password";

async fn ready(backend: Backend) -> (TestApp, OrgId) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    (app, org)
}

async fn attempt(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn system_actions(app: &TestApp) -> Vec<(String, Option<String>)> {
    let mut sys = app.state.store.system().await.unwrap();
    sys.audit_events(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
            (
                r.action.clone(),
                v["outcome"]["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn status_of(app: &TestApp, who: &SignedIn, path: &str) -> u16 {
    app.get_as(who, path).await.status().as_u16()
}

/// Five wrong passwords for one account, and the sixth attempt waits even with the right
/// password; an unknown email is throttled the same way (no oracle).
async fn repeated_failures_for_one_account_are_slowed_down(backend: Backend) {
    let (app, _) = ready(backend).await;
    for email in ["owner@acme.test", "nobody@acme.test"] {
        for _ in 0..5 {
            assert_eq!(attempt(&app, email, "wrong password!!").await.status(), 401);
        }
        let res = attempt(&app, email, PASSWORD).await;
        assert_eq!(res.status(), 429, "{email}");
        let wait: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&wait));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "too_many_attempts");
    }
    let actions = system_actions(&app).await;
    assert!(
        actions
            .iter()
            .any(|(a, r)| a == "auth.login.failed" && r.as_deref() == Some("throttled"))
    );
}

/// Credential stuffing: many accounts, one password each, from one address: after 20 failures
/// the address waits, whichever account it tries next.
async fn credential_stuffing_from_one_address_is_slowed_down(backend: Backend) {
    let (app, _) = ready(backend).await;
    let mut throttled_at = None;
    for i in 0..30 {
        let res = attempt(&app, &format!("victim{i}@acme.test"), "Summer2026!").await;
        if res.status() == 429 {
            throttled_at = Some(i);
            break;
        }
        assert_eq!(res.status(), 401);
    }
    assert_eq!(
        throttled_at,
        Some(20),
        "the 21st attempt from one address waits"
    );
    // The real owner, from the same address, must wait too.
    assert_eq!(
        attempt(&app, "owner@acme.test", PASSWORD).await.status(),
        429
    );
}

/// Org routes demand MFA of owners by default; enrolment gives a new session (the old one
/// ends) and ten backup codes; a sign-in then owes the second factor, a pending session can do
/// nothing else, a used code is refused, and a backup code works once.
async fn owners_need_mfa_and_codes_work_once(backend: Backend) {
    let (app, org) = ready(backend).await;
    let audit = format!("/v1/orgs/{org}/audit/events");
    let plain = app.login("owner@acme.test", PASSWORD).await;
    let res = app.get_as(&plain, &audit).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "mfa_enrollment_required");

    // Enrolment needs the password and a correct first code.
    let res = app
        .send_as(
            &plain,
            Method::POST,
            "/v1/auth/mfa/totp",
            &json!({"password": "nope nope nope"}),
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .send_as(
            &plain,
            Method::POST,
            "/v1/auth/mfa/totp",
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let started: Value = res.json().await.unwrap();
    let uri = started["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Bulwark:owner%40acme.test?secret="),
        "{uri}"
    );
    assert!(started["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret =
        bulwark_crypto::TotpSecret::from_base32(started["secret"].as_str().unwrap()).unwrap();
    let res = app
        .send_as(
            &plain,
            Method::POST,
            "/v1/auth/mfa/totp/confirm",
            &json!({"code": "000000"}),
        )
        .await;
    // (A real code is 000000 once in a million; the test accepts that flake risk.)
    assert_eq!(res.status(), 401);
    let refused = system_actions(&app).await;
    assert!(
        refused
            .iter()
            .any(|(a, r)| a == "auth.login.failed" && r.as_deref() == Some("invalid_code")),
        "a refused enrolment code is audited"
    );
    let confirm_code = totp_now(&secret, 0);
    let res = app
        .send_as(
            &plain,
            Method::POST,
            "/v1/auth/mfa/totp/confirm",
            &json!({"code": confirm_code}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let enrolled = SignedIn::from_response(res).await;
    let codes: Vec<String> = enrolled.body["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    assert_ne!(
        enrolled.cookie, plain.cookie,
        "a new session id after the privilege change"
    );
    assert_eq!(
        status_of(&app, &plain, "/v1/auth/session").await,
        401,
        "old session ended"
    );
    assert_eq!(status_of(&app, &enrolled, &audit).await, 200);
    // Backup codes are stored hashed: none appears in the database's audit log or elsewhere.
    let actions = system_actions(&app).await;
    assert!(actions.iter().any(|(a, _)| a == "auth.mfa.enrolled"));

    // A new sign-in owes the second factor and can do nothing else meanwhile.
    let pending = app.login("owner@acme.test", PASSWORD).await;
    assert_eq!(pending.body["session"]["stage"], "mfa_pending");
    let res = app.get_as(&pending, "/v1/auth/sessions").await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "mfa_pending");
    assert_eq!(status_of(&app, &pending, &audit).await, 401);
    // The code spent on enrolment is refused (replay), a wrong one too.
    for code in [confirm_code.as_str(), "12345", "abcdef"] {
        let res = app
            .send_as(
                &pending,
                Method::POST,
                "/v1/auth/mfa/verify",
                &json!({"code": code}),
            )
            .await;
        assert_eq!(res.status(), 401, "{code}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "invalid_code");
    }
    // The next step's code (within the allowed skew) works, once.
    let next = totp_now(&secret, 1);
    let res = app
        .send_as(
            &pending,
            Method::POST,
            "/v1/auth/mfa/verify",
            &json!({"code": next}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let full = SignedIn::from_response(res).await;
    assert_eq!(full.body["session"]["stage"], "active");
    assert_eq!(status_of(&app, &full, &audit).await, 200);
    assert_eq!(status_of(&app, &pending, "/v1/auth/session").await, 401);
    let again = app.login("owner@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &again,
            Method::POST,
            "/v1/auth/mfa/verify",
            &json!({"code": next}),
        )
        .await;
    assert_eq!(res.status(), 401, "a TOTP code works once");

    // A backup code, in any case and spacing, works once.
    let code = codes[0].to_lowercase().replace('-', " ");
    let res = app
        .send_as(
            &again,
            Method::POST,
            "/v1/auth/mfa/verify",
            &json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let with_backup = SignedIn::from_response(res).await;
    let me: Value = app
        .get_as(&with_backup, "/v1/auth/session")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa"]["totp_enrolled"], true);
    assert_eq!(me["mfa"]["backup_codes_left"], 9);
    let third = app.login("owner@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &third,
            Method::POST,
            "/v1/auth/mfa/verify",
            &json!({"code": codes[0]}),
        )
        .await;
    assert_eq!(res.status(), 401, "a backup code works once");
    // A user who gives up on the second factor can still sign out of the pending session.
    let res = app
        .send_as(&third, Method::POST, "/v1/auth/logout", &json!({}))
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .send_as(
            &third,
            Method::POST,
            "/v1/auth/mfa/verify",
            &json!({"code": codes[1]}),
        )
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "unauthenticated"
    );
    let actions = system_actions(&app).await;
    assert!(
        actions
            .iter()
            .any(|(a, r)| a == "auth.login.failed" && r.as_deref() == Some("code_replayed"))
    );
    assert!(
        actions
            .iter()
            .any(|(a, _)| a == "auth.mfa.backup_code_used")
    );
}

/// A user lists their sessions and ends another one; another user's session id is not theirs
/// to end; a password change ends every other session and needs the current password and a
/// strong new one.
async fn sessions_are_listed_revoked_and_ended_by_a_password_change(backend: Backend) {
    let (app, org) = ready(backend).await;
    app.add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    let laptop = app.login("member@acme.test", PASSWORD).await;
    let phone = app.login("member@acme.test", PASSWORD).await;
    let tablet = app.login("member@acme.test", PASSWORD).await;
    let list: Value = app
        .get_as(&laptop, "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| s["source_ip"] == "127.0.0.1"));
    let phone_id = phone.body["session"]["id"].as_str().unwrap();
    // Ending a session takes the password again (ASVS V7.5.2): none, or a wrong one, ends
    // nothing.
    for body in [json!({}), json!({"password": "not the password at all"})] {
        let res = app
            .send_as(
                &laptop,
                Method::DELETE,
                &format!("/v1/auth/sessions/{phone_id}"),
                &body,
            )
            .await;
        assert!([401, 422].contains(&res.status().as_u16()), "{body}");
        assert_eq!(status_of(&app, &phone, "/v1/auth/session").await, 200);
    }
    let res = app
        .send_as(
            &laptop,
            Method::DELETE,
            &format!("/v1/auth/sessions/{phone_id}"),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(status_of(&app, &phone, "/v1/auth/session").await, 401);
    // The owner cannot end the member's session through their own list.
    let owner = app.login("owner@acme.test", PASSWORD).await;
    let tablet_id = tablet.body["session"]["id"].as_str().unwrap();
    let res = app
        .send_as(
            &owner,
            Method::DELETE,
            &format!("/v1/auth/sessions/{tablet_id}"),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(status_of(&app, &tablet, "/v1/auth/session").await, 200);
    // Every other session at once, again with the password; this one stays.
    let desk = app.login("member@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &desk,
            Method::DELETE,
            "/v1/auth/sessions",
            &json!({"password": "not the password at all"}),
        )
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(status_of(&app, &tablet, "/v1/auth/session").await, 200);
    let res = app
        .send_as(
            &desk,
            Method::DELETE,
            "/v1/auth/sessions",
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let ended: Value = res.json().await.unwrap();
    assert_eq!(ended["sessions_revoked"], 2, "the laptop and the tablet");
    for gone in [&laptop, &tablet] {
        assert_eq!(status_of(&app, gone, "/v1/auth/session").await, 401);
    }
    assert_eq!(status_of(&app, &desk, "/v1/auth/session").await, 200);
    let laptop = app.login("member@acme.test", PASSWORD).await;

    // Password change: the current password is checked, the new one must be strong.
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let res = app
        .send_as(
            &laptop,
            Method::POST,
            "/v1/auth/password",
            &change("wrong wrong wrong", "x"),
        )
        .await;
    assert_eq!(res.status(), 401);
    for weak in ["Zq9$k", "passwordpassword", "member@acme.test is me"] {
        let res = app
            .send_as(
                &laptop,
                Method::POST,
                "/v1/auth/password",
                &change(PASSWORD, weak),
            )
            .await;
        assert_eq!(res.status(), 422, "{weak}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "weak_password");
        assert!(
            !body.to_string().contains(weak),
            "the password is not echoed"
        );
    }
    let new = "quiet violet harbour lantern 42";
    let res = app
        .send_as(
            &laptop,
            Method::POST,
            "/v1/auth/password",
            &change(PASSWORD, new),
        )
        .await;
    assert_eq!(res.status(), 200);
    let rotated = SignedIn::from_response(res).await;
    assert_eq!(rotated.body["sessions_revoked"], 1);
    assert_eq!(status_of(&app, &tablet, "/v1/auth/session").await, 401);
    // This session was replaced: the id known before the change is worth nothing after it.
    assert_eq!(status_of(&app, &laptop, "/v1/auth/session").await, 401);
    assert_ne!(rotated.cookie, laptop.cookie);
    assert_eq!(status_of(&app, &rotated, "/v1/auth/session").await, 200);
    assert_eq!(
        attempt(&app, "member@acme.test", PASSWORD).await.status(),
        401
    );
    app.login("member@acme.test", new).await;
}

/// An admin ends all of a member's sessions and resets their MFA; an admin cannot do either to
/// an owner, nor to themself through this route; an outsider gets 404.
async fn admins_revoke_members_sessions_but_not_owners(backend: Backend) {
    let (app, org) = ready(backend).await;
    let member_id = app
        .add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    app.add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let owner_id = owner.body["user"]["id"].as_str().unwrap().to_owned();
    let admin = app.login("admin@acme.test", PASSWORD).await;
    let member = app.login("member@acme.test", PASSWORD).await;
    let revoke = |user: &str| format!("/v1/orgs/{org}/members/{user}/sessions");
    let res = app
        .send_as(
            &admin,
            Method::DELETE,
            &revoke(&member_id.to_string()),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["sessions_revoked"], 1);
    assert_eq!(status_of(&app, &member, "/v1/auth/session").await, 401);
    let res = app
        .send_as(&admin, Method::DELETE, &revoke(&owner_id), &json!({}))
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(status_of(&app, &owner, "/v1/auth/session").await, 200);
    let res = app
        .send_as(
            &admin,
            Method::DELETE,
            &format!("/v1/orgs/{org}/members/{owner_id}/mfa"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 403);
    // Owner resets the admin's (absent) MFA: allowed, and ends the admin's sessions.
    let admin_id = admin.body["user"]["id"].as_str().unwrap().to_owned();
    let res = app
        .send_as(
            &owner,
            Method::DELETE,
            &format!("/v1/orgs/{org}/members/{admin_id}/mfa"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(status_of(&app, &admin, "/v1/auth/session").await, 401);
    // Without the CSRF token the same request is refused.
    let res = app
        .client
        .delete(app.url(&revoke(&member_id.to_string())))
        .header(reqwest::header::COOKIE, &owner.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let actions = system_actions(&app).await;
    assert!(actions.iter().any(|(a, _)| a == "auth.sessions.revoked"));
    assert!(actions.iter().any(|(a, _)| a == "auth.mfa.removed"));
}

/// A disabled user's live session stops working on the next request, and they cannot sign
/// in (with the same answer as a wrong password).
async fn a_disabled_user_is_locked_out_at_once(backend: Backend) {
    let (app, org) = ready(backend).await;
    let id = app
        .add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    let member = app.login("member@acme.test", PASSWORD).await;
    let mut tx = app.state.store.system().await.unwrap();
    let mut user = tx.user_by_id(id).await.unwrap().unwrap();
    user.disabled_at = Some(app.state.clock.now());
    tx.update_user(&user).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(status_of(&app, &member, "/v1/auth/session").await, 401);
    let res = attempt(&app, "member@acme.test", PASSWORD).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "invalid_credentials"
    );
    let actions = system_actions(&app).await;
    assert!(
        actions
            .iter()
            .any(|(a, r)| a == "auth.login.failed" && r.as_deref() == Some("account_disabled"))
    );
}

/// The org policy is the owner's to change; its MFA rule applies at once.
async fn org_policy_is_owned_and_applies_at_once(backend: Backend) {
    let (app, org) = ready(backend).await;
    app.add_member(org, "admin@acme.test", PASSWORD, Role::Admin)
        .await;
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let admin = app.login("admin@acme.test", PASSWORD).await;
    let policy = format!("/v1/orgs/{org}/policy");
    let got: Value = app.get_as(&owner, &policy).await.json().await.unwrap();
    assert_eq!(got["mfa_required"], "owners");
    assert_eq!(status_of(&app, &admin, &policy).await, 200);
    let strict = json!({"session_idle_secs": 600, "session_absolute_secs": null,
        "mfa_required": "owners_admins", "password_composition": false});
    let res = app.send_as(&admin, Method::PUT, &policy, &strict).await;
    assert_eq!(res.status(), 403, "admins cannot change it");
    for bad in [
        json!({"session_idle_secs": 5, "session_absolute_secs": null, "mfa_required": "owners", "password_composition": false}),
        json!({"session_idle_secs": null, "session_absolute_secs": null, "mfa_required": "all", "password_composition": false}),
    ] {
        let res = app.send_as(&owner, Method::PUT, &policy, &bad).await;
        assert_eq!(res.status(), 422);
    }
    let res = app.send_as(&owner, Method::PUT, &policy, &strict).await;
    assert_eq!(res.status(), 200);
    let res = app.get_as(&admin, &policy).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "mfa_enrollment_required"
    );
    let me: Value = app
        .get_as(&admin, &format!("/v1/auth/session?org={org}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["membership"]["role"], "admin");
    assert_eq!(me["membership"]["mfa_required"], true);

    // `everyone` (ASVS V6.3.3): a member and an auditor without a second factor reach nothing
    // of the org either, until they enrol.
    app.add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    app.add_member(org, "auditor@acme.test", PASSWORD, Role::Auditor)
        .await;
    let member = app.login("member@acme.test", PASSWORD).await;
    let auditor = app.login("auditor@acme.test", PASSWORD).await;
    let members = format!("/v1/orgs/{org}/members");
    assert_eq!(status_of(&app, &member, &members).await, 200);
    let everyone = json!({"session_idle_secs": null, "session_absolute_secs": null,
        "mfa_required": "everyone", "password_composition": false});
    let res = app.send_as(&owner, Method::PUT, &policy, &everyone).await;
    assert_eq!(res.status(), 200);
    for who in [&member, &auditor] {
        let res = app.get_as(who, &members).await;
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.json::<Value>().await.unwrap()["code"],
            "mfa_enrollment_required"
        );
    }
    let enrolled = app.login_mfa("member@acme.test", PASSWORD).await;
    assert_eq!(status_of(&app, &enrolled, &members).await, 200);
    let got: Value = app.get_as(&owner, &policy).await.json().await.unwrap();
    assert_eq!(got["mfa_required"], "everyone");
}

async fn org_actions(app: &TestApp, org: OrgId) -> Vec<(String, Option<String>, Option<String>)> {
    let mut read = app.state.store.org_read(org).await.unwrap();
    read.audit_events(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
            // Whom it is about: the actor of a success, the account named by a failure.
            let who = match v["actor"]["id"].as_str() {
                Some(actor) if actor.starts_with("usr_") => Some(actor),
                _ => v["resource"]["id"].as_str(),
            };
            (
                r.action.clone(),
                who.map(str::to_owned),
                v["outcome"]["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// A person lists the orgs they belong to (and only theirs), and their sign-ins — successes,
/// and wrong second-factor codes — are recorded in each of their orgs' logs, where the org's
/// admins (and webhook endpoints) see them; another org's log stays silent. A wrong password is
/// recorded in the system log only: recording it for a known account alone would make known
/// accounts answer later than unknown emails.
async fn members_find_their_orgs_and_their_orgs_see_their_sign_ins(backend: Backend) {
    let (app, acme) = ready(backend).await;
    let member = app
        .add_member(acme, "member@acme.test", PASSWORD, Role::Member)
        .await;
    let stranger = app.create_user("stranger@else.test", PASSWORD).await;
    let globex = app.create_org("globex", stranger).await;
    let mut tx = app.state.store.org(globex).await.unwrap();
    tx.add_member(member, Role::Auditor, app.state.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let initech = app.create_org("initech", stranger).await;

    let signed = app.login("member@acme.test", PASSWORD).await;
    let mine: Value = app
        .get_as(&signed, "/v1/me/orgs")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<(String, String)> = mine["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_owned(),
                o["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (acme.to_string(), "member".into()),
            (globex.to_string(), "auditor".into())
        ]
    );
    assert_eq!(mine["orgs"][1]["slug"], "globex");
    let res = app.client.get(app.url("/v1/me/orgs")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    assert_eq!(
        attempt(&app, "member@acme.test", "wrong wrong wrong")
            .await
            .status(),
        401
    );
    let me = member.to_string();
    for org in [acme, globex] {
        let actions = org_actions(&app, org).await;
        assert!(
            actions
                .iter()
                .any(|(a, who, _)| a == "auth.login.succeeded"
                    && who.as_deref() == Some(me.as_str())),
            "{org}: {actions:?}"
        );
        assert!(
            !actions.iter().any(|(a, _, _)| a == "auth.login.failed"),
            "{org}: {actions:?}"
        );
    }
    // Not the member's org: nothing of their sign-ins; nor an unknown email's anywhere.
    assert!(
        !org_actions(&app, initech)
            .await
            .iter()
            .any(|(a, _, _)| a.starts_with("auth.")),
    );
    attempt(&app, "nobody@acme.test", "wrong wrong wrong").await;
    assert!(
        !org_actions(&app, acme)
            .await
            .iter()
            .any(|(_, who, _)| who.as_deref() == Some("unknown")),
    );
}

on_both_engines!(
    members_find_their_orgs_and_their_orgs_see_their_sign_ins,
    repeated_failures_for_one_account_are_slowed_down,
    credential_stuffing_from_one_address_is_slowed_down,
    owners_need_mfa_and_codes_work_once,
    sessions_are_listed_revoked_and_ended_by_a_password_change,
    admins_revoke_members_sessions_but_not_owners,
    a_disabled_user_is_locked_out_at_once,
    org_policy_is_owned_and_applies_at_once,
);

/// Secrets of the identity flows (password, TOTP secret, backup codes, session token) appear in
/// no log line, no audit event, and (for the TOTP secret) not in the database in the clear.
#[tokio::test]
async fn identity_secrets_never_reach_logs_audit_or_storage_in_the_clear() {
    let cap = bulwark_testkit::logs::capture(bulwark_server::config::LogFormat::Json, "debug");
    let (app, org) = ready(Backend::Sqlite).await;
    let plain = app.login("owner@acme.test", PASSWORD).await;
    let (signed, secret, codes) = app.enroll_totp(&plain, PASSWORD).await;
    let pending = app.login("owner@acme.test", PASSWORD).await;
    let res = app
        .send_as(
            &pending,
            Method::POST,
            "/v1/auth/mfa/verify",
            &json!({"code": codes[1]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let _ = app
        .get_as(&signed, &format!("/v1/orgs/{org}/audit/events"))
        .await;
    let secret_b32 = secret.to_base32().to_string();
    let mut audit = String::new();
    let mut sys = app.state.store.system().await.unwrap();
    for r in sys.audit_events(0, 10_000).await.unwrap() {
        audit.push_str(&String::from_utf8_lossy(
            r.body.as_deref().unwrap_or_default(),
        ));
    }
    let stored = sys
        .totp(signed.body["user"]["id"].as_str().unwrap().parse().unwrap())
        .await;
    let sealed = stored.unwrap().unwrap().secret_sealed;
    drop(sys);
    assert!(
        !sealed
            .windows(secret.expose_bytes().len())
            .any(|w| w == secret.expose_bytes()),
        "the TOTP secret is stored sealed"
    );
    // The database file and its write-ahead log, where recent pages live.
    let data = app.data_dir.path().join("data");
    let mut db = std::fs::read(data.join("bulwark.db")).unwrap();
    db.extend(std::fs::read(data.join("bulwark.db-wal")).unwrap_or_default());
    let db_text = String::from_utf8_lossy(&db);
    let logs = cap.text();
    let session_token = plain.cookie.split_once('=').unwrap().1.to_owned();
    for (what, needle) in [
        ("password", PASSWORD.to_owned()),
        ("TOTP secret", secret_b32.clone()),
        ("backup code", codes[0].clone()),
        ("backup code", codes[1].clone()),
        ("session token", session_token),
    ] {
        assert!(!logs.contains(&needle), "{what} in the logs");
        assert!(!audit.contains(&needle), "{what} in the audit log");
        assert!(!db_text.contains(&needle), "{what} in the database file");
    }
}

/// A hash made with weaker parameters than configured is replaced at the next sign-in.
#[tokio::test]
async fn a_weaker_password_hash_is_upgraded_at_sign_in() {
    let stronger = bulwark_crypto::PasswordParams {
        m_cost_kib: 32 * 1024,
        ..bulwark_crypto::PasswordParams::OWASP_MIN
    };
    let app = bulwark_testkit::spawn_app_with(Backend::Sqlite, |c| {
        c.passwords.m_cost_kib = stronger.m_cost_kib;
    })
    .await;
    app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let old = bulwark_crypto::hash_password(
        &secrecy::SecretString::from(PASSWORD.to_owned()),
        bulwark_crypto::PasswordParams::OWASP_MIN,
    )
    .unwrap();
    let email: bulwark_types::Email = "owner@acme.test".parse().unwrap();
    let mut tx = app.state.store.system().await.unwrap();
    let mut user = tx.user_by_email(&email).await.unwrap().unwrap();
    user.password_hash = old.clone();
    tx.update_user(&user).await.unwrap();
    tx.commit().await.unwrap();
    assert!(old.needs_rehash(stronger));
    app.login("owner@acme.test", PASSWORD).await;
    let mut tx = app.state.store.system().await.unwrap();
    let now = tx
        .user_by_email(&email)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert_ne!(now, old);
    assert!(now.as_str().starts_with("$argon2id$v=19$m=32768,t=2,p=1$"));
    assert!(!now.needs_rehash(stronger));
    drop(tx);
    app.login("owner@acme.test", PASSWORD).await;
}

/// Sixteen simultaneous sign-ins to one account each get their own session; none fails.
async fn concurrent_sign_ins_to_one_account_each_get_a_session(backend: Backend) {
    let (app, _) = ready(backend).await;
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let res = attempt(&app, "owner@acme.test", PASSWORD).await;
                assert_eq!(res.status(), 200);
                let body: Value = res.json().await.unwrap();
                body["session"]["id"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 16);
}

on_both_engines!(concurrent_sign_ins_to_one_account_each_get_a_session);

/// Every state-changing route in the OpenAPI document that a session cookie authenticates
/// refuses the request without this session's CSRF token, with another session's token, and
/// from another site — and changes nothing (the sessions still work). Routes that need no
/// session (sign-in, setup, token redemption) are listed and checked to be exactly those.
#[tokio::test]
async fn every_mutating_route_demands_this_sessions_csrf_token_from_this_site() {
    const NO_SESSION: &[&str] = &[
        "/v1/setup",
        "/v1/auth/login",
        "/v1/invitations/accept",
        "/v1/auth/email/verify",
        "/v1/auth/password/reset-request",
        "/v1/auth/password/reset",
        "/v1/auth/signup",
        // Machine-only: refuses any session before CSRF matters (authz::every_route_decides).
        "/v1/orgs/{org}/keys/verify",
        // Called by an identity provider, server to server, with a signed logout token.
        "/v1/sso/oidc/{connection}/backchannel-logout",
        // Posted by the identity provider's page (cross-site by design) with a signed response
        // bound to the browser's sealed flow cookie: no session, no CSRF token.
        "/v1/sso/saml/{connection}/acs",
    ];
    let (app, org) = ready(Backend::Sqlite).await;
    let member = app
        .add_member(org, "member@acme.test", PASSWORD, Role::Member)
        .await;
    let a = app.login_mfa("owner@acme.test", PASSWORD).await;
    let b = app.login_mfa("owner@acme.test", PASSWORD).await;
    let spec: Value = serde_json::from_str(&app.state.openapi_json).unwrap();
    let mut checked = 0;
    let mut unauthenticated = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            if NO_SESSION.contains(&path.as_str()) {
                unauthenticated.push(path.clone());
                continue;
            }
            let url = path
                .replace("{org}", &org.to_string())
                .replace("{user}", &member.to_string())
                .replace("{id}", "00000000-0000-7000-8000-000000000000");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let req = |extra: &[(&str, &str)]| {
                let mut r = app
                    .client
                    .request(m.clone(), app.url(&url))
                    .header(reqwest::header::COOKIE, &a.cookie)
                    .json(&json!({}));
                for (k, v) in extra {
                    r = r.header(*k, *v);
                }
                r
            };
            for (what, extra) in [
                ("no token", vec![]),
                (
                    "another session's token",
                    vec![("x-csrf-token", b.csrf.as_str())],
                ),
                (
                    "another site",
                    vec![
                        ("x-csrf-token", a.csrf.as_str()),
                        ("origin", "https://evil.example"),
                    ],
                ),
            ] {
                let res = req(&extra).send().await.unwrap();
                let status = res.status();
                let body: Value = res.json().await.unwrap_or_default();
                assert_eq!(status, 403, "{method} {path}: {what}: {body}");
                let code = body["code"].as_str().unwrap_or_default();
                assert!(
                    code == "csrf_failed" || code == "cross_site_request",
                    "{method} {path}: {what}: {code}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} mutating routes found");
    unauthenticated.sort();
    let mut expected: Vec<String> = NO_SESSION.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(unauthenticated, expected);
    for who in [&a, &b] {
        assert_eq!(status_of(&app, who, "/v1/auth/session").await, 200);
    }
}

async fn login_via(app: &TestApp, forwarded_for: &str, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
}

/// `X-Forwarded-For` counts only from a configured trusted proxy, and then only its nearest
/// untrusted hop: a client cannot pick the address it is throttled and audited under.
#[tokio::test]
async fn the_client_address_comes_from_trusted_proxies_only() {
    // Not trusted (the default): a forged header changes nothing.
    let (app, _) = ready(Backend::Sqlite).await;
    let me = SignedIn::from_response(login_via(&app, "203.0.113.7", "owner@acme.test").await).await;
    let sessions: Value = app
        .get_as(&me, "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["source_ip"], "127.0.0.1");
    app.stop().await;

    // Behind a trusted proxy (here the loopback peer), whose own entry is skipped; the client's
    // self-declared leftmost entry is not believed.
    let app = bulwark_testkit::spawn_app_with(Backend::Sqlite, |c| {
        c.http.trusted_proxies = vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()];
        c.throttle.address_free_failures = 2;
    })
    .await;
    app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let me = SignedIn::from_response(
        login_via(&app, "192.0.2.1, 203.0.113.7, 10.1.2.3", "owner@acme.test").await,
    )
    .await;
    let sessions: Value = app
        .get_as(&me, "/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["source_ip"], "203.0.113.7");
    // Throttling keys on that address: two failures from it hold it back, not another client.
    for n in 0..2 {
        let res = login_via(&app, "203.0.113.7", &format!("nobody{n}@acme.test")).await;
        assert_eq!(res.status(), 401);
    }
    let res = login_via(&app, "203.0.113.7", "nobody9@acme.test").await;
    assert_eq!(res.status(), 429);
    let res = login_via(&app, "203.0.113.8", "nobody9@acme.test").await;
    assert_eq!(res.status(), 401, "another client is not held back");
    // Rotating the forged leftmost entry does not escape it.
    let res = login_via(&app, "198.51.100.77, 203.0.113.7", "nobody9@acme.test").await;
    assert_eq!(res.status(), 429);
    app.stop().await;
}
