//! Mutations of the peer's frames, as proptest strategies.

use proptest::prelude::*;

use super::build::fix_checksums;
use crate::wire::{ipv4, tcp};

/// One thing done to one frame the peer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// The frame is lost.
    Drop,
    /// The frame arrives twice.
    Duplicate,
    /// The frame arrives after the next `n` frames (1 to 4).
    Reorder(u8),
    /// The frame arrives this many milliseconds late.
    Delay(u16),
    /// The frame is cut to `n` bytes (modulo its length).
    Truncate(u16),
    /// One byte XORed with a non-zero value. With `fix`, the byte is in the
    /// TCP/UDP payload and the checksums are recomputed (the stack must
    /// take it); without, it is anywhere and the checksums are left wrong
    /// (the stack must drop the frame).
    Corrupt {
        /// Position (modulo the eligible range).
        at: u16,
        /// Non-zero XOR value.
        xor: u8,
        /// Recompute checksums.
        fix: bool,
    },
    /// TCP flags XORed with this (checksum fixed).
    FlipFlags(u8),
    /// Random bytes inserted at the front of the TCP options (checksum and
    /// lengths fixed).
    InsertOption(Vec<u8>),
    /// The TCP window field set to 0 (checksum fixed).
    ZeroWindow,
}

impl Mutation {
    /// Mutations after which the connection may legitimately fail to
    /// complete (a flipped RST or SYN, options that PAWS trips over).
    pub fn breaks_flow(&self) -> bool {
        matches!(self, Mutation::FlipFlags(_) | Mutation::InsertOption(_))
    }
}

/// The strategy of one mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::Drop),
        2 => Just(Mutation::Duplicate),
        2 => (1u8..=4).prop_map(Mutation::Reorder),
        2 => (1u16..=3000).prop_map(Mutation::Delay),
        1 => any::<u16>().prop_map(Mutation::Truncate),
        2 => (any::<u16>(), 1u8..=255, any::<bool>())
            .prop_map(|(at, xor, fix)| Mutation::Corrupt { at, xor, fix }),
        1 => (1u8..=255).prop_map(Mutation::FlipFlags),
        1 => proptest::collection::vec(any::<u8>(), 1..=12).prop_map(Mutation::InsertOption),
        1 => Just(Mutation::ZeroWindow),
    ]
}

/// A case: mutations of the peer's frames by index (of `frames` frames).
pub fn case(frames: usize) -> impl Strategy<Value = Vec<(usize, Mutation)>> {
    let n = frames.max(1);
    proptest::collection::vec((0..n, mutation()), 0..=8)
}

/// Applies a mutation that changes bytes (not timing) to an IPv4 packet;
/// returns false when the frame did not hold what the mutation needs (it
/// is left as it was).
pub fn apply_bytes(ip: &mut Vec<u8>, m: &Mutation) -> bool {
    let ihl = ip.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
    let is_tcp = ip.len() >= ipv4::HEADER_LEN + tcp::HEADER_LEN
        && ip[9] == ipv4::protocol::TCP
        && ihl == ipv4::HEADER_LEN;
    match m {
        Mutation::Truncate(n) => {
            if ip.is_empty() {
                return false;
            }
            let n = usize::from(*n) % ip.len();
            ip.truncate(n);
            true
        }
        Mutation::Corrupt { at, xor, fix } => {
            if ip.is_empty() {
                return false;
            }
            if *fix {
                let start = if is_tcp {
                    ihl + usize::from(ip[ihl + 12] >> 4) * 4
                } else if ip.len() >= ihl + 8 && ip[9] == ipv4::protocol::UDP {
                    ihl + 8
                } else {
                    return false;
                };
                if start >= ip.len() {
                    return false;
                }
                let pos = start + usize::from(*at) % (ip.len() - start);
                ip[pos] ^= xor;
                fix_checksums(ip);
            } else {
                let pos = usize::from(*at) % ip.len();
                ip[pos] ^= xor;
            }
            true
        }
        Mutation::FlipFlags(bits) if is_tcp => {
            ip[ihl + 13] ^= bits;
            fix_checksums(ip);
            true
        }
        Mutation::ZeroWindow if is_tcp => {
            ip[ihl + 14] = 0;
            ip[ihl + 15] = 0;
            fix_checksums(ip);
            true
        }
        Mutation::InsertOption(bytes) if is_tcp => {
            let hl = usize::from(ip[ihl + 12] >> 4) * 4;
            let room = 60usize.saturating_sub(hl);
            let mut ins = bytes.clone();
            // Whole 32-bit words, padded with NOPs.
            while ins.len() % 4 != 0 {
                ins.push(1);
            }
            ins.truncate(room - room % 4);
            if ins.is_empty() {
                return false;
            }
            let at = ihl + tcp::HEADER_LEN;
            ip.splice(at..at, ins.iter().copied());
            ip[ihl + 12] = (((hl + ins.len()) / 4) as u8) << 4 | (ip[ihl + 12] & 0x0f);
            let total = ip.len() as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            fix_checksums(ip);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::Medium;
    use crate::replay::build::ipv4_packet;
    use crate::replay::check::{check_emitted, Emitted};
    use std::net::Ipv4Addr;

    fn seg() -> Vec<u8> {
        let mut s = vec![0u8; 28];
        s[12] = 0x50;
        s[13] = 0x10;
        s[14] = 0x10;
        s[20..].copy_from_slice(b"abcdefgh");
        let mut ip = ipv4_packet(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            6,
            1,
            &s,
        );
        fix_checksums(&mut ip);
        ip
    }

    #[test]
    fn fixed_up_mutations_stay_valid_and_raw_ones_do_not() {
        let fixed = [
            Mutation::Corrupt {
                at: 3,
                xor: 0xff,
                fix: true,
            },
            Mutation::FlipFlags(0x01),
            Mutation::ZeroWindow,
            Mutation::InsertOption(vec![1, 1, 1]),
        ];
        for m in fixed {
            let mut ip = seg();
            assert!(apply_bytes(&mut ip, &m), "{m:?}");
            assert!(check_emitted(Medium::Ip, &ip).is_ok(), "{m:?}");
            assert_ne!(ip, seg(), "{m:?}");
        }
        let mut ip = seg();
        assert!(apply_bytes(&mut ip, &Mutation::ZeroWindow));
        assert!(
            matches!(check_emitted(Medium::Ip, &ip), Ok(Emitted::Tcp { seg, .. }) if seg.window == 0)
        );
        for at in 0..seg().len() as u16 {
            let mut ip = seg();
            apply_bytes(
                &mut ip,
                &Mutation::Corrupt {
                    at,
                    xor: 0x40,
                    fix: false,
                },
            );
            assert!(check_emitted(Medium::Ip, &ip).is_err(), "corrupt at {at}");
        }
    }
}
