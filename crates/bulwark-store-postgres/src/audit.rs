//! The audit log on PostgreSQL: head and events in the caller's transaction. A transaction-scoped
//! advisory lock per log serialises appenders, across replicas too, including the first append
//! when no head row exists yet to lock.

use bulwark_core::StoreError;
use bulwark_core::model::{AuditPruning, AuditRow};
use bulwark_types::{EventId, OrgId};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row as _};

use crate::map_err;

pub(crate) async fn head(
    conn: &mut PgConnection,
    log: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('bulwark.audit:' || $1, 0))")
        .bind(log)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query_scalar("SELECT frontier FROM audit_heads WHERE log = $1")
        .bind(log)
        .fetch_optional(conn)
        .await
        .map_err(map_err)
}

/// INVARIANT: `log` and `org` are the handle's own scope; `row` must match them.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    log: &str,
    org: Option<OrgId>,
    rows: &[AuditRow],
    head: &[u8],
) -> Result<(), StoreError> {
    let org_id = org.map(|o| o.as_uuid());
    // One statement for the whole batch: a round trip per event would cap group commit.
    let (mut seqs, mut ids, mut times, mut actions, mut bodies, mut leaves) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for row in rows {
        if row.log != log || row.org_id != org {
            return Err(StoreError::Corrupt("audit event for another log".into()));
        }
        seqs.push(
            i64::try_from(row.seq).map_err(|_| StoreError::Corrupt("seq out of range".into()))?,
        );
        ids.push(row.event_id.as_uuid());
        times.push(row.time);
        actions.push(row.action.as_str());
        bodies.push(
            row.body
                .as_deref()
                .ok_or_else(|| StoreError::Corrupt("appending an event without a body".into()))?,
        );
        leaves.push(row.leaf_hash.as_slice());
    }
    sqlx::query(
        "INSERT INTO audit_events (log, seq, org_id, event_id, time, action, body, leaf_hash) \
         SELECT $1, u.seq, $2, u.event_id, u.time, u.action, u.body, u.leaf_hash \
         FROM UNNEST($3::bigint[], $4::uuid[], $5::timestamptz[], $6::text[], $7::bytea[], \
                     $8::bytea[]) AS u(seq, event_id, time, action, body, leaf_hash)",
    )
    .bind(log)
    .bind(org_id)
    .bind(&seqs)
    .bind(&ids)
    .bind(&times)
    .bind(&actions)
    .bind(&bodies)
    .bind(&leaves)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
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

/// Through the owner-run function of migration 0005, which reads the retention itself and uses
/// the database clock: `now` is not trusted here. The span of what it will clear is read first,
/// with the same rule, in the same transaction (so at the same `now()`); bodies only ever go, so
/// the function clears at most those.
pub(crate) async fn prune(
    conn: &mut PgConnection,
    org: OrgId,
    _now: time::OffsetDateTime,
) -> Result<Option<AuditPruning>, StoreError> {
    type Span = (
        Option<i64>,
        Option<i64>,
        Option<time::OffsetDateTime>,
        Option<time::OffsetDateTime>,
    );
    let span: Span = sqlx::query_as(
        "SELECT min(e.seq), max(e.seq), min(e.time), max(e.time) FROM audit_events e \
         JOIN orgs o ON o.id = e.org_id \
         WHERE e.org_id = $1 AND e.body IS NOT NULL \
           AND e.time < now() - make_interval(days => o.audit_retention_days)",
    )
    .bind(org.as_uuid())
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    let n: i64 = sqlx::query_scalar("SELECT bulwark_audit_prune()")
        .fetch_one(conn)
        .await
        .map_err(map_err)?;
    let events =
        u64::try_from(n).map_err(|_| StoreError::Corrupt("negative prune count".into()))?;
    if events == 0 {
        return Ok(None);
    }
    let seq = |s: i64| u64::try_from(s).map_err(|_| StoreError::Corrupt("negative seq".into()));
    match span {
        (Some(from), Some(to), Some(oldest), Some(newest)) => Ok(Some(AuditPruning {
            events,
            seqs: (seq(from)?, seq(to)?),
            times: (oldest, newest),
        })),
        _ => Err(StoreError::Corrupt(
            "audit pruning cleared bodies outside the span read before it".into(),
        )),
    }
}

fn row(r: &PgRow) -> Result<AuditRow, StoreError> {
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
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
