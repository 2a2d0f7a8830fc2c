//! Reading a capture into TCP and UDP conversations: link types (Ethernet
//! with VLAN tags, raw IP, Linux cooked SLL and SLL2, BSD loopback), IPv4
//! with fragment reassembly, IPv6 (extension headers walked; fragments
//! are not reassembled), and the TCP/UDP headers. Transport checksums are
//! not required to verify, and an IPv4 header checksum may be 0 (captures
//! taken on a sending host hold unfinished checksums because of offload;
//! tshark takes them too); the replay recomputes them. A wrong non-zero
//! IPv4 header checksum rejects the frame. Every rejected frame is counted
//! with its [`Reject`] reason.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::phy::pcap::Reader;
use crate::wire::{ipv4, ipv6, tcp, udp};

/// LINKTYPE_NULL (BSD loopback: a 4-byte address family).
pub const LINKTYPE_NULL: u16 = 0;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_RAW (bare IPv4/IPv6; also 12 and 14 on some systems).
pub const LINKTYPE_RAW: u16 = 101;
/// LINKTYPE_LINUX_SLL (Linux cooked capture v1).
pub const LINKTYPE_LINUX_SLL: u16 = 113;
/// LINKTYPE_IPV4.
pub const LINKTYPE_IPV4: u16 = 228;
/// LINKTYPE_IPV6.
pub const LINKTYPE_IPV6: u16 = 229;
/// LINKTYPE_LINUX_SLL2 (Linux cooked capture v2).
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

/// The IPv4 or IPv6 packet inside a captured frame of link type
/// `linktype`, or `None` when the frame holds something else or does not
/// parse.
pub fn ip_of_frame(linktype: u16, data: &[u8]) -> Option<&[u8]> {
    let (ethertype, rest) = match linktype {
        LINKTYPE_ETHERNET => {
            let mut et = u16::from_be_bytes([*data.get(12)?, *data.get(13)?]);
            let mut off = 14;
            // 802.1Q / 802.1ad tags.
            while et == 0x8100 || et == 0x88a8 {
                et = u16::from_be_bytes([*data.get(off + 2)?, *data.get(off + 3)?]);
                off += 4;
            }
            (et, data.get(off..)?)
        }
        LINKTYPE_RAW | 12 | 14 => match data.first()? >> 4 {
            6 => (0x86dd, data),
            _ => (0x0800, data),
        },
        LINKTYPE_IPV4 => (0x0800, data),
        LINKTYPE_IPV6 => (0x86dd, data),
        LINKTYPE_LINUX_SLL => (
            u16::from_be_bytes([*data.get(14)?, *data.get(15)?]),
            data.get(16..)?,
        ),
        LINKTYPE_LINUX_SLL2 => (
            u16::from_be_bytes([*data.first()?, *data.get(1)?]),
            data.get(20..)?,
        ),
        LINKTYPE_NULL => {
            let fam = data.get(..4)?;
            let af = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let af_be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            // AF_INET6 is 10 on Linux, 24/28/30 on the BSDs and macOS.
            match (af, af_be) {
                (2, _) | (_, 2) => (0x0800, data.get(4..)?),
                (10 | 24 | 28 | 30, _) | (_, 10 | 24 | 28 | 30) => (0x86dd, data.get(4..)?),
                _ => return None,
            }
        }
        _ => return None,
    };
    match (ethertype, rest.first()? >> 4) {
        (0x0800, 4) | (0x86dd, 6) => Some(rest),
        _ => None,
    }
}

/// What one captured frame turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A TCP segment.
    Tcp(TcpPacket),
    /// A whole UDP datagram (reassembled when it came in fragments).
    Udp(UdpPacket),
    /// A fragment of an IPv4 datagram not yet complete.
    Fragment,
    /// Valid, but not TCP or UDP over IPv4 (ARP, ICMP, IPv6, ...).
    Other,
    /// Garbage: does not parse at the link, IP or transport layer.
    Rejected(Reject),
}

/// Why a captured frame was rejected as garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// Shorter than the link header of its link type.
    LinkHeader,
    /// A link header naming something that is neither IPv4, IPv6 nor ARP
    /// (or an IP ethertype whose packet has the wrong version).
    Ethertype,
    /// A link type the replay does not read.
    Linktype,
    /// An IPv4 header that does not parse (lengths, version).
    Ipv4Header,
    /// An IPv4 header checksum that is neither right nor 0.
    Ipv4Checksum,
    /// An IPv6 header that does not parse.
    Ipv6Header,
    /// A TCP header that does not parse (data offset).
    TcpHeader,
    /// TCP options that do not parse.
    TcpOptions,
    /// A UDP header that does not parse (length).
    UdpHeader,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reject::LinkHeader => "shorter than their link header",
            Reject::Ethertype => "of a protocol that is not IPv4, IPv6 or ARP",
            Reject::Linktype => "of a link type the replay does not read",
            Reject::Ipv4Header => "with an IPv4 header that does not parse",
            Reject::Ipv4Checksum => "with a wrong (non-zero) IPv4 header checksum",
            Reject::Ipv6Header => "with an IPv6 header that does not parse",
            Reject::TcpHeader => "with a TCP header that does not parse",
            Reject::TcpOptions => "with TCP options that do not parse",
            Reject::UdpHeader => "with a UDP header that does not parse",
        })
    }
}

/// A captured TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket {
    /// Microseconds since the capture's first frame.
    pub t: u64,
    /// Source.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: tcp::Flags,
    /// Window field.
    pub window: u16,
    /// Options.
    pub options: tcp::Options,
    /// Payload.
    pub payload: Vec<u8>,
}

/// A captured UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket {
    /// Microseconds since the capture's first frame.
    pub t: u64,
    /// Source.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// Payload.
    pub payload: Vec<u8>,
    /// The largest fragment payload, when the datagram came in fragments.
    pub fragment_size: Option<usize>,
}

/// A capture, decoded.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// Every frame, in capture order.
    pub frames: Vec<Frame>,
    /// The raw bytes of every rejected frame (with its time), for the
    /// replay to throw at the stack too.
    pub rejected: Vec<(u64, Vec<u8>)>,
    /// Frames read from the file.
    pub frames_read: usize,
    /// Why the file ended early, when it did (a truncated or malformed
    /// capture: what was read before is kept; the remainder counts as
    /// one rejected frame).
    pub error: Option<String>,
    /// IPv4 frames taken although their header checksum is 0: the capture
    /// was taken on a sending host whose NIC fills the checksum in
    /// (offload). tshark takes them too.
    pub zero_ip_checksums: usize,
}

impl Capture {
    /// Frames that were garbage.
    pub fn rejected_count(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| matches!(f, Frame::Rejected(_)))
            .count()
            + usize::from(self.error.is_some())
    }

    /// Why frames were rejected: each reason with its count, most frequent
    /// first (a file that ends early is not included: see `error`).
    pub fn reject_reasons(&self) -> Vec<(Reject, usize)> {
        let mut counts: HashMap<Reject, usize> = HashMap::new();
        for f in &self.frames {
            if let Frame::Rejected(r) = f {
                *counts.entry(*r).or_default() += 1;
            }
        }
        let mut v: Vec<(Reject, usize)> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// One line saying why frames were rejected, e.g. "3 frames with a
    /// wrong (non-zero) IPv4 header checksum; 1 frame shorter than their
    /// link header"; `None` when none was.
    pub fn reject_summary(&self) -> Option<String> {
        let v = self.reject_reasons();
        if v.is_empty() {
            return None;
        }
        Some(
            v.iter()
                .map(|(r, n)| format!("{n} frame{} {r}", if *n == 1 { "" } else { "s" }))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// Reads the capture at `path` (pcap or pcapng).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Capture> {
        let bytes = std::fs::read(path.as_ref()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", path.as_ref().display()),
            )
        })?;
        Ok(Capture::from_bytes(&bytes))
    }

    /// Decodes a capture held in memory. Never fails: what cannot be read
    /// is counted as rejected.
    pub fn from_bytes(bytes: &[u8]) -> Capture {
        let mut cap = Capture::default();
        let mut start = None;
        let mut reasm = FragmentTable::default();
        for rec in Reader::new(bytes) {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    cap.error = Some(e.to_string());
                    break;
                }
            };
            cap.frames_read += 1;
            let t0 = *start.get_or_insert(rec.timestamp_micros);
            let t = rec.timestamp_micros.saturating_sub(t0);
            let frame = match ip_of_frame(rec.linktype, &rec.data) {
                None => classify_non_ip(rec.linktype, &rec.data),
                Some(ip) => {
                    let zero = ip.first().is_some_and(|b| b >> 4 == 4)
                        && ip.get(10..12) == Some(&[0, 0][..]);
                    let f = decode_ip(t, ip, &mut reasm);
                    if zero && !matches!(f, Frame::Rejected(_)) {
                        cap.zero_ip_checksums += 1;
                    }
                    f
                }
            };
            if matches!(frame, Frame::Rejected(_)) {
                cap.rejected.push((t, rec.data.clone()));
            }
            cap.frames.push(frame);
        }
        cap
    }
}

/// A frame that is not IPv4: valid ARP, IPv6 and the like are "other";
/// anything that does not even have a link header is rejected.
fn classify_non_ip(linktype: u16, data: &[u8]) -> Frame {
    let ok = match linktype {
        LINKTYPE_ETHERNET => data.len() >= 14,
        LINKTYPE_LINUX_SLL => data.len() >= 16,
        LINKTYPE_LINUX_SLL2 => data.len() >= 20,
        LINKTYPE_RAW | LINKTYPE_IPV4 | 12 | 14 => data.first().is_some_and(|b| b >> 4 == 6),
        LINKTYPE_NULL => data.len() >= 4,
        _ => return Frame::Rejected(Reject::Linktype),
    };
    if !ok {
        return Frame::Rejected(match linktype {
            LINKTYPE_RAW | LINKTYPE_IPV4 | 12 | 14 if !data.is_empty() => Reject::Ethertype,
            _ => Reject::LinkHeader,
        });
    }
    // An IPv4 ethertype that did not hold a parsable IPv4 packet is garbage.
    let et = match linktype {
        LINKTYPE_ETHERNET => Some(u16::from_be_bytes([data[12], data[13]])),
        LINKTYPE_LINUX_SLL => Some(u16::from_be_bytes([data[14], data[15]])),
        LINKTYPE_LINUX_SLL2 => Some(u16::from_be_bytes([data[0], data[1]])),
        _ => None,
    };
    // ARP and IPv6 are real traffic the replay does not play; any other
    // ethertype (or an IPv4 one that did not hold IPv4) is garbage.
    match et {
        None | Some(0x0806) | Some(0x86dd) => Frame::Other,
        // An IPv4 or IPv6 ethertype whose packet is too short to have a
        // version or has the wrong one.
        Some(0x0800) => Frame::Rejected(Reject::Ipv4Header),
        Some(_) => Frame::Rejected(Reject::Ethertype),
    }
}

/// (source, destination, identification, protocol) of a fragmented datagram.
type FragKey = (Ipv4Addr, Ipv4Addr, u16, u8);
/// A fragment: (offset, bytes, more fragments follow).
type Piece = (usize, Vec<u8>, bool);

#[derive(Default)]
struct FragmentTable {
    pending: HashMap<FragKey, Vec<Piece>>,
}

impl FragmentTable {
    fn add(
        &mut self,
        key: FragKey,
        off: usize,
        data: &[u8],
        more: bool,
    ) -> Option<(Vec<u8>, usize)> {
        if self.pending.len() > 256 {
            self.pending.clear();
        }
        let pieces = self.pending.entry(key).or_default();
        if pieces.len() >= 64 {
            return None;
        }
        pieces.push((off, data.to_vec(), more));
        pieces.sort_by_key(|p| p.0);
        let last = pieces.iter().find(|p| !p.2)?;
        let total = last.0 + last.1.len();
        let mut have = 0;
        for (o, d, _) in pieces.iter() {
            if *o > have {
                return None;
            }
            have = have.max(o + d.len());
        }
        if have < total || total > 65535 {
            return None;
        }
        let mut out = vec![0u8; total];
        let mut largest = 0;
        for (o, d, _) in pieces.iter() {
            let end = (o + d.len()).min(total);
            if *o < end {
                out[*o..end].copy_from_slice(&d[..end - o]);
            }
            largest = largest.max(d.len());
        }
        self.pending.remove(&key);
        Some((out, largest))
    }
}

/// An IPv6 packet: TCP or UDP after the extension headers; fragments
/// and everything else are "other" (valid traffic the replay does not
/// play), what does not parse is rejected.
fn decode_ipv6(t: u64, ip: &[u8]) -> Frame {
    let Ok(p) = ipv6::Packet::new_checked(ip) else {
        return Frame::Rejected(Reject::Ipv6Header);
    };
    let (src, dst) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
    let ipv6::Walk::Upper {
        next_header: protocol,
        at: offset,
    } = ipv6::walk(p.packet())
    else {
        return Frame::Other;
    };
    let payload = &p.packet()[offset..];
    transport(t, src, dst, protocol, payload, None)
}

fn decode_ip(t: u64, ip: &[u8], reasm: &mut FragmentTable) -> Frame {
    if ip.first().is_some_and(|b| b >> 4 == 6) {
        return decode_ipv6(t, ip);
    }
    let Ok(p) = ipv4::Packet::new_checked(ip) else {
        return Frame::Rejected(Reject::Ipv4Header);
    };
    // A wrong IP header checksum means a damaged frame, except 0: a NIC
    // with checksum offload fills the header checksum in too, so a capture
    // taken on the sending host holds 0 there. tshark takes those (it does
    // not check IPv4 checksums by default); so does the replay, which
    // recomputes every checksum anyway.
    if !p.verify_checksum() && p.checksum() != 0 {
        return Frame::Rejected(Reject::Ipv4Checksum);
    }
    // Captures on a sending host may cut frames at the snap length or hold
    // a zero total length (TSO); take what the frame holds.
    let (src, dst) = (p.src_addr(), p.dst_addr());
    let payload = p.payload();
    let (payload, frag_size) = if p.is_fragment() {
        let key = (src, dst, p.ident(), p.protocol());
        match reasm.add(key, p.frag_offset(), payload, p.more_frags()) {
            Some((whole, largest)) => (whole, Some(largest)),
            None => return Frame::Fragment,
        }
    } else {
        (payload.to_vec(), None)
    };
    transport(
        t,
        IpAddr::V4(src),
        IpAddr::V4(dst),
        p.protocol(),
        &payload,
        frag_size,
    )
}

fn transport(
    t: u64,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    payload: &[u8],
    frag_size: Option<usize>,
) -> Frame {
    match protocol {
        ipv4::protocol::TCP => {
            let Ok(tp) = tcp::Packet::new_checked(payload) else {
                return Frame::Rejected(Reject::TcpHeader);
            };
            let Ok(options) = tcp::Options::parse(tp.options()) else {
                return Frame::Rejected(Reject::TcpOptions);
            };
            Frame::Tcp(TcpPacket {
                t,
                src: SocketAddr::new(src, tp.src_port()),
                dst: SocketAddr::new(dst, tp.dst_port()),
                seq: tp.seq_number(),
                ack: tp.ack_number(),
                flags: tp.flags(),
                window: tp.window_len(),
                options,
                payload: tp.payload().to_vec(),
            })
        }
        ipv4::protocol::UDP => {
            let Ok(up) = udp::Packet::new_checked(payload) else {
                return Frame::Rejected(Reject::UdpHeader);
            };
            Frame::Udp(UdpPacket {
                t,
                src: SocketAddr::new(src, up.src_port()),
                dst: SocketAddr::new(dst, up.dst_port()),
                payload: up.payload().to_vec(),
                fragment_size: frag_size,
            })
        }
        _ => Frame::Other,
    }
}

/// One TCP or UDP conversation of a capture, seen from its two ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConversationKey {
    /// TCP (true) or UDP.
    pub tcp: bool,
    /// The end that spoke first (the client: it sent the SYN, when seen).
    pub client: SocketAddr,
    /// The other end.
    pub server: SocketAddr,
}

impl Capture {
    /// The conversations, with how many frames each has, largest first.
    pub fn conversations(&self) -> Vec<(ConversationKey, usize)> {
        let mut counts: HashMap<ConversationKey, usize> = HashMap::new();
        let mut order: Vec<ConversationKey> = Vec::new();
        for f in &self.frames {
            let (tcp, src, dst, syn_only) = match f {
                Frame::Tcp(p) => (true, p.src, p.dst, p.flags.syn() && !p.flags.ack()),
                Frame::Udp(p) => (false, p.src, p.dst, false),
                _ => continue,
            };
            let fwd = ConversationKey {
                tcp,
                client: src,
                server: dst,
            };
            let rev = ConversationKey {
                tcp,
                client: dst,
                server: src,
            };
            if let Some(c) = counts.get_mut(&fwd) {
                *c += 1;
            } else if let Some(c) = counts.get_mut(&rev) {
                if syn_only {
                    // The SYN names the client even when the other end
                    // spoke first in the capture.
                    let n = *c + 1;
                    counts.remove(&rev);
                    counts.insert(fwd.clone(), n);
                    if let Some(o) = order.iter_mut().find(|k| **k == rev) {
                        *o = fwd;
                    }
                } else {
                    *c += 1;
                }
            } else {
                counts.insert(fwd.clone(), 1);
                order.push(fwd);
            }
        }
        let mut out: Vec<(ConversationKey, usize)> =
            order.into_iter().map(|k| (k.clone(), counts[&k])).collect();
        // Stable: among equals, the first in the capture wins; TCP first.
        out.sort_by(|a, b| b.0.tcp.cmp(&a.0.tcp).then(b.1.cmp(&a.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::pcap::Writer;
    use crate::replay::build::{fix_checksums, ipv4_packet};

    fn udp_ip() -> Vec<u8> {
        let mut u = vec![0u8; 12];
        u[0..2].copy_from_slice(&1234u16.to_be_bytes());
        u[2..4].copy_from_slice(&53u16.to_be_bytes());
        u[4..6].copy_from_slice(&12u16.to_be_bytes());
        u[8..].copy_from_slice(b"ping");
        let mut ip = ipv4_packet(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            17,
            7,
            &u,
        );
        fix_checksums(&mut ip);
        ip
    }

    /// The same datagram under every link type the replay reads.
    #[test]
    fn link_types() {
        let ip = udp_ip();
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let mut vlan = vec![0u8; 12];
        vlan.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        vlan.extend_from_slice(&ip);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        for (lt, f) in [
            (LINKTYPE_ETHERNET, eth),
            (LINKTYPE_ETHERNET, vlan),
            (LINKTYPE_RAW, ip.clone()),
            (LINKTYPE_IPV4, ip.clone()),
            (LINKTYPE_LINUX_SLL, sll),
            (LINKTYPE_LINUX_SLL2, sll2),
            (LINKTYPE_NULL, null),
        ] {
            let mut w = Writer::new(Vec::new(), lt).unwrap();
            w.write_packet(5, &f).unwrap();
            let cap = Capture::from_bytes(&w.into_inner());
            match &cap.frames[..] {
                [Frame::Udp(u)] => {
                    assert_eq!(u.payload, b"ping", "linktype {lt}");
                    assert_eq!(u.dst.port(), 53);
                }
                other => panic!("linktype {lt}: {other:?}"),
            }
        }
    }

    #[test]
    fn ipv6_tcp_and_udp_decode_fragments_are_other() {
        let src: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
        let dst: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        let mut u = vec![0u8; 12];
        udp::Repr {
            src_port: 5000,
            dst_port: 53,
        }
        .emit(
            &mut udp::Packet::new_unchecked(&mut u[..]),
            IpAddr::V6(src),
            IpAddr::V6(dst),
            b"ping",
        );
        // Behind a destination options header.
        let mut ip = vec![0u8; 40];
        ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: ipv6::next_header::DST_OPTS,
            payload_len: 8 + u.len(),
            hop_limit: 64,
        }
        .emit(&mut ip);
        ip.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        ip.extend_from_slice(&u);
        let mut frag = ip.clone();
        frag[6] = ipv6::next_header::FRAGMENT;
        frag[40] = 17;
        frag[42..44].copy_from_slice(&[0, 1]);
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x86, 0xdd]);
        eth.extend_from_slice(&ip);
        let mut null = 10u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        for (lt, f) in [
            (LINKTYPE_RAW, ip.clone()),
            (LINKTYPE_IPV6, ip.clone()),
            (LINKTYPE_ETHERNET, eth),
            (LINKTYPE_NULL, null),
        ] {
            let mut w = Writer::new(Vec::new(), lt).unwrap();
            w.write_packet(5, &f).unwrap();
            let cap = Capture::from_bytes(&w.into_inner());
            match &cap.frames[..] {
                [Frame::Udp(u)] => {
                    assert_eq!(u.payload, b"ping", "linktype {lt}");
                    assert_eq!(u.src, SocketAddr::new(IpAddr::V6(src), 5000));
                }
                other => panic!("linktype {lt}: {other:?}"),
            }
        }
        let mut w = Writer::new(Vec::new(), LINKTYPE_RAW).unwrap();
        w.write_packet(5, &frag).unwrap();
        w.write_packet(6, &ip[..30]).unwrap();
        let cap = Capture::from_bytes(&w.into_inner());
        assert_eq!(
            cap.frames,
            vec![Frame::Other, Frame::Rejected(Reject::Ipv6Header)]
        );
    }

    #[test]
    fn fragments_are_reassembled_and_garbage_rejected() {
        let mut w = Writer::new(Vec::new(), LINKTYPE_RAW).unwrap();
        let whole = udp_ip();
        let data = &whole[20..];
        for (off, piece, more) in [(8usize, &data[8..], false), (0, &data[..8], true)] {
            let mut f = ipv4_packet(
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                17,
                9,
                piece,
            );
            let mut p = ipv4::Packet::new_unchecked(&mut f[..]);
            p.set_dont_frag(false);
            p.set_more_frags(more);
            p.set_frag_offset(off);
            p.fill_checksum();
            w.write_packet(1, &f).unwrap();
        }
        w.write_packet(2, &[0x45, 1, 2]).unwrap();
        let cap = Capture::from_bytes(&w.into_inner());
        assert_eq!(cap.frames.len(), 3);
        assert_eq!(cap.frames[0], Frame::Fragment);
        assert!(
            matches!(&cap.frames[1], Frame::Udp(u) if u.payload == b"ping" && u.fragment_size == Some(8))
        );
        assert_eq!(cap.frames[2], Frame::Rejected(Reject::Ipv4Header));
        assert_eq!(cap.rejected_count(), 1);
    }

    /// A capture from a host with checksum offload holds IPv4 header
    /// checksum 0 on what it sent: taken (and counted), as tshark does; a
    /// wrong non-zero one is a damaged frame, rejected with its reason.
    #[test]
    fn zero_ip_checksum_taken_wrong_one_rejected_with_reason() {
        let good = udp_ip();
        let mut zero = good.clone();
        zero[10] = 0;
        zero[11] = 0;
        let mut wrong = good.clone();
        wrong[10] ^= 0x55;
        let mut w = Writer::new(Vec::new(), LINKTYPE_RAW).unwrap();
        for f in [&good, &zero, &wrong, &wrong] {
            w.write_packet(1, f).unwrap();
        }
        w.write_packet(2, &[0x45, 1, 2]).unwrap();
        let cap = Capture::from_bytes(&w.into_inner());
        assert!(matches!(&cap.frames[1], Frame::Udp(u) if u.payload == b"ping"));
        assert_eq!(cap.zero_ip_checksums, 1);
        assert_eq!(
            cap.reject_reasons(),
            vec![(Reject::Ipv4Checksum, 2), (Reject::Ipv4Header, 1)]
        );
        assert_eq!(
            cap.reject_summary().unwrap(),
            "2 frames with a wrong (non-zero) IPv4 header checksum; \
             1 frame with an IPv4 header that does not parse"
        );
    }
}
