//! A backup's snapshot of a SQLite database, and a restore's loader into a new one.

use std::path::Path;
use std::time::Duration;

use bulwark_core::backup::{BackupError, Loader, SCHEMA_VERSION, Snapshot};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, SqliteConnection};

use crate::backup::{self, Pending, SqlLoader, SqlSnapshot};

fn store_err(e: sqlx::Error) -> BackupError {
    BackupError::Store(crate::map_err(e))
}

/// One connection of its own to the file at `path`.
async fn connect(path: &Path, read_only: bool) -> Result<SqliteConnection, BackupError> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .foreign_keys(!read_only)
        .busy_timeout(Duration::from_secs(10));
    SqliteConnection::connect_with(&opts)
        .await
        .map_err(store_err)
}

fn holds_data(path: &Path) -> BackupError {
    BackupError::Refused(format!(
        "`{}` holds data: a restore never writes over a store in use; restore into a new data directory",
        path.display()
    ))
}

/// Opens a consistent snapshot of the database at `path` (which must exist), read-only: a read
/// transaction that, in WAL mode, sees the database as of its first read while the server goes
/// on writing.
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
    let mut conn = connect(path, true).await?;
    sqlx::raw_sql("BEGIN")
        .execute(&mut conn)
        .await
        .map_err(store_err)?;
    // The first read fixes the snapshot.
    let version = backup::schema_version(&mut conn).await?;
    Ok(Box::new(SqlSnapshot { conn, version }))
}

/// Creates the database at `path` (which must not hold data), migrated to this release's
/// schema, and begins the one transaction a restore loads in.
///
/// # Errors
/// A database with data at `path`, or one that cannot be created.
pub async fn loader(path: &Path) -> Result<Box<dyn Loader>, BackupError> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        // Looked at read-only: a file that holds anything is left exactly as it is.
        let mut conn = connect(path, true).await?;
        let empty = backup::is_empty(&mut conn).await.unwrap_or(false);
        conn.close().await.map_err(store_err)?;
        if !empty {
            return Err(holds_data(path));
        }
    }
    let store = crate::SqliteStore::open(path, 1)
        .await
        .map_err(|e| BackupError::Refused(e.to_string()))?;
    store.pool().close().await;
    let mut conn = connect(path, false).await?;
    let version = backup::schema_version(&mut conn).await?;
    if version != SCHEMA_VERSION {
        return Err(BackupError::Refused(format!(
            "`{}` is at schema version {version}, this release at {SCHEMA_VERSION}",
            path.display()
        )));
    }
    if !backup::is_empty(&mut conn).await? {
        return Err(holds_data(path));
    }
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .map_err(store_err)?;
    Ok(Box::new(SqlLoader {
        conn,
        pending: Pending::default(),
    }))
}
