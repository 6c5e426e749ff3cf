//! A backup's snapshot of a SQLite database, and a restore's loader into a new one.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bulwark_core::backup::{BackupError, Loader, RowSink, SCHEMA_VERSION, Snapshot, Table, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, SqliteConnection};

use crate::backup::{self, Pending};

fn store_err(e: sqlx::Error) -> BackupError {
    BackupError::Store(crate::map_err(e))
}

/// A read transaction on its own connection: in WAL mode it sees the database as of its first
/// read while the server goes on writing.
struct SqliteSnapshot {
    conn: SqliteConnection,
    version: i64,
}

/// Opens a consistent snapshot of the database at `path` (which must exist), read-only.
///
/// # Errors
/// The file cannot be opened or read.
pub async fn snapshot(path: &Path) -> Result<Box<dyn Snapshot>, BackupError> {
    if !path.exists() {
        return Err(BackupError::Io(format!(
            "`{}` does not exist: no database to back up",
            path.display()
        )));
    }
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(store_err)?;
    sqlx::raw_sql("BEGIN")
        .execute(&mut conn)
        .await
        .map_err(store_err)?;
    // The first read fixes the snapshot.
    let version = backup::schema_version(&mut conn).await?;
    Ok(Box::new(SqliteSnapshot { conn, version }))
}

#[async_trait]
impl Snapshot for SqliteSnapshot {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    fn schema_version(&self) -> i64 {
        self.version
    }

    async fn dump(
        &mut self,
        table: &'static Table,
        sink: &mut dyn RowSink,
    ) -> Result<u64, BackupError> {
        backup::dump(&mut self.conn, table, sink).await
    }
}

struct SqliteLoader {
    conn: SqliteConnection,
    pending: Pending,
}

/// Creates the database at `path` (which must not hold one yet), migrated to this release's
/// schema, and begins the one transaction a restore loads in.
///
/// # Errors
/// A database already at `path`, or one that cannot be created.
pub async fn loader(path: &Path) -> Result<Box<dyn Loader>, BackupError> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        // Looked at read-only: a file that holds anything is left exactly as it is.
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = SqliteConnection::connect_with(&opts)
            .await
            .map_err(store_err)?;
        let empty = backup::is_empty(&mut conn).await.unwrap_or(false);
        conn.close().await.map_err(store_err)?;
        if !empty {
            return Err(BackupError::Refused(format!(
                "`{}` holds data: a restore never writes over a store in use; restore into a new data directory",
                path.display()
            )));
        }
    }
    let store = crate::SqliteStore::open(path, 1)
        .await
        .map_err(|e| BackupError::Refused(e.to_string()))?;
    store.pool().close().await;
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(store_err)?;
    let version = backup::schema_version(&mut conn).await?;
    if version != SCHEMA_VERSION {
        return Err(BackupError::Refused(format!(
            "`{}` is at schema version {version}, this release at {SCHEMA_VERSION}",
            path.display()
        )));
    }
    if !backup::is_empty(&mut conn).await? {
        return Err(BackupError::Refused(format!(
            "`{}` holds data: a restore never writes over a store in use",
            path.display()
        )));
    }
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .map_err(store_err)?;
    Ok(Box::new(SqliteLoader {
        conn,
        pending: Pending::default(),
    }))
}

#[async_trait]
impl Loader for SqliteLoader {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn load(
        &mut self,
        table: &'static Table,
        rows: &[Vec<Value>],
    ) -> Result<(), BackupError> {
        backup::load(&mut self.conn, table, rows, &mut self.pending).await
    }

    async fn finish(mut self: Box<Self>) -> Result<(), BackupError> {
        self.pending.settled()?;
        sqlx::raw_sql("COMMIT")
            .execute(&mut self.conn)
            .await
            .map_err(store_err)?;
        self.conn.close().await.map_err(store_err)
    }
}
