//! Applications' own `app.…` messages, sent under a `webhooks:send` decision and queued in the
//! outbox like the audit events' copies.

use bulwark_authz::Action;
use bulwark_types::{Clock, EndpointId, MessageId};

use super::{invalid, is_app_type, subscribed, unix_ms};
use crate::authz::Authorized;
use crate::model::WebhookMessage;
use crate::ports::Store;
use crate::{CoreError, StoreError};

/// The largest `data` of a message, as JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// The longest idempotency key.
pub const MAX_KEY_CHARS: usize = 255;

/// An application message to queue.
pub struct NewMessage {
    /// `app.<name>`.
    pub event_type: String,
    /// Any JSON value; delivered as `data`.
    pub payload: serde_json::Value,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
}

/// Queues an application message for the org's subscribed endpoints. With an idempotency key
/// seen before, the first message is returned (`true`) and nothing is queued; the same key
/// with a different request is refused (`Conflict("idempotency_key")`).
///
/// # Errors
/// `Validation` on `/event_type`, `/payload` or the key; `Conflict`; storage failures.
pub async fn send(
    store: &dyn Store,
    clock: &dyn Clock,
    authorized: &Authorized,
    new: NewMessage,
) -> Result<(WebhookMessage, bool), CoreError> {
    let org = authorized.org_for(Action::WebhooksSend)?;
    if !is_app_type(&new.event_type) {
        return Err(invalid(
            "/event_type",
            "must be `app.` followed by dot-separated segments of a-z, 0-9, `_` or `-` (at most 100 characters); Bulwark's own event types are sent by Bulwark",
        ));
    }
    let payload =
        serde_json::to_string(&new.payload).map_err(|_| invalid("/payload", "must be JSON"))?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(invalid(
            "/payload",
            format!("must be at most {MAX_PAYLOAD_BYTES} bytes as JSON"),
        ));
    }
    if let Some(key) = &new.idempotency_key
        && (key.is_empty()
            || key.chars().count() > MAX_KEY_CHARS
            || !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(invalid(
            "/idempotency_key",
            format!("the Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
        ));
    }
    let hash = {
        let mut request = new.event_type.clone().into_bytes();
        request.push(b'\n');
        request.extend_from_slice(payload.as_bytes());
        bulwark_crypto::sha256(&request).to_vec()
    };
    let now = clock.now();
    let message = WebhookMessage {
        id: MessageId::new(),
        event_type: new.event_type,
        payload,
        idempotency_key: new.idempotency_key,
        request_hash: Some(hash),
        created_at: now,
    };
    let mut tx = store.org(org).await?;
    if let Some(key) = &message.idempotency_key
        && let Some(first) = tx.webhook_message_by_key(key).await?
    {
        return same_request(first, &message);
    }
    let to: Vec<EndpointId> = tx
        .webhook_subscribers()
        .await?
        .into_iter()
        .filter(|(_, patterns)| subscribed(patterns, &message.event_type))
        .map(|(id, _)| id)
        .collect();
    let stored = async {
        tx.webhook_enqueue(&message, &to, unix_ms(now)).await?;
        tx.commit().await
    };
    match stored.await {
        Ok(()) => Ok((message, false)),
        // Two requests with one key at once: the other committed first.
        Err(StoreError::Conflict("webhook_messages.idempotency_key")) => {
            let key = message.idempotency_key.as_deref().unwrap_or_default();
            let mut read = store.org_read(org).await?;
            let first = read
                .webhook_message_by_key(key)
                .await?
                .ok_or(CoreError::Conflict("idempotency_key"))?;
            same_request(first, &message)
        }
        Err(e) => Err(e.into()),
    }
}

fn same_request(
    first: WebhookMessage,
    again: &WebhookMessage,
) -> Result<(WebhookMessage, bool), CoreError> {
    if first.request_hash == again.request_hash {
        Ok((first, true))
    } else {
        Err(CoreError::Conflict("idempotency_key"))
    }
}
