//! `bulwark admin …`: recovery actions for an operator with a shell on the host.

use bulwark_core::CoreError;
use bulwark_server::startup;
use bulwark_types::{Email, SystemClock};

use crate::command::{load_config, start_failed};
use crate::{Exit, StoreArgs};

/// Removes the second factor of the user with `email` and ends all their sessions, recorded in
/// the system audit log as a host action. For a sole owner locked out of their authenticator.
pub async fn reset_mfa(args: StoreArgs, email: &str) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let email: Email = match email.parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: --email: {e}");
            return Exit::Config;
        }
    };
    let store = match startup::open_store(&config).await {
        Ok(s) => s,
        Err(e) => return start_failed(&e),
    };
    let user = match store.system().await {
        Ok(mut tx) => tx.user_by_email(&email).await,
        Err(e) => Err(e),
    };
    let user = match user {
        Ok(Some(u)) => u,
        Ok(None) => {
            eprintln!("error: no user has the email {email}");
            return Exit::Failure;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    let context =
        bulwark_audit::event::Context::system(Some("bulwark admin reset-mfa (host operator)"));
    match bulwark_core::mfa::reset(&*store, &SystemClock, user.id, "host_reset", context).await {
        Ok(()) => {
            println!(
                "removed the second factor of {email} ({}) and ended all their sessions; they enrol again at their next sign-in",
                user.id
            );
            Exit::Ok
        }
        Err(CoreError::NotFound) => {
            eprintln!("error: no user has the email {email}");
            Exit::Failure
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}
