//! async_echo: a TCP echo server written with the async API
//! (`ustack::net::tokio`) on a TUN, TAP or raw-socket device, one tokio
//! task per connection. Takes the bundled tools' device flags.
//!
//! ```text
//! cargo run --release --features tokio --example async_echo -- \
//!     --tun ustk0 --addr 10.0.0.2/24 --addr fd00::2/64 --port 7
//! ```
//!
//! It listens on every address family it was given (`0.0.0.0` and `[::]`).
//!
//! It prints `async_echo: echoing TCP port ...` on stderr when ready, the
//! counters and the socket table on stderr on SIGUSR1, and on
//! SIGINT/SIGTERM a line of counters on stdout before exiting 0.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use ustack::cli::{fail, parse_args, spawn_monitor, DeviceArgs, ObserveArgs, SignalFd};
use ustack::net::tokio::{TcpListener, TcpStream};
use ustack::stack::Stack;

/// Echo TCP connections with tokio tasks on a user-space stack.
#[derive(clap::Parser, Debug)]
#[command(name = "async_echo", version, after_help = ustack::cli::SIGNALS_HELP)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// TCP port to echo on.
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Accept queue length.
    #[arg(long, default_value_t = 1024)]
    backlog: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// Connections served so far, and open now.
#[derive(Default)]
struct Stats {
    served: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
    bytes: AtomicUsize,
}

/// Echoes until the peer half-closes, then half-closes too.
async fn echo(mut s: TcpStream, stats: Arc<Stats>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16384];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await?;
        stats.bytes.fetch_add(n, Ordering::Relaxed);
    }
    s.shutdown().await
}

/// Accepts on one listener, a task per connection.
async fn accept_loop(listener: TcpListener, stats: Arc<Stats>) {
    loop {
        match listener.accept().await {
            Ok((s, _peer)) => {
                let stats = stats.clone();
                let open = stats.open.fetch_add(1, Ordering::Relaxed) + 1;
                stats.peak.fetch_max(open, Ordering::Relaxed);
                tokio::spawn(async move {
                    let _ = echo(s, stats.clone()).await;
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                    stats.served.fetch_add(1, Ordering::Relaxed);
                });
            }
            Err(e) => fail("async_echo", format!("accept: {e}")),
        }
    }
}

fn main() {
    let args: Args = parse_args("async_echo");
    if let Err(e) = args.observe.init_logging() {
        fail("async_echo", e);
    }
    // SIGUSR1 goes to the monitor thread (blocked in every thread spawned
    // after this); SIGINT and SIGTERM to tokio's handlers below.
    let usr1 = SignalFd::new(&[libc::SIGUSR1])
        .unwrap_or_else(|e| fail("async_echo", format!("cannot set up signals: {e}")));
    let (device, config) = args.device.open().unwrap_or_else(|e| fail("async_echo", e));
    // 0.0.0.0 and/or [::]: every address family given is served.
    let any = ustack::cli::wildcards(&config);
    let stack = Arc::new(
        Stack::builder(device)
            .config(config)
            .build()
            .unwrap_or_else(|e| fail("async_echo", format!("cannot start the stack: {e}"))),
    );
    spawn_monitor("async_echo", stack.clone(), usr1, &args.observe)
        .unwrap_or_else(|e| fail("async_echo", format!("cannot start the monitor: {e}")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail("async_echo", format!("cannot start tokio: {e}")));
    let stats = Arc::new(Stats::default());
    rt.block_on(async {
        let mut sigint = signal(SignalKind::interrupt()).unwrap_or_else(|e| fail("async_echo", e));
        let mut sigterm = signal(SignalKind::terminate()).unwrap_or_else(|e| fail("async_echo", e));
        for ip in any {
            let addr = SocketAddr::new(ip, args.port);
            let listener = TcpListener::bind_with_backlog(&stack, addr, args.backlog)
                .unwrap_or_else(|e| fail("async_echo", format!("cannot listen on {addr}: {e}")));
            tokio::spawn(accept_loop(listener, stats.clone()));
        }
        eprintln!(
            "async_echo: echoing TCP port {} on {}",
            args.port,
            args.device
                .addr
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
    });
    // Dropping the runtime drops the tasks and so closes their streams.
    drop(rt);
    let t = stack.with_interface(|i| i.tcp_counters().clone());
    println!(
        "async_echo: served={} peak_open={} bytes={} passive_opens={} resets_sent={} retransmits={}",
        stats.served.load(Ordering::Relaxed),
        stats.peak.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed),
        t.passive_opens,
        t.out_rsts,
        t.retrans_segs
    );
    // The monitor thread holds the stack too: stop it here, which closes
    // the device and so completes a --pcap capture.
    let _ = stack.shutdown();
}
