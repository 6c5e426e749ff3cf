//! Background work that runs beside the HTTP server.

pub mod checkpointer;
pub mod mail;
pub mod webhooks;
