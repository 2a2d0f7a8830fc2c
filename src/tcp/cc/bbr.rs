//! BBR version 1 (draft-cardwell-iccrg-bbr-congestion-control-00, as
//! Linux's `tcp_bbr.c`): a model-based controller. It estimates the
//! bottleneck bandwidth (the windowed maximum of the delivery-rate samples
//! over 10 round trips) and the round-trip propagation time (the windowed
//! minimum RTT over 10 seconds), paces at `pacing_gain × BtlBw` and keeps
//! at most `cwnd_gain × BDP` in flight.
//!
//! Phases: Startup (gain 2/ln 2 until the bandwidth stops growing by 25 %
//! for three rounds), Drain (the inverse gain, until the queue Startup made
//! is gone), ProbeBW (an eight-phase gain cycle 1.25, 0.75, 1 × 6, each
//! phase one min RTT long), and ProbeRTT (every 10 s without a new min RTT:
//! four segments in flight for 200 ms and a round trip).
//!
//! Loss does not set the window: in recovery PRR keeps the flight at the
//! window BBR had (its `ssthresh` is that window, not a reduction), and
//! after recovery the window from before it is restored.

use std::collections::VecDeque;

use super::{initial_window, AckEvent, CongestionControl};
use crate::tcp::rate::RateSample;
use crate::time::{Duration, Instant};

/// 2/ln(2), in thousandths: Startup's pacing and window gain.
const HIGH_GAIN: u64 = 2885;
/// Drain's pacing gain: 1/HIGH_GAIN, in thousandths.
const DRAIN_GAIN: u64 = 1_000_000 / HIGH_GAIN;
/// ProbeBW's window gain, in thousandths.
const CWND_GAIN: u64 = 2000;
/// ProbeBW's pacing gains, in thousandths.
const CYCLE: [u64; 8] = [1250, 750, 1000, 1000, 1000, 1000, 1000, 1000];
/// Rounds the bandwidth filter covers.
const BW_ROUNDS: u64 = 10;
/// How long a min RTT stays valid.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// ProbeRTT lasts at least this long (and a round trip).
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Segments kept in flight at least (and in ProbeRTT).
const MIN_CWND_SEGS: usize = 4;

/// BBR's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exponential search for the bandwidth.
    Startup,
    /// Emptying the queue Startup built.
    Drain,
    /// Steady state: cycling the pacing gain around 1.
    ProbeBw,
    /// Draining the flight to measure the propagation delay.
    ProbeRtt,
}

/// BBR v1.
#[derive(Debug)]
pub struct Bbr {
    mss: usize,
    mode: Mode,
    cwnd: usize,
    /// The window before recovery, RTO or ProbeRTT, restored after.
    prior_cwnd: usize,
    /// Per-round maximum bandwidth samples (round, bytes/s), newest last.
    bw: VecDeque<(u64, u64)>,
    round: u64,
    next_round_delivered: u64,
    round_start: bool,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    pacing_gain: u64,
    cwnd_gain: u64,
    cycle_idx: usize,
    cycle_stamp: Instant,
    full_bw: u64,
    full_bw_count: u32,
    filled_pipe: bool,
    /// In loss recovery (or after an RTO), with the round it began in.
    recovery: Option<u64>,
    /// The round of the last RTO, until the window is restored.
    rto_round: Option<u64>,
    /// What PRR brings the flight to in recovery.
    ssthresh: usize,
    pacing_rate: u64,
}

impl Bbr {
    /// BBR for a sender MSS of `mss`.
    pub fn new(mss: usize) -> Bbr {
        let cwnd = initial_window(mss);
        Bbr {
            mss,
            mode: Mode::Startup,
            cwnd,
            prior_cwnd: 0,
            bw: VecDeque::new(),
            round: 0,
            next_round_delivered: 0,
            round_start: false,
            min_rtt: None,
            min_rtt_stamp: Instant::ZERO,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            cycle_idx: 0,
            cycle_stamp: Instant::ZERO,
            full_bw: 0,
            full_bw_count: 0,
            filled_pipe: false,
            recovery: None,
            rto_round: None,
            ssthresh: usize::MAX,
            // Until a sample: the initial window over 1 ms, times the gain
            // (Linux assumes 1 ms without an RTT too).
            pacing_rate: (cwnd as u64 * 1000) * HIGH_GAIN / 1000,
        }
    }

    /// The phase.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The bottleneck-bandwidth estimate, bytes per second.
    pub fn btl_bw(&self) -> u64 {
        self.bw.iter().map(|&(_, b)| b).max().unwrap_or(0)
    }

    /// The propagation-delay estimate.
    pub fn rt_prop(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// `gain` (thousandths) × the estimated BDP, bytes; `None` before
    /// both estimates exist.
    fn bdp(&self, gain: u64) -> Option<usize> {
        let rtt = self.min_rtt?;
        let bw = self.btl_bw();
        if bw == 0 {
            return None;
        }
        let bytes = bw as u128 * rtt.as_micros() / 1_000_000 * gain as u128 / 1000;
        Some(bytes.min(usize::MAX as u128) as usize)
    }

    fn min_cwnd(&self) -> usize {
        MIN_CWND_SEGS * self.mss
    }

    fn save_cwnd(&mut self) {
        self.prior_cwnd = if self.recovery.is_none() && self.mode != Mode::ProbeRtt {
            self.cwnd
        } else {
            self.prior_cwnd.max(self.cwnd)
        };
    }

    fn update_bw(&mut self, rs: &RateSample, delivered: u64) {
        self.round_start = false;
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = delivered;
            self.round += 1;
            self.round_start = true;
        }
        let bw = rs.rate();
        // App-limited samples only count when they raise the estimate.
        if !rs.app_limited || bw >= self.btl_bw() {
            match self.bw.back_mut() {
                Some((r, b)) if *r == self.round => *b = (*b).max(bw),
                _ => self.bw.push_back((self.round, bw)),
            }
        }
        while self
            .bw
            .front()
            .is_some_and(|&(r, _)| r + BW_ROUNDS <= self.round)
        {
            self.bw.pop_front();
        }
    }

    fn check_full_pipe(&mut self, rs: &RateSample) {
        if self.filled_pipe || !self.round_start || rs.app_limited {
            return;
        }
        let bw = self.btl_bw();
        if bw >= self.full_bw.saturating_mul(5) / 4 {
            self.full_bw = bw;
            self.full_bw_count = 0;
            return;
        }
        self.full_bw_count += 1;
        if self.full_bw_count >= 3 {
            self.filled_pipe = true;
        }
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        self.pacing_gain = CYCLE[0];
        self.cwnd_gain = CWND_GAIN;
        // Linux starts at a random phase other than the draining one; a
        // deterministic core starts right after it, at the first cruise.
        self.cycle_idx = 2;
        self.pacing_gain = CYCLE[self.cycle_idx];
        self.cycle_stamp = now;
    }

    fn update_cycle(&mut self, now: Instant, in_flight: usize, losses: bool) {
        if self.mode != Mode::ProbeBw {
            return;
        }
        let Some(rtt) = self.min_rtt else { return };
        let elapsed = now - self.cycle_stamp > rtt;
        let gain = CYCLE[self.cycle_idx];
        let bdp = self.bdp(1000).unwrap_or(self.cwnd);
        let next = match gain {
            // Probing: a min RTT long, and until the extra flight is out
            // (or losses say the queue is full).
            g if g > 1000 => elapsed && (losses || in_flight >= self.bdp(g).unwrap_or(0)),
            // Draining: until the flight is back at one BDP.
            g if g < 1000 => elapsed || in_flight <= bdp,
            _ => elapsed,
        };
        if next {
            self.cycle_idx = (self.cycle_idx + 1) % CYCLE.len();
            self.cycle_stamp = now;
            self.pacing_gain = CYCLE[self.cycle_idx];
        }
    }

    fn update_min_rtt(&mut self, now: Instant, rtt: Option<Duration>, in_flight: usize) {
        let expired = now - self.min_rtt_stamp > MIN_RTT_WINDOW;
        if let Some(r) = rtt {
            if self.min_rtt.is_none_or(|m| r <= m) || expired {
                self.min_rtt = Some(r);
                self.min_rtt_stamp = now;
            }
        }
        if expired && self.mode != Mode::ProbeRtt && self.min_rtt.is_some() {
            self.mode = Mode::ProbeRtt;
            self.pacing_gain = 1000;
            self.cwnd_gain = 1000;
            self.save_cwnd();
            self.probe_rtt_done = None;
        }
        if self.mode == Mode::ProbeRtt {
            match self.probe_rtt_done {
                None if in_flight <= self.min_cwnd() => {
                    self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
                    self.probe_rtt_round_done = false;
                    self.next_round_delivered = 0; // the next ACK starts a round
                }
                None => {}
                Some(done) => {
                    if self.round_start {
                        self.probe_rtt_round_done = true;
                    }
                    if self.probe_rtt_round_done && now >= done {
                        self.min_rtt_stamp = now;
                        self.cwnd = self.cwnd.max(self.prior_cwnd);
                        if self.filled_pipe {
                            self.enter_probe_bw(now);
                        } else {
                            self.mode = Mode::Startup;
                            self.pacing_gain = HIGH_GAIN;
                            self.cwnd_gain = HIGH_GAIN;
                        }
                    }
                }
            }
        }
    }

    fn set_pacing_rate(&mut self) {
        let bw = self.btl_bw();
        if bw == 0 {
            return;
        }
        let rate = bw * self.pacing_gain / 1000;
        if self.filled_pipe || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    fn set_cwnd(&mut self, acked: usize, in_flight: usize) {
        // Three segments on top of the BDP for delayed and stretched ACKs.
        let target = self
            .bdp(self.cwnd_gain)
            .map_or(self.cwnd, |b| b + 3 * self.mss);
        let conserving = self.recovery.is_some_and(|r| r == self.round);
        if conserving {
            self.cwnd = self.cwnd.max(in_flight + acked);
        } else if self.filled_pipe {
            self.cwnd = (self.cwnd + acked).min(target);
        } else if self.cwnd < target || self.bdp(1000).is_none() {
            self.cwnd += acked;
        }
        self.cwnd = self.cwnd.max(self.min_cwnd());
        if self.mode == Mode::ProbeRtt {
            self.cwnd = self.cwnd.min(self.min_cwnd());
        }
    }
}

impl CongestionControl for Bbr {
    fn name(&self) -> &'static str {
        "bbr"
    }

    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_mss(&mut self, mss: usize) {
        if mss > 0 && mss != self.mss {
            if self.round == 0 {
                self.cwnd = initial_window(mss);
            }
            self.mss = mss;
        }
    }

    fn on_ack(&mut self, _now: Instant, _ack: &AckEvent) {}

    fn on_delivery(
        &mut self,
        now: Instant,
        rs: Option<&RateSample>,
        acked: usize,
        in_flight: usize,
        delivered: u64,
    ) {
        if let Some(rs) = rs {
            self.update_bw(rs, delivered);
            self.check_full_pipe(rs);
        }
        self.update_cycle(now, in_flight, false);
        if self.mode == Mode::Startup && self.filled_pipe {
            self.mode = Mode::Drain;
            self.pacing_gain = DRAIN_GAIN;
            self.cwnd_gain = HIGH_GAIN;
        }
        if self.mode == Mode::Drain && in_flight <= self.bdp(1000).unwrap_or(0) {
            self.enter_probe_bw(now);
        }
        self.update_min_rtt(now, rs.and_then(|r| r.rtt), in_flight);
        if self.rto_round.is_some_and(|r| self.round > r + 1) {
            // A round trip of ACKs after the timeout: the window from
            // before it comes back (Linux, on leaving the Loss state).
            self.rto_round = None;
            self.recovery = None;
            self.cwnd = self.cwnd.max(self.prior_cwnd);
        }
        self.set_pacing_rate();
        self.set_cwnd(acked, in_flight);
    }

    fn on_enter_recovery(&mut self, _now: Instant, in_flight: usize) {
        self.save_cwnd();
        self.recovery = Some(self.round);
        // Loss is not a congestion signal to BBR: PRR may keep the flight
        // at the model's window (Linux leaves ssthresh alone).
        self.ssthresh = self.cwnd.max(in_flight).max(self.min_cwnd());
    }

    fn on_recovery_dup_ack(&mut self, _now: Instant) {}

    fn on_partial_ack(&mut self, _now: Instant, _bytes_acked: usize) {}

    fn on_exit_recovery(&mut self, _now: Instant, _in_flight: usize) {
        self.recovery = None;
        self.ssthresh = usize::MAX;
        self.cwnd = self.cwnd.max(self.prior_cwnd);
    }

    fn on_rto(&mut self, _now: Instant, _in_flight: usize) {
        self.save_cwnd();
        self.recovery = Some(self.round);
        self.rto_round = Some(self.round);
        self.cwnd = self.min_cwnd();
    }

    fn model_based(&self) -> bool {
        true
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate.max(1))
    }

    fn state_name(&self) -> &'static str {
        match self.mode {
            Mode::Startup => "startup",
            Mode::Drain => "drain",
            Mode::ProbeBw => "probe_bw",
            Mode::ProbeRtt => "probe_rtt",
        }
    }
}
