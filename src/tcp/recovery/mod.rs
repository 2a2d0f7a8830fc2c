//! Loss recovery: what is lost, what to retransmit next, how much may be
//! sent meanwhile.
//!
//! * [`sent`]: the transmit records of the data in flight.
//! * [`scoreboard`]: the sender's SACK scoreboard (RFC 6675 §3) and the
//!   D-SACK-based undo.
//! * [`rack`]: RACK-TLP loss detection (RFC 8985).
//! * [`prr`]: Proportional Rate Reduction (RFC 6937).
//!
//! Nothing here knows the connection: it works on the values the
//! connection passes in. The connection's side (when to enter and leave
//! recovery, NewReno without SACK, RFC 6675 with it) is `tcp/loss.rs`.

pub(crate) mod prr;
pub(crate) mod rack;
pub(crate) mod scoreboard;
pub(crate) mod sent;

use self::prr::Prr;
use self::rack::{Rack, Tlp};
use self::scoreboard::Scoreboard;
use self::sent::{SegQueue, TxSeg};
use crate::tcp::seq::SeqNumber;

/// DupThresh (RFC 6675; RFC 8985 §6.2 uses it too, to keep the reordering
/// window at zero before reordering has been seen).
pub(crate) const DUP_THRESH: usize = 3;

/// Undo of a window reduction that D-SACKs show was spurious (RFC 3708's
/// D-SACK detection; Linux's `undo_marker` / `undo_retrans`): every
/// segment retransmitted since the reduction was also delivered the first
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Undo {
    /// snd_una at the reduction: D-SACKs below it are about older data.
    pub marker: SeqNumber,
    /// Retransmitted segments not (yet) D-SACKed.
    pub retrans: u32,
    /// Retransmissions were made.
    pub any: bool,
}

/// A hole the SACK strategy wants retransmitted: where it starts, its
/// longest length (the connection cuts one segment from it), and whether
/// it is RFC 6675's rescue retransmission (NextSeg() rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hole {
    pub seq: SeqNumber,
    pub max: usize,
    pub rescue: bool,
}

/// What a duplicate ACK calls for (the strategy decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DupAck {
    Nothing,
    /// NewReno recovery: one more segment left the network (RFC 5681
    /// window inflation).
    Inflate,
    /// The fast retransmit: recovery begins.
    EnterRecovery,
}

/// A retransmission the SACK recovery wants to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rexmit {
    pub seq: SeqNumber,
    pub len: usize,
    pub fin: bool,
    /// NextSeg() rule 4 (the rescue retransmission).
    pub rescue: bool,
}

/// How losses are found and repaired, chosen once when the handshake
/// settles SACK (as gVisor's `lossRecovery`: `reno_recovery.go`,
/// `sack_recovery.go`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// No SACK: NewReno (RFC 5681, RFC 6582). Three duplicate ACKs start
    /// fast recovery, which inflates the window per duplicate ACK and
    /// resends the segment at snd_una on each partial ACK.
    #[default]
    NewReno,
    /// SACK (RFC 6675): the scoreboard's IsLost, `pipe` and NextSeg(),
    /// with Proportional Rate Reduction and undo by D-SACK. With `rack`,
    /// RACK-TLP (RFC 8985) decides by time what is lost, and probes tails.
    Sack { rack: bool },
}

impl Strategy {
    /// The strategy for a connection that agreed SACK (`sack`) and is
    /// configured for RACK-TLP (`rack`).
    pub(crate) fn choose(sack: bool, rack: bool) -> Strategy {
        if sack {
            Strategy::Sack { rack }
        } else {
            Strategy::NewReno
        }
    }

    /// RACK-TLP decides loss.
    pub(crate) fn rack(self) -> bool {
        self == Strategy::Sack { rack: true }
    }
}

/// One connection's loss-recovery state: the transmit records, the
/// scoreboard, RACK-TLP, and the recovery episode with its PRR and undo.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recovery {
    /// NewReno or SACK-based, chosen at the handshake.
    pub(crate) strategy: Strategy,
    /// Duplicate ACKs in a row (RFC 5681; NewReno without SACK).
    pub(crate) dup_acks: u32,
    /// In fast recovery until this is acknowledged (RFC 6582 `recover`).
    pub(crate) recover: Option<SeqNumber>,
    /// `recover` of the last fast recovery (RFC 6582 §3.2 step 1).
    pub(crate) last_recover: Option<SeqNumber>,
    /// Retransmit the segment at snd_una now (fast retransmit / partial ACK).
    pub(crate) retransmit_one: bool,
    /// The SACK scoreboard (RFC 6675), used when SACK was agreed.
    pub(crate) sack: Scoreboard,
    /// Transmit records of the data in flight, for RACK and the rate
    /// sampler (whether one is SACKed, the scoreboard says).
    pub(crate) segs: SegQueue,
    pub(crate) rack: Rack,
    pub(crate) tlp: Tlp,
    /// Proportional Rate Reduction, during SACK recovery.
    pub(crate) prr: Option<Prr>,
    /// Undo of the last window reduction (D-SACK).
    pub(crate) undo: Option<Undo>,
    /// Reused for the records a SACK block covers (no allocation per ACK).
    fresh: Vec<usize>,
}

impl Recovery {
    /// The handshake settled SACK (`sack`); RACK-TLP is configured
    /// (`rack`).
    pub(crate) fn choose(&mut self, sack: bool, rack: bool) {
        self.strategy = Strategy::choose(sack, rack);
        self.sack.rack = self.strategy.rack();
    }

    /// A duplicate ACK arrived with snd_una `una`. NewReno inflates the
    /// window in recovery and starts it on the third (RFC 6582 §3.2 step
    /// 1: not for losses of the last one); the SACK strategy counts
    /// `pipe` instead of inflating, and with RACK decides by time, not by
    /// counting (RFC 8985 §6).
    pub(crate) fn on_dup_ack(&mut self, una: SeqNumber) -> DupAck {
        self.dup_acks += 1;
        let third = self.dup_acks == 3;
        let start = match self.strategy {
            Strategy::NewReno if self.recover.is_some() => {
                return if self.dup_acks > 3 {
                    DupAck::Inflate
                } else {
                    DupAck::Nothing
                };
            }
            Strategy::NewReno => third && self.last_recover.is_none_or(|r| una > r),
            Strategy::Sack { rack } => {
                self.recover.is_none() && !rack && third && self.sack_fresh(una)
            }
        };
        if start {
            DupAck::EnterRecovery
        } else {
            DupAck::Nothing
        }
    }

    /// A partial ACK in recovery. NewReno: the next hole is lost too, and
    /// is resent at once (RFC 6582 §3.2 step 5); returns true, the window
    /// deflates. RFC 6675 needs nothing special, NextSeg() finds the next
    /// hole from the scoreboard, and no deflation either (see
    /// `Tcb::recovery_cwnd`).
    pub(crate) fn on_partial_ack(&mut self) -> bool {
        let newreno = self.strategy == Strategy::NewReno;
        self.retransmit_one |= newreno;
        newreno
    }

    /// A recovery episode begins with `in_flight` bytes out, after the
    /// controller set `ssthresh`. The SACK strategy sends under PRR (RFC
    /// 6937), until the next ACK the fast retransmit only; a tail loss
    /// probe out is recovery's to repair now; without RACK the holes may
    /// be resent again (with RACK a retransmission stays marked until
    /// RACK finds it lost again, a TLP's among them).
    pub(crate) fn begin_episode(
        &mut self,
        in_flight: usize,
        ssthresh: usize,
        una: SeqNumber,
        max: SeqNumber,
        smss: usize,
    ) {
        if let Strategy::Sack { .. } = self.strategy {
            let mut prr = Prr::new(in_flight, ssthresh, smss);
            prr.on_ack(0, self.sack.pipe(una, max, smss));
            self.prr = Some(prr);
        }
        self.tlp.end_seq = None;
        if !self.strategy.rack() {
            self.sack.clear_retransmitted();
        }
    }

    /// Whether a new SACK recovery may begin at snd_una `una` (RFC 6675
    /// §5.1: once HighACK ≥ the previous RecoveryPoint).
    pub(crate) fn sack_fresh(&self, una: SeqNumber) -> bool {
        self.last_recover.is_none_or(|r| una >= r)
    }

    /// In RFC 6675 loss recovery (the SACK strategy, in fast recovery).
    pub(crate) fn sack_recovery(&self) -> bool {
        matches!(self.strategy, Strategy::Sack { .. }) && self.recover.is_some()
    }

    /// The scoreboard's IsLost (DupThresh SACKed segments above the
    /// hole, RFC 6675) may start recovery: with SACK, unless RACK decides
    /// by time alone (it lets DupThresh count too while it has seen no
    /// reordering: `Scoreboard::dupthresh`).
    pub(crate) fn scoreboard_decides_loss(&self) -> bool {
        match self.strategy {
            Strategy::NewReno => false,
            Strategy::Sack { rack } => !rack || self.sack.dupthresh,
        }
    }
}

impl Recovery {
    /// What an ACK reports delivered: its SACK `blocks` (without a D-SACK
    /// block) and the cumulative ACK `una` (the larger of snd_una and the
    /// ACK), with `max` snd_max. The scoreboard takes the blocks, and is
    /// the one record of what is SACKed; `delivered` gets the RACK state
    /// and each transmit record SACKed by this ACK (`true`), then each
    /// record below `una` that was not SACKed before (`false`), in that
    /// order. A record only partly SACKed (a split the bound on records
    /// skipped) counts as not SACKed. Returns true when something new was
    /// SACKed.
    pub(crate) fn on_ack(
        &mut self,
        blocks: &[(u32, u32)],
        una: SeqNumber,
        max: SeqNumber,
        mut delivered: impl FnMut(&mut Rack, &TxSeg, bool),
    ) -> bool {
        let below = self.sack.prune(una);
        let mut new = false;
        for (l, r) in Scoreboard::in_window(blocks, una, max) {
            let sacked = self.sack.sacked();
            if sacked.covers(l, r) {
                continue;
            }
            self.segs
                .sack_candidates(l, r, |s, e| sacked.covers(s, e), &mut self.fresh);
            new |= self.sack.add(l, r);
            let sacked = self.sack.sacked();
            let rack = &mut self.rack;
            self.segs.sacked_now(
                &self.fresh,
                |s, e| sacked.covers(s, e),
                |seg| delivered(rack, seg, true),
            );
        }
        let rack = &mut self.rack;
        self.segs.ack(
            una,
            |s, e| below.covers(s, e),
            |seg| delivered(rack, seg, false),
        );
        new
    }

    /// Transmit records SACKed now (RFC 8985 `RACK.segs_sacked`), counted
    /// from the scoreboard's ranges.
    pub(crate) fn segs_sacked(&self) -> usize {
        self.sack
            .sacked()
            .ranges()
            .iter()
            .map(|&(s, e)| self.segs.count_within(s, e))
            .sum()
    }

    /// Whether the whole record `seg` is SACKed.
    pub(crate) fn is_sacked(&self, seg: &TxSeg) -> bool {
        self.sack.sacked().covers(seg.start, seg.end)
    }
}

/// The SACK strategy's choice of what to retransmit (RFC 6675 NextSeg(),
/// with RACK-TLP's loss marks when RACK is on), relative to snd_una `una`,
/// snd_max `max` and the segment size `smss`.
impl Recovery {
    /// RFC 6675 NextSeg() rule 1: a lost hole not yet retransmitted (with
    /// RACK, one it marked lost).
    pub(crate) fn lost_hole(&self, una: SeqNumber, smss: usize) -> Option<Hole> {
        let (seq, max) = self.sack.next_hole(una, smss, true)?;
        Some(Hole {
            seq,
            max,
            rescue: false,
        })
    }

    /// The fast retransmit with RACK (RFC 8985 §6.2): the first range it
    /// marked lost, before the hole at snd_una (RFC 6675 §5 step 4.3).
    pub(crate) fn first_lost_hole(&self, una: SeqNumber, smss: usize) -> Option<Hole> {
        self.strategy
            .rack()
            .then(|| self.lost_hole(una, smss))
            .flatten()
    }

    /// NextSeg() rules 3 and 4, for when neither a lost hole nor new data
    /// can be sent: any hole below the highest SACK not yet retransmitted,
    /// else once per recovery the segment holding the highest outstanding
    /// unSACKed byte (the rescue retransmission).
    ///
    /// Not with RACK: a hole it has not marked lost may be reordering, and
    /// its timer, not a guess, decides (a tail is the TLP's business).
    pub(crate) fn other_hole(&self, una: SeqNumber, max: SeqNumber, smss: usize) -> Option<Hole> {
        if self.strategy.rack() {
            return None;
        }
        if let Some((seq, max)) = self.sack.next_hole(una, smss, false) {
            return Some(Hole {
                seq,
                max,
                rescue: false,
            });
        }
        self.recover?;
        if self.sack.rescue.is_some_and(|r| una <= r) {
            return None;
        }
        let (s, e) = self.sack.last_hole(una, max)?;
        let start = if (e - s) as usize > smss { e - smss } else { s };
        Some(Hole {
            seq: start,
            max: (e - start) as usize,
            rescue: true,
        })
    }
}
