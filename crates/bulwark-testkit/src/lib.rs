//! Test harness shared by every crate's integration tests.
#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test harness")]

pub mod pg;
