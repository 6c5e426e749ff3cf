//! A per-address request limit for the routes anyone can call without a session (sign-in, MFA
//! verification, setup): a fixed one-minute window per client address, kept in this process.
//!
//! This is a coarse flood guard in front of the database-backed sign-in backoff
//! (`bulwark_core::throttle`), which is the control that holds across replicas. Memory is
//! bounded: stale windows are dropped whenever the table grows past [`MAX_TRACKED`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::error::ApiError;

/// Addresses tracked before stale windows are swept.
pub const MAX_TRACKED: usize = 100_000;
const WINDOW: Duration = Duration::from_secs(60);

/// Counts requests per client address per minute.
pub struct AddressLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl AddressLimiter {
    /// A limiter allowing `per_minute` requests per address.
    #[must_use]
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request from `address` (requests without a known address share one bucket).
    ///
    /// # Errors
    /// `429 rate_limited` with `Retry-After` once the address used up its minute.
    pub fn check(&self, address: Option<&str>) -> Result<(), ApiError> {
        let now = Instant::now();
        let key = address.unwrap_or("unknown");
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 <= self.per_minute {
            return Ok(());
        }
        bulwark_core::metrics::metrics()
            .rate_limited
            .inc(&["address"]);
        let wait = WINDOW.saturating_sub(now.duration_since(entry.0));
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this address; slow down",
        )
        .retry_after(wait.as_secs().max(1)))
    }
}

/// Addresses that recently presented a wrong API key, kept in this process so that the
/// database-backed throttle is consulted before a key is checked only for them: a request with
/// a good key from an address that never failed costs no extra read.
pub struct FailureHints {
    remember_for: Duration,
    seen: Mutex<HashMap<String, Instant>>,
}

impl FailureHints {
    /// Hints kept for `remember_for` (the throttle's `forget_after`).
    #[must_use]
    pub fn new(remember_for: Duration) -> Self {
        Self {
            remember_for,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Notes a failure from `address`.
    pub fn note(&self, address: Option<&str>) {
        let now = Instant::now();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= MAX_TRACKED {
            let keep = self.remember_for;
            seen.retain(|_, at| now.duration_since(*at) < keep);
            if seen.len() >= MAX_TRACKED {
                // A flood of distinct addresses: forgetting them only costs a read each later.
                seen.clear();
            }
        }
        seen.insert(address.unwrap_or("unknown").to_owned(), now);
    }

    /// Whether `address` failed within the remembered time.
    pub fn failed_recently(&self, address: Option<&str>) -> bool {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.get(address.unwrap_or("unknown"))
            .is_some_and(|at| at.elapsed() < self.remember_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_minute() {
        let l = AddressLimiter::new(3);
        for _ in 0..3 {
            assert!(l.check(Some("192.0.2.1")).is_ok());
        }
        let refused = l.check(Some("192.0.2.1")).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code(), "rate_limited");
        assert!(
            l.check(Some("192.0.2.2")).is_ok(),
            "another address is not affected"
        );
    }

    #[test]
    fn failure_hints_remember_each_address_for_a_while() {
        let hints = FailureHints::new(Duration::from_secs(60));
        assert!(!hints.failed_recently(Some("192.0.2.1")));
        hints.note(Some("192.0.2.1"));
        assert!(hints.failed_recently(Some("192.0.2.1")));
        assert!(!hints.failed_recently(Some("192.0.2.2")));
        let forgetful = FailureHints::new(Duration::ZERO);
        forgetful.note(None);
        assert!(!forgetful.failed_recently(None));
    }
}
