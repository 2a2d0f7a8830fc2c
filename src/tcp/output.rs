//! Segment generation and timers: what the connection sends at `now`
//! (SYN, data under the peer's and the congestion window with Nagle and
//! sender SWS avoidance, FIN, ACKs, probes, retransmissions) and when it
//! next needs to run.

use std::io;

use super::seq::SeqNumber;
use super::tcb::{State, Tcb};
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

impl OutSegment<'_> {
    /// Payload length.
    pub fn payload_len(&self) -> usize {
        self.payload.0.len() + self.payload.1.len()
    }
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
    pub fn poll_at(&self) -> Option<Instant> {
        // A closed connection sends nothing but a pending RST; left-over
        // recovery state must not ask for a transmission that
        // `poll_transmit` will never make (found by pcap replay: after an
        // RST during SACK recovery the deadline stayed at "now" for good).
        if self.state == State::Closed {
            return self.rst_pending.then_some(Instant::ZERO);
        }
        let immediate = self.rst_pending
            || self.ack_now
            || self.retransmit_one
            || self.tlp.due
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
            self.rto_at,
            self.reo_at,
            self.pto_at,
            self.delack_at,
            self.persist_at,
            self.keepalive_at,
            self.time_wait_at,
            self.fin_wait2_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers due at `now`; returns (persist fired, keep-alive
    /// probe due).
    fn run_timers(&mut self, now: Instant) -> (bool, bool) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.time_wait_at) || due(self.fin_wait2_at) {
            self.enter_closed();
            return (false, false);
        }
        // The PTO is never later than the RTO; when both are due the probe
        // goes first and re-arms the RTO (Linux: one timer, the probe's
        // replacing the RTO's). If no probe can be sent, the RTO fires on
        // the next poll.
        if due(self.pto_at) {
            self.pto_at = None;
            self.tlp.due = true;
        } else if due(self.rto_at) {
            self.on_rto(now);
            if self.state == State::Closed {
                return (false, false);
            }
        }
        if due(self.reo_at) {
            self.rack_timeout(now);
        }
        if due(self.delack_at) {
            self.delack_at = None;
            self.ack_now = true;
            // The application did not answer within the delayed-ACK time:
            // not an exchange of requests and answers after all.
            self.pingpong = false;
        }
        let mut persist = false;
        if due(self.persist_at) {
            self.persist_at = None;
            persist = true;
        }
        let mut keepalive = false;
        if due(self.keepalive_at) {
            let k = self.config.keepalive.unwrap_or_default();
            if self.keepalive_probes >= k.count {
                self.fail(io::ErrorKind::TimedOut);
                return (false, false);
            }
            self.keepalive_probes += 1;
            self.keepalive_at = Some(now + k.interval);
            keepalive = true;
        }
        (persist, keepalive)
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
        self.rto_at = None;
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
        self.recovery = None;
        self.prr = None;
        self.reo_at = None;
        self.pto_at = None;
        self.tlp = super::rack::Tlp::default();
        self.sack.clear_lost();
        self.segs.on_rto();
        self.last_recover = Some(self.snd_max);
        self.dup_acks = 0;
        self.retransmit_one = false;
        // RFC 6675 §5.1: holes may be retransmitted again; the SACK
        // information is kept, so go-back-N skips SACKed ranges. A second
        // RTO in a row without progress forgets it too, in case the peer
        // reneged on what it SACKed (RFC 2018 §8).
        if self.retries >= 2 {
            self.sack.clear();
        } else {
            self.sack.clear_retransmitted();
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
            .map(|_| self.pace_next.unwrap_or(Instant::ZERO))
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
            let from = self.pace_next.map_or(now, |t| t.max(now - PACE_CREDIT));
            self.pace_next = Some(from + dt);
        }
    }

    /// Sending stopped for another reason than the pacer (the windows,
    /// or nothing to send): a slot already due is forgotten, so that the
    /// next send starts the schedule from its own time instead of
    /// bursting out the catch-up credit (which is for a runtime that woke
    /// late, not for a window that opened).
    fn pacer_blocked(&mut self, now: Instant) {
        if self.pace_next.is_some_and(|t| t <= now) {
            self.pace_next = None;
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
        self.delack_at = None;
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
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        emit: &mut dyn FnMut(&OutSegment) -> bool,
    ) -> usize {
        let (persist, keepalive) = self.run_timers(now);
        let mut sent = 0;
        if self.rst_pending {
            let r = self.build(now, self.ack_seq(), Flags::RST | Flags::ACK);
            if emit(&OutSegment {
                repr: r,
                payload: (&[], &[]),
                gso_size: 0,
            }) {
                self.rst_pending = false;
                self.info.segs_out += 1;
                self.enter_closed();
                return 1;
            }
            return 0;
        }
        match self.state {
            State::Closed | State::Listen => return 0,
            State::SynSent | State::SynReceived => {
                if self.snd_nxt == self.iss {
                    let flags = if self.state == State::SynSent {
                        Flags::SYN
                    } else {
                        Flags::SYN | Flags::ACK
                    };
                    let r = self.build(now, self.iss, flags);
                    if !emit(&OutSegment {
                        repr: r,
                        payload: (&[], &[]),
                        gso_size: 0,
                    }) {
                        return 0;
                    }
                    self.info.segs_out += 1;
                    if flags.ack() {
                        self.ack_sent(&r);
                    }
                    self.snd_nxt = self.iss + 1;
                    if self.snd_max < self.snd_nxt {
                        self.snd_max = self.snd_nxt;
                    } else {
                        self.info.retransmits += 1;
                        tracing::trace!(target: "ustack::tcp::retransmit", local = %self.local, remote = %self.remote, "tcp segment retransmitted");
                    }
                    if self.retries == 0 {
                        self.rtt_probe = Some((self.iss, now));
                    }
                    self.unacked_since.get_or_insert(now);
                    self.rto_at = Some(self.rto_deadline(now));
                    return 1;
                }
                if !self.ack_now {
                    return 0;
                }
            }
            State::TimeWait => {
                if self.ack_now {
                    let r = self.build(now, self.ack_seq(), Flags::ACK);
                    if emit(&OutSegment {
                        repr: r,
                        payload: (&[], &[]),
                        gso_size: 0,
                    }) {
                        self.info.segs_out += 1;
                        self.ack_sent(&r);
                        return 1;
                    }
                }
                return 0;
            }
            _ => {}
        }

        // A tail loss probe whose timer fired (RFC 8985 §7.3).
        if self.tlp.due && self.state.is_synchronized() {
            match self.send_probe(now, emit) {
                Some(true) => sent += 1,
                Some(false) => return sent,
                None => {
                    // No probe could go: an RTO that fell due meanwhile
                    // fires in this poll, not the next one (a deadline
                    // left in the past is a runtime that spins; found by
                    // the live_stack fuzz target).
                    if self.rto_at.is_some_and(|t| t <= now) {
                        self.on_rto(now);
                        if self.state == State::Closed {
                            return sent;
                        }
                    }
                }
            }
        }

        // RFC 6675 loss recovery: the first hole at once (§5 step 4.3),
        // then NextSeg() while cwnd - pipe >= 1 SMSS (step C). New data
        // (rule 2) is left to the loop below, which uses `pipe` too.
        if self.sack_recovery() && self.state.is_synchronized() {
            if self.retransmit_one {
                if let Some(r) = self.sack_first_rexmit() {
                    if !self.emit_data(now, r.seq, r.len, r.fin, emit) {
                        return sent;
                    }
                    sent += 1;
                    self.sack_rexmit_sent(r);
                }
                self.retransmit_one = false;
            }
            // Each pass moves up the sequence space: a retransmission at or
            // below the previous one would be a mark that did not stick,
            // and resending it in a loop a stack that never yields.
            let mut floor: Option<SeqNumber> = None;
            loop {
                if self.recovery_cwnd() < self.pipe() + self.data_mss() {
                    break;
                }
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
                if !self.emit_data(now, r.seq, r.len, r.fin, emit) {
                    return sent;
                }
                sent += 1;
                floor = Some(r.seq + r.len.max(1));
                self.sack_rexmit_sent(r);
            }
        }

        // Fast retransmit / partial ACK: the segment at snd_una again.
        if self.retransmit_one && self.state.is_synchronized() {
            // Only what was sent before: when an ACK has meanwhile covered
            // everything in flight, this is not a retransmission, and new
            // data here would bypass the window and SND.MAX (found by pcap
            // replay: 1448 bytes into a zero window, SND.MAX left behind, and
            // the peer's ACK of them then taken for "never sent").
            let in_flight = (self.snd_max - self.snd_una).max(0) as usize;
            let len = self.send_buf.len().min(self.payload_room()).min(in_flight);
            let fin = self.fin_seq == Some(self.snd_una + len);
            if len > 0 || fin {
                if !self.emit_data(now, self.snd_una, len, fin, emit) {
                    return sent;
                }
                sent += 1;
                self.info.retransmits += 1;
                tracing::trace!(target: "ustack::tcp::retransmit", local = %self.local, remote = %self.remote, "tcp segment retransmitted");
            }
            self.retransmit_one = false;
        }

        let mut force = persist && self.state.is_synchronized();
        let mut sent_new = false;
        loop {
            let next = self.next_data();
            let (len, fin) = match next {
                Next::Send { len, fin } => (len, fin),
                Next::WindowBlocked if force => {
                    // Persist timer fired: send what fits (overriding SWS
                    // avoidance), else probe the closed window below.
                    let off = (self.snd_nxt - self.snd_una).max(0) as usize;
                    let usable = self.snd_wnd.saturating_sub(self.bytes_in_flight());
                    let len = self
                        .send_buf
                        .len()
                        .saturating_sub(off)
                        .min(usable)
                        .min(self.payload_room());
                    if len == 0 {
                        break;
                    }
                    force = false;
                    (len, false)
                }
                Next::WindowBlocked => {
                    if self.bytes_in_flight() == 0
                        && self.persist_at.is_none()
                        && self.rto_at.is_none()
                    {
                        self.persist_at = Some(now + self.persist_interval());
                    }
                    self.pacer_blocked(now);
                    break;
                }
                Next::Idle => {
                    self.pacer_blocked(now);
                    break;
                }
            };
            if self.pace_gate().is_some_and(|t| now < t) {
                break; // poll_at asks again when pacing allows
            }
            self.snd_nxt = self.sack_skip(self.snd_nxt);
            let seq = self.snd_nxt;
            if !self.emit_data(now, seq, len, fin, emit) {
                return sent;
            }
            sent += 1;
            self.paced(now, len);
            if seq < self.snd_max {
                self.info.retransmits += 1;
                tracing::trace!(target: "ustack::tcp::retransmit", local = %self.local, remote = %self.remote, "tcp segment retransmitted");
            } else {
                sent_new = true;
                if self.rtt_probe.is_none() {
                    self.rtt_probe = Some((seq, now));
                }
            }
            self.snd_nxt = seq + len + fin as usize;
            if fin {
                self.fin_seq = Some(seq + len);
            }
            if self.snd_max < self.snd_nxt {
                self.snd_max = self.snd_nxt;
            }
            self.unacked_since.get_or_insert(now);
            if self.rto_at.is_none() {
                self.rto_at = Some(self.rto_deadline(now));
            }
            if fin {
                break;
            }
        }
        if sent_new && self.pto_at.is_none() {
            self.arm_pto(now);
        }
        // Less than a segment left to send while the congestion window
        // has room and nothing waits for retransmission: the application
        // limits the sender (delivery-rate draft §3.4, "app-limited").
        if self.state.is_synchronized() {
            let in_flight = (self.snd_max - self.snd_una).max(0) as usize;
            let never_sent = self.send_buf.len().saturating_sub(in_flight);
            if never_sent < self.payload_room()
                && self.cwnd_flight() < self.send_cwnd()
                && self.recovery.is_none()
            {
                self.rate.mark_app_limited(self.bytes_in_flight());
            }
        }

        if force || (keepalive && sent == 0) {
            // A zero-window or keep-alive probe: an already acknowledged
            // sequence number draws an ACK with the current window.
            let r = self.build(now, self.snd_una - 1, Flags::ACK);
            if emit(&OutSegment {
                repr: r,
                payload: (&[], &[]),
                gso_size: 0,
            }) {
                sent += 1;
                self.info.segs_out += 1;
            }
            if force {
                self.persist_backoff += 1;
                self.persist_at = Some(now + self.persist_interval());
            }
        }

        if self.ack_now {
            let r = self.build(now, self.ack_seq(), Flags::ACK);
            if emit(&OutSegment {
                repr: r,
                payload: (&[], &[]),
                gso_size: 0,
            }) {
                sent += 1;
                self.info.segs_out += 1;
                self.ack_sent(&r);
            }
        }
        sent
    }

    fn emit_data(
        &mut self,
        now: Instant,
        seq: SeqNumber,
        len: usize,
        fin: bool,
        emit: &mut dyn FnMut(&OutSegment) -> bool,
    ) -> bool {
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
        if !emit(&seg) {
            return false;
        }
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
        if let Some(p) = self.prr.as_mut() {
            p.on_sent(len + fin as usize);
        }
        true
    }

    /// RFC 8985 §7.3: the PTO fired. Sends one segment of new data if the
    /// peer's window allows (regardless of cwnd), else the last segment
    /// again, and re-arms the RTO. `None`: no probe was due (one is still
    /// out, or no RTT sample since the last); `Some(false)`: `emit` had
    /// no room (it is tried again on the next poll).
    fn send_probe(
        &mut self,
        now: Instant,
        emit: &mut dyn FnMut(&OutSegment) -> bool,
    ) -> Option<bool> {
        let skip = self.snd_una == self.snd_max
            || self.snd_nxt != self.snd_max
            || self.recovery.is_some()
            || self.tlp.end_seq.is_some()
            || (!self.tlp.rtt_since_probe && self.info.tlps > 0);
        if skip {
            self.tlp.due = false;
            return None;
        }
        let off = (self.snd_nxt - self.snd_una).max(0) as usize;
        let unsent = self.send_buf.len().saturating_sub(off);
        let room = self.snd_wnd.saturating_sub(off);
        let is_retrans;
        if unsent > 0 && room > 0 {
            let len = unsent.min(room).min(self.payload_room());
            let fin = self.fin_queued
                && off + len == self.send_buf.len()
                && self.fin_unsent_at(off + len);
            let seq = self.snd_nxt;
            if !self.emit_data(now, seq, len, fin, emit) {
                return Some(false);
            }
            self.snd_nxt = seq + len + fin as usize;
            self.snd_max = self.snd_nxt;
            if fin {
                self.fin_seq = Some(seq + len);
            }
            is_retrans = false;
        } else {
            // The highest segment sent, again.
            let fin_out = self.fin_seq.is_some_and(|f| f < self.snd_max);
            let data_end = self.snd_max - fin_out as usize;
            let span = (data_end - self.snd_una).max(0) as usize;
            let start = data_end - span.min(self.payload_room());
            let Some(r) = self.rexmit_at(start, (self.snd_max - start) as usize) else {
                self.tlp.due = false;
                return None;
            };
            if !self.emit_data(now, r.seq, r.len, r.fin, emit) {
                return Some(false);
            }
            let end = r.seq + r.len + r.fin as usize;
            self.sack.mark_retransmitted(r.seq, end);
            if self.rtt_probe.is_some_and(|(p, _)| p.in_range(r.seq, end)) {
                self.rtt_probe = None; // Karn
            }
            self.info.retransmits += 1;
            is_retrans = true;
        }
        self.tlp = super::rack::Tlp {
            end_seq: Some(self.snd_max),
            is_retrans,
            rtt_since_probe: false,
            due: false,
        };
        self.info.tlps += 1;
        self.unacked_since.get_or_insert(now);
        self.rto_at = Some(self.rto_deadline(now));
        Some(true)
    }
}
