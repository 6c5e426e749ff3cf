//! Activating a license: the checks a license file must pass on this deployment, the receipt
//! signed by the deployment key, and the anti-reuse ledger (the activation history).

use std::sync::atomic::Ordering;

use base64::Engine as _;
use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
use bulwark_license::{Claims, LicenseError, Standing};
use bulwark_types::Clock;

use super::{CLOCK_SKEW_MS, InForce, Licensing, LoadError, Scan, from_ms, ms, refused, rfc3339};
use crate::CoreError;
use crate::audit::{self, Draft, Log};
use crate::model::LicenseActivation;
use crate::ports::Store;

/// The receipt's canonical JSON: keys in a fixed order, no whitespace.
fn receipt_text(deployment: &str, a: &LicenseActivation) -> Result<String, CoreError> {
    let value = serde_json::json!({
        "activated_at_ms": a.activated_at_ms,
        "deployment": deployment,
        "issued_at_ms": a.issued_at_ms,
        "license_id": a.license_id,
        "license_sha256": a.license_sha256,
        "seq": a.seq,
        "serial": a.serial,
    });
    serde_json::to_string(&value).map_err(|_| CoreError::Crypto)
}

impl Licensing {
    /// Whether this deployment wrote the row: its receipt is the row's, signed by our key.
    fn receipt_ok(&self, a: &LicenseActivation) -> bool {
        let Ok(expected) = receipt_text(&self.deployment.id, a) else {
            return false;
        };
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(&a.receipt_signature)
        else {
            return false;
        };
        expected == a.receipt
            && bulwark_crypto::verify_ed25519(
                &self.deployment.signer.public_key(),
                a.receipt.as_bytes(),
                &signature,
            )
    }

    /// Sorts the history. Rows whose receipt this deployment did not sign (altered, copied from
    /// another deployment, or inserted by hand) count for nothing: not in force, not in the
    /// ledger, not as a floor of the license clock.
    pub(super) fn scan(&self, history: Vec<LicenseActivation>) -> Scan {
        let taken: std::collections::HashSet<u64> = history.iter().map(|a| a.seq).collect();
        let total = history.len();
        let ours: Vec<LicenseActivation> =
            history.into_iter().filter(|a| self.receipt_ok(a)).collect();
        // The next position after our newest; rows we did not write may hold some (skipped).
        let mut next_seq = ours.last().map_or(Some(1), |a| a.seq.checked_add(1));
        while let Some(n) = next_seq.filter(|n| taken.contains(n)) {
            next_seq = n.checked_add(1);
        }
        let next_seq = next_seq.filter(|n| i64::try_from(*n).is_ok());
        let foreign = total - ours.len();
        if foreign > 0 {
            tracing::warn!(
                rows = foreign,
                "license activation rows not written by this deployment are ignored"
            );
        }
        self.ignored_rows.store(foreign, Ordering::SeqCst);
        Scan { ours, next_seq }
    }

    /// Verifies the license of an activation this deployment wrote: the vendor signature, the
    /// deployment, and that it is the license its receipt names.
    pub(super) fn check_stored(&self, a: &LicenseActivation) -> Result<InForce, LoadError> {
        let invalid = |why: &str| LoadError::Invalid(format!("activation {}: {why}", a.seq));
        let file = bulwark_license::parse(a.license_file.as_bytes())
            .map_err(|e| invalid(&e.to_string()))?;
        if claims_sha256(&file.license).ok().as_deref() != Some(a.license_sha256.as_str()) {
            return Err(invalid("the stored license file was altered"));
        }
        let claims = bulwark_license::verify(&file, &self.trusted).map_err(|e| match e {
            LicenseError::UnknownKey => invalid(
                "it is signed by a key this build and `license.extra_public_keys` do not trust; \
                 restore the key or activate another license with `bulwark license activate`",
            ),
            other => invalid(&other.to_string()),
        })?;
        if claims.deployment.as_deref() != Some(self.deployment.id.as_str())
            || claims.license_id != a.license_id
            || claims.serial != a.serial
        {
            return Err(invalid("it does not match its receipt or this deployment"));
        }
        Ok(InForce {
            claims: claims.clone(),
            key_id: file.signature.key_id.clone(),
            seq: a.seq,
            activated_at: from_ms(a.activated_at_ms),
        })
    }

    /// Activates a license file on this deployment. Every activation and every refusal is
    /// audited in the system log.
    ///
    /// # Errors
    /// `LicenseRefused` (nothing changed) with a stable code; storage failures.
    pub async fn activate(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        text: &[u8],
        context: Context,
    ) -> Result<InForce, CoreError> {
        match self.try_activate(store, clock, text, context.clone()).await {
            Ok(done) => Ok(done),
            Err(Refusal {
                error,
                claims,
                key_id,
            }) => {
                if let CoreError::LicenseRefused { code, .. } = &error {
                    let draft = self.activation_draft(claims.as_ref(), key_id, Some(code), context);
                    let mut tx = store.system().await?;
                    audit::append(&mut *tx, Log::System, draft, clock).await?;
                    tx.commit().await?;
                }
                Err(error)
            }
        }
    }

    fn activation_draft(
        &self,
        claims: Option<&Claims>,
        key_id: Option<String>,
        refused: Option<&str>,
        context: Context,
    ) -> Draft {
        Draft {
            payload: Payload::LicenseActivated {
                license_id: claims.map(|c| c.license_id.clone()),
                serial: claims.map(|c| c.serial),
                licensee: claims.map(|c| c.licensee.clone()),
                key_id,
                expires_at: claims.map(|c| rfc3339(c.expires_at)),
                deployment: self.deployment.id.clone(),
            },
            resource: Resource {
                kind: "license".into(),
                id: claims.map_or_else(|| "unreadable".into(), |c| c.license_id.clone()),
            },
            outcome: Outcome {
                result: if refused.is_some() {
                    Result_::Failure
                } else {
                    Result_::Success
                },
                reason: refused.map(str::to_owned),
            },
            context,
        }
    }

    async fn try_activate(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        text: &[u8],
        context: Context,
    ) -> Result<InForce, Refusal> {
        let file = bulwark_license::parse(text).map_err(|e| Refusal {
            error: refused("license_malformed", e.to_string()),
            claims: None,
            key_id: None,
        })?;
        let claims = file.license.clone();
        let key_id = Some(file.signature.key_id.clone());
        let fail = |error: CoreError| Refusal {
            error,
            claims: Some(claims.clone()),
            key_id: key_id.clone(),
        };
        bulwark_license::verify(&file, &self.trusted).map_err(|e| {
            fail(match e {
                LicenseError::UnknownKey => refused(
                    "license_untrusted_key",
                    "the license is signed by a key this deployment does not trust",
                ),
                LicenseError::BadSignature => refused(
                    "license_bad_signature",
                    "the license signature does not match its contents (it was altered)",
                ),
                LicenseError::Malformed(why) => refused("license_malformed", why),
            })
        })?;
        match claims.deployment.as_deref() {
            None => {
                return Err(fail(refused(
                    "license_not_bound",
                    format!(
                        "the license names no deployment; ask the vendor for a license issued to {}",
                        self.deployment.id
                    ),
                )));
            }
            Some(d) if d != self.deployment.id => {
                return Err(fail(refused(
                    "license_other_deployment",
                    format!(
                        "the license was issued to deployment {d}, not to this one ({}); ask the \
                         vendor to re-issue it",
                        self.deployment.id
                    ),
                )));
            }
            Some(_) => {}
        }
        let mut tx = store.system().await.map_err(|e| fail(e.into()))?;
        let mut lc = tx.lock_license_clock().await.map_err(|e| fail(e.into()))?;
        let history = tx.license_activations().await.map_err(|e| fail(e.into()))?;
        let scan = self.scan(history);
        let seen_ms = lc.last_seen_ms.max(self.floor(&lc, &scan));
        let now = clock.now();
        let now_ms = ms(now);
        if now_ms.saturating_add(CLOCK_SKEW_MS) < seen_ms {
            return Err(fail(refused(
                "license_clock_behind",
                format!(
                    "the system clock ({}) is behind the latest time this deployment has seen \
                     ({}); correct the clock",
                    rfc3339(now),
                    rfc3339(from_ms(seen_ms))
                ),
            )));
        }
        if ms(claims.issued_at) > now_ms.saturating_add(CLOCK_SKEW_MS) {
            return Err(fail(refused(
                "license_not_yet_valid",
                format!(
                    "the license was issued at {}, after this deployment's time ({}): check \
                     the clock",
                    rfc3339(claims.issued_at),
                    rfc3339(now)
                ),
            )));
        }
        match claims.standing(now) {
            Standing::Valid => {}
            Standing::NotYetValid => {
                return Err(fail(refused(
                    "license_not_yet_valid",
                    format!("the license is valid from {}", rfc3339(claims.not_before)),
                )));
            }
            Standing::Grace(_) | Standing::Expired => {
                return Err(fail(refused(
                    "license_expired",
                    format!("the license expired at {}", rfc3339(claims.expires_at)),
                )));
            }
        }
        let sha = claims_sha256(&claims).map_err(&fail)?;
        check_ledger(&scan.ours, &claims, &sha).map_err(&fail)?;
        if let Some(current) = self.in_force()
            && scan.ours.last().is_some_and(|a| {
                a.seq == current.seq
                    && a.license_id == claims.license_id
                    && a.serial == claims.serial
                    && a.license_sha256 == sha
            })
        {
            // The license in force again: nothing to append.
            let draft = self.activation_draft(Some(&claims), key_id.clone(), None, context);
            audit::append(&mut *tx, Log::System, draft, clock)
                .await
                .map_err(&fail)?;
            tx.commit().await.map_err(|e| fail(e.into()))?;
            return Ok(current);
        }
        let seq = scan.next_seq.ok_or_else(|| {
            fail(refused(
                "license_history_corrupt",
                "the activation history holds a position no activation can follow; ask your \
                 database administrator to remove rows this deployment did not write",
            ))
        })?;
        let activation = self
            .receipt(seq, &claims, &sha, text, now_ms)
            .map_err(&fail)?;
        tx.insert_license_activation(&activation)
            .await
            .map_err(|e| fail(e.into()))?;
        lc.last_seen_ms = lc.last_seen_ms.max(now_ms);
        lc.warned_at_ms = None;
        lc.read_only_noted = false;
        tx.set_license_clock(&lc)
            .await
            .map_err(|e| fail(e.into()))?;
        let draft = self.activation_draft(Some(&claims), key_id.clone(), None, context);
        audit::append(&mut *tx, Log::System, draft, clock)
            .await
            .map_err(&fail)?;
        tx.commit().await.map_err(|e| fail(e.into()))?;
        let in_force = InForce {
            claims: claims.clone(),
            key_id: file.signature.key_id.clone(),
            seq: activation.seq,
            activated_at: from_ms(now_ms),
        };
        self.last_seen_ms.fetch_max(now_ms, Ordering::SeqCst);
        self.set_in_force(Some(in_force.clone()));
        Ok(in_force)
    }

    pub(super) fn receipt(
        &self,
        seq: u64,
        claims: &Claims,
        sha: &str,
        text: &[u8],
        now_ms: i64,
    ) -> Result<LicenseActivation, CoreError> {
        let license_file = String::from_utf8(text.to_vec())
            .map_err(|_| refused("license_malformed", "the file is not UTF-8"))?;
        let mut a = LicenseActivation {
            seq,
            license_id: claims.license_id.clone(),
            serial: claims.serial,
            issued_at_ms: ms(claims.issued_at),
            license_sha256: sha.to_owned(),
            license_file,
            activated_at_ms: now_ms,
            receipt: String::new(),
            receipt_signature: String::new(),
        };
        a.receipt = receipt_text(&self.deployment.id, &a)?;
        a.receipt_signature = base64::engine::general_purpose::STANDARD
            .encode(self.deployment.signer.sign(a.receipt.as_bytes()));
        Ok(a)
    }
}

struct Refusal {
    error: CoreError,
    claims: Option<Claims>,
    key_id: Option<String>,
}

/// The anti-reuse rules against the activation history. `sha` identifies the claims (SHA-256
/// of their canonical bytes), so the same license written differently is the same license.
fn check_ledger(
    history: &[LicenseActivation],
    claims: &Claims,
    sha: &str,
) -> Result<(), CoreError> {
    let same_id = || history.iter().filter(|a| a.license_id == claims.license_id);
    if let Some(newest) = same_id().map(|a| a.serial).max()
        && newest > claims.serial
    {
        return Err(refused(
            "license_superseded",
            format!(
                "serial {newest} of license {} was activated here already; serial {} is older",
                claims.license_id, claims.serial
            ),
        ));
    }
    if same_id().any(|a| a.serial == claims.serial && a.license_sha256 != sha) {
        return Err(refused(
            "license_serial_conflict",
            format!(
                "other claims under serial {} of license {} were activated here already",
                claims.serial, claims.license_id
            ),
        ));
    }
    if let Some(current) = history.last()
        && current.license_id != claims.license_id
        && current.issued_at_ms > ms(claims.issued_at)
    {
        return Err(refused(
            "license_superseded",
            format!(
                "the license in force ({}) was issued after this one",
                current.license_id
            ),
        ));
    }
    Ok(())
}

/// SHA-256 of the claims' canonical bytes, lowercase hex: what identifies a license.
fn claims_sha256(claims: &Claims) -> Result<String, CoreError> {
    let bytes = bulwark_license::canonical_bytes(claims)
        .map_err(|e| refused("license_malformed", e.to_string()))?;
    Ok(hex_sha256(&bytes))
}

fn hex_sha256(bytes: &[u8]) -> String {
    bulwark_crypto::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Deployment;
    use super::super::tests::claims;
    use super::*;
    use bulwark_crypto::Seed;

    fn activation(id: &str, serial: u32, issued_at_ms: i64, sha: &str) -> LicenseActivation {
        LicenseActivation {
            seq: 1,
            license_id: id.into(),
            serial,
            issued_at_ms,
            license_sha256: sha.into(),
            license_file: String::new(),
            activated_at_ms: 0,
            receipt: String::new(),
            receipt_signature: String::new(),
        }
    }

    fn code(r: Result<(), CoreError>) -> &'static str {
        match r {
            Err(CoreError::LicenseRefused { code, .. }) => code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_ledger_refuses_older_serials_conflicting_files_and_older_licenses() {
        let issued = ms(claims("a", 1, "2026-06-01T00:00:00Z").issued_at);
        let history = vec![activation("a", 3, issued, "aaa")];
        assert_eq!(
            code(check_ledger(
                &history,
                &claims("a", 2, "2026-06-01T00:00:00Z"),
                "bbb"
            )),
            "license_superseded"
        );
        assert_eq!(
            code(check_ledger(
                &history,
                &claims("a", 3, "2026-06-01T00:00:00Z"),
                "ccc"
            )),
            "license_serial_conflict"
        );
        // The same file again, a newer serial, and a newer license of another id are fine.
        check_ledger(&history, &claims("a", 3, "2026-06-01T00:00:00Z"), "aaa").unwrap();
        check_ledger(&history, &claims("a", 4, "2026-06-01T00:00:00Z"), "ddd").unwrap();
        check_ledger(&history, &claims("b", 1, "2026-07-01T00:00:00Z"), "eee").unwrap();
        assert_eq!(
            code(check_ledger(
                &history,
                &claims("b", 1, "2026-05-01T00:00:00Z"),
                "fff"
            )),
            "license_superseded"
        );
    }

    #[test]
    fn foreign_rows_are_skipped() {
        let l = Licensing::new(
            Deployment::derive(&Seed::generate().unwrap()).unwrap(),
            vec![],
        );
        let c = claims("a", 1, "2026-06-01T00:00:00Z");
        let ours = l.receipt(3, &c, "sha", b"{}", 1_000).unwrap();
        let mut foreign = ours.clone();
        foreign.seq = 4;
        let mut far = ours.clone();
        far.seq = 5;
        far.activated_at_ms = i64::MAX;
        let scan = l.scan(vec![ours.clone(), foreign, far]);
        assert_eq!(scan.ours, vec![ours.clone()], "receipts sign the position");
        assert_eq!(
            scan.next_seq,
            Some(6),
            "positions held by foreign rows are skipped"
        );
        let mut top = ours;
        top.seq = u64::try_from(i64::MAX).unwrap();
        top.receipt = receipt_text(l.deployment.id(), &top).unwrap();
        top.receipt_signature = base64::engine::general_purpose::STANDARD
            .encode(l.deployment.signer.sign(top.receipt.as_bytes()));
        assert_eq!(
            l.scan(vec![top]).next_seq,
            None,
            "no position after the last"
        );
    }
}
