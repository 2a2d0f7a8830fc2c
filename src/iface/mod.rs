//! The interface: link and network layers of the sans-IO core.
//!
//! An [`Interface`] takes frames ([`Interface::handle_frame`]), produces
//! frames ([`Interface::poll_transmit`]) and says when it next needs to be
//! called ([`Interface::poll_at`]); time is always an argument. It validates
//! IPv4, reassembles fragments (bounded), answers ARP and ICMP echo, sends
//! rate-limited ICMP errors, keeps the path MTU cache (`pmtu`),
//! demultiplexes to sockets and counts every drop.

/// A `trace` event for a dropped frame, segment or datagram, next to the
/// counter that counts it (free when no subscriber listens at that level).
macro_rules! trace_drop {
    ($reason:expr) => {
        tracing::trace!(target: "ustack::drop", reason = $reason, "dropped")
    };
}

mod counters;
mod icmp;
mod ipv6;
mod neighbor;
mod pmtu;
mod reassembly;
mod table;
mod tcp;
mod udp;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

pub use counters::{Counters, IcmpCounters, IpCounters, LinkCounters, UdpCounters};
pub use icmp::IcmpRateLimit;
pub use ipv6::{IpCidr, Ipv6Cidr};
pub use neighbor::NeighborConfig;
use neighbor::{NeighborCache, Resolve};
pub use pmtu::{PmtuConfig, IPV6_MIN_MTU};
pub use reassembly::ReassemblyConfig;
use reassembly::{Outcome, Reassembler, Reject};
pub use table::SocketRow;
pub use tcp::TcpCounters;

use crate::link::{Checksum, FrameBatch, FrameMeta, Medium, Offload, Rng, GSO_MAX_PACKET};
use crate::socket::{SocketHandle, SocketSet};
use crate::time::Instant;
use crate::udp::UdpConfig;
use crate::wire::{arp, ethernet, ipv4, EthernetAddress};

/// An IPv4 address with its prefix length, e.g. `10.0.0.2/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// `addr/prefix_len`; `None` when the prefix is longer than 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Cidr> {
        (prefix_len <= 32).then_some(Ipv4Cidr { addr, prefix_len })
    }

    /// The netmask as a number.
    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }

    /// True when `ip` is in this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// The subnet's directed broadcast address (none for /31 and /32).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len < 31).then(|| Ipv4Addr::from(u32::from(self.addr) | !self.mask()))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not ADDRESS/PREFIX (e.g. 10.0.0.2/24)"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
        let prefix_len: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("'{p}' is not a prefix length from 0 to 32"))?;
        Ok(Ipv4Cidr { addr, prefix_len })
    }
}

/// Settings of an interface.
#[derive(Debug, Clone)]
pub struct Config {
    /// Ethernet or bare IP.
    pub medium: Medium,
    /// The stack's MAC on Ethernet media.
    pub hardware_addr: Option<EthernetAddress>,
    /// Largest IP packet on the link.
    pub mtu: usize,
    /// The interface's addresses and their on-link subnets.
    pub addrs: Vec<Ipv4Cidr>,
    /// Where off-link traffic goes.
    pub gateway: Option<Ipv4Addr>,
    /// Sockets bound to `[::]` take IPv6 only (Linux's
    /// `net.ipv6.bindv6only=1`; `IPV6_V6ONLY`), the default here so that
    /// `0.0.0.0` and `[::]` can share a port. When false, a `[::]` TCP
    /// listener or UDP socket also takes IPv4, and reports its peers as
    /// IPv4-mapped addresses (`::ffff:a.b.c.d`), as `std::net` on Linux
    /// does by default; a `0.0.0.0` socket on the same port then conflicts.
    pub bind_v6_only: bool,
    /// The interface's IPv6 addresses and their on-link prefixes (on
    /// Ethernet a link-local address derived from the MAC is added).
    pub addrs_v6: Vec<Ipv6Cidr>,
    /// TTL of datagrams the stack originates (Linux: 64).
    pub ttl: u8,
    /// Neighbour cache limits.
    pub neighbor: NeighborConfig,
    /// Fragment reassembly limits.
    pub reassembly: ReassemblyConfig,
    /// UDP socket buffer defaults.
    pub udp: UdpConfig,
    /// TCP settings for new sockets.
    pub tcp: crate::tcp::TcpConfig,
    /// ICMP error rate limit.
    pub icmp_rate: IcmpRateLimit,
    /// Path MTU discovery: floor, cache size and expiry.
    pub pmtu: PmtuConfig,
    /// Frames the interface holds for transmission before dropping.
    pub tx_queue_frames: usize,
    /// Ephemeral port range, inclusive (Linux: 32768–60999).
    pub ephemeral_ports: (u16, u16),
    /// Send a gratuitous ARP for each address at start (Ethernet media).
    pub announce: bool,
    /// Seed of the core's randomness (ephemeral ports, IP identification).
    pub seed: u64,
    /// What the device does for the stack, from
    /// [`crate::link::DeviceCaps::offload`] (the tools and
    /// [`crate::stack::StackBuilder`] copy it): with `tso`, TCP hands the
    /// device super-segments of up to 64 KiB; with `tx_checksum`, it leaves
    /// TCP checksums to the device. Received frames say for themselves
    /// whether their checksum needs verifying ([`Interface::handle_frame_meta`]).
    pub offload: Offload,
}

impl Config {
    /// Defaults for a device: its medium, MTU, offloads and (Ethernet) MAC
    /// address, with no IP address yet. Prefer this to [`Config::new`]
    /// when a device is at hand: an interface that does not know the
    /// device offloads TCP segmentation sends one segment per frame.
    pub fn for_device(caps: crate::link::DeviceCaps) -> Config {
        let mut c = Config::new(caps.medium);
        c.mtu = caps.mtu;
        c.offload = caps.offload;
        c.hardware_addr = caps.hardware_addr;
        c
    }

    /// Checks what a caller may get wrong and the stack would otherwise
    /// take silently: a gateway outside every configured IPv4 subnet (or
    /// one of the stack's own addresses, or a subnet's broadcast address),
    /// which no frame could ever reach, and a MAC address that is not
    /// unicast (broadcast, multicast or all zeros), which the link would
    /// not deliver back. The error is `InvalidInput` with one line saying
    /// which. [`crate::stack::StackBuilder::build`] calls it; embedders of
    /// the poll API should call it before [`Interface::new`].
    pub fn validate(&self) -> std::io::Result<()> {
        self.validate_as("gateway", "MAC address")
    }

    /// [`Config::validate`], naming the gateway and the MAC address as
    /// `gateway` and `mac` in the message (the tools name their flags).
    pub(crate) fn validate_as(&self, gateway: &str, mac: &str) -> std::io::Result<()> {
        let bad = |msg: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
        if let Some(hw) = self.hardware_addr {
            if !hw.is_unicast() {
                let what = if hw.is_broadcast() {
                    "the broadcast address"
                } else if hw.is_multicast() {
                    "a multicast address (the low bit of the first byte is set)"
                } else {
                    "all zeros"
                };
                return bad(format!(
                    "{mac} {hw} is {what}: the stack needs a unicast MAC, e.g. 02:00:00:00:00:01"
                ));
            }
        }
        if let Some(gw) = self.gateway {
            let subnets = || {
                self.addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if gw.is_unspecified() || gw.is_broadcast() || gw.is_multicast() {
                return bad(format!("{gateway} {gw} is not a unicast address"));
            }
            if self.addrs.is_empty() {
                return bad(format!(
                    "{gateway} {gw} needs an IPv4 address whose subnet holds it (there is none)"
                ));
            }
            if self.addrs.iter().any(|a| a.addr == gw) {
                return bad(format!("{gateway} {gw} is the stack's own address"));
            }
            if let Some(a) = self.addrs.iter().find(|a| a.broadcast() == Some(gw)) {
                return bad(format!("{gateway} {gw} is the broadcast address of {a}"));
            }
            if let Some(a) = self
                .addrs
                .iter()
                .find(|a| a.prefix_len < 31 && u32::from(gw) == u32::from(a.addr) & a.mask())
            {
                return bad(format!(
                    "{gateway} {gw} is the network address of {a}, not a host"
                ));
            }
            if !self.addrs.iter().any(|a| a.contains(gw)) {
                return bad(format!(
                    "{gateway} {gw} is outside every configured subnet ({}): it could never be reached",
                    subnets()
                ));
            }
        }
        Ok(())
    }

    /// Defaults for a medium, with no address yet.
    pub fn new(medium: Medium) -> Config {
        Config {
            medium,
            hardware_addr: None,
            mtu: 1500,
            addrs: Vec::new(),
            gateway: None,
            addrs_v6: Vec::new(),
            bind_v6_only: true,
            ttl: 64,
            neighbor: NeighborConfig::default(),
            reassembly: ReassemblyConfig::default(),
            udp: UdpConfig::default(),
            tcp: crate::tcp::TcpConfig::default(),
            icmp_rate: IcmpRateLimit::default(),
            pmtu: PmtuConfig::default(),
            tx_queue_frames: 1024,
            ephemeral_ports: (32768, 60999),
            announce: true,
            seed: 0x5eed,
            offload: Offload::default(),
        }
    }
}

/// Where a datagram goes on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NextHop {
    Unicast(Ipv4Addr),
    Broadcast,
}

/// The link and network layers of one interface, with its sockets.
#[derive(Debug)]
pub struct Interface {
    pub(crate) config: Config,
    hardware_addr: EthernetAddress,
    pub(crate) counters: Counters,
    neighbors: NeighborCache,
    /// IPv6 neighbours (neighbour discovery, Ethernet media).
    neighbors6: NeighborCache<std::net::Ipv6Addr>,
    reasm: Reassembler,
    pub(crate) sockets: SocketSet,
    pub(crate) udp_ports: HashMap<u16, Vec<SocketHandle>>,
    /// UDP sockets with datagrams queued for sending.
    pub(crate) udp_tx_pending: Vec<SocketHandle>,
    pub(crate) tcp: tcp::TcpState,
    tx: FrameBatch,
    scratch: Vec<u8>,
    icmp_limiter: icmp::TokenBucket,
    /// Path MTUs learned per destination.
    pub(crate) pmtu: pmtu::PmtuCache,
    ident: u16,
    rng: Rng,
    started: bool,
    /// The frame being handled came from a device that verified (or need
    /// not verify) its transport checksum.
    rx_csum_trusted: bool,
    /// A received frame whose offloaded checksum is completed in software.
    rx_scratch: Vec<u8>,
    /// The Ethernet source of the IPv4 datagram being handled.
    rx_src_hw: Option<EthernetAddress>,
    /// The last IPv4 sender seen on Ethernet and its link address (see
    /// `output_one`).
    last_sender: Option<(Ipv4Addr, EthernetAddress)>,
    /// The latest `now` any entry point was given: time as the core sees
    /// it never goes backwards (see [`Interface::monotonic`]).
    latest: Instant,
}

impl Interface {
    /// An interface with `config`, started at `now`.
    pub fn new(config: Config, now: Instant) -> Interface {
        let mut rng = Rng::from_state(config.seed ^ 0x9e37_79b9_7f4a_7c15);
        let hardware_addr = config.hardware_addr.unwrap_or_else(|| {
            let r = rng.next_u64().to_be_bytes();
            // Locally administered, unicast.
            EthernetAddress([0x02, r[1], r[2], r[3], r[4], r[5]])
        });
        let link = config.medium.header_len();
        let ident = rng.next_u64() as u16;
        let mut config = config;
        if config.medium == Medium::Ethernet && !config.addrs_v6.is_empty() {
            let ll = crate::wire::ipv6::link_local(hardware_addr);
            if !config.addrs_v6.iter().any(|c| c.addr == ll) {
                config.addrs_v6.push(Ipv6Cidr::new(ll, 64).expect("/64"));
            }
        }
        let max_tx = if config.offload.tso {
            link + GSO_MAX_PACKET.max(config.mtu)
        } else {
            link + config.mtu
        };
        let mut tcp_config = config.tcp.clone();
        tcp_config.segment_offload = tcp::segment_offload_for(&config);
        Interface {
            tx: FrameBatch::new(config.tx_queue_frames, max_tx),
            neighbors: NeighborCache::new(config.neighbor),
            neighbors6: NeighborCache::new(config.neighbor),
            reasm: Reassembler::new(config.reassembly),
            icmp_limiter: icmp::TokenBucket::new(config.icmp_rate, now),
            pmtu: pmtu::PmtuCache::new(config.pmtu),
            hardware_addr,
            counters: Counters::default(),
            sockets: SocketSet::new(),
            udp_ports: HashMap::new(),
            udp_tx_pending: Vec::new(),
            tcp: tcp::TcpState::new(tcp_config, config.seed),
            scratch: Vec::new(),
            ident,
            rng,
            started: false,
            rx_csum_trusted: false,
            rx_scratch: Vec::new(),
            rx_src_hw: None,
            last_sender: None,
            latest: now,
            config,
        }
    }

    /// Time as the core sees it: `now`, or the latest time an entry point
    /// was given when `now` is earlier. Several threads may read the clock
    /// and then call the interface in another order (the threaded runtime's
    /// stack thread and an application thread that sends directly); a core
    /// that took such a `now` as it is would send a TCP timestamp lower
    /// than one it sent before (RFC 7323 §5.4 wants them monotonic: a Linux
    /// peer drops the segment by PAWS) and date RACK's send times out of
    /// order. Every public entry point that takes a `now` goes through
    /// here; regressions are counted
    /// ([`LinkCounters::clock_regressions`]).
    pub(crate) fn monotonic(&mut self, now: Instant) -> Instant {
        if now < self.latest {
            self.counters.link.clock_regressions += 1;
            self.latest
        } else {
            self.latest = now;
            now
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The stack's hardware address (meaningful on Ethernet media).
    pub fn hardware_addr(&self) -> EthernetAddress {
        self.hardware_addr
    }

    /// The counters (TCP's are in [`Interface::tcp_counters`]).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The sockets.
    pub fn sockets(&self) -> &SocketSet {
        &self.sockets
    }

    /// Sockets whose readiness changed since the last call (each once).
    pub fn drain_socket_events(&mut self, out: &mut Vec<SocketHandle>) {
        self.sockets.drain_events(out)
    }

    /// Packets waiting for ARP resolution.
    pub fn neighbors_pending(&self) -> usize {
        self.neighbors.pending_packets()
    }

    /// The path MTU towards `dst` at `now`: one learned from ICMP and not
    /// yet expired, else the link MTU.
    pub fn path_mtu(&self, dst: IpAddr, now: Instant) -> usize {
        self.pmtu
            .get(dst, now)
            .map_or(self.config.mtu, |m| m.min(self.config.mtu))
    }

    /// Destinations in the path MTU cache.
    pub fn path_mtu_cache_len(&self) -> usize {
        self.pmtu.len()
    }

    /// Bytes held in fragment reassembly.
    pub fn reassembly_bytes(&self) -> usize {
        self.reasm.bytes_held()
    }

    /// True when `ip` is one of the interface's addresses.
    pub fn has_addr(&self, ip: Ipv4Addr) -> bool {
        self.config.addrs.iter().any(|c| c.addr == ip)
    }

    fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        ip.is_broadcast() || self.config.addrs.iter().any(|c| c.broadcast() == Some(ip))
    }

    /// Whether a datagram to `ip` is for this host.
    fn accepts_dst(&self, ip: Ipv4Addr) -> bool {
        self.has_addr(ip) || self.is_broadcast(ip)
    }

    /// The source address to use towards `dst`.
    pub(crate) fn source_for(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.config
            .addrs
            .iter()
            .find(|c| c.contains(dst))
            .or(self.config.addrs.first())
            .map(|c| c.addr)
    }

    fn route(&self, dst: Ipv4Addr) -> Option<NextHop> {
        if self.is_broadcast(dst) {
            return Some(NextHop::Broadcast);
        }
        if self.config.addrs.iter().any(|c| c.contains(dst)) {
            return Some(NextHop::Unicast(dst));
        }
        self.config.gateway.map(NextHop::Unicast)
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn link_header_len(&self) -> usize {
        self.config.medium.header_len()
    }

    // ---------------------------------------------------------------- input

    /// Processes one frame received at `now`. Never panics; anything
    /// rejected is counted.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.handle_frame_meta(now, frame, FrameMeta::default());
    }

    /// [`Interface::handle_frame`] for a frame with device metadata: a
    /// frame whose checksum the device verified, or left partial because
    /// the local kernel made it ([`FrameMeta::checksum_trusted`]), skips
    /// the transport checksum; a GRO super-segment is taken whole.
    pub fn handle_frame_meta(&mut self, now: Instant, frame: &[u8], meta: FrameMeta) {
        let now = self.monotonic(now);
        self.rx_csum_trusted = meta.checksum_trusted();
        if matches!(meta.checksum, Checksum::Partial { .. }) && !self.carries_tcp(frame) {
            // A datagram the stack may quote in an ICMP error or hand to an
            // application as it stands: complete its checksum (TCP
            // segments, the bulk of such frames, skip this).
            let mut buf = std::mem::take(&mut self.rx_scratch);
            buf.clear();
            buf.extend_from_slice(frame);
            meta.checksum.complete(&mut buf);
            self.handle_frame_inner(now, &buf);
            self.rx_scratch = buf;
            self.rx_csum_trusted = false;
            return;
        }
        self.handle_frame_inner(now, frame);
        self.rx_csum_trusted = false;
    }

    /// True when `frame` holds an IP packet whose (first) next header is TCP.
    fn carries_tcp(&self, frame: &[u8]) -> bool {
        let ip = frame.get(self.link_header_len()..).unwrap_or(&[]);
        match ip.first().map(|b| b >> 4) {
            Some(4) => ip.get(9) == Some(&ipv4::protocol::TCP),
            Some(6) => ip.get(6) == Some(&ipv4::protocol::TCP),
            _ => false,
        }
    }

    fn handle_frame_inner(&mut self, now: Instant, frame: &[u8]) {
        self.start(now);
        if frame.len() > self.config.mtu + self.link_header_len() {
            self.counters.link.gro_frames_in += 1;
        }
        self.counters.link.frames_in += 1;
        match self.config.medium {
            Medium::Ip => match frame.first().map(|b| b >> 4) {
                Some(4) => self.process_ipv4(now, frame, false),
                Some(6) => self.process_ipv6(now, frame),
                Some(_) => {
                    self.counters.link.unknown_ethertype += 1;
                    trace_drop!("link.unknown_ethertype")
                }
                None => {
                    self.counters.link.frames_malformed += 1;
                    trace_drop!("link.frames_malformed")
                }
            },
            Medium::Ethernet => {
                let Ok(eth) = ethernet::Frame::new_checked(frame) else {
                    self.counters.link.frames_malformed += 1;
                    trace_drop!("link.frames_malformed");
                    return;
                };
                let dst = eth.dst_addr();
                // IPv6 multicast (33:33:...) is filtered at the IP layer.
                let v6_multicast = dst.0[0] == 0x33 && dst.0[1] == 0x33;
                if dst != self.hardware_addr && !dst.is_broadcast() && !v6_multicast {
                    self.counters.link.frames_not_for_us += 1;
                    trace_drop!("link.frames_not_for_us");
                    return;
                }
                match eth.ethertype() {
                    ethernet::ethertype::ARP => self.process_arp(now, eth.payload()),
                    ethernet::ethertype::IPV4 => {
                        self.rx_src_hw = Some(eth.src_addr()).filter(|a| a.is_unicast());
                        self.process_ipv4(now, eth.payload(), false);
                        self.rx_src_hw = None;
                    }
                    ethernet::ethertype::IPV6 => self.process_ipv6(now, eth.payload()),
                    _ => {
                        self.counters.link.unknown_ethertype += 1;
                        trace_drop!("link.unknown_ethertype")
                    }
                }
            }
        }
    }

    fn process_arp(&mut self, now: Instant, payload: &[u8]) {
        let repr = match arp::Packet::new_checked(payload).and_then(|p| arp::Repr::parse(&p)) {
            Ok(r) => r,
            Err(_) => {
                self.counters.link.arp_errors += 1;
                trace_drop!("link.arp_errors");
                return;
            }
        };
        match repr.operation {
            arp::Operation::Request => self.counters.link.arp_requests_in += 1,
            arp::Operation::Reply => self.counters.link.arp_replies_in += 1,
        }
        let sender_ip = repr.source_protocol_addr;
        let sender_hw = repr.source_hardware_addr;
        if !sender_hw.is_unicast()
            || self.has_addr(sender_ip)
            || sender_ip.is_unspecified()
            || sender_ip.is_broadcast()
            || sender_ip.is_multicast()
        {
            // Probes (sender 0.0.0.0), claims on our own address, and
            // nonsense senders must not poison the cache.
            self.counters.link.arp_errors += 1;
            trace_drop!("link.arp_errors");
            return;
        }
        let for_us = self.has_addr(repr.target_protocol_addr);
        if for_us {
            let released = self.neighbors.fill(sender_ip, sender_hw, now);
            for pkt in released {
                self.write_frame(Some(sender_hw), &pkt);
            }
            if repr.operation == arp::Operation::Request {
                let reply = arp::Repr {
                    operation: arp::Operation::Reply,
                    source_hardware_addr: self.hardware_addr,
                    source_protocol_addr: repr.target_protocol_addr,
                    target_hardware_addr: sender_hw,
                    target_protocol_addr: sender_ip,
                };
                self.send_arp(sender_hw, &reply);
                self.counters.link.arp_replies_out += 1;
            }
        } else {
            self.neighbors.refresh(sender_ip, sender_hw, now);
        }
    }

    fn process_ipv4(&mut self, now: Instant, bytes: &[u8], reassembled: bool) {
        if !reassembled {
            self.counters.ip.in_receives += 1;
        }
        let Ok(pkt) = ipv4::Packet::new_checked(bytes) else {
            self.counters.ip.in_hdr_errors += 1;
            trace_drop!("ip.in_hdr_errors");
            return;
        };
        if !pkt.verify_checksum() {
            self.counters.ip.in_hdr_errors += 1;
            trace_drop!("ip.in_hdr_errors");
            return;
        }
        let src = pkt.src_addr();
        let dst = pkt.dst_addr();
        if src.is_unspecified()
            || src.is_broadcast()
            || src.is_multicast()
            || src.is_loopback()
            || self.has_addr(src)
            || self.is_broadcast(src)
        {
            // Martian source: nothing may answer it.
            self.counters.ip.in_hdr_errors += 1;
            trace_drop!("ip.in_hdr_errors");
            return;
        }
        if !self.accepts_dst(dst) {
            self.counters.ip.in_addr_errors += 1;
            trace_drop!("ip.in_addr_errors");
            return;
        }
        if let Some(hw) = self.rx_src_hw.take() {
            // Two stores per datagram; used only when an answer finds its
            // next hop unresolved (`output_one`).
            self.last_sender = Some((src, hw));
        }
        if pkt.more_frags() || pkt.frag_offset() != 0 {
            self.counters.ip.reasm_reqds += 1;
            let frag = reassembly::Fragment {
                key: reassembly::FragmentKey {
                    src: IpAddr::V4(src),
                    dst: IpAddr::V4(dst),
                    protocol: pkt.protocol(),
                    ident: pkt.ident() as u32,
                },
                header: &bytes[..pkt.header_len()],
                offset: pkt.frag_offset(),
                more: pkt.more_frags(),
                payload: pkt.payload(),
            };
            match self.reasm.add(now, frag) {
                Ok(Outcome::Complete(datagram)) => {
                    self.counters.ip.reasm_oks += 1;
                    self.rx_csum_trusted = false;
                    self.process_ipv4(now, &datagram, true);
                }
                Ok(Outcome::Held) | Ok(Outcome::Duplicate) => {}
                Err(e) => {
                    self.counters.ip.reasm_fails += 1;
                    trace_drop!("ip.reasm_fails");
                    if e == Reject::Overlap {
                        self.counters.ip.reasm_overlaps += 1;
                    }
                }
            }
            return;
        }
        let meta = IpMeta {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            protocol: pkt.protocol(),
            packet: &bytes[..pkt.total_len()],
            header_len: pkt.header_len(),
            csum_trusted: self.rx_csum_trusted,
        };
        match meta.protocol {
            ipv4::protocol::ICMP => {
                self.counters.ip.in_delivers += 1;
                self.process_icmp(now, &meta, pkt.payload());
            }
            ipv4::protocol::UDP => {
                self.counters.ip.in_delivers += 1;
                self.process_udp(now, &meta, pkt.payload());
            }
            ipv4::protocol::TCP => {
                self.counters.ip.in_delivers += 1;
                self.process_tcp(now, &meta, pkt.payload());
            }
            _ => {
                self.counters.ip.in_unknown_protos += 1;
                trace_drop!("ip.in_unknown_protos");
                self.send_icmp_error(
                    now,
                    &meta,
                    crate::wire::icmpv4::DstUnreachable::ProtoUnreachable,
                );
            }
        }
    }

    // --------------------------------------------------------------- output

    fn start(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        if self.config.medium == Medium::Ethernet && self.config.announce {
            self.start_dad(now);
        }
        if self.config.medium == Medium::Ethernet && self.config.announce {
            for i in 0..self.config.addrs.len() {
                let ip = self.config.addrs[i].addr;
                let announce = arp::Repr {
                    operation: arp::Operation::Request,
                    source_hardware_addr: self.hardware_addr,
                    source_protocol_addr: ip,
                    target_hardware_addr: EthernetAddress([0; 6]),
                    target_protocol_addr: ip,
                };
                self.send_arp(EthernetAddress::BROADCAST, &announce);
                self.counters.link.arp_requests_out += 1;
            }
        }
    }

    fn send_arp(&mut self, dst: EthernetAddress, repr: &arp::Repr) {
        let len = ethernet::HEADER_LEN + repr.buffer_len();
        let Some(buf) = self.tx.reserve(len) else {
            self.counters.link.tx_queue_drops += 1;
            trace_drop!("link.tx_queue_drops");
            return;
        };
        let eth = ethernet::Repr {
            src_addr: self.hardware_addr,
            dst_addr: dst,
            ethertype: ethernet::ethertype::ARP,
        };
        eth.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
        repr.emit(&mut arp::Packet::new_unchecked(
            &mut buf[ethernet::HEADER_LEN..],
        ));
        self.tx.commit(len);
    }

    fn send_arp_request(&mut self, target: Ipv4Addr) {
        let Some(src) = self.source_for(target) else {
            return;
        };
        let req = arp::Repr {
            operation: arp::Operation::Request,
            source_hardware_addr: self.hardware_addr,
            source_protocol_addr: src,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        self.send_arp(EthernetAddress::BROADCAST, &req);
        self.counters.link.arp_requests_out += 1;
    }

    /// Puts a finished IP packet on the link behind `dst_hw` (Ethernet) or
    /// bare (IP media).
    fn write_frame(&mut self, dst_hw: Option<EthernetAddress>, ip_packet: &[u8]) {
        self.write_frame_typed(dst_hw, ethernet::ethertype::IPV4, ip_packet);
    }

    /// [`Self::write_frame`] for any ethertype.
    fn write_frame_typed(
        &mut self,
        dst_hw: Option<EthernetAddress>,
        ethertype: u16,
        ip_packet: &[u8],
    ) {
        let link = self.link_header_len();
        let Some(buf) = self.tx.reserve(link + ip_packet.len()) else {
            self.counters.link.tx_queue_drops += 1;
            trace_drop!("link.tx_queue_drops");
            self.counters.ip.out_discards += 1;
            return;
        };
        if let Some(dst) = dst_hw.filter(|_| link > 0) {
            ethernet::Repr {
                src_addr: self.hardware_addr,
                dst_addr: dst,
                ethertype,
            }
            .emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
        }
        buf[link..].copy_from_slice(ip_packet);
        let n = buf.len();
        self.tx.commit(n);
    }

    /// True when the transmit queue has room for `frames` more frames.
    pub(crate) fn tx_has_room(&self, frames: usize) -> bool {
        // Frames, and bytes: super-segments are up to 64 KiB each, and the
        // queue holds no more bytes than a queue of full-MTU frames would.
        let max_bytes = self.tx.max_frames() * (self.config.mtu + self.link_header_len());
        self.tx.len() + frames <= self.tx.max_frames() && self.tx.bytes() < max_bytes
    }

    /// Sends an IPv4 datagram whose payload (`repr.payload_len` bytes) is
    /// written by `fill`. Routes it, resolves the next hop, fragments it
    /// when it exceeds the MTU (unless DF is set), and counts every drop.
    pub(crate) fn send_ipv4(
        &mut self,
        now: Instant,
        repr: ipv4::Repr,
        fill: impl FnOnce(&mut [u8]),
    ) {
        self.send_ipv4_meta(now, repr, TxOffload::NONE, fill)
    }

    /// [`Interface::send_ipv4`] with offload: `fill` writes the whole
    /// payload (the slot is not cleared first) and, for a partial
    /// checksum, the pseudo-header sum only; a super-segment (`gso_size`)
    /// may exceed the MTU and is cut by the device.
    pub(crate) fn send_ipv4_meta(
        &mut self,
        now: Instant,
        mut repr: ipv4::Repr,
        off: TxOffload,
        fill: impl FnOnce(&mut [u8]),
    ) {
        self.counters.ip.out_requests += 1;
        let Some(hop) = self.route(repr.dst_addr) else {
            self.counters.ip.out_no_routes += 1;
            trace_drop!("ip.out_no_routes");
            return;
        };
        repr.ident = self.ident;
        self.ident = self.ident.wrapping_add(1);
        let total = ipv4::HEADER_LEN + repr.payload_len;
        if total > 65535 {
            self.counters.ip.out_discards += 1;
            return;
        }
        let link = self.link_header_len();
        if total <= self.config.mtu || off.gso_size > 0 {
            let dst_hw = match (self.config.medium, hop) {
                (Medium::Ip, _) => Some(None),
                (Medium::Ethernet, NextHop::Broadcast) => Some(Some(EthernetAddress::BROADCAST)),
                (Medium::Ethernet, NextHop::Unicast(ip)) => {
                    self.neighbors.lookup(ip, now).map(Some)
                }
            };
            if let Some(dst_hw) = dst_hw {
                // Fast path: build the frame in place.
                let hw = self.hardware_addr;
                let slot = if off.writes_all {
                    self.tx.reserve_with_headroom(0, link + total)
                } else {
                    self.tx.reserve(link + total)
                };
                let Some(buf) = slot else {
                    self.counters.link.tx_queue_drops += 1;
                    trace_drop!("link.tx_queue_drops");
                    self.counters.ip.out_discards += 1;
                    return;
                };
                if let Some(dst) = dst_hw {
                    ethernet::Repr {
                        src_addr: hw,
                        dst_addr: dst,
                        ethertype: ethernet::ethertype::IPV4,
                    }
                    .emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
                }
                repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[link..]));
                fill(&mut buf[link + ipv4::HEADER_LEN..]);
                let meta = off.meta(link + ipv4::HEADER_LEN, total > self.config.mtu);
                if meta.gso_size > 0 {
                    self.counters.link.gso_frames_out += 1;
                }
                self.tx.commit_meta(link + total, meta);
                return;
            }
            if total > self.config.mtu {
                // A super-segment cannot wait for the neighbour in the
                // pending queue (it holds plain packets): TCP resends it.
                self.counters.link.gso_drops += 1;
                trace_drop!("link.gso_drops");
                self.counters.ip.out_discards += 1;
                return;
            }
        } else if repr.dont_frag {
            self.counters.ip.frag_fails += 1;
            trace_drop!("ip.frag_fails");
            self.counters.ip.out_discards += 1;
            return;
        }
        // Slow path: build the whole datagram, then fragment and/or wait
        // for the neighbour.
        let mut pkt = std::mem::take(&mut self.scratch);
        pkt.clear();
        pkt.resize(total, 0);
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut pkt[..]));
        fill(&mut pkt[ipv4::HEADER_LEN..]);
        off.complete_checksum(&mut pkt[ipv4::HEADER_LEN..]);
        self.output_packet(now, hop, &pkt);
        self.scratch = pkt;
    }

    /// Sends a finished datagram towards `hop`, fragmenting it to the MTU.
    fn output_packet(&mut self, now: Instant, hop: NextHop, pkt: &[u8]) {
        let mtu = self.config.mtu;
        if pkt.len() <= mtu {
            self.output_one(now, hop, pkt);
            return;
        }
        let header_len = ((pkt[0] & 0x0f) as usize) * 4;
        let data = &pkt[header_len..];
        let chunk = (mtu - header_len) & !7;
        if chunk == 0 {
            self.counters.ip.frag_fails += 1;
            trace_drop!("ip.frag_fails");
            return;
        }
        self.counters.ip.frag_oks += 1;
        let mut frag = Vec::with_capacity(mtu);
        let mut off = 0;
        while off < data.len() {
            let end = (off + chunk).min(data.len());
            let more = end < data.len();
            frag.clear();
            frag.extend_from_slice(&pkt[..header_len]);
            frag.extend_from_slice(&data[off..end]);
            let mut p = ipv4::Packet::new_unchecked(&mut frag[..]);
            p.set_total_len(header_len + end - off);
            p.set_more_frags(more);
            p.set_frag_offset(off);
            p.fill_checksum();
            self.counters.ip.frag_creates += 1;
            self.output_one(now, hop, &frag);
            off = end;
        }
    }

    fn output_one(&mut self, now: Instant, hop: NextHop, pkt: &[u8]) {
        match (self.config.medium, hop) {
            (Medium::Ip, _) => self.write_frame(None, pkt),
            (Medium::Ethernet, NextHop::Broadcast) => {
                self.write_frame(Some(EthernetAddress::BROADCAST), pkt)
            }
            (Medium::Ethernet, NextHop::Unicast(ip)) => {
                if let Some((_, hw)) = self.last_sender.filter(|&(from, _)| from == ip) {
                    // The next hop is the host whose datagram we are
                    // answering: its link address is in that frame, so the
                    // answer needs no ARP round trip (smoltcp does the
                    // same). With several queues of one TAP this is also
                    // how a stack learns a peer whose ARP reply went to
                    // another queue. A known entry is never overridden.
                    for p in self.neighbors.learn(ip, hw, now) {
                        self.write_frame(Some(hw), &p);
                    }
                }
                match self.neighbors.resolve_or_queue(ip, now, || pkt.to_vec()) {
                    Resolve::Known(hw) => self.write_frame(Some(hw), pkt),
                    Resolve::Queued {
                        send_request,
                        dropped,
                    } => {
                        if dropped {
                            self.counters.link.arp_pending_drops += 1;
                            trace_drop!("link.arp_pending_drops");
                            self.counters.ip.out_discards += 1;
                        }
                        if send_request {
                            self.send_arp_request(ip);
                        }
                    }
                }
            }
        }
    }

    /// Moves frames ready for the device into `out` (as many as it takes;
    /// the rest wait for the next call). Runs the timers due at `now` and
    /// drains the sockets' send queues first. Returns the frames added.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut FrameBatch) -> usize {
        let now = self.monotonic(now);
        self.start(now);
        self.run_timers(now);
        self.flush_udp(now);
        self.flush_tcp(now);
        let before = out.len();
        if out.is_empty()
            && out.max_frames() == self.tx.max_frames()
            && out.max_frame_len() == self.tx.max_frame_len()
        {
            // Hand the whole queue over without copying.
            std::mem::swap(out, &mut self.tx);
        } else {
            let mut taken = 0;
            for (f, meta) in self.tx.iter_meta() {
                if !out.push_meta(f, meta) {
                    break;
                }
                taken += 1;
            }
            self.tx.consume(taken);
        }
        let n = out.len() - before;
        self.counters.link.frames_out += n as u64;
        if n > 0 {
            // Room appeared in the transmit queue: senders may go on.
            self.flush_udp(now);
            self.flush_tcp(now);
        }
        n
    }

    /// A frame batch shaped like the interface's transmit queue, so that
    /// [`Interface::poll_transmit`] can hand frames over without copying.
    pub fn new_tx_batch(&self) -> FrameBatch {
        FrameBatch::new(self.tx.max_frames(), self.tx.max_frame_len())
    }

    fn run_timers(&mut self, now: Instant) {
        let mut requests = Vec::new();
        let dropped = self.neighbors.poll(now, &mut requests);
        if dropped > 0 {
            self.counters.link.arp_pending_drops += dropped as u64;
            self.counters.ip.out_discards += dropped as u64;
        }
        for ip in requests {
            self.send_arp_request(ip);
        }
        let mut requests6 = Vec::new();
        let dropped = self.neighbors6.poll(now, &mut requests6);
        if dropped > 0 {
            self.counters.ip6.out_discards += dropped as u64;
        }
        for ip in requests6 {
            self.send_neighbor_solicit(now, ip, false);
        }
        if self.reasm.poll_at().is_some_and(|t| t <= now) {
            let mut expired = Vec::new();
            self.reasm.expire(now, &mut expired);
            for e in expired {
                self.counters.ip.reasm_timeout += 1;
                self.counters.ip.reasm_fails += 1;
                trace_drop!("ip.reasm_fails");
                if let Some(first) = e.first {
                    if first.first().is_some_and(|b| b >> 4 == 6) {
                        self.send_reassembly_timeout_v6(now, &first);
                    } else {
                        self.send_reassembly_timeout(now, &first);
                    }
                }
            }
        }
    }

    /// When the interface next needs [`Interface::poll_transmit`]: `now`
    /// or earlier when frames or datagrams are waiting, else the next timer.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.tx.is_empty() || !self.udp_tx_pending.is_empty() || !self.started {
            return Some(Instant::ZERO);
        }
        [
            self.neighbors.poll_at(),
            self.neighbors6.poll_at(),
            self.reasm.poll_at(),
            self.tcp_poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Offload of one datagram the stack sends (see
/// [`Interface::send_ipv4_meta`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxOffload {
    /// The transport checksum field (at this offset into the transport
    /// header) holds the pseudo-header sum only: the device completes it.
    pub partial_csum_at: Option<u16>,
    /// Cut the payload into segments of this many bytes (TSO/GSO).
    pub gso_size: u16,
    /// The fill function writes every byte of the payload.
    pub writes_all: bool,
}

impl TxOffload {
    pub const NONE: TxOffload = TxOffload {
        partial_csum_at: None,
        gso_size: 0,
        writes_all: false,
    };

    /// The frame metadata, the transport header starting at `l4_start`
    /// in the frame; `oversize`: the packet exceeds the MTU.
    pub(super) fn meta(&self, l4_start: usize, oversize: bool) -> FrameMeta {
        FrameMeta {
            checksum: match self.partial_csum_at {
                Some(offset) => Checksum::Partial {
                    start: l4_start as u16,
                    offset,
                },
                None => Checksum::Complete,
            },
            gso_size: if oversize { self.gso_size } else { 0 },
        }
    }

    /// Completes a partial checksum in software (a packet that takes the
    /// slow path: fragmentation or the neighbour queue carries no
    /// metadata). The field holds the pseudo-header sum, so the sum over
    /// the transport segment as it stands is the whole sum.
    pub fn complete_checksum(&self, l4: &mut [u8]) {
        self.meta(0, false).checksum.complete(l4);
    }
}

/// What the transport layer needs to know about the datagram carrying it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpMeta<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// The whole datagram (header and payload), for ICMP error quotes.
    pub packet: &'a [u8],
    #[allow(dead_code)]
    pub header_len: usize,
    /// The device verified the transport checksum, or it is partial from
    /// the local kernel: do not verify it.
    pub csum_trusted: bool,
}

impl IpMeta<'_> {
    pub fn src_ip(&self) -> IpAddr {
        self.src
    }
    pub fn dst_ip(&self) -> IpAddr {
        self.dst
    }
}

/// The IPv4-mapped form (`::ffff:a.b.c.d`) of an IPv4 socket address; an
/// IPv6 one unchanged.
pub(crate) fn v4_mapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v) => SocketAddr::new(IpAddr::V6(v.ip().to_ipv6_mapped()), v.port()),
        v6 => v6,
    }
}

/// The IPv4 address inside an IPv4-mapped one; others unchanged.
pub(crate) fn unmapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v) => match v.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::new(IpAddr::V4(ip), v.port()),
            None => a,
        },
        v4 => v4,
    }
}

impl Interface {
    /// Whether a socket bound to `bound` takes traffic of `family_v4`
    /// (IPv4 when true): its own family, and IPv4 too for `[::]` when
    /// [`Config::bind_v6_only`] is off.
    pub(crate) fn family_ok(&self, bound: SocketAddr, family_v4: bool) -> bool {
        bound.is_ipv4() == family_v4
            || (family_v4
                && !self.config.bind_v6_only
                && bound.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
    }

    /// True when the datagram in `meta` went to an IPv4 broadcast address
    /// (IPv6 has none; its multicast is checked where it matters).
    fn meta_is_broadcast(&self, meta: &IpMeta) -> bool {
        match meta.dst {
            IpAddr::V4(d) => self.is_broadcast(d),
            IpAddr::V6(_) => false,
        }
    }
}

#[cfg(test)]
mod ipv6_tests;
#[cfg(test)]
mod tests;
