//! Bulwark's domain: the records it keeps, the port traits a storage engine implements, and the
//! services that hold the rules. No HTTP and no SQL live here.
//!
//! INVARIANT: tenant data is reachable only through an [`ports::OrgTx`], which a store hands out
//! for exactly one org; there is no port method that reads a tenant table without one. The one
//! exception is not a port: a backup's [`backup::Snapshot`] and a restore's [`backup::Loader`],
//! which only host tools open (on PostgreSQL as the owner role).

pub mod access;
pub mod account;
pub mod apikeys;
pub mod audit;
pub mod authz;
pub mod backup;
pub mod deletion;
pub mod egress;
pub mod erasure;
pub mod error;
pub mod hashing;
pub mod invite;
pub mod licensing;
pub mod mail_jobs;
pub mod metrics;
pub mod mfa;
pub mod model;
pub mod org_policy;
pub mod password_policy;
pub mod ports;
pub mod rate;
pub mod recovery;
pub mod retention;
pub mod scim;
pub mod session;
pub mod session_cache;
mod session_end;
pub mod setup;
pub mod sso;
pub mod throttle;
pub mod tickets;
pub mod vault;
pub mod webhooks;

pub use bulwark_types::redact;
#[cfg(test)]
mod module_graph;
#[cfg(test)]
mod redact_coverage;
pub use error::{CoreError, StoreError};
