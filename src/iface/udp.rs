//! UDP on the interface: demultiplexing, delivery, and the socket calls of
//! the poll API.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{Interface, IpMeta};
use crate::socket::{Socket, SocketHandle};
use crate::time::Instant;
use crate::udp::{is_group_addr, UdpSocket, MAX_PAYLOAD_V4};
use crate::wire::icmpv4::DstUnreachable;
use crate::wire::{ipv4, udp, Error};

fn no_socket() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such socket")
}

fn v6_family() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "address family mismatch: an IPv4 socket cannot talk to IPv6 and the reverse (EAFNOSUPPORT)",
    )
}

impl Interface {
    pub(super) fn process_udp(&mut self, now: Instant, meta: &IpMeta, payload: &[u8]) {
        let repr = match udp::Packet::new_checked(payload).and_then(|p| {
            udp::Repr::parse(&p, meta.src_ip(), meta.dst_ip(), !meta.csum_trusted).map(|r| (r, p))
        }) {
            Ok(r) => r,
            Err(e) => {
                self.counters.udp.in_errors += 1;
                trace_drop!("udp.in_errors");
                if e == Error::Checksum {
                    self.counters.udp.in_csum_errors += 1;
                }
                return;
            }
        };
        let (repr, pkt) = repr;
        let src = SocketAddr::new(meta.src_ip(), repr.src_port);
        let dst = SocketAddr::new(meta.dst_ip(), repr.dst_port);
        let data = pkt.payload();
        let broadcast = self.meta_is_broadcast(meta);

        let mut best: Option<(u8, SocketHandle, SocketAddr)> = None;
        let mut delivered = false;
        let mut overflow = false;
        let dual_ok = dst.is_ipv4() && !self.config.bind_v6_only;
        if let Some(list) = self.udp_ports.get(&repr.dst_port) {
            for &h in list {
                let Some(Socket::Udp(s)) = self.sockets.get(h) else {
                    continue;
                };
                // A dual-stack [::] socket sees IPv4 as IPv4-mapped.
                let (src, dst) = if dual_ok && s.local.is_ipv6() {
                    (super::v4_mapped(src), super::v4_mapped(dst))
                } else {
                    (src, dst)
                };
                let Some(score) = s.match_score(src, dst) else {
                    continue;
                };
                if broadcast {
                    // Every matching socket gets a copy of a broadcast.
                    if let Some(Socket::Udp(s)) = self.sockets.get_mut(h) {
                        if s.rx.push(src, data) {
                            delivered = true;
                            self.sockets.notify(h);
                        } else {
                            overflow = true;
                        }
                    }
                } else if best.is_none_or(|(b, ..)| score > b) {
                    best = Some((score, h, src));
                }
            }
        }
        if let Some((_, h, src)) = best {
            if let Some(Socket::Udp(s)) = self.sockets.get_mut(h) {
                if s.rx.push(src, data) {
                    delivered = true;
                    self.sockets.notify(h);
                } else {
                    overflow = true;
                }
            }
        }
        if delivered {
            self.counters.udp.in_datagrams += 1;
        } else if overflow {
            self.counters.udp.rcvbuf_errors += 1;
            trace_drop!("udp.rcvbuf_errors");
            self.counters.udp.in_errors += 1;
        } else {
            self.counters.udp.no_ports += 1;
            trace_drop!("udp.no_ports");
            if !broadcast && !is_group_addr(dst.ip()) {
                self.send_icmp_error(now, meta, DstUnreachable::PortUnreachable);
            }
        }
    }

    pub(super) fn udp_icmp_error(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        kind: io::ErrorKind,
    ) {
        let Some(list) = self.udp_ports.get(&local.port()) else {
            return;
        };
        let mut hit = None;
        for &h in list {
            if let Some(Socket::Udp(s)) = self.sockets.get(h) {
                let ip_ok = s.local.ip().is_unspecified() || s.local.ip() == local.ip();
                // Only connected sockets hear about errors, as on Linux
                // without IP_RECVERR.
                if ip_ok && s.remote == Some(remote) {
                    hit = Some(h);
                    break;
                }
            }
        }
        if let Some(h) = hit {
            if let Some(Socket::Udp(s)) = self.sockets.get_mut(h) {
                s.error = Some(kind);
                self.sockets.notify(h);
            }
        }
    }

    /// Sends what UDP sockets have queued, while the transmit queue has room.
    pub(super) fn flush_udp(&mut self, now: Instant) {
        while let Some(&h) = self.udp_tx_pending.last() {
            loop {
                if !self.tx_has_room(1) {
                    return;
                }
                let Some(Socket::Udp(s)) = self.sockets.get_mut(h) else {
                    break;
                };
                let Some(d) = s.tx.pop() else {
                    if s.closed {
                        self.sockets.remove(h);
                    }
                    break;
                };
                let local = s.local;
                let ttl = s.ttl.unwrap_or(self.config.ttl);
                self.sockets.notify(h);
                self.emit_udp(now, local, d.addr, ttl, &d.data);
                if let Some(Socket::Udp(s)) = self.sockets.get_mut(h) {
                    s.tx.recycle(d.data);
                }
            }
            self.udp_tx_pending.pop();
        }
    }

    fn emit_udp(&mut self, now: Instant, local: SocketAddr, dst: SocketAddr, ttl: u8, data: &[u8]) {
        let (dst_ip, bound) = match (dst.ip(), local.ip()) {
            (IpAddr::V4(d), IpAddr::V4(b)) => (d, b),
            // A dual-stack [::] socket sending to IPv4.
            (IpAddr::V4(d), IpAddr::V6(b)) if b.is_unspecified() => (d, Ipv4Addr::UNSPECIFIED),
            (IpAddr::V6(d), IpAddr::V6(b)) => {
                let src = if b.is_unspecified() {
                    match self.source_for_v6(d) {
                        Some(a) => a,
                        None => {
                            self.counters.ip6.out_no_routes += 1;
                            trace_drop!("ip6.out_no_routes");
                            return;
                        }
                    }
                } else {
                    b
                };
                let urepr = udp::Repr {
                    src_port: local.port(),
                    dst_port: dst.port(),
                };
                self.counters.udp.out_datagrams += 1;
                let len = udp::HEADER_LEN + data.len();
                self.send_ipv6(now, src, d, ipv4::protocol::UDP, len, |buf| {
                    urepr.emit(
                        &mut udp::Packet::new_unchecked(buf),
                        IpAddr::V6(src),
                        IpAddr::V6(d),
                        data,
                    );
                });
                return;
            }
            _ => return,
        };
        let src_ip = if bound.is_unspecified() {
            match self.source_for(dst_ip) {
                Some(a) => a,
                None => {
                    self.counters.ip.out_no_routes += 1;
                    trace_drop!("ip.out_no_routes");
                    return;
                }
            }
        } else {
            bound
        };
        let payload_len = udp::HEADER_LEN + data.len();
        let repr = ipv4::Repr {
            src_addr: src_ip,
            dst_addr: dst_ip,
            protocol: ipv4::protocol::UDP,
            payload_len,
            ttl,
            dscp_ecn: 0,
            ident: 0,
            // Linux's default (IP_PMTUDISC_WANT): DF when it fits, local
            // fragmentation when it does not.
            dont_frag: ipv4::HEADER_LEN + payload_len <= self.config.mtu,
        };
        let urepr = udp::Repr {
            src_port: local.port(),
            dst_port: dst.port(),
        };
        self.counters.udp.out_datagrams += 1;
        self.send_ipv4(now, repr, |buf| {
            urepr.emit(
                &mut udp::Packet::new_unchecked(buf),
                IpAddr::V4(src_ip),
                IpAddr::V4(dst_ip),
                data,
            );
        });
    }

    fn udp_ref(&self, h: SocketHandle) -> io::Result<&UdpSocket> {
        match self.sockets.get(h) {
            Some(Socket::Udp(s)) if !s.closed => Ok(s),
            _ => Err(no_socket()),
        }
    }

    fn udp_mut(&mut self, h: SocketHandle) -> io::Result<&mut UdpSocket> {
        match self.sockets.get_mut(h) {
            Some(Socket::Udp(s)) if !s.closed => Ok(s),
            _ => Err(no_socket()),
        }
    }

    fn port_in_use(&self, ip: IpAddr, port: u16) -> bool {
        self.udp_ports.get(&port).is_some_and(|list| {
            list.iter().any(|&h| {
                matches!(self.sockets.get(h), Some(Socket::Udp(s))
                    if (s.local.is_ipv4() == ip.is_ipv4()
                        && (s.local.ip().is_unspecified() || ip.is_unspecified() || s.local.ip() == ip))
                        || self.dual_conflict(s.local.ip(), ip))
            })
        })
    }

    /// Picks a free ephemeral port for `ip` (RFC 6056 algorithm 1: random
    /// start, linear search).
    fn udp_ephemeral_port(&mut self, ip: IpAddr) -> io::Result<u16> {
        let (lo, hi) = self.config.ephemeral_ports;
        let span = (hi as u32).saturating_sub(lo as u32) + 1;
        let start = (self.next_random() % span as u64) as u32;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            if !self.port_in_use(ip, port) {
                return Ok(port);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free ephemeral UDP port",
        ))
    }

    /// Creates a UDP socket bound to `local` (port 0: an ephemeral port; an
    /// unspecified IP: every address of the interface).
    pub fn udp_bind(&mut self, local: SocketAddr) -> io::Result<SocketHandle> {
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
        let port = match local.port() {
            0 => self.udp_ephemeral_port(local.ip())?,
            p if self.port_in_use(local.ip(), p) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("UDP {local} is in use"),
                ))
            }
            p => p,
        };
        // `[::]` receives IPv6 only (IPV6_V6ONLY).
        let addr = SocketAddr::new(ip, port);
        let h = self
            .sockets
            .insert(Socket::Udp(Box::new(UdpSocket::new(addr, self.config.udp))));
        self.udp_ports.entry(port).or_default().push(h);
        Ok(h)
    }

    /// Sets the default destination and filters what is received to it.
    pub fn udp_connect(&mut self, h: SocketHandle, remote: SocketAddr) -> io::Result<()> {
        let rip = match remote.ip() {
            IpAddr::V4(rip) => rip,
            IpAddr::V6(rip) => {
                if remote.port() == 0 || rip.is_unspecified() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "cannot connect to port 0 or an unspecified address",
                    ));
                }
                self.udp_v6_route()?;
                let s = self.udp_mut(h)?;
                if s.local.is_ipv4() {
                    return Err(v6_family());
                }
                s.remote = Some(remote);
                s.error = None;
                return Ok(());
            }
        };
        if self.udp_ref(h)?.local.is_ipv6() {
            return Err(v6_family());
        }
        if remote.port() == 0 || rip.is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot connect to port 0 or an unspecified address",
            ));
        }
        if self.route_exists(rip).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                format!("no route to {rip}"),
            ));
        }
        let s = self.udp_mut(h)?;
        s.remote = Some(remote);
        s.error = None;
        Ok(())
    }

    /// IPv6 needs an IPv6 address of ours.
    fn udp_v6_route(&self) -> io::Result<()> {
        if self.config.addrs_v6.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                "no IPv6 address on this interface",
            ));
        }
        Ok(())
    }

    fn route_exists(&self, ip: Ipv4Addr) -> Option<()> {
        self.route(ip).map(|_| ())
    }

    /// Queues a datagram to `dst`. `WouldBlock` when the send queue is full.
    pub fn udp_send_to(
        &mut self,
        h: SocketHandle,
        data: &[u8],
        dst: SocketAddr,
    ) -> io::Result<usize> {
        // An IPv4-mapped destination from a dual-stack [::] socket is IPv4.
        let dst = if self.udp_ref(h)?.local.is_ipv6() && !self.config.bind_v6_only {
            super::unmapped(dst)
        } else {
            dst
        };
        let dual = dst.is_ipv4() && self.family_ok(self.udp_ref(h)?.local, true);
        let dip = match dst.ip() {
            IpAddr::V4(dip) => dip,
            IpAddr::V6(dip) => {
                if data.len() > 65535 - udp::HEADER_LEN {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "message too long (EMSGSIZE): UDP over IPv6 carries at most 65527 bytes",
                    ));
                }
                if dst.port() == 0 || dip.is_unspecified() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "destination port 0 or unspecified address",
                    ));
                }
                self.udp_v6_route()?;
                if self.udp_ref(h)?.local.is_ipv4() {
                    return Err(v6_family());
                }
                return self.udp_queue(h, data, dst);
            }
        };
        if self.udp_ref(h)?.local.is_ipv6() && !dual {
            return Err(v6_family());
        }
        if data.len() > MAX_PAYLOAD_V4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message too long (EMSGSIZE): UDP over IPv4 carries at most 65507 bytes",
            ));
        }
        if dst.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "destination port 0",
            ));
        }
        if self.route_exists(dip).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                format!("no route to {dip}"),
            ));
        }
        let is_bcast = self.is_broadcast(dip);
        if is_bcast && !self.udp_ref(h)?.broadcast {
            if let Some(kind) = self.udp_mut(h)?.error.take() {
                return Err(kind.into());
            }
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "sending to a broadcast address needs set_broadcast(true)",
            ));
        }
        self.udp_queue(h, data, dst)
    }

    /// Queues a checked datagram (a pending ICMP-reported error first).
    fn udp_queue(&mut self, h: SocketHandle, data: &[u8], dst: SocketAddr) -> io::Result<usize> {
        let s = self.udp_mut(h)?;
        if let Some(kind) = s.error.take() {
            return Err(kind.into());
        }
        if !s.tx.push(dst, data) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if !self.udp_tx_pending.contains(&h) {
            self.udp_tx_pending.push(h);
        }
        Ok(data.len())
    }

    /// Queues a datagram to the connected peer.
    pub fn udp_send(&mut self, h: SocketHandle, data: &[u8]) -> io::Result<usize> {
        let remote = self.udp_ref(h)?.remote.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "socket is not connected")
        })?;
        self.udp_send_to(h, data, remote)
    }

    /// Takes the next datagram: its length (the part that fit in `buf`;
    /// the rest is discarded, as with `std`) and sender. `WouldBlock` when
    /// none is waiting; a pending ICMP-reported error comes first, once.
    pub fn udp_recv_from(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)> {
        self.udp_recv_inner(h, buf, false)
    }

    /// Like [`Interface::udp_recv_from`] but leaves the datagram queued.
    pub fn udp_peek_from(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)> {
        self.udp_recv_inner(h, buf, true)
    }

    fn udp_recv_inner(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
        peek: bool,
    ) -> io::Result<(usize, SocketAddr)> {
        let s = self.udp_mut(h)?;
        if let Some(kind) = s.error.take() {
            return Err(kind.into());
        }
        if peek {
            let d = s.rx.front().ok_or(io::ErrorKind::WouldBlock)?;
            let n = d.data.len().min(buf.len());
            buf[..n].copy_from_slice(&d.data[..n]);
            return Ok((n, d.addr));
        }
        let d = s.rx.pop().ok_or(io::ErrorKind::WouldBlock)?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        let addr = d.addr;
        s.rx.recycle(d.data);
        Ok((n, addr))
    }

    /// The socket's state.
    pub fn udp_socket(&self, h: SocketHandle) -> io::Result<&UdpSocket> {
        self.udp_ref(h)
    }

    /// Allows sending to broadcast addresses (`SO_BROADCAST`).
    pub fn udp_set_broadcast(&mut self, h: SocketHandle, on: bool) -> io::Result<()> {
        self.udp_mut(h)?.broadcast = on;
        Ok(())
    }

    /// Sets the TTL of datagrams the socket sends (`None`: the interface's).
    pub fn udp_set_ttl(&mut self, h: SocketHandle, ttl: Option<u8>) -> io::Result<()> {
        if ttl == Some(0) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "TTL 0"));
        }
        self.udp_mut(h)?.ttl = ttl;
        Ok(())
    }

    /// Sets the receive and send queue limits in bytes.
    pub fn udp_set_buffers(
        &mut self,
        h: SocketHandle,
        recv: Option<usize>,
        send: Option<usize>,
    ) -> io::Result<()> {
        let s = self.udp_mut(h)?;
        if let Some(r) = recv {
            s.rx.set_limit(r);
        }
        if let Some(w) = send {
            s.tx.set_limit(w);
        }
        Ok(())
    }

    /// Returns and clears a pending error (`SO_ERROR`).
    pub fn udp_take_error(&mut self, h: SocketHandle) -> io::Result<Option<io::Error>> {
        Ok(self.udp_mut(h)?.error.take().map(io::Error::from))
    }

    /// Closes the socket. Its port is free at once; datagrams that sends
    /// already accepted still go out (as on Linux, where `sendto` hands them
    /// to the device before returning), then the socket is gone.
    pub fn udp_close(&mut self, h: SocketHandle) -> io::Result<()> {
        let s = self.udp_mut(h)?;
        let port = s.local.port();
        let drained = s.tx.is_empty();
        s.closed = true;
        if let Some(list) = self.udp_ports.get_mut(&port) {
            list.retain(|x| *x != h);
            if list.is_empty() {
                self.udp_ports.remove(&port);
            }
        }
        if drained {
            self.sockets.remove(h);
            self.udp_tx_pending.retain(|x| *x != h);
        }
        Ok(())
    }
}
