//! `bulwark-bench audit`: durable audit appends per second at 1, 16 and 128 appenders, one
//! transaction each and through the group writer, beside the raw append+fdatasync rate of the
//! same disk; and the offline verifier's speed on a large export.

use std::time::{Duration, Instant};

use bulwark_server::config::Config;
use bulwark_server::startup;
use bulwark_types::SystemClock;

/// `bulwark-bench audit`: durable audit appends/s at 1, 16 and 128 appenders beside the raw
/// append+fdatasync rate of the same disk, and offline verification speed.
pub async fn run(mut config: Config, events: u64, verify_events: u64) -> anyhow::Result<()> {
    use bulwark_core::audit::{Log, append};
    let dir = tempfile::tempdir()?;
    if config.database_url.is_none() {
        config.data_dir = dir.path().join("data");
    }
    let store = startup::open_store(&config).await?;
    let fsync = fsync_rate(dir.path(), Duration::from_secs(3))?;
    println!("bench audit ({}): {events} events per run", store.engine());
    println!(
        "{:<40} {:>12}",
        "raw 4 KiB append + fdatasync, 1 writer",
        format!("{fsync:.0}/s")
    );
    for tasks in [1usize, 16, 128] {
        let remaining = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(events));
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let store = store.clone();
                let remaining = remaining.clone();
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::{AcqRel, Acquire};
                    while remaining
                        .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let draft = bench_draft();
                        let mut tx = store.system().await?;
                        append(&mut *tx, Log::System, draft, &SystemClock).await?;
                        tx.commit().await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for h in handles {
            h.await??;
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        println!(
            "{:<40} {:>12} {:>8.2}× fsync",
            format!("one transaction each, {tasks} appenders"),
            format!("{rate:.0}/s"),
            rate / fsync
        );
    }
    for tasks in [1usize, 16, 128] {
        let writer = bulwark_core::audit::GroupWriter::spawn(
            store.clone(),
            Log::System,
            std::sync::Arc::new(SystemClock),
            512,
        );
        let remaining = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(events));
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let writer = writer.clone();
                let remaining = remaining.clone();
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::{AcqRel, Acquire};
                    while remaining
                        .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let draft = bench_draft();
                        writer.append(draft).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for h in handles {
            h.await??;
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        println!(
            "{:<40} {:>12} {:>8.2}× fsync",
            format!("group commit, {tasks} appenders"),
            format!("{rate:.0}/s"),
            rate / fsync
        );
    }
    verify_speed(verify_events)
}

/// The event every audit benchmark appends.
/// Appends `events` to the system log through the group writer from 64 tasks.
pub async fn append_many(
    store: &std::sync::Arc<dyn bulwark_core::ports::Store>,
    events: u64,
) -> anyhow::Result<()> {
    let writer = bulwark_core::audit::GroupWriter::spawn(
        store.clone(),
        bulwark_core::audit::Log::System,
        std::sync::Arc::new(SystemClock),
        512,
    );
    let remaining = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(events));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let writer = writer.clone();
            let remaining = remaining.clone();
            tokio::spawn(async move {
                use std::sync::atomic::Ordering::{AcqRel, Acquire};
                while remaining
                    .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1))
                    .is_ok()
                {
                    writer.append(bench_draft()).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    Ok(())
}

fn bench_draft() -> bulwark_core::audit::Draft {
    use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
    bulwark_core::audit::Draft {
        payload: Payload::OrgCreated {
            slug: "bench".into(),
            name: "bench".into(),
            owner_id: None,
        },
        resource: Resource {
            kind: "org".into(),
            id: "bench".into(),
        },
        outcome: Outcome {
            result: Result_::Success,
            reason: None,
        },
        context: Context::system(Some("bench")),
    }
}

/// Appends 4 KiB and `fdatasync`s in a loop for `dur`; returns the rate.
fn fsync_rate(dir: &std::path::Path, dur: Duration) -> anyhow::Result<f64> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fsync.bin"))?;
    let block = [0u8; 4096];
    let (started, mut n) = (Instant::now(), 0u64);
    while started.elapsed() < dur {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Builds an export of `n` events with one checkpoint and times the offline verifier on it.
fn verify_speed(n: u64) -> anyhow::Result<()> {
    use bulwark_audit::checkpoint::{Checkpoint, NoteSigner};
    use bulwark_audit::event::{Context, Event, Outcome, Payload, Resource, Result_};
    use bulwark_audit::merkle::{CompactRange, leaf_hash};
    let signer = NoteSigner::new(
        "bench",
        bulwark_crypto::Ed25519Signer::from_seed(&zeroize::Zeroizing::new([1; 32]))?,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut text = String::with_capacity(usize::try_from(n).unwrap_or(0) * 400);
    text.push_str(&bulwark_audit::export::header_line("bench/system"));
    text.push('\n');
    let mut range = CompactRange::new();
    let time = time::OffsetDateTime::now_utc();
    for seq in 0..n {
        let e = Event::new(
            "system".into(),
            seq,
            time,
            Payload::MemberAdded {
                user_id: format!("usr_{seq}"),
                role: "member".into(),
            },
            Resource {
                kind: "member".into(),
                id: format!("usr_{seq}"),
            },
            Outcome {
                result: Result_::Success,
                reason: None,
            },
            Context::system(Some("bench")),
            bulwark_types::EventId::new(),
        );
        let bytes = e.canonical_bytes()?;
        range.push(leaf_hash(&bytes));
        text.push_str(std::str::from_utf8(&bytes)?);
        text.push('\n');
    }
    let note = signer.sign(&Checkpoint {
        origin: "bench/system".into(),
        size: n,
        root: range.root(),
        time: 0,
    });
    text.push_str(&bulwark_audit::export::checkpoint_line(&note));
    text.push('\n');
    let started = Instant::now();
    let report = bulwark_audit::export::verify(text.as_bytes(), &signer.verifier(), &[note])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let mib = text.len() as f64 / (1024.0 * 1024.0);
    println!(
        "{:<40} {:>12} ({mib:.0} MiB, {:.0} events/s)",
        format!("verify {} events offline", report.events),
        format!("{secs:.2} s"),
        report.events as f64 / secs
    );
    Ok(())
}
