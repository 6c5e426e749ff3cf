//! The audit half of a backup's verification: every audit log in the archive (or in a store
//! being checked) is replayed through the export verifier (`bulwark_audit::export::verify`, the
//! one `bulwark audit verify` runs) as its events stream past, ending with the checkpoint signed
//! when the snapshot was taken, and checked against every stored checkpoint and every checkpoint
//! published outside the database that the archive carries. Memory stays bounded: one log at a
//! time, its lines handed to the verifier through a bounded channel.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use bulwark_audit::checkpoint::NoteVerifier;
use bulwark_audit::export::{self, Report, VerifyError};

use super::archive::{Header, LogHead};
use super::{BackupError, Table, Value};

/// The name of the published-checkpoints file inside an archive.
pub const PUBLISHED_FILE: &str = "audit-checkpoints.jsonl";

/// What the audit check established for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReport {
    /// The log.
    pub log: String,
    /// Events verified.
    pub events: u64,
    /// Of those, events whose bodies retention had pruned.
    pub pruned: u64,
    /// Checkpoints stored or published outside the database that the log was checked against.
    pub checkpoints: usize,
}

struct Running {
    head: LogHead,
    tx: SyncSender<Vec<u8>>,
    verifier: JoinHandle<Result<Report, VerifyError>>,
}

/// Feeds the audit tables of an archive or a store to the export verifier.
pub struct AuditCheck {
    key: NoteVerifier,
    heads: BTreeMap<String, LogHead>,
    notes: Vec<String>,
    published: Option<Arc<Vec<String>>>,
    running: Option<Running>,
    done: Vec<LogReport>,
}

impl AuditCheck {
    /// Starts a check of the logs the header names.
    ///
    /// # Errors
    /// A malformed audit key.
    pub fn new(header: &Header) -> Result<Self, BackupError> {
        let key = NoteVerifier::parse(&header.audit_key).map_err(|e| {
            BackupError::Tampered(format!("the header's audit key does not parse: {e}"))
        })?;
        Ok(Self {
            key,
            heads: header
                .audit
                .iter()
                .map(|h| (h.log.clone(), h.clone()))
                .collect(),
            notes: Vec::new(),
            published: None,
            running: None,
            done: Vec::new(),
        })
    }

    /// Takes in a file of the archive: the published checkpoints are checked against.
    ///
    /// # Errors
    /// A line of the published file that is not a checkpoint line.
    pub fn file(&mut self, name: &str, data: &[u8]) -> Result<(), BackupError> {
        if name != PUBLISHED_FILE {
            return Ok(());
        }
        let text = std::str::from_utf8(data)
            .map_err(|_| BackupError::Tampered(format!("{PUBLISHED_FILE} is not UTF-8")))?;
        let published = bulwark_audit::published::read(text, &self.key)
            .map_err(|e| BackupError::Tampered(format!("{PUBLISHED_FILE}: {e}")))?;
        self.notes.extend(published.notes);
        Ok(())
    }

    /// Adds checkpoint notes published elsewhere that the logs must agree with (a restore
    /// compares the target's published file).
    pub fn notes(&mut self, notes: impl IntoIterator<Item = String>) {
        self.notes.extend(notes);
    }

    /// Takes in a row of any table; only the audit tables' rows matter.
    ///
    /// # Errors
    /// An audit row out of place, or a log that fails verification.
    pub fn row(&mut self, table: &'static Table, values: &[Value]) -> Result<(), BackupError> {
        match table.name {
            "audit_checkpoints" => {
                if let Some(Value::Text(note)) = table.index("note").and_then(|i| values.get(i)) {
                    self.notes.push(note.clone());
                }
                Ok(())
            }
            "audit_events" => self.event(table, values),
            _ => Ok(()),
        }
    }

    fn event(&mut self, table: &'static Table, values: &[Value]) -> Result<(), BackupError> {
        let get = |c: &str| table.index(c).and_then(|i| values.get(i));
        let (Some(Value::Text(log)), Some(Value::Int(seq))) = (get("log"), get("seq")) else {
            return Err(BackupError::Tampered(
                "an audit event without its log or seq".into(),
            ));
        };
        if self.running.as_ref().is_none_or(|r| r.head.log != *log) {
            self.finish_log()?;
            self.start_log(log)?;
        }
        let line = match (get("body"), get("time"), get("leaf_hash")) {
            (Some(Value::Bytes(body)), _, Some(Value::Bytes(leaf))) => {
                match <bulwark_audit::Hash>::try_from(leaf.as_slice()) {
                    Ok(leaf) => {
                        export::event_line(u64::try_from(*seq).unwrap_or(u64::MAX), body, &leaf)
                    }
                    Err(_) => body.clone(),
                }
            }
            (Some(Value::Null), Some(Value::Time(time)), Some(Value::Bytes(leaf))) => {
                let leaf: bulwark_audit::Hash =
                    leaf.as_slice().try_into().map_err(|_| BackupError::Audit {
                        log: log.clone(),
                        message: format!("event {seq}: a leaf hash that is not 32 bytes"),
                    })?;
                export::pruned_line(u64::try_from(*seq).unwrap_or(u64::MAX), *time, &leaf)
                    .into_bytes()
            }
            _ => {
                return Err(BackupError::Audit {
                    log: log.clone(),
                    message: format!("event {seq}: neither a body nor a pruned leaf"),
                });
            }
        };
        self.send(line)
    }

    fn send(&mut self, mut line: Vec<u8>) -> Result<(), BackupError> {
        let Some(running) = &self.running else {
            return Ok(());
        };
        line.push(b'\n');
        if running.tx.send(line).is_err() {
            // The verifier stopped early: its error says why.
            return self.finish_log();
        }
        Ok(())
    }

    fn start_log(&mut self, log: &str) -> Result<(), BackupError> {
        let head = self.heads.remove(log).ok_or_else(|| BackupError::Audit {
            log: log.into(),
            message: "events of a log the snapshot has no head for".into(),
        })?;
        let published = Arc::clone(
            self.published
                .get_or_insert_with(|| Arc::new(std::mem::take(&mut self.notes))),
        );
        let (tx, rx) = sync_channel::<Vec<u8>>(256);
        let key = self.key.clone();
        let verifier = std::thread::spawn(move || {
            export::verify(BufReader::new(Lines::new(rx)), &key, &published)
        });
        self.running = Some(Running { head, tx, verifier });
        let origin = self.running.as_ref().map(|r| r.head.origin.clone());
        self.send(export::header_line(&origin.unwrap_or_default()).into_bytes())
    }

    fn finish_log(&mut self) -> Result<(), BackupError> {
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        let Running { head, tx, verifier } = running;
        let mut closing = export::checkpoint_line(&head.checkpoint).into_bytes();
        closing.push(b'\n');
        // A verifier that already stopped has hung up; its error is the one to report.
        let _ = tx.send(closing);
        drop(tx);
        let outcome = verifier.join().map_err(|_| BackupError::Audit {
            log: head.log.clone(),
            message: "the verifier stopped unexpectedly".into(),
        })?;
        let report = outcome.map_err(|e| BackupError::Audit {
            log: head.log.clone(),
            message: e.to_string(),
        })?;
        if report.events != head.size {
            return Err(BackupError::Audit {
                log: head.log,
                message: format!(
                    "{} events where the snapshot's head holds {}",
                    report.events, head.size
                ),
            });
        }
        self.done.push(LogReport {
            log: head.log,
            events: report.events,
            pruned: report.pruned,
            checkpoints: report.published,
        });
        Ok(())
    }

    /// Ends the check: every log the header names must have been verified.
    ///
    /// # Errors
    /// The last log fails, or a log with events in its head has none in the archive.
    pub fn finish(mut self) -> Result<Vec<LogReport>, BackupError> {
        self.finish_log()?;
        if let Some(missing) = self.heads.values().find(|h| h.size > 0) {
            return Err(BackupError::Audit {
                log: missing.log.clone(),
                message: format!(
                    "its head holds {} events and the archive none: the log's events were dropped",
                    missing.size
                ),
            });
        }
        Ok(self.done)
    }
}

/// A reader over byte chunks handed through a channel: what one thread writes, another reads
/// (the export verifier here; a backup's own verification while it is written).
pub struct Lines {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Lines {
    /// Reads what arrives on `rx` until every sender is gone.
    #[must_use]
    pub const fn new(rx: Receiver<Vec<u8>>) -> Self {
        Self {
            rx,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for Lines {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.current = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let mut rest: &[u8] = self.current.get(self.pos..).unwrap_or_default();
        let n = rest.read(buf)?;
        self.pos += n;
        Ok(n)
    }
}
