//! The deployment's live checks (`bulwark doctor`), for the owners, admins and auditors of the
//! operator org: the same report `GET /v1/evidence` answers, from the same handler.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use crate::auth::Signed;
use crate::console::Routes;
use crate::console::page::{self, Chrome};
use crate::doctor::Report;
use crate::error::ApiError;
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new().at("/evidence", get(show))
}

#[derive(Template)]
#[template(path = "evidence.html")]
struct EvidencePage {
    chrome: Chrome,
    report: Report,
}

impl EvidencePage {
    /// A check's evidence as one line of JSON.
    fn evidence(value: &serde_json::Value) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }
}

async fn show(State(state): State<AppState>, signed: Signed) -> Result<Response, ApiError> {
    let chrome = Chrome::new(&state, &signed, None, "evidence").await?;
    let Json(report) = crate::api::v1::evidence::show(State(state.clone()), signed).await?;
    Ok(page::html(&EvidencePage { chrome, report }))
}
