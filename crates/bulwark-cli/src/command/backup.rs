//! `bulwark backup create|verify|keygen` and `bulwark restore` (docs/backups.md).
//!
//! Exit codes: 0 done; 1 a runtime failure; 2 bad usage (no recipient, an output that exists,
//! an unreadable key); 3 refused as unsafe (a restore target that holds data, another schema
//! version); 4 verification failed (tampered, truncated, foreign or undecryptable archive).

use std::path::{Path, PathBuf};

use bulwark_server::backup::{self, Failure, RestoreOptions, SeedSource};

use crate::command::{Format, load_config};
use crate::{Exit, StoreArgs};

/// Prints the failure and maps it to its exit code.
pub(crate) fn failed(e: &Failure) -> Exit {
    eprintln!("error: {e}");
    if e.is_verification() {
        Exit::Invalid
    } else if e.is_refusal() {
        Exit::Refused
    } else if matches!(e, Failure::Usage(_)) {
        Exit::Config
    } else {
        Exit::Failure
    }
}

/// `bulwark backup create`.
pub async fn create(
    args: StoreArgs,
    out: PathBuf,
    recipient: &[String],
    recipients_file: &[PathBuf],
    include_seed: bool,
    format: Format,
) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut keys = recipient.to_vec();
    let mut files = recipients_file.to_vec();
    if keys.is_empty() && files.is_empty() {
        keys.clone_from(&config.backup.recipients);
        files.extend(config.backup.recipients_file.clone());
    }
    let recipients = match backup::recipients(&keys, &files) {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let opts = backup::CreateOptions {
        out,
        recipients,
        include_seed,
        progress: Some(Box::new(|line: &str| eprintln!("{line}"))),
        verify: false,
    };
    match backup::create(&config, opts).await {
        Ok(created) => {
            let rows: u64 = created.manifest.tables.iter().map(|t| t.size).sum();
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({
                        "path": created.path.display().to_string(),
                        "bytes": created.bytes,
                        "deployment": created.header.deployment,
                        "engine": created.header.engine,
                        "schema_version": created.header.schema_version,
                        "tables": created.manifest.tables.len(),
                        "rows": rows,
                        "audit_logs": created.header.audit.len(),
                        "seed_included": created.header.seed_included,
                    })
                ),
                Format::Text => println!(
                    "backup written: {} ({} bytes; {} tables, {rows} rows, {} audit logs; deployment {}; seed {})",
                    created.path.display(),
                    created.bytes,
                    created.manifest.tables.len(),
                    created.header.audit.len(),
                    created.header.deployment,
                    if created.header.seed_included {
                        "included"
                    } else {
                        "not included: a restore needs the seed file or the recovery kit"
                    }
                ),
            }
            Exit::Ok
        }
        Err(e) => failed(&e),
    }
}

/// `bulwark backup verify`.
pub fn verify(file: &Path, identity: &Path, format: Format) -> Exit {
    let identities = match backup::identities(identity) {
        Ok(i) => i,
        Err(e) => return failed(&e),
    };
    match backup::verify(file, &identities) {
        Ok(v) => {
            let rows: u64 = v.manifest.tables.iter().map(|t| t.size).sum();
            let events: u64 = v.logs.iter().map(|l| l.events).sum();
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({
                        "verified": true,
                        "deployment": v.header.deployment,
                        "created": v.header.created,
                        "engine": v.header.engine,
                        "schema_version": v.header.schema_version,
                        "tool": v.header.tool,
                        "seed_included": v.header.seed_included,
                        "tables": v.manifest.tables.iter().map(|t| serde_json::json!({
                            "name": t.name, "rows": t.size, "sha256": t.sha256
                        })).collect::<Vec<_>>(),
                        "audit_logs": v.logs.iter().map(|l| serde_json::json!({
                            "log": l.log, "events": l.events, "pruned": l.pruned,
                            "checkpoints_checked": l.checkpoints
                        })).collect::<Vec<_>>(),
                    })
                ),
                Format::Text => {
                    println!("verified: {}", file.display());
                    println!(
                        "  deployment {} (manifest signed by its key), created {}, {} schema {}, tool {}",
                        v.header.deployment,
                        v.header.created,
                        v.header.engine,
                        v.header.schema_version,
                        v.header.tool
                    );
                    println!(
                        "  {} tables, {rows} rows, each matching its SHA-256 in the manifest",
                        v.manifest.tables.len()
                    );
                    println!(
                        "  {} audit logs, {events} events: every Merkle tree matches its checkpoints",
                        v.logs.len()
                    );
                    println!(
                        "  seed {}",
                        if v.header.seed_included {
                            "included"
                        } else {
                            "not included"
                        }
                    );
                }
            }
            Exit::Ok
        }
        Err(e) => failed(&e),
    }
}

/// `bulwark backup schedule`.
pub async fn schedule(args: StoreArgs, once: bool) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if config.backup.dir.is_none() {
        eprintln!(
            "error: backup.dir is not set: scheduled backups need a directory (docs/backups.md)"
        );
        return Exit::Config;
    }
    if once {
        return match backup::scheduled_once(&config).await {
            Ok(record) => {
                println!(
                    "backup written and verified: {} ({} bytes, {} rows, {} audit events)",
                    record.file, record.bytes, record.rows, record.audit_events
                );
                Exit::Ok
            }
            Err(e) => failed(&e),
        };
    }
    backup::run_schedule(std::sync::Arc::new(config), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Exit::Ok
}

/// `bulwark backup keygen`.
pub fn keygen(out: &Path) -> Exit {
    let (secret, public) = backup::keygen(time::OffsetDateTime::now_utc());
    match backup::write_secret(out, &secret) {
        Ok(()) => {
            eprintln!(
                "wrote the identity to {}: keep it apart from the backups; it alone opens them",
                out.display()
            );
            println!("{public}");
            Exit::Ok
        }
        Err(e) => failed(&e),
    }
}

/// Where `restore` takes the seed from.
pub struct SeedArgs {
    /// A seed file.
    pub seed_file: Option<PathBuf>,
    /// A recovery kit and its passphrase.
    pub recovery_kit: Option<PathBuf>,
    /// The kit's passphrase.
    pub passphrase: crate::command::keys::PassphraseArgs,
}

/// `bulwark restore`.
pub async fn restore(
    args: StoreArgs,
    file: PathBuf,
    identity: &Path,
    seed: SeedArgs,
    app_role: Option<String>,
    format: Format,
) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let identities = match backup::identities(identity) {
        Ok(i) => i,
        Err(e) => return failed(&e),
    };
    let seed = match (seed.seed_file, seed.recovery_kit) {
        (Some(path), _) => SeedSource::File(path),
        (None, Some(kit)) => {
            let passphrase = match crate::command::keys::passphrase(&seed.passphrase) {
                Ok(p) => p,
                Err(e) => return e,
            };
            let json = match std::fs::read_to_string(&kit) {
                Ok(j) => zeroize::Zeroizing::new(j),
                Err(e) => {
                    eprintln!("error: cannot read `{}`: {e}", kit.display());
                    return Exit::Config;
                }
            };
            match bulwark_crypto::recovery::open_kit(&json, &passphrase) {
                Ok((seed, _)) => SeedSource::Seed(seed),
                Err(e) => {
                    eprintln!("error: `{}`: {e}", kit.display());
                    return Exit::Invalid;
                }
            }
        }
        (None, None) => SeedSource::Archive,
    };
    let opts = RestoreOptions {
        archive: file,
        identities,
        seed,
        app_role,
    };
    match backup::restore(&config, opts).await {
        Ok(r) => {
            let rows: u64 = r.tables.iter().map(|t| t.size).sum();
            let events: u64 = r.logs.iter().map(|l| l.events).sum();
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({
                        "restored": true,
                        "deployment": r.archive.header.deployment,
                        "created": r.archive.header.created,
                        "from_engine": r.archive.header.engine,
                        "tables": r.tables.len(),
                        "rows": rows,
                        "audit_logs": r.logs.len(),
                        "audit_events": events,
                        "seed": r.seed_path.display().to_string(),
                        "compared_with": r.compared_with.as_ref().map(|p| p.display().to_string()),
                        "lost": r.lost.iter().map(|l| serde_json::json!({
                            "log": l.log, "from_seq": l.from_seq, "to_seq": l.to_seq,
                            "events": l.to_seq - l.from_seq + 1,
                            "last_published_at": l.last_published_at,
                        })).collect::<Vec<_>>(),
                    })
                ),
                Format::Text => {
                    println!(
                        "restored deployment {} from the backup of {} ({} → {})",
                        r.archive.header.deployment,
                        r.archive.header.created,
                        r.archive.header.engine,
                        if config.database_url.is_some() {
                            "postgres"
                        } else {
                            "sqlite"
                        }
                    );
                    println!(
                        "  re-read from the restored store: {} tables, {rows} rows, each matching the signed manifest",
                        r.tables.len()
                    );
                    println!(
                        "  {} audit logs, {events} events: every Merkle tree matches its checkpoints",
                        r.logs.len()
                    );
                    println!("  seed written to {}", r.seed_path.display());
                    match &r.compared_with {
                        None => println!(
                            "  no published checkpoints file was at the target to compare with: what was committed after this backup cannot be told (docs/backups.md)"
                        ),
                        Some(path) if r.lost.is_empty() => println!(
                            "  compared with {}: nothing published after this backup is missing",
                            path.display()
                        ),
                        Some(path) => {
                            println!("  compared with {}:", path.display());
                            for l in &r.lost {
                                println!(
                                    "  LOST: audit log `{}`, events {} to {} ({} events), committed after this backup (the last checkpoint of them was signed at unix time {}); the log continues from {}, recorded in that file",
                                    l.log,
                                    l.from_seq,
                                    l.to_seq,
                                    l.to_seq - l.from_seq + 1,
                                    l.last_published_at,
                                    l.from_seq
                                );
                            }
                        }
                    }
                }
            }
            Exit::Ok
        }
        Err(e) => failed(&e),
    }
}
