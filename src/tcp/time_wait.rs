//! TIME-WAIT (RFC 9293 §3.10.7.4, RFC 1337, RFC 6191) for connections the
//! application has let go of: a compact entry (no buffers, no controller)
//! in a bounded table, instead of a whole connection.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::seq::SeqNumber;
use super::tcb::Tcb;
use super::timer::Timer;
use crate::time::{Duration, Instant};
use crate::wire::tcp;

/// What a TIME-WAIT entry remembers.
#[derive(Debug, Clone, Copy)]
pub struct TimeWaitEntry {
    /// Our next sequence number (after our FIN).
    pub snd_nxt: SeqNumber,
    /// The peer's next sequence number (after its FIN).
    pub rcv_nxt: SeqNumber,
    /// TS.Recent and our timestamp offset, when timestamps were in use.
    pub ts: Option<(u32, u32)>,
    /// The window field of our ACKs.
    pub window: u16,
    /// When the entry expires.
    pub expires: Instant,
}

impl TimeWaitEntry {
    /// The entry for a connection in TIME-WAIT.
    pub fn from_tcb(t: &Tcb, now: Instant) -> TimeWaitEntry {
        TimeWaitEntry {
            snd_nxt: t.snd_nxt,
            rcv_nxt: t.rcv_nxt,
            ts: t.ts.map(|ts| (ts.recent, ts.offset)),
            window: (t.recv_buf.capacity() >> t.rcv_wscale).min(65535) as u16,
            expires: t
                .timers
                .get(Timer::TimeWait)
                .unwrap_or(now + 2 * t.config.msl),
        }
    }

    /// May a new SYN take over this 4-tuple (RFC 6191 with timestamps,
    /// else RFC 9293 §3.6.1's higher sequence number)?
    pub fn may_reuse(&self, syn: &tcp::Repr) -> bool {
        match (self.ts, syn.options.timestamps) {
            (Some((recent, _)), Some((val, _))) => (val.wrapping_sub(recent) as i32) > 0,
            _ => SeqNumber(syn.seq_number) > self.rcv_nxt,
        }
    }

    /// The ACK the entry sends in answer to a segment.
    pub fn ack(&self, local: SocketAddr, remote: SocketAddr, now: Instant) -> tcp::Repr<'static> {
        let options = tcp::Options {
            timestamps: self
                .ts
                .map(|(recent, offset)| ((now.total_millis() as u32).wrapping_add(offset), recent)),
            ..tcp::Options::default()
        };
        tcp::Repr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq_number: self.snd_nxt.0,
            ack_number: self.rcv_nxt.0,
            flags: tcp::Flags::ACK,
            window_len: self.window,
            urgent_at: 0,
            options,
            payload: &[],
        }
    }
}

/// The table: bounded; when full, a connection entering TIME-WAIT is
/// simply closed (Linux: "time wait bucket table overflow").
#[derive(Debug)]
pub struct TimeWaitTable {
    entries: HashMap<(SocketAddr, SocketAddr), TimeWaitEntry>,
    /// Expiry order (entries whose timer restarted are re-queued; stale
    /// queue items are skipped).
    order: VecDeque<(Instant, (SocketAddr, SocketAddr))>,
    limit: usize,
    /// Entries refused because the table was full.
    pub overflows: u64,
}

impl TimeWaitTable {
    /// An empty table of at most `limit` entries.
    pub fn new(limit: usize) -> TimeWaitTable {
        TimeWaitTable {
            entries: HashMap::new(),
            order: VecDeque::new(),
            limit,
            overflows: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds an entry; false (and nothing kept) when the table is full.
    pub fn insert(&mut self, key: (SocketAddr, SocketAddr), e: TimeWaitEntry) -> bool {
        if self.entries.len() >= self.limit && !self.entries.contains_key(&key) {
            self.overflows += 1;
            return false;
        }
        self.order.push_back((e.expires, key));
        self.entries.insert(key, e);
        true
    }

    /// The entry for a 4-tuple.
    pub fn get(&self, key: &(SocketAddr, SocketAddr)) -> Option<&TimeWaitEntry> {
        self.entries.get(key)
    }

    /// Removes an entry (reuse by a new SYN).
    pub fn remove(&mut self, key: &(SocketAddr, SocketAddr)) {
        self.entries.remove(key);
    }

    /// Restarts an entry's 2 MSL (a retransmitted FIN arrived).
    pub fn restart(&mut self, key: &(SocketAddr, SocketAddr), expires: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.expires = expires;
            self.order.push_back((expires, *key));
        }
    }

    /// Drops the entries whose time is up.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(t, key)) = self.order.front() {
            if t > now {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|e| e.expires <= now) {
                self.entries.remove(&key);
            }
        }
        if self.entries.is_empty() {
            self.order.clear();
        }
    }

    /// The next expiry.
    pub fn poll_at(&self) -> Option<Instant> {
        self.order.front().map(|(t, _)| *t)
    }

    /// The 2 MSL restart deadline for `now` given `msl`.
    pub fn deadline(now: Instant, msl: Duration) -> Instant {
        now + 2 * msl
    }
}
