//! Hot paths of the core: checksum, segment parse and build, the cost of one
//! TCP segment (an ACK) arriving with 10 versus 10,000 established
//! connections (it must not grow: demultiplexing is a hash lookup, timers
//! live in a heap), out-of-order reassembly with holes, and timer work (a
//! poll with 10,000 idle connections and nothing due).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ustack::iface::{Config, Interface, Ipv4Cidr};
use ustack::phy::{FrameBatch, Medium};
use ustack::sim::{LinkConfig, Sim};
use ustack::tcp::buffer::{BufferPool, ReceiveBuffer};
use ustack::time::{Duration, Instant};
use ustack::wire::{checksum, ipv4, tcp};

fn host(addr: &str) -> Interface {
    let mut c = Config::new(Medium::Ip);
    c.addrs
        .push(format!("{addr}/24").parse::<Ipv4Cidr>().unwrap());
    c.tcp.recv_buffer = 64 * 1024;
    c.tcp.send_buffer = 64 * 1024;
    Interface::new(c, Instant::ZERO)
}

/// B with `n` established connections from A; returns B and a pure ACK
/// frame for one of them (acceptable every time it is fed).
fn setup(n: usize) -> (Interface, Vec<u8>, Instant) {
    let mut s = Sim::new(
        host("10.0.0.1"),
        host("10.0.0.2"),
        LinkConfig::default(),
        LinkConfig::default(),
        1,
    );
    let l =
        s.b.tcp_listen("0.0.0.0:80".parse().unwrap(), n + 16)
            .unwrap();
    let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let mut clients = Vec::new();
    let mut accepted = 0;
    for chunk in 0..n.div_ceil(1000) {
        let now = s.now();
        for _ in 0..1000.min(n - chunk * 1000) {
            clients.push(s.a.tcp_connect(server, None, now).unwrap());
        }
        s.run_while(now + Duration::from_secs(30), |s| {
            while s.b.tcp_accept(l).is_ok() {
                accepted += 1;
            }
            accepted < clients.len()
        });
    }
    assert_eq!(accepted, n);
    let c = clients[n / 2];
    let local = s.a.tcp_socket(c).unwrap().local_addr();
    // Build an ACK from A for connection c, from A's current numbers.
    let mut batch = FrameBatch::new(16, 2000);
    let now = s.now();
    s.a.tcp_send(c, b"x").unwrap();
    s.a.poll_transmit(now, &mut batch);
    let data = batch.get(0).unwrap().to_vec();
    let p = ipv4::Packet::new_checked(&data[..]).unwrap();
    let seg = tcp::Packet::new_checked(p.payload()).unwrap();
    let repr = tcp::Repr {
        src_port: local.port(),
        dst_port: 80,
        seq_number: seg.seq_number(),
        ack_number: seg.ack_number(),
        flags: tcp::Flags::ACK,
        window_len: seg.window_len(),
        urgent_at: 0,
        options: tcp::Options::default(),
        payload: &[],
    };
    let mut out = vec![0u8; 20 + repr.buffer_len()];
    let src = Ipv4Addr::new(10, 0, 0, 1);
    let dst = Ipv4Addr::new(10, 0, 0, 2);
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: 6,
        payload_len: repr.buffer_len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
    repr.emit(
        &mut tcp::Packet::new_unchecked(&mut out[20..]),
        src.into(),
        dst.into(),
    );
    let now = s.now();
    (std::mem::replace(&mut s.b, host("10.0.0.9")), out, now)
}

fn segment_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_segment_in");
    for n in [10usize, 10_000] {
        let (mut b, frame, now) = setup(n);
        let mut batch = FrameBatch::new(64, 2000);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| {
                b.handle_frame(now, black_box(&frame));
                batch.clear();
                b.poll_transmit(now, &mut batch);
            })
        });
    }
    g.finish();
}

fn checksum_speed(c: &mut Criterion) {
    let data = vec![0xa5u8; 1500];
    let mut g = c.benchmark_group("checksum");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("1500B", |b| b.iter(|| checksum::checksum(black_box(&data))));
    // The transmit path's payload: copy into the frame, then sum it, or
    // both in one pass (what the interface does).
    let src = vec![0x5au8; 1448];
    let mut dst = vec![0u8; 1448];
    g.bench_function("copy then sum 1448B", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(checksum::sum(&dst))
        })
    });
    g.bench_function("copy_and_sum 1448B", |b| {
        b.iter(|| black_box(checksum::copy_and_sum(&mut dst, black_box(&src))))
    });
    g.finish();
}

/// Software segmentation of a 64 KiB TCP super-segment into 45 wire
/// segments (what the kernel does for a TUN with offload; the simulator's
/// device).
fn gso(c: &mut Criterion) {
    use ustack::phy::{gso, Checksum, FrameMeta};
    let payload = vec![0x42u8; 44 * 1448];
    let repr = tcp::Repr {
        src_port: 40000,
        dst_port: 80,
        seq_number: 1,
        ack_number: 2,
        flags: tcp::Flags::ACK,
        window_len: 1024,
        urgent_at: 0,
        options: tcp::Options {
            timestamps: Some((1, 2)),
            ..tcp::Options::default()
        },
        payload: &payload,
    };
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut frame = vec![0u8; 20 + repr.buffer_len()];
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: 6,
        payload_len: repr.buffer_len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut frame[..]));
    repr.emit_partial(
        &mut tcp::Packet::new_unchecked(&mut frame[20..]),
        src.into(),
        dst.into(),
    );
    let meta = FrameMeta {
        checksum: Checksum::Partial {
            start: 20,
            offset: 16,
        },
        gso_size: 1448,
    };
    let mut g = c.benchmark_group("gso");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("cut a 64 KiB super-segment into 44 segments", |b| {
        b.iter(|| {
            let mut n = 0usize;
            gso::segment(black_box(&frame), 0, meta, &mut |s| n += s.len()).unwrap();
            black_box(n)
        })
    });
    g.finish();
}

/// A 1500-byte IPv4/TCP data segment with timestamps, as it arrives.
fn data_segment() -> Vec<u8> {
    let payload = vec![0x42u8; 1448];
    let repr = tcp::Repr {
        src_port: 40000,
        dst_port: 80,
        seq_number: 0x1234_5678,
        ack_number: 0x9abc_def0,
        flags: tcp::Flags::ACK | tcp::Flags::PSH,
        window_len: 1024,
        urgent_at: 0,
        options: tcp::Options {
            timestamps: Some((1, 2)),
            ..tcp::Options::default()
        },
        payload: &payload,
    };
    let src = Ipv4Addr::new(10, 0, 0, 1);
    let dst = Ipv4Addr::new(10, 0, 0, 2);
    let mut out = vec![0u8; 20 + repr.buffer_len()];
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: 6,
        payload_len: repr.buffer_len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
    repr.emit(
        &mut tcp::Packet::new_unchecked(&mut out[20..]),
        src.into(),
        dst.into(),
    );
    out
}

fn parse_and_build(c: &mut Criterion) {
    let frame = data_segment();
    let src = Ipv4Addr::new(10, 0, 0, 1).into();
    let dst = Ipv4Addr::new(10, 0, 0, 2).into();
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("parse 1500B (IPv4 + TCP, checksum verified)", |b| {
        b.iter(|| {
            let ip = ipv4::Packet::new_checked(black_box(&frame[..])).unwrap();
            let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
            let r = tcp::Repr::parse(&seg, src, dst, true).unwrap();
            black_box(r.seq_number)
        })
    });
    let ip = ipv4::Packet::new_checked(&frame[..]).unwrap();
    let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
    let repr = tcp::Repr::parse(&seg, src, dst, true).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    g.bench_function("build 1500B (TCP header + payload copy + checksum)", |b| {
        b.iter(|| {
            black_box(&repr).emit(&mut tcp::Packet::new_unchecked(&mut out[..]), src, dst);
            black_box(out[16])
        })
    });
    g.finish();
}

/// 64 segments of 1448 bytes into a 1 MiB receive buffer, odd ones first
/// (32 holes), then the even ones filling them; then the reader drains it.
fn reassembly(c: &mut Criterion) {
    let seg = vec![7u8; 1448];
    let mut out = vec![0u8; 1 << 17];
    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Bytes(64 * 1448));
    g.bench_function("64 segments, 32 holes, 1 MiB buffer", |b| {
        let mut r = ReceiveBuffer::new(1 << 20);
        let mut pool = BufferPool::default();
        b.iter(|| {
            for i in (1..64).step_by(2) {
                r.write_at(i * 1448, &seg, &mut pool);
            }
            for _ in 0..32 {
                // Each fills the hole at RCV.NXT, which then moves past
                // the next odd segment.
                r.write_at(0, &seg, &mut pool);
            }
            while r.read(&mut out, &mut pool) > 0 {}
        })
    });
    g.finish();
}

/// A poll of the interface with 10,000 established idle connections and no
/// timer due: the cost of finding out there is nothing to do.
fn timers(c: &mut Criterion) {
    let (mut b, _, now) = setup(10_000);
    let mut batch = FrameBatch::new(64, 2000);
    let mut g = c.benchmark_group("timers");
    g.bench_function("poll, 10,000 idle connections, none due", |bench| {
        bench.iter(|| {
            batch.clear();
            b.poll_transmit(black_box(now), &mut batch);
            black_box(b.poll_at())
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    segment_cost,
    checksum_speed,
    gso,
    parse_and_build,
    reassembly,
    timers
);
criterion_main!(benches);
