//! Task wakers beside the blocking API's condition variables: how the stack
//! thread wakes async sockets (`crate::net::tokio`).
//!
//! A socket handle that has async waiters has a [`SocketWakers`] entry in
//! `Core::wakers`, one list per direction. A task registers its waker with
//! [`register`] under the core's lock, right after the operation it tried
//! said `WouldBlock`; the stack thread, under the same lock, looks at each
//! socket whose readiness may have changed ([`take_ready`]) and takes the
//! wakers of the directions that are now ready, then wakes them after
//! unlocking. Because the check and the registration happen under one lock,
//! a wake-up cannot fall between them.
//!
//! A direction's wakers are taken only when that direction is ready: a
//! reader is not woken by ACKs that only make room for a writer, and a
//! writer waits until a third of its send buffer is free again (as Linux's
//! `sk_stream_write_space` does), not for every ACK.

use std::collections::HashMap;
use std::task::Waker;

use crate::iface::Interface;
use crate::socket::{Socket, SocketHandle};
use crate::tcp::State;

/// Which way a task waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Readable data, end of stream, an error, or (listener) a connection
    /// to accept.
    Read,
    /// Room to write, the handshake finished, or an error.
    Write,
}

/// The wakers waiting on one socket.
#[derive(Debug, Default)]
pub(crate) struct SocketWakers {
    read: Vec<Waker>,
    write: Vec<Waker>,
}

/// Adds `waker` to `h`'s waiters for `dir` (once per task: a waker that
/// would wake the same task replaces the old one, so the old one is not
/// the task's last and dropping it under the lock runs no task code).
/// Wakers that leave the table otherwise are dropped or woken only after
/// the lock is released.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn register(
    wakers: &mut HashMap<SocketHandle, SocketWakers>,
    h: SocketHandle,
    dir: Direction,
    waker: &Waker,
) {
    let w = wakers.entry(h).or_default();
    let list = match dir {
        Direction::Read => &mut w.read,
        Direction::Write => &mut w.write,
    };
    match list.iter_mut().find(|x| x.will_wake(waker)) {
        Some(x) => x.clone_from(waker),
        None => list.push(waker.clone()),
    }
}

/// Moves the wakers of `h` whose direction is ready into `out`.
pub(crate) fn take_ready(
    wakers: &mut HashMap<SocketHandle, SocketWakers>,
    iface: &Interface,
    h: SocketHandle,
    out: &mut Vec<Waker>,
) {
    if wakers.is_empty() {
        return;
    }
    let Some(w) = wakers.get_mut(&h) else {
        return;
    };
    let (readable, writable) = readiness(iface, h);
    if readable {
        out.append(&mut w.read);
    }
    if writable {
        out.append(&mut w.write);
    }
    if w.read.is_empty() && w.write.is_empty() {
        wakers.remove(&h);
    }
}

/// Every waker, for when the stack stops.
pub(crate) fn take_all(wakers: &mut HashMap<SocketHandle, SocketWakers>, out: &mut Vec<Waker>) {
    for (_, mut w) in wakers.drain() {
        out.append(&mut w.read);
        out.append(&mut w.write);
    }
}

/// Whether a waiter on `h` should be woken: (read side, write side). A
/// socket that is gone is ready both ways (its waiters then see the error).
pub(crate) fn readiness(iface: &Interface, h: SocketHandle) -> (bool, bool) {
    match iface.sockets.get(h) {
        Some(Socket::Tcp(c)) if !c.released => {
            let t = &c.tcb;
            let readable = t.can_recv();
            let writable = t.error.is_some()
                || match t.state {
                    // Connecting: the write side waits for the handshake.
                    State::SynSent | State::SynReceived => false,
                    State::Established | State::CloseWait if !t.fin_queued => {
                        let free = t.send_buf.free();
                        free > 0 && free >= t.send_buf.capacity() / 3
                    }
                    // Closed or shut down for writing: the write fails now.
                    _ => true,
                };
            (readable, writable)
        }
        Some(Socket::TcpListener(l)) => (!l.accept_queue.is_empty() || l.closed, false),
        Some(Socket::Udp(s)) if !s.closed => (s.can_recv(), s.error.is_some() || s.can_send(1472)),
        _ => (true, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::iface::{Config, Interface};
    use crate::link::Medium;
    use crate::time::Instant;

    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn iface() -> Interface {
        let mut c = Config::new(Medium::Ip);
        c.addrs.push("10.9.0.2/24".parse().unwrap());
        Interface::new(c, Instant::ZERO)
    }

    #[test]
    fn one_entry_per_task_and_only_ready_directions_are_taken() {
        let mut iface = iface();
        let h = iface.udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
        let (a, b) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let mut map = HashMap::new();
        register(&mut map, h, Direction::Read, &wa);
        register(&mut map, h, Direction::Read, &wa.clone());
        register(&mut map, h, Direction::Read, &wb);
        register(&mut map, h, Direction::Write, &wa);
        assert_eq!(map[&h].read.len(), 2, "the same task twice is one entry");
        // Nothing to read, room to send: only the writer is taken.
        let mut out = Vec::new();
        take_ready(&mut map, &iface, h, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].will_wake(&wa));
        assert_eq!(map[&h].read.len(), 2);
        assert!(map[&h].write.is_empty());
        // The socket gone: everyone is taken, the entry removed.
        iface.udp_close(h).unwrap();
        out.clear();
        take_ready(&mut map, &iface, h, &mut out);
        assert_eq!(out.len(), 2);
        assert!(map.is_empty());
        out.into_iter().for_each(Waker::wake);
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
    }
}
