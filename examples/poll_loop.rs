//! poll_loop: a TCP and UDP echo server on the single-threaded poll API.
//! No threads, no locks: the program owns the [`Interface`] (the sans-IO
//! core) and the device (inside a [`Driver`]) and runs one loop:
//!
//! 1. `driver.poll(&mut iface, now)`: read frames, run the core, write frames
//!    (right after a sleep, the one frame that woke us: its answer goes out
//!    before the device is read again);
//! 2. `iface.drain_socket_events(..)`: the sockets that became readable,
//!    writable or closed; service only those, then `driver.flush(..)` sends
//!    what they queued;
//! 3. `driver.wait(now, deadline, fds)`: sleep on the device's fd, our own
//!    fds (here a signalfd) and the earliest deadline (the core's timers and
//!    our own stats timer).
//!
//! ```text
//! poll_loop --tun ustk0 --addr 10.0.0.2/24 --addr fd00::2/64 --port 7
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use ustack::cli::{
    fail, parse_args, signal_report, stats_report, DeviceArgs, ObserveArgs, SignalFd,
};
use ustack::iface::Interface;
use ustack::runtime::Driver;
use ustack::socket::SocketHandle;
use ustack::time::{Clock, RealClock};

const TOOL: &str = "poll_loop";

/// TCP and UDP echo on a user-space stack, driven by one poll loop.
#[derive(clap::Parser, Debug)]
#[command(name = "poll_loop", version, after_help = ustack::cli::SIGNALS_HELP)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// TCP and UDP port to echo on.
    #[arg(long, default_value_t = 7)]
    port: u16,
}

/// Bytes received on a connection that its send buffer has not taken yet.
/// Bounded: while it holds data, the connection is not read (the peer's
/// window closes instead).
#[derive(Default)]
struct Echo {
    pending: Vec<u8>,
    eof: bool,
}

/// Moves data from the receive side to the send side; false once the
/// connection is finished (closed by us or failed).
fn service(iface: &mut Interface, h: SocketHandle, e: &mut Echo, buf: &mut [u8]) -> bool {
    loop {
        if !e.pending.is_empty() {
            match iface.tcp_send(h, &e.pending) {
                Ok(n) => {
                    e.pending.drain(..n);
                    if !e.pending.is_empty() {
                        return true; // send buffer full: wait to be writable
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        if e.eof {
            // Everything echoed: close (FIN after the queued data).
            let _ = iface.tcp_close(h);
            return false;
        }
        match iface.tcp_recv(h, buf) {
            Ok(0) => e.eof = true,
            Ok(n) => e.pending.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => {
                let _ = iface.tcp_close(h);
                return false;
            }
        }
    }
}

fn main() {
    let args: Args = parse_args(TOOL);
    if let Err(e) = args.observe.init_logging() {
        fail(TOOL, e);
    }
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])
        .unwrap_or_else(|e| fail(TOOL, format!("cannot set up signals: {e}")));
    let (device, config) = args.device.open().unwrap_or_else(|e| fail(TOOL, e));

    // The core: time is an input, read from the one clock we own.
    let clock = RealClock::new();
    let mut iface = Interface::new(config, clock.now());
    // 0.0.0.0 and/or [::] (IPv6-only sockets): every address family given.
    let mut listeners = Vec::new();
    let mut udps = Vec::new();
    for ip in ustack::cli::wildcards(iface.config()) {
        let at = SocketAddr::new(ip, args.port);
        listeners.push(
            iface
                .tcp_listen(at, 128)
                .unwrap_or_else(|e| fail(TOOL, format!("listen on TCP {at}: {e}"))),
        );
        udps.push(
            iface
                .udp_bind(at)
                .unwrap_or_else(|e| fail(TOOL, format!("bind UDP {at}: {e}"))),
        );
    }
    let mut driver = Driver::new(device, &iface);
    let mut stats = args.observe.stats_timer(clock.now());
    eprintln!("{TOOL}: echoing TCP and UDP port {}", args.port);

    let mut conns: HashMap<SocketHandle, Echo> = HashMap::new();
    let mut events = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // 1. Frames in, core, frames out.
        let now = clock.now();
        if let Err(e) = driver.poll(&mut iface, now) {
            fail(TOOL, format!("device error: {e}"));
        }
        // 2. Service the sockets that have news.
        iface.drain_socket_events(&mut events);
        for h in events.drain(..) {
            if listeners.contains(&h) {
                while let Ok((c, _peer)) = iface.tcp_accept(h) {
                    let mut e = Echo::default();
                    if service(&mut iface, c, &mut e, &mut buf) {
                        conns.insert(c, e);
                    }
                }
            } else if udps.contains(&h) {
                // Echo while there is a datagram and room to send it back.
                while iface
                    .udp_socket(h)
                    .is_ok_and(|s| s.can_recv() && s.can_send(buf.len()))
                {
                    if let Ok((n, from)) = iface.udp_recv_from(h, &mut buf) {
                        let _ = iface.udp_send_to(h, &buf[..n], from);
                    }
                }
            } else if let Some(e) = conns.get_mut(&h) {
                if !service(&mut iface, h, e, &mut buf) {
                    conns.remove(&h);
                }
            }
        }
        // What the sockets queued leaves now, before the device is read again.
        if let Err(e) = driver.flush(&mut iface, now) {
            fail(TOOL, format!("device error: {e}"));
        }
        // Our own timer shares the loop with the core's.
        let now = clock.now();
        if stats.due(now) {
            eprint!("{}", stats_report(TOOL, stats.elapsed_secs(now), &iface));
        }
        // 3. Sleep until the device, a signal or the next deadline.
        let deadline = [driver.poll_at(&iface), stats.deadline()]
            .into_iter()
            .flatten()
            .min();
        if deadline.is_some_and(|d| d <= now) && driver.tx_pending() == 0 {
            continue; // a timer is already due: no sleeping
        }
        match driver.wait(now, deadline, &[signals.as_raw_fd()]) {
            Ok(r) if r.extra & 1 != 0 => match signals.read() {
                Some(libc::SIGUSR1) => eprint!("{}", signal_report(TOOL, &iface, "")),
                Some(_) => break,
                None => {}
            },
            Ok(_) => {}
            Err(e) => fail(TOOL, format!("wait failed: {e}")),
        }
    }
    print!("{}", iface.counters().report());
    print!("{}", ustack::cli::tcp_report(&iface));
    println!("    {} connections being echoed", conns.len());
}
