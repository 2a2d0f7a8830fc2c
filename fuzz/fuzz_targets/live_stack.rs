//! A live stack (listener, established connections with data in flight,
//! UDP sockets, ARP neighbour) driven by a fuzzed script of frames: raw,
//! fixed-up IPv4, in-window TCP segments, UDP (fragmented), ICMP quoting
//! the connections, ARP, application calls and clock jumps. See
//! `ustack::replay::fuzz::live_stack`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack::replay::fuzz::live_stack(data);
});
