//! Integration tests of the HTTP layer against a real server on both engines.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration tests: a failed step is a failed test"
)]

mod asvs;
mod asvs_controls;
mod audit;
mod audit_api;
mod auth;
mod authz;
mod connections;
mod console;
mod console_browser;
mod emails;
mod evidence;
mod fuzz;
mod hardening;
mod hashing_load;
mod identity;
mod invitations;
mod keys;
mod licensing;
mod logging;
mod meta;
mod metrics;
mod purges;
mod reauth;
mod reset_requests;
mod scim;
mod setup;
mod smtp;
mod sso;
mod sso_saml;
mod start;
mod tickets;
mod tls;
mod vault;
mod vault_hsm;
mod webhooks;
