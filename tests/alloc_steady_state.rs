//! No allocation per packet: once a bulk transfer between two interfaces
//! over the in-memory pipe has warmed up (buffers grown, pools filled), the
//! stack moves megabytes more without calling the allocator per segment.
//! A global allocator counts the calls; its counts are read around a stretch
//! of steady-state transfer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ustack::iface::{Config, Interface};
use ustack::phy::{Device, Medium, PipeDevice, PipeOptions};
use ustack::runtime::Driver;
use ustack::time::{Duration, Instant};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bulk transfer A → B over a pipe, driven in virtual time; returns the
/// allocator calls and the segments B received during the measured part.
fn steady_state(offload: bool) -> (u64, u64, u64) {
    let mut opts = PipeOptions::new(Medium::Ip, 1500);
    opts.offload = offload;
    let (da, db) = PipeDevice::pair_with(opts).unwrap();
    let host = |addr: &str, dev: &PipeDevice| {
        let mut c = Config::for_device(dev.caps());
        c.addrs.push(addr.parse().unwrap());
        Interface::new(c, Instant::ZERO)
    };
    let (mut a, mut b) = (host("10.0.0.1/24", &da), host("10.0.0.2/24", &db));
    let (mut drv_a, mut drv_b) = (Driver::new(da, &a), Driver::new(db, &b));
    let l = b
        .tcp_listen("10.0.0.2:9".parse::<SocketAddr>().unwrap(), 16)
        .unwrap();
    let c = a
        .tcp_connect("10.0.0.2:9".parse().unwrap(), None, Instant::ZERO)
        .unwrap();
    let chunk = vec![0x5au8; 1 << 16];
    let mut buf = vec![0u8; 1 << 16];
    let mut server = None;
    let mut now = Instant::ZERO;
    let mut got = 0u64;
    macro_rules! round {
        () => {
            now += Duration::from_micros(50);
            let _ = drv_a.poll(&mut a, now);
            let _ = drv_b.poll(&mut b, now);
            if server.is_none() {
                server = b.tcp_accept(l).ok().map(|(h, _)| h);
            }
            while a.tcp_send(c, &chunk).is_ok_and(|n| n > 0) {}
            if let Some(s) = server {
                while let Ok(n) = b.tcp_recv(s, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    got += n as u64;
                }
            }
        };
    }
    // Warm up: 64 MiB.
    while got < 64 << 20 {
        round!();
    }
    let segs0 = b.tcp_counters().in_segs;
    let bytes0 = got;
    let before = ALLOCS.load(Ordering::Relaxed);
    while got < bytes0 + (64 << 20) {
        round!();
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    (allocs, b.tcp_counters().in_segs - segs0, got - bytes0)
}

#[test]
fn bulk_transfer_does_not_allocate_per_segment() {
    for offload in [false, true] {
        let (allocs, segs, bytes) = steady_state(offload);
        eprintln!(
            "offload {offload}: {allocs} allocator calls for {segs} segments ({bytes} bytes)"
        );
        assert!(
            segs > 1000,
            "offload {offload}: the transfer should go on ({segs} segments)"
        );
        assert!(
            allocs * 100 < segs,
            "offload {offload}: {allocs} allocator calls for {segs} segments received: \
             something allocates per packet"
        );
    }
}
