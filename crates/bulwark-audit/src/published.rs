//! The published checkpoints file, as a reader checks a log against it.
//!
//! Lines are `{"checkpoint":"<signed note>"}` in the order they were published. After a restore
//! of an older backup, a log stands at a size smaller than checkpoints already published of it:
//! the events between were committed after the backup and are lost. The restore says so in the
//! file itself with a line `{"restored":"<signed note>"}` whose note (signed by the same key) is
//!
//! ```text
//! bulwark-audit-restore/v1
//! <origin>
//! from <size> <root, base64>     the largest checkpoint of the log published before the restore
//! to <size> <root, base64>       the restored log's head
//! time <unix seconds>
//! ```
//!
//! Checkpoints of that log published *before* the restore line and larger than its `to` size are
//! then no longer in force: they describe the lost events (reported, not checked), and the log
//! continues from the restored head, whose later checkpoints follow the restore line. Those at or
//! below the `to` size stay in force and must still match the log. A restore note that does not
//! verify, or a line of any other shape, is an error: nothing in the file is skipped silently.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::Hash;
use crate::checkpoint::{CheckpointError, NoteSigner, NoteVerifier};

const RESTORE_HEADER: &str = "bulwark-audit-restore/v1";

/// A restore recorded in the published file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    /// The log's origin.
    pub origin: String,
    /// The largest checkpoint published before the restore: its size and root.
    pub from: (u64, Hash),
    /// The restored head: its size and root.
    pub to: (u64, Hash),
    /// When the restore was made (Unix seconds).
    pub time: u64,
}

impl Restore {
    /// The note text (unsigned).
    #[must_use]
    pub fn body(&self) -> String {
        format!(
            "{RESTORE_HEADER}\n{}\nfrom {} {}\nto {} {}\ntime {}\n",
            self.origin,
            self.from.0,
            STANDARD.encode(self.from.1),
            self.to.0,
            STANDARD.encode(self.to.1),
            self.time
        )
    }

    /// The signed note.
    ///
    /// # Errors
    /// An origin that cannot be in a note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        signer.sign_note(&self.body())
    }

    fn parse(body: &str) -> Option<Self> {
        let mut lines = body.lines();
        if lines.next()? != RESTORE_HEADER {
            return None;
        }
        let origin = lines.next()?.to_owned();
        let sized = |line: &str, word: &str| -> Option<(u64, Hash)> {
            let rest = line.strip_prefix(word)?.strip_prefix(' ')?;
            let (size, root) = rest.split_once(' ')?;
            let root: Hash = STANDARD.decode(root).ok()?.try_into().ok()?;
            Some((size.parse().ok()?, root))
        };
        let from = sized(lines.next()?, "from")?;
        let to = sized(lines.next()?, "to")?;
        let time = lines.next()?.strip_prefix("time ")?.parse().ok()?;
        if lines.next().is_some() || to.0 > from.0 {
            return None;
        }
        Some(Self {
            origin,
            from,
            to,
            time,
        })
    }
}

/// A restore line of the published file.
#[must_use]
pub fn restored_line(note: &str) -> String {
    serde_json::json!({ "restored": note }).to_string()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    checkpoint: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoredLine {
    restored: String,
}

/// Checkpoints no longer in force after a restore: the lost part of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// The restore that cut the log back.
    pub restore: Restore,
    /// Events from `restore.to.0` to this size (exclusive) were lost.
    pub up_to: u64,
}

/// What a published file holds, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Checkpoint notes in force, in file order (their signatures are checked where they are
    /// used: `crate::export::verify`).
    pub notes: Vec<String>,
    /// Every restore, in file order, with how far the checkpoints it superseded reached.
    pub lost: Vec<Lost>,
}

/// Why a published file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("published checkpoints, line {line}: {message}")]
pub struct PublishedError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads a published file's text: restore lines are verified with `key` and applied.
///
/// # Errors
/// A line that is neither form, or a restore note not validly signed by `key`.
pub fn read(text: &str, key: &NoteVerifier) -> Result<Published, PublishedError> {
    // (origin of the note when it is a checkpoint of this key, size, note)
    let mut entries: Vec<(Option<(String, u64)>, String)> = Vec::new();
    let mut lost = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let bad = |message: String| PublishedError {
            line: line_no,
            message,
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Ok(cp) = serde_json::from_str::<CheckpointLine>(line) {
            let parsed = key.verify(&cp.checkpoint).ok().map(|c| (c.origin, c.size));
            entries.push((parsed, cp.checkpoint));
            continue;
        }
        let restored: RestoredLine = serde_json::from_str(line)
            .map_err(|_| bad("neither a checkpoint nor a restore line".into()))?;
        let body = key
            .verify_note(&restored.restored)
            .map_err(|e| bad(format!("a restore note not signed by the given key: {e}")))?;
        let restore = Restore::parse(body).ok_or_else(|| bad("a malformed restore note".into()))?;
        let mut up_to = restore.to.0;
        entries.retain(|(parsed, _)| match parsed {
            Some((origin, size)) if *origin == restore.origin && *size > restore.to.0 => {
                up_to = up_to.max(*size);
                false
            }
            _ => true,
        });
        lost.push(Lost { restore, up_to });
    }
    Ok(Published {
        notes: entries.into_iter().map(|(_, note)| note).collect(),
        lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;

    fn signer(seed: u8) -> NoteSigner {
        let key = zeroize::Zeroizing::new([seed; 32]);
        NoteSigner::new(
            "bulwark/test",
            bulwark_crypto::Ed25519Signer::from_seed(&key).unwrap(),
        )
        .unwrap()
    }

    fn checkpoint(signer: &NoteSigner, origin: &str, size: u64) -> String {
        let note = signer.sign(&Checkpoint {
            origin: origin.into(),
            size,
            root: [size as u8; 32],
            time: 1,
        });
        serde_json::json!({ "checkpoint": note }).to_string()
    }

    #[test]
    fn a_restore_supersedes_only_the_larger_checkpoints_of_its_log_published_before_it() {
        let s = signer(1);
        let restore = Restore {
            origin: "o/a".into(),
            from: (9, [9; 32]),
            to: (5, [5; 32]),
            time: 2,
        };
        let text = [
            checkpoint(&s, "o/a", 3),
            checkpoint(&s, "o/a", 9),
            checkpoint(&s, "o/b", 9),
            restored_line(&restore.sign(&s).unwrap()),
            checkpoint(&s, "o/a", 7),
        ]
        .join("\n");
        let read = read(&text, &s.verifier()).unwrap();
        assert_eq!(read.notes.len(), 3, "a@3, b@9 and a@7 after the restore");
        assert_eq!(read.lost, vec![Lost { restore, up_to: 9 }]);
    }

    #[test]
    fn a_forged_or_malformed_restore_line_is_an_error() {
        let s = signer(1);
        let other = signer(2);
        let restore = Restore {
            origin: "o/a".into(),
            from: (9, [9; 32]),
            to: (5, [5; 32]),
            time: 2,
        };
        let forged = restored_line(&restore.sign(&other).unwrap());
        assert!(read(&forged, &s.verifier()).is_err());
        let grown = Restore {
            to: (10, [1; 32]),
            ..restore
        };
        assert!(read(&restored_line(&grown.sign(&s).unwrap()), &s.verifier()).is_err());
        assert!(read("{\"other\":1}", &s.verifier()).is_err());
    }
}
