//! ICMPv4 (RFC 792, RFC 1122 §3.2.2): echo, error delivery to sockets, and
//! rate-limited error generation.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use super::{Interface, IpMeta};
use crate::time::Instant;
use crate::wire::icmpv4::{self, DstUnreachable, TimeExceeded};
use crate::wire::{icmpv6, ipv4, Error};

/// Rate limit of ICMP errors the stack sends: a token bucket, like Linux's
/// `icmp_msgs_per_sec` (1000) and `icmp_msgs_burst` (50). Echo replies are
/// not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpRateLimit {
    /// Tokens added per second.
    pub per_sec: u32,
    /// Bucket size.
    pub burst: u32,
}

impl Default for IcmpRateLimit {
    fn default() -> Self {
        IcmpRateLimit {
            per_sec: 1000,
            burst: 50,
        }
    }
}

/// Token bucket in millionths of a token, driven by `now`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: IcmpRateLimit,
    micro_tokens: u64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: IcmpRateLimit, now: Instant) -> Self {
        TokenBucket {
            rate,
            micro_tokens: rate.burst as u64 * 1_000_000,
            last: now,
        }
    }

    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = (now - self.last).as_micros() as u64;
        self.last = self.last.max(now);
        let cap = self.rate.burst as u64 * 1_000_000;
        self.micro_tokens =
            (self.micro_tokens + elapsed.saturating_mul(self.rate.per_sec as u64)).min(cap);
        if self.micro_tokens >= 1_000_000 {
            self.micro_tokens -= 1_000_000;
            true
        } else {
            false
        }
    }
}

/// ICMP types that are errors (no error may be sent about them).
fn is_error_type(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// RFC 1812 §4.3.2.3: an error quotes as much of the datagram as fits in
/// 576 bytes.
const MAX_ERROR_DATAGRAM: usize = 576;

impl Interface {
    pub(super) fn process_icmp(&mut self, now: Instant, meta: &IpMeta, payload: &[u8]) {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (meta.src, meta.dst) else {
            return;
        };
        let c = &mut self.counters.icmp;
        c.in_msgs += 1;
        if let Some(&t) = payload.first() {
            c.in_type[t as usize] += 1;
        }
        let Ok(pkt) = icmpv4::Packet::new_checked(payload) else {
            c.in_errors += 1;
            trace_drop!("icmp.in_errors");
            return;
        };
        let repr = match icmpv4::Repr::parse(&pkt) {
            Ok(r) => r,
            Err(Error::Checksum) => {
                c.in_csum_errors += 1;
                c.in_errors += 1;
                trace_drop!("icmp.in_errors");
                return;
            }
            // Types the stack does not act on are counted by type above.
            Err(Error::Unsupported) => return,
            Err(_) => {
                c.in_errors += 1;
                trace_drop!("icmp.in_errors");
                return;
            }
        };
        match repr {
            icmpv4::Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                // Like Linux's icmp_echo_ignore_broadcasts=1 (smurf defence).
                if self.is_broadcast(dst) {
                    return;
                }
                let reply = icmpv4::Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                self.send_icmp(now, dst, src, &reply);
            }
            icmpv4::Repr::DstUnreachable {
                reason: DstUnreachable::FragRequired,
                next_hop_mtu,
                data,
            } => self.deliver_frag_needed(now, data, next_hop_mtu),
            icmpv4::Repr::DstUnreachable { reason, data, .. } => {
                let kind = match reason {
                    // Codes 9 and 10 (network/host administratively
                    // prohibited, RFC 1122 §3.2.2.1): refused, as on Linux
                    // and FreeBSD.
                    DstUnreachable::PortUnreachable
                    | DstUnreachable::ProtoUnreachable
                    | DstUnreachable::Other(9 | 10) => Some(io::ErrorKind::ConnectionRefused),
                    DstUnreachable::NetUnreachable => Some(io::ErrorKind::NetworkUnreachable),
                    DstUnreachable::HostUnreachable
                    | DstUnreachable::SourceRouteFailed
                    | DstUnreachable::AdminProhibited => Some(io::ErrorKind::HostUnreachable),
                    // Fragmentation needed is path-MTU news, not an error
                    // for a datagram socket; other codes are soft.
                    _ => None,
                };
                if let Some(kind) = kind {
                    self.deliver_icmp_error(data, kind, true);
                }
            }
            // A connection attempt whose SYN ran out of hops fails with
            // EHOSTUNREACH, as on Linux and FreeBSD; UDP sockets ignore
            // it (a soft error: Linux reports it only with IP_RECVERR).
            icmpv4::Repr::TimeExceeded { data, .. } => {
                self.deliver_icmp_error(data, io::ErrorKind::HostUnreachable, false);
            }
            icmpv4::Repr::EchoReply { .. } => {}
        }
    }

    /// Hands an ICMP error to the socket whose datagram it quotes, after
    /// checking the quote names one of our addresses and a connected
    /// socket's exact 4-tuple (RFC 5927 §4.1).
    fn deliver_icmp_error(&mut self, quote: &[u8], kind: io::ErrorKind, to_udp: bool) {
        let Some(&vihl) = quote.first() else { return };
        if vihl >> 4 != 4 {
            return;
        }
        let ihl = (vihl & 0x0f) as usize * 4;
        if ihl < ipv4::HEADER_LEN || quote.len() < ihl + 8 {
            return;
        }
        let protocol = quote[9];
        let src = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
        let dst = Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]);
        if !self.has_addr(src) {
            return;
        }
        let sport = u16::from_be_bytes([quote[ihl], quote[ihl + 1]]);
        let dport = u16::from_be_bytes([quote[ihl + 2], quote[ihl + 3]]);
        let local = SocketAddr::V4(SocketAddrV4::new(src, sport));
        let remote = SocketAddr::V4(SocketAddrV4::new(dst, dport));
        if protocol == ipv4::protocol::UDP && to_udp {
            self.udp_icmp_error(local, remote, kind);
        } else if protocol == ipv4::protocol::TCP {
            let seq = u32::from_be_bytes([
                quote[ihl + 4],
                quote[ihl + 5],
                quote[ihl + 6],
                quote[ihl + 7],
            ]);
            self.tcp_icmp_error(local, remote, seq, kind);
        }
    }

    /// A "fragmentation needed and DF set" (RFC 1191): path-MTU news for
    /// the TCP connection whose segment it quotes. A next-hop MTU of zero
    /// (a router older than RFC 1191), or one not below the quoted
    /// datagram's length, is replaced by the plateau below that length
    /// (RFC 1191 §5 and §7). UDP is sent without DF, so only TCP listens.
    fn deliver_frag_needed(&mut self, now: Instant, quote: &[u8], next_hop_mtu: u16) {
        let Some(q) = QuotedSegment::parse(quote)
            .filter(|q| q.protocol == ipv4::protocol::TCP && self.has_addr(q.src))
        else {
            self.tcp.counters.pmtu_unmatched += 1;
            trace_drop!("tcp.pmtu_unmatched");
            return;
        };
        let mut mtu = next_hop_mtu as usize;
        if mtu == 0 || mtu >= q.total_len {
            mtu = plateau_below(q.total_len);
        }
        let local = SocketAddr::V4(SocketAddrV4::new(q.src, q.src_port));
        let remote = SocketAddr::V4(SocketAddrV4::new(q.dst, q.dst_port));
        self.tcp_packet_too_big(now, local, remote, q.seq, mtu);
    }

    /// Sends an ICMP message from `src` to `dst`.
    pub(super) fn send_icmp(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        repr: &icmpv4::Repr,
    ) {
        let ip = ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: ipv4::protocol::ICMP,
            payload_len: repr.buffer_len(),
            ttl: self.config.ttl,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        };
        let t = icmp_type(repr);
        self.counters.icmp.out_msgs += 1;
        self.counters.icmp.out_type[t as usize] += 1;
        self.send_ipv4(now, ip, |buf| {
            repr.emit(&mut icmpv4::Packet::new_unchecked(buf));
        });
    }

    /// Whether an error may be sent about a datagram from `src` to `dst`
    /// (RFC 1122 §3.2.2) and the rate limit allows it now.
    fn may_send_error(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, quote: &[u8]) -> bool {
        if self.is_broadcast(dst) || dst.is_multicast() {
            return false;
        }
        if src.is_unspecified() || src.is_broadcast() || src.is_multicast() {
            return false;
        }
        // Never an error about an ICMP error.
        let ihl = quote.first().map_or(0, |b| (b & 0x0f) as usize * 4);
        if quote.get(9) == Some(&ipv4::protocol::ICMP)
            && quote.get(ihl).is_some_and(|t| is_error_type(*t))
        {
            return false;
        }
        if !self.icmp_limiter.take(now) {
            self.counters.icmp.out_rate_limited += 1;
            trace_drop!("icmp.out_rate_limited");
            return false;
        }
        true
    }

    fn error_source(&self, orig_src: Ipv4Addr, orig_dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.has_addr(orig_dst) {
            Some(orig_dst)
        } else {
            self.source_for(orig_src)
        }
    }

    /// Sends a destination-unreachable about the datagram in `meta`.
    pub(super) fn send_icmp_error(&mut self, now: Instant, meta: &IpMeta, reason: DstUnreachable) {
        let (osrc, odst) = match (meta.src, meta.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                // The IPv6 equivalents (RFC 4443 §3.1).
                let code = match reason {
                    DstUnreachable::PortUnreachable => icmpv6::unreachable::PORT,
                    _ => icmpv6::unreachable::ADDRESS,
                };
                let kind = icmpv6::kind::DST_UNREACHABLE;
                self.send_icmpv6_error(now, s, d, meta.packet, kind, code, 0);
                return;
            }
            _ => return,
        };
        if !self.may_send_error(now, osrc, odst, meta.packet) {
            return;
        }
        let Some(src) = self.error_source(osrc, odst) else {
            return;
        };
        let room = MAX_ERROR_DATAGRAM - ipv4::HEADER_LEN - 8;
        let data = &meta.packet[..meta.packet.len().min(room)];
        let repr = icmpv4::Repr::DstUnreachable {
            reason,
            next_hop_mtu: 0,
            data,
        };
        self.send_icmp(now, src, osrc, &repr);
    }

    /// Sends time-exceeded (fragment reassembly) about a datagram whose
    /// first fragment (header plus up to 8 bytes) is `first`.
    pub(super) fn send_reassembly_timeout(&mut self, now: Instant, first: &[u8]) {
        if first.len() < ipv4::HEADER_LEN {
            return;
        }
        let src = Ipv4Addr::new(first[12], first[13], first[14], first[15]);
        let dst = Ipv4Addr::new(first[16], first[17], first[18], first[19]);
        if !self.may_send_error(now, src, dst, first) {
            return;
        }
        let Some(me) = self.error_source(src, dst) else {
            return;
        };
        let repr = icmpv4::Repr::TimeExceeded {
            reason: TimeExceeded::FragReassembly,
            data: first,
        };
        self.send_icmp(now, me, src, &repr);
    }
}

/// The start of the datagram an ICMP error quotes: the IPv4 header and the
/// first 8 bytes of a TCP (or UDP) header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QuotedSegment {
    protocol: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// The quoted datagram's Total Length field.
    total_len: usize,
    src_port: u16,
    dst_port: u16,
    /// The TCP sequence number (bytes 4..8 of the transport header).
    seq: u32,
}

impl QuotedSegment {
    fn parse(quote: &[u8]) -> Option<QuotedSegment> {
        let vihl = *quote.first()?;
        let ihl = (vihl & 0x0f) as usize * 4;
        if vihl >> 4 != 4 || ihl < ipv4::HEADER_LEN || quote.len() < ihl + 8 {
            return None;
        }
        let be16 = |i: usize| u16::from_be_bytes([quote[i], quote[i + 1]]);
        Some(QuotedSegment {
            protocol: quote[9],
            src: Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]),
            dst: Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]),
            total_len: be16(2) as usize,
            src_port: be16(ihl),
            dst_port: be16(ihl + 2),
            seq: u32::from_be_bytes([
                quote[ihl + 4],
                quote[ihl + 5],
                quote[ihl + 6],
                quote[ihl + 7],
            ]),
        })
    }
}

/// RFC 1191 §7's table of common MTU plateaus, largest first.
const MTU_PLATEAUS: [usize; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// The largest plateau below `len` (68, the IPv4 minimum, at the bottom),
/// the estimate for a router that does not report its next-hop MTU.
fn plateau_below(len: usize) -> usize {
    MTU_PLATEAUS
        .iter()
        .copied()
        .find(|&p| p < len)
        .unwrap_or(68)
}

fn icmp_type(repr: &icmpv4::Repr) -> u8 {
    match repr {
        icmpv4::Repr::EchoReply { .. } => 0,
        icmpv4::Repr::DstUnreachable { .. } => 3,
        icmpv4::Repr::EchoRequest { .. } => 8,
        icmpv4::Repr::TimeExceeded { .. } => 11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn plateaus_follow_rfc_1191() {
        assert_eq!(plateau_below(1500), 1492);
        assert_eq!(plateau_below(1492), 1006);
        assert_eq!(plateau_below(1493), 1492);
        assert_eq!(plateau_below(576), 508);
        assert_eq!(plateau_below(65535), 32000);
        assert_eq!(plateau_below(68), 68);
        assert_eq!(plateau_below(0), 68);
    }

    #[test]
    fn quoted_segment_parses_and_rejects_short_quotes() {
        let mut q = [0u8; 28];
        q[0] = 0x45;
        q[2..4].copy_from_slice(&1500u16.to_be_bytes());
        q[9] = 6;
        q[12..16].copy_from_slice(&[10, 0, 0, 1]);
        q[16..20].copy_from_slice(&[10, 0, 0, 2]);
        q[20..22].copy_from_slice(&40000u16.to_be_bytes());
        q[22..24].copy_from_slice(&80u16.to_be_bytes());
        q[24..28].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        let s = QuotedSegment::parse(&q).unwrap();
        assert_eq!(
            (s.protocol, s.total_len, s.src_port, s.dst_port, s.seq),
            (6, 1500, 40000, 80, 0xdead_beef)
        );
        assert_eq!(s.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(s.dst, Ipv4Addr::new(10, 0, 0, 2));
        for n in 0..28 {
            assert_eq!(QuotedSegment::parse(&q[..n]), None, "{n} bytes");
        }
        q[0] = 0x65;
        assert_eq!(QuotedSegment::parse(&q), None, "IPv6 version nibble");
        q[0] = 0x44;
        assert_eq!(QuotedSegment::parse(&q), None, "IHL below 5");
    }

    #[test]
    fn token_bucket_limits_rate() {
        let t0 = Instant::from_secs(1);
        let mut b = TokenBucket::new(
            IcmpRateLimit {
                per_sec: 10,
                burst: 3,
            },
            t0,
        );
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
    }
}
