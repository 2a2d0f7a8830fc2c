//! IPv6 on the interface (RFC 8200, RFC 4443): input validation, the
//! extension-header walk, ICMPv6 echo and errors, and output on IP media.
//!
//! What works: packets to one of [`Config::addrs_v6`] or to the all-nodes
//! and solicited-node multicast groups are validated (version, length,
//! martian sources), their extension headers walked with RFC 8200's rules
//! for unknown headers and options (ICMPv6 Parameter Problem, rate-limited
//! with ICMPv4's token bucket), echo requests answered, and TCP and UDP
//! handed to the same demultiplexers as IPv4. On Ethernet: a link-local
//! address from the MAC, neighbour discovery (solicitations answered,
//! advertisements learned, a bounded cache and queue of waiting packets,
//! duplicate-address probes sent at start and answered for our addresses).
//! Fragments are reassembled with IPv4's bounds (atomic fragments, RFC
//! 8021, are dropped). Not yet: an IPv6 default router, path MTU from Packet Too Big, the reachability state
//! machine's probes (entries simply expire, as the ARP cache's do).
//!
//! [`Config::addrs_v6`]: super::Config::addrs_v6

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use super::{Interface, IpMeta, Ipv4Cidr, TxOffload};
use crate::link::Medium;
use crate::time::Instant;
use crate::wire::icmpv6::{self, kind};
use crate::wire::ipv6::{self, Walk};

/// An IPv6 address with its prefix length, e.g. `fd00::2/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Cidr {
    /// The address.
    pub addr: Ipv6Addr,
    /// The prefix length, 0 to 128.
    pub prefix_len: u8,
}

impl Ipv6Cidr {
    /// `addr/prefix_len`; `None` when the prefix is longer than 128.
    pub fn new(addr: Ipv6Addr, prefix_len: u8) -> Option<Ipv6Cidr> {
        (prefix_len <= 128).then_some(Ipv6Cidr { addr, prefix_len })
    }

    /// True when `ip` is in this prefix.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        let mask = if self.prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix_len as u32)
        };
        u128::from(ip) & mask == u128::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv6Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not ADDRESS/PREFIX (e.g. fd00::2/64)"))?;
        let addr: Ipv6Addr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv6 address"))?;
        let prefix_len: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 128)
            .ok_or_else(|| format!("'{p}' is not a prefix length from 0 to 128"))?;
        Ok(Ipv6Cidr { addr, prefix_len })
    }
}

/// An IPv4 or IPv6 address with its prefix, as the tools' `--addr` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpCidr {
    /// IPv4.
    V4(Ipv4Cidr),
    /// IPv6.
    V6(Ipv6Cidr),
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpCidr::V4(c) => c.fmt(f),
            IpCidr::V6(c) => c.fmt(f),
        }
    }
}

impl From<Ipv4Cidr> for IpCidr {
    fn from(c: Ipv4Cidr) -> IpCidr {
        IpCidr::V4(c)
    }
}

impl From<Ipv6Cidr> for IpCidr {
    fn from(c: Ipv6Cidr) -> IpCidr {
        IpCidr::V6(c)
    }
}

impl FromStr for IpCidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains(':') {
            s.parse().map(IpCidr::V6)
        } else {
            s.parse().map(IpCidr::V4)
        }
    }
}

impl Interface {
    /// True when `ip` is one of the interface's IPv6 addresses.
    pub fn has_addr_v6(&self, ip: Ipv6Addr) -> bool {
        self.config.addrs_v6.iter().any(|c| c.addr == ip)
    }

    /// Whether a packet to `ip` is for this host: one of our addresses,
    /// all-nodes, or the solicited-node group of one of them.
    fn accepts_dst_v6(&self, ip: Ipv6Addr) -> bool {
        self.has_addr_v6(ip)
            || ip == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
            || self
                .config
                .addrs_v6
                .iter()
                .any(|c| ipv6::solicited_node(c.addr) == ip)
    }

    /// The source address to use towards `dst`: one in the same prefix,
    /// else the first.
    pub(crate) fn source_for_v6(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        self.config
            .addrs_v6
            .iter()
            .find(|c| c.contains(dst))
            .or(self.config.addrs_v6.first())
            .map(|c| c.addr)
    }

    pub(super) fn process_ipv6(&mut self, now: Instant, bytes: &[u8]) {
        self.counters.ip6.in_receives += 1;
        let Ok(pkt) = ipv6::Packet::new_checked(bytes) else {
            self.counters.ip6.in_hdr_errors += 1;
            trace_drop!("ip6.in_hdr_errors");
            return;
        };
        let src = pkt.src_addr();
        let dst = pkt.dst_addr();
        // `::` is a source only for duplicate-address probes, which go to
        // a solicited-node group (RFC 4862 §5.4.2; checked again by the
        // neighbour-discovery code).
        let dad_probe = src.is_unspecified()
            && dst.octets()[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]
            && pkt.next_header() == ipv6::next_header::ICMPV6;
        if (ipv6::is_martian_source(src) && !dad_probe) || self.has_addr_v6(src) {
            self.counters.ip6.in_hdr_errors += 1;
            trace_drop!("ip6.in_hdr_errors");
            return;
        }
        if !self.accepts_dst_v6(dst) {
            self.counters.ip6.in_addr_errors += 1;
            trace_drop!("ip6.in_addr_errors");
            return;
        }
        let packet = pkt.packet();
        let (next_header, at) = match ipv6::walk(packet) {
            Walk::Upper { next_header, at } => (next_header, at),
            Walk::ParamProblem {
                code,
                pointer,
                even_multicast,
            } => {
                self.counters.ip6.in_hdr_errors += 1;
                trace_drop!("ip6.in_hdr_errors");
                if even_multicast || !dst.is_multicast() {
                    self.send_icmpv6_error(
                        now,
                        src,
                        dst,
                        packet,
                        kind::PARAM_PROBLEM,
                        code,
                        pointer,
                    );
                }
                return;
            }
            Walk::Fragment(f) => {
                self.counters.ip6.reasm_reqds += 1;
                if f.offset == 0 && !f.more {
                    // An atomic fragment: nobody should send one any more
                    // (RFC 8021); dropped, as this stack's policy.
                    self.counters.ip6.reasm_fails += 1;
                    trace_drop!("ip6.reasm_fails");
                    return;
                }
                self.reassemble_v6(now, packet, f);
                return;
            }
            Walk::Discard(reason) => {
                let _ = reason;
                self.counters.ip6.in_discards += 1;
                trace_drop!("ip6.in_discards");
                return;
            }
        };
        let meta = IpMeta {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            protocol: next_header,
            packet,
            header_len: at,
            csum_trusted: self.rx_csum_trusted,
        };
        let payload = &packet[at..];
        self.counters.ip6.in_delivers += 1;
        match next_header {
            ipv6::next_header::ICMPV6 => self.process_icmpv6(now, &meta, pkt.hop_limit(), payload),
            // Multicast is not for TCP; UDP multicast groups are not joined.
            _ if dst.is_multicast() => {
                self.counters.ip6.in_addr_errors += 1;
                trace_drop!("ip6.in_addr_errors");
            }
            ipv6::next_header::TCP => self.process_tcp(now, &meta, payload),
            _ => self.process_udp(now, &meta, payload),
        }
    }

    /// One fragment of a datagram (RFC 8200 §4.5): reassembled with the
    /// same bounds as IPv4 (overlaps discard the datagram, RFC 5722), then
    /// processed as if it had arrived whole.
    fn reassemble_v6(&mut self, now: Instant, packet: &[u8], f: ipv6::FragmentInfo) {
        let p = ipv6::Packet::new_unchecked(packet);
        // The unfragmentable part, with the field that named the fragment
        // header now naming what the fragments carry.
        let mut header = packet[..f.header_at].to_vec();
        header[f.nh_field] = f.next_header;
        let frag = super::reassembly::Fragment {
            key: super::reassembly::FragmentKey {
                src: IpAddr::V6(p.src_addr()),
                dst: IpAddr::V6(p.dst_addr()),
                protocol: 0,
                ident: f.ident,
            },
            header: &header,
            offset: f.offset,
            more: f.more,
            payload: &packet[f.data_at..],
        };
        match self.reasm.add(now, frag) {
            Ok(super::reassembly::Outcome::Complete(datagram)) => {
                self.counters.ip6.reasm_oks += 1;
                // Counted once already as received.
                self.counters.ip6.in_receives -= 1;
                self.rx_csum_trusted = false;
                self.process_ipv6(now, &datagram);
            }
            Ok(_) => {}
            Err(e) => {
                self.counters.ip6.reasm_fails += 1;
                trace_drop!("ip6.reasm_fails");
                if e == super::reassembly::Reject::Overlap {
                    self.counters.ip6.reasm_overlaps += 1;
                }
            }
        }
    }

    /// ICMPv6 Time Exceeded, fragment reassembly time exceeded (code 1),
    /// about a datagram whose first fragment arrived but not all the rest
    /// (RFC 8200 §4.5).
    pub(super) fn send_reassembly_timeout_v6(&mut self, now: Instant, first: &[u8]) {
        if first.len() < ipv6::HEADER_LEN {
            return;
        }
        let p = ipv6::Packet::new_unchecked(first);
        let (src, dst) = (p.src_addr(), p.dst_addr());
        self.send_icmpv6_error(now, src, dst, first, kind::TIME_EXCEEDED, 1, 0);
    }

    fn process_icmpv6(&mut self, now: Instant, meta: &IpMeta, hop_limit: u8, msg: &[u8]) {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (meta.src, meta.dst) else {
            return;
        };
        let c = &mut self.counters.icmp6;
        c.in_msgs += 1;
        if let Some(&t) = msg.first() {
            c.in_type[t as usize] += 1;
        }
        match icmpv6::verify(src, dst, msg) {
            Ok(()) => {}
            Err(crate::wire::Error::Checksum) => {
                c.in_csum_errors += 1;
                c.in_errors += 1;
                trace_drop!("icmp6.in_errors");
                return;
            }
            Err(_) => {
                c.in_errors += 1;
                trace_drop!("icmp6.in_errors");
                return;
            }
        }
        if src.is_unspecified() && msg[0] != kind::NEIGHBOR_SOLICIT {
            c.in_errors += 1;
            trace_drop!("icmp6.in_errors");
            return;
        }
        match msg[0] {
            kind::ECHO_REQUEST => {
                // Echo to a multicast group is answered from a unicast
                // address of ours (RFC 4443 §4.2), as Linux does.
                let from = if dst.is_multicast() {
                    match self.source_for_v6(src) {
                        Some(a) => a,
                        None => return,
                    }
                } else {
                    dst
                };
                let word = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
                let body = &msg[icmpv6::HEADER_LEN..];
                self.send_icmpv6(now, from, src, kind::ECHO_REPLY, 0, word, body);
            }
            kind::NEIGHBOR_SOLICIT | kind::NEIGHBOR_ADVERT => {
                self.process_nd(now, src, dst, hop_limit, msg);
            }
            kind::DST_UNREACHABLE => {
                // RFC 4443 §3.1 codes, as Linux maps them (icmpv6_err_convert):
                // port unreachable and administratively prohibited refuse,
                // the others say the host is unreachable.
                let err = match msg[1] {
                    icmpv6::unreachable::PORT | icmpv6::unreachable::ADMIN_PROHIBITED => {
                        std::io::ErrorKind::ConnectionRefused
                    }
                    icmpv6::unreachable::NO_ROUTE => std::io::ErrorKind::NetworkUnreachable,
                    _ => std::io::ErrorKind::HostUnreachable,
                };
                if let Some((local, remote, proto, seq)) =
                    self.quoted_v6(&msg[icmpv6::HEADER_LEN..])
                {
                    if proto == ipv6::next_header::UDP {
                        self.udp_icmp_error(local, remote, err);
                    } else {
                        self.tcp_icmp_error(local, remote, seq, err);
                    }
                }
            }
            kind::PACKET_TOO_BIG => {
                // RFC 8201: the path MTU towards the quoted destination,
                // checked against the connection's sequence space (RFC
                // 5927) and the 1280-byte floor by the TCP code.
                let mtu = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]) as usize;
                match self.quoted_v6(&msg[icmpv6::HEADER_LEN..]) {
                    Some((local, remote, ipv6::next_header::TCP, seq)) => {
                        self.tcp_packet_too_big(now, local, remote, seq, mtu.min(65535));
                    }
                    _ => {
                        self.tcp.counters.pmtu_unmatched += 1;
                        trace_drop!("tcp.pmtu_unmatched");
                    }
                }
            }
            // Time exceeded and parameter problems about our packets: soft
            // errors, counted by type above.
            _ => {}
        }
    }

    /// Neighbour discovery (RFC 4861 §7.1-7.2) on Ethernet media: answers
    /// solicitations for our addresses (learning the solicitor's link
    /// address), learns from advertisements and releases what waited for
    /// them, defends our addresses against duplicate-address probes and
    /// counts a conflicting advertisement (RFC 4862 §5.4).
    fn process_nd(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        msg: &[u8],
    ) {
        if self.config.medium != Medium::Ethernet {
            return; // no link layer to resolve
        }
        let bad = |i: &mut Interface| {
            i.counters.icmp6.in_errors += 1;
            trace_drop!("icmp6.in_errors");
        };
        if hop_limit != 255 {
            return bad(self); // not from a link neighbour
        }
        let Ok(nd) = icmpv6::NdMessage::parse(msg) else {
            return bad(self);
        };
        let hw = nd.lladdr.map(crate::wire::EthernetAddress);
        if hw.is_some_and(|h| !h.is_unicast()) {
            return bad(self);
        }
        if nd.kind == kind::NEIGHBOR_SOLICIT {
            if !self.has_addr_v6(nd.target) {
                return;
            }
            if src.is_unspecified() {
                // Someone's duplicate-address probe for our address: defend
                // it with an advertisement to all nodes.
                if dst != ipv6::solicited_node(nd.target) {
                    return bad(self);
                }
                self.send_neighbor_advert(
                    now,
                    nd.target,
                    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                    None,
                );
                return;
            }
            if let Some(hw) = hw {
                let released = self.neighbors6.fill(src, hw, now);
                for pkt in released {
                    self.write_frame_typed(Some(hw), crate::wire::ethernet::ethertype::IPV6, &pkt);
                }
            }
            self.send_neighbor_advert(now, nd.target, src, hw);
        } else {
            if self.has_addr_v6(nd.target) {
                self.counters.ip6.dad_conflicts += 1;
                tracing::warn!(target: "ustack::ipv6", address = %nd.target, "another node advertises our IPv6 address");
                return;
            }
            let Some(hw) = hw else { return };
            let released = self.neighbors6.fill(nd.target, hw, now);
            for pkt in released {
                self.write_frame_typed(Some(hw), crate::wire::ethernet::ethertype::IPV6, &pkt);
            }
        }
    }

    /// The (local, remote) addresses, protocol and (for TCP) sequence
    /// number of one of our TCP or UDP packets quoted in an ICMPv6 error
    /// (our packets carry no extension headers).
    fn quoted_v6(&self, q: &[u8]) -> Option<(std::net::SocketAddr, std::net::SocketAddr, u8, u32)> {
        if q.len() < ipv6::HEADER_LEN + 8 || q[0] >> 4 != 6 {
            return None;
        }
        let p = ipv6::Packet::new_unchecked(q);
        let proto = p.next_header();
        if proto != ipv6::next_header::TCP && proto != ipv6::next_header::UDP {
            return None;
        }
        if !self.has_addr_v6(p.src_addr()) {
            return None;
        }
        let t = &q[ipv6::HEADER_LEN..];
        let sport = u16::from_be_bytes([t[0], t[1]]);
        let dport = u16::from_be_bytes([t[2], t[3]]);
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        Some((
            std::net::SocketAddr::new(IpAddr::V6(p.src_addr()), sport),
            std::net::SocketAddr::new(IpAddr::V6(p.dst_addr()), dport),
            proto,
            seq,
        ))
    }

    /// Duplicate address detection for each address (RFC 4862 §5.4): one
    /// probe from the unspecified address. The address is used at once
    /// (optimistic, as RFC 4429 allows); a conflict is counted and logged.
    pub(super) fn start_dad(&mut self, now: Instant) {
        let addrs: Vec<Ipv6Addr> = self.config.addrs_v6.iter().map(|c| c.addr).collect();
        for a in addrs {
            self.send_neighbor_solicit(now, a, true);
        }
    }

    /// A solicitation for `target` to its solicited-node group: from our
    /// address with our link address (resolution), or from `::` without
    /// it (`dad`).
    pub(super) fn send_neighbor_solicit(&mut self, now: Instant, target: Ipv6Addr, dad: bool) {
        let src = if dad {
            Ipv6Addr::UNSPECIFIED
        } else {
            match self.source_for_v6(target) {
                Some(a) => a,
                None => return,
            }
        };
        let ns = icmpv6::NdMessage {
            kind: kind::NEIGHBOR_SOLICIT,
            flags: 0,
            target,
            lladdr: (!dad).then_some(self.hardware_addr.0),
        };
        let group = ipv6::solicited_node(target);
        self.send_nd(now, src, group, ipv6::multicast_mac(group), &ns);
    }

    fn send_neighbor_advert(
        &mut self,
        now: Instant,
        target: Ipv6Addr,
        to: Ipv6Addr,
        to_hw: Option<crate::wire::EthernetAddress>,
    ) {
        use icmpv6::na_flags::{OVERRIDE, SOLICITED};
        let solicited = !to.is_multicast();
        let na = icmpv6::NdMessage {
            kind: kind::NEIGHBOR_ADVERT,
            flags: OVERRIDE | if solicited { SOLICITED } else { 0 },
            target,
            lladdr: Some(self.hardware_addr.0),
        };
        let hw = match (to.is_multicast(), to_hw, self.neighbors6.lookup(to, now)) {
            (true, ..) => ipv6::multicast_mac(to),
            (false, Some(h), _) | (false, None, Some(h)) => h,
            // No link address to answer to: solicit it, the answer waits.
            (false, None, None) => {
                self.send_neighbor_solicit(now, to, false);
                return;
            }
        };
        self.send_nd(now, target, to, hw, &na);
    }

    fn send_nd(
        &mut self,
        _now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hw: crate::wire::EthernetAddress,
        m: &icmpv6::NdMessage,
    ) {
        let len = m.buffer_len();
        let total = ipv6::HEADER_LEN + len;
        self.counters.ip6.out_requests += 1;
        self.counters.icmp6.out_msgs += 1;
        self.counters.icmp6.out_type[m.kind as usize] += 1;
        let mut pkt = vec![0u8; total];
        ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: ipv6::next_header::ICMPV6,
            payload_len: len,
            hop_limit: 255,
        }
        .emit(&mut pkt);
        m.emit(&mut pkt[ipv6::HEADER_LEN..], src, dst);
        self.write_frame_typed(Some(hw), crate::wire::ethernet::ethertype::IPV6, &pkt);
    }

    /// Sends an ICMPv6 message from `src` to `dst`.
    #[allow(clippy::too_many_arguments)]
    fn send_icmpv6(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        kind: u8,
        code: u8,
        word: u32,
        body: &[u8],
    ) {
        let len = icmpv6::HEADER_LEN + body.len();
        self.counters.icmp6.out_msgs += 1;
        self.counters.icmp6.out_type[kind as usize] += 1;
        self.send_ipv6(now, src, dst, ipv6::next_header::ICMPV6, len, |buf| {
            icmpv6::emit(buf, src, dst, kind, code, word, body);
        });
    }

    /// An ICMPv6 error about `packet` (from `orig_src` to `orig_dst`),
    /// quoting as much of it as fits the minimum MTU (RFC 4443 §2.4), under
    /// the shared ICMP rate limit; never about an ICMPv6 error, nor to a
    /// multicast or unspecified source.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_icmpv6_error(
        &mut self,
        now: Instant,
        orig_src: Ipv6Addr,
        orig_dst: Ipv6Addr,
        packet: &[u8],
        kind: u8,
        code: u8,
        word: u32,
    ) {
        if orig_src.is_multicast() || orig_src.is_unspecified() {
            return;
        }
        if let Walk::Upper {
            next_header: ipv6::next_header::ICMPV6,
            at,
        } = ipv6::walk(packet)
        {
            if packet.get(at).is_some_and(|t| *t < 128) {
                return;
            }
        }
        if !self.icmp_limiter.take(now) {
            self.counters.icmp6.out_rate_limited += 1;
            trace_drop!("icmp6.out_rate_limited");
            return;
        }
        let from = if self.has_addr_v6(orig_dst) {
            orig_dst
        } else {
            match self.source_for_v6(orig_src) {
                Some(a) => a,
                None => return,
            }
        };
        let quote = &packet[..packet.len().min(icmpv6::MAX_QUOTE)];
        self.send_icmpv6(now, from, orig_src, kind, code, word, quote);
    }

    /// Sends an IPv6 packet of `payload_len` bytes of `next_header`
    /// written by `fill`: bare on IP media; on Ethernet to the neighbour's
    /// link address, resolving it by neighbour discovery first (the packet
    /// waits, bounded, like IPv4's behind ARP). Every destination in one
    /// of our prefixes (and link-local) is on-link; there is no IPv6
    /// default router yet, so Ethernet reaches on-link hosts only. A
    /// packet larger than the link MTU is fragmented at the source (RFC
    /// 8200 §4.5; TCP never needs it, its MSS fits); one over 65,535
    /// bytes of payload is dropped and counted.
    pub(crate) fn send_ipv6(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        self.send_ipv6_meta(
            now,
            src,
            dst,
            next_header,
            payload_len,
            TxOffload::NONE,
            fill,
        )
    }

    /// [`Interface::send_ipv6`] with offload (see
    /// [`Interface::send_ipv4_meta`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_ipv6_meta(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        payload_len: usize,
        off: TxOffload,
        fill: impl FnOnce(&mut [u8]),
    ) {
        self.counters.ip6.out_requests += 1;
        let total = ipv6::HEADER_LEN + payload_len;
        if payload_len > 65535 {
            self.counters.ip6.out_discards += 1;
            trace_drop!("ip6.out_discards");
            return;
        }
        let ethernet = self.config.medium == Medium::Ethernet;
        if ethernet {
            let on_link = dst.is_multicast()
                || (dst.segments()[0] & 0xffc0) == 0xfe80
                || self.config.addrs_v6.iter().any(|c| c.contains(dst));
            if !on_link {
                self.counters.ip6.out_no_routes += 1;
                trace_drop!("ip6.out_no_routes");
                return;
            }
        }
        let repr = ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header,
            payload_len,
            hop_limit: self.config.ttl,
        };
        // Fast path: the link address is known (or none is needed) and the
        // packet fits: build it straight into the transmit queue, with no
        // copy through the scratch buffer.
        let known_hw = match (ethernet, dst.is_multicast()) {
            (false, _) => Some(None),
            (true, true) => Some(Some(ipv6::multicast_mac(dst))),
            (true, false) => self.neighbors6.lookup(dst, now).map(Some),
        };
        let oversize = total > self.config.mtu;
        if oversize && off.gso_size > 0 && known_hw.is_none() {
            self.counters.link.gso_drops += 1;
            trace_drop!("link.gso_drops");
            self.counters.ip6.out_discards += 1;
            return;
        }
        if let (Some(hw), true) = (known_hw, !oversize || off.gso_size > 0) {
            let link = self.link_header_len();
            let slot = if off.writes_all {
                self.tx.reserve_with_headroom(0, link + total)
            } else {
                self.tx.reserve(link + total)
            };
            let Some(buf) = slot else {
                self.counters.link.tx_queue_drops += 1;
                trace_drop!("link.tx_queue_drops");
                self.counters.ip6.out_discards += 1;
                return;
            };
            if let Some(dst_hw) = hw {
                crate::wire::ethernet::Repr {
                    src_addr: self.hardware_addr,
                    dst_addr: dst_hw,
                    ethertype: crate::wire::ethernet::ethertype::IPV6,
                }
                .emit(&mut crate::wire::ethernet::Frame::new_unchecked(
                    &mut buf[..],
                ));
            }
            repr.emit(&mut buf[link..link + ipv6::HEADER_LEN]);
            fill(&mut buf[link + ipv6::HEADER_LEN..link + total]);
            let meta = off.meta(link + ipv6::HEADER_LEN, oversize);
            if meta.gso_size > 0 {
                self.counters.link.gso_frames_out += 1;
            }
            self.tx.commit_meta(link + total, meta);
            return;
        }
        let mut pkt = std::mem::take(&mut self.scratch);
        pkt.clear();
        pkt.resize(total, 0);
        repr.emit(&mut pkt[..ipv6::HEADER_LEN]);
        fill(&mut pkt[ipv6::HEADER_LEN..]);
        off.complete_checksum(&mut pkt[ipv6::HEADER_LEN..]);
        if total <= self.config.mtu {
            self.output_v6(now, dst, &pkt);
        } else {
            self.fragment_v6(now, dst, &pkt);
        }
        self.scratch = pkt;
    }

    /// Splits `pkt` (fixed header, no extension headers) into fragments
    /// that fit the MTU, each with a Fragment header, and sends them.
    fn fragment_v6(&mut self, now: Instant, dst: Ipv6Addr, pkt: &[u8]) {
        let hl = ipv6::HEADER_LEN;
        let chunk = self.config.mtu.saturating_sub(hl + 8) & !7;
        if chunk == 0 {
            self.counters.ip6.frag_fails += 1;
            trace_drop!("ip6.frag_fails");
            return;
        }
        let ident = self.next_random() as u32;
        let next_header = pkt[6];
        let data = &pkt[hl..];
        let mut frag = Vec::with_capacity(self.config.mtu);
        let mut off = 0;
        self.counters.ip6.frag_oks += 1;
        while off < data.len() {
            let end = (off + chunk).min(data.len());
            let more = end < data.len();
            frag.clear();
            frag.extend_from_slice(&pkt[..hl]);
            frag[4..6].copy_from_slice(&((8 + end - off) as u16).to_be_bytes());
            frag[6] = ipv6::next_header::FRAGMENT;
            frag.extend_from_slice(&[next_header, 0]);
            frag.extend_from_slice(&((off as u16) | more as u16).to_be_bytes());
            frag.extend_from_slice(&ident.to_be_bytes());
            frag.extend_from_slice(&data[off..end]);
            self.counters.ip6.frag_creates += 1;
            self.output_v6(now, dst, &frag);
            off = end;
        }
    }

    /// Puts one finished IPv6 packet that fits the MTU on the link.
    fn output_v6(&mut self, now: Instant, dst: Ipv6Addr, pkt: &[u8]) {
        let ethertype = crate::wire::ethernet::ethertype::IPV6;
        if self.config.medium != Medium::Ethernet {
            self.write_frame_typed(None, ethertype, pkt);
        } else if dst.is_multicast() {
            self.write_frame_typed(Some(ipv6::multicast_mac(dst)), ethertype, pkt);
        } else {
            match self.neighbors6.resolve_or_queue(dst, now, || pkt.to_vec()) {
                super::Resolve::Known(hw) => self.write_frame_typed(Some(hw), ethertype, pkt),
                super::Resolve::Queued {
                    send_request,
                    dropped,
                } => {
                    if dropped {
                        self.counters.ip6.out_discards += 1;
                        trace_drop!("ip6.out_discards");
                    }
                    if send_request {
                        self.send_neighbor_solicit(now, dst, false);
                    }
                }
            }
        }
    }
}
