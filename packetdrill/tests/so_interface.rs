//! Loads `libustack_packetdrill.so` the way packetdrill does (`dlopen`,
//! `packetdrill_interface_init`) and drives a passive open, data both ways,
//! a retransmission on the virtual clock, an active close, an active open
//! and a reset from a closed port through the function table.

use std::ffi::CString;
use std::mem::size_of;
use std::os::raw::{c_int, c_longlong, c_void};
use std::path::PathBuf;

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use ustack_packetdrill::{InitFn, PacketdrillInterface};

const US: [u8; 4] = [192, 168, 0, 2];
const PEER: [u8; 4] = [192, 0, 2, 1];

fn so_path() -> PathBuf {
    // The test binary lives in target/<profile>/deps; cargo puts the
    // cdylib beside it and one level up.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        let p = dir.join("libustack_packetdrill.so");
        if p.exists() {
            return p;
        }
    }
    panic!("libustack_packetdrill.so not found near {}", exe.display());
}

struct Seg {
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    seq: u32,
    ack_no: u32,
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
    time: i64,
}

struct Pd {
    _lib: libloading::Library,
    ifc: PacketdrillInterface,
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

impl Pd {
    fn new(flags: &str) -> Pd {
        let lib = unsafe { libloading::Library::new(so_path()) }.unwrap();
        let init: InitFn = *unsafe { lib.get::<InitFn>(b"packetdrill_interface_init") }.unwrap();
        let mut ifc = std::mem::MaybeUninit::<PacketdrillInterface>::zeroed();
        let flags = CString::new(flags).unwrap();
        unsafe { init(flags.as_ptr(), ifc.as_mut_ptr()) };
        let ifc = unsafe { ifc.assume_init() };
        Pd { _lib: lib, ifc }
    }

    fn ud(&self) -> *mut c_void {
        self.ifc.userdata
    }

    fn sin(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
        let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        s.sin_family = libc::AF_INET as _;
        s.sin_port = port.to_be();
        s.sin_addr.s_addr = u32::from_be_bytes(ip).to_be();
        s
    }

    fn send_tcp(
        &self,
        sport: u16,
        dport: u16,
        seq: u32,
        ack: Option<u32>,
        flags: &str,
        data: &[u8],
    ) {
        let mut b = PacketBuilder::ipv4(PEER, US, 64).tcp(sport, dport, seq, 65535);
        if let Some(a) = ack {
            b = b.ack(a);
        }
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'F' => b.fin(),
                'P' => b.psh(),
                'R' => b.rst(),
                _ => panic!("flag {f}"),
            };
        }
        let mut buf = Vec::new();
        b.write(&mut buf, data).unwrap();
        let r = unsafe { (self.ifc.netdev_send)(self.ud(), buf.as_ptr().cast(), buf.len()) };
        assert_eq!(r, 0);
    }

    fn recv_tcp(&self) -> Seg {
        let mut buf = vec![0u8; 70_000];
        let mut n = buf.len();
        let mut t: c_longlong = 0;
        let r = unsafe {
            (self.ifc.netdev_receive)(self.ud(), buf.as_mut_ptr().cast(), &mut n, &mut t)
        };
        assert_eq!(r, 0);
        assert!(n > 0, "the stack sent nothing");
        let p = SlicedPacket::from_ip(&buf[..n]).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("not TCP")
        };
        Seg {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            seq: tcp.sequence_number(),
            ack_no: tcp.acknowledgment_number(),
            sport: tcp.source_port(),
            dport: tcp.destination_port(),
            payload: tcp.payload().to_vec(),
            time: t,
        }
    }

    fn now(&self) -> i64 {
        let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { (self.ifc.gettimeofday)(self.ud(), &mut tv, std::ptr::null_mut()) },
            0
        );
        tv.tv_sec * 1_000_000 + tv.tv_usec
    }
}

impl Drop for Pd {
    fn drop(&mut self) {
        unsafe { (self.ifc.free)(self.ifc.userdata) };
    }
}

#[test]
fn passive_open_data_retransmission_and_close() {
    let pd = Pd::new("rcvbuf=65536 sndbuf=32768 min_rto_ms=200");
    let ud = pd.ud();
    let f = &pd.ifc;
    let fd = unsafe { (f.socket)(ud, libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_TCP) };
    assert_eq!(fd, 3);
    let a = Pd::sin([0, 0, 0, 0], 8080);
    assert_eq!(
        unsafe {
            (f.bind)(
                ud,
                fd,
                (&a as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            )
        },
        0
    );
    assert_eq!(unsafe { (f.listen)(ud, fd, 1) }, 0);
    // A non-blocking accept with nothing queued says EAGAIN.
    assert_eq!(
        unsafe { (f.fcntl)(ud, fd, libc::F_SETFL, libc::O_NONBLOCK as _) },
        0
    );
    let r = unsafe { (f.accept)(ud, fd, std::ptr::null_mut(), std::ptr::null_mut()) };
    assert_eq!((r, errno()), (-1, libc::EAGAIN));

    let t0 = pd.now();
    pd.send_tcp(40000, 8080, 1000, None, "S", &[]);
    let synack = pd.recv_tcp();
    assert!(
        synack.syn && synack.ack && synack.ack_no == 1001,
        "SYN-ACK expected"
    );
    assert!((synack.time - t0).abs() < 1000, "SYN-ACK at once");
    let iss = synack.seq;
    pd.send_tcp(40000, 8080, 1001, Some(iss + 1), "", &[]);

    let mut peer: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_in>() as u32;
    let cfd = unsafe {
        (f.accept)(
            ud,
            fd,
            (&mut peer as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    };
    assert_eq!(cfd, 4);
    assert_eq!(u16::from_be(peer.sin_port), 40000);
    assert_eq!(u32::from_be(peer.sin_addr.s_addr).to_be_bytes(), PEER);

    // Data in.
    pd.send_tcp(40000, 8080, 1001, Some(iss + 1), "P", b"hello");
    let mut buf = [0u8; 16];
    let n = unsafe { (f.read)(ud, cfd, buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(&buf[..n as usize], b"hello");

    // Data out, unacknowledged: the retransmission comes one RTO later
    // on the virtual clock, with the same bytes.
    let n = unsafe { (f.write)(ud, cfd, b"world".as_ptr().cast(), 5) };
    assert_eq!(n, 5);
    let d1 = pd.recv_tcp();
    assert_eq!(
        (d1.payload.as_slice(), d1.seq, d1.ack_no),
        (&b"world"[..], iss + 1, 1006)
    );
    let d2 = pd.recv_tcp();
    assert_eq!(d2.payload, b"world", "a retransmission");
    let gap = d2.time - d1.time;
    assert!((200_000..=1_100_000).contains(&gap), "RTO {gap} us");
    pd.send_tcp(40000, 8080, 1006, Some(iss + 6), "", &[]);

    // Active close: FIN, the peer's FIN, our last ACK.
    assert_eq!(unsafe { (f.close)(ud, cfd) }, 0);
    let fin = pd.recv_tcp();
    assert!(fin.fin && fin.seq == iss + 6);
    pd.send_tcp(40000, 8080, 1006, Some(iss + 7), "F", &[]);
    let last = pd.recv_tcp();
    assert!(last.ack && !last.fin && last.ack_no == 1007);

    // A descriptor that is gone.
    assert_eq!((unsafe { (f.close)(ud, cfd) }, errno()), (-1, libc::EBADF));
    assert_eq!(unsafe { (f.close)(ud, fd) }, 0);
}

#[test]
fn active_open_nonblocking_and_reset_from_closed_port() {
    let pd = Pd::new("");
    let ud = pd.ud();
    let f = &pd.ifc;
    let fd = unsafe {
        (f.socket)(
            ud,
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
            0,
        )
    };
    assert!(fd >= 3);
    let to = Pd::sin(PEER, 8080);
    let r = unsafe {
        (f.connect)(
            ud,
            fd,
            (&to as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!((r, errno()), (-1, libc::EINPROGRESS));
    let syn = pd.recv_tcp();
    assert!(syn.syn && !syn.ack && syn.dport == 8080);
    // Not writable yet.
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    assert_eq!(unsafe { (f.poll)(ud, &mut p, 1, 0) }, 0);
    pd.send_tcp(8080, syn.sport, 5000, Some(syn.seq + 1), "S", &[]);
    let ack = pd.recv_tcp();
    assert!(ack.ack && !ack.syn && ack.ack_no == 5001);
    assert_eq!(unsafe { (f.poll)(ud, &mut p, 1, 0) }, 1);
    assert!(p.revents & libc::POLLOUT != 0);
    let mut err: c_int = -1;
    let mut len = 4u32;
    assert_eq!(
        unsafe {
            (f.getsockopt)(
                ud,
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut c_int).cast(),
                &mut len,
            )
        },
        0
    );
    assert_eq!(err, 0);
    // The peer resets: reads say ECONNRESET.
    pd.send_tcp(8080, syn.sport, 5001, None, "R", &[]);
    let mut buf = [0u8; 4];
    let r = unsafe { (f.read)(ud, fd, buf.as_mut_ptr().cast(), 4) };
    assert_eq!((r, errno()), (-1, libc::ECONNRESET));

    // A SYN to a port nobody listens on gets RST|ACK.
    pd.send_tcp(40001, 9, 77, None, "S", &[]);
    let rst = pd.recv_tcp();
    assert!(rst.rst && rst.ack && rst.ack_no == 78);
}

#[test]
fn unsupported_calls_fail_cleanly() {
    let pd = Pd::new("");
    let ud = pd.ud();
    let f = &pd.ifc;
    // IPv6 sockets exist; other families do not.
    assert!(unsafe { (f.socket)(ud, libc::AF_INET6, libc::SOCK_STREAM, 0) } >= 0);
    assert_eq!(
        (
            unsafe { (f.socket)(ud, libc::AF_UNIX, libc::SOCK_STREAM, 0) },
            errno()
        ),
        (-1, libc::EAFNOSUPPORT)
    );
    let mut fds = [0; 2];
    assert_eq!(
        (unsafe { (f.pipe)(ud, fds.as_mut_ptr()) }, errno()),
        (-1, libc::ENOSYS)
    );
    let fd = unsafe { (f.socket)(ud, libc::AF_INET, libc::SOCK_STREAM, 0) };
    let v: c_int = 1000;
    let r = unsafe {
        (f.setsockopt)(
            ud,
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&v as *const c_int).cast(),
            4,
        )
    };
    assert_eq!((r, errno()), (-1, libc::ENOPROTOOPT));
    // Nothing to send and no timer: an empty packet, not a hang.
    let mut buf = [0u8; 100];
    let mut n = buf.len();
    let mut t = 0;
    assert_eq!(
        unsafe { (f.netdev_receive)(ud, buf.as_mut_ptr().cast(), &mut n, &mut t) },
        0
    );
    assert_eq!(n, 0);
}
