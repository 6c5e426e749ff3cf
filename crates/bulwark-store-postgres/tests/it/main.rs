//! Integration tests of the PostgreSQL store: the shared conformance suite, then attacks on
//! tenant isolation and on the role rules, each on a fresh uuid-named database of the throwaway
//! cluster that `scripts/test` starts.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::sync::Arc;

use bulwark_core::ports::Store as _;
use bulwark_store_conformance::TestStore;
use bulwark_store_postgres::{PgSetupError, PgStore, migrate, unprotected_tables};
use bulwark_testkit::pg::{self, PgTestDb};
use bulwark_types::{Clock as _, OrgId, Role, SystemClock, UserId};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

mod backup;
mod docs;

/// A fresh database, migrated as the owner, and the store connected as the application role.
async fn migrated() -> (PgTestDb, PgStore) {
    let db = pg::fresh_database().await;
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    let store = PgStore::connect(&db.app_url, 4).await.unwrap();
    (db, store)
}

async fn make_store() -> TestStore {
    let (db, store) = migrated().await;
    TestStore {
        store: Arc::new(store),
        guard: Box::new(db),
    }
}

bulwark_store_conformance::conformance_suite!(make_store);

/// Creates an org with an owner through the store's system port.
async fn org_with_owner(store: &PgStore, slug: &str) -> (OrgId, UserId) {
    let (org, owner) =
        bulwark_store_conformance::extra_org(store, slug, &format!("owner@{slug}.test")).await;
    (org.id, owner)
}

/// A raw pool as the application role, for queries the store would never write.
async fn app_pool(db: &PgTestDb, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .connect(&db.app_url)
        .await
        .unwrap()
}

async fn bind_org(conn: &mut PgConnection, org: Option<OrgId>) {
    if let Some(org) = org {
        sqlx::query("SELECT set_config('app.current_org_id', $1, true)")
            .bind(org.as_uuid().to_string())
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

/// `SELECT org_id FROM memberships` and `SELECT id FROM orgs`, unfiltered, in a transaction bound
/// to `org` (or to none).
async fn unfiltered_reads(pool: &PgPool, org: Option<OrgId>) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut tx = pool.begin().await.unwrap();
    bind_org(&mut tx, org).await;
    let memberships: Vec<Uuid> = sqlx::query_scalar("SELECT org_id FROM memberships")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM orgs")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    (memberships, orgs)
}

fn sqlstate(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => panic!("expected a database error, got {other:?}"),
    }
}

// ---- tenant isolation -------------------------------------------------------------------------

#[tokio::test]
async fn rls_hides_other_tenants_when_a_query_forgets_its_org_filter() {
    let (db, store) = migrated().await;
    let (a, _) = org_with_owner(&store, "alpha").await;
    let (b, b_owner) = org_with_owner(&store, "bravo").await;
    // A second row in A, held by B's owner, so "only A" is not "only one row".
    let mut ta = store.org(a).await.unwrap();
    ta.add_member(b_owner, Role::Member, SystemClock.now())
        .await
        .unwrap();
    ta.commit().await.unwrap();
    let pool = app_pool(&db, 2).await;
    let (memberships, orgs) = unfiltered_reads(&pool, Some(a)).await;
    assert_eq!(memberships, vec![a.as_uuid(), a.as_uuid()]);
    assert_eq!(orgs, vec![a.as_uuid()]);
    let (memberships, orgs) = unfiltered_reads(&pool, Some(b)).await;
    assert_eq!(memberships, vec![b.as_uuid()]);
    assert_eq!(orgs, vec![b.as_uuid()]);
}

#[tokio::test]
async fn rls_shows_no_tenant_rows_when_no_org_is_set() {
    let (db, store) = migrated().await;
    org_with_owner(&store, "alpha").await;
    org_with_owner(&store, "bravo").await;
    let pool = app_pool(&db, 1).await;
    let (memberships, orgs) = unfiltered_reads(&pool, None).await;
    assert!(
        memberships.is_empty() && orgs.is_empty(),
        "{memberships:?} {orgs:?}"
    );
    // Outside any explicit transaction, too.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_pooled_connection_carries_no_org_into_the_next_transaction() {
    let (db, store) = migrated().await;
    let (a, _) = org_with_owner(&store, "alpha").await;
    let pool = app_pool(&db, 1).await;
    let mut tx1 = pool.begin().await.unwrap();
    let pid1: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx1)
        .await
        .unwrap();
    bind_org(&mut tx1, Some(a)).await;
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships")
        .fetch_one(&mut *tx1)
        .await
        .unwrap();
    assert_eq!(seen, 1, "bound to A, the first transaction sees A's row");
    tx1.commit().await.unwrap();

    let mut tx2 = pool.begin().await.unwrap();
    let pid2: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx2)
        .await
        .unwrap();
    assert_eq!(
        pid1, pid2,
        "the pool of one must hand back the same connection"
    );
    let setting: Option<String> =
        sqlx::query_scalar("SELECT current_setting('app.current_org_id', true)")
            .fetch_one(&mut *tx2)
            .await
            .unwrap();
    assert!(
        setting.as_deref().unwrap_or("").is_empty(),
        "org id leaked into the next transaction: {setting:?}"
    );
    let memberships: Vec<Uuid> = sqlx::query_scalar("SELECT org_id FROM memberships")
        .fetch_all(&mut *tx2)
        .await
        .unwrap();
    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM orgs")
        .fetch_all(&mut *tx2)
        .await
        .unwrap();
    assert!(memberships.is_empty() && orgs.is_empty());
}

#[tokio::test]
async fn a_store_org_transaction_leaves_no_org_on_its_connection() {
    let db = pg::fresh_database().await;
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    let store = PgStore::connect(&db.app_url, 1).await.unwrap();
    let (a, _) = org_with_owner(&store, "alpha").await;
    let (b, _) = org_with_owner(&store, "bravo").await;
    let mut ta = store.org(a).await.unwrap();
    assert_eq!(ta.members().await.unwrap().len(), 1);
    ta.commit().await.unwrap();
    // The only connection now serves B: it must see B and nothing of A.
    let mut tb = store.org(b).await.unwrap();
    assert_eq!(tb.get().await.unwrap().id, b);
    drop(tb);
    let mut t_none = store.org(OrgId::new()).await.unwrap();
    assert!(t_none.members().await.unwrap().is_empty());
}

#[tokio::test]
async fn rls_refuses_writes_into_another_tenant() {
    let (db, store) = migrated().await;
    let (a, a_owner) = org_with_owner(&store, "alpha").await;
    let (b, b_owner) = org_with_owner(&store, "bravo").await;
    let pool = app_pool(&db, 2).await;
    let now = time::OffsetDateTime::now_utc();

    // INSERT a row for B while bound to A: WITH CHECK refuses it.
    let mut tx = pool.begin().await.unwrap();
    bind_org(&mut tx, Some(a)).await;
    let err = sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
    )
    .bind(b.as_uuid())
    .bind(a_owner.as_uuid())
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    drop(tx);

    // UPDATE and DELETE of B's rows find nothing to touch.
    let mut tx = pool.begin().await.unwrap();
    bind_org(&mut tx, Some(a)).await;
    for sql in [
        "UPDATE memberships SET role = 'auditor' WHERE org_id = $1",
        "DELETE FROM memberships WHERE org_id = $1",
        "UPDATE orgs SET name = 'pwned' WHERE id = $1",
    ] {
        let done = sqlx::query(sql)
            .bind(b.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 0, "{sql}");
    }
    // Moving one of A's rows into B is refused too.
    let err = sqlx::query("UPDATE memberships SET org_id = $1 WHERE org_id = $2")
        .bind(b.as_uuid())
        .bind(a.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    drop(tx);

    let mut tb = store.org(b).await.unwrap();
    assert_eq!(tb.get().await.unwrap().name.as_str(), "bravo");
    let members = tb.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].user_id, members[0].role),
        (b_owner, Role::Owner)
    );
}

#[tokio::test]
async fn the_app_role_cannot_turn_row_security_off() {
    let (db, store) = migrated().await;
    let (a, _) = org_with_owner(&store, "alpha").await;
    org_with_owner(&store, "bravo").await;
    let pool = app_pool(&db, 1).await;
    for org in [Some(a), None] {
        let mut tx = pool.begin().await.unwrap();
        bind_org(&mut tx, org).await;
        sqlx::query("SET LOCAL row_security = off")
            .execute(&mut *tx)
            .await
            .unwrap();
        // With row_security off, a query that RLS would filter is refused rather than unfiltered.
        match sqlx::query_scalar::<_, Uuid>("SELECT org_id FROM memberships")
            .fetch_all(&mut *tx)
            .await
        {
            Ok(rows) => assert!(
                rows.iter().all(|r| Some(*r) == org.map(|o| o.as_uuid())),
                "{rows:?}"
            ),
            Err(e) => assert_eq!(sqlstate(&e), "42501", "{e}"),
        }
    }
}

#[tokio::test]
async fn the_app_role_cannot_disable_rls_truncate_or_become_the_owner() {
    let (db, store) = migrated().await;
    org_with_owner(&store, "alpha").await;
    let mut conn = PgConnection::connect(&db.app_url).await.unwrap();
    for sql in [
        "ALTER TABLE memberships DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE orgs NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY memberships_current_org ON memberships",
        "TRUNCATE memberships",
        "SET ROLE bulwark_owner",
        "CREATE TABLE sneaky (org_id uuid)",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }
}

/// The privileges themselves are listed in `docs/postgres.md`, generated from the catalog and
/// checked by `docs::postgres_md_tables_match_the_catalog_after_migrate`; these are the rules any
/// list must keep.
#[tokio::test]
async fn the_app_role_holds_no_privilege_that_bypasses_rls_or_rewrites_history() {
    let (db, _store) = migrated().await;
    let mut conn = PgConnection::connect(&db.owner_url).await.unwrap();
    let held = |privileges: &'static str, tables: &'static str| {
        format!(
            "SELECT c.relname::text || ' ' || p FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(ARRAY[{privileges}]) p \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') {tables} \
             AND has_table_privilege($1::name, c.oid, p) ORDER BY 1"
        )
    };
    for (what, sql) in [
        // TRUNCATE ignores row-level security; REFERENCES and TRIGGER are never needed.
        (
            "RLS-bypassing",
            held("'TRUNCATE', 'REFERENCES', 'TRIGGER'", ""),
        ),
        (
            "history-rewriting",
            held(
                "'UPDATE', 'DELETE'",
                "AND c.relname IN ('audit_events', 'audit_checkpoints', 'license_activations')",
            ),
        ),
    ] {
        let found: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(&db.app_role)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert!(found.is_empty(), "{what} privileges granted: {found:?}");
    }
    let (create, sequences): (bool, Vec<String>) = sqlx::query_as(
        "SELECT has_schema_privilege($1::name, 'public', 'CREATE'), \
                ARRAY(SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE n.nspname = 'public' AND c.relkind = 'S' \
                      AND (has_sequence_privilege($1::name, c.oid, 'UPDATE') OR has_sequence_privilege($1::name, c.oid, 'USAGE')))",
    )
    .bind(&db.app_role)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(
        !create,
        "the application role may create objects in schema public"
    );
    assert!(
        sequences.is_empty(),
        "sequences it may advance: {sequences:?}"
    );
    // Owner-run functions: never callable by PUBLIC, and immune to a search_path planted by the
    // caller.
    let unsafe_definers: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'public' AND p.prosecdef \
         AND (has_function_privilege('public'::name, p.oid, 'EXECUTE') \
              OR NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')) \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(unsafe_definers.is_empty(), "{unsafe_definers:?}");
}

// ---- the schema invariant ---------------------------------------------------------------------

#[tokio::test]
async fn every_tenant_table_has_forced_rls_and_a_policy() {
    let (db, _store) = migrated().await;
    let mut conn = PgConnection::connect(&db.owner_url).await.unwrap();
    assert_eq!(
        unprotected_tables(&mut conn).await.unwrap(),
        Vec::<String>::new()
    );
    // And the check is not vacuous: the tenant tables are there and protected.
    let protected: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity AND c.relforcerowsecurity ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        protected,
        [
            "api_keys",
            "audit_checkpoints",
            "audit_events",
            "audit_heads",
            "authz_policy_sets",
            "credentials",
            "invitations",
            "memberships",
            "org_keys",
            "orgs",
            "scim_group_members",
            "scim_groups",
            "scim_users",
            "sso_connections",
            "sso_domains",
            "sso_identities",
            "sso_settings",
            "team_members",
            "teams",
            "webhook_attempts",
            "webhook_deliveries",
            "webhook_endpoints",
            "webhook_messages"
        ]
    );
}

#[tokio::test]
async fn the_catalog_check_reports_a_table_added_without_rls() {
    let (db, _store) = migrated().await;
    let mut owner = PgConnection::connect(&db.owner_url).await.unwrap();
    for sql in [
        "CREATE TABLE scratch_plain (org_id uuid)",
        "CREATE TABLE scratch_not_forced (org_id uuid)",
        "ALTER TABLE scratch_not_forced ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY p ON scratch_not_forced USING (true)",
        "CREATE TABLE scratch_no_policy (org_id uuid)",
        "ALTER TABLE scratch_no_policy ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE scratch_no_policy FORCE ROW LEVEL SECURITY",
    ] {
        sqlx::query(sql).execute(&mut owner).await.unwrap();
    }
    assert_eq!(
        unprotected_tables(&mut owner).await.unwrap(),
        ["scratch_no_policy", "scratch_not_forced", "scratch_plain"]
    );
    // `migrate` refuses to grant anything on such a schema.
    let err = migrate(&db.owner_url, &db.app_role).await.unwrap_err();
    assert!(
        matches!(&err, PgSetupError::UnprotectedTables(t) if t.len() == 3),
        "{err:?}"
    );
    assert!(err.to_string().contains("scratch_plain"), "{err}");
}

// ---- who may connect --------------------------------------------------------------------------

#[tokio::test]
async fn connect_refuses_the_superuser() {
    let (db, _store) = migrated().await;
    let err = PgStore::connect(&db.superuser_url, 1).await.err().unwrap();
    assert!(matches!(err, PgSetupError::Superuser(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("is a superuser: serve must run as an application role"),
        "{err}"
    );
}

#[tokio::test]
async fn connect_refuses_the_table_owner() {
    let (db, _store) = migrated().await;
    let err = PgStore::connect(&db.owner_url, 1).await.err().unwrap();
    assert!(
        matches!(&err, PgSetupError::OwnsTables { role, .. } if role == "bulwark_owner"),
        "{err:?}"
    );
}

#[tokio::test]
async fn connect_refuses_a_bypassrls_role() {
    let (db, _store) = migrated().await;
    let (role, url) = pg::create_role(&db, "bw_bypass", "NOSUPERUSER BYPASSRLS").await;
    pg::superuser_exec(&db, &format!("GRANT USAGE ON SCHEMA public TO {role}")).await;
    let err = PgStore::connect(&url, 1).await.err().unwrap();
    assert!(
        matches!(&err, PgSetupError::BypassRls(r) if *r == role),
        "{err:?}"
    );
    assert!(err.to_string().contains("has BYPASSRLS"), "{err}");
}

#[tokio::test]
async fn connect_refuses_a_member_of_the_table_owner() {
    let (db, _store) = migrated().await;
    let (role, url) = pg::create_role(&db, "bw_member", "NOSUPERUSER NOBYPASSRLS NOINHERIT").await;
    pg::superuser_exec(&db, &format!("GRANT bulwark_owner TO {role}")).await;
    let err = PgStore::connect(&url, 1).await.err().unwrap();
    assert!(
        matches!(&err, PgSetupError::MemberOfOwner { owner, .. } if owner == "bulwark_owner"),
        "{err:?}"
    );
}

#[tokio::test]
async fn connect_refuses_a_member_of_a_bypassrls_role() {
    let (db, _store) = migrated().await;
    let (privileged, _) = pg::create_role(&db, "bw_priv", "NOSUPERUSER BYPASSRLS").await;
    let (role, url) = pg::create_role(&db, "bw_via", "NOSUPERUSER NOBYPASSRLS").await;
    pg::superuser_exec(&db, &format!("GRANT {privileged} TO {role}")).await;
    let err = PgStore::connect(&url, 1).await.err().unwrap();
    assert!(
        matches!(&err, PgSetupError::MemberOfPrivileged { other, .. } if *other == privileged),
        "{err:?}"
    );
}

#[tokio::test]
async fn connect_reports_an_unreachable_database_without_echoing_the_url() {
    let err = PgStore::connect("postgres://bulwark_app:s3cret@127.0.0.1:1/nowhere", 1)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, PgSetupError::Connect(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

// ---- migrate ----------------------------------------------------------------------------------

#[tokio::test]
async fn migrate_is_idempotent() {
    let (db, store) = migrated().await;
    let (a, _) = org_with_owner(&store, "alpha").await;
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    assert!(store.health().await.migrations_current);
    let mut ta = store.org(a).await.unwrap();
    assert_eq!(
        ta.members().await.unwrap().len(),
        1,
        "data survives a second migrate"
    );
}

/// Addresses stored by releases before email normalisation are re-keyed by the next `migrate`,
/// or kept as stored when this release refuses them or they are another account's lookalike.
#[tokio::test]
async fn migrate_brings_stored_addresses_into_normal_form() {
    use bulwark_store_conformance::legacy::{LEGACY_USERS, legacy_addresses_are_rekeyed_or_kept};
    let (db, store) = migrated().await;
    let ids = [(); 5].map(|()| UserId::new());
    let mut owner = PgConnection::connect(&db.owner_url).await.unwrap();
    for (id, (email, key)) in ids.iter().zip(LEGACY_USERS) {
        sqlx::query(
            "INSERT INTO users (id, email, email_key, password_hash, created_at) \
             VALUES ($1, $2, $3, 'x', now())",
        )
        .bind(id.as_uuid())
        .bind(email)
        .bind(key)
        .execute(&mut owner)
        .await
        .unwrap();
    }
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    legacy_addresses_are_rekeyed_or_kept(&store, &ids).await;
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    legacy_addresses_are_rekeyed_or_kept(&store, &ids).await;
}

#[tokio::test]
async fn migrate_revokes_privileges_granted_outside_it() {
    let (db, _store) = migrated().await;
    let mut owner = PgConnection::connect(&db.owner_url).await.unwrap();
    sqlx::query("GRANT TRUNCATE, DELETE ON memberships, orgs, users TO bulwark_app")
        .execute(&mut owner)
        .await
        .unwrap();
    migrate(&db.owner_url, &db.app_role).await.unwrap();
    let truncate: bool = sqlx::query_scalar(
        "SELECT has_table_privilege('bulwark_app', 'public.memberships', 'TRUNCATE')",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let delete_users: bool =
        sqlx::query_scalar("SELECT has_table_privilege('bulwark_app', 'public.users', 'DELETE')")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(!truncate && !delete_users);
}

#[tokio::test]
async fn migrate_refuses_a_superuser_app_role() {
    let db = pg::fresh_database().await;
    let err = migrate(&db.owner_url, "postgres").await.unwrap_err();
    assert!(matches!(err, PgSetupError::Superuser(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "role `postgres` is a superuser: serve must run as an application role without SUPERUSER or BYPASSRLS"
    );
    assert_no_tables(&db).await;
}

#[tokio::test]
async fn migrate_refuses_a_bypassrls_app_role() {
    let db = pg::fresh_database().await;
    let (role, _) = pg::create_role(&db, "bw_bypass", "NOSUPERUSER BYPASSRLS").await;
    let err = migrate(&db.owner_url, &role).await.unwrap_err();
    assert!(matches!(err, PgSetupError::BypassRls(_)), "{err:?}");
    assert_no_tables(&db).await;
}

#[tokio::test]
async fn migrate_refuses_a_missing_role_and_says_how_to_create_it() {
    let db = pg::fresh_database().await;
    let err = migrate(&db.owner_url, "no_such_role").await.unwrap_err();
    assert!(matches!(err, PgSetupError::RoleMissing(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("role `no_such_role` does not exist"),
        "{msg}"
    );
    assert!(
        msg.contains("CREATE ROLE \"no_such_role\" LOGIN") && msg.contains("NOBYPASSRLS"),
        "{msg}"
    );
    assert_no_tables(&db).await;
}

#[tokio::test]
async fn migrate_refuses_the_owner_or_a_member_of_it_as_app_role() {
    let db = pg::fresh_database().await;
    let err = migrate(&db.owner_url, "bulwark_owner").await.unwrap_err();
    assert!(matches!(err, PgSetupError::IsOwner(_)), "{err:?}");
    let (role, _) = pg::create_role(&db, "bw_member", "NOSUPERUSER").await;
    pg::superuser_exec(&db, &format!("GRANT bulwark_owner TO {role}")).await;
    let err = migrate(&db.owner_url, &role).await.unwrap_err();
    assert!(matches!(err, PgSetupError::MemberOfOwner { .. }), "{err:?}");
    assert_no_tables(&db).await;
}

async fn assert_no_tables(db: &PgTestDb) {
    let mut conn = PgConnection::connect(&db.owner_url).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 0, "a refused migrate must leave the database untouched");
}

// ---- health -----------------------------------------------------------------------------------

#[tokio::test]
async fn health_reports_an_unknown_applied_migration() {
    let (db, store) = migrated().await;
    assert_eq!(store.engine(), "postgres");
    let mut owner = PgConnection::connect(&db.owner_url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let h = store.health().await;
    assert!(h.reachable && !h.migrations_current, "{h:?}");
}

#[tokio::test]
async fn connect_refuses_an_unmigrated_database() {
    let db = pg::fresh_database().await;
    let err = PgStore::connect(&db.app_url, 1)
        .await
        .err()
        .expect("an unmigrated database is refused");
    assert!(matches!(err, PgSetupError::NotMigrated), "{err}");
    assert!(err.to_string().contains("bulwark migrate"), "{err}");
}

#[tokio::test]
async fn audit_events_are_append_only_for_the_app_role_and_the_owner() {
    let (db, store) = migrated().await;
    let (org, owner) = org_with_owner(&store, "alpha").await;
    let mut tx = store.org(org).await.unwrap();
    let draft = bulwark_store_conformance::member_removed(owner);
    bulwark_core::audit::append(
        &mut *tx,
        bulwark_core::audit::Log::Org(org),
        draft,
        &SystemClock,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The application role holds no UPDATE, DELETE or TRUNCATE grant on the events.
    let mut app = PgConnection::connect(&db.app_url).await.unwrap();
    let scope = format!(
        "SELECT set_config('app.current_org_id', '{}', false)",
        org.as_uuid()
    );
    sqlx::query(sqlx::AssertSqlSafe(scope))
        .execute(&mut app)
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let err = sqlx::query(sql)
            .execute(&mut app)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    // Even the owner, who could grant itself anything, is stopped by the trigger.
    let mut owner_conn = PgConnection::connect(&db.owner_url).await.unwrap();
    let scope = format!(
        "SELECT set_config('app.current_org_id', '{}', false)",
        org.as_uuid()
    );
    sqlx::query(sqlx::AssertSqlSafe(scope))
        .execute(&mut owner_conn)
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let err = sqlx::query(sql)
            .execute(&mut owner_conn)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn pruning_is_only_the_owner_run_function_within_the_retention_floor() {
    let (db, store) = migrated().await;
    let (org, owner) = org_with_owner(&store, "alpha").await;
    let mut tx = store.org(org).await.unwrap();
    for clock in [
        &bulwark_store_conformance::PastClock(time::Duration::days(40))
            as &dyn bulwark_types::Clock,
        &SystemClock,
    ] {
        let draft = bulwark_store_conformance::member_removed(owner);
        bulwark_core::audit::append(&mut *tx, bulwark_core::audit::Log::Org(org), draft, clock)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut app = PgConnection::connect(&db.app_url).await.unwrap();
    bind_session_org(&mut app, org).await;
    // No org bound: the function refuses rather than guessing.
    let mut unbound = PgConnection::connect(&db.app_url).await.unwrap();
    let err = sqlx::query("SELECT bulwark_audit_prune()")
        .execute(&mut unbound)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not bound to an org"), "{err}");
    // The retention floor is a database rule, not only an application one.
    for days in [0, 1, 29] {
        let err = sqlx::query("UPDATE orgs SET audit_retention_days = $1")
            .bind(days)
            .execute(&mut app)
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err), "23514", "{days}");
    }
    // Setting the prune flag does not give the application role UPDATE.
    sqlx::query("SELECT set_config('bulwark.audit_prune', 'on', false)")
        .execute(&mut app)
        .await
        .unwrap();
    let err = sqlx::query("UPDATE audit_events SET body = NULL")
        .execute(&mut app)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    // Nor does it let the owner change anything but a body, or clear one by hand.
    let mut owner_conn = PgConnection::connect(&db.owner_url).await.unwrap();
    bind_session_org(&mut owner_conn, org).await;
    for (flag, sql) in [
        ("on", "UPDATE audit_events SET body = NULL, action = 'x'"),
        ("on", "UPDATE audit_events SET leaf_hash = NULL"),
        ("", "UPDATE audit_events SET body = NULL"),
    ] {
        sqlx::query("SELECT set_config('bulwark.audit_prune', $1, false)")
            .bind(flag)
            .execute(&mut owner_conn)
            .await
            .unwrap();
        let err = sqlx::query(sql).execute(&mut owner_conn).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only") || sqlstate(&err) == "23502",
            "{sql}: {err}"
        );
    }
    // Through the function, with a 30-day retention: the 40-day-old body goes, today's stays.
    sqlx::query("UPDATE orgs SET audit_retention_days = 30")
        .execute(&mut app)
        .await
        .unwrap();
    let pruned: i64 = sqlx::query_scalar("SELECT bulwark_audit_prune()")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let bodies: Vec<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT body FROM audit_events ORDER BY seq")
            .fetch_all(&mut app)
            .await
            .unwrap();
    assert_eq!(bodies.len(), 2);
    assert!(bodies[0].is_none() && bodies[1].is_some());
}

async fn bind_session_org(conn: &mut PgConnection, org: OrgId) {
    sqlx::query("SELECT set_config('app.current_org_id', $1, false)")
        .bind(org.as_uuid().to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_sweep_lists_org_ids_only_and_opens_no_rows_to_the_app_role() {
    use bulwark_core::ports::Store as _;
    let (db, store) = migrated().await;
    let (org, owner) = org_with_owner(&store, "alpha").await;
    let mut tx = store.org(org).await.unwrap();
    let draft = bulwark_store_conformance::member_removed(owner);
    bulwark_core::audit::append(
        &mut *tx,
        bulwark_core::audit::Log::Org(org),
        draft,
        &SystemClock,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.audit_unsigned_orgs().await.unwrap(), [org]);
    // The owner-only policies do not apply to the application role: with no org bound it still
    // sees no org's heads, checkpoints or events.
    let mut app = PgConnection::connect(&db.app_url).await.unwrap();
    for table in ["audit_heads", "audit_checkpoints", "audit_events"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE org_id IS NOT NULL"
        )))
        .fetch_one(&mut app)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table}");
    }
}
