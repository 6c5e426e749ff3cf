//! Commands that write a file (`keys export-recovery`, `license keygen|issue`, `audit export`)
//! given a bare `--out` name, run in the directory it names: the file is created 0600, a recovery
//! kit only together with its `vault.recovery_exported` event, a second run refuses without
//! touching the first file, and nothing half-written or temporary is left behind.

use std::path::Path;

use crate::harness::{initialised_data_dir, mode, run, runtime};

const PASSPHRASE: &str = "a recovery passphrase of some length";

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `bulwark audit export --out NAME` (a bare name) in `cwd`: the system log's events as JSON.
fn system_events(cwd: &Path, name: &str) -> Vec<serde_json::Value> {
    let out = run(
        cwd,
        &[
            "audit",
            "export",
            "--data-dir",
            "d",
            "--log",
            "system",
            "--out",
            name,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        mode(&cwd.join(name)),
        0o600,
        "an export holds personal data"
    );
    std::fs::read_to_string(cwd.join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn recovery_events(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["action"] == "vault.recovery_exported")
        .map(ToString::to_string)
        .collect()
}

fn export_recovery(cwd: &Path) -> crate::harness::Finished {
    run(
        cwd,
        &[
            "keys",
            "export-recovery",
            "--data-dir",
            "d",
            "--out",
            "kit.json",
            "--passphrase-file",
            "pass",
        ],
    )
}

#[test]
fn export_recovery_to_a_bare_name_writes_the_kit_with_its_event_and_never_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    initialised_data_dir(cwd, "d");
    std::fs::write(cwd.join("pass"), format!("{PASSPHRASE}\n")).unwrap();

    let out = export_recovery(cwd);
    assert_eq!(out.code, Some(0), "{out}");
    let kit = cwd.join("kit.json");
    assert_eq!(mode(&kit), 0o600);
    let kit_text = std::fs::read_to_string(&kit).unwrap();
    let kit_id = serde_json::from_str::<serde_json::Value>(&kit_text).unwrap()["kit_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(out.stdout.contains(&kit_id), "{out}");
    assert_eq!(
        names(cwd),
        ["d", "kit.json", "pass"],
        "no temporary file left"
    );
    let events = recovery_events(&system_events(cwd, "export-1.jsonl"));
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains(&kit_id),
        "the event names the kit: {events:?}"
    );

    // A second run refuses up front, leaves the first kit as it was, records nothing.
    let again = export_recovery(cwd);
    assert_eq!(again.code, Some(2), "{again}");
    assert!(
        again.stderr.contains("`kit.json` already exists"),
        "{again}"
    );
    assert_eq!(std::fs::read_to_string(&kit).unwrap(), kit_text);
    assert_eq!(
        recovery_events(&system_events(cwd, "export-2.jsonl")).len(),
        1,
        "the refused run recorded no export"
    );
    // `audit export` never replaces its file either.
    let out = run(
        cwd,
        &[
            "audit",
            "export",
            "--data-dir",
            "d",
            "--out",
            "export-1.jsonl",
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
}

#[test]
fn export_recovery_leaves_no_kit_when_its_event_cannot_be_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = initialised_data_dir(cwd, "d");
    std::fs::write(cwd.join("pass"), format!("{PASSPHRASE}\n")).unwrap();
    // The database refuses every new audit event.
    runtime().block_on(async {
        use sqlx::Connection as _;
        let url = format!("sqlite://{}", data.join("bulwark.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER test_refuse_events BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    });

    let out = export_recovery(cwd);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("no kit was written"), "{out}");
    assert_eq!(
        names(cwd),
        ["d", "pass"],
        "neither the kit nor a temporary file"
    );
}

#[test]
fn license_keygen_and_issue_to_bare_names_write_once() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = run(cwd, &["license", "keygen", "--out", "vendor.key"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(mode(&cwd.join("vendor.key")), 0o600);
    let key = std::fs::read_to_string(cwd.join("vendor.key")).unwrap();
    let again = run(cwd, &["license", "keygen", "--out", "vendor.key"]);
    assert_eq!(again.code, Some(2), "{again}");
    assert!(
        again.stderr.contains("`vendor.key` already exists"),
        "{again}"
    );
    assert_eq!(
        std::fs::read_to_string(cwd.join("vendor.key")).unwrap(),
        key
    );

    std::fs::write(
        cwd.join("claims.json"),
        r#"{"format": 1, "license_id": "lic_acme", "licensee": "Acme Corp", "serial": 1,
            "issued_at": "2026-12-01T00:00:00Z", "not_before": "2026-12-01T00:00:00Z",
            "expires_at": "2099-12-01T00:00:00Z", "grace_days": 14,
            "limits": {"orgs": 5}, "features": []}"#,
    )
    .unwrap();
    let issue = || {
        run(
            cwd,
            &[
                "license",
                "issue",
                "--key",
                "vendor.key",
                "--in",
                "claims.json",
                "--out",
                "license.json",
            ],
        )
    };
    let out = issue();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(mode(&cwd.join("license.json")), 0o600);
    let license = std::fs::read_to_string(cwd.join("license.json")).unwrap();
    let again = issue();
    assert_eq!(again.code, Some(2), "{again}");
    assert_eq!(
        std::fs::read_to_string(cwd.join("license.json")).unwrap(),
        license
    );
    assert_eq!(
        names(cwd),
        ["claims.json", "license.json", "vendor.key"],
        "no temporary file left"
    );
}
