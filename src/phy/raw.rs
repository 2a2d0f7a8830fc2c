//! An AF_PACKET raw socket on an existing interface (for example one end of
//! a veth pair): Ethernet frames in and out, batched with `recvmmsg` /
//! `sendmmsg`.
//!
//! Everything is made with libc: the interface's index (`if_nametoindex`),
//! its MAC (`SIOCGIFHWADDR`) and the socket, whose descriptor the runtime
//! polls and whose frames it moves in batches.
//!
//! The socket sets `PACKET_IGNORE_OUTGOING`, so the stack does not read its
//! own frames back (on kernels without it, outgoing frames are filtered by
//! their packet type instead).
//!
//! ## Offload state from the kernel
//!
//! AF_PACKET hands over the kernel's `sk_buff` as it is. A frame the local
//! kernel made (the peer of a veth at its default offloads, a bridge, a
//! container's interface) may therefore be
//! - a frame whose TCP/UDP checksum is still partial (`CHECKSUM_PARTIAL`:
//!   only the pseudo-header sum is in the field), and
//! - a TCP super-segment of up to 64 KiB (the peer's TSO/GSO, or GRO on a
//!   real NIC), longer than the interface's MTU.
//!
//! The socket enables `PACKET_VNET_HDR`, so every frame crosses it behind
//! the same 10-byte `virtio_net_hdr` as on a TUN/TAP opened with offload,
//! and is turned into [`FrameMeta`] the same way: a partial checksum is
//! [`Checksum::Partial`] (trusted: it comes from the local kernel), a
//! checksum the NIC verified is [`Checksum::Verified`], a frame from a real
//! wire with neither is verified by the stack. Then:
//! - with [`RawOptions::offload`] (the tools' default) the device has the
//!   TUN offload's caps: the stack takes super-segments whole (GRO), sends
//!   its own of up to 64 KiB with partial checksums (TSO; the kernel cuts
//!   them, in software when the NIC cannot) and captures complete the
//!   checksums they record;
//! - without it, the device turns what it reads into wire frames itself:
//!   super-segments are cut into MTU-sized segments ([`gso::segment`]) and
//!   partial checksums completed, so the stack (and an impairment layer)
//!   sees only complete, MTU-sized frames.
//!
//! Nothing is dropped silently: frames longer than the receive slot
//! ([`RawStats::truncated`]), with a header the stack cannot take (a UDP
//! GSO frame, [`RawStats::bad_vnet`]), that do not fit once cut
//! ([`RawStats::cut_dropped`]), and the kernel's own drops of a full
//! receive queue (`PACKET_STATISTICS`, [`RawStats::kernel_drops`]) are
//! counted and reported by [`Device::dropped`].

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::gso;
use super::tun::{vnet_hdr_decode, vnet_hdr_encode, VNET_HDR_LEN};
use super::util;
use super::{Checksum, Device, DeviceCaps, FrameBatch, FrameMeta, Medium, Offload, GSO_MAX_PACKET};
use crate::time::Instant;
use crate::wire::EthernetAddress;

/// Frames per `recvmmsg`/`sendmmsg` call.
const MMSG_BATCH: usize = 64;
/// Extra room per slot beyond the largest frame (a VLAN tag).
const SLOT_EXTRA: usize = 4;
/// Segments of cut super-segments that wait for room in the caller's
/// batch (without offload). One `recvmmsg` of 64 super-segments cut at a
/// `gso_size` of 1,024 or more fits.
const BACKLOG_FRAMES: usize = MMSG_BATCH * 64;
/// `PACKET_VNET_HDR` from `<linux/if_packet.h>`.
const PACKET_VNET_HDR: i32 = 15;
/// The socket's receive and send buffers.
const SOCK_BUF: i32 = 8 << 20;

/// How to open a raw socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawOptions {
    /// The stack's MAC address; `None` uses the interface's own.
    pub hardware_addr: Option<EthernetAddress>,
    /// Offer the stack the kernel's offloads (see the
    /// [module documentation](self)): super-segments in and out, partial
    /// checksums. Without it the device cuts and completes what it reads,
    /// and sends frames as the stack built them.
    pub offload: bool,
}

/// Counters of a raw socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawStats {
    /// Frames delivered to the stack (segments of a cut super-segment
    /// count one each).
    pub received: u64,
    /// Frames handed to the kernel.
    pub sent: u64,
    /// Received frames whose transport checksum the kernel left partial
    /// (`CHECKSUM_PARTIAL`, the virtio-net header's `NEEDS_CSUM`).
    pub csum_not_ready: u64,
    /// Received frames whose checksum the kernel (the NIC) has verified.
    pub csum_valid: u64,
    /// Received TCP super-segments (longer than the MTU, with `gso_size`).
    pub gso_in: u64,
    /// Received super-segments cut into wire frames by the device (without
    /// [`RawOptions::offload`]).
    pub gso_cut: u64,
    /// Frames dropped because they were longer than the receive slot or the
    /// caller's batch frame limit.
    pub truncated: u64,
    /// Frames dropped because their virtio-net header was short or of a
    /// kind the stack does not take (UDP segmentation offload).
    pub bad_vnet: u64,
    /// Segments of a cut super-segment dropped for want of room (more than
    /// the device's backlog of segments), or super-segments that could not
    /// be cut (malformed).
    pub cut_dropped: u64,
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
    /// Frames cross the socket behind a virtio-net header.
    vnet_hdr: bool,
    /// Cut super-segments and complete partial checksums on receive.
    cut: bool,
    /// Bytes per receive slot (virtio-net header included).
    slot_len: usize,
    rx_buf: Vec<u8>,
    /// Segments of cut super-segments waiting for room (without offload).
    backlog: FrameBatch,
    stats: RawStats,
}

impl std::fmt::Debug for RawSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSocket")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("fd", &self.fd.as_raw_fd())
            .field("caps", &self.caps)
            .field("vnet_hdr", &self.vnet_hdr)
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

/// Where the transport header of an Ethernet `frame` starts and where its
/// checksum field lies from there (TCP or UDP over IPv4, or directly behind
/// the IPv6 header); `None` for anything else.
fn transport_csum_at(frame: &[u8]) -> Option<(u16, u16)> {
    let link = crate::wire::ethernet::HEADER_LEN;
    let (start, proto) = match frame.get(12..14)? {
        [0x08, 0x00] => {
            let ihl = usize::from(frame.get(link)? & 0x0f) * 4;
            (link + ihl, *frame.get(link + 9)?)
        }
        [0x86, 0xdd] => (link + 40, *frame.get(link + 6)?),
        _ => return None,
    };
    let offset: usize = match proto {
        6 => 16,
        17 => 6,
        _ => return None,
    };
    (frame.len() >= start + offset + 2).then_some((start as u16, offset as u16))
}

impl RawSocket {
    /// Opens a raw socket on the existing interface `ifname` (in the calling
    /// thread's network namespace).
    ///
    /// With [`RawOptions::offload`], fails with [`io::ErrorKind::Unsupported`]
    /// when the kernel refuses `PACKET_VNET_HDR`; without it, such a socket
    /// goes on with frames as they come (super-segments then cannot be
    /// taken: they are counted in [`RawStats::truncated`]).
    pub fn open(ifname: &str, opts: &RawOptions) -> io::Result<RawSocket> {
        let Some(index) = util::interface_index(ifname) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no network interface named '{ifname}' in this network namespace (have: {})",
                    util::interface_names().join(", ")
                ),
            ));
        };
        let mac = match opts.hardware_addr {
            Some(m) => m,
            None => util::interface_mac(ifname)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("interface '{ifname}': read MAC: {e}"))
                })?
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "interface '{ifname}' has no MAC address; set RawOptions::hardware_addr"
                        ),
                    )
                })?,
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
        let vnet_hdr = match setsockopt_int(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_VNET_HDR, 1)
        {
            Ok(()) => true,
            Err(e) if opts.offload => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("raw socket on '{ifname}': the kernel refused PACKET_VNET_HDR (needed for offload): {e}"),
                ))
            }
            Err(e) => {
                tracing::warn!(
                    "raw socket on '{ifname}': PACKET_VNET_HDR refused ({e}); the peer's super-segments will be dropped (counted as truncated)"
                );
                false
            }
        };
        // Deep queues: the default (~200 KiB) overflows under a burst of
        // small frames before the stack thread gets to read them, and holds
        // only three 64 KiB super-segments on the way out.
        // SO_*BUFFORCE passes [rw]mem_max as root; SO_*BUF is the fallback.
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, force, SOCK_BUF).is_err() {
                let _ = setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, plain, SOCK_BUF);
            }
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
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
        let link = crate::wire::ethernet::HEADER_LEN;
        let (slot_len, offload) = if vnet_hdr {
            let on = opts.offload;
            (
                VNET_HDR_LEN + link + GSO_MAX_PACKET.max(mtu) + SLOT_EXTRA,
                Offload {
                    tx_checksum: on,
                    tso: on,
                    gro: on,
                },
            )
        } else {
            (link + mtu + SLOT_EXTRA, Offload::default())
        };
        let caps = DeviceCaps {
            medium: Medium::Ethernet,
            mtu,
            hardware_addr: Some(mac),
            offload,
        };
        let mut sock = RawSocket {
            fd,
            name: ifname.to_string(),
            ifindex: index,
            caps,
            vnet_hdr,
            cut: vnet_hdr && !opts.offload,
            slot_len,
            rx_buf: Vec::new(),
            // Used only when cutting (no room is set aside otherwise).
            backlog: FrameBatch::new(
                if vnet_hdr && !opts.offload {
                    BACKLOG_FRAMES
                } else {
                    0
                },
                caps.max_frame_len(),
            ),
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
        sock.poll_kernel_drops();
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

    /// True when frames cross the socket behind a virtio-net header
    /// (`PACKET_VNET_HDR`; see the [module documentation](self)).
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
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

    /// Moves segments waiting in the backlog into `batch`; how many.
    fn drain_backlog(&mut self, batch: &mut FrameBatch) -> usize {
        let mut k = 0;
        while k < self.backlog.len() && !batch.is_full() {
            let f = self.backlog.get(k).expect("index in range");
            if !batch.push(f) {
                // Longer than the caller's frame limit: counted, dropped.
                self.stats.truncated += 1;
            }
            k += 1;
        }
        self.backlog.consume(k);
        k
    }

    /// Hands one received frame with its metadata to `batch` (without
    /// offload: as wire frames, cut and completed); how many frames went in.
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta, batch: &mut FrameBatch) -> usize {
        match meta.checksum {
            Checksum::Partial { .. } => self.stats.csum_not_ready += 1,
            Checksum::Verified => self.stats.csum_valid += 1,
            Checksum::Complete => {}
        }
        if meta.gso_size > 0 {
            self.stats.gso_in += 1;
        }
        if !self.cut {
            if batch.push_meta(frame, meta) {
                return 1;
            }
            self.stats.truncated += 1;
            return 0;
        }
        if meta.gso_size > 0 {
            // `segment` recomputes every checksum from scratch; it only
            // needs to know where the TCP header is.
            let mut m = meta;
            if !matches!(m.checksum, Checksum::Partial { .. }) {
                match transport_csum_at(frame) {
                    Some((start, offset)) => m.checksum = Checksum::Partial { start, offset },
                    None => {
                        self.stats.cut_dropped += 1;
                        return 0;
                    }
                }
            }
            let (mut n, mut overflow) = (0, 0);
            let backlog = &mut self.backlog;
            let cut = gso::segment(frame, crate::wire::ethernet::HEADER_LEN, m, &mut |seg| {
                // Behind segments already waiting, to keep the order.
                if backlog.is_empty() && batch.push(seg) {
                    n += 1;
                } else if !backlog.push(seg) {
                    overflow += 1;
                }
            });
            self.stats.cut_dropped += overflow;
            match cut {
                Ok(_) => self.stats.gso_cut += 1,
                Err(_) => self.stats.cut_dropped += 1,
            }
            return n;
        }
        if frame.len() > batch.max_frame_len() {
            self.stats.truncated += 1;
            return 0;
        }
        // Behind segments already waiting, to keep the order.
        let into_batch = self.backlog.is_empty() && !batch.is_full();
        let target = if into_batch { batch } else { &mut self.backlog };
        // One copy: the partial checksum is completed in the batch's slot.
        let Some(slot) = target.reserve_with_headroom(0, frame.len()) else {
            self.stats.cut_dropped += 1;
            return 0;
        };
        slot.copy_from_slice(frame);
        if !meta.checksum.complete(slot) {
            target.abandon();
            self.stats.cut_dropped += 1;
            return 0;
        }
        target.commit(frame.len());
        usize::from(into_batch)
    }
}

impl Device for RawSocket {
    fn dropped(&mut self) -> u64 {
        self.poll_kernel_drops();
        let s = &self.stats;
        s.kernel_drops + s.truncated + s.bad_vnet + s.cut_dropped
    }

    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn recv_batch(&mut self, _now: Instant, batch: &mut FrameBatch) -> io::Result<usize> {
        let mut n = self.drain_backlog(batch);
        if !self.backlog.is_empty() {
            self.stats.received += n as u64;
            return Ok(n);
        }
        let room = (batch.max_frames() - batch.len()).min(MMSG_BATCH);
        if room == 0 {
            self.stats.received += n as u64;
            return Ok(n);
        }
        if self.rx_buf.len() < room * self.slot_len {
            self.rx_buf.resize(room * self.slot_len, 0);
        }
        // SAFETY: these are plain old data; zero is a valid value.
        let mut iov: [libc::iovec; MMSG_BATCH] = unsafe { mem::zeroed() };
        let mut addrs: [libc::sockaddr_ll; MMSG_BATCH] = unsafe { mem::zeroed() };
        let mut msgs: [libc::mmsghdr; MMSG_BATCH] = unsafe { mem::zeroed() };
        let data = self.rx_buf.as_mut_ptr();
        for i in 0..room {
            // SAFETY: offsets stay inside rx_buf (room slots).
            iov[i].iov_base = unsafe { data.add(i * self.slot_len) }.cast();
            iov[i].iov_len = self.slot_len;
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_ll).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
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
            self.stats.received += n as u64;
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(n),
                _ if n > 0 => Ok(n),
                _ => Err(e),
            };
        }
        let rx = mem::take(&mut self.rx_buf);
        let head = if self.vnet_hdr { VNET_HDR_LEN } else { 0 };
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
            let slot = &rx[i * self.slot_len..i * self.slot_len + len];
            let meta = if head == 0 {
                Some(FrameMeta::default())
            } else {
                slot.first_chunk::<VNET_HDR_LEN>().and_then(vnet_hdr_decode)
            };
            let Some(meta) = meta else {
                self.stats.bad_vnet += 1;
                continue;
            };
            n += self.deliver(&slot[head..], meta, batch);
        }
        self.rx_buf = rx;
        self.stats.received += n as u64;
        Ok(n)
    }

    fn send_batch(&mut self, _now: Instant, batch: &FrameBatch) -> io::Result<usize> {
        let total = batch.len();
        let link = crate::wire::ethernet::HEADER_LEN;
        let mut sent = 0;
        while sent < total {
            let chunk = (total - sent).min(MMSG_BATCH);
            // SAFETY: plain old data; zero is a valid value.
            let mut iov: [[libc::iovec; 2]; MMSG_BATCH] = unsafe { mem::zeroed() };
            let mut msgs: [libc::mmsghdr; MMSG_BATCH] = unsafe { mem::zeroed() };
            let mut hdrs = [[0u8; VNET_HDR_LEN]; MMSG_BATCH];
            for i in 0..chunk {
                let f = batch.get(sent + i).expect("index in range");
                let meta = batch.meta(sent + i).expect("index in range");
                let mut k = 0;
                if self.vnet_hdr {
                    hdrs[i] = vnet_hdr_encode(f, link, meta);
                    iov[i][0].iov_base = hdrs[i].as_mut_ptr().cast();
                    iov[i][0].iov_len = VNET_HDR_LEN;
                    k = 1;
                }
                // The kernel only reads through this pointer.
                iov[i][k].iov_base = f.as_ptr() as *mut libc::c_void;
                iov[i][k].iov_len = f.len();
                msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
                msgs[i].msg_hdr.msg_iovlen = k + 1;
            }
            // SAFETY: msgs[..chunk] point at frames of `batch` and headers
            // in `hdrs`, alive for the call.
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
    use crate::phy::util::{pkt, wait_readable};
    use crate::testkit::netns::{preconditions, Netns};
    use crate::wire::{checksum, ipv4, tcp};
    use std::net::{IpAddr, Ipv4Addr, UdpSocket};
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
    fn transport_checksum_offsets() {
        let udp = pkt::ipv4_udp(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 2, b"x");
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&udp);
        assert_eq!(transport_csum_at(&f), Some((34, 6)));
        f[14 + 9] = 6;
        assert_eq!(transport_csum_at(&f), None, "too short for a TCP header");
        f.resize(14 + 20 + 20, 0);
        assert_eq!(transport_csum_at(&f), Some((34, 16)));
        let mut v6 = vec![0u8; 14 + 40 + 8];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[14 + 6] = 17;
        assert_eq!(transport_csum_at(&v6), Some((54, 6)));
        v6[14 + 6] = 0; // a hop-by-hop header first: not looked into
        assert_eq!(transport_csum_at(&v6), None);
        assert_eq!(transport_csum_at(&[]), None);
        assert_eq!(transport_csum_at(&[0; 14]), None);
    }

    /// The UDP checksum of the IPv4 datagram in Ethernet frame `f` is right.
    fn udp_checksum_ok(f: &[u8]) -> bool {
        let ip = &f[14..];
        let (src, dst) = (
            Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        );
        let u = &ip[20..];
        let ph = checksum::pseudo_header_v4(src, dst, 17, u.len() as u32);
        checksum::finish(checksum::combine(&[ph, checksum::sum(u)])) == 0
    }

    /// Receives frames on `dev` until `want` of them matched `pick`, for up
    /// to 3 s.
    fn recv_frames(
        dev: &mut RawSocket,
        want: usize,
        mut pick: impl FnMut(&[u8]) -> bool,
    ) -> Vec<(Vec<u8>, FrameMeta)> {
        let deadline = StdInstant::now() + Duration::from_secs(3);
        let mut batch = FrameBatch::new(64, dev.caps().max_rx_frame_len());
        let mut got = Vec::new();
        while got.len() < want {
            let left = deadline.saturating_duration_since(StdInstant::now());
            assert!(
                !left.is_zero(),
                "timed out with {} of {want} frames; {:?}",
                got.len(),
                dev.stats()
            );
            wait_readable(dev.as_raw_fd().unwrap(), left.as_millis() as i32);
            batch.clear();
            dev.recv_batch(Instant::ZERO, &mut batch).unwrap();
            for (f, meta) in batch.iter_meta() {
                if pick(f) {
                    got.push((f.to_vec(), meta));
                }
            }
        }
        got
    }

    /// A veth pair `ustkv0` (the stack's, no address) / `ustkv1`
    /// (10.9.2.1/24) at the kernel's default offloads in a new namespace;
    /// the MACs of both ends.
    fn veth(tag: &str) -> (Netns, EthernetAddress, EthernetAddress) {
        let ns = Netns::new(tag);
        ns.ip(&[
            "link", "add", "ustkv0", "type", "veth", "peer", "name", "ustkv1",
        ]);
        ns.ip(&["addr", "add", "10.9.2.1/24", "dev", "ustkv1"]);
        ns.ip(&["link", "set", "ustkv0", "up"]);
        ns.ip(&["link", "set", "ustkv1", "up"]);
        let (mac, peer_mac) = ns.enter(|| {
            let mac_of = |name: &str| util::interface_mac(name).unwrap().unwrap();
            (mac_of("ustkv0"), mac_of("ustkv1"))
        });
        ns.ip(&[
            "neigh",
            "add",
            "10.9.2.2",
            "lladdr",
            &mac.to_string(),
            "dev",
            "ustkv1",
        ]);
        (ns, mac, peer_mac)
    }

    /// A UDP datagram from Linux over a veth at its default offloads comes
    /// with its checksum partial (CHECKSUM_PARTIAL): with offload the
    /// frame says so ([`Checksum::Partial`]), without it the device
    /// completes the checksum. Frames the stack sends arrive, and are not
    /// read back.
    #[test]
    fn veth_in_namespace_udp_both_ways() {
        if !preconditions("veth_in_namespace_udp_both_ways", &[]) {
            return;
        }
        let (ns, mac, peer_mac) = veth("phyraw");
        ns.enter(move || {
            let mut plain = RawSocket::open("ustkv0", &RawOptions::default()).unwrap();
            let offload = RawOptions {
                offload: true,
                ..RawOptions::default()
            };
            let mut off = RawSocket::open("ustkv0", &offload).unwrap();
            assert!(plain.vnet_hdr() && off.vnet_hdr());
            assert_eq!(plain.caps().hardware_addr, Some(mac));
            assert_eq!(plain.caps().medium, Medium::Ethernet);
            assert_eq!(plain.caps().mtu, 1500);
            assert_eq!(plain.caps().offload, Offload::default());
            assert_eq!(
                off.caps().offload,
                Offload {
                    tx_checksum: true,
                    tso: true,
                    gro: true
                }
            );
            let sock = UdpSocket::bind("10.9.2.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let port = sock.local_addr().unwrap().port();
            sock.send_to(b"to the stack", "10.9.2.2:7777").unwrap();
            let ours = |f: &[u8]| {
                f[..6] == mac.0
                    && f[12..14] == [8, 0]
                    && matches!(
                        pkt::parse_ipv4_udp(&f[14..]),
                        Some((_, _, 7777, b"to the stack"))
                    )
            };
            let (f, meta) = recv_frames(&mut plain, 1, ours).remove(0);
            assert_eq!(EthernetAddress::from_bytes(&f[6..12]), peer_mac);
            assert_eq!(meta, FrameMeta::default());
            assert!(udp_checksum_ok(&f), "checksum left partial: {f:02x?}");
            assert!(plain.stats().csum_not_ready >= 1);
            let (mut f, meta) = recv_frames(&mut off, 1, ours).remove(0);
            assert_eq!(
                meta.checksum,
                Checksum::Partial {
                    start: 34,
                    offset: 6
                }
            );
            assert!(meta.checksum_trusted());
            assert!(!udp_checksum_ok(&f), "the kernel left it partial");
            assert!(meta.checksum.complete(&mut f));
            assert!(udp_checksum_ok(&f));

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
            assert_eq!(plain.send_batch(Instant::ZERO, &out).unwrap(), 3);
            let mut buf = [0u8; 100];
            for _ in 0..3 {
                let (n, from) = sock.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"from the stack");
                assert_eq!(from, "10.9.2.2:7777".parse().unwrap());
            }
            // Our own frames are not read back.
            std::thread::sleep(Duration::from_millis(50));
            let mut batch = FrameBatch::new(16, plain.caps().max_rx_frame_len());
            plain.recv_batch(Instant::ZERO, &mut batch).unwrap();
            assert!(
                batch.iter().all(|f| f[6..12] != mac.0),
                "own frame read back"
            );
            assert_eq!(plain.stats().sent, 3);
            assert_eq!(plain.dropped(), 0);
            assert_eq!(off.dropped(), 0);
        });
    }

    /// `payload` as one IPv4 TCP super-segment with a partial checksum
    /// ([`gso::tests::super_v4`]) in an Ethernet frame from `src` to `dst`.
    fn tcp_super_segment(src: EthernetAddress, dst: EthernetAddress, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + 20 + 32 + payload.len());
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&gso::tests::super_v4(
            payload,
            tcp::Flags::ACK | tcp::Flags::PSH,
        ));
        f
    }

    /// What the peer of a veth does at its default offloads (TSO): a TCP
    /// super-segment longer than the MTU crosses the pair whole, and
    /// AF_PACKET hands it over as it is. With offload it reaches the stack
    /// whole, with its `gso_size` and a partial checksum; without, the
    /// device cuts it into MTU-sized segments with complete checksums.
    /// Nothing is truncated.
    #[test]
    fn veth_super_segment_from_the_peer() {
        if !preconditions("veth_super_segment_from_the_peer", &[]) {
            return;
        }
        let (ns, mac, peer_mac) = veth("phyrawgso");
        ns.enter(move || {
            let offload = RawOptions {
                offload: true,
                ..RawOptions::default()
            };
            // The Linux side's TSO, made by hand: a super-segment handed to
            // ustkv1 with a virtio-net header.
            let mut peer = RawSocket::open("ustkv1", &offload).unwrap();
            let mut plain = RawSocket::open("ustkv0", &RawOptions::default()).unwrap();
            let mut off = RawSocket::open("ustkv0", &offload).unwrap();
            let payload: Vec<u8> = (0..3000u32).map(|i| (i * 13 + 5) as u8).collect();
            let f = tcp_super_segment(peer_mac, mac, &payload);
            let meta = FrameMeta {
                checksum: Checksum::Partial {
                    start: 34,
                    offset: 16,
                },
                gso_size: 1000,
            };
            let mut out = FrameBatch::new(1, peer.caps().max_tx_frame_len());
            assert!(out.push_meta(&f, meta));
            assert_eq!(peer.send_batch(Instant::ZERO, &out).unwrap(), 1);
            let tcp_to_us = |f: &[u8]| f[..6] == mac.0 && f.len() > 34 && f[14 + 9] == 6;

            let (whole, m) = recv_frames(&mut off, 1, tcp_to_us).remove(0);
            assert_eq!(whole.len(), f.len());
            assert_eq!(m.gso_size, 1000);
            assert!(matches!(m.checksum, Checksum::Partial { .. }));
            assert_eq!(&whole[whole.len() - payload.len()..], &payload[..]);
            let s = off.stats();
            assert_eq!((s.gso_in, s.truncated, s.gso_cut), (1, 0, 0), "{s:?}");

            let segs = recv_frames(&mut plain, 3, tcp_to_us);
            let mut joined = Vec::new();
            for (i, (seg, m)) in segs.iter().enumerate() {
                assert_eq!(*m, FrameMeta::default());
                assert!(seg.len() <= 1514);
                let ip = ipv4::Packet::new_checked(&seg[14..]).unwrap();
                assert!(ip.verify_checksum());
                let t = tcp::Packet::new_checked(ip.payload()).unwrap();
                let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
                let r = tcp::Repr::parse(&t, src, dst, true).expect("checksum verifies");
                let seq = gso::tests::SUPER_SEQ.wrapping_add(1000 * i as u32);
                assert_eq!(r.seq_number, seq);
                joined.extend_from_slice(r.payload);
            }
            assert_eq!(joined, payload);
            let s = plain.stats();
            assert_eq!((s.gso_in, s.gso_cut, s.truncated), (1, 1, 0), "{s:?}");
            assert!(s.received >= 3, "{s:?}");
            assert_eq!(plain.dropped(), 0);
            assert_eq!(off.dropped(), 0);
        });
    }
}
