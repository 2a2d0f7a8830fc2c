//! Hostile input: at least 100,000 random and mutated frames into a live
//! interface (a bound UDP socket, an ARP cache, fragments in reassembly),
//! on both media. Nothing may panic; every frame the stack emits in answer
//! must parse with valid checksums; memory (reassembly, ARP queue) stays
//! within its bounds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;
use ustack::iface::{Config, Interface, Ipv4Cidr};
use ustack::phy::{FrameBatch, Medium};
use ustack::time::Instant;
use ustack::wire::{checksum, ethernet, ipv4, udp, EthernetAddress};

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn iface(medium: Medium) -> Interface {
    let mut c = Config::new(medium);
    c.addrs.push(Ipv4Cidr::new(ME, 24).unwrap());
    c.hardware_addr = Some(EthernetAddress([2, 0, 0, 0, 0, 2]));
    let mut i = Interface::new(c, Instant::ZERO);
    i.udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
    let h = i.udp_bind("0.0.0.0:0".parse().unwrap()).unwrap();
    i.udp_connect(h, SocketAddr::from((PEER, 53))).unwrap();
    i
}

/// A valid UDP/IPv4 datagram to port 7, as a template for mutation.
fn template(fragment: bool) -> Vec<u8> {
    let data = [0x5au8; 40];
    let mut u = vec![0u8; 8 + data.len()];
    udp::Repr {
        src_port: 1234,
        dst_port: 7,
    }
    .emit(
        &mut udp::Packet::new_unchecked(&mut u[..]),
        IpAddr::V4(PEER),
        IpAddr::V4(ME),
        &data,
    );
    let mut p = vec![0u8; 20 + u.len()];
    ipv4::Repr {
        src_addr: PEER,
        dst_addr: ME,
        protocol: 17,
        payload_len: u.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: false,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    p[20..].copy_from_slice(&u);
    if fragment {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_more_frags(true);
        ip.fill_checksum();
    }
    p
}

fn check_output(i: &mut Interface, medium: Medium, now: Instant) {
    let mut b = FrameBatch::new(1024, 1600);
    i.poll_transmit(now, &mut b);
    for f in b.iter() {
        let ip = match medium {
            Medium::Ip => f,
            Medium::Ethernet => {
                let e = ethernet::Frame::new_checked(f).expect("emitted Ethernet frame parses");
                if e.ethertype() != ethernet::ethertype::IPV4 {
                    continue;
                }
                &f[ethernet::HEADER_LEN..]
            }
        };
        let p = ipv4::Packet::new_checked(ip).expect("emitted IPv4 parses");
        assert!(p.verify_checksum(), "emitted IPv4 header checksum");
        if !p.is_fragment() {
            // ICMP and UDP both checksum over their whole payload.
            match p.protocol() {
                1 => assert!(checksum::verify(p.payload()), "ICMP checksum"),
                17 => {
                    let u = udp::Packet::new_checked(p.payload()).expect("UDP parses");
                    assert!(u.verify_checksum(IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr())));
                }
                _ => {}
            }
        }
    }
    assert!(i.reassembly_bytes() <= 4 * 1024 * 1024);
    assert!(i.neighbors_pending() <= 64 * 64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(frame in proptest::collection::vec(any::<u8>(), 0..1600), eth in any::<bool>()) {
        let medium = if eth { Medium::Ethernet } else { Medium::Ip };
        let mut i = iface(medium);
        let mut f = frame;
        if eth && f.len() >= 14 && f[0] & 1 == 0 {
            // Make a fair share reach the IPv4 and ARP paths.
            f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
            f[12] = 0x08;
            f[13] = if f[13] & 1 == 0 { 0x00 } else { 0x06 };
        } else if !eth && !f.is_empty() {
            f[0] = 0x40 | (f[0] & 0x0f);
        }
        i.handle_frame(Instant::ZERO, &f);
        check_output(&mut i, medium, Instant::from_secs(31));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 50_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_datagrams(
        fragment in any::<bool>(),
        flips in proptest::collection::vec((0usize..68, any::<u8>()), 1..4),
        cut in 0usize..68,
        fix_ip_checksum in any::<bool>(),
    ) {
        let mut p = template(fragment);
        for (pos, x) in flips {
            p[pos] ^= x;
        }
        p.truncate(cut.max(1));
        if fix_ip_checksum && p.len() >= 20 {
            p[10] = 0;
            p[11] = 0;
            let ihl = ((p[0] & 0x0f) as usize * 4).clamp(20, p.len());
            let c = checksum::checksum(&p[..ihl]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let mut i = iface(Medium::Ip);
        i.handle_frame(Instant::ZERO, &p);
        i.handle_frame(Instant::ZERO, &template(false));
        check_output(&mut i, Medium::Ip, Instant::from_secs(31));
    }
}

/// An interface on a device with offload, with a TCP listener, so trusted
/// frames reach TCP and UDP without checksum verification.
fn offload_iface() -> Interface {
    let mut c = Config::new(Medium::Ip);
    c.addrs.push(Ipv4Cidr::new(ME, 24).unwrap());
    c.offload = ustack::phy::Offload {
        tx_checksum: true,
        tso: true,
        gro: true,
    };
    let mut i = Interface::new(c, Instant::ZERO);
    i.udp_bind("0.0.0.0:7".parse().unwrap()).unwrap();
    i.tcp_listen("0.0.0.0:7".parse().unwrap(), 8).unwrap();
    i
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Frames from an offloading device: any length up to a 64 KiB
    /// super-segment and beyond, with any metadata the device may attach
    /// (a partial checksum at any offsets, "verified", any GSO size).
    /// Nothing panics and the stack's own answers stay well formed.
    #[test]
    fn offload_metadata(
        head in proptest::collection::vec(any::<u8>(), 0..80),
        body_len in prop_oneof![0usize..1600, 1600usize..70_000],
        start in any::<u16>(),
        offset in any::<u16>(),
        kind in 0u8..3,
        gso_size in any::<u16>(),
        tcp in any::<bool>(),
    ) {
        use ustack::phy::{Checksum, FrameMeta};
        let mut f = head;
        f.resize(f.len() + body_len, 0x42);
        if f.len() >= 20 {
            // Mostly IPv4 to us, so the transport paths are reached.
            f[0] = 0x45;
            f[9] = if tcp { 6 } else { 17 };
            f[12..16].copy_from_slice(&PEER.octets());
            f[16..20].copy_from_slice(&ME.octets());
            let tot = f.len().min(65535) as u16;
            f[2..4].copy_from_slice(&tot.to_be_bytes());
            f[10] = 0;
            f[11] = 0;
            let c = checksum::checksum(&f[..20]);
            f[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let checksum = match kind {
            0 => Checksum::Partial { start, offset },
            1 => Checksum::Verified,
            _ => Checksum::Complete,
        };
        let mut i = offload_iface();
        i.handle_frame_meta(Instant::ZERO, &f, FrameMeta { checksum, gso_size });
        let mut b = FrameBatch::new(64, 70_000);
        i.poll_transmit(Instant::ZERO, &mut b);
        for (out, _) in b.iter_meta() {
            prop_assert!(ipv4::Packet::new_checked(out).is_ok());
        }
    }
}
