//! ucat: a netcat on the user-space stack. Standard input goes to the
//! connection and the connection to standard output; at the end of input it
//! half-closes (FIN) and keeps reading until the peer closes.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use ustack::cli::{
    exit, fail, parse_args, spawn_monitor_with, DeviceArgs, ObserveArgs, OnStop, SignalFd,
};
use ustack::net::{TcpListener, TcpStream, UdpSocket};
use ustack::stack::Stack;
use ustack::tcp::State;

/// netcat on a user-space TCP/IP stack.
#[derive(clap::Parser, Debug)]
#[command(
    name = "ucat",
    version,
    after_help = "Exit status: 0 when both directions ended cleanly; 1 with one line on stderr on refused, reset or timed out.\n\
Signals: SIGUSR1 prints the counters and the socket table to stderr and carries on; SIGINT and SIGTERM end ucat with status 130 and 143 (128 + the signal), its --pcap capture complete.\n\
Logging: --log LEVEL, or RUST_LOG=LEVEL in the environment (e.g. RUST_LOG=ustack::tcp=debug)."
)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// TCP: print a progress line to stderr every second (bytes each way,
    /// rates, retransmits, RTT, cwnd, send MSS and path MTU).
    #[arg(long)]
    progress: bool,
    /// UDP instead of TCP: standard input goes out in datagrams of at most
    /// --max-datagram bytes.
    #[arg(long)]
    udp: bool,
    /// UDP: the largest datagram payload to send, bytes (1 to 65507).
    /// Default: the most that fits the interface MTU unfragmented for the
    /// peer's address family (MTU - 28 for IPv4, MTU - 48 for IPv6: 1472
    /// and 1452 at MTU 1500). Larger datagrams leave as IP fragments, which
    /// many receivers and paths handle badly.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(1..=65507))]
    max_datagram: Option<u16>,
    /// Congestion control: cubic (the default, as on Linux), reno or bbr (BBR v1, paced).
    #[arg(long, default_value = "cubic")]
    cc: String,
    /// TCP send and receive buffer of each connection, bytes (default
    /// 1 MiB). Raise it above the bandwidth-delay product on long fat
    /// paths (100 Mbit/s over 100 ms needs 1.25 MB).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(4096..=1 << 30))]
    buffer: Option<u32>,
    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    connect_timeout: u64,
    /// UDP: exit after this many seconds without a datagram once input ended.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    idle: u64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(clap::Subcommand, Debug)]
enum Mode {
    /// Connect to HOST PORT.
    Connect {
        /// The peer's address, IPv4 or IPv6 (e.g. 10.0.0.1 or fd00::1).
        host: String,
        /// The peer's port.
        port: u16,
    },
    /// Wait for one connection (or the first datagram) on PORT, on every
    /// address family the stack has (`0.0.0.0` and/or `[::]`).
    Listen {
        /// The local port.
        port: u16,
    },
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// Copies standard input to the stream, then half-closes.
fn pump_stdin(stream: TcpStream) -> io::Result<u64> {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            break;
        }
        (&stream).write_all(&buf[..n])?;
        total += n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(total)
}

/// Waits until what we sent (FIN included) is acknowledged, so that
/// stopping the stack loses nothing.
fn wait_delivered(stream: &TcpStream) {
    let start = StdInstant::now();
    while start.elapsed() < Duration::from_secs(120) {
        match stream.info() {
            Ok(i)
                if i.unacked == 0
                    && matches!(
                        i.state,
                        Some(State::FinWait2 | State::TimeWait | State::Closed | State::LastAck)
                            | None
                    ) =>
            {
                return
            }
            Ok(i) if i.state == Some(State::Closed) => return,
            Err(_) => return,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The `--progress` thread: one line a second from `TcpStream::info()`
/// until `done` is set, and a last line then.
fn spawn_progress(stream: TcpStream, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = StdInstant::now();
        let (mut last_t, mut last_tx, mut last_rx) = (start, 0u64, 0u64);
        loop {
            // Sleep a second, waking early when the transfer ends.
            for _ in 0..20 {
                if done.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let finished = done.load(Ordering::Acquire);
            if let Ok(i) = stream.info() {
                let now = StdInstant::now();
                let dt = now.duration_since(last_t).as_secs_f64().max(1e-3);
                let mbit = |b: u64| b as f64 * 8.0 / dt / 1e6;
                eprintln!(
                    "ucat: {:.1} s: sent {} B ({:.1} Mbit/s), received {} B ({:.1} Mbit/s), {} retransmits ({} fast, {} timeouts, {} tail-loss probes, {} D-SACKs in), srtt {:.1} ms, cwnd {} B, mss {} B, pmtu {} B",
                    now.duration_since(start).as_secs_f64(),
                    i.bytes_acked,
                    mbit(i.bytes_acked.saturating_sub(last_tx)),
                    i.bytes_received,
                    mbit(i.bytes_received.saturating_sub(last_rx)),
                    i.retransmits,
                    i.fast_retransmits,
                    i.timeouts,
                    i.tlps,
                    i.dsacks_received,
                    i.srtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
                    i.cwnd,
                    i.mss,
                    i.pmtu,
                );
                (last_t, last_tx, last_rx) = (now, i.bytes_acked, i.bytes_received);
            }
            if finished {
                return;
            }
        }
    })
}

fn run_tcp(stack: &Stack, stream: TcpStream, progress: bool) -> Result<(), String> {
    let done = Arc::new(AtomicBool::new(false));
    let progress = if progress {
        let s = stream.try_clone().map_err(|e| e.to_string())?;
        Some(spawn_progress(s, done.clone()))
    } else {
        None
    };
    let result = run_tcp_inner(stack, stream);
    done.store(true, Ordering::Release);
    if let Some(p) = progress {
        let _ = p.join();
    }
    result
}

fn run_tcp_inner(stack: &Stack, stream: TcpStream) -> Result<(), String> {
    let tx = stream.try_clone().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || pump_stdin(tx));
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut s = stream.try_clone().map_err(|e| e.to_string())?;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out
                .write_all(&buf[..n])
                .map_err(|e| format!("stdout: {e}"))?,
            Err(e) => return Err(describe(&e)),
        }
    }
    out.flush().map_err(|e| format!("stdout: {e}"))?;
    match writer.join() {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(describe(&e)),
        Err(_) => return Err("input thread failed".into()),
    }
    wait_delivered(&stream);
    if let Ok(Some(e)) = stream.take_error() {
        return Err(describe(&e));
    }
    let _ = stack;
    Ok(())
}

/// The largest UDP payload ucat sends to a peer of each address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DatagramLimit {
    v4: usize,
    v6: usize,
}

impl DatagramLimit {
    /// `--max-datagram` when given; otherwise what fits `mtu` without
    /// fragmentation behind the IP and UDP headers.
    fn new(max_datagram: Option<u16>, mtu: usize) -> DatagramLimit {
        match max_datagram {
            Some(m) => DatagramLimit {
                v4: m.into(),
                v6: m.into(),
            },
            None => DatagramLimit {
                v4: mtu.saturating_sub(20 + 8).clamp(1, 65507),
                v6: mtu.saturating_sub(40 + 8).clamp(1, 65507),
            },
        }
    }

    /// The limit towards `peer`.
    fn to(self, peer: SocketAddr) -> usize {
        if peer.is_ipv4() {
            self.v4
        } else {
            self.v6
        }
    }
}

/// Copies standard input to datagrams and datagrams to standard output.
/// `socks` are the bound sockets (one per address family when listening);
/// until the peer is known, each is polled in turn, and the one the first
/// datagram came in on is used from then on. Input is sent in datagrams
/// of at most `limit` towards the peer.
fn run_udp(
    mut socks: Vec<UdpSocket>,
    mut peer: Option<SocketAddr>,
    idle: Duration,
    limit: DatagramLimit,
) -> Result<(), String> {
    // 50 ms of waiting per round, shared by the sockets.
    let wait = Duration::from_millis(50) / socks.len().max(1) as u32;
    for sock in &mut socks {
        sock.set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
    }
    let mut chosen: Option<usize> = peer.map(|_| 0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Vec<u8>>>(64);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        // One read per datagram: the peer's limit when it is known, else
        // the smaller of the two (an IPv6 peer learned later then gets
        // whole datagrams too, not each read cut in two).
        let mut buf = vec![0u8; peer.map_or(limit.v4.min(limit.v6), |p| limit.to(p))];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 65536];
    let mut input_done = false;
    let mut last = StdInstant::now();
    // Input read before there is a peer to send it to (listen): held, and
    // no more read, until the first datagram names the peer. The channel
    // is bounded, so the reader waits meanwhile: nothing is dropped.
    let mut held: Option<Vec<u8>> = None;
    loop {
        loop {
            let d = match (held.take(), peer) {
                (Some(d), Some(_)) => d,
                (Some(d), None) => {
                    held = Some(d);
                    break;
                }
                (None, _) => match rx.try_recv() {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        input_done = true;
                        break;
                    }
                    Err(_) => break,
                },
            };
            match (peer, chosen) {
                (Some(p), Some(i)) => {
                    for datagram in d.chunks(limit.to(p)) {
                        socks[i].send_to(datagram, p).map_err(|e| describe(&e))?;
                    }
                }
                _ => held = Some(d),
            }
        }
        for (i, sock) in socks.iter().enumerate() {
            if chosen.is_some_and(|c| c != i) {
                continue;
            }
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    peer.get_or_insert(from);
                    chosen.get_or_insert(i);
                    out.write_all(&buf[..n])
                        .map_err(|e| format!("stdout: {e}"))?;
                    out.flush().map_err(|e| format!("stdout: {e}"))?;
                    last = StdInstant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(describe(&e)),
            }
        }
        if input_done && last.elapsed() >= idle {
            return Ok(());
        }
    }
}

fn main() {
    let args: Args = parse_args("ucat");
    if !ustack::tcp::cc::AVAILABLE.contains(&args.cc.as_str()) {
        fail(
            "ucat",
            format!(
                "unknown congestion control '{}' (have: {})",
                args.cc,
                ustack::tcp::cc::AVAILABLE.join(", ")
            ),
        );
    }
    if let Err(e) = args.observe.init_logging() {
        fail("ucat", e);
    }
    // Before any thread starts, so that they all inherit the blocked mask.
    let signals = SignalFd::new(&[libc::SIGUSR1, libc::SIGINT, libc::SIGTERM])
        .unwrap_or_else(|e| fail("ucat", format!("cannot set up signals: {e}")));
    let (device, mut config) = args.device.open().unwrap_or_else(|e| fail("ucat", e));
    config.tcp.congestion = args.cc.clone();
    // 0.0.0.0 and/or [::]: listen on every address family given.
    let any = ustack::cli::wildcards(&config);
    if let Some(b) = args.buffer {
        config.tcp.send_buffer = b as usize;
        config.tcp.recv_buffer = b as usize;
    }
    let stack = Arc::new(
        Stack::builder(device)
            .config(config)
            .build()
            .unwrap_or_else(|e| fail("ucat", e)),
    );
    spawn_monitor_with(
        "ucat",
        stack.clone(),
        signals,
        &args.observe,
        OnStop::SignalStatus,
    )
    .unwrap_or_else(|e| fail("ucat", format!("cannot start the monitor thread: {e}")));
    let limit = DatagramLimit::new(args.max_datagram, stack.with_interface(|i| i.config().mtu));
    let result = match (&args.mode, args.udp) {
        (Mode::Connect { host, port }, udp) => {
            // `[fd00::1]` as well as `fd00::1`, as URLs write it.
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let addr = (bare, *port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .unwrap_or_else(|| fail("ucat", format!("'{host}' is not an address")));
            if udp {
                let local: IpAddr = match addr {
                    SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
                };
                let s = UdpSocket::bind(&stack, (local, 0))
                    .unwrap_or_else(|e| fail("ucat", format!("bind UDP {local}: {e}")));
                s.connect(addr)
                    .unwrap_or_else(|e| fail("ucat", format!("connect {addr}: {}", describe(&e))));
                run_udp(vec![s], Some(addr), Duration::from_secs(args.idle), limit)
            } else {
                match TcpStream::connect_timeout(
                    &stack,
                    &addr,
                    Duration::from_secs(args.connect_timeout),
                ) {
                    Ok(s) => run_tcp(&stack, s, args.progress),
                    Err(e) => Err(format!("connect to {addr}: {}", describe(&e))),
                }
            }
        }
        (Mode::Listen { port }, true) => {
            let socks = any
                .iter()
                .map(|&ip| {
                    UdpSocket::bind(&stack, (ip, *port))
                        .unwrap_or_else(|e| fail("ucat", format!("bind UDP {ip} port {port}: {e}")))
                })
                .collect();
            run_udp(socks, None, Duration::from_secs(args.idle), limit)
        }
        (Mode::Listen { port }, false) => {
            let ls: Vec<TcpListener> = any
                .iter()
                .map(|&ip| {
                    let at = SocketAddr::new(ip, *port);
                    TcpListener::bind(&stack, at)
                        .unwrap_or_else(|e| fail("ucat", format!("listen on TCP {at}: {e}")))
                })
                .collect();
            let accepted = if let [l] = &ls[..] {
                l.accept()
            } else {
                // IPv4 and IPv6 listeners (the latter IPv6-only): the first
                // connection on either, polled every 5 ms.
                for l in &ls {
                    let _ = l.set_nonblocking(true);
                }
                loop {
                    let mut r = Err(io::ErrorKind::WouldBlock.into());
                    for l in &ls {
                        r = l.accept();
                        if !matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                            break;
                        }
                    }
                    match r {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        r => break r,
                    }
                }
            };
            match accepted {
                Ok((mut s, _)) => {
                    drop(ls);
                    let _ = s.set_nonblocking(false);
                    run_tcp(&stack, s, args.progress)
                }
                Err(e) => Err(describe(&e)),
            }
        }
    };
    if let Err(e) = result {
        fail("ucat", e);
    }
    // The monitor thread holds the stack: flush the capture explicitly.
    exit(0);
}
