//! `UdpSocket`, shaped like `std::net::UdpSocket`.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar};
use std::time::Duration;

use super::{block_on, check_timeout, first_addr};
use crate::socket::SocketHandle;
use crate::stack::wake::Direction;
use crate::stack::{Core, Shared, Stack};

/// A UDP socket on a [`Stack`], used like `std::net::UdpSocket`: blocking
/// by default, with read/write timeouts and a non-blocking mode, and
/// `std::io::Error` kinds as `std` gives them (`WouldBlock` for a timeout or
/// an empty non-blocking read, `ConnectionRefused` after an ICMP port
/// unreachable on a connected socket, `AddrInUse`, …).
pub struct UdpSocket {
    shared: Arc<Shared>,
    handle: SocketHandle,
    cond: Arc<Condvar>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    nonblocking: bool,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .field("nonblocking", &self.nonblocking)
            .finish()
    }
}

impl UdpSocket {
    /// Binds a socket to `addr` on `stack` (port 0 picks an ephemeral port).
    pub fn bind(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addr = first_addr(addr)?;
        let shared = stack.shared.clone();
        shared.check_running()?;
        let waiters = crate::stack::Waiters::default();
        let cond = waiters.cond.clone();
        let handle = {
            let mut core = shared.lock();
            let h = core.iface.udp_bind(addr)?;
            core.waiters.insert(h, waiters);
            h
        };
        Ok(UdpSocket {
            shared,
            handle,
            cond,
            read_timeout: None,
            write_timeout: None,
            nonblocking: false,
        })
    }

    /// Runs `op` until it stops saying `WouldBlock`, waiting for the socket
    /// in between unless non-blocking; a timeout gives `WouldBlock` like std.
    fn blocking<T>(
        &self,
        dir: Direction,
        timeout: Option<Duration>,
        op: impl FnMut(&mut Core) -> io::Result<T>,
    ) -> io::Result<T> {
        block_on(
            &self.shared,
            &self.cond,
            self.handle,
            dir,
            self.nonblocking,
            timeout,
            io::ErrorKind::WouldBlock,
            op,
        )
    }

    /// Receives a datagram and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let h = self.handle;
        self.blocking(Direction::Read, self.read_timeout, |c| {
            c.iface.udp_recv_from(h, buf)
        })
    }

    /// Like `recv_from` but leaves the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let h = self.handle;
        self.blocking(Direction::Read, self.read_timeout, |c| {
            c.iface.udp_peek_from(h, buf)
        })
    }

    /// Receives a datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// Sends a datagram to `addr`.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = first_addr(addr)?;
        let h = self.handle;
        // The datagram leaves from this thread (see `block_on`).
        self.blocking(Direction::Write, self.write_timeout, |c| {
            c.iface.udp_send_to(h, buf, addr)
        })
    }

    /// Sends a datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let h = self.handle;
        self.blocking(Direction::Write, self.write_timeout, |c| {
            c.iface.udp_send(h, buf)
        })
    }

    /// Sets the default peer and receives only from it.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addr = first_addr(addr)?;
        self.shared.lock().iface.udp_connect(self.handle, addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self
            .shared
            .lock()
            .iface
            .udp_socket(self.handle)?
            .local_addr())
    }

    /// The connected peer (`NotConnected` if none), like std.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.shared
            .lock()
            .iface
            .udp_socket(self.handle)?
            .peer_addr()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    /// Read timeout (`None`: block forever). Zero is rejected, like std.
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.read_timeout = t;
        Ok(())
    }

    /// Write timeout.
    pub fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.write_timeout = t;
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout)
    }

    /// Non-blocking mode: calls that would wait return `WouldBlock`.
    pub fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        self.nonblocking = on;
        Ok(())
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

    /// Returns and clears the pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.shared.lock().iface.udp_take_error(self.handle)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut core = self.shared.lock();
        let _ = core.iface.udp_close(self.handle);
        core.waiters.remove(&self.handle);
    }
}
