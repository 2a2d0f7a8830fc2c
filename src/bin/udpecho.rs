//! udpecho: echoes every UDP datagram it receives and answers ping, on a
//! TUN, TAP or raw-socket device, using the single-threaded poll API.

use std::net::SocketAddr;

use ustack::cli::{fail, parse_args, stats_report, DeviceArgs, ObserveArgs, SignalFd};
use ustack::iface::Interface;
use ustack::runtime::Driver;
use ustack::time::{Clock, RealClock};

/// Echo UDP datagrams (and answer ping) on a user-space stack.
#[derive(clap::Parser, Debug)]
#[command(name = "udpecho", version, after_help = ustack::cli::SIGNALS_HELP)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// UDP port to echo on.
    #[arg(long, default_value_t = 7)]
    port: u16,
}

fn main() {
    let args: Args = parse_args("udpecho");
    if let Err(e) = args.observe.init_logging() {
        fail("udpecho", e);
    }
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])
        .unwrap_or_else(|e| fail("udpecho", format!("cannot set up signals: {e}")));
    let (device, config) = args.device.open().unwrap_or_else(|e| fail("udpecho", e));
    let clock = RealClock::new();
    let mut iface = Interface::new(config, clock.now());
    let any = ustack::cli::wildcards(iface.config());
    let socks: Vec<_> = any
        .into_iter()
        .map(|ip| {
            let at = SocketAddr::new(ip, args.port);
            iface
                .udp_bind(at)
                .unwrap_or_else(|e| fail("udpecho", format!("cannot bind UDP {at}: {e}")))
        })
        .collect();
    let mut driver = Driver::new(device, &iface);
    let mut stats = args.observe.stats_timer(clock.now());
    let addrs: Vec<String> = iface
        .config()
        .addrs
        .iter()
        .map(|a| a.to_string())
        .chain(iface.config().addrs_v6.iter().map(|a| a.to_string()))
        .collect();
    eprintln!(
        "udpecho: echoing UDP port {} on {} ({:?}, mtu {})",
        args.port,
        addrs.join(", "),
        iface.config().medium,
        iface.config().mtu
    );
    let mut buf = vec![0u8; 65536];
    let mut dropped = 0u64;
    loop {
        let now = clock.now();
        if let Err(e) = driver.poll(&mut iface, now) {
            fail("udpecho", format!("device error: {e}"));
        }
        // Echo everything that arrived, as long as the send queue has room.
        for &sock in &socks {
            while iface
                .udp_socket(sock)
                .is_ok_and(|s| s.can_recv() && s.can_send(65536))
            {
                match iface.udp_recv_from(sock, &mut buf) {
                    Ok((n, from)) => {
                        if iface.udp_send_to(sock, &buf[..n], from).is_err() {
                            dropped += 1;
                        }
                    }
                    // An ICMP error about an earlier echo: nothing to do.
                    Err(_) => continue,
                }
            }
        }
        if let Err(e) = driver.flush(&mut iface, now) {
            fail("udpecho", format!("device error: {e}"));
        }
        let now = clock.now();
        if stats.due(now) {
            eprint!(
                "{}",
                stats_report("udpecho", stats.elapsed_secs(now), &iface)
            );
        }
        let deadline = [driver.poll_at(&iface), stats.deadline()]
            .into_iter()
            .flatten()
            .min();
        if deadline.is_some_and(|d| d <= now) && driver.tx_pending() == 0 {
            continue;
        }
        match driver.wait(now, deadline, &[signals.as_raw_fd()]) {
            Ok(r) if r.extra & 1 != 0 => match signals.read() {
                Some(libc::SIGUSR1) => {
                    eprint!("{}{}", iface.counters().report(), iface.socket_report())
                }
                Some(_) => break,
                None => {}
            },
            Ok(_) => {}
            Err(e) => fail("udpecho", format!("wait failed: {e}")),
        }
    }
    println!("{}", iface.counters().report().trim_end());
    print!("{}", driver.refresh_counters().report());
    println!("    {dropped} echoes dropped (send queue full)");
}
