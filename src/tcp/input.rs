//! Segment arrival, RFC 9293 §3.10.7, with RFC 5961 (challenge ACKs),
//! RFC 7323 (PAWS), RFC 5681/6582 (duplicate ACKs, NewReno recovery).

use std::io;

use super::buffer::BufferPool;
use super::seq::SeqNumber;
use super::tcb::{State, Tcb, Timestamps};
use super::timer::Timer;
use crate::time::{Duration, Instant};
use crate::wire::tcp;

/// A RST the interface should send in answer (not part of the connection's
/// sequence space, so the interface builds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RstReply {
    /// Sequence number of the RST.
    pub seq: SeqNumber,
    /// Acknowledgement number, when the RST carries ACK.
    pub ack: Option<SeqNumber>,
}

/// Whether the rest of a segment is processed after its ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterAck {
    /// Go on to its text and FIN.
    Continue,
    /// The segment is done with (it acknowledged what was never sent, was
    /// too old, or its ACK closed the connection).
    Done,
}

/// The part of an acceptable segment inside the receive window.
#[derive(Debug)]
struct Text<'a> {
    seq: SeqNumber,
    payload: &'a [u8],
    syn: bool,
    fin: bool,
}

/// PAWS: TS.Recent older than 24 days is no longer trusted (RFC 7323 §5.5).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

impl Tcb {
    /// Applies the options of the peer's SYN or SYN-ACK.
    pub(crate) fn negotiate(&mut self, syn: &tcp::Repr, now: Instant) {
        let none = tcp::Options::default();
        // With no options of our own, none of the peer's are used either,
        // its MSS included (as BSD's TCP_NOOPT): segments are 536 bytes.
        let o = if self.config.no_options {
            &none
        } else {
            &syn.options
        };
        let peer_mss = o.mss.map_or(536, |m| m as usize).max(64);
        self.smss = peer_mss.min(self.our_mss as usize).min(self.pmtu_mss());
        match (self.config.window_scaling, o.window_scale) {
            (true, Some(ws)) => {
                self.ws_ok = true;
                self.snd_wscale = ws.min(14);
            }
            _ => {
                self.ws_ok = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.ts = match (self.config.timestamps, o.timestamps) {
            (true, Some((val, _))) => Some(Timestamps {
                recent: val,
                recent_at: now,
                offset: self.ts_offset_seed,
            }),
            _ => None,
        };
        self.sack_ok = self.config.sack && o.sack_permitted;
        self.rec.choose(self.sack_ok, self.config.rack);
        self.cc.set_mss(self.data_mss());
    }

    /// A passive open: the listener's SYN becomes SYN-RECEIVED; the
    /// SYN-ACK goes out on the next poll.
    pub(crate) fn accept_syn(&mut self, now: Instant, syn: &tcp::Repr) {
        self.irs = SeqNumber(syn.seq_number);
        self.rcv_nxt = self.irs + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(syn, now);
        self.snd_wnd = syn.window_len as usize;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = self.irs;
        self.snd_wl2 = self.iss;
        self.set_state(State::SynReceived);
        self.snd_nxt = self.iss;
        self.last_recv_at = now;
        // Data on a SYN (without Fast Open) is not acknowledged; the peer
        // sends it again after the handshake.
    }

    /// A connection rebuilt from a valid SYN cookie (RFC 4987): the ACK
    /// completing the handshake carries everything that was not stored.
    pub(crate) fn accept_cookie(
        &mut self,
        now: Instant,
        ack_seg: &tcp::Repr,
        mss: u16,
        wscale: Option<u8>,
        sack: bool,
    ) {
        self.passive = true;
        self.irs = SeqNumber(ack_seg.seq_number) - 1;
        self.rcv_nxt = self.irs + 1;
        // The SYN-ACK advertised an unscaled window of this size.
        self.rcv_adv = self.rcv_nxt + self.config.recv_buffer.min(65535);
        self.last_ack_sent = self.rcv_nxt;
        self.smss = (mss as usize)
            .min(self.our_mss as usize)
            .min(self.pmtu_mss());
        match wscale.filter(|_| self.config.window_scaling) {
            Some(w) => {
                self.ws_ok = true;
                self.snd_wscale = w.min(14);
            }
            None => {
                self.ws_ok = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.ts = match (self.config.timestamps, ack_seg.options.timestamps) {
            (true, Some((val, _))) => Some(Timestamps {
                recent: val,
                recent_at: now,
                offset: 0,
            }),
            _ => None,
        };
        self.sack_ok = sack && self.config.sack && self.ts.is_some();
        self.rec.choose(self.sack_ok, self.config.rack);
        self.cc.set_mss(self.data_mss());
        self.snd_una = self.iss + 1;
        self.snd_nxt = self.snd_una;
        self.snd_max = self.snd_una;
        self.snd_wnd = (ack_seg.window_len as usize) << self.snd_wscale;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = SeqNumber(ack_seg.seq_number);
        self.snd_wl2 = SeqNumber(ack_seg.ack_number);
        self.set_state(State::Established);
        self.last_recv_at = now;
        self.on_established(now);
    }

    /// A segment for this connection arrived at `now`.
    pub(crate) fn process(
        &mut self,
        now: Instant,
        seg: &tcp::Repr,
        pool: &mut BufferPool,
    ) -> Option<RstReply> {
        self.info.segs_in += 1;
        match self.state {
            State::Closed | State::Listen => None,
            State::SynSent => self.process_syn_sent(now, seg, pool),
            _ => self.process_synchronized(now, seg, pool),
        }
    }

    fn process_syn_sent(
        &mut self,
        now: Instant,
        seg: &tcp::Repr,
        pool: &mut BufferPool,
    ) -> Option<RstReply> {
        let f = seg.flags;
        let ack = SeqNumber(seg.ack_number);
        if f.ack() && (ack <= self.iss || ack > self.snd_max) {
            return (!f.rst()).then_some(RstReply {
                seq: ack,
                ack: None,
            });
        }
        if f.rst() {
            if f.ack() {
                self.fail(io::ErrorKind::ConnectionRefused);
            }
            return None;
        }
        if !f.syn() {
            return None;
        }
        self.irs = SeqNumber(seg.seq_number);
        self.rcv_nxt = self.irs + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(seg, now);
        self.last_recv_at = now;
        if f.ack() {
            self.ack_syn(now, ack, seg);
            self.set_state(State::Established);
            self.on_established(now);
            self.ack_now = true;
            // Data on a SYN-ACK (Fast Open) is accepted like any text.
            if !seg.payload.is_empty() || f.fin() {
                self.accept_text(now, self.rcv_nxt, seg.payload, f.fin(), pool);
            }
        } else {
            // Simultaneous open: answer with SYN-ACK (same ISS). Text on
            // the SYN is kept (at most a receive buffer of it) and
            // delivered once ESTABLISHED; the SYN-ACK acknowledges only
            // the SYN, so a FIN on it is left for the peer to resend (as
            // FreeBSD; Linux drops the text too).
            let keep = seg.payload.len().min(self.config.recv_buffer);
            self.syn_text = seg.payload[..keep].to_vec();
            self.set_state(State::SynReceived);
            self.snd_nxt = self.iss;
            self.timers.set(Timer::Rto, now);
        }
        None
    }

    /// The SYN we sent is acknowledged by `ack`.
    fn ack_syn(&mut self, now: Instant, ack: SeqNumber, seg: &tcp::Repr) {
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        // The window of a SYN or SYN-ACK is never scaled (RFC 7323 §2.2).
        self.snd_wnd = if seg.flags.syn() {
            seg.window_len as usize
        } else {
            (seg.window_len as usize) << self.snd_wscale
        };
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.snd_wl1 = SeqNumber(seg.seq_number);
        self.snd_wl2 = ack;
        if let Some((_, t)) = self.rtt_probe.take() {
            if self.retries == 0 {
                self.rtt.sample(now - t);
            }
        }
        self.retries = 0;
        self.timers.stop(Timer::Rto);
        self.unacked_since = None;
    }

    pub(crate) fn on_established(&mut self, now: Instant) {
        match self.config.keepalive {
            Some(k) => self.timers.set(Timer::Keepalive, now + k.idle),
            None => self.timers.stop(Timer::Keepalive),
        }
    }

    fn rcv_wnd_advertised(&self) -> usize {
        (self.rcv_adv - self.rcv_nxt).max(0) as usize
    }

    fn challenge_ack(&mut self, now: Instant) {
        let sec = now.total_micros() / 1_000_000;
        if self.challenge_acks.0 != sec {
            self.challenge_acks = (sec, 0);
        }
        if self.challenge_acks.1 < self.config.challenge_ack_limit {
            self.challenge_acks.1 += 1;
            self.ack_now = true;
        }
    }

    fn process_synchronized(
        &mut self,
        now: Instant,
        seg: &tcp::Repr,
        pool: &mut BufferPool,
    ) -> Option<RstReply> {
        if self.state == State::TimeWait {
            return self.process_time_wait(now, seg);
        }
        if self.paws_rejects(now, seg) {
            return None;
        }
        let f = seg.flags;
        let seg_seq = SeqNumber(seg.seq_number);
        let Text {
            seq,
            payload,
            syn,
            fin,
        } = self.acceptable_text(seg)?;

        if f.rst() {
            self.process_rst(now, seg_seq);
            return None;
        }

        // SYN in a synchronized state: challenge ACK (RFC 5961 §4.2), or
        // with RFC 5961 off, RFC 793 §3.9: a SYN in the window is an
        // error; reset the connection and tell the peer.
        if syn {
            if !self.config.rfc5961_syn {
                let reply = RstReply {
                    seq: self.snd_nxt,
                    ack: Some(self.rcv_nxt),
                };
                self.fail(io::ErrorKind::ConnectionReset);
                return Some(reply);
            }
            self.challenge_ack(now);
            return None;
        }

        if !f.ack() {
            return None;
        }

        // TS.Recent update (RFC 7323 §4.3).
        if let (Some(ts), Some((val, _))) = (self.ts.as_mut(), seg.options.timestamps) {
            if seg_seq <= self.last_ack_sent && (val.wrapping_sub(ts.recent) as i32) >= 0 {
                ts.recent = val;
                ts.recent_at = now;
            }
        }
        self.last_recv_at = now;
        if let Some(k) = self.config.keepalive {
            self.timers.set(Timer::Keepalive, now + k.idle);
            self.keepalive_probes = 0;
        }

        let ack = SeqNumber(seg.ack_number);
        if self.state == State::SynReceived {
            if ack > self.snd_una && ack <= self.snd_max {
                self.ack_syn(now, ack, seg);
                // Window from this ACK (scaled: it is not a SYN).
                self.set_state(State::Established);
                self.on_established(now);
                if !self.syn_text.is_empty() {
                    let text = std::mem::take(&mut self.syn_text);
                    self.accept_text(now, self.irs + 1, &text, false, pool);
                }
                if self.fin_queued {
                    self.set_state(State::FinWait1);
                }
            } else {
                return Some(RstReply {
                    seq: ack,
                    ack: None,
                });
            }
        } else if self.process_ack(now, seg, seg_seq, ack, payload.is_empty() && !fin, pool)
            == AfterAck::Done
        {
            return None;
        }

        // Text and FIN.
        match self.state {
            State::Established | State::FinWait1 | State::FinWait2 => {
                if !payload.is_empty() || fin {
                    self.accept_text(now, seq, payload, fin, pool);
                }
            }
            // Data after the peer's FIN is nonsense; just ACK.
            _ => {
                if !payload.is_empty() {
                    self.ack_now = true;
                }
            }
        }
        None
    }

    /// PAWS (RFC 7323 §5.3): true when `seg` is an old duplicate to drop
    /// (and ACK).
    fn paws_rejects(&mut self, now: Instant, seg: &tcp::Repr) -> bool {
        let (Some(ts), Some((val, _))) = (self.ts, seg.options.timestamps) else {
            return false;
        };
        if seg.flags.rst()
            || (val.wrapping_sub(ts.recent) as i32) >= 0
            || now - ts.recent_at >= PAWS_IDLE
        {
            return false;
        }
        // An old copy (typically the original of a segment whose
        // retransmission arrived first): a D-SACK for what of it lies
        // below rcv_nxt, as Linux (`tcp_send_dupack`).
        let seg_seq = SeqNumber(seg.seq_number);
        let end = seg_seq + seg.payload.len();
        if !seg.payload.is_empty() && seg_seq < self.rcv_nxt {
            self.note_dsack(seg_seq, end.min(self.rcv_nxt));
        }
        self.ack_now = true;
        true
    }

    /// Acceptability (§3.10.7.4, first check) and trimming to the window:
    /// what of `seg` is new text (a SYN and FIN among it), or `None` when
    /// the segment goes no further (an ACK is due when it should draw one).
    fn acceptable_text<'a>(&mut self, seg: &tcp::Repr<'a>) -> Option<Text<'a>> {
        let f = seg.flags;
        let seg_seq = SeqNumber(seg.seq_number);
        let wnd = self.rcv_wnd_advertised();
        let acceptable = self.acceptable(seg, wnd);
        let mut t = Text {
            seq: seg_seq,
            payload: seg.payload,
            syn: f.syn(),
            fin: f.fin(),
        };
        if !acceptable {
            if f.rst() {
                return None;
            }
            if self.state == State::SynReceived && t.syn && seg_seq == self.irs {
                if f.ack() && !self.passive {
                    // Simultaneous open: the peer's SYN-ACK. Its SYN is
                    // old news; its ACK completes the handshake.
                    t.syn = false;
                    t.seq += 1;
                } else {
                    // A retransmitted SYN: our SYN-ACK was lost.
                    self.snd_nxt = self.iss;
                    return None;
                }
            } else if wnd == 0 && seg_seq == self.rcv_nxt {
                // A zero window still takes ACKs, URGs and RSTs.
                t.payload = &[];
                t.syn = false;
                t.fin = false;
                self.ack_now = true;
            } else {
                if !t.payload.is_empty() && seg_seq + t.payload.len() <= self.rcv_nxt {
                    // All of it was received before (RFC 2883 §4.1.1).
                    self.note_dsack(seg_seq, seg_seq + t.payload.len());
                }
                self.ack_now = true;
                return None;
            }
        }
        self.trim_to_window(&mut t, wnd);
        Some(t)
    }

    /// The first check of §3.10.7.4: some of `seg`'s sequence space lies
    /// in the receive window of `wnd` bytes (a segment without any, at
    /// rcv_nxt).
    fn acceptable(&self, seg: &tcp::Repr, wnd: usize) -> bool {
        let f = seg.flags;
        let seg_seq = SeqNumber(seg.seq_number);
        let seg_len = seg.payload.len() + f.syn() as usize + f.fin() as usize;
        let in_wnd = |s: SeqNumber| s >= self.rcv_nxt && s < self.rcv_nxt + wnd;
        match (seg_len, wnd) {
            (0, 0) => seg_seq == self.rcv_nxt,
            (0, _) => in_wnd(seg_seq),
            (_, 0) => false,
            (_, _) => in_wnd(seg_seq) || in_wnd(seg_seq + (seg_len - 1)),
        }
    }

    /// Cuts what lies outside `[rcv_nxt, rcv_nxt + wnd)` off `t`.
    fn trim_to_window(&mut self, t: &mut Text, wnd: usize) {
        if t.syn && t.seq < self.rcv_nxt {
            t.syn = false;
            t.seq += 1;
        }
        if t.seq < self.rcv_nxt {
            let n = (self.rcv_nxt - t.seq) as usize;
            if !t.payload.is_empty() {
                // The start was received before (RFC 2883 §4.1.3).
                self.note_dsack(t.seq, t.seq + n.min(t.payload.len()));
            }
            if n > t.payload.len() {
                t.fin = false;
            }
            t.payload = &t.payload[n.min(t.payload.len())..];
            t.seq = self.rcv_nxt;
            self.ack_now = true;
        }
        let right = self.rcv_nxt + wnd;
        if t.seq + t.payload.len() > right {
            let keep = (right - t.seq).max(0) as usize;
            t.payload = &t.payload[..keep.min(t.payload.len())];
            t.fin = false;
            self.ack_now = true;
        }
    }

    /// An acceptable RST (§3.10.7.4 second check, RFC 5961 §3.2; with RFC
    /// 5961 off, RFC 793: any RST in the window).
    fn process_rst(&mut self, now: Instant, seg_seq: SeqNumber) {
        if seg_seq != self.rcv_nxt && self.config.rfc5961_rst {
            self.challenge_ack(now);
            return;
        }
        match self.state {
            State::SynReceived if self.passive => self.enter_closed(),
            State::SynReceived => self.fail(io::ErrorKind::ConnectionRefused),
            // Like Linux's tcp_reset: every synchronized state reports the
            // reset, LAST-ACK and CLOSING included.
            State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait
            | State::LastAck
            | State::Closing => self.fail(io::ErrorKind::ConnectionReset),
            _ => self.enter_closed(),
        }
    }

    /// ACK processing in synchronized states (§3.10.7.4 fifth check).
    fn process_ack(
        &mut self,
        now: Instant,
        seg: &tcp::Repr,
        seg_seq: SeqNumber,
        ack: SeqNumber,
        pure: bool,
        pool: &mut BufferPool,
    ) -> AfterAck {
        if ack > self.snd_max {
            // Acknowledges something never sent.
            self.ack_now = true;
            return AfterAck::Done;
        }
        let max_wnd = self.max_snd_wnd.max(65535);
        if ack < self.snd_una - max_wnd {
            self.challenge_ack(now);
            return AfterAck::Done;
        }
        let old_wnd = self.snd_wnd;
        let blocks = seg.options.sack_blocks();
        let ecr = seg.options.timestamps.map(|(_, ecr)| ecr);
        let una_before = self.snd_una;
        let sacked_before = self.sacked_bytes();
        let delivered_before = self.rate.delivered();
        // The scoreboard, and the segment records (RACK's, and the rate
        // sampler's without it).
        let dsack = self.sack_on_ack(now, blocks, ack, ecr);
        let min_rtt = self.min_rtt();
        self.rate.finish_ack(min_rtt);
        let advanced = ack > self.snd_una;
        let mut plain_dup = false;
        if advanced {
            self.new_ack(now, ack, ecr, pool);
        } else if ack == self.snd_una
            && pure
            && self.snd_max > self.snd_una
            && ((seg.window_len as usize) << self.snd_wscale) == old_wnd
        {
            plain_dup = blocks.is_empty();
            if !self.sack_ok {
                let in_flight = (self.snd_max - self.snd_una).max(0) as u64;
                self.rate.on_dup_ack(self.data_mss() as u64, in_flight, now);
            }
            self.dup_ack(now);
        }
        let newly = self.rate.delivered() - delivered_before;
        // The flight (`pipe`, a scoreboard walk in recovery) only for the
        // controllers that use it.
        if newly > 0 && self.cc.model_based() {
            let rs = self.rate.this_ack();
            let (flight, total) = (self.cwnd_flight(), self.rate.delivered());
            self.cc
                .on_delivery(now, rs.as_ref(), newly as usize, flight, total);
        }
        self.detect_loss_on_ack(now, ack, dsack, plain_dup, una_before, sacked_before);
        if dsack.is_some() || advanced {
            self.undo_check(now);
        }
        if advanced {
            self.arm_pto(now);
        }
        // Window update (§3.10.7.4: SND.WL1/WL2 rule).
        if self.snd_wl1 < seg_seq || (self.snd_wl1 == seg_seq && self.snd_wl2 <= ack) {
            self.snd_wnd = (seg.window_len as usize) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg_seq;
            self.snd_wl2 = ack;
            if self.snd_wnd > 0 {
                self.timers.stop(Timer::Persist);
                self.persist_backoff = 0;
            }
        }
        let fin_acked = self.fin_seq.is_some_and(|f| self.snd_una > f);
        match self.state {
            State::FinWait1 if fin_acked => {
                self.set_state(State::FinWait2);
                if self.orphaned {
                    self.timers
                        .set(Timer::FinWait2, now + self.config.fin_wait2_timeout);
                }
            }
            State::Closing if fin_acked => {
                self.enter_time_wait(now);
                return AfterAck::Done;
            }
            State::LastAck if fin_acked => {
                self.enter_closed();
                return AfterAck::Done;
            }
            _ => {}
        }
        AfterAck::Continue
    }

    fn new_ack(
        &mut self,
        now: Instant,
        ack: SeqNumber,
        ts_ecr: Option<u32>,
        pool: &mut BufferPool,
    ) {
        let mut acked = (ack - self.snd_una) as usize;
        if self.snd_una == self.iss {
            acked -= 1; // our SYN
        }
        if let Some(f) = self.fin_seq {
            if self.snd_una <= f && ack > f {
                acked -= 1; // our FIN
            }
        }
        let acked = acked.min(self.send_buf.len());
        self.send_buf.consume(acked, pool);
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        let mut rtt = None;
        if let Some((pseq, t)) = self.rtt_probe {
            if ack > pseq {
                let r = now - t;
                self.rtt.sample(r);
                rtt = Some(r);
                self.rtt_probe = None;
            }
        }
        // For the congestion controller only (HyStart++ needs several RTT
        // samples per round; the RTO estimator keeps its one timed segment
        // per round trip): RFC 7323 §4.1 RTTM from the echoed timestamp of
        // an ACK that acknowledges new data, in milliseconds.
        if let (None, Some(_), Some(ecr)) = (rtt, self.ts, ts_ecr) {
            let d = self.ts_val(now).wrapping_sub(ecr);
            if (d as i32) >= 0 && self.retries == 0 {
                rtt = Some(Duration::from_millis(d as u64));
            }
        }
        self.retries = 0;
        if self.snd_una == self.snd_max {
            self.timers.stop(Timer::Rto);
            self.unacked_since = None;
        } else {
            self.unacked_since = Some(now);
            self.timers.set(Timer::Rto, self.rto_deadline(now));
        }
        self.info.bytes_acked += acked as u64;
        self.recovery_on_new_ack(now, ack, acked, rtt);
    }

    /// Reports `[l, r)`, received twice, as a D-SACK block in the next
    /// ACK (RFC 2883), when SACK is in use.
    fn note_dsack(&mut self, l: SeqNumber, r: SeqNumber) {
        if self.sack_ok && l < r {
            self.dsack_pending = Some((l, r));
            self.ack_now = true;
        }
    }

    /// Takes in-window text starting at `seq` and a FIN after it.
    pub(crate) fn accept_text(
        &mut self,
        now: Instant,
        seq: SeqNumber,
        payload: &[u8],
        fin: bool,
        pool: &mut BufferPool,
    ) {
        if !payload.is_empty() {
            if self.orphaned {
                // Data for an application that has closed: reset (Linux).
                self.rst_pending = true;
                return;
            }
            let off = (seq - self.rcv_nxt).max(0) as usize;
            let had_holes = self.recv_buf.has_out_of_order();
            if self.sack_ok && had_holes {
                // A copy of out-of-order data already held (RFC 2883
                // §4.1.2): the first overlap is reported.
                let end = off + payload.len();
                let dup = self
                    .recv_buf
                    .out_of_order_ranges()
                    .map(|(s, e)| (s.max(off), e.min(end)))
                    .find(|(s, e)| s < e);
                if let Some((s, e)) = dup {
                    self.note_dsack(self.rcv_nxt + s, self.rcv_nxt + e);
                }
            }
            let out = self.recv_buf.write_at(off, payload, pool);
            if out.advanced > 0 {
                self.last_data_at = Some(now);
                self.rcv_nxt += out.advanced;
                self.info.bytes_received += out.advanced as u64;
                if self.read_closed {
                    // shutdown(Read): acknowledged and discarded.
                    self.recv_buf.consume(self.recv_buf.readable(), pool);
                }
            }
            if off > 0 || had_holes || out.accepted < payload.len() {
                // Out of order, filling a hole, or beyond the window: ACK
                // at once (RFC 5681 §4.2).
                self.ack_now = true;
            } else {
                // Full-sized segments, not frames: a GRO super-segment from
                // an offloading device holds many and is ACKed at once, as
                // Linux ACKs more than one full frame's worth (a 40 ms
                // delayed ACK behind every other 64 KiB would stall the
                // sender).
                let full = (self.our_mss as usize).saturating_sub(40).max(1);
                self.segs_unacked += (payload.len() / full).max(1) as u32;
                if self.segs_unacked >= 2 {
                    self.ack_now = true;
                } else if !self.timers.is_set(Timer::DelAck) {
                    self.timers
                        .set(Timer::DelAck, now + self.config.delayed_ack);
                }
            }
        }
        if fin {
            self.fin_pending = Some(seq + payload.len());
        }
        if self.fin_pending == Some(self.rcv_nxt) && !self.fin_received {
            self.fin_pending = None;
            self.receive_fin(now);
        }
    }

    fn receive_fin(&mut self, now: Instant) {
        self.rcv_nxt += 1;
        self.fin_received = true;
        match self.state {
            State::Established if self.pingpong && !self.ack_now => {
                // The application's FIN usually follows at once and will
                // carry the ACK (three segments to close instead of four, as
                // Linux in pingpong mode); if it does not, the ACK goes when
                // the delayed-ACK timer fires.
                let at = now + self.config.delayed_ack;
                self.timers.set(
                    Timer::DelAck,
                    self.timers.get(Timer::DelAck).map_or(at, |t| t.min(at)),
                );
                self.set_state(State::CloseWait);
                return;
            }
            _ => {}
        }
        self.ack_now = true;
        match self.state {
            State::SynReceived | State::Established => self.set_state(State::CloseWait),
            State::FinWait1 => {
                if self.fin_seq.is_some_and(|f| self.snd_una > f) {
                    self.enter_time_wait(now);
                } else {
                    self.set_state(State::Closing);
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    fn process_time_wait(&mut self, now: Instant, seg: &tcp::Repr) -> Option<RstReply> {
        let f = seg.flags;
        // RFC 1337: RSTs are ignored in TIME-WAIT.
        if f.rst() {
            return None;
        }
        if f.fin() {
            // A retransmitted FIN restarts 2 MSL (§3.10.7.4, eighth check).
            self.timers.set(Timer::TimeWait, now + 2 * self.config.msl);
        }
        // First check: an unacceptable segment (an old duplicate, or the
        // peer's retransmitted FIN) is answered with an ACK.
        if !self.acceptable(seg, self.rcv_wnd_advertised()) {
            self.ack_now = true;
            return None;
        }
        // Fourth check: a SYN in the window (RFC 5961 §4 or RFC 793).
        if f.syn() {
            if !self.config.rfc5961_syn {
                let reply = RstReply {
                    seq: self.snd_nxt,
                    ack: Some(self.rcv_nxt),
                };
                self.enter_closed();
                return Some(reply);
            }
            self.challenge_ack(now);
            return None;
        }
        // Fifth check: no ACK bit, drop.
        if !f.ack() {
            return None;
        }
        // Only a bare ACK at RCV.NXT is absorbed silently; any other
        // segment (a FIN, text, or a sequence number past RCV.NXT) is
        // answered with an ACK, as Linux (`tcp_timewait_state_process`).
        if f.fin() || !seg.payload.is_empty() || SeqNumber(seg.seq_number) != self.rcv_nxt {
            self.ack_now = true;
        }
        None
    }
}
