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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::iface::{Config, Counters, Interface, Ipv4Cidr};
use crate::phy::Device;
use crate::runtime::{Driver, DriverCounters, EventFd};
use crate::socket::SocketHandle;
use crate::time::{Clock, Instant, RealClock};
use crate::wire::EthernetAddress;

/// The core and what the socket handles share with the stack thread.
pub(crate) struct Core {
    pub iface: Interface,
    pub waiters: HashMap<SocketHandle, Arc<Condvar>>,
    /// Async tasks waiting on sockets (see `net::wake`).
    pub wakers: HashMap<SocketHandle, crate::net::wake::SocketWakers>,
    pub driver_counters: DriverCounters,
}

pub(crate) struct Shared {
    pub core: Mutex<Core>,
    wake: EventFd,
    wake_pending: AtomicBool,
    pub shutdown: AtomicBool,
    pub clock: RealClock,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic elsewhere while holding the lock must not take every socket
        // down with it: the core's state is still consistent between calls.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the stack thread (once until it runs).
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake.signal();
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
    /// Adds an address with its on-link prefix.
    pub fn addr(mut self, cidr: Ipv4Cidr) -> Self {
        self.config_mut().addrs.push(cidr);
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

    /// Starts the stack thread.
    pub fn build(mut self) -> io::Result<Stack> {
        let caps = self.device.caps();
        let mut config = self
            .config
            .take()
            .unwrap_or_else(|| Config::new(caps.medium));
        config.medium = caps.medium;
        config.mtu = caps.mtu;
        config.offload = caps.offload;
        if config.hardware_addr.is_none() {
            config.hardware_addr = caps.hardware_addr;
        }
        if config.addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the stack needs at least one address",
            ));
        }
        let clock = RealClock::new();
        let iface = Interface::new(config, clock.now());
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                iface,
                waiters: HashMap::new(),
                wakers: HashMap::new(),
                driver_counters: DriverCounters::default(),
            }),
            wake: EventFd::new()?,
            wake_pending: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            clock,
        });
        let device = self.device;
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ustack".into())
            .spawn(move || stack_thread(s2, device))?;
        Ok(Stack {
            shared,
            thread: Some(thread),
        })
    }
}

/// A running stack: one interface on one device, served by its own thread.
pub struct Stack {
    pub(crate) shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
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

    /// Stops the stack thread and returns its result. Sockets still open
    /// report `NotConnected` afterwards.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.wake.signal();
        let mut wake = Vec::new();
        {
            let mut core = self.shared.lock();
            for c in core.waiters.values() {
                c.notify_all();
            }
            crate::net::wake::take_all(&mut core.wakers, &mut wake);
        }
        wake.into_iter().for_each(std::task::Waker::wake);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the stack thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn stack_thread(shared: Arc<Shared>, device: Box<dyn Device + Send>) -> io::Result<()> {
    let mut driver = {
        let core = shared.lock();
        Driver::new(device, &core.iface)
    };
    let mut events = Vec::new();
    let mut to_wake = Vec::new();
    let wake_fd = shared.wake.as_raw_fd();
    let mut counters_at = Instant::ZERO;
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = shared.clock.now();
        // Device reads outside the lock; only processing holds it.
        let mut received = driver.receive(now)?;
        let deadline = {
            let mut core = shared.lock();
            loop {
                driver.process(&mut core.iface, now);
                core.iface.drain_socket_events(&mut events);
                if received == 0 || events.len() > 1024 {
                    break;
                }
                // More may be waiting: keep the lock for one more batch.
                received = driver.receive(now)?;
            }
            let core = &mut *core;
            for h in events.drain(..) {
                if let Some(c) = core.waiters.get(&h) {
                    c.notify_all();
                }
                crate::net::wake::take_ready(&mut core.wakers, &core.iface, h, &mut to_wake);
            }
            if now >= counters_at {
                // The device's drop count may cost a syscall: once a second.
                core.driver_counters = driver.refresh_counters().clone();
                counters_at = now + crate::time::Duration::from_secs(1);
            } else {
                core.driver_counters = driver.counters().clone();
            }
            driver.poll_at(&core.iface)
        };
        // Tasks run once the lock is free.
        to_wake.drain(..).for_each(std::task::Waker::wake);
        let _ = driver.transmit(now);
        // Anything for right now? Then go round again without sleeping.
        let now2 = shared.clock.now();
        if deadline.is_some_and(|d| d <= now2) && driver.tx_pending() == 0 {
            continue;
        }
        let r = driver.wait(now2, deadline, &[wake_fd])?;
        if r.extra & 1 != 0 {
            // Drain first, then re-arm: a wake that lands between the two
            // finds the flag still set and skips its signal, but its work is
            // seen because processing follows; the other order would lose it.
            shared.wake.drain();
            shared.wake_pending.store(false, Ordering::Release);
        }
    }
}
