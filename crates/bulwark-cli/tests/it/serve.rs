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
