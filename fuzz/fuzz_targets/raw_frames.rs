//! Length-prefixed raw frames (Ethernet or bare IP) into a live stack.
//! See `ustack::replay::fuzz::raw_frames`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ustack::replay::fuzz::raw_frames(data);
});
