//! Ethernet II frames (no 802.1Q tags; a VLAN tag shows up as ethertype
//! 0x8100 and is left to the caller).

use super::{Error, EthernetAddress, Result};

/// Length of an Ethernet II header: destination, source, ethertype.
pub const HEADER_LEN: usize = 14;

/// Well-known ethertypes.
pub mod ethertype {
    /// Internet Protocol version 4.
    pub const IPV4: u16 = 0x0800;
    /// Address Resolution Protocol.
    pub const ARP: u16 = 0x0806;
    /// Internet Protocol version 6.
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length; accessors may panic on a
    /// short buffer. Use [`Frame::new_checked`] for untrusted input.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer, failing with [`Error::Truncated`] when it is shorter
    /// than an Ethernet header.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the buffer holds a whole header.
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

    /// Destination MAC address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DST])
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SRC])
    }

    /// The ethertype (see [`ethertype`]).
    pub fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Everything after the header (including any link-layer padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the ethertype.
    pub fn set_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Mutable view of everything after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A parsed Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source MAC address.
    pub src_addr: EthernetAddress,
    /// Destination MAC address.
    pub dst_addr: EthernetAddress,
    /// Ethertype of the payload.
    pub ethertype: u16,
}

impl Repr {
    /// Parses the header of a frame (the length is checked again, so a frame
    /// built with `new_unchecked` is safe too).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Length of the header this emits.
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Length of a frame carrying `payload_len` bytes of payload.
    pub const fn buffer_len(payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header into `frame`. Panics if the buffer is shorter than
    /// [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, frame: &mut Frame<&mut T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // An ARP request broadcast from 52:54:00:12:34:56, padded to 60 bytes.
    const FRAME: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04,
    ];

    #[test]
    fn known_answer() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(
            f.src_addr(),
            EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload(), &FRAME[14..]);
        let r = Repr::parse(&f).unwrap();
        let mut buf = [0u8; 20];
        buf[14..].copy_from_slice(&FRAME[14..]);
        r.emit(&mut Frame::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn short_buffers() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Frame::new_checked(&FRAME[..n]).err(),
                Some(Error::Truncated)
            );
            assert_eq!(
                Repr::parse(&Frame::new_unchecked(&FRAME[..n])).err(),
                Some(Error::Truncated)
            );
        }
        assert!(Frame::new_checked(&FRAME[..HEADER_LEN])
            .unwrap()
            .payload()
            .is_empty());
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            if let Ok(f) = Frame::new_checked(&data[..]) {
                let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload());
                Repr::parse(&f).unwrap();
            }
        }

        #[test]
        fn round_trip_and_etherparse(src in any::<[u8; 6]>(), dst in any::<[u8; 6]>(), et in any::<u16>(),
                                     payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let repr = Repr { src_addr: EthernetAddress(src), dst_addr: EthernetAddress(dst), ethertype: et };
            let mut buf = vec![0u8; Repr::buffer_len(payload.len())];
            let mut f = Frame::new_unchecked(&mut buf[..]);
            repr.emit(&mut f);
            f.payload_mut().copy_from_slice(&payload);
            let f = Frame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&f).unwrap(), repr);
            prop_assert_eq!(f.payload(), &payload[..]);

            let (h, rest) = etherparse::Ethernet2Header::from_slice(&buf).unwrap();
            prop_assert_eq!(h.source, src);
            prop_assert_eq!(h.destination, dst);
            prop_assert_eq!(h.ether_type.0, et);
            prop_assert_eq!(rest, &payload[..]);

            let h = etherparse::Ethernet2Header { source: src, destination: dst, ether_type: etherparse::EtherType(et) };
            let bytes = h.to_bytes();
            prop_assert_eq!(Repr::parse(&Frame::new_checked(&bytes[..]).unwrap()).unwrap(), repr);
        }
    }
}
