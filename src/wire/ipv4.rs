//! IPv4 headers (RFC 791). Options are carried but not interpreted.

use std::net::Ipv4Addr;

use super::checksum;
use super::{Error, Result};

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// IP protocol numbers (shared by IPv4's protocol and IPv6's next header).
pub mod protocol {
    /// Internet Control Message Protocol.
    pub const ICMP: u8 = 1;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
///
/// After [`Packet::new_checked`] the header (with options) and `total_len`
/// bytes are known to be inside the buffer, so no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
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

    /// Validates the lengths: [`Error::Truncated`] when the buffer is
    /// shorter than 20 bytes, the header length or the total length;
    /// [`Error::Malformed`] when the version is not 4, IHL < 5 or the total
    /// length is smaller than the header length.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        let tl = self.total_len();
        if tl < hl {
            return Err(Error::Malformed);
        }
        if tl > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }

    /// The DSCP and ECN byte (formerly type of service).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length of the datagram in bytes, header included.
    pub fn total_len(&self) -> usize {
        be16(&self.buffer.as_ref()[field::LENGTH]) as usize
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }

    fn flg_off(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLG_OFF])
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flg_off() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field times eight).
    pub fn frag_offset(&self) -> usize {
        ((self.flg_off() & OFFSET_MASK) as usize) * 8
    }

    /// True when this is a fragment (MF set or a nonzero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload (see [`protocol`]).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// True when the header checksum (options included) verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len()])
    }

    /// The options, raw (bytes 20 to the header length).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from the header length to the total length, so trailing
    /// link-layer padding is excluded.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn payload_ref(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        &b[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version nibble.
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | (((len / 4) as u8) & 0x0f);
    }

    /// Sets the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length in bytes (at most 65535; higher bits are
    /// dropped).
    pub fn set_total_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&(len as u16).to_be_bytes());
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }

    fn set_flg_off(&mut self, v: u16) {
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, v: bool) {
        let f = self.flg_off() & !FLAG_DF;
        self.set_flg_off(if v { f | FLAG_DF } else { f });
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, v: bool) {
        let f = self.flg_off() & !FLAG_MF;
        self.set_flg_off(if v { f | FLAG_MF } else { f });
    }

    /// Sets the fragment offset in bytes (a multiple of 8).
    pub fn set_frag_offset(&mut self, bytes: usize) {
        let f = self.flg_off() & !OFFSET_MASK;
        self.set_flg_off(f | (((bytes / 8) as u16) & OFFSET_MASK));
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Computes and stores the header checksum (over `header_len` bytes).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(c);
    }

    /// Mutable options.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// Mutable payload (header length to total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// A parsed IPv4 header (options dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
}

impl Repr {
    /// Parses a header, checking lengths again and, when `verify_checksum`,
    /// the checksum ([`Error::Checksum`]). Fragments are accepted: look at
    /// [`Packet::more_frags`] and [`Packet::frag_offset`] before using the
    /// payload.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        verify_checksum: bool,
    ) -> Result<Repr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() - packet.header_len(),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Length of the header this emits (20: never any options).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header without options (DF as set, MF clear, offset
    /// 0) and fills in the checksum. The payload is left alone. Panics if
    /// the buffer is shorter than 20 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp_ecn(self.dscp_ecn);
        packet.set_total_len(self.buffer_len());
        packet.set_ident(self.ident);
        packet.set_flg_off(if self.dont_frag { FLAG_DF } else { 0 });
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // 10.0.0.1 > 10.0.0.2: ICMP echo request, id 0x1234 seq 1, "hi", DF, ttl 64.
    const PING: [u8; 30] = [
        0x45, 0x00, 0x00, 0x1e, 0xab, 0xcd, 0x40, 0x00, 0x40, 0x01, 0x7b, 0x0f, 10, 0, 0, 1, 10, 0,
        0, 2, 0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'h', b'i',
    ];

    fn fixed_ping() -> [u8; 30] {
        let mut b = PING;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        assert_eq!(b, PING, "known checksum 0x7b0f");
        b
    }

    #[test]
    fn known_answer() {
        let b = fixed_ping();
        // The checksum computed by etherparse agrees with ours.
        let (h, _) = etherparse::Ipv4Header::from_slice(&b).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 30);
        assert_eq!(p.ident(), 0xabcd);
        assert!(p.dont_frag() && !p.more_frags() && p.frag_offset() == 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::ICMP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.payload(), &b[20..]);
        let r = Repr::parse(&p, true).unwrap();
        assert_eq!(
            r,
            Repr {
                src_addr: Ipv4Addr::new(10, 0, 0, 1),
                dst_addr: Ipv4Addr::new(10, 0, 0, 2),
                protocol: 1,
                payload_len: 10,
                ttl: 64,
                dscp_ecn: 0,
                ident: 0xabcd,
                dont_frag: true
            }
        );
        let mut out = [0u8; 30];
        out[20..].copy_from_slice(&b[20..]);
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn padding_excluded_and_bad_checksum() {
        let mut b = fixed_ping().to_vec();
        b.extend_from_slice(&[0; 16]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 10);
        b[8] = 63;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, true), Err(Error::Checksum));
        assert_eq!(Repr::parse(&p, false).unwrap().ttl, 63);
    }

    #[test]
    fn fragments_accepted() {
        let mut b = fixed_ping();
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.more_frags() && p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        assert!(Repr::parse(&p, true).is_ok());
    }

    #[test]
    fn malformed_lengths() {
        let ok = fixed_ping();
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&ok[..n]).err(), Some(Error::Truncated));
        }
        // (byte 0, total length, buffer length, expected)
        let cases: &[(u8, u16, usize, Error)] = &[
            (0x65, 30, 30, Error::Malformed), // version 6
            (0x05, 30, 30, Error::Malformed), // version 0
            (0x44, 30, 30, Error::Malformed), // IHL 4
            (0x40, 30, 30, Error::Malformed), // IHL 0
            (0x48, 30, 30, Error::Truncated), // 32-byte header in 30 bytes
            (0x4f, 60, 30, Error::Truncated), // 60-byte header in 30
            (0x45, 19, 30, Error::Malformed), // total < header
            (0x46, 20, 30, Error::Malformed), // total < 24-byte header
            (0x45, 31, 30, Error::Truncated), // total > buffer
            (0x45, 0xffff, 30, Error::Truncated),
        ];
        for &(b0, tl, len, err) in cases {
            let mut b = ok;
            b[0] = b0;
            b[2..4].copy_from_slice(&tl.to_be_bytes());
            assert_eq!(
                Packet::new_checked(&b[..len]).err(),
                Some(err),
                "{b0:#x} {tl} {len}"
            );
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&b[..len]), false).err(),
                Some(err)
            );
        }
        let mut b = ok;
        b[0] = 0x46;
        b[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert!(Packet::new_checked(&b[..]).is_ok());
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            0usize..1480,
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
        )
            .prop_map(
                |(s, d, protocol, payload_len, ttl, dscp_ecn, ident, dont_frag)| Repr {
                    src_addr: s.into(),
                    dst_addr: d.into(),
                    protocol,
                    payload_len,
                    ttl,
                    dscp_ecn,
                    ident,
                    dont_frag,
                },
            )
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let _ = Repr::parse(&Packet::new_unchecked(&data[..]), true);
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.options(), p.payload(), p.verify_checksum(), p.frag_offset());
                let _ = Repr::parse(&p, false).unwrap();
            }
        }

        #[test]
        fn never_panics_plausible(mut data in proptest::collection::vec(any::<u8>(), 20..100), ihl in 0u8..16, tl in 0u16..120) {
            data[0] = 0x40 | ihl;
            data[2..4].copy_from_slice(&tl.to_be_bytes());
            if let Ok(p) = Packet::new_checked(&data[..]) {
                prop_assert!(p.header_len() <= p.total_len() && p.total_len() <= data.len());
                let _ = (p.options(), p.payload());
                Repr::parse(&p, false).unwrap();
            }
        }

        #[test]
        fn round_trip_and_etherparse(repr in arb_repr()) {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Repr::parse(&p, true).unwrap(), repr);

            let (h, rest) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
            prop_assert_eq!(rest.len(), repr.payload_len);
            prop_assert_eq!(h.source, repr.src_addr.octets());
            prop_assert_eq!(h.destination, repr.dst_addr.octets());
            prop_assert_eq!(h.protocol.0, repr.protocol);
            prop_assert_eq!(h.time_to_live, repr.ttl);
            prop_assert_eq!((h.dscp.value() << 2) | h.ecn.value(), repr.dscp_ecn);
            prop_assert_eq!(h.identification, repr.ident);
            prop_assert_eq!(h.dont_fragment, repr.dont_frag);
            prop_assert!(!h.more_fragments);
            prop_assert_eq!(h.fragment_offset.value(), 0);
            prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
        }

        #[test]
        fn parses_etherparse_with_options(
            s in any::<[u8; 4]>(), d in any::<[u8; 4]>(), ttl in any::<u8>(), proto in any::<u8>(),
            ident in any::<u16>(), df in any::<bool>(), mf in any::<bool>(), off in 0u16..0x2000,
            opt_words in 0usize..11, opt_byte in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100), pad in 0usize..20,
        ) {
            let mut h = etherparse::Ipv4Header::new(payload.len() as u16, ttl, etherparse::IpNumber(proto), s, d).unwrap();
            h.identification = ident;
            h.dont_fragment = df;
            h.more_fragments = mf;
            h.fragment_offset = etherparse::IpFragOffset::try_new(off).unwrap();
            let opts = vec![opt_byte; opt_words * 4];
            h.options = opts[..].try_into().unwrap();
            h.set_payload_len(payload.len()).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut buf = h.to_bytes().to_vec();
            buf.extend_from_slice(&payload);
            buf.extend(std::iter::repeat_n(0u8, pad));

            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(p.header_len(), h.header_len());
            prop_assert_eq!(p.options(), &h.options[..]);
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(p.more_frags(), mf);
            prop_assert_eq!(p.frag_offset(), off as usize * 8);
            let r = Repr::parse(&p, true).unwrap();
            prop_assert_eq!(r.src_addr, Ipv4Addr::from(s));
            prop_assert_eq!(r.dst_addr, Ipv4Addr::from(d));
            prop_assert_eq!(r.ttl, ttl);
            prop_assert_eq!(r.protocol, proto);
            prop_assert_eq!(r.ident, ident);
            prop_assert_eq!(r.dont_frag, df);
            prop_assert_eq!(r.payload_len, payload.len());
        }
    }
}
