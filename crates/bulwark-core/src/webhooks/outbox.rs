//! The outbox: messages queued for the endpoints subscribed to their type, in the transaction
//! of the change they report ([`fan_out`], called by `audit::append_many`), and their retention
//! ([`prune`]). Applications' own `app.…` messages are sent through `messages::send`.
//!
//! INVARIANT: nothing here appends audit events or takes a capability: `audit::append_many`
//! calls [`fan_out`], so the audit log depends on this module and not on the endpoint service
//! or the authorization above it.

use std::time::Duration;

use bulwark_audit::event::{Event, Payload};
use bulwark_types::{Clock, EndpointId, MessageId};

use super::{SIGNING_PURPOSE, subscribed, unix_ms};
use crate::model::WebhookMessage;
use crate::ports::{AuditWrite, Store};
use crate::{CoreError, StoreError};

/// Queues each of `events` for the endpoints of the handle's org subscribed to its type, in the
/// handle's transaction. Called by `audit::append_many` for org logs.
///
/// # Errors
/// Storage failures.
pub async fn fan_out<T: AuditWrite + ?Sized>(
    tx: &mut T,
    events: &[Event],
) -> Result<(), CoreError> {
    let subscribers = tx.webhook_subscribers().await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    for event in events {
        // Opening a signing secret for a delivery is audited; reporting that as a webhook would
        // make every delivery cause another one.
        if matches!(&event.payload, Payload::CredentialUsed { purpose, .. } if purpose == SIGNING_PURPOSE)
        {
            continue;
        }
        let name = event.payload.name();
        let to: Vec<EndpointId> = subscribers
            .iter()
            .filter(|(_, patterns)| subscribed(patterns, name))
            .map(|(id, _)| *id)
            .collect();
        if to.is_empty() {
            continue;
        }
        let body = event.canonical_bytes().map_err(|_| CoreError::Crypto)?;
        let payload = String::from_utf8(body)
            .map_err(|_| CoreError::Store(StoreError::Corrupt("event body".into())))?;
        let message = WebhookMessage {
            id: MessageId::new(),
            event_type: name.to_owned(),
            payload,
            idempotency_key: None,
            request_hash: None,
            created_at: event.time,
        };
        tx.webhook_enqueue(&message, &to, unix_ms(event.time))
            .await?;
    }
    Ok(())
}

/// Deletes, in each org, messages older than `keep` with their deliveries (pending ones too: a
/// message never outlives the retention, which never outlives the audit event it copies) and
/// attempts. Returns how many messages; an org that fails is logged and skipped.
///
/// # Errors
/// Storage failures listing the orgs.
pub async fn prune(store: &dyn Store, clock: &dyn Clock, keep: Duration) -> Result<u64, CoreError> {
    let before =
        unix_ms(clock.now()).saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let mut pruned = 0;
    for org in store.webhook_prunable_orgs(before).await? {
        let done = async {
            let mut tx = store.org(org).await?;
            let n = tx.webhook_prune(before).await?;
            tx.commit().await?;
            Ok::<u64, StoreError>(n)
        };
        match done.await {
            Ok(n) => pruned += n,
            Err(e) => tracing::warn!(%org, error = %e, "cannot prune webhook messages"),
        }
    }
    Ok(pruned)
}
