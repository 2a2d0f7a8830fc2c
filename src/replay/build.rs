//! Small builders for the frames the replay engine and the fuzz harness
//! inject: an IPv4 header around a payload, a link header around that, and
//! checksum fix-ups.

use std::net::{IpAddr, Ipv4Addr};

use crate::phy::Medium;
use crate::wire::{checksum, ethernet, icmpv4, ipv4, tcp, udp, EthernetAddress};

/// An IPv4 packet from `src` to `dst` carrying `payload` (already holding
/// its transport header), with a valid header checksum.
pub fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0u8; ipv4::HEADER_LEN + payload.len()];
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident,
        dont_frag: protocol == ipv4::protocol::TCP,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    p[ipv4::HEADER_LEN..].copy_from_slice(payload);
    p
}

/// `ip` framed for `medium`: bare on [`Medium::Ip`], behind an Ethernet
/// header (IPv4 ethertype) from `src` to `dst` otherwise.
pub fn link_frame(
    medium: Medium,
    src: EthernetAddress,
    dst: EthernetAddress,
    ethertype: u16,
    ip: &[u8],
) -> Vec<u8> {
    match medium {
        Medium::Ip => ip.to_vec(),
        Medium::Ethernet => {
            let mut f = vec![0u8; ethernet::HEADER_LEN + ip.len()];
            {
                let mut e = ethernet::Frame::new_unchecked(&mut f[..]);
                e.set_dst_addr(dst);
                e.set_src_addr(src);
                e.set_ethertype(ethertype);
            }
            f[ethernet::HEADER_LEN..].copy_from_slice(ip);
            f
        }
    }
}

/// Recomputes the IPv4 header checksum and, when the packet is not a
/// fragment and its transport header fits, the TCP, UDP or ICMP checksum.
/// Lengths are left as they are; anything that does not fit is skipped.
pub fn fix_checksums(ip: &mut [u8]) {
    if ip.len() < ipv4::HEADER_LEN {
        return;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < ipv4::HEADER_LEN || ihl > ip.len() {
        return;
    }
    ip[10] = 0;
    ip[11] = 0;
    let c = checksum::checksum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & 0x3fff != 0 {
        return;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total < ihl || total > ip.len() {
        return;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let (s, d) = (IpAddr::V4(src), IpAddr::V4(dst));
    let proto = ip[9];
    let payload = &mut ip[ihl..total];
    match proto {
        ipv4::protocol::TCP if payload.len() >= tcp::HEADER_LEN => {
            let mut t = tcp::Packet::new_unchecked(payload);
            t.fill_checksum(s, d);
        }
        ipv4::protocol::UDP if payload.len() >= udp::HEADER_LEN => {
            let len = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
            if len < udp::HEADER_LEN || len > payload.len() {
                return;
            }
            let mut u = udp::Packet::new_unchecked(payload);
            u.fill_checksum(s, d);
        }
        ipv4::protocol::ICMP if payload.len() >= icmpv4::HEADER_LEN => {
            payload[2] = 0;
            payload[3] = 0;
            let c = checksum::checksum(payload);
            payload[2..4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}
