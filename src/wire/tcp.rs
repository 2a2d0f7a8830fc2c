//! TCP segments (RFC 9293) and the options this stack understands: MSS,
//! window scale and timestamps (RFC 7323), SACK (RFC 2018) and Fast Open
//! cookies (RFC 7413).

use std::fmt;
use std::net::IpAddr;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use super::checksum;
use super::ipv4::protocol;
use super::{Error, Result};

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Most option bytes a header can carry (data offset 15).
pub const MAX_OPTIONS_LEN: usize = 40;
/// Most SACK blocks kept by [`Options`].
pub const MAX_SACK_BLOCKS: usize = 4;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const FLAGS: Range<usize> = 12..14;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Option kinds.
pub mod option_kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No-operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size.
    pub const MSS: u8 = 2;
    /// Window scale.
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted.
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks.
    pub const SACK: u8 = 5;
    /// Timestamps.
    pub const TIMESTAMPS: u8 = 8;
    /// TCP Fast Open cookie (RFC 7413).
    pub const FAST_OPEN: u8 = 34;
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The control bits (the low 12 bits of bytes 12..14: flags, NS/AE and the
/// reserved bits, kept as received).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Hash)]
pub struct Flags(pub u16);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push.
    pub const PSH: Flags = Flags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// Urgent pointer is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN echo.
    pub const ECE: Flags = Flags(0x40);
    /// Congestion window reduced.
    pub const CWR: Flags = Flags(0x80);
    /// No flags.
    pub const NONE: Flags = Flags(0);

    /// True when every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// True when no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// FIN set.
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    /// SYN set.
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    /// RST set.
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    /// PSH set.
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    /// ACK set.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    /// URG set.
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }
    /// ECE set.
    pub const fn ece(self) -> bool {
        self.contains(Self::ECE)
    }
    /// CWR set.
    pub const fn cwr(self) -> bool {
        self.contains(Self::CWR)
    }
    /// These flags with `other`'s bits cleared.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Flags {
    type Output = Flags;
    fn bitand(self, rhs: Flags) -> Flags {
        Flags(self.0 & rhs.0)
    }
}

/// tcpdump style: `[S.]` for SYN-ACK, `[FP.]`, `[R]`, `[none]`.
impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u16, char); 9] = [
            (0x01, 'F'),
            (0x02, 'S'),
            (0x04, 'R'),
            (0x08, 'P'),
            (0x10, '.'),
            (0x20, 'U'),
            (0x40, 'E'),
            (0x80, 'W'),
            (0x100, 'e'),
        ];
        f.write_str("[")?;
        if NAMES.iter().all(|&(b, _)| self.0 & b == 0) {
            f.write_str("none")?;
        }
        for &(b, c) in &NAMES {
            if self.0 & b != 0 {
                write!(f, "{c}")?;
            }
        }
        f.write_str("]")
    }
}

/// A TCP Fast Open cookie (RFC 7413): 0 (a cookie request) or 4 to 16
/// bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastOpenCookie {
    /// Number of valid bytes in `bytes`.
    pub len: u8,
    /// The cookie, left-aligned.
    pub bytes: [u8; 16],
}

impl FastOpenCookie {
    /// A cookie from its bytes; `None` unless the length is 0 or 4..=16.
    pub fn new(cookie: &[u8]) -> Option<FastOpenCookie> {
        if !(cookie.is_empty() || (4..=16).contains(&cookie.len())) {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..cookie.len()].copy_from_slice(cookie);
        Some(FastOpenCookie {
            len: cookie.len() as u8,
            bytes,
        })
    }

    /// The cookie bytes (a `len` above 16 is treated as 16).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(16)]
    }
}

impl PartialEq for FastOpenCookie {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for FastOpenCookie {}

/// The TCP options this stack understands. Parsing skips unknown kinds;
/// emitting follows Linux's layout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Maximum segment size (kind 2).
    pub mss: Option<u16>,
    /// Window scale shift (kind 3), as received: RFC 7323 says a value above
    /// 14 is to be used as 14, which is up to the caller.
    pub window_scale: Option<u8>,
    /// SACK permitted (kind 4).
    pub sack_permitted: bool,
    /// SACK blocks (kind 5) as (left, right) edges; the first `sack_count`
    /// are valid. Prefer [`Options::sack_blocks`] and
    /// [`Options::push_sack_block`].
    pub sack_blocks: [(u32, u32); MAX_SACK_BLOCKS],
    /// Number of valid entries in `sack_blocks` (values above 4 are treated
    /// as 4).
    pub sack_count: u8,
    /// Timestamps (kind 8): (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// Fast Open cookie or cookie request (kind 34).
    pub fast_open_cookie: Option<FastOpenCookie>,
}

impl PartialEq for Options {
    fn eq(&self, o: &Self) -> bool {
        self.mss == o.mss
            && self.window_scale == o.window_scale
            && self.sack_permitted == o.sack_permitted
            && self.sack_blocks() == o.sack_blocks()
            && self.timestamps == o.timestamps
            && self.fast_open_cookie == o.fast_open_cookie
    }
}

impl Eq for Options {}

impl Options {
    /// The valid SACK blocks.
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack_blocks[..(self.sack_count as usize).min(MAX_SACK_BLOCKS)]
    }

    /// Appends a SACK block; false (and nothing changes) when four are
    /// already held.
    pub fn push_sack_block(&mut self, block: (u32, u32)) -> bool {
        let n = (self.sack_count as usize).min(MAX_SACK_BLOCKS);
        if n == MAX_SACK_BLOCKS {
            return false;
        }
        self.sack_blocks[n] = block;
        self.sack_count = n as u8 + 1;
        true
    }

    /// Removes all SACK blocks.
    pub fn clear_sack_blocks(&mut self) {
        self.sack_count = 0;
        self.sack_blocks = [(0, 0); MAX_SACK_BLOCKS];
    }

    /// Parses an options area. EOL ends the list, NOP is skipped, unknown
    /// kinds are skipped by their length. [`Error::Malformed`] for a length
    /// byte below 2, an option running past the end, or a known kind with
    /// the wrong length (SACK: 2 + 8n, n >= 1; Fast Open: cookie of 0 or
    /// 4..=16 bytes). At most four SACK blocks are kept. A repeated option
    /// overrides the earlier one.
    pub fn parse(mut data: &[u8]) -> Result<Options> {
        let mut o = Options::default();
        while let Some(&kind) = data.first() {
            match kind {
                option_kind::EOL => break,
                option_kind::NOP => {
                    data = &data[1..];
                    continue;
                }
                _ => {}
            }
            let len = *data.get(1).ok_or(Error::Malformed)? as usize;
            if len < 2 || len > data.len() {
                return Err(Error::Malformed);
            }
            let body = &data[2..len];
            match kind {
                option_kind::MSS => {
                    if len != 4 {
                        return Err(Error::Malformed);
                    }
                    o.mss = Some(be16(body));
                }
                option_kind::WINDOW_SCALE => {
                    if len != 3 {
                        return Err(Error::Malformed);
                    }
                    o.window_scale = Some(body[0]);
                }
                option_kind::SACK_PERMITTED => {
                    if len != 2 {
                        return Err(Error::Malformed);
                    }
                    o.sack_permitted = true;
                }
                option_kind::SACK => {
                    if body.is_empty() || body.len() % 8 != 0 {
                        return Err(Error::Malformed);
                    }
                    o.clear_sack_blocks();
                    for b in body.chunks_exact(8).take(MAX_SACK_BLOCKS) {
                        o.push_sack_block((be32(&b[..4]), be32(&b[4..])));
                    }
                }
                option_kind::TIMESTAMPS => {
                    if len != 10 {
                        return Err(Error::Malformed);
                    }
                    o.timestamps = Some((be32(&body[..4]), be32(&body[4..])));
                }
                option_kind::FAST_OPEN => {
                    o.fast_open_cookie = Some(FastOpenCookie::new(body).ok_or(Error::Malformed)?);
                }
                _ => {}
            }
            data = &data[len..];
        }
        Ok(o)
    }

    /// Length of the fixed (non-SACK-block) part as emitted.
    fn base_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.timestamps.is_some() {
            n += 12;
        } else if self.sack_permitted {
            n += 4;
        }
        if self.window_scale.is_some() {
            n += 4;
        }
        if let Some(c) = self.fast_open_cookie {
            n += (2 + c.as_bytes().len() + 3) & !3;
        }
        n
    }

    /// How many SACK blocks fit in the 40 bytes next to the rest.
    fn sack_emitted(&self) -> usize {
        let room = MAX_OPTIONS_LEN.saturating_sub(self.base_len() + 4) / 8;
        self.sack_blocks().len().min(room)
    }

    /// Length of the emitted options: a multiple of 4, at most 40 (SACK
    /// blocks that do not fit are dropped).
    pub fn len(&self) -> usize {
        let n = self.sack_emitted();
        self.base_len() + if n > 0 { 4 + 8 * n } else { 0 }
    }

    /// True when nothing would be emitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the options the way Linux lays them out: MSS; timestamps
    /// (`04 02 08 0a` when SACK is permitted too, else `01 01 08 0a`) or
    /// `01 01 04 02`; `01 03 03 ws`; `01 01 05 len` SACK blocks; the Fast
    /// Open cookie padded with NOPs. Returns [`Options::len`]. Panics if
    /// `buf` is shorter than that.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let total = self.len();
        let buf = &mut buf[..total];
        let mut i = 0;
        let mut put = |bytes: &[u8]| {
            buf[i..i + bytes.len()].copy_from_slice(bytes);
            i += bytes.len();
            i
        };
        if let Some(mss) = self.mss {
            put(&[option_kind::MSS, 4]);
            put(&mss.to_be_bytes());
        }
        if let Some((val, ecr)) = self.timestamps {
            if self.sack_permitted {
                put(&[option_kind::SACK_PERMITTED, 2]);
            } else {
                put(&[option_kind::NOP, option_kind::NOP]);
            }
            put(&[option_kind::TIMESTAMPS, 10]);
            put(&val.to_be_bytes());
            put(&ecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[
                option_kind::NOP,
                option_kind::NOP,
                option_kind::SACK_PERMITTED,
                2,
            ]);
        }
        if let Some(ws) = self.window_scale {
            put(&[option_kind::NOP, option_kind::WINDOW_SCALE, 3, ws]);
        }
        let n = self.sack_emitted();
        if n > 0 {
            put(&[option_kind::NOP, option_kind::NOP, option_kind::SACK]);
            put(&[(2 + 8 * n) as u8]);
            for &(l, r) in &self.sack_blocks()[..n] {
                put(&l.to_be_bytes());
                put(&r.to_be_bytes());
            }
        }
        if let Some(c) = self.fast_open_cookie {
            let cookie = c.as_bytes();
            put(&[option_kind::FAST_OPEN, 2 + cookie.len() as u8]);
            let mut at = put(cookie);
            while at % 4 != 0 {
                at = put(&[option_kind::NOP]);
            }
        }
        total
    }
}

/// A read/write view of a TCP segment. The buffer must be exactly the IP
/// payload: the payload runs to its end and the checksum covers all of it.
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

    /// [`Error::Truncated`] when the buffer is shorter than 20 bytes or the
    /// header length; [`Error::Malformed`] when the data offset is below 5.
    pub fn check_len(&self) -> Result<()> {
        let n = self.buffer.as_ref().len();
        if n < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            Err(Error::Malformed)
        } else if hl > n {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    /// Header length in bytes (data offset times 4), options included.
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::FLAGS.start] >> 4) as usize) * 4
    }

    /// The control bits.
    pub fn flags(&self) -> Flags {
        Flags(be16(&self.buffer.as_ref()[field::FLAGS]) & 0x0fff)
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }

    /// The raw options area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from the header length to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    fn sum(&self, src: IpAddr, dst: IpAddr) -> Option<u32> {
        let data = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, protocol::TCP, data.len() as u32)?;
        Some(checksum::combine(&[ph, checksum::sum(data)]))
    }

    /// True when the checksum over the pseudo-header and the whole buffer
    /// verifies; false when `src` and `dst` are of different families.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.sum(src, dst)
            .is_some_and(|s| checksum::fold(s) == 0xffff)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn payload_ref(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        &b[self.header_len()..]
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

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the header length in bytes (a multiple of 4, 20 to 60).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::FLAGS.start];
        *b = (*b & 0x0f) | ((((len / 4) as u8) & 0x0f) << 4);
    }

    /// Sets the control bits (the data offset is kept).
    pub fn set_flags(&mut self, flags: Flags) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        let v = (u16::from(b[0] & 0xf0) << 8) | (flags.0 & 0x0fff);
        b.copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the window field.
    pub fn set_window_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::WIN_SIZE].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        self.buffer.as_mut()[field::URGENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Mutable options area (per the header length).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes and stores the checksum over the pseudo-header and the whole
    /// buffer; leaves 0 when `src` and `dst` are of different families.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        if let Some(s) = self.sum(src, dst) {
            self.set_checksum(checksum::finish(s));
        }
    }

    /// Stores the pseudo-header sum (folded, not complemented) in the
    /// checksum field, for a device that completes the checksum over the
    /// segment (checksum offload, `CHECKSUM_PARTIAL` in Linux's terms).
    pub fn fill_partial_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        let len = self.buffer.as_ref().len() as u32;
        let ph = checksum::pseudo_header(src, dst, protocol::TCP, len).unwrap_or(0);
        self.set_checksum(checksum::fold(ph));
    }
}

/// A parsed TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number (meaningful with ACK).
    pub ack_number: u32,
    /// Control bits.
    pub flags: Flags,
    /// Window field, unscaled.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// Options.
    pub options: Options,
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a segment: lengths again, the checksum when `verify_checksum`
    /// ([`Error::Checksum`]), then the options ([`Options::parse`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: IpAddr,
        dst: IpAddr,
        verify_checksum: bool,
    ) -> Result<Repr<'a>> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            options: Options::parse(packet.options())?,
            payload: packet.payload_ref(),
        })
    }

    /// Header length with options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Header plus payload length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space taken: payload plus one for SYN and one for FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len() + self.flags.syn() as usize + self.flags.fin() as usize
    }

    /// Writes the header and options (not the payload, not the checksum).
    fn emit_header<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.set_header_len(self.header_len());
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_urgent_at(self.urgent_at);
        self.options.emit(packet.options_mut());
    }

    /// Writes header, options and payload and fills the checksum. The buffer
    /// must be exactly [`Repr::buffer_len`] bytes (the checksum covers all of
    /// it); panics if it is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: IpAddr,
        dst: IpAddr,
    ) {
        self.emit_header(packet);
        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
        packet.fill_checksum(src, dst);
    }

    /// [`Repr::emit`] for a payload already in place behind the header
    /// (not copied from `self.payload`) whose partial sum is `payload_sum`
    /// (from [`checksum::copy_and_sum`] as it was copied in): the checksum
    /// then only sums the header.
    pub fn emit_with_payload_sum<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: IpAddr,
        dst: IpAddr,
        payload_sum: u32,
    ) {
        self.emit_header(packet);
        packet.set_checksum(0);
        let hl = self.header_len();
        let len = packet.buffer.as_ref().len() as u32;
        let Some(ph) = checksum::pseudo_header(src, dst, protocol::TCP, len) else {
            return;
        };
        let head = checksum::sum(&packet.buffer.as_ref()[..hl]);
        packet.set_checksum(checksum::finish(checksum::combine(&[
            ph,
            head,
            payload_sum,
        ])));
    }

    /// [`Repr::emit`] leaving the checksum to the device: the field gets
    /// the pseudo-header sum only (see [`Packet::fill_partial_checksum`]).
    pub fn emit_partial<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: IpAddr,
        dst: IpAddr,
    ) {
        self.emit_header(packet);
        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
        packet.fill_partial_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::TcpOptionElement as E;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    // 10.0.0.1.45678 > 10.0.0.2.80: Flags [S], seq 305419896, win 64240,
    // options [mss 1460,sackOK,TS val 168496141 ecr 0,nop,wscale 7]
    const SYN: [u8; 40] = [
        0xb2, 0x6e, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x07, 0x8a, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x0a, 0x0b,
        0x0c, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    fn syn_repr() -> Repr<'static> {
        Repr {
            src_port: 45678,
            dst_port: 80,
            seq_number: 0x12345678,
            ack_number: 0,
            flags: Flags::SYN,
            window_len: 64240,
            urgent_at: 0,
            options: Options {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((0x0a0b0c0d, 0)),
                ..Options::default()
            },
            payload: &[],
        }
    }

    #[test]
    fn known_linux_syn() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), Flags::SYN);
        let r = Repr::parse(&p, SRC, DST, true).unwrap();
        assert_eq!(r, syn_repr());
        assert_eq!(r.segment_len(), 1);
        let mut buf = [0u8; 40];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]), SRC, DST);
        assert_eq!(buf, SYN);
        // etherparse agrees on the checksum and options.
        let (h, _) = etherparse::TcpHeader::from_slice(&SYN).unwrap();
        assert_eq!(
            h.checksum,
            h.calc_checksum_ipv4_raw([10, 0, 0, 1], [10, 0, 0, 2], &[])
                .unwrap()
        );
        let opts: Vec<_> = h.options_iterator().map(|o| o.unwrap()).collect();
        assert_eq!(
            opts,
            [
                E::MaximumSegmentSize(1460),
                E::SelectiveAcknowledgementPermitted,
                E::Timestamp(0x0a0b0c0d, 0),
                E::Noop,
                E::WindowScale(7)
            ]
        );
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(Repr::parse(&p, other, DST, true), Err(Error::Checksum));
        assert!(Repr::parse(&p, other, DST, false).is_ok());
    }

    #[test]
    fn flags_display() {
        assert_eq!((Flags::SYN | Flags::ACK).to_string(), "[S.]");
        assert_eq!((Flags::FIN | Flags::PSH | Flags::ACK).to_string(), "[FP.]");
        assert_eq!(Flags::RST.to_string(), "[R]");
        assert_eq!(Flags::NONE.to_string(), "[none]");
        assert_eq!(Flags(0x1c2).to_string(), "[SEWe]");
        let f = Flags::SYN | Flags::ACK;
        assert!(f.syn() && f.ack() && !f.fin() && !f.rst() && !f.psh() && !f.urg());
        assert!(f.contains(Flags::SYN) && !f.contains(Flags::SYN | Flags::FIN));
        assert_eq!(f.without(Flags::ACK), Flags::SYN);
    }

    #[test]
    fn malformed_lengths() {
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&SYN[..n]).err(), Some(Error::Truncated));
        }
        // (data offset byte, buffer length, expected)
        let cases: &[(u8, usize, Option<Error>)] = &[
            (0x00, 40, Some(Error::Malformed)),
            (0x40, 40, Some(Error::Malformed)),
            (0x50, 20, None),
            (0x60, 20, Some(Error::Truncated)),
            (0xa0, 39, Some(Error::Truncated)),
            (0xa0, 40, None),
            (0xf0, 40, Some(Error::Truncated)),
        ];
        for &(b, n, e) in cases {
            let mut buf = SYN;
            buf[12] = b;
            assert_eq!(Packet::new_checked(&buf[..n]).err(), e, "{b:#x} {n}");
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&buf[..n]), SRC, DST, false).err(),
                e
            );
        }
        // A malformed option in a valid header.
        let mut buf = SYN;
        buf[21] = 5; // MSS with length 5
        Packet::new_unchecked(&mut buf[..]).fill_checksum(SRC, DST);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, DST, true), Err(Error::Malformed));
    }

    #[test]
    fn option_kinds() {
        let o = |b: &[u8]| Options::parse(b);
        assert_eq!(o(&[]).unwrap(), Options::default());
        assert_eq!(o(&[2, 4, 0x05, 0xb4]).unwrap().mss, Some(1460));
        assert_eq!(o(&[3, 3, 14]).unwrap().window_scale, Some(14));
        assert_eq!(o(&[3, 3, 200]).unwrap().window_scale, Some(200));
        assert!(o(&[4, 2]).unwrap().sack_permitted);
        assert_eq!(
            o(&[8, 10, 0, 0, 0, 1, 0, 0, 0, 2]).unwrap().timestamps,
            Some((1, 2))
        );
        let s = o(&[5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]).unwrap();
        assert_eq!(s.sack_blocks(), &[(1, 2), (3, 4)]);
        let mut five = vec![5u8, 42];
        for i in 0..10u32 {
            five.extend_from_slice(&i.to_be_bytes());
        }
        let s = o(&five).unwrap();
        assert_eq!(s.sack_blocks(), &[(0, 1), (2, 3), (4, 5), (6, 7)]);
        assert_eq!(
            o(&[34, 2]).unwrap().fast_open_cookie.unwrap().as_bytes(),
            &[] as &[u8]
        );
        assert_eq!(
            o(&[34, 6, 1, 2, 3, 4])
                .unwrap()
                .fast_open_cookie
                .unwrap()
                .as_bytes(),
            &[1, 2, 3, 4]
        );
        let mut tfo = vec![34u8, 18];
        tfo.extend(1..=16u8);
        assert_eq!(
            o(&tfo).unwrap().fast_open_cookie.unwrap().as_bytes().len(),
            16
        );
        // NOPs skipped, EOL ends the list (garbage after it ignored).
        assert_eq!(o(&[1, 1, 1, 2, 4, 0, 1, 0, 0xff, 0]).unwrap().mss, Some(1));
        // Unknown kinds skipped by their length.
        assert_eq!(o(&[254, 4, 0xf9, 0x89, 2, 4, 0, 9]).unwrap().mss, Some(9));
        assert_eq!(
            o(&[19, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            Options::default()
        );
    }

    #[test]
    fn option_malformed() {
        let bad: &[&[u8]] = &[
            &[2],             // no length byte
            &[2, 4, 5],       // runs past the end
            &[2, 3, 5],       // MSS wrong length
            &[2, 5, 5, 0, 0], // MSS wrong length
            &[3, 2],          // wscale wrong length
            &[3, 4, 1, 1],
            &[4, 3, 0],          // SACK-perm wrong length
            &[5, 2],             // SACK with no block
            &[5, 6, 0, 0, 0, 0], // SACK partial block
            &[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[8, 8, 0, 0, 0, 0, 0, 0], // TS wrong length
            &[34, 3, 0],               // TFO cookie of 1
            &[34, 5, 0, 0, 0],         // TFO cookie of 3
            &[34, 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // 17
            &[99, 0],                  // length < 2
            &[99, 1, 0, 0],            // length < 2
            &[99, 5, 0, 0],            // unknown running past the end
            &[1, 1, 99],               // unknown without length
        ];
        for b in bad {
            assert_eq!(Options::parse(b), Err(Error::Malformed), "{b:?}");
        }
    }

    #[test]
    fn option_layout_like_linux() {
        let mut o = Options {
            mss: Some(1460),
            ..Options::default()
        };
        let mut buf = [0u8; 40];
        // SYN without SACK-perm: NOP NOP before TS.
        o.timestamps = Some((1, 0));
        o.window_scale = Some(7);
        assert_eq!(o.emit(&mut buf), 20);
        assert_eq!(
            &buf[..20],
            &[2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]
        );
        // SACK-perm without TS.
        o.timestamps = None;
        o.sack_permitted = true;
        assert_eq!(o.emit(&mut buf), 12);
        assert_eq!(&buf[..12], &[2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]);
        // Non-SYN: NOP NOP TS, NOP NOP SACK.
        let mut o = Options {
            timestamps: Some((5, 6)),
            ..Options::default()
        };
        o.push_sack_block((100, 200));
        assert_eq!(o.len(), 24);
        assert_eq!(o.emit(&mut buf), 24);
        assert_eq!(
            &buf[..24],
            &[1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 10, 0, 0, 0, 100, 0, 0, 0, 200]
        );
        // Fast Open: cookie request and a cookie, NOP-padded.
        let o = Options {
            mss: Some(1460),
            fast_open_cookie: FastOpenCookie::new(&[]),
            ..Options::default()
        };
        assert_eq!(o.emit(&mut buf), 8);
        assert_eq!(&buf[..8], &[2, 4, 5, 0xb4, 34, 2, 1, 1]);
        let o = Options {
            fast_open_cookie: FastOpenCookie::new(&[9; 8]),
            ..Options::default()
        };
        assert_eq!(o.emit(&mut buf), 12);
        assert_eq!(&buf[..12], &[34, 10, 9, 9, 9, 9, 9, 9, 9, 9, 1, 1]);
        assert!(FastOpenCookie::new(&[0; 3]).is_none());
        assert!(FastOpenCookie::new(&[0; 17]).is_none());
    }

    #[test]
    fn forty_byte_limit() {
        let mut o = Options {
            timestamps: Some((1, 2)),
            ..Options::default()
        };
        for i in 0..4 {
            assert!(o.push_sack_block((i, i + 1)));
        }
        assert!(!o.push_sack_block((9, 9)));
        assert_eq!(o.sack_blocks().len(), 4);
        // 12 (TS) + 4 + 3 * 8 = 40: the fourth block is dropped.
        assert_eq!(o.len(), 40);
        let mut buf = [0u8; 40];
        assert_eq!(o.emit(&mut buf), 40);
        assert_eq!(
            Options::parse(&buf).unwrap().sack_blocks(),
            &o.sack_blocks()[..3]
        );
        // Without timestamps all four fit: 4 + 32 = 36.
        o.timestamps = None;
        assert_eq!(o.len(), 36);
        // Everything a SYN can carry plus blocks: blocks dropped entirely.
        o.mss = Some(1);
        o.timestamps = Some((1, 2));
        o.window_scale = Some(1);
        o.sack_permitted = true;
        o.fast_open_cookie = FastOpenCookie::new(&[7; 16]);
        assert_eq!(o.len(), 40);
        o.emit(&mut buf);
        let back = Options::parse(&buf).unwrap();
        assert!(back.sack_blocks().is_empty());
        assert_eq!(back.fast_open_cookie, o.fast_open_cookie);
        // A bogus sack_count is clamped.
        let o = Options {
            sack_count: 200,
            ..Options::default()
        };
        assert_eq!(o.sack_blocks().len(), 4);
        assert_eq!(o.len(), 36);
    }

    fn arb_options() -> impl Strategy<Value = Options> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
            proptest::option::of(any::<(u32, u32)>()),
            proptest::option::of(prop_oneof![Just(0usize), 4usize..=16]),
            any::<[u8; 16]>(),
        )
            .prop_map(|(mss, ws, sp, blocks, ts, tfo, cookie)| {
                let mut o = Options {
                    mss,
                    window_scale: ws,
                    sack_permitted: sp,
                    timestamps: ts,
                    fast_open_cookie: tfo.map(|n| FastOpenCookie::new(&cookie[..n]).unwrap()),
                    ..Options::default()
                };
                for b in blocks {
                    o.push_sack_block(b);
                }
                o
            })
    }

    /// What parsing the emitted options gives: SACK blocks beyond the room
    /// are dropped.
    fn expected(o: &Options) -> Options {
        let mut e = *o;
        e.clear_sack_blocks();
        for &b in &o.sack_blocks()[..o.sack_emitted()] {
            e.push_sack_block(b);
        }
        e
    }

    fn to_etherparse(o: &Options) -> Vec<E> {
        let mut v = Vec::new();
        if let Some(m) = o.mss {
            v.push(E::MaximumSegmentSize(m));
        }
        if let Some((a, b)) = o.timestamps {
            if o.sack_permitted {
                v.push(E::SelectiveAcknowledgementPermitted);
            }
            v.push(E::Timestamp(a, b));
        } else if o.sack_permitted {
            v.push(E::SelectiveAcknowledgementPermitted);
        }
        if let Some(w) = o.window_scale {
            v.push(E::WindowScale(w));
        }
        let blocks = &o.sack_blocks()[..o.sack_emitted()];
        if let Some((&first, rest)) = blocks.split_first() {
            let mut more = [None; 3];
            for (m, &b) in more.iter_mut().zip(rest) {
                *m = Some(b);
            }
            v.push(E::SelectiveAcknowledgement(first, more));
        }
        v
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
                let _ = (p.options(), p.payload(), p.flags(), p.verify_checksum(s, d));
                let _ = Repr::parse(&p, s, d, false);
            }
        }

        #[test]
        fn options_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(o) = Options::parse(&data) {
                let mut buf = [0u8; 40];
                prop_assert!(o.len() <= 40 && o.len() % 4 == 0);
                prop_assert_eq!(o.emit(&mut buf), o.len());
            }
        }

        #[test]
        fn options_parse_plausible(mut data in proptest::collection::vec(prop_oneof![0u8..10, Just(34u8), any::<u8>()], 0..48)) {
            // Bias lengths towards small values so real options get parsed.
            for i in (1..data.len()).step_by(3) {
                data[i] %= 20;
            }
            let _ = Options::parse(&data);
        }

        #[test]
        fn options_round_trip(o in arb_options()) {
            let mut buf = [0u8; 40];
            let n = o.emit(&mut buf);
            prop_assert_eq!(n, o.len());
            prop_assert!(n <= 40 && n % 4 == 0);
            prop_assert_eq!(Options::parse(&buf[..n]).unwrap(), expected(&o));
            if o.fast_open_cookie.is_none() {
                let mut h = etherparse::TcpHeader::default();
                h.set_options_raw(&buf[..n]).unwrap();
                let got: Vec<E> = h.options_iterator().map(|e| e.unwrap()).filter(|e| *e != E::Noop).collect();
                prop_assert_eq!(got, to_etherparse(&o));
            }
        }

        #[test]
        fn repr_round_trip_and_etherparse(
            (s, d) in arb_addrs(), ports in any::<(u16, u16)>(), seq in any::<u32>(), ack in any::<u32>(),
            flags in 0u16..0x200, win in any::<u16>(), urg in any::<u16>(), options in arb_options(),
            payload in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let repr = Repr {
                src_port: ports.0, dst_port: ports.1, seq_number: seq, ack_number: ack,
                flags: Flags(flags), window_len: win, urgent_at: urg, options, payload: &payload,
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), s, d);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum(s, d));
            let back = Repr::parse(&p, s, d, true).unwrap();
            prop_assert_eq!(back, Repr { options: expected(&options), ..repr });
            prop_assert_eq!(back.segment_len(), payload.len() + (flags & 2 != 0) as usize + (flags & 1 != 0) as usize);

            let (h, rest) = etherparse::TcpHeader::from_slice(&buf).unwrap();
            prop_assert_eq!(rest, &payload[..]);
            prop_assert_eq!((h.source_port, h.destination_port), ports);
            prop_assert_eq!((h.sequence_number, h.acknowledgment_number), (seq, ack));
            prop_assert_eq!((h.window_size, h.urgent_pointer), (win, urg));
            let f = Flags(flags);
            prop_assert_eq!(
                (h.fin, h.syn, h.rst, h.psh, h.ack, h.urg, h.ece, h.cwr, h.ns),
                (f.fin(), f.syn(), f.rst(), f.psh(), f.ack(), f.urg(), f.ece(), f.cwr(), flags & 0x100 != 0)
            );
            prop_assert_eq!(h.header_len(), repr.header_len());
            let want = match (s, d) {
                (IpAddr::V4(s), IpAddr::V4(d)) => h.calc_checksum_ipv4_raw(s.octets(), d.octets(), rest).unwrap(),
                (IpAddr::V6(s), IpAddr::V6(d)) => h.calc_checksum_ipv6_raw(s.octets(), d.octets(), rest).unwrap(),
                _ => unreachable!(),
            };
            prop_assert_eq!(h.checksum, want);
        }

        #[test]
        fn parses_etherparse(
            sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in proptest::option::of(any::<u32>()),
            win in any::<u16>(), syn in any::<bool>(), fin in any::<bool>(), psh in any::<bool>(),
            mss in proptest::option::of(any::<u16>()), ws in proptest::option::of(any::<u8>()),
            ts in proptest::option::of(any::<(u32, u32)>()), sack_perm in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1000),
        ) {
            let mut elems = Vec::new();
            if let Some(m) = mss { elems.push(E::MaximumSegmentSize(m)); }
            if sack_perm { elems.push(E::SelectiveAcknowledgementPermitted); }
            if let Some((a, b)) = ts { elems.push(E::Timestamp(a, b)); }
            if let Some(w) = ws { elems.push(E::WindowScale(w)); }
            let mut b = etherparse::PacketBuilder::ipv4([192, 0, 2, 1], [198, 51, 100, 7], 64).tcp(sp, dp, seq, win);
            if syn { b = b.syn(); }
            if fin { b = b.fin(); }
            if psh { b = b.psh(); }
            if let Some(a) = ack { b = b.ack(a); }
            let b = b.options(&elems).unwrap();
            let mut out = Vec::new();
            b.write(&mut out, &payload).unwrap();

            let ip = super::super::ipv4::Packet::new_checked(&out[..]).unwrap();
            let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
            let p = Packet::new_checked(ip.payload()).unwrap();
            let r = Repr::parse(&p, src, dst, true).unwrap();
            prop_assert_eq!((r.src_port, r.dst_port, r.seq_number, r.window_len), (sp, dp, seq, win));
            prop_assert_eq!(r.ack_number, ack.unwrap_or(0));
            prop_assert_eq!((r.flags.syn(), r.flags.fin(), r.flags.psh(), r.flags.ack()), (syn, fin, psh, ack.is_some()));
            prop_assert_eq!(r.options, Options { mss, window_scale: ws, sack_permitted: sack_perm, timestamps: ts, ..Options::default() });
            prop_assert_eq!(r.payload, &payload[..]);
        }

        #[test]
        fn ipv6_checksum(payload in proptest::collection::vec(any::<u8>(), 0..100), s in any::<u128>(), d in any::<u128>()) {
            let (s, d) = (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)));
            let repr = Repr { payload: &payload, ..syn_repr() };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), s, d);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum(s, d));
            prop_assert!(!p.verify_checksum(SRC, d));
            prop_assert_eq!(Repr::parse(&p, s, d, true).unwrap(), repr);
        }
    }
}
