//! TCP on the interface: demultiplexing by 4-tuple in O(1), listeners,
//! RSTs for segments nobody wants, the ready list and timer heap that keep
//! per-segment cost independent of the number of connections, and the
//! TCP calls of the poll API.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use super::{Interface, IpMeta, TxOffload};
use crate::socket::{Socket, SocketHandle};
use crate::tcp::buffer::BufferPool;
use crate::tcp::{
    cookie, isn::IsnGenerator, Listener, OutSegment, RstReply, SeqNumber, State, SynFin, Tcb,
    TcpConfig, TcpConn, TcpInfo, TimeWaitEntry, TimeWaitTable,
};
use crate::time::Instant;
use crate::wire::tcp::{self, Flags};
use crate::wire::{checksum, ipv4, Error};

/// TCP counters (RFC 4022 names, as `netstat -s` prints them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Connections opened by connect.
    pub active_opens: u64,
    /// Connections opened by a listener.
    pub passive_opens: u64,
    /// Connection attempts that failed.
    pub attempt_fails: u64,
    /// Established connections reset.
    pub estab_resets: u64,
    /// Segments received.
    pub in_segs: u64,
    /// Segments sent.
    pub out_segs: u64,
    /// Segments retransmitted.
    pub retrans_segs: u64,
    /// Segments received with errors (bad header, checksum).
    pub in_errs: u64,
    /// Segments with a bad checksum (also in `in_errs`).
    pub in_csum_errors: u64,
    /// RSTs sent.
    pub out_rsts: u64,
    /// SYNs dropped because the accept queue was full.
    pub listen_overflows: u64,
    /// Segments for no socket.
    pub no_socket: u64,
    /// Segments with both SYN and FIN dropped (`TcpConfig::syn_fin`).
    pub syn_fin_drops: u64,
    /// ICMP errors that would have aborted a connection attempt, ignored
    /// because `TcpConfig::icmp_may_abort` is off.
    pub icmp_ignored: u64,
    /// SYN cookies sent (SYN queue full).
    pub syncookies_sent: u64,
    /// Connections rebuilt from a valid cookie.
    pub syncookies_recv: u64,
    /// ACKs to a listener with an invalid cookie.
    pub syncookies_failed: u64,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" messages that
    /// lowered a connection's path MTU (and its send MSS).
    pub pmtu_updates: u64,
    /// Such messages ignored because their quote names no TCP connection
    /// of ours (malformed, another protocol, or no such 4-tuple).
    pub pmtu_unmatched: u64,
    /// Such messages ignored because the quoted sequence number is not in
    /// flight (RFC 5927 §4.1: SND.UNA <= seq < SND.NXT).
    pub pmtu_bad_seq: u64,
    /// Such messages ignored because the MTU they report is below the
    /// floor (`PmtuConfig::min_ipv4`, 1280 for IPv6).
    pub pmtu_below_floor: u64,
    /// Such messages ignored because the MTU they report is not smaller
    /// than the connection's path MTU (one per dropped segment arrives;
    /// the first does the work).
    pub pmtu_not_smaller: u64,
}

/// TCP state of an interface.
#[derive(Debug)]
pub(crate) struct TcpState {
    pub config: Arc<TcpConfig>,
    pub conns: HashMap<(SocketAddr, SocketAddr), SocketHandle>,
    pub listeners: HashMap<u16, Vec<SocketHandle>>,
    pub ready: Vec<SocketHandle>,
    pub timers: BinaryHeap<Reverse<(Instant, SocketHandle)>>,
    pub isn: IsnGenerator,
    pub counters: TcpCounters,
    pub time_wait: TimeWaitTable,
    /// Storage the connections' buffers give back, for the next that grows.
    pub buffers: BufferPool,
}

impl TcpState {
    pub fn new(config: TcpConfig, seed: u64) -> TcpState {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..].copy_from_slice(&(seed.rotate_left(29) ^ 0x7463_705f_6b65_7921).to_le_bytes());
        TcpState {
            config: Arc::new(config),
            conns: HashMap::new(),
            listeners: HashMap::new(),
            ready: Vec::new(),
            timers: BinaryHeap::new(),
            isn: IsnGenerator::new(key),
            counters: TcpCounters::default(),
            time_wait: TimeWaitTable::new(65536),
            buffers: BufferPool::default(),
        }
    }
}

/// The super-segment payload limit for TCP on an interface with `config`
/// ([`TcpConfig::segment_offload`]): 64 KiB less the largest IP and TCP
/// headers when the device segments (and so completes checksums), else 0.
pub(crate) fn segment_offload_for(config: &super::Config) -> usize {
    if config.offload.tso && config.offload.tx_checksum {
        crate::link::GSO_MAX_PACKET - 120
    } else {
        0
    }
}

/// Writes `seg` into `buf` (exactly the IP payload): header, options and
/// the payload copied from the send buffer's two slices. The checksum is
/// summed as the payload is copied (one pass over it), or, with checksum
/// offload, left to the device (the pseudo-header sum only).
fn fill_segment(buf: &mut [u8], seg: &OutSegment, src: IpAddr, dst: IpAddr, partial: bool) {
    let hlen = seg.repr.header_len();
    let (a, b) = seg.payload;
    let (pa, pb) = buf[hlen..hlen + a.len() + b.len()].split_at_mut(a.len());
    if partial {
        pa.copy_from_slice(a);
        pb.copy_from_slice(b);
        let mut p = tcp::Packet::new_unchecked(buf);
        seg.repr.emit_partial(&mut p, src, dst);
        return;
    }
    let sa = checksum::copy_and_sum(pa, a);
    let mut sb = checksum::copy_and_sum(pb, b);
    if (hlen + a.len()) % 2 == 1 {
        sb = checksum::at_odd_offset(sb);
    }
    let mut p = tcp::Packet::new_unchecked(buf);
    seg.repr
        .emit_with_payload_sum(&mut p, src, dst, checksum::combine(&[sa, sb]));
}

fn no_socket() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such TCP socket")
}

impl Interface {
    fn conn_mut(&mut self, h: SocketHandle) -> io::Result<&mut TcpConn> {
        match self.sockets.get_mut(h) {
            Some(Socket::Tcp(c)) if !c.released => Ok(c),
            _ => Err(no_socket()),
        }
    }

    /// [`Self::conn_mut`] with the interface's buffer pool beside it, for
    /// the calls that grow or free a connection's buffers.
    fn conn_and_pool(&mut self, h: SocketHandle) -> io::Result<(&mut TcpConn, &mut BufferPool)> {
        match self.sockets.get_mut(h) {
            Some(Socket::Tcp(c)) if !c.released => Ok((c, &mut self.tcp.buffers)),
            _ => Err(no_socket()),
        }
    }

    fn conn_ref(&self, h: SocketHandle) -> io::Result<&TcpConn> {
        match self.sockets.get(h) {
            Some(Socket::Tcp(c)) if !c.released => Ok(c),
            _ => Err(no_socket()),
        }
    }

    /// Puts a connection on the ready list (once).
    pub(crate) fn tcp_mark_ready(&mut self, h: SocketHandle) {
        if let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) {
            if !c.in_ready {
                c.in_ready = true;
                self.tcp.ready.push(h);
            }
        }
    }

    pub(super) fn process_tcp(&mut self, now: Instant, meta: &IpMeta, payload: &[u8]) {
        self.tcp.counters.in_segs += 1;
        let src = meta.src_ip();
        let dst = meta.dst_ip();
        let pkt = match tcp::Packet::new_checked(payload) {
            Ok(p) => p,
            Err(_) => {
                self.tcp.counters.in_errs += 1;
                trace_drop!("tcp.in_errs");
                return;
            }
        };
        let repr = match tcp::Repr::parse(&pkt, src, dst, !meta.csum_trusted) {
            Ok(r) => r,
            Err(e) => {
                self.tcp.counters.in_errs += 1;
                trace_drop!("tcp.in_errs");
                if e == Error::Checksum {
                    self.tcp.counters.in_csum_errors += 1;
                }
                return;
            }
        };
        if self.meta_is_broadcast(meta) || repr.src_port == 0 || repr.dst_port == 0 {
            self.tcp.counters.in_errs += 1;
            trace_drop!("tcp.in_errs");
            return;
        }
        let local = SocketAddr::new(dst, repr.dst_port);
        let remote = SocketAddr::new(src, repr.src_port);

        if let Some(&h) = self.tcp.conns.get(&(local, remote)) {
            // FreeBSD's drop_synfin: a SYN+FIN never completes an active open.
            let syn_sent = matches!(self.sockets.get(h), Some(Socket::Tcp(c))
                if c.tcb.state == State::SynSent);
            if syn_sent
                && repr.flags.syn()
                && repr.flags.fin()
                && self.tcp.config.syn_fin == SynFin::Drop
            {
                self.tcp.counters.syn_fin_drops += 1;
                trace_drop!("tcp.syn_fin_drops");
                return;
            }
            // Only a connection the application has let go of may be
            // replaced: one it still holds (shut down, not closed) keeps
            // its TIME-WAIT and answers with a challenge ACK.
            let reuse = matches!(self.sockets.get(h), Some(Socket::Tcp(c))
                if c.released && c.tcb.state == State::TimeWait && repr.flags.syn()
                    && !repr.flags.ack() && tw_may_reuse(&c.tcb, &repr));
            if !reuse {
                self.tcp_deliver(now, h, &repr);
                return;
            }
            // RFC 6191 / RFC 9293 §3.6.1: a new SYN may end TIME-WAIT.
            self.tcp_forget(h);
        }
        if let Some(e) = self.tcp.time_wait.get(&(local, remote)).copied() {
            let f = repr.flags;
            if f.syn() && !f.ack() && e.may_reuse(&repr) {
                // RFC 6191: the new incarnation ends TIME-WAIT.
                self.tcp.time_wait.remove(&(local, remote));
            } else {
                // RFC 1337: RSTs are ignored. Anything else is answered
                // with an ACK; a retransmitted FIN restarts 2 MSL.
                if !f.rst() {
                    if f.fin() {
                        let t = TimeWaitTable::deadline(now, self.tcp.config.msl);
                        self.tcp.time_wait.restart(&(local, remote), t);
                    }
                    let ack = e.ack(local, remote, now);
                    self.emit_tcp(
                        now,
                        local,
                        remote,
                        &OutSegment {
                            repr: ack,
                            payload: (&[], &[]),
                            gso_size: 0,
                        },
                    );
                }
                return;
            }
        }
        if let Some(lh) = self.tcp_find_listener(local) {
            self.tcp_listener_input(now, lh, local, remote, &repr);
            return;
        }
        self.tcp.counters.no_socket += 1;
        trace_drop!("tcp.no_socket");
        self.tcp_reset_for(now, local, remote, &repr);
    }

    fn tcp_deliver(&mut self, now: Instant, h: SocketHandle, repr: &tcp::Repr) {
        let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) else {
            return;
        };
        if c.tcb.state == State::SynReceived && repr.flags.ack() && !repr.flags.rst() {
            if let Some(Socket::TcpListener(l)) = c.parent.and_then(|p| self.sockets.get(p)) {
                if l.accept_queue.len() >= l.backlog {
                    // Accept queue full: drop the handshake's last ACK, as
                    // Linux does; the SYN-ACK is retransmitted and the
                    // client's retries find room once the server accepts.
                    self.tcp.counters.listen_overflows += 1;
                    trace_drop!("tcp.listen_overflows");
                    return;
                }
            }
        }
        let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) else {
            return;
        };
        let before = c.tcb.state;
        let reply = c.tcb.process(now, repr, &mut self.tcp.buffers);
        let after = c.tcb.state;
        let (local, remote) = (c.tcb.local, c.tcb.remote);
        let parent = c.parent;
        if before != after {
            self.tcp_state_change(h, before, after, parent);
        }
        self.sockets.notify(h);
        self.tcp_mark_ready(h);
        if let Some(r) = reply {
            self.send_rst(now, local, remote, r);
        }
    }

    fn tcp_state_change(
        &mut self,
        h: SocketHandle,
        before: State,
        after: State,
        parent: Option<SocketHandle>,
    ) {
        if before == State::SynReceived && after != State::SynReceived {
            if let Some(p) = parent {
                if let Some(Socket::TcpListener(l)) = self.sockets.get_mut(p) {
                    l.half_open = l.half_open.saturating_sub(1);
                    if after.is_synchronized() && !l.closed {
                        l.accept_queue.push_back(h);
                        self.sockets.notify(p);
                    }
                }
                if let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) {
                    c.half_open = false;
                    if !after.is_synchronized() {
                        // Reset before accept: the listener forgets it.
                        c.released = true;
                    }
                }
            }
        }
        if after == State::Closed {
            match before {
                State::SynSent | State::SynReceived => self.tcp.counters.attempt_fails += 1,
                State::Established | State::CloseWait => {
                    if matches!(self.sockets.get(h), Some(Socket::Tcp(c)) if c.tcb.error == Some(io::ErrorKind::ConnectionReset))
                    {
                        self.tcp.counters.estab_resets += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn tcp_find_listener(&self, local: SocketAddr) -> Option<SocketHandle> {
        let list = self.tcp.listeners.get(&local.port())?;
        let (mut wildcard, mut dual) = (None, None);
        for &h in list {
            if let Some(Socket::TcpListener(l)) = self.sockets.get(h) {
                if l.local.is_ipv4() != local.is_ipv4() {
                    // 0.0.0.0 listens to IPv4 only; [::] to IPv4 as well
                    // when bind_v6_only is off.
                    if self.family_ok(l.local, local.is_ipv4()) {
                        dual = Some(h);
                    }
                    continue;
                }
                if l.local.ip() == local.ip() {
                    return Some(h);
                }
                if l.local.ip().is_unspecified() {
                    wildcard = Some(h);
                }
            }
        }
        wildcard.or(dual)
    }

    fn tcp_listener_input(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddr,
        remote: SocketAddr,
        repr: &tcp::Repr,
    ) {
        let f = repr.flags;
        if f.rst() {
            return;
        }
        if f.ack() {
            if !f.syn() && self.tcp_cookie_accept(now, lh, local, remote, repr) {
                return;
            }
            // No half-open connection matched: RFC 9293 §3.10.7.2.
            self.tcp_reset_for(now, local, remote, repr);
            return;
        }
        if !f.syn() {
            return;
        }
        if f.fin() && self.tcp.config.syn_fin != SynFin::Accept {
            self.tcp.counters.syn_fin_drops += 1;
            trace_drop!("tcp.syn_fin_drops");
            return;
        }
        let Some(Socket::TcpListener(l)) = self.sockets.get_mut(lh) else {
            return;
        };
        if l.accept_queue.len() >= l.backlog {
            // Accept queue full: drop, the client retries (Linux).
            self.tcp.counters.listen_overflows += 1;
            trace_drop!("tcp.listen_overflows");
            return;
        }
        if l.syn_queue_full() {
            if l.config.syncookies {
                // SYN flood (or just busy): answer statelessly.
                self.send_syn_cookie(now, lh, local, remote, repr);
            } else {
                self.tcp.counters.listen_overflows += 1;
                trace_drop!("tcp.listen_overflows");
            }
            return;
        }
        l.half_open += 1;
        let config = l.config.clone();
        let iss = self.tcp.isn.isn(local, remote, now);
        let ts_offset = self.next_random() as u32;
        let mut tcb = Tcb::new(config, local, remote, iss, self.config.mtu, ts_offset, now);
        tcb.pmtu = self.path_mtu(remote.ip(), now);
        tcb.passive = true;
        tcb.accept_syn(now, repr);
        let h = self.sockets.insert(Socket::Tcp(Box::new(TcpConn {
            tcb,
            parent: Some(lh),
            in_ready: false,
            scheduled: None,
            released: false,
            half_open: true,
        })));
        self.tcp.conns.insert((local, remote), h);
        self.tcp.counters.passive_opens += 1;
        self.tcp_mark_ready(h);
    }

    fn send_syn_cookie(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &tcp::Repr,
    ) {
        let Some(Socket::TcpListener(l)) = self.sockets.get(lh) else {
            return;
        };
        let cfg = l.config.clone();
        let headers = if remote.is_ipv6() { 60 } else { 40 };
        let our_mss = self.config.mtu.saturating_sub(headers).clamp(88, 65495) as u16;
        let peer_mss = match cfg.no_options {
            true => 536,
            false => syn.options.mss.unwrap_or(536).min(our_mss),
        };
        let iss = cookie::encode(&self.tcp.isn, local, remote, syn.seq_number, peer_mss, now);
        let mut o = tcp::Options {
            mss: (!cfg.no_options).then_some(our_mss),
            ..tcp::Options::default()
        };
        // Window scaling and SACK survive only inside the timestamp (as on
        // Linux): without timestamps neither is offered.
        let ts = syn.options.timestamps.filter(|_| !cfg.no_options);
        if let (Some((val, _)), true) = (ts, cfg.timestamps) {
            let ws = syn.options.window_scale.filter(|_| cfg.window_scaling);
            let sack = syn.options.sack_permitted && cfg.sack;
            if ws.is_some() {
                o.window_scale = Some(crate::tcp::wscale_for(cfg.recv_buffer));
            }
            o.sack_permitted = sack;
            o.timestamps = Some((cookie::ts_encode(now.total_millis() as u32, ws, sack), val));
        }
        let repr = tcp::Repr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq_number: iss,
            ack_number: syn.seq_number.wrapping_add(1),
            flags: Flags::SYN | Flags::ACK,
            window_len: cfg.recv_buffer.min(65535) as u16,
            urgent_at: 0,
            options: o,
            payload: &[],
        };
        self.tcp.counters.syncookies_sent += 1;
        self.emit_tcp(
            now,
            local,
            remote,
            &OutSegment {
                repr,
                payload: (&[], &[]),
                gso_size: 0,
            },
        );
    }

    /// An ACK for a listener with no half-open connection: a returning SYN
    /// cookie? True when it was one (accepted or dropped for room).
    fn tcp_cookie_accept(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddr,
        remote: SocketAddr,
        repr: &tcp::Repr,
    ) -> bool {
        let peer_isn = repr.seq_number.wrapping_sub(1);
        let cookie_val = repr.ack_number.wrapping_sub(1);
        let Some(mss) = cookie::decode(&self.tcp.isn, local, remote, peer_isn, cookie_val, now)
        else {
            if self.tcp.counters.syncookies_sent > 0 {
                self.tcp.counters.syncookies_failed += 1;
                trace_drop!("tcp.syncookies_failed");
            }
            return false;
        };
        let Some(Socket::TcpListener(l)) = self.sockets.get(lh) else {
            return false;
        };
        if l.accept_queue.len() >= l.backlog {
            self.tcp.counters.listen_overflows += 1;
            trace_drop!("tcp.listen_overflows");
            return true;
        }
        let cfg = l.config.clone();
        let (ws, sack) = repr
            .options
            .timestamps
            .map(|(_, ecr)| cookie::ts_decode(ecr))
            .unwrap_or((None, false));
        let mut tcb = Tcb::new(
            cfg,
            local,
            remote,
            SeqNumber(cookie_val),
            self.config.mtu,
            0,
            now,
        );
        tcb.pmtu = self.path_mtu(remote.ip(), now);
        tcb.accept_cookie(now, repr, mss, ws, sack);
        let h = self.sockets.insert(Socket::Tcp(Box::new(TcpConn {
            tcb,
            parent: Some(lh),
            in_ready: false,
            scheduled: None,
            released: false,
            half_open: false,
        })));
        self.tcp.conns.insert((local, remote), h);
        self.tcp.counters.syncookies_recv += 1;
        self.tcp.counters.passive_opens += 1;
        if let Some(Socket::TcpListener(l)) = self.sockets.get_mut(lh) {
            l.accept_queue.push_back(h);
        }
        self.sockets.notify(lh);
        // The ACK may carry data: process it as the connection's first segment.
        self.tcp_deliver(now, h, repr);
        true
    }

    /// A RST answering `repr` for a connection that does not exist
    /// (RFC 9293 §3.10.7.1).
    fn tcp_reset_for(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        repr: &tcp::Repr,
    ) {
        if repr.flags.rst() {
            return;
        }
        let reply = if repr.flags.ack() {
            RstReply {
                seq: SeqNumber(repr.ack_number),
                ack: None,
            }
        } else {
            RstReply {
                seq: SeqNumber(0),
                ack: Some(SeqNumber(repr.seq_number) + repr.segment_len()),
            }
        };
        self.send_rst(now, local, remote, reply);
    }

    fn send_rst(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, r: RstReply) {
        let mut flags = Flags::RST;
        if r.ack.is_some() {
            flags |= Flags::ACK;
        }
        let repr = tcp::Repr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq_number: r.seq.0,
            ack_number: r.ack.map_or(0, |a| a.0),
            flags,
            window_len: 0,
            urgent_at: 0,
            options: tcp::Options::default(),
            payload: &[],
        };
        self.tcp.counters.out_rsts += 1;
        self.emit_tcp(
            now,
            local,
            remote,
            &OutSegment {
                repr,
                payload: (&[], &[]),
                gso_size: 0,
            },
        );
    }

    /// Wraps a segment in IPv4 and queues it. False when the transmit
    /// queue is full (the connection tries again later).
    fn emit_tcp(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &OutSegment,
    ) -> bool {
        if !self.tx_has_room(1) {
            return false;
        }
        let hlen = seg.repr.header_len();
        let (a, b) = seg.payload;
        // The header, options and payload are all written below: the
        // transmit slot need not be cleared first.
        let off = TxOffload {
            partial_csum_at: self.config.offload.tx_checksum.then_some(16),
            gso_size: if self.config.offload.tso {
                seg.gso_size
            } else {
                0
            },
            writes_all: true,
        };
        let partial = off.partial_csum_at.is_some();
        let (src, dst) = match (local.ip(), remote.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.tcp.counters.out_segs += 1;
                let len = hlen + a.len() + b.len();
                self.send_ipv6_meta(now, s, d, ipv4::protocol::TCP, len, off, |buf| {
                    fill_segment(buf, seg, IpAddr::V6(s), IpAddr::V6(d), partial)
                });
                return true;
            }
            _ => return true,
        };
        let repr = ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: ipv4::protocol::TCP,
            payload_len: hlen + a.len() + b.len(),
            ttl: self.config.ttl,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: true,
        };
        self.tcp.counters.out_segs += 1;
        self.send_ipv4_meta(now, repr, off, |buf| {
            fill_segment(buf, seg, IpAddr::V4(src), IpAddr::V4(dst), partial)
        });
        true
    }

    /// Runs due timers and lets ready connections transmit.
    pub(super) fn flush_tcp(&mut self, now: Instant) {
        self.tcp.time_wait.expire(now);
        while let Some(&Reverse((t, h))) = self.tcp.timers.peek() {
            if t > now {
                break;
            }
            self.tcp.timers.pop();
            if let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) {
                if c.scheduled == Some(t) {
                    c.scheduled = None;
                    self.tcp_mark_ready(h);
                }
            }
        }
        let mut ready = std::mem::take(&mut self.tcp.ready);
        for h in ready.drain(..) {
            self.tcp_poll_one(now, h);
        }
        if self.tcp.ready.is_empty() {
            self.tcp.ready = ready;
        }
    }

    fn tcp_poll_one(&mut self, now: Instant, h: SocketHandle) {
        let Some(Socket::Tcp(mut c)) = self.sockets.take(h) else {
            return;
        };
        c.in_ready = false;
        let before = c.tcb.state;
        let (local, remote) = (c.tcb.local, c.tcb.remote);
        let mut blocked = false;
        let retrans_before = c.tcb.info.retransmits;
        c.tcb.handle_timeout(now);
        c.tcb.poll_transmit(now, &mut |seg: &OutSegment| {
            let ok = self.emit_tcp(now, local, remote, seg);
            blocked |= !ok;
            ok
        });
        self.tcp.counters.retrans_segs += c.tcb.info.retransmits - retrans_before;
        let after = c.tcb.state;
        let parent = c.parent;
        if after == State::TimeWait && c.released && !c.tcb.ack_now {
            // The application is gone: keep only a compact entry.
            let key = (c.tcb.local, c.tcb.remote);
            let e = TimeWaitEntry::from_tcb(&c.tcb, now);
            self.sockets.put_back(h, Socket::Tcp(c));
            if before != after {
                self.tcp_state_change(h, before, after, parent_of(&self.sockets, h));
            }
            self.tcp_forget(h);
            self.tcp.time_wait.insert(key, e);
            return;
        }
        let done = after == State::Closed && (c.released || c.half_open);
        // Reschedule.
        let next = c.tcb.poll_at();
        self.sockets.put_back(h, Socket::Tcp(c));
        if before != after {
            self.tcp_state_change(h, before, after, parent);
            self.sockets.notify(h);
        }
        if done
            || matches!(self.sockets.get(h), Some(Socket::Tcp(c)) if c.released && c.tcb.state == State::Closed)
        {
            self.tcp_forget(h);
            return;
        }
        if blocked || next.is_some_and(|t| t <= now) {
            if blocked {
                self.tcp_mark_ready(h);
            } else if let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) {
                // More to do right away (e.g. window opened): next round.
                if !c.in_ready {
                    c.in_ready = true;
                    self.tcp.ready.push(h);
                }
            }
        } else if let Some(t) = next {
            if let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) {
                if c.scheduled.is_none_or(|s| t < s) {
                    c.scheduled = Some(t);
                    self.tcp.timers.push(Reverse((t, h)));
                }
            }
        }
    }

    /// Drops a connection from every table.
    fn tcp_forget(&mut self, h: SocketHandle) {
        if let Some(Socket::Tcp(c)) = self.sockets.remove(h) {
            let key = (c.tcb.local, c.tcb.remote);
            if self.tcp.conns.get(&key) == Some(&h) {
                self.tcp.conns.remove(&key);
            }
            if c.half_open {
                if let Some(Socket::TcpListener(l)) = c.parent.and_then(|p| self.sockets.get_mut(p))
                {
                    l.half_open = l.half_open.saturating_sub(1);
                }
            }
        }
    }

    /// The earliest TCP deadline.
    pub(super) fn tcp_poll_at(&self) -> Option<Instant> {
        if !self.tcp.ready.is_empty() {
            return Some(Instant::ZERO);
        }
        [
            self.tcp.timers.peek().map(|Reverse((t, _))| *t),
            self.tcp.time_wait.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// TIME-WAIT entries held (connections the application let go of).
    pub fn tcp_time_wait_len(&self) -> usize {
        self.tcp.time_wait.len()
    }

    pub(super) fn tcp_icmp_error(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        kind: io::ErrorKind,
    ) {
        let Some(&h) = self.tcp.conns.get(&(local, remote)) else {
            return;
        };
        if let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) {
            let t = &mut c.tcb;
            // RFC 5927 §4.1: the quoted sequence number must be in flight.
            let s = SeqNumber(seq);
            if s < t.snd_una || s >= t.snd_max.max(t.snd_una + 1) {
                return;
            }
            // Hard error only while connecting (RFC 5927 §4.2, RFC 1122),
            // unless the stack is told to ignore them (FreeBSD's
            // net.inet.tcp.icmp_may_rst=0).
            if t.state == State::SynSent && !self.tcp.config.icmp_may_abort {
                self.tcp.counters.icmp_ignored += 1;
                return;
            }
            if t.state == State::SynSent {
                t.fail(kind);
                self.tcp.counters.attempt_fails += 1;
                self.sockets.notify(h);
                self.tcp_mark_ready(h);
            }
        }
    }

    /// An ICMP "fragmentation needed" (RFC 1191) or ICMPv6 "packet too big"
    /// (RFC 8201) quoting a segment `local` -> `remote` with sequence number
    /// `seq`, reporting `mtu` (the IP-level MTU of the next hop; the caller
    /// has already replaced an unreported one, see RFC 1191 §5).
    ///
    /// Acts only when the quote matches a connection and its sequence
    /// number is in flight (RFC 5927 §4.1/§5.2), and the MTU is at least the
    /// floor and below the connection's path MTU: then the path MTU drops,
    /// the send MSS shrinks, the segments in flight that no longer fit go
    /// again at once at the new size (not a congestion event: cwnd stays),
    /// and the destination's entry in the path MTU cache is lowered, for
    /// connections opened later. Everything ignored is counted.
    pub(crate) fn tcp_packet_too_big(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        mtu: usize,
    ) {
        let Some(&h) = self.tcp.conns.get(&(local, remote)) else {
            self.tcp.counters.pmtu_unmatched += 1;
            trace_drop!("tcp.pmtu_unmatched");
            return;
        };
        let floor = self.config.pmtu.floor(remote.ip());
        let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) else {
            self.tcp.counters.pmtu_unmatched += 1;
            trace_drop!("tcp.pmtu_unmatched");
            return;
        };
        let t = &mut c.tcb;
        if !t.seq_in_flight(SeqNumber(seq)) {
            self.tcp.counters.pmtu_bad_seq += 1;
            trace_drop!("tcp.pmtu_bad_seq");
            return;
        }
        if mtu < floor {
            self.tcp.counters.pmtu_below_floor += 1;
            trace_drop!("tcp.pmtu_below_floor");
            return;
        }
        if mtu >= t.pmtu {
            self.tcp.counters.pmtu_not_smaller += 1;
            trace_drop!("tcp.pmtu_not_smaller");
            return;
        }
        t.on_packet_too_big(now, mtu);
        self.tcp.counters.pmtu_updates += 1;
        self.pmtu.insert(remote.ip(), mtu, now);
        self.tcp_mark_ready(h);
    }

    // ------------------------------------------------------------ poll API

    fn tcp_port_in_use(&self, ip: IpAddr, port: u16) -> bool {
        self.tcp.listeners.get(&port).is_some_and(|l| {
            l.iter().any(|&h| {
                matches!(self.sockets.get(h), Some(Socket::TcpListener(x))
                if (x.local.is_ipv4() == ip.is_ipv4()
                    && (x.local.ip().is_unspecified() || ip.is_unspecified() || x.local.ip() == ip))
                    || self.dual_conflict(x.local.ip(), ip))
            })
        })
    }

    /// With `bind_v6_only` off, a wildcard of one family and one of the
    /// other on the same port collide (the `[::]` one takes IPv4 too).
    pub(super) fn dual_conflict(&self, a: IpAddr, b: IpAddr) -> bool {
        !self.config.bind_v6_only
            && a.is_ipv4() != b.is_ipv4()
            && (a == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                || b == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
            && (a.is_unspecified() || b.is_unspecified())
    }

    /// Listens on `local` (port 0: ephemeral) with an accept queue of
    /// `backlog`.
    pub fn tcp_listen(&mut self, local: SocketAddr, backlog: usize) -> io::Result<SocketHandle> {
        let ip = local.ip();
        let ours = match ip {
            IpAddr::V4(a) => self.has_addr(a),
            IpAddr::V6(a) => self.has_addr_v6(a),
        };
        if !ip.is_unspecified() && !ours {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{ip} is not an address of this interface"),
            ));
        }
        let port = if local.port() == 0 {
            self.tcp_ephemeral_port(None)?
        } else {
            local.port()
        };
        if self.tcp_port_in_use(local.ip(), port) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("TCP port {port} is in use"),
            ));
        }
        // `[::]` listens to IPv6 only (IPV6_V6ONLY): IPv4 needs its own
        // listener on 0.0.0.0, which may share the port.
        let addr = SocketAddr::new(ip, port);
        let l = Listener::new(addr, backlog, self.tcp.config.clone());
        let h = self.sockets.insert(Socket::TcpListener(Box::new(l)));
        self.tcp.listeners.entry(port).or_default().push(h);
        Ok(h)
    }

    /// Takes an established connection from the listener's queue.
    pub fn tcp_accept(&mut self, lh: SocketHandle) -> io::Result<(SocketHandle, SocketAddr)> {
        loop {
            let Some(Socket::TcpListener(l)) = self.sockets.get_mut(lh) else {
                return Err(no_socket());
            };
            let Some(h) = l.accept_queue.pop_front() else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let v6_listener = l.local.is_ipv6();
            if let Some(Socket::Tcp(c)) = self.sockets.get_mut(h) {
                c.parent = None;
                if !c.released {
                    // An IPv4 peer of a dual-stack [::] listener is
                    // reported IPv4-mapped, as std::net does.
                    let peer = if v6_listener {
                        super::v4_mapped(c.tcb.remote)
                    } else {
                        c.tcb.remote
                    };
                    return Ok((h, peer));
                }
            }
        }
    }

    /// The listener's state.
    pub fn tcp_listener(&self, lh: SocketHandle) -> io::Result<&Listener> {
        match self.sockets.get(lh) {
            Some(Socket::TcpListener(l)) => Ok(l),
            _ => Err(no_socket()),
        }
    }

    fn tcp_ephemeral_port(&mut self, remote: Option<SocketAddr>) -> io::Result<u16> {
        let (lo, hi) = self.config.ephemeral_ports;
        let span = (hi as u32).saturating_sub(lo as u32) + 1;
        // RFC 6056 algorithm 1 (random start, linear search); a port is
        // free when no listener holds it and no connection (TIME-WAIT
        // included) uses it towards `remote`.
        let start = (self.next_random() % span as u64) as u32;
        let src = remote.and_then(|r| match r.ip() {
            IpAddr::V4(d) => self.source_for(d).map(IpAddr::V4),
            _ => None,
        });
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            if self.tcp_port_in_use(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port) {
                continue;
            }
            if let (Some(r), Some(s)) = (remote, src) {
                let key = (SocketAddr::new(s, port), r);
                if self.tcp.conns.contains_key(&key) || self.tcp.time_wait.get(&key).is_some() {
                    continue;
                }
            }
            return Ok(port);
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free ephemeral TCP port",
        ))
    }

    /// Starts connecting to `remote` (non-blocking: SYN-SENT). `local`
    /// picks the source address and port (port 0 or `None`: ephemeral).
    pub fn tcp_connect(
        &mut self,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        now: Instant,
    ) -> io::Result<SocketHandle> {
        let now = self.monotonic(now);
        let rip = match remote.ip() {
            IpAddr::V4(rip) => rip,
            IpAddr::V6(rip6) => return self.tcp_connect_v6(remote, rip6, local, now),
        };
        if remote.port() == 0
            || rip.is_unspecified()
            || rip.is_broadcast()
            || rip.is_multicast()
            || self.is_broadcast(rip)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot connect to {remote}"),
            ));
        }
        if self.route(rip).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                format!("no route to {rip}"),
            ));
        }
        let src = match local.map(|l| l.ip()) {
            Some(IpAddr::V4(a)) if !a.is_unspecified() => {
                if !self.has_addr(a) {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrNotAvailable,
                        format!("{a} is not an address of this interface"),
                    ));
                }
                a
            }
            _ => self.source_for(rip).ok_or_else(|| {
                io::Error::new(io::ErrorKind::AddrNotAvailable, "no source address")
            })?,
        };
        let port = match local.map(|l| l.port()).unwrap_or(0) {
            0 => self.tcp_ephemeral_port(Some(remote))?,
            p => p,
        };
        let local = SocketAddr::V4(SocketAddrV4::new(src, port));
        self.tcp_connect_from(local, remote, now)
    }

    /// An active open towards an IPv6 peer.
    fn tcp_connect_v6(
        &mut self,
        remote: SocketAddr,
        rip: std::net::Ipv6Addr,
        local: Option<SocketAddr>,
        now: Instant,
    ) -> io::Result<SocketHandle> {
        if remote.port() == 0 || rip.is_unspecified() || rip.is_multicast() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot connect to {remote}"),
            ));
        }
        let src = match local.map(|l| l.ip()) {
            Some(IpAddr::V6(a)) if !a.is_unspecified() => {
                if !self.has_addr_v6(a) {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrNotAvailable,
                        format!("{a} is not an address of this interface"),
                    ));
                }
                a
            }
            _ => self.source_for_v6(rip).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    "no IPv6 address on this interface",
                )
            })?,
        };
        let port = match local.map(|l| l.port()).unwrap_or(0) {
            0 => self.tcp_ephemeral_port(Some(remote))?,
            p => p,
        };
        self.tcp_connect_from(SocketAddr::new(IpAddr::V6(src), port), remote, now)
    }

    fn tcp_connect_from(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
    ) -> io::Result<SocketHandle> {
        if self.tcp.conns.contains_key(&(local, remote)) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{local} -> {remote} is in use"),
            ));
        }
        let iss = self.tcp.isn.isn(local, remote, now);
        let ts_offset = self.next_random() as u32;
        let mut tcb = Tcb::new(
            self.tcp.config.clone(),
            local,
            remote,
            iss,
            self.config.mtu,
            ts_offset,
            now,
        );
        tcb.pmtu = self.path_mtu(remote.ip(), now);
        tcb.connect(now);
        let h = self.sockets.insert(Socket::Tcp(Box::new(TcpConn {
            tcb,
            parent: None,
            in_ready: false,
            scheduled: None,
            released: false,
            half_open: false,
        })));
        self.tcp.conns.insert((local, remote), h);
        self.tcp.counters.active_opens += 1;
        self.tcp_mark_ready(h);
        Ok(h)
    }

    /// Queues data for sending (`WouldBlock` when the buffer is full).
    pub fn tcp_send(&mut self, h: SocketHandle, data: &[u8]) -> io::Result<usize> {
        let (c, pool) = self.conn_and_pool(h)?;
        let r = c.tcb.send(data, pool);
        if r.is_ok() {
            self.tcp_mark_ready(h);
        }
        r
    }

    /// Reads data (`Ok(0)` at end of stream, `WouldBlock` when none yet).
    pub fn tcp_recv(&mut self, h: SocketHandle, buf: &mut [u8]) -> io::Result<usize> {
        let (c, pool) = self.conn_and_pool(h)?;
        let r = c.tcb.recv(buf, pool);
        if c.tcb.ack_now {
            self.tcp_mark_ready(h);
        }
        r
    }

    /// Copies readable data without consuming it.
    pub fn tcp_peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> io::Result<usize> {
        let c = self.conn_mut(h)?;
        if let Some(e) = c.tcb.error {
            if c.tcb.recv_queue() == 0 {
                return Err(e.into());
            }
        }
        let n = c.tcb.peek(buf);
        if n == 0 && !c.tcb.can_recv() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Shuts down reading, writing or both (`std::net::Shutdown`).
    pub fn tcp_shutdown(&mut self, h: SocketHandle, how: std::net::Shutdown) -> io::Result<()> {
        let c = self.conn_mut(h)?;
        if !c.tcb.state.is_synchronized() && c.tcb.state != State::SynReceived {
            return Err(io::ErrorKind::NotConnected.into());
        }
        match how {
            std::net::Shutdown::Read => c.tcb.shutdown_read(),
            std::net::Shutdown::Write => c.tcb.shutdown_write(),
            std::net::Shutdown::Both => {
                c.tcb.shutdown_read();
                c.tcb.shutdown_write();
            }
        }
        self.sockets.notify(h);
        self.tcp_mark_ready(h);
        Ok(())
    }

    /// Closes the socket: the connection finishes on its own (FIN, or RST
    /// when unread data is left). A listener stops and resets the
    /// connections it had not handed out.
    pub fn tcp_close(&mut self, h: SocketHandle) -> io::Result<()> {
        match self.sockets.get_mut(h) {
            Some(Socket::Tcp(c)) if !c.released => {
                c.released = true;
                c.tcb.close();
                self.tcp_mark_ready(h);
                Ok(())
            }
            Some(Socket::TcpListener(_)) => {
                let Some(Socket::TcpListener(l)) = self.sockets.remove(h) else {
                    unreachable!()
                };
                if let Some(list) = self.tcp.listeners.get_mut(&l.local.port()) {
                    list.retain(|x| *x != h);
                    if list.is_empty() {
                        self.tcp.listeners.remove(&l.local.port());
                    }
                }
                for ch in l.accept_queue {
                    if let Some(Socket::Tcp(c)) = self.sockets.get_mut(ch) {
                        c.released = true;
                        c.tcb.abort();
                        self.tcp_mark_ready(ch);
                    }
                }
                // Half-open children of this listener go too.
                let orphans: Vec<SocketHandle> = self
                    .tcp
                    .conns
                    .values()
                    .copied()
                    .filter(|&ch| matches!(self.sockets.get(ch), Some(Socket::Tcp(c)) if c.parent == Some(h)))
                    .collect();
                for ch in orphans {
                    if let Some(Socket::Tcp(c)) = self.sockets.get_mut(ch) {
                        c.released = true;
                        c.parent = None;
                        c.tcb.abort();
                        self.tcp_mark_ready(ch);
                    }
                }
                Ok(())
            }
            _ => Err(no_socket()),
        }
    }

    /// Aborts with a RST (close with linger 0).
    pub fn tcp_abort(&mut self, h: SocketHandle) -> io::Result<()> {
        let c = self.conn_mut(h)?;
        c.released = true;
        c.tcb.abort();
        self.tcp_mark_ready(h);
        Ok(())
    }

    /// The connection.
    pub fn tcp_socket(&self, h: SocketHandle) -> io::Result<&Tcb> {
        self.conn_ref(h).map(|c| &c.tcb)
    }

    /// The connection, mutable (settings such as nodelay and keep-alive).
    pub fn tcp_socket_mut(&mut self, h: SocketHandle) -> io::Result<&mut Tcb> {
        self.tcp_mark_ready(h);
        self.conn_mut(h).map(|c| &mut c.tcb)
    }

    /// A `TCP_INFO`-like snapshot.
    pub fn tcp_info(&self, h: SocketHandle) -> io::Result<TcpInfo> {
        self.conn_ref(h).map(|c| c.tcb.info())
    }

    /// The TCP counters.
    pub fn tcp_counters(&self) -> &TcpCounters {
        &self.tcp.counters
    }

    /// Connections currently established or closing (not TIME-WAIT).
    pub fn tcp_curr_estab(&self) -> usize {
        self.tcp
            .conns
            .values()
            .filter(|&&h| matches!(self.sockets.get(h), Some(Socket::Tcp(c)) if matches!(c.tcb.state, State::Established | State::CloseWait)))
            .count()
    }

    /// The TCP settings new sockets get.
    pub fn tcp_config(&self) -> &TcpConfig {
        &self.tcp.config
    }

    /// Changes the TCP settings for sockets created from now on.
    pub fn set_tcp_config(&mut self, mut config: TcpConfig) {
        config.segment_offload = segment_offload_for(&self.config);
        self.tcp.config = Arc::new(config);
    }
}

fn parent_of(sockets: &crate::socket::SocketSet, h: SocketHandle) -> Option<SocketHandle> {
    match sockets.get(h) {
        Some(Socket::Tcp(c)) => c.parent,
        _ => None,
    }
}

/// RFC 6191 (timestamps) or RFC 9293 §3.6.1 (higher ISN): may a new SYN
/// take over a TIME-WAIT 4-tuple?
fn tw_may_reuse(tcb: &Tcb, syn: &tcp::Repr) -> bool {
    match (tcb.ts, syn.options.timestamps) {
        (Some(ts), Some((val, _))) => (val.wrapping_sub(ts.recent) as i32) > 0,
        _ => SeqNumber(syn.seq_number) > tcb.rcv_nxt,
    }
}
