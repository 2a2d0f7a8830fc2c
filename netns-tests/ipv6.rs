//! IPv6 against Linux on a TUN, a TAP and a raw socket on a veth (issue 7,
//! first part): `tcpecho` with an IPv4 and an IPv6 address on the same
//! device; from Linux in the namespace, `ping -6` gets replies, 8 MiB echo intact over IPv6 while an
//! IPv4 connection echoes at the same time, a closed TCP port refuses, a
//! closed UDP port answers ICMPv6 port unreachable (Linux reports it to a
//! connected UDP socket as ECONNREFUSED), UDP echoes over IPv6.

use std::time::Duration;

use crate::harness::{preconditions, Medium, Rig, ToolSpec};

const S_V6: u8 = 60;

const CLIENT: &str = r#"
import hashlib, random, socket, sys, threading
v6, v4 = sys.argv[1], sys.argv[2]
n = 8 << 20
data = random.Random(7).randbytes(n)

def echo(addr, family, payload):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(addr)
    t = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
    t.start()
    got = bytearray()
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        got += b
    t.join()
    s.close()
    return bytes(got)

res = {}
t4 = threading.Thread(target=lambda: res.__setitem__("v4", echo((v4, 7), socket.AF_INET, b"four" * 50000)))
t4.start()
got = echo((v6, 7), socket.AF_INET6, data)
t4.join()
print("v6 bytes", len(got), "sha_ok", hashlib.sha256(got).digest() == hashlib.sha256(data).digest())
print("v4 ok", res.get("v4") == b"four" * 50000)

s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect((v6, 9))
    print("tcp closed: connected?!")
except ConnectionRefusedError:
    print("tcp closed: refused")

u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.settimeout(3)
u.connect((v6, 9))
u.send(b"x")
try:
    u.recv(100)
    print("udp closed: answered?!")
except ConnectionRefusedError:
    print("udp closed: refused")
except socket.timeout:
    print("udp closed: timeout")

u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.settimeout(3)
ok = 0
for i in range(20):
    m = b"dgram %d " % i * (i + 1)
    u.sendto(m, (v6, 7))
    d, a = u.recvfrom(4096)
    ok += d == m and a[0] == v6
print("udp echo", ok)
"#;

fn tcpecho_dual_stack(medium: Medium) {
    let mut rig = Rig::new(medium, "v6", S_V6);
    // Distinct per medium: the TUN and TAP tests run in parallel.
    let net = format!("fd00:{S_V6}:{}", medium as u8 + 1);
    let v6 = format!("{net}::2");
    let kv6 = format!("{net}::1");
    rig.launch(ToolSpec::tcpecho(&["--addr", &format!("{v6}/64")]));
    rig.kernel.add_ipv6(rig.kernel_dev(), &format!("{kv6}/64"));

    let ping = rig.kernel.exec(
        &[
            "ping", "-6", "-n", "-c", "3", "-W", "2", "-i", "0.2", "-w", "15", &v6,
        ],
        Duration::from_secs(20),
    );
    if !ping.stdout.contains(" 3 received") {
        let stopped = rig.stop();
        panic!("{medium:?}: ping -6 {v6}: expected 3 replies:\n{ping}\n{stopped}");
    }

    let out = rig.python(
        CLIENT,
        &[&v6, &rig.stack_ip.clone()],
        Duration::from_secs(120),
    );
    let want = [
        "v6 bytes 8388608 sha_ok True",
        "v4 ok True",
        "tcp closed: refused",
        "udp closed: refused",
        "udp echo 20",
    ];
    let missing: Vec<&str> = want
        .iter()
        .copied()
        .filter(|w| !out.stdout.contains(w))
        .collect();
    eprintln!("ipv6 dual stack on {medium:?}:\n{}", out.stdout.trim());
    let stopped = rig.stop();
    assert!(
        out.success() && missing.is_empty(),
        "{medium:?}: missing {missing:?}:\n{out}\n{stopped}"
    );
    assert!(
        stopped.stdout.contains("Ip6:") && stopped.stdout.contains("Icmp6:"),
        "tcpecho's counters should have IPv6 groups:\n{stopped}"
    );
}

#[test]
fn dual_stack_on_tun() {
    if preconditions("ipv6::dual_stack_on_tun", &["ping"]) {
        tcpecho_dual_stack(Medium::Tun);
    }
}

/// On a TAP, with neighbour discovery: Linux solicits the stack's address
/// and the stack solicits Linux's.
#[test]
fn dual_stack_on_tap() {
    if preconditions("ipv6::dual_stack_on_tap", &["ping"]) {
        tcpecho_dual_stack(Medium::Tap);
    }
}

const UDP_CLIENT: &str = r#"
import socket, sys
v6 = sys.argv[1]
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.settimeout(3)
ok = 0
for i in range(50):
    m = bytes([i % 251]) * (1 + 29 * i)
    u.sendto(m, (v6, 7))
    d, a = u.recvfrom(4096)
    ok += d == m and a[0] == v6
print("udpecho", ok)
"#;

fn udpecho_over_ipv6(medium: Medium) {
    let mut rig = Rig::new(medium, "v6u", S_V6 + 1);
    let net = format!("fd00:{}:{}", S_V6 + 1, medium as u8 + 1);
    let v6 = format!("{net}::2");
    rig.launch(ToolSpec::udpecho(&["--addr", &format!("{v6}/64")]));
    rig.kernel
        .add_ipv6(rig.kernel_dev(), &format!("{net}::1/64"));
    let out = rig.python(UDP_CLIENT, &[&v6], Duration::from_secs(60));
    let stopped = rig.stop();
    assert!(
        out.stdout.contains("udpecho 50"),
        "{medium:?}: udpecho over IPv6:\n{out}\n{stopped}"
    );
}

/// On a raw socket on a veth at its default offloads: Linux's IPv6
/// segments arrive as super-segments with partial checksums.
#[test]
fn dual_stack_on_raw() {
    if preconditions("ipv6::dual_stack_on_raw", &["ping"]) {
        tcpecho_dual_stack(Medium::Raw);
    }
}

#[test]
fn udpecho_on_tun() {
    if preconditions("ipv6::udpecho_on_tun", &[]) {
        udpecho_over_ipv6(Medium::Tun);
    }
}

#[test]
fn udpecho_on_tap() {
    if preconditions("ipv6::udpecho_on_tap", &[]) {
        udpecho_over_ipv6(Medium::Tap);
    }
}

/// UDP from Linux over a veth at its default offloads: partial checksums.
#[test]
fn udpecho_on_raw() {
    if preconditions("ipv6::udpecho_on_raw", &[]) {
        udpecho_over_ipv6(Medium::Raw);
    }
}
