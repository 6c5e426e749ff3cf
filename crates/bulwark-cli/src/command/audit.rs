//! `bulwark audit verify`: checks an export offline — no server, no database.
//!
//! Exit codes: 0 verified; 2 bad usage (unreadable key); 1 the file cannot be read; 4 the export
//! fails verification (tampered, truncated, signed by another key, or a body erased younger than
//! the retention the log records). A verified export's pruned events are listed (seq and time).

use std::io::{BufRead as _, BufReader, Read as _};
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
    let published = match published.map(|p| read_published(p, &key)).transpose() {
        Ok(n) => n.unwrap_or_default(),
        Err((e, exit)) => {
            eprintln!("error: --published: {e}");
            return exit;
        }
    };
    let notes = published.notes.clone();
    let mut reader = match std::fs::File::open(file) {
        Ok(f) => BufReader::new(f),
        Err(e) => {
            eprintln!("error: cannot open `{}`: {e}", file.display());
            return Exit::Failure;
        }
    };
    // A CloudEvents batch is a JSON array; a JSON Lines export starts with its header object.
    let cloudevents = reader
        .fill_buf()
        .is_ok_and(|b| b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'['));
    let outcome = if cloudevents {
        let mut text = String::new();
        match reader.read_to_string(&mut text) {
            Err(e) => Err(VerifyError::Io(e.to_string())),
            Ok(_) => match bulwark_audit::cloudevents::from_cloudevents(&text) {
                // Line N of the JSON Lines form is element N − 1 of the batch.
                Ok(jsonl) => export::verify(jsonl.as_bytes(), &key, &notes).map_err(|e| {
                    VerifyError::CloudEvents(format!("(line N here is element N−1) {e}"))
                }),
                Err(e) => Err(VerifyError::CloudEvents(e.to_string())),
            },
        }
    } else {
        export::verify(reader, &key, &notes)
    };
    match outcome {
        Ok(r) => {
            report(&r, &published.lost, format);
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

/// Prints what a successful verification established, every pruned event included, and the
/// events a restore of an older backup lost from this log.
fn report(r: &export::Report, lost: &[bulwark_audit::published::Lost], format: Format) {
    let lost: Vec<_> = lost
        .iter()
        .filter(|l| l.restore.origin == r.origin)
        .map(|l| (l.restore.to.0, l.up_to, l.restore.time))
        .collect();
    let root: String = r.root.iter().map(|b| format!("{b:02x}")).collect();
    let time = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    match format {
        Format::Json => {
            let pruned: Vec<_> = r
                .pruned_events
                .iter()
                .map(|p| serde_json::json!({"seq": p.seq, "time": time(p.time)}))
                .collect();
            let lost: Vec<_> = lost
                .iter()
                .map(|(from, to, at)| serde_json::json!({"from_seq": from, "to_seq": to, "restored_at": at}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"verified": true, "origin": r.origin, "events": r.events,
                    "checkpoints": r.checkpoints, "published_checked": r.published,
                    "pruned": pruned, "root": root, "lost_at_restore": lost})
            );
        }
        Format::Text => {
            println!(
                "verified: {} events of `{}`, {} signed checkpoints, {} published checkpoints of this log, {} pruned events, root {root}",
                r.events, r.origin, r.checkpoints, r.published, r.pruned
            );
            for p in &r.pruned_events {
                println!("pruned: seq {} time {}", p.seq, time(p.time));
            }
            for (from, to, at) in &lost {
                println!(
                    "lost at a restore (unix time {at}): events {from} to {} were published and are not in this log; the log continues from {from}",
                    to.saturating_sub(1)
                );
            }
        }
    }
}

/// Reads a published-checkpoints file: `{"checkpoint": "<note>"}` lines, and the restores
/// recorded there (`bulwark_audit::published`).
fn read_published(
    path: &Path,
    key: &NoteVerifier,
) -> Result<bulwark_audit::published::Published, (String, Exit)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        (
            format!("cannot read `{}`: {e}", path.display()),
            Exit::Failure,
        )
    })?;
    bulwark_audit::published::read(&text, key).map_err(|e| (e.to_string(), Exit::Invalid))
}
