//! `bulwark keys …`: the credential vault's key versions, run by an operator on the host.
//!
//! - `status`: key versions and how many credentials each seals (the rewrap's progress);
//! - `rotate`: a new active version; a running server's rewrap job moves every credential to it
//!   and retires the old one (`keys rewrap` does the same in the foreground);
//! - `check`: opens every credential in memory and reports any that does not open;
//! - `export-recovery` / `restore-recovery`: the workspace seed in a passphrase-encrypted kit.

use std::io::Read as _;
use std::path::Path;

use bulwark_audit::event::{Context, Payload};
use bulwark_core::audit::{self, Draft, Log};
use bulwark_core::vault;
use bulwark_server::startup;
use bulwark_types::SystemClock;
use serde_json::json;
use zeroize::Zeroizing;

use crate::command::{Format, load_config, start_failed};
use crate::{Exit, StoreArgs, secret_file};

/// Where the passphrase comes from (never argv).
#[derive(clap::Args, Debug, Clone)]
pub struct PassphraseArgs {
    /// Read the passphrase from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_stdin")]
    pub passphrase_file: Option<std::path::PathBuf>,
    /// Read the passphrase from standard input (its first line).
    #[arg(long)]
    pub passphrase_stdin: bool,
}

pub(crate) fn passphrase(args: &PassphraseArgs) -> Result<Zeroizing<String>, Exit> {
    let mut raw = Zeroizing::new(String::new());
    let read = match (&args.passphrase_file, args.passphrase_stdin) {
        (Some(path), _) => std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut raw)),
        (None, true) => std::io::stdin().read_to_string(&mut raw),
        (None, false) => {
            eprintln!(
                "error: give the passphrase with --passphrase-file FILE or --passphrase-stdin"
            );
            return Err(Exit::Config);
        }
    };
    if let Err(e) = read {
        eprintln!("error: cannot read the passphrase: {e}");
        return Err(Exit::Config);
    }
    Ok(Zeroizing::new(
        raw.lines().next().unwrap_or_default().to_owned(),
    ))
}

async fn open(
    args: &StoreArgs,
) -> Result<
    (
        std::sync::Arc<dyn bulwark_core::ports::Store>,
        std::sync::Arc<dyn bulwark_crypto::vault::KeyWrapper>,
        bulwark_crypto::Seed,
    ),
    Exit,
> {
    let config = load_config(args, None)?;
    startup::open_vault_for_tools(&config)
        .await
        .map_err(|e| start_failed(&e))
}

fn failed(e: &dyn std::fmt::Display) -> Exit {
    eprintln!("error: {e}");
    Exit::Failure
}

/// `bulwark keys status`.
pub async fn status(args: StoreArgs, format: Format) -> Exit {
    let (store, wrapper, _) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    let status = match vault::status(&*store).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let count = |v: u32| {
        status
            .counts
            .iter()
            .find(|(version, _)| *version == v)
            .map_or(0, |(_, n)| *n)
    };
    match format {
        Format::Json => {
            let keys: Vec<_> = status
                .keys
                .iter()
                .map(|k| {
                    json!({
                        "version": k.version, "provider": k.provider, "state": k.state.as_str(),
                        "credentials": count(k.version),
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "provider": wrapper.provider(), "active": status.active(),
                    "total": status.total(), "remaining": status.remaining(), "keys": keys,
                })
            );
        }
        Format::Text => {
            println!("provider: {}", wrapper.provider());
            for k in &status.keys {
                println!(
                    "version {:>3}  {:<8}  {:<8}  {} credentials",
                    k.version,
                    k.provider,
                    k.state.as_str(),
                    count(k.version)
                );
            }
            let (total, remaining) = (status.total(), status.remaining());
            if remaining == 0 {
                println!("every credential ({total}) is sealed under the active version");
            } else {
                println!(
                    "rewrap in progress: {} of {total} credentials moved, {remaining} to go",
                    total - remaining
                );
            }
        }
    }
    Exit::Ok
}

/// `bulwark keys rotate`.
pub async fn rotate(args: StoreArgs) -> Exit {
    let (store, wrapper, _) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    let actor = Context::system(Some("bulwark keys rotate (host operator)"));
    match vault::rotate(&*store, &SystemClock, &*wrapper, actor).await {
        Ok(key) => {
            println!(
                "key version {} is active; a running server rewraps every credential to it and \
                 then retires the old version (`bulwark keys status` shows progress)",
                key.version
            );
            Exit::Ok
        }
        Err(e) => failed(&e),
    }
}

/// `bulwark keys rewrap`: the rewrap job in the foreground, until done.
pub async fn rewrap(args: StoreArgs) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (store, wrapper, _) = match startup::open_vault_for_tools(&config).await {
        Ok(v) => v,
        Err(e) => return start_failed(&e),
    };
    match bulwark_server::vault::rewrap_until_done(&*store, &SystemClock, &*wrapper, &config.vault)
        .await
    {
        Ok(()) => status(args, Format::Text).await,
        Err(e) => failed(&e),
    }
}

/// `bulwark keys check`: exit 4 when any credential does not open.
pub async fn check(args: StoreArgs) -> Exit {
    let (store, wrapper, _) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    let report = vault::check_all(&*store, &*wrapper).await;
    if let Ok(report) = &report {
        // Opening every value is recorded, like any other host action on secrets.
        let payload = Payload::VaultChecked {
            opened: report.opened,
            failed: report.failed.len() as u64,
        };
        let recorded = record_host_action(&*store, payload, "vault", "credentials", "check");
        if let Err(e) = recorded.await {
            return failed(&e);
        }
    }
    match report {
        Ok(report) if report.failed.is_empty() => {
            println!("{} credentials open", report.opened);
            Exit::Ok
        }
        Ok(report) => {
            for (org, id, version) in &report.failed {
                println!("does not open: {id} of {org} (key version {version})");
            }
            println!(
                "{} credentials open, {} do not",
                report.opened,
                report.failed.len()
            );
            Exit::Invalid
        }
        Err(e) => failed(&e),
    }
}

/// `bulwark keys export-recovery --out FILE`: the kit appears under its name only after its
/// `vault.recovery_exported` event is recorded (no kit without its event).
pub async fn export_recovery(args: StoreArgs, out: &Path, pass: PassphraseArgs) -> Exit {
    if let Err(e) = secret_file::refuse_existing(out) {
        eprintln!("error: {e}");
        return e.exit();
    }
    let passphrase = match passphrase(&pass) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let (store, _, seed) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (kit, kit_id) = match bulwark_crypto::recovery::seal_kit(&seed, &passphrase) {
        Ok(k) => k,
        Err(e @ bulwark_crypto::recovery::KitError::WeakPassphrase) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
        Err(e) => return failed(&e),
    };
    drop(seed);
    let staged = match secret_file::stage(out, kit.as_bytes()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit();
        }
    };
    let payload = Payload::VaultRecoveryExported {
        kit_id: kit_id.clone(),
    };
    let recorded = record_host_action(&*store, payload, "recovery_kit", &kit_id, "export-recovery");
    if let Err(e) = recorded.await {
        // Dropping the staged kit removes it: no kit without its audit event.
        drop(staged);
        eprintln!("error: cannot record the export, so no kit was written: {e}");
        return Exit::Failure;
    }
    if let Err(e) = staged.publish() {
        eprintln!("error: the export of kit {kit_id} was recorded, but {e}");
        return e.exit();
    }
    println!(
        "wrote recovery kit {kit_id} to {}: keep it and its passphrase apart, offline; \
         `bulwark keys restore-recovery` writes the seed back",
        out.display()
    );
    Exit::Ok
}

/// `bulwark keys restore-recovery --kit FILE`.
pub async fn restore_recovery(args: StoreArgs, kit: &Path, pass: PassphraseArgs) -> Exit {
    let passphrase = match passphrase(&pass) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let json = match std::fs::read_to_string(kit) {
        Ok(j) => Zeroizing::new(j),
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", kit.display());
            return Exit::Config;
        }
    };
    let (seed, kit_id) = match bulwark_crypto::recovery::open_kit(&json, &passphrase) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: `{}`: {e}", kit.display());
            return Exit::Invalid;
        }
    };
    match startup::restore_seed(&config, &seed).await {
        Ok(path) => {
            println!(
                "restored the workspace seed from kit {kit_id} to {}",
                path.display()
            );
            Exit::Ok
        }
        Err(e) => start_failed(&e),
    }
}

/// Records a host operator's `bulwark keys <command>` in the system log.
async fn record_host_action(
    store: &dyn bulwark_core::ports::Store,
    payload: Payload,
    kind: &str,
    id: &str,
    command: &str,
) -> Result<(), bulwark_core::CoreError> {
    let agent = format!("bulwark keys {command} (host operator)");
    let draft = Draft::success(payload, kind, id.to_owned(), Context::system(Some(&agent)));
    let mut tx = store.system().await?;
    audit::append(&mut *tx, Log::System, draft, &SystemClock).await?;
    tx.commit().await?;
    Ok(())
}
