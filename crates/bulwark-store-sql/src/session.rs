//! Sessions: a global table, read by token hash on every authenticated request.

use bulwark_core::StoreError;
use bulwark_core::model::{Session, SessionStage};
use bulwark_crypto::TokenHash;
use bulwark_types::{SessionId, UserId};
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::dialect::{Conn, DbRow, Pool, ts};
use crate::map_err;

pub(crate) async fn by_token(pool: &Pool, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
    sqlx::query(
        "SELECT s.id, s.token_hash, s.user_id, u.email, s.created_at, s.last_seen_at, \
         s.expires_at, s.revoked_at, s.source_ip, s.user_agent, s.stage, s.mfa_at, \
         u.disabled_at IS NOT NULL AS user_disabled \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
    )
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(pool)
    .await
    .map_err(map_err)?
    .as_ref()
    .map(row)
    .transpose()
}

fn row(r: &DbRow) -> Result<Session, StoreError> {
    let hash: Vec<u8> = r.try_get("token_hash").map_err(map_err)?;
    Ok(Session {
        id: SessionId::from_uuid(r.try_get("id").map_err(map_err)?),
        token_hash: TokenHash::from_slice(&hash)
            .ok_or_else(|| StoreError::Corrupt("session token hash length".into()))?,
        user_id: UserId::from_uuid(r.try_get("user_id").map_err(map_err)?),
        email: bulwark_types::Email::from_stored(r.try_get("email").map_err(map_err)?),
        created_at: r.try_get("created_at").map_err(map_err)?,
        last_seen_at: r.try_get("last_seen_at").map_err(map_err)?,
        expires_at: r.try_get("expires_at").map_err(map_err)?,
        revoked_at: r.try_get("revoked_at").map_err(map_err)?,
        source_ip: r.try_get("source_ip").map_err(map_err)?,
        user_agent: r.try_get("user_agent").map_err(map_err)?,
        stage: SessionStage::parse(r.try_get("stage").map_err(map_err)?)
            .ok_or_else(|| StoreError::Corrupt("session stage".into()))?,
        mfa_at: r.try_get("mfa_at").map_err(map_err)?,
        user_disabled: r.try_get("user_disabled").map_err(map_err)?,
    })
}

pub(crate) async fn of_user(
    conn: &mut Conn,
    user: UserId,
    now: OffsetDateTime,
) -> Result<Vec<Session>, StoreError> {
    sqlx::query(concat!(
        "SELECT s.id, s.token_hash, s.user_id, u.email, s.created_at, s.last_seen_at, \
         s.expires_at, s.revoked_at, s.source_ip, s.user_agent, s.stage, s.mfa_at, \
         u.disabled_at IS NOT NULL AS user_disabled \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.user_id = $1 AND s.revoked_at IS NULL AND ",
        ts!("s.expires_at"),
        " > ",
        ts!("$2"),
        " ORDER BY s.created_at DESC"
    ))
    .bind(user.as_uuid())
    .bind(now)
    .fetch_all(conn)
    .await
    .map_err(map_err)?
    .iter()
    .map(row)
    .collect()
}

pub(crate) async fn revoke_all(
    conn: &mut Conn,
    user: UserId,
    except: Option<SessionId>,
    at: OffsetDateTime,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $3 \
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR id <> $2)",
    )
    .bind(user.as_uuid())
    .bind(except.map(|e| e.as_uuid()))
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

pub(crate) async fn touch(
    pool: &Pool,
    id: SessionId,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id.as_uuid())
        .bind(at)
        .execute(pool)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn create(conn: &mut Conn, s: &Session) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, \
         revoked_at, source_ip, user_agent, stage, mfa_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(s.id.as_uuid())
    .bind(s.token_hash.as_bytes().as_slice())
    .bind(s.user_id.as_uuid())
    .bind(s.created_at)
    .bind(s.last_seen_at)
    .bind(s.expires_at)
    .bind(s.revoked_at)
    .bind(s.source_ip.as_deref())
    .bind(s.user_agent.as_deref())
    .bind(s.stage.as_str())
    .bind(s.mfa_at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn revoke(
    conn: &mut Conn,
    id: SessionId,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id.as_uuid())
            .bind(at)
            .execute(conn)
            .await
            .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}
