//! Packet-capture replay, property checks and the fuzz harness.
//!
//! * [`check`]: what every frame the stack emits and every queue must
//!   satisfy.
//! * [`build`]: builders for injected frames and checksum fix-ups.
//! * [`fuzz`]: the harness of the `cargo fuzz` targets in `fuzz/`.

pub mod build;
pub mod capture;
pub mod check;
pub mod engine;
pub mod fuzz;
pub(crate) mod mutate;
mod runner;
pub mod script;

pub use runner::{check_capture, check_capture_with, Failure, Report, MAX_FAILURES};
