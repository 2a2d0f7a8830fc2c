//! ICMP for IPv4 (RFC 792): echo, destination unreachable, time exceeded.

use super::checksum;
use super::{Error, Result};

/// Length of the ICMP header (type, code, checksum, four more bytes).
pub const HEADER_LEN: usize = 8;

/// RFC 1812 4.3.2.3: an ICMP error datagram, IP header included, should not
/// exceed this many bytes.
pub const MAX_ERROR_DATAGRAM: usize = 576;

/// Message type numbers.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// How many bytes of the offending datagram `original` an error message
/// should quote when the whole error datagram (20-byte IPv4 header, 8-byte
/// ICMP header and the quote) may be at most `mtu_room` bytes: pass
/// [`MAX_ERROR_DATAGRAM`] to follow RFC 1812, or the path MTU.
pub fn error_data_len(mtu_room: usize, original: &[u8]) -> usize {
    original
        .len()
        .min(mtu_room.saturating_sub(super::ipv4::HEADER_LEN + HEADER_LEN))
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const UNUSED: Range<usize> = 4..8;
    pub const MTU: Range<usize> = 6..8;
    pub const DATA: RangeFrom<usize> = 8..;
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A read/write view of an ICMPv4 message. The checksum covers the whole
/// buffer, so the buffer must be exactly the IP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer, failing with [`Error::Truncated`] below 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type (see [`msg_type`]).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Echo identifier (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Echo sequence number (bytes 6..8).
    pub fn echo_seq_no(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// Next-hop MTU of a "fragmentation needed" message (bytes 6..8,
    /// RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::MTU])
    }

    /// Everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// True when the checksum over the whole buffer verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the code.
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_SEQNO].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the next-hop MTU (bytes 6..8).
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&v.to_be_bytes());
    }

    /// Zeroes bytes 4..8.
    pub fn clear_rest_of_header(&mut self) {
        self.buffer.as_mut()[field::UNUSED].fill(0);
    }

    /// Mutable data after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// Destination unreachable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DstUnreachable {
    /// Code 0.
    NetUnreachable,
    /// Code 1.
    HostUnreachable,
    /// Code 2.
    ProtoUnreachable,
    /// Code 3.
    PortUnreachable,
    /// Code 4: fragmentation needed and DF set (carries the next-hop MTU).
    FragRequired,
    /// Code 5.
    SourceRouteFailed,
    /// Code 13: communication administratively prohibited (RFC 1812).
    AdminProhibited,
    /// Any other code. `Other(c)` with a code listed above emits that code
    /// and parses back as the named variant.
    Other(u8),
}

impl DstUnreachable {
    /// From a code byte.
    pub const fn from_code(code: u8) -> DstUnreachable {
        match code {
            0 => DstUnreachable::NetUnreachable,
            1 => DstUnreachable::HostUnreachable,
            2 => DstUnreachable::ProtoUnreachable,
            3 => DstUnreachable::PortUnreachable,
            4 => DstUnreachable::FragRequired,
            5 => DstUnreachable::SourceRouteFailed,
            13 => DstUnreachable::AdminProhibited,
            c => DstUnreachable::Other(c),
        }
    }

    /// The code byte.
    pub const fn code(self) -> u8 {
        match self {
            DstUnreachable::NetUnreachable => 0,
            DstUnreachable::HostUnreachable => 1,
            DstUnreachable::ProtoUnreachable => 2,
            DstUnreachable::PortUnreachable => 3,
            DstUnreachable::FragRequired => 4,
            DstUnreachable::SourceRouteFailed => 5,
            DstUnreachable::AdminProhibited => 13,
            DstUnreachable::Other(c) => c,
        }
    }
}

/// Time exceeded codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeExceeded {
    /// Code 0: TTL reached zero in transit.
    TtlExpired,
    /// Code 1: fragment reassembly time exceeded.
    FragReassembly,
}

impl TimeExceeded {
    /// From a code byte; [`Error::Unsupported`] for codes other than 0 and 1.
    pub const fn from_code(code: u8) -> Result<TimeExceeded> {
        match code {
            0 => Ok(TimeExceeded::TtlExpired),
            1 => Ok(TimeExceeded::FragReassembly),
            _ => Err(Error::Unsupported),
        }
    }

    /// The code byte.
    pub const fn code(self) -> u8 {
        match self {
            TimeExceeded::TtlExpired => 0,
            TimeExceeded::FragReassembly => 1,
        }
    }
}

/// A parsed ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repr<'a> {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// The code.
        reason: DstUnreachable,
        /// Next-hop MTU (meaningful for [`DstUnreachable::FragRequired`];
        /// emitted as-is, should be 0 otherwise).
        next_hop_mtu: u16,
        /// The quoted datagram: the offending IP header and the start of its
        /// payload, raw, as much as present (see [`error_data_len`]).
        data: &'a [u8],
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// The code.
        reason: TimeExceeded,
        /// The quoted datagram, raw.
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a message, verifying its checksum ([`Error::Checksum`]).
    /// Unknown types and time-exceeded codes give [`Error::Unsupported`].
    /// The code of echo messages is ignored (as Linux does).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let buf: &'a [u8] = packet.buffer.as_ref();
        let data = &buf[field::DATA];
        match packet.msg_type() {
            msg_type::ECHO_REQUEST => Ok(Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            msg_type::ECHO_REPLY => Ok(Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            msg_type::DST_UNREACHABLE => Ok(Repr::DstUnreachable {
                reason: DstUnreachable::from_code(packet.code()),
                next_hop_mtu: packet.next_hop_mtu(),
                data,
            }),
            msg_type::TIME_EXCEEDED => Ok(Repr::TimeExceeded {
                reason: TimeExceeded::from_code(packet.code())?,
                data,
            }),
            _ => Err(Error::Unsupported),
        }
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::TimeExceeded { data, .. } => data,
        }
    }

    /// Length of the message this emits: 8 plus the data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Writes the message and fills the checksum. The buffer should be
    /// exactly [`Repr::buffer_len`] bytes (the checksum covers all of it);
    /// panics if it is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.clear_rest_of_header();
        match *self {
            Repr::EchoRequest { ident, seq_no, .. } | Repr::EchoReply { ident, seq_no, .. } => {
                let t = if matches!(self, Repr::EchoRequest { .. }) {
                    msg_type::ECHO_REQUEST
                } else {
                    msg_type::ECHO_REPLY
                };
                packet.set_msg_type(t);
                packet.set_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
            }
            Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                ..
            } => {
                packet.set_msg_type(msg_type::DST_UNREACHABLE);
                packet.set_code(reason.code());
                packet.set_next_hop_mtu(next_hop_mtu);
            }
            Repr::TimeExceeded { reason, .. } => {
                packet.set_msg_type(msg_type::TIME_EXCEEDED);
                packet.set_code(reason.code());
            }
        }
        let data = self.data();
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Echo request id 0x1234 seq 1 carrying "hi".
    const PING: [u8; 10] = [8, 0, 0x7d, 0x61, 0x12, 0x34, 0x00, 0x01, b'h', b'i'];

    #[test]
    fn known_ping() {
        let p = Packet::new_checked(&PING[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"hi"
            }
        );
        let mut buf = [0xffu8; 10];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, PING);
        let h = etherparse::Icmpv4Header::from_slice(&PING).unwrap().0;
        assert_eq!(h.checksum, h.icmp_type.calc_checksum(b"hi"));
    }

    #[test]
    fn known_frag_needed() {
        // Type 3 code 4, MTU 1400, quoting a 20-byte IP header and 8 bytes.
        let quote = [0x45u8; 28];
        let r = Repr::DstUnreachable {
            reason: DstUnreachable::FragRequired,
            next_hop_mtu: 1400,
            data: &quote,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..2], &[3, 4]);
        assert_eq!(&buf[4..8], &[0, 0, 0x05, 0x78]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(Repr::parse(&p).unwrap(), r);
        let s = etherparse::Icmpv4Slice::from_slice(&buf).unwrap();
        assert_eq!(
            s.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400
                }
            )
        );
    }

    #[test]
    fn rejects() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PING[..n]).err(),
                Some(Error::Truncated)
            );
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&PING[..n])).err(),
                Some(Error::Truncated)
            );
        }
        let mut b = PING;
        b[9] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Checksum)
        );
        for (t, c) in [(13u8, 0u8), (5, 0), (12, 0), (11, 2), (255, 0)] {
            let mut b = PING;
            b[0] = t;
            b[1] = c;
            Packet::new_unchecked(&mut b[..]).fill_checksum();
            assert_eq!(
                Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
                Err(Error::Unsupported)
            );
        }
    }

    #[test]
    fn error_quote_len() {
        let orig = [0u8; 1500];
        assert_eq!(error_data_len(MAX_ERROR_DATAGRAM, &orig), 548);
        assert_eq!(error_data_len(MAX_ERROR_DATAGRAM, &orig[..40]), 40);
        assert_eq!(error_data_len(10, &orig), 0);
    }

    #[test]
    fn dst_unreachable_codes() {
        for c in 0..=255u8 {
            assert_eq!(DstUnreachable::from_code(c).code(), c);
        }
        assert_eq!(
            DstUnreachable::from_code(13),
            DstUnreachable::AdminProhibited
        );
    }

    fn build(k: u8, a: u16, b: u16, code: u8, flag: bool, data: &[u8]) -> Repr<'_> {
        match k {
            0 => Repr::EchoRequest {
                ident: a,
                seq_no: b,
                data,
            },
            1 => Repr::EchoReply {
                ident: a,
                seq_no: b,
                data,
            },
            2 => Repr::DstUnreachable {
                reason: DstUnreachable::from_code(code),
                next_hop_mtu: a,
                data,
            },
            _ => Repr::TimeExceeded {
                reason: if flag {
                    TimeExceeded::TtlExpired
                } else {
                    TimeExceeded::FragReassembly
                },
                data,
            },
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let _ = Repr::parse(&Packet::new_unchecked(&data[..]));
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.data(), p.next_hop_mtu(), p.echo_ident(), p.echo_seq_no());
                let _ = Repr::parse(&p);
            }
        }

        #[test]
        fn never_panics_valid_checksum(mut data in proptest::collection::vec(any::<u8>(), 8..200), t in prop::sample::select(vec![0u8, 3, 8, 11, 5])) {
            data[0] = t;
            Packet::new_unchecked(&mut data[..]).fill_checksum();
            let _ = Repr::parse(&Packet::new_checked(&data[..]).unwrap());
        }

        #[test]
        fn round_trip_and_etherparse(data in proptest::collection::vec(any::<u8>(), 0..600),
                                     k in 0u8..4, a in any::<u16>(), b in any::<u16>(), code in any::<u8>(), flag in any::<bool>()) {
            let repr = build(k, a, b, code, flag, &data);
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Repr::parse(&p).unwrap(), repr);

            let s = etherparse::Icmpv4Slice::from_slice(&buf).unwrap();
            // etherparse drops the unused bytes 4..8 of non-"frag needed"
            // unreachables, so its checksum only agrees when they are zero.
            let lossy = matches!(repr, Repr::DstUnreachable { reason, next_hop_mtu, .. }
                if reason != DstUnreachable::FragRequired && next_hop_mtu != 0);
            if !lossy {
                prop_assert_eq!(s.checksum(), s.icmp_type().calc_checksum(s.payload()));
            }
            prop_assert_eq!(s.payload(), &data[..]);
            use etherparse::{IcmpEchoHeader, Icmpv4Type as E};
            match (repr, s.icmp_type()) {
                (Repr::EchoRequest { ident, seq_no, .. }, E::EchoRequest(IcmpEchoHeader { id, seq })) |
                (Repr::EchoReply { ident, seq_no, .. }, E::EchoReply(IcmpEchoHeader { id, seq })) => {
                    prop_assert_eq!((ident, seq_no), (id, seq));
                }
                (Repr::DstUnreachable { reason, next_hop_mtu, .. }, E::DestinationUnreachable(h)) => {
                    prop_assert_eq!(h.code_u8(), reason.code());
                    if reason == DstUnreachable::FragRequired {
                        prop_assert_eq!(h, etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu });
                    }
                }
                (Repr::DstUnreachable { reason, .. }, E::Unknown { type_u8: 3, code_u8, .. }) => {
                    prop_assert_eq!(code_u8, reason.code());
                }
                (Repr::TimeExceeded { reason, .. }, E::TimeExceeded(c)) => {
                    prop_assert_eq!(c.code_u8(), reason.code());
                }
                (r, e) => prop_assert!(false, "{:?} vs {:?}", r, e),
            }
        }

        #[test]
        fn parses_etherparse_echo(id in any::<u16>(), seq in any::<u16>(), reply in any::<bool>(),
                                  payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
            let b = if reply { b.icmpv4_echo_reply(id, seq) } else { b.icmpv4_echo_request(id, seq) };
            let mut out = Vec::new();
            b.write(&mut out, &payload).unwrap();
            let ip = super::super::ipv4::Packet::new_checked(&out[..]).unwrap();
            let p = Packet::new_checked(ip.payload()).unwrap();
            let r = Repr::parse(&p).unwrap();
            let want = if reply {
                Repr::EchoReply { ident: id, seq_no: seq, data: &payload }
            } else {
                Repr::EchoRequest { ident: id, seq_no: seq, data: &payload }
            };
            prop_assert_eq!(r, want);
        }
    }
}
