//! threaded_echo: a TCP echo server on the threaded, `std::net`-shaped API
//! (`ustack::net`), one thread per connection with blocking reads and
//! writes: what `scripts/bench.sh` measures beside `tcpecho` (the poll API)
//! to see what the threaded API's cross-thread wake-ups cost a
//! request/response. SIGUSR1 prints the counters and the socket table to
//! stderr; on SIGINT/SIGTERM it prints the stack's wake-up counters
//! (`Stack::wake_counters`) and exits.
//!
//! ```text
//! threaded_echo --tun ustk0 --addr 10.0.0.2/24 --port 7
//! ```

use std::io::{Read, Write};

use ustack::cli::{fail, monitor, parse_args, DeviceArgs, ObserveArgs, SignalFd};
use ustack::stack::Stack;

const TOOL: &str = "threaded_echo";

/// Echo TCP connections, a thread each, on a user-space stack.
#[derive(clap::Parser, Debug)]
#[command(name = "threaded_echo", version, after_help = ustack::cli::SIGNALS_HELP)]
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
}

fn main() {
    let args: Args = parse_args(TOOL);
    if let Err(e) = args.observe.init_logging() {
        fail(TOOL, e);
    }
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])
        .unwrap_or_else(|e| fail(TOOL, format!("cannot set up signals: {e}")));
    let (device, config) = args.device.open().unwrap_or_else(|e| fail(TOOL, e));
    let families = config.clone();
    let stack = Stack::builder(device)
        .config(config)
        .build()
        .unwrap_or_else(|e| fail(TOOL, e));
    // 0.0.0.0 and/or [::]: every address family given is served.
    let listeners = ustack::cli::listen_wildcards(&stack, &families, args.port, args.backlog)
        .unwrap_or_else(|e| fail(TOOL, e));
    for listener in listeners {
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    eprintln!(
        "{TOOL}: echoing TCP port {} ({})",
        args.port,
        ustack::cli::addr_list(&families)
    );
    // Reports on SIGUSR1 and --stats-interval, until SIGINT or SIGTERM.
    if let Err(e) = monitor(TOOL, &stack, &signals, &args.observe) {
        fail(TOOL, format!("waiting for signals: {e}"));
    }
    let w = stack.wake_counters();
    println!(
        "stack_wakes={} app_wakes={} direct_sends={} rx_frames={} tx_frames={}",
        w.stack_wakes,
        w.app_wakes,
        w.direct_sends,
        stack.driver_counters().rx_frames,
        stack.driver_counters().tx_frames
    );
    // The acceptor thread holds the stack: flush a --pcap capture.
    ustack::cli::exit(0);
}
