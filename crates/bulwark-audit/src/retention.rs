//! Whether the pruned events of an export were pruned by retention, judged from the log itself.
//!
//! A pruned event keeps its leaf hash, so erasing a body is invisible to the Merkle checks: this
//! is the check that makes it visible. The verifier collects, in `seq` order, every pruned event
//! (seq and time), every `audit.retention_changed` event still whole (the retention timeline) and
//! every `audit.pruned` event still whole (when each pruning happened and which seqs it covered),
//! then requires of each pruned event:
//! 1. a later `audit.pruned` event records a pruning. Every pruning appends one in its own
//!    transaction, and only a later pruning (which appends another) can prune it, so the log's
//!    last `audit.pruned` event is always whole and follows every pruned event;
//! 2. it was older than the retention in force when it was pruned: at the time of the whole
//!    `audit.pruned` event whose `from_seq..=to_seq` covers it, or else at any time up to the
//!    export's last checkpoint. The retention in force at a time is the `to_days` of the latest
//!    whole change before it. Where the timeline is uncertain (before the first whole change, if
//!    that change was made from a finite retention, or between two whole changes that do not
//!    chain, because a change between them was itself pruned) the floor,
//!    [`MIN_RETENTION_DAYS`], is assumed: the most an honest deployment could have pruned.
//!
//! INVARIANT: the check only ever relaxes towards the floor, which the database enforces too, so
//! an honest log always passes.

use time::OffsetDateTime;

use crate::event::{Event, Payload};

/// The shortest retention any org may set, in days; also a database constraint on both engines.
pub const MIN_RETENTION_DAYS: u32 = 30;

/// An event whose body was pruned, as the export lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunedEvent {
    /// Its position in the log.
    pub seq: u64,
    /// Its time, as stored beside the leaf hash.
    pub time: OffsetDateTime,
}

/// A pruned event that retention does not explain: its body was erased some other way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// No later `audit.pruned` event records a pruning.
    #[error(
        "event {seq} ({time}) was pruned, but no later `audit.pruned` event records a pruning: its body was erased outside retention"
    )]
    Unrecorded {
        /// The pruned event's seq.
        seq: u64,
        /// Its time (RFC 3339).
        time: String,
    },
    /// It was younger than the retention in force whenever it could have been pruned.
    #[error(
        "event {seq} ({time}) was pruned younger than the retention in force (it could have been pruned no later than {by}): its body was erased outside retention"
    )]
    TooYoung {
        /// The pruned event's seq.
        seq: u64,
        /// Its time (RFC 3339).
        time: String,
        /// The latest time it could have been pruned (RFC 3339).
        by: String,
    },
}

struct Change {
    time: OffsetDateTime,
    from: Option<u32>,
    to: Option<u32>,
}

struct Record {
    seq: u64,
    time: OffsetDateTime,
    covers: Option<(u64, u64)>,
}

/// What the verifier gathers while it reads an export.
#[derive(Default)]
pub(crate) struct Ledger {
    pruned: Vec<PrunedEvent>,
    changes: Vec<Change>,
    records: Vec<Record>,
}

impl Ledger {
    pub(crate) fn pruned(&mut self, event: PrunedEvent) {
        self.pruned.push(event);
    }

    pub(crate) fn event(&mut self, event: &Event) {
        match &event.payload {
            Payload::AuditRetentionChanged { from_days, to_days } => self.changes.push(Change {
                time: event.time,
                from: *from_days,
                to: *to_days,
            }),
            Payload::AuditPruned {
                from_seq, to_seq, ..
            } => self.records.push(Record {
                seq: event.seq,
                time: event.time,
                covers: from_seq.zip(*to_seq),
            }),
            _ => {}
        }
    }

    pub(crate) fn into_pruned(self) -> Vec<PrunedEvent> {
        self.pruned
    }

    /// Checks every pruned event; `end` is the time of the export's last checkpoint.
    pub(crate) fn check(&self, end: OffsetDateTime) -> Result<(), RetentionError> {
        let last_record = self.records.last().map(|r| r.seq);
        let segments = self.segments();
        for p in &self.pruned {
            if last_record.is_none_or(|s| s < p.seq) {
                return Err(RetentionError::Unrecorded {
                    seq: p.seq,
                    time: rfc3339(p.time),
                });
            }
            let by = self
                .records
                .iter()
                .find(|r| r.seq > p.seq && r.covers.is_some_and(|(a, b)| (a..=b).contains(&p.seq)))
                .map_or(end, |r| r.time);
            if !segments.iter().any(|s| s.allows(p.time, by)) {
                return Err(RetentionError::TooYoung {
                    seq: p.seq,
                    time: rfc3339(p.time),
                    by: rfc3339(by),
                });
            }
        }
        Ok(())
    }

    /// The retention timeline: consecutive spans, each with the retention in force (`None`:
    /// forever), the floor where the log no longer tells.
    fn segments(&self) -> Vec<Segment> {
        let floor = Some(MIN_RETENTION_DAYS);
        let Some(first) = self.changes.first() else {
            return vec![Segment {
                start: None,
                end: None,
                days: floor,
            }];
        };
        let mut out = vec![Segment {
            start: None,
            end: Some(first.time),
            days: first.from.and(floor),
        }];
        for (i, c) in self.changes.iter().enumerate() {
            let next = self.changes.get(i + 1);
            let days = match next {
                Some(n) if n.from != c.to => floor,
                _ => c.to,
            };
            out.push(Segment {
                start: Some(c.time),
                end: next.map(|n| n.time),
                days,
            });
        }
        out
    }
}

struct Segment {
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    days: Option<u32>,
}

impl Segment {
    /// Whether an event of time `t` could have been pruned in this span, no later than `by`.
    fn allows(&self, t: OffsetDateTime, by: OffsetDateTime) -> bool {
        let Some(days) = self.days else { return false };
        if self.start.is_some_and(|s| s > by) {
            return false;
        }
        let latest = self.end.map_or(by, |e| e.min(by));
        latest - time::Duration::days(i64::from(days)) > t
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
