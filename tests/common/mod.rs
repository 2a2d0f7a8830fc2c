//! What the in-memory integration tests share.

#![allow(dead_code)] // each test binary uses its own part

use ustack::phy::{Medium, PipeDevice};
use ustack::stack::Stack;

/// Two stacks on an in-memory Ethernet link, `10.NET.0.1/24` and
/// `10.NET.0.2/24`.
pub fn pair(net: u8) -> (Stack, Stack) {
    let (a, b) = PipeDevice::pair(Medium::Ethernet, 1500);
    let stack = |dev, host| {
        Stack::builder(dev)
            .addr(format!("10.{net}.0.{host}/24").parse().unwrap())
            .build()
            .unwrap()
    };
    (stack(a, 1), stack(b, 2))
}

/// `n` pseudo-random bytes (xorshift32 from `seed | 1`).
pub fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x: u32 = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
