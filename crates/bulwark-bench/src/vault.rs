//! `bulwark-bench vault`: sealing and opening 1 KiB credential values through the vault's
//! envelopes (fresh data key, KEK wrap, associated data) beside raw AES-256-GCM of the same
//! value under one key in the same run; then the rewrap rate of a rotation over 100,000 stored
//! credentials (SQLite in a temp dir, the job's own batches), beside the rate of a bare
//! transactional `UPDATE` of the same rows.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bulwark_core::ports::Store as _;
use bulwark_crypto::vault::{Binding, SeedWrapper};
use bulwark_crypto::{Aes256Gcm, Seed};
use bulwark_types::SystemClock;

fn per_sec(secs: u64, mut f: impl FnMut()) -> f64 {
    let budget = Duration::from_secs(secs.max(1));
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Runs the benchmark.
pub async fn run(seconds: u64, records: usize) -> anyhow::Result<()> {
    let seed = Seed::generate()?;
    let wrapper = SeedWrapper::new(&seed)?;
    let value = vec![0x5a_u8; 1024];
    let binding = Binding {
        org: "org_0192a0a0a0a0a0a0a0a0a0a0a0a0a0a0",
        record: "cred_0192b0b0b0b0b0b0b0b0b0b0b0b0b0b0",
        field: "value",
        attributes: b"generic https://example.com/",
    };
    let raw = Aes256Gcm::new(&[7; 32])?;
    let nonce = [1; 12];
    let raw_seal = per_sec(seconds, || {
        black_box(raw.seal(&nonce, b"aad", black_box(&value)).ok());
    });
    let sealed = bulwark_crypto::vault::seal(&wrapper, &binding, 1, &value)?;
    let raw_sealed = raw.seal(&nonce, b"aad", &value)?;
    let raw_open = per_sec(seconds, || {
        black_box(raw.open(&nonce, b"aad", black_box(&raw_sealed)));
    });
    let vault_seal = per_sec(seconds, || {
        black_box(bulwark_crypto::vault::seal(&wrapper, &binding, 1, black_box(&value)).ok());
    });
    let vault_open = per_sec(seconds, || {
        black_box(bulwark_crypto::vault::open(&wrapper, &binding, black_box(&sealed)).ok());
    });
    println!("1 KiB values, one core:");
    println!(
        "  seal: vault {vault_seal:>10.0}/s   raw AES-256-GCM {raw_seal:>10.0}/s   ratio {:.3}",
        vault_seal / raw_seal
    );
    println!(
        "  open: vault {vault_open:>10.0}/s   raw AES-256-GCM {raw_open:>10.0}/s   ratio {:.3}",
        vault_open / raw_open
    );
    println!(
        "  (the vault also makes a data key, derives the org's KEK with HKDF and wraps: {:.1} µs per seal)",
        1e6 / vault_seal
    );
    rewrap(&wrapper, records).await
}

async fn rewrap(wrapper: &SeedWrapper, records: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = bulwark_store_sqlite::SqliteStore::open(&dir.path().join("bench.db"), 4).await?;
    let clock = SystemClock;
    bulwark_core::vault::ensure_initial_key(&store, &clock, wrapper).await?;
    let org = crate::measure::seed_org(&store).await?;
    let fill = Instant::now();
    crate::measure::fill_credentials(&store, org, wrapper, records).await?;
    println!(
        "\nrewrap of {records} credentials (SQLite, WAL, synchronous=FULL; filled in {:.1} s):",
        fill.elapsed().as_secs_f64()
    );
    bulwark_core::vault::rotate(
        &store,
        &clock,
        wrapper,
        bulwark_audit::event::Context::system(Some("bench")),
    )
    .await?;
    for batch in [100_u32, 1000] {
        let start = Instant::now();
        let mut moved = 0;
        loop {
            let done = bulwark_core::vault::rewrap_batch(&store, wrapper, batch).await?;
            moved += done.moved;
            if !done.more {
                break;
            }
        }
        let ours = moved as f64 / start.elapsed().as_secs_f64();
        // The baseline: the same rows rewritten with bare UPDATEs, same batch size, no crypto.
        let start = Instant::now();
        let mut rows = 0u64;
        loop {
            let mut tx = store.org(org).await?;
            let stale = tx
                .stale_credentials(bulwark_core::vault::ABOVE_EVERY_VERSION, batch, None)
                .await?;
            if stale.is_empty() || rows >= moved {
                break;
            }
            for c in &stale {
                tx.rewrap_credential(c.id, c.sealed.key_version, &c.sealed)
                    .await?;
                rows += 1;
            }
            tx.commit().await?;
        }
        let bare = rows as f64 / start.elapsed().as_secs_f64();
        println!(
            "  batch {batch:>5}: rewrap {ours:>9.0} records/s ({moved} in {:.1} s)   bare UPDATE {bare:>9.0} rows/s   ratio {:.3}",
            moved as f64 / ours,
            ours / bare
        );
        if batch == 100 {
            bulwark_core::vault::rotate(
                &store,
                &clock,
                wrapper,
                bulwark_audit::event::Context::system(Some("bench")),
            )
            .await?;
        }
    }
    Ok(())
}
