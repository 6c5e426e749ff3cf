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
    /// A hash of a random password with the same parameters: an unknown account is checked
    /// against it so that it costs exactly what a wrong password costs.
    sentinel: Arc<tokio::sync::OnceCell<PasswordHashString>>,
}

impl HashPool {
    /// A pool with `permits` slots hashing under `params`.
    #[must_use]
    pub fn new(permits: usize, params: PasswordParams) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            params,
            sentinel: Arc::new(tokio::sync::OnceCell::new()),
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

impl HashPool {
    /// Whether `password` matches `stored`; with no stored hash (an unknown account) it checks
    /// against the sentinel and answers `false`, in the same time a wrong password takes.
    ///
    /// # Errors
    /// `Unavailable` when the pool is closed, `Crypto` for a malformed stored hash.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<PasswordHashString>,
    ) -> Result<bool, CoreError> {
        let (stored, known) = match stored {
            Some(s) => (s, true),
            None => (self.sentinel().await?, false),
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CoreError::Unavailable)?;
        let matched = tokio::task::spawn_blocking(move || {
            bulwark_crypto::verify_password(&password, &stored)
        })
        .await
        .map_err(|_| CoreError::Unavailable)?
        .map_err(|_| CoreError::Crypto)?;
        Ok(known && matched)
    }

    /// Computes the sentinel hash now (at start-up), so the first unknown-account login does
    /// not pay for it and stand out by its timing.
    ///
    /// # Errors
    /// As [`HashPool::hash`].
    pub async fn warm(&self) -> Result<(), CoreError> {
        self.sentinel().await.map(drop)
    }

    async fn sentinel(&self) -> Result<PasswordHashString, CoreError> {
        self.sentinel
            .get_or_try_init(|| async {
                let random = bulwark_crypto::random_bytes::<32>().map_err(|_| CoreError::Crypto)?;
                let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
                self.hash(SecretString::from(text)).await
            })
            .await
            .cloned()
    }
}
