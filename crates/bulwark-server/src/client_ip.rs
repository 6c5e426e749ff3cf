//! The client's address: the peer's, or, when the peer is a configured trusted proxy, the
//! nearest address in `X-Forwarded-For` that is not one of them.
//!
//! `X-Forwarded-For` is read right to left: each proxy appends the address it received the
//! request from, so entries left of the first untrusted one were written by the client and can
//! say anything. With no trusted proxies configured the header is ignored.

use std::net::IpAddr;

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Parses `ADDR` or `ADDR/PREFIX`; `None` when malformed or the prefix is too long.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is in this block (an IPv4-mapped IPv6 address counts as its IPv4 form).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client address for a request from `peer` carrying `forwarded_for` (every
/// `X-Forwarded-For` value, in order).
#[must_use]
pub fn client_ip<'h>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'h str>,
    trusted: &[Net],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A malformed entry ends the walk: nothing left of it can be trusted to mean anything.
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_match() {
        let ten = Net::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.200.1.2")));
        assert!(ten.contains(ip("::ffff:10.1.1.1")), "IPv4-mapped form");
        assert!(!ten.contains(ip("11.0.0.1")));
        let ula = Net::parse("fd00::/8").unwrap();
        assert!(ula.contains(ip("fd12::1")) && !ula.contains(ip("fe80::1")));
        assert!(Net::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Net::parse("192.0.2.1").unwrap().contains(ip("192.0.2.1")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "x", "", "10.0.0.0/"] {
            assert_eq!(Net::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let trusted = [Net::parse("10.0.0.0/8").unwrap()];
        let peer = ip("10.0.0.5");
        // The client claims to be 127.0.0.1; the proxy appended what it saw.
        let xff = ["127.0.0.1, 203.0.113.7", "10.0.0.9"];
        assert_eq!(
            client_ip(peer, xff.into_iter(), &trusted),
            ip("203.0.113.7")
        );
        // An untrusted peer's header is ignored, whatever it says.
        assert_eq!(
            client_ip(ip("198.51.100.1"), xff.into_iter(), &trusted),
            ip("198.51.100.1")
        );
        // No header, or garbage in it: the last address known to be real.
        assert_eq!(client_ip(peer, std::iter::empty(), &trusted), peer);
        assert_eq!(
            client_ip(peer, ["203.0.113.7, nonsense"].into_iter(), &trusted),
            peer
        );
        // Every hop trusted: the leftmost.
        assert_eq!(
            client_ip(peer, ["10.1.1.1, 10.2.2.2"].into_iter(), &trusted),
            ip("10.1.1.1")
        );
        // Nothing trusted: the header never counts.
        assert_eq!(client_ip(peer, xff.into_iter(), &[]), peer);
    }
}
