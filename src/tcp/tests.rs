//! TCP state machine tests: two interfaces in the simulator, virtual time.

use std::io;
use std::net::{Shutdown, SocketAddr};

use crate::iface::Interface;
use crate::sim::{LinkConfig, Sim};
use crate::socket::SocketHandle;
use crate::tcp::{SeqNumber, State};
use crate::testkit::{self, connect, host, pattern, sa, sim, sim2, state, transfer, A, B};
use crate::time::{Duration, Instant};

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

#[test]
fn simultaneous_open() {
    let mut s = sim(LinkConfig::default(), 3);
    let now = s.now();
    let a =
        s.a.tcp_connect(sa(B, 6000), Some(sa(A, 5000)), now)
            .unwrap();
    let b =
        s.b.tcp_connect(sa(A, 5000), Some(sa(B, 6000)), now)
            .unwrap();
    s.advance(Duration::from_secs(2));
    assert_eq!(state(&s.a, a), State::Established);
    assert_eq!(state(&s.b, b), State::Established);
    let data = pattern(50_000, 3);
    assert!(transfer(&mut s, true, a, b, &data, Duration::from_secs(30)) == data);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut s = sim(LinkConfig::default(), 4);
    let (c, srv) = connect(&mut s);
    s.a.tcp_shutdown(c, Shutdown::Write).unwrap();
    s.b.tcp_shutdown(srv, Shutdown::Write).unwrap();
    assert_eq!(state(&s.a, c), State::FinWait1);
    assert_eq!(state(&s.b, srv), State::FinWait1);
    // Both FINs cross: each side sees the other's FIN before its ACK.
    s.advance(Duration::from_millis(7));
    assert_eq!(state(&s.a, c), State::Closing);
    assert_eq!(state(&s.b, srv), State::Closing);
    s.advance(Duration::from_millis(100));
    assert_eq!(state(&s.a, c), State::TimeWait);
    assert_eq!(state(&s.b, srv), State::TimeWait);
}

#[test]
fn half_close_keeps_the_other_direction_open() {
    let mut s = sim(LinkConfig::default(), 5);
    let (c, srv) = connect(&mut s);
    s.a.tcp_shutdown(c, Shutdown::Write).unwrap();
    s.advance(Duration::from_millis(100));
    assert_eq!(state(&s.a, c), State::FinWait2);
    assert_eq!(state(&s.b, srv), State::CloseWait);
    let mut buf = [0u8; 10];
    assert_eq!(s.b.tcp_recv(srv, &mut buf).unwrap(), 0, "end of stream");
    assert_eq!(
        s.a.tcp_send(c, b"x").unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
    let data = pattern(100_000, 5);
    assert!(transfer(&mut s, false, srv, c, &data, Duration::from_secs(30)) == data);
    s.advance(Duration::from_millis(100));
    assert_eq!(state(&s.b, srv), State::Closed, "LAST-ACK then CLOSED");
    assert_eq!(state(&s.a, c), State::TimeWait);
}

#[test]
fn close_with_unread_data_resets_peer() {
    let mut s = sim(LinkConfig::default(), 6);
    let (c, srv) = connect(&mut s);
    s.a.tcp_send(c, b"unread").unwrap();
    s.advance(Duration::from_millis(100));
    s.b.tcp_close(srv).unwrap();
    s.advance(Duration::from_millis(100));
    let mut buf = [0u8; 10];
    assert_eq!(
        s.a.tcp_recv(c, &mut buf).unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );
    assert_eq!(state(&s.a, c), State::Closed);
    assert_eq!(s.b.sockets().len(), 1, "the server side is gone at once");
}

#[test]
fn abort_sends_rst_and_peer_sees_reset() {
    let mut s = sim(LinkConfig::default(), 7);
    let (c, srv) = connect(&mut s);
    s.b.tcp_abort(srv).unwrap();
    s.advance(Duration::from_millis(100));
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(
        t.take_error().unwrap().kind(),
        io::ErrorKind::ConnectionReset
    );
    assert_eq!(s.a.tcp_counters().estab_resets, 1);
}

#[test]
fn syn_retries_then_timed_out() {
    let link = LinkConfig {
        loss: 1.0,
        ..LinkConfig::default()
    };
    let mut s = sim(link, 8);
    let now = s.now();
    let c = s.a.tcp_connect(sa(B, 80), None, now).unwrap();
    // 1 + 2 + 4 + 8 + 16 + 32 s for 6 retries, then 64 s more: 127 s.
    s.advance(Duration::from_secs(126));
    assert_eq!(state(&s.a, c), State::SynSent);
    s.advance(Duration::from_secs(2));
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(t.take_error().unwrap().kind(), io::ErrorKind::TimedOut);
    assert_eq!(s.stats().0.sent, 7, "one SYN and six retries");
}

/// Connects A to B with `user_timeout` on A's sockets, sends 13 bytes
/// and cuts the link both ways; returns the sim, A's handle and when the
/// data went out.
fn cut_after_send(user_timeout: Option<Duration>) -> (Sim, SocketHandle, Instant) {
    let mut s = sim(LinkConfig::default(), 9);
    let mut cfg = s.a.tcp_config().clone();
    cfg.user_timeout = user_timeout;
    s.a.set_tcp_config(cfg);
    let (c, _srv) = connect(&mut s);
    assert_eq!(s.a.tcp_socket(c).unwrap().config.user_timeout, user_timeout);
    s.drop_filter = Some(Box::new(|_, _| true));
    let sent_at = s.now();
    s.a.tcp_send(c, b"into the void").unwrap();
    (s, c, sent_at)
}

#[test]
fn data_retries_then_timed_out() {
    let (mut s, c, t0) = cut_after_send(None);
    // Without a user timeout, the data retry count decides: 15 backed-off
    // retransmissions (RTO capped at 120 s) take far longer than 5 s.
    s.run_until(t0 + Duration::from_secs(60));
    assert_eq!(state(&s.a, c), State::Established);
    s.run_until(t0 + Duration::from_secs(2000));
    let retries = s.a.tcp_config().data_retries;
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.take_error().unwrap().kind(), io::ErrorKind::TimedOut);
    assert_eq!(t.info().timeouts, u64::from(retries), "{:?}", t.info());
}

#[test]
fn data_times_out_after_the_user_timeout() {
    let ut = Duration::from_secs(5);
    let (mut s, c, t0) = cut_after_send(Some(ut));
    // Alive just before the user timeout (the RTOs so far: 0.2 + 0.4 +
    // 0.8 + 1.6 s, then the next one is cut short at 5 s)...
    s.run_until(t0 + ut - Duration::from_millis(10));
    assert_eq!(state(&s.a, c), State::Established);
    let timeouts = s.a.tcp_info(c).unwrap().timeouts;
    assert!((1..15).contains(&timeouts), "{timeouts} timeouts");
    // ...and timed out at it, not at the next backed-off expiry (6.2 s)
    // nor after 15 retries.
    s.run_until(t0 + ut + Duration::from_millis(10));
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.take_error().unwrap().kind(), io::ErrorKind::TimedOut);
    assert_eq!(
        t.info().timeouts,
        timeouts,
        "no retransmission after the last"
    );
}

#[test]
fn zero_window_is_probed_and_recovers() {
    let mut s = sim(LinkConfig::default(), 10);
    let mut cfg = s.b.tcp_config().clone();
    cfg.recv_buffer = 8192;
    s.b.set_tcp_config(cfg);
    let (c, srv) = connect(&mut s);
    let data = pattern(40_000, 10);
    let n = s.a.tcp_send(c, &data).unwrap();
    assert_eq!(n, data.len());
    // The receiver reads nothing: its window closes; A persists.
    s.advance(Duration::from_secs(20));
    let info = s.a.tcp_info(c).unwrap();
    assert_eq!(info.snd_wnd, 0);
    assert!(
        s.stats().0.sent > 10,
        "probes went out: {info:?} {:?} b: {:?}",
        s.stats(),
        s.b.tcp_info(srv).unwrap()
    );
    assert_eq!(
        state(&s.a, c),
        State::Established,
        "a closed window is not a failure"
    );
    let mut all = Vec::new();
    let mut buf = vec![0u8; 4096];
    s.run_while(s.now() + Duration::from_secs(60), |s| {
        while let Ok(k) = s.b.tcp_recv(srv, &mut buf) {
            if k == 0 {
                return false;
            }
            all.extend_from_slice(&buf[..k]);
        }
        all.len() < data.len()
    });
    assert!(all == data);
}

/// An IPv4/TCP frame from `src` to `dst`.
fn frame(src: &str, dst: &str, repr: &crate::wire::tcp::Repr) -> Vec<u8> {
    let (s4, d4): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let mut seg = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut crate::wire::tcp::Packet::new_unchecked(&mut seg[..]),
        s4.into(),
        d4.into(),
    );
    let mut ip = vec![0u8; 20 + seg.len()];
    crate::wire::ipv4::Repr {
        src_addr: s4,
        dst_addr: d4,
        protocol: 6,
        payload_len: seg.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut crate::wire::ipv4::Packet::new_unchecked(&mut ip[..]));
    ip[20..].copy_from_slice(&seg);
    ip
}

#[test]
fn time_wait_table_reacks_fin_ignores_rst_and_expires() {
    use crate::wire::tcp::{Flags, Options, Repr};
    let mut s = sim(LinkConfig::default(), 11);
    let (c, srv) = connect(&mut s);
    let local = s.a.tcp_socket(c).unwrap().local_addr();
    s.a.tcp_close(c).unwrap();
    s.advance(Duration::from_millis(50));
    s.b.tcp_close(srv).unwrap();
    s.advance(Duration::from_millis(50));
    assert!(state_any(&s.a).is_empty(), "the full connection is gone");
    assert_eq!(
        s.a.tcp_time_wait_len(),
        1,
        "a compact TIME-WAIT entry remains"
    );
    let key = (local, sa(B, 80));
    let e = *s.a.tcp.time_wait.get(&key).unwrap();
    let seg = |flags: Flags, seq: u32, ts: Option<(u32, u32)>| Repr {
        src_port: 80,
        dst_port: local.port(),
        seq_number: seq,
        ack_number: e.snd_nxt.0,
        flags,
        window_len: 1000,
        urgent_at: 0,
        options: Options {
            timestamps: ts,
            ..Options::default()
        },
        payload: &[],
    };
    let recent = e.ts.unwrap().0;
    // A retransmitted FIN is ACKed again and restarts 2 MSL.
    s.advance(Duration::from_secs(30));
    let sent_before = s.stats().0.sent;
    let now = s.now();
    s.a.handle_frame(
        now,
        &frame(
            B,
            A,
            &seg(Flags::FIN | Flags::ACK, e.rcv_nxt.0 - 1, Some((recent, 0))),
        ),
    );
    s.advance(Duration::from_millis(1));
    assert_eq!(s.stats().0.sent, sent_before + 1, "FIN re-ACKed");
    // RFC 1337: an RST does not end TIME-WAIT.
    let now = s.now();
    s.a.handle_frame(now, &frame(B, A, &seg(Flags::RST, e.rcv_nxt.0, None)));
    s.advance(Duration::from_secs(45));
    assert_eq!(
        s.a.tcp_time_wait_len(),
        1,
        "restarted at 30 s: still there at 75 s"
    );
    s.advance(Duration::from_secs(20));
    assert_eq!(s.a.tcp_time_wait_len(), 0, "gone 60 s after the last FIN");
    assert_eq!(s.a.sockets().len(), 0);
}

#[test]
fn syn_with_newer_timestamp_reuses_time_wait_tuple() {
    let mut s = sim(LinkConfig::default(), 16);
    // The server side closes first, so it holds TIME-WAIT.
    let (c, srv) = connect(&mut s);
    let client = s.a.tcp_socket(c).unwrap().local_addr();
    s.b.tcp_close(srv).unwrap();
    s.advance(Duration::from_millis(50));
    s.a.tcp_close(c).unwrap();
    s.advance(Duration::from_millis(50));
    assert_eq!(s.b.tcp_time_wait_len(), 1);
    assert_eq!(s.a.sockets().len(), 0);
    // Same 4-tuple again, a second later: timestamps are newer (RFC 6191).
    s.advance(Duration::from_secs(1));
    let now = s.now();
    let c2 = s.a.tcp_connect(sa(B, 80), Some(client), now).unwrap();
    s.advance(Duration::from_millis(200));
    assert_eq!(state(&s.a, c2), State::Established);
    assert_eq!(s.b.tcp_time_wait_len(), 0);
}

fn state_any(i: &Interface) -> Vec<State> {
    i.sockets()
        .iter()
        .filter_map(|(_, s)| match s {
            crate::socket::Socket::Tcp(c) => Some(c.tcb.state()),
            _ => None,
        })
        .collect()
}

#[test]
fn listener_backlog_is_bounded() {
    let mut s = sim(LinkConfig::default(), 12);
    let l = s.b.tcp_listen(sa("0.0.0.0", 80), 2).unwrap();
    let now = s.now();
    let cs: Vec<_> = (0..5)
        .map(|_| s.a.tcp_connect(sa(B, 80), None, now).unwrap())
        .collect();
    s.advance(Duration::from_millis(500));
    assert_eq!(s.b.tcp_listener(l).unwrap().pending(), 2);
    assert!(s.b.tcp_counters().listen_overflows >= 3);
    // Accepting makes room: the others get in on their SYN retries.
    let mut accepted = 0;
    s.run_while(s.now() + Duration::from_secs(30), |s| {
        while s.b.tcp_accept(l).is_ok() {
            accepted += 1;
        }
        accepted < 5
    });
    assert_eq!(accepted, 5);
    assert!(cs.iter().all(|&c| state(&s.a, c) == State::Established));
}

#[test]
fn many_connections_demux() {
    let mut s = sim(LinkConfig::default(), 13);
    let l = s.b.tcp_listen(sa("0.0.0.0", 80), 1024).unwrap();
    let now = s.now();
    let cs: Vec<_> = (0..500)
        .map(|_| s.a.tcp_connect(sa(B, 80), None, now).unwrap())
        .collect();
    let mut servers = Vec::new();
    s.run_while(s.now() + Duration::from_secs(10), |s| {
        while let Ok((h, _)) = s.b.tcp_accept(l) {
            servers.push(h);
        }
        servers.len() < 500
    });
    for (i, &c) in cs.iter().enumerate() {
        s.a.tcp_send(c, format!("hello {i}").as_bytes()).unwrap();
    }
    s.advance(Duration::from_millis(200));
    let mut buf = [0u8; 64];
    let mut seen = std::collections::HashSet::new();
    for &h in &servers {
        let n = s.b.tcp_recv(h, &mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        let peer = s.b.tcp_socket(h).unwrap().remote_addr();
        let i: usize = msg[6..].parse().unwrap();
        assert_eq!(s.a.tcp_socket(cs[i]).unwrap().local_addr(), peer);
        seen.insert(i);
    }
    assert_eq!(seen.len(), 500);
}

#[test]
fn syn_cookies_carry_mss_window_scale_sack_and_timestamps() {
    for client_ts in [true, false] {
        let mut s = sim(LinkConfig::default(), 14);
        let mut cfg = s.b.tcp_config().clone();
        cfg.syn_backlog = 0; // every SYN gets a cookie
        s.b.set_tcp_config(cfg);
        let mut ccfg = s.a.tcp_config().clone();
        ccfg.timestamps = client_ts;
        s.a.set_tcp_config(ccfg);
        let (c, srv) = connect(&mut s);
        assert_eq!(s.b.tcp_counters().syncookies_sent, 1);
        assert_eq!(s.b.tcp_counters().syncookies_recv, 1);
        let (ic, is) = (s.a.tcp_info(c).unwrap(), s.b.tcp_info(srv).unwrap());
        assert_eq!(is.timestamps, client_ts);
        assert_eq!(is.sack, client_ts, "SACK survives only with timestamps");
        assert_eq!(is.wscale.is_some(), client_ts);
        assert_eq!(ic.wscale.is_some(), client_ts, "both sides agree");
        assert_eq!(is.mss + if client_ts { 12 } else { 0 }, 1460);
        let data = pattern(200_000, 14);
        assert!(transfer(&mut s, true, c, srv, &data, Duration::from_secs(30)) == data);
        let back = pattern(200_000, 15);
        assert!(transfer(&mut s, false, srv, c, &back, Duration::from_secs(30)) == back);
    }
}

#[test]
fn forged_ack_to_listener_is_reset_not_accepted() {
    let mut s = sim(LinkConfig::default(), 15);
    let mut cfg = s.b.tcp_config().clone();
    cfg.syn_backlog = 0;
    s.b.set_tcp_config(cfg);
    let l = s.b.tcp_listen(sa("0.0.0.0", 80), 8).unwrap();
    // A bare ACK out of nowhere (as a blind attacker would send).
    let mut seg = vec![0u8; 20];
    let repr = crate::wire::tcp::Repr {
        src_port: 4000,
        dst_port: 80,
        seq_number: 1000,
        ack_number: 0xdead_beef,
        flags: crate::wire::tcp::Flags::ACK,
        window_len: 1000,
        urgent_at: 0,
        options: Default::default(),
        payload: &[],
    };
    let (src, dst) = (A.parse().unwrap(), B.parse().unwrap());
    repr.emit(
        &mut crate::wire::tcp::Packet::new_unchecked(&mut seg[..]),
        src,
        dst,
    );
    let mut ip = vec![0u8; 40];
    crate::wire::ipv4::Repr {
        src_addr: A.parse().unwrap(),
        dst_addr: B.parse().unwrap(),
        protocol: 6,
        payload_len: 20,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut crate::wire::ipv4::Packet::new_unchecked(&mut ip[..]));
    ip[20..].copy_from_slice(&seg);
    let now = s.now();
    s.b.handle_frame(now, &ip);
    assert_eq!(s.b.tcp_listener(l).unwrap().pending(), 0);
    assert_eq!(s.b.tcp_counters().out_rsts, 1);
}

#[test]
fn orphaned_fin_wait_2_times_out() {
    let mut s = sim(LinkConfig::default(), 17);
    let (c, _srv) = connect(&mut s);
    s.a.tcp_close(c).unwrap();
    s.advance(Duration::from_millis(100));
    assert_eq!(
        state_any(&s.a),
        vec![State::FinWait2],
        "the peer never closes"
    );
    s.advance(Duration::from_secs(59));
    assert_eq!(state_any(&s.a), vec![State::FinWait2]);
    s.advance(Duration::from_secs(2));
    assert!(
        state_any(&s.a).is_empty(),
        "gone after the 60 s FIN-WAIT-2 timeout"
    );
}

#[test]
fn keepalive_probes_then_times_out() {
    let mut s = sim(LinkConfig::default(), 18);
    let (c, _srv) = connect(&mut s);
    let now = s.now();
    let ka = crate::tcp::Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        count: 3,
    };
    s.a.tcp_socket_mut(c).unwrap().set_keepalive(Some(ka), now);
    // A live peer answers probes: the connection survives long idleness.
    s.advance(Duration::from_secs(100));
    assert_eq!(state(&s.a, c), State::Established);
    // Now the peer vanishes: 3 unanswered probes, then TimedOut.
    let mut s2 = Sim::new(
        std::mem::replace(&mut s.a, host(A, 0)),
        std::mem::replace(&mut s.b, host(B, 0)),
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
        18,
    );
    s2.run_until(now + Duration::from_secs(100 + 10 + 2 * 3 + 1));
    let t = s2.a.tcp_socket_mut(c).unwrap();
    assert_eq!(t.take_error().unwrap().kind(), io::ErrorKind::TimedOut);
    assert!(s2.stats().0.sent >= 3);
}

/// A bare segment from B's port 80 to `dst_port` on A.
fn from_peer(
    dst_port: u16,
    flags: crate::wire::tcp::Flags,
    seq: u32,
    ack: u32,
) -> crate::wire::tcp::Repr<'static> {
    crate::wire::tcp::Repr {
        src_port: 80,
        dst_port,
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: 1000,
        urgent_at: 0,
        options: crate::wire::tcp::Options::default(),
        payload: &[],
    }
}

fn inject(s: &mut Sim, to_b: bool, repr: &crate::wire::tcp::Repr) {
    let now = s.now();
    if to_b {
        let f = frame(A, B, repr);
        s.b.handle_frame(now, &f);
    } else {
        let f = frame(B, A, repr);
        s.a.handle_frame(now, &f);
    }
}

#[test]
fn in_window_rst_and_syn_get_challenge_acks() {
    use crate::wire::tcp::Flags;
    let mut s = sim(LinkConfig::default(), 19);
    let (c, _srv) = connect(&mut s);
    let t = s.a.tcp_socket(c).unwrap();
    let (local, rcv_nxt, snd_nxt) = (t.local_addr(), t.rcv_nxt, t.snd_nxt);
    let seg = |flags: Flags, seq: u32| from_peer(local.port(), flags, seq, snd_nxt.0);
    let before = s.stats().0.sent;
    // RST in the window but not at RCV.NXT: challenge ACK, no reset.
    inject(&mut s, false, &seg(Flags::RST, (rcv_nxt + 100).0));
    s.advance(Duration::from_millis(1));
    // SYN in a synchronized state: challenge ACK.
    inject(&mut s, false, &seg(Flags::SYN, (rcv_nxt + 5).0));
    s.advance(Duration::from_millis(1));
    // RST outside the window: silently dropped.
    inject(&mut s, false, &seg(Flags::RST, (rcv_nxt + 10_000_000).0));
    s.advance(Duration::from_millis(1));
    assert_eq!(state(&s.a, c), State::Established);
    assert_eq!(s.stats().0.sent - before, 2, "two challenge ACKs");
    // RST exactly at RCV.NXT resets.
    inject(&mut s, false, &seg(Flags::RST, rcv_nxt.0));
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(
        t.take_error().unwrap().kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[test]
fn rfc793_mode_resets_on_any_in_window_rst_or_syn() {
    use crate::wire::tcp::Flags;
    for syn in [false, true] {
        let mut s = sim(LinkConfig::default(), 23);
        let mut cfg = s.a.tcp_config().clone();
        cfg.rfc5961_rst = false;
        cfg.rfc5961_syn = false;
        s.a.set_tcp_config(cfg);
        let (c, _srv) = connect(&mut s);
        let t = s.a.tcp_socket(c).unwrap();
        let (local, rcv_nxt, snd_nxt) = (t.local_addr(), t.rcv_nxt, t.snd_nxt);
        let seg = |flags: Flags, seq: u32| from_peer(local.port(), flags, seq, snd_nxt.0);
        // Outside the window: a RST is dropped, a SYN draws an ACK.
        inject(&mut s, false, &seg(Flags::RST, (rcv_nxt + 10_000_000).0));
        assert_eq!(state(&s.a, c), State::Established);
        let before = s.a.tcp_counters().out_rsts;
        let flags = if syn { Flags::SYN } else { Flags::RST };
        inject(&mut s, false, &seg(flags, (rcv_nxt + 100).0));
        let t = s.a.tcp_socket_mut(c).unwrap();
        assert_eq!(
            t.take_error().unwrap().kind(),
            io::ErrorKind::ConnectionReset
        );
        // RFC 793 §3.9: the in-window SYN is answered with a reset.
        assert_eq!(s.a.tcp_counters().out_rsts - before, syn as u64);
    }
}

#[test]
fn rst_in_last_ack_is_reported() {
    use crate::wire::tcp::Flags;
    let mut s = sim(LinkConfig::default(), 31);
    let (c, srv) = connect(&mut s);
    s.b.tcp_close(srv).unwrap();
    s.advance(Duration::from_millis(50));
    assert_eq!(state(&s.a, c), State::CloseWait);
    s.a.tcp_shutdown(c, std::net::Shutdown::Write).unwrap();
    assert_eq!(state(&s.a, c), State::LastAck);
    let t = s.a.tcp_socket(c).unwrap();
    let (local, rcv_nxt) = (t.local_addr(), t.rcv_nxt);
    let rst = from_peer(local.port(), Flags::RST, rcv_nxt.0, 0);
    inject(&mut s, false, &rst);
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(
        t.take_error().unwrap().kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[test]
fn time_wait_acks_old_duplicates_and_drops_segments_without_ack() {
    use crate::wire::tcp::Flags;
    let mut s = sim(LinkConfig::default(), 29);
    let (c, srv) = connect(&mut s);
    // A closes first (shutdown, the socket stays ours), B answers with
    // its FIN: A sits in TIME-WAIT.
    s.a.tcp_shutdown(c, std::net::Shutdown::Write).unwrap();
    s.advance(Duration::from_millis(50));
    s.b.tcp_close(srv).unwrap();
    s.advance(Duration::from_millis(50));
    assert_eq!(state(&s.a, c), State::TimeWait);
    let t = s.a.tcp_socket(c).unwrap();
    let (local, rcv_nxt, snd_nxt) = (t.local_addr(), t.rcv_nxt, t.snd_nxt);
    let seg = |flags: Flags, seq: u32| from_peer(local.port(), flags, seq, snd_nxt.0);
    let sent = |s: &Sim| s.stats().0.sent;
    let before = sent(&s);
    // In the window, no ACK bit: dropped without an answer.
    inject(&mut s, false, &seg(Flags::FIN, (rcv_nxt + 1).0));
    s.advance(Duration::from_millis(1));
    assert_eq!(sent(&s), before, "a segment without ACK is dropped");
    // An old duplicate (below RCV.NXT): ACKed.
    inject(&mut s, false, &seg(Flags::ACK, (rcv_nxt - 1).0));
    s.advance(Duration::from_millis(1));
    assert_eq!(sent(&s), before + 1, "an old duplicate is ACKed");
    assert_eq!(state(&s.a, c), State::TimeWait);
    // A new SYN does not take over a connection the application still
    // holds: challenge ACK (RFC 5961 §4), TIME-WAIT stays.
    inject(&mut s, false, &seg(Flags::SYN, (rcv_nxt + 1000).0));
    s.advance(Duration::from_millis(1));
    assert_eq!(sent(&s), before + 2, "a challenge ACK");
    assert_eq!(state(&s.a, c), State::TimeWait);
}

#[test]
fn paws_drops_old_timestamps() {
    use crate::wire::tcp::{Flags, Options, Repr};
    let mut s = sim(LinkConfig::default(), 20);
    let (c, srv) = connect(&mut s);
    let t = s.a.tcp_socket(c).unwrap();
    let (local, rcv_nxt, snd_nxt, recent) =
        (t.local_addr(), t.rcv_nxt, t.snd_nxt, t.ts.unwrap().recent);
    let data = Repr {
        src_port: 80,
        dst_port: local.port(),
        seq_number: rcv_nxt.0,
        ack_number: snd_nxt.0,
        flags: Flags::ACK | Flags::PSH,
        window_len: 1000,
        urgent_at: 0,
        options: Options {
            timestamps: Some((recent.wrapping_sub(1000), 0)),
            ..Options::default()
        },
        payload: b"stale",
    };
    inject(&mut s, false, &data);
    s.advance(Duration::from_millis(1));
    let mut buf = [0u8; 16];
    assert_eq!(
        s.a.tcp_recv(c, &mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock,
        "dropped by PAWS"
    );
    // A current timestamp is accepted.
    let fresh = Repr {
        options: Options {
            timestamps: Some((recent.wrapping_add(1), 0)),
            ..Options::default()
        },
        ..data
    };
    inject(&mut s, false, &fresh);
    assert_eq!(s.a.tcp_recv(c, &mut buf).unwrap(), 5);
    let _ = srv;
}

#[test]
fn delayed_ack_every_second_segment_or_40ms() {
    let mut s = sim(LinkConfig::default(), 21);
    let (c, srv) = connect(&mut s);
    s.b.tcp_socket_mut(srv).unwrap().set_nodelay(true);
    let acks_before = s.stats().0.sent;
    // One small segment: its ACK waits ~40 ms.
    s.b.tcp_send(srv, b"one").unwrap();
    s.advance(Duration::from_millis(5 + 30));
    assert_eq!(
        s.stats().0.sent,
        acks_before,
        "no ACK yet at 30 ms after arrival"
    );
    s.advance(Duration::from_millis(15));
    assert_eq!(s.stats().0.sent, acks_before + 1, "delayed ACK at 40 ms");
    // Two full segments: ACKed at once.
    let sent = s.stats().0.sent;
    let mss = s.b.tcp_info(srv).unwrap().mss;
    s.b.tcp_send(srv, &vec![7u8; 2 * mss]).unwrap();
    s.advance(Duration::from_millis(6));
    assert_eq!(
        s.stats().0.sent,
        sent + 1,
        "one ACK for two segments, without delay"
    );
    let _ = c;
}

#[test]
fn icmp_unreachable_fails_a_connect_but_only_with_a_matching_sequence() {
    let mut s = sim(LinkConfig::default(), 22);
    let now = s.now();
    // Nobody answers at 10.0.0.2:81 quickly enough: intercept the SYN.
    let c = s.a.tcp_connect(sa(B, 81), None, now).unwrap();
    let mut batch = crate::phy::FrameBatch::new(16, 2000);
    s.a.poll_transmit(now, &mut batch);
    let syn = batch.get(0).unwrap().to_vec();
    let icmp_code = |reason: crate::wire::icmpv4::DstUnreachable, quote: &[u8]| {
        let r = crate::wire::icmpv4::Repr::DstUnreachable {
            reason,
            next_hop_mtu: 0,
            data: quote,
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut crate::wire::icmpv4::Packet::new_unchecked(&mut b[..]));
        let mut ip = vec![0u8; 20 + b.len()];
        crate::wire::ipv4::Repr {
            src_addr: B.parse().unwrap(),
            dst_addr: A.parse().unwrap(),
            protocol: 1,
            payload_len: b.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut crate::wire::ipv4::Packet::new_unchecked(&mut ip[..]));
        ip[20..].copy_from_slice(&b);
        ip
    };
    let icmp =
        |quote: &[u8]| icmp_code(crate::wire::icmpv4::DstUnreachable::HostUnreachable, quote);
    // A forged quote with the wrong sequence number is ignored (RFC 5927).
    let mut bad = syn.clone();
    bad[24] ^= 0xff;
    s.a.handle_frame(now, &icmp(&bad[..28]));
    assert_eq!(state(&s.a, c), State::SynSent);
    s.a.handle_frame(now, &icmp(&syn[..28]));
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(
        t.take_error().unwrap().kind(),
        io::ErrorKind::HostUnreachable
    );
    // Time exceeded (the SYN ran out of hops) fails it too (Linux, FreeBSD).
    let c = s.a.tcp_connect(sa(B, 83), None, now).unwrap();
    batch.clear();
    s.a.poll_transmit(now, &mut batch);
    let syn = batch.get(0).unwrap().to_vec();
    let mut ip = icmp(&syn[..28]);
    ip[20] = 11; // type: time exceeded, code 0
    ip[22..24].fill(0);
    let csum = crate::wire::checksum::checksum(&ip[20..]);
    ip[22..24].copy_from_slice(&csum.to_be_bytes());
    s.a.handle_frame(now, &ip);
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(
        t.take_error().unwrap().kind(),
        io::ErrorKind::HostUnreachable
    );
    // With icmp_may_abort off, the same error is counted and ignored.
    let mut cfg = s.a.tcp_config().clone();
    cfg.icmp_may_abort = false;
    s.a.set_tcp_config(cfg);
    let c = s.a.tcp_connect(sa(B, 84), None, now).unwrap();
    batch.clear();
    s.a.poll_transmit(now, &mut batch);
    let syn = batch.get(0).unwrap().to_vec();
    s.a.handle_frame(now, &icmp(&syn[..28]));
    assert_eq!(state(&s.a, c), State::SynSent);
    assert_eq!(s.a.tcp_counters().icmp_ignored, 1);
    let mut cfg = s.a.tcp_config().clone();
    cfg.icmp_may_abort = true;
    s.a.set_tcp_config(cfg);
    // Host administratively prohibited (code 10) refuses the connection.
    let c = s.a.tcp_connect(sa(B, 82), None, now).unwrap();
    batch.clear();
    s.a.poll_transmit(now, &mut batch);
    let syn = batch.get(0).unwrap().to_vec();
    let code10 = crate::wire::icmpv4::DstUnreachable::Other(10);
    s.a.handle_frame(now, &icmp_code(code10, &syn[..28]));
    let t = s.a.tcp_socket_mut(c).unwrap();
    assert_eq!(
        t.take_error().unwrap().kind(),
        io::ErrorKind::ConnectionRefused
    );
}

#[test]
fn syn_flood_keeps_state_bounded_and_real_clients_in() {
    use crate::wire::tcp::{Flags, Options, Repr};
    let mut s = sim(LinkConfig::default(), 23);
    let mut cfg = s.b.tcp_config().clone();
    cfg.syn_backlog = 64;
    s.b.set_tcp_config(cfg);
    // An established transfer that must keep going.
    let (c, srv) = connect(&mut s);
    let flood_l = s.b.tcp_listen(sa("0.0.0.0", 443), 128).unwrap();
    let mut r = crate::sim::Rng::new(23);
    let mut max_sockets = 0;
    // 20,000 spoofed SYNs (random sources in the subnet and ports), 200
    // every millisecond, while the transfer runs.
    let data = pattern(2_000_000, 23);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for round in 0..100 {
        let now = s.now();
        for _ in 0..200 {
            let src = format!("10.0.0.{}", 3 + r.below(250));
            let syn = Repr {
                src_port: 1024 + r.below(60000) as u16,
                dst_port: 443,
                seq_number: r.next_u64() as u32,
                ack_number: 0,
                flags: Flags::SYN,
                window_len: 64240,
                urgent_at: 0,
                options: Options {
                    mss: Some(1460),
                    ..Options::default()
                },
                payload: &[],
            };
            let f = frame(&src, B, &syn);
            s.b.handle_frame(now, &f);
        }
        while sent < data.len() {
            match s.a.tcp_send(c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        while let Ok(n) = s.b.tcp_recv(srv, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        max_sockets = max_sockets.max(s.b.sockets().len());
        s.advance(Duration::from_millis(1));
        let _ = round;
    }
    // Half-open state never exceeded the SYN backlog (plus the listeners
    // and the one real connection).
    assert!(max_sockets <= 64 + 3, "sockets peaked at {max_sockets}");
    assert!(s.b.tcp_counters().syncookies_sent > 19_000);
    assert_eq!(s.b.tcp_listener(flood_l).unwrap().pending(), 0);
    // A real client still gets in (through a cookie) while the SYN queue
    // is full of spoofed half-open connections.
    let now = s.now();
    let c2 = s.a.tcp_connect(sa(B, 443), None, now).unwrap();
    s.advance(Duration::from_millis(100));
    assert_eq!(state(&s.a, c2), State::Established);
    assert_eq!(s.b.tcp_listener(flood_l).unwrap().pending(), 1);
    // The established transfer completed intact.
    s.run_while(s.now() + Duration::from_secs(30), |s| {
        while sent < data.len() {
            match s.a.tcp_send(c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        while let Ok(n) = s.b.tcp_recv(srv, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() < data.len()
    });
    assert!(got == data);
}

/// Both directions at once over a lossy link: data segments carry SACK
/// blocks while out-of-order data is held, and must still fit the MTU
/// (regression: they exceeded it and were dropped for DF).
#[test]
fn bidirectional_lossy_transfer_never_exceeds_the_mtu() {
    for seed in 0..40 {
        let mut s = sim(lossy(0.03, 0.0, 10, 0.0), 100 + seed);
        let (c, srv) = connect(&mut s);
        let up = pattern(300_000, seed);
        let down = pattern(300_000, seed + 1000);
        let (mut su, mut sd) = (0, 0);
        let (mut gu, mut gd) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 65536];
        s.run_while(s.now() + Duration::from_secs(300), |s| {
            while su < up.len() {
                match s.a.tcp_send(c, &up[su..]) {
                    Ok(n) => su += n,
                    Err(_) => break,
                }
            }
            while sd < down.len() {
                match s.b.tcp_send(srv, &down[sd..]) {
                    Ok(n) => sd += n,
                    Err(_) => break,
                }
            }
            while let Ok(n) = s.b.tcp_recv(srv, &mut buf) {
                if n == 0 {
                    break;
                }
                gu.extend_from_slice(&buf[..n]);
            }
            while let Ok(n) = s.a.tcp_recv(c, &mut buf) {
                if n == 0 {
                    break;
                }
                gd.extend_from_slice(&buf[..n]);
            }
            gu.len() < up.len() || gd.len() < down.len()
        });
        assert!(
            gu == up && gd == down,
            "seed {seed}: {} / {}\nA {:?}\nB {:?}\n{:?}",
            gu.len(),
            gd.len(),
            s.a.tcp_socket(c).unwrap(),
            s.b.tcp_socket(srv).unwrap(),
            (
                s.a.tcp_info(c).unwrap(),
                s.b.tcp_info(srv).unwrap(),
                s.now()
            )
        );
        assert_eq!(
            s.a.counters().ip.frag_fails,
            0,
            "seed {seed}: A dropped oversized segments"
        );
        assert_eq!(
            s.b.counters().ip.frag_fails,
            0,
            "seed {seed}: B dropped oversized segments"
        );
    }
}

/// Transfers `n` bytes A to B over a 20 ms RTT link while dropping, once
/// each, the first transmissions of the data segments numbered in `lost`
/// (0 = the first data segment). Returns the sender's info and how long
/// the transfer took.
fn transfer_losing(sack: bool, n: usize, lost: &[u32]) -> (crate::tcp::TcpInfo, Duration) {
    transfer_losing_with(&|c| c.sack = sack, n, lost)
}

/// [`transfer_losing`] with the settings `cfg` makes on both ends.
pub(super) fn transfer_losing_with(
    cfg: &dyn Fn(&mut crate::tcp::TcpConfig),
    n: usize,
    lost: &[u32],
) -> (crate::tcp::TcpInfo, Duration) {
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    let mut s = sim(link, 42);
    for iface in [&mut s.a, &mut s.b] {
        let mut c = iface.tcp_config().clone();
        cfg(&mut c);
        iface.set_tcp_config(c);
    }
    let (c, srv) = connect(&mut s);
    let mss = s.a.tcp_info(c).unwrap().mss as u32;
    let mut base: Option<u32> = None;
    let mut pending: Vec<u32> = lost.to_vec();
    s.drop_filter = Some(Box::new(move |from, f| {
        // IPv4 without options, then TCP: seq at 4, data offset at 12.
        if from != 0 || f.len() < 40 {
            return false;
        }
        let doff = (f[32] >> 4) as usize * 4;
        if f.len() <= 20 + doff {
            return false; // no payload
        }
        let seq = u32::from_be_bytes([f[24], f[25], f[26], f[27]]);
        let b = *base.get_or_insert(seq);
        let k = seq.wrapping_sub(b) / mss;
        if let Some(i) = pending.iter().position(|&x| x == k) {
            pending.swap_remove(i);
            return true;
        }
        false
    }));
    let data = pattern(n, 5);
    let start = s.now();
    let got = transfer(&mut s, true, c, srv, &data, Duration::from_secs(60));
    assert!(got == data, "{} of {} bytes", got.len(), n);
    (s.a.tcp_info(c).unwrap(), s.now() - start)
}

/// RFC 6675: three non-adjacent segments lost from one window (segments
/// 22-35 travel together) are all repaired in one recovery episode,
/// without a timeout and with one retransmission each; NewReno (SACK off)
/// needs a round trip per hole.
///
/// Three, because the simulator delivers a window's segments at the same
/// instant and the receiver answers them with one ACK, which carries at
/// most three SACK blocks next to timestamps: with four holes the lowest
/// SACKed range goes unreported and is (correctly, by IsLost) resent.
#[test]
fn sack_recovery_repairs_several_holes_in_one_round_trip() {
    let lost = [23, 27, 31];
    let (sack, t_sack) = transfer_losing(true, 200_000, &lost);
    let (reno, t_reno) = transfer_losing(false, 200_000, &lost);
    eprintln!(
        "SACK: {t_sack:?}, retransmits {} fast {} rto {}; \
         NewReno: {t_reno:?}, retransmits {} fast {} rto {}",
        sack.retransmits,
        sack.fast_retransmits,
        sack.timeouts,
        reno.retransmits,
        reno.fast_retransmits,
        reno.timeouts
    );
    assert!(sack.sack && !reno.sack);
    assert_eq!(sack.timeouts, 0);
    assert_eq!(sack.fast_retransmits, 1, "one recovery episode");
    assert_eq!(sack.retransmits, lost.len() as u64);
    // NewReno repairs one hole per RTT (20 ms): three more round trips.
    assert!(
        t_sack + Duration::from_millis(40) <= t_reno,
        "SACK {t_sack:?} against NewReno {t_reno:?}"
    );
}

/// RFC 6675 §5.1: when the retransmissions of two holes are lost too, the
/// RTO resends the holes only: go-back-N skips what the peer SACKed.
/// (Without RACK: with it the lost retransmissions are found without an
/// RTO, see `rack_sim_tests`.)
#[test]
fn rto_after_sack_recovery_resends_only_the_holes() {
    // Each listed twice: the first transmission and the fast
    // retransmission are both lost.
    let (i, _) = transfer_losing_with(&|c| c.rack = false, 200_000, &[23, 23, 27, 27]);
    eprintln!(
        "retransmits {} fast {} rto {}",
        i.retransmits, i.fast_retransmits, i.timeouts
    );
    assert_eq!(i.timeouts, 1);
    assert_eq!(i.retransmits, 4, "two holes, each sent twice more");
}

/// A sim whose A→B link loses everything: B never hears from A, and the
/// test plays B's part by injecting segments into A.
fn sim_deaf_b(seed: u64) -> Sim {
    let deaf = LinkConfig {
        loss: 1.0,
        ..LinkConfig::default()
    };
    sim2(deaf, LinkConfig::default(), seed)
}

#[test]
fn text_on_a_simultaneous_open_syn_is_delivered_once_established() {
    use crate::wire::tcp::{Flags, Repr};
    let mut s = sim_deaf_b(41);
    let now = s.now();
    let c =
        s.a.tcp_connect(SocketAddr::from(([10, 0, 0, 2], 80)), None, now)
            .unwrap();
    s.advance(Duration::from_millis(1));
    let t = s.a.tcp_socket(c).unwrap();
    let (port, iss) = (t.local_addr().port(), t.iss);
    // The peer's own SYN (no ACK) with three bytes of text.
    let syn = Repr {
        payload: b"abc",
        ..from_peer(port, Flags::SYN, 1000, 0)
    };
    inject(&mut s, false, &syn);
    s.advance(Duration::from_millis(1));
    assert_eq!(state(&s.a, c), State::SynReceived);
    let t = s.a.tcp_socket(c).unwrap();
    assert_eq!(t.rcv_nxt.0, 1001, "the SYN-ACK acknowledges only the SYN");
    let mut buf = [0u8; 16];
    assert_eq!(
        s.a.tcp_recv(c, &mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    // The peer's ACK of our SYN completes the handshake: the text is read.
    let ack = from_peer(port, Flags::ACK, 1004, (iss + 1).0);
    inject(&mut s, false, &ack);
    s.advance(Duration::from_millis(1));
    assert_eq!(state(&s.a, c), State::Established);
    assert_eq!(s.a.tcp_recv(c, &mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(s.a.tcp_socket(c).unwrap().rcv_nxt.0, 1004);
}

#[test]
fn syn_fin_is_dropped_by_listeners_by_default_and_in_syn_sent_when_asked() {
    use crate::tcp::SynFin;
    use crate::wire::tcp::Flags;
    let synfin = Flags::SYN | Flags::FIN;
    for mode in [SynFin::Accept, SynFin::DropInListen, SynFin::Drop] {
        // A listener: SYN+FIN gets a SYN-ACK only in Accept mode.
        let mut s = sim_deaf_b(43);
        let mut cfg = s.a.tcp_config().clone();
        cfg.syn_fin = mode;
        s.a.set_tcp_config(cfg);
        s.a.tcp_listen("0.0.0.0:5000".parse().unwrap(), 4).unwrap();
        let before = s.stats().0.sent;
        inject(&mut s, false, &from_peer(5000, synfin, 7, 0));
        s.advance(Duration::from_millis(1));
        let answered = s.stats().0.sent - before;
        assert_eq!(answered, (mode == SynFin::Accept) as u64, "{mode:?}");
        assert_eq!(
            s.a.tcp_counters().syn_fin_drops,
            (mode != SynFin::Accept) as u64
        );
        // SYN-SENT: a SYN+FIN opens simultaneously except in Drop mode.
        let now = s.now();
        let c =
            s.a.tcp_connect(SocketAddr::from(([10, 0, 0, 2], 80)), None, now)
                .unwrap();
        s.advance(Duration::from_millis(1));
        let port = s.a.tcp_socket(c).unwrap().local_addr().port();
        inject(&mut s, false, &from_peer(port, synfin, 1000, 0));
        s.advance(Duration::from_millis(1));
        let expect = if mode == SynFin::Drop {
            State::SynSent
        } else {
            State::SynReceived
        };
        assert_eq!(state(&s.a, c), expect, "{mode:?}");
    }
}

#[test]
fn time_wait_acks_a_bare_ack_past_rcv_nxt_but_not_one_at_it() {
    use crate::wire::tcp::Flags;
    let mut s = sim(LinkConfig::default(), 47);
    let (c, srv) = connect(&mut s);
    s.a.tcp_shutdown(c, std::net::Shutdown::Write).unwrap();
    s.advance(Duration::from_millis(50));
    s.b.tcp_close(srv).unwrap();
    s.advance(Duration::from_millis(50));
    assert_eq!(state(&s.a, c), State::TimeWait);
    let t = s.a.tcp_socket(c).unwrap();
    let (local, rcv_nxt, snd_nxt) = (t.local_addr(), t.rcv_nxt, t.snd_nxt);
    let seg = |seq: SeqNumber| from_peer(local.port(), Flags::ACK, seq.0, snd_nxt.0);
    let before = s.stats().0.sent;
    inject(&mut s, false, &seg(rcv_nxt));
    s.advance(Duration::from_millis(1));
    assert_eq!(
        s.stats().0.sent,
        before,
        "a bare ACK at RCV.NXT is absorbed"
    );
    inject(&mut s, false, &seg(rcv_nxt + 500));
    s.advance(Duration::from_millis(1));
    assert_eq!(s.stats().0.sent, before + 1, "one past it is ACKed (Linux)");
    assert_eq!(state(&s.a, c), State::TimeWait);
}

#[test]
fn no_options_sends_and_agrees_to_none() {
    let mut s = sim(LinkConfig::default(), 53);
    let mut cfg = s.a.tcp_config().clone();
    cfg.no_options = true;
    s.a.set_tcp_config(cfg);
    let (c, srv) = connect(&mut s);
    for t in [s.a.tcp_socket(c).unwrap(), s.b.tcp_socket(srv).unwrap()] {
        assert!(t.ts.is_none() && !t.sack_ok && !t.ws_ok);
        assert_eq!(t.smss, 536, "no MSS option: RFC 9293's default");
    }
    let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let got = transfer(&mut s, true, c, srv, &data, Duration::from_secs(60));
    assert_eq!(got, data);
}

/// Bulk A→B through a 10 Mbit/s bottleneck (20 ms each way, `queue`
/// bytes of queue), with or without SACK: returns the largest
/// delivery-rate sample A reported and whether any sample during the bulk
/// phase was flagged app-limited.
fn delivery_rate_over_bottleneck(sack: bool, queue: usize) -> (u64, bool) {
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        rate_bps: 10_000_000,
        queue_bytes: queue,
        ..LinkConfig::default()
    };
    let mut s = sim(link, 61);
    for h in [&mut s.a, &mut s.b] {
        let mut cfg = h.tcp_config().clone();
        cfg.sack = sack;
        h.set_tcp_config(cfg);
    }
    let (c, srv) = connect(&mut s);
    let data = vec![0x5a_u8; 3_000_000];
    let mut sent = 0;
    let mut buf = vec![0u8; 65536];
    let (mut max_rate, mut limited) = (0u64, false);
    let deadline = s.now() + Duration::from_secs(30);
    s.run_while(deadline, |s| {
        while sent < data.len() {
            match s.a.tcp_send(c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        while let Ok(n) = s.b.tcp_recv(srv, &mut buf) {
            if n == 0 {
                break;
            }
        }
        let i = s.a.tcp_info(c).unwrap();
        if let Some(r) = i.delivery_rate {
            max_rate = max_rate.max(r);
            // The send buffer stays full until the end: past the first
            // flight (sent after an idle connection, so app-limited as
            // the draft says), no sample is app-limited.
            if sent < data.len() && i.delivered > 200_000 {
                limited |= i.delivery_rate_app_limited;
            }
        }
        i.delivered < data.len() as u64
    });
    assert_eq!(
        s.a.tcp_info(c).unwrap().delivered,
        data.len() as u64,
        "every byte counted delivered once"
    );
    (max_rate, limited)
}

#[test]
fn delivery_rate_samples_measure_the_bottleneck() {
    // With SACK through a short queue (slow start overflows it: samples
    // are taken across SACK recoveries too); without SACK through a queue
    // that never overflows (see `rate.rs` on samples across a NewReno
    // recovery).
    for (sack, queue) in [(true, 100_000), (false, 8_000_000)] {
        let (max_rate, limited) = delivery_rate_over_bottleneck(sack, queue);
        println!("sack={sack} queue={queue}: max delivery-rate sample {max_rate} B/s");
        // 10 Mbit/s of IP packets carry 1448/1500 of it as payload:
        // 1.207 MB/s. Samples may not exceed it by more than one segment
        // per interval, nor stay far below.
        let goodput = 10_000_000 / 8 * 1448 / 1500;
        assert!(
            max_rate > goodput * 90 / 100 && max_rate < goodput * 110 / 100,
            "sack={sack}: max sample {max_rate} B/s against {goodput} B/s"
        );
        assert!(!limited, "sack={sack}: a bulk sender is not app-limited");
    }
}

#[test]
fn a_trickling_application_is_flagged_app_limited() {
    let mut s = sim(LinkConfig::default(), 67);
    let (c, srv) = connect(&mut s);
    let mut buf = [0u8; 4096];
    let mut flagged = 0;
    for _ in 0..20 {
        s.a.tcp_send(c, &[1u8; 500]).unwrap();
        s.advance(Duration::from_millis(50));
        while s.b.tcp_recv(srv, &mut buf).is_ok_and(|n| n > 0) {}
        let i = s.a.tcp_info(c).unwrap();
        flagged += i.delivery_rate_app_limited as u32;
    }
    assert!(flagged >= 18, "{flagged} of 20 samples flagged app-limited");
}

/// An interface whose device does TSO and checksum offload.
fn offload_host(addr: &str, seed: u64) -> Interface {
    let mut c = testkit::config(addr, seed);
    c.offload = crate::phy::Offload {
        tx_checksum: true,
        tso: true,
        gro: true,
    };
    Interface::new(c, Instant::ZERO)
}

/// TSO end to end: A hands its device super-segments (cut by the simulated
/// device into MSS-sized wire segments, as the kernel does), over a clean
/// link and a lossy, reordering one, in both directions at once; the data
/// arrives intact, and the loss is repaired with ordinary segments.
#[test]
fn tso_super_segments_cut_on_the_wire() {
    for (loss, jitter) in [(0.0, 0), (0.02, 3)] {
        let link = LinkConfig {
            loss,
            jitter: Duration::from_millis(jitter),
            rate_bps: 200_000_000,
            queue_bytes: 400_000,
            ..LinkConfig::default()
        };
        let mut s = Sim::new(offload_host(A, 11), host(B, 12), link, link, 11);
        let (c, srv) = connect(&mut s);
        let up = pattern(3_000_000, 5);
        let got = transfer(&mut s, true, c, srv, &up, Duration::from_secs(300));
        assert!(
            got == up,
            "loss {loss}: A→B arrived intact ({} of {} bytes)",
            got.len(),
            up.len()
        );
        let a = s.a.counters().link.clone();
        let (ab, _) = s.stats();
        assert!(
            a.gso_frames_out > 0,
            "loss {loss}: A should send super-segments: {a:?}"
        );
        // Each super-segment is at least two segments on the wire.
        assert!(
            ab.sent >= a.frames_out + a.gso_frames_out,
            "loss {loss}: the wire should carry the cut segments \
             ({} on the wire, {} frames, {} super-segments)",
            ab.sent,
            a.frames_out,
            a.gso_frames_out
        );
        eprintln!(
            "loss {loss}: {} frames ({} super-segments) became {} segments on the wire",
            a.frames_out, a.gso_frames_out, ab.sent
        );
        let info = s.a.tcp_info(c).unwrap();
        if loss > 0.0 {
            assert!(info.retransmits > 0, "{info:?}");
        }
        assert_eq!(s.a.counters().link.gso_drops, 0);
    }
}

/// GRO on the receiving side: super-segments of up to 64 KiB arrive whole
/// (what the kernel's own TCP hands a TUN with offload) at a receiver whose
/// device does no offload at all; it takes them, ACKs them and reads the
/// data intact, also when some are lost.
#[test]
fn whole_super_segments_are_received() {
    for loss in [0.0, 0.01] {
        let link = LinkConfig {
            loss,
            ..LinkConfig::default()
        };
        let mut s = Sim::new(offload_host(A, 21), host(B, 22), link, link, 21);
        s.whole_super_segments = true;
        let (c, srv) = connect(&mut s);
        let up = pattern(4_000_000, 6);
        let got = transfer(&mut s, true, c, srv, &up, Duration::from_secs(300));
        assert!(
            got == up,
            "loss {loss}: intact ({} of {})",
            got.len(),
            up.len()
        );
        let b = s.b.counters().link.clone();
        assert!(
            b.gro_frames_in > 0,
            "loss {loss}: B should see super-segments: {b:?}"
        );
        // Each holds many full-sized segments: ACKed at once, not after
        // the next one or a delayed-ACK timer.
        let acks = s.b.tcp_counters().out_segs;
        assert!(
            acks >= b.gro_frames_in,
            "loss {loss}: {acks} ACKs for {} super-segments",
            b.gro_frames_in
        );
        let a = s.a.tcp_info(c).unwrap();
        assert!(
            a.timeouts <= 2,
            "loss {loss}: recovery should not need RTOs: {a:?}"
        );
    }
}

/// Requests and answers, then the client closes: the server's FIN carries
/// the ACK of the client's FIN when the application closes right away
/// (three segments to close, as Linux in pingpong mode); when it does not
/// close, the ACK goes on its own after the delayed-ACK time. A connection
/// that only receives ACKs a FIN at once.
#[test]
fn fin_ack_rides_on_the_answering_fin() {
    for app_closes in [true, false] {
        let mut s = sim(LinkConfig::default(), 31);
        let (c, srv) = connect(&mut s);
        let mut buf = [0u8; 64];
        let now = s.now();
        s.a.tcp_send(c, b"request").unwrap();
        s.run_while(now + Duration::from_secs(1), |s| {
            s.b.tcp_recv(srv, &mut buf).is_err()
        });
        s.b.tcp_send(srv, b"answer").unwrap();
        let now = s.now();
        s.run_while(now + Duration::from_secs(1), |s| {
            s.a.tcp_recv(c, &mut buf).is_err()
        });
        s.a.tcp_shutdown(c, Shutdown::Write).unwrap();
        let before = s.b.tcp_counters().out_segs;
        let t0 = s.now();
        // Until the FIN has arrived (the server sees EOF).
        s.run_while(t0 + Duration::from_secs(1), |s| {
            !matches!(s.b.tcp_recv(srv, &mut buf), Ok(0))
        });
        if app_closes {
            s.b.tcp_close(srv).unwrap();
            let t1 = s.now();
            s.run_until(t1 + Duration::from_millis(100));
            assert_eq!(
                s.b.tcp_counters().out_segs - before,
                1,
                "one segment, FIN and ACK together"
            );
            assert_eq!(state(&s.a, c), State::TimeWait);
        } else {
            let t1 = s.now();
            s.run_until(t1 + Duration::from_millis(20));
            assert_eq!(s.b.tcp_counters().out_segs, before, "no ACK yet");
            s.run_until(t1 + Duration::from_millis(100));
            assert_eq!(s.b.tcp_counters().out_segs - before, 1, "the delayed ACK");
            assert_eq!(state(&s.a, c), State::FinWait2);
        }
    }
    // One-way data: the FIN is ACKed at once.
    let mut s = sim(LinkConfig::default(), 32);
    let (c, srv) = connect(&mut s);
    let data = pattern(10_000, 3);
    let got = transfer(&mut s, true, c, srv, &data, Duration::from_secs(10));
    assert_eq!(got, data);
    let now = s.now();
    s.run_until(now + Duration::from_millis(20)); // the link's delay, not 40 ms
    assert_eq!(state(&s.a, c), State::FinWait2);
}
