//! Segment generation and timers: what the connection sends at `now`
//! (SYN, data under the peer's and the congestion window with Nagle and
//! sender SWS avoidance, FIN, ACKs, probes, retransmissions) and when it
//! next needs to run.

use std::io;
use std::ops::ControlFlow;

use super::recovery::rack::Tlp;
use super::recovery::Rexmit;
use super::seq::SeqNumber;
use super::tcb::{State, Tcb};
use super::timer::{Fired, Timer};
use crate::time::{Duration, Instant};
use crate::wire::tcp::{self, Flags};

/// How far behind its schedule the pacer may catch up in one burst (Linux
/// lets a paced flow send about a millisecond of data at once, too).
const PACE_CREDIT: Duration = Duration::from_millis(1);

/// A segment the connection wants sent. The payload is up to two slices of
/// the send buffer (it is a ring), copied once by the interface straight
/// into the outgoing frame.
#[derive(Debug)]
pub struct OutSegment<'a> {
    /// Header and options; `repr.payload` is empty.
    pub repr: tcp::Repr<'static>,
    /// The payload, in two parts.
    pub payload: (&'a [u8], &'a [u8]),
    /// A super-segment for a device with TSO: cut it into segments of this
    /// many payload bytes (each then fits the path). 0: an ordinary segment.
    pub gso_size: u16,
}

/// What the sender may do next with new data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Send `len` bytes at snd_nxt, and the FIN after them when `fin`.
    Send { len: usize, fin: bool },
    /// Data waits for the window; arm the persist timer when nothing is in
    /// flight to bring an ACK.
    WindowBlocked,
    /// Nothing to send (or Nagle holds a small piece until an ACK).
    Idle,
}

impl Tcb {
    fn next_data(&self) -> Next {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        ) {
            return Next::Idle;
        }
        let nxt = self.sack_skip(self.snd_nxt);
        let off = (nxt - self.snd_una).max(0) as usize;
        let buffered = self.send_buf.len();
        if off > buffered {
            return Next::Idle; // only the FIN is in flight
        }
        let unsent = buffered - off;
        let in_flight = self.bytes_in_flight();
        // The peer's window limits the sequence space beyond snd_una; the
        // congestion window limits the flight (RFC 6675 `pipe` in SACK
        // recovery, SACKed bytes left out otherwise).
        let usable = (self
            .snd_wnd
            .saturating_sub((nxt - self.snd_una).max(0) as usize))
        .min(self.send_cwnd().saturating_sub(self.cwnd_flight()));
        let mss = self.payload_room();
        let len = unsent
            .min(usable)
            .min(self.super_segment_max(mss))
            .min(self.sack_room(nxt));
        let fin = self.fin_queued && off + len == buffered && self.fin_unsent_at(off + len);
        if len == 0 {
            if fin {
                return Next::Send { len: 0, fin: true };
            }
            return if unsent > 0 {
                Next::WindowBlocked
            } else {
                Next::Idle
            };
        }
        if len < mss && !fin {
            if len < unsent {
                // Window-limited: sender SWS avoidance (RFC 9293 §3.8.6.2.1).
                if len < self.max_snd_wnd / 2 {
                    return Next::WindowBlocked;
                }
            } else if !self.config.nodelay && in_flight > 0 {
                // Nagle: one small segment in flight at a time.
                return Next::Idle;
            }
        }
        Next::Send { len, fin }
    }

    /// The sequence number of a segment without data (ACK, RST): the highest
    /// sent, not snd_nxt, which an RTO rewinds — an ACK numbered below what
    /// the peer already received is unacceptable to it and would be dropped
    /// with its acknowledgement (Linux: `tcp_acceptable_seq`).
    fn ack_seq(&self) -> SeqNumber {
        self.snd_max.max(self.snd_nxt)
    }

    /// SACK blocks an ACK-bearing segment carries now (RFC 2018 §4: as many
    /// as fit beside the timestamp option).
    /// A pending D-SACK block (RFC 2883) comes first and counts.
    fn sack_blocks_to_send(&self) -> usize {
        if !self.sack_ok || !(self.recv_buf.has_out_of_order() || self.dsack_pending.is_some()) {
            return 0;
        }
        let fit = if self.ts.is_some() { 3 } else { 4 };
        let d = self.dsack_pending.is_some() as usize;
        (d + self.recv_buf.out_of_order_ranges().count()).min(fit)
    }

    /// Payload bytes the next data segment may carry: SMSS less the options
    /// it will carry (timestamps always when agreed, SACK blocks while
    /// out-of-order data is held), so the segment never exceeds the MTU.
    pub(crate) fn payload_room(&self) -> usize {
        let n = self.sack_blocks_to_send();
        let sack = if n > 0 { 4 + 8 * n } else { 0 };
        self.data_mss().saturating_sub(sack).max(1)
    }

    /// The most payload one segment of new data may carry: one `mss`, or
    /// with segmentation offload a whole number of them up to the device's
    /// limit — and, when the flow is paced, no more than about a
    /// millisecond of its rate (Linux's TSO autosizing), so a super-segment
    /// does not undo the pacing.
    fn super_segment_max(&self, mss: usize) -> usize {
        let max = self.config.segment_offload;
        if max <= mss {
            return mss;
        }
        let mut segs = max / mss;
        if let Some(rate) = self.pacing_rate() {
            let per_ms = (rate / 1000) as usize;
            segs = segs.min((per_ms / mss).max(2));
        }
        segs * mss
    }

    /// True when a FIN placed after data offset `end` has not been sent yet
    /// (or must be sent again after an RTO rewound snd_nxt).
    fn fin_unsent_at(&self, end: usize) -> bool {
        let fin_at = self.snd_una + end;
        match self.fin_seq {
            None => true,
            Some(f) => f == fin_at && self.snd_nxt <= f,
        }
    }

    /// When [`Tcb::poll_transmit`] next has work: now, or a timer.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        // A closed connection sends nothing but a pending RST; left-over
        // recovery state must not ask for a transmission that
        // `poll_transmit` will never make (found by pcap replay: after an
        // RST during SACK recovery the deadline stayed at "now" for good).
        if self.state == State::Closed {
            return self.rst_pending.then_some(Instant::ZERO);
        }
        let immediate = self.rst_pending
            || self.ack_now
            || self.rec.retransmit_one
            || self.rec.tlp.due
            || (matches!(self.state, State::SynSent | State::SynReceived)
                && self.snd_nxt == self.iss);
        if immediate {
            return Some(Instant::ZERO);
        }
        // Data waiting: now, or when pacing lets the next segment go.
        // (SACK recovery's sends, retransmissions or new data, count as
        // data: new data the pacer holds back must not look sendable now.)
        let data = matches!(self.next_data(), Next::Send { .. }) || self.sack_wants_send();
        if data && self.pace_gate().is_none() {
            return Some(Instant::ZERO);
        }
        [
            data.then(|| self.pace_gate()).flatten(),
            self.timers.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers due at `now`. The interface calls it before it lets
    /// the connection transmit; the probes a timer asks for (persist,
    /// keep-alive, tail loss) go out in the next [`Tcb::poll_transmit`].
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.timers.is_expired(Timer::TimeWait, now)
            || self.timers.is_expired(Timer::FinWait2, now)
        {
            self.enter_closed();
            return;
        }
        // The PTO is never later than the RTO; when both are due the probe
        // goes first and re-arms the RTO (Linux: one timer, the probe's
        // replacing the RTO's). If no probe can be sent, the RTO fires
        // below.
        if self.timers.take_expired(Timer::Tlp, now) {
            self.rec.tlp.due = true;
        } else if self.timers.is_expired(Timer::Rto, now) {
            self.on_rto(now);
            if self.state == State::Closed {
                return;
            }
        }
        if self.timers.is_expired(Timer::ReoWnd, now) {
            self.rack_timeout(now);
        }
        if self.timers.take_expired(Timer::DelAck, now) {
            self.ack_now = true;
            // The application did not answer within the delayed-ACK time:
            // not an exchange of requests and answers after all.
            self.pingpong = false;
        }
        if self.timers.take_expired(Timer::Persist, now) {
            self.fired.persist = true;
        }
        if self.timers.is_expired(Timer::Keepalive, now) {
            let k = self.config.keepalive.unwrap_or_default();
            if self.keepalive_probes >= k.count {
                self.fail(io::ErrorKind::TimedOut);
                return;
            }
            self.keepalive_probes += 1;
            self.timers.set(Timer::Keepalive, now + k.interval);
            self.fired.keepalive = true;
        }
        // A tail loss probe is due but none can go: an RTO that fell due
        // meanwhile fires now, not on the next round (a deadline left in
        // the past is a runtime that spins; found by the live_stack fuzz
        // target).
        if self.rec.tlp.due && self.probes_may_go() && self.tlp_probe().is_none() {
            self.rec.tlp.due = false;
            if self.timers.is_expired(Timer::Rto, now) {
                self.on_rto(now);
            }
        }
    }

    fn persist_interval(&self) -> crate::time::Duration {
        let backoff = self.persist_backoff.min(10);
        (self.rtt.rto() * (1 << backoff)).min(self.config.rtt.max_rto)
    }

    /// When a retransmission timer armed `now` fires: one RTO on, but not
    /// after the user timeout expires, so that the connection fails then
    /// and not at the next backed-off expiry (Linux clamps the same way).
    pub(crate) fn rto_deadline(&self, now: Instant) -> Instant {
        let at = now + self.rtt.rto();
        match self.config.user_timeout {
            Some(ut) => {
                let since = self.unacked_since.unwrap_or(now);
                at.min((since + ut).max(now))
            }
            None => at,
        }
    }

    fn on_rto(&mut self, now: Instant) {
        self.timers.stop(Timer::Rto);
        let handshake = matches!(self.state, State::SynSent | State::SynReceived);
        if handshake && self.snd_max == self.iss {
            // The first SYN has not gone out yet: that is not a timeout.
            self.snd_nxt = self.iss;
            return;
        }
        let limit = if handshake {
            self.config.syn_retries
        } else {
            self.config.data_retries
        };
        let user_expired = match (self.config.user_timeout, self.unacked_since) {
            (Some(ut), Some(since)) => now - since >= ut,
            _ => false,
        };
        // A user timeout replaces the data retry count (as
        // TCP_USER_TIMEOUT does on Linux); the handshake keeps its count.
        let counted = handshake || self.config.user_timeout.is_none();
        if (counted && self.retries >= limit) || user_expired {
            self.fail(io::ErrorKind::TimedOut);
            return;
        }
        self.retries += 1;
        self.info.timeouts += 1;
        self.rtt.backoff();
        tracing::debug!(
            target: "ustack::tcp::rto",
            local = %self.local,
            remote = %self.remote,
            state = ?self.state,
            retries = self.retries,
            rto_ms = self.rtt.rto().as_millis() as u64,
            in_flight = self.bytes_in_flight(),
            "tcp retransmission timeout"
        );
        self.rtt_probe = None;
        if handshake {
            self.snd_nxt = self.iss;
            return;
        }
        let in_flight = self.reduction_flight();
        if self.retries == 1 {
            self.undo_start();
        }
        self.cc.on_rto(now, in_flight);
        self.rec.recover = None;
        self.rec.prr = None;
        self.timers.stop(Timer::ReoWnd);
        self.timers.stop(Timer::Tlp);
        self.rec.tlp = Tlp::default();
        self.rec.sack.clear_lost();
        self.rec.segs.on_rto();
        self.rec.last_recover = Some(self.snd_max);
        self.rec.dup_acks = 0;
        self.rec.retransmit_one = false;
        // RFC 6675 §5.1: holes may be retransmitted again; the SACK
        // information is kept, so go-back-N skips SACKed ranges. A second
        // RTO in a row without progress forgets it too, in case the peer
        // reneged on what it SACKed (RFC 2018 §8).
        if self.retries >= 2 {
            self.rec.sack.clear();
        } else {
            self.rec.sack.clear_retransmitted();
        }
        // Go back N: resend from the first unacknowledged byte.
        self.snd_nxt = self.snd_una;
    }

    /// The window we advertise now, with receiver SWS avoidance: the right
    /// edge moves only by a useful amount, and never backwards.
    fn rcv_window(&self) -> usize {
        let free = self.recv_buf.window();
        let cur = (self.rcv_adv - self.rcv_nxt).max(0) as usize;
        let step = (self.recv_buf.capacity() / 2).min(self.smss).max(1);
        if free >= cur + step || free == self.recv_buf.capacity() {
            free
        } else {
            cur.min(free.max(cur))
        }
    }

    /// When the pacer lets the next data segment go, if the congestion
    /// controller paces (BBR); `None` when it does not.
    fn pace_gate(&self) -> Option<Instant> {
        self.pacing_rate()
            .map(|_| self.timers.get(Timer::Pacing).unwrap_or(Instant::ZERO))
    }

    /// The rate data is paced at, bytes per second: the controller's own
    /// (BBR), or with [`TcpConfig::pacing`](super::TcpConfig::pacing)
    /// Linux's `cwnd / SRTT` times 2 in slow start and 1.2 after (none
    /// before an RTT sample).
    pub(crate) fn pacing_rate(&self) -> Option<u64> {
        if let Some(r) = self.cc.pacing_rate() {
            return Some(r);
        }
        if !self.config.pacing {
            return None;
        }
        let srtt = self.rtt.srtt()?.as_micros().max(1) as u64;
        let cwnd = self.cc.cwnd() as u64;
        let pct = if cwnd < self.cc.ssthresh() as u64 {
            200
        } else {
            120
        };
        Some((cwnd * pct / 100).saturating_mul(1_000_000) / srtt)
    }

    /// A data segment of `len` bytes went out at `now`: the pacer's next
    /// slot is its wire time at the pacing rate later. A pacer that fell
    /// behind (the runtime woke late, which a real one does by tens of
    /// microseconds a wake-up) may catch up by at most [`PACE_CREDIT`] of
    /// sending at once; one that was held by the windows or had nothing
    /// to send starts from now ([`Self::pacer_blocked`]). Without the
    /// credit, each late wake-up was time lost: BBR on a TUN paced at 37
    /// Mbit/s where it meant 100.
    fn paced(&mut self, now: Instant, len: usize) {
        if let Some(rate) = self.pacing_rate() {
            let wire = (len + 40) as u64;
            let dt = Duration::from_micros(wire * 1_000_000 / rate.max(1));
            let from = self
                .timers
                .get(Timer::Pacing)
                .map_or(now, |t| t.max(now - PACE_CREDIT));
            self.timers.set(Timer::Pacing, from + dt);
        }
    }

    /// Sending stopped for another reason than the pacer (the windows,
    /// or nothing to send): a slot already due is forgotten, so that the
    /// next send starts the schedule from its own time instead of
    /// bursting out the catch-up credit (which is for a runtime that woke
    /// late, not for a window that opened).
    fn pacer_blocked(&mut self, now: Instant) {
        if self.timers.get(Timer::Pacing).is_some_and(|t| t <= now) {
            self.timers.stop(Timer::Pacing);
        }
    }

    fn build(&self, now: Instant, seq: SeqNumber, flags: Flags) -> tcp::Repr<'static> {
        let syn = flags.syn();
        let wnd = self.rcv_window();
        let window_len = if syn {
            wnd.min(65535) as u16
        } else {
            (wnd >> self.rcv_wscale).min(65535) as u16
        };
        let mut options = tcp::Options::default();
        if syn && !self.config.no_options {
            options.mss = Some(self.our_mss);
            let offer = self.state == State::SynSent;
            if (offer && self.config.window_scaling) || (!offer && self.ws_ok) {
                options.window_scale = Some(self.rcv_wscale);
            }
            options.sack_permitted = if offer {
                self.config.sack
            } else {
                self.sack_ok
            };
            if offer && self.config.timestamps {
                options.timestamps = Some((self.ts_val(now), 0));
            }
        }
        if let Some(ts) = self.ts {
            options.timestamps = Some((self.ts_val(now), ts.recent));
        }
        if flags.ack() && self.sack_ok && !syn {
            let mut room = self.sack_blocks_to_send();
            if let Some((l, r)) = self.dsack_pending.filter(|_| room > 0) {
                options.push_sack_block((l.0, r.0));
                room -= 1;
            }
            if room > 0 && self.recv_buf.has_out_of_order() {
                let mut blocks = Vec::new();
                self.recv_buf.sack_blocks(&mut blocks);
                for (s, e) in blocks.into_iter().take(room) {
                    options.push_sack_block(((self.rcv_nxt + s).0, (self.rcv_nxt + e).0));
                }
            }
        }
        tcp::Repr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: seq.0,
            ack_number: if flags.ack() { self.rcv_nxt.0 } else { 0 },
            flags,
            window_len,
            urgent_at: 0,
            options,
            payload: &[],
        }
    }

    /// Book-keeping once a segment carrying ACK went out.
    fn ack_sent(&mut self, repr: &tcp::Repr) {
        if !repr.flags.syn() && self.sack_ok && self.dsack_pending.take().is_some() {
            self.info.dsacks_sent += 1; // reported once (RFC 2883 §4)
        }
        self.ack_now = false;
        self.timers.stop(Timer::DelAck);
        self.segs_unacked = 0;
        self.last_ack_sent = self.rcv_nxt;
        let wnd = if repr.flags.syn() {
            repr.window_len as usize
        } else {
            (repr.window_len as usize) << self.rcv_wscale
        };
        let edge = self.rcv_nxt + wnd;
        if edge > self.rcv_adv {
            self.rcv_adv = edge;
        }
    }

    /// Emits what is due at `now` through `emit`, which returns false when
    /// it has no room (the rest waits). Returns the segments emitted.
    /// Timers run before, in [`Tcb::handle_timeout`]; the steps, in order:
    /// a pending RST, the handshake's SYN (or TIME-WAIT's ACK), a tail loss
    /// probe, the retransmissions recovery chooses, new data, the
    /// window and keep-alive probes, and a pure ACK.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        emit: &mut dyn FnMut(&OutSegment) -> bool,
    ) -> usize {
        let fired = std::mem::take(&mut self.fired);
        let mut tx = Tx { now, emit, sent: 0 };
        let _ = self.transmit(&mut tx, fired);
        tx.sent
    }

    /// The steps of [`Tcb::poll_transmit`]; `Break` when one of them ends
    /// the round (`emit` is full, or the state allows nothing more).
    fn transmit(&mut self, tx: &mut Tx, fired: Fired) -> ControlFlow<()> {
        if self.rst_pending {
            if self
                .emit_bare(tx, self.ack_seq(), Flags::RST | Flags::ACK)
                .is_some()
            {
                self.rst_pending = false;
                self.enter_closed();
            }
            return ControlFlow::Break(());
        }
        self.transmit_control(tx)?;
        if self.state.is_synchronized() {
            self.transmit_tlp(tx)?;
            self.transmit_recovery(tx)?;
        }
        let force = self.transmit_new_data(tx, fired.persist)?;
        self.note_app_limited();
        self.transmit_probe(tx, force, fired.keepalive);
        if self.ack_now {
            self.emit_ack(tx);
        }
        ControlFlow::Continue(())
    }

    /// What the state allows before anything else: nothing when closed or
    /// listening, the SYN (or SYN-ACK) in the handshake, only an ACK in
    /// TIME-WAIT. `Break` when nothing more may go.
    fn transmit_control(&mut self, tx: &mut Tx) -> ControlFlow<()> {
        match self.state {
            State::Closed | State::Listen => ControlFlow::Break(()),
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss => {
                self.transmit_syn(tx);
                ControlFlow::Break(())
            }
            State::SynSent | State::SynReceived if !self.ack_now => ControlFlow::Break(()),
            State::TimeWait => {
                if self.ack_now {
                    self.emit_ack(tx);
                }
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    }

    /// The SYN (active open) or SYN-ACK (passive), first or again.
    fn transmit_syn(&mut self, tx: &mut Tx) {
        let flags = if self.state == State::SynSent {
            Flags::SYN
        } else {
            Flags::SYN | Flags::ACK
        };
        let Some(r) = self.emit_bare(tx, self.iss, flags) else {
            return;
        };
        if flags.ack() {
            self.ack_sent(&r);
        }
        self.snd_nxt = self.iss + 1;
        if self.snd_max < self.snd_nxt {
            self.snd_max = self.snd_nxt;
        } else {
            self.count_retransmit();
        }
        if self.retries == 0 {
            self.rtt_probe = Some((self.iss, tx.now));
        }
        self.unacked_since.get_or_insert(tx.now);
        self.timers.set(Timer::Rto, self.rto_deadline(tx.now));
    }

    /// A tail loss probe whose timer fired (RFC 8985 §7.3).
    fn transmit_tlp(&mut self, tx: &mut Tx) -> ControlFlow<()> {
        if !self.rec.tlp.due {
            return ControlFlow::Continue(());
        }
        match self.tlp_probe() {
            Some(p) => self.send_probe(tx, p),
            None => {
                // `handle_timeout` found none too, and let the RTO fire.
                self.rec.tlp.due = false;
                ControlFlow::Continue(())
            }
        }
    }

    /// Retransmissions: in SACK recovery what RFC 6675 chooses, else the
    /// segment at snd_una on a fast retransmit or partial ACK.
    fn transmit_recovery(&mut self, tx: &mut Tx) -> ControlFlow<()> {
        if self.sack_recovery() {
            self.transmit_sack_recovery(tx)?;
        }
        if self.rec.retransmit_one {
            self.retransmit_una(tx)?;
        }
        ControlFlow::Continue(())
    }

    /// RFC 6675 loss recovery: the first hole at once (§5 step 4.3), then
    /// NextSeg() while cwnd - pipe >= 1 SMSS (step C). New data (rule 2)
    /// is left to [`Self::transmit_new_data`], which uses `pipe` too.
    fn transmit_sack_recovery(&mut self, tx: &mut Tx) -> ControlFlow<()> {
        if self.rec.retransmit_one {
            if let Some(r) = self.sack_first_rexmit() {
                self.emit_data(tx, r.seq, r.len, r.fin)?;
                self.sack_rexmit_sent(r);
            }
            self.rec.retransmit_one = false;
        }
        // Each pass moves up the sequence space: a retransmission at or
        // below the previous one would be a mark that did not stick, and
        // resending it in a loop a stack that never yields.
        let mut floor: Option<SeqNumber> = None;
        while self.recovery_cwnd() >= self.pipe() + self.data_mss() {
            let r = match self.sack_lost_rexmit() {
                Some(r) => r,
                None if matches!(self.next_data(), Next::Send { .. }) => break,
                None => match self.sack_other_rexmit() {
                    Some(r) => r,
                    None => break,
                },
            };
            if floor.is_some_and(|f| r.seq < f) {
                debug_assert!(false, "SACK recovery picked {:?} again", r.seq);
                break;
            }
            self.emit_data(tx, r.seq, r.len, r.fin)?;
            floor = Some(r.seq + r.len.max(1));
            self.sack_rexmit_sent(r);
        }
        ControlFlow::Continue(())
    }

    /// Fast retransmit / partial ACK: the segment at snd_una again.
    fn retransmit_una(&mut self, tx: &mut Tx) -> ControlFlow<()> {
        // Only what was sent before: when an ACK has meanwhile covered
        // everything in flight, this is not a retransmission, and new data
        // here would bypass the window and SND.MAX (found by pcap replay:
        // 1448 bytes into a zero window, SND.MAX left behind, and the
        // peer's ACK of them then taken for "never sent").
        let in_flight = (self.snd_max - self.snd_una).max(0) as usize;
        let len = self.send_buf.len().min(self.payload_room()).min(in_flight);
        let fin = self.fin_seq == Some(self.snd_una + len);
        if len > 0 || fin {
            self.emit_data(tx, self.snd_una, len, fin)?;
            self.count_retransmit();
        }
        self.rec.retransmit_one = false;
        ControlFlow::Continue(())
    }

    /// New data (and data again after an RTO rewound snd_nxt) under the
    /// windows, Nagle and the pacer. With `persist` (its timer fired) a
    /// window-blocked sender sends what fits; `Continue(true)` when that
    /// was nothing and the closed window must be probed instead.
    fn transmit_new_data(&mut self, tx: &mut Tx, persist: bool) -> ControlFlow<(), bool> {
        let mut force = persist && self.state.is_synchronized();
        let mut sent_new = false;
        while let Some((len, fin)) = self.next_segment(tx.now, &mut force) {
            if self.pace_gate().is_some_and(|t| tx.now < t) {
                break; // poll_at asks again when pacing allows
            }
            self.snd_nxt = self.sack_skip(self.snd_nxt);
            let seq = self.snd_nxt;
            self.emit_data(tx, seq, len, fin)?;
            sent_new |= self.data_sent(tx.now, seq, len, fin);
            if fin {
                break;
            }
        }
        if sent_new && !self.timers.is_set(Timer::Tlp) {
            self.arm_pto(tx.now);
        }
        ControlFlow::Continue(force)
    }

    /// The next segment of new data, `(len, fin)`, or `None` when the
    /// sender must wait (arming the persist timer when the peer's window
    /// blocks it and nothing in flight will bring an ACK). A `force`d
    /// (persist) send overrides sender SWS avoidance once.
    fn next_segment(&mut self, now: Instant, force: &mut bool) -> Option<(usize, bool)> {
        match self.next_data() {
            Next::Send { len, fin } => Some((len, fin)),
            Next::WindowBlocked if *force => {
                // Persist timer fired: send what fits (overriding SWS
                // avoidance), else probe the closed window afterwards.
                let off = (self.snd_nxt - self.snd_una).max(0) as usize;
                let usable = self.snd_wnd.saturating_sub(self.bytes_in_flight());
                let len = self
                    .send_buf
                    .len()
                    .saturating_sub(off)
                    .min(usable)
                    .min(self.payload_room());
                if len == 0 {
                    return None;
                }
                *force = false;
                Some((len, false))
            }
            Next::WindowBlocked => {
                if self.bytes_in_flight() == 0
                    && !self.timers.is_set(Timer::Persist)
                    && !self.timers.is_set(Timer::Rto)
                {
                    self.timers
                        .set(Timer::Persist, now + self.persist_interval());
                }
                self.pacer_blocked(now);
                None
            }
            Next::Idle => {
                self.pacer_blocked(now);
                None
            }
        }
    }

    /// Book-keeping once data `[seq, seq + len)` (and a FIN) went out at
    /// snd_nxt; true when it was new (not sent before).
    fn data_sent(&mut self, now: Instant, seq: SeqNumber, len: usize, fin: bool) -> bool {
        self.paced(now, len);
        let new = seq >= self.snd_max;
        if !new {
            self.count_retransmit();
        } else if self.rtt_probe.is_none() {
            self.rtt_probe = Some((seq, now));
        }
        self.snd_nxt = seq + len + fin as usize;
        if fin {
            self.fin_seq = Some(seq + len);
        }
        if self.snd_max < self.snd_nxt {
            self.snd_max = self.snd_nxt;
        }
        self.unacked_since.get_or_insert(now);
        if !self.timers.is_set(Timer::Rto) {
            self.timers.set(Timer::Rto, self.rto_deadline(now));
        }
        new
    }

    /// Less than a segment left to send while the congestion window has
    /// room and nothing waits for retransmission: the application limits
    /// the sender (delivery-rate draft §3.4, "app-limited").
    fn note_app_limited(&mut self) {
        if !self.state.is_synchronized() {
            return;
        }
        let in_flight = (self.snd_max - self.snd_una).max(0) as usize;
        let never_sent = self.send_buf.len().saturating_sub(in_flight);
        if never_sent < self.payload_room()
            && self.cwnd_flight() < self.send_cwnd()
            && self.rec.recover.is_none()
        {
            self.rate.mark_app_limited(self.bytes_in_flight());
        }
    }

    /// A zero-window (`force`: the persist timer fired and no data could
    /// go) or keep-alive probe (when nothing else went out): an already
    /// acknowledged sequence number draws an ACK with the current window.
    fn transmit_probe(&mut self, tx: &mut Tx, force: bool, keepalive: bool) {
        if !(force || (keepalive && tx.sent == 0)) {
            return;
        }
        self.emit_bare(tx, self.snd_una - 1, Flags::ACK);
        if force {
            self.persist_backoff += 1;
            self.timers
                .set(Timer::Persist, tx.now + self.persist_interval());
        }
    }

    /// A pure ACK (with SACK blocks, D-SACK, timestamps as they apply).
    fn emit_ack(&mut self, tx: &mut Tx) {
        if let Some(r) = self.emit_bare(tx, self.ack_seq(), Flags::ACK) {
            self.ack_sent(&r);
        }
    }

    /// A segment without data (SYN, RST, ACK, probe); its header when it
    /// went, `None` when `emit` had no room.
    fn emit_bare(
        &mut self,
        tx: &mut Tx,
        seq: SeqNumber,
        flags: Flags,
    ) -> Option<tcp::Repr<'static>> {
        let repr = self.build(tx.now, seq, flags);
        let seg = OutSegment {
            repr,
            payload: (&[], &[]),
            gso_size: 0,
        };
        if !(tx.emit)(&seg) {
            return None;
        }
        tx.sent += 1;
        self.info.segs_out += 1;
        Some(repr)
    }

    /// A segment retransmitted (counted, and traced at `trace` level).
    fn count_retransmit(&mut self) {
        self.info.retransmits += 1;
        tracing::trace!(target: "ustack::tcp::retransmit", local = %self.local, remote = %self.remote, "tcp segment retransmitted");
    }

    /// Data `[seq, seq + len)` and a FIN when `fin`, from the send buffer;
    /// `Break` when `emit` had no room.
    fn emit_data(&mut self, tx: &mut Tx, seq: SeqNumber, len: usize, fin: bool) -> ControlFlow<()> {
        let now = tx.now;
        let off = (seq - self.snd_una).max(0) as usize;
        let mut flags = Flags::ACK;
        if len > 0 && off + len == self.send_buf.len() {
            flags |= Flags::PSH;
        }
        if fin {
            flags |= Flags::FIN;
        }
        let r = self.build(now, seq, flags);
        let room = self.payload_room();
        let seg = OutSegment {
            repr: r,
            payload: self.send_buf.slices_at(off, len),
            gso_size: if len > room { room as u16 } else { 0 },
        };
        if !(tx.emit)(&seg) {
            return ControlFlow::Break(());
        }
        tx.sent += 1;
        self.info.segs_out += 1;
        self.ack_sent(&r);
        if len > 0
            && self
                .last_data_at
                .is_some_and(|t| now.saturating_duration_since(t) < self.config.delayed_ack)
        {
            // Data sent soon after data received: an exchange of requests
            // and answers (Linux's "pingpong" mode).
            self.pingpong = true;
        }
        let end = seq + len + fin as usize;
        if seq < self.snd_max {
            let old = (end.min(self.snd_max) - seq) as usize;
            self.undo_on_rexmit(old);
        }
        self.rack_sent(seq, end, now);
        if let Some(p) = self.rec.prr.as_mut() {
            p.on_sent(len + fin as usize);
        }
        ControlFlow::Continue(())
    }

    /// True when the state lets a tail loss probe go in this round (the
    /// steps before it did not end it: no RST pending, synchronized, not
    /// TIME-WAIT).
    fn probes_may_go(&self) -> bool {
        !self.rst_pending && self.state.is_synchronized() && self.state != State::TimeWait
    }

    /// RFC 8985 §7.3: what the probe whose timer fired sends: one segment
    /// of new data if the peer's window allows (regardless of cwnd), else
    /// the last segment again. `None`: no probe may go (one is still out,
    /// recovery, no RTT sample since the last) or there is nothing to send.
    fn tlp_probe(&self) -> Option<Probe> {
        let skip = self.snd_una == self.snd_max
            || self.snd_nxt != self.snd_max
            || self.rec.recover.is_some()
            || self.rec.tlp.end_seq.is_some()
            || (!self.rec.tlp.rtt_since_probe && self.info.tlps > 0);
        if skip {
            return None;
        }
        let off = (self.snd_nxt - self.snd_una).max(0) as usize;
        let unsent = self.send_buf.len().saturating_sub(off);
        let room = self.snd_wnd.saturating_sub(off);
        if unsent > 0 && room > 0 {
            let len = unsent.min(room).min(self.payload_room());
            let fin = self.fin_queued
                && off + len == self.send_buf.len()
                && self.fin_unsent_at(off + len);
            return Some(Probe::New { len, fin });
        }
        let fin_out = self.fin_seq.is_some_and(|f| f < self.snd_max);
        let data_end = self.snd_max - fin_out as usize;
        let span = (data_end - self.snd_una).max(0) as usize;
        let start = data_end - span.min(self.payload_room());
        self.rexmit_at(start, (self.snd_max - start) as usize)
            .map(Probe::Again)
    }

    /// Sends the tail loss probe and re-arms the RTO; `Break` when `emit`
    /// had no room (the probe stays due for the next round).
    fn send_probe(&mut self, tx: &mut Tx, probe: Probe) -> ControlFlow<()> {
        let is_retrans = match probe {
            Probe::New { len, fin } => {
                let seq = self.snd_nxt;
                self.emit_data(tx, seq, len, fin)?;
                self.snd_nxt = seq + len + fin as usize;
                self.snd_max = self.snd_nxt;
                if fin {
                    self.fin_seq = Some(seq + len);
                }
                false
            }
            Probe::Again(r) => {
                self.emit_data(tx, r.seq, r.len, r.fin)?;
                let end = r.seq + r.len + r.fin as usize;
                self.rec.sack.mark_retransmitted(r.seq, end);
                if self.rtt_probe.is_some_and(|(p, _)| p.in_range(r.seq, end)) {
                    self.rtt_probe = None; // Karn
                }
                self.info.retransmits += 1;
                true
            }
        };
        self.rec.tlp = Tlp {
            end_seq: Some(self.snd_max),
            is_retrans,
            rtt_since_probe: false,
            due: false,
        };
        self.info.tlps += 1;
        self.unacked_since.get_or_insert(tx.now);
        self.timers.set(Timer::Rto, self.rto_deadline(tx.now));
        ControlFlow::Continue(())
    }
}

/// One transmission round: its time, where segments go, how many went.
struct Tx<'a> {
    now: Instant,
    emit: &'a mut dyn FnMut(&OutSegment) -> bool,
    sent: usize,
}

/// What a tail loss probe sends (RFC 8985 §7.3).
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// New data at snd_nxt: `len` bytes, and the FIN after them when `fin`.
    New { len: usize, fin: bool },
    /// The highest segment sent, again.
    Again(Rexmit),
}
