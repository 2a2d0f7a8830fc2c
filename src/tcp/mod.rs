//! TCP: sequence-number arithmetic, timers, buffers and congestion control.
//!
//! Everything here is sans-IO: time is an input ([`crate::time::Instant`]),
//! nothing reads a clock or touches a socket, and nothing panics on wire input.

pub mod buffer;
pub mod cc;
pub mod rtt;
pub mod seq;
