//! IPv6 (RFC 8200): the fixed header, and a bounded walk over the extension
//! headers that finds the upper-layer header or says why the packet must be
//! dropped (with the ICMPv6 Parameter Problem it deserves, if any).

use std::net::Ipv6Addr;

use super::Error;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Next-header values the walk knows.
pub mod next_header {
    /// Hop-by-Hop Options (only directly after the fixed header).
    pub const HOP_BY_HOP: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header.
    pub const NONE: u8 = 59;
    /// Destination Options.
    pub const DST_OPTS: u8 = 60;
}

/// Most extension headers walked before the packet is dropped (a chain of
/// thousands of empty options headers is an attack, not a packet).
pub const MAX_EXT_HEADERS: usize = 8;

/// A view of an IPv6 packet whose fixed header and declared payload fit in
/// the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// No checks.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the version and that the payload length fits the buffer
    /// (bytes beyond it, link padding, are ignored by the accessors).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        let p = Packet { buffer };
        if HEADER_LEN + p.payload_len() as usize > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Payload length (extension headers included).
    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    /// The first next-header value.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let b: [u8; 16] = self.buffer.as_ref()[8..24].try_into().expect("16 bytes");
        Ipv6Addr::from(b)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let b: [u8; 16] = self.buffer.as_ref()[24..40].try_into().expect("16 bytes");
        Ipv6Addr::from(b)
    }

    /// Header and payload, without link padding.
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN + self.payload_len() as usize]
    }

    /// Everything after the fixed header (extension headers included).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }
}

/// The fixed header of a packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// The upper-layer protocol (no extension headers are sent).
    pub next_header: u8,
    /// Bytes after the fixed header.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Repr {
    /// Writes the fixed header into `buf` (at least [`HEADER_LEN`] bytes).
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = 0x60;
        buf[1] = 0;
        buf[2] = 0;
        buf[3] = 0;
        buf[4..6].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        buf[6] = self.next_header;
        buf[7] = self.hop_limit;
        buf[8..24].copy_from_slice(&self.src_addr.octets());
        buf[24..40].copy_from_slice(&self.dst_addr.octets());
    }
}

/// A fragment header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Offset of this fragment's data, bytes.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
    /// Where the fragmentable part starts in the packet (after the
    /// fragment header).
    pub data_at: usize,
    /// The next-header value the fragmentable part carries.
    pub next_header: u8,
    /// Where the fragment header starts (the unfragmentable part ends).
    pub header_at: usize,
    /// Where the next-header field naming the fragment header sits (byte
    /// 6 of the fixed header, or the first byte of the header before).
    pub nh_field: usize,
}

/// What the extension-header walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The upper-layer protocol `next_header` starts at byte `at` of the
    /// packet (fixed header included).
    Upper {
        /// TCP, UDP or ICMPv6.
        next_header: u8,
        /// Offset of its header.
        at: usize,
    },
    /// A fragment: to be reassembled first.
    Fragment(FragmentInfo),
    /// Drop, and answer with ICMPv6 Parameter Problem `code` pointing at
    /// byte `pointer` of the packet (RFC 8200 §4; RFC 4443 §3.4), unless
    /// the packet went to a multicast address and `even_multicast` is false.
    ParamProblem {
        /// The Parameter Problem code.
        code: u8,
        /// Offset of the offending byte.
        pointer: u32,
        /// Answer even a packet sent to a multicast address.
        even_multicast: bool,
    },
    /// Drop silently: a chain longer than [`MAX_EXT_HEADERS`], a header
    /// that does not fit, No Next Header, an option that says so, or a
    /// protocol this stack does not process (ESP, AH).
    Discard(&'static str),
}

/// ICMPv6 Parameter Problem codes (RFC 4443 §3.4).
pub mod param_problem {
    /// Erroneous header field encountered.
    pub const HEADER: u8 = 0;
    /// Unrecognized Next Header type encountered.
    pub const NEXT_HEADER: u8 = 1;
    /// Unrecognized IPv6 option encountered.
    pub const OPTION: u8 = 2;
}

/// Walks the extension headers of `pkt` (a whole packet, fixed header
/// first). Upper layers the stack knows: TCP, UDP, ICMPv6.
pub fn walk(pkt: &[u8]) -> Walk {
    if pkt.len() < HEADER_LEN {
        return Walk::Discard("truncated");
    }
    let mut nh = pkt[6];
    let mut nh_field = 6usize; // where the current next-header value sits
    let mut at = HEADER_LEN;
    for i in 0..=MAX_EXT_HEADERS {
        match nh {
            next_header::TCP | next_header::UDP | next_header::ICMPV6 => {
                return Walk::Upper {
                    next_header: nh,
                    at,
                };
            }
            next_header::NONE => return Walk::Discard("no next header"),
            next_header::ESP | next_header::AH => return Walk::Discard("ipsec"),
            _ if i == MAX_EXT_HEADERS => return Walk::Discard("extension header chain"),
            next_header::HOP_BY_HOP | next_header::DST_OPTS => {
                if nh == next_header::HOP_BY_HOP && at != HEADER_LEN {
                    // Hop-by-Hop is only allowed first (RFC 8200 §4.1).
                    return Walk::ParamProblem {
                        code: param_problem::NEXT_HEADER,
                        pointer: nh_field as u32,
                        even_multicast: true,
                    };
                }
                let Some(len) = ext_len(pkt, at) else {
                    return Walk::Discard("truncated extension header");
                };
                if let Some(w) = options(pkt, at + 2, at + len) {
                    return w;
                }
                nh_field = at;
                nh = pkt[at];
                at += len;
            }
            next_header::ROUTING => {
                let Some(len) = ext_len(pkt, at) else {
                    return Walk::Discard("truncated extension header");
                };
                if len < 4 {
                    return Walk::Discard("truncated extension header");
                }
                let segments_left = pkt[at + 3];
                if segments_left != 0 {
                    // No routing type is processed here (the stack is not a
                    // router; type 0 is deprecated by RFC 5095): RFC 8200
                    // §4.4 points at the routing type.
                    return Walk::ParamProblem {
                        code: param_problem::HEADER,
                        pointer: (at + 2) as u32,
                        even_multicast: true,
                    };
                }
                nh_field = at;
                nh = pkt[at];
                at += len;
            }
            next_header::FRAGMENT => {
                if pkt.len() < at + 8 {
                    return Walk::Discard("truncated fragment header");
                }
                let off_m = u16::from_be_bytes([pkt[at + 2], pkt[at + 3]]);
                let ident =
                    u32::from_be_bytes([pkt[at + 4], pkt[at + 5], pkt[at + 6], pkt[at + 7]]);
                return Walk::Fragment(FragmentInfo {
                    offset: (off_m & !7) as usize,
                    more: off_m & 1 != 0,
                    ident,
                    data_at: at + 8,
                    next_header: pkt[at],
                    header_at: at,
                    nh_field,
                });
            }
            _ => {
                return Walk::ParamProblem {
                    code: param_problem::NEXT_HEADER,
                    pointer: nh_field as u32,
                    even_multicast: true,
                };
            }
        }
    }
    Walk::Discard("extension header chain")
}

/// Length of the options or routing header at `at` ((Hdr Ext Len + 1) × 8),
/// when it fits in `pkt`.
fn ext_len(pkt: &[u8], at: usize) -> Option<usize> {
    let len = (*pkt.get(at + 1)? as usize + 1) * 8;
    (at + len <= pkt.len()).then_some(len)
}

/// Walks the TLV options in `pkt[from..to]` (RFC 8200 §4.2). `None` when
/// every option may be skipped; otherwise what to do with the packet.
fn options(pkt: &[u8], from: usize, to: usize) -> Option<Walk> {
    let mut i = from;
    while i < to {
        let t = pkt[i];
        if t == 0 {
            i += 1; // Pad1
            continue;
        }
        let Some(&len) = pkt.get(i + 1) else {
            return Some(Walk::Discard("truncated option"));
        };
        let end = i + 2 + len as usize;
        if end > to {
            return Some(Walk::Discard("truncated option"));
        }
        // PadN (1) and the Router Alert (5) need nothing from a host.
        if t != 1 && t != 5 {
            match t >> 6 {
                0 => {}
                1 => return Some(Walk::Discard("option says discard")),
                2 => {
                    return Some(Walk::ParamProblem {
                        code: param_problem::OPTION,
                        pointer: i as u32,
                        even_multicast: true,
                    })
                }
                _ => {
                    return Some(Walk::ParamProblem {
                        code: param_problem::OPTION,
                        pointer: i as u32,
                        even_multicast: false,
                    })
                }
            }
        }
        i = end;
    }
    None
}

/// True for addresses a packet may not come from: unspecified, multicast,
/// loopback (off the loopback interface), IPv4-mapped.
pub fn is_martian_source(a: Ipv6Addr) -> bool {
    a.is_unspecified() || a.is_multicast() || a.is_loopback() || a.to_ipv4_mapped().is_some()
}

/// The link-local address of an interface with MAC `mac`: fe80::/64 with
/// the modified EUI-64 interface identifier (RFC 4291 appendix A).
pub fn link_local(mac: super::EthernetAddress) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The Ethernet multicast address of IPv6 multicast group `a` (RFC 2464
/// §7): 33:33 and the group's last four bytes.
pub fn multicast_mac(a: Ipv6Addr) -> super::EthernetAddress {
    let o = a.octets();
    super::EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(nh: u8, ext: &[u8], upper: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN];
        Repr {
            src_addr: "fd00::1".parse().unwrap(),
            dst_addr: "fd00::2".parse().unwrap(),
            next_header: nh,
            payload_len: ext.len() + upper.len(),
            hop_limit: 64,
        }
        .emit(&mut p);
        p.extend_from_slice(ext);
        p.extend_from_slice(upper);
        p
    }

    #[test]
    fn fixed_header_round_trip() {
        let p = packet(next_header::UDP, &[], &[1, 2, 3]);
        let v = Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.payload_len(), 3);
        assert_eq!(v.next_header(), 17);
        assert_eq!(v.hop_limit(), 64);
        assert_eq!(v.src_addr(), "fd00::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v.payload(), &[1, 2, 3]);
        assert_eq!(Packet::new_checked(&p[..42]).unwrap_err(), Error::Truncated);
        let mut bad = p.clone();
        bad[0] = 0x40;
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn walks_options_routing_and_fragment() {
        // Hop-by-hop with PadN, then destination options with Pad1s, then TCP.
        let hbh = [next_header::DST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        let dst = [next_header::TCP, 0, 0, 0, 0, 0, 0, 0];
        let p = packet(next_header::HOP_BY_HOP, &[hbh, dst].concat(), &[0; 20]);
        assert_eq!(
            walk(&p),
            Walk::Upper {
                next_header: 6,
                at: 56
            }
        );
        // Routing header, segments left 0: ignored.
        let rh = [next_header::UDP, 0, 4, 0, 0, 0, 0, 0];
        let p = packet(next_header::ROUTING, &rh, &[0; 8]);
        assert_eq!(
            walk(&p),
            Walk::Upper {
                next_header: 17,
                at: 48
            }
        );
        // Segments left 1: parameter problem at the routing type.
        let rh = [next_header::UDP, 0, 4, 1, 0, 0, 0, 0];
        let p = packet(next_header::ROUTING, &rh, &[0; 8]);
        assert_eq!(
            walk(&p),
            Walk::ParamProblem {
                code: 0,
                pointer: 42,
                even_multicast: true
            }
        );
        // A fragment header.
        let fh = [next_header::UDP, 0, 0x05, 0x01, 0, 0, 0, 9];
        let p = packet(next_header::FRAGMENT, &fh, &[0; 8]);
        match walk(&p) {
            Walk::Fragment(f) => {
                assert_eq!((f.offset, f.more, f.ident, f.data_at), (0x500, true, 9, 48));
                assert_eq!(f.nh_field, 6);
            }
            w => panic!("{w:?}"),
        }
    }

    #[test]
    fn unknown_things_are_answered_per_rfc_8200() {
        // Unknown next header 253: code 1, pointer at the fixed header's field.
        let p = packet(253, &[], &[0; 8]);
        assert_eq!(
            walk(&p),
            Walk::ParamProblem {
                code: 1,
                pointer: 6,
                even_multicast: true
            }
        );
        // Unknown option types by their top two bits.
        for (t, want) in [
            (0x1e, None),
            (0x5e, Some(Walk::Discard("option says discard"))),
            (
                0x9e,
                Some(Walk::ParamProblem {
                    code: 2,
                    pointer: 42,
                    even_multicast: true,
                }),
            ),
            (
                0xde,
                Some(Walk::ParamProblem {
                    code: 2,
                    pointer: 42,
                    even_multicast: false,
                }),
            ),
        ] {
            let ext = [next_header::UDP, 0, t, 4, 0, 0, 0, 0];
            let p = packet(next_header::DST_OPTS, &ext, &[0; 8]);
            let w = walk(&p);
            match want {
                None => assert_eq!(
                    w,
                    Walk::Upper {
                        next_header: 17,
                        at: 48
                    }
                ),
                Some(x) => assert_eq!(w, x),
            }
        }
        // Hop-by-hop not first.
        let dst = [next_header::HOP_BY_HOP, 0, 1, 4, 0, 0, 0, 0];
        let hbh = [next_header::UDP, 0, 1, 4, 0, 0, 0, 0];
        let p = packet(next_header::DST_OPTS, &[dst, hbh].concat(), &[0; 8]);
        assert_eq!(
            walk(&p),
            Walk::ParamProblem {
                code: 1,
                pointer: 40,
                even_multicast: true
            }
        );
        // A long chain of empty destination options.
        let mut ext = Vec::new();
        for _ in 0..20 {
            ext.extend_from_slice(&[next_header::DST_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        let p = packet(next_header::DST_OPTS, &ext, &[]);
        assert_eq!(walk(&p), Walk::Discard("extension header chain"));
        // Truncated.
        let p = packet(next_header::DST_OPTS, &[next_header::UDP, 3, 0, 0], &[]);
        assert_eq!(walk(&p), Walk::Discard("truncated extension header"));
    }

    #[test]
    fn solicited_node_address() {
        let a: Ipv6Addr = "fd00::1:2:3:4567".parse().unwrap();
        assert_eq!(
            solicited_node(a),
            "ff02::1:ff03:4567".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn link_local_and_multicast_mac() {
        let mac = crate::wire::EthernetAddress([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(
            link_local(mac),
            "fe80::11:22ff:fe33:4455".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac("ff02::1:ff33:4455".parse().unwrap()).0,
            [0x33, 0x33, 0xff, 0x33, 0x44, 0x55]
        );
    }

    proptest::proptest! {
        #[test]
        fn walk_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = walk(&bytes);
            let _ = Packet::new_checked(&bytes[..]).map(|p| (p.src_addr(), p.payload().len()));
        }
    }
}
