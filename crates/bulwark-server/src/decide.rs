//! Authorization decisions for handlers, and the guard that makes sure every protected route
//! made one.
//!
//! A handler asks [`org`] (an action on an org) or [`account`] (the caller's own account) and
//! gets the [`Authorized`] value that core services demand. Each decision is noted for the
//! request; [`guard`] answers `500 internal_error` instead of a successful response from a
//! route outside [`PUBLIC`] that made none, so a route added without a decision fails closed
//! (and the router-walk test finds it).

use std::cell::Cell;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use bulwark_authz::{Action, Facts};
use bulwark_core::authz::{self, Ask, Authorized, Refused, Target};
use bulwark_types::OrgId;

use crate::auth::{Caller, Signed};
use crate::error::ApiError;
use crate::rate_verdict;
use crate::state::AppState;

/// Routes that need no decision: probes, documents, and the steps before one is signed in.
pub const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/.well-known/security.txt",
    "/v1/openapi.json",
    "/v1/setup",
    "/v1/auth/login",
    "/v1/auth/signup",
    "/v1/auth/email/verify",
    "/v1/auth/password/reset-request",
    "/v1/auth/password/reset",
    "/v1/invitations/accept",
    "/v1/sso/discover",
    "/v1/sso/oidc/{connection}/start",
    "/v1/sso/oidc/{connection}/callback",
    "/v1/sso/oidc/{connection}/backchannel-logout",
    "/v1/sso/oidc/{connection}/jwks",
    "/v1/sso/saml/{connection}/metadata",
    "/v1/sso/saml/{connection}/start",
    "/v1/sso/saml/{connection}/acs",
];

/// Changing routes that stay open in read-only mode (license over, see docs/licensing.md):
/// activating a license; POSTs that only read; and the security actions an incident needs —
/// rotating a leaked key or secret, replacing a leaked credential, demoting someone, tightening
/// policies and sign-in rules, keeping the audit log longer, re-sending what was already sent.
/// Every `DELETE` stays open too: revoking and removing access is never refused. Any other
/// POST, PUT or PATCH is refused (a new route is refused until it is listed here).
pub const OPEN_WHEN_READ_ONLY: &[&str] = &[
    "/v1/license",
    "/v1/orgs/{org}/keys/verify",
    "/v1/orgs/{org}/tickets/preview",
    "/v1/orgs/{org}/keys/{key}/rotate",
    "/v1/orgs/{org}/webhooks/endpoints/{endpoint}/rotate",
    "/v1/orgs/{org}/credentials/{credential}/value",
    "/v1/orgs/{org}/members/{user}/role",
    "/v1/orgs/{org}/authz/policies",
    "/v1/orgs/{org}/policy",
    "/v1/orgs/{org}/audit/retention",
    "/v1/orgs/{org}/webhooks/endpoints/{endpoint}/replay",
    "/v1/orgs/{org}/webhooks/deliveries/{delivery}/resend",
    "/v1/orgs/{org}/sso/connections/{connection}/secret",
    "/v1/orgs/{org}/sso/settings",
    "/v1/sso/oidc/{connection}/backchannel-logout",
];

/// What the request's handler decided, as the guard sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decided {
    /// No decision yet.
    Nothing,
    /// A decision, but not on the route's org (an account action, or another org).
    Elsewhere,
    /// A decision on the org the route names (or any decision, on a route that names none).
    OnTheRoute,
}

tokio::task_local! {
    static DECIDED: Cell<Decided>;
    /// The org the request's path names (`/v1/orgs/{org}/…`), if any.
    static ROUTE_ORG: Option<OrgId>;
    static CHANGES: Cell<bool>;
}

/// After a decision allowed a request: refuses (and audits) it when it would change something
/// while the deployment is read-only.
async fn read_only_gate(state: &AppState, authorized: Authorized) -> Result<Authorized, ApiError> {
    // Outside a guarded request (a spawned task, a direct call) it counts as a change.
    if !CHANGES.try_with(Cell::get).unwrap_or(true) || !state.licensing.read_only(&*state.clock) {
        return Ok(authorized);
    }
    state
        .licensing
        .check_writable(
            &*state.store,
            &*state.clock,
            authorized.org(),
            authorized.context(),
        )
        .await?;
    Ok(authorized)
}

/// Notes a decision on `org` (`None`: on the caller's account). On a route that names an org,
/// only a decision on that org counts: a handler that decided on something else and then read
/// the route's org would otherwise pass the guard.
fn note(org: Option<OrgId>) {
    // Outside a guarded request (a unit test calling a handler directly) there is nothing to
    // note.
    let route = ROUTE_ORG.try_with(|r| *r).ok().flatten();
    let _ = DECIDED.try_with(|d| {
        let now = match route {
            Some(route) if org != Some(route) => Decided::Elsewhere,
            _ => Decided::OnTheRoute,
        };
        if d.get() != Decided::OnTheRoute {
            d.set(now);
        }
    });
}

/// The org a request's path names, on a route under `/v1/orgs/{org}` (API), `/orgs/{org}`
/// (console) or `/scim/v2/orgs/{org}` (SCIM).
fn route_org(template: Option<&str>, uri: &axum::http::Uri) -> Option<OrgId> {
    let template = template?;
    let at = if template.starts_with("/v1/orgs/{org}") {
        3
    } else if template.starts_with("/scim/v2/orgs/{org}") {
        4
    } else if template.starts_with("/orgs/{org}") {
        2
    } else {
        return None;
    };
    uri.path().split('/').nth(at)?.parse().ok()
}

/// Refuses a successful answer from a protected route that made no decision.
pub async fn guard(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let path = matched.map(|m| m.as_str().to_owned());
    let changes = matches!(
        *req.method(),
        axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH
    ) && !path
        .as_deref()
        .is_some_and(|p| OPEN_WHEN_READ_ONLY.contains(&p));
    let route = route_org(path.as_deref(), req.uri());
    let (decided, rate, mut response) = DECIDED
        .scope(
            Cell::new(Decided::Nothing),
            ROUTE_ORG.scope(route, async {
                let (rate, response) =
                    rate_verdict::scope(CHANGES.scope(Cell::new(changes), next.run(req))).await;
                (DECIDED.with(Cell::get), rate, response)
            }),
        )
        .await;
    if let Some(verdict) = rate {
        rate_verdict::headers(&mut response, verdict);
    }
    let public = path
        .as_deref()
        .is_none_or(|p| PUBLIC.contains(&p) || crate::console::is_public(p));
    if decided == Decided::OnTheRoute || public || !response.status().is_success() {
        return response;
    }
    let why = if decided == Decided::Nothing {
        "a protected route answered without an authorization decision; refused"
    } else {
        "a route of one org answered on a decision about something else; refused"
    };
    tracing::error!(route = path.as_deref().unwrap_or_default(), "{why}");
    ApiError::internal(why).into_response()
}

/// Decides `action` on `target` in `org` for the signed-in caller.
///
/// # Errors
/// 404 `not_found` (no such org or target, or not a member), 401 `unauthenticated` (the org's
/// own timeouts ended the session), 403 `mfa_required`, 403 `forbidden` (policy), storage
/// failures.
pub async fn org(
    state: &AppState,
    signed: &Signed,
    org: OrgId,
    action: Action,
    target: Target,
) -> Result<Authorized, ApiError> {
    org_with(state, signed, org, action, target, Facts::default()).await
}

/// As [`org`], with further facts (the role being granted).
///
/// # Errors
/// As [`org`].
pub async fn org_with(
    state: &AppState,
    signed: &Signed,
    org: OrgId,
    action: Action,
    target: Target,
    facts: Facts,
) -> Result<Authorized, ApiError> {
    let ask = Ask {
        session: &signed.session,
        sessions: state.sessions,
        org,
        action,
        target,
        facts,
        context: signed.context.clone(),
    };
    let outcome = authz::authorize(&*state.store, &state.authz, &*state.clock, ask).await?;
    note(Some(org));
    match outcome {
        Ok(authorized) => read_only_gate(state, authorized).await,
        Err(Refused::NotFound) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such resource",
        )),
        Err(Refused::SessionExpired) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in first: no valid session",
        )),
        Err(Refused::MfaRequired) => {
            let (enrolled, _) = state
                .session_cache
                .mfa_state(&*state.store, signed.session.user_id)
                .await
                .map_err(ApiError::from_store)?;
            Err(ApiError::from(bulwark_core::CoreError::MfaRequired {
                enroll: !enrolled,
            }))
        }
        Err(Refused::SsoRequired) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sso_required",
            "this organisation requires single sign-on: sign in through its identity provider",
        )),
        Err(Refused::Forbidden(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the organisation's policies do not allow this",
        )),
    }
}

/// Decides a deployment-wide `action` (the license, creating orgs) in the operator org: the
/// first org, made by setup.
///
/// # Errors
/// 409 `setup_pending` before setup; otherwise as [`org`].
pub async fn operator(
    state: &AppState,
    signed: &Signed,
    action: Action,
) -> Result<Authorized, ApiError> {
    let usage = state
        .store
        .system()
        .await
        .map_err(ApiError::from_store)?
        .license_usage()
        .await
        .map_err(ApiError::from_store)?;
    let org = usage.operator_org.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "setup_pending",
            "setup has not been completed",
        )
    })?;
    self::org(state, signed, org, action, Target::Org).await
}

/// As [`org`] for a route machines may call too: a person is decided as by [`org`]; an API key
/// only on the org itself, in its own org, within its scopes.
///
/// # Errors
/// As [`org`].
pub async fn org_caller(
    state: &AppState,
    caller: &Caller,
    org: OrgId,
    action: Action,
) -> Result<Authorized, ApiError> {
    let (key, context) = match caller {
        Caller::Person(signed) => return self::org(state, signed, org, action, Target::Org).await,
        Caller::Key { caller, context } => (caller, context.clone()),
    };
    let outcome = authz::authorize_key(
        &*state.store,
        &state.authz,
        &*state.clock,
        key,
        org,
        action,
        context,
    )
    .await?;
    note(Some(org));
    match outcome {
        Ok(authorized) => read_only_gate(state, authorized).await,
        Err(Refused::Forbidden(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this API key's scopes do not allow this",
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such resource",
        )),
    }
}

/// Decides an action on the caller's own account.
///
/// # Errors
/// 403 `forbidden` if policy refuses it (the built-in policies never do).
pub fn account(state: &AppState, signed: &Signed) -> Result<Authorized, ApiError> {
    let decided = authz::authorize_account(&state.authz, &signed.session, signed.context.clone());
    note(None);
    decided.map_err(|_| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the policies do not allow this",
        )
    })
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/v1/forgot", get(|| async { "done without asking" }))
            .route(
                "/v1/asked",
                get(|| async {
                    note(None);
                    "asked first"
                }),
            )
            .route(
                "/v1/orgs/{org}/asked",
                get(
                    |axum::extract::Path(org): axum::extract::Path<String>| async move {
                        note(org.parse().ok());
                        "asked about this org"
                    },
                ),
            )
            .route(
                "/v1/orgs/{org}/asked-elsewhere",
                get(|| async {
                    note(None);
                    note(Some(OrgId::from_uuid(uuid::Uuid::nil())));
                    "asked about the account and another org"
                }),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/v1/refused",
                get(|| async { StatusCode::FORBIDDEN.into_response() }),
            )
            .route_layer(axum::middleware::from_fn(guard))
    }

    async fn status(path: &str) -> StatusCode {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        app().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_protected_route_that_made_no_decision_fails_closed() {
        assert_eq!(
            status("/v1/forgot").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status("/v1/asked").await, StatusCode::OK);
        assert_eq!(status("/healthz").await, StatusCode::OK);
        // A refusal needs no decision to pass through (it may come before one is made).
        assert_eq!(status("/v1/refused").await, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn an_org_route_needs_a_decision_on_that_org() {
        let org = OrgId::from_uuid(uuid::Uuid::from_u128(7));
        assert_eq!(
            status(&format!("/v1/orgs/{org}/asked")).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&format!("/v1/orgs/{org}/asked-elsewhere")).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
