//! A deterministic network simulator: two interfaces joined by a simulated
//! point-to-point link in virtual time, with seeded loss, duplication,
//! reordering, corruption, delay and a rate-limited bottleneck queue per
//! direction (the impairment engine of [`crate::link::impair`], one
//! [`Lane`] per direction, each with its own stream of the seed). The
//! same seed gives the same run, frame for frame; thousands of seeds run in
//! seconds.
//!
//! The bottleneck of a direction is shared by whatever crosses it (several
//! connections of the two hosts compete there, as the congestion control
//! tests do); a topology with more than two hosts is not modelled.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;

use crate::iface::Interface;
use crate::link::impair::{Discipline, ImpairSpec, Lane};
use crate::link::FrameBatch;
pub use crate::link::Rng;
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
    /// Probability a frame has one bit flipped (on Ethernet, outside the
    /// link header, where a checksum notices).
    pub corrupt: f64,
    /// Bottleneck rate in bits per second (0: unlimited).
    pub rate_bps: u64,
    /// Bytes the bottleneck holds before tail drop, counted from a frame's
    /// entry until its delivery (so the propagation delay's bytes count
    /// too); only with a `rate_bps`.
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

impl LinkConfig {
    /// The impairment engine's spec for this direction.
    fn spec(&self) -> ImpairSpec {
        let rate = (self.rate_bps > 0).then_some(self.rate_bps);
        ImpairSpec {
            delay: self.delay,
            jitter: self.jitter,
            loss: self.loss,
            dup: self.dup,
            corrupt: self.corrupt,
            rate_bps: rate,
            queue_bytes: rate.map(|_| self.queue_bytes),
            limit: usize::MAX,
            ..ImpairSpec::default()
        }
    }
}

/// One direction of the link: the engine's lane and what the simulator
/// counts around it.
#[derive(Debug)]
struct Side {
    config: LinkConfig,
    lane: Lane,
    /// The lane's counters merged with the simulator's own.
    stats: LinkStats,
    /// Lost before the lane: by `drop_filter`, or a super-segment that
    /// could not be cut.
    lost_outside: u64,
    /// Frames offered at `burst.0` so far.
    burst: (Instant, u64),
}

impl Side {
    /// Direction `stream` (0: a to b, 1: b to a) of a link whose frames
    /// carry `link_hdr` bytes of link header.
    fn new(config: LinkConfig, link_hdr: usize, seed: u64, stream: u64) -> Side {
        let rng = Rng::with_stream(seed, stream);
        Side {
            config,
            lane: Lane::new(config.spec(), link_hdr, rng, Discipline::Wire),
            stats: LinkStats::default(),
            lost_outside: 0,
            burst: (Instant::ZERO, 0),
        }
    }

    /// Brings `stats` up to date with the lane's counters.
    fn sync(&mut self) {
        let l = self.lane.stats();
        self.stats.delivered = l.passed;
        self.stats.lost = l.lost + self.lost_outside;
        self.stats.duplicated = l.duplicated;
        self.stats.corrupted = l.corrupted;
        self.stats.queue_drops = l.queue_dropped;
    }
}

/// An ICMP message from an [`MtuHop`] on its way back: (deliver at,
/// sequence for a stable order, destination 0 = a / 1 = b, the frame).
type Reply = (Instant, u64, u8, Vec<u8>);

/// Two interfaces on a point-to-point link.
pub struct Sim {
    /// Host A.
    pub a: Interface,
    /// Host B.
    pub b: Interface,
    now: Instant,
    /// Per direction: 0 from a to b, 1 from b to a.
    sides: [Side; 2],
    replies: BinaryHeap<Reverse<Reply>>,
    seq: u64,
    batch: FrameBatch,
    /// Drops chosen frames: called with the sending side (0 = a, 1 = b)
    /// and the frame; `true` drops it (counted as lost).
    pub drop_filter: Option<DropFilter>,
    /// Delays chosen frames: called with the sending side and the frame
    /// (after `drop_filter` and the MTU hop, before random loss); `Some(d)`
    /// adds `d` to its delivery time (reordering it behind later frames),
    /// `None` leaves it alone.
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
        let sides = [
            Side::new(ab, a.config().medium.header_len(), seed, 0),
            Side::new(ba, b.config().medium.header_len(), seed, 1),
        ];
        Sim {
            a,
            b,
            now: Instant::ZERO,
            sides,
            replies: BinaryHeap::new(),
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
        self.sides[from].stats.too_big += 1;
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
        let at = self.now + self.sides[from].config.delay;
        self.replies
            .push(Reverse((at, self.seq, from as u8, reply)));
        true
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Link statistics, a to b and b to a.
    pub fn stats(&self) -> (&LinkStats, &LinkStats) {
        (&self.sides[0].stats, &self.sides[1].stats)
    }

    /// Frames on the wire now.
    pub fn frames_in_flight(&self) -> usize {
        self.replies.len() + self.sides[0].lane.frames_held() + self.sides[1].lane.frames_held()
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
                self.sides[from].lost_outside += 1;
            }
        }
        for f in frames {
            self.offer(from, &f);
        }
        self.sides[from].sync();
    }

    fn offer(&mut self, from: usize, frame: &[u8]) {
        let now = self.now;
        let side = &mut self.sides[from];
        side.stats.sent += 1;
        side.burst = if side.burst.0 == now {
            (now, side.burst.1 + 1)
        } else {
            (now, 1)
        };
        side.stats.max_burst = side.stats.max_burst.max(side.burst.1);
        if self.drop_filter.as_mut().is_some_and(|f| f(from, frame)) {
            self.sides[from].lost_outside += 1;
            return;
        }
        if self.mtu_hop(from, frame) {
            return;
        }
        let extra = self
            .delay_filter
            .as_mut()
            .and_then(|f| f(from, frame))
            .unwrap_or(Duration::ZERO);
        self.sides[from].lane.offer(now, frame, extra);
    }

    /// When the next frame arrives anywhere: (time, 0/1 the lane from a/b,
    /// 2 an ICMP reply).
    fn next_arrival(&self) -> Option<(Instant, usize)> {
        let reply = self.replies.peek().map(|Reverse(r)| (r.0, 2));
        let lanes = (0..2).filter_map(|i| self.sides[i].lane.next_release().map(|t| (t, i)));
        reply.into_iter().chain(lanes).min()
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
            let next_delivery = self.next_arrival().map(|(t, _)| t);
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
            while let Some((at, src)) = self.next_arrival() {
                if at > self.now {
                    break;
                }
                let (to, frame) = if src == 2 {
                    let Reverse((_, _, to, frame)) = self.replies.pop().expect("peeked");
                    (to as usize, frame)
                } else {
                    let side = &mut self.sides[src];
                    let frame = side.lane.pop_due(self.now).expect("due");
                    side.sync();
                    (1 - src, frame)
                };
                if to == 0 {
                    self.a.handle_frame(self.now, &frame);
                } else {
                    self.b.handle_frame(self.now, &frame);
                }
                if src < 2 {
                    self.sides[src].lane.recycle(frame);
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
