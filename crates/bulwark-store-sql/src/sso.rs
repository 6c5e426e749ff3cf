//! Single sign-on: an org's connections, claimed domains, sign-in rules and bound identities
//! (org tables), and the deployment-wide records of which sign-in made a session and which
//! single-use values were spent.

use bulwark_core::StoreError;
use bulwark_core::model::{SsoConnection, SsoDomain, SsoSettings};
use bulwark_types::{ConnectionId, CredentialId, OrgId, SessionId, UserId};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::{Conn, DbRow, Pool, SSO_CONNECTION_ORG, SSO_DOMAIN_ORG, ts};
use crate::map_err;

const SELECT_CONNECTION: &str = "SELECT id, protocol, name, config, secret_id, enabled, \
     created_ms, updated_ms FROM sso_connections ";

fn connection(org: OrgId, row: &DbRow) -> Result<SsoConnection, StoreError> {
    let secret: Option<Uuid> = row.try_get("secret_id").map_err(map_err)?;
    Ok(SsoConnection {
        id: ConnectionId::from_uuid(row.try_get("id").map_err(map_err)?),
        org,
        protocol: row.try_get("protocol").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        config: row.try_get("config").map_err(map_err)?,
        secret_id: secret.map(CredentialId::from_uuid),
        enabled: row.try_get("enabled").map_err(map_err)?,
        created_ms: row.try_get("created_ms").map_err(map_err)?,
        updated_ms: row.try_get("updated_ms").map_err(map_err)?,
    })
}

pub(crate) async fn connections(
    conn: &mut Conn,
    org: OrgId,
) -> Result<Vec<SsoConnection>, StoreError> {
    let sql = format!("{SELECT_CONNECTION}WHERE org_id = $1 ORDER BY name");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.as_uuid())
        .fetch_all(conn)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| connection(org, r))
        .collect()
}

pub(crate) async fn connection_by_id(
    conn: &mut Conn,
    org: OrgId,
    id: ConnectionId,
) -> Result<Option<SsoConnection>, StoreError> {
    let sql = format!("{SELECT_CONNECTION}WHERE org_id = $1 AND id = $2");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(|r| connection(org, r))
        .transpose()
}

pub(crate) async fn create_connection(
    conn: &mut Conn,
    org: OrgId,
    c: &SsoConnection,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sso_connections (org_id, id, protocol, name, config, secret_id, enabled, \
         created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(org.as_uuid())
    .bind(c.id.as_uuid())
    .bind(&c.protocol)
    .bind(&c.name)
    .bind(&c.config)
    .bind(c.secret_id.map(|s| s.as_uuid()))
    .bind(c.enabled)
    .bind(c.created_ms)
    .bind(c.updated_ms)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn update_connection(
    conn: &mut Conn,
    org: OrgId,
    c: &SsoConnection,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sso_connections SET name = $3, config = $4, secret_id = $5, enabled = $6, \
         updated_ms = $7 WHERE org_id = $1 AND id = $2",
    )
    .bind(org.as_uuid())
    .bind(c.id.as_uuid())
    .bind(&c.name)
    .bind(&c.config)
    .bind(c.secret_id.map(|s| s.as_uuid()))
    .bind(c.enabled)
    .bind(c.updated_ms)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn clear_identities(
    conn: &mut Conn,
    org: OrgId,
    id: ConnectionId,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM sso_identities WHERE org_id = $1 AND connection_id = $2")
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected())
}

pub(crate) async fn delete_connection(
    conn: &mut Conn,
    org: OrgId,
    id: ConnectionId,
) -> Result<bool, StoreError> {
    clear_identities(&mut *conn, org, id).await?;
    let done = sqlx::query("DELETE FROM sso_connections WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn domains(conn: &mut Conn, org: OrgId) -> Result<Vec<SsoDomain>, StoreError> {
    sqlx::query(
        "SELECT domain, created_ms, verified_ms, verified_by FROM sso_domains \
         WHERE org_id = $1 ORDER BY domain",
    )
    .bind(org.as_uuid())
    .fetch_all(conn)
    .await
    .map_err(map_err)?
    .iter()
    .map(|row| {
        Ok(SsoDomain {
            domain: row.try_get("domain").map_err(map_err)?,
            org,
            created_ms: row.try_get("created_ms").map_err(map_err)?,
            verified_ms: row.try_get("verified_ms").map_err(map_err)?,
            verified_by: row.try_get("verified_by").map_err(map_err)?,
        })
    })
    .collect()
}

pub(crate) async fn create_domain(
    conn: &mut Conn,
    org: OrgId,
    d: &SsoDomain,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sso_domains (domain, org_id, created_ms, verified_ms, verified_by) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&d.domain)
    .bind(org.as_uuid())
    .bind(d.created_ms)
    .bind(d.verified_ms)
    .bind(&d.verified_by)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn verify_domain(
    conn: &mut Conn,
    org: OrgId,
    domain: &str,
    at_ms: i64,
    by: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sso_domains SET verified_ms = $3, verified_by = $4 \
         WHERE org_id = $1 AND domain = $2",
    )
    .bind(org.as_uuid())
    .bind(domain)
    .bind(at_ms)
    .bind(by)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete_domain(
    conn: &mut Conn,
    org: OrgId,
    domain: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM sso_domains WHERE org_id = $1 AND domain = $2")
        .bind(org.as_uuid())
        .bind(domain)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn settings(conn: &mut Conn, org: OrgId) -> Result<SsoSettings, StoreError> {
    let row = sqlx::query(
        "SELECT sso_required, admin_emails, idp_mfa FROM sso_settings WHERE org_id = $1",
    )
    .bind(org.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    let Some(row) = row else {
        return Ok(SsoSettings::default());
    };
    let emails: String = row.try_get("admin_emails").map_err(map_err)?;
    Ok(SsoSettings {
        sso_required: row.try_get("sso_required").map_err(map_err)?,
        admin_emails: serde_json::from_str(&emails)
            .map_err(|_| StoreError::Corrupt("sso admin emails".into()))?,
        idp_mfa: row.try_get("idp_mfa").map_err(map_err)?,
    })
}

pub(crate) async fn set_settings(
    conn: &mut Conn,
    org: OrgId,
    s: &SsoSettings,
    at_ms: i64,
) -> Result<(), StoreError> {
    let emails = serde_json::to_string(&s.admin_emails)
        .map_err(|_| StoreError::Corrupt("sso admin emails".into()))?;
    sqlx::query(
        "INSERT INTO sso_settings (org_id, sso_required, admin_emails, idp_mfa, updated_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO UPDATE SET \
         sso_required = excluded.sso_required, admin_emails = excluded.admin_emails, \
         idp_mfa = excluded.idp_mfa, updated_ms = excluded.updated_ms",
    )
    .bind(org.as_uuid())
    .bind(s.sso_required)
    .bind(emails)
    .bind(s.idp_mfa)
    .bind(at_ms)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn identity(
    conn: &mut Conn,
    org: OrgId,
    connection: ConnectionId,
    subject: &str,
) -> Result<Option<UserId>, StoreError> {
    let user: Option<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM sso_identities \
         WHERE org_id = $1 AND connection_id = $2 AND subject = $3",
    )
    .bind(org.as_uuid())
    .bind(connection.as_uuid())
    .bind(subject)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    Ok(user.map(UserId::from_uuid))
}

pub(crate) async fn bind_identity(
    conn: &mut Conn,
    org: OrgId,
    connection: ConnectionId,
    subject: &str,
    user: UserId,
    at_ms: i64,
) -> Result<(), StoreError> {
    // The user of an existing binding never changes here: only its last use.
    sqlx::query(
        "INSERT INTO sso_identities (org_id, connection_id, subject, user_id, created_ms, \
         last_ms) VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (connection_id, subject) DO UPDATE SET last_ms = excluded.last_ms",
    )
    .bind(org.as_uuid())
    .bind(connection.as_uuid())
    .bind(subject)
    .bind(user.as_uuid())
    .bind(at_ms)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn record_session(
    conn: &mut Conn,
    session: SessionId,
    connection: ConnectionId,
    subject: &str,
    sid: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sso_sessions (session_id, connection_id, subject, sid) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(session.as_uuid())
    .bind(connection.as_uuid())
    .bind(subject)
    .bind(sid)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn carry_session(
    conn: &mut Conn,
    from: SessionId,
    to: SessionId,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sso_sessions (session_id, connection_id, subject, sid) \
         SELECT $2, connection_id, subject, sid FROM sso_sessions WHERE session_id = $1",
    )
    .bind(from.as_uuid())
    .bind(to.as_uuid())
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn session_connection(
    conn: impl sqlx::Executor<'_, Database = crate::dialect::Db>,
    session: SessionId,
) -> Result<Option<ConnectionId>, StoreError> {
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT connection_id FROM sso_sessions WHERE session_id = $1")
            .bind(session.as_uuid())
            .fetch_optional(conn)
            .await
            .map_err(map_err)?;
    Ok(id.map(ConnectionId::from_uuid))
}

pub(crate) async fn sessions(
    conn: &mut Conn,
    connection: ConnectionId,
    subject: Option<&str>,
    sid: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<SessionId>, StoreError> {
    // A logout token names the subject, the provider session, or both (then both must match).
    let ids: Vec<Uuid> = sqlx::query_scalar(concat!(
        "SELECT x.session_id FROM sso_sessions x JOIN sessions s ON s.id = x.session_id \
         WHERE x.connection_id = $1 AND ($2 IS NULL OR x.subject = $2) \
         AND ($3 IS NULL OR x.sid = $3) AND ($2 IS NOT NULL OR $3 IS NOT NULL) \
         AND s.revoked_at IS NULL AND ",
        ts!("s.expires_at"),
        " > ",
        ts!("$4")
    ))
    .bind(connection.as_uuid())
    .bind(subject)
    .bind(sid)
    .bind(now)
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(ids.into_iter().map(SessionId::from_uuid).collect())
}

pub(crate) async fn connection_org(
    pool: &Pool,
    id: ConnectionId,
) -> Result<Option<OrgId>, StoreError> {
    let org: Option<Option<Uuid>> = sqlx::query_scalar(SSO_CONNECTION_ORG)
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    Ok(org.flatten().map(OrgId::from_uuid))
}

pub(crate) async fn domain_org(
    pool: &Pool,
    domain: &str,
) -> Result<Option<(OrgId, bool)>, StoreError> {
    let row = sqlx::query(SSO_DOMAIN_ORG)
        .bind(domain)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.map(|r| {
        Ok((
            OrgId::from_uuid(r.try_get("org_id").map_err(map_err)?),
            r.try_get("verified").map_err(map_err)?,
        ))
    })
    .transpose()
}

pub(crate) async fn use_once(
    pool: &Pool,
    key: &str,
    expires_ms: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    // Spent values are pruned now and then, not on every use (a write of its own).
    if now_ms % 32 == 0 {
        sqlx::query("DELETE FROM sso_replay WHERE expires_ms < $1")
            .bind(now_ms)
            .execute(pool)
            .await
            .map_err(map_err)?;
    }
    let done = sqlx::query(
        "INSERT INTO sso_replay (key, expires_ms) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(expires_ms)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}
