//! CUBIC and NewReno in the simulator: bulk transfers over a 100 Mbit/s,
//! 40 ms RTT bottleneck, clean and with 1% random loss, against what the
//! models predict. Virtual time, fixed seeds: the numbers are reproducible.
//!
//! Run with `cargo test --release cubic_sim -- --nocapture` to see them.

use std::io;

use crate::sim::LinkConfig;
use crate::socket::SocketHandle;
use crate::tcp::{State, TcpInfo};
use crate::testkit::{configure, connect, sa, sim2, state, B};
use crate::time::Duration;

/// Bottleneck rate.
const RATE_BPS: u64 = 100_000_000;
/// One-way delay: 40 ms RTT.
const ONE_WAY: Duration = Duration::from_millis(20);
/// One bandwidth-delay product: 100 Mbit/s * 40 ms.
const BDP: usize = 500_000;

/// The bottleneck, A to B (data); `loss` random loss on it, `queue` bytes
/// of buffer.
fn bottleneck(loss: f64, queue: usize) -> LinkConfig {
    LinkConfig {
        delay: ONE_WAY,
        rate_bps: RATE_BPS,
        queue_bytes: queue,
        loss,
        ..LinkConfig::default()
    }
}

/// The ACK path, B to A: same delay, same rate, no loss.
fn ack_path() -> LinkConfig {
    LinkConfig {
        delay: ONE_WAY,
        rate_bps: RATE_BPS,
        queue_bytes: BDP,
        ..LinkConfig::default()
    }
}

/// What a bulk run measured.
#[derive(Debug)]
struct Run {
    /// Bytes the receiving application had read at the end of each
    /// simulated second after the connection was established.
    per_second: Vec<u64>,
    /// The sender's TCP_INFO at the end.
    info: TcpInfo,
    /// The sender's smoothed RTT at the end of each simulated second.
    srtt: Vec<Duration>,
    /// Frames dropped at the bottleneck queue.
    queue_drops: u64,
    /// Frames lost at random.
    lost: u64,
    /// The sender's largest burst: most data frames at one instant.
    max_burst: u64,
}

impl Run {
    /// Goodput in bit/s over simulated seconds `from..to`.
    fn goodput(&self, from: usize, to: usize) -> f64 {
        let start = if from == 0 {
            0
        } else {
            self.per_second[from - 1]
        };
        (self.per_second[to - 1] - start) as f64 * 8.0 / (to - from) as f64
    }
}

/// A on the left sends as fast as `congestion` lets it, B reads everything,
/// for `secs` simulated seconds after the handshake.
fn bulk(congestion: &str, loss: f64, seed: u64, secs: usize) -> Run {
    bulk_queue(congestion, loss, seed, secs, BDP)
}

fn bulk_queue(congestion: &str, loss: f64, seed: u64, secs: usize, queue: usize) -> Run {
    bulk_with(congestion, loss, seed, secs, queue, false)
}

fn bulk_with(
    congestion: &str,
    loss: f64,
    seed: u64,
    secs: usize,
    queue: usize,
    pacing: bool,
) -> Run {
    let mut s = sim2(bottleneck(loss, queue), ack_path(), seed);
    configure(&mut s, |cfg| {
        cfg.congestion = congestion.into();
        cfg.pacing = pacing;
        cfg.send_buffer = 4 << 20;
        cfg.recv_buffer = 4 << 20;
    });
    let (c, srv) = connect(&mut s);
    assert_eq!(s.a.tcp_info(c).unwrap().congestion.0, congestion);

    let chunk = vec![0x5au8; 65536];
    let mut buf = vec![0u8; 65536];
    let mut got = 0u64;
    let start = s.now();
    let mut per_second = Vec::with_capacity(secs);
    let mut srtt = Vec::with_capacity(secs);
    let trace: Option<(u64, u64)> = std::env::var("SIM_TRACE_MS").ok().and_then(|v| {
        let (a, b) = v.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    });
    let step: u64 = std::env::var("SIM_STEP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let per_sec = (1000 / step) as usize;
    for tick in 1..=secs * per_sec {
        let sec = tick.div_ceil(per_sec);
        let until = start + Duration::from_millis(tick as u64 * step);
        s.run_while(until, |s| {
            loop {
                match s.a.tcp_send(c, &chunk) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            loop {
                match s.b.tcp_recv(srv, &mut buf) {
                    Ok(0) => panic!("unexpected EOF"),
                    Ok(n) => got += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
            true
        });
        if let Some((a, b)) = trace {
            let ms = tick as u64 * step;
            if (a..=b).contains(&ms) {
                let i = s.a.tcp_info(c).unwrap();
                let t = s.a.tcp_socket(c).unwrap();
                eprintln!(
                    "   una {:?} rto_at {:?} now {:?} rack.rtt {:?} recovery {:?} pipe {} rcwnd {} pace_next {:?} lost_at_una {} rexmit_at_una {:?} lost_ranges {:?}",
                    t.snd_una, t.rto_at, s.now(), t.rack.rtt, t.recovery, t.pipe(), t.recovery_cwnd(), t.pace_next,
                    t.sack.is_lost(t.snd_una, 1448), t.sack.rexmitted_at(t.snd_una), t.sack.lost_ranges()
                );
                eprintln!(
                    "   front {:?} rack xmit_ts {:?} end {:?} reo_at {:?}",
                    t.segs.front(),
                    t.rack.xmit_ts,
                    t.rack.end_seq,
                    t.reo_at
                );
                eprintln!(
                    "{ms} ms: got {got} cwnd {} {:?} pacing {:?} rate {:?} srtt {:?} flight {} sacked {} lost {} retrans {} rtos {}",
                    i.cwnd, i.congestion, i.pacing_rate, i.delivery_rate, i.srtt, i.unacked, i.sacked, i.lost, i.retransmits, i.timeouts
                );
            }
        }
        if tick % per_sec != 0 {
            continue;
        }
        per_second.push(got);
        if std::env::var("BBR_DEBUG").is_ok() {
            let i = s.a.tcp_info(c).unwrap();
            eprintln!("sec {sec}: got {got} cwnd {} state {:?} pacing {:?} rate {:?} srtt {:?} min_rtt {:?}", i.cwnd, i.congestion, i.pacing_rate, i.delivery_rate, i.srtt, i.min_rtt);
        }
        srtt.push(s.a.tcp_info(c).unwrap().srtt.unwrap_or_default());
    }
    let (ab, _) = s.stats();
    Run {
        per_second,
        info: s.a.tcp_info(c).unwrap(),
        srtt,
        queue_drops: ab.queue_drops,
        lost: ab.lost,
        max_burst: ab.max_burst,
    }
}

fn report(label: &str, r: &Run) {
    let per_sec: Vec<String> = r
        .per_second
        .iter()
        .scan(0u64, |prev, &x| {
            let d = x - *prev;
            *prev = x;
            Some(format!("{:.1}", d as f64 * 8e-6))
        })
        .collect();
    eprintln!(
        "{label}: Mbit/s per second [{}]; cwnd {} ssthresh {} state {:?} \
         retransmits {} (fast {}) timeouts {} queue drops {} random losses {}",
        per_sec.join(" "),
        r.info.cwnd,
        r.info.ssthresh,
        r.info.congestion,
        r.info.retransmits,
        r.info.fast_retransmits,
        r.info.timeouts,
        r.queue_drops,
        r.lost,
    );
}

/// Utilisation of the 100 Mbit/s bottleneck with a one-BDP queue, over 60
/// simulated seconds, measured over seconds 50–60 (steady state).
///
/// Goodput excludes the IP/TCP headers and options (52 of 1500 bytes), so a
/// full link is 96.5 Mbit/s of goodput; 90% of the link is asserted.
///
/// Model: with a one-BDP buffer the window at a loss is about 2 BDP; CUBIC
/// drops to 1.4 BDP and NewReno to 1 BDP, both still filling the pipe, so
/// both should run at ~100%. CUBIC does (96.5 Mbit/s); NewReno measures
/// about 94% (92% before SACK-based recovery) because it dips to ~78-80
/// Mbit/s after each loss while its window is halved; 85% is asserted for
/// it.
///
/// For the first 10 s see [`clean_link_90_percent_within_10_s`].
#[test]
fn clean_link_utilisation() {
    for (cc, floor) in [("cubic", 0.9), ("reno", 0.85)] {
        let r = bulk(cc, 0.0, 7, 60);
        report(cc, &r);
        let late = r.goodput(50, 60);
        eprintln!(
            "{cc}: goodput 0-10 s {:.1} Mbit/s, 5-10 s {:.1}, 50-60 s {:.1} Mbit/s ({:.1}% of the link)",
            r.goodput(0, 10) * 1e-6,
            r.goodput(5, 10) * 1e-6,
            late * 1e-6,
            late / RATE_BPS as f64 * 100.0
        );
        assert!(
            late >= floor * RATE_BPS as f64,
            "{cc}: {:.1} Mbit/s over seconds 50-60",
            late * 1e-6
        );
    }
}

/// The target: ≥ 90% of the link over seconds 5–10. The initial
/// slow start overflows the one-BDP queue (some 3,400 tail drops in one
/// window); with RFC 6675 SACK-based recovery the sender repairs many
/// holes per round trip (NewReno's RFC 6582 recovery repaired one, and
/// the first 10-20 s ran at ~0.6 Mbit/s). Measured: 96.5 Mbit/s over
/// seconds 5-10 (per second: 73.6 89.9 95.6 96.5 ...), no RTO, 505
/// retransmissions for 419 queue drops.
#[test]
fn clean_link_90_percent_within_10_s() {
    let r = bulk("cubic", 0.0, 7, 10);
    report("cubic", &r);
    let g = r.goodput(5, 10);
    assert!(g >= 0.9 * RATE_BPS as f64, "{:.1} Mbit/s", g * 1e-6);
}

/// 1% random loss on the data path (none on the ACK path, no queueing
/// loss): goodput against the models, over 60 simulated seconds.
///
/// Reno, Mathis et al. 1997: `rate = MSS/RTT * sqrt(3/2)/sqrt(p)` ≈
/// `MSS/RTT * 1.22/sqrt(p)` (NewReno counts bytes in congestion avoidance,
/// so delayed ACKs do not halve the growth: b = 1).
///
/// CUBIC, RFC 9438 §5.1 (Figure 7): in the cubic region the average window
/// is `AVG_W_cubic = (C*(3+β)/(4*(1-β)))^(1/4) * RTT^(3/4) / p^(3/4)`
/// = `1.054 * RTT^0.75 / p^0.75` segments (RTT in seconds); the Reno-friendly
/// region has `AVG_W_est = sqrt(α_cubic*(1+β)/(2*(1-β)*p))` = `1.22/sqrt(p)`
/// (with α_cubic = 3(1-β)/(1+β)), and CUBIC runs at whichever is larger. At
/// RTT 40 ms and p = 1% that is max(2.98, 12.2) segments: the Reno-friendly
/// region, so CUBIC's model rate equals Reno's, about 3.5 Mbit/s.
///
/// Both formulas ignore timeouts and recovery from several losses in one
/// window,
/// and at ~12 segments per window a loss is sometimes not followed by three
/// duplicate ACKs; Padhye et al.'s model puts Reno some 10-30% below Mathis
/// at p = 1%. A factor of two either way is the tolerance asserted.
#[test]
fn one_percent_loss_against_models() {
    const P: f64 = 0.01;
    let mss = 1448.0; // 1500 - 20 (IP) - 20 (TCP) - 12 (timestamps)
    let rtt = 0.040;
    let reno_w = 1.22 / P.sqrt();
    let cubic_w = 1.054 * rtt_pow(rtt) / P.powf(0.75);
    let model = |w: f64| w * mss * 8.0 / rtt;
    let reno_model = model(reno_w);
    let cubic_model = model(cubic_w.max(reno_w));
    for (cc, predicted) in [("cubic", cubic_model), ("reno", reno_model)] {
        let r = bulk(cc, P, 11, 60);
        report(cc, &r);
        let g = r.goodput(0, 60);
        eprintln!(
            "{cc} at 1% loss: {:.2} Mbit/s over 60 s, model {:.2} Mbit/s (ratio {:.2}; \
             cubic-region window {cubic_w:.2}, Reno window {reno_w:.2} segments)",
            g * 1e-6,
            predicted * 1e-6,
            g / predicted
        );
        assert!(
            (0.5..=2.0).contains(&(g / predicted)),
            "{cc}: {:.2} Mbit/s against a model of {:.2}",
            g * 1e-6,
            predicted * 1e-6
        );
    }
}

fn rtt_pow(rtt: f64) -> f64 {
    rtt.powf(0.75)
}

/// BBR on the clean link with a one-BDP queue: ≥ 90 % of the link over
/// seconds 5-10 (the target for every controller).
#[test]
fn bbr_clean_link_90_percent_within_10_s() {
    let r = bulk("bbr", 0.0, 7, 10);
    report("bbr", &r);
    let g = r.goodput(5, 10);
    eprintln!("bbr clean: {:.1} Mbit/s over seconds 5-10", g * 1e-6);
    assert!(g >= 0.9 * RATE_BPS as f64, "{:.1} Mbit/s", g * 1e-6);
}

/// BBR at 1 % random loss keeps ≥ 80 % of the link (it does not treat
/// random loss as congestion; CUBIC and NewReno get the ~3.5 Mbit/s of
/// their models, see [`one_percent_loss_against_models`]).
#[test]
fn bbr_one_percent_loss_keeps_80_percent() {
    let r = bulk("bbr", 0.01, 11, 30);
    report("bbr 1% loss", &r);
    let g = r.goodput(10, 30);
    eprintln!("bbr 1% loss: {:.1} Mbit/s over seconds 10-30", g * 1e-6);
    assert!(g >= 0.8 * RATE_BPS as f64, "{:.1} Mbit/s", g * 1e-6);
}

/// An 8-BDP (4 MB) buffer: BBR keeps the queue near empty, its RTT within
/// 1.25 × the 40 ms base over seconds 20-30; CUBIC, loss-based, fills the
/// buffer (its RTT grows towards the 360 ms a full buffer adds).
#[test]
fn deep_buffer_bbr_keeps_rtt_low_cubic_fills_it() {
    let base = 2 * ONE_WAY;
    for cc in ["bbr", "cubic"] {
        let r = bulk_queue(cc, 0.0, 13, 30, 8 * BDP);
        report(cc, &r);
        let late = &r.srtt[20..30];
        let avg = late.iter().map(|d| d.as_micros()).sum::<u128>() / late.len() as u128;
        let g = r.goodput(20, 30);
        eprintln!(
            "{cc} deep buffer: mean srtt {:.1} ms over seconds 20-30 ({:.2} x base), {:.1} Mbit/s",
            avg as f64 / 1000.0,
            avg as f64 / base.as_micros() as f64,
            g * 1e-6
        );
        if cc == "bbr" {
            assert!(avg * 100 <= base.as_micros() * 125, "bbr: {avg} us");
            assert!(g >= 0.9 * RATE_BPS as f64, "bbr: {:.1} Mbit/s", g * 1e-6);
        } else {
            assert!(avg >= base.as_micros() * 2, "cubic: {avg} us");
        }
    }
}

/// Pacing for CUBIC (`TcpConfig::pacing`): the window goes out spread
/// over the round trip instead of in bursts as ACKs open it. The largest
/// burst the sender hands the link at one instant shrinks to what the
/// pacer's 1 ms catch-up credit allows, and the link is used as fully.
///
/// Measured, not asserted: pacing does not reduce the slow-start drops
/// into this one-BDP queue (HyStart++ sees the queue's delay later when
/// no bursts show it early; Linux paces CUBIC only with the `fq` qdisc).
#[test]
fn paced_cubic_sends_smaller_bursts() {
    let bursty = bulk_with("cubic", 0.0, 7, 10, BDP, false);
    let paced = bulk_with("cubic", 0.0, 7, 10, BDP, true);
    report("cubic", &bursty);
    report("cubic paced", &paced);
    eprintln!(
        "largest burst: {} frames bursty, {} paced; queue drops {} bursty, {} paced",
        bursty.max_burst, paced.max_burst, bursty.queue_drops, paced.queue_drops
    );
    assert!(paced.info.pacing_rate.is_some());
    assert!(bursty.info.pacing_rate.is_none());
    // 1 ms at 2 x 100 Mbit/s is ~17 frames: the pacer's catch-up bound.
    assert!(paced.max_burst <= 17, "paced burst {}", paced.max_burst);
    // ACKs arrive spread by the 100 Mbit/s return path, so even the bursty
    // sender's bursts are short here (10 frames, against 5 paced).
    assert!(
        bursty.max_burst > paced.max_burst,
        "bursty {}",
        bursty.max_burst
    );
    let g = paced.goodput(5, 10);
    assert!(g >= 0.9 * RATE_BPS as f64, "{:.1} Mbit/s", g * 1e-6);
}

/// What several flows sharing the bottleneck measured.
struct Shared {
    /// Per flow: bytes its receiver had read at the end of each second.
    per_second: Vec<Vec<u64>>,
    /// Per flow: the sender's TCP_INFO at the end.
    info: Vec<TcpInfo>,
    queue_drops: u64,
}

impl Shared {
    /// Goodput of flow `f` in bit/s over seconds `from..to`.
    fn goodput(&self, f: usize, from: usize, to: usize) -> f64 {
        let p = &self.per_second[f];
        let start = if from == 0 { 0 } else { p[from - 1] };
        (p[to - 1] - start) as f64 * 8.0 / (to - from) as f64
    }
}

/// Jain's fairness index of `x`: 1 when all are equal, 1/n when one
/// takes everything.
fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    if sq == 0.0 {
        return 0.0;
    }
    sum * sum / (x.len() as f64 * sq)
}

/// One bulk flow per entry of `ccs` (its congestion controller, chosen per
/// socket), all from A to B through the one bottleneck (1 BDP of buffer
/// unless `queue`), all starting together, for `secs` simulated seconds.
fn shared(ccs: &[&str], seed: u64, secs: usize, queue: usize) -> Shared {
    let mut s = sim2(bottleneck(0.0, queue), ack_path(), seed);
    configure(&mut s, |cfg| {
        cfg.send_buffer = 4 << 20;
        cfg.recv_buffer = 4 << 20;
    });
    let l = s.b.tcp_listen(sa("0.0.0.0", 80), 16).unwrap();
    let now = s.now();
    let mut clients = Vec::new();
    for cc in ccs {
        let c = s.a.tcp_connect(sa(B, 80), None, now).unwrap();
        s.a.tcp_socket_mut(c).unwrap().set_congestion(cc).unwrap();
        clients.push(c);
    }
    // Accepted connections, matched to clients by the client's port.
    let mut servers: Vec<Option<SocketHandle>> = vec![None; ccs.len()];
    let ports: Vec<u16> = clients
        .iter()
        .map(|&c| s.a.tcp_socket(c).unwrap().local_addr().port())
        .collect();
    s.run_while(now + Duration::from_secs(10), |s| {
        while let Ok((h, peer)) = s.b.tcp_accept(l) {
            let i = ports.iter().position(|&p| p == peer.port()).unwrap();
            servers[i] = Some(h);
        }
        !(servers.iter().all(Option::is_some)
            && clients
                .iter()
                .all(|&c| state(&s.a, c) == State::Established))
    });
    let servers: Vec<SocketHandle> = servers.into_iter().map(|h| h.expect("accepted")).collect();
    for (c, cc) in clients.iter().zip(ccs) {
        assert_eq!(s.a.tcp_info(*c).unwrap().congestion.0, *cc);
    }

    let chunk = vec![0x5au8; 65536];
    let mut buf = vec![0u8; 65536];
    let mut got = vec![0u64; ccs.len()];
    let start = s.now();
    let mut per_second = vec![Vec::with_capacity(secs); ccs.len()];
    for sec in 1..=secs {
        let until = start + Duration::from_secs(sec as u64);
        s.run_while(until, |s| {
            for (i, (&c, &srv)) in clients.iter().zip(&servers).enumerate() {
                loop {
                    match s.a.tcp_send(c, &chunk) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("send: {e}"),
                    }
                }
                loop {
                    match s.b.tcp_recv(srv, &mut buf) {
                        Ok(0) => panic!("unexpected EOF"),
                        Ok(n) => got[i] += n as u64,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            }
            true
        });
        for (i, g) in got.iter().enumerate() {
            per_second[i].push(*g);
        }
        if std::env::var("SIM_DEBUG").is_ok() {
            for &c in &clients {
                let i = s.a.tcp_info(c).unwrap();
                let t = s.a.tcp_socket(c).unwrap();
                eprintln!(
                    "sec {sec} {:?}: cwnd {} ssthresh {} srtt {:?} rto {:?} retrans {} fast {} rtos {} tlps {} dsacks {} undos {} lost {} sacked {} unacked {} recovery {:?} reo_mult {}",
                    i.congestion, i.cwnd, i.ssthresh, i.srtt, i.rto, i.retransmits, i.fast_retransmits, i.timeouts, i.tlps, i.dsacks_received, i.undos, i.lost, i.sacked, i.unacked, t.recovery.is_some(), t.rack.reo_wnd_mult
                );
            }
        }
    }
    let (ab, _) = s.stats();
    Shared {
        per_second,
        info: clients.iter().map(|&c| s.a.tcp_info(c).unwrap()).collect(),
        queue_drops: ab.queue_drops,
    }
}

fn report_shared(label: &str, r: &Shared, from: usize, to: usize) -> Vec<f64> {
    let g: Vec<f64> = (0..r.per_second.len())
        .map(|f| r.goodput(f, from, to))
        .collect();
    let per_sec: Vec<String> = (0..r.per_second.len())
        .map(|f| {
            let p = &r.per_second[f];
            let v: Vec<String> = p
                .iter()
                .scan(0u64, |prev, &x| {
                    let d = x - *prev;
                    *prev = x;
                    Some(format!("{:.0}", d as f64 * 8e-6))
                })
                .collect();
            format!("[{}]", v.join(" "))
        })
        .collect();
    eprintln!(
        "{label}: Mbit/s per second {}; over seconds {from}-{to}: {} (sum {:.1}); Jain {:.3}; \
         retransmits {:?}; queue drops {}",
        per_sec.join(" "),
        g.iter()
            .zip(&r.info)
            .map(|(x, i)| format!("{} {:.1}", i.congestion.0, x * 1e-6))
            .collect::<Vec<_>>()
            .join(", "),
        g.iter().sum::<f64>() * 1e-6,
        jain(&g),
        r.info.iter().map(|i| i.retransmits).collect::<Vec<_>>(),
        r.queue_drops,
    );
    g
}

/// Two flows of the same controller through one bottleneck, starting
/// together: Jain's index ≥ 0.95 over seconds 60-120 (after convergence),
/// and together they still use ≥ 90 % of the link.
#[test]
fn two_flows_of_one_controller_share_fairly() {
    let mut fails = Vec::new();
    for cc in ["reno", "cubic", "bbr"] {
        let r = shared(&[cc, cc], 21, 120, BDP);
        let g = report_shared(&format!("2 x {cc}"), &r, 60, 120);
        let j = jain(&g);
        let sum: f64 = g.iter().sum();
        if j < 0.95 || sum < 0.9 * RATE_BPS as f64 {
            fails.push(format!("{cc}: Jain {j:.3}, {:.1} Mbit/s", sum * 1e-6));
        }
    }
    assert!(fails.is_empty(), "{fails:?}");
}

/// CUBIC against BBR v1 through a one-BDP buffer: the split is measured
/// and printed, not judged (BBR v1 is known to take more than its share
/// from loss-based flows in shallow buffers).
#[test]
fn cubic_against_bbr_split_is_recorded() {
    let r = shared(&["cubic", "bbr"], 23, 60, BDP);
    let g = report_shared("cubic vs bbr", &r, 20, 60);
    let sum: f64 = g.iter().sum();
    eprintln!(
        "cubic vs bbr (1 BDP buffer): cubic {:.0} %, bbr {:.0} % of {:.1} Mbit/s",
        g[0] / sum * 100.0,
        g[1] / sum * 100.0,
        sum * 1e-6
    );
    // Both flows make progress and the link stays in use.
    assert!(g.iter().all(|&x| x > 0.0));
    assert!(sum >= 0.9 * RATE_BPS as f64, "{:.1} Mbit/s", sum * 1e-6);
}
