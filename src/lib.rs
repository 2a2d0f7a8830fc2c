//! ustack: a user-space TCP/IP stack with a sans-IO core.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod phy;
pub mod time;
pub mod wire;
pub mod cli;
pub mod iface;
pub mod socket;
pub mod udp;
pub mod net;
pub mod runtime;
pub mod stack;
