//! TUN (bare IP packets) and TAP (Ethernet frames) devices, through the
//! `tun-rs` crate.
//!
//! [`TunDevice::open`] attaches to an existing device of the given name or
//! creates it in the calling thread's network namespace, without the
//! packet-information header (IFF_NO_PI). It then brings the link up and
//! applies the requested MTU. The kernel-side IP address is not assigned
//! here: that is the caller's (or its scripts') business. The descriptor is
//! non-blocking. A device `open` creates goes away, with its kernel-side
//! addresses, when its last descriptor closes, unless
//! [`TunOptions::persist`] is set; one made beforehand with `ip tuntap add`
//! is persistent and stays.
//!
//! ## Offload
//!
//! With [`TunOptions::offload`] the device is opened with the virtio-net
//! header (IFF_VNET_HDR) and TCP offloads (`TUN_F_CSUM | TUN_F_TSO4 |
//! TUN_F_TSO6`, not UDP's). Every frame then crosses the descriptor behind a
//! 10-byte `virtio_net_hdr`, which this module turns into [`FrameMeta`] and
//! back:
//! - transmit: the stack may hand over a TCP super-segment of up to 64 KiB
//!   (`gso_size` set: the kernel cuts it into MSS-sized segments, fixing
//!   lengths, IP IDs, checksums and the PSH/FIN flags) and leaves transport
//!   checksums to the kernel ([`Checksum::Partial`]);
//! - receive: the kernel hands over what its TCP sent without cutting it
//!   (up to 64 KiB in one read) with the checksum left partial, or frames
//!   it has verified; the stack then skips the transport checksum.
//!
//! One system call then moves up to 44 segments' worth of data instead of
//! one. Captures taken on such a device show the super-segments and the
//! partial checksums, as `tcpdump` does on a Linux host with offload.
//!
//! [`TunDevice::open_queues`] opens several queues of one multi-queue
//! device (`IFF_MULTI_QUEUE`), one stack per queue.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use super::util;
use super::{Checksum, Device, DeviceCaps, FrameBatch, FrameMeta, Medium, Offload};
use crate::time::Instant;
use crate::wire::EthernetAddress;

/// The control device every TUN/TAP is opened through.
pub const TUN_CONTROL_PATH: &str = "/dev/net/tun";

/// TUN or TAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunKind {
    /// Layer 3: bare IP packets ([`Medium::Ip`]).
    Tun,
    /// Layer 2: Ethernet frames ([`Medium::Ethernet`]).
    Tap,
}

impl TunKind {
    fn label(self) -> &'static str {
        match self {
            TunKind::Tun => "TUN",
            TunKind::Tap => "TAP",
        }
    }
}

/// The most queues a multi-queue TUN/TAP device can have (the kernel's
/// `MAX_TAP_QUEUES`); see [`TunDevice::open_queues`].
pub const MAX_QUEUES: usize = 256;

/// How to open a TUN/TAP device. The default: the device's MTU, a random
/// MAC on TAP, no offload, a kernel queue of
/// [`TunOptions::DEFAULT_TX_QUEUE_LEN`] frames for a device `open`
/// creates, and not persistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunOptions {
    /// MTU to set on the device; `None` keeps the device's current MTU.
    pub mtu: Option<usize>,
    /// The stack's own MAC address on a TAP device (not the kernel side's);
    /// `None` picks a random locally administered unicast address
    /// (02:xx:xx:xx:xx:xx). Ignored for TUN.
    pub hardware_addr: Option<EthernetAddress>,
    /// Open with the virtio-net header and TCP offloads (TSO/GSO, GRO,
    /// checksum; see the [module documentation](self)). `open` fails when
    /// the kernel refuses them; the tools then fall back to no offload
    /// unless `--offload on` was given.
    pub offload: bool,
    /// Length of the kernel's queue of frames waiting for the stack to read
    /// (`txqueuelen`), set when `open` creates the device (a device that
    /// exists keeps its own). The default is
    /// [`TunOptions::DEFAULT_TX_QUEUE_LEN`], as in the bundled tools;
    /// `None` keeps the kernel's 500, which overflows under a bulk transfer
    /// while the stack thread is busy writing.
    pub tx_queue_len: Option<u32>,
    /// Make the device persistent (`TUNSETPERSIST`): it stays, with its
    /// kernel-side addresses and routes, after the last descriptor is
    /// closed and the process exits, until `ip link del NAME` (or `ip
    /// tuntap del`). Without it a device that `open` created vanishes with
    /// the process; a device made beforehand with `ip tuntap add` is
    /// persistent already, and `open` attaches to it.
    pub persist: bool,
}

impl TunOptions {
    /// The kernel queue length of the default options and the bundled tools.
    pub const DEFAULT_TX_QUEUE_LEN: u32 = 4096;
}

impl Default for TunOptions {
    fn default() -> TunOptions {
        TunOptions {
            mtu: None,
            hardware_addr: None,
            offload: false,
            tx_queue_len: Some(TunOptions::DEFAULT_TX_QUEUE_LEN),
            persist: false,
        }
    }
}

/// A TUN or TAP device. See the [module documentation](self).
pub struct TunDevice {
    dev: SyncDevice,
    name: String,
    kind: TunKind,
    created: bool,
    caps: DeviceCaps,
    /// Frames cross the descriptor behind a virtio-net header.
    vnet_hdr: bool,
    /// Frames read with a header too short or a GSO kind the stack did not
    /// ask for (UDP), dropped.
    bad_vnet: u64,
}

/// Length of `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// `_IOW('T', 208, unsigned int)`.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// The metadata of a frame read behind a virtio-net header; `None` for a
/// header the stack cannot take (a UDP GSO frame, which it never enables).
pub fn vnet_hdr_decode(h: &[u8; VNET_HDR_LEN]) -> Option<FrameMeta> {
    let flags = h[0];
    let gso_type = h[1] & !VIRTIO_NET_HDR_GSO_ECN;
    let gso_size = u16::from_le_bytes([h[4], h[5]]);
    let start = u16::from_le_bytes([h[6], h[7]]);
    let offset = u16::from_le_bytes([h[8], h[9]]);
    let gso_size = match gso_type {
        VIRTIO_NET_HDR_GSO_NONE => 0,
        VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_TCPV6 => gso_size,
        _ => return None,
    };
    let checksum = if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        Checksum::Partial { start, offset }
    } else if flags & VIRTIO_NET_HDR_F_DATA_VALID != 0 {
        Checksum::Verified
    } else {
        Checksum::Complete
    };
    Some(FrameMeta { checksum, gso_size })
}

/// The virtio-net header that tells the kernel what to do with `frame`
/// (`link` bytes of link header in front of its IP packet): complete a
/// partial checksum, cut a TCP super-segment.
pub fn vnet_hdr_encode(frame: &[u8], link: usize, meta: FrameMeta) -> [u8; VNET_HDR_LEN] {
    let mut h = [0u8; VNET_HDR_LEN];
    if let Checksum::Partial { start, offset } = meta.checksum {
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h[6..8].copy_from_slice(&start.to_le_bytes());
        h[8..10].copy_from_slice(&offset.to_le_bytes());
        if meta.gso_size > 0 {
            let v6 = frame.get(link).is_some_and(|b| b >> 4 == 6);
            h[1] = if v6 {
                VIRTIO_NET_HDR_GSO_TCPV6
            } else {
                VIRTIO_NET_HDR_GSO_TCPV4
            };
            let tcp_hlen = frame
                .get(start as usize + 12)
                .map_or(20, |b| ((b >> 4) as usize) * 4);
            let hdr_len = (start as usize + tcp_hlen).min(u16::MAX as usize) as u16;
            h[2..4].copy_from_slice(&hdr_len.to_le_bytes());
            h[4..6].copy_from_slice(&meta.gso_size.to_le_bytes());
        }
    }
    h
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("fd", &self.dev.as_raw_fd())
            .field("caps", &self.caps)
            .finish()
    }
}

/// Rewrites an OS error from creating/attaching the device into one that
/// says what failed and why.
fn open_error(e: io::Error, name: &str, kind: TunKind, exists: bool) -> io::Error {
    let what = if exists {
        format!("cannot attach to {} device '{name}'", kind.label())
    } else {
        format!("cannot create {} device '{name}'", kind.label())
    };
    let (k, msg) = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => (
            io::ErrorKind::PermissionDenied,
            format!("{what}: permission denied (needs CAP_NET_ADMIN)"),
        ),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => (
            io::ErrorKind::NotFound,
            format!("{what}: {TUN_CONTROL_PATH} is missing or the tun driver is not loaded ({e})"),
        ),
        Some(libc::EBUSY) => (
            io::ErrorKind::Other,
            format!("{what}: device is busy (another process has it open)"),
        ),
        Some(libc::EINVAL) if exists => (
            io::ErrorKind::InvalidInput,
            format!(
                "{what}: an interface of that name exists but is not a {} device with these flags",
                kind.label()
            ),
        ),
        _ => (e.kind(), format!("{what}: {e}")),
    };
    io::Error::new(k, msg)
}

impl TunDevice {
    /// Attaches to the TUN/TAP device `name`, creating it (in the calling
    /// thread's network namespace) when absent; brings the link up and sets
    /// `opts.mtu` if given. See [`TunOptions`].
    pub fn open(name: &str, kind: TunKind, opts: &TunOptions) -> io::Result<TunDevice> {
        Self::open_inner(name, kind, opts, false)
    }

    /// [`TunDevice::open`], with `IFF_MULTI_QUEUE` when `multi_queue`.
    fn open_inner(
        name: &str,
        kind: TunKind,
        opts: &TunOptions,
        multi_queue: bool,
    ) -> io::Result<TunDevice> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['\0', '/', ' ']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name '{name}' (1 to 15 bytes, no '/', space or NUL)"),
            ));
        }
        match std::fs::metadata(TUN_CONTROL_PATH) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "cannot open {} device '{name}': {TUN_CONTROL_PATH} does not exist (load the tun module, or in a container pass the device through)",
                        kind.label()
                    ),
                ))
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot open {} device '{name}': {TUN_CONTROL_PATH}: {e}", kind.label()),
                ))
            }
        }
        let exists = util::interface_exists(name);
        let layer = match kind {
            TunKind::Tun => Layer::L3,
            TunKind::Tap => Layer::L2,
        };
        let dev = DeviceBuilder::new()
            .name(name)
            .layer(layer)
            .packet_information(false)
            .offload(opts.offload)
            .multi_queue(multi_queue)
            .build_sync()
            .map_err(|e| open_error(e, name, kind, exists))?;
        if opts.offload {
            // tun-rs also asks for UDP segmentation offload where the kernel
            // has it; the stack takes TCP super-segments only.
            let mask = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
            // SAFETY: an ioctl on the descriptor we own, with an integer
            // argument, as TUNSETOFFLOAD takes.
            let rc = unsafe { libc::ioctl(dev.as_raw_fd(), TUNSETOFFLOAD as _, mask) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "{} device '{name}': the kernel refused TCP offloads (TUNSETOFFLOAD): {e}",
                        kind.label()
                    ),
                ));
            }
        }
        let ctx = |what: &str| {
            let what = what.to_string();
            let name = name.to_string();
            move |e: io::Error| {
                io::Error::new(
                    e.kind(),
                    format!("{} device '{name}': {what}: {e}", kind.label()),
                )
            }
        };
        dev.set_nonblocking(true).map_err(ctx("set non-blocking"))?;
        if let Some(mtu) = opts.mtu {
            if util::interface_mtu(name).ok() != Some(mtu) {
                util::set_interface_mtu(name, mtu).map_err(ctx(&format!("set MTU {mtu}")))?;
            }
        }
        if let (Some(q), false) = (opts.tx_queue_len, exists) {
            dev.set_tx_queue_len(q)
                .map_err(ctx(&format!("set txqueuelen {q}")))?;
        }
        if opts.persist {
            dev.persist()
                .map_err(ctx("make persistent (TUNSETPERSIST)"))?;
        }
        // `open_queues` brings a multi-queue device up once every queue
        // is there (a flow placed on fewer queues may move when more come).
        if !multi_queue {
            util::set_interface_up(name).map_err(ctx("bring link up"))?;
        }
        let mtu = util::interface_mtu(name).map_err(ctx("read MTU"))?;
        let (medium, hardware_addr) = match kind {
            TunKind::Tun => (Medium::Ip, None),
            TunKind::Tap => (
                Medium::Ethernet,
                Some(opts.hardware_addr.unwrap_or_else(util::random_mac)),
            ),
        };
        Ok(TunDevice {
            dev,
            name: name.to_string(),
            kind,
            created: !exists,
            caps: DeviceCaps {
                medium,
                mtu,
                hardware_addr,
                offload: Offload {
                    tx_checksum: opts.offload,
                    tso: opts.offload,
                    gro: opts.offload,
                },
            },
            vnet_hdr: opts.offload,
            bad_vnet: 0,
        })
    }

    /// True when the device was opened with offloads.
    pub fn offload(&self) -> bool {
        self.vnet_hdr
    }

    /// Frames read with a virtio-net header the stack cannot take, dropped.
    pub fn bad_vnet_frames(&self) -> u64 {
        self.bad_vnet
    }

    /// Opens `n` queues of one multi-queue (`IFF_MULTI_QUEUE`) TUN/TAP
    /// device `name`, creating it when absent (see [`TunDevice::open`] for
    /// the rest): one non-blocking descriptor per queue, each its own
    /// [`TunDevice`] with the same caps, and on TAP the same MAC address for
    /// the stack (every queue's stack answers for the same addresses). The
    /// intended use is one stack ([`crate::iface::Interface`] and
    /// [`crate::runtime::Driver`]) per queue, each on its own thread, sharing
    /// nothing.
    ///
    /// How the kernel spreads packets over the queues (`tun_select_queue`
    /// in drivers/net/tun.c, without a steering eBPF program): a packet of a
    /// flow that one of the queues has written recently goes to that queue
    /// (the device's flow table learns from writes; an entry expires after
    /// 3 s without traffic), any other to queue `hash × n / 2³²` of the
    /// flow's symmetric hash (addresses and ports, so both directions of a
    /// connection hash alike). The SYN of a new connection from Linux thus
    /// lands on a queue picked by its hash, and the rest of the connection
    /// follows it there, as long as the number of queues stays the same: a
    /// stack that accepted a connection keeps getting its segments. Hence
    /// the link is brought up only once all `n` queues are attached; on a
    /// device that is up already (made beforehand, with its address), a
    /// connection that arrives while the queues attach, one after the
    /// other, may be placed by a smaller count and move later.
    ///
    /// Errors: `n` of 0 or above [`MAX_QUEUES`]; an existing device of that
    /// name created without multi-queue (`ip tuntap add ... multi_queue`
    /// makes one with it); too many queues on the device altogether; and
    /// everything [`TunDevice::open`] refuses.
    pub fn open_queues(
        name: &str,
        kind: TunKind,
        opts: &TunOptions,
        n: usize,
    ) -> io::Result<Vec<TunDevice>> {
        if n == 0 || n > MAX_QUEUES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} device '{name}': {n} queues asked for, a multi-queue device has 1 to {MAX_QUEUES}",
                    kind.label()
                ),
            ));
        }
        let exists = util::interface_exists(name);
        let first = Self::open_inner(name, kind, opts, true).map_err(|e| {
            if exists && e.kind() == io::ErrorKind::InvalidInput {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "cannot attach {n} queues to {label} device '{name}': it exists but is not a multi-queue {label} device (made without IFF_MULTI_QUEUE, or of the other kind); delete it (`ip link del {name}`) or make it with `ip tuntap add dev {name} mode {mode} multi_queue`",
                        label = kind.label(),
                        mode = kind.label().to_lowercase(),
                    ),
                )
            } else {
                e
            }
        })?;
        let mut queues = Vec::with_capacity(n);
        for i in 1..n {
            let q = first.open_another_queue().map_err(|e| {
                let why = match e.raw_os_error() {
                    Some(libc::E2BIG) => format!(
                        "the device would have more than the kernel's {MAX_QUEUES} queues (others attached?)"
                    ),
                    _ => e.to_string(),
                };
                io::Error::new(
                    e.kind(),
                    format!(
                        "{} device '{name}': cannot open queue {} of {n}: {why}",
                        kind.label(),
                        i + 1
                    ),
                )
            })?;
            queues.push(q);
        }
        queues.insert(0, first);
        util::set_interface_up(name).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{} device '{name}': bring link up: {e}", kind.label()),
            )
        })?;
        Ok(queues)
    }

    /// One more queue of this multi-queue device, as its own device.
    fn open_another_queue(&self) -> io::Result<TunDevice> {
        let dev = self.dev.try_clone()?;
        dev.set_nonblocking(true)?;
        Ok(TunDevice {
            dev,
            name: self.name.clone(),
            kind: self.kind,
            created: false,
            caps: self.caps,
            vnet_hdr: self.vnet_hdr,
            bad_vnet: 0,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// TUN or TAP.
    pub fn kind(&self) -> TunKind {
        self.kind
    }

    /// True when `open` created the device (rather than attaching to one).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The kernel side's MAC address of a TAP device (where frames for the
    /// host go); `None` for TUN.
    pub fn kernel_hardware_addr(&self) -> io::Result<Option<EthernetAddress>> {
        match self.kind {
            TunKind::Tun => Ok(None),
            TunKind::Tap => Ok(Some(EthernetAddress(self.dev.mac_address()?))),
        }
    }

    /// Re-reads the MTU from the device (it may have been changed from
    /// outside) and returns it; `caps()` reports the refreshed value.
    pub fn refresh_mtu(&mut self) -> io::Result<usize> {
        self.caps.mtu = util::interface_mtu(&self.name)?;
        Ok(self.caps.mtu)
    }
}

impl Device for TunDevice {
    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn recv_batch(&mut self, _now: Instant, batch: &mut FrameBatch) -> io::Result<usize> {
        let mut n = 0;
        let len = batch.max_frame_len();
        let head = if self.vnet_hdr { VNET_HDR_LEN } else { 0 };
        while !batch.is_full() {
            let Some(slot) = batch.reserve_with_headroom(head, len) else {
                break;
            };
            match self.dev.recv(slot) {
                Ok(got) if head == 0 => {
                    batch.commit(got);
                    n += 1;
                }
                Ok(got) => {
                    let meta = slot
                        .first_chunk::<VNET_HDR_LEN>()
                        .filter(|_| got >= VNET_HDR_LEN)
                        .and_then(vnet_hdr_decode);
                    match meta {
                        Some(meta) => {
                            batch.commit_at(VNET_HDR_LEN, got - VNET_HDR_LEN, meta);
                            n += 1;
                        }
                        None => {
                            self.bad_vnet += 1;
                            batch.abandon();
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => batch.abandon(),
                Err(e) => {
                    batch.abandon();
                    if e.kind() == io::ErrorKind::WouldBlock || n > 0 {
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(n)
    }

    fn send_batch(&mut self, _now: Instant, batch: &FrameBatch) -> io::Result<usize> {
        let mut sent = 0;
        let link = self.caps.medium.header_len();
        for (frame, meta) in batch.iter_meta() {
            loop {
                let r = if self.vnet_hdr {
                    let hdr = vnet_hdr_encode(frame, link, meta);
                    self.dev
                        .send_vectored(&[io::IoSlice::new(&hdr), io::IoSlice::new(frame)])
                } else {
                    self.dev.send(frame)
                };
                match r {
                    Ok(_) => {
                        sent += 1;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(sent),
                    Err(e) if sent > 0 => {
                        let _ = e;
                        return Ok(sent);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(sent)
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.dev.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::util::{pkt, wait_readable};
    use crate::testkit::netns::{preconditions, Netns};
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant as StdInstant};

    /// Receives frames until `pick` returns Some, for up to 3 s.
    fn recv_until<T>(dev: &mut TunDevice, mut pick: impl FnMut(&[u8]) -> Option<T>) -> T {
        let deadline = StdInstant::now() + Duration::from_secs(3);
        let mut batch = FrameBatch::new(16, dev.caps().max_frame_len());
        loop {
            let left = deadline.saturating_duration_since(StdInstant::now());
            assert!(!left.is_zero(), "timed out waiting for a frame");
            wait_readable(dev.as_raw_fd().unwrap(), left.as_millis() as i32);
            batch.clear();
            dev.recv_batch(Instant::ZERO, &mut batch).unwrap();
            if let Some(t) = batch.iter().find_map(&mut pick) {
                return t;
            }
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let e = TunDevice::open(
            "this-name-is-too-long",
            TunKind::Tun,
            &TunOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn vnet_header_both_ways() {
        // A TCP super-segment over IPv4 on a TUN: 20-byte IP header, TCP
        // header with timestamps (32 bytes).
        let mut frame = vec![0u8; 20 + 32 + 2896];
        frame[0] = 0x45;
        frame[20 + 12] = 8 << 4;
        let meta = FrameMeta {
            checksum: Checksum::Partial {
                start: 20,
                offset: 16,
            },
            gso_size: 1448,
        };
        let h = vnet_hdr_encode(&frame, 0, meta);
        assert_eq!(h[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!(h[1], VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 52); // hdr_len
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1448);
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 20);
        assert_eq!(u16::from_le_bytes([h[8], h[9]]), 16);
        assert_eq!(vnet_hdr_decode(&h), Some(meta));
        // IPv6 behind an Ethernet header.
        let mut eth = vec![0u8; 14 + 40 + 20 + 100];
        eth[14] = 0x60;
        eth[14 + 40 + 12] = 5 << 4;
        let meta6 = FrameMeta {
            checksum: Checksum::Partial {
                start: 54,
                offset: 16,
            },
            gso_size: 1220,
        };
        let h = vnet_hdr_encode(&eth, 14, meta6);
        assert_eq!(h[1], VIRTIO_NET_HDR_GSO_TCPV6);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 74);
        // A complete frame needs nothing of the kernel.
        assert_eq!(vnet_hdr_encode(&frame, 0, FrameMeta::default()), [0; 10]);
        // Received: verified, ECN bit ignored, UDP GSO refused.
        let mut r = [0u8; 10];
        r[0] = VIRTIO_NET_HDR_F_DATA_VALID;
        assert_eq!(vnet_hdr_decode(&r).unwrap().checksum, Checksum::Verified);
        r[1] = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
        r[4] = 100;
        assert_eq!(vnet_hdr_decode(&r).unwrap().gso_size, 100);
        r[1] = 5; // VIRTIO_NET_HDR_GSO_UDP_L4
        assert_eq!(vnet_hdr_decode(&r), None);
        assert!(vnet_hdr_decode(&[0; 10]).is_some_and(|m| !m.checksum_trusted()));
    }

    #[test]
    fn open_queues_refuses_bad_counts() {
        for n in [0, MAX_QUEUES + 1] {
            let e = TunDevice::open_queues("ustk-nope", TunKind::Tun, &TunOptions::default(), n)
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{n}: {e}");
            assert!(
                e.to_string().contains(&format!(
                    "{n} queues asked for, a multi-queue device has 1 to 256"
                )),
                "{e}"
            );
        }
        // The checks of `open` apply too (without creating anything here,
        // outside a namespace).
        let e = TunDevice::open_queues("a/b", TunKind::Tap, &TunOptions::default(), 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    /// Two queues of one TUN: datagrams of 64 flows (source ports) from
    /// Linux are spread over both by the kernel's flow hash, each exactly
    /// once; a single-queue device of the same name cannot be attached as
    /// multi-queue, nor the other way round; TAP queues share one MAC.
    #[test]
    fn multi_queue_in_namespace() {
        if !preconditions("multi_queue_in_namespace", &[]) {
            return;
        }
        let ns = Netns::new("phymq");
        ns.ip(&["tuntap", "add", "mode", "tun", "name", "ustkmq0"]);
        let opts = TunOptions {
            mtu: Some(1400),
            ..TunOptions::default()
        };
        let queues = ns.enter(move || {
            let e = TunDevice::open_queues("ustkmq0", TunKind::Tun, &opts, 2).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(
                e.to_string().contains(
                    "cannot attach 2 queues to TUN device 'ustkmq0': it exists but is not a multi-queue TUN device"
                ),
                "{e}"
            );
            TunDevice::open_queues("ustkmq1", TunKind::Tun, &opts, 2).unwrap()
        });
        assert_eq!(queues.len(), 2);
        assert!(queues[0].created() && !queues[1].created());
        assert_eq!(queues[0].caps(), queues[1].caps());
        assert_eq!(queues[1].caps().mtu, 1400);
        assert_ne!(queues[0].as_raw_fd(), queues[1].as_raw_fd());
        // Up already: open_queues brought it up once both queues were there.
        ns.ip(&["addr", "add", "10.9.2.1/24", "dev", "ustkmq1"]);
        let per_queue = ns.enter(move || {
            // A single-queue open of the multi-queue device is refused.
            let e = TunDevice::open("ustkmq1", TunKind::Tun, &TunOptions::default()).unwrap_err();
            assert!(
                e.to_string()
                    .contains("cannot attach to TUN device 'ustkmq1'"),
                "{e}"
            );
            let mut queues = queues;
            const FLOWS: usize = 64;
            let socks: Vec<UdpSocket> = (0..FLOWS)
                .map(|i| {
                    let s = UdpSocket::bind("10.9.2.1:0").unwrap();
                    s.send_to(format!("flow {i}").as_bytes(), "10.9.2.2:7777")
                        .unwrap();
                    s
                })
                .collect();
            let mut seen = vec![None; FLOWS];
            let mut per_queue = [0usize; 2];
            let deadline = StdInstant::now() + Duration::from_secs(3);
            let mut batch = FrameBatch::new(16, 1500);
            while seen.iter().any(Option::is_none) {
                assert!(
                    StdInstant::now() < deadline,
                    "timed out: {per_queue:?} so far, seen {seen:?}"
                );
                for (q, dev) in queues.iter_mut().enumerate() {
                    wait_readable(dev.as_raw_fd().unwrap(), 10);
                    batch.clear();
                    dev.recv_batch(Instant::ZERO, &mut batch).unwrap();
                    for p in batch.iter() {
                        let Some((_, _, 7777, payload)) = pkt::parse_ipv4_udp(p) else {
                            continue;
                        };
                        let i: usize = std::str::from_utf8(payload)
                            .ok()
                            .and_then(|t| t.strip_prefix("flow "))
                            .and_then(|n| n.parse().ok())
                            .expect("one of ours");
                        assert_eq!(seen[i], None, "flow {i} arrived twice");
                        seen[i] = Some(q);
                        per_queue[q] += 1;
                    }
                }
            }
            drop(socks);
            per_queue
        });
        // 64 flows all hashed to one of two queues: 1 in 2^63.
        assert!(
            per_queue[0] > 0 && per_queue[1] > 0,
            "both queues should get flows: {per_queue:?}"
        );
        let taps = ns.enter(|| {
            TunDevice::open_queues("ustkmq2", TunKind::Tap, &TunOptions::default(), 3).unwrap()
        });
        assert_eq!(taps.len(), 3);
        let mac = taps[0].caps().hardware_addr;
        assert!(mac.is_some());
        assert!(taps.iter().all(|t| t.caps().hardware_addr == mac));
    }

    /// The default options give a created device the tools' kernel queue
    /// length (not the kernel's 500), and only a device opened with
    /// `persist` outlives its descriptor.
    #[test]
    fn default_queue_len_and_persist_in_namespace() {
        if !preconditions("default_queue_len_and_persist_in_namespace", &[]) {
            return;
        }
        let ns = Netns::new("phypersist");
        let (queue_len, plain_left, persistent_left) = ns.enter(|| {
            let dev = TunDevice::open("ustkpl0", TunKind::Tun, &TunOptions::default()).unwrap();
            assert!(dev.created());
            let queue_len = dev.dev.tx_queue_len().unwrap();
            drop(dev);
            let plain_left = util::interface_exists("ustkpl0");
            let opts = TunOptions {
                persist: true,
                ..TunOptions::default()
            };
            let dev = TunDevice::open("ustkps0", TunKind::Tap, &opts).unwrap();
            assert!(dev.created());
            drop(dev);
            let persistent_left = util::interface_exists("ustkps0");
            // Attached to again, as to one made with `ip tuntap add`. A
            // process another test thread is starting at this moment can
            // still hold the closed descriptor (a spawned child has a copy
            // of the descriptor table until its exec closes it), and the
            // kernel then says the device is busy: retry for up to 2 s.
            let mut tries = 0;
            let dev = loop {
                match TunDevice::open("ustkps0", TunKind::Tap, &TunOptions::default()) {
                    Err(e) if e.to_string().contains("busy") && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    r => break r.unwrap(),
                }
            };
            assert!(!dev.created());
            (queue_len, plain_left, persistent_left)
        });
        assert_eq!(queue_len, TunOptions::DEFAULT_TX_QUEUE_LEN);
        assert!(
            !plain_left,
            "a device opened without persist outlived its descriptor"
        );
        assert!(
            persistent_left,
            "a device opened with persist vanished with its descriptor"
        );
        // Still there from outside the thread that made it (deleted with
        // the namespace).
        ns.ip(&["link", "show", "ustkps0"]);
    }

    #[test]
    fn permission_error_message() {
        let e = open_error(
            io::Error::from_raw_os_error(libc::EPERM),
            "tun0",
            TunKind::Tun,
            false,
        );
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            e.to_string(),
            "cannot create TUN device 'tun0': permission denied (needs CAP_NET_ADMIN)"
        );
        let e = open_error(
            io::Error::from_raw_os_error(libc::ENOENT),
            "tap0",
            TunKind::Tap,
            false,
        );
        assert!(e.to_string().contains("/dev/net/tun"), "{e}");
    }

    #[test]
    fn tun_in_namespace_udp_both_ways() {
        if !preconditions("tun_in_namespace_udp_both_ways", &[]) {
            return;
        }
        let ns = Netns::new("phytun");
        let name = "ustktun0";
        // Create the device inside the namespace, then configure it from outside.
        let (dev, created) = ns.enter(move || {
            let opts = TunOptions {
                mtu: Some(1400),
                ..TunOptions::default()
            };
            let d = TunDevice::open(name, TunKind::Tun, &opts).unwrap();
            let c = d.created();
            (d, c)
        });
        assert!(created);
        assert_eq!(dev.caps().medium, Medium::Ip);
        assert_eq!(dev.caps().mtu, 1400);
        assert_eq!(dev.caps().hardware_addr, None);
        ns.ip(&["addr", "add", "10.9.0.1/24", "dev", name]);
        ns.ip(&["link", "set", name, "up"]);
        ns.enter(move || {
            let mut dev = dev;
            let sock = UdpSocket::bind("10.9.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let port = sock.local_addr().unwrap().port();
            sock.send_to(b"to the stack", "10.9.0.2:7777").unwrap();
            let (src, sport) = recv_until(&mut dev, |p| {
                let (src, dst, dport, payload) = pkt::parse_ipv4_udp(p)?;
                (dst == Ipv4Addr::new(10, 9, 0, 2) && dport == 7777 && payload == b"to the stack")
                    .then(|| (src, u16::from_be_bytes([p[20], p[21]])))
            });
            assert_eq!(src, Ipv4Addr::new(10, 9, 0, 1));
            assert_eq!(sport, port);
            let reply = pkt::ipv4_udp(
                Ipv4Addr::new(10, 9, 0, 2),
                src,
                7777,
                port,
                b"from the stack",
            );
            let mut out = FrameBatch::new(1, 1500);
            out.push(&reply);
            assert_eq!(dev.send_batch(Instant::ZERO, &out).unwrap(), 1);
            let mut buf = [0u8; 100];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"from the stack");
            assert_eq!(from, "10.9.0.2:7777".parse().unwrap());
            drop(dev);
        });
        // A persistent device made by `ip tuntap` is attached to, not created.
        ns.ip(&["tuntap", "add", "mode", "tun", "name", "ustktun1"]);
        ns.enter(|| {
            let dev = TunDevice::open("ustktun1", TunKind::Tun, &TunOptions::default()).unwrap();
            assert!(!dev.created());
            drop(dev);
            // Wrong kind on an existing name: a clear error.
            let e = TunDevice::open("ustktun1", TunKind::Tap, &TunOptions::default()).unwrap_err();
            assert!(
                e.to_string()
                    .contains("cannot attach to TAP device 'ustktun1'"),
                "{e}"
            );
        });
    }

    #[test]
    fn tap_in_namespace_udp_both_ways() {
        if !preconditions("tap_in_namespace_udp_both_ways", &[]) {
            return;
        }
        let ns = Netns::new("phytap");
        let name = "ustktap0";
        let mac = EthernetAddress([0x02, 0x55, 0x53, 0x54, 0x4b, 0x01]);
        let dev = ns.enter(move || {
            let opts = TunOptions {
                hardware_addr: Some(mac),
                ..TunOptions::default()
            };
            TunDevice::open(name, TunKind::Tap, &opts).unwrap()
        });
        assert_eq!(dev.caps().medium, Medium::Ethernet);
        assert_eq!(dev.caps().hardware_addr, Some(mac));
        assert_eq!(dev.caps().max_frame_len(), dev.caps().mtu + 14);
        ns.ip(&["addr", "add", "10.9.1.1/24", "dev", name]);
        ns.ip(&["link", "set", name, "up"]);
        ns.ip(&[
            "neigh",
            "add",
            "10.9.1.2",
            "lladdr",
            &mac.to_string(),
            "dev",
            name,
        ]);
        ns.enter(move || {
            let mut dev = dev;
            let host_mac = dev.kernel_hardware_addr().unwrap().unwrap();
            assert_ne!(host_mac, mac);
            let sock = UdpSocket::bind("10.9.1.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let port = sock.local_addr().unwrap().port();
            sock.send_to(b"to the stack", "10.9.1.2:7777").unwrap();
            let src_mac = recv_until(&mut dev, |f| {
                if f.len() < 14 || f[12..14] != [0x08, 0x00] || f[..6] != mac.0 {
                    return None;
                }
                let (_, dst, dport, payload) = pkt::parse_ipv4_udp(&f[14..])?;
                (dst == Ipv4Addr::new(10, 9, 1, 2) && dport == 7777 && payload == b"to the stack")
                    .then(|| EthernetAddress::from_bytes(&f[6..12]))
            });
            assert_eq!(src_mac, host_mac);
            let ip = pkt::ipv4_udp(
                Ipv4Addr::new(10, 9, 1, 2),
                Ipv4Addr::new(10, 9, 1, 1),
                7777,
                port,
                b"from the stack",
            );
            let mut frame = Vec::new();
            frame.extend_from_slice(&host_mac.0);
            frame.extend_from_slice(&mac.0);
            frame.extend_from_slice(&[0x08, 0x00]);
            frame.extend_from_slice(&ip);
            let mut out = FrameBatch::new(1, 1514);
            out.push(&frame);
            assert_eq!(dev.send_batch(Instant::ZERO, &out).unwrap(), 1);
            let mut buf = [0u8; 100];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"from the stack");
            assert_eq!(from, "10.9.1.2:7777".parse().unwrap());
        });
    }
}
