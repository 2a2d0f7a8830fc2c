//! What the unit tests share: hosts and two-host simulators, connections
//! and transfers in them ([`host`], [`sim`], [`connect`], [`transfer`]),
//! and the network-namespace harness ([`netns`], also compiled into the
//! namespace integration tests).

#![allow(dead_code)] // each test module uses its own part

pub(crate) mod netns;

use std::io;
use std::net::{Shutdown, SocketAddr};

use crate::iface::{Config, Interface, Ipv4Cidr};
use crate::phy::Medium;
use crate::sim::{LinkConfig, Sim};
use crate::socket::SocketHandle;
use crate::tcp::{State, TcpConfig};
use crate::time::{Duration, Instant};

/// The simulator's left host.
pub(crate) const A: &str = "10.0.0.1";
/// The simulator's right host.
pub(crate) const B: &str = "10.0.0.2";

/// An IP-medium interface's configuration: `addr/24`, `seed`.
pub(crate) fn config(addr: &str, seed: u64) -> Config {
    let mut c = Config::new(Medium::Ip);
    c.addrs
        .push(format!("{addr}/24").parse::<Ipv4Cidr>().unwrap());
    c.seed = seed;
    c
}

/// An IP-medium interface at `addr/24`, started at time zero.
pub(crate) fn host(addr: &str, seed: u64) -> Interface {
    Interface::new(config(addr, seed), Instant::ZERO)
}

/// [`A`] (seed `seed`) and [`B`] (`seed + 1`) joined by `link` both ways.
pub(crate) fn sim(link: LinkConfig, seed: u64) -> Sim {
    sim2(link, link, seed)
}

/// [`A`] and [`B`] as in [`sim`], with link `ab` from A to B and `ba` back.
pub(crate) fn sim2(ab: LinkConfig, ba: LinkConfig, seed: u64) -> Sim {
    Sim::new(host(A, seed), host(B, seed.wrapping_add(1)), ab, ba, seed)
}

/// Changes the TCP configuration of both hosts.
pub(crate) fn configure(s: &mut Sim, f: impl Fn(&mut TcpConfig)) {
    for iface in [&mut s.a, &mut s.b] {
        let mut c = iface.tcp_config().clone();
        f(&mut c);
        iface.set_tcp_config(c);
    }
}

/// `ip:port`.
pub(crate) fn sa(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

/// The state of TCP socket `h` (Closed once it is gone).
pub(crate) fn state(i: &Interface, h: SocketHandle) -> State {
    i.tcp_socket(h).map(|t| t.state()).unwrap_or(State::Closed)
}

/// Connects a client on A to a listener on B; returns (client, server).
pub(crate) fn connect(s: &mut Sim) -> (SocketHandle, SocketHandle) {
    let l = s.b.tcp_listen(sa("0.0.0.0", 80), 16).unwrap();
    let now = s.now();
    let c = s.a.tcp_connect(sa(B, 80), None, now).unwrap();
    let deadline = s.now() + Duration::from_secs(120);
    let mut server = None;
    s.run_while(deadline, |s| {
        if server.is_none() {
            if let Ok((h, _)) = s.b.tcp_accept(l) {
                server = Some(h);
            }
        }
        !(server.is_some() && state(&s.a, c) == State::Established)
    });
    (c, server.expect("accepted"))
}

/// Moves `data` from `from` to `to` (A→B when `a_to_b`), the application
/// writing and reading as fast as the buffers allow; returns what arrived.
pub(crate) fn transfer(
    s: &mut Sim,
    a_to_b: bool,
    from: SocketHandle,
    to: SocketHandle,
    data: &[u8],
    limit: Duration,
) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 65536];
    let deadline = s.now() + limit;
    let mut closed = false;
    s.run_while(deadline, |s| {
        let (tx, rx) = if a_to_b {
            (&mut s.a, &mut s.b)
        } else {
            (&mut s.b, &mut s.a)
        };
        while sent < data.len() {
            match tx.tcp_send(from, &data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        if sent == data.len() && !closed {
            tx.tcp_shutdown(from, Shutdown::Write).unwrap();
            closed = true;
        }
        loop {
            match rx.tcp_recv(to, &mut buf) {
                Ok(0) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        true
    });
    got
}

/// `n` pseudo-random bytes from `seed`.
pub(crate) fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut r = crate::sim::Rng::new(seed);
    (0..n).map(|_| r.next_u64() as u8).collect()
}
