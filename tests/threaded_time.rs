//! Time through the threaded API under load: application threads sending
//! directly while the stack thread reads and sends too. In a test binary of
//! its own, so that its threads (more than the machine has cores) do not
//! run beside the other in-memory tests.

use std::io::{Read, Write};
use std::net::Shutdown;

use ustack::net::{TcpListener, TcpStream};
use ustack::phy::{Medium, PipeDevice};
use ustack::stack::Stack;

mod common;

/// TCP timestamps (TSval) by connection and direction (source and
/// destination port), and capture timestamps, from a capture of Ethernet
/// frames.
type TsVals = std::collections::HashMap<(u16, u16), Vec<u32>>;

fn capture_times(path: &std::path::Path) -> (Vec<u64>, TsVals) {
    use etherparse::{SlicedPacket, TcpOptionElement, TransportSlice};
    let mut stamps = Vec::new();
    let mut tsvals = TsVals::default();
    for rec in ustack::phy::pcap::Reader::open(path).unwrap() {
        let rec = rec.expect("the capture reads to its end");
        stamps.push(rec.timestamp_micros);
        let Ok(p) = SlicedPacket::from_ethernet(&rec.data) else {
            continue;
        };
        if let Some(TransportSlice::Tcp(t)) = p.transport {
            for o in t.options_iterator().flatten() {
                if let TcpOptionElement::Timestamp(val, _) = o {
                    tsvals
                        .entry((t.source_port(), t.destination_port()))
                        .or_default()
                        .push(val);
                }
            }
        }
    }
    (stamps, tsvals)
}

#[test]
fn bulk_both_ways_through_the_threaded_api_keeps_time_monotonic() {
    // Application threads send from their own thread while the stack
    // thread reads and sends too: before the stack thread read its clock
    // with the device held, frames left dated before frames already sent
    // (TSvals going backwards by milliseconds, which a Linux peer drops by
    // PAWS, and spurious retransmissions followed).
    let dir = std::env::temp_dir().join(format!("ustk-mono-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.pcap");
    let mut opts = ustack::phy::PipeOptions::new(Medium::Ethernet, 1500);
    opts.capacity = 16384; // a clean link: nothing is dropped
    let (a, b) = PipeDevice::pair_with(opts).unwrap();
    let a = ustack::phy::pcap::PcapWriter::create(a, &path).unwrap();
    let sa = Stack::builder(a)
        .addr("10.6.0.1/24".parse().unwrap())
        .build()
        .unwrap();
    let sb = Stack::builder(b)
        .addr("10.6.0.2/24".parse().unwrap())
        .build()
        .unwrap();
    // Four connections, each sending both ways at once in small writes
    // (each a direct send from its thread): more threads than cores, so
    // the stack thread is often preempted between reading the clock and
    // taking the device.
    const N: usize = 8 << 20;
    const CONNS: u16 = 4;
    let l = TcpListener::bind(&sb, "0.0.0.0:9").unwrap();
    let both = |st: TcpStream| {
        let mut rd = st.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            loop {
                match rd.read(&mut buf).unwrap() {
                    0 => break total,
                    n => total += n,
                }
            }
        });
        let payload = common::data(N, 12345);
        let writer = std::thread::spawn(move || {
            for chunk in payload.chunks(1024) {
                (&st).write_all(chunk).unwrap();
            }
            st.shutdown(Shutdown::Write).unwrap();
            st
        });
        (reader, writer)
    };
    let mut threads = Vec::new();
    for _ in 0..CONNS {
        let c = TcpStream::connect(&sa, "10.6.0.2:9").unwrap();
        let (s, _) = l.accept().unwrap();
        threads.push(both(c));
        threads.push(both(s));
    }
    // Every retransmission must be a tail-loss probe (RFC 8985 sends one,
    // new data when it can, when an ACK is 2·SRTT late, which a starved
    // CPU can make it here), and no probe may repair a loss: nothing is
    // lost on this link.
    let (mut retransmits, mut tlps, mut fast, mut rtos, mut repaired) = (0, 0, 0, 0, 0);
    for (r, w) in threads {
        assert_eq!(r.join().unwrap(), N);
        let i = w.join().unwrap().info().unwrap();
        retransmits += i.retransmits;
        tlps += i.tlps;
        fast += i.fast_retransmits;
        rtos += i.timeouts;
        repaired += i.tlp_loss_repaired;
    }
    let regressions = sa.counters().link.clock_regressions;
    sa.shutdown().unwrap(); // closes the device: the capture is complete
    let (stamps, tsvals) = capture_times(&path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stamps.len() > 1000, "{} frames captured", stamps.len());
    let back = stamps.windows(2).filter(|w| w[1] < w[0]).count();
    assert_eq!(back, 0, "capture timestamps stepped back {back} times");
    assert_eq!(tsvals.len(), 2 * CONNS as usize, "both directions of each");
    for ((from, to), v) in &tsvals {
        let back = v.windows(2).filter(|w| w[1] < w[0]).count();
        assert_eq!(back, 0, "TSval {from} -> {to} went backwards {back} times");
    }
    assert_eq!(
        (fast, rtos),
        (0, 0),
        "fast retransmits and timeouts on a clean link"
    );
    assert!(
        retransmits <= tlps,
        "{retransmits} retransmissions, {tlps} probes"
    );
    assert_eq!(
        repaired, 0,
        "a tail-loss probe repaired a loss on a clean link"
    );
    eprintln!("clock readings behind the core's time: {regressions}; tail-loss probes: {tlps}, retransmissions: {retransmits}");
}
