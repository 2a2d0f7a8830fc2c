//! Segmentation and checksum completion in software: what a device with
//! TSO/GSO and checksum offload does to a frame the stack hands it (see
//! [`FrameMeta`]; checksum completion itself is
//! [`crate::wire::checksum::complete_partial`]). The simulator uses it to stand in for such a device, and
//! any device without offload could use it as its fallback.

use std::net::IpAddr;

use crate::link::{Checksum, FrameMeta};
use crate::wire::checksum;

/// Why a frame could not be segmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// Too short for the headers it claims, or not IPv4/IPv6 carrying TCP.
    Malformed,
    /// A super-segment without a partial checksum (a device never gets one).
    NoPartialChecksum,
}

/// Turns `frame` (`link` bytes of link header, then an IP packet) into the
/// frames the wire carries, each passed to `out`: a TCP super-segment is cut
/// into segments of `meta.gso_size` payload bytes, as Linux's
/// `tcp_gso_segment` cuts them — headers copied, sequence numbers advanced,
/// IP lengths (and IPv4 identification and header checksum) fixed, FIN and
/// PSH only on the last, CWR only on the first, every TCP checksum complete.
/// Any other frame has its partial checksum completed.
pub fn segment(
    frame: &[u8],
    link: usize,
    meta: FrameMeta,
    out: &mut dyn FnMut(&[u8]),
) -> Result<usize, GsoError> {
    if meta.gso_size == 0 {
        let mut f = frame.to_vec();
        if !meta.checksum.complete(&mut f) {
            return Err(GsoError::Malformed);
        }
        out(&f);
        return Ok(1);
    }
    if !matches!(meta.checksum, Checksum::Partial { .. }) {
        return Err(GsoError::NoPartialChecksum);
    }
    let ip = frame.get(link..).ok_or(GsoError::Malformed)?;
    let (v6, ip_hlen) = match ip.first().map(|b| b >> 4) {
        Some(4) => (false, ((ip[0] & 0x0f) as usize) * 4),
        Some(6) => (true, 40),
        _ => return Err(GsoError::Malformed),
    };
    let proto = if v6 { ip.get(6) } else { ip.get(9) };
    if proto != Some(&6) || ip_hlen < 20 {
        return Err(GsoError::Malformed);
    }
    let tcp_at = link + ip_hlen;
    let thl = frame
        .get(tcp_at + 12)
        .map(|b| ((b >> 4) as usize) * 4)
        .ok_or(GsoError::Malformed)?;
    let hdrs = tcp_at + thl;
    if thl < 20 || frame.len() < hdrs {
        return Err(GsoError::Malformed);
    }
    let payload = &frame[hdrs..];
    let mss = meta.gso_size as usize;
    let seq0 = u32::from_be_bytes(frame[tcp_at + 4..tcp_at + 8].try_into().expect("4"));
    let ident0 = u16::from_be_bytes([frame[link + 4], frame[link + 5]]);
    let flags0 = frame[tcp_at + 13];
    let count = payload.len().div_ceil(mss).max(1);
    let mut seg = Vec::with_capacity(hdrs + mss);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        seg.clear();
        seg.extend_from_slice(&frame[..hdrs]);
        seg.extend_from_slice(chunk);
        let last = i + 1 == count;
        if v6 {
            let plen = (seg.len() - link - 40) as u16;
            seg[link + 4..link + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let tot = (seg.len() - link) as u16;
            seg[link + 2..link + 4].copy_from_slice(&tot.to_be_bytes());
            let id = ident0.wrapping_add(i as u16);
            seg[link + 4..link + 6].copy_from_slice(&id.to_be_bytes());
            seg[link + 10..link + 12].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(&seg[link..link + ip_hlen]);
            seg[link + 10..link + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        seg[tcp_at + 4..tcp_at + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if !last {
            flags &= !(0x01 | 0x08); // FIN, PSH
        }
        if i > 0 {
            flags &= !0x80; // CWR
        }
        seg[tcp_at + 13] = flags;
        // Recompute from scratch: the pseudo-header with this length.
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            let a: [u8; 16] = seg[link + 8..link + 24].try_into().expect("16");
            let b: [u8; 16] = seg[link + 24..link + 40].try_into().expect("16");
            (a.into(), b.into())
        } else {
            let a: [u8; 4] = seg[link + 12..link + 16].try_into().expect("4");
            let b: [u8; 4] = seg[link + 16..link + 20].try_into().expect("4");
            (a.into(), b.into())
        };
        let tcp_len = (seg.len() - tcp_at) as u32;
        let ph = checksum::pseudo_header(src, dst, 6, tcp_len).unwrap_or(0);
        seg[tcp_at + 16..tcp_at + 18].copy_from_slice(&[0, 0]);
        let c = checksum::finish(checksum::combine(&[ph, checksum::sum(&seg[tcp_at..])]));
        seg[tcp_at + 16..tcp_at + 18].copy_from_slice(&c.to_be_bytes());
        out(&seg);
    }
    Ok(count)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::tcp::{self, Flags};
    use crate::wire::{ipv4, ipv6};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn repr(seq: u32, flags: Flags) -> tcp::Repr<'static> {
        tcp::Repr {
            src_port: 1000,
            dst_port: 80,
            seq_number: seq,
            ack_number: 7,
            flags,
            window_len: 500,
            urgent_at: 0,
            options: tcp::Options {
                timestamps: Some((1, 2)),
                ..tcp::Options::default()
            },
            payload: &[],
        }
    }

    /// The first sequence number of [`super_v4`]'s super-segments (the
    /// wrap is 4 KiB on).
    pub(crate) const SUPER_SEQ: u32 = 0xffff_f000;

    /// A super-segment as the interface builds it: payload, header with
    /// the pseudo-header sum only (IPv4, no link header).
    pub(crate) fn super_v4(payload: &[u8], flags: Flags) -> Vec<u8> {
        let r = repr(SUPER_SEQ, flags);
        let hl = r.header_len();
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut f = vec![0u8; 20 + hl + payload.len()];
        ipv4::Repr {
            src_addr: s,
            dst_addr: d,
            protocol: 6,
            payload_len: hl + payload.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 65534,
            dont_frag: true,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut f[..]));
        f[20 + hl..].copy_from_slice(payload);
        r.emit_partial(
            &mut tcp::Packet::new_unchecked(&mut f[20..]),
            IpAddr::V4(s),
            IpAddr::V4(d),
        );
        f
    }

    #[test]
    fn cuts_an_ipv4_super_segment_like_the_kernel() {
        let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let f = super_v4(&payload, Flags::ACK | Flags::PSH | Flags::FIN);
        let meta = FrameMeta {
            checksum: Checksum::Partial {
                start: 20,
                offset: 16,
            },
            gso_size: 1448,
        };
        let mut segs = Vec::new();
        assert_eq!(segment(&f, 0, meta, &mut |s| segs.push(s.to_vec())), Ok(3));
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let ip = ipv4::Packet::new_checked(&s[..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.ident(), 65534u16.wrapping_add(i as u16));
            let t = tcp::Packet::new_checked(ip.payload()).unwrap();
            let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
            let r = tcp::Repr::parse(&t, src, dst, true).expect("checksum verifies");
            assert_eq!(r.seq_number, 0xffff_f000u32.wrapping_add(1448 * i as u32));
            let last = i == 2;
            assert_eq!(r.flags.fin(), last);
            assert_eq!(r.flags.psh(), last);
            assert!(r.flags.ack());
            assert_eq!(r.payload.len(), if last { 3000 - 2 * 1448 } else { 1448 });
            joined.extend_from_slice(r.payload);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn cuts_an_ipv6_super_segment_and_completes_plain_checksums() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let payload = vec![0xabu8; 2500];
        let r = repr(10, Flags::ACK);
        let hl = r.header_len();
        let mut f = vec![0u8; 14 + 40 + hl + payload.len()];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        ipv6::Repr {
            src_addr: s,
            dst_addr: d,
            next_header: 6,
            payload_len: hl + payload.len(),
            hop_limit: 64,
        }
        .emit(&mut f[14..54]);
        f[54 + hl..].copy_from_slice(&payload);
        r.emit_partial(
            &mut tcp::Packet::new_unchecked(&mut f[54..]),
            IpAddr::V6(s),
            IpAddr::V6(d),
        );
        let meta = FrameMeta {
            checksum: Checksum::Partial {
                start: 54,
                offset: 16,
            },
            gso_size: 1000,
        };
        let mut segs = Vec::new();
        assert_eq!(segment(&f, 14, meta, &mut |x| segs.push(x.to_vec())), Ok(3));
        for (i, seg) in segs.iter().enumerate() {
            let t = tcp::Packet::new_checked(&seg[54..]).unwrap();
            let r = tcp::Repr::parse(&t, IpAddr::V6(s), IpAddr::V6(d), true).unwrap();
            assert_eq!(r.seq_number, 10 + 1000 * i as u32);
            assert_eq!(
                u16::from_be_bytes([seg[18], seg[19]]) as usize,
                seg.len() - 54
            );
        }
        // Not a super-segment: only the checksum is completed.
        let small = super_v4(b"hello", Flags::ACK);
        let meta = FrameMeta {
            checksum: Checksum::Partial {
                start: 20,
                offset: 16,
            },
            gso_size: 0,
        };
        let mut one = Vec::new();
        assert_eq!(segment(&small, 0, meta, &mut |x| one = x.to_vec()), Ok(1));
        let t = tcp::Packet::new_checked(&one[20..]).unwrap();
        assert!(t.verify_checksum(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
        ));
        // Garbage is refused, not a panic.
        let gso = FrameMeta {
            gso_size: 100,
            ..meta
        };
        assert_eq!(
            segment(&[0x45, 0, 0], 0, gso, &mut |_| {}),
            Err(GsoError::Malformed)
        );
        assert_eq!(segment(&[], 0, gso, &mut |_| {}), Err(GsoError::Malformed));
        assert_eq!(
            segment(
                &small,
                0,
                FrameMeta {
                    gso_size: 100,
                    ..FrameMeta::default()
                },
                &mut |_| {}
            ),
            Err(GsoError::NoPartialChecksum)
        );
    }
}
