//! SCIM provisioning in an org: what a change pushed by the org's identity provider does here.
//! The protocol layer (the server, with `bulwark-scim`) reads requests, filters and patches;
//! these services change accounts, memberships and teams under a `scim.provision` decision,
//! each change in one org transaction with its audit events.
//!
//! Deprovisioning (`active: false` or DELETE) ends the membership (and with it every team
//! membership and every session's access to the org, from the next request on every replica:
//! membership is read per request), revokes the API keys the person created in the org and
//! withdraws the invitations they sent, all in that one transaction. Reactivation restores the
//! membership and the teams the provider put them in, never the revoked keys.

use bulwark_audit::event::Payload;
use bulwark_authz::Action;
use bulwark_scim::error::{ScimError, ScimType};
use bulwark_types::{ApiKeyId, Clock, Email, Role, TeamId, UserId};
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::hashing::HashPool;
use crate::licensing::Licensing;
use crate::model::{ScimGroup, ScimUser, ScimUserQuery, Team, User};
use crate::ports::{OrgTx, Store};
use crate::{CoreError, StoreError};

/// The role a provisioned person holds (the provider never grants owner or admin).
pub const PROVISIONED_ROLE: Role = Role::Member;

/// The tools a change needs.
pub struct Deps<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Hashes the unusable password of a new account.
    pub hasher: &'a HashPool,
    /// Seats.
    pub licensing: &'a Licensing,
}

/// What the provider says a user is, as the protocol layer read it.
pub struct UserState {
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// The email values, the primary one first.
    pub emails: Vec<String>,
    /// `active`.
    pub active: bool,
    /// The resource as JSON (without `id`, `meta`, `groups`).
    pub resource: String,
    /// The attributes the request set or changed (names only, for the audit event).
    pub attributes: Vec<String>,
}

/// What the provider says a group is.
pub struct GroupState {
    /// `displayName` (the team's name, 1–100 characters).
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// The members (SCIM users of the org).
    pub members: Vec<UserId>,
    /// The attributes the request set or changed.
    pub attributes: Vec<String>,
}

fn scim(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> CoreError {
    CoreError::Scim(ScimError::new(status, scim_type, detail))
}

fn ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `expected`, when given, must be the record's version (an `If-Match` ETag).
fn check_version(current: i64, expected: Option<i64>) -> Result<(), CoreError> {
    match expected {
        Some(v) if v != current => Err(scim(
            412,
            None,
            "the resource changed since the version in If-Match; read it again",
        )),
        _ => Ok(()),
    }
}

fn taken(e: StoreError, what: &str) -> CoreError {
    match e {
        StoreError::Conflict(_) => scim(
            409,
            Some(ScimType::Uniqueness),
            format!("{what} is taken in this organisation"),
        ),
        other => other.into(),
    }
}

/// The SCIM users `query` selects: how many in all, and the page asked for.
///
/// # Errors
/// A decision for another action (a bug), storage failures.
pub async fn users(
    store: &dyn Store,
    authorized: &Authorized,
    query: &ScimUserQuery,
    offset: u64,
    limit: Option<u64>,
) -> Result<(u64, Vec<ScimUser>), CoreError> {
    let mut read = authorized.org_reader(store, Action::ScimProvision).await?;
    Ok(read.scim_users(query, offset, limit).await?)
}

/// One SCIM user with the groups the provider put them in.
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn user(
    store: &dyn Store,
    authorized: &Authorized,
    id: UserId,
) -> Result<(ScimUser, Vec<(TeamId, String)>), CoreError> {
    let mut read = authorized.org_reader(store, Action::ScimProvision).await?;
    let user = read.scim_user(id).await?.ok_or(CoreError::NotFound)?;
    let groups = read.scim_user_groups(id).await?;
    Ok((user, groups))
}

/// The account email of a provisioned user: the first email value, else the userName when it
/// is an address.
fn account_email(state: &UserState) -> Result<Email, CoreError> {
    state
        .emails
        .iter()
        .chain(std::iter::once(&state.user_name))
        .find_map(|e| e.parse::<Email>().ok())
        .ok_or_else(|| {
            scim(
                400,
                Some(ScimType::InvalidValue),
                "a user needs an email address, in `emails` or as `userName`",
            )
        })
}

fn record(id: UserId, state: &UserState, version: i64, created_ms: i64, now_ms: i64) -> ScimUser {
    let mut emails_key = String::from("\n");
    for e in &state.emails {
        emails_key.push_str(&e.to_lowercase());
        emails_key.push('\n');
    }
    ScimUser {
        user_id: id,
        user_name: state.user_name.clone(),
        external_id: state.external_id.clone(),
        display_name: state.display_name.clone(),
        emails_key,
        active: state.active,
        resource: state.resource.clone(),
        version,
        created_ms,
        updated_ms: now_ms,
    }
}

/// Whether an existing account with `email` may be linked: already a member, or its domain
/// is one the org verified, or the org invited the address.
async fn may_link(
    tx: &mut dyn OrgTx,
    user: UserId,
    email: &Email,
    now: OffsetDateTime,
) -> Result<bool, CoreError> {
    if tx.member(user).await?.is_some() {
        return Ok(true);
    }
    let verified = tx
        .sso_domains()
        .await?
        .into_iter()
        .any(|d| d.verified_ms.is_some() && d.domain == email.domain());
    let invited = tx
        .open_invitations()
        .await?
        .iter()
        .any(|i| i.email.key() == email.key() && i.expires_at > now);
    Ok(verified || invited)
}

async fn domain_verified(tx: &mut dyn OrgTx, email: &Email) -> Result<bool, CoreError> {
    Ok(tx
        .sso_domains()
        .await?
        .into_iter()
        .any(|d| d.verified_ms.is_some() && d.domain == email.domain()))
}

/// Provisions a user: links the existing account with the email (see [`may_link`]) or
/// creates one (with an unusable password: the person signs in through single sign-on or a
/// password reset), and, when active, makes them a member with [`PROVISIONED_ROLE`].
///
/// # Errors
/// `Scim` 400 `invalidValue` (no email), 409 `uniqueness` (userName taken, account already
/// provisioned, or an account outside the org's verified domains); `Entitlement` (seats);
/// storage failures.
pub async fn create_user(
    deps: &Deps<'_>,
    authorized: &Authorized,
    state: UserState,
) -> Result<ScimUser, CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    let email = account_email(&state)?;
    let now = deps.clock.now();
    let existing = deps.store.system().await?.user_by_email(&email).await?;
    let mut tx = deps.store.org(org).await?;
    let (id, how) = match existing {
        Some(user) => {
            if tx.scim_user(user.id).await?.is_some() {
                return Err(scim(
                    409,
                    Some(ScimType::Uniqueness),
                    "this person is provisioned already",
                ));
            }
            if !may_link(&mut *tx, user.id, &email, now).await? {
                return Err(scim(
                    409,
                    Some(ScimType::Uniqueness),
                    "an account with this email exists; the organisation must verify the \
                     email's domain (or invite the address) before its identity provider can link it",
                ));
            }
            (user.id, "linked")
        }
        None => {
            let user = new_account(deps, &mut *tx, email, now).await?;
            (user, "created")
        }
    };
    let row = record(id, &state, 1, ms(now), ms(now));
    tx.put_scim_user(&row, true)
        .await
        .map_err(|e| taken(e, "this userName"))?;
    let context = authorized.context();
    let payload = Payload::ScimUserProvisioned {
        user_id: id.to_string(),
        how: how.into(),
        attributes: state.attributes.clone(),
    };
    audit::append(
        &mut *tx,
        Log::Org(org),
        Draft::success(payload, "user", id.to_string(), context),
        deps.clock,
    )
    .await?;
    if state.active {
        join(deps, &mut *tx, authorized, id, now).await?;
    }
    tx.commit().await?;
    Ok(row)
}

async fn new_account(
    deps: &Deps<'_>,
    tx: &mut dyn OrgTx,
    email: Email,
    now: OffsetDateTime,
) -> Result<UserId, CoreError> {
    let unusable =
        bulwark_crypto::SecretToken::generate("unusable").map_err(|_| CoreError::Crypto)?;
    let password_hash = deps
        .hasher
        .hash(SecretString::from(unusable.expose().to_owned()))
        .await?;
    // The provider's word that the address is the person's counts only in a domain the org
    // verified.
    let verified = domain_verified(tx, &email).await?;
    let user = User {
        id: UserId::new(),
        email,
        password_hash,
        created_at: now,
        email_verified_at: verified.then_some(now),
        disabled_at: None,
    };
    tx.create_user(&user).await.map_err(|e| match e {
        StoreError::Conflict(_) => scim(
            409,
            Some(ScimType::Uniqueness),
            "an account with this email was just created; retry",
        ),
        other => other.into(),
    })?;
    Ok(user.id)
}

/// Makes `user` a member (when not one) and puts them back in the teams the provider gave
/// them, counting the seat under the license lock.
async fn join(
    deps: &Deps<'_>,
    tx: &mut dyn OrgTx,
    authorized: &Authorized,
    user: UserId,
    now: OffsetDateTime,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    if tx.member(user).await?.is_none() {
        let usage = tx.lock_license_usage().await?;
        let denial = if deps.licensing.read_only(deps.clock) {
            Some(crate::licensing::read_only_denial(Some(org)))
        } else {
            deps.licensing
                .exceeded(&usage, crate::licensing::Adding::Seat(org))
        };
        if let Some(denial) = denial {
            return Err(deps
                .licensing
                .deny(deps.store, deps.clock, denial, authorized.context())
                .await);
        }
        tx.add_member(user, PROVISIONED_ROLE, now).await?;
        let payload = Payload::MemberAdded {
            user_id: user.to_string(),
            role: PROVISIONED_ROLE.as_str().into(),
        };
        let draft = Draft::success(payload, "member", user.to_string(), authorized.context());
        audit::append(tx, Log::Org(org), draft, deps.clock).await?;
    }
    for (team, _) in tx.scim_user_groups(user).await? {
        tx.set_team_member(team, user, true).await?;
    }
    Ok(())
}

/// Ends `user`'s membership, revokes the keys they created and withdraws their invitations,
/// in `tx`; returns the revoked keys.
async fn leave(
    deps: &Deps<'_>,
    tx: &mut dyn OrgTx,
    authorized: &Authorized,
    user: UserId,
    cause: &str,
) -> Result<Vec<ApiKeyId>, CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    let now = deps.clock.now();
    // Only an owner's leaving needs the other owners counted (an org may have thousands of
    // members).
    let owner = tx
        .member(user)
        .await?
        .is_some_and(|m| m.role == Role::Owner);
    if owner {
        tx.lock_owners().await?;
    }
    if owner
        && tx
            .members()
            .await?
            .iter()
            .filter(|m| m.role == Role::Owner)
            .count()
            <= 1
    {
        return Err(scim(
            400,
            Some(ScimType::Mutability),
            "the organisation's last owner cannot be deprovisioned; make someone else an owner first",
        ));
    }
    let context = authorized.context();
    if tx.remove_member(user).await? {
        let payload = Payload::MemberRemoved {
            user_id: user.to_string(),
        };
        audit::append(
            tx,
            Log::Org(org),
            Draft::success(payload, "member", user.to_string(), context.clone()),
            deps.clock,
        )
        .await?;
    }
    let keys = tx.revoke_user_api_keys(user, now).await?;
    let invitations = tx.revoke_user_invitations(user, now).await?;
    let payload = Payload::ScimUserDeprovisioned {
        user_id: user.to_string(),
        cause: cause.into(),
        keys_revoked: keys.iter().map(ToString::to_string).collect(),
        invitations_withdrawn: invitations,
    };
    audit::append(
        tx,
        Log::Org(org),
        Draft::success(payload, "user", user.to_string(), context),
        deps.clock,
    )
    .await?;
    Ok(keys)
}

/// After a deprovisioning committed: when the person belongs to no org any more, every session
/// of theirs is revoked too (`auth.sessions.revoked`, cause `scim_deprovisioned`).
async fn end_sessions(
    deps: &Deps<'_>,
    authorized: &Authorized,
    user: UserId,
) -> Result<(), CoreError> {
    if !deps.store.user_orgs(user).await?.is_empty() {
        return Ok(());
    }
    let mut tx = deps.store.system().await?;
    crate::session::revoke_all(
        &mut *tx,
        deps.clock,
        user,
        None,
        "scim_deprovisioned",
        authorized.context(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What an update did besides storing the new record.
pub struct Updated {
    /// The stored record.
    pub user: ScimUser,
    /// Keys revoked by a deprovisioning (for the caller to drop from its cache).
    pub revoked_keys: Vec<ApiKeyId>,
}

/// Replaces or patches a SCIM user: `next` computes the new state from the current record
/// (held for update, so concurrent changes serialise); `expected` is the `If-Match` version.
/// A change of `active` deprovisions or reactivates in the same transaction. The account's
/// own email is never changed (it may be shared with other orgs).
///
/// # Errors
/// `NotFound`; `Scim` 412, 409 `uniqueness`, 400 `mutability` (last owner), whatever `next`
/// answers; `Entitlement`; storage failures.
pub async fn update_user(
    deps: &Deps<'_>,
    authorized: &Authorized,
    id: UserId,
    expected: Option<i64>,
    operation: &str,
    next: impl FnOnce(&ScimUser) -> Result<UserState, CoreError> + Send,
) -> Result<Updated, CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    let now = deps.clock.now();
    let mut tx = deps.store.org(org).await?;
    let current = tx.lock_scim_user(id).await?.ok_or(CoreError::NotFound)?;
    check_version(current.version, expected)?;
    let state = next(&current)?;
    let row = record(id, &state, current.version + 1, current.created_ms, ms(now));
    tx.put_scim_user(&row, false)
        .await
        .map_err(|e| taken(e, "this userName"))?;
    let payload = Payload::ScimUserUpdated {
        user_id: id.to_string(),
        operation: operation.into(),
        attributes: state.attributes.clone(),
    };
    let draft = Draft::success(payload, "user", id.to_string(), authorized.context());
    audit::append(&mut *tx, Log::Org(org), draft, deps.clock).await?;
    let mut revoked_keys = Vec::new();
    match (current.active, state.active) {
        (true, false) => {
            revoked_keys = leave(deps, &mut *tx, authorized, id, "deactivated").await?
        }
        (false, true) => {
            join(deps, &mut *tx, authorized, id, now).await?;
            let payload = Payload::ScimUserReactivated {
                user_id: id.to_string(),
                role: PROVISIONED_ROLE.as_str().into(),
            };
            let draft = Draft::success(payload, "user", id.to_string(), authorized.context());
            audit::append(&mut *tx, Log::Org(org), draft, deps.clock).await?;
        }
        _ => {}
    }
    tx.commit().await?;
    if current.active && !state.active {
        end_sessions(deps, authorized, id).await?;
    }
    Ok(Updated {
        user: row,
        revoked_keys,
    })
}

/// Deletes a SCIM user: deprovisions them (when active) and forgets the record; the account
/// itself stays (it may belong to other orgs). Returns the revoked keys.
///
/// # Errors
/// `NotFound`; `Scim` 412, 400 `mutability` (last owner); storage failures.
pub async fn delete_user(
    deps: &Deps<'_>,
    authorized: &Authorized,
    id: UserId,
    expected: Option<i64>,
) -> Result<Vec<ApiKeyId>, CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    let mut tx = deps.store.org(org).await?;
    let current = tx.lock_scim_user(id).await?.ok_or(CoreError::NotFound)?;
    check_version(current.version, expected)?;
    let keys = if current.active {
        leave(deps, &mut *tx, authorized, id, "deleted").await?
    } else {
        Vec::new()
    };
    tx.delete_scim_user(id).await?;
    tx.commit().await?;
    if current.active {
        end_sessions(deps, authorized, id).await?;
    }
    Ok(keys)
}

/// The SCIM groups (with their members when `members`).
///
/// # Errors
/// Storage failures.
pub async fn groups(
    store: &dyn Store,
    authorized: &Authorized,
    members: bool,
) -> Result<Vec<ScimGroup>, CoreError> {
    let mut read = authorized.org_reader(store, Action::ScimProvision).await?;
    Ok(read.scim_groups(members).await?)
}

/// One SCIM group with its members.
///
/// # Errors
/// `NotFound`, storage failures.
pub async fn group(
    store: &dyn Store,
    authorized: &Authorized,
    id: TeamId,
) -> Result<ScimGroup, CoreError> {
    let mut read = authorized.org_reader(store, Action::ScimProvision).await?;
    read.scim_group(id).await?.ok_or(CoreError::NotFound)
}

fn check_group_name(name: &str) -> Result<(), CoreError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(scim(
            400,
            Some(ScimType::InvalidValue),
            "`displayName` must be 1–100 characters",
        ));
    }
    Ok(())
}

/// Moves `team`'s provisioned members from `from` to `to`; returns (added, removed).
async fn set_members(
    tx: &mut dyn OrgTx,
    team: TeamId,
    from: &[UserId],
    to: &[UserId],
) -> Result<(u64, u64), CoreError> {
    let old: std::collections::HashSet<UserId> = from.iter().copied().collect();
    let new: std::collections::HashSet<UserId> = to.iter().copied().collect();
    let (mut added, mut removed) = (0, 0);
    for user in new.difference(&old) {
        let Some(scim_user) = tx.scim_user(*user).await? else {
            return Err(scim(
                400,
                Some(ScimType::InvalidValue),
                format!("member `{user}` is not a user of this organisation's SCIM provisioning"),
            ));
        };
        tx.set_scim_group_member(team, *user, true).await?;
        if scim_user.active {
            match tx.set_team_member(team, *user, true).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        added += 1;
    }
    for user in old.difference(&new) {
        tx.set_scim_group_member(team, *user, false).await?;
        match tx.set_team_member(team, *user, false).await {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        removed += 1;
    }
    Ok((added, removed))
}

async fn group_event(
    tx: &mut dyn OrgTx,
    clock: &dyn Clock,
    authorized: &Authorized,
    team: TeamId,
    operation: &str,
    attributes: Vec<String>,
    (added, removed): (u64, u64),
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    let payload = Payload::ScimGroupChanged {
        team_id: team.to_string(),
        operation: operation.into(),
        attributes,
        added,
        removed,
    };
    let draft = Draft::success(payload, "team", team.to_string(), authorized.context());
    audit::append(tx, Log::Org(org), draft, clock).await?;
    Ok(())
}

/// Creates a group: a team of that name, managed by the provider, with its members.
///
/// # Errors
/// `Scim` 400 `invalidValue` (name, unknown member), 409 `uniqueness` (a team of that name);
/// storage failures.
pub async fn create_group(
    deps: &Deps<'_>,
    authorized: &Authorized,
    state: GroupState,
) -> Result<ScimGroup, CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    check_group_name(&state.display_name)?;
    let now = deps.clock.now();
    let mut tx = deps.store.org(org).await?;
    let team = Team {
        id: TeamId::new(),
        name: state.display_name.clone(),
        members: Vec::new(),
        created_at: now,
    };
    tx.create_team(&team)
        .await
        .map_err(|e| taken(e, "a team of this displayName"))?;
    let mut group = ScimGroup {
        team_id: team.id,
        display_name: team.name,
        external_id: state.external_id,
        version: 1,
        created_ms: ms(now),
        updated_ms: ms(now),
        members: Vec::new(),
    };
    tx.put_scim_group(&group, true).await?;
    let counts = set_members(&mut *tx, group.team_id, &[], &state.members).await?;
    group_event(
        &mut *tx,
        deps.clock,
        authorized,
        group.team_id,
        "created",
        state.attributes,
        counts,
    )
    .await?;
    tx.commit().await?;
    group.members = state.members;
    Ok(group)
}

/// Replaces or patches a group: `next` computes the new state from the current one (held for
/// update, so 32 concurrent PATCHes that each add a member end with all 32).
///
/// # Errors
/// `NotFound`; `Scim` 412, 409 `uniqueness`, 400 `invalidValue`, whatever `next` answers;
/// storage failures.
pub async fn update_group(
    deps: &Deps<'_>,
    authorized: &Authorized,
    id: TeamId,
    expected: Option<i64>,
    operation: &str,
    next: impl FnOnce(&ScimGroup) -> Result<GroupState, CoreError> + Send,
) -> Result<ScimGroup, CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    let now = deps.clock.now();
    let mut tx = deps.store.org(org).await?;
    let current = tx.lock_scim_group(id).await?.ok_or(CoreError::NotFound)?;
    check_version(current.version, expected)?;
    let state = next(&current)?;
    check_group_name(&state.display_name)?;
    if state.display_name != current.display_name {
        tx.rename_team(id, &state.display_name)
            .await
            .map_err(|e| taken(e, "a team of this displayName"))?;
    }
    let mut group = ScimGroup {
        display_name: state.display_name.clone(),
        external_id: state.external_id.clone(),
        version: current.version + 1,
        updated_ms: ms(now),
        ..current.clone()
    };
    tx.put_scim_group(&group, false).await?;
    let counts = set_members(&mut *tx, id, &current.members, &state.members).await?;
    group_event(
        &mut *tx,
        deps.clock,
        authorized,
        id,
        operation,
        state.attributes,
        counts,
    )
    .await?;
    tx.commit().await?;
    group.members = state.members;
    Ok(group)
}

/// Deletes a group: its team, and the keys issued to the team (as deleting a team does).
/// Returns the revoked keys.
///
/// # Errors
/// `NotFound`; `Scim` 412; storage failures.
pub async fn delete_group(
    deps: &Deps<'_>,
    authorized: &Authorized,
    id: TeamId,
    expected: Option<i64>,
) -> Result<Vec<ApiKeyId>, CoreError> {
    let org = authorized.org_for(Action::ScimProvision)?;
    let mut tx = deps.store.org(org).await?;
    let current = tx.lock_scim_group(id).await?.ok_or(CoreError::NotFound)?;
    check_version(current.version, expected)?;
    let payload = Payload::ScimGroupChanged {
        team_id: id.to_string(),
        operation: "deleted".into(),
        attributes: Vec::new(),
        added: 0,
        removed: u64::try_from(current.members.len()).unwrap_or(u64::MAX),
    };
    let deleted = Draft::success(payload, "team", id.to_string(), authorized.context());
    let keys = crate::access::drop_team(&mut *tx, deps.clock, deleted, org, id).await?;
    tx.commit().await?;
    Ok(keys)
}
