//! The export format and the offline verifier.
//!
//! An export is JSON Lines:
//! 1. a header `{"bulwark_audit_export":1,"origin":"<log origin>"}`;
//! 2. each event's canonical bytes on a line of its own, in `seq` order from 0;
//! 3. interleaved checkpoint lines `{"checkpoint":"<signed note text>"}`, each placed right after
//!    the event that completes its tree (a checkpoint of size N follows exactly N events);
//! 4. ending with a checkpoint that covers every event.
//!
//! An event whose body retention pruned stands as
//! `{"pruned":{"seq":N,"time":"<RFC 3339>","leaf_hash":"<base64>"}}`: its leaf hash still enters
//! the tree, so the export verifies, but its content is gone. An event redacted by the erasure of
//! a person stands as `{"erased":{"seq":N,"leaf_hash":"<base64>","body":"<redacted event>"}}`:
//! the leaf hash enters the tree, and a later `audit.erased` event must record the redacted
//! body's SHA-256 (`crate::erasure`).
//!
//! The verifier needs no server and no database: it recomputes every leaf hash and the tree root
//! at each checkpoint, checks each checkpoint's signature against the key it is given (never a
//! key inside the file), checks that checkpoints only grow, that every pruned event was pruned by
//! retention as the log itself records it (`crate::retention`), and, given checkpoints published
//! outside the database, that the export is not shorter than any of this log's (truncation) and
//! that the tree of its events at each published size has the published root. Published
//! checkpoints of other logs (one file holds every log's) are skipped.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::event::Event;
use crate::merkle::{CompactRange, leaf_hash};
use crate::retention::{Ledger, PrunedEvent, RetentionError};

/// Longest line the verifier reads.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
const FORMAT: u32 = 1;

/// A failed verification, naming the line and what broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read the export: {0}")]
    Io(String),
    /// A line is not what the format allows there.
    #[error("line {line}: {message}")]
    Format {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An event is out of sequence: deleted, inserted or reordered.
    #[error(
        "line {line}: event has seq {found}, expected {expected} (an event was deleted, inserted or reordered)"
    )]
    Sequence {
        /// 1-based line number.
        line: usize,
        /// The seq the event carries.
        found: u64,
        /// The seq that should come next.
        expected: u64,
    },
    /// A checkpoint's signature is not by the given key, or it does not parse.
    #[error("line {line}: checkpoint is not validly signed by the given key: {reason}")]
    Signature {
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
    /// The recomputed tree does not match a signed checkpoint.
    #[error(
        "line {line}: the {size} events before this checkpoint do not hash to its signed root (an event was edited, inserted, deleted or reordered)"
    )]
    RootMismatch {
        /// 1-based line number.
        line: usize,
        /// The checkpoint's tree size.
        size: u64,
    },
    /// A checkpoint is misplaced, shrinks or goes back in time, or names another log.
    #[error("line {line}: {message}")]
    Checkpoint {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Events after the last checkpoint are covered by no signature.
    #[error(
        "{0} events at the end of the export are not covered by a signed checkpoint (truncated or appended)"
    )]
    Uncovered(u64),
    /// A CloudEvents batch failed conversion or, once converted, verification.
    #[error("CloudEvents batch: {0}")]
    CloudEvents(String),
    /// A pruned event was not pruned by retention as the log records it.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// A redacted event whose redaction no `audit.erased` event records.
    #[error(transparent)]
    Erasure(#[from] crate::erasure::ErasureError),
    /// The export disagrees with a checkpoint published outside the database.
    #[error("published checkpoint of size {size}: {message}")]
    Published {
        /// Its tree size.
        size: u64,
        /// What is wrong.
        message: String,
    },
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The log's origin.
    pub origin: String,
    /// Events verified.
    pub events: u64,
    /// Checkpoints verified.
    pub checkpoints: usize,
    /// The root of the whole export.
    pub root: crate::Hash,
    /// Events whose bodies were pruned by retention (counted in `events`; only their leaf
    /// hashes were checked).
    pub pruned: u64,
    /// Those events, in `seq` order, each with its time.
    pub pruned_events: Vec<PrunedEvent>,
    /// Events redacted by an erasure (counted in `events`; their redaction is recorded).
    pub erased: u64,
    /// Published checkpoints of this log checked (those of other logs are skipped).
    pub published: usize,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    bulwark_audit_export: u32,
    origin: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    checkpoint: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrunedLine {
    pruned: Pruned,
}

/// An event whose body retention removed: its position, time and leaf hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pruned {
    /// Position in the log.
    pub seq: u64,
    /// The event's time (RFC 3339), as stored beside its leaf hash.
    pub time: String,
    /// The leaf hash, standard base64.
    pub leaf_hash: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasedLine {
    erased: Erased,
}

/// An event whose body an erasure redacted: its position, leaf hash and redacted body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Erased {
    /// Position in the log.
    pub seq: u64,
    /// The leaf hash of the original body, standard base64.
    pub leaf_hash: String,
    /// The redacted body (canonical JSON), as stored.
    pub body: String,
}

/// The line standing for a stored event: its body when the body is what its leaf hash commits
/// to, else (an erasure redacted it) an `erased` line carrying the leaf hash and the body.
#[must_use]
pub fn event_line(seq: u64, body: &[u8], leaf: &crate::Hash) -> Vec<u8> {
    use base64::Engine as _;
    if leaf_hash(body) == *leaf {
        return body.to_vec();
    }
    let leaf_hash = base64::engine::general_purpose::STANDARD.encode(leaf);
    let body = String::from_utf8_lossy(body);
    serde_json::json!({ "erased": { "seq": seq, "leaf_hash": leaf_hash, "body": body } })
        .to_string()
        .into_bytes()
}

/// Parses an erased line into its redacted event, the body's bytes and the leaf hash.
fn erased_at(bytes: &[u8], line: usize) -> Result<(Event, Vec<u8>, crate::Hash), VerifyError> {
    use base64::Engine as _;
    let bad = |why: &str| VerifyError::Format {
        line,
        message: format!("malformed erased-event line: {why}"),
    };
    let parsed: ErasedLine = serde_json::from_slice(bytes).map_err(|_| bad("not the format"))?;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(&parsed.erased.leaf_hash)
        .ok()
        .and_then(|b| <crate::Hash>::try_from(b.as_slice()).ok())
        .ok_or_else(|| bad("leaf hash"))?;
    let body = parsed.erased.body.into_bytes();
    let event = Event::from_canonical(&body).map_err(|e| bad(&e.to_string()))?;
    if event.seq != parsed.erased.seq {
        return Err(bad("the body's seq is not the line's"));
    }
    Ok((event, body, leaf))
}

/// Writes the line standing for a pruned event.
#[must_use]
pub fn pruned_line(seq: u64, time: time::OffsetDateTime, leaf: &crate::Hash) -> String {
    use base64::Engine as _;
    let leaf_hash = base64::engine::general_purpose::STANDARD.encode(leaf);
    let time = crate::retention::rfc3339(time);
    serde_json::json!({ "pruned": { "seq": seq, "time": time, "leaf_hash": leaf_hash } })
        .to_string()
}

/// Parses a pruned line into the event it stands for and its leaf hash.
fn pruned_at(bytes: &[u8], line: usize) -> Result<(PrunedEvent, crate::Hash), VerifyError> {
    use base64::Engine as _;
    let bad = || VerifyError::Format {
        line,
        message: "malformed pruned-event line".into(),
    };
    let parsed: PrunedLine = serde_json::from_slice(bytes).map_err(|_| bad())?;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(&parsed.pruned.leaf_hash)
        .ok()
        .and_then(|b| <crate::Hash>::try_from(b.as_slice()).ok())
        .ok_or_else(bad)?;
    let time = time::OffsetDateTime::parse(
        &parsed.pruned.time,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| bad())?;
    let seq = parsed.pruned.seq;
    Ok((PrunedEvent { seq, time }, leaf))
}

/// Writes the header line.
#[must_use]
pub fn header_line(origin: &str) -> String {
    serde_json::json!({"bulwark_audit_export": FORMAT, "origin": origin}).to_string()
}

/// Writes a checkpoint line for a signed note.
#[must_use]
pub fn checkpoint_line(note: &str) -> String {
    serde_json::json!({ "checkpoint": note }).to_string()
}

/// Verifies an export against `key` and any checkpoints published outside the database (notes
/// of other logs among them are skipped).
///
/// # Errors
/// The first problem found, naming its line.
pub fn verify(
    reader: impl BufRead,
    key: &NoteVerifier,
    published: &[String],
) -> Result<Report, VerifyError> {
    let mut lines = Lines {
        reader,
        n: 0,
        buf: Vec::new(),
    };
    let header = read_header(&mut lines)?;
    let published = published_for(published, key, &header.origin)?;
    // The root of the exported tree at each published size, filled in as the tree grows there.
    let mut roots: BTreeMap<u64, Option<crate::Hash>> =
        published.iter().map(|cp| (cp.size, None)).collect();
    let mut range = CompactRange::new();
    if let Some(root) = roots.get_mut(&0) {
        *root = Some(range.root());
    }
    let mut checkpoints = 0;
    let mut last: Option<Checkpoint> = None;
    let mut ledger = Ledger::default();
    let mut erasures = crate::erasure::ErasureLedger::default();
    while let Some(bytes) = lines.next()? {
        let line = lines.n;
        if bytes.starts_with(b"{\"checkpoint\":") {
            let cp = checkpoint_at(&bytes, line, key)?;
            check_checkpoint(&cp, &header.origin, &range, last.as_ref(), line)?;
            checkpoints += 1;
            last = Some(cp);
            continue;
        }
        let (seq, leaf) = if bytes.starts_with(b"{\"pruned\":") {
            let (pruned, leaf) = pruned_at(&bytes, line)?;
            ledger.pruned(pruned);
            (pruned.seq, leaf)
        } else if bytes.starts_with(b"{\"erased\":") {
            let (event, body, leaf) = erased_at(&bytes, line)?;
            erasures.redacted(event.seq, &body);
            (event.seq, leaf)
        } else {
            let event = Event::from_canonical(&bytes).map_err(|e| VerifyError::Format {
                line,
                message: e.to_string(),
            })?;
            ledger.event(&event);
            erasures.event(&event);
            (event.seq, leaf_hash(&bytes))
        };
        if seq != range.size() {
            return Err(VerifyError::Sequence {
                line,
                found: seq,
                expected: range.size(),
            });
        }
        range.push(leaf);
        if let Some(root) = roots.get_mut(&range.size()) {
            *root = Some(range.root());
        }
    }
    let covered = last.as_ref().map_or(0, |c| c.size);
    if covered != range.size() {
        return Err(VerifyError::Uncovered(range.size() - covered));
    }
    for cp in &published {
        check_published(cp, &roots, range.size())?;
    }
    if let Some(last) = &last {
        let end = i64::try_from(last.time)
            .ok()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        ledger.check(end)?;
    }
    erasures.check()?;
    let pruned_events = ledger.into_pruned();
    Ok(Report {
        origin: header.origin,
        events: range.size(),
        checkpoints,
        root: range.root(),
        pruned: pruned_events.len() as u64,
        pruned_events,
        erased: erasures.count(),
        published: published.len(),
    })
}

fn read_header<R: BufRead>(lines: &mut Lines<R>) -> Result<Header, VerifyError> {
    let header_bytes = lines.next()?.ok_or(VerifyError::Format {
        line: 1,
        message: "empty file".into(),
    })?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|_| VerifyError::Format {
            line: 1,
            message: "not a Bulwark audit export header".into(),
        })?;
    if header.bulwark_audit_export != FORMAT {
        return Err(VerifyError::Format {
            line: 1,
            message: format!("unsupported export format {}", header.bulwark_audit_export),
        });
    }
    Ok(header)
}

/// The published checkpoints of the log `origin`: each note must be validly signed by `key`
/// (a file of published checkpoints holds only this deployment's), and those of other logs are
/// skipped.
fn published_for(
    notes: &[String],
    key: &NoteVerifier,
    origin: &str,
) -> Result<Vec<Checkpoint>, VerifyError> {
    let mut out = Vec::new();
    for note in notes {
        let cp = key.verify(note).map_err(|e| VerifyError::Published {
            size: 0,
            message: e.to_string(),
        })?;
        if cp.origin == origin {
            out.push(cp);
        }
    }
    Ok(out)
}

fn checkpoint_at(bytes: &[u8], line: usize, key: &NoteVerifier) -> Result<Checkpoint, VerifyError> {
    let parsed: CheckpointLine =
        serde_json::from_slice(bytes).map_err(|_| VerifyError::Format {
            line,
            message: "malformed checkpoint line".into(),
        })?;
    key.verify(&parsed.checkpoint)
        .map_err(|e| VerifyError::Signature {
            line,
            reason: e.to_string(),
        })
}

fn check_checkpoint(
    cp: &Checkpoint,
    origin: &str,
    range: &CompactRange,
    last: Option<&Checkpoint>,
    line: usize,
) -> Result<(), VerifyError> {
    let bad = |message: String| Err(VerifyError::Checkpoint { line, message });
    if cp.origin != origin {
        return bad(format!(
            "checkpoint is for log `{}`, not `{origin}`",
            cp.origin
        ));
    }
    if let Some(prev) = last {
        if cp.size < prev.size {
            return bad(format!(
                "checkpoint size {} is smaller than the previous {}",
                cp.size, prev.size
            ));
        }
        if cp.time < prev.time {
            return bad("checkpoint time goes backwards".into());
        }
    }
    if cp.size != range.size() {
        return bad(format!(
            "checkpoint of size {} follows {} events (events were removed or added before it)",
            cp.size,
            range.size()
        ));
    }
    if cp.root != range.root() {
        return Err(VerifyError::RootMismatch {
            line,
            size: cp.size,
        });
    }
    Ok(())
}

fn check_published(
    cp: &Checkpoint,
    roots: &BTreeMap<u64, Option<crate::Hash>>,
    total: u64,
) -> Result<(), VerifyError> {
    let fail = |message: &str| {
        Err(VerifyError::Published {
            size: cp.size,
            message: message.into(),
        })
    };
    if cp.size > total {
        return fail("the export is shorter than this published checkpoint: events were truncated");
    }
    match roots.get(&cp.size).copied().flatten() {
        Some(root) if root == cp.root => Ok(()),
        Some(_) => fail("the export's tree at this size has another root: the log was rewritten"),
        None => fail("the export's tree never reached this size"),
    }
}

struct Lines<R> {
    reader: R,
    n: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// The next line without its `\n`, bounded in length.
    fn next(&mut self) -> Result<Option<Vec<u8>>, VerifyError> {
        self.buf.clear();
        let mut limited = std::io::Read::take(self.reader.by_ref(), MAX_LINE_BYTES as u64 + 1);
        let read = limited
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| VerifyError::Io(e.to_string()))?;
        if read == 0 {
            return Ok(None);
        }
        self.n += 1;
        if self.buf.last() != Some(&b'\n') {
            let message = if self.buf.len() > MAX_LINE_BYTES {
                "line too long"
            } else {
                "missing final newline"
            };
            return Err(VerifyError::Format {
                line: self.n,
                message: message.into(),
            });
        }
        self.buf.pop();
        Ok(Some(std::mem::take(&mut self.buf)))
    }
}
