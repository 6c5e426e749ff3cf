//! The mail worker: drains the mail queue of password-reset and verification requests
//! (`bulwark_core::mail_jobs`). A request handler queues the address and wakes the worker; the
//! worker claims due jobs under a lease, and for each looks the address up, applies the
//! account's cooldown and daily cap, issues the token and sends the mail.
//!
//! The queue is a table, so a request survives a restart. A worker that dies holding a job
//! leaves it to be claimed again when its lease ends (by any replica on PostgreSQL, where
//! claimers skip each other's rows); the account's limit is stored before the mail is sent, so
//! a job claimed twice does not mail twice within the cooldown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bulwark_core::mail_jobs::{self, Delivered, MailPolicy};
use bulwark_core::ports::{Mailer, Store};
use bulwark_types::Clock;
use tokio::sync::Notify;

/// How long a claimed job is held: longer than any mail hand-over (SMTP commands time out
/// after at most 300 s).
const LEASE: Duration = Duration::from_secs(600);
/// How often the queue is looked at without a wake-up (jobs queued through another replica
/// that stopped, or whose lease ran out).
const POLL: Duration = Duration::from_secs(5);
/// Jobs claimed (and handled concurrently) at once.
const BATCH: u32 = 16;
/// How long the worker lets requests gather after a wake-up before it claims them: its work
/// then lands on no particular later request (the one right after a request for an existing
/// account would otherwise wait on it), and requests that came together are handled together.
const SETTLE: Duration = Duration::from_millis(50);

/// The worker.
pub struct MailWorker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mailer: Arc<dyn Mailer>,
    policy: MailPolicy,
    wake: Arc<Notify>,
}

fn unix_ms(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl MailWorker {
    /// A worker over `store`, sending through `mailer` within `policy`; `wake` cuts an idle
    /// wait short.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        mailer: Arc<dyn Mailer>,
        policy: MailPolicy,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            clock,
            mailer,
            policy,
            wake,
        }
    }

    /// Handles queued jobs until `stop` resolves; a round under way finishes first.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()> + Send) {
        tokio::pin!(stop);
        loop {
            let claimed = self.round().await;
            if u32::try_from(claimed).unwrap_or(u32::MAX) >= BATCH {
                continue;
            }
            tokio::select! {
                () = &mut stop => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            tokio::time::sleep(SETTLE).await;
        }
    }

    /// Claims up to [`BATCH`] due jobs and handles them; returns how many were claimed.
    async fn round(self: &Arc<Self>) -> usize {
        let now = unix_ms(&*self.clock);
        let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        let jobs = match self
            .store
            .mail_claim(now, now.saturating_add(lease_ms), BATCH)
            .await
        {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the mail queue");
                return 0;
            }
        };
        let claimed = jobs.len();
        let mut tasks = tokio::task::JoinSet::new();
        for job in jobs {
            let me = self.clone();
            tasks.spawn(async move {
                let result =
                    mail_jobs::deliver(&*me.store, &*me.clock, &*me.mailer, &me.policy, &job).await;
                match result {
                    Ok(Delivered::MailFailed) => tracing::warn!(
                        purpose = job.purpose.as_str(),
                        "token email not handed over; the account may ask again"
                    ),
                    Ok(outcome) => {
                        tracing::debug!(purpose = job.purpose.as_str(), ?outcome, "mail job done")
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "mail job failed; it is tried again when its lease ends"
                    ),
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        claimed
    }
}
