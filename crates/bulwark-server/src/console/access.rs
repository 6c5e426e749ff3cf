//! Overview, members and invitations, teams, and the org's policies with the explain form. Reads
//! and changes call the `/v1` handlers themselves (same extractors' decisions, same services,
//! same audit), with form fields parsed by the API's parser.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use bulwark_authz::{Action, Facts};
use bulwark_core::authz::{Question, Target};
use bulwark_types::{Role, TeamId, UserId};
use serde::Deserialize;

use crate::api::v1::access::{self as api, MemberOut, PoliciesOut, TeamOut};
use crate::api::v1::orgs::{self as orgs_api, InvitationOut};
use crate::auth::Signed;
use crate::console::form::{self, Kind};
use crate::console::page::{self, Chrome, PageForm, When};
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidQuery};
use crate::org_route::{OrgAuthorized, OrgCaller, OrgPath, act};
use crate::state::AppState;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}", get(overview))
        .route("/orgs/{org}/members", get(members))
        .route("/orgs/{org}/members/invite", post(invite))
        .route("/orgs/{org}/members/{user}/role", post(set_role))
        .route("/orgs/{org}/members/{user}/remove", post(remove_member))
        .route(
            "/orgs/{org}/invitations/{id}/revoke",
            post(revoke_invitation),
        )
        .route("/orgs/{org}/teams", get(teams).post(create_team))
        .route("/orgs/{org}/teams/{team}/delete", post(delete_team))
        .route("/orgs/{org}/teams/{team}/members", post(team_member))
        .route("/orgs/{org}/policies", get(policies).post(save_policies))
}

/// `?done=` after a redirect.
#[derive(Deserialize)]
pub struct Done {
    /// A notice code.
    pub done: Option<String>,
}

fn org_url(org: impl std::fmt::Display, rest: &str) -> String {
    format!("/orgs/{org}{rest}")
}

/// Roles a form may offer.
pub const ROLES: [&str; 4] = ["owner", "admin", "member", "auditor"];

/// The role options of a select, with `current` selected.
#[must_use]
pub fn role_options(current: Option<&str>) -> Vec<(&'static str, bool)> {
    ROLES.iter().map(|r| (*r, Some(*r) == current)).collect()
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    members: usize,
    owners_without_mfa: bool,
    me_without_mfa: bool,
    keys: Option<usize>,
    events: Option<Vec<crate::console::audit::Row>>,
    license: crate::console::license::Standing,
}

async fn overview(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let members_read = OrgCaller::<act::MembersRead>::person(&state, signed.clone(), org).await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "overview")
        .await?
        .with_notice(q.done.as_deref());
    let Json(list) = api::list_members(State(state.clone()), members_read).await?;
    let (me_enrolled, _) = state
        .session_cache
        .mfa_state(&*state.store, signed.session.user_id)
        .await
        .map_err(ApiError::from_store)?;
    let mut owners_without_mfa = false;
    if chrome.role_in(&["owner", "admin"]) {
        for m in list.members.iter().filter(|m| m.role == Role::Owner) {
            let (enrolled, _) = state
                .session_cache
                .mfa_state(&*state.store, m.user_id)
                .await
                .map_err(ApiError::from_store)?;
            owners_without_mfa |= !enrolled;
        }
    }
    let keys = if chrome.role_in(&["owner", "admin", "auditor"]) {
        let reader = OrgAuthorized::<act::KeysRead>::decide(&state, signed.clone(), org).await?;
        let Json(keys) = crate::api::v1::keys::list(
            State(state.clone()),
            reader,
            ValidQuery(crate::api::v1::keys::ListQuery::default()),
        )
        .await?;
        Some(keys.keys.len())
    } else {
        None
    };
    let events = if chrome.role_in(&["owner", "admin", "auditor"]) {
        Some(crate::console::audit::recent(&state, &signed, org, 10).await?)
    } else {
        None
    };
    let license = crate::console::license::standing(&state, &signed, org).await?;
    Ok(page::html(&OverviewPage {
        chrome,
        members: list.members.len(),
        owners_without_mfa,
        me_without_mfa: !me_enrolled,
        keys,
        events,
        license,
    }))
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    chrome: Chrome,
    members: Vec<MemberOut>,
    invitations: Option<Vec<InvitationOut>>,
    teams: Vec<TeamOut>,
    me: UserId,
}

impl MembersPage {
    fn team_names(&self, ids: &[TeamId]) -> String {
        let names: Vec<&str> = self
            .teams
            .iter()
            .filter(|t| ids.contains(&t.id))
            .map(|t| t.name.as_str())
            .collect();
        names.join(", ")
    }

    fn joined(&self, m: &MemberOut) -> When {
        When(m.joined_at)
    }

    fn expires(&self, i: &InvitationOut) -> When {
        When(i.expires_at)
    }
}

async fn members(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let reader = OrgCaller::<act::MembersRead>::person(&state, signed.clone(), org).await?;
    let chrome = Chrome::new(&state, &signed, Some(org), "members")
        .await?
        .with_notice(q.done.as_deref());
    let Json(list) = api::list_members(State(state.clone()), reader).await?;
    let invitations = if chrome.role_in(&["owner", "admin"]) {
        let reader =
            OrgAuthorized::<act::InvitationsRead>::decide(&state, signed.clone(), org).await?;
        let Json(open) = orgs_api::list_invitations(State(state.clone()), reader).await?;
        Some(open.invitations)
    } else {
        None
    };
    let teams = OrgAuthorized::<act::TeamsRead>::decide(&state, signed.clone(), org).await?;
    let Json(teams) = api::list_teams(State(state.clone()), teams).await?;
    Ok(page::html(&MembersPage {
        chrome,
        members: list.members,
        invitations,
        teams: teams.teams,
        me: signed.session.user_id,
    }))
}

async fn invite(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("email", Kind::Text), ("role", Kind::Text)])?;
    let _ = orgs_api::invite(State(state), signed, OrgPath(org), ValidJson(body)).await?;
    Ok(page::see_other(&org_url(org, "/members?done=invited")))
}

async fn set_role(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path((org_text, user)): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let body = form::body(&fields, &[("role", Kind::Text)])?;
    let _ = api::set_role(
        State(state),
        signed,
        OrgPath(org),
        Path((org_text, user)),
        ValidJson(body),
    )
    .await?;
    Ok(page::see_other(&org_url(org, "/members?done=role_changed")))
}

async fn remove_member(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    confirmed(&fields)?;
    api::remove_member(State(state), signed, OrgPath(org), Path(ids)).await?;
    Ok(page::see_other(&org_url(
        org,
        "/members?done=member_removed",
    )))
}

/// Destructive forms carry a `confirm` checkbox that says what happens; without it nothing is
/// done.
///
/// # Errors
/// 422 `confirmation_required`.
pub fn confirmed(fields: &[(String, String)]) -> Result<(), ApiError> {
    if form::field(fields, "confirm") == "yes" {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "confirmation_required",
            "tick the confirmation box to do this; nothing was changed",
        ))
    }
}

async fn revoke_invitation(
    State(state): State<AppState>,
    revoker: OrgAuthorized<act::InvitationsRevoke>,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = revoker.org;
    orgs_api::revoke_invitation(State(state), revoker, Path(ids)).await?;
    Ok(page::see_other(&org_url(
        org,
        "/members?done=invitation_revoked",
    )))
}

#[derive(Template)]
#[template(path = "teams.html")]
struct TeamsPage {
    chrome: Chrome,
    teams: Vec<TeamOut>,
    members: Vec<MemberOut>,
}

impl TeamsPage {
    fn email_of(&self, id: &UserId) -> String {
        self.members
            .iter()
            .find(|m| m.user_id == *id)
            .map(|m| m.email.to_string())
            .unwrap_or_else(|| id.to_string())
    }
}

async fn teams(
    State(state): State<AppState>,
    reader: OrgAuthorized<act::TeamsRead>,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let (org, signed) = (reader.org, reader.signed.clone());
    let chrome = Chrome::new(&state, &signed, Some(org), "teams")
        .await?
        .with_notice(q.done.as_deref());
    let Json(teams) = api::list_teams(State(state.clone()), reader).await?;
    let members = OrgCaller::<act::MembersRead>::person(&state, signed, org).await?;
    let Json(members) = api::list_members(State(state.clone()), members).await?;
    Ok(page::html(&TeamsPage {
        chrome,
        teams: teams.teams,
        members: members.members,
    }))
}

async fn create_team(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::TeamsWrite>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let org = writer.org;
    let body = form::body(&fields, &[("name", Kind::TextKeepEmpty)])?;
    let _ = api::create_team(State(state), writer, ValidJson(body)).await?;
    Ok(page::see_other(&org_url(org, "/teams?done=team_created")))
}

async fn delete_team(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path(ids): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    confirmed(&fields)?;
    api::delete_team(State(state), signed, OrgPath(org), Path(ids)).await?;
    Ok(page::see_other(&org_url(org, "/teams?done=team_deleted")))
}

async fn team_member(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path((org_text, team)): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let user = form::field(&fields, "user").to_owned();
    let ids = Path((org_text, team, user));
    match form::field(&fields, "op") {
        "add" => api::add_team_member(State(state), signed, OrgPath(org), ids).await?,
        "remove" => api::remove_team_member(State(state), signed, OrgPath(org), ids).await?,
        _ => {
            return Err(ApiError::invalid_field("/op", "must be `add` or `remove`"));
        }
    };
    Ok(page::see_other(&org_url(org, "/teams?done=team_changed")))
}

/// One line of the policy editor, with the validator's messages about it.
pub struct Line {
    /// 1-based.
    pub number: usize,
    /// The text.
    pub text: String,
    /// Messages located on this line.
    pub errors: Vec<String>,
}

/// The explain form's answer.
pub struct Explained {
    /// `allow` or `deny`.
    pub allowed: bool,
    /// The deciding policies.
    pub policies: Vec<String>,
    /// Evaluation errors.
    pub errors: Vec<String>,
    /// What was asked, in words.
    pub question: String,
}

impl PoliciesPage {
    fn has_line_errors(&self) -> bool {
        self.lines.iter().any(|l| !l.errors.is_empty())
    }

    fn is(&self, asked: &Option<String>, value: &str) -> bool {
        asked.as_deref() == Some(value)
    }
}

#[derive(Template)]
#[template(path = "policies.html")]
struct PoliciesPage {
    chrome: Chrome,
    current: PoliciesOut,
    text: String,
    lines: Vec<Line>,
    unplaced: Vec<String>,
    error: String,
    members: Vec<MemberOut>,
    teams: Vec<TeamOut>,
    actions: Vec<&'static str>,
    explained: Option<Explained>,
    ask: ExplainQuery,
}

/// The explain form (a GET: it changes nothing and records nothing).
#[derive(Deserialize, Default)]
pub struct ExplainQuery {
    done: Option<String>,
    principal: Option<String>,
    action: Option<String>,
    target: Option<String>,
    role: Option<String>,
}

/// Places validator messages at their lines: `line N: …` from the parser, or the line of the
/// `@id("…")` a message names.
fn locate(text: &str, problems: &[String]) -> (Vec<Line>, Vec<String>) {
    let mut lines: Vec<Line> = text
        .lines()
        .enumerate()
        .map(|(i, l)| Line {
            number: i + 1,
            text: l.to_owned(),
            errors: Vec::new(),
        })
        .collect();
    let mut unplaced = Vec::new();
    for p in problems {
        let by_number = p
            .strip_prefix("line ")
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.trim().parse::<usize>().ok());
        let by_id = || {
            let id = p.split('`').nth(1)?;
            let needle = format!("@id(\"{id}\")");
            lines
                .iter()
                .position(|l| l.text.contains(&needle))
                .map(|i| i + 1)
        };
        match by_number
            .or_else(by_id)
            .and_then(|n| lines.get_mut(n.checked_sub(1)?))
        {
            Some(line) => line.errors.push(p.clone()),
            None => unplaced.push(p.clone()),
        }
    }
    (lines, unplaced)
}

async fn policies_page(
    state: &AppState,
    reader: OrgAuthorized<act::AuthzPoliciesRead>,
    ask: ExplainQuery,
    draft: Option<(String, Vec<String>, String)>,
) -> Result<PoliciesPage, ApiError> {
    let (org, signed) = (reader.org, reader.signed.clone());
    let chrome = Chrome::new(state, &signed, Some(org), "policies")
        .await?
        .with_notice(ask.done.as_deref());
    let explained = explain(state, org, &ask).await?;
    let Json(current) = api::get_policies(State(state.clone()), reader).await?;
    let members = OrgCaller::<act::MembersRead>::person(state, signed.clone(), org).await?;
    let Json(members) = api::list_members(State(state.clone()), members).await?;
    let teams = OrgAuthorized::<act::TeamsRead>::decide(state, signed, org).await?;
    let Json(teams) = api::list_teams(State(state.clone()), teams).await?;
    let (text, problems, error) =
        draft.unwrap_or_else(|| (current.policies.clone(), Vec::new(), String::new()));
    let (lines, unplaced) = locate(&text, &problems);
    Ok(PoliciesPage {
        chrome,
        current,
        text,
        lines,
        unplaced,
        error,
        members: members.members,
        teams: teams.teams,
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
        explained,
        ask,
    })
}

/// Replays the decision the explain form asks about (nothing is recorded).
async fn explain(
    state: &AppState,
    org: bulwark_types::OrgId,
    ask: &ExplainQuery,
) -> Result<Option<Explained>, ApiError> {
    let (Some(principal), Some(action)) = (ask.principal.as_deref(), ask.action.as_deref()) else {
        return Ok(None);
    };
    let user: UserId = principal
        .parse()
        .map_err(|_| ApiError::invalid_field("/principal", "is not a member id"))?;
    let action = Action::parse(action)
        .ok_or_else(|| ApiError::invalid_field("/action", "is not a known action"))?;
    let target = match ask.target.as_deref().unwrap_or("org") {
        "org" | "" => Target::Org,
        t if t.starts_with("usr_") => Target::Member(
            t.parse()
                .map_err(|_| ApiError::invalid_field("/target", "is not a member id"))?,
        ),
        t if t.starts_with("team_") => Target::Team(
            t.parse()
                .map_err(|_| ApiError::invalid_field("/target", "is not a team id"))?,
        ),
        _ => {
            return Err(ApiError::invalid_field(
                "/target",
                "must be the org, a member or a team",
            ));
        }
    };
    let role = match ask.role.as_deref() {
        None | Some("") => None,
        Some(r) => Some(
            r.parse::<Role>()
                .map_err(|_| ApiError::invalid_field("/role", "is not a role"))?,
        ),
    };
    let question = format!(
        "May {principal} do {} on {}?",
        action.as_str(),
        ask.target
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("the organisation")
    );
    let explanation = bulwark_core::authz::explain(
        &*state.store,
        &state.authz,
        Question {
            org,
            user,
            role,
            action,
            target,
            facts: Facts::default(),
            policy_hash: None,
        },
    )
    .await
    .map_err(|e| match e {
        bulwark_core::CoreError::NotFound => {
            ApiError::invalid_field("/target", "names nothing in this organisation")
        }
        other => other.into(),
    })?;
    Ok(Some(Explained {
        allowed: explanation.decision.allowed(),
        policies: explanation.decision.policies,
        errors: explanation.decision.errors,
        question,
    }))
}

async fn policies(
    State(state): State<AppState>,
    reader: OrgAuthorized<act::AuthzPoliciesRead>,
    Query(ask): Query<ExplainQuery>,
) -> Result<Response, ApiError> {
    Ok(page::html(&policies_page(&state, reader, ask, None).await?))
}

async fn save_policies(
    State(state): State<AppState>,
    writer: OrgAuthorized<act::AuthzPoliciesWrite>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (org, signed) = (writer.org, writer.signed.clone());
    let body = form::body(&fields, &[("policies", Kind::TextKeepEmpty)])?;
    let text = form::field(&fields, "policies").to_owned();
    match api::put_policies(State(state.clone()), writer, ValidJson(body)).await {
        Ok(_) => Ok(page::see_other(&org_url(
            org,
            "/policies?done=policies_saved",
        ))),
        Err(e) if matches!(e.code(), "invalid_policies" | "would_lock_out") => {
            let problems: Vec<String> = e.field_errors().iter().map(|f| f.detail.clone()).collect();
            let error = if e.code() == "would_lock_out" {
                format!("Not saved: {}", e.detail())
            } else {
                "Not saved: the policies are not valid. Nothing was changed.".to_owned()
            };
            let status = e.status();
            let reader =
                OrgAuthorized::<act::AuthzPoliciesRead>::decide(&state, signed, org).await?;
            let page = policies_page(
                &state,
                reader,
                ExplainQuery::default(),
                Some((text, problems, error)),
            )
            .await?;
            Ok(page::html_status(status, &page))
        }
        Err(e) => Err(e),
    }
}
