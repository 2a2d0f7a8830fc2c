//! TCP against Linux: `tcpecho` and `ucat` on the stack, the kernel's TCP
//! (python3 sockets) as the peer. Subnets 10.M.S.0/24 with S from 20 up.

use std::time::{Duration, Instant};

use std::path::Path;

use crate::harness::{
    sha256, write_pseudo_random, Input, Medium, Output, Rig, Stopped, TempFile, ToolSpec,
};
use crate::py::{self, result_field, result_str};

const S_BULK: u8 = 20;
const S_MANY: u8 = 21;
const S_REFUSED: u8 = 22;
const S_UPLOAD: u8 = 23;
const S_DOWNLOAD: u8 = 24;
const S_LATE: u8 = 25;
const S_RST: u8 = 26;
const S_UREFUSED: u8 = 27;
const S_OPTIONS: u8 = 28;
const S_IMPAIRED: u8 = 29;
const S_FIT: u8 = 30;
const S_SINKSRC: u8 = 58;
const S_OFFLOAD: u8 = 59;
const S_NOOFFLOAD: u8 = 57;
const S_AT_EXIT: u8 = 31;
const S_UDP_CAT: u8 = 32;

const MIB: u64 = 1 << 20;

/// Where two files first differ (None when equal).
fn first_difference(a: &str, b: &str) -> Option<(usize, usize, usize)> {
    let x = std::fs::read(a).expect("read file");
    let y = std::fs::read(b).expect("read file");
    if x == y {
        return None;
    }
    let at = x
        .iter()
        .zip(&y)
        .position(|(p, q)| p != q)
        .unwrap_or(x.len().min(y.len()));
    Some((x.len(), y.len(), at))
}

fn timing(what: &str, medium: Medium, start: Instant) {
    eprintln!(
        "TIMING {what} {medium:?}: {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

/// Panics with the client's output and the stopped tool's, when `ok` is
/// false.
fn check(ok: bool, rig: &mut Rig, what: &str, out: &Output) {
    if !ok {
        let stopped = rig.stop();
        panic!(
            "{:?}: {what}\n--- client ---\n{out}\n--- stack ---\n{stopped}",
            rig.medium
        );
    }
}

fn assert_tcpecho_exits_0(stopped: &Stopped) {
    assert_eq!(
        stopped.code(),
        Some(0),
        "tcpecho should exit 0 on SIGINT\n{stopped}"
    );
}

/// 1 (and 6, first half): 64 MiB through tcpecho, sent by one thread and
/// read by another, SHA-256 on the fly; the client half-closes after
/// sending and must still read the whole echo (some of it after its FIN).
pub fn bulk_echo_64mib(medium: Medium) {
    let start = Instant::now();
    let mut rig = Rig::tcpecho(medium, "tbulk", S_BULK, &[]);
    let total = 64 * MIB;
    let out = rig.python(
        py::BULK,
        &[&rig.stack_ip, "7", &total.to_string(), "64", "60"],
        Duration::from_secs(75),
    );
    let f = |k| result_field(&out.stdout, k);
    check(
        out.success()
            && f("sent") == Some(total)
            && f("received") == Some(total)
            && f("match") == Some(1),
        &mut rig,
        "64 MiB should echo intact (same length and SHA-256)",
        &out,
    );
    check(
        f("eof") == Some(1) && f("tail").is_some_and(|t| t >= 64 * 1024),
        &mut rig,
        "after the client's shutdown(SHUT_WR) the echo should go on to the end, then EOF",
        &out,
    );
    let stopped = rig.stop();
    assert_tcpecho_exits_0(&stopped);
    let retrans = stopped
        .stdout
        .lines()
        .find(|l| l.contains("segments retransmitted"))
        .unwrap_or("")
        .trim();
    eprintln!("bulk {medium:?}: {} ({retrans})", out.stdout.trim());
    timing("bulk_echo_64mib", medium, start);
}

/// tcpecho's benchmark ports (`--discard-port 9 --source-port 19`, used by
/// scripts/bench.sh): 4 MiB into the discard port get no byte back and the
/// connection closed at our FIN; the source port sends 4 MiB of zeros (and
/// never another connection's data); the echo port still echoes.
pub fn discard_and_source_ports(medium: Medium) {
    const SCRIPT: &str = r#"
import socket, sys, time
host = sys.argv[1]
deadline = time.monotonic() + 40
s = socket.create_connection((host, 9), timeout=10)
s.sendall(bytes(range(256)) * 16384)
s.shutdown(socket.SHUT_WR)
back = s.recv(64)
discard_eof = int(back == b"")
s.close()
s = socket.create_connection((host, 19), timeout=10)
n = nonzero = 0
while n < (4 << 20) and time.monotonic() < deadline:
    d = s.recv(1 << 16)
    if not d:
        break
    n += len(d)
    nonzero += len(d) - d.count(0)
s.close()
s = socket.create_connection((host, 7), timeout=10)
s.sendall(b"ping")
e = b""
while len(e) < 4 and time.monotonic() < deadline:
    d = s.recv(4 - len(e))
    if not d:
        break
    e += d
s.close()
print("RESULT discard_eof=%d source_bytes=%d nonzero=%d echo=%d" % (discard_eof, n, nonzero, int(e == b"ping")))
"#;
    let mut rig = Rig::tcpecho(
        medium,
        "tsink",
        S_SINKSRC,
        &["--discard-port", "9", "--source-port", "19"],
    );
    let out = rig.python(SCRIPT, &[&rig.stack_ip], Duration::from_secs(60));
    let f = |k| result_field(&out.stdout, k);
    check(
        out.success()
            && f("discard_eof") == Some(1)
            && f("source_bytes").is_some_and(|n| n >= 4 * MIB)
            && f("nonzero") == Some(0)
            && f("echo") == Some(1),
        &mut rig,
        "discard: no data back, closed at FIN; source: 4 MiB of zeros; echo: still echoes",
        &out,
    );
    assert_tcpecho_exits_0(&rig.stop());
}

/// A counter line of tcpecho's report (`    N what`), as N.
fn counter(report: &str, what: &str) -> Option<u64> {
    report.lines().find_map(|l| {
        let (n, rest) = l.trim().split_once(' ')?;
        (rest == what).then(|| n.parse().ok())?
    })
}

/// A counter line tcpecho's exit report must have.
fn must_counter(stopped: &Stopped, what: &str) -> u64 {
    counter(&stopped.stdout, what)
        .unwrap_or_else(|| panic!("tcpecho's report has no '{what}' line:\n{stopped}"))
}

/// tcpecho (with `extra` flags) echoes 16 MiB from Linux, sent and read
/// at once, intact (length and SHA-256), and exits 0 on SIGINT; returns the
/// client's output and tcpecho's.
fn echo_16mib_intact(medium: Medium, tag: &str, subnet: u8, extra: &[&str]) -> (Output, Stopped) {
    let mut rig = Rig::tcpecho(medium, tag, subnet, extra);
    let total = 16 * MIB;
    let out = rig.python(
        py::BULK,
        &[&rig.stack_ip, "7", &total.to_string(), "16", "60"],
        Duration::from_secs(75),
    );
    let stopped = rig.stop();
    let f = |k| result_field(&out.stdout, k);
    assert!(
        out.success() && f("received") == Some(total) && f("match") == Some(1),
        "{medium:?} {extra:?}: 16 MiB should echo intact\n{out}\n{stopped}"
    );
    assert_tcpecho_exits_0(&stopped);
    (out, stopped)
}

/// While echoing 16 MiB (the stack receiving and sending at once, so its
/// data segments may carry SACK blocks when Linux's segments arrive out of
/// order or are lost), the stack never builds a segment its own MTU cannot
/// carry: no IP datagram dropped for "fragmentation needed, DF set".
pub fn echo_segments_fit_the_mtu(medium: Medium) {
    let start = Instant::now();
    let (out, stopped) = echo_16mib_intact(medium, "tfit", S_FIT, &[]);
    let df = counter(&stopped.stdout, "fragmentation failed (DF)");
    let dropped = counter(&stopped.stdout, "outgoing packets dropped");
    assert!(
        df == Some(0) && dropped == Some(0),
        "{medium:?}: the stack dropped {dropped:?} of its own datagrams, {df:?} of them \
         too big for the MTU with DF set (TCP segments larger than the MTU?)\n{}\n{stopped}",
        out.stdout.trim()
    );
    timing("echo_segments_fit_the_mtu", medium, start);
}

/// Offload (the tools' default; on a raw socket through the virtio-net
/// header of `PACKET_VNET_HDR`): 16 MiB echoed intact while the stack hands
/// the kernel super-segments (TSO) and takes the kernel's uncut (GRO), with
/// partial checksums both ways; `--offload off` echoes the same with none
/// (on a raw socket the device then cuts Linux's super-segments itself).
/// The report's counters tell which path ran.
pub fn offload_echo_both_ways(medium: Medium) {
    let start = Instant::now();
    for (tag, subnet, extra, want) in [
        ("toff", S_OFFLOAD, &[][..], true),
        ("tnooff", S_NOOFFLOAD, &["--offload", "off"][..], false),
    ] {
        let (_, stopped) = echo_16mib_intact(medium, tag, subnet, extra);
        let tso = must_counter(&stopped, "super-segments out (TSO)");
        let gro = must_counter(&stopped, "super-segments in (GRO)");
        let dropped = must_counter(&stopped, "super-segments dropped");
        if want {
            assert!(
                tso > 0 && gro > 0 && dropped == 0,
                "{medium:?}: with offload the echo should go out as super-segments and come \
                 in as them (TSO {tso}, GRO {gro}, dropped {dropped})\n{stopped}"
            );
        } else {
            assert!(
                tso == 0 && gro == 0,
                "{medium:?}: --offload off yet TSO {tso}, GRO {gro}\n{stopped}"
            );
        }
        eprintln!("offload {medium:?} {extra:?}: TSO {tso}, GRO {gro}");
    }
    timing("offload_echo_both_ways", medium, start);
}

/// 2: 100 concurrent connections, distinct messages of 2000..5700 bytes.
pub fn hundred_concurrent_connections(medium: Medium) {
    let start = Instant::now();
    let mut rig = Rig::tcpecho(medium, "tmany", S_MANY, &[]);
    let out = rig.python(
        py::MANY,
        &[&rig.stack_ip, "7", "100", "1000", "40"],
        Duration::from_secs(50),
    );
    check(
        py::many_all_echoed(&out, 100),
        &mut rig,
        "100 concurrent connections should all echo their own message exactly",
        &out,
    );
    let stopped = rig.stop();
    assert_tcpecho_exits_0(&stopped);
    assert!(
        stopped.stdout.contains("100 passive connection openings"),
        "tcpecho's counters should show 100 passive opens:\n{stopped}"
    );
    timing("hundred_concurrent_connections", medium, start);
}

/// 3: a Linux connect to a port nobody listens on gets ECONNREFUSED, and
/// the stack still echoes afterwards.
pub fn closed_port_refuses(medium: Medium) {
    let start = Instant::now();
    let mut rig = Rig::tcpecho(medium, "trefused", S_REFUSED, &[]);
    let out = rig.python(
        py::CONNECT_REFUSED,
        &[&rig.stack_ip, "9"],
        Duration::from_secs(10),
    );
    check(
        out.stdout.trim() == "REFUSED",
        &mut rig,
        "connect to closed port 9 should get ECONNREFUSED (an RST)",
        &out,
    );
    let out = rig.python(py::ONE, &[&rig.stack_ip, "7"], Duration::from_secs(10));
    check(
        result_field(&out.stdout, "echo") == Some(1),
        &mut rig,
        "port 7 should still echo after the refusal",
        &out,
    );
    let stopped = rig.stop();
    assert_tcpecho_exits_0(&stopped);
    assert!(
        stopped.stdout.contains("1 resets sent"),
        "tcpecho's counters should show the RST sent:\n{stopped}"
    );
    timing("closed_port_refuses", medium, start);
}

/// Exactly one line on stderr, equal to `want`, and exit status 1.
fn assert_ucat_fails(u: &Stopped, want: &str, ctx: &str) {
    let lines: Vec<&str> = u.stderr.lines().collect();
    assert!(
        !u.killed && u.code() == Some(1) && lines == [want],
        "ucat should print exactly one line {want:?} and exit 1\n{u}\n{ctx}"
    );
}

/// 4: `ucat connect` uploads 8 MiB from a file to a Linux server that
/// hashes it, replies and closes.
pub fn ucat_connect_uploads(medium: Medium) {
    let start = Instant::now();
    let data = TempFile::new("up");
    let len = 8 * MIB;
    write_pseudo_random(Path::new(data.path()), len as usize, 4);
    let want = sha256(data.path());
    let mut rig = Rig::new(medium, "uup", S_UPLOAD);
    let mut server = rig.python_server(py::SERVER, &["5001", "sink", "thanks", "60"]);
    let kip = rig.kernel_ip.clone();
    rig.launch(ToolSpec::ucat(&["connect", &kip, "5001"]).stdin(Input::File(data.0.clone())));
    let u = rig.wait(Duration::from_secs(60));
    let s = server.wait(Duration::from_secs(10));
    let ctx = format!("--- ucat ---\n{u}\n--- server ---\n{s}");
    assert_eq!(
        result_field(&s.stdout, "received"),
        Some(len),
        "{medium:?}: server should get 8 MiB\n{ctx}"
    );
    assert_eq!(
        result_str(&s.stdout, "sha256"),
        Some(want.as_str()),
        "{medium:?}: SHA-256 of what the server got\n{ctx}"
    );
    assert_eq!(result_field(&s.stdout, "eof"), Some(1), "{ctx}");
    assert!(
        u.code() == Some(0) && !u.killed,
        "{medium:?}: ucat should exit 0\n{ctx}"
    );
    assert_eq!(u.stdout, "thanks\n", "{medium:?}: ucat's stdout\n{ctx}");
    timing("ucat_connect_uploads", medium, start);
}

/// 5: `ucat listen` with stdin /dev/null (so it half-closes at once)
/// receives 8 MiB from a Linux client into a file.
pub fn ucat_listen_downloads(medium: Medium) {
    let start = Instant::now();
    let data = TempFile::new("down-src");
    let got = TempFile::new("down-got");
    let len = 8 * MIB;
    write_pseudo_random(Path::new(data.path()), len as usize, 5);
    let mut rig = Rig::new(medium, "udown", S_DOWNLOAD);
    rig.launch(ToolSpec::ucat(&["listen", "5002"]).stdout_to(got.path()));
    let out = rig.python(
        py::UPLOAD,
        &[&rig.stack_ip, "5002", data.path(), "60"],
        Duration::from_secs(70),
    );
    let u = rig.wait(Duration::from_secs(30));
    let ctx = format!("--- client ---\n{out}\n--- ucat ---\n{u}");
    let f = |k| result_field(&out.stdout, k);
    assert_eq!(
        f("sent"),
        Some(len),
        "{medium:?}: client should send 8 MiB\n{ctx}"
    );
    assert!(
        f("eof") == Some(1) && f("received") == Some(0),
        "{medium:?}: the client should see ucat's FIN (EOF, no data)\n{ctx}"
    );
    assert!(
        u.code() == Some(0) && !u.killed,
        "{medium:?}: ucat should exit 0\n{ctx}"
    );
    if let Some((a, b, at)) = first_difference(data.path(), got.path()) {
        panic!("{medium:?}: ucat's stdout differs from what was sent: sent {a} bytes, got {b}, first difference at {at}\n{ctx}");
    }
    timing("ucat_listen_downloads", medium, start);
}

/// 6, second half: `ucat connect` with stdin at EOF at once half-closes,
/// and still receives everything the Linux server sends afterwards.
pub fn ucat_half_closed_still_receives(medium: Medium) {
    let start = Instant::now();
    let got = TempFile::new("late");
    let mut rig = Rig::new(medium, "ulate", S_LATE);
    let mut server = rig.python_server(py::SERVER, &["5003", "late", "1048576", "60"]);
    let kip = rig.kernel_ip.clone();
    rig.launch(ToolSpec::ucat(&["connect", &kip, "5003"]).stdout_to(got.path()));
    let u = rig.wait(Duration::from_secs(40));
    let s = server.wait(Duration::from_secs(10));
    let ctx = format!("--- ucat ---\n{u}\n--- server ---\n{s}");
    assert!(
        result_field(&s.stdout, "early") == Some(0) && result_field(&s.stdout, "eof") == Some(1),
        "{medium:?}: the server should see ucat's FIN and no data\n{ctx}"
    );
    assert_eq!(result_field(&s.stdout, "sent"), Some(MIB), "{ctx}");
    assert!(
        u.code() == Some(0) && !u.killed,
        "{medium:?}: ucat should exit 0\n{ctx}"
    );
    let len = std::fs::metadata(got.path()).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        Some(sha256(got.path()).as_str()),
        result_str(&s.stdout, "sha256"),
        "{medium:?}: what ucat wrote ({len} bytes) should be what the server sent after ucat's FIN\n{ctx}"
    );
    timing("ucat_half_closed_still_receives", medium, start);
}

/// 7: the Linux server aborts (SO_LINGER 0: RST); ucat says so in one line
/// and exits 1.
pub fn ucat_sees_reset(medium: Medium) {
    let start = Instant::now();
    let mut rig = Rig::new(medium, "urst", S_RST);
    let mut server = rig.python_server(py::SERVER, &["5004", "rst", "-", "30"]);
    let kip = rig.kernel_ip.clone();
    rig.launch(ToolSpec::ucat(&["connect", &kip, "5004"]).stdin(Input::Pipe));
    rig.tool().write_stdin(b"hello\n");
    let u = rig.wait(Duration::from_secs(20));
    let s = server.wait(Duration::from_secs(10));
    let ctx = format!("--- server ---\n{s}");
    assert_eq!(
        result_str(&s.stdout, "line"),
        Some("hello"),
        "{medium:?}: the server should get ucat's line before aborting\n{u}\n{ctx}"
    );
    assert_ucat_fails(&u, "ucat: connection reset by peer", &ctx);
    timing("ucat_sees_reset", medium, start);
}

/// tcpecho stopped with SIGINT ends the connections it has open, so that
/// Linux peers see the end instead of hanging: an idle one gets a FIN
/// (EOF), one whose echo is stuck behind a window the peer keeps full gets
/// its FIN acknowledged or, after the grace period, a reset. tcpecho says
/// how each ended and exits 0.
pub fn tcpecho_ends_connections_at_exit(medium: Medium) {
    let start = Instant::now();
    let mut rig = Rig::tcpecho(medium, "tend", S_AT_EXIT, &[]);
    let ip = rig.stack_ip.clone();
    let mut idle = rig.python_server(py::AT_EXIT, &[&ip, "7", "idle", "0"]);
    let mut stuffed = rig.python_server(py::AT_EXIT, &[&ip, "7", "stuffed", "3"]);
    let stopped = rig.stop();
    let i = idle.wait(Duration::from_secs(20));
    let s = stuffed.wait(Duration::from_secs(25));
    let ctx = format!("{stopped}\n--- idle peer ---\n{i}\n--- stuffed peer ---\n{s}");
    assert_tcpecho_exits_0(&stopped);
    assert_eq!(
        result_str(&i.stdout, "end"),
        Some("eof"),
        "{medium:?}: an idle peer should read EOF when tcpecho stops\n{ctx}"
    );
    let stuffed_end = result_str(&s.stdout, "end");
    assert!(
        matches!(stuffed_end, Some("eof" | "reset")),
        "{medium:?}: a peer with echo data pending should see EOF or a reset when tcpecho stops\n{ctx}"
    );
    assert!(
        result_field(&s.stdout, "stuffed").is_some_and(|n| n > 0),
        "{ctx}"
    );
    let line = stopped
        .stdout
        .lines()
        .find(|l| l.contains("connections open at exit"))
        .unwrap_or_else(|| panic!("tcpecho should say how its connections ended\n{ctx}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.iter().sum::<u64>(), 2, "{line}\n{ctx}");
    eprintln!(
        "tcpecho_ends_connections_at_exit: idle peer eof, stuffed peer {}; tcpecho:{line} ({:.1} s)",
        stuffed_end.unwrap_or("?"),
        start.elapsed().as_secs_f64()
    );
}

/// `ucat --udp` sends 100,000 bytes of standard input in datagrams that fit
/// the MTU unfragmented (1472 bytes at MTU 1500; socat, reading 8 KiB at a
/// time, got 16,384 bytes of the 65,507-byte datagrams sent before): a
/// Python receiver gets every byte, in datagrams no bigger;
/// `--max-datagram 4000` sends larger ones.
pub fn ucat_udp_datagrams_fit_the_mtu(medium: Medium) {
    let start = Instant::now();
    let data = TempFile::new("ucatudp");
    let len: u64 = 100_000;
    write_pseudo_random(Path::new(data.path()), len as usize, 5);
    let want_sha = sha256(data.path());
    for (tag, max, extra) in [
        ("ucu", 1472, &[][..]),
        ("ucx", 4000, &["--max-datagram", "4000"][..]),
    ] {
        let mut rig = Rig::new(medium, tag, S_UDP_CAT);
        let mut sink = rig.python_server(py::UDP_SINK, &["5005", &len.to_string(), "30"]);
        let kip = rig.kernel_ip.clone();
        let mut args = vec!["--udp"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["connect", &kip, "5005"]);
        // Through a pipe, written once launch has given the kernel side
        // its address (datagrams sent before that would be dropped).
        rig.launch(ToolSpec::ucat(&args).stdin(Input::Pipe));
        rig.tool()
            .write_stdin(&std::fs::read(&data.0).expect("read data file"));
        rig.tool().close_stdin();
        let u = rig.wait(Duration::from_secs(30));
        let s = sink.wait(Duration::from_secs(35));
        let ctx = format!("{u}\n--- receiver ---\n{s}");
        assert_eq!(u.code(), Some(0), "{medium:?}: ucat --udp {extra:?}\n{ctx}");
        assert_eq!(result_field(&s.stdout, "bytes"), Some(len), "{ctx}");
        assert_eq!(
            result_str(&s.stdout, "sha"),
            Some(want_sha.as_str()),
            "{ctx}"
        );
        assert_eq!(result_field(&s.stdout, "biggest"), Some(max), "{ctx}");
    }
    timing("ucat_udp_datagrams_fit_the_mtu", medium, start);
}

/// 8: `ucat connect` to a closed Linux port: one line, exit 1.
pub fn ucat_connect_refused(medium: Medium) {
    let start = Instant::now();
    let mut rig = Rig::new(medium, "uref", S_UREFUSED);
    let kip = rig.kernel_ip.clone();
    rig.launch(ToolSpec::ucat(&[
        "--connect-timeout",
        "10",
        "connect",
        &kip,
        "9",
    ]));
    let u = rig.wait(Duration::from_secs(20));
    assert_ucat_fails(
        &u,
        &format!("ucat: connect to {kip}:9: connection refused"),
        "",
    );
    timing("ucat_connect_refused", medium, start);
}

/// 9: the handshake with Linux negotiates window scaling, SACK and
/// timestamps both ways; every checksum in the capture is good.
pub fn options_negotiated(medium: Medium) {
    let start = Instant::now();
    let pcap = TempFile::new("tcp-pcap");
    let mut rig = Rig::tcpecho(medium, "topts", S_OPTIONS, &["--pcap", pcap.path()]);
    let out = rig.python(py::ONE, &[&rig.stack_ip, "7"], Duration::from_secs(10));
    let stopped = rig.stop();
    assert_eq!(
        result_field(&out.stdout, "echo"),
        Some(1),
        "{medium:?}: one echo\n{out}\n{stopped}"
    );
    assert_tcpecho_exits_0(&stopped);
    let file = pcap.path();
    let all = crate::tshark_frames(file, "frame");
    let dump = all.join("\n");
    let (s, k) = (&rig.stack_ip, &rig.kernel_ip);
    let count = |f: &str| crate::tshark_frames(file, f).len();
    let opts = "tcp.options.wscale.shift && tcp.options.sack_perm && tcp.options.timestamp.tsval";
    let syn = format!("ip.src == {k} && tcp.flags.syn == 1 && tcp.flags.ack == 0");
    let synack = format!("ip.src == {s} && tcp.flags.syn == 1 && tcp.flags.ack == 1");
    assert_eq!(count(&syn), 1, "{medium:?}: one SYN from Linux:\n{dump}");
    assert_eq!(
        count(&synack),
        1,
        "{medium:?}: one SYN-ACK from the stack:\n{dump}"
    );
    assert_eq!(
        count(&format!("{syn} && {opts}")),
        1,
        "{medium:?}: Linux's SYN should carry wscale, SACK-permitted, timestamps:\n{dump}"
    );
    assert_eq!(
        count(&format!("{synack} && {opts}")),
        1,
        "{medium:?}: the stack's SYN-ACK should carry wscale, SACK-permitted, timestamps:\n{dump}"
    );
    let bad = crate::tshark_frames(
        file,
        "ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" \
         || _ws.malformed || _ws.expert.severity == error",
    );
    assert!(
        bad.is_empty(),
        "{medium:?}: bad checksums / malformed / expert errors:\n{}\n--- whole capture ---\n{dump}",
        bad.join("\n")
    );
    let tcp = count("tcp");
    let good = count("tcp.checksum.status == \"Good\"");
    assert!(
        tcp >= 8 && good == tcp,
        "{medium:?}: all {tcp} TCP segments should have a checked, good checksum ({good}):\n{dump}"
    );
    // Timestamps on every segment of the connection, once negotiated.
    let no_ts = count("tcp && !tcp.options.timestamp.tsval && !(tcp.flags.reset == 1)");
    assert_eq!(no_ts, 0, "{medium:?}: segments without timestamps:\n{dump}");
    timing("options_negotiated", medium, start);
}

/// 10: 4 MiB intact through 1 % loss and 5 ms delay (the stack's own
/// impairment layer, both directions).
pub fn impaired_path_echoes(medium: Medium) {
    let start = Instant::now();
    let mut rig = Rig::tcpecho(
        medium,
        "timp",
        S_IMPAIRED,
        &["--impair", "loss=1%,delay=5ms", "--seed", "7"],
    );
    let total = 4 * MIB;
    let out = rig.python(
        py::BULK,
        &[&rig.stack_ip, "7", &total.to_string(), "10", "60"],
        Duration::from_secs(75),
    );
    let f = |k| result_field(&out.stdout, k);
    check(
        out.success()
            && f("sent") == Some(total)
            && f("received") == Some(total)
            && f("match") == Some(1)
            && f("eof") == Some(1),
        &mut rig,
        "4 MiB should echo intact through loss=1%,delay=5ms within 60 s",
        &out,
    );
    let stopped = rig.stop();
    assert_tcpecho_exits_0(&stopped);
    eprintln!("impaired {medium:?}: {}", out.stdout.trim());
    timing("impaired_path_echoes", medium, start);
}

macro_rules! tcp_tests {
    ($m:ident, $medium:expr, [$($extra:literal),*], [$($test:ident),* $(,)?]) => {
        mod $m {
            use super::Medium;
            const TOOLS: &[&str] = &[$($extra),*];
            $(
                #[test]
                fn $test() {
                    if crate::harness::preconditions(
                        concat!("tcp::", stringify!($m), "::", stringify!($test)),
                        TOOLS,
                    ) {
                        super::$test($medium);
                    }
                }
            )*
        }
    };
}

tcp_tests!(
    tun,
    Medium::Tun,
    ["tshark"],
    [
        bulk_echo_64mib,
        echo_segments_fit_the_mtu,
        hundred_concurrent_connections,
        closed_port_refuses,
        ucat_connect_uploads,
        ucat_listen_downloads,
        ucat_half_closed_still_receives,
        ucat_sees_reset,
        ucat_connect_refused,
        options_negotiated,
        impaired_path_echoes,
        discard_and_source_ports,
        offload_echo_both_ways,
        tcpecho_ends_connections_at_exit,
        ucat_udp_datagrams_fit_the_mtu,
    ]
);
tcp_tests!(
    tap,
    Medium::Tap,
    [],
    [
        bulk_echo_64mib,
        echo_segments_fit_the_mtu,
        hundred_concurrent_connections,
        closed_port_refuses,
        ucat_connect_uploads,
        ucat_listen_downloads,
        offload_echo_both_ways,
    ]
);
tcp_tests!(
    raw,
    Medium::Raw,
    [],
    [
        bulk_echo_64mib,
        echo_segments_fit_the_mtu,
        hundred_concurrent_connections,
        closed_port_refuses,
        ucat_connect_uploads,
        ucat_listen_downloads,
        offload_echo_both_ways,
        impaired_path_echoes,
    ]
);
