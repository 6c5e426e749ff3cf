//! Outbound webhooks: an org's endpoints, the outbox, and the rules the delivery workers follow.
//!
//! INVARIANT: a message is stored in the transaction of the change it reports. Bulwark's own
//! events are the org's audit events: [`fan_out`] runs inside `audit::append_many`, so an event
//! and its outbox rows commit or roll back together. Applications queue their own `app.…`
//! messages through [`send`], with an optional idempotency key.
//!
//! Delivery (driven by the server's worker): [`claim`] takes due deliveries under a lease
//! (at-least-once: a worker that dies leaves its lease to expire, and another one retries);
//! [`finish`] logs each attempt and schedules the next by [`Schedule`]; an endpoint that keeps
//! failing is disabled ([`DisablePolicy`]), audited, and its queue waits for it.
//!
//! The module is split along those seams: [`outbox`] queues Bulwark's events for the subscribed
//! endpoints (below the audit log, which calls it), [`messages`] takes applications' own
//! messages under a decision, [`endpoints`] manages the endpoints and their
//! signing secrets, and [`delivery`] is the workers' side (claim, sign, log, retry, disable) with
//! the re-delivery an admin asks for. The items are re-exported here, so
//! `bulwark_core::webhooks::…` paths name them as before.

pub mod delivery;
pub mod endpoints;
pub mod messages;
pub mod outbox;

use bulwark_audit::event::CATALOG;
use time::OffsetDateTime;

use crate::CoreError;

pub use delivery::{
    Claimed, DisablePolicy, KEPT_RESPONSE_BYTES, MAX_REPLAY_DAYS, MAX_REPLAY_MESSAGES, Schedule,
    body, claim, finish, kept_response, replay, resend, secret_destination, signed_headers,
};
pub use endpoints::{
    DEFAULT_OVERLAP_SECS, EndpointPatch, MAX_ENDPOINTS, MAX_EVENT_TYPES, MAX_IN_FLIGHT,
    MAX_OVERLAP_SECS, MAX_RATE, NewEndpoint, check_url, create_endpoint, delete_endpoint,
    endpoint_log, list_endpoints, reads_audit_events, rotate_secret, update_endpoint,
};
pub use messages::{MAX_KEY_CHARS, MAX_PAYLOAD_BYTES, NewMessage, send};
pub use outbox::{fan_out, prune};

/// The purpose recorded when the worker opens a signing secret (`credential.used`).
pub const SIGNING_PURPOSE: &str = "webhook.signing";

fn invalid(field: &'static str, message: impl Into<String>) -> CoreError {
    CoreError::Validation {
        field,
        message: message.into(),
    }
}

/// A time as Unix milliseconds, the unit of the queue's due times and leases.
#[must_use]
pub fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Event types

/// Whether `t` is an application event type: `app.` then dot-separated segments of
/// `[a-z0-9_-]`, at most 100 characters.
#[must_use]
pub fn is_app_type(t: &str) -> bool {
    t.len() <= 100
        && t.strip_prefix("app.").is_some_and(|rest| {
            rest.split('.').all(|seg| {
                !seg.is_empty()
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
            })
        })
}

/// Whether `t` is one of Bulwark's own event types (the audit catalog).
#[must_use]
pub fn is_bulwark_type(t: &str) -> bool {
    CATALOG.iter().any(|e| e.name == t)
}

/// The event types that are written to the system log only, never to an org's: an org's
/// endpoint can never receive them, so a subscription naming one is refused. (A member's
/// sign-ins, `auth.login.succeeded` and `auth.login.failed`, are recorded in their orgs' logs
/// too; the rest of the account's own life is not the org's.)
pub const SYSTEM_ONLY_TYPES: &[&str] = &[
    "setup.completed",
    "org.created",
    "auth.session.ended",
    "auth.mfa.challenged",
    "auth.sessions.revoked",
    "auth.mfa.enrolled",
    "auth.mfa.removed",
    "auth.mfa.backup_codes_generated",
    "auth.mfa.backup_code_used",
    "auth.password.changed",
    "auth.signed_up",
    "auth.email.verified",
    "auth.password.reset_requested",
    "vault.key_rotated",
    "vault.key_retired",
    "vault.checked",
    "vault.recovery_exported",
    "license.activated",
    "license.expiring",
    "license.read_only",
    "license.clock_reset",
    "license.clock_tampered",
    "license.entitlement_denied",
];

/// Whether events of Bulwark's type `t` can reach an org's log (and so its endpoints).
#[must_use]
pub fn reaches_orgs(t: &str) -> bool {
    is_bulwark_type(t) && !SYSTEM_ONLY_TYPES.contains(&t)
}

/// Whether `pattern` can match something an org's endpoint may receive: `*`, a known type that
/// reaches org logs or an application type, or `prefix.*` where such a type (or the
/// application namespace) lies under the prefix.
#[must_use]
pub fn valid_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => {
            prefix == "app"
                || is_app_type(prefix)
                || CATALOG.iter().any(|e| {
                    reaches_orgs(e.name)
                        && e.name
                            .strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('.'))
                })
        }
        None => reaches_orgs(pattern) || is_app_type(pattern),
    }
}

/// Whether an endpoint subscribed with `patterns` receives `event_type`.
#[must_use]
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event_type
            || p.strip_suffix('*')
                .is_some_and(|prefix| prefix.ends_with('.') && event_type.starts_with(prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_patterns() {
        for ok in [
            "*",
            "member.added",
            "member.*",
            "auth.*",
            "auth.login.*",
            "auth.login.failed",
            "app.invoice.paid",
            "app.*",
            "app.billing.*",
            "webhook.*",
        ] {
            assert!(valid_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "member",
            "nope.*",
            "member.nope",
            "app.",
            "app..x",
            "app.Invoice",
            "*.added",
            "member.**",
            "app",
            // Written to the system log only: an org's endpoint would never receive them.
            "auth.mfa.*",
            "auth.mfa.enrolled",
            "license.*",
            "license.activated",
            "setup.completed",
            "vault.key_rotated",
        ] {
            assert!(!valid_pattern(bad), "{bad}");
        }
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(subscribed(&p(&["member.*"]), "member.added"));
        assert!(!subscribed(&p(&["member.*"]), "members.added"));
        assert!(!subscribed(&p(&["member.added"]), "member.added2"));
        assert!(subscribed(&p(&["*"]), "app.x"));
        assert!(subscribed(&p(&["app.billing.*"]), "app.billing.paid"));
        assert!(!subscribed(&p(&["app.billing.*"]), "app.billingx"));
    }

    #[test]
    fn system_only_types_are_catalog_types() {
        for t in SYSTEM_ONLY_TYPES {
            assert!(is_bulwark_type(t), "`{t}` is not in the catalog");
            assert!(!reaches_orgs(t));
        }
    }
}
