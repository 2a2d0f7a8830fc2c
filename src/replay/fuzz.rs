//! The fuzz harness of the frame input path, shared by the `cargo fuzz`
//! targets in `fuzz/` and by the regression tests of what they found.
//!
//! [`live_stack`] builds a live interface (a TCP listener, an accepted
//! connection with data in flight both ways, an active connection, UDP
//! sockets, a resolved ARP neighbour) and then reads the fuzz input as a
//! script of operations: raw frames, IPv4 packets with addresses and
//! checksums fixed up, TCP segments aimed into the connections' windows,
//! UDP datagrams (fragmented or not), ICMP messages quoting the
//! connections, ARP packets, application calls, clock jumps and exchanges
//! with a well-behaved peer. After every step each frame the stack emits
//! must parse with valid checksums and every queue must stay within its
//! bound; a violation panics, which the fuzzer reports as a crash.
//! [`raw_frames`] feeds length-prefixed frames unmodified.

use std::net::{Ipv4Addr, Shutdown, SocketAddr};

use super::build::{fix_checksums, ipv4_packet, link_frame};
use super::check::{check_bounds, check_emitted};
use crate::iface::{Config, Interface, Ipv4Cidr};
use crate::phy::{FrameBatch, Medium};
use crate::socket::SocketHandle;
use crate::time::{Duration, Instant};
use crate::wire::{arp, ethernet, ipv4, tcp, EthernetAddress};

/// The stack's address in the harness.
pub const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The peer's address in the harness.
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const ME_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
/// Frames the harness keeps for delivery to the peer (a bound of its own).
const LINK_QUEUE: usize = 512;

/// A live stack and a peer on a link, as the fuzz harness drives them.
pub struct Live {
    /// The stack under test.
    pub me: Interface,
    /// A well-behaved peer (another ustack interface).
    pub peer: Interface,
    /// The virtual time.
    pub now: Instant,
    medium: Medium,
    /// The stack's listener on port 80.
    pub listener: SocketHandle,
    /// The connection the stack accepted (peer port 40000 to 80).
    pub accepted: Option<SocketHandle>,
    /// The connection the stack opened (to the peer's port 9000).
    pub active: Option<SocketHandle>,
    /// An unconnected UDP socket on port 7.
    pub udp: SocketHandle,
    /// A UDP socket on port 5353 connected to the peer's port 53.
    pub udp_connected: SocketHandle,
    peer_handles: Vec<SocketHandle>,
    to_peer: Vec<Vec<u8>>,
    batch: FrameBatch,
    buf: Vec<u8>,
    /// Frames the stack emitted so far.
    pub emitted: u64,
}

fn interface(medium: Medium, addr: Ipv4Addr, mac: EthernetAddress, seed: u64) -> Interface {
    let mut c = Config::new(medium);
    c.addrs.push(Ipv4Cidr::new(addr, 24).expect("valid prefix"));
    c.hardware_addr = Some(mac);
    c.seed = seed;
    c.tcp.send_buffer = 64 * 1024;
    c.tcp.recv_buffer = 64 * 1024;
    c.tx_queue_frames = 128;
    Interface::new(c, Instant::ZERO)
}

impl Live {
    /// Builds the live stack on `medium`, its connections established.
    pub fn new(medium: Medium) -> Live {
        let mut me = interface(medium, ME, ME_MAC, 1);
        let mut peer = interface(medium, PEER, PEER_MAC, 2);
        let listener = me
            .tcp_listen(SocketAddr::from((ME, 80)), 4)
            .expect("listen");
        let udp = me.udp_bind(SocketAddr::from((ME, 7))).expect("bind");
        let udp_connected = me.udp_bind(SocketAddr::from((ME, 5353))).expect("bind");
        me.udp_connect(udp_connected, SocketAddr::from((PEER, 53)))
            .expect("connect");
        let peer_listener = peer
            .tcp_listen(SocketAddr::from((PEER, 9000)), 4)
            .expect("listen");
        let now = Instant::ZERO;
        let peer_conn = peer
            .tcp_connect(
                SocketAddr::from((ME, 80)),
                Some(SocketAddr::from((PEER, 40000))),
                now,
            )
            .expect("connect");
        let active = me
            .tcp_connect(SocketAddr::from((PEER, 9000)), None, now)
            .expect("connect");
        let mut live = Live {
            me,
            peer,
            now,
            medium,
            listener,
            accepted: None,
            active: Some(active),
            udp,
            udp_connected,
            peer_handles: vec![peer_conn],
            to_peer: Vec::new(),
            batch: FrameBatch::new(256, 1600),
            buf: vec![0u8; 65536],
            emitted: 0,
        };
        live.exchange(20);
        if let Ok((h, _)) = live.me.tcp_accept(listener) {
            live.accepted = Some(h);
        }
        if let Ok((h, _)) = live.peer.tcp_accept(peer_listener) {
            live.peer_handles.push(h);
        }
        // Data in flight both ways: the peer sends to the stack (delivered),
        // the stack sends to the peer (its first flight lost, so it stays
        // unacknowledged and the retransmission timer runs).
        for &h in &live.peer_handles {
            let _ = live.peer.tcp_send(h, &[0x61; 3000]);
        }
        live.exchange(6);
        for h in [live.accepted, live.active].into_iter().flatten() {
            let _ = live.me.tcp_send(h, &[0x62; 5000]);
        }
        live.poll();
        live.to_peer.clear();
        live
    }

    /// Moves frames between the stack and the peer for up to `rounds`
    /// rounds, checking everything the stack emits.
    pub fn exchange(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.poll();
            let frames = std::mem::take(&mut self.to_peer);
            for f in &frames {
                self.peer.handle_frame(self.now, f);
            }
            self.batch.clear();
            self.peer.poll_transmit(self.now, &mut self.batch);
            let from_peer: Vec<Vec<u8>> = self.batch.iter().map(|f| f.to_vec()).collect();
            for f in &from_peer {
                self.me.handle_frame(self.now, f);
            }
            for &h in &self.peer_handles {
                while matches!(self.peer.tcp_recv(h, &mut self.buf), Ok(n) if n > 0) {}
            }
            if frames.is_empty() && from_peer.is_empty() {
                break;
            }
        }
        self.poll();
    }

    /// Collects and checks what the stack transmits now; panics on a
    /// violation.
    pub fn poll(&mut self) {
        self.batch.clear();
        self.me.poll_transmit(self.now, &mut self.batch);
        for f in self.batch.iter() {
            self.emitted += 1;
            if let Err(e) = check_emitted(self.medium, f) {
                panic!("invariant: {e}: {f:02x?}");
            }
            if self.to_peer.len() < LINK_QUEUE {
                self.to_peer.push(f.to_vec());
            }
        }
        if let Err(e) = check_bounds(&self.me) {
            panic!("invariant: {e}");
        }
        if let Some(at) = self.me.poll_at() {
            // A deadline in the past would make a runtime spin.
            assert!(
                at > self.now || self.batch.is_full(),
                "invariant: poll_at {at:?} is not after now {:?} although nothing more was sent",
                self.now
            );
        }
    }

    /// Delivers one frame to the stack and checks the result.
    pub fn inject(&mut self, frame: &[u8]) {
        self.me.handle_frame(self.now, frame);
        self.poll();
    }

    fn ip_frame(&self, ip: &[u8]) -> Vec<u8> {
        link_frame(self.medium, PEER_MAC, ME_MAC, ethernet::ethertype::IPV4, ip)
    }

    /// The (rcv_nxt, snd_una, local port, remote port) of a connection.
    fn conn_numbers(&self, h: Option<SocketHandle>) -> Option<(u32, u32, u16, u16)> {
        let tcb = self.me.tcp_socket(h?).ok()?;
        Some((
            tcb.rcv_nxt.0,
            tcb.snd_una.0,
            tcb.local.port(),
            tcb.remote.port(),
        ))
    }
}

/// A cursor over the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// Runs one fuzz input against a live stack (see the module docs).
pub fn live_stack(data: &[u8]) {
    let mut input = Input(data);
    let medium = if input.byte() & 1 == 0 {
        Medium::Ip
    } else {
        Medium::Ethernet
    };
    let mut live = Live::new(medium);
    let mut steps = 0;
    while !input.0.is_empty() && steps < 64 {
        steps += 1;
        let op = input.byte();
        match op & 0x0f {
            0 => {
                let len = usize::from(input.u16() % 1600);
                let f = input.take(len).to_vec();
                live.inject(&f);
            }
            1 => {
                // An IPv4 packet from the peer to the stack, fixed up.
                let len = usize::from(input.u16() % 1600);
                let mut ip = input.take(len).to_vec();
                if ip.len() >= ipv4::HEADER_LEN {
                    if op & 0x10 == 0 {
                        ip[0] = 0x40 | (ip[0] & 0x0f).max(5);
                    }
                    if op & 0x20 == 0 {
                        let l = ip.len() as u16;
                        ip[2..4].copy_from_slice(&l.to_be_bytes());
                    }
                    if op & 0x40 == 0 {
                        ip[12..16].copy_from_slice(&PEER.octets());
                        ip[16..20].copy_from_slice(&ME.octets());
                    }
                    if op & 0x80 == 0 {
                        fix_checksums(&mut ip);
                    }
                }
                let f = live.ip_frame(&ip);
                live.inject(&f);
            }
            2 => {
                let f = tcp_segment(&live, op, &mut input);
                live.inject(&f);
            }
            3 => {
                let fs = udp_datagram(&live, op, &mut input);
                for f in fs {
                    live.inject(&f);
                }
            }
            4 => {
                let f = icmp_message(&live, op, &mut input);
                live.inject(&f);
            }
            5 => {
                let f = arp_packet(&live, op, &mut input);
                live.inject(&f);
            }
            6 => {
                let ms = u64::from(input.u16());
                let step = if op & 0x10 != 0 { ms * 100 } else { ms };
                live.now += Duration::from_millis(step);
                live.poll();
            }
            7 => app_call(&mut live, op, &mut input),
            9 => {
                // Two TCP segments at the same instant, no poll between (a
                // burst: the second may undo what the first asked for).
                let a = tcp_segment(&live, op & 0xf0 | 2, &mut input);
                let b = tcp_segment(&live, input.byte() & 0xf0 | 2, &mut input);
                live.me.handle_frame(live.now, &a);
                live.inject(&b);
            }
            _ => {
                let rounds = usize::from(op >> 4) + 1;
                live.exchange(rounds);
            }
        }
    }
    // Let every timer fire: nothing may panic and the stack must settle.
    for _ in 0..8 {
        live.now += Duration::from_secs(40);
        live.exchange(4);
    }
}

fn tcp_segment(live: &Live, op: u8, input: &mut Input) -> Vec<u8> {
    let target = match (op >> 4) & 3 {
        0 => live.accepted,
        1 => live.active,
        _ => None,
    };
    let flags = tcp::Flags(u16::from(input.byte()));
    let seq_off = input.u16() as i16;
    let ack_off = input.u16() as i16;
    let window = input.u16();
    let opt_len = usize::from(input.byte() % 11) * 4;
    let mut options = input.take(opt_len).to_vec();
    options.resize(opt_len, 0);
    let payload_len = usize::from(input.u16() % 1460);
    let payload = input.take(payload_len).to_vec();
    let (src_port, dst_port, seq, ack) = match live.conn_numbers(target) {
        Some((rcv_nxt, snd_una, local, remote)) => (
            remote,
            local,
            rcv_nxt.wrapping_add(seq_off as i32 as u32),
            snd_una.wrapping_add(ack_off as i32 as u32),
        ),
        None => (
            40000 + (seq_off as u16 % 64),
            if op & 0x40 != 0 { 80 } else { ack_off as u16 },
            u32::from(window) << 16 | seq_off as u16 as u32,
            ack_off as u16 as u32,
        ),
    };
    let mut seg = vec![0u8; tcp::HEADER_LEN + opt_len + payload.len()];
    {
        let mut t = tcp::Packet::new_unchecked(&mut seg[..]);
        t.set_src_port(src_port);
        t.set_dst_port(dst_port);
        t.set_seq_number(seq);
        t.set_ack_number(ack);
        t.set_header_len(tcp::HEADER_LEN + opt_len);
        t.set_flags(flags);
        t.set_window_len(window);
        t.options_mut().copy_from_slice(&options);
        t.payload_mut().copy_from_slice(&payload);
        if op & 0x80 == 0 {
            t.fill_checksum(PEER.into(), ME.into());
        }
    }
    live.ip_frame(&ipv4_packet(PEER, ME, ipv4::protocol::TCP, 1, &seg))
}

fn udp_datagram(live: &Live, op: u8, input: &mut Input) -> Vec<Vec<u8>> {
    let dst_port = match (op >> 4) & 3 {
        0 => 7,
        1 => 5353,
        _ => input.u16(),
    };
    let src_port = if op & 0x40 != 0 { 53 } else { input.u16() };
    let len = usize::from(input.u16() % 4000);
    let payload = input.take(len).to_vec();
    let mut u = vec![0u8; 8 + payload.len()];
    u[0..2].copy_from_slice(&src_port.to_be_bytes());
    u[2..4].copy_from_slice(&dst_port.to_be_bytes());
    let ulen = (u.len() as u16).to_be_bytes();
    u[4..6].copy_from_slice(&ulen);
    u[8..].copy_from_slice(&payload);
    let ident = input.u16();
    let mut ip = ipv4_packet(PEER, ME, ipv4::protocol::UDP, ident, &u);
    fix_checksums(&mut ip);
    if op & 0x80 == 0 {
        return vec![live.ip_frame(&ip)];
    }
    // Fragments: sizes (multiples of 8) from the input, in an order from it.
    let data = &ip[ipv4::HEADER_LEN..];
    let mut frags = Vec::new();
    let mut off = 0;
    while off < data.len() && frags.len() < 16 {
        let size = (usize::from(input.byte() % 64) + 1) * 8;
        let end = (off + size).min(data.len());
        let more = end < data.len() || input.byte() & 7 == 0;
        let mut f = ipv4_packet(PEER, ME, ipv4::protocol::UDP, ident, &data[off..end]);
        {
            let mut p = ipv4::Packet::new_unchecked(&mut f[..]);
            p.set_dont_frag(false);
            p.set_more_frags(more);
            p.set_frag_offset(off);
            p.fill_checksum();
        }
        frags.push(live.ip_frame(&f));
        // Sometimes overlap or leave gaps.
        off = match input.byte() % 8 {
            0 => end.saturating_sub(8),
            1 => end + 8,
            _ => end,
        };
    }
    if input.byte() & 1 == 1 {
        frags.reverse();
    }
    frags
}

fn icmp_message(live: &Live, op: u8, input: &mut Input) -> Vec<u8> {
    let msg_type = match (op >> 4) & 3 {
        0 => 3,  // destination unreachable (fragmentation needed among the codes)
        1 => 8,  // echo request
        2 => 11, // time exceeded
        _ => input.byte(),
    };
    let code = input.byte() % 16;
    let rest = [input.byte(), input.byte(), input.byte(), input.byte()];
    let mut msg = vec![msg_type, code, 0, 0];
    msg.extend_from_slice(&rest);
    if op & 0x40 != 0 {
        // Quote a segment of one of the stack's connections, as an error
        // from a router on the path would.
        let target = if op & 0x80 != 0 {
            live.active
        } else {
            live.accepted
        };
        let (rcv_nxt, snd_una, local, remote) = live.conn_numbers(target).unwrap_or_default();
        let off = input.u16() as i16;
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&local.to_be_bytes());
        t[2..4].copy_from_slice(&remote.to_be_bytes());
        t[4..8].copy_from_slice(&snd_una.wrapping_add(off as i32 as u32).to_be_bytes());
        t[8..12].copy_from_slice(&rcv_nxt.to_be_bytes());
        t[12] = 0x50;
        t[13] = 0x18;
        let quoted = ipv4_packet(ME, PEER, ipv4::protocol::TCP, 0, &t);
        let keep = 28 + usize::from(input.byte() % 16);
        msg.extend_from_slice(&quoted[..keep.min(quoted.len())]);
    } else {
        let len = usize::from(input.u16() % 1500);
        msg.extend_from_slice(input.take(len));
    }
    let mut ip = ipv4_packet(PEER, ME, ipv4::protocol::ICMP, 2, &msg);
    fix_checksums(&mut ip);
    live.ip_frame(&ip)
}

fn arp_packet(live: &Live, op: u8, input: &mut Input) -> Vec<u8> {
    let mut p = [0u8; arp::PACKET_LEN];
    {
        let mut a = arp::Packet::new_unchecked(&mut p[..]);
        a.set_hardware_type(arp::HTYPE_ETHERNET);
        a.set_protocol_type(arp::PTYPE_IPV4);
        a.set_hardware_len(6);
        a.set_protocol_len(4);
        a.set_operation(u16::from(op >> 6) % 3 + 1);
        let mac = [2, 0, 0, 0, input.byte(), input.byte()];
        a.set_source_hardware_addr(EthernetAddress(mac));
        let spa = if op & 0x10 != 0 {
            PEER
        } else {
            Ipv4Addr::new(10, 0, 0, input.byte())
        };
        a.set_source_protocol_addr(spa);
        a.set_target_protocol_addr(if op & 0x20 != 0 {
            ME
        } else {
            Ipv4Addr::new(10, 0, input.byte(), input.byte())
        });
    }
    // Some corruption of the fixed fields.
    let flip = input.byte();
    if flip & 0x80 != 0 {
        let i = usize::from(flip) % arp::PACKET_LEN;
        p[i] ^= input.byte();
    }
    let dst = if op & 0x40 != 0 {
        EthernetAddress::BROADCAST
    } else {
        ME_MAC
    };
    link_frame(live.medium, PEER_MAC, dst, ethernet::ethertype::ARP, &p)
}

fn app_call(live: &mut Live, op: u8, input: &mut Input) {
    let h = if op & 0x80 != 0 {
        live.active
    } else {
        live.accepted
    };
    let now = live.now;
    match (op >> 4) & 7 {
        0 => {
            if let Some(h) = h {
                let n = usize::from(input.u16());
                let data = vec![0x63; n];
                let _ = live.me.tcp_send(h, &data);
            }
        }
        1 => {
            if let Some(h) = h {
                while matches!(live.me.tcp_recv(h, &mut live.buf), Ok(n) if n > 0) {}
            }
        }
        2 => {
            if let Some(h) = h {
                let _ = live.me.tcp_shutdown(h, Shutdown::Write);
            }
        }
        3 => {
            if let Some(h) = h {
                let _ = live.me.tcp_close(h);
            }
        }
        4 => {
            if let Some(h) = h {
                let _ = live.me.tcp_abort(h);
            }
        }
        5 => {
            let n = usize::from(input.u16() % 9000);
            let dst = SocketAddr::from((Ipv4Addr::new(10, 0, 0, input.byte()), 9));
            let _ = live.me.udp_send_to(live.udp, &vec![0x64; n], dst);
            while live.me.udp_recv_from(live.udp, &mut live.buf).is_ok() {}
        }
        6 => {
            if let Ok((h, _)) = live.me.tcp_accept(live.listener) {
                let _ = live.me.tcp_send(h, b"hello");
            }
        }
        _ => {
            let port = input.u16();
            let dst = SocketAddr::from((Ipv4Addr::new(10, 0, 0, input.byte()), port));
            let _ = live.me.tcp_connect(dst, None, now);
        }
    }
    live.poll();
}

/// Feeds length-prefixed frames, unmodified, to a live stack (the first
/// byte picks the medium), with a clock step between them.
pub fn raw_frames(data: &[u8]) {
    let mut input = Input(data);
    let medium = if input.byte() & 1 == 0 {
        Medium::Ip
    } else {
        Medium::Ethernet
    };
    let mut live = Live::new(medium);
    let mut n = 0;
    while !input.0.is_empty() && n < 64 {
        n += 1;
        let len = usize::from(input.u16() % 2048);
        let f = input.take(len).to_vec();
        live.inject(&f);
        live.now += Duration::from_millis(u64::from(input.byte()) * 10);
        live.poll();
    }
    live.now += Duration::from_secs(200);
    live.exchange(4);
}
