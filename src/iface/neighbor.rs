//! The ARP neighbour cache and the queue of packets awaiting resolution.
//!
//! Both are bounded: the cache by entry count (oldest evicted), the pending
//! queue by neighbours and by packets per neighbour. Packets that cannot be
//! queued, or whose neighbour never answers, are dropped and counted by the
//! interface.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::Ipv4Addr;

use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;

/// Limits and timers of the neighbour cache.
#[derive(Debug, Clone, Copy)]
pub struct NeighborConfig {
    /// How long a learned entry stays valid (Linux: 30 s reachable plus
    /// stale time; 60 s is a fair middle).
    pub lifetime: Duration,
    /// Entries kept at most; the oldest is evicted beyond that.
    pub max_entries: usize,
    /// Neighbours that may have packets waiting at once.
    pub max_pending_neighbors: usize,
    /// Packets that may wait for one neighbour.
    pub max_pending_packets: usize,
    /// Interval between ARP requests for an unresolved neighbour.
    pub retry_interval: Duration,
    /// Requests sent before the waiting packets are dropped.
    pub max_requests: u8,
}

impl Default for NeighborConfig {
    fn default() -> Self {
        NeighborConfig {
            lifetime: Duration::from_secs(60),
            max_entries: 1024,
            max_pending_neighbors: 64,
            max_pending_packets: 64,
            retry_interval: Duration::from_secs(1),
            max_requests: 3,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    hardware_addr: EthernetAddress,
    expires_at: Instant,
}

#[derive(Debug)]
struct Pending {
    packets: VecDeque<Vec<u8>>,
    next_request_at: Instant,
    requests_sent: u8,
}

/// What the interface should do about an unresolved neighbour.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolve {
    /// The address is known.
    Known(EthernetAddress),
    /// Unknown: the packet was queued (or dropped, see the bool), and a
    /// request should be sent now when `send_request` is true.
    Queued {
        /// Send an ARP request now.
        send_request: bool,
        /// The packet was dropped for lack of room.
        dropped: bool,
    },
}

/// The neighbour cache, keyed by IPv4 (ARP) or IPv6 (neighbour discovery)
/// addresses.
#[derive(Debug)]
pub struct NeighborCache<A = Ipv4Addr> {
    config: NeighborConfig,
    entries: HashMap<A, Entry>,
    pending: HashMap<A, Pending>,
}

impl<A: Copy + Eq + Hash> NeighborCache<A> {
    /// An empty cache.
    pub fn new(config: NeighborConfig) -> NeighborCache<A> {
        NeighborCache {
            config,
            entries: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// The hardware address of `ip`, if known and fresh.
    pub fn lookup(&self, ip: A, now: Instant) -> Option<EthernetAddress> {
        self.entries
            .get(&ip)
            .filter(|e| e.expires_at > now)
            .map(|e| e.hardware_addr)
    }

    /// Records `ip` at `hw`; returns the packets that were waiting for it.
    pub fn fill(&mut self, ip: A, hw: EthernetAddress, now: Instant) -> Vec<Vec<u8>> {
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.config.max_entries {
            // Evict the entry closest to expiry (the oldest learned).
            if let Some(old) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.expires_at)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&old);
            }
        }
        self.entries.insert(
            ip,
            Entry {
                hardware_addr: hw,
                expires_at: now + self.config.lifetime,
            },
        );
        self.pending
            .remove(&ip)
            .map(|p| p.packets.into())
            .unwrap_or_default()
    }

    /// Learns `ip` at `hw` from a datagram it sent us, only when nothing is
    /// known of it yet (a cached or answered entry is never overridden by a
    /// mere datagram, which anyone can forge) and the cache has room (no
    /// eviction on this path). Returns the packets that were waiting.
    pub fn learn(&mut self, ip: A, hw: EthernetAddress, now: Instant) -> Vec<Vec<u8>> {
        if self.lookup(ip, now).is_some() || self.entries.len() >= self.config.max_entries {
            return Vec::new();
        }
        self.fill(ip, hw, now)
    }

    /// Updates `ip` only when it is already cached (RFC 826's merge step for
    /// packets not addressed to us).
    pub fn refresh(&mut self, ip: A, hw: EthernetAddress, now: Instant) -> bool {
        match self.entries.get_mut(&ip) {
            Some(e) => {
                e.hardware_addr = hw;
                e.expires_at = now + self.config.lifetime;
                true
            }
            None => false,
        }
    }

    /// Looks `ip` up; when unknown, queues `packet` (built by the closure only
    /// when there is room) to wait for the answer.
    pub fn resolve_or_queue(
        &mut self,
        ip: A,
        now: Instant,
        packet: impl FnOnce() -> Vec<u8>,
    ) -> Resolve {
        if let Some(hw) = self.lookup(ip, now) {
            return Resolve::Known(hw);
        }
        let cfg = self.config;
        if !self.pending.contains_key(&ip) && self.pending.len() >= cfg.max_pending_neighbors {
            return Resolve::Queued {
                send_request: false,
                dropped: true,
            };
        }
        let p = self.pending.entry(ip).or_insert_with(|| Pending {
            packets: VecDeque::new(),
            next_request_at: now,
            requests_sent: 0,
        });
        let dropped = if p.packets.len() >= cfg.max_pending_packets {
            true
        } else {
            p.packets.push_back(packet());
            false
        };
        let send_request = p.requests_sent == 0 && p.next_request_at <= now;
        if send_request {
            p.requests_sent = 1;
            p.next_request_at = now + cfg.retry_interval;
        }
        Resolve::Queued {
            send_request,
            dropped,
        }
    }

    /// Timer work at `now`: returns the neighbours to send another request
    /// to, and the number of packets dropped because their neighbour never
    /// answered.
    pub fn poll(&mut self, now: Instant, requests: &mut Vec<A>) -> usize {
        let cfg = self.config;
        let mut dropped = 0;
        self.pending.retain(|ip, p| {
            if p.next_request_at > now {
                return true;
            }
            if p.requests_sent >= cfg.max_requests {
                dropped += p.packets.len();
                return false;
            }
            p.requests_sent += 1;
            p.next_request_at = now + cfg.retry_interval;
            requests.push(*ip);
            true
        });
        dropped
    }

    /// The earliest time [`NeighborCache::poll`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.next_request_at).min()
    }

    /// Cached entries (fresh or not yet purged).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Packets waiting for resolution, all neighbours together.
    pub fn pending_packets(&self) -> usize {
        self.pending.values().map(|p| p.packets.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const HW: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    #[test]
    fn queue_then_fill_releases_packets() {
        let mut c = NeighborCache::new(NeighborConfig::default());
        let t = Instant::from_secs(1);
        assert_eq!(
            c.resolve_or_queue(IP, t, || vec![1]),
            Resolve::Queued {
                send_request: true,
                dropped: false
            }
        );
        assert_eq!(
            c.resolve_or_queue(IP, t, || vec![2]),
            Resolve::Queued {
                send_request: false,
                dropped: false
            }
        );
        assert_eq!(c.fill(IP, HW, t), vec![vec![1], vec![2]]);
        assert_eq!(c.resolve_or_queue(IP, t, Vec::new), Resolve::Known(HW));
        assert_eq!(c.lookup(IP, t + Duration::from_secs(61)), None);
    }

    #[test]
    fn pending_is_bounded_and_expires() {
        let cfg = NeighborConfig {
            max_pending_packets: 2,
            ..Default::default()
        };
        let mut c = NeighborCache::new(cfg);
        let t = Instant::from_secs(1);
        for _ in 0..2 {
            c.resolve_or_queue(IP, t, Vec::new);
        }
        assert_eq!(
            c.resolve_or_queue(IP, t, Vec::new),
            Resolve::Queued {
                send_request: false,
                dropped: true
            }
        );
        let mut reqs = Vec::new();
        let mut now = t;
        let mut dropped = 0;
        for _ in 0..5 {
            now += Duration::from_secs(1);
            dropped += c.poll(now, &mut reqs);
        }
        assert_eq!(reqs.len(), 2, "two retries after the first request");
        assert_eq!(dropped, 2);
        assert_eq!(c.pending_packets(), 0);
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn cache_is_bounded() {
        let cfg = NeighborConfig {
            max_entries: 4,
            ..Default::default()
        };
        let mut c = NeighborCache::new(cfg);
        for i in 0..10u8 {
            c.fill(Ipv4Addr::new(10, 0, 0, i), HW, Instant::from_secs(i as u64));
        }
        assert_eq!(c.len(), 4);
        assert!(c
            .lookup(Ipv4Addr::new(10, 0, 0, 9), Instant::from_secs(9))
            .is_some());
    }
}
