//! Integration tests of the SQLite store: the shared conformance suite on a fresh file each.
#![expect(
    clippy::unwrap_used,
    reason = "integration tests: a failed step is a failed test"
)]

use std::sync::Arc;

use bulwark_store_conformance::TestStore;
use bulwark_store_sqlite::SqliteStore;

async fn make_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bulwark.db"), 4)
        .await
        .unwrap();
    TestStore {
        store: Arc::new(store),
        guard: Box::new(dir),
    }
}

bulwark_store_conformance::conformance_suite!(make_store);

#[tokio::test]
async fn the_database_runs_in_wal_mode_with_full_sync_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bulwark.db"), 1)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous = FULL");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_remigrate() {
    use bulwark_core::ports::Store as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulwark.db");
    let store = SqliteStore::open(&path, 1).await.unwrap();
    let seed = bulwark_crypto::Seed::generate().unwrap();
    let first = bulwark_core::setup::bootstrap(&store, &seed, &bulwark_types::SystemClock)
        .await
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path, 1).await.unwrap();
    assert!(store.health().await.migrations_current);
    let again = bulwark_core::setup::bootstrap(&store, &seed, &bulwark_types::SystemClock)
        .await
        .unwrap();
    assert_eq!(first.deployment_id, again.deployment_id);
}

#[tokio::test]
async fn audit_events_cannot_be_updated_or_deleted() {
    use bulwark_core::ports::Store as _;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bulwark.db"), 2)
        .await
        .unwrap();
    let (org, owner) = bulwark_store_conformance::extra_org(&store, "alpha", "o@alpha.test").await;
    let mut tx = store.org(org.id).await.unwrap();
    let draft = bulwark_store_conformance::member_removed(owner);
    bulwark_core::audit::append(
        &mut *tx,
        bulwark_core::audit::Log::Org(org.id),
        draft,
        &bulwark_types::SystemClock,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for sql in [
        "UPDATE audit_events SET action = 'member.added'",
        "DELETE FROM audit_events",
        "UPDATE audit_events SET body = x'00'",
        "UPDATE audit_events SET body = NULL",
    ] {
        let err = sqlx::query(sql)
            .execute(store.pool())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// The prune gate lets through only the clearing of a body older than its org's retention, by
/// the database's own clock (migration 0017), as `bulwark_audit_prune()` does on PostgreSQL: the
/// review's attack (gate opened, a fresh body blanked, gate closed, in one transaction) is
/// refused by the database itself.
#[tokio::test]
async fn with_the_prune_gate_open_only_clearing_a_body_older_than_the_retention_is_allowed() {
    use bulwark_core::ports::Store as _;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bulwark.db"), 1)
        .await
        .unwrap();
    let (org, owner) = bulwark_store_conformance::extra_org(&store, "alpha", "o@alpha.test").await;
    let mut tx = store.org(org.id).await.unwrap();
    let old = bulwark_store_conformance::PastClock(time::Duration::days(40));
    for clock in [
        &old as &dyn bulwark_types::Clock,
        &bulwark_types::SystemClock,
    ] {
        let draft = bulwark_store_conformance::member_removed(owner);
        bulwark_core::audit::append(
            &mut *tx,
            bulwark_core::audit::Log::Org(org.id),
            draft,
            clock,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    const OLD: &str = "WHERE julianday(time) < julianday('now') - 35";
    const FRESH: &str =
        "WHERE action = 'member.removed' AND julianday(time) > julianday('now') - 1";
    let mut conn = store.pool().acquire().await.unwrap();
    for (change, rows) in [
        ("body = NULL, action = 'member.added'", OLD),
        ("body = NULL, leaf_hash = zeroblob(32)", OLD),
        ("body = x'00'", OLD),
        // The org keeps everything (no retention): not even the 40-day-old body may go.
        ("body = NULL", OLD),
    ] {
        let err = gated(
            &mut conn,
            &format!("UPDATE audit_events SET {change} {rows}"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{change}: {err}");
    }
    let err = gated(&mut conn, "DELETE FROM audit_events")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    sqlx::query("UPDATE orgs SET audit_retention_days = 30")
        .execute(&mut *conn)
        .await
        .unwrap();
    // With a 30-day retention, the fresh body is refused and the 40-day-old one may go.
    let err = gated(
        &mut conn,
        &format!("UPDATE audit_events SET body = NULL {FRESH}"),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("older than its org's retention"),
        "{err}"
    );
    gated(
        &mut conn,
        &format!("UPDATE audit_events SET body = NULL {OLD}"),
    )
    .await
    .unwrap();
    let cleared: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE body IS NULL")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(cleared, 1);
    // Once cleared, a body cannot come back.
    let err = gated(
        &mut conn,
        &format!("UPDATE audit_events SET body = x'7b7d' {OLD}"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

/// Runs `sql` in one transaction with the prune gate open, closing it before the commit.
async fn gated(conn: &mut sqlx::SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("INSERT INTO audit_prune_gate (open) VALUES (1)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM audit_prune_gate")
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Addresses stored by releases before email normalisation are re-keyed at the next open, or
/// kept as stored when this release refuses them or they are another account's lookalike.
#[tokio::test]
async fn opening_brings_stored_addresses_into_normal_form() {
    use bulwark_store_conformance::legacy::{LEGACY_USERS, legacy_addresses_are_rekeyed_or_kept};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulwark.db");
    let store = SqliteStore::open(&path, 1).await.unwrap();
    let ids = [(); 5].map(|()| bulwark_types::UserId::new());
    for (id, (email, key)) in ids.iter().zip(LEGACY_USERS) {
        sqlx::query(
            "INSERT INTO users (id, email, email_key, password_hash, created_at) \
             VALUES ($1, $2, $3, 'x', $4)",
        )
        .bind(id.as_uuid())
        .bind(email)
        .bind(key)
        .bind(time::OffsetDateTime::now_utc())
        .execute(store.pool())
        .await
        .unwrap();
    }
    drop(store);
    let store = SqliteStore::open(&path, 1).await.unwrap();
    legacy_addresses_are_rekeyed_or_kept(&store, &ids).await;
    drop(store);
    // Once done, a second open changes nothing.
    let store = SqliteStore::open(&path, 1).await.unwrap();
    legacy_addresses_are_rekeyed_or_kept(&store, &ids).await;
}

/// The backup catalog (`bulwark_core::backup::TABLES`) is this schema: every table, every
/// column in order, each kind stored as SQLite stores it. A migration that adds a table or a
/// column fails here until the catalog lists it, so no backup silently leaves data behind.
#[tokio::test]
async fn the_backup_catalog_is_the_schema() {
    use bulwark_core::backup::{ENGINE_STATE, Kind, SCHEMA_VERSION, TABLES};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bulwark.db"), 1)
        .await
        .unwrap();
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    listed.extend(
        ENGINE_STATE
            .iter()
            .filter(|(_, engine, _)| *engine == "sqlite")
            .map(|(t, _, _)| (*t).to_owned()),
    );
    tables.sort();
    listed.sort();
    assert_eq!(
        listed, tables,
        "the catalog and the engine's own state list exactly the schema's tables"
    );
    for table in TABLES {
        let columns: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name, type FROM pragma_table_info('{}') ORDER BY cid",
            table.name
        )))
        .fetch_all(store.pool())
        .await
        .unwrap();
        let expected: Vec<(String, String)> = table
            .columns
            .iter()
            .map(|(c, k)| {
                let declared = match k {
                    Kind::Int | Kind::Bool => "INTEGER",
                    Kind::Float => "REAL",
                    Kind::Text | Kind::Time => "TEXT",
                    Kind::Bytes | Kind::Uuid => "BLOB",
                };
                ((*c).to_owned(), declared.to_owned())
            })
            .collect();
        // By name, not position: migration 0024 rebuilt `orgs.mfa_required` (SQLite cannot
        // widen a CHECK in place), which moved it last; every statement names its columns.
        let (mut columns, mut expected) = (columns, expected);
        columns.sort();
        expected.sort();
        assert_eq!(columns, expected, "table `{}`", table.name);
    }
    let version: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}
