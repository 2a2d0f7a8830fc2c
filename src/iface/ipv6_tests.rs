//! IPv6 on IP media: frames in, frames out; TCP and UDP over IPv6 between
//! two simulated interfaces.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::*;
use crate::link::FrameBatch;
use crate::sim::{LinkConfig, Sim};
use crate::time::Duration;
use crate::wire::icmpv6::{self, kind};
use crate::wire::ipv6::{self, next_header};
use crate::wire::{ethernet, tcp, udp, EthernetAddress};

const ME: &str = "fd00::2";
const PEER: &str = "fd00::1";

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn iface6(addr: &str, seed: u64) -> Interface {
    let mut c = Config::new(Medium::Ip);
    c.addrs.push("10.0.0.2/24".parse().unwrap());
    c.addrs_v6.push(format!("{addr}/64").parse().unwrap());
    c.seed = seed;
    Interface::new(c, Instant::ZERO)
}

fn packet(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; ipv6::HEADER_LEN + payload.len()];
    ipv6::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: nh,
        payload_len: payload.len(),
        hop_limit: 64,
    }
    .emit(&mut p);
    p[ipv6::HEADER_LEN..].copy_from_slice(payload);
    p
}

fn icmp(src: Ipv6Addr, dst: Ipv6Addr, k: u8, word: u32, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; icmpv6::HEADER_LEN + body.len()];
    icmpv6::emit(&mut m, src, dst, k, 0, word, body);
    packet(src, dst, next_header::ICMPV6, &m)
}

fn out(i: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
    let mut b = FrameBatch::new(64, 2000);
    i.poll_transmit(now, &mut b);
    b.iter().map(|f| f.to_vec()).collect()
}

/// The one ICMPv6 message in `frames`: (src, dst, type, code, word, body).
fn one_icmp(frames: &[Vec<u8>]) -> (Ipv6Addr, Ipv6Addr, u8, u8, u32, Vec<u8>) {
    assert_eq!(frames.len(), 1, "{frames:?}");
    let p = ipv6::Packet::new_checked(&frames[0][..]).unwrap();
    assert_eq!(p.next_header(), next_header::ICMPV6);
    let m = p.payload();
    icmpv6::verify(p.src_addr(), p.dst_addr(), m).expect("checksum");
    (
        p.src_addr(),
        p.dst_addr(),
        m[0],
        m[1],
        u32::from_be_bytes([m[4], m[5], m[6], m[7]]),
        m[8..].to_vec(),
    )
}

#[test]
fn answers_echo_to_its_address_and_to_all_nodes() {
    let mut i = iface6(ME, 1);
    let t = Instant::from_millis(3);
    i.handle_frame(
        t,
        &icmp(a(PEER), a(ME), kind::ECHO_REQUEST, 0x1234_0007, b"ping6"),
    );
    let (s, d, k, c, w, body) = one_icmp(&out(&mut i, t));
    assert_eq!(
        (s, d, k, c, w),
        (a(ME), a(PEER), kind::ECHO_REPLY, 0, 0x1234_0007)
    );
    assert_eq!(body, b"ping6");
    // To ff02::1: answered from our unicast address.
    let all = a("ff02::1");
    i.handle_frame(t, &icmp(a(PEER), all, kind::ECHO_REQUEST, 1, b"x"));
    let (s, d, k, ..) = one_icmp(&out(&mut i, t));
    assert_eq!((s, d, k), (a(ME), a(PEER), kind::ECHO_REPLY));
    assert_eq!(i.counters().icmp6.in_type[kind::ECHO_REQUEST as usize], 2);
    assert_eq!(i.counters().icmp6.out_type[kind::ECHO_REPLY as usize], 2);
}

#[test]
fn drops_and_counts_what_it_must() {
    let mut i = iface6(ME, 1);
    let t = Instant::from_millis(3);
    // Not ours.
    i.handle_frame(t, &icmp(a(PEER), a("fd00::9"), kind::ECHO_REQUEST, 1, b""));
    // Martian sources: multicast, unspecified, our own.
    i.handle_frame(t, &icmp(a("ff02::1"), a(ME), kind::ECHO_REQUEST, 1, b""));
    i.handle_frame(
        t,
        &icmp(Ipv6Addr::UNSPECIFIED, a(ME), kind::ECHO_REQUEST, 1, b""),
    );
    i.handle_frame(t, &icmp(a(ME), a(ME), kind::ECHO_REQUEST, 1, b""));
    // Bad checksum.
    let mut bad = icmp(a(PEER), a(ME), kind::ECHO_REQUEST, 1, b"abc");
    *bad.last_mut().unwrap() ^= 0xff;
    i.handle_frame(t, &bad);
    // Truncated: the payload length says more than there is.
    let mut short = icmp(a(PEER), a(ME), kind::ECHO_REQUEST, 1, b"abc");
    short.truncate(44);
    i.handle_frame(t, &short);
    // An atomic fragment (offset 0, no more; RFC 8021): dropped, counted.
    let fh = [next_header::ICMPV6, 0, 0, 0, 0, 0, 0, 7];
    i.handle_frame(t, &packet(a(PEER), a(ME), next_header::FRAGMENT, &fh));
    assert!(out(&mut i, t).is_empty());
    let c = &i.counters().ip6;
    assert_eq!(c.in_receives, 7);
    assert_eq!(c.in_addr_errors, 1);
    assert_eq!(c.in_hdr_errors, 4);
    assert_eq!(c.reasm_fails, 1);
    assert_eq!(i.counters().icmp6.in_csum_errors, 1);
}

#[test]
fn unknown_next_header_gets_a_parameter_problem() {
    let mut i = iface6(ME, 1);
    let t = Instant::from_millis(3);
    let p = packet(a(PEER), a(ME), 253, &[1, 2, 3, 4]);
    i.handle_frame(t, &p);
    let (s, d, k, c, w, body) = one_icmp(&out(&mut i, t));
    assert_eq!((s, d, k, c, w), (a(ME), a(PEER), kind::PARAM_PROBLEM, 1, 6));
    assert_eq!(body, p, "the whole packet is quoted");
    // Errors about errors are not sent: an ICMPv6 error whose quote is
    // malformed is only counted.
    let err = icmp(a(PEER), a(ME), kind::DST_UNREACHABLE, 0, &p);
    i.handle_frame(t, &err);
    assert!(out(&mut i, t).is_empty());
    // An unrecognised option with the "discard and answer even multicast"
    // bits, in a destination-options header.
    let ext = [next_header::UDP, 0, 0x9e, 4, 0, 0, 0, 0];
    i.handle_frame(t, &packet(a(PEER), a(ME), next_header::DST_OPTS, &ext));
    let (.., k, c, w, _) = one_icmp(&out(&mut i, t));
    assert_eq!((k, c, w), (kind::PARAM_PROBLEM, 2, 42));
}

#[test]
fn closed_ports_answer_port_unreachable_and_rst() {
    let mut i = iface6(ME, 1);
    let t = Instant::from_millis(3);
    let mut u = vec![0u8; udp::HEADER_LEN + 3];
    udp::Repr {
        src_port: 5000,
        dst_port: 9,
    }
    .emit(
        &mut udp::Packet::new_unchecked(&mut u[..]),
        IpAddr::V6(a(PEER)),
        IpAddr::V6(a(ME)),
        b"abc",
    );
    let p = packet(a(PEER), a(ME), next_header::UDP, &u);
    i.handle_frame(t, &p);
    let (_, d, k, c, _, body) = one_icmp(&out(&mut i, t));
    assert_eq!(
        (d, k, c),
        (a(PEER), kind::DST_UNREACHABLE, icmpv6::unreachable::PORT)
    );
    assert_eq!(body, p);
    assert_eq!(i.counters().udp.no_ports, 1);

    // A SYN to a closed port: RST, over IPv6, with a valid checksum. A
    // listener on 0.0.0.0 does not take it (IPv4 only).
    let l = i.tcp_listen("0.0.0.0:80".parse().unwrap(), 8).unwrap();
    let syn = tcp::Repr {
        src_port: 40000,
        dst_port: 80,
        seq_number: 1000,
        ack_number: 0,
        flags: tcp::Flags::SYN,
        window_len: 65535,
        urgent_at: 0,
        options: tcp::Options::default(),
        payload: &[],
    };
    let mut seg = vec![0u8; syn.buffer_len()];
    syn.emit(
        &mut tcp::Packet::new_unchecked(&mut seg[..]),
        IpAddr::V6(a(PEER)),
        IpAddr::V6(a(ME)),
    );
    i.handle_frame(t, &packet(a(PEER), a(ME), next_header::TCP, &seg));
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let p = ipv6::Packet::new_checked(&frames[0][..]).unwrap();
    assert_eq!(p.next_header(), next_header::TCP);
    let tp = tcp::Packet::new_checked(p.payload()).unwrap();
    let tp = &tp;
    let r = tcp::Repr::parse(tp, IpAddr::V6(a(ME)), IpAddr::V6(a(PEER)), true).unwrap();
    assert!(r.flags.rst());
    assert_eq!(r.ack_number, 1001);
    assert!(i.tcp_accept(l).is_err());
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(5),
        ..LinkConfig::default()
    }
}

/// TCP over IPv6 between two interfaces, both directions, with IPv4 on
/// the same port at the same time: the data arrives intact, the MSS is
/// the IPv6 one (1500 - 60).
#[test]
fn tcp_over_ipv6_beside_ipv4() {
    let mut s = Sim::new(iface6(PEER, 1), iface6(ME, 2), link(), link(), 9);
    s.a.config.addrs[0] = "10.0.0.1/24".parse().unwrap();
    let l6 = s.b.tcp_listen(sa("[::]:80"), 8).unwrap();
    let l4 = s.b.tcp_listen(sa("0.0.0.0:80"), 8).unwrap();
    let now = s.now();
    let c6 = s.a.tcp_connect(sa("[fd00::2]:80"), None, now).unwrap();
    let c4 = s.a.tcp_connect(sa("10.0.0.2:80"), None, now).unwrap();
    let mut srv = (None, None);
    s.run_while(now + Duration::from_secs(5), |s| {
        if let Ok((h, peer)) = s.b.tcp_accept(l6) {
            assert_eq!(peer.ip(), IpAddr::V6(a(PEER)));
            srv.0 = Some(h);
        }
        if let Ok((h, peer)) = s.b.tcp_accept(l4) {
            assert!(peer.is_ipv4());
            srv.1 = Some(h);
        }
        srv.0.is_none() || srv.1.is_none()
    });
    let (s6, s4) = (srv.0.expect("v6 accepted"), srv.1.expect("v4 accepted"));
    // Data MSS: 1500 - 40 (IPv6) - 20 (TCP) - 12 (timestamps), against
    // 1448 over IPv4.
    assert_eq!(s.a.tcp_info(c6).unwrap().mss, 1428);
    assert_eq!(s.a.tcp_info(c4).unwrap().mss, 1448);
    let data: Vec<u8> = (0..300_000u32).map(|x| (x * 7 % 251) as u8).collect();
    let (mut sent, mut back, mut got4, mut sent4) = (0usize, Vec::new(), 0usize, false);
    let mut buf = vec![0u8; 65536];
    let deadline = s.now() + Duration::from_secs(20);
    s.run_while(deadline, |s| {
        if sent < data.len() {
            if let Ok(n) = s.a.tcp_send(c6, &data[sent..]) {
                sent += n;
            }
        }
        if !sent4 {
            sent4 = s.a.tcp_send(c4, b"v4 too").is_ok();
        }
        // The server echoes what it reads.
        if let Ok(n) = s.b.tcp_recv(s6, &mut buf) {
            let mut off = 0;
            while off < n {
                match s.b.tcp_send(s6, &buf[off..n]) {
                    Ok(k) => off += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(off, n, "echo buffer full");
        }
        if let Ok(n) = s.b.tcp_recv(s4, &mut buf) {
            assert_eq!(&buf[..n], b"v4 too");
            got4 += n;
        }
        if let Ok(n) = s.a.tcp_recv(c6, &mut buf) {
            back.extend_from_slice(&buf[..n]);
        }
        back.len() < data.len()
    });
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed data differs");
    assert!(got4 > 0);
}

#[test]
fn udp_over_ipv6_and_family_checks() {
    let mut s = Sim::new(iface6(PEER, 1), iface6(ME, 2), link(), link(), 9);
    let srv = s.b.udp_bind(sa("[::]:7")).unwrap();
    let v4 = s.b.udp_bind(sa("0.0.0.0:7")).unwrap();
    let cli = s.a.udp_bind(sa("[::]:0")).unwrap();
    s.a.udp_send_to(cli, b"hello six", sa("[fd00::2]:7"))
        .unwrap();
    // Family mismatches are refused.
    assert!(s.a.udp_send_to(cli, b"x", sa("10.0.0.2:7")).is_err());
    let until = s.now() + Duration::from_millis(100);
    s.run_until(until);
    let mut buf = [0u8; 64];
    let r = s.b.udp_recv_from(srv, &mut buf);
    assert!(
        r.is_ok(),
        "{r:?}\nA: {}\nB: {}",
        s.a.counters().report(),
        s.b.counters().report()
    );
    let (n, from) = r.unwrap();
    assert_eq!(&buf[..n], b"hello six");
    assert_eq!(from.ip(), IpAddr::V6(a(PEER)));
    assert!(
        s.b.udp_recv_from(v4, &mut buf).is_err(),
        "IPv4 socket heard IPv6"
    );
    // And back.
    s.b.udp_send_to(srv, b"reply", from).unwrap();
    let until = s.now() + Duration::from_millis(100);
    s.run_until(until);
    let (n, from) = s.a.udp_recv_from(cli, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"reply"[..], sa("[fd00::2]:7")));
}

const MY_HW: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const PEER_HW: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);

fn eth_iface(announce: bool) -> Interface {
    let mut c = Config::new(Medium::Ethernet);
    c.addrs_v6.push(format!("{ME}/64").parse().unwrap());
    c.hardware_addr = Some(MY_HW);
    c.announce = announce;
    Interface::new(c, Instant::ZERO)
}

fn eth6(src: EthernetAddress, dst: EthernetAddress, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + ip.len()];
    ethernet::Repr {
        src_addr: src,
        dst_addr: dst,
        ethertype: ethernet::ethertype::IPV6,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    f[ethernet::HEADER_LEN..].copy_from_slice(ip);
    f
}

fn nd(src: Ipv6Addr, dst: Ipv6Addr, m: icmpv6::NdMessage, hop_limit: u8) -> Vec<u8> {
    let mut body = vec![0u8; m.buffer_len()];
    m.emit(&mut body, src, dst);
    let mut p = packet(src, dst, next_header::ICMPV6, &body);
    p[7] = hop_limit;
    p
}

/// (dst MAC, IPv6 src, IPv6 dst, hop limit, ICMPv6 message) of an Ethernet
/// frame carrying ICMPv6.
fn parse_eth_icmp(f: &[u8]) -> (EthernetAddress, Ipv6Addr, Ipv6Addr, u8, Vec<u8>) {
    let e = ethernet::Frame::new_checked(f).unwrap();
    assert_eq!(e.ethertype(), ethernet::ethertype::IPV6);
    let p = ipv6::Packet::new_checked(e.payload()).unwrap();
    assert_eq!(p.next_header(), next_header::ICMPV6);
    icmpv6::verify(p.src_addr(), p.dst_addr(), p.payload()).unwrap();
    (
        e.dst_addr(),
        p.src_addr(),
        p.dst_addr(),
        p.hop_limit(),
        p.payload().to_vec(),
    )
}

#[test]
fn neighbour_discovery_on_ethernet() {
    let mut i = eth_iface(true);
    let t = Instant::from_millis(1);
    // At start: a duplicate-address probe for each address (the global one
    // and the link-local one derived from the MAC), from ::.
    let frames = out(&mut i, t);
    let probes: Vec<_> = frames
        .iter()
        .filter(|f| {
            ethernet::Frame::new_checked(&f[..]).unwrap().ethertype() == ethernet::ethertype::IPV6
        })
        .map(|f| parse_eth_icmp(f))
        .collect();
    assert_eq!(probes.len(), 2, "{probes:?}");
    for (hw, s, d, hl, m) in &probes {
        let ns = icmpv6::NdMessage::parse(m).unwrap();
        assert_eq!(
            (*s, *hl, ns.kind, ns.lladdr),
            (Ipv6Addr::UNSPECIFIED, 255, kind::NEIGHBOR_SOLICIT, None)
        );
        assert_eq!(*d, ipv6::solicited_node(ns.target));
        assert_eq!(*hw, ipv6::multicast_mac(*d));
    }
    let ll = ipv6::link_local(MY_HW);
    assert!(probes
        .iter()
        .any(|p| icmpv6::NdMessage::parse(&p.4).unwrap().target == ll));

    // A solicitation for our address: a solicited advertisement back to
    // the solicitor's link address, which is learned.
    let group = ipv6::solicited_node(a(ME));
    let ns = icmpv6::NdMessage {
        kind: kind::NEIGHBOR_SOLICIT,
        flags: 0,
        target: a(ME),
        lladdr: Some(PEER_HW.0),
    };
    i.handle_frame(
        t,
        &eth6(
            PEER_HW,
            ipv6::multicast_mac(group),
            &nd(a(PEER), group, ns, 255),
        ),
    );
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let (hw, s, d, hl, m) = parse_eth_icmp(&frames[0]);
    let na = icmpv6::NdMessage::parse(&m).unwrap();
    assert_eq!((hw, s, d, hl), (PEER_HW, a(ME), a(PEER), 255));
    assert_eq!(na.kind, kind::NEIGHBOR_ADVERT);
    assert_eq!(
        na.flags,
        icmpv6::na_flags::SOLICITED | icmpv6::na_flags::OVERRIDE
    );
    assert_eq!((na.target, na.lladdr), (a(ME), Some(MY_HW.0)));
    // The peer is now known: its echo is answered straight to its MAC.
    i.handle_frame(
        t,
        &eth6(
            PEER_HW,
            MY_HW,
            &icmp(a(PEER), a(ME), kind::ECHO_REQUEST, 9, b"hi"),
        ),
    );
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let (hw, _, d, _, m) = parse_eth_icmp(&frames[0]);
    assert_eq!((hw, d, m[0]), (PEER_HW, a(PEER), kind::ECHO_REPLY));

    // An unknown neighbour: the reply waits while we solicit it; its
    // advertisement releases it.
    let other = a("fd00::3");
    let other_hw = EthernetAddress([0x02, 0, 0, 0, 0, 3]);
    i.handle_frame(
        t,
        &eth6(
            other_hw,
            MY_HW,
            &icmp(other, a(ME), kind::ECHO_REQUEST, 1, b"q"),
        ),
    );
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let (hw, s, d, _, m) = parse_eth_icmp(&frames[0]);
    let ns = icmpv6::NdMessage::parse(&m).unwrap();
    assert_eq!(
        (ns.kind, ns.target, ns.lladdr),
        (kind::NEIGHBOR_SOLICIT, other, Some(MY_HW.0))
    );
    assert_eq!(
        (hw, s, d),
        (
            ipv6::multicast_mac(ipv6::solicited_node(other)),
            a(ME),
            ipv6::solicited_node(other)
        )
    );
    let na = icmpv6::NdMessage {
        kind: kind::NEIGHBOR_ADVERT,
        flags: icmpv6::na_flags::SOLICITED,
        target: other,
        lladdr: Some(other_hw.0),
    };
    i.handle_frame(t, &eth6(other_hw, MY_HW, &nd(other, a(ME), na, 255)));
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let (hw, _, d, _, m) = parse_eth_icmp(&frames[0]);
    assert_eq!((hw, d, m[0]), (other_hw, other, kind::ECHO_REPLY));

    // Not from a neighbour (hop limit 64): ignored and counted.
    let errors = i.counters().icmp6.in_errors;
    i.handle_frame(
        t,
        &eth6(
            PEER_HW,
            ipv6::multicast_mac(group),
            &nd(a(PEER), group, ns, 64),
        ),
    );
    assert!(out(&mut i, t).is_empty());
    assert_eq!(i.counters().icmp6.in_errors, errors + 1);
    // Another node advertising our address: a conflict, counted.
    let na = icmpv6::NdMessage {
        kind: kind::NEIGHBOR_ADVERT,
        flags: icmpv6::na_flags::OVERRIDE,
        target: a(ME),
        lladdr: Some(other_hw.0),
    };
    let all = a("ff02::1");
    i.handle_frame(
        t,
        &eth6(other_hw, ipv6::multicast_mac(all), &nd(other, all, na, 255)),
    );
    assert_eq!(i.counters().ip6.dad_conflicts, 1);
    // Someone probing our address: defended with an advertisement to all.
    let probe = icmpv6::NdMessage {
        kind: kind::NEIGHBOR_SOLICIT,
        flags: 0,
        target: a(ME),
        lladdr: None,
    };
    i.handle_frame(
        t,
        &eth6(
            other_hw,
            ipv6::multicast_mac(group),
            &nd(Ipv6Addr::UNSPECIFIED, group, probe, 255),
        ),
    );
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 1);
    let (hw, _, d, _, m) = parse_eth_icmp(&frames[0]);
    assert_eq!((hw, d), (ipv6::multicast_mac(all), all));
    assert_eq!(icmpv6::NdMessage::parse(&m).unwrap().target, a(ME));
}

/// RFC 8201 over the simulator: a router on A's path (the drop filter)
/// drops A's IPv6 packets longer than 1280 bytes and answers each with a
/// Packet Too Big quoting it. A's MSS shrinks to the IPv6 minimum MTU's
/// (1280 - 40 - 20 - 12 = 1208), what was lost is resent at the new size,
/// and 200 KB arrive intact. A Packet Too Big quoting a sequence number
/// not in flight is ignored (RFC 5927).
#[test]
fn packet_too_big_shrinks_the_mss() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut s = Sim::new(iface6(PEER, 1), iface6(ME, 2), link(), link(), 9);
    let too_big: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let tb = too_big.clone();
    s.drop_filter = Some(Box::new(move |from, f| {
        if from == 0 && f.len() > 1280 && f[0] >> 4 == 6 {
            tb.borrow_mut().push(f.to_vec());
            return true;
        }
        false
    }));
    let l = s.b.tcp_listen(sa("[::]:80"), 8).unwrap();
    let now = s.now();
    let c = s.a.tcp_connect(sa("[fd00::2]:80"), None, now).unwrap();
    let mut srv = None;
    s.run_while(now + Duration::from_secs(5), |s| {
        if let Ok((h, _)) = s.b.tcp_accept(l) {
            srv = Some(h);
        }
        srv.is_none()
    });
    let srv = srv.unwrap();
    assert_eq!(s.a.tcp_info(c).unwrap().mss, 1428);
    let data: Vec<u8> = (0..200_000u32).map(|x| (x % 253) as u8).collect();
    let (mut sent, mut got) = (0usize, Vec::new());
    let mut buf = vec![0u8; 65536];
    let router = a("fd00::fe");
    let deadline = s.now() + Duration::from_secs(20);
    let mut answered = 0;
    s.run_while(deadline, |s| {
        if sent < data.len() {
            if let Ok(n) = s.a.tcp_send(c, &data[sent..]) {
                sent += n;
            }
        }
        // The router's answers, at once.
        let dropped: Vec<Vec<u8>> = too_big.borrow_mut().drain(..).collect();
        for pkt in dropped {
            let t = s.now();
            let quote = &pkt[..pkt.len().min(icmpv6::MAX_QUOTE)];
            if answered == 0 {
                // First a forged one: a sequence number far from the window.
                let mut forged = quote.to_vec();
                forged[44..48].copy_from_slice(&0x1234_5678u32.to_be_bytes());
                s.a.handle_frame(
                    t,
                    &icmp(router, a(PEER), kind::PACKET_TOO_BIG, 1280, &forged),
                );
                assert_eq!(s.a.tcp_info(c).unwrap().mss, 1428, "forged PTB taken");
            }
            s.a.handle_frame(t, &icmp(router, a(PEER), kind::PACKET_TOO_BIG, 1280, quote));
            answered += 1;
        }
        while let Ok(n) = s.b.tcp_recv(srv, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() < data.len()
    });
    assert!(answered > 0);
    assert_eq!(s.a.tcp_info(c).unwrap().mss, 1208);
    assert_eq!(s.a.tcp_info(c).unwrap().pmtu, 1280);
    assert!(
        got == data,
        "{} of {} bytes, or they differ",
        got.len(),
        data.len()
    );
    assert_eq!(s.a.tcp_counters().pmtu_bad_seq, 1);
}

/// An echo request in three fragments, out of order, behind a
/// destination-options header: reassembled and answered with the whole
/// payload; a fragment overlapping another discards its datagram.
#[test]
fn reassembles_ipv6_fragments() {
    let mut i = iface6(ME, 1);
    let t = Instant::from_millis(3);
    let body: Vec<u8> = (0..1200u32).map(|x| x as u8).collect();
    let mut msg = vec![0u8; icmpv6::HEADER_LEN + body.len()];
    icmpv6::emit(&mut msg, a(PEER), a(ME), kind::ECHO_REQUEST, 0, 0x77, &body);
    let frag = |off: usize, more: bool, ident: u32, data: &[u8]| {
        let mut ext = vec![next_header::FRAGMENT, 0, 1, 4, 0, 0, 0, 0];
        let om = (off as u16) | more as u16;
        ext.extend_from_slice(&[next_header::ICMPV6, 0]);
        ext.extend_from_slice(&om.to_be_bytes());
        ext.extend_from_slice(&ident.to_be_bytes());
        ext.extend_from_slice(data);
        packet(a(PEER), a(ME), next_header::DST_OPTS, &ext)
    };
    i.handle_frame(t, &frag(800, false, 5, &msg[800..]));
    i.handle_frame(t, &frag(0, true, 5, &msg[..400]));
    assert!(out(&mut i, t).is_empty());
    i.handle_frame(t, &frag(400, true, 5, &msg[400..800]));
    let (s, d, k, _, w, got) = one_icmp(&out(&mut i, t));
    assert_eq!((s, d, k, w), (a(ME), a(PEER), kind::ECHO_REPLY, 0x77));
    assert_eq!(got, body);
    assert_eq!(i.counters().ip6.reasm_oks, 1);
    // Overlap: the datagram is thrown away.
    i.handle_frame(t, &frag(0, true, 6, &msg[..400]));
    i.handle_frame(t, &frag(392, true, 6, &msg[392..800]));
    i.handle_frame(t, &frag(800, false, 6, &msg[800..]));
    assert!(out(&mut i, t).is_empty());
    assert_eq!(i.counters().ip6.reasm_overlaps, 1);
}

/// Source fragmentation and reassembly end to end: a 20,000-byte UDP
/// datagram over IPv6 leaves A in MTU-sized fragments with Fragment
/// headers and arrives whole at B; and a 3,000-byte echo is answered in
/// fragments.
#[test]
fn large_datagrams_are_fragmented_and_reassembled() {
    let mut s = Sim::new(iface6(PEER, 1), iface6(ME, 2), link(), link(), 9);
    let srv = s.b.udp_bind(sa("[::]:7")).unwrap();
    let cli = s.a.udp_bind(sa("[::]:0")).unwrap();
    let big: Vec<u8> = (0..20_000u32).map(|x| (x % 241) as u8).collect();
    s.a.udp_send_to(cli, &big, sa("[fd00::2]:7")).unwrap();
    let until = s.now() + Duration::from_millis(100);
    s.run_until(until);
    let mut buf = vec![0u8; 65536];
    let (n, _) = s.b.udp_recv_from(srv, &mut buf).unwrap();
    assert!(buf[..n] == big[..], "{n} bytes");
    let frags = s.a.counters().ip6.frag_creates;
    assert_eq!(frags, 20_008usize.div_ceil(1448) as u64);
    assert_eq!(s.b.counters().ip6.reasm_oks, 1);

    // An echo too big for one packet: the reply comes in fragments.
    let mut i = iface6(ME, 1);
    let t = Instant::from_millis(3);
    let body: Vec<u8> = (0..3000u32).map(|x| x as u8).collect();
    i.handle_frame(t, &icmp(a(PEER), a(ME), kind::ECHO_REQUEST, 5, &body));
    let frames = out(&mut i, t);
    assert_eq!(frames.len(), 3);
    let mut whole = Vec::new();
    for f in &frames {
        assert!(f.len() <= 1500);
        let p = ipv6::Packet::new_checked(&f[..]).unwrap();
        match ipv6::walk(p.packet()) {
            ipv6::Walk::Fragment(fi) => {
                assert_eq!(fi.offset, whole.len());
                assert_eq!(fi.next_header, next_header::ICMPV6);
                whole.extend_from_slice(&p.packet()[fi.data_at..]);
            }
            w => panic!("{w:?}"),
        }
    }
    icmpv6::verify(a(ME), a(PEER), &whole).unwrap();
    assert_eq!(whole[0], kind::ECHO_REPLY);
    assert_eq!(&whole[8..], &body[..]);
}

/// `Config::bind_v6_only = false` (Linux's default bindv6only=0): a `[::]`
/// listener and UDP socket take IPv4 too, with IPv4-mapped peers; a
/// `0.0.0.0` socket on the same port then collides. The default (true)
/// keeps them apart.
#[test]
fn dual_stack_sockets_with_v4_mapped_peers() {
    let mut b = iface6(ME, 2);
    b.config.bind_v6_only = false;
    let mut s = Sim::new(iface6(PEER, 1), b, link(), link(), 9);
    s.a.config.addrs[0] = "10.0.0.1/24".parse().unwrap();
    let l = s.b.tcp_listen(sa("[::]:80"), 8).unwrap();
    assert_eq!(
        s.b.tcp_listen(sa("0.0.0.0:80"), 8).unwrap_err().kind(),
        io::ErrorKind::AddrInUse
    );
    let u = s.b.udp_bind(sa("[::]:7")).unwrap();
    assert!(s.b.udp_bind(sa("0.0.0.0:7")).is_err());
    let now = s.now();
    let c = s.a.tcp_connect(sa("10.0.0.2:80"), None, now).unwrap();
    let mut acc = None;
    s.run_while(now + Duration::from_secs(5), |s| {
        if let Ok(x) = s.b.tcp_accept(l) {
            acc = Some(x);
        }
        acc.is_none()
    });
    let (h, peer) = acc.expect("IPv4 connection on [::]");
    assert_eq!(peer.ip(), "::ffff:10.0.0.1".parse::<IpAddr>().unwrap());
    s.a.tcp_send(c, b"mapped").unwrap();
    let until = s.now() + Duration::from_millis(100);
    s.run_until(until);
    let mut buf = [0u8; 64];
    assert_eq!(s.b.tcp_recv(h, &mut buf).unwrap(), 6);
    // UDP: an IPv4 datagram to [::]:7, answered through the mapped address.
    let cu = s.a.udp_bind(sa("0.0.0.0:0")).unwrap();
    s.a.udp_send_to(cu, b"v4 to [::]", sa("10.0.0.2:7"))
        .unwrap();
    let until = s.now() + Duration::from_millis(100);
    s.run_until(until);
    let (n, from) = s.b.udp_recv_from(u, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"v4 to [::]");
    assert_eq!(from.ip(), "::ffff:10.0.0.1".parse::<IpAddr>().unwrap());
    s.b.udp_send_to(u, b"back", from).unwrap();
    let until = s.now() + Duration::from_millis(100);
    s.run_until(until);
    let (n, from) = s.a.udp_recv_from(cu, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"back"[..], sa("10.0.0.2:7")));
}
