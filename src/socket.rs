//! The socket table of an interface: a slab of sockets addressed by
//! generation-checked handles, so a stale handle never reaches a reused slot.

use crate::tcp::{Listener, TcpConn};
use crate::udp::UdpSocket;

/// Names a socket of an [`crate::iface::Interface`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle {
    index: u32,
    generation: u32,
}

impl SocketHandle {
    /// The slot index (unique among live sockets).
    pub fn index(&self) -> usize {
        self.index as usize
    }
}

/// A socket of any kind.
#[derive(Debug)]
pub enum Socket {
    /// A UDP socket.
    Udp(UdpSocket),
    /// A TCP connection.
    Tcp(Box<TcpConn>),
    /// A TCP listener.
    TcpListener(Box<Listener>),
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    socket: Option<Socket>,
    /// An event for this socket is queued in `events`.
    marked: bool,
}

/// The table.
#[derive(Debug, Default)]
pub struct SocketSet {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    events: Vec<SocketHandle>,
}

impl SocketSet {
    /// An empty table.
    pub fn new() -> SocketSet {
        SocketSet::default()
    }

    /// Adds a socket.
    pub fn insert(&mut self, socket: Socket) -> SocketHandle {
        self.live += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1);
            slot.socket = Some(socket);
            slot.marked = false;
            return SocketHandle {
                index,
                generation: slot.generation,
            };
        }
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 0,
            socket: Some(socket),
            marked: false,
        });
        SocketHandle {
            index,
            generation: 0,
        }
    }

    /// Removes a socket; `None` when the handle is stale.
    pub fn remove(&mut self, h: SocketHandle) -> Option<Socket> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        let s = slot.socket.take()?;
        self.free.push(h.index);
        self.live -= 1;
        Some(s)
    }

    /// The socket behind `h`.
    pub fn get(&self, h: SocketHandle) -> Option<&Socket> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.socket.as_ref()
    }

    /// The socket behind `h`, mutable.
    pub fn get_mut(&mut self, h: SocketHandle) -> Option<&mut Socket> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.socket.as_mut()
    }

    /// Records that `h`'s readiness changed (once until drained).
    pub fn notify(&mut self, h: SocketHandle) {
        if let Some(slot) = self.slots.get_mut(h.index as usize) {
            if slot.generation == h.generation && slot.socket.is_some() && !slot.marked {
                slot.marked = true;
                self.events.push(h);
            }
        }
    }

    /// Moves the recorded events into `out`. Bounded by the live sockets.
    pub fn drain_events(&mut self, out: &mut Vec<SocketHandle>) {
        for h in self.events.drain(..) {
            if let Some(slot) = self.slots.get_mut(h.index as usize) {
                slot.marked = false;
            }
            out.push(h);
        }
    }

    /// Takes the socket out of its slot, keeping the slot (and handle)
    /// reserved until [`SocketSet::put_back`].
    pub(crate) fn take(&mut self, h: SocketHandle) -> Option<Socket> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.socket.take()
    }

    /// Returns a socket taken with [`SocketSet::take`].
    pub(crate) fn put_back(&mut self, h: SocketHandle, s: Socket) {
        if let Some(slot) = self.slots.get_mut(h.index as usize) {
            if slot.generation == h.generation && slot.socket.is_none() {
                slot.socket = Some(s);
            }
        }
    }

    /// Live sockets.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// All live sockets with their handles.
    pub fn iter(&self) -> impl Iterator<Item = (SocketHandle, &Socket)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.socket.as_ref().map(|sock| {
                (
                    SocketHandle {
                        index: i as u32,
                        generation: s.generation,
                    },
                    sock,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::UdpConfig;

    #[test]
    fn stale_handles_miss() {
        let mut set = SocketSet::new();
        let sock = || {
            Socket::Udp(UdpSocket::new(
                "0.0.0.0:1".parse().unwrap(),
                UdpConfig::default(),
            ))
        };
        let a = set.insert(sock());
        assert!(set.remove(a).is_some());
        let b = set.insert(sock());
        assert_eq!(a.index(), b.index());
        assert!(set.get(a).is_none());
        assert!(set.get(b).is_some());
        assert!(set.remove(a).is_none());
        assert_eq!(set.len(), 1);
    }
}
