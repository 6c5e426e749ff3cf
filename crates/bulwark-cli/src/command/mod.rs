//! One module per subcommand.

pub mod admin;
pub mod audit;
pub mod audit_export;
pub mod audit_stress;
pub mod authz;
pub mod backup;
pub mod deletion;
pub mod doctor;
pub mod evidence;
pub mod healthcheck;
pub mod keys;
pub mod license;
pub mod migrate;
pub mod orgs;
pub mod retention;
pub mod serve;
pub mod setup;
pub mod support;
pub mod users;

use bulwark_server::config::{Config, Overrides};
use secrecy::SecretString;

use crate::{Exit, StoreArgs};

/// Output format of commands that print results.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable.
    Text,
    /// One JSON document.
    Json,
}

/// Loads the configuration from file, environment and flags; prints the error and yields exit 2.
/// A `--listen` host name is resolved here (the first address the resolver returns).
pub fn load_config(args: &StoreArgs, listen: Option<&str>) -> Result<Config, Exit> {
    let listen = listen
        .map(|value| {
            bulwark_server::config::resolve_listen(value).map_err(|e| {
                eprintln!("error: invalid configuration: `--listen` (BULWARK_LISTEN): {e}");
                Exit::Config
            })
        })
        .transpose()?;
    let overrides = Overrides {
        listen,
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone().map(SecretString::from),
    };
    Config::load(args.config.as_deref(), std::env::vars(), overrides).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Config
    })
}

/// `bulwark config check`.
pub fn config_check(args: StoreArgs, listen: Option<&str>) -> Exit {
    match load_config(&args, listen) {
        Ok(c) => {
            println!(
                "# effective configuration (secrets redacted)\n{}",
                c.to_redacted_toml()
            );
            Exit::Ok
        }
        Err(e) => e,
    }
}

/// Maps a start-up error to its exit code after printing it.
pub fn start_failed(e: &bulwark_server::startup::StartError) -> Exit {
    use bulwark_server::startup::StartError as E;
    tracing::error!(error = %e, "cannot start");
    eprintln!("error: {}", bulwark_server::error::error_chain(e));
    match e {
        E::Postgres(bulwark_store_postgres::PgSetupError::Connect(_)) => Exit::Failure,
        E::DataDir { .. }
        | E::Seed { .. }
        | E::Postgres(_)
        | E::Boot(bulwark_core::setup::BootError::SeedMismatch) => Exit::Refused,
        E::Tls(_) | E::Publish(_) | E::Mail(_) | E::Egress(_) => Exit::Config,
        E::SelfTest(_) | E::Vault(_) | E::License(_) | E::Gates(_) => Exit::Refused,
        E::Sqlite(_) | E::Boot(_) | E::Bind { .. } | E::Serve(_) | E::Authz(_) => Exit::Failure,
    }
}
