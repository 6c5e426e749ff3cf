//! Tampering with an export is detected, each time with a message naming what broke.

use bulwark_audit::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use bulwark_audit::event::{Actor, ActorKind, Context, Event, Outcome, Payload, Resource, Result_};
use bulwark_audit::export::{self, VerifyError};
use bulwark_audit::merkle::{CompactRange, leaf_hash};
use bulwark_crypto::Ed25519Signer;
use bulwark_types::EventId;
use zeroize::Zeroizing;

const ORIGIN: &str = "bulwark/test/org_1";

fn signer(seed: u8) -> NoteSigner {
    NoteSigner::new(
        "bulwark-audit",
        Ed25519Signer::from_seed(&Zeroizing::new([seed; 32])).unwrap(),
    )
    .unwrap()
}

fn event(seq: u64) -> Vec<u8> {
    let ctx = Context {
        actor: Actor {
            kind: ActorKind::System,
            id: None,
        },
        source_ip: None,
        user_agent: None,
        request_id: Some(format!("req-{seq}")),
        decision: None,
    };
    let time = time::OffsetDateTime::from_unix_timestamp(1_790_000_000 + seq as i64).unwrap();
    let payload = Payload::MemberAdded {
        user_id: format!("usr_{seq}"),
        role: "member".into(),
    };
    let resource = Resource {
        kind: "member".into(),
        id: format!("usr_{seq}"),
    };
    Event::new(
        "org_1".into(),
        seq,
        time,
        payload,
        resource,
        Outcome {
            result: Result_::Success,
            reason: None,
        },
        ctx,
        EventId::new(),
    )
    .canonical_bytes()
    .unwrap()
}

/// An export of `n` events with a checkpoint after every third and at the end; also returns the
/// notes so tests can treat some as published outside the database.
fn build(n: u64, s: &NoteSigner) -> (Vec<String>, Vec<String>) {
    let mut lines = vec![export::header_line(ORIGIN)];
    let mut notes = Vec::new();
    let mut range = CompactRange::new();
    for seq in 0..n {
        let e = event(seq);
        range.push(leaf_hash(&e));
        lines.push(String::from_utf8(e).unwrap());
        if range.size().is_multiple_of(3) || seq + 1 == n {
            let note = s.sign(&Checkpoint {
                origin: ORIGIN.into(),
                size: range.size(),
                root: range.root(),
                time: 1_790_000_100 + seq,
            });
            lines.push(export::checkpoint_line(&note));
            notes.push(note);
        }
    }
    (lines, notes)
}

fn verify(
    lines: &[String],
    key: &NoteVerifier,
    published: &[String],
) -> Result<export::Report, VerifyError> {
    let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    export::verify(text.as_bytes(), key, published)
}

#[test]
fn an_untouched_export_verifies() {
    let s = signer(1);
    let (lines, notes) = build(10, &s);
    let report = verify(&lines, &s.verifier(), &notes).unwrap();
    assert_eq!(report.events, 10);
    assert_eq!(report.checkpoints, 4);
}

#[test]
fn editing_a_field_is_detected() {
    let s = signer(1);
    let (mut lines, _) = build(10, &s);
    lines[2] = lines[2].replace("\"role\":\"member\"", "\"role\":\"owner!\"");
    let err = verify(&lines, &s.verifier(), &[]).unwrap_err();
    assert!(
        matches!(err, VerifyError::RootMismatch { size: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("edited"), "{err}");
}

#[test]
fn deleting_reordering_or_inserting_an_event_is_detected() {
    let s = signer(1);
    let (lines, _) = build(10, &s);
    let mut deleted = lines.clone();
    deleted.remove(2);
    assert!(matches!(
        verify(&deleted, &s.verifier(), &[]),
        Err(VerifyError::Sequence {
            found: 2,
            expected: 1,
            ..
        })
    ));
    let mut reordered = lines.clone();
    reordered.swap(1, 2);
    assert!(matches!(
        verify(&reordered, &s.verifier(), &[]),
        Err(VerifyError::Sequence { .. })
    ));
    let mut inserted = lines.clone();
    inserted.insert(3, String::from_utf8(event(2)).unwrap());
    assert!(matches!(
        verify(&inserted, &s.verifier(), &[]),
        Err(VerifyError::Sequence { .. })
    ));
}

#[test]
fn truncating_the_tail_is_detected_against_a_published_checkpoint() {
    let s = signer(1);
    let (lines, notes) = build(10, &s);
    // Drop the last event and its checkpoint: the rest is internally consistent...
    let cut: Vec<String> = lines[..lines.len() - 2].to_vec();
    assert!(verify(&cut, &s.verifier(), &[]).is_ok());
    // ...but not against the checkpoint that was published outside the database.
    let err = verify(&cut, &s.verifier(), &notes[notes.len() - 1..]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    // Dropping only the last event leaves a checkpoint claiming more events than precede it.
    let mut dropped = lines.clone();
    dropped.remove(lines.len() - 2);
    assert!(matches!(
        verify(&dropped, &s.verifier(), &[]),
        Err(VerifyError::Checkpoint { .. })
    ));
    // Dropping the final checkpoint leaves events covered by no signature.
    let uncovered = lines[..lines.len() - 1].to_vec();
    assert_eq!(
        verify(&uncovered, &s.verifier(), &[]),
        Err(VerifyError::Uncovered(1))
    );
}

#[test]
fn a_replaced_or_foreign_checkpoint_is_detected() {
    let s = signer(1);
    let (lines, _) = build(6, &s);
    let (forged, _) = build(6, &signer(2));
    let mut replaced = lines.clone();
    replaced[4] = forged[4].clone();
    let err = verify(&replaced, &s.verifier(), &[]).unwrap_err();
    assert!(
        matches!(err, VerifyError::Signature { line: 5, .. }),
        "{err}"
    );
    // The whole file signed by another key fails against ours.
    assert!(verify(&forged, &s.verifier(), &[]).is_err());
    // A log rewritten from scratch and re-signed with our key disagrees with what was published.
    let (_, published) = build(6, &s);
    let mut other_log = build(6, &s).0;
    other_log[1] = String::from_utf8(event(0)).unwrap();
    let err = verify(&other_log, &s.verifier(), &published[..1]);
    assert!(err.is_err());
}

#[test]
fn malformed_and_oversized_exports_are_refused_without_panicking() {
    let s = signer(1);
    let key = s.verifier();
    for text in [
        "".to_owned(),
        "not json\n".to_owned(),
        format!("{}\n{{\"v\":1}}\n", export::header_line(ORIGIN)),
        format!(
            "{}\n{{\"checkpoint\":\"garbage\"}}\n",
            export::header_line(ORIGIN)
        ),
        export::header_line(ORIGIN),
        format!(
            "{}\n{}\n",
            export::header_line(ORIGIN),
            "x".repeat(export::MAX_LINE_BYTES + 10)
        ),
        "{\"bulwark_audit_export\":2,\"origin\":\"o\"}\n".to_owned(),
    ] {
        assert!(
            export::verify(text.as_bytes(), &key, &[]).is_err(),
            "{:.80}",
            text
        );
    }
    let ok = format!("{}\n", export::header_line(ORIGIN));
    assert_eq!(
        export::verify(ok.as_bytes(), &key, &[]).unwrap().events,
        0,
        "an empty log is valid"
    );
}
