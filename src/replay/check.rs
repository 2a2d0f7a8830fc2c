//! Checks shared by the replay engine, the fuzz targets and their
//! regression tests: every frame the stack emits parses with valid
//! checksums, and every queue of an interface stays within its bound.

use std::net::{IpAddr, Ipv4Addr};

use crate::iface::Interface;
use crate::phy::Medium;
use crate::socket::Socket;
use crate::wire::{arp, checksum, ethernet, icmpv4, ipv4, tcp, udp};

/// The TCP fields of a segment the stack emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: tcp::Flags,
    /// Window field as sent (not scaled).
    pub window: u16,
    /// Parsed options.
    pub options: tcp::Options,
    /// Payload.
    pub payload: Vec<u8>,
}

impl TcpSegment {
    /// Sequence space the segment occupies (SYN and FIN count one each).
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

/// What a frame the stack emitted holds, once it passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emitted {
    /// An ARP packet.
    Arp,
    /// An IPv4 fragment (the transport is checked once reassembled by the
    /// receiver, so only the IP header is checked here).
    Fragment {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
    },
    /// A TCP segment.
    Tcp {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
        /// The segment.
        seg: TcpSegment,
    },
    /// A UDP datagram.
    Udp {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload.
        payload: Vec<u8>,
    },
    /// An ICMP message.
    Icmp {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
        /// ICMP type.
        msg_type: u8,
    },
}

/// Parses and checks a frame the stack emitted on `medium`: every header
/// parses and every checksum verifies. `Err` says what is wrong.
pub fn check_emitted(medium: Medium, frame: &[u8]) -> Result<Emitted, String> {
    let ip = match medium {
        Medium::Ip => frame,
        Medium::Ethernet => {
            let e = ethernet::Frame::new_checked(frame)
                .map_err(|e| format!("emitted Ethernet frame does not parse: {e}"))?;
            match e.ethertype() {
                ethernet::ethertype::IPV4 => &frame[ethernet::HEADER_LEN..],
                ethernet::ethertype::ARP => {
                    let p = arp::Packet::new_checked(&frame[ethernet::HEADER_LEN..])
                        .map_err(|e| format!("emitted ARP does not parse: {e}"))?;
                    arp::Repr::parse(&p).map_err(|e| format!("emitted ARP is invalid: {e}"))?;
                    return Ok(Emitted::Arp);
                }
                t => return Err(format!("emitted unknown ethertype {t:#06x}")),
            }
        }
    };
    let p =
        ipv4::Packet::new_checked(ip).map_err(|e| format!("emitted IPv4 does not parse: {e}"))?;
    if !p.verify_checksum() {
        return Err("emitted IPv4 header checksum is wrong".into());
    }
    if p.total_len() != ip.len() {
        return Err(format!(
            "emitted IPv4 total length {} but the frame holds {}",
            p.total_len(),
            ip.len()
        ));
    }
    let (src, dst) = (p.src_addr(), p.dst_addr());
    if p.is_fragment() {
        return Ok(Emitted::Fragment { src, dst });
    }
    let (s, d) = (IpAddr::V4(src), IpAddr::V4(dst));
    match p.protocol() {
        ipv4::protocol::TCP => {
            let t = tcp::Packet::new_checked(p.payload())
                .map_err(|e| format!("emitted TCP does not parse: {e}"))?;
            if !t.verify_checksum(s, d) {
                return Err("emitted TCP checksum is wrong".into());
            }
            let options = tcp::Options::parse(t.options())
                .map_err(|e| format!("emitted TCP options do not parse: {e}"))?;
            Ok(Emitted::Tcp {
                src,
                dst,
                seg: TcpSegment {
                    src_port: t.src_port(),
                    dst_port: t.dst_port(),
                    seq: t.seq_number(),
                    ack: t.ack_number(),
                    flags: t.flags(),
                    window: t.window_len(),
                    options,
                    payload: t.payload().to_vec(),
                },
            })
        }
        ipv4::protocol::UDP => {
            let u = udp::Packet::new_checked(p.payload())
                .map_err(|e| format!("emitted UDP does not parse: {e}"))?;
            if !u.verify_checksum(s, d) {
                return Err("emitted UDP checksum is wrong".into());
            }
            Ok(Emitted::Udp {
                src,
                dst,
                src_port: u.src_port(),
                dst_port: u.dst_port(),
                payload: u.payload().to_vec(),
            })
        }
        ipv4::protocol::ICMP => {
            let c = icmpv4::Packet::new_checked(p.payload())
                .map_err(|e| format!("emitted ICMP does not parse: {e}"))?;
            if !checksum::verify(p.payload()) {
                return Err("emitted ICMP checksum is wrong".into());
            }
            Ok(Emitted::Icmp {
                src,
                dst,
                msg_type: c.msg_type(),
            })
        }
        proto => Err(format!("emitted unknown IP protocol {proto}")),
    }
}

/// Checks that every queue of `iface` is within its configured bound.
pub fn check_bounds(iface: &Interface) -> Result<(), String> {
    let c = iface.config();
    if iface.reassembly_bytes() > c.reassembly.max_bytes {
        return Err(format!(
            "reassembly holds {} bytes, bound {}",
            iface.reassembly_bytes(),
            c.reassembly.max_bytes
        ));
    }
    let pending_bound = c.neighbor.max_pending_neighbors * c.neighbor.max_pending_packets;
    if iface.neighbors_pending() > pending_bound {
        return Err(format!(
            "{} packets wait for ARP, bound {pending_bound}",
            iface.neighbors_pending()
        ));
    }
    for (_, s) in iface.sockets().iter() {
        match s {
            Socket::Tcp(conn) => {
                let tcb = &conn.tcb;
                let cfg = tcb.config();
                let (rq, sq) = (tcb.recv_buf.readable(), tcb.send_buf.len());
                if rq > tcb.recv_buf.capacity().max(cfg.recv_buffer) {
                    return Err(format!("TCP receive queue {rq} over its bound"));
                }
                if tcb.recv_buf.allocated() > tcb.recv_buf.capacity().max(cfg.recv_buffer) {
                    // The ring (out-of-order data included) never outgrows the buffer.
                    return Err(format!(
                        "TCP receive buffer holds {} bytes (out-of-order included) over its bound",
                        tcb.recv_buf.allocated()
                    ));
                }
                if sq > tcb.send_buf.capacity().max(cfg.send_buffer) {
                    return Err(format!("TCP send queue {sq} over its bound"));
                }
            }
            Socket::TcpListener(l) => {
                if l.pending() > l.backlog {
                    return Err(format!(
                        "listener accept queue {} over backlog {}",
                        l.pending(),
                        l.backlog
                    ));
                }
            }
            Socket::Udp(u) => {
                // An empty queue takes any one datagram (up to 64 KiB).
                let bound = u.rx.limit().max(65_535);
                if u.rx.bytes() > bound {
                    return Err(format!(
                        "UDP receive queue {} bytes over its bound {bound}",
                        u.rx.bytes()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::build::{fix_checksums, ipv4_packet};

    fn tcp_ip() -> Vec<u8> {
        let mut seg = vec![0u8; 24];
        seg[0..2].copy_from_slice(&80u16.to_be_bytes());
        seg[2..4].copy_from_slice(&4000u16.to_be_bytes());
        seg[12] = 0x50;
        seg[13] = 0x18;
        seg[20..].copy_from_slice(b"data");
        let mut ip = ipv4_packet(
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            6,
            1,
            &seg,
        );
        fix_checksums(&mut ip);
        ip
    }

    #[test]
    fn a_valid_segment_passes_and_parses() {
        match check_emitted(Medium::Ip, &tcp_ip()).unwrap() {
            Emitted::Tcp { seg, .. } => {
                assert_eq!((seg.src_port, seg.dst_port), (80, 4000));
                assert_eq!(seg.payload, b"data");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn every_damaged_byte_is_caught() {
        let good = tcp_ip();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(
                check_emitted(Medium::Ip, &bad).is_err(),
                "byte {i} flipped went unnoticed"
            );
        }
        let mut short = good.clone();
        short.pop();
        assert!(check_emitted(Medium::Ip, &short).is_err());
    }
}
