//! Accounts, MFA, single-use tokens, sign-in throttling and org sign-in rules.

use bulwark_core::StoreError;
use bulwark_core::model::{
    Invitation, MfaRequirement, OrgPolicy, ThrottleRow, TokenPurpose, TotpRecord, User, UserToken,
};
use bulwark_crypto::{PasswordHashString, TokenHash};
use bulwark_types::{Email, InvitationId, OrgId, UserId};
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::dialect::{Conn, DbRow, INVITATION_ORG, NON_ASCII_EMAILS, Pool, ts};
use crate::map_err;

fn user(row: &DbRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::from_uuid(row.try_get("id").map_err(map_err)?),
        email: Email::from_stored(row.try_get("email").map_err(map_err)?),
        password_hash: PasswordHashString::from_stored(
            row.try_get("password_hash").map_err(map_err)?,
        ),
        created_at: row.try_get("created_at").map_err(map_err)?,
        email_verified_at: row.try_get("email_verified_at").map_err(map_err)?,
        disabled_at: row.try_get("disabled_at").map_err(map_err)?,
    })
}

pub(crate) async fn user_by_email(
    conn: &mut Conn,
    email: &Email,
) -> Result<Option<User>, StoreError> {
    sqlx::query(
        "SELECT id, email, password_hash, created_at, email_verified_at, disabled_at \
         FROM users WHERE email_key = $1",
    )
    .bind(email.key())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?
    .as_ref()
    .map(user)
    .transpose()
}

pub(crate) async fn user_by_id(conn: &mut Conn, id: UserId) -> Result<Option<User>, StoreError> {
    sqlx::query(
        "SELECT id, email, password_hash, created_at, email_verified_at, disabled_at \
         FROM users WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?
    .as_ref()
    .map(user)
    .transpose()
}

pub(crate) async fn update_user(conn: &mut Conn, u: &User) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = $2, email_verified_at = $3, disabled_at = $4 \
         WHERE id = $1",
    )
    .bind(u.id.as_uuid())
    .bind(u.password_hash.as_str())
    .bind(u.email_verified_at)
    .bind(u.disabled_at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

pub(crate) async fn totp(conn: &mut Conn, user: UserId) -> Result<Option<TotpRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT secret_sealed, created_at, enabled_at, last_step FROM mfa_totp WHERE user_id = $1",
    )
    .bind(user.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    let Some(row) = row else { return Ok(None) };
    let last_step: Option<i64> = row.try_get("last_step").map_err(map_err)?;
    Ok(Some(TotpRecord {
        user_id: user,
        secret_sealed: row.try_get("secret_sealed").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        enabled_at: row.try_get("enabled_at").map_err(map_err)?,
        last_step: last_step
            .map(|s| u64::try_from(s).map_err(|_| StoreError::Corrupt("negative step".into())))
            .transpose()?,
    }))
}

pub(crate) async fn replace_totp(
    conn: &mut Conn,
    user: UserId,
    record: Option<&TotpRecord>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let Some(r) = record else {
        sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO mfa_totp (user_id, secret_sealed, created_at, enabled_at, last_step) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.as_uuid())
    .bind(r.secret_sealed.as_slice())
    .bind(r.created_at)
    .bind(r.enabled_at)
    .bind(r.last_step.map(step_i64).transpose()?)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

fn step_i64(step: u64) -> Result<i64, StoreError> {
    i64::try_from(step).map_err(|_| StoreError::Corrupt("time step out of range".into()))
}

pub(crate) async fn use_totp_step(
    conn: &mut Conn,
    user: UserId,
    step: u64,
    enable_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE mfa_totp SET last_step = $2, enabled_at = COALESCE(enabled_at, $3) \
         WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)",
    )
    .bind(user.as_uuid())
    .bind(step_i64(step)?)
    .bind(enable_at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn replace_backup_codes(
    conn: &mut Conn,
    user: UserId,
    hashes: &[TokenHash],
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    for h in hashes {
        sqlx::query(
            "INSERT INTO mfa_backup_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(user.as_uuid())
        .bind(h.as_bytes().as_slice())
        .bind(at)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

pub(crate) async fn use_backup_code(
    conn: &mut Conn,
    user: UserId,
    hash: &TokenHash,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE mfa_backup_codes SET used_at = $3 \
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user.as_uuid())
    .bind(hash.as_bytes().as_slice())
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn backup_codes_left(conn: &mut Conn, user: UserId) -> Result<u32, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM mfa_backup_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user.as_uuid())
    .fetch_one(conn)
    .await
    .map_err(map_err)?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt("backup code count".into()))
}

pub(crate) async fn create_user_token(conn: &mut Conn, t: &UserToken) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO user_tokens (token_hash, purpose, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(t.hash.as_bytes().as_slice())
    .bind(t.purpose.as_str())
    .bind(t.user_id.as_uuid())
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn redeem_user_token(
    conn: &mut Conn,
    hash: &TokenHash,
    purpose: TokenPurpose,
    now: OffsetDateTime,
) -> Result<Option<UserId>, StoreError> {
    let user: Option<uuid::Uuid> = sqlx::query_scalar(concat!(
        "UPDATE user_tokens SET used_at = $3 \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND ",
        ts!("expires_at"),
        " > ",
        ts!("$3"),
        " RETURNING user_id"
    ))
    .bind(hash.as_bytes().as_slice())
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    Ok(user.map(UserId::from_uuid))
}

pub(crate) async fn throttle_state(
    pool: &Pool,
    keys: &[String],
) -> Result<Vec<ThrottleRow>, StoreError> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let row: Option<(i32, OffsetDateTime)> =
            sqlx::query_as("SELECT failures, last_failure_at FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
                .map_err(map_err)?;
        if let Some((failures, last_failure_at)) = row {
            out.push(ThrottleRow {
                key: key.clone(),
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                last_failure_at,
            });
        }
    }
    Ok(out)
}

pub(crate) async fn throttle_fail(
    pool: &Pool,
    key: &str,
    now: OffsetDateTime,
    forget_before: OffsetDateTime,
) -> Result<u32, StoreError> {
    let failures: i32 = sqlx::query_scalar(concat!(
        "INSERT INTO login_throttle (key, failures, last_failure_at) VALUES ($1, 1, $2) \
         ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN ",
        ts!("login_throttle.last_failure_at"),
        " < ",
        ts!("$3"),
        " THEN 1 WHEN login_throttle.failures >= 1000000 THEN 1000000 \
           ELSE login_throttle.failures + 1 END, \
           last_failure_at = $2 \
         RETURNING failures"
    ))
    .bind(key)
    .bind(now)
    .bind(forget_before)
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    Ok(u32::try_from(failures).unwrap_or(u32::MAX))
}

pub(crate) async fn throttle_clear(pool: &Pool, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await
        .map_err(map_err)?;
    Ok(())
}

fn secs(v: Option<i32>, what: &str) -> Result<Option<u32>, StoreError> {
    v.map(|s| u32::try_from(s).map_err(|_| StoreError::Corrupt(format!("negative {what}"))))
        .transpose()
}

pub(crate) async fn policy(conn: &mut Conn, org: OrgId) -> Result<OrgPolicy, StoreError> {
    let row = sqlx::query(
        "SELECT session_idle_secs, session_absolute_secs, mfa_required, password_composition \
         FROM orgs WHERE id = $1",
    )
    .bind(org.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?
    .ok_or(StoreError::NotFound)?;
    Ok(OrgPolicy {
        session_idle_secs: secs(row.try_get("session_idle_secs").map_err(map_err)?, "idle")?,
        session_absolute_secs: secs(
            row.try_get("session_absolute_secs").map_err(map_err)?,
            "absolute",
        )?,
        mfa_required: MfaRequirement::parse(row.try_get("mfa_required").map_err(map_err)?)
            .ok_or_else(|| StoreError::Corrupt("mfa_required".into()))?,
        password_composition: row.try_get("password_composition").map_err(map_err)?,
    })
}

pub(crate) async fn set_policy(
    conn: &mut Conn,
    org: OrgId,
    p: &OrgPolicy,
) -> Result<(), StoreError> {
    let to_i32 = |v: Option<u32>| {
        v.map(|s| i32::try_from(s).map_err(|_| StoreError::Corrupt("timeout out of range".into())))
            .transpose()
    };
    let done = sqlx::query(
        "UPDATE orgs SET session_idle_secs = $2, session_absolute_secs = $3, mfa_required = $4, \
         password_composition = $5 WHERE id = $1",
    )
    .bind(org.as_uuid())
    .bind(to_i32(p.session_idle_secs)?)
    .bind(to_i32(p.session_absolute_secs)?)
    .bind(p.mfa_required.as_str())
    .bind(p.password_composition)
    .execute(conn)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

pub(crate) async fn create_user(conn: &mut Conn, u: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, email, email_key, password_hash, created_at, email_verified_at, \
         disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(u.id.as_uuid())
    .bind(u.email.as_str())
    .bind(u.email.key())
    .bind(u.password_hash.as_str())
    .bind(u.created_at)
    .bind(u.email_verified_at)
    .bind(u.disabled_at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

const INVITATION_COLUMNS: &str = "id, org_id, token_hash, email, role, invited_by, created_at, \
     expires_at, accepted_at, revoked_at";

fn invitation(row: &DbRow) -> Result<Invitation, StoreError> {
    let hash: Vec<u8> = row.try_get("token_hash").map_err(map_err)?;
    Ok(Invitation {
        id: InvitationId::from_uuid(row.try_get("id").map_err(map_err)?),
        org_id: OrgId::from_uuid(row.try_get("org_id").map_err(map_err)?),
        token_hash: TokenHash::from_slice(&hash)
            .ok_or_else(|| StoreError::Corrupt("invitation token hash length".into()))?,
        email: Email::from_stored(row.try_get("email").map_err(map_err)?),
        role: crate::role(row.try_get("role").map_err(map_err)?)?,
        invited_by: UserId::from_uuid(row.try_get("invited_by").map_err(map_err)?),
        created_at: row.try_get("created_at").map_err(map_err)?,
        expires_at: row.try_get("expires_at").map_err(map_err)?,
        accepted_at: row.try_get("accepted_at").map_err(map_err)?,
        revoked_at: row.try_get("revoked_at").map_err(map_err)?,
    })
}

pub(crate) async fn create_invitation(
    conn: &mut Conn,
    org: OrgId,
    i: &Invitation,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invitations (id, org_id, token_hash, email, email_key, role, invited_by, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(i.id.as_uuid())
    .bind(org.as_uuid())
    .bind(i.token_hash.as_bytes().as_slice())
    .bind(i.email.as_str())
    .bind(i.email.key())
    .bind(i.role.as_str())
    .bind(i.invited_by.as_uuid())
    .bind(i.created_at)
    .bind(i.expires_at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn open_invitations(
    conn: &mut Conn,
    org: OrgId,
) -> Result<Vec<Invitation>, StoreError> {
    let sql = format!(
        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org_id = $1 \
         AND accepted_at IS NULL AND revoked_at IS NULL ORDER BY created_at DESC"
    );
    // The column list is a constant.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.as_uuid())
        .fetch_all(conn)
        .await
        .map_err(map_err)?
        .iter()
        .map(invitation)
        .collect()
}

pub(crate) async fn accept_invitation(
    conn: &mut Conn,
    org: OrgId,
    hash: &TokenHash,
    now: OffsetDateTime,
) -> Result<Option<Invitation>, StoreError> {
    let sql = format!(
        "UPDATE invitations SET accepted_at = $3 WHERE org_id = $1 AND token_hash = $2 \
         AND accepted_at IS NULL AND revoked_at IS NULL \
         AND {} > {} RETURNING {INVITATION_COLUMNS}",
        ts!("expires_at"),
        ts!("$3"),
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.as_uuid())
        .bind(hash.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(conn)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(invitation)
        .transpose()
}

pub(crate) async fn revoke_invitation(
    conn: &mut Conn,
    org: OrgId,
    id: InvitationId,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE invitations SET revoked_at = $3 WHERE org_id = $1 AND id = $2 \
         AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn invitation_org(
    pool: &Pool,
    hash: &TokenHash,
) -> Result<Option<OrgId>, StoreError> {
    // Across orgs, with the org id only (on PostgreSQL through an owner-run function: row-level
    // security hides every invitation outside a bound org). No row and a NULL both mean none.
    let org: Option<Option<uuid::Uuid>> = sqlx::query_scalar(INVITATION_ORG)
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    Ok(org.flatten().map(OrgId::from_uuid))
}

pub(crate) async fn mfa_status(pool: &Pool, user: UserId) -> Result<(bool, u32), StoreError> {
    let (enabled, left): (Option<bool>, i64) = sqlx::query_as(
        "SELECT (SELECT enabled_at IS NOT NULL FROM mfa_totp WHERE user_id = $1), \
         (SELECT COUNT(*) FROM mfa_backup_codes WHERE user_id = $1 AND used_at IS NULL)",
    )
    .bind(user.as_uuid())
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    let left = u32::try_from(left).map_err(|_| StoreError::Corrupt("backup code count".into()))?;
    Ok((enabled.unwrap_or(false), left))
}

pub(crate) async fn throttle_forget(
    pool: &Pool,
    before: OffsetDateTime,
) -> Result<u64, StoreError> {
    let done = sqlx::query(concat!(
        "DELETE FROM login_throttle WHERE ",
        ts!("last_failure_at"),
        " < ",
        ts!("$1")
    ))
    .bind(before)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

/// Brings accounts stored by an older release into the current normal form of their address
/// (run after the migrations: by `migrate` as the owner on PostgreSQL, at open on SQLite): a spelling this release
/// normalises (fullwidth letters, a Unicode domain, decomposed accents) gets the normal form as
/// `email` and `email_key`. One it refuses (invisible or bidirectional controls, mixed
/// scripts), or whose normal form is another account's, is kept as stored and logged: no
/// address leads to it any more, so it cannot sign in with a password or reset one; the
/// operator decides what becomes of it. Only rows with a non-ASCII character or an `xn--`
/// label are read, so this is cheap once done.
pub(crate) async fn renormalise_emails(conn: &mut Conn) -> Result<(), sqlx::Error> {
    let rows: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(NON_ASCII_EMAILS)
        .fetch_all(&mut *conn)
        .await?;
    for (id, stored, key) in rows {
        let user = UserId::from_uuid(id);
        match stored.parse::<Email>() {
            Ok(email) if email.as_str() == stored && email.key() == key => {}
            Ok(email) => {
                let done = sqlx::query(
                    "UPDATE users SET email = $2, email_key = $3 WHERE id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM users WHERE email_key = $3 AND id <> $1)",
                )
                .bind(id)
                .bind(email.as_str())
                .bind(email.key())
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() == 1 {
                    tracing::info!(%user, "account address stored in its normal form");
                } else {
                    tracing::warn!(%user, "account address is another account's in normal form; kept as stored, no address leads to it");
                }
            }
            Err(refused) => {
                tracing::warn!(%user, reason = %refused, "account address refused by this release; kept as stored, no address leads to it");
            }
        }
    }
    Ok(())
}
