//! ustack: a user-space TCP/IP stack with a sans-IO core.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod cli;
pub mod iface;
pub mod net;
pub mod phy;
pub mod runtime;
pub mod socket;
pub mod stack;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;

pub mod sim;
