//! The license: the deployment's standing on every org's overview, and for the operator org's
//! owners and admins the license page (`/v1/license`'s own handler) with activation.

use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use bulwark_core::licensing::State as Standing_;
use bulwark_types::OrgId;

use crate::api::v1::license::{self as api, StatusOut};
use crate::auth::Signed;
use crate::console::Routes;
use crate::console::access::Done;
use crate::console::form;
use crate::console::page::{self, Chrome, PageForm};
use crate::error::ApiError;
use crate::state::AppState;

/// The routes.
pub fn router() -> Routes {
    Routes::new().at("/license", get(show).post(activate))
}

/// The deployment's standing, as every member may see it (writes are refused when read-only
/// whoever asks).
pub struct Standing {
    /// `community`, `valid`, `grace` or `read_only`.
    pub state: &'static str,
    /// In words.
    pub summary: String,
    /// In the grace period.
    pub grace: bool,
    /// Read-only.
    pub read_only: bool,
}

/// The standing now.
///
/// # Errors
/// None today; kept fallible for a standing read from the store.
pub async fn standing(
    state: &AppState,
    _signed: &Signed,
    _org: OrgId,
) -> Result<Standing, ApiError> {
    let now = state.licensing.state(&*state.clock);
    let summary = match &now {
        Standing_::Community => "no license: community limits".to_owned(),
        Standing_::Valid => "licensed".to_owned(),
        Standing_::Grace(until) => format!(
            "expired; everything keeps working until {}",
            page::When(*until)
        ),
        Standing_::ReadOnly => {
            "expired past its grace period: changes are refused until a license is activated"
                .to_owned()
        }
    };
    Ok(Standing {
        state: now.as_str(),
        grace: matches!(now, Standing_::Grace(_)),
        read_only: matches!(now, Standing_::ReadOnly),
        summary,
    })
}

#[derive(Template)]
#[template(path = "license.html")]
struct LicensePage {
    chrome: Chrome,
    status: StatusOut,
    error: String,
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<Done>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::new(&state, &signed, None, "license")
        .await?
        .with_notice(q.done.as_deref());
    let Json(status) = api::show(State(state.clone()), signed).await?;
    Ok(page::html(&LicensePage {
        chrome,
        status,
        error: String::new(),
    }))
}

async fn activate(
    State(state): State<AppState>,
    signed: Signed,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let file = form::field(&fields, "license").trim().to_owned();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match api::activate(
        State(state.clone()),
        signed.clone(),
        headers,
        Bytes::from(file),
    )
    .await
    {
        Ok(_) => Ok(page::see_other("/license?done=license_activated")),
        Err(e)
            if e.status().is_client_error()
                && e.code() != "forbidden"
                && e.code() != "not_found" =>
        {
            let chrome = Chrome::new(&state, &signed, None, "license").await?;
            let Json(status) = api::show(State(state.clone()), signed).await?;
            let error = format!("Not activated ({}): {}", e.code(), e.detail());
            Ok(page::html_status(
                e.status(),
                &LicensePage {
                    chrome,
                    status,
                    error,
                },
            ))
        }
        Err(e) => Err(e),
    }
}
