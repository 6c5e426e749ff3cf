//! The operator console: server-rendered pages at `/`, over the same extractors, decisions,
//! core services, throttles and audit as `/v1` (ADR 0016).
//!
//! - Pages are askama templates (escaped by default; nothing from a user is marked safe).
//! - Every form posts with the session cookie and a `_csrf` field, which [`shell`] hands to
//!   the API's own CSRF check; sign-out is a POST.
//! - Errors are the API's problems, rendered as pages by [`errors`] (with the request id); an
//!   anonymous page view goes to `/login?next=…`.
//! - The script files in `/assets/` only improve pages that work without them.

mod access;
mod account;
pub mod assets;
mod audit;
pub mod csp;
pub mod errors;
mod form;
mod keys;
mod license;
pub mod page;
mod public;
mod secret;
mod shell;
mod signin;
mod vault;
mod webhooks;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Console routes that need no decision: the steps before one is signed in, static files, the
/// CSP report endpoint.
pub fn is_public(template: &str) -> bool {
    ["/", "/login", "/assets/{file}", "/csp-report"].contains(&template)
        || public::PUBLIC.contains(&template)
}

/// The console's routes, behind the form shell.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(signin::router())
        .merge(public::router())
        .merge(access::router())
        .merge(keys::router())
        .merge(audit::router())
        .merge(vault::router())
        .merge(webhooks::router())
        .merge(license::router())
        .merge(account::router())
        .route("/assets/{file}", get(assets::serve))
        .route("/csp-report", post(csp::report))
        .route_layer(axum::middleware::from_fn(shell::shell))
}
