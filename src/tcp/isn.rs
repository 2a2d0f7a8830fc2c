//! Initial sequence numbers (RFC 6528) and the keyed hash behind them.
//!
//! `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`, where
//! `M` is a timer ticking every 4 µs and `F` is SipHash-2-4 keyed with a
//! secret. Sequence numbers of successive connections on the same 4-tuple
//! therefore advance with time (protecting against old duplicates, RFC 9293
//! §3.4.1), while an off-path attacker cannot predict another tuple's ISN.
//!
//! The key must come from a good random source and stay secret; the core
//! never generates it (no I/O, no entropy), the driver passes it in.

use std::net::{IpAddr, SocketAddr};

use super::seq::SeqNumber;
use crate::time::Instant;

/// SipHash-2-4 of `data` under the 128-bit `key` (Aumasson & Bernstein,
/// "SipHash: a fast short-input PRF", 2012). The key is read as two
/// little-endian 64-bit words, like the reference implementation.
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    k.copy_from_slice(&key[..8]);
    let k0 = u64::from_le_bytes(k);
    k.copy_from_slice(&key[8..]);
    let k1 = u64::from_le_bytes(k);
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    fn compress(m: u64, v: &mut [u64; 4]) {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    }
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        compress(u64::from_le_bytes(w), &mut v);
    }
    // Last block: remaining bytes, zero padding, length mod 256 on top.
    let mut last = [0u8; 8];
    let tail = chunks.remainder();
    last[..tail.len()].copy_from_slice(tail);
    last[7] = data.len() as u8;
    compress(u64::from_le_bytes(last), &mut v);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Generator of RFC 6528 initial sequence numbers.
#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl IsnGenerator {
    /// A generator using the secret `key` (draw it from a CSPRNG).
    pub fn new(key: [u8; 16]) -> Self {
        IsnGenerator { key }
    }

    /// The ISN for a connection from `local` to `remote` starting at `now`:
    /// `M + F`, with `M = now / 4 µs` (mod 2^32) and `F` the low 32 bits of
    /// SipHash-2-4 over the 4-tuple.
    pub fn isn(&self, local: SocketAddr, remote: SocketAddr, now: Instant) -> SeqNumber {
        // Two (family, address, port) records: at most 2 * (1 + 16 + 2).
        let mut buf = [0u8; 38];
        let mut n = 0;
        for addr in [local, remote] {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    buf[n] = 4;
                    buf[n + 1..n + 5].copy_from_slice(&ip.octets());
                    n += 5;
                }
                IpAddr::V6(ip) => {
                    buf[n] = 6;
                    buf[n + 1..n + 17].copy_from_slice(&ip.octets());
                    n += 17;
                }
            }
            buf[n..n + 2].copy_from_slice(&addr.port().to_be_bytes());
            n += 2;
        }
        let f = siphash24(&self.key, &buf[..n]) as u32;
        let m = (now.total_micros() / 4) as u32;
        SeqNumber(m.wrapping_add(f))
    }

    /// SipHash-2-4 of arbitrary bytes under this generator's key (for SYN
    /// cookies and similar keyed checks).
    pub fn syn_cookie_hash(&self, data: &[u8]) -> u64 {
        siphash24(&self.key, data)
    }
}

/// Does not print the key.
impl std::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IsnGenerator { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    /// The first 16 entries of `vectors_sip64` from the reference
    /// implementation (key 00..0f, message 00..len-1), as little-endian
    /// output bytes.
    const VECTORS: [[u8; 8]; 16] = [
        [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72],
        [0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74],
        [0x5a, 0x4f, 0xa9, 0xd9, 0x09, 0x80, 0x6c, 0x0d],
        [0x2d, 0x7e, 0xfb, 0xd7, 0x96, 0x66, 0x67, 0x85],
        [0xb7, 0x87, 0x71, 0x27, 0xe0, 0x94, 0x27, 0xcf],
        [0x8d, 0xa6, 0x99, 0xcd, 0x64, 0x55, 0x76, 0x18],
        [0xce, 0xe3, 0xfe, 0x58, 0x6e, 0x46, 0xc9, 0xcb],
        [0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab],
        [0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93],
        [0xb0, 0xe4, 0xa9, 0x0b, 0xdf, 0x82, 0x00, 0x9e],
        [0xf3, 0xb9, 0xdd, 0x94, 0xc5, 0xbb, 0x5d, 0x7a],
        [0xa7, 0xad, 0x6b, 0x22, 0x46, 0x2f, 0xb3, 0xf4],
        [0xfb, 0xe5, 0x0e, 0x86, 0xbc, 0x8f, 0x1e, 0x75],
        [0x90, 0x3d, 0x84, 0xc0, 0x27, 0x56, 0xea, 0x14],
        [0xee, 0xf2, 0x7a, 0x8e, 0x90, 0xca, 0x23, 0xf7],
        [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1],
    ];

    #[test]
    fn reference_vectors() {
        let msg: Vec<u8> = (0..16).collect();
        for (len, want) in VECTORS.iter().enumerate() {
            assert_eq!(
                siphash24(&KEY, &msg[..len]).to_le_bytes(),
                *want,
                "length {len}"
            );
        }
        assert_eq!(siphash24(&KEY, &msg[..15]), 0xa129_ca61_49be_45e5);
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tuples_differ() {
        let g = IsnGenerator::new([0x5a; 16]);
        let t = Instant::from_secs(1);
        let a = g.isn(sa("10.0.0.1:80"), sa("10.0.0.2:40000"), t);
        let b = g.isn(sa("10.0.0.1:80"), sa("10.0.0.2:40001"), t);
        let c = g.isn(sa("10.0.0.2:40000"), sa("10.0.0.1:80"), t);
        let d = g.isn(sa("[::ffff:10.0.0.1]:80"), sa("[::ffff:10.0.0.2]:40000"), t);
        assert!(a != b && a != c && a != d && b != c);
        // Another key gives another ISN.
        let h = IsnGenerator::new([0xa5; 16]);
        assert_ne!(h.isn(sa("10.0.0.1:80"), sa("10.0.0.2:40000"), t), a);
        assert_eq!(format!("{g:?}"), "IsnGenerator { .. }");
    }

    #[test]
    fn advances_with_time() {
        let g = IsnGenerator::new(KEY);
        let (l, r) = (sa("192.0.2.1:1234"), sa("198.51.100.7:443"));
        let a = g.isn(l, r, Instant::from_micros(1_000_000));
        let b = g.isn(l, r, Instant::from_micros(1_000_004));
        let c = g.isn(l, r, Instant::from_micros(2_000_000));
        assert_eq!(b - a, 1);
        assert_eq!(c - a, 250_000);
        // Same tick, same ISN.
        assert_eq!(g.isn(l, r, Instant::from_micros(1_000_003)), a);
    }

    #[test]
    fn cookie_hash_is_keyed_siphash() {
        let g = IsnGenerator::new(KEY);
        let msg: Vec<u8> = (0..8).collect();
        assert_eq!(g.syn_cookie_hash(&msg).to_le_bytes(), VECTORS[8]);
    }

    proptest! {
        #[test]
        #[allow(deprecated)]
        fn matches_std_siphasher(key in any::<[u8; 16]>(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
            use std::hash::Hasher;
            let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
            let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
            let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
            h.write(&data);
            prop_assert_eq!(siphash24(&key, &data), h.finish());
        }

        #[test]
        fn monotonic_over_time(key in any::<[u8; 16]>(), t in any::<u64>(), dt in 0u64..(4 * 0x7fff_ffff),
                               l in any::<SocketAddr>(), r in any::<SocketAddr>()) {
            let g = IsnGenerator::new(key);
            let t0 = Instant::from_micros(t);
            let t1 = t0.saturating_add(crate::time::Duration::from_micros(dt));
            let (a, b) = (g.isn(l, r, t0), g.isn(l, r, t1));
            prop_assert!(b >= a);
            prop_assert_eq!((b - a) as u64, t1.total_micros() / 4 - t / 4);
        }
    }
}
