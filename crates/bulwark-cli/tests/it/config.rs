//! Configuration errors exit 2 and say what is wrong and where; `config check` redacts secrets.

use std::path::Path;

use crate::harness::{Finished, QUICK_EXIT, bulwark, path_str, run, run_with};

/// `bulwark serve ARGS` with `env`, which must exit 2 at once naming each of `needles`, without
/// creating the default data dir.
fn serve_config_error(cwd: &Path, args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let mut cmd = bulwark(cwd);
    cmd.arg("serve").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_with(cmd, None, QUICK_EXIT);
    assert_eq!(out.code, Some(2), "configuration error (exit 2):\n{out}");
    assert!(!out.logged("listening"), "{out}");
    for n in needles {
        assert!(out.stderr.contains(n), "stderr names `{n}`:\n{out}");
    }
    assert!(
        !cwd.join("bulwark-data").exists(),
        "nothing is created on a configuration error"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_unknown_key_in_the_config_file_exits_2_naming_the_key_file_and_line() {
    let cwd = tempfile::tempdir().unwrap();
    let file = write(
        cwd.path(),
        "bulwark.toml",
        "listen = \"127.0.0.1:0\"\n\n[http]\nbody_limit = 5\n",
    );
    serve_config_error(
        cwd.path(),
        &["--config", path_str(&file)],
        &[],
        &["body_limit", path_str(&file), "line 4"],
    );
    // The same file named by BULWARK_CONFIG.
    serve_config_error(
        cwd.path(),
        &[],
        &[("BULWARK_CONFIG", path_str(&file))],
        &["body_limit", path_str(&file), "line 4"],
    );
}

#[test]
fn a_wrong_type_in_the_config_file_exits_2_naming_the_key_and_line() {
    let cwd = tempfile::tempdir().unwrap();
    let file = write(
        cwd.path(),
        "bulwark.toml",
        "listen = \"127.0.0.1:0\"\nbehind_tls_proxy = \"yes\"\n",
    );
    serve_config_error(
        cwd.path(),
        &["--config", path_str(&file)],
        &[],
        &["behind_tls_proxy", path_str(&file), "line 2"],
    );
    let file = write(
        cwd.path(),
        "nested.toml",
        "[http]\nrequest_timeout_secs = 1\nbody_limit_bytes = \"lots\"\n",
    );
    serve_config_error(
        cwd.path(),
        &["--config", path_str(&file)],
        &[],
        &["body_limit_bytes", path_str(&file), "line 3"],
    );
}

#[test]
fn an_unreadable_config_file_exits_2_naming_it() {
    let cwd = tempfile::tempdir().unwrap();
    let missing = cwd.path().join("no-such-dir/bulwark.toml");
    serve_config_error(
        cwd.path(),
        &["--config", path_str(&missing)],
        &[],
        &[path_str(&missing), "cannot read"],
    );
    // A directory is not a readable configuration file either.
    serve_config_error(
        cwd.path(),
        &["--config", path_str(cwd.path())],
        &[],
        &[path_str(cwd.path()), "cannot read"],
    );
}

#[test]
fn an_unknown_bulwark_env_var_exits_2_naming_it() {
    let cwd = tempfile::tempdir().unwrap();
    serve_config_error(
        cwd.path(),
        &[],
        &[("BULWARK_LISTN", "x")],
        &["BULWARK_LISTN"],
    );
    // A known key with a value of the wrong type names its variable too.
    serve_config_error(
        cwd.path(),
        &[],
        &[("BULWARK_HTTP__BODY_LIMIT_BYTES", "lots")],
        &["BULWARK_HTTP__BODY_LIMIT_BYTES"],
    );
}

/// A non-loopback address without TLS is no longer a configuration error but the production
/// gate `tls.posture` (exit 3, naming the gate and the settings that fix it), from the flag and
/// from the environment alike (docs/doctor.md).
#[test]
fn a_non_loopback_listen_address_without_tls_is_refused_by_the_tls_gate() {
    let cwd = tempfile::tempdir().unwrap();
    for (args, env) in [
        (vec!["serve", "--listen", "0.0.0.0:0"], vec![]),
        (vec!["serve"], vec![("BULWARK_LISTEN", "0.0.0.0:0")]),
    ] {
        let mut cmd = bulwark(cwd.path());
        cmd.args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run_with(cmd, None, QUICK_EXIT);
        assert_eq!(out.code, Some(3), "{out}");
        for needle in ["tls.posture", "[tls]", "behind_tls_proxy"] {
            assert!(out.stderr.contains(needle), "names {needle}:\n{out}");
        }
        assert!(!out.logged("listening"), "{out}");
    }
}

/// `config check` output, which must succeed.
fn config_check(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut cmd = bulwark(cwd);
    cmd.args(["config", "check"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_with(cmd, None, QUICK_EXIT);
    assert_eq!(out.code, Some(0), "{out}");
    out
}

#[test]
fn config_check_prints_the_effective_configuration_with_the_database_password_redacted() {
    let cwd = tempfile::tempdir().unwrap();
    let password = "Sup3r-S3cret-pw";
    let url = format!("postgres://app:{password}@db.internal:5432/bulwark");

    let out = config_check(cwd.path(), &["--database-url", &url], &[]);
    assert!(
        !out.all_output().contains(password),
        "password shown:\n{out}"
    );
    assert!(out.stdout.contains("[REDACTED]"), "{out}");
    assert!(
        out.stdout
            .contains("postgres://app:[REDACTED]@db.internal:5432/bulwark"),
        "{out}"
    );
    assert!(out.stdout.contains("listen = \"127.0.0.1:8420\""), "{out}");
    assert!(
        toml_body(&out.stdout).is_ok(),
        "the output is TOML:\n{}",
        out.stdout
    );

    // From the environment and from a `_FILE` secret, with a password in the query string too.
    let out = config_check(cwd.path(), &[], &[("BULWARK_DATABASE_URL", &url)]);
    assert!(!out.all_output().contains(password), "{out}");
    assert!(out.stdout.contains("[REDACTED]"), "{out}");
    let secret = cwd.path().join("db-url");
    std::fs::write(&secret, format!("{url}?password={password}-q\n")).unwrap();
    let out = config_check(
        cwd.path(),
        &[],
        &[("BULWARK_DATABASE_URL_FILE", path_str(&secret))],
    );
    assert!(!out.all_output().contains(password), "{out}");
    assert!(out.stdout.contains("[REDACTED]"), "{out}");
    assert!(
        !cwd.path().join("bulwark-data").exists(),
        "config check creates nothing"
    );
}

/// The output of `config check` minus its comment header, parsed.
fn toml_body(text: &str) -> Result<serde_json::Value, String> {
    // No TOML parser among the dev-dependencies: check the shape line by line instead.
    let mut table = serde_json::Map::new();
    let mut section = String::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line.trim_matches(['[', ']']).to_owned();
            continue;
        }
        let (k, first) = line
            .split_once(" = ")
            .ok_or_else(|| format!("not `key = value`: {line}"))?;
        // An array written over several lines (`key = [`, one item per line, `]`).
        let mut v = first.to_owned();
        if v == "[" {
            for item in lines.by_ref() {
                v.push_str(item);
                if item == "]" {
                    break;
                }
            }
            if !v.ends_with(']') {
                return Err(format!("unclosed array: {k}"));
            }
        }
        let key = if section.is_empty() {
            k.to_owned()
        } else {
            format!("{section}.{k}")
        };
        table.insert(key, serde_json::Value::String(v));
    }
    Ok(serde_json::Value::Object(table))
}

#[test]
fn config_layers_defaults_then_file_then_env_then_flags() {
    let cwd = tempfile::tempdir().unwrap();
    let file = write(
        cwd.path(),
        "bulwark.toml",
        "listen = \"127.0.0.1:1000\"\ndata_dir = \"/from/file\"\n\n[http]\nbody_limit_bytes = 10\nrequest_timeout_secs = 7\n",
    );
    let out = config_check(
        cwd.path(),
        &["--config", path_str(&file), "--listen", "127.0.0.1:3000"],
        &[
            ("BULWARK_LISTEN", "127.0.0.1:2000"),
            ("BULWARK_DATA_DIR", "/from/env"),
            ("BULWARK_HTTP__BODY_LIMIT_BYTES", "20"),
        ],
    );
    let t = toml_body(&out.stdout).unwrap();
    assert_eq!(t["listen"], "\"127.0.0.1:3000\"", "flag wins:\n{out}");
    assert_eq!(t["data_dir"], "\"/from/env\"", "env beats file:\n{out}");
    assert_eq!(t["http.body_limit_bytes"], "20", "env beats file:\n{out}");
    assert_eq!(
        t["http.request_timeout_secs"], "7",
        "file beats default:\n{out}"
    );
    assert_eq!(t["http.shutdown_grace_secs"], "30", "default:\n{out}");

    // Flags only where the file says nothing.
    let out = run(cwd.path(), &["config", "check", "--data-dir", "/from/flag"]);
    assert_eq!(out.code, Some(0), "{out}");
    let t = toml_body(&out.stdout).unwrap();
    assert_eq!(t["data_dir"], "\"/from/flag\"", "{out}");
    assert_eq!(t["listen"], "\"127.0.0.1:8420\"", "{out}");
}

/// `/healthz` of a server started with `cmd` answers 200 on the loopback address it logged.
fn serves_healthz(cmd: std::process::Command) {
    let server = crate::harness::try_serve_cmd(cmd).unwrap_or_else(|f| panic!("{f}"));
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let health = crate::harness::get(&server.addr, "/healthz");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(server.terminate().code, Some(0));
}

#[test]
fn a_host_name_listen_address_is_resolved_from_the_flag_the_env_and_the_file() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("d");
    let mut cmd = bulwark(cwd.path());
    cmd.args([
        "serve",
        "--listen",
        "localhost:0",
        "--data-dir",
        path_str(&data),
    ]);
    serves_healthz(cmd);
    let mut cmd = bulwark(cwd.path());
    cmd.args(["serve", "--data-dir", path_str(&data)])
        .env("BULWARK_LISTEN", "localhost:0");
    serves_healthz(cmd);
    let file = write(cwd.path(), "bulwark.toml", "listen = \"localhost:0\"\n");
    let mut cmd = bulwark(cwd.path());
    cmd.args([
        "serve",
        "--config",
        path_str(&file),
        "--data-dir",
        path_str(&data),
    ]);
    serves_healthz(cmd);
}

#[test]
fn an_unresolvable_listen_host_exits_2_naming_the_key() {
    let cwd = tempfile::tempdir().unwrap();
    serve_config_error(
        cwd.path(),
        &["--listen", "nohost.invalid:8420"],
        &[],
        &["`--listen`", "cannot resolve host name `nohost.invalid`"],
    );
    serve_config_error(
        cwd.path(),
        &[],
        &[("BULWARK_LISTEN", "nohost.invalid:8420")],
        &[
            "BULWARK_LISTEN",
            "cannot resolve host name `nohost.invalid`",
        ],
    );
    let file = write(
        cwd.path(),
        "bulwark.toml",
        "listen = \"nohost.invalid:8420\"\n",
    );
    serve_config_error(
        cwd.path(),
        &["--config", path_str(&file)],
        &[],
        &[
            "key `listen`",
            "line 1",
            "cannot resolve host name `nohost.invalid`",
        ],
    );
    serve_config_error(
        cwd.path(),
        &["--listen", "localhost"],
        &[],
        &["`--listen`", "is not `HOST:PORT`"],
    );
}
