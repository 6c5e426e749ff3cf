//! The audit log on SQLite: head and events in the caller's transaction. The write lock taken by
//! `BEGIN IMMEDIATE` serialises appenders, so the head needs no row lock.

use bulwark_core::StoreError;
use bulwark_core::model::{AuditPruning, AuditRow};
use bulwark_types::{EventId, OrgId};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row as _, Sqlite, SqliteConnection};

/// Events per INSERT statement.
const INSERT_CHUNK: usize = 256;

use crate::map_err;

pub(crate) async fn head(
    conn: &mut SqliteConnection,
    log: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    sqlx::query_scalar("SELECT frontier FROM audit_heads WHERE log = $1")
        .bind(log)
        .fetch_optional(conn)
        .await
        .map_err(map_err)
}

/// INVARIANT: `log` and `org` are the handle's own scope; `row` must match them.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    log: &str,
    org: Option<OrgId>,
    rows: &[AuditRow],
    head: &[u8],
) -> Result<(), StoreError> {
    let org_id = org.map(|o| o.as_uuid());
    if rows.iter().any(|r| r.log != log || r.org_id != org) {
        return Err(StoreError::Corrupt("audit event for another log".into()));
    }
    // Multi-row statements (8 values per row, well under SQLite's variable limit): a statement
    // per event would cap group commit.
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO audit_events (log, seq, org_id, event_id, time, action, body, leaf_hash) ",
        );
        let mut bad_seq = false;
        sql.push_values(chunk, |mut b, row| {
            let seq = i64::try_from(row.seq).unwrap_or_else(|_| {
                bad_seq = true;
                -1
            });
            b.push_bind(log)
                .push_bind(seq)
                .push_bind(org_id)
                .push_bind(row.event_id.as_uuid())
                .push_bind(row.time)
                .push_bind(row.action.as_str())
                .push_bind(row.body.as_deref())
                .push_bind(row.leaf_hash.as_slice());
        });
        if bad_seq {
            return Err(StoreError::Corrupt("seq out of range".into()));
        }
        sql.build().execute(&mut *conn).await.map_err(map_err)?;
    }
    sqlx::query(
        "INSERT INTO audit_heads (log, org_id, frontier) VALUES ($1, $2, $3) \
         ON CONFLICT (log) DO UPDATE SET frontier = excluded.frontier",
    )
    .bind(log)
    .bind(org_id)
    .bind(head)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn events(
    conn: &mut SqliteConnection,
    log: &str,
    from: u64,
    limit: u32,
) -> Result<Vec<AuditRow>, StoreError> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    sqlx::query(
        "SELECT log, seq, org_id, event_id, time, action, body, leaf_hash FROM audit_events \
         WHERE log = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
    )
    .bind(log)
    .bind(from)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map_err)?
    .iter()
    .map(row)
    .collect()
}

pub(crate) async fn leaves(
    conn: &mut SqliteConnection,
    log: &str,
    from: u64,
    limit: u32,
) -> Result<Vec<[u8; 32]>, StoreError> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT leaf_hash FROM audit_events WHERE log = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
    )
    .bind(log)
    .bind(from)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.into_iter()
        .map(|(h,)| {
            <[u8; 32]>::try_from(h.as_slice())
                .map_err(|_| StoreError::Corrupt("leaf hash length".into()))
        })
        .collect()
}

pub(crate) async fn retention(
    conn: &mut SqliteConnection,
    org: OrgId,
) -> Result<Option<u32>, StoreError> {
    let days: Option<Option<i32>> =
        sqlx::query_scalar("SELECT audit_retention_days FROM orgs WHERE id = $1")
            .bind(org.as_uuid())
            .fetch_optional(conn)
            .await
            .map_err(map_err)?;
    days.ok_or(StoreError::NotFound)?
        .map(|d| u32::try_from(d).map_err(|_| StoreError::Corrupt("negative retention".into())))
        .transpose()
}

pub(crate) async fn set_retention(
    conn: &mut SqliteConnection,
    org: OrgId,
    days: Option<u32>,
) -> Result<(), StoreError> {
    let days = days
        .map(|d| i32::try_from(d).map_err(|_| StoreError::Corrupt("retention out of range".into())))
        .transpose()?;
    let done = sqlx::query("UPDATE orgs SET audit_retention_days = $2 WHERE id = $1")
        .bind(org.as_uuid())
        .bind(days)
        .execute(conn)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Clears bodies older than the org's retention, through the prune gate (migration 0005); the
/// trigger (migration 0017) refuses any body younger than the retention by SQLite's own clock.
pub(crate) async fn prune(
    conn: &mut SqliteConnection,
    org: OrgId,
    now: time::OffsetDateTime,
) -> Result<Option<AuditPruning>, StoreError> {
    let Some(days) = retention(conn, org).await? else {
        return Ok(None);
    };
    let cutoff = now - time::Duration::days(i64::from(days));
    let rows: Vec<(i64, time::OffsetDateTime)> = sqlx::query_as(
        "SELECT seq, time FROM audit_events WHERE org_id = $1 AND body IS NOT NULL ORDER BY seq",
    )
    .bind(org.as_uuid())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let due: Vec<(i64, time::OffsetDateTime)> =
        rows.into_iter().filter(|(_, t)| *t < cutoff).collect();
    let Some(pruning) = summary(&due)? else {
        return Ok(None);
    };
    let log = org.to_string();
    sqlx::query("INSERT INTO audit_prune_gate (open) VALUES (1)")
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    for (seq, _) in &due {
        sqlx::query("UPDATE audit_events SET body = NULL WHERE log = $1 AND seq = $2")
            .bind(&log)
            .bind(seq)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    sqlx::query("DELETE FROM audit_prune_gate")
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(Some(pruning))
}

/// The count, seq range and time range of `due` (in seq order); `None` when it is empty.
fn summary(due: &[(i64, time::OffsetDateTime)]) -> Result<Option<AuditPruning>, StoreError> {
    let (Some(first), Some(last)) = (due.first(), due.last()) else {
        return Ok(None);
    };
    let seq = |s: i64| u64::try_from(s).map_err(|_| StoreError::Corrupt("negative seq".into()));
    let oldest = due.iter().map(|(_, t)| *t).min().unwrap_or(first.1);
    let newest = due.iter().map(|(_, t)| *t).max().unwrap_or(last.1);
    Ok(Some(AuditPruning {
        events: due.len() as u64,
        seqs: (seq(first.0)?, seq(last.0)?),
        times: (oldest, newest),
    }))
}

fn row(r: &SqliteRow) -> Result<AuditRow, StoreError> {
    let leaf: Vec<u8> = r.try_get("leaf_hash").map_err(map_err)?;
    let org: Option<uuid::Uuid> = r.try_get("org_id").map_err(map_err)?;
    Ok(AuditRow {
        log: r.try_get("log").map_err(map_err)?,
        seq: u64::try_from(r.try_get::<i64, _>("seq").map_err(map_err)?)
            .map_err(|_| StoreError::Corrupt("negative seq".into()))?,
        org_id: org.map(OrgId::from_uuid),
        event_id: EventId::from_uuid(r.try_get("event_id").map_err(map_err)?),
        time: r.try_get("time").map_err(map_err)?,
        action: r.try_get("action").map_err(map_err)?,
        body: r.try_get("body").map_err(map_err)?,
        leaf_hash: leaf
            .try_into()
            .map_err(|_| StoreError::Corrupt("leaf hash length".into()))?,
    })
}

pub(crate) async fn checkpoint_insert(
    conn: &mut SqliteConnection,
    log: &str,
    org: Option<OrgId>,
    size: u64,
    note: &str,
    at: time::OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_checkpoints (log, size, org_id, note, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (log, size) DO NOTHING")
        .bind(log)
        .bind(i64::try_from(size).map_err(|_| StoreError::Corrupt("size out of range".into()))?)
        .bind(org.map(|o| o.as_uuid()))
        .bind(note)
        .bind(at)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn latest_checkpoint(
    conn: &mut SqliteConnection,
    log: &str,
) -> Result<Option<(u64, String)>, StoreError> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT size, note FROM audit_checkpoints WHERE log = $1 ORDER BY size DESC LIMIT 1",
    )
    .bind(log)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.map(|(size, note)| {
        Ok((
            u64::try_from(size).map_err(|_| StoreError::Corrupt("negative size".into()))?,
            note,
        ))
    })
    .transpose()
}
