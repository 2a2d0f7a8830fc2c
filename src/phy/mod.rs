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

pub mod gso;
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

// The link vocabulary lives in [`crate::link`] (the sans-IO core uses it
// without the devices); these are the same items under their older paths.
pub use crate::link::{
    Checksum, DeviceCaps, FrameBatch, FrameMeta, Medium, Offload, GSO_MAX_PACKET,
};

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
