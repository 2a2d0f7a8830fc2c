//! Compiled UDP benchmark peers for `scripts/bench.sh udp`, so neither side
//! of the measurement is an interpreter:
//!
//! * `udp_bench echo ADDR:PORT SECONDS` — a kernel-socket echo server (the
//!   Linux reference), exits after SECONDS;
//! * `udp_bench client HOST:PORT SIZE WINDOW SECONDS` — keeps WINDOW
//!   datagrams of SIZE bytes in flight against an echo server for SECONDS
//!   (after 0.5 s of warm-up) and prints
//!   `rate=N lost=N bad=N` (datagrams per second echoed, lost, wrong size).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("echo") if a.len() == 4 => echo(&a[2], a[3].parse().expect("SECONDS")),
        Some("client") if a.len() == 6 => client(
            &a[2],
            a[3].parse().expect("SIZE"),
            a[4].parse().expect("WINDOW"),
            a[5].parse().expect("SECONDS"),
        ),
        _ => {
            eprintln!(
                "usage: udp_bench echo ADDR:PORT SECONDS | client HOST:PORT SIZE WINDOW SECONDS"
            );
            std::process::exit(2);
        }
    }
}

fn echo(addr: &str, secs: f64) {
    let s = UdpSocket::bind(addr).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    }
}

fn client(target: &str, size: usize, window: usize, secs: f64) {
    let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
    s.connect(target).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let msg = vec![0x5au8; size];
    let mut buf = vec![0u8; 65536];
    let warm = Instant::now() + Duration::from_millis(500);
    let end = warm + Duration::from_secs_f64(secs);
    let (mut echoed, mut sent, mut bad, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let mut in_flight = 0usize;
    let mut measuring = false;
    loop {
        let now = Instant::now();
        if !measuring && now >= warm {
            measuring = true;
            echoed = 0;
            sent = 0;
            bad = 0;
            lost = 0;
        }
        if now >= end {
            break;
        }
        while in_flight < window {
            if s.send(&msg).is_err() {
                break;
            }
            in_flight += 1;
            sent += 1;
        }
        match s.recv(&mut buf) {
            Ok(n) => {
                in_flight -= 1;
                if n == size {
                    echoed += 1;
                } else {
                    bad += 1;
                }
            }
            Err(_) => {
                // Nothing for 200 ms: what is in flight is lost.
                lost += in_flight as u64;
                in_flight = 0;
            }
        }
    }
    let _ = sent;
    println!(
        "rate={} lost={} bad={}",
        (echoed as f64 / secs) as u64,
        lost,
        bad
    );
}
