//! Async `TcpListener` and `TcpStream`.

use std::future::{poll_fn, Future};
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{poll_op, with_core};
use crate::net::first_addr;
use crate::socket::SocketHandle;
use crate::stack::wake::Direction;
use crate::stack::{Shared, Stack};
use crate::tcp::{Keepalive, State, TcpInfo};

/// A TCP listener on a [`Stack`] for async code, like
/// `tokio::net::TcpListener`.
pub struct TcpListener {
    shared: Arc<Shared>,
    handle: SocketHandle,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

impl TcpListener {
    /// Binds and listens with an accept queue of 128 (std's default). It
    /// completes at once, so it is not a future.
    pub fn bind(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with_backlog(stack, addr, 128)
    }

    /// Binds and listens with an accept queue of `backlog` connections
    /// (handshakes beyond it are dropped and retried by the client, as on
    /// Linux; the SYN queue, with SYN cookies behind it, is separate).
    pub fn bind_with_backlog(
        stack: &Stack,
        addr: impl ToSocketAddrs,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let addr = first_addr(addr)?;
        let shared = stack.shared.clone();
        let handle = with_core(&shared, |core| core.iface.tcp_listen(addr, backlog))?;
        Ok(TcpListener { shared, handle })
    }

    /// Waits for a connection. Cancel-safe: a connection is taken from the
    /// queue only by the poll that returns it.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection; on `Pending` the task is woken when one
    /// arrives (every task polling it is).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let lh = self.handle;
        poll_op(&self.shared, lh, Direction::Read, cx, |core| {
            core.iface.tcp_accept(lh)
        })
        .map_ok(|(h, peer)| (TcpStream::from_parts(self.shared.clone(), h), peer))
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
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let mut core = self.shared.lock();
        let _ = core.iface.tcp_close(self.handle);
        // Wakers are dropped after unlocking: dropping a task's last one
        // may drop its future, and with it sockets that take the lock.
        let wakers = core.wakers.remove(&self.handle);
        drop(core);
        drop(wakers);
        self.shared.wake();
    }
}

/// What the stream and its halves share; closes the connection when the
/// last of them goes.
struct Inner {
    shared: Arc<Shared>,
    handle: SocketHandle,
    linger_zero: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut core = self.shared.lock();
        let _ = if self.linger_zero.load(Ordering::Relaxed) {
            core.iface.tcp_abort(self.handle)
        } else {
            core.iface.tcp_close(self.handle)
        };
        // Wakers are dropped after unlocking: dropping a task's last one
        // may drop its future, and with it sockets that take the lock.
        let wakers = core.wakers.remove(&self.handle);
        drop(core);
        drop(wakers);
        self.shared.wake();
    }
}

impl Inner {
    fn with<T>(
        &self,
        f: impl FnOnce(SocketHandle, &mut crate::stack::Core) -> io::Result<T>,
    ) -> io::Result<T> {
        let h = self.handle;
        with_core(&self.shared, |core| f(h, core))
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let h = self.handle;
        let dst = buf.initialize_unfilled();
        let r = poll_op(&self.shared, h, Direction::Read, cx, |core| {
            core.iface.tcp_recv(h, dst)
        });
        match r {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let h = self.handle;
        poll_op(&self.shared, h, Direction::Read, cx, |core| {
            core.iface.tcp_peek(h, buf)
        })
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let h = self.handle;
        poll_op(&self.shared, h, Direction::Write, cx, |core| {
            core.iface.tcp_send(h, buf)
        })
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.with(|h, core| core.iface.tcp_shutdown(h, how))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with(|h, core| Ok(core.iface.tcp_socket(h)?.local_addr()))
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with(|h, core| Ok(core.iface.tcp_socket(h)?.remote_addr()))
    }
}

/// A TCP connection on a [`Stack`] for async code, like
/// `tokio::net::TcpStream`: [`AsyncRead`], [`AsyncWrite`] (`shutdown` sends
/// the FIN), [`TcpStream::into_split`] into halves that two tasks can use at
/// once. Dropping it closes the connection.
pub struct TcpStream {
    inner: Arc<Inner>,
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
    fn from_parts(shared: Arc<Shared>, handle: SocketHandle) -> TcpStream {
        TcpStream {
            inner: Arc::new(Inner {
                shared,
                handle,
                linger_zero: AtomicBool::new(false),
            }),
        }
    }

    /// Connects to `addr` and completes when the handshake has (SYN
    /// retries give up after ~2 minutes as on Linux; wrap it in
    /// `tokio::time::timeout` for less). A port nobody listens on gives
    /// `ConnectionRefused`. The future does not borrow `stack`, so it can
    /// be spawned; dropping it before it completes abandons the attempt.
    pub fn connect(
        stack: &Stack,
        addr: impl ToSocketAddrs,
    ) -> impl Future<Output = io::Result<TcpStream>> + Send + 'static {
        let shared = stack.shared.clone();
        let addr = first_addr(addr);
        async move {
            let addr = addr?;
            let now = shared.clock_now();
            let h = with_core(&shared, |core| core.iface.tcp_connect(addr, None, now))?;
            let s = TcpStream::from_parts(shared, h);
            let inner = &s.inner;
            poll_fn(|cx| {
                poll_op(&inner.shared, h, Direction::Write, cx, |core| {
                    let t = core.iface.tcp_socket_mut(h)?;
                    match t.state() {
                        State::SynSent | State::SynReceived => {
                            Err(io::ErrorKind::WouldBlock.into())
                        }
                        State::Closed => Err(t
                            .take_error()
                            .unwrap_or_else(|| io::ErrorKind::ConnectionRefused.into())),
                        _ => Ok(()),
                    }
                })
            })
            .await
            // A failed attempt leaves nothing to close gracefully.
            .inspect_err(|_| inner.linger_zero.store(true, Ordering::Relaxed))?;
            Ok(s)
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Disables (true) or enables Nagle's algorithm (`TCP_NODELAY`).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.with(|h, core| {
            core.iface.tcp_socket_mut(h)?.set_nodelay(on);
            Ok(())
        })
    }

    /// Whether Nagle's algorithm is disabled.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner
            .with(|h, core| Ok(core.iface.tcp_socket(h)?.config().nodelay))
    }

    /// Keep-alive probes (`None`: off).
    pub fn set_keepalive(&self, ka: Option<Keepalive>) -> io::Result<()> {
        let now = self.inner.shared.clock_now();
        self.inner.with(|h, core| {
            core.iface.tcp_socket_mut(h)?.set_keepalive(ka, now);
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

    /// A `TCP_INFO`-like snapshot (state, RTT, cwnd, retransmissions, …).
    pub fn info(&self) -> io::Result<TcpInfo> {
        self.inner.with(|h, core| core.iface.tcp_info(h))
    }

    /// Takes the pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner
            .with(|h, core| Ok(core.iface.tcp_socket_mut(h)?.take_error()))
    }

    /// Waits for data and copies it without consuming it.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.inner.poll_peek(cx, buf)).await
    }

    /// Shuts down one or both directions at once (`Write` sends the FIN;
    /// [`AsyncWrite::poll_shutdown`] does the same).
    pub fn shutdown_direction(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Splits the stream into a read half and a write half that can move
    /// to different tasks. Dropping the write half sends the FIN (as
    /// tokio's does); the connection closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                inner: self.inner.clone(),
            },
            OwnedWriteHalf {
                inner: self.inner,
                shutdown_on_drop: true,
            },
        )
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    /// Data is in the stack's send buffer once written: nothing to flush.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Half-closes: the FIN follows the data already written.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown(Shutdown::Write))
    }
}

/// The read half of a [`TcpStream`] ([`TcpStream::into_split`]).
pub struct OwnedReadHalf {
    inner: Arc<Inner>,
}

/// The write half of a [`TcpStream`] ([`TcpStream::into_split`]). Dropping
/// it sends the FIN.
pub struct OwnedWriteHalf {
    inner: Arc<Inner>,
    shutdown_on_drop: bool,
}

impl std::fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedReadHalf")
            .field("peer", &self.inner.peer_addr().ok())
            .finish()
    }
}

impl std::fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedWriteHalf")
            .field("peer", &self.inner.peer_addr().ok())
            .finish()
    }
}

/// [`OwnedReadHalf::reunite`] was given halves of two different streams;
/// both are handed back.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl std::fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

impl OwnedReadHalf {
    /// Puts the stream back together (fails for halves of two streams).
    pub fn reunite(self, mut other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        if !Arc::ptr_eq(&self.inner, &other.inner) {
            return Err(ReuniteError(self, other));
        }
        other.shutdown_on_drop = false;
        drop(other);
        Ok(TcpStream { inner: self.inner })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Waits for data and copies it without consuming it.
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.inner.poll_peek(cx, buf)).await
    }
}

impl OwnedWriteHalf {
    /// Puts the stream back together (fails for halves of two streams).
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        other.reunite(self)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.inner.shutdown(Shutdown::Write);
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    /// Nothing to flush: written data is in the stack's send buffer.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Half-closes: the FIN follows the data already written.
    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = self.inner.shutdown(Shutdown::Write);
        self.shutdown_on_drop = false;
        Poll::Ready(r)
    }
}
