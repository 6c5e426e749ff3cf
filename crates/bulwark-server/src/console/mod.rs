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
mod evidence;
mod form;
mod keys;
mod license;
pub mod page;
mod public;
mod secret;
mod shell;
mod signin;
mod tickets;
mod vault;
mod webhooks;

use axum::Router;
use axum::routing::{MethodRouter, get, post};

use crate::state::AppState;

/// Console routes that need no decision: the steps before one is signed in, static files, the
/// CSP report endpoint.
pub fn is_public(template: &str) -> bool {
    ["/", "/login", "/login/sso", "/assets/{file}", "/csp-report"].contains(&template)
        || public::PUBLIC.contains(&template)
}

/// A router that remembers the paths it was given, so the router-walk test can visit every
/// console route (there is no other list to forget a route in).
pub struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    /// No routes.
    #[must_use]
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    /// Adds `path`.
    #[must_use]
    pub fn at(mut self, path: &'static str, method: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, method);
        self.paths.push(path);
        self
    }

    /// Adds every route of `other`.
    #[must_use]
    pub fn merge(mut self, other: Self) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.extend(other.paths);
        self
    }
}

/// Every console route's path template.
#[must_use]
pub fn paths() -> Vec<&'static str> {
    all().paths
}

fn all() -> Routes {
    Routes::new()
        .merge(signin::router())
        .merge(public::router())
        .merge(access::router())
        .merge(keys::router())
        .merge(audit::router())
        .merge(vault::router())
        .merge(webhooks::router())
        .merge(license::router())
        .merge(evidence::router())
        .merge(tickets::router())
        .merge(account::router())
        .at("/assets/{file}", get(assets::serve))
        .at("/csp-report", post(csp::report))
}

/// The console's routes, behind the form shell.
pub fn router() -> Router<AppState> {
    all()
        .router
        .route_layer(axum::middleware::from_fn(shell::shell))
}
