//! `bulwark audit stress` (hidden): appends events to the system log from many tasks until
//! killed, printing `ack <seq>` after each commit. The crash test `kill -9`s it and checks that
//! every acknowledged event survived and the log still verifies; the output doubles as an
//! append-throughput probe.

use std::io::Write as _;
use std::sync::Arc;

use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
use bulwark_core::audit::{Draft, Log, append};
use bulwark_server::startup;
use bulwark_types::SystemClock;

use crate::command::{load_config, start_failed};
use crate::{Exit, StoreArgs};

/// Appends from `tasks` tasks, `limit` events in all (0 = until killed).
pub async fn run(args: StoreArgs, tasks: usize, limit: u64) -> Exit {
    let config = match load_config(&args, None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let store = match startup::open_for_tools(&config).await {
        Ok((store, _)) => store,
        Err(e) => return start_failed(&e),
    };
    let remaining = Arc::new(std::sync::atomic::AtomicU64::new(if limit == 0 {
        u64::MAX
    } else {
        limit
    }));
    let handles: Vec<_> = (0..tasks.max(1))
        .map(|task| {
            let store = store.clone();
            let remaining = remaining.clone();
            tokio::spawn(async move {
                while remaining
                    .fetch_update(
                        std::sync::atomic::Ordering::AcqRel,
                        std::sync::atomic::Ordering::Acquire,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                {
                    let draft = Draft {
                        payload: Payload::OrgCreated {
                            slug: format!("stress-{task}"),
                            name: "stress".into(),
                            owner_id: None,
                        },
                        resource: Resource {
                            kind: "org".into(),
                            id: format!("task-{task}"),
                        },
                        outcome: Outcome {
                            result: Result_::Success,
                            reason: None,
                        },
                        context: Context::system(Some("bulwark audit stress")),
                    };
                    let mut tx = store.system().await?;
                    let event = append(&mut *tx, Log::System, draft, &SystemClock).await?;
                    tx.commit().await?;
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "ack {}", event.seq);
                    let _ = out.flush();
                }
                Ok::<(), bulwark_core::CoreError>(())
            })
        })
        .collect();
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("error: {e}");
                return Exit::Failure;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Failure;
            }
        }
    }
    Exit::Ok
}
