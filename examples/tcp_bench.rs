//! A compiled TCP benchmark client for `scripts/bench.sh` (Python tops out
//! early), and the Linux reference server it is measured against. Every mode
//! is bounded in time and prints one `key=value` line on stdout.
//!
//! ```text
//! tcp_bench up    HOST PORT SECS [CONNS]
//!                                     bulk to a discard port: MB/s until the
//!                                     server has read everything (it closes at EOF)
//! tcp_bench down  HOST PORT SECS [CONNS]
//!                                     bulk from a source port: MB/s read
//!                                     (CONNS connections at once, one thread
//!                                     each, 1 to 256, default 1: their sum)
//! tcp_bench rr    HOST PORT SECS      1-byte request/response on one
//!                                     connection (TCP_NODELAY): tx/s, p50, p99
//! tcp_bench cps   HOST PORT SECS      connect, 1 byte there and back, close
//! tcp_bench hold  HOST PORT N SECS SRC...
//!                                     open N connections (bound round-robin to the
//!                                     SRC addresses), 1 byte echoed on each, print
//!                                     `held=N`, keep them open until stdin closes
//!                                     or SECS pass
//! tcp_bench server ADDR SECS          Linux reference: echo on 7 (one thread,
//!                                     epoll, every connection), echo on 8 (a
//!                                     thread per connection), discard on 9,
//!                                     source on 19 (a thread per connection),
//!                                     exits after SECS
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: tcp_bench up|down HOST PORT SECS [CONNS] | rr|cps HOST PORT SECS | hold HOST PORT N SECS SRC... | server ADDR SECS");
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Warm-up before counting starts.
const WARMUP: Duration = Duration::from_millis(300);

/// What one bulk connection moved.
struct Bulk {
    bytes: u64,
    secs: f64,
    ok: bool,
    err: Option<String>,
}

impl Bulk {
    fn failed(e: impl std::fmt::Debug) -> Bulk {
        Bulk {
            bytes: 0,
            secs: 0.0,
            ok: false,
            err: Some(format!("{e:?}")),
        }
    }
}

fn up(mut s: TcpStream, secs: f64) -> Bulk {
    let chunk = vec![0x5au8; 1 << 16];
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < end {
        match s.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(e) => return Bulk::failed(e),
        }
    }
    // The rate counts until the server has read the last byte: it closes
    // the connection when it sees our FIN.
    let _ = s.shutdown(Shutdown::Write);
    let mut b = [0u8; 64];
    let ok = matches!(s.read(&mut b), Ok(0));
    Bulk {
        bytes: sent,
        secs: t0.elapsed().as_secs_f64(),
        ok,
        err: None,
    }
}

fn down(mut s: TcpStream, secs: f64) -> Bulk {
    let mut buf = vec![0u8; 1 << 18];
    let start = Instant::now() + WARMUP;
    let end = start + Duration::from_secs_f64(secs);
    let mut got = 0u64;
    let mut t0 = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if t0.is_none() && now >= start {
            t0 = Some(now);
            got = 0;
        }
        match s.read(&mut buf) {
            Ok(0) => return Bulk::failed("eof"),
            Ok(n) => got += n as u64,
            Err(e) => return Bulk::failed(e),
        }
    }
    Bulk {
        bytes: got,
        secs: t0.map_or(1.0, |t| t.elapsed().as_secs_f64()),
        ok: true,
        err: None,
    }
}

/// `up` or `down` over `conns` connections at once, one thread each, all
/// connected before any starts: the bytes of all over the longest
/// connection's time, and each connection's own rate.
fn bulk(addr: SocketAddr, secs: f64, conns: usize, f: fn(TcpStream, f64) -> Bulk) -> String {
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        match connect(addr) {
            Ok(s) => streams.push(s),
            Err(e) => return format!("value=0 unit=MB/s ok=0 conns={conns} err={e:?}"),
        }
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(conns));
    let threads: Vec<_> = streams
        .into_iter()
        .map(|s| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                f(s, secs)
            })
        })
        .collect();
    let results: Vec<Bulk> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Bulk::failed("panic")))
        .collect();
    let bytes: u64 = results.iter().map(|b| b.bytes).sum();
    let el = results.iter().map(|b| b.secs).fold(0.0, f64::max);
    let ok = results.iter().all(|b| b.ok);
    let per: Vec<String> = results
        .iter()
        .map(|b| format!("{:.1}", b.bytes as f64 / b.secs.max(1e-9) / 1e6))
        .collect();
    let value = if el > 0.0 {
        bytes as f64 / el / 1e6
    } else {
        0.0
    };
    let mut line = format!(
        "value={value:.1} unit=MB/s ok={} conns={conns} bytes={bytes} secs={el:.2}",
        ok as u8
    );
    if conns > 1 {
        line.push_str(&format!(" per_conn={}", per.join(",")));
    }
    if let Some(e) = results.iter().find_map(|b| b.err.as_ref()) {
        line.push_str(&format!(" err={e}"));
    }
    line
}

fn rr(addr: SocketAddr, secs: f64) -> String {
    let mut s = match connect(addr) {
        Ok(s) => s,
        Err(e) => return format!("value=0 unit=tx/s ok=0 err={e:?}"),
    };
    let _ = s.set_nodelay(true);
    let start = Instant::now() + WARMUP;
    let end = start + Duration::from_secs_f64(secs);
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut b = [0u8; 1];
    let mut t0 = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if t0.is_none() && now >= start {
            t0 = Some(now);
            lat.clear();
        }
        if s.write_all(b"x").is_err() || s.read_exact(&mut b).is_err() || b[0] != b'x' {
            return "value=0 unit=tx/s ok=0 err=echo".into();
        }
        if lat.len() < (1 << 24) {
            lat.push(now.elapsed().as_nanos().min(u32::MAX as u128) as u32);
        }
    }
    let el = t0.map_or(1.0, |t| t.elapsed().as_secs_f64());
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |&n| n as f64 / 1000.0)
    };
    format!(
        "value={:.0} unit=tx/s ok=1 count={} p50_us={:.1} p99_us={:.1} secs={el:.2}",
        lat.len() as f64 / el,
        lat.len(),
        pct(0.50),
        pct(0.99)
    )
}

fn cps(addr: SocketAddr, secs: f64) -> String {
    let start = Instant::now() + WARMUP;
    let end = start + Duration::from_secs_f64(secs);
    let (mut n, mut bad) = (0u64, 0u64);
    let mut t0 = None;
    let mut b = [0u8; 1];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if t0.is_none() && now >= start {
            t0 = Some(now);
            n = 0;
            bad = 0;
        }
        let ok = connect(addr).is_ok_and(|mut s| {
            let _ = s.set_nodelay(true);
            s.write_all(b"x").is_ok() && s.read_exact(&mut b).is_ok() && b[0] == b'x'
        });
        if ok {
            n += 1;
        } else {
            bad += 1;
            if bad > 1000 {
                break;
            }
        }
    }
    let el = t0.map_or(1.0, |t| t.elapsed().as_secs_f64());
    format!(
        "value={:.0} unit=conn/s ok={} count={n} failed={bad} secs={el:.2}",
        n as f64 / el,
        (bad == 0) as u8
    )
}

fn raise_nofile(want: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_max < want {
            r.rlim_max = want;
        }
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

/// Opens `n` connections from the `srcs` (one thread per source address),
/// echoes a byte on each, then holds them.
fn hold(host: IpAddr, port: u16, n: usize, secs: f64, srcs: Vec<IpAddr>) {
    raise_nofile(n as u64 + 1024);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    let per = n.div_ceil(srcs.len());
    let threads: Vec<_> = srcs
        .iter()
        .enumerate()
        .map(|(i, &src)| {
            let count = per.min(n - (i * per).min(n));
            std::thread::spawn(move || {
                let mut held = Vec::with_capacity(count);
                let mut err = None;
                let mut b = [0u8; 1];
                for _ in 0..count {
                    if Instant::now() >= deadline {
                        err = Some("deadline".to_string());
                        break;
                    }
                    let r = (|| -> std::io::Result<TcpStream> {
                        let sock = socket(src)?;
                        let s = sock_connect(sock, SocketAddr::new(host, port))?;
                        s.set_read_timeout(Some(Duration::from_secs(5)))?;
                        (&s).write_all(b"x")?;
                        (&s).read_exact(&mut b)?;
                        Ok(s)
                    })();
                    match r {
                        Ok(s) => held.push(s),
                        Err(e) => {
                            err = Some(format!("{e}"));
                            break;
                        }
                    }
                }
                (held, err)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errs = Vec::new();
    for t in threads {
        let (h, e) = t.join().expect("hold thread");
        all.extend(h);
        errs.extend(e);
    }
    println!(
        "held={} wanted={n} secs={:.1} err={:?}",
        all.len(),
        t0.elapsed().as_secs_f64(),
        errs.first()
    );
    let _ = std::io::stdout().flush();
    // Until stdin closes (the script is done measuring) or the deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut b = [0u8; 16];
        while std::io::stdin().read(&mut b).is_ok_and(|n| n > 0) {}
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
}

/// A TCP socket bound to `src` with SO_REUSEADDR (so many sources can share
/// the ephemeral range).
fn socket(src: IpAddr) -> std::io::Result<i32> {
    let IpAddr::V4(v4) = src else {
        return Err(ErrorKind::Unsupported.into());
    };
    // SAFETY: socket/setsockopt/bind on a descriptor we own; closed on error.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const _ as *const libc::c_void,
            4,
        );
        let sa = sockaddr(SocketAddr::new(v4.into(), 0));
        if libc::bind(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        ) < 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}

fn sockaddr(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = a else { unreachable!() };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn sock_connect(fd: i32, to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let sa = sockaddr(to);
    // SAFETY: fd is ours; a blocking connect on a local struct; on success
    // the descriptor moves into the TcpStream.
    unsafe {
        if libc::connect(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        ) < 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

/// The echo server of port 7: one thread, level-triggered epoll over the
/// listener and every connection, as an event-driven Linux server is
/// written (no thread to start per connection: the fair reference for
/// ustack's event loop in the connection-rate cell). A readable connection
/// gets one read and its echo written back in blocking mode (the echo of
/// what one read returns fits the socket buffer of a reading peer).
fn epoll_echo(l: TcpListener) -> std::io::Result<()> {
    use std::collections::HashMap;
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    l.set_nonblocking(true)?;
    // SAFETY: plain epoll syscalls on descriptors we own; `events` is a
    // live array of the length passed.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let add = |fd: RawFd| {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: see above.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }
    };
    let lfd = l.as_raw_fd();
    add(lfd);
    let mut conns: HashMap<RawFd, TcpStream> = HashMap::new();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: see above.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            if fd == lfd {
                loop {
                    // SAFETY: accept4 on our listener; a new descriptor is
                    // owned by the TcpStream made from it.
                    let c = unsafe {
                        libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_CLOEXEC,
                        )
                    };
                    if c < 0 {
                        break;
                    }
                    // SAFETY: c is a fresh descriptor we own.
                    let s = unsafe { TcpStream::from_raw_fd(c) };
                    let _ = s.set_nodelay(true);
                    add(c);
                    conns.insert(c, s);
                }
                continue;
            }
            let Some(s) = conns.get_mut(&fd) else {
                continue;
            };
            let done = match s.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => s.write_all(&buf[..n]).is_err(),
                Err(e) => e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::Interrupted,
            };
            if done {
                // Closing the descriptor takes it out of the epoll set.
                conns.remove(&fd);
            }
        }
    }
}

fn server(addr: IpAddr, secs: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let l = TcpListener::bind((addr, 7)).unwrap_or_else(|e| {
        eprintln!("tcp_bench server: bind {addr}:7: {e}");
        std::process::exit(1)
    });
    std::thread::spawn(move || {
        if let Err(e) = epoll_echo(l) {
            eprintln!("tcp_bench server: epoll echo: {e}");
        }
    });
    for (port, kind) in [(8u16, 0u8), (9, 1), (19, 2)] {
        let l = TcpListener::bind((addr, port)).unwrap_or_else(|e| {
            eprintln!("tcp_bench server: bind {addr}:{port}: {e}");
            std::process::exit(1)
        });
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut buf = vec![0u8; 1 << 16];
                    match kind {
                        0 => {
                            while let Ok(n) = s.read(&mut buf) {
                                if n == 0 || s.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                        1 => while s.read(&mut buf).is_ok_and(|n| n > 0) {},
                        _ => while s.write_all(&buf).is_ok() {},
                    }
                });
            }
        });
    }
    eprintln!(
        "tcp_bench server: serving 7 (echo, epoll), 8 (echo, thread per connection), 9 (discard), 19 (source) on {addr}"
    );
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or_else(|| usage());
    if mode == "server" {
        server(arg(&args, 2), arg(&args, 3));
        return;
    }
    let host: IpAddr = arg(&args, 2);
    let port: u16 = arg(&args, 3);
    let addr = SocketAddr::new(host, port);
    let line = match mode {
        "up" | "down" => {
            let conns: usize = args.get(5).map_or(1, |_| arg(&args, 5));
            if !(1..=256).contains(&conns) {
                usage()
            }
            let f = if mode == "up" { up } else { down };
            bulk(addr, arg(&args, 4), conns, f)
        }
        "rr" => rr(addr, arg(&args, 4)),
        "cps" => cps(addr, arg(&args, 4)),
        "hold" => {
            let srcs: Vec<IpAddr> = args[6..].iter().filter_map(|a| a.parse().ok()).collect();
            if srcs.is_empty() {
                usage()
            }
            hold(host, port, arg(&args, 4), arg(&args, 5), srcs);
            return;
        }
        _ => usage(),
    };
    println!("{line}");
}
