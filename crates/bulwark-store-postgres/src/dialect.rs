//! What the shared statements (`crates/bulwark-store-sql`) need to know about PostgreSQL: the
//! connection and row types, the row locks, how times compare, and the few statements that go
//! through an owner-run function because row-level security hides other orgs' rows.

use bulwark_core::StoreError;
use bulwark_types::OrgId;

use crate::map_err;

pub(crate) type Db = sqlx::Postgres;
pub(crate) type Conn = sqlx::PgConnection;
pub(crate) type Pool = sqlx::PgPool;
pub(crate) type DbRow = sqlx::postgres::PgRow;

/// The engine's name.
pub(crate) const ENGINE: &str = "postgres";

/// Bound parameters per multi-row `INSERT` of a restore (the protocol allows 65,535).
pub(crate) const MAX_PARAMS: usize = 30_000;

/// After a restore's rows: each generated-id sequence moves past the largest id loaded.
pub(crate) async fn after_load(conn: &mut Conn) -> Result<(), bulwark_core::backup::BackupError> {
    for table in bulwark_core::backup::TABLES {
        if let Some(column) = table.identity {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', '{column}'), \
                 coalesce(max(\"{column}\"), 0) + 1, false) FROM {0}",
                table.name
            );
            // Built from the compiled-in catalog only.
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .map_err(|e| bulwark_core::backup::BackupError::Store(crate::map_err(e)))?;
        }
    }
    Ok(())
}

/// Text keys ordered bytewise, as SQLite orders them, whatever the database's collation.
pub(crate) const TEXT_ORDER: &str = " COLLATE \"C\"";
/// A restore writes the generated ids it read.
pub(crate) const OVERRIDING_IDENTITY: &str = "OVERRIDING SYSTEM VALUE";

/// The row is held until the transaction ends: a second writer waits for it.
pub(crate) const FOR_UPDATE: &str = " FOR UPDATE";
/// The row is held against change (a rotation waits while a value is sealed under a key).
pub(crate) const FOR_SHARE: &str = " FOR SHARE";
/// A claimer skips the rows another replica is claiming.
pub(crate) const FOR_UPDATE_SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

/// A time column or parameter as it compares: `timestamptz` compares as it is.
macro_rules! ts {
    ($e:literal) => {
        $e
    };
}
pub(crate) use ts;

/// Counts of the whole deployment: row-level security hides other orgs, so an owner-run
/// function counts (migration 0015).
pub(crate) const LICENSE_USAGE: &str =
    "SELECT orgs, seats, operator_org FROM bulwark_license_usage()";

/// Whether any org's credential is sealed under a key version: an owner-run function answers
/// across orgs (migration 0013).
pub(crate) const VAULT_KEY_IN_USE: &str = "SELECT bulwark_vault_in_use($1)";

/// The org of a single sign-on connection, through an owner-run function (migration 0020):
/// the org id only, `NULL` for none.
pub(crate) const SSO_CONNECTION_ORG: &str = "SELECT bulwark_sso_connection_org($1)";

/// The org that claimed a domain and whether it is verified, through an owner-run function
/// (migration 0020); no row for none.
pub(crate) const SSO_DOMAIN_ORG: &str = "SELECT org_id, verified FROM bulwark_sso_domain_org($1)";

/// The org of an invitation, by token hash; the owner-run function (migration 0007) answers
/// with the org id only, `NULL` for none.
pub(crate) const INVITATION_ORG: &str = "SELECT bulwark_invitation_org($1)";

/// Orgs with a webhook delivery due at `$1` (ms), through an owner-run function (migration 0014).
pub(crate) const WEBHOOK_DUE_ORGS: &str = "SELECT bulwark_webhook_due_orgs($1)";

/// Orgs with webhook messages older than `$1` (ms), through an owner-run function.
pub(crate) const WEBHOOK_PRUNABLE_ORGS: &str = "SELECT bulwark_webhook_prunable_orgs($1)";

/// Accounts whose stored address has a character outside printable ASCII or a punycode label.
pub(crate) const NON_ASCII_EMAILS: &str = "SELECT id, email, email_key FROM users \
     WHERE email ~ '[^ -~]' OR email_key ~ '[^ -~]' OR email LIKE '%xn--%'";

/// Binds the transaction to `org`: row-level security now shows only that org's rows, until the
/// transaction ends.
pub(crate) async fn bind_org(conn: &mut Conn, org: OrgId) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('app.current_org_id', $1, true)")
        .bind(org.as_uuid().to_string())
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Announces a change to sessions or accounts to every listening replica, delivered when (and
/// only if) the transaction commits.
pub(crate) async fn announce_session_change(conn: &mut Conn) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(crate::SESSION_CHANNEL)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Serialises appenders to one audit log until the transaction ends, across replicas too, and
/// also before the first append, when no head row exists yet to lock.
pub(crate) async fn lock_audit_log(conn: &mut Conn, log: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('bulwark.audit:' || $1, 0))")
        .bind(log)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Holds the org's owner memberships until the transaction ends, so two transactions that each
/// check "another owner remains" cannot both remove one.
pub(crate) async fn lock_owners(conn: &mut Conn, org: OrgId) -> Result<(), StoreError> {
    sqlx::query("SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE")
        .bind(org.as_uuid())
        .fetch_all(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The owner-run listings of migration 0023 (ids only).
pub(crate) const DELETION_DUE_ORGS: &str = "SELECT bulwark_deletion_due_orgs($1)";
pub(crate) const RETENTION_INVITATION_ORGS: &str = "SELECT bulwark_retention_invitation_orgs($1)";
pub(crate) const RETENTION_AUDIT_ORGS: &str = "SELECT bulwark_retention_audit_orgs()";
pub(crate) const ALL_ORGS: &str = "SELECT bulwark_all_orgs()";
