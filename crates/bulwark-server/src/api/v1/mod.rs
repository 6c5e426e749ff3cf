//! API version 1.

pub mod setup;
