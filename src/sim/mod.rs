//! A deterministic network simulator: interfaces joined by simulated links
//! in virtual time, with seeded loss, duplication, reordering, corruption,
//! delay and a rate limit. The same seed gives the same run, frame for
//! frame; thousands of seeds run in seconds.
//!
//! This is the two-host version (a point-to-point link); the congestion
//! control work extends it to shared bottlenecks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;

use crate::iface::Interface;
use crate::link::FrameBatch;
use crate::time::{Duration, Instant};
use crate::wire::{icmpv4, ipv4};

/// Impairments of one direction of a simulated link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra uniform random delay, 0 to this (reorders frames).
    pub jitter: Duration,
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is duplicated.
    pub dup: f64,
    /// Probability a frame has one bit flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bits per second (0: unlimited).
    pub rate_bps: u64,
    /// Bytes that may queue at the bottleneck before tail drop.
    pub queue_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss: 0.0,
            dup: 0.0,
            corrupt: 0.0,
            rate_bps: 0,
            queue_bytes: 1 << 20,
        }
    }
}

/// What happened on a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames offered.
    pub sent: u64,
    /// Frames delivered.
    pub delivered: u64,
    /// Lost at random.
    pub lost: u64,
    /// Duplicated.
    pub duplicated: u64,
    /// Corrupted.
    pub corrupted: u64,
    /// Dropped at a full bottleneck queue.
    pub queue_drops: u64,
    /// Dropped by an [`MtuHop`] for their size.
    pub too_big: u64,
    /// The most frames offered at one instant (a sender's largest burst;
    /// a paced sender keeps it small).
    pub max_burst: u64,
}

/// A router in one direction of the link whose next hop has a smaller MTU
/// (RFC 1191): IPv4 datagrams longer than `mtu` are dropped there (it does
/// not fragment), and those with DF set are answered with an ICMP
/// "fragmentation needed" from `router` to their sender, which arrives one
/// link delay later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuHop {
    /// The next hop's MTU.
    pub mtu: usize,
    /// The router's address (the ICMP message's source).
    pub router: Ipv4Addr,
    /// Report the MTU in the message; false sends 0, as routers older
    /// than RFC 1191 do.
    pub report_mtu: bool,
}

/// A small deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c909)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

#[derive(Debug)]
struct Lane {
    config: LinkConfig,
    stats: LinkStats,
    /// When the bottleneck is free again.
    busy_until: Instant,
    queued_bytes: usize,
    /// Frames offered at `burst_at` so far.
    burst: (Instant, u64),
}

/// A frame on the wire: (deliver at, sequence for a stable order,
/// destination 0 = a / 1 = b, the frame, bytes charged to the queue).
type InFlight = (Instant, u64, u8, Vec<u8>, usize);

/// Two interfaces on a point-to-point link.
pub struct Sim {
    /// Host A.
    pub a: Interface,
    /// Host B.
    pub b: Interface,
    now: Instant,
    rng: Rng,
    lanes: [Lane; 2],
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    batch: FrameBatch,
    /// Drops chosen frames: called with the sending side (0 = a, 1 = b)
    /// and the frame; `true` drops it (counted as lost).
    pub drop_filter: Option<DropFilter>,
    /// Delays chosen frames: called with the sending side and the frame
    /// (after `drop_filter`); `Some(d)` adds `d` to its delivery time
    /// (reordering it behind later frames), `None` leaves it alone.
    pub delay_filter: Option<DelayFilter>,
    /// A smaller-MTU hop per direction (0: from a, 1: from b).
    hops: [Option<MtuHop>; 2],
    /// Super-segments from an interface configured for TSO cross the link
    /// whole (checksum completed), as the kernel hands its own TCP's
    /// super-segments to a TUN with offload (GRO on the receiving side);
    /// off: the link cuts them into MSS-sized segments (TSO on the wire).
    pub whole_super_segments: bool,
}

/// See [`Sim::delay_filter`].
pub type DelayFilter = Box<dyn FnMut(usize, &[u8]) -> Option<Duration>>;

/// See [`Sim::drop_filter`].
pub type DropFilter = Box<dyn FnMut(usize, &[u8]) -> bool>;

impl Sim {
    /// Joins `a` and `b` with `ab` (a to b) and `ba` impairments.
    pub fn new(a: Interface, b: Interface, ab: LinkConfig, ba: LinkConfig, seed: u64) -> Sim {
        let lane = |config| Lane {
            config,
            stats: LinkStats::default(),
            busy_until: Instant::ZERO,
            queued_bytes: 0,
            burst: (Instant::ZERO, 0),
        };
        Sim {
            a,
            b,
            now: Instant::ZERO,
            rng: Rng::new(seed),
            lanes: [lane(ab), lane(ba)],
            in_flight: BinaryHeap::new(),
            seq: 0,
            batch: FrameBatch::new(1024, 65535 + 14),
            drop_filter: None,
            delay_filter: None,
            hops: [None, None],
            whole_super_segments: false,
        }
    }

    /// Puts a router with a smaller next-hop MTU on the way from `from`
    /// (0: a, 1: b), or takes it away (`None`). Effective for frames
    /// offered from now on.
    pub fn set_mtu_hop(&mut self, from: usize, hop: Option<MtuHop>) {
        self.hops[from & 1] = hop;
    }

    /// Frames too big for the hop from `from`: dropped, and answered with
    /// an ICMP "fragmentation needed" when DF is set. True when dropped.
    fn mtu_hop(&mut self, from: usize, frame: &[u8]) -> bool {
        let Some(hop) = self.hops[from] else {
            return false;
        };
        let sender = if from == 0 { &self.a } else { &self.b };
        let link = sender.config().medium.header_len();
        let Some(ip) = frame.get(link..) else {
            return false;
        };
        if ip.len() < ipv4::HEADER_LEN || ip[0] >> 4 != 4 || ip.len() <= hop.mtu {
            return false;
        }
        self.lanes[from].stats.too_big += 1;
        if ip[6] & 0x40 == 0 {
            return true;
        }
        let quote = &ip[..ip.len().min(576 - ipv4::HEADER_LEN - 8)];
        let icmp = icmpv4::Repr::DstUnreachable {
            reason: icmpv4::DstUnreachable::FragRequired,
            next_hop_mtu: if hop.report_mtu { hop.mtu as u16 } else { 0 },
            data: quote,
        };
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let ip_repr = ipv4::Repr {
            src_addr: hop.router,
            dst_addr: src,
            protocol: ipv4::protocol::ICMP,
            payload_len: icmp.buffer_len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        };
        let mut reply = vec![0u8; link + ipv4::HEADER_LEN + icmp.buffer_len()];
        if link > 0 {
            // Back to the sender's MAC, from the one it addressed.
            reply[..6].copy_from_slice(&frame[6..12]);
            reply[6..12].copy_from_slice(&frame[..6]);
            reply[12..14].copy_from_slice(&frame[12..14]);
        }
        ip_repr.emit(&mut ipv4::Packet::new_unchecked(&mut reply[link..]));
        icmp.emit(&mut icmpv4::Packet::new_unchecked(
            &mut reply[link + ipv4::HEADER_LEN..],
        ));
        self.seq += 1;
        let at = self.now + self.lanes[from].config.delay;
        self.in_flight
            .push(Reverse((at, self.seq, from as u8, reply, 0)));
        true
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Link statistics, a to b and b to a.
    pub fn stats(&self) -> (&LinkStats, &LinkStats) {
        (&self.lanes[0].stats, &self.lanes[1].stats)
    }

    /// Frames on the wire now.
    pub fn frames_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn transmit(&mut self, from: usize) {
        self.batch.clear();
        let iface = if from == 0 { &mut self.a } else { &mut self.b };
        iface.poll_transmit(self.now, &mut self.batch);
        let link = iface.config().medium.header_len();
        // An interface configured for offload hands over super-segments and
        // partial checksums: the simulated device does what the kernel does
        // with them (a frame it cannot cut is lost, counted).
        let mut frames: Vec<Vec<u8>> = Vec::with_capacity(self.batch.len());
        for (f, meta) in self.batch.iter_meta() {
            if meta == crate::link::FrameMeta::default() {
                frames.push(f.to_vec());
            } else if self.whole_super_segments {
                let mut f = f.to_vec();
                meta.checksum.complete(&mut f);
                frames.push(f);
            } else if crate::phy::gso::segment(f, link, meta, &mut |s| frames.push(s.to_vec()))
                .is_err()
            {
                self.lanes[from].stats.lost += 1;
            }
        }
        for f in frames {
            self.offer(from, f);
        }
    }

    fn offer(&mut self, from: usize, mut frame: Vec<u8>) {
        let now = self.now;
        let lane = &mut self.lanes[from];
        lane.stats.sent += 1;
        lane.burst = if lane.burst.0 == now {
            (now, lane.burst.1 + 1)
        } else {
            (now, 1)
        };
        lane.stats.max_burst = lane.stats.max_burst.max(lane.burst.1);
        let c = lane.config;
        if self.drop_filter.as_mut().is_some_and(|f| f(from, &frame)) {
            lane.stats.lost += 1;
            return;
        }
        if self.mtu_hop(from, &frame) {
            return;
        }
        let lane = &mut self.lanes[from];
        if self.rng.chance(c.loss) {
            lane.stats.lost += 1;
            return;
        }
        let extra = self
            .delay_filter
            .as_mut()
            .and_then(|f| f(from, &frame))
            .unwrap_or(Duration::ZERO);
        let copies = if self.rng.chance(c.dup) {
            lane.stats.duplicated += 1;
            2
        } else {
            1
        };
        if self.rng.chance(c.corrupt) && !frame.is_empty() {
            lane.stats.corrupted += 1;
            let i = self.rng.below(frame.len() as u64) as usize;
            frame[i] ^= 1 << self.rng.below(8);
        }
        for _ in 0..copies {
            let mut at = now;
            let mut charged = 0;
            if let Some(ns) = (frame.len() as u64 * 8 * 1_000_000_000).checked_div(c.rate_bps) {
                if lane.queued_bytes + frame.len() > c.queue_bytes {
                    lane.stats.queue_drops += 1;
                    continue;
                }
                let tx = Duration::from_nanos(ns);
                let start = lane.busy_until.max(now);
                lane.busy_until = start + tx;
                at = lane.busy_until;
                lane.queued_bytes += frame.len();
                charged = frame.len();
            }
            at += c.delay + extra;
            if c.jitter > Duration::ZERO {
                at += Duration::from_micros(self.rng.below(c.jitter.as_micros() as u64 + 1));
            }
            self.seq += 1;
            self.in_flight.push(Reverse((
                at,
                self.seq,
                (1 - from) as u8,
                frame.clone(),
                charged,
            )));
        }
    }

    /// Runs until `until` (virtual), or until nothing is left to do.
    /// Returns the time reached.
    pub fn run_until(&mut self, until: Instant) -> Instant {
        self.run_while(until, |_| true)
    }

    /// Runs while `cond` holds, at most until `until`.
    pub fn run_while(&mut self, until: Instant, mut cond: impl FnMut(&mut Sim) -> bool) -> Instant {
        let mut guard = 0u64;
        let mut stuck = 0u32;
        loop {
            guard += 1;
            if guard > 50_000_000 {
                break; // a bug; never spin forever
            }
            self.transmit(0);
            self.transmit(1);
            if !cond(self) {
                break;
            }
            // Next event: a delivery or a deadline of either host.
            let next_delivery = self.in_flight.peek().map(|Reverse(e)| e.0);
            let next = [next_delivery, self.a.poll_at(), self.b.poll_at()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else { break };
            let next = next.max(self.now);
            // A deadline that stays in the past while nothing moves is a
            // stack that would spin a real runtime: fail loudly.
            if next == self.now && next_delivery.is_none_or(|d| d > self.now) {
                stuck += 1;
                assert!(
                    stuck < 100_000,
                    "sim: a host's poll_at stays at {:?} without progress (a: {:?}, b: {:?})",
                    self.now,
                    self.a.poll_at(),
                    self.b.poll_at()
                );
            } else {
                stuck = 0;
            }
            if next > until {
                self.now = until;
                break;
            }
            self.now = next;
            while let Some(Reverse(e)) = self.in_flight.peek() {
                if e.0 > self.now {
                    break;
                }
                let Reverse((_, _, to, frame, charged)) = self.in_flight.pop().expect("peeked");
                let lane = &mut self.lanes[1 - to as usize];
                lane.queued_bytes -= charged;
                lane.stats.delivered += 1;
                if to == 0 {
                    self.a.handle_frame(self.now, &frame);
                } else {
                    self.b.handle_frame(self.now, &frame);
                }
            }
        }
        self.now
    }

    /// Advances time by `d`, running everything due.
    pub fn advance(&mut self, d: Duration) -> Instant {
        let until = self.now + d;
        self.run_until(until)
    }

    /// Runs until `until`, and lets the clock reach it even when nothing
    /// is left to do earlier (caches and tables age meanwhile).
    pub fn idle_until(&mut self, until: Instant) -> Instant {
        self.run_until(until);
        self.now = self.now.max(until);
        self.now
    }
}
