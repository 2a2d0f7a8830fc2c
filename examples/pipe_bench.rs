//! In-memory bulk throughput, no device and no system call per frame: a
//! ustack client and server over the pipe device ([`PipeDevice`], MTU 1500,
//! both driven by one thread), and the same for two smoltcp interfaces over
//! an in-memory link of the same MTU (smoltcp's own `Loopback` has one end
//! and a 64 KiB MTU, so a two-ended queue like ustack's pipe is used
//! instead). One connection, the client writes as fast as it can, the
//! server reads and discards; prints one `key=value` line per stack.
//!
//! Both applications copy their data in and out (ustack's `tcp_send` /
//! `tcp_recv`; smoltcp's `send_slice` / `recv_slice`), as a `std::net`
//! application does. Further rows: smoltcp with its zero-copy closures
//! (`send(|buf| ..)`, `recv(|buf| ..)`: no application copy at all), and
//! both stacks with 64 KiB frames — ustack's pipe with offload (TCP
//! super-segments, checksums left partial, as a TUN with the virtio-net
//! header or Linux's loopback), smoltcp with a 65,535-byte MTU.
//!
//! `pipe_bench [ustack|ustack-offload|smoltcp|smoltcp-zerocopy|smoltcp-64k|both|all] [SECS]`
//! (`both`: ustack and smoltcp; `all`: every row)
//!
//! Bounded in time (SECS, default 3) and in memory.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant as StdInstant};

use ustack::iface::{Config, Interface};
use ustack::phy::{Medium, PipeDevice, PipeOptions};
use ustack::runtime::Driver;
use ustack::time::{Clock, RealClock};

const MTU: usize = 1500;

fn ustack_bulk(secs: f64, offload: bool) -> String {
    let mut opts = PipeOptions::new(Medium::Ip, MTU);
    opts.offload = offload;
    let (da, db) = PipeDevice::pair_with(opts).expect("pipe");
    let clock = RealClock::new();
    let offload_caps = ustack::phy::Device::caps(&da).offload;
    let host = |addr: &str| {
        let mut c = Config::new(Medium::Ip);
        c.addrs.push(addr.parse().unwrap());
        c.offload = offload_caps;
        Interface::new(c, clock.now())
    };
    let (mut a, mut b) = (host("10.0.0.1/24"), host("10.0.0.2/24"));
    let (mut drv_a, mut drv_b) = (Driver::new(da, &a), Driver::new(db, &b));
    let l = b
        .tcp_listen("10.0.0.2:9".parse::<SocketAddr>().unwrap(), 16)
        .unwrap();
    let c = a
        .tcp_connect("10.0.0.2:9".parse().unwrap(), None, clock.now())
        .unwrap();
    let chunk = vec![0x5au8; 1 << 16];
    let mut buf = vec![0u8; 1 << 16];
    let mut server = None;
    let t0 = StdInstant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut got = 0u64;
    let mut iters = 0u64;
    while StdInstant::now() < end {
        iters += 1;
        let now = clock.now();
        let _ = drv_a.poll(&mut a, now);
        let _ = drv_b.poll(&mut b, now);
        if server.is_none() {
            server = b.tcp_accept(l).ok().map(|(h, _)| h);
        }
        while a.tcp_send(c, &chunk).is_ok_and(|n| n > 0) {}
        if let Some(s) = server {
            while let Ok(n) = b.tcp_recv(s, &mut buf) {
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
        }
    }
    let el = t0.elapsed().as_secs_f64();
    format!(
        "stack={} value={:.1} unit=MB/s bytes={got} secs={el:.2} loops={iters} retransmits={}",
        if offload { "ustack-offload" } else { "ustack" },
        got as f64 / el / 1e6,
        a.tcp_counters().retrans_segs
    )
}

/// One end of an in-memory link for smoltcp: frames go into the peer's
/// queue (bounded like the pipe: 1024 frames).
struct Link {
    rx: Rc<RefCell<VecDeque<Vec<u8>>>>,
    tx: Rc<RefCell<VecDeque<Vec<u8>>>>,
    mtu: usize,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a RefCell<VecDeque<Vec<u8>>>);

impl smoltcp::phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0u8; len];
        let r = f(&mut v);
        let mut q = self.0.borrow_mut();
        if q.len() < 1024 {
            q.push_back(v);
        }
        r
    }
}

impl smoltcp::phy::Device for Link {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;
    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let f = self.rx.borrow_mut().pop_front()?;
        Some((Rx(f), Tx(&self.tx)))
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(Tx(&self.tx))
    }
    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        let mut c = smoltcp::phy::DeviceCapabilities::default();
        c.medium = smoltcp::phy::Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}

/// How the smoltcp applications move their data.
#[derive(Clone, Copy, PartialEq)]
enum SmolMode {
    /// `send_slice` / `recv_slice`, MTU 1500.
    Copy,
    /// The zero-copy closures, MTU 1500.
    ZeroCopy,
    /// `send_slice` / `recv_slice`, MTU 65,535.
    Copy64k,
}

fn smoltcp_bulk(secs: f64, mode: SmolMode) -> String {
    use smoltcp::iface::{Config as SConfig, Interface as SIface, SocketSet};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant;
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    let q1 = Rc::new(RefCell::new(VecDeque::new()));
    let q2 = Rc::new(RefCell::new(VecDeque::new()));
    let mtu = if mode == SmolMode::Copy64k {
        65535
    } else {
        MTU
    };
    let mut da = Link {
        rx: q1.clone(),
        tx: q2.clone(),
        mtu,
    };
    let mut db = Link {
        rx: q2,
        tx: q1,
        mtu,
    };
    let chunk = vec![0x5au8; 1 << 16];
    let mut buf = vec![0u8; 1 << 16];
    let mk = |dev: &mut Link, ip: [u8; 4]| {
        let mut i = SIface::new(SConfig::new(HardwareAddress::Ip), dev, Instant::now());
        i.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), 24))
                .unwrap()
        });
        i
    };
    let mut ia = mk(&mut da, [10, 0, 0, 1]);
    let mut ib = mk(&mut db, [10, 0, 0, 2]);
    let sock = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 1 << 20]),
            tcp::SocketBuffer::new(vec![0; 1 << 20]),
        )
    };
    let mut sa = SocketSet::new(vec![]);
    let mut sb = SocketSet::new(vec![]);
    let ha = sa.add(sock());
    let hb = sb.add(sock());
    sb.get_mut::<tcp::Socket>(hb).listen(9).unwrap();
    sa.get_mut::<tcp::Socket>(ha)
        .connect(ia.context(), (IpAddress::v4(10, 0, 0, 2), 9), 49152)
        .unwrap();
    let t0 = StdInstant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut got = 0u64;
    let mut iters = 0u64;
    while StdInstant::now() < end {
        iters += 1;
        let now = Instant::now();
        ia.poll(now, &mut da, &mut sa);
        ib.poll(now, &mut db, &mut sb);
        let s = sa.get_mut::<tcp::Socket>(ha);
        if mode == SmolMode::ZeroCopy {
            while s.can_send() && s.send(|b| (b.len(), b.len())).unwrap_or(0) > 0 {}
        } else {
            while s.can_send() && s.send_slice(&chunk).unwrap_or(0) > 0 {}
        }
        let s = sb.get_mut::<tcp::Socket>(hb);
        while s.can_recv() {
            let n = if mode == SmolMode::ZeroCopy {
                s.recv(|b| (b.len(), b.len())).unwrap_or(0)
            } else {
                s.recv_slice(&mut buf).unwrap_or(0)
            };
            if n == 0 {
                break;
            }
            got += n as u64;
        }
    }
    let el = t0.elapsed().as_secs_f64();
    format!(
        "stack={} value={:.1} unit=MB/s bytes={got} secs={el:.2} loops={iters}",
        match mode {
            SmolMode::Copy => "smoltcp",
            SmolMode::ZeroCopy => "smoltcp-zerocopy",
            SmolMode::Copy64k => "smoltcp-64k",
        },
        got as f64 / el / 1e6
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("both");
    let secs: f64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0f64)
        .clamp(0.1, 60.0);
    if matches!(which, "ustack" | "both" | "all") {
        println!("{}", ustack_bulk(secs, false));
    }
    if matches!(which, "ustack-offload" | "all") {
        println!("{}", ustack_bulk(secs, true));
    }
    if matches!(which, "smoltcp" | "both" | "all") {
        println!("{}", smoltcp_bulk(secs, SmolMode::Copy));
    }
    if matches!(which, "smoltcp-zerocopy" | "all") {
        println!("{}", smoltcp_bulk(secs, SmolMode::ZeroCopy));
    }
    if matches!(which, "smoltcp-64k" | "all") {
        println!("{}", smoltcp_bulk(secs, SmolMode::Copy64k));
    }
}
