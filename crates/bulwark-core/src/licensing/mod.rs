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
//!
//! The module is split along those lines: [`activation`] (installing a license, the receipt and
//! the anti-reuse ledger), [`clock`] (the rollback-resistant license clock and its tick) and
//! [`entitlements`] (limits, seat and org counting, feature and read-only checks). The items are
//! re-exported here, so `bulwark_core::licensing::…` paths name them as before.

pub mod activation;
pub mod clock;
pub mod entitlements;

use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use bulwark_crypto::{Ed25519Signer, KeyPurpose, Seed};
use bulwark_license::Claims;
use bulwark_types::Clock;
use time::OffsetDateTime;

use crate::model::{LicenseActivation, LicenseUsage};
use crate::ports::Store;
use crate::{CoreError, StoreError};

pub use clock::{CLOCK_SKEW_MS, WARN_DAYS};
pub use entitlements::{Adding, COMMUNITY, Denial, FEATURES, Limits, TICKETS, read_only_denial};

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
        Ok(Self {
            id: crate::backup::archive::deployment_id(&signer.public_key()),
            signer,
        })
    }

    /// The deployment id licenses are issued to.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Signs `message` with the deployment key (a backup's manifest; receipts sign through
    /// their own function).
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signer.sign(message)
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
    /// Every activation recorded, oldest first (ignored rows included: compare with
    /// `ignored_activations`).
    pub history: Vec<Activated>,
}

/// One activation in the history.
#[derive(Debug, Clone)]
pub struct Activated {
    /// Position in the history, from 1.
    pub seq: u64,
    /// The license's id.
    pub license_id: String,
    /// Its serial.
    pub serial: u32,
    /// When it was activated.
    pub activated_at: OffsetDateTime,
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

    /// The status for an operator allowed `LicenseRead` (the API).
    ///
    /// # Errors
    /// A decision for another action (a bug), storage failures.
    pub async fn status_for(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        authorized: &crate::authz::Authorized,
    ) -> Result<Status, CoreError> {
        authorized.org_for(bulwark_authz::Action::LicenseRead)?;
        self.status(store, clock).await
    }

    /// The status for the host's operator (the CLI, which reads the store directly).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn status(&self, store: &dyn Store, clock: &dyn Clock) -> Result<Status, CoreError> {
        let mut tx = store.system().await?;
        let usage = tx.license_usage().await?;
        let history = tx
            .license_activations()
            .await?
            .into_iter()
            .map(|a| Activated {
                seq: a.seq,
                license_id: a.license_id,
                serial: a.serial,
                activated_at: OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(a.activated_at_ms) * 1_000_000,
                )
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            })
            .collect();
        drop(tx);
        Ok(Status {
            history,
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
}

fn core_to_load(e: CoreError) -> LoadError {
    match e {
        CoreError::Store(s) => LoadError::Store(s),
        other => LoadError::Invalid(other.to_string()),
    }
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

    pub(super) fn claims(id: &str, serial: u32, issued: &str) -> Claims {
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
