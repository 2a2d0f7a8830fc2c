//! Listening sockets: the SYN queue (half-open children) and the accept
//! queue (established, not yet accepted), both bounded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use super::config::TcpConfig;
use crate::socket::SocketHandle;

/// A listening socket.
#[derive(Debug)]
pub struct Listener {
    pub(crate) local: SocketAddr,
    /// Accept queue limit (`listen(backlog)`).
    pub(crate) backlog: usize,
    /// Half-open children at most (Linux: `tcp_max_syn_backlog`).
    pub(crate) syn_backlog: usize,
    pub(crate) half_open: usize,
    pub(crate) accept_queue: VecDeque<SocketHandle>,
    pub(crate) config: Arc<TcpConfig>,
    pub(crate) closed: bool,
}

impl Listener {
    pub(crate) fn new(local: SocketAddr, backlog: usize, config: Arc<TcpConfig>) -> Listener {
        let backlog = backlog.clamp(1, 65535);
        Listener {
            local,
            backlog,
            syn_backlog: config.syn_backlog,
            half_open: 0,
            accept_queue: VecDeque::new(),
            config,
            closed: false,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Connections waiting for `accept`.
    pub fn pending(&self) -> usize {
        self.accept_queue.len()
    }

    /// True when the accept queue cannot take another connection.
    pub fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() + self.half_open >= self.backlog + self.syn_backlog
            || self.accept_queue.len() >= self.backlog
    }

    /// True when the SYN queue is full (SYN cookies take over).
    pub fn syn_queue_full(&self) -> bool {
        self.half_open >= self.syn_backlog
    }
}

/// A connection and what the interface keeps beside it.
#[derive(Debug)]
pub struct TcpConn {
    /// The connection.
    pub tcb: super::Tcb,
    /// The listener that spawned it, until it is accepted.
    pub(crate) parent: Option<SocketHandle>,
    /// Queued in the interface's ready list.
    pub(crate) in_ready: bool,
    /// The deadline the interface's timer heap holds for it.
    pub(crate) scheduled: Option<crate::time::Instant>,
    /// The application let go of it: remove when closed.
    pub(crate) released: bool,
    /// Counted in the listener's half-open count.
    pub(crate) half_open: bool,
}
