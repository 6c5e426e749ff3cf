//! Version 1 of the HTTP API.

pub mod audit;
pub mod auth;
pub mod setup;
