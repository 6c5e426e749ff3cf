//! The license clock: the latest time seen, kept in the store and in memory, never wound back
//! by the system clock (standing is judged at the later of the two), moved forward by
//! [`Licensing::tick`] no faster than monotonic time, and reset only by a marker the deployment
//! key signs.

use std::sync::atomic::Ordering;

use base64::Engine as _;
use bulwark_audit::event::{Context, Payload};
use bulwark_types::Clock;
use time::OffsetDateTime;

use super::{Licensing, LoadError, Scan, core_to_load, from_ms, ms, rfc3339};
use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::model::LicenseClock;
use crate::ports::{Store, SystemTx};

/// How far the clock may be behind the latest time seen before activation is refused.
pub const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Warnings start this many days before expiry.
pub const WARN_DAYS: i64 = 30;
/// A warning is written at most this often.
const WARN_EVERY_MS: i64 = 24 * 3600 * 1000;

impl Licensing {
    /// The clock's floor: the newest activation's signed time, unless a reset signed by this
    /// deployment came after it — then the reset's time (an unsigned or altered marker counts
    /// as none).
    pub(super) fn floor(&self, lc: &LicenseClock, scan: &Scan) -> i64 {
        let reset_at = self.signed_reset_at(lc);
        let after = if reset_at > 0 { lc.reset_after_seq } else { 0 };
        scan.ours
            .last()
            .filter(|a| a.seq > after)
            .map_or(reset_at, |a| a.activated_at_ms.max(reset_at))
    }

    /// The time of the reset marker when this deployment signed it, else 0.
    fn signed_reset_at(&self, lc: &LicenseClock) -> i64 {
        let signed = lc.reset_signature.as_deref().is_some_and(|sig| {
            base64::engine::general_purpose::STANDARD
                .decode(sig)
                .is_ok_and(|sig| {
                    bulwark_crypto::verify_ed25519(
                        &self.deployment.signer.public_key(),
                        reset_text(&self.deployment.id, lc.reset_after_seq, lc.reset_at_ms)
                            .as_bytes(),
                        &sig,
                    )
                })
        });
        if signed { lc.reset_at_ms.max(1) } else { 0 }
    }

    /// Keeps the latest time seen, never below the newest activation's signed time (unless an
    /// audited reset came after it).
    pub(super) fn note_seen(&self, lc: &LicenseClock, scan: &Scan) {
        self.last_seen_ms
            .fetch_max(lc.last_seen_ms.max(self.floor(lc, scan)), Ordering::SeqCst);
    }

    /// The time standing is judged at: never earlier than the latest time seen.
    #[must_use]
    pub fn judged_at(&self, clock: &dyn Clock) -> OffsetDateTime {
        let now = clock.now();
        let seen = from_ms(self.last_seen_ms.load(Ordering::SeqCst));
        now.max(seen)
    }

    /// Moves the license clock forward, picks up an activation made by another replica, and
    /// writes the expiry warning (at most daily) and the read-only notice (once). Within one
    /// process the clock moves at most as fast as monotonic time (plus a minute): a system clock
    /// that jumps ahead does not drag the latest time seen along.
    ///
    /// # Errors
    /// Storage failures. A newer activation whose license does not verify is logged and not
    /// taken; the clock and the notices go on.
    pub async fn tick(&self, store: &dyn Store, clock: &dyn Clock) -> Result<(), LoadError> {
        let mut tx = store.system().await?;
        let mut lc = tx.lock_license_clock().await?;
        let history = tx.license_activations().await?;
        let scan = self.scan(history);
        let now_ms = ms(clock.now());
        let now_instant = std::time::Instant::now();
        // The stored time went back with no new reset signed by this deployment: an edit in the
        // database. This process keeps what it had seen, and says so.
        let in_memory = self.last_seen_ms.load(Ordering::SeqCst);
        let reset_at = self.signed_reset_at(&lc);
        let known_reset = self.reset_seen_ms.fetch_max(reset_at, Ordering::SeqCst);
        if lc.last_seen_ms.saturating_add(CLOCK_SKEW_MS) < in_memory && reset_at <= known_reset {
            let payload = Payload::LicenseClockTampered {
                stored: rfc3339(from_ms(lc.last_seen_ms)),
                restored: rfc3339(from_ms(in_memory)),
            };
            tracing::error!(
                stored = %rfc3339(from_ms(lc.last_seen_ms)),
                restored = %rfc3339(from_ms(in_memory)),
                "the stored license clock went back without a signed reset; restored"
            );
            let draft = Draft::success(payload, "license", "clock".into(), Context::system(None));
            audit::append(&mut *tx, Log::System, draft, clock)
                .await
                .map_err(core_to_load)?;
            lc.last_seen_ms = in_memory;
        }
        // The latest time seen moves at most as fast as monotonic time since this process last
        // accepted the clock (plus a minute): while the clock runs ahead the anchor stays, so
        // the stored time gains no more than real time. The first tick of a process is not
        // capped (it may follow a long stop).
        let anchor = *self
            .last_tick
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cap = anchor.map_or(i64::MAX, |(at, seen)| {
            let elapsed = i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX);
            seen.saturating_add(elapsed).saturating_add(60_000)
        });
        let accepted = now_ms <= cap;
        let floor = self.floor(&lc, &scan);
        lc.last_seen_ms = lc.last_seen_ms.max(now_ms.min(cap)).max(floor);
        self.last_seen_ms.store(lc.last_seen_ms, Ordering::SeqCst);
        let newest = scan.ours.last();
        if newest.map(|a| a.seq) != self.in_force().map(|l| l.seq) {
            match newest.map(|a| self.check_stored(a)).transpose() {
                Ok(fresh) => self.set_in_force(fresh),
                Err(LoadError::Invalid(why)) => {
                    tracing::error!(problem = %why, "a new license activation does not verify here; keeping the license in force");
                }
                Err(e @ LoadError::Store(_)) => return Err(e),
            }
        }
        self.announce(&mut *tx, clock, &mut lc).await?;
        tx.set_license_clock(&lc).await?;
        tx.commit().await?;
        if accepted {
            *self
                .last_tick
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((now_instant, now_ms));
        }
        Ok(())
    }

    /// Sets the latest time seen back to the clock's time, and lifts the floor of the
    /// activations made so far (a marker signed by the deployment key): a host operator's repair
    /// after the clock ran ahead. Audited.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn reset_clock(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        context: Context,
    ) -> Result<(OffsetDateTime, OffsetDateTime), CoreError> {
        let mut tx = store.system().await?;
        let mut lc = tx.lock_license_clock().await?;
        let history = tx.license_activations().await?;
        let scan = self.scan(history);
        let from = lc.last_seen_ms;
        // Activations so far no longer floor the clock: one made while the clock ran ahead
        // would otherwise keep it there.
        lc.reset_after_seq = scan.ours.last().map_or(0, |a| a.seq);
        lc.reset_at_ms = ms(clock.now());
        lc.reset_signature = Some(base64::engine::general_purpose::STANDARD.encode(
            self.deployment.signer.sign(
                reset_text(&self.deployment.id, lc.reset_after_seq, lc.reset_at_ms).as_bytes(),
            ),
        ));
        lc.last_seen_ms = lc.reset_at_ms;
        lc.warned_at_ms = None;
        lc.read_only_noted = false;
        tx.set_license_clock(&lc).await?;
        let payload = Payload::LicenseClockReset {
            from: rfc3339(from_ms(from)),
            to: rfc3339(from_ms(lc.last_seen_ms)),
        };
        let draft = Draft::success(payload, "license", "clock".into(), context);
        audit::append(&mut *tx, Log::System, draft, clock).await?;
        tx.commit().await?;
        self.last_seen_ms.store(lc.last_seen_ms, Ordering::SeqCst);
        Ok((from_ms(from), from_ms(lc.last_seen_ms)))
    }

    async fn announce(
        &self,
        tx: &mut dyn SystemTx,
        clock: &dyn Clock,
        lc: &mut LicenseClock,
    ) -> Result<(), LoadError> {
        let Some(license) = self.in_force() else {
            return Ok(());
        };
        let claims = &license.claims;
        // Judged as enforcement judges: the later of the clock and the latest time seen.
        let at = from_ms(lc.last_seen_ms.max(ms(clock.now())));
        let read_only_at = claims.read_only_at();
        let system = |payload| {
            Draft::success(
                payload,
                "license",
                claims.license_id.clone(),
                Context::system(None),
            )
        };
        if at <= read_only_at {
            // A clock that ran past the end only briefly does not use up the notice.
            lc.read_only_noted = false;
        }
        if at > read_only_at {
            if !lc.read_only_noted {
                let payload = Payload::LicenseReadOnly {
                    license_id: claims.license_id.clone(),
                    read_only_at: rfc3339(read_only_at),
                };
                audit::append(tx, Log::System, system(payload), clock)
                    .await
                    .map_err(core_to_load)?;
                lc.read_only_noted = true;
            }
            return Ok(());
        }
        let warn_from = claims.expires_at - time::Duration::days(WARN_DAYS);
        let due = lc
            .warned_at_ms
            // A warning time ahead of the latest seen (a clock that ran ahead, or an edited row)
            // does not silence the next one.
            .is_none_or(|w| {
                w > lc.last_seen_ms || lc.last_seen_ms.saturating_sub(w) >= WARN_EVERY_MS
            });
        if at >= warn_from && due {
            let left = (read_only_at - at).whole_days().max(0);
            let payload = Payload::LicenseExpiring {
                license_id: claims.license_id.clone(),
                expires_at: rfc3339(claims.expires_at),
                read_only_at: rfc3339(read_only_at),
                days_left: u32::try_from(left).unwrap_or(u32::MAX),
            };
            audit::append(tx, Log::System, system(payload), clock)
                .await
                .map_err(core_to_load)?;
            tracing::warn!(
                license_id = %claims.license_id,
                expires_at = %rfc3339(claims.expires_at),
                read_only_at = %rfc3339(read_only_at),
                "the license expires soon or has expired; activate a renewed license"
            );
            lc.warned_at_ms = Some(lc.last_seen_ms);
        }
        Ok(())
    }
}

/// What a reset marker signs.
fn reset_text(deployment: &str, after_seq: u64, at_ms: i64) -> String {
    format!("bulwark-license-clock-reset:v1:{deployment}:{after_seq}:{at_ms}")
}

#[cfg(test)]
mod tests {
    use super::super::Deployment;
    use super::super::tests::claims;
    use super::*;
    use bulwark_crypto::Seed;

    #[test]
    fn a_reset_marker_counts_only_when_signed_and_times_saturate() {
        let l = Licensing::new(
            Deployment::derive(&Seed::generate().unwrap()).unwrap(),
            vec![],
        );
        let c = claims("a", 1, "2026-06-01T00:00:00Z");
        // An unsigned reset marker leaves the floor; a signed one lifts it to the reset time;
        // a marker moved to another position or time, or signed by another deployment, counts
        // for nothing.
        let scan = l.scan(vec![
            l.receipt(1, &c, "sha", b"{}", 1_000).unwrap(),
            l.receipt(2, &c, "sha", b"{}", 2_000).unwrap(),
        ]);
        let sign = |who: &Licensing, seq: u64, at: i64| {
            Some(
                base64::engine::general_purpose::STANDARD.encode(
                    who.deployment
                        .signer
                        .sign(reset_text(l.deployment.id(), seq, at).as_bytes()),
                ),
            )
        };
        let mut lc = LicenseClock {
            last_seen_ms: 0,
            warned_at_ms: None,
            read_only_noted: false,
            reset_after_seq: 2,
            reset_at_ms: 500,
            reset_signature: None,
        };
        assert_eq!(l.floor(&lc, &scan), 2_000, "unsigned");
        lc.reset_signature = sign(&l, 2, 500);
        assert_eq!(l.floor(&lc, &scan), 500, "signed: the reset's time");
        lc.reset_signature = sign(&l, 1, 500);
        assert_eq!(
            l.floor(&lc, &scan),
            2_000,
            "the signature covers the position"
        );
        lc.reset_signature = sign(&l, 2, 400);
        assert_eq!(l.floor(&lc, &scan), 2_000, "the signature covers the time");
        let other = Licensing::new(
            Deployment::derive(&Seed::generate().unwrap()).unwrap(),
            vec![],
        );
        lc.reset_signature = sign(&other, 2, 500);
        assert_eq!(l.floor(&lc, &scan), 2_000, "another deployment's marker");
        // A reset that does not cover the newest activation keeps its floor, or raises it to
        // the reset's own (later) time.
        lc.reset_after_seq = 1;
        lc.reset_at_ms = 500;
        lc.reset_signature = sign(&l, 1, 500);
        assert_eq!(l.floor(&lc, &scan), 2_000);
        lc.reset_at_ms = 3_000;
        lc.reset_signature = sign(&l, 1, 3_000);
        assert_eq!(l.floor(&lc, &scan), 3_000);
        assert_eq!(from_ms(i64::MAX), time::PrimitiveDateTime::MAX.assume_utc());
        assert_eq!(from_ms(i64::MIN), OffsetDateTime::UNIX_EPOCH);
    }
}
