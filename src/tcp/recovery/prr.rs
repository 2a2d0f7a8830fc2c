//! Proportional Rate Reduction (RFC 6937) for SACK-based recovery.
//!
//! During recovery the sender may send, per ACK, an amount proportional
//! to what the ACK reported delivered, so that by the end of recovery it
//! has sent `ssthresh / RecoverFS` of what was delivered and the flight
//! arrives at `ssthresh` smoothly, instead of halting for half a window
//! (RFC 6675's `cwnd = ssthresh` against a `pipe` near the old window) and
//! then bursting. Once `pipe` falls below `ssthresh` (more was lost than
//! the reduction), the slow-start reduction bound (PRR-SSRB) grows the
//! flight back towards `ssthresh` at most as fast as slow start.
//!
//! All quantities are in bytes. The congestion controller still chooses
//! `ssthresh` (on entering recovery) and the window after it (on exit).

/// The PRR state of one recovery episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prr {
    /// `RecoverFS`: FlightSize when recovery began.
    recover_fs: usize,
    /// `prr_delivered`: bytes delivered since then.
    delivered: usize,
    /// `prr_out`: bytes sent since then.
    out: usize,
    ssthresh: usize,
    mss: usize,
    /// The window the sender uses until the next ACK: `pipe + sndcnt`.
    cwnd: usize,
}

impl Prr {
    /// Recovery begins with `recover_fs` bytes in flight and the
    /// controller's new `ssthresh`.
    pub(crate) fn new(recover_fs: usize, ssthresh: usize, mss: usize) -> Prr {
        Prr {
            recover_fs: recover_fs.max(1),
            delivered: 0,
            out: 0,
            ssthresh,
            mss: mss.max(1),
            cwnd: 0,
        }
    }

    /// RFC 6937 §3.1, on every ACK in recovery: `delivered` is
    /// DeliveredData (the change in snd_una plus the change in SACKed
    /// bytes), `pipe` the RFC 6675 pipe after the ACK. Returns `sndcnt`,
    /// the bytes that may be sent now.
    pub(crate) fn on_ack(&mut self, delivered: usize, pipe: usize) -> usize {
        self.delivered += delivered;
        let sndcnt = if pipe > self.ssthresh {
            // Proportional rate reduction:
            // CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            // Rounded up to whole segments, as RFC 6937's examples count
            // in segments: a sender that sends only full segments then
            // keeps the proportion (with byte precision it would fall a
            // segment behind after the fast retransmit).
            let mss = self.mss as u128;
            let target = (self.delivered as u128 * self.ssthresh as u128)
                .div_ceil(self.recover_fs as u128)
                .div_ceil(mss)
                .saturating_mul(mss)
                .min(usize::MAX as u128) as usize;
            target.saturating_sub(self.out)
        } else {
            // PRR-SSRB: at most what was delivered beyond what was sent
            // (or this ACK's delivery) plus one segment, up to ssthresh.
            let limit = self
                .delivered
                .saturating_sub(self.out)
                .max(delivered)
                .saturating_add(self.mss);
            (self.ssthresh - pipe).min(limit)
        };
        self.cwnd = pipe.saturating_add(sndcnt);
        sndcnt
    }

    /// `bytes` (data or retransmission) went out during recovery.
    pub(crate) fn on_sent(&mut self, bytes: usize) {
        self.out += bytes;
    }

    /// The window to send under until the next ACK (`pipe + sndcnt` as of
    /// the last ACK; what was sent since counts in `pipe`).
    pub(crate) fn cwnd(&self) -> usize {
        self.cwnd
    }

    /// `prr_out`.
    #[cfg(test)]
    pub(crate) fn out(&self) -> usize {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    /// RFC 6937's example setting: 20 segments in flight, one lost,
    /// ssthresh 10 segments (Reno's half); each ACK SACKs one segment.
    /// Hand-computed: while pipe > ssthresh a segment goes out on every
    /// other ACK (the fast retransmit on the first); once pipe reaches
    /// ssthresh (ACK 17) PRR-SSRB holds it there: 10 segments sent for 19
    /// delivered, and the flight ends at ssthresh, without the RFC 6675
    /// pause of half a window followed by a burst.
    #[test]
    fn rfc6937_example_one_loss_in_twenty() {
        let mut p = Prr::new(20 * MSS, 10 * MSS, MSS);
        let mut pipe = 19 * MSS; // 20 outstanding, one of them lost
        let mut sent_on = Vec::new();
        for ack in 1..=19 {
            pipe -= MSS; // one more segment SACKed
            let sndcnt = p.on_ack(MSS, pipe);
            if sndcnt >= MSS {
                p.on_sent(MSS);
                pipe += MSS;
                sent_on.push(ack);
            }
        }
        assert_eq!(sent_on, vec![1, 3, 5, 7, 9, 11, 13, 15, 18, 19]);
        assert_eq!(p.out(), 10 * MSS);
        assert_eq!(pipe, 10 * MSS);
    }

    /// Hand-computed: RecoverFS 10 segments, ssthresh 7 (CUBIC's β =
    /// 0.7), one segment delivered per ACK: `ceil(k · 0.7)` segments may
    /// have been sent after k ACKs while pipe > ssthresh (ACKs 1-7), then
    /// PRR-SSRB tops pipe up to ssthresh (ACKs 9 and 10).
    #[test]
    fn proportional_sndcnt_by_hand() {
        let mut p = Prr::new(10 * MSS, 7 * MSS, MSS);
        let mut pipe = 10 * MSS;
        let mut sent_on = Vec::new();
        for k in 1..=10 {
            pipe -= MSS;
            let sndcnt = p.on_ack(MSS, pipe);
            assert!(sndcnt <= MSS, "ack {k}: {sndcnt}");
            assert_eq!(p.cwnd(), pipe + sndcnt);
            if sndcnt == MSS {
                p.on_sent(MSS);
                pipe += MSS;
                sent_on.push(k);
            }
        }
        assert_eq!(sent_on, vec![1, 2, 3, 5, 6, 9, 10]);
        assert_eq!(pipe, 7 * MSS, "the flight came down to ssthresh");
        // At ssthresh PRR-SSRB allows nothing more.
        assert_eq!(p.on_ack(MSS / 2, 7 * MSS), 0);
    }

    /// PRR-SSRB once pipe is below ssthresh (a second loss): growth is
    /// bounded by what was delivered (plus one segment), and by the
    /// distance to ssthresh.
    #[test]
    fn slow_start_reduction_bound() {
        let mut p = Prr::new(20 * MSS, 10 * MSS, MSS);
        // Proportional first: 4 deliveries, 2 segments sent.
        for _ in 0..4 {
            p.on_ack(MSS, 15 * MSS);
        }
        p.on_sent(2 * MSS);
        // Now pipe 6 segments (losses found): delivered 5, out 2:
        // limit = max(5 - 2, 1) + 1 = 4 segments = ssthresh - pipe.
        assert_eq!(p.on_ack(MSS, 6 * MSS), 4 * MSS);
        p.on_sent(4 * MSS);
        // delivered 6, out 6: max(0, 1) + 1 = 2 segments: slow start pace.
        assert_eq!(p.on_ack(MSS, 8 * MSS), 2 * MSS);
        // At ssthresh: nothing more than ssthresh - pipe.
        p.on_sent(2 * MSS);
        assert_eq!(p.on_ack(MSS, 10 * MSS), 0);
        assert_eq!(p.on_ack(3 * MSS, 9 * MSS), MSS);
    }
}
