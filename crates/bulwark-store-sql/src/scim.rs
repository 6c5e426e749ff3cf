//! SCIM provisioning records of an org: users (userName, externalId, active, the resource as
//! JSON, a version for ETags), groups (teams the identity provider manages) and who was put in
//! which group. Every statement filters on the org.

use bulwark_core::StoreError;
use bulwark_core::model::{ScimColumn, ScimGroup, ScimMatch, ScimUser, ScimUserQuery};
use bulwark_types::{ApiKeyId, OrgId, TeamId, UserId};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::{Conn, DbRow, FOR_UPDATE};
use crate::map_err;

const USER_COLUMNS: &str = "user_id, user_name, external_id, display_name, emails_key, active, \
     resource, version, created_ms, updated_ms";

fn user(row: &DbRow) -> Result<ScimUser, StoreError> {
    Ok(ScimUser {
        user_id: UserId::from_uuid(row.try_get("user_id").map_err(map_err)?),
        user_name: row.try_get("user_name").map_err(map_err)?,
        external_id: row.try_get("external_id").map_err(map_err)?,
        display_name: row.try_get("display_name").map_err(map_err)?,
        emails_key: row.try_get("emails_key").map_err(map_err)?,
        active: row.try_get("active").map_err(map_err)?,
        resource: row.try_get("resource").map_err(map_err)?,
        version: row.try_get("version").map_err(map_err)?,
        created_ms: row.try_get("created_ms").map_err(map_err)?,
        updated_ms: row.try_get("updated_ms").map_err(map_err)?,
    })
}

/// `value` with LIKE's wildcards and the escape character escaped.
fn like_escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The condition (on `$2`) and its parameter for a query; `None` for every user.
fn condition(query: &ScimUserQuery) -> Option<(String, String)> {
    let ScimUserQuery::Where(column, how, value) = query else {
        return None;
    };
    let v = like_escaped(value);
    if *column == ScimColumn::Email {
        // emails_key is "\n" + one value per line + "\n".
        let pattern = match how {
            ScimMatch::Eq => format!("%\n{v}\n%"),
            ScimMatch::Contains => format!("%{v}%"),
            ScimMatch::StartsWith => format!("%\n{v}%"),
            ScimMatch::EndsWith => format!("%{v}\n%"),
        };
        return Some(("emails_key LIKE $2 ESCAPE '\\'".into(), pattern));
    }
    let col = match column {
        ScimColumn::UserName => "user_name_key",
        ScimColumn::ExternalId => "external_id",
        ScimColumn::DisplayName => "lower(display_name)",
        ScimColumn::Email => "emails_key",
    };
    Some(match how {
        ScimMatch::Eq => (format!("{col} = $2"), value.clone()),
        ScimMatch::Contains => (format!("{col} LIKE $2 ESCAPE '\\'"), format!("%{v}%")),
        ScimMatch::StartsWith => (format!("{col} LIKE $2 ESCAPE '\\'"), format!("{v}%")),
        ScimMatch::EndsWith => (format!("{col} LIKE $2 ESCAPE '\\'"), format!("%{v}")),
    })
}

pub(crate) async fn users(
    conn: &mut Conn,
    org: OrgId,
    query: &ScimUserQuery,
    offset: u64,
    limit: Option<u64>,
) -> Result<(u64, Vec<ScimUser>), StoreError> {
    let cond = condition(query);
    // Without a condition `$2` is compared with itself, so the numbering stays fixed.
    let filter = cond
        .as_ref()
        .map_or(" AND $2 = $2".to_owned(), |(c, _)| format!(" AND {c}"));
    let param = cond.map(|(_, p)| p).unwrap_or_default();
    // One scan: the window counts every match before LIMIT takes the page.
    let list_sql = format!(
        "SELECT {USER_COLUMNS}, count(*) OVER () AS total FROM scim_users \
         WHERE org_id = $1{filter} ORDER BY created_ms, user_id LIMIT $3 OFFSET $4"
    );
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows = sqlx::query(sqlx::AssertSqlSafe(list_sql))
        .bind(org.as_uuid())
        .bind(param.clone())
        .bind(limit.map_or(i64::MAX, to_i64))
        .bind(to_i64(offset))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    let total: i64 = match rows.first() {
        Some(row) => row.try_get("total").map_err(map_err)?,
        // A page past the end (or none at all): counted on its own.
        None => {
            let count_sql = format!("SELECT count(*) FROM scim_users WHERE org_id = $1{filter}");
            sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                .bind(org.as_uuid())
                .bind(param)
                .fetch_one(conn)
                .await
                .map_err(map_err)?
        }
    };
    let users = rows.iter().map(user).collect::<Result<Vec<_>, _>>()?;
    Ok((u64::try_from(total).unwrap_or(0), users))
}

async fn user_by_id(
    conn: &mut Conn,
    org: OrgId,
    id: UserId,
    lock: &str,
) -> Result<Option<ScimUser>, StoreError> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM scim_users WHERE org_id = $1 AND user_id = $2{lock}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(user)
        .transpose()
}

pub(crate) async fn user_one(
    conn: &mut Conn,
    org: OrgId,
    id: UserId,
) -> Result<Option<ScimUser>, StoreError> {
    user_by_id(conn, org, id, "").await
}

pub(crate) async fn lock_user(
    conn: &mut Conn,
    org: OrgId,
    id: UserId,
) -> Result<Option<ScimUser>, StoreError> {
    user_by_id(conn, org, id, FOR_UPDATE).await
}

pub(crate) async fn put_user(
    conn: &mut Conn,
    org: OrgId,
    u: &ScimUser,
    insert: bool,
) -> Result<(), StoreError> {
    let sql = if insert {
        "INSERT INTO scim_users (org_id, user_id, user_name, user_name_key, external_id, \
         display_name, emails_key, active, resource, version, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    } else {
        "UPDATE scim_users SET user_name = $3, user_name_key = $4, external_id = $5, \
         display_name = $6, emails_key = $7, active = $8, resource = $9, version = $10, \
         created_ms = $11, updated_ms = $12 WHERE org_id = $1 AND user_id = $2"
    };
    let done = sqlx::query(sql)
        .bind(org.as_uuid())
        .bind(u.user_id.as_uuid())
        .bind(&u.user_name)
        .bind(u.user_name.to_lowercase())
        .bind(&u.external_id)
        .bind(&u.display_name)
        .bind(&u.emails_key)
        .bind(u.active)
        .bind(&u.resource)
        .bind(u.version)
        .bind(u.created_ms)
        .bind(u.updated_ms)
        .execute(conn)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

pub(crate) async fn delete_user(
    conn: &mut Conn,
    org: OrgId,
    id: UserId,
) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM scim_group_members WHERE org_id = $1 AND user_id = $2")
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let done = sqlx::query("DELETE FROM scim_users WHERE org_id = $1 AND user_id = $2")
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

const GROUP_SELECT: &str = "SELECT g.team_id, t.name, g.external_id, g.version, g.created_ms, \
     g.updated_ms FROM scim_groups g JOIN teams t ON t.org_id = g.org_id AND t.id = g.team_id \
     WHERE g.org_id = $1";

fn group(row: &DbRow) -> Result<ScimGroup, StoreError> {
    Ok(ScimGroup {
        team_id: TeamId::from_uuid(row.try_get("team_id").map_err(map_err)?),
        display_name: row.try_get("name").map_err(map_err)?,
        external_id: row.try_get("external_id").map_err(map_err)?,
        version: row.try_get("version").map_err(map_err)?,
        created_ms: row.try_get("created_ms").map_err(map_err)?,
        updated_ms: row.try_get("updated_ms").map_err(map_err)?,
        members: Vec::new(),
    })
}

async fn members_of(
    conn: &mut Conn,
    org: OrgId,
    team: Option<TeamId>,
) -> Result<Vec<(TeamId, UserId)>, StoreError> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT team_id, user_id FROM scim_group_members WHERE org_id = $1 \
         AND ($2 IS NULL OR team_id = $2) ORDER BY team_id, user_id",
    )
    .bind(org.as_uuid())
    .bind(team.map(|t| t.as_uuid()))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(rows
        .into_iter()
        .map(|(t, u)| (TeamId::from_uuid(t), UserId::from_uuid(u)))
        .collect())
}

pub(crate) async fn groups(
    conn: &mut Conn,
    org: OrgId,
    with_members: bool,
) -> Result<Vec<ScimGroup>, StoreError> {
    let sql = format!("{GROUP_SELECT} ORDER BY g.created_ms, g.team_id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.as_uuid())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    let mut groups = rows.iter().map(group).collect::<Result<Vec<_>, _>>()?;
    if with_members {
        let mut by_team: std::collections::HashMap<TeamId, Vec<UserId>> =
            std::collections::HashMap::new();
        for (team, user) in members_of(conn, org, None).await? {
            by_team.entry(team).or_default().push(user);
        }
        for g in &mut groups {
            g.members = by_team.remove(&g.team_id).unwrap_or_default();
        }
    }
    Ok(groups)
}

pub(crate) async fn group_one(
    conn: &mut Conn,
    org: OrgId,
    team: TeamId,
    lock: bool,
) -> Result<Option<ScimGroup>, StoreError> {
    let sql = format!(
        "{GROUP_SELECT} AND g.team_id = $2{}",
        if lock { FOR_UPDATE } else { "" }
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org.as_uuid())
        .bind(team.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    let Some(mut g) = row.as_ref().map(group).transpose()? else {
        return Ok(None);
    };
    g.members = members_of(conn, org, Some(team))
        .await?
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    Ok(Some(g))
}

pub(crate) async fn user_groups(
    conn: &mut Conn,
    org: OrgId,
    user: UserId,
) -> Result<Vec<(TeamId, String)>, StoreError> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT m.team_id, t.name FROM scim_group_members m \
         JOIN teams t ON t.org_id = m.org_id AND t.id = m.team_id \
         WHERE m.org_id = $1 AND m.user_id = $2 ORDER BY t.name",
    )
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(rows
        .into_iter()
        .map(|(t, n)| (TeamId::from_uuid(t), n))
        .collect())
}

pub(crate) async fn put_group(
    conn: &mut Conn,
    org: OrgId,
    g: &ScimGroup,
    insert: bool,
) -> Result<(), StoreError> {
    let sql = if insert {
        "INSERT INTO scim_groups (org_id, team_id, external_id, version, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)"
    } else {
        "UPDATE scim_groups SET external_id = $3, version = $4, created_ms = $5, updated_ms = $6 \
         WHERE org_id = $1 AND team_id = $2"
    };
    let done = sqlx::query(sql)
        .bind(org.as_uuid())
        .bind(g.team_id.as_uuid())
        .bind(&g.external_id)
        .bind(g.version)
        .bind(g.created_ms)
        .bind(g.updated_ms)
        .execute(conn)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

pub(crate) async fn set_group_member(
    conn: &mut Conn,
    org: OrgId,
    team: TeamId,
    user: UserId,
    present: bool,
) -> Result<bool, StoreError> {
    let sql = if present {
        "INSERT INTO scim_group_members (org_id, team_id, user_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM scim_group_members WHERE org_id = $1 AND team_id = $2 AND user_id = $3"
    };
    let done = sqlx::query(sql)
        .bind(org.as_uuid())
        .bind(team.as_uuid())
        .bind(user.as_uuid())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn rename_team(
    conn: &mut Conn,
    org: OrgId,
    team: TeamId,
    name: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE teams SET name = $3 WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(team.as_uuid())
        .bind(name)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn revoke_user_keys(
    conn: &mut Conn,
    org: OrgId,
    user: UserId,
    at: OffsetDateTime,
) -> Result<Vec<ApiKeyId>, StoreError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = $3 \
         WHERE org_id = $1 AND created_by = $2 AND revoked_at IS NULL RETURNING id",
    )
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .bind(at)
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(ids.into_iter().map(ApiKeyId::from_uuid).collect())
}

pub(crate) async fn revoke_user_invitations(
    conn: &mut Conn,
    org: OrgId,
    user: UserId,
    at: OffsetDateTime,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE invitations SET revoked_at = $3 WHERE org_id = $1 AND invited_by = $2 \
         AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}
