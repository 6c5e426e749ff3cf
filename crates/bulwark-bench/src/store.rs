//! `bulwark-bench store`: the org-scoped read path of the store beside a bare ping query on the
//! same engine (SQLite in a temporary directory, or PostgreSQL with `--database-url`).

use bulwark_server::config::Config;
use bulwark_server::startup;

use crate::measure::{drive, report, seed_org};

/// `bulwark-bench store`: the org-scoped read path (open org transaction, read the org and its
/// members, commit) beside a bare `SELECT 1` round trip on the same engine.
pub async fn run(mut config: Config, tasks: usize, secs: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    if config.database_url.is_none() {
        config.data_dir = dir.path().join("data");
    }
    let store = startup::open_store(&config).await?;
    let org = seed_org(&*store).await?;
    println!(
        "bench store ({}): {tasks} tasks, {secs} s each",
        store.engine()
    );
    let base = drive(tasks, secs, {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move {
                store
                    .health()
                    .await
                    .reachable
                    .then_some(())
                    .ok_or_else(|| anyhow::anyhow!("down"))
            }
        }
    })
    .await?;
    let mine = drive(tasks, secs, move || {
        let store = store.clone();
        async move {
            let mut tx = store.org_read(org).await?;
            tx.get().await?;
            anyhow::ensure!(tx.members().await?.len() == 5, "members");
            Ok(())
        }
    })
    .await?;
    report(
        "org-scoped read (org + members)",
        "health query (ping)",
        mine,
        base,
    );
    Ok(())
}
