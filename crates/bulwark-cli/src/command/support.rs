//! `bulwark support bundle|verify` (docs/support.md).
//!
//! Exit codes: 0 done; 1 not confirmed at `--review`, or a runtime failure; 2 bad usage (an
//! output that exists, an unreadable log file, a bad `--since`); 3 refused (a secret survived
//! scrubbing); 4 a bundle that does not verify.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use bulwark_server::support::{self, BundleOptions};

use crate::command::backup::failed;
use crate::command::load_config;
use crate::{Exit, StoreArgs};

/// `bulwark support bundle`.
pub async fn bundle(
    args: StoreArgs,
    out: &Path,
    since: &str,
    log_files: Vec<PathBuf>,
    review: bool,
) -> Exit {
    let Some(since) = bulwark_server::config::parse_duration(since) else {
        eprintln!("error: --since: `{since}` is not a number and a unit (m, h, d), like 24h");
        return Exit::Config;
    };
    if out.exists() {
        eprintln!(
            "error: `{}` exists already: a bundle never replaces a file",
            out.display()
        );
        return Exit::Config;
    }
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let opts = BundleOptions { since, log_files };
    let bundle = match support::collect(&config, &opts).await {
        Ok(b) => b,
        Err(e) => return failed(&e),
    };
    if review {
        for entry in &bundle.entries {
            println!("===== {} ({} bytes) =====", entry.name, entry.data.len());
            println!("{}", String::from_utf8_lossy(&entry.data).trim_end());
        }
        println!("===== end =====");
        println!("Write these files to {}? [y/N]", out.display());
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err()
            || !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
        {
            eprintln!("not confirmed: nothing written");
            return Exit::Failure;
        }
    }
    match support::write(out, &bundle) {
        Ok(bytes) => {
            println!(
                "support bundle written: {} ({bytes} bytes, {} files, {}); nothing was sent anywhere",
                out.display(),
                bundle.manifest.files.len(),
                match &bundle.manifest.deployment {
                    Some(d) => format!("signed by deployment {d}"),
                    None => "unsigned: the seed could not be read".into(),
                }
            );
            Exit::Ok
        }
        Err(e) => failed(&e),
    }
}

/// `bulwark support verify`.
pub fn verify(file: &Path, deployment: Option<&str>) -> Exit {
    match support::verify(file) {
        Ok(v) => {
            if let Some(want) = deployment
                && v.manifest.deployment.as_deref() != Some(want)
            {
                eprintln!(
                    "error: the bundle is deployment {}'s, not {want}'s",
                    v.manifest.deployment.as_deref().unwrap_or("(unsigned)")
                );
                return Exit::Invalid;
            }
            println!(
                "verified: {} files, made {} by bulwark {}, {}",
                v.manifest.files.len(),
                v.manifest.created,
                v.manifest.tool,
                if v.signed {
                    format!(
                        "signed by deployment {}",
                        v.manifest.deployment.as_deref().unwrap_or_default()
                    )
                } else {
                    "UNSIGNED (the deployment's seed could not be read when it was made)".into()
                }
            );
            for f in &v.manifest.files {
                println!("  {} {} bytes", f.name, f.size);
            }
            Exit::Ok
        }
        Err(e) => failed(&e),
    }
}
