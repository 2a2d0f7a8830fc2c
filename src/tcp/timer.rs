//! The connection's deadlines, one table keyed by [`Timer`] (as
//! quinn-proto's `TimerTable`): set, stop, read, and the earliest one due.
//!
//! Timers fire in [`Tcb::handle_timeout`](super::Tcb), which the interface
//! runs before it lets the connection transmit; `poll_at` is the table's
//! earliest deadline plus what is not a timer (work waiting now, the pacer).

use crate::time::Instant;

/// One of the connection's deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission timeout (RFC 6298), also the handshake's.
    Rto,
    /// The tail loss probe timeout (RFC 8985 §7.2).
    Tlp,
    /// RACK's reordering window (RFC 8985 §6.3).
    ReoWnd,
    /// The zero-window probe (RFC 9293 §3.8.6.1).
    Persist,
    /// The next keep-alive probe (RFC 1122 §4.2.3.6).
    Keepalive,
    /// The delayed ACK (RFC 1122 §4.2.3.2).
    DelAck,
    /// 2×MSL in TIME-WAIT.
    TimeWait,
    /// An orphaned connection's limit in FIN-WAIT-2.
    FinWait2,
    /// When the pacer lets the next data segment go. Not a deadline that
    /// fires: it gates sending while data waits (see [`TimerTable::next_timeout`]).
    Pacing,
}

impl Timer {
    const COUNT: usize = 9;

    #[cfg(test)]
    const ALL: [Timer; Timer::COUNT] = [
        Timer::Rto,
        Timer::Tlp,
        Timer::ReoWnd,
        Timer::Persist,
        Timer::Keepalive,
        Timer::DelAck,
        Timer::TimeWait,
        Timer::FinWait2,
        Timer::Pacing,
    ];
}

/// The deadlines, one slot per [`Timer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    at: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arms `timer` for `at` (replacing its earlier deadline).
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    /// Disarms every timer in `timers`.
    pub(crate) fn stop_all(&mut self, timers: &[Timer]) {
        for &t in timers {
            self.stop(t);
        }
    }

    /// The deadline of `timer`, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    /// True when `timer` is armed.
    pub(crate) fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// True when `timer` is armed and due at `now`.
    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// Disarms `timer` if it is due at `now`; true when it was.
    pub(crate) fn take_expired(&mut self, timer: Timer, now: Instant) -> bool {
        let due = self.is_expired(timer, now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest deadline among the timers that fire (every slot but
    /// [`Timer::Pacing`]'s, which is the last).
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        const _: () = assert!(Timer::Pacing as usize + 1 == Timer::COUNT);
        self.at[..Timer::Pacing as usize]
            .iter()
            .flatten()
            .min()
            .copied()
    }
}

/// Probes that timers which fired leave for the next transmission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fired {
    /// The persist timer fired: send what fits, else probe the window.
    pub persist: bool,
    /// A keep-alive probe is due.
    pub keepalive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn ms(n: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(n)
    }

    #[test]
    fn set_stop_get_and_the_earliest_firing_deadline() {
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Rto, ms(300));
        t.set(Timer::DelAck, ms(40));
        t.set(Timer::Pacing, ms(1)); // gates sending; never "next"
        assert_eq!(t.get(Timer::Rto), Some(ms(300)));
        assert_eq!(t.next_timeout(), Some(ms(40)));
        assert!(t.is_expired(Timer::DelAck, ms(40)));
        assert!(!t.is_expired(Timer::Rto, ms(299)));
        assert!(t.take_expired(Timer::DelAck, ms(50)));
        assert!(!t.is_set(Timer::DelAck));
        assert!(!t.take_expired(Timer::Rto, ms(50)));
        assert_eq!(t.next_timeout(), Some(ms(300)));
        t.stop_all(&[Timer::Rto, Timer::Pacing]);
        assert_eq!(t, TimerTable::default());
    }

    #[test]
    fn every_timer_has_its_own_slot() {
        let mut t = TimerTable::default();
        for (i, &k) in Timer::ALL.iter().enumerate() {
            t.set(k, ms(i as u64));
        }
        for (i, &k) in Timer::ALL.iter().enumerate() {
            assert_eq!(t.get(k), Some(ms(i as u64)), "{k:?}");
        }
    }
}
