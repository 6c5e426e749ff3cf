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
    /// The deployment is default-deny and the host is not on its allowlist.
    #[error("the host is not on the egress allowlist")]
    NotListed,
    /// The host did not resolve.
    #[error("the host does not resolve")]
    Unresolved,
    /// An address of the destination is in a denied range.
    #[error("the destination resolves to a {0} address, which is never called")]
    Denied(&'static str),
}

/// What the egress check allows beyond public addresses, and whether only listed hosts may be
/// called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Allow `http://` (default: https only).
    pub allow_http: bool,
    /// Loopback ports that may be called (a local relay, a test's receiver): only these, never
    /// the rest of loopback (Bulwark's own port, a database, an admin console). Empty by default.
    pub allow_loopback: Vec<LoopbackPort>,
    /// When not empty, the deployment is default-deny: only these hosts may be called. An entry
    /// is a host name (`hooks.example.com`), a wildcard for its subdomains (`*.example.com`,
    /// which does not match `example.com` itself), or an IP literal. The deny table still
    /// applies to what they resolve to.
    pub allow_hosts: Vec<String>,
    /// Networks that may be called although the deny table lists them (an on-premises
    /// tracker at `10.20.0.0/16`): the operator's explicit exception, never a default, and only
    /// for the hosts in `internal_hosts`.
    pub allow_networks: Vec<Network>,
    /// The hosts (same forms as `allow_hosts`) that may resolve into `allow_networks`; any other
    /// host resolving there is refused like any private address.
    pub internal_hosts: Vec<String>,
}

/// One loopback port that may be called: `127.0.0.1:9000` or `[::1]:9000` (that address and
/// port), or `localhost:9000` (port 9000 on any loopback address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopbackPort {
    addr: Option<IpAddr>,
    port: u16,
}

impl LoopbackPort {
    /// The entry for exactly `addr`, when it is a loopback address with a port.
    #[must_use]
    pub fn exactly(addr: SocketAddr) -> Option<Self> {
        (addr.ip().to_canonical().is_loopback() && addr.port() != 0).then_some(Self {
            addr: Some(addr.ip().to_canonical()),
            port: addr.port(),
        })
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether a connection to `to` is to this entry (an IPv4-mapped address counts as its
    /// IPv4 address).
    #[must_use]
    pub fn matches(&self, to: SocketAddr) -> bool {
        let ip = to.ip().to_canonical();
        to.port() == self.port && ip.is_loopback() && self.addr.is_none_or(|a| a == ip)
    }
}

impl std::str::FromStr for LoopbackPort {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: &str = "must be a loopback address and port such as `127.0.0.1:9000`, \
                           `[::1]:9000` or `localhost:9000`";
        let (addr, port) = match s.strip_prefix("localhost:") {
            Some(port) => (None, port),
            None => {
                let addr: SocketAddr = s.parse().map_err(|_| BAD)?;
                let entry = Self::exactly(addr).ok_or(BAD)?;
                return Ok(entry);
            }
        };
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BAD);
        }
        match port.parse::<u16>() {
            Ok(port) if port != 0 => Ok(Self { addr, port }),
            _ => Err(BAD),
        }
    }
}

impl std::fmt::Display for LoopbackPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Some(a) => write!(f, "{}", SocketAddr::new(a, self.port)),
            None => write!(f, "localhost:{}", self.port),
        }
    }
}

/// An address range: `10.20.0.0/16`, `fd00:1::/64`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    bits: u8,
}

impl Network {
    /// Whether `ip` is inside (an IPv4-mapped address counts as its IPv4 address).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net.octets(), u32::from(self.bits)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: &str = "must be an address or CIDR range such as 10.20.0.0/16";
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| BAD)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
                b.parse::<u8>().map_err(|_| BAD)?
            }
            Some(_) => return Err(BAD),
            None => max,
        };
        if bits > max {
            return Err(BAD);
        }
        Ok(Self { addr, bits })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

/// Whether an allowlist entry is well formed: a lowercase host name, `*.` and one, or an IP
/// literal.
#[must_use]
pub fn valid_host_entry(entry: &str) -> bool {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    if name.parse::<IpAddr>().is_ok() {
        return !entry.starts_with("*.");
    }
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn host_listed(host: &str, allow: &[String]) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    allow.iter().any(|entry| match entry.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => host == entry,
    })
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
    // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765): never a real peer.
    if seg[..4] == [0; 4] && seg[4] == 0xffff && seg[5] == 0 {
        return Some("IPv4-translated");
    }
    // 64:ff9b::/96 (NAT64) carries an IPv4 address in its tail.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return denied_v4(v4_tail()).or(Some("NAT64"));
    }
    // 64:ff9b:1::/48 (local-use NAT64, RFC 8215): translated inside a network.
    if seg[..3] == [0x64, 0xff9b, 1] {
        return Some("local-use NAT64");
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
    policy: &EgressPolicy,
) -> Result<Vec<SocketAddr>, EgressError> {
    check_url(url, policy)?;
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
    check_all(&addrs, policy, url.host_str().unwrap_or_default())?;
    Ok(addrs)
}

/// The checks that need no lookup: scheme, no credentials in the URL, a host, and the
/// allowlist when the deployment is default-deny. IP-literal hosts are vetted here too.
///
/// # Errors
/// [`EgressError::Url`], [`EgressError::NotListed`], [`EgressError::Denied`].
pub fn check_url(url: &url::Url, policy: &EgressPolicy) -> Result<(), EgressError> {
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(EgressError::Url("the scheme must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EgressError::Url("credentials in the URL are not allowed"));
    }
    let host = url.host_str().ok_or(EgressError::Url("no host"))?;
    if !policy.allow_hosts.is_empty() && !host_listed(host, &policy.allow_hosts) {
        return Err(EgressError::NotListed);
    }
    let port = url
        .port_or_known_default()
        .ok_or(EgressError::Url("no port"))?;
    match url.host() {
        Some(url::Host::Ipv4(ip)) => {
            check_all(&[SocketAddr::new(IpAddr::V4(ip), port)], policy, host)
        }
        Some(url::Host::Ipv6(ip)) => {
            check_all(&[SocketAddr::new(IpAddr::V6(ip), port)], policy, host)
        }
        _ => Ok(()),
    }
}

/// Refuses the whole answer for `host` when any address is denied under `policy` (loopback
/// passes only to a listed loopback port, a listed network only for a listed internal host). Used
/// before sending and by the client's resolver at connect time.
///
/// # Errors
/// [`EgressError::Denied`] naming the kind of the first denied address.
pub fn check_all(
    addrs: &[SocketAddr],
    policy: &EgressPolicy,
    host: &str,
) -> Result<(), EgressError> {
    let internal = host_listed(host, &policy.internal_hosts);
    for addr in addrs {
        let ip = addr.ip();
        let loopback_allowed = policy.allow_loopback.iter().any(|p| p.matches(*addr));
        let listed = internal && policy.allow_networks.iter().any(|n| n.contains(ip));
        if let Some(kind) = denied(ip)
            && !loopback_allowed
            && !listed
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
            ("64:ff9b:1::a00:1", "local-use NAT64"),
            ("::ffff:0:7f00:1", "IPv4-translated"),
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

    async fn vet(url: &str, policy: &EgressPolicy) -> Result<Vec<SocketAddr>, EgressError> {
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
            let got = vet(trick, &policy).await;
            assert!(
                matches!(got, Err(EgressError::Denied(_))),
                "{trick}: {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let got = vet("https://localhost/", &EgressPolicy::default()).await;
        assert_eq!(got, Err(EgressError::Denied("loopback")));
        let local = EgressPolicy {
            allow_loopback: vec!["localhost:8443".parse().unwrap()],
            ..EgressPolicy::default()
        };
        let got = vet("https://localhost:8443/", &local).await.unwrap();
        assert!(
            got.iter().all(|a| a.ip().is_loopback() && a.port() == 8443),
            "{got:?}"
        );
        // Another loopback port is not opened by the listed one.
        assert_eq!(
            vet("https://localhost:8420/", &local).await,
            Err(EgressError::Denied("loopback"))
        );
    }

    #[tokio::test]
    async fn only_listed_loopback_ports_are_reachable() {
        let policy = EgressPolicy {
            allow_loopback: vec!["127.0.0.1:9000".parse().unwrap()],
            ..EgressPolicy::default()
        };
        assert!(vet("https://127.0.0.1:9000/", &policy).await.is_ok());
        assert!(
            vet("https://[::ffff:127.0.0.1]:9000/", &policy)
                .await
                .is_ok()
        );
        for refused in [
            "https://127.0.0.1:8420/",
            "https://127.0.0.1/",
            "https://127.0.0.2:9000/",
            "https://[::1]:9000/",
            "https://10.0.0.1:9000/",
        ] {
            assert!(
                matches!(vet(refused, &policy).await, Err(EgressError::Denied(_))),
                "{refused}"
            );
        }
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "10.0.0.1:9000",
            "0.0.0.0:9000",
            "localhost",
            "localhost:",
            "localhost:+1",
            "localhost:70000",
            "example.com:9000",
            "true",
        ] {
            assert!(bad.parse::<LoopbackPort>().is_err(), "{bad}");
        }
        assert_eq!(
            "[::1]:9000".parse::<LoopbackPort>().unwrap().to_string(),
            "[::1]:9000"
        );
    }

    #[tokio::test]
    async fn scheme_and_credentials_are_checked_first() {
        let policy = EgressPolicy::default();
        assert!(matches!(
            vet("http://8.8.8.8/", &policy).await,
            Err(EgressError::Url(_))
        ));
        assert!(matches!(
            vet("ftp://8.8.8.8/", &policy).await,
            Err(EgressError::Url(_))
        ));
        assert!(matches!(
            vet("https://u:p@8.8.8.8/", &policy).await,
            Err(EgressError::Url(_))
        ));
        let public = vet("https://8.8.8.8/", &policy).await.unwrap();
        assert_eq!(public, vec!["8.8.8.8:443".parse().unwrap()]);
        let http = EgressPolicy {
            allow_http: true,
            ..EgressPolicy::default()
        };
        assert_eq!(
            vet("http://8.8.8.8/", &http).await.unwrap(),
            vec!["8.8.8.8:80".parse().unwrap()]
        );
        assert!(matches!(
            vet("https://no-such-host.invalid/", &policy).await,
            Err(EgressError::Unresolved)
        ));
    }

    #[tokio::test]
    async fn an_allowlist_makes_the_deployment_default_deny() {
        let policy = EgressPolicy {
            allow_hosts: vec![
                "hooks.example.com".into(),
                "*.corp.example".into(),
                "8.8.8.8".into(),
            ],
            ..EgressPolicy::default()
        };
        for refused in [
            "https://example.com/",
            "https://hooks.example.com.evil.test/",
            "https://evilhooks.example.com/",
            "https://corp.example/",
            "https://x.evilcorp.example/",
            "https://1.1.1.1/",
        ] {
            assert_eq!(
                vet(refused, &policy).await,
                Err(EgressError::NotListed),
                "{refused}"
            );
        }
        assert_eq!(
            vet("https://8.8.8.8/", &policy).await.unwrap(),
            vec!["8.8.8.8:443".parse().unwrap()]
        );
        // Listed, but the deny table still decides what a listed name resolves to.
        let local = EgressPolicy {
            allow_hosts: vec!["localhost".into()],
            ..EgressPolicy::default()
        };
        assert_eq!(
            vet("https://localhost/", &local).await,
            Err(EgressError::Denied("loopback"))
        );
        assert!(valid_host_entry("*.corp.example") && valid_host_entry("::1"));
        for bad in [
            "",
            "*.",
            "Hooks.Example.com",
            "a..b",
            "*.10.0.0.1",
            "-a.b",
            "a b",
        ] {
            assert!(!valid_host_entry(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_listed_network_is_the_only_way_into_a_denied_range() {
        let onprem = EgressPolicy {
            allow_networks: vec!["10.20.0.0/16".parse().unwrap()],
            internal_hosts: vec!["10.20.3.4".into(), "::ffff:a14:304".into()],
            ..EgressPolicy::default()
        };
        assert!(vet("https://10.20.3.4/", &onprem).await.is_ok());
        assert!(vet("https://[::ffff:10.20.3.4]/", &onprem).await.is_ok());
        // In the network, but not a listed internal host: refused like any private address.
        assert_eq!(
            vet("https://10.20.9.9/", &onprem).await,
            Err(EgressError::Denied("private"))
        );
        assert_eq!(
            vet("https://10.21.0.1/", &onprem).await,
            Err(EgressError::Denied("private"))
        );
        assert_eq!(
            vet("https://169.254.169.254/", &onprem).await,
            Err(EgressError::Denied("link-local (cloud metadata)"))
        );
        for bad in ["10.0.0.0/33", "10.0.0.0/", "nope", "::1/129", "10.0.0.0/+8"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
        assert_eq!(
            "fd00::/8".parse::<Network>().unwrap().to_string(),
            "fd00::/8"
        );
    }
}
