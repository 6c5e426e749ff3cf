//! The metrics listener: `GET /metrics` in the Prometheus text format, on its own address
//! (`[metrics] listen`), never on the public port (docs/metrics.md, ADR 0025).
//!
//! A scrape renders what the process counted (`bulwark_core::metrics`) and reads a few gauges
//! now: the connection pool, the webhook backlog, the oldest audit event waiting for a checkpoint,
//! the vault's rewrap backlog, the license and the newest verified backup. A gauge whose read
//! fails is left out and `bulwark_scrape_collector_success{collector}` says so; the scrape itself
//! still answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bulwark_core::metrics::{header as help, sample};

use crate::state::AppState;

/// The text format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// When this process started (Unix seconds).
static STARTED: LazyLock<f64> = LazyLock::new(|| {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
});

/// Notes the process's start time (call once, early).
pub fn note_start() {
    LazyLock::force(&STARTED);
}

/// The address a client on this host reaches for a server listening on `listen`: a wildcard
/// address becomes loopback (`bulwark healthcheck`, the support bundle's scrape).
#[must_use]
pub fn local_target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Most bytes of a scrape the support bundle keeps.
const SCRAPE_LIMIT: usize = 4 << 20;

/// Scrapes the running server's metrics listener (`[metrics] listen`) for the support bundle:
/// the exposition, or why there is none.
///
/// # Errors
/// A sentence saying why no scrape was taken (metrics off, no answer, not 200, too large).
pub async fn scrape_running(config: &crate::config::Config) -> Result<String, String> {
    if !config.metrics.enabled {
        return Err("metrics are off (`metrics.enabled = false`)".into());
    }
    let url = format!("http://{}/metrics", local_target(config.metrics.listen));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| "cannot build an HTTP client".to_owned())?;
    let res = client
        .get(&url)
        .send()
        .await
        .map_err(|_| format!("no answer from {url} (is the server running?)"))?;
    if res.status() != StatusCode::OK {
        return Err(format!("{url} answered {}", res.status().as_u16()));
    }
    let body = res
        .bytes()
        .await
        .map_err(|_| format!("{url}: the answer broke off"))?;
    if body.len() > SCRAPE_LIMIT {
        return Err(format!("{url}: the answer exceeds {SCRAPE_LIMIT} bytes"));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The metrics listener's routes: `/metrics` only.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

async fn scrape(State(state): State<AppState>) -> Response {
    let body = render(&state).await;
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The whole exposition.
pub async fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(16 * 1024);
    bulwark_core::metrics::metrics().render(&mut out);
    let mut ok: Vec<(&str, bool)> = Vec::new();

    gauge(
        &mut out,
        "bulwark_build_info",
        "The running build: version and storage engine (value 1).",
        &[(
            vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("engine", state.store.engine()),
                (
                    "fips",
                    if bulwark_crypto::fips_mode() {
                        "true"
                    } else {
                        "false"
                    },
                ),
            ],
            1.0,
        )],
    );
    gauge(
        &mut out,
        "bulwark_process_start_time_seconds",
        "When this process started, in Unix seconds.",
        &[(vec![], *STARTED)],
    );

    let pool = state.store.pool_stats();
    let in_use = pool.open.saturating_sub(pool.idle);
    gauge(
        &mut out,
        "bulwark_db_pool_connections",
        "Database connections open, by state (in_use, idle).",
        &[
            (vec![("state", "in_use")], f64::from(in_use)),
            (vec![("state", "idle")], f64::from(pool.idle)),
        ],
    );
    gauge(
        &mut out,
        "bulwark_db_pool_max_connections",
        "The most connections the pool opens (`database.max_connections`).",
        &[(vec![], f64::from(pool.max))],
    );

    // One scrape at a time reads the database: scrapes sent in parallel (over HTTP/2, or many
    // connections) wait their turn instead of taking the pool.
    let _one_at_a_time = DB_READS.lock().await;
    let backlog = webhook_backlog(state).await;
    ok.push(("webhooks", backlog.is_some()));
    if let Some((due, oldest_secs)) = backlog {
        gauge(
            &mut out,
            "bulwark_webhook_queue_depth",
            "Webhook deliveries due now to enabled endpoints and not being sent.",
            &[(vec![], due as f64)],
        );
        gauge(
            &mut out,
            "bulwark_webhook_oldest_due_age_seconds",
            "How long the longest-waiting due webhook delivery has been due (0 when none is).",
            &[(vec![], oldest_secs)],
        );
    }

    gauge(
        &mut out,
        "bulwark_audit_checkpoint_lag_seconds",
        "How long the oldest audit event this process appended has waited for a signed checkpoint (0 when none waits).",
        &[(
            vec![],
            state.checkpointer.oldest_unsigned_age().as_secs_f64(),
        )],
    );

    let vault = vault_status(state).await;
    ok.push(("vault", vault.is_some()));
    if let Some(status) = vault {
        let versions: Vec<String> = status.counts.iter().map(|(v, _)| v.to_string()).collect();
        let rows: Vec<(Vec<(&str, &str)>, f64)> = status
            .counts
            .iter()
            .zip(&versions)
            .map(|((_, n), v)| (vec![("key_version", v.as_str())], *n as f64))
            .collect();
        gauge(
            &mut out,
            "bulwark_vault_credentials",
            "Credentials sealed under each vault key version.",
            &rows,
        );
        gauge(
            &mut out,
            "bulwark_vault_rewrap_remaining",
            "Credentials not yet under the active key version (the rewrap job's backlog).",
            &[(vec![], status.remaining() as f64)],
        );
    }

    license(&mut out, state);
    backup(&mut out, state);

    let rows: Vec<(Vec<(&str, &str)>, f64)> = ok
        .iter()
        .map(|(c, good)| (vec![("collector", *c)], if *good { 1.0 } else { 0.0 }))
        .collect();
    gauge(
        &mut out,
        "bulwark_scrape_collector_success",
        "Whether each gauge read at scrape time could be read (1) or was left out (0).",
        &rows,
    );
    out
}

fn gauge(out: &mut String, name: &str, text: &str, rows: &[(Vec<(&str, &str)>, f64)]) {
    help(out, name, text, "gauge");
    for (labels, value) in rows {
        sample(out, name, labels, *value);
    }
}

/// Serialises the scrape's database reads.
static DB_READS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the vault's status is reused between scrapes.
const VAULT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The vault's last status read, and when.
static VAULT: std::sync::Mutex<Option<(std::time::Instant, bulwark_core::vault::KeyStatus)>> =
    std::sync::Mutex::new(None);

/// The vault's key versions and counts, read at most every [`VAULT_EVERY`]: reading the key
/// versions opens a system transaction, on SQLite a write transaction, which a scrape should not
/// take every few seconds.
async fn vault_status(state: &AppState) -> Option<bulwark_core::vault::KeyStatus> {
    let cached = VAULT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .filter(|(at, _)| at.elapsed() < VAULT_EVERY)
        .map(|(_, s)| s.clone());
    if cached.is_some() {
        return cached;
    }
    let fresh = bulwark_core::vault::status(&*state.store).await.ok()?;
    *VAULT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        Some((std::time::Instant::now(), fresh.clone()));
    Some(fresh)
}

/// Due deliveries across orgs and how long the oldest has been due (seconds).
async fn webhook_backlog(state: &AppState) -> Option<(u64, f64)> {
    let now_ms = bulwark_core::webhooks::unix_ms(state.clock.now());
    let orgs = state.store.webhook_due_orgs(now_ms).await.ok()?;
    let (mut due, mut oldest) = (0u64, None::<i64>);
    for org in orgs {
        let mut read = state.store.org_read(org).await.ok()?;
        let (n, first) = read.webhook_backlog(now_ms).await.ok()?;
        due += n;
        oldest = match (oldest, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let age = oldest.map_or(0.0, |ms| (now_ms.saturating_sub(ms)).max(0) as f64 / 1000.0);
    Some((due, age))
}

fn license(out: &mut String, state: &AppState) {
    let now = state.clock.now();
    let standing = state.licensing.state(&*state.clock);
    let code = standing.as_str();
    let rows: Vec<(Vec<(&str, &str)>, f64)> = ["community", "valid", "grace", "read_only"]
        .iter()
        .map(|s| (vec![("state", *s)], if *s == code { 1.0 } else { 0.0 }))
        .collect();
    gauge(
        out,
        "bulwark_license_state",
        "The license standing: 1 for the state in force, 0 for the others.",
        &rows,
    );
    if let Some(license) = state.licensing.in_force() {
        let left = (license.claims.expires_at - now).as_seconds_f64() / 86_400.0;
        gauge(
            out,
            "bulwark_license_days_left",
            "Days until the license in force expires (negative once expired; the grace period follows).",
            &[(vec![], left)],
        );
    }
}

fn backup(out: &mut String, state: &AppState) {
    let Some(dir) = state.config.backup.dir.as_ref() else {
        return;
    };
    let age = crate::backup::latest_verified(dir)
        .map(|(at, _)| (state.clock.now() - at).as_seconds_f64().max(0.0));
    help(
        out,
        "bulwark_backup_last_verified_age_seconds",
        "Seconds since the newest verified scheduled backup in `backup.dir` was made (no sample until one is verified).",
        "gauge",
    );
    if let Some(age) = age {
        sample(out, "bulwark_backup_last_verified_age_seconds", &[], age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_reached_over_loopback() {
        let t = |s: &str| local_target(s.parse().unwrap()).to_string();
        assert_eq!(t("0.0.0.0:8420"), "127.0.0.1:8420");
        assert_eq!(t("[::]:8420"), "[::1]:8420");
        assert_eq!(t("10.1.2.3:9000"), "10.1.2.3:9000");
    }
}
