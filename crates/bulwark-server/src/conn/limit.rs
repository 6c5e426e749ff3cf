//! How many connections may be open at once: in all, and from one client address.
//!
//! A connection over either limit is closed as soon as it is accepted, before any byte is read
//! (for TLS, before the handshake), so refused connections cost a file descriptor for
//! microseconds. Each refusal is counted; a warning names the limit at most once per
//! [`WARN_EVERY`] with the number refused since the last one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::client_ip::Net;

/// The shortest interval between two warnings about the same limit.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where connections from one client are counted: an IPv4 address, or the /64 network of an
/// IPv6 address (one host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4([u8; 4]),
    V6Net([u8; 8]),
}

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut net = [0u8; 8];
                for (d, s) in net.iter_mut().zip(v6.octets()) {
                    *d = s;
                }
                Self::V6Net(net)
            }
        }
    }
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `http.max_connections` open connections in all.
    Total,
    /// `http.max_connections_per_ip` open connections from this client.
    PerClient,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

#[derive(Default)]
struct Warned {
    last: Option<Instant>,
    suppressed: u64,
}

/// The connection counter shared by the accept loop and every open connection.
pub struct Limiter {
    max_total: usize,
    max_per_client: usize,
    exempt: Vec<Net>,
    counts: Mutex<Counts>,
    warned_total: Mutex<Warned>,
    warned_client: Mutex<Warned>,
    warned_accept: Mutex<Warned>,
}

/// One open connection; dropping it (when the connection ends) frees its place.
pub struct Permit {
    limiter: Arc<Limiter>,
    key: Option<ClientKey>,
}

impl Limiter {
    /// A limiter with these maxima; connections from `exempt` networks (trusted reverse proxies,
    /// which carry many clients) count toward the total only.
    #[must_use]
    pub fn new(max_total: usize, max_per_client: usize, exempt: Vec<Net>) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_client,
            exempt,
            counts: Mutex::default(),
            warned_total: Mutex::default(),
            warned_client: Mutex::default(),
            warned_accept: Mutex::default(),
        })
    }

    /// Takes a place for a connection from `peer`, or says which limit is reached (and warns,
    /// rate-limited).
    ///
    /// # Errors
    /// When a limit is reached.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refused> {
        let key = (!self.exempt.iter().any(|n| n.contains(peer))).then(|| ClientKey::of(peer));
        let refused = {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            let of_client = key.map_or(0, |k| counts.per_client.get(&k).copied().unwrap_or(0));
            if counts.total >= self.max_total {
                Some((Refused::Total, counts.total))
            } else if key.is_some() && of_client >= self.max_per_client {
                Some((Refused::PerClient, of_client))
            } else {
                counts.total += 1;
                if let Some(k) = key {
                    *counts.per_client.entry(k).or_insert(0) += 1;
                }
                None
            }
        };
        match refused {
            None => Ok(Permit {
                limiter: self.clone(),
                key,
            }),
            Some((which, open)) => {
                self.warn(which, peer, open);
                Err(which)
            }
        }
    }

    /// Open connections in all (for tests and diagnostics).
    #[must_use]
    pub fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// Reports that the listener could not accept a connection (typically the open-file limit:
    /// `EMFILE`), rate-limited like the limit warnings.
    pub fn accept_failed(&self, error: &std::io::Error) {
        if let Some(failed) = due(&self.warned_accept) {
            tracing::warn!(
                error = %error,
                failed,
                open = self.open(),
                "cannot accept connections; check the open-file limit (ulimit -n, LimitNOFILE) against http.max_connections"
            );
        }
    }

    fn warn(&self, which: Refused, peer: IpAddr, open: usize) {
        let slot = match which {
            Refused::Total => &self.warned_total,
            Refused::PerClient => &self.warned_client,
        };
        let Some(refused) = due(slot) else { return };
        match which {
            Refused::Total => tracing::warn!(
                limit = "http.max_connections",
                max = self.max_total,
                open,
                refused,
                "connection limit reached: new connections are being closed"
            ),
            Refused::PerClient => tracing::warn!(
                limit = "http.max_connections_per_ip",
                max = self.max_per_client,
                open,
                client = %peer,
                refused,
                "per-client connection limit reached: new connections from this client are being closed"
            ),
        }
    }
}

/// Whether a warning is due now; if so, how many events it covers (this one and those
/// suppressed since the last warning).
fn due(slot: &Mutex<Warned>) -> Option<u64> {
    let mut w = slot.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    if w.last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
        w.suppressed += 1;
        return None;
    }
    w.last = Some(now);
    Some(std::mem::take(&mut w.suppressed) + 1)
}

/// Warns at start-up when `http.max_connections` does not fit under the process's open-file
/// limit (read from `/proc/self/limits` where there is one), leaving room for the database
/// pool, log and data files.
pub fn check_file_limit(max_connections: usize) {
    const HEADROOM: u64 = 128;
    let Some(soft) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| open_files_soft_limit(&text))
    else {
        return;
    };
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(HEADROOM);
    if wanted > soft {
        tracing::warn!(
            max_connections,
            open_file_limit = soft,
            "http.max_connections does not fit under the open-file limit: raise the limit (ulimit -n, systemd LimitNOFILE) to at least {wanted}, or lower http.max_connections"
        );
    }
}

/// The soft "Max open files" of a `/proc/<pid>/limits` text; `None` when unlimited or absent.
fn open_files_soft_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(k) = self.key
            && let Some(n) = counts.per_client.get_mut(&k)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_client.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_per_client_and_in_all_and_frees_places_on_drop() {
        let l = Limiter::new(3, 2, vec![Net::parse("10.0.0.0/8").unwrap()]);
        let a1 = l.admit(ip("192.0.2.1")).unwrap();
        let _a2 = l.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(l.admit(ip("192.0.2.1")).err(), Some(Refused::PerClient));
        // The IPv4-mapped form is the same client.
        assert_eq!(
            l.admit(ip("::ffff:192.0.2.1")).err(),
            Some(Refused::PerClient)
        );
        let _b = l.admit(ip("10.1.2.3")).unwrap();
        assert_eq!(l.admit(ip("10.1.2.4")).err(), Some(Refused::Total));
        drop(a1);
        assert_eq!(l.open(), 2);
        let _a3 = l.admit(ip("192.0.2.1")).unwrap();
    }

    #[test]
    fn the_open_file_limit_is_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\nMax cpu time              unlimited            unlimited            seconds\nMax open files            1024                 524288               files\n";
        assert_eq!(open_files_soft_limit(text), Some(1024));
        assert_eq!(
            open_files_soft_limit("Max open files  unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn a_trusted_proxy_is_not_capped_per_client_and_ipv6_counts_per_64() {
        let l = Limiter::new(100, 1, vec![Net::parse("10.0.0.1").unwrap()]);
        let _p: Vec<Permit> = (0..5).map(|_| l.admit(ip("10.0.0.1")).unwrap()).collect();
        let _v6 = l.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            l.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refused::PerClient)
        );
        let _other = l.admit(ip("2001:db8:1:3::1")).unwrap();
    }
}
