//! `GET /v1/evidence`: the deployment's live checks (`bulwark doctor` over HTTP), for the
//! owners, admins and auditors of the operator org (docs/doctor.md).

use axum::Json;
use axum::extract::State;
use bulwark_authz::Action;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Signed;
use crate::decide;
use crate::doctor::Report;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Runs every live check now (a fresh signed checkpoint of each log, then its verification)
/// and answers the report `bulwark doctor --format json` prints. Operator org owners, admins
/// and auditors (`evidence.read`).
#[utoipa::path(get, path = "/v1/evidence", tag = "evidence",
    responses(
        (status = 200, body = Report),
        (status = 403, body = Problem, description = "`forbidden`: not an owner, admin or auditor of the operator org"),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Json<Report>, ApiError> {
    decide::operator(&state, &signed, Action::EvidenceRead).await?;
    Ok(Json(crate::doctor::for_state(&state, true).await))
}

/// The evidence routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}
