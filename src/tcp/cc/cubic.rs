//! CUBIC congestion control (RFC 9438) with HyStart++ slow start (RFC 9406).
//!
//! Windows are kept in bytes like the rest of [`super`]; the cubic function
//! itself is evaluated in segments and seconds, as the RFC writes it.
//!
//! - Congestion avoidance (RFC 9438 §4.2-§4.5): `W_cubic(t) = C*(t-K)^3 +
//!   W_max` with `C = 0.4`, `K = cbrt((W_max - cwnd_epoch)/C)`, and `t` the
//!   time since the epoch (the first ACK of the current congestion avoidance
//!   stage). On each ACK the target is `W_cubic(t + RTT)`, clamped to
//!   `[cwnd, 1.5*cwnd]`, and cwnd grows by `(target - cwnd)/cwnd` per
//!   acknowledged segment, byte-counted (`bytes_acked/SMSS` segments, the
//!   fraction carried over). RTT is the latest sample seen in an
//!   [`AckEvent`]; before the first one it counts as zero.
//! - Reno-friendly region (§4.3): `W_est` starts at `cwnd_epoch` and grows
//!   by `α_cubic * segments_acked / cwnd` with `α_cubic = 3(1-β)/(1+β)`, or
//!   1 once `W_est >= cwnd_prior`; when `W_cubic(t) < W_est`, cwnd is set to
//!   `W_est`.
//! - Congestion event (§4.6, §4.7): `ssthresh = max(FlightSize*β, 2*SMSS)`
//!   with `β = 0.7` (the RFC's pseudo-code uses `flight_size`, as RFC 5681
//!   and [`NewReno`](super::NewReno) do); `W_max = cwnd`, or `cwnd*(1+β)/2`
//!   with fast convergence when cwnd did not get back to the previous
//!   `W_max`; `cwnd_prior = cwnd`. The sender runs RFC 6582 fast recovery,
//!   so the window is inflated and deflated exactly like NewReno's: `ssthresh
//!   + 3*SMSS` on entry, `+SMSS` per further duplicate ACK, partial-ACK
//!   deflation, and `min(ssthresh, max(FlightSize, SMSS) + SMSS)` on exit.
//! - Timeout (§4.8): `ssthresh = max(FlightSize*β, 2*SMSS)` (held on a
//!   repeated timeout, as RFC 5681 says), `cwnd = 1 SMSS`, the epoch ends.
//!   The first congestion avoidance stage afterwards starts with `K = 0`,
//!   `W_max = cwnd_epoch` and `W_est = cwnd_epoch`. (No spurious-RTO undo.)
//! - First epoch without a prior congestion event (after HyStart++ ended
//!   slow start): `W_max` is below `cwnd_epoch`, so as in Linux the curve
//!   starts at its plateau, `W_max = cwnd_epoch`, `K = 0`.
//! - Application-limited (§5.8): an ACK for data sent while the sender was
//!   application-limited does not grow cwnd (as in [`NewReno`](super::NewReno)),
//!   and the time spent application-limited is not counted in `t`: the
//!   epoch start is moved forward by it once the flow is cwnd-limited again.
//!   After an idle restart the window drops to at most the initial window
//!   (RFC 5681 §4.1) and the epoch ends.
//!
//! Slow start is RFC 5681/3465 byte counting with `L = 2*SMSS` (like
//! NewReno). The initial slow start (ssthresh still unset) runs HyStart++
//! (RFC 9406 §4.2):
//!
//! - **Rounds.** The CC only sees [`AckEvent`]s, so a round is delimited in
//!   delivered bytes: when a round starts, its end is `delivered + in_flight`
//!   of that ACK, which is SND.NXT at that moment expressed in delivered
//!   bytes (RFC 9406's `windowEnd = SND.NXT`); the round is over at the first
//!   ACK whose `delivered` reaches that value. The ACK that ends a round
//!   already belongs to the next one (its RTT sample counts there).
//! - Each round keeps the minimum RTT and the number of samples. With at
//!   least `N_RTT_SAMPLE` samples in the current round and a minimum from
//!   the previous one, `RttThresh = clamp(lastRoundMinRTT/8, 4 ms, 16 ms)`;
//!   if `currentRoundMinRTT >= lastRoundMinRTT + RttThresh` the sender enters
//!   Conservative Slow Start with `cssBaselineMinRtt = currentRoundMinRTT`.
//! - In CSS cwnd grows by a quarter of slow start's increment. If a round's
//!   minimum RTT (again after `N_RTT_SAMPLE` samples) drops below the
//!   baseline, slow start resumes; after `CSS_ROUNDS` rounds (the round CSS
//!   started in counts as the first) `ssthresh = cwnd` and congestion
//!   avoidance starts.
//! - A loss or timeout ends HyStart++ for good; later slow starts (after a
//!   timeout, or below ssthresh after recovery) are standard slow start, as
//!   RFC 9406 §4.3 recommends.
//!
//! Note that HyStart++ needs several RTT samples per round. The sender in
//! [`crate::tcp`] times one segment per round trip (one sample per round),
//! so with it HyStart++ never gathers `N_RTT_SAMPLE` samples and slow start
//! ends only at the first loss; the logic is exercised by the unit tests.

use super::{initial_window, AckEvent, CongestionControl};
use crate::time::{Duration, Instant};

/// The cubic scaling constant `C` (RFC 9438 §5).
pub const C: f64 = 0.4;
/// The multiplicative decrease factor `β_cubic` (RFC 9438 §4.6).
pub const BETA: f64 = 0.7;
/// The Reno-friendly additive increase `α_cubic = 3(1-β)/(1+β)` (RFC 9438
/// §4.3), about 0.529.
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// HyStart++: RTT samples a round needs before its minimum counts (RFC
/// 9406 §4.3).
pub const N_RTT_SAMPLE: u32 = 8;
/// HyStart++: lower clamp of the RTT increase threshold.
pub const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// HyStart++: upper clamp of the RTT increase threshold.
pub const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// HyStart++: the threshold is the last round's minimum RTT over this.
pub const MIN_RTT_DIVISOR: u32 = 8;
/// HyStart++: Conservative Slow Start grows this many times slower.
pub const CSS_GROWTH_DIVISOR: usize = 4;
/// HyStart++: rounds of Conservative Slow Start before congestion
/// avoidance.
pub const CSS_ROUNDS: u32 = 5;

/// Slow-start byte counting limit `L` in segments (RFC 3465).
const ABC_L: usize = 2;

/// `K = cbrt((W_max - cwnd_epoch)/C)`: the seconds the cubic function takes
/// from `cwnd_epoch` to `W_max` (RFC 9438 §4.2, Figure 2), both in segments.
/// Negative when `cwnd_epoch > W_max` (the curve is then past its plateau).
pub fn cubic_k(w_max: f64, cwnd_epoch: f64) -> f64 {
    ((w_max - cwnd_epoch) / C).cbrt()
}

/// `W_cubic(t) = C*(t-K)^3 + W_max` in segments, `t` and `k` in seconds
/// (RFC 9438 §4.2, Figure 1).
pub fn w_cubic(t: f64, k: f64, w_max: f64) -> f64 {
    let d = t - k;
    C * d * d * d + w_max
}

/// HyStart++ state (RFC 9406).
#[derive(Debug, Clone, Default)]
struct HyStart {
    /// HyStart++ is over (a loss, a timeout, or CSS ran its rounds).
    done: bool,
    /// The current round ends when `delivered` reaches this.
    window_end: Option<u64>,
    last_round_min: Option<Duration>,
    cur_round_min: Option<Duration>,
    samples: u32,
    /// In Conservative Slow Start, with this baseline.
    css_baseline: Option<Duration>,
    /// CSS rounds begun so far.
    css_rounds: u32,
}

/// The CUBIC algorithm.
#[derive(Debug, Clone)]
pub struct Cubic {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Fractional bytes of congestion-avoidance growth not yet applied.
    cwnd_frac: f64,
    /// `W_max`, bytes.
    w_max: f64,
    /// `K`, seconds.
    k: f64,
    /// Start of the current congestion avoidance stage.
    epoch_start: Option<Instant>,
    /// `W_est`, bytes.
    w_est: f64,
    /// cwnd at the last congestion event, bytes.
    cwnd_prior: f64,
    /// The latest RTT sample.
    rtt: Option<Duration>,
    /// Application-limited since (an ACK for app-limited data arrived).
    app_limited_since: Option<Instant>,
    in_recovery: bool,
    /// An RTO happened and no new data has been acknowledged since.
    after_rto: bool,
    /// The next congestion avoidance stage is the first after a timeout.
    rto_epoch: bool,
    /// Nothing has happened yet, so an MSS change may reset the window.
    pristine: bool,
    hystart: HyStart,
}

impl Cubic {
    /// A sender with SMSS `mss` (at least 1) and the RFC 6928 initial
    /// window.
    pub fn new(mss: usize) -> Self {
        let mss = mss.max(1);
        Cubic {
            mss,
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            cwnd_frac: 0.0,
            w_max: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
            cwnd_prior: 0.0,
            rtt: None,
            app_limited_since: None,
            in_recovery: false,
            after_rto: false,
            rto_epoch: false,
            pristine: true,
            hystart: HyStart::default(),
        }
    }

    /// The SMSS in use.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Whether fast recovery is in progress.
    pub fn in_recovery(&self) -> bool {
        self.in_recovery
    }

    /// `W_max` in bytes.
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// `K` of the current epoch in seconds (meaningful once an epoch has
    /// started).
    pub fn k(&self) -> f64 {
        self.k
    }

    /// `W_est` in bytes (the Reno-friendly estimate of the current epoch).
    pub fn w_est(&self) -> f64 {
        self.w_est
    }

    /// Whether Conservative Slow Start (HyStart++) is in progress.
    pub fn in_css(&self) -> bool {
        self.hystart.css_baseline.is_some() && self.cwnd < self.ssthresh
    }

    fn reduced_ssthresh(&self, in_flight: usize) -> usize {
        ((in_flight as f64 * BETA) as usize).max(self.mss.saturating_mul(2))
    }

    fn end_epoch(&mut self) {
        self.epoch_start = None;
        self.cwnd_frac = 0.0;
        self.app_limited_since = None;
    }

    fn end_hystart(&mut self) {
        self.hystart.done = true;
        self.hystart.css_baseline = None;
    }

    /// HyStart++ bookkeeping for one ACK in the initial slow start.
    fn hystart_ack(&mut self, ack: &AckEvent) {
        let hs = &mut self.hystart;
        if hs.window_end.is_none_or(|end| ack.delivered >= end) {
            if hs.css_baseline.is_some() {
                hs.css_rounds += 1;
                if hs.css_rounds >= CSS_ROUNDS {
                    // RFC 9406: enter congestion avoidance.
                    self.ssthresh = self.cwnd;
                    self.end_hystart();
                    return;
                }
            }
            hs.window_end = Some(ack.delivered.saturating_add(ack.in_flight as u64));
            hs.last_round_min = hs.cur_round_min.take();
            hs.samples = 0;
        }
        if let Some(r) = ack.rtt {
            hs.cur_round_min = Some(hs.cur_round_min.map_or(r, |m| m.min(r)));
            hs.samples = hs.samples.saturating_add(1);
        }
        if hs.samples < N_RTT_SAMPLE {
            return;
        }
        let (Some(cur), Some(last)) = (hs.cur_round_min, hs.last_round_min) else {
            return;
        };
        match hs.css_baseline {
            None => {
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if cur >= last.saturating_add(thresh) {
                    hs.css_baseline = Some(cur);
                    hs.css_rounds = 1;
                }
            }
            Some(base) => {
                if cur < base {
                    // The RTT increase was spurious: back to slow start.
                    hs.css_baseline = None;
                    hs.css_rounds = 0;
                }
            }
        }
    }

    /// Slow start (and CSS) growth; returns the bytes left over for
    /// congestion avoidance once cwnd reaches ssthresh.
    fn slow_start(&mut self, ack: &AckEvent, acked: usize) -> usize {
        if self.ssthresh == usize::MAX && !self.hystart.done {
            self.hystart_ack(ack);
            if self.cwnd >= self.ssthresh {
                return acked;
            }
        }
        let mut inc = acked.min(self.mss.saturating_mul(ABC_L));
        if self.in_css() {
            inc /= CSS_GROWTH_DIVISOR;
        }
        let room = self.ssthresh - self.cwnd;
        if inc < room {
            self.cwnd += inc;
            return 0;
        }
        self.cwnd = self.ssthresh;
        acked - room.min(acked)
    }

    fn congestion_avoidance(&mut self, now: Instant, acked: usize) {
        let mss = self.mss as f64;
        let cwnd = self.cwnd as f64;
        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                // RFC 9438 §4.2: a new congestion avoidance stage.
                if self.rto_epoch || self.w_max < cwnd {
                    // §4.8 after a timeout; or no congestion event yet.
                    self.w_max = cwnd;
                    self.k = 0.0;
                } else {
                    self.k = cubic_k(self.w_max / mss, cwnd / mss);
                }
                self.rto_epoch = false;
                self.w_est = cwnd;
                self.cwnd_frac = 0.0;
                self.epoch_start = Some(now);
                now
            }
        };
        // §4.3: W_est += α_cubic * segments_acked / cwnd (in bytes here).
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * acked as f64 * mss / cwnd;
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        let rtt = self.rtt.unwrap_or_default().as_secs_f64();
        let w_max = self.w_max / mss;
        let cubic_now = w_cubic(t, self.k, w_max) * mss;
        if cubic_now < self.w_est {
            // Reno-friendly region.
            if self.w_est > cwnd {
                self.cwnd = self.w_est as usize;
                self.cwnd_frac = self.w_est.fract();
            }
            return;
        }
        // §4.4/§4.5: concave and convex regions.
        let target = (w_cubic(t + rtt, self.k, w_max) * mss)
            .min(1.5 * cwnd)
            .max(cwnd);
        self.cwnd_frac += (target - cwnd) * acked as f64 / cwnd;
        if self.cwnd_frac >= 1.0 {
            let whole = self.cwnd_frac.floor();
            self.cwnd_frac -= whole;
            self.cwnd = self.cwnd.saturating_add(whole as usize);
        }
    }

    /// RFC 9438 §4.6/§4.7: the reaction common to loss and timeout.
    fn congestion_event(&mut self, in_flight: usize) {
        let cwnd = self.cwnd as f64;
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd;
        self.ssthresh = self.reduced_ssthresh(in_flight);
        self.end_epoch();
        self.end_hystart();
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    /// Sets SMSS (at least 1). Before any event the window is reset to the
    /// initial window for the new MSS; afterwards cwnd is only raised to at
    /// least one segment and ssthresh to at least two.
    fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        if self.pristine {
            self.cwnd = initial_window(self.mss);
        } else {
            self.cwnd = self.cwnd.max(self.mss);
        }
        self.ssthresh = self.ssthresh.max(self.mss.saturating_mul(2));
    }

    fn on_ack(&mut self, now: Instant, ack: &AckEvent) {
        self.pristine = false;
        self.after_rto = false;
        if let Some(r) = ack.rtt {
            self.rtt = Some(r);
        }
        if ack.bytes_acked == 0 {
            return;
        }
        if ack.app_limited {
            self.app_limited_since.get_or_insert(now);
            return;
        }
        if let (Some(since), Some(epoch)) = (self.app_limited_since.take(), self.epoch_start) {
            // §5.8: time spent application-limited does not count in t.
            self.epoch_start = Some(epoch.saturating_add(now.saturating_duration_since(since)));
        }
        let mut acked = ack.bytes_acked;
        if self.cwnd < self.ssthresh {
            acked = self.slow_start(ack, acked);
            if acked == 0 {
                return;
            }
        }
        self.congestion_avoidance(now, acked);
    }

    fn on_enter_recovery(&mut self, _now: Instant, in_flight: usize) {
        self.pristine = false;
        self.congestion_event(in_flight);
        self.cwnd = self.ssthresh.saturating_add(self.mss.saturating_mul(3));
        self.in_recovery = true;
    }

    fn on_recovery_dup_ack(&mut self, _now: Instant) {
        self.cwnd = self.cwnd.saturating_add(self.mss);
    }

    /// Deflates by the bytes acknowledged and adds back one SMSS if at least
    /// one SMSS was acknowledged (RFC 6582 §3.2 step 5). The window never
    /// goes below one SMSS.
    fn on_partial_ack(&mut self, _now: Instant, bytes_acked: usize) {
        self.cwnd = self.cwnd.saturating_sub(bytes_acked);
        if bytes_acked >= self.mss {
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
        self.cwnd = self.cwnd.max(self.mss);
    }

    fn on_exit_recovery(&mut self, _now: Instant, in_flight: usize) {
        self.cwnd = self
            .ssthresh
            .min(in_flight.max(self.mss).saturating_add(self.mss))
            .max(self.mss);
        self.end_epoch();
        self.in_recovery = false;
        self.after_rto = false;
    }

    fn on_rto(&mut self, _now: Instant, in_flight: usize) {
        self.pristine = false;
        if !self.after_rto {
            self.cwnd_prior = self.cwnd as f64;
            self.ssthresh = self.reduced_ssthresh(in_flight);
        }
        self.cwnd = self.mss;
        self.end_epoch();
        self.end_hystart();
        self.rto_epoch = true;
        self.in_recovery = false;
        self.after_rto = true;
    }

    /// RFC 5681 §4.1: `cwnd = min(IW, cwnd)`; the cubic epoch ends.
    fn on_idle_restart(&mut self, _now: Instant) {
        self.cwnd = self.cwnd.min(initial_window(self.mss));
        self.end_epoch();
    }

    fn state_name(&self) -> &'static str {
        if self.in_recovery {
            "recovery"
        } else if self.in_css() {
            "conservative_slow_start"
        } else if self.cwnd < self.ssthresh {
            "slow_start"
        } else {
            "congestion_avoidance"
        }
    }
}
