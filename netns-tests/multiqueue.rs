//! One stack per queue of a multi-queue TUN/TAP device (`--queues N`):
//! Linux's connections and datagrams spread over the queues by the
//! kernel's flow hash, each one served whole by the stack that got it.
//! Subnets 10.M.36/37/38.0/24.

use std::time::Duration;

use crate::harness::{Medium, Netns, Rig, Stopped, TCPECHO};
use crate::py::{self, result_field};

const S_MQ_TCP: u8 = 36;
const S_MQ_UDP: u8 = 37;

/// The `    queue I: N what, ...` lines of a multi-queue report: for each
/// queue in order, the number in front of `what`.
fn per_queue(report: &str, what: &str) -> Vec<u64> {
    report
        .lines()
        .filter_map(|l| l.trim().strip_prefix("queue "))
        .filter_map(|l| {
            let (_, rest) = l.split_once(": ")?;
            rest.split(", ").find_map(|f| {
                let (n, w) = f.split_once(' ')?;
                (w == what).then(|| n.parse().ok())?
            })
        })
        .collect()
}

/// A counter line (`    N what`) of a report, as N.
fn counter(report: &str, what: &str) -> Option<u64> {
    report.lines().find_map(|l| {
        let (n, rest) = l.trim().split_once(' ')?;
        (rest == what).then(|| n.parse().ok())?
    })
}

fn exited_0(stopped: &Stopped) {
    assert_eq!(
        stopped.code(),
        Some(0),
        "should exit 0 on SIGINT\n{stopped}"
    );
}

/// `tcpecho --queues 2`: 32 concurrent connections from Linux, each echoes
/// its own message exactly; the totals count 32 passive opens, and both
/// queues carried some (32 connections hashed to one of two queues: 1 in
/// 2^31); no segment reached a stack that did not own its connection (no
/// segment for no socket, no reset sent); SIGUSR1 makes each queue report.
pub fn tcpecho_two_queues(medium: Medium) {
    const CONNS: u64 = 32;
    let mut rig = Rig::tcpecho(medium, "tmq", S_MQ_TCP, &["--queues", "2"]);
    let out = rig.python(
        py::MANY,
        &[&rig.stack_ip, "7", &CONNS.to_string(), "77", "40"],
        Duration::from_secs(50),
    );
    // SIGUSR1: every queue's stack reports, under its own header (the
    // main thread holds the signals and tells each stack thread).
    rig.tool().signal(libc::SIGUSR1);
    let reported = rig
        .tool()
        .wait_stderr("tcpecho: queue 1:", Duration::from_secs(5));
    let stopped = rig.stop();
    for q in 0..2 {
        assert!(
            reported && stopped.stderr.contains(&format!("tcpecho: queue {q}:\n")),
            "{medium:?}: SIGUSR1 should make queue {q} report\n{stopped}"
        );
    }
    assert!(
        py::many_all_echoed(&out, CONNS),
        "{medium:?}: {CONNS} connections over 2 queues should all echo their own message\n{out}\n{stopped}"
    );
    exited_0(&stopped);
    let report = &stopped.stdout;
    assert_eq!(
        counter(report, "passive connection openings"),
        Some(CONNS),
        "{medium:?}: the totals should count every connection\n{stopped}"
    );
    let opens = per_queue(report, "passive connection openings");
    assert!(
        opens.len() == 2 && opens.iter().sum::<u64>() == CONNS && opens.iter().all(|&n| n > 0),
        "{medium:?}: both queues should have accepted connections, {CONNS} in all: {opens:?}\n{stopped}"
    );
    assert_eq!(
        (
            counter(report, "segments for no socket"),
            counter(report, "resets sent")
        ),
        (Some(0), Some(0)),
        "{medium:?}: a segment reached a queue whose stack does not have its connection\n{stopped}"
    );
    eprintln!("tcpecho --queues 2 ({medium:?}): passive opens per queue {opens:?}");
}

/// `FLOWS HOST PORT N`: N UDP sockets (N source ports, N flows) each send
/// `flow I` and wait up to 2 s for the echo, sending once more if it does
/// not come. `RESULT ok= missing=`.
const FLOWS: &str = r#"
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = missing = 0
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.settimeout(2.0)
    socks.append(s)
for i, s in enumerate(socks):
    msg = b"flow %d" % i
    for attempt in range(2):
        s.send(msg)
        try:
            if s.recv(100) == msg:
                ok += 1
                break
        except socket.timeout:
            pass
    else:
        print("MISSING flow %d" % i)
        missing += 1
print("RESULT ok=%d missing=%d" % (ok, missing))
"#;

/// `udpecho --queues 2`: 64 flows, every datagram echoed, both queues
/// used.
pub fn udpecho_two_queues(medium: Medium) {
    let mut rig = Rig::start(medium, "umq", S_MQ_UDP, &["--queues", "2"]);
    let out = rig.python(FLOWS, &[&rig.stack_ip, "7", "64"], Duration::from_secs(60));
    let stopped = rig.stop();
    assert!(
        out.success() && result_field(&out.stdout, "ok") == Some(64),
        "{medium:?}: 64 flows over 2 queues should all be echoed\n{out}\n{stopped}"
    );
    exited_0(&stopped);
    let got = per_queue(&stopped.stdout, "packets received");
    assert!(
        got.len() == 2 && got.iter().sum::<u64>() >= 64 && got.iter().all(|&n| n > 0),
        "{medium:?}: both queues should have echoed datagrams: {got:?}\n{stopped}"
    );
    assert!(
        counter(&stopped.stdout, "packets received") == Some(got.iter().sum()),
        "{medium:?}: the totals should be the queues' sum\n{stopped}"
    );
}

/// `--queues 2` where it cannot work: an existing single-queue TUN of that
/// name, and a raw socket. Both exit 1 with a message saying why.
pub fn refused_where_they_cannot_work() {
    let ns = Netns::new("mqerr");
    ns.ip(&["tuntap", "add", "mode", "tun", "name", "ustk0"]);
    let out = ns.exec(
        &[
            TCPECHO,
            "--tun",
            "ustk0",
            "--addr",
            "10.1.38.2/24",
            "--queues",
            "2",
        ],
        Duration::from_secs(10),
    );
    assert!(
        out.status.and_then(|s| s.code()) == Some(1)
            && out.stderr.contains(
                "cannot attach 2 queues to TUN device 'ustk0': it exists but is not a multi-queue TUN device"
            ),
        "an existing single-queue device should be refused clearly\n{out}"
    );
    let out = ns.exec(
        &[
            TCPECHO,
            "--raw",
            "lo",
            "--addr",
            "10.1.38.2/24",
            "--queues",
            "2",
        ],
        Duration::from_secs(10),
    );
    assert!(
        out.status.and_then(|s| s.code()) == Some(1)
            && out
                .stderr
                .contains("several queues need a multi-queue device: --tun NAME or --tap NAME"),
        "--raw with --queues 2 should be refused clearly\n{out}"
    );
}

macro_rules! mq_tests {
    ($($name:ident: $body:expr;)*) => {
        $(
            #[test]
            fn $name() {
                if crate::harness::preconditions(concat!("multiqueue::", stringify!($name)), &[]) {
                    $body;
                }
            }
        )*
    };
}

mq_tests! {
    tcpecho_two_queues_tun: tcpecho_two_queues(Medium::Tun);
    tcpecho_two_queues_tap: tcpecho_two_queues(Medium::Tap);
    udpecho_two_queues_tun: udpecho_two_queues(Medium::Tun);
    queues_refused_clearly: refused_where_they_cannot_work();
}
