//! `[sso]`: where identity providers send browsers back to, and which provider hosts Bulwark
//! may call (issue 21).

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// The allowlist entry that stands for "no identity-provider host" (see [`SsoConfig::policy`]).
pub const NO_HOST: &str = "no-identity-provider-host.invalid";

/// Single sign-on.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsoConfig {
    /// This server's base URL as browsers reach it (`https://bulwark.example.com`): the redirect
    /// URIs and SAML endpoints an identity provider is given are built from it. Required before
    /// any connection can be added; `http://` only for a loopback host.
    pub public_url: Option<String>,
    /// The identity-provider hosts Bulwark may call for discovery documents, keys, tokens and
    /// metadata (`login.example.com`, `*.okta.com`, or an IP literal). A connection whose issuer
    /// is elsewhere is refused. Private addresses stay closed unless `[egress]` opens them.
    pub idp_hosts: Vec<String>,
}

impl SsoConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for host in &self.idp_hosts {
            if !bulwark_core::egress::valid_host_entry(host) {
                return invalid(
                    "sso.idp_hosts",
                    format!(
                        "has `{host}`, which is not a lowercase host name, `*.` and one, or an IP address"
                    ),
                );
            }
        }
        if let Some(raw) = &self.public_url
            && self.base().is_none()
        {
            return invalid(
                "sso.public_url",
                format!(
                    "`{raw}` is not an https:// URL with a host and no query or fragment \
                     (http:// only for 127.0.0.1, [::1] or localhost)"
                ),
            );
        }
        Ok(())
    }

    /// The public base URL, without a trailing slash, when set and well formed.
    #[must_use]
    pub fn base(&self) -> Option<url::Url> {
        let url = url::Url::parse(self.public_url.as_deref()?).ok()?;
        let loopback = matches!(
            url.host(),
            Some(url::Host::Domain("localhost"))
                | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
        );
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        let clean = url.host().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        (scheme_ok && clean).then_some(url)
    }

    /// The egress policy for identity providers: the deployment's, default-deny to
    /// `idp_hosts`. With none listed, no host at all (an empty allowlist would mean "any public
    /// host" to the egress check).
    #[must_use]
    pub fn policy(&self, egress: &super::EgressConfig) -> bulwark_core::egress::EgressPolicy {
        let mut policy = egress.policy();
        policy.allow_hosts = if self.idp_hosts.is_empty() {
            // `.invalid` never resolves (RFC 2606): the list matches nothing.
            vec![NO_HOST.to_owned()]
        } else {
            self.idp_hosts.clone()
        };
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn no_listed_provider_host_means_no_host_at_all() {
        let egress = super::super::EgressConfig::default();
        let none = SsoConfig::default().policy(&egress);
        let listed = SsoConfig {
            idp_hosts: vec!["login.example.com".into()],
            ..SsoConfig::default()
        }
        .policy(&egress);
        let idp = url("https://login.example.com/tenant/v2.0");
        let other = url("https://accounts.example.org/");
        assert!(bulwark_core::egress::check_url(&idp, &none).is_err());
        assert!(bulwark_core::egress::check_url(&other, &none).is_err());
        assert!(bulwark_core::egress::check_url(&idp, &listed).is_ok());
        assert!(bulwark_core::egress::check_url(&other, &listed).is_err());
    }

    #[test]
    fn the_public_url_is_https_or_loopback_http_without_query() {
        let with = |u: &str| SsoConfig {
            public_url: Some(u.into()),
            ..SsoConfig::default()
        };
        assert!(with("https://bulwark.example.com").base().is_some());
        assert!(with("http://127.0.0.1:8420").base().is_some());
        assert!(with("http://bulwark.example.com").base().is_none());
        assert!(with("https://bulwark.example.com/?a=1").base().is_none());
        assert!(with("https://user:pw@bulwark.example.com").base().is_none());
        assert!(with("https://bulwark.example.com").validate().is_ok());
        assert!(with("ftp://bulwark.example.com").validate().is_err());
    }
}
