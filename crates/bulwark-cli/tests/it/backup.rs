//! `bulwark backup create|verify|keygen` and `bulwark restore` on the real binary: a deployment
//! with several orgs, audit logs, published checkpoints, a license and vault values is backed
//! up, verified offline and restored into a new data directory, where `serve` starts and every
//! value opens; SQLite → PostgreSQL → SQLite round trips compare equal table by table; backups
//! taken under continuous writes hold every event acknowledged before they began; tampered,
//! truncated, foreign and wrongly keyed archives are refused naming what broke; a restore never
//! writes over data; and a backup killed with SIGKILL leaves nothing that passes for complete.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::audit::{DATA, deployment, sql};
use crate::harness::{Finished, bulwark, get, path_str, run, serve_on};

/// Runs `bulwark ARGS` in `cwd` with the deployment's configuration appended.
fn with(cwd: &Path, config: &Path, args: &[&str]) -> Finished {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", path_str(config)]);
    run(cwd, &all)
}

/// `backup keygen --out FILE`: the public key it prints.
fn keygen(cwd: &Path, name: &str) -> String {
    let out = run(cwd, &["backup", "keygen", "--out", name]);
    assert_eq!(out.code, Some(0), "{out}");
    let public = out.stdout.trim().to_owned();
    assert!(public.starts_with("age1"), "{out}");
    assert!(!out.all_output().contains("AGE-SECRET-KEY"), "{out}");
    assert_eq!(crate::harness::mode(&cwd.join(name)), 0o600);
    public
}

fn verify_json(cwd: &Path, archive: &str, identity: &str) -> Value {
    let out = run(
        cwd,
        &[
            "backup",
            "verify",
            archive,
            "--identity",
            identity,
            "--format",
            "json",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// The events of `log` a verified archive holds.
fn events(verified: &Value, log: &str) -> u64 {
    verified["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["log"] == log)
        .map_or(0, |l| l["events"].as_u64().unwrap())
}

fn identity(cwd: &Path, name: &str) -> age::x25519::Identity {
    let text = std::fs::read_to_string(cwd.join(name)).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY"))
        .unwrap();
    age::x25519::Identity::from_str(line).unwrap()
}

/// The archive's plaintext lines.
fn decrypt(cwd: &Path, archive: &str, key: &str) -> Vec<String> {
    let id = identity(cwd, key);
    let file = std::fs::File::open(cwd.join(archive)).unwrap();
    let decryptor = age::Decryptor::new(file).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap();
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// Writes `lines` encrypted to `key`'s public key as `archive` (what anyone who knows the
/// public recipient can do).
fn encrypt(cwd: &Path, archive: &str, key: &str, lines: &[String]) {
    let recipient = identity(cwd, key).to_public();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let file = std::fs::File::create(cwd.join(archive)).unwrap();
    let mut w = encryptor.wrap_output(file).unwrap();
    for line in lines {
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
    }
    w.finish().unwrap();
}

fn refused(cwd: &Path, archive: &str, key: &str, expect: &str) {
    let out = run(cwd, &["backup", "verify", archive, "--identity", key]);
    assert_eq!(out.code, Some(4), "{archive}: {out}");
    assert!(
        out.stderr.contains(expect),
        "{archive}: expected `{expect}` in:\n{out}"
    );
}

/// A deployment with three orgs, published checkpoints, a license and vault values; backed up
/// without the seed, verified, and restored with the seed file into a new data directory, where
/// every table matches, every audit log verifies, every vault value opens and `serve` starts.
#[test]
fn a_backup_restores_into_a_new_data_dir_where_serve_starts_and_every_value_opens() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, orgs) = deployment(cwd);
    let data = cwd.join(DATA);
    let org = orgs[0].parse().unwrap();
    crate::vault::store_credentials(&data, org, 3);
    let public = keygen(cwd, "backup.key");

    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "create",
            "--out",
            "nightly.age",
            "--recipient",
            &public,
            "--data-dir",
            DATA,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("backup: audit_events"),
        "progress: {out}"
    );
    assert!(out.stdout.contains("seed not included"), "{out}");
    assert_eq!(crate::harness::mode(&cwd.join("nightly.age")), 0o600);
    assert!(!cwd.join("nightly.age.partial").exists());

    let verified = verify_json(cwd, "nightly.age", "backup.key");
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["seed_included"], false);
    assert_eq!(verified["engine"], "sqlite");
    for org in &orgs {
        assert!(events(&verified, org) > 0, "{org}: {verified}");
    }
    assert!(events(&verified, "system") > 0, "{verified}");
    let credentials = verified["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "credentials")
        .unwrap()
        .clone();
    assert_eq!(credentials["rows"], 3, "{verified}");

    // The archive holds no seed: without one the restore says what to give.
    let out = run(
        cwd,
        &[
            "restore",
            "nightly.age",
            "--identity",
            "backup.key",
            "--data-dir",
            "restored",
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("--seed-file"), "{out}");
    assert!(
        !cwd.join("restored/bulwark.db").exists(),
        "nothing left behind: {out}"
    );

    // Another deployment's seed is refused before anything is written.
    let other = crate::harness::initialised_data_dir(cwd, "other");
    let out = run(
        cwd,
        &[
            "restore",
            "nightly.age",
            "--identity",
            "backup.key",
            "--data-dir",
            "restored",
            "--seed-file",
            path_str(&other.join("seed")),
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("is not deployment"), "{out}");

    let seed = data.join("seed");
    let out = run(
        cwd,
        &[
            "restore",
            "nightly.age",
            "--identity",
            "backup.key",
            "--data-dir",
            "restored",
            "--seed-file",
            path_str(&seed),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("each matching the signed manifest"),
        "{out}"
    );
    let restored = cwd.join("restored");
    assert_eq!(
        std::fs::read(restored.join("seed")).unwrap(),
        std::fs::read(&seed).unwrap()
    );
    assert!(restored.join("audit-checkpoints.jsonl").is_file());

    // Every vault value opens under the restored seed and store.
    let out = with(cwd, &config, &["keys", "check", "--data-dir", "restored"]);
    assert_eq!(out.code, Some(0), "{out}");
    // Every log verifies against the restored published file, as `docs/audit.md` verifies.
    let out = with(cwd, &config, &["audit", "key", "--data-dir", "restored"]);
    assert_eq!(out.code, Some(0), "{out}");

    let server = serve_on(cwd, &restored, &["--config", path_str(&config)]);
    let ready = get(&server.addr, "/readyz");
    assert_eq!(ready.status, 200, "{ready:?}");
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");

    // A restore never writes over a deployment: the restored one, or a store that holds data.
    let out = run(
        cwd,
        &[
            "restore",
            "nightly.age",
            "--identity",
            "backup.key",
            "--data-dir",
            "restored",
            "--seed-file",
            path_str(&seed),
        ],
    );
    assert_eq!(out.code, Some(3), "{out}");
    let occupied = cwd.join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    crate::harness::chmod(&occupied, 0o700);
    std::fs::copy(data.join("bulwark.db"), occupied.join("bulwark.db")).unwrap();
    let before = std::fs::read(occupied.join("bulwark.db")).unwrap();
    let out = run(
        cwd,
        &[
            "restore",
            "nightly.age",
            "--identity",
            "backup.key",
            "--data-dir",
            "occupied",
            "--seed-file",
            path_str(&seed),
        ],
    );
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr.contains("holds data"), "{out}");
    assert_eq!(std::fs::read(occupied.join("bulwark.db")).unwrap(), before);
    assert!(!occupied.join("seed").exists());

    // An existing archive is never replaced.
    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "create",
            "--out",
            "nightly.age",
            "--recipient",
            &public,
            "--data-dir",
            DATA,
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");

    // With --include-seed the archive alone restores.
    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "create",
            "--out",
            "with-seed.age",
            "--recipient",
            &public,
            "--include-seed",
            "--data-dir",
            DATA,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = run(
        cwd,
        &[
            "restore",
            "with-seed.age",
            "--identity",
            "backup.key",
            "--data-dir",
            "from-archive",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(
        cwd,
        &config,
        &["keys", "check", "--data-dir", "from-archive"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    // No output ever shows the seed.
    let seed_text = std::fs::read_to_string(&seed).unwrap();
    let hex = seed_text.trim().rsplit(':').next().unwrap().to_owned();
    assert!(!out.all_output().contains(&hex));
}

/// Attacks on an archive: each refused with exit 4, naming what broke. Anyone holding the public
/// recipient can write an archive, so the signed manifest, not the encryption, is what proves it.
#[test]
fn tampered_truncated_foreign_and_wrongly_keyed_archives_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, _orgs) = deployment(cwd);
    let public = keygen(cwd, "backup.key");
    keygen(cwd, "stranger.key");
    let create = |name: &str| {
        let out = with(
            cwd,
            &config,
            &[
                "backup",
                "create",
                "--out",
                name,
                "--recipient",
                &public,
                "--data-dir",
                DATA,
            ],
        );
        assert_eq!(out.code, Some(0), "{out}");
    };
    create("a.age");
    // A second backup after more activity.
    let out = with(
        cwd,
        &config,
        &["audit", "export", "--data-dir", DATA, "--out", "x.jsonl"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    std::thread::sleep(Duration::from_millis(1100));
    create("b.age");
    verify_json(cwd, "a.age", "backup.key");

    // The wrong key.
    refused(cwd, "a.age", "stranger.key", "no identity given matches");

    // One byte flipped in the ciphertext.
    let mut bytes = std::fs::read(cwd.join("a.age")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(cwd.join("flipped.age"), &bytes).unwrap();
    let out = run(
        cwd,
        &[
            "backup",
            "verify",
            "flipped.age",
            "--identity",
            "backup.key",
        ],
    );
    assert_eq!(out.code, Some(4), "{out}");
    // Cut short.
    let bytes = std::fs::read(cwd.join("a.age")).unwrap();
    std::fs::write(cwd.join("cut.age"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = run(
        cwd,
        &["backup", "verify", "cut.age", "--identity", "backup.key"],
    );
    assert_eq!(out.code, Some(4), "{out}");

    let lines = decrypt(cwd, "a.age", "backup.key");
    let other = decrypt(cwd, "b.age", "backup.key");
    let position =
        |lines: &[String], prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap();

    // A table dropped (its header, rows and end).
    let start = position(&lines, "{\"table\":\"teams\"");
    let end = position(&lines, "{\"table_end\":\"teams\"");
    let mut dropped = lines.clone();
    dropped.drain(start..=end);
    encrypt(cwd, "dropped.age", "backup.key", &dropped);
    refused(cwd, "dropped.age", "backup.key", "table `teams` is missing");

    // A row changed, its table's end line recomputed by the attacker: the manifest disagrees.
    let users = position(&lines, "{\"table\":\"users\"") + 1;
    let mut changed = lines.clone();
    changed[users] = changed[users].replace("o@acme.test", "x@acme.test");
    assert_ne!(changed[users], lines[users]);
    encrypt(cwd, "changed-row.age", "backup.key", &changed);
    refused(cwd, "changed-row.age", "backup.key", "table `users`");
    let end = position(&changed, "{\"table_end\":\"users\"");
    let rows: Vec<&String> = changed[users..end].iter().collect();
    let mut sha = bulwark_crypto::Sha256::default();
    for r in &rows {
        sha.update(r.as_bytes());
        sha.update(b"\n");
    }
    changed[end] = serde_json::json!({
        "table_end": "users", "rows": rows.len(), "sha256": bulwark_crypto::to_hex(&sha.finish())
    })
    .to_string();
    encrypt(cwd, "changed-users.age", "backup.key", &changed);
    refused(
        cwd,
        "changed-users.age",
        "backup.key",
        "table `users` does not match the manifest",
    );

    // Another backup's manifest and signature swapped in.
    let mut swapped = lines.clone();
    let n = swapped.len();
    swapped[n - 2].clone_from(&other[other.len() - 2]);
    swapped[n - 1].clone_from(&other[other.len() - 1]);
    encrypt(cwd, "swapped.age", "backup.key", &swapped);
    refused(
        cwd,
        "swapped.age",
        "backup.key",
        "does not match the manifest",
    );

    // The manifest edited to match the edited rows: its signature no longer verifies.
    let mut manifest: Value = serde_json::from_str(&changed[n - 2]).unwrap();
    let users_end: Value = serde_json::from_str(&changed[end]).unwrap();
    for t in manifest["manifest"]["tables"].as_array_mut().unwrap() {
        if t["name"] == "users" {
            t["sha256"] = users_end["sha256"].clone();
        }
    }
    let mut forged = changed.clone();
    forged[n - 2] = manifest.to_string();
    encrypt(cwd, "forged.age", "backup.key", &forged);
    refused(cwd, "forged.age", "backup.key", "signature does not verify");

    // Truncated before the manifest, and data after the signature.
    encrypt(cwd, "short.age", "backup.key", &lines[..n - 2]);
    refused(
        cwd,
        "short.age",
        "backup.key",
        "ends before its signed manifest",
    );
    let mut longer = lines.clone();
    longer.push("{\"table\":\"users\",\"columns\":[]}".into());
    encrypt(cwd, "longer.age", "backup.key", &longer);
    refused(cwd, "longer.age", "backup.key", "data after the signature");

    // Nothing refused above left a restored store behind.
    let out = run(
        cwd,
        &[
            "restore",
            "forged.age",
            "--identity",
            "backup.key",
            "--data-dir",
            "r",
            "--seed-file",
            path_str(&cwd.join(DATA).join("seed")),
        ],
    );
    assert_eq!(out.code, Some(4), "{out}");
    assert!(!cwd.join("r/bulwark.db").exists(), "{out}");
    assert!(!cwd.join("r/seed").exists(), "{out}");
}

/// Attack: an audit event is edited in the database itself (its trigger dropped first). The
/// backup copies what is there, and its verification replays the log against its signed
/// checkpoints and names the log that no longer verifies.
#[test]
fn a_backup_of_an_edited_audit_log_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, _orgs) = deployment(cwd);
    let public = keygen(cwd, "backup.key");
    sql(
        &cwd.join(DATA).join("bulwark.db"),
        &[
            "DROP TRIGGER audit_events_no_update",
            "UPDATE audit_events SET body = CAST(body || X'20' AS BLOB) WHERE log = 'system' AND seq = 0",
        ],
        "SELECT 'done'",
    );
    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "create",
            "--out",
            "a.age",
            "--recipient",
            &public,
            "--data-dir",
            DATA,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    refused(cwd, "a.age", "backup.key", "audit log `system`");
}

/// Appends to the system log from 8 tasks until killed; the highest seq acknowledged so far.
struct Stress {
    child: std::process::Child,
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Stress {
    fn start(cwd: &Path, data: &Path, database_url: Option<&str>) -> Self {
        let mut cmd = bulwark(cwd);
        cmd.args([
            "audit",
            "stress",
            "--tasks",
            "8",
            "--data-dir",
            path_str(data),
        ]);
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = acked.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(seq) = line.strip_prefix("ack ").and_then(|n| n.parse().ok()) {
                    seen.fetch_max(seq, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        Self { child, acked }
    }

    /// Waits until at least `n` events were acknowledged; the highest seq. Fails when no event
    /// is acknowledged for 30 s (a stall), however long the whole takes on a busy machine.
    fn wait_for(&self, n: u64) -> u64 {
        let mut last = (0, Instant::now());
        loop {
            let seen = self.acked.load(std::sync::atomic::Ordering::SeqCst);
            if seen >= n {
                return seen;
            }
            if seen > last.0 {
                last = (seen, Instant::now());
            }
            assert!(
                last.1.elapsed() < Duration::from_secs(30),
                "the stress appender stalled at {seen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Stress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The backup is taken while appenders commit; it holds at least every event acknowledged
/// before it began, its audit logs verify, and it restores.
fn backup_under_load(cwd: &Path, data: &Path, app_url: Option<&str>, owner_url: Option<&str>) {
    let public = keygen(cwd, "load.key");
    let stress = Stress::start(cwd, data, app_url);
    let acked_before = stress.wait_for(500);
    let mut args = vec![
        "backup",
        "create",
        "--out",
        "load.age",
        "--recipient",
        &public,
        "--include-seed",
        "--data-dir",
        path_str(data),
    ];
    if let Some(url) = owner_url {
        args.extend_from_slice(&["--database-url", url]);
    }
    let out = run(cwd, &args);
    assert_eq!(out.code, Some(0), "{out}");
    let acked_after = stress.wait_for(acked_before + 100);
    drop(stress);
    let verified = verify_json(cwd, "load.age", "load.key");
    let held = events(&verified, "system");
    assert!(
        held > acked_before,
        "the backup holds {held} system events; seq {acked_before} was acknowledged before it began"
    );
    assert!(held <= acked_after + 1, "{held} > {acked_after}");
    let out = run(
        cwd,
        &[
            "restore",
            "load.age",
            "--identity",
            "load.key",
            "--data-dir",
            "load-restored",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
fn a_backup_under_continuous_writes_on_sqlite_holds_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::harness::initialised_data_dir(dir.path(), "d");
    backup_under_load(dir.path(), &data, None, None);
}

#[test]
fn a_backup_under_continuous_writes_on_postgres_holds_every_acknowledged_event() {
    let db = crate::postgres::fresh();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = crate::postgres::migrate(cwd, &db.owner_url, &db.app_role);
    assert_eq!(out.code, Some(0), "{out}");
    let data = cwd.join("d");
    crate::postgres::pg_setup(cwd, &data, &db.app_url);
    backup_under_load(cwd, &data, Some(&db.app_url), Some(&db.owner_url));
}

/// The table lines of a verified archive: name, rows and SHA-256 each.
fn tables(verified: &Value) -> Vec<Value> {
    verified["tables"].as_array().unwrap().clone()
}

/// SQLite → PostgreSQL → SQLite: every table's rows and SHA-256 are the same at each step, the
/// server starts on PostgreSQL as the application role, and the vault values open at the end.
#[test]
fn sqlite_to_postgres_and_back_compare_equal() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, orgs) = deployment(cwd);
    crate::vault::store_credentials(&cwd.join(DATA), orgs[1].parse().unwrap(), 2);
    let public = keygen(cwd, "k");
    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "create",
            "--out",
            "1.age",
            "--recipient",
            &public,
            "--data-dir",
            DATA,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let first = verify_json(cwd, "1.age", "k");

    let db = crate::postgres::fresh();
    let seed = cwd.join(DATA).join("seed");
    let out = with(
        cwd,
        &config,
        &[
            "restore",
            "1.age",
            "--identity",
            "k",
            "--seed-file",
            path_str(&seed),
            "--data-dir",
            "pg-data",
            "--database-url",
            &db.owner_url,
            "--app-role",
            &db.app_role,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("(sqlite → postgres)"), "{out}");
    assert!(!out.all_output().contains(&db.owner_url), "{out}");
    let server = serve_on(
        cwd,
        &cwd.join("pg-data"),
        &["--config", path_str(&config), "--database-url", &db.app_url],
    );
    assert_eq!(get(&server.addr, "/readyz").status, 200);
    assert_eq!(server.terminate().code, Some(0));
    let out = with(
        cwd,
        &config,
        &[
            "keys",
            "check",
            "--data-dir",
            "pg-data",
            "--database-url",
            &db.app_url,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");

    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "create",
            "--out",
            "2.age",
            "--recipient",
            &public,
            "--data-dir",
            "pg-data",
            "--database-url",
            &db.owner_url,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let second = verify_json(cwd, "2.age", "k");
    assert_eq!(second["engine"], "postgres");

    let out = with(
        cwd,
        &config,
        &[
            "restore",
            "2.age",
            "--identity",
            "k",
            "--seed-file",
            path_str(&seed),
            "--data-dir",
            "back",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "create",
            "--out",
            "3.age",
            "--recipient",
            &public,
            "--data-dir",
            "back",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let third = verify_json(cwd, "3.age", "k");
    // The server that ran on PostgreSQL wrote to the store (sessions, checkpoints, …): the
    // tables it did not touch compare equal with the first backup, and every table of the
    // PostgreSQL backup equals the SQLite store restored from it.
    assert_eq!(tables(&second), tables(&third), "PostgreSQL → SQLite");
    for (a, b) in tables(&first).iter().zip(tables(&second).iter()) {
        if [
            "users",
            "orgs",
            "memberships",
            "credentials",
            "license_activations",
            "teams",
        ]
        .contains(&a["name"].as_str().unwrap())
        {
            assert_eq!(a, b, "SQLite → PostgreSQL");
        }
    }
    let out = with(cwd, &config, &["keys", "check", "--data-dir", "back"]);
    assert_eq!(out.code, Some(0), "{out}");
}

/// A backup killed with SIGKILL half-way leaves no file at its output, only a `.partial` one
/// that does not verify.
#[test]
fn a_backup_killed_half_way_leaves_nothing_that_looks_complete() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = crate::harness::initialised_data_dir(cwd, "d");
    let public = keygen(cwd, "k");
    {
        let stress = Stress::start(cwd, &data, None);
        stress.wait_for(30_000);
    }
    let mut cmd = bulwark(cwd);
    cmd.args([
        "backup",
        "create",
        "--out",
        "killed.age",
        "--recipient",
        &public,
    ])
    .args(["--data-dir", path_str(&data)]);
    let proc = crate::harness::Proc::spawn(cmd, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proc.stderr_so_far().contains("backup: users") {
        assert!(Instant::now() < deadline, "{}", proc.stderr_so_far());
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY-free: kill(2) through the shell's `kill`.
    let status = std::process::Command::new("kill")
        .args(["-9", &proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    drop(proc);
    assert!(
        !cwd.join("killed.age").exists(),
        "the output exists after SIGKILL"
    );
    let partial: PathBuf = cwd.join("killed.age.partial");
    assert!(partial.exists(), "the .partial file");
    let out = run(
        cwd,
        &["backup", "verify", "killed.age.partial", "--identity", "k"],
    );
    assert_eq!(out.code, Some(4), "{out}");
}

/// The archive is a standard age file: the `age` command line tool (Debian's, an independent
/// implementation's reference) decrypts it with our key, and a key made by `age-keygen`
/// receives our backups.
#[test]
fn the_archive_interoperates_with_the_age_command_line_tool() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = crate::harness::initialised_data_dir(cwd, "d");
    let public = keygen(cwd, "ours.key");
    let out = run(
        cwd,
        &[
            "backup",
            "create",
            "--out",
            "a.age",
            "--recipient",
            &public,
            "--data-dir",
            "d",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let age = std::process::Command::new("age")
        .args(["-d", "-i", "ours.key", "a.age"])
        .current_dir(cwd)
        .output()
        .expect("the `age` tool (scripts/test installs Debian's package `age`)");
    assert!(
        age.status.success(),
        "{}",
        String::from_utf8_lossy(&age.stderr)
    );
    let first = String::from_utf8_lossy(&age.stdout)
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(first.starts_with("{\"bulwark_backup\":1"), "{first}");

    let keygen = std::process::Command::new("age-keygen")
        .args(["-o", "theirs.key"])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let text = std::fs::read_to_string(cwd.join("theirs.key")).unwrap();
    let theirs = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    std::fs::write(
        cwd.join("recipients.txt"),
        format!("# ops team\n{theirs}\n"),
    )
    .unwrap();
    let out = run(
        cwd,
        &[
            "backup",
            "create",
            "--out",
            "b.age",
            "--recipients-file",
            "recipients.txt",
            "--data-dir",
            path_str(&data),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    verify_json(cwd, "b.age", "theirs.key");
    refused(cwd, "b.age", "ours.key", "no identity given matches");
}

/// Scheduled backups: `serve` on SQLite writes the first at start into `backup.dir`, verified as
/// written and recorded beside it, and `/readyz` reports its age; `backup schedule --once` (a
/// system timer's command) adds more and keeps only `backup.keep`; each one verifies with the
/// identity the server never had.
#[test]
fn scheduled_backups_are_verified_reported_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = crate::harness::initialised_data_dir(cwd, "d");
    let public = keygen(cwd, "k");
    let config = cwd.join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\nrecipients = [\"{public}\"]\ndir = \"{}\"\nschedule = \"1d\"\nkeep = 2\n",
            cwd.join("backups").display()
        ),
    )
    .unwrap();
    let server = serve_on(cwd, &data, &["--config", path_str(&config)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let ready = get(&server.addr, "/readyz").json();
        if ready["backup"]["status"] == "ok" {
            break ready;
        }
        assert!(Instant::now() < deadline, "no scheduled backup: {ready}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        ready["backup"]["age_secs"].as_u64().unwrap() < 60,
        "{ready}"
    );
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.logged("scheduled backup written and verified"), "{out}");
    assert_eq!(crate::harness::mode(&cwd.join("backups")), 0o700);

    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100));
        let out = with(
            cwd,
            &config,
            &["backup", "schedule", "--once", "--data-dir", "d"],
        );
        assert_eq!(out.code, Some(0), "{out}");
        assert!(out.stdout.contains("written and verified"), "{out}");
    }
    let mut names: Vec<String> = std::fs::read_dir(cwd.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        4,
        "keep = 2: two archives and their records: {names:?}"
    );
    for name in names.iter().filter(|n| n.ends_with(".age")) {
        let record: Value = serde_json::from_slice(
            &std::fs::read(cwd.join("backups").join(format!("{name}.verified"))).unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(cwd.join("backups").join(name)).unwrap();
        assert_eq!(record["bytes"], bytes.len());
        assert_eq!(
            record["sha256"],
            bulwark_crypto::to_hex(&bulwark_crypto::sha256(&bytes))
        );
        let path = format!("backups/{name}");
        verify_json(cwd, &path, "k");
    }
    // Without a directory there is nothing to schedule.
    let out = run(cwd, &["backup", "schedule", "--once", "--data-dir", "d"]);
    assert_eq!(out.code, Some(2), "{out}");
}

/// On PostgreSQL `serve` (the application role) does not write scheduled backups; `backup
/// schedule --once` as the owner role does, and the server reports it.
#[test]
fn scheduled_backups_on_postgres_run_as_the_owner_beside_serve() {
    let db = crate::postgres::fresh();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = crate::postgres::migrate(cwd, &db.owner_url, &db.app_role);
    assert_eq!(out.code, Some(0), "{out}");
    let data = cwd.join("d");
    crate::postgres::pg_setup(cwd, &data, &db.app_url);
    let public = keygen(cwd, "k");
    let config = cwd.join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\nrecipients = [\"{public}\"]\ndir = \"{}\"\n",
            cwd.join("backups").display()
        ),
    )
    .unwrap();
    let server = serve_on(
        cwd,
        &data,
        &["--config", path_str(&config), "--database-url", &db.app_url],
    );
    assert_eq!(
        get(&server.addr, "/readyz").json()["backup"]["status"],
        "none"
    );
    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "schedule",
            "--once",
            "--data-dir",
            "d",
            "--database-url",
            &db.app_url,
        ],
    );
    assert_eq!(out.code, Some(3), "the application role is refused: {out}");
    assert!(out.stderr.contains("owner role"), "{out}");
    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "schedule",
            "--once",
            "--data-dir",
            "d",
            "--database-url",
            &db.owner_url,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        get(&server.addr, "/readyz").json()["backup"]["status"],
        "ok"
    );
    assert_eq!(server.terminate().code, Some(0));
}

/// A backup restored after more events were committed and published: the restore compares it
/// with the deployment's published checkpoints, names exactly the events lost, and records the
/// restore in that file, so the log continues from the restored head instead of forking
/// silently. The verifier accepts the file with the restore and says what was lost; the same
/// file without it reads as a cut log. A published file of another deployment is refused.
#[test]
fn restoring_an_older_backup_names_the_lost_events_and_links_the_published_record() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, _orgs) = deployment(cwd);
    let public = keygen(cwd, "k");
    let out = with(
        cwd,
        &config,
        &[
            "backup",
            "create",
            "--out",
            "old.age",
            "--recipient",
            &public,
            "--data-dir",
            DATA,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let held = events(&verify_json(cwd, "old.age", "k"), "system");

    // After the backup: 20 more system events, and a checkpoint of them published.
    let out = with(
        cwd,
        &config,
        &["audit", "stress", "--limit", "20", "--data-dir", DATA],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(
        cwd,
        &config,
        &[
            "audit",
            "export",
            "--log",
            "system",
            "--data-dir",
            DATA,
            "--out",
            "later.jsonl",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");

    // The disk is lost; the published file, kept elsewhere, is put where the new one will be.
    let new = cwd.join("new");
    std::fs::create_dir(&new).unwrap();
    crate::harness::chmod(&new, 0o700);
    let published = cwd.join(DATA).join("audit-checkpoints.jsonl");
    std::fs::copy(&published, new.join("audit-checkpoints.jsonl")).unwrap();
    let out = with(
        cwd,
        &config,
        &[
            "restore",
            "old.age",
            "--identity",
            "k",
            "--seed-file",
            path_str(&cwd.join(DATA).join("seed")),
            "--data-dir",
            "new",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        report["lost"],
        serde_json::json!([{
            "log": "system", "from_seq": held, "to_seq": held + 19, "events": 20,
            "last_published_at": report["lost"][0]["last_published_at"],
        }]),
        "{report}"
    );
    let file = std::fs::read_to_string(new.join("audit-checkpoints.jsonl")).unwrap();
    assert!(
        file.lines().last().unwrap().starts_with("{\"restored\":"),
        "{file}"
    );

    // The restored deployment goes on; its log verifies against the file, naming the loss.
    let out = with(
        cwd,
        &config,
        &["audit", "stress", "--limit", "5", "--data-dir", "new"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(
        cwd,
        &config,
        &[
            "audit",
            "export",
            "--log",
            "system",
            "--data-dir",
            "new",
            "--out",
            "after.jsonl",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let key = with(cwd, &config, &["audit", "key", "--data-dir", "new"]);
    let key = key.stdout.trim();
    let verify = |file: &Path| {
        run(
            cwd,
            &[
                "audit",
                "verify",
                "after.jsonl",
                "--key",
                key,
                "--published",
                path_str(file),
            ],
        )
    };
    let out = verify(&new.join("audit-checkpoints.jsonl"));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("events {held} to {}", held + 19)),
        "{out}"
    );
    // The old file alone (without the restore line) says the log was cut back.
    let out = verify(&published);
    assert_eq!(out.code, Some(4), "{out}");

    // Another deployment's published file is not this history: nothing is restored.
    let mut setup = bulwark(cwd);
    setup
        .args([
            "setup",
            "--org",
            "Other",
            "--email",
            "o@other.test",
            "--password-stdin",
        ])
        .args(["--data-dir", "other"]);
    let out = crate::harness::run_with(
        setup,
        Some("a perfectly long passphrase\n"),
        crate::harness::COMMAND_TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "{out}");
    let other = cwd.join("other");
    let out = run(
        cwd,
        &["audit", "export", "--data-dir", "other", "--out", "o.jsonl"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let foreign = cwd.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    crate::harness::chmod(&foreign, 0o700);
    std::fs::copy(
        other.join("audit-checkpoints.jsonl"),
        foreign.join("audit-checkpoints.jsonl"),
    )
    .unwrap();
    let out = with(
        cwd,
        &config,
        &[
            "restore",
            "old.age",
            "--identity",
            "k",
            "--seed-file",
            path_str(&cwd.join(DATA).join("seed")),
            "--data-dir",
            "foreign",
        ],
    );
    assert_eq!(out.code, Some(4), "{out}");
    assert!(!foreign.join("seed").exists(), "{out}");
    assert!(!foreign.join("bulwark.db").exists(), "{out}");
}
