//! tcpecho: echoes every TCP connection (thousands at once) and UDP port 7
//! datagrams, on a TUN, TAP or raw-socket device. The echo logic runs on the
//! stack's own thread, event-driven through the poll API: no thread per
//! connection, no cross-thread wake-ups. With `--queues N` it opens N
//! queues of a multi-queue TUN/TAP device and runs N such stacks, one per
//! thread, sharing nothing: the kernel spreads the connections over the
//! queues by flow hash.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use ustack::cli::{
    fail, parse_args, run_queues, signal_report, stats_report, BoxDevice, Command, Control,
    DeviceArgs, ObserveArgs, SignalFd, StatsTimer,
};
use ustack::iface::{Config, Counters, Interface, TcpCounters};
use ustack::runtime::{Driver, DriverCounters};
use ustack::socket::SocketHandle;
use ustack::time::{Clock, RealClock};

/// Echo TCP connections on a user-space stack.
#[derive(clap::Parser, Debug)]
#[command(name = "tcpecho", version, after_help = AFTER_HELP)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// TCP port to echo on.
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Congestion control: cubic (the default, as on Linux), reno or bbr (BBR v1, paced).
    #[arg(long, default_value = "cubic")]
    cc: String,
    /// TCP send and receive buffer of each connection, bytes (default
    /// 1 MiB). Raise it above the bandwidth-delay product on long fat
    /// paths (100 Mbit/s over 100 ms needs 1.25 MB).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(4096..=1 << 30))]
    buffer: Option<u32>,
    /// Accept queue length.
    #[arg(long, default_value_t = 1024)]
    backlog: usize,
    /// Also discard everything received on this TCP port (a bulk sink for
    /// benchmarks; the connection is closed at the peer's FIN).
    #[arg(long, value_name = "PORT")]
    discard_port: Option<u16>,
    /// Also send zeros without end to every connection on this TCP port (a
    /// bulk source for benchmarks), until the peer closes.
    #[arg(long, value_name = "PORT")]
    source_port: Option<u16>,
    /// Open N queues of a multi-queue TUN/TAP device (IFF_MULTI_QUEUE,
    /// created so when absent) and run one stack per queue, each on its
    /// own thread with the same addresses and listeners; the kernel hashes
    /// each connection to a queue. 1 (the default) opens an ordinary
    /// single-queue device. At exit the counters are the queues' totals,
    /// followed by a line per queue.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    queues: u16,
    /// Busy polling: before sleeping, keep checking the device for this
    /// many microseconds (as Linux's SO_BUSY_POLL), so a frame that comes
    /// meanwhile costs no wake-up. Costs a busy CPU: for a stack thread with
    /// a core of its own. Default 0 (off).
    #[arg(long, value_name = "USEC", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    busy_poll: u32,
}

/// The `--help` epilogue: [`ustack::cli::SIGNALS_HELP`] with what tcpecho
/// does to its connections at exit.
const AFTER_HELP: &str = "Signals: SIGUSR1 prints the counters and the socket table to stderr and \
carries on; SIGINT and SIGTERM end the open connections (a FIN each, then a reset for those \
whose FIN is not acknowledged within 1 s), print the counters to stdout and exit 0.\n\
Logging: --log LEVEL, or RUST_LOG=LEVEL in the environment (e.g. RUST_LOG=ustack::tcp=debug).";

/// What a `--source-port` connection is sent, over and over.
static ZEROS: [u8; 16384] = [0; 16384];

/// What a connection gets.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Kind {
    #[default]
    Echo,
    Discard,
    Source,
}

/// Bytes read from a connection and not yet accepted by its send buffer.
#[derive(Default)]
struct Conn {
    pending: Vec<u8>,
    eof: bool,
    kind: Kind,
}

/// Moves what the connection has into its send buffer; false when done.
fn service(iface: &mut Interface, h: SocketHandle, c: &mut Conn, buf: &mut [u8]) -> bool {
    match c.kind {
        Kind::Echo => {}
        Kind::Discard => loop {
            match iface.tcp_recv(h, buf) {
                Ok(0) => {
                    let _ = iface.tcp_close(h);
                    return false;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    let _ = iface.tcp_close(h);
                    return false;
                }
            }
        },
        Kind::Source => loop {
            while let Ok(n) = iface.tcp_recv(h, buf) {
                if n == 0 {
                    let _ = iface.tcp_close(h);
                    return false;
                }
            }
            // Zeros, never `buf`: it holds what other connections sent.
            match iface.tcp_send(h, &ZEROS) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    let _ = iface.tcp_close(h);
                    return false;
                }
            }
        },
    }
    loop {
        while !c.pending.is_empty() {
            match iface.tcp_send(h, &c.pending) {
                Ok(n) => {
                    c.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        if c.eof {
            let _ = iface.tcp_close(h);
            return false;
        }
        match iface.tcp_recv(h, buf) {
            Ok(0) => c.eof = true,
            Ok(n) => c.pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => {
                let _ = iface.tcp_close(h);
                return false;
            }
        }
    }
}

/// One stack: an interface on one device (one queue), its listeners and
/// its connections.
struct Queue {
    iface: Interface,
    driver: Driver<BoxDevice>,
    listeners: Vec<SocketHandle>,
    udps: Vec<SocketHandle>,
    extra: Vec<(SocketHandle, Kind)>,
    conns: HashMap<SocketHandle, Conn>,
    stats: StatsTimer,
    clock: RealClock,
    label: String,
    /// The connections open at SIGINT/SIGTERM: how many ended with a FIN
    /// the peer acknowledged, how many were reset (see [`close_all`]).
    ended: (usize, usize),
}

/// How long the connections open at SIGINT/SIGTERM get to have their FIN
/// acknowledged before they are reset.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// At SIGINT/SIGTERM: closes the listeners (resetting connections not yet
/// accepted), sends every open connection a FIN behind what its send buffer
/// holds, drives the stack until each FIN is acknowledged or
/// [`CLOSE_GRACE`] has passed, then resets those still unfinished, so
/// every peer sees the end (EOF or a reset) rather than a connection that
/// hangs. Returns (ended with an acknowledged FIN, reset).
fn close_all(q: &mut Queue) -> (usize, usize) {
    use ustack::tcp::State;
    let Queue {
        iface,
        driver,
        listeners,
        extra,
        conns,
        clock,
        ..
    } = q;
    for l in listeners.iter().chain(extra.iter().map(|(l, _)| l)) {
        let _ = iface.tcp_close(*l);
    }
    let handles: Vec<SocketHandle> = conns.keys().copied().collect();
    for &h in &handles {
        // An error: the connection already failed or was reset.
        let _ = iface.tcp_shutdown(h, std::net::Shutdown::Write);
    }
    let finished = |iface: &Interface, h: SocketHandle| {
        iface.tcp_socket(h).map_or(true, |t| {
            t.is_closed() || matches!(t.state(), State::FinWait2 | State::TimeWait)
        })
    };
    let deadline = clock.now() + CLOSE_GRACE;
    let mut events = Vec::new();
    loop {
        let now = clock.now();
        if driver.poll(iface, now).is_err() || driver.flush(iface, now).is_err() {
            break;
        }
        iface.drain_socket_events(&mut events);
        events.clear();
        if now >= deadline || handles.iter().all(|&h| finished(iface, h)) {
            break;
        }
        let wake = driver.poll_at(iface).map_or(deadline, |t| t.min(deadline));
        if driver.wait(now, Some(wake), &[]).is_err() {
            break;
        }
    }
    let mut ended = (0, 0);
    for &h in &handles {
        if finished(iface, h) {
            ended.0 += 1;
            let _ = iface.tcp_close(h);
        } else {
            ended.1 += 1;
            let _ = iface.tcp_abort(h);
        }
    }
    conns.clear();
    // The resets leave now.
    let now = clock.now();
    let _ = driver
        .poll(iface, now)
        .and_then(|_| driver.flush(iface, now));
    ended
}

impl Queue {
    /// The interface on `device`, listening on every port asked for.
    fn new(args: &Args, device: BoxDevice, mut config: Config, label: String) -> Queue {
        config.tcp.congestion = args.cc.clone();
        if let Some(b) = args.buffer {
            config.tcp.send_buffer = b as usize;
            config.tcp.recv_buffer = b as usize;
        }
        let clock = RealClock::new();
        let mut iface = Interface::new(config, clock.now());
        // 0.0.0.0 when the stack has IPv4 addresses, [::] when it has IPv6
        // ones (IPv6-only sockets, so the two share the port).
        let any = ustack::cli::wildcards(iface.config());
        let mut listeners = Vec::new();
        let mut udps = Vec::new();
        for &ip in &any {
            let at = SocketAddr::new(ip, args.port);
            listeners.push(
                iface
                    .tcp_listen(at, args.backlog)
                    .unwrap_or_else(|e| fail("tcpecho", format!("cannot listen on TCP {at}: {e}"))),
            );
            udps.push(
                iface
                    .udp_bind(at)
                    .unwrap_or_else(|e| fail("tcpecho", format!("cannot bind UDP {at}: {e}"))),
            );
        }
        let mut extra = Vec::new();
        for (port, kind) in [
            (args.discard_port, Kind::Discard),
            (args.source_port, Kind::Source),
        ] {
            for &ip in &any {
                if let Some(port) = port {
                    let at = SocketAddr::new(ip, port);
                    let l = iface.tcp_listen(at, args.backlog).unwrap_or_else(|e| {
                        fail("tcpecho", format!("cannot listen on TCP {at}: {e}"))
                    });
                    extra.push((l, kind));
                }
            }
        }
        let mut driver = Driver::new(device, &iface);
        driver.set_busy_poll(std::time::Duration::from_micros(args.busy_poll as u64));
        Queue {
            iface,
            driver,
            listeners,
            udps,
            extra,
            conns: HashMap::new(),
            stats: args.observe.stats_timer(clock.now()),
            clock,
            label,
            ended: (0, 0),
        }
    }
}

/// The echo loop of one stack, until `control` says stop.
fn serve(_index: usize, q: &mut Queue, control: &Control<'_>) {
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Queue {
            iface,
            driver,
            listeners,
            udps,
            extra,
            conns,
            stats,
            clock,
            label,
            ended: _,
        } = &mut *q;
        let now = clock.now();
        if let Err(e) = driver.poll(iface, now) {
            fail("tcpecho", format!("device error: {e}"));
        }
        iface.drain_socket_events(&mut events);
        for h in events.drain(..) {
            if listeners.contains(&h) {
                while let Ok((c, _)) = iface.tcp_accept(h) {
                    let mut conn = Conn::default();
                    if service(iface, c, &mut conn, &mut buf) {
                        conns.insert(c, conn);
                    }
                }
            } else if let Some(&(l, kind)) = extra.iter().find(|(l, _)| *l == h) {
                while let Ok((c, _)) = iface.tcp_accept(l) {
                    let mut conn = Conn {
                        kind,
                        ..Conn::default()
                    };
                    if service(iface, c, &mut conn, &mut buf) {
                        conns.insert(c, conn);
                    }
                }
            } else if udps.contains(&h) {
                while iface
                    .udp_socket(h)
                    .is_ok_and(|s| s.can_recv() && s.can_send(65536))
                {
                    if let Ok((n, from)) = iface.udp_recv_from(h, &mut buf) {
                        let _ = iface.udp_send_to(h, &buf[..n], from);
                    }
                }
            } else if let Some(c) = conns.get_mut(&h) {
                if !service(iface, h, c, &mut buf) {
                    conns.remove(&h);
                }
            }
        }
        // Answers leave now, in this wake-up (no read of the device first).
        if let Err(e) = driver.flush(iface, now) {
            fail("tcpecho", format!("device error: {e}"));
        }
        let now = clock.now();
        if stats.due(now) {
            eprint!("{}", stats_report(label, stats.elapsed_secs(now), iface));
        }
        let deadline = [driver.poll_at(iface), stats.deadline()]
            .into_iter()
            .flatten()
            .min();
        if deadline.is_some_and(|d| d <= now) && driver.tx_pending() == 0 {
            continue;
        }
        match driver.wait(now, deadline, &[control.as_raw_fd()]) {
            Ok(r) if r.extra & 1 != 0 => match control.read() {
                Some(Command::Report) => {
                    eprint!("{}", signal_report(label, iface, &echoing(conns.len())))
                }
                Some(Command::Stop) => {
                    q.ended = close_all(q);
                    return;
                }
                None => {}
            },
            Ok(_) => {}
            Err(e) => fail("tcpecho", format!("wait failed: {e}")),
        }
    }
}

fn report(iface: &Interface, conns: usize) -> String {
    format!("{}{}", ustack::cli::tcp_report(iface), echoing(conns))
}

/// The line that says how the connections open at exit ended.
fn ended_line((fin, reset): (usize, usize)) -> String {
    format!("    {fin} connections open at exit closed (FIN acknowledged), {reset} reset\n")
}

/// The line that counts the connections being echoed.
fn echoing(conns: usize) -> String {
    format!("    {conns} connections being echoed\n")
}

fn main() {
    let args: Args = parse_args("tcpecho");
    if let Err(e) = args.observe.init_logging() {
        fail("tcpecho", e);
    }
    if !ustack::tcp::cc::AVAILABLE.contains(&args.cc.as_str()) {
        fail(
            "tcpecho",
            format!(
                "unknown congestion control '{}' (have: {})",
                args.cc,
                ustack::tcp::cc::AVAILABLE.join(", ")
            ),
        );
    }
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])
        .unwrap_or_else(|e| fail("tcpecho", format!("cannot set up signals: {e}")));
    let n = usize::from(args.queues);
    let devices = args.device.open_n(n).unwrap_or_else(|e| fail("tcpecho", e));
    let queues: Vec<Queue> = devices
        .into_iter()
        .enumerate()
        .map(|(i, (device, config))| {
            Queue::new(
                &args,
                device,
                config,
                ustack::cli::queue_label("tcpecho", i, n),
            )
        })
        .collect();
    let iface = &queues[0].iface;
    eprintln!(
        "tcpecho: echoing TCP and UDP port {} on {} ({:?}, mtu {}, cc {}{})",
        args.port,
        ustack::cli::addr_list(iface.config()),
        iface.config().medium,
        iface.config().mtu,
        args.cc,
        if n > 1 {
            format!(", {n} queues")
        } else {
            String::new()
        }
    );
    let mut queues = run_queues("tcpecho", &signals, queues, serve)
        .unwrap_or_else(|e| fail("tcpecho", format!("cannot run the queues: {e}")));
    if let [q] = &mut queues[..] {
        print!("{}", q.iface.counters().report());
        print!("{}", report(&q.iface, q.conns.len()));
        print!("{}", ended_line(q.ended));
        print!("{}", q.driver.refresh_counters().report());
        return;
    }
    // Several stacks: their totals, in the same format, then each queue.
    let mut counters = Counters::default();
    let mut tcp = TcpCounters::default();
    let mut device = DriverCounters::default();
    let (mut estab, mut time_wait, mut conns) = (0, 0, 0);
    let mut ended = (0, 0);
    let mut lines = String::new();
    for (i, q) in queues.iter_mut().enumerate() {
        let t = q.iface.tcp_counters();
        let d = q.driver.refresh_counters().clone();
        lines.push_str(&format!(
            "    queue {i}: {} passive connection openings, {} segments received, {} segments sent out, {} frames read, {} frames written\n",
            t.passive_opens, t.in_segs, t.out_segs, d.rx_frames, d.tx_frames
        ));
        counters.add(q.iface.counters());
        tcp.add(t);
        device.add(&d);
        estab += q.iface.tcp_curr_estab();
        time_wait += q.iface.tcp_time_wait_len();
        conns += q.conns.len();
        ended.0 += q.ended.0;
        ended.1 += q.ended.1;
    }
    print!("{}", counters.report());
    println!(
        "{}    {conns} connections being echoed",
        ustack::cli::tcp_report_from(&tcp, estab, time_wait)
    );
    print!("{}", ended_line(ended));
    print!("{}", device.report());
    print!("Queues ({n}):\n{lines}");
}
