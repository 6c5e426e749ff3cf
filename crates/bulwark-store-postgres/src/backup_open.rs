//! A backup's snapshot of a PostgreSQL database and a restore's loader, both as the owner role:
//! the application role sees one org at a time, and a backup reads them all. The owner reads and
//! inserts every row through the policies of migration 0022 (`TO` the owner only); it could
//! switch row-level security off anyway, and `serve` never runs as it.

use std::str::FromStr as _;

use bulwark_core::backup::{BackupError, Loader, SCHEMA_VERSION, Snapshot};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};

use crate::backup::{self, Pending, SqlLoader, SqlSnapshot};

fn store_err(e: sqlx::Error) -> BackupError {
    BackupError::Store(crate::map_err(e))
}

async fn connect(owner_url: &str) -> Result<PgConnection, BackupError> {
    let options = PgConnectOptions::from_str(owner_url)
        .map_err(|_| BackupError::Refused("the database URL does not parse".into()))?;
    PgConnection::connect_with(&options).await.map_err(|e| {
        BackupError::Io(format!(
            "cannot connect to PostgreSQL: {}",
            crate::map_err(e)
        ))
    })
}

/// Tables whose rows the connected role cannot all see or insert: row-level security hides
/// them unless the role bypasses it or has the owner's policies of migration 0022.
async fn hidden_tables(conn: &mut PgConnection, command: &str) -> Result<Vec<String>, BackupError> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity \
         AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = current_user \
                         AND (r.rolsuper OR r.rolbypassrls)) \
         AND NOT EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = 'public' \
                         AND p.tablename = c.relname AND p.permissive = 'PERMISSIVE' \
                         AND p.cmd IN ($1, 'ALL') AND current_user::name = ANY (p.roles) \
                         AND coalesce(p.qual, 'true') = 'true' \
                         AND coalesce(p.with_check, 'true') = 'true') \
         ORDER BY 1",
    )
    .bind(command)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_err)
}

fn owner_only(role: &str, tables: &[String], doing: &str) -> BackupError {
    BackupError::Refused(format!(
        "role `{role}` cannot {doing} every org's rows ({}, …): on PostgreSQL backups and restores connect as the owner role, the one `bulwark migrate` runs as",
        tables
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

async fn current_role(conn: &mut PgConnection) -> Result<String, BackupError> {
    sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(store_err)
}

/// Opens a `REPEATABLE READ`, read-only snapshot as the owner role.
///
/// # Errors
/// The database cannot be reached, or the role cannot see every org's rows.
pub async fn snapshot(owner_url: &str) -> Result<Box<dyn Snapshot>, BackupError> {
    let mut conn = connect(owner_url).await?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(store_err)?;
    let hidden = hidden_tables(&mut conn, "SELECT").await?;
    if !hidden.is_empty() {
        let role = current_role(&mut conn).await?;
        return Err(owner_only(&role, &hidden, "read"));
    }
    let version = backup::schema_version(&mut conn).await?;
    Ok(Box::new(SqlSnapshot { conn, version }))
}

/// Begins the one transaction a restore loads in, as the owner role: into a database with no
/// table yet (migrated first, granting `app_role` as `bulwark migrate` does), or one already at
/// this release's schema that holds no data.
///
/// # Errors
/// Another schema version, data present, or a role that cannot insert every org's rows.
pub async fn loader(owner_url: &str, app_role: &str) -> Result<Box<dyn Loader>, BackupError> {
    let mut conn = connect(owner_url).await?;
    let (ledger, tables): (bool, i64) = sqlx::query_as(
        "SELECT to_regclass('public._sqlx_migrations') IS NOT NULL, \
         (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p'))",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(store_err)?;
    if !ledger && tables > 0 {
        return Err(BackupError::Refused(
            "the database holds tables that are not Bulwark's: restore into a new, empty database"
                .into(),
        ));
    }
    if !ledger {
        crate::migrate(owner_url, app_role)
            .await
            .map_err(|e| BackupError::Refused(e.to_string()))?;
    }
    let version = backup::schema_version(&mut conn).await?;
    if version != SCHEMA_VERSION {
        return Err(BackupError::Refused(format!(
            "the database is at schema version {version}, this release at {SCHEMA_VERSION}"
        )));
    }
    for command in ["SELECT", "INSERT"] {
        let hidden = hidden_tables(&mut conn, command).await?;
        if !hidden.is_empty() {
            let role = current_role(&mut conn).await?;
            return Err(owner_only(&role, &hidden, "see and insert"));
        }
    }
    if !backup::is_empty(&mut conn).await? {
        return Err(BackupError::Refused(
            "the database holds data: a restore never writes over a store in use; restore into a new, empty database"
                .into(),
        ));
    }
    sqlx::raw_sql("BEGIN")
        .execute(&mut conn)
        .await
        .map_err(store_err)?;
    Ok(Box::new(SqlLoader {
        conn,
        pending: Pending::default(),
    }))
}
