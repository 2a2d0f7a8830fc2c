//! The raw TUN packet rate, one frame per system call (the ceiling of a
//! stack that reads and writes one frame at a time): run inside a network
//! namespace of your own (it creates the TUN device there).
//!
//! `tun_rate TUN-NAME SECS`
//!
//! * write: 1500-byte IPv4/UDP frames written to the TUN, addressed to the
//!   kernel's own address on an unbound port (the kernel runs its receive
//!   path inside `write()` and drops them; its ICMP answers are rate-limited);
//! * read: a thread sends 1472-byte UDP datagrams from a kernel socket to an
//!   address routed into the TUN while the main thread reads the frames.
//!
//! The kernel side gets 10.99.0.1/24 and the "stack" side is 10.99.0.2, set
//! up with `ip` by this program (inside the namespace it runs in). Prints
//! `write_fps=… read_fps=…` (frames per second) and the Gbit/s equivalents.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::fd::FromRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open_tun(name: &str) -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap_or_else(|e| {
            eprintln!("tun_rate: /dev/net/tun: {e}");
            std::process::exit(1)
        });
    #[repr(C)]
    struct Ifreq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut req = Ifreq {
        name: [0; 16],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
    use std::os::fd::AsRawFd;
    // SAFETY: TUNSETIFF with a properly sized ifreq on our descriptor.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), 0x400454ca, &mut req) };
    if r < 0 {
        eprintln!("tun_rate: TUNSETIFF: {}", std::io::Error::last_os_error());
        std::process::exit(1)
    }
    f
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("tun_rate: ip {} failed", args.join(" "));
        std::process::exit(1)
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("ustk0");
    let secs: f64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0f64)
        .clamp(0.1, 30.0);
    let mut tun = open_tun(name);
    ip(&["addr", "add", "10.99.0.1/24", "dev", name]);
    ip(&["link", "set", name, "up", "txqueuelen", "4096"]);

    // Write: 1500-byte IPv4/UDP to 10.99.0.1:9 (nothing listens), UDP
    // checksum 0 (none).
    let mut f = vec![0u8; 1500];
    f[0] = 0x45;
    f[2..4].copy_from_slice(&1500u16.to_be_bytes());
    f[6] = 0x40;
    f[8] = 64;
    f[9] = 17;
    f[12..16].copy_from_slice(&[10, 99, 0, 2]);
    f[16..20].copy_from_slice(&[10, 99, 0, 1]);
    let c = checksum(&f[..20]);
    f[10..12].copy_from_slice(&c.to_be_bytes());
    f[20..22].copy_from_slice(&4000u16.to_be_bytes());
    f[22..24].copy_from_slice(&9u16.to_be_bytes());
    f[24..26].copy_from_slice(&1480u16.to_be_bytes());
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut wrote = 0u64;
    let mut werr = 0u64;
    while Instant::now() < end {
        for _ in 0..64 {
            match tun.write(&f) {
                Ok(n) if n == f.len() => wrote += 1,
                _ => werr += 1,
            }
        }
    }
    let wel = t0.elapsed().as_secs_f64();

    // Read: a kernel UDP socket sends into the TUN from another thread.
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let sender = std::thread::spawn(move || {
        let s = UdpSocket::bind("10.99.0.1:0").expect("bind");
        s.connect("10.99.0.2:9").expect("connect");
        let p = vec![0u8; 1472];
        let mut n = 0u64;
        while !st.load(Ordering::Relaxed) {
            if s.send(&p).is_ok() {
                n += 1;
            }
        }
        n
    });
    // Non-blocking reads would spin; a blocking read with the sender
    // stopping by time is bounded because the sender stops at `end` and
    // the final read is woken by one more datagram.
    let mut buf = vec![0u8; 2048];
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs_f64(secs);
    let mut read = 0u64;
    let mut t1 = None;
    let fd = {
        use std::os::fd::AsRawFd;
        tun.as_raw_fd()
    };
    // SAFETY: fd stays open for the whole function (tun is alive).
    let mut rd = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if t1.is_none() && now >= start {
            t1 = Some(now);
            read = 0;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 100) } <= 0 {
            continue;
        }
        if let Ok(n) = rd.read(&mut buf) {
            if n >= 1500 {
                read += 1;
            }
        }
    }
    let rel = t1.map_or(1.0, |t| t.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap_or(0);
    let wfps = wrote as f64 / wel;
    let rfps = read as f64 / rel;
    println!(
        "write_fps={wfps:.0} read_fps={rfps:.0} write_gbit={:.2} read_gbit={:.2} write_errors={werr} sent_by_kernel={sent}",
        wfps * 1500.0 * 8.0 / 1e9,
        rfps * 1500.0 * 8.0 / 1e9
    );
}
