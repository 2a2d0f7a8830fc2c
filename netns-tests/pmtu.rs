//! Path MTU discovery against Linux (RFC 1191): the stack on a TUN in
//! namespace A, whose kernel routes (ip_forward=1) to namespace B over a
//! veth pair; half way through an 8 MiB transfer the MTU of A's next hop
//! drops from 1500 to 1280, so A's kernel answers oversized datagrams
//! with ICMP "fragmentation needed".
//!
//! ```text
//!   ucat (stack) 10.1.S.2 --TUN ustk0-- 10.1.S.1 [A, router] 10.6.S.1 --veth-- 10.6.S.2 [B, python]
//! ```
//!
//! * `stack_sends_through_an_mtu_drop`: ucat uploads to B; A's veth
//!   (towards B) drops to 1280; the stack must learn the path MTU from A's
//!   ICMP, shrink its MSS and resend, and B gets every byte.
//! * `linux_sends_through_an_mtu_drop`: B's kernel uploads to ucat; A's
//!   TUN (towards the stack) drops to 1280; Linux does its own PMTUD, and
//!   the stack must take the smaller segments (and its ACKs get through).

use std::time::Duration;

use crate::harness::{preconditions, sha256, Input, Medium, Netns, Rig, TempFile, Tool, ToolSpec};
use crate::py::{result_field, result_str};

const S_SEND: u8 = 50;
const S_RECV: u8 = 51;
const LEN: usize = 8 << 20;
const HALF: usize = LEN / 2;

/// `SINK PORT HALF LIMIT_SECS`: accepts one connection, reads to EOF
/// hashing what it gets, says `HALF n` on stderr once it has HALF bytes;
/// `RESULT received= sha256=`.
const SINK: &str = r#"
import hashlib, socket, sys
port, half, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
l = socket.socket(socket.AF_INET6)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
l.bind(("::", port))
l.listen(1)
l.settimeout(limit)
sys.stderr.write("READY\n"); sys.stderr.flush()
c, _ = l.accept()
c.settimeout(limit)
h, n, said = hashlib.sha256(), 0, False
try:
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
        if not said and n >= half:
            said = True
            sys.stderr.write("HALF %d\n" % n); sys.stderr.flush()
except Exception as e:
    print("ERROR %r" % (e,))
print("RESULT received=%d sha256=%s" % (n, h.hexdigest()), flush=True)
c.close()
"#;

/// `SENDER HOST PORT FILE HALF LIMIT_SECS`: connects (retrying until the
/// deadline), sends the file's first HALF bytes, waits until the kernel
/// has them all acknowledged (SIOCOUTQ 0), says `HALF` on stderr, waits
/// for a line on stdin, sends the rest, shuts down writing and reads to
/// EOF. `RESULT sent= mss=` (mss: TCP_MAXSEG at the end, the MSS the
/// kernel's PMTUD left it with).
const SENDER: &str = r#"
import fcntl, socket, struct, sys, termios, time
host, port, path, half, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
deadline = time.time() + limit
data = open(path, "rb").read()
while True:
    try:
        s = socket.create_connection((host, port), timeout=2)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
s.settimeout(limit)
def outq():
    return struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
s.sendall(data[:half])
while outq() > 0 and time.time() < deadline:
    time.sleep(0.01)
sys.stderr.write("HALF %d\n" % outq()); sys.stderr.flush()
sys.stdin.readline()
s.sendall(data[half:])
s.shutdown(socket.SHUT_WR)
while outq() > 0 and time.time() < deadline:
    time.sleep(0.01)
while s.recv(1 << 16):
    pass
mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
print("RESULT sent=%d mss=%d" % (len(data), mss), flush=True)
s.close()
"#;

/// Deterministic pseudo-random bytes (xorshift64*).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The TUN rig (A: kernel side of the TUN, and router) plus namespace B
/// behind a veth pair `ustkv0` (A, 10.6.S.1) -- `ustkv1` (B, 10.6.S.2).
struct Topology {
    /// B, with the Linux peer.
    b: Netns,
    rig: Rig,
    b_ip: String,
    /// IPv6 instead of IPv4 between the stack and B (fd00:S::/64 on the
    /// TUN, fd01:S::/64 on the veth; the IPv4 addresses stay).
    v6: bool,
}

impl Topology {
    fn new(tag: &str, subnet: u8) -> Topology {
        Topology::with(tag, subnet, false)
    }

    /// The same with IPv6 between the stack and B.
    fn new_v6(tag: &str, subnet: u8) -> Topology {
        Topology::with(tag, subnet, true)
    }

    fn with(tag: &str, subnet: u8, v6: bool) -> Topology {
        let rig = Rig::new(Medium::Tun, tag, subnet);
        let b = Netns::new(&format!("{tag}b"));
        let a = &rig.kernel;
        a.ip(&[
            "link",
            "add",
            "ustkv0",
            "type",
            "veth",
            "peer",
            "name",
            "ustkv1",
            "netns",
            b.name(),
        ]);
        a.ip(&[
            "addr",
            "add",
            &format!("10.6.{subnet}.1/24"),
            "dev",
            "ustkv0",
        ]);
        a.ip(&["link", "set", "ustkv0", "up"]);
        b.ip(&[
            "addr",
            "add",
            &format!("10.6.{subnet}.2/24"),
            "dev",
            "ustkv1",
        ]);
        b.ip(&["link", "set", "ustkv1", "up"]);
        b.ip(&[
            "route",
            "add",
            "default",
            "via",
            &format!("10.6.{subnet}.1"),
        ]);
        // A routes between the TUN and the veth (namespace-local sysctl).
        a.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let mut b_ip = format!("10.6.{subnet}.2");
        if v6 {
            a.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
            a.add_ipv6("ustkv0", &format!("fd01:{subnet}::1/64"));
            b.add_ipv6("ustkv1", &format!("fd01:{subnet}::2/64"));
            b.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("fd01:{subnet}::1"),
            ]);
            b_ip = format!("fd01:{subnet}::2");
        }
        Topology { b, rig, b_ip, v6 }
    }

    fn gateway(&self) -> String {
        self.rig.kernel_ip.clone()
    }

    /// The stack's IPv6 address (with `v6`).
    fn stack_v6(&self) -> String {
        format!("fd00:{}::2", self.subnet())
    }

    fn subnet(&self) -> u8 {
        self.rig
            .stack_ip
            .split('.')
            .nth(2)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    }

    /// The device flags beyond the rig's: the IPv6 address.
    fn extra_addr(&self) -> Vec<String> {
        if self.v6 {
            vec!["--addr".into(), format!("{}/64", self.stack_v6())]
        } else {
            Vec::new()
        }
    }

    /// After the tool started (and made the TUN): A's IPv6 side of it.
    fn tun_up(&self) {
        if self.v6 {
            let cidr = format!("fd00:{}::1/64", self.subnet());
            self.rig.kernel.add_ipv6("ustk0", &cidr);
        }
    }

    /// IP and TCP headers.
    fn headers(&self) -> usize {
        if self.v6 {
            60
        } else {
            40
        }
    }
}

/// The last `ucat --progress` line's `key N` value (e.g. "pmtu").
fn progress_value(stderr: &str, key: &str) -> Option<usize> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("ucat: ") && l.contains(" pmtu "))?;
    line.split(", ")
        .find_map(|part| part.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn stack_sends() {
    stack_sends_on(Topology::new("pms", S_SEND));
}

fn stack_sends_on(mut t: Topology) {
    let mut sink = Tool::start(
        &t.b,
        ToolSpec::python_server(SINK, &["5001", &HALF.to_string(), "90"]),
    );
    let gw = t.gateway();
    let b_ip = t.b_ip.clone();
    let extra = t.extra_addr();
    let mut args: Vec<&str> = extra.iter().map(|x| x.as_str()).collect();
    args.extend_from_slice(&["--progress", "--gateway", &gw, "connect", &b_ip, "5001"]);
    t.rig.launch(ToolSpec::ucat(&args).stdin(Input::Pipe));
    t.tun_up();
    let bytes = data(LEN, 50);
    let file = TempFile::new("pmtu-send");
    std::fs::write(&file.0, &bytes).expect("write data file");
    let want = sha256(file.path());
    t.rig.tool().write_stdin(&bytes[..HALF]);
    if !sink.wait_stderr("HALF", Duration::from_secs(60)) {
        let u = t.rig.stop();
        let s = sink.stop();
        panic!("the first half did not arrive\n--- ucat ---\n{u}\n--- sink ---\n{s}");
    }
    // The next hop towards B shrinks: A's kernel now answers 1500-byte
    // datagrams with DF by "fragmentation needed, next-hop MTU 1280".
    t.rig.kernel.ip(&["link", "set", "ustkv0", "mtu", "1280"]);
    t.rig.tool().write_stdin(&bytes[HALF..]);
    t.rig.tool().close_stdin();
    let u = t.rig.wait(Duration::from_secs(90));
    let s = sink.wait(Duration::from_secs(10));
    let ctx = format!("--- ucat ---\n{u}\n--- sink ---\n{s}");
    assert_eq!(
        result_field(&s.stdout, "received"),
        Some(LEN as u64),
        "B should get 8 MiB\n{ctx}"
    );
    assert_eq!(
        result_str(&s.stdout, "sha256"),
        Some(want.as_str()),
        "SHA-256 of what B got\n{ctx}"
    );
    assert!(
        u.code() == Some(0) && !u.killed,
        "ucat should exit 0\n{ctx}"
    );
    assert_eq!(
        progress_value(&u.stderr, "pmtu"),
        Some(1280),
        "the stack learned the path MTU from A's ICMP\n{ctx}"
    );
    assert_eq!(
        progress_value(&u.stderr, "mss"),
        Some(1280 - t.headers() - 12),
        "and its send MSS shrank (IP, TCP, timestamps)\n{ctx}"
    );
    eprintln!(
        "stack_sends_through_an_mtu_drop: last progress line: {}",
        u.stderr
            .lines()
            .rev()
            .find(|l| l.contains(" pmtu "))
            .unwrap_or_default()
    );
}

fn linux_sends() {
    linux_sends_on(Topology::new("pmr", S_RECV));
}

fn linux_sends_on(mut t: Topology) {
    let gw = t.gateway();
    let got = TempFile::new("pmtu-recv");
    let extra = t.extra_addr();
    let mut args: Vec<&str> = extra.iter().map(|x| x.as_str()).collect();
    args.extend_from_slice(&["--gateway", &gw, "listen", "5002"]);
    t.rig.launch(ToolSpec::ucat(&args).stdout_to(got.path()));
    t.tun_up();
    let bytes = data(LEN, 51);
    let file = TempFile::new("pmtu-src");
    std::fs::write(&file.0, &bytes).expect("write data file");
    let want = sha256(file.path());
    let stack_ip = if t.v6 {
        t.stack_v6()
    } else {
        t.rig.stack_ip.clone()
    };
    let mut sender = Tool::start(
        &t.b,
        ToolSpec::new(
            "python3",
            &[
                "-c",
                SENDER,
                &stack_ip,
                "5002",
                file.path(),
                &HALF.to_string(),
                "90",
            ],
        )
        .stdin(Input::Pipe),
    );
    if !sender.wait_stderr("HALF", Duration::from_secs(60)) {
        let s = sender.stop();
        let u = t.rig.stop();
        panic!("the first half was not acknowledged\n--- sender ---\n{s}\n--- ucat ---\n{u}");
    }
    // The last hop, A's TUN towards the stack, shrinks: A answers B's
    // 1500-byte datagrams with "fragmentation needed, 1280".
    t.rig.kernel.ip(&["link", "set", "ustk0", "mtu", "1280"]);
    sender.write_stdin(b"go\n");
    let s = sender.wait(Duration::from_secs(90));
    let u = t.rig.wait(Duration::from_secs(30));
    let ctx = format!("--- sender ---\n{s}\n--- ucat ---\n{u}");
    assert_eq!(
        result_field(&s.stdout, "sent"),
        Some(LEN as u64),
        "B should send 8 MiB\n{ctx}"
    );
    let mss = result_field(&s.stdout, "mss").unwrap_or(u64::MAX);
    assert!(
        mss <= (1280 - t.headers()) as u64,
        "Linux's PMTUD should have shrunk its MSS (TCP_MAXSEG {mss})\n{ctx}"
    );
    assert!(
        u.code() == Some(0) && !u.killed,
        "ucat should exit 0\n{ctx}"
    );
    assert_eq!(
        sha256(got.path()),
        want,
        "SHA-256 of what the stack got\n{ctx}"
    );
}

#[test]
fn stack_sends_through_an_mtu_drop() {
    if preconditions("pmtu::stack_sends_through_an_mtu_drop", &["sha256sum"]) {
        stack_sends();
    }
}

#[test]
fn linux_sends_through_an_mtu_drop() {
    if preconditions("pmtu::linux_sends_through_an_mtu_drop", &["sha256sum"]) {
        linux_sends();
    }
}

const S_SEND6: u8 = 52;
const S_RECV6: u8 = 53;

/// The same over IPv6: A answers with ICMPv6 Packet Too Big (RFC 8201).
#[test]
fn stack_sends_through_an_mtu_drop_v6() {
    if preconditions("pmtu::stack_sends_through_an_mtu_drop_v6", &["sha256sum"]) {
        stack_sends_on(Topology::new_v6("pms6", S_SEND6));
    }
}

#[test]
fn linux_sends_through_an_mtu_drop_v6() {
    if preconditions("pmtu::linux_sends_through_an_mtu_drop_v6", &["sha256sum"]) {
        linux_sends_on(Topology::new_v6("pmr6", S_RECV6));
    }
}
