//! The org of an org route and the decision on it, as extractors.
//!
//! Every route under `/v1/orgs/{org}/…` acts in the org its path names. [`OrgPath`] parses that
//! segment (a malformed id is the same 404 as an unknown org). [`OrgAuthorized<A>`] goes one
//! step further: it is the signed-in person *allowed `A` on that org*, decided before the
//! handler runs, so a handler that names it cannot forget the decision, decide a different
//! action, or decide on another org. [`OrgCaller<A>`] is the same for routes that API keys may
//! call too. Decisions that need more than the org (a member, a team, the role being granted)
//! stay in the handler: [`OrgPath`] with [`decide::org`] / [`decide::org_with`].
//!
//! The decision runs before the body is read, so a caller without the right learns nothing
//! from how a body would have been validated.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use bulwark_authz::Action;
use bulwark_core::authz::{Authorized, Target};
use bulwark_types::OrgId;

use crate::auth::{Caller, Signed};
use crate::decide;
use crate::error::ApiError;
use crate::state::AppState;

/// The org named by the route's `{org}` segment.
#[derive(Debug, Clone, Copy)]
pub struct OrgPath(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for OrgPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        params
            .iter()
            .find(|(name, _)| *name == "org")
            .and_then(|(_, raw)| raw.parse().ok())
            .map(Self)
            .ok_or_else(ApiError::not_found)
    }
}

/// An org action decided by an extractor; one marker type per action (see [`act`]).
pub trait OrgAction: Send + Sync + 'static {
    /// The action decided.
    const ACTION: Action;
}

/// The marker types of [`OrgAction`], named after the actions they decide.
pub mod act {
    use super::{Action, OrgAction};

    macro_rules! actions {
        ($($name:ident),* $(,)?) => {
            $(
                #[doc = concat!("Decides `Action::", stringify!($name), "`.")]
                pub struct $name;
                impl OrgAction for $name {
                    const ACTION: Action = Action::$name;
                }
            )*
        };
    }

    actions!(
        AuditRead,
        AuditRetentionWrite,
        AuthzPoliciesRead,
        AuthzPoliciesWrite,
        CredentialsRead,
        CredentialsWrite,
        InvitationsRead,
        InvitationsRevoke,
        KeysRead,
        KeysWrite,
        MembersRead,
        OrgDelete,
        OrgPolicyRead,
        OrgPolicyWrite,
        ScimProvision,
        SpaceKeysVerify,
        SpaceKeysWrite,
        SsoRead,
        SsoWrite,
        TeamsRead,
        TeamsWrite,
        TicketsPush,
        WebhooksRead,
        WebhooksSend,
        WebhooksWrite,
    );
}

/// A signed-in person allowed `A` on the route's org (decided on the org itself).
pub struct OrgAuthorized<A> {
    /// The route's org.
    pub org: OrgId,
    /// The person's session and audit context.
    pub signed: Signed,
    /// The decision, to hand to the core service.
    pub authorized: Authorized,
    action: PhantomData<A>,
}

impl<A: OrgAction> OrgAuthorized<A> {
    /// Decides `A` on `org` for `signed`, as the extractor does (for a console page that shows
    /// more than one section).
    ///
    /// # Errors
    /// As [`decide::org`].
    pub async fn decide(state: &AppState, signed: Signed, org: OrgId) -> Result<Self, ApiError> {
        let authorized = decide::org(state, &signed, org, A::ACTION, Target::Org).await?;
        Ok(Self {
            org,
            signed,
            authorized,
            action: PhantomData,
        })
    }
}

impl<A: OrgAction> FromRequestParts<AppState> for OrgAuthorized<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let signed = Signed::from_request_parts(parts, state).await?;
        let OrgPath(org) = OrgPath::from_request_parts(parts, state).await?;
        Self::decide(state, signed, org).await
    }
}

/// A person or an API key allowed `A` on the route's org.
pub struct OrgCaller<A> {
    /// The route's org.
    pub org: OrgId,
    /// Who is calling.
    pub caller: Caller,
    /// The decision, to hand to the core service.
    pub authorized: Authorized,
    action: PhantomData<A>,
}

impl<A: OrgAction> OrgCaller<A> {
    /// Decides `A` on `org` for a signed-in person, as the extractor does.
    ///
    /// # Errors
    /// As [`decide::org`].
    pub async fn person(state: &AppState, signed: Signed, org: OrgId) -> Result<Self, ApiError> {
        let authorized = decide::org(state, &signed, org, A::ACTION, Target::Org).await?;
        Ok(Self {
            org,
            caller: Caller::Person(signed),
            authorized,
            action: PhantomData,
        })
    }
}

impl<A: OrgAction> FromRequestParts<AppState> for OrgCaller<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let OrgPath(org) = OrgPath::from_request_parts(parts, state).await?;
        let authorized = decide::org_caller(state, &caller, org, A::ACTION).await?;
        Ok(Self {
            org,
            caller,
            authorized,
            action: PhantomData,
        })
    }
}
