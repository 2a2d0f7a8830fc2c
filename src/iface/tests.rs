//! Interface tests: frames in, frames out, virtual time.

use super::*;
use crate::link::FrameBatch;
use crate::time::Duration;
use crate::wire::{checksum, icmpv4, udp};
use std::io;
use std::net::SocketAddr;

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const MY_HW: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const PEER_HW: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);

fn iface(medium: Medium) -> Interface {
    let mut c = Config::new(medium);
    c.addrs.push(Ipv4Cidr::new(ME, 24).unwrap());
    c.hardware_addr = Some(MY_HW);
    c.announce = false;
    Interface::new(c, Instant::ZERO)
}

fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 42,
        dont_frag: false,
    };
    let mut buf = vec![0u8; ipv4::HEADER_LEN + payload.len()];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
    buf[ipv4::HEADER_LEN..].copy_from_slice(payload);
    buf
}

fn udp_packet(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; udp::HEADER_LEN + data.len()];
    udp::Repr {
        src_port: sport,
        dst_port: dport,
    }
    .emit(
        &mut udp::Packet::new_unchecked(&mut u[..]),
        IpAddr::V4(src),
        IpAddr::V4(dst),
        data,
    );
    ip_packet(src, dst, ipv4::protocol::UDP, &u)
}

fn echo_request(seq: u16, data: &[u8]) -> Vec<u8> {
    let r = icmpv4::Repr::EchoRequest {
        ident: 0x1234,
        seq_no: seq,
        data,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]));
    ip_packet(PEER, ME, ipv4::protocol::ICMP, &b)
}

fn eth(dst: EthernetAddress, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + payload.len()];
    ethernet::Repr {
        src_addr: PEER_HW,
        dst_addr: dst,
        ethertype,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    f[ethernet::HEADER_LEN..].copy_from_slice(payload);
    f
}

fn out(i: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
    let mut b = FrameBatch::new(4096, 2000);
    i.poll_transmit(now, &mut b);
    b.iter().map(|f| f.to_vec()).collect()
}

fn parse_ip(f: &[u8]) -> ipv4::Packet<&[u8]> {
    let p = ipv4::Packet::new_checked(f).expect("valid IPv4");
    assert!(p.verify_checksum());
    p
}

#[test]
fn answers_ping_on_ip_medium() {
    let mut i = iface(Medium::Ip);
    let t = Instant::from_millis(5);
    i.handle_frame(t, &echo_request(7, b"hello ping"));
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let p = parse_ip(&frames[0]);
    assert_eq!((p.src_addr(), p.dst_addr()), (ME, PEER));
    let ic = icmpv4::Packet::new_checked(p.payload()).unwrap();
    match icmpv4::Repr::parse(&ic).unwrap() {
        icmpv4::Repr::EchoReply {
            ident,
            seq_no,
            data,
        } => {
            assert_eq!((ident, seq_no, data), (0x1234, 7, &b"hello ping"[..]));
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(i.counters().icmp.in_type[8], 1);
    assert_eq!(i.counters().icmp.out_type[0], 1);
}

#[test]
fn arp_request_answered_and_ping_resolves() {
    let mut i = iface(Medium::Ethernet);
    let t = Instant::from_millis(1);
    let req = arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: PEER_HW,
        source_protocol_addr: PEER,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ME,
    };
    let mut a = vec![0u8; req.buffer_len()];
    req.emit(&mut arp::Packet::new_unchecked(&mut a[..]));
    i.handle_frame(
        t,
        &eth(EthernetAddress::BROADCAST, ethernet::ethertype::ARP, &a),
    );
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let f = ethernet::Frame::new_checked(&frames[0][..]).unwrap();
    assert_eq!((f.src_addr(), f.dst_addr()), (MY_HW, PEER_HW));
    let reply = arp::Repr::parse(&arp::Packet::new_checked(f.payload()).unwrap()).unwrap();
    assert_eq!(reply.operation, arp::Operation::Reply);
    assert_eq!(reply.source_protocol_addr, ME);
    assert_eq!(reply.source_hardware_addr, MY_HW);
    // The request taught us the peer: a ping is answered at once.
    i.handle_frame(
        t,
        &eth(MY_HW, ethernet::ethertype::IPV4, &echo_request(1, b"x")),
    );
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let f = ethernet::Frame::new_checked(&frames[0][..]).unwrap();
    assert_eq!(f.dst_addr(), PEER_HW);
}

/// The answer to an on-link sender takes its link address from the
/// datagram being answered: no ARP round trip. A datagram never overrides what is
/// known (a forged source MAC would otherwise redirect the peer's traffic),
/// and an off-link source teaches nothing.
#[test]
fn on_link_datagram_teaches_its_sender() {
    let mut i = iface(Medium::Ethernet);
    let t = Instant::from_millis(1);
    i.handle_frame(
        t,
        &eth(MY_HW, ethernet::ethertype::IPV4, &echo_request(1, b"x")),
    );
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1, "the echo reply, no ARP request");
    let f = ethernet::Frame::new_checked(&frames[0][..]).unwrap();
    assert_eq!(f.ethertype(), ethernet::ethertype::IPV4);
    assert_eq!(f.dst_addr(), PEER_HW);
    assert_eq!(i.counters().link.arp_requests_out, 0);
    // Another MAC claiming the same source: ignored, replies still go to
    // the first.
    let mut forged = eth(MY_HW, ethernet::ethertype::IPV4, &echo_request(2, b"y"));
    forged[6..12].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    i.handle_frame(t, &forged);
    let frames = out(&mut i, t);
    let f = ethernet::Frame::new_checked(&frames[0][..]).unwrap();
    assert_eq!(f.dst_addr(), PEER_HW);
    // Off-link source (no gateway configured: no route, nothing learned).
    let far = Ipv4Addr::new(192, 0, 2, 7);
    let mut e = echo_request(3, b"z");
    e[12..16].copy_from_slice(&far.octets());
    let mut p = ipv4::Packet::new_unchecked(&mut e[..]);
    p.fill_checksum();
    i.handle_frame(t, &eth(MY_HW, ethernet::ethertype::IPV4, &e));
    assert!(i.neighbors.lookup(far, t).is_none());
}

#[test]
fn unresolved_neighbour_queues_then_flushes_or_expires() {
    let mut i = iface(Medium::Ethernet);
    let t = Instant::from_millis(1);
    let h = i.udp_bind("0.0.0.0:5000".parse().unwrap()).unwrap();
    i.udp_send_to(h, b"one", SocketAddr::from((PEER, 9)))
        .unwrap();
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1, "an ARP request, the datagram waits");
    let f = ethernet::Frame::new_checked(&frames[0][..]).unwrap();
    assert_eq!(f.ethertype(), ethernet::ethertype::ARP);
    assert_eq!(i.neighbors_pending(), 1);
    // Retries at 1 s intervals, then drops.
    let mut arps = 0;
    for s in 2..6 {
        arps += out(&mut i, Instant::from_secs(s)).len();
    }
    assert_eq!(arps, 2);
    assert_eq!(i.neighbors_pending(), 0);
    assert_eq!(i.counters().link.arp_pending_drops, 1);

    // Now with an answer.
    i.udp_send_to(h, b"two", SocketAddr::from((PEER, 9)))
        .unwrap();
    let t = Instant::from_secs(10);
    assert_eq!(out(&mut i, t).len(), 1);
    let rep = arp::Repr {
        operation: arp::Operation::Reply,
        source_hardware_addr: PEER_HW,
        source_protocol_addr: PEER,
        target_hardware_addr: MY_HW,
        target_protocol_addr: ME,
    };
    let mut a = vec![0u8; rep.buffer_len()];
    rep.emit(&mut arp::Packet::new_unchecked(&mut a[..]));
    i.handle_frame(t, &eth(MY_HW, ethernet::ethertype::ARP, &a));
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let f = ethernet::Frame::new_checked(&frames[0][..]).unwrap();
    assert_eq!(f.ethertype(), ethernet::ethertype::IPV4);
    let p = parse_ip(f.payload());
    assert_eq!(&p.payload()[8..], b"two");
}

#[test]
fn udp_delivery_closed_port_and_icmp_error_to_connected_socket() {
    let mut i = iface(Medium::Ip);
    let t = Instant::from_millis(1);
    let h = i.udp_bind("10.0.0.2:7".parse().unwrap()).unwrap();
    i.handle_frame(t, &udp_packet(PEER, 4000, ME, 7, b"data"));
    let mut buf = [0u8; 64];
    let (n, from) = i.udp_recv_from(h, &mut buf).unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&b"data"[..], SocketAddr::from((PEER, 4000)))
    );
    assert_eq!(
        i.udp_recv_from(h, &mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );

    // Closed port: ICMP port unreachable quoting the datagram.
    let dgram = udp_packet(PEER, 4000, ME, 9, b"nobody");
    i.handle_frame(t, &dgram);
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let p = parse_ip(&frames[0]);
    let ic = icmpv4::Packet::new_checked(p.payload()).unwrap();
    match icmpv4::Repr::parse(&ic).unwrap() {
        icmpv4::Repr::DstUnreachable { reason, data, .. } => {
            assert_eq!(reason, icmpv4::DstUnreachable::PortUnreachable);
            assert_eq!(data, &dgram[..]);
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(i.counters().udp.no_ports, 1);

    // A connected socket hears about port unreachable as ConnectionRefused.
    let c = i.udp_bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let local = i.udp_socket(c).unwrap().local_addr();
    assert!((32768..=60999).contains(&local.port()));
    i.udp_connect(c, SocketAddr::from((PEER, 53))).unwrap();
    i.udp_send(c, b"q").unwrap();
    let sent = out(&mut i, t);
    let quoted = &sent[0];
    let err = icmpv4::Repr::DstUnreachable {
        reason: icmpv4::DstUnreachable::PortUnreachable,
        next_hop_mtu: 0,
        data: quoted,
    };
    let mut b = vec![0u8; err.buffer_len()];
    err.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]));
    i.handle_frame(t, &ip_packet(PEER, ME, ipv4::protocol::ICMP, &b));
    assert_eq!(
        i.udp_recv_from(c, &mut buf).unwrap_err().kind(),
        io::ErrorKind::ConnectionRefused
    );
    // Reported once.
    assert_eq!(
        i.udp_recv_from(c, &mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
}

#[test]
fn bind_errors_like_std() {
    let mut i = iface(Medium::Ip);
    i.udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
    assert_eq!(
        i.udp_bind("10.0.0.2:7".parse().unwrap())
            .unwrap_err()
            .kind(),
        io::ErrorKind::AddrInUse
    );
    assert_eq!(
        i.udp_bind("10.9.9.9:8".parse().unwrap())
            .unwrap_err()
            .kind(),
        io::ErrorKind::AddrNotAvailable
    );
    let h = i.udp_bind("0.0.0.0:8".parse().unwrap()).unwrap();
    assert_eq!(
        i.udp_send_to(h, &vec![0; 65508], SocketAddr::from((PEER, 1)))
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        i.udp_send_to(h, b"x", "192.168.1.1:1".parse().unwrap())
            .unwrap_err()
            .kind(),
        io::ErrorKind::NetworkUnreachable,
        "no gateway"
    );
    assert_eq!(
        i.udp_send_to(h, b"x", "10.0.0.255:1".parse().unwrap())
            .unwrap_err()
            .kind(),
        io::ErrorKind::PermissionDenied,
        "broadcast needs SO_BROADCAST"
    );
}

#[test]
fn receive_queue_overflow_is_counted() {
    let mut i = iface(Medium::Ip);
    let h = i.udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
    i.udp_set_buffers(h, Some(1000), None).unwrap();
    let t = Instant::ZERO;
    for _ in 0..5 {
        i.handle_frame(t, &udp_packet(PEER, 1, ME, 7, &[0; 400]));
    }
    assert_eq!(i.counters().udp.in_datagrams, 2);
    assert_eq!(i.counters().udp.rcvbuf_errors, 3);
}

#[test]
fn large_datagrams_fragment_and_reassemble_between_two_interfaces() {
    let mut a = iface(Medium::Ip);
    let mut c = Config::new(Medium::Ip);
    c.addrs.push(Ipv4Cidr::new(PEER, 24).unwrap());
    let mut b = Interface::new(c, Instant::ZERO);
    let t = Instant::ZERO;
    let ha = a.udp_bind("0.0.0.0:1000".parse().unwrap()).unwrap();
    let hb = b.udp_bind("0.0.0.0:2000".parse().unwrap()).unwrap();
    let data: Vec<u8> = (0..9000u32).map(|x| (x * 31) as u8).collect();
    a.udp_send_to(ha, &data, SocketAddr::from((PEER, 2000)))
        .unwrap();
    let mut frames = out(&mut a, t);
    assert_eq!(frames.len(), 7, "9008 bytes in 1480-byte fragments");
    assert!(frames.iter().all(|f| f.len() <= 1500));
    frames.reverse();
    for f in &frames {
        b.handle_frame(t, f);
    }
    let mut buf = vec![0u8; 10000];
    let (n, from) = b.udp_recv_from(hb, &mut buf).unwrap();
    assert_eq!(&buf[..n], &data[..]);
    assert_eq!(from, SocketAddr::from((ME, 1000)));
    assert_eq!(b.counters().ip.reasm_oks, 1);
    assert_eq!(a.counters().ip.frag_creates, 7);
    assert_eq!(b.reassembly_bytes(), 0);
}

#[test]
fn reassembly_timeout_sends_time_exceeded() {
    let mut i = iface(Medium::Ip);
    let mut p = udp_packet(PEER, 1, ME, 7, &[0; 100]);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_more_frags(true);
        ip.set_total_len(20 + 48);
        ip.fill_checksum();
    }
    p.truncate(68);
    i.handle_frame(Instant::ZERO, &p);
    assert!(out(&mut i, Instant::from_secs(29)).is_empty());
    let frames = out(&mut i, Instant::from_secs(31));
    assert_eq!(frames.len(), 1);
    let ip = parse_ip(&frames[0]);
    assert_eq!(ip.payload()[0], 11);
    assert_eq!(ip.payload()[1], 1);
    assert_eq!(i.counters().ip.reasm_timeout, 1);
}

#[test]
fn malformed_frames_are_counted_not_fatal() {
    let mut i = iface(Medium::Ip);
    let t = Instant::ZERO;
    let good = udp_packet(PEER, 1, ME, 7, b"x");
    // Truncated.
    i.handle_frame(t, &good[..10]);
    // Bad IHL.
    let mut bad = good.clone();
    bad[0] = 0x44;
    i.handle_frame(t, &bad);
    // Total length beyond the frame.
    let mut bad = good.clone();
    bad[2..4].copy_from_slice(&1000u16.to_be_bytes());
    i.handle_frame(t, &bad);
    // Bad header checksum.
    let mut bad = good.clone();
    bad[10] ^= 0xff;
    i.handle_frame(t, &bad);
    // Martian source.
    i.handle_frame(t, &udp_packet(Ipv4Addr::new(127, 0, 0, 1), 1, ME, 7, b"x"));
    assert_eq!(i.counters().ip.in_hdr_errors, 5);
    // Not our address.
    i.handle_frame(t, &udp_packet(PEER, 1, Ipv4Addr::new(10, 0, 0, 3), 7, b"x"));
    assert_eq!(i.counters().ip.in_addr_errors, 1);
    // Bad UDP checksum.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    i.handle_frame(t, &bad);
    assert_eq!(i.counters().udp.in_csum_errors, 1);
    // Empty frame and garbage.
    i.handle_frame(t, &[]);
    i.handle_frame(t, &[0x60; 40]);
    assert!(out(&mut i, t).is_empty());
}

#[test]
fn unknown_protocol_gets_protocol_unreachable_rate_limited() {
    let mut c = Config::new(Medium::Ip);
    c.addrs.push(Ipv4Cidr::new(ME, 24).unwrap());
    c.icmp_rate = IcmpRateLimit {
        per_sec: 1,
        burst: 2,
    };
    let mut i = Interface::new(c, Instant::ZERO);
    let t = Instant::ZERO;
    for _ in 0..5 {
        i.handle_frame(t, &ip_packet(PEER, ME, 99, b"?"));
    }
    assert_eq!(out(&mut i, t).len(), 2);
    assert_eq!(i.counters().icmp.out_rate_limited, 3);
    assert_eq!(i.counters().ip.in_unknown_protos, 5);
    i.handle_frame(t + Duration::from_secs(1), &ip_packet(PEER, ME, 99, b"?"));
    assert_eq!(out(&mut i, t + Duration::from_secs(1)).len(), 1);
}

#[test]
fn no_error_about_broadcast_or_errors() {
    let mut i = iface(Medium::Ip);
    let t = Instant::ZERO;
    i.handle_frame(
        t,
        &udp_packet(PEER, 1, Ipv4Addr::new(10, 0, 0, 255), 9, b"b"),
    );
    i.handle_frame(t, &udp_packet(PEER, 1, Ipv4Addr::BROADCAST, 9, b"b"));
    assert!(out(&mut i, t).is_empty());
    assert_eq!(i.counters().udp.no_ports, 2);
}

#[test]
fn gratuitous_arp_at_start() {
    let mut c = Config::new(Medium::Ethernet);
    c.addrs.push(Ipv4Cidr::new(ME, 24).unwrap());
    let mut i = Interface::new(c, Instant::ZERO);
    let frames = out(&mut i, Instant::ZERO);
    assert_eq!(frames.len(), 1);
    let f = ethernet::Frame::new_checked(&frames[0][..]).unwrap();
    assert!(f.dst_addr().is_broadcast());
    let a = arp::Repr::parse(&arp::Packet::new_checked(f.payload()).unwrap()).unwrap();
    assert_eq!((a.source_protocol_addr, a.target_protocol_addr), (ME, ME));
    assert!(checksum::verify(&[0xff, 0xff]));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Random bytes, and valid frames with random corruption, never
        /// panic either medium, and every frame out is well formed.
        #[test]
        fn random_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1600), 1..8)) {
            for medium in [Medium::Ip, Medium::Ethernet] {
                let mut i = iface(medium);
                let _ = i.udp_bind("0.0.0.0:7".parse().unwrap());
                for f in &frames {
                    i.handle_frame(Instant::ZERO, f);
                }
                for f in out(&mut i, Instant::from_secs(100)) {
                    let ipb = match medium {
                        Medium::Ip => &f[..],
                        Medium::Ethernet => {
                            let e = ethernet::Frame::new_checked(&f[..]).unwrap();
                            if e.ethertype() != ethernet::ethertype::IPV4 { continue; }
                            &f[ethernet::HEADER_LEN..]
                        }
                    };
                    parse_ip(ipb);
                }
            }
        }

        #[test]
        fn mutated_valid_frames_never_panic(
            which in 0usize..3,
            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6),
            cut in any::<u16>(),
        ) {
            let mut f = match which {
                0 => echo_request(1, b"abcdefgh"),
                1 => udp_packet(PEER, 9, ME, 7, b"payload"),
                _ => {
                    let mut p = udp_packet(PEER, 9, ME, 7, &[7; 64]);
                    let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
                    ip.set_more_frags(true);
                    ip.set_frag_offset(8);
                    ip.fill_checksum();
                    p
                }
            };
            for (pos, x) in flips {
                let n = f.len();
                f[pos as usize % n] ^= x;
            }
            let n = f.len();
            f.truncate(1 + cut as usize % n);
            let mut i = iface(Medium::Ip);
            let _ = i.udp_bind("0.0.0.0:7".parse().unwrap());
            i.handle_frame(Instant::ZERO, &f);
            for o in out(&mut i, Instant::from_secs(60)) {
                parse_ip(&o);
            }
        }
    }
}

#[test]
fn close_sends_what_was_queued_and_frees_the_port() {
    let mut i = iface(Medium::Ip);
    let h = i.udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
    i.udp_send_to(h, b"last words", SocketAddr::from((PEER, 9)))
        .unwrap();
    i.udp_close(h).unwrap();
    assert!(i.udp_socket(h).is_err());
    let h2 = i.udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
    let frames = out(&mut i, Instant::ZERO);
    assert_eq!(frames.len(), 1);
    assert_eq!(&parse_ip(&frames[0]).payload()[8..], b"last words");
    assert_eq!(i.sockets().len(), 1);
    i.udp_close(h2).unwrap();
    assert_eq!(i.sockets().len(), 0);
}

/// The TCP timestamps (TSval) of the data segments in `frames` (IPv4).
fn tsvals(frames: &[Vec<u8>]) -> Vec<u32> {
    frames
        .iter()
        .filter_map(|f| {
            let ip = parse_ip(f);
            if ip.protocol() != ipv4::protocol::TCP {
                return None;
            }
            let p = crate::wire::tcp::Packet::new_checked(ip.payload()).ok()?;
            let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
            let r = crate::wire::tcp::Repr::parse(&p, src, dst, true).ok()?;
            (!r.payload.is_empty()).then_some(r.options.timestamps?.0)
        })
        .collect()
}

#[test]
fn time_never_goes_backwards_in_the_core() {
    // Two threads may read the clock and then call the interface in the
    // other order (the threaded runtime's stack thread and an application
    // thread sending directly). A segment sent with the earlier reading
    // must not carry a lower TSval than one already sent (RFC 7323 §5.4:
    // a Linux peer discards it by PAWS).
    let mut a = iface(Medium::Ip);
    let mut c = Config::new(Medium::Ip);
    c.addrs.push(Ipv4Cidr::new(PEER, 24).unwrap());
    let mut b = Interface::new(c, Instant::ZERO);
    let lb = b.tcp_listen("0.0.0.0:80".parse().unwrap(), 8).unwrap();
    let mut t = Instant::from_millis(1);
    let ha = a
        .tcp_connect(SocketAddr::from((PEER, 80)), None, t)
        .unwrap();
    for _ in 0..4 {
        for f in out(&mut a, t) {
            b.handle_frame(t, &f);
        }
        for f in out(&mut b, t) {
            a.handle_frame(t, &f);
        }
        t += Duration::from_millis(1);
    }
    let (hb, _) = b.tcp_accept(lb).unwrap();
    a.tcp_socket_mut(ha).unwrap().set_nodelay(true);
    let mut sent = Vec::new();
    // Data at 50 ms, then data handed over with a reading 9 ms older.
    let late = Instant::from_millis(50);
    let early = Instant::from_millis(41);
    for (now, data) in [(late, &b"first"[..]), (early, &b"second"[..])] {
        a.tcp_send(ha, data).unwrap();
        let frames = out(&mut a, now);
        for f in &frames {
            b.handle_frame(now, f);
        }
        sent.extend(tsvals(&frames));
    }
    assert_eq!(sent.len(), 2, "two data segments: {sent:?}");
    assert!(sent[1] >= sent[0], "TSval went backwards: {sent:?}");
    assert_eq!(a.counters().link.clock_regressions, 1);
    let mut buf = [0u8; 64];
    let n = b.tcp_recv(hb, &mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"firstsecond",
        "the peer took both (no PAWS drop)"
    );
}

/// A gateway no frame could reach and a MAC the link would not deliver
/// back are refused with one line, not taken silently.
#[test]
fn config_validate_refuses_unreachable_gateway_and_group_mac() {
    let mut c = Config::new(Medium::Ethernet);
    c.addrs.push(Ipv4Cidr::new(ME, 24).unwrap());
    c.validate().unwrap();
    c.gateway = Some(PEER);
    c.hardware_addr = Some(MY_HW);
    c.validate().unwrap();
    let refused = |c: &Config| {
        let e = c.validate().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        e.to_string()
    };
    let mut out = c.clone();
    out.gateway = Some(Ipv4Addr::new(10, 1, 0, 1));
    assert_eq!(
        refused(&out),
        "gateway 10.1.0.1 is outside every configured subnet (10.0.0.2/24): it could never be reached"
    );
    // A second address whose subnet holds it makes it fine.
    out.addrs
        .push(Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 2), 16).unwrap());
    out.validate().unwrap();
    for (gw, why) in [
        (ME, "is the stack's own address"),
        (
            Ipv4Addr::new(10, 0, 0, 255),
            "is the broadcast address of 10.0.0.2/24",
        ),
        (
            Ipv4Addr::new(10, 0, 0, 0),
            "is the network address of 10.0.0.2/24",
        ),
        (Ipv4Addr::BROADCAST, "is not a unicast address"),
        (Ipv4Addr::new(224, 0, 0, 1), "is not a unicast address"),
    ] {
        let mut bad = c.clone();
        bad.gateway = Some(gw);
        assert!(refused(&bad).contains(why), "{gw}");
    }
    let mut none = c.clone();
    none.addrs.clear();
    assert!(refused(&none).contains("needs an IPv4 address"));
    for (mac, why) in [
        (EthernetAddress::BROADCAST, "is the broadcast address"),
        (
            EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]),
            "is a multicast address",
        ),
        (
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
            "is a multicast address",
        ),
        (EthernetAddress([0; 6]), "is all zeros"),
    ] {
        let mut bad = c.clone();
        bad.hardware_addr = Some(mac);
        let e = refused(&bad);
        assert!(e.starts_with(&format!("MAC address {mac} {why}")), "{e}");
    }
}
