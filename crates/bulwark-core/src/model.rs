//! The records Bulwark keeps, as the domain sees them.

use bulwark_crypto::{PasswordHashString, TokenHash};
use bulwark_types::{Email, OrgId, OrgName, Role, Slug, UserId};
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
}
