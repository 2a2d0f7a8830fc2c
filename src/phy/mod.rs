//! Devices: where frames come from and go to.
//!
//! A [`Device`] moves *batches* of frames per call. It reports its medium
//! (Ethernet frames or bare IP packets), its MTU and what it can offload.
//! Devices are non-blocking: `recv_batch` returns what is ready now, and the
//! runtime waits on [`Device::as_raw_fd`] (plus [`Device::poll_at`] for
//! devices with their own timers, such as the impairment layer) before asking
//! again.

use std::io;
use std::os::fd::RawFd;

use crate::time::Instant;
use crate::wire::EthernetAddress;

pub mod impair;
pub mod pcap;
pub mod pipe;
pub mod raw;
pub mod tun;
mod util;

pub use impair::{Impair, ImpairSpec, ImpairStats};
pub use pcap::PcapWriter;
pub use pipe::{PipeDevice, PipeOptions, PipeStats};
pub use raw::{RawOptions, RawSocket, RawStats};
pub use tun::{TunDevice, TunKind, TunOptions};

/// What a device carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Medium {
    /// Ethernet II frames (TAP, raw socket): the stack does ARP.
    Ethernet,
    /// Bare IPv4/IPv6 packets (TUN): no link layer.
    Ip,
}

/// Offloads a device can do for the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// The device computes transport checksums on transmit.
    pub tx_checksum: bool,
    /// The device accepts TCP super-segments and segments them (TSO/GSO).
    pub tso: bool,
    /// The device may hand the stack coalesced super-segments (GRO).
    pub gro: bool,
}

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
    /// Largest frame, link header included.
    pub fn max_frame_len(&self) -> usize {
        match self.medium {
            Medium::Ethernet => self.mtu + crate::wire::ethernet::HEADER_LEN,
            Medium::Ip => self.mtu,
        }
    }
}

/// A reusable batch of frames stored back to back in one buffer: no
/// allocation per frame once the batch has grown to its working size.
#[derive(Debug, Clone)]
pub struct FrameBatch {
    buf: Vec<u8>,
    frames: Vec<(usize, usize)>,
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

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.frames.clear();
        self.pending = None;
    }

    /// Frame `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.frames.get(i).map(|&(s, l)| &self.buf[s..s + l])
    }

    /// Frame `i`, mutable.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.frames.get(i).map(|&(s, l)| &mut self.buf[s..s + l])
    }

    /// The frames in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.frames.iter().map(|&(s, l)| &self.buf[s..s + l])
    }

    /// Appends a copy of `frame`; false (and nothing added) when the batch is
    /// full or the frame is longer than the batch's frame limit.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        if self.is_full() || frame.len() > self.max_frame_len {
            return false;
        }
        // Like reserve + commit, without zero-filling the slot first.
        if let Some(start) = self.pending.take() {
            self.buf.truncate(start);
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(frame);
        self.frames.push((start, frame.len()));
        true
    }

    /// Reserves `len` zeroed bytes for the next frame, to be written in place
    /// and then kept with [`FrameBatch::commit`]. A later `reserve` without a
    /// commit discards the earlier reservation. `None` when full or too long.
    pub fn reserve(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.is_full() || len > self.max_frame_len {
            return None;
        }
        let start = self.pending.unwrap_or(self.buf.len());
        self.buf.truncate(start);
        self.buf.resize(start + len, 0);
        self.pending = Some(start);
        Some(&mut self.buf[start..start + len])
    }

    /// Keeps the first `len` bytes of the reserved slot as a frame.
    pub fn commit(&mut self, len: usize) {
        if let Some(start) = self.pending.take() {
            let len = len.min(self.buf.len() - start);
            self.buf.truncate(start + len);
            self.frames.push((start, len));
        }
    }

    /// Drops the reserved slot without keeping it.
    pub fn abandon(&mut self) {
        if let Some(start) = self.pending.take() {
            self.buf.truncate(start);
        }
    }

    /// Removes the first `n` frames (those a device managed to send).
    pub fn consume(&mut self, n: usize) {
        if n >= self.frames.len() {
            self.clear();
            return;
        }
        let cut = self.frames[n].0;
        self.buf.drain(..cut);
        self.frames.drain(..n);
        for f in &mut self.frames {
            f.0 -= cut;
        }
    }
}

/// A source and sink of frames.
pub trait Device {
    /// What the device is and can do.
    fn caps(&self) -> DeviceCaps;

    /// Appends the frames that are ready now to `batch` (up to its room) and
    /// returns how many were added; 0 means nothing is ready. Never blocks.
    fn recv_batch(&mut self, now: Instant, batch: &mut FrameBatch) -> io::Result<usize>;

    /// Sends frames from the front of `batch` and returns how many went out;
    /// fewer than `batch.len()` means the device would block and the rest
    /// should be offered again when it is writable. Never blocks.
    fn send_batch(&mut self, now: Instant, batch: &FrameBatch) -> io::Result<usize>;

    /// A file descriptor that polls readable when frames may be ready.
    /// `None` for devices with nothing to wait on.
    fn as_raw_fd(&self) -> Option<RawFd>;

    /// When the device itself next needs servicing (e.g. delayed frames of
    /// the impairment layer); `None` when it has nothing pending.
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Lets the device do time-driven work (release delayed frames) at `now`.
    fn service(&mut self, now: Instant) -> io::Result<()> {
        let _ = now;
        Ok(())
    }

    /// Frames lost inside the device (kernel queue overflow, a full pipe,
    /// impairment) before the stack or the wire saw them, in total.
    fn dropped(&mut self) -> u64 {
        0
    }

    /// True when the device holds frames of its own that wait for its
    /// descriptor to become writable (the runtime then polls for POLLOUT
    /// instead of spinning).
    fn wants_writable(&self) -> bool {
        false
    }
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn caps(&self) -> DeviceCaps {
        (**self).caps()
    }
    fn recv_batch(&mut self, now: Instant, batch: &mut FrameBatch) -> io::Result<usize> {
        (**self).recv_batch(now, batch)
    }
    fn send_batch(&mut self, now: Instant, batch: &FrameBatch) -> io::Result<usize> {
        (**self).send_batch(now, batch)
    }
    fn as_raw_fd(&self) -> Option<RawFd> {
        (**self).as_raw_fd()
    }
    fn poll_at(&self) -> Option<Instant> {
        (**self).poll_at()
    }
    fn service(&mut self, now: Instant) -> io::Result<()> {
        (**self).service(now)
    }
    fn dropped(&mut self) -> u64 {
        (**self).dropped()
    }
    fn wants_writable(&self) -> bool {
        (**self).wants_writable()
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
