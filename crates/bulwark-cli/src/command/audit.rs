//! `bulwark audit verify`: checks an export offline — no server, no database.
//!
//! Exit codes: 0 verified; 2 bad usage (unreadable key); 1 the file cannot be read; 4 the export
//! fails verification (tampered, truncated, or signed by another key).

use std::io::BufReader;
use std::path::Path;

use bulwark_audit::checkpoint::NoteVerifier;
use bulwark_audit::export::{self, VerifyError};

use crate::Exit;
use crate::command::Format;

/// Verifies `file` against the verifier key `key` and the published checkpoints in `published`.
pub fn verify(file: &Path, key: &str, published: Option<&Path>, format: Format) -> Exit {
    let key = match NoteVerifier::parse(key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: --key: {e}");
            return Exit::Config;
        }
    };
    let notes = match published.map(read_published).transpose() {
        Ok(n) => n.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: --published: {e}");
            return Exit::Failure;
        }
    };
    let reader = match std::fs::File::open(file) {
        Ok(f) => BufReader::new(f),
        Err(e) => {
            eprintln!("error: cannot open `{}`: {e}", file.display());
            return Exit::Failure;
        }
    };
    match export::verify(reader, &key, &notes) {
        Ok(r) => {
            let root = r
                .root
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"verified": true, "origin": r.origin, "events": r.events,
                        "checkpoints": r.checkpoints, "published_checked": notes.len(), "root": root})
                ),
                Format::Text => println!(
                    "verified: {} events of `{}`, {} signed checkpoints, {} published checkpoints, root {root}",
                    r.events,
                    r.origin,
                    r.checkpoints,
                    notes.len()
                ),
            }
            Exit::Ok
        }
        Err(VerifyError::Io(e)) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            Exit::Failure
        }
        Err(e) => {
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"verified": false, "error": e.to_string()})
                ),
                Format::Text => eprintln!("verification FAILED: {e}"),
            }
            Exit::Invalid
        }
    }
}

/// Reads a published-checkpoints file: one `{"checkpoint": "<note>"}` per line.
fn read_published(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| {
                    v.get("checkpoint")
                        .and_then(|c| c.as_str())
                        .map(str::to_owned)
                })
                .ok_or_else(|| format!("line {} is not a checkpoint line", i + 1))
        })
        .collect()
}
