//! API keys of an org.

use bulwark_core::StoreError;
use bulwark_core::model::ApiKeyRecord;
use bulwark_types::{ApiKeyId, OrgId, TeamId, UserId};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::{Conn, DbRow};
use crate::map_err;

macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, scopes, verifier, created_by, created_at, expires_at, ",
            "revoked_at, rotated_from, last_used_at, space, owner, team_id FROM api_keys ",
            $rest
        )
    };
}

fn uuid_opt(row: &DbRow, column: &str) -> Result<Option<Uuid>, StoreError> {
    row.try_get(column).map_err(map_err)
}

fn record(org: OrgId, row: &DbRow) -> Result<ApiKeyRecord, StoreError> {
    let verifier: Vec<u8> = row.try_get("verifier").map_err(map_err)?;
    let scopes: String = row.try_get("scopes").map_err(map_err)?;
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_uuid(row.try_get::<Uuid, _>("id").map_err(map_err)?),
        org,
        name: row.try_get("name").map_err(map_err)?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        verifier: verifier
            .try_into()
            .map_err(|_| StoreError::Corrupt("api key verifier length".into()))?,
        created_by: uuid_opt(row, "created_by")?.map(UserId::from_uuid),
        created_at: row.try_get("created_at").map_err(map_err)?,
        expires_at: row.try_get("expires_at").map_err(map_err)?,
        revoked_at: row.try_get("revoked_at").map_err(map_err)?,
        rotated_from: uuid_opt(row, "rotated_from")?.map(ApiKeyId::from_uuid),
        last_used_at: row.try_get("last_used_at").map_err(map_err)?,
        space: row.try_get("space").map_err(map_err)?,
        owner: row.try_get("owner").map_err(map_err)?,
        team: uuid_opt(row, "team_id")?.map(TeamId::from_uuid),
    })
}

pub(crate) async fn list(conn: &mut Conn, org: OrgId) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let rows = sqlx::query(select!("WHERE org_id = $1 ORDER BY created_at, id"))
        .bind(org.as_uuid())
        .fetch_all(conn)
        .await
        .map_err(map_err)?;
    rows.iter().map(|r| record(org, r)).collect()
}

pub(crate) async fn get(
    conn: &mut Conn,
    org: OrgId,
    id: ApiKeyId,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let row = sqlx::query(select!("WHERE org_id = $1 AND id = $2"))
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_err)?;
    row.as_ref().map(|r| record(org, r)).transpose()
}

pub(crate) async fn create(
    conn: &mut Conn,
    org: OrgId,
    key: &ApiKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (org_id, id, name, scopes, verifier, created_by, created_at, \
         expires_at, rotated_from, space, owner, team_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(org.as_uuid())
    .bind(key.id.as_uuid())
    .bind(&key.name)
    .bind(key.scopes.join(" "))
    .bind(key.verifier.as_slice())
    .bind(key.created_by.map(|u| u.as_uuid()))
    .bind(key.created_at)
    .bind(key.expires_at)
    .bind(key.rotated_from.map(|k| k.as_uuid()))
    .bind(key.space.as_deref())
    .bind(key.owner.as_deref())
    .bind(key.team.map(|t| t.as_uuid()))
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Revokes a live key; `false` when there is none (or it was revoked already).
pub(crate) async fn revoke(
    conn: &mut Conn,
    org: OrgId,
    id: ApiKeyId,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

/// Brings a key's expiry forward to `at` (never later than it was).
pub(crate) async fn expire_by(
    conn: &mut Conn,
    org: OrgId,
    id: ApiKeyId,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE api_keys SET expires_at = $3 WHERE org_id = $1 AND id = $2 \
         AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(org.as_uuid())
    .bind(id.as_uuid())
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Notes a use, at most once a minute per key.
pub(crate) async fn touch(
    conn: &mut Conn,
    org: OrgId,
    id: ApiKeyId,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = $3 WHERE org_id = $1 AND id = $2 \
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

/// Revokes the live keys issued to `team`; returns their ids.
pub(crate) async fn revoke_team(
    conn: &mut Conn,
    org: OrgId,
    team: TeamId,
    at: OffsetDateTime,
) -> Result<Vec<ApiKeyId>, StoreError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = $3 \
         WHERE org_id = $1 AND team_id = $2 AND revoked_at IS NULL RETURNING id",
    )
    .bind(org.as_uuid())
    .bind(team.as_uuid())
    .bind(at)
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(ids.into_iter().map(ApiKeyId::from_uuid).collect())
}
