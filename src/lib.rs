//! ustack: a user-space TCP/IP stack with a sans-IO core.
//!
//! It takes Ethernet or IP frames from a device (TUN/TAP, an `AF_PACKET` raw
//! socket, or an in-memory pipe), runs its own IPv4 and IPv6 (either alone or
//! both), ICMP, ARP, neighbour discovery, UDP and TCP,
//! and gives applications sockets shaped like `std::net`.
//!
//! # Layers
//!
//! * [`wire`]: zero-copy views and builders for each header.
//! * [`link`]: the vocabulary of a link that the core and the devices
//!   share ([`link::Medium`], [`link::DeviceCaps`], [`link::FrameBatch`] and
//!   the offload metadata of its frames), the impairment engine
//!   ([`link::impair`]) and the seeded generator ([`link::Rng`]); no I/O.
//!   `phy` re-exports the vocabulary under its older paths.
//! * [`phy`]: devices, which move batches of frames ([`phy::Device`]):
//!   TUN/TAP, raw sockets, in-memory pipes, a pcap recorder and an
//!   impairment layer (loss, delay, reordering, rate limits).
//! * [`iface`]: the sans-IO core. An [`iface::Interface`] takes frames and
//!   the time, and produces frames and its next deadline; it never reads a
//!   clock or does I/O. [`tcp`] and [`udp`] are its transports.
//! * [`runtime`]: [`runtime::Driver`] moves frames between a device and an
//!   interface (the single-threaded poll API).
//! * [`stack`] and [`net`]: the threaded runtime (one stack thread per
//!   interface) and `std::net`-shaped sockets on it; with the `tokio`
//!   feature, `net::tokio` has async sockets on the same stack
//!   (`TcpListener`, `TcpStream` with `AsyncRead`/`AsyncWrite` and
//!   `into_split`, `UdpSocket`), woken by the stack thread.
//! * `sim` (feature `sim`): a deterministic network simulator with virtual
//!   time, two interfaces on an impaired link.
//! * `replay` (feature `replay`): packet-capture replay under mutations
//!   with invariant checks (the `pcapreplay` tool and the replay tests), and
//!   the harness of the fuzz targets.
//! * `cli` (feature `tools`): what the bundled tools share (device flags,
//!   logging, signals, reports).
//!
//! # Two API styles
//!
//! **Threaded, `std::net`-shaped** ([`stack::Stack`] + [`net`]): the stack
//! runs on its own thread; [`net::TcpListener`], [`net::TcpStream`] and
//! [`net::UdpSocket`] block like their `std::net` namesakes and can be
//! used from any number of threads. Pick it to port existing blocking code
//! (see `examples/http_server.rs` and `examples/proxy.rs`).
//!
//! ```
//! use std::io::{Read, Write};
//! use ustack::{net::{TcpListener, TcpStream}, phy::{Medium, PipeDevice}, stack::Stack};
//!
//! let (a, b) = PipeDevice::pair(Medium::Ethernet, 1500);
//! let client = Stack::builder(a).addr("10.0.0.1/24".parse().unwrap()).build()?;
//! let server = Stack::builder(b).addr("10.0.0.2/24".parse().unwrap()).build()?;
//!
//! let listener = TcpListener::bind(&server, "0.0.0.0:7")?;
//! let echo = std::thread::spawn(move || -> std::io::Result<()> {
//!     let (mut s, _) = listener.accept()?;
//!     let mut buf = [0u8; 5];
//!     s.read_exact(&mut buf)?;
//!     s.write_all(&buf)
//! });
//! let mut s = TcpStream::connect(&client, "10.0.0.2:7")?;
//! s.write_all(b"hello")?;
//! let mut back = [0u8; 5];
//! s.read_exact(&mut back)?;
//! assert_eq!(&back, b"hello");
//! echo.join().unwrap()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! **Single-threaded poll API** ([`iface::Interface`] + [`runtime::Driver`]):
//! no threads and no locks. You own the interface (the sans-IO core) and
//! the device, and run one loop: [`runtime::Driver::poll`] (frames in,
//! core, frames out), service the sockets that
//! [`iface::Interface::drain_socket_events`] names, then
//! [`runtime::Driver::wait`] on the device's descriptor, your own
//! descriptors and the next deadline ([`runtime::Driver::poll_at`]). Pick
//! it for event loops, many connections, or full control of time (see
//! `examples/poll_loop.rs`, and `tcpecho`). Two interfaces driven by hand:
//!
//! ```
//! use ustack::{iface::{Config, Interface}, phy::{Medium, PipeDevice}, runtime::Driver,
//!              time::{Clock, RealClock}};
//!
//! let (da, db) = PipeDevice::pair(Medium::Ip, 1500);
//! let clock = RealClock::new();
//! let host = |addr: &str| {
//!     let mut c = Config::new(Medium::Ip);
//!     c.addrs.push(addr.parse().unwrap());
//!     Interface::new(c, clock.now())
//! };
//! let (mut a, mut b) = (host("10.0.0.1/24"), host("10.0.0.2/24"));
//! let (mut drv_a, mut drv_b) = (Driver::new(da, &a), Driver::new(db, &b));
//! let sa = a.udp_bind("10.0.0.1:5000".parse().unwrap())?;
//! let sb = b.udp_bind("10.0.0.2:7".parse().unwrap())?;
//! a.udp_send_to(sa, b"ping", "10.0.0.2:7".parse().unwrap())?;
//! let mut buf = [0u8; 64];
//! let mut echoed = None;
//! for _ in 0..1000 {
//!     let now = clock.now();
//!     drv_a.poll(&mut a, now)?;
//!     drv_b.poll(&mut b, now)?;
//!     if let Ok((n, from)) = b.udp_recv_from(sb, &mut buf) {
//!         b.udp_send_to(sb, &buf[..n], from)?; // echo
//!     }
//!     if let Ok((n, _)) = a.udp_recv_from(sa, &mut buf) {
//!         echoed = Some(buf[..n].to_vec());
//!         break;
//!     }
//! }
//! assert_eq!(echoed.as_deref(), Some(&b"ping"[..]));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Both styles run the same core, so counters, `tcp_info` and behaviour
//! are identical; [`stack::Stack::with_interface`] reaches the poll API of
//! a threaded stack.
//!
//! # Choosing a device
//!
//! * **TUN** ([`phy::TunDevice`] with [`phy::TunKind::Tun`]): IPv4 and IPv6
//!   packets, no ARP or neighbour discovery. The simplest way to put the
//!   stack next to the kernel: give the kernel side an address in the same
//!   subnet and route to it.
//! * **TAP** ([`phy::TunKind::Tap`]): Ethernet frames; the stack answers and
//!   sends ARP (IPv4) and neighbour discovery (IPv6) with its own MAC. Use it
//!   to bridge the stack into a virtual L2 network (a Linux bridge, VMs).
//! * **Raw socket** ([`phy::RawSocket`]): `AF_PACKET` on an existing
//!   interface (e.g. one end of a veth pair, or a NIC the kernel does not
//!   use for IP: give it no kernel address, or the two stacks fight over
//!   the same packets). Batched with `recvmmsg`/`sendmmsg`; works at the
//!   interface's default offloads (the kernel's per-frame checksum and
//!   segmentation state through `PACKET_VNET_HDR`, see
//!   [`phy::RawOptions::offload`]).
//! * **In-memory pipe** ([`phy::PipeDevice`]): two stacks in one process,
//!   for tests and simulations; no privileges needed.
//!
//! **Offload.** A TUN or TAP opened with [`phy::TunOptions::offload`]
//! exchanges frames with the kernel behind the virtio-net header: TCP
//! hands it 64 KiB super-segments to cut (TSO), takes its own uncut (GRO),
//! and neither side computes TCP checksums the other trusts — several
//! times the throughput of one frame per system call. Build the
//! interface's configuration with [`iface::Config::for_device`] (or copy
//! [`link::DeviceCaps::offload`] into [`iface::Config::offload`]) so TCP
//! knows; [`stack::StackBuilder`] does it itself. [`phy::PipeDevice`] can
//! offer the same ([`phy::PipeOptions::offload`]).
//!
//! Any of them can be wrapped by [`phy::PcapWriter`] (capture for
//! Wireshark) and [`phy::Impair`] (loss, delay, reordering, rate limit).
//! TUN/TAP/raw need `CAP_NET_ADMIN`/`CAP_NET_RAW`: run in a network
//! namespace of your own.
//!
//! # Congestion control
//!
//! [`tcp::TcpConfig::congestion`] names the controller for new connections
//! ([`tcp::cc::AVAILABLE`]): `cubic` (RFC 9438 with HyStart++; the
//! default, as on Linux, and better on long fat paths: high bandwidth ×
//! RTT), `reno` (NewReno, RFC 5681/6582) or `bbr` (BBR v1, paced). Set it on the interface's
//! [`iface::Config::tcp`] before building, or change it for sockets
//! created later with [`iface::Interface::set_tcp_config`]. The tools take
//! `--cc`.
//!
//! # Tuning buffers
//!
//! * [`tcp::TcpConfig::send_buffer`] / [`tcp::TcpConfig::recv_buffer`]
//!   (1 MiB each by default): the receive buffer caps the advertised window,
//!   so a connection's throughput is at most `recv_buffer / RTT`; raise both
//!   to at least the path's bandwidth-delay product (e.g. 100 Mbit/s × 80 ms
//!   = 1 MB).
//! * [`tcp::TcpConfig::nodelay`] turns Nagle off for request/response
//!   traffic that writes small pieces.
//! * [`tcp::TcpConfig::syn_backlog`] and the listener's backlog bound the
//!   SYN and accept queues (SYN cookies take over when the SYN queue fills).
//! * [`udp::UdpConfig`] bounds each UDP socket's queues;
//!   [`iface::Config::tx_queue_frames`] bounds frames waiting for the device.
//!
//! # Observability
//!
//! Everything dropped is counted ([`iface::Interface::counters`],
//! [`iface::Interface::tcp_counters`]), and per connection
//! [`tcp::TcpInfo`] gives state, cwnd, RTT and retransmits. The core also
//! emits [`tracing`](https://docs.rs/tracing) events: `debug` for TCP state
//! transitions (target `ustack::tcp::state`), RTOs (`ustack::tcp::rto`),
//! fast recovery and connection failures, `trace` for every retransmitted
//! segment (`ustack::tcp::retransmit`) and every counted drop
//! (`ustack::drop`, with the counter's name as `reason`). The library
//! installs no subscriber: the application chooses one (the bundled tools
//! take `--log LEVEL` or `RUST_LOG`). With no subscriber, or one that
//! filters them out, the events cost a branch.
//!
//! On a real device, open it with [`phy::TunDevice::open`] (or
//! [`phy::RawSocket::open`]) and build the stack the same way.
//!
//! # Cargo features
//!
//! The default build is the stack alone (its dependencies: `libc`,
//! `tracing` and `tun-rs`); everything else is opt-in:
//!
//! * `tokio`: the async sockets, `ustack::net::tokio` (below).
//! * `sim`: `ustack::sim`, the deterministic simulator (the crate's own
//!   tests use it regardless; the `core` benchmark needs it).
//! * `replay`: `ustack::replay` (pulls in `proptest`).
//! * `tools`: the four binaries (`udpecho`, `tcpecho`, `ucat`, `pcapreplay`)
//!   and `ustack::cli`, with `clap` and `tracing-subscriber`; implies
//!   `replay`. `cargo install ustack --features tools` installs the tools,
//!   and the examples that take the tools' flags need it too.
//!
//! # Async (tokio)
//!
//! The `tokio` cargo feature (off by default) adds `ustack::net::tokio`:
//! the same sockets for async code, `TcpStream::connect(&stack, addr).await`,
//! `listener.accept().await`, `tokio::io::AsyncRead`/`AsyncWrite`,
//! `udp.recv_from(&mut buf).await`. The README's "Async API (tokio)"
//! section has a complete example, `examples/async_echo.rs` a server on a
//! TUN device.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "tools")]
pub mod cli;
pub mod iface;
pub mod link;
pub mod net;
pub mod phy;
#[cfg(any(test, feature = "replay"))]
pub mod replay;
pub mod runtime;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod socket;
pub mod stack;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;

/// The README's examples, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod testkit;
