//! Pruned events must be explained by retention as the log records it, and published checkpoints
//! are picked by origin out of a file holding every log's, each checked at its own size.

use bulwark_audit::checkpoint::{Checkpoint, NoteSigner};
use bulwark_audit::event::{Actor, ActorKind, Context, Event, Outcome, Payload, Resource, Result_};
use bulwark_audit::export::{self, VerifyError};
use bulwark_audit::merkle::{CompactRange, leaf_hash};
use bulwark_audit::retention::RetentionError;
use bulwark_crypto::Ed25519Signer;
use bulwark_types::EventId;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

const ORIGIN: &str = "bulwark/test/org_1";

fn signer() -> NoteSigner {
    NoteSigner::new(
        "bulwark-audit",
        Ed25519Signer::from_seed(&Zeroizing::new([7; 32])).unwrap(),
    )
    .unwrap()
}

/// The time every test log ends at (its last checkpoint).
fn end() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
}

fn ago(d: Duration) -> OffsetDateTime {
    end() - d
}

fn member(seq: u64) -> Payload {
    Payload::MemberRemoved {
        user_id: format!("usr_{seq}"),
    }
}

fn changed(from: Option<u32>, to: Option<u32>) -> Payload {
    Payload::AuditRetentionChanged {
        from_days: from,
        to_days: to,
    }
}

fn pruning(from: u64, to: u64) -> Payload {
    Payload::AuditPruned {
        events: to - from + 1,
        retention_days: 30,
        from_seq: Some(from),
        to_seq: Some(to),
        oldest: None,
        newest: None,
    }
}

fn bytes(seq: u64, time: OffsetDateTime, payload: Payload) -> Vec<u8> {
    let ctx = Context {
        actor: Actor {
            kind: ActorKind::System,
            id: None,
        },
        source_ip: None,
        user_agent: None,
        request_id: None,
        decision: None,
    };
    let resource = Resource {
        kind: "audit_log".into(),
        id: "org_1".into(),
    };
    let outcome = Outcome {
        result: Result_::Success,
        reason: None,
    };
    Event::new(
        "org_1".into(),
        seq,
        time,
        payload,
        resource,
        outcome,
        ctx,
        EventId::new(),
    )
    .canonical_bytes()
    .unwrap()
}

/// An export of `events` (time, payload, pruned?) as the server writes it: pruned events as
/// pruned lines, one checkpoint at the end.
fn export_of(events: &[(OffsetDateTime, Payload, bool)]) -> String {
    let s = signer();
    let mut text = format!("{}\n", export::header_line(ORIGIN));
    let mut range = CompactRange::new();
    for (seq, (time, payload, pruned)) in (0u64..).zip(events) {
        let b = bytes(seq, *time, payload.clone());
        let leaf = leaf_hash(&b);
        range.push(leaf);
        if *pruned {
            text.push_str(&export::pruned_line(seq, *time, &leaf));
        } else {
            text.push_str(std::str::from_utf8(&b).unwrap());
        }
        text.push('\n');
    }
    let note = s.sign(&Checkpoint {
        origin: ORIGIN.into(),
        size: range.size(),
        root: range.root(),
        time: end().unix_timestamp() as u64,
    });
    text.push_str(&export::checkpoint_line(&note));
    text.push('\n');
    text
}

fn verify(text: &str) -> Result<export::Report, VerifyError> {
    export::verify(text.as_bytes(), &signer().verifier(), &[])
}

/// Five events 100 days older than a retention of 30 days set `age` ago, and the pruning it
/// caused then.
fn honest(age: Duration) -> Vec<(OffsetDateTime, Payload, bool)> {
    let mut log: Vec<_> = (0..5)
        .map(|seq| (ago(age + Duration::days(100)), member(seq), true))
        .collect();
    log.push((ago(age), changed(None, Some(30)), false));
    log.push((ago(age), pruning(0, 4), false));
    log
}

#[test]
fn pruning_by_retention_verifies_and_lists_each_pruned_event_with_its_time() {
    let report = verify(&export_of(&honest(Duration::hours(1)))).unwrap();
    assert_eq!(report.pruned, 5);
    let listed: Vec<(u64, OffsetDateTime)> = report
        .pruned_events
        .iter()
        .map(|p| (p.seq, p.time))
        .collect();
    let want: Vec<_> = (0..5)
        .map(|s| (s, ago(Duration::hours(1) + Duration::days(100))))
        .collect();
    assert_eq!(listed, want);
    // An audit.pruned event may itself be pruned by a later pruning, which records its own…
    let mut log = honest(Duration::days(40));
    log[6].2 = true;
    log.push((ago(Duration::minutes(1)), pruning(6, 6), false));
    assert_eq!(verify(&export_of(&log)).unwrap().pruned, 6);
    // …but a 1-hour-old one could not have been pruned by a 30-day retention.
    let mut log = honest(Duration::hours(1));
    log[6].2 = true;
    log.push((ago(Duration::minutes(1)), pruning(6, 6), false));
    assert!(matches!(
        verify(&export_of(&log)),
        Err(VerifyError::Retention(RetentionError::TooYoung {
            seq: 6,
            ..
        }))
    ));
}

#[test]
fn a_body_erased_with_no_pruning_recorded_fails_verification() {
    // The review's attack: a two-minute-old body blanked through the prune gate on a log that
    // keeps everything; no audit.pruned event was written.
    let log = vec![
        (ago(Duration::days(3)), member(0), false),
        (ago(Duration::minutes(2)), member(1), true),
        (ago(Duration::minutes(1)), member(2), false),
    ];
    let err = verify(&export_of(&log)).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Retention(RetentionError::Unrecorded { seq: 1, .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("erased outside retention"),
        "{err}"
    );
    // A pruned event after the last recorded pruning was not pruned by it either.
    let mut log = honest(Duration::days(40));
    log.push((ago(Duration::days(1)), member(7), true));
    assert!(matches!(
        verify(&export_of(&log)),
        Err(VerifyError::Retention(RetentionError::Unrecorded {
            seq: 7,
            ..
        }))
    ));
}

#[test]
fn a_body_younger_than_the_retention_in_force_fails_verification() {
    // Retention 30 days; a 10-day-old event blanked before a genuine pruning's record.
    let mut log = honest(Duration::hours(1));
    log.insert(5, (ago(Duration::days(10)), member(5), true));
    let err = verify(&export_of(&log)).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Retention(RetentionError::TooYoung { seq: 5, .. })
        ),
        "{err}"
    );
    // Retention set back to "keep everything": nothing after that may go.
    let log = vec![
        (ago(Duration::days(100)), member(0), true),
        (ago(Duration::days(20)), changed(None, Some(30)), false),
        (ago(Duration::days(20)), pruning(0, 0), false),
        (ago(Duration::days(19)), member(3), true),
        (ago(Duration::days(18)), changed(Some(30), None), false),
        (ago(Duration::days(2)), member(5), false),
        (ago(Duration::days(1)), pruning(3, 3), false),
    ];
    assert!(matches!(
        verify(&export_of(&log)),
        Err(VerifyError::Retention(RetentionError::TooYoung {
            seq: 3,
            ..
        }))
    ));
    // An event judged at the time of the pruning that covers it, not at the export's end: 40
    // days old now, but only 20 when its pruning was recorded.
    let log = vec![
        (ago(Duration::days(40)), member(0), true),
        (ago(Duration::days(39)), changed(None, Some(30)), false),
        (ago(Duration::days(20)), pruning(0, 0), false),
    ];
    assert!(matches!(
        verify(&export_of(&log)),
        Err(VerifyError::Retention(RetentionError::TooYoung {
            seq: 0,
            ..
        }))
    ));
}

#[test]
fn where_retention_changes_were_pruned_the_floor_is_assumed() {
    // The first whole change was made from a 90-day retention set by a change since pruned, so
    // before it the log no longer tells which retention was in force: the 30-day floor is
    // assumed. An event 31 days old when its pruning was recorded passes; 29 days old does not.
    let log = |age: i64| {
        vec![
            (ago(Duration::days(600)), changed(None, Some(90)), true),
            (ago(Duration::days(399 + age)), member(1), true),
            (ago(Duration::days(399)), pruning(0, 1), false),
            (
                ago(Duration::days(398)),
                changed(Some(90), Some(365)),
                false,
            ),
        ]
    };
    assert!(verify(&export_of(&log(31))).is_ok());
    assert!(matches!(
        verify(&export_of(&log(29))),
        Err(VerifyError::Retention(RetentionError::TooYoung {
            seq: 1,
            ..
        }))
    ));
}

/// A file of published checkpoints as the data dir holds it: several logs' checkpoints,
/// interleaved, many per log, most at sizes the export carries no checkpoint for.
#[test]
fn published_checkpoints_are_picked_by_origin_and_checked_at_their_own_size() {
    let s = signer();
    let mut events = Vec::new();
    let mut range = CompactRange::new();
    let mut published = Vec::new();
    for seq in 0..12u64 {
        let b = bytes(seq, end(), member(seq));
        range.push(leaf_hash(&b));
        events.push(String::from_utf8(b).unwrap());
        let other = |log: &str, size: u64| {
            s.sign(&Checkpoint {
                origin: format!("bulwark/test/{log}"),
                size,
                root: [size as u8; 32],
                time: 1 + seq,
            })
        };
        published.push(other("system", seq + 1));
        published.push(other("org_2", 2 * seq + 1));
        if seq % 2 == 1 {
            published.push(s.sign(&Checkpoint {
                origin: ORIGIN.into(),
                size: range.size(),
                root: range.root(),
                time: 1 + seq,
            }));
        }
    }
    // The export carries only its last checkpoint, as `audit export` writes it.
    let export_up_to = |n: usize| {
        let mut text = format!("{}\n", export::header_line(ORIGIN));
        let mut r = CompactRange::new();
        for e in &events[..n] {
            r.push(leaf_hash(e.as_bytes()));
            text.push_str(&format!("{e}\n"));
        }
        let note = s.sign(&Checkpoint {
            origin: ORIGIN.into(),
            size: r.size(),
            root: r.root(),
            time: 100,
        });
        text.push_str(&format!("{}\n", export::checkpoint_line(&note)));
        text
    };
    let key = s.verifier();
    let report = export::verify(export_up_to(12).as_bytes(), &key, &published).unwrap();
    assert_eq!((report.events, report.published), (12, 6));

    // Cut back to an earlier checkpoint (size 6): consistent on its own, caught by the file.
    let cut = export_up_to(6);
    assert!(export::verify(cut.as_bytes(), &key, &[]).is_ok());
    let err = export::verify(cut.as_bytes(), &key, &published).unwrap_err();
    assert!(
        matches!(err, VerifyError::Published { size: 8, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");

    // A log rewritten below a published size disagrees with that checkpoint's root.
    let mut rewritten = export_up_to(12);
    rewritten = rewritten.replacen(
        &events[2],
        &String::from_utf8(bytes(2, end(), member(99))).unwrap(),
        1,
    );
    let text = {
        // Re-sign the rewritten log as a compromised server would (same key): only the
        // published checkpoints can tell.
        let mut lines: Vec<&str> = rewritten.lines().collect();
        lines.pop();
        let mut r = CompactRange::new();
        for l in &lines[1..] {
            r.push(leaf_hash(l.as_bytes()));
        }
        let note = s.sign(&Checkpoint {
            origin: ORIGIN.into(),
            size: r.size(),
            root: r.root(),
            time: 100,
        });
        format!("{}\n{}\n", lines.join("\n"), export::checkpoint_line(&note))
    };
    let err = export::verify(text.as_bytes(), &key, &published).unwrap_err();
    assert!(
        matches!(err, VerifyError::Published { size: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("rewritten"), "{err}");

    // A published note not signed by the key is refused, whatever log it names.
    let mut forged = published.clone();
    forged.push(published[0].replace("bulwark-audit", "bulwark-audiT"));
    assert!(matches!(
        export::verify(export_up_to(12).as_bytes(), &key, &forged),
        Err(VerifyError::Published { .. })
    ));
}
