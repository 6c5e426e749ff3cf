//! The `bulwark` binary run for real in temp dirs: defaults, exit codes, CLI setup, PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration tests: a failed step is a failed test"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

/// A running `bulwark serve`, killed on drop whatever happens.
struct Server {
    child: Child,
    addr: String,
    stdout: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bulwark(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd)
        .env("BULWARK_LOG__FORMAT", "json")
        .env_remove("BULWARK_CONFIG");
    c
}

/// Starts `serve` with `args` and waits for its `listening` line.
fn serve(cwd: &Path, args: &[&str]) -> Server {
    let mut child = bulwark(cwd)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut server = Server {
        child,
        addr: String::new(),
        stdout: rx,
        seen: Vec::new(),
        stderr: Some(stderr),
    };
    loop {
        let line = server
            .stdout
            .recv_timeout(Duration::from_secs(20))
            .expect("no `listening` line within 20 s");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        server.seen.push(line);
        if v["message"] == "listening" {
            server.addr = v["addr"].as_str().unwrap().to_owned();
            return server;
        }
    }
}

/// Sends SIGTERM and returns (exit code, all stdout, all stderr).
fn terminate(mut s: Server) -> (i32, String, String) {
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = s.stderr.take().unwrap().join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut out = std::mem::take(&mut s.seen);
    out.extend(s.stdout.try_iter());
    (code, out.join("\n"), stderr)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn get(addr: &str, path: &str) -> (u16, String) {
    runtime().block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let res = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    })
}

fn setup_tokens(stderr: &str) -> Vec<String> {
    stderr
        .split_whitespace()
        .filter(|w| w.starts_with("bwsetup_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn serve_with_no_flags_uses_the_documented_defaults() {
    let cwd = tempfile::tempdir().unwrap();
    let server = serve(cwd.path(), &[]);
    assert_eq!(server.addr, "127.0.0.1:8420");
    let data = cwd.path().join("bulwark-data");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let seed = std::fs::read(data.join("seed")).unwrap();
    assert_eq!(seed.len(), 81);
    assert!(seed.starts_with(b"bulwark-seed-v1:"));
    assert_eq!(mode(&data.join("seed")), 0o600);
    assert!(data.join("bulwark.db").exists());
    assert!(data.join("bulwark.db-wal").exists(), "WAL mode");
    let (status, body) = get(&server.addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
    let (code, stdout, stderr) = terminate(server);
    assert_eq!(code, 0);
    let tokens = setup_tokens(&stderr);
    assert_eq!(tokens.len(), 1, "printed once: {stderr}");
    assert!(
        stdout.contains("\"listening\""),
        "the JSON log was read: {stdout}"
    );
    assert!(
        !stdout.contains("bwsetup_"),
        "the setup token must not reach the log"
    );
}

#[test]
fn config_errors_exit_2_naming_the_key_and_where() {
    let cwd = tempfile::tempdir().unwrap();
    let file = cwd.path().join("bulwark.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\n[http]\nbody_limit = 1\n").unwrap();
    let out = bulwark(cwd.path())
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let shown = file.display().to_string();
    assert!(
        err.contains("body_limit") && err.contains("line 3") && err.contains(&shown),
        "{err}"
    );

    let out = bulwark(cwd.path())
        .args(["serve", "--config", "/nonexistent/b.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/b.toml"));

    let out = bulwark(cwd.path())
        .arg("serve")
        .env("BULWARK_LISTN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BULWARK_LISTN"));

    let out = bulwark(cwd.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`listen`"));
    assert!(
        !cwd.path().join("bulwark-data").exists(),
        "nothing created on a config error"
    );
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let cwd = tempfile::tempdir().unwrap();
    let url = "postgres://app:Sup3r-S3cret@db.internal/bulwark";
    let out = bulwark(cwd.path())
        .args(["config", "check", "--database-url", url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Sup3r-S3cret"), "{text}");
    assert!(
        text.contains("postgres://app:[REDACTED]@db.internal/bulwark"),
        "{text}"
    );
    assert!(text.contains("listen = \"127.0.0.1:8420\""), "{text}");
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
fn setup_from_the_cli_then_http_setup_answers_410() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let weak = cli_setup(cwd.path(), &data, "short");
    assert_eq!(
        weak.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&weak.stderr)
    );

    let password = "a perfectly long passphrase";
    let out = cli_setup(cwd.path(), &data, password);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["org"]["id"].as_str().unwrap().starts_with("org_"));
    assert!(!stdout.contains(password) && !String::from_utf8_lossy(&out.stderr).contains(password));

    let again = cli_setup(cwd.path(), &data, password);
    assert_eq!(again.status.code(), Some(1), "setup runs once");

    let missing_flag = bulwark(cwd.path())
        .args(["setup", "--org", "A", "--email", "a@b.test"])
        .output()
        .unwrap();
    assert_eq!(
        missing_flag.status.code(),
        Some(2),
        "--password-stdin is required"
    );

    let server = serve(
        cwd.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let (status, ct) = runtime().block_on(async {
        let body = serde_json::json!({"setup_token": "bwsetup_x", "org": {"name": "X"},
            "owner": {"email": "x@x.test", "password": password}});
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let res = client
            .post(format!("http://{}/v1/setup", server.addr))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.headers()["content-type"].to_str().unwrap().to_owned(),
        )
    });
    assert_eq!((status, ct.as_str()), (410, "application/problem+json"));
    let (code, _, stderr) = terminate(server);
    assert_eq!(code, 0);
    assert!(
        setup_tokens(&stderr).is_empty(),
        "no setup token once set up"
    );
}

#[test]
fn a_missing_seed_refuses_to_start_with_exit_code_3() {
    let cwd = tempfile::tempdir().unwrap();
    let server = serve(cwd.path(), &["--listen", "127.0.0.1:0"]);
    assert_eq!(terminate(server).0, 0);
    std::fs::remove_file(cwd.path().join("bulwark-data/seed")).unwrap();
    let out = bulwark(cwd.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("seed") && err.contains("missing"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    assert!(!cwd.path().join("bulwark-data/seed").exists());
}

#[test]
fn migrate_then_serve_on_postgres_and_refuse_privileged_roles() {
    let db = runtime().block_on(bulwark_testkit::pg::fresh_database());
    let cwd = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = bulwark(cwd.path())
            .args([
                "migrate",
                "--database-url",
                &db.owner_url,
                "--app-role",
                &db.app_role,
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = serve(
        cwd.path(),
        &["--listen", "127.0.0.1:0", "--database-url", &db.app_url],
    );
    let (status, body) = get(&server.addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\""));
    assert_eq!(terminate(server).0, 0);

    for url in [&db.owner_url, &db.superuser_url] {
        let out = bulwark(cwd.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "other",
                "--database-url",
                url,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains("role"), "{err}");
        assert!(!err.contains(url.as_str()), "the URL is not echoed");
    }
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
