//! udpecho: echoes every UDP datagram it receives and answers ping, on a
//! TUN, TAP or raw-socket device, using the single-threaded poll API. With
//! `--queues N`, N stacks on N queues of a multi-queue TUN/TAP device, one
//! thread each.

use std::net::SocketAddr;

use ustack::cli::{
    fail, parse_args, run_queues, signal_report, stats_report, BoxDevice, Command, Control,
    DeviceArgs, ObserveArgs, SignalFd, StatsTimer,
};
use ustack::iface::{Config, Counters, Interface};
use ustack::runtime::{Driver, DriverCounters};
use ustack::socket::SocketHandle;
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
    /// Open N queues of a multi-queue TUN/TAP device and run one stack per
    /// queue, each on its own thread (see tcpecho --help). 1, the default,
    /// opens an ordinary single-queue device.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    queues: u16,
    /// Busy polling: before sleeping, keep checking the device for this
    /// many microseconds (as Linux's SO_BUSY_POLL), so a frame that comes
    /// meanwhile costs no wake-up. Costs a busy CPU: for a stack thread with
    /// a core of its own. Default 0 (off).
    #[arg(long, value_name = "USEC", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    busy_poll: u32,
}

/// One stack on one device (queue).
struct Queue {
    iface: Interface,
    driver: Driver<BoxDevice>,
    socks: Vec<SocketHandle>,
    stats: StatsTimer,
    clock: RealClock,
    label: String,
    dropped: u64,
}

impl Queue {
    fn new(args: &Args, device: BoxDevice, config: Config, label: String) -> Queue {
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
        driver.set_busy_poll(std::time::Duration::from_micros(args.busy_poll as u64));
        Queue {
            iface,
            driver,
            socks,
            stats: args.observe.stats_timer(clock.now()),
            clock,
            label,
            dropped: 0,
        }
    }
}

/// The echo loop of one stack, until `control` says stop.
fn serve(_index: usize, q: &mut Queue, control: &Control<'_>) {
    let Queue {
        iface,
        driver,
        socks,
        stats,
        clock,
        label,
        dropped,
    } = q;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = clock.now();
        if let Err(e) = driver.poll(iface, now) {
            fail("udpecho", format!("device error: {e}"));
        }
        // Echo everything that arrived, as long as the send queue has room.
        for &sock in socks.iter() {
            while iface
                .udp_socket(sock)
                .is_ok_and(|s| s.can_recv() && s.can_send(65536))
            {
                match iface.udp_recv_from(sock, &mut buf) {
                    Ok((n, from)) => {
                        if iface.udp_send_to(sock, &buf[..n], from).is_err() {
                            *dropped += 1;
                        }
                    }
                    // An ICMP error about an earlier echo: nothing to do.
                    Err(_) => continue,
                }
            }
        }
        if let Err(e) = driver.flush(iface, now) {
            fail("udpecho", format!("device error: {e}"));
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
                Some(Command::Report) => eprint!("{}", signal_report(label, iface, "")),
                Some(Command::Stop) => break,
                None => {}
            },
            Ok(_) => {}
            Err(e) => fail("udpecho", format!("wait failed: {e}")),
        }
    }
}

fn main() {
    let args: Args = parse_args("udpecho");
    if let Err(e) = args.observe.init_logging() {
        fail("udpecho", e);
    }
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])
        .unwrap_or_else(|e| fail("udpecho", format!("cannot set up signals: {e}")));
    let n = usize::from(args.queues);
    let devices = args.device.open_n(n).unwrap_or_else(|e| fail("udpecho", e));
    let queues: Vec<Queue> = devices
        .into_iter()
        .enumerate()
        .map(|(i, (device, config))| {
            Queue::new(
                &args,
                device,
                config,
                ustack::cli::queue_label("udpecho", i, n),
            )
        })
        .collect();
    let config = queues[0].iface.config();
    eprintln!(
        "udpecho: echoing UDP port {} on {} ({:?}, mtu {}{})",
        args.port,
        ustack::cli::addr_list(config),
        config.medium,
        config.mtu,
        if n > 1 {
            format!(", {n} queues")
        } else {
            String::new()
        }
    );
    let mut queues = run_queues("udpecho", &signals, queues, serve)
        .unwrap_or_else(|e| fail("udpecho", format!("cannot run the queues: {e}")));
    let mut counters = Counters::default();
    let mut device = DriverCounters::default();
    let mut dropped = 0;
    let mut lines = String::new();
    for (i, q) in queues.iter_mut().enumerate() {
        let d = q.driver.refresh_counters().clone();
        let u = &q.iface.counters().udp;
        lines.push_str(&format!(
            "    queue {i}: {} packets received, {} packets sent, {} frames read, {} frames written\n",
            u.in_datagrams, u.out_datagrams, d.rx_frames, d.tx_frames
        ));
        counters.add(q.iface.counters());
        device.add(&d);
        dropped += q.dropped;
    }
    println!("{}", counters.report().trim_end());
    print!("{}", device.report());
    println!("    {dropped} echoes dropped (send queue full)");
    if n > 1 {
        print!("Queues ({n}):\n{lines}");
    }
}
