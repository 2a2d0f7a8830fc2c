//! The sender's SACK scoreboard (RFC 6675 §3) and the pieces of RFC 6675
//! loss recovery that only need it: `IsLost`, `SetPipe` and `NextSeg`.
//!
//! Ranges are half-open `[start, end)` sequence-number intervals, kept
//! sorted and disjoint (adjacent ranges are merged). Everything is relative
//! to the connection's `snd_una` (HighACK + 1) and `snd_max` (HighData + 1),
//! which the caller passes in, so sequence comparisons stay within one
//! window and are meaningful across the 2^32 wrap.
//!
//! The scoreboard is the connection's one record of what the peer SACKed:
//! the transmit records ([`super::sent`]) and RACK ([`super::rack`]) keep
//! no SACK flags of their own and ask [`RangeSet::covers`] instead (see
//! [`super::Recovery::on_ack`]).
//!
//! Bounds: at most [`MAX_RANGES`] SACKed ranges are kept. A SACK block that
//! would create one more is dropped if it lies above every kept range;
//! otherwise the highest kept range is dropped to make room; both are
//! counted ([`Scoreboard::forgotten`], `TcpInfo::sack_ranges_forgotten`).
//! Forgetting a SACKed range is always safe: its bytes just count as
//! outstanding (and possibly lost) again, so at worst they are
//! retransmitted needlessly, and nothing unSACKed is ever taken for
//! delivered. What the bound costs beyond 256 holes: the records in a
//! forgotten range are not SACKed for RACK either (it may mark them lost
//! and resend them), their delivery is taken when the cumulative ACK
//! reaches them (or when the peer SACKs them again and the range is
//! kept), and a dropped block's delivery does not advance RACK's clock.
//! The retransmitted-marks set has the same bound, and forgetting a mark
//! is equally safe (the hole may be resent once more).

use super::DUP_THRESH;
use crate::tcp::seq::SeqNumber;

/// Most SACKed (and, separately, retransmitted) ranges remembered (2 KiB
/// each at most). 64 was too few: a slow start overflowing a one-BDP
/// queue at 100 Mbit/s × 40 ms leaves hundreds of holes in one window, and
/// with the ranges above the 64th forgotten their holes did not count as
/// lost, so recovery stalled into RTOs (7 RTOs and 4,917 retransmissions
/// for 3,442 drops in `clean_link_90_percent_within_10_s`, against none
/// and 505 for 419 with 256). The scans here are linear in the ranges
/// (pipe and IsLost quadratic in the worst case), which this bound keeps
/// cheap.
pub(crate) const MAX_RANGES: usize = 256;

/// A set of disjoint, sorted, non-adjacent half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    ranges: Vec<(SeqNumber, SeqNumber)>,
    /// Ranges dropped for the bound (a new one kept out, or the highest
    /// one pushed out).
    forgotten: u64,
}

impl RangeSet {
    pub(crate) fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Adds `[s, e)`, merging with overlapping or adjacent ranges. Returns
    /// true when bytes not already in the set were added.
    pub(crate) fn insert(&mut self, s: SeqNumber, e: SeqNumber) -> bool {
        if e <= s {
            return false;
        }
        // First range whose end reaches s (could merge), and the first
        // range starting beyond e (cannot merge).
        let lo = self.ranges.iter().position(|&(_, re)| re >= s);
        let Some(lo) = lo else {
            return self.push_bounded(self.ranges.len(), (s, e));
        };
        let hi = self
            .ranges
            .iter()
            .position(|&(rs, _)| rs > e)
            .unwrap_or(self.ranges.len());
        if lo == hi {
            return self.push_bounded(lo, (s, e));
        }
        let covered = self.ranges[lo].0 <= s && self.ranges[lo].1 >= e;
        let ns = self.ranges[lo].0.min(s);
        let ne = self.ranges[hi - 1].1.max(e);
        self.ranges.drain(lo..hi);
        self.ranges.insert(lo, (ns, ne));
        !covered
    }

    fn push_bounded(&mut self, at: usize, r: (SeqNumber, SeqNumber)) -> bool {
        if self.ranges.len() >= MAX_RANGES {
            self.forgotten += 1;
            if at == self.ranges.len() {
                return false; // above everything kept: drop the new one
            }
            self.ranges.pop(); // drop the highest
        }
        self.ranges.insert(at, r);
        true
    }

    /// Adds `[s, e)` like [`insert`](Self::insert), but when the bound
    /// keeps it out, widens the nearest range below it (else the one above
    /// it) to cover it instead: the set then over-approximates, and never
    /// forgets what was added. For marks where forgetting is unsafe (a
    /// forgotten retransmission mark is a hole resent again and again).
    pub(crate) fn insert_covering(&mut self, s: SeqNumber, e: SeqNumber) {
        if e <= s {
            return;
        }
        // Index of the first range reaching s (could merge with it).
        let i = self.ranges.partition_point(|&(_, re)| re < s);
        let merges = self.ranges.get(i).is_some_and(|&(rs, _)| rs <= e);
        if merges || self.ranges.len() < MAX_RANGES {
            self.insert(s, e);
            return;
        }
        // Full, and [s, e) lies in a gap (or beyond the ends).
        if i > 0 {
            self.ranges[i - 1].1 = e;
            // The widened range may now reach the next one.
            if self.ranges.get(i).is_some_and(|&(ns, _)| ns <= e) {
                let ne = self.ranges[i].1.max(e);
                self.ranges[i - 1].1 = ne;
                self.ranges.remove(i);
            }
        } else if let Some(first) = self.ranges.first_mut() {
            first.0 = s;
            first.1 = first.1.max(e);
        }
    }

    /// Removes `[s, e)` from the set (splitting a range it falls inside;
    /// when that would exceed the bound, the highest range goes).
    pub(crate) fn remove(&mut self, s: SeqNumber, e: SeqNumber) {
        if e <= s || self.ranges.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for &(rs, re) in &self.ranges {
            if re <= s || rs >= e {
                out.push((rs, re));
                continue;
            }
            if rs < s {
                out.push((rs, s));
            }
            if re > e {
                out.push((e, re));
            }
        }
        self.forgotten += out.len().saturating_sub(MAX_RANGES) as u64;
        out.truncate(MAX_RANGES);
        self.ranges = out;
    }

    /// Forgets everything below `una`; returns what it forgot.
    pub(crate) fn prune(&mut self, una: SeqNumber) -> RangeSet {
        let n = self.first_ending_after(una);
        let mut gone: Vec<_> = self.ranges.drain(..n).collect();
        if let Some(first) = self.ranges.first_mut() {
            if first.0 < una {
                gone.push((first.0, una));
                first.0 = una;
            }
        }
        RangeSet {
            ranges: gone,
            forgotten: 0,
        }
    }

    /// Whether all of `[s, e)` is in the set.
    pub(crate) fn covers(&self, s: SeqNumber, e: SeqNumber) -> bool {
        self.range_at(s).is_some_and(|(_, re)| e <= re)
    }

    /// Index of the first range ending after `seq` (the ranges are
    /// sorted and disjoint: a binary search).
    fn first_ending_after(&self, seq: SeqNumber) -> usize {
        self.ranges.partition_point(|&(_, e)| e <= seq)
    }

    /// The range containing `seq`, if any.
    pub(crate) fn range_at(&self, seq: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        self.ranges
            .get(self.first_ending_after(seq))
            .copied()
            .filter(|&(s, e)| seq.in_range(s, e))
    }

    /// The start of the first range starting after `seq`, if any.
    pub(crate) fn next_start_after(&self, seq: SeqNumber) -> Option<SeqNumber> {
        let i = self.ranges.partition_point(|&(s, _)| s <= seq);
        self.ranges.get(i).map(|&(s, _)| s)
    }

    /// Bytes of the set inside `[s, e)`.
    pub(crate) fn bytes_within(&self, s: SeqNumber, e: SeqNumber) -> usize {
        self.ranges[self.first_ending_after(s)..]
            .iter()
            .take_while(|&&(rs, _)| rs < e)
            .map(|&(rs, re)| {
                let a = rs.max(s);
                let b = re.min(e);
                (b - a).max(0) as usize
            })
            .sum()
    }
}

/// The scoreboard of one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scoreboard {
    /// SACKed ranges above snd_una.
    sacked: RangeSet,
    /// Ranges retransmitted in the current recovery episode (RFC 6675's
    /// HighRxt, generalised so that each hole is sent once).
    rexmitted: RangeSet,
    /// RFC 6675 RescueRxt: the recovery point when the rescue
    /// retransmission of this episode was sent.
    pub(crate) rescue: Option<SeqNumber>,
    /// Ranges RACK marked lost (RFC 8985), not SACKed since.
    lost: RangeSet,
    /// RACK decides loss (`lost`), not RFC 6675's DupThresh rule.
    pub(crate) rack: bool,
    /// With RACK, the DupThresh rule still counts too (while no
    /// reordering has been seen, where RACK's window is zero anyway): it
    /// needs no per-range marks, so it keeps working when there are more
    /// holes than the bounded `lost` set can hold.
    pub(crate) dupthresh: bool,
}

impl Scoreboard {
    pub(crate) fn sacked(&self) -> &RangeSet {
        &self.sacked
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sacked.is_empty()
    }

    /// The end of the highest SACKed range (one past the highest SACKed
    /// byte), if any.
    pub(crate) fn high_sacked(&self) -> Option<SeqNumber> {
        self.sacked.ranges().last().map(|&(_, e)| e)
    }

    /// SACKed ranges dropped for the bound so far.
    pub(crate) fn forgotten(&self) -> u64 {
        self.sacked.forgotten
    }

    /// An ACK's SACK blocks that lie inside `(una, max]`, as ranges: the
    /// others (D-SACK blocks below `una` among them, RFC 2883) are
    /// ignored.
    pub(crate) fn in_window(
        blocks: &[(u32, u32)],
        una: SeqNumber,
        max: SeqNumber,
    ) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        blocks
            .iter()
            .map(|&(l, r)| (SeqNumber(l), SeqNumber(r)))
            .filter(move |&(l, r)| l < r && l >= una && r <= max)
    }

    /// The peer SACKed `[l, r)`. Returns true when bytes not SACKed before
    /// were added (they are no longer lost).
    pub(crate) fn add(&mut self, l: SeqNumber, r: SeqNumber) -> bool {
        let new = self.sacked.insert(l, r);
        if new {
            self.lost.remove(l, r);
        }
        new
    }

    /// Takes an ACK's SACK blocks (those [`in_window`](Self::in_window)).
    /// Returns true when something new was SACKed.
    #[cfg(test)]
    pub(crate) fn update(&mut self, blocks: &[(u32, u32)], una: SeqNumber, max: SeqNumber) -> bool {
        let mut new = false;
        for (l, r) in Self::in_window(blocks, una, max) {
            new |= self.add(l, r);
        }
        new
    }

    /// A cumulative ACK moved snd_una to `una`; returns the SACKed ranges
    /// it forgot (below `una`).
    pub(crate) fn prune(&mut self, una: SeqNumber) -> RangeSet {
        self.rexmitted.prune(una);
        self.lost.prune(una);
        self.sacked.prune(una)
    }

    /// Forgets everything (SACK no longer in use, or suspected reneging).
    pub(crate) fn clear(&mut self) {
        self.sacked.clear();
        self.rexmitted.clear();
        self.lost.clear();
        self.rescue = None;
    }

    /// RACK marked `[s, e)` lost: it counts as lost, and a retransmission
    /// of it is due again if one was out (a lost retransmission).
    pub(crate) fn mark_lost(&mut self, s: SeqNumber, e: SeqNumber) {
        self.lost.insert(s, e);
        self.rexmitted.remove(s, e);
    }

    /// Forgets RACK's loss marks (an RTO resends everything anyway).
    pub(crate) fn clear_lost(&mut self) {
        self.lost.clear();
    }

    #[cfg(test)]
    pub(crate) fn rexmitted_at(&self, seq: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        self.rexmitted.range_at(seq)
    }

    #[cfg(test)]
    pub(crate) fn lost_ranges(&self) -> usize {
        self.lost.ranges().len()
    }

    /// Bytes RACK has marked lost.
    pub(crate) fn lost_bytes(&self) -> usize {
        self.lost
            .ranges()
            .iter()
            .map(|&(s, e)| (e - s).max(0) as usize)
            .sum()
    }

    /// A recovery episode ended or an RTO fired: holes may be resent again
    /// (RFC 6675 §5.1), the SACK information stays.
    pub(crate) fn clear_retransmitted(&mut self) {
        self.rexmitted.clear();
        self.rescue = None;
    }

    /// `[s, e)` was retransmitted. The mark is always recorded (when the
    /// bound on ranges is reached, a neighbouring mark widens to cover it:
    /// the gap between them then counts as retransmitted, which is
    /// conservative, and an RTO or RACK's next loss mark resends it), so
    /// NextSeg() never picks the same bytes twice in an episode.
    pub(crate) fn mark_retransmitted(&mut self, s: SeqNumber, e: SeqNumber) {
        self.rexmitted.insert_covering(s, e);
    }

    /// RFC 6675 IsLost(seq): true when DupThresh discontiguous SACKed
    /// segments lie above `seq`, or more than (DupThresh − 1)·SMSS SACKed
    /// bytes. A SACKed range counts as ⌈len / smss⌉ segments.
    pub(crate) fn is_lost(&self, seq: SeqNumber, smss: usize) -> bool {
        if self.rack && self.lost.range_at(seq).is_some() {
            return true;
        }
        if self.rack && !self.dupthresh {
            return false;
        }
        self.dupthresh_lost(seq, smss)
    }

    fn dupthresh_lost(&self, seq: SeqNumber, smss: usize) -> bool {
        let smss = smss.max(1);
        let (mut bytes, mut segs) = (0usize, 0usize);
        for &(s, e) in self.sacked.ranges().iter().rev() {
            if e <= seq {
                break;
            }
            let n = (e - s.max(seq + 1)).max(0) as usize;
            bytes += n;
            segs += n.div_ceil(smss);
            if segs >= DUP_THRESH || bytes > (DUP_THRESH - 1) * smss {
                return true;
            }
        }
        false
    }

    /// The unSACKed holes in `[una, max)`, lowest first.
    fn holes(
        &self,
        una: SeqNumber,
        max: SeqNumber,
    ) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        let mut at = una;
        let mut i = 0;
        std::iter::from_fn(move || loop {
            if at >= max {
                return None;
            }
            match self.sacked.ranges().get(i) {
                Some(&(_, e)) if e <= at => i += 1,
                Some(&(s, e)) if s <= at => {
                    at = e;
                    i += 1;
                }
                Some(&(s, _)) => {
                    let hole = (at, s.min(max));
                    at = s;
                    return Some(hole);
                }
                None => {
                    let hole = (at, max);
                    at = max;
                    return Some(hole);
                }
            }
        })
    }

    /// RFC 6675 SetPipe: bytes in `[una, max)` neither SACKed nor lost,
    /// plus the retransmitted ones (counted again: both copies may be in
    /// the network). IsLost is constant across a hole (the SACKed bytes
    /// above it are the same), so this walks holes, not bytes.
    ///
    /// With RACK the lost marks are per segment, so a hole counts less
    /// the bytes marked lost in it.
    pub(crate) fn pipe(&self, una: SeqNumber, max: SeqNumber, smss: usize) -> usize {
        let mut pipe = 0;
        for (s, e) in self.holes(una, max) {
            if self.rack && !(self.dupthresh && self.dupthresh_lost(s, smss)) {
                pipe += ((e - s) as usize).saturating_sub(self.lost.bytes_within(s, e));
            } else if !self.rack && !self.is_lost(s, smss) {
                pipe += (e - s) as usize;
            }
            pipe += self.rexmitted.bytes_within(s, e);
        }
        pipe
    }

    /// RFC 6675 NextSeg() rules 1 and 3: the first unSACKed byte below the
    /// highest SACKed one that was not retransmitted in this episode, and
    /// (when `need_lost`, rule 1) that IsLost. Returns the segment start and
    /// its longest length (to the end of the hole, or of the
    /// un-retransmitted part of it), to be capped at SMSS by the caller.
    pub(crate) fn next_hole(
        &self,
        una: SeqNumber,
        smss: usize,
        need_lost: bool,
    ) -> Option<(SeqNumber, usize)> {
        if self.rack && need_lost {
            let a = self.next_lost(una);
            if !self.dupthresh {
                return a;
            }
            let b = self.next_hole_dupthresh(una, smss, need_lost);
            return match (a, b) {
                (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
                (x, y) => x.or(y),
            };
        }
        self.next_hole_dupthresh(una, smss, need_lost)
    }

    fn next_hole_dupthresh(
        &self,
        una: SeqNumber,
        smss: usize,
        need_lost: bool,
    ) -> Option<(SeqNumber, usize)> {
        let high = self.high_sacked()?;
        for (s, e) in self.holes(una, high) {
            let mut at = s;
            while at < e {
                match self.rexmitted.range_at(at) {
                    Some((_, re)) => at = re,
                    None => {
                        if need_lost && !self.dupthresh_lost(at, smss) {
                            return None; // nothing higher is lost either
                        }
                        let end = self
                            .rexmitted
                            .next_start_after(at)
                            .map_or(e, |rs| rs.min(e));
                        return Some((at, (end - at) as usize));
                    }
                }
            }
        }
        None
    }

    /// RACK's NextSeg() rule 1: the first byte marked lost and not
    /// retransmitted since, and the length to the end of that run.
    fn next_lost(&self, una: SeqNumber) -> Option<(SeqNumber, usize)> {
        for &(ls, le) in self.lost.ranges() {
            let mut at = ls.max(una);
            while at < le {
                match self.rexmitted.range_at(at) {
                    Some((_, re)) => at = re,
                    None => {
                        let end = self
                            .rexmitted
                            .next_start_after(at)
                            .map_or(le, |rs| rs.min(le));
                        return Some((at, (end - at) as usize));
                    }
                }
            }
        }
        None
    }

    /// The hole of the highest outstanding unSACKed byte below `max`, for
    /// the rescue retransmission (RFC 6675 NextSeg() rule 4): its start and
    /// length, capped by the caller.
    pub(crate) fn last_hole(
        &self,
        una: SeqNumber,
        max: SeqNumber,
    ) -> Option<(SeqNumber, SeqNumber)> {
        self.holes(una, max).last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    /// The running example: SMSS 1000, snd_una 1000, ten segments out
    /// (snd_max 11000); segment k is `[k*1000, k*1000 + 1000)`.
    fn board(sacked: &[(u32, u32)]) -> Scoreboard {
        let mut b = Scoreboard::default();
        b.update(sacked, s(1000), s(11000));
        b
    }

    #[test]
    fn insert_merges_and_reports_news() {
        let mut r = RangeSet::default();
        assert!(r.insert(s(3000), s(4000)));
        assert!(r.insert(s(5000), s(6000)));
        assert_eq!(r.ranges().len(), 2);
        // Adjacent on both sides: one range.
        assert!(r.insert(s(4000), s(5000)));
        assert_eq!(r.ranges(), &[(s(3000), s(6000))]);
        // Already covered: nothing new.
        assert!(!r.insert(s(3500), s(5500)));
        // Overlapping several, extending both ends.
        assert!(r.insert(s(8000), s(9000)));
        assert!(r.insert(s(2000), s(8500)));
        assert_eq!(r.ranges(), &[(s(2000), s(9000))]);
        assert!(!r.insert(s(10), s(10)), "empty");
    }

    #[test]
    fn insert_is_bounded() {
        let mut r = RangeSet::default();
        for i in 0..MAX_RANGES as u32 {
            assert!(r.insert(s(i * 10), s(i * 10 + 5)));
        }
        // Above everything: dropped.
        assert!(!r.insert(s(100_000), s(100_005)));
        assert_eq!(r.ranges().len(), MAX_RANGES);
        // Below the top: kept, the highest goes.
        let top = *r.ranges().last().unwrap();
        assert!(r.insert(s(7), s(8)));
        assert_eq!(r.ranges().len(), MAX_RANGES);
        assert!(!r.ranges().contains(&top));
        assert_eq!(r.ranges()[1], (s(7), s(8)));
    }

    #[test]
    fn insert_covering_never_forgets() {
        let mut r = RangeSet::default();
        for i in 0..MAX_RANGES as u32 {
            r.insert_covering(s(i * 10), s(i * 10 + 5));
        }
        let top = *r.ranges().last().unwrap();
        // Above everything: the highest range widens up to it.
        r.insert_covering(s(100_000), s(100_005));
        assert_eq!(r.ranges().len(), MAX_RANGES);
        assert_eq!(*r.ranges().last().unwrap(), (top.0, s(100_005)));
        // In a gap: the range below widens.
        r.insert_covering(s(7), s(8));
        assert_eq!(r.ranges().len(), MAX_RANGES);
        assert_eq!(r.ranges()[0], (s(0), s(8)));
        // Touching the next one: they merge.
        r.insert_covering(s(8), s(10));
        assert_eq!(r.ranges()[0], (s(0), s(15)));
        assert_eq!(r.ranges().len(), MAX_RANGES - 1);
        // Below everything: the lowest widens down.
        let mut r = RangeSet::default();
        for i in 1..=MAX_RANGES as u32 {
            r.insert_covering(s(i * 10), s(i * 10 + 5));
        }
        r.insert_covering(s(1), s(2));
        assert_eq!(r.ranges()[0], (s(1), s(15)));
    }

    #[test]
    fn update_ignores_blocks_outside_the_window_and_prune_trims() {
        let mut b = Scoreboard::default();
        let blocks = [
            (500, 900),       // D-SACK below snd_una
            (3000, 4000),     // fine
            (10_500, 12_000), // beyond snd_max
            (6000, 5000),     // inverted
        ];
        assert!(b.update(&blocks, s(1000), s(11000)));
        assert_eq!(b.sacked().ranges(), &[(s(3000), s(4000))]);
        assert!(!b.update(&[(3000, 4000)], s(1000), s(11000)));
        b.update(&[(6000, 8000)], s(1000), s(11000));
        b.mark_retransmitted(s(1000), s(2000));
        b.prune(s(3500));
        assert_eq!(
            b.sacked().ranges(),
            &[(s(3500), s(4000)), (s(6000), s(8000))]
        );
        assert_eq!(b.high_sacked(), Some(s(8000)));
        b.prune(s(8000));
        assert!(b.is_empty());
        assert_eq!(b.pipe(s(8000), s(11000), MSS), 3000);
    }

    /// RFC 6675 §4 IsLost with DupThresh 3.
    #[test]
    fn is_lost_counts_segments_and_bytes() {
        // Segments 3 and 5 SACKed: two segments, 2000 bytes above segment 1.
        let b = board(&[(3000, 4000), (5000, 6000)]);
        assert!(!b.is_lost(s(1000), MSS));
        // A third discontiguous SACKed segment (even a short one).
        let b = board(&[(3000, 4000), (5000, 6000), (7000, 7100)]);
        assert!(b.is_lost(s(1000), MSS));
        assert!(b.is_lost(s(2000), MSS), "hole at 2: three SACKs above");
        assert!(!b.is_lost(s(4000), MSS), "hole at 4: two SACKs above");
        assert!(!b.is_lost(s(6000), MSS), "hole at 6: one SACK above");
        // Bytes: more than (DupThresh - 1) * SMSS in one range.
        let b = board(&[(3000, 5000)]);
        assert!(!b.is_lost(s(1000), MSS), "exactly 2 SMSS");
        let b = board(&[(3000, 5001)]);
        assert!(b.is_lost(s(1000), MSS));
    }

    /// RFC 6675 SetPipe, by hand: segments 4-6 SACKed of ten outstanding.
    #[test]
    fn pipe_leaves_out_sacked_and_lost_counts_retransmissions() {
        let mut b = board(&[(4000, 7000)]);
        // Holes: [1000, 4000) with 3 SACKed segments above: lost, 0;
        // [7000, 11000) with nothing SACKed above: 4000 in the pipe.
        assert_eq!(b.pipe(s(1000), s(11000), MSS), 4000);
        // Segment 1 retransmitted: it is in the network again.
        b.mark_retransmitted(s(1000), s(2000));
        assert_eq!(b.pipe(s(1000), s(11000), MSS), 5000);
        // Segments 8 and 9 SACKed too: [7000, 8000) now has two SACKed
        // segments above (2000 bytes): not lost.
        b.update(&[(8000, 10000)], s(1000), s(11000));
        assert_eq!(b.pipe(s(1000), s(11000), MSS), 1000 + 1000 + 1000);
        // RTO: marks go, SACK information stays.
        b.clear_retransmitted();
        assert_eq!(b.pipe(s(1000), s(11000), MSS), 2000);
        assert_eq!(b.high_sacked(), Some(s(10000)));
    }

    #[test]
    fn next_hole_skips_retransmitted_and_needs_loss_for_rule_1() {
        let mut b = board(&[(4000, 5000), (6000, 7000), (8000, 9000)]);
        // Hole 1-3 is lost (three SACKed segments above).
        assert_eq!(b.next_hole(s(1000), MSS, true), Some((s(1000), 3000)));
        b.mark_retransmitted(s(1000), s(2000));
        assert_eq!(b.next_hole(s(1000), MSS, true), Some((s(2000), 2000)));
        b.mark_retransmitted(s(2000), s(4000));
        // Hole 5 has only two SACKed segments above: not lost (rule 1)...
        assert_eq!(b.next_hole(s(1000), MSS, true), None);
        // ...but rule 3 takes it.
        assert_eq!(b.next_hole(s(1000), MSS, false), Some((s(5000), 1000)));
        b.mark_retransmitted(s(5000), s(6000));
        assert_eq!(b.next_hole(s(1000), MSS, false), Some((s(7000), 1000)));
        // Nothing above the highest SACK is a hole for rules 1 and 3; the
        // rescue takes the last one.
        b.mark_retransmitted(s(7000), s(8000));
        assert_eq!(b.next_hole(s(1000), MSS, false), None);
        assert_eq!(b.last_hole(s(1000), s(11000)), Some((s(9000), s(11000))));
    }

    #[test]
    fn works_across_the_wrap() {
        let una = SeqNumber(u32::MAX - 1500);
        let max = una + 10_000;
        let mut b = Scoreboard::default();
        b.update(&[((una + 2000).0, (una + 5000).0)], una, max);
        assert!(b.is_lost(una, MSS));
        assert_eq!(b.pipe(una, max, MSS), 5000);
        assert_eq!(b.next_hole(una, MSS, true), Some((una, 2000)));
        b.prune(una + 3000);
        assert_eq!(b.sacked().ranges(), &[(una + 3000, una + 5000)]);
    }
}

#[cfg(test)]
mod search_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The binary searches agree with a linear scan, across the
        /// sequence-number wrap too.
        #[test]
        fn range_searches_match_a_linear_scan(
            base in any::<u32>(),
            ops in proptest::collection::vec((0u32..20_000, 1u32..2_000, any::<bool>()), 0..40),
            probes in proptest::collection::vec((0u32..24_000, 0u32..5_000), 1..40),
        ) {
            let at = |o: u32| SeqNumber(base.wrapping_add(o));
            let mut set = RangeSet::default();
            for (s, len, add) in ops {
                if add {
                    set.insert(at(s), at(s + len));
                } else {
                    set.remove(at(s), at(s + len));
                }
            }
            for (p, len) in probes {
                let (s, e) = (at(p), at(p + len));
                let lin_at = set.ranges().iter().copied().find(|&(a, b)| s.in_range(a, b));
                prop_assert_eq!(set.range_at(s), lin_at);
                let lin_bytes: usize = set
                    .ranges()
                    .iter()
                    .map(|&(a, b)| (b.min(e) - a.max(s)).max(0) as usize)
                    .sum();
                prop_assert_eq!(set.bytes_within(s, e), lin_bytes);
                let lin_next = set.ranges().iter().map(|&(a, _)| a).find(|&a| a > s);
                prop_assert_eq!(set.next_start_after(s), lin_next);
            }
        }
    }
}
