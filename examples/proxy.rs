//! proxy: accepts TCP connections on the user-space stack and relays each
//! one to a kernel socket (`std::net::TcpStream`), the way a transparent
//! proxy or a tunnel endpoint bridges the two worlds.
//!
//! ```text
//! proxy --tun ustk0 --addr 10.0.0.2/24 --addr fd00::2/64 --listen 5201 --to 192.0.2.10:5201
//! ```
//!
//! It accepts on every address family it was given (`0.0.0.0` and
//! `[::]`); `--to` may be IPv6 too (`[2001:db8::10]:5201`).
//!
//! Two threads per connection copy the two directions with 64 KiB
//! buffers. When one side ends its direction (EOF), the other side's write
//! half is shut down, so half-closes travel through; a reset or error on
//! either side shuts both down.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream as KernelStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use ustack::cli::{fail, parse_args, spawn_monitor, DeviceArgs, ObserveArgs, SignalFd};
use ustack::net::{TcpListener, TcpStream};
use ustack::stack::Stack;

const TOOL: &str = "proxy";

/// Relay TCP connections from a user-space stack to kernel sockets.
#[derive(clap::Parser, Debug)]
#[command(name = "proxy", version, after_help = ustack::cli::SIGNALS_HELP)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// TCP port to accept connections on, on the stack.
    #[arg(long, value_name = "PORT")]
    listen: u16,
    /// Where each connection is relayed to, through the kernel's TCP
    /// (IPv4 `10.0.0.1:80` or IPv6 `[fd00::1]:80`).
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// Congestion control on the stack's side: reno, cubic or bbr (the tools default to cubic).
    #[arg(long, default_value = "reno")]
    cc: String,
    /// Give up connecting to --to after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    connect_timeout: u64,
}

/// Copies `from` to `to` until EOF, then shuts `to`'s write half down (the
/// half-close goes through). On an error, shuts both sides down completely
/// so that the other direction ends too. Returns the bytes copied.
fn relay(
    mut from: impl Read,
    mut to: impl Write,
    shut_to: impl Fn(Shutdown),
    shut_from: impl Fn(Shutdown),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                shut_to(Shutdown::Both);
                shut_from(Shutdown::Both);
                return Err(e);
            }
        };
        if let Err(e) = to.write_all(&buf[..n]) {
            shut_to(Shutdown::Both);
            shut_from(Shutdown::Both);
            return Err(e);
        }
        total += n as u64;
    }
    let _ = to.flush();
    shut_to(Shutdown::Write);
    Ok(total)
}

/// Relays one accepted connection until both directions are done.
fn bridge(client: TcpStream, to: SocketAddr, timeout: Duration) -> io::Result<(u64, u64)> {
    let server = match KernelStream::connect_timeout(&to, timeout) {
        Ok(s) => s,
        Err(e) => {
            // Tell the client at once: abort rather than a clean FIN.
            let _ = client.set_linger(Some(Duration::ZERO));
            return Err(e);
        }
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let (c2, s2) = (client.try_clone()?, server.try_clone()?);
    let (c3, s3) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::Builder::new()
        .name("proxy-up".into())
        .spawn(move || {
            relay(
                &c2,
                &s2,
                |how| {
                    let _ = s2.shutdown(how);
                },
                |how| {
                    let _ = c2.shutdown(how);
                },
            )
        })?;
    let down = relay(
        &server,
        &client,
        |how| {
            let _ = c3.shutdown(how);
        },
        |how| {
            let _ = s3.shutdown(how);
        },
    );
    let up = up
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("relay thread panicked")));
    Ok((up?, down?))
}

fn main() {
    let args: Args = parse_args(TOOL);
    if let Err(e) = args.observe.init_logging() {
        fail(TOOL, e);
    }
    if !ustack::tcp::cc::AVAILABLE.contains(&args.cc.as_str()) {
        fail(TOOL, format!("unknown congestion control '{}'", args.cc));
    }
    let to = args
        .to
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| fail(TOOL, format!("--to '{}' is not HOST:PORT", args.to)));
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])
        .unwrap_or_else(|e| fail(TOOL, format!("cannot set up signals: {e}")));
    let (device, mut config) = args.device.open().unwrap_or_else(|e| fail(TOOL, e));
    config.tcp.congestion = args.cc.clone();
    let families = config.clone();
    let stack = Arc::new(
        Stack::builder(device)
            .config(config)
            .build()
            .unwrap_or_else(|e| fail(TOOL, e)),
    );
    // 0.0.0.0 and/or [::]: clients of every address family given.
    let listeners = ustack::cli::listen_wildcards(&stack, &families, args.listen, 128)
        .unwrap_or_else(|e| fail(TOOL, e));
    spawn_monitor(TOOL, stack.clone(), signals, &args.observe)
        .unwrap_or_else(|e| fail(TOOL, format!("cannot start the monitor thread: {e}")));
    eprintln!(
        "{TOOL}: relaying port {} ({}) to {to}",
        args.listen,
        ustack::cli::addr_list(&families)
    );
    let timeout = Duration::from_secs(args.connect_timeout.max(1));
    let mut threads = Vec::new();
    for listener in listeners {
        let t = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, to, timeout))
            .unwrap_or_else(|e| fail(TOOL, format!("cannot start an accept thread: {e}")));
        threads.push(t);
    }
    // The accept loops end only by failing the process.
    for t in threads {
        let _ = t.join();
    }
}

/// Accepts connections on one listener and bridges each on its own thread.
fn accept_loop(listener: TcpListener, to: SocketAddr, timeout: Duration) {
    loop {
        let (client, from) = match listener.accept() {
            Ok(c) => c,
            Err(e) => fail(TOOL, format!("accept: {e}")),
        };
        let spawned = std::thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || match bridge(client, to, timeout) {
                Ok((up, down)) => {
                    eprintln!("{TOOL}: {from} done: {up} B up, {down} B down")
                }
                Err(e) => eprintln!("{TOOL}: {from}: {e}"),
            });
        if let Err(e) = spawned {
            eprintln!("{TOOL}: cannot start a thread for {from}: {e}");
        }
    }
}
