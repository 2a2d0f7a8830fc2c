//! IPv6 on the interface (RFC 8200, RFC 4443): input validation, the
//! extension-header walk, ICMPv6 echo and errors, and output on IP media.
//!
//! What works: packets to one of [`Config::addrs_v6`] or to the all-nodes
//! and solicited-node multicast groups are validated (version, length,
//! martian sources), their extension headers walked with RFC 8200's rules
//! for unknown headers and options (ICMPv6 Parameter Problem, rate-limited
//! with ICMPv4's token bucket), echo requests answered, and TCP and UDP
//! handed to the same demultiplexers as IPv4. Not yet: fragment reassembly
//! (fragments are counted in `reasm_fails` and dropped; atomic fragments,
//! RFC 8021, are dropped too), neighbour discovery on Ethernet (IPv6 is
//! sent on IP media only), path MTU from Packet Too Big.
//!
//! [`Config::addrs_v6`]: super::Config::addrs_v6

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use super::{Interface, IpMeta, Ipv4Cidr};
use crate::phy::Medium;
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
        if ipv6::is_martian_source(src) || self.has_addr_v6(src) {
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
            Walk::Fragment(_) => {
                // Reassembly is not implemented yet; atomic fragments
                // (offset 0, no more) are dropped too, per RFC 8021's
                // advice against them.
                self.counters.ip6.reasm_reqds += 1;
                self.counters.ip6.reasm_fails += 1;
                trace_drop!("ip6.reasm_fails");
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
                // RFC 4861 §7.1: only from a link neighbour (hop limit 255).
                // On IP media there is no link layer to resolve; Ethernet
                // neighbour discovery is not implemented yet.
                let _ = hop_limit;
            }
            // Errors about our packets: not acted on yet (no PMTU for
            // IPv6, no soft errors to sockets); counted by type above.
            _ => {}
        }
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
    /// written by `fill`. IP media only for now (no neighbour discovery);
    /// packets larger than the MTU are dropped (an IPv6 host fragments
    /// only what it must, and nothing here needs it yet).
    pub(crate) fn send_ipv6(
        &mut self,
        _now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        self.counters.ip6.out_requests += 1;
        if self.config.medium != Medium::Ip {
            self.counters.ip6.out_no_routes += 1;
            trace_drop!("ip6.out_no_routes");
            return;
        }
        let total = ipv6::HEADER_LEN + payload_len;
        if total > self.config.mtu || payload_len > 65535 {
            self.counters.ip6.frag_fails += 1;
            self.counters.ip6.out_discards += 1;
            trace_drop!("ip6.frag_fails");
            return;
        }
        let Some(buf) = self.tx.reserve(total) else {
            self.counters.link.tx_queue_drops += 1;
            trace_drop!("link.tx_queue_drops");
            self.counters.ip6.out_discards += 1;
            return;
        };
        ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header,
            payload_len,
            hop_limit: self.config.ttl,
        }
        .emit(&mut buf[..ipv6::HEADER_LEN]);
        fill(&mut buf[ipv6::HEADER_LEN..total]);
        self.tx.commit(total);
    }
}
