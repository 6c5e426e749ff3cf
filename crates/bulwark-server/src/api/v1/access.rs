//! Who may do what in an org: its members and their roles, its teams, and its own
//! authorization policies (Cedar, validated against the schema before activation).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bulwark_authz::{Action, Facts};
use bulwark_core::authz::Target;
use bulwark_types::{Email, OrgId, Role, TeamId, UserId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Signed;
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::{ValidJson, ValidQuery};
use crate::org_route::{OrgAuthorized, OrgCaller, OrgPath, act};
use crate::state::AppState;

fn user_of(raw: &str) -> Result<UserId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

fn team_of(raw: &str) -> Result<TeamId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// One member of an org.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberOut {
    /// `usr_…`
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Their email.
    #[schema(value_type = String)]
    pub email: Email,
    /// `owner`, `admin`, `member` or `auditor`.
    #[schema(value_type = String)]
    pub role: Role,
    /// The teams they belong to here.
    #[schema(value_type = Vec<String>)]
    pub teams: Vec<TeamId>,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: time::OffsetDateTime,
}

/// An org's members.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberList {
    /// Oldest first.
    pub members: Vec<MemberOut>,
}

/// Lists the org's members with their roles and teams (every role; API keys with
/// `members:read`).
#[utoipa::path(get, path = "/v1/orgs/{org}/members", tag = "access", security(("session" = []), ("api_key" = [])),
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = MemberList),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    OrgCaller { authorized, .. }: OrgCaller<act::MembersRead>,
) -> Result<Json<MemberList>, ApiError> {
    let (members, teams) = bulwark_core::access::members(&*state.store, &authorized).await?;
    let members = members
        .into_iter()
        .map(|m| MemberOut {
            teams: teams
                .iter()
                .filter(|t| t.members.contains(&m.user_id))
                .map(|t| t.id)
                .collect(),
            user_id: m.user_id,
            email: m.email,
            role: m.role,
            joined_at: m.joined_at,
        })
        .collect();
    Ok(Json(MemberList { members }))
}

/// A role to give.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleIn {
    /// `owner`, `admin`, `member` or `auditor`.
    #[schema(value_type = String)]
    pub role: Role,
}

/// A role change's result.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleOut {
    /// The role now held.
    #[schema(value_type = String)]
    pub role: Role,
    /// Sessions of the member that ended (they sign in again under the new role).
    pub sessions_revoked: u64,
}

/// Gives a member another role (owners; admins for roles other than owner, on non-owners).
/// Every session of the member ends. The last owner keeps the owner role.
#[utoipa::path(put, path = "/v1/orgs/{org}/members/{user}/role", tag = "access", request_body = RoleIn,
    params(("org" = String, Path, description = "`org_…`"), ("user" = String, Path, description = "`usr_…`")),
    responses(
        (status = 200, body = RoleOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`would_lock_out`: the last owner"),
    ))]
pub(crate) async fn set_role(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path((_, user)): Path<(String, String)>,
    ValidJson(body): ValidJson<RoleIn>,
) -> Result<Json<RoleOut>, ApiError> {
    let user = user_of(&user)?;
    let facts = Facts {
        granted_role: Some(body.role),
    };
    let target = Target::Member(user);
    let authorized = decide::org_with(
        &state,
        &signed,
        org,
        Action::MembersRoleWrite,
        target,
        facts,
    )
    .await?;
    let sessions_revoked =
        bulwark_core::access::set_role(&*state.store, &*state.clock, &authorized, user, body.role)
            .await?;
    Ok(Json(RoleOut {
        role: body.role,
        sessions_revoked,
    }))
}

/// Removes a member from the org and its teams (owners; admins for non-owners). The last owner
/// cannot be removed.
#[utoipa::path(delete, path = "/v1/orgs/{org}/members/{user}", tag = "access",
    params(("org" = String, Path, description = "`org_…`"), ("user" = String, Path, description = "`usr_…`")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`would_lock_out`: the last owner; `scim_managed`: the org's identity provider provisions this member over SCIM"),
    ))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path((_, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = user_of(&user)?;
    let target = Target::Member(user);
    let authorized = decide::org(&state, &signed, org, Action::MembersRemove, target).await?;
    bulwark_core::access::remove_member(&*state.store, &*state.clock, &authorized, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A team.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TeamOut {
    /// `team_…`
    #[schema(value_type = String)]
    pub id: TeamId,
    /// Unique in the org.
    pub name: String,
    /// Its members' user ids.
    #[schema(value_type = Vec<String>)]
    pub members: Vec<UserId>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
}

impl From<bulwark_core::model::Team> for TeamOut {
    fn from(t: bulwark_core::model::Team) -> Self {
        Self {
            id: t.id,
            name: t.name,
            members: t.members,
            created_at: t.created_at,
        }
    }
}

/// An org's teams.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TeamList {
    /// By name.
    pub teams: Vec<TeamOut>,
}

/// A team to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamIn {
    /// 1–100 characters, unique in the org.
    pub name: String,
}

/// Lists the org's teams (every role).
#[utoipa::path(get, path = "/v1/orgs/{org}/teams", tag = "access",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = TeamList),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn list_teams(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::TeamsRead>,
) -> Result<Json<TeamList>, ApiError> {
    let teams = bulwark_core::access::teams(&*state.store, &authorized).await?;
    Ok(Json(TeamList {
        teams: teams.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a team (owners and admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/teams", tag = "access", request_body = TeamIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = TeamOut),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`conflict`: a team of that name exists"),
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
pub(crate) async fn create_team(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::TeamsWrite>,
    ValidJson(body): ValidJson<TeamIn>,
) -> Result<(StatusCode, Json<TeamOut>), ApiError> {
    let team =
        bulwark_core::access::create_team(&*state.store, &*state.clock, &authorized, &body.name)
            .await?;
    Ok((StatusCode::CREATED, Json(team.into())))
}

/// Deletes a team and its memberships (owners and admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/teams/{team}", tag = "access",
    params(("org" = String, Path, description = "`org_…`"), ("team" = String, Path, description = "`team_…`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`scim_managed`: the org's identity provider manages this team over SCIM"),
    ))]
pub(crate) async fn delete_team(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path((_, team)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let team = team_of(&team)?;
    let target = Target::Team(team);
    let authorized = decide::org(&state, &signed, org, Action::TeamsWrite, target).await?;
    let revoked =
        bulwark_core::access::delete_team(&*state.store, &*state.clock, &authorized, team).await?;
    for key in revoked {
        state.key_cache.forget(key);
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn team_member(
    state: &AppState,
    signed: &Signed,
    org: OrgId,
    (_, team, user): (String, String, String),
    present: bool,
) -> Result<StatusCode, ApiError> {
    let team = team_of(&team)?;
    let user = user_of(&user)?;
    let target = Target::Team(team);
    let authorized = decide::org(state, signed, org, Action::TeamsMembersWrite, target).await?;
    bulwark_core::access::set_team_member(
        &*state.store,
        &*state.clock,
        &authorized,
        team,
        user,
        present,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a member of the org to a team (owners and admins). Adding one already there is a
/// no-op.
#[utoipa::path(put, path = "/v1/orgs/{org}/teams/{team}/members/{user}", tag = "access",
    params(("org" = String, Path, description = "`org_…`"), ("team" = String, Path, description = "`team_…`"), ("user" = String, Path, description = "`usr_…`")),
    responses(
        (status = 204, description = "A member of the team"),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 404, body = Problem, description = "`not_found`: no such team, or not a member of the org"),
        (status = 409, body = Problem, description = "`scim_managed`: the org's identity provider manages this team over SCIM"),
    ))]
pub(crate) async fn add_team_member(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path(ids): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    team_member(&state, &signed, org, ids, true).await
}

/// Removes a member from a team (owners and admins). Removing one not there is a no-op.
#[utoipa::path(delete, path = "/v1/orgs/{org}/teams/{team}/members/{user}", tag = "access",
    params(("org" = String, Path, description = "`org_…`"), ("team" = String, Path, description = "`team_…`"), ("user" = String, Path, description = "`usr_…`")),
    responses(
        (status = 204, description = "Not a member of the team"),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`scim_managed`: the org's identity provider manages this team over SCIM"),
    ))]
pub(crate) async fn remove_team_member(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path(ids): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    team_member(&state, &signed, org, ids, false).await
}

/// The policies in force in an org.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PoliciesOut {
    /// SHA-256 (hex) of the whole set, as recorded with every decision.
    pub hash: String,
    /// The org's own policies (Cedar); empty when only the built-in ones apply.
    pub policies: String,
    /// The ids of every policy in force, built-in and the org's.
    pub policy_ids: Vec<String>,
    /// The built-in policies, for reference.
    pub builtin: String,
    /// The schema the org's policies are validated against.
    pub schema: String,
}

/// The org's own policies to activate.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliciesIn {
    /// Cedar policies, each with `@id("org.…")`, at most 64 KiB and 200 policies; an empty
    /// string returns to the built-in set alone.
    #[schema(max_length = 65536)]
    pub policies: String,
}

fn policies_out(state: &AppState, set: &bulwark_authz::Policies) -> PoliciesOut {
    PoliciesOut {
        hash: set.hash().to_owned(),
        policies: set.org_text().to_owned(),
        policy_ids: set.ids(),
        builtin: state.authz.engine().builtin().text().to_owned(),
        schema: bulwark_authz::SCHEMA.to_owned(),
    }
}

/// The authorization policies in force in the org (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/authz/policies", tag = "access",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = PoliciesOut),
        (status = 403, body = Problem, description = "`forbidden`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn get_policies(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::AuthzPoliciesRead>,
) -> Result<Json<PoliciesOut>, ApiError> {
    let set = bulwark_core::access::policies(&*state.store, &state.authz, &authorized).await?;
    Ok(Json(policies_out(&state, &set)))
}

/// Validates the org's own policies against the schema and activates them (owners). Refused,
/// with nothing changed, when they do not validate or would leave no owner able to change them
/// again. Recorded as `authz.policies_activated` with the hash before and after.
#[utoipa::path(put, path = "/v1/orgs/{org}/authz/policies", tag = "access", request_body = PoliciesIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = PoliciesOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`, `csrf_failed`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`would_lock_out`"),
        (status = 422, body = Problem, description = "`invalid_policies`: every problem, under `errors`"),
    ))]
pub(crate) async fn put_policies(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::AuthzPoliciesWrite>,
    ValidJson(body): ValidJson<PoliciesIn>,
) -> Result<Json<PoliciesOut>, ApiError> {
    let set = bulwark_core::access::activate_policies(
        &*state.store,
        &state.authz,
        &*state.clock,
        &authorized,
        &body.policies,
    )
    .await?;
    Ok(Json(policies_out(&state, &set)))
}

/// The routes.
/// A decision to replay.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// `usr_…`: whose decision (a member, or anyone: a non-member has no role).
    #[param(pattern = "^usr_[0-9a-f]{32}$")]
    pub principal: String,
    /// The action, e.g. `keys.write` (see `docs/authorization.md`).
    #[param(
        pattern = "^(account\\.use|audit\\.read|audit\\.retention\\.write|org\\.policy\\.read|org\\.policy\\.write|authz\\.policies\\.read|authz\\.policies\\.write|members\\.read|members\\.sessions\\.revoke|members\\.mfa\\.reset|members\\.role\\.write|members\\.remove|invitations\\.read|invitations\\.create|invitations\\.revoke|teams\\.read|teams\\.write|teams\\.members\\.write|keys\\.read|keys\\.write|spaces\\.keys\\.write|spaces\\.keys\\.verify|credentials\\.read|credentials\\.write|webhooks\\.read|webhooks\\.write|webhooks\\.send|tickets\\.push|license\\.read|license\\.activate|evidence\\.read|orgs\\.create|sso\\.read|sso\\.write|sso\\.domains\\.verify|scim\\.provision|org\\.delete)$"
    )]
    pub action: String,
    /// What it is on: `org` (the default), a member `usr_…` or a team `team_…`.
    #[param(pattern = "^(org|usr_[0-9a-f]{32}|team_[0-9a-f]{32})?$")]
    pub target: Option<String>,
    /// `owner`, `admin`, `member` or `auditor`: replay as if the principal held this role
    /// (empty: their current role).
    #[param(pattern = "^(owner|admin|member|auditor)?$")]
    pub role: Option<String>,
}

/// A replayed decision.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExplainOut {
    /// Whether the action would be allowed.
    pub allowed: bool,
    /// The hash of the policy set in force that decided.
    pub policy_set: String,
    /// The deciding policies: the permits that allow it, or the forbids that refuse it (empty
    /// for a refusal because nothing permits it).
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (skipped, never a permit).
    pub errors: Vec<String>,
    /// The role the principal was judged with (absent: not a member).
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// The principal's teams in the org.
    pub teams: Vec<String>,
}

fn explain_target(raw: Option<&str>) -> Result<Target, ApiError> {
    let bad = || {
        ApiError::invalid_field(
            "/target",
            "must be `org`, a member `usr_…` or a team `team_…`",
        )
    };
    match raw.unwrap_or("org") {
        "org" | "" => Ok(Target::Org),
        t if t.starts_with("usr_") => t.parse().map(Target::Member).map_err(|_| bad()),
        t if t.starts_with("team_") => t.parse().map(Target::Team).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Replays a decision with the policy set in force, as it would be made now: the principal's
/// membership and teams today (or the given role), on the given target. Records nothing. The
/// same question `bulwark authz explain` answers on the host.
#[utoipa::path(get, path = "/v1/orgs/{org}/authz/explain", tag = "access",
    params(("org" = String, Path, description = "`org_…`"), ExplainQuery),
    responses(
        (status = 200, body = ExplainOut),
        (status = 404, body = Problem, description = "`not_found`: no such org, or the target is not in it"),
        (status = 422, body = Problem, description = "`validation_failed`: a malformed principal, action, target or role"),
    ))]
pub(crate) async fn explain(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::AuthzPoliciesRead>,
    ValidQuery(q): ValidQuery<ExplainQuery>,
) -> Result<Json<ExplainOut>, ApiError> {
    let user: UserId = q
        .principal
        .parse()
        .map_err(|_| ApiError::invalid_field("/principal", "must be a user id (`usr_…`)"))?;
    let action = Action::parse(&q.action)
        .ok_or_else(|| ApiError::invalid_field("/action", "is not a known action"))?;
    let target = explain_target(q.target.as_deref())?;
    let role = match q.role.as_deref() {
        None | Some("") => None,
        Some(r) => Some(r.parse::<Role>().map_err(|_| {
            ApiError::invalid_field("/role", "must be owner, admin, member or auditor")
        })?),
    };
    let question = bulwark_core::authz::Question {
        org: authorized.org_for(Action::AuthzPoliciesRead)?,
        user,
        role,
        action,
        target,
        facts: Facts::default(),
        policy_hash: None,
    };
    let x = bulwark_core::authz::explain_for(&*state.store, &state.authz, &authorized, question)
        .await
        .map_err(|e| match e {
            bulwark_core::CoreError::NotFound => ApiError::not_found(),
            other => other.into(),
        })?;
    Ok(Json(ExplainOut {
        allowed: x.decision.allowed(),
        policy_set: x.decision.policy_set,
        policies: x.decision.policies,
        errors: x.decision.errors,
        role: x.principal.role,
        teams: x.principal.teams,
    }))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(set_role))
        .routes(routes!(remove_member))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(delete_team))
        .routes(routes!(add_team_member, remove_team_member))
        .routes(routes!(get_policies, put_policies))
        .routes(routes!(explain))
}

#[cfg(test)]
mod tests {
    use bulwark_authz::Action;

    /// The explain operation's `action` pattern (a schema keyword, for generated clients) names
    /// exactly the actions there are.
    #[test]
    fn the_explain_action_pattern_lists_every_action() {
        let doc: serde_json::Value =
            serde_json::from_str(&crate::openapi_json()).unwrap_or_default();
        let pattern = doc
            .pointer("/paths/~1v1~1orgs~1{org}~1authz~1explain/get/parameters")
            .and_then(serde_json::Value::as_array)
            .and_then(|ps| ps.iter().find(|p| p["name"] == "action"))
            .and_then(|p| p.pointer("/schema/pattern"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let names: Vec<String> = Action::ALL
            .iter()
            .map(|a| a.as_str().replace('.', "\\."))
            .collect();
        assert_eq!(pattern, format!("^({})$", names.join("|")));
    }
}
