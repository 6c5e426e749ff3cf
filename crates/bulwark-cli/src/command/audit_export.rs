//! `bulwark audit key` and `bulwark audit export`: local operator tools over an existing
//! deployment's store and seed.

use std::io::Write as _;
use std::path::Path;

use bulwark_core::audit::Log;
use bulwark_core::ports::AuditRead;
use bulwark_server::startup;

use crate::command::{load_config, start_failed};
use crate::{Exit, StoreArgs, secret_file};

/// Prints the verifier key of this deployment's audit checkpoints.
pub async fn key(args: StoreArgs) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    match startup::open_for_tools(&config).await {
        Ok((_, checkpointer)) => {
            println!("{}", checkpointer.verifier_key());
            Exit::Ok
        }
        Err(e) => start_failed(&e),
    }
}

/// Checkpoints `log` now and writes its whole export to `out` (a new 0600 file, never over an
/// existing one) or to stdout with `-`.
pub async fn export_log(args: StoreArgs, log: &str, out: &Path) -> Exit {
    if out != Path::new("-")
        && let Err(e) = secret_file::refuse_existing(out)
    {
        eprintln!("error: {e}");
        return e.exit();
    }
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let log = match log {
        "system" => Log::System,
        other => match other.parse() {
            Ok(org) => Log::Org(org),
            Err(e) => {
                eprintln!("error: --log: {e}; use `system` or an org id");
                return Exit::Config;
            }
        },
    };
    let (store, checkpointer) = match startup::open_for_tools(&config).await {
        Ok(t) => t,
        Err(e) => return start_failed(&e),
    };
    if let Err(e) = checkpointer.checkpoint_now(log).await {
        eprintln!("error: cannot checkpoint the log: {e}");
        return Exit::Failure;
    }
    match write_export(&*store, log, &checkpointer.origin(log)).await {
        Ok(text) => {
            if out == Path::new("-") {
                return match std::io::stdout().write_all(text.as_bytes()) {
                    Ok(()) => Exit::Ok,
                    Err(e) => {
                        eprintln!("error: cannot write to standard output: {e}");
                        Exit::Failure
                    }
                };
            }
            // Personal data (emails, addresses): 0600, complete or absent, never replacing.
            match secret_file::write_new(out, text.as_bytes()) {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!("error: {e}");
                    e.exit()
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// Reads the log up to its latest checkpoint in one transaction and renders the export.
async fn write_export(
    store: &dyn bulwark_core::ports::Store,
    log: Log,
    origin: &str,
) -> Result<String, bulwark_core::StoreError> {
    let mut reader: Box<dyn AuditRead> = match log {
        Log::System => store.system().await?,
        Log::Org(org) => store.org_read(org).await?,
    };
    bulwark_core::audit::export_jsonl(&mut *reader, origin).await
}
