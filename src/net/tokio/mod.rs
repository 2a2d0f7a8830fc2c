//! Async sockets for [tokio](https://tokio.rs) (the `tokio` cargo feature).
//!
//! [`TcpListener`], [`TcpStream`] (with [`tokio::io::AsyncRead`] and
//! [`tokio::io::AsyncWrite`]) and [`UdpSocket`] work like tokio's own
//! sockets, but on a [`crate::stack::Stack`]. They need no reactor of
//! their own: readiness comes from the stack thread, which wakes a task's
//! [`std::task::Waker`] when the socket it waits on becomes readable,
//! writable, acceptable, connected, closed or failed. There is no polling
//! loop, no timer and no thread per socket; any executor works, tokio's
//! current-thread and multi-thread runtimes included. A task waiting to
//! read is woken only when there is something to read (data, end of
//! stream, an error), not by the ACKs its writes bring back; a task
//! blocked on a full send buffer is woken once a third of it is free, as
//! Linux does, not for every ACK. Every task waiting on a socket is woken,
//! not only the last one to poll it.
//!
//! Binding and UDP `connect` complete at once and are plain functions;
//! `connect`, `accept`, reads and writes are futures. Addresses are
//! resolved with [`std::net::ToSocketAddrs`] before anything waits (give
//! IP addresses, not host names that need a DNS lookup, in async code).
//! Errors carry the [`std::io::ErrorKind`] that `std::net` gives
//! (`ConnectionRefused`, `ConnectionReset`, `BrokenPipe`, `AddrInUse`, …);
//! once the stack has stopped, every call fails with `NotConnected`.
//!
//! Dropping a [`TcpStream`] (or both halves of one) closes it as the
//! blocking [`crate::net::TcpStream`] does: a FIN after the queued data, a
//! RST when unread data is left or `set_linger(Some(ZERO))` was set.
//! Dropping a [`TcpListener`] closes it and resets the connections it had
//! not handed out.
//!
//! ```no_run
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use ustack::net::tokio::TcpListener;
//! # async fn run(stack: &ustack::stack::Stack) -> std::io::Result<()> {
//! let listener = TcpListener::bind(stack, "0.0.0.0:7")?;
//! loop {
//!     let (mut s, _peer) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let mut buf = vec![0u8; 16384];
//!         while let Ok(n @ 1..) = s.read(&mut buf).await {
//!             if s.write_all(&buf[..n]).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//! }
//! # }
//! ```

mod tcp;
mod udp;

pub use tcp::{OwnedReadHalf, OwnedWriteHalf, ReuniteError, TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::io;
use std::task::{Context, Poll};

use crate::socket::SocketHandle;
use crate::stack::wake::{self, Direction};
use crate::stack::{Core, Shared};

/// Runs `op` on the core under its lock. On `WouldBlock`, registers the
/// task's waker for `dir` under that same lock (so the stack thread cannot
/// signal readiness in between) and returns `Pending`. Wakes the stack
/// thread when `op` left it something to do right away.
pub(crate) fn poll_op<T>(
    shared: &Shared,
    h: SocketHandle,
    dir: Direction,
    cx: &mut Context<'_>,
    op: impl FnOnce(&mut Core) -> io::Result<T>,
) -> Poll<io::Result<T>> {
    let mut core = shared.lock();
    if let Err(e) = shared.check_running() {
        return Poll::Ready(Err(e));
    }
    let r = op(&mut core);
    let kick = core.iface.poll_at() == Some(crate::time::Instant::ZERO);
    let r = match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            wake::register(&mut core.wakers, h, dir, cx.waker());
            Poll::Pending
        }
        r => Poll::Ready(r),
    };
    drop(core);
    if kick {
        shared.wake();
    }
    r
}

/// Runs `op` on the core (a call that never waits), then wakes the stack
/// thread.
pub(crate) fn with_core<T>(
    shared: &Shared,
    op: impl FnOnce(&mut Core) -> io::Result<T>,
) -> io::Result<T> {
    let mut core = shared.lock();
    shared.check_running()?;
    let r = op(&mut core);
    drop(core);
    shared.wake();
    r
}
