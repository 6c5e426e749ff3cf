//! `bulwark evidence export|verify`: the deployment's signed security page (docs/doctor.md).

use std::path::Path;

use bulwark_server::doctor;
use bulwark_server::startup;

use crate::command::{load_config, start_failed};
use crate::{Exit, StoreArgs};

/// Runs every check, then writes the page into `out` (a new or empty directory) with its signed
/// manifest. Exit 0 when written (whatever the checks found: the page says it).
pub async fn export(args: StoreArgs, out: &Path) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let parts = match startup::open_doctor_for_tools(&config).await {
        Ok(p) => p,
        Err(e) => return start_failed(&e),
    };
    let report = doctor::for_parts(&config, &parts, true).await;
    match bulwark_server::evidence::export(out, &report, &parts.signer) {
        Ok(manifest) => {
            println!(
                "security page written to {} ({} files, signed by {}): {} passed, {} warned, {} failed",
                out.display(),
                manifest.files.len() + 2,
                manifest.deployment,
                report.summary.pass,
                report.summary.warn,
                report.summary.fail
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// Checks an exported page offline: exit 0 when it verifies, 4 when it does not.
pub fn verify(dir: &Path, deployment: Option<&str>) -> Exit {
    match bulwark_server::evidence::verify(dir, deployment) {
        Ok(v) => {
            println!(
                "verified: {} files, manifest signed by deployment {} at {}",
                v.manifest.files.len(),
                v.manifest.deployment,
                v.manifest.created
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("verification FAILED: {e}");
            Exit::Invalid
        }
    }
}
