//! `bulwark-bench backup`: a backup (create, offline verify, restore) of a store with many users,
//! audit events and vault records, beside copying the database files (SQLite) or `pg_dump` /
//! `pg_restore` of the same database (PostgreSQL) in the same run; with each step's peak
//! resident memory, to show it stays bounded whatever the size.

use std::path::Path;
use std::time::{Duration, Instant};

use bulwark_core::model::User;
use bulwark_server::backup::{self, CreateOptions, RestoreOptions, SeedSource};
use bulwark_server::config::Config;
use bulwark_server::startup;
use bulwark_types::{Clock as _, SystemClock, UserId};

/// What to fill the store with and where the PostgreSQL side runs.
pub struct Sizes {
    /// Accounts.
    pub users: usize,
    /// System-log audit events.
    pub events: u64,
    /// Vault records in one org.
    pub credentials: usize,
    /// PostgreSQL: the owner role's URL of the database `--database-url` names (the backup
    /// reads as the owner).
    pub owner_url: Option<String>,
    /// PostgreSQL: the owner's URL of an empty database to restore into (restore is skipped
    /// without it).
    pub restore_url: Option<String>,
    /// PostgreSQL: the application role a restore grants.
    pub app_role: String,
}

/// Resets the peak resident set size (`/proc/self/clear_refs`, Linux).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size since the last reset, in MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn line(name: &str, took: Duration, bytes: u64, peak: Option<f64>, base: Option<Duration>) {
    let mib = bytes as f64 / 1_048_576.0;
    let ratio = base.map_or_else(String::new, |b| {
        format!(
            "{:>6.2}× the baseline's speed",
            b.as_secs_f64() / took.as_secs_f64()
        )
    });
    let peak = peak.map_or_else(String::new, |p| format!("peak RSS {p:>6.0} MiB"));
    println!(
        "  {name:<34} {:>8.2} s {mib:>8.1} MiB {:>8.1} MiB/s  {peak}  {ratio}",
        took.as_secs_f64(),
        mib / took.as_secs_f64()
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Runs the benchmark; `load` gives a fresh copy of the configuration.
pub async fn run(load: impl Fn() -> anyhow::Result<Config>, sizes: Sizes) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fresh = |data: &str, url: Option<&String>| -> anyhow::Result<Config> {
        let mut c = load()?;
        c.data_dir = dir.path().join(data);
        c.listen = "127.0.0.1:0".parse()?;
        if let Some(url) = url {
            c.database_url = Some(url.clone().into());
        }
        Ok(c)
    };
    let config = fresh("data", None)?;
    let postgres = config.database_url.is_some();
    if postgres && sizes.owner_url.is_none() {
        anyhow::bail!("on PostgreSQL, --owner-url names the owner role (the backup reads as it)");
    }
    drop(startup::prepare(fresh("data", None)?).await?);
    let store = startup::open_store(&config).await?;
    let fill = Instant::now();
    fill_store(&config, &store, &sizes).await?;
    println!(
        "bench backup ({}): {} users, {} audit events, {} vault records (filled in {:.0} s)",
        store.engine(),
        sizes.users,
        sizes.events,
        sizes.credentials,
        fill.elapsed().as_secs_f64()
    );
    drop(store);

    let identity = age::x25519::Identity::generate();
    let recipient: backup::Recipient = Box::new(identity.to_public());
    let out = dir.path().join("bench.age");
    // The backup reads as the owner on PostgreSQL.
    let backup_config = fresh("data", sizes.owner_url.as_ref())?;

    let base = if postgres {
        let dump = dir.path().join("bench.dump");
        let start = Instant::now();
        let status = std::process::Command::new(pg_tool("pg_dump"))
            .args([
                "--format=custom",
                "--compress=0",
                "--no-owner",
                "--enable-row-security",
                "-f",
            ])
            .arg(&dump)
            .arg(sizes.owner_url.as_deref().unwrap_or_default())
            .status()?;
        anyhow::ensure!(status.success(), "pg_dump failed");
        let took = start.elapsed();
        line(
            "baseline: pg_dump (custom, no compression)",
            took,
            std::fs::metadata(&dump)?.len(),
            None,
            None,
        );
        took
    } else {
        let copy = dir.path().join("copy");
        std::fs::create_dir(&copy)?;
        let start = Instant::now();
        for entry in std::fs::read_dir(&config.data_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("bulwark.db") {
                std::fs::copy(entry.path(), copy.join(&name))?;
            }
        }
        std::fs::File::open(&copy)?.sync_all()?;
        let took = start.elapsed();
        line(
            "baseline: copy the database files",
            took,
            dir_bytes(&copy),
            None,
            None,
        );
        took
    };

    reset_peak();
    let start = Instant::now();
    let created = backup::create(
        &backup_config,
        CreateOptions {
            out: out.clone(),
            recipients: vec![recipient],
            include_seed: false,
            progress: None,
            verify: false,
        },
    )
    .await?;
    line(
        "backup create",
        start.elapsed(),
        created.bytes,
        Some(peak_mib()),
        Some(base),
    );

    let identities: Vec<backup::Identity> = vec![Box::new(identity.clone())];
    reset_peak();
    let start = Instant::now();
    let verified = tokio::task::block_in_place(|| backup::verify(&out, &identities))?;
    line(
        "backup verify (offline, audit replay)",
        start.elapsed(),
        created.bytes,
        Some(peak_mib()),
        Some(base),
    );
    let events: u64 = verified.logs.iter().map(|l| l.events).sum();
    anyhow::ensure!(events >= sizes.events, "the backup holds {events} events");

    match (&sizes.restore_url, postgres) {
        (None, true) => {
            println!("  (restore skipped on PostgreSQL: give --restore-url, an empty database)");
        }
        (restore_url, _) => {
            let target = fresh("restored", restore_url.as_ref())?;
            reset_peak();
            let start = Instant::now();
            let restored = backup::restore(
                &target,
                RestoreOptions {
                    archive: out.clone(),
                    identities,
                    seed: SeedSource::File(config.data_dir.join(startup::SEED_FILE)),
                    app_role: Some(sizes.app_role.clone()),
                },
            )
            .await?;
            let rows: u64 = restored.tables.iter().map(|t| t.size).sum();
            line(
                &format!("restore ({rows} rows, checked twice)"),
                start.elapsed(),
                created.bytes,
                Some(peak_mib()),
                Some(base),
            );
        }
    }
    Ok(())
}

/// A PostgreSQL client tool: on the `PATH`, or in Debian's versioned directory.
fn pg_tool(name: &str) -> std::path::PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin").join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| name.into())
}

async fn fill_store(
    config: &Config,
    store: &std::sync::Arc<dyn bulwark_core::ports::Store>,
    sizes: &Sizes,
) -> anyhow::Result<()> {
    let now = SystemClock.now();
    for chunk in 0..sizes.users.div_ceil(1000) {
        let mut tx = store.system().await?;
        for i in chunk * 1000..(chunk * 1000 + 1000).min(sizes.users) {
            tx.create_user(&User {
                id: UserId::new(),
                email: format!("user{i}@bench.test").parse()?,
                password_hash: bulwark_crypto::PasswordHashString::from_stored(
                    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                ),
                created_at: now,
                email_verified_at: None,
                disabled_at: None,
            })
            .await?;
        }
        tx.commit().await?;
    }
    let org = crate::measure::seed_org(&**store).await?;
    let content = zeroize::Zeroizing::new(std::fs::read(config.data_dir.join(startup::SEED_FILE))?);
    let seed = bulwark_crypto::Seed::parse_file(&content)?;
    let wrapper = bulwark_crypto::vault::SeedWrapper::new(&seed)?;
    crate::measure::fill_credentials(&**store, org, &wrapper, sizes.credentials).await?;
    crate::audit::append_many(store, sizes.events).await
}
