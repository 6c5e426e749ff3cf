//! Start-up: the data directory, the store, the workspace seed, then serving until a signal.
//!
//! Fail closed: a data directory others can read, a missing or corrupt seed next to existing data,
//! a seed that does not match the database, or a PostgreSQL role that could bypass row-level
//! security each stop the server with a message saying what to do.

use std::net::SocketAddr;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use bulwark_core::hashing::HashPool;
use bulwark_core::ports::Store;
use bulwark_core::setup::{self, BootError};
use bulwark_crypto::{KeyPurpose, MacKey, SecretToken, Seed};
use bulwark_store_postgres::PgStore;
use bulwark_store_sqlite::SqliteStore;
use bulwark_types::{Clock, SystemClock};
use secrecy::ExposeSecret as _;

use crate::config::Config;
use crate::state::AppState;

/// The seed file's name inside the data directory.
pub const SEED_FILE: &str = "seed";
/// Where checkpoints are published by default, inside the data directory.
pub const AUDIT_CHECKPOINTS_FILE: &str = "audit-checkpoints.jsonl";
/// The SQLite database's name inside the data directory.
pub const SQLITE_FILE: &str = "bulwark.db";
/// How often `serve` purges the orgs whose deletion is due.
const PURGE_EVERY: Duration = Duration::from_secs(300);

/// Why the server will not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory is unusable or unsafe.
    #[error("data directory `{path}`: {message}")]
    DataDir {
        /// The directory.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The seed file is unusable.
    #[error("workspace seed `{path}`: {message}")]
    Seed {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// SQLite could not be opened.
    #[error(transparent)]
    Sqlite(#[from] bulwark_store_sqlite::SqliteOpenError),
    /// PostgreSQL refused or is unsafe.
    #[error(transparent)]
    Postgres(#[from] bulwark_store_postgres::PgSetupError),
    /// The seed does not match the database, or storage failed during start-up.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// TLS material could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The checkpoint collector client could not be built.
    #[error("audit.publish_url: {0}")]
    Publish(String),
    /// The SMTP relay settings cannot be used (the text names the key).
    #[error("{0}")]
    Mail(String),
    /// The built-in authorization policies do not load (a build defect).
    #[error(transparent)]
    Authz(#[from] bulwark_authz::BuiltinError),
    /// The listen address could not be bound.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The outbound HTTP client could not be built.
    /// The license in force does not verify (fail closed).
    #[error(
        "license: {0}; refusing to start (activate a license with `bulwark license activate FILE`)"
    )]
    License(String),
    #[error("egress: {0}")]
    Egress(String),
    /// The cryptographic self-test failed: the provider does not compute what the standards say.
    #[error("{0}; refusing to start")]
    SelfTest(#[from] bulwark_crypto::SelfTestFailure),
    /// The vault's key provider cannot be used.
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultStartError),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
    /// Production gates failed (the text names each gate and the setting that fixes it).
    #[error("{0}")]
    Gates(String),
}

/// Runs every check of `bulwark doctor` (verifying each audit log to its latest checkpoint,
/// writing nothing) before the server takes traffic. In production a failing check refuses the
/// start; in development each is logged as a warning. Warnings are logged in both.
///
/// # Errors
/// [`StartError::Gates`], naming each failing gate and its fix.
pub async fn gate(prepared: &Prepared) -> Result<crate::doctor::Report, StartError> {
    use crate::doctor::Status;
    let report = crate::doctor::for_state(&prepared.state, false).await;
    let production = prepared.state.config.server.mode() == crate::config::Mode::Production;
    for c in &report.checks {
        let fix = c.remediation.as_deref().unwrap_or_default();
        match c.status {
            Status::Pass => {}
            Status::Warn => tracing::warn!(check = %c.id, fix, "doctor: {}", c.title),
            Status::Fail if !production => {
                tracing::warn!(check = %c.id, fix, mode = "development", "doctor: FAILING {}", c.title);
            }
            Status::Fail => {
                tracing::error!(check = %c.id, fix, "production gate failed: {}", c.title)
            }
        }
    }
    if production && report.failures().next().is_some() {
        return Err(StartError::Gates(report.refusal()));
    }
    tracing::info!(
        mode = report.mode,
        pass = report.summary.pass,
        warn = report.summary.warn,
        fail = report.summary.fail,
        "doctor checks ran before serving"
    );
    Ok(report)
}

/// A server ready to run: state built, socket bound.
pub struct Prepared {
    /// Shared state (tests reach the store through it).
    pub state: AppState,
    listener: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
    tls: Option<RustlsConfig>,
    setup_token: Option<SecretToken>,
}

impl Prepared {
    /// The bound address (useful with port 0).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics listener's bound address, when `[metrics]` is enabled.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The one-time setup token, if setup is pending. Taken once; print it, never log it.
    pub fn take_setup_token(&mut self) -> Option<SecretToken> {
        self.setup_token.take()
    }

    /// Whether HTTPS is served directly.
    #[must_use]
    pub fn serves_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Opens the configured store: PostgreSQL with `database_url`, else SQLite in the data dir.
///
/// # Errors
/// Unsafe data dir, unreachable or unsafe database.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match &config.database_url {
        Some(url) => Ok(Arc::new(
            PgStore::connect(url.expose_secret(), config.database.max_connections).await?,
        )),
        None => {
            ensure_data_dir(&config.data_dir)?;
            let path = config.data_dir.join(SQLITE_FILE);
            // Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the
            // database file's permissions.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| StartError::DataDir {
                    path: config.data_dir.display().to_string(),
                    message: format!("cannot create `{SQLITE_FILE}`: {e}"),
                })?;
            Ok(Arc::new(
                SqliteStore::open(&path, config.database.max_connections).await?,
            ))
        }
    }
}

/// Creates the data dir (0700) or checks an existing one: it must belong to this user and not be
/// readable by others.
///
/// # Errors
/// When it cannot be created, belongs to someone else or is open to other users.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StartError> {
    let err = |message: String| StartError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("cannot create it: {e}"))),
        Err(e) => Err(err(format!("cannot read it: {e}"))),
        Ok(meta) if !meta.is_dir() => Err(err("exists and is not a directory".into())),
        Ok(meta) => {
            if let Some(me) = current_uid()
                && meta.uid() != me
            {
                return Err(err(format!(
                    "belongs to uid {}, not to this process (uid {me}); run Bulwark as the directory's owner",
                    meta.uid()
                )));
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                return Err(err(format!(
                    "is accessible to all users (mode {mode:04o}); run `chmod 700 {}`",
                    dir.display()
                )));
            }
            if mode & 0o070 != 0 {
                tracing::warn!(path = %dir.display(), mode = format!("{mode:04o}"), "data directory is accessible to its group; chmod 700 is recommended");
            }
            Ok(())
        }
    }
}

/// The effective uid of this process (owner of `/proc/self`), where the platform shows it.
pub(crate) fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Loads the seed, or creates it when this is a brand-new deployment.
///
/// # Errors
/// A corrupt or over-permissive seed file, an unsafe data directory around it, or a missing seed
/// next to existing data.
pub async fn load_or_create_seed(dir: &Path, store: &dyn Store) -> Result<Seed, StartError> {
    let path = dir.join(SEED_FILE);
    let err = |message: String| StartError::Seed {
        path: path.display().to_string(),
        message,
    };
    match std::fs::read(&path) {
        Ok(content) => {
            // On PostgreSQL nothing else checks the directory that holds the seed.
            ensure_data_dir(dir)?;
            let meta = std::fs::metadata(&path).map_err(|e| err(format!("cannot read it: {e}")))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "is readable by other users (mode {mode:04o}); run `chmod 600 {}`",
                    path.display()
                )));
            }
            Seed::parse_file(&content).map_err(|e| {
                err(format!("{e}; the file is corrupt: restore it from your backup or recovery kit (a new seed would orphan every encrypted record)"))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if setup::instance_exists(store)
                .await
                .map_err(BootError::from)?
            {
                return Err(err(
                    "is missing but the database already holds a deployment; restore the seed file from your backup or recovery kit. \
                     Refusing to create a new one, which would orphan every encrypted record"
                        .into(),
                ));
            }
            ensure_data_dir(dir)?;
            let seed = Seed::generate().map_err(|e| err(e.to_string()))?;
            write_new_secret_file(&path, seed.to_file_content().as_bytes())
                .map_err(|e| err(format!("cannot write it: {e}")))?;
            tracing::info!(path = %path.display(), "created a new workspace seed; back it up");
            Ok(seed)
        }
        Err(e) => Err(err(format!("cannot read it: {e}"))),
    }
}

/// Writes a new 0600 file, refusing to replace an existing one, and syncs it and its directory.
///
/// # Errors
/// The file exists, or the write or sync fails.
pub fn write_new_secret_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content)?;
    f.sync_all()?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The keys that verify licenses: the vendor's, compiled in, and `license.extra_public_keys`
/// (also what `bulwark license inspect` checks against by default).
///
/// # Errors
/// An `extra_public_keys` entry that is not a key.
pub fn trusted_keys(config: &Config) -> Result<Vec<[u8; 32]>, StartError> {
    let extra = bulwark_core::licensing::parse_public_keys(&config.license.extra_public_keys)
        .map_err(|i| {
            StartError::License(format!(
                "license.extra_public_keys entry {} is not a key",
                i + 1
            ))
        })?;
    Ok(bulwark_core::licensing::trusted_keys(&extra))
}

/// Loads the license in force; one that does not verify stops the start (fail closed).
async fn open_licensing(
    config: &Config,
    store: &dyn bulwark_core::ports::Store,
    deployment: bulwark_core::licensing::Deployment,
) -> Result<bulwark_core::licensing::Licensing, StartError> {
    use bulwark_core::licensing::{self, LoadError};
    let id = deployment.id().to_owned();
    let loaded = licensing::Licensing::load(store, deployment, trusted_keys(config)?)
        .await
        .map_err(|e| match e {
            LoadError::Store(s) => StartError::Boot(BootError::Store(s)),
            LoadError::Invalid(why) => StartError::License(why),
        })?;
    match loaded.in_force() {
        Some(l) => tracing::info!(
            deployment = %id,
            license_id = %l.claims.license_id,
            licensee = %l.claims.licensee,
            "license in force"
        ),
        None => tracing::info!(deployment = %id, "no license: community limits"),
    }
    Ok(loaded)
}

/// Everything before serving: store, seed, bootstrap, state, socket, TLS.
///
/// # Errors
/// See [`StartError`].
pub async fn prepare(config: Config) -> Result<Prepared, StartError> {
    crate::metrics::note_start();
    bulwark_core::metrics::set_enabled(config.metrics.enabled);
    bulwark_core::metrics::set_per_org_labels(config.metrics.per_org_labels);
    let kats = bulwark_crypto::self_test()?;
    tracing::info!(
        cases = kats.cases,
        fips = bulwark_crypto::fips_mode(),
        "cryptographic self-test passed"
    );
    let config = Arc::new(config);
    let store = open_store(&config).await?;
    let seed = load_or_create_seed(&config.data_dir, &*store).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let boot = setup::bootstrap(&*store, &seed, &*clock).await?;
    let checkpointer = checkpointer(&config, &store, &clock, &seed, boot.deployment_id)?;
    let crypto = |_| StartError::Boot(BootError::Crypto);
    let macs = crate::state::Macs {
        csrf: MacKey::derive(&seed, KeyPurpose::Csrf).map_err(crypto)?,
        cursor: MacKey::derive(&seed, KeyPurpose::Cursor).map_err(crypto)?,
        api_keys: MacKey::derive(&seed, KeyPurpose::ApiKeyPepper).map_err(crypto)?,
    };
    let sealer =
        bulwark_crypto::SecretBox::derive(&seed, KeyPurpose::TotpSecrets).map_err(crypto)?;
    let sso_flow_key =
        bulwark_crypto::SecretBox::derive(&seed, KeyPurpose::SsoFlow).map_err(crypto)?;
    let vault = crate::vault::open_provider(&config.vault, &seed, boot.deployment_id)?;
    let deployment = bulwark_core::licensing::Deployment::derive(&seed)
        .map_err(|_| StartError::Boot(BootError::Crypto))?;
    drop(seed);
    let licensing = Arc::new(open_licensing(&config, &*store, deployment).await?);
    checkpointer.pause_pruning_when_read_only(licensing.clone());
    let active = crate::vault::check_keys(&*store, &*clock, &*vault).await?;
    tracing::info!(
        provider = vault.provider(),
        active_version = active,
        "vault ready"
    );
    tracing::info!(key = %checkpointer.verifier_key(), "audit checkpoints are signed with this verifier key");
    tracing::info!(engine = store.engine(), deployment = %boot.deployment_id, "store ready");

    let tls = match &config.tls {
        Some(t) => Some(load_tls(&t.cert_path, &t.key_path)?),
        None => None,
    };
    let listener = bind(config.listen)?;
    let metrics = if config.metrics.enabled {
        Some(bind(config.metrics.listen)?)
    } else {
        None
    };

    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let security_txt =
        crate::api::well_known::render_security_txt(&config.security_txt, clock.now())
            .map(Arc::from);
    let hasher = HashPool::new(cores, config.passwords.params());
    let mailer: Arc<dyn bulwark_core::ports::Mailer> = match &config.mail.smtp {
        Some(smtp) => {
            Arc::new(crate::mail::Smtp::new(smtp, &config.mail.from).map_err(StartError::Mail)?)
        }
        None => Arc::new(crate::mail::Outbox::new(
            &config.data_dir,
            &config.mail.from,
        )),
    };
    // The unknown-account sentinel hash, made now so the first such login does not stand out.
    tokio::spawn({
        let hasher = hasher.clone();
        async move { drop(hasher.warm().await) }
    });
    let limits = crate::egress::Limits {
        timeout: Duration::from_millis(config.webhooks.timeout_ms),
        max_response_bytes: config.webhooks.max_response_bytes,
    };
    let egress = crate::egress::Egress::new(config.egress.policy(), limits)
        .map_err(|e| StartError::Egress(e.to_string()))?;
    let webhook_egress = crate::egress::Egress::new(config.egress.webhook_policy(), limits)
        .map_err(|e| StartError::Egress(e.to_string()))?;
    let sso_egress = crate::egress::Egress::new(
        config.sso.policy(&config.egress),
        crate::egress::Limits {
            timeout: Duration::from_secs(10),
            max_response_bytes: 256 * 1024,
        },
    )
    .map_err(|e| StartError::Egress(e.to_string()))?;
    let state = AppState::new(crate::state::Shared {
        sso: Arc::new(crate::sso::Sso::new(sso_egress, sso_flow_key)),
        licensing,
        egress,
        webhook_egress,
        webhook_wake: Arc::new(tokio::sync::Notify::new()),
        mail_wake: Arc::new(tokio::sync::Notify::new()),
        csp_reports: Arc::default(),
        hasher,
        sessions: config.sessions.policy(),
        trusted_proxies: config
            .http
            .trusted_proxies
            .iter()
            .filter_map(|p| crate::client_ip::Net::parse(p))
            .collect(),
        authz: Arc::new(bulwark_core::authz::Authz::new()?.with_hash_ttl(
            std::time::Duration::from_secs(config.rate_limits.key_cache_secs),
        )),
        session_cache: Arc::new(bulwark_core::session_cache::SessionCache::new(
            std::time::Duration::from_secs(config.sessions.cache_secs),
        )),
        key_cache: Arc::new(bulwark_core::apikeys::KeyCache::new(
            std::time::Duration::from_secs(config.rate_limits.key_cache_secs),
        )),
        macs: Arc::new(macs),
        throttle: config.throttle.policy(),
        mailer,
        limiter: Arc::new(crate::limit::AddressLimiter::new(
            config.throttle.unauthenticated_per_minute,
        )),
        key_failures: Arc::new(crate::limit::FailureHints::new(
            config.throttle.policy().forget_after.unsigned_abs(),
        )),
        password_policy: Arc::new(config.passwords.policy()),
        sealer: Arc::new(sealer),
        vault,
        config,
        store,
        clock,
        keys_loaded: Arc::new(AtomicBool::new(true)),
        draining: Arc::new(AtomicBool::new(false)),
        openapi_json: Arc::from(crate::openapi_json()),
        security_txt,
        checkpointer: Arc::new(checkpointer),
    });
    Ok(Prepared {
        state,
        listener,
        metrics,
        tls,
        setup_token: boot.setup_token,
    })
}

/// What offline operator tools (`bulwark audit key|export`) need: the store and the
/// checkpointer of an existing deployment. Never creates a seed or a deployment.
///
/// # Errors
/// No deployment in this store yet, a missing or mismatching seed, storage failures.
pub async fn open_for_tools(
    config: &Config,
) -> Result<(Arc<dyn Store>, crate::workers::checkpointer::Checkpointer), StartError> {
    let (store, seed, deployment) = open_existing(config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let checkpointer = checkpointer(config, &store, &clock, &seed, deployment)?;
    Ok((store, checkpointer))
}

/// The retention of each kind of record, from `[retention]` and `webhooks`.
#[must_use]
pub fn retention_policy(config: &Config) -> bulwark_core::retention::Policy {
    let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
    bulwark_core::retention::Policy {
        sessions: days(config.retention.sessions_days),
        invitations: days(config.retention.invitations_days),
        webhook_messages: days(config.webhooks.message_retention_days),
    }
}

/// What `bulwark deletion …` needs: the store, the checkpointer (a purge's certificate names the
/// sealed log's last checkpoint) and the deployment key that signs certificates.
///
/// # Errors
/// As [`open_for_tools`].
pub async fn open_deletion_for_tools(
    config: &Config,
) -> Result<
    (
        Arc<dyn Store>,
        crate::workers::checkpointer::Checkpointer,
        bulwark_core::licensing::Deployment,
    ),
    StartError,
> {
    bulwark_crypto::self_test()?;
    let (store, seed, deployment) = open_existing(config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let checkpointer = checkpointer(config, &store, &clock, &seed, deployment)?;
    let signer = bulwark_core::licensing::Deployment::derive(&seed)
        .map_err(|_| StartError::Boot(BootError::Crypto))?;
    Ok((store, checkpointer, signer))
}

/// What `bulwark keys …` needs: the store, the seed (checked against the database) and the
/// vault's key provider. Never creates a seed or a deployment.
///
/// # Errors
/// As [`open_for_tools`]; a provider that cannot be opened.
pub async fn open_vault_for_tools(
    config: &Config,
) -> Result<
    (
        Arc<dyn Store>,
        Arc<dyn bulwark_crypto::vault::KeyWrapper>,
        Seed,
    ),
    StartError,
> {
    bulwark_crypto::self_test()?;
    let (store, seed, deployment) = open_existing(config).await?;
    let wrapper = crate::vault::open_provider(&config.vault, &seed, deployment)?;
    Ok((store, wrapper, seed))
}

/// What `bulwark license activate|status` needs: the store and the deployment's licensing
/// state, opened even when the stored activation does not verify (its problem is returned).
///
/// # Errors
/// As [`open_for_tools`]; a bad `license.extra_public_keys`.
pub async fn open_licensing_for_tools(
    config: &Config,
) -> Result<
    (
        Arc<dyn Store>,
        bulwark_core::licensing::Licensing,
        Option<String>,
    ),
    StartError,
> {
    use bulwark_core::licensing;
    bulwark_crypto::self_test()?;
    let (store, seed, _) = open_existing(config).await?;
    let deployment =
        licensing::Deployment::derive(&seed).map_err(|_| StartError::Boot(BootError::Crypto))?;
    drop(seed);
    let (licensing, problem) =
        licensing::Licensing::open(&*store, deployment, trusted_keys(config)?)
            .await
            .map_err(|e| StartError::Boot(BootError::Store(e)))?;
    Ok((store, licensing, problem))
}

/// What `bulwark doctor` needs to run the live checks outside a server.
pub struct DoctorParts {
    /// The store, as the role `serve` uses.
    pub store: Arc<dyn Store>,
    /// The system clock.
    pub clock: Arc<dyn Clock>,
    /// The vault's key provider.
    pub vault: Arc<dyn bulwark_crypto::vault::KeyWrapper>,
    /// The licensing state (opened even when the activation does not verify).
    pub licensing: bulwark_core::licensing::Licensing,
    /// The checkpointer of every log.
    pub checkpointer: crate::workers::checkpointer::Checkpointer,
    /// The deployment key, which signs an exported security page.
    pub signer: bulwark_core::licensing::Deployment,
}

/// Opens an existing deployment for `bulwark doctor`. Never creates a seed or a deployment.
///
/// # Errors
/// As [`open_for_tools`]; a key provider that cannot be opened.
pub async fn open_doctor_for_tools(config: &Config) -> Result<DoctorParts, StartError> {
    let (store, seed, deployment) = open_existing(config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let checkpointer = checkpointer(config, &store, &clock, &seed, deployment)?;
    let vault = crate::vault::open_provider(&config.vault, &seed, deployment)?;
    let derive = || {
        bulwark_core::licensing::Deployment::derive(&seed)
            .map_err(|_| StartError::Boot(BootError::Crypto))
    };
    let signer = derive()?;
    let for_licensing = derive()?;
    drop(seed);
    let (licensing, _) =
        bulwark_core::licensing::Licensing::open(&*store, for_licensing, trusted_keys(config)?)
            .await
            .map_err(|e| StartError::Boot(BootError::Store(e)))?;
    Ok(DoctorParts {
        store,
        clock,
        vault,
        licensing,
        checkpointer,
        signer,
    })
}

/// An existing deployment's store and seed, the seed checked against the database.
async fn open_existing(config: &Config) -> Result<(Arc<dyn Store>, Seed, uuid::Uuid), StartError> {
    if config.database_url.is_none() && !config.data_dir.join(SQLITE_FILE).exists() {
        return Err(StartError::DataDir {
            path: config.data_dir.display().to_string(),
            message: "holds no Bulwark database: check --data-dir".into(),
        });
    }
    let store = open_store(config).await?;
    let instance = {
        let mut tx = store.system().await.map_err(BootError::from)?;
        tx.instance().await.map_err(BootError::from)?
    };
    let Some(instance) = instance else {
        return Err(StartError::DataDir {
            path: config.data_dir.display().to_string(),
            message: "holds no Bulwark deployment yet: start `bulwark serve` once".into(),
        });
    };
    let seed = load_or_create_seed(&config.data_dir, &*store).await?;
    let check = seed
        .check_value()
        .map_err(|_| StartError::Boot(BootError::Crypto))?;
    if !bulwark_crypto::constant_time_eq(&check, &instance.seed_check) {
        return Err(StartError::Boot(BootError::SeedMismatch));
    }
    Ok((store, seed, instance.deployment_id))
}

/// Writes a seed restored from a recovery kit into `dir` (0600, never replacing a file), after
/// checking it against the database's check value when a deployment exists there.
///
/// # Errors
/// A seed file already present, a seed that does not match the database, I/O failures.
pub async fn restore_seed(config: &Config, seed: &Seed) -> Result<PathBuf, StartError> {
    let path = config.data_dir.join(SEED_FILE);
    let err = |message: String| StartError::Seed {
        path: path.display().to_string(),
        message,
    };
    if path.exists() {
        return Err(err(
            "exists already: a restore never replaces a seed file; move it away first if you are sure".into(),
        ));
    }
    if config.database_url.is_some() || config.data_dir.join(SQLITE_FILE).exists() {
        let store = open_store(config).await?;
        let mut tx = store.system().await.map_err(BootError::from)?;
        if let Some(instance) = tx.instance().await.map_err(BootError::from)? {
            let check = seed
                .check_value()
                .map_err(|_| StartError::Boot(BootError::Crypto))?;
            if !bulwark_crypto::constant_time_eq(&check, &instance.seed_check) {
                return Err(StartError::Boot(BootError::SeedMismatch));
            }
        }
    }
    ensure_data_dir(&config.data_dir)?;
    write_new_secret_file(&path, seed.to_file_content().as_bytes())
        .map_err(|e| err(format!("cannot write it: {e}")))?;
    Ok(path)
}

/// The audit checkpointer with its key derived from the seed (`bulwark/v1/audit-signing`).
fn checkpointer(
    config: &Config,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    seed: &Seed,
    deployment: uuid::Uuid,
) -> Result<crate::workers::checkpointer::Checkpointer, StartError> {
    let crypto = |_| StartError::Boot(BootError::Crypto);
    let key = seed
        .derive(bulwark_crypto::KeyPurpose::AuditSigning, b"")
        .map_err(crypto)?;
    let signer = bulwark_crypto::Ed25519Signer::from_seed(&key).map_err(crypto)?;
    let name = format!("bulwark/{}", deployment.simple());
    let signer = bulwark_audit::checkpoint::NoteSigner::new(&name, signer)
        .map_err(|_| StartError::Boot(BootError::Crypto))?;
    let publish = config
        .audit
        .publish_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(AUDIT_CHECKPOINTS_FILE));
    let sink = config
        .audit
        .publish_url
        .clone()
        .map(|url| {
            crate::workers::checkpointer::HttpSink::new(url, config.audit.publish_token.clone())
        })
        .transpose()
        .map_err(StartError::Publish)?;
    Ok(crate::workers::checkpointer::Checkpointer::new(
        store.clone(),
        clock.clone(),
        signer,
        name,
        (Some(publish), sink),
        config.audit.checkpoint_every_events,
        Duration::from_secs(config.audit.checkpoint_every_secs),
    ))
}

/// Loads PEM certificate chain and key into a TLS 1.2+ configuration on aws-lc-rs.
fn load_tls(cert: &Path, key: &Path) -> Result<RustlsConfig, StartError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let shown = |p: &PathBuf| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            StartError::Tls(format!(
                "cannot read certificates from `{}` (tls.cert_path): {e}",
                shown(&cert.to_path_buf())
            ))
        })?;
    if certs.is_empty() {
        return Err(StartError::Tls(format!(
            "no certificate in `{}` (tls.cert_path)",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        StartError::Tls(format!(
            "cannot read a private key from `{}` (tls.key_path): {e}",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            StartError::Tls(format!(
                "certificate and key do not form a usable pair: {e}"
            ))
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(cfg)))
}

/// Serves until `shutdown` resolves, then stops accepting, reports not-ready and lets in-flight
/// requests finish within the configured grace period.
///
/// # Errors
/// When serving fails.
pub async fn run(
    prepared: Prepared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let Prepared {
        state,
        listener,
        metrics,
        tls,
        ..
    } = prepared;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    let metrics_server = match metrics {
        Some(l) => Some(serve_metrics(l, state.clone())?),
        None => None,
    };
    // Other replicas' revocations void this one's session cache (PostgreSQL).
    state.store.watch_session_changes();
    let http = state.config.http.clone();
    let tls_seen = tls.is_some() || state.config.behind_tls_proxy;
    let draining = state.draining.clone();
    let checkpointer = state.checkpointer.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(checkpointer.run(async move {
        let _ = stop_rx.await;
    }));
    // Throttle counters past their forget horizon would start again anyway: drop them, so
    // failed attempts with ever new emails do not grow the table without bound.
    let forgetter = tokio::spawn({
        let (store, clock, policy) = (state.store.clone(), state.clock.clone(), state.throttle);
        async move {
            loop {
                let before = clock.now() - policy.forget_after;
                match store.throttle_forget(before).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(counters = n, "forgot stale sign-in throttle counters")
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot prune sign-in throttle counters"),
                }
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
        }
    });
    let (rewrap_stop, rewrap_rx) = tokio::sync::oneshot::channel::<()>();
    let rewrapper = tokio::spawn(crate::vault::rewrap_job(
        state.store.clone(),
        state.clock.clone(),
        state.vault.clone(),
        state.config.vault.clone(),
        async move {
            let _ = rewrap_rx.await;
        },
    ));
    // The license clock moves forward, other replicas' activations are picked up, and expiry
    // is announced (audited) once a minute.
    let license_ticker = tokio::spawn({
        let (store, clock, licensing) = (
            state.store.clone(),
            state.clock.clone(),
            state.licensing.clone(),
        );
        async move {
            loop {
                if let Err(e) = licensing.tick(&*store, &*clock).await {
                    tracing::error!(error = %e, "license check failed");
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    });
    // Orgs whose deletion is due are purged and certified every five minutes
    // (docs/deletion.md); `bulwark deletion run` does the same on demand.
    let purger = tokio::spawn({
        let (store, clock, checkpointer, licensing) = (
            state.store.clone(),
            state.clock.clone(),
            state.checkpointer.clone(),
            state.licensing.clone(),
        );
        async move {
            loop {
                if let Err(e) = crate::deletion::purge_due(
                    &*store,
                    &*clock,
                    &checkpointer,
                    licensing.deployment(),
                )
                .await
                {
                    tracing::error!(error = %e, "cannot list the orgs whose deletion is due");
                }
                tokio::time::sleep(PURGE_EVERY).await;
            }
        }
    });
    // Retention per kind of record, every `retention.every` (the first run a minute after start).
    let retainer = tokio::spawn({
        let (store, clock, licensing) = (
            state.store.clone(),
            state.clock.clone(),
            state.licensing.clone(),
        );
        let policy = retention_policy(&state.config);
        let every = state
            .config
            .retention
            .period()
            .unwrap_or(Duration::from_secs(6 * 3600));
        async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            loop {
                if licensing.read_only(&*clock) {
                    tracing::info!(
                        "retention skipped: the license leaves the deployment read-only"
                    );
                } else {
                    match bulwark_core::retention::apply(&*store, &*clock, &policy).await {
                        Ok(a) => tracing::info!(
                            sessions = a.sessions,
                            invitations = a.invitations,
                            webhook_messages = a.webhook_messages,
                            audit_bodies = a.audit_bodies,
                            "retention applied"
                        ),
                        Err(e) => tracing::error!(error = %e, "retention failed"),
                    }
                }
                tokio::time::sleep(every).await;
            }
        }
    });
    let (deliver_stop, deliver_rx) = tokio::sync::oneshot::channel::<()>();
    let deliverer = state.config.webhooks.deliver.then(|| {
        let worker = Arc::new(crate::workers::webhooks::Deliverer::new(
            state.store.clone(),
            state.clock.clone(),
            state.vault.clone(),
            state.webhook_egress.clone(),
            state.config.webhooks.clone(),
            state.webhook_wake.clone(),
        ));
        tokio::spawn(worker.run(async move {
            let _ = deliver_rx.await;
        }))
    });
    let (mail_stop, mail_rx) = tokio::sync::oneshot::channel::<()>();
    let mail_worker = tokio::spawn(
        Arc::new(crate::workers::mail::MailWorker::new(
            state.store.clone(),
            state.clock.clone(),
            state.mailer.clone(),
            state.config.mail.token_policy(),
            state.mail_wake.clone(),
        ))
        .run(async move {
            let _ = mail_rx.await;
        }),
    );
    // Scheduled backups on SQLite; on PostgreSQL they need the owner role, which `serve` never
    // holds: `bulwark backup schedule` runs them beside it (docs/backups.md).
    let (backup_stop, backup_rx) = tokio::sync::oneshot::channel::<()>();
    let scheduler = match (&state.config.backup.dir, &state.config.database_url) {
        (Some(_), None) => Some(tokio::spawn(crate::backup::run_schedule(
            state.config.clone(),
            async move {
                let _ = backup_rx.await;
            },
        ))),
        (Some(dir), Some(_)) => {
            tracing::info!(
                dir = %dir.display(),
                "scheduled backups on PostgreSQL are written by `bulwark backup schedule` as the owner role; this server reports the newest in /readyz"
            );
            None
        }
        _ => None,
    };
    let trusted = state.trusted_proxies.to_vec();
    let app = crate::app(state, tls_seen);
    let handle = axum_server::Handle::new();
    let grace = Duration::from_secs(http.shutdown_grace_secs);
    let watcher = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        draining.store(true, Ordering::Release);
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: draining in-flight requests"
        );
        watcher.graceful_shutdown(Some(grace));
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, url = format!("{scheme}://{addr}"), "listening");
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let result = serve(listener, tls, handle, service, &http, tls_seen, &trusted).await;
    let _ = stop_tx.send(());
    let _ = rewrap_stop.send(());
    let _ = deliver_stop.send(());
    let _ = mail_stop.send(());
    let _ = backup_stop.send(());
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    if let Some(m) = metrics_server {
        m.abort();
    }
    forgetter.abort();
    license_ticker.abort();
    purger.abort();
    retainer.abort();
    if let Some(d) = deliverer {
        let _ = d.await;
    }
    let _ = rewrapper.await;
    let _ = mail_worker.await;
    let _ = worker.await;
    result.map_err(StartError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// Binds a listening socket (non-blocking, for tokio).
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok(listener)
}

/// Connections the metrics listener holds at once (scrapers are few).
const METRICS_MAX_CONNECTIONS: usize = 16;
/// …and from one address.
const METRICS_MAX_CONNECTIONS_PER_IP: usize = 4;

/// Serves `/metrics` on its own listener until the process stops (plain HTTP: put it on
/// loopback or a network only the scraper reaches; docs/metrics.md). Through the same connection
/// guard as the public listener, with the same header-read and idle timeouts and a small
/// connection cap, so a client holding connections open there cannot use up the process's files.
fn serve_metrics(
    listener: std::net::TcpListener,
    state: AppState,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    tracing::info!(metrics_addr = %addr, url = format!("http://{addr}/metrics"), "metrics endpoint ready");
    let mut limits = state.config.http.clone();
    limits.max_connections = METRICS_MAX_CONNECTIONS;
    limits.max_connections_per_ip = METRICS_MAX_CONNECTIONS_PER_IP;
    let app = crate::metrics::router(state).into_make_service_with_connect_info::<SocketAddr>();
    Ok(tokio::spawn(async move {
        let handle = axum_server::Handle::new();
        if let Err(e) = serve(listener, None, handle, app, &limits, false, &[]).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    }))
}

/// Serves connections through the connection guard (`crate::conn`): limits, header-read and
/// idle timeouts, TLS handshake timeout, problem answers to requests hyper cannot parse.
async fn serve(
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    handle: axum_server::Handle<SocketAddr>,
    service: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<axum::Router, SocketAddr>,
    http: &crate::config::HttpConfig,
    tls_seen: bool,
    trusted: &[crate::client_ip::Net],
) -> std::io::Result<()> {
    use crate::conn::{Guard, Limiter, Timeouts};
    let limiter = Limiter::new(
        http.max_connections,
        http.max_connections_per_ip,
        trusted.to_vec(),
    );
    crate::conn::limit::check_file_limit(http.max_connections);
    let timeouts = Timeouts {
        header_read: Duration::from_secs(http.header_read_timeout_secs),
        idle: Duration::from_secs(http.idle_timeout_secs),
    };
    let on_error = {
        let limiter = limiter.clone();
        move |peer: Option<&SocketAddr>, e: &std::io::Error| match peer {
            None => limiter.accept_failed(e),
            Some(peer) => tracing::debug!(client = %peer.ip(), error = %e, "connection not served"),
        }
    };
    let server = axum_server::from_tcp(listener)?
        .handle(handle)
        .accept_error_handler(on_error);
    match tls {
        Some(tls) => {
            let tls = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                .handshake_timeout(timeouts.header_read);
            let mut server = server.acceptor(Guard::new(tls, limiter, timeouts, tls_seen));
            limit_headers(server.http_builder(), http.max_header_bytes);
            server.serve(service).await
        }
        None => {
            let plain = axum_server::accept::DefaultAcceptor::new();
            let mut server = server.acceptor(Guard::new(plain, limiter, timeouts, tls_seen));
            limit_headers(server.http_builder(), http.max_header_bytes);
            server.serve(service).await
        }
    }
}

fn limit_headers(
    b: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    max: usize,
) {
    // hyper's own header-read timer is left off: `conn::io` times the head and idleness itself.
    b.http1().max_buf_size(max).max_headers(100);
    b.http2()
        .max_header_list_size(u32::try_from(max).unwrap_or(u32::MAX));
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives right after the server reports
/// `listening` is never lost to the default action (termination without draining).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! { () = wait(term) => {}, () = wait(int) => {} }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_dir_is_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a/b");
        ensure_data_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_world_accessible_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let msg = ensure_data_dir(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("chmod 700"), "{msg}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
        ensure_data_dir(dir.path()).unwrap();
    }

    #[test]
    fn a_data_dir_owned_by_someone_else_is_refused() {
        let Some(me) = current_uid() else { return };
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        if me != 0 {
            // Only root can give a directory away; elsewhere /proc/1 is a directory we do not own.
            let msg = ensure_data_dir(Path::new("/proc/1"))
                .unwrap_err()
                .to_string();
            assert!(msg.contains("uid") || msg.contains("accessible"), "{msg}");
            return;
        }
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let msg = ensure_data_dir(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("belongs to uid 65534"), "{msg}");
    }

    #[tokio::test]
    async fn the_database_and_its_journals_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let store = open_store(&config).await.unwrap();
        let mut tx = store.system().await.unwrap();
        tx.set_setup_token(None).await.unwrap();
        tx.commit().await.unwrap();
        for name in [SQLITE_FILE, "bulwark.db-wal", "bulwark.db-shm"] {
            let mode = std::fs::metadata(config.data_dir.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[test]
    fn a_file_in_place_of_the_data_dir_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(
            ensure_data_dir(f.path())
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
    }
}
