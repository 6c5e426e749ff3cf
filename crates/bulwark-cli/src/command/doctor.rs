//! `bulwark doctor`: every live check of this deployment's security posture (docs/doctor.md).

use bulwark_server::doctor;

use crate::command::{Format, load_config};
use crate::{Exit, StoreArgs};

/// Runs the checks and prints them; exit 0 when none fails, 4 otherwise.
pub async fn run(args: StoreArgs, format: Format) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let report = doctor::for_tools(&config, true).await;
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
