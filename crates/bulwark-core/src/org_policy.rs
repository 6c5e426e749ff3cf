//! An org's sign-in rules: session timeouts and who must use MFA.

use bulwark_audit::event::Payload;
use bulwark_authz::Action;
use bulwark_types::Clock;

use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::model::OrgPolicy;
use crate::ports::Store;

/// Allowed idle timeouts, in seconds.
pub const IDLE_SECS: std::ops::RangeInclusive<u32> = 120..=86_400;
/// Allowed absolute timeouts, in seconds.
pub const ABSOLUTE_SECS: std::ops::RangeInclusive<u32> = 600..=2_592_000;

/// The org's sign-in rules.
///
/// # Errors
/// A decision for another action (a bug), storage failures.
pub async fn get(store: &dyn Store, authorized: &Authorized) -> Result<OrgPolicy, CoreError> {
    let mut read = authorized.org_reader(store, Action::OrgPolicyRead).await?;
    Ok(read.policy().await?)
}

/// Replaces `org`'s rules, recording `org.policy_changed` in its log in the same transaction.
///
/// # Errors
/// `Validation` for a timeout out of range; storage failures.
pub async fn set(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    policy: OrgPolicy,
) -> Result<(), CoreError> {
    let org = authorized.org_for(Action::OrgPolicyWrite)?;
    let check = |field, value: Option<u32>, range: &std::ops::RangeInclusive<u32>| match value {
        Some(v) if !range.contains(&v) => Err(CoreError::Validation {
            field,
            message: format!(
                "must be between {} and {} seconds, or null for the deployment's default",
                range.start(),
                range.end()
            ),
        }),
        _ => Ok(()),
    };
    check("/session_idle_secs", policy.session_idle_secs, &IDLE_SECS)?;
    check(
        "/session_absolute_secs",
        policy.session_absolute_secs,
        &ABSOLUTE_SECS,
    )?;
    let mut tx = store.org(org).await?;
    if tx.policy().await? == policy {
        return Ok(());
    }
    tx.set_policy(&policy).await?;
    let payload = Payload::OrgPolicyChanged {
        session_idle_secs: policy.session_idle_secs,
        session_absolute_secs: policy.session_absolute_secs,
        mfa_required: policy.mfa_required.as_str().into(),
        password_composition: policy.password_composition,
    };
    let draft = Draft::success(payload, "org", org.to_string(), authorized.context());
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}
