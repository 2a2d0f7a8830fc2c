//! The vocabulary of a link, shared by the sans-IO core ([`crate::iface`])
//! and the devices ([`crate::phy`]): what a link carries ([`Medium`]), what
//! a device can offload ([`DeviceCaps`], [`Offload`]), the state of a
//! frame's checksum ([`Checksum`], [`FrameMeta`]) and the batches frames
//! travel in ([`FrameBatch`]); the impairment engine both the `Impair`
//! device and the simulator run ([`impair`]), and the crate's seeded
//! generator ([`Rng`]). No I/O here.
//!
//! This is the canonical path of these items; [`crate::phy`] re-exports
//! them under their older names (`ustack::phy::Medium` and so on).

use crate::wire::EthernetAddress;

pub mod impair;
mod rng;

pub use rng::Rng;

/// What a device carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Medium {
    /// Ethernet II frames (TAP, raw socket): the stack does ARP.
    Ethernet,
    /// Bare IPv4/IPv6 packets (TUN): no link layer.
    Ip,
}

impl Medium {
    /// Bytes of link header in front of each IP packet.
    pub fn header_len(self) -> usize {
        match self {
            Medium::Ethernet => crate::wire::ethernet::HEADER_LEN,
            Medium::Ip => 0,
        }
    }
}

/// Offloads a device can do for the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// The device computes transport checksums on transmit.
    pub tx_checksum: bool,
    /// The device accepts TCP super-segments and segments them (TSO/GSO).
    pub tso: bool,
    /// The device may hand the stack coalesced super-segments (GRO) and
    /// frames whose checksum it has verified or need not be verified.
    pub gro: bool,
}

/// The largest super-segment a device with TSO takes or one with GRO
/// hands over: an IP packet of up to 64 KiB.
pub const GSO_MAX_PACKET: usize = 65535;

/// What a device is and can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCaps {
    /// Ethernet or IP.
    pub medium: Medium,
    /// Largest IP packet the device carries (link header excluded).
    pub mtu: usize,
    /// The stack's own hardware address on Ethernet media.
    pub hardware_addr: Option<EthernetAddress>,
    /// Offload capabilities.
    pub offload: Offload,
}

impl DeviceCaps {
    /// Largest frame on the wire, link header included.
    pub fn max_frame_len(&self) -> usize {
        self.medium.header_len() + self.mtu
    }

    /// Largest frame the device may hand the stack: a GRO super-segment
    /// when the device coalesces, else [`DeviceCaps::max_frame_len`].
    pub fn max_rx_frame_len(&self) -> usize {
        if self.offload.gro {
            self.medium.header_len() + GSO_MAX_PACKET.max(self.mtu)
        } else {
            self.max_frame_len()
        }
    }

    /// Largest frame the stack may hand the device: a TSO super-segment
    /// when the device segments, else [`DeviceCaps::max_frame_len`].
    pub fn max_tx_frame_len(&self) -> usize {
        if self.offload.tso {
            self.medium.header_len() + GSO_MAX_PACKET.max(self.mtu)
        } else {
            self.max_frame_len()
        }
    }
}

/// How a frame's transport checksum stands, for devices that offload it
/// (the virtio-net header of a TUN/TAP opened with offload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// The checksum in the frame is complete (transmit), or nothing is known
    /// about it and the stack verifies it (receive).
    #[default]
    Complete,
    /// Transmit: the field at `start + offset` holds only the pseudo-header
    /// sum, and the device sums from `start` (an offset into the frame,
    /// link header included) to the end and stores the result there.
    /// Receive: the frame came from the local kernel in this state; its
    /// data is trusted and the stack must not verify the field.
    Partial {
        /// Where the transport header starts in the frame.
        start: u16,
        /// Where the checksum field is, from `start`.
        offset: u16,
    },
    /// Receive: the device has verified the checksum.
    Verified,
}

impl Checksum {
    /// Completes a [`Checksum::Partial`] checksum of `frame` in place
    /// ([`crate::wire::checksum::complete_partial`]); a no-op for any
    /// other state. False when the offsets lie outside the frame.
    pub fn complete(self, frame: &mut [u8]) -> bool {
        match self {
            Checksum::Partial { start, offset } => {
                crate::wire::checksum::complete_partial(frame, start.into(), offset.into())
            }
            _ => true,
        }
    }
}

/// What travels with a frame besides its bytes (offload state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameMeta {
    /// The transport checksum's state.
    pub checksum: Checksum,
    /// A TCP super-segment (TSO/GSO on transmit, GRO on receive): the
    /// device cuts its payload into segments of this many bytes. 0: an
    /// ordinary frame.
    pub gso_size: u16,
}

impl FrameMeta {
    /// True when the stack need not (or must not) verify the transport
    /// checksum of a received frame.
    pub fn checksum_trusted(&self) -> bool {
        !matches!(self.checksum, Checksum::Complete)
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    len: usize,
    meta: FrameMeta,
}

/// A reusable batch of frames stored back to back in one buffer: no
/// allocation per frame once the batch has grown to its working size, and
/// no zero-filling of a slot the buffer has held before (a receive slot
/// sized for a 64 KiB offload frame costs nothing when 1,500 bytes arrive).
/// Each frame carries its [`FrameMeta`].
#[derive(Debug, Clone)]
pub struct FrameBatch {
    /// Initialised bytes; its length only grows (the high-water mark).
    buf: Vec<u8>,
    /// End of the committed frames in `buf`.
    used: usize,
    frames: Vec<Slot>,
    max_frames: usize,
    max_frame_len: usize,
    /// Start of a frame reserved by [`FrameBatch::reserve`] and not yet committed.
    pending: Option<usize>,
}

impl FrameBatch {
    /// A batch of at most `max_frames` frames of at most `max_frame_len` bytes.
    pub fn new(max_frames: usize, max_frame_len: usize) -> FrameBatch {
        let max_frames = max_frames.max(1);
        FrameBatch {
            buf: Vec::with_capacity(max_frames * max_frame_len.min(2048)),
            used: 0,
            frames: Vec::with_capacity(max_frames),
            max_frames,
            max_frame_len,
            pending: None,
        }
    }

    /// Frames in the batch.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when the batch holds no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// True when no further frame fits.
    pub fn is_full(&self) -> bool {
        self.frames.len() >= self.max_frames
    }

    /// The largest frame the batch takes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// The most frames the batch takes.
    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    /// Bytes held by the committed frames.
    pub fn bytes(&self) -> usize {
        self.used
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.used = 0;
        self.frames.clear();
        self.pending = None;
    }

    /// Frame `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.frames
            .get(i)
            .map(|s| &self.buf[s.start..s.start + s.len])
    }

    /// Frame `i`, mutable.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.frames
            .get(i)
            .map(|s| &mut self.buf[s.start..s.start + s.len])
    }

    /// The metadata of frame `i`.
    pub fn meta(&self, i: usize) -> Option<FrameMeta> {
        self.frames.get(i).map(|s| s.meta)
    }

    /// The frames in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.frames
            .iter()
            .map(|s| &self.buf[s.start..s.start + s.len])
    }

    /// The frames in order, each with its metadata.
    pub fn iter_meta(&self) -> impl Iterator<Item = (&[u8], FrameMeta)> + '_ {
        self.frames
            .iter()
            .map(|s| (&self.buf[s.start..s.start + s.len], s.meta))
    }

    /// Appends a copy of `frame`; false (and nothing added) when the batch is
    /// full or the frame is longer than the batch's frame limit.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        self.push_meta(frame, FrameMeta::default())
    }

    /// [`FrameBatch::push`] with metadata.
    pub fn push_meta(&mut self, frame: &[u8], meta: FrameMeta) -> bool {
        if self.is_full() || frame.len() > self.max_frame_len {
            return false;
        }
        self.pending = None;
        let start = self.used;
        let end = start + frame.len();
        if self.buf.len() >= end {
            self.buf[start..end].copy_from_slice(frame);
        } else {
            self.buf.truncate(start);
            self.buf.extend_from_slice(frame);
        }
        self.used = end;
        self.frames.push(Slot {
            start,
            len: frame.len(),
            meta,
        });
        true
    }

    /// Reserves `len` zeroed bytes for the next frame, to be written in
    /// place and then kept with [`FrameBatch::commit`]. A later `reserve`
    /// without a commit discards the earlier reservation. `None` when full
    /// or too long.
    pub fn reserve(&mut self, len: usize) -> Option<&mut [u8]> {
        let slot = self.reserve_with_headroom(0, len)?;
        slot.fill(0);
        Some(slot)
    }

    /// Reserves `headroom + len` bytes without clearing them (they hold
    /// whatever the buffer held before: the caller writes every byte it
    /// keeps), e.g. a device header in front of a frame of up to `len`
    /// bytes read by one system call (see [`FrameBatch::commit_at`]).
    pub fn reserve_with_headroom(&mut self, headroom: usize, len: usize) -> Option<&mut [u8]> {
        if self.is_full() || len > self.max_frame_len {
            return None;
        }
        let start = self.used;
        let end = start + headroom + len;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.pending = Some(start);
        Some(&mut self.buf[start..end])
    }

    /// Keeps the first `len` bytes of the reserved slot as a frame.
    pub fn commit(&mut self, len: usize) {
        self.commit_at(0, len, FrameMeta::default());
    }

    /// [`FrameBatch::commit`] with metadata.
    pub fn commit_meta(&mut self, len: usize, meta: FrameMeta) {
        self.commit_at(0, len, meta);
    }

    /// Keeps bytes `skip..skip + len` of the reserved slot as a frame (the
    /// first `skip` bytes, a device header, are left as a gap).
    pub fn commit_at(&mut self, skip: usize, len: usize, meta: FrameMeta) {
        if let Some(start) = self.pending.take() {
            let begin = (start + skip).min(self.buf.len());
            let len = len.min(self.max_frame_len).min(self.buf.len() - begin);
            self.used = begin + len;
            self.frames.push(Slot {
                start: begin,
                len,
                meta,
            });
        }
    }

    /// Drops the reserved slot without keeping it.
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    /// Removes the first `n` frames (those a device managed to send).
    pub fn consume(&mut self, n: usize) {
        if n >= self.frames.len() {
            self.clear();
            return;
        }
        let cut = self.frames[n].start;
        self.buf.copy_within(cut..self.used, 0);
        self.used -= cut;
        self.frames.drain(..n);
        for f in &mut self.frames {
            f.start -= cut;
        }
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_push_reserve_consume() {
        let mut b = FrameBatch::new(3, 10);
        assert!(b.push(b"abc"));
        let s = b.reserve(10).unwrap();
        s[..2].copy_from_slice(b"xy");
        b.commit(2);
        assert!(!b.push(&[0; 11]));
        assert!(b.push(b"z"));
        assert!(b.is_full());
        assert!(!b.push(b"q"));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![&b"abc"[..], b"xy", b"z"]);
        b.consume(2);
        assert_eq!(b.len(), 1);
        assert_eq!(b.get(0).unwrap(), b"z");
        b.reserve(4).unwrap();
        b.abandon();
        assert_eq!(b.len(), 1);
        b.consume(5);
        assert!(b.is_empty());
    }
}
