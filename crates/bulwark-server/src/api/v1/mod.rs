//! Version 1 of the HTTP API.

pub mod access;
pub mod audit;
pub mod auth;
pub mod credentials;
pub mod deletion;
pub mod evidence;
pub mod keys;
pub mod license;
pub mod mfa;
pub mod orgs;
pub mod recovery;
pub mod setup;
pub mod sso;
pub mod sso_saml;
pub mod tickets;
pub mod webhooks;

/// A secret the user must copy now, in the one response that shows it (a new API key, a webhook
/// signing secret, a TOTP enrolment, backup codes): serialized as a plain string there, and
/// nowhere else. It cannot be cloned, its `Debug` does not show it, and its memory is zeroized
/// when the response has been written. Described as a string in the API document
/// (`#[schema(value_type = String)]` on the field).
pub struct ShownOnce(secrecy::SecretString);

impl ShownOnce {
    /// Wraps `text` for the response that shows it.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(secrecy::SecretString::from(text.into()))
    }
}

impl serde::Serialize for ShownOnce {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use secrecy::ExposeSecret as _;
        serializer.serialize_str(self.0.expose_secret())
    }
}

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShownOnce([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::ShownOnce;

    #[test]
    fn a_shown_once_secret_serializes_once_and_never_debugs() {
        let secret = ShownOnce::new("bwk_visible_only_in_the_body");
        assert_eq!(
            serde_json::to_string(&secret).unwrap_or_default(),
            "\"bwk_visible_only_in_the_body\""
        );
        assert!(!format!("{secret:?}").contains("bwk_"));
    }
}
