//! PostgreSQL's batched statements, where the two engines genuinely differ: a whole batch of
//! audit events or webhook attempt outcomes goes in one statement over arrays (`UNNEST`), and
//! audit pruning runs through an owner-run function on the database clock. The SQLite twin of
//! each function has the same meaning with multi-row `VALUES` or a per-row loop.

use bulwark_core::StoreError;
use bulwark_core::model::{AttemptResult, AuditPruning, AuditRow};
use bulwark_types::OrgId;

use crate::dialect::Conn;
use crate::map_err;

/// Appends `rows` (checked by `audit::insert`: `log`'s, with bodies and seqs in range) in one
/// statement: a round trip per event would cap group commit.
pub(crate) async fn insert_audit_events(
    conn: &mut Conn,
    log: &str,
    org_id: Option<uuid::Uuid>,
    rows: &[AuditRow],
) -> Result<(), StoreError> {
    let (mut seqs, mut ids, mut times, mut actions, mut bodies, mut leaves) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for row in rows {
        seqs.push(i64::try_from(row.seq).unwrap_or(i64::MAX));
        ids.push(row.event_id.as_uuid());
        times.push(row.time);
        actions.push(row.action.as_str());
        bodies.push(row.body.as_deref().unwrap_or_default());
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
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Replaces event `seq`'s body in the log the transaction is bound to, through
/// `bulwark_audit_erase()` (migration 0023): the application role cannot update events itself.
pub(crate) async fn erase_audit_body(
    conn: &mut Conn,
    _log: &str,
    seq: u64,
    body: &[u8],
) -> Result<bool, StoreError> {
    let seq = i64::try_from(seq).map_err(|_| StoreError::Corrupt("event seq".into()))?;
    sqlx::query_scalar("SELECT bulwark_audit_erase($1, $2)")
        .bind(seq)
        .bind(body)
        .fetch_one(conn)
        .await
        .map_err(map_err)
}

/// Through the owner-run function of migration 0005, which reads the retention itself and uses
/// the database clock: `now` is not trusted here. The span of what it will clear is read first,
/// with the same rule, in the same transaction (so at the same `now()`); bodies only ever go, so
/// the function clears at most those.
pub(crate) async fn prune_audit(
    conn: &mut Conn,
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

pub(crate) async fn finish_attempts(
    conn: &mut Conn,
    org: OrgId,
    results: &[AttemptResult],
) -> Result<(), StoreError> {
    // The whole batch in two statements (arrays, UNNEST): one round trip each, however many
    // results. Same meaning as SQLite's per-row loop.
    let n = results.len();
    let (mut delivery, mut message, mut endpoint) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut attempt, mut at, mut status, mut latency) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut error, mut response, mut delivered, mut state, mut next, mut back) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for r in results {
        let a = &r.attempt;
        delivery.push(a.delivery.as_uuid());
        message.push(a.message.as_uuid());
        endpoint.push(a.endpoint.as_uuid());
        attempt.push(i64::from(a.attempt));
        at.push(a.at);
        status.push(a.status.map(i64::from));
        latency.push(i64::from(a.latency_ms));
        error.push(a.error.clone());
        response.push(a.response.clone());
        delivered.push(a.delivered);
        state.push(match (a.delivered, r.retry_at_ms) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        });
        next.push(if a.delivered { None } else { r.retry_at_ms });
        back.push(i64::from(!r.counts));
    }
    // The endpoint (and its deliveries) may have been deleted meanwhile: nothing to log.
    sqlx::query(
        "INSERT INTO webhook_attempts (org_id, delivery_id, message_id, endpoint_id, attempt, \
         at, status, latency_ms, error, response, delivered) \
         SELECT $1, u.delivery_id, u.message_id, u.endpoint_id, u.attempt, u.at, u.status, \
         u.latency_ms, u.error, u.response, u.delivered \
         FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[], $6::timestamptz[], \
         $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::boolean[]) \
         AS u(delivery_id, message_id, endpoint_id, attempt, at, status, latency_ms, error, \
         response, delivered) \
         WHERE EXISTS (SELECT 1 FROM webhook_deliveries d \
         WHERE d.org_id = $1 AND d.id = u.delivery_id)",
    )
    .bind(org.as_uuid())
    .bind(&delivery)
    .bind(&message)
    .bind(&endpoint)
    .bind(&attempt)
    .bind(&at)
    .bind(&status)
    .bind(&latency)
    .bind(&error)
    .bind(&response)
    .bind(&delivered)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    // Fenced to each claim: a worker whose lease ran out (and whose delivery another one
    // claimed again, raising `attempts`) only logs its attempt. An attempt Bulwark itself could
    // not make is given back, so the schedule counts only attempts that reached the receiver.
    sqlx::query(
        "UPDATE webhook_deliveries d SET state = u.state, next_attempt_ms = u.next, \
         lease_until_ms = 0, attempts = d.attempts - u.back \
         FROM UNNEST($2::uuid[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) \
         AS u(id, state, next, attempt, back) \
         WHERE d.org_id = $1 AND d.id = u.id AND d.state = 'pending' AND d.attempts = u.attempt \
         AND d.lease_until_ms > 0",
    )
    .bind(org.as_uuid())
    .bind(&delivery)
    .bind(&state)
    .bind(&next)
    .bind(&attempt)
    .bind(&back)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}
