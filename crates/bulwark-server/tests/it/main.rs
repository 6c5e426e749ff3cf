//! Integration tests of the HTTP layer against a real server on both engines.

mod hardening;
mod logging;
mod meta;
mod setup;
mod tls;
