//! Offline licensing on this deployment: activation, the anti-reuse ledger, the license clock,
//! standing and entitlements. The license format and its signature check are the pure
//! `bulwark-license` crate; this module adds what needs the store, the seed and the clock.
//!
//! - **Deployment id**: `dep_` + 24 hex digits of SHA-256 of the deployment's Ed25519 public key,
//!   which is derived from the workspace seed (`bulwark/v1/license-deployment`). Licenses are
//!   issued to it; the same seed (a restored backup, another replica) is the same deployment.
//! - **Activation** binds a license issued to this deployment through a receipt signed by the
//!   deployment key and appended to the activation history. The newest activation is the license
//!   in force; at every start it must still verify (receipt, vendor signature, deployment), else
//!   the server refuses to start (fail closed).
//! - **Anti-reuse ledger** (the history): a license issued to another deployment, or without a
//!   deployment, is refused; an older serial of a license id after a newer one, a different file
//!   under a serial already seen, and a license issued before the one in force are refused.
//! - **License clock**: the latest time seen is kept; a clock moved back behind it refuses
//!   activation, and standing is judged at the later of the two, so winding the clock back
//!   never extends a license.
//! - **Entitlements**: with no license, the community limits ([`COMMUNITY`]). After expiry the
//!   grace period keeps every entitlement; after it the deployment is read-only: nothing is
//!   deleted, and sign-in, the audit log and export stay open.

use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use bulwark_audit::event::{Context, Outcome, Payload, Resource, Result_};
use bulwark_crypto::{Ed25519Signer, KeyPurpose, Seed};
use bulwark_license::{Claims, LicenseError, Standing};
use bulwark_types::{Clock, OrgId};
use time::OffsetDateTime;

use crate::audit::{self, Draft, Log};
use crate::model::{LicenseActivation, LicenseClock, LicenseUsage};
use crate::ports::{Store, SystemTx};
use crate::{CoreError, StoreError};

/// How far the clock may be behind the latest time seen before activation is refused.
pub const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Warnings start this many days before expiry.
pub const WARN_DAYS: i64 = 30;
/// A warning is written at most this often.
const WARN_EVERY_MS: i64 = 24 * 3600 * 1000;

/// What a deployment without a license may do: one organisation, 25 seats, no licensed feature.
pub const COMMUNITY: Limits = Limits {
    orgs: Some(1),
    seats: Some(25),
};

/// Limits in force (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Organisations.
    pub orgs: Option<u32>,
    /// Seats: distinct users holding a membership.
    pub seats: Option<u32>,
}

/// The feature that unlocks ticket integrations.
pub const TICKETS: &str = "tickets";

/// Features this build checks, and where.
pub const FEATURES: &[(&str, &str)] = &[(
    TICKETS,
    "pushing audit records to GitHub Issues or Jira (`/v1/orgs/{org}/tickets/…`)",
)];

/// This deployment's licensing identity, derived from the workspace seed.
pub struct Deployment {
    id: String,
    signer: Ed25519Signer,
}

impl Deployment {
    /// Derives the deployment key and id from the seed.
    ///
    /// # Errors
    /// When the KDF fails.
    pub fn derive(seed: &Seed) -> Result<Self, CoreError> {
        let key = seed
            .derive(KeyPurpose::LicenseDeployment, b"")
            .map_err(|_| CoreError::Crypto)?;
        let signer = Ed25519Signer::from_seed(&key).map_err(|_| CoreError::Crypto)?;
        let digest = bulwark_crypto::sha256(&signer.public_key());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            id: format!("dep_{hex}"),
            signer,
        })
    }

    /// The deployment id licenses are issued to.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public key that verifies activation receipts (base64).
    #[must_use]
    pub fn public_key(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.signer.public_key())
    }
}

/// The license in force.
#[derive(Debug, Clone)]
pub struct InForce {
    /// Its claims (signature verified).
    pub claims: Claims,
    /// The key id that signed it.
    pub key_id: String,
    /// Its activation's position in the history.
    pub seq: u64,
    /// When it was activated.
    pub activated_at: OffsetDateTime,
}

/// Where the deployment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No license: [`COMMUNITY`] limits.
    Community,
    /// A license in force and valid.
    Valid,
    /// Expired; every entitlement holds until the given time.
    Grace(OffsetDateTime),
    /// Past the grace period: read-only.
    ReadOnly,
}

impl State {
    /// The code shown in the API and CLI.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Community => "community",
            Self::Valid => "valid",
            Self::Grace(_) => "grace",
            Self::ReadOnly => "read_only",
        }
    }
}

/// A view of the license for the API and CLI.
#[derive(Debug, Clone)]
pub struct Status {
    /// This deployment's id.
    pub deployment_id: String,
    /// The deployment's receipt-signing public key (base64).
    pub deployment_public_key: String,
    /// Where it stands.
    pub state: State,
    /// The license in force, if any.
    pub license: Option<InForce>,
    /// The limits in force.
    pub limits: Limits,
    /// Organisations and seats in use.
    pub usage: LicenseUsage,
    /// The time standing is judged at (the later of the clock and the latest time seen).
    pub judged_at: OffsetDateTime,
    /// Activation rows in the store that this deployment did not write (ignored; a sign of
    /// tampering or of rows copied from another deployment).
    pub ignored_activations: usize,
}

/// Why the license in force could not be loaded at start (the server must not start).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored activation does not verify.
    #[error("the license in force does not verify: {0}")]
    Invalid(String),
}

/// Offline licensing state of this process.
pub struct Licensing {
    deployment: Deployment,
    trusted: Vec<[u8; 32]>,
    in_force: RwLock<Option<InForce>>,
    last_seen_ms: AtomicI64,
    /// This process's last tick: when (monotonic) and the latest time seen then.
    last_tick: std::sync::Mutex<Option<(std::time::Instant, i64)>>,
    /// The newest signed reset time this process has seen (a lower stored clock without a
    /// newer one is an edit).
    reset_seen_ms: AtomicI64,
    /// Activation rows this deployment did not write, seen at the last look (ignored).
    ignored_rows: std::sync::atomic::AtomicUsize,
}

/// The activation history sorted: rows this deployment wrote (receipt verified), and the rest.
struct Scan {
    ours: Vec<LicenseActivation>,
    next_seq: Option<u64>,
}

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix milliseconds as a time; out of range saturates (far future: read-only, fail closed).
fn from_ms(ms: i64) -> OffsetDateTime {
    let fallback = if ms < 0 {
        OffsetDateTime::UNIX_EPOCH
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    };
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(fallback)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn refused(code: &'static str, message: impl Into<String>) -> CoreError {
    CoreError::LicenseRefused {
        code,
        message: message.into(),
    }
}

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
    fn new(deployment: Deployment, trusted: Vec<[u8; 32]>) -> Self {
        Self {
            deployment,
            trusted,
            in_force: RwLock::new(None),
            last_seen_ms: AtomicI64::new(0),
            last_tick: std::sync::Mutex::new(None),
            ignored_rows: std::sync::atomic::AtomicUsize::new(0),
            reset_seen_ms: AtomicI64::new(0),
        }
    }

    /// Loads the license in force and the license clock, checking the newest activation.
    /// `trusted` are the vendor keys compiled in plus `license.extra_public_keys`.
    ///
    /// # Errors
    /// Storage failures; `Invalid` when the stored activation does not verify (the caller
    /// refuses to start).
    pub async fn load(
        store: &dyn Store,
        deployment: Deployment,
        trusted: Vec<[u8; 32]>,
    ) -> Result<Self, LoadError> {
        match Self::open(store, deployment, trusted).await? {
            (this, None) => Ok(this),
            (_, Some(problem)) => Err(LoadError::Invalid(problem)),
        }
    }

    /// As [`Licensing::load`], but a stored activation that does not verify is reported beside
    /// a community-mode state instead of failing: for `bulwark license activate|status`, the
    /// host operator's way out.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn open(
        store: &dyn Store,
        deployment: Deployment,
        trusted: Vec<[u8; 32]>,
    ) -> Result<(Self, Option<String>), StoreError> {
        let this = Self::new(deployment, trusted);
        let mut tx = store.system().await?;
        let history = tx.license_activations().await?;
        let clock = tx.lock_license_clock().await?;
        drop(tx);
        let scan = this.scan(history);
        this.note_seen(&clock, &scan);
        let mut problem = None;
        if let Some(newest) = scan.ours.last() {
            match this.check_stored(newest) {
                Ok(in_force) => this.set_in_force(Some(in_force)),
                Err(LoadError::Invalid(why)) => problem = Some(why),
                Err(LoadError::Store(e)) => return Err(e),
            }
        }
        Ok((this, problem))
    }

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
    fn scan(&self, history: Vec<LicenseActivation>) -> Scan {
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

    /// The clock's floor: the newest activation's signed time, unless a reset signed by this
    /// deployment came after it — then the reset's time (an unsigned or altered marker counts
    /// as none).
    fn floor(&self, lc: &LicenseClock, scan: &Scan) -> i64 {
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
    fn note_seen(&self, lc: &LicenseClock, scan: &Scan) {
        self.last_seen_ms
            .fetch_max(lc.last_seen_ms.max(self.floor(lc, scan)), Ordering::SeqCst);
    }

    /// Verifies the license of an activation this deployment wrote: the vendor signature, the
    /// deployment, and that it is the license its receipt names.
    fn check_stored(&self, a: &LicenseActivation) -> Result<InForce, LoadError> {
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

    fn set_in_force(&self, value: Option<InForce>) {
        // A poisoned lock still holds a whole value (it is only ever assigned).
        *self
            .in_force
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    }

    /// The license in force.
    #[must_use]
    pub fn in_force(&self) -> Option<InForce> {
        self.in_force
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// This deployment's licensing identity.
    #[must_use]
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The time standing is judged at: never earlier than the latest time seen.
    #[must_use]
    pub fn judged_at(&self, clock: &dyn Clock) -> OffsetDateTime {
        let now = clock.now();
        let seen = from_ms(self.last_seen_ms.load(Ordering::SeqCst));
        now.max(seen)
    }

    /// Where the deployment stands now.
    #[must_use]
    pub fn state(&self, clock: &dyn Clock) -> State {
        let Some(license) = self.in_force() else {
            return State::Community;
        };
        match license.claims.standing(self.judged_at(clock)) {
            // Activation refuses a license not yet valid; a clock wound back after activation
            // is judged at the latest time seen, so this is only reachable by a clock error.
            Standing::NotYetValid | Standing::Valid => State::Valid,
            Standing::Grace(until) => State::Grace(until),
            Standing::Expired => State::ReadOnly,
        }
    }

    /// Whether the deployment is read-only (license and grace period over). On every changing
    /// request, so it reads the license in place instead of copying it.
    #[must_use]
    pub fn read_only(&self, clock: &dyn Clock) -> bool {
        let at = self.judged_at(clock);
        self.in_force
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|l| l.claims.standing(at) == Standing::Expired)
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.in_force().map_or(COMMUNITY, |l| Limits {
            orgs: l.claims.limits.orgs,
            seats: l.claims.limits.seats,
        })
    }

    /// The status for the API and CLI.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn status(&self, store: &dyn Store, clock: &dyn Clock) -> Result<Status, CoreError> {
        let mut tx = store.system().await?;
        let usage = tx.license_usage().await?;
        drop(tx);
        Ok(Status {
            deployment_id: self.deployment.id.clone(),
            deployment_public_key: self.deployment.public_key(),
            state: self.state(clock),
            license: self.in_force(),
            limits: self.limits(),
            usage,
            judged_at: self.judged_at(clock),
            ignored_activations: self.ignored_rows.load(Ordering::SeqCst),
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

    fn receipt(
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

    /// What adding `adding` would exceed, given `usage` (counted under the license-clock lock
    /// by the caller, in the transaction that adds it).
    #[must_use]
    pub fn exceeded(&self, usage: &LicenseUsage, adding: Adding) -> Option<Denial> {
        let limits = self.limits();
        match adding {
            Adding::Org => {
                let limit = limits.orgs?;
                (usage.orgs >= u64::from(limit)).then(|| Denial {
                    entitlement: "orgs".into(),
                    code: "license_limit_orgs",
                    message: format!(
                        "the license allows {limit} organisation(s) and {} exist; nothing was \
                         created",
                        usage.orgs
                    ),
                    limit: Some(u64::from(limit)),
                    in_use: Some(usage.orgs),
                    org: None,
                })
            }
            Adding::Seat(org) => {
                let limit = limits.seats?;
                (usage.seats >= u64::from(limit)).then(|| Denial {
                    entitlement: "seats".into(),
                    code: "license_limit_seats",
                    message: format!(
                        "the license allows {limit} seat(s) and {} are taken; nothing was changed",
                        usage.seats
                    ),
                    limit: Some(u64::from(limit)),
                    in_use: Some(usage.seats),
                    org: Some(org),
                })
            }
        }
    }

    /// Audits the refusal of something the license does not allow, and returns the error to
    /// answer with (`Entitlement`; a storage failure while auditing instead).
    pub async fn deny(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        denial: Denial,
        context: Context,
    ) -> CoreError {
        let draft = Draft {
            payload: Payload::LicenseEntitlementDenied {
                entitlement: denial.entitlement.clone(),
                limit: denial.limit,
                in_use: denial.in_use,
                org_id: denial.org.map(|o| o.to_string()),
            },
            resource: Resource {
                kind: "license".into(),
                id: self
                    .in_force()
                    .map_or_else(|| "community".into(), |l| l.claims.license_id),
            },
            outcome: Outcome {
                result: Result_::Failure,
                reason: Some(denial.code.into()),
            },
            context,
        };
        let audited = async {
            let mut tx = store.system().await?;
            audit::append(&mut *tx, Log::System, draft, clock).await?;
            tx.commit().await?;
            Ok::<(), CoreError>(())
        };
        match audited.await {
            Ok(()) => CoreError::Entitlement {
                code: denial.code,
                message: denial.message,
            },
            Err(e) => e,
        }
    }

    /// Refuses (and audits) a new membership when every seat is taken: the early check where
    /// an invitation is made. The addition itself checks again under the lock
    /// ([`Licensing::exceeded`]).
    ///
    /// # Errors
    /// `Entitlement`; storage failures.
    pub async fn check_new_seat(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        org: OrgId,
        context: Context,
    ) -> Result<(), CoreError> {
        let usage = store.system().await?.license_usage().await?;
        match self.exceeded(&usage, Adding::Seat(org)) {
            None => Ok(()),
            Some(denial) => Err(self.deny(store, clock, denial, context).await),
        }
    }

    /// Refuses (and audits) a licensed feature the license in force does not grant.
    ///
    /// # Errors
    /// `Entitlement`; storage failures.
    pub async fn require_feature(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        feature: &str,
        org: Option<OrgId>,
        context: Context,
    ) -> Result<(), CoreError> {
        if self
            .in_force()
            .is_some_and(|l| l.claims.features.iter().any(|f| f == feature))
        {
            return Ok(());
        }
        let denial = Denial {
            entitlement: format!("feature:{feature}"),
            code: "license_feature_missing",
            message: format!("the license does not include the `{feature}` feature"),
            limit: None,
            in_use: None,
            org,
        };
        Err(self.deny(store, clock, denial, context).await)
    }

    /// Refuses (and audits) a change in read-only mode.
    ///
    /// # Errors
    /// `Entitlement` with `license_read_only`; storage failures.
    pub async fn check_writable(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        org: Option<OrgId>,
        context: Context,
    ) -> Result<(), CoreError> {
        if !self.read_only(clock) {
            return Ok(());
        }
        Err(self
            .deny(store, clock, read_only_denial(org), context)
            .await)
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

fn core_to_load(e: CoreError) -> LoadError {
    match e {
        CoreError::Store(s) => LoadError::Store(s),
        other => LoadError::Invalid(other.to_string()),
    }
}

/// The denial of a change in read-only mode.
#[must_use]
pub fn read_only_denial(org: Option<OrgId>) -> Denial {
    Denial {
        entitlement: "read_only".into(),
        code: "license_read_only",
        message: "the license and its grace period have ended: this deployment is read-only \
                  (sign-in, the audit log and export stay open); activate a renewed license"
            .into(),
        limit: None,
        in_use: None,
        org,
    }
}

/// What is being added, for [`Licensing::exceeded`].
#[derive(Debug, Clone, Copy)]
pub enum Adding {
    /// An organisation.
    Org,
    /// A membership in the org (a seat, unless the user already holds one).
    Seat(OrgId),
}

/// Something the license does not allow.
#[derive(Debug, Clone)]
pub struct Denial {
    /// `orgs`, `seats`, `feature:<name>` or `read_only`.
    pub entitlement: String,
    /// The stable error code.
    pub code: &'static str,
    /// What was refused and how to fix it.
    pub message: String,
    /// The limit, where one applies.
    pub limit: Option<u64>,
    /// What is in use, where a limit applies.
    pub in_use: Option<u64>,
    /// The org concerned.
    pub org: Option<OrgId>,
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

/// Reads `license.extra_public_keys` entries (base64 of 32 bytes).
///
/// # Errors
/// The index of the first entry that is not a base64 Ed25519 public key.
pub fn parse_public_keys(entries: &[String]) -> Result<Vec<[u8; 32]>, usize> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            base64::engine::general_purpose::STANDARD
                .decode(e.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or(i)
        })
        .collect()
}

/// The keys that verify licenses: the vendor's, compiled in, and the extra ones from config.
#[must_use]
pub fn trusted_keys(extra: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut keys = bulwark_license::VENDOR_PUBLIC_KEYS.to_vec();
    keys.extend_from_slice(extra);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn claims(id: &str, serial: u32, issued: &str) -> Claims {
        let t = |s: &str| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        Claims {
            format: 1,
            license_id: id.into(),
            licensee: "Acme".into(),
            serial,
            deployment: Some("dep_x".into()),
            issued_at: t(issued),
            not_before: t(issued),
            expires_at: t("2030-01-01T00:00:00Z"),
            grace_days: 0,
            limits: bulwark_license::Limits::default(),
            features: vec![],
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
    fn the_deployment_id_is_the_seed_keys_fingerprint() {
        let seed = Seed::generate().unwrap();
        let a = Deployment::derive(&seed).unwrap();
        let b = Deployment::derive(&seed).unwrap();
        let other = Deployment::derive(&Seed::generate().unwrap()).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), other.id());
        assert!(
            a.id().starts_with("dep_") && a.id().len() == 28,
            "{}",
            a.id()
        );
    }

    #[test]
    fn foreign_rows_are_skipped_and_times_saturate() {
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

    #[test]
    fn extra_keys_must_be_32_bytes_of_base64() {
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(
            parse_public_keys(std::slice::from_ref(&good)).unwrap(),
            vec![[7u8; 32]]
        );
        assert_eq!(parse_public_keys(&[good, "AAAA".into()]), Err(1));
        assert_eq!(parse_public_keys(&["not base64!".into()]), Err(0));
    }
}
