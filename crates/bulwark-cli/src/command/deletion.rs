//! `bulwark deletion schedule|cancel|run|list|certificate|verify` (docs/deletion.md).
//!
//! Exit codes: 0 done; 1 a runtime failure; 2 bad usage (an org id that does not parse, a bad
//! `--grace`, an output that exists); 3 refused (not scheduled, scheduled already, not due, the
//! operator org); 4 a certificate that does not verify.

use std::path::Path;

use bulwark_core::CoreError;
use bulwark_core::deletion::{self, Requester};
use bulwark_types::{OrgId, SystemClock};

use crate::command::{load_config, start_failed};
use crate::{Exit, StoreArgs};

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The store, the checkpointer and the deployment key of the deployment `args` name.
async fn open(
    args: &StoreArgs,
) -> Result<
    (
        std::sync::Arc<dyn bulwark_core::ports::Store>,
        bulwark_server::workers::checkpointer::Checkpointer,
        bulwark_core::licensing::Deployment,
    ),
    Exit,
> {
    let config = load_config(args, None)?;
    bulwark_server::startup::open_deletion_for_tools(&config)
        .await
        .map_err(|e| start_failed(&e))
}

fn org_id(text: &str) -> Result<OrgId, Exit> {
    text.parse::<OrgId>().map_err(|_| {
        eprintln!("error: `{text}` is not an org id (org_…)");
        Exit::Config
    })
}

fn refused(e: &CoreError) -> Exit {
    match e {
        CoreError::State(_) => {
            eprintln!("error: {e}");
            Exit::Refused
        }
        CoreError::Validation { .. } => {
            eprintln!("error: {e}");
            Exit::Config
        }
        CoreError::NotFound | CoreError::Store(bulwark_core::StoreError::NotFound) => {
            eprintln!("error: no such org");
            Exit::Config
        }
        _ => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// `bulwark deletion schedule ORG_ID [--grace DURATION]`.
pub async fn schedule(args: StoreArgs, org: &str, grace: &str) -> Exit {
    let org = match org_id(org) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let grace = match grace {
        "0" | "now" => std::time::Duration::ZERO,
        other => match bulwark_server::config::parse_duration(other) {
            Some(d) => d,
            None => {
                eprintln!(
                    "error: --grace: `{other}` is not a number and a unit (m, h, d), like 7d, or 0"
                );
                return Exit::Config;
            }
        },
    };
    let (store, _, _) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    match deletion::schedule(&*store, &SystemClock, &Requester::LocalOperator(org), grace).await {
        Ok(d) => {
            println!(
                "deletion of {org} scheduled: purged at {} unless cancelled (bulwark deletion cancel {org})",
                rfc3339(d.due_at)
            );
            Exit::Ok
        }
        Err(e) => refused(&e),
    }
}

/// `bulwark deletion cancel ORG_ID`.
pub async fn cancel(args: StoreArgs, org: &str) -> Exit {
    let org = match org_id(org) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (store, _, _) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    match deletion::cancel(&*store, &SystemClock, &Requester::LocalOperator(org)).await {
        Ok(()) => {
            println!("deletion of {org} cancelled");
            Exit::Ok
        }
        Err(e) => refused(&e),
    }
}

/// `bulwark deletion run`: purges every org whose deletion is due and issues certificates
/// (also for a purged org whose certificate is missing).
pub async fn run(args: StoreArgs) -> Exit {
    let (store, checkpointer, deployment) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    match bulwark_server::deletion::purge_due(&*store, &SystemClock, &checkpointer, &deployment)
        .await
    {
        Ok(done) if done.is_empty() => {
            println!("no deletion is due");
            Exit::Ok
        }
        Ok(done) => {
            let mut exit = Exit::Ok;
            for org in done {
                match store.system().await {
                    Ok(mut tx) => match tx.deletion_certificate(org).await {
                        Ok(Some(_)) => println!(
                            "purged {org}; certificate: bulwark deletion certificate {org} --out FILE"
                        ),
                        _ => {
                            println!(
                                "purged {org}; its certificate failed (see the log): run again"
                            );
                            exit = Exit::Failure;
                        }
                    },
                    Err(e) => {
                        eprintln!("error: {e}");
                        exit = Exit::Failure;
                    }
                }
            }
            exit
        }
        Err(e) => refused(&e),
    }
}

/// `bulwark deletion certificate ORG_ID --out FILE`: writes a purged org's certificate (0600,
/// never replacing a file), issuing it first if the purge's run did not.
pub async fn certificate(args: StoreArgs, org: &str, out: &Path) -> Exit {
    let org = match org_id(org) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if out.exists() {
        eprintln!(
            "error: `{}` exists already: a certificate never replaces a file",
            out.display()
        );
        return Exit::Config;
    }
    let (store, checkpointer, deployment) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    let text = match bulwark_server::deletion::certify(
        &*store,
        &SystemClock,
        &checkpointer,
        &deployment,
        org,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return refused(&e),
    };
    if let Err(e) = bulwark_server::backup::write_secret(out, &text) {
        return crate::command::backup::failed(&e);
    }
    println!("wrote {}", out.display());
    Exit::Ok
}

/// `bulwark deletion list`: scheduled and purged orgs.
pub async fn list(args: StoreArgs) -> Exit {
    let (store, _, _) = match open(&args).await {
        Ok(v) => v,
        Err(e) => return e,
    };
    let certified = match store.system().await {
        Ok(mut tx) => tx.deletion_certificates().await,
        Err(e) => Err(e),
    };
    match certified {
        Ok(rows) if rows.is_empty() => println!("no org was purged"),
        Ok(rows) => {
            for (org, at) in rows {
                println!("{org} purged {} (certificate stored)", rfc3339(at));
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    }
    // Every scheduled org is due within the longest grace window.
    let horizon = time::OffsetDateTime::now_utc()
        + time::Duration::days(i64::from(deletion::MAX_GRACE_DAYS) + 1);
    match store.deletion_due_orgs(horizon).await {
        Ok(orgs) => {
            for org in orgs {
                let due = match store.org_read(org).await {
                    Ok(mut read) => read.deletion().await.ok().flatten(),
                    Err(_) => None,
                };
                if let Some(d) = due {
                    println!(
                        "{org} scheduled by {}: due {}",
                        d.requested_by,
                        rfc3339(d.due_at)
                    );
                }
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// `bulwark deletion verify FILE [--deployment dep_…]`: offline.
pub fn verify(file: &Path, deployment: Option<&str>) -> Exit {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            return Exit::Config;
        }
    };
    match bulwark_server::deletion::verify(&text, deployment) {
        Ok(c) => {
            println!(
                "verified: {} ({}, \"{}\") deleted on request of {} at {}, purged {}; signed by deployment {}",
                c.org.id,
                c.org.slug,
                c.org.name,
                c.requested_by,
                c.requested_at,
                c.purged_at,
                c.deployment
            );
            println!("  rows deleted: {}", c.rows.values().sum::<u64>());
            for (table, n) in c.rows.iter().filter(|(_, n)| **n > 0) {
                println!("    {table}: {n}");
            }
            for k in &c.destroyed_keys {
                println!("  destroyed: {} ({})", k.id, k.kind);
            }
            println!(
                "  audit log {} sealed at {} events, root {}",
                c.audit_log.log, c.audit_log.size, c.audit_log.root
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Invalid
        }
    }
}
