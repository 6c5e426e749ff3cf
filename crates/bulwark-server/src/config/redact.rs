//! The redacted display of a configuration (`bulwark config check`, the effective settings):
//! secrets become `[REDACTED]`, and a URL keeps everything but its password and query.

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

use super::Config;

pub(super) fn redact_secret<S: Serializer>(
    secret: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        None => s.serialize_none(),
        Some(_) => s.serialize_some("[REDACTED]"),
    }
}

pub(super) fn redact_required<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[REDACTED]")
}

pub(super) fn redact_url<S: Serializer>(
    url: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        None => s.serialize_none(),
        Some(u) => s.serialize_some(&redacted_url(u.expose_secret())),
    }
}

/// A URL with its password replaced, for display.
#[must_use]
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[REDACTED]".into();
    };
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                ":[REDACTED]"
            } else {
                ""
            };
            out.push_str(&format!("{user}{masked}@{host}"));
        }
        None => out.push_str(authority),
    }
    if !tail.is_empty() || rest.contains('/') {
        out.push('/');
        // Query strings may carry `password=`; drop them from the display.
        out.push_str(tail.split_once('?').map_or(tail, |(p, _)| p));
    }
    out
}

impl Config {
    /// The effective configuration as TOML, secrets redacted.
    #[must_use]
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Overrides;
    use super::super::tests::{env, write};
    use super::*;

    #[test]
    fn secrets_come_from_files_and_are_redacted_on_display() {
        let secret =
            write("postgres://app:s3cr3t-pa55@db.internal:5432/bulwark?password=also-s3cr3t\n");
        let var = secret.path().display().to_string();
        let c = Config::load(
            None,
            env(&[("BULWARK_DATABASE_URL_FILE", &var)]),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.database_url.as_ref().unwrap().expose_secret(),
            "postgres://app:s3cr3t-pa55@db.internal:5432/bulwark?password=also-s3cr3t"
        );
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("postgres://app:[REDACTED]@db.internal:5432/bulwark"),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
