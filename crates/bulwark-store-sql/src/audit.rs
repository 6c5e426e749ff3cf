//! The audit log: head and events in the caller's transaction. Appenders to one log are
//! serialised ([`crate::dialect::lock_audit_log`]), across replicas too, including the first
//! append when no head row exists yet to lock. The batched insert and the pruning are per engine
//! (`batched.rs`).

use bulwark_core::StoreError;
use bulwark_core::model::AuditRow;
use bulwark_types::{EventId, OrgId};
use sqlx::Row as _;

use crate::dialect::{Conn, DbRow};
use crate::map_err;

pub(crate) async fn head(conn: &mut Conn, log: &str) -> Result<Option<Vec<u8>>, StoreError> {
    crate::dialect::lock_audit_log(&mut *conn, log).await?;
    sqlx::query_scalar("SELECT frontier FROM audit_heads WHERE log = $1")
        .bind(log)
        .fetch_optional(conn)
        .await
        .map_err(map_err)
}

/// INVARIANT: `log` and `org` are the handle's own scope; `row` must match them. Every row is
/// checked here (scope, body, seq range), so the engines' batched inserts need not check again.
pub(crate) async fn insert(
    conn: &mut Conn,
    log: &str,
    org: Option<OrgId>,
    rows: &[AuditRow],
    head: &[u8],
) -> Result<(), StoreError> {
    if rows.iter().any(|r| r.log != log || r.org_id != org) {
        return Err(StoreError::Corrupt("audit event for another log".into()));
    }
    if rows.iter().any(|r| r.body.is_none()) {
        return Err(StoreError::Corrupt(
            "appending an event without a body".into(),
        ));
    }
    if rows.iter().any(|r| i64::try_from(r.seq).is_err()) {
        return Err(StoreError::Corrupt("seq out of range".into()));
    }
    let org_id = org.map(|o| o.as_uuid());
    crate::batched::insert_audit_events(&mut *conn, log, org_id, rows).await?;
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
    conn: &mut Conn,
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
    conn: &mut Conn,
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

pub(crate) async fn retention(conn: &mut Conn, org: OrgId) -> Result<Option<u32>, StoreError> {
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
    conn: &mut Conn,
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

fn row(r: &DbRow) -> Result<AuditRow, StoreError> {
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
    conn: &mut Conn,
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
    conn: &mut Conn,
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
