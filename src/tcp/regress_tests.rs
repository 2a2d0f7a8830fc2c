//! Regressions found against other stacks (smoltcp, Linux), each with the
//! segment exchange that showed it.

use std::net::{Shutdown, SocketAddr};

use crate::iface::{Config, Interface, Ipv4Cidr};
use crate::phy::Medium;
use crate::sim::{LinkConfig, Sim};
use crate::tcp::State;
use crate::time::{Duration, Instant};

fn host(addr: &str, seed: u64) -> Interface {
    let mut c = Config::new(Medium::Ip);
    c.addrs
        .push(format!("{addr}/24").parse::<Ipv4Cidr>().unwrap());
    c.seed = seed;
    c.tcp.recv_buffer = 32 * 1024;
    Interface::new(c, Instant::ZERO)
}

/// Found with smoltcp: the peer sends its data and FIN and closes as soon
/// as both are acknowledged; our application reads afterwards. Reading
/// opened our window, and a window update went out after the peer's FIN,
/// which the closed peer answered with RST. No segment may follow the ACK
/// of the peer's FIN on a read.
#[test]
fn no_window_update_after_the_peers_fin() {
    let mut s = Sim::new(
        host("10.0.0.1", 1),
        host("10.0.0.2", 2),
        LinkConfig::default(),
        LinkConfig::default(),
        1,
    );
    let l = s.b.tcp_listen("0.0.0.0:80".parse().unwrap(), 4).unwrap();
    let now = s.now();
    let c =
        s.a.tcp_connect(SocketAddr::from(([10, 0, 0, 2], 80)), None, now)
            .unwrap();
    s.advance(Duration::from_millis(100));
    let (srv, _) = s.b.tcp_accept(l).unwrap();
    // The server fills most of our (small) receive buffer, then closes.
    let data = vec![7u8; 30 * 1024];
    assert_eq!(s.b.tcp_send(srv, &data).unwrap(), data.len());
    s.b.tcp_shutdown(srv, Shutdown::Write).unwrap();
    s.advance(Duration::from_millis(300));
    assert_eq!(s.a.tcp_socket(c).unwrap().state(), State::CloseWait);
    let sent_before = s.stats().0.sent;
    // Now the application reads everything: the window opens wide.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while let Ok(n) = s.a.tcp_recv(c, &mut buf) {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, data.len());
    s.advance(Duration::from_millis(300));
    assert_eq!(
        s.stats().0.sent,
        sent_before,
        "no window update after the peer's FIN"
    );
    assert_eq!(s.b.tcp_counters().out_rsts, 0);
}
