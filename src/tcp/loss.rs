//! The connection's side of loss recovery (the state and the arithmetic
//! are in [`super::recovery`]): fast recovery with NewReno (RFC 6582)
//! or, with SACK, RFC 6675 and Proportional Rate Reduction (RFC 6937);
//! RACK-TLP's book-keeping (RFC 8985); undo of spurious reductions
//! (D-SACK, RFC 2883/3708).

use super::cc::AckEvent;
use super::recovery::rack::pto;
use super::recovery::{DupAck, Hole, Rexmit, Undo};
use super::seq::SeqNumber;
use super::tcb::Tcb;
use super::timer::Timer;
use crate::time::{Duration, Instant};

impl Tcb {
    /// In RFC 6675 loss recovery (SACK agreed and fast recovery running).
    pub(crate) fn sack_recovery(&self) -> bool {
        self.rec.sack_recovery()
    }

    /// The congestion window used during SACK recovery.
    ///
    /// Design: the congestion controllers implement RFC 5681/6582 and set
    /// `cwnd = ssthresh + 3·SMSS` on entering recovery (window inflation),
    /// then inflate per duplicate ACK. In SACK recovery the connection does
    /// not call `on_recovery_dup_ack` / `on_partial_ack`: RFC 6675 counts
    /// what is in the network with `pipe` instead, so inflation is not
    /// needed. The controller only chooses `ssthresh` (on entry) and the
    /// window after recovery (`on_exit_recovery`); in between the
    /// connection sends under Proportional Rate Reduction (RFC 6937,
    /// [`super::prr`]): `pipe + sndcnt` as of the last ACK. Without PRR
    /// state (it is set up on entry) it falls back to RFC 6675's
    /// `min(cwnd, ssthresh)`.
    pub(crate) fn recovery_cwnd(&self) -> usize {
        if self.cc.model_based() {
            return self.cc.cwnd();
        }
        match &self.rec.prr {
            Some(p) => p.cwnd(),
            None => self.cc.cwnd().min(self.cc.ssthresh()),
        }
    }

    /// RFC 6675 `pipe` over the connection's scoreboard.
    pub(crate) fn pipe(&self) -> usize {
        self.rec
            .sack
            .pipe(self.snd_una, self.snd_max, self.data_mss())
    }

    /// The flight the congestion window is compared with: `pipe` in SACK
    /// recovery; otherwise the bytes from snd_una to snd_nxt less those the
    /// peer SACKed (after an RTO, go-back-N skips them).
    pub(crate) fn cwnd_flight(&self) -> usize {
        if self.sack_recovery() {
            return self.pipe();
        }
        let f = self.bytes_in_flight();
        if !self.rec.sack.is_empty() {
            f.saturating_sub(
                self.rec
                    .sack
                    .sacked()
                    .bytes_within(self.snd_una, self.snd_nxt),
            )
        } else {
            f
        }
    }

    /// The window new data is sent under (before the peer's window).
    pub(crate) fn send_cwnd(&self) -> usize {
        if self.sack_recovery() {
            self.recovery_cwnd()
        } else {
            self.cc.cwnd()
        }
    }

    /// `seq` moved past any SACKed range it falls in (go-back-N after an
    /// RTO does not resend SACKed bytes). Without SACK the scoreboard is
    /// empty: `seq` itself.
    pub(crate) fn sack_skip(&self, seq: SeqNumber) -> SeqNumber {
        if seq >= self.snd_max {
            return seq;
        }
        match self.rec.sack.sacked().range_at(seq) {
            Some((_, e)) => e.min(self.snd_max),
            None => seq,
        }
    }

    /// Bytes from `seq` (not SACKed) to the next SACKed range, when below
    /// snd_max; `usize::MAX` when nothing SACKed lies above (always
    /// without SACK: the scoreboard is empty).
    pub(crate) fn sack_room(&self, seq: SeqNumber) -> usize {
        if seq >= self.snd_max {
            return usize::MAX;
        }
        self.rec
            .sack
            .sacked()
            .ranges()
            .iter()
            .find(|&&(s, _)| s > seq)
            .map_or(usize::MAX, |&(s, _)| (s - seq) as usize)
    }

    /// What an ACK up to `ack` (TSecr `ecr`) reports delivered: its
    /// D-SACK (returned; undo and RACK's reordering window take it), its
    /// other SACK blocks (the scoreboard, when SACK is in use) and the
    /// cumulative ACK. The transmit records they deliver feed the rate
    /// sampler and RACK, and an RTT sample is taken when the timed segment
    /// arrived by SACK.
    pub(crate) fn sack_on_ack(
        &mut self,
        now: Instant,
        blocks: &[(u32, u32)],
        ack: SeqNumber,
        ecr: Option<u32>,
    ) -> Option<(SeqNumber, SeqNumber)> {
        let blocks = if self.sack_ok { blocks } else { &[] };
        let dsack = self.find_dsack(blocks, ack);
        if let Some((l, r)) = dsack {
            self.info.dsacks_received += 1;
            self.undo_on_dsack(l, r);
            if self.rack_on() {
                self.rec.rack.on_dsack(self.snd_nxt);
            }
        }
        self.take_delivered(
            now,
            &blocks[(dsack.is_some() as usize).min(blocks.len())..],
            ack,
            ecr,
        );
        // The timed segment arrived, by SACK: its RTT is now. Waiting for
        // the cumulative ACK would time the repair of the holes below it
        // too (hundreds of ms in a long recovery), and an inflated SRTT
        // widens RACK's reordering window and the RTO.
        if let Some((p, t)) = self.rtt_probe {
            if ack <= p && self.rec.sack.sacked().range_at(p).is_some() {
                self.rtt.sample(now - t);
                self.rtt_probe = None;
            }
        }
        dsack
    }

    /// Loss detection after an ACK up to `ack` was taken in (with D-SACK
    /// `dsack`; a plain duplicate when `plain_dup`): RACK and the TLP's
    /// check, RFC 6675's IsLost at snd_una, and PRR's share of what the
    /// ACK delivered (from snd_una and the SACKed bytes before it).
    pub(crate) fn detect_loss_on_ack(
        &mut self,
        now: Instant,
        ack: SeqNumber,
        dsack: Option<(SeqNumber, SeqNumber)>,
        plain_dup: bool,
        una_before: SeqNumber,
        sacked_before: usize,
    ) {
        self.rec.sack.dupthresh = self.rack_on() && !self.rec.rack.reordering_seen;
        if self.rack_on() {
            self.rack_detect_loss(now);
            self.tlp_on_ack(now, ack, dsack, plain_dup);
        }
        self.sack_check_loss(now);
        if self.sack_recovery() {
            // RFC 6937: DeliveredData = Δsnd_una + ΔSACKed.
            let delivered = ((self.snd_una - una_before).max(0) as i64 + self.sacked_bytes() as i64
                - sacked_before as i64)
                .max(0) as usize;
            let pipe = self.pipe();
            if let Some(p) = self.rec.prr.as_mut() {
                p.on_ack(delivered, pipe);
            }
        }
    }

    /// Recovery's and the congestion controller's share of an ACK of new
    /// data (`acked` bytes up to `ack`, with an RTT sample when taken):
    /// the end of a recovery episode, a partial ACK (NewReno), or an
    /// ordinary ACK.
    pub(crate) fn recovery_on_new_ack(
        &mut self,
        now: Instant,
        ack: SeqNumber,
        acked: usize,
        rtt: Option<Duration>,
    ) {
        let in_flight = self.bytes_in_flight();
        match self.rec.recover {
            Some(rec) if ack >= rec => {
                self.cc.on_exit_recovery(now, in_flight);
                self.rec.recover = None;
                self.rec.dup_acks = 0;
                self.rec.sack.clear_retransmitted();
                self.rec.prr = None;
                self.rec.rack.on_exit_recovery();
            }
            Some(_) => {
                if self.rec.on_partial_ack() {
                    self.cc.on_partial_ack(now, acked);
                }
            }
            None => {
                self.rec.dup_acks = 0;
                let ev = AckEvent {
                    bytes_acked: acked,
                    rtt,
                    in_flight,
                    delivered: self.info.bytes_acked,
                    app_limited: self.send_buf.len() <= in_flight,
                    rate: self.rate.this_ack(),
                };
                self.cc.on_ack(now, &ev);
            }
        }
    }

    /// A duplicate ACK (RFC 5681): the strategy decides between window
    /// inflation (NewReno recovery), a fast retransmit, or nothing.
    pub(crate) fn dup_ack(&mut self, now: Instant) {
        match self.rec.on_dup_ack(self.snd_una) {
            DupAck::Inflate => self.cc.on_recovery_dup_ack(now),
            DupAck::EnterRecovery => self.enter_recovery(now),
            DupAck::Nothing => {}
        }
    }

    /// RFC 2883 §4: the first SACK block is a D-SACK when it lies below
    /// the cumulative ACK, or inside the second block. Returns it, when
    /// it is plausible (within the window below snd_max).
    pub(crate) fn find_dsack(
        &self,
        blocks: &[(u32, u32)],
        ack: SeqNumber,
    ) -> Option<(SeqNumber, SeqNumber)> {
        let &(l, r) = blocks.first()?;
        let (l, r) = (SeqNumber(l), SeqNumber(r));
        let floor = self.snd_una - self.max_snd_wnd.max(65535);
        if l >= r || r > self.snd_max || l < floor {
            return None;
        }
        let below = l < ack;
        let inside = blocks
            .get(1)
            .is_some_and(|&(l1, r1)| l >= SeqNumber(l1) && r <= SeqNumber(r1));
        (below || inside).then_some((l, r))
    }

    /// SACKed bytes above snd_una.
    pub(crate) fn sacked_bytes(&self) -> usize {
        self.rec
            .sack
            .sacked()
            .bytes_within(self.snd_una, self.snd_max)
    }

    /// Enters fast recovery (RFC 6582 §3.2 step 2 / RFC 6675 §5 step 4).
    pub(crate) fn enter_recovery(&mut self, now: Instant) {
        let in_flight = self.reduction_flight();
        self.rec.recover = Some(self.snd_max);
        self.rec.last_recover = Some(self.snd_max);
        self.undo_start();
        self.cc.on_enter_recovery(now, in_flight);
        self.rec.retransmit_one = true;
        self.info.fast_retransmits += 1;
        let ssthresh = self.cc.ssthresh();
        self.rec.begin_episode(
            in_flight,
            ssthresh,
            self.snd_una,
            self.snd_max,
            self.data_mss(),
        );
        self.timers.stop(Timer::Tlp);
        tracing::debug!(
            target: "ustack::tcp::recovery",
            local = %self.local,
            remote = %self.remote,
            in_flight,
            cwnd = self.cc.cwnd(),
            ssthresh = self.cc.ssthresh(),
            "tcp fast retransmit: entering recovery"
        );
    }

    /// Whether a new SACK recovery may begin: RFC 6675 §5.1 lets it once
    /// HighACK ≥ RecoveryPoint, i.e. snd_una ≥ the previous recovery
    /// point (`last_recover` is one past HighData), one octet earlier than
    /// RFC 6582's `ack > recover`: the scoreboard, not duplicate ACKs of a
    /// retransmission, tells that the segment at the old recovery point is
    /// lost (typically new data sent during the previous recovery).
    pub(crate) fn sack_fresh(&self) -> bool {
        self.rec.sack_fresh(self.snd_una)
    }

    /// RFC 6675 §5 step 4 by IsLost(HighACK + 1), checked on every ACK: the
    /// scoreboard alone may show the first hole is lost before three
    /// duplicate ACKs arrived (stretch ACKs, ACK loss).
    pub(crate) fn sack_check_loss(&mut self, now: Instant) {
        if !self.rec.scoreboard_decides_loss()
            || self.rec.recover.is_some()
            || self.snd_nxt != self.snd_max
            || self.snd_una >= self.snd_max
        {
            return;
        }
        if self.sack_fresh() && self.rec.sack.is_lost(self.snd_una, self.data_mss()) {
            self.enter_recovery(now);
        }
    }

    /// A segment retransmitting the hole `[seq, seq + max)`: the data in it
    /// up to one segment, and the FIN when it is inside.
    pub(crate) fn rexmit_at(&self, seq: SeqNumber, max: usize) -> Option<Rexmit> {
        let off = (seq - self.snd_una).max(0) as usize;
        let data = self.send_buf.len().saturating_sub(off);
        let len = max.min(data).min(self.payload_room());
        let fin = self.fin_seq == Some(seq + len) && len < max;
        (len > 0 || fin).then_some(Rexmit {
            seq,
            len,
            fin,
            rescue: false,
        })
    }

    /// The segment retransmitting `hole` (see [`Self::rexmit_at`]).
    fn rexmit_hole(&self, hole: Hole) -> Option<Rexmit> {
        let mut r = self.rexmit_at(hole.seq, hole.max)?;
        r.rescue = hole.rescue;
        Some(r)
    }

    /// RFC 6675 §5 step 4.3: the first hole, at snd_una (with RACK, the
    /// first segment it marked lost, if any).
    pub(crate) fn sack_first_rexmit(&self) -> Option<Rexmit> {
        let lost = self.rec.first_lost_hole(self.snd_una, self.data_mss());
        if let Some(r) = lost.and_then(|h| self.rexmit_hole(h)) {
            return Some(r);
        }
        let room = self.sack_room(self.snd_una);
        let max = room.min((self.snd_max - self.snd_una).max(0) as usize);
        self.rexmit_at(self.snd_una, max)
    }

    /// NextSeg() rule 1 ([`super::recovery::Recovery::lost_hole`]).
    pub(crate) fn sack_lost_rexmit(&self) -> Option<Rexmit> {
        self.rexmit_hole(self.rec.lost_hole(self.snd_una, self.data_mss())?)
    }

    /// NextSeg() rules 3 and 4 ([`super::recovery::Recovery::other_hole`]).
    pub(crate) fn sack_other_rexmit(&self) -> Option<Rexmit> {
        let hole = self
            .rec
            .other_hole(self.snd_una, self.snd_max, self.data_mss())?;
        self.rexmit_hole(hole)
    }

    /// Book-keeping once a SACK-recovery retransmission went out.
    pub(crate) fn sack_rexmit_sent(&mut self, r: Rexmit) {
        let end = r.seq + r.len + r.fin as usize;
        if r.rescue {
            self.rec.sack.rescue = self.rec.recover;
        } else {
            self.rec.sack.mark_retransmitted(r.seq, end);
        }
        if self.rtt_probe.is_some_and(|(p, _)| p.in_range(r.seq, end)) {
            self.rtt_probe = None; // Karn
        }
        self.info.retransmits += 1;
    }

    /// A window reduction (recovery, or the first RTO of a series)
    /// begins: count its retransmissions for a possible undo.
    pub(crate) fn undo_start(&mut self) {
        self.rec.undo = self.sack_ok.then_some(Undo {
            marker: self.snd_una,
            retrans: 0,
            any: false,
        });
    }

    /// `bytes` were retransmitted.
    pub(crate) fn undo_on_rexmit(&mut self, bytes: usize) {
        let mss = self.data_mss();
        if let Some(u) = self.rec.undo.as_mut() {
            u.retrans = u.retrans.saturating_add(bytes.max(1).div_ceil(mss) as u32);
            u.any = true;
        }
    }

    /// A D-SACK reported `[l, r)` received twice.
    pub(crate) fn undo_on_dsack(&mut self, l: SeqNumber, r: SeqNumber) {
        let mss = self.data_mss();
        if let Some(u) = self.rec.undo.as_mut() {
            if l >= u.marker {
                let n = ((r - l).max(1) as usize).div_ceil(mss) as u32;
                u.retrans = u.retrans.saturating_sub(n);
            }
        }
    }

    /// Outside recovery, once every retransmission of the last reduction
    /// was D-SACKed, the controller restores its window.
    pub(crate) fn undo_check(&mut self, now: Instant) {
        if self.rec.recover.is_some() || !self.rec.undo.is_some_and(|u| u.any && u.retrans == 0) {
            return;
        }
        self.rec.undo = None;
        if self.cc.undo(now) {
            self.info.undos += 1;
        }
    }

    /// True when SACK recovery has a retransmission due under the window.
    pub(crate) fn sack_wants_send(&self) -> bool {
        self.sack_recovery()
            && self.recovery_cwnd() >= self.pipe() + self.data_mss()
            && self.sack_lost_rexmit().is_some()
    }
}

impl Tcb {
    /// RACK-TLP in use: SACK agreed and RACK enabled.
    pub(crate) fn rack_on(&self) -> bool {
        self.rec.strategy.rack()
    }

    /// Book-keeping for a data segment `[seq, end)` that just went out:
    /// the part below snd_max is a retransmission, the rest is new.
    /// The records are kept with or without RACK: delivery-rate sampling
    /// (`Tcb::rate`) reads their stamps.
    pub(crate) fn rack_sent(&mut self, seq: SeqNumber, end: SeqNumber, now: Instant) {
        let mid = end.min(self.snd_max).max(seq);
        let stamp = self
            .rate
            .on_send(now, self.snd_una == self.snd_max, seq < mid);
        if seq < mid {
            self.rec.segs.retransmitted(seq, mid, now, stamp);
        }
        if mid < end {
            let sacked = self.rec.sack.sacked();
            self.rec
                .segs
                .sent_new(mid, end, now, stamp, |s, e| sacked.covers(s, e));
        }
    }

    /// The SACK `blocks` (without a D-SACK) and the cumulative ACK up to
    /// `ack` go to the scoreboard and the transmit records; what they
    /// newly deliver updates the rate sampler and, with RACK, RACK's
    /// state.
    fn take_delivered(
        &mut self,
        now: Instant,
        blocks: &[(u32, u32)],
        ack: SeqNumber,
        ecr: Option<u32>,
    ) {
        // Without RACK the records still feed the rate sampler.
        let rack_on = self.rack_on();
        let rate = &mut self.rate;
        let ts = match (self.ts, ecr) {
            (Some(t), Some(e)) => Some((e, t.offset)),
            _ => None,
        };
        let una = self.snd_una.max(ack);
        let mut delivered = false;
        self.rec
            .on_ack(blocks, una, self.snd_max, |rack, s, sacked| {
                rate.on_delivered(&s.stamp, (s.end - s.start).max(0) as u64, now);
                if rack_on {
                    // No timestamp check for SACKed segments: the echo of an
                    // ACK for out-of-order data is of the last in-order
                    // segment (RFC 7323 §4.3), older than any retransmission
                    // (Linux checks only against min_RTT too).
                    rack.on_delivered(s, sacked, now, if sacked { None } else { ts });
                }
                delivered = true;
            });
        if !rack_on {
            return;
        }
        self.rec.rack.on_ack(una);
        if delivered {
            self.rec.tlp.rtt_since_probe = true;
        }
    }

    /// RFC 8985 §6.2 `RACK_detect_loss` over the records; marks what it
    /// finds lost on the scoreboard, arms the reordering timer, and starts
    /// recovery when something is lost (Linux: `tcp_rack_mark_lost` then
    /// `tcp_enter_recovery`). Returns the segments newly marked lost.
    pub(crate) fn rack_detect_loss(&mut self, now: Instant) -> usize {
        if !self.rack_on() {
            return 0;
        }
        let srtt = self.rtt.srtt().unwrap_or(self.rec.rack.rtt);
        let in_recovery = self.rec.recover.is_some() || self.retries > 0;
        let reo = self
            .rec
            .rack
            .reo_wnd(in_recovery, self.rec.segs_sacked(), srtt);
        let mut lost = Vec::new();
        let timeout = self.rec.rack.detect_loss(
            &mut self.rec.segs,
            self.rec.sack.sacked(),
            reo,
            now,
            |s, e| lost.push((s, e)),
        );
        let n = lost.len();
        for (s, e) in lost {
            self.rec.sack.mark_lost(s, e);
        }
        match timeout {
            Some(t) => self.timers.set(Timer::ReoWnd, now + t),
            None => self.timers.stop(Timer::ReoWnd),
        }
        if n > 0 {
            self.info.lost_total += n as u64;
            self.timers.stop(Timer::Tlp);
            if self.rec.recover.is_none()
                && self.snd_nxt == self.snd_max
                && self.snd_una < self.snd_max
                && self.sack_fresh()
            {
                self.enter_recovery(now);
            }
        }
        n
    }

    /// The reordering timer fired (RFC 8985 §6.3): check again.
    pub(crate) fn rack_timeout(&mut self, now: Instant) {
        self.timers.stop(Timer::ReoWnd);
        self.rack_detect_loss(now);
    }

    /// Arms (or disarms) the PTO after new data went out or an ACK
    /// advanced snd_una (RFC 8985 §7.2): only in the open state, with data
    /// in flight, nothing SACKed, no reordering timer and no probe out.
    pub(crate) fn arm_pto(&mut self, now: Instant) {
        self.timers.stop(Timer::Tlp);
        if !self.rack_on()
            || !self.config.tlp
            || self.rec.recover.is_some()
            || self.retries > 0
            || self.snd_nxt != self.snd_max
            || self.snd_una == self.snd_max
            || self.rec.segs_sacked() > 0
            || self.timers.is_set(Timer::ReoWnd)
            || self.rec.tlp.end_seq.is_some()
        {
            return;
        }
        let rto_left = self
            .timers
            .get(Timer::Rto)
            .map_or(self.rtt.rto(), |t| t.saturating_duration_since(now));
        let one = self.bytes_in_flight() <= self.data_mss();
        let granularity = self.rtt.config().granularity;
        let p = pto(
            self.rtt.srtt(),
            one,
            self.config.max_ack_delay,
            rto_left,
            granularity * 2,
        );
        self.timers.set(Timer::Tlp, now + p);
    }

    /// RFC 8985 §7.4 `TLP_process_ack`, for an ACK up to `ack` that
    /// carried D-SACK `dsack` (if any) and was a pure duplicate without
    /// SACK blocks when `plain_dup`. When the probe turns out to have
    /// repaired a loss, the congestion controller reduces the window as
    /// for a recovery that is already over (Linux: CWR).
    pub(crate) fn tlp_on_ack(
        &mut self,
        now: Instant,
        ack: SeqNumber,
        dsack: Option<(SeqNumber, SeqNumber)>,
        plain_dup: bool,
    ) {
        let Some(end) = self.rec.tlp.end_seq else {
            return;
        };
        if ack < end {
            return;
        }
        if !self.rec.tlp.is_retrans || dsack.is_some_and(|(_, r)| r == end) {
            self.rec.tlp.end_seq = None;
        } else if ack > end {
            self.rec.tlp.end_seq = None;
            let flight = self.reduction_flight();
            self.cc.on_enter_recovery(now, flight);
            let ssthresh = self.cc.ssthresh();
            self.cc.on_exit_recovery(now, ssthresh);
            self.info.tlp_loss_repaired += 1;
        } else if plain_dup {
            // Linux (tcp_process_tlp_ack): a plain duplicate ACK means the
            // original and the probe both arrived; no loss.
            self.rec.tlp.end_seq = None;
        }
    }
}
