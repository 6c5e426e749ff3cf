//! Backups: the engine-neutral archive, its signed manifest and its checks (ADR 0020).
//!
//! A backup is every row of every table ([`catalog::TABLES`]) read in one consistent snapshot,
//! each value written in one form whatever the engine ([`Value`], [`encode_row`]), so an archive
//! made on SQLite restores onto PostgreSQL and back, and the SHA-256 of a table's rows is the same
//! on both. [`archive`] is the line format, [`check`] the verification shared by `backup verify`,
//! `restore` and the check `restore` runs against the store it filled.
//!
//! The stores read and load rows through [`Snapshot`] and [`Loader`]. They are not ports of
//! [`crate::ports::Store`]: only host tools open them (on PostgreSQL as the owner role), and they
//! are the one place that reads every org's rows at once.

pub mod archive;
pub mod catalog;
pub mod check;

use async_trait::async_trait;
use base64::Engine as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::StoreError;

pub use catalog::{ENGINE_STATE, SCHEMA_VERSION, TABLES};

/// The engine-neutral kind of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit integer (PostgreSQL `smallint`, `integer`, `bigint`; SQLite `INTEGER`).
    Int,
    /// A boolean (SQLite `INTEGER` 0/1).
    Bool,
    /// A double (rate-limit buckets).
    Float,
    /// UTF-8 text.
    Text,
    /// Bytes (PostgreSQL `bytea`, SQLite `BLOB`).
    Bytes,
    /// A UUID (PostgreSQL `uuid`, SQLite a 16-byte `BLOB`).
    Uuid,
    /// A time (PostgreSQL `timestamptz`, SQLite RFC 3339 `TEXT`).
    Time,
}

impl Kind {
    /// The name written in an archive's table header.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Int => "int",
            Self::Bool => "bool",
            Self::Float => "float",
            Self::Text => "text",
            Self::Bytes => "bytes",
            Self::Uuid => "uuid",
            Self::Time => "time",
        }
    }
}

/// A table as a backup sees it.
#[derive(Debug)]
pub struct Table {
    /// Its name, the same on both engines.
    pub name: &'static str,
    /// Its columns in order, each with its kind.
    pub columns: &'static [(&'static str, Kind)],
    /// The primary key: rows are read in its order (text compared bytewise).
    pub key: &'static [&'static str],
    /// A column PostgreSQL generates (`GENERATED ALWAYS AS IDENTITY`): restored as it was, and
    /// the sequence moved past the largest.
    pub identity: Option<&'static str>,
    /// A column referring to another row of the same table (`column`, `referenced column`):
    /// rows are loaded after the row they refer to.
    pub parent: Option<(&'static str, &'static str)>,
    /// The row a migration puts in the table (a condition on it): the table counts as empty with
    /// only that row, and a restore replaces it with the archived one.
    pub pristine: Option<&'static str>,
}

impl Table {
    /// The position of `column`.
    #[must_use]
    pub fn index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|(c, _)| *c == column)
    }
}

/// One value, as every engine reads and writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// [`Kind::Int`].
    Int(i64),
    /// [`Kind::Bool`].
    Bool(bool),
    /// [`Kind::Float`].
    Float(f64),
    /// [`Kind::Text`].
    Text(String),
    /// [`Kind::Bytes`].
    Bytes(Vec<u8>),
    /// [`Kind::Uuid`].
    Uuid(uuid::Uuid),
    /// [`Kind::Time`].
    Time(OffsetDateTime),
}

/// Why a backup, a verification or a restore stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(String),
    /// A line of the archive is not what the format allows there.
    #[error("archive line {line}: {message}")]
    Format {
        /// 1-based line number of the decrypted archive.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The archive's contents disagree with its manifest, or its manifest with its signature.
    #[error("{0}")]
    Tampered(String),
    /// An audit log in the archive does not verify.
    #[error("audit log `{log}`: {message}")]
    Audit {
        /// The log.
        log: String,
        /// What broke.
        message: String,
    },
    /// The operation is refused (a target that holds data, another schema version, …).
    #[error("{0}")]
    Refused(String),
}

/// Writes `values` as `table`'s row line: a JSON array, one element per column, in the one form
/// each kind has (integers and booleans as JSON, text as a JSON string, bytes as standard base64,
/// UUIDs hyphenated, times as RFC 3339 in UTC). The same row gives the same bytes on every engine.
///
/// # Errors
/// A value that is not of its column's kind, or a float that is not finite.
pub fn encode_row(table: &Table, values: &[Value], out: &mut Vec<u8>) -> Result<(), BackupError> {
    if values.len() != table.columns.len() {
        return Err(BackupError::Io(format!(
            "table `{}`: {} values for {} columns",
            table.name,
            values.len(),
            table.columns.len()
        )));
    }
    out.push(b'[');
    for (i, (value, (column, kind))) in values.iter().zip(table.columns).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let wrong = || {
            BackupError::Io(format!(
                "table `{}`, column `{column}`: a value that is not {}",
                table.name,
                kind.as_str()
            ))
        };
        match (value, kind) {
            (Value::Null, _) => out.extend_from_slice(b"null"),
            (Value::Int(n), Kind::Int) => out.extend_from_slice(n.to_string().as_bytes()),
            (Value::Bool(b), Kind::Bool) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" });
            }
            (Value::Float(f), Kind::Float) if f.is_finite() => {
                serde_json::to_writer(&mut *out, f).map_err(|_| wrong())?;
            }
            (Value::Text(s), Kind::Text) => {
                serde_json::to_writer(&mut *out, s).map_err(|_| wrong())?;
            }
            (Value::Bytes(b), Kind::Bytes) => {
                out.push(b'"');
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(b)
                        .as_bytes(),
                );
                out.push(b'"');
            }
            (Value::Uuid(u), Kind::Uuid) => {
                out.push(b'"');
                out.extend_from_slice(u.hyphenated().to_string().as_bytes());
                out.push(b'"');
            }
            (Value::Time(t), Kind::Time) => {
                let text = t
                    .to_offset(time::UtcOffset::UTC)
                    .format(&Rfc3339)
                    .map_err(|_| wrong())?;
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
            }
            _ => return Err(wrong()),
        }
    }
    out.push(b']');
    Ok(())
}

/// Reads `table`'s row line back into values: the inverse of [`encode_row`]. The error is the
/// message only; the caller names the line.
///
/// # Errors
/// Not a JSON array of the table's width, or an element not of its column's kind.
pub fn decode_row(table: &Table, line: &[u8]) -> Result<Vec<Value>, String> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(line)
        .map_err(|_| format!("a row of `{}` that is not a JSON array", table.name))?;
    if items.len() != table.columns.len() {
        return Err(format!(
            "a row of `{}` with {} values for {} columns",
            table.name,
            items.len(),
            table.columns.len()
        ));
    }
    items
        .into_iter()
        .zip(table.columns)
        .map(|(item, (column, kind))| {
            decode_value(item, *kind).ok_or_else(|| {
                format!(
                    "table `{}`, column `{column}`: not a valid {} value",
                    table.name,
                    kind.as_str()
                )
            })
        })
        .collect()
}

fn decode_value(item: serde_json::Value, kind: Kind) -> Option<Value> {
    use serde_json::Value as J;
    Some(match (item, kind) {
        (J::Null, _) => Value::Null,
        (J::Number(n), Kind::Int) => Value::Int(n.as_i64()?),
        (J::Bool(b), Kind::Bool) => Value::Bool(b),
        (J::Number(n), Kind::Float) => Value::Float(n.as_f64()?),
        (J::String(s), Kind::Text) => Value::Text(s),
        (J::String(s), Kind::Bytes) => {
            Value::Bytes(base64::engine::general_purpose::STANDARD.decode(s).ok()?)
        }
        (J::String(s), Kind::Uuid) => Value::Uuid(uuid::Uuid::try_parse(&s).ok()?),
        (J::String(s), Kind::Time) => Value::Time(OffsetDateTime::parse(&s, &Rfc3339).ok()?),
        _ => return None,
    })
}

/// Where a [`Snapshot`] sends the rows it reads.
pub trait RowSink: Send {
    /// One row, in the table's column order.
    ///
    /// # Errors
    /// The sink failed (a write, a check); the dump stops.
    fn row(&mut self, table: &'static Table, values: &[Value]) -> Result<(), BackupError>;
}

/// A consistent, read-only view of a whole store: every table as of one moment, while the server
/// goes on writing.
#[async_trait]
pub trait Snapshot: Send {
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;

    /// The newest migration applied.
    fn schema_version(&self) -> i64;

    /// Sends every row of `table`, in key order, to `sink`; returns how many.
    ///
    /// # Errors
    /// The store or the sink failed.
    async fn dump(
        &mut self,
        table: &'static Table,
        sink: &mut dyn RowSink,
    ) -> Result<u64, BackupError>;
}

/// Loads rows into an empty store, all in one transaction: nothing is visible, and nothing stays,
/// unless [`Loader::finish`] commits.
#[async_trait]
pub trait Loader: Send {
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;

    /// Inserts `rows` into `table`; tables come in [`TABLES`] order.
    ///
    /// # Errors
    /// The store refused a row.
    async fn load(&mut self, table: &'static Table, rows: &[Vec<Value>])
    -> Result<(), BackupError>;

    /// Commits everything loaded (and moves generated-id sequences past the loaded ids).
    ///
    /// # Errors
    /// The commit failed; nothing was loaded.
    async fn finish(self: Box<Self>) -> Result<(), BackupError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_encodes_and_decodes_to_itself() {
        static T: Table = Table {
            name: "t",
            columns: &[
                ("a", Kind::Int),
                ("b", Kind::Bool),
                ("c", Kind::Float),
                ("d", Kind::Text),
                ("e", Kind::Bytes),
                ("f", Kind::Uuid),
                ("g", Kind::Time),
                ("h", Kind::Text),
            ],
            key: &["a"],
            identity: None,
            parent: None,
            pristine: None,
        };
        let row = vec![
            Value::Int(-9_007_199_254_740_993),
            Value::Bool(true),
            Value::Float(0.1),
            Value::Text("é\"\n\u{0}".into()),
            Value::Bytes(vec![0, 255, 10]),
            Value::Uuid(uuid::Uuid::from_u128(
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            )),
            Value::Time(time::macros::datetime!(2026-12-07 13:00:00.123456 +02:00)),
            Value::Null,
        ];
        let mut line = Vec::new();
        encode_row(&T, &row, &mut line).unwrap();
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.contains("\"2026-12-07T11:00:00.123456Z\""), "{text}");
        let back = decode_row(&T, &line).unwrap();
        assert_eq!(back, row);
        let mut again = Vec::new();
        encode_row(&T, &back, &mut again).unwrap();
        assert_eq!(again, line, "the encoding is canonical");
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_refused_both_ways() {
        static T: Table = Table {
            name: "t",
            columns: &[("a", Kind::Uuid)],
            key: &["a"],
            identity: None,
            parent: None,
            pristine: None,
        };
        assert!(encode_row(&T, &[Value::Int(1)], &mut Vec::new()).is_err());
        assert!(decode_row(&T, b"[1]").is_err());
        assert!(decode_row(&T, b"[\"not-a-uuid\"]").is_err());
        assert!(decode_row(&T, b"[null,null]").is_err());
        assert!(decode_row(&T, b"{}").is_err());
    }
}
