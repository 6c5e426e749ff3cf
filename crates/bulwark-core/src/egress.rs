//! SSRF-safe egress (issue 7 groundwork): which addresses Bulwark may connect to when it sends
//! a webhook or calls an integration, and the vetted addresses of a destination.
//!
//! A destination's host is resolved once; every address is checked against the deny table
//! below, and the connection must go to one of the returned addresses (so a second DNS answer
//! cannot swap in a private address: no rebinding window). If any answer is denied, the whole
//! destination is refused: a name that resolves to a mix of public and private addresses is a
//! trick, not a configuration. Host spellings such as `2130706433`, `0x7f.1` or `0177.0.0.1` are
//! normalised by the URL parser into the address they mean before the check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// Not an absolute `https://` URL with a host (or `http://` where allowed).
    #[error("not an allowed URL: {0}")]
    Url(&'static str),
    /// The host did not resolve.
    #[error("the host does not resolve")]
    Unresolved,
    /// An address of the destination is in a denied range.
    #[error("the destination resolves to a {0} address, which is never called")]
    Denied(&'static str),
}

/// What the egress check allows beyond public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Allow `http://` (default: https only).
    pub allow_http: bool,
    /// Allow loopback addresses: only for tests, whose receivers listen on 127.0.0.1.
    pub allow_loopback: bool,
}

/// The kind of a denied address, or `None` for a public one.
#[must_use]
pub fn denied(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => denied_v4(v4),
        IpAddr::V6(v6) => denied_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn denied_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const TABLE: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "this-network"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "carrier-grade NAT"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local (cloud metadata)"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    TABLE
        .iter()
        .find(|(net, bits, _)| in_v4(ip, *net, *bits))
        .map(|(_, _, kind)| *kind)
}

fn denied_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    let [.., a, b, c, d] = ip.octets();
    let v4_tail = || Ipv4Addr::new(a, b, c, d);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (IPv4-mapped) and ::a.b.c.d (IPv4-compatible): the IPv4 address decides,
    // and a compatible form is refused whatever it holds (deprecated, never a real peer).
    if seg[..5] == [0; 5] && seg[5] == 0xffff {
        return denied_v4(v4_tail());
    }
    if seg[..6] == [0; 6] {
        return Some("IPv4-compatible");
    }
    // 64:ff9b::/96 (NAT64) carries an IPv4 address in its tail.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return denied_v4(v4_tail()).or(Some("NAT64"));
    }
    match seg[0] {
        0xfc00..=0xfdff => Some("unique local (ULA)"),
        0xfe80..=0xfebf => Some("link-local"),
        0xfec0..=0xfeff => Some("site-local"),
        0xff00..=0xffff => Some("multicast"),
        0x2002 => Some("6to4"),
        0x2001 if seg[1] == 0 => Some("Teredo"),
        0x2001 if seg[1] == 0x0db8 => Some("documentation"),
        0x0100 if seg[1..4] == [0, 0, 0] => Some("discard-only"),
        _ => None,
    }
}

/// Checks `url`'s scheme and host and resolves it: the addresses a connection may use, each
/// vetted.
///
/// # Errors
/// [`EgressError::Url`], [`EgressError::Unresolved`], or [`EgressError::Denied`] naming the kind
/// of the first denied address.
pub async fn vetted_addresses(
    url: &url::Url,
    policy: EgressPolicy,
) -> Result<Vec<SocketAddr>, EgressError> {
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(EgressError::Url("the scheme must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EgressError::Url("credentials in the URL are not allowed"));
    }
    let port = url
        .port_or_known_default()
        .ok_or(EgressError::Url("no port"))?;
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| EgressError::Unresolved)?
            .collect(),
        None => return Err(EgressError::Url("no host")),
    };
    if addrs.is_empty() {
        return Err(EgressError::Unresolved);
    }
    check_all(&addrs, policy)?;
    Ok(addrs)
}

/// Refuses the whole answer when any address is denied under `policy` (loopback passes only
/// with the test allowance). Used before sending and by the client's resolver at connect time.
///
/// # Errors
/// [`EgressError::Denied`] naming the kind of the first denied address.
pub fn check_all(addrs: &[SocketAddr], policy: EgressPolicy) -> Result<(), EgressError> {
    for addr in addrs {
        let ip = addr.ip();
        let loopback_allowed = policy.allow_loopback && ip.to_canonical().is_loopback();
        if let Some(kind) = denied(ip)
            && !loopback_allowed
        {
            return Err(EgressError::Denied(kind));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        denied(s.parse().unwrap())
    }

    #[test]
    fn the_deny_table_covers_every_special_range() {
        for (ip, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("0.0.0.0", "this-network"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("198.18.0.1", "benchmarking"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::808:808", "NAT64"),
            ("fc00::1", "unique local (ULA)"),
            ("fd12:3456::1", "unique local (ULA)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2002:7f00:1::", "6to4"),
            ("2001:0:4136:e378::", "Teredo"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(kind(ip), Some(expected), "{ip}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(kind(public), None, "{public}");
        }
    }

    async fn vet(url: &str, policy: EgressPolicy) -> Result<Vec<SocketAddr>, EgressError> {
        vetted_addresses(&url::Url::parse(url).unwrap(), policy).await
    }

    #[tokio::test]
    async fn address_spelling_tricks_are_normalised_then_refused() {
        let policy = EgressPolicy::default();
        for trick in [
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[fd00::1]/",
            "https://0/",
        ] {
            let got = vet(trick, policy).await;
            assert!(
                matches!(got, Err(EgressError::Denied(_))),
                "{trick}: {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let got = vet("https://localhost/", EgressPolicy::default()).await;
        assert_eq!(got, Err(EgressError::Denied("loopback")));
        let got = vet(
            "https://localhost:8443/",
            EgressPolicy {
                allow_loopback: true,
                allow_http: false,
            },
        )
        .await
        .unwrap();
        assert!(
            got.iter().all(|a| a.ip().is_loopback() && a.port() == 8443),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn scheme_and_credentials_are_checked_first() {
        let policy = EgressPolicy::default();
        assert!(matches!(
            vet("http://8.8.8.8/", policy).await,
            Err(EgressError::Url(_))
        ));
        assert!(matches!(
            vet("ftp://8.8.8.8/", policy).await,
            Err(EgressError::Url(_))
        ));
        assert!(matches!(
            vet("https://u:p@8.8.8.8/", policy).await,
            Err(EgressError::Url(_))
        ));
        let public = vet("https://8.8.8.8/", policy).await.unwrap();
        assert_eq!(public, vec!["8.8.8.8:443".parse().unwrap()]);
        let http = EgressPolicy {
            allow_http: true,
            allow_loopback: false,
        };
        assert_eq!(
            vet("http://8.8.8.8/", http).await.unwrap(),
            vec!["8.8.8.8:80".parse().unwrap()]
        );
        assert!(matches!(
            vet("https://no-such-host.invalid/", policy).await,
            Err(EgressError::Unresolved)
        ));
    }
}
