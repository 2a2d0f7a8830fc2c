//! An in-memory link: two [`PipeDevice`] ends, each receiving what the other
//! sends.
//!
//! Each direction is a bounded queue; a frame sent into a full queue is
//! dropped and counted, as a full NIC ring would drop it. Each end has a
//! pollable descriptor (a Linux `eventfd`) that is readable while frames wait
//! for that end, so a threaded runtime can block on it. The ends are `Send`
//! and may live on different threads. Frame buffers are recycled through a
//! small free list, so steady traffic does not allocate per frame.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Checksum, Device, DeviceCaps, FrameBatch, FrameMeta, Medium, Offload};
use crate::time::Instant;
use crate::wire::EthernetAddress;

/// Default per-direction queue capacity, in frames.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Buffers kept for reuse per direction.
/// (It never holds more than the queue held at its fullest: a burst of a
/// full window would otherwise allocate a buffer per frame beyond it.)
const FREE_LIST_MAX: usize = 1024;

/// How to build a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeOptions {
    /// Ethernet or IP.
    pub medium: Medium,
    /// Largest IP packet (link header excluded).
    pub mtu: usize,
    /// Frames each direction holds before dropping.
    pub capacity: usize,
    /// MAC addresses of the two ends on Ethernet; `None` picks random locally
    /// administered unicast addresses. Ignored for [`Medium::Ip`].
    pub hardware_addrs: Option<(EthernetAddress, EthernetAddress)>,
    /// Offer both ends TCP offload, as a TUN with the virtio-net header
    /// does: TCP super-segments of up to 64 KiB cross the pipe whole and
    /// partial checksums stay partial (the receiving end trusts them, as
    /// Linux's loopback does). Off by default.
    pub offload: bool,
}

impl PipeOptions {
    /// Defaults for `medium` and `mtu`: [`DEFAULT_CAPACITY`], random MACs.
    pub fn new(medium: Medium, mtu: usize) -> PipeOptions {
        PipeOptions {
            medium,
            mtu,
            capacity: DEFAULT_CAPACITY,
            hardware_addrs: None,
            offload: false,
        }
    }
}

/// Counters of one pipe end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PipeStats {
    /// Frames this end queued toward the peer.
    pub sent: u64,
    /// Frames this end received.
    pub received: u64,
    /// Frames this end sent that were dropped: the peer's queue was full or
    /// the frame exceeded the link's largest frame.
    pub dropped: u64,
}

struct Queue {
    frames: VecDeque<(Vec<u8>, FrameMeta)>,
    free: Vec<Vec<u8>>,
}

/// One direction: the queue toward an end and that end's eventfd.
struct Direction {
    queue: Mutex<Queue>,
    efd: OwnedFd,
    capacity: usize,
}

impl Direction {
    fn new(capacity: usize) -> io::Result<Direction> {
        // SAFETY: plain eventfd(2) call; checked before wrapping.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Direction {
            queue: Mutex::new(Queue {
                frames: VecDeque::with_capacity(capacity.min(4096)),
                free: Vec::new(),
            }),
            // SAFETY: fd is a fresh descriptor we own.
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
            capacity,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic on the other end's thread must not wedge this end.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd. Failure
        // (EAGAIN at counter saturation) is harmless: it is readable anyway.
        unsafe { libc::write(self.efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
        unsafe { libc::read(self.efd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

#[derive(Default)]
struct Counters {
    sent: u64,
    received: u64,
    dropped: u64,
}

/// One end of an in-memory link. See the [module documentation](self).
pub struct PipeDevice {
    rx: Arc<Direction>,
    tx: Arc<Direction>,
    caps: DeviceCaps,
    counters: Counters,
}

impl std::fmt::Debug for PipeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeDevice")
            .field("caps", &self.caps)
            .field("rx_fd", &self.rx.efd.as_raw_fd())
            .finish()
    }
}

impl PipeDevice {
    /// A connected pair with default options ([`PipeOptions::new`]).
    ///
    /// # Panics
    /// When the kernel refuses to create an eventfd (descriptor exhaustion);
    /// use [`PipeDevice::pair_with`] to handle that as an error.
    pub fn pair(medium: Medium, mtu: usize) -> (PipeDevice, PipeDevice) {
        PipeDevice::pair_with(PipeOptions::new(medium, mtu)).expect("create pipe eventfds")
    }

    /// A connected pair built from `opts`.
    pub fn pair_with(opts: PipeOptions) -> io::Result<(PipeDevice, PipeDevice)> {
        let capacity = opts.capacity.max(1);
        let a_to_b = Arc::new(Direction::new(capacity)?);
        let b_to_a = Arc::new(Direction::new(capacity)?);
        let (mac_a, mac_b) = match opts.medium {
            Medium::Ip => (None, None),
            Medium::Ethernet => {
                let (a, b) = opts
                    .hardware_addrs
                    .unwrap_or_else(|| (super::util::random_mac(), super::util::random_mac()));
                (Some(a), Some(b))
            }
        };
        let caps = |mac| DeviceCaps {
            medium: opts.medium,
            mtu: opts.mtu,
            hardware_addr: mac,
            offload: Offload {
                tx_checksum: opts.offload,
                tso: opts.offload,
                gro: opts.offload,
            },
        };
        let a = PipeDevice {
            rx: b_to_a.clone(),
            tx: a_to_b.clone(),
            caps: caps(mac_a),
            counters: Counters::default(),
        };
        let b = PipeDevice {
            rx: a_to_b,
            tx: b_to_a,
            caps: caps(mac_b),
            counters: Counters::default(),
        };
        Ok((a, b))
    }

    /// This end's counters.
    pub fn stats(&self) -> PipeStats {
        PipeStats {
            sent: self.counters.sent,
            received: self.counters.received,
            dropped: self.counters.dropped,
        }
    }

    /// Frames waiting to be received by this end.
    pub fn pending(&self) -> usize {
        self.rx.lock().frames.len()
    }

    /// Queues one frame toward the peer; false when it was dropped.
    pub fn send_frame(&mut self, frame: &[u8]) -> bool {
        self.send_frame_meta(frame, FrameMeta::default())
    }

    /// [`PipeDevice::send_frame`] with offload metadata (kept only when the
    /// pipe offers offload; a super-segment then crosses whole).
    pub fn send_frame_meta(&mut self, frame: &[u8], meta: FrameMeta) -> bool {
        let meta = if self.caps.offload.tso {
            meta
        } else {
            FrameMeta::default()
        };
        if frame.len() > self.caps.max_tx_frame_len() {
            self.counters.dropped += 1;
            return false;
        }
        let mut q = self.tx.lock();
        if q.frames.len() >= self.tx.capacity {
            drop(q);
            self.counters.dropped += 1;
            return false;
        }
        let mut buf = q.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        let was_empty = q.frames.is_empty();
        q.frames.push_back((buf, meta));
        if was_empty {
            // Under the lock, so a concurrent drain cannot lose the signal.
            self.tx.signal();
        }
        drop(q);
        self.counters.sent += 1;
        true
    }
}

impl Device for PipeDevice {
    fn dropped(&mut self) -> u64 {
        self.stats().dropped
    }

    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn recv_batch(&mut self, _now: Instant, batch: &mut FrameBatch) -> io::Result<usize> {
        let mut q = self.rx.lock();
        let mut n = 0;
        while !batch.is_full() {
            let Some(front) = q.frames.front() else { break };
            if front.0.len() > batch.max_frame_len() {
                // Cannot happen with a batch sized from caps(); drop rather
                // than wedge the queue.
                let (buf, _) = q.frames.pop_front().expect("front exists");
                recycle(&mut q, buf);
                continue;
            }
            let (buf, meta) = q.frames.pop_front().expect("front exists");
            // What was left partial arrives as the kernel hands a TUN its
            // own frames: partial, to be trusted.
            let meta = FrameMeta {
                checksum: match meta.checksum {
                    Checksum::Partial { .. } => meta.checksum,
                    _ => Checksum::Complete,
                },
                gso_size: meta.gso_size,
            };
            batch.push_meta(&buf, meta);
            recycle(&mut q, buf);
            n += 1;
        }
        if q.frames.is_empty() {
            self.rx.drain();
        }
        drop(q);
        self.counters.received += n as u64;
        Ok(n)
    }

    fn send_batch(&mut self, _now: Instant, batch: &FrameBatch) -> io::Result<usize> {
        for (frame, meta) in batch.iter_meta() {
            self.send_frame_meta(frame, meta);
        }
        Ok(batch.len())
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.rx.efd.as_raw_fd())
    }
}

fn recycle(q: &mut Queue, buf: Vec<u8>) {
    if q.free.len() < FREE_LIST_MAX {
        q.free.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::util::wait_readable;

    #[test]
    fn frames_cross_in_order() {
        let (mut a, mut b) = PipeDevice::pair(Medium::Ip, 1500);
        let mut out = FrameBatch::new(8, 1500);
        out.push(b"one");
        out.push(b"two");
        assert_eq!(a.send_batch(Instant::ZERO, &out).unwrap(), 2);
        let mut inb = FrameBatch::new(8, 1500);
        assert_eq!(b.recv_batch(Instant::ZERO, &mut inb).unwrap(), 2);
        assert_eq!(inb.iter().collect::<Vec<_>>(), vec![&b"one"[..], b"two"]);
        inb.clear();
        assert_eq!(a.recv_batch(Instant::ZERO, &mut inb).unwrap(), 0);
        assert_eq!(a.stats().sent, 2);
        assert_eq!(b.stats().received, 2);
    }

    #[test]
    fn offload_pipe_keeps_super_segments_and_partial_checksums() {
        let mut o = PipeOptions::new(Medium::Ip, 1500);
        o.offload = true;
        let (mut a, mut b) = PipeDevice::pair_with(o).unwrap();
        assert!(a.caps().offload.tso && b.caps().offload.gro);
        let meta = FrameMeta {
            checksum: Checksum::Partial {
                start: 20,
                offset: 16,
            },
            gso_size: 1448,
        };
        let mut out = FrameBatch::new(4, a.caps().max_tx_frame_len());
        assert!(out.push_meta(&vec![7u8; 40_000], meta));
        assert!(out.push(b"plain"));
        a.send_batch(Instant::ZERO, &out).unwrap();
        let mut inb = FrameBatch::new(4, b.caps().max_rx_frame_len());
        assert_eq!(b.recv_batch(Instant::ZERO, &mut inb).unwrap(), 2);
        assert_eq!(inb.get(0).unwrap().len(), 40_000);
        assert_eq!(inb.meta(0), Some(meta));
        assert_eq!(inb.meta(1), Some(FrameMeta::default()));
        // Without offload the same frame is too big for the link.
        let (mut c, _d) = PipeDevice::pair(Medium::Ip, 1500);
        c.send_batch(Instant::ZERO, &out).unwrap();
        assert_eq!(c.stats().dropped, 1);
    }

    #[test]
    fn overflow_is_dropped_and_counted() {
        let mut o = PipeOptions::new(Medium::Ip, 100);
        o.capacity = 3;
        let (mut a, mut b) = PipeDevice::pair_with(o).unwrap();
        let mut out = FrameBatch::new(8, 200);
        for i in 0..5u8 {
            out.push(&[i]);
        }
        out.push(&[0; 150]); // longer than the MTU
        assert_eq!(a.send_batch(Instant::ZERO, &out).unwrap(), 6);
        assert_eq!(a.stats().dropped, 3);
        let mut inb = FrameBatch::new(8, 100);
        assert_eq!(b.recv_batch(Instant::ZERO, &mut inb).unwrap(), 3);
        assert_eq!(inb.get(2).unwrap(), &[2]);
    }

    #[test]
    fn eventfd_tracks_queue() {
        let (mut a, mut b) = PipeDevice::pair(Medium::Ip, 1500);
        let fd = b.as_raw_fd().unwrap();
        assert!(!wait_readable(fd, 0));
        assert!(a.send_frame(b"x"));
        assert!(wait_readable(fd, 0));
        // A batch of one leaves a frame behind: still readable.
        assert!(a.send_frame(b"y"));
        let mut one = FrameBatch::new(1, 1500);
        assert_eq!(b.recv_batch(Instant::ZERO, &mut one).unwrap(), 1);
        assert!(wait_readable(fd, 0));
        one.clear();
        assert_eq!(b.recv_batch(Instant::ZERO, &mut one).unwrap(), 1);
        assert!(!wait_readable(fd, 0));
    }

    #[test]
    fn ethernet_macs() {
        let (a, b) = PipeDevice::pair(Medium::Ethernet, 1500);
        let (ma, mb) = (
            a.caps().hardware_addr.unwrap(),
            b.caps().hardware_addr.unwrap(),
        );
        assert!(ma.is_unicast() && mb.is_unicast() && ma != mb);
        assert_eq!(ma.0[0] & 0x02, 0x02);
        let mut o = PipeOptions::new(Medium::Ethernet, 1500);
        let x = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let y = EthernetAddress([2, 0, 0, 0, 0, 2]);
        o.hardware_addrs = Some((x, y));
        let (a, b) = PipeDevice::pair_with(o).unwrap();
        assert_eq!(a.caps().hardware_addr, Some(x));
        assert_eq!(b.caps().hardware_addr, Some(y));
        assert_eq!(a.caps().max_frame_len(), 1514);
        let (a, _) = PipeDevice::pair(Medium::Ip, 1500);
        assert_eq!(a.caps().hardware_addr, None);
    }

    #[test]
    fn across_threads() {
        let (mut a, mut b) = PipeDevice::pair(Medium::Ip, 1500);
        let t = std::thread::spawn(move || {
            let mut got = 0u32;
            let mut inb = FrameBatch::new(16, 1500);
            while got < 1000 {
                assert!(wait_readable(b.as_raw_fd().unwrap(), 5000));
                inb.clear();
                for f in (0..b.recv_batch(Instant::ZERO, &mut inb).unwrap()).map(|i| inb.get(i)) {
                    assert_eq!(f.unwrap(), got.to_be_bytes());
                    got += 1;
                }
            }
        });
        for i in 0..1000u32 {
            while !a.send_frame(&i.to_be_bytes()) {
                a.counters.dropped -= 1;
                std::thread::yield_now();
            }
        }
        t.join().unwrap();
    }
}
