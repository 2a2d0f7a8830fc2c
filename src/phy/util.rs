//! Helpers shared by the devices: entropy for default MAC addresses,
//! interface ioctls, and (in tests) hand-built packets. The namespace harness
//! the device tests use is `crate::testkit::netns`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::wire::EthernetAddress;

/// 64 bits of non-reproducible entropy (std's per-process hasher keys mixed
/// with the clock and a counter); enough for default MAC addresses.
pub(crate) fn entropy_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.write_u32(std::process::id());
    h.finish()
}

/// A random locally administered unicast address: 02:xx:xx:xx:xx:xx.
pub(crate) fn random_mac() -> EthernetAddress {
    let b = entropy_u64().to_le_bytes();
    EthernetAddress([0x02, b[0], b[1], b[2], b[3], b[4]])
}

/// A datagram socket in the calling thread's network namespace, for
/// interface ioctls.
fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before wrapping.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name '{name}' (1 to 15 bytes, no NUL)"),
        ));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// The MTU of interface `name` (SIOCGIFMTU).
pub(crate) fn interface_mtu(name: &str) -> io::Result<usize> {
    let sock = ctl_socket()?;
    let mut req = ifreq_for(name)?;
    // SAFETY: SIOCGIFMTU reads the name and writes ifru_mtu of a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(mtu.max(0) as usize)
}

/// The index of interface `name` (`if_nametoindex`), or `None` when the
/// calling thread's network namespace has no such interface.
pub(crate) fn interface_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// The names of the interfaces in the calling thread's network namespace
/// (`if_nameindex`), for error messages.
pub(crate) fn interface_names() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: if_nameindex returns an array terminated by an entry with
    // index 0 (or null on failure); it is freed below, once.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return names;
        }
        let mut p = list;
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            names.push(
                std::ffi::CStr::from_ptr((*p).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    names
}

/// The MAC address of interface `name` (SIOCGIFHWADDR); `None` when its
/// link layer is not Ethernet (or loopback, whose address is all zeros).
pub(crate) fn interface_mac(name: &str) -> io::Result<Option<EthernetAddress>> {
    let sock = ctl_socket()?;
    let mut req = ifreq_for(name)?;
    // SAFETY: SIOCGIFHWADDR reads the name and writes ifru_hwaddr of a
    // valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the hwaddr member of the union.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER && hw.sa_family != libc::ARPHRD_LOOPBACK {
        return Ok(None);
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(hw.sa_data) {
        *d = s as u8;
    }
    Ok(Some(EthernetAddress(mac)))
}

/// Sets the MTU of interface `name` (SIOCSIFMTU).
pub(crate) fn set_interface_mtu(name: &str, mtu: usize) -> io::Result<()> {
    let sock = ctl_socket()?;
    let mut req = ifreq_for(name)?;
    req.ifr_ifru.ifru_mtu = i32::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
    // SAFETY: SIOCSIFMTU reads a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets IFF_UP on interface `name` (SIOCGIFFLAGS + SIOCSIFFLAGS).
pub(crate) fn set_interface_up(name: &str) -> io::Result<()> {
    let sock = ctl_socket()?;
    let mut req = ifreq_for(name)?;
    // SAFETY: SIOCGIFFLAGS fills ifru_flags of a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when an interface called `name` exists in the calling thread's
/// network namespace.
pub(crate) fn interface_exists(name: &str) -> bool {
    interface_index(name).is_some()
}

/// Waits up to `timeout_ms` for `fd` to become readable; true when it is.
#[cfg(test)]
pub(crate) fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout_ms) > 0 }
}

/// Test helpers: hand-built IPv4/UDP packets and parsing of what arrives.
#[cfg(test)]
pub(crate) mod pkt {
    use crate::wire::checksum;
    use std::net::Ipv4Addr;

    /// An IPv4/UDP packet with correct header and UDP checksums.
    pub(crate) fn ipv4_udp(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let udp_len = 8 + payload.len();
        let total = 20 + udp_len;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let u = &mut p[20..];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        u[8..].copy_from_slice(payload);
        let ph = checksum::pseudo_header_v4(src, dst, 17, udp_len as u32);
        let mut c = checksum::finish(checksum::combine(&[ph, checksum::sum(u)]));
        if c == 0 {
            c = 0xffff;
        }
        u[6..8].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// If `p` is IPv4/UDP: (src, dst, dport, payload).
    pub(crate) fn parse_ipv4_udp(p: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, &[u8])> {
        if p.len() < 28 || p[0] >> 4 != 4 || p[9] != 17 {
            return None;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let u = p.get(ihl..)?;
        let dport = u16::from_be_bytes([u[2], u[3]]);
        let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
        Some((src, dst, dport, u.get(8..len)?))
    }
}
