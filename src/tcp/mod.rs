//! TCP, written from the RFCs (RFC 9293 and the RFC map in ARCHITECTURE.md).
//!
//! Everything here is sans-IO: time is an input ([`crate::time::Instant`]),
//! nothing reads a clock or touches a socket, and nothing panics on wire
//! input. A connection is a [`Tcb`], driven only by the interface: segments
//! go in (`process`), due timers fire (`handle_timeout`), segments come
//! out (`poll_transmit`), and `poll_at` says when it next needs to run. An
//! application holding a `&mut Tcb` reads its state, sends, receives,
//! closes and sets options; it cannot drive it.
//!
//! * `seq`: sequence numbers across the 2^32 wrap.
//! * `buffer`: the send ring and the receive assembler.
//! * `rtt`: the RFC 6298 RTO estimator.
//! * `isn`: RFC 6528 initial sequence numbers.
//! * [`cc`]: pluggable congestion control (Reno, CUBIC, BBR; Linux's
//!   `TCP_CONGESTION` names).
//! * `rate`: delivery-rate estimation.
//! * `tcb`: the connection's state and the application's calls; `input`:
//!   segment arrival; `output`: what goes out, step by step (RST, SYN,
//!   tail loss probe, retransmissions, new data, probes, ACK).
//! * `timer`: the connection's deadlines, one table keyed by `Timer`.
//! * `recovery`: loss recovery's state and arithmetic, which knows nothing
//!   of the connection: `sent` (the transmit records), `scoreboard` (SACK,
//!   RFC 6675, and D-SACK undo), `rack` (RACK-TLP, RFC 8985) and `prr`
//!   (Proportional Rate Reduction, RFC 6937). `loss` is the connection's
//!   side: fast recovery with NewReno (RFC 6582) without SACK, RFC 6675
//!   with it.
//! * `listen`: listeners with bounded SYN and accept queues.
//! * `pmtu`: path MTU discovery's share of the connection (RFC 1191/8201,
//!   validated per RFC 5927): the MSS shrinks, oversized segments go again.
//! * `time_wait`: compact TIME-WAIT entries for connections let go of.

// Public (hidden) only for the reassembly benchmark in benches/core.rs.
#[doc(hidden)]
pub mod buffer;
pub mod cc;
mod config;
pub(crate) mod cookie;
mod input;
pub(crate) mod isn;
mod listen;
mod loss;
mod output;
mod pmtu;
pub(crate) mod rate;
mod recovery;
pub(crate) mod rtt;
pub(crate) mod seq;
mod tcb;
pub(crate) mod time_wait;
mod timer;

pub use config::{Keepalive, SynFin, TcpConfig};
pub(crate) use input::RstReply;
pub use listen::{Listener, TcpConn};
pub(crate) use output::OutSegment;
pub(crate) use seq::SeqNumber;
pub(crate) use tcb::wscale_for;
pub use tcb::{State, Tcb, TcpInfo};
pub(crate) use time_wait::{TimeWaitEntry, TimeWaitTable};

#[cfg(test)]
mod pmtu_tests;
#[cfg(test)]
mod rack_sim_tests;
#[cfg(test)]
mod regress_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;
