//! Password hashing with argon2id, stored as PHC strings.
//!
//! Parameters come from configuration with a floor at the OWASP minimum (m = 19 MiB, t = 2,
//! p = 1); a hash is verified with the parameters recorded in its PHC string.

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::random_bytes;

/// Why hashing or verifying failed for a reason other than a wrong password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The configured parameters are below the floor or otherwise invalid.
    #[error("argon2id parameters below the minimum (m ≥ 19456 KiB, t ≥ 2, p ≥ 1)")]
    WeakParams,
    /// The stored hash is not a valid argon2id PHC string.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// The hashing library failed.
    #[error("password hashing failed")]
    Hashing,
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Rng,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl PasswordParams {
    /// The OWASP minimum for argon2id, also our default.
    pub const OWASP_MIN: Self = Self {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// Checks the floor and builds the library's parameters.
    ///
    /// # Errors
    /// When any parameter is below the OWASP minimum.
    pub fn validate(self) -> Result<Params, PasswordError> {
        let min = Self::OWASP_MIN;
        if self.m_cost_kib < min.m_cost_kib || self.t_cost < min.t_cost || self.p_cost < min.p_cost
        {
            return Err(PasswordError::WeakParams);
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| PasswordError::WeakParams)
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self::OWASP_MIN
    }
}

/// A PHC-format argon2id hash (`$argon2id$v=19$m=…`). Not secret, but not for display either.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHashString(String);

impl PasswordHashString {
    /// Wraps a hash read from storage.
    #[must_use]
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The PHC string to store.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this hash was made with weaker parameters than `params` (or cannot be read), so
    /// it should be replaced by a fresh hash the next time the password is known.
    #[must_use]
    pub fn needs_rehash(&self, params: PasswordParams) -> bool {
        let Ok(hash) = argon2::password_hash::phc::PasswordHash::new(&self.0) else {
            return true;
        };
        let get = |name: &str| hash.params.get_decimal(name).unwrap_or(0);
        hash.algorithm.as_str() != "argon2id"
            || get("m") < params.m_cost_kib
            || get("t") < params.t_cost
            || get("p") < params.p_cost
    }
}

impl std::fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashString(..)")
    }
}

/// Hashes `password` with argon2id under `params` and a fresh 16-byte salt. CPU- and
/// memory-heavy: call it from a blocking pool, never on an async worker.
///
/// # Errors
/// Weak parameters, RNG failure or a library failure.
pub fn hash_password(
    password: &SecretString,
    params: PasswordParams,
) -> Result<PasswordHashString, PasswordError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.validate()?);
    let salt = random_bytes::<16>().map_err(|_| PasswordError::Rng)?;
    let hash = argon
        .hash_password_with_salt(password.expose_secret().as_bytes(), &salt)
        .map_err(|_| PasswordError::Hashing)?;
    Ok(PasswordHashString(hash.to_string()))
}

/// Whether `password` matches `stored`. Only argon2id hashes are accepted.
///
/// # Errors
/// When the stored hash is not a well-formed argon2id PHC string.
pub fn verify_password(
    password: &SecretString,
    stored: &PasswordHashString,
) -> Result<bool, PasswordError> {
    if !stored.0.starts_with("$argon2id$") {
        return Err(PasswordError::MalformedHash);
    }
    match Argon2::default().verify_password(password.expose_secret().as_bytes(), stored.0.as_str())
    {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(_) => Err(PasswordError::MalformedHash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_and_a_wrong_one_does_not() {
        let pw = SecretString::from("correct horse battery staple");
        let h = hash_password(&pw, PasswordParams::default()).unwrap();
        assert!(h.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(&pw, &h).unwrap());
        assert!(
            !verify_password(&SecretString::from("correct horse battery stapler"), &h).unwrap()
        );
    }

    #[test]
    fn a_hash_with_weaker_parameters_needs_rehashing() {
        let pw = SecretString::from("correct horse battery staple");
        let h = hash_password(&pw, PasswordParams::default()).unwrap();
        assert!(!h.needs_rehash(PasswordParams::default()));
        let stronger = PasswordParams {
            m_cost_kib: 32 * 1024,
            ..PasswordParams::default()
        };
        assert!(h.needs_rehash(stronger));
        assert!(h.needs_rehash(PasswordParams {
            t_cost: 3,
            ..PasswordParams::default()
        }));
        assert!(PasswordHashString::from_stored("garbage".into()).needs_rehash(stronger));
        let strong = hash_password(&pw, stronger).unwrap();
        assert!(!strong.needs_rehash(PasswordParams::default()));
    }

    #[test]
    fn weak_parameters_are_refused() {
        let pw = SecretString::from("x");
        for p in [
            PasswordParams {
                m_cost_kib: 1024,
                ..PasswordParams::default()
            },
            PasswordParams {
                t_cost: 1,
                ..PasswordParams::default()
            },
            PasswordParams {
                p_cost: 0,
                ..PasswordParams::default()
            },
        ] {
            assert!(matches!(
                hash_password(&pw, p),
                Err(PasswordError::WeakParams)
            ));
        }
    }

    #[test]
    fn non_argon2id_hashes_are_refused() {
        let pw = SecretString::from("x");
        for bad in [
            "",
            "plain",
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            "$argon2id$garbage",
        ] {
            assert!(
                verify_password(&pw, &PasswordHashString::from_stored(bad.into())).is_err(),
                "{bad}"
            );
        }
    }
}
