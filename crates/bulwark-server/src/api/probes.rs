//! Liveness and readiness probes (public, unauthenticated, kept out of the access log).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Probe answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeOut {
    /// `ok`, `ready` or `unavailable`.
    pub status: &'static str,
    /// Each check and its state (`ok` or `failing`), for readiness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
    /// Why the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `production` or `development` (`[server] mode`), for readiness: a development server
    /// runs with failing production gates as warnings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// The newest verified scheduled backup, when `backup.dir` is set (readiness does not
    /// depend on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupOut>,
}

/// The newest verified scheduled backup.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackupOut {
    /// `ok`; `stale` when the newest is older than twice `backup.schedule`; `none` when there
    /// is none yet.
    pub status: &'static str,
    /// When its snapshot was taken (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_verified_at: Option<String>,
    /// Its age in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_secs: Option<u64>,
}

fn backup_status(state: &AppState) -> Option<BackupOut> {
    let dir = state.config.backup.dir.as_ref()?;
    let every = state.config.backup.every()?;
    let Some((at, _)) = crate::backup::latest_verified(dir) else {
        return Some(BackupOut {
            status: "none",
            last_verified_at: None,
            age_secs: None,
        });
    };
    let age = u64::try_from((state.clock.now() - at).whole_seconds()).unwrap_or(0);
    Some(BackupOut {
        status: if age > every.as_secs().saturating_mul(2) {
            "stale"
        } else {
            "ok"
        },
        last_verified_at: at
            .format(&time::format_description::well_known::Rfc3339)
            .ok(),
        age_secs: Some(age),
    })
}

/// Readiness checks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// The database answers.
    pub database: &'static str,
    /// The schema is at this binary's version.
    pub migrations: &'static str,
    /// The workspace seed is loaded.
    pub keys: &'static str,
    /// Not shutting down.
    pub accepting: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, body = ProbeOut)))]
async fn healthz() -> Json<ProbeOut> {
    Json(ProbeOut {
        status: "ok",
        checks: None,
        reason: None,
        mode: None,
        backup: None,
    })
}

/// The server can take traffic: database reachable, migrations current, keys loaded.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses((status = 200, body = ProbeOut), (status = 503, body = ProbeOut)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<ProbeOut>) {
    let health = state.store.health().await;
    let flag = |ok: bool| if ok { "ok" } else { "failing" };
    let checks = Checks {
        database: flag(health.reachable),
        migrations: flag(health.migrations_current),
        keys: flag(state.keys_ok()),
        accepting: flag(!state.is_draining()),
    };
    let reason = [
        (!health.reachable).then_some("the database is unreachable"),
        (health.reachable && !health.migrations_current)
            .then_some("the database schema is not at this version: run `bulwark migrate`"),
        (!state.keys_ok()).then_some("the workspace keys are not loaded"),
        state.is_draining().then_some("the server is shutting down"),
    ]
    .into_iter()
    .flatten()
    .next();
    match reason {
        None => (
            StatusCode::OK,
            Json(ProbeOut {
                status: "ready",
                checks: Some(checks),
                reason: None,
                mode: Some(state.config.server.mode().as_str()),
                backup: backup_status(&state),
            }),
        ),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ProbeOut {
                status: "unavailable",
                checks: Some(checks),
                reason: Some(r.into()),
                mode: Some(state.config.server.mode().as_str()),
                backup: backup_status(&state),
            }),
        ),
    }
}

/// The probe routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}
