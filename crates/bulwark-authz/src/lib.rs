//! Authorization: every decision Bulwark makes about who may do what goes through [`Engine`].
//!
//! Decisions are made by Cedar against a fixed schema (`policies/schema.cedarschema`) with a
//! built-in policy set (`policies/builtin.cedar`) plus, per org, the org's own policies, which
//! must validate against the schema (strict mode) before they can be activated. A decision
//! names the policy set by its SHA-256 and the policies that determined it, so it can be
//! replayed offline (`bulwark authz explain`).
//!
//! A request is scoped to one org: the principal's parents are its role and teams *in that
//! org*, and the resource belongs to that org. A user with no membership there has no parents,
//! so only policies about their own account can apply to them.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr as _;

use bulwark_types::{OrgId, Role, UserId};
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};

/// The schema, in Cedar's schema syntax.
pub const SCHEMA: &str = include_str!("../policies/schema.cedarschema");
/// The built-in policies, in force for every org.
pub const BUILTIN: &str = include_str!("../policies/builtin.cedar");

/// The largest org policy text accepted.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The most policies an org may add.
pub const MAX_POLICIES: usize = 200;

/// Every action Bulwark decides on. The schema declares exactly these (a test checks both
/// ways), plus the groups `account`, `read`, `audit` and `manage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The signed-in user's own account: sessions, password, second factor.
    AccountUse,
    /// Read the org's audit log (events, checkpoints, proofs, exports, retention).
    AuditRead,
    /// Change the org's audit retention.
    AuditRetentionWrite,
    /// Read the org's sign-in policy.
    OrgPolicyRead,
    /// Change the org's sign-in policy.
    OrgPolicyWrite,
    /// Read the org's authorization policies.
    AuthzPoliciesRead,
    /// Change the org's authorization policies.
    AuthzPoliciesWrite,
    /// List members.
    MembersRead,
    /// Revoke a member's sessions.
    MembersSessionsRevoke,
    /// Reset a member's second factor.
    MembersMfaReset,
    /// Change a member's role.
    MembersRoleWrite,
    /// Remove a member from the org.
    MembersRemove,
    /// List open invitations.
    InvitationsRead,
    /// Invite someone with a role.
    InvitationsCreate,
    /// Withdraw an invitation.
    InvitationsRevoke,
    /// List teams.
    TeamsRead,
    /// Create, rename or delete teams.
    TeamsWrite,
    /// Add or remove a team's members.
    TeamsMembersWrite,
    /// List the org's API keys (metadata only: a key is shown once, at issue).
    KeysRead,
    /// Issue, rotate and revoke the org's API keys.
    KeysWrite,
    /// Issue, list and revoke keys in the org's key spaces (the host application's customers).
    SpaceKeysWrite,
    /// Check a key of the org's key spaces (machines only).
    SpaceKeysVerify,
    /// List the org's credentials (metadata only: a value is never read back).
    CredentialsRead,
    /// Create, replace and delete the org's credentials.
    CredentialsWrite,
    /// List webhook endpoints and their delivery attempts.
    WebhooksRead,
    /// Create, change, rotate, delete endpoints; resend and replay.
    WebhooksWrite,
    /// Queue a message for the org's endpoints (the host application, with a key).
    WebhooksSend,
    /// Preview and push a record to a ticket tracker.
    TicketsPush,
    /// See the deployment's license status (operator org).
    LicenseRead,
    /// Activate a license file (operator org owners).
    LicenseActivate,
    /// Run the deployment's live checks and read its evidence (operator org owners, admins and
    /// auditors).
    EvidenceRead,
    /// Create another organisation (operator org owners).
    OrgsCreate,
    /// See the org's single sign-on connections, domains and rules.
    SsoRead,
    /// Configure the org's single sign-on (owners).
    SsoWrite,
    /// Confirm an org's claim of an email domain (operator org owners).
    SsoDomainsVerify,
    /// Provision the org's users and groups over SCIM (the org's identity provider, with a key).
    ScimProvision,
    /// Schedule or cancel the org's deletion (owners).
    OrgDelete,
}

impl Action {
    /// Every action.
    pub const ALL: [Self; 37] = [
        Self::AccountUse,
        Self::AuditRead,
        Self::AuditRetentionWrite,
        Self::OrgPolicyRead,
        Self::OrgPolicyWrite,
        Self::AuthzPoliciesRead,
        Self::AuthzPoliciesWrite,
        Self::MembersRead,
        Self::MembersSessionsRevoke,
        Self::MembersMfaReset,
        Self::MembersRoleWrite,
        Self::MembersRemove,
        Self::InvitationsRead,
        Self::InvitationsCreate,
        Self::InvitationsRevoke,
        Self::TeamsRead,
        Self::TeamsWrite,
        Self::TeamsMembersWrite,
        Self::KeysRead,
        Self::KeysWrite,
        Self::SpaceKeysWrite,
        Self::SpaceKeysVerify,
        Self::CredentialsRead,
        Self::CredentialsWrite,
        Self::WebhooksRead,
        Self::WebhooksWrite,
        Self::WebhooksSend,
        Self::TicketsPush,
        Self::LicenseRead,
        Self::LicenseActivate,
        Self::EvidenceRead,
        Self::OrgsCreate,
        Self::SsoRead,
        Self::SsoWrite,
        Self::SsoDomainsVerify,
        Self::ScimProvision,
        Self::OrgDelete,
    ];

    /// Whether a person may be the principal (some actions are for API keys only).
    #[must_use]
    pub const fn for_people(self) -> bool {
        !matches!(self, Self::SpaceKeysVerify | Self::ScimProvision)
    }

    /// The scope an API key must hold for this action, or `None` when no key may do it. A
    /// ceiling enforced outside Cedar: an org policy (say, one naming a team, whose keys are in
    /// it) can narrow what a key does, never widen it beyond its scopes.
    #[must_use]
    pub const fn key_scope(self) -> Option<&'static str> {
        match self {
            Self::AuditRead => Some("audit:read"),
            Self::MembersRead => Some("members:read"),
            Self::SpaceKeysWrite => Some("spaces:write"),
            Self::SpaceKeysVerify => Some("spaces:verify"),
            Self::WebhooksSend => Some("webhooks:send"),
            Self::ScimProvision => Some("scim"),
            _ => None,
        }
    }

    /// The action's name in the schema and in audit events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AccountUse => "account.use",
            Self::AuditRead => "audit.read",
            Self::AuditRetentionWrite => "audit.retention.write",
            Self::OrgPolicyRead => "org.policy.read",
            Self::OrgPolicyWrite => "org.policy.write",
            Self::AuthzPoliciesRead => "authz.policies.read",
            Self::AuthzPoliciesWrite => "authz.policies.write",
            Self::MembersRead => "members.read",
            Self::MembersSessionsRevoke => "members.sessions.revoke",
            Self::MembersMfaReset => "members.mfa.reset",
            Self::MembersRoleWrite => "members.role.write",
            Self::MembersRemove => "members.remove",
            Self::InvitationsRead => "invitations.read",
            Self::InvitationsCreate => "invitations.create",
            Self::InvitationsRevoke => "invitations.revoke",
            Self::TeamsRead => "teams.read",
            Self::TeamsWrite => "teams.write",
            Self::TeamsMembersWrite => "teams.members.write",
            Self::KeysRead => "keys.read",
            Self::KeysWrite => "keys.write",
            Self::SpaceKeysWrite => "spaces.keys.write",
            Self::SpaceKeysVerify => "spaces.keys.verify",
            Self::CredentialsRead => "credentials.read",
            Self::CredentialsWrite => "credentials.write",
            Self::WebhooksRead => "webhooks.read",
            Self::WebhooksWrite => "webhooks.write",
            Self::WebhooksSend => "webhooks.send",
            Self::TicketsPush => "tickets.push",
            Self::LicenseRead => "license.read",
            Self::LicenseActivate => "license.activate",
            Self::EvidenceRead => "evidence.read",
            Self::OrgsCreate => "orgs.create",
            Self::SsoRead => "sso.read",
            Self::SsoWrite => "sso.write",
            Self::SsoDomainsVerify => "sso.domains.verify",
            Self::ScimProvision => "scim.provision",
            Self::OrgDelete => "org.delete",
        }
    }

    /// The action named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Who asks: a user, with their role and teams in the request's org (none when they are not a
/// member there).
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user: UserId,
    /// Their role in the org, if a member.
    pub role: Option<Role>,
    /// Their teams in the org (team ids).
    pub teams: Vec<String>,
}

/// What the action is on.
#[derive(Debug, Clone)]
pub enum Resource {
    /// The org itself.
    Org(OrgId),
    /// A user's own account.
    Account(UserId),
    /// A member of the org, with their current role.
    Member {
        /// The org.
        org: OrgId,
        /// The member.
        user: UserId,
        /// Their role.
        role: Role,
    },
    /// An invitation to the org with `role`.
    Invitation {
        /// The org.
        org: OrgId,
        /// The role offered.
        role: Role,
    },
    /// A team of the org.
    Team {
        /// The org.
        org: OrgId,
        /// The team id.
        team: String,
        /// Its name.
        name: String,
    },
}

impl Resource {
    /// The org the resource belongs to (`None` for an account).
    #[must_use]
    pub fn org(&self) -> Option<OrgId> {
        match self {
            Self::Org(org)
            | Self::Member { org, .. }
            | Self::Invitation { org, .. }
            | Self::Team { org, .. } => Some(*org),
            Self::Account(_) => None,
        }
    }
}

/// The facts of a request beyond principal and resource.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The role being granted (`members.role.write`).
    pub granted_role: Option<Role>,
}

/// Permit or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Allowed.
    Permit,
    /// Refused.
    Deny,
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Permit or deny.
    pub effect: Effect,
    /// The action decided.
    pub action: Action,
    /// The SHA-256 (hex) of the policy set in force.
    pub policy_set: String,
    /// The policies that determined it: the permits that allowed it, or the forbids that
    /// refused it; empty for a refusal because nothing permits it.
    pub policies: Vec<String>,
    /// Evaluation errors (a policy that failed to evaluate is skipped, never a permit).
    pub errors: Vec<String>,
}

impl Decision {
    /// Whether the action is allowed.
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.effect == Effect::Permit
    }
}

/// Why an org's policy text cannot be activated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Too large or too many.
    #[error("{0}")]
    TooLarge(String),
    /// Not Cedar, or not valid against the schema.
    #[error("the policies are not valid: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// An effective policy set: the built-in policies plus an org's own, with its hash.
#[derive(Clone)]
pub struct Policies {
    set: PolicySet,
    text: String,
    hash: String,
}

impl Policies {
    /// SHA-256 (hex) of [`Policies::text`].
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The whole set as text (built-in first, then the org's), as hashed and stored.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The org's own policies (empty for the built-in set alone).
    #[must_use]
    pub fn org_text(&self) -> &str {
        self.text.split_once(ORG_SECTION).map_or("", |(_, org)| org)
    }

    /// The text of the policy `id`, if the set has one.
    #[must_use]
    pub fn policy_text(&self, id: &str) -> Option<String> {
        self.set
            .policy(&cedar_policy::PolicyId::new(id))
            .map(ToString::to_string)
    }

    /// The ids of the org's own policies.
    #[must_use]
    pub fn org_ids(&self) -> Vec<String> {
        self.ids()
            .into_iter()
            .filter(|id| id.starts_with("org."))
            .collect()
    }

    /// The ids of every policy in the set.
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.set.policies().map(|p| p.id().to_string()).collect();
        ids.sort();
        ids
    }
}

/// The separator between the built-in and the org's policies in a stored set.
const ORG_SECTION: &str = "\n// ---- org policies ----\n";

/// The schema, parsed once, and the built-in set.
pub struct Engine {
    schema: Schema,
    /// The action entities and their groups, from the schema: built once, cloned per decision
    /// (building them from the schema each time costs more than the decision itself).
    actions: Entities,
    builtin: Policies,
    authorizer: Authorizer,
}

/// The embedded schema or built-in set does not parse or validate (a build defect: tests catch
/// it; the server refuses to start).
#[derive(Debug, thiserror::Error)]
#[error("the built-in authorization policies are broken: {0}")]
pub struct BuiltinError(String);

impl Engine {
    /// Parses and checks the schema and the built-in policies.
    ///
    /// # Errors
    /// When either is broken.
    pub fn new() -> Result<Self, BuiltinError> {
        let (schema, _) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| BuiltinError(e.to_string()))?;
        let set = parse_with_ids(BUILTIN, "builtin.").map_err(|e| BuiltinError(e.join("; ")))?;
        let errors = validation_errors(&schema, &set, BUILTIN);
        if !errors.is_empty() {
            return Err(BuiltinError(errors.join("; ")));
        }
        let builtin = Policies {
            hash: sha256_hex(BUILTIN.as_bytes()),
            text: BUILTIN.to_owned(),
            set,
        };
        let actions = schema
            .action_entities()
            .map_err(|e| BuiltinError(e.to_string()))?;
        Ok(Self {
            schema,
            actions,
            builtin,
            authorizer: Authorizer::new(),
        })
    }

    /// The built-in set alone (an org with no policies of its own).
    #[must_use]
    pub fn builtin(&self) -> &Policies {
        &self.builtin
    }

    /// The built-in set plus an org's `custom` policies, which must each carry an
    /// `@id("org.…")` annotation and validate against the schema.
    ///
    /// # Errors
    /// What is wrong, with positions where Cedar gives them.
    pub fn with_org_policies(&self, custom: &str) -> Result<Policies, PolicyError> {
        if custom.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge(format!(
                "the policies are {} bytes; at most {MAX_POLICY_BYTES} are accepted",
                custom.len()
            )));
        }
        let org = parse_with_ids(custom, "org.").map_err(PolicyError::Invalid)?;
        if org.policies().count() > MAX_POLICIES {
            return Err(PolicyError::TooLarge(format!(
                "at most {MAX_POLICIES} policies are accepted"
            )));
        }
        let mut set = self.builtin.set.clone();
        for policy in org.policies() {
            set.add(policy.clone())
                .map_err(|e| PolicyError::Invalid(vec![e.to_string()]))?;
        }
        let errors = validation_errors(&self.schema, &set, custom);
        if !errors.is_empty() {
            return Err(PolicyError::Invalid(errors));
        }
        let text = format!("{BUILTIN}{ORG_SECTION}{custom}");
        Ok(Policies {
            hash: sha256_hex(text.as_bytes()),
            text,
            set,
        })
    }

    /// Re-reads a stored set (built-in part and org part as they were when it was activated),
    /// for replaying a past decision. Not validated against today's schema.
    ///
    /// # Errors
    /// When the text does not parse.
    pub fn stored(&self, text: &str) -> Result<Policies, PolicyError> {
        let (builtin, org) = text.split_once(ORG_SECTION).unwrap_or((text, ""));
        let mut set = parse_with_ids(builtin, "builtin.").map_err(PolicyError::Invalid)?;
        for policy in parse_with_ids(org, "org.")
            .map_err(PolicyError::Invalid)?
            .policies()
        {
            set.add(policy.clone())
                .map_err(|e| PolicyError::Invalid(vec![e.to_string()]))?;
        }
        Ok(Policies {
            hash: sha256_hex(text.as_bytes()),
            text: text.to_owned(),
            set,
        })
    }

    /// Decides whether `principal` may do `action` on `resource` under `policies`.
    #[must_use]
    pub fn decide(
        &self,
        policies: &Policies,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        facts: &Facts,
    ) -> Decision {
        match self.evaluate(policies, principal, action, resource, facts) {
            Ok(decision) => decision,
            // A request that cannot even be built (a schema mismatch in our own code) is
            // refused, never allowed.
            Err(e) => Decision {
                effect: Effect::Deny,
                action,
                policy_set: policies.hash.clone(),
                policies: Vec::new(),
                errors: vec![e],
            },
        }
    }

    /// Decides whether the API key `key` may do `action` on `resource` under `policies`. A key
    /// is never allowed an action outside its scopes ([`Action::key_scope`]), whatever the
    /// policies permit: such a permit becomes a refusal citing [`KEYS_STAY_IN_SCOPE`].
    #[must_use]
    pub fn decide_key(
        &self,
        policies: &Policies,
        key: &KeyPrincipal,
        action: Action,
        resource: &Resource,
    ) -> Decision {
        let principal = key_entity(key);
        let outcome = principal.and_then(|(id, entity)| {
            self.evaluate_as(policies, id, entity, action, resource, &Facts::default())
        });
        let decision = outcome.unwrap_or_else(|e| Decision {
            effect: Effect::Deny,
            action,
            policy_set: policies.hash.clone(),
            policies: Vec::new(),
            errors: vec![e],
        });
        let in_scope = action
            .key_scope()
            .is_some_and(|scope| key.scopes.iter().any(|s| s == scope));
        if decision.allowed() && !in_scope {
            return Decision {
                effect: Effect::Deny,
                policies: vec![KEYS_STAY_IN_SCOPE.to_owned()],
                ..decision
            };
        }
        decision
    }

    fn evaluate(
        &self,
        policies: &Policies,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        facts: &Facts,
    ) -> Result<Decision, String> {
        let user = uid("User", &principal.user.to_string())?;
        let mut parents = HashSet::new();
        if let Some(role) = principal.role {
            parents.insert(uid("Role", role.as_str())?);
        }
        for team in &principal.teams {
            parents.insert(uid("Team", team)?);
        }
        let entity = Entity::new_no_attrs(user.clone(), parents);
        self.evaluate_as(policies, user, entity, action, resource, facts)
    }

    fn evaluate_as(
        &self,
        policies: &Policies,
        user: EntityUid,
        principal: Entity,
        action: Action,
        resource: &Resource,
        facts: &Facts,
    ) -> Result<Decision, String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let mut entities = vec![principal];
        let (resource_uid, resource_entity) = resource_entity(resource)?;
        if let Some(entity) = resource_entity {
            entities.push(entity);
        }
        // Our two entities are built from typed values the unit tests check against the
        // schema, so they are added without re-validating them on every decision.
        let entities = self
            .actions
            .clone()
            .add_entities(entities, None)
            .map_err(|e| err(&e))?;
        let mut context = HashMap::new();
        if let Some(role) = facts.granted_role {
            context.insert(
                "role".to_owned(),
                RestrictedExpression::new_string(role.as_str().to_owned()),
            );
        }
        let action_uid = uid("Action", action.as_str())?;
        let context = Context::from_pairs(context).map_err(|e| err(&e))?;
        let context = if action == Action::MembersRoleWrite {
            context
        } else {
            Context::empty()
        };
        let request = Request::new(user, action_uid, resource_uid, context, Some(&self.schema))
            .map_err(|e| err(&e))?;
        let response = self
            .authorizer
            .is_authorized(&request, &policies.set, &entities);
        let mut determining: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        determining.sort();
        Ok(Decision {
            effect: match response.decision() {
                CedarDecision::Allow => Effect::Permit,
                CedarDecision::Deny => Effect::Deny,
            },
            action,
            policy_set: policies.hash.clone(),
            policies: determining,
            errors: response
                .diagnostics()
                .errors()
                .map(ToString::to_string)
                .collect(),
        })
    }
}

/// The rule outside Cedar that keeps a key within its scopes (cited by the refusals it makes).
pub const KEYS_STAY_IN_SCOPE: &str = "invariant.keys-stay-in-scope";

/// An API key as a principal: a member of its org's entity (and of its team's), with its scopes.
#[derive(Debug, Clone)]
pub struct KeyPrincipal {
    /// The key's id (`key_…`).
    pub key: String,
    /// Its org.
    pub org: OrgId,
    /// Its scopes (`audit:read`, …).
    pub scopes: Vec<String>,
    /// The team it was issued to (`team_…`), if any: the key is then in that team, so an org
    /// policy can name the team's keys (`principal in Bulwark::Team::"team_…"`).
    pub team: Option<String>,
}

fn key_entity(key: &KeyPrincipal) -> Result<(EntityUid, Entity), String> {
    let id = uid("ApiKey", &key.key)?;
    let scopes = RestrictedExpression::new_set(
        key.scopes
            .iter()
            .map(|s| RestrictedExpression::new_string(s.clone())),
    );
    let attrs = HashMap::from([("scopes".to_owned(), scopes)]);
    let mut parents = HashSet::from([uid("Org", &key.org.to_string())?]);
    if let Some(team) = &key.team {
        parents.insert(uid("Team", team)?);
    }
    let entity = Entity::new(id.clone(), attrs, parents).map_err(|e| e.to_string())?;
    Ok((id, entity))
}

/// The resource's uid, and its entity when it carries attributes or an org parent.
fn resource_entity(resource: &Resource) -> Result<(EntityUid, Option<Entity>), String> {
    let org_parent = |org: &OrgId| -> Result<HashSet<EntityUid>, String> {
        Ok(HashSet::from([uid("Org", &org.to_string())?]))
    };
    let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
    match resource {
        Resource::Org(org) => Ok((uid("Org", &org.to_string())?, None)),
        Resource::Account(user) => Ok((uid("User", &user.to_string())?, None)),
        Resource::Member { org, user, role } => {
            let id = uid("Member", &format!("{org}/{user}"))?;
            let attrs = HashMap::from([
                ("role".to_owned(), string(role.as_str())),
                (
                    "user".to_owned(),
                    RestrictedExpression::new_entity_uid(uid("User", &user.to_string())?),
                ),
            ]);
            let entity =
                Entity::new(id.clone(), attrs, org_parent(org)?).map_err(|e| e.to_string())?;
            Ok((id, Some(entity)))
        }
        Resource::Invitation { org, role } => {
            let id = uid("Invitation", &format!("{org}/new"))?;
            let attrs = HashMap::from([("role".to_owned(), string(role.as_str()))]);
            let entity =
                Entity::new(id.clone(), attrs, org_parent(org)?).map_err(|e| e.to_string())?;
            Ok((id, Some(entity)))
        }
        Resource::Team { org, team, name } => {
            let id = uid("Team", team)?;
            let attrs = HashMap::from([("name".to_owned(), string(name))]);
            let entity =
                Entity::new(id.clone(), attrs, org_parent(org)?).map_err(|e| e.to_string())?;
            Ok((id, Some(entity)))
        }
    }
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    let name = EntityTypeName::from_str(&format!("Bulwark::{kind}")).map_err(|e| e.to_string())?;
    let id = EntityId::from_str(id).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(name, id))
}

/// Parses `text` into policies named by their `@id` annotation, which must start with
/// `prefix` and be unique.
fn parse_with_ids(text: &str, prefix: &str) -> Result<PolicySet, Vec<String>> {
    let parsed = PolicySet::from_str(text).map_err(|e| {
        e.iter()
            .map(|d| located(text, d, d.to_string()))
            .collect::<Vec<_>>()
    })?;
    let mut set = PolicySet::new();
    let mut problems = Vec::new();
    if parsed.templates().next().is_some() {
        problems.push(
            "templates (`?principal`, `?resource`) are not supported; write static policies"
                .to_owned(),
        );
    }
    for (n, policy) in parsed.policies().enumerate() {
        let Some(id) = policy.annotation("id") else {
            problems.push(format!(
                "policy {} has no @id(\"{prefix}…\") annotation",
                n + 1
            ));
            continue;
        };
        if !id.starts_with(prefix) || id.len() > 100 {
            problems.push(format!(
                "policy id `{id}` must start with `{prefix}` (at most 100 characters)"
            ));
            continue;
        }
        if let Err(e) = set.add(policy.new_id(PolicyId::new(id))) {
            problems.push(format!("policy id `{id}`: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}

fn validation_errors(schema: &Schema, set: &PolicySet, text: &str) -> Vec<String> {
    // Warnings count as errors: a policy that can never apply (e.g. granting a key a person's
    // action) or that mixes scripts in an identifier is a mistake in a security policy.
    let result = Validator::new(schema.clone()).validate(set, ValidationMode::Strict);
    result
        .validation_errors()
        .map(|e| located(text, e, e.to_string()))
        .chain(
            result
                .validation_warnings()
                .map(|w| located(text, w, w.to_string())),
        )
        .collect()
}

/// `message` prefixed with `line N: `, the line of `text` where Cedar's first label for it
/// starts (Cedar keeps each policy's span in the text it was parsed from: the org's text).
fn located(text: &str, diagnostic: &dyn miette::Diagnostic, message: String) -> String {
    let offset = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    match offset.and_then(|o| text.as_bytes().get(..o)) {
        Some(before) => {
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests;
