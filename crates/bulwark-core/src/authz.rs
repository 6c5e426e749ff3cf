//! The one path to an authorization decision.
//!
//! A service that acts on an org takes an [`Authorized`], and only [`authorize`] (for org
//! actions) and [`authorize_account`] (for a user's own account) can make one: its fields are
//! private. So no handler can reach an org mutation without a decision, and the decision it got
//! is the one recorded with the event ([`Authorized::context`]).
//!
//! Before asking Cedar, [`authorize`] applies the org's sign-in rules to the session (its own
//! shorter timeouts, MFA for the roles it names). Every refusal by policy is recorded as
//! `authz.denied` in the org's log, with the policy-set hash and any forbid that decided it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulwark_audit::event::{
    Context, Decision as Recorded, DecisionEffect, Outcome, Payload, Resource as EventResource,
    Result_,
};
use bulwark_authz::{Action, Decision, Engine, Facts, Policies, Principal, Resource};
use bulwark_types::{Clock, OrgId, Role, TeamId, UserId};

use crate::audit::{self, Draft, Log};
use crate::model::Session;
use crate::ports::{OrgRead, Store};
use crate::session::{self, SessionPolicy};
use crate::{CoreError, StoreError};

/// A machine caller, as its API key says (the key checks are in `apikeys`; the decision about
/// what the caller may do is here).
#[derive(Debug, Clone)]
pub struct KeyCaller {
    /// The key.
    pub key: bulwark_types::ApiKeyId,
    /// Its org.
    pub org: OrgId,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// The team it was issued to, if any.
    pub team: Option<TeamId>,
}

/// The engine and the org policy sets seen so far, by hash (a set never changes under its
/// hash, so the cache needs no invalidation).
pub struct Authz {
    engine: Engine,
    /// The built-in set alone, shared (cloning a policy set per request is not cheap).
    builtin: Arc<Policies>,
    sets: Mutex<HashMap<String, Arc<Policies>>>,
    decisions: Mutex<HashMap<String, Decision>>,
    /// Which set is in force per org, for API-key requests, for at most `hash_ttl`.
    in_force: Mutex<HashMap<OrgId, (Option<String>, std::time::Instant)>>,
    hash_ttl: std::time::Duration,
}

/// Decisions kept per replica before the cache starts over.
const DECISIONS_KEPT: usize = 50_000;

impl Authz {
    /// Parses the schema and the built-in policies.
    ///
    /// # Errors
    /// When the built-in policies are broken (the server refuses to start).
    pub fn new() -> Result<Self, bulwark_authz::BuiltinError> {
        let engine = Engine::new()?;
        Ok(Self {
            builtin: Arc::new(engine.builtin().clone()),
            engine,
            sets: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
            in_force: Mutex::new(HashMap::new()),
            hash_ttl: std::time::Duration::ZERO,
        })
    }

    /// Lets API-key requests take the org's policy set in force from memory for up to `ttl`
    /// (at most 5 s). An activation through this replica is seen at once
    /// ([`Authz::forget_org`]); one through another replica within `ttl`.
    #[must_use]
    pub fn with_hash_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.hash_ttl = ttl.min(std::time::Duration::from_secs(5));
        self
    }

    /// Forgets which set is in force for `org` (after an activation).
    pub fn forget_org(&self, org: OrgId) {
        self.in_force
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&org);
    }

    /// The set in force for `org`, remembering which one it is for up to the hash TTL.
    ///
    /// # Errors
    /// As [`Authz::policies_of`].
    pub async fn policies_for(
        &self,
        store: &dyn Store,
        org: OrgId,
    ) -> Result<Arc<Policies>, StoreError> {
        let known = {
            let in_force = self
                .in_force
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            in_force
                .get(&org)
                .filter(|(_, at)| at.elapsed() < self.hash_ttl)
                .map(|(hash, _)| hash.clone())
        };
        let cached = match known {
            Some(None) => Some(self.builtin.clone()),
            Some(Some(hash)) => self.lock().get(&hash).cloned(),
            None => None,
        };
        if let Some(set) = cached {
            return Ok(set);
        }
        let mut read = store.org_read(org).await?;
        let hash = read.authz_policy_hash().await?;
        let set = self.policies_of(&mut *read).await?;
        if !self.hash_ttl.is_zero() {
            let mut in_force = self
                .in_force
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if in_force.len() > 100_000 {
                in_force.clear();
            }
            in_force.insert(org, (hash, std::time::Instant::now()));
        }
        Ok(set)
    }

    /// Decides as [`Engine::decide`] does, remembering the answer. A decision is a pure
    /// function of its inputs — the policy set (immutable under its hash), the principal's id,
    /// role and teams, the action, the resource with its attributes, and the facts — and all of
    /// them are in the key, so a remembered decision is never stale: a role, team or policy
    /// change makes a different key.
    #[must_use]
    pub fn decide(
        &self,
        policies: &Policies,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        facts: &Facts,
    ) -> Decision {
        let key = format!(
            "user|{}|{}|{:?}|{:?}|{}|{resource:?}|{facts:?}",
            policies.hash(),
            principal.user,
            principal.role,
            principal.teams,
            action.as_str(),
        );
        self.remembered(key, || {
            self.engine
                .decide(policies, principal, action, resource, facts)
        })
    }

    /// Decides for an API key as [`Engine::decide_key`] does, remembering the answer by all its
    /// inputs (see [`Authz::decide`]).
    #[must_use]
    pub fn decide_key(
        &self,
        policies: &Policies,
        key: &bulwark_authz::KeyPrincipal,
        action: Action,
        resource: &Resource,
    ) -> Decision {
        let cache_key = format!(
            "key|{}|{}|{}|{:?}|{:?}|{}|{resource:?}",
            policies.hash(),
            key.key,
            key.org,
            key.scopes,
            key.team,
            action.as_str(),
        );
        self.remembered(cache_key, || {
            self.engine.decide_key(policies, key, action, resource)
        })
    }

    fn remembered(&self, key: String, decide: impl FnOnce() -> Decision) -> Decision {
        let cache = || {
            self.decisions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(decision) = cache().get(&key) {
            return decision.clone();
        }
        let decision = decide();
        let mut decisions = cache();
        if decisions.len() >= DECISIONS_KEPT {
            decisions.clear();
        }
        decisions.insert(key, decision.clone());
        decision
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The policy set in force for the org `read` is bound to.
    ///
    /// # Errors
    /// Storage failures; `Corrupt` when the stored set is missing or does not parse.
    pub async fn policies_of(&self, read: &mut dyn OrgRead) -> Result<Arc<Policies>, StoreError> {
        let Some(hash) = read.authz_policy_hash().await? else {
            return Ok(self.builtin.clone());
        };
        self.by_hash(read, &hash)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the org's policy set in force is missing".into()))
    }

    /// The policy set with `hash` that was ever active in the org `read` is bound to (or the
    /// built-in set alone), if any.
    ///
    /// # Errors
    /// Storage failures; `Corrupt` when the stored set does not parse or match its hash.
    pub async fn by_hash(
        &self,
        read: &mut dyn OrgRead,
        hash: &str,
    ) -> Result<Option<Arc<Policies>>, StoreError> {
        if hash == self.engine.builtin().hash() {
            return Ok(Some(self.builtin.clone()));
        }
        if let Some(set) = self.lock().get(hash) {
            return Ok(Some(set.clone()));
        }
        let Some(text) = read.authz_policy_set(hash).await? else {
            return Ok(None);
        };
        let set = self
            .engine
            .stored(&text)
            .map_err(|e| StoreError::Corrupt(format!("stored policy set: {e}")))?;
        if set.hash() != hash {
            return Err(StoreError::Corrupt(
                "stored policy set does not match its hash".into(),
            ));
        }
        let set = Arc::new(set);
        let mut sets = self.lock();
        if sets.len() > 10_000 {
            sets.clear();
        }
        sets.insert(hash.to_owned(), set.clone());
        Ok(Some(set))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Policies>>> {
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A permitted request: what was decided, for whom, on which org, and the audit context that
/// carries the decision into the event the action records.
#[derive(Debug, Clone)]
pub struct Authorized {
    org: Option<OrgId>,
    user: Option<UserId>,
    role: Option<Role>,
    decision: Decision,
    context: Context,
}

impl Authorized {
    /// The org decided on (`None` for an account action).
    #[must_use]
    pub fn org(&self) -> Option<OrgId> {
        self.org
    }

    /// The user it was decided for (`None` for an API key).
    #[must_use]
    pub fn user(&self) -> Option<UserId> {
        self.user
    }

    /// Their role in the org.
    #[must_use]
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// The decision.
    #[must_use]
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The audit context with the decision filled in.
    #[must_use]
    pub fn context(&self) -> Context {
        self.context.clone()
    }

    /// The org, provided this is a decision for `action` on an org: a service calls this to make
    /// sure it was handed the decision for what it is about to do.
    ///
    /// # Errors
    /// `Bug` when it is not (a programming error, refused rather than acted on, and answered
    /// as an opaque 500).
    pub fn org_for(&self, action: Action) -> Result<OrgId, CoreError> {
        match self.org {
            Some(org) if self.decision.action == action => Ok(org),
            _ => Err(CoreError::Bug(
                "an action was attempted under another action's decision",
            )),
        }
    }

    /// A read handle on the decided org, for reading under `action` (the action decided):
    /// the way a reader that is not a service of its own gets at the org's data, so the org
    /// read is always the decision's, never one named elsewhere.
    ///
    /// # Errors
    /// A decision for another action (a bug), storage failures.
    pub async fn org_reader(
        &self,
        store: &dyn crate::ports::Store,
        action: Action,
    ) -> Result<Box<dyn crate::ports::OrgRead>, CoreError> {
        Ok(store.org_read(self.org_for(action)?).await?)
    }
}

/// What an org action is on.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The org itself.
    Org,
    /// A member (by user id): their current role is read.
    Member(UserId),
    /// A new invitation with this role.
    Invitation(Role),
    /// A team.
    Team(TeamId),
}

/// Why a request is not allowed.
#[derive(Debug, Clone)]
pub enum Refused {
    /// No such org, member or team, or the caller is not a member: answered as 404 so org and
    /// member ids cannot be probed.
    NotFound,
    /// The org's own timeouts have ended this session for it.
    SessionExpired,
    /// The org requires a second factor of this member's role and the session has none.
    MfaRequired,
    /// The org requires single sign-on and this session was not made through one of its
    /// connections (owners are exempt: their break-glass password sign-in).
    SsoRequired,
    /// Policy refused a member (recorded as `authz.denied`).
    Forbidden(Decision),
}

/// One org authorization question.
pub struct Ask<'a> {
    /// The caller's session.
    pub session: &'a Session,
    /// The deployment's session timeouts.
    pub sessions: SessionPolicy,
    /// The org in the URL.
    pub org: OrgId,
    /// What the caller wants to do.
    pub action: Action,
    /// On what.
    pub target: Target,
    /// Further facts (a role being granted).
    pub facts: Facts,
    /// The request's audit context.
    pub context: Context,
}

/// Whether `session` was made by a single sign-on through a connection of `org`.
async fn through_org_sso(
    store: &dyn Store,
    session: &Session,
    org: OrgId,
) -> Result<bool, CoreError> {
    Ok(match store.sso_session_connection(session.id).await? {
        Some(connection) => store.sso_connection_org(connection).await? == Some(org),
        None => false,
    })
}

/// Decides an org action: membership, the org's sign-in rules, then policy.
///
/// # Errors
/// Storage failures; `Ok(Err(_))` for a refusal (policy refusals are recorded first).
pub async fn authorize(
    store: &dyn Store,
    authz: &Authz,
    clock: &dyn Clock,
    ask: Ask<'_>,
) -> Result<Result<Authorized, Refused>, CoreError> {
    let user = ask.session.user_id;
    let mut read = store.org_read(ask.org).await?;
    let policy = match read.policy().await {
        Ok(p) => p,
        Err(StoreError::NotFound) => return Ok(Err(Refused::NotFound)),
        Err(e) => return Err(e.into()),
    };
    // Someone who is not a member gets nothing of the org, whatever its policies say (a
    // `permit (principal, …)` means "every member", never "every account"), and writes nothing
    // into its log: the org is as unknown to them as one that does not exist.
    let Some(m) = read.member(user).await? else {
        return Ok(Err(Refused::NotFound));
    };
    if session::check(ask.session, ask.sessions.within(&policy), clock.now()).is_err() {
        return Ok(Err(Refused::SessionExpired));
    }
    if policy.mfa_required.applies_to(m.role) && ask.session.mfa_at.is_none() {
        return Ok(Err(Refused::MfaRequired));
    }
    // Single sign-on required: a session from one of the org's own connections, or an owner's
    // break-glass session that passed a second factor.
    let break_glass = m.role == Role::Owner && ask.session.mfa_at.is_some();
    if !break_glass
        && read.sso_settings().await?.sso_required
        && !through_org_sso(store, ask.session, ask.org).await?
    {
        return Ok(Err(Refused::SsoRequired));
    }
    let member = Some(m);
    let teams = read.teams_of(user).await?;
    let Some(resource) = resource_of(&mut *read, ask.org, ask.target).await? else {
        return Ok(Err(Refused::NotFound));
    };
    let policies = authz.policies_of(&mut *read).await?;
    drop(read);
    let principal = Principal {
        user,
        role: member.as_ref().map(|m| m.role),
        teams: teams.iter().map(ToString::to_string).collect(),
    };
    let mut decision = authz.decide(&policies, &principal, ask.action, &resource, &ask.facts);
    // Invariant outside Cedar: an owner can always change the org's policies, so no policy
    // (nor a later team, role or membership change that a policy depends on) can lock an org
    // out of its own rules.
    if !decision.allowed()
        && ask.action == Action::AuthzPoliciesWrite
        && principal.role == Some(Role::Owner)
    {
        decision = owners_keep_the_rules(decision);
    }
    // Evaluation errors (a policy that failed to evaluate is skipped, never a permit) travel in
    // the decision; they are not expected from validated sets.
    let mut context = ask.context;
    context.decision = Some(recorded(&decision));
    if !decision.allowed() {
        record_denial(store, clock, ask.org, &resource, context).await?;
        return Ok(Err(Refused::Forbidden(decision)));
    }
    Ok(Ok(Authorized {
        org: Some(ask.org),
        user: Some(user),
        role: member.map(|m| m.role),
        decision,
        context,
    }))
}

/// The id under which the owners' invariant is recorded as the deciding "policy".
pub const OWNERS_KEEP_THE_RULES: &str = "invariant.owners-keep-the-rules";

fn owners_keep_the_rules(denied: Decision) -> Decision {
    Decision {
        effect: bulwark_authz::Effect::Permit,
        policies: vec![OWNERS_KEEP_THE_RULES.to_owned()],
        ..denied
    }
}

/// The resource a target names in `org`, with the facts policies see; `None` when there is
/// no such member or team.
async fn resource_of(
    read: &mut dyn OrgRead,
    org: OrgId,
    target: Target,
) -> Result<Option<Resource>, StoreError> {
    Ok(match target {
        Target::Org => Some(Resource::Org(org)),
        Target::Invitation(role) => Some(Resource::Invitation { org, role }),
        Target::Member(user) => read.member(user).await?.map(|t| Resource::Member {
            org,
            user,
            role: t.role,
        }),
        Target::Team(team) => read
            .teams()
            .await?
            .into_iter()
            .find(|t| t.id == team)
            .map(|t| Resource::Team {
                org,
                team: t.id.to_string(),
                name: t.name,
            }),
    })
}

/// A decision to replay (`bulwark authz explain`).
pub struct Question {
    /// The org.
    pub org: OrgId,
    /// The principal.
    pub user: UserId,
    /// Their role, instead of the one they hold now (to replay a decision made before a role
    /// change); `None` reads it.
    pub role: Option<Role>,
    /// The action.
    pub action: Action,
    /// On what.
    pub target: Target,
    /// Further facts.
    pub facts: Facts,
    /// The policy set (as recorded in an event's `decision.policy_set`); `None` for the one in
    /// force.
    pub policy_hash: Option<String>,
}

/// A replayed decision with everything it was made from.
pub struct Explanation {
    /// The decision.
    pub decision: Decision,
    /// The principal as the policies saw it.
    pub principal: Principal,
    /// The resource as the policies saw it.
    pub resource: Resource,
    /// The policy set used.
    pub policies: Arc<Policies>,
}

/// Replays a decision from the store, offline: today's membership and teams (or the given
/// role), and the policy set in force or the one named by its hash. Records nothing.
///
/// # Errors
/// `NotFound` (no such org, target or policy set in this org); storage failures.
pub async fn explain(
    store: &dyn Store,
    authz: &Authz,
    q: Question,
) -> Result<Explanation, CoreError> {
    let mut read = store.org_read(q.org).await?;
    read.policy().await?;
    let member = read.member(q.user).await?;
    let role = q.role.or(member.as_ref().map(|m| m.role));
    let teams = match &member {
        Some(_) => read.teams_of(q.user).await?,
        None => Vec::new(),
    };
    let resource = resource_of(&mut *read, q.org, q.target)
        .await?
        .ok_or(CoreError::NotFound)?;
    let policies = match &q.policy_hash {
        Some(hash) => authz
            .by_hash(&mut *read, hash)
            .await?
            .ok_or(CoreError::NotFound)?,
        None => authz.policies_of(&mut *read).await?,
    };
    let principal = Principal {
        user: q.user,
        role,
        teams: teams.iter().map(ToString::to_string).collect(),
    };
    let mut decision = authz
        .engine
        .decide(&policies, &principal, q.action, &resource, &q.facts);
    if !decision.allowed()
        && q.action == Action::AuthzPoliciesWrite
        && principal.role == Some(Role::Owner)
        && member.is_some()
    {
        decision = owners_keep_the_rules(decision);
    }
    Ok(Explanation {
        decision,
        principal,
        resource,
        policies,
    })
}

/// [`explain`] for a caller allowed `AuthzPoliciesRead` on an org: the question is always
/// about the decided org (the API and the console; the CLI reads the store itself).
///
/// # Errors
/// As [`explain`]; a decision for another action (a bug).
pub async fn explain_for(
    store: &dyn Store,
    authz: &Authz,
    authorized: &Authorized,
    mut q: Question,
) -> Result<Explanation, CoreError> {
    q.org = authorized.org_for(Action::AuthzPoliciesRead)?;
    explain(store, authz, q).await
}

/// Decides an action on the caller's own account (sessions, password, second factor) under the
/// built-in policies.
///
/// # Errors
/// The decision when it is a refusal (never, with the built-in policies: a test checks it).
pub fn authorize_account(
    authz: &Authz,
    session: &Session,
    mut context: Context,
) -> Result<Authorized, Decision> {
    let user = session.user_id;
    let principal = Principal {
        user,
        role: None,
        teams: Vec::new(),
    };
    let decision = authz.engine.decide(
        authz.engine.builtin(),
        &principal,
        Action::AccountUse,
        &Resource::Account(user),
        &Facts::default(),
    );
    if !decision.allowed() {
        return Err(decision);
    }
    context.decision = Some(recorded(&decision));
    Ok(Authorized {
        org: None,
        user: Some(user),
        role: None,
        decision,
        context,
    })
}

/// Decides an org action for an API key: only in its own org (another org's routes answer as
/// if nothing were there), and only as the policies allow keys (the built-in ones: by scope).
/// Refusals by policy are recorded as `authz.denied` in the key's org.
///
/// # Errors
/// Storage failures; `Ok(Err(_))` for a refusal.
pub async fn authorize_key(
    store: &dyn Store,
    authz: &Authz,
    clock: &dyn Clock,
    caller: &KeyCaller,
    org: OrgId,
    action: Action,
    mut context: Context,
) -> Result<Result<Authorized, Refused>, CoreError> {
    if caller.org != org {
        return Ok(Err(Refused::NotFound));
    }
    let policies = authz.policies_for(store, org).await?;
    let key = bulwark_authz::KeyPrincipal {
        key: caller.key.to_string(),
        org,
        scopes: caller.scopes.clone(),
        team: caller.team.map(|t| t.to_string()),
    };
    let resource = Resource::Org(org);
    let decision = authz.decide_key(&policies, &key, action, &resource);
    context.decision = Some(recorded(&decision));
    if !decision.allowed() {
        record_denial(store, clock, org, &resource, context).await?;
        return Ok(Err(Refused::Forbidden(decision)));
    }
    Ok(Ok(Authorized {
        org: Some(org),
        user: None,
        role: None,
        decision,
        context,
    }))
}

/// The decision as an audit event records it.
#[must_use]
pub fn recorded(decision: &Decision) -> Recorded {
    Recorded {
        effect: if decision.allowed() {
            DecisionEffect::Permit
        } else {
            DecisionEffect::Deny
        },
        action: decision.action.as_str().to_owned(),
        policy_set: decision.policy_set.clone(),
        policies: decision.policies.clone(),
    }
}

async fn record_denial(
    store: &dyn Store,
    clock: &dyn Clock,
    org: OrgId,
    resource: &Resource,
    context: Context,
) -> Result<(), CoreError> {
    let action = context
        .decision
        .as_ref()
        .map(|d| d.action.clone())
        .unwrap_or_default();
    crate::metrics::metrics()
        .authz_denials
        .inc(&[&action, &crate::metrics::org_label(Some(org))]);
    let (kind, id) = match resource {
        Resource::Org(org) => ("org", org.to_string()),
        Resource::Account(user) => ("user", user.to_string()),
        Resource::Member { user, .. } => ("member", user.to_string()),
        Resource::Invitation { role, .. } => ("invitation", format!("new:{}", role.as_str())),
        Resource::Team { team, .. } => ("team", team.clone()),
    };
    let draft = Draft {
        payload: Payload::AuthzDenied { action },
        resource: EventResource {
            kind: kind.into(),
            id,
        },
        outcome: Outcome {
            result: Result_::Failure,
            reason: Some("policy".into()),
        },
        context,
    };
    let mut tx = store.org(org).await?;
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}
