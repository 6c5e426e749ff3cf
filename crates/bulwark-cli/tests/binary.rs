//! The `bulwark` binary run for real on the audit log: export and offline verification, the
//! kill -9 crash test, and tampering with a live database. (Start-up, configuration, setup and
//! PostgreSQL behaviour of the binary are tested in `tests/it`.)
#![expect(
    clippy::unwrap_used,
    reason = "integration tests: a failed step is a failed test"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

fn bulwark(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd)
        .env("BULWARK_LOG__FORMAT", "json")
        .env_remove("BULWARK_CONFIG");
    c
}

fn cli_setup(cwd: &Path, data: &Path, password: &str) -> std::process::Output {
    let mut child = bulwark(cwd)
        .args([
            "setup",
            "--org",
            "Acme Corp",
            "--email",
            "o@acme.test",
            "--password-stdin",
        ])
        .args(["--format", "json", "--data-dir"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn audit_export_of_a_real_deployment_verifies_offline() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let out = cli_setup(cwd.path(), &data, "a perfectly long passphrase");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = data.to_str().unwrap();
    let key = bulwark(cwd.path())
        .args(["audit", "key", "--data-dir", d])
        .output()
        .unwrap();
    assert_eq!(
        key.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let vkey = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    assert!(vkey.starts_with("bulwark/"), "{vkey}");
    let file = cwd.path().join("export.jsonl");
    let exp = bulwark(cwd.path())
        .args([
            "audit",
            "export",
            "--data-dir",
            d,
            "--log",
            "system",
            "--out",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        exp.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&exp.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("setup.completed"), "{text}");
    let published = data.join("audit-checkpoints.jsonl");
    let verify = bulwark(cwd.path())
        .args([
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--key",
            &vkey,
            "--published",
        ])
        .arg(&published)
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("verified: 1 events"));
    let nothing = bulwark(cwd.path())
        .args(["audit", "key", "--data-dir", "elsewhere"])
        .output()
        .unwrap();
    assert_ne!(nothing.status.code(), Some(0), "no deployment there");
    assert!(
        !cwd.path().join("elsewhere").exists(),
        "a read-only tool creates nothing"
    );
}

/// `kill -9` an appender 20 times at varying moments: every acknowledged event survives, the log
/// stays gap-free, and the whole log still verifies offline.
#[test]
fn acknowledged_audit_events_survive_20_kill_9_restarts() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    assert_eq!(
        cli_setup(cwd.path(), &data, "a perfectly long passphrase")
            .status
            .code(),
        Some(0)
    );
    let d = data.to_str().unwrap();
    let mut acked: Vec<u64> = Vec::new();
    let mut state = u64::from(std::process::id()) | 1;
    for round in 0..20 {
        let mut child = bulwark(cwd.path())
            .args(["audit", "stress", "--data-dir", d, "--tasks", "16"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()))
                .collect::<Vec<u64>>()
        });
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(Duration::from_millis(150 + (state >> 33) % 250));
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success()
        );
        let _ = child.wait();
        let got = reader.join().unwrap();
        assert!(!got.is_empty() || round > 0, "the appender made progress");
        acked.extend(got);
    }
    assert!(acked.len() > 20, "only {} events acknowledged", acked.len());

    let file = cwd.path().join("export.jsonl");
    let exp = bulwark(cwd.path())
        .args(["audit", "export", "--data-dir", d, "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        exp.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&exp.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    let present: std::collections::HashSet<u64> = seqs.iter().copied().collect();
    for seq in &acked {
        assert!(present.contains(seq), "acknowledged event {seq} was lost");
    }
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "the log has no gaps"
    );
    let key = bulwark(cwd.path())
        .args(["audit", "key", "--data-dir", d])
        .output()
        .unwrap();
    let vkey = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let verify = bulwark(cwd.path())
        .args(["audit", "verify", file.to_str().unwrap(), "--key", &vkey])
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Someone with write access to the database file drops the append-only triggers and edits,
/// deletes or truncates events (and the stored checkpoints): the next export no longer verifies,
/// and the message says what broke.
#[test]
fn tampering_with_the_live_database_is_detected_by_the_offline_verifier() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    assert_eq!(
        cli_setup(cwd.path(), &data, "a perfectly long passphrase")
            .status
            .code(),
        Some(0)
    );
    let d = data.to_str().unwrap();
    let stress = bulwark(cwd.path())
        .args([
            "audit",
            "stress",
            "--data-dir",
            d,
            "--tasks",
            "2",
            "--limit",
            "10",
        ])
        .output()
        .unwrap();
    assert_eq!(stress.status.code(), Some(0));
    let key = bulwark(cwd.path())
        .args(["audit", "key", "--data-dir", d])
        .output()
        .unwrap();
    let vkey = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let published = data.join("audit-checkpoints.jsonl");
    let export_and_verify = |name: &str| {
        let file = cwd.path().join(name);
        let exp = bulwark(cwd.path())
            .args(["audit", "export", "--data-dir", d, "--out"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            exp.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&exp.stderr)
        );
        let out = bulwark(cwd.path())
            .args([
                "audit",
                "verify",
                file.to_str().unwrap(),
                "--key",
                &vkey,
                "--published",
            ])
            .arg(&published)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(export_and_verify("clean.jsonl").0, Some(0));

    let db = data.join("bulwark.db");
    let sql = |statements: &[&str]| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
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
        });
    };
    // The triggers stop a plain edit…
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let blocked = rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("UPDATE audit_events SET action = 'x'")
            .execute(&mut c)
            .await
            .err()
            .map(|e| e.to_string())
    });
    assert!(blocked.unwrap().contains("append-only"));
    // …so the attacker removes them and edits an event.
    sql(&[
        "DROP TRIGGER audit_events_no_update",
        "DROP TRIGGER audit_events_no_delete",
        "DROP TRIGGER audit_checkpoints_no_delete",
        "UPDATE audit_events SET body = CAST(replace(CAST(body AS TEXT), '\"stress\"', '\"strezz\"') AS BLOB) WHERE seq = 3",
    ]);
    let (code, err) = export_and_verify("edited.jsonl");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("edited"), "{err}");

    // Deleting an event instead.
    sql(&[
        "UPDATE audit_events SET body = CAST(replace(CAST(body AS TEXT), '\"strezz\"', '\"stress\"') AS BLOB) WHERE seq = 3",
    ]);
    assert_eq!(
        export_and_verify("restored.jsonl").0,
        Some(0),
        "restoring the bytes restores the proof"
    );
    sql(&["DELETE FROM audit_events WHERE seq = 5"]);
    let (code, err) = export_and_verify("deleted.jsonl");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("deleted"), "{err}");

    // Truncating the tail and the stored checkpoints: only the published file can tell.
    sql(&[
        "DELETE FROM audit_events WHERE seq >= 5",
        "DELETE FROM audit_checkpoints",
        "DELETE FROM audit_heads",
    ]);
    let (code, err) = export_and_verify("truncated.jsonl");
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("truncated") || err.contains("rewritten"),
        "{err}"
    );
}

/// `bulwark authz explain` replays decisions from the store of a real deployment: the owner's
/// permit and the policy behind it, an assumed role's deny and the forbid behind it, and clear
/// errors for what does not exist.
#[test]
fn authz_explain_replays_decisions_offline() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let out = cli_setup(cwd.path(), &data, "a perfectly long passphrase");
    assert_eq!(out.status.code(), Some(0));
    let setup: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let org = setup["org"]["id"].as_str().unwrap();
    let owner = setup["owner"]["id"].as_str().unwrap();
    let d = data.to_str().unwrap();
    let explain = |extra: &[&str]| {
        bulwark(cwd.path())
            .args(["authz", "explain", "--data-dir", d, "--org", org])
            .args(extra)
            .output()
            .unwrap()
    };
    let permit = explain(&[
        "--principal",
        "o@acme.test",
        "--action",
        "authz.policies.write",
    ]);
    let text = String::from_utf8_lossy(&permit.stdout);
    assert_eq!(
        permit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&permit.stderr)
    );
    assert!(text.contains("decision:   PERMIT"), "{text}");
    assert!(text.contains("builtin.owner"), "{text}");
    assert!(text.contains("role: owner"), "{text}");

    // As an admin would be: the forbid that decides it, with its text.
    let member = format!("member:{owner}");
    let deny = explain(&[
        "--principal",
        owner,
        "--role",
        "admin",
        "--action",
        "members.mfa.reset",
        "--resource",
        &member,
        "--format",
        "json",
    ]);
    assert_eq!(
        deny.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&deny.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&deny.stdout).unwrap();
    assert_eq!(json["decision"], "deny");
    assert_eq!(json["policies"][0]["id"], "builtin.admin.not-owners");
    assert!(
        json["policies"][0]["text"]
            .as_str()
            .unwrap()
            .contains("forbid")
    );
    assert_eq!(json["policy_set"].as_str().unwrap().len(), 64);

    // Unknown things are errors, not decisions.
    let unknown_hash = explain(&[
        "--principal",
        owner,
        "--action",
        "audit.read",
        "--policy-hash",
        &"0".repeat(64),
    ]);
    assert_eq!(unknown_hash.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown_hash.stderr).contains("policy set"));
    let bad_action = explain(&["--principal", owner, "--action", "audit.delete"]);
    assert_eq!(bad_action.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_action.stderr).contains("members.role.write"));
    let bad_resource = explain(&[
        "--principal",
        owner,
        "--action",
        "teams.write",
        "--resource",
        "team:nope",
    ]);
    assert_eq!(bad_resource.status.code(), Some(2));
    let nobody = explain(&["--principal", "nobody@acme.test", "--action", "audit.read"]);
    assert_eq!(nobody.status.code(), Some(1));
}
