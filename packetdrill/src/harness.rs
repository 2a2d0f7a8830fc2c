//! The stack behind the interface: one [`Interface`] on a virtual clock, a
//! file-descriptor table with BSD socket semantics, and the queue of
//! packets the stack has sent and packetdrill has not read yet.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::raw::{c_int, c_ulong};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use libc::pollfd;
use ustack::iface::{Config, Interface};
use ustack::phy::FrameBatch;
use ustack::socket::SocketHandle;
use ustack::tcp::{Keepalive, State, TcpConfig};
use ustack::time::Instant;

/// An IPv4 socket address.
pub type Addr = SocketAddr;

/// `gettimeofday` reads this many microseconds at the stack's epoch.
const EPOCH_MICROS: u64 = 1_000_000_000 * 1_000_000;
/// How far `netdev_receive` moves the clock looking for a packet.
const SNIFF_HORIZON: Duration = Duration::from_secs(4 * 3600);
/// Packets the stack may have queued for packetdrill before the oldest go.
const OUT_QUEUE_LIMIT: usize = 65_536;

/// BSD's `TCP_NOOPT` (no TCP options), which Linux and upstream
/// packetdrill do not know: scripts name it by this number
/// (`scripts/packetdrill-prep.py` rewrites the symbol). It is outside the
/// range of Linux's TCP option numbers so it cannot be mistaken for one.
pub const TCP_NOOPT: c_int = 0x7508;

/// Socket options a socket carries before it has a connection.
#[derive(Debug, Clone, Default)]
struct Opts {
    reuseaddr: bool,
    /// `SO_LINGER`: `Some(secs)` when on.
    linger: Option<u32>,
    nodelay: Option<bool>,
    rcvbuf: Option<usize>,
    sndbuf: Option<usize>,
    congestion: Option<String>,
    keepalive: bool,
    keepidle: Option<u32>,
    keepintvl: Option<u32>,
    keepcnt: Option<u32>,
    user_timeout_ms: Option<u32>,
    no_options: bool,
    /// Keep-alive settings used when `SO_KEEPALIVE` goes on (`--so_flags`
    /// keepidle_s/keepintvl_s/keepcnt, else the stack's defaults).
    ka_default: Keepalive,
}

impl Opts {
    fn apply(&self, c: &mut TcpConfig) {
        if let Some(v) = self.nodelay {
            c.nodelay = v;
        }
        if let Some(v) = self.rcvbuf {
            c.recv_buffer = v;
        }
        if let Some(v) = self.sndbuf {
            c.send_buffer = v;
        }
        if let Some(v) = &self.congestion {
            c.congestion = v.clone();
        }
        if self.keepalive {
            c.keepalive = Some(self.keepalive_settings());
        }
        if let Some(ms) = self.user_timeout_ms {
            c.user_timeout = (ms > 0).then(|| Duration::from_millis(ms as u64));
        }
        if self.no_options {
            c.no_options = true;
        }
    }

    fn keepalive_settings(&self) -> Keepalive {
        let d = self.ka_default;
        Keepalive {
            idle: self
                .keepidle
                .map_or(d.idle, |s| Duration::from_secs(s as u64)),
            interval: self
                .keepintvl
                .map_or(d.interval, |s| Duration::from_secs(s as u64)),
            count: self.keepcnt.unwrap_or(d.count),
        }
    }
}

#[derive(Debug)]
enum TcpSt {
    /// Not listening or connected yet.
    Fresh,
    Listen(SocketHandle),
    Conn(SocketHandle),
}

#[derive(Debug)]
struct TcpFd {
    st: TcpSt,
    bound: Option<Addr>,
    opts: Opts,
    /// AF_INET6.
    v6: bool,
}

#[derive(Debug)]
struct UdpFd {
    handle: Option<SocketHandle>,
    opts: Opts,
    /// AF_INET6.
    v6: bool,
}

#[derive(Debug, Default)]
struct EpollFd {
    /// fd → (events, data).
    interest: BTreeMap<c_int, (u32, u64)>,
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpFd),
    Udp(UdpFd),
    Epoll(EpollFd),
}

#[derive(Debug)]
struct Fd {
    kind: Kind,
    nonblocking: bool,
}

struct Inner {
    iface: Interface,
    now: Instant,
    out: VecDeque<(Vec<u8>, Instant)>,
    batch: FrameBatch,
    fds: BTreeMap<c_int, Fd>,
    out_dropped: u64,
    ka_default: Keepalive,
}

/// The stack and its descriptor table, shared by packetdrill's two threads.
pub struct Harness {
    inner: Mutex<Inner>,
    changed: Condvar,
}

fn errno(e: io::Error) -> c_int {
    if let Some(n) = e.raw_os_error() {
        return n;
    }
    use io::ErrorKind::*;
    match e.kind() {
        WouldBlock => libc::EAGAIN,
        ConnectionRefused => libc::ECONNREFUSED,
        ConnectionReset => libc::ECONNRESET,
        ConnectionAborted => libc::ECONNABORTED,
        TimedOut => libc::ETIMEDOUT,
        BrokenPipe => libc::EPIPE,
        NotConnected => libc::ENOTCONN,
        AddrInUse => libc::EADDRINUSE,
        AddrNotAvailable => libc::EADDRNOTAVAIL,
        InvalidInput => libc::EINVAL,
        Unsupported => libc::EOPNOTSUPP,
        NetworkUnreachable => libc::ENETUNREACH,
        HostUnreachable => libc::EHOSTUNREACH,
        NotFound => libc::EBADF,
        _ => libc::EIO,
    }
}

fn int_opt(v: &[u8]) -> Result<c_int, c_int> {
    if v.len() < 4 {
        return Err(libc::EINVAL);
    }
    Ok(c_int::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}

fn int_bytes(v: c_int) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// Linux's `TCP_*` state numbers (`tcpi_state`).
fn linux_state(s: State) -> u8 {
    match s {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}

impl Inner {
    /// Runs the stack at `now` until it has nothing more to send.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            self.batch.clear();
            let n = self.iface.poll_transmit(self.now, &mut self.batch);
            for f in self.batch.iter() {
                if self.out.len() >= OUT_QUEUE_LIMIT {
                    self.out.pop_front();
                    self.out_dropped += 1;
                }
                self.out.push_back((f.to_vec(), self.now));
            }
            if n == 0 {
                break;
            }
        }
        self.batch.clear();
    }

    /// Moves the clock to `to`, stopping at every deadline on the way.
    fn advance_to(&mut self, to: Instant) {
        self.pump();
        for _ in 0..1_000_000 {
            match self.iface.poll_at() {
                Some(d) if d > self.now && d <= to => {
                    self.now = d;
                    self.pump();
                }
                _ => break,
            }
        }
        if to > self.now {
            self.now = to;
            self.pump();
        }
    }

    fn alloc_fd(&mut self, kind: Kind, nonblocking: bool) -> c_int {
        let mut fd = 3;
        while self.fds.contains_key(&fd) {
            fd += 1;
        }
        self.fds.insert(fd, Fd { kind, nonblocking });
        fd
    }

    fn fd(&mut self, fd: c_int) -> Result<&mut Fd, c_int> {
        self.fds.get_mut(&fd).ok_or(libc::EBADF)
    }

    fn tcp(&mut self, fd: c_int) -> Result<&mut TcpFd, c_int> {
        match &mut self.fd(fd)?.kind {
            Kind::Tcp(t) => Ok(t),
            _ => Err(libc::ENOTSOCK),
        }
    }

    /// Runs `f` with the interface's TCP settings changed by `opts`, so the
    /// listener or connection it creates takes them.
    fn with_opts<T>(&mut self, opts: &Opts, f: impl FnOnce(&mut Interface) -> T) -> T {
        let saved = self.iface.tcp_config().clone();
        let mut c = saved.clone();
        opts.apply(&mut c);
        self.iface.set_tcp_config(c);
        let r = f(&mut self.iface);
        self.iface.set_tcp_config(saved);
        r
    }

    /// Whether `ip` is the unspecified address or one of the stack's.
    fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_unspecified()
            || match ip {
                IpAddr::V4(a) => self.iface.has_addr(a),
                IpAddr::V6(a) => self.iface.has_addr_v6(a),
            }
    }

    /// `poll` bits for one descriptor.
    fn readiness(&mut self, fd: c_int) -> i16 {
        let Some(f) = self.fds.get(&fd) else {
            return libc::POLLNVAL;
        };
        match &f.kind {
            Kind::Tcp(t) => match t.st {
                TcpSt::Fresh => libc::POLLOUT | libc::POLLHUP,
                TcpSt::Listen(h) => match self.iface.tcp_listener(h) {
                    Ok(l) if l.pending() > 0 => libc::POLLIN,
                    Ok(_) => 0,
                    Err(_) => libc::POLLNVAL,
                },
                TcpSt::Conn(h) => {
                    let Ok(t) = self.iface.tcp_socket(h) else {
                        return libc::POLLHUP | libc::POLLERR;
                    };
                    let st = t.state();
                    let mut r = 0;
                    if t.can_recv() && st != State::SynSent && st != State::SynReceived {
                        r |= libc::POLLIN | libc::POLLRDNORM;
                    }
                    if st == State::Closed {
                        r |= libc::POLLIN | libc::POLLOUT | libc::POLLHUP;
                    } else if st.is_synchronized() && t.can_send() {
                        r |= libc::POLLOUT | libc::POLLWRNORM;
                    }
                    if matches!(
                        st,
                        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
                    ) {
                        r |= libc::POLLRDHUP;
                    }
                    r
                }
            },
            Kind::Udp(u) => {
                let mut r = libc::POLLOUT | libc::POLLWRNORM;
                if let Some(h) = u.handle {
                    if self.iface.udp_peek_from(h, &mut []).is_ok() {
                        r |= libc::POLLIN | libc::POLLRDNORM;
                    }
                }
                r
            }
            Kind::Epoll(e) => {
                let fds: Vec<(c_int, u32)> = e.interest.iter().map(|(k, v)| (*k, v.0)).collect();
                let any = fds
                    .into_iter()
                    .any(|(fd, ev)| (self.readiness(fd) as u32 & (ev | ERR_HUP)) != 0);
                if any {
                    libc::POLLIN
                } else {
                    0
                }
            }
        }
    }

    fn udp_handle(&mut self, fd: c_int) -> Result<SocketHandle, c_int> {
        let Kind::Udp(u) = &mut self.fd(fd)?.kind else {
            return Err(libc::ENOTSOCK);
        };
        if let Some(h) = u.handle {
            return Ok(h);
        }
        let any = unspecified(u.v6);
        let h = self
            .iface
            .udp_bind(SocketAddr::new(any, 0))
            .map_err(errno)?;
        if let Kind::Udp(u) = &mut self.fd(fd)?.kind {
            u.handle = Some(h);
        }
        Ok(h)
    }
}

const ERR_HUP: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// The unspecified address of a family.
fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

impl Harness {
    /// A stack with `config`, its clock at zero.
    pub fn new(mut config: Config) -> Harness {
        // Keep-alive stays off until a socket asks for it; what the flags
        // put there are the settings it then gets.
        let ka_default = config.tcp.keepalive.take().unwrap_or_default();
        let now = Instant::ZERO;
        let iface = Interface::new(config, now);
        let batch = iface.new_tx_batch();
        let mut inner = Inner {
            iface,
            now,
            out: VecDeque::new(),
            batch,
            fds: BTreeMap::new(),
            out_dropped: 0,
            ka_default,
        };
        inner.pump();
        Harness {
            inner: Mutex::new(inner),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` once (non-blocking) or until it stops saying `EAGAIN`, or
    /// until the virtual `deadline` passes (then `EAGAIN`).
    fn block<T>(
        &self,
        nonblocking: bool,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut Inner) -> Result<T, c_int>,
    ) -> Result<T, c_int> {
        let mut g = self.lock();
        loop {
            let r = f(&mut g);
            let again = matches!(r, Err(libc::EAGAIN));
            if !again || nonblocking || deadline.is_some_and(|d| g.now >= d) {
                g.pump();
                drop(g);
                self.changed.notify_all();
                return r;
            }
            g = self.changed.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs `f` under the lock, then lets the stack send and wakes sleepers.
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T, c_int>) -> Result<T, c_int> {
        let mut g = self.lock();
        let r = f(&mut g);
        g.pump();
        drop(g);
        self.changed.notify_all();
        r
    }

    /// `socket(2)`.
    pub fn socket(&self, domain: c_int, ty: c_int, proto: c_int) -> Result<c_int, c_int> {
        if domain != libc::AF_INET && domain != libc::AF_INET6 {
            return Err(libc::EAFNOSUPPORT);
        }
        let v6 = domain == libc::AF_INET6;
        let nonblocking = ty & libc::SOCK_NONBLOCK != 0;
        let kind = match (ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC), proto) {
            (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => Kind::Tcp(TcpFd {
                st: TcpSt::Fresh,
                bound: None,
                opts: Opts::default(),
                v6,
            }),
            (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => Kind::Udp(UdpFd {
                handle: None,
                opts: Opts::default(),
                v6,
            }),
            (libc::SOCK_STREAM | libc::SOCK_DGRAM, _) => return Err(libc::EPROTONOSUPPORT),
            _ => return Err(libc::ESOCKTNOSUPPORT),
        };
        self.with(|g| {
            let mut kind = kind;
            match &mut kind {
                Kind::Tcp(t) => t.opts.ka_default = g.ka_default,
                Kind::Udp(u) => u.opts.ka_default = g.ka_default,
                Kind::Epoll(_) => {}
            }
            Ok(g.alloc_fd(kind, nonblocking))
        })
    }

    /// `bind(2)`.
    pub fn bind(&self, fd: c_int, a: Addr) -> Result<(), c_int> {
        self.with(|g| {
            if !g.is_local(a.ip()) {
                return Err(libc::EADDRNOTAVAIL);
            }
            match &mut g.fd(fd)?.kind {
                Kind::Tcp(t) => {
                    if t.bound.is_some() || !matches!(t.st, TcpSt::Fresh) {
                        return Err(libc::EINVAL);
                    }
                    t.bound = Some(a);
                    Ok(())
                }
                Kind::Udp(u) => {
                    if u.handle.is_some() {
                        return Err(libc::EINVAL);
                    }
                    let h = g.iface.udp_bind(a).map_err(errno)?;
                    if let Kind::Udp(u) = &mut g.fd(fd)?.kind {
                        u.handle = Some(h);
                    }
                    Ok(())
                }
                Kind::Epoll(_) => Err(libc::ENOTSOCK),
            }
        })
    }

    /// `listen(2)`: the accept queue holds `backlog + 1` connections, as on
    /// Linux.
    pub fn listen(&self, fd: c_int, backlog: c_int) -> Result<(), c_int> {
        self.with(|g| {
            let t = g.tcp(fd)?;
            match t.st {
                TcpSt::Fresh => {}
                TcpSt::Listen(_) => return Ok(()),
                TcpSt::Conn(_) => return Err(libc::EINVAL),
            }
            let local = t.bound.unwrap_or(SocketAddr::new(unspecified(t.v6), 0));
            let opts = t.opts.clone();
            let backlog = backlog.clamp(0, 65535) as usize + 1;
            let h = g
                .with_opts(&opts, |i| i.tcp_listen(local, backlog))
                .map_err(errno)?;
            let port = g.iface.tcp_listener(h).map_err(errno)?.local_addr().port();
            let t = g.tcp(fd)?;
            t.st = TcpSt::Listen(h);
            t.bound = Some(SocketAddr::new(local.ip(), port));
            Ok(())
        })
    }

    /// `accept(2)`: the new descriptor and the peer.
    pub fn accept(&self, fd: c_int) -> Result<(c_int, Addr), c_int> {
        let nb = self.lock().fd(fd)?.nonblocking;
        self.block(nb, None, |g| {
            let t = g.tcp(fd)?;
            let TcpSt::Listen(h) = t.st else {
                return Err(libc::EINVAL);
            };
            let opts = t.opts.clone();
            let v6 = t.v6;
            let (ch, peer) = g.iface.tcp_accept(h).map_err(errno)?;
            let nfd = g.alloc_fd(
                Kind::Tcp(TcpFd {
                    st: TcpSt::Conn(ch),
                    bound: None,
                    opts: Opts {
                        reuseaddr: false,
                        ..opts
                    },
                    v6,
                }),
                false,
            );
            Ok((nfd, peer))
        })
    }

    /// `connect(2)`: `EINPROGRESS` when non-blocking; blocking waits for
    /// the handshake's outcome.
    pub fn connect(&self, fd: c_int, remote: Addr) -> Result<(), c_int> {
        let mut g = self.lock();
        let nonblocking = g.fd(fd)?.nonblocking;
        if let Kind::Udp(_) = g.fd(fd)?.kind {
            let h = g.udp_handle(fd)?;
            let r = g.iface.udp_connect(h, remote).map_err(errno);
            drop(g);
            return r;
        }
        let t = g.tcp(fd)?;
        match t.st {
            TcpSt::Fresh => {}
            TcpSt::Listen(_) => return Err(libc::EINVAL),
            TcpSt::Conn(h) => {
                let s = g.iface.tcp_socket_mut(h).map_err(errno)?;
                return match s.state() {
                    State::SynSent | State::SynReceived => Err(libc::EALREADY),
                    State::Closed => Err(s.take_error().map_or(libc::ECONNABORTED, errno)),
                    _ => Err(libc::EISCONN),
                };
            }
        }
        let local = t.bound;
        let opts = t.opts.clone();
        let now = g.now;
        let h = g
            .with_opts(&opts, |i| i.tcp_connect(remote, local, now))
            .map_err(errno)?;
        g.tcp(fd)?.st = TcpSt::Conn(h);
        g.pump();
        drop(g);
        self.changed.notify_all();
        if nonblocking {
            return Err(libc::EINPROGRESS);
        }
        self.block(false, None, |g| {
            let s = g.iface.tcp_socket_mut(h).map_err(errno)?;
            match s.state() {
                State::SynSent | State::SynReceived => Err(libc::EAGAIN),
                State::Closed => Err(s.take_error().map_or(libc::ECONNREFUSED, errno)),
                _ => Ok(()),
            }
        })
    }

    /// `read`/`recv`/`recvfrom`: bytes read and, for UDP, the sender.
    pub fn recv(
        &self,
        fd: c_int,
        buf: &mut [u8],
        flags: c_int,
    ) -> Result<(usize, Option<Addr>), c_int> {
        let known = libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_WAITALL | libc::MSG_NOSIGNAL;
        if flags & !known != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        let peek = flags & libc::MSG_PEEK != 0;
        let mut g = self.lock();
        let f = g.fd(fd)?;
        let nb = f.nonblocking || flags & libc::MSG_DONTWAIT != 0;
        match &f.kind {
            Kind::Udp(_) => {
                let h = g.udp_handle(fd)?;
                drop(g);
                self.block(nb, None, |g| {
                    let r = if peek {
                        g.iface.udp_peek_from(h, buf)
                    } else {
                        g.iface.udp_recv_from(h, buf)
                    };
                    r.map(|(n, a)| (n, Some(a))).map_err(errno)
                })
            }
            Kind::Tcp(t) => {
                let TcpSt::Conn(h) = t.st else {
                    return Err(libc::ENOTCONN);
                };
                drop(g);
                let waitall = flags & libc::MSG_WAITALL != 0 && !peek && !nb;
                let mut got = 0;
                self.block(nb, None, |g| {
                    let r = if peek {
                        g.iface.tcp_peek(h, buf)
                    } else {
                        g.iface.tcp_recv(h, &mut buf[got..])
                    };
                    match r {
                        Ok(0) => Ok((got, None)),
                        Ok(n) => {
                            got += n;
                            if waitall && got < buf.len() {
                                Err(libc::EAGAIN)
                            } else {
                                Ok((got, None))
                            }
                        }
                        Err(e) if got > 0 && e.kind() != io::ErrorKind::WouldBlock => {
                            Ok((got, None))
                        }
                        Err(e) => Err(errno(e)),
                    }
                })
            }
            Kind::Epoll(_) => Err(libc::EINVAL),
        }
    }

    /// `write`/`send`/`sendto`: a blocking TCP send queues everything.
    pub fn send(
        &self,
        fd: c_int,
        data: &[u8],
        flags: c_int,
        to: Option<Addr>,
    ) -> Result<usize, c_int> {
        let known = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_MORE;
        if flags & !known != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        let mut g = self.lock();
        let f = g.fd(fd)?;
        let nb = f.nonblocking || flags & libc::MSG_DONTWAIT != 0;
        match &f.kind {
            Kind::Udp(_) => {
                let h = g.udp_handle(fd)?;
                drop(g);
                self.block(nb, None, |g| {
                    match to {
                        Some(a) => g.iface.udp_send_to(h, data, a),
                        None => g.iface.udp_send(h, data),
                    }
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::NotConnected => libc::EDESTADDRREQ,
                        _ => errno(e),
                    })
                })
            }
            Kind::Tcp(t) => {
                let h = match t.st {
                    TcpSt::Conn(h) => h,
                    _ => return Err(libc::EPIPE),
                };
                drop(g);
                let mut sent = 0;
                self.block(nb, None, |g| {
                    // Linux waits for the handshake before queueing.
                    let st = g.iface.tcp_socket(h).map_err(errno)?.state();
                    if matches!(st, State::SynSent | State::SynReceived) {
                        return Err(libc::EAGAIN);
                    }
                    loop {
                        if sent == data.len() {
                            return Ok(sent);
                        }
                        match g.iface.tcp_send(h, &data[sent..]) {
                            Ok(0) => return Err(libc::EAGAIN),
                            Ok(n) => sent += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                g.pump();
                                return if sent > 0 && nb {
                                    Ok(sent)
                                } else {
                                    Err(libc::EAGAIN)
                                };
                            }
                            Err(_) if sent > 0 => return Ok(sent),
                            Err(e) => return Err(errno(e)),
                        }
                    }
                })
            }
            Kind::Epoll(_) => Err(libc::EINVAL),
        }
    }

    /// `fcntl(2)`: `F_GETFL`/`F_SETFL` (`O_NONBLOCK`), `F_GETFD`/`F_SETFD`.
    pub fn fcntl(&self, fd: c_int, cmd: c_int, arg: c_ulong) -> Result<c_int, c_int> {
        self.with(|g| {
            let f = g.fd(fd)?;
            match cmd {
                libc::F_GETFL => {
                    Ok(libc::O_RDWR | if f.nonblocking { libc::O_NONBLOCK } else { 0 })
                }
                libc::F_SETFL => {
                    f.nonblocking = arg as c_int & libc::O_NONBLOCK != 0;
                    Ok(0)
                }
                libc::F_GETFD | libc::F_SETFD => Ok(0),
                _ => Err(libc::EINVAL),
            }
        })
    }

    /// `ioctl(FIONBIO)`.
    pub fn set_nonblocking(&self, fd: c_int, on: bool) -> Result<(), c_int> {
        self.with(|g| {
            g.fd(fd)?.nonblocking = on;
            Ok(())
        })
    }

    /// `ioctl(FIONREAD)` (`read`) or `ioctl(TIOCOUTQ)`.
    pub fn queued(&self, fd: c_int, read: bool) -> Result<usize, c_int> {
        self.with(|g| {
            let TcpSt::Conn(h) = g.tcp(fd)?.st else {
                return Err(libc::EINVAL);
            };
            let i = g.iface.tcp_info(h).map_err(errno)?;
            Ok(if read {
                i.recv_queue
            } else {
                i.send_queue + i.unacked
            })
        })
    }

    /// `close(2)`: a TCP connection finishes on its own (RST with linger 0
    /// or unread data, like Linux).
    pub fn close(&self, fd: c_int) -> Result<(), c_int> {
        self.with(|g| {
            let f = g.fds.remove(&fd).ok_or(libc::EBADF)?;
            for other in g.fds.values_mut() {
                if let Kind::Epoll(e) = &mut other.kind {
                    e.interest.remove(&fd);
                }
            }
            match f.kind {
                Kind::Tcp(TcpFd {
                    st: TcpSt::Conn(h),
                    opts,
                    ..
                }) => {
                    if opts.linger == Some(0) {
                        g.iface.tcp_abort(h).map_err(errno)
                    } else {
                        g.iface.tcp_close(h).map_err(errno)
                    }
                }
                Kind::Tcp(TcpFd {
                    st: TcpSt::Listen(h),
                    ..
                }) => g.iface.tcp_close(h).map_err(errno),
                Kind::Udp(UdpFd {
                    handle: Some(h), ..
                }) => g.iface.udp_close(h).map_err(errno),
                _ => Ok(()),
            }
        })
    }

    /// `shutdown(2)`.
    pub fn shutdown(&self, fd: c_int, how: c_int) -> Result<(), c_int> {
        let how = match how {
            libc::SHUT_RD => Shutdown::Read,
            libc::SHUT_WR => Shutdown::Write,
            libc::SHUT_RDWR => Shutdown::Both,
            _ => return Err(libc::EINVAL),
        };
        self.with(|g| {
            let TcpSt::Conn(h) = g.tcp(fd)?.st else {
                return Err(libc::ENOTCONN);
            };
            g.iface.tcp_shutdown(h, how).map_err(errno)
        })
    }

    /// `getsockopt(2)`: the option's bytes.
    pub fn getsockopt(&self, fd: c_int, level: c_int, name: c_int) -> Result<Vec<u8>, c_int> {
        self.with(|g| {
            let base = g.iface.tcp_config().clone();
            let f = g.fd(fd)?;
            let (opts, conn) = match &mut f.kind {
                Kind::Tcp(t) => (
                    t.opts.clone(),
                    match t.st {
                        TcpSt::Conn(h) => Some(h),
                        _ => None,
                    },
                ),
                Kind::Udp(u) => (u.opts.clone(), None),
                Kind::Epoll(_) => return Err(libc::ENOTSOCK),
            };
            let is_tcp = matches!(f.kind, Kind::Tcp(_));
            let mut cfg = base;
            opts.apply(&mut cfg);
            match (level, name) {
                (libc::SOL_SOCKET, libc::SO_ERROR) => {
                    let e = match conn {
                        Some(h) => g
                            .iface
                            .tcp_socket_mut(h)
                            .map_err(errno)?
                            .take_error()
                            .map_or(0, errno),
                        None => 0,
                    };
                    Ok(int_bytes(e))
                }
                (libc::SOL_SOCKET, libc::SO_TYPE) => Ok(int_bytes(if is_tcp {
                    libc::SOCK_STREAM
                } else {
                    libc::SOCK_DGRAM
                })),
                (libc::SOL_SOCKET, libc::SO_REUSEADDR) => Ok(int_bytes(opts.reuseaddr as c_int)),
                (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => Ok(int_bytes(opts.keepalive as c_int)),
                (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                    Ok(int_bytes(cfg.recv_buffer.min(c_int::MAX as usize) as c_int))
                }
                (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                    Ok(int_bytes(cfg.send_buffer.min(c_int::MAX as usize) as c_int))
                }
                (libc::SOL_SOCKET, libc::SO_LINGER) => {
                    let l = libc::linger {
                        l_onoff: opts.linger.is_some() as c_int,
                        l_linger: opts.linger.unwrap_or(0) as c_int,
                    };
                    let mut v = int_bytes(l.l_onoff);
                    v.extend_from_slice(&l.l_linger.to_ne_bytes());
                    Ok(v)
                }
                (libc::IPPROTO_TCP, _) if !is_tcp => Err(libc::EOPNOTSUPP),
                (libc::IPPROTO_TCP, libc::TCP_NODELAY) => Ok(int_bytes(match conn {
                    Some(h) => g.iface.tcp_socket(h).map_err(errno)?.config().nodelay as c_int,
                    None => cfg.nodelay as c_int,
                })),
                (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => Ok(int_bytes(match conn {
                    Some(h) => g.iface.tcp_info(h).map_err(errno)?.mss as c_int,
                    None => 536,
                })),
                (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
                    let name = match conn {
                        Some(h) => g.iface.tcp_info(h).map_err(errno)?.congestion.0.to_string(),
                        None => cfg.congestion.clone(),
                    };
                    let mut v = name.into_bytes();
                    v.resize(16, 0);
                    Ok(v)
                }
                (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => {
                    Ok(int_bytes(opts.keepalive_settings().idle.as_secs() as c_int))
                }
                (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => Ok(int_bytes(
                    opts.keepalive_settings().interval.as_secs() as c_int,
                )),
                (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => {
                    Ok(int_bytes(opts.keepalive_settings().count as c_int))
                }
                (libc::IPPROTO_TCP, libc::TCP_INFO) => {
                    let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
                    match conn {
                        Some(h) => {
                            let i = g.iface.tcp_info(h).map_err(errno)?;
                            let mss = i.mss.max(1);
                            ti.tcpi_state = i.state.map_or(7, linux_state);
                            ti.tcpi_options = (i.timestamps as u8)
                                | ((i.sack as u8) << 1)
                                | ((i.wscale.is_some() as u8) << 2);
                            if let Some((ours, theirs)) = i.wscale {
                                ti.tcpi_snd_rcv_wscale = (theirs & 0xf) | ((ours & 0xf) << 4);
                            }
                            ti.tcpi_rto = i.rto.as_micros() as u32;
                            ti.tcpi_snd_mss = i.mss as u32;
                            ti.tcpi_rcv_mss = i.mss as u32;
                            ti.tcpi_unacked = i.unacked.div_ceil(mss) as u32;
                            ti.tcpi_rtt = i.srtt.map_or(0, |d| d.as_micros() as u32);
                            ti.tcpi_rttvar = i.rttvar.as_micros() as u32;
                            ti.tcpi_snd_ssthresh = (i.ssthresh / mss).min(u32::MAX as usize) as u32;
                            ti.tcpi_snd_cwnd = (i.cwnd / mss).min(u32::MAX as usize) as u32;
                            ti.tcpi_advmss = i.mss as u32;
                            ti.tcpi_total_retrans = i.retransmits as u32;
                            ti.tcpi_retransmits = i.timeouts.min(255) as u8;
                        }
                        None => {
                            ti.tcpi_state = match f_state(g, fd) {
                                Some(true) => 10,
                                _ => 7,
                            }
                        }
                    }
                    let bytes = unsafe {
                        std::slice::from_raw_parts(
                            &ti as *const _ as *const u8,
                            std::mem::size_of::<libc::tcp_info>(),
                        )
                    };
                    Ok(bytes.to_vec())
                }
                (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                    Ok(int_bytes(opts.user_timeout_ms.unwrap_or(0) as c_int))
                }
                _ => Err(libc::ENOPROTOOPT),
            }
        })
    }

    /// `setsockopt(2)`.
    pub fn setsockopt(&self, fd: c_int, level: c_int, name: c_int, v: &[u8]) -> Result<(), c_int> {
        self.with(|g| {
            let now = g.now;
            let f = g.fd(fd)?;
            let (opts, conn, is_tcp) = match &mut f.kind {
                Kind::Tcp(t) => (
                    &mut t.opts,
                    match t.st {
                        TcpSt::Conn(h) => Some(h),
                        _ => None,
                    },
                    true,
                ),
                Kind::Udp(u) => (&mut u.opts, None, false),
                Kind::Epoll(_) => return Err(libc::ENOTSOCK),
            };
            // Options that only shape a connection yet to be made.
            let pre_connect = |conn: Option<SocketHandle>| match conn {
                Some(_) => Err(libc::EISCONN),
                None => Ok(()),
            };
            match (level, name) {
                (libc::SOL_SOCKET, libc::SO_REUSEADDR) => opts.reuseaddr = int_opt(v)? != 0,
                (libc::SOL_SOCKET, libc::SO_LINGER) => {
                    if v.len() < 8 {
                        return Err(libc::EINVAL);
                    }
                    let on = int_opt(&v[..4])? != 0;
                    let secs = int_opt(&v[4..8])?.max(0) as u32;
                    opts.linger = on.then_some(secs);
                }
                (libc::SOL_SOCKET, libc::SO_RCVBUF) if is_tcp => {
                    pre_connect(conn)?;
                    opts.rcvbuf = Some(int_opt(v)?.max(256) as usize);
                }
                (libc::SOL_SOCKET, libc::SO_SNDBUF) if is_tcp => {
                    pre_connect(conn)?;
                    opts.sndbuf = Some(int_opt(v)?.max(256) as usize);
                }
                (libc::SOL_SOCKET, libc::SO_KEEPALIVE) if is_tcp => {
                    opts.keepalive = int_opt(v)? != 0;
                    let ka = opts.keepalive.then(|| opts.keepalive_settings());
                    if let Some(h) = conn {
                        g.iface
                            .tcp_socket_mut(h)
                            .map_err(errno)?
                            .set_keepalive(ka, now);
                    }
                }
                (libc::IPPROTO_TCP, _) if !is_tcp => return Err(libc::EOPNOTSUPP),
                (libc::IPPROTO_TCP, libc::TCP_NODELAY) => {
                    let on = int_opt(v)? != 0;
                    opts.nodelay = Some(on);
                    if let Some(h) = conn {
                        g.iface.tcp_socket_mut(h).map_err(errno)?.set_nodelay(on);
                    }
                }
                (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
                    pre_connect(conn)?;
                    let name = String::from_utf8_lossy(v)
                        .trim_end_matches('\0')
                        .to_string();
                    match name.as_str() {
                        "reno" | "cubic" => opts.congestion = Some(name),
                        _ => return Err(libc::ENOENT),
                    }
                }
                (
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL | libc::TCP_KEEPCNT,
                ) => {
                    let n = int_opt(v)?;
                    if n < 1 {
                        return Err(libc::EINVAL);
                    }
                    match name {
                        libc::TCP_KEEPIDLE => opts.keepidle = Some(n as u32),
                        libc::TCP_KEEPINTVL => opts.keepintvl = Some(n as u32),
                        _ => opts.keepcnt = Some(n as u32),
                    }
                    if let (Some(h), true) = (conn, opts.keepalive) {
                        let ka = opts.keepalive_settings();
                        g.iface
                            .tcp_socket_mut(h)
                            .map_err(errno)?
                            .set_keepalive(Some(ka), now);
                    }
                }
                (libc::IPPROTO_TCP, TCP_NOOPT) => {
                    pre_connect(conn)?;
                    opts.no_options = int_opt(v)? != 0;
                }
                (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                    pre_connect(conn)?;
                    opts.user_timeout_ms = Some(int_opt(v)?.max(0) as u32);
                }
                // TCP_MAXSEG and the rest have no per-socket setting in the
                // stack yet: refuse rather than pretend.
                _ => return Err(libc::ENOPROTOOPT),
            }
            Ok(())
        })
    }

    /// `poll(2)` on the stack's descriptors.
    pub fn poll(&self, fds: &mut [pollfd], timeout_ms: c_int) -> Result<c_int, c_int> {
        let deadline = {
            let g = self.lock();
            (timeout_ms >= 0).then(|| g.now + Duration::from_millis(timeout_ms as u64))
        };
        let r = self.block(false, deadline, |g| {
            let mut n = 0;
            for p in fds.iter_mut() {
                let r = if p.fd < 0 { 0 } else { g.readiness(p.fd) };
                let mask = p.events | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
                p.revents = r & mask;
                if p.revents != 0 {
                    n += 1;
                }
            }
            if n > 0 || timeout_ms == 0 {
                Ok(n)
            } else {
                Err(libc::EAGAIN)
            }
        });
        match r {
            Err(libc::EAGAIN) => Ok(0),
            r => r,
        }
    }

    /// `epoll_create(2)`.
    pub fn epoll_create(&self) -> Result<c_int, c_int> {
        self.with(|g| Ok(g.alloc_fd(Kind::Epoll(EpollFd::default()), false)))
    }

    /// `epoll_ctl(2)`: level-triggered only (`EPOLLET` and `EPOLLONESHOT`
    /// are refused with `EINVAL`).
    pub fn epoll_ctl(
        &self,
        epfd: c_int,
        op: c_int,
        fd: c_int,
        ev: Option<(u32, u64)>,
    ) -> Result<(), c_int> {
        self.with(|g| {
            if epfd == fd {
                return Err(libc::EINVAL);
            }
            g.fd(fd)?;
            let Kind::Epoll(e) = &mut g.fd(epfd)?.kind else {
                return Err(libc::EINVAL);
            };
            let unsupported = (libc::EPOLLET | libc::EPOLLONESHOT | libc::EPOLLEXCLUSIVE) as u32;
            match op {
                libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD => {
                    let (events, data) = ev.ok_or(libc::EFAULT)?;
                    if events & unsupported != 0 {
                        return Err(libc::EINVAL);
                    }
                    let exists = e.interest.contains_key(&fd);
                    if op == libc::EPOLL_CTL_ADD && exists {
                        return Err(libc::EEXIST);
                    }
                    if op == libc::EPOLL_CTL_MOD && !exists {
                        return Err(libc::ENOENT);
                    }
                    e.interest.insert(fd, (events, data));
                    Ok(())
                }
                libc::EPOLL_CTL_DEL => e.interest.remove(&fd).map(|_| ()).ok_or(libc::ENOENT),
                _ => Err(libc::EINVAL),
            }
        })
    }

    /// `epoll_wait(2)`: up to `max` ready (events, data) pairs.
    pub fn epoll_wait(
        &self,
        epfd: c_int,
        max: usize,
        timeout_ms: c_int,
    ) -> Result<Vec<(u32, u64)>, c_int> {
        let deadline = {
            let g = self.lock();
            (timeout_ms >= 0).then(|| g.now + Duration::from_millis(timeout_ms as u64))
        };
        let r = self.block(false, deadline, |g| {
            let Kind::Epoll(e) = &g.fd(epfd)?.kind else {
                return Err(libc::EINVAL);
            };
            let interest: Vec<(c_int, u32, u64)> =
                e.interest.iter().map(|(k, v)| (*k, v.0, v.1)).collect();
            let mut out = Vec::new();
            for (fd, events, data) in interest {
                // poll and epoll share bit values for IN/OUT/ERR/HUP/RDHUP.
                let r = g.readiness(fd) as u16 as u32 & (events | ERR_HUP);
                if r != 0 && out.len() < max {
                    out.push((r, data));
                }
            }
            if out.is_empty() && timeout_ms != 0 {
                Err(libc::EAGAIN)
            } else {
                Ok(out)
            }
        });
        match r {
            Err(libc::EAGAIN) => Ok(Vec::new()),
            r => r,
        }
    }

    /// A datagram from packetdrill into the stack.
    pub fn inject(&self, packet: &[u8]) {
        let mut g = self.lock();
        let now = g.now;
        if std::env::var_os("USTACK_PD_DEBUG").is_some() {
            eprintln!("ustack-packetdrill: in {packet:02x?}");
        }
        g.iface.handle_frame(now, packet);
        g.pump();
        drop(g);
        self.changed.notify_all();
    }

    /// The next datagram out of the stack and when it left (microseconds
    /// on packetdrill's clock). With nothing queued the clock runs to the
    /// stack's next deadline, and again, up to four hours on; when nothing
    /// comes out by then the length is 0, which packetdrill reports as an
    /// unparsable packet: the script expected one the stack never sent.
    pub fn sniff(&self, buf: &mut [u8]) -> (usize, u64) {
        let mut g = self.lock();
        let limit = g.now + SNIFF_HORIZON;
        let mut moved = false;
        let r = loop {
            if let Some((p, at)) = g.out.pop_front() {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                break (n, EPOCH_MICROS + at.total_micros());
            }
            match g.iface.poll_at() {
                Some(d) if d > g.now && d <= limit => {
                    g.advance_to(d);
                    moved = true;
                }
                _ => {
                    eprintln!(
                        "ustack-packetdrill: no packet left the stack and no timer is due within {} s",
                        SNIFF_HORIZON.as_secs()
                    );
                    if std::env::var_os("USTACK_PD_DEBUG").is_some() {
                        eprintln!("{:#?}\n{:#?}", g.iface.counters(), g.iface.tcp_counters());
                    }
                    break (0, EPOCH_MICROS + g.now.total_micros());
                }
            }
        };
        drop(g);
        if moved {
            self.changed.notify_all();
        }
        r
    }

    /// `usleep`: the clock moves on, timers fire on the way.
    pub fn sleep(&self, micros: u64) {
        let mut g = self.lock();
        let to = g.now + Duration::from_micros(micros);
        g.advance_to(to);
        drop(g);
        self.changed.notify_all();
    }

    /// `gettimeofday` in microseconds. Each reading moves the clock by one
    /// microsecond, so that packetdrill's spin-waits make progress.
    pub fn time_of_day(&self) -> u64 {
        let mut g = self.lock();
        let to = g.now + Duration::from_micros(1);
        g.advance_to(to);
        let t = EPOCH_MICROS + g.now.total_micros();
        drop(g);
        self.changed.notify_all();
        t
    }

    /// Packets the stack sent that were dropped because packetdrill did not
    /// read them (the queue holds 65,536).
    pub fn dropped_out(&self) -> u64 {
        self.lock().out_dropped
    }
}

fn f_state(g: &mut Inner, fd: c_int) -> Option<bool> {
    match &g.fds.get(&fd)?.kind {
        Kind::Tcp(t) => Some(matches!(t.st, TcpSt::Listen(_))),
        _ => None,
    }
}
