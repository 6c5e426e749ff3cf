//! Teams and each org's authorization policy sets.

use bulwark_core::StoreError;
use bulwark_core::model::Team;
use bulwark_types::{OrgId, TeamId, UserId};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::{Conn, FOR_SHARE};
use crate::map_err;

pub(crate) async fn policy_hash(conn: &mut Conn, org: OrgId) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT authz_policy_hash FROM orgs WHERE id = $1")
        .bind(org.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_err)
        .map(Option::flatten)
}

pub(crate) async fn policy_set(
    conn: &mut Conn,
    org: OrgId,
    hash: &str,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT body FROM authz_policy_sets WHERE org_id = $1 AND hash = $2")
        .bind(org.as_uuid())
        .bind(hash)
        .fetch_optional(conn)
        .await
        .map_err(map_err)
}

pub(crate) async fn activate(
    conn: &mut Conn,
    org: OrgId,
    hash: &str,
    body: &str,
    by: Option<UserId>,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO authz_policy_sets (org_id, hash, body, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, hash) DO NOTHING",
    )
    .bind(org.as_uuid())
    .bind(hash)
    .bind(body)
    .bind(by.map(|u| u.as_uuid()))
    .bind(at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    sqlx::query("UPDATE orgs SET authz_policy_hash = $2 WHERE id = $1")
        .bind(org.as_uuid())
        .bind(hash)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn teams(conn: &mut Conn, org: OrgId) -> Result<Vec<Team>, StoreError> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.created_at, m.user_id FROM teams t \
         LEFT JOIN team_members m ON m.org_id = t.org_id AND m.team_id = t.id \
         WHERE t.org_id = $1 ORDER BY t.name, m.user_id",
    )
    .bind(org.as_uuid())
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    let mut teams: Vec<Team> = Vec::new();
    for row in rows {
        let id = TeamId::from_uuid(row.try_get::<Uuid, _>("id").map_err(map_err)?);
        if teams.last().is_none_or(|t| t.id != id) {
            teams.push(Team {
                id,
                name: row.try_get("name").map_err(map_err)?,
                members: Vec::new(),
                created_at: row.try_get("created_at").map_err(map_err)?,
            });
        }
        if let Some(user) = row.try_get::<Option<Uuid>, _>("user_id").map_err(map_err)?
            && let Some(team) = teams.last_mut()
        {
            team.members.push(UserId::from_uuid(user));
        }
    }
    Ok(teams)
}

pub(crate) async fn teams_of(
    conn: &mut Conn,
    org: OrgId,
    user: UserId,
) -> Result<Vec<TeamId>, StoreError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT team_id FROM team_members WHERE org_id = $1 AND user_id = $2 ORDER BY team_id",
    )
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(ids.into_iter().map(TeamId::from_uuid).collect())
}

pub(crate) async fn create_team(
    conn: &mut Conn,
    org: OrgId,
    team: &Team,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO teams (org_id, id, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org.as_uuid())
        .bind(team.id.as_uuid())
        .bind(&team.name)
        .bind(team.created_at)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn delete_team(
    conn: &mut Conn,
    org: OrgId,
    team: TeamId,
) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND team_id = $2")
        .bind(org.as_uuid())
        .bind(team.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let done = sqlx::query("DELETE FROM teams WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(team.as_uuid())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn set_team_member(
    conn: &mut Conn,
    org: OrgId,
    team: TeamId,
    user: UserId,
    present: bool,
) -> Result<bool, StoreError> {
    let found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM teams t JOIN memberships m ON m.org_id = t.org_id \
         WHERE t.org_id = $1 AND t.id = $2 AND m.user_id = $3",
    )
    .bind(org.as_uuid())
    .bind(team.as_uuid())
    .bind(user.as_uuid())
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    if found == 0 {
        return Err(StoreError::NotFound);
    }
    let sql = if present {
        "INSERT INTO team_members (org_id, team_id, user_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM team_members WHERE org_id = $1 AND team_id = $2 AND user_id = $3"
    };
    let done = sqlx::query(sql)
        .bind(org.as_uuid())
        .bind(team.as_uuid())
        .bind(user.as_uuid())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() > 0)
}

/// Whether the team exists, held until the transaction ends (see the port).
pub(crate) async fn lock_team(
    conn: &mut Conn,
    org: OrgId,
    team: TeamId,
) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM teams WHERE org_id = $1 AND id = $2{FOR_SHARE}"
    )))
    .bind(org.as_uuid())
    .bind(team.as_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    Ok(found.is_some())
}
