//! PostgreSQL: `migrate` as the owner, `serve` as the application role, and refusal of roles
//! that could bypass row-level security. Needs the cluster of `scripts/test`.

use std::path::Path;

use bulwark_testkit::pg::{self, PgTestDb};

use crate::harness::{Finished, get, run, runtime, serve_expecting_exit, serve_on};

fn fresh() -> PgTestDb {
    runtime().block_on(pg::fresh_database())
}

fn migrate(cwd: &Path, owner_url: &str, app_role: &str) -> Finished {
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
