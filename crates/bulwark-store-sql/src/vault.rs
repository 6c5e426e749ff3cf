//! The credential vault's tables: key versions (deployment-wide) and an org's credentials.
//! The active version is held while a value is sealed under it, so a rotation waits; the rewrap
//! job skips rows another replica holds (row locks on PostgreSQL; SQLite serialises writers).

use bulwark_core::StoreError;
use bulwark_core::model::{Credential, VaultKey, VaultKeyState};
use bulwark_crypto::vault::SealedValue;
use bulwark_types::{CredentialId, OrgId, UserId};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::{Conn, DbRow, FOR_SHARE, FOR_UPDATE_SKIP_LOCKED, VAULT_KEY_IN_USE};
use crate::map_err;

macro_rules! select_credential {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, kind, destinations, key_version, wrapped_key, ciphertext, ",
            "created_by, created_at, updated_at, last_used_at FROM credentials ",
            $rest
        )
    };
}

fn version(v: i32) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt("vault key version".into()))
}

fn db_version(v: u32) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Corrupt("vault key version".into()))
}

fn credential(org: OrgId, row: &DbRow) -> Result<Credential, StoreError> {
    let destinations: String = row.try_get("destinations").map_err(map_err)?;
    let created_by: Option<Uuid> = row.try_get("created_by").map_err(map_err)?;
    Ok(Credential {
        id: CredentialId::from_uuid(row.try_get::<Uuid, _>("id").map_err(map_err)?),
        org,
        name: row.try_get("name").map_err(map_err)?,
        kind: row.try_get("kind").map_err(map_err)?,
        destinations: serde_json::from_str(&destinations)
            .map_err(|_| StoreError::Corrupt("credential destinations".into()))?,
        sealed: SealedValue {
            key_version: version(row.try_get("key_version").map_err(map_err)?)?,
            wrapped_key: row.try_get("wrapped_key").map_err(map_err)?,
            ciphertext: row.try_get("ciphertext").map_err(map_err)?,
        },
        created_by: created_by.map(UserId::from_uuid),
        created_at: row.try_get("created_at").map_err(map_err)?,
        updated_at: row.try_get("updated_at").map_err(map_err)?,
        last_used_at: row.try_get("last_used_at").map_err(map_err)?,
    })
}

fn vault_key(row: &DbRow) -> Result<VaultKey, StoreError> {
    let state: String = row.try_get("state").map_err(map_err)?;
    Ok(VaultKey {
        version: version(row.try_get("version").map_err(map_err)?)?,
        provider: row.try_get("provider").map_err(map_err)?,
        state: VaultKeyState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt("vault key state".into()))?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        retired_at: row.try_get("retired_at").map_err(map_err)?,
        binds_attributes: row.try_get("binds_attributes").map_err(map_err)?,
    })
}

const SELECT_KEY: &str =
    "SELECT version, provider, state, created_at, retired_at, binds_attributes FROM vault_keys";

pub(crate) async fn keys(conn: &mut Conn) -> Result<Vec<VaultKey>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT_KEY} ORDER BY version"
    )))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(vault_key).collect()
}

pub(crate) async fn key(conn: &mut Conn, v: u32) -> Result<Option<VaultKey>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT_KEY} WHERE version = $1"
    )))
    .bind(db_version(v)?)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.as_ref().map(vault_key).transpose()
}

/// The active version, held until the transaction ends.
pub(crate) async fn active_key(conn: &mut Conn) -> Result<Option<VaultKey>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT_KEY} WHERE state = 'active'{FOR_SHARE}"
    )))
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.as_ref().map(vault_key).transpose()
}

pub(crate) async fn insert_key(conn: &mut Conn, key: &VaultKey) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO vault_keys (version, provider, state, created_at, retired_at, \
         binds_attributes) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(db_version(key.version)?)
    .bind(&key.provider)
    .bind(key.state.as_str())
    .bind(key.created_at)
    .bind(key.retired_at)
    .bind(key.binds_attributes)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn in_use(conn: &mut Conn, v: u32) -> Result<bool, StoreError> {
    sqlx::query_scalar(VAULT_KEY_IN_USE)
        .bind(db_version(v)?)
        .fetch_one(conn)
        .await
        .map_err(map_err)
}

/// Moves a version to `state`; retiring one still in use is refused (false).
pub(crate) async fn set_key_state(
    conn: &mut Conn,
    v: u32,
    state: VaultKeyState,
    at: OffsetDateTime,
    in_use: bool,
) -> Result<bool, StoreError> {
    let retiring = state == VaultKeyState::Retired;
    if retiring && in_use {
        return Ok(false);
    }
    let done = sqlx::query("UPDATE vault_keys SET state = $2, retired_at = $3 WHERE version = $1")
        .bind(db_version(v)?)
        .bind(state.as_str())
        .bind(retiring.then_some(at))
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn list(conn: &mut Conn, org: OrgId) -> Result<Vec<Credential>, StoreError> {
    let rows = sqlx::query(select_credential!("WHERE org_id = $1 ORDER BY name"))
        .bind(org.as_uuid())
        .fetch_all(conn)
        .await
        .map_err(map_err)?;
    rows.iter().map(|r| credential(org, r)).collect()
}

pub(crate) async fn get(
    conn: &mut Conn,
    org: OrgId,
    id: CredentialId,
) -> Result<Option<Credential>, StoreError> {
    let row = sqlx::query(select_credential!("WHERE org_id = $1 AND id = $2"))
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_err)?;
    row.as_ref().map(|r| credential(org, r)).transpose()
}

pub(crate) async fn create(conn: &mut Conn, org: OrgId, c: &Credential) -> Result<(), StoreError> {
    let destinations = serde_json::to_string(&c.destinations)
        .map_err(|_| StoreError::Corrupt("credential destinations".into()))?;
    sqlx::query(
        "INSERT INTO credentials (org_id, id, name, kind, destinations, key_version, \
         wrapped_key, ciphertext, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(org.as_uuid())
    .bind(c.id.as_uuid())
    .bind(&c.name)
    .bind(&c.kind)
    .bind(destinations)
    .bind(db_version(c.sealed.key_version)?)
    .bind(c.sealed.wrapped_key.as_slice())
    .bind(c.sealed.ciphertext.as_slice())
    .bind(c.created_by.map(|u| u.as_uuid()))
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn replace(
    conn: &mut Conn,
    org: OrgId,
    id: CredentialId,
    sealed: &SealedValue,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE credentials SET key_version = $3, wrapped_key = $4, ciphertext = $5, \
         updated_at = $6 WHERE org_id = $1 AND id = $2",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(db_version(sealed.key_version)?)
    .bind(sealed.wrapped_key.as_slice())
    .bind(sealed.ciphertext.as_slice())
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn rewrap(
    conn: &mut Conn,
    org: OrgId,
    id: CredentialId,
    from: u32,
    sealed: &SealedValue,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE credentials SET key_version = $4, wrapped_key = $5, ciphertext = $6 \
         WHERE org_id = $1 AND id = $2 AND key_version = $3 \
         AND $4 = (SELECT version FROM vault_keys WHERE state = 'active')",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(db_version(from)?)
    .bind(db_version(sealed.key_version)?)
    .bind(sealed.wrapped_key.as_slice())
    .bind(sealed.ciphertext.as_slice())
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete(
    conn: &mut Conn,
    org: OrgId,
    id: CredentialId,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM credentials WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

/// Notes a use, at most once a minute per credential.
pub(crate) async fn touch(
    conn: &mut Conn,
    org: OrgId,
    id: CredentialId,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE credentials SET last_used_at = $3 WHERE org_id = $1 AND id = $2 \
         AND (last_used_at IS NULL OR last_used_at < $4)",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(at)
    .bind(at - time::Duration::minutes(1))
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn stale(
    conn: &mut Conn,
    org: OrgId,
    active: u32,
    limit: u32,
    after: Option<(u32, CredentialId)>,
) -> Result<Vec<Credential>, StoreError> {
    // Versions only grow, so "not the active one" is "below it": an index range that rows
    // leave as they are moved, walked in (version, id) order.
    let after_clause = if after.is_some() {
        " AND (key_version, id) > ($4, $5)"
    } else {
        ""
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{} WHERE org_id = $1 AND key_version < $2{after_clause} \
         ORDER BY key_version, id LIMIT $3{FOR_UPDATE_SKIP_LOCKED}",
        select_credential!("")
    )))
    .bind(org.as_uuid())
    .bind(db_version(active)?)
    .bind(i64::from(limit));
    if let Some((version, id)) = after {
        query = query.bind(db_version(version)?).bind(id.as_uuid());
    }
    let rows = query.fetch_all(conn).await.map_err(map_err)?;
    rows.iter().map(|r| credential(org, r)).collect()
}
