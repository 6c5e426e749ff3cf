//! Org deletion on the real binary: an owner schedules it through the API (audited, refused for
//! the operator org, out-of-range grace and twice), cancels it, a host operator schedules it
//! with no grace, `deletion run` purges it: every org row gone, the other org untouched, the
//! org's vault secret destroyed so a ciphertext copied before the purge (an old backup) no
//! longer opens with the seed, the audit log sealed (the database refuses any later event) and
//! still verifying; the signed certificate verifies offline and any edit to it is refused.
//! Retention runs delete ended sessions and are audited with their counts. Both engines.

use std::path::Path;

use serde_json::{Value, json};

use crate::audit::{DATA, deployment, sql};
use crate::harness::{Finished, path_str, request, run, serve_on};

const PASSWORD: &str = "a perfectly long passphrase";

fn with(cwd: &Path, config: &Path, store: &[&str], args: &[&str]) -> Finished {
    let mut all = args.to_vec();
    all.extend_from_slice(store);
    all.extend_from_slice(&["--config", path_str(config)]);
    run(cwd, &all)
}

/// Exports `log` to the new file `file` and verifies it with the deployment's audit key: the
/// verifier's answer.
fn export_and_verify(cwd: &Path, config: &Path, store: &[&str], log: &str, file: &str) -> Finished {
    let key = with(cwd, config, store, &["audit", "key"]);
    assert_eq!(key.code, Some(0), "{key}");
    let out = with(
        cwd,
        config,
        store,
        &["audit", "export", "--log", log, "--out", file],
    );
    assert_eq!(out.code, Some(0), "{out}");
    run(cwd, &["audit", "verify", file, "--key", key.stdout.trim()])
}

/// A signed-in owner: the session cookie and CSRF token.
struct Owner {
    cookie: String,
    csrf: String,
}

impl Owner {
    fn sign_in(addr: &str) -> Self {
        let login = json!({"email": "o@acme.test", "password": PASSWORD});
        let (res, cookies) = request("POST", addr, "/v1/auth/login", &[], Some(&login));
        assert_eq!(res.status, 200, "{res:?}");
        let cookie = cookies
            .iter()
            .find(|c| c.starts_with("__Host-bulwark_session="))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = res.json()["csrf_token"].as_str().unwrap().to_owned();
        Self { cookie, csrf }
    }

    fn call(&self, addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let headers = [
            ("cookie", self.cookie.as_str()),
            ("x-csrf-token", self.csrf.as_str()),
        ];
        let (res, _) = request(method, addr, path, &headers, body);
        let value = serde_json::from_str(&res.body).unwrap_or(Value::Null);
        (res.status, value)
    }
}

/// Fills `org` through the API: credentials, a team.
fn fill(owner: &Owner, addr: &str, org: &str) {
    for i in 0..3 {
        let body = json!({"name": format!("c{i}"), "kind": "generic",
            "value": format!("canary-value-{i}"), "destinations": ["https://example.com/"]});
        let (status, v) = owner.call(
            addr,
            "POST",
            &format!("/v1/orgs/{org}/credentials"),
            Some(&body),
        );
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = owner.call(
        addr,
        "POST",
        &format!("/v1/orgs/{org}/teams"),
        Some(&json!({"name": "ops"})),
    );
    assert_eq!(status, 201, "{v}");
}

/// The owner's side over the API: schedule (refused for the operator org, a grace out of range,
/// twice), read, cancel (audited), and what a member of no other org sees.
fn schedule_and_cancel_through_the_api(addr: &str, org: &str, operator: &str) {
    let owner = Owner::sign_in(addr);
    fill(&owner, addr, org);
    let path = format!("/v1/orgs/{org}/deletion");
    let (status, v) = owner.call(addr, "GET", &path, None);
    assert_eq!(
        (status, v["state"].as_str()),
        (200, Some("none")),
        "nothing scheduled: {v}"
    );
    for bad in [
        json!({"grace_days": 0}),
        json!({"grace_days": 91}),
        json!({"grace": 3}),
    ] {
        let (status, v) = owner.call(addr, "PUT", &path, Some(&bad));
        assert_eq!(status, 422, "{bad}: {v}");
    }
    let (status, v) = owner.call(addr, "PUT", &path, Some(&json!({})));
    assert_eq!(status, 201, "{v}");
    let due = time::OffsetDateTime::parse(
        v["due_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (due - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((167..=168).contains(&days), "seven days by default: {v}");
    assert!(
        v["requested_by"].as_str().unwrap().starts_with("usr_"),
        "{v}"
    );
    let (status, v) = owner.call(addr, "PUT", &path, Some(&json!({"grace_days": 3})));
    assert_eq!(status, 409, "scheduled already: {v}");
    let (status, v) = owner.call(addr, "GET", &path, None);
    assert_eq!(
        (status, v["state"].as_str()),
        (200, Some("scheduled")),
        "{v}"
    );
    let (status, _) = owner.call(addr, "DELETE", &path, None);
    assert_eq!(status, 204);
    let (status, v) = owner.call(addr, "DELETE", &path, None);
    assert_eq!(status, 409, "nothing to cancel: {v}");
    let (status, v) = owner.call(
        addr,
        "PUT",
        &format!("/v1/orgs/{operator}/deletion"),
        Some(&json!({"grace_days": 1})),
    );
    assert_eq!(status, 409, "the operator org holds the license: {v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("operator org"),
        "{v}"
    );
    // Without the CSRF token the change is refused.
    let (res, _) = request(
        "PUT",
        addr,
        &path,
        &[("cookie", owner.cookie.as_str())],
        Some(&json!({})),
    );
    assert_eq!(res.status, 403, "{res:?}");
    let (status, v) = owner.call(addr, "GET", &format!("/v1/orgs/{org}/audit/events"), None);
    assert_eq!(status, 200, "{v}");
    let actions: Vec<&str> = v["items"]
        .as_array()
        .or_else(|| v["events"].as_array())
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"org.deletion_scheduled"), "{actions:?}");
    assert!(actions.contains(&"org.deletion_cancelled"), "{actions:?}");
}

/// Writes and checks the purged org's certificate, and that edits to it are refused.
fn certificate(cwd: &Path, config: &Path, store: &[&str], org: &str) -> Value {
    let out = with(
        cwd,
        config,
        store,
        &["deletion", "certificate", org, "--out", "cert.json"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(crate::harness::mode(&cwd.join("cert.json")), 0o600);
    let out = with(
        cwd,
        config,
        store,
        &["deletion", "certificate", org, "--out", "cert.json"],
    );
    assert_eq!(out.code, Some(2), "never replaces a file: {out}");
    let out = run(cwd, &["deletion", "verify", "cert.json"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(org) && out.stdout.contains("Globex"),
        "{out}"
    );
    let text = std::fs::read_to_string(cwd.join("cert.json")).unwrap();
    let cert: Value = serde_json::from_str(&text).unwrap();
    let c = &cert["certificate"];
    let deployment = c["deployment"].as_str().unwrap();
    let out = run(
        cwd,
        &[
            "deletion",
            "verify",
            "cert.json",
            "--deployment",
            deployment,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = run(
        cwd,
        &[
            "deletion",
            "verify",
            "cert.json",
            "--deployment",
            "dep_000000000000000000000000",
        ],
    );
    assert_eq!(out.code, Some(4), "{out}");
    // (what the refusal names, the field changed or added, its new value)
    let edits = [
        ("signature", "rows", "credentials", json!(0)),
        ("signature", "", "requested_by", json!("usr_someone_else")),
        ("signature", "audit_log", "size", json!(1)),
        (
            "deployment key",
            "",
            "deployment",
            json!("dep_000000000000000000000000"),
        ),
        (
            "not a deletion certificate",
            "",
            "unsigned_note",
            json!("x"),
        ),
    ];
    for (i, (expect, within, field, value)) in edits.iter().enumerate() {
        let mut edited = cert.clone();
        let mut target = &mut edited["certificate"];
        if !within.is_empty() {
            target = &mut target[*within];
        }
        target[*field] = value.clone();
        let name = format!("edited-{i}.json");
        std::fs::write(cwd.join(&name), edited.to_string()).unwrap();
        let out = run(cwd, &["deletion", "verify", &name]);
        assert_eq!(out.code, Some(4), "{expect}: {out}");
        assert!(out.stderr.contains(expect), "{expect}: {out}");
    }
    c.clone()
}

#[test]
fn an_org_is_deleted_after_its_grace_window_with_a_verifiable_certificate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, orgs) = deployment(cwd);
    let db = cwd.join(DATA).join("bulwark.db");
    let (org, other) = (orgs[0].as_str(), orgs[1].as_str());
    let operator = sql(
        &db,
        &[],
        "SELECT 'org_' || lower(hex(operator_org)) FROM instance",
    )[0]
    .clone();
    let store = ["--data-dir", DATA];

    let server = serve_on(cwd, &cwd.join(DATA), &["--config", path_str(&config)]);
    schedule_and_cancel_through_the_api(&server.addr, org, &operator);
    let owner = Owner::sign_in(&server.addr);
    fill(&owner, &server.addr, other);
    assert_eq!(server.terminate().code, Some(0));

    // What an old backup would hold: the sealed values and the org's vault secret.
    let hex_of = |id: &str| id.trim_start_matches("org_").replace('-', "");
    let org_hex = hex_of(org);
    let copied = sql(
        &db,
        &[],
        &format!(
            "SELECT lower(hex(id)) || ':' || key_version || ':' || lower(hex(wrapped_key)) || ':' || \
             lower(hex(ciphertext)) || ':' || kind || ':' || destinations FROM credentials \
             WHERE lower(hex(org_id)) = '{org_hex}'"
        ),
    );
    assert_eq!(copied.len(), 3);
    let secret = sql(
        &db,
        &[],
        &format!("SELECT lower(hex(secret)) FROM org_keys WHERE lower(hex(org_id)) = '{org_hex}'"),
    );
    assert_eq!(secret.len(), 1, "the org has its own vault secret");
    let seed =
        bulwark_crypto::Seed::parse_file(&std::fs::read(cwd.join(DATA).join("seed")).unwrap())
            .unwrap();
    let opens = |key: Option<&str>| {
        copied
            .iter()
            .filter(|row| crate::deletion::opens(&seed, org, row, key))
            .count()
    };
    assert_eq!(
        opens(Some(&secret[0])),
        3,
        "with the org's secret every value opens"
    );
    assert_eq!(opens(None), 0, "the seed alone opens none");

    // A host operator: bad input, then no grace; `run` purges it.
    let out = with(cwd, &config, &store, &["deletion", "schedule", "org_nope"]);
    assert_eq!(out.code, Some(2), "{out}");
    let out = with(
        cwd,
        &config,
        &store,
        &["deletion", "schedule", org, "--grace", "91d"],
    );
    assert_eq!(out.code, Some(2), "{out}");
    let out = with(
        cwd,
        &config,
        &store,
        &["deletion", "schedule", &operator, "--grace", "0"],
    );
    assert_eq!(out.code, Some(3), "{out}");
    let out = with(
        cwd,
        &config,
        &store,
        &["deletion", "schedule", org, "--grace", "0"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(cwd, &config, &store, &["deletion", "list"]);
    assert!(
        out.stdout.contains(org) && out.stdout.contains("local operator"),
        "{out}"
    );
    let out = with(cwd, &config, &store, &["deletion", "run"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains(&format!("purged {org}")), "{out}");
    let out = with(cwd, &config, &store, &["deletion", "run"]);
    assert!(
        out.stdout.contains("no deletion is due"),
        "idempotent: {out}"
    );

    // Every org row is gone; the other org is untouched.
    for table in [
        "memberships",
        "credentials",
        "org_keys",
        "teams",
        "team_members",
        "api_keys",
        "invitations",
        "webhook_endpoints",
        "webhook_messages",
        "sso_connections",
        "sso_identities",
        "scim_users",
        "authz_policy_sets",
    ] {
        let left = sql(
            &db,
            &[],
            &format!("SELECT count(*) || '' FROM {table} WHERE lower(hex(org_id)) = '{org_hex}'"),
        );
        assert_eq!(left, ["0"], "{table}");
    }
    let other_hex = hex_of(other);
    let kept = sql(
        &db,
        &[],
        &format!("SELECT count(*) || '' FROM credentials WHERE lower(hex(org_id)) = '{other_hex}'"),
    );
    assert_eq!(kept, ["3"]);
    let tombstone = sql(
        &db,
        &[],
        &format!("SELECT name || ' ' || slug FROM orgs WHERE lower(hex(id)) = '{org_hex}'"),
    );
    assert!(
        !tombstone[0].contains("Globex") && !tombstone[0].contains("globex"),
        "{tombstone:?}"
    );
    // Crypto-shredding: the copied ciphertexts no longer open with anything the deployment holds.
    assert_eq!(opens(None), 0);

    // The sealed log: the database refuses another event, and the log still verifies.
    let sealed = crate::deletion::insert_after_seal(&db, &org_hex);
    assert!(sealed.contains("sealed"), "{sealed}");
    let out = export_and_verify(cwd, &config, &store, org, "sealed.jsonl");
    assert_eq!(out.code, Some(0), "{out}");
    let last = std::fs::read_to_string(cwd.join("sealed.jsonl")).unwrap();
    assert!(
        last.lines()
            .rev()
            .find(|l| l.contains("\"action\""))
            .unwrap()
            .contains("org.purged"),
        "the last event is the seal"
    );

    let c = certificate(cwd, &config, &store, org);
    assert_eq!(c["org"]["name"], "Globex");
    assert_eq!(c["requested_by"], "local operator");
    assert_eq!(c["rows"]["credentials"], 3, "{c}");
    assert_eq!(c["rows"]["teams"], 1, "{c}");
    assert!(c["rows"]["memberships"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(c["destroyed_keys"].as_array().unwrap().len(), 1, "{c}");
    assert!(
        c["destroyed_keys"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("orgkey_")
    );
    // The system log records it with the certificate's SHA-256.
    let text = std::fs::read(cwd.join("cert.json")).unwrap();
    let sha = bulwark_crypto::to_hex(&bulwark_crypto::sha256(&text));
    let recorded = sql(
        &db,
        &[],
        "SELECT CAST(body AS TEXT) FROM audit_events WHERE log = 'system' AND action = 'org.purged'",
    );
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].contains(&sha), "{recorded:?}");

    // The server starts beside the tombstone; retention runs and is audited.
    let server = serve_on(cwd, &cwd.join(DATA), &["--config", path_str(&config)]);
    let owner = Owner::sign_in(&server.addr);
    let (status, _) = owner.call(
        &server.addr,
        "GET",
        &format!("/v1/orgs/{org}/deletion"),
        None,
    );
    assert!(
        status == 403 || status == 404,
        "nobody is a member any more: {status}"
    );
    assert_eq!(server.terminate().code, Some(0));
    sql(
        &db,
        &["UPDATE sessions SET revoked_at = '2000-01-01T00:00:00Z'"],
        "SELECT 'x'",
    );
    let out = with(
        cwd,
        &config,
        &store,
        &["retention", "run", "--format", "json"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let counts: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(counts["sessions"].as_u64().unwrap() >= 2, "{counts}");
    assert_eq!(sql(&db, &[], "SELECT count(*) || '' FROM sessions"), ["0"]);
    let recorded = sql(
        &db,
        &[],
        "SELECT CAST(body AS TEXT) FROM audit_events WHERE log = 'system' AND action = 'retention.applied'",
    );
    assert_eq!(recorded.len(), 1);
    assert!(
        recorded[0].contains(&format!("\"sessions\":{}", counts["sessions"])),
        "{recorded:?}"
    );
}

/// Whether the copied credential `row` (`id:version:wrapped:ciphertext:kind:destinations`) opens
/// with the seed, masked with `key` (hex) when given.
pub(crate) fn opens(seed: &bulwark_crypto::Seed, org: &str, row: &str, key: Option<&str>) -> bool {
    use bulwark_crypto::vault::{OrgKey, OrgMasked, SealedValue, SeedWrapper};
    let parts: Vec<&str> = row.splitn(6, ':').collect();
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let id = format!("{}_{}", bulwark_types::CredentialId::PREFIX, parts[0]);
    let destinations: Vec<String> = serde_json::from_str(parts[5]).unwrap();
    let sealed = SealedValue {
        key_version: parts[1].parse().unwrap(),
        wrapped_key: hex(parts[2]),
        ciphertext: hex(parts[3]),
    };
    let attributes = bulwark_core::vault::attributes(parts[4], &destinations);
    let binding = bulwark_crypto::vault::Binding {
        org,
        record: &id,
        field: "value",
        attributes: &attributes,
    };
    let seed_wrapper = SeedWrapper::new(seed).unwrap();
    match key {
        Some(k) => {
            let key = OrgKey::from_slice(&hex(k)).unwrap();
            bulwark_crypto::vault::open(&OrgMasked::new(&seed_wrapper, &key), &binding, &sealed)
                .is_ok()
        }
        None => bulwark_crypto::vault::open(&seed_wrapper, &binding, &sealed).is_ok(),
    }
}

/// Tries to append an event to the org's sealed log, as a writer with the file would: the
/// database's refusal.
pub(crate) fn insert_after_seal(db: &Path, org_hex: &str) -> String {
    crate::harness::runtime().block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let next: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT max(seq) + 1 FROM audit_events WHERE lower(hex(org_id)) = '{org_hex}'"
        )))
        .fetch_one(&mut c)
        .await
        .unwrap();
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_events (log, seq, org_id, event_id, time, action, body, leaf_hash) \
             SELECT log, {next}, org_id, randomblob(16), time, action, body, leaf_hash \
             FROM audit_events WHERE lower(hex(org_id)) = '{org_hex}' ORDER BY seq DESC LIMIT 1"
        )))
        .execute(&mut c)
        .await;
        match inserted {
            Ok(_) => "inserted".into(),
            Err(e) => e.to_string(),
        }
    })
}

/// A second person, `p@acme.test`, an admin of every org with the owner's password.
fn add_person(db: &Path) {
    sql(
        db,
        &[
            "INSERT INTO users (id, email, email_key, password_hash, created_at) \
             SELECT randomblob(16), 'p@acme.test', 'p@acme.test', password_hash, created_at \
             FROM users WHERE email = 'o@acme.test'",
            "INSERT INTO memberships (org_id, user_id, role, created_at) \
             SELECT org_id, (SELECT id FROM users WHERE email = 'p@acme.test'), 'admin', created_at \
             FROM memberships",
        ],
        "SELECT 'done'",
    );
}

const AGENT: &str = "CanaryAgent/7.7 (erase-me)";

/// Exports and verifies every log; the exports' text.
fn export_and_verify_every_log(cwd: &Path, config: &Path, logs: &[String], tag: &str) -> String {
    let store = ["--data-dir", DATA];
    let mut all = String::new();
    for log in logs {
        let file = format!("export-{log}-{tag}.jsonl");
        let out = export_and_verify(cwd, config, &store, log, &file);
        assert_eq!(out.code, Some(0), "{log}: {out}");
        all.push_str(&std::fs::read_to_string(cwd.join(&file)).unwrap());
    }
    all
}

#[test]
fn an_erased_person_leaves_no_address_agent_or_email_and_every_log_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (config, orgs) = deployment(cwd);
    let db = cwd.join(DATA).join("bulwark.db");
    add_person(&db);
    let store = ["--data-dir", DATA];
    let person = sql(
        &db,
        &[],
        "SELECT 'usr_' || lower(hex(id)) FROM users WHERE email = 'p@acme.test'",
    )[0]
    .clone();

    // The person signs in (recorded in every org's log with their address and agent) and acts.
    let server = serve_on(cwd, &cwd.join(DATA), &["--config", path_str(&config)]);
    let login = json!({"email": "p@acme.test", "password": PASSWORD});
    let (res, cookies) = request(
        "POST",
        &server.addr,
        "/v1/auth/login",
        &[("user-agent", AGENT)],
        Some(&login),
    );
    assert_eq!(res.status, 200, "{res:?}");
    let cookie = cookies[0].split(';').next().unwrap().to_owned();
    let csrf = res.json()["csrf_token"].as_str().unwrap().to_owned();
    let headers = [
        ("cookie", cookie.as_str()),
        ("x-csrf-token", csrf.as_str()),
        ("user-agent", AGENT),
    ];
    let (res, _) = request(
        "POST",
        &server.addr,
        &format!("/v1/orgs/{}/teams", orgs[0]),
        &headers,
        Some(&json!({"name": "erasers"})),
    );
    assert_eq!(res.status, 201, "{res:?}");
    assert_eq!(server.terminate().code, Some(0));
    let mut logs = vec!["system".to_owned()];
    logs.extend(orgs.iter().cloned());
    let before = export_and_verify_every_log(cwd, &config, &logs, "before");
    assert!(
        before.contains(AGENT) && before.contains(&person),
        "the events hold them first"
    );

    // A webhook message copying one of their events, and one about someone else.
    let org_hex = orgs[0].trim_start_matches("org_").to_owned();
    let message = |payload: &str| {
        format!(
            "INSERT INTO webhook_messages (org_id, id, event_type, payload, created_at, created_ms) \
             VALUES (unhex('{org_hex}'), randomblob(16), 'team.created', '{payload}', \
             '2026-12-07T00:00:00Z', 0)"
        )
    };
    sql(
        &db,
        &[
            &message(&format!(
                "{{\"actor\":{{\"id\":\"{person}\"}},\"user_agent\":\"{AGENT}\"}}"
            )),
            &message("{\"actor\":{\"id\":\"usr_someone_else\"}}"),
        ],
        "SELECT 'done'",
    );

    // Refusals: the only owner; then the erasure; then again.
    let out = with(cwd, &config, &store, &["users", "erase", "o@acme.test"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr.contains("only owner"), "{out}");
    let out = with(cwd, &config, &store, &["users", "erase", "P@Acme.test"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("events redacted"), "{out}");
    let out = with(cwd, &config, &store, &["users", "erase", "p@acme.test"]);
    assert_eq!(out.code, Some(2), "gone: {out}");
    let out = with(cwd, &config, &store, &["users", "erase", &person]);
    assert_eq!(out.code, Some(3), "erased already: {out}");

    // The live tables hold nothing of theirs; the account is a tombstone.
    let uid = person.trim_start_matches("usr_");
    for table in [
        "sessions",
        "memberships",
        "team_members",
        "mfa_totp",
        "user_tokens",
    ] {
        let left = sql(
            &db,
            &[],
            &format!("SELECT count(*) || '' FROM {table} WHERE lower(hex(user_id)) = '{uid}'"),
        );
        assert_eq!(left, ["0"], "{table}");
    }
    let account = sql(
        &db,
        &[],
        &format!(
            "SELECT email || ' ' || password_hash || ' ' || (erased_at IS NOT NULL) FROM users WHERE lower(hex(id)) = '{uid}'"
        ),
    );
    assert!(
        account[0].starts_with("erased-") && account[0].ends_with(" 1"),
        "{account:?}"
    );
    let messages = sql(
        &db,
        &[],
        "SELECT group_concat(payload) FROM webhook_messages",
    );
    assert!(
        !messages[0].contains(AGENT) && messages[0].contains("usr_someone_else"),
        "{messages:?}"
    );
    let dump = sql(&db, &[], "SELECT group_concat(email) FROM users");
    assert!(!dump[0].contains("p@acme.test"), "{dump:?}");

    // Every log still verifies; no export shows their address, agent or email; their actions
    // remain under their pseudonym.
    let after = export_and_verify_every_log(cwd, &config, &logs, "after");
    assert!(!after.contains(AGENT), "user agent left in an export");
    assert!(!after.contains("p@acme.test"), "email left in an export");
    assert!(
        after.contains("\"erased\":"),
        "redacted events stand as erased lines"
    );
    assert!(after.contains(&person), "the pseudonym remains");
    assert!(after.contains("team.created") && after.contains("audit.erased"));
    assert!(after.contains("user.erased"));
    let redacted: Vec<Value> = after
        .lines()
        .filter(|l| l.starts_with("{\"erased\":"))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    assert!(!redacted.is_empty());
    for line in &redacted {
        let body: Value = serde_json::from_str(line["erased"]["body"].as_str().unwrap()).unwrap();
        assert!(
            body.get("source_ip").is_none() && body.get("user_agent").is_none(),
            "{body}"
        );
    }

    // The API shows the redacted events too.
    let server = serve_on(cwd, &cwd.join(DATA), &["--config", path_str(&config)]);
    let owner = Owner::sign_in(&server.addr);
    let (status, v) = owner.call(
        &server.addr,
        "GET",
        &format!("/v1/orgs/{}/audit/events?limit=1000", orgs[0]),
        None,
    );
    assert_eq!(status, 200, "{v}");
    let text = v.to_string();
    assert!(!text.contains(AGENT) && text.contains(&person), "{text}");
    let (status, v) = owner.call(
        &server.addr,
        "GET",
        &format!("/v1/orgs/{}/members", orgs[0]),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert!(!v.to_string().contains(&person), "no longer a member: {v}");
    assert_eq!(server.terminate().code, Some(0));

    // A body changed any other way is caught: the redaction is not the recorded one.
    sql(
        &db,
        &[
            "INSERT INTO audit_erase_gate (open) VALUES (1)",
            &format!(
                "UPDATE audit_events SET body = CAST(replace(CAST(body AS TEXT), 'erasers', 'EDITED') AS BLOB) \
                 WHERE lower(hex(org_id)) = '{org_hex}' AND action = 'team.created'"
            ),
            "DELETE FROM audit_erase_gate",
        ],
        "SELECT 'done'",
    );
    let out = export_and_verify(cwd, &config, &store, &orgs[0], "edited.jsonl");
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("audit.erased"), "{out}");
}

/// Runs `statements` as the cluster's superuser, then `query` (one text column).
fn pg(url: &str, statements: &[&str], query: &str) -> Vec<String> {
    crate::harness::runtime().block_on(async {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                .execute(&mut c)
                .await
                .unwrap();
        }
        sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_all(&mut c)
            .await
            .unwrap()
    })
}

/// On PostgreSQL every step runs as the application role, through row-level security: an org
/// licensed beside the operator org is filled, scheduled, purged and certified; a person who
/// signed in is erased and every log still verifies.
#[test]
fn deletion_and_erasure_on_postgres_run_as_the_application_role() {
    let db = crate::postgres::fresh();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = crate::postgres::migrate(cwd, &db.owner_url, &db.app_role);
    assert_eq!(out.code, Some(0), "{out}");
    crate::postgres::pg_setup(cwd, &cwd.join("d"), &db.app_url);
    let store = ["--data-dir", "d", "--database-url", db.app_url.as_str()];

    // A license for three orgs, and a second org.
    let key = cwd.join("vendor.key");
    let out = run(cwd, &["license", "keygen", "--out", path_str(&key)]);
    assert_eq!(out.code, Some(0), "{out}");
    let public = crate::license::public_key(&out);
    let config = cwd.join("bulwark.toml");
    std::fs::write(
        &config,
        format!("[license]\nextra_public_keys = [\"{public}\"]\n"),
    )
    .unwrap();
    let out = with(
        cwd,
        &config,
        &store,
        &["license", "status", "--format", "json"],
    );
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let claims = cwd.join("claims.json");
    std::fs::write(
        &claims,
        json!({
            "format": 1, "license_id": "lic_pg", "licensee": "Acme", "serial": 1,
            "deployment": status["deployment_id"],
            "issued_at": fmt(now - time::Duration::hours(1)),
            "not_before": fmt(now - time::Duration::hours(1)),
            "expires_at": fmt(now + time::Duration::days(365)), "grace_days": 14,
            "limits": {"orgs": 3, "seats": 50}, "features": []
        })
        .to_string(),
    )
    .unwrap();
    let license = cwd.join("license.json");
    let out = crate::license::issue(cwd, &key, &claims, &license);
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(
        cwd,
        &config,
        &store,
        &["license", "activate", path_str(&license)],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(
        cwd,
        &config,
        &store,
        &[
            "orgs",
            "create",
            "--name",
            "Globex",
            "--owner-email",
            "o@acme.test",
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let org = out.stdout.split_whitespace().nth(1).unwrap().to_owned();
    let org_uuid = org.trim_start_matches("org_").to_owned();
    pg(
        &db.superuser_url,
        &[
            "UPDATE orgs SET mfa_required = 'none'",
            "INSERT INTO users (id, email, email_key, password_hash, created_at) \
             SELECT gen_random_uuid(), 'p@acme.test', 'p@acme.test', password_hash, created_at \
             FROM users WHERE email = 'o@acme.test'",
            "INSERT INTO memberships (org_id, user_id, role, created_at) \
             SELECT org_id, (SELECT id FROM users WHERE email = 'p@acme.test'), 'admin', created_at \
             FROM memberships",
        ],
        "SELECT 'done'",
    );

    let server = serve_on(
        cwd,
        &cwd.join("d"),
        &["--config", path_str(&config), "--database-url", &db.app_url],
    );
    let owner = Owner::sign_in(&server.addr);
    fill(&owner, &server.addr, &org);
    let login = json!({"email": "p@acme.test", "password": PASSWORD});
    let (res, _) = request(
        "POST",
        &server.addr,
        "/v1/auth/login",
        &[("user-agent", AGENT)],
        Some(&login),
    );
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(server.terminate().code, Some(0));

    let out = with(
        cwd,
        &config,
        &store,
        &["deletion", "schedule", &org, "--grace", "0"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = with(cwd, &config, &store, &["deletion", "run"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains(&format!("purged {org}")), "{out}");
    for table in ["credentials", "org_keys", "memberships", "teams"] {
        let left = pg(
            &db.superuser_url,
            &[],
            &format!("SELECT count(*)::text FROM {table} WHERE org_id = '{org_uuid}'"),
        );
        assert_eq!(left, ["0"], "{table}");
    }
    let c = certificate(cwd, &config, &store, &org);
    assert_eq!(c["rows"]["credentials"], 3, "{c}");
    let sealed = pg(
        &db.superuser_url,
        &[],
        &format!(
            "SELECT (purged_at IS NOT NULL AND audit_sealed_size IS NOT NULL)::text FROM orgs WHERE id = '{org_uuid}'"
        ),
    );
    assert_eq!(sealed, ["true"]);

    let out = with(cwd, &config, &store, &["users", "erase", "p@acme.test"]);
    assert_eq!(out.code, Some(0), "{out}");
    let operator = pg(
        &db.superuser_url,
        &[],
        "SELECT 'org_' || replace(operator_org::text, '-', '') FROM instance",
    )[0]
    .clone();
    for log in ["system", operator.as_str(), org.as_str()] {
        let file = format!("pg-{log}.jsonl");
        let out = export_and_verify(cwd, &config, &store, log, &file);
        assert_eq!(out.code, Some(0), "{log}: {out}");
        let text = std::fs::read_to_string(cwd.join(&file)).unwrap();
        assert!(
            !text.contains(AGENT) && !text.contains("p@acme.test"),
            "{log}"
        );
    }
    let left = pg(
        &db.superuser_url,
        &[],
        "SELECT count(*)::text FROM users WHERE email = 'p@acme.test'",
    );
    assert_eq!(left, ["0"]);
}
