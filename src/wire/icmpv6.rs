//! ICMPv6 (RFC 4443) messages the stack sends and answers: echo, destination
//! unreachable, packet too big, time exceeded, parameter problem; and the
//! neighbour-discovery messages (RFC 4861) it needs on Ethernet.

use std::net::Ipv6Addr;

use super::checksum;
use super::Error;

/// Message types.
pub mod kind {
    /// Destination Unreachable.
    pub const DST_UNREACHABLE: u8 = 1;
    /// Packet Too Big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo Request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router Solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router Advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor Solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor Advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Destination Unreachable codes.
pub mod unreachable {
    /// No route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 1;
    /// Address unreachable.
    pub const ADDRESS: u8 = 3;
    /// Port unreachable.
    pub const PORT: u8 = 4;
}

/// Length of the fixed part (type, code, checksum, 4 bytes of body).
pub const HEADER_LEN: usize = 8;

/// Most of the offending packet an error quotes: the whole message fits
/// the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
pub const MAX_QUOTE: usize = 1280 - 40 - HEADER_LEN;

/// The ICMPv6 checksum of `msg` between `src` and `dst` (the checksum field
/// taken as zero when `msg` has it zeroed).
pub fn compute_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let ph =
        checksum::pseudo_header_v6(src, dst, super::ipv6::next_header::ICMPV6, msg.len() as u32);
    checksum::finish(checksum::combine(&[ph, checksum::sum(msg)]))
}

/// Checks the length and checksum of a received message.
pub fn verify(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> Result<(), Error> {
    if msg.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    if compute_checksum(src, dst, msg) != 0 {
        return Err(Error::Checksum);
    }
    Ok(())
}

/// Writes the message `kind`/`code` with 4-byte body word `word` and body
/// `body` into `buf` (exactly `HEADER_LEN + body.len()` bytes) and fills
/// its checksum.
pub fn emit(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: u8,
    code: u8,
    word: u32,
    body: &[u8],
) {
    buf[0] = kind;
    buf[1] = code;
    buf[2] = 0;
    buf[3] = 0;
    buf[4..8].copy_from_slice(&word.to_be_bytes());
    buf[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
    let c = compute_checksum(src, dst, &buf[..HEADER_LEN + body.len()]);
    buf[2..4].copy_from_slice(&c.to_be_bytes());
}

/// A Neighbor Solicitation or Advertisement (RFC 4861 §4.3, §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdMessage {
    /// Solicitation or advertisement.
    pub kind: u8,
    /// Advertisement flags (router, solicited, override) in the top bits.
    pub flags: u8,
    /// The target address.
    pub target: Ipv6Addr,
    /// The source (NS) or target (NA) link-layer address option.
    pub lladdr: Option<[u8; 6]>,
}

/// NA flags.
pub mod na_flags {
    /// Sent by a router.
    pub const ROUTER: u8 = 0x80;
    /// An answer to a solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// Overrides a cached link-layer address.
    pub const OVERRIDE: u8 = 0x20;
}

impl NdMessage {
    /// Parses an NS or NA (already checksum-verified; RFC 4861 §7.1.1's
    /// hop-limit-255 check is the caller's). Options are walked with their
    /// lengths checked; a zero-length option invalidates the message.
    pub fn parse(msg: &[u8]) -> Result<NdMessage, Error> {
        if msg.len() < 24 {
            return Err(Error::Truncated);
        }
        let kind = msg[0];
        if kind != kind::NEIGHBOR_SOLICIT && kind != kind::NEIGHBOR_ADVERT {
            return Err(Error::Unsupported);
        }
        if msg[1] != 0 {
            return Err(Error::Malformed);
        }
        let t: [u8; 16] = msg[8..24].try_into().expect("16 bytes");
        let target = Ipv6Addr::from(t);
        if target.is_multicast() {
            return Err(Error::Malformed);
        }
        let want = if kind == kind::NEIGHBOR_SOLICIT { 1 } else { 2 };
        let mut lladdr = None;
        let mut i = 24;
        while i < msg.len() {
            let (Some(&ot), Some(&ol)) = (msg.get(i), msg.get(i + 1)) else {
                return Err(Error::Truncated);
            };
            let len = ol as usize * 8;
            if len == 0 || i + len > msg.len() {
                return Err(Error::Malformed);
            }
            if ot == want && len == 8 {
                lladdr = Some(msg[i + 2..i + 8].try_into().expect("6 bytes"));
            }
            i += len;
        }
        Ok(NdMessage {
            kind,
            flags: msg[4],
            target,
            lladdr,
        })
    }

    /// Length on the wire.
    pub fn buffer_len(&self) -> usize {
        24 + if self.lladdr.is_some() { 8 } else { 0 }
    }

    /// Writes it into `buf` (`buffer_len()` bytes) with its checksum.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        let mut body = [0u8; 24];
        body[..16].copy_from_slice(&self.target.octets());
        let n = if let Some(ll) = self.lladdr {
            body[16] = if self.kind == kind::NEIGHBOR_SOLICIT {
                1
            } else {
                2
            };
            body[17] = 1;
            body[18..24].copy_from_slice(&ll);
            24
        } else {
            16
        };
        emit(
            buf,
            src,
            dst,
            self.kind,
            0,
            (self.flags as u32) << 24,
            &body[..n],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_checksum_matches_etherparse() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let mut buf = vec![0u8; 8 + 5];
        emit(&mut buf, s, d, kind::ECHO_REQUEST, 0, 0x1234_0001, b"hello");
        assert!(verify(s, d, &buf).is_ok());
        let (h, rest) = etherparse::Icmpv6Header::from_slice(&buf).unwrap();
        assert_eq!(
            h.checksum,
            h.icmp_type
                .calc_checksum(s.octets(), d.octets(), rest)
                .unwrap()
        );
        buf[9] ^= 1;
        assert_eq!(verify(s, d, &buf), Err(Error::Checksum));
    }

    #[test]
    fn neighbor_messages_round_trip() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = (
            "fe80::1".parse().unwrap(),
            "ff02::1:ff00:2".parse().unwrap(),
        );
        let ns = NdMessage {
            kind: kind::NEIGHBOR_SOLICIT,
            flags: 0,
            target: "fd00::2".parse().unwrap(),
            lladdr: Some([2, 0, 0, 0, 0, 1]),
        };
        let mut buf = vec![0u8; ns.buffer_len()];
        ns.emit(&mut buf, s, d);
        assert!(verify(s, d, &buf).is_ok());
        assert_eq!(NdMessage::parse(&buf), Ok(ns));
        // A zero-length option invalidates it.
        let mut bad = buf.clone();
        bad[25] = 0;
        assert_eq!(NdMessage::parse(&bad), Err(Error::Malformed));
        let na = NdMessage {
            kind: kind::NEIGHBOR_ADVERT,
            flags: na_flags::SOLICITED | na_flags::OVERRIDE,
            target: "fd00::2".parse().unwrap(),
            lladdr: Some([2, 0, 0, 0, 0, 2]),
        };
        let mut buf = vec![0u8; na.buffer_len()];
        na.emit(&mut buf, s, d);
        assert_eq!(NdMessage::parse(&buf), Ok(na));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = NdMessage::parse(&bytes);
            let _ = verify(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, &bytes);
        }
    }
}
