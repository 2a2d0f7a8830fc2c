//! The Internet checksum (RFC 1071), folded a word at a time, with RFC 1624
//! incremental update.
//!
//! `sum` returns a partial one's-complement sum that callers combine (header,
//! pseudo-header, payload) and finish with [`finish`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to a running partial sum. Adds 32-bit words into 64-bit
/// accumulators without carry handling (input is taken in blocks small
/// enough that none can overflow); the result is folded to 32 bits, so
/// partial sums of separate slices may be added together with [`combine`]
/// (each slice but the last must have even length for the result to be
/// meaningful). A 32-bit word sum is congruent to the 16-bit one's
/// complement sum modulo 0xffff, which is all the final fold keeps.
pub fn sum(data: &[u8]) -> u32 {
    // Blocks small enough that no lane can overflow (2^29 words each).
    const BLOCK: usize = 1 << 31;
    let mut total: u64 = 0;
    for block in data.chunks(BLOCK) {
        total = add_carry(total, sum_block(block) as u64);
    }
    fold64(total)
}

/// Copies `src` into `dst` (of the same length) and returns [`sum`] of the
/// bytes copied, in one pass over them: the payload copy into an outgoing
/// segment and its checksum cost one trip through memory instead of two.
pub fn copy_and_sum(dst: &mut [u8], src: &[u8]) -> u32 {
    assert_eq!(dst.len(), src.len(), "copy_and_sum: lengths differ");
    const BLOCK: usize = 1 << 31;
    let mut total: u64 = 0;
    for (d, s) in dst.chunks_mut(BLOCK).zip(src.chunks(BLOCK)) {
        let mut lanes = [0u64; 8];
        let mut dc = d.chunks_exact_mut(32);
        let mut sc = s.chunks_exact(32);
        for (dw, sw) in (&mut dc).zip(&mut sc) {
            dw.copy_from_slice(sw);
            for (lane, w) in lanes.iter_mut().zip(sw.chunks_exact(4)) {
                *lane += u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as u64;
            }
        }
        let native = lanes.iter().fold(0u64, |a, &l| add_carry(a, l));
        let folded = fold(fold64(native));
        let rest = sc.remainder();
        dc.into_remainder().copy_from_slice(rest);
        let tail = sum_block(rest) as u64;
        let block = add_carry(u16::from_be(folded) as u64, tail);
        total = add_carry(total, fold64(block) as u64);
    }
    fold64(total)
}

/// A partial sum of bytes that start at an odd offset of the summed data,
/// made to combine with sums taken at even offsets (RFC 1071 §2(B): the
/// sum of byte-swapped data is the byte-swapped sum).
pub fn at_odd_offset(partial: u32) -> u32 {
    fold(partial).swap_bytes() as u32
}

/// One's-complement 64-bit addition (end-around carry).
fn add_carry(acc: u64, w: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(w);
    s + carry as u64
}

/// [`sum`] of at most 2^31 bytes. The bulk is summed as native-endian
/// 32-bit words into eight 64-bit lanes (no byte swap, no carry: the
/// compiler vectorises it); the one's complement sum is byte-order
/// independent (RFC 1071 §2(B)), so the folded result is swapped into
/// network order once at the end. The tail is added as big-endian pairs.
fn sum_block(data: &[u8]) -> u32 {
    let mut lanes = [0u64; 8];
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        for (lane, w) in lanes.iter_mut().zip(c.chunks_exact(4)) {
            *lane += u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as u64;
        }
    }
    let native = lanes.iter().fold(0u64, |a, &l| add_carry(a, l));
    let folded = fold(fold64(native));
    let mut acc = u16::from_be(folded) as u64;
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc = add_carry(acc, u16::from_be_bytes([p[0], p[1]]) as u64);
    }
    if let [last] = pairs.remainder() {
        acc = add_carry(acc, (*last as u64) << 8);
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    // Fold 64 -> 32 with end-around carry.
    acc = (acc >> 32) + (acc & 0xffff_ffff);
    acc = (acc >> 32) + (acc & 0xffff_ffff);
    acc as u32
}

/// Adds partial sums together.
pub fn combine(sums: &[u32]) -> u32 {
    fold64(sums.iter().map(|&s| s as u64).sum())
}

/// Folds a partial sum to 16 bits (not complemented).
pub fn fold(acc: u32) -> u16 {
    let mut a = acc;
    while a > 0xffff {
        a = (a >> 16) + (a & 0xffff);
    }
    a as u16
}

/// The checksum field value for a partial sum: folded and complemented.
pub fn finish(acc: u32) -> u16 {
    !fold(acc)
}

/// The checksum of `data` alone, ready to store.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// True when `data` (checksum field included) sums to all ones.
pub fn verify(data: &[u8]) -> bool {
    fold(sum(data)) == 0xffff
}

/// Partial sum of the IPv4 pseudo-header for a transport segment.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let mut acc: u64 = 0;
    acc += u16::from_be_bytes([s[0], s[1]]) as u64 + u16::from_be_bytes([s[2], s[3]]) as u64;
    acc += u16::from_be_bytes([d[0], d[1]]) as u64 + u16::from_be_bytes([d[2], d[3]]) as u64;
    acc += protocol as u64;
    acc += (length >> 16) as u64 + (length & 0xffff) as u64;
    fold64(acc)
}

/// Partial sum of the IPv6 pseudo-header for a transport segment.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let acc = sum(&src.octets()) as u64
        + sum(&dst.octets()) as u64
        + (length >> 16) as u64
        + (length & 0xffff) as u64
        + next_header as u64;
    fold64(acc)
}

/// Partial sum of the pseudo-header for either family; `None` when the two
/// addresses are of different families.
pub fn pseudo_header(
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    protocol: u8,
    length: u32,
) -> Option<u32> {
    use std::net::IpAddr::*;
    match (src, dst) {
        (V4(s), V4(d)) => Some(pseudo_header_v4(s, d, protocol, length)),
        (V6(s), V6(d)) => Some(pseudo_header_v6(s, d, protocol, length)),
        _ => None,
    }
}

/// RFC 1624 incremental update: the new checksum field after a 16-bit word
/// covered by checksum `old_csum` changed from `old` to `new`
/// (HC' = ~(~HC + ~m + m')).
pub fn update(old_csum: u16, old: u16, new: u16) -> u16 {
    let acc = (!old_csum as u32) + (!old as u32) + new as u32;
    !fold(acc)
}

/// Incremental update for a 32-bit field (e.g. an IPv4 address or a sequence
/// number) that changed from `old` to `new`.
pub fn update32(old_csum: u16, old: u32, new: u32) -> u16 {
    let c = update(old_csum, (old >> 16) as u16, (new >> 16) as u16);
    update(c, old as u16, new as u16)
}

/// Completes a partial checksum in place, as a device with transmit
/// checksum offload does: the 16-bit field at `start + offset` holds only the
/// pseudo-header sum, so the sum from `start` to the end of `frame` is the
/// whole sum and goes into the field. False (nothing changed) when the field
/// lies outside `frame`.
pub fn complete_partial(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    if frame.len() < at + 2 {
        return false;
    }
    let c = finish(sum(&frame[start..]));
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_and_sum_matches_copy_then_sum() {
        for len in [
            0usize, 1, 2, 3, 31, 32, 33, 64, 100, 1447, 1448, 1500, 65_000,
        ] {
            let src: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut dst = vec![0u8; len];
            let s = copy_and_sum(&mut dst, &src);
            assert_eq!(dst, src);
            assert_eq!(fold(s), fold(sum(&src)), "len {len}");
            // Split at an odd point: the second part's sum is swapped.
            if len > 3 {
                let k = (len / 2) | 1;
                let a = sum(&src[..k]);
                let b = at_odd_offset(sum(&src[k..]));
                assert_eq!(
                    fold(combine(&[a, b])),
                    fold(sum(&src)),
                    "len {len} split {k}"
                );
            }
        }
    }

    use super::*;

    /// Found by the live_stack fuzz target: sixteen 0xff bytes drive the
    /// 64-bit accumulator to all ones; the 16-bit tail then wrapped it and
    /// lost the carry.
    #[test]
    fn all_ones_accumulator_keeps_the_tail_carry() {
        let mut d = vec![0xffu8; 16];
        d.extend_from_slice(&[0x08, 0xdb, 0xff]);
        // Reference: plain 16-bit one's-complement sum.
        let mut r: u32 = 0;
        for p in d.chunks(2) {
            let w = if p.len() == 2 {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                u16::from(p[0]) << 8
            };
            r += u32::from(w);
            r = (r & 0xffff) + (r >> 16);
        }
        assert_eq!(fold(sum(&d)), r as u16);
        let c = checksum(&d[..18]);
        let mut with = d[..18].to_vec();
        with.extend_from_slice(&c.to_be_bytes());
        assert!(verify(&with));
    }
    use proptest::prelude::*;

    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                (c[0] as u16) << 8
            };
            acc += w as u32;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A textbook IPv4 header with checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&h));
    }

    proptest! {
        #[test]
        fn matches_naive(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(checksum(&data), naive(&data));
        }

        #[test]
        fn split_sums_combine(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
            let cut = (cut.min(data.len())) & !1;
            let whole = sum(&data);
            let parts = combine(&[sum(&data[..cut]), sum(&data[cut..])]);
            prop_assert_eq!(fold(whole), fold(parts));
        }

        #[test]
        fn incremental_update_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            idx in 0usize..100,
            new in any::<u16>()
        ) {
            let i = (idx % (data.len() / 2)) * 2;
            let old_csum = checksum(&data);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let fresh = checksum(&data);
            let inc = update(old_csum, old, new);
            // 0x0000 and 0xffff are the same value in one's complement.
            prop_assert!(inc == fresh || (inc == 0xffff && fresh == 0) || (inc == 0 && fresh == 0xffff));
        }
    }
}
