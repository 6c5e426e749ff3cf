//! An org's sign-in rules, and what its owners and admins can do to a member's access:
//! revoke every session, reset the second factor.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bulwark_core::model::{MfaRequirement, OrgPolicy};
use bulwark_types::{Email, InvitationId, OrgId, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use bulwark_authz::Action;
use bulwark_core::authz::{Authorized, Target};

use crate::auth::Signed;
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::extract::ValidJson;
use crate::org_route::{OrgAuthorized, OrgPath, act};
use crate::state::AppState;

/// An org's sign-in rules.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// Idle timeout in this org (120–86400 s), if shorter than the deployment's; `null` keeps
    /// the deployment's.
    #[schema(minimum = 120, maximum = 86400)]
    pub session_idle_secs: Option<u32>,
    /// Absolute timeout in this org (600–2592000 s), if shorter than the deployment's.
    #[schema(minimum = 600, maximum = 2592000)]
    pub session_absolute_secs: Option<u32>,
    /// Who must use MFA here: `none`, `owners` (default), `owners_admins` or `everyone`.
    pub mfa_required: String,
    /// Whether new passwords must mix character classes (off by default, as NIST advises).
    pub password_composition: bool,
}

impl From<OrgPolicy> for PolicyBody {
    fn from(p: OrgPolicy) -> Self {
        Self {
            session_idle_secs: p.session_idle_secs,
            session_absolute_secs: p.session_absolute_secs,
            mfa_required: p.mfa_required.as_str().to_owned(),
            password_composition: p.password_composition,
        }
    }
}

/// The org's sign-in rules (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/policy", tag = "orgs",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = PolicyBody),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn get_policy(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::OrgPolicyRead>,
) -> Result<Json<PolicyBody>, ApiError> {
    let policy = bulwark_core::org_policy::get(&*state.store, &authorized).await?;
    Ok(Json(policy.into()))
}

/// Replaces the org's sign-in rules (owners).
#[utoipa::path(put, path = "/v1/orgs/{org}/policy", tag = "orgs", request_body = PolicyBody,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = PolicyBody),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
pub(crate) async fn put_policy(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::OrgPolicyWrite>,
    ValidJson(body): ValidJson<PolicyBody>,
) -> Result<Json<PolicyBody>, ApiError> {
    let mfa_required = MfaRequirement::parse(&body.mfa_required).ok_or_else(|| {
        ApiError::invalid_field(
            "/mfa_required",
            "must be `none`, `owners`, `owners_admins` or `everyone`",
        )
    })?;
    let policy = OrgPolicy {
        session_idle_secs: body.session_idle_secs,
        session_absolute_secs: body.session_absolute_secs,
        mfa_required,
        password_composition: body.password_composition,
    };
    bulwark_core::org_policy::set(&*state.store, &*state.clock, &authorized, policy).await?;
    Ok(Json(policy.into()))
}

/// Decides `action` on a member's access in `org` (the built-in policies: owners on anyone,
/// admins on anyone but owners). Your own account is refused: it has its own routes. Returns
/// the decision and the target.
pub(crate) async fn may_manage(
    state: &AppState,
    signed: &Signed,
    org: OrgId,
    user: &str,
    action: Action,
) -> Result<(Authorized, UserId), ApiError> {
    let target: UserId = user.parse().map_err(|_| ApiError::not_found())?;
    let authorized = decide::org(state, signed, org, action, Target::Member(target)).await?;
    if target == signed.session.user_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            "use your own account settings for your own sessions and second factor",
        ));
    }
    Ok((authorized, target))
}

/// How many sessions ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// Sessions revoked.
    pub sessions_revoked: u64,
}

/// Revokes every session of a member (owners; admins for non-owners). Takes effect on the
/// member's next request, on every replica.
#[utoipa::path(delete, path = "/v1/orgs/{org}/members/{user}/sessions", tag = "orgs",
    params(("org" = String, Path, description = "`org_…`"), ("user" = String, Path, description = "`usr_…`")),
    responses(
        (status = 200, body = Revoked),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn revoke_member_sessions(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path((_, user)): Path<(String, String)>,
) -> Result<Json<Revoked>, ApiError> {
    let (authorized, target) =
        may_manage(&state, &signed, org, &user, Action::MembersSessionsRevoke).await?;
    let sessions_revoked = bulwark_core::access::revoke_member_sessions(
        &*state.store,
        &*state.clock,
        &authorized,
        target,
    )
    .await?;
    Ok(Json(Revoked { sessions_revoked }))
}

/// Resets a member's second factor (owners; admins for non-owners): their authenticator and
/// backup codes are removed and every session of theirs ends; they enrol again at next sign-in.
#[utoipa::path(delete, path = "/v1/orgs/{org}/members/{user}/mfa", tag = "orgs",
    params(("org" = String, Path, description = "`org_…`"), ("user" = String, Path, description = "`usr_…`")),
    responses(
        (status = 204, description = "Reset"),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`invalid_state`: not for your own account"),
    ))]
pub(crate) async fn reset_member_mfa(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    Path((_, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (authorized, target) =
        may_manage(&state, &signed, org, &user, Action::MembersMfaReset).await?;
    bulwark_core::mfa::reset_member(&*state.store, &*state.clock, &authorized, target).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An invitation to send.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteIn {
    /// Who to invite.
    #[schema(value_type = String, example = "new.member@acme.example", format = Email, max_length = 254)]
    pub email: Email,
    /// The role they get: `owner` (owners only), `admin`, `member` or `auditor`.
    #[schema(value_type = String)]
    pub role: Role,
}

/// An open invitation (its token went to the invitee by email only).
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationOut {
    /// Its id, `inv_…`.
    #[schema(value_type = String, example = "inv_0190c3e27b1a7c3d8e4f0123456789ab")]
    pub id: InvitationId,
    /// Who is invited.
    #[schema(value_type = String)]
    pub email: Email,
    /// The role they get.
    #[schema(value_type = String)]
    pub role: Role,
    /// Who invited them.
    #[schema(value_type = String)]
    pub invited_by: UserId,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: time::OffsetDateTime,
}

impl From<bulwark_core::model::Invitation> for InvitationOut {
    fn from(i: bulwark_core::model::Invitation) -> Self {
        Self {
            id: i.id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            expires_at: i.expires_at,
        }
    }
}

/// Open invitations.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationList {
    /// Newest first.
    pub invitations: Vec<InvitationOut>,
}

/// Invites someone by email (owners; admins for roles other than owner). The single-use token
/// (valid 7 days) goes only into the email.
#[utoipa::path(post, path = "/v1/orgs/{org}/invitations", tag = "orgs", request_body = InviteIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = InvitationOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 422, body = Problem, description = "`validation_failed`: e.g. an address with invisible or bidi control characters, an invalid domain, or mixed-script lookalikes"),
        (status = 502, body = Problem, description = "`mail_failed`: nothing was kept"),
    ))]
pub(crate) async fn invite(
    State(state): State<AppState>,
    signed: Signed,
    OrgPath(org): OrgPath,
    ValidJson(body): ValidJson<InviteIn>,
) -> Result<(StatusCode, Json<InvitationOut>), ApiError> {
    let target = Target::Invitation(body.role);
    let authorized = decide::org(&state, &signed, org, Action::InvitationsCreate, target).await?;
    state
        .licensing
        .check_new_seat(&*state.store, &*state.clock, org, authorized.context())
        .await?;
    let invitation = bulwark_core::invite::invite(
        &*state.store,
        &*state.clock,
        &*state.mailer,
        &authorized,
        body.email,
        body.role,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(invitation.into())))
}

/// Lists open invitations (owners and admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/invitations", tag = "orgs",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = InvitationList),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn list_invitations(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::InvitationsRead>,
) -> Result<Json<InvitationList>, ApiError> {
    let invitations = bulwark_core::invite::open(&*state.store, &authorized).await?;
    Ok(Json(InvitationList {
        invitations: invitations.into_iter().map(Into::into).collect(),
    }))
}

/// Withdraws an open invitation (owners and admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/invitations/{id}", tag = "orgs",
    params(("org" = String, Path, description = "`org_…`"), ("id" = String, Path, description = "`inv_…`")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn revoke_invitation(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::InvitationsRevoke>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    // An id of another kind, or an unprefixed one, names nothing here.
    let id: InvitationId = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"))?;
    bulwark_core::invite::revoke(&*state.store, &*state.clock, &authorized, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Another organisation and its first owner.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrgIn {
    /// Display name, 1–200 characters.
    #[schema(value_type = String, example = "Globex")]
    pub name: bulwark_types::OrgName,
    /// URL-safe short name; derived from the name when absent.
    #[schema(value_type = Option<String>, example = "globex")]
    pub slug: Option<bulwark_types::Slug>,
    /// The first owner: an existing account's email.
    #[schema(value_type = String, example = "owner@globex.example", format = Email, max_length = 254)]
    pub owner_email: Email,
}

/// Creates another organisation with an existing account as its owner (owners of the operator
/// org, the first one), within the license's `orgs` and `seats` limits.
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = NewOrgIn,
    responses(
        (status = 201, body = crate::api::v1::setup::OrgOut),
        (status = 403, body = Problem, description = "`forbidden`, `license_limit_orgs`, `license_limit_seats`, `license_read_only`"),
        (status = 409, body = Problem, description = "`conflict`: the slug is taken"),
        (status = 422, body = Problem, description = "`validation_failed`: no account with that email"),
    ))]
pub(crate) async fn create_org(
    State(state): State<AppState>,
    signed: Signed,
    ValidJson(body): ValidJson<NewOrgIn>,
) -> Result<(StatusCode, Json<crate::api::v1::setup::OrgOut>), ApiError> {
    let authorized = decide::operator(&state, &signed, Action::OrgsCreate).await?;
    let org = bulwark_core::setup::create_org(
        &*state.store,
        &*state.clock,
        &state.licensing,
        bulwark_core::setup::OrgCreator::Operator(&authorized),
        bulwark_core::setup::NewOrg {
            name: body.name,
            slug: body.slug,
            owner_email: body.owner_email,
            context: authorized.context(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(crate::api::v1::setup::OrgOut {
            id: org.id,
            slug: org.slug,
            name: org.name,
        }),
    ))
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org))
        .routes(routes!(invite, list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(revoke_member_sessions))
        .routes(routes!(reset_member_mfa))
}
