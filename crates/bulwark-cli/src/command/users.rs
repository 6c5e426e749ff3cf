//! `bulwark users erase EMAIL|USER_ID` (docs/deletion.md): the right to erasure, on the host.
//!
//! Exit codes: 0 erased; 1 a runtime failure; 2 bad usage (no such account); 3 refused (the
//! only owner of an org, or erased already).

use bulwark_core::CoreError;
use bulwark_types::{Email, SystemClock, UserId};

use crate::command::{load_config, start_failed};
use crate::{Exit, StoreArgs};

/// Erases the person with this email or id and prints what was removed.
pub async fn erase(args: StoreArgs, who: &str) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (store, _) = match bulwark_server::startup::open_for_tools(&config).await {
        Ok(v) => v,
        Err(e) => return start_failed(&e),
    };
    let user = if let Ok(id) = who.parse::<UserId>() {
        Some(id)
    } else if let Ok(email) = who.parse::<Email>() {
        match store.system().await {
            Ok(mut tx) => tx.user_by_email(&email).await.ok().flatten().map(|u| u.id),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failure;
            }
        }
    } else {
        eprintln!("error: `{who}` is neither an email address nor a user id (usr_…)");
        return Exit::Config;
    };
    let Some(user) = user else {
        eprintln!("error: no account has that address");
        return Exit::Config;
    };
    match bulwark_core::erasure::erase(&*store, &SystemClock, user).await {
        Ok(erased) => {
            println!(
                "erased {user}: {} events redacted in {} logs; rows: {}",
                erased.events,
                erased.logs.len(),
                erased
                    .rows
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Exit::Ok
        }
        Err(CoreError::NotFound | CoreError::Store(bulwark_core::StoreError::NotFound)) => {
            eprintln!("error: no such account");
            Exit::Config
        }
        Err(e @ (CoreError::LockOut(_) | CoreError::State(_))) => {
            eprintln!("error: {e}");
            Exit::Refused
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}
