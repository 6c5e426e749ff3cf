//! Configuration: one typed struct, layered defaults → TOML file → `BULWARK_*` environment →
//! command-line flags. Unknown keys and wrong types are errors that name the key and where it came
//! from (file and line, or the environment variable). Secrets are typed and redacted on display.
//!
//! The environment layer (`BULWARK_*`, `__` for nesting, `…_FILE` for secrets) is in `env`, the
//! redacted display of a configuration in `redact`; the typed sections, loading and the
//! cross-field rules (each section checks itself) are here.

mod env;
mod redact;
mod sso;

pub use sso::SsoConfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use env::apply_env;
pub use redact::redacted_url;
use redact::{redact_required, redact_secret, redact_url};

/// Resolves a listen address: `IP:PORT` as it is, or `HOST:PORT` through the system resolver,
/// taking the first address it returns (`localhost` is `127.0.0.1` or `::1`, as `/etc/hosts`
/// and `/etc/gai.conf` order them).
///
/// # Errors
/// Not `HOST:PORT`, or a host name that does not resolve; the message names the value.
pub fn resolve_listen(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let not_host_port = || format!("`{value}` is not `HOST:PORT` or `IP:PORT`");
    let (host, port) = value.rsplit_once(':').ok_or_else(not_host_port)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(not_host_port());
    }
    match std::net::ToSocketAddrs::to_socket_addrs(value) {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("host name `{host}` resolves to no address")),
        Err(e) => Err(format!("cannot resolve host name `{host}` ({e})")),
    }
}

fn deserialize_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let value = String::deserialize(d)?;
    resolve_listen(&value).map_err(serde::de::Error::custom)
}

/// The whole configuration. Field docs are the reference (`docs/config-reference.md`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on: `IP:PORT`, or `HOST:PORT` with a host name (`localhost:8420`)
    /// resolved once when the configuration loads, taking the first address the system resolver
    /// returns. Default `127.0.0.1:8420`. In production a non-loopback address needs `[tls]`, or
    /// `behind_tls_proxy = true` with `http.trusted_proxies` (gate `tls.posture`).
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: SocketAddr,
    /// Directory for the SQLite database, the workspace seed and local state. Created 0700.
    pub data_dir: PathBuf,
    /// PostgreSQL URL of the application role; when unset, the embedded SQLite store is used.
    #[serde(serialize_with = "redact_url")]
    pub database_url: Option<SecretString>,
    /// Set when a TLS-terminating proxy sits in front; allows plain HTTP on a non-loopback address
    /// and sends `Strict-Transport-Security`.
    pub behind_tls_proxy: bool,
    /// Serve HTTPS directly (TLS 1.2 and 1.3 only).
    pub tls: Option<TlsConfig>,
    /// HTTP limits and CORS.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
    /// Database pool.
    pub database: DatabaseConfig,
    /// argon2id cost; floors at the OWASP minimum.
    pub passwords: PasswordConfig,
    /// `/.well-known/security.txt` (RFC 9116).
    pub security_txt: SecurityTxtConfig,
    /// Audit-log checkpoints.
    pub audit: AuditConfig,
    /// `[sessions]`: sign-in lifetimes.
    pub sessions: SessionsConfig,
    /// `[throttle]`: sign-in backoff and the per-address limit on unauthenticated routes.
    pub throttle: ThrottleConfig,
    /// `[mail]`: transactional email (invitations, verification, password reset).
    pub mail: MailConfig,
    /// `[signup]`: self-service account creation (off by default; invitations are the way in).
    pub signup: SignupConfig,
    /// `[rate_limits]`: token buckets for API keys and their orgs.
    pub rate_limits: RateLimitsConfig,
    /// `[vault]`: where the credential vault's key-encryption keys live, and the rewrap job.
    pub vault: VaultConfig,
    /// Where Bulwark may connect to (webhooks, ticket trackers).
    pub egress: EgressConfig,
    /// Outbound webhook delivery.
    pub webhooks: WebhooksConfig,
    /// `[license]`: offline licensing.
    pub license: LicenseConfig,
    /// `[sso]`
    pub sso: SsoConfig,
    /// `[backup]`: who backups are encrypted to, and scheduled backups (docs/backups.md).
    pub backup: BackupConfig,
    /// `[retention]`: how long ended sessions and closed invitations are kept
    /// (docs/deletion.md).
    pub retention: RetentionConfig,
    /// `[server]`: production or development (docs/doctor.md).
    pub server: ServerConfig,
    /// `[metrics]`: the Prometheus scrape listener (docs/metrics.md).
    pub metrics: MetricsConfig,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` (Prometheus text format) on `metrics.listen`. Default `false`.
    pub enabled: bool,
    /// The metrics listener's own address, never the public one. Default `127.0.0.1:9464`.
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: SocketAddr,
    /// Add an `org` label (the org id) to the series where one applies. Default `false`: one
    /// series per org multiplies the series by the number of orgs.
    pub per_org_labels: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            per_org_labels: false,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `production` (the default) or `development`. In production `serve` refuses to start while
    /// a check of `bulwark doctor` fails; development, which must be chosen here, turns those
    /// failures into warnings and shows a banner in the console and `mode` on `/readyz`.
    pub mode: Option<Mode>,
}

impl ServerConfig {
    /// The mode in force: development only when chosen.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or(Mode::Production)
    }
}

/// Whether failing checks refuse the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Failing checks refuse the start.
    Production,
    /// Failing checks are warnings; the console shows a banner.
    Development,
}

impl Mode {
    /// `production` or `development`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Development => "development",
        }
    }
}

/// A duration written as a positive number and a unit, `m`, `h` or `d` (`"30m"`, `"24h"`).
#[must_use]
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let s = text.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(secs)?))
}

/// Backups.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// `age` public keys (`age1…`) backups are encrypted to, when `backup create` is given none.
    /// Default none.
    pub recipients: Vec<String>,
    /// A file of such keys, one per line. Default none.
    pub recipients_file: Option<PathBuf>,
    /// Where the server writes scheduled backups (a directory it creates 0700). Default none:
    /// no scheduled backups.
    pub dir: Option<PathBuf>,
    /// How often a scheduled backup is written: a number and a unit, `m`, `h` or `d`
    /// (`"30m"`, `"6h"`, `"1d"`). Default `"1d"`.
    pub schedule: String,
    /// How many scheduled backups are kept; older ones are deleted after a new one verifies.
    /// Default 7.
    pub keep: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            recipients: Vec::new(),
            recipients_file: None,
            dir: None,
            schedule: "1d".into(),
            keep: 7,
        }
    }
}

impl BackupConfig {
    /// The schedule's period.
    #[must_use]
    pub fn every(&self) -> Option<std::time::Duration> {
        parse_duration(&self.schedule)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self
            .every()
            .is_none_or(|d| d < std::time::Duration::from_secs(300))
        {
            return invalid(
                "backup.schedule",
                "must be a number and a unit (m, h, d) of at least 5 minutes, like \"6h\" or \"1d\"",
            );
        }
        if self.keep == 0 {
            return invalid("backup.keep", "must be at least 1");
        }
        if self.dir.is_some() && self.recipients.is_empty() && self.recipients_file.is_none() {
            return invalid(
                "backup.dir",
                "needs backup.recipients or backup.recipients_file: scheduled backups are encrypted",
            );
        }
        Ok(())
    }
}

/// Retention of records that have served their purpose. Webhook messages keep
/// `webhooks.message_retention_days`; audit event bodies keep each org's audit retention.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a session is kept after it ended (revoked, expired, or unused since), 1–3650, with
    /// its address and user agent. Default 30.
    pub sessions_days: u32,
    /// Days an invitation is kept after it was accepted, withdrawn or expired, 1–3650, with
    /// the address it was sent to. Default 30.
    pub invitations_days: u32,
    /// How often `serve` applies retention: a number and a unit, `m`, `h` or `d`, at least 5
    /// minutes. Default `"6h"`.
    pub every: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sessions_days: 30,
            invitations_days: 30,
            every: "6h".into(),
        }
    }
}

impl RetentionConfig {
    /// The period between runs.
    #[must_use]
    pub fn period(&self) -> Option<std::time::Duration> {
        parse_duration(&self.every)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3650).contains(&self.sessions_days) {
            return invalid("retention.sessions_days", "must be 1 to 3650");
        }
        if !(1..=3650).contains(&self.invitations_days) {
            return invalid("retention.invitations_days", "must be 1 to 3650");
        }
        if self
            .period()
            .is_none_or(|d| d < std::time::Duration::from_secs(300))
        {
            return invalid(
                "retention.every",
                "must be a number and a unit (m, h, d) of at least 5 minutes, like \"6h\"",
            );
        }
        Ok(())
    }
}

/// Offline licensing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LicenseConfig {
    /// Ed25519 public keys (base64 of 32 bytes, as `bulwark license keygen` prints) trusted
    /// beside the vendor's compiled-in keys, for self-issued licenses (tests, evaluation).
    /// Default none.
    pub extra_public_keys: Vec<String>,
}

/// Outbound connections: https only, never to private, loopback, link-local or other special
/// addresses, unless listed here.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// When not empty, the deployment is default-deny: only these hosts (`hooks.example.com`,
    /// `*.example.com` for subdomains, or an IP literal) may be called.
    pub allow_hosts: Vec<String>,
    /// Networks (CIDR) that may be called although they are private or otherwise special, e.g.
    /// an on-premises tracker at `10.20.0.0/16` — only by the hosts in `internal_hosts`.
    pub allow_networks: Vec<String>,
    /// The hosts that may resolve into `allow_networks` (`jira.corp.example`, `*.corp.example`,
    /// or an IP literal).
    pub internal_hosts: Vec<String>,
    /// Whether webhook endpoints may also use `allow_networks` (default false: the listed
    /// networks are for ticket trackers, which the operator configures; webhook URLs are set by
    /// any org's admins).
    pub allow_networks_for_webhooks: bool,
    /// Allow `http://` destinations. Default false.
    pub allow_http: bool,
    /// Loopback ports that may be called (a local relay, tests' receivers): `127.0.0.1:9000`,
    /// `[::1]:9000` or `localhost:9000`; every other loopback port stays closed, and Bulwark's
    /// own listen port is refused. Default none. (`false` means none; `true`, which opened every
    /// loopback port, is refused.)
    #[serde(deserialize_with = "loopback_ports")]
    pub allow_loopback: Vec<String>,
}

/// `egress.allow_loopback`: a list of `host:port` entries (checked in `EgressConfig::validate`);
/// `false` is read as none, and `true` (every loopback port, before entries existed) is refused.
fn loopback_ports<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match toml::Value::deserialize(d) {
        Ok(toml::Value::Boolean(false)) => Ok(Vec::new()),
        Ok(toml::Value::Boolean(true)) => Err(serde::de::Error::custom(
            "`true` would open every loopback port, including Bulwark's own: list the ports, \
             e.g. allow_loopback = [\"127.0.0.1:9000\"]",
        )),
        Ok(toml::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s),
                _ => Err(serde::de::Error::custom(
                    "must list `host:port` strings, e.g. [\"127.0.0.1:9000\"]",
                )),
            })
            .collect(),
        _ => Err(serde::de::Error::custom(
            "must list `host:port` strings, e.g. [\"127.0.0.1:9000\"]",
        )),
    }
}

impl EgressConfig {
    /// The policy for webhook deliveries: [`Self::policy`] without the listed networks unless
    /// `allow_networks_for_webhooks`.
    #[must_use]
    pub fn webhook_policy(&self) -> bulwark_core::egress::EgressPolicy {
        let mut policy = self.policy();
        if !self.allow_networks_for_webhooks {
            policy.allow_networks.clear();
        }
        policy
    }

    /// The policy the egress client enforces (the config is validated first).
    #[must_use]
    pub fn policy(&self) -> bulwark_core::egress::EgressPolicy {
        bulwark_core::egress::EgressPolicy {
            allow_http: self.allow_http,
            allow_loopback: self
                .allow_loopback
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
            allow_hosts: self.allow_hosts.clone(),
            internal_hosts: self.internal_hosts.clone(),
            allow_networks: self
                .allow_networks
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

/// Webhook delivery.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Run the delivery workers in this process. Default true.
    pub deliver: bool,
    /// Deliveries in flight at once from this process (1–4096). Default 64.
    pub concurrency: u32,
    /// One attempt's time limit, connect to last byte, in milliseconds (100–120000). Default
    /// 15000.
    pub timeout_ms: u64,
    /// Response bytes read from a receiver at most (1024–1048576); the attempt log keeps the
    /// first KiB. Default 65536.
    pub max_response_bytes: usize,
    /// Delays before each retry, in milliseconds (1–20 entries). Default 5 s, 5 min, 30 min,
    /// 2 h, 5 h, 10 h: a delivery fails after 7 attempts over about 18 hours.
    pub retry_schedule_ms: Vec<u64>,
    /// Each delay is moved by up to this fraction at random (0–0.5). Default 0.2.
    pub retry_jitter: f64,
    /// An endpoint is disabled after this many failed attempts in a row (1–100000)…
    pub disable_after_failures: u32,
    /// …spanning at least this many seconds (0–2592000). Default 20 and one day.
    pub disable_after_secs: u64,
    /// Milliseconds between looks for due deliveries when idle (10–60000). Default 200.
    pub poll_interval_ms: u64,
    /// Days messages and their attempt log are kept for replay (1–30; never longer than the
    /// shortest audit retention, so a message never outlives its audit event). Default 30.
    pub message_retention_days: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            deliver: true,
            concurrency: 64,
            timeout_ms: 15_000,
            max_response_bytes: 64 * 1024,
            retry_schedule_ms: vec![5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000],
            retry_jitter: 0.2,
            disable_after_failures: 20,
            disable_after_secs: 24 * 3600,
            poll_interval_ms: 200,
            message_retention_days: 30,
        }
    }
}

/// The credential vault.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultConfig {
    /// `seed` (default: KEKs derived from the workspace seed) or `pkcs11` (KEKs generated on and
    /// never leaving a PKCS#11 token; needs `[vault.pkcs11]`).
    pub provider: VaultProvider,
    /// The PKCS#11 token.
    pub pkcs11: Option<Pkcs11Config>,
    /// Credentials the rewrap job moves per transaction (1–10000). Default 100.
    pub rewrap_batch: u32,
    /// Seconds between the rewrap job's looks for work (1–3600). Default 5.
    pub rewrap_interval_secs: u64,
    /// Milliseconds the rewrap job rests between batches, to bound its load (0–60000).
    /// Default 0.
    pub rewrap_pause_ms: u64,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            provider: VaultProvider::Seed,
            pkcs11: None,
            rewrap_batch: 100,
            rewrap_interval_secs: 5,
            rewrap_pause_ms: 0,
        }
    }
}

/// Where the vault's KEKs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultProvider {
    /// Derived from the workspace seed.
    Seed,
    /// On a PKCS#11 token.
    Pkcs11,
}

/// A PKCS#11 token holding the vault's KEKs (labels `<key_label_prefix>-v<version>`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The vendor's PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the initialised token.
    pub token: String,
    /// The user PIN (prefer `BULWARK_VAULT__PKCS11__PIN_FILE`).
    #[serde(serialize_with = "redact_required", deserialize_with = "pin_value")]
    pub pin: SecretString,
    /// Prefix of the KEK labels. Default `bulwark-kek`.
    #[serde(default = "default_kek_prefix")]
    pub key_label_prefix: String,
}

fn default_kek_prefix() -> String {
    "bulwark-kek".into()
}

/// API-key rate limits: a token bucket per key and one per org (all its keys together); a
/// request takes a token from each. Shared by every replica on PostgreSQL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Requests a second one key may make, sustained (1–1000000). Default 50.
    pub per_key_per_sec: u32,
    /// How many a key may make at once before the rate applies (≥ the rate). Default 100.
    pub per_key_burst: u32,
    /// Requests a second all of an org's keys may make together. Default 500.
    pub per_org_per_sec: u32,
    /// The org's burst (≥ its rate). Default 1000.
    pub per_org_burst: u32,
    /// Each replica answers a key it read from memory for at most this many seconds (0–5). A
    /// revocation or rotation through this replica drops it at once; through another replica
    /// it takes effect within this time. Default 2; 0 reads the database on every request.
    pub key_cache_secs: u64,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            per_key_per_sec: 50,
            per_key_burst: 100,
            per_org_per_sec: 500,
            per_org_burst: 1000,
            key_cache_secs: 2,
        }
    }
}

impl RateLimitsConfig {
    /// The per-key bucket.
    #[must_use]
    pub fn per_key(&self) -> bulwark_core::rate::Bucket {
        bulwark_core::rate::Bucket {
            per_sec: f64::from(self.per_key_per_sec),
            burst: f64::from(self.per_key_burst),
        }
    }

    /// The per-org bucket.
    #[must_use]
    pub fn per_org(&self) -> bulwark_core::rate::Bucket {
        bulwark_core::rate::Bucket {
            per_sec: f64::from(self.per_org_per_sec),
            burst: f64::from(self.per_org_burst),
        }
    }
}

/// Self-service sign-up.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupConfig {
    /// Let anyone create an (unverified, org-less) account with `POST /v1/auth/signup`.
    /// Default `false`.
    pub enabled: bool,
}

/// Transactional email.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// The `From:` address. Default `bulwark@localhost.localdomain`.
    pub from: String,
    /// An SMTP relay; without one, messages go to `<data_dir>/outbox/`.
    pub smtp: Option<SmtpConfig>,
    /// At least this long between two password-reset (or two verification) emails to one
    /// account; requests in between answer as usual and send nothing. Default 300 (1–86400).
    pub token_cooldown_secs: u64,
    /// At most this many password-reset (and as many verification) emails to one account in
    /// 24 hours. Default 5 (1–100).
    pub token_daily_limit: u32,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: "bulwark@localhost.localdomain".into(),
            smtp: None,
            token_cooldown_secs: 300,
            token_daily_limit: 5,
        }
    }
}

impl MailConfig {
    /// The per-account limits on token emails.
    #[must_use]
    pub fn token_policy(&self) -> bulwark_core::mail_jobs::MailPolicy {
        bulwark_core::mail_jobs::MailPolicy {
            cooldown: std::time::Duration::from_secs(self.token_cooldown_secs),
            per_day: self.token_daily_limit,
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only to a relay on loopback.
    None,
}

/// An SMTP relay.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name (also the name its certificate must carry).
    pub host: String,
    /// Port. Default 587.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls`, or `none` (loopback only).
    #[serde(default = "default_smtp_security")]
    pub security: SmtpSecurity,
    /// User name for SMTP AUTH.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for SMTP AUTH.
    #[serde(default, serialize_with = "redact_secret")]
    pub password: Option<SecretString>,
    /// With `security = "none"`, send the user name and password (`AUTH PLAIN`) without TLS to
    /// the loopback relay. Default false: `none` with credentials is refused at start.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// A PEM file of CA certificates to trust in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds before a connection or command gives up. Default 10.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

fn default_smtp_timeout() -> u64 {
    10
}

/// Sign-in throttling and the per-address request limit on unauthenticated routes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Wrong passwords or codes per account (sign-in, MFA, re-authentication) before backoff
    /// starts. Default 5.
    pub account_free_failures: u32,
    /// Wrong passwords, codes, tokens or API keys per client address (IPv6: per /64) before
    /// backoff starts. Default 20.
    pub address_free_failures: u32,
    /// The longest backoff, in seconds. Default 900.
    pub max_delay_secs: u32,
    /// Failures older than this many seconds are forgotten. Default 3600.
    pub forget_after_secs: u32,
    /// Requests per minute one client address may make to unauthenticated routes (sign-in,
    /// MFA verification, setup, password reset). Default 120; this counter is per process.
    pub unauthenticated_per_minute: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        let p = bulwark_core::throttle::ThrottlePolicy::default();
        Self {
            account_free_failures: p.account_free,
            address_free_failures: p.address_free,
            max_delay_secs: u32::try_from(p.max_delay.whole_seconds()).unwrap_or(900),
            forget_after_secs: u32::try_from(p.forget_after.whole_seconds()).unwrap_or(3600),
            unauthenticated_per_minute: 120,
        }
    }
}

impl ThrottleConfig {
    /// As the domain's policy.
    #[must_use]
    pub fn policy(&self) -> bulwark_core::throttle::ThrottlePolicy {
        bulwark_core::throttle::ThrottlePolicy {
            account_free: self.account_free_failures,
            address_free: self.address_free_failures,
            max_delay: time::Duration::seconds(i64::from(self.max_delay_secs)),
            forget_after: time::Duration::seconds(i64::from(self.forget_after_secs)),
        }
    }
}

/// Session lifetimes (deployment-wide).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// A session ends after this many seconds without a request. Default 1800 (30 min).
    pub idle_timeout_secs: u64,
    /// A session ends this many seconds after sign-in, whatever the activity. Default 43200
    /// (12 h).
    pub absolute_timeout_secs: u64,
    /// Each replica answers a session it accepted from memory for at most this many seconds
    /// (0 to 5). A revocation, a disabled account or an MFA change made through this replica
    /// (or, on PostgreSQL, through any replica) voids the cache at once; this bounds only what
    /// the replica cannot hear of, such as a CLI command on the same SQLite file. Default 2;
    /// 0 reads the database on every request.
    pub cache_secs: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 30 * 60,
            absolute_timeout_secs: 12 * 3600,
            cache_secs: 2,
        }
    }
}

impl SessionsConfig {
    /// As the domain's policy.
    #[must_use]
    pub fn policy(&self) -> bulwark_core::session::SessionPolicy {
        let secs = |s: u64| time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        bulwark_core::session::SessionPolicy {
            idle: secs(self.idle_timeout_secs),
            absolute: secs(self.absolute_timeout_secs),
        }
    }
}

/// Audit-log checkpointing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Sign a checkpoint once a log has this many new events. Default 1000.
    pub checkpoint_every_events: u64,
    /// ...or once its oldest unsigned event is this old. Default 60 s.
    pub checkpoint_every_secs: u64,
    /// Where checkpoints are published outside the database (JSON Lines, 0600). Default
    /// `<data_dir>/audit-checkpoints.jsonl`.
    pub publish_file: Option<PathBuf>,
    /// Also publish each checkpoint to this URL (a SIEM or log collector): `POST` of
    /// `{"checkpoint": "<signed note>"}`, which must answer 2xx within 10 s before the checkpoint
    /// is stored. `https://`, or `http://` to a loopback address only.
    #[serde(serialize_with = "redact_url")]
    pub publish_url: Option<SecretString>,
    /// Sent as `Authorization: Bearer <token>` to `publish_url` (e.g. a collector's ingest token).
    #[serde(serialize_with = "redact_secret")]
    pub publish_token: Option<SecretString>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every_events: 1000,
            checkpoint_every_secs: 60,
            publish_file: None,
            publish_url: None,
            publish_token: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8420)),
            data_dir: PathBuf::from("./bulwark-data"),
            database_url: None,
            behind_tls_proxy: false,
            tls: None,
            http: HttpConfig::default(),
            log: LogConfig::default(),
            database: DatabaseConfig::default(),
            passwords: PasswordConfig::default(),
            security_txt: SecurityTxtConfig::default(),
            audit: AuditConfig::default(),
            sessions: SessionsConfig::default(),
            throttle: ThrottleConfig::default(),
            mail: MailConfig::default(),
            signup: SignupConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            vault: VaultConfig::default(),
            egress: EgressConfig::default(),
            webhooks: WebhooksConfig::default(),
            license: LicenseConfig::default(),
            sso: SsoConfig::default(),
            backup: BackupConfig::default(),
            retention: RetentionConfig::default(),
            server: ServerConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Certificate and key for direct TLS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

/// HTTP limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted; larger gets 413. Default 1 MiB.
    pub body_limit_bytes: usize,
    /// Time allowed for a whole request; longer gets 408. Default 30 s.
    pub request_timeout_secs: u64,
    /// Largest request head (request line and headers); larger closes with 431. Default 16 KiB,
    /// minimum 8 KiB.
    pub max_header_bytes: usize,
    /// Origins allowed to call the API from a browser (`https://app.example.com`). Default none.
    pub cors_allowed_origins: Vec<String>,
    /// Time in-flight requests get to finish after SIGTERM. Default 30 s.
    pub shutdown_grace_secs: u64,
    /// Reverse proxies (addresses or CIDR blocks, `10.0.0.0/8`) whose `X-Forwarded-For` is
    /// believed: for a request from one of them, the client is the nearest address in that
    /// header that is not a trusted proxy. Default none: the header is ignored and the client is
    /// the TCP peer. The client address keys sign-in throttling and is recorded in audit events.
    pub trusted_proxies: Vec<String>,
    /// Time a client has to send a request head (from connecting, or from its first byte after
    /// the previous request), and to finish a TLS handshake; a connection over it is closed,
    /// however slowly its bytes trickle in. Default 10 s, 1–300.
    pub header_read_timeout_secs: u64,
    /// Time a connection may stay open with no request in flight and no traffic (keep-alive,
    /// HTTP/2) before it is closed. Default 60 s, 1–3600.
    pub idle_timeout_secs: u64,
    /// Connections open at once, in all; more are closed as soon as they are accepted, with a
    /// warning in the log (at most one per 10 s). Keep it below the process's open-file limit.
    /// Default 512, 1–1000000.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client: its /64); more are
    /// closed as soon as they are accepted, with a warning. `trusted_proxies` are exempt (they
    /// carry many clients). Default 64, 1 to `max_connections`.
    pub max_connections_per_ip: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            max_header_bytes: 16 * 1024,
            cors_allowed_origins: Vec::new(),
            shutdown_grace_secs: 30,
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 512,
            max_connections_per_ip: 64,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto` (text on a terminal, JSON otherwise), `json` or `text`.
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `info,bulwark_server=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Database pool settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Connections in the pool. Default 16.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
        }
    }
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Memory in KiB (≥ 19456).
    pub m_cost_kib: u32,
    /// Iterations (≥ 2).
    pub t_cost: u32,
    /// Parallelism (≥ 1).
    pub p_cost: u32,
    /// Shortest new password for an account without MFA (≥ 8). Default 15.
    pub min_chars: usize,
    /// Shortest new password once MFA is enrolled (≥ 8). Default 8.
    pub min_chars_with_mfa: usize,
    /// Longest password (64–256). Default 256.
    pub max_chars: usize,
    /// Lowest accepted zxcvbn strength score (0–4). Default 3.
    pub min_strength: u8,
    /// Require a lowercase, an uppercase, a digit and a symbol in new passwords. Default off
    /// (NIST SP 800-63B advises against composition rules).
    pub composition: bool,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        let p = bulwark_crypto::PasswordParams::OWASP_MIN;
        let policy = bulwark_core::password_policy::PasswordPolicy::default();
        Self {
            m_cost_kib: p.m_cost_kib,
            t_cost: p.t_cost,
            p_cost: p.p_cost,
            min_chars: policy.min_chars_password_only,
            min_chars_with_mfa: policy.min_chars_with_mfa,
            max_chars: policy.max_chars,
            min_strength: policy.min_strength,
            composition: policy.composition,
        }
    }
}

impl PasswordConfig {
    /// As the crypto crate's parameters.
    #[must_use]
    pub fn params(&self) -> bulwark_crypto::PasswordParams {
        bulwark_crypto::PasswordParams {
            m_cost_kib: self.m_cost_kib,
            t_cost: self.t_cost,
            p_cost: self.p_cost,
        }
    }

    /// The rules for new passwords.
    #[must_use]
    pub fn policy(&self) -> bulwark_core::password_policy::PasswordPolicy {
        bulwark_core::password_policy::PasswordPolicy {
            min_chars_password_only: self.min_chars,
            min_chars_with_mfa: self.min_chars_with_mfa,
            max_chars: self.max_chars,
            min_strength: self.min_strength,
            composition: self.composition,
        }
    }
}

/// RFC 9116 fields. The file is served only when `contact` is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityTxtConfig {
    /// `Contact:` URIs (`mailto:security@example.com`, `https://…`).
    pub contact: Vec<String>,
    /// `Expires:` as RFC 3339; default one year after start.
    pub expires: Option<String>,
    /// `Policy:` URI.
    pub policy: Option<String>,
    /// `Preferred-Languages:` e.g. `en, de`.
    pub preferred_languages: Option<String>,
}

/// A PIN as a string, or digits written as a TOML integer (an all-digit PIN in the environment
/// arrives as one). Anything else is refused with a message that does not repeat the value.
fn pin_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    match toml::Value::deserialize(d) {
        Ok(toml::Value::String(s)) => Ok(SecretString::from(s)),
        Ok(toml::Value::Integer(i)) => Ok(SecretString::from(i.to_string())),
        _ => Err(serde::de::Error::custom(
            "must be a string (the value is not shown)",
        )),
    }
}

/// Flag values given on the command line; they win over file and environment.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<SecretString>,
}

/// A configuration error; the CLI exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for our schema.
    #[error("invalid configuration in `{path}`{location}: {message}")]
    File {
        /// The file.
        path: String,
        /// ` at line L, column C`, when known.
        location: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// An environment variable is unknown or has a bad value.
    #[error("invalid configuration from environment variable `{var}`: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A rule across fields failed.
    #[error("invalid configuration: `{key}` {message}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A rule across fields failed, with a configuration file loaded.
    #[error("invalid configuration in `{path}` or its BULWARK_* overrides: `{key}` {message}")]
    InvalidIn {
        /// The file.
        path: String,
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Loads defaults, then `file` (if any), then `BULWARK_*` variables from `env`, then flags.
    ///
    /// # Errors
    /// Any unreadable file, unknown key, wrong type or failed cross-field rule.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        for (var, value) in env {
            apply_env(&mut table, &var, &value)?;
        }
        let mut config: Self =
            Self::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
                // The file alone parsed, so the problem came from the environment.
                ConfigError::Env {
                    var: "BULWARK_*".into(),
                    message: e.message().to_owned(),
                }
            })?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(dir) = overrides.data_dir {
            config.data_dir = dir;
        }
        if overrides.database_url.is_some() {
            config.database_url = overrides.database_url;
        }
        config.validate().map_err(|e| match (e, file) {
            (ConfigError::Invalid { key, message }, Some(path)) => ConfigError::InvalidIn {
                path: path.display().to_string(),
                key,
                message,
            },
            (e, _) => e,
        })?;
        Ok(config)
    }

    /// Cross-field rules, section by section (each section checks itself; the first failure is
    /// reported, naming its key).
    fn validate(&self) -> Result<(), ConfigError> {
        // A non-loopback address without TLS is a production gate (`tls.posture`), not a
        // configuration error: development may choose it.
        self.http.validate()?;
        self.log.validate()?;
        self.database.validate()?;
        self.passwords.validate()?;
        let mut own = vec![self.listen];
        if self.metrics.enabled {
            let (m, l) = (self.metrics.listen, self.listen);
            let same_port = m.port() == l.port() && m.port() != 0;
            if same_port && (m.ip() == l.ip() || m.ip().is_unspecified() || l.ip().is_unspecified())
            {
                return invalid(
                    "metrics.listen",
                    "must differ from `listen`: metrics are never served on the public port",
                );
            }
            own.push(self.metrics.listen);
        }
        self.egress.validate(&own)?;
        self.webhooks.validate()?;
        self.license.validate()?;
        self.sso.validate()?;
        self.vault.validate()?;
        self.mail.validate()?;
        self.throttle.validate()?;
        self.sessions.validate()?;
        self.rate_limits.validate()?;
        self.audit.validate()?;
        self.backup.validate()?;
        self.retention.validate()?;
        if let Some(url) = &self.database_url {
            let u = url.expose_secret();
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                return invalid("database_url", "must be a postgres:// URL");
            }
        }
        self.security_txt.validate()
    }
}

/// A failed rule: the key at fault and what is wrong with it.
fn invalid(key: &'static str, message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        message: message.into(),
    })
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.body_limit_bytes == 0 {
            return invalid("http.body_limit_bytes", "must be greater than 0");
        }
        if self.request_timeout_secs == 0 {
            return invalid("http.request_timeout_secs", "must be greater than 0");
        }
        if self.max_header_bytes < 8192 {
            return invalid("http.max_header_bytes", "must be at least 8192");
        }
        self.validate_connections()?;
        for proxy in &self.trusted_proxies {
            if crate::client_ip::Net::parse(proxy).is_none() {
                return Err(ConfigError::Invalid {
                    key: "http.trusted_proxies",
                    message: format!(
                        "has `{proxy}`, which is not an IP address or CIDR block like `10.0.0.0/8`"
                    ),
                });
            }
        }
        for origin in &self.cors_allowed_origins {
            if !is_origin(origin) {
                return Err(ConfigError::Invalid {
                    key: "http.cors_allowed_origins",
                    message: format!(
                        "has `{origin}`, which is not an origin like `https://app.example.com`"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Cross-field rules.
    fn validate_connections(&self) -> Result<(), ConfigError> {
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return invalid("http.header_read_timeout_secs", "must be 1 to 300");
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            return invalid("http.idle_timeout_secs", "must be 1 to 3600");
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return invalid("http.max_connections", "must be 1 to 1000000");
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_ip) {
            return invalid(
                "http.max_connections_per_ip",
                format!(
                    "must be 1 to http.max_connections ({})",
                    self.max_connections
                ),
            );
        }
        Ok(())
    }
}

impl LogConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            return invalid(
                "log.level",
                "is not a valid filter such as `info` or `warn,bulwark=debug`",
            );
        }
        Ok(())
    }
}

impl DatabaseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return invalid("database.max_connections", "must be greater than 0");
        }
        Ok(())
    }
}

impl PasswordConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.params().validate().is_err() {
            return invalid(
                "passwords",
                "is below the OWASP minimum (m_cost_kib ≥ 19456, t_cost ≥ 2, p_cost ≥ 1)",
            );
        }
        if let Err(bulwark_core::CoreError::Validation { field, message }) =
            self.policy().validate()
        {
            let key = match field {
                "min_chars_password_only" => "passwords.min_chars",
                "min_chars_with_mfa" => "passwords.min_chars_with_mfa",
                "max_chars" => "passwords.max_chars",
                _ => "passwords.min_strength",
            };
            return invalid(key, message);
        }
        Ok(())
    }
}

impl EgressConfig {
    /// `listen` is Bulwark's own address, which `allow_loopback` may not open.
    fn validate(&self, own: &[SocketAddr]) -> Result<(), ConfigError> {
        for (key, host) in self
            .allow_hosts
            .iter()
            .map(|h| ("egress.allow_hosts", h))
            .chain(
                self.internal_hosts
                    .iter()
                    .map(|h| ("egress.internal_hosts", h)),
            )
        {
            if !bulwark_core::egress::valid_host_entry(host) {
                return invalid(
                    key,
                    format!(
                        "has `{host}`, which is not a lowercase host name, `*.` and one, or an IP address"
                    ),
                );
            }
        }
        for entry in &self.allow_loopback {
            let port = entry
                .parse::<bulwark_core::egress::LoopbackPort>()
                .map_err(|why| ConfigError::Invalid {
                    key: "egress.allow_loopback",
                    message: format!("has `{entry}`, which {why}"),
                })?;
            let ours = own.iter().any(|listen| {
                (listen.ip().is_loopback() || listen.ip().is_unspecified())
                    && port.port() == listen.port()
            });
            if ours {
                return invalid(
                    "egress.allow_loopback",
                    format!(
                        "has `{entry}`, which is one of Bulwark's own listen ports: it is never called"
                    ),
                );
            }
        }
        for net in &self.allow_networks {
            if net.parse::<bulwark_core::egress::Network>().is_err() {
                return invalid(
                    "egress.allow_networks",
                    format!(
                        "has `{net}`, which is not an address or CIDR range like `10.20.0.0/16`"
                    ),
                );
            }
        }
        Ok(())
    }
}

impl WebhooksConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&'static str, bool, &str); 9] = [
            (
                "webhooks.message_retention_days",
                (1..=30).contains(&self.message_retention_days),
                "must be 1 to 30",
            ),
            (
                "webhooks.concurrency",
                (1..=4096).contains(&self.concurrency),
                "must be 1 to 4096",
            ),
            (
                "webhooks.timeout_ms",
                (100..=120_000).contains(&self.timeout_ms),
                "must be 100 to 120000",
            ),
            (
                "webhooks.max_response_bytes",
                (1024..=1_048_576).contains(&self.max_response_bytes),
                "must be 1024 to 1048576",
            ),
            (
                "webhooks.retry_schedule_ms",
                (1..=20).contains(&self.retry_schedule_ms.len())
                    && self
                        .retry_schedule_ms
                        .iter()
                        .all(|d| (1..=7 * 86_400_000).contains(d)),
                "must list 1 to 20 delays of 1 ms to 7 days",
            ),
            (
                "webhooks.retry_jitter",
                (0.0..=0.5).contains(&self.retry_jitter),
                "must be 0 to 0.5",
            ),
            (
                "webhooks.disable_after_failures",
                (1..=100_000).contains(&self.disable_after_failures),
                "must be 1 to 100000",
            ),
            (
                "webhooks.disable_after_secs",
                self.disable_after_secs <= 2_592_000,
                "must be at most 2592000 (30 days)",
            ),
            (
                "webhooks.poll_interval_ms",
                (10..=60_000).contains(&self.poll_interval_ms),
                "must be 10 to 60000",
            ),
        ];
        for (key, ok, message) in checks {
            if !ok {
                return invalid(key, message);
            }
        }
        Ok(())
    }
}

impl LicenseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Err(i) = bulwark_core::licensing::parse_public_keys(&self.extra_public_keys) {
            return Err(ConfigError::Invalid {
                key: "license.extra_public_keys",
                message: format!(
                    "entry {} is not an Ed25519 public key (base64 of 32 bytes)",
                    i + 1
                ),
            });
        }
        Ok(())
    }
}

impl VaultConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.rewrap_batch) {
            return invalid("vault.rewrap_batch", "must be 1 to 10000");
        }
        if !(1..=3600).contains(&self.rewrap_interval_secs) {
            return invalid("vault.rewrap_interval_secs", "must be 1 to 3600");
        }
        if self.rewrap_pause_ms > 60_000 {
            return invalid("vault.rewrap_pause_ms", "must be at most 60000");
        }
        match (&self.provider, &self.pkcs11) {
            (VaultProvider::Pkcs11, None) => {
                return invalid(
                    "vault.pkcs11",
                    "is missing: provider = \"pkcs11\" needs module, token and pin",
                );
            }
            (VaultProvider::Pkcs11, Some(p))
                if p.key_label_prefix.is_empty()
                    || p.key_label_prefix.len() > 40
                    || !p
                        .key_label_prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                return invalid(
                    "vault.pkcs11.key_label_prefix",
                    "must be 1 to 40 letters, digits, `-` or `_`",
                );
            }
            _ => {}
        }
        Ok(())
    }
}

impl MailConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.from.parse::<bulwark_types::Email>().is_err() {
            return invalid("mail.from", "is not an email address");
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate()?;
        }
        if !(1..=86_400).contains(&self.token_cooldown_secs) {
            return invalid("mail.token_cooldown_secs", "must be between 1 and 86400");
        }
        if !(1..=100).contains(&self.token_daily_limit) {
            return invalid("mail.token_daily_limit", "must be between 1 and 100");
        }
        Ok(())
    }
}

impl SmtpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let loopback = matches!(
            self.host.as_str(),
            "localhost" | "127.0.0.1" | "::1" | "[::1]"
        );
        if self.security == SmtpSecurity::None && !loopback {
            return invalid(
                "mail.smtp.security",
                "is `none`, which is allowed only to a relay on loopback: use `starttls` or `tls`",
            );
        }
        if self.host.is_empty() || self.host.contains(['/', ' ', '\r', '\n']) {
            return invalid("mail.smtp.host", "is not a host name");
        }
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return invalid("mail.smtp.timeout_secs", "must be between 1 and 300");
        }
        if self.password.is_some() && self.username.is_none() {
            return invalid("mail.smtp.username", "is needed with mail.smtp.password");
        }
        let credentials = self.username.is_some() || self.password.is_some();
        if self.security == SmtpSecurity::None && credentials && !self.allow_plaintext_auth {
            return invalid(
                "mail.smtp.security",
                "is `none`, which would send mail.smtp.username and password in clear: use \
                 `starttls` or `tls`, remove the credentials, or set \
                 mail.smtp.allow_plaintext_auth = true",
            );
        }
        if self.allow_plaintext_auth && self.security != SmtpSecurity::None {
            return invalid(
                "mail.smtp.allow_plaintext_auth",
                "applies only with security = \"none\"",
            );
        }
        Ok(())
    }
}

impl ThrottleConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("throttle.account_free_failures", self.account_free_failures),
            ("throttle.address_free_failures", self.address_free_failures),
            ("throttle.max_delay_secs", self.max_delay_secs),
            ("throttle.forget_after_secs", self.forget_after_secs),
            (
                "throttle.unauthenticated_per_minute",
                self.unauthenticated_per_minute,
            ),
        ] {
            if value == 0 {
                return invalid(key, "must be greater than 0");
            }
        }
        if self.forget_after_secs < self.max_delay_secs {
            return invalid(
                "throttle.forget_after_secs",
                "must be at least throttle.max_delay_secs",
            );
        }
        Ok(())
    }
}

impl SessionsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(120..=86_400).contains(&self.idle_timeout_secs) {
            return invalid(
                "sessions.idle_timeout_secs",
                "must be between 120 (2 minutes) and 86400 (1 day)",
            );
        }
        if self.absolute_timeout_secs < self.idle_timeout_secs
            || self.absolute_timeout_secs > 30 * 86_400
        {
            return invalid(
                "sessions.absolute_timeout_secs",
                "must be at least sessions.idle_timeout_secs and at most 2592000 (30 days)",
            );
        }
        if self.cache_secs > bulwark_core::session_cache::MAX_TTL.as_secs() {
            return invalid("sessions.cache_secs", "must be between 0 and 5");
        }
        Ok(())
    }
}

impl RateLimitsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.key_cache_secs > bulwark_core::apikeys::MAX_CACHE_TTL.as_secs() {
            return invalid("rate_limits.key_cache_secs", "must be between 0 and 5");
        }
        for (rate_key, rate, burst_key, burst) in [
            (
                "rate_limits.per_key_per_sec",
                self.per_key_per_sec,
                "rate_limits.per_key_burst",
                self.per_key_burst,
            ),
            (
                "rate_limits.per_org_per_sec",
                self.per_org_per_sec,
                "rate_limits.per_org_burst",
                self.per_org_burst,
            ),
        ] {
            if !(1..=1_000_000).contains(&rate) {
                return invalid(rate_key, "must be between 1 and 1000000");
            }
            if burst < rate || burst > 10_000_000 {
                return invalid(burst_key, "must be at least the rate and at most 10000000");
            }
        }
        Ok(())
    }
}

impl AuditConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.publish_url
            && !is_publish_url(url.expose_secret())
        {
            return invalid(
                "audit.publish_url",
                "must be an https:// URL, or http:// to a loopback address (127.0.0.1, [::1], localhost)",
            );
        }
        Ok(())
    }
}

impl SecurityTxtConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(exp) = &self.expires
            && time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            return invalid("security_txt.expires", "must be an RFC 3339 date-time");
        }
        Ok(())
    }
}

fn is_publish_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    match scheme {
        "https" => !host.is_empty(),
        "http" => {
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

fn is_origin(s: &str) -> bool {
    let Some((scheme, host)) = s.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && !host.contains(['/', '?', '#', '@', '*', ' '])
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    // Parse against the schema first: this is what yields "unknown field" and type errors with
    // the line of the offending key.
    if let Err(e) = toml::from_str::<Config>(&text) {
        return Err(file_error(&shown, &text, &e));
    }
    toml::from_str::<toml::Table>(&text).map_err(|e| file_error(&shown, &text, &e))
}

fn file_error(path: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let location = e.span().map_or_else(String::new, |span| {
        let before = text.get(..span.start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" at line {line}, column {column}")
    });
    let key = e.span().and_then(|span| key_at(text, span.start));
    let message = match key {
        Some(k) if !e.message().contains(&k) => format!("key `{k}`: {}", e.message().trim()),
        _ => e.message().trim().to_owned(),
    };
    ConfigError::File {
        path: path.into(),
        location,
        message,
    }
}

/// The dotted key on the line holding byte `at` (`http.body_limit`), from the line's `key =` and
/// the nearest `[table]` header above it.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let key = line.split_once('=')?.0.trim().trim_matches('"');
    let table = before
        .get(..line_start)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(['[', ']']).trim().to_owned());
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pkcs11_pin_is_never_repeated_in_an_error() {
        let file = write(
            "[vault]\nprovider = \"pkcs11\"\n[vault.pkcs11]\nmodule = \"/m.so\"\ntoken = \"t\"\npin = \"x\"\n",
        );
        let digits = Config::load(
            Some(file.path()),
            env(&[("BULWARK_VAULT__PKCS11__PIN", "8675309")]),
            Overrides::default(),
        )
        .unwrap();
        let pin = digits
            .vault
            .pkcs11
            .as_ref()
            .unwrap()
            .pin
            .expose_secret()
            .to_owned();
        assert_eq!(pin, "8675309");
        assert!(!digits.to_redacted_toml().contains("8675309"));
        for bad in ["pin = 86.75309", "pin = true", "pin = [8675309]"] {
            let f = write(&format!(
                "[vault]\nprovider = \"pkcs11\"\n[vault.pkcs11]\nmodule = \"/m.so\"\ntoken = \"t\"\n{bad}\n"
            ));
            let err = Config::load(Some(f.path()), env(&[]), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("vault.pkcs11.pin") || err.contains("pin"),
                "{err}"
            );
            assert!(!err.contains("8675309") && !err.contains("86.75"), "{err}");
        }
    }

    pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    pub(super) fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::load(None, [], Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8420");
        assert_eq!(c.data_dir, PathBuf::from("./bulwark-data"));
        assert!(c.database_url.is_none());
        assert_eq!(c.http.body_limit_bytes, 1024 * 1024);
        assert!(c.http.cors_allowed_origins.is_empty());
    }

    #[test]
    fn connection_limits_and_timeouts_are_validated() {
        let c = Config::load(None, [], Overrides::default()).unwrap();
        assert_eq!(
            (c.http.header_read_timeout_secs, c.http.idle_timeout_secs),
            (10, 60)
        );
        assert_eq!(
            (c.http.max_connections, c.http.max_connections_per_ip),
            (512, 64)
        );
        for (var, value, key) in [
            (
                "BULWARK_HTTP__HEADER_READ_TIMEOUT_SECS",
                "0",
                "http.header_read_timeout_secs",
            ),
            (
                "BULWARK_HTTP__HEADER_READ_TIMEOUT_SECS",
                "301",
                "http.header_read_timeout_secs",
            ),
            (
                "BULWARK_HTTP__IDLE_TIMEOUT_SECS",
                "0",
                "http.idle_timeout_secs",
            ),
            (
                "BULWARK_HTTP__IDLE_TIMEOUT_SECS",
                "3601",
                "http.idle_timeout_secs",
            ),
            ("BULWARK_HTTP__MAX_CONNECTIONS", "0", "http.max_connections"),
            (
                "BULWARK_HTTP__MAX_CONNECTIONS_PER_IP",
                "0",
                "http.max_connections_per_ip",
            ),
            (
                "BULWARK_HTTP__MAX_CONNECTIONS_PER_IP",
                "513",
                "http.max_connections_per_ip",
            ),
        ] {
            let err = Config::load(None, env(&[(var, value)]), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{var}={value}: {err}");
        }
        let ok = Config::load(
            None,
            env(&[
                ("BULWARK_HTTP__MAX_CONNECTIONS", "10"),
                ("BULWARK_HTTP__MAX_CONNECTIONS_PER_IP", "10"),
                ("BULWARK_HTTP__HEADER_READ_TIMEOUT_SECS", "1"),
            ]),
            Overrides::default(),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn file_then_env_then_flags_in_that_order() {
        let f = write(
            "listen = \"127.0.0.1:1000\"\ndata_dir = \"/from/file\"\n[http]\nbody_limit_bytes = 10\n",
        );
        let c = Config::load(
            Some(f.path()),
            env(&[
                ("BULWARK_DATA_DIR", "/from/env"),
                ("BULWARK_HTTP__BODY_LIMIT_BYTES", "20"),
                ("BULWARK_TEST_PG_URL", "x"),
                ("PATH", "/bin"),
            ]),
            Overrides {
                data_dir: Some("/from/flag".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1000");
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.http.body_limit_bytes, 20);
    }

    #[test]
    fn an_unknown_key_names_the_key_the_file_and_the_line() {
        let f = write("listen = \"127.0.0.1:1000\"\n\n[http]\nbody_limit = 5\n");
        let msg = Config::load(Some(f.path()), [], Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("body_limit"), "{msg}");
        assert!(msg.contains(&f.path().display().to_string()), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn a_wrong_type_names_the_key_and_line() {
        let f = write("behind_tls_proxy = \"yes\"\n");
        let msg = Config::load(Some(f.path()), [], Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 1") && msg.contains("behind_tls_proxy"),
            "{msg}"
        );
    }

    #[test]
    fn unreadable_files_are_named() {
        let msg = Config::load(
            Some(Path::new("/nonexistent/bulwark.toml")),
            [],
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("/nonexistent/bulwark.toml"), "{msg}");
    }

    #[test]
    fn a_host_name_listen_address_is_resolved_from_the_file_and_the_environment() {
        let f = write("listen = \"localhost:1000\"\n");
        let c = Config::load(Some(f.path()), [], Overrides::default()).unwrap();
        assert!(c.listen.ip().is_loopback(), "{}", c.listen);
        assert_eq!(c.listen.port(), 1000);
        let c = Config::load(
            None,
            env(&[("BULWARK_LISTEN", "localhost:0")]),
            Overrides::default(),
        )
        .unwrap();
        assert!(c.listen.ip().is_loopback() && c.listen.port() == 0);
        assert_eq!(resolve_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
    }

    #[test]
    fn an_unresolvable_listen_host_names_the_key() {
        let f = write("listen = \"nohost.invalid:8420\"\n");
        let msg = Config::load(Some(f.path()), [], Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("key `listen`")
                && msg.contains("cannot resolve host name `nohost.invalid`"),
            "{msg}"
        );
        let msg = Config::load(
            None,
            env(&[("BULWARK_LISTEN", "nohost.invalid:8420")]),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("BULWARK_LISTEN"), "{msg}");
        for bad in ["localhost", "localhost:http", ":8420", "localhost:70000"] {
            let e = resolve_listen(bad).unwrap_err();
            assert!(e.contains("is not `HOST:PORT`"), "{bad}: {e}");
        }
    }

    #[test]
    fn plain_http_on_a_public_address_is_a_gate_not_a_config_error() {
        // Loaded; `tls.posture` refuses it at start in production (docs/doctor.md), and
        // development may choose it.
        let c = Config::load(
            None,
            env(&[("BULWARK_LISTEN", "0.0.0.0:8420")]),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.server.mode(), Mode::Production);
        let posture = crate::doctor::config_checks(&c)
            .into_iter()
            .find(|check| check.id == "tls.posture")
            .unwrap();
        assert_eq!(posture.status, crate::doctor::Status::Fail);
        let dev = Config::load(
            None,
            env(&[
                ("BULWARK_LISTEN", "0.0.0.0:8420"),
                ("BULWARK_SERVER__MODE", "development"),
            ]),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(dev.server.mode(), Mode::Development);
    }

    #[test]
    fn bad_values_are_refused_by_key() {
        for (var, val, key) in [
            (
                "BULWARK_HTTP__CORS_ALLOWED_ORIGINS",
                "[\"*\"]",
                "http.cors_allowed_origins",
            ),
            (
                "BULWARK_HTTP__TRUSTED_PROXIES",
                "[\"10.0.0.0/33\"]",
                "http.trusted_proxies",
            ),
            ("BULWARK_PASSWORDS__M_COST_KIB", "1024", "passwords"),
            ("BULWARK_DATABASE_URL", "mysql://x", "database_url"),
            ("BULWARK_LOG__LEVEL", "info,[", "log.level"),
            (
                "BULWARK_AUDIT__PUBLISH_URL",
                "http://siem.example/ingest",
                "audit.publish_url",
            ),
            (
                "BULWARK_AUDIT__PUBLISH_URL",
                "http://127.0.0.1.evil.example/x",
                "audit.publish_url",
            ),
            (
                "BULWARK_AUDIT__PUBLISH_URL",
                "ftp://x/y",
                "audit.publish_url",
            ),
            (
                "BULWARK_SESSIONS__IDLE_TIMEOUT_SECS",
                "30",
                "sessions.idle_timeout_secs",
            ),
            (
                "BULWARK_SESSIONS__ABSOLUTE_TIMEOUT_SECS",
                "600",
                "sessions.absolute_timeout_secs",
            ),
            ("BULWARK_SESSIONS__CACHE_SECS", "6", "sessions.cache_secs"),
        ] {
            let msg = Config::load(None, env(&[(var, val)]), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(key), "{var}: {msg}");
        }
        for ok in [
            "https://siem.example/ingest",
            "http://127.0.0.1:9000/x",
            "http://[::1]:9000/x",
            "http://localhost/x",
        ] {
            let c = Config::load(
                None,
                env(&[("BULWARK_AUDIT__PUBLISH_URL", ok)]),
                Overrides::default(),
            );
            assert!(c.is_ok(), "{ok}");
        }
    }
    const SMTP_NONE: &str = "[mail.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\n";

    /// Review item 10: `security = "none"` with credentials sent `AUTH PLAIN` in clear.
    #[test]
    fn smtp_credentials_are_never_sent_in_clear_unless_explicitly_allowed() {
        let f = write(&format!(
            "{SMTP_NONE}username = \"bulwark\"\npassword = \"relay-secret-Zq81\"\n"
        ));
        let msg = Config::load(Some(f.path()), [], Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`mail.smtp.security`"), "{msg}");
        assert!(msg.contains(&f.path().display().to_string()), "{msg}");
        assert!(msg.contains("allow_plaintext_auth"), "{msg}");
        assert!(!msg.contains("relay-secret-Zq81"), "{msg}");
        // A user name alone is refused too (the password may come from the environment).
        let f = write(&format!("{SMTP_NONE}username = \"bulwark\"\n"));
        assert!(Config::load(Some(f.path()), [], Overrides::default()).is_err());
        // Without credentials, or with the opt-in named for what it does, it loads.
        let f = write(SMTP_NONE);
        assert!(Config::load(Some(f.path()), [], Overrides::default()).is_ok());
        let f = write(&format!(
            "{SMTP_NONE}username = \"bulwark\"\npassword = \"p\"\nallow_plaintext_auth = true\n"
        ));
        let c = Config::load(Some(f.path()), [], Overrides::default()).unwrap();
        assert!(c.mail.smtp.unwrap().allow_plaintext_auth);
        // The opt-in means nothing with TLS, so it is refused there rather than ignored.
        let f = write(
            "[mail.smtp]\nhost = \"smtp.example.com\"\nusername = \"u\"\npassword = \"p\"\nallow_plaintext_auth = true\n",
        );
        let msg = Config::load(Some(f.path()), [], Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`mail.smtp.allow_plaintext_auth`"), "{msg}");
    }

    /// Review item 10: `allow_loopback = true` opened every loopback port, Bulwark's own too.
    #[test]
    fn loopback_egress_is_per_port_and_never_bulwarks_own() {
        let load = |text: &str| Config::load(Some(write(text).path()), [], Overrides::default());
        let c =
            load("[egress]\nallow_loopback = [\"127.0.0.1:9000\", \"localhost:9001\"]\n").unwrap();
        let policy = c.egress.policy();
        assert_eq!(policy.allow_loopback.len(), 2);
        let to = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(
            policy
                .allow_loopback
                .iter()
                .any(|p| p.matches(to("127.0.0.1:9000")))
        );
        assert!(
            !policy
                .allow_loopback
                .iter()
                .any(|p| p.matches(to("127.0.0.1:8420")))
        );
        assert!(
            load("[egress]\nallow_loopback = false\n")
                .unwrap()
                .egress
                .allow_loopback
                .is_empty()
        );
        let msg = load("[egress]\nallow_loopback = true\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("allow_loopback") && msg.contains("every loopback port"),
            "{msg}"
        );
        for bad in ["\"10.0.0.1:9000\"", "\"127.0.0.1\"", "9000"] {
            let msg = load(&format!("[egress]\nallow_loopback = [{bad}]\n"))
                .unwrap_err()
                .to_string();
            assert!(msg.contains("allow_loopback"), "{bad}: {msg}");
        }
        // The listen port (default 127.0.0.1:8420), in any loopback spelling.
        for own in ["127.0.0.1:8420", "localhost:8420", "[::1]:8420"] {
            let msg = load(&format!("[egress]\nallow_loopback = [\"{own}\"]\n"))
                .unwrap_err()
                .to_string();
            assert!(msg.contains("own listen port"), "{own}: {msg}");
        }
        let msg = Config::load(
            None,
            env(&[("BULWARK_EGRESS__ALLOW_LOOPBACK", "[\"127.0.0.1:8420\"]")]),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("own listen port"), "{msg}");
    }
}

#[cfg(test)]
mod reference {
    /// Every key of the configuration appears in `docs/config-reference.md`.
    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../../../docs/config-reference.md");
        let mut config = super::Config {
            tls: Some(super::TlsConfig {
                cert_path: "c".into(),
                key_path: "k".into(),
            }),
            database_url: Some(secrecy::SecretString::from("postgres://x")),
            ..super::Config::default()
        };
        config.security_txt.expires = Some("x".into());
        config.security_txt.policy = Some("x".into());
        config.security_txt.preferred_languages = Some("x".into());
        config.audit.publish_file = Some("x".into());
        config.audit.publish_url = Some(secrecy::SecretString::from("https://x"));
        config.audit.publish_token = Some(secrecy::SecretString::from("x"));
        let table: toml::Table = toml::from_str(&config.to_redacted_toml()).unwrap();
        let mut keys = Vec::new();
        for (k, v) in &table {
            match v.as_table() {
                Some(t) => keys.extend(t.keys().map(|sub| format!("{k}.{sub}"))),
                None => keys.push(k.clone()),
            }
        }
        assert!(keys.len() > 15);
        for key in keys {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "`{key}` is missing from docs/config-reference.md"
            );
        }
    }
}
