//! SQLite's batched statements, where the two engines genuinely differ: audit events go in
//! multi-row `VALUES` statements, webhook attempt outcomes row by row, and audit pruning clears
//! bodies through the prune gate. The PostgreSQL twin of each function has the same meaning
//! with arrays (`UNNEST`) and an owner-run function.

use bulwark_core::StoreError;
use bulwark_core::model::{AttemptResult, AuditPruning, AuditRow};
use bulwark_types::OrgId;
use sqlx::{QueryBuilder, Sqlite};

use crate::dialect::Conn;
use crate::map_err;

/// Events per INSERT statement.
const INSERT_CHUNK: usize = 256;

/// Appends `rows` (checked by `audit::insert`: `log`'s, with bodies and seqs in range) in
/// multi-row statements (8 values per row, well under SQLite's variable limit): a statement per
/// event would cap group commit.
pub(crate) async fn insert_audit_events(
    conn: &mut Conn,
    log: &str,
    org_id: Option<uuid::Uuid>,
    rows: &[AuditRow],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO audit_events (log, seq, org_id, event_id, time, action, body, leaf_hash) ",
        );
        sql.push_values(chunk, |mut b, row| {
            b.push_bind(log)
                .push_bind(i64::try_from(row.seq).unwrap_or(i64::MAX))
                .push_bind(org_id)
                .push_bind(row.event_id.as_uuid())
                .push_bind(row.time)
                .push_bind(row.action.as_str())
                .push_bind(row.body.as_deref())
                .push_bind(row.leaf_hash.as_slice());
        });
        sql.build().execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}

/// Clears bodies older than the org's retention, through the prune gate (migration 0005); the
/// trigger (migration 0017) refuses any body younger than the retention by SQLite's own clock.
pub(crate) async fn prune_audit(
    conn: &mut Conn,
    org: OrgId,
    now: time::OffsetDateTime,
) -> Result<Option<AuditPruning>, StoreError> {
    let Some(days) = crate::audit::retention(conn, org).await? else {
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

/// Replaces event `seq`'s body in `log` through the erase gate (migration 0023), which lets
/// through only a body replaced by another, every other column unchanged.
pub(crate) async fn erase_audit_body(
    conn: &mut Conn,
    log: &str,
    seq: u64,
    body: &[u8],
) -> Result<bool, StoreError> {
    let seq = i64::try_from(seq).map_err(|_| StoreError::Corrupt("event seq".into()))?;
    sqlx::query("INSERT INTO audit_erase_gate (open) VALUES (1)")
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let done = sqlx::query(
        "UPDATE audit_events SET body = $3 WHERE log = $1 AND seq = $2 AND body IS NOT NULL",
    )
    .bind(log)
    .bind(seq)
    .bind(body)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    sqlx::query("DELETE FROM audit_erase_gate")
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
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

pub(crate) async fn finish_attempts(
    conn: &mut Conn,
    org: OrgId,
    results: &[AttemptResult],
) -> Result<(), StoreError> {
    for r in results {
        let a = &r.attempt;
        // The endpoint (and its deliveries) may have been deleted meanwhile: nothing to log.
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE org_id = $1 AND id = $2)",
        )
        .bind(org.as_uuid())
        .bind(a.delivery.as_uuid())
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        if !exists {
            continue;
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (org_id, delivery_id, message_id, endpoint_id, attempt, \
             at, status, latency_ms, error, response, delivered) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(org.as_uuid())
        .bind(a.delivery.as_uuid())
        .bind(a.message.as_uuid())
        .bind(a.endpoint.as_uuid())
        .bind(i64::from(a.attempt))
        .bind(a.at)
        .bind(a.status.map(i64::from))
        .bind(i64::from(a.latency_ms))
        .bind(a.error.as_deref())
        .bind(a.response.as_deref())
        .bind(a.delivered)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
        let state = match (a.delivered, r.retry_at_ms) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        let next = if a.delivered { None } else { r.retry_at_ms };
        // Fenced to this claim: a worker whose lease ran out (and whose delivery another one
        // claimed again, raising `attempts`) only logs its attempt.
        // An attempt Bulwark itself could not make (`counts` false) is given back, so the
        // schedule counts only attempts that reached for the receiver.
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $3, next_attempt_ms = $4, lease_until_ms = 0, \
             attempts = attempts - $6 \
             WHERE org_id = $1 AND id = $2 AND state = 'pending' AND attempts = $5 \
             AND lease_until_ms > 0",
        )
        .bind(org.as_uuid())
        .bind(a.delivery.as_uuid())
        .bind(state)
        .bind(next)
        .bind(i64::from(a.attempt))
        .bind(i64::from(!r.counts))
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}
