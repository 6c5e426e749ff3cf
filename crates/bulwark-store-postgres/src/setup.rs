//! Schema ownership and the application role: migrations run as the owner, `serve` runs as an
//! application role that row-level security cannot be switched off for.
//!
//! A role escapes row-level security if it is a superuser, has `BYPASSRLS`, owns the table (an
//! owner can `ALTER TABLE … DISABLE ROW LEVEL SECURITY` or drop the policy), or can become such a
//! role through membership. Both [`migrate`] and [`crate::PgStore::connect`] refuse such roles.

use sqlx::{Connection as _, PgConnection};

use crate::MIGRATOR;

/// Tables that hold deployment-wide data and so carry no row-level security, each with the reason
/// (`docs/postgres.md` shows it). Every other table in schema `public` must have RLS enabled and
/// forced, with at least one policy.
pub const GLOBAL_TABLES: &[(&str, &str)] = &[
    (
        "_sqlx_migrations",
        "the migration ledger; the application role only reads it (readiness check)",
    ),
    (
        "instance",
        "the deployment itself: one row with its id, the seed's check value, setup state and the operator org",
    ),
    (
        "users",
        "accounts are deployment-wide (one person may belong to several organisations) and are found by email before any organisation is known",
    ),
    (
        "sessions",
        "found by token hash before any organisation is known; no tenant data (the organisation a request acts on is checked against `memberships`)",
    ),
    (
        "mfa_totp",
        "a user's authenticator, deployment-wide like the user",
    ),
    (
        "mfa_backup_codes",
        "a user's backup codes, deployment-wide like the user",
    ),
    (
        "user_tokens",
        "a user's email-verification and password-reset tokens, found by token hash",
    ),
    (
        "login_throttle",
        "sign-in backoff per account and client address, counted before any organisation is known",
    ),
    (
        "rate_buckets",
        "rate-limit buckets shared by replicas, taken before any organisation transaction",
    ),
    (
        "vault_keys",
        "the vault's key versions, deployment-wide; no key material",
    ),
    (
        "license_activations",
        "the deployment's license history (append-only)",
    ),
    ("license_clock", "the deployment's license clock (one row)"),
    (
        "sso_sessions",
        "which identity-provider sign-in made a session, found by the provider's subject or session id when it signs the person out (back-channel logout), deployment-wide like sessions",
    ),
    (
        "sso_replay",
        "single-use SSO values (sign-in state, SAML request and assertion ids), checked before any organisation is known",
    ),
    (
        "mail_jobs",
        "queued token emails (reset, verification), keyed by address before any account or organisation is known",
    ),
    (
        "mail_limits",
        "per-account cooldown and daily cap of token emails, deployment-wide like the account",
    ),
    (
        "deletion_certificates",
        "signed certificates of purged orgs, kept after the org they name is gone",
    ),
];

/// What the application role may do, table by table. Nothing else is granted: in particular not
/// `TRUNCATE` (which ignores row-level security), `REFERENCES` or `TRIGGER`.
const GRANTS: &[(&str, &str)] = &[
    ("instance", "SELECT, INSERT, UPDATE"),
    ("users", "SELECT, INSERT, UPDATE"),
    ("orgs", "SELECT, INSERT, UPDATE"),
    ("memberships", "SELECT, INSERT, UPDATE, DELETE"),
    ("audit_heads", "SELECT, INSERT, UPDATE"),
    ("audit_events", "SELECT, INSERT"),
    ("audit_checkpoints", "SELECT, INSERT"),
    ("sessions", "SELECT, INSERT, UPDATE, DELETE"),
    ("mfa_totp", "SELECT, INSERT, UPDATE, DELETE"),
    ("mfa_backup_codes", "SELECT, INSERT, UPDATE, DELETE"),
    ("user_tokens", "SELECT, INSERT, UPDATE, DELETE"),
    ("invitations", "SELECT, INSERT, UPDATE, DELETE"),
    ("authz_policy_sets", "SELECT, INSERT, DELETE"),
    ("teams", "SELECT, INSERT, UPDATE, DELETE"),
    ("team_members", "SELECT, INSERT, DELETE"),
    ("api_keys", "SELECT, INSERT, UPDATE, DELETE"),
    ("rate_buckets", "SELECT, INSERT, UPDATE, DELETE"),
    ("vault_keys", "SELECT, INSERT, UPDATE"),
    ("credentials", "SELECT, INSERT, UPDATE, DELETE"),
    ("webhook_endpoints", "SELECT, INSERT, UPDATE, DELETE"),
    ("webhook_messages", "SELECT, INSERT, DELETE"),
    ("webhook_deliveries", "SELECT, INSERT, UPDATE, DELETE"),
    ("webhook_attempts", "SELECT, INSERT, DELETE"),
    ("login_throttle", "SELECT, INSERT, UPDATE, DELETE"),
    ("license_activations", "SELECT, INSERT"),
    ("license_clock", "SELECT, UPDATE"),
    ("mail_jobs", "SELECT, INSERT, UPDATE, DELETE"),
    ("mail_limits", "SELECT, INSERT, UPDATE, DELETE"),
    ("sso_connections", "SELECT, INSERT, UPDATE, DELETE"),
    ("sso_domains", "SELECT, INSERT, UPDATE, DELETE"),
    ("sso_settings", "SELECT, INSERT, UPDATE, DELETE"),
    ("sso_identities", "SELECT, INSERT, UPDATE, DELETE"),
    ("sso_sessions", "SELECT, INSERT, DELETE"),
    ("sso_replay", "SELECT, INSERT, DELETE"),
    ("scim_users", "SELECT, INSERT, UPDATE, DELETE"),
    ("scim_groups", "SELECT, INSERT, UPDATE, DELETE"),
    ("scim_group_members", "SELECT, INSERT, DELETE"),
    ("org_keys", "SELECT, INSERT, DELETE"),
    ("deletion_certificates", "SELECT, INSERT"),
    ("_sqlx_migrations", "SELECT"),
];

/// Why PostgreSQL could not be set up or connected to safely.
#[derive(Debug, thiserror::Error)]
pub enum PgSetupError {
    /// The database could not be reached (the URL, which may hold a password, is not repeated).
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    /// Reading the role catalog or granting privileges failed.
    #[error("cannot inspect or configure PostgreSQL roles")]
    Inspect(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("cannot apply the PostgreSQL migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The application role does not exist.
    #[error(
        "role `{0}` does not exist: create it first, as a superuser, with \
         CREATE ROLE \"{0}\" LOGIN PASSWORD '…' NOSUPERUSER NOBYPASSRLS"
    )]
    RoleMissing(String),
    /// The application role is a superuser.
    #[error(
        "role `{0}` is a superuser: serve must run as an application role without SUPERUSER or BYPASSRLS"
    )]
    Superuser(String),
    /// The application role has `BYPASSRLS`.
    #[error(
        "role `{0}` has BYPASSRLS: serve must run as an application role without SUPERUSER or BYPASSRLS"
    )]
    BypassRls(String),
    /// The application role is the role running the migrations, which owns the tables.
    #[error(
        "role `{0}` runs the migrations and owns the tables: serve must run as a separate \
         application role that owns no tables"
    )]
    IsOwner(String),
    /// The application role owns a table, so it could switch row-level security off.
    #[error(
        "role `{role}` owns table `{table}`: serve must run as an application role that owns no \
         tables; run migrations as a separate owner role"
    )]
    OwnsTables {
        /// The refused role.
        role: String,
        /// A table it owns.
        table: String,
    },
    /// The application role is a member of the role that owns the tables.
    #[error(
        "role `{role}` is a member of `{owner}`, which owns the tables: serve must run as an \
         application role that cannot act as the table owner; revoke that membership"
    )]
    MemberOfOwner {
        /// The refused role.
        role: String,
        /// The owner role it belongs to.
        owner: String,
    },
    /// The application role is a member of a superuser or `BYPASSRLS` role.
    #[error(
        "role `{role}` is a member of `{other}`, which is a superuser or has BYPASSRLS: revoke that \
         membership"
    )]
    MemberOfPrivileged {
        /// The refused role.
        role: String,
        /// The privileged role it belongs to.
        other: String,
    },
    /// A tenant table lacks enabled and forced row-level security or a policy.
    #[error("tables without forced row-level security and a policy: {}", .0.join(", "))]
    UnprotectedTables(Vec<String>),
    /// The schema is not at this binary's version (never migrated, outdated, or newer).
    #[error(
        "the database schema is not at this version of Bulwark: run `bulwark migrate --database-url OWNER_URL --app-role ROLE` first"
    )]
    NotMigrated,
}

/// Runs the migrations as the owner (`owner_url`), then grants `app_role` exactly what `serve`
/// needs, revoking anything else it held on tables in schema `public`. Idempotent.
///
/// # Errors
/// When the database cannot be reached, a migration fails, `app_role` is missing or could bypass
/// row-level security, or a tenant table is not protected by it.
pub async fn migrate(owner_url: &str, app_role: &str) -> Result<(), PgSetupError> {
    let mut conn = PgConnection::connect(owner_url)
        .await
        .map_err(PgSetupError::Connect)?;
    let owner: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .map_err(PgSetupError::Inspect)?;
    // Checked before migrating, so a refused role leaves the database untouched, and again after,
    // against the owners of the tables as they now are.
    check_app_role(&mut conn, app_role, Some(&owner)).await?;
    MIGRATOR
        .run(&mut conn)
        .await
        .map_err(PgSetupError::Migrate)?;
    crate::identity::renormalise_emails(&mut conn)
        .await
        .map_err(|e| PgSetupError::Migrate(sqlx::migrate::MigrateError::Execute(e)))?;
    check_app_role(&mut conn, app_role, Some(&owner)).await?;
    let unprotected = unprotected_tables(&mut conn)
        .await
        .map_err(PgSetupError::Inspect)?;
    if !unprotected.is_empty() {
        return Err(PgSetupError::UnprotectedTables(unprotected));
    }
    grant(&mut conn, app_role)
        .await
        .map_err(PgSetupError::Inspect)?;
    conn.close().await.map_err(PgSetupError::Connect)
}

/// Replaces the application role's table privileges with [`GRANTS`], in one transaction.
async fn grant(conn: &mut PgConnection, app_role: &str) -> Result<(), sqlx::Error> {
    let role = quote_ident(app_role);
    let mut tx = conn.begin().await?;
    let mut statements = vec![
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
    ];
    statements.extend(
        GRANTS
            .iter()
            .map(|(table, privileges)| format!("GRANT {privileges} ON {table} TO {role}")),
    );
    // Functions: none but the owner-run ones, each of which checks its own limits (migrations
    // 0005 to 0007).
    statements.push(format!(
        "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {role}"
    ));
    statements.push(format!(
        "GRANT EXECUTE ON FUNCTION bulwark_audit_prune(), bulwark_audit_unsigned_orgs(), \
         bulwark_invitation_org(bytea), bulwark_api_key_org(uuid), \
         bulwark_vault_stale_orgs(integer), bulwark_vault_counts(), bulwark_vault_in_use(integer), \
         bulwark_webhook_due_orgs(bigint), bulwark_webhook_prunable_orgs(bigint), \
         bulwark_license_usage(), bulwark_user_orgs(uuid), bulwark_deletion_due_orgs(timestamptz), \
         bulwark_retention_invitation_orgs(timestamptz), bulwark_retention_audit_orgs(), \
         bulwark_all_orgs(), bulwark_audit_erase(bigint, bytea), \
         bulwark_sso_connection_org(uuid), bulwark_sso_domain_org(text), \
         bulwark_refill(double precision, timestamptz, double precision, double precision) TO {role}"
    ));
    for sql in statements {
        // Table names and privileges are constants; the role name is quoted as an identifier.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Quotes a PostgreSQL identifier: wrapped in double quotes, inner quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const PUBLIC_RELATIONS: &str = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_roles r ON r.oid = c.relowner \
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')";

/// Refuses `role` if it could bypass row-level security. `owner`, when given, is the role that
/// owns (or is about to own) the tables.
pub(crate) async fn check_app_role(
    conn: &mut PgConnection,
    role: &str,
    owner: Option<&str>,
) -> Result<(), PgSetupError> {
    let attrs: Option<(bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1::text::name",
    )
    .bind(role)
    .fetch_optional(&mut *conn)
    .await
    .map_err(PgSetupError::Inspect)?;
    match attrs {
        None => return Err(PgSetupError::RoleMissing(role.to_owned())),
        Some((true, _)) => return Err(PgSetupError::Superuser(role.to_owned())),
        Some((_, true)) => return Err(PgSetupError::BypassRls(role.to_owned())),
        Some((false, false)) => {}
    }
    if owner == Some(role) {
        return Err(PgSetupError::IsOwner(role.to_owned()));
    }
    let owned: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT c.relname::text {PUBLIC_RELATIONS} AND r.rolname = $1::text::name ORDER BY 1 LIMIT 1"
    )))
    .bind(role)
    .fetch_optional(&mut *conn)
    .await
    .map_err(PgSetupError::Inspect)?;
    if let Some(table) = owned {
        return Err(PgSetupError::OwnsTables {
            role: role.to_owned(),
            table,
        });
    }
    let owner_member: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT owner FROM (SELECT r.rolname::text AS owner {PUBLIC_RELATIONS} \
         UNION SELECT $2::text) o \
         WHERE owner IS NOT NULL AND owner <> $1 AND pg_has_role($1::text::name, owner::name, 'MEMBER') \
         ORDER BY 1 LIMIT 1"
    )))
    .bind(role)
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await
    .map_err(PgSetupError::Inspect)?;
    if let Some(owner) = owner_member {
        return Err(PgSetupError::MemberOfOwner {
            role: role.to_owned(),
            owner,
        });
    }
    let privileged: Option<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles \
         WHERE (rolsuper OR rolbypassrls) AND rolname <> $1::text::name \
         AND pg_has_role($1::text::name, oid, 'MEMBER') ORDER BY 1 LIMIT 1",
    )
    .bind(role)
    .fetch_optional(&mut *conn)
    .await
    .map_err(PgSetupError::Inspect)?;
    match privileged {
        Some(other) => Err(PgSetupError::MemberOfPrivileged {
            role: role.to_owned(),
            other,
        }),
        None => Ok(()),
    }
}

/// Tables in schema `public`, other than [`GLOBAL_TABLES`], that lack enabled row-level
/// security, forced row-level security, or at least one policy. Empty on a correct schema.
///
/// # Errors
/// When the catalog cannot be read.
pub async fn unprotected_tables(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    let globals: Vec<String> = GLOBAL_TABLES
        .iter()
        .map(|(table, _)| (*table).to_owned())
        .collect();
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
         AND NOT (c.relname::text = ANY($1)) \
         AND NOT (c.relrowsecurity AND c.relforcerowsecurity \
                  AND EXISTS (SELECT 1 FROM pg_policies p \
                              WHERE p.schemaname = 'public' AND p.tablename = c.relname)) \
         ORDER BY 1",
    )
    .bind(globals)
    .fetch_all(conn)
    .await
}

/// Everything that could let the connected role escape row-level security or reach more than
/// [`GRANTS`], collected rather than refused (`bulwark doctor`).
pub(crate) async fn posture(
    conn: &mut PgConnection,
) -> Result<bulwark_core::ports::RolePosture, sqlx::Error> {
    let (role, superuser, bypass_rls): (String, bool, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    let owned: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT c.relname::text {PUBLIC_RELATIONS} AND r.rolname = current_user ORDER BY 1"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let privileged_memberships: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT rolname FROM ( \
           SELECT r.rolname::text AS rolname, r.oid {PUBLIC_RELATIONS} \
           UNION SELECT rolname::text, oid FROM pg_roles WHERE rolsuper OR rolbypassrls) o \
         WHERE rolname <> current_user::text AND pg_has_role(current_user, oid, 'MEMBER') \
         ORDER BY 1"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let unprotected_tables = unprotected_tables(&mut *conn).await?;
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, privilege_type::text FROM information_schema.table_privileges \
         WHERE grantee = current_user::text AND table_schema = 'public'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let held: std::collections::BTreeSet<String> =
        held.into_iter().map(|(t, p)| format!("{t}: {p}")).collect();
    let expected: std::collections::BTreeSet<String> = GRANTS
        .iter()
        .flat_map(|(table, privileges)| {
            privileges.split(", ").map(move |p| format!("{table}: {p}"))
        })
        .collect();
    Ok(bulwark_core::ports::RolePosture {
        role,
        superuser,
        bypass_rls,
        owned,
        privileged_memberships,
        unprotected_tables,
        grants_missing: expected.difference(&held).cloned().collect(),
        grants_extra: held.difference(&expected).cloned().collect(),
    })
}
