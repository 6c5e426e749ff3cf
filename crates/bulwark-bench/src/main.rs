//! `bulwark-bench`: Bulwark's benchmarks, apart from the operator's `bulwark` binary. Measured,
//! never asserted: each benchmark runs ours beside a baseline in the same process and run, and
//! prints the ratio (`docs/BENCHMARKS.md`). `startup` runs the `bulwark` binary built beside
//! this one.
//!
//! Exit codes: 0 success; 1 the benchmark failed; 2 usage or configuration error.

mod audit;
mod auth;
mod authz;
mod backup;
mod console;
#[cfg(test)]
mod help_tests;
mod http;
mod keys;
mod measure;
mod saml;
mod scim;
mod sso;
mod startup;
mod store;
mod vault;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_server::config::{Config, Overrides};
use clap::{Parser, Subcommand};
use secrecy::SecretString;

#[derive(Parser)]
#[command(
    name = "bulwark-bench",
    version,
    about = "Bulwark's benchmarks: ours beside a baseline in the same run, with the ratio"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration and the store are, as `bulwark` reads them: the benchmarks that use a
/// store take PostgreSQL from here, and run on SQLite in a fresh temporary directory otherwise.
#[derive(clap::Args, Debug, Clone)]
struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "BULWARK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory; not used: SQLite runs in a fresh temporary directory.
    #[arg(long, env = "BULWARK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (application role, on a database migrated with `bulwark migrate`); SQLite
    /// in a temporary directory when absent.
    #[arg(
        long,
        env = "BULWARK_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Vault envelopes: seal/open of 1 KiB values beside raw AES-256-GCM; rewrap rate of a
    /// rotation over stored credentials beside bare UPDATEs.
    Vault {
        /// Seconds per measured loop.
        #[arg(long, default_value_t = 2)]
        seconds: u64,
        /// Credentials to store and rewrap.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
    },
    /// Signed webhook deliveries/s through the queue and worker to a local receiver beside a
    /// bare HTTP client loop; enqueue-to-delivery latency at a steady rate.
    Webhooks {
        #[command(flatten)]
        store: StoreArgs,
        /// Messages for the throughput run.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Deliveries in flight (worker concurrency and the bare loop's tasks).
        #[arg(long, default_value_t = 64)]
        concurrency: u32,
        /// Messages per second in the latency run (5 s).
        #[arg(long, default_value_t = 500)]
        rate: u32,
    },
    /// An API-key-authenticated, authorized request (cached path) at 64 connections beside a
    /// bare axum handler, on SQLite.
    Keys {
        /// Alternating 1 s rounds per side.
        #[arg(long, default_value_t = 6)]
        seconds: u64,
    },
    /// Authorization decisions per second (Cedar, built-in and a 200-policy org set) beside a
    /// hand-written role check.
    Authz {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Console pages (server-rendered HTML) beside the JSON API for the same data.
    Console {
        /// Keep-alive connections.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Alternating 1 s rounds of each side.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Events in the org's log before measuring.
        #[arg(long, default_value_t = 1000)]
        events: usize,
    },
    /// A single sign-on through Bulwark beside the identity provider's own work.
    Sso {
        /// Alternating 1 s rounds of each side.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// `oidc` (the provider's round trips beside) or `saml` (the IdP's signed response
        /// beside).
        #[arg(long, default_value = "oidc", value_parser = ["oidc", "saml"])]
        protocol: String,
    },
    /// SCIM at 10,000 provisioned users (`userName eq`, `emails co`, a PATCH adding a group
    /// member, a deprovisioning) beside a plain JSON API read with the same key.
    Scim {
        #[command(flatten)]
        store: StoreArgs,
        /// Alternating 1 s rounds per side.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// `GET /healthz` through the full middleware stack beside a bare axum handler.
    Http {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Successful sign-ins/s beside the argon2id ceiling (cores / hash time), and session
    /// validation beside a bare axum handler, on SQLite.
    Auth {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Durable audit appends at 1, 16 and 128 appenders beside the raw fsync rate, and offline
    /// verification speed.
    Audit {
        #[command(flatten)]
        store: StoreArgs,
        /// Events per appender configuration.
        #[arg(long, default_value_t = 5000)]
        events: u64,
        /// Events in the export whose verification is timed.
        #[arg(long, default_value_t = 1_000_000)]
        verify_events: u64,
    },
    /// Cold start of `bulwark serve` on an existing data dir until `/readyz` answers 200, beside
    /// the bare process start of `bulwark --version`.
    Startup {
        /// Runs to measure.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// The `bulwark` binary to start [default: `bulwark` in the directory of this binary].
        #[arg(long, value_name = "FILE")]
        bulwark: Option<PathBuf>,
    },
    /// Backup create, offline verify and restore of a store with many users, audit events and
    /// vault records, beside copying the database files (SQLite) or `pg_dump` (PostgreSQL), with
    /// each step's peak memory.
    Backup {
        #[command(flatten)]
        store: StoreArgs,
        /// Accounts.
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        /// Audit events.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Vault records.
        #[arg(long, default_value_t = 100_000)]
        credentials: usize,
        /// PostgreSQL: the owner role's URL of the `--database-url` database.
        #[arg(
            long,
            env = "BULWARK_BENCH_OWNER_URL",
            hide_env_values = true,
            value_name = "URL"
        )]
        owner_url: Option<String>,
        /// PostgreSQL: the owner's URL of an empty database to restore into.
        #[arg(
            long,
            env = "BULWARK_BENCH_RESTORE_URL",
            hide_env_values = true,
            value_name = "URL"
        )]
        restore_url: Option<String>,
        /// PostgreSQL: the application role a restore grants.
        #[arg(long, default_value = "bulwark_app", value_name = "NAME")]
        app_role: String,
    },
    /// The org-scoped read path of the store beside a bare ping query (SQLite in a temp dir, or
    /// a migrated PostgreSQL database with `--database-url`).
    Store {
        #[command(flatten)]
        store: StoreArgs,
        /// Concurrent tasks.
        #[arg(long, default_value_t = 16)]
        tasks: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

/// Loads the configuration from file, environment and flags; prints the error when it does not
/// load.
fn load_config(args: &StoreArgs) -> Result<Config, ExitCode> {
    let overrides = Overrides {
        listen: None,
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone().map(SecretString::from),
    };
    Config::load(args.config.as_deref(), std::env::vars(), overrides).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Runs one benchmark.
async fn run(command: Command) -> Result<anyhow::Result<()>, ExitCode> {
    Ok(match command {
        Command::Vault { seconds, records } => vault::run(seconds, records).await,
        Command::Webhooks {
            store,
            messages,
            concurrency,
            rate,
        } => webhooks::run(load_config(&store)?, messages, concurrency, rate).await,
        Command::Keys { seconds } => keys::run(seconds).await,
        Command::Scim { store, seconds } => scim::run(load_config(&store)?, seconds).await,
        Command::Authz { seconds } => authz::run(seconds),
        Command::Http {
            connections,
            seconds,
        } => http::run(connections, seconds).await,
        Command::Auth { seconds } => auth::run(seconds).await,
        Command::Sso { seconds, protocol } if protocol == "saml" => saml::run(seconds).await,
        Command::Sso { seconds, .. } => sso::run(seconds).await,
        Command::Console {
            connections,
            seconds,
            events,
        } => console::run(connections, seconds, events).await,
        Command::Audit {
            store,
            events,
            verify_events,
        } => audit::run(load_config(&store)?, events, verify_events).await,
        Command::Startup { runs, bulwark } => startup::run(bulwark, runs).await,
        Command::Backup {
            store,
            users,
            events,
            credentials,
            owner_url,
            restore_url,
            app_role,
        } => {
            let sizes = backup::Sizes {
                users,
                events,
                credentials,
                owner_url,
                restore_url,
                app_role,
            };
            load_config(&store)?;
            let load = move || {
                load_config(&store).map_err(|_| anyhow::anyhow!("the configuration does not load"))
            };
            backup::run(load, sizes).await
        }
        Command::Store {
            store,
            tasks,
            seconds,
        } => store::run(load_config(&store)?, tasks, seconds).await,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}
