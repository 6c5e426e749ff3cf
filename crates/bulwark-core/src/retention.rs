//! Retention per kind of record: ended sessions (with their addresses and user agents), closed
//! invitations (with the addresses they went to), webhook messages (with their deliveries and
//! attempts) and audit event bodies (each org's audit retention, as `audit::prune` applies it).
//! Each run is recorded as one `retention.applied` event in the system log with its counts.

use std::time::Duration;

use bulwark_audit::event::{Context, Payload};
use bulwark_types::Clock;

use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::ports::Store;

/// How long each kind of record is kept after it served its purpose.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Sessions, after they ended.
    pub sessions: Duration,
    /// Invitations, after they were accepted, withdrawn or expired.
    pub invitations: Duration,
    /// Webhook messages, after they were queued.
    pub webhook_messages: Duration,
}

/// What one run deleted, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Sessions deleted.
    pub sessions: u64,
    /// Invitations deleted.
    pub invitations: u64,
    /// Webhook messages deleted (with their deliveries and attempts).
    pub webhook_messages: u64,
    /// Audit event bodies pruned (their leaf hashes stay).
    pub audit_bodies: u64,
}

/// Applies `policy` now and records the run (`retention.applied`, with the counts). An org that
/// fails is logged and skipped; the run still records what the others did.
///
/// # Errors
/// Storage failures outside any one org (listing them, the sessions, the record).
pub async fn apply(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: &Policy,
) -> Result<Applied, CoreError> {
    let now = clock.now();
    let mut applied = Applied::default();
    {
        let mut tx = store.system().await?;
        applied.sessions = tx.delete_ended_sessions(now - policy.sessions).await?;
        tx.commit().await?;
    }
    let closed_before = now - policy.invitations;
    for org in store.retention_invitation_orgs(closed_before).await? {
        let done = async {
            let mut tx = store.org(org).await?;
            let n = tx.delete_closed_invitations(closed_before).await?;
            tx.commit().await?;
            Ok::<u64, CoreError>(n)
        };
        match done.await {
            Ok(n) => applied.invitations += n,
            Err(e) => tracing::warn!(%org, error = %e, "cannot delete closed invitations"),
        }
    }
    applied.webhook_messages =
        crate::webhooks::outbox::prune(store, clock, policy.webhook_messages).await?;
    for org in store.retention_audit_orgs().await? {
        match audit::prune(store, clock, org).await {
            Ok(n) => applied.audit_bodies += n,
            Err(e) => tracing::warn!(%org, error = %e, "cannot prune audit bodies"),
        }
    }
    let payload = Payload::RetentionApplied {
        sessions: applied.sessions,
        invitations: applied.invitations,
        webhook_messages: applied.webhook_messages,
        audit_bodies: applied.audit_bodies,
    };
    let draft = Draft::success(
        payload,
        "retention",
        "deployment".into(),
        Context::system(Some("bulwark retention")),
    );
    let mut tx = store.system().await?;
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    tx.commit().await?;
    Ok(applied)
}
