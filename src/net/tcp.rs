//! `TcpListener` and `TcpStream`, shaped like `std::net`'s.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar};
use std::time::Duration;

use super::{block_on, check_timeout, first_addr};
use crate::socket::SocketHandle;
use crate::stack::wake::Direction;
use crate::stack::{Core, Shared, Stack, Waiters};
use crate::tcp::{Keepalive, State, TcpInfo};

fn register(core: &mut Core, h: SocketHandle) -> Arc<Condvar> {
    let w = Waiters::default();
    let c = w.cond.clone();
    core.waiters.insert(h, w);
    c
}

/// A TCP listener on a [`Stack`], like `std::net::TcpListener`.
pub struct TcpListener {
    shared: Arc<Shared>,
    handle: SocketHandle,
    cond: Arc<Condvar>,
    nonblocking: AtomicBool,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

impl TcpListener {
    /// Binds and listens with a backlog of 128 (std's default).
    pub fn bind(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with_backlog(stack, addr, 128)
    }

    /// Binds and listens with an accept queue of `backlog`.
    pub fn bind_with_backlog(
        stack: &Stack,
        addr: impl ToSocketAddrs,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let addr = first_addr(addr)?;
        let shared = stack.shared.clone();
        shared.check_running()?;
        let mut core = shared.lock();
        let handle = core.iface.tcp_listen(addr, backlog)?;
        let cond = register(&mut core, handle);
        drop(core);
        Ok(TcpListener {
            shared,
            handle,
            cond,
            nonblocking: AtomicBool::new(false),
        })
    }

    /// Waits for a connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let h = self.handle;
        let (ch, peer, cond) = block_on(
            &self.shared,
            &self.cond,
            h,
            Direction::Read,
            self.nonblocking.load(Ordering::Relaxed),
            None,
            io::ErrorKind::WouldBlock,
            |core| {
                let (ch, peer) = core.iface.tcp_accept(h)?;
                let c = register(core, ch);
                Ok((ch, peer, c))
            },
        )?;
        Ok((TcpStream::from_parts(self.shared.clone(), ch, cond), peer))
    }

    /// An iterator of accepted connections, like std's `incoming`.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self
            .shared
            .lock()
            .iface
            .tcp_listener(self.handle)?
            .local_addr())
    }

    /// Non-blocking mode for `accept`.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let mut core = self.shared.lock();
        let _ = core.iface.tcp_close(self.handle);
        core.waiters.remove(&self.handle);
        drop(core);
        self.shared.wake();
    }
}

struct StreamInner {
    shared: Arc<Shared>,
    handle: SocketHandle,
    cond: Arc<Condvar>,
    linger_zero: AtomicBool,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        let mut core = self.shared.lock();
        let _ = if self.linger_zero.load(Ordering::Relaxed) {
            core.iface.tcp_abort(self.handle)
        } else {
            core.iface.tcp_close(self.handle)
        };
        core.waiters.remove(&self.handle);
        self.shared.send_now(core);
    }
}

/// A TCP connection on a [`Stack`], like `std::net::TcpStream`: blocking by
/// default, `Read` and `Write`, timeouts, non-blocking mode, half-close,
/// and errors with std's kinds. Clones (`try_clone`) share the connection;
/// it closes when the last one is dropped.
pub struct TcpStream {
    inner: Arc<StreamInner>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    nonblocking: bool,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl TcpStream {
    fn from_parts(shared: Arc<Shared>, handle: SocketHandle, cond: Arc<Condvar>) -> TcpStream {
        TcpStream {
            inner: Arc::new(StreamInner {
                shared,
                handle,
                cond,
                linger_zero: AtomicBool::new(false),
            }),
            read_timeout: None,
            write_timeout: None,
            nonblocking: false,
        }
    }

    /// Connects, waiting for the handshake (SYN retries take ~2 minutes
    /// to give up, as on Linux).
    pub fn connect(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        Self::connect_inner(stack, first_addr(addr)?, None)
    }

    /// Connects with a time limit (`TimedOut` when it passes).
    pub fn connect_timeout(
        stack: &Stack,
        addr: &SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        Self::connect_inner(stack, *addr, Some(timeout))
    }

    fn connect_inner(
        stack: &Stack,
        addr: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let shared = stack.shared.clone();
        shared.check_running()?;
        let (h, cond) = {
            let mut core = shared.lock();
            let now = shared.clock_now();
            let h = core.iface.tcp_connect(addr, None, now)?;
            let c = register(&mut core, h);
            // The SYN leaves from this thread.
            shared.send_now(core);
            (h, c)
        };
        let s = TcpStream::from_parts(shared.clone(), h, cond.clone());
        block_on(
            &shared,
            &cond,
            h,
            Direction::Write,
            false,
            timeout,
            io::ErrorKind::TimedOut,
            |core| {
                let t = core.iface.tcp_socket_mut(h)?;
                match t.state() {
                    State::SynSent | State::SynReceived => Err(io::ErrorKind::WouldBlock.into()),
                    State::Closed => Err(t
                        .take_error()
                        .unwrap_or_else(|| io::ErrorKind::ConnectionRefused.into())),
                    _ => Ok(()),
                }
            },
        )
        .inspect_err(|_| s.inner.linger_zero.store(true, Ordering::Relaxed))?;
        Ok(s)
    }

    fn op<T>(
        &self,
        dir: Direction,
        timeout: Option<Duration>,
        f: impl FnMut(&mut Core) -> io::Result<T>,
    ) -> io::Result<T> {
        block_on(
            &self.inner.shared,
            &self.inner.cond,
            self.inner.handle,
            dir,
            self.nonblocking,
            timeout,
            io::ErrorKind::WouldBlock,
            f,
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Core) -> io::Result<T>) -> io::Result<T> {
        let mut core = self.inner.shared.lock();
        let r = f(&mut core);
        // A FIN to send, a timer armed: sent from here, or the stack
        // thread told.
        self.inner.shared.send_now(core);
        r
    }

    /// Reads without consuming.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.inner.handle;
        self.op(Direction::Read, self.read_timeout, |c| {
            c.iface.tcp_peek(h, buf)
        })
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let h = self.inner.handle;
        self.with(|c| c.iface.tcp_shutdown(h, how))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let h = self.inner.handle;
        self.with(|c| Ok(c.iface.tcp_socket(h)?.local_addr()))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let h = self.inner.handle;
        self.with(|c| Ok(c.iface.tcp_socket(h)?.remote_addr()))
    }

    /// Disables (true) or enables Nagle's algorithm.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let h = self.inner.handle;
        self.with(|c| {
            c.iface.tcp_socket_mut(h)?.set_nodelay(on);
            Ok(())
        })
    }

    /// Chooses the connection's congestion controller (`"reno"`,
    /// `"cubic"`, `"bbr"`; Linux's `TCP_CONGESTION`). See
    /// [`Tcb::set_congestion`](crate::tcp::Tcb::set_congestion).
    pub fn set_congestion(&self, name: &str) -> io::Result<()> {
        let h = self.inner.handle;
        self.with(|c| c.iface.tcp_socket_mut(h)?.set_congestion(name))
    }

    /// The connection's congestion controller.
    pub fn congestion(&self) -> io::Result<&'static str> {
        let h = self.inner.handle;
        self.with(|c| Ok(c.iface.tcp_info(h)?.congestion.0))
    }

    /// Whether Nagle is disabled.
    pub fn nodelay(&self) -> io::Result<bool> {
        let h = self.inner.handle;
        self.with(|c| Ok(c.iface.tcp_socket(h)?.config().nodelay))
    }

    /// Keep-alive (`None`: off).
    pub fn set_keepalive(&self, ka: Option<Keepalive>) -> io::Result<()> {
        let h = self.inner.handle;
        let now = self.inner.shared.clock_now();
        self.with(|c| {
            c.iface.tcp_socket_mut(h)?.set_keepalive(ka, now);
            Ok(())
        })
    }

    /// `SO_LINGER`: `Some(ZERO)` makes dropping the stream abort it with a
    /// RST; other values behave like `None` (a background close).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.inner
            .linger_zero
            .store(linger == Some(Duration::ZERO), Ordering::Relaxed);
        Ok(())
    }

    /// Read timeout (`None`: forever; zero is rejected like std).
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

    /// Non-blocking mode.
    pub fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        self.nonblocking = on;
        Ok(())
    }

    /// Takes the pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let h = self.inner.handle;
        self.with(|c| Ok(c.iface.tcp_socket_mut(h)?.take_error()))
    }

    /// A `TCP_INFO`-like snapshot.
    pub fn info(&self) -> io::Result<TcpInfo> {
        let h = self.inner.handle;
        self.with(|c| c.iface.tcp_info(h))
    }

    /// Another handle to the same connection (settings are per handle).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: self.inner.clone(),
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            nonblocking: self.nonblocking,
        })
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.inner.handle;
        self.op(Direction::Read, self.read_timeout, |c| {
            c.iface.tcp_recv(h, buf)
        })
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.inner.handle;
        self.op(Direction::Read, self.read_timeout, |c| {
            c.iface.tcp_recv(h, buf)
        })
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let h = self.inner.handle;
        self.op(Direction::Write, self.write_timeout, |c| {
            c.iface.tcp_send(h, buf)
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
