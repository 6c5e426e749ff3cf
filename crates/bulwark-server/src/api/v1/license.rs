//! The deployment's license: its status, and activation of a license file (offline; nothing is
//! ever sent anywhere). Deployment-wide, so reached through the operator org (the first org,
//! made by setup): its owners and admins read the status, only its owners activate.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use bulwark_authz::Action;
use bulwark_core::licensing::{InForce, Status};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Signed;
use crate::decide;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// The license in force.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LicenseOut {
    /// The license's id.
    pub license_id: String,
    /// Who holds it.
    pub licensee: String,
    /// Its serial.
    pub serial: u32,
    /// The key id that signed it (`lk_…`).
    pub key_id: String,
    /// Valid from (RFC 3339).
    pub not_before: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
    /// Grace period after expiry, in days.
    pub grace_days: u32,
    /// When the deployment becomes read-only (RFC 3339).
    pub read_only_at: String,
    /// Features granted.
    pub features: Vec<String>,
    /// When it was activated here (RFC 3339).
    pub activated_at: String,
}

/// Limits in force (absent: unlimited) and what is in use.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageOut {
    /// Organisations allowed.
    pub orgs_limit: Option<u32>,
    /// Organisations that exist.
    pub orgs: u64,
    /// Seats allowed (distinct users holding a membership).
    pub seats_limit: Option<u32>,
    /// Seats taken.
    pub seats: u64,
}

/// Where the deployment stands.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusOut {
    /// The id licenses are issued to (`dep_…`).
    pub deployment_id: String,
    /// The public key (base64 Ed25519) that verifies this deployment's activation receipts.
    pub deployment_public_key: String,
    /// `community` (no license), `valid`, `grace` (expired, every entitlement still holds) or
    /// `read_only` (changes refused; sign-in, the audit log and export stay open).
    pub state: String,
    /// The time standing is judged at: the later of the clock and the latest time seen.
    pub judged_at: String,
    /// The license in force; absent in community mode.
    pub license: Option<LicenseOut>,
    /// Limits and usage.
    pub usage: UsageOut,
    /// Activation records in the store that this deployment did not write: ignored, and a sign
    /// of tampering or of records copied from another deployment.
    pub ignored_activations: usize,
    /// Every activation recorded on this deployment, oldest first (ignored rows included).
    pub history: Vec<ActivationOut>,
}

/// One activation in the history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivationOut {
    /// Position in the history, from 1.
    pub seq: u64,
    /// The license's id.
    pub license_id: String,
    /// Its serial.
    pub serial: u32,
    /// When it was activated (RFC 3339).
    #[schema(format = DateTime)]
    pub activated_at: String,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn license_out(l: &InForce) -> LicenseOut {
    let c = &l.claims;
    LicenseOut {
        license_id: c.license_id.clone(),
        licensee: c.licensee.clone(),
        serial: c.serial,
        key_id: l.key_id.clone(),
        not_before: rfc3339(c.not_before),
        expires_at: rfc3339(c.expires_at),
        grace_days: c.grace_days,
        read_only_at: rfc3339(c.read_only_at()),
        features: c.features.clone(),
        activated_at: rfc3339(l.activated_at),
    }
}

fn status_out(s: Status) -> StatusOut {
    StatusOut {
        history: s
            .history
            .iter()
            .map(|a| ActivationOut {
                seq: a.seq,
                license_id: a.license_id.clone(),
                serial: a.serial,
                activated_at: rfc3339(a.activated_at),
            })
            .collect(),
        deployment_id: s.deployment_id,
        deployment_public_key: s.deployment_public_key,
        state: s.state.as_str().into(),
        judged_at: rfc3339(s.judged_at),
        license: s.license.as_ref().map(license_out),
        usage: UsageOut {
            orgs_limit: s.limits.orgs,
            orgs: s.usage.orgs,
            seats_limit: s.limits.seats,
            seats: s.usage.seats,
        },
        ignored_activations: s.ignored_activations,
    }
}

/// The license status: deployment id, state, the license in force, limits and usage (owners
/// and admins of the operator org).
#[utoipa::path(get, path = "/v1/license", tag = "license",
    responses(
        (status = 200, body = StatusOut),
        (status = 403, body = Problem, description = "`forbidden`: not an owner or admin of the operator org"),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Json<StatusOut>, ApiError> {
    let authorized = decide::operator(&state, &signed, Action::LicenseRead).await?;
    let status = state
        .licensing
        .status_for(&*state.store, &*state.clock, &authorized)
        .await?;
    Ok(Json(status_out(status)))
}

/// Activates a license file (owners of the operator org): the body is the file exactly as the
/// vendor issued it. It must be signed by a trusted key, issued to this deployment, valid now,
/// and not older than what was activated here before. Activations and refusals are audited.
#[utoipa::path(post, path = "/v1/license", tag = "license",
    request_body(content = String, content_type = "application/json", description = "The license file"),
    responses(
        (status = 201, body = StatusOut),
        (status = 403, body = Problem, description = "`forbidden`: not an owner of the operator org"),
        (status = 415, body = Problem, description = "`unsupported_media_type`"),
        (status = 422, body = Problem, description = "`license_malformed`, `license_untrusted_key`, `license_bad_signature`, `license_not_bound`, `license_other_deployment`, `license_not_yet_valid`, `license_expired`, `license_superseded`, `license_serial_conflict`, `license_clock_behind`, `license_history_corrupt`"),
    ))]
pub(crate) async fn activate(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<StatusOut>), ApiError> {
    let authorized = decide::operator(&state, &signed, Action::LicenseActivate).await?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the license file as `application/json`",
        ));
    }
    state
        .licensing
        .activate(&*state.store, &*state.clock, &body, authorized.context())
        .await?;
    let status = state.licensing.status(&*state.store, &*state.clock).await?;
    Ok((StatusCode::CREATED, Json(status_out(status))))
}

/// The license routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, activate))
}
