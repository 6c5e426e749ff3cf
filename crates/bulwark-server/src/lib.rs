//! Bulwark's HTTP layer. Thin: it extracts and validates, calls `bulwark-core`, and maps the
//! result. `startup` is the only module that knows both axum and the concrete stores.

pub mod api;
pub mod auth;
pub mod backup;
pub mod client_ip;
pub mod config;
pub mod conn;
pub mod console;
pub mod decide;
pub mod deletion;
pub mod doctor;
pub mod egress;
pub mod error;
pub mod evidence;
pub mod extract;
pub mod limit;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod org_route;
pub mod rate_verdict;
pub mod scim;
pub mod sso;
pub mod startup;
pub mod state;
pub mod support;
pub mod vault;
pub mod workers;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::middleware::headers::TlsSeen;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Bulwark", description = "Self-hosted trust plane: identity, sessions, authorization, audit, vault, webhooks, licensing.", license(name = "Apache-2.0")),
    tags(
        (name = "setup", description = "First organisation and owner"),
        (name = "auth", description = "Sign-in, sessions and sign-out"),
        (name = "access", description = "Members, roles, teams and the org's authorization policies"),
        (name = "keys", description = "API keys of an organisation (a separate machine channel)"),
        (name = "audit", description = "The tamper-evident audit log of an organisation"),
        (name = "vault", description = "Integration credentials: used by Bulwark, never read back"),
        (name = "webhooks", description = "Outbound webhooks: endpoints, signed deliveries, the attempt log"),
        (name = "tickets", description = "Push a record to GitHub Issues or Jira with a vault credential"),
        (name = "license", description = "The deployment's offline license: status and activation"),
        (name = "evidence", description = "The deployment's live security checks (`bulwark doctor`)"),
        (name = "probes", description = "Liveness and readiness"),
        (name = "meta", description = "API description and security contact"),
    )
)]
struct ApiDoc;

/// Every route with its OpenAPI description.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::probes::router())
        .merge(api::well_known::router())
        .merge(api::v1::setup::router())
        .merge(api::v1::auth::router())
        .merge(api::v1::mfa::router())
        .merge(api::v1::orgs::router())
        .merge(api::v1::deletion::router())
        .merge(api::v1::access::router())
        .merge(api::v1::keys::router())
        .merge(api::v1::credentials::router())
        .merge(api::v1::webhooks::router())
        .merge(api::v1::tickets::router())
        .merge(api::v1::license::router())
        .merge(api::v1::evidence::router())
        .merge(api::v1::recovery::router())
        .merge(api::v1::sso::router())
        .merge(api::v1::audit::router())
}

/// The OpenAPI document as pretty JSON, generated from the code.
#[must_use]
pub fn openapi_json() -> String {
    let (_, doc) = routes().split_for_parts();
    let Ok(mut doc) = serde_json::to_value(&doc) else {
        return String::new();
    };
    openapi::complete(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The whole application with its request path (see `middleware`).
pub fn app(state: AppState, tls_seen: bool) -> Router {
    let http = &state.config.http;
    let limit = http.body_limit_bytes;
    let timeout = Duration::from_secs(http.request_timeout_secs);
    let cors = cors_layer(&http.cors_allowed_origins);
    let (router, _) = routes().split_for_parts();
    router
        .merge(console::router())
        .merge(scim::router())
        .route_layer(axum::middleware::from_fn(decide::guard))
        .route_layer(axum::middleware::from_fn(
            middleware::observe::matched_route,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower::util::option_layer(cors))
        .layer(axum::middleware::from_fn_with_state(
            TlsSeen(tls_seen),
            middleware::observe::observe,
        ))
        .with_state(state)
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-csrf-token"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600)),
    )
}
