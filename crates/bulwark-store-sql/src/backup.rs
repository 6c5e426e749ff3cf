//! Reading every row for a backup and loading rows into an empty store for a restore
//! (`bulwark_core::backup`): the same statements on both engines, built from the catalog. Each
//! engine's crate opens the connection (`backup_open.rs`): a read-only snapshot transaction, or
//! one write transaction for the whole restore.

use std::collections::HashSet;

use async_trait::async_trait;
use bulwark_core::backup::{BackupError, Kind, Loader, RowSink, Snapshot, Table, Value};
use futures_util::TryStreamExt as _;
use sqlx::Connection as _;
use sqlx::Row as _;

use crate::dialect::{Conn, Db, DbRow, ENGINE, MAX_PARAMS, OVERRIDING_IDENTITY, TEXT_ORDER};

/// A snapshot: a read-only transaction, begun on its own connection by the engine's
/// `backup_open.rs`, that sees the store as of its first read.
pub(crate) struct SqlSnapshot {
    pub(crate) conn: Conn,
    pub(crate) version: i64,
}

#[async_trait]
impl Snapshot for SqlSnapshot {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn schema_version(&self) -> i64 {
        self.version
    }

    async fn dump(
        &mut self,
        table: &'static Table,
        sink: &mut dyn RowSink,
    ) -> Result<u64, BackupError> {
        dump(&mut self.conn, table, sink).await
    }
}

/// A loader: one write transaction, begun by the engine's `backup_open.rs`.
pub(crate) struct SqlLoader {
    pub(crate) conn: Conn,
    pub(crate) pending: Pending,
}

#[async_trait]
impl Loader for SqlLoader {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    async fn load(
        &mut self,
        table: &'static Table,
        rows: &[Vec<Value>],
    ) -> Result<(), BackupError> {
        load(&mut self.conn, table, rows, &mut self.pending).await
    }

    async fn finish(mut self: Box<Self>) -> Result<(), BackupError> {
        self.pending.settled()?;
        crate::dialect::after_load(&mut self.conn).await?;
        sqlx::raw_sql("COMMIT")
            .execute(&mut self.conn)
            .await
            .map_err(store_err)?;
        self.conn.close().await.map_err(store_err)
    }
}

fn store_err(e: sqlx::Error) -> BackupError {
    BackupError::Store(crate::map_err(e))
}

fn quote(column: &str) -> String {
    format!("\"{column}\"")
}

/// `SELECT` of every column in key order; integers cast to 64 bits (PostgreSQL's narrower
/// integers do not decode as `i64`), text keys compared bytewise on both engines.
fn select_sql(table: &Table) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|(c, k)| match k {
            Kind::Int => format!("CAST({} AS BIGINT)", quote(c)),
            _ => quote(c),
        })
        .collect();
    let order: Vec<String> = table
        .key
        .iter()
        .map(|k| {
            let text = table
                .index(k)
                .and_then(|i| table.columns.get(i))
                .is_some_and(|(_, kind)| *kind == Kind::Text);
            format!("{}{}", quote(k), if text { TEXT_ORDER } else { "" })
        })
        .collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        table.name,
        order.join(", ")
    )
}

fn decode(row: &DbRow, i: usize, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Int => row
            .try_get::<Option<i64>, _>(i)?
            .map_or(Value::Null, Value::Int),
        Kind::Bool => row
            .try_get::<Option<bool>, _>(i)?
            .map_or(Value::Null, Value::Bool),
        Kind::Float => row
            .try_get::<Option<f64>, _>(i)?
            .map_or(Value::Null, Value::Float),
        Kind::Text => row
            .try_get::<Option<String>, _>(i)?
            .map_or(Value::Null, Value::Text),
        Kind::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)?
            .map_or(Value::Null, Value::Bytes),
        Kind::Uuid => row
            .try_get::<Option<uuid::Uuid>, _>(i)?
            .map_or(Value::Null, Value::Uuid),
        Kind::Time => row
            .try_get::<Option<time::OffsetDateTime>, _>(i)?
            .map_or(Value::Null, Value::Time),
    })
}

/// Sends every row of `table` to `sink`, in key order, streaming; returns how many.
pub(crate) async fn dump(
    conn: &mut Conn,
    table: &'static Table,
    sink: &mut dyn RowSink,
) -> Result<u64, BackupError> {
    let sql = select_sql(table);
    // The statement is built from the compiled-in catalog only: no input reaches it.
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
    let mut values = Vec::with_capacity(table.columns.len());
    let mut n = 0;
    let failed = |e: sqlx::Error| {
        BackupError::Io(format!(
            "reading table `{}`: {}",
            table.name,
            crate::map_err(e)
        ))
    };
    while let Some(row) = rows.try_next().await.map_err(failed)? {
        values.clear();
        for (i, (_, kind)) in table.columns.iter().enumerate() {
            values.push(decode(&row, i, *kind).map_err(failed)?);
        }
        sink.row(table, &values)?;
        n += 1;
    }
    Ok(n)
}

/// Whether every table of the catalog is empty.
pub(crate) async fn is_empty(conn: &mut Conn) -> Result<bool, BackupError> {
    for table in bulwark_core::backup::TABLES {
        let sql = match table.pristine {
            Some(row) => format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE NOT ({row}))",
                table.name
            ),
            None => format!("SELECT EXISTS (SELECT 1 FROM {})", table.name),
        };
        let any: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(store_err)?;
        if any {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The newest migration applied.
pub(crate) async fn schema_version(conn: &mut Conn) -> Result<i64, BackupError> {
    sqlx::query_scalar::<Db, Option<i64>>("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await
        .map_err(store_err)
        .map(|v| v.unwrap_or(0))
}

/// Rows of one table held back until the row they refer to is loaded (a key rotated from another).
#[derive(Default)]
pub(crate) struct Pending {
    table: Option<&'static str>,
    loaded: HashSet<Vec<u8>>,
    waiting: Vec<Vec<Value>>,
}

fn key_of(value: Option<&Value>) -> Option<Vec<u8>> {
    match value? {
        Value::Uuid(u) => Some(u.as_bytes().to_vec()),
        Value::Text(t) => Some(t.as_bytes().to_vec()),
        Value::Int(n) => Some(n.to_be_bytes().to_vec()),
        _ => None,
    }
}

impl Pending {
    /// Checks that nothing is still waiting for a parent (called between tables and at the end).
    pub(crate) fn settled(&self) -> Result<(), BackupError> {
        match (self.table, self.waiting.len()) {
            (Some(table), n) if n > 0 => Err(BackupError::Tampered(format!(
                "table `{table}`: {n} rows refer to rows of their own table the archive does not hold"
            ))),
            _ => Ok(()),
        }
    }
}

/// Inserts `rows` into `table` inside the caller's transaction.
pub(crate) async fn load(
    conn: &mut Conn,
    table: &'static Table,
    rows: &[Vec<Value>],
    pending: &mut Pending,
) -> Result<(), BackupError> {
    let Some((child, parent)) = table.parent else {
        pending.settled()?;
        return insert(conn, table, rows).await;
    };
    if pending.table != Some(table.name) {
        pending.settled()?;
        *pending = Pending {
            table: Some(table.name),
            ..Pending::default()
        };
    }
    let (child, parent) = (table.index(child), table.index(parent));
    let mut queue: Vec<Vec<Value>> = std::mem::take(&mut pending.waiting);
    queue.extend(rows.iter().cloned());
    loop {
        let (ready, waiting): (Vec<_>, Vec<_>) = queue.into_iter().partition(|row| {
            let refers = child.and_then(|i| row.get(i));
            matches!(refers, None | Some(Value::Null))
                || key_of(refers).is_some_and(|k| pending.loaded.contains(&k))
        });
        if ready.is_empty() {
            pending.waiting = waiting;
            return Ok(());
        }
        insert(conn, table, &ready).await?;
        for row in &ready {
            if let Some(k) = key_of(parent.and_then(|i| row.get(i))) {
                pending.loaded.insert(k);
            }
        }
        queue = waiting;
    }
}

async fn insert(conn: &mut Conn, table: &Table, rows: &[Vec<Value>]) -> Result<(), BackupError> {
    if let Some(row) = table.pristine {
        // The migration's own row gives way to the archived one (once: later batches find none).
        let sql = format!("DELETE FROM {} WHERE {row}", table.name);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(store_err)?;
    }
    let width = table.columns.len();
    let per_statement = (MAX_PARAMS / width).max(1);
    let columns: Vec<String> = table.columns.iter().map(|(c, _)| quote(c)).collect();
    let overriding = if table.identity.is_some() {
        OVERRIDING_IDENTITY
    } else {
        ""
    };
    for chunk in rows.chunks(per_statement) {
        let mut sql = format!(
            "INSERT INTO {} ({}) {overriding} VALUES ",
            table.name,
            columns.join(", ")
        );
        let mut n = 0;
        for (r, _) in chunk.iter().enumerate() {
            if r > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..width {
                if c > 0 {
                    sql.push(',');
                }
                n += 1;
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            sql.push(')');
        }
        // Built from the catalog and placeholders only; the values are bound.
        let mut query = sqlx::query::<Db>(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for (value, (_, kind)) in row.iter().zip(table.columns) {
                query = bind(query, value, *kind);
            }
        }
        query.execute(&mut *conn).await.map_err(|e| {
            BackupError::Refused(format!(
                "table `{}`: the store refused a row: {}",
                table.name,
                crate::map_err(e)
            ))
        })?;
    }
    Ok(())
}

type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>;

fn bind<'q>(query: Query<'q>, value: &Value, kind: Kind) -> Query<'q> {
    match (value, kind) {
        (Value::Int(n), _) => query.bind(*n),
        (Value::Bool(b), _) => query.bind(*b),
        (Value::Float(f), _) => query.bind(*f),
        (Value::Text(t), _) => query.bind(t.clone()),
        (Value::Bytes(b), _) => query.bind(b.clone()),
        (Value::Uuid(u), _) => query.bind(*u),
        (Value::Time(t), _) => query.bind(*t),
        (Value::Null, Kind::Int) => query.bind(None::<i64>),
        (Value::Null, Kind::Bool) => query.bind(None::<bool>),
        (Value::Null, Kind::Float) => query.bind(None::<f64>),
        (Value::Null, Kind::Text) => query.bind(None::<String>),
        (Value::Null, Kind::Bytes) => query.bind(None::<Vec<u8>>),
        (Value::Null, Kind::Uuid) => query.bind(None::<uuid::Uuid>),
        (Value::Null, Kind::Time) => query.bind(None::<time::OffsetDateTime>),
    }
}
