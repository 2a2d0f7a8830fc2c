//! Pcap replay properties: every capture in `pcaps/` and the public
//! captures of other stacks in `../shared/pcaps/` (absent outside CI: the
//! test then says so and passes, but fails when `CI` is set) replayed
//! against ustack with 256 cases of random mutations, ustack playing each
//! side in turn. Every invariant of `ustack::replay` must hold in every
//! case. Synthetic captures cover what real ones hold only by chance
//! (data on a SYN, holes in the capture), and `pcapreplay` itself is run
//! on what is not a capture.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ustack::phy::pcap::{Writer, LINKTYPE_ETHERNET, LINKTYPE_RAW};
use ustack::replay::build::ipv4_packet;
use ustack::replay::capture::Capture;
use ustack::replay::check_capture;
use ustack::replay::engine::run_case;
use ustack::replay::script::{plan, Side};
use ustack::wire::tcp;

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

/// The netns harness's rules (`in_ci`), shared by path.
#[path = "../src/testkit/netns.rs"]
mod netns;
use netns::in_ci;

/// The public captures that hold a TCP or UDP conversation: each is
/// replayed (a missing one fails the test, so none drops out unseen).
const SHARED_CONVERSATIONS: [&str; 12] = [
    "dns_tcp.pcapng",
    "http_google.pcapng",
    "http_ip4and6.pcapng",
    "http_post.pcapng",
    "tcp_dupack.pcapng",
    "tcp_handshake.pcapng",
    "tcp_refuseconnection.pcapng",
    "tcp_retransmissions.pcapng",
    "tcp_teardown.pcapng",
    "tcp_zerowindowdead.pcapng",
    "tcp_zerowindowrecovery.pcapng",
    "udp_dnsrequest.pcapng",
];

#[test]
fn replay_shared_captures() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pcaps"));
    if !dir.is_dir() {
        assert!(
            !in_ci(),
            "CI is set and {} is absent: the public captures were not replayed",
            dir.display()
        );
        println!(
            "NOT RUN: {} is absent (CI unset); the public captures were not replayed",
            dir.display()
        );
        return;
    }
    let files: Vec<PathBuf> = SHARED_CONVERSATIONS.iter().map(|f| dir.join(f)).collect();
    for f in &files {
        assert!(f.is_file(), "{} is missing", f.display());
    }
    // Every other capture there holds no conversation: pcapreplay refuses
    // it (a new capture with one must be added to the list above).
    for f in captures(dir) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if !SHARED_CONVERSATIONS.contains(&name.as_str()) {
            let cap = Capture::open(&f).unwrap();
            assert!(
                cap.conversations().is_empty(),
                "{name} holds a conversation: add it to SHARED_CONVERSATIONS"
            );
        }
    }
    replay_all(&files);
}

/// A TCP segment of a synthetic capture: (from the client, flags, seq,
/// ack, payload).
type Seg<'a> = (bool, tcp::Flags, u32, u32, &'a [u8]);

const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 1, 0, 1), 40123);
const SERVER: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 1, 0, 2), 80);

/// A raw-IP capture of the segments, 10 ms apart.
fn synthetic(segs: &[Seg]) -> Capture {
    let mut w = Writer::new(Vec::new(), LINKTYPE_RAW).unwrap();
    for (i, &(from_client, flags, seq, ack, payload)) in segs.iter().enumerate() {
        let ((sa, sp), (da, dp)) = if from_client {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        let mut options = tcp::Options::default();
        if flags.syn() {
            options.mss = Some(1460);
        }
        let repr = tcp::Repr {
            src_port: sp,
            dst_port: dp,
            seq_number: seq,
            ack_number: ack,
            flags,
            window_len: 64000,
            urgent_at: 0,
            options,
            payload,
        };
        let mut seg = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut tcp::Packet::new_unchecked(&mut seg[..]),
            sa.into(),
            da.into(),
        );
        let ip = ipv4_packet(sa, da, 6, i as u16, &seg);
        w.write_packet(1_000_000 + i as u64 * 10_000, &ip).unwrap();
    }
    Capture::from_bytes(&w.into_inner())
}

const SYN: tcp::Flags = tcp::Flags::SYN;
const ACK: tcp::Flags = tcp::Flags::ACK;
const SYN_ACK: tcp::Flags = tcp::Flags(tcp::Flags::SYN.0 | tcp::Flags::ACK.0);
const PSH_ACK: tcp::Flags = tcp::Flags(tcp::Flags::PSH.0 | tcp::Flags::ACK.0);
const FIN_ACK: tcp::Flags = tcp::Flags(tcp::Flags::FIN.0 | tcp::Flags::ACK.0);

/// The unmutated case (case 0) with ustack on each side holds every
/// invariant (an intact close ends CLOSED or TIME-WAIT with every byte the
/// peer sent delivered), plus 64 mutated cases.
fn replay_clean(cap: &Capture) {
    for side in [Side::Server, Side::Client] {
        let r = check_capture(cap, side, 1, 7, None);
        assert_eq!(r.cases, 1);
        assert!(
            r.failures.is_empty(),
            "{side:?}, unmutated: {:?}",
            r.failures
        );
        let r = check_capture(cap, side, 64, 7, None);
        assert!(r.failures.is_empty(), "{side:?}: {:?}", r.failures);
        // `--case N` runs exactly that case, the last number too.
        for only in [5, u64::MAX] {
            let r = check_capture(cap, side, 64, 7, Some(only));
            assert_eq!(r.cases, 1, "{side:?}: --case {only}");
        }
    }
}

/// A TCP Fast Open client: its SYN carries 5 bytes, which the captured
/// server took (its SYN-ACK acknowledges them), so the client never sent
/// them again. ustack does not take data on a SYN: the replayed peer must
/// send those bytes again after the handshake, as a real client does when
/// its SYN data is not acknowledged, instead of leaving a hole that ends
/// the connection in FIN-WAIT-2.
#[test]
fn syn_with_data_is_sent_again() {
    let cap = synthetic(&[
        (true, SYN, 1000, 0, b"hello"),
        (false, SYN_ACK, 5000, 1006, b""),
        (true, ACK, 1006, 5001, b""),
        (true, PSH_ACK, 1006, 5001, b"world!"),
        (false, PSH_ACK, 5001, 1012, b"reply"),
        (true, FIN_ACK, 1012, 5006, b""),
        (false, FIN_ACK, 5006, 1013, b""),
        (true, ACK, 1013, 5007, b""),
    ]);
    replay_clean(&cap);
    // The peer sends the SYN's data again as soon as the SYN-ACK leaves it
    // unacknowledged, without waiting for its retransmission timer.
    let out = run_case(&plan(&cap, Side::Server).unwrap(), &[], &[]);
    assert_eq!(out.delivered, 11, "{out:?}");
    assert_eq!(
        (out.peer_fast_resends, out.peer_timeouts),
        (1, 0),
        "{out:?}"
    );
}

/// A capture that lacks segments of the peer's stream (bytes 4..8 and
/// 20..24 of the client's were never captured, although the server
/// acknowledged them): the replayed peer fills the holes with filler bytes
/// and resends what ustack did not acknowledge, so the close completes.
#[test]
fn holes_in_the_capture_are_filled() {
    let cap = synthetic(&[
        (true, SYN, 1000, 0, b""),
        (false, SYN_ACK, 5000, 1001, b""),
        (true, ACK, 1001, 5001, b""),
        (true, PSH_ACK, 1001, 5001, b"aaaa"),
        (true, PSH_ACK, 1009, 5001, b"cccc"),
        (true, PSH_ACK, 1013, 5001, b"dddd"),
        (true, PSH_ACK, 1017, 5001, b"eeee"),
        (true, PSH_ACK, 1025, 5001, b"gggg"),
        (false, PSH_ACK, 5001, 1029, b"reply"),
        (true, FIN_ACK, 1029, 5006, b""),
        (false, FIN_ACK, 5006, 1030, b""),
        (true, ACK, 1030, 5007, b""),
    ]);
    let p = plan(&cap, Side::Server).unwrap();
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("lacks 8 bytes of the peer's stream in 2 holes")),
        "{:?}",
        p.notes
    );
    replay_clean(&cap);
    // ustack answers the three segments beyond the first hole with three
    // duplicate ACKs: the peer's fast retransmit fills it (filler bytes).
    // The second hole, behind one segment and the FIN, is filled when the
    // peer's retransmission timer expires.
    let out = run_case(&p, &[], &[]);
    assert_eq!(out.delivered, 28, "{out:?}");
    assert_eq!(
        (out.peer_fast_resends, out.peer_timeouts),
        (1, 1),
        "{out:?}"
    );
}

/// `pcapreplay` on what is not a usable capture: exit status 2 and one
/// line on stderr naming the problem, nothing on stdout.
#[test]
fn pcapreplay_refuses_what_is_not_a_capture() {
    let dir = std::env::temp_dir().join(format!("ustk-pcapreplay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty_pcap = Writer::new(Vec::new(), LINKTYPE_RAW).unwrap().into_inner();
    let mut icmp_only = Writer::new(Vec::new(), LINKTYPE_RAW).unwrap();
    let mut ping = ipv4_packet(CLIENT.0, SERVER.0, 1, 1, &[8, 0, 0, 0, 0, 1, 0, 1]);
    ustack::replay::build::fix_checksums(&mut ping);
    icmp_only.write_packet(1, &ping).unwrap();
    let random: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, Vec<u8>, &[&str], &str); 6] = [
        (
            "empty",
            Vec::new(),
            &[],
            "not a capture: empty capture file",
        ),
        (
            "random",
            random,
            &[],
            "not a capture: not a pcap or pcapng file",
        ),
        ("noframes", empty_pcap, &[], "the capture holds no frame"),
        (
            "icmp",
            icmp_only.into_inner(),
            &[],
            "no TCP or UDP conversation",
        ),
        (
            "huge",
            Vec::new(),
            &["--cases", "18446744073709551615"],
            "is not in 1..=1000000000",
        ),
        (
            "side",
            Vec::new(),
            &["--side", "both"],
            "invalid value 'both' for '--side",
        ),
    ];
    for (name, bytes, extra, want) in cases {
        let f = dir.join(name);
        std::fs::write(&f, bytes).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pcapreplay"))
            .arg(&f)
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            err.starts_with("pcapreplay: ") && err.contains(want),
            "{name}: {err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // With the flag, a capture without a conversation is replayed.
    let out = Command::new(env!("CARGO_BIN_EXE_pcapreplay"))
        .arg(dir.join("icmp"))
        .args(["--no-conversation-ok", "--cases", "3"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .ends_with("3 cases, 0 violations, 0 frames rejected\n"));
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
