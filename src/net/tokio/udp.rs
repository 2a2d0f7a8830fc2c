//! Async `UdpSocket`.

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tokio::io::ReadBuf;

use super::{poll_op, with_core};
use crate::net::first_addr;
use crate::socket::SocketHandle;
use crate::stack::wake::Direction;
use crate::stack::{Shared, Stack};

/// A UDP socket on a [`Stack`] for async code, like
/// `tokio::net::UdpSocket`. Its methods take `&self`, so an
/// `Arc<UdpSocket>` can be shared between a receiving and a sending task
/// (every task waiting on it is woken).
pub struct UdpSocket {
    shared: Arc<Shared>,
    handle: SocketHandle,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

impl UdpSocket {
    /// Binds a socket to `addr` (port 0 picks an ephemeral port). It
    /// completes at once, so it is not a future.
    pub fn bind(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addr = first_addr(addr)?;
        let shared = stack.shared.clone();
        let handle = with_core(&shared, |core| core.iface.udp_bind(addr))?;
        Ok(UdpSocket { shared, handle })
    }

    /// Sets the default peer: [`UdpSocket::send`] goes there and only its
    /// datagrams are received. Completes at once.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addr = first_addr(addr)?;
        let h = self.handle;
        with_core(&self.shared, |core| core.iface.udp_connect(h, addr))
    }

    /// Sends a datagram to `target`, waiting while the send queue is full.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let target = first_addr(target)?;
        poll_fn(|cx| self.poll_send_to(cx, buf, target)).await
    }

    /// Polls sending a datagram to `target`.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let h = self.handle;
        let r = poll_op(&self.shared, h, Direction::Write, cx, |core| {
            core.iface.udp_send_to(h, buf, target)
        });
        if matches!(r, Poll::Ready(Ok(_))) {
            self.shared.wake();
        }
        r
    }

    /// Sends a datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// Polls sending a datagram to the connected peer.
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let h = self.handle;
        let r = poll_op(&self.shared, h, Direction::Write, cx, |core| {
            core.iface.udp_send(h, buf)
        });
        if matches!(r, Poll::Ready(Ok(_))) {
            self.shared.wake();
        }
        r
    }

    /// Waits for a datagram and returns its length and sender (a datagram
    /// longer than `buf` is cut to fit, as std does). Cancel-safe.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from_slice(cx, buf)).await
    }

    /// Waits for a datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    /// Waits for a datagram and copies it without taking it from the queue.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let h = self.handle;
        poll_fn(|cx| {
            poll_op(&self.shared, h, Direction::Read, cx, |core| {
                core.iface.udp_peek_from(h, buf)
            })
        })
        .await
    }

    /// Polls for a datagram, filling `buf` (tokio's signature).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        let dst = buf.initialize_unfilled();
        match self.poll_recv_from_slice(cx, dst) {
            Poll::Ready(Ok((n, from))) => {
                buf.advance(n);
                Poll::Ready(Ok(from))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_recv_from_slice(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let h = self.handle;
        poll_op(&self.shared, h, Direction::Read, cx, |core| {
            core.iface.udp_recv_from(h, buf)
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let h = self.handle;
        Ok(self.shared.lock().iface.udp_socket(h)?.local_addr())
    }

    /// The connected peer (`NotConnected` if none), like std.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let h = self.handle;
        self.shared
            .lock()
            .iface
            .udp_socket(h)?
            .peer_addr()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    /// Allows sending to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.shared.lock().iface.udp_set_broadcast(self.handle, on)
    }

    /// Whether broadcast sending is allowed.
    pub fn broadcast(&self) -> io::Result<bool> {
        Ok(self.shared.lock().iface.udp_socket(self.handle)?.broadcast)
    }

    /// Sets the TTL of outgoing datagrams.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TTL above 255"))?;
        self.shared.lock().iface.udp_set_ttl(self.handle, Some(ttl))
    }

    /// The TTL of outgoing datagrams.
    pub fn ttl(&self) -> io::Result<u32> {
        let core = self.shared.lock();
        let s = core.iface.udp_socket(self.handle)?;
        Ok(s.ttl.unwrap_or(core.iface.config().ttl) as u32)
    }

    /// Returns and clears the pending error (`SO_ERROR`), e.g.
    /// `ConnectionRefused` after an ICMP port unreachable on a connected
    /// socket.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.shared.lock().iface.udp_take_error(self.handle)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut core = self.shared.lock();
        let _ = core.iface.udp_close(self.handle);
        // Dropped after unlocking (see the TCP stream's drop).
        let wakers = core.wakers.remove(&self.handle);
        drop(core);
        drop(wakers);
    }
}
