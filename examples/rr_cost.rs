//! The cost of a transaction, counted rather than timed: N 1-byte
//! requests and answers between two interfaces over the pipe device, one
//! thread, a virtual clock (5 µs a loop), Nagle off. The work is fixed, so
//! an instruction count is repeatable run to run and comparable between two
//! versions of the code, where wall-clock figures on a shared machine move
//! ±30 %:
//!
//! `valgrind --tool=callgrind target/release/examples/rr_cost 20000 [offload]`
//!
//! (instructions divided by 20,000 = instructions per transaction: the
//! request's and the answer's segments, their ACKs, both applications'
//! calls). `offload`: the pipe offers TSO and checksum offload, as a TUN
//! with the virtio-net header does.
use std::net::SocketAddr;
use ustack::iface::{Config, Interface};
use ustack::phy::{Medium, PipeDevice, PipeOptions};
use ustack::runtime::Driver;
use ustack::time::Instant;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20000);
    let offload = std::env::args().nth(2).as_deref() == Some("offload");
    let mut opts = PipeOptions::new(Medium::Ip, 1500);
    opts.offload = offload;
    let (da, db) = PipeDevice::pair_with(opts).expect("pipe");
    let caps = ustack::phy::Device::caps(&da).offload;
    let mut now = Instant::from_secs(1);
    let host = |addr: &str| {
        let mut c = Config::new(Medium::Ip);
        c.addrs.push(addr.parse().unwrap());
        c.offload = caps;
        c.tcp.nodelay = true;
        Interface::new(c, Instant::from_secs(1))
    };
    let (mut a, mut b) = (host("10.0.0.1/24"), host("10.0.0.2/24"));
    let (mut drv_a, mut drv_b) = (Driver::new(da, &a), Driver::new(db, &b));
    let l = b
        .tcp_listen("10.0.0.2:7".parse::<SocketAddr>().unwrap(), 16)
        .unwrap();
    let c = a
        .tcp_connect("10.0.0.2:7".parse().unwrap(), None, now)
        .unwrap();
    let mut server = None;
    let mut buf = [0u8; 64];
    let (mut done, mut outstanding, mut loops) = (0u64, false, 0u64);
    while done < n && loops < n * 1000 {
        loops += 1;
        now = Instant::from_micros(now.total_micros() + 5);
        let _ = drv_a.poll(&mut a, now);
        let _ = drv_b.poll(&mut b, now);
        if server.is_none() {
            server = b.tcp_accept(l).ok().map(|(h, _)| h);
            continue;
        }
        let s = server.unwrap();
        if !outstanding && a.tcp_send(c, b"x").is_ok_and(|k| k == 1) {
            outstanding = true;
        }
        if let Ok(k) = b.tcp_recv(s, &mut buf) {
            if k > 0 {
                let _ = b.tcp_send(s, &buf[..k]);
            }
        }
        if let Ok(k) = a.tcp_recv(c, &mut buf) {
            if k > 0 {
                done += 1;
                outstanding = false;
            }
        }
    }
    println!(
        "transactions={done} loops={loops} retrans={}",
        a.tcp_counters().retrans_segs
    );
}
