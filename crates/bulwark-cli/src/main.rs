//! `bulwark`: the server and its operator commands.
//!
//! Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error; 3 refused to start
//! because continuing would be unsafe (data directory, seed, database role); 4 a verification
//! failed (`audit verify`).

mod command;
#[cfg(test)]
mod help_tests;
mod secret_file;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Typed exit codes.
#[derive(Debug, Clone, Copy)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A runtime failure.
    Failure = 1,
    /// Bad usage or configuration.
    Config = 2,
    /// Refused to start: continuing would be unsafe.
    Refused = 3,
    /// A verification failed (tampered or foreign data).
    Invalid = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        Self::from(e as u8)
    }
}

#[derive(Parser)]
#[command(
    name = "bulwark",
    version,
    about = "Self-hosted trust plane: identity, sessions, authorization, audit, vault, webhooks, licensing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration and the store are; shared by every command that opens the store.
///
/// Each flag overrides its environment variable, which overrides the configuration file
/// (`docs/config-reference.md`). A default kept in the configuration, not in clap (so a file's
/// value is not overridden by it), is written into the help text in clap's `[default: …]` form;
/// `help_tests` checks it against `Config::default()`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "BULWARK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, workspace seed) [default: ./bulwark-data].
    #[arg(long, env = "BULWARK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (application role); SQLite in the data directory when absent.
    #[arg(
        long,
        env = "BULWARK_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
}

/// `--listen`: `IP:PORT` or `HOST:PORT` (a host name is resolved at start, first address).
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArg {
    /// Address to listen on: `IP:PORT`, or `HOST:PORT` resolved at start to the first address
    /// [default: 127.0.0.1:8420].
    #[arg(long, env = "BULWARK_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        listen: ListenArg,
    },
    /// Ask the server running on this host whether it is alive (`/healthz`) or ready
    /// (`/readyz`): exit 0 on 200, 1 otherwise. For container health checks (no curl needed);
    /// reads the same configuration as `serve` to find the address (a wildcard address is
    /// reached over loopback).
    Healthcheck {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        listen: ListenArg,
        /// Ask `/readyz` (database, migrations, keys, not draining) instead of `/healthz`.
        #[arg(long)]
        ready: bool,
        /// Ask this URL instead (e.g. `https://bulwark.internal:8420/healthz`).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Apply PostgreSQL migrations as the owner and grant the application role what it needs.
    Migrate {
        /// PostgreSQL URL of the owner role.
        #[arg(
            long,
            env = "BULWARK_MIGRATE_DATABASE_URL",
            hide_env_values = true,
            value_name = "OWNER_URL"
        )]
        database_url: String,
        /// The role `serve` will connect as.
        #[arg(long, env = "BULWARK_APP_ROLE", value_name = "NAME")]
        app_role: String,
    },
    /// Create the first organisation and its owner without the HTTP setup token.
    Setup {
        #[command(flatten)]
        store: StoreArgs,
        /// Organisation display name.
        #[arg(long)]
        org: String,
        /// Organisation slug (derived from the name when absent).
        #[arg(long)]
        slug: Option<String>,
        /// Owner email.
        #[arg(long)]
        email: String,
        /// Read the owner's password from standard input (required: passwords never go in argv).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
    /// Recovery actions for an operator on the host.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Offline licenses: this deployment's status and activation; the vendor's signing key,
    /// issuing, and inspecting a license file.
    License {
        #[command(subcommand)]
        command: LicenseCommand,
    },
    /// Organisations beside the first (multi-tenant deployments).
    Orgs {
        #[command(subcommand)]
        command: OrgsCommand,
    },
    /// The credential vault's key versions and the seed's recovery kit.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Audit-log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Encrypted, signed backups of the whole store: create, verify offline, make a key pair.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// A support bundle for the vendor, reviewed and signed, never sent: versions, configuration
    /// (redacted), the store's state and row counts, audit tree heads, the license, recent logs;
    /// emails, addresses and names pseudonymised.
    Support {
        #[command(subcommand)]
        command: SupportCommand,
    },
    /// Org deletion: schedule with a grace window, cancel, purge what is due, and the signed
    /// deletion certificates (write one, verify one offline).
    Deletion {
        #[command(subcommand)]
        command: DeletionCommand,
    },
    /// People's accounts: erase one (the right to erasure).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Run every live check of this deployment's security posture (TLS, cookies, argon2id,
    /// CORS, file permissions, the database role, every audit log, crypto self-tests, the key
    /// provider, egress, mail, MFA of owners, sign-up, license, clock, backups); exit 4 when one
    /// fails.
    Doctor {
        #[command(flatten)]
        store: StoreArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
    /// The deployment's security page: every claim with the live checks that test it here, the
    /// tests that verify it and the build's provenance, signed by the deployment key.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Retention per kind of record: delete ended sessions, closed invitations, old webhook
    /// messages and audit bodies past each org's retention now (`serve` does every
    /// `retention.every`); audited with the counts.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Restore a backup into a new, empty store (`--data-dir`, and `--database-url` for
    /// PostgreSQL as the owner role), then check the restored store against the backup.
    Restore {
        #[command(flatten)]
        store: StoreArgs,
        /// The backup archive.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The age identity file that opens it.
        #[arg(long, value_name = "FILE")]
        identity: PathBuf,
        /// The deployment's seed file, when the backup was made without --include-seed.
        #[arg(long, value_name = "FILE", conflicts_with = "recovery_kit")]
        seed_file: Option<PathBuf>,
        /// The deployment's recovery kit (`keys export-recovery`), when the backup was made
        /// without --include-seed; its passphrase by --passphrase-file or --passphrase-stdin.
        #[arg(long, value_name = "FILE")]
        recovery_kit: Option<PathBuf>,
        #[command(flatten)]
        passphrase: command::keys::PassphraseArgs,
        /// On PostgreSQL: the role `serve` will connect as (granted as `migrate` grants it).
        #[arg(long, env = "BULWARK_APP_ROLE", value_name = "NAME")]
        app_role: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
    /// Authorization tools.
    Authz {
        #[command(subcommand)]
        command: AuthzCommand,
    },
    /// Print the OpenAPI document generated from the code.
    #[command(hide = true)]
    Openapi,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Remove a user's second factor and end all their sessions (a locked-out sole owner);
    /// recorded in the system audit log as a host action.
    ResetMfa {
        #[command(flatten)]
        store: StoreArgs,
        /// The user's email.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum LicenseCommand {
    /// Make a new Ed25519 signing key (written 0600, never over an existing file).
    Keygen {
        /// Where to write the key file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign license claims (JSON) with a key into a license file.
    Issue {
        /// The key file from `keygen`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The claims.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        /// The license file to write (never over an existing file).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// This deployment's id (licenses are issued to it), the license in force, limits and usage
    /// (exit 4 when the stored activation does not verify).
    Status {
        #[command(flatten)]
        store: StoreArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
    /// Set the license clock's latest time seen back to the system clock's time, after the
    /// clock ran ahead (audited).
    ClockReset {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Activate a license file on this deployment (exit 4 when refused; audited either way).
    Activate {
        #[command(flatten)]
        store: StoreArgs,
        /// The license file from the vendor.
        file: PathBuf,
    },
    /// Read a license file strictly and check its signature (exit 4 when it does not verify):
    /// against the `--public-key`s given, else the keys `serve` trusts (the compiled-in vendor
    /// keys and `license.extra_public_keys` of the configuration).
    Inspect {
        /// The license file.
        file: PathBuf,
        /// A trusted public key (base64), repeatable; replaces the default keys.
        #[arg(long = "public-key", value_name = "B64")]
        public_keys: Vec<String>,
        /// TOML configuration file whose `license.extra_public_keys` are trusted too.
        #[arg(long, env = "BULWARK_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum OrgsCommand {
    /// Create an organisation with an existing account as its owner, within the license's
    /// limits (exit 3 when it does not allow another; audited either way).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Slug (derived from the name when absent).
        #[arg(long)]
        slug: Option<String>,
        /// The first owner's email (an existing account).
        #[arg(long)]
        owner_email: String,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Erase a person: their account becomes a tombstone, their sessions, factors, tokens,
    /// memberships, identities and invitations are deleted, and every audit event holding their
    /// address, user agent or email is redacted (the log still verifies). Irreversible; refused
    /// while they are an org's only owner.
    Erase {
        #[command(flatten)]
        store: StoreArgs,
        /// Their email or user id (`usr_…`).
        #[arg(value_name = "EMAIL_OR_ID")]
        user: String,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Apply retention now and print what was deleted.
    Run {
        #[command(flatten)]
        store: StoreArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
}

#[derive(Subcommand)]
enum DeletionCommand {
    /// Schedule an org's deletion (as a host operator): purged when the grace window ends
    /// unless cancelled; audited in the org's log. The operator org cannot be deleted.
    Schedule {
        #[command(flatten)]
        store: StoreArgs,
        /// The org (`org_…`).
        #[arg(value_name = "ORG_ID")]
        org: String,
        /// The grace window: a number and m, h or d (at most 90d), or 0 to purge at the next run.
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        grace: String,
    },
    /// Cancel an org's scheduled deletion (audited).
    Cancel {
        #[command(flatten)]
        store: StoreArgs,
        /// The org (`org_…`).
        #[arg(value_name = "ORG_ID")]
        org: String,
    },
    /// Purge every org whose deletion is due now and issue their certificates (`serve` does
    /// the same every few minutes).
    Run {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Orgs purged (with a stored certificate) and orgs scheduled for deletion.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a purged org's signed deletion certificate (JSON, 0600, never replacing a file).
    Certificate {
        #[command(flatten)]
        store: StoreArgs,
        /// The purged org (`org_…`).
        #[arg(value_name = "ORG_ID")]
        org: String,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a deletion certificate offline: its signature by the deployment key, and the sealed
    /// audit log's checkpoint. Exit 4 when it does not verify.
    Verify {
        /// The certificate.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The deployment it must come from (`dep_…`).
        #[arg(long, value_name = "ID")]
        deployment: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Key versions and how many credentials each seals (the rewrap's progress).
    Status {
        #[command(flatten)]
        store: StoreArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
    /// Make a new key version active; a running server rewraps every credential to it, then
    /// retires the old version.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run the rewrap in the foreground until every credential is under the active version.
    Rewrap {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Open every credential in memory; exit 4 if any does not open.
    Check {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the workspace seed to a kit encrypted under a passphrase (argon2id).
    ExportRecovery {
        #[command(flatten)]
        store: StoreArgs,
        /// The kit file to create (never replaced).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        passphrase: command::keys::PassphraseArgs,
    },
    /// Write the seed from a recovery kit into the data directory (never replacing a seed file).
    RestoreRecovery {
        #[command(flatten)]
        store: StoreArgs,
        /// The kit file.
        #[arg(long, value_name = "FILE")]
        kit: PathBuf,
        #[command(flatten)]
        passphrase: command::keys::PassphraseArgs,
    },
}

#[derive(Subcommand)]
enum SupportCommand {
    /// Write a support bundle (a tar file, 0600, never replacing one). On PostgreSQL the row
    /// counts and audit heads need `--database-url` of the owner role.
    Bundle {
        #[command(flatten)]
        store: StoreArgs,
        /// The bundle to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Log lines older than this are left out: a number and m, h or d.
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        since: String,
        /// A log file of the server to include (its recent lines, scrubbed); repeatable.
        #[arg(long, value_name = "FILE")]
        log_file: Vec<PathBuf>,
        /// Print every file that would go in, then ask before writing.
        #[arg(long)]
        review: bool,
    },
    /// Check a bundle offline: every file against the signed manifest. Exit 4 when it fails.
    Verify {
        /// The bundle.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The deployment it must come from (`dep_…`).
        #[arg(long, value_name = "ID")]
        deployment: Option<String>,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Run every check and write the security page (HTML, Markdown, the checks' JSON, the
    /// provenance and a CycloneDX SBOM) into a new directory, with a manifest of every file's
    /// SHA-256 signed by the deployment key.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The directory to write (new, or empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check an exported page offline: every file against the signed manifest, nothing added.
    /// Exit 4 when it fails.
    Verify {
        /// The page's directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The deployment it must come from (`dep_…`).
        #[arg(long, value_name = "ID")]
        deployment: Option<String>,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Write a backup of the whole store, read in one consistent snapshot while the server
    /// runs, encrypted to age recipients and signed by the deployment key. On PostgreSQL,
    /// `--database-url` names the owner role.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The archive to write (never replaced; written as FILE.partial until complete).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// An age public key (age1…) to encrypt to; repeatable [default: backup.recipients].
        #[arg(long, value_name = "KEY")]
        recipient: Vec<String>,
        /// A file of age public keys, one per line; repeatable.
        #[arg(long, value_name = "FILE")]
        recipients_file: Vec<PathBuf>,
        /// Put the workspace seed in the archive (then it is as sensitive as the seed).
        #[arg(long)]
        include_seed: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
    /// Check a backup offline: decrypt, check every table against the signed manifest, and
    /// replay every audit log against its checkpoints. Exit 4 when it fails.
    Verify {
        /// The backup archive.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The age identity file that opens it.
        #[arg(long, value_name = "FILE")]
        identity: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
    /// Write scheduled backups into `backup.dir` every `backup.schedule` (as `serve` does on
    /// SQLite; on PostgreSQL run this beside it, as the owner role), each verified as written,
    /// keeping `backup.keep`. With `--once`, one backup now (for a system timer).
    Schedule {
        #[command(flatten)]
        store: StoreArgs,
        /// Write one backup, prune, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Make an age key pair: the identity to FILE (0600, never replaced), the public key
    /// (a recipient) to standard output.
    Keygen {
        /// The identity file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Append to the system log from many tasks until killed, printing `ack <seq>` per commit
    /// (crash tests and throughput probes).
    #[command(hide = true)]
    Stress {
        #[command(flatten)]
        store: StoreArgs,
        /// Concurrent appenders.
        #[arg(long, default_value_t = 16)]
        tasks: usize,
        /// Events in all; 0 = until killed.
        #[arg(long, default_value_t = 0)]
        limit: u64,
    },
    /// Print the verifier key of this deployment's audit checkpoints (`name+id+key`).
    Key {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Checkpoint a log now and write its export (JSON Lines) for `audit verify`.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// `system` or an org id (`org_…`).
        #[arg(long, default_value = "system")]
        log: String,
        /// Output file (new, 0600, never replaced), or `-` for standard output.
        #[arg(long, short, default_value = "-")]
        out: PathBuf,
    },
    /// Verify an export offline: every event, every checkpoint signature, and consistency with
    /// checkpoints published outside the database. Exit 4 when verification fails.
    Verify {
        /// The export (JSON Lines).
        file: PathBuf,
        /// The log's verifier key, `name+keyid+base64key`.
        #[arg(long, value_name = "VKEY")]
        key: String,
        /// Checkpoints published outside the database (JSON Lines of `{"checkpoint": …}`).
        #[arg(long, value_name = "FILE")]
        published: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
}

#[derive(Subcommand)]
enum AuthzCommand {
    /// Replay a decision offline from the store and print why it came out so: the principal's
    /// role and teams, the policy set's hash and the policies that decided it.
    Explain {
        #[command(flatten)]
        store: StoreArgs,
        /// The org (`org_…`).
        #[arg(long)]
        org: String,
        /// The user: `usr_…` or their email.
        #[arg(long)]
        principal: String,
        /// The action, e.g. `members.role.write`.
        #[arg(long)]
        action: String,
        /// `org`, `member:usr_…`, `invitation:ROLE` or `team:team_…`.
        #[arg(long, default_value = "org")]
        resource: String,
        /// Assume this role instead of the one the principal holds now.
        #[arg(long)]
        role: Option<String>,
        /// The role being granted, for `members.role.write`.
        #[arg(long)]
        granted_role: Option<String>,
        /// The policy set (`decision.policy_set` of an audit event); the one in force if absent.
        #[arg(long, value_name = "SHA256")]
        policy_hash: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = command::Format::Text)]
        format: command::Format,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted.
    Check {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        listen: ListenArg,
    },
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
            return Exit::Failure.into();
        }
    };
    let exit = runtime.block_on(async {
        match cli.command {
            Command::Serve { store, listen } => {
                command::serve::run(store, listen.listen.as_deref()).await
            }
            Command::Healthcheck {
                store,
                listen,
                ready,
                url,
            } => command::healthcheck::run(store, listen.listen.as_deref(), ready, url).await,
            Command::Migrate {
                database_url,
                app_role,
            } => command::migrate::run(&database_url, &app_role).await,
            Command::Setup {
                store,
                org,
                slug,
                email,
                password_stdin: _,
                format,
            } => command::setup::run(store, &org, slug.as_deref(), &email, format).await,
            Command::Admin {
                command: AdminCommand::ResetMfa { store, email },
            } => command::admin::reset_mfa(store, &email).await,
            Command::Orgs { command } => match command {
                OrgsCommand::Create {
                    store,
                    name,
                    slug,
                    owner_email,
                } => command::orgs::create(store, &name, slug.as_deref(), &owner_email).await,
            },
            Command::License { command } => match command {
                LicenseCommand::Keygen { out } => command::license::keygen(&out),
                LicenseCommand::Issue { key, input, out } => {
                    command::license::issue(&key, &input, &out)
                }
                LicenseCommand::Status { store, format } => {
                    command::license::status(store, format).await
                }
                LicenseCommand::ClockReset { store } => command::license::clock_reset(store).await,
                LicenseCommand::Activate { store, file } => {
                    command::license::activate(store, &file).await
                }
                LicenseCommand::Inspect {
                    file,
                    public_keys,
                    config,
                } => command::license::inspect(&file, &public_keys, config.as_deref()),
            },
            Command::Keys { command } => match command {
                KeysCommand::Status { store, format } => command::keys::status(store, format).await,
                KeysCommand::Rotate { store } => command::keys::rotate(store).await,
                KeysCommand::Rewrap { store } => command::keys::rewrap(store).await,
                KeysCommand::Check { store } => command::keys::check(store).await,
                KeysCommand::ExportRecovery {
                    store,
                    out,
                    passphrase,
                } => command::keys::export_recovery(store, &out, passphrase).await,
                KeysCommand::RestoreRecovery {
                    store,
                    kit,
                    passphrase,
                } => command::keys::restore_recovery(store, &kit, passphrase).await,
            },
            Command::Backup { command } => match command {
                BackupCommand::Create {
                    store,
                    out,
                    recipient,
                    recipients_file,
                    include_seed,
                    format,
                } => {
                    command::backup::create(
                        store,
                        out,
                        &recipient,
                        &recipients_file,
                        include_seed,
                        format,
                    )
                    .await
                }
                BackupCommand::Verify {
                    file,
                    identity,
                    format,
                } => command::backup::verify(&file, &identity, format),
                BackupCommand::Keygen { out } => command::backup::keygen(&out),
                BackupCommand::Schedule { store, once } => {
                    command::backup::schedule(store, once).await
                }
            },
            Command::Support { command } => match command {
                SupportCommand::Bundle {
                    store,
                    out,
                    since,
                    log_file,
                    review,
                } => command::support::bundle(store, &out, &since, log_file, review).await,
                SupportCommand::Verify { file, deployment } => {
                    command::support::verify(&file, deployment.as_deref())
                }
            },
            Command::Users {
                command: UsersCommand::Erase { store, user },
            } => command::users::erase(store, &user).await,
            Command::Doctor { store, format } => command::doctor::run(store, format).await,
            Command::Evidence { command } => match command {
                EvidenceCommand::Export { store, out } => {
                    command::evidence::export(store, &out).await
                }
                EvidenceCommand::Verify { dir, deployment } => {
                    command::evidence::verify(&dir, deployment.as_deref())
                }
            },
            Command::Retention {
                command: RetentionCommand::Run { store, format },
            } => command::retention::run(store, format).await,
            Command::Deletion { command } => match command {
                DeletionCommand::Schedule { store, org, grace } => {
                    command::deletion::schedule(store, &org, &grace).await
                }
                DeletionCommand::Cancel { store, org } => {
                    command::deletion::cancel(store, &org).await
                }
                DeletionCommand::Run { store } => command::deletion::run(store).await,
                DeletionCommand::List { store } => command::deletion::list(store).await,
                DeletionCommand::Certificate { store, org, out } => {
                    command::deletion::certificate(store, &org, &out).await
                }
                DeletionCommand::Verify { file, deployment } => {
                    command::deletion::verify(&file, deployment.as_deref())
                }
            },
            Command::Restore {
                store,
                file,
                identity,
                seed_file,
                recovery_kit,
                passphrase,
                app_role,
                format,
            } => {
                let seed = command::backup::SeedArgs {
                    seed_file,
                    recovery_kit,
                    passphrase,
                };
                command::backup::restore(store, file, &identity, seed, app_role, format).await
            }
            Command::Config {
                command: ConfigCommand::Check { store, listen },
            } => command::config_check(store, listen.listen.as_deref()),
            Command::Authz {
                command:
                    AuthzCommand::Explain {
                        store,
                        org,
                        principal,
                        action,
                        resource,
                        role,
                        granted_role,
                        policy_hash,
                        format,
                    },
            } => {
                let args = command::authz::Args {
                    org,
                    principal,
                    action,
                    resource,
                    role,
                    granted_role,
                    policy_hash,
                    format,
                };
                command::authz::explain(store, args).await
            }
            Command::Audit {
                command:
                    AuditCommand::Stress {
                        store,
                        tasks,
                        limit,
                    },
            } => command::audit_stress::run(store, tasks, limit).await,
            Command::Audit {
                command: AuditCommand::Key { store },
            } => command::audit_export::key(store).await,
            Command::Audit {
                command: AuditCommand::Export { store, log, out },
            } => command::audit_export::export_log(store, &log, &out).await,
            Command::Audit {
                command:
                    AuditCommand::Verify {
                        file,
                        key,
                        published,
                        format,
                    },
            } => command::audit::verify(&file, &key, published.as_deref(), format),
            Command::Openapi => {
                println!("{}", bulwark_server::openapi_json());
                Exit::Ok
            }
        }
    });
    exit.into()
}
