//! What the shared statements (`crates/bulwark-store-sql`) need to know about SQLite: the
//! connection and row types, no row locks (read-write transactions begin `IMMEDIATE`, so
//! writers are serialised already), times compared through `julianday` (they are stored as
//! RFC 3339 text, whose offsets and fractions do not sort as text), and the cross-org statements
//! that need no owner-run function because SQLite has no row-level security.

use bulwark_core::StoreError;
use bulwark_types::OrgId;

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type Conn = sqlx::SqliteConnection;
pub(crate) type Pool = sqlx::SqlitePool;
pub(crate) type DbRow = sqlx::sqlite::SqliteRow;

/// No row locks: SQLite serialises writers.
pub(crate) const FOR_UPDATE: &str = "";
pub(crate) const FOR_SHARE: &str = "";
pub(crate) const FOR_UPDATE_SKIP_LOCKED: &str = "";

/// The engine's name.
pub(crate) const ENGINE: &str = "sqlite";

/// Bound parameters per multi-row `INSERT` of a restore: binding looks each parameter up by
/// position in a list, so a statement's cost grows with the square of its parameters (with
/// 30,000, 47 % of a restore's time went there).
pub(crate) const MAX_PARAMS: usize = 999;

/// Nothing to do after a restore's rows: an `INTEGER PRIMARY KEY` continues past the largest.
pub(crate) async fn after_load(_conn: &mut Conn) -> Result<(), bulwark_core::backup::BackupError> {
    Ok(())
}

/// Text keys are ordered bytewise already (SQLite's `BINARY` collation).
pub(crate) const TEXT_ORDER: &str = "";
/// SQLite takes an explicit value for an `INTEGER PRIMARY KEY` as it is.
pub(crate) const OVERRIDING_IDENTITY: &str = "";

/// A time column or parameter as it compares: RFC 3339 text, through `julianday`.
macro_rules! ts {
    ($e:literal) => {
        concat!("julianday(", $e, ")")
    };
}
pub(crate) use ts;

/// Counts of the whole deployment, read directly.
pub(crate) const LICENSE_USAGE: &str = "SELECT (SELECT count(*) FROM orgs WHERE purged_at IS NULL), \
     (SELECT count(DISTINCT user_id) FROM memberships), \
     (SELECT operator_org FROM instance WHERE id = 1)";

/// Whether any org's credential is sealed under a key version.
pub(crate) const VAULT_KEY_IN_USE: &str =
    "SELECT EXISTS (SELECT 1 FROM credentials WHERE key_version = $1)";

/// The org of a single sign-on connection; no row for none.
pub(crate) const SSO_CONNECTION_ORG: &str = "SELECT org_id FROM sso_connections WHERE id = $1";

/// The org that claimed a domain and whether it is verified; no row for none.
pub(crate) const SSO_DOMAIN_ORG: &str =
    "SELECT org_id, verified_ms IS NOT NULL AS verified FROM sso_domains WHERE domain = $1";

/// The org of an invitation, by token hash; no row for none.
pub(crate) const INVITATION_ORG: &str = "SELECT org_id FROM invitations WHERE token_hash = $1";

/// Orgs with a webhook delivery due at `$1` (ms).
pub(crate) const WEBHOOK_DUE_ORGS: &str = "SELECT DISTINCT e.org_id FROM webhook_endpoints e \
     WHERE e.enabled AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id \
     AND d.state = 'pending' AND d.next_attempt_ms <= $1 AND d.lease_until_ms <= $1)";

/// Orgs with webhook messages older than `$1` (ms).
pub(crate) const WEBHOOK_PRUNABLE_ORGS: &str =
    "SELECT DISTINCT org_id FROM webhook_messages WHERE created_ms < $1";

/// Accounts whose stored address has a character outside printable ASCII or a punycode label.
pub(crate) const NON_ASCII_EMAILS: &str = "SELECT id, email, email_key FROM users \
     WHERE email GLOB '*[^ -~]*' OR email_key GLOB '*[^ -~]*' OR email LIKE '%xn--%'";

/// Nothing to bind: every statement filters on its org, and there is no row-level security.
pub(crate) async fn bind_org(_conn: &mut Conn, _org: OrgId) -> Result<(), StoreError> {
    Ok(())
}

/// Nothing to announce: one process owns the database, and its epoch moves on commit.
pub(crate) async fn announce_session_change(_conn: &mut Conn) -> Result<(), StoreError> {
    Ok(())
}

/// Nothing to take: `BEGIN IMMEDIATE` already holds the write lock that serialises appenders.
pub(crate) async fn lock_audit_log(_conn: &mut Conn, _log: &str) -> Result<(), StoreError> {
    Ok(())
}

/// Nothing to take: `BEGIN IMMEDIATE` already serialises the transactions that change owners.
pub(crate) async fn lock_owners(_conn: &mut Conn, _org: OrgId) -> Result<(), StoreError> {
    Ok(())
}

/// The orgs whose deletion is due at `$1` and not purged, or purged with no certificate yet.
pub(crate) const DELETION_DUE_ORGS: &str = "SELECT id FROM orgs WHERE deletion_due_at <= $1 \
     AND (purged_at IS NULL \
          OR NOT EXISTS (SELECT 1 FROM deletion_certificates c WHERE c.org_id = orgs.id)) \
     ORDER BY id";
/// The orgs with invitations closed before `$1`.
pub(crate) const RETENTION_INVITATION_ORGS: &str = "SELECT DISTINCT org_id FROM invitations \
     WHERE coalesce(accepted_at, revoked_at, expires_at) < $1 ORDER BY org_id";
/// The orgs, not purged, whose audit bodies have a retention.
pub(crate) const RETENTION_AUDIT_ORGS: &str =
    "SELECT id FROM orgs WHERE audit_retention_days IS NOT NULL AND purged_at IS NULL ORDER BY id";
/// Every org.
pub(crate) const ALL_ORGS: &str = "SELECT id FROM orgs ORDER BY id";
