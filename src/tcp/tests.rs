//! TCP state machine tests: two interfaces in the simulator, virtual time.

use std::io;
use std::net::{Shutdown, SocketAddr};

use crate::iface::{Config, Interface, Ipv4Cidr};
use crate::phy::Medium;
use crate::sim::{LinkConfig, Sim};
use crate::socket::SocketHandle;
use crate::tcp::State;
use crate::time::{Duration, Instant};

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";

fn host(addr: &str, seed: u64) -> Interface {
    let mut c = Config::new(Medium::Ip);
    c.addrs
        .push(format!("{addr}/24").parse::<Ipv4Cidr>().unwrap());
    c.seed = seed;
    Interface::new(c, Instant::ZERO)
}

fn sim(link: LinkConfig, seed: u64) -> Sim {
    Sim::new(
        host(A, seed),
        host(B, seed.wrapping_add(1)),
        link,
        link,
        seed,
    )
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

fn state(i: &Interface, h: SocketHandle) -> State {
    i.tcp_socket(h).map(|t| t.state()).unwrap_or(State::Closed)
}

/// Connects a client on A to a listener on B; returns (client, server).
fn connect(s: &mut Sim) -> (SocketHandle, SocketHandle) {
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
fn transfer(
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

fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut r = crate::sim::Rng::new(seed);
    (0..n).map(|_| r.next_u64() as u8).collect()
}

#[test]
fn handshake_transfer_and_close() {
    let mut s = sim(LinkConfig::default(), 1);
    let (c, srv) = connect(&mut s);
    let info = s.a.tcp_info(c).unwrap();
    assert!(
        info.timestamps && info.sack && info.wscale.is_some(),
        "{info:?}"
    );
    assert_eq!(info.mss, 1460 - 12);
    let data = pattern(300_000, 1);
    let got = transfer(&mut s, true, c, srv, &data, Duration::from_secs(60));
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    // Server closes its side too.
    s.b.tcp_close(srv).unwrap();
    s.advance(Duration::from_secs(1));
    assert_eq!(state(&s.a, c), State::TimeWait);
    s.a.tcp_close(c).unwrap();
    s.advance(Duration::from_secs(61));
    assert_eq!(s.a.sockets().len(), 0, "TIME-WAIT over after 2 MSL");
    assert_eq!(s.b.sockets().len(), 1, "only the listener is left");
}

#[test]
fn closed_port_is_refused() {
    let mut s = sim(LinkConfig::default(), 2);
    let now = s.now();
    let c = s.a.tcp_connect(sa(B, 81), None, now).unwrap();
    s.advance(Duration::from_secs(1));
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(t.state(), State::Closed);
    assert_eq!(
        t.take_error().unwrap().kind(),
        io::ErrorKind::ConnectionRefused
    );
    assert_eq!(s.b.tcp_counters().out_rsts, 1);
}

fn lossy(loss: f64, dup: f64, jitter_ms: u64, corrupt: f64) -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(jitter_ms),
        loss,
        dup,
        corrupt,
        ..LinkConfig::default()
    }
}

/// Every byte arrives, in order, and both ends close cleanly, over links
/// that lose, duplicate, reorder and corrupt — for many seeds.
#[test]
fn bulk_over_impaired_links_many_seeds() {
    let seeds: u64 = std::env::var("USTACK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    for seed in 0..seeds {
        let mut r = crate::sim::Rng::new(seed);
        let link = lossy(
            r.unit() * 0.08,
            r.unit() * 0.03,
            r.below(25),
            r.unit() * 0.02,
        );
        let mut s = sim(link, seed);
        let (c, srv) = connect(&mut s);
        let n = 20_000 + r.below(200_000) as usize;
        let data = pattern(n, seed);
        let (from, to, a_to_b) = if seed % 2 == 0 {
            (c, srv, true)
        } else {
            (srv, c, false)
        };
        let got = transfer(&mut s, a_to_b, from, to, &data, Duration::from_secs(600));
        assert!(
            got == data,
            "seed {seed}: {} of {} bytes, link {link:?}",
            got.len(),
            data.len()
        );
        if seed < 3 || std::env::var("USTACK_VERBOSE").is_ok() {
            let i = if a_to_b {
                s.a.tcp_info(c).unwrap()
            } else {
                s.b.tcp_info(srv).unwrap()
            };
            eprintln!(
                "seed {seed}: {n} bytes in {:?}, retrans {} fast {} rto {} links {:?}",
                s.now(),
                i.retransmits,
                i.fast_retransmits,
                i.timeouts,
                s.stats()
            );
        }
        // The receiver closes too; both ends must finish.
        let (rx, rxh) = if a_to_b {
            (&mut s.b, srv)
        } else {
            (&mut s.a, c)
        };
        rx.tcp_close(rxh).unwrap();
        let (tx, txh) = if a_to_b {
            (&mut s.a, c)
        } else {
            (&mut s.b, srv)
        };
        tx.tcp_close(txh).unwrap();
        s.advance(Duration::from_secs(400));
        assert_eq!(
            s.a.sockets().len(),
            0,
            "seed {seed}: A left {:?}",
            s.a.sockets()
                .iter()
                .map(|(h, _)| state(&s.a, h))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            s.b.sockets().len(),
            1,
            "seed {seed}: B keeps only its listener"
        );
    }
}
