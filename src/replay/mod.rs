//! Packet-capture replay, property checks and the fuzz harness.
//!
//! * [`check`]: what every frame the stack emits and every queue must
//!   satisfy.
//! * [`build`]: builders for injected frames and checksum fix-ups.
//! * [`fuzz`]: the harness of the `cargo fuzz` targets in `fuzz/`.

pub mod build;
pub mod check;
pub mod fuzz;
