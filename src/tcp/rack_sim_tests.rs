//! RACK-TLP (RFC 8985), PRR (RFC 6937) and D-SACK (RFC 2883) in the
//! simulator: tail losses, lost retransmissions, reordering, duplicates
//! and spurious retransmissions, each against the behaviour without RACK
//! (RFC 6675's DupThresh rule, RTO for tails) where that shows the
//! difference. Virtual time, fixed seeds: the numbers are reproducible;
//! `cargo test --release --lib rack_sim -- --nocapture` prints them.

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use super::tests::transfer_losing_with;
use crate::sim::{LinkConfig, Sim};
use crate::socket::SocketHandle;
use crate::tcp::{TcpConfig, TcpInfo};
use crate::testkit::{configure, connect, pattern, sim, sim2, transfer};
use crate::time::Duration;

/// Index of the data segment in an IPv4 frame from A (its sequence number
/// relative to the first data segment seen, in MSS), if it carries data.
fn data_index(f: &[u8], base: &mut Option<u32>, mss: u32) -> Option<u32> {
    if f.len() < 40 {
        return None;
    }
    let doff = (f[32] >> 4) as usize * 4;
    if f.len() <= 20 + doff {
        return None;
    }
    let seq = u32::from_be_bytes([f[24], f[25], f[26], f[27]]);
    let b = *base.get_or_insert(seq);
    Some(seq.wrapping_sub(b) / mss)
}

/// Sends `n` bytes A to B without closing and runs until B has read them
/// all; returns when that was, after the first byte was written.
fn send_all(s: &mut Sim, c: SocketHandle, srv: SocketHandle, data: &[u8]) -> Duration {
    let start = s.now();
    let (mut sent, mut got) = (0, 0);
    let mut buf = vec![0u8; 65536];
    let mut done_at = None;
    s.run_while(start + Duration::from_secs(60), |s| {
        while sent < data.len() {
            match s.a.tcp_send(c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        loop {
            match s.b.tcp_recv(srv, &mut buf) {
                Ok(0) => panic!("EOF"),
                Ok(n) => {
                    assert_eq!(&buf[..n], &data[got..got + n]);
                    got += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        if got == data.len() {
            done_at = Some(s.now());
            return false;
        }
        true
    });
    // Let the last ACKs (D-SACKs among them) arrive.
    s.advance(Duration::from_secs(1));
    done_at.expect("transfer completed") - start
}

/// `n` bytes over a 20 ms RTT link, dropping once the first transmission
/// of the last `tail` data segments. Returns the sender's info and the
/// completion time.
fn tail_loss(cfg: &dyn Fn(&mut TcpConfig), n: usize, tail: u32) -> (TcpInfo, Duration) {
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    let mut s = sim(link, 7);
    configure(&mut s, cfg);
    let (c, srv) = connect(&mut s);
    let mss = s.a.tcp_info(c).unwrap().mss as u32;
    assert_eq!(
        n % mss as usize,
        0,
        "whole segments (Nagle holds a short last one)"
    );
    let last = (n as u32 - 1) / mss;
    let mut pending: Vec<u32> = (last + 1 - tail..=last).collect();
    let mut base = None;
    s.drop_filter = Some(Box::new(move |from, f| {
        if from != 0 {
            return false;
        }
        match data_index(f, &mut base, mss) {
            Some(k) => match pending.iter().position(|&x| x == k) {
                Some(i) => {
                    pending.swap_remove(i);
                    true
                }
                None => false,
            },
            None => false,
        }
    }));
    let t = send_all(&mut s, c, srv, &pattern(n, 3));
    (s.a.tcp_info(c).unwrap(), t)
}

fn line(label: &str, i: &TcpInfo, t: Duration) {
    eprintln!(
        "{label}: {t:?}; retransmits {} (fast recoveries {}), RTOs {}, TLPs {}, \
         RACK lost marks {}, D-SACKs in {}, undos {}",
        i.retransmits,
        i.fast_retransmits,
        i.timeouts,
        i.tlps,
        i.lost_total,
        i.dsacks_received,
        i.undos
    );
}

/// The test: a loss burst at the tail of a transfer (its last
/// three data segments) is repaired by a Tail Loss Probe, without waiting
/// for the RTO: the probe (the last segment again, after 2·SRTT) draws a
/// SACK, RACK marks the two before it lost, and SACK recovery resends
/// them. Without RACK-TLP nothing after the tail can reveal the loss and
/// the RTO (200 ms at least) fires.
#[test]
fn tail_loss_burst_recovers_by_tlp_without_rto() {
    let n = 42 * 1448;
    let (tlp, t_tlp) = tail_loss(&|_| {}, n, 3);
    let (old, t_old) = tail_loss(&|c| c.rack = false, n, 3);
    line("RACK-TLP", &tlp, t_tlp);
    line("without RACK-TLP", &old, t_old);
    assert_eq!(tlp.timeouts, 0, "{tlp:?}");
    assert!(tlp.tlps >= 1, "{tlp:?}");
    assert_eq!(tlp.retransmits, 3, "the probe and the two holes");
    assert!(old.timeouts >= 1 && old.tlps == 0, "{old:?}");
    assert!(
        t_tlp + Duration::from_millis(100) < t_old,
        "TLP {t_tlp:?} against RTO {t_old:?}"
    );
}

/// A single lost segment at the tail: the probe itself repairs it, and
/// the window is reduced for the loss (RFC 8985 §7.4) once an ACK beyond
/// the probe shows no D-SACK came for it.
#[test]
fn single_tail_loss_is_repaired_by_the_probe() {
    let (i, t) = tail_loss(&|_| {}, 42 * 1448, 1);
    line("one tail loss", &i, t);
    assert_eq!(i.timeouts, 0);
    assert_eq!(i.tlps, 1);
    assert_eq!(i.retransmits, 1);
    assert_eq!(i.fast_retransmits, 0, "no recovery needed");
}

/// A lost retransmission is found by RACK (a later-sent segment was
/// delivered and the retransmission is more than an RTT old), not by the
/// RTO: segments 23 and 27 and their first retransmissions are lost.
/// Without RACK the same run needs an RTO
/// (`rto_after_sack_recovery_resends_only_the_holes`).
#[test]
fn lost_retransmission_is_repaired_by_rack_without_rto() {
    let lost = [23, 23, 27, 27];
    let (rack, t_rack) = transfer_losing_with(&|_| {}, 200_000, &lost);
    let (old, t_old) = transfer_losing_with(&|c| c.rack = false, 200_000, &lost);
    line("RACK", &rack, t_rack);
    line("DupThresh", &old, t_old);
    assert_eq!(rack.timeouts, 0, "{rack:?}");
    assert_eq!(rack.retransmits, 4, "two holes, each sent twice");
    assert_eq!(rack.fast_retransmits, 1, "one recovery");
    assert!(rack.lost_total >= 4, "marked lost twice each: {rack:?}");
    assert_eq!(old.timeouts, 1);
    assert!(t_rack < t_old, "{t_rack:?} against {t_old:?}");
}

/// Reordering that RACK's window covers costs no retransmissions beyond
/// the first episode: over a 40 ms RTT link with up to 4 ms of jitter per
/// frame (reordering bursts of segments freely), the reordering window
/// min_RTT/4 = 10 ms covers it once reordering has been seen. RFC 6675's
/// DupThresh rule retransmits whenever three later segments overtake one.
#[test]
fn reordering_within_the_window_causes_no_spurious_retransmissions() {
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(4),
        ..LinkConfig::default()
    };
    let run = |cfg: &dyn Fn(&mut TcpConfig)| {
        let mut s = sim(link, 5);
        configure(&mut s, cfg);
        let (c, srv) = connect(&mut s);
        let data = pattern(2_000_000, 9);
        let start = s.now();
        let got = transfer(&mut s, true, c, srv, &data, Duration::from_secs(120));
        assert!(got == data);
        (s.a.tcp_info(c).unwrap(), s.now() - start)
    };
    let (rack, t_rack) = run(&|_| {});
    let (old, t_old) = run(&|c| c.rack = false);
    line("RACK, 4 ms jitter", &rack, t_rack);
    line("DupThresh, 4 ms jitter", &old, t_old);
    // Nothing is lost: every retransmission is spurious.
    assert!(rack.retransmits <= 5, "{rack:?}");
    assert_eq!(rack.timeouts, 0);
    assert!(old.retransmits > 5 * rack.retransmits.max(1), "{old:?}");
}

/// The receiver reports duplicates with a D-SACK block first (RFC 2883):
/// A to B duplicates 5% of frames; every D-SACK B sends is on the wire
/// (a first SACK block below the ACK number) and reaches A, which counts
/// it and does not take it for loss (no retransmission at all).
#[test]
fn duplicates_draw_dsacks_and_no_retransmissions() {
    let ab = LinkConfig {
        delay: Duration::from_millis(10),
        dup: 0.05,
        ..LinkConfig::default()
    };
    let ba = LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    let mut s = sim2(ab, ba, 3);
    let (c, srv) = connect(&mut s);
    let on_wire = Rc::new(Cell::new(0u64));
    let seen = on_wire.clone();
    s.drop_filter = Some(Box::new(move |from, f| {
        if from == 1 && first_sack_below_ack(f) {
            seen.set(seen.get() + 1);
        }
        false
    }));
    let data = pattern(500_000, 1);
    let got = transfer(&mut s, true, c, srv, &data, Duration::from_secs(60));
    assert!(got == data);
    s.advance(Duration::from_secs(1));
    let (a, b) = (s.a.tcp_info(c).unwrap(), s.b.tcp_info(srv).unwrap());
    eprintln!(
        "D-SACKs sent {} on the wire {} received {}; sender retransmits {}; link {:?}",
        b.dsacks_sent,
        on_wire.get(),
        a.dsacks_received,
        a.retransmits,
        s.stats().0
    );
    assert!(s.stats().0.duplicated > 10);
    // Fewer than the duplicates: copies of pure ACKs draw none, and the
    // simulator delivers both copies at once, so several duplicates of one
    // instant are answered by one ACK (with the latest D-SACK).
    assert!(b.dsacks_sent >= 5, "{b:?}");
    assert_eq!(on_wire.get(), b.dsacks_sent);
    assert_eq!(a.dsacks_received, b.dsacks_sent);
    assert_eq!(a.retransmits, 0, "{a:?}");
    assert_eq!(a.fast_retransmits, 0);
}

/// Whether an IPv4/TCP frame carries a SACK option whose first block
/// starts below its acknowledgement number (a D-SACK, RFC 2883 §4).
fn first_sack_below_ack(f: &[u8]) -> bool {
    if f.len() < 40 {
        return false;
    }
    let ack = u32::from_be_bytes([f[28], f[29], f[30], f[31]]);
    let end = (20 + (f[32] >> 4) as usize * 4).min(f.len());
    let mut i = 40;
    while i < end {
        match f[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = f.get(i + 1) else { break };
                let len = len as usize;
                if len < 2 {
                    break;
                }
                if kind == 5 && len >= 10 && i + 10 <= end {
                    let left = u32::from_be_bytes([f[i + 2], f[i + 3], f[i + 4], f[i + 5]]);
                    return (left.wrapping_sub(ack) as i32) < 0;
                }
                i += len;
            }
        }
    }
    false
}

/// A spurious fast retransmission is undone: data segment 20 is delayed
/// 30 ms (the RTT is 20 ms), RACK (no reordering seen yet, three segments
/// SACKed: window 0) retransmits it, the original arrives after the
/// retransmission and B reports it with a D-SACK; every retransmission of
/// the episode was spurious, so the window and ssthresh from before come
/// back (still in slow start: ssthresh unset).
#[test]
fn spurious_fast_retransmit_is_undone_by_dsack() {
    let run = |rack: bool| {
        let link = LinkConfig {
            delay: Duration::from_millis(10),
            ..LinkConfig::default()
        };
        let mut s = sim(link, 11);
        configure(&mut s, |c| c.rack = rack);
        let (c, srv) = connect(&mut s);
        let mss = s.a.tcp_info(c).unwrap().mss as u32;
        let mut base = None;
        let mut done = false;
        s.delay_filter = Some(Box::new(move |from, f| {
            if from != 0 || done {
                return None;
            }
            (data_index(f, &mut base, mss) == Some(20)).then(|| {
                done = true;
                Duration::from_millis(30)
            })
        }));
        let t = send_all(&mut s, c, srv, &pattern(100_000, 2));
        (s.a.tcp_info(c).unwrap(), t)
    };
    let (i, t) = run(true);
    line("delayed segment, RACK", &i, t);
    assert_eq!(i.fast_retransmits, 1);
    assert_eq!(i.retransmits, 1);
    assert!(i.dsacks_received >= 1, "{i:?}");
    assert_eq!(i.undos, 1, "{i:?}");
    assert_eq!(i.ssthresh, usize::MAX, "ssthresh restored");
    assert_eq!(i.timeouts, 0);
    // The same with DupThresh: the same spurious retransmission and undo
    // (the D-SACK logic does not depend on RACK).
    let (j, t) = run(false);
    line("delayed segment, DupThresh", &j, t);
    assert_eq!(j.undos, 1, "{j:?}");
}
