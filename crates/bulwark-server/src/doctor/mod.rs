//! `bulwark doctor`, `GET /v1/evidence` and the production gates: every live check of a
//! deployment's security posture, each with the control it supports, the evidence observed and
//! the setting or command that fixes it.
//!
//! The checks are in two groups: those that read only the configuration and the data
//! directory ([`config_checks`]), and those that need the open deployment ([`live`]). `serve`
//! runs both before it takes traffic and, in production, refuses to start while one fails.

mod live;

pub use live::{Live, live_checks};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{Config, Mode};

/// Every check against a running server's state (`GET /v1/evidence`, the start gates).
pub async fn for_state(state: &crate::state::AppState, checkpoint: bool) -> Report {
    let mut checks = config_checks(&state.config);
    checks.extend(
        live_checks(&Live {
            config: &state.config,
            store: &*state.store,
            clock: &*state.clock,
            vault: &*state.vault,
            licensing: &state.licensing,
            checkpointer: &state.checkpointer,
            checkpoint,
        })
        .await,
    );
    Report::new(&state.config, checks, state.clock.now())
}

/// Every check outside a server (`bulwark doctor`, `bulwark evidence export`, the support
/// bundle): those of the configuration, then those of the open deployment, or one failing check
/// saying why it could not be opened. With `checkpoint`, a fresh checkpoint of each log is
/// signed first.
pub async fn for_tools(config: &Config, checkpoint: bool) -> Report {
    match crate::startup::open_doctor_for_tools(config).await {
        Ok(parts) => for_parts(config, &parts, checkpoint).await,
        Err(e) => {
            let mut checks = config_checks(config);
            checks.push(Check::unopened(&crate::error::error_chain(&e)));
            Report::new(config, checks, time::OffsetDateTime::now_utc())
        }
    }
}

/// Every check over a deployment opened for tools (`bulwark evidence export` keeps the parts
/// for their signer).
pub async fn for_parts(
    config: &Config,
    parts: &crate::startup::DoctorParts,
    checkpoint: bool,
) -> Report {
    let mut checks = config_checks(config);
    checks.extend(
        live_checks(&Live {
            config,
            store: &*parts.store,
            clock: &*parts.clock,
            vault: &*parts.vault,
            licensing: &parts.licensing,
            checkpointer: &parts.checkpointer,
            checkpoint,
        })
        .await,
    );
    Report::new(config, checks, parts.clock.now())
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The control holds.
    Pass,
    /// The control holds with a caveat the operator should know of, or is off by choice.
    Warn,
    /// The control does not hold: a claim of the security page would be false. A production
    /// server refuses to start.
    Fail,
}

impl Status {
    /// `pass`, `warn` or `fail`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    /// Stable id (`tls.posture`, `audit.verify`, …).
    pub id: String,
    /// What is checked, in a few words.
    pub title: String,
    /// The claim of the security page it supports (`security/controls.toml`).
    pub control: String,
    /// `pass`, `warn` or `fail`.
    pub status: Status,
    /// What was observed: settings, counts, hashes. Never a secret.
    #[schema(value_type = Object)]
    pub evidence: Value,
    /// The setting or command that fixes a `warn` or `fail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

impl Check {
    /// The failing check reported when the deployment cannot be opened (its live checks could
    /// not run).
    #[must_use]
    pub fn unopened(error: &str) -> Self {
        Self::build(
            "deployment.open",
            "The deployment opens with its seed",
            "operations.gates",
        )
        .evidence(json!({"error": error}))
        .fail("fix what the error names (data directory, seed, database URL); the live checks did not run")
    }

    fn build(id: &str, title: &str, control: &str) -> Builder {
        Builder(Self {
            id: id.into(),
            title: title.into(),
            control: control.into(),
            status: Status::Pass,
            evidence: json!({}),
            remediation: None,
        })
    }
}

/// Builds a [`Check`].
pub(super) struct Builder(Check);

impl Builder {
    fn evidence(mut self, evidence: Value) -> Self {
        self.0.evidence = evidence;
        self
    }

    fn pass(self) -> Check {
        self.0
    }

    /// Passes, saying why the check has nothing to look at here.
    pub(super) fn pass_with_note(mut self, note: &str) -> Check {
        if let Value::Object(map) = &mut self.0.evidence {
            map.insert("note".into(), Value::String(note.into()));
        }
        self.0
    }

    fn warn(self, remediation: impl Into<String>) -> Check {
        self.with(Status::Warn, remediation)
    }

    fn fail(self, remediation: impl Into<String>) -> Check {
        self.with(Status::Fail, remediation)
    }

    fn with(mut self, status: Status, remediation: impl Into<String>) -> Check {
        self.0.status = status;
        self.0.remediation = Some(remediation.into());
        self.0
    }
}

/// Every check's result, the form `--format json`, the evidence page and the support bundle
/// read.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// Format version of this report (1).
    pub bulwark_doctor: u32,
    /// The binary's version.
    pub version: String,
    /// `production` or `development`.
    pub mode: String,
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// When the checks ran (RFC 3339).
    pub checked_at: String,
    /// How many checks passed, warned and failed.
    pub summary: Summary,
    /// Each check, in a stable order.
    pub checks: Vec<Check>,
}

/// Counts by status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    /// Checks that passed.
    pub pass: usize,
    /// Checks that warned.
    pub warn: usize,
    /// Checks that failed.
    pub fail: usize,
}

impl Report {
    /// Assembles a report from checks.
    #[must_use]
    pub fn new(config: &Config, checks: Vec<Check>, now: time::OffsetDateTime) -> Self {
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Pass => summary.pass += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
            }
        }
        Self {
            bulwark_doctor: 1,
            version: env!("CARGO_PKG_VERSION").into(),
            mode: config.server.mode().as_str().into(),
            engine: if config.database_url.is_some() {
                "postgres"
            } else {
                "sqlite"
            }
            .into(),
            checked_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            summary,
            checks,
        }
    }

    /// The failing checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// The report as text, one block per check (what `bulwark doctor` prints).
    #[must_use]
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "Bulwark {} · {} · {} · {}\n\n",
            self.version, self.mode, self.engine, self.checked_at
        );
        for c in &self.checks {
            let _ = writeln!(
                out,
                "{:<5} {:<24} {}",
                c.status.as_str().to_uppercase(),
                c.id,
                c.title
            );
            if let Value::Object(map) = &c.evidence {
                for (k, v) in map {
                    let shown = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let _ = writeln!(out, "      {k}: {shown}");
                }
            }
            if let Some(fix) = &c.remediation {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
        let _ = writeln!(
            out,
            "\n{} passed, {} warned, {} failed",
            self.summary.pass, self.summary.warn, self.summary.fail
        );
        out
    }

    /// What a production `serve` prints when it refuses to start: each failing gate and the
    /// setting that fixes it.
    #[must_use]
    pub fn refusal(&self) -> String {
        let mut out = String::from(
            "production gates failed; refusing to start (fix each one, or choose \
             [server] mode = \"development\" for a non-production deployment):\n",
        );
        for c in self.failures() {
            out.push_str(&format!(
                "  - {} ({}): {}\n",
                c.id,
                c.title,
                c.remediation.as_deref().unwrap_or("see `bulwark doctor`")
            ));
        }
        out
    }
}

fn file_mode(path: &std::path::Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.mode() & 0o7777, m.uid()))
}

fn current_uid() -> u32 {
    crate::startup::current_uid().unwrap_or(u32::MAX)
}

/// The checks that read only the configuration and the files it names.
#[must_use]
pub fn config_checks(config: &Config) -> Vec<Check> {
    vec![
        mode_check(config),
        tls_check(config),
        certificate_check(config),
        proxy_hop_check(config),
        database_tls_check(config),
        cookie_check(config),
        argon2_check(config),
        cors_check(config),
        data_dir_check(config),
        seed_file_check(config),
        crypto_check(),
        fips_check(),
        egress_check(config),
        smtp_check(config),
        signup_check(config),
        publication_check(config),
    ]
}

fn mode_check(config: &Config) -> Check {
    let mode = config.server.mode();
    let c = Check::build("server.mode", "Production gates in force", "operations.gates").evidence(
        json!({"mode": mode.as_str(), "chosen": config.server.mode.is_some(), "listen": config.listen.to_string()}),
    );
    match mode {
        Mode::Production => c.pass(),
        Mode::Development => c.warn(
            "development mode turns failing gates into warnings: remove `[server] mode = \"development\"` \
             for a production deployment",
        ),
    }
}

fn tls_check(config: &Config) -> Check {
    let loopback = config.listen.ip().is_loopback();
    let proxies = &config.http.trusted_proxies;
    let c = Check::build("tls.posture", "TLS and HSTS", "transport.tls").evidence(json!({
        "listen": config.listen.to_string(),
        "loopback": loopback,
        "tls": config.tls.is_some(),
        "behind_tls_proxy": config.behind_tls_proxy,
        "trusted_proxies": proxies,
        "hsts": config.tls.is_some() || config.behind_tls_proxy,
    }));
    if config.tls.is_some() {
        return c.pass();
    }
    if config.behind_tls_proxy {
        if !proxies.is_empty() {
            return c.pass();
        }
        let fix = "list the TLS-terminating proxy's address in `http.trusted_proxies` (e.g. \
                   [\"10.0.0.5\"]) so that client addresses and HTTPS come from it alone";
        return if loopback { c.warn(fix) } else { c.fail(fix) };
    }
    let fix = "serve HTTPS with `[tls] cert_path`/`key_path`, or set `behind_tls_proxy = true` \
               with `http.trusted_proxies` behind a TLS-terminating proxy";
    if loopback {
        c.warn(format!(
            "plain HTTP on a loopback address reaches this host only; {fix}"
        ))
    } else {
        c.fail(fix)
    }
}

/// The served certificate (with `[tls]`): in its validity period, not about to expire, and
/// issued by a CA rather than self-signed.
fn certificate_check(config: &Config) -> Check {
    let c = Check::build(
        "tls.certificate",
        "Served certificate valid and CA-issued",
        "transport.tls",
    );
    let Some(tls) = &config.tls else {
        return c
            .evidence(json!({"tls": false}))
            .pass_with_note("HTTPS is terminated by a proxy or not served: nothing to check here");
    };
    let pem = match std::fs::read(&tls.cert_path) {
        Ok(p) => p,
        Err(e) => {
            return c
                .evidence(json!({"cert_path": tls.cert_path.display().to_string(), "error": e.to_string()}))
                .fail("`tls.cert_path` cannot be read by the server's user");
        }
    };
    let parsed = x509_parser::pem::parse_x509_pem(&pem)
        .ok()
        .and_then(|(_, p)| {
            p.parse_x509().ok().map(|cert| {
                let v = cert.validity();
                (
                    v.not_before.timestamp(),
                    v.not_after.timestamp(),
                    cert.subject().to_string() == cert.issuer().to_string(),
                    cert.subject().to_string(),
                    cert.issuer().to_string(),
                )
            })
        });
    let Some((not_before, not_after, self_signed, subject, issuer)) = parsed else {
        return c
            .evidence(json!({"cert_path": tls.cert_path.display().to_string()}))
            .fail("`tls.cert_path` does not start with a PEM X.509 certificate");
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let days_left = (not_after - now) / 86_400;
    let c = c.evidence(json!({
        "subject": subject,
        "issuer": issuer,
        "self_signed": self_signed,
        "not_before": not_before,
        "not_after": not_after,
        "days_left": days_left,
    }));
    if now < not_before || now > not_after {
        c.fail("the certificate is outside its validity period: install a current one at `tls.cert_path`")
    } else if days_left < 14 {
        c.warn("the certificate expires within 14 days: renew it")
    } else if self_signed {
        c.warn("the certificate is self-signed: browsers and clients will not trust it unless they pin it; use one issued by your CA")
    } else {
        c.pass()
    }
}

/// Behind a proxy, the hop from the proxy to Bulwark is plain HTTP unless Bulwark also serves
/// TLS or listens on loopback.
fn proxy_hop_check(config: &Config) -> Check {
    let c = Check::build(
        "tls.proxy_hop",
        "Proxy-to-server hop protected",
        "transport.tls",
    )
    .evidence(json!({
        "behind_tls_proxy": config.behind_tls_proxy,
        "tls": config.tls.is_some(),
        "listen": config.listen.to_string(),
    }));
    if config.behind_tls_proxy && config.tls.is_none() && !config.listen.ip().is_loopback() {
        c.warn("the hop from the proxy to Bulwark is plain HTTP across the network: also configure `[tls]` (the proxy re-encrypts), or run the proxy on this host with a loopback `listen`")
    } else {
        c.pass()
    }
}

/// The PostgreSQL connection: TLS with certificate and host-name verification when the
/// database is on another host.
fn database_tls_check(config: &Config) -> Check {
    let c = Check::build(
        "postgres.tls",
        "Database connection encrypted and verified",
        "transport.database",
    );
    let Some(url) = &config.database_url else {
        return c
            .evidence(json!({"engine": "sqlite"}))
            .pass_with_note("the embedded SQLite database is a file in the data directory: no connection to protect");
    };
    let text = secrecy::ExposeSecret::expose_secret(url);
    // The query parameters, read by hand: libpq-style URLs (`postgres://u:p@/db?host=/run/…`)
    // are valid for the driver and not for a strict URL parser.
    let query = |key: &str| {
        text.split_once('?').and_then(|(_, q)| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == key).then(|| {
                    url::form_urlencoded::parse(format!("v={v}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                })
            })
        })
    };
    let url_host = url::Url::parse(text)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let host = query("host").unwrap_or(url_host);
    let local = host.is_empty()
        || host.starts_with('/')
        || matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1");
    let sslmode = query("sslmode").unwrap_or_else(|| "prefer".into());
    let c = c.evidence(json!({
        "engine": "postgres",
        "host_is_local": local,
        "sslmode": sslmode,
        "sslrootcert": query("sslrootcert").is_some(),
    }));
    match (sslmode.as_str(), local) {
        ("verify-full", _) => c.pass(),
        (_, true) => c.warn("the database is on this host: TLS is optional; for another host use `sslmode=verify-full` (and `sslrootcert=` for a private CA) in `database_url`"),
        ("verify-ca" | "require", false) => c.warn("the connection is encrypted but the server's name is not verified: use `sslmode=verify-full` in `database_url`"),
        _ => c.fail("the connection to a remote database may fall back to clear text: add `sslmode=verify-full` (and `sslrootcert=` for a private CA) to `database_url`"),
    }
}

fn cookie_check(config: &Config) -> Check {
    let secure = config.tls.is_some() || config.behind_tls_proxy;
    let c = Check::build(
        "sessions.cookies",
        "Session cookies are Secure, HttpOnly, SameSite",
        "sessions.cookies",
    )
    .evidence(json!({
        "secure": secure,
        "http_only": true,
        "same_site": "Lax",
        "name": if secure { "__Host-bulwark_session" } else { "bulwark_session" },
    }));
    if secure {
        c.pass()
    } else if config.listen.ip().is_loopback() {
        c.warn("cookies are not `Secure` over plain HTTP: configure `[tls]` or `behind_tls_proxy = true`")
    } else {
        c.fail("cookies are not `Secure` over plain HTTP: configure `[tls]` or `behind_tls_proxy = true`")
    }
}

fn argon2_check(config: &Config) -> Check {
    let p = config.passwords.params();
    let floor = bulwark_crypto::PasswordParams::OWASP_MIN;
    let c = Check::build(
        "passwords.argon2",
        "argon2id cost at or above the OWASP floor",
        "identity.passwords",
    )
    .evidence(json!({
        "algorithm": "argon2id",
        "m_cost_kib": p.m_cost_kib, "t_cost": p.t_cost, "p_cost": p.p_cost,
        "floor": {"m_cost_kib": floor.m_cost_kib, "t_cost": floor.t_cost, "p_cost": floor.p_cost},
    }));
    if p.validate().is_ok() {
        c.pass()
    } else {
        c.fail(
            "raise `passwords.m_cost_kib` ≥ 19456, `passwords.t_cost` ≥ 2, `passwords.p_cost` ≥ 1",
        )
    }
}

fn cors_check(config: &Config) -> Check {
    let origins = &config.http.cors_allowed_origins;
    let plain: Vec<&String> = origins
        .iter()
        .filter(|o| {
            o.strip_prefix("http://").is_some_and(|host| {
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                !matches!(host, "localhost" | "127.0.0.1" | "[::1]")
            })
        })
        .collect();
    let c = Check::build(
        "http.cors",
        "CORS closed except to listed HTTPS origins",
        "transport.cors",
    )
    .evidence(json!({"allowed_origins": origins, "plain_http_origins": plain}));
    if plain.is_empty() {
        c.pass()
    } else {
        c.fail(
            "list only `https://` origins in `http.cors_allowed_origins` (an `http://` origin lets \
             anyone on its network path make credentialed calls)",
        )
    }
}

fn data_dir_check(config: &Config) -> Check {
    let dir = &config.data_dir;
    let c = Check::build(
        "files.data_dir",
        "Data directory private to the server's user",
        "operations.files",
    );
    let Some((mode, uid)) = file_mode(dir) else {
        return c
            .evidence(json!({"path": dir.display().to_string(), "exists": false}))
            .warn("the data directory does not exist yet: `bulwark serve` creates it 0700");
    };
    let c = c.evidence(json!({
        "path": dir.display().to_string(),
        "mode": format!("{mode:04o}"),
        "owner_is_server_user": uid == current_uid(),
    }));
    let fix = format!("run `chmod 700 {}` as the server's user", dir.display());
    if mode & 0o007 != 0 || uid != current_uid() {
        c.fail(fix)
    } else if mode & 0o070 != 0 {
        c.warn(fix)
    } else {
        c.pass()
    }
}

fn seed_file_check(config: &Config) -> Check {
    let path = config.data_dir.join(crate::startup::SEED_FILE);
    let c = Check::build(
        "files.seed",
        "Workspace seed readable by the server's user only",
        "vault.keys",
    );
    let Some((mode, uid)) = file_mode(&path) else {
        return c
            .evidence(json!({"path": path.display().to_string(), "exists": false}))
            .warn("no workspace seed yet: `bulwark serve` creates it 0600");
    };
    let c = c.evidence(json!({
        "path": path.display().to_string(),
        "mode": format!("{mode:04o}"),
        "owner_is_server_user": uid == current_uid(),
    }));
    if mode & 0o077 != 0 || uid != current_uid() {
        c.fail(format!(
            "run `chmod 600 {}` as the server's user",
            path.display()
        ))
    } else {
        c.pass()
    }
}

fn crypto_check() -> Check {
    let c = Check::build(
        "crypto.self_test",
        "Cryptographic known-answer tests",
        "vault.crypto",
    );
    match bulwark_crypto::self_test() {
        Ok(report) => c
            .evidence(json!({"cases": report.cases, "provider": "aws-lc-rs"}))
            .pass(),
        Err(e) => c
            .evidence(json!({"error": e.to_string()}))
            .fail("the cryptographic provider computes wrong answers: reinstall the binary from a trusted build"),
    }
}

fn fips_check() -> Check {
    let on = bulwark_crypto::fips_mode();
    Check::build("crypto.fips", "FIPS 140-3 mode", "vault.crypto")
        .evidence(json!({"fips_mode": on, "build_feature": cfg!(feature = "fips")}))
        .pass()
}

fn egress_check(config: &Config) -> Check {
    let e = &config.egress;
    let private: Vec<&String> = e
        .allow_networks
        .iter()
        .filter(|n| {
            n.split('/')
                .next()
                .and_then(|base| base.trim().parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| bulwark_core::egress::denied(ip).is_some())
        })
        .collect();
    let c = Check::build(
        "egress.allowlist",
        "Outbound calls cannot reach private networks",
        "webhooks.egress",
    )
    .evidence(json!({
        "allow_hosts": e.allow_hosts,
        "allow_networks": e.allow_networks,
        "private_or_loopback_networks": private,
        "allow_loopback": e.allow_loopback,
        "allow_networks_for_webhooks": e.allow_networks_for_webhooks,
        "allow_http": e.allow_http,
        "internal_hosts": e.internal_hosts,
    }));
    if e.allow_networks_for_webhooks && !private.is_empty() {
        return c.fail(
            "webhook URLs are chosen by org admins: set `egress.allow_networks_for_webhooks = false` \
             so that the private networks in `egress.allow_networks` serve only operator-configured integrations",
        );
    }
    if !private.is_empty() || !e.allow_loopback.is_empty() || e.allow_http {
        return c.warn(
            "outbound calls may reach the private or loopback ranges, ports or plain-HTTP targets \
             listed here: keep `egress.allow_networks`, `egress.allow_loopback` and `egress.allow_http` to what integrations need",
        );
    }
    c.pass()
}

fn smtp_check(config: &Config) -> Check {
    let c = Check::build("mail.smtp", "Mail relay over TLS", "identity.mail");
    let Some(smtp) = &config.mail.smtp else {
        return c
            .evidence(json!({"configured": false}))
            .warn("no SMTP relay: mail (invitations, password resets) is written to the data directory's outbox; configure `[mail.smtp]`");
    };
    let c = c.evidence(json!({
        "configured": true,
        "host": smtp.host,
        "port": smtp.port,
        "security": format!("{:?}", smtp.security).to_lowercase(),
        "authenticated": smtp.username.is_some(),
        "allow_plaintext_auth": smtp.allow_plaintext_auth,
    }));
    if smtp.security == crate::config::SmtpSecurity::None {
        c.warn("`mail.smtp.security = \"none\"` is plaintext to the loopback relay: use `starttls` or `tls`")
    } else {
        c.pass()
    }
}

fn signup_check(config: &Config) -> Check {
    let c = Check::build(
        "signup.closed",
        "Open sign-up off unless chosen",
        "identity.signup",
    )
    .evidence(json!({"enabled": config.signup.enabled}));
    if config.signup.enabled {
        c.warn("anyone who can reach the server can create an account: set `signup.enabled = false` unless that is intended")
    } else {
        c.pass()
    }
}

fn publication_check(config: &Config) -> Check {
    let a = &config.audit;
    let c = Check::build(
        "audit.publication",
        "Signed checkpoints published outside the database",
        "audit.tamper_evidence",
    )
    .evidence(json!({
        "publish_file": a.publish_file.as_ref().map(|p| p.display().to_string()),
        "publish_url": a.publish_url.is_some(),
        "every_events": a.checkpoint_every_events,
        "every_secs": a.checkpoint_every_secs,
    }));
    if a.publish_file.is_some() || a.publish_url.is_some() {
        c.pass()
    } else {
        c.warn("checkpoints live only in the database, so a rewrite of the whole database is caught only against an export: set `audit.publish_file` or `audit.publish_url`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulwark.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(
            Some(&path),
            Vec::<(String, String)>::new(),
            crate::config::Overrides::default(),
        )
        .unwrap()
    }

    fn status(c: &Config, id: &str) -> Status {
        config_checks(c)
            .into_iter()
            .find(|check| check.id == id)
            .unwrap()
            .status
    }

    /// ASVS V12.3.4: a remote PostgreSQL must be reached over TLS with the server verified.
    #[test]
    fn a_remote_database_without_verified_tls_fails_and_a_local_one_warns() {
        for (url, want) in [
            ("postgres://app:pw@db.internal/bulwark", Status::Fail),
            (
                "postgres://app:pw@db.internal/bulwark?sslmode=prefer",
                Status::Fail,
            ),
            (
                "postgres://app:pw@db.internal/bulwark?sslmode=disable",
                Status::Fail,
            ),
            (
                "postgres://app:pw@db.internal/bulwark?sslmode=require",
                Status::Warn,
            ),
            (
                "postgres://app:pw@db.internal/bulwark?sslmode=verify-full",
                Status::Pass,
            ),
            ("postgres://app:pw@127.0.0.1:5432/bulwark", Status::Warn),
            (
                "postgres://app:pw@localhost/bulwark?sslmode=verify-full",
                Status::Pass,
            ),
            (
                "postgres://app:pw@/bulwark?host=/run/postgresql",
                Status::Warn,
            ),
        ] {
            let c = config(&format!("database_url = \"{url}\"\n"));
            assert_eq!(status(&c, "postgres.tls"), want, "{url}");
            let text = serde_json::to_string(&config_checks(&c)).unwrap();
            assert!(!text.contains(":pw@") && !text.contains("\"pw\""), "{text}");
        }
        assert_eq!(status(&config(""), "postgres.tls"), Status::Pass);
    }

    /// ASVS V12.3.3: behind a proxy, a plain-HTTP hop across the network is reported.
    #[test]
    fn a_plain_proxy_hop_off_loopback_is_reported() {
        let off = config(
            "listen = \"0.0.0.0:8420\"\nbehind_tls_proxy = true\n[http]\ntrusted_proxies = [\"10.0.0.5\"]\n",
        );
        assert_eq!(status(&off, "tls.proxy_hop"), Status::Warn);
        assert_eq!(status(&off, "tls.posture"), Status::Pass);
        let local = config("behind_tls_proxy = true\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n");
        assert_eq!(status(&local, "tls.proxy_hop"), Status::Pass);
        let no_proxies = config("listen = \"0.0.0.0:8420\"\nbehind_tls_proxy = true\n");
        assert_eq!(status(&no_proxies, "tls.posture"), Status::Fail);
    }

    /// CORS: an `http://` origin off loopback fails; loopback development origins do not.
    #[test]
    fn a_plain_http_cors_origin_fails_unless_loopback() {
        let bad = config("[http]\ncors_allowed_origins = [\"http://app.example.com\"]\n");
        assert_eq!(status(&bad, "http.cors"), Status::Fail);
        let local = config(
            "[http]\ncors_allowed_origins = [\"http://localhost:3000\", \"https://app.example.com\"]\n",
        );
        assert_eq!(status(&local, "http.cors"), Status::Pass);
    }
}
