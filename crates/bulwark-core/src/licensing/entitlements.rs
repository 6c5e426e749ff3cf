//! Entitlements: what the license in force allows (the community limits without one), where
//! the deployment stands, the organisation and seat limits checked against the usage counted by
//! the caller, licensed features, the read-only mode after the grace period, and the audited
//! refusals.

use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
use bulwark_license::Standing;
use bulwark_types::{Clock, OrgId};

use super::{Licensing, State};
use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::model::LicenseUsage;
use crate::ports::Store;

/// What a deployment without a license may do: one organisation, 25 seats, no licensed feature.
pub const COMMUNITY: Limits = Limits {
    orgs: Some(1),
    seats: Some(25),
};

/// Limits in force (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Organisations.
    pub orgs: Option<u32>,
    /// Seats: distinct users holding a membership.
    pub seats: Option<u32>,
}

/// The feature that unlocks ticket integrations.
pub const TICKETS: &str = "tickets";

/// Features this build checks, and where.
pub const FEATURES: &[(&str, &str)] = &[(
    TICKETS,
    "pushing audit records to GitHub Issues or Jira (`/v1/orgs/{org}/tickets/…`)",
)];

impl Licensing {
    /// Where the deployment stands now.
    #[must_use]
    pub fn state(&self, clock: &dyn Clock) -> State {
        let Some(license) = self.in_force() else {
            return State::Community;
        };
        match license.claims.standing(self.judged_at(clock)) {
            // Activation refuses a license not yet valid; a clock wound back after activation
            // is judged at the latest time seen, so this is only reachable by a clock error.
            Standing::NotYetValid | Standing::Valid => State::Valid,
            Standing::Grace(until) => State::Grace(until),
            Standing::Expired => State::ReadOnly,
        }
    }

    /// Whether the deployment is read-only (license and grace period over). On every changing
    /// request, so it reads the license in place instead of copying it.
    #[must_use]
    pub fn read_only(&self, clock: &dyn Clock) -> bool {
        let at = self.judged_at(clock);
        self.in_force
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|l| l.claims.standing(at) == Standing::Expired)
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.in_force().map_or(COMMUNITY, |l| Limits {
            orgs: l.claims.limits.orgs,
            seats: l.claims.limits.seats,
        })
    }

    /// What adding `adding` would exceed, given `usage` (counted under the license-clock lock
    /// by the caller, in the transaction that adds it).
    #[must_use]
    pub fn exceeded(&self, usage: &LicenseUsage, adding: Adding) -> Option<Denial> {
        let limits = self.limits();
        match adding {
            Adding::Org => {
                let limit = limits.orgs?;
                (usage.orgs >= u64::from(limit)).then(|| Denial {
                    entitlement: "orgs".into(),
                    code: "license_limit_orgs",
                    message: format!(
                        "the license allows {limit} organisation(s) and {} exist; nothing was \
                         created",
                        usage.orgs
                    ),
                    limit: Some(u64::from(limit)),
                    in_use: Some(usage.orgs),
                    org: None,
                })
            }
            Adding::Seat(org) => {
                let limit = limits.seats?;
                (usage.seats >= u64::from(limit)).then(|| Denial {
                    entitlement: "seats".into(),
                    code: "license_limit_seats",
                    message: format!(
                        "the license allows {limit} seat(s) and {} are taken; nothing was changed",
                        usage.seats
                    ),
                    limit: Some(u64::from(limit)),
                    in_use: Some(usage.seats),
                    org: Some(org),
                })
            }
        }
    }

    /// Audits the refusal of something the license does not allow, and returns the error to
    /// answer with (`Entitlement`; a storage failure while auditing instead).
    pub async fn deny(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        denial: Denial,
        context: Context,
    ) -> CoreError {
        let draft = Draft {
            payload: Payload::LicenseEntitlementDenied {
                entitlement: denial.entitlement.clone(),
                limit: denial.limit,
                in_use: denial.in_use,
                org_id: denial.org.map(|o| o.to_string()),
            },
            resource: Resource {
                kind: "license".into(),
                id: self
                    .in_force()
                    .map_or_else(|| "community".into(), |l| l.claims.license_id),
            },
            outcome: Outcome {
                result: Result_::Failure,
                reason: Some(denial.code.into()),
            },
            context,
        };
        let audited = async {
            let mut tx = store.system().await?;
            audit::append(&mut *tx, Log::System, draft, clock).await?;
            tx.commit().await?;
            Ok::<(), CoreError>(())
        };
        match audited.await {
            Ok(()) => CoreError::Entitlement {
                code: denial.code,
                message: denial.message,
            },
            Err(e) => e,
        }
    }

    /// Refuses (and audits) a new membership when every seat is taken: the early check where
    /// an invitation is made. The addition itself checks again under the lock
    /// ([`Licensing::exceeded`]).
    ///
    /// # Errors
    /// `Entitlement`; storage failures.
    pub async fn check_new_seat(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        org: OrgId,
        context: Context,
    ) -> Result<(), CoreError> {
        let usage = store.system().await?.license_usage().await?;
        match self.exceeded(&usage, Adding::Seat(org)) {
            None => Ok(()),
            Some(denial) => Err(self.deny(store, clock, denial, context).await),
        }
    }

    /// Refuses (and audits) a licensed feature the license in force does not grant.
    ///
    /// # Errors
    /// `Entitlement`; storage failures.
    pub async fn require_feature(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        feature: &str,
        org: Option<OrgId>,
        context: Context,
    ) -> Result<(), CoreError> {
        if self
            .in_force()
            .is_some_and(|l| l.claims.features.iter().any(|f| f == feature))
        {
            return Ok(());
        }
        let denial = Denial {
            entitlement: format!("feature:{feature}"),
            code: "license_feature_missing",
            message: format!("the license does not include the `{feature}` feature"),
            limit: None,
            in_use: None,
            org,
        };
        Err(self.deny(store, clock, denial, context).await)
    }

    /// Refuses (and audits) a change in read-only mode.
    ///
    /// # Errors
    /// `Entitlement` with `license_read_only`; storage failures.
    pub async fn check_writable(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        org: Option<OrgId>,
        context: Context,
    ) -> Result<(), CoreError> {
        if !self.read_only(clock) {
            return Ok(());
        }
        Err(self
            .deny(store, clock, read_only_denial(org), context)
            .await)
    }
}

/// The denial of a change in read-only mode.
#[must_use]
pub fn read_only_denial(org: Option<OrgId>) -> Denial {
    Denial {
        entitlement: "read_only".into(),
        code: "license_read_only",
        message: "the license and its grace period have ended: this deployment is read-only \
                  (sign-in, the audit log and export stay open); activate a renewed license"
            .into(),
        limit: None,
        in_use: None,
        org,
    }
}

/// What is being added, for [`Licensing::exceeded`].
#[derive(Debug, Clone, Copy)]
pub enum Adding {
    /// An organisation.
    Org,
    /// A membership in the org (a seat, unless the user already holds one).
    Seat(OrgId),
}

/// Something the license does not allow.
#[derive(Debug, Clone)]
pub struct Denial {
    /// `orgs`, `seats`, `feature:<name>` or `read_only`.
    pub entitlement: String,
    /// The stable error code.
    pub code: &'static str,
    /// What was refused and how to fix it.
    pub message: String,
    /// The limit, where one applies.
    pub limit: Option<u64>,
    /// What is in use, where a limit applies.
    pub in_use: Option<u64>,
    /// The org concerned.
    pub org: Option<OrgId>,
}
