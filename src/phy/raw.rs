//! An AF_PACKET raw socket on an existing interface (for example one end of
//! a veth pair): Ethernet frames in and out, batched with `recvmmsg` /
//! `sendmmsg`.
//!
//! Interface discovery (index, MAC) uses `pnet_datalink::interfaces()`, but
//! the socket itself is made with libc: pnet's datalink channel exposes no
//! descriptor to poll and no batching, and the runtime needs both.
//!
//! The socket sets `PACKET_IGNORE_OUTGOING`, so the stack does not read its
//! own frames back (on kernels without it, outgoing frames are filtered by
//! their packet type instead). It also enables `PACKET_AUXDATA` to learn when
//! the kernel handed over a frame whose transport checksum was left partial
//! (`TP_STATUS_CSUMNOTREADY`: the sender, e.g. the peer of a veth, relied on
//! checksum offload). Such frames carry a wrong checksum on the wire bytes;
//! they are delivered as they are and counted in [`RawStats::csum_not_ready`].
//! The namespace harness therefore disables transmit checksum offload on the
//! peer veth (`ethtool -K <peer> tx off`).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::util;
use super::{Device, DeviceCaps, FrameBatch, Medium, Offload};
use crate::time::Instant;
use crate::wire::EthernetAddress;

/// Frames per `recvmmsg`/`sendmmsg` call.
const MMSG_BATCH: usize = 64;
/// Room for the PACKET_AUXDATA control message per frame.
const CTRL_LEN: usize = 64;
/// Extra room per slot beyond MTU + Ethernet header (a VLAN tag).
const SLOT_EXTRA: usize = 4;

/// How to open a raw socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawOptions {
    /// The stack's MAC address; `None` uses the interface's own.
    pub hardware_addr: Option<EthernetAddress>,
}

/// Counters of a raw socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawStats {
    /// Frames delivered to the stack.
    pub received: u64,
    /// Frames handed to the kernel.
    pub sent: u64,
    /// Received frames whose checksum the kernel left partial
    /// (`TP_STATUS_CSUMNOTREADY`); see the [module documentation](self).
    pub csum_not_ready: u64,
    /// Frames dropped because they were longer than the receive slot or the
    /// caller's batch frame limit.
    pub truncated: u64,
    /// Frames the kernel dropped because the socket's receive queue was
    /// full (`PACKET_STATISTICS` `tp_drops`, accumulated).
    pub kernel_drops: u64,
}

/// A raw AF_PACKET socket bound to one interface. See the
/// [module documentation](self).
pub struct RawSocket {
    fd: OwnedFd,
    name: String,
    ifindex: u32,
    caps: DeviceCaps,
    slot_len: usize,
    rx_buf: Vec<u8>,
    ctrl_buf: Vec<u8>,
    stats: RawStats,
}

impl std::fmt::Debug for RawSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSocket")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("fd", &self.fd.as_raw_fd())
            .field("caps", &self.caps)
            .finish()
    }
}

fn setsockopt_int(fd: RawFd, level: i32, opt: i32, val: i32) -> io::Result<()> {
    // SAFETY: passes a valid int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&val as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl RawSocket {
    /// Opens a raw socket on the existing interface `ifname` (in the calling
    /// thread's network namespace).
    pub fn open(ifname: &str, opts: &RawOptions) -> io::Result<RawSocket> {
        let ifaces = pnet_datalink::interfaces();
        let Some(iface) = ifaces.iter().find(|i| i.name == ifname) else {
            let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no network interface named '{ifname}' in this network namespace (have: {})",
                    names.join(", ")
                ),
            ));
        };
        let mac = match (opts.hardware_addr, iface.mac) {
            (Some(m), _) => m,
            (None, Some(m)) => EthernetAddress(m.octets()),
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "interface '{ifname}' has no MAC address; set RawOptions::hardware_addr"
                    ),
                ))
            }
        };
        let mtu = util::interface_mtu(ifname).map_err(|e| {
            io::Error::new(e.kind(), format!("interface '{ifname}': read MTU: {e}"))
        })?;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; checked before wrapping.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("cannot open a raw socket on '{ifname}': permission denied (needs CAP_NET_RAW)"),
                ),
                _ => io::Error::new(e.kind(), format!("cannot open a raw socket on '{ifname}': {e}")),
            });
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ctx = |what: &'static str| {
            let ifname = ifname.to_string();
            move |e: io::Error| {
                io::Error::new(e.kind(), format!("raw socket on '{ifname}': {what}: {e}"))
            }
        };
        // Before binding: frames of every interface may be queued; they are
        // drained after the bind below.
        let _ = setsockopt_int(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            1,
        );
        setsockopt_int(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)
            .map_err(ctx("enable PACKET_AUXDATA"))?;
        // A deep receive queue: the default (~200 KiB) overflows under a
        // burst of small frames before the stack thread gets to read them.
        // SO_RCVBUFFORCE passes rmem_max as root; SO_RCVBUF is the fallback.
        if setsockopt_int(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            8 << 20,
        )
        .is_err()
        {
            let _ = setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 8 << 20);
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = iface.index as i32;
        // SAFETY: binds with a valid sockaddr_ll of the stated size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(ctx("bind")(io::Error::last_os_error()));
        }
        let slot_len = mtu + crate::wire::ethernet::HEADER_LEN + SLOT_EXTRA;
        let mut sock = RawSocket {
            fd,
            name: ifname.to_string(),
            ifindex: iface.index,
            caps: DeviceCaps {
                medium: Medium::Ethernet,
                mtu,
                hardware_addr: Some(mac),
                offload: Offload::default(),
            },
            slot_len,
            rx_buf: vec![0; slot_len * MMSG_BATCH],
            ctrl_buf: vec![0; CTRL_LEN * MMSG_BATCH],
            stats: RawStats::default(),
        };
        // Drop whatever arrived from other interfaces before the bind.
        let mut drain = [0u8; 64];
        // SAFETY: reads into a valid buffer from our non-blocking socket.
        while unsafe {
            libc::recv(
                sock.fd.as_raw_fd(),
                drain.as_mut_ptr().cast(),
                drain.len(),
                libc::MSG_DONTWAIT,
            )
        } >= 0
        {}
        sock.stats = RawStats::default();
        Ok(sock)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Counters (kernel drops read fresh from `PACKET_STATISTICS`).
    pub fn stats(&mut self) -> RawStats {
        self.poll_kernel_drops();
        self.stats
    }

    /// Adds the kernel's drop count since the last call (reading
    /// `PACKET_STATISTICS` resets it).
    fn poll_kernel_drops(&mut self) {
        // SAFETY: tpacket_stats is plain data; getsockopt writes at most
        // `len` bytes into it.
        unsafe {
            let mut st: libc::tpacket_stats = mem::zeroed();
            let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
            let rc = libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                &mut st as *mut _ as *mut libc::c_void,
                &mut len,
            );
            if rc == 0 {
                self.stats.kernel_drops += st.tp_drops as u64;
            }
        }
    }
}

impl Device for RawSocket {
    fn dropped(&mut self) -> u64 {
        self.poll_kernel_drops();
        self.stats.kernel_drops + self.stats.truncated
    }

    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn recv_batch(&mut self, _now: Instant, batch: &mut FrameBatch) -> io::Result<usize> {
        let room = (batch.max_frames() - batch.len()).min(MMSG_BATCH);
        if room == 0 {
            return Ok(0);
        }
        // SAFETY: these are plain old data; zero is a valid value.
        let mut iov: [libc::iovec; MMSG_BATCH] = unsafe { mem::zeroed() };
        let mut addrs: [libc::sockaddr_ll; MMSG_BATCH] = unsafe { mem::zeroed() };
        let mut msgs: [libc::mmsghdr; MMSG_BATCH] = unsafe { mem::zeroed() };
        let data = self.rx_buf.as_mut_ptr();
        let ctrl = self.ctrl_buf.as_mut_ptr();
        for i in 0..room {
            // SAFETY: offsets stay inside rx_buf / ctrl_buf (MMSG_BATCH slots each).
            iov[i].iov_base = unsafe { data.add(i * self.slot_len) }.cast();
            iov[i].iov_len = self.slot_len;
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_ll).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
            // SAFETY: inside ctrl_buf.
            h.msg_control = unsafe { ctrl.add(i * CTRL_LEN) }.cast();
            h.msg_controllen = CTRL_LEN as _;
        }
        // SAFETY: msgs[..room] point at live buffers owned by self and the
        // local arrays, all outliving the call.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                room as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let mut n = 0;
        for i in 0..got as usize {
            let m = &msgs[i];
            let len = m.msg_len as usize;
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > self.slot_len {
                self.stats.truncated += 1;
                continue;
            }
            if addrs[i].sll_pkttype == libc::PACKET_OUTGOING {
                continue; // kernels without PACKET_IGNORE_OUTGOING
            }
            // SAFETY: walks the control messages the kernel wrote into this
            // message's control buffer, within msg_controllen.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA
                    {
                        let aux: libc::tpacket_auxdata =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        if aux.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0 {
                            self.stats.csum_not_ready += 1;
                        }
                    }
                    c = libc::CMSG_NXTHDR(&m.msg_hdr, c);
                }
            }
            let start = i * self.slot_len;
            if batch.push(&self.rx_buf[start..start + len]) {
                n += 1;
            } else {
                self.stats.truncated += 1;
            }
        }
        self.stats.received += n as u64;
        Ok(n)
    }

    fn send_batch(&mut self, _now: Instant, batch: &FrameBatch) -> io::Result<usize> {
        let total = batch.len();
        let mut sent = 0;
        while sent < total {
            let chunk = (total - sent).min(MMSG_BATCH);
            // SAFETY: plain old data; zero is a valid value.
            let mut iov: [libc::iovec; MMSG_BATCH] = unsafe { mem::zeroed() };
            let mut msgs: [libc::mmsghdr; MMSG_BATCH] = unsafe { mem::zeroed() };
            for i in 0..chunk {
                let f = batch.get(sent + i).expect("index in range");
                // The kernel only reads through this pointer.
                iov[i].iov_base = f.as_ptr() as *mut libc::c_void;
                iov[i].iov_len = f.len();
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: msgs[..chunk] point at frames of `batch`, alive for the call.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    chunk as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if e.kind() == io::ErrorKind::WouldBlock || sent > 0 {
                    break;
                }
                return Err(e);
            }
            sent += r as usize;
            if (r as usize) < chunk {
                break;
            }
        }
        self.stats.sent += sent as u64;
        Ok(sent)
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::util::netns::{require_root, NetNs};
    use crate::phy::util::{pkt, wait_readable};
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant as StdInstant};

    #[test]
    fn missing_interface_is_a_clear_error() {
        let e = RawSocket::open("ustk-absent0", &RawOptions::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string()
                .contains("no network interface named 'ustk-absent0'"),
            "{e}"
        );
    }

    #[test]
    fn veth_in_namespace_udp_both_ways() {
        if !require_root("veth_in_namespace_udp_both_ways") {
            return;
        }
        let ns = NetNs::new("phyraw");
        ns.ip("link add ustkv0 type veth peer name ustkv1");
        ns.ip("addr add 10.9.2.1/24 dev ustkv1");
        ns.ip("link set ustkv0 up");
        ns.ip("link set ustkv1 up");
        let mac = ns.run(|| {
            let s = RawSocket::open("ustkv0", &RawOptions::default()).unwrap();
            s.caps().hardware_addr.unwrap()
        });
        ns.ip(&format!("neigh add 10.9.2.2 lladdr {mac} dev ustkv1"));
        ns.run(move || {
            let mut dev = RawSocket::open("ustkv0", &RawOptions::default()).unwrap();
            assert_eq!(dev.caps().hardware_addr, Some(mac));
            assert_eq!(dev.caps().medium, Medium::Ethernet);
            assert_eq!(dev.caps().mtu, 1500);
            let peer_mac = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == "ustkv1")
                .and_then(|i| i.mac)
                .map(|m| EthernetAddress(m.octets()))
                .unwrap();
            let sock = UdpSocket::bind("10.9.2.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let port = sock.local_addr().unwrap().port();
            sock.send_to(b"to the stack", "10.9.2.2:7777").unwrap();
            let deadline = StdInstant::now() + Duration::from_secs(3);
            let mut batch = FrameBatch::new(16, dev.caps().max_frame_len());
            let found = 'outer: loop {
                assert!(StdInstant::now() < deadline, "timed out");
                wait_readable(dev.as_raw_fd().unwrap(), 200);
                batch.clear();
                dev.recv_batch(Instant::ZERO, &mut batch).unwrap();
                for f in batch.iter() {
                    if f[..6] != mac.0 || f[12..14] != [8, 0] {
                        continue;
                    }
                    if let Some((_, _, 7777, b"to the stack")) = pkt::parse_ipv4_udp(&f[14..]) {
                        break 'outer EthernetAddress::from_bytes(&f[6..12]);
                    }
                }
            };
            assert_eq!(found, peer_mac);
            // veth's peer has tx checksum offload on by default, so the
            // kernel leaves the UDP checksum partial and says so.
            println!("csum_not_ready = {}", dev.stats().csum_not_ready);
            assert!(dev.stats().csum_not_ready >= 1);
            let ip = pkt::ipv4_udp(
                Ipv4Addr::new(10, 9, 2, 2),
                Ipv4Addr::new(10, 9, 2, 1),
                7777,
                port,
                b"from the stack",
            );
            let mut frame = Vec::new();
            frame.extend_from_slice(&peer_mac.0);
            frame.extend_from_slice(&mac.0);
            frame.extend_from_slice(&[0x08, 0x00]);
            frame.extend_from_slice(&ip);
            let mut out = FrameBatch::new(3, 1514);
            for _ in 0..3 {
                out.push(&frame);
            }
            assert_eq!(dev.send_batch(Instant::ZERO, &out).unwrap(), 3);
            let mut buf = [0u8; 100];
            for _ in 0..3 {
                let (n, from) = sock.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"from the stack");
                assert_eq!(from, "10.9.2.2:7777".parse().unwrap());
            }
            // Our own frames are not read back.
            std::thread::sleep(Duration::from_millis(50));
            batch.clear();
            dev.recv_batch(Instant::ZERO, &mut batch).unwrap();
            assert!(
                batch.iter().all(|f| f[6..12] != mac.0),
                "own frame read back"
            );
            assert_eq!(dev.stats().sent, 3);
        });
    }
}
