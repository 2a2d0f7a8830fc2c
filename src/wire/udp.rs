//! UDP (RFC 768) over IPv4 or IPv6.

use std::net::IpAddr;

use super::checksum;
use super::ipv4::protocol;
use super::{Error, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A read/write view of a UDP datagram. After [`Packet::new_checked`] the
/// length field is known to lie between 8 and the buffer length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// [`Error::Truncated`] when the buffer is shorter than 8 bytes or than
    /// the length field; [`Error::Malformed`] when the length field is below
    /// 8. A buffer longer than the length field is fine (the rest is ignored).
    pub fn check_len(&self) -> Result<()> {
        let n = self.buffer.as_ref().len();
        if n < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN {
            Err(Error::Malformed)
        } else if l > n {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Length field: header plus payload, in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }

    fn pseudo_and_data_sum(&self, src: IpAddr, dst: IpAddr) -> Option<u32> {
        let len = self.len();
        let ph = checksum::pseudo_header(src, dst, protocol::UDP, len as u32)?;
        Some(checksum::combine(&[
            ph,
            checksum::sum(&self.buffer.as_ref()[..len as usize]),
        ]))
    }

    /// True when the checksum verifies against the pseudo-header. Over IPv4
    /// a zero field means "no checksum" and verifies; over IPv6 zero is
    /// invalid (RFC 8200 8.1). False when `src` and `dst` are of different
    /// families.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4() && dst.is_ipv4();
        }
        match self.pseudo_and_data_sum(src, dst) {
            Some(s) => checksum::fold(s) == 0xffff,
            None => false,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn payload_ref(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        &b[HEADER_LEN..self.len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Mutable payload, up to the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }

    /// Computes and stores the checksum over the pseudo-header and the
    /// first `len` bytes; a computed 0 is stored as 0xffff. Leaves 0 when
    /// `src` and `dst` are of different families. The length field must be
    /// set first and fit in the buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        if let Some(s) = self.pseudo_and_data_sum(src, dst) {
            let c = checksum::finish(s);
            self.set_checksum(if c == 0 { 0xffff } else { c });
        }
    }
}

/// A parsed UDP header (the payload is [`Packet::payload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Parses a datagram, checking lengths again and, when
    /// `verify_checksum`, the checksum ([`Error::Checksum`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        src: IpAddr,
        dst: IpAddr,
        verify_checksum: bool,
    ) -> Result<Repr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Length of the header (8).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus `payload_len`.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header with length `8 + payload_len` and a zero checksum;
    /// for callers that write the payload in place, then call
    /// [`Packet::fill_checksum`]. `payload_len` must be at most 65527.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        payload_len: usize,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + payload_len) as u16);
        packet.set_checksum(0);
    }

    /// Writes the header, copies `payload` and fills the checksum. Panics if
    /// the buffer is shorter than `8 + payload.len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: IpAddr,
        dst: IpAddr,
        payload: &[u8],
    ) {
        self.emit_header(packet, payload.len());
        packet.payload_mut().copy_from_slice(payload);
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53));

    // 10.0.0.1.40000 > 10.0.0.53.53: A? example.com. (id 0xabcd, RD)
    fn dns() -> Vec<u8> {
        let mut v = vec![0x9c, 0x40, 0x00, 0x35, 0x00, 0x25, 0xd3, 0xbd];
        v.extend_from_slice(&DNS_QUERY);
        v
    }
    const DNS_QUERY: [u8; 29] = [
        0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 7, b'e', b'x',
        b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0x00, 0x01, 0x00, 0x01,
    ];

    #[test]
    fn known_dns() {
        let b = dns();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (40000, 53, 37));
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(p.payload(), &DNS_QUERY);
        let r = Repr::parse(&p, SRC, DST, true).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 40000,
                dst_port: 53
            }
        );
        let mut out = vec![0u8; 37];
        r.emit(
            &mut Packet::new_unchecked(&mut out[..]),
            SRC,
            DST,
            &DNS_QUERY,
        );
        assert_eq!(out, b);
        // Wrong pseudo-header.
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(Repr::parse(&p, other, DST, true), Err(Error::Checksum));
        assert!(Repr::parse(&p, other, DST, false).is_ok());
        // Trailing bytes beyond the length field are ignored.
        let mut padded = b.clone();
        padded.extend_from_slice(&[0xee; 5]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(p.payload(), &DNS_QUERY);
    }

    #[test]
    fn zero_checksum() {
        let mut b = dns();
        b[6] = 0;
        b[7] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        let (s6, d6) = (
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        );
        assert!(!p.verify_checksum(s6, d6));
        assert_eq!(Repr::parse(&p, s6, d6, true), Err(Error::Checksum));
        assert!(!p.verify_checksum(SRC, d6));
    }

    #[test]
    fn computed_zero_sent_as_ffff() {
        // With a zero payload word the sum is S and the field !S; putting
        // !S in the payload makes the sum 0xffff, i.e. a computed checksum of 0.
        let r = Repr {
            src_port: 1,
            dst_port: 2,
        };
        let mut buf = [0u8; 10];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]), SRC, DST, &[0, 0]);
        let c = u16::from_be_bytes([buf[6], buf[7]]);
        let p = c.to_be_bytes();
        r.emit(&mut Packet::new_unchecked(&mut buf[..]), SRC, DST, &p);
        assert_eq!(&buf[6..8], &[0xff, 0xff]);
        assert!(Packet::new_checked(&buf[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn malformed_lengths() {
        let b = dns();
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&b[..n]).err(), Some(Error::Truncated));
        }
        let cases: &[(u16, usize, Error)] = &[
            (0, 37, Error::Malformed),
            (7, 37, Error::Malformed),
            (38, 37, Error::Truncated),
            (0xffff, 37, Error::Truncated),
            (37, 36, Error::Truncated),
            (9, 8, Error::Truncated),
        ];
        for &(l, n, e) in cases {
            let mut b = dns();
            b[4..6].copy_from_slice(&l.to_be_bytes());
            assert_eq!(Packet::new_checked(&b[..n]).err(), Some(e), "{l} {n}");
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&b[..n]), SRC, DST, false).err(),
                Some(e)
            );
        }
        let mut b = dns();
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(Packet::new_checked(&b[..]).unwrap().payload().is_empty());
    }

    fn arb_addrs() -> impl Strategy<Value = (IpAddr, IpAddr)> {
        prop_oneof![
            (any::<u32>(), any::<u32>())
                .prop_map(|(a, b)| (IpAddr::V4(a.into()), IpAddr::V4(b.into()))),
            (any::<u128>(), any::<u128>())
                .prop_map(|(a, b)| (IpAddr::V6(a.into()), IpAddr::V6(b.into()))),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..1600), (s, d) in arb_addrs()) {
            let _ = Repr::parse(&Packet::new_unchecked(&data[..]), s, d, true);
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.payload(), p.verify_checksum(s, d));
                Repr::parse(&p, s, d, false).unwrap();
            }
        }

        #[test]
        fn round_trip_and_etherparse(sp in any::<u16>(), dp in any::<u16>(), (s, d) in arb_addrs(),
                                     payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let r = Repr { src_port: sp, dst_port: dp };
            let mut buf = vec![0u8; r.buffer_len(payload.len())];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]), s, d, &payload);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum(s, d));
            prop_assert_ne!(p.checksum(), 0);
            prop_assert_eq!(Repr::parse(&p, s, d, true).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..]);

            // emit_header + fill_checksum gives the same bytes.
            let mut buf2 = vec![0u8; buf.len()];
            buf2[8..].copy_from_slice(&payload);
            let mut p2 = Packet::new_unchecked(&mut buf2[..]);
            r.emit_header(&mut p2, payload.len());
            p2.fill_checksum(s, d);
            prop_assert_eq!(&buf2, &buf);

            let (h, rest) = etherparse::UdpHeader::from_slice(&buf).unwrap();
            prop_assert_eq!((h.source_port, h.destination_port, h.length as usize), (sp, dp, buf.len()));
            prop_assert_eq!(rest, &payload[..]);
            let want = match (s, d) {
                (IpAddr::V4(s), IpAddr::V4(d)) => h.calc_checksum_ipv4_raw(s.octets(), d.octets(), rest).unwrap(),
                (IpAddr::V6(s), IpAddr::V6(d)) => h.calc_checksum_ipv6_raw(s.octets(), d.octets(), rest).unwrap(),
                _ => unreachable!(),
            };
            prop_assert_eq!(h.checksum, want);
        }

        #[test]
        fn parses_etherparse(sp in any::<u16>(), dp in any::<u16>(), s in any::<[u8; 4]>(), d in any::<[u8; 4]>(),
                             payload in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let mut out = Vec::new();
            etherparse::PacketBuilder::ipv4(s, d, 64).udp(sp, dp).write(&mut out, &payload).unwrap();
            let ip = super::super::ipv4::Packet::new_checked(&out[..]).unwrap();
            let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
            let p = Packet::new_checked(ip.payload()).unwrap();
            prop_assert_eq!(Repr::parse(&p, src, dst, true).unwrap(), Repr { src_port: sp, dst_port: dp });
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
