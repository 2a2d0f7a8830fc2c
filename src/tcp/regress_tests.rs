//! Regressions found against other stacks (smoltcp, Linux), each with the
//! segment exchange that showed it.

use std::net::{Shutdown, SocketAddr};

use crate::iface::Interface;
use crate::sim::{LinkConfig, Sim};
use crate::socket::SocketHandle;
use crate::tcp::State;
use crate::testkit::{self, A, B};
use crate::time::{Duration, Instant};

/// [`A`] and [`B`] with 32 KiB receive buffers, over clean links, 100 ms
/// after A connected to a listener on B: (sim, client, server).
fn connected_small_rcvbuf() -> (Sim, SocketHandle, SocketHandle) {
    let host = |addr, seed| {
        let mut c = testkit::config(addr, seed);
        c.tcp.recv_buffer = 32 * 1024;
        Interface::new(c, Instant::ZERO)
    };
    let mut s = Sim::new(
        host(A, 1),
        host(B, 2),
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
    (s, c, srv)
}

/// Found with smoltcp: the peer sends its data and FIN and closes as soon
/// as both are acknowledged; our application reads afterwards. Reading
/// opened our window, and a window update went out after the peer's FIN,
/// which the closed peer answered with RST. No segment may follow the ACK
/// of the peer's FIN on a read.
#[test]
fn no_window_update_after_the_peers_fin() {
    let (mut s, c, srv) = connected_small_rcvbuf();
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

/// Found by pcap replay (`http_post.pcapng` with a reordered segment and
/// a flipped RST): an old duplicate segment set "ACK now", an RST at
/// RCV.NXT closed the connection before the ACK went out, and the flag
/// stayed set: `poll_at` kept answering "now" for a CLOSED connection that
/// `poll_transmit` never serves, so a runtime would spin.
#[test]
fn no_deadline_for_a_connection_reset_with_an_ack_pending() {
    use std::cell::RefCell;
    use std::rc::Rc;

    let (mut s, c, srv) = connected_small_rcvbuf();
    // Record B's data segment on its way.
    let seen: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let rec = seen.clone();
    s.drop_filter = Some(Box::new(move |from, f| {
        if from == 1 && f.len() > 100 {
            rec.borrow_mut().push(f.to_vec());
        }
        false
    }));
    s.b.tcp_send(srv, &[5u8; 1000]).unwrap();
    s.advance(Duration::from_millis(100));
    let mut buf = [0u8; 2000];
    assert_eq!(s.a.tcp_recv(c, &mut buf).unwrap(), 1000);
    let data = seen.borrow()[0].clone();
    // The same segment again (an old duplicate: A must ACK at once) and,
    // at the same instant, an RST at RCV.NXT.
    let mut rst = data[..40].to_vec();
    let seq = u32::from_be_bytes([rst[24], rst[25], rst[26], rst[27]]) + 1000;
    rst[24..28].copy_from_slice(&seq.to_be_bytes());
    rst[32] = 0x50;
    rst[33] = 0x14; // RST|ACK
    rst[2..4].copy_from_slice(&40u16.to_be_bytes());
    crate::replay::build::fix_checksums(&mut rst);
    let now = s.now();
    s.a.handle_frame(now, &data);
    s.a.handle_frame(now, &rst);
    let mut out = s.a.new_tx_batch();
    s.a.poll_transmit(now, &mut out);
    assert_eq!(s.a.tcp_socket(c).unwrap().state(), State::Closed);
    assert!(
        s.a.poll_at().is_none_or(|t| t > now),
        "a reset connection asks to be polled at {:?} (now {now:?})",
        s.a.poll_at()
    );
}
