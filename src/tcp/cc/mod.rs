//! Pluggable congestion control.
//!
//! The connection owns loss detection and recovery bookkeeping (duplicate
//! ACK counting, `recover`, SACK scoreboard) and tells a
//! [`CongestionControl`] what happened; the algorithm only decides the
//! congestion window (and, for rate-based ones, a pacing rate). The events
//! are shaped after RFC 5681 / RFC 6582 so that NewReno maps onto them
//! directly, while CUBIC and BBR can use the extra information in
//! [`AckEvent`] (RTT, delivered bytes, app-limited flag).
//!
//! All windows are in bytes.

use crate::time::{Duration, Instant};

mod bbr;
mod cubic;
mod reno;

#[cfg(test)]
mod cubic_sim_tests;

pub use bbr::Bbr;
pub use cubic::Cubic;
pub use reno::NewReno;

/// A congestion-control algorithm.
///
/// Calls arrive in this pattern: [`on_ack`](Self::on_ack) for ACKs of new
/// data outside recovery; [`on_enter_recovery`](Self::on_enter_recovery)
/// when loss is detected by duplicate ACKs or SACK, then
/// [`on_recovery_dup_ack`](Self::on_recovery_dup_ack) and
/// [`on_partial_ack`](Self::on_partial_ack) until
/// [`on_exit_recovery`](Self::on_exit_recovery); and
/// [`on_rto`](Self::on_rto) whenever the retransmission timer fires.
pub trait CongestionControl: std::fmt::Debug + Send {
    /// Short lowercase name, as accepted by [`by_name`].
    fn name(&self) -> &'static str;
    /// The congestion window, bytes.
    fn cwnd(&self) -> usize;
    /// The slow-start threshold, bytes (`usize::MAX` = not yet set).
    fn ssthresh(&self) -> usize;
    /// Sets the sender maximum segment size (SMSS) once it is known.
    fn set_mss(&mut self, mss: usize);
    /// New data was acknowledged outside recovery.
    fn on_ack(&mut self, now: Instant, ack: &AckEvent);
    /// Loss was detected by three duplicate ACKs or SACK (RFC 5681 §3.2
    /// steps 2-3). `in_flight` is FlightSize before the retransmission.
    fn on_enter_recovery(&mut self, now: Instant, in_flight: usize);
    /// A further duplicate ACK arrived during recovery (RFC 5681 §3.2 step
    /// 4: inflate the window by one segment).
    fn on_recovery_dup_ack(&mut self, now: Instant);
    /// An ACK during recovery acknowledged new data but not everything up to
    /// `recover` (RFC 6582 §3.2 step 5: a partial ACK).
    fn on_partial_ack(&mut self, now: Instant, bytes_acked: usize);
    /// A full ACK ended recovery (RFC 6582 §3.2 step 3). `in_flight` is
    /// FlightSize after the ACK.
    fn on_exit_recovery(&mut self, now: Instant, in_flight: usize);
    /// The retransmission timer fired. `in_flight` is FlightSize before the
    /// retransmission.
    fn on_rto(&mut self, now: Instant, in_flight: usize);
    /// The last reduction (recovery or RTO) proved spurious: D-SACKs
    /// showed that every retransmission of it was unnecessary (RFC 3708 /
    /// RFC 2883 §5; Linux's `undo`). Restores the window from before it
    /// and returns true, or returns false when the algorithm does not
    /// undo (the default). Called outside recovery only.
    fn undo(&mut self, _now: Instant) -> bool {
        false
    }
    /// The connection is about to send after being idle for more than an
    /// RTO (RFC 5681 §4.1: restart window). Default: no change.
    fn on_idle_restart(&mut self, _now: Instant) {}
    /// Every ACK that delivered data (cumulatively or by SACK), in or out
    /// of recovery: `rs` is its delivery-rate sample if it gave a valid
    /// one, `acked` the bytes it newly delivered, `in_flight` the flight
    /// after it, `delivered` the connection's total. Called only for
    /// [`model_based`](Self::model_based) algorithms.
    fn on_delivery(
        &mut self,
        _now: Instant,
        _rs: Option<&crate::tcp::rate::RateSample>,
        _acked: usize,
        _in_flight: usize,
        _delivered: u64,
    ) {
    }
    /// A model-based algorithm (BBR): it works from
    /// [`on_delivery`](Self::on_delivery), which the connection calls (and
    /// computes the flight for) only when this is true, and it sets the
    /// window during loss recovery itself (packet conservation) instead of
    /// the connection's PRR. Default: false.
    fn model_based(&self) -> bool {
        false
    }
    /// Pacing rate in bytes per second, if the algorithm paces. Default:
    /// none.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// The algorithm's current phase, for diagnostics: `"slow_start"`,
    /// `"congestion_avoidance"`, `"recovery"` (others may add their own).
    fn state_name(&self) -> &'static str;
}

/// What an ACK of new data told the sender.
#[derive(Debug, Clone, Copy, Default)]
pub struct AckEvent {
    /// Bytes newly acknowledged (cumulatively) by this ACK.
    pub bytes_acked: usize,
    /// RTT sample from this ACK, if one was valid (Karn's rule applied).
    pub rtt: Option<Duration>,
    /// Bytes in flight after processing the ACK.
    pub in_flight: usize,
    /// Total bytes delivered on the connection so far.
    pub delivered: u64,
    /// Whether the sender was application-limited (not cwnd-limited) when
    /// the acknowledged data was sent.
    pub app_limited: bool,
    /// The delivery-rate sample of this ACK, if it gave a valid one.
    pub rate: Option<crate::tcp::rate::RateSample>,
}

/// The initial window of RFC 6928: `min(10*MSS, max(2*MSS, 14600))`.
pub fn initial_window(mss: usize) -> usize {
    mss.saturating_mul(10)
        .min(mss.saturating_mul(2).max(14_600))
}

/// Names accepted by [`by_name`].
pub const AVAILABLE: &[&str] = &["reno", "cubic", "bbr"];

/// Builds the algorithm called `name` (see [`AVAILABLE`]; `"newreno"` is
/// accepted as an alias of `"reno"`) for a sender MSS of `mss`.
pub fn by_name(name: &str, mss: usize) -> Option<Box<dyn CongestionControl>> {
    match name {
        "reno" | "newreno" => Some(Box::new(NewReno::new(mss))),
        "cubic" => Some(Box::new(Cubic::new(mss))),
        "bbr" => Some(Box::new(Bbr::new(mss))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6928_initial_window() {
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(1000), 10_000);
        assert_eq!(initial_window(536), 5_360);
        assert_eq!(initial_window(8960), 17_920);
        assert_eq!(initial_window(usize::MAX), usize::MAX);
        assert_eq!(initial_window(0), 0);
    }

    #[test]
    fn lookup() {
        for name in AVAILABLE {
            let cc = by_name(name, 1460).expect("listed algorithms exist");
            assert_eq!(cc.name(), *name);
            assert_eq!(cc.cwnd(), 14_600);
            assert_eq!(cc.ssthresh(), usize::MAX);
            assert_eq!(cc.pacing_rate().is_some(), *name == "bbr");
        }
        assert_eq!(by_name("newreno", 1000).unwrap().name(), "reno");
        assert!(by_name("vegas", 1460).is_none());
    }
}
