//! PostgreSQL: `migrate` as the owner, `serve` as the application role, and refusal of roles
//! that could bypass row-level security. Needs the cluster of `scripts/test`.

use std::path::Path;

use bulwark_testkit::pg::{self, PgTestDb};

use crate::harness::{Finished, get, run, runtime, serve_expecting_exit, serve_on};

pub(crate) fn fresh() -> PgTestDb {
    runtime().block_on(pg::fresh_database())
}

pub(crate) fn migrate(cwd: &Path, owner_url: &str, app_role: &str) -> Finished {
    run(
        cwd,
        &[
            "migrate",
            "--database-url",
            owner_url,
            "--app-role",
            app_role,
        ],
    )
}

#[test]
fn migrate_then_serve_on_postgres() {
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    for round in 1..=2 {
        let out = migrate(cwd.path(), &db.owner_url, &db.app_role);
        assert_eq!(
            out.code,
            Some(0),
            "migrate run {round} (idempotent):\n{out}"
        );
        assert!(out.stdout.contains(&db.app_role), "{out}");
        assert!(!out.all_output().contains(&db.owner_url), "{out}");
    }

    let data = cwd.path().join("d");
    let server = serve_on(cwd.path(), &data, &["--database-url", &db.app_url]);
    let ready = get(&server.addr, "/readyz");
    assert_eq!(ready.status, 200, "{ready:?}");
    let v = ready.json();
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["checks"]["migrations"], "ok", "{v}");
    assert_eq!(v["checks"]["database"], "ok", "{v}");
    let engine = server.log_line("store ready").unwrap()["engine"].clone();
    assert_eq!(engine, "postgres", "{engine}");
    assert!(
        data.join("seed").is_file(),
        "the seed lives in the data dir"
    );
    assert!(
        !data.join("bulwark.db").exists(),
        "no SQLite database with PostgreSQL configured"
    );
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.all_output().contains(&db.app_url), "{out}");
    assert_eq!(
        setup_tokens_in(&out).len(),
        1,
        "setup pending on PostgreSQL too:\n{out}"
    );

    // A restart on the same database and data dir is the same deployment.
    let again = serve_on(cwd.path(), &data, &["--database-url", &db.app_url]);
    assert_eq!(get(&again.addr, "/readyz").status, 200);
    assert_eq!(again.terminate().code, Some(0));
}

fn setup_tokens_in(out: &Finished) -> Vec<String> {
    crate::harness::setup_tokens(&out.stderr)
}

#[test]
fn serve_on_postgres_refuses_the_owner_and_superuser_roles() {
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    let out = migrate(cwd.path(), &db.owner_url, &db.app_role);
    assert_eq!(out.code, Some(0), "{out}");

    for (who, url, needle) in [
        ("owner", &db.owner_url, "owns"),
        ("superuser", &db.superuser_url, "superuser"),
    ] {
        let data = cwd.path().join(who);
        let out = serve_expecting_exit(cwd.path(), &data, &["--database-url", url]);
        assert_eq!(out.code, Some(3), "{who}: refused (exit 3):\n{out}");
        assert!(
            out.stderr.contains("role"),
            "{who}: names the role problem:\n{out}"
        );
        assert!(
            out.stderr.contains(needle),
            "{who}: says `{needle}`:\n{out}"
        );
        assert!(
            !out.all_output().contains(url.as_str()),
            "{who}: URL echoed:\n{out}"
        );
        assert!(!out.logged("listening"), "{out}");
        assert!(
            !data.join("seed").exists(),
            "{who}: no seed written for a refused role"
        );
    }
}

/// The role names of the testkit double as their passwords, so a password check needs roles
/// whose passwords are distinct: a dedicated owner that runs the migrations and a superuser.
#[test]
fn refused_roles_never_echo_the_database_password() {
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    let owner_pw = "Own3r-Pa55word-xyzzy";
    let super_pw = "Sup3r-Pa55word-plugh";
    let (owner_role, owner_url, super_url) = runtime().block_on(async {
        let (owner, _) = pg::create_role(&db, "bwowner", "NOSUPERUSER NOBYPASSRLS").await;
        pg::superuser_exec(&db, &format!("ALTER ROLE {owner} PASSWORD '{owner_pw}'")).await;
        pg::superuser_exec(&db, &format!("ALTER DATABASE {} OWNER TO {owner}", db.name)).await;
        pg::superuser_exec(&db, &format!("ALTER SCHEMA public OWNER TO {owner}")).await;
        let (su, _) = pg::create_role(&db, "bwsuper", "SUPERUSER").await;
        pg::superuser_exec(&db, &format!("ALTER ROLE {su} PASSWORD '{super_pw}'")).await;
        let owner_url = pg::url_for(&db.superuser_url, &owner, owner_pw, &db.name);
        let super_url = pg::url_for(&db.superuser_url, &su, super_pw, &db.name);
        (owner, owner_url, super_url)
    });
    let out = migrate(cwd.path(), &owner_url, &db.app_role);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.all_output().contains(owner_pw), "{out}");

    for (who, url, pw) in [
        ("owner", &owner_url, owner_pw),
        ("superuser", &super_url, super_pw),
    ] {
        let data = cwd.path().join(who);
        let out = serve_expecting_exit(cwd.path(), &data, &["--database-url", url]);
        assert_eq!(out.code, Some(3), "{who}:\n{out}");
        assert!(out.stderr.contains("role"), "{who}:\n{out}");
        assert!(
            !out.all_output().contains(pw),
            "{who}: password echoed:\n{out}"
        );
        assert!(
            !out.all_output().contains(owner_pw),
            "{who}: owner password echoed:\n{out}"
        );
    }
    // The owner is named, so the operator knows which role to change.
    let data = cwd.path().join("owner-again");
    let out = serve_expecting_exit(cwd.path(), &data, &["--database-url", &owner_url]);
    assert!(out.stderr.contains(&owner_role), "{out}");

    // And the app role still serves on this database.
    let data = cwd.path().join("app");
    let server = serve_on(cwd.path(), &data, &["--database-url", &db.app_url]);
    assert_eq!(get(&server.addr, "/readyz").status, 200);
    assert_eq!(server.terminate().code, Some(0));
}

/// What the code does today: `serve` exits 1 during start-up (the first query of the deployment
/// row fails), before listening and before writing a seed. It does not answer `/readyz` 503.
#[test]
fn serve_on_an_unmigrated_database_does_not_become_ready() {
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let out = serve_expecting_exit(cwd.path(), &data, &["--database-url", &db.app_url]);
    assert_eq!(out.code, Some(3), "start-up is refused (exit 3):\n{out}");
    assert!(
        out.stderr.contains("bulwark migrate"),
        "the message says what to do:\n{out}"
    );
    assert!(!out.logged("listening"), "{out}");
    assert!(out.logged("cannot start"), "the failure is logged:\n{out}");
    assert!(out.stderr.starts_with("error: "), "{out}");
    assert!(!out.all_output().contains(&db.app_url), "{out}");
    assert!(
        !data.join("seed").exists(),
        "no seed is created for a database that cannot hold a deployment:\n{out}"
    );

    // Once migrated, the same command becomes ready.
    let migrated = migrate(cwd.path(), &db.owner_url, &db.app_role);
    assert_eq!(migrated.code, Some(0), "{migrated}");
    let server = serve_on(cwd.path(), &data, &["--database-url", &db.app_url]);
    let ready = get(&server.addr, "/readyz");
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (200, "ready".into())
    );
    assert_eq!(server.terminate().code, Some(0));
}

/// `bulwark setup` on PostgreSQL: creates the seed in `data` and the first org.
pub(crate) fn pg_setup(cwd: &Path, data: &Path, app_url: &str) {
    let mut cmd = crate::harness::bulwark(cwd);
    cmd.args([
        "setup",
        "--org",
        "Acme",
        "--email",
        "o@acme.test",
        "--password-stdin",
        "--data-dir",
        crate::harness::path_str(data),
        "--database-url",
        app_url,
    ]);
    let out = crate::harness::run_with(
        cmd,
        Some("a perfectly long passphrase\n"),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{out}");
}

/// The error line the PostgreSQL page quotes, starting with `prefix`, from a fenced block.
fn quoted_in_doc(prefix: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/postgres.md"
    ))
    .unwrap();
    doc.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("docs/postgres.md quotes no line starting with `{prefix}`"))
        .to_owned()
}

/// The seed on PostgreSQL lives in each replica's data dir (docs/postgres.md, "The workspace
/// seed and the data directory"): a replica or CLI command whose data dir lacks the deployment's
/// seed, or holds another deployment's, is refused with exit 3 and the message the page quotes,
/// and never writes a seed of its own next to the existing deployment.
#[test]
fn a_replica_without_the_deployments_seed_is_refused_as_documented() {
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(
        migrate(cwd.path(), &db.owner_url, &db.app_role).code,
        Some(0)
    );
    let data = cwd.path().join("d");
    pg_setup(cwd.path(), &data, &db.app_url);

    // A new replica with an empty (not yet created) data dir, and a CLI command the same way.
    let empty = cwd.path().join("new-replica");
    let missing = quoted_in_doc("error: workspace seed `").replace(
        "/var/lib/bulwark/seed",
        crate::harness::path_str(&empty.join("seed")),
    );
    let out = serve_expecting_exit(cwd.path(), &empty, &["--database-url", &db.app_url]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(
        out.stderr.contains(&missing),
        "expected `{missing}`:\n{out}"
    );
    let out = run(
        cwd.path(),
        &[
            "keys",
            "status",
            "--data-dir",
            crate::harness::path_str(&empty),
            "--database-url",
            &db.app_url,
        ],
    );
    assert_eq!(out.code, Some(3), "{out}");
    assert!(
        out.stderr.contains(&missing),
        "expected `{missing}`:\n{out}"
    );
    assert!(!empty.exists(), "nothing was created for a refused replica");

    // A data dir holding another deployment's seed (made by a SQLite setup there).
    let foreign = cwd.path().join("foreign");
    let mut cmd = crate::harness::bulwark(cwd.path());
    cmd.args([
        "setup",
        "--org",
        "Other",
        "--email",
        "o@other.test",
        "--password-stdin",
        "--data-dir",
        crate::harness::path_str(&foreign),
    ]);
    let made = crate::harness::run_with(
        cmd,
        Some("a perfectly long passphrase\n"),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(made.code, Some(0), "{made}");
    let seed = std::fs::read(foreign.join("seed")).unwrap();
    let out = serve_expecting_exit(cwd.path(), &foreign, &["--database-url", &db.app_url]);
    assert_eq!(out.code, Some(3), "{out}");
    let mismatch = quoted_in_doc("error: the workspace seed does not match");
    assert!(
        out.stderr.contains(&mismatch),
        "expected `{mismatch}`:\n{out}"
    );
    assert_eq!(
        std::fs::read(foreign.join("seed")).unwrap(),
        seed,
        "the seed is left as it was"
    );

    // With the deployment's seed copied in (0600), the same data dir serves.
    std::fs::remove_file(foreign.join("seed")).unwrap();
    std::fs::copy(data.join("seed"), foreign.join("seed")).unwrap();
    crate::harness::chmod(&foreign.join("seed"), 0o600);
    let server = serve_on(cwd.path(), &foreign, &["--database-url", &db.app_url]);
    assert_eq!(get(&server.addr, "/readyz").status, 200);
    assert_eq!(server.terminate().code, Some(0));
}

/// Exports the system log and checks it offline: gap-free, verified; returns its seqs.
fn export_and_verify(cwd: &Path, data: &Path, app_url: &str) -> Vec<u64> {
    let d = crate::harness::path_str(data);
    let file = cwd.join("export.jsonl");
    let out = run(
        cwd,
        &[
            "audit",
            "export",
            "--data-dir",
            d,
            "--database-url",
            app_url,
            "--out",
            crate::harness::path_str(&file),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let key = run(
        cwd,
        &["audit", "key", "--data-dir", d, "--database-url", app_url],
    );
    let vkey = key.stdout.trim().to_owned();
    let verify = run(
        cwd,
        &[
            "audit",
            "verify",
            crate::harness::path_str(&file),
            "--key",
            &vkey,
        ],
    );
    assert_eq!(verify.code, Some(0), "{verify}");
    let seqs: Vec<u64> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "the log has no gaps"
    );
    seqs
}

/// Two processes append to one log of one PostgreSQL database at once, 16 tasks each: every
/// acknowledged event is present exactly once, the log has no gap or fork, and it verifies.
#[test]
fn two_processes_appending_to_one_postgresql_log_serialise_safely() {
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(
        migrate(cwd.path(), &db.owner_url, &db.app_role).code,
        Some(0)
    );
    let data = cwd.path().join("d");
    pg_setup(cwd.path(), &data, &db.app_url);
    let d = crate::harness::path_str(&data).to_owned();
    let spawn = || {
        crate::harness::bulwark(cwd.path())
            .args([
                "audit",
                "stress",
                "--data-dir",
                &d,
                "--database-url",
                &db.app_url,
                "--tasks",
                "16",
                "--limit",
                "400",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let mut acked = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        acked.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok())),
        );
    }
    assert_eq!(acked.len(), 800);
    let distinct: std::collections::HashSet<u64> = acked.iter().copied().collect();
    assert_eq!(distinct.len(), 800, "two appenders were given the same seq");
    let seqs = export_and_verify(cwd.path(), &data, &db.app_url);
    assert_eq!(seqs.len(), 801, "setup's event and 800 appended ones");
    assert!(acked.iter().all(|s| (1..=800).contains(s)));
}

/// Two `bulwark serve` replicas on one PostgreSQL database take sign-ins at once (each one an
/// append to the system log): the log stays gap-free and verifies.
#[test]
fn two_server_replicas_append_to_one_log_at_once() {
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(
        migrate(cwd.path(), &db.owner_url, &db.app_role).code,
        Some(0)
    );
    let data = cwd.path().join("d");
    pg_setup(cwd.path(), &data, &db.app_url);
    // A second replica: its own data dir holding the same seed.
    let data2 = cwd.path().join("d2");
    std::fs::create_dir(&data2).unwrap();
    crate::harness::chmod(&data2, 0o700);
    std::fs::copy(data.join("seed"), data2.join("seed")).unwrap();
    crate::harness::chmod(&data2.join("seed"), 0o600);
    let one = serve_on(cwd.path(), &data, &["--database-url", &db.app_url]);
    let two = serve_on(cwd.path(), &data2, &["--database-url", &db.app_url]);
    // Sign-in throttling counters are shared through the database: three failures on one
    // replica and two on the other make five, and the next attempt waits on either.
    let fail = |addr: &str| {
        crate::harness::post_json(
            addr,
            "/v1/auth/login",
            &serde_json::json!({"email": "x@acme.test", "password": "a wrong but long passphrase"}),
        )
        .status
    };
    for addr in [&one.addr, &one.addr, &one.addr, &two.addr, &two.addr] {
        assert_eq!(fail(addr), 401);
    }
    assert_eq!(fail(&one.addr), 429, "counters are shared by the replicas");
    let attempts = 24;
    let addrs = [one.addr.clone(), two.addr.clone()];
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = addrs
            .iter()
            .flat_map(|addr| (0..attempts).map(move |i| (addr, i)))
            .map(|(addr, i)| {
                s.spawn(move || {
                    let password = if i % 3 == 0 {
                        "a perfectly long passphrase"
                    } else {
                        "a wrong but long passphrase"
                    };
                    let res = crate::harness::post_json(
                        addr,
                        "/v1/auth/login",
                        &serde_json::json!({"email": "o@acme.test", "password": password}),
                    );
                    // 429 once the account's failures pass the throttle (whether they do
                    // depends on how the right and wrong attempts interleave).
                    assert!(matches!(res.status, 200 | 401 | 429), "{res:?}");
                    res.status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(one.terminate().code, Some(0));
    assert_eq!(two.terminate().code, Some(0));
    let seqs = export_and_verify(cwd.path(), &data, &db.app_url);
    // Every answered sign-in is one event; refusals while throttled are audited at most once a
    // minute per account (more when concurrent refusals race to note it, never more than one
    // each).
    let answered = statuses.iter().filter(|s| matches!(s, 200 | 401)).count();
    let throttled = statuses.len() - answered;
    let least = 1 + 6 + answered + usize::from(throttled > 0);
    let most = 1 + 6 + answered + throttled;
    assert!(
        (least..=most).contains(&seqs.len()),
        "setup, the six throttling probes, one event per answered sign-in and at least one for \
         the throttled ones: {} events for {answered} answered and {throttled} throttled",
        seqs.len()
    );
}

/// Each replica caches the sessions it accepted (here for 5 s), and a sign-out on one replica
/// still ends the session on the other well within that: the revoking commit is announced with
/// `NOTIFY`, and the other replica's cache stops trusting what it holds.
#[test]
fn a_session_ended_on_one_replica_is_refused_by_the_other_at_once() {
    use crate::harness::request;
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(
        migrate(cwd.path(), &db.owner_url, &db.app_role).code,
        Some(0)
    );
    let data = cwd.path().join("d");
    pg_setup(cwd.path(), &data, &db.app_url);
    let data2 = cwd.path().join("d2");
    std::fs::create_dir(&data2).unwrap();
    crate::harness::chmod(&data2, 0o700);
    std::fs::copy(data.join("seed"), data2.join("seed")).unwrap();
    crate::harness::chmod(&data2.join("seed"), 0o600);
    let config = cwd.path().join("bulwark.toml");
    std::fs::write(&config, "[sessions]\ncache_secs = 5\n").unwrap();
    let args = [
        "--database-url",
        db.app_url.as_str(),
        "--config",
        crate::harness::path_str(&config),
    ];
    let one = serve_on(cwd.path(), &data, &args);
    let two = serve_on(cwd.path(), &data2, &args);

    let (signed_in, cookies) = request(
        "POST",
        &one.addr,
        "/v1/auth/login",
        &[],
        Some(
            &serde_json::json!({"email": "o@acme.test", "password": "a perfectly long passphrase"}),
        ),
    );
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Host-bulwark_session="))
        .unwrap()
        .clone();
    let csrf = signed_in.json()["csrf_token"].as_str().unwrap().to_owned();
    let whoami = |addr: &str| {
        request(
            "GET",
            addr,
            "/v1/auth/session",
            &[("cookie", &cookie)],
            None,
        )
        .0
        .status
    };
    // Both replicas accept the session, and now hold it in their caches.
    for addr in [&one.addr, &two.addr, &one.addr, &two.addr] {
        assert_eq!(whoami(addr), 200);
    }
    let (out, _) = request(
        "POST",
        &one.addr,
        "/v1/auth/logout",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    );
    assert!(matches!(out.status, 200 | 204), "{out:?}");
    let ended = std::time::Instant::now();
    assert_eq!(whoami(&one.addr), 401, "refused at once where it was ended");
    // The announcement crosses replicas in milliseconds; allow one second, far below the 5 s a
    // cached entry could otherwise live.
    while whoami(&two.addr) != 401 {
        assert!(
            ended.elapsed() < std::time::Duration::from_secs(1),
            "the other replica still accepts the ended session"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(one.terminate().code, Some(0));
    assert_eq!(two.terminate().code, Some(0));
}

/// The crash test on PostgreSQL: an appender with 16 tasks is `kill -9`ed at random moments 20
/// times; every acknowledged event is in the log afterwards, and the log verifies.
#[test]
fn acknowledged_events_survive_20_kill_9_restarts_on_postgresql() {
    use std::io::BufRead as _;
    let db = fresh();
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(
        migrate(cwd.path(), &db.owner_url, &db.app_role).code,
        Some(0)
    );
    let data = cwd.path().join("d");
    pg_setup(cwd.path(), &data, &db.app_url);
    let d = crate::harness::path_str(&data).to_owned();
    let mut acked: Vec<u64> = Vec::new();
    let mut state = u64::from(std::process::id()) | 1;
    for _ in 0..20 {
        let mut child = crate::harness::bulwark(cwd.path())
            .args(["audit", "stress", "--data-dir", &d, "--database-url"])
            .arg(&db.app_url)
            .args(["--tasks", "16"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            std::io::BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()))
                .collect::<Vec<u64>>()
        });
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(std::time::Duration::from_millis(200 + (state >> 33) % 300));
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = child.wait();
        acked.extend(reader.join().unwrap());
    }
    assert!(acked.len() > 20, "only {} events acknowledged", acked.len());
    let present: std::collections::HashSet<u64> = export_and_verify(cwd.path(), &data, &db.app_url)
        .into_iter()
        .collect();
    for seq in &acked {
        assert!(present.contains(seq), "acknowledged event {seq} was lost");
    }
}
