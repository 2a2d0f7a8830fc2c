//! The transmit records of the data in flight, in sequence order: when
//! each segment was last sent, whether it was retransmitted or marked
//! lost, and the delivery state at its transmission. RACK
//! ([`super::rack`]) decides loss from them, and the delivery-rate
//! sampler reads their stamps.
//!
//! Whether a record is SACKed is not stored here: the scoreboard
//! ([`super::scoreboard`]) alone holds what the peer SACKed, and the
//! methods that need it take it as `sacked(start, end)` (true when the
//! whole of `[start, end)` is SACKed).
//!
//! Bounds: [`SegQueue`] keeps at most [`MAX_SEGS`] records. Beyond that new
//! data is merged into the last record (it then looks sent later than it
//! was, which can only delay loss detection: the RTO remains the fallback),
//! and splits are skipped (a retransmission then marks a whole record; a
//! record only partly SACKed counts as not SACKed).

use std::collections::VecDeque;

use crate::tcp::rate::TxStamp;
use crate::tcp::seq::SeqNumber;
use crate::time::Instant;

/// Most segment records kept (a 16 MiB flight of 1 KiB segments).
pub(crate) const MAX_SEGS: usize = 16_384;

/// One transmitted segment (or part of one, after a split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxSeg {
    pub start: SeqNumber,
    pub end: SeqNumber,
    /// When it was last (re)transmitted.
    pub xmit: Instant,
    /// Retransmitted at least once (RTT samples from it are ambiguous).
    pub ever_rexmit: bool,
    /// Retransmitted since RACK last marked it lost (RFC 8985's
    /// `Segment.retransmitted`).
    pub rexmit: bool,
    pub lost: bool,
    /// Delivery state when it was last (re)transmitted (rate sampling).
    pub stamp: TxStamp,
}

/// Whether (t1, s1) was sent after (t2, s2): later, or at the same time
/// with a higher end (RFC 8985 `RACK_sent_after`).
pub(crate) fn sent_after(t1: Instant, s1: SeqNumber, t2: Instant, s2: SeqNumber) -> bool {
    t1 > t2 || (t1 == t2 && s1 > s2)
}

/// The transmit records of the data in flight, in sequence order.
#[derive(Debug, Clone, Default)]
pub(crate) struct SegQueue {
    segs: VecDeque<TxSeg>,
}

impl SegQueue {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.segs.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &TxSeg> {
        self.segs.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut TxSeg> {
        self.segs.iter_mut()
    }

    /// Records lying wholly inside `[s, e)` (the records are sorted and
    /// disjoint: two binary searches).
    pub(crate) fn count_within(&self, s: SeqNumber, e: SeqNumber) -> usize {
        let lo = self.segs.partition_point(|r| r.start < s);
        let hi = self.segs.partition_point(|r| r.end <= e);
        hi.saturating_sub(lo)
    }

    /// New data `[start, end)` went out at `now`.
    pub(crate) fn sent_new(
        &mut self,
        start: SeqNumber,
        end: SeqNumber,
        now: Instant,
        stamp: TxStamp,
        sacked: impl Fn(SeqNumber, SeqNumber) -> bool,
    ) {
        if end <= start {
            return;
        }
        if self.segs.len() >= MAX_SEGS {
            if let Some(last) = self.segs.back_mut() {
                if last.end == start && !last.lost && !sacked(last.start, last.end) {
                    last.end = end;
                    last.xmit = now;
                    last.stamp = stamp;
                }
            }
            return;
        }
        self.segs.push_back(TxSeg {
            start,
            end,
            xmit: now,
            ever_rexmit: false,
            rexmit: false,
            lost: false,
            stamp,
        });
    }

    #[cfg(test)]
    pub(crate) fn front(&self) -> Option<TxSeg> {
        self.segs.front().copied()
    }

    /// Index of the first record ending after `seq`.
    fn first_ending_after(&self, seq: SeqNumber) -> usize {
        self.segs.partition_point(|s| s.end <= seq)
    }

    /// Splits the record containing `seq` strictly inside it, so that a
    /// record starts at `seq` (unless the bound is reached).
    fn split_at(&mut self, seq: SeqNumber) {
        let i = self.first_ending_after(seq);
        let Some(&r) = self.segs.get(i) else { return };
        if r.start < seq && seq < r.end && self.segs.len() < MAX_SEGS {
            self.segs[i].end = seq;
            let mut tail = r;
            tail.start = seq;
            self.segs.insert(i + 1, tail);
        }
    }

    /// The records overlapping `[s, e)` after splitting at both edges.
    fn range(&mut self, s: SeqNumber, e: SeqNumber) -> std::ops::Range<usize> {
        self.split_at(s);
        self.split_at(e);
        let lo = self.first_ending_after(s);
        let hi = self.segs.partition_point(|r| r.start < e);
        lo..hi.max(lo)
    }

    /// `[s, e)` was retransmitted at `now`.
    pub(crate) fn retransmitted(
        &mut self,
        s: SeqNumber,
        e: SeqNumber,
        now: Instant,
        stamp: TxStamp,
    ) {
        for i in self.range(s, e) {
            let r = &mut self.segs[i];
            r.xmit = now;
            r.stamp = stamp;
            r.ever_rexmit = true;
            r.rexmit = true;
        }
    }

    /// The peer is about to SACK `[s, e)`: splits the records at its
    /// edges and puts into `out` (cleared first) the indices of those
    /// overlapping it that are not SACKed yet, for
    /// [`sacked_now`](Self::sacked_now) once the scoreboard took the block.
    pub(crate) fn sack_candidates(
        &mut self,
        s: SeqNumber,
        e: SeqNumber,
        sacked: impl Fn(SeqNumber, SeqNumber) -> bool,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        let range = self.range(s, e);
        out.extend(range.filter(|&i| !sacked(self.segs[i].start, self.segs[i].end)));
    }

    /// Of the records `candidates` (from
    /// [`sack_candidates`](Self::sack_candidates)), calls `delivered` with
    /// each one SACKed now (a lost mark goes with it).
    pub(crate) fn sacked_now(
        &mut self,
        candidates: &[usize],
        sacked: impl Fn(SeqNumber, SeqNumber) -> bool,
        mut delivered: impl FnMut(&TxSeg),
    ) {
        for &i in candidates {
            let Some(r) = self.segs.get_mut(i) else {
                continue;
            };
            if sacked(r.start, r.end) {
                r.lost = false;
                delivered(r);
            }
        }
    }

    /// A cumulative ACK up to `una`: drops the records below it, calling
    /// `delivered` with each one that was not SACKed.
    pub(crate) fn ack(
        &mut self,
        una: SeqNumber,
        sacked: impl Fn(SeqNumber, SeqNumber) -> bool,
        mut delivered: impl FnMut(&TxSeg),
    ) {
        while let Some(r) = self.segs.front_mut() {
            if r.end <= una {
                let r = self.segs.pop_front().expect("front");
                if !sacked(r.start, r.end) {
                    delivered(&r);
                }
            } else {
                if r.start < una {
                    r.start = una; // partly acknowledged
                }
                break;
            }
        }
    }

    /// An RTO: go-back-N resends everything not SACKed, so lost marks go.
    pub(crate) fn on_rto(&mut self) {
        for r in self.segs.iter_mut() {
            r.lost = false;
            r.rexmit = false;
        }
    }
}
