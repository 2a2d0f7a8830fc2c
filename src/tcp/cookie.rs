//! SYN cookies (RFC 4987 §3.6), as Linux builds them: when the SYN queue is
//! full the listener keeps no state; the SYN-ACK's initial sequence number
//! carries a keyed hash of the 4-tuple and the client's ISN, a coarse time
//! counter and the MSS (as an index into a table); window scale and
//! SACK-permitted ride in the low bits of the timestamp value, which the
//! client echoes back in TSecr.

use std::net::SocketAddr;

use super::isn::IsnGenerator;
use crate::time::Instant;

/// MSS values a cookie can carry (3 bits).
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1400, 1440, 1460, 4312, 8960];

/// Seconds per tick of the cookie clock; a cookie is good for this tick and
/// the one before (64–128 s, like Linux's two minutes).
const PERIOD_SECS: u64 = 64;

fn tick(now: Instant) -> u32 {
    ((now.total_micros() / 1_000_000 / PERIOD_SECS) & 0x1f) as u32
}

fn hash(key: &IsnGenerator, local: SocketAddr, remote: SocketAddr, peer_isn: u32, t: u32) -> u32 {
    let mut b = [0u8; 48];
    let mut n = 0;
    for a in [local, remote] {
        match a.ip() {
            std::net::IpAddr::V4(ip) => {
                b[n..n + 4].copy_from_slice(&ip.octets());
                n += 4;
            }
            std::net::IpAddr::V6(ip) => {
                b[n..n + 16].copy_from_slice(&ip.octets());
                n += 16;
            }
        }
        b[n..n + 2].copy_from_slice(&a.port().to_be_bytes());
        n += 2;
    }
    b[n..n + 4].copy_from_slice(&peer_isn.to_be_bytes());
    n += 4;
    b[n..n + 4].copy_from_slice(&t.to_be_bytes());
    n += 4;
    key.syn_cookie_hash(&b[..n]) as u32 & 0x00ff_ffff
}

/// The largest table MSS not above `mss`.
pub fn mss_index(mss: u16) -> usize {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0)
}

/// The cookie (our ISN) for a SYN with ISN `peer_isn` and MSS `mss`.
pub fn encode(
    key: &IsnGenerator,
    local: SocketAddr,
    remote: SocketAddr,
    peer_isn: u32,
    mss: u16,
    now: Instant,
) -> u32 {
    let t = tick(now);
    let m = mss_index(mss) as u32;
    (t << 27) | (m << 24) | hash(key, local, remote, peer_isn, t)
}

/// Checks the cookie an ACK returns (`ack - 1`) against the ACK's
/// `seq - 1` (the client's ISN); gives the MSS it encoded.
pub fn decode(
    key: &IsnGenerator,
    local: SocketAddr,
    remote: SocketAddr,
    peer_isn: u32,
    cookie: u32,
    now: Instant,
) -> Option<u16> {
    let t = cookie >> 27;
    let cur = tick(now);
    let age = cur.wrapping_sub(t) & 0x1f;
    if age > 1 {
        return None;
    }
    if hash(key, local, remote, peer_isn, t) != cookie & 0x00ff_ffff {
        return None;
    }
    Some(MSS_TABLE[((cookie >> 24) & 7) as usize])
}

/// A timestamp value carrying the peer's window scale (0xf: none) and
/// SACK-permitted in its low 5 bits, with the clock in the rest.
pub fn ts_encode(clock_ms: u32, wscale: Option<u8>, sack: bool) -> u32 {
    (clock_ms & !0x1f) | wscale.map_or(0xf, |w| w.min(14) as u32) | ((sack as u32) << 4)
}

/// What [`ts_encode`] put into a TSval that comes back as TSecr.
pub fn ts_decode(tsecr: u32) -> (Option<u8>, bool) {
    let w = (tsecr & 0xf) as u8;
    ((w != 0xf).then_some(w), tsecr & 0x10 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn cookie_round_trip_and_expiry() {
        let key = IsnGenerator::new([7; 16]);
        let l: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let r: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let now = Instant::from_secs(1000);
        let c = encode(&key, l, r, 12345, 1460, now);
        assert_eq!(decode(&key, l, r, 12345, c, now), Some(1460));
        assert_eq!(
            decode(&key, l, r, 12345, c, now + Duration::from_secs(64)),
            Some(1460)
        );
        assert_eq!(
            decode(&key, l, r, 12345, c, now + Duration::from_secs(200)),
            None,
            "expired"
        );
        assert_eq!(decode(&key, l, r, 12346, c, now), None, "other client ISN");
        let r2: SocketAddr = "10.0.0.1:4001".parse().unwrap();
        assert_eq!(decode(&key, l, r2, 12345, c, now), None, "other tuple");
        assert_eq!(decode(&key, l, r, 12345, c ^ 1, now), None, "forged");
        assert_eq!(
            decode(&key, l, r, 12345, encode(&key, l, r, 12345, 1000, now), now),
            Some(536)
        );
        assert_eq!(
            decode(&key, l, r, 12345, encode(&key, l, r, 12345, 9000, now), now),
            Some(8960)
        );
    }

    #[test]
    fn timestamp_bits() {
        assert_eq!(ts_decode(ts_encode(123456, Some(7), true)), (Some(7), true));
        assert_eq!(ts_decode(ts_encode(123456, None, false)), (None, false));
        assert!(ts_encode(123456, Some(7), true) <= 123456 | 0x1f);
    }

    #[test]
    fn forged_cookies_rarely_pass() {
        let key = IsnGenerator::new([9; 16]);
        let l: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let r: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let now = Instant::from_secs(5000);
        let mut x: u32 = 0x1234_5678;
        let mut passed = 0;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if decode(&key, l, r, 1, x, now).is_some() {
                passed += 1;
            }
        }
        // 2 valid ticks of 32, 1 in 2^24 hash match: expect ~0.
        assert!(passed <= 2, "{passed}");
    }
}
