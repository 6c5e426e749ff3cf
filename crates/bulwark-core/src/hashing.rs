//! A bounded pool for password hashing.
//!
//! argon2id costs ~19 MiB and ~14 ms per hash. Running it on the async workers would stall every
//! other request, and running unboundedly on the blocking pool would let 1,000 concurrent logins
//! allocate 19 GiB. So hashes wait for one of `permits` slots (sized to the cores).

use std::sync::Arc;

use bulwark_crypto::{PasswordHashString, PasswordParams};
use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::CoreError;

/// Runs password hashes on the blocking pool, at most `permits` at once.
#[derive(Clone)]
pub struct HashPool {
    permits: Arc<Semaphore>,
    params: PasswordParams,
}

impl HashPool {
    /// A pool with `permits` slots hashing under `params`.
    #[must_use]
    pub fn new(permits: usize, params: PasswordParams) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            params,
        }
    }

    /// The parameters new hashes use.
    #[must_use]
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    /// Hashes `password` once a slot is free.
    ///
    /// # Errors
    /// `Crypto` if hashing fails, `Unavailable` if the pool is closed.
    pub async fn hash(&self, password: SecretString) -> Result<PasswordHashString, CoreError> {
        let params = self.params;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CoreError::Unavailable)?;
        tokio::task::spawn_blocking(move || bulwark_crypto::hash_password(&password, params))
            .await
            .map_err(|_| CoreError::Unavailable)?
            .map_err(|_| CoreError::Crypto)
    }
}
