//! The storage ports on SQLite: the embedded, single-node default.
//!
//! One database file in WAL mode with `synchronous = FULL` (a commit survives power loss) and
//! foreign keys on; `secure_delete` zeroes deleted content. SQLite has no row-level security, so tenant isolation rests on the port's
//! shape: the only way to tenant rows is an [`OrgTx`] whose every query filters on its org id.
//! Read-write transactions start with `BEGIN IMMEDIATE`, so one that reads and then writes never
//! fails half-way on a lock upgrade; read-only handles use a deferred `BEGIN` and never queue.

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
#[path = "../../bulwark-store-sql/src/sso.rs"]
mod sso;
#[path = "../../bulwark-store-sql/src/system.rs"]
mod system;
#[path = "../../bulwark-store-sql/src/vault.rs"]
mod vault;
#[path = "../../bulwark-store-sql/src/webhooks.rs"]
mod webhooks;

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use bulwark_core::StoreError;
use bulwark_core::ports::{OrgRead, OrgTx, Store, StoreHealth, SystemTx};
use bulwark_types::OrgId;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Why the SQLite store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteOpenError {
    /// The file could not be opened or created.
    #[error("cannot open the SQLite database `{path}`")]
    Open {
        /// The database path.
        path: String,
        /// The engine's error.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed (e.g. the database was migrated by a newer Bulwark).
    #[error("cannot migrate the SQLite database `{path}`")]
    Migrate {
        /// The database path.
        path: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Rate-limit buckets: one process owns a SQLite database, so they live here.
    buckets: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, BucketState>>>,
}

/// A rate-limit bucket held in the process: tokens after the last take, when, and its shape.
type BucketState = (f64, time::OffsetDateTime, bulwark_core::rate::Bucket);

impl SqliteStore {
    /// Opens (creating if missing) the database at `path`, applies pending migrations and brings
    /// stored account addresses into their current normal form.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub async fn open(path: &Path, max_connections: u32) -> Result<Self, SqliteOpenError> {
        let shown = path.display().to_string();
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted rows (a credential's wrapped data key, pruned audit bodies) are overwritten
            // with zeros in the file instead of lingering in free pages.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(opts)
            .await
            .map_err(|source| SqliteOpenError::Open {
                path: shown.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| SqliteOpenError::Migrate {
                path: shown.clone(),
                source,
            })?;
        let renormalised = match pool.acquire().await {
            Ok(mut conn) => identity::renormalise_emails(&mut conn).await,
            Err(e) => Err(e),
        };
        renormalised.map_err(|e| SqliteOpenError::Migrate {
            path: shown,
            source: sqlx::migrate::MigrateError::Execute(e),
        })?;
        Ok(Self {
            pool,
            epoch: std::sync::Arc::default(),
            buckets: std::sync::Arc::default(),
        })
    }

    /// An in-memory-like database in a file path chosen by the caller, for tests and benches.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        let started = std::time::Instant::now();
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err);
        bulwark_core::metrics::metrics()
            .db_acquire
            .observe(&[], started.elapsed().as_secs_f64());
        tx
    }
}

async fn migrations_current(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?;
    let known: Vec<_> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .collect();
    Ok(applied.len() == known.len()
        && applied
            .iter()
            .zip(known)
            .all(|((v, sum, ok), m)| *ok && *v == m.version && sum.as_slice() == &*m.checksum))
}

#[async_trait]
impl Store for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
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
        Ok(Box::new(org::StoreOrgTx {
            tx: self.begin().await?,
            org,
        }))
    }

    async fn org_read(&self, org: OrgId) -> Result<Box<dyn OrgRead>, StoreError> {
        // A deferred transaction: a consistent WAL snapshot without the write lock.
        let tx = self.pool.begin().await.map_err(map_err)?;
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

    async fn audit_unsigned_orgs(&self) -> Result<Vec<OrgId>, StoreError> {
        let rows: Vec<(uuid::Uuid, Vec<u8>, Option<i64>)> = sqlx::query_as(
            "SELECT h.org_id, h.frontier, \
             (SELECT max(c.size) FROM audit_checkpoints c WHERE c.log = h.log) \
             FROM audit_heads h WHERE h.org_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .filter(|(_, frontier, signed)| {
                let size = frontier
                    .first_chunk::<8>()
                    .map_or(0, |b| u64::from_be_bytes(*b));
                size > signed.and_then(|s| u64::try_from(s).ok()).unwrap_or(0)
            })
            .map(|(org, _, _)| OrgId::from_uuid(org))
            .collect())
    }

    async fn vault_stale_orgs(&self, active: u32) -> Result<Vec<OrgId>, StoreError> {
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT DISTINCT org_id FROM credentials WHERE key_version < $1")
                .bind(i64::from(active))
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
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT key_version, count(*) FROM credentials GROUP BY key_version ORDER BY 1",
        )
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
        now: time::OffsetDateTime,
    ) -> Result<bulwark_core::rate::Verdict, StoreError> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Forget buckets that have refilled completely: they would be created full anyway.
            // (each judged by its own shape).
            buckets.retain(|_, (tokens, at, shape)| {
                *tokens + (now - *at).as_seconds_f64() * shape.per_sec < shape.burst
            });
        }
        let (tokens, at, _) = buckets
            .get(key)
            .copied()
            .unwrap_or((bucket.burst, now, bucket));
        let (left, allowed) = bulwark_core::rate::take(bucket, tokens, (now - at).as_seconds_f64());
        buckets.insert(key.to_owned(), (left, now.max(at), bucket));
        Ok(bulwark_core::rate::Verdict::after(bucket, left, allowed))
    }

    async fn api_key_org(&self, id: bulwark_types::ApiKeyId) -> Result<Option<OrgId>, StoreError> {
        // The org id only; the key is read inside the org's transaction.
        let org: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT org_id FROM api_keys WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
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
        // Plain SQL: SQLite has no row-level security.
        let rows = sqlx::query("SELECT o.id, o.slug, o.name, o.created_at, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY m.created_at, o.id")
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

/// Maps an engine error to the port's error, naming the uniqueness rule on conflicts. The engine
/// text stays in the boxed source for the server log; it never reaches a client.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let msg = db.message();
        let rule = if msg.contains("users.email_key") {
            "users.email"
        } else if msg.contains("orgs.slug") {
            "orgs.slug"
        } else if msg.contains("memberships.") {
            "memberships"
        } else if msg.contains("teams.") {
            "teams.name"
        } else if msg.contains("credentials.") {
            "credentials.name"
        } else if msg.contains("sso_connections.") {
            "sso_connections.name"
        } else if msg.contains("sso_domains.") {
            "sso_domains.domain"
        } else if msg.contains("scim_users.user_name_key") {
            "scim_users.user_name"
        } else if msg.contains("scim_users.") {
            "scim_users.user"
        } else if msg.contains("webhook_messages.") {
            "webhook_messages.idempotency_key"
        } else {
            "unique"
        };
        return StoreError::Conflict(rule);
    }
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(Box::new(e))
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        other => StoreError::Internal(Box::new(other)),
    }
}

/// Parses a stored value or reports the row as corrupt.
pub(crate) fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, StoreError> {
    T::from_str(s).map_err(|_| StoreError::Corrupt(format!("stored {what} does not parse")))
}

pub(crate) fn role(s: &str) -> Result<bulwark_types::Role, StoreError> {
    bulwark_types::Role::from_str(s)
        .map_err(|_| StoreError::Corrupt("stored role does not parse".into()))
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
