//! The audit commands exactly as `docs/audit.md` shows them, run by `sh` against a real data
//! dir: its published-checkpoints file holds many checkpoints of several logs. Also what the
//! verifier says when the SQLite file is edited: a log cut back to an earlier checkpoint, and an
//! event body erased through the prune gate.

use std::path::{Path, PathBuf};

use crate::harness::{COMMAND_TIMEOUT, Finished, bulwark, path_str, run, run_with};

pub(crate) const DATA: &str = "bulwark-data";
const PASSWORD: &str = "a perfectly long passphrase";

/// The shell block under "Exporting and verifying, end to end" in `docs/audit.md`.
fn documented_block() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit.md"))
            .unwrap();
    let section = doc
        .split("## Exporting and verifying, end to end")
        .nth(1)
        .unwrap();
    let block = section.split("```sh\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}

/// Runs `script` with `sh -e` in `cwd`, `bulwark` on the `PATH` and `config` as `BULWARK_CONFIG`
/// (no other `BULWARK_*` variable). The documented block writes `export.jsonl`, which `audit
/// export` never replaces: a previous run's file is moved away first, as a reader running the
/// block again would.
fn sh(cwd: &Path, config: &Path, script: &str) -> Finished {
    let _ = std::fs::remove_file(cwd.join("export.jsonl"));
    let bin = Path::new(env!("CARGO_BIN_EXE_bulwark")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut cmd = std::process::Command::new("sh");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BULWARK_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd)
        .args(["-ec", script])
        .env("PATH", path)
        .env("BULWARK_CONFIG", config);
    run_with(cmd, None, COMMAND_TIMEOUT)
}

/// A deployment in `cwd/bulwark-data` with a license for three orgs (signed by a vendor key the
/// returned config trusts), and the ids of the two orgs made after setup, each with its own log.
pub(crate) fn deployment(cwd: &Path) -> (PathBuf, Vec<String>) {
    let mut cmd = bulwark(cwd);
    cmd.args(["setup", "--org", "Acme", "--email", "o@acme.test"])
        .args(["--password-stdin", "--data-dir", DATA]);
    let out = run_with(cmd, Some(&format!("{PASSWORD}\n")), COMMAND_TIMEOUT);
    assert_eq!(out.code, Some(0), "{out}");
    let key = cwd.join("vendor.key");
    let out = run(cwd, &["license", "keygen", "--out", path_str(&key)]);
    assert_eq!(out.code, Some(0), "{out}");
    let public = crate::license::public_key(&out);
    let config = cwd.join("bulwark.toml");
    std::fs::write(
        &config,
        format!("[license]\nextra_public_keys = [\"{public}\"]\n"),
    )
    .unwrap();
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--data-dir", DATA, "--config", path_str(&config)]);
        run(cwd, &all)
    };
    let out = with(&["license", "status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let fmt = |t: time::OffsetDateTime| {
        t.replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let now = time::OffsetDateTime::now_utc();
    let claims = cwd.join("claims.json");
    std::fs::write(
        &claims,
        serde_json::json!({
            "format": 1, "license_id": "lic_audit", "licensee": "Acme", "serial": 1,
            "deployment": status["deployment_id"],
            "issued_at": fmt(now - time::Duration::hours(1)),
            "not_before": fmt(now - time::Duration::hours(1)),
            "expires_at": fmt(now + time::Duration::days(365)), "grace_days": 14,
            "limits": {"orgs": 3, "seats": 50}, "features": []
        })
        .to_string(),
    )
    .unwrap();
    let license = cwd.join("license.json");
    let out = crate::license::issue(cwd, &key, &claims, &license);
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(&["license", "activate", path_str(&license)]);
    assert_eq!(out.code, Some(0), "{out}");
    let mut orgs = Vec::new();
    for name in ["Globex", "Initech"] {
        let out = with(&[
            "orgs",
            "create",
            "--name",
            name,
            "--owner-email",
            "o@acme.test",
        ]);
        assert_eq!(out.code, Some(0), "{out}");
        let id = out.stdout.split_whitespace().nth(1).unwrap().to_owned();
        assert!(id.starts_with("org_"), "{out}");
        orgs.push(id);
    }
    // An org's log starts with its first event (setup and `orgs create` record in the system
    // log): the owner sets each org's retention through the API, then exports its log three
    // times, which checkpoints it (published by the server to the same file) and records
    // `audit.exported`.
    // (The owner has no authenticator: the orgs' sign-in rule is relaxed in the file first.)
    sql(
        &cwd.join(DATA).join("bulwark.db"),
        &["UPDATE orgs SET mfa_required = 'none'"],
        "SELECT 'done'",
    );
    let server = crate::harness::serve_on(cwd, &cwd.join(DATA), &["--config", path_str(&config)]);
    let login = serde_json::json!({"email": "o@acme.test", "password": PASSWORD});
    let (signed_in, cookies) =
        crate::harness::request("POST", &server.addr, "/v1/auth/login", &[], Some(&login));
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Host-bulwark_session="))
        .unwrap()
        .clone();
    let csrf = signed_in.json()["csrf_token"].as_str().unwrap().to_owned();
    for org in &orgs {
        let path = format!("/v1/orgs/{org}/audit/retention");
        let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
        let days = serde_json::json!({"days": 36_500});
        let (res, _) = crate::harness::request("PUT", &server.addr, &path, &headers, Some(&days));
        assert_eq!(res.status, 200, "{res:?}");
    }
    for _ in 0..3 {
        for org in &orgs {
            let path = format!("/v1/orgs/{org}/audit/export");
            let (res, _) =
                crate::harness::request("GET", &server.addr, &path, &[("cookie", &cookie)], None);
            assert_eq!(res.status, 200, "{res:?}");
        }
    }
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    let mut sorted = orgs.clone();
    sorted.sort();
    let logs = sql(
        &cwd.join(DATA).join("bulwark.db"),
        &[],
        "SELECT DISTINCT log FROM audit_events WHERE log != 'system' ORDER BY log",
    );
    // Besides these, the operator org's log holds the owner's sign-in (a member's sign-ins are
    // recorded in each of their orgs' logs).
    assert!(sorted.iter().all(|org| logs.contains(org)), "{logs:?}");
    (config, orgs)
}

/// Runs `statements` on the SQLite file, then `query` (one text column).
pub(crate) fn sql(db: &Path, statements: &[&str], query: &str) -> Vec<String> {
    crate::harness::runtime().block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                .execute(&mut c)
                .await
                .unwrap();
        }
        sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_all(&mut c)
            .await
            .unwrap()
    })
}

/// After many checkpoints of the system log and of two org logs, all published to the data
/// dir's one file, the documented commands verify every log against that file; a log cut back
/// to one of its earlier checkpoints verifies on its own but fails against the file (exit 4).
#[test]
fn the_documented_commands_verify_every_log_against_the_data_dirs_published_file() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, orgs) = deployment(cwd);
    let export = |log: &str| {
        // `audit export` never replaces a file: each round writes a new one.
        let _ = std::fs::remove_file(cwd.join("round.jsonl"));
        let out = run(
            cwd,
            &[
                "audit",
                "export",
                "--data-dir",
                DATA,
                "--config",
                path_str(&config),
                "--log",
                log,
                "--out",
                "round.jsonl",
            ],
        );
        assert_eq!(out.code, Some(0), "{out}");
    };
    for round in 0..8 {
        let out = run(
            cwd,
            &[
                "audit",
                "stress",
                "--data-dir",
                DATA,
                "--config",
                path_str(&config),
                "--tasks",
                "1",
                "--limit",
                "3",
            ],
        );
        assert_eq!(out.code, Some(0), "{out}");
        export("system");
        if let Some(org) = orgs.get(round % 3) {
            export(org);
        }
    }
    let published =
        std::fs::read_to_string(cwd.join(DATA).join("audit-checkpoints.jsonl")).unwrap();
    assert!(published.lines().count() >= 10, "{published}");

    let block = documented_block();
    assert!(block.contains("--log system"), "{block}");
    let out = sh(cwd, &config, &block);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("verified: "), "{out}");
    assert!(!out.stdout.contains(" 0 published checkpoints"), "{out}");
    for org in &orgs {
        let out = sh(
            cwd,
            &config,
            &block.replace("--log system", &format!("--log {org}")),
        );
        assert_eq!(out.code, Some(0), "{org}: {out}");
    }

    // Cut the system log back to its third checkpoint, with a head and checkpoints to match.
    let db = cwd.join(DATA).join("bulwark.db");
    let size: i64 = sql(
        &db,
        &[],
        "SELECT CAST(size AS TEXT) FROM audit_checkpoints WHERE log = 'system' ORDER BY size LIMIT 1 OFFSET 2",
    )[0]
    .parse()
    .unwrap();
    let leaves = crate::harness::runtime().block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT leaf_hash FROM audit_events WHERE log = 'system' AND seq < $1 ORDER BY seq",
        )
        .bind(size)
        .fetch_all(&mut c)
        .await
        .unwrap()
    });
    let mut range = bulwark_audit::merkle::CompactRange::new();
    for leaf in leaves {
        range.push(leaf.try_into().unwrap());
    }
    let frontier: String = range
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sql(
        &db,
        &[
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_checkpoints_no_delete",
            &format!("DELETE FROM audit_events WHERE log = 'system' AND seq >= {size}"),
            &format!("DELETE FROM audit_checkpoints WHERE log = 'system' AND size > {size}"),
            &format!("UPDATE audit_heads SET frontier = x'{frontier}' WHERE log = 'system'"),
        ],
        "SELECT 'done'",
    );
    let alone = block.replace(
        " \\\n    --published ./bulwark-data/audit-checkpoints.jsonl",
        "",
    );
    assert_ne!(alone, block);
    let out = sh(cwd, &config, &alone);
    assert_eq!(out.code, Some(0), "consistent on its own: {out}");
    assert!(out.stdout.contains("verified: "), "{out}");
    let out = sh(cwd, &config, &block);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("truncated"), "{out}");
}

/// The review's attack on SQLite: with the prune gate opened in one transaction, a fresh body
/// blanked. The database refuses it (retention floor in the trigger); with the trigger dropped
/// as well, the documented verification fails (exit 4), naming the event.
#[test]
fn a_body_erased_through_the_prune_gate_is_refused_and_then_detected() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, orgs) = deployment(cwd);
    let org = &orgs[0];
    let block = documented_block().replace("--log system", &format!("--log {org}"));
    let out = sh(cwd, &config, &block);
    assert_eq!(out.code, Some(0), "{out}");
    let db = cwd.join(DATA).join("bulwark.db");
    let blank = format!("UPDATE audit_events SET body = NULL WHERE log = '{org}' AND seq = 0");
    let gated = |statements: &[&str]| {
        crate::harness::runtime().block_on(async {
            use sqlx::Connection as _;
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            let mut tx = c.begin().await.unwrap();
            let mut result = Ok(());
            for s in statements {
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&mut *tx)
                    .await
                {
                    result = Err(e.to_string());
                    break;
                }
            }
            if result.is_ok() {
                tx.commit().await.unwrap();
            }
            result
        })
    };
    let attack = [
        "INSERT INTO audit_prune_gate (open) VALUES (1)",
        blank.as_str(),
        "DELETE FROM audit_prune_gate",
    ];
    // Keeping everything, or keeping 30 days: the database refuses either way.
    let err = gated(&attack).unwrap_err();
    assert!(err.contains("older than its org's retention"), "{err}");
    let mut with_retention = vec!["UPDATE orgs SET audit_retention_days = 30"];
    with_retention.extend_from_slice(&attack);
    let err = gated(&with_retention).unwrap_err();
    assert!(err.contains("older than its org's retention"), "{err}");

    // Whoever can write the file can drop the trigger: the verifier still tells.
    gated(&["DROP TRIGGER audit_events_no_update", blank.as_str()]).unwrap();
    let out = sh(cwd, &config, &block);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("event 0 ("), "{out}");
    assert!(out.stderr.contains("erased outside retention"), "{out}");
}
