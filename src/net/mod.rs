//! The `std::net`-shaped API on a running [`crate::stack::Stack`], and
//! (feature `tokio`) its async twin in `net::tokio`.

mod tcp;
#[cfg(feature = "tokio")]
pub mod tokio;
mod udp;

pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Condvar;
use std::time::{Duration, Instant as StdInstant};

use crate::socket::SocketHandle;
use crate::stack::wake::Direction;
use crate::stack::{Core, Shared};

/// Resolves `addr` to its first address, as `std::net` does for one-address
/// calls.
pub(crate) fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    })
}

/// `std` rejects a zero timeout with `InvalidInput`; so do we.
pub(crate) fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

/// Waits on `cond` until `op` stops returning `WouldBlock` (or the timeout
/// passes: `WouldBlock` for reads and writes, as std gives for socket
/// timeouts; connect uses its own kind). While it waits it is counted as a
/// waiter on `h` in direction `dir`, so that the stack thread wakes it only
/// when that direction is ready. When `op` left something to send, it is
/// sent from this thread ([`Shared::send_now`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn block_on<T>(
    shared: &Shared,
    cond: &Condvar,
    h: SocketHandle,
    dir: Direction,
    nonblocking: bool,
    timeout: Option<Duration>,
    timeout_kind: io::ErrorKind,
    mut op: impl FnMut(&mut Core) -> io::Result<T>,
) -> io::Result<T> {
    let deadline = timeout.map(|t| StdInstant::now() + t);
    let mut core = shared.lock();
    loop {
        shared.check_running()?;
        let r = op(&mut core);
        let wake = core.iface.poll_at() == Some(crate::time::Instant::ZERO);
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !nonblocking => {
                if wake {
                    shared.wake();
                }
            }
            r => {
                if wake {
                    shared.send_now(core);
                }
                return r;
            }
        }
        let left = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(StdInstant::now());
                if left.is_zero() {
                    return Err(io::Error::new(timeout_kind, "timed out"));
                }
                Some(left)
            }
        };
        count_waiter(&mut core, h, dir, true);
        core = match left {
            None => cond.wait(core).unwrap_or_else(|e| e.into_inner()),
            Some(left) => {
                cond.wait_timeout(core, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
        count_waiter(&mut core, h, dir, false);
    }
}

/// Counts a thread in (`add`) or out of the waiters on `h` for `dir`.
fn count_waiter(core: &mut Core, h: SocketHandle, dir: Direction, add: bool) {
    if let Some(w) = core.waiters.get_mut(&h) {
        let n = match dir {
            Direction::Read => &mut w.readers,
            Direction::Write => &mut w.writers,
        };
        *n = if add {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
    }
}
