//! Path MTU discovery, the connection's part (RFC 1191 for IPv4, RFC 8201
//! for IPv6, validated as RFC 5927 asks): a "fragmentation needed" or
//! "packet too big" the interface has matched to this connection lowers
//! the path MTU, the send MSS shrinks with it, and the segments in flight
//! that no longer fit are sent again at the new size.
//!
//! As Linux's `tcp_simple_retransmit`, this is not a congestion event: the
//! oversized segments were dropped for their size, not for congestion, so
//! the congestion window (in bytes) is left as it is and no recovery
//! starts. The send path cuts every segment, first transmission or
//! retransmission, from the send buffer by sequence number
//! ([`Tcb::payload_room`]), so re-segmenting needs no more than rewinding
//! `snd_nxt` to the first segment that was too big.
//!
//! The interface does the rest: it checks the quoted sequence number
//! ([`Tcb::seq_in_flight`]), applies the floor (IPv4 552, Linux's
//! `min_pmtu`; IPv6 1280), counts what it ignores, and keeps the
//! per-destination cache that new connections start from.

use super::recovery::rack::Tlp;
use super::seq::SeqNumber;
use super::tcb::{State, Tcb};
use super::timer::Timer;
use crate::time::Instant;

/// TCP header without options.
const TCP_HEADER: usize = 20;

impl Tcb {
    /// IP and TCP header bytes of a segment without options.
    fn header_overhead(&self) -> usize {
        let ip = if self.remote.is_ipv6() { 40 } else { 20 };
        ip + TCP_HEADER
    }

    /// The largest segment (payload and options) the path MTU allows.
    pub(crate) fn pmtu_mss(&self) -> usize {
        self.pmtu.saturating_sub(self.header_overhead()).max(64)
    }

    /// RFC 5927 §4.1/§5.2: an ICMP error is about this connection only if
    /// the sequence number it quotes is one we sent and is still
    /// unacknowledged (`SND.UNA <= seq < SND.MAX`; `SND.MAX`, not
    /// `SND.NXT`, which a retransmission timeout rewinds).
    pub(crate) fn seq_in_flight(&self, seq: SeqNumber) -> bool {
        seq >= self.snd_una && seq < self.snd_max.max(self.snd_una + 1)
    }

    /// The path MTU is `mtu` now (the interface checked it is smaller than
    /// [`Tcb::pmtu`] and not below the floor). Shrinks the send MSS and
    /// rewinds `snd_nxt` to the first segment in flight that no longer
    /// fits. Returns true when something is to be sent again.
    pub(crate) fn on_packet_too_big(&mut self, now: Instant, mtu: usize) -> bool {
        if mtu >= self.pmtu {
            return false;
        }
        self.pmtu = mtu;
        let old = self.data_mss();
        self.smss = self.smss.min(self.pmtu_mss());
        let mss = self.data_mss();
        tracing::debug!(
            target: "ustack::tcp::pmtu",
            local = %self.local,
            remote = %self.remote,
            pmtu = mtu,
            old_mss = old,
            mss,
            "tcp path MTU lowered"
        );
        if mss >= old {
            return false;
        }
        self.cc.set_mss(mss);
        self.simple_retransmit(now, mss)
    }

    /// Linux's `tcp_simple_retransmit`: the segments in flight larger than
    /// `mss` were dropped for their size; send them again, re-cut, at once,
    /// without touching the congestion window.
    fn simple_retransmit(&mut self, now: Instant, mss: usize) -> bool {
        if !self.state.is_synchronized() || matches!(self.state, State::TimeWait) {
            return false;
        }
        let oversized = self
            .rec
            .segs
            .iter()
            .find(|r| !self.rec.is_sacked(r) && (r.end - r.start).max(0) as usize > mss)
            .map(|r| r.start.max(self.snd_una));
        let Some(first) = oversized else {
            return false;
        };
        // In recovery (or after an RTO) segments below the first oversized
        // one may be marked lost too; go back to snd_una then, as an RTO
        // does, so the marks can be forgotten without forgetting data.
        let start = if self.rec.recover.is_some() || self.retries > 0 {
            self.snd_una
        } else {
            first
        };
        if self.rec.recover.is_some() {
            // The reduction that recovery began for a real loss stands;
            // the rest is go-back-N at the new size (Linux moves from
            // Recovery to Loss here).
            let ssthresh = self.cc.ssthresh();
            self.cc.on_exit_recovery(now, ssthresh);
            self.rec.recover = None;
            self.rec.prr = None;
            self.rec.rack.on_exit_recovery();
        }
        self.rtt_probe = None; // Karn: the timed segment may be resent
        self.timers.stop(Timer::ReoWnd);
        self.timers.stop(Timer::Tlp);
        self.rec.tlp = Tlp::default();
        self.rec.sack.clear_lost();
        self.rec.sack.clear_retransmitted();
        self.rec.segs.on_rto();
        self.rec.dup_acks = 0;
        self.rec.retransmit_one = false;
        // No undo: these retransmissions say nothing about congestion.
        self.rec.undo = None;
        if start < self.snd_nxt {
            self.snd_nxt = start;
        }
        true
    }
}
