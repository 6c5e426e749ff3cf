//! Org deletion: asked by an owner (or a host operator), held for a grace window during which it
//! can be cancelled, then purged: every org-scoped row deleted, the org's vault secret destroyed
//! (crypto-shredding, [`bulwark_crypto::vault::OrgMasked`]), and its audit log sealed by a last
//! `org.purged` event after which the database accepts no event for the org. Each step is
//! audited in the org's log in the transaction that makes it. The signed certificate is made by
//! the caller from the [`Purged`] record once the sealed log's last checkpoint is signed
//! (`bulwark-server`'s `deletion` module).

use std::time::Duration;

use bulwark_audit::event::{Context, Payload};
use bulwark_authz::Action;
use bulwark_types::{Clock, OrgId};
use time::OffsetDateTime;

use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::authz::Authorized;
use crate::model::OrgDeletion;
use crate::ports::Store;

/// The grace window when none is given: seven days.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 86_400);
/// The longest grace window an owner may ask for, in days.
pub const MAX_GRACE_DAYS: u32 = 90;
/// The shortest grace window an owner may ask for, in days (a host operator may ask for none).
pub const MIN_GRACE_DAYS: u32 = 1;
/// The refusal of a purge of an org purged already (whose certificate may still be missing).
pub const PURGED_ALREADY: &str = "the org was purged already";
/// Who asked, as recorded, when a host operator did.
pub const LOCAL_OPERATOR: &str = "local operator";

/// Who schedules or cancels.
pub enum Requester<'a> {
    /// An owner of the org, through the API or console.
    Owner(&'a Authorized),
    /// A host operator (`bulwark orgs delete`), for `org`.
    LocalOperator(OrgId),
}

impl Requester<'_> {
    fn org(&self) -> Result<OrgId, CoreError> {
        match self {
            Self::Owner(a) => a.org_for(Action::OrgDelete),
            Self::LocalOperator(org) => Ok(*org),
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Owner(a) => a
                .context()
                .actor
                .id
                .unwrap_or_else(|| LOCAL_OPERATOR.into()),
            Self::LocalOperator(_) => LOCAL_OPERATOR.into(),
        }
    }

    fn context(&self, what: &str) -> Context {
        match self {
            Self::Owner(a) => a.context(),
            Self::LocalOperator(_) => Context::system(Some(what)),
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The org's deletion, if one is scheduled (or done).
///
/// # Errors
/// `Forbidden`-like authorization errors; storage failures.
pub async fn status(
    store: &dyn Store,
    requester: &Requester<'_>,
) -> Result<Option<OrgDeletion>, CoreError> {
    let org = requester.org()?;
    let mut read = store.org_read(org).await?;
    Ok(read.deletion().await?)
}

/// Schedules the org's deletion `grace` from now. An owner's grace is whole days between
/// [`MIN_GRACE_DAYS`] and [`MAX_GRACE_DAYS`]; a host operator's may be anything up to that
/// (zero: due at once). The operator org (which holds the license) cannot be deleted.
///
/// # Errors
/// `Validation` on `/grace_days`; `State` when already scheduled or the operator org;
/// storage failures.
pub async fn schedule(
    store: &dyn Store,
    clock: &dyn Clock,
    requester: &Requester<'_>,
    grace: Duration,
) -> Result<OrgDeletion, CoreError> {
    let org = requester.org()?;
    let most = Duration::from_secs(u64::from(MAX_GRACE_DAYS) * 86_400);
    let least = match requester {
        Requester::Owner(_) => Duration::from_secs(u64::from(MIN_GRACE_DAYS) * 86_400),
        Requester::LocalOperator(_) => Duration::ZERO,
    };
    if grace < least || grace > most {
        return Err(CoreError::Validation {
            field: "/grace_days",
            message: format!("must be {MIN_GRACE_DAYS} to {MAX_GRACE_DAYS} days"),
        });
    }
    let operator = store.system().await?.license_usage().await?.operator_org;
    if operator == Some(org) {
        return Err(CoreError::State(
            "the operator org holds the deployment's license and cannot be deleted",
        ));
    }
    let mut tx = store.org(org).await?;
    if tx.deletion().await?.is_some() {
        return Err(CoreError::State(
            "the org's deletion is scheduled already: cancel it first to change it",
        ));
    }
    let now = clock.now();
    let due_at = now + grace;
    let by = requester.name();
    if !tx.schedule_deletion(Some((now, &by, due_at))).await? {
        return Err(CoreError::NotFound);
    }
    let payload = Payload::OrgDeletionScheduled {
        due_at: rfc3339(due_at),
    };
    let context = requester.context("bulwark orgs delete (host operator)");
    let draft = Draft::success(payload, "org", org.to_string(), context);
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(OrgDeletion {
        requested_at: now,
        requested_by: by,
        due_at,
        purged_at: None,
    })
}

/// Cancels the org's scheduled deletion; the org stays as it is.
///
/// # Errors
/// `State` when none is scheduled; storage failures.
pub async fn cancel(
    store: &dyn Store,
    clock: &dyn Clock,
    requester: &Requester<'_>,
) -> Result<(), CoreError> {
    let org = requester.org()?;
    let mut tx = store.org(org).await?;
    let Some(scheduled) = tx.deletion().await? else {
        return Err(CoreError::State("the org's deletion is not scheduled"));
    };
    if scheduled.purged_at.is_some() || !tx.schedule_deletion(None).await? {
        return Err(CoreError::NotFound);
    }
    let payload = Payload::OrgDeletionCancelled {
        due_at: rfc3339(scheduled.due_at),
    };
    let context = requester.context("bulwark orgs cancel-deletion (host operator)");
    let draft = Draft::success(payload, "org", org.to_string(), context);
    audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await.map_err(CoreError::from)
}

/// What a purge did: the facts a deletion certificate states.
#[derive(Debug, Clone)]
pub struct Purged {
    /// The org.
    pub org: OrgId,
    /// Its slug and name before the purge.
    pub slug: String,
    /// Its display name before the purge.
    pub name: String,
    /// The deletion as scheduled.
    pub deletion: OrgDeletion,
    /// When it was purged.
    pub purged_at: OffsetDateTime,
    /// Rows deleted, per table, in the order deleted.
    pub rows: Vec<(String, u64)>,
    /// The destroyed keys' ids (`orgkey_…`).
    pub destroyed_keys: Vec<String>,
    /// The sealed log's size: its last event (`org.purged`) is at `sealed_size - 1`.
    pub sealed_size: u64,
}

/// Purges `org` if its deletion is due at `now`, in one transaction: rows deleted, vault secret
/// destroyed, the org's row made a tombstone, `org.purged` appended as the log's last event and
/// the log sealed behind it.
///
/// # Errors
/// `State` when its deletion is not scheduled or not due; storage failures.
pub async fn purge(store: &dyn Store, clock: &dyn Clock, org: OrgId) -> Result<Purged, CoreError> {
    let mut tx = store.org(org).await?;
    let now = clock.now();
    // Held until this transaction ends: another replica's purge of the same org waits here, then
    // finds it purged.
    let deletion = match tx.lock_deletion().await? {
        Some(d) if d.purged_at.is_some() => {
            return Err(CoreError::State(PURGED_ALREADY));
        }
        Some(d) if d.due_at <= now => d,
        Some(_) => return Err(CoreError::State("the org's deletion is not due yet")),
        None => return Err(CoreError::State("the org's deletion is not scheduled")),
    };
    let before = tx.get().await?;
    let destroyed_keys: Vec<String> = tx
        .org_key()
        .await?
        .map(|(id, _)| format!("orgkey_{}", id.simple()))
        .into_iter()
        .collect();
    let rows = tx
        .purge(&format!("purged-{}", org.as_uuid().simple()), now)
        .await?;
    let payload = Payload::OrgPurged {
        org_id: org.to_string(),
        slug: before.slug.to_string(),
        name: before.name.to_string(),
        rows: rows.iter().cloned().collect(),
        destroyed_keys: destroyed_keys.clone(),
        certificate_sha256: None,
    };
    let draft = Draft::success(
        payload,
        "org",
        org.to_string(),
        Context::system(Some("bulwark deletion (purge)")),
    );
    let last = audit::append(&mut *tx, Log::Org(org), draft, clock).await?;
    let sealed_size = last.seq + 1;
    tx.seal_audit_log(sealed_size).await?;
    tx.commit().await?;
    Ok(Purged {
        org,
        slug: before.slug.to_string(),
        name: before.name.to_string(),
        deletion,
        purged_at: now,
        rows,
        destroyed_keys,
        sealed_size,
    })
}
