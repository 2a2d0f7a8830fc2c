//! What the bundled tools share: the device flags, opening the device stack
//! (device, optional impairment, optional capture), and signal handling.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::iface::{Config, Ipv4Cidr};
use crate::phy::impair::{Impair, ImpairSpec};
use crate::phy::pcap::PcapWriter;
use crate::phy::raw::{RawOptions, RawSocket};
use crate::phy::tun::{TunDevice, TunKind, TunOptions};
use crate::phy::Device;
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
    /// (e.g. one end of a veth pair; give it no kernel address).
    #[arg(long, value_name = "IFNAME", group = "device")]
    pub raw: Option<String>,
    /// The stack's address and prefix, e.g. 10.0.0.2/24.
    #[arg(long, value_name = "IP/PREFIX", required = true)]
    pub addr: Vec<Ipv4Cidr>,
    /// Default gateway for off-link destinations.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,
    /// MTU to set on a created TUN/TAP device (default: the device's).
    #[arg(long, value_name = "N")]
    pub mtu: Option<usize>,
    /// The stack's own MAC on Ethernet media (default: random for TAP, the
    /// interface's own for --raw).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<EthernetAddress>,
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
}

/// A device as the tools use it.
pub type BoxDevice = Box<dyn Device + Send>;

impl DeviceArgs {
    /// Opens the device (with impairment and capture layers when asked) and
    /// returns it with an interface configuration matching it.
    pub fn open(&self) -> io::Result<(BoxDevice, Config)> {
        let mut dev: BoxDevice = if let Some(name) = &self.tun {
            Box::new(TunDevice::open(name, TunKind::Tun, &self.tun_options())?)
        } else if let Some(name) = &self.tap {
            Box::new(TunDevice::open(name, TunKind::Tap, &self.tun_options())?)
        } else if let Some(name) = &self.raw {
            Box::new(RawSocket::open(
                name,
                &RawOptions {
                    hardware_addr: self.mac,
                },
            )?)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no device: give one of --tun NAME, --tap NAME or --raw IFNAME",
            ));
        };
        // Capture sits next to the device, so it shows what the wire sees
        // (after impairment on the way out, before it on the way in).
        if let Some(path) = &self.pcap {
            let w = PcapWriter::create(dev, path)?;
            dev = Box::new(w);
        }
        if let Some(spec) = &self.impair {
            dev = Box::new(Impair::new(dev, *spec, self.seed));
        }
        let caps = dev.caps();
        let mut config = Config::new(caps.medium);
        config.mtu = caps.mtu;
        config.hardware_addr = self.mac.or(caps.hardware_addr);
        config.addrs = self.addr.clone();
        config.gateway = self.gateway;
        config.seed = self.seed;
        Ok((dev, config))
    }

    fn tun_options(&self) -> TunOptions {
        TunOptions {
            mtu: self.mtu,
            hardware_addr: self.mac,
            tx_queue_len: Some(TunOptions::DEFAULT_TX_QUEUE_LEN),
            ..TunOptions::default()
        }
    }
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
    std::process::exit(1)
}
