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
//! HyStart++ needs several RTT samples per round: the sender in
//! [`crate::tcp`] supplies one per ACK of new data from the echoed
//! timestamp (millisecond resolution) when timestamps are on, besides its
//! one timed segment per round trip. Without timestamps a round has a
//! single sample and HyStart++ never leaves slow start (loss does).
//!
//! Interpretation: the CSS "spurious exit" check (`currentRoundMinRTT <
//! cssBaselineMinRtt`) is made only in rounds that began in CSS. Applied to
//! the rest of the round CSS started in, later (lower) samples of that same
//! round, sent before the queue built, undo CSS at once with unpaced
//! slow-start bursts.

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
    /// CSS rounds completed (the partial round CSS started in included).
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
    /// (cwnd, ssthresh, W_max, cwnd_prior) before the last congestion
    /// event, for `undo`.
    prior: Option<(usize, usize, f64, f64)>,
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
            prior: None,
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
                    hs.css_rounds = 0;
                }
            }
            Some(base) => {
                // Only rounds that began in CSS: the round CSS started in
                // already had its minimum compared.
                if hs.css_rounds > 0 && cur < base {
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
        self.prior = Some((self.cwnd, self.ssthresh, self.w_max, self.cwnd_prior));
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
            self.prior = Some((self.cwnd, self.ssthresh, self.w_max, self.cwnd_prior));
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

    /// RFC 9438 §4.9: a spurious congestion event is undone: cwnd,
    /// ssthresh, `W_max` and `cwnd_prior` from before it (cwnd and
    /// ssthresh never below the current ones); a new epoch starts.
    fn undo(&mut self, _now: Instant) -> bool {
        let Some((cwnd, ssthresh, w_max, cwnd_prior)) = self.prior.take() else {
            return false;
        };
        self.cwnd = self.cwnd.max(cwnd);
        self.ssthresh = self.ssthresh.max(ssthresh);
        self.w_max = w_max;
        self.cwnd_prior = cwnd_prior;
        self.end_epoch();
        self.in_recovery = false;
        self.after_rto = false;
        self.rto_epoch = false;
        true
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: usize = 1000;
    const T: Instant = Instant::ZERO;

    fn ack(bytes: usize) -> AckEvent {
        AckEvent {
            bytes_acked: bytes,
            ..AckEvent::default()
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// A CUBIC sender that saw a loss at `w_max` bytes with as much in
    /// flight, and is now in congestion avoidance at `0.7 * w_max`.
    fn after_loss(w_max: usize) -> Cubic {
        let mut c = Cubic::new(MSS);
        c.cwnd = w_max;
        c.on_enter_recovery(T, w_max);
        c.on_exit_recovery(T, w_max);
        assert_eq!(c.state_name(), "congestion_avoidance");
        c
    }

    /// ACKs a window's worth of data per RTT, `per_ack` bytes at a time,
    /// until `until`; returns the time reached.
    fn run_rtts(c: &mut Cubic, mut now: Instant, rtt: Duration, until: Instant) -> Instant {
        while now < until {
            let mut left = c.cwnd();
            while left > 0 {
                let n = left.min(2 * MSS);
                left -= n;
                c.on_ack(
                    now,
                    &AckEvent {
                        bytes_acked: n,
                        rtt: Some(rtt),
                        ..AckEvent::default()
                    },
                );
            }
            now += rtt;
        }
        now
    }

    #[test]
    fn k_and_w_cubic_worked_numbers() {
        // W_max = 100 segments, cwnd_epoch = β*W_max = 70: K = cbrt(30/0.4)
        // = cbrt(75) = 4.2172 s.
        let k = cubic_k(100.0, 70.0);
        assert!(close(k, 4.217_163, 1e-6), "{k}");
        assert!(close(w_cubic(0.0, k, 100.0), 70.0, 1e-9));
        assert!(close(w_cubic(k, k, 100.0), 100.0, 1e-9));
        assert!(close(w_cubic(2.0 * k, k, 100.0), 130.0, 1e-9));
        // W_max = 10: K = cbrt(3/0.4) = cbrt(7.5) = 1.9574 s.
        assert!(close(cubic_k(10.0, 7.0), 1.957_434, 1e-6));
        // Past the plateau K is negative and W_cubic(0) is still cwnd_epoch.
        let k = cubic_k(50.0, 60.0);
        assert!(k < 0.0 && close(w_cubic(0.0, k, 50.0), 60.0, 1e-9));
        assert!(close(ALPHA, 0.529_411_76, 1e-8));
    }

    #[test]
    fn beta_on_loss_and_recovery_inflation() {
        let mut c = Cubic::new(MSS);
        assert_eq!((c.name(), c.state_name()), ("cubic", "slow_start"));
        for _ in 0..45 {
            c.on_ack(T, &ack(2000));
        }
        assert_eq!(c.cwnd(), 100_000);
        c.on_enter_recovery(T, 100_000);
        assert_eq!(c.ssthresh(), 70_000, "β = 0.7");
        assert_eq!(c.cwnd(), 73_000, "ssthresh + 3 SMSS, as NewReno");
        assert_eq!(c.w_max(), 100_000.0);
        assert_eq!(c.state_name(), "recovery");
        c.on_recovery_dup_ack(T);
        assert_eq!(c.cwnd(), 74_000);
        c.on_partial_ack(T, 5000);
        assert_eq!(c.cwnd(), 70_000);
        c.on_exit_recovery(T, 90_000);
        assert_eq!(c.cwnd(), 70_000);
        assert_eq!(c.state_name(), "congestion_avoidance");
        // The first CA ACK starts the epoch: K = cbrt((100-70)/0.4).
        c.on_ack(T, &ack(1000));
        assert!(close(c.k(), 4.217_163, 1e-6));
        // Floor of 2 SMSS.
        c.on_enter_recovery(T, 1500);
        assert_eq!(c.ssthresh(), 2000);
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut c = after_loss(100_000);
        assert_eq!(c.w_max(), 100_000.0);
        // The next loss comes at 80 000 < W_max: W_max = 80 000 * (1+β)/2.
        c.cwnd = 80_000;
        c.on_enter_recovery(T, 80_000);
        assert_eq!(c.w_max(), 68_000.0);
        assert_eq!(c.ssthresh(), 56_000);
        c.on_exit_recovery(T, 80_000);
        // A loss above W_max keeps the full window as W_max.
        c.cwnd = 90_000;
        c.on_enter_recovery(T, 90_000);
        assert_eq!(c.w_max(), 90_000.0);
    }

    #[test]
    fn concave_then_convex_follows_w_cubic() {
        // W_max 100 segments, RTT 100 ms; cwnd tracks W_cubic(t + RTT).
        let rtt = Duration::from_millis(100);
        let mut c = after_loss(100_000);
        let k = 4.217_163;
        let mut now = Instant::from_secs(10);
        let start = now;
        let at = |s: f64| start + Duration::from_secs_f64(s);
        now = run_rtts(&mut c, now, rtt, at(k / 2.0));
        let t = now.saturating_duration_since(start).as_secs_f64();
        let expect = w_cubic(t, k, 100.0) * 1000.0;
        assert!(
            close(c.cwnd() as f64, expect, 1500.0),
            "{} vs {expect}",
            c.cwnd()
        );
        now = run_rtts(&mut c, now, rtt, at(k));
        assert!(close(c.cwnd() as f64, 100_000.0, 1500.0), "{}", c.cwnd());
        run_rtts(&mut c, now, rtt, at(2.0 * k));
        assert!(close(c.cwnd() as f64, 130_000.0, 3000.0), "{}", c.cwnd());
        assert!(
            c.w_est() < c.cwnd() as f64,
            "cubic region, not Reno-friendly"
        );
    }

    #[test]
    fn reno_friendly_region_on_short_rtt() {
        // W_max 10 segments, RTT 1 ms: K = 1.96 s is 1957 RTTs away, so
        // W_cubic barely moves and W_est (Reno's +α per RTT) takes over.
        let rtt = Duration::from_millis(1);
        let mut c = after_loss(10_000);
        assert_eq!(c.cwnd(), 7000);
        let start = Instant::from_secs(1);
        // One RTT: 7 ACKs of one segment each, W_est += α * 1000 * 1000 /
        // cwnd with cwnd = W_est growing as it goes: 7075.6, 7150.5, 7224.5,
        // 7297.8, 7370.3, 7442.1, 7513.2 (α per RTT would be 7529).
        for _ in 0..7 {
            c.on_ack(
                start,
                &AckEvent {
                    bytes_acked: 1000,
                    rtt: Some(rtt),
                    ..AckEvent::default()
                },
            );
        }
        assert_eq!(c.cwnd(), 7513);
        assert_eq!(c.cwnd(), c.w_est() as usize, "cwnd = W_est");
        // 100 ms later: W_cubic(0.1 s) = 7.44 segments, but W_est grew by
        // α per RTT up to cwnd_prior (10) and by 1 per RTT beyond.
        run_rtts(&mut c, start + rtt, rtt, start + Duration::from_millis(100));
        let cubic = w_cubic(0.1, c.k(), 10.0) * 1000.0;
        assert!(cubic < 7500.0);
        assert!(c.cwnd() > 80_000, "{}", c.cwnd());
        assert_eq!(c.cwnd(), c.w_est() as usize);
    }

    #[test]
    fn rto_collapses_and_restarts_the_curve() {
        let mut c = Cubic::new(MSS);
        for _ in 0..45 {
            c.on_ack(T, &ack(2000));
        }
        c.on_rto(T, 100_000);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 70_000));
        assert_eq!(c.state_name(), "slow_start");
        // A repeated RTO for the same data holds ssthresh.
        c.on_rto(T, 1000);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 70_000));
        // Slow start (no HyStart++ any more) up to ssthresh, then the first
        // epoch after a timeout: K = 0, W_max = W_est = cwnd_epoch.
        for _ in 0..34 {
            c.on_ack(T, &ack(2000));
        }
        c.on_ack(T, &ack(1000));
        assert_eq!(c.cwnd(), 70_000);
        c.on_ack(T, &ack(1000));
        assert_eq!(c.state_name(), "congestion_avoidance");
        assert_eq!((c.k(), c.w_max()), (0.0, 70_000.0));
        assert!(close(c.w_est(), 70_000.0, 20.0));
        // RTO during recovery ends recovery.
        c.on_enter_recovery(T, 8000);
        c.on_rto(T, 8000);
        assert!(!c.in_recovery());
        assert_eq!(c.cwnd(), 1000);
    }

    #[test]
    fn app_limited_does_not_grow() {
        let mut c = after_loss(100_000);
        let limited = AckEvent {
            bytes_acked: 10_000,
            app_limited: true,
            ..AckEvent::default()
        };
        c.on_ack(Instant::from_secs(1), &limited);
        c.on_ack(Instant::from_secs(50), &limited);
        assert_eq!(c.cwnd(), 70_000);
        // The epoch starts only now, so the 49 s spent app-limited are not
        // counted: the window is still near cwnd_epoch.
        c.on_ack(Instant::from_secs(51), &ack(1000));
        c.on_ack(Instant::from_secs(52), &ack(1000));
        assert!(c.cwnd() < 71_000, "{}", c.cwnd());
    }

    /// A sender that keeps `cwnd` in flight, one ACK per segment, the RTT of
    /// each ACK given by `rtt(delivered)`. Returns the states seen, each
    /// with the `delivered` count at which it began.
    fn slow_start_run(
        c: &mut Cubic,
        acks: usize,
        rtt: impl Fn(u64) -> Duration,
    ) -> Vec<(&'static str, u64)> {
        let mut delivered = 0u64;
        let mut snd_nxt = c.cwnd() as u64;
        let mut now = Instant::ZERO;
        let mut states = vec![(c.state_name(), 0)];
        for _ in 0..acks {
            delivered += MSS as u64;
            now += Duration::from_micros(100);
            c.on_ack(
                now,
                &AckEvent {
                    bytes_acked: MSS,
                    rtt: Some(rtt(delivered)),
                    in_flight: (snd_nxt - delivered) as usize,
                    delivered,
                    app_limited: false,
                    rate: None,
                },
            );
            snd_nxt = snd_nxt.max(delivered + c.cwnd() as u64);
            if states.last().map(|s| s.0) != Some(c.state_name()) {
                states.push((c.state_name(), delivered));
            }
        }
        states
    }

    fn names(states: &[(&'static str, u64)]) -> Vec<&'static str> {
        states.iter().map(|s| s.0).collect()
    }

    #[test]
    fn hystart_stays_in_slow_start_with_flat_rtt() {
        let mut c = Cubic::new(MSS);
        let states = slow_start_run(&mut c, 10_000, |_| Duration::from_millis(100));
        assert_eq!(names(&states), ["slow_start"]);
        assert_eq!(c.ssthresh(), usize::MAX);
        assert_eq!(c.cwnd(), 10_000 + 10_000 * MSS, "1 SMSS per ACK");
        // Small wobbles under the threshold (12.5 ms at 100 ms) do not
        // count either.
        let mut c = Cubic::new(MSS);
        let states = slow_start_run(&mut c, 10_000, |d| {
            Duration::from_millis(100 + (d / 1000 % 13))
        });
        assert_eq!(names(&states), ["slow_start"]);
    }

    #[test]
    fn hystart_exits_through_css_when_rtt_rises() {
        // From delivered 150 000 on, the RTT is 100 + 13 ms, above the
        // threshold of max(4, min(100/8, 16)) = 12.5 ms.
        let mut c = Cubic::new(MSS);
        let states = slow_start_run(&mut c, 5000, |d| {
            Duration::from_millis(if d > 150_000 { 113 } else { 100 })
        });
        assert_eq!(
            names(&states),
            [
                "slow_start",
                "conservative_slow_start",
                "congestion_avoidance"
            ]
        );
        // CSS starts at the 8th raised sample of the first round that is
        // entirely above the threshold, at the latest one round later.
        let css = states[1].1;
        assert!(css >= 158_000, "{states:?}");
        let ca = states[2].1;
        // CSS grows 4 times slower than slow start (1/4 SMSS per ACK),
        // about 1.25x per round: five rounds take at least 1.25^4 times the
        // window CSS started with, and at most 1.25^5 times more.
        // Each round delivers about the window it started with; CSS grows
        // the window 1.25x per round (1/4 SMSS per ACK), so the (partial)
        // round CSS started in and four more deliver 7.2 to 8.2 times the
        // window at CSS entry (which is about `css`).
        let span = (ca - css) as f64;
        assert!(
            span > 6.0 * css as f64 && span < 9.0 * css as f64,
            "{states:?}"
        );
        assert!(c.ssthresh() < usize::MAX && c.ssthresh() <= c.cwnd());
    }

    #[test]
    fn hystart_needs_n_rtt_samples() {
        // The RTT rises by 10 ms per ACK, 70 ms or more per round, but with
        // 7 segments in flight a round has only 7 samples: no CSS. With 8
        // it has N_RTT_SAMPLE, and CSS starts at the 8th sample of round 2.
        for (in_flight, css_at) in [(7, None), (8, Some(15))] {
            let mut c = Cubic::new(MSS);
            let mut states = Vec::new();
            for i in 0..40u64 {
                c.on_ack(
                    Instant::ZERO,
                    &AckEvent {
                        bytes_acked: MSS,
                        rtt: Some(Duration::from_millis(100 + i * 10)),
                        in_flight: in_flight * MSS,
                        delivered: (i + 1) * MSS as u64,
                        app_limited: false,
                        rate: None,
                    },
                );
                states.push(c.state_name());
            }
            let first_css = states.iter().position(|s| *s == "conservative_slow_start");
            assert_eq!(first_css, css_at, "{in_flight}: {states:?}");
        }
    }

    #[test]
    fn hystart_css_resumes_slow_start_when_rtt_falls_back() {
        let mut c = Cubic::new(MSS);
        // The RTT is up for a while after 150 000, then back to 100 ms.
        let states = slow_start_run(&mut c, 2000, |d| {
            Duration::from_millis(if d > 150_000 && d <= 400_000 {
                113
            } else {
                100
            })
        });
        assert_eq!(
            names(&states),
            ["slow_start", "conservative_slow_start", "slow_start"],
            "{states:?}"
        );
        assert_eq!(c.ssthresh(), usize::MAX);
    }

    #[test]
    fn loss_in_slow_start_ends_hystart() {
        let mut c = Cubic::new(MSS);
        slow_start_run(&mut c, 100, |_| Duration::from_millis(100));
        c.on_enter_recovery(T, 110_000);
        c.on_exit_recovery(T, 0);
        assert_eq!((c.cwnd(), c.ssthresh()), (2000, 77_000));
        // Standard slow start now, and no CSS whatever the RTT does.
        let states = slow_start_run(&mut c, 2000, |d| Duration::from_millis(100 + d / 1000));
        assert_eq!(names(&states), ["slow_start", "congestion_avoidance"]);
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Ack(usize, bool, Option<u16>, u16),
        Enter(usize),
        Dup,
        Partial(usize),
        Exit(usize),
        Rto(usize),
        Idle,
        Mss(usize),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            (
                any::<usize>(),
                any::<bool>(),
                any::<Option<u16>>(),
                any::<u16>()
            )
                .prop_map(|(a, l, r, dt)| Ev::Ack(a, l, r, dt)),
            (
                0usize..100_000,
                any::<bool>(),
                any::<Option<u16>>(),
                any::<u16>()
            )
                .prop_map(|(a, l, r, dt)| Ev::Ack(a, l, r, dt)),
            any::<usize>().prop_map(Ev::Enter),
            Just(Ev::Dup),
            any::<usize>().prop_map(Ev::Partial),
            any::<usize>().prop_map(Ev::Exit),
            any::<usize>().prop_map(Ev::Rto),
            Just(Ev::Idle),
            (0usize..70_000).prop_map(Ev::Mss),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_invariants(mss in 1usize..70_000, evs in proptest::collection::vec(ev(), 0..200)) {
            let mut c = Cubic::new(mss);
            let mut now = Instant::ZERO;
            let mut delivered = 0u64;
            for e in evs {
                match e {
                    Ev::Ack(a, l, r, dt) => {
                        now += Duration::from_millis(dt as u64);
                        delivered = delivered.saturating_add(a as u64);
                        c.on_ack(now, &AckEvent {
                            bytes_acked: a,
                            rtt: r.map(|r| Duration::from_micros(r as u64 * 10)),
                            in_flight: c.cwnd(),
                            delivered,
                            app_limited: l,
                            rate: None,
                        });
                    }
                    Ev::Enter(f) => c.on_enter_recovery(now, f),
                    Ev::Dup => c.on_recovery_dup_ack(now),
                    Ev::Partial(a) => c.on_partial_ack(now, a),
                    Ev::Exit(f) => c.on_exit_recovery(now, f),
                    Ev::Rto(f) => c.on_rto(now, f),
                    Ev::Idle => c.on_idle_restart(now),
                    Ev::Mss(m) => c.set_mss(m),
                }
                prop_assert!(c.cwnd() >= c.mss());
                prop_assert!(c.ssthresh() >= 2 * c.mss());
                prop_assert!(c.in_recovery() == (c.state_name() == "recovery"));
            }
        }
    }
}
