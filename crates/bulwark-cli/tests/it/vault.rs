//! `bulwark keys …` on the real binary: a rotation whose rewrap is killed with SIGKILL half-way
//! leaves every credential openable and finishes after a restart; a recovery kit restores the
//! seed on a fresh data directory.

use std::path::Path;
use std::time::{Duration, Instant};

use bulwark_core::model::Credential;
use bulwark_types::{Clock as _, CredentialId, OrgId, SystemClock};
use serde_json::Value;

use crate::harness::{
    COMMAND_TIMEOUT, bulwark, initialised_data_dir, path_str, run, run_with, runtime, serve_on,
};

const PASSWORD: &str = "correct horse battery staple 42";
const PASSPHRASE: &str = "a recovery passphrase of some length";

/// `bulwark setup` on `data`; the org id.
fn setup_org(cwd: &Path, data: &Path) -> OrgId {
    let mut cmd = bulwark(cwd);
    cmd.args([
        "setup",
        "--org",
        "Acme",
        "--email",
        "o@acme.test",
        "--password-stdin",
        "--format",
        "json",
        "--data-dir",
        path_str(data),
    ]);
    let out = run_with(cmd, Some(&format!("{PASSWORD}\n")), COMMAND_TIMEOUT);
    assert_eq!(out.code, Some(0), "{out}");
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    v["org"]["id"].as_str().unwrap().parse().unwrap()
}

/// Stores `n` credentials in `org`, sealed as the server seals them, straight into the database.
pub(crate) fn store_credentials(data: &Path, org: OrgId, n: usize) {
    runtime().block_on(async {
        let seed =
            bulwark_crypto::Seed::parse_file(&std::fs::read(data.join("seed")).unwrap()).unwrap();
        let wrapper = bulwark_crypto::vault::SeedWrapper::new(&seed).unwrap();
        let store = bulwark_store_sqlite::SqliteStore::open(&data.join("bulwark.db"), 2)
            .await
            .unwrap();
        let mut tx = bulwark_core::ports::Store::org(&store, org).await.unwrap();
        let now = SystemClock.now();
        for i in 0..n {
            let id = CredentialId::new();
            let value = format!("value-{i}");
            let credential = Credential {
                id,
                org,
                name: format!("c{i}"),
                kind: "generic".into(),
                destinations: vec!["https://example.com/".into()],
                sealed: bulwark_core::vault::seal(
                    &wrapper,
                    org,
                    id,
                    "generic",
                    &["https://example.com/".into()],
                    1,
                    value.as_bytes(),
                )
                .unwrap(),
                created_by: None,
                created_at: now,
                updated_at: now,
                last_used_at: None,
            };
            tx.create_credential(&credential).await.unwrap();
        }
        tx.commit().await.unwrap();
    });
}

fn keys(cwd: &Path, data: &Path, args: &[&str]) -> crate::harness::Finished {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", path_str(data)]);
    run(cwd, &all)
}

fn status(cwd: &Path, data: &Path) -> Value {
    let out = keys(cwd, data, &["status", "--format", "json"]);
    assert_eq!(out.code, Some(0), "{out}");
    serde_json::from_str(out.stdout.trim()).unwrap()
}

fn version_state(status: &Value, version: u64) -> String {
    status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["version"] == version)
        .map(|k| k["state"].as_str().unwrap().to_owned())
        .unwrap()
}

#[test]
fn a_rewrap_killed_half_way_loses_nothing_and_finishes_after_a_restart() {
    const N: u64 = 3000;
    let cwd = tempfile::tempdir().unwrap();
    let data = initialised_data_dir(cwd.path(), "d");
    let org = setup_org(cwd.path(), &data);
    store_credentials(&data, org, N as usize);
    let before = status(cwd.path(), &data);
    assert_eq!(
        (before["total"].as_u64(), before["remaining"].as_u64()),
        (Some(N), Some(0))
    );

    let out = keys(cwd.path(), &data, &["rotate"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("key version 2 is active"), "{out}");
    assert_eq!(status(cwd.path(), &data)["remaining"].as_u64(), Some(N));

    // A slow rewrap (25 per batch, 20 ms apart), killed with SIGKILL once it is under way.
    let slow = |cmd: &mut std::process::Command| {
        cmd.env("BULWARK_VAULT__REWRAP_BATCH", "25")
            .env("BULWARK_VAULT__REWRAP_PAUSE_MS", "20")
            .env("BULWARK_VAULT__REWRAP_INTERVAL_SECS", "1");
    };
    let mut cmd = bulwark(cwd.path());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path_str(&data),
    ]);
    slow(&mut cmd);
    let server = crate::harness::try_serve_cmd(cmd).unwrap_or_else(|f| panic!("{f}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mid = loop {
        let s = status(cwd.path(), &data);
        let remaining = s["remaining"].as_u64().unwrap();
        if remaining < N - 200 {
            break s;
        }
        assert!(Instant::now() < deadline, "the rewrap did not start: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = server.proc.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    drop(server);
    let after_kill = status(cwd.path(), &data);
    let remaining = after_kill["remaining"].as_u64().unwrap();
    assert!(remaining > 0, "killed before the end: {mid} / {after_kill}");
    assert_eq!(after_kill["total"].as_u64(), Some(N));
    assert_eq!(version_state(&after_kill, 1), "previous");

    // Everything opens, on either version.
    let check = keys(cwd.path(), &data, &["check"]);
    assert_eq!(check.code, Some(0), "{check}");
    assert!(
        check.stdout.contains(&format!("{N} credentials open")),
        "{check}"
    );

    // A restart resumes; the old version is retired once nothing uses it.
    let mut cmd = bulwark(cwd.path());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path_str(&data),
    ]);
    let server = crate::harness::try_serve_cmd(cmd).unwrap_or_else(|f| panic!("{f}"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = status(cwd.path(), &data);
        if s["remaining"] == 0 && version_state(&s, 1) == "retired" {
            break;
        }
        assert!(Instant::now() < deadline, "the rewrap did not finish: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    let check = keys(cwd.path(), &data, &["check"]);
    assert_eq!(check.code, Some(0), "{check}");
    assert!(
        check.stdout.contains(&format!("{N} credentials open")),
        "{check}"
    );
    // Every check and the rotation are in the system log.
    let system = runtime().block_on(async {
        let store = bulwark_store_sqlite::SqliteStore::open(&data.join("bulwark.db"), 1)
            .await
            .unwrap();
        let mut tx = bulwark_core::ports::Store::system(&store).await.unwrap();
        tx.audit_events(0, 100_000).await.unwrap()
    });
    let actions: Vec<String> = system
        .iter()
        .filter_map(|row| row.body.as_ref())
        .map(|b| {
            serde_json::from_slice::<Value>(b).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for action in ["vault.key_rotated", "vault.checked", "vault.key_retired"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} missing: {actions:?}"
        );
    }
    // No value in anything the server or the tools printed.
    let status_text = keys(cwd.path(), &data, &["status"]).all_output();
    for text in [out.all_output(), status_text, check.all_output()] {
        assert!(!text.contains("value-1"), "a value leaked:\n{text}");
    }
}

#[test]
fn a_recovery_kit_restores_the_seed_on_a_fresh_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let data = initialised_data_dir(cwd.path(), "d");
    let org = setup_org(cwd.path(), &data);
    store_credentials(&data, org, 50);
    let pass = cwd.path().join("pass");
    std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    let short = cwd.path().join("short");
    std::fs::write(&short, "too short\n").unwrap();
    let kit = cwd.path().join("kit.json");

    let out = keys(
        cwd.path(),
        &data,
        &[
            "export-recovery",
            "--out",
            path_str(&kit),
            "--passphrase-file",
            path_str(&short),
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(!kit.exists());
    let out = keys(
        cwd.path(),
        &data,
        &[
            "export-recovery",
            "--out",
            path_str(&kit),
            "--passphrase-file",
            path_str(&pass),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(crate::harness::mode(&kit), 0o600);
    let seed_file = std::fs::read_to_string(data.join("seed")).unwrap();
    let seed_hex = seed_file.trim().trim_start_matches("bulwark-seed-v1:");
    let kit_text = std::fs::read_to_string(&kit).unwrap();
    assert!(!kit_text.contains(seed_hex) && !out.all_output().contains(seed_hex));
    assert!(!out.all_output().contains(PASSPHRASE));
    let again = keys(
        cwd.path(),
        &data,
        &[
            "export-recovery",
            "--out",
            path_str(&kit),
            "--passphrase-file",
            path_str(&pass),
        ],
    );
    assert_ne!(again.code, Some(0), "a kit is never overwritten");

    // The seed is lost: a fresh data directory holding only the database (a backup).
    let fresh = cwd.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    crate::harness::chmod(&fresh, 0o700);
    for name in ["bulwark.db", "bulwark.db-wal"] {
        if data.join(name).exists() {
            std::fs::copy(data.join(name), fresh.join(name)).unwrap();
        }
    }
    let refused = keys(cwd.path(), &fresh, &["check"]);
    assert_eq!(refused.code, Some(3), "no seed: {refused}");

    let wrong = cwd.path().join("wrong");
    std::fs::write(&wrong, "another passphrase entirely\n").unwrap();
    let out = keys(
        cwd.path(),
        &fresh,
        &[
            "restore-recovery",
            "--kit",
            path_str(&kit),
            "--passphrase-file",
            path_str(&wrong),
        ],
    );
    assert_eq!(out.code, Some(4), "{out}");
    assert!(!fresh.join("seed").exists());

    let out = keys(
        cwd.path(),
        &fresh,
        &[
            "restore-recovery",
            "--kit",
            path_str(&kit),
            "--passphrase-file",
            path_str(&pass),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(crate::harness::mode(&fresh.join("seed")), 0o600);
    assert_eq!(
        std::fs::read_to_string(fresh.join("seed")).unwrap(),
        seed_file
    );
    let check = keys(cwd.path(), &fresh, &["check"]);
    assert_eq!(check.code, Some(0), "{check}");
    assert!(check.stdout.contains("50 credentials open"), "{check}");
    let server = serve_on(cwd.path(), &fresh, &[]);
    assert_eq!(server.terminate().code, Some(0));

    // Never over an existing seed; never a kit of another deployment.
    let out = keys(
        cwd.path(),
        &fresh,
        &[
            "restore-recovery",
            "--kit",
            path_str(&kit),
            "--passphrase-file",
            path_str(&pass),
        ],
    );
    assert_eq!(out.code, Some(3), "{out}");
    let other = initialised_data_dir(cwd.path(), "other");
    std::fs::remove_file(other.join("seed")).unwrap();
    let out = keys(
        cwd.path(),
        &other,
        &[
            "restore-recovery",
            "--kit",
            path_str(&kit),
            "--passphrase-file",
            path_str(&pass),
        ],
    );
    assert_eq!(out.code, Some(3), "{out}");
    assert!(!other.join("seed").exists());
}
