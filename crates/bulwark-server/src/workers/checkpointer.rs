//! Signs audit-log checkpoints at least every N events or T seconds per log, stores them, and
//! publishes each one outside the database (appended to a 0600 JSON Lines file, and posted to a
//! collector when `audit.publish_url` is set), because truncating a log's tail is detectable only
//! against a checkpoint the database cannot rewrite. A checkpoint is stored only once every
//! publication succeeded.
//!
//! Logs become due when events are appended to them (`note`). On start the system log is
//! checkpointed and every org log with events no checkpoint covers is found (a sweep that repeats
//! every checkpoint interval, for events appended by other replicas); on shutdown every log with
//! pending events is checkpointed.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_audit::checkpoint::NoteSigner;
use bulwark_core::CoreError;
use bulwark_core::audit::{self, Log};
use bulwark_core::ports::Store;
use bulwark_types::Clock;

/// Checkpointing policy and state.
pub struct Checkpointer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    signer: NoteSigner,
    origin_prefix: String,
    publish: Option<PathBuf>,
    sink: Option<HttpSink>,
    every_events: u64,
    every: Duration,
    pending: Mutex<HashMap<Log, (u64, Instant)>>,
    pruned: Mutex<HashMap<bulwark_types::OrgId, Instant>>,
    /// Since when each log has had events no checkpoint covers (as this process saw them).
    unsigned: Mutex<HashMap<Log, Instant>>,
    wake: tokio::sync::Notify,
    /// Pruning pauses while the license leaves the deployment read-only (nothing is deleted).
    licensing: std::sync::OnceLock<Arc<bulwark_core::licensing::Licensing>>,
}

/// A collector that receives each checkpoint over HTTP(S).
pub struct HttpSink {
    client: reqwest::Client,
    url: secrecy::SecretString,
    token: Option<secrecy::SecretString>,
}

impl HttpSink {
    /// A sink posting to `url` (already validated by the configuration).
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS roots).
    pub fn new(
        url: secrecy::SecretString,
        token: Option<secrecy::SecretString>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, url, token })
    }

    async fn send(&self, note: &str) -> Result<(), String> {
        use secrecy::ExposeSecret as _;
        let mut req = self
            .client
            .post(self.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bulwark_audit::export::checkpoint_line(note));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token.expose_secret());
        }
        // The error text of reqwest may repeat the URL, which may hold a secret: say less.
        let res = req
            .send()
            .await
            .map_err(|e| format!("audit.publish_url: request failed ({})", kind(&e)))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("audit.publish_url answered {}", res.status()))
        }
    }
}

fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    }
}

/// How often at most an org's log is pruned by retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Checkpointer {
    /// A checkpointer signing with `signer` for origins `<origin_prefix>/<log>`, publishing to a
    /// file and a collector, either optional.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        signer: NoteSigner,
        origin_prefix: String,
        (publish, sink): (Option<PathBuf>, Option<HttpSink>),
        every_events: u64,
        every: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            signer,
            origin_prefix,
            publish,
            sink,
            every_events: every_events.max(1),
            every,
            pending: Mutex::new(HashMap::new()),
            pruned: Mutex::new(HashMap::new()),
            unsigned: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            licensing: std::sync::OnceLock::new(),
        }
    }

    /// Pauses pruning while `licensing` says the deployment is read-only.
    pub fn pause_pruning_when_read_only(&self, licensing: Arc<bulwark_core::licensing::Licensing>) {
        let _ = self.licensing.set(licensing);
    }

    /// The verifier key of the checkpoint signatures (`name+id+key`).
    #[must_use]
    pub fn verifier_key(&self) -> String {
        self.signer.verifier().to_vkey()
    }

    /// The origin of `log`'s checkpoints.
    #[must_use]
    pub fn origin(&self, log: Log) -> String {
        format!("{}/{}", self.origin_prefix, log.name())
    }

    /// Records that `events` were committed to `log`.
    pub fn note(&self, log: Log, events: u64) {
        let due = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = pending.entry(log).or_insert((0, Instant::now()));
            entry.0 = entry.0.saturating_add(events);
            if events > 0 {
                self.unsigned
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(log)
                    .or_insert_with(Instant::now);
            }
            entry.0 >= self.every_events
        };
        if due {
            self.wake.notify_one();
        }
    }

    /// Signs, stores and publishes a checkpoint of `log` now, if it has new events.
    ///
    /// # Errors
    /// Storage or publication failures.
    pub async fn checkpoint_now(&self, log: Log) -> Result<Option<String>, CoreError> {
        // Published before the commit: if publishing fails nothing is stored and the next attempt
        // signs again; a published checkpoint whose row then failed to commit is still a true,
        // signed statement about the log's head.
        match log {
            Log::System => {
                let mut tx = self.store.system().await?;
                let note = audit::checkpoint(
                    &mut *tx,
                    log,
                    &self.signer,
                    &self.origin_prefix,
                    &*self.clock,
                )
                .await?;
                self.publish_note(note.as_deref()).await?;
                tx.commit().await?;
                self.signed(log, note.as_ref());
                Ok(note)
            }
            Log::Org(org) => {
                let mut tx = self.store.org(org).await?;
                let note = audit::checkpoint(
                    &mut *tx,
                    log,
                    &self.signer,
                    &self.origin_prefix,
                    &*self.clock,
                )
                .await?;
                self.publish_note(note.as_deref()).await?;
                tx.commit().await?;
                self.signed(log, note.as_ref());
                Ok(note)
            }
        }
    }

    async fn publish_note(&self, note: Option<&str>) -> Result<(), CoreError> {
        let Some(note) = note else { return Ok(()) };
        let fail = |e: &dyn std::fmt::Display| {
            bulwark_core::metrics::metrics()
                .audit_publication_failures
                .inc(&[]);
            tracing::error!(error = %e, "cannot publish an audit checkpoint outside the database");
            CoreError::Unavailable
        };
        self.publish(note).map_err(|e| fail(&e))?;
        if let Some(sink) = &self.sink {
            sink.send(note).await.map_err(|e| fail(&e))?;
        }
        Ok(())
    }

    fn publish(&self, note: &str) -> std::io::Result<()> {
        let Some(path) = &self.publish else {
            return Ok(());
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(format!("{}\n", bulwark_audit::export::checkpoint_line(note)).as_bytes())?;
        f.sync_data()
    }

    /// Notes a checkpoint of `log` stored (or none needed: the head was already covered).
    fn signed(&self, log: Log, note: Option<&String>) {
        if note.is_some() {
            bulwark_core::metrics::metrics().audit_checkpoints.inc(&[]);
        }
        self.unsigned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&log);
    }

    /// How long the oldest event this process appended has waited for a checkpoint (zero when
    /// none waits).
    #[must_use]
    pub fn oldest_unsigned_age(&self) -> Duration {
        self.unsigned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(Instant::elapsed)
            .max()
            .unwrap_or_default()
    }

    fn take_due(&self, all: bool) -> Vec<Log> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due: Vec<Log> = pending
            .iter()
            .filter(|(_, (n, since))| {
                all || *n >= self.every_events || since.elapsed() >= self.every
            })
            .map(|(log, _)| *log)
            .collect();
        for log in &due {
            pending.remove(log);
        }
        due
    }

    async fn flush(&self, all: bool) {
        for log in self.take_due(all) {
            if let Err(e) = self.checkpoint_now(log).await {
                tracing::error!(log = %log.name(), error = %e, "audit checkpoint failed; will retry");
                self.note(log, 0);
            } else if let Log::Org(org) = log
                && !all
            {
                self.prune_if_due(org).await;
            }
        }
    }

    /// Marks as due every org log with events no checkpoint covers: left by a crash before its
    /// checkpoint, or appended by another replica (whose own checkpointer may be gone).
    async fn sweep(&self) {
        match self.store.audit_unsigned_orgs().await {
            Ok(orgs) => {
                for org in orgs {
                    self.note(Log::Org(org), self.every_events);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list audit logs awaiting a checkpoint"),
        }
    }

    /// Applies `org`'s retention now, unless the license leaves the deployment read-only
    /// (then nothing is deleted: `Ok(0)`); the events pruned.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn prune_now(&self, org: bulwark_types::OrgId) -> Result<u64, CoreError> {
        if self
            .licensing
            .get()
            .is_some_and(|l| l.read_only(&*self.clock))
        {
            return Ok(0);
        }
        let pruned = audit::prune(&*self.store, &*self.clock, org).await?;
        if pruned > 0 {
            self.note(Log::Org(org), 1);
        }
        Ok(pruned)
    }

    /// Applies `org`'s retention, at most once per [`PRUNE_EVERY`] per process. Logs are pruned
    /// when they have activity; an idle log does not grow. Read-only mode takes no slot.
    async fn prune_if_due(&self, org: bulwark_types::OrgId) {
        if self
            .licensing
            .get()
            .is_some_and(|l| l.read_only(&*self.clock))
        {
            return;
        }
        {
            let mut last = self
                .pruned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.get(&org).is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
                return;
            }
            last.insert(org, Instant::now());
        }
        match self.prune_now(org).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(org = %org, events = n, "pruned audit event bodies past retention");
            }
            Err(e) => tracing::error!(org = %org, error = %e, "audit pruning failed"),
        }
    }

    /// Runs until `stop` resolves, then checkpoints every log with pending events.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        if let Err(e) = self.checkpoint_now(Log::System).await {
            tracing::error!(error = %e, "initial audit checkpoint failed");
        }
        self.sweep().await;
        tokio::pin!(stop);
        let tick = self
            .every
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(50));
        let sweep_every = self.every.max(Duration::from_secs(1));
        let mut swept = Instant::now();
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
            }
            if swept.elapsed() >= sweep_every {
                self.sweep().await;
                self.note(Log::System, 0);
                swept = Instant::now();
            }
            self.flush(false).await;
        }
        self.flush(true).await;
    }
}
