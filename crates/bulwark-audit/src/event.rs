//! The closed audit event schema and its canonical bytes.
//!
//! Every event type is declared once in [`audit_events!`] below: its dotted name, its
//! classification, and its typed payload fields. An event of an unknown type cannot be built
//! (there is no variant), stored (the store takes an [`Event`]) or imported (deserialisation of an
//! unknown `action` fails). `docs/audit-events.md` is checked against [`CATALOG`] by a test.
//!
//! Canonical bytes: the compact JSON of an [`Event`] with its fields in declaration order (`v`,
//! `id`, `log`, `seq`, `time`, `actor`, `action`, `class`, `data`, `resource`, `outcome`,
//! `source_ip`, `user_agent`, `request_id`, `decision`), absent optional fields omitted, strings
//! escaped as `serde_json` does, integers only. The leaf hash is `SHA-256(0x00 ‖ canonical bytes)`;
//! an export carries these exact bytes, one event per line, so a verifier never re-serialises.

use bulwark_types::{EventId, redact};
use serde::{Deserialize, Serialize};

/// The schema version written in every event.
pub const SCHEMA_VERSION: u8 = 1;
/// Longest user agent kept; longer ones are cut at a character boundary.
pub const MAX_USER_AGENT_CHARS: usize = 500;

/// Why an event could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The bytes are not an event of a known type and schema version.
    #[error("not a valid audit event: {0}")]
    Invalid(String),
    /// The schema version is not one this build understands.
    #[error("unsupported audit schema version {0}")]
    Version(u8),
}

/// Classification of an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Someone gained or was refused access.
    Access,
    /// Configuration or membership changed.
    Change,
    /// A security control acted (lockout, key rotation, tamper alarm).
    Security,
    /// Protected data was read, exported or deleted.
    Data,
    /// Deployment administration (setup, migrations, licensing).
    Admin,
}

impl Class {
    /// The code as written in events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Change => "change",
            Self::Security => "security",
            Self::Data => "data",
            Self::Admin => "admin",
        }
    }
}

/// One entry of the event catalog.
#[derive(Debug, Clone, Copy)]
pub struct EventSpec {
    /// Dotted name, e.g. `member.role_changed`.
    pub name: &'static str,
    /// Classification.
    pub class: Class,
    /// One-line meaning.
    pub description: &'static str,
    /// Payload fields as `(name, type)`.
    pub fields: &'static [(&'static str, &'static str)],
}

macro_rules! audit_events {
    ($( #[doc = $doc:literal] $variant:ident = $name:literal, $class:ident { $( $(#[$fattr:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {
        /// The typed payload of each event type. Payload types hold no secret types: those have no
        /// `Serialize`, so putting one here does not compile.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "action", content = "data")]
        pub enum Payload {
            $( #[doc = $doc] #[serde(rename = $name)] $variant { $( #[expect(missing_docs, reason = "the variant documents its fields")] $(#[$fattr])* $field: $ty ),* }, )*
        }

        impl Payload {
            /// The dotted name.
            #[must_use]
            pub const fn name(&self) -> &'static str {
                match self { $( Self::$variant { .. } => $name, )* }
            }

            /// The classification.
            #[must_use]
            pub const fn class(&self) -> Class {
                match self { $( Self::$variant { .. } => Class::$class, )* }
            }
        }

        /// Every event type, in declaration order.
        pub const CATALOG: &[EventSpec] = &[
            $( EventSpec { name: $name, class: Class::$class, description: $doc.trim_ascii(), fields: &[ $( (stringify!($field), stringify!($ty)) ),* ] }, )*
        ];
    };
}

audit_events! {
    /// The first organisation and its owner were created.
    SetupCompleted = "setup.completed", Admin { org_slug: String, owner_email: String }
    /// An organisation was created (with its first owner, when created beside the first org).
    OrgCreated = "org.created", Change { slug: String, name: String, owner_id: Option<String> }
    /// A user joined an organisation with a role.
    MemberAdded = "member.added", Change { user_id: String, role: String }
    /// A member's role changed.
    MemberRoleChanged = "member.role_changed", Change { user_id: String, from: String, to: String }
    /// A member left or was removed.
    MemberRemoved = "member.removed", Change { user_id: String }
    /// A sign-in succeeded.
    AuthLoginSucceeded = "auth.login.succeeded", Access { method: String, mfa: bool }
    /// A sign-in failed; the outcome carries the reason code.
    AuthLoginFailed = "auth.login.failed", Access { method: String }
    /// A session ended by logout, expiry or revocation.
    AuthSessionEnded = "auth.session.ended", Access { session_id: String, cause: String }
    /// The password matched and a second factor was asked for; the session is pending until it is given.
    AuthMfaChallenged = "auth.mfa.challenged", Access { method: String }
    /// A user's sessions were revoked at once: all of them by an admin or a reset, all but the current one on a password change or at the user's request (`revoked_by_user`).
    AuthSessionsRevoked = "auth.sessions.revoked", Security { user_id: String, count: u64, cause: String }
    /// A second factor was confirmed and enabled.
    AuthMfaEnrolled = "auth.mfa.enrolled", Security { method: String }
    /// A second factor was removed: by its user, by an org admin, or on the host.
    AuthMfaRemoved = "auth.mfa.removed", Security { user_id: String, method: String, cause: String }
    /// A fresh set of backup codes replaced the old one.
    AuthBackupCodesGenerated = "auth.mfa.backup_codes_generated", Security { count: u32 }
    /// A backup code was spent in place of a TOTP code.
    AuthBackupCodeUsed = "auth.mfa.backup_code_used", Security { remaining: u32 }
    /// A password was changed (by its user) or reset (by emailed token).
    AuthPasswordChanged = "auth.password.changed", Security { cause: String }
    /// Someone was invited to join the org with a role.
    MemberInvited = "member.invited", Change { invitation_id: String, role: String }
    /// An open invitation was withdrawn.
    MemberInvitationRevoked = "member.invitation_revoked", Change { invitation_id: String }
    /// Someone created an account through self-service sign-up (enabled by the operator).
    AuthSignedUp = "auth.signed_up", Security { user_id: String }
    /// A user proved they receive mail at their address.
    AuthEmailVerified = "auth.email.verified", Security { user_id: String }
    /// A password reset was asked for an existing account: success when the email was sent; failure `cooldown` or `daily_limit` when the account's mail limit held it back (recorded once until the next email, not per request).
    AuthPasswordResetRequested = "auth.password.reset_requested", Security { user_id: String }
    /// The org's deletion was scheduled: it is purged at `due_at` (RFC 3339) unless cancelled before.
    OrgDeletionScheduled = "org.deletion_scheduled", Security { due_at: String }
    /// The org's scheduled deletion was cancelled before it was due.
    OrgDeletionCancelled = "org.deletion_cancelled", Security { due_at: String }
    /// The org was purged: its rows deleted (`rows`: per table), its vault secret destroyed (`destroyed_keys`), its slug and name as they were. In the org's log it is the last event (the log is sealed there); the system log records it again with the deletion certificate's SHA-256.
    OrgPurged = "org.purged", Security { org_id: String, slug: String, name: String, rows: std::collections::BTreeMap<String, u64>, destroyed_keys: Vec<String>, certificate_sha256: Option<String> }
    /// Retention ran: ended sessions, closed invitations, webhook messages and audit event bodies past their retention were deleted (how many of each; the pruned audit bodies are also recorded by `audit.pruned` in each org's log).
    RetentionApplied = "retention.applied", Data { sessions: u64, invitations: u64, webhook_messages: u64, audit_bodies: u64 }
    /// A person was erased: the bodies of the events at `seqs` were replaced by redacted bodies (their address, user agent and email removed; the leaf hashes kept), each with the SHA-256 (hex) in `digests`. `subject` is their pseudonymous id.
    AuditErased = "audit.erased", Data { subject: String, seqs: Vec<u64>, digests: Vec<String> }
    /// A person's personal data left the live tables: their account became a tombstone, their sessions, factors, tokens, memberships, identities and invitations were deleted (`rows` per table), and `events` audit events were redacted across `logs`.
    UserErased = "user.erased", Security { user_id: String, rows: std::collections::BTreeMap<String, u64>, logs: Vec<String>, events: u64 }
    /// An org's sign-in rules changed.
    OrgPolicyChanged = "org.policy_changed", Admin { session_idle_secs: Option<u32>, session_absolute_secs: Option<u32>, mfa_required: String, password_composition: bool }
    /// An authorization decision refused a request; the envelope's `decision` names the action, the policy set and any forbid that decided it.
    AuthzDenied = "authz.denied", Access { action: String }
    /// The org's own authorization policies changed; the hashes name the whole effective set before and after.
    AuthzPoliciesActivated = "authz.policies_activated", Admin { from_hash: String, to_hash: String, policies: Vec<String> }
    /// A team was created.
    TeamCreated = "team.created", Change { team_id: String, name: String }
    /// A team was deleted.
    TeamDeleted = "team.deleted", Change { team_id: String }
    /// A member was added to or removed from a team.
    TeamMembershipChanged = "team.membership_changed", Change { team_id: String, user_id: String, added: bool }
    /// An API key was issued.
    ApiKeyCreated = "apikey.created", Security { key_id: String, scopes: Vec<String>, expires_at: Option<String> }
    /// An API key was revoked.
    ApiKeyRevoked = "apikey.revoked", Security { key_id: String }
    /// An API key was replaced by a new one; the old one keeps working for `overlap_secs`.
    ApiKeyRotated = "apikey.rotated", Security { key_id: String, from_key_id: String, overlap_secs: u32 }
    /// A credential was added to the org's vault (its value is never recorded).
    CredentialCreated = "credential.created", Security { credential_id: String, name: String, kind: String, destinations: Vec<String> }
    /// A credential's value was replaced.
    CredentialReplaced = "credential.replaced", Security { credential_id: String }
    /// Bulwark used a credential towards a destination; a refused destination is a failure with reason `destination_not_allowed`.
    CredentialUsed = "credential.used", Data { credential_id: String, destination: String, purpose: String }
    /// A credential and its data key were deleted.
    CredentialDeleted = "credential.deleted", Security { credential_id: String }
    /// A new vault key version became active; the rewrap job moves credentials to it.
    VaultKeyRotated = "vault.key_rotated", Security { from_version: u32, to_version: u32, provider: String }
    /// A vault key version no credential uses any more was retired (and destroyed where the provider can).
    VaultKeyRetired = "vault.key_retired", Security { version: u32, provider: String }
    /// A host operator opened every credential in memory to check them (`bulwark keys check`); no value left the process.
    VaultChecked = "vault.checked", Security { opened: u64, failed: u64 }
    /// A recovery kit of the workspace seed was written, encrypted under a passphrase.
    VaultRecoveryExported = "vault.recovery_exported", Security { kit_id: String }
    /// A webhook endpoint was added; its signing secret was shown once.
    WebhookEndpointCreated = "webhook.endpoint_created", Admin { endpoint_id: String, url: String, event_types: Vec<String>, scheme: String }
    /// A webhook endpoint's settings changed (URL, filter, description, rate, enabled).
    WebhookEndpointUpdated = "webhook.endpoint_updated", Admin { endpoint_id: String, url: String, event_types: Vec<String>, enabled: bool }
    /// A webhook endpoint and its queued deliveries were deleted, with its signing secrets.
    WebhookEndpointDeleted = "webhook.endpoint_deleted", Admin { endpoint_id: String }
    /// A webhook endpoint's signing secret was replaced; the old one also signs for `overlap_secs`.
    WebhookSecretRotated = "webhook.secret_rotated", Security { endpoint_id: String, overlap_secs: u32 }
    /// Bulwark disabled a webhook endpoint after sustained failure; queued deliveries wait for it to be enabled.
    WebhookEndpointDisabled = "webhook.endpoint_disabled", Admin { endpoint_id: String, consecutive_failures: u32, failing_since: String }
    /// A message was queued again for an endpoint (`resend` of one delivery, or `replay` of a time range).
    WebhookRequeued = "webhook.requeued", Data { endpoint_id: String, cause: String, messages: u64, since: Option<String>, until: Option<String> }
    /// A record was pushed to a ticket tracker (failures carry the reason code).
    TicketPushed = "ticket.pushed", Data { tracker: String, destination: String, record: String, fields: Vec<String>, ticket: Option<String> }
    /// A single sign-on connection was added (its secret, if any, is sealed in the vault).
    SsoConnectionCreated = "sso.connection_created", Admin { connection_id: String, protocol: String, name: String, issuer: String }
    /// A single sign-on connection's settings or state changed.
    SsoConnectionUpdated = "sso.connection_updated", Admin { connection_id: String, issuer: String, enabled: bool }
    /// A single sign-on connection was deleted with the identities bound through it.
    SsoConnectionDeleted = "sso.connection_deleted", Admin { connection_id: String }
    /// A single sign-on connection's client secret or key pair was replaced.
    SsoSecretRotated = "sso.secret_rotated", Security { connection_id: String, auth_method: String }
    /// An org claimed an email domain for single sign-on.
    SsoDomainClaimed = "sso.domain_claimed", Admin { domain: String }
    /// A claimed domain was verified and now routes sign-ins (`by`: how).
    SsoDomainVerified = "sso.domain_verified", Security { domain: String, by: String }
    /// An org dropped a claimed domain.
    SsoDomainRemoved = "sso.domain_removed", Admin { domain: String }
    /// The org's single sign-on rules changed.
    SsoSettingsChanged = "sso.settings_changed", Security { sso_required: bool, admin_emails: Vec<String>, idp_mfa: bool }
    /// An identity provider's subject was bound to an account (`how`: `provisioned`, `linked`, `invited`).
    SsoIdentityBound = "sso.identity_bound", Security { connection_id: String, user_id: String, how: String }
    /// An owner signed in with a password while the org requires single sign-on (break-glass).
    SsoBreakGlass = "sso.break_glass", Security { user_id: String }
    /// The identity provider signed a person out (back-channel logout); their sessions from it ended.
    SsoLoggedOut = "sso.logged_out", Security { connection_id: String, sessions: u64 }
    /// The org's identity provider provisioned an account over SCIM (`how`: `created`, a new account; `linked`, an existing one). `attributes` names what it set, never the values.
    ScimUserProvisioned = "scim.user_provisioned", Change { user_id: String, how: String, attributes: Vec<String> }
    /// The org's identity provider changed a provisioned account's attributes (`operation`: `replace` or `patch`).
    ScimUserUpdated = "scim.user_updated", Change { user_id: String, operation: String, attributes: Vec<String> }
    /// The org's identity provider deprovisioned a person (`cause`: `deactivated` or `deleted`): their membership ended, their keys were revoked and their invitations withdrawn in the same transaction (their sessions are revoked too when this was their only organisation, recorded as `auth.sessions.revoked`).
    ScimUserDeprovisioned = "scim.user_deprovisioned", Security { user_id: String, cause: String, keys_revoked: Vec<String>, invitations_withdrawn: u64 }
    /// The org's identity provider reactivated a person: their membership and team memberships are back (not their revoked keys).
    ScimUserReactivated = "scim.user_reactivated", Security { user_id: String, role: String }
    /// The org's identity provider created, changed or deleted a group (a team); `added` and `removed` count the members that changed.
    ScimGroupChanged = "scim.group_changed", Change { team_id: String, operation: String, attributes: Vec<String>, added: u64, removed: u64 }
    /// An audit export was produced.
    AuditExported = "audit.exported", Data { format: String, from_seq: u64, to_seq: u64 }
    /// An org's audit retention changed (`None`: keep forever).
    AuditRetentionChanged = "audit.retention_changed", Admin { from_days: Option<u32>, to_days: Option<u32> }
    /// Event bodies older than the retention were pruned; their leaf hashes are kept. `from_seq`..=`to_seq` and `oldest`..=`newest` (RFC 3339) span the events pruned (absent in events written before they were recorded).
    AuditPruned = "audit.pruned", Data {
        events: u64,
        retention_days: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")] from_seq: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")] to_seq: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")] oldest: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")] newest: Option<String>,
    }
    /// A license file was activated on this deployment (a refusal carries the reason code; its fields are absent when the file could not be read).
    LicenseActivated = "license.activated", Admin { license_id: Option<String>, serial: Option<u32>, licensee: Option<String>, key_id: Option<String>, expires_at: Option<String>, deployment: String }
    /// The license in force expires within 30 days, or has expired and is in its grace period (written at most once a day).
    LicenseExpiring = "license.expiring", Admin { license_id: String, expires_at: String, read_only_at: String, days_left: u32 }
    /// The license and its grace period ended: the deployment is read-only (the audit log, export and sign-in stay open).
    LicenseReadOnly = "license.read_only", Admin { license_id: String, read_only_at: String }
    /// A host operator set the license clock's latest time seen back to the system clock's time (after the clock had run ahead).
    LicenseClockReset = "license.clock_reset", Admin { from: String, to: String }
    /// The stored license clock went back without a reset signed by this deployment (an edit in the database); the running server restored the time it had seen.
    LicenseClockTampered = "license.clock_tampered", Security { stored: String, restored: String }
    /// A request was refused for a license entitlement (`orgs`, `seats`, a feature, or read-only mode).
    LicenseEntitlementDenied = "license.entitlement_denied", Access { entitlement: String, limit: Option<u64>, in_use: Option<u64>, org_id: Option<String> }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// `user`, `api_key` or `system`.
    #[serde(rename = "type")]
    pub kind: ActorKind,
    /// The id (`usr_…`, `key_…`); absent for `system`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
}

/// Kinds of actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person.
    User,
    /// A machine client.
    ApiKey,
    /// Bulwark itself or a local operator command.
    System,
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// e.g. `org`, `member`, `api_key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// `success` or `failure`.
    pub result: Result_,
    /// A stable reason code for failures (e.g. `bad_password`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

/// Success or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Result_ {
    /// It worked.
    Success,
    /// It was refused or failed.
    Failure,
}

/// One audit event as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version.
    pub v: u8,
    /// `evt_…` (UUIDv7).
    pub id: EventId,
    /// `org_…` or `system`.
    pub log: String,
    /// Position in its log (the leaf index).
    pub seq: u64,
    /// RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub time: time::OffsetDateTime,
    /// Who acted.
    pub actor: Actor,
    /// Dotted type name and its payload (`action`, `data`).
    #[serde(flatten)]
    pub payload: Payload,
    /// The classification of `action`.
    pub class: Class,
    /// What was acted on.
    pub resource: Resource,
    /// How it ended.
    pub outcome: Outcome,
    /// Client address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_ip: Option<String>,
    /// Client user agent, at most 500 characters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_agent: Option<String>,
    /// The request id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
    /// The authorization decision behind the event, where one was made.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<Decision>,
}

/// An authorization decision as recorded: enough to replay it (`bulwark authz explain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `permit` or `deny`.
    pub effect: DecisionEffect,
    /// The action decided, e.g. `invitations.create`.
    pub action: String,
    /// SHA-256 (hex) of the policy set in force.
    pub policy_set: String,
    /// The policies that determined it: the permits that allowed it, or the forbids that
    /// refused it; empty when it was refused because nothing permits it.
    pub policies: Vec<String>,
}

/// Permit or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionEffect {
    /// Allowed.
    Permit,
    /// Refused.
    Deny,
}

/// The context of an event, filled by the layer that emits it.
#[derive(Debug, Clone)]
pub struct Context {
    /// Who acted.
    pub actor: Actor,
    /// Client address.
    pub source_ip: Option<String>,
    /// Client user agent (truncated and redacted on emission).
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The authorization decision, where one was made.
    pub decision: Option<Decision>,
}

impl Context {
    /// Bulwark itself or a local operator command, with no request behind it.
    #[must_use]
    pub fn system(user_agent: Option<&str>) -> Self {
        Self {
            actor: Actor {
                kind: ActorKind::System,
                id: None,
            },
            source_ip: None,
            user_agent: user_agent.map(str::to_owned),
            request_id: None,
            decision: None,
        }
    }
}

impl Event {
    /// Builds an event, applying the emission-boundary rules: the user agent is cut to 500
    /// characters and every free-form string (user agent, reason, payload strings) passes the
    /// redactor, so a secret that reached a field by mistake is replaced before it is stored.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per envelope field; a builder would only rename them"
    )]
    #[must_use]
    pub fn new(
        log: String,
        seq: u64,
        time: time::OffsetDateTime,
        payload: Payload,
        resource: Resource,
        outcome: Outcome,
        ctx: Context,
        id: EventId,
    ) -> Self {
        let clean = |s: String| redact::redact_text(&s).unwrap_or(s);
        let user_agent = ctx
            .user_agent
            .map(|ua| clean(ua.chars().take(MAX_USER_AGENT_CHARS).collect()));
        let outcome = Outcome {
            result: outcome.result,
            reason: outcome.reason.map(clean),
        };
        let class = payload.class();
        Self {
            v: SCHEMA_VERSION,
            id,
            log,
            seq,
            time,
            actor: ctx.actor,
            payload: redact_payload(payload),
            class,
            resource,
            outcome,
            source_ip: ctx.source_ip,
            user_agent,
            request_id: ctx.request_id,
            decision: ctx.decision,
        }
    }

    /// The canonical bytes (see the module docs).
    ///
    /// # Errors
    /// Never for events built by [`Event::new`]; the `Result` guards the serialiser.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EventError> {
        serde_json::to_vec(self).map_err(|e| EventError::Invalid(e.to_string()))
    }

    /// Reads one event from its canonical bytes, refusing unknown types and versions, and bytes
    /// that are not exactly canonical (so a reformatted export line is detected, not re-hashed).
    ///
    /// # Errors
    /// `Invalid` or `Version`.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, EventError> {
        let event: Self =
            serde_json::from_slice(bytes).map_err(|e| EventError::Invalid(e.to_string()))?;
        if event.v != SCHEMA_VERSION {
            return Err(EventError::Version(event.v));
        }
        if event.class != event.payload.class() {
            return Err(EventError::Invalid(
                "class does not match the action".into(),
            ));
        }
        if event.canonical_bytes()? != bytes {
            return Err(EventError::Invalid("not in canonical form".into()));
        }
        Ok(event)
    }
}

/// Passes every string of the payload through the redactor.
fn redact_payload(payload: Payload) -> Payload {
    let Ok(mut value) = serde_json::to_value(&payload) else {
        return payload;
    };
    redact::redact_value(&mut value);
    serde_json::from_value(value).unwrap_or(payload)
}

/// The catalog as the Markdown table kept in `docs/audit-events.md` (a test keeps them equal).
#[must_use]
pub fn catalog_markdown() -> String {
    let mut out =
        String::from("| action | class | payload (`data`) | meaning |\n|---|---|---|---|\n");
    for spec in CATALOG {
        let fields: Vec<String> = spec
            .fields
            .iter()
            .map(|(name, ty)| format!("`{name}`: {}", ty.replace(' ', "")))
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            spec.name,
            spec.class.as_str(),
            fields.join(", "),
            spec.description
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            actor: Actor {
                kind: ActorKind::User,
                id: Some("usr_1".into()),
            },
            source_ip: Some("192.0.2.1".into()),
            user_agent: Some("curl/8".into()),
            request_id: Some("req-1".into()),
            decision: None,
        }
    }

    fn event(payload: Payload) -> Event {
        let time = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let resource = Resource {
            kind: "member".into(),
            id: "usr_2".into(),
        };
        let outcome = Outcome {
            result: Result_::Success,
            reason: None,
        };
        Event::new(
            "org_1".into(),
            7,
            time,
            payload,
            resource,
            outcome,
            ctx(),
            EventId::new(),
        )
    }

    #[test]
    fn canonical_bytes_round_trip_and_name_the_action() {
        let e = event(Payload::MemberRoleChanged {
            user_id: "usr_2".into(),
            from: "member".into(),
            to: "admin".into(),
        });
        let bytes = e.canonical_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"v\":1,\"id\":\"evt_"), "{text}");
        assert!(text.contains("\"action\":\"member.role_changed\",\"data\":{\"user_id\":\"usr_2\",\"from\":\"member\",\"to\":\"admin\"},\"class\":\"change\""), "{text}");
        assert_eq!(Event::from_canonical(&bytes).unwrap(), e);
    }

    #[test]
    fn unknown_types_versions_and_non_canonical_bytes_are_refused() {
        let e = event(Payload::MemberRemoved {
            user_id: "usr_2".into(),
        });
        let text = String::from_utf8(e.canonical_bytes().unwrap()).unwrap();
        for bad in [
            text.replace("member.removed", "member.vanished"),
            text.replace("\"v\":1", "\"v\":2"),
            text.replace("\"class\":\"change\"", "\"class\":\"admin\""),
            text.replace(",\"seq\"", ", \"seq\""),
            format!("{text}\n"),
            text.replace(
                "\"data\":{\"user_id\":\"usr_2\"}",
                "\"data\":{\"user_id\":\"usr_2\",\"extra\":1}",
            ),
        ] {
            assert!(Event::from_canonical(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_and_long_user_agents_are_cut_at_emission() {
        let secret = "hunter2-secret-value";
        let mut c = ctx();
        c.user_agent = Some(format!("{}password={secret}", "x".repeat(490)));
        let time = time::OffsetDateTime::from_unix_timestamp(0).unwrap();
        let e = Event::new(
            "system".into(),
            0,
            time,
            Payload::AuthLoginFailed {
                method: format!("password token={secret}"),
            },
            Resource {
                kind: "user".into(),
                id: "usr_1".into(),
            },
            Outcome {
                result: Result_::Failure,
                reason: Some(format!("bad_password: \"password\": \"{secret}\"")),
            },
            c,
            EventId::new(),
        );
        let text = String::from_utf8(e.canonical_bytes().unwrap()).unwrap();
        assert!(!text.contains(secret), "{text}");
        assert!(e.user_agent.unwrap().chars().count() <= MAX_USER_AGENT_CHARS);
        let long = "é".repeat(600);
        let mut c = ctx();
        c.user_agent = Some(long);
        let e = Event::new(
            "system".into(),
            0,
            time,
            Payload::MemberRemoved {
                user_id: "u".into(),
            },
            Resource {
                kind: "member".into(),
                id: "u".into(),
            },
            Outcome {
                result: Result_::Success,
                reason: None,
            },
            c,
            EventId::new(),
        );
        assert_eq!(e.user_agent.unwrap().chars().count(), MAX_USER_AGENT_CHARS);
    }

    #[test]
    fn the_catalog_is_closed_unique_and_free_of_secret_fields() {
        let mut names: Vec<_> = CATALOG.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len(), "duplicate event names");
        for spec in CATALOG {
            assert!(
                spec.name.contains('.')
                    && spec
                        .name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{}",
                spec.name
            );
            assert!(!spec.description.is_empty());
            for (field, _) in spec.fields {
                assert!(
                    !redact::is_sensitive_key(field),
                    "{}.{field} would hold a secret",
                    spec.name
                );
            }
        }
    }
}
