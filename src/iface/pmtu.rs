//! The path MTU cache (RFC 1191 §6.3, RFC 8201 §5.2): per destination, the
//! path MTU learned from a validated ICMP "fragmentation needed" / ICMPv6
//! "packet too big", so that new connections to it start at that size.
//!
//! Bounded ([`PmtuConfig::capacity`] entries; when full, expired entries go
//! first, then the one closest to expiry) and aged by the time passed in:
//! an entry is used for [`PmtuConfig::expiry`] (RFC 1191 suggests 10
//! minutes, Linux's `net.ipv4.route.mtu_expires` is 600 s), after which
//! new connections try the link MTU again. Connections keep the MSS they
//! have; a path MTU only grows again for connections opened later.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::time::{Duration, Instant};

/// The IPv6 minimum link MTU (RFC 8200 §5): a "packet too big" reporting
/// less is discarded (RFC 8201 §4).
pub const IPV6_MIN_MTU: usize = 1280;

/// Path MTU discovery settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtuConfig {
    /// How long a learned path MTU is used for new connections.
    pub expiry: Duration,
    /// Most destinations remembered.
    pub capacity: usize,
    /// The smallest IPv4 path MTU believed: a "fragmentation needed"
    /// reporting less is ignored (and counted). RFC 1191 allows down to
    /// 68; 552 is Linux's `net.ipv4.route.min_pmtu`, which keeps a forged
    /// message from cutting segments to a few bytes (RFC 5927 §7). Linux
    /// clamps to it and stops setting DF; the stack keeps DF and ignores
    /// the message. IPv6 uses [`IPV6_MIN_MTU`].
    pub min_ipv4: usize,
}

impl Default for PmtuConfig {
    fn default() -> Self {
        PmtuConfig {
            expiry: Duration::from_secs(600),
            capacity: 4096,
            min_ipv4: 552,
        }
    }
}

impl PmtuConfig {
    /// The floor for a destination's family.
    pub fn floor(&self, ip: IpAddr) -> usize {
        match ip {
            IpAddr::V4(_) => self.min_ipv4,
            IpAddr::V6(_) => IPV6_MIN_MTU,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mtu: usize,
    expires: Instant,
}

/// Learned path MTUs by destination.
#[derive(Debug)]
pub(crate) struct PmtuCache {
    config: PmtuConfig,
    entries: HashMap<IpAddr, Entry>,
}

impl PmtuCache {
    pub fn new(config: PmtuConfig) -> PmtuCache {
        PmtuCache {
            config,
            entries: HashMap::new(),
        }
    }

    /// The path MTU learned for `dst`, if one is still valid at `now`.
    pub fn get(&self, dst: IpAddr, now: Instant) -> Option<usize> {
        self.entries
            .get(&dst)
            .filter(|e| e.expires > now)
            .map(|e| e.mtu)
    }

    /// Records `mtu` for `dst` at `now`. A valid smaller entry stays as it
    /// is (its age too): only news lowers the estimate.
    pub fn insert(&mut self, dst: IpAddr, mtu: usize, now: Instant) {
        if self.config.capacity == 0 {
            return;
        }
        if let Some(e) = self.entries.get(&dst) {
            if e.expires > now && e.mtu <= mtu {
                return;
            }
        } else if self.entries.len() >= self.config.capacity {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.config.capacity {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.entries.remove(&k);
                }
            }
        }
        let expires = now.saturating_add(self.config.expiry);
        self.entries.insert(dst, Entry { mtu, expires });
    }

    /// Entries held (expired ones included until they are pushed out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn entries_expire_and_only_lower_news_replaces_them() {
        let mut c = PmtuCache::new(PmtuConfig::default());
        let t0 = Instant::from_secs(10);
        c.insert(ip(1), 1400, t0);
        assert_eq!(c.get(ip(1), t0), Some(1400));
        assert_eq!(c.get(ip(2), t0), None);
        // Larger news does not raise a valid entry, nor refresh it.
        c.insert(ip(1), 1450, t0 + Duration::from_secs(300));
        assert_eq!(c.get(ip(1), t0 + Duration::from_secs(599)), Some(1400));
        assert_eq!(c.get(ip(1), t0 + Duration::from_secs(600)), None);
        // Smaller news lowers it and restarts its life.
        c.insert(ip(1), 1280, t0 + Duration::from_secs(500));
        assert_eq!(c.get(ip(1), t0 + Duration::from_secs(1099)), Some(1280));
        // Once expired, anything replaces it.
        c.insert(ip(1), 1492, t0 + Duration::from_secs(2000));
        assert_eq!(c.get(ip(1), t0 + Duration::from_secs(2000)), Some(1492));
    }

    #[test]
    fn capacity_is_a_bound_expired_first_then_the_oldest() {
        let mut c = PmtuCache::new(PmtuConfig {
            capacity: 3,
            ..PmtuConfig::default()
        });
        let t0 = Instant::from_secs(1);
        let s = Duration::from_secs(1);
        c.insert(ip(1), 1400, t0);
        c.insert(ip(2), 1400, t0 + s);
        c.insert(ip(3), 1400, t0 + s * 2);
        c.insert(ip(4), 1400, t0 + s * 3);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(ip(1), t0 + s * 3), None, "the oldest went");
        assert_eq!(c.get(ip(4), t0 + s * 3), Some(1400));
        // Later, everything but 4 has expired: all of them go at once.
        let later = t0 + s * 2 + Duration::from_secs(600);
        c.insert(ip(5), 1300, later);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(ip(4), later), Some(1400));
        assert_eq!(c.get(ip(5), later), Some(1300));
        // Updating a known entry never evicts.
        for n in 0..10 {
            c.insert(ip(5), 1200 - n, later);
        }
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn floors_by_family() {
        let c = PmtuConfig::default();
        assert_eq!(c.floor(ip(1)), 552);
        assert_eq!(c.floor("fd00::1".parse().unwrap()), 1280);
    }
}
