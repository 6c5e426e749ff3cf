//! The mail queue (`mail_jobs`: requests for a token email, coalesced per purpose and address)
//! and the per-account mail limits (`mail_limits`). A claimer skips the jobs another replica is
//! claiming, and a worker holds the limit it changes (row locks on PostgreSQL; SQLite serialises
//! writers).

use bulwark_core::StoreError;
use bulwark_core::model::{MailJob, MailLimit, TokenPurpose};
use bulwark_types::UserId;
use sqlx::Row as _;
use uuid::Uuid;

use crate::dialect::{Conn, DbRow, FOR_UPDATE, FOR_UPDATE_SKIP_LOCKED, Pool};
use crate::{map_err, parse};

const JOB_COLUMNS: &str = "id, purpose, email, source_ip, user_agent, request_id, created_ms";

fn purpose(s: &str) -> Result<TokenPurpose, StoreError> {
    match s {
        "verify_email" => Ok(TokenPurpose::VerifyEmail),
        "reset_password" => Ok(TokenPurpose::ResetPassword),
        _ => Err(StoreError::Corrupt(
            "stored mail purpose does not parse".into(),
        )),
    }
}

fn job(row: &DbRow) -> Result<MailJob, StoreError> {
    Ok(MailJob {
        id: row.try_get::<Uuid, _>("id").map_err(map_err)?,
        purpose: purpose(row.try_get("purpose").map_err(map_err)?)?,
        email: parse("email", row.try_get("email").map_err(map_err)?)?,
        source_ip: row.try_get("source_ip").map_err(map_err)?,
        user_agent: row.try_get("user_agent").map_err(map_err)?,
        request_id: row.try_get("request_id").map_err(map_err)?,
        created_ms: row.try_get("created_ms").map_err(map_err)?,
    })
}

pub(crate) async fn enqueue(pool: &Pool, j: &MailJob) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mail_jobs (id, purpose, email, email_key, source_ip, user_agent, request_id, \
         created_ms, lease_until_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0) \
         ON CONFLICT (purpose, email_key) DO NOTHING",
    )
    .bind(j.id)
    .bind(j.purpose.as_str())
    .bind(j.email.as_str())
    .bind(j.email.as_str().to_lowercase())
    .bind(j.source_ip.as_deref())
    .bind(j.user_agent.as_deref())
    .bind(j.request_id.as_deref())
    .bind(j.created_ms)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn claim(
    pool: &Pool,
    now_ms: i64,
    lease_until_ms: i64,
    limit: u32,
) -> Result<Vec<MailJob>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE mail_jobs SET lease_until_ms = $2 WHERE id IN \
         (SELECT id FROM mail_jobs WHERE lease_until_ms <= $1 ORDER BY created_ms, id LIMIT $3\
         {FOR_UPDATE_SKIP_LOCKED}) RETURNING {JOB_COLUMNS}"
    )))
    .bind(now_ms)
    .bind(lease_until_ms)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    let mut jobs = rows.iter().map(job).collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by_key(|j| (j.created_ms, j.id));
    Ok(jobs)
}

pub(crate) async fn backlog(pool: &Pool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_jobs")
        .fetch_one(pool)
        .await
        .map_err(map_err)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt("mail job count".into()))
}

pub(crate) async fn done(conn: &mut Conn, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mail_jobs WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn lock_limit(
    conn: &mut Conn,
    user: UserId,
    p: TokenPurpose,
) -> Result<Option<MailLimit>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT last_sent_ms, window_start_ms, sent_in_window, noted FROM mail_limits \
         WHERE user_id = $1 AND purpose = $2{FOR_UPDATE}"
    )))
    .bind(user.as_uuid())
    .bind(p.as_str())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    let Some(row) = row else { return Ok(None) };
    let sent: i64 = row.try_get("sent_in_window").map_err(map_err)?;
    Ok(Some(MailLimit {
        last_sent_ms: row.try_get("last_sent_ms").map_err(map_err)?,
        window_start_ms: row.try_get("window_start_ms").map_err(map_err)?,
        sent_in_window: u32::try_from(sent)
            .map_err(|_| StoreError::Corrupt("mail limit count".into()))?,
        noted: row.try_get("noted").map_err(map_err)?,
    }))
}

pub(crate) async fn set_limit(
    conn: &mut Conn,
    user: UserId,
    p: TokenPurpose,
    l: &MailLimit,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mail_limits (user_id, purpose, last_sent_ms, window_start_ms, \
         sent_in_window, noted) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id, purpose) DO UPDATE SET last_sent_ms = excluded.last_sent_ms, \
         window_start_ms = excluded.window_start_ms, sent_in_window = excluded.sent_in_window, \
         noted = excluded.noted",
    )
    .bind(user.as_uuid())
    .bind(p.as_str())
    .bind(l.last_sent_ms)
    .bind(l.window_start_ms)
    .bind(i64::from(l.sent_in_window))
    .bind(l.noted)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}
