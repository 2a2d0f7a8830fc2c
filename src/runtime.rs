//! Driving the core: moving frames between a [`Device`] and an
//! [`Interface`], and waiting for the next thing to do without spinning.
//!
//! [`Driver`] is the single-threaded poll API: the caller owns the
//! interface and the device and calls [`Driver::poll`] then
//! [`Driver::wait`] in a loop. The threaded [`crate::stack::Stack`] runs the
//! same loop on its own thread.

use std::io;
use std::os::fd::RawFd;

use crate::iface::Interface;
use crate::phy::{Device, FrameBatch};
use crate::time::{Duration, Instant};

/// Frames received per device call.
pub const RX_BATCH: usize = 64;

/// Frames received per device call for a device with `caps`: [`RX_BATCH`],
/// or fewer when frames may be 64 KiB super-segments (GRO), so that a full
/// batch stays near 1 MiB.
pub fn rx_batch_frames(caps: &crate::phy::DeviceCaps) -> usize {
    (RX_BATCH_BYTES / caps.max_rx_frame_len().max(1)).clamp(8, RX_BATCH)
}

/// What a batch of received frames may hold, in bytes (see
/// [`rx_batch_frames`]).
const RX_BATCH_BYTES: usize = 1 << 20;

/// Counters of the driver itself (device-level events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverCounters {
    /// Frames read from the device.
    pub rx_frames: u64,
    /// Frames written to the device.
    pub tx_frames: u64,
    /// Frames dropped because the device refused them with an error.
    pub tx_errors: u64,
    /// Times the device was full and frames had to wait.
    pub tx_stalls: u64,
    /// Frames lost inside the device (see [`Device::dropped`]).
    pub device_drops: u64,
    /// Waits answered while busy polling, without sleeping
    /// ([`Driver::set_busy_poll`]).
    pub busy_poll_hits: u64,
}

/// What the driver saw on a [`Driver::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// The device has frames (or an error) to read.
    pub device: bool,
    /// Which of the extra descriptors are readable, as a bit mask by
    /// position (at most 32 extra descriptors).
    pub extra: u32,
}

/// Moves frames between a device and an interface.
pub struct Driver<D: Device> {
    device: D,
    rx: FrameBatch,
    /// A one-frame batch for the first read after a sleep (see
    /// [`Driver::poll`]).
    rx_one: FrameBatch,
    tx: FrameBatch,
    counters: DriverCounters,
    /// [`Driver::wait`] slept since the last receive: the next
    /// [`Driver::poll`] takes one frame first.
    woke: bool,
    /// The last receive filled its batch without seeing the device empty:
    /// more frames may be waiting ([`Driver::poll_at`] says "now").
    rx_more: bool,
    /// How long [`Driver::wait`] checks the descriptors without sleeping
    /// before it sleeps (0: it sleeps at once).
    busy_poll: Duration,
}

impl DriverCounters {
    /// Adds `other`'s counts to these (several drivers' totals).
    pub fn add(&mut self, other: &DriverCounters) {
        let DriverCounters {
            rx_frames,
            tx_frames,
            tx_errors,
            tx_stalls,
            device_drops,
            busy_poll_hits,
        } = other;
        self.rx_frames += rx_frames;
        self.tx_frames += tx_frames;
        self.tx_errors += tx_errors;
        self.tx_stalls += tx_stalls;
        self.device_drops += device_drops;
        self.busy_poll_hits += busy_poll_hits;
    }

    /// The counters as `netstat`-like text.
    pub fn report(&self) -> String {
        format!(
            "Device:\n    {} frames read\n    {} frames written\n    {} frames refused by the device\n    {} times the device was full\n    {} frames dropped inside the device\n    {} waits answered by busy polling\n",
            self.rx_frames, self.tx_frames, self.tx_errors, self.tx_stalls, self.device_drops, self.busy_poll_hits
        )
    }
}

impl<D: Device> Driver<D> {
    /// A driver for `device` feeding `iface`.
    pub fn new(device: D, iface: &Interface) -> Driver<D> {
        let caps = device.caps();
        Driver {
            rx: FrameBatch::new(rx_batch_frames(&caps), caps.max_rx_frame_len()),
            rx_one: FrameBatch::new(1, caps.max_rx_frame_len()),
            tx: iface.new_tx_batch(),
            device,
            counters: DriverCounters::default(),
            woke: false,
            rx_more: false,
            busy_poll: Duration::ZERO,
        }
    }

    /// Busy polling, like Linux's `SO_BUSY_POLL`: [`Driver::wait`] first
    /// checks the descriptors without sleeping for up to `d` (never past
    /// its deadline), and sleeps only if nothing came. A frame that arrives
    /// meanwhile is taken without the scheduler's wake-up (tens of
    /// microseconds across CPUs in a VM) at the price of a CPU kept busy
    /// for up to `d` after each round: for a stack thread with a core of
    /// its own, not one that shares it with its peers. Default: off.
    pub fn set_busy_poll(&mut self, d: Duration) {
        self.busy_poll = d;
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutable.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The driver's counters, as of the last [`Driver::refresh_counters`]
    /// for the device's drop count.
    pub fn counters(&self) -> &DriverCounters {
        &self.counters
    }

    /// Reads the device's drop count (may cost a system call).
    pub fn refresh_counters(&mut self) -> &DriverCounters {
        self.counters.device_drops = self.device.dropped();
        &self.counters
    }

    /// Reads what the device has (one batch). Returns the frame count.
    pub fn receive(&mut self, now: Instant) -> io::Result<usize> {
        self.receive_into(now, false)
    }

    /// Reads at most one frame: after a sleep, the frame that woke the
    /// driver goes through the stack (and its answer out) before the device
    /// is asked whether more wait. A device that polls readable (TUN, raw
    /// socket) then costs one read per wake-up on the latency path, not a
    /// read plus one that finds it empty. Returns the frame count.
    pub fn receive_one(&mut self, now: Instant) -> io::Result<usize> {
        self.receive_into(now, true)
    }

    fn receive_into(&mut self, now: Instant, one: bool) -> io::Result<usize> {
        self.woke = false;
        self.device.service(now)?;
        self.rx.clear();
        self.rx_one.clear();
        let batch = if one { &mut self.rx_one } else { &mut self.rx };
        let n = match self.device.recv_batch(now, batch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        // A batch the device did not fill means it had no more (the
        // `Device::recv_batch` contract: what is ready, up to the room).
        self.rx_more = n > 0 && batch.is_full();
        self.counters.rx_frames += n as u64;
        Ok(n)
    }

    /// True when [`Driver::wait`] has slept since the last receive.
    pub fn woke(&self) -> bool {
        self.woke
    }

    /// True when the last receive filled its batch: the device may hold
    /// more frames now.
    pub fn rx_more(&self) -> bool {
        self.rx_more
    }

    /// Hands the received frames to `iface` and collects what it wants to
    /// send. Touches no file descriptor: the threaded runtime holds its lock
    /// only around this.
    pub fn process(&mut self, iface: &mut Interface, now: Instant) {
        for (f, meta) in self.rx_one.iter_meta().chain(self.rx.iter_meta()) {
            iface.handle_frame_meta(now, f, meta);
        }
        self.rx.clear();
        self.rx_one.clear();
        iface.poll_transmit(now, &mut self.tx);
    }

    /// Collects what the interface has to send now into the transmit
    /// batch, without reading or writing the device (the threaded runtime
    /// collects under the core's lock and writes after releasing it).
    pub fn collect(&mut self, iface: &mut Interface, now: Instant) {
        iface.poll_transmit(now, &mut self.tx);
    }

    /// Collects what the interface has to send now and writes it, without
    /// reading the device: for after the application acted on its sockets
    /// (a request/response server answers in the same wake-up, with no read
    /// of an empty device before the answer). Returns the frames written.
    pub fn flush(&mut self, iface: &mut Interface, now: Instant) -> io::Result<usize> {
        iface.poll_transmit(now, &mut self.tx);
        self.transmit(now)
    }

    /// Writes what is queued to the device; what the device cannot take now
    /// stays queued. Returns the frames written.
    pub fn transmit(&mut self, now: Instant) -> io::Result<usize> {
        if self.tx.is_empty() {
            return Ok(0);
        }
        match self.device.send_batch(now, &self.tx) {
            Ok(n) => {
                self.counters.tx_frames += n as u64;
                if n < self.tx.len() {
                    self.counters.tx_stalls += 1;
                }
                self.tx.consume(n);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.counters.tx_stalls += 1;
                Ok(0)
            }
            Err(e) => {
                // The device refused the batch (e.g. its link is down): drop
                // it, count it, and go on; the transport retransmits.
                self.counters.tx_errors += self.tx.len() as u64;
                self.tx.clear();
                Err(e)
            }
        }
    }

    /// Frames waiting for the device to become writable.
    pub fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    /// One round at `now`: receive, process, transmit. Right after a
    /// [`Driver::wait`] that slept, one frame only (see
    /// [`Driver::receive_one`]), so that the application sees it at once;
    /// otherwise batches until the device is drained (at most 16). When
    /// frames may be left, [`Driver::poll_at`] returns a time already due,
    /// so a loop that sleeps only until `poll_at` comes straight back.
    /// Returns when the driver next needs to run (`None`: only on input).
    pub fn poll(&mut self, iface: &mut Interface, now: Instant) -> io::Result<Option<Instant>> {
        if self.woke {
            self.receive_one(now)?;
            self.process(iface, now);
            // Device errors are counted; a persistent one shows there.
            let _ = self.transmit(now);
            return Ok(self.poll_at(iface));
        }
        for _ in 0..16 {
            self.receive(now)?;
            self.process(iface, now);
            let _ = self.transmit(now);
            if !self.rx_more {
                break;
            }
        }
        Ok(self.poll_at(iface))
    }

    /// The next deadline of the interface and the device together (`now`,
    /// as [`Instant::ZERO`], when the device may hold unread frames).
    pub fn poll_at(&self, iface: &Interface) -> Option<Instant> {
        if self.rx_more {
            return Some(Instant::ZERO);
        }
        [iface.poll_at(), self.device.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sleeps until the device is readable (or writable, when frames wait
    /// for it), one of `extra` descriptors is readable, or `deadline` passes.
    /// `now` is the current time on the same clock as `deadline`.
    pub fn wait(
        &mut self,
        now: Instant,
        deadline: Option<Instant>,
        extra: &[RawFd],
    ) -> io::Result<Readiness> {
        let timeout = deadline.map(|d| d.saturating_duration_since(now));
        let mut fds = Vec::with_capacity(1 + extra.len());
        let dev_fd = self.device.as_raw_fd();
        if let Some(fd) = dev_fd {
            let mut events = libc::POLLIN;
            if !self.tx.is_empty() || self.device.wants_writable() {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        }
        for &fd in extra {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let spin = timeout.map_or(self.busy_poll, |t| self.busy_poll.min(t));
        let mut ready = false;
        if !spin.is_zero() {
            let until = std::time::Instant::now() + spin;
            loop {
                if poll_fds(&mut fds, Some(Duration::ZERO))? > 0 {
                    ready = true;
                    self.counters.busy_poll_hits += 1;
                    break;
                }
                if std::time::Instant::now() >= until {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        if !ready {
            let left = timeout.map(|t| t.saturating_sub(spin));
            poll_fds(&mut fds, left)?;
        }
        self.woke = true;
        let mut r = Readiness::default();
        let mut it = fds.iter();
        if dev_fd.is_some() {
            r.device = it.next().is_some_and(|p| p.revents != 0);
        }
        for (i, p) in it.enumerate().take(32) {
            if p.revents != 0 {
                r.extra |= 1 << i;
            }
        }
        Ok(r)
    }
}

/// `ppoll` with a microsecond timeout (`None`: forever). EINTR is a normal
/// return.
pub fn poll_fds(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: fds is a valid slice of pollfd for its length; tsp is null or
    // points to a live timespec; the sigmask is null.
    let rc = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(rc as usize)
}

/// A Linux eventfd used to wake a sleeping stack thread.
#[derive(Debug)]
pub struct EventFd {
    fd: RawFd,
}

impl EventFd {
    /// A new non-blocking eventfd.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall with constant flags.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EventFd { fd })
    }

    /// Makes the descriptor readable.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own fd.
        unsafe { libc::write(self.fd, &one as *const u64 as *const libc::c_void, 8) };
    }

    /// Makes the descriptor unreadable again.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own fd.
        unsafe { libc::read(self.fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
    }

    /// The descriptor, to poll on.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: we own the fd and close it once.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iface::Config;
    use crate::phy::{Medium, PipeDevice};

    /// Three frames waiting (not IP: the interface counts and drops them).
    fn three_waiting() -> (Driver<PipeDevice>, Interface) {
        let (mut a, b) = PipeDevice::pair(Medium::Ip, 1500);
        for i in 0..3u8 {
            assert!(a.send_frame(&[0x00, i, 0, 0]));
        }
        let iface = Interface::new(Config::new(Medium::Ip), Instant::ZERO);
        (Driver::new(b, &iface), iface)
    }

    #[test]
    fn after_a_wait_poll_takes_one_frame_then_says_more_may_wait() {
        let (mut d, mut iface) = three_waiting();
        let now = Instant::ZERO;
        let r = d.wait(now, Some(now), &[]).unwrap();
        assert!(r.device);
        d.poll(&mut iface, now).unwrap();
        assert_eq!(d.counters().rx_frames, 1);
        assert!(d.rx_more());
        assert_eq!(d.poll_at(&iface), Some(Instant::ZERO));
        // Not after a wait: everything, until the device is empty.
        d.poll(&mut iface, now).unwrap();
        assert_eq!(d.counters().rx_frames, 3);
        assert!(!d.rx_more());
        assert_eq!(d.device().pending(), 0);
    }

    #[test]
    fn busy_poll_takes_a_frame_that_comes_while_it_spins() {
        let (mut a, b) = PipeDevice::pair(Medium::Ip, 1500);
        let iface = Interface::new(Config::new(Medium::Ip), Instant::ZERO);
        let mut d = Driver::new(b, &iface);
        d.set_busy_poll(Duration::from_secs(30));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            assert!(a.send_frame(&[0x00, 1, 0, 0]));
            a
        });
        let r = d.wait(Instant::ZERO, None, &[]).unwrap();
        assert!(r.device);
        assert_eq!(d.counters().busy_poll_hits, 1);
        let _a = sender.join().unwrap();
        // Nothing coming: the spin ends at the deadline (here at once), and
        // the wait with it.
        let (mut d2, _) = three_waiting();
        d2.poll(
            &mut Interface::new(Config::new(Medium::Ip), Instant::ZERO),
            Instant::ZERO,
        )
        .unwrap();
        d2.set_busy_poll(Duration::from_secs(30));
        let r = d2.wait(Instant::ZERO, Some(Instant::ZERO), &[]).unwrap();
        assert!(!r.device);
        assert_eq!(d2.counters().busy_poll_hits, 0);
    }

    #[test]
    fn without_a_wait_poll_drains_the_device() {
        let (mut d, mut iface) = three_waiting();
        d.poll(&mut iface, Instant::ZERO).unwrap();
        assert_eq!(d.counters().rx_frames, 3);
        assert!(!d.rx_more());
        assert_ne!(d.poll_at(&iface), Some(Instant::ZERO));
    }

    #[test]
    fn a_full_batch_means_more_may_wait() {
        let (mut a, b) = PipeDevice::pair(Medium::Ip, 1500);
        for _ in 0..RX_BATCH {
            assert!(a.send_frame(&[0, 0, 0, 0]));
        }
        let mut iface = Interface::new(Config::new(Medium::Ip), Instant::ZERO);
        let mut d = Driver::new(b, &iface);
        assert_eq!(d.receive(Instant::ZERO).unwrap(), RX_BATCH);
        assert!(d.rx_more());
        assert_eq!(d.poll_at(&iface), Some(Instant::ZERO));
        d.process(&mut iface, Instant::ZERO);
        assert_eq!(d.receive(Instant::ZERO).unwrap(), 0);
        assert!(!d.rx_more());
    }
}
