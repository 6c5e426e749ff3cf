//! Org deletion: the schedule on the org's row, the org's vault key (crypto-shredding), the
//! purge of every org-scoped row, and the certificates kept after the org is gone.

use bulwark_core::StoreError;
use bulwark_core::model::OrgDeletion;
use bulwark_crypto::vault::OrgKey;
use bulwark_types::OrgId;
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::dialect::{Conn, Pool};
use crate::map_err;

/// The org-scoped tables a purge empties, children before parents (every foreign key holds
/// after each statement). `orgs` itself stays as a tombstone; `audit_*` stays sealed.
pub(crate) const PURGED_TABLES: &[&str] = &[
    "scim_group_members",
    "scim_groups",
    "scim_users",
    "sso_identities",
    "sso_domains",
    "sso_settings",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_messages",
    "webhook_endpoints",
    "sso_connections",
    "credentials",
    "org_keys",
    "api_keys",
    "team_members",
    "teams",
    "authz_policy_sets",
    "invitations",
    "memberships",
];

pub(crate) async fn state(conn: &mut Conn, org: OrgId) -> Result<Option<OrgDeletion>, StoreError> {
    state_held(conn, org, "").await
}

/// As [`state`], the org's row locked with `lock` (`FOR UPDATE`, or nothing) until the
/// transaction ends.
pub(crate) async fn state_held(
    conn: &mut Conn,
    org: OrgId,
    lock: &str,
) -> Result<Option<OrgDeletion>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT deletion_requested_at, deletion_requested_by, deletion_due_at, purged_at \
         FROM orgs WHERE id = $1{lock}"
    )))
    .bind(org.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    let Some(row) = row else {
        return Err(StoreError::NotFound);
    };
    let requested_at: Option<OffsetDateTime> =
        row.try_get("deletion_requested_at").map_err(map_err)?;
    let requested_by: Option<String> = row.try_get("deletion_requested_by").map_err(map_err)?;
    let due_at: Option<OffsetDateTime> = row.try_get("deletion_due_at").map_err(map_err)?;
    let purged_at: Option<OffsetDateTime> = row.try_get("purged_at").map_err(map_err)?;
    Ok(match (requested_at, requested_by, due_at) {
        (Some(requested_at), Some(requested_by), Some(due_at)) => Some(OrgDeletion {
            requested_at,
            requested_by,
            due_at,
            purged_at,
        }),
        _ => None,
    })
}

pub(crate) async fn schedule(
    conn: &mut Conn,
    org: OrgId,
    schedule: Option<(OffsetDateTime, &str, OffsetDateTime)>,
) -> Result<bool, StoreError> {
    let (at, by, due) = match schedule {
        Some((at, by, due)) => (Some(at), Some(by), Some(due)),
        None => (None, None, None),
    };
    let done = sqlx::query(
        "UPDATE orgs SET deletion_requested_at = $2, deletion_requested_by = $3, \
         deletion_due_at = $4 WHERE id = $1 AND purged_at IS NULL",
    )
    .bind(org.as_uuid())
    .bind(at)
    .bind(by)
    .bind(due)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn org_key(
    conn: &mut Conn,
    org: OrgId,
) -> Result<Option<(Uuid, OrgKey)>, StoreError> {
    let row = sqlx::query("SELECT id, secret FROM org_keys WHERE org_id = $1")
        .bind(org.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_err)?;
    row.map(|r| {
        let secret = Zeroizing::new(r.try_get::<Vec<u8>, _>("secret").map_err(map_err)?);
        let key =
            OrgKey::from_slice(&secret).ok_or_else(|| StoreError::Corrupt("org key".into()))?;
        Ok((r.try_get::<Uuid, _>("id").map_err(map_err)?, key))
    })
    .transpose()
}

pub(crate) async fn create_org_key(
    conn: &mut Conn,
    org: OrgId,
    id: Uuid,
    secret: &[u8],
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO org_keys (org_id, id, secret, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(secret)
    .bind(now)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

/// Deletes every row of [`PURGED_TABLES`] that belongs to `org` and turns its row into a
/// tombstone; the rows deleted per table.
pub(crate) async fn purge(
    conn: &mut Conn,
    org: OrgId,
    tombstone_slug: &str,
    now: OffsetDateTime,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut counts = Vec::with_capacity(PURGED_TABLES.len());
    for table in PURGED_TABLES {
        let sql = format!("DELETE FROM {table} WHERE org_id = $1");
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.as_uuid())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        counts.push(((*table).to_owned(), done.rows_affected()));
    }
    let done = sqlx::query(
        "UPDATE orgs SET slug = $2, name = $3, purged_at = $4 \
         WHERE id = $1 AND purged_at IS NULL",
    )
    .bind(org.as_uuid())
    .bind(tombstone_slug)
    .bind("purged organisation")
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::NotFound);
    }
    Ok(counts)
}

pub(crate) async fn seal(conn: &mut Conn, org: OrgId, size: u64) -> Result<(), StoreError> {
    let size = i64::try_from(size).map_err(|_| StoreError::Corrupt("log size".into()))?;
    sqlx::query("UPDATE orgs SET audit_sealed_size = $2 WHERE id = $1")
        .bind(org.as_uuid())
        .bind(size)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn insert_certificate(
    conn: &mut Conn,
    org: OrgId,
    purged_at: OffsetDateTime,
    body: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO deletion_certificates (org_id, purged_at, body) VALUES ($1, $2, $3)")
        .bind(org.as_uuid())
        .bind(purged_at)
        .bind(body)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn certificate(conn: &mut Conn, org: OrgId) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT body FROM deletion_certificates WHERE org_id = $1")
        .bind(org.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_err)
}

pub(crate) async fn certificates(
    conn: &mut Conn,
) -> Result<Vec<(OrgId, OffsetDateTime)>, StoreError> {
    let rows: Vec<(Uuid, OffsetDateTime)> =
        sqlx::query_as("SELECT org_id, purged_at FROM deletion_certificates ORDER BY purged_at")
            .fetch_all(conn)
            .await
            .map_err(map_err)?;
    Ok(rows
        .into_iter()
        .map(|(o, t)| (OrgId::from_uuid(o), t))
        .collect())
}

pub(crate) async fn delete_ended_sessions(
    conn: &mut Conn,
    before: OffsetDateTime,
) -> Result<u64, StoreError> {
    const ENDED: &str = "(revoked_at < $1 OR expires_at < $1 OR last_seen_at < $1)";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM sso_sessions WHERE session_id IN (SELECT id FROM sessions WHERE {ENDED})"
    )))
    .bind(before)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM sessions WHERE {ENDED}"
    )))
    .bind(before)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

pub(crate) async fn delete_closed_invitations(
    conn: &mut Conn,
    org: OrgId,
    before: OffsetDateTime,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM invitations WHERE org_id = $1 \
         AND coalesce(accepted_at, revoked_at, expires_at) < $2",
    )
    .bind(org.as_uuid())
    .bind(before)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

async fn delete_counted(
    conn: &mut Conn,
    counts: &mut Vec<(String, u64)>,
    table: &str,
    sql: &str,
    binds: (&Uuid, Option<&Uuid>, Option<&str>),
) -> Result<(), StoreError> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).bind(*binds.0);
    if let Some(u) = binds.1 {
        q = q.bind(*u);
    }
    if let Some(t) = binds.2 {
        q = q.bind(t.to_owned());
    }
    let done = q.execute(&mut *conn).await.map_err(map_err)?;
    counts.push((table.to_owned(), done.rows_affected()));
    Ok(())
}

pub(crate) async fn erase_user(
    conn: &mut Conn,
    user: bulwark_types::UserId,
    email_key: &str,
    throttle_key: &str,
    tombstone_email: &str,
    now: OffsetDateTime,
) -> Result<Vec<(String, u64)>, StoreError> {
    let id = user.as_uuid();
    let mut counts = Vec::new();
    sqlx::query(
        "DELETE FROM sso_sessions WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    for table in [
        "sessions",
        "mfa_backup_codes",
        "mfa_totp",
        "user_tokens",
        "mail_limits",
    ] {
        let sql = format!("DELETE FROM {table} WHERE user_id = $1");
        delete_counted(conn, &mut counts, table, &sql, (&id, None, None)).await?;
    }
    let done = sqlx::query("DELETE FROM mail_jobs WHERE email_key = $1")
        .bind(email_key)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    counts.push(("mail_jobs".into(), done.rows_affected()));
    let done = sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(throttle_key)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    counts.push(("login_throttle".into(), done.rows_affected()));
    let done = sqlx::query(
        "UPDATE users SET email = $2, email_key = $2, password_hash = '!erased', \
         email_verified_at = NULL, disabled_at = coalesce(disabled_at, $3), erased_at = $3 \
         WHERE id = $1 AND erased_at IS NULL",
    )
    .bind(id)
    .bind(tombstone_email)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::NotFound);
    }
    counts.push(("users".into(), 1));
    Ok(counts)
}

pub(crate) async fn erase_member(
    conn: &mut Conn,
    org: OrgId,
    user: bulwark_types::UserId,
    email_key: &str,
    email: &str,
) -> Result<Vec<(String, u64)>, StoreError> {
    let (o, u) = (org.as_uuid(), user.as_uuid());
    let mut counts = Vec::new();
    for table in [
        "scim_group_members",
        "scim_users",
        "sso_identities",
        "team_members",
        "memberships",
    ] {
        let sql = format!("DELETE FROM {table} WHERE org_id = $1 AND user_id = $2");
        delete_counted(conn, &mut counts, table, &sql, (&o, Some(&u), None)).await?;
    }
    let sql = "DELETE FROM invitations WHERE org_id = $1 AND email_key = $2";
    delete_counted(
        conn,
        &mut counts,
        "invitations",
        sql,
        (&o, None, Some(email_key)),
    )
    .await?;
    // Webhook messages copy events whole, their address and user agent included: the messages
    // naming them (as `usr_…` or by address) go, with their deliveries and attempts.
    let like = |text: &str| {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    };
    let (by_id, by_email) = (like(&user.to_string()), like(email));
    const NAMING: &str = "SELECT m.id FROM webhook_messages m WHERE m.org_id = $1 \
         AND (m.payload LIKE $2 ESCAPE '\\' OR m.payload LIKE $3 ESCAPE '\\')";
    for (table, sql) in [
        (
            "webhook_attempts",
            format!("DELETE FROM webhook_attempts WHERE org_id = $1 AND message_id IN ({NAMING})"),
        ),
        (
            "webhook_deliveries",
            format!(
                "DELETE FROM webhook_deliveries WHERE org_id = $1 AND message_id IN ({NAMING})"
            ),
        ),
        (
            "webhook_messages",
            format!("DELETE FROM webhook_messages WHERE org_id = $1 AND id IN ({NAMING})"),
        ),
    ] {
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(o)
            .bind(&by_id)
            .bind(&by_email)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        counts.push((table.to_owned(), done.rows_affected()));
    }
    Ok(counts)
}

/// The org ids `sql` lists (an engine's statement of `dialect`), bound to `at` when given.
pub(crate) async fn org_ids(
    pool: &Pool,
    sql: &'static str,
    at: Option<OffsetDateTime>,
) -> Result<Vec<OrgId>, StoreError> {
    let mut query = sqlx::query_scalar::<_, Uuid>(sql);
    if let Some(at) = at {
        query = query.bind(at);
    }
    let ids = query.fetch_all(pool).await.map_err(map_err)?;
    Ok(ids.into_iter().map(OrgId::from_uuid).collect())
}
