//! Bulwark's SCIM 2.0 protocol core (RFC 7643 and RFC 7644), with no I/O: the server hands it
//! JSON and gets JSON or a [`ScimError`](error::ScimError) back.
//!
//! - [`schema`]: the User (with the enterprise extension) and Group schemas as static tables,
//!   the `/Schemas` and `/ResourceTypes` documents, and [`schema::normalize`], which checks a
//!   request body against the schema and smooths over the quirks identity providers send.
//! - [`filter`]: the filter language of RFC 7644 §3.4.2.2 (parser with size limits, canonical
//!   `Display`, evaluation against a resource).
//! - [`patch`]: PATCH (RFC 7644 §3.5.2), all operations or none, with the request shapes of
//!   Microsoft Entra ID and Okta.
//! - [`project`]: the `attributes` / `excludedAttributes` parameters (RFC 7644 §3.9).
//!
//! Attribute names are case-insensitive everywhere (RFC 7643 §2.1); what this crate writes
//! back always uses the schema's spelling.

pub mod error;
pub mod filter;
mod json;
pub mod patch;
pub mod project;
pub mod schema;

pub use error::{ScimError, ScimType};
pub use filter::{AttrPath, CompareOp, Filter};
pub use schema::Resource;
