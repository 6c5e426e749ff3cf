//! ASVS requirements verified by reading the build's own sources: the console's templates, the
//! API description, and the workspace's lints.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn templates() -> Vec<(String, String)> {
    let dir = root().join("crates/bulwark-server/templates");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Every `<input …>` tag of a template.
fn inputs(text: &str) -> Vec<String> {
    text.match_indices("<input")
        .map(|(i, _)| {
            let rest = &text[i..];
            rest[..rest.find('>').unwrap() + 1].to_owned()
        })
        .collect()
}

/// ASVS V6.2.6 and V6.2.7: every password field of the console masks its entry and tells
/// password managers what it is (current or new password); nothing blocks paste.
#[test]
fn password_fields_are_masked_and_open_to_password_managers() {
    let mut seen = 0;
    for (name, text) in templates() {
        for input in inputs(&text) {
            let is_password = [
                "name=\"password\"",
                "name=\"current_password\"",
                "name=\"new_password\"",
            ]
            .iter()
            .any(|n| input.contains(n));
            if !is_password {
                continue;
            }
            seen += 1;
            assert!(input.contains("type=\"password\""), "{name}: {input}");
            assert!(
                input.contains("autocomplete=\"current-password\"")
                    || input.contains("autocomplete=\"new-password\""),
                "{name}: {input}"
            );
            assert!(!input.contains("onpaste"), "{name}: {input}");
        }
        assert!(
            !text.contains("onpaste") && !text.contains("oncopy"),
            "{name}"
        );
    }
    assert!(seen >= 8, "password fields found: {seen}");
    let js =
        std::fs::read_to_string(root().join("crates/bulwark-server/assets/console.js")).unwrap();
    assert!(!js.contains("paste"), "console.js handles no paste events");
}

/// ASVS V7.4.4: every page shown to a signed-in user has the sign-out form (from `base.html`);
/// the pages without it are those shown before sign-in completes.
#[test]
fn every_signed_in_page_offers_sign_out() {
    let all = templates();
    let base = &all.iter().find(|(n, _)| n == "base.html").unwrap().1;
    assert!(
        base.contains("<form method=\"post\" action=\"/logout\""),
        "{base}"
    );
    assert!(base.contains("Sign out"));
    let before_sign_in = [
        "error.html",
        "login.html",
        "mfa.html",
        "public.html",
        "resume.html",
    ];
    let layouts = ["bare.html", "base.html", "head.html"];
    for (name, text) in &all {
        if layouts.contains(&name.as_str()) {
            continue;
        }
        let signed_in = text.contains("{% extends \"base.html\" %}");
        assert_eq!(
            signed_in,
            !before_sign_in.contains(&name.as_str()),
            "{name}: signed-in pages extend base.html (which has Sign out); only pages before sign-in may not"
        );
    }
}

/// ASVS V6.4.2: no password hint and no secret question anywhere in the API's input.
#[test]
fn the_api_asks_for_no_password_hint_or_secret_question() {
    let doc = std::fs::read_to_string(root().join("docs/openapi.json"))
        .unwrap()
        .to_lowercase();
    for word in [
        "password_hint",
        "\"hint\"",
        "secret_question",
        "security_question",
        "\"question\"",
        "secret_answer",
    ] {
        assert!(!doc.contains(word), "`{word}` in docs/openapi.json");
    }
    for (name, text) in templates() {
        let text = text.to_lowercase();
        for word in ["hint", "security question", "secret question"] {
            assert!(!text.contains(word), "`{word}` in {name}");
        }
    }
}

/// ASVS V1.4.1 and V1.4.3: no crate may contain `unsafe` code: the workspace forbids it and every
/// crate takes the workspace's lints.
#[test]
fn every_crate_forbids_unsafe_code() {
    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let table: toml::Table = workspace.parse().unwrap();
    assert_eq!(
        table["workspace"]["lints"]["rust"]["unsafe_code"].as_str(),
        Some("forbid"),
        "[workspace.lints.rust] unsafe_code = \"forbid\""
    );
    let members = table["workspace"]["members"].as_array().unwrap();
    let mut crates = 0;
    for dir in std::fs::read_dir(root().join("crates")).unwrap() {
        let manifest = dir.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        crates += 1;
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(
            t.get("lints")
                .and_then(|l| l.get("workspace"))
                .and_then(toml::Value::as_bool),
            Some(true),
            "{} takes the workspace lints",
            manifest.display()
        );
    }
    assert!(crates >= 10 && !members.is_empty(), "{crates} crates");
}

/// ASVS V11.1.2, V13.1.1, V14.1.1, V14.1.2 and V15.1.1: docs/inventory.md classifies every
/// table of the schema, lists every key purpose of the seed and every setting that opens a
/// connection, and states the time frames for fixing vulnerable dependencies.
#[test]
fn the_inventories_name_every_table_key_and_connection() {
    let doc = std::fs::read_to_string(root().join("docs/inventory.md")).unwrap();
    for table in bulwark_core::backup::TABLES {
        let row = format!("| `{}` | ", table.name);
        let line = doc
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| {
                panic!(
                    "table `{}` is not classified in docs/inventory.md",
                    table.name
                )
            });
        let class = line.split('|').nth(2).unwrap();
        assert!(
            class
                .split(',')
                .all(|c| matches!(c.trim(), "S" | "P" | "R" | "C" | "O")),
            "{line}"
        );
    }
    let seed = std::fs::read_to_string(root().join("crates/bulwark-crypto/src/seed.rs")).unwrap();
    let mut purposes = 0;
    for label in seed.split("b\"bulwark/v1/").skip(1) {
        let label = label.split('"').next().unwrap();
        if label == "hkdf-salt" {
            continue;
        }
        purposes += 1;
        assert!(
            doc.contains(&format!("`bulwark/v1/{label}`")),
            "key purpose {label}"
        );
    }
    assert!(purposes >= 10, "{purposes}");
    for setting in [
        "`listen`",
        "`database_url`",
        "`mail.smtp.host`",
        "`audit.publish_url`",
        "`sso.idp_hosts`",
        "`egress.allow_hosts`",
        "`egress.allow_networks_for_webhooks`",
    ] {
        assert!(doc.contains(setting), "connection setting {setting}");
    }
    for frame in ["**7 days**", "**30 days**"] {
        assert!(doc.contains(frame), "{frame}");
    }
}

/// ASVS V6.3.2: a fresh deployment has no account at all, so no default credentials: every
/// usual default is refused until setup (with the one-time token) creates the first owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_deployment_has_no_default_account() {
    let app = bulwark_testkit::spawn_app(bulwark_testkit::Backend::Sqlite).await;
    assert!(app.setup_token.is_some(), "setup is pending");
    for (email, password) in [
        ("admin@localhost", "admin"),
        ("admin@example.com", "password"),
        ("root@localhost", "root"),
        ("bulwark@localhost", "bulwark"),
        ("administrator@localhost", "changeme"),
    ] {
        let res = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(matches!(status, 401 | 422 | 429), "{email}: {status}");
        assert!(
            res.headers().get("set-cookie").is_none(),
            "{email}: no session"
        );
    }
    let mut tx = app.state.store.system().await.unwrap();
    for email in ["admin@example.com", "owner@example.com"] {
        assert!(
            tx.user_by_email(&email.parse().unwrap())
                .await
                .unwrap()
                .is_none(),
            "{email}"
        );
    }
}

/// ASVS V6.2.10: a password is never forced to change with age: neither the configuration nor
/// the stored account has a password age or expiry, and an account made years ago signs in with
/// its password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_do_not_expire_with_age() {
    let config = serde_json::to_value(bulwark_server::config::Config::default()).unwrap();
    let passwords = config["passwords"].as_object().unwrap();
    assert!(
        passwords
            .keys()
            .all(|k| !k.contains("expir") && !k.contains("age") && !k.contains("rotat")),
        "{passwords:?}"
    );
    let users = bulwark_core::backup::TABLES
        .iter()
        .find(|t| t.name == "users")
        .unwrap();
    for (column, _) in users.columns {
        assert!(
            !column.contains("expir") && !column.contains("password_changed"),
            "users.{column}"
        );
    }
    let app = bulwark_testkit::spawn_app(bulwark_testkit::Backend::Sqlite).await;
    app.setup("Acme", "owner@acme.test", "a long enough password")
        .await;
    let db = app.state.config.data_dir.join("bulwark.db");
    {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let aged = sqlx::query("UPDATE users SET created_at = '2016' || substr(created_at, 5)")
            .execute(&mut c)
            .await
            .unwrap();
        assert_eq!(
            aged.rows_affected(),
            1,
            "the owner's account is now years old"
        );
    }
    app.login_mfa("owner@acme.test", "a long enough password")
        .await;
}

/// The text of `## {heading}` in `doc` (up to the next `## `), or a failure naming it.
fn section(doc: &str, heading: &str) -> String {
    let text = std::fs::read_to_string(root().join(doc)).unwrap();
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("{doc} has no section `## {heading}`"));
    let rest = &text[start + 4 + heading.len()..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

fn kib(bytes: usize) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// ASVS V5.1.1: the accepted documents are listed with the limits the code enforces (each
/// number read from the constant that enforces it, so a changed limit fails here until the
/// page says so).
#[test]
fn accepted_documents_are_listed_with_the_limits_the_code_enforces() {
    let s = section("docs/threat-model.md", "Accepted documents");
    let body = bulwark_server::config::HttpConfig::default().body_limit_bytes;
    let want = [
        (
            "the body limit",
            format!("default {} ({body} bytes)", kib(body)),
        ),
        (
            "vault values",
            format!(
                "{} ({} bytes)",
                kib(bulwark_crypto::vault::MAX_VALUE_LEN),
                bulwark_crypto::vault::MAX_VALUE_LEN
            ),
        ),
        (
            "SAML metadata",
            kib(bulwark_server::api::v1::sso_saml::MAX_METADATA_BYTES),
        ),
        (
            "signing certificates",
            format!(
                "at most {} signing certificates",
                bulwark_server::api::v1::sso_saml::MAX_CERTIFICATES
            ),
        ),
        (
            "SAML responses",
            format!("{} decoded", kib(bulwark_saml::MAX_RESPONSE_BYTES)),
        ),
        ("XML nesting", format!("{} levels", bulwark_saml::MAX_DEPTH)),
        (
            "Cedar text",
            format!(
                "{} of text and {} policies",
                kib(bulwark_authz::MAX_POLICY_BYTES),
                bulwark_authz::MAX_POLICIES
            ),
        ),
    ];
    for (what, text) in want {
        assert!(
            s.contains(&text),
            "threat-model.md § Accepted documents: {what}: `{text}`"
        );
    }
    for document in [
        "license file",
        "SAML IdP metadata",
        "SAML response",
        "OIDC discovery",
        "Cedar org policies",
        "SCIM",
        "audit log export",
        "backup",
        "evidence",
        "config",
    ] {
        assert!(
            s.to_lowercase().contains(&document.to_lowercase()),
            "threat-model.md § Accepted documents lists no {document}"
        );
    }
}

/// ASVS V7.1.1 and V7.1.2: the session timeouts are documented with their defaults (read from
/// the code) and a justification against NIST SP 800-63B, and so is the number of concurrent
/// sessions and what a user and an admin can do about them.
#[test]
fn session_timeouts_and_concurrency_are_documented_as_the_code_has_them() {
    let timeouts = section("docs/sessions.md", "Timeouts and why");
    let defaults = bulwark_core::session::SessionPolicy::default();
    for (what, secs) in [
        ("idle", defaults.idle.whole_seconds()),
        ("absolute", defaults.absolute.whole_seconds()),
    ] {
        assert!(
            timeouts.contains(&format!("{secs} s")),
            "sessions.md § Timeouts and why: the {what} default {secs} s"
        );
    }
    for text in [
        "sessions.idle_timeout_secs",
        "sessions.absolute_timeout_secs",
        "session_idle_secs",
        "session_absolute_secs",
        "sessions.cache_secs",
        "800-63B",
    ] {
        assert!(
            timeouts.contains(text),
            "sessions.md § Timeouts and why: {text}"
        );
    }
    let concurrent = section("docs/sessions.md", "Concurrent sessions");
    for text in [
        "GET /v1/auth/sessions",
        "DELETE /v1/auth/sessions/{id}",
        "DELETE /v1/orgs/{org}/members/{user}/sessions",
        "Why no cap",
    ] {
        assert!(
            concurrent.contains(text),
            "sessions.md § Concurrent sessions: {text}"
        );
    }
}

/// ASVS V8.1.2: the field-level rules name resources the API has and built-in policies that
/// exist, so a renamed policy or a dropped rule shows here.
#[test]
fn field_level_rules_name_policies_that_exist() {
    let rules = section("docs/authorization.md", "Field-level rules");
    let builtin =
        std::fs::read_to_string(root().join("crates/bulwark-authz/policies/builtin.cedar"))
            .unwrap();
    let named: Vec<&str> = rules
        .split('`')
        .filter(|w| w.starts_with("builtin."))
        .collect();
    assert!(named.len() >= 3, "{named:?}");
    for id in named {
        assert!(
            builtin.contains(&format!("@id(\"{id}\")")),
            "authorization.md § Field-level rules names `{id}`, which builtin.cedar lacks"
        );
    }
    for resource in [
        "members",
        "invitations",
        "API keys",
        "webhook",
        "vault",
        "SSO",
        "SCIM",
        "audit",
        "license",
    ] {
        assert!(
            rules.contains(resource),
            "authorization.md § Field-level rules says nothing of {resource}"
        );
    }
}

/// ASVS V15.2.1: the RustSec snapshot that `scripts/advisories` checks `Cargo.lock` against in
/// CI (`cargo deny check advisories`, offline) was made for every crate the lock names, and every
/// advisory `deny.toml` accepts is one the snapshot holds, with a reason.
#[test]
fn the_advisory_snapshot_covers_every_locked_crate() {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let checked =
        std::fs::read_to_string(root().join("security/advisory-db/checked-crates.txt")).unwrap();
    let checked: std::collections::BTreeSet<&str> = checked.lines().collect();
    let missing: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|l| l.trim_end_matches('"'))
        .filter(|name| !checked.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "Cargo.lock names crates the advisory snapshot was not made for: {missing:?}; \
         run scripts/advisories --refresh DIR"
    );
    let snapshot = std::fs::read_to_string(root().join("security/advisory-db/SNAPSHOT")).unwrap();
    assert!(snapshot.starts_with("commit ") && snapshot.contains("\ndate "));
    let deny: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("deny.toml")).unwrap()).unwrap();
    let crates = root().join("security/advisory-db/crates");
    let all: Vec<String> = std::fs::read_dir(&crates)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(all.len() > 50, "{} advisories", all.len());
    for ignored in deny["advisories"]["ignore"].as_array().unwrap() {
        let id = ignored["id"].as_str().unwrap();
        assert!(
            ignored["reason"].as_str().is_some_and(|r| r.len() > 20),
            "{id}: accepted without a reason"
        );
        assert!(
            all.iter().any(|f| f == &format!("{id}.md")),
            "{id}: accepted, but not in the snapshot"
        );
    }
}
