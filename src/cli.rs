//! What the bundled tools share: the device flags, opening the device stack
//! (device, optional impairment, optional capture), signal handling, and
//! observability (log subscriber, periodic counters, SIGUSR1 reports).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::iface::{Config, Interface, IpCidr, TcpCounters};
use crate::phy::impair::{Impair, ImpairSpec};
use crate::phy::pcap::PcapWriter;
use crate::phy::raw::{RawOptions, RawSocket};
use crate::phy::tun::{TunDevice, TunKind, TunOptions};
use crate::phy::Device;
use crate::stack::Stack;
use crate::wire::EthernetAddress;

/// Device flags shared by every bundled tool.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// Run on this TUN device (IP packets), creating it when absent.
    #[arg(long, value_name = "NAME", group = "device")]
    pub tun: Option<String>,
    /// Run on this TAP device (Ethernet frames, ARP), creating it when absent.
    #[arg(long, value_name = "NAME", group = "device")]
    pub tap: Option<String>,
    /// Run on an existing interface through an AF_PACKET raw socket
    /// (e.g. one end of a veth pair; give it no kernel address). Works at
    /// the interface's default offloads: the kernel's per-frame checksum
    /// and segmentation state comes with each frame (PACKET_VNET_HDR).
    #[arg(long, value_name = "IFNAME", group = "device")]
    pub raw: Option<String>,
    /// The stack's address and prefix, e.g. 10.0.0.2/24 or fd00::2/64;
    /// give it more than once for several. IPv4 only, IPv6 only, or both
    /// (a dual stack), on every device kind (TUN, TAP, raw); servers
    /// listen on every family given.
    #[arg(long, value_name = "IP/PREFIX", required = true)]
    pub addr: Vec<IpCidr>,
    /// Default IPv4 gateway for off-link destinations; it must lie in the
    /// subnet of one of the --addr given (IPv6 has no default router yet:
    /// on TAP and raw devices it reaches on-link destinations only).
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,
    /// MTU to set on a created TUN/TAP device (default: the device's).
    #[arg(long, value_name = "N")]
    pub mtu: Option<usize>,
    /// The stack's own MAC on Ethernet media, unicast (default: random for
    /// TAP, the interface's own for --raw).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<EthernetAddress>,
    /// Keep a TUN/TAP this tool creates after it exits (TUNSETPERSIST), so
    /// kernel-side addresses given to it stay for the next run; remove it
    /// with `ip link del NAME`. A device made beforehand with `ip tuntap
    /// add dev NAME mode tun` (or `mode tap`) persists anyway: the tool
    /// attaches to it and leaves it in place.
    #[arg(long)]
    pub persist: bool,
    /// Record every frame in and out to this pcap file (tshark/Wireshark).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Impair the link, both directions, e.g.
    /// "delay=10ms,jitter=2ms,loss=0.5%,reorder=1%,dup=0.1%,corrupt=0.01%,rate=100mbit,queue=256kb".
    #[arg(long, value_name = "SPEC")]
    pub impair: Option<ImpairSpec>,
    /// Seed of the impairment layer and of the stack's randomness.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// TCP offload on a TUN/TAP device or raw socket (virtio-net header:
    /// the kernel cuts the stack's 64 KiB super-segments, hands over its
    /// own uncut, and completes checksums). Default: on where the device
    /// allows it and no --impair is given; `on` fails when the kernel
    /// refuses it. With `off` a raw socket cuts the kernel's super-segments
    /// and completes its checksums itself.
    #[arg(long, value_name = "on|off")]
    pub offload: Option<OnOff>,
}

/// A switch given as `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// A device as the tools use it.
pub type BoxDevice = Box<dyn Device + Send>;

impl DeviceArgs {
    /// Opens the device (with impairment and capture layers when asked) and
    /// returns it with an interface configuration matching it.
    pub fn open(&self) -> io::Result<(BoxDevice, Config)> {
        self.check()?;
        let mut dev: BoxDevice = if let Some(name) = &self.tun {
            Box::new(self.open_tun(name, TunKind::Tun)?)
        } else if let Some(name) = &self.tap {
            Box::new(self.open_tun(name, TunKind::Tap)?)
        } else if let Some(name) = &self.raw {
            Box::new(self.with_offload(|o| {
                RawSocket::open(
                    name,
                    &RawOptions {
                        hardware_addr: self.mac,
                        offload: o.offload,
                    },
                )
            })?)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no device: give one of --tun NAME, --tap NAME or --raw IFNAME",
            ));
        };
        // Capture sits next to the device, so it shows what the wire sees
        // (after impairment on the way out, before it on the way in).
        if let Some(path) = &self.pcap {
            let w = PcapWriter::new(dev, CaptureFile::create(path)?)?;
            dev = Box::new(w);
        }
        if let Some(spec) = &self.impair {
            dev = Box::new(Impair::new(dev, *spec, self.seed));
        }
        let config = self.config_for(dev.caps());
        Ok((dev, config))
    }

    /// Opens the device as one stack ([`DeviceArgs::open`], `n` = 1) or as
    /// `n` queues of a multi-queue device ([`DeviceArgs::open_queues`]):
    /// what the tools' `--queues N` opens.
    pub fn open_n(&self, n: usize) -> io::Result<Vec<(BoxDevice, Config)>> {
        if n == 1 {
            Ok(vec![self.open()?])
        } else {
            self.open_queues(n)
        }
    }

    /// Opens `n` queues of one multi-queue TUN or TAP device
    /// ([`TunDevice::open_queues`]), each with its own impairment layer
    /// when asked (seeded `--seed` + queue index), and a configuration per
    /// queue: the same addresses, and the stack's seed also plus the queue
    /// index. `--raw` and `--pcap` are refused: one stack per queue is for
    /// TUN/TAP, and a capture would need a file per queue.
    pub fn open_queues(&self, n: usize) -> io::Result<Vec<(BoxDevice, Config)>> {
        self.check()?;
        if self.pcap.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--pcap records a single device: not with several queues",
            ));
        }
        let queues = if let Some(name) = &self.tun {
            self.with_offload(|o| TunDevice::open_queues(name, TunKind::Tun, o, n))?
        } else if let Some(name) = &self.tap {
            self.with_offload(|o| TunDevice::open_queues(name, TunKind::Tap, o, n))?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "several queues need a multi-queue device: --tun NAME or --tap NAME",
            ));
        };
        Ok(queues
            .into_iter()
            .enumerate()
            .map(|(i, q)| {
                let seed = self.seed.wrapping_add(i as u64);
                let mut config = self.config_for(q.caps());
                config.seed = seed;
                let dev: BoxDevice = match &self.impair {
                    Some(spec) => Box::new(Impair::new(q, *spec, seed)),
                    None => Box::new(q),
                };
                (dev, config)
            })
            .collect())
    }

    /// Refuses flags that cannot work, before any device is opened: a
    /// `--gateway` outside every `--addr` subnet, a `--mac` that is not
    /// unicast ([`Config::validate`]), `--persist` without TUN/TAP.
    pub fn check(&self) -> io::Result<()> {
        if self.persist && self.raw.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--persist keeps a TUN/TAP device the tool creates: not with --raw",
            ));
        }
        let caps = crate::phy::DeviceCaps {
            medium: crate::phy::Medium::Ethernet,
            mtu: 1500,
            hardware_addr: None,
            offload: Default::default(),
        };
        self.config_for(caps).validate_as("--gateway", "--mac")
    }

    /// The interface configuration for a device with `caps`.
    fn config_for(&self, caps: crate::phy::DeviceCaps) -> Config {
        let mut config = Config::for_device(caps);
        config.hardware_addr = self.mac.or(caps.hardware_addr);
        config.addrs = self
            .addr
            .iter()
            .filter_map(|a| match a {
                IpCidr::V4(c) => Some(*c),
                IpCidr::V6(_) => None,
            })
            .collect();
        config.addrs_v6 = self
            .addr
            .iter()
            .filter_map(|a| match a {
                IpCidr::V6(c) => Some(*c),
                IpCidr::V4(_) => None,
            })
            .collect();
        config.gateway = self.gateway;
        config.seed = self.seed;
        config
    }

    fn tun_options(&self, offload: bool) -> TunOptions {
        TunOptions {
            mtu: self.mtu,
            hardware_addr: self.mac,
            offload,
            persist: self.persist,
            ..TunOptions::default()
        }
    }

    /// True when the impairment layer will do anything.
    fn impaired(&self) -> bool {
        self.impair.is_some_and(|s| !s.is_passthrough())
    }

    /// Opens the TUN/TAP device with offload as asked: `on` insists,
    /// `off` does without, the default tries and falls back.
    fn open_tun(&self, name: &str, kind: TunKind) -> io::Result<TunDevice> {
        self.with_offload(|opts| TunDevice::open(name, kind, opts))
    }

    /// Runs `open` with the TUN options the offload choice asks for (see
    /// [`DeviceArgs::open_tun`]).
    fn with_offload<T>(&self, open: impl Fn(&TunOptions) -> io::Result<T>) -> io::Result<T> {
        match self.offload {
            Some(OnOff::On) if self.impaired() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--offload on cannot go with --impair (impairment works on wire frames, not super-segments)",
            )),
            Some(OnOff::On) => open(&self.tun_options(true)),
            Some(OnOff::Off) => open(&self.tun_options(false)),
            None if self.impaired() => open(&self.tun_options(false)),
            None => match open(&self.tun_options(true)) {
                Ok(d) => Ok(d),
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    tracing::warn!("offload unavailable ({e}); going on without it");
                    open(&self.tun_options(false))
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// The name a tool's stack goes by in its messages: the tool's, and with
/// several queues the queue's too.
pub fn queue_label(tool: &str, i: usize, n: usize) -> String {
    if n == 1 {
        tool.to_string()
    } else {
        format!("{tool} queue {i}")
    }
}

/// The interface's addresses, IPv4 then IPv6, as `a/p, b/q`.
pub fn addr_list(config: &Config) -> String {
    config
        .addrs
        .iter()
        .map(|a| a.to_string())
        .chain(config.addrs_v6.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Signals delivered through a file descriptor, so the tools' poll loop
/// sees them like any other event. Blocks the signals for the calling
/// thread (call before spawning threads so they inherit the mask).
pub struct SignalFd {
    fd: RawFd,
}

impl SignalFd {
    /// Routes `signals` to a new descriptor.
    pub fn new(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        // SAFETY: sigset operations on a zeroed local set; sigprocmask and
        // signalfd with valid pointers.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd { fd })
        }
    }

    /// The descriptor.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd
    }

    /// The next pending signal, if any.
    pub fn read(&self) -> Option<libc::c_int> {
        // SAFETY: reads one signalfd_siginfo into a zeroed local.
        unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let n = libc::read(
                self.fd,
                &mut info as *mut _ as *mut libc::c_void,
                std::mem::size_of::<libc::signalfd_siginfo>(),
            );
            (n == std::mem::size_of::<libc::signalfd_siginfo>() as isize)
                .then_some(info.ssi_signo as libc::c_int)
        }
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}

/// The wildcard addresses the servers bind, one per family the interface
/// has addresses of: `0.0.0.0` for IPv4 (also when it has none at all),
/// `[::]` for IPv6 (IPv6-only sockets by default, so the two share a
/// port).
pub fn wildcards(config: &Config) -> Vec<IpAddr> {
    let mut any = Vec::with_capacity(2);
    if !config.addrs.is_empty() || config.addrs_v6.is_empty() {
        any.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    if !config.addrs_v6.is_empty() {
        any.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    }
    any
}

/// For servers on the threaded [`Stack`]: a TCP listener on `port` at each
/// of [`wildcards`]`(config)`, so that every address family given is
/// served. The error is one line naming the address.
pub fn listen_wildcards(
    stack: &Stack,
    config: &Config,
    port: u16,
    backlog: usize,
) -> Result<Vec<crate::net::TcpListener>, String> {
    wildcards(config)
        .into_iter()
        .map(|ip| {
            let at = std::net::SocketAddr::new(ip, port);
            crate::net::TcpListener::bind_with_backlog(stack, at, backlog)
                .map_err(|e| format!("cannot listen on TCP {at}: {e}"))
        })
        .collect()
}

/// Parses the command line; a usage error is one line on stderr and exit
/// status 2 (`--help` and `--version` print as usual and exit 0).
pub fn parse_args<T: clap::Parser>(tool: &str) -> T {
    match T::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                e.exit();
            }
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut first = lines
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ")
                .to_string();
            if first.ends_with(':') {
                // "the following required arguments were not provided:"
                if let Some(next) = lines.next() {
                    first = format!("{first} {next}");
                }
            }
            eprintln!("{tool}: {first} (see {tool} --help)");
            std::process::exit(2)
        }
    }
}

/// Prints `msg` as the tool's one-line error and exits with status 1.
pub fn fail(tool: &str, msg: impl std::fmt::Display) -> ! {
    eprintln!("{tool}: {msg}");
    exit(1)
}

/// Ends the process with `code` after flushing every open `--pcap`
/// capture ([`flush_captures`]): what the tools call instead of
/// `std::process::exit`, which runs no destructor, so a capture still
/// owned by a stack thread would lose its buffered end.
///
/// It does not flush stdout: another thread may hold it locked (`ucat`'s
/// receiving thread does for the whole transfer), so a caller that
/// printed to stdout flushes it itself first.
pub fn exit(code: i32) -> ! {
    flush_captures();
    std::process::exit(code)
}

/// The capture files the tools opened (`--pcap`), flushed on every way
/// out of the process.
static CAPTURES: Mutex<Vec<Weak<Mutex<BufWriter<File>>>>> = Mutex::new(Vec::new());

/// A `--pcap` file: a buffered file that the process can flush from any
/// thread on its way out ([`flush_captures`], [`exit`], [`fail`]), while
/// the thread that owns the device goes on writing. The capture writes
/// each record in one call ([`crate::phy::pcap::Writer::write_packet`]),
/// so a flush always ends the file on a record boundary.
#[derive(Debug, Clone)]
pub struct CaptureFile(Arc<Mutex<BufWriter<File>>>);

impl CaptureFile {
    /// Creates (or truncates) the file at `path` and registers it.
    pub fn create(path: &Path) -> io::Result<CaptureFile> {
        let file = File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create capture file {}: {e}", path.display()),
            )
        })?;
        let f = Arc::new(Mutex::new(BufWriter::with_capacity(256 << 10, file)));
        let mut all = CAPTURES.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&f));
        Ok(CaptureFile(f))
    }

    fn file(&self) -> std::sync::MutexGuard<'_, BufWriter<File>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Write for CaptureFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

/// Flushes every capture file the process has open (see [`CaptureFile`]).
pub fn flush_captures() {
    let all = CAPTURES.lock().unwrap_or_else(|e| e.into_inner());
    for f in all.iter().filter_map(Weak::upgrade) {
        let _ = f.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

/// The `--help` epilogue of the poll-loop tools and the examples: what
/// the signals do and how logging is enabled.
pub const SIGNALS_HELP: &str =
    "Signals: SIGUSR1 prints the counters and the socket table to stderr and \
carries on; SIGINT and SIGTERM print the counters to stdout and exit 0.\n\
Logging: --log LEVEL, or RUST_LOG=LEVEL in the environment (e.g. RUST_LOG=ustack::tcp=debug).";

/// Observability flags shared by every bundled tool: logging of the stack's
/// `tracing` events and periodic counters.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObserveArgs {
    /// Log the stack's tracing events to stderr at this level or filter
    /// (error, warn, info, debug, trace, or e.g. "ustack::tcp=debug"; TCP
    /// state changes and RTOs are debug, retransmissions and drops trace).
    /// Without it, RUST_LOG is used when set; otherwise nothing is logged.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Print the stack's counters to stderr every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub stats_interval: Option<std::time::Duration>,
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => {
            Ok(std::time::Duration::from_secs_f64(v))
        }
        _ => Err(format!(
            "'{s}' is not an interval in seconds (a number > 0)"
        )),
    }
}

impl ObserveArgs {
    /// Installs a `tracing` subscriber writing to stderr when `--log` or
    /// `RUST_LOG` asks for one; does nothing otherwise (the library itself
    /// never installs one).
    pub fn init_logging(&self) -> Result<(), String> {
        use tracing_subscriber::EnvFilter;
        let filter = match &self.log {
            Some(f) => EnvFilter::try_new(f).map_err(|e| format!("--log '{f}': {e}"))?,
            None => match std::env::var("RUST_LOG") {
                Ok(v) if !v.trim().is_empty() => {
                    EnvFilter::try_new(&v).map_err(|e| format!("RUST_LOG '{v}': {e}"))?
                }
                _ => return Ok(()),
            },
        };
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(io::stderr)
            .with_ansi(false)
            .try_init()
            .map_err(|e| format!("cannot install the log subscriber: {e}"))
    }

    /// A timer for `--stats-interval` on the core's clock (never due when
    /// the flag is absent).
    pub fn stats_timer(&self, now: crate::time::Instant) -> StatsTimer {
        StatsTimer {
            period: self.stats_interval,
            next: self.stats_interval.map(|p| now + p),
            start: now,
        }
    }
}

/// When the next periodic counters report is due (see
/// [`ObserveArgs::stats_interval`]).
#[derive(Debug, Clone)]
pub struct StatsTimer {
    period: Option<std::time::Duration>,
    next: Option<crate::time::Instant>,
    start: crate::time::Instant,
}

impl StatsTimer {
    /// The next report's deadline, to include in the poll loop's wait.
    pub fn deadline(&self) -> Option<crate::time::Instant> {
        self.next
    }

    /// True (once per period) when a report is due at `now`.
    pub fn due(&mut self, now: crate::time::Instant) -> bool {
        match (self.next, self.period) {
            (Some(next), Some(period)) if now >= next => {
                // Skip missed periods rather than bursting.
                let mut n = next + period;
                while n <= now {
                    n += period;
                }
                self.next = Some(n);
                true
            }
            _ => false,
        }
    }

    /// Seconds since the timer started, for the report's header.
    pub fn elapsed_secs(&self, now: crate::time::Instant) -> f64 {
        now.saturating_duration_since(self.start).as_secs_f64()
    }
}

/// The TCP counters as `netstat -s`-like text.
pub fn tcp_report(iface: &Interface) -> String {
    tcp_report_from(
        iface.tcp_counters(),
        iface.tcp_curr_estab(),
        iface.tcp_time_wait_len(),
    )
}

/// [`tcp_report`] from the counters and the two gauges (established
/// connections, TIME-WAIT entries), e.g. totals over several interfaces.
pub fn tcp_report_from(t: &TcpCounters, curr_estab: usize, time_wait: usize) -> String {
    format!(
        "Tcp:\n    {} active connection openings\n    {} passive connection openings\n    {} failed connection attempts\n    {} connection resets received\n    {} connections established\n    {} segments received\n    {} segments sent out\n    {} segments retransmitted\n    {} bad segments received\n    {} with bad checksum\n    {} resets sent\n    {} SYNs to LISTEN sockets dropped (accept queue full)\n    {} segments for no socket\n    {} SYN cookies sent\n    {} SYN cookies received\n    {} invalid SYN cookies received\n    {} connections in TIME-WAIT\n    {} path MTU updates (ICMP fragmentation needed / packet too big)\n    {} of those ignored: {} no connection, {} sequence not in flight, {} below the floor, {} not smaller\n",
        t.active_opens,
        t.passive_opens,
        t.attempt_fails,
        t.estab_resets,
        curr_estab,
        t.in_segs,
        t.out_segs,
        t.retrans_segs,
        t.in_errs,
        t.in_csum_errors,
        t.out_rsts,
        t.listen_overflows,
        t.no_socket,
        t.syncookies_sent,
        t.syncookies_recv,
        t.syncookies_failed,
        time_wait,
        t.pmtu_updates,
        t.pmtu_unmatched + t.pmtu_bad_seq + t.pmtu_below_floor + t.pmtu_not_smaller,
        t.pmtu_unmatched,
        t.pmtu_bad_seq,
        t.pmtu_below_floor,
        t.pmtu_not_smaller,
    )
}

/// One periodic report: a header line with the elapsed time, then every
/// counter of the interface (link, ARP, IP, ICMP, UDP, TCP).
pub fn stats_report(tool: &str, elapsed_secs: f64, iface: &Interface) -> String {
    format!(
        "{tool}: stats at {elapsed_secs:.1} s\n{}{}",
        iface.counters().report(),
        tcp_report(iface)
    )
}

/// What a tool's monitor thread ([`spawn_monitor_with`]) does on SIGINT
/// or SIGTERM (when its signals include them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Print the counters to stdout and exit with status 0 (the servers).
    Report,
    /// Exit with status 128 + the signal's number, as a shell reports a
    /// process killed by it, printing nothing to stdout (`ucat`, whose
    /// stdout is the connection's data).
    SignalStatus,
}

/// What SIGUSR1 prints on stderr in every tool and example: a header
/// naming the queue when `label` is one of several ([`queue_label`]), the
/// interface's counters, TCP's, then `extra` (the program's own lines) and
/// the socket table (like `ss -tani`).
pub fn signal_report(label: &str, iface: &Interface, extra: &str) -> String {
    let header = match label.split_once(" queue ") {
        Some((tool, i)) => format!("{tool}: queue {i}:\n"),
        None => String::new(),
    };
    format!(
        "{header}{}{}{extra}{}",
        iface.counters().report(),
        tcp_report(iface),
        iface.socket_report()
    )
}

/// For programs on the threaded [`Stack`]: on the calling thread, prints
/// [`signal_report`] to stderr on SIGUSR1 and [`stats_report`] every
/// `--stats-interval` (each followed by the device's counters: frames
/// read, written, dropped inside the device), until SIGINT or SIGTERM
/// arrives (when `signals` has them), then returns that signal. `signals`
/// must have been created before the stack's thread (or any other) was
/// spawned, so that every thread has them blocked.
pub fn monitor(
    tool: &str,
    stack: &Stack,
    signals: &SignalFd,
    observe: &ObserveArgs,
) -> io::Result<libc::c_int> {
    let mut timer = observe.stats_timer(stack.now());
    loop {
        let now = stack.now();
        if timer.due(now) {
            let r = stack.with_interface(|i| stats_report(tool, timer.elapsed_secs(now), i));
            // Written, not eprint!: a closed stderr must not kill the
            // thread that owns the signals (the process could then not be
            // stopped by SIGINT/SIGTERM).
            let _ = write!(io::stderr(), "{r}{}", stack.driver_counters().report());
        }
        let timeout = timer
            .deadline()
            .map(|d| d.saturating_duration_since(stack.now()));
        let mut fds = [libc::pollfd {
            fd: signals.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        crate::runtime::poll_fds(&mut fds, timeout)?;
        while let Some(sig) = signals.read() {
            if sig == libc::SIGUSR1 {
                let r = stack.with_interface(|i| signal_report(tool, i, ""));
                let _ = write!(io::stderr(), "{r}{}", stack.driver_counters().report());
            } else {
                return Ok(sig);
            }
        }
    }
}

/// [`monitor`] on a thread of its own (`TOOL-monitor`); when SIGINT or
/// SIGTERM ends it (if `signals` has them), prints the counters to stdout
/// and exits the process with status 0 ([`OnStop::Report`]; see
/// [`spawn_monitor_with`]). Runs until the process exits.
pub fn spawn_monitor(
    tool: &'static str,
    stack: std::sync::Arc<Stack>,
    signals: SignalFd,
    observe: &ObserveArgs,
) -> io::Result<()> {
    spawn_monitor_with(tool, stack, signals, observe, OnStop::Report)
}

/// [`spawn_monitor`] with a choice of what SIGINT and SIGTERM do. Either
/// way the `--pcap` capture is flushed before the process exits
/// ([`exit`]).
pub fn spawn_monitor_with(
    tool: &'static str,
    stack: std::sync::Arc<Stack>,
    signals: SignalFd,
    observe: &ObserveArgs,
    on_stop: OnStop,
) -> io::Result<()> {
    let observe = observe.clone();
    std::thread::Builder::new()
        .name(format!("{tool}-monitor"))
        .spawn(move || {
            if let Ok(sig) = monitor(tool, &stack, &signals, &observe) {
                match on_stop {
                    OnStop::Report => {
                        let r = stack.with_interface(|i| {
                            format!("{}{}", i.counters().report(), tcp_report(i))
                        });
                        // A closed stdout (EPIPE) must not keep the
                        // process from exiting.
                        let mut out = io::stdout();
                        let _ = write!(out, "{r}{}", stack.driver_counters().report());
                        let _ = out.flush();
                        exit(0);
                    }
                    OnStop::SignalStatus => exit(128 + sig),
                }
            }
        })?;
    Ok(())
}

/// What the main thread tells a stack loop (see [`Control`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Print the counters and the socket table to stderr (SIGUSR1).
    Report,
    /// Leave the loop (SIGINT, SIGTERM).
    Stop,
}

/// Where a tool's stack loop learns of a [`Command`]: poll
/// [`Control::as_raw_fd`] among the driver's extra descriptors, then call
/// [`Control::read`]. With one stack it is the tool's [`SignalFd`]; with
/// one stack per queue ([`run_queues`]) a pipe from the main thread, which
/// holds the signals.
pub struct Control<'a> {
    fd: RawFd,
    signals: Option<&'a SignalFd>,
}

impl<'a> Control<'a> {
    /// Commands straight from the signals (one stack, on this thread).
    pub fn signals(signals: &'a SignalFd) -> Control<'a> {
        Control {
            fd: signals.as_raw_fd(),
            signals: Some(signals),
        }
    }

    /// The descriptor to poll for readability.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd
    }

    /// The next command, if one is waiting.
    pub fn read(&self) -> Option<Command> {
        if let Some(s) = self.signals {
            return match s.read()? {
                libc::SIGUSR1 => Some(Command::Report),
                _ => Some(Command::Stop),
            };
        }
        let mut b = 0u8;
        // SAFETY: reads one byte from our non-blocking pipe into a local.
        let n = unsafe { libc::read(self.fd, &mut b as *mut u8 as *mut libc::c_void, 1) };
        match n {
            1 if b == b'r' => Some(Command::Report),
            1 => Some(Command::Stop),
            // The main thread's end is gone: stop too.
            0 => Some(Command::Stop),
            _ => None,
        }
    }
}

/// A non-blocking pipe: (read end, write end).
fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array; on success both
    // descriptors are ours and move into OwnedFd.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        ))
    }
}

/// Runs `serve(index, queue, control)` for every queue, each on its own
/// thread (`TOOL-qINDEX`) when there are several (one stack per queue of a
/// multi-queue device), on the calling thread when there is one. The
/// calling thread holds `signals` (created before any thread, so every
/// thread has them blocked): SIGUSR1 becomes [`Command::Report`] for every
/// queue, SIGINT and SIGTERM [`Command::Stop`]. Returns the queues, in
/// order, once every `serve` has returned; a panic in one is resumed here.
pub fn run_queues<Q: Send + 'static>(
    tool: &str,
    signals: &SignalFd,
    mut queues: Vec<Q>,
    serve: fn(usize, &mut Q, &Control<'_>),
) -> io::Result<Vec<Q>> {
    if queues.len() == 1 {
        serve(0, &mut queues[0], &Control::signals(signals));
        return Ok(queues);
    }
    let mut writers = Vec::with_capacity(queues.len());
    let mut threads = Vec::with_capacity(queues.len());
    for (i, mut q) in queues.into_iter().enumerate() {
        let (r, w) = pipe()?;
        writers.push(w);
        let t = std::thread::Builder::new()
            .name(format!("{tool}-q{i}"))
            .spawn(move || {
                use std::os::fd::AsRawFd;
                let control = Control {
                    fd: r.as_raw_fd(),
                    signals: None,
                };
                serve(i, &mut q, &control);
                drop(r);
                q
            })?;
        threads.push(t);
    }
    let tell = |c: u8| {
        for w in &writers {
            use std::os::fd::AsRawFd;
            // SAFETY: writes one byte from a local to our pipe; a full pipe
            // (EAGAIN) already holds commands enough.
            unsafe { libc::write(w.as_raw_fd(), &c as *const u8 as *const libc::c_void, 1) };
        }
    };
    loop {
        let mut fds = [libc::pollfd {
            fd: signals.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // Wakes now and then to notice queues that ended by themselves.
        crate::runtime::poll_fds(&mut fds, Some(std::time::Duration::from_secs(1)))?;
        let mut stop = threads.iter().any(|t| t.is_finished());
        while let Some(sig) = signals.read() {
            if sig == libc::SIGUSR1 {
                tell(b'r');
            } else {
                stop = true;
            }
        }
        if stop {
            tell(b's');
            break;
        }
    }
    let mut out = Vec::with_capacity(threads.len());
    for t in threads {
        match t.join() {
            Ok(q) => out.push(q),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::Medium;

    #[test]
    fn wildcards_follow_the_address_families() {
        let mut c = Config::new(Medium::Ip);
        let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        assert_eq!(wildcards(&c), [v4]);
        c.addrs.push("10.0.0.2/24".parse().unwrap());
        assert_eq!(wildcards(&c), [v4]);
        c.addrs_v6.push("fd00::2/64".parse().unwrap());
        assert_eq!(wildcards(&c), [v4, v6]);
        c.addrs.clear();
        assert_eq!(wildcards(&c), [v6]);
    }

    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Tool {
        #[command(flatten)]
        device: DeviceArgs,
    }

    fn check(args: &[&str]) -> io::Result<()> {
        let t = Tool::try_parse_from(std::iter::once("tool").chain(args.iter().copied()))
            .expect("parses");
        t.device.check()
    }

    /// The device flags that cannot work are refused before any device is
    /// opened, with one line naming the flag.
    #[test]
    fn device_flags_refused_before_opening() {
        check(&[
            "--tap",
            "t0",
            "--addr",
            "10.0.0.2/24",
            "--gateway",
            "10.0.0.1",
        ])
        .unwrap();
        check(&[
            "--tap",
            "t0",
            "--addr",
            "10.0.0.2/24",
            "--mac",
            "02:00:00:00:00:01",
        ])
        .unwrap();
        let e = check(&[
            "--tun",
            "t0",
            "--addr",
            "10.0.0.2/24",
            "--gateway",
            "10.9.0.1",
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--gateway 10.9.0.1 is outside every configured subnet (10.0.0.2/24): it could never be reached"
        );
        // IPv6 addresses alone give an IPv4 gateway no subnet.
        let e = check(&[
            "--tun",
            "t0",
            "--addr",
            "fd00::2/64",
            "--gateway",
            "10.9.0.1",
        ])
        .unwrap_err();
        assert!(e.to_string().starts_with("--gateway 10.9.0.1 needs"), "{e}");
        for mac in [
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "03:00:00:00:00:01",
        ] {
            let e = check(&["--tap", "t0", "--addr", "10.0.0.2/24", "--mac", mac]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(
                e.to_string().starts_with(&format!("--mac {mac} is ")),
                "{e}"
            );
        }
        let e = check(&["--raw", "veth0", "--addr", "10.0.0.2/24", "--persist"]).unwrap_err();
        assert!(e.to_string().contains("not with --raw"), "{e}");
        // `open` refuses them too, before touching a device.
        let t = Tool::try_parse_from([
            "tool",
            "--tun",
            "a/b",
            "--addr",
            "10.0.0.2/24",
            "--mac",
            "ff:ff:ff:ff:ff:ff",
        ])
        .unwrap();
        let e = t.device.open().err().expect("refused");
        assert!(e.to_string().starts_with("--mac "), "{e}");
    }
}
