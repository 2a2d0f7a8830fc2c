//! The threaded runtime: one stack thread owns the device and runs the core;
//! applications use [`crate::net`] sockets from any thread.
//!
//! The stack thread sleeps in `ppoll` on the device, a wake-up eventfd and
//! the core's next deadline: an idle stack uses no CPU. Socket calls lock the
//! core briefly, and wake the stack thread only when they queued something
//! to send.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::iface::{Config, Counters, Interface, IpCidr};
use crate::phy::Device;
use crate::runtime::{Driver, DriverCounters, EventFd};
use crate::socket::SocketHandle;
use crate::time::{Clock, Instant, RealClock};
use crate::wire::EthernetAddress;

pub(crate) mod wake;

/// The threads blocked on one socket (blocking API): its condition
/// variable, and how many wait to read and to write (counted under the
/// core's lock, so the stack thread wakes them only for the direction that
/// became ready: a reader is not woken by ACKs that only make room for a
/// writer).
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    pub cond: Arc<Condvar>,
    pub readers: u32,
    pub writers: u32,
}

/// The core and what the socket handles share with the stack thread.
pub(crate) struct Core {
    pub iface: Interface,
    pub waiters: HashMap<SocketHandle, Waiters>,
    /// Async tasks waiting on sockets (see [`wake`]).
    pub wakers: HashMap<SocketHandle, wake::SocketWakers>,
    pub driver_counters: DriverCounters,
    /// The deadline the stack thread sleeps (or is about to sleep) until,
    /// `None` for no deadline: a socket call that sends from its own thread
    /// wakes the stack thread only when it made a timer due earlier.
    pub sleep_until: Option<Instant>,
}

/// The device and its frame batches, shared by the stack thread and the
/// application threads that send from their own thread
/// ([`Shared::send_now`]).
pub(crate) type SharedDriver = Driver<Box<dyn Device + Send>>;

pub(crate) struct Shared {
    pub core: Mutex<Core>,
    /// Taken by the stack thread for its device reads and writes (never
    /// while it sleeps), and tried by application threads that send.
    /// `None` once the stack thread has stopped (the device is closed).
    driver: Mutex<Option<SharedDriver>>,
    wake: EventFd,
    wake_pending: AtomicBool,
    pub shutdown: AtomicBool,
    pub clock: RealClock,
    stack_wakes: AtomicU64,
    app_wakes: AtomicU64,
    direct_sends: AtomicU64,
}

/// The threaded runtime's cross-thread wake-ups, in total since the stack
/// started ([`Stack::wake_counters`]). A blocking request/response costs at
/// most one each way per transaction: the application's write wakes the
/// stack thread once, the answer's arrival wakes the reader once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WakeCounters {
    /// Times a socket call signalled the sleeping stack thread (its
    /// eventfd); calls made while a signal is still pending are not counted
    /// (they cost nothing).
    pub stack_wakes: u64,
    /// Times the stack thread woke threads blocked on a socket (one
    /// condition-variable notification, which may wake several threads
    /// blocked on that socket).
    pub app_wakes: u64,
    /// Times a socket call wrote its frames to the device from its own
    /// thread (no stack-thread wake-up).
    pub direct_sends: u64,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic elsewhere while holding the lock must not take every socket
        // down with it: the core's state is still consistent between calls.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the stack thread (once until it runs). Best called without
    /// the core's lock held: the stack thread's first act is to take it.
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.stack_wakes.fetch_add(1, Ordering::Relaxed);
            self.wake.signal();
        }
    }

    /// After a socket call queued something to send: writes it to the
    /// device from the calling thread, as a kernel's send path runs in the
    /// sender's context, when the stack thread is not using the device;
    /// else wakes the stack thread to do it. The stack thread is woken too
    /// when the call armed a timer earlier than its sleep's deadline, or
    /// frames wait for the device to take them. Consumes the core's lock
    /// (released before the device write).
    pub fn send_now(&self, mut core: MutexGuard<'_, Core>) {
        let Ok(mut guard) = self.driver.try_lock() else {
            drop(core);
            self.wake();
            return;
        };
        let Some(d) = guard.as_mut() else {
            return; // the stack has stopped
        };
        let now = self.clock.now();
        d.collect(&mut core.iface, now);
        let next = d.poll_at(&core.iface);
        let sleeping_until = core.sleep_until;
        drop(core);
        let _ = d.transmit(now);
        let waiting = d.tx_pending() > 0;
        drop(guard);
        self.direct_sends.fetch_add(1, Ordering::Relaxed);
        if waiting || next.is_some_and(|t| sleeping_until.is_none_or(|s| t < s)) {
            self.wake();
        }
    }

    pub fn clock_now(&self) -> Instant {
        self.clock.now()
    }

    pub fn check_running(&self) -> io::Result<()> {
        if self.shutdown.load(Ordering::Acquire) {
            Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the stack has stopped",
            ))
        } else {
            Ok(())
        }
    }
}

/// Builds a [`Stack`].
pub struct StackBuilder {
    config: Option<Config>,
    device: Box<dyn Device + Send>,
}

impl StackBuilder {
    /// Adds an address with its on-link prefix, IPv4 or IPv6 (e.g.
    /// `"10.0.0.2/24".parse().unwrap()` or `"fd00::2/64".parse().unwrap()`;
    /// an [`crate::iface::Ipv4Cidr`] or [`crate::iface::Ipv6Cidr`] with
    /// `.into()`). Give it once per address: one family alone or both
    /// (a dual stack).
    pub fn addr(mut self, cidr: IpCidr) -> Self {
        let config = self.config_mut();
        match cidr {
            IpCidr::V4(c) => config.addrs.push(c),
            IpCidr::V6(c) => config.addrs_v6.push(c),
        }
        self
    }

    /// Sets the default gateway.
    pub fn gateway(mut self, gw: Ipv4Addr) -> Self {
        self.config_mut().gateway = Some(gw);
        self
    }

    /// Sets the stack's MAC address (Ethernet media).
    pub fn hardware_addr(mut self, hw: EthernetAddress) -> Self {
        self.config_mut().hardware_addr = Some(hw);
        self
    }

    /// Replaces the whole interface configuration (medium and MTU are
    /// taken from the device).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Adjusts the configuration in place.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(self.config_mut());
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        let caps = self.device.caps();
        self.config.get_or_insert_with(|| Config::new(caps.medium))
    }

    /// Starts the stack thread. Fails with `InvalidInput` when the
    /// configuration has no address or [`Config::validate`] refuses it (a
    /// gateway outside every subnet, a MAC that is not unicast).
    pub fn build(mut self) -> io::Result<Stack> {
        let caps = self.device.caps();
        let mut config = self
            .config
            .take()
            .unwrap_or_else(|| Config::new(caps.medium));
        config.medium = caps.medium;
        config.mtu = caps.mtu;
        config.offload = caps.offload;
        config.validate()?;
        if config.hardware_addr.is_none() {
            config.hardware_addr = caps.hardware_addr;
        }
        if config.addrs.is_empty() && config.addrs_v6.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the stack needs at least one address (IPv4 or IPv6)",
            ));
        }
        let clock = RealClock::new();
        let iface = Interface::new(config, clock.now());
        let driver = Driver::new(self.device, &iface);
        let shared = Arc::new(Shared {
            driver: Mutex::new(Some(driver)),
            core: Mutex::new(Core {
                iface,
                waiters: HashMap::new(),
                wakers: HashMap::new(),
                driver_counters: DriverCounters::default(),
                sleep_until: None,
            }),
            wake: EventFd::new()?,
            wake_pending: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            clock,
            stack_wakes: AtomicU64::new(0),
            app_wakes: AtomicU64::new(0),
            direct_sends: AtomicU64::new(0),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ustack".into())
            .spawn(move || stack_thread(s2))?;
        Ok(Stack {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// A running stack: one interface on one device, served by its own thread.
pub struct Stack {
    pub(crate) shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl Stack {
    /// Starts building a stack on `device`.
    pub fn builder(device: impl Device + Send + 'static) -> StackBuilder {
        StackBuilder {
            config: None,
            device: Box::new(device),
        }
    }

    /// A snapshot of the interface's counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().iface.counters().clone()
    }

    /// A snapshot of the device driver's counters.
    pub fn driver_counters(&self) -> DriverCounters {
        self.shared.lock().driver_counters.clone()
    }

    /// Cross-thread wake-ups so far (see [`WakeCounters`]).
    pub fn wake_counters(&self) -> WakeCounters {
        WakeCounters {
            stack_wakes: self.shared.stack_wakes.load(Ordering::Relaxed),
            app_wakes: self.shared.app_wakes.load(Ordering::Relaxed),
            direct_sends: self.shared.direct_sends.load(Ordering::Relaxed),
        }
    }

    /// Every socket with its queues and TCP details (like `ss -tuani`).
    pub fn sockets(&self) -> Vec<crate::iface::SocketRow> {
        self.shared.lock().iface.socket_table()
    }

    /// The stack's current time.
    pub fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    /// Runs `f` on the interface under the stack's lock (for inspection
    /// and for poll-API calls from outside the stack thread).
    pub fn with_interface<R>(&self, f: impl FnOnce(&mut Interface) -> R) -> R {
        let r = f(&mut self.shared.lock().iface);
        self.shared.wake();
        r
    }

    /// Stops the stack thread, closes the device (a capture wrapping it is
    /// flushed and closed) and returns the thread's result. Sockets still
    /// open report `NotConnected` afterwards. Takes `&self`, so a tool that
    /// shares the stack (`Arc<Stack>`) can stop it on its way out, before
    /// `std::process::exit`; a second call returns `Ok(())`.
    pub fn shutdown(&self) -> io::Result<()> {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.wake.signal();
        let mut wake = Vec::new();
        {
            let mut core = self.shared.lock();
            for w in core.waiters.values() {
                w.cond.notify_all();
            }
            wake::take_all(&mut core.wakers, &mut wake);
        }
        wake.into_iter().for_each(std::task::Waker::wake);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match thread {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the stack thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn stack_thread(shared: Arc<Shared>) -> io::Result<()> {
    let r = stack_loop(&shared);
    // The device closes with the thread, as before it was shared.
    let driver = shared
        .driver
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    drop(driver);
    r
}

fn stack_loop(shared: &Shared) -> io::Result<()> {
    let mut events = Vec::new();
    let mut to_wake = Vec::new();
    let mut to_notify: Vec<Arc<Condvar>> = Vec::new();
    let wake_fd = shared.wake.as_raw_fd();
    let dev_fd = {
        let d = shared.driver.lock().unwrap_or_else(|e| e.into_inner());
        d.as_ref().and_then(|d| d.device().as_raw_fd())
    };
    let mut counters_at = Instant::ZERO;
    // Whether the device may have frames: false only right after a sleep
    // that saw it unreadable (woken by a socket call or a timer), when a
    // read would find nothing.
    let mut device_ready = true;
    // Just back from a sleep: take the one frame that woke us first (its
    // reader is woken before the device is read again).
    let mut slept = false;
    let mut fds = Vec::with_capacity(2);
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            return Ok(());
        }
        let (deadline, tx_pending, wants_writable, dev_timed) = {
            let mut guard = shared.driver.lock().unwrap_or_else(|e| e.into_inner());
            let Some(driver) = guard.as_mut() else {
                return Ok(());
            };
            // The clock is read with the device held: an application thread
            // that sent directly (`Shared::send_now`) while this thread
            // waited for the lock used a later time, and the device (its
            // capture) and the core must not see time step back after it.
            let now = shared.clock.now();
            // Device reads outside the core's lock; only processing holds it.
            let first = device_ready && slept;
            if first {
                driver.receive_one(now)?;
            } else if device_ready {
                driver.receive(now)?;
            }
            slept = false;
            let deadline = {
                let mut core = shared.lock();
                loop {
                    driver.process(&mut core.iface, now);
                    core.iface.drain_socket_events(&mut events);
                    if first || !driver.rx_more() || events.len() > 1024 {
                        break;
                    }
                    // More may be waiting: keep the lock for one more batch.
                    driver.receive(now)?;
                }
                let core = &mut *core;
                for h in events.drain(..) {
                    if let Some(w) = core.waiters.get(&h) {
                        if w.readers > 0 || w.writers > 0 {
                            let (r, wr) = wake::readiness(&core.iface, h);
                            if (r && w.readers > 0) || (wr && w.writers > 0) {
                                to_notify.push(w.cond.clone());
                            }
                        }
                    }
                    wake::take_ready(&mut core.wakers, &core.iface, h, &mut to_wake);
                }
                if now >= counters_at {
                    // The device's drop count may cost a syscall: once a second.
                    core.driver_counters = driver.refresh_counters().clone();
                    counters_at = now + crate::time::Duration::from_secs(1);
                } else {
                    core.driver_counters = driver.counters().clone();
                }
                let deadline = driver.poll_at(&core.iface);
                core.sleep_until = deadline;
                deadline
            };
            let _ = driver.transmit(now);
            (
                deadline,
                driver.tx_pending() > 0,
                driver.device().wants_writable(),
                driver.device().poll_at().is_some(),
            )
        };
        // Threads and tasks run once the locks are free (a thread woken
        // under one would block on it at once: a second wake-up; and a
        // thread that answers at once finds the device free to send on).
        shared
            .app_wakes
            .fetch_add(to_notify.len() as u64, Ordering::Relaxed);
        to_notify.drain(..).for_each(|c| c.notify_all());
        to_wake.drain(..).for_each(std::task::Waker::wake);
        device_ready = true;
        // Anything for right now? Then go round again without sleeping.
        let now2 = shared.clock.now();
        if deadline.is_some_and(|d| d <= now2) && !tx_pending {
            continue;
        }
        fds.clear();
        if let Some(fd) = dev_fd {
            let mut events = libc::POLLIN;
            if tx_pending || wants_writable {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        }
        fds.push(libc::pollfd {
            fd: wake_fd,
            events: libc::POLLIN,
            revents: 0,
        });
        crate::runtime::poll_fds(
            &mut fds,
            deadline.map(|d| d.saturating_duration_since(now2)),
        )?;
        slept = true;
        let device_polled = dev_fd.is_some() && fds[0].revents != 0;
        if fds.last().is_some_and(|p| p.revents != 0) {
            // Drain first, then re-arm: a wake that lands between the two
            // finds the flag still set and skips its signal, but its work is
            // seen because processing follows; the other order would lose it.
            shared.wake.drain();
            shared.wake_pending.store(false, Ordering::Release);
        }
        // A device that polled unreadable has nothing to read now, unless
        // it keeps frames of its own for a time (the impairment layer).
        device_ready = device_polled || dev_fd.is_none() || dev_timed;
    }
}
