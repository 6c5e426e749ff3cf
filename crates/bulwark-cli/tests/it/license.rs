//! `bulwark license keygen|issue|inspect`: a key is made once (0600, never overwritten), claims
//! are signed into a license file, `inspect` verifies it with the public key and refuses (exit 4)
//! a tampered file, a file with a duplicate key, and a license signed by another key.

use crate::harness::{mode, path_str, run};

/// `bulwark license issue --key KEY --in CLAIMS --out OUT`.
pub(crate) fn issue(
    cwd: &std::path::Path,
    key: &std::path::Path,
    claims: &std::path::Path,
    out: &std::path::Path,
) -> crate::harness::Finished {
    run(
        cwd,
        &[
            "license",
            "issue",
            "--key",
            path_str(key),
            "--in",
            path_str(claims),
            "--out",
            path_str(out),
        ],
    )
}

/// The public key `keygen` printed.
pub(crate) fn public_key(out: &crate::harness::Finished) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn keygen_issue_and_inspect_a_license() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let key = cwd.join("vendor.key");
    let out = run(cwd, &["license", "keygen", "--out", path_str(&key)]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(mode(&key), 0o600);
    let public = public_key(&out);
    let again = run(cwd, &["license", "keygen", "--out", path_str(&key)]);
    assert_eq!(again.code, Some(2), "never overwrites a key:\n{again}");
    let seed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let seed = seed["seed"].as_str().unwrap().to_owned();
    assert!(
        !out.all_output().contains(&seed),
        "the private key is not printed"
    );

    let claims = cwd.join("claims.json");
    std::fs::write(
        &claims,
        r#"{"format": 1, "license_id": "lic_acme", "licensee": "Acme Corp", "serial": 1,
            "issued_at": "2026-12-01T00:00:00Z", "not_before": "2026-12-01T00:00:00Z",
            "expires_at": "2099-12-01T00:00:00Z", "grace_days": 14,
            "limits": {"orgs": 5, "seats": 200}, "features": ["sso"]}"#,
    )
    .unwrap();
    let license = cwd.join("license.json");
    let out = issue(cwd, &key, &claims, &license);
    assert_eq!(out.code, Some(0), "{out}");
    let inspect = |file: &std::path::Path, key: &str| {
        run(
            cwd,
            &["license", "inspect", path_str(file), "--public-key", key],
        )
    };
    let ok = inspect(&license, &public);
    assert_eq!(ok.code, Some(0), "{ok}");
    assert!(
        ok.stdout.contains("signature: valid") && ok.stdout.contains("today:     valid"),
        "{ok}"
    );

    let text = std::fs::read_to_string(&license).unwrap();
    let write = |name: &str, body: String| {
        let p = cwd.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let tampered = write(
        "tampered.json",
        text.replace("\"seats\": 200", "\"seats\": 20000"),
    );
    let out = inspect(&tampered, &public);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("does not match"), "{out}");
    let duplicate = write(
        "duplicate.json",
        text.replacen(
            "\"licensee\":",
            "\"licensee\": \"Evil Corp\",\n    \"licensee\":",
            1,
        ),
    );
    let out = inspect(&duplicate, &public);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("appears twice"), "{out}");
    // Signed by another key: refused with that key's id unknown.
    let other = cwd.join("other.key");
    let out = run(cwd, &["license", "keygen", "--out", path_str(&other)]);
    assert_eq!(out.code, Some(0));
    let foreign = cwd.join("foreign.json");
    let out = issue(cwd, &other, &claims, &foreign);
    assert_eq!(out.code, Some(0), "{out}");
    let out = inspect(&foreign, &public);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("does not trust"), "{out}");
    // Claims that break a rule are not signed.
    let bad = write(
        "bad-claims.json",
        std::fs::read_to_string(&claims)
            .unwrap()
            .replace("\"grace_days\": 14", "\"grace_days\": 400"),
    );
    let out = issue(cwd, &key, &bad, &cwd.join("x.json"));
    assert_eq!(out.code, Some(2), "{out}");
}

/// `bulwark license status|activate` on a deployment's store, with a self-issued vendor key
/// trusted through `license.extra_public_keys`: activation binds the license (a tampered file
/// is refused, exit 4); `serve` then starts with it, and refuses to start (exit 3) once the
/// key is no longer trusted, as `status` reports (exit 4).
#[test]
fn activate_on_the_store_and_fail_closed_at_start() {
    use crate::harness::{initialised_data_dir, serve_expecting_exit, serve_on};
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = initialised_data_dir(cwd, "data");
    let key = cwd.join("vendor.key");
    let out = run(cwd, &["license", "keygen", "--out", path_str(&key)]);
    assert_eq!(out.code, Some(0), "{out}");
    let public = public_key(&out);
    let config = cwd.join("bulwark.toml");
    std::fs::write(
        &config,
        format!("[license]\nextra_public_keys = [\"{public}\"]\n"),
    )
    .unwrap();
    let store = ["--data-dir", path_str(&data), "--config", path_str(&config)];
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&store);
        run(cwd, &all)
    };

    // The first org, then a second by the host operator: refused in community mode (one org).
    let mut cmd = crate::harness::bulwark(cwd);
    cmd.args([
        "setup",
        "--org",
        "Acme",
        "--email",
        "o@acme.test",
        "--password-stdin",
    ]);
    cmd.args(store);
    let out = crate::harness::run_with(
        cmd,
        Some("a long enough password\n"),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{out}");
    let globex = [
        "orgs",
        "create",
        "--name",
        "Globex",
        "--owner-email",
        "o@acme.test",
    ];
    let out = with(&globex);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr.contains("license_limit_orgs"), "{out}");

    let out = with(&["license", "status", "--format", "json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["state"], "community");
    let deployment = status["deployment_id"].as_str().unwrap().to_owned();

    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let claims = cwd.join("claims.json");
    std::fs::write(
        &claims,
        serde_json::json!({
            "format": 1, "license_id": "lic_cli", "licensee": "Acme Corp", "serial": 1,
            "deployment": deployment,
            "issued_at": fmt(now - time::Duration::hours(1)),
            "not_before": fmt(now - time::Duration::hours(1)),
            "expires_at": fmt(now + time::Duration::days(365)), "grace_days": 14,
            "limits": {"orgs": 3, "seats": 50}, "features": ["tickets"]
        })
        .to_string(),
    )
    .unwrap();
    let license = cwd.join("license.json");
    let out = issue(cwd, &key, &claims, &license);
    assert_eq!(out.code, Some(0), "{out}");
    let text = std::fs::read_to_string(&license).unwrap();
    let tampered = cwd.join("tampered.json");
    std::fs::write(&tampered, text.replace("\"seats\": 50", "\"seats\": 5000")).unwrap();
    let out = with(&["license", "activate", path_str(&tampered)]);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("license_bad_signature"), "{out}");

    let out = with(&["license", "activate", path_str(&license)]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("activated lic_cli serial 1"), "{out}");
    let out = with(&["license", "status"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("state:         valid"), "{out}");
    assert!(out.stdout.contains("orgs:          1 of 3"), "{out}");
    let out = with(&globex);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("(globex)"), "{out}");
    let out = with(&["license", "clock-reset"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("latest time seen"), "{out}");

    let server = serve_on(cwd, &data, &["--config", path_str(&config)]);
    let seen = server.log_line("license in force");
    let out = server.terminate();
    assert_eq!(seen.unwrap()["license_id"], "lic_cli", "{out}");
    // Without the key that signed the license in force: refused, naming the way out.
    let out = serve_expecting_exit(cwd, &data, &[]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr.contains("bulwark license activate"), "{out}");
    let out = run(cwd, &["license", "status", "--data-dir", path_str(&data)]);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("will refuse to start"), "{out}");
}

/// `license inspect` without `--public-key` checks the keys `serve` trusts: the compiled-in
/// vendor keys and `license.extra_public_keys` of the configuration (`--config`,
/// `BULWARK_CONFIG` or the environment). A tampered license exits 4 (it exited 0 unchecked); a
/// well-formed one signed by an untrusted key exits 4 naming that key's id.
#[test]
fn inspect_without_public_key_checks_the_trusted_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let key = cwd.join("vendor.key");
    let out = run(cwd, &["license", "keygen", "--out", path_str(&key)]);
    assert_eq!(out.code, Some(0), "{out}");
    let public = public_key(&out);
    let key_id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_owned();
    let claims = cwd.join("claims.json");
    std::fs::write(
        &claims,
        r#"{"format": 1, "license_id": "lic_acme", "licensee": "Acme Corp", "serial": 1,
            "issued_at": "2026-12-01T00:00:00Z", "not_before": "2026-12-01T00:00:00Z",
            "expires_at": "2099-12-01T00:00:00Z", "grace_days": 14,
            "limits": {"orgs": 5, "seats": 200}, "features": ["sso"]}"#,
    )
    .unwrap();
    let license = cwd.join("license.json");
    let out = issue(cwd, &key, &claims, &license);
    assert_eq!(out.code, Some(0), "{out}");
    let text = std::fs::read_to_string(&license).unwrap();
    let tampered = cwd.join("tampered.json");
    std::fs::write(
        &tampered,
        text.replace("\"seats\": 200", "\"seats\": 20000"),
    )
    .unwrap();
    // Tampered and relabelled as signed by the compiled-in vendor key.
    let as_vendor = cwd.join("as-vendor.json");
    std::fs::write(
        &as_vendor,
        text.replace("\"seats\": 200", "\"seats\": 20000")
            .replace(&key_id, "lk_f09a5bab9b5b1d3f"),
    )
    .unwrap();
    let inspect = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = crate::harness::bulwark(cwd);
        cmd.args(["license", "inspect"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        crate::harness::run_with(cmd, None, crate::harness::COMMAND_TIMEOUT)
    };

    // No configuration: only the vendor's keys are trusted.
    let out = inspect(&[path_str(&as_vendor)], &[]);
    assert_eq!(out.code, Some(4), "a tampered vendor license:\n{out}");
    assert!(out.stderr.contains("does not match"), "{out}");
    let out = inspect(&[path_str(&license)], &[]);
    assert_eq!(out.code, Some(4), "{out}");
    assert!(
        out.stderr.contains(&format!("signed by key `{key_id}`"))
            && out.stderr.contains("does not trust"),
        "names the untrusted key:\n{out}"
    );

    // Trusted through the configuration: by flag, by BULWARK_CONFIG, by environment.
    let config = cwd.join("bulwark.toml");
    std::fs::write(
        &config,
        format!("[license]\nextra_public_keys = [\"{public}\"]\n"),
    )
    .unwrap();
    let extra = format!("[\"{public}\"]");
    for (args, env) in [
        (vec!["--config", path_str(&config)], vec![]),
        (vec![], vec![("BULWARK_CONFIG", path_str(&config))]),
        (
            vec![],
            vec![("BULWARK_LICENSE__EXTRA_PUBLIC_KEYS", extra.as_str())],
        ),
    ] {
        let mut ok_args = vec![path_str(&license)];
        ok_args.extend_from_slice(&args);
        let out = inspect(&ok_args, &env);
        assert_eq!(out.code, Some(0), "{out}");
        assert!(out.stdout.contains("signature: valid"), "{out}");
        let mut bad_args = vec![path_str(&tampered)];
        bad_args.extend_from_slice(&args);
        let out = inspect(&bad_args, &env);
        assert_eq!(out.code, Some(4), "a tampered license:\n{out}");
        assert!(out.stderr.contains("does not match"), "{out}");
    }
    // A configuration that does not load is a configuration error.
    let broken = cwd.join("broken.toml");
    std::fs::write(&broken, "[license]\nextra_public_keys = [\"not a key\"]\n").unwrap();
    let out = inspect(&[path_str(&license), "--config", path_str(&broken)], &[]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("license.extra_public_keys"), "{out}");
}
