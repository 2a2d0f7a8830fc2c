//! IPv4 and IPv6 fragment reassembly (RFC 791 §3.2, RFC 8200 §4.5, RFC 815
//! hole tracking) with bounded memory and a timeout, the same bounds for
//! both.
//!
//! A fragment that overlaps data already held (other than an exact
//! duplicate) discards the whole datagram, as Linux does since 2018 and as
//! RFC 5722 requires for IPv6: overlaps are how fragment attacks hide data.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::time::{Duration, Instant};

/// Limits of the reassembler.
#[derive(Debug, Clone, Copy)]
pub struct ReassemblyConfig {
    /// Datagrams in reassembly at once.
    pub max_datagrams: usize,
    /// Bytes held by all datagrams in reassembly together.
    pub max_bytes: usize,
    /// Time a datagram may take to complete (Linux: 30 s).
    pub timeout: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_datagrams: 64,
            max_bytes: 4 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Identifies the datagram a fragment belongs to (RFC 791).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol (IPv4; 0 for IPv6, whose key has none).
    pub protocol: u8,
    /// Identification field (16 bits in IPv4, 32 in IPv6).
    pub ident: u32,
}

/// One fragment as the interface hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    /// Which datagram.
    pub key: FragmentKey,
    /// The fragment's IP header (options included), kept from the first
    /// fragment to rebuild the datagram. For IPv6: the unfragmentable
    /// part (fixed header and the extension headers before the fragment
    /// header), with the next-header field that named the fragment header
    /// already set to the fragmentable part's.
    pub header: &'a [u8],
    /// Offset of the payload in the datagram, in bytes.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
    /// The fragment's payload.
    pub payload: &'a [u8],
}

/// Why a fragment was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Lengths make no sense (non-final fragment not a multiple of 8, beyond
    /// 65535, or contradicting a known total).
    Malformed,
    /// It overlaps data already held: the datagram was discarded.
    Overlap,
    /// The limits are reached.
    NoRoom,
}

/// What became of a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Held; the datagram is not complete yet.
    Held,
    /// An exact duplicate of held data; ignored.
    Duplicate,
    /// The datagram is complete: here it is, header and payload, with the
    /// header's total length set and its fragment fields cleared (checksum
    /// recomputed), ready to process like any unfragmented packet.
    Complete(Vec<u8>),
}

#[derive(Debug)]
struct Datagram {
    /// First fragment's header, once seen.
    header: Option<Vec<u8>>,
    data: Vec<u8>,
    /// Received byte ranges, sorted and disjoint (adjacent ones merged).
    ranges: Vec<(usize, usize)>,
    total_len: Option<usize>,
    deadline: Instant,
}

impl Datagram {
    fn held(&self) -> usize {
        self.data.len() + self.header.as_ref().map_or(0, |h| h.len())
    }
}

/// A datagram given up on timeout.
#[derive(Debug)]
pub struct Expired {
    /// Its first fragment (header plus up to 8 payload bytes) when that had
    /// arrived: an ICMP time-exceeded (reassembly) is sent only then
    /// (RFC 792).
    pub first: Option<Vec<u8>>,
}

/// The reassembler.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    datagrams: HashMap<FragmentKey, Datagram>,
    bytes: usize,
}

const MAX_DATAGRAM: usize = 65535;

impl Reassembler {
    /// An empty reassembler.
    pub fn new(config: ReassemblyConfig) -> Reassembler {
        Reassembler {
            config,
            datagrams: HashMap::new(),
            bytes: 0,
        }
    }

    /// Bytes held now.
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// Datagrams in progress.
    #[cfg(test)]
    pub fn in_progress(&self) -> usize {
        self.datagrams.len()
    }

    /// The earliest deadline of a datagram in progress.
    pub fn poll_at(&self) -> Option<Instant> {
        self.datagrams.values().map(|d| d.deadline).min()
    }

    /// Removes datagrams whose time is up.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Expired>) {
        let mut freed = 0;
        self.datagrams.retain(|_, d| {
            if d.deadline > now {
                return true;
            }
            freed += d.held();
            let first = d.header.as_ref().map(|h| {
                let mut f = h.clone();
                let n = d
                    .ranges
                    .first()
                    .filter(|r| r.0 == 0)
                    .map_or(0, |r| r.1.min(8));
                f.extend_from_slice(&d.data[..n]);
                f
            });
            out.push(Expired { first });
            false
        });
        self.bytes -= freed;
    }

    fn discard(&mut self, key: &FragmentKey) {
        if let Some(d) = self.datagrams.remove(key) {
            self.bytes -= d.held();
        }
    }

    /// Takes one fragment at `now`.
    pub fn add(&mut self, now: Instant, frag: Fragment<'_>) -> Result<Outcome, Reject> {
        let start = frag.offset;
        let end = start + frag.payload.len();
        let header_len = frag.header.len();
        if end + header_len > MAX_DATAGRAM
            || (frag.more && (frag.payload.len() % 8 != 0 || frag.payload.is_empty()))
        {
            self.discard(&frag.key);
            return Err(Reject::Malformed);
        }
        if !self.datagrams.contains_key(&frag.key) {
            if self.datagrams.len() >= self.config.max_datagrams {
                return Err(Reject::NoRoom);
            }
            self.datagrams.insert(
                frag.key,
                Datagram {
                    header: None,
                    data: Vec::new(),
                    ranges: Vec::new(),
                    total_len: None,
                    deadline: now + self.config.timeout,
                },
            );
        }
        let limit = self.config.max_bytes;
        let d = self.datagrams.get_mut(&frag.key).expect("inserted above");

        // Length consistency with a known end of datagram.
        if let Some(total) = d.total_len {
            if end > total || (!frag.more && end != total) {
                self.discard(&frag.key);
                return Err(Reject::Malformed);
            }
        } else if !frag.more && d.ranges.last().is_some_and(|r| r.1 > end) {
            self.discard(&frag.key);
            return Err(Reject::Malformed);
        }

        // Exact duplicate of a held range, or overlap?
        for &(s, e) in &d.ranges {
            if start >= s && end <= e {
                // Fully inside held data: a duplicate only when identical.
                if d.data[start..end] == *frag.payload {
                    return Ok(Outcome::Duplicate);
                }
                self.discard(&frag.key);
                return Err(Reject::Overlap);
            }
            if start < e && end > s {
                self.discard(&frag.key);
                return Err(Reject::Overlap);
            }
        }

        let grow = end.saturating_sub(d.data.len())
            + if start == 0 && d.header.is_none() {
                header_len
            } else {
                0
            };
        if self.bytes + grow > limit {
            self.discard(&frag.key);
            return Err(Reject::NoRoom);
        }
        let d = self.datagrams.get_mut(&frag.key).expect("still present");
        if d.data.len() < end {
            d.data.resize(end, 0);
        }
        d.data[start..end].copy_from_slice(frag.payload);
        if start == 0 && d.header.is_none() {
            d.header = Some(frag.header.to_vec());
        }
        if !frag.more {
            d.total_len = Some(end);
        }
        // Insert the range, merging with neighbours that touch it.
        let pos = d.ranges.partition_point(|r| r.0 < start);
        d.ranges.insert(pos, (start, end));
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(d.ranges.len());
        for &r in &d.ranges {
            match merged.last_mut() {
                Some(last) if last.1 == r.0 => last.1 = r.1,
                _ => merged.push(r),
            }
        }
        d.ranges = merged;
        self.bytes += grow;

        let complete = matches!((d.total_len, d.ranges.as_slice(), &d.header),
            (Some(total), [(0, e)], Some(_)) if *e == total);
        if !complete {
            return Ok(Outcome::Held);
        }
        let d = self.datagrams.remove(&frag.key).expect("present");
        self.bytes -= d.held();
        let mut header = d.header.expect("checked complete");
        let total = header.len() + d.data.len();
        if header.first().is_some_and(|b| b >> 4 == 6) {
            // IPv6: the payload length covers everything after the fixed
            // header (at most 65535: the offsets are 13 bits of 8 bytes
            // plus one fragment, checked against the limit above).
            let plen = total.saturating_sub(40).min(65535) as u16;
            header[4..6].copy_from_slice(&plen.to_be_bytes());
            header.extend_from_slice(&d.data);
            return Ok(Outcome::Complete(header));
        }
        // Rewrite total length, clear MF and offset, recompute the checksum.
        header[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        header[6] &= 0x40; // keep DF, clear MF and the offset's high bits
        header[7] = 0;
        header[10] = 0;
        header[11] = 0;
        let c = crate::wire::checksum::checksum(&header);
        header[10..12].copy_from_slice(&c.to_be_bytes());
        header.extend_from_slice(&d.data);
        Ok(Outcome::Complete(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn key() -> FragmentKey {
        FragmentKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            protocol: 17,
            ident: 7,
        }
    }

    fn header() -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        h[8] = 64;
        h[9] = 17;
        h
    }

    fn frag<'a>(h: &'a [u8], off: usize, more: bool, p: &'a [u8]) -> Fragment<'a> {
        Fragment {
            key: key(),
            header: h,
            offset: off,
            more,
            payload: p,
        }
    }

    #[test]
    fn out_of_order_completes() {
        let h = header();
        let mut r = Reassembler::new(Default::default());
        let t = Instant::ZERO;
        let data: Vec<u8> = (0..40u8).collect();
        assert_eq!(
            r.add(t, frag(&h, 24, false, &data[24..])),
            Ok(Outcome::Held)
        );
        assert_eq!(r.add(t, frag(&h, 8, true, &data[8..24])), Ok(Outcome::Held));
        match r.add(t, frag(&h, 0, true, &data[..8])).unwrap() {
            Outcome::Complete(p) => {
                assert_eq!(&p[20..], &data[..]);
                assert_eq!(u16::from_be_bytes([p[2], p[3]]), 60);
                assert!(crate::wire::checksum::verify(&p[..20]));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(r.bytes_held(), 0);
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn overlap_discards_datagram_but_duplicate_is_ignored() {
        let h = header();
        let mut r = Reassembler::new(Default::default());
        let t = Instant::ZERO;
        let data = [1u8; 32];
        assert_eq!(r.add(t, frag(&h, 0, true, &data[..16])), Ok(Outcome::Held));
        assert_eq!(
            r.add(t, frag(&h, 0, true, &data[..16])),
            Ok(Outcome::Duplicate)
        );
        assert_eq!(
            r.add(t, frag(&h, 8, true, &data[..16])),
            Err(Reject::Overlap)
        );
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.bytes_held(), 0);
    }

    #[test]
    fn malformed_lengths_rejected() {
        let h = header();
        let mut r = Reassembler::new(Default::default());
        let t = Instant::ZERO;
        assert_eq!(
            r.add(t, frag(&h, 0, true, &[0; 7])),
            Err(Reject::Malformed),
            "non-final fragment must be a multiple of 8"
        );
        assert_eq!(
            r.add(t, frag(&h, 65528, false, &[0; 16])),
            Err(Reject::Malformed),
            "beyond 65535"
        );
        r.add(t, frag(&h, 16, false, &[0; 8])).unwrap();
        assert_eq!(
            r.add(t, frag(&h, 24, true, &[0; 8])),
            Err(Reject::Malformed),
            "beyond the known end"
        );
    }

    #[test]
    fn timeout_and_limits() {
        let h = header();
        let cfg = ReassemblyConfig {
            max_datagrams: 2,
            max_bytes: 100,
            timeout: Duration::from_secs(30),
        };
        let mut r = Reassembler::new(cfg);
        let t = Instant::ZERO;
        let mut k = key();
        for i in 0..2 {
            k.ident = i;
            let mut f = frag(&h, 0, true, &[0; 8]);
            f.key = k;
            r.add(t, f).unwrap();
        }
        k.ident = 9;
        let mut f = frag(&h, 0, true, &[0; 8]);
        f.key = k;
        assert_eq!(r.add(t, f), Err(Reject::NoRoom));
        let mut out = Vec::new();
        r.expire(t + Duration::from_secs(29), &mut out);
        assert!(out.is_empty());
        r.expire(t + Duration::from_secs(30), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].first.as_ref().unwrap().len(), 28);
        assert_eq!(r.bytes_held(), 0);
        // Byte limit.
        let mut r = Reassembler::new(cfg);
        assert_eq!(r.add(t, frag(&h, 8, true, &[0; 96])), Err(Reject::NoRoom));
    }

    proptest! {
        /// Any split of a datagram into 8-byte-aligned fragments, delivered
        /// in any order with duplicates, reassembles to the original.
        #[test]
        fn any_order_reassembles(len in 1usize..3000, cuts in proptest::collection::vec(1usize..400, 1..10), seed in any::<u64>()) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut bounds = vec![0usize];
            for c in cuts {
                let next = (bounds.last().unwrap() + c * 8).min(len);
                if next > *bounds.last().unwrap() { bounds.push(next); }
            }
            if *bounds.last().unwrap() != len { bounds.push(len); }
            let mut frags: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            // Deterministic shuffle and one duplicate.
            let mut s = seed;
            for i in (1..frags.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                frags.swap(i, (s >> 33) as usize % (i + 1));
            }
            let first = frags[0];
            frags.insert(0, first);
            let h = header();
            let mut r = Reassembler::new(Default::default());
            let mut done = None;
            for (a, b) in frags {
                match r.add(Instant::ZERO, frag(&h, a, b != len, &data[a..b])) {
                    Ok(Outcome::Complete(p)) => { done = Some(p); }
                    Ok(_) => {}
                    Err(e) => prop_assert!(false, "rejected: {:?}", e),
                }
            }
            let p = done.expect("complete");
            prop_assert_eq!(&p[20..], &data[..]);
            prop_assert_eq!(r.bytes_held(), 0);
        }
    }
}
