//! Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation,
//! as Linux's `tcp_rate.c`).
//!
//! Every transmitted segment is stamped with how much the connection had
//! delivered, and when, at the moment it was sent (a `TxStamp`). When an
//! ACK (cumulative or SACK) reports a segment delivered, the bytes
//! delivered between its stamp and now, over the longer of the send and
//! the ACK intervals, give a rate sample ([`RateSample`]). The sample of an
//! ACK comes from the most recently sent of the segments it delivered.
//! Samples taken while the application, not the network, limited the
//! sending are flagged `app_limited`: they show less than the path can do
//! and a bandwidth estimator may only use them when they raise its
//! estimate.
//!
//! Without SACK, duplicate ACKs count one segment delivered each (as
//! Linux); a recovery in which the receiver's window changed under the
//! duplicate ACKs (so that some were not duplicates) still leaves bytes
//! uncounted until the cumulative ACK, and a sample across it overstates
//! the rate. With SACK every delivered byte is seen when it arrives.

use crate::time::{Duration, Instant};

/// The connection's delivery state at the moment a segment was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TxStamp {
    /// `C.delivered` then.
    pub delivered: u64,
    /// `C.delivered_time` then.
    pub delivered_time: Instant,
    /// `C.first_sent_time` then: when the first segment of the current
    /// flight was sent.
    pub first_sent_time: Instant,
    /// When this segment was sent.
    pub sent_time: Instant,
    /// The sender was application-limited.
    pub app_limited: bool,
    /// The segment was a retransmission (its RTT is ambiguous).
    pub retrans: bool,
}

/// One delivery-rate sample, from one ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSample {
    /// Bytes delivered over `interval`.
    pub delivered: u64,
    /// The longer of the send and ACK intervals of the sampled flight.
    pub interval: Duration,
    /// The sender was application-limited when the sampled segment was
    /// sent: the rate is a lower bound of what the path can carry.
    pub app_limited: bool,
    /// Total bytes delivered on the connection before the sampled segment
    /// was sent (`RS.prior_delivered`: BBR counts round trips with it).
    pub prior_delivered: u64,
    /// The round-trip time of the sampled segment, unless it was a
    /// retransmission.
    pub rtt: Option<Duration>,
}

impl RateSample {
    /// The delivery rate, bytes per second.
    pub fn rate(&self) -> u64 {
        let us = self.interval.as_micros().max(1);
        (self.delivered as u128 * 1_000_000 / us).min(u64::MAX as u128) as u64
    }
}

/// The per-connection estimator (`C.*` and the `RS.*` being built for the
/// current ACK in the draft's terms).
#[derive(Debug, Clone, Default)]
pub(crate) struct RateEstimator {
    /// Bytes delivered (cumulatively ACKed or SACKed) so far.
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    /// Non-zero while application-limited: the `delivered` value at which
    /// the app-limited phase ends.
    app_limited: u64,
    /// The segment that gives this ACK's sample, if any was delivered.
    prior: Option<TxStamp>,
    /// The last valid sample.
    last: Option<RateSample>,
    /// The sample of the ACK being processed (None: it gave none).
    this_ack: Option<RateSample>,
    /// Bytes counted delivered on duplicate ACKs without SACK, not yet
    /// cumulatively acknowledged (Linux's `tcp_add_reno_sack`).
    dup_credit: u64,
}

impl RateEstimator {
    /// Total bytes delivered so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The last valid sample, if any.
    pub(crate) fn last(&self) -> Option<RateSample> {
        self.last
    }

    /// The sample of the ACK being processed, if it gave a valid one.
    pub(crate) fn this_ack(&self) -> Option<RateSample> {
        self.this_ack
    }

    /// Whether the sender is currently marked application-limited.
    #[cfg(test)]
    pub(crate) fn is_app_limited(&self) -> bool {
        self.app_limited != 0
    }

    /// A segment goes out at `now`; `idle` says nothing was in flight
    /// before it (the start of a new flight). Returns its stamp.
    pub(crate) fn on_send(&mut self, now: Instant, idle: bool, retrans: bool) -> TxStamp {
        if idle {
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        TxStamp {
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            sent_time: now,
            app_limited: self.app_limited != 0,
            retrans,
        }
    }

    /// `bytes` stamped `stamp` were delivered (ACKed or SACKed) at `now`.
    pub(crate) fn on_delivered(&mut self, stamp: &TxStamp, bytes: u64, now: Instant) {
        let credited = bytes.min(self.dup_credit);
        self.dup_credit -= credited;
        self.delivered += bytes - credited;
        self.delivered_time = now;
        // The most recently sent segment gives the sample (the largest
        // prior `delivered`, ties to the later send).
        let newer = match self.prior {
            None => true,
            Some(p) => {
                stamp.delivered > p.delivered
                    || (stamp.delivered == p.delivered && stamp.sent_time > p.sent_time)
            }
        };
        if newer {
            self.prior = Some(*stamp);
            self.first_sent_time = stamp.sent_time;
        }
    }

    /// The ACK has been processed: builds its sample. Samples whose
    /// interval is shorter than `min_rtt` are discarded (they would
    /// overestimate: an ACK compression artefact).
    pub(crate) fn finish_ack(&mut self, min_rtt: Option<Duration>) -> Option<RateSample> {
        if self.app_limited != 0 && self.delivered > self.app_limited {
            self.app_limited = 0;
        }
        self.this_ack = None;
        let p = self.prior.take()?;
        let send_elapsed = p.sent_time - p.first_sent_time;
        let ack_elapsed = self.delivered_time - p.delivered_time;
        let interval = send_elapsed.max(ack_elapsed);
        if interval == Duration::ZERO || min_rtt.is_some_and(|m| interval < m) {
            return None;
        }
        let s = RateSample {
            delivered: self.delivered - p.delivered,
            interval,
            app_limited: p.app_limited,
            prior_delivered: p.delivered,
            rtt: (!p.retrans).then(|| self.delivered_time - p.sent_time),
        };
        self.last = Some(s);
        self.this_ack = Some(s);
        Some(s)
    }

    /// A duplicate ACK without SACK: a segment of `bytes` left the network
    /// (as Linux counts it), though which one is unknown; the cumulative
    /// ACK that covers it later is not counted again. `in_flight` bounds
    /// the credit.
    pub(crate) fn on_dup_ack(&mut self, bytes: u64, in_flight: u64, now: Instant) {
        let b = bytes.min(in_flight.saturating_sub(self.dup_credit));
        self.delivered += b;
        self.dup_credit += b;
        self.delivered_time = now;
    }

    /// Nothing more to send although the window would allow it: the
    /// application limits the sender until what is in flight now
    /// (`in_flight` bytes) has been delivered.
    pub(crate) fn mark_app_limited(&mut self, in_flight: usize) {
        self.app_limited = (self.delivered + in_flight as u64).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(n)
    }

    /// A steady flight: ten 1000-byte segments sent 1 ms apart, each
    /// delivered 50 ms after it was sent, measures 1000 bytes per ms.
    #[test]
    fn steady_flight_measures_the_send_rate() {
        let mut r = RateEstimator::default();
        let mut stamps = Vec::new();
        for i in 0..10 {
            stamps.push(r.on_send(ms(i), i == 0, false));
        }
        let mut last = None;
        for (i, s) in stamps.iter().enumerate() {
            r.on_delivered(s, 1000, ms(50 + i as u64));
            last = r.finish_ack(Some(Duration::from_millis(1))).or(last);
        }
        let s = last.unwrap();
        // The last segment of the first flight: 10,000 bytes delivered
        // since its stamp (0 then), over max(send 9 ms, ACK 59 ms).
        assert_eq!(s.prior_delivered, 0);
        assert_eq!(s.delivered, 10_000);
        assert_eq!(s.interval, Duration::from_millis(59));
        // Second flight, sent while the first is being delivered: its
        // samples see the real rate, 1000 bytes per 1 ms.
        let mut stamps = Vec::new();
        for i in 0..10 {
            stamps.push(r.on_send(ms(100 + i), false, false));
        }
        for (i, s) in stamps.iter().enumerate() {
            r.on_delivered(s, 1000, ms(150 + i as u64));
            last = r.finish_ack(Some(Duration::from_millis(1))).or(last);
        }
        let s = last.unwrap();
        assert_eq!(s.delivered, 10_000);
        assert_eq!(s.interval, Duration::from_millis(100));
        assert_eq!(s.rate(), 100_000);
        assert!(!s.app_limited);
    }

    #[test]
    fn the_newest_delivered_segment_gives_the_sample() {
        let mut r = RateEstimator::default();
        let a = r.on_send(ms(0), true, false);
        let b = r.on_send(ms(10), false, false);
        // One ACK delivers both (a SACK of b, then the cumulative ACK of a).
        r.on_delivered(&b, 500, ms(40));
        r.on_delivered(&a, 500, ms(40));
        let s = r.finish_ack(None).unwrap();
        assert_eq!(s.delivered, 1000);
        // From b: send interval 10 ms, ACK interval 40 ms.
        assert_eq!(s.interval, Duration::from_millis(40));
        assert!(r.finish_ack(None).is_none(), "one sample per ACK");
    }

    #[test]
    fn short_intervals_are_discarded_and_app_limited_is_flagged_until_delivered() {
        let mut r = RateEstimator::default();
        let a = r.on_send(ms(0), true, false);
        r.on_delivered(&a, 1000, ms(2));
        assert!(r.finish_ack(Some(Duration::from_millis(5))).is_none());
        // Nothing in flight and nothing to send.
        r.mark_app_limited(0);
        assert!(r.is_app_limited());
        let b = r.on_send(ms(10), true, false);
        r.on_delivered(&b, 1000, ms(20));
        let s = r.finish_ack(None).unwrap();
        assert!(s.app_limited);
        // 2000 delivered, past the mark (1000): no longer limited.
        assert!(!r.is_app_limited());
        let c = r.on_send(ms(30), true, false);
        r.on_delivered(&c, 1000, ms(40));
        assert!(!r.finish_ack(None).unwrap().app_limited);
    }
}
