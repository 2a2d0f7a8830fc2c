//! NewReno: RFC 5681 congestion control with RFC 6582 fast recovery.
//!
//! - Initial window per RFC 6928.
//! - Slow start with appropriate byte counting (RFC 3465), `L = 2*SMSS`:
//!   each ACK grows cwnd by `min(bytes_acked, 2*SMSS)`, so the window still
//!   doubles per RTT when the receiver delays ACKs.
//! - Congestion avoidance by byte counting (RFC 3465 §2.1): cwnd grows by
//!   one SMSS each time a full cwnd of bytes has been acknowledged.
//! - No growth while the sender is application-limited (in the spirit of RFC
//!   7661: a window that was not used has not been validated by the
//!   network).
//! - Fast recovery per RFC 6582, with the "min(ssthresh, max(FlightSize,
//!   SMSS) + SMSS)" exit of §3.2 step 3.
//! - After an RTO: `ssthresh = max(FlightSize/2, 2*SMSS)`, `cwnd = 1 SMSS`
//!   (RFC 5681 §3.1, the loss window). A second RTO before any new data is
//!   acknowledged keeps ssthresh (RFC 5681 §3.1: ssthresh is held constant
//!   when a segment is retransmitted by the timer again).

use super::{initial_window, AckEvent, CongestionControl};
use crate::time::Instant;

/// The NewReno algorithm.
#[derive(Debug, Clone)]
pub struct NewReno {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance not yet turned into growth.
    ca_acked: usize,
    in_recovery: bool,
    /// An RTO happened and no new data has been acknowledged since.
    after_rto: bool,
    /// Nothing has happened yet, so an MSS change may reset the window.
    pristine: bool,
    /// (cwnd, ssthresh) before the last reduction, for `undo`.
    prior: Option<(usize, usize)>,
}

impl NewReno {
    /// A sender with SMSS `mss` (at least 1) and the RFC 6928 initial
    /// window.
    pub fn new(mss: usize) -> Self {
        let mss = mss.max(1);
        NewReno {
            mss,
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            ca_acked: 0,
            in_recovery: false,
            after_rto: false,
            pristine: true,
            prior: None,
        }
    }

    /// Whether fast recovery is in progress.
    pub fn in_recovery(&self) -> bool {
        self.in_recovery
    }

    /// The SMSS in use.
    pub fn mss(&self) -> usize {
        self.mss
    }

    fn reduced_ssthresh(&self, in_flight: usize) -> usize {
        (in_flight / 2).max(self.mss.saturating_mul(2))
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "reno"
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

    fn on_ack(&mut self, _now: Instant, ack: &AckEvent) {
        self.pristine = false;
        self.after_rto = false;
        if ack.app_limited || ack.bytes_acked == 0 {
            return;
        }
        let mut acked = ack.bytes_acked;
        if self.cwnd < self.ssthresh {
            // Slow start, RFC 3465 with L = 2*SMSS; stop at ssthresh and
            // count whatever is left towards congestion avoidance.
            let inc = acked.min(self.mss.saturating_mul(2));
            let room = self.ssthresh - self.cwnd;
            if inc < room {
                self.cwnd += inc;
                return;
            }
            self.cwnd = self.ssthresh;
            acked -= room.min(acked);
        }
        // RFC 3465 §2.1: one SMSS per cwnd bytes acknowledged, remainder
        // carried over. Done in O(1) like Linux's tcp_cong_avoid_ai, so a
        // huge (stretch) ACK cannot make this loop.
        self.ca_acked = self.ca_acked.saturating_add(acked);
        let w = self.cwnd.max(1);
        let segments = self.ca_acked / w;
        if segments > 0 {
            self.ca_acked %= w;
            self.cwnd = self.cwnd.saturating_add(segments.saturating_mul(self.mss));
        }
    }

    fn on_enter_recovery(&mut self, _now: Instant, in_flight: usize) {
        self.pristine = false;
        self.prior = Some((self.cwnd, self.ssthresh));
        self.ssthresh = self.reduced_ssthresh(in_flight);
        self.cwnd = self.ssthresh.saturating_add(self.mss.saturating_mul(3));
        self.ca_acked = 0;
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
        self.ca_acked = 0;
        self.in_recovery = false;
        self.after_rto = false;
    }

    fn on_rto(&mut self, _now: Instant, in_flight: usize) {
        self.pristine = false;
        if !self.after_rto {
            self.prior = Some((self.cwnd, self.ssthresh));
            self.ssthresh = self.reduced_ssthresh(in_flight);
        }
        self.cwnd = self.mss;
        self.ca_acked = 0;
        self.in_recovery = false;
        self.after_rto = true;
    }

    /// Back to the window and threshold from before the reduction (never
    /// below the current ones), as Linux's `tcp_undo_cwnd_reduction`.
    fn undo(&mut self, _now: Instant) -> bool {
        let Some((cwnd, ssthresh)) = self.prior.take() else {
            return false;
        };
        self.cwnd = self.cwnd.max(cwnd);
        self.ssthresh = self.ssthresh.max(ssthresh);
        self.ca_acked = 0;
        self.in_recovery = false;
        self.after_rto = false;
        true
    }

    /// RFC 5681 §4.1: `cwnd = min(IW, cwnd)`.
    fn on_idle_restart(&mut self, _now: Instant) {
        self.cwnd = self.cwnd.min(initial_window(self.mss));
        self.ca_acked = 0;
    }

    fn state_name(&self) -> &'static str {
        if self.in_recovery {
            "recovery"
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

    #[test]
    fn slow_start_doubles_per_rtt() {
        let mut r = NewReno::new(MSS);
        assert_eq!(r.cwnd(), 10_000);
        assert_eq!(r.state_name(), "slow_start");
        // One ACK per segment: ten ACKs of 1000 bytes double 10 000.
        for _ in 0..10 {
            r.on_ack(T, &ack(1000));
        }
        assert_eq!(r.cwnd(), 20_000);
        // Delayed ACKs (one per two segments) still double it, thanks to
        // L = 2*SMSS: ten ACKs of 2000 bytes.
        for _ in 0..10 {
            r.on_ack(T, &ack(2000));
        }
        assert_eq!(r.cwnd(), 40_000);
        // A stretch ACK of 10 segments only counts for 2.
        r.on_ack(T, &ack(10_000));
        assert_eq!(r.cwnd(), 42_000);
    }

    #[test]
    fn app_limited_does_not_grow() {
        let mut r = NewReno::new(MSS);
        r.on_ack(
            T,
            &AckEvent {
                bytes_acked: 1000,
                app_limited: true,
                ..AckEvent::default()
            },
        );
        assert_eq!(r.cwnd(), 10_000);
    }

    #[test]
    fn enter_recovery_inflate_deflate_exit() {
        let mut r = NewReno::new(MSS);
        for _ in 0..10 {
            r.on_ack(T, &ack(1000));
        }
        assert_eq!(r.cwnd(), 20_000);
        // Three dup ACKs with 20 000 bytes in flight.
        r.on_enter_recovery(T, 20_000);
        assert_eq!(r.ssthresh(), 10_000);
        assert_eq!(r.cwnd(), 13_000);
        assert!(r.in_recovery());
        assert_eq!(r.state_name(), "recovery");
        r.on_recovery_dup_ack(T);
        r.on_recovery_dup_ack(T);
        assert_eq!(r.cwnd(), 15_000);
        // Partial ACK of 3000: 15 000 - 3000 + 1000.
        r.on_partial_ack(T, 3000);
        assert_eq!(r.cwnd(), 13_000);
        // Partial ACK of less than one MSS: no add-back.
        r.on_partial_ack(T, 500);
        assert_eq!(r.cwnd(), 12_500);
        // Full ACK with 4000 in flight: min(10 000, 4000 + 1000).
        r.on_exit_recovery(T, 4000);
        assert_eq!(r.cwnd(), 5000);
        assert!(!r.in_recovery());
        assert_eq!(r.state_name(), "slow_start");
        // Full ACK with lots in flight: capped at ssthresh.
        r.on_enter_recovery(T, 30_000);
        assert_eq!((r.ssthresh(), r.cwnd()), (15_000, 18_000));
        r.on_exit_recovery(T, 20_000);
        assert_eq!(r.cwnd(), 15_000);
        assert_eq!(r.state_name(), "congestion_avoidance");
        // Nothing in flight: max(0, MSS) + MSS.
        r.on_enter_recovery(T, 1000);
        assert_eq!(r.ssthresh(), 2000, "floor of 2*MSS");
        assert_eq!(r.cwnd(), 5000);
        r.on_exit_recovery(T, 0);
        assert_eq!(r.cwnd(), 2000);
    }

    #[test]
    fn partial_ack_never_below_one_segment() {
        let mut r = NewReno::new(MSS);
        r.on_enter_recovery(T, 4000);
        assert_eq!(r.cwnd(), 5000);
        r.on_partial_ack(T, 100_000);
        assert_eq!(r.cwnd(), MSS);
    }

    #[test]
    fn congestion_avoidance_is_linear() {
        let mut r = NewReno::new(MSS);
        r.on_enter_recovery(T, 40_000);
        r.on_exit_recovery(T, 30_000);
        assert_eq!((r.cwnd(), r.ssthresh()), (20_000, 20_000));
        assert_eq!(r.state_name(), "congestion_avoidance");
        // One window's worth of ACKs adds one MSS.
        for _ in 0..19 {
            r.on_ack(T, &ack(1000));
        }
        assert_eq!(r.cwnd(), 20_000);
        r.on_ack(T, &ack(1000));
        assert_eq!(r.cwnd(), 21_000);
        // The next increase needs 21 000 bytes; big ACKs carry over.
        r.on_ack(T, &ack(20_000));
        assert_eq!(r.cwnd(), 21_000);
        r.on_ack(T, &ack(1000));
        assert_eq!(r.cwnd(), 22_000);
    }

    #[test]
    fn slow_start_stops_at_ssthresh() {
        let mut r = NewReno::new(MSS);
        r.on_enter_recovery(T, 20_000); // ssthresh 10 000
        r.on_rto(T, 20_000); // cwnd 1000, ssthresh 10 000
        assert_eq!((r.cwnd(), r.ssthresh()), (1000, 10_000));
        for _ in 0..4 {
            r.on_ack(T, &ack(2000));
        }
        assert_eq!(r.cwnd(), 9000);
        // 2000 acked: 1000 reaches ssthresh, 1000 counts towards CA.
        r.on_ack(T, &ack(2000));
        assert_eq!(r.cwnd(), 10_000);
        r.on_ack(T, &ack(9000));
        assert_eq!(r.cwnd(), 11_000);
    }

    #[test]
    fn rto_collapses_window() {
        let mut r = NewReno::new(MSS);
        for _ in 0..10 {
            r.on_ack(T, &ack(1000));
        }
        r.on_rto(T, 20_000);
        assert_eq!(r.cwnd(), 1000);
        assert_eq!(r.ssthresh(), 10_000);
        assert_eq!(r.state_name(), "slow_start");
        // A repeated RTO for the same data holds ssthresh.
        r.on_rto(T, 1000);
        assert_eq!((r.cwnd(), r.ssthresh()), (1000, 10_000));
        // Once new data is acknowledged, the next RTO reduces it again.
        r.on_ack(T, &ack(1000));
        r.on_rto(T, 1000);
        assert_eq!((r.cwnd(), r.ssthresh()), (1000, 2000));
        // RTO during recovery ends recovery.
        r.on_enter_recovery(T, 8000);
        r.on_rto(T, 8000);
        assert!(!r.in_recovery());
        assert_eq!(r.cwnd(), 1000);
    }

    #[test]
    fn idle_restart_and_mss() {
        let mut r = NewReno::new(536);
        assert_eq!(r.cwnd(), 5360);
        r.set_mss(1460);
        assert_eq!(r.cwnd(), 14_600, "pristine window follows the MSS");
        for _ in 0..10 {
            r.on_ack(T, &ack(2920));
        }
        assert_eq!(r.cwnd(), 43_800);
        r.on_idle_restart(T);
        assert_eq!(r.cwnd(), 14_600);
        r.set_mss(9000);
        assert_eq!(r.cwnd(), 14_600, "no reset after traffic");
        r.on_rto(T, 0);
        r.set_mss(100);
        assert_eq!(r.cwnd(), 9000);
        r.on_idle_restart(T);
        assert_eq!(r.cwnd(), 1000);
        let z = NewReno::new(0);
        assert_eq!(z.mss(), 1);
    }

    #[test]
    fn huge_ack_is_cheap() {
        let mut r = NewReno::new(1);
        r.on_rto(T, 0);
        r.on_ack(T, &ack(usize::MAX));
        r.on_ack(T, &ack(usize::MAX));
        assert!(r.cwnd() > 2);
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Ack(usize, bool),
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
            (any::<usize>(), any::<bool>()).prop_map(|(a, l)| Ev::Ack(a, l)),
            (0usize..100_000, any::<bool>()).prop_map(|(a, l)| Ev::Ack(a, l)),
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
            let mut r = NewReno::new(mss);
            for e in evs {
                match e {
                    Ev::Ack(a, l) => r.on_ack(T, &AckEvent { bytes_acked: a, app_limited: l, ..AckEvent::default() }),
                    Ev::Enter(f) => r.on_enter_recovery(T, f),
                    Ev::Dup => r.on_recovery_dup_ack(T),
                    Ev::Partial(a) => r.on_partial_ack(T, a),
                    Ev::Exit(f) => r.on_exit_recovery(T, f),
                    Ev::Rto(f) => r.on_rto(T, f),
                    Ev::Idle => r.on_idle_restart(T),
                    Ev::Mss(m) => r.set_mss(m),
                }
                prop_assert!(r.cwnd() >= r.mss());
                prop_assert!(r.ssthresh() >= 2 * r.mss());
                prop_assert!(r.in_recovery() == (r.state_name() == "recovery"));
            }
        }
    }
}
