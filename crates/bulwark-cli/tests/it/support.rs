//! `bulwark support bundle|verify` on the real binary: canary secrets and personal data planted
//! everywhere they can be — the owner's password, a wrong password typed at sign-in, a TOTP
//! secret, a vault value, an API key, a webhook signing secret, the SMTP password, the seed,
//! emails, client addresses, user agents, request bodies in the server's log — appear in no file
//! of the bundle in any encoding; the bundle verifies, and a changed, added or removed file, or
//! a changed manifest, does not; `--review` writes nothing unless confirmed.

use std::path::Path;

use base64::Engine as _;
use bulwark_server::support::tar;
use serde_json::Value;

use crate::audit::{DATA, deployment};
use crate::harness::{Finished, path_str, request, run, run_with};

const PASSWORD: &str = "a perfectly long passphrase";
const SMTP_CANARY: &str = "smtp-canary-Pw-93817";
const WRONG_PASSWORD: &str = "wrong-password-canary-55120";
const VAULT_CANARY: &str = "vault-value-canary-77412";
const AGENT_CANARY: &str = "CanaryAgent/4.2 (bundle-test)";
const CLIENT_IP: &str = "203.0.113.77";
const OWNER_EMAIL: &str = "o@acme.test";

fn encodings(secret: &str) -> Vec<(String, String)> {
    let b = secret.as_bytes();
    vec![
        ("plain".into(), secret.to_owned()),
        (
            "base64".into(),
            base64::engine::general_purpose::STANDARD.encode(b),
        ),
        (
            "base64url".into(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
        ),
        ("hex".into(), bulwark_crypto::to_hex(b)),
        (
            "url-encoded".into(),
            secret
                .bytes()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        (c as char).to_string()
                    } else {
                        format!("%{c:02X}")
                    }
                })
                .collect(),
        ),
    ]
}

fn bundle(cwd: &Path, config: &Path, out: &str, extra: &[&str], stdin: Option<&str>) -> Finished {
    let mut cmd = crate::harness::bulwark(cwd);
    cmd.args(["support", "bundle", "--out", out, "--data-dir", DATA])
        .args(["--config", path_str(config)])
        .args(extra);
    run_with(cmd, stdin, crate::harness::COMMAND_TIMEOUT)
}

#[test]
fn no_planted_secret_or_personal_data_reaches_the_bundle_in_any_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, orgs) = deployment(cwd);
    let org = &orgs[0];
    // The SMTP password and a trusted proxy (so the client's address is recorded and logged).
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[mail.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\nusername = \"relay\"\n\
         password = \"{SMTP_CANARY}\"\nallow_plaintext_auth = true\n\
         [http]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    ));
    std::fs::write(&config, text).unwrap();

    let server = crate::harness::serve_on(cwd, &cwd.join(DATA), &["--config", path_str(&config)]);
    let addr = server.addr.clone();
    let client = [("user-agent", AGENT_CANARY), ("x-forwarded-for", CLIENT_IP)];
    let wrong = serde_json::json!({"email": OWNER_EMAIL, "password": WRONG_PASSWORD});
    let (res, _) = request("POST", &addr, "/v1/auth/login", &client, Some(&wrong));
    assert_eq!(res.status, 401, "{res:?}");
    let login = serde_json::json!({"email": OWNER_EMAIL, "password": PASSWORD});
    let (res, cookies) = request("POST", &addr, "/v1/auth/login", &client, Some(&login));
    assert_eq!(res.status, 200, "{res:?}");
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Host-bulwark_session="))
        .unwrap()
        .clone();
    let csrf = res.json()["csrf_token"].as_str().unwrap().to_owned();
    let session = cookie.split_once('=').unwrap().1.to_owned();
    let headers = [
        ("cookie", cookie.as_str()),
        ("x-csrf-token", csrf.as_str()),
        ("user-agent", AGENT_CANARY),
        ("x-forwarded-for", CLIENT_IP),
    ];
    let mut planted: Vec<(&str, String)> = vec![
        ("the owner's password", PASSWORD.into()),
        ("a wrong password", WRONG_PASSWORD.into()),
        ("the SMTP password", SMTP_CANARY.into()),
        ("a vault value", VAULT_CANARY.into()),
        ("the session token", session),
        ("the CSRF token", csrf.clone()),
        ("the owner's email", OWNER_EMAIL.into()),
        ("a client address", CLIENT_IP.into()),
        ("a user agent", AGENT_CANARY.into()),
    ];
    let credential = serde_json::json!({"name": "tracker", "kind": "generic",
        "value": VAULT_CANARY, "destinations": ["https://api.example.com/"]});
    let (res, _) = request(
        "POST",
        &addr,
        &format!("/v1/orgs/{org}/credentials"),
        &headers,
        Some(&credential),
    );
    assert_eq!(res.status, 201, "{res:?}");
    let key = serde_json::json!({"name": "ci", "scopes": ["webhooks:send"]});
    let (res, _) = request(
        "POST",
        &addr,
        &format!("/v1/orgs/{org}/keys"),
        &headers,
        Some(&key),
    );
    assert_eq!(res.status, 201, "{res:?}");
    planted.push(("an API key", res.json()["key"].as_str().unwrap().to_owned()));
    let password = serde_json::json!({ "password": PASSWORD });
    let (res, _) = request(
        "POST",
        &addr,
        "/v1/auth/mfa/totp",
        &headers,
        Some(&password),
    );
    assert!(res.status == 200 || res.status == 201, "{res:?}");
    planted.push((
        "a TOTP secret",
        res.json()["secret"].as_str().unwrap().to_owned(),
    ));
    let endpoint = serde_json::json!({ "url": "https://hooks.example.com/bulwark" });
    let (res, _) = request(
        "POST",
        &addr,
        &format!("/v1/orgs/{org}/webhooks/endpoints"),
        &headers,
        Some(&endpoint),
    );
    assert_eq!(res.status, 201, "{res:?}");
    planted.push((
        "a webhook secret",
        res.json()["secret"].as_str().unwrap().to_owned(),
    ));
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    // The server's log, as an operator's log collector would keep it.
    std::fs::write(cwd.join("server.log"), out.stdout.as_bytes()).unwrap();
    // An application's log beside it, as an operator might hand over: every kind of personal
    // datum and secret, in the shapes logs carry them.
    let api_key = planted
        .iter()
        .find(|(w, _)| *w == "an API key")
        .unwrap()
        .1
        .clone();
    let app_log = [
        serde_json::json!({"timestamp": "2000-01-01T00:00:00Z", "message": "too old to include"})
            .to_string(),
        serde_json::json!({"message": "request", "client_ip": CLIENT_IP,
            "user_agent": AGENT_CANARY, "email": OWNER_EMAIL,
            "body": {"password": WRONG_PASSWORD, "value": VAULT_CANARY},
            "authorization": format!("Bearer {api_key}")})
        .to_string(),
        format!("plain text: {OWNER_EMAIL} from {CLIENT_IP}:55412 sent key {api_key}"),
        format!(
            "form: password={}&next=%2F",
            WRONG_PASSWORD.replace('-', "%2D")
        ),
    ]
    .join("\n");
    std::fs::write(cwd.join("app.log"), app_log).unwrap();
    let seed = std::fs::read_to_string(cwd.join(DATA).join("seed")).unwrap();
    let seed_hex = seed.trim().rsplit(':').next().unwrap().to_owned();
    planted.push(("the seed", seed_hex));

    let out = bundle(
        cwd,
        &config,
        "bundle.tar",
        &[
            "--log-file",
            "server.log",
            "--log-file",
            "app.log",
            "--since",
            "1h",
        ],
        None,
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("signed by deployment"), "{out}");
    let bytes = std::fs::read(cwd.join("bundle.tar")).unwrap();
    assert_eq!(crate::harness::mode(&cwd.join("bundle.tar")), 0o600);
    let entries = tar::read(&bytes).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    for expected in [
        "README.txt",
        "version.json",
        "config.json",
        "store.json",
        "license.json",
        "doctor.json",
        "logs/0-server.log",
        "logs/1-app.log",
        "manifest.json",
        "manifest.sig",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let log = entries
        .iter()
        .find(|e| e.name == "logs/0-server.log")
        .unwrap();
    assert!(log.data.len() > 1000, "the log came along");
    let store: Value = serde_json::from_slice(
        &entries
            .iter()
            .find(|e| e.name == "store.json")
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(store["seed_check"], "matches", "{store}");
    let doctor: Value = serde_json::from_slice(
        &entries
            .iter()
            .find(|e| e.name == "doctor.json")
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(doctor["bulwark_doctor"], 1, "{doctor}");
    assert!(doctor["checks"].as_array().unwrap().len() > 20, "{doctor}");
    let license: Value = serde_json::from_slice(
        &entries
            .iter()
            .find(|e| e.name == "license.json")
            .unwrap()
            .data,
    )
    .unwrap();
    let standing = &license["standing"];
    assert!(
        standing["state"].is_string() && standing["usage"]["orgs"].as_u64() >= Some(1),
        "the license's standing as `license status` judges it: {license}"
    );
    assert_eq!(store["seed_file"], "readable", "{store}");
    // The vault value and the webhook endpoint's signing secret.
    assert_eq!(store["row_counts"]["credentials"], 2, "{store}");
    let whole = String::from_utf8_lossy(&bytes).into_owned();
    for (what, secret) in &planted {
        for (how, form) in encodings(secret) {
            assert!(
                !whole.contains(&form) && !whole.to_lowercase().contains(&form.to_lowercase()),
                "{what} ({how}) is in the bundle"
            );
        }
    }
    // The pseudonyms stand in: the owner's email is one `eml_…` everywhere.
    assert!(
        whole.contains("eml_"),
        "emails are pseudonymised, not dropped"
    );

    let out = run(cwd, &["support", "verify", "bundle.tar"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("signed by deployment"), "{out}");

    // A changed file, an added one, a removed one, and a changed manifest: each refused.
    let rewrite = |name: &str, edit: &dyn Fn(&mut Vec<tar::Entry>)| {
        let mut e = entries.clone();
        edit(&mut e);
        std::fs::write(cwd.join(name), tar::write(&e, 0).unwrap()).unwrap();
        let out = run(cwd, &["support", "verify", name]);
        assert_eq!(out.code, Some(4), "{name}: {out}");
        out
    };
    let out = rewrite("changed.tar", &|e| {
        let log = e.iter_mut().find(|e| e.name == "config.json").unwrap();
        log.data.extend_from_slice(b" ");
    });
    assert!(out.stderr.contains("`config.json` differs"), "{out}");
    rewrite("added.tar", &|e| {
        e.insert(
            0,
            tar::Entry {
                name: "extra.txt".into(),
                data: b"x".to_vec(),
            },
        );
    });
    rewrite("removed.tar", &|e| e.retain(|e| e.name != "store.json"));
    let out = rewrite("manifest.tar", &|e| {
        let m = e.iter_mut().find(|e| e.name == "manifest.json").unwrap();
        let text = String::from_utf8(m.data.clone())
            .unwrap()
            .replace("\"since_secs\": 3600", "\"since_secs\": 60");
        m.data = text.into_bytes();
    });
    assert!(out.stderr.contains("signature does not verify"), "{out}");

    // --review shows every file and writes nothing unless confirmed.
    let out = bundle(cwd, &config, "reviewed.tar", &["--review"], Some("n\n"));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("===== config.json"), "{out}");
    assert!(!cwd.join("reviewed.tar").exists());
    let out = bundle(cwd, &config, "reviewed.tar", &["--review"], Some("y\n"));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(cwd.join("reviewed.tar").exists());
    for (what, secret) in &planted {
        assert!(
            !out.stdout.contains(secret.as_str()),
            "{what} shown at review"
        );
    }
    // An existing file is never replaced.
    let out = bundle(cwd, &config, "reviewed.tar", &[], None);
    assert_eq!(out.code, Some(2), "{out}");
}

/// The bundle the standard `tar` tool reads: every file, as listed by the manifest.
#[test]
fn the_bundle_is_a_tar_file_the_system_tar_reads() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    crate::harness::initialised_data_dir(cwd, DATA);
    let config = cwd.join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let out = bundle(cwd, &config, "b.tar", &[], None);
    assert_eq!(out.code, Some(0), "{out}");
    let listed = std::process::Command::new("tar")
        .args(["-tf", "b.tar"])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.lines().any(|l| l == "manifest.json"), "{listed}");
    assert!(listed.lines().any(|l| l == "store.json"), "{listed}");
    let manifest = std::process::Command::new("tar")
        .args(["-xOf", "b.tar", "manifest.json"])
        .current_dir(cwd)
        .output()
        .unwrap();
    let manifest: Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(manifest["bulwark_support_bundle"], 1);
}

/// With the metrics listener on, the bundle holds the running server's scrape (`metrics.txt`),
/// with no secret or personal datum the requests carried; with it off, the file says why.
#[test]
fn the_bundle_holds_the_running_servers_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, _) = deployment(cwd);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let off = bundle(cwd, &config, "off.tar", &[], None);
    assert_eq!(off.code, Some(0), "{off}");
    let entries = tar::read(&std::fs::read(cwd.join("off.tar")).unwrap()).unwrap();
    let metrics = entries.iter().find(|e| e.name == "metrics.txt").unwrap();
    assert!(
        String::from_utf8_lossy(&metrics.data).starts_with("# not collected: metrics are off"),
        "{}",
        String::from_utf8_lossy(&metrics.data)
    );

    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[metrics]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let server = crate::harness::serve_on(cwd, &cwd.join(DATA), &["--config", path_str(&config)]);
    let wrong = serde_json::json!({"email": OWNER_EMAIL, "password": WRONG_PASSWORD});
    let (res, _) = request("POST", &server.addr, "/v1/auth/login", &[], Some(&wrong));
    assert_eq!(res.status, 401, "{res:?}");
    let (res, _) = request(
        "GET",
        &server.addr,
        &format!("/v1/x/{OWNER_EMAIL}/{WRONG_PASSWORD}"),
        &[],
        None,
    );
    assert_eq!(res.status, 404, "{res:?}");
    let out = bundle(cwd, &config, "on.tar", &[], None);
    assert_eq!(out.code, Some(0), "{out}");
    let stopped = server.terminate();
    assert_eq!(stopped.code, Some(0), "{stopped}");
    let verified = run(cwd, &["support", "verify", "on.tar"]);
    assert_eq!(verified.code, Some(0), "{verified}");
    let entries = tar::read(&std::fs::read(cwd.join("on.tar")).unwrap()).unwrap();
    let metrics = entries.iter().find(|e| e.name == "metrics.txt").unwrap();
    let scraped = String::from_utf8_lossy(&metrics.data);
    assert!(
        scraped.contains("bulwark_signins_total{method=\"password\",outcome=\"failure\"} 1"),
        "{scraped}"
    );
    for (what, secret) in [("the email", OWNER_EMAIL), ("the password", WRONG_PASSWORD)] {
        for (how, encoded) in encodings(secret) {
            assert!(!scraped.contains(&encoded), "{what} ({how}) in metrics.txt");
        }
    }
}
