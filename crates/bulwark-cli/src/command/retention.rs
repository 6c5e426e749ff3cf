//! `bulwark retention run`: applies retention per kind of record now (docs/deletion.md).

use bulwark_types::SystemClock;

use crate::command::{Format, load_config, start_failed};
use crate::{Exit, StoreArgs};

/// Deletes ended sessions, closed invitations, old webhook messages and audit bodies past each
/// org's retention, records the run in the system log and prints the counts.
pub async fn run(args: StoreArgs, format: Format) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (store, _) = match bulwark_server::startup::open_for_tools(&config).await {
        Ok(v) => v,
        Err(e) => return start_failed(&e),
    };
    let policy = bulwark_server::startup::retention_policy(&config);
    match bulwark_core::retention::apply(&*store, &SystemClock, &policy).await {
        Ok(a) => {
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({
                        "sessions": a.sessions,
                        "invitations": a.invitations,
                        "webhook_messages": a.webhook_messages,
                        "audit_bodies": a.audit_bodies,
                    })
                ),
                Format::Text => println!(
                    "retention applied: {} sessions, {} invitations, {} webhook messages, {} audit bodies deleted",
                    a.sessions, a.invitations, a.webhook_messages, a.audit_bodies
                ),
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}
