//! The credential vault's key provider and its background rewrap job.
//!
//! The provider is chosen by `[vault] provider`: the workspace seed (KEKs derived per org and
//! key version) or a PKCS#11 token (one AES-256 KEK per key version, labelled
//! `<key_label_prefix>-v<version>`, generated on the token as sensitive and non-extractable;
//! data keys are wrapped there with AES key wrap with padding, RFC 5649).
//!
//! Start-up refuses to serve when the provider cannot be opened (wrong PIN, no such token) or
//! does not hold the KEK of a key version the database still uses.

use std::sync::Arc;
use std::time::Duration;

use bulwark_core::model::VaultKeyState;
use bulwark_core::ports::Store;
use bulwark_crypto::vault::{Binding, DataKey, KeyWrapper, SeedWrapper, WrapError};
use bulwark_types::Clock;

use crate::config::{VaultConfig, VaultProvider};

/// KEKs on a PKCS#11 token, labelled `<prefix>-<deployment>-v<version>` (the deployment's first
/// 12 hex digits), so deployments sharing a token never touch each other's keys.
pub struct Pkcs11Wrapper {
    hsm: bulwark_pkcs11::Hsm,
    prefix: String,
}

impl Pkcs11Wrapper {
    /// The label of `version`'s KEK.
    #[must_use]
    pub fn label(&self, version: u32) -> String {
        format!("{}-v{version}", self.prefix)
    }
}

/// The label prefix of a deployment's KEKs.
#[must_use]
pub fn kek_prefix(configured: &str, deployment: uuid::Uuid) -> String {
    let id = deployment.simple().to_string();
    format!("{configured}-{}", id.get(..12).unwrap_or(&id))
}

fn hsm_error(e: bulwark_pkcs11::HsmError, version: u32) -> WrapError {
    match e {
        bulwark_pkcs11::HsmError::Rejected => WrapError::Rejected,
        bulwark_pkcs11::HsmError::NoKey { .. } => WrapError::NoKey(version),
        other => WrapError::Provider(other.to_string()),
    }
}

impl KeyWrapper for Pkcs11Wrapper {
    fn provider(&self) -> &'static str {
        "pkcs11"
    }

    fn holds_version(&self, version: u32) -> Result<bool, WrapError> {
        self.hsm
            .has_kek(&self.label(version))
            .map_err(|e| hsm_error(e, version))
    }

    fn create_version(&self, version: u32) -> Result<(), WrapError> {
        // Never adopts an object Bulwark did not create (someone could plant a key of known
        // value under the next label): an existing label is refused, with what to do.
        let label = self.label(version);
        if self
            .hsm
            .has_key(&label)
            .map_err(|e| hsm_error(e, version))?
        {
            return Err(WrapError::Provider(format!(
                "an object labelled `{label}` already exists on the token; Bulwark only uses keys \
                 it generated: remove it (or choose another key_label_prefix) and retry"
            )));
        }
        self.hsm
            .generate_kek(&self.label(version))
            .map_err(|e| hsm_error(e, version))
    }

    fn destroy_version(&self, version: u32) -> Result<(), WrapError> {
        self.hsm
            .destroy_kek(&self.label(version))
            .map(drop)
            .map_err(|e| hsm_error(e, version))
    }

    fn wrap(
        &self,
        _binding: &Binding<'_>,
        version: u32,
        key: &DataKey,
    ) -> Result<Vec<u8>, WrapError> {
        // RFC 5649 has no associated data: the record binding holds through the value's own
        // associated data, which names the org, record, field and version.
        self.hsm
            .wrap(&self.label(version), key.expose())
            .map_err(|e| hsm_error(e, version))
    }

    fn unwrap(
        &self,
        _binding: &Binding<'_>,
        version: u32,
        wrapped: &[u8],
    ) -> Result<DataKey, WrapError> {
        self.hsm
            .unwrap(&self.label(version), wrapped)
            .map(DataKey::from_bytes)
            .map_err(|e| hsm_error(e, version))
    }
}

/// Why the vault's provider could not be used at start.
#[derive(Debug, thiserror::Error)]
#[error("vault: {0}")]
pub struct VaultStartError(pub String);

/// Opens the configured provider.
///
/// # Errors
/// A PKCS#11 module that does not load, a missing token, a wrong or locked PIN.
pub fn open_provider(
    config: &VaultConfig,
    seed: &bulwark_crypto::Seed,
    deployment: uuid::Uuid,
) -> Result<Arc<dyn KeyWrapper>, VaultStartError> {
    match (config.provider, &config.pkcs11) {
        (VaultProvider::Seed, _) => Ok(Arc::new(SeedWrapper::new(seed).map_err(|_| {
            VaultStartError("the vault root key could not be derived from the seed".into())
        })?)),
        (VaultProvider::Pkcs11, Some(p)) => {
            let hsm = bulwark_pkcs11::Hsm::open(&bulwark_pkcs11::HsmConfig {
                module: p.module.clone(),
                token_label: p.token.clone(),
                pin: p.pin.clone(),
            })
            .map_err(|e| VaultStartError(format!("vault.pkcs11: {e}")))?;
            tracing::info!(token = %hsm.describe(), "vault key-encryption keys are on a PKCS#11 token");
            Ok(Arc::new(Pkcs11Wrapper {
                hsm,
                prefix: kek_prefix(&p.key_label_prefix, deployment),
            }))
        }
        (VaultProvider::Pkcs11, None) => Err(VaultStartError(
            "vault.pkcs11 is missing: provider = \"pkcs11\" needs module, token and pin".into(),
        )),
    }
}

/// Makes sure the vault has an active key version held by `wrapper` and binding kinds and
/// destinations (rotating once after an upgrade from before that), and that every version still
/// in use is held by it.
///
/// # Errors
/// A version held by another provider than the configured one, a KEK missing from the token,
/// storage failures.
pub async fn check_keys(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
) -> Result<u32, VaultStartError> {
    let active = bulwark_core::vault::ensure_initial_key(store, clock, wrapper)
        .await
        .map_err(|e| VaultStartError(format!("cannot set up the first key version: {e}")))?;
    // Once, after upgrading from before value envelope v2: a new key version, so the rewrap job
    // moves every credential into the envelope that binds its kind and destinations.
    let active = match bulwark_core::vault::upgrade_envelopes(store, clock, wrapper)
        .await
        .map_err(|e| {
            VaultStartError(format!(
                "cannot rotate to a key version that binds kinds and destinations: {e}"
            ))
        })? {
        Some(key) => {
            tracing::info!(
                version = key.version,
                "vault: rotated once so that every credential is sealed again bound to its kind and destinations"
            );
            key
        }
        None => active,
    };
    // The versions only: counting credentials would scan them all at every start.
    let keys = async { store.system().await?.vault_keys().await }
        .await
        .map_err(|e| VaultStartError(format!("cannot read the key versions: {e}")))?;
    for key in keys.iter().filter(|k| k.state != VaultKeyState::Retired) {
        if key.provider != wrapper.provider() {
            return Err(VaultStartError(format!(
                "key version {} is held by the `{}` provider but vault.provider is `{}`: \
                 configure the provider that holds it",
                key.version,
                key.provider,
                wrapper.provider()
            )));
        }
        let present = wrapper
            .holds_version(key.version)
            .map_err(|e| VaultStartError(format!("vault.{}: {e}", wrapper.provider())))?;
        if !present {
            return Err(VaultStartError(format!(
                "vault.{}: the KEK of key version {} is not held by the provider (on a token it \
                 is labelled `<key_label_prefix>-<deployment>-v{}`); credentials sealed under it cannot be opened",
                wrapper.provider(),
                key.version,
                key.version
            )));
        }
    }
    Ok(active.version)
}

/// The background rewrap job: looks for credentials under older key versions every
/// `rewrap_interval_secs`, moves them a batch per transaction, and retires versions no
/// credential uses any more. Stops when `stop` resolves.
pub async fn rewrap_job(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wrapper: Arc<dyn KeyWrapper>,
    config: VaultConfig,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(stop);
    loop {
        let work = rewrap_until_done(&*store, &*clock, &*wrapper, &config);
        tokio::select! {
            () = &mut stop => return,
            result = work => if let Err(e) = result {
                tracing::warn!(error = %e, "vault rewrap job failed; retrying later");
            },
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(Duration::from_secs(config.rewrap_interval_secs)) => {}
        }
    }
}

/// Moves batches until none is left, then retires unused versions.
///
/// # Errors
/// Storage failures.
pub async fn rewrap_until_done(
    store: &dyn Store,
    clock: &dyn Clock,
    wrapper: &dyn KeyWrapper,
    config: &VaultConfig,
) -> Result<(), bulwark_core::CoreError> {
    // The key versions only: counting credentials would scan them on every look.
    let keys = store.system().await?.vault_keys().await?;
    if !keys.iter().any(|k| k.state == VaultKeyState::Previous) {
        // Nothing to move; a retired KEK a token failed to destroy is retried.
        if keys.iter().any(|k| k.state == VaultKeyState::Retired) {
            bulwark_core::vault::retire_unused(store, clock, wrapper).await?;
        }
        return Ok(());
    }
    loop {
        let done = bulwark_core::vault::rewrap_batch(store, wrapper, config.rewrap_batch).await?;
        if done.moved > 0 {
            tracing::debug!(moved = done.moved, "vault: rewrapped a batch");
        }
        if !done.more {
            break;
        }
        if config.rewrap_pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(config.rewrap_pause_ms)).await;
        }
    }
    let retired = bulwark_core::vault::retire_unused(store, clock, wrapper).await?;
    if !retired.is_empty() {
        tracing::info!(versions = ?retired, "vault: retired key versions no credential uses");
    }
    Ok(())
}
