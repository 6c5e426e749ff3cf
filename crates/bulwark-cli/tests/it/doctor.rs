//! `bulwark doctor` and the production gates of `serve` (docs/doctor.md): every gate refuses a
//! production start with exit 3 naming the gate and its fix, and the same deployment starts once
//! the setting is fixed; development, chosen explicitly, starts with the failure as a warning
//! and says so on `/readyz`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::audit::{DATA, deployment, sql};
use crate::harness::{
    Finished, bulwark, get, initialised_data_dir, path_str, run, run_with, try_serve,
};

/// Writes `name` in `cwd` with `text` and returns its path.
fn file(cwd: &Path, name: &str, text: &str) -> PathBuf {
    let path = cwd.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `bulwark doctor --format json` over `data` with `config`: the exit code and the report.
fn doctor(cwd: &Path, data: &str, config: Option<&Path>) -> (Option<i32>, Value) {
    let mut cmd = bulwark(cwd);
    cmd.args(["doctor", "--format", "json", "--data-dir", data]);
    if let Some(c) = config {
        cmd.args(["--config", path_str(c)]);
    }
    let out = run_with(cmd, None, crate::harness::COMMAND_TIMEOUT);
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor prints one JSON document ({e}):\n{out}"));
    (out.code, report)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check `{id}` in {report:#}"))
}

/// `serve` with `args` (and `--data-dir data`) must refuse: exit 3, never listening, stderr
/// naming the gate and each of `needles`.
fn refused(cwd: &Path, data: &Path, args: &[&str], gate: &str, needles: &[&str]) -> Finished {
    let mut all = vec!["--data-dir", path_str(data)];
    all.extend_from_slice(args);
    let out = match try_serve(cwd, &all) {
        Ok(server) => panic!(
            "serve started despite the failing gate `{gate}`:\n{}",
            server.terminate()
        ),
        Err(out) => out,
    };
    assert_eq!(out.code, Some(3), "refused with exit 3:\n{out}");
    assert!(!out.logged("listening"), "never listened:\n{out}");
    assert!(out.stderr.contains("production gates failed"), "{out}");
    assert!(out.stderr.contains(gate), "stderr names `{gate}`:\n{out}");
    for n in needles {
        assert!(out.stderr.contains(n), "stderr names `{n}`:\n{out}");
    }
    out
}

/// `serve` with `args` starts; returns `/readyz`'s answer.
fn starts(cwd: &Path, data: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--data-dir", path_str(data)];
    all.extend_from_slice(args);
    let server = try_serve(cwd, &all).unwrap_or_else(|out| panic!("serve did not start:\n{out}"));
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let ready = get(&format!("127.0.0.1:{port}"), "/readyz").json();
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    ready
}

/// A sound deployment: every check reported with its control, evidence and (for warnings) a
/// fix; exit 0; the text form lists the same ids. Warnings where the test deployment is not
/// production-grade (plain HTTP on loopback, no MFA on the owner, no backups).
#[test]
fn doctor_reports_every_check_and_passes_a_sound_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, orgs) = deployment(cwd);
    let (code, report) = doctor(cwd, DATA, Some(&config));
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["bulwark_doctor"], 1);
    assert_eq!(report["mode"], "production");
    assert_eq!(report["engine"], "sqlite");
    for id in [
        "server.mode",
        "tls.posture",
        "tls.certificate",
        "tls.proxy_hop",
        "postgres.tls",
        "sessions.cookies",
        "passwords.argon2",
        "http.cors",
        "files.data_dir",
        "files.seed",
        "crypto.self_test",
        "crypto.fips",
        "egress.allowlist",
        "mail.smtp",
        "signup.closed",
        "audit.publication",
        "keys.seed_check",
        "audit.verify",
        "audit.published",
        "vault.provider",
        "owners.mfa",
        "license.standing",
        "clock.sanity",
        "backup.age",
    ] {
        let c = check(&report, id);
        assert!(c["title"].as_str().is_some_and(|t| !t.is_empty()), "{c}");
        assert!(c["control"].as_str().is_some_and(|t| !t.is_empty()), "{c}");
        assert!(c["evidence"].is_object(), "{c}");
        let status = c["status"].as_str().unwrap();
        assert!(matches!(status, "pass" | "warn"), "{c}");
        assert_eq!(status == "warn", c["remediation"].is_string(), "{c}");
    }
    assert_eq!(check(&report, "tls.posture")["status"], "warn");
    assert_eq!(check(&report, "owners.mfa")["status"], "warn");
    assert_eq!(
        check(&report, "owners.mfa")["evidence"]["owners_without_mfa"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(check(&report, "passwords.argon2")["status"], "pass");
    assert_eq!(check(&report, "files.data_dir")["evidence"]["mode"], "0700");
    assert_eq!(check(&report, "files.seed")["evidence"]["mode"], "0600");
    assert_eq!(
        check(&report, "license.standing")["evidence"]["state"],
        "valid"
    );
    // Every log (the system's and each org's) verified to a fresh checkpoint of its head.
    let verify = check(&report, "audit.verify");
    assert_eq!(verify["status"], "pass", "{verify}");
    let logs = verify["evidence"]["logs"].as_u64().unwrap();
    assert!(
        logs > orgs.len() as u64,
        "the system log and each org's: {verify}"
    );
    assert_eq!(
        verify["evidence"]["verified"].as_array().unwrap().len() as u64,
        logs
    );
    assert!(
        verify["evidence"]["events"].as_u64().unwrap() > 3,
        "{verify}"
    );
    assert_eq!(report["summary"]["fail"], 0);

    // The text form: one line per check, and the summary.
    let out = run(
        cwd,
        &["doctor", "--data-dir", DATA, "--config", path_str(&config)],
    );
    assert_eq!(out.code, Some(0), "{out}");
    for c in report["checks"].as_array().unwrap() {
        assert!(out.stdout.contains(c["id"].as_str().unwrap()), "{out}");
    }
    assert!(out.stdout.contains("0 failed"), "{out}");
}

/// Attack: an audit event edited in the database (its trigger dropped first). `doctor` names
/// the log that no longer verifies and exits 4, and a production `serve` refuses to start on
/// it; put back, the deployment verifies and starts again.
#[test]
fn an_edited_audit_log_fails_doctor_and_the_start_gate() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, _orgs) = deployment(cwd);
    let db = cwd.join(DATA).join("bulwark.db");
    let original = sql(
        &db,
        &[],
        "SELECT hex(body) FROM audit_events WHERE log = 'system' AND seq = 0",
    );
    sql(
        &db,
        &[
            "DROP TRIGGER audit_events_no_update",
            "UPDATE audit_events SET body = CAST(body || X'20' AS BLOB) WHERE log = 'system' AND seq = 0",
        ],
        "SELECT 'done'",
    );
    let (code, report) = doctor(cwd, DATA, Some(&config));
    assert_eq!(code, Some(4), "{report:#}");
    let verify = check(&report, "audit.verify");
    assert_eq!(verify["status"], "fail", "{verify}");
    assert_eq!(verify["evidence"]["failed"][0]["log"], "system", "{verify}");
    assert!(verify["remediation"].as_str().unwrap().contains("backup"));
    assert_eq!(report["summary"]["fail"], 1, "{report:#}");

    let data = cwd.join(DATA);
    refused(
        cwd,
        &data,
        &["--listen", "127.0.0.1:0", "--config", path_str(&config)],
        "audit.verify",
        &["restore a verified backup"],
    );

    let hex = original.first().unwrap();
    sql(
        &db,
        &[&format!(
            "UPDATE audit_events SET body = X'{hex}' WHERE log = 'system' AND seq = 0"
        )],
        "SELECT 'done'",
    );
    let (code, report) = doctor(cwd, DATA, Some(&config));
    assert_eq!(code, Some(0), "{report:#}");
    starts(
        cwd,
        &data,
        &["--listen", "127.0.0.1:0", "--config", path_str(&config)],
    );
}

/// Gate `tls.posture`: plain HTTP on a non-loopback address refuses a production start; behind
/// a TLS proxy without the proxy's address it refuses too; with `trusted_proxies` it starts.
/// Development, chosen explicitly, starts with plain HTTP and says so on `/readyz`.
#[test]
fn the_tls_gate_refuses_plain_http_off_loopback_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = initialised_data_dir(cwd, "data");
    let everywhere = ["--listen", "0.0.0.0:0"];
    refused(
        cwd,
        &data,
        &everywhere,
        "tls.posture",
        &["[tls]", "behind_tls_proxy"],
    );
    let proxy = file(cwd, "proxy.toml", "behind_tls_proxy = true\n");
    let mut args = everywhere.to_vec();
    args.extend_from_slice(&["--config", path_str(&proxy)]);
    refused(cwd, &data, &args, "tls.posture", &["http.trusted_proxies"]);

    let fixed = file(
        cwd,
        "fixed.toml",
        "behind_tls_proxy = true\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let mut args = everywhere.to_vec();
    args.extend_from_slice(&["--config", path_str(&fixed)]);
    let ready = starts(cwd, &data, &args);
    assert_eq!(ready["mode"], "production", "{ready}");

    let dev = file(cwd, "dev.toml", "[server]\nmode = \"development\"\n");
    let mut args = everywhere.to_vec();
    args.extend_from_slice(&["--config", path_str(&dev)]);
    let ready = starts(cwd, &data, &args);
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["mode"], "development", "{ready}");

    // The default on loopback is production too, with plain HTTP a warning.
    let ready = starts(cwd, &data, &["--listen", "127.0.0.1:0"]);
    assert_eq!(ready["mode"], "production", "{ready}");
}

/// Gate `http.cors`: a plain-HTTP origin (not loopback) allowed to make credentialed calls.
#[test]
fn the_cors_gate_refuses_a_plain_http_origin_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = initialised_data_dir(cwd, "data");
    let bad = file(
        cwd,
        "bad.toml",
        "[http]\ncors_allowed_origins = [\"http://app.example.com\"]\n",
    );
    refused(
        cwd,
        &data,
        &["--listen", "127.0.0.1:0", "--config", path_str(&bad)],
        "http.cors",
        &["http.cors_allowed_origins", "https://"],
    );
    let good = file(
        cwd,
        "good.toml",
        "[http]\ncors_allowed_origins = [\"https://app.example.com\"]\n",
    );
    starts(
        cwd,
        &data,
        &["--listen", "127.0.0.1:0", "--config", path_str(&good)],
    );
}

/// Gate `egress.allowlist`: private networks opened to the webhook URLs org admins choose.
#[test]
fn the_egress_gate_refuses_private_networks_for_webhooks_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = initialised_data_dir(cwd, "data");
    let bad = file(
        cwd,
        "bad.toml",
        "[egress]\nallow_networks = [\"10.0.0.0/8\"]\nallow_networks_for_webhooks = true\n",
    );
    refused(
        cwd,
        &data,
        &["--listen", "127.0.0.1:0", "--config", path_str(&bad)],
        "egress.allowlist",
        &["egress.allow_networks_for_webhooks = false"],
    );
    let good = file(
        cwd,
        "good.toml",
        "[egress]\nallow_networks = [\"10.0.0.0/8\"]\nallow_networks_for_webhooks = false\n",
    );
    starts(
        cwd,
        &data,
        &["--listen", "127.0.0.1:0", "--config", path_str(&good)],
    );
}

/// Gate `clock.sanity`: the system clock is behind a time this deployment has already seen (the
/// license clock, moved a day ahead in the database to stand for a clock set back).
#[test]
fn the_clock_gate_refuses_a_clock_behind_the_latest_time_seen_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = initialised_data_dir(cwd, "data");
    let db = data.join("bulwark.db");
    let seen = sql(
        &db,
        &[],
        "SELECT CAST(last_seen_ms AS TEXT) FROM license_clock",
    );
    let ahead = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let ahead_ms = ahead.unix_timestamp() * 1000;
    sql(
        &db,
        &[&format!(
            "UPDATE license_clock SET last_seen_ms = {ahead_ms}"
        )],
        "SELECT 'done'",
    );
    refused(
        cwd,
        &data,
        &["--listen", "127.0.0.1:0"],
        "clock.sanity",
        &["synchronise"],
    );
    let (code, report) = doctor(cwd, path_str(&data), None);
    assert_eq!(code, Some(4));
    let clock = check(&report, "clock.sanity");
    assert!(
        clock["evidence"]["behind_secs"].as_i64().unwrap() > 80_000,
        "{clock}"
    );
    sql(
        &db,
        &[&format!(
            "UPDATE license_clock SET last_seen_ms = {}",
            seen.first().unwrap()
        )],
        "SELECT 'done'",
    );
    starts(cwd, &data, &["--listen", "127.0.0.1:0"]);
}

/// Gate `tls.certificate`: an expired certificate refuses the start; a current one starts
/// (self-signed: a warning).
#[test]
fn the_certificate_gate_refuses_an_expired_certificate_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = initialised_data_dir(cwd, "data");
    let write_cert = |name: &str, not_after: time::OffsetDateTime| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = not_after - time::Duration::days(120);
        params.not_after = not_after;
        let cert = params.self_signed(&key).unwrap();
        let cert_path = file(cwd, &format!("{name}.pem"), &cert.pem());
        let key_path = file(cwd, &format!("{name}.key"), &key.serialize_pem());
        file(
            cwd,
            &format!("{name}.toml"),
            &format!(
                "[tls]\ncert_path = \"{}\"\nkey_path = \"{}\"\n",
                cert_path.display(),
                key_path.display()
            ),
        )
    };
    let now = time::OffsetDateTime::now_utc();
    let expired = write_cert("expired", now - time::Duration::days(1));
    refused(
        cwd,
        &data,
        &["--listen", "127.0.0.1:0", "--config", path_str(&expired)],
        "tls.certificate",
        &["tls.cert_path"],
    );
    let current = write_cert("current", now + time::Duration::days(90));
    let mut cmd = bulwark(cwd);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path_str(&data),
    ])
    .args(["--config", path_str(&current)]);
    let server = crate::harness::try_serve_cmd(cmd)
        .unwrap_or_else(|out| panic!("serve did not start:\n{out}"));
    let out = server.terminate();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("self-signed"),
        "the warning is logged:\n{out}"
    );
}

/// `evidence export` writes the page, its checks, provenance and SBOM with a signed manifest;
/// `evidence verify` accepts it as written and refuses each tampering (exit 4): a changed
/// claim, an added file, a removed file, an edited manifest, another deployment. The page holds
/// no secret of the deployment, and an export never writes into a directory that holds files.
#[test]
fn the_evidence_page_is_signed_and_every_tampering_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, _orgs) = deployment(cwd);
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--data-dir", DATA, "--config", path_str(&config)]);
        run(cwd, &all)
    };
    let out = with(&["evidence", "export", "--out", "page"]);
    assert_eq!(out.code, Some(0), "{out}");
    let page = cwd.join("page");
    let mut names: Vec<String> = std::fs::read_dir(&page)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "doctor.json",
            "index.html",
            "manifest.json",
            "manifest.sig",
            "provenance.json",
            "sbom.cdx.json",
            "security.md"
        ]
    );
    let md = std::fs::read_to_string(page.join("security.md")).unwrap();
    for needle in [
        "## Identity",
        "## Tenant isolation",
        "## Audit",
        "## Operations",
        "[`audit.verify`](#check-audit-verify) pass",
        "## Provenance",
        "`Cargo.lock` SHA-256",
    ] {
        assert!(md.contains(needle), "{needle} in\n{md}");
    }
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    assert!(html.contains("id=\"check-audit-verify\"") && html.contains("href=\"#provenance\""));
    let prov: Value =
        serde_json::from_slice(&std::fs::read(page.join("provenance.json")).unwrap()).unwrap();
    let lock =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock")).unwrap();
    let sum = bulwark_crypto::to_hex(&bulwark_crypto::sha256(&lock));
    assert_eq!(prov["cargo_lock_sha256"], sum.as_str());
    let sbom: Value =
        serde_json::from_slice(&std::fs::read(page.join("sbom.cdx.json")).unwrap()).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert!(sbom["components"].as_array().unwrap().len() > 100);
    // No secret of the deployment in any file of the page.
    let seed = std::fs::read_to_string(cwd.join(DATA).join("seed")).unwrap();
    for name in &names {
        let text = String::from_utf8_lossy(&std::fs::read(page.join(name)).unwrap()).into_owned();
        for line in seed.lines().filter(|l| l.len() >= 32) {
            assert!(!text.contains(line.trim()), "the seed is in {name}");
        }
    }

    let verify = |extra: &[&str]| {
        let mut args = vec!["evidence", "verify", "page"];
        args.extend_from_slice(extra);
        run(cwd, &args)
    };
    let out = verify(&[]);
    assert_eq!(out.code, Some(0), "{out}");
    let deployment = std::fs::read_to_string(page.join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&deployment).unwrap();
    let id = manifest["deployment"].as_str().unwrap().to_owned();
    assert_eq!(verify(&["--deployment", &id]).code, Some(0));
    let out = verify(&["--deployment", "dep_000000000000000000000000"]);
    assert_eq!(out.code, Some(4), "{out}");

    let refused = |what: &str, change: &dyn Fn(), undo: &dyn Fn()| {
        change();
        let out = verify(&[]);
        assert_eq!(out.code, Some(4), "{what}:\n{out}");
        assert!(out.stderr.contains("FAILED"), "{what}:\n{out}");
        undo();
        assert_eq!(verify(&[]).code, Some(0), "{what} undone");
    };
    let md_path = page.join("security.md");
    refused(
        "a changed claim",
        &|| {
            std::fs::write(
                &md_path,
                md.replace("DOES NOT HOLD", "holds").replace("warn", "pass"),
            )
            .unwrap()
        },
        &|| std::fs::write(&md_path, &md).unwrap(),
    );
    let extra = page.join("extra.html");
    refused(
        "an added file",
        &|| std::fs::write(&extra, "<p>all good</p>").unwrap(),
        &|| std::fs::remove_file(&extra).unwrap(),
    );
    let sbom_path = page.join("sbom.cdx.json");
    let sbom_bytes = std::fs::read(&sbom_path).unwrap();
    refused(
        "a removed file",
        &|| std::fs::remove_file(&sbom_path).unwrap(),
        &|| std::fs::write(&sbom_path, &sbom_bytes).unwrap(),
    );
    let manifest_path = page.join("manifest.json");
    refused(
        "an edited manifest",
        &|| {
            std::fs::write(
                &manifest_path,
                deployment.replacen("\"created\": \"", "\"created\": \"1", 1),
            )
            .unwrap()
        },
        &|| std::fs::write(&manifest_path, &deployment).unwrap(),
    );

    // A second export never writes into the first one's directory.
    let out = with(&["evidence", "export", "--out", "page"]);
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("not empty"), "{out}");
    assert_eq!(std::fs::read_to_string(&md_path).unwrap(), md);
}

/// Runs `sql` on PostgreSQL at `url`.
fn pg_exec(url: &str, sql: &str) {
    crate::harness::runtime().block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
    });
}

/// Gates `postgres.grants` and `postgres.rls` on a real cluster: a privilege granted to the
/// serving role beyond the expected set (TRUNCATE ignores row-level security) refuses the start
/// until `bulwark migrate` puts the grants back; a tenant table whose row-level security is no
/// longer forced refuses it until it is forced again. The doctor reports both the same way.
#[test]
fn the_postgres_gates_refuse_extra_grants_and_unforced_rls_until_fixed() {
    let db = crate::postgres::fresh();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = crate::postgres::migrate(cwd, &db.owner_url, &db.app_role);
    assert_eq!(out.code, Some(0), "{out}");
    let data = cwd.join("d");
    crate::postgres::pg_setup(cwd, &data, &db.app_url);
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        db.app_url.as_str(),
    ];
    let doctor_pg = || {
        let mut cmd = bulwark(cwd);
        cmd.args(["doctor", "--format", "json", "--data-dir", path_str(&data)])
            .args(["--database-url", &db.app_url]);
        let out = run_with(cmd, None, crate::harness::COMMAND_TIMEOUT);
        let report: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{out}"));
        (out.code, report)
    };
    let (code, report) = doctor_pg();
    assert_eq!(code, Some(0), "{report:#}");
    for id in ["postgres.role", "postgres.rls", "postgres.grants"] {
        assert_eq!(check(&report, id)["status"], "pass", "{report:#}");
    }
    assert_eq!(
        check(&report, "postgres.role")["evidence"]["role"],
        db.app_role.as_str()
    );

    pg_exec(
        &db.owner_url,
        &format!("GRANT TRUNCATE ON audit_events TO \"{}\"", db.app_role),
    );
    let (code, report) = doctor_pg();
    assert_eq!(code, Some(4), "{report:#}");
    let grants = check(&report, "postgres.grants");
    assert_eq!(
        grants["evidence"]["extra"][0], "audit_events: TRUNCATE",
        "{grants}"
    );
    refused(cwd, &data, &args, "postgres.grants", &["bulwark migrate"]);
    let out = crate::postgres::migrate(cwd, &db.owner_url, &db.app_role);
    assert_eq!(out.code, Some(0), "{out}");
    starts(cwd, &data, &args);

    pg_exec(
        &db.owner_url,
        "ALTER TABLE credentials NO FORCE ROW LEVEL SECURITY",
    );
    let (code, report) = doctor_pg();
    assert_eq!(code, Some(4), "{report:#}");
    assert_eq!(
        check(&report, "postgres.rls")["evidence"]["unprotected_tables"][0],
        "credentials"
    );
    refused(
        cwd,
        &data,
        &args,
        "postgres.rls",
        &["FORCE ROW LEVEL SECURITY"],
    );
    pg_exec(
        &db.owner_url,
        "ALTER TABLE credentials FORCE ROW LEVEL SECURITY",
    );
    starts(cwd, &data, &args);
}
