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

impl Draft {
    /// A successful action on the resource `kind`/`id`.
    #[must_use]
    pub fn success(payload: Payload, kind: &str, id: String, context: Context) -> Self {
        Self {
            payload,
            resource: Resource {
                kind: kind.into(),
                id,
            },
            outcome: Outcome {
                result: bulwark_audit::event::Result_::Success,
                reason: None,
            },
            context,
        }
    }
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
    append_many(tx, log, vec![draft], clock)
        .await?
        .pop()
        .ok_or(CoreError::Store(StoreError::Corrupt(
            "no event appended".into(),
        )))
}

/// Appends `drafts` in order through `tx`: the head is read once and written once.
///
/// # Errors
/// Storage failures, or a corrupt stored head.
pub async fn append_many<T: AuditWrite + ?Sized>(
    tx: &mut T,
    log: Log,
    drafts: Vec<Draft>,
    clock: &dyn Clock,
) -> Result<Vec<Event>, CoreError> {
    let mut range = match tx.audit_head().await? {
        Some(bytes) => CompactRange::from_bytes(&bytes).ok_or_else(|| {
            CoreError::Store(StoreError::Corrupt("audit head does not parse".into()))
        })?,
        None => CompactRange::new(),
    };
    let mut events = Vec::with_capacity(drafts.len());
    let mut rows = Vec::with_capacity(drafts.len());
    for draft in drafts {
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
        rows.push(AuditRow {
            log: log.name(),
            seq: event.seq,
            org_id: log.org(),
            event_id: event.id,
            time: event.time,
            action: event.payload.name().to_owned(),
            body: Some(body),
            leaf_hash: leaf,
        });
        events.push(event);
    }
    let started = std::time::Instant::now();
    tx.audit_insert(&rows, &range.to_bytes()).await?;
    if let Log::Org(_) = log {
        // The outbox rows commit with the events (and the change they record), or not at all.
        crate::webhooks::outbox::fan_out(tx, &events).await?;
    }
    let m = crate::metrics::metrics();
    m.audit_append.observe(&[], started.elapsed().as_secs_f64());
    m.audit_batch.observe(&[], rows.len() as f64);
    let kind = if log.org().is_some() { "org" } else { "system" };
    m.audit_appended.add(
        &[kind, &crate::metrics::org_label(log.org())],
        u64::try_from(rows.len()).unwrap_or(u64::MAX),
    );
    Ok(events)
}

/// Records `draft`, already written to the system log, in the log of every org `user` belongs
/// to as well, so that each org's owners and admins (and its webhook endpoints) see their
/// members' sign-ins. One transaction per org, after the system log's has committed: the system
/// log stays the record of the sign-in itself.
///
/// # Errors
/// Storage failures.
pub async fn to_member_orgs(
    store: &dyn crate::ports::Store,
    clock: &dyn Clock,
    user: bulwark_types::UserId,
    draft: Draft,
) -> Result<(), CoreError> {
    for (org, _) in store.user_orgs(user).await? {
        let mut tx = store.org(org.id).await?;
        append(&mut *tx, Log::Org(org.id), draft.clone(), clock).await?;
        tx.commit().await?;
    }
    Ok(())
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

type Pending = (
    Draft,
    tokio::sync::oneshot::Sender<Result<Event, CoreError>>,
);

/// Group commit for appends that stand alone (not part of another change): one writer task per
/// log takes whatever appends are waiting, writes them in one transaction, commits once, and only
/// then acknowledges each. Throughput is then one commit (one fsync) per batch, not per event.
#[derive(Clone)]
pub struct GroupWriter {
    queue: tokio::sync::mpsc::Sender<Pending>,
}

impl GroupWriter {
    /// Starts the writer task for `log`, batching up to `max_batch` events per commit.
    #[must_use]
    pub fn spawn(
        store: std::sync::Arc<dyn crate::ports::Store>,
        log: Log,
        clock: std::sync::Arc<dyn Clock>,
        max_batch: usize,
    ) -> Self {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<Pending>(max_batch.max(1) * 4);
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
            while rx.recv_many(&mut batch, max_batch.max(1)).await > 0 {
                let drafts: Vec<Draft> = batch.iter().map(|(d, _)| d.clone()).collect();
                match write_batch(&*store, log, drafts, &*clock).await {
                    Ok(events) => {
                        for ((_, ack), event) in batch.drain(..).zip(events) {
                            let _ = ack.send(Ok(event));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for (_, ack) in batch.drain(..) {
                            let _ = ack.send(Err(CoreError::Store(StoreError::Internal(
                                message.clone().into(),
                            ))));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Appends one event; returns once it is committed.
    ///
    /// # Errors
    /// The batch's storage failure, or `Unavailable` if the writer stopped.
    pub async fn append(&self, draft: Draft) -> Result<Event, CoreError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.queue
            .send((draft, ack))
            .await
            .map_err(|_| CoreError::Unavailable)?;
        done.await.map_err(|_| CoreError::Unavailable)?
    }
}

async fn write_batch(
    store: &dyn crate::ports::Store,
    log: Log,
    drafts: Vec<Draft>,
    clock: &dyn Clock,
) -> Result<Vec<Event>, CoreError> {
    match log {
        Log::System => {
            let mut tx = store.system().await?;
            let events = append_many(&mut *tx, log, drafts, clock).await?;
            tx.commit().await?;
            Ok(events)
        }
        Log::Org(org) => {
            let mut tx = store.org(org).await?;
            let events = append_many(&mut *tx, log, drafts, clock).await?;
            tx.commit().await?;
            Ok(events)
        }
    }
}

/// Renders the log behind `reader` as a JSON Lines export (see `bulwark_audit::export`) up to
/// its latest signed checkpoint, in the reader's one transaction.
///
/// # Errors
/// Storage failures.
pub async fn export_jsonl(
    reader: &mut dyn crate::ports::AuditRead,
    origin: &str,
) -> Result<String, StoreError> {
    use bulwark_audit::export;
    let mut text = format!("{}\n", export::header_line(origin));
    let Some((size, note)) = reader.audit_latest_checkpoint().await? else {
        return Ok(text);
    };
    let mut next = 0;
    while next < size {
        let want = u32::try_from((size - next).min(1000)).unwrap_or(1000);
        let batch = reader.audit_events(next, want).await?;
        if batch.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "the log ends at {next} events, before its checkpoint of {size}"
            )));
        }
        for row in batch.iter().take_while(|r| r.seq < size) {
            match &row.body {
                Some(body) => text.push_str(&String::from_utf8_lossy(&export::event_line(
                    row.seq,
                    body,
                    &row.leaf_hash,
                ))),
                None => text.push_str(&export::pruned_line(row.seq, row.time, &row.leaf_hash)),
            }
            text.push('\n');
            next = row.seq + 1;
        }
    }
    text.push_str(&export::checkpoint_line(&note));
    text.push('\n');
    Ok(text)
}

/// Records `audit.exported` in `org`'s log: who exported how much, in which format.
///
/// # Errors
/// Storage failures.
pub async fn record_export(
    store: &dyn crate::ports::Store,
    clock: &dyn Clock,
    org: OrgId,
    format: &str,
    size: u64,
    context: Context,
) -> Result<(), CoreError> {
    let draft = Draft {
        payload: Payload::AuditExported {
            format: format.into(),
            from_seq: 0,
            to_seq: size,
        },
        resource: Resource {
            kind: "audit_log".into(),
            id: org.to_string(),
        },
        outcome: Outcome {
            result: bulwark_audit::event::Result_::Success,
            reason: None,
        },
        context,
    };
    let mut tx = store.org(org).await?;
    append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}

/// Shortest and longest audit retention an org may set, in days. The floor is also a database
/// constraint, so not even the application itself can prune the last 30 days, and the offline
/// verifier assumes it where the log no longer tells the retention in force.
pub const RETENTION_DAYS: std::ops::RangeInclusive<u32> =
    bulwark_audit::retention::MIN_RETENTION_DAYS..=36_500;

/// Sets `org`'s audit retention (`None`: keep forever), recording `audit.retention_changed` in
/// the same transaction.
///
/// # Errors
/// `Validation` outside [`RETENTION_DAYS`]; storage failures.
pub async fn set_retention(
    store: &dyn crate::ports::Store,
    clock: &dyn Clock,
    org: OrgId,
    days: Option<u32>,
    context: Context,
) -> Result<(), CoreError> {
    if days.is_some_and(|d| !RETENTION_DAYS.contains(&d)) {
        return Err(CoreError::Validation {
            field: "/days",
            message: format!(
                "must be between {} and {} days, or null to keep events forever",
                RETENTION_DAYS.start(),
                RETENTION_DAYS.end()
            ),
        });
    }
    let mut tx = store.org(org).await?;
    let from = tx.audit_retention().await?;
    if from == days {
        return Ok(());
    }
    tx.set_audit_retention(days).await?;
    let draft = Draft {
        payload: Payload::AuditRetentionChanged {
            from_days: from,
            to_days: days,
        },
        resource: Resource {
            kind: "audit_log".into(),
            id: org.to_string(),
        },
        outcome: Outcome {
            result: bulwark_audit::event::Result_::Success,
            reason: None,
        },
        context,
    };
    append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(())
}

/// Prunes the bodies of `org`'s events older than its retention and, when any were pruned,
/// records `audit.pruned` (how many, their seq and time range, the retention) in the same
/// transaction. Returns how many were pruned.
///
/// INVARIANT: every pruning appends `audit.pruned` after the events it pruned, so the offline
/// verifier can require a later `audit.pruned` of every pruned event.
///
/// # Errors
/// Storage failures.
pub async fn prune(
    store: &dyn crate::ports::Store,
    clock: &dyn Clock,
    org: OrgId,
) -> Result<u64, CoreError> {
    let mut tx = store.org(org).await?;
    let Some(days) = tx.audit_retention().await? else {
        return Ok(0);
    };
    let Some(pruned) = tx.audit_prune(clock.now()).await? else {
        return Ok(0);
    };
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .map_err(|_| CoreError::Store(StoreError::Corrupt("event time out of range".into())))
    };
    let draft = Draft {
        payload: Payload::AuditPruned {
            events: pruned.events,
            retention_days: days,
            from_seq: Some(pruned.seqs.0),
            to_seq: Some(pruned.seqs.1),
            oldest: Some(rfc3339(pruned.times.0)?),
            newest: Some(rfc3339(pruned.times.1)?),
        },
        resource: Resource {
            kind: "audit_log".into(),
            id: org.to_string(),
        },
        outcome: Outcome {
            result: bulwark_audit::event::Result_::Success,
            reason: None,
        },
        context: Context::system(None),
    };
    append(&mut *tx, Log::Org(org), draft, clock).await?;
    tx.commit().await?;
    Ok(pruned.events)
}
