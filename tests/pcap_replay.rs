//! Pcap replay properties: every capture in `pcaps/` (and, when present,
//! the public captures in `../shared/pcaps/`) replayed against ustack with
//! 256 cases of random mutations, ustack playing each side in turn. Every
//! invariant of `ustack::replay` must hold in every case.

use std::path::{Path, PathBuf};

use ustack::phy::pcap::{Writer, LINKTYPE_ETHERNET, LINKTYPE_RAW};
use ustack::replay::capture::Capture;
use ustack::replay::check_capture;
use ustack::replay::script::Side;

const CASES: u64 = 256;

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn replay_all(files: &[PathBuf]) {
    let mut failed = Vec::new();
    for f in files {
        let cap = Capture::open(f).unwrap();
        assert!(cap.error.is_none(), "{}: {:?}", f.display(), cap.error);
        for side in [Side::Server, Side::Client] {
            let r = check_capture(&cap, side, CASES, 0x5eed, None);
            println!(
                "{} ({side:?}): {}; {} cases, {} violations, {} frames rejected",
                f.display(),
                r.description,
                r.cases,
                r.violations,
                r.rejected
            );
            assert_eq!(r.cases, CASES);
            for fail in &r.failures {
                failed.push(format!(
                    "{} side {side:?} case {}: {:?}, minimal {:?}",
                    f.display(),
                    fail.case,
                    fail.messages,
                    fail.minimal
                ));
            }
        }
    }
    assert!(failed.is_empty(), "violations:\n{}", failed.join("\n"));
}

#[test]
fn replay_project_captures() {
    let files = captures(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps")));
    assert!(files.len() >= 6, "pcaps/ holds {} captures", files.len());
    replay_all(&files);
}

#[test]
fn replay_shared_captures() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pcaps"));
    let files = captures(dir);
    if files.is_empty() {
        println!(
            "NOT RUN: {} is absent; the public captures were not replayed",
            dir.display()
        );
        return;
    }
    replay_all(&files);
}

/// Random bytes as a capture's frames, and random bytes as a whole file:
/// counted as rejected, thrown at the stack, no violation.
#[test]
fn garbage_captures_are_rejected_not_fatal() {
    let mut seed = 0x1234_5678_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for linktype in [LINKTYPE_ETHERNET, LINKTYPE_RAW, 113, 276] {
        let mut w = Writer::new(Vec::new(), linktype).unwrap();
        for i in 0..200u64 {
            let len = (next() % 120) as usize;
            let frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            w.write_packet(i * 1000, &frame).unwrap();
        }
        let cap = Capture::from_bytes(&w.into_inner());
        let r = check_capture(&cap, Side::Auto, 64, 1, None);
        assert_eq!(r.violations, 0, "{:?}", r.failures);
        assert!(
            r.rejected > 100,
            "linktype {linktype}: {} rejected",
            r.rejected
        );
    }
    let junk: Vec<u8> = (0..5000).map(|_| next() as u8).collect();
    let cap = Capture::from_bytes(&junk);
    let r = check_capture(&cap, Side::Auto, 16, 1, None);
    assert_eq!((r.violations, r.rejected), (0, 1));
}

/// Found by this replay: in `linux_linux_loss_2.pcap`, ustack as client,
/// a reordered ACK and a zero window left a fast retransmission pending
/// after everything in flight had been acknowledged; the "retransmission"
/// then sent new data into the zero window without moving SND.MAX, and the
/// peer's ACK of it was taken for one of data never sent (an ACK loop).
#[test]
fn regression_retransmit_beyond_snd_max() {
    let f = concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps/linux_linux_loss_2.pcap");
    let cap = Capture::open(f).unwrap();
    let r = check_capture(&cap, Side::Client, 0, 12, Some(743));
    assert_eq!(r.cases, 1);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
}
