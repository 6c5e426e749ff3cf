//! `bulwark doctor`: every live check of this deployment's security posture (docs/doctor.md).

use bulwark_server::doctor::{self, Check, Live, Report};
use bulwark_server::startup;

use crate::command::{Format, load_config};
use crate::{Exit, StoreArgs};

/// Runs the checks and prints them; exit 0 when none fails, 4 otherwise.
pub async fn run(args: StoreArgs, format: Format) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let report = report(&config).await;
    match format {
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failure;
            }
        },
        Format::Text => print!("{}", report.to_text()),
    }
    if report.failures().next().is_some() {
        Exit::Invalid
    } else {
        Exit::Ok
    }
}

/// Every check: those of the configuration, then those of the open deployment (or one failing
/// check saying why it could not be opened).
pub async fn report(config: &bulwark_server::config::Config) -> Report {
    let mut checks = doctor::config_checks(config);
    match startup::open_doctor_for_tools(config).await {
        Ok(parts) => checks.extend(
            doctor::live_checks(&Live {
                config,
                store: &*parts.store,
                clock: &*parts.clock,
                vault: &*parts.vault,
                licensing: &parts.licensing,
                checkpointer: &parts.checkpointer,
                checkpoint: true,
            })
            .await,
        ),
        Err(e) => checks.push(Check::unopened(&bulwark_server::error::error_chain(&e))),
    }
    Report::new(config, checks, time::OffsetDateTime::now_utc())
}
