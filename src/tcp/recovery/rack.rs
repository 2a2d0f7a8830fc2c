//! RACK-TLP loss detection (RFC 8985) over the per-segment transmit
//! records ([`SegQueue`]) and the scoreboard's SACKed ranges
//! ([`RangeSet`]): the RACK state ([`Rack`]) and the Tail Loss Probe
//! timeout ([`pto`]).
//!
//! RACK marks a segment lost when a segment sent *after* it has been
//! delivered (cumulatively acknowledged or SACKed) and more than
//! `RACK.rtt + RACK.reo_wnd` has passed since it was sent. Time, not a
//! count of duplicate ACKs, decides, so it also finds lost
//! retransmissions, and reordering shorter than the reordering window
//! costs nothing. A Tail Loss Probe repairs losses at the end of a flight,
//! where no later segment can be delivered to reveal them, in two round
//! trips instead of an RTO.
//!
//! Everything here is arithmetic on values the connection passes in
//! (`now` among them); the connection's side is in `tcp/loss.rs`.

use super::scoreboard::RangeSet;
use super::sent::{sent_after, SegQueue, TxSeg};
use super::DUP_THRESH;
use crate::tcp::seq::SeqNumber;
use crate::time::{Duration, Instant};

/// Rounds without D-SACK (as recoveries) after which the reordering window
/// multiplier goes back to 1 (RFC 8985 §6.2).
const REO_WND_PERSIST: u32 = 16;

/// RACK's state (RFC 8985 §6.1).
#[derive(Debug, Clone)]
pub(crate) struct Rack {
    /// `RACK.xmit_ts`: transmit time of the most recently sent segment
    /// that has been delivered.
    pub xmit_ts: Option<Instant>,
    /// `RACK.end_seq` of that segment.
    pub end_seq: SeqNumber,
    /// `RACK.rtt`: the RTT of that segment.
    pub rtt: Duration,
    /// Highest end of a delivered segment (`RACK.fack`).
    pub fack: Option<SeqNumber>,
    /// Smallest RTT measured (`RACK.min_RTT`).
    pub min_rtt: Option<Duration>,
    pub reordering_seen: bool,
    pub reo_wnd_mult: u32,
    pub reo_wnd_persist: u32,
    /// `RACK.dsack_round`: one multiplier step per round trip.
    pub dsack_round: Option<SeqNumber>,
}

impl Default for Rack {
    fn default() -> Self {
        Rack {
            xmit_ts: None,
            end_seq: SeqNumber(0),
            rtt: Duration::ZERO,
            fack: None,
            min_rtt: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
        }
    }
}

impl Rack {
    /// RFC 8985 `RACK_detect_loss`: marks lost every segment sent before
    /// RACK's one more than `RACK.rtt + reo_wnd` ago and not wholly in
    /// `sacked`, calling `lost` with each newly marked range. Returns how
    /// long until the next segment would be marked (the reordering
    /// timer), if any is waiting.
    pub(crate) fn detect_loss(
        &self,
        segs: &mut SegQueue,
        sacked: &RangeSet,
        reo_wnd: Duration,
        now: Instant,
        mut lost: impl FnMut(SeqNumber, SeqNumber),
    ) -> Option<Duration> {
        let rx = self.xmit_ts?;
        let mut timeout: Option<Duration> = None;
        for r in segs.iter_mut() {
            if sent_after(r.xmit, r.end, rx, self.end_seq) {
                // First transmissions go out in sequence order, and a
                // retransmission is later still: nothing beyond a first
                // transmission sent after RACK's segment can be before it.
                if !r.ever_rexmit {
                    break;
                }
                continue;
            }
            if (r.lost && !r.rexmit) || sacked.covers(r.start, r.end) {
                continue;
            }
            let deadline = r.xmit + self.rtt + reo_wnd;
            if deadline <= now {
                r.lost = true;
                r.rexmit = false;
                lost(r.start, r.end);
            } else {
                let left = deadline - now;
                timeout = Some(timeout.map_or(left, |t| t.max(left)));
            }
        }
        timeout
    }

    /// RFC 8985 `RACK_update` and `RACK_detect_reordering` for a segment
    /// just delivered at `now`. `ts` is the ACK's TSecr and our timestamp
    /// offset, for a cumulative ACK when timestamps are in use: a
    /// retransmitted segment gives a sample only if the echoed timestamp
    /// is not older than its last transmission (else the ACK is for an
    /// earlier copy), and only if the RTT is not below min_RTT.
    ///
    /// Reordering is inferred from a segment *SACKed* below the highest
    /// delivered end without having been retransmitted (and from
    /// D-SACKs), not from cumulative ACKs: with many holes the receiver's
    /// three SACK blocks leave ranges unreported, and their cumulative
    /// ACK would look like reordering. That false positive kept the
    /// window at min_RTT/4 through the slow-start overshoot of
    /// `clean_link_90_percent_within_10_s` (10,473 queue drops and 5 RTOs
    /// in 10 s, against 409 and none).
    pub(crate) fn on_delivered(
        &mut self,
        seg: &TxSeg,
        sacked: bool,
        now: Instant,
        ts: Option<(u32, u32)>,
    ) {
        match self.fack {
            Some(f) if seg.end <= f => {
                if sacked && seg.end < f && !seg.ever_rexmit {
                    self.reordering_seen = true;
                }
            }
            _ => self.fack = Some(seg.end),
        }
        let rtt = now - seg.xmit;
        if seg.ever_rexmit {
            if let Some((ecr, offset)) = ts {
                let sent = (seg.xmit.total_millis() as u32).wrapping_add(offset);
                if (ecr.wrapping_sub(sent) as i32) < 0 {
                    return;
                }
            }
            if self.min_rtt.is_some_and(|m| rtt < m) {
                return;
            }
        }
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        // RACK.rtt is the RTT of the most recently *sent* segment delivered
        // (RFC 8985 §6.1), so a late ACK of an old segment leaves it alone
        // whatever order an ACK's segments are processed in.
        if self
            .xmit_ts
            .is_none_or(|x| sent_after(seg.xmit, seg.end, x, self.end_seq))
        {
            self.rtt = rtt;
            self.xmit_ts = Some(seg.xmit);
            self.end_seq = seg.end;
        }
    }

    /// A D-SACK arrived (RFC 8985 §6.2): the window grows by one quarter
    /// of min_RTT, once per round trip, and stays grown for 16
    /// recoveries. A D-SACK is also taken as evidence of reordering (or of
    /// a delay spike): a retransmission was spurious.
    pub(crate) fn on_dsack(&mut self, snd_nxt: SeqNumber) {
        self.reordering_seen = true;
        if self.dsack_round.is_none() {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1).min(64);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// The cumulative ACK moved to `snd_una`: a D-SACK round ends.
    pub(crate) fn on_ack(&mut self, snd_una: SeqNumber) {
        if self.dsack_round.is_some_and(|r| snd_una >= r) {
            self.dsack_round = None;
        }
    }

    /// A recovery ended without D-SACK in it.
    pub(crate) fn on_exit_recovery(&mut self) {
        if self.dsack_round.is_none() {
            self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// RFC 8985 `RACK_update_reo_wnd` (the return value): zero before any
    /// reordering was seen once in recovery or with DupThresh segments
    /// SACKed (so RACK is as fast as DupThresh where that is safe), else
    /// `min(mult · min_RTT / 4, SRTT)`.
    pub(crate) fn reo_wnd(
        &self,
        in_recovery: bool,
        segs_sacked: usize,
        srtt: Duration,
    ) -> Duration {
        if !self.reordering_seen && (in_recovery || segs_sacked >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let min_rtt = self.min_rtt.unwrap_or(srtt);
        (min_rtt / 4 * self.reo_wnd_mult).min(srtt)
    }
}

/// The Tail Loss Probe's state (RFC 8985 §7).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tlp {
    /// `TLP.end_seq`: snd_nxt after the probe, while it is outstanding.
    pub end_seq: Option<SeqNumber>,
    /// The probe retransmitted old data (`TLP.is_retrans`).
    pub is_retrans: bool,
    /// An RTT sample arrived since the last probe (§7.3 condition 2).
    pub rtt_since_probe: bool,
    /// The PTO expired: send the probe on the next poll.
    pub due: bool,
}

/// RFC 8985 §7.2 `TLP_calc_PTO`: `2·SRTT`, plus the peer's worst-case
/// delayed-ACK time when only one segment is in flight (its ACK may be
/// delayed), else plus `floor` (as Linux adds `TCP_TIMEOUT_MIN`, 2 ms:
/// on a sub-millisecond path an ACK a scheduler delayed by a millisecond
/// or two is not a lost tail, and a probe then is a spurious
/// retransmission); 1 s without an RTT sample; never beyond the RTO
/// deadline (`rto_left`), and at least `floor`.
pub(crate) fn pto(
    srtt: Option<Duration>,
    one_segment: bool,
    max_ack_delay: Duration,
    rto_left: Duration,
    floor: Duration,
) -> Duration {
    let p = match srtt {
        Some(s) => {
            let p = s * 2;
            if one_segment {
                p + max_ack_delay
            } else {
                p + floor
            }
        }
        None => Duration::from_secs(1),
    };
    p.min(rto_left).max(floor)
}

#[cfg(test)]
mod tests {
    use super::super::Recovery;
    use super::*;
    use crate::tcp::rate::TxStamp;

    const MSS: u32 = 1000;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn ms(n: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(n)
    }

    /// Ten segments `[k*1000, k*1000+1000)`, k = 1..=10, segment k sent at
    /// k ms: the transmit records and the scoreboard of a connection
    /// (snd_una `una`), fed as the connection feeds them.
    struct Flight {
        rec: Recovery,
        una: SeqNumber,
    }

    fn queue() -> Flight {
        let mut rec = Recovery::default();
        for k in 1..=10u32 {
            rec.segs.sent_new(
                s(k * MSS),
                s(k * MSS + MSS),
                ms(k as u64),
                TxStamp::default(),
                |_, _| false,
            );
        }
        Flight { rec, una: s(MSS) }
    }

    impl Flight {
        /// The peer SACKs `[a, b)`: `f` gets each record newly SACKed.
        fn sack(&mut self, a: SeqNumber, b: SeqNumber, mut f: impl FnMut(&TxSeg)) {
            let max = s(11 * MSS);
            self.rec
                .on_ack(&[(a.0, b.0)], self.una, max, |_, r, _| f(r));
        }

        /// A cumulative ACK up to `una`: `f` gets each record it delivered.
        fn ack(&mut self, una: SeqNumber, mut f: impl FnMut(&TxSeg)) {
            self.una = una;
            self.rec.on_ack(&[], una, s(11 * MSS), |_, r, _| f(r));
        }

        fn retransmitted(&mut self, a: SeqNumber, b: SeqNumber, now: Instant, st: TxStamp) {
            self.rec.segs.retransmitted(a, b, now, st);
        }

        fn segs_sacked(&self) -> usize {
            self.rec.segs_sacked()
        }

        fn len(&self) -> usize {
            self.rec.segs.len()
        }

        fn iter(&self) -> impl Iterator<Item = &TxSeg> {
            self.rec.segs.iter()
        }
    }

    fn lost_of(
        q: &mut Flight,
        rack: &Rack,
        reo: Duration,
        now: Instant,
    ) -> (Vec<u32>, Option<Duration>) {
        let mut v = Vec::new();
        let sacked = q.rec.sack.sacked();
        let t = rack.detect_loss(&mut q.rec.segs, sacked, reo, now, |a, _| v.push(a.0 / MSS));
        (v, t)
    }

    #[test]
    fn reordering_within_the_window_is_not_loss_beyond_it_is() {
        let mut q = queue();
        let mut rack = Rack::default();
        // Segment 5 (sent at 5 ms) SACKed at 45 ms: RTT 40 ms.
        q.sack(s(5000), s(6000), |r| {
            rack.on_delivered(r, true, ms(45), None)
        });
        assert_eq!(rack.rtt, Duration::from_millis(40));
        assert_eq!(rack.xmit_ts, Some(ms(5)));
        assert_eq!(q.segs_sacked(), 1);
        let reo = Duration::from_millis(10);
        // At 45 ms segments 1-4 (sent 1-4 ms) are due at 51-54 ms: none
        // lost yet, the timer waits for the last of them.
        let (lost, t) = lost_of(&mut q, &rack, reo, ms(45));
        assert!(lost.is_empty());
        assert_eq!(t, Some(Duration::from_millis(9)));
        // Segment 1 and 2 arrive late (reordered) at 50 ms: a cumulative
        // ACK is not taken for reordering (it may be SACK blocks that did
        // not fit); segment 3 SACKed below fack, never retransmitted, is.
        q.ack(s(3000), |r| rack.on_delivered(r, false, ms(50), None));
        assert!(!rack.reordering_seen);
        let mut q2 = queue();
        let mut r2 = rack.clone();
        q2.sack(s(3000), s(4000), |r| r2.on_delivered(r, true, ms(50), None));
        assert!(r2.reordering_seen);
        // At 53 ms segment 3 (due 51) is lost, 4 (due 54) not yet.
        let (lost, t) = lost_of(&mut q, &rack, reo, ms(53));
        assert_eq!(lost, vec![3]);
        assert_eq!(t, Some(Duration::from_millis(1)));
        // Marked once only.
        let (lost, _) = lost_of(&mut q, &rack, reo, ms(54));
        assert_eq!(lost, vec![4]);
        let (lost, t) = lost_of(&mut q, &rack, reo, ms(60));
        assert!(lost.is_empty() && t.is_none());
        // Segments after RACK's one are never marked.
        assert!(q.iter().filter(|r| r.start.0 >= 6000).all(|r| !r.lost));
    }

    #[test]
    fn lost_retransmission_is_detected() {
        let mut q = queue();
        let mut rack = Rack::default();
        let reo = Duration::ZERO;
        // 6-10 SACKed at 50 ms (RTT 40 ms); 1-5 lost.
        q.sack(s(6000), s(11000), |r| {
            rack.on_delivered(r, true, ms(50), None)
        });
        let (lost, _) = lost_of(&mut q, &rack, reo, ms(50));
        assert_eq!(lost, vec![1, 2, 3, 4, 5]);
        // Retransmitted at 51-55 ms; the retransmission of 2 is lost again.
        for k in 1..=5 {
            q.retransmitted(
                s(k * MSS),
                s(k * MSS + MSS),
                ms(50 + k as u64),
                TxStamp::default(),
            );
        }
        let (lost, _) = lost_of(&mut q, &rack, reo, ms(56));
        assert!(
            lost.is_empty(),
            "retransmissions are newer than RACK's segment"
        );
        // The retransmission of 1 is cumulatively acknowledged at 92 ms,
        // of 3 SACKed at 94 ms (RTT 41 ms): 2 was sent before 3 and is
        // due at 52 + 41 ms: lost again; 4 and 5 were sent after 3.
        q.ack(s(2000), |r| rack.on_delivered(r, false, ms(92), None));
        q.sack(s(3000), s(4000), |r| {
            rack.on_delivered(r, true, ms(94), None)
        });
        assert_eq!(rack.xmit_ts, Some(ms(53)));
        let (lost, _) = lost_of(&mut q, &rack, reo, ms(94));
        assert_eq!(lost, vec![2]);
        let two = q.iter().find(|r| r.start == s(2000)).unwrap();
        assert!(two.lost && !two.rexmit && two.ever_rexmit);
    }

    #[test]
    fn retransmission_rtt_needs_a_fresh_echo_or_a_plausible_rtt() {
        let mut rack = Rack::default();
        let mut q = queue();
        q.sack(s(9000), s(10000), |r| {
            rack.on_delivered(r, true, ms(49), None)
        });
        assert_eq!(rack.min_rtt, Some(Duration::from_millis(40)));
        q.retransmitted(s(1000), s(2000), ms(60), TxStamp::default());
        // Acknowledged 5 ms after the retransmission: an ACK for the
        // original, not a valid sample (shorter than min RTT).
        q.ack(s(2000), |r| rack.on_delivered(r, false, ms(65), None));
        assert_eq!(rack.xmit_ts, Some(ms(9)));
        // With timestamps: an echo older than the retransmission is
        // refused, a fresh one taken.
        q.retransmitted(s(2000), s(3000), ms(70), TxStamp::default());
        q.ack(s(3000), |r| {
            rack.on_delivered(r, false, ms(200), Some((69, 0)))
        });
        assert_eq!(rack.xmit_ts, Some(ms(9)));
        q.retransmitted(s(3000), s(4000), ms(210), TxStamp::default());
        q.ack(s(4000), |r| {
            rack.on_delivered(r, false, ms(260), Some((210, 0)))
        });
        assert_eq!(rack.xmit_ts, Some(ms(210)));
        assert_eq!(rack.rtt, Duration::from_millis(50));
    }

    #[test]
    fn records_split_on_partial_sacks_and_retransmissions() {
        let mut q = queue();
        let mut n = 0;
        q.sack(s(2500), s(3500), |_| n += 1);
        assert_eq!(n, 2, "halves of segments 2 and 3");
        assert_eq!(q.segs_sacked(), 2);
        assert_eq!(q.len(), 12);
        q.retransmitted(s(1000), s(1500), ms(30), TxStamp::default());
        let r: Vec<_> = q
            .iter()
            .take(2)
            .map(|r| (r.start.0, r.end.0, r.rexmit))
            .collect();
        assert_eq!(r, vec![(1000, 1500, true), (1500, 2000, false)]);
        q.ack(s(3000), |_| {});
        assert_eq!(q.segs_sacked(), 1);
        assert_eq!(q.iter().next().unwrap().start, s(3000));
    }

    #[test]
    fn reo_wnd_rules() {
        let mut r = Rack {
            min_rtt: Some(Duration::from_millis(40)),
            ..Rack::default()
        };
        let srtt = Duration::from_millis(50);
        assert_eq!(r.reo_wnd(false, 0, srtt), Duration::from_millis(10));
        assert_eq!(r.reo_wnd(true, 0, srtt), Duration::ZERO);
        assert_eq!(r.reo_wnd(false, 3, srtt), Duration::ZERO);
        r.reordering_seen = true;
        assert_eq!(r.reo_wnd(true, 5, srtt), Duration::from_millis(10));
        // D-SACK: one step per round, capped by SRTT.
        r.on_dsack(s(5000));
        r.on_dsack(s(6000));
        assert_eq!(r.reo_wnd(false, 0, srtt), Duration::from_millis(20));
        r.on_ack(s(5000));
        r.on_dsack(s(7000));
        r.on_ack(s(7000));
        r.on_dsack(s(8000));
        r.on_ack(s(8000));
        r.on_dsack(s(9000));
        assert_eq!(r.reo_wnd_mult, 5);
        assert_eq!(r.reo_wnd(false, 0, srtt), srtt);
        // 16 recoveries without D-SACK reset the multiplier.
        r.on_ack(s(9000));
        for _ in 0..15 {
            r.on_exit_recovery();
        }
        assert_eq!(r.reo_wnd_mult, 5);
        r.on_exit_recovery();
        assert_eq!(r.reo_wnd_mult, 1);
    }

    #[test]
    fn pto_computation() {
        let d = Duration::from_millis;
        let floor = d(2);
        // 2·SRTT, plus the floor (Linux's TCP_TIMEOUT_MIN).
        assert_eq!(pto(Some(d(40)), false, d(200), d(1000), floor), d(82));
        // One segment in flight: plus the worst-case delayed ACK.
        assert_eq!(pto(Some(d(40)), true, d(200), d(1000), floor), d(280));
        // Capped by the time left to the RTO.
        assert_eq!(pto(Some(d(40)), true, d(200), d(230), floor), d(230));
        // No sample: 1 s.
        assert_eq!(pto(None, false, d(200), d(3000), floor), d(1000));
        // A sub-millisecond path: 2·SRTT + the floor.
        assert_eq!(
            pto(
                Some(Duration::from_micros(100)),
                false,
                d(200),
                d(1000),
                floor
            ),
            floor + Duration::from_micros(200)
        );
        // Never below the floor, even when the RTO is nearer.
        assert_eq!(pto(Some(d(40)), false, d(200), d(1), floor), floor);
    }
}
