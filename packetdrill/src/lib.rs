//! packetdrill's shared-object interface on top of the ustack core.
//!
//! packetdrill (`--so_filename=libustack_packetdrill.so`) `dlopen`s this
//! library, calls [`packetdrill_interface_init`], and from then on sends
//! every socket call and every packet through the function pointers it
//! filled in. Packets are bare IPv4 datagrams; there is no TUN and no
//! kernel TCP.
//!
//! Time is virtual and belongs to packetdrill: `usleep` moves the clock
//! forward (running every timer that falls due on the way), `gettimeofday`
//! reads it (and moves it by one microsecond, so packetdrill's spin-waits
//! end), and `netdev_receive`, when the stack has nothing queued, moves the
//! clock to the stack's next deadline, so a retransmission expected one
//! RTO later comes out exactly one RTO later.
//!
//! Blocking calls (packetdrill runs them on a second thread) sleep on a
//! condition variable that every packet and every clock step signals.

#![allow(clippy::missing_safety_doc)]

mod flags;
mod harness;

pub use flags::{parse as parse_flags, HELP as FLAGS_HELP};
pub use harness::Harness;

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_longlong, c_uint, c_ulong, c_void};

use libc::{
    epoll_event, iovec, loff_t, msghdr, nfds_t, pollfd, size_t, sockaddr, socklen_t, ssize_t,
    timeval, useconds_t,
};

/// `struct packetdrill_interface` from packetdrill's `packetdrill.h`, field
/// for field. `fcntl` and `ioctl` are variadic in C; their one optional
/// argument is an integer or a pointer, which the x86-64 and AArch64 Linux
/// calling conventions pass exactly like a named argument.
#[repr(C)]
pub struct PacketdrillInterface {
    pub userdata: *mut c_void,
    pub free: unsafe extern "C" fn(*mut c_void),
    pub socket: unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int) -> c_int,
    pub bind: unsafe extern "C" fn(*mut c_void, c_int, *const sockaddr, socklen_t) -> c_int,
    pub listen: unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int,
    pub accept: unsafe extern "C" fn(*mut c_void, c_int, *mut sockaddr, *mut socklen_t) -> c_int,
    pub connect: unsafe extern "C" fn(*mut c_void, c_int, *const sockaddr, socklen_t) -> c_int,
    pub read: unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t) -> ssize_t,
    pub readv: unsafe extern "C" fn(*mut c_void, c_int, *const iovec, c_int) -> ssize_t,
    pub recv: unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t, c_int) -> ssize_t,
    pub recvfrom: unsafe extern "C" fn(
        *mut c_void,
        c_int,
        *mut c_void,
        size_t,
        c_int,
        *mut sockaddr,
        *mut socklen_t,
    ) -> ssize_t,
    pub recvmsg: unsafe extern "C" fn(*mut c_void, c_int, *mut msghdr, c_int) -> ssize_t,
    pub write: unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t) -> ssize_t,
    pub writev: unsafe extern "C" fn(*mut c_void, c_int, *const iovec, c_int) -> ssize_t,
    pub send: unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t, c_int) -> ssize_t,
    pub sendto: unsafe extern "C" fn(
        *mut c_void,
        c_int,
        *const c_void,
        size_t,
        c_int,
        *const sockaddr,
        socklen_t,
    ) -> ssize_t,
    pub sendmsg: unsafe extern "C" fn(*mut c_void, c_int, *const msghdr, c_int) -> ssize_t,
    pub fcntl: unsafe extern "C" fn(*mut c_void, c_int, c_int, c_ulong) -> c_int,
    pub ioctl: unsafe extern "C" fn(*mut c_void, c_int, c_ulong, *mut c_void) -> c_int,
    pub close: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    pub shutdown: unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int,
    pub getsockopt: unsafe extern "C" fn(
        *mut c_void,
        c_int,
        c_int,
        c_int,
        *mut c_void,
        *mut socklen_t,
    ) -> c_int,
    pub setsockopt:
        unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *const c_void, socklen_t) -> c_int,
    pub poll: unsafe extern "C" fn(*mut c_void, *mut pollfd, nfds_t, c_int) -> c_int,
    pub netdev_send: unsafe extern "C" fn(*mut c_void, *const c_void, size_t) -> c_int,
    pub netdev_receive:
        unsafe extern "C" fn(*mut c_void, *mut c_void, *mut size_t, *mut c_longlong) -> c_int,
    pub usleep: unsafe extern "C" fn(*mut c_void, useconds_t) -> c_int,
    pub gettimeofday: unsafe extern "C" fn(*mut c_void, *mut timeval, *mut c_void) -> c_int,
    pub epoll_create: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    pub epoll_ctl:
        unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *mut epoll_event) -> c_int,
    pub epoll_wait:
        unsafe extern "C" fn(*mut c_void, c_int, *mut epoll_event, c_int, c_int) -> c_int,
    pub pipe: unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int,
    pub splice: unsafe extern "C" fn(
        *mut c_void,
        c_int,
        *mut loff_t,
        c_int,
        *mut loff_t,
        size_t,
        c_uint,
    ) -> ssize_t,
}

/// The signature of [`packetdrill_interface_init`].
pub type InitFn = unsafe extern "C" fn(*const c_char, *mut PacketdrillInterface);

/// Fills `ifc` with a fresh stack configured by `flags` (see
/// [`FLAGS_HELP`]). A malformed `flags` string is reported on stderr and
/// ends the process with status 2: packetdrill offers no way to fail here,
/// and running a script on settings other than the ones asked for would be
/// worse.
#[no_mangle]
pub unsafe extern "C" fn packetdrill_interface_init(
    flags: *const c_char,
    ifc: *mut PacketdrillInterface,
) {
    let flags = if flags.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(flags) }
            .to_string_lossy()
            .into_owned()
    };
    let config = match flags::parse(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ustack-packetdrill: {e}");
            std::process::exit(2);
        }
    };
    let harness = Box::new(Harness::new(config));
    let table = PacketdrillInterface {
        userdata: Box::into_raw(harness).cast(),
        free: ffi::free,
        socket: ffi::socket,
        bind: ffi::bind,
        listen: ffi::listen,
        accept: ffi::accept,
        connect: ffi::connect,
        read: ffi::read,
        readv: ffi::readv,
        recv: ffi::recv,
        recvfrom: ffi::recvfrom,
        recvmsg: ffi::recvmsg,
        write: ffi::write,
        writev: ffi::writev,
        send: ffi::send,
        sendto: ffi::sendto,
        sendmsg: ffi::sendmsg,
        fcntl: ffi::fcntl,
        ioctl: ffi::ioctl,
        close: ffi::close,
        shutdown: ffi::shutdown,
        getsockopt: ffi::getsockopt,
        setsockopt: ffi::setsockopt,
        poll: ffi::poll,
        netdev_send: ffi::netdev_send,
        netdev_receive: ffi::netdev_receive,
        usleep: ffi::usleep,
        gettimeofday: ffi::gettimeofday,
        epoll_create: ffi::epoll_create,
        epoll_ctl: ffi::epoll_ctl,
        epoll_wait: ffi::epoll_wait,
        pipe: ffi::pipe,
        splice: ffi::splice,
    };
    unsafe { std::ptr::write(ifc, table) };
}

/// The C entry points: unpack pointers, call the [`Harness`], and turn an
/// `Err(errno)` into `-1` with `errno` set.
mod ffi {
    use super::*;
    use crate::harness::{Addr, Harness};

    fn h<'a>(ud: *mut c_void) -> &'a Harness {
        unsafe { &*(ud as *const Harness) }
    }

    fn fail(errno: c_int) {
        unsafe { *libc::__errno_location() = errno };
    }

    fn ret_int(r: Result<c_int, c_int>) -> c_int {
        r.unwrap_or_else(|e| {
            fail(e);
            -1
        })
    }

    fn ret_size(r: Result<usize, c_int>) -> ssize_t {
        match r {
            Ok(n) => n as ssize_t,
            Err(e) => {
                fail(e);
                -1
            }
        }
    }

    /// A `sockaddr` in, as an address (IPv4 or IPv6; `EAFNOSUPPORT` else).
    unsafe fn addr_in(addr: *const sockaddr, len: socklen_t) -> Result<Addr, c_int> {
        if addr.is_null() {
            return Err(libc::EFAULT);
        }
        if (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
            return Err(libc::EINVAL);
        }
        let family = unsafe { (*addr).sa_family } as c_int;
        match family {
            libc::AF_INET => {
                if (len as usize) < std::mem::size_of::<libc::sockaddr_in>() {
                    return Err(libc::EINVAL);
                }
                let sin = unsafe { std::ptr::read_unaligned(addr as *const libc::sockaddr_in) };
                Ok(Addr::new(
                    std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into(),
                    u16::from_be(sin.sin_port),
                ))
            }
            libc::AF_INET6 => {
                if (len as usize) < std::mem::size_of::<libc::sockaddr_in6>() {
                    return Err(libc::EINVAL);
                }
                let sin6 = unsafe { std::ptr::read_unaligned(addr as *const libc::sockaddr_in6) };
                Ok(Addr::new(
                    std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into(),
                    u16::from_be(sin6.sin6_port),
                ))
            }
            libc::AF_UNSPEC => Err(libc::EAFNOSUPPORT),
            _ => Err(libc::EAFNOSUPPORT),
        }
    }

    /// An address out, into a caller's `sockaddr` of `*len` bytes.
    unsafe fn addr_out(a: Addr, addr: *mut sockaddr, len: *mut socklen_t) {
        if addr.is_null() || len.is_null() {
            return;
        }
        match a {
            std::net::SocketAddr::V4(a) => {
                let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                let full = std::mem::size_of::<libc::sockaddr_in>();
                let n = (unsafe { *len } as usize).min(full);
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        &sin as *const _ as *const u8,
                        addr as *mut u8,
                        n,
                    );
                    *len = full as socklen_t;
                }
            }
            std::net::SocketAddr::V6(a) => {
                let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                let full = std::mem::size_of::<libc::sockaddr_in6>();
                let n = (unsafe { *len } as usize).min(full);
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        &sin6 as *const _ as *const u8,
                        addr as *mut u8,
                        n,
                    );
                    *len = full as socklen_t;
                }
            }
        }
    }

    unsafe fn slice<'a>(buf: *const c_void, n: size_t) -> Result<&'a [u8], c_int> {
        if n == 0 {
            return Ok(&[]);
        }
        if buf.is_null() {
            return Err(libc::EFAULT);
        }
        Ok(unsafe { std::slice::from_raw_parts(buf as *const u8, n) })
    }

    unsafe fn slice_mut<'a>(buf: *mut c_void, n: size_t) -> Result<&'a mut [u8], c_int> {
        if n == 0 {
            return Ok(&mut []);
        }
        if buf.is_null() {
            return Err(libc::EFAULT);
        }
        Ok(unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, n) })
    }

    /// Gathers an iovec array into one buffer.
    unsafe fn gather(iov: *const iovec, cnt: c_int) -> Result<Vec<u8>, c_int> {
        if !(0..=libc::UIO_MAXIOV).contains(&cnt) {
            return Err(libc::EINVAL);
        }
        let mut v = Vec::new();
        for i in 0..cnt as usize {
            let io = unsafe { &*iov.add(i) };
            v.extend_from_slice(unsafe { slice(io.iov_base, io.iov_len) }?);
        }
        Ok(v)
    }

    /// Scatters `data` over an iovec array.
    unsafe fn scatter(iov: *const iovec, cnt: c_int, data: &[u8]) -> Result<(), c_int> {
        let mut off = 0;
        for i in 0..cnt.max(0) as usize {
            if off >= data.len() {
                break;
            }
            let io = unsafe { &*iov.add(i) };
            let dst = unsafe { slice_mut(io.iov_base, io.iov_len) }?;
            let n = dst.len().min(data.len() - off);
            dst[..n].copy_from_slice(&data[off..off + n]);
            off += n;
        }
        Ok(())
    }

    unsafe fn iov_len(iov: *const iovec, cnt: c_int) -> Result<usize, c_int> {
        if !(0..=libc::UIO_MAXIOV).contains(&cnt) {
            return Err(libc::EINVAL);
        }
        Ok((0..cnt as usize)
            .map(|i| unsafe { (*iov.add(i)).iov_len })
            .sum())
    }

    pub unsafe extern "C" fn free(ud: *mut c_void) {
        if !ud.is_null() {
            drop(unsafe { Box::from_raw(ud as *mut Harness) });
        }
    }

    pub unsafe extern "C" fn socket(ud: *mut c_void, d: c_int, t: c_int, p: c_int) -> c_int {
        ret_int(h(ud).socket(d, t, p))
    }

    pub unsafe extern "C" fn bind(
        ud: *mut c_void,
        fd: c_int,
        a: *const sockaddr,
        l: socklen_t,
    ) -> c_int {
        ret_int(unsafe { addr_in(a, l) }.and_then(|a| h(ud).bind(fd, a).map(|_| 0)))
    }

    pub unsafe extern "C" fn listen(ud: *mut c_void, fd: c_int, backlog: c_int) -> c_int {
        ret_int(h(ud).listen(fd, backlog).map(|_| 0))
    }

    pub unsafe extern "C" fn accept(
        ud: *mut c_void,
        fd: c_int,
        a: *mut sockaddr,
        l: *mut socklen_t,
    ) -> c_int {
        ret_int(h(ud).accept(fd).map(|(nfd, peer)| {
            unsafe { addr_out(peer, a, l) };
            nfd
        }))
    }

    pub unsafe extern "C" fn connect(
        ud: *mut c_void,
        fd: c_int,
        a: *const sockaddr,
        l: socklen_t,
    ) -> c_int {
        ret_int(unsafe { addr_in(a, l) }.and_then(|a| h(ud).connect(fd, a).map(|_| 0)))
    }

    pub unsafe extern "C" fn read(
        ud: *mut c_void,
        fd: c_int,
        b: *mut c_void,
        n: size_t,
    ) -> ssize_t {
        ret_size(unsafe { slice_mut(b, n) }.and_then(|b| h(ud).recv(fd, b, 0).map(|(n, _)| n)))
    }

    pub unsafe extern "C" fn readv(
        ud: *mut c_void,
        fd: c_int,
        iov: *const iovec,
        cnt: c_int,
    ) -> ssize_t {
        ret_size((|| {
            let mut tmp = vec![0u8; unsafe { iov_len(iov, cnt) }?];
            let (n, _) = h(ud).recv(fd, &mut tmp, 0)?;
            unsafe { scatter(iov, cnt, &tmp[..n]) }?;
            Ok(n)
        })())
    }

    pub unsafe extern "C" fn recv(
        ud: *mut c_void,
        fd: c_int,
        b: *mut c_void,
        n: size_t,
        flags: c_int,
    ) -> ssize_t {
        ret_size(unsafe { slice_mut(b, n) }.and_then(|b| h(ud).recv(fd, b, flags).map(|(n, _)| n)))
    }

    pub unsafe extern "C" fn recvfrom(
        ud: *mut c_void,
        fd: c_int,
        b: *mut c_void,
        n: size_t,
        flags: c_int,
        a: *mut sockaddr,
        l: *mut socklen_t,
    ) -> ssize_t {
        ret_size(unsafe { slice_mut(b, n) }.and_then(|b| {
            let (n, from) = h(ud).recv(fd, b, flags)?;
            if let Some(from) = from {
                unsafe { addr_out(from, a, l) };
            }
            Ok(n)
        }))
    }

    pub unsafe extern "C" fn recvmsg(
        ud: *mut c_void,
        fd: c_int,
        m: *mut msghdr,
        flags: c_int,
    ) -> ssize_t {
        ret_size((|| {
            if m.is_null() {
                return Err(libc::EFAULT);
            }
            let msg = unsafe { &mut *m };
            let mut tmp = vec![0u8; unsafe { iov_len(msg.msg_iov, msg.msg_iovlen as c_int) }?];
            let (n, from) = h(ud).recv(fd, &mut tmp, flags)?;
            unsafe { scatter(msg.msg_iov, msg.msg_iovlen as c_int, &tmp[..n]) }?;
            match from {
                Some(from) if !msg.msg_name.is_null() => unsafe {
                    addr_out(from, msg.msg_name.cast(), &mut msg.msg_namelen)
                },
                _ => msg.msg_namelen = 0,
            }
            msg.msg_controllen = 0;
            msg.msg_flags = 0;
            Ok(n)
        })())
    }

    pub unsafe extern "C" fn write(
        ud: *mut c_void,
        fd: c_int,
        b: *const c_void,
        n: size_t,
    ) -> ssize_t {
        ret_size(unsafe { slice(b, n) }.and_then(|b| h(ud).send(fd, b, 0, None)))
    }

    pub unsafe extern "C" fn writev(
        ud: *mut c_void,
        fd: c_int,
        iov: *const iovec,
        cnt: c_int,
    ) -> ssize_t {
        ret_size(unsafe { gather(iov, cnt) }.and_then(|b| h(ud).send(fd, &b, 0, None)))
    }

    pub unsafe extern "C" fn send(
        ud: *mut c_void,
        fd: c_int,
        b: *const c_void,
        n: size_t,
        flags: c_int,
    ) -> ssize_t {
        ret_size(unsafe { slice(b, n) }.and_then(|b| h(ud).send(fd, b, flags, None)))
    }

    pub unsafe extern "C" fn sendto(
        ud: *mut c_void,
        fd: c_int,
        b: *const c_void,
        n: size_t,
        flags: c_int,
        a: *const sockaddr,
        l: socklen_t,
    ) -> ssize_t {
        ret_size((|| {
            let b = unsafe { slice(b, n) }?;
            let to = if a.is_null() {
                None
            } else {
                Some(unsafe { addr_in(a, l) }?)
            };
            h(ud).send(fd, b, flags, to)
        })())
    }

    pub unsafe extern "C" fn sendmsg(
        ud: *mut c_void,
        fd: c_int,
        m: *const msghdr,
        flags: c_int,
    ) -> ssize_t {
        ret_size((|| {
            if m.is_null() {
                return Err(libc::EFAULT);
            }
            let msg = unsafe { &*m };
            let b = unsafe { gather(msg.msg_iov, msg.msg_iovlen as c_int) }?;
            let to = if msg.msg_name.is_null() {
                None
            } else {
                Some(unsafe { addr_in(msg.msg_name.cast(), msg.msg_namelen) }?)
            };
            h(ud).send(fd, &b, flags, to)
        })())
    }

    pub unsafe extern "C" fn fcntl(ud: *mut c_void, fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
        ret_int(h(ud).fcntl(fd, cmd, arg))
    }

    pub unsafe extern "C" fn ioctl(
        ud: *mut c_void,
        fd: c_int,
        req: c_ulong,
        arg: *mut c_void,
    ) -> c_int {
        ret_int((|| {
            if arg.is_null() {
                return Err(libc::EFAULT);
            }
            match req {
                libc::FIONBIO => {
                    let on = unsafe { *(arg as *const c_int) } != 0;
                    h(ud).set_nonblocking(fd, on)?;
                    Ok(0)
                }
                libc::FIONREAD | libc::TIOCOUTQ => {
                    let n = h(ud).queued(fd, req == libc::FIONREAD)?;
                    unsafe { *(arg as *mut c_int) = n.min(c_int::MAX as usize) as c_int };
                    Ok(0)
                }
                _ => Err(libc::ENOTTY),
            }
        })())
    }

    pub unsafe extern "C" fn close(ud: *mut c_void, fd: c_int) -> c_int {
        ret_int(h(ud).close(fd).map(|_| 0))
    }

    pub unsafe extern "C" fn shutdown(ud: *mut c_void, fd: c_int, how: c_int) -> c_int {
        ret_int(h(ud).shutdown(fd, how).map(|_| 0))
    }

    pub unsafe extern "C" fn getsockopt(
        ud: *mut c_void,
        fd: c_int,
        level: c_int,
        name: c_int,
        val: *mut c_void,
        len: *mut socklen_t,
    ) -> c_int {
        ret_int((|| {
            if val.is_null() || len.is_null() {
                return Err(libc::EFAULT);
            }
            let bytes = h(ud).getsockopt(fd, level, name)?;
            let n = (unsafe { *len } as usize).min(bytes.len());
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), val as *mut u8, n);
                *len = n as socklen_t;
            }
            Ok(0)
        })())
    }

    pub unsafe extern "C" fn setsockopt(
        ud: *mut c_void,
        fd: c_int,
        level: c_int,
        name: c_int,
        val: *const c_void,
        len: socklen_t,
    ) -> c_int {
        ret_int(
            unsafe { slice(val, len as usize) }
                .and_then(|v| h(ud).setsockopt(fd, level, name, v).map(|_| 0)),
        )
    }

    pub unsafe extern "C" fn poll(
        ud: *mut c_void,
        fds: *mut pollfd,
        n: nfds_t,
        timeout: c_int,
    ) -> c_int {
        ret_int((|| {
            if n > 0 && fds.is_null() {
                return Err(libc::EFAULT);
            }
            let fds = if n == 0 {
                &mut [][..]
            } else {
                unsafe { std::slice::from_raw_parts_mut(fds, n as usize) }
            };
            h(ud).poll(fds, timeout)
        })())
    }

    pub unsafe extern "C" fn netdev_send(ud: *mut c_void, b: *const c_void, n: size_t) -> c_int {
        ret_int(unsafe { slice(b, n) }.map(|b| {
            h(ud).inject(b);
            0
        }))
    }

    pub unsafe extern "C" fn netdev_receive(
        ud: *mut c_void,
        b: *mut c_void,
        n: *mut size_t,
        t: *mut c_longlong,
    ) -> c_int {
        ret_int((|| {
            if n.is_null() || t.is_null() {
                return Err(libc::EFAULT);
            }
            let buf = unsafe { slice_mut(b, *n) }?;
            let (len, at) = h(ud).sniff(buf);
            unsafe {
                *n = len;
                *t = at as c_longlong;
            }
            Ok(0)
        })())
    }

    pub unsafe extern "C" fn usleep(ud: *mut c_void, us: useconds_t) -> c_int {
        h(ud).sleep(us as u64);
        0
    }

    pub unsafe extern "C" fn gettimeofday(
        ud: *mut c_void,
        tv: *mut timeval,
        _tz: *mut c_void,
    ) -> c_int {
        ret_int((|| {
            if tv.is_null() {
                return Err(libc::EFAULT);
            }
            let us = h(ud).time_of_day();
            unsafe {
                (*tv).tv_sec = (us / 1_000_000) as libc::time_t;
                (*tv).tv_usec = (us % 1_000_000) as libc::suseconds_t;
            }
            Ok(0)
        })())
    }

    pub unsafe extern "C" fn epoll_create(ud: *mut c_void, size: c_int) -> c_int {
        ret_int(if size <= 0 {
            Err(libc::EINVAL)
        } else {
            h(ud).epoll_create()
        })
    }

    pub unsafe extern "C" fn epoll_ctl(
        ud: *mut c_void,
        epfd: c_int,
        op: c_int,
        fd: c_int,
        ev: *mut epoll_event,
    ) -> c_int {
        let ev = if ev.is_null() {
            None
        } else {
            let e = unsafe { std::ptr::read_unaligned(ev) };
            Some((e.events, e.u64))
        };
        ret_int(h(ud).epoll_ctl(epfd, op, fd, ev).map(|_| 0))
    }

    pub unsafe extern "C" fn epoll_wait(
        ud: *mut c_void,
        epfd: c_int,
        evs: *mut epoll_event,
        max: c_int,
        timeout: c_int,
    ) -> c_int {
        ret_int((|| {
            if max <= 0 {
                return Err(libc::EINVAL);
            }
            if evs.is_null() {
                return Err(libc::EFAULT);
            }
            let ready = h(ud).epoll_wait(epfd, max as usize, timeout)?;
            for (i, (events, data)) in ready.iter().enumerate() {
                let e = epoll_event {
                    events: *events,
                    u64: *data,
                };
                unsafe { std::ptr::write_unaligned(evs.add(i), e) };
            }
            Ok(ready.len() as c_int)
        })())
    }

    /// Pipes are kernel objects; the stack has none to offer.
    pub unsafe extern "C" fn pipe(_ud: *mut c_void, _fds: *mut c_int) -> c_int {
        fail(libc::ENOSYS);
        -1
    }

    /// `splice` needs pipes; see [`pipe`].
    pub unsafe extern "C" fn splice(
        _ud: *mut c_void,
        _fd_in: c_int,
        _off_in: *mut loff_t,
        _fd_out: c_int,
        _off_out: *mut loff_t,
        _len: size_t,
        _flags: c_uint,
    ) -> ssize_t {
        fail(libc::ENOSYS);
        -1
    }
}
