//! UDP sockets of the core (RFC 768): bounded queues, no I/O.
//!
//! The interface owns these; applications reach them through
//! [`crate::iface::Interface`]'s `udp_*` calls (the poll API) or through
//! [`crate::net::UdpSocket`] (the threaded, `std::net`-shaped API).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Largest UDP payload over IPv4 (65535 - 20 - 8).
pub const MAX_PAYLOAD_V4: usize = 65507;

/// Buffer limits of a UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpConfig {
    /// Receive queue limit in payload bytes (Linux default rmem: 212992).
    pub recv_buffer: usize,
    /// Send queue limit in payload bytes.
    pub send_buffer: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            recv_buffer: 212_992,
            send_buffer: 212_992,
        }
    }
}

/// A queued datagram.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub addr: SocketAddr,
    pub data: Vec<u8>,
}

/// A bounded queue of datagrams that recycles its buffers.
#[derive(Debug)]
pub(crate) struct DatagramQueue {
    items: VecDeque<Datagram>,
    bytes: usize,
    limit: usize,
    spare: Vec<Vec<u8>>,
}

impl DatagramQueue {
    pub fn new(limit: usize) -> Self {
        DatagramQueue {
            items: VecDeque::new(),
            bytes: 0,
            limit,
            spare: Vec::new(),
        }
    }

    /// Whether a datagram of `len` bytes fits. An empty queue takes any one
    /// datagram so that a limit below a datagram's size never wedges it.
    pub fn has_room(&self, len: usize) -> bool {
        self.items.is_empty() || self.bytes + len <= self.limit
    }

    pub fn push(&mut self, addr: SocketAddr, payload: &[u8]) -> bool {
        if !self.has_room(payload.len()) {
            return false;
        }
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(payload);
        self.bytes += data.len();
        self.items.push_back(Datagram { addr, data });
        true
    }

    pub fn pop(&mut self) -> Option<Datagram> {
        let d = self.items.pop_front()?;
        self.bytes -= d.data.len();
        Some(d)
    }

    /// Gives a buffer back for reuse (a few are kept, the rest freed).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 8 && buf.capacity() <= 65536 {
            self.spare.push(buf);
        }
    }

    pub fn front(&self) -> Option<&Datagram> {
        self.items.front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(any(test, feature = "replay"))]
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }
}

/// The state of one UDP socket.
#[derive(Debug)]
pub struct UdpSocket {
    pub(crate) local: SocketAddr,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) rx: DatagramQueue,
    pub(crate) tx: DatagramQueue,
    /// An error reported by ICMP, returned once by the next call.
    pub(crate) error: Option<io::ErrorKind>,
    pub(crate) ttl: Option<u8>,
    pub(crate) broadcast: bool,
    /// Closed by the application; lingers only to send what it queued.
    pub(crate) closed: bool,
}

impl UdpSocket {
    pub(crate) fn new(local: SocketAddr, config: UdpConfig) -> UdpSocket {
        UdpSocket {
            local,
            remote: None,
            rx: DatagramQueue::new(config.recv_buffer),
            tx: DatagramQueue::new(config.send_buffer),
            error: None,
            ttl: None,
            broadcast: false,
            closed: false,
        }
    }

    /// The bound address (the IP may be unspecified).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The connected peer, if any.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// True when a datagram (or an error) is waiting.
    pub fn can_recv(&self) -> bool {
        !self.rx.is_empty() || self.error.is_some()
    }

    /// True when the send queue has room for a datagram of `len` bytes.
    pub fn can_send(&self, len: usize) -> bool {
        self.tx.has_room(len)
    }

    /// Datagrams waiting to be read.
    pub fn recv_queue_len(&self) -> usize {
        self.rx.len()
    }

    /// Bytes waiting to be sent.
    pub fn send_queue_bytes(&self) -> usize {
        self.tx.bytes()
    }

    /// Whether a datagram from `src` to `dst` belongs to this socket, and
    /// how well (higher is more specific); `None` when it does not.
    pub(crate) fn match_score(&self, src: SocketAddr, dst: SocketAddr) -> Option<u8> {
        if self.local.port() != dst.port() || self.local.is_ipv4() != dst.is_ipv4() {
            return None; // an IPv4 socket hears no IPv6 datagram, nor the reverse
        }
        let mut score = 0;
        if !self.local.ip().is_unspecified() {
            if self.local.ip() != dst.ip() {
                return None;
            }
            score += 1;
        }
        if let Some(r) = self.remote {
            if r != src {
                return None;
            }
            score += 2;
        }
        Some(score)
    }
}

/// True when `ip` can only be a destination for a broadcast or multicast
/// datagram (no ICMP error may answer such a datagram, RFC 1122 §3.2.2).
pub(crate) fn is_group_addr(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => a.is_multicast(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_bounded_and_recycles() {
        let a: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let mut q = DatagramQueue::new(10);
        assert!(
            q.push(a, &[0; 100]),
            "empty queue takes one oversize datagram"
        );
        assert!(!q.push(a, &[0; 1]));
        let d = q.pop().unwrap();
        q.recycle(d.data);
        assert!(q.push(a, &[1; 6]));
        assert!(q.push(a, &[2; 4]));
        assert!(!q.push(a, &[3; 1]));
        assert_eq!(q.bytes(), 10);
        assert_eq!(q.pop().unwrap().data, vec![1; 6]);
    }

    #[test]
    fn match_scores() {
        let mut s = UdpSocket::new("0.0.0.0:7".parse().unwrap(), UdpConfig::default());
        let src: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let dst: SocketAddr = "10.0.0.2:7".parse().unwrap();
        assert_eq!(s.match_score(src, dst), Some(0));
        s.local = dst;
        assert_eq!(s.match_score(src, dst), Some(1));
        s.remote = Some(src);
        assert_eq!(s.match_score(src, dst), Some(3));
        s.remote = Some("10.0.0.1:6".parse().unwrap());
        assert_eq!(s.match_score(src, dst), None);
        assert_eq!(s.match_score(src, "10.0.0.2:8".parse().unwrap()), None);
        // A wildcard IPv4 socket does not take IPv6.
        let s = UdpSocket::new("0.0.0.0:7".parse().unwrap(), UdpConfig::default());
        assert_eq!(
            s.match_score(
                "[fd00::1]:5".parse().unwrap(),
                "[fd00::2]:7".parse().unwrap()
            ),
            None
        );
    }
}
