//! Version 1 of the HTTP API.

pub mod access;
pub mod audit;
pub mod auth;
pub mod credentials;
pub mod keys;
pub mod license;
pub mod mfa;
pub mod orgs;
pub mod recovery;
pub mod setup;
pub mod tickets;
pub mod webhooks;
