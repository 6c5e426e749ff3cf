//! The evidence page and `GET /v1/evidence`, on both engines: owners, admins and auditors of
//! the operator org read the live checks, nobody else does; every doctor check names a claim of
//! `security/controls.toml` that lists it and every check a claim lists exists; every ASVS id
//! and test a claim names exists; `docs/security.md` is the generated project page.

use std::path::Path;

use bulwark_testkit::{Backend, TestApp, on_both_engines, spawn_app};
use bulwark_types::{OrgId, Role};
use serde_json::Value;

const PASSWORD: &str = "a long enough password";

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

async fn ready(backend: Backend) -> (TestApp, OrgId) {
    let app = spawn_app(backend).await;
    let setup = app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let org: OrgId = setup["org"]["id"].as_str().unwrap().parse().unwrap();
    (app, org)
}

async fn only_operator_owners_admins_and_auditors_read_the_evidence(backend: Backend) {
    let (app, org) = ready(backend).await;
    for (email, role) in [
        ("admin@acme.test", Role::Admin),
        ("auditor@acme.test", Role::Auditor),
        ("member@acme.test", Role::Member),
    ] {
        app.add_member(org, email, PASSWORD, role).await;
    }
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    let report = json_of(app.get_as(&owner, "/v1/evidence").await, 200).await;
    assert_eq!(report["bulwark_doctor"], 1);
    let engine = if backend == Backend::Postgres {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(report["engine"], engine);
    let ids: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "tls.posture",
        "audit.verify",
        "vault.provider",
        "clock.sanity",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let pg = ["postgres.role", "postgres.rls", "postgres.grants"];
    for id in pg {
        assert_eq!(ids.contains(&id), backend == Backend::Postgres, "{id}");
    }
    let check = |r: &Value, id: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        check(&report, "audit.verify")["status"],
        "pass",
        "{report:#}"
    );
    if backend == Backend::Postgres {
        // The test's application role is what serve uses in production: nothing to report.
        for id in pg {
            assert_eq!(check(&report, id)["status"], "pass", "{report:#}");
        }
    }
    // The console's page shows the same checks, from the same handler.
    let html = app.get_as(&owner, "/evidence").await;
    assert_eq!(html.status(), 200);
    let html = html.text().await.unwrap();
    assert!(
        html.contains("<h1>Security checks</h1>") && html.contains("<code>audit.verify</code>")
    );
    assert!(
        !html.contains("Development mode"),
        "production shows no banner"
    );
    let member = app.login("member@acme.test", PASSWORD).await;
    assert_eq!(app.get_as(&member, "/evidence").await.status(), 403);
    for (email, status) in [
        ("admin@acme.test", 200),
        ("auditor@acme.test", 200),
        ("member@acme.test", 403),
    ] {
        let who = app.login(email, PASSWORD).await;
        let body = json_of(app.get_as(&who, "/v1/evidence").await, status).await;
        if status == 403 {
            assert_eq!(body["code"], "forbidden");
            assert!(body.get("checks").is_none());
        }
    }
    // Another org's owner learns nothing; nor does a caller without a session.
    let stranger = app.create_user("x@other.test", PASSWORD).await;
    app.create_org("other", stranger).await;
    let other = app.login_mfa("x@other.test", PASSWORD).await;
    let res = app.get_as(&other, "/v1/evidence").await;
    assert!(
        matches!(res.status().as_u16(), 403 | 404),
        "{}",
        res.status()
    );
    let res = app
        .client
        .get(app.url("/v1/evidence"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

on_both_engines!(only_operator_owners_admins_and_auditors_read_the_evidence);

/// Development, chosen in the configuration, shows on `/readyz`, in the report and as a banner
/// on every console page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_shows_on_readyz_and_in_a_console_banner() {
    let app = bulwark_testkit::spawn_app_with(Backend::Sqlite, |c| {
        c.server.mode = Some(bulwark_server::config::Mode::Development);
    })
    .await;
    app.setup("Acme", "owner@acme.test", PASSWORD).await;
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["mode"], "development", "{ready}");
    let owner = app.login_mfa("owner@acme.test", PASSWORD).await;
    for page in ["/evidence", "/account", "/license"] {
        let html = app.get_as(&owner, page).await.text().await.unwrap();
        assert!(
            html.contains("Development mode: production gates are warnings here"),
            "{page}"
        );
    }
    let report = json_of(app.get_as(&owner, "/v1/evidence").await, 200).await;
    assert_eq!(report["mode"], "development");
}

/// Every check a report can hold (both engines, and the one reported when a deployment does
/// not open) names a claim that lists it, and every check a claim lists is one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_has_a_claim_and_every_claim_names_real_checks_asvs_ids_and_tests() {
    let claims = bulwark_server::evidence::claims().unwrap();
    let mut checks = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (app, _) = ready(backend).await;
        let report = bulwark_server::doctor::for_state(&app.state, false).await;
        checks.extend(report.checks);
    }
    checks.push(bulwark_server::doctor::Check::unopened("x"));
    for c in &checks {
        let claim = claims
            .iter()
            .find(|cl| cl.id == c.control)
            .unwrap_or_else(|| {
                panic!(
                    "check {} names claim {}, which does not exist",
                    c.id, c.control
                )
            });
        assert!(
            claim.checks.contains(&c.id),
            "claim {} does not list its check {}",
            claim.id,
            c.id
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let asvs: toml::Table = std::fs::read_to_string(root.join("security/asvs.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut sources = String::new();
    crate::asvs::rust_sources(&root.join("crates"), &mut sources);
    for claim in &claims {
        assert!(
            bulwark_server::evidence::SECTIONS.contains(&claim.section.as_str()),
            "{}: section {}",
            claim.id,
            claim.section
        );
        for id in &claim.checks {
            assert!(
                checks.iter().any(|c| &c.id == id),
                "claim {} lists check {id}, which no report has",
                claim.id
            );
        }
        for id in &claim.asvs {
            assert!(
                asvs.contains_key(id),
                "claim {}: {id} is not in asvs.toml",
                claim.id
            );
        }
        for t in &claim.tests {
            let name = t.rsplit([':', ' ']).next().unwrap();
            assert!(
                sources.contains(&format!("fn {name}("))
                    || sources.contains(&format!("    {name},")),
                "claim {}: test {t} does not exist",
                claim.id
            );
        }
    }
}

/// `docs/security.md` is the page generated from the claims and the ASVS map, with no
/// deployment; `BULWARK_TEST_BLESS=1` rewrites it.
#[test]
fn docs_security_md_is_the_generated_project_page() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/security.md");
    let page = bulwark_server::evidence::project_page().unwrap();
    if std::env::var_os("BULWARK_TEST_BLESS").is_some() {
        std::fs::write(&path, &page).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == page,
        "docs/security.md is stale: run `BULWARK_TEST_BLESS=1 cargo test -p bulwark-server --test it evidence`"
    );
    for section in bulwark_server::evidence::SECTIONS {
        assert!(page.contains(&format!("## {section}\n")), "{section}");
    }
}
