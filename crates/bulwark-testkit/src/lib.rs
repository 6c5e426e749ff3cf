//! Test harness shared by every crate's integration tests.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness"
)]

pub mod app;
pub mod browser;
pub mod docs;
pub mod license;
pub mod logs;
pub mod pg;
pub mod receiver;

pub use app::{Backend, SignedIn, TestApp, spawn_app, spawn_app_with, totp_now};
