//! `bulwark serve` on SQLite: the documented defaults and restarts.

use std::time::{Duration, Instant};

use crate::harness::{self, Finished, Server, get, mode, post_json, serve_on, setup_tokens};

/// `serve` with no flags in `cwd`. The defaults bind the fixed port 8420, which another test
/// binary of this package (or a neighbour) may hold for a moment: retry while the only problem
/// is that the port is taken, up to a deadline.
fn serve_with_defaults(cwd: &std::path::Path) -> Server {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match harness::try_serve(cwd, &[]) {
            Ok(server) => return server,
            Err(f @ Finished { .. })
                if f.stderr.contains("cannot listen on `127.0.0.1:8420`")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(f) => panic!("serve with no flags did not start:\n{f}"),
        }
    }
}

#[test]
fn serve_with_no_flags_uses_the_documented_defaults() {
    let cwd = tempfile::tempdir().unwrap();
    let server = serve_with_defaults(cwd.path());
    assert_eq!(server.addr, "127.0.0.1:8420");

    let data = cwd.path().join("bulwark-data");
    assert!(data.is_dir(), "./bulwark-data is the default data dir");
    assert_eq!(mode(&data), 0o700, "data dir mode");
    let seed_path = data.join("seed");
    let seed = std::fs::read(&seed_path).unwrap();
    assert_eq!(mode(&seed_path), 0o600, "seed mode");
    assert_eq!(seed.len(), 81, "`bulwark-seed-v1:` + 64 hex + newline");
    assert!(seed.starts_with(b"bulwark-seed-v1:"));
    let hex = &seed[16..80];
    assert!(
        hex.iter().all(u8::is_ascii_hexdigit),
        "{}",
        String::from_utf8_lossy(&seed)
    );
    assert!(data.join("bulwark.db").is_file(), "SQLite database");
    // Checked while running: a clean shutdown may checkpoint and remove the WAL.
    assert!(
        data.join("bulwark.db-wal").exists(),
        "SQLite runs in WAL mode"
    );

    let health = get(&server.addr, "/healthz");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.json()["status"], "ok");

    let out = server.terminate();
    assert_eq!(out.code, Some(0), "SIGTERM is a clean stop:\n{out}");
    assert!(out.logged("listening"), "the JSON log was read:\n{out}");
    assert!(
        out.stdout
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "stdout is JSON lines when not a terminal:\n{}",
        out.stdout
    );
    let tokens = setup_tokens(&out.stderr);
    assert_eq!(
        tokens.len(),
        1,
        "the setup token is printed once:\n{}",
        out.stderr
    );
    assert!(tokens[0].len() > "bwsetup_".len() + 16, "{tokens:?}");
    assert!(
        !out.stdout.contains(&tokens[0]) && !out.stdout.contains("bwsetup_"),
        "the setup token must never reach the log:\n{}",
        out.stdout
    );
}

#[test]
fn a_second_start_reuses_the_seed_and_database() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");

    let first = serve_on(cwd.path(), &data, &[]);
    let deployment1 = first
        .log_line("store ready")
        .expect("a `store ready` line before `listening`")["deployment"]
        .as_str()
        .unwrap()
        .to_owned();
    let seed1 = std::fs::read(data.join("seed")).unwrap();
    let out1 = first.terminate();
    assert_eq!(out1.code, Some(0), "{out1}");
    assert!(
        out1.logged("created a new workspace seed; back it up"),
        "the first start creates the seed:\n{out1}"
    );

    let second = serve_on(cwd.path(), &data, &[]);
    let deployment2 = second.log_line("store ready").unwrap()["deployment"]
        .as_str()
        .unwrap()
        .to_owned();
    let stale = setup_tokens(&out1.stderr);
    assert_eq!(stale.len(), 1, "{out1}");
    let body = serde_json::json!({
        "setup_token": stale[0],
        "org": {"name": "Acme Corp"},
        "owner": {"email": "o@acme.test", "password": "a perfectly long passphrase"},
    });
    let res = post_json(&second.addr, "/v1/setup", &body);
    assert_eq!(
        res.status, 401,
        "the previous start's token stops working: {res:?}"
    );
    let out2 = second.terminate();
    assert_eq!(out2.code, Some(0), "{out2}");

    assert_eq!(
        std::fs::read(data.join("seed")).unwrap(),
        seed1,
        "seed file unchanged"
    );
    assert_eq!(deployment1, deployment2, "same deployment across restarts");
    assert!(
        !out2.logged("created a new workspace seed; back it up"),
        "no new seed on restart:\n{out2}"
    );
    let t1 = setup_tokens(&out1.stderr);
    let t2 = setup_tokens(&out2.stderr);
    assert_eq!(
        (t1.len(), t2.len()),
        (1, 1),
        "a token per start while setup is pending"
    );
    assert_ne!(t1[0], t2[0], "each start issues a new setup token");
}

/// ASVS V16.2.3: a server's logs go only where docs/inventory.md § Connections says: JSON lines on
/// standard output. While it serves traffic that logs (a failed sign-in, a malformed body, an
/// unknown route), every file it holds open is in its data dir or a device, and afterwards its
/// working directory, home and temporary directory hold nothing and its data dir only its own
/// files.
#[test]
fn logs_go_only_to_standard_output_and_files_only_to_the_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut cmd = harness::bulwark(cwd.path());
    cmd.env("HOME", home.path())
        .env("TMPDIR", tmp.path())
        .env("XDG_STATE_HOME", home.path().join("state"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let server = harness::try_serve_cmd(cmd).unwrap_or_else(|f| panic!("{f}"));
    let wrong = serde_json::json!({"email": "nobody@acme.test", "password": "not the password"});
    assert_eq!(
        post_json(&server.addr, "/v1/auth/login", &wrong).status,
        401
    );
    let (bad, _) = harness::request(
        "POST",
        &server.addr,
        "/v1/auth/login",
        &[],
        Some(&serde_json::json!([1, 2])),
    );
    assert!((400..500).contains(&bad.status), "{}", bad.status);
    assert_eq!(get(&server.addr, "/v1/no-such-route").status, 404);
    let data_dir = data.canonicalize().unwrap();
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.proc.pid())).unwrap();
    for fd in fds {
        let Ok(target) = std::fs::read_link(fd.unwrap().path()) else {
            continue; // closed meanwhile
        };
        if target.is_absolute() {
            assert!(
                target.starts_with(&data_dir) || target.starts_with("/dev/"),
                "the server holds {} open",
                target.display()
            );
        }
    }
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines.len() >= 3, "{out}");
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "a log line that is not JSON: {line}"
        );
    }
    for (what, dir) in [("cwd", &cwd), ("HOME", &home), ("TMPDIR", &tmp)] {
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{what} holds {left:?}");
    }
    let mut own: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    own.sort();
    let expected = ["bulwark.db", "bulwark.db-shm", "bulwark.db-wal", "seed"];
    assert!(
        own.iter().all(|f| expected.contains(&f.as_str())),
        "the data dir holds {own:?}"
    );
}

/// `bulwark healthcheck` (the container's health check) finds the server through the same
/// configuration as `serve`, with a wildcard address reached over loopback: exit 0 while it
/// answers, 1 once it is gone or for a path that does not answer 200.
#[test]
fn healthcheck_follows_the_server_through_its_configuration() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let listen = format!("0.0.0.0:{port}");
    let mut cmd = crate::harness::bulwark(cwd.path());
    cmd.args(["serve", "--data-dir", harness::path_str(&data)])
        .env("BULWARK_LISTEN", &listen)
        .env("BULWARK_SERVER__MODE", "development");
    let server = crate::harness::try_serve_cmd(cmd).unwrap_or_else(|f| panic!("{f}"));
    let check = |args: &[&str]| {
        let mut cmd = crate::harness::bulwark(cwd.path());
        cmd.arg("healthcheck")
            .args(args)
            .env("BULWARK_LISTEN", &listen);
        crate::harness::run_with(cmd, None, crate::harness::COMMAND_TIMEOUT)
    };
    let out = check(&[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("http://127.0.0.1:{port}/healthz")),
        "{out}"
    );
    let out = check(&["--ready"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("/readyz"), "{out}");
    let out = check(&["--url", &format!("http://127.0.0.1:{port}/no-such-page")]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("answered 404"), "{out}");
    let stopped = server.terminate();
    assert_eq!(stopped.code, Some(0), "{stopped}");
    let out = check(&[]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("cannot connect"), "{out}");
}

/// A seed made ahead of time in the file's format (postgres.md, the deploy recipes) is kept by
/// the first start, which records the deployment with it; raw random bytes are refused.
#[test]
fn a_seed_made_ahead_of_the_first_start_is_kept() {
    use std::os::unix::fs::PermissionsExt as _;
    let cwd = tempfile::tempdir().unwrap();
    let made = |name: &str, content: &[u8]| {
        let data = cwd.path().join(name);
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(data.join("seed"), content).unwrap();
        std::fs::set_permissions(data.join("seed"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        data
    };
    let hex: String = (0..32u8)
        .map(|b| format!("{:02x}", b.wrapping_mul(37) ^ 0x5a))
        .collect();
    let content = format!("bulwark-seed-v1:{hex}\n");
    let data = made("premade", content.as_bytes());
    let server = serve_on(cwd.path(), &data, &[]);
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        !out.logged("created a new workspace seed; back it up"),
        "the pre-made seed is kept:\n{out}"
    );
    assert_eq!(std::fs::read_to_string(data.join("seed")).unwrap(), content);
    let again = serve_on(cwd.path(), &data, &[]);
    let out = again.terminate();
    assert_eq!(
        out.code,
        Some(0),
        "the deployment was recorded with it:\n{out}"
    );

    let raw = made("raw", &[7u8; 32]);
    let out = harness::serve_expecting_exit(cwd.path(), &raw, &[]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr.contains("corrupt"), "{out}");
}
