//! `bulwark setup`: the first org and owner from a local shell, password on stdin only.

use std::path::Path;

use crate::harness::{
    COMMAND_TIMEOUT, Finished, bulwark, path_str, post_json, run, run_with, serve_on, setup_tokens,
};

const PASSWORD: &str = "correct horse battery staple 42";

/// `bulwark setup --org "Acme Corp" --email o@acme.test --password-stdin --format json
/// --data-dir DATA` with `stdin`.
fn cli_setup(cwd: &Path, data: &Path, stdin: &str) -> Finished {
    let mut cmd = bulwark(cwd);
    cmd.args([
        "setup",
        "--org",
        "Acme Corp",
        "--email",
        "o@acme.test",
        "--password-stdin",
        "--format",
        "json",
        "--data-dir",
        path_str(data),
    ]);
    run_with(cmd, Some(stdin), COMMAND_TIMEOUT)
}

#[test]
fn setup_from_the_cli_then_http_setup_answers_410() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");

    let out = cli_setup(cwd.path(), &data, &format!("{PASSWORD}\n"));
    assert_eq!(out.code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("--format json prints one JSON document ({e}):\n{out}"));
    let org_id = v["org"]["id"].as_str().unwrap();
    assert!(org_id.starts_with("org_"), "{v}");
    assert_eq!(v["org"]["name"], "Acme Corp", "{v}");
    assert_eq!(
        v["org"]["slug"], "acme-corp",
        "slug derived from the name: {v}"
    );
    assert!(
        v["owner"]["id"].as_str().unwrap().starts_with("usr_"),
        "{v}"
    );
    assert_eq!(v["owner"]["email"], "o@acme.test");
    assert!(
        !out.all_output().contains(PASSWORD),
        "the password is never echoed:\n{out}"
    );
    assert_eq!(crate::harness::mode(&data), 0o700);
    assert_eq!(crate::harness::mode(&data.join("seed")), 0o600);

    // Setup happens once.
    let again = cli_setup(cwd.path(), &data, &format!("{PASSWORD}\n"));
    assert_eq!(again.code, Some(1), "{again}");
    assert!(again.stderr.contains("already been completed"), "{again}");

    let server = serve_on(cwd.path(), &data, &[]);
    let body = serde_json::json!({
        "setup_token": "bwsetup_anything",
        "org": {"name": "Other"},
        "owner": {"email": "x@other.test", "password": "another long passphrase"},
    });
    let res = post_json(&server.addr, "/v1/setup", &body);
    assert_eq!(res.status, 410, "{res:?}");
    assert_eq!(res.content_type, "application/problem+json", "{res:?}");
    assert_eq!(res.json()["status"], 410, "{res:?}");
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        setup_tokens(&out.all_output()).is_empty(),
        "no setup token once set up:\n{out}"
    );
    assert!(
        !out.stderr.contains("not set up yet"),
        "no setup banner once set up:\n{out}"
    );
}

#[test]
fn cli_setup_refuses_a_short_password_and_creates_no_org() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let short = "fourteen chars";
    assert_eq!(short.chars().count(), 14);

    let out = cli_setup(cwd.path(), &data, &format!("{short}\n"));
    assert_eq!(
        out.code,
        Some(2),
        "a too-short password is a usage error:\n{out}"
    );
    assert!(out.stderr.contains("15"), "says the minimum:\n{out}");
    assert!(!out.all_output().contains(short), "not echoed:\n{out}");
    assert!(!out.stdout.contains("org_"), "{out}");
    assert!(
        !data.exists(),
        "a refused setup creates no data dir, seed or database:\n{out}"
    );

    // Nothing was set up: a valid run afterwards succeeds.
    let ok = cli_setup(cwd.path(), &data, &format!("{PASSWORD}\n"));
    assert_eq!(ok.code, Some(0), "{ok}");
    assert!(ok.stdout.contains("org_"), "{ok}");
}

#[test]
fn cli_setup_requires_password_stdin_and_a_password() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");

    let out = run(
        cwd.path(),
        &[
            "setup",
            "--org",
            "Acme Corp",
            "--email",
            "o@acme.test",
            "--data-dir",
            path_str(&data),
        ],
    );
    assert_eq!(out.code, Some(2), "--password-stdin is required:\n{out}");
    assert!(out.stderr.contains("--password-stdin"), "{out}");
    assert!(!data.exists(), "nothing created on a usage error");

    // A password in argv is not a thing.
    let out = run(
        cwd.path(),
        &[
            "setup",
            "--org",
            "Acme Corp",
            "--email",
            "o@acme.test",
            "--password",
            PASSWORD,
            "--data-dir",
            path_str(&data),
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(!data.exists());

    // --password-stdin with nothing on stdin.
    let out = cli_setup(cwd.path(), &data, "");
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("standard input"), "{out}");

    // Malformed email.
    let mut cmd = bulwark(cwd.path());
    cmd.args([
        "setup",
        "--org",
        "Acme Corp",
        "--email",
        "not-an-email",
        "--password-stdin",
        "--data-dir",
        path_str(&data),
    ]);
    let out = run_with(cmd, Some(&format!("{PASSWORD}\n")), COMMAND_TIMEOUT);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("--email"), "{out}");
}

/// A sole owner who lost their authenticator: `bulwark admin reset-mfa` on the host removes it,
/// ends their sessions and records a host action; an unknown email changes nothing.
#[test]
fn admin_reset_mfa_on_the_host_removes_the_second_factor_and_sessions() {
    use bulwark_core::model::TotpRecord;
    use bulwark_types::Clock as _;
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let out = cli_setup(cwd.path(), &data, &format!("{PASSWORD}\n"));
    assert_eq!(out.code, Some(0), "{out}");
    let config = bulwark_server::config::Config {
        data_dir: data.clone(),
        ..bulwark_server::config::Config::default()
    };
    let rt = crate::harness::runtime();
    let (user, session) = rt.block_on(async {
        let store = bulwark_server::startup::open_store(&config).await.unwrap();
        let mut tx = store.system().await.unwrap();
        let user = tx
            .user_by_email(&"o@acme.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let now = bulwark_types::SystemClock.now();
        let record = TotpRecord {
            user_id: user.id,
            secret_sealed: vec![0; 49],
            created_at: now,
            enabled_at: Some(now),
            last_step: Some(1),
        };
        tx.replace_totp(user.id, Some(&record)).await.unwrap();
        let session = bulwark_core::model::Session {
            id: bulwark_types::SessionId::new(),
            token_hash: bulwark_crypto::SecretToken::generate("bwsess")
                .unwrap()
                .hash(),
            user_id: user.id,
            email: user.email.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + time::Duration::hours(1),
            revoked_at: None,
            source_ip: None,
            user_agent: None,
            stage: bulwark_core::model::SessionStage::Active,
            mfa_at: Some(now),
            user_disabled: false,
        };
        tx.create_session(&session).await.unwrap();
        tx.commit().await.unwrap();
        (user.id, session)
    });
    let reset = |email: &str| {
        run(
            cwd.path(),
            &[
                "admin",
                "reset-mfa",
                "--email",
                email,
                "--data-dir",
                path_str(&data),
            ],
        )
    };
    let unknown = reset("nobody@acme.test");
    assert_eq!(unknown.code, Some(1), "{unknown}");
    let out = reset("o@acme.test");
    assert_eq!(out.code, Some(0), "{out}");
    rt.block_on(async {
        let store = bulwark_server::startup::open_store(&config).await.unwrap();
        let seen = store
            .session_by_token(&session.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert!(seen.revoked_at.is_some(), "the session ended");
        let mut tx = store.system().await.unwrap();
        assert!(tx.totp(user).await.unwrap().is_none());
        let events = tx.audit_events(0, 100).await.unwrap();
        let removed = events
            .iter()
            .find(|e| e.action == "auth.mfa.removed")
            .expect("an auth.mfa.removed event");
        let v: serde_json::Value =
            serde_json::from_slice(removed.body.as_deref().unwrap()).unwrap();
        assert_eq!(v["data"]["cause"], "host_reset", "{v}");
        assert_eq!(v["actor"]["type"], "system", "{v}");
        assert!(events.iter().any(|e| e.action == "auth.sessions.revoked"));
    });
}
