//! Who may do what in an org, administered: its authorization policies, its teams, and its
//! members' roles. Each change is made under an [`Authorized`] decision for exactly that
//! action and recorded in the org's log in the same transaction.

use bulwark_audit::event::Payload;
use bulwark_authz::{Action, Facts, Policies, PolicyError, Principal, Resource};
use bulwark_types::{Clock, OrgId, Role, TeamId, UserId};

use crate::audit::{self, Draft, Log};
use crate::authz::{Authorized, Authz};
use crate::model::Team;
use crate::ports::{OrgRead, Store};
use crate::{CoreError, StoreError};

/// The org's members, oldest first, with its teams (to tell who belongs where).
///
/// # Errors
/// A decision for another action (a bug), storage failures.
pub async fn members(
    store: &dyn Store,
    authorized: &Authorized,
) -> Result<(Vec<crate::model::Member>, Vec<Team>), CoreError> {
    let mut read = authorized.org_reader(store, Action::MembersRead).await?;
    let members = read.members().await?;
    let teams = read.teams().await?;
    Ok((members, teams))
}

/// The org's teams, by name.
///
/// # Errors
/// A decision for another action (a bug), storage failures.
pub async fn teams(store: &dyn Store, authorized: &Authorized) -> Result<Vec<Team>, CoreError> {
    let mut read = authorized.org_reader(store, Action::TeamsRead).await?;
    Ok(read.teams().await?)
}

/// The policy set in force in the org (the built-in set when it has none of its own).
///
/// # Errors
/// A decision for another action (a bug), storage failures.
pub async fn policies(
    store: &dyn Store,
    authz: &Authz,
    authorized: &Authorized,
) -> Result<std::sync::Arc<Policies>, CoreError> {
    let mut read = authorized
        .org_reader(store, Action::AuthzPoliciesRead)
        .await?;
    Ok(authz.policies_of(&mut *read).await?)
}

/// Revokes every session of `member` of the decided org (an owner's or admin's action, decided
/// on that member), recording `auth.sessions.revoked` with cause `revoked_by_admin`; returns
/// how many ended. Takes effect on the member's next request, on every replica.
///
/// # Errors
/// A decision for another action (a bug), storage failures.
pub async fn revoke_member_sessions(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    member: UserId,
) -> Result<u64, CoreError> {
    authorized.org_for(Action::MembersSessionsRevoke)?;
    let mut tx = store.system().await?;
    let count = crate::session::revoke_all(
        &mut *tx,
        clock,
        member,
        None,
        "revoked_by_admin",
        authorized.context(),
    )
    .await?;
    tx.commit().await?;
    Ok(count)
}

/// Validates `custom` (the org's own Cedar policies; empty for none) against the schema and
/// activates it beside the built-in set, unless no owner could then change the policies again.
/// Records `authz.policies_activated` with the policy-set hash before and after. Activating the
/// set already in force changes nothing and records nothing.
///
/// # Errors
/// `InvalidPolicies` (with every problem), `LockOut`, storage failures.
pub async fn activate_policies(
    store: &dyn Store,
    authz: &Authz,
    clock: &dyn Clock,
    authorized: &Authorized,
    custom: &str,
) -> Result<Policies, CoreError> {
    let org = authorized.org_for(Action::AuthzPoliciesWrite)?;
    let next = if custom.trim().is_empty() {
        authz.engine().builtin().clone()
    } else {
        authz
            .engine()
            .with_org_policies(custom)
            .map_err(|e| match e {
                PolicyError::TooLarge(what) => CoreError::InvalidPolicies(vec![what]),
                PolicyError::Invalid(problems) => CoreError::InvalidPolicies(problems),
            })?
    };
    let mut tx = store.org(org).await?;
    let from = authz.policies_of(&mut *tx).await?;
    if from.hash() == next.hash() {
        return Ok(next);
    }
    if !some_owner_keeps_control(authz, &mut *tx, org, &next).await? {
        return Err(CoreError::LockOut(
            "these policies would leave no owner able to change the policies again; nothing was changed",
        ));
    }
    tx.activate_policy_set(next.hash(), next.text(), authorized.user(), clock.now())
        .await?;
    let payload = Payload::AuthzPoliciesActivated {
        from_hash: from.hash().to_owned(),
        to_hash: next.hash().to_owned(),
        policies: next.org_ids(),
    };
    let draft = Draft::success(
        payload,
        "authz_policies",
        org.to_string(),
        authorized.context(),
    );
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    authz.forget_org(org);
    Ok(next)
}

/// Whether at least one owner may still write the policies under `next`.
async fn some_owner_keeps_control(
    authz: &Authz,
    read: &mut dyn OrgRead,
    org: OrgId,
    next: &Policies,
) -> Result<bool, StoreError> {
    for owner in read
        .members()
        .await?
        .into_iter()
        .filter(|m| m.role == Role::Owner)
    {
        let teams = read.teams_of(owner.user_id).await?;
        let principal = Principal {
            user: owner.user_id,
            role: Some(Role::Owner),
            teams: teams.iter().map(ToString::to_string).collect(),
        };
        let decision = authz.engine().decide(
            next,
            &principal,
            Action::AuthzPoliciesWrite,
            &Resource::Org(org),
            &Facts::default(),
        );
        if decision.allowed() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The longest team name.
pub const TEAM_NAME_MAX: usize = 100;

fn team_name(name: &str) -> Result<String, CoreError> {
    if !bulwark_types::is_plain_text(name, TEAM_NAME_MAX) {
        return Err(CoreError::Validation {
            field: "/name",
            message: format!(
                "must be 1 to {TEAM_NAME_MAX} characters, without control characters or space at either end"
            ),
        });
    }
    Ok(name.to_owned())
}

/// Creates a team (`team.created`).
///
/// # Errors
/// `Validation` for a bad name, `Conflict("teams.name")`, storage failures.
pub async fn create_team(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    name: &str,
) -> Result<Team, CoreError> {
    let org = authorized.org_for(Action::TeamsWrite)?;
    let team = Team {
        id: TeamId::new(),
        name: team_name(name)?,
        members: Vec::new(),
        created_at: clock.now(),
    };
    let mut tx = store.org(org).await?;
    tx.create_team(&team).await?;
    let payload = Payload::TeamCreated {
        team_id: team.id.to_string(),
        name: team.name.clone(),
    };
    let draft = Draft::success(payload, "team", team.id.to_string(), authorized.context());
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(team)
}

/// Deletes a team and its memberships (`team.deleted`), and revokes the API keys issued to it
/// (`apikey.revoked` each), in one transaction. Policies that name it simply stop matching
/// anyone. Returns the revoked keys (for the caller to drop from its key cache).
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn delete_team(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    team: TeamId,
) -> Result<Vec<bulwark_types::ApiKeyId>, CoreError> {
    let org = authorized.org_for(Action::TeamsWrite)?;
    let mut tx = store.org(org).await?;
    refuse_scim_team(&mut *tx, team).await?;
    let payload = Payload::TeamDeleted {
        team_id: team.to_string(),
    };
    let deleted = Draft::success(payload, "team", team.to_string(), authorized.context());
    let keys = drop_team(&mut *tx, clock, deleted, org, team).await?;
    tx.commit().await?;
    Ok(keys)
}

/// Deletes `team` (recording `deleted`) and revokes the API keys issued to it
/// (`apikey.revoked` each), in `tx`; `NotFound` when there is no such team. The team goes first (its row locked until commit),
/// so a key being issued to it either committed before and is revoked here, or finds no team
/// and is refused.
pub(crate) async fn drop_team(
    tx: &mut dyn crate::ports::OrgTx,
    clock: &dyn Clock,
    deleted: Draft,
    org: bulwark_types::OrgId,
    team: TeamId,
) -> Result<Vec<bulwark_types::ApiKeyId>, CoreError> {
    if !tx.delete_team(team).await? {
        return Err(CoreError::NotFound);
    }
    let keys = tx.revoke_team_api_keys(team, clock.now()).await?;
    let context = deleted.context.clone();
    audit::append(tx, Log::Org(org), deleted, clock).await?;
    for key in &keys {
        let payload = Payload::ApiKeyRevoked {
            key_id: key.to_string(),
        };
        let draft = Draft::success(payload, "api_key", key.to_string(), context.clone());
        audit::append(tx, Log::Org(org), draft, clock).await?;
    }
    Ok(keys)
}

/// `ManagedByScim` when the org's identity provider manages `team` over SCIM (its members and
/// its existence are changed there, never here).
async fn refuse_scim_team(tx: &mut dyn crate::ports::OrgTx, team: TeamId) -> Result<(), CoreError> {
    if tx.scim_group(team).await?.is_some() {
        return Err(CoreError::ManagedByScim(
            "this team is managed by the organisation's identity provider over SCIM: change it there",
        ));
    }
    Ok(())
}

/// Adds `user` (a member of the org) to `team`, or removes them (`team.membership_changed`);
/// returns whether anything changed (nothing is recorded when not).
///
/// # Errors
/// `NotFound` (no such team, or the user is not a member), storage failures.
pub async fn set_team_member(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    team: TeamId,
    user: UserId,
    present: bool,
) -> Result<bool, CoreError> {
    let org = authorized.org_for(Action::TeamsMembersWrite)?;
    let mut tx = store.org(org).await?;
    refuse_scim_team(&mut *tx, team).await?;
    if !tx.set_team_member(team, user, present).await? {
        return Ok(false);
    }
    let payload = Payload::TeamMembershipChanged {
        team_id: team.to_string(),
        user_id: user.to_string(),
        added: present,
    };
    let draft = Draft::success(payload, "team", team.to_string(), authorized.context());
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(true)
}

/// Gives a member another role (`member.role_changed`), refusing to leave the org without an
/// owner. Every session of theirs then ends, so they sign in again under a new session id with
/// the new role (no session outlives a privilege change). Returns the sessions ended.
///
/// # Errors
/// `NotFound`, `LockOut` (the last owner), storage failures.
pub async fn set_role(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    user: UserId,
    role: Role,
) -> Result<u64, CoreError> {
    let org = authorized.org_for(Action::MembersRoleWrite)?;
    let mut tx = store.org(org).await?;
    tx.lock_owners().await?;
    let members = tx.members().await?;
    let from = members
        .iter()
        .find(|m| m.user_id == user)
        .map(|m| m.role)
        .ok_or(CoreError::NotFound)?;
    if from == role {
        return Ok(0);
    }
    let owners = members.iter().filter(|m| m.role == Role::Owner).count();
    if from == Role::Owner && owners <= 1 {
        return Err(CoreError::LockOut(
            "the org's last owner keeps the owner role; make someone else an owner first",
        ));
    }
    tx.set_role(user, role).await?;
    let payload = Payload::MemberRoleChanged {
        user_id: user.to_string(),
        from: from.as_str().into(),
        to: role.as_str().into(),
    };
    let draft = Draft::success(payload, "member", user.to_string(), authorized.context());
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    let mut tx = store.system().await?;
    let ended = crate::session::revoke_all(
        &mut *tx,
        clock,
        user,
        None,
        "role_changed",
        authorized.context(),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// Ends a member's membership of the org and their teams there (`member.removed`), refusing to
/// remove the last owner. Their sessions stay (they are deployment-wide) but reach nothing of
/// this org from the next request on.
///
/// # Errors
/// `NotFound`, `LockOut` (the last owner), storage failures.
pub async fn remove_member(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    user: UserId,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::MembersRemove)?;
    let mut tx = store.org(org).await?;
    if tx.scim_user(user).await?.is_some_and(|u| u.active) {
        return Err(CoreError::ManagedByScim(
            "this member is provisioned by the organisation's identity provider over SCIM: \
             deprovision them there",
        ));
    }
    tx.lock_owners().await?;
    let members = tx.members().await?;
    let role = members
        .iter()
        .find(|m| m.user_id == user)
        .map(|m| m.role)
        .ok_or(CoreError::NotFound)?;
    if role == Role::Owner && members.iter().filter(|m| m.role == Role::Owner).count() <= 1 {
        return Err(CoreError::LockOut(
            "the org's last owner cannot be removed; make someone else an owner first",
        ));
    }
    if !tx.remove_member(user).await? {
        return Err(CoreError::NotFound);
    }
    let payload = Payload::MemberRemoved {
        user_id: user.to_string(),
    };
    let draft = Draft::success(payload, "member", user.to_string(), authorized.context());
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}
