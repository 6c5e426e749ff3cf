//! `[sso]`: where identity providers send browsers back to, and which provider hosts Bulwark
//! may call (issue 21).

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

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
    /// `idp_hosts`.
    #[must_use]
    pub fn policy(&self, egress: &super::EgressConfig) -> bulwark_core::egress::EgressPolicy {
        let mut policy = egress.policy();
        policy.allow_hosts = self.idp_hosts.clone();
        policy
    }
}
