//! Sign-in throttling: exponential backoff per account and per client address.
//!
//! Failures are counted in the database (`login_throttle`), so every replica sharing it sees
//! the same counters. After `free` failures under a key, each further attempt must wait
//! `2^(failures − free)` seconds after the last failure, up to `max_delay`; a counter untouched
//! for `forget_after` starts again. A successful sign-in clears its account's counter, never
//! the address's: one valid account must not reset a credential-stuffing run from the same
//! address. Unknown and known emails are counted alike, so throttling is no oracle either.

use std::net::IpAddr;

use bulwark_types::Email;
use time::{Duration, OffsetDateTime};

use crate::StoreError;
use crate::model::ThrottleRow;
use crate::ports::Store;

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

/// The counters a sign-in attempt is checked against and charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `account:<sha-256 of the address's comparison key, hex>` ([`Email::key`], so every
    /// spelling of one address shares the counter; the email itself is not stored).
    pub account: String,
    /// `ip:<address>`, IPv6 reduced to its /64; `None` without a known client address.
    pub address: Option<String>,
}

impl Keys {
    /// The keys of an attempt for `email` from `source_ip`.
    #[must_use]
    pub fn new(email: &Email, source_ip: Option<&str>) -> Self {
        let digest = bulwark_crypto::sha256(email.key().as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Self {
            account: format!("account:{hex}"),
            address: source_ip.map(address_key),
        }
    }

    fn all(&self) -> Vec<String> {
        std::iter::once(self.account.clone())
            .chain(self.address.clone())
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

    /// Charges a failed attempt to every key.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn record_failure(
        &self,
        store: &dyn Store,
        keys: &Keys,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        for key in keys.all() {
            store
                .throttle_fail(&key, now, now - self.forget_after)
                .await?;
        }
        Ok(())
    }

    /// Clears the account's counter after a successful sign-in.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn record_success(&self, store: &dyn Store, keys: &Keys) -> Result<(), StoreError> {
        store.throttle_clear(&keys.account).await
    }
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
        assert!(!a.account.contains("alice"));
        assert_eq!(a.address.as_deref(), Some("ip:2001:db8:1:2::/64"));
        let v4 = Keys::new(&email, Some("192.0.2.7"));
        assert_eq!(v4.address.as_deref(), Some("ip:192.0.2.7"));
        let mapped = Keys::new(&email, Some("::ffff:192.0.2.7"));
        assert_eq!(mapped.address, v4.address);
    }
}
