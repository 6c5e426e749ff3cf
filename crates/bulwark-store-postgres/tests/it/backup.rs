//! The backup catalog against PostgreSQL's, and who may take a snapshot.

use bulwark_core::backup::{BackupError, ENGINE_STATE, Kind, SCHEMA_VERSION, TABLES};
use bulwark_store_postgres::backup_open;

use super::migrated;

/// The backup catalog (`bulwark_core::backup::TABLES`) is this schema: every table, every column
/// in order with its kind, the generated-id columns, and the migration version. A migration that
/// adds a table or a column fails here until the catalog lists it.
#[tokio::test]
async fn the_backup_catalog_is_the_schema() {
    let (db, _store) = migrated().await;
    let pool = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations' \
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    listed.extend(
        ENGINE_STATE
            .iter()
            .filter(|(_, engine, _)| *engine == "postgres")
            .map(|(t, _, _)| (*t).to_owned()),
    );
    tables.sort();
    listed.sort();
    assert_eq!(
        listed, tables,
        "the catalog and the engine's own state list exactly the schema's tables"
    );
    for table in TABLES {
        let columns: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_identity = 'YES' \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 \
             ORDER BY ordinal_position",
        )
        .bind(table.name)
        .fetch_all(&pool)
        .await
        .unwrap();
        let expected: Vec<(String, String, bool)> = table
            .columns
            .iter()
            .map(|(c, k)| {
                let ty = match k {
                    Kind::Int => "bigint|integer|smallint",
                    Kind::Bool => "boolean",
                    Kind::Float => "double precision",
                    Kind::Text => "text",
                    Kind::Bytes => "bytea",
                    Kind::Uuid => "uuid",
                    Kind::Time => "timestamp with time zone",
                };
                ((*c).to_owned(), ty.to_owned(), table.identity == Some(*c))
            })
            .collect();
        assert_eq!(columns.len(), expected.len(), "table `{}`", table.name);
        for ((name, ty, identity), (want, kinds, want_identity)) in columns.iter().zip(&expected) {
            assert_eq!(name, want, "table `{}`", table.name);
            assert!(
                kinds.split('|').any(|k| k == ty),
                "`{}.{name}` is {ty}, the catalog says {kinds}",
                table.name
            );
            assert_eq!(identity, want_identity, "`{}.{name}` identity", table.name);
        }
    }
    let version: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// Attack: the application role asks for a snapshot of every org. Row-level security would
/// hide every other org's rows and the backup would be silently partial; it is refused instead,
/// naming the owner role. The owner gets one.
#[tokio::test]
async fn only_the_owner_role_can_take_a_snapshot() {
    let (db, _store) = migrated().await;
    let refused = backup_open::snapshot(&db.app_url).await.err().unwrap();
    assert!(
        matches!(&refused, BackupError::Refused(m) if m.contains("owner role")),
        "{refused}"
    );
    let loader = backup_open::loader(&db.app_url, &db.app_role)
        .await
        .err()
        .unwrap();
    assert!(matches!(loader, BackupError::Refused(_)), "{loader}");
    let snapshot = backup_open::snapshot(&db.owner_url).await.unwrap();
    assert_eq!(snapshot.schema_version(), SCHEMA_VERSION);
    assert_eq!(snapshot.engine(), "postgres");
}
