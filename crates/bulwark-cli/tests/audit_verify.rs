//! `bulwark audit verify` as a real binary: offline, typed exit codes, messages naming what broke.
#![expect(clippy::unwrap_used, reason = "integration tests")]

use std::process::Command;

use bulwark_audit::checkpoint::{Checkpoint, NoteSigner};
use bulwark_audit::event::{Actor, ActorKind, Context, Event, Outcome, Payload, Resource, Result_};
use bulwark_audit::export;
use bulwark_audit::merkle::{CompactRange, leaf_hash};
use bulwark_crypto::Ed25519Signer;
use zeroize::Zeroizing;

fn export_lines(s: &NoteSigner, n: u64) -> (Vec<String>, String) {
    let origin = "bulwark/cli-test/system";
    let mut lines = vec![export::header_line(origin)];
    let mut range = CompactRange::new();
    for seq in 0..n {
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
        let e = Event::new(
            "system".into(),
            seq,
            time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap(),
            Payload::OrgCreated {
                slug: format!("org-{seq}"),
                name: "Org".into(),
                owner_id: None,
            },
            Resource {
                kind: "org".into(),
                id: format!("org_{seq}"),
            },
            Outcome {
                result: Result_::Success,
                reason: None,
            },
            ctx,
            bulwark_types::EventId::new(),
        )
        .canonical_bytes()
        .unwrap();
        range.push(leaf_hash(&e));
        lines.push(String::from_utf8(e).unwrap());
    }
    let note = s.sign(&Checkpoint {
        origin: origin.into(),
        size: range.size(),
        root: range.root(),
        time: 1,
    });
    lines.push(export::checkpoint_line(&note));
    (lines, note)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn audit_verify_accepts_an_intact_export_and_rejects_tampering_with_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let s = NoteSigner::new(
        "bulwark-audit",
        Ed25519Signer::from_seed(&Zeroizing::new([9; 32])).unwrap(),
    )
    .unwrap();
    let vkey = s.verifier().to_vkey();
    let (lines, note) = export_lines(&s, 5);
    let file = dir.path().join("export.jsonl");
    std::fs::write(
        &file,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let published = dir.path().join("checkpoints.jsonl");
    std::fs::write(&published, format!("{}\n", export::checkpoint_line(&note))).unwrap();
    let path = file.to_str().unwrap();

    let (code, out, _) = run(&[
        "audit",
        "verify",
        path,
        "--key",
        &vkey,
        "--published",
        published.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["verified"].as_bool(), v["events"].as_u64()),
        (Some(true), Some(5))
    );

    let mut tampered = lines.clone();
    tampered[3] = tampered[3].replace("org-2", "org-X");
    std::fs::write(
        &file,
        tampered
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let (code, _, err) = run(&["audit", "verify", path, "--key", &vkey]);
    assert_eq!(code, 4);
    assert!(err.contains("line 7") && err.contains("edited"), "{err}");

    let other = NoteSigner::new(
        "bulwark-audit",
        Ed25519Signer::from_seed(&Zeroizing::new([8; 32])).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &file,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let (code, _, err) = run(&[
        "audit",
        "verify",
        path,
        "--key",
        &other.verifier().to_vkey(),
    ]);
    assert_eq!(code, 4);
    assert!(err.contains("not validly signed"), "{err}");

    assert_eq!(run(&["audit", "verify", path, "--key", "garbage"]).0, 2);
    assert_eq!(
        run(&["audit", "verify", "/nonexistent", "--key", &vkey]).0,
        1
    );
}

#[test]
fn audit_verify_reads_a_cloudevents_batch_and_names_the_tampered_element() {
    let dir = tempfile::tempdir().unwrap();
    let s = NoteSigner::new(
        "bulwark-audit",
        Ed25519Signer::from_seed(&Zeroizing::new([7; 32])).unwrap(),
    )
    .unwrap();
    let vkey = s.verifier().to_vkey();
    let (lines, _) = export_lines(&s, 4);
    let jsonl: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let batch = bulwark_audit::cloudevents::to_cloudevents(&jsonl).unwrap();
    let file = dir.path().join("export.json");
    std::fs::write(&file, &batch).unwrap();
    let path = file.to_str().unwrap();
    let (code, out, err) = run(&["audit", "verify", path, "--key", &vkey]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified: 4 events"), "{out}");

    let mut elements: Vec<serde_json::Value> = serde_json::from_str(&batch).unwrap();
    elements[2]["data"]["data"]["name"] = "Evil".into();
    std::fs::write(&file, serde_json::to_string(&elements).unwrap()).unwrap();
    let (code, _, err) = run(&["audit", "verify", path, "--key", &vkey]);
    assert_eq!(code, 4);
    assert!(
        err.contains("CloudEvents") && err.contains("signed root"),
        "{err}"
    );

    let mut elements: Vec<serde_json::Value> = serde_json::from_str(&batch).unwrap();
    elements[1]["subject"] = "org/org_other".into();
    std::fs::write(&file, serde_json::to_string(&elements).unwrap()).unwrap();
    let (code, _, err) = run(&["audit", "verify", path, "--key", &vkey]);
    assert_eq!(code, 4);
    assert!(
        err.contains("element 2") && err.contains("envelope"),
        "{err}"
    );

    std::fs::write(&file, "[]").unwrap();
    let (code, _, err) = run(&["audit", "verify", path, "--key", &vkey]);
    assert_eq!(code, 4);
    assert!(err.contains("nothing to verify"), "{err}");
}

/// An org log export: two 100-day-old events pruned after a 30-day retention was set an hour
/// before the checkpoint, with the pruning recorded; `erase_record` prunes that record too.
fn pruned_export(s: &NoteSigner, erase_record: bool) -> String {
    let origin = "bulwark/cli-test/org_1";
    let end = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let old = end - time::Duration::days(100);
    let hour = end - time::Duration::hours(1);
    let events = [
        (
            old,
            Payload::MemberRemoved {
                user_id: "usr_a".into(),
            },
            true,
        ),
        (
            old,
            Payload::MemberRemoved {
                user_id: "usr_b".into(),
            },
            true,
        ),
        (
            hour,
            Payload::AuditRetentionChanged {
                from_days: None,
                to_days: Some(30),
            },
            false,
        ),
        (
            hour,
            Payload::AuditPruned {
                events: 2,
                retention_days: 30,
                from_seq: Some(0),
                to_seq: Some(1),
                oldest: None,
                newest: None,
            },
            erase_record,
        ),
    ];
    let mut text = format!("{}\n", export::header_line(origin));
    let mut range = CompactRange::new();
    for (seq, (time, payload, pruned)) in (0u64..).zip(events) {
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
        let e = Event::new(
            "org_1".into(),
            seq,
            time,
            payload,
            resource,
            outcome,
            ctx,
            bulwark_types::EventId::new(),
        )
        .canonical_bytes()
        .unwrap();
        let leaf = leaf_hash(&e);
        range.push(leaf);
        if pruned {
            text.push_str(&export::pruned_line(seq, time, &leaf));
        } else {
            text.push_str(std::str::from_utf8(&e).unwrap());
        }
        text.push('\n');
    }
    let note = s.sign(&Checkpoint {
        origin: origin.into(),
        size: range.size(),
        root: range.root(),
        time: 1_790_000_000,
    });
    format!("{text}{}\n", export::checkpoint_line(&note))
}

#[test]
fn audit_verify_lists_pruned_events_and_fails_on_a_body_erased_outside_retention() {
    let dir = tempfile::tempdir().unwrap();
    let s = NoteSigner::new(
        "bulwark-audit",
        Ed25519Signer::from_seed(&Zeroizing::new([6; 32])).unwrap(),
    )
    .unwrap();
    let vkey = s.verifier().to_vkey();
    let file = dir.path().join("export.jsonl");
    let path = file.to_str().unwrap();
    let honest = pruned_export(&s, false);
    std::fs::write(&file, &honest).unwrap();
    let (code, out, err) = run(&["audit", "verify", path, "--key", &vkey]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 pruned events"), "{out}");
    assert!(out.contains("pruned: seq 0 time 2026-06-"), "{out}");
    assert!(out.contains("pruned: seq 1 time "), "{out}");
    let (code, out, _) = run(&["audit", "verify", path, "--key", &vkey, "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pruned"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["pruned"][1]["seq"], 1, "{v}");
    assert!(
        v["pruned"][1]["time"].as_str().unwrap().ends_with('Z'),
        "{v}"
    );
    // The CloudEvents form carries the pruned events' times too.
    let batch = bulwark_audit::cloudevents::to_cloudevents(&honest).unwrap();
    std::fs::write(&file, &batch).unwrap();
    let (code, out, err) = run(&["audit", "verify", path, "--key", &vkey]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pruned: seq 1 time "), "{out}");

    // The record of the pruning erased as well: nothing explains the pruned events any more.
    std::fs::write(&file, pruned_export(&s, true)).unwrap();
    let (code, out, err) = run(&["audit", "verify", path, "--key", &vkey]);
    assert_eq!(code, 4, "{out}");
    assert!(err.contains("erased outside retention"), "{err}");
}
