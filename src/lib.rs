//! ustack: a user-space TCP/IP stack with a sans-IO core.
//!
//! It takes Ethernet or IP frames from a device (TUN/TAP, an `AF_PACKET` raw
//! socket, or an in-memory pipe), runs its own IPv4, ICMP, ARP, UDP and TCP,
//! and gives applications sockets shaped like `std::net`.
//!
//! # Layers
//!
//! * [`wire`]: zero-copy views and builders for each header.
//! * [`phy`]: devices, which move batches of frames ([`phy::Device`]):
//!   TUN/TAP, raw sockets, in-memory pipes, a pcap recorder and an
//!   impairment layer (loss, delay, reordering, rate limits).
//! * [`iface`]: the sans-IO core. An [`iface::Interface`] takes frames and
//!   the time, and produces frames and its next deadline; it never reads a
//!   clock or does I/O. [`tcp`] and [`udp`] are its transports.
//! * [`runtime`]: [`runtime::Driver`] moves frames between a device and an
//!   interface (the single-threaded poll API).
//! * [`stack`] and [`net`]: the threaded runtime (one stack thread per
//!   interface) and `std::net`-shaped sockets on it.
//! * [`sim`]: a deterministic network simulator with virtual time.
//! * [`replay`]: packet-capture replay under mutations with invariant
//!   checks (the `pcapreplay` tool and the replay tests), and the harness of
//!   the fuzz targets.
//!
//! # Example: two stacks on an in-memory link
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
//! On a real device, open it with [`phy::TunDevice::open`] (or
//! [`phy::RawSocket::open`]) and build the stack the same way.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod cli;
pub mod iface;
pub mod net;
pub mod phy;
pub mod replay;
pub mod runtime;
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
