//! Emitting audit events inside the transaction of the change they record.
//!
//! INVARIANT: an event is appended through the same handle (and so the same database
//! transaction) as the state change it describes, so there is no change without its event and no
//! event for a change that rolled back.

use bulwark_audit::event::{Context, Event, Outcome, Payload, Resource};
use bulwark_audit::merkle::{CompactRange, leaf_hash};
use bulwark_types::{Clock, EventId, OrgId};

use crate::model::AuditRow;
use crate::ports::AuditWrite;
use crate::{CoreError, StoreError};

/// Which log an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Log {
    /// The deployment's own log.
    System,
    /// An organisation's log.
    Org(OrgId),
}

impl Log {
    /// The stored log name: `system` or the org id.
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Self::System => "system".into(),
            Self::Org(id) => id.to_string(),
        }
    }

    fn org(self) -> Option<OrgId> {
        match self {
            Self::System => None,
            Self::Org(id) => Some(id),
        }
    }
}

/// An event before the log assigns its position.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Type and payload.
    pub payload: Payload,
    /// What was acted on.
    pub resource: Resource,
    /// How it ended.
    pub outcome: Outcome,
    /// Who, from where, which request.
    pub context: Context,
}

/// Appends `draft` to `log` through `tx` and returns the stored event.
///
/// # Errors
/// Storage failures, or a corrupt stored head.
pub async fn append<T: AuditWrite + ?Sized>(
    tx: &mut T,
    log: Log,
    draft: Draft,
    clock: &dyn Clock,
) -> Result<Event, CoreError> {
    let mut range = match tx.audit_head().await? {
        Some(bytes) => CompactRange::from_bytes(&bytes).ok_or_else(|| {
            CoreError::Store(StoreError::Corrupt("audit head does not parse".into()))
        })?,
        None => CompactRange::new(),
    };
    let event = Event::new(
        log.name(),
        range.size(),
        clock.now(),
        draft.payload,
        draft.resource,
        draft.outcome,
        draft.context,
        EventId::new(),
    );
    let body = event.canonical_bytes().map_err(|_| CoreError::Crypto)?;
    let leaf = leaf_hash(&body);
    range.push(leaf);
    let row = AuditRow {
        log: log.name(),
        seq: event.seq,
        org_id: log.org(),
        event_id: event.id,
        time: event.time,
        action: event.payload.name().to_owned(),
        body,
        leaf_hash: leaf,
    };
    tx.audit_insert(&row, &range.to_bytes()).await?;
    Ok(event)
}

/// Signs a checkpoint of `log`'s current head through `tx` and stores it there, unless the
/// latest stored checkpoint already covers the head. Returns the signed note to publish after the
/// transaction commits.
///
/// # Errors
/// Storage failures, or a corrupt stored head.
pub async fn checkpoint<T: AuditWrite + crate::ports::AuditRead + ?Sized>(
    tx: &mut T,
    log: Log,
    signer: &bulwark_audit::checkpoint::NoteSigner,
    origin_prefix: &str,
    clock: &dyn Clock,
) -> Result<Option<String>, CoreError> {
    let Some(bytes) = tx.audit_head().await? else {
        return Ok(None);
    };
    let range = CompactRange::from_bytes(&bytes)
        .ok_or_else(|| CoreError::Store(StoreError::Corrupt("audit head does not parse".into())))?;
    if let Some((size, _)) = tx.audit_latest_checkpoint().await?
        && size >= range.size()
    {
        return Ok(None);
    }
    let now = clock.now();
    let cp = bulwark_audit::checkpoint::Checkpoint {
        origin: format!("{origin_prefix}/{}", log.name()),
        size: range.size(),
        root: range.root(),
        time: u64::try_from(now.unix_timestamp()).unwrap_or(0),
    };
    let note = signer.sign(&cp);
    tx.audit_checkpoint_insert(cp.size, &note, now).await?;
    Ok(Some(note))
}
