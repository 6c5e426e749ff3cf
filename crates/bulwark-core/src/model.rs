//! The records Bulwark keeps, as the domain sees them.

use bulwark_crypto::{PasswordHashString, TokenHash};
use bulwark_types::{Email, InvitationId, OrgId, OrgName, Role, Slug, TeamId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

/// The one row describing this deployment (system scope, not tenant data).
#[derive(Debug, Clone)]
pub struct Instance {
    /// Stable id of this deployment (licensing binds to it later).
    pub deployment_id: Uuid,
    /// Fingerprint of the workspace seed this database was created with.
    pub seed_check: [u8; 32],
    /// Hash of the current one-time setup token, while setup is pending.
    pub setup_token_hash: Option<TokenHash>,
    /// When setup completed; `None` while pending.
    pub setup_completed_at: Option<OffsetDateTime>,
    /// When the deployment was first initialised.
    pub created_at: OffsetDateTime,
}

/// An organisation (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// Its id.
    pub id: OrgId,
    /// URL-safe unique short name.
    pub slug: Slug,
    /// Display name.
    pub name: OrgName,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// An org's scheduled deletion: asked at `requested_at` by `requested_by` (an actor's id, or
/// `local operator`), purged at or after `due_at` unless cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgDeletion {
    /// When it was asked.
    pub requested_at: OffsetDateTime,
    /// Who asked: `usr_…`, `key_…` or `local operator`.
    pub requested_by: String,
    /// When the grace window ends.
    pub due_at: OffsetDateTime,
    /// When it was purged (the org is then a tombstone).
    pub purged_at: Option<OffsetDateTime>,
}

/// A human operator account (global: one person may belong to several orgs).
#[derive(Debug, Clone)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Sign-in email, unique across the deployment.
    pub email: Email,
    /// argon2id PHC string.
    pub password_hash: PasswordHashString,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// When the user proved they receive mail at `email`; `None` until then.
    pub email_verified_at: Option<OffsetDateTime>,
    /// When the account was disabled; a disabled user cannot sign in and their sessions stop
    /// working on the next request.
    pub disabled_at: Option<OffsetDateTime>,
}

/// A user's membership of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The org.
    pub org_id: OrgId,
    /// The user.
    pub user_id: UserId,
    /// Their role there.
    pub role: Role,
    /// When they joined.
    pub created_at: OffsetDateTime,
}

/// A member as listed inside an org: membership joined with the user's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their email.
    pub email: Email,
    /// Their role in this org.
    pub role: Role,
    /// When they joined.
    pub joined_at: OffsetDateTime,
}

/// A team within an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// Its id.
    pub id: bulwark_types::TeamId,
    /// Its name, unique in the org (1–100 characters).
    pub name: String,
    /// Its members (members of the org), oldest first.
    pub members: Vec<UserId>,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// An org's API key as stored: never the key itself, only its verifier.
#[derive(Clone)]
pub struct ApiKeyRecord {
    /// Its public id.
    pub id: bulwark_types::ApiKeyId,
    /// The org it belongs to.
    pub org: bulwark_types::OrgId,
    /// A name for people (1–100 characters).
    pub name: String,
    /// What it may do (`audit:read`, …).
    pub scopes: Vec<String>,
    /// HMAC-SHA256 of its id and secret under the deployment's pepper.
    pub verifier: [u8; 32],
    /// Who issued it.
    pub created_by: Option<UserId>,
    /// When.
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever (a rotation's overlap sets this on the old key).
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// The key it replaced.
    pub rotated_from: Option<bulwark_types::ApiKeyId>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<OffsetDateTime>,
    /// For a key the host application issued to its own customer: the key space.
    pub space: Option<String>,
    /// ... and the customer it belongs to, as the application names them.
    pub owner: Option<String>,
    /// The team it was issued to, if any (an org's own keys only). Deleting the team revokes
    /// its keys.
    pub team: Option<TeamId>,
}

/// A credential in an org's vault as stored: metadata in the clear, the value sealed
/// (`bulwark_crypto::vault`). There is no way to read the value back through the API.
#[derive(Clone, Debug)]
pub struct Credential {
    /// Its public id.
    pub id: bulwark_types::CredentialId,
    /// The org it belongs to.
    pub org: bulwark_types::OrgId,
    /// A name for people, unique in the org (1–100 characters).
    pub name: String,
    /// What it is (`bearer_token`, `basic_password`, `webhook_secret`, `smtp_password`,
    /// `generic`).
    pub kind: String,
    /// The URL prefixes it may be sent to.
    pub destinations: Vec<String>,
    /// The sealed value, its wrapped data key and key version.
    pub sealed: bulwark_crypto::vault::SealedValue,
    /// Who created it.
    pub created_by: Option<UserId>,
    /// When.
    pub created_at: OffsetDateTime,
    /// When the value was last replaced (or created).
    pub updated_at: OffsetDateTime,
    /// When Bulwark last used it (to the minute).
    pub last_used_at: Option<OffsetDateTime>,
}

/// A key version of the vault: the KEK that wraps data keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultKey {
    /// 1, 2, 3, … in creation order.
    pub version: u32,
    /// The provider holding the KEK (`seed`, `pkcs11`).
    pub provider: String,
    /// Where it is in its life.
    pub state: VaultKeyState,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was retired.
    pub retired_at: Option<OffsetDateTime>,
    /// Whether values sealed under it bind the credential's kind and destinations (value
    /// envelope v2). False for versions created before that envelope: their values may be in
    /// envelope v1, which is only opened to move it to a newer version (ADR 0007).
    pub binds_attributes: bool,
}

/// A key version's life: one is `Active` (new values are sealed under it); the versions it
/// replaced are `Previous` (still opened, being rewrapped) until no record uses them, then
/// `Retired` (refused; destroyed where the provider can).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultKeyState {
    /// Seals new values.
    Active,
    /// Still opens values; the rewrap job is moving them to the active version.
    Previous,
    /// Opens nothing.
    Retired,
}

impl VaultKeyState {
    /// The stored code.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    /// The state stored as `code`.
    #[must_use]
    pub fn parse(code: &str) -> Option<Self> {
        [Self::Active, Self::Previous, Self::Retired]
            .into_iter()
            .find(|s| s.as_str() == code)
    }
}

/// One audit event as stored: its canonical bytes and leaf hash, with the columns the store
/// indexes. Append-only: stores have no update or delete for these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// `system` or the org id (`org_…`).
    pub log: String,
    /// Position in the log (the Merkle leaf index).
    pub seq: u64,
    /// The org of an org log; `None` for the system log.
    pub org_id: Option<OrgId>,
    /// The event id.
    pub event_id: bulwark_types::EventId,
    /// Event time.
    pub time: OffsetDateTime,
    /// Dotted event type.
    pub action: String,
    /// Canonical bytes; `None` once pruned by retention (the leaf hash stays).
    pub body: Option<Vec<u8>>,
    /// `SHA-256(0x00 ‖ body)`.
    pub leaf_hash: [u8; 32],
}

/// What one retention pruning cleared: how many bodies, and the seqs and times they span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPruning {
    /// Bodies cleared (at least one).
    pub events: u64,
    /// Lowest and highest seq cleared.
    pub seqs: (u64, u64),
    /// Oldest and newest event time cleared.
    pub times: (OffsetDateTime, OffsetDateTime),
}

/// A signed-in session. Deployment-wide like the user it belongs to: the org a request acts on
/// comes from its URL and is checked against the user's membership there on every request.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its public id.
    pub id: bulwark_types::SessionId,
    /// `SHA-256` of the session token; the token itself is never stored.
    pub token_hash: TokenHash,
    /// Whose session.
    pub user_id: UserId,
    /// The user's email (joined in on reads; ignored on insert).
    pub email: Email,
    /// Sign-in time.
    pub created_at: OffsetDateTime,
    /// Last request seen (updated at most once a minute).
    pub last_seen_at: OffsetDateTime,
    /// Never valid after this, whatever the activity.
    pub expires_at: OffsetDateTime,
    /// When it was revoked (logout, admin, password change); `None` while live.
    pub revoked_at: Option<OffsetDateTime>,
    /// Client address at sign-in.
    pub source_ip: Option<String>,
    /// Client user agent at sign-in (at most 500 characters).
    pub user_agent: Option<String>,
    /// Whether the session is usable, or still owes a second factor.
    pub stage: SessionStage,
    /// When this session passed a second factor; `None` for a password-only session.
    pub mfa_at: Option<OffsetDateTime>,
    /// Whether the user's account is disabled (joined in on reads; ignored on insert).
    pub user_disabled: bool,
}

/// How far a session got through sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStage {
    /// Signed in.
    Active,
    /// The password matched; the session can only complete the second factor.
    MfaPending,
}

impl SessionStage {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::MfaPending => "mfa_pending",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "mfa_pending" => Some(Self::MfaPending),
            _ => None,
        }
    }
}

/// A user's TOTP authenticator.
#[derive(Clone)]
pub struct TotpRecord {
    /// Whose.
    pub user_id: UserId,
    /// The secret, sealed with AES-256-GCM under a seed-derived key and bound to `user_id`.
    pub secret_sealed: Vec<u8>,
    /// When enrolment started.
    pub created_at: OffsetDateTime,
    /// When a first correct code confirmed it; until then it does not count as MFA.
    pub enabled_at: Option<OffsetDateTime>,
    /// The last time step accepted; a code for it or an earlier step is refused.
    pub last_step: Option<u64>,
}

impl TotpRecord {
    /// Whether a first correct code confirmed it (a pending enrolment is not a second factor).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.enabled_at.is_some()
    }
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("user_id", &self.user_id)
            .field("enabled_at", &self.enabled_at)
            .finish_non_exhaustive()
    }
}

/// What a single-use emailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves the user receives mail at their address.
    VerifyEmail,
    /// Sets a new password.
    ResetPassword,
}

impl TokenPurpose {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A single-use token sent by email, as stored (its hash only).
#[derive(Debug, Clone)]
pub struct UserToken {
    /// `SHA-256` of the token.
    pub hash: TokenHash,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// Whose.
    pub user_id: UserId,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// A queued request for an emailed token (the mail queue, `mail_jobs`): what was asked for and
/// for which address, never a token. The mail worker looks the address up, issues the token and
/// sends the mail; for an address with no account it only deletes the job.
#[derive(Debug, Clone)]
pub struct MailJob {
    /// Its id (a UUIDv7).
    pub id: Uuid,
    /// What the mail is for.
    pub purpose: TokenPurpose,
    /// The address as given; jobs for the same lower-cased address and purpose coalesce.
    pub email: Email,
    /// The asking request's client address, user agent and request id, for the audit event.
    pub source_ip: Option<String>,
    /// See `source_ip`.
    pub user_agent: Option<String>,
    /// See `source_ip`.
    pub request_id: Option<String>,
    /// When it was asked for (Unix ms).
    pub created_ms: i64,
}

/// The emailed tokens one account was sent for one purpose (`mail_limits`): the state of its
/// cooldown and daily cap. One row per account and purpose, so it never grows with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailLimit {
    /// When the latest mail was sent (Unix ms).
    pub last_sent_ms: i64,
    /// When the current 24-hour window began (Unix ms).
    pub window_start_ms: i64,
    /// Mails sent in that window.
    pub sent_in_window: u32,
    /// Whether a refused request was already recorded since the latest mail (it is recorded
    /// once, not per request).
    pub noted: bool,
}

/// Which members of an org must use a second factor there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaRequirement {
    /// Nobody (MFA stays available).
    None,
    /// Owners (the default).
    Owners,
    /// Owners and admins.
    OwnersAdmins,
    /// Every member, whatever the role.
    Everyone,
}

impl MfaRequirement {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Owners => "owners",
            Self::OwnersAdmins => "owners_admins",
            Self::Everyone => "everyone",
        }
    }

    /// Parses a stored or configured name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "owners" => Some(Self::Owners),
            "owners_admins" => Some(Self::OwnersAdmins),
            "everyone" => Some(Self::Everyone),
            _ => None,
        }
    }

    /// Whether a member with `role` must have passed a second factor.
    #[must_use]
    pub fn applies_to(self, role: Role) -> bool {
        match self {
            Self::None => false,
            Self::Owners => role == Role::Owner,
            Self::OwnersAdmins => matches!(role, Role::Owner | Role::Admin),
            Self::Everyone => true,
        }
    }
}

/// An org's sign-in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgPolicy {
    /// Idle timeout for requests in this org, if stricter than the deployment's.
    pub session_idle_secs: Option<u32>,
    /// Absolute timeout for requests in this org, if stricter than the deployment's.
    pub session_absolute_secs: Option<u32>,
    /// Who must use MFA.
    pub mfa_required: MfaRequirement,
    /// Whether new passwords set by members must mix character classes (off by default, as
    /// NIST SP 800-63B advises).
    pub password_composition: bool,
}

impl Default for OrgPolicy {
    fn default() -> Self {
        Self {
            session_idle_secs: None,
            session_absolute_secs: None,
            mfa_required: MfaRequirement::Owners,
            password_composition: false,
        }
    }
}

/// Failed sign-ins recorded under one throttling key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleRow {
    /// `ip:…` or `account:…`.
    pub key: String,
    /// Failures since the counter was last cleared or forgotten.
    pub failures: u32,
    /// The latest failure.
    pub last_failure_at: OffsetDateTime,
}

/// An invitation to join an org, as stored (its token only as a hash).
#[derive(Debug, Clone)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The org.
    pub org_id: OrgId,
    /// `SHA-256` of the token sent by email.
    pub token_hash: TokenHash,
    /// Who is invited.
    pub email: Email,
    /// The role they get.
    pub role: Role,
    /// Who invited them.
    pub invited_by: UserId,
    /// When.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was accepted.
    pub accepted_at: Option<OffsetDateTime>,
    /// When it was withdrawn.
    pub revoked_at: Option<OffsetDateTime>,
}

/// How an endpoint's deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    Standard,
    /// Stripe style: `Bulwark-Signature: t=<ts>,v1=<hex>`.
    Stripe,
}

impl SignatureScheme {
    /// The stored and API name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Stripe => "stripe",
        }
    }

    /// The scheme named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(Self::Standard),
            "stripe" => Some(Self::Stripe),
            _ => None,
        }
    }
}

/// A webhook endpoint of an org. Its signing secrets are credentials in the org's vault
/// (kind `webhook_secret`); only their ids are here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: bulwark_types::EndpointId,
    /// The org.
    pub org: OrgId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Free text for operators.
    pub description: String,
    /// Event type patterns: exact types, `prefix.*`, or `*`.
    pub event_types: Vec<String>,
    /// The signature headers sent.
    pub scheme: SignatureScheme,
    /// Whether deliveries are made (queued ones wait while disabled).
    pub enabled: bool,
    /// Why Bulwark disabled it (`None` when enabled, or disabled by an operator).
    pub disabled_reason: Option<String>,
    /// Deliveries per second at most.
    pub rate_limit: u32,
    /// Deliveries in flight at once at most, across replicas.
    pub max_in_flight: u32,
    /// The credential holding the current signing secret.
    pub secret: bulwark_types::CredentialId,
    /// The secret it replaced, still signing until `previous_until`.
    pub previous_secret: Option<bulwark_types::CredentialId>,
    /// End of the rotation overlap.
    pub previous_until: Option<OffsetDateTime>,
    /// Since when every attempt has failed (`None` after a success).
    pub failing_since: Option<OffsetDateTime>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When its settings last changed.
    pub updated_at: OffsetDateTime,
}

/// An event to deliver to the endpoints subscribed to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    /// Its id (`webhook-id`).
    pub id: bulwark_types::MessageId,
    /// Its type: an audit event type (`member.added`) or an application one (`app.…`).
    pub event_type: String,
    /// The `data` of the delivered body: JSON text.
    pub payload: String,
    /// The caller's idempotency key, for messages created through the API.
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request that created it under that key.
    pub request_hash: Option<Vec<u8>>,
    /// When it was queued (the delivered `timestamp`).
    pub created_at: OffsetDateTime,
}

/// A delivery claimed by a worker: the message, where to, and which attempt this is.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub id: bulwark_types::DeliveryId,
    /// The endpoint.
    pub endpoint: bulwark_types::EndpointId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// What to send.
    pub message: WebhookMessage,
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    /// The delivery.
    pub delivery: bulwark_types::DeliveryId,
    /// The message.
    pub message: bulwark_types::MessageId,
    /// The endpoint.
    pub endpoint: bulwark_types::EndpointId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it started.
    pub at: OffsetDateTime,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Milliseconds to the answer (or the failure).
    pub latency_ms: u32,
    /// Why it failed without an answer (timeout, refused destination, connection error).
    pub error: Option<String>,
    /// The start of the receiver's answer (at most 1 KiB kept).
    pub response: Option<String>,
    /// Whether this attempt delivered the message (a 2xx answer).
    pub delivered: bool,
}

/// Where a delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Its id.
    pub id: bulwark_types::DeliveryId,
    /// The message.
    pub message: bulwark_types::MessageId,
    /// The endpoint.
    pub endpoint: bulwark_types::EndpointId,
    /// `pending`, `delivered` or `failed` (every attempt of the schedule failed).
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending ones), in Unix milliseconds.
    pub next_attempt_ms: Option<i64>,
    /// When it was queued.
    pub created_at: OffsetDateTime,
}

/// How an attempt ended, for the queue: what to store and what comes next.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The attempt as logged.
    pub attempt: WebhookAttempt,
    /// When to try again (Unix ms); `None` when the delivery is finished (delivered, or the
    /// schedule is spent).
    pub retry_at_ms: Option<i64>,
    /// Whether the attempt tells something about the receiver (false when Bulwark itself could
    /// not send, e.g. its key provider was down: the endpoint's failure count stays, and the
    /// attempt is given back to the delivery's retry schedule).
    pub counts: bool,
}

/// One activation: a license file put in force on this deployment. The history is append-only
/// and is also the anti-reuse ledger; the newest row is the license in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseActivation {
    /// Position in the history, from 1.
    pub seq: u64,
    /// The license's id.
    pub license_id: String,
    /// Its serial.
    pub serial: u32,
    /// Its `issued_at`, Unix milliseconds.
    pub issued_at_ms: i64,
    /// SHA-256 of the claims' canonical bytes, lowercase hex (the same claims written
    /// differently are the same license).
    pub license_sha256: String,
    /// The file as activated (signed by the vendor; no secret).
    pub license_file: String,
    /// When it was activated, Unix milliseconds.
    pub activated_at_ms: i64,
    /// The activation receipt: canonical JSON binding the license to this deployment.
    pub receipt: String,
    /// Base64 Ed25519 signature of `receipt` by the deployment's seed-derived key.
    pub receipt_signature: String,
}

/// The license clock: the latest time this deployment has seen, and what was last announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseClock {
    /// The latest time seen, Unix milliseconds (never moves back).
    pub last_seen_ms: i64,
    /// When the last `license.expiring` warning was written.
    pub warned_at_ms: Option<i64>,
    /// Whether `license.read_only` was written for the license in force.
    pub read_only_noted: bool,
    /// Activations at or below this position no longer floor the clock (an audited reset).
    pub reset_after_seq: u64,
    /// When the last reset happened, Unix milliseconds.
    pub reset_at_ms: i64,
    /// The deployment key's signature of `reset_after_seq` and `reset_at_ms` (base64); without
    /// a valid one the reset counts for nothing.
    pub reset_signature: Option<String>,
}

/// What the license limits count, across the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LicenseUsage {
    /// Organisations.
    pub orgs: u64,
    /// Distinct users holding a membership.
    pub seats: u64,
    /// The operator org: the one made by setup (recorded then), whose owners manage the license.
    pub operator_org: Option<OrgId>,
}

/// An org's single sign-on connection as stored. `config` is the protocol's non-secret settings
/// as JSON (`crate::sso::OidcConfig`); the client secret or private key is the vault credential
/// `secret_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoConnection {
    /// Its id.
    pub id: bulwark_types::ConnectionId,
    /// The org.
    pub org: OrgId,
    /// `oidc` or `saml`.
    pub protocol: String,
    /// Its name, unique in the org.
    pub name: String,
    /// The settings, JSON.
    pub config: String,
    /// The vault credential holding its secret, if any.
    pub secret_id: Option<bulwark_types::CredentialId>,
    /// Whether sign-ins through it are accepted.
    pub enabled: bool,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Last change, Unix milliseconds.
    pub updated_ms: i64,
}

/// An email domain an org claims for home-realm discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoDomain {
    /// The domain, lowercase ASCII (IDNA).
    pub domain: String,
    /// The org.
    pub org: OrgId,
    /// When claimed, Unix milliseconds.
    pub created_ms: i64,
    /// When verified, Unix milliseconds; unverified domains route nothing.
    pub verified_ms: Option<i64>,
    /// Who verified it (`operator:<usr_…>`).
    pub verified_by: Option<String>,
}

/// An org's single sign-on rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SsoSettings {
    /// Members must sign in through the org's identity provider (owners keep a break-glass
    /// password sign-in with a second factor).
    pub sso_required: bool,
    /// The only emails that may hold `owner` or `admin` through a single sign-on (stored in
    /// their comparison form).
    pub admin_emails: Vec<String>,
    /// Whether the identity provider's MFA (`amr`/`acr`, `AuthnContextClassRef`) satisfies the
    /// org's MFA policy; when false, Bulwark's own second factor is still asked.
    pub idp_mfa: bool,
}

/// An account as the org's identity provider provisioned it over SCIM: the attributes Bulwark
/// reads (userName, externalId, active, displayName, the email values) and the rest of the
/// SCIM resource as JSON (without `id`, `meta` and `groups`, which are derived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUser {
    /// The account (the SCIM `id` is its `usr_…` id).
    pub user_id: UserId,
    /// `userName`, unique in the org case-insensitively.
    pub user_name: String,
    /// `externalId`, the provider's own id.
    pub external_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// The lower-cased email values, one per line (answers `emails co` in the database).
    pub emails_key: String,
    /// `active`: whether the account holds its membership.
    pub active: bool,
    /// The SCIM resource as JSON.
    pub resource: String,
    /// Moves on every change (`meta.version`, the ETag).
    pub version: i64,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms.
    pub updated_ms: i64,
}

/// A team the org's identity provider manages over SCIM (a SCIM Group; its `displayName` is the
/// team's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroup {
    /// The team (the SCIM `id` is its `team_…` id).
    pub team_id: TeamId,
    /// The team's name.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// Moves on every change.
    pub version: i64,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms.
    pub updated_ms: i64,
    /// The provisioned members (active or not), when asked for.
    pub members: Vec<UserId>,
}

/// A column a SCIM user list can be narrowed by in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimColumn {
    /// `userName` (case-insensitive).
    UserName,
    /// `externalId` (case-exact).
    ExternalId,
    /// `displayName` (case-insensitive).
    DisplayName,
    /// Any email value (case-insensitive).
    Email,
}

/// How a [`ScimColumn`] is compared with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimMatch {
    /// Equal.
    Eq,
    /// Contains.
    Contains,
    /// Starts with.
    StartsWith,
    /// Ends with.
    EndsWith,
}

/// Which SCIM users a list reads: all, or those whose column compares so with the value (the
/// value already lower-cased for a case-insensitive column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimUserQuery {
    /// Every provisioned user.
    All,
    /// One comparison the database answers.
    Where(ScimColumn, ScimMatch, String),
}
