//! The real `bulwark` binary, run in temp dirs: documented defaults, restarts, refusals to start
//! (exit 3), configuration errors (exit 2), `bulwark setup`, and PostgreSQL migrate/serve; and
//! every shell example of the README and `docs/`, run as written (`docs.rs`).
//!
//! Every spawned process is owned by a guard that kills it on drop, so a failed assertion never
//! leaves a server behind. Servers listen on `127.0.0.1:0` (except the defaults test) and the
//! port is read from the `listening` line of the JSON log on stdout.
//!
//! The PostgreSQL tests need the throwaway cluster of `scripts/test` (`BULWARK_TEST_PG_URL`).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration tests: a failed step is a failed test"
)]

mod audit;
mod backup;
mod config;
mod deletion;
mod docs;
mod doctor;
mod harness;
mod license;
mod metrics;
mod out_files;
mod postgres;
mod refusal;
mod serve;
mod setup;
mod support;
mod vault;
mod webhooks;
