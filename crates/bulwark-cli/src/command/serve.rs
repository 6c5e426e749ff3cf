//! `bulwark serve`.

use bulwark_server::{logging, startup};

use crate::command::{load_config, start_failed};
use crate::{Exit, StoreArgs};

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: StoreArgs, listen: Option<&str>) -> Exit {
    let config = match load_config(&args, listen) {
        Ok(c) => c,
        Err(e) => return e,
    };
    logging::init(&config.log);
    let mut prepared = match startup::prepare(config).await {
        Ok(p) => p,
        Err(e) => return start_failed(&e),
    };
    if let Err(e) = startup::gate(&prepared).await {
        return start_failed(&e);
    }
    if let Some(token) = prepared.take_setup_token() {
        // Printed to the terminal once, never through the log pipeline.
        eprintln!(
            "\n  Bulwark is not set up yet. One-time setup token (valid until setup or restart):\n\n    {}\n\n  \
             Use it with POST /v1/setup, or run `bulwark setup --org NAME --email EMAIL --password-stdin`.\n",
            token.expose()
        );
    }
    match startup::run(prepared, startup::shutdown_signal()).await {
        Ok(()) => Exit::Ok,
        Err(e) => start_failed(&e),
    }
}
