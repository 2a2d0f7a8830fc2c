//! Path MTU discovery (RFC 1191/8201, validated per RFC 5927) end to end in
//! the simulator: hand-made "fragmentation needed" messages against one
//! connection (what is ignored and counted, what shrinks the MSS and what
//! is sent again), the per-destination cache, and routers with a smaller
//! next-hop MTU appearing in the middle of transfers ([`MtuHop`]).

use std::io;

use crate::phy::FrameBatch;
use crate::sim::{LinkConfig, MtuHop, Sim};
use crate::socket::SocketHandle;
use crate::tcp::State;
use crate::testkit::{connect, pattern, sa, sim, state, transfer, A, B};
use crate::time::Duration;
use crate::wire::{icmpv4, ipv4};

/// An IPv4 ICMP "fragmentation needed" from `router` to A quoting `quote`
/// (an IP datagram A sent), reporting `mtu`.
fn frag_needed(router: &str, quote: &[u8], mtu: u16) -> Vec<u8> {
    let icmp = icmpv4::Repr::DstUnreachable {
        reason: icmpv4::DstUnreachable::FragRequired,
        next_hop_mtu: mtu,
        data: &quote[..quote.len().min(548)],
    };
    let mut f = vec![0u8; 20 + icmp.buffer_len()];
    ipv4::Repr {
        src_addr: router.parse().unwrap(),
        dst_addr: A.parse().unwrap(),
        protocol: ipv4::protocol::ICMP,
        payload_len: icmp.buffer_len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: false,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut f[..]));
    icmp.emit(&mut icmpv4::Packet::new_unchecked(&mut f[20..]));
    f
}

fn seq_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[24], frame[25], frame[26], frame[27]])
}

fn payload_len(frame: &[u8]) -> usize {
    let total = u16::from_be_bytes([frame[2], frame[3]]) as usize;
    total - 20 - (frame[32] >> 4) as usize * 4
}

/// What A transmits now, taken off the link (as a router that drops it).
fn take_frames(s: &mut Sim) -> Vec<Vec<u8>> {
    let now = s.now();
    let mut batch = FrameBatch::new(1024, 2000);
    s.a.poll_transmit(now, &mut batch);
    batch.iter().map(|f| f.to_vec()).collect()
}

/// A connection A -> B that has moved 100 kB (so its congestion window
/// has grown past the initial one), with `n` bytes more queued on A and
/// their first flight taken off the link: returns (client, server, the
/// flight).
fn flight_in_the_void(s: &mut Sim, n: usize) -> (SocketHandle, SocketHandle, Vec<Vec<u8>>) {
    let (c, srv) = connect(s);
    let warm = 100_000;
    assert_eq!(s.a.tcp_send(c, &pattern(warm, 2)).unwrap(), warm);
    assert_eq!(
        drain_to(s, srv, warm, Duration::from_secs(10)),
        pattern(warm, 2)
    );
    s.advance(Duration::from_secs(1));
    assert_eq!(s.a.tcp_send(c, &pattern(n, 1)).unwrap(), n);
    let frames = take_frames(s);
    assert!(frames.len() >= 2, "a flight of full segments");
    (c, srv, frames)
}

/// Runs the simulation, reading B's server socket, until `n` bytes have
/// arrived (or `limit` passed); returns them.
fn drain_to(s: &mut Sim, srv: SocketHandle, n: usize, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = s.now() + limit;
    s.run_while(deadline, |s| {
        loop {
            match s.b.tcp_recv(srv, &mut buf) {
                Ok(0) => return false,
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        got.len() < n
    });
    got
}

#[test]
fn forged_or_useless_messages_are_ignored_and_counted() {
    let mut s = sim(LinkConfig::default(), 41);
    let (c, _srv, frames) = flight_in_the_void(&mut s, 30_000);
    let first = &frames[0];
    let before = s.a.tcp_info(c).unwrap();
    assert_eq!((before.pmtu, before.mss), (1500, 1448));
    let counters = |s: &Sim| {
        let t = s.a.tcp_counters();
        (
            t.pmtu_updates,
            t.pmtu_unmatched,
            t.pmtu_bad_seq,
            t.pmtu_below_floor,
            t.pmtu_not_smaller,
        )
    };
    let now = s.now();
    // A sequence number outside SND.UNA..SND.NXT (RFC 5927 §4.1).
    let mut bad = first.clone();
    let una = s.a.tcp_socket(c).unwrap().snd_una.0;
    bad[24..28].copy_from_slice(&una.wrapping_sub(1).to_be_bytes());
    s.a.handle_frame(now, &frag_needed(B, &bad, 1280));
    let max = s.a.tcp_socket(c).unwrap().snd_max.0;
    bad[24..28].copy_from_slice(&max.to_be_bytes());
    s.a.handle_frame(now, &frag_needed(B, &bad, 1280));
    assert_eq!(counters(&s), (0, 0, 2, 0, 0));
    // No such connection (another port), another protocol, a short quote.
    let mut other = first.clone();
    other[20] ^= 1;
    s.a.handle_frame(now, &frag_needed(B, &other, 1280));
    let mut udp = first.clone();
    udp[9] = ipv4::protocol::UDP;
    s.a.handle_frame(now, &frag_needed(B, &udp, 1280));
    s.a.handle_frame(now, &frag_needed(B, &first[..27], 1280));
    assert_eq!(counters(&s), (0, 3, 2, 0, 0));
    // Below the IPv4 floor (552, Linux's min_pmtu), and not smaller.
    s.a.handle_frame(now, &frag_needed(B, first, 551));
    s.a.handle_frame(now, &frag_needed(B, first, 68));
    assert_eq!(counters(&s), (0, 3, 2, 2, 0));
    let after = s.a.tcp_info(c).unwrap();
    assert_eq!((after.pmtu, after.mss), (1500, 1448), "nothing changed");
    assert_eq!(s.a.path_mtu(B.parse().unwrap(), now), 1500);
    assert_eq!(s.a.path_mtu_cache_len(), 0);
    // The floor itself is accepted.
    s.a.handle_frame(now, &frag_needed(B, first, 552));
    assert_eq!(counters(&s), (1, 3, 2, 2, 0));
    assert_eq!(s.a.tcp_info(c).unwrap().pmtu, 552);
    // Now 1280 is not smaller (1280 from a router the 1500-byte segment
    // passed earlier, say).
    s.a.handle_frame(now, &frag_needed(B, first, 1280));
    assert_eq!(counters(&s), (1, 3, 2, 2, 1));
    assert_eq!(s.a.tcp_info(c).unwrap().pmtu, 552);
}

#[test]
fn a_valid_message_shrinks_the_mss_and_resends_at_the_new_size_without_cutting_cwnd() {
    let mut s = sim(LinkConfig::default(), 42);
    let n = 60_000;
    let (c, srv, frames) = flight_in_the_void(&mut s, n);
    let una = s.a.tcp_socket(c).unwrap().snd_una;
    assert_eq!(seq_of(&frames[0]), una.0);
    assert!(frames.iter().all(|f| f.len() == 1500));
    let before = s.a.tcp_info(c).unwrap();
    // The router in front of B says: 1280. It quotes the third segment:
    // any in flight will do.
    let now = s.now();
    s.a.handle_frame(now, &frag_needed("10.0.0.254", &frames[2], 1280));
    let after = s.a.tcp_info(c).unwrap();
    assert_eq!(after.pmtu, 1280);
    assert_eq!(
        after.mss,
        1280 - 40 - 12,
        "IP, TCP and the timestamp option"
    );
    assert_eq!(after.cwnd, before.cwnd, "not a congestion event");
    assert_eq!(after.ssthresh, before.ssthresh);
    assert_eq!(after.timeouts, 0);
    assert_eq!(s.a.tcp_counters().pmtu_updates, 1);
    // At once, without waiting for a timer: the flight again, re-cut,
    // from SND.UNA, every frame within the new MTU, back to back.
    let again = take_frames(&mut s);
    assert!(again.len() > frames.len(), "more, smaller segments");
    assert_eq!(seq_of(&again[0]), una.0);
    let mut next = una.0;
    for f in &again {
        assert!(f.len() <= 1280, "{} bytes", f.len());
        assert_eq!(seq_of(f), next, "contiguous");
        next = next.wrapping_add(payload_len(f) as u32);
    }
    let resent: usize = again.iter().map(|f| payload_len(f)).sum();
    let first_flight: usize = frames.iter().map(|f| payload_len(f)).sum();
    // As much as the (unchanged) window holds, in whole new segments.
    assert!(
        resent <= first_flight && resent + 1228 > first_flight,
        "{resent} vs {first_flight}"
    );
    assert_eq!(payload_len(&again[0]), 1228);
    let info = s.a.tcp_info(c).unwrap();
    assert!(info.retransmits >= frames.len() as u64);
    assert_eq!(info.cwnd, before.cwnd);
    // And the transfer completes, intact, without a timeout.
    // They pass this time (the router in front of B takes 1280).
    let now = s.now();
    for f in &again {
        s.b.handle_frame(now, f);
    }
    let got = drain_to(&mut s, srv, n, Duration::from_secs(30));
    assert_eq!(got, pattern(n, 1));
    assert_eq!(s.a.tcp_info(c).unwrap().timeouts, 0);
}

#[test]
fn the_cache_serves_the_next_connection_until_it_expires() {
    let mut s = sim(LinkConfig::default(), 43);
    let (c, _srv, frames) = flight_in_the_void(&mut s, 20_000);
    let now = s.now();
    s.a.handle_frame(now, &frag_needed("10.0.0.254", &frames[0], 1400));
    assert_eq!(s.a.tcp_info(c).unwrap().pmtu, 1400);
    let b = B.parse().unwrap();
    assert_eq!(s.a.path_mtu(b, now), 1400);
    assert_eq!(s.a.path_mtu_cache_len(), 1);
    // A new connection to B starts at 1400, both from A's connect and on
    // the passive side when B calls A.
    let now = s.now();
    let c2 = s.a.tcp_connect(sa(B, 80), None, now).unwrap();
    assert_eq!(s.a.tcp_info(c2).unwrap().pmtu, 1400);
    s.run_while(now + Duration::from_secs(5), |s| {
        state(&s.a, c2) != State::Established
    });
    let i = s.a.tcp_info(c2).unwrap();
    assert_eq!((i.pmtu, i.mss), (1400, 1400 - 52));
    // B calling A: the passive side starts at 1400 too.
    let l = s.a.tcp_listen(sa("0.0.0.0", 81), 4).unwrap();
    let now = s.now();
    let b_side = s.b.tcp_connect(sa(A, 81), None, now).unwrap();
    let mut accepted = None;
    s.run_while(now + Duration::from_secs(5), |s| {
        if let Ok((h, _)) = s.a.tcp_accept(l) {
            accepted = Some(h);
        }
        accepted.is_none()
    });
    let i = s.a.tcp_info(accepted.expect("accepted")).unwrap();
    assert_eq!((i.pmtu, i.mss), (1400, 1400 - 52));
    assert_eq!(
        s.b.tcp_info(b_side).unwrap().pmtu,
        1500,
        "B learned nothing"
    );
    // Ten minutes later the entry has expired: the link MTU again.
    let now = s.now() + Duration::from_secs(601);
    s.idle_until(now);
    assert_eq!(s.a.path_mtu(b, now), 1500);
    let c3 = s.a.tcp_connect(sa(B, 80), None, now).unwrap();
    s.run_while(now + Duration::from_secs(5), |s| {
        state(&s.a, c3) != State::Established
    });
    let i = s.a.tcp_info(c3).unwrap();
    assert_eq!((i.pmtu, i.mss), (1500, 1448));
}

#[test]
fn the_plateau_table_stands_in_for_an_unreported_mtu() {
    let mut s = sim(LinkConfig::default(), 44);
    let (c, _srv, frames) = flight_in_the_void(&mut s, 20_000);
    let now = s.now();
    s.a.handle_frame(now, &frag_needed("10.0.0.254", &frames[0], 0));
    assert_eq!(s.a.tcp_info(c).unwrap().pmtu, 1492, "RFC 1191 §7");
    let again = take_frames(&mut s);
    assert!(again.iter().all(|f| f.len() <= 1492));
    s.a.handle_frame(now, &frag_needed("10.0.0.254", &again[0], 0));
    assert_eq!(s.a.tcp_info(c).unwrap().pmtu, 1006);
    // A reported MTU not below the quoted datagram's length is bogus too:
    // the plateau below 1006 is 508, under the floor, so it is ignored.
    let again = take_frames(&mut s);
    assert_eq!(again[0].len(), 1006);
    s.a.handle_frame(now, &frag_needed("10.0.0.254", &again[0], 1006));
    assert_eq!(s.a.tcp_info(c).unwrap().pmtu, 1006);
    assert_eq!(s.a.tcp_counters().pmtu_below_floor, 1);
}

/// `n` bytes A -> B while a router with next-hop MTU `mtu` appears in
/// front of B once `at` bytes have arrived. Returns A's info and B's data.
fn transfer_through_mtu_drop(
    link: LinkConfig,
    seed: u64,
    n: usize,
    at: usize,
    hop: MtuHop,
    sack: bool,
) -> (crate::tcp::TcpInfo, crate::tcp::TcpInfo, Vec<u8>, Sim) {
    let mut s = sim(link, seed);
    for iface in [&mut s.a, &mut s.b] {
        let mut cfg = iface.tcp_config().clone();
        cfg.sack = sack;
        iface.set_tcp_config(cfg);
    }
    let (c, srv) = connect(&mut s);
    let data = pattern(n, seed);
    let (mut sent, mut got) = (0, Vec::with_capacity(n));
    let mut buf = vec![0u8; 65536];
    let mut hop_set = false;
    let mut before = None;
    let deadline = s.now() + Duration::from_secs(120);
    s.run_while(deadline, |s| {
        while sent < n {
            match s.a.tcp_send(c, &data[sent..]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        loop {
            match s.b.tcp_recv(srv, &mut buf) {
                Ok(0) => return false,
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        if !hop_set && got.len() >= at {
            before = Some(s.a.tcp_info(c).unwrap());
            s.set_mtu_hop(0, Some(hop));
            hop_set = true;
        }
        got.len() < n
    });
    (
        before.expect("hop was set"),
        s.a.tcp_info(c).unwrap(),
        got,
        s,
    )
}

fn router(mtu: usize, report_mtu: bool) -> MtuHop {
    MtuHop {
        mtu,
        router: "10.0.0.254".parse().unwrap(),
        report_mtu,
    }
}

#[test]
fn a_transfer_survives_a_router_lowering_the_mtu_mid_way() {
    // No bottleneck: no congestion loss, so anything resent is the MTU's.
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    for sack in [true, false] {
        let n = 4 << 20;
        let (before, after, got, s) =
            transfer_through_mtu_drop(link, 45, n, n / 3, router(1280, true), sack);
        assert!(got == pattern(n, 45), "sack {sack}: data intact");
        assert_eq!((after.pmtu, after.mss), (1280, 1228), "sack {sack}");
        let t = s.a.tcp_counters();
        assert_eq!(t.pmtu_updates, 1, "sack {sack}: one update");
        // One message per dropped segment: the rest are "not smaller" (or
        // quote what was acknowledged meanwhile).
        assert_eq!(
            t.pmtu_not_smaller + t.pmtu_bad_seq + 1,
            s.stats().0.too_big,
            "sack {sack}: every message accounted for"
        );
        assert!(s.stats().0.too_big >= 2);
        // No timeout, no recovery: the re-cut segments went at once, and
        // the window was not reduced for them.
        assert_eq!(after.timeouts, before.timeouts, "sack {sack}");
        assert_eq!(
            after.fast_retransmits, before.fast_retransmits,
            "sack {sack}"
        );
        assert_eq!(after.ssthresh, before.ssthresh, "sack {sack}");
        assert!(after.retransmits > before.retransmits);
    }
}

#[test]
fn an_old_router_without_the_mtu_is_found_by_the_plateaus() {
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    let n = 1 << 20;
    let (_, after, got, s) =
        transfer_through_mtu_drop(link, 46, n, n / 4, router(1280, false), true);
    assert!(got == pattern(n, 46), "data intact");
    // 1500 -> 1492 (still too big) -> 1006.
    assert_eq!(after.pmtu, 1006);
    assert_eq!(s.a.tcp_counters().pmtu_updates, 2);
    assert_eq!(after.timeouts, 0);
}

#[test]
fn mtu_drops_on_lossy_links_many_seeds() {
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(1),
        loss: 0.01,
        rate_bps: 20_000_000,
        queue_bytes: 128 * 1024,
        ..LinkConfig::default()
    };
    for seed in 0..24 {
        let n = 512 * 1024;
        let mtu = [1280, 1400, 576, 1006][seed as usize % 4];
        let (_, after, got, _) =
            transfer_through_mtu_drop(link, seed, n, n / 5, router(mtu, true), seed % 3 != 0);
        assert!(got == pattern(n, seed), "seed {seed}: data intact");
        assert_eq!(after.pmtu, mtu, "seed {seed}");
    }
}

#[test]
fn the_receiving_side_needs_nothing_and_both_directions_work() {
    // B -> A through a smaller MTU while A -> B is unaffected.
    let mut s = sim(LinkConfig::default(), 47);
    let (c, srv) = connect(&mut s);
    s.set_mtu_hop(1, Some(router(1280, true)));
    let n = 300_000;
    let data = pattern(n, 9);
    let got = transfer(&mut s, false, srv, c, &data, Duration::from_secs(60));
    assert!(got == data);
    assert_eq!(s.b.tcp_info(srv).unwrap().pmtu, 1280);
    assert_eq!(s.a.tcp_info(c).unwrap().pmtu, 1500);
}
