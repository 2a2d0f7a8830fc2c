//! TCP, written from the RFCs (RFC 9293 and the scope list in DESIGN.md).
//!
//! Everything here is sans-IO: time is an input ([`crate::time::Instant`]),
//! nothing reads a clock or touches a socket, and nothing panics on wire
//! input. A connection is a [`Tcb`]: segments go in through the interface
//! (`process`), segments come out of [`Tcb::poll_transmit`], and
//! [`Tcb::poll_at`] says when it next needs to run.
//!
//! * `seq`: sequence numbers across the 2^32 wrap.
//! * `buffer`: the send ring and the receive assembler.
//! * `rtt`: the RFC 6298 RTO estimator.
//! * `isn`: RFC 6528 initial sequence numbers.
//! * [`cc`]: pluggable congestion control (NewReno now).
//! * `tcb`, `input`, `output`: the state machine.
//! * `sack`: the SACK scoreboard and RFC 6675 recovery; `rack`: RACK-TLP
//!   loss detection (RFC 8985); `prr`: Proportional Rate Reduction
//!   (RFC 6937).
//! * `listen`: listeners with bounded SYN and accept queues.
//! * `pmtu`: path MTU discovery's share of the connection (RFC 1191/8201,
//!   validated per RFC 5927): the MSS shrinks, oversized segments go again.

// Public (hidden) only for the reassembly benchmark in benches/core.rs.
#[doc(hidden)]
pub mod buffer;
pub mod cc;
mod config;
pub(crate) mod cookie;
mod input;
pub(crate) mod isn;
mod listen;
mod output;
mod pmtu;
mod prr;
mod rack;
pub(crate) mod rate;
pub(crate) mod rtt;
mod sack;
pub(crate) mod seq;
mod tcb;
pub(crate) mod time_wait;

pub use config::{Keepalive, SynFin, TcpConfig};
pub(crate) use input::RstReply;
pub use listen::{Listener, TcpConn};
pub use output::OutSegment;
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
