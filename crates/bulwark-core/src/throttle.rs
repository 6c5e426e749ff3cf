//! Throttling of every check of a secret: exponential backoff per account and per client
//! address, shared by sign-in and by every other place that checks a password, a second-factor
//! code or a token.
//!
//! Failures are counted in the database (`login_throttle`), so every replica sharing it sees
//! the same counters. After `free` failures under a key, each further attempt must wait
//! `2^(failures − free)` seconds after the last failure, up to `max_delay`; a counter untouched
//! for `forget_after` starts again. A successful sign-in clears its account's counter, never
//! the address's: one valid account must not reset a credential-stuffing run from the same
//! address. Unknown and known emails are counted alike, so throttling is no oracle either.
//!
//! Checks made inside a session (re-authentication before changing a password or a second
//! factor) go through [`guard`]: they charge the same account and address counters as sign-in,
//! and a third counter for the session, which ends the session after
//! [`SESSION_FAILURES`] wrong answers. Refusals while throttled are audited at most once per
//! key per [`NOTE_EVERY`], so a flood of attempts cannot grow the audit log either.

use std::future::Future;
use std::net::IpAddr;

use bulwark_audit::event::Context;
use bulwark_types::{Clock, Email};
use time::{Duration, OffsetDateTime};

use crate::audit::{self, Log};
use crate::model::{Session, ThrottleRow};
use crate::ports::Store;
use crate::session_end::failure;
use crate::{CoreError, StoreError};

/// Wrong answers within one session after which the session is ended.
pub const SESSION_FAILURES: u32 = 5;

/// A refusal while throttled is audited at most once per key in this long.
pub const NOTE_EVERY: Duration = Duration::minutes(1);

/// Throttling limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures per account before backoff starts.
    pub account_free: u32,
    /// Failures per client address (IPv4, or IPv6 /64) before backoff starts.
    pub address_free: u32,
    /// The longest wait.
    pub max_delay: Duration,
    /// A counter with no failure for this long starts again.
    pub forget_after: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_free: 5,
            address_free: 20,
            max_delay: Duration::minutes(15),
            forget_after: Duration::hours(1),
        }
    }
}

/// The counters an attempt is checked against and charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `account:<sha-256 of the address's comparison key, hex>` ([`Email::key`], so every
    /// spelling of one address shares the counter; the email itself is not stored); `None` for a
    /// token check, where no account is named.
    pub account: Option<String>,
    /// `ip:<address>`, IPv6 reduced to its /64; `None` without a known client address.
    pub address: Option<String>,
    /// `session:<id>` for a check made inside a session.
    pub session: Option<String>,
}

impl Keys {
    /// The keys of an attempt for `email` from `source_ip`.
    #[must_use]
    pub fn new(email: &Email, source_ip: Option<&str>) -> Self {
        let digest = bulwark_crypto::sha256(email.key().as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Self {
            account: Some(format!("account:{hex}")),
            address: source_ip.map(address_key),
            session: None,
        }
    }

    /// The keys of a check that names no account (a single sign-on's state and code): the
    /// client address only.
    #[must_use]
    pub fn address_only(source_ip: Option<&str>) -> Self {
        Self {
            account: None,
            address: source_ip.map(address_key),
            session: None,
        }
    }

    /// The keys of a check made inside `session` (its user's account, the session itself)
    /// from `source_ip`.
    #[must_use]
    pub fn in_session(session: &Session, source_ip: Option<&str>) -> Self {
        Self {
            session: Some(format!("session:{}", session.id)),
            ..Self::new(&session.email, source_ip)
        }
    }

    /// The account key of `email` alone (a password checked where the address is charged by
    /// an enclosing check already).
    #[must_use]
    pub fn account_only(email: &Email) -> Self {
        Self {
            address: None,
            ..Self::new(email, None)
        }
    }

    /// The keys of a token check (invitation, email verification, password reset, setup, API
    /// key) from `source_ip`: only the address can be charged.
    #[must_use]
    pub fn address(source_ip: Option<&str>) -> Self {
        Self {
            account: None,
            address: Some(address_key(source_ip.unwrap_or("unknown"))),
            session: None,
        }
    }

    fn all(&self) -> Vec<String> {
        self.account
            .iter()
            .chain(&self.address)
            .chain(&self.session)
            .cloned()
            .collect()
    }
}

fn address_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let [a, b, c, d, ..] = v6.segments();
            format!("ip:{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        Ok(IpAddr::V6(v6)) => format!("ip:{}", v6.to_canonical()),
        Ok(v4) => format!("ip:{v4}"),
        Err(_) => format!("ip:{}", ip.chars().take(64).collect::<String>()),
    }
}

impl ThrottlePolicy {
    /// How long after the last failure the next attempt must wait, with `failures` recorded
    /// and `free` allowed.
    #[must_use]
    pub fn delay(&self, failures: u32, free: u32) -> Duration {
        if failures < free {
            return Duration::ZERO;
        }
        let exponent = (failures - free).min(30);
        Duration::seconds(1_i64 << exponent).min(self.max_delay)
    }

    fn free_for(&self, row: &ThrottleRow) -> u32 {
        if row.key.starts_with("account:") {
            self.account_free
        } else if row.key.starts_with("session:") {
            // Not a backoff: a session is ended at its limit (see `guard`).
            u32::MAX
        } else {
            self.address_free
        }
    }

    /// How long the caller must still wait at `now`, if at all.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn retry_after(
        &self,
        store: &dyn Store,
        keys: &Keys,
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, StoreError> {
        let rows = store.throttle_state(&keys.all()).await?;
        Ok(rows
            .iter()
            // Below the free allowance there is no wait: without this, a failure recorded by a
            // concurrent attempt just after `now` was read would look like a wait.
            .filter(|r| r.failures >= self.free_for(r))
            .filter(|r| now - r.last_failure_at < self.forget_after)
            .map(|r| r.last_failure_at + self.delay(r.failures, self.free_for(r)) - now)
            .filter(|wait| wait.is_positive())
            .max())
    }

    /// Charges a failed attempt to every key; returns the session's count after it (0 without a
    /// session key).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn record_failure(
        &self,
        store: &dyn Store,
        keys: &Keys,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let mut session_failures = 0;
        for key in keys.all() {
            let failures = store
                .throttle_fail(&key, now, now - self.forget_after)
                .await?;
            if keys.session.as_ref() == Some(&key) {
                session_failures = failures;
            }
        }
        Ok(session_failures)
    }

    /// Clears the account's counter after a successful sign-in.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn record_success(&self, store: &dyn Store, keys: &Keys) -> Result<(), StoreError> {
        match &keys.account {
            Some(account) => store.throttle_clear(account).await,
            None => Ok(()),
        }
    }

    /// Whether a refusal while throttled should be audited now: at most once per key per
    /// [`NOTE_EVERY`] (the first key of `keys` stands for the attempt). Marks it noted.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn note_refusal(
        &self,
        store: &dyn Store,
        keys: &Keys,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(first) = keys.all().into_iter().next() else {
            return Ok(false);
        };
        let key = format!("noted:{first}");
        let rows = store.throttle_state(std::slice::from_ref(&key)).await?;
        if rows.iter().any(|r| now - r.last_failure_at < NOTE_EVERY) {
            return Ok(false);
        }
        store
            .throttle_fail(&key, now, now - self.forget_after)
            .await?;
        Ok(true)
    }
}

/// One check of a secret, described for [`guard`].
pub struct Attempt<'a> {
    /// The counters to check and charge.
    pub keys: Keys,
    /// The session the check is made in, ended after [`SESSION_FAILURES`] wrong answers.
    pub session: Option<&'a Session>,
    /// What is checked, as audited (`password`, `totp`, `invitation`, `reset_token`, …).
    pub method: &'static str,
    /// Who is checked, as audited (a user id, or `unknown`).
    pub subject: String,
    /// The request's audit context.
    pub context: Context,
}

/// Whether `error` says the presented secret was wrong (the only outcome that is charged).
fn is_wrong_secret(error: &CoreError) -> bool {
    matches!(
        error,
        CoreError::InvalidCredentials
            | CoreError::InvalidCode
            | CoreError::InvalidSetupToken
            | CoreError::SsoRefused { secret: true, .. }
    )
}

/// Runs `check`, a check of a secret, under the throttle: refused with `Throttled` while any of
/// the attempt's counters must wait (before `check` runs, so no hash or code is tried); a wrong
/// secret (`InvalidCredentials`, `InvalidCode`) is charged to every counter, and the session it
/// was made in ends at [`SESSION_FAILURES`]; a right one clears the account's counter. `check`
/// audits its own outcome; refusals while throttled are audited here, boundedly.
///
/// # Errors
/// `Throttled`; whatever `check` returns; storage failures.
pub async fn guard<T>(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: &ThrottlePolicy,
    attempt: Attempt<'_>,
    check: impl Future<Output = Result<T, CoreError>>,
) -> Result<T, CoreError> {
    guard_then(store, clock, policy, attempt, check, |_| true).await
}

/// As [`guard`], but a right answer clears the account's counter only when `completes` says
/// the answer finished what the counter guards. A right password for an account with a second
/// factor does not: the wrong codes of earlier attempts stay counted until a code is right too,
/// so someone who knows the password cannot sign in again to reset the count and keep guessing
/// codes.
///
/// # Errors
/// As [`guard`].
pub async fn guard_then<T>(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: &ThrottlePolicy,
    attempt: Attempt<'_>,
    check: impl Future<Output = Result<T, CoreError>>,
    completes: impl FnOnce(&T) -> bool,
) -> Result<T, CoreError> {
    let now = clock.now();
    if let Some(wait) = policy.retry_after(store, &attempt.keys, now).await? {
        refused_while_throttled(store, clock, policy, &attempt, now).await?;
        return Err(crate::session_end::throttled(wait));
    }
    match check.await {
        Ok(value) => {
            if completes(&value) {
                policy.record_success(store, &attempt.keys).await?;
            }
            Ok(value)
        }
        Err(error) if is_wrong_secret(&error) => {
            let now = clock.now();
            let session_failures = policy.record_failure(store, &attempt.keys, now).await?;
            if let Some(session) = attempt.session
                && session_failures >= SESSION_FAILURES
            {
                crate::session_end::end(store, clock, session, "reauth_failed", attempt.context)
                    .await?;
            }
            Err(error)
        }
        Err(error) => Err(error),
    }
}

/// Audits a refusal while throttled, at most once per key per [`NOTE_EVERY`].
async fn refused_while_throttled(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: &ThrottlePolicy,
    attempt: &Attempt<'_>,
    now: OffsetDateTime,
) -> Result<(), CoreError> {
    if !policy.note_refusal(store, &attempt.keys, now).await? {
        return Ok(());
    }
    let mut tx = store.system().await?;
    let draft = failure(
        attempt.method,
        "throttled",
        attempt.subject.clone(),
        attempt.context.clone(),
    );
    audit::append(&mut *tx, Log::System, draft, clock).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_attempts_and_is_capped() {
        let p = ThrottlePolicy::default();
        assert_eq!(p.delay(4, 5), Duration::ZERO);
        assert_eq!(p.delay(5, 5), Duration::seconds(1));
        assert_eq!(p.delay(6, 5), Duration::seconds(2));
        assert_eq!(p.delay(10, 5), Duration::seconds(32));
        assert_eq!(p.delay(20, 5), Duration::minutes(15));
        assert_eq!(p.delay(u32::MAX, 5), Duration::minutes(15));
    }

    #[test]
    fn keys_hide_the_email_and_group_ipv6_by_slash_64() {
        let email: Email = "Alice@Example.test".parse().unwrap();
        let a = Keys::new(&email, Some("2001:db8:1:2:3:4:5:6"));
        let b = Keys::new(
            &"alice@example.test".parse().unwrap(),
            Some("2001:db8:1:2::ffff"),
        );
        assert_eq!(a, b, "case of the email and the low 64 bits do not matter");
        assert!(!a.account.as_deref().unwrap().contains("alice"));
        assert_eq!(a.address.as_deref(), Some("ip:2001:db8:1:2::/64"));
        let v4 = Keys::new(&email, Some("192.0.2.7"));
        assert_eq!(v4.address.as_deref(), Some("ip:192.0.2.7"));
        let mapped = Keys::new(&email, Some("::ffff:192.0.2.7"));
        assert_eq!(mapped.address, v4.address);
    }
}
