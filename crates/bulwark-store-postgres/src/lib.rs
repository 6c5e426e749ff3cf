//! The storage ports on PostgreSQL, with tenant isolation enforced twice.
//!
//! Every tenant query filters on its org explicitly, and the database enforces the same rule with
//! row-level security: tenant tables have RLS enabled and forced, and their policies compare the
//! row's org with the transaction-local setting `app.current_org_id`, which [`Store::org`] sets
//! with `set_config(…, true)` at the start of each org transaction. Because the setting is
//! transaction-local, a pooled connection never carries one tenant's id into the next transaction.
//!
//! Two roles are involved: the owner runs [`migrate`] and owns the tables; the application role
//! runs `serve` through [`PgStore::connect`], which refuses a role that could bypass RLS
//! (superuser, `BYPASSRLS`, table owner, or a member of one).

#[path = "../../bulwark-store-sql/src/backup.rs"]
mod backup;
pub mod backup_open;
mod batched;
mod dialect;
// The statements, written once and compiled here against this engine's `dialect` (ADR 0001).
#[path = "../../bulwark-store-sql/src/apikeys.rs"]
mod apikeys;
#[path = "../../bulwark-store-sql/src/audit.rs"]
mod audit;
#[path = "../../bulwark-store-sql/src/authz.rs"]
mod authz;
#[path = "../../bulwark-store-sql/src/deletion.rs"]
mod deletion;
#[path = "../../bulwark-store-sql/src/identity.rs"]
mod identity;
#[path = "../../bulwark-store-sql/src/licensing.rs"]
mod licensing;
#[path = "../../bulwark-store-sql/src/mail.rs"]
mod mail;
#[path = "../../bulwark-store-sql/src/org.rs"]
mod org;
#[path = "../../bulwark-store-sql/src/scim.rs"]
mod scim;
#[path = "../../bulwark-store-sql/src/session.rs"]
mod session;
mod setup;
#[path = "../../bulwark-store-sql/src/sso.rs"]
mod sso;
#[path = "../../bulwark-store-sql/src/system.rs"]
mod system;
#[path = "../../bulwark-store-sql/src/vault.rs"]
mod vault;
#[path = "../../bulwark-store-sql/src/webhooks.rs"]
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bulwark_core::StoreError;
use bulwark_core::ports::{OrgRead, OrgTx, Store, StoreHealth, SystemTx};
use bulwark_types::{OrgId, Role};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, Postgres, Transaction};

pub use setup::{GLOBAL_TABLES, PgSetupError, migrate, unprotected_tables};

/// How long a request waits for a pooled connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The embedded migrations, applied by [`migrate`] as the owner role.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The channel on which a commit that revoked a session or changed a user or their second
/// factor is announced to every replica (see [`Store::session_epoch`]).
pub(crate) const SESSION_CHANNEL: &str = "bulwark_sessions";

/// The PostgreSQL store, connected as the application role.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    watching: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PgStore {
    /// Connects as the application role and refuses a role that could bypass row-level
    /// security: a superuser, a role with `BYPASSRLS`, the owner of any table in schema
    /// `public`, or a member of a table owner or of a superuser or `BYPASSRLS` role.
    ///
    /// # Errors
    /// When the database cannot be reached or the role is refused.
    pub async fn connect(app_url: &str, max_connections: u32) -> Result<Self, PgSetupError> {
        let options = PgConnectOptions::from_str(app_url).map_err(PgSetupError::Connect)?;
        // One direct connection for the checks: it fails at once when the server is unreachable,
        // where a pool would keep retrying until its acquire timeout.
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(PgSetupError::Connect)?;
        let role: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut conn)
            .await
            .map_err(PgSetupError::Inspect)?;
        setup::check_app_role(&mut conn, &role, None).await?;
        if !migrations_current(&mut conn).await.unwrap_or(false) {
            return Err(PgSetupError::NotMigrated);
        }
        conn.close().await.map_err(PgSetupError::Connect)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            epoch: std::sync::Arc::default(),
            watching: std::sync::Arc::default(),
        })
    }

    /// Moves the epoch on every announcement on [`SESSION_CHANNEL`], and whenever the listening
    /// connection was lost (announcements made meanwhile are gone). Returns only on an error
    /// the listener cannot recover from by itself.
    async fn listen(&self) -> Result<(), sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(SESSION_CHANNEL).await?;
        // Whatever was announced before this point was not heard.
        self.bump_epoch();
        loop {
            // `None`: the connection dropped; the next call reconnects and listens again.
            let _ = listener.try_recv().await?;
            self.bump_epoch();
        }
    }

    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let started = std::time::Instant::now();
        let tx = self.pool.begin().await.map_err(map_err);
        bulwark_core::metrics::metrics()
            .db_acquire
            .observe(&[], started.elapsed().as_secs_f64());
        tx
    }
}

/// Whether every embedded migration is applied successfully with its checksum, and no other.
async fn migrations_current<'e, E: sqlx::PgExecutor<'e>>(exec: E) -> Result<bool, sqlx::Error> {
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(exec)
            .await?;
    let known: Vec<_> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .collect();
    Ok(applied.len() == known.len()
        && applied.iter().zip(known).all(|((version, sum, ok), m)| {
            *ok && *version == m.version && sum.as_slice() == &*m.checksum
        }))
}

#[async_trait]
impl Store for PgStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn role_posture(&self) -> Result<Option<bulwark_core::ports::RolePosture>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        setup::posture(&mut conn).await.map(Some).map_err(map_err)
    }

    fn pool_stats(&self) -> bulwark_core::ports::PoolStats {
        bulwark_core::ports::PoolStats {
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn health(&self) -> StoreHealth {
        let reachable = sqlx::query("SELECT 1").execute(&self.pool).await.is_ok();
        let migrations_current = reachable && migrations_current(&self.pool).await.unwrap_or(false);
        StoreHealth {
            reachable,
            migrations_current,
        }
    }

    async fn system(&self) -> Result<Box<dyn SystemTx>, StoreError> {
        Ok(Box::new(system::StoreSystemTx {
            tx: self.begin().await?,
            epoch: self.epoch.clone(),
            sessions_changed: false,
        }))
    }

    async fn org(&self, org: OrgId) -> Result<Box<dyn OrgTx>, StoreError> {
        let mut tx = self.begin().await?;
        dialect::bind_org(&mut tx, org).await?;
        Ok(Box::new(org::StoreOrgTx { tx, org }))
    }

    async fn org_read(&self, org: OrgId) -> Result<Box<dyn OrgRead>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN READ ONLY")
            .await
            .map_err(map_err)?;
        dialect::bind_org(&mut tx, org).await?;
        Ok(Box::new(org::StoreOrgTx { tx, org }))
    }

    async fn session_by_token(
        &self,
        hash: &bulwark_crypto::TokenHash,
    ) -> Result<Option<bulwark_core::model::Session>, StoreError> {
        session::by_token(&self.pool, hash).await
    }

    fn session_epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn watch_session_changes(&self) {
        if self
            .watching
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = store.listen().await {
                    tracing::warn!(
                        error = %e,
                        "not hearing session changes from other replicas; retrying in 1 s \
                         (cached sessions still expire after sessions.cache_secs)"
                    );
                }
                store.bump_epoch();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn audit_unsigned_orgs(&self) -> Result<Vec<OrgId>, StoreError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT bulwark_audit_unsigned_orgs()")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(ids.into_iter().map(OrgId::from_uuid).collect())
    }

    async fn vault_stale_orgs(&self, active: u32) -> Result<Vec<OrgId>, StoreError> {
        let active =
            i32::try_from(active).map_err(|_| StoreError::Corrupt("vault key version".into()))?;
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT bulwark_vault_stale_orgs($1)")
            .bind(active)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(ids.into_iter().map(OrgId::from_uuid).collect())
    }

    async fn webhook_due_orgs(&self, now_ms: i64) -> Result<Vec<OrgId>, StoreError> {
        webhooks::due_orgs(&self.pool, now_ms).await
    }

    async fn webhook_prunable_orgs(&self, before_ms: i64) -> Result<Vec<OrgId>, StoreError> {
        webhooks::prunable_orgs(&self.pool, before_ms).await
    }

    async fn retention_invitation_orgs(
        &self,
        before: time::OffsetDateTime,
    ) -> Result<Vec<OrgId>, StoreError> {
        deletion::org_ids(&self.pool, dialect::RETENTION_INVITATION_ORGS, Some(before)).await
    }

    async fn all_orgs(&self) -> Result<Vec<OrgId>, StoreError> {
        deletion::org_ids(&self.pool, dialect::ALL_ORGS, None).await
    }

    async fn retention_audit_orgs(&self) -> Result<Vec<OrgId>, StoreError> {
        deletion::org_ids(&self.pool, dialect::RETENTION_AUDIT_ORGS, None).await
    }

    async fn deletion_due_orgs(&self, now: time::OffsetDateTime) -> Result<Vec<OrgId>, StoreError> {
        deletion::org_ids(&self.pool, dialect::DELETION_DUE_ORGS, Some(now)).await
    }

    async fn vault_counts(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let rows: Vec<(i32, i64)> =
            sqlx::query_as("SELECT version, n FROM bulwark_vault_counts() ORDER BY 1")
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        counts(rows)
    }

    async fn session_touch(
        &self,
        id: bulwark_types::SessionId,
        at: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        session::touch(&self.pool, id, at).await
    }

    async fn throttle_state(
        &self,
        keys: &[String],
    ) -> Result<Vec<bulwark_core::model::ThrottleRow>, StoreError> {
        identity::throttle_state(&self.pool, keys).await
    }

    async fn throttle_fail(
        &self,
        key: &str,
        now: time::OffsetDateTime,
        forget_before: time::OffsetDateTime,
    ) -> Result<u32, StoreError> {
        identity::throttle_fail(&self.pool, key, now, forget_before).await
    }

    async fn mfa_status(&self, user: bulwark_types::UserId) -> Result<(bool, u32), StoreError> {
        identity::mfa_status(&self.pool, user).await
    }

    async fn throttle_forget(&self, before: time::OffsetDateTime) -> Result<u64, StoreError> {
        identity::throttle_forget(&self.pool, before).await
    }

    async fn mail_enqueue(&self, job: &bulwark_core::model::MailJob) -> Result<(), StoreError> {
        mail::enqueue(&self.pool, job).await
    }

    async fn mail_claim(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<bulwark_core::model::MailJob>, StoreError> {
        mail::claim(&self.pool, now_ms, lease_until_ms, limit).await
    }

    async fn mail_backlog(&self) -> Result<u64, StoreError> {
        mail::backlog(&self.pool).await
    }

    async fn throttle_clear(&self, key: &str) -> Result<(), StoreError> {
        identity::throttle_clear(&self.pool, key).await
    }

    async fn invitation_org(
        &self,
        hash: &bulwark_crypto::TokenHash,
    ) -> Result<Option<OrgId>, StoreError> {
        identity::invitation_org(&self.pool, hash).await
    }

    async fn rate_take(
        &self,
        key: &str,
        bucket: bulwark_core::rate::Bucket,
        _now: time::OffsetDateTime,
    ) -> Result<bulwark_core::rate::Verdict, StoreError> {
        // One statement, so concurrent takes on any replica serialise on the row; the
        // database's clock measures the refill, so replicas' clocks need not agree.
        let (tokens, allowed): (f64, bool) = sqlx::query_as(
            "INSERT INTO rate_buckets AS b (key, tokens, allowed, updated_at) \
             VALUES ($1, $2 - 1, true, now()) \
             ON CONFLICT (key) DO UPDATE SET \
               tokens = bulwark_refill(b.tokens, b.updated_at, $2, $3) \
                        - CASE WHEN bulwark_refill(b.tokens, b.updated_at, $2, $3) >= 1 THEN 1 ELSE 0 END, \
               allowed = bulwark_refill(b.tokens, b.updated_at, $2, $3) >= 1, \
               updated_at = GREATEST(b.updated_at, now()) \
             RETURNING tokens, allowed",
        )
        .bind(key)
        .bind(bucket.burst)
        .bind(bucket.per_sec)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(bulwark_core::rate::Verdict::after(bucket, tokens, allowed))
    }

    async fn api_key_org(&self, id: bulwark_types::ApiKeyId) -> Result<Option<OrgId>, StoreError> {
        // Row-level security hides keys outside a bound org; the owner-run function (migration 0009) answers with the org id only.
        let org: Option<uuid::Uuid> = sqlx::query_scalar("SELECT bulwark_api_key_org($1)")
            .bind(id.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(org.map(OrgId::from_uuid))
    }

    async fn sso_connection_org(
        &self,
        id: bulwark_types::ConnectionId,
    ) -> Result<Option<OrgId>, StoreError> {
        sso::connection_org(&self.pool, id).await
    }

    async fn sso_session_connection(
        &self,
        session: bulwark_types::SessionId,
    ) -> Result<Option<bulwark_types::ConnectionId>, StoreError> {
        sso::session_connection(&self.pool, session).await
    }

    async fn sso_domain_org(&self, domain: &str) -> Result<Option<(OrgId, bool)>, StoreError> {
        sso::domain_org(&self.pool, domain).await
    }

    async fn sso_use_once(
        &self,
        key: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        sso::use_once(&self.pool, key, expires_ms, now_ms).await
    }

    async fn user_orgs(
        &self,
        user: bulwark_types::UserId,
    ) -> Result<Vec<(bulwark_core::model::Org, bulwark_types::Role)>, StoreError> {
        // Row-level security hides other orgs' memberships; the owner-run function (migration
        // 0016) answers with this user's own.
        let rows =
            sqlx::query("SELECT id, slug, name, created_at, role FROM bulwark_user_orgs($1)")
                .bind(user.as_uuid())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                use sqlx::Row as _;
                let org = bulwark_core::model::Org {
                    id: OrgId::from_uuid(row.try_get("id").map_err(map_err)?),
                    slug: parse("slug", row.try_get("slug").map_err(map_err)?)?,
                    name: parse("org name", row.try_get("name").map_err(map_err)?)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                };
                Ok((org, role(row.try_get("role").map_err(map_err)?)?))
            })
            .collect()
    }
}

/// SQLSTATE classes and codes that mean the server or the connection is gone or refusing.
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// Maps an engine error to the port's error, naming the uniqueness rule on conflicts. The engine
/// text stays in the boxed source for the server log; it never reaches a client.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            let rule = match db.constraint() {
                Some("users_email_key_key") => Some("users.email"),
                Some("orgs_slug_key") => Some("orgs.slug"),
                Some("memberships_pkey") => Some("memberships"),
                Some("teams_org_id_name_key") => Some("teams.name"),
                Some("credentials_org_id_name_key") => Some("credentials.name"),
                Some("sso_connections_org_id_name_key") => Some("sso_connections.name"),
                Some("sso_domains_pkey") => Some("sso_domains.domain"),
                Some("scim_users_user_name") => Some("scim_users.user_name"),
                Some("scim_users_pkey") => Some("scim_users.user"),
                Some("webhook_messages_org_id_idempotency_key_key") => {
                    Some("webhook_messages.idempotency_key")
                }
                _ => None,
            };
            if let Some(rule) = rule {
                return StoreError::Conflict(rule);
            }
        }
        if db.code().is_some_and(|c| is_unavailable_code(&c)) {
            return StoreError::Unavailable(Box::new(e));
        }
    }
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(Box::new(e)),
        other => StoreError::Internal(Box::new(other)),
    }
}

/// Parses a stored value or reports the row as corrupt.
pub(crate) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T, StoreError> {
    T::from_str(s).map_err(|_| StoreError::Corrupt(format!("stored {what} does not parse")))
}

/// Parses a stored role string.
pub(crate) fn role(s: &str) -> Result<Role, StoreError> {
    parse("role", s)
}

/// Key-version counts read back from the engine, checked for range.
fn counts<V: TryInto<u32>>(rows: Vec<(V, i64)>) -> Result<Vec<(u32, u64)>, StoreError> {
    rows.into_iter()
        .map(|(v, n)| {
            let v = v
                .try_into()
                .map_err(|_| StoreError::Corrupt("vault key version".into()))?;
            let n = u64::try_from(n).map_err(|_| StoreError::Corrupt("vault count".into()))?;
            Ok((v, n))
        })
        .collect()
}
