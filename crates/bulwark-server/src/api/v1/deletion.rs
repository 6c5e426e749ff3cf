//! An org's deletion: its owners schedule it with a grace window, see it, and cancel it before
//! it is due (docs/deletion.md). The purge and its certificate happen on the host.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::ValidJson;
use crate::org_route::{OrgAuthorized, act};
use crate::state::AppState;
use bulwark_core::deletion::{self, Requester};

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// How long to wait before the purge.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletionIn {
    /// The grace window in days (1–90; 7 when absent): the org is purged when it ends unless
    /// the deletion is cancelled before.
    #[schema(minimum = 1, maximum = 90)]
    pub grace_days: Option<u32>,
}

/// The org's deletion: `none`, or `scheduled` with when and by whom.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeletionOut {
    /// `none` or `scheduled`.
    #[schema(pattern = "^(none|scheduled)$")]
    pub state: &'static str,
    /// When it was asked (RFC 3339); absent when none is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    /// Who asked: `usr_…` or `local operator`; absent when none is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// When the org is purged unless cancelled before (RFC 3339); absent when none is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
}

impl From<Option<bulwark_core::model::OrgDeletion>> for DeletionOut {
    fn from(d: Option<bulwark_core::model::OrgDeletion>) -> Self {
        match d {
            Some(d) => Self {
                state: "scheduled",
                requested_at: Some(rfc3339(d.requested_at)),
                requested_by: Some(d.requested_by),
                due_at: Some(rfc3339(d.due_at)),
            },
            None => Self {
                state: "none",
                requested_at: None,
                requested_by: None,
                due_at: None,
            },
        }
    }
}

/// The org's scheduled deletion (owners).
#[utoipa::path(get, path = "/v1/orgs/{org}/deletion", tag = "orgs",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 200, body = DeletionOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
    ))]
pub(crate) async fn get_deletion(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::OrgDelete>,
) -> Result<Json<DeletionOut>, ApiError> {
    let scheduled = deletion::status(&*state.store, &Requester::Owner(&authorized)).await?;
    Ok(Json(scheduled.into()))
}

/// Schedules the org's deletion (owners; audited): after the grace window every row of the
/// org is deleted, its vault secret destroyed and its audit log sealed; the host keeps a signed
/// certificate. The operator org cannot be deleted.
#[utoipa::path(put, path = "/v1/orgs/{org}/deletion", tag = "orgs", request_body = DeletionIn,
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 201, body = DeletionOut),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`invalid_state`: scheduled already, or the operator org"),
        (status = 422, body = Problem, description = "`validation_failed`"),
    ))]
pub(crate) async fn put_deletion(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::OrgDelete>,
    ValidJson(body): ValidJson<DeletionIn>,
) -> Result<(StatusCode, Json<DeletionOut>), ApiError> {
    let days = body.grace_days.unwrap_or(7);
    if !(deletion::MIN_GRACE_DAYS..=deletion::MAX_GRACE_DAYS).contains(&days) {
        return Err(ApiError::invalid_field(
            "/grace_days",
            "must be 1 to 90 days",
        ));
    }
    let grace = std::time::Duration::from_secs(u64::from(days) * 86_400);
    let scheduled = deletion::schedule(
        &*state.store,
        &*state.clock,
        &Requester::Owner(&authorized),
        grace,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(Some(scheduled).into())))
}

/// Cancels the org's scheduled deletion (owners; audited).
#[utoipa::path(delete, path = "/v1/orgs/{org}/deletion", tag = "orgs",
    params(("org" = String, Path, description = "`org_…`")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 403, body = Problem, description = "`forbidden`, `mfa_required`"),
        (status = 404, body = Problem, description = "`not_found`"),
        (status = 409, body = Problem, description = "`invalid_state`: no deletion is scheduled"),
    ))]
pub(crate) async fn cancel_deletion(
    State(state): State<AppState>,
    OrgAuthorized { authorized, .. }: OrgAuthorized<act::OrgDelete>,
) -> Result<StatusCode, ApiError> {
    deletion::cancel(&*state.store, &*state.clock, &Requester::Owner(&authorized)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_deletion, put_deletion, cancel_deletion))
}
