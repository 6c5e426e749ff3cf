//! Erasure of a person from the log, keeping its integrity (ADR 0022).
//!
//! An event holds a person's personal data in its envelope (`source_ip`, `user_agent` of the
//! requests they made) and in a few payload fields (emails). Erasing a person replaces the body
//! of each such event by a *redacted* body — the same event with those fields removed or set to
//! [`ERASED`] — and keeps its leaf hash, so the Merkle tree and every signed checkpoint stand.
//! Who did what stays, as a pseudonym: the actor's id (`usr_…`) and every other field remain.
//!
//! The replacement is itself recorded: a later `audit.erased` event lists the seq of every
//! redacted event and the SHA-256 of its redacted body. An export carries a redacted event as
//! `{"erased":{"seq":N,"leaf_hash":"<base64>","body":"<redacted canonical JSON>"}}`; the
//! verifier takes the leaf hash from the line (as for a pruned event) and requires that a later,
//! whole `audit.erased` event names that seq with that digest. A body changed any other way —
//! or a redaction not recorded — fails verification.

use crate::event::{Event, Payload};

/// What a removed personal value is replaced with, where the field must stay.
pub const ERASED: &str = "(erased)";

/// Redacted seqs recorded by one `audit.erased` event at most (a longer erasure appends several).
pub const MAX_PER_RECORD: usize = 500;

/// `event` without the personal data of the person `subject` (`usr_…`) with address `email`
/// (compared case-insensitively): the envelope's address and user agent when they acted, their
/// email in a payload. `None` when the event holds none of it.
#[must_use]
pub fn redact(event: &Event, subject: &str, email: &str) -> Option<Event> {
    let mut out = event.clone();
    let mut changed = false;
    if event.actor.id.as_deref() == Some(subject)
        && (event.source_ip.is_some() || event.user_agent.is_some())
    {
        out.source_ip = None;
        out.user_agent = None;
        changed = true;
    }
    let theirs = |e: &str| e.eq_ignore_ascii_case(email);
    match &mut out.payload {
        Payload::SetupCompleted { owner_email, .. } if theirs(owner_email) => {
            ERASED.clone_into(owner_email);
            changed = true;
        }
        Payload::SsoSettingsChanged { admin_emails, .. }
            if admin_emails.iter().any(|e| theirs(e)) =>
        {
            for e in admin_emails.iter_mut().filter(|e| theirs(e)) {
                ERASED.clone_into(e);
            }
            changed = true;
        }
        _ => {}
    }
    changed.then_some(out)
}

/// A redacted event the verifier met, waiting for its record.
struct Redacted {
    seq: u64,
    digest: String,
}

/// What the verifier gathers about erasures while it reads an export.
#[derive(Default)]
pub(crate) struct ErasureLedger {
    redacted: Vec<Redacted>,
    /// (record's seq, redacted seq, digest), from whole `audit.erased` events.
    recorded: Vec<(u64, u64, String)>,
}

/// A redacted event that no later `audit.erased` event accounts for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event {seq}'s body differs from the one its leaf hash commits to, and no later `audit.erased` event records that redaction: it was edited"
)]
pub struct ErasureError {
    /// The event's seq.
    pub seq: u64,
}

impl ErasureLedger {
    pub(crate) fn redacted(&mut self, seq: u64, body: &[u8]) {
        self.redacted.push(Redacted {
            seq,
            digest: digest(body),
        });
    }

    pub(crate) fn event(&mut self, event: &Event) {
        if let Payload::AuditErased { seqs, digests, .. } = &event.payload {
            for (seq, digest) in seqs.iter().zip(digests) {
                self.recorded.push((event.seq, *seq, digest.clone()));
            }
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.redacted.len() as u64
    }

    pub(crate) fn check(&self) -> Result<(), ErasureError> {
        for r in &self.redacted {
            let recorded = self
                .recorded
                .iter()
                .any(|(at, seq, digest)| *at > r.seq && *seq == r.seq && *digest == r.digest);
            if !recorded {
                return Err(ErasureError { seq: r.seq });
            }
        }
        Ok(())
    }
}

/// The digest an `audit.erased` record names for a redacted body: SHA-256, lowercase hex.
#[must_use]
pub fn digest(body: &[u8]) -> String {
    bulwark_crypto::to_hex(&bulwark_crypto::sha256(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, ActorKind, Context};

    fn event(actor: &str, payload: Payload) -> Event {
        let context = Context {
            actor: Actor {
                kind: ActorKind::User,
                id: Some(actor.into()),
            },
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("Mozilla/5.0 canary".into()),
            request_id: Some("req_1".into()),
            decision: None,
        };
        Event::new(
            "org_x".into(),
            3,
            time::OffsetDateTime::UNIX_EPOCH,
            payload,
            crate::event::Resource {
                kind: "org".into(),
                id: "org_x".into(),
            },
            crate::event::Outcome {
                result: crate::event::Result_::Success,
                reason: None,
            },
            context,
            bulwark_types::EventId::new(),
        )
    }

    #[test]
    fn their_address_agent_and_email_go_and_everything_else_stays() {
        let e = event(
            "usr_a",
            Payload::SetupCompleted {
                org_slug: "acme".into(),
                owner_email: "A@Example.com".into(),
            },
        );
        let r = redact(&e, "usr_a", "a@example.com").unwrap();
        assert_eq!(
            (r.source_ip.as_deref(), r.user_agent.as_deref()),
            (None, None)
        );
        assert_eq!(r.actor, e.actor);
        assert_eq!(r.request_id, e.request_id);
        assert_eq!((r.id, r.seq, r.time), (e.id, e.seq, e.time));
        let Payload::SetupCompleted {
            org_slug,
            owner_email,
        } = &r.payload
        else {
            panic!()
        };
        assert_eq!((org_slug.as_str(), owner_email.as_str()), ("acme", ERASED));
        let bytes = r.canonical_bytes().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        for gone in ["203.0.113.7", "canary", "xample.com"] {
            assert!(!text.contains(gone), "{text}");
        }
        // Someone else's event about nothing of theirs is left alone.
        let other = event(
            "usr_b",
            Payload::MemberRemoved {
                user_id: "usr_a".into(),
            },
        );
        assert!(redact(&other, "usr_a", "a@example.com").is_none());
        let emails = event(
            "usr_b",
            Payload::SsoSettingsChanged {
                sso_required: true,
                admin_emails: vec!["b@example.com".into(), "a@example.com".into()],
                idp_mfa: false,
            },
        );
        let r = redact(&emails, "usr_a", "a@example.com").unwrap();
        assert_eq!(
            r.source_ip, emails.source_ip,
            "usr_b's address is not theirs"
        );
        let Payload::SsoSettingsChanged { admin_emails, .. } = &r.payload else {
            panic!()
        };
        assert_eq!(admin_emails, &["b@example.com", ERASED]);
    }
}
