//! IPv6 as a first-class citizen in the threaded API, the tools and the
//! examples (issue 16), against Linux: each runs IPv6-only (no IPv4
//! address at all: the threaded `Stack` used to refuse that) and, where
//! it serves, dual stack (every family given is served: the examples used
//! to listen on `0.0.0.0` only). On TUN, TAP and raw sockets alike.
//! Subnets 10.M.S.0/24 and fd00:S:M::/64 with S from 62; the proxy's
//! server side fd00:9:S::/64.

use std::thread;
use std::time::Duration;

use crate::examples::{example, server_behind_veth, TempDir, ECHO_BOTH, HALF_CLIENT, HALF_SERVER};
use crate::harness::{
    preconditions, sha256, write_pseudo_random, Input, Medium, Rig, TempFile, Tool, ToolSpec,
};
use crate::py::{self, result_field, result_str};

const S_HTTP6: u8 = 62;
const S_HTTP_DUAL: u8 = 63;
/// ucat: four rigs per medium, S to S + 3.
const S_UCAT6: u8 = 64;
const S_PROXY6: u8 = 68;
const S_POLL6: u8 = 69;
const S_THREADED6: u8 = 70;

/// The stack's and the kernel's IPv6 addresses on subnet `s` for `medium`.
fn v6_pair(medium: Medium, s: u8) -> (String, String) {
    let net = format!("fd00:{s}:{}", medium as u8 + 1);
    (format!("{net}::2"), format!("{net}::1"))
}

/// A rig for `medium`: IPv6-only, or dual stack (the rig's IPv4 address
/// too); the tool is started by the caller with `--addr V6/64`.
fn rig(medium: Medium, tag: &str, s: u8, dual: bool) -> Rig {
    if dual {
        Rig::new(medium, tag, s)
    } else {
        Rig::ipv6_only(medium, tag, s)
    }
}

/// http_server with `--addr V6/64` (and IPv4 too when `dual`): curl gets a
/// page and a 256 KiB file intact over IPv6 (and over IPv4 when dual).
fn http_server_over_ipv6(medium: Medium, dual: bool, tag: &str, s: u8) {
    let root = TempDir::new("http6-root");
    write_pseudo_random(&root.0.join("data.bin"), 256 << 10, 16);
    std::fs::write(root.0.join("index.html"), b"<h1>hello over IPv6</h1>\n").unwrap();
    let want = sha256(root.0.join("data.bin").to_str().unwrap());
    let (v6, kv6) = v6_pair(medium, s);
    let mut rig = rig(medium, tag, s, dual);
    rig.launch_v6(
        ToolSpec::new(
            &example("http_server"),
            &["--port", "80", "--root", root.path()],
        )
        .ready("http_server: serving"),
        &v6,
        &kv6,
    );
    let mut bases = vec![("-6", format!("http://[{v6}]"))];
    if dual {
        bases.push(("-4", format!("http://{}", rig.stack_ip)));
    }
    for (family, base) in &bases {
        let got = TempFile::new("http6-got");
        let page = rig.kernel.exec(
            &[
                "curl",
                "-sS",
                "-g",
                family,
                "--max-time",
                "20",
                &format!("{base}/index.html"),
            ],
            Duration::from_secs(30),
        );
        let file = rig.kernel.exec(
            &[
                "curl",
                "-sS",
                "-g",
                family,
                "--max-time",
                "20",
                "-o",
                got.path(),
                &format!("{base}/data.bin"),
            ],
            Duration::from_secs(30),
        );
        let ok = page.success()
            && page.stdout == "<h1>hello over IPv6</h1>\n"
            && file.success()
            && sha256(got.path()) == want;
        if !ok {
            let stopped = rig.stop();
            panic!("{medium:?} (dual: {dual}): curl {family} {base}:\n{page}\n{file}\n{stopped}");
        }
    }
    let stopped = rig.stop();
    assert_eq!(stopped.code(), Some(0), "{stopped}");
    assert!(stopped.stderr.contains(&format!("{v6}/64")), "{stopped}");
}

#[test]
fn http_server_ipv6_only_on_tun() {
    if preconditions(
        "ipv6_tools::http_server_ipv6_only_on_tun",
        &["curl", "sha256sum"],
    ) {
        http_server_over_ipv6(Medium::Tun, false, "h6", S_HTTP6);
    }
}

#[test]
fn http_server_dual_stack_on_tap() {
    if preconditions(
        "ipv6_tools::http_server_dual_stack_on_tap",
        &["curl", "sha256sum"],
    ) {
        http_server_over_ipv6(Medium::Tap, true, "h46", S_HTTP_DUAL);
    }
}

/// `UDP_ECHO PORT LIMIT_SECS`: a Linux UDP server on `[::]:PORT` that
/// answers each datagram with "echo " + the datagram, until LIMIT_SECS.
const UDP_ECHO: &str = r#"
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
deadline = time.monotonic() + limit
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.bind(("::", port))
sys.stderr.write("READY\n"); sys.stderr.flush()
n = 0
while time.monotonic() < deadline:
    u.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        d, a = u.recvfrom(65536)
    except socket.timeout:
        break
    u.sendto(b"echo " + d, a)
    n += 1
    print("RESULT echoed=%d" % n, flush=True)
"#;

/// `UDP_PING HOST PORT`: sends "hello\n" to HOST:PORT every 0.1 s (at
/// most 150 times) until a datagram comes back; prints what came back.
const UDP_PING: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.settimeout(0.1)
sys.stderr.write("READY\n"); sys.stderr.flush()
for i in range(150):
    u.sendto(b"hello\n", (host, port))
    try:
        d, a = u.recvfrom(65536)
    except socket.timeout:
        continue
    print("RESULT got=%s from=%s" % (d.decode(errors="replace").strip(), a[0]))
    break
else:
    print("RESULT got=nothing")
"#;

/// ucat on an IPv6-only stack, both ways, TCP and UDP: `connect` to a
/// Linux server on `[::]`, `listen` for a Linux client over IPv6.
fn ucat_ipv6_only(medium: Medium) {
    let s0 = S_UCAT6;

    // TCP connect: 200 KiB up, the server's answer down.
    let data = TempFile::new("u6-up");
    write_pseudo_random(&data.0, 200 << 10, 61);
    let (v6, kv6) = v6_pair(medium, s0);
    let mut r = Rig::ipv6_only(medium, "u6c", s0);
    let mut server = r.python_server(py::SERVER, &["6001", "sink", "thanks", "40", "::"]);
    r.launch_v6(
        ToolSpec::ucat(&["connect", &kv6, "6001"]).stdin(Input::File(data.0.clone())),
        &v6,
        &kv6,
    );
    let u = r.wait(Duration::from_secs(40));
    let srv = server.wait(Duration::from_secs(10));
    let ctx = format!("{medium:?}: ucat connect over IPv6\n{u}\n{srv}");
    assert!(u.code() == Some(0) && u.stdout == "thanks\n", "{ctx}");
    assert_eq!(
        result_field(&srv.stdout, "received"),
        Some(200 << 10),
        "{ctx}"
    );
    assert_eq!(
        result_str(&srv.stdout, "sha256"),
        Some(sha256(data.path()).as_str()),
        "{ctx}"
    );
    drop(r);

    // TCP listen: a Linux client uploads 200 KiB and gets ucat's stdin.
    let reply = TempFile::new("u6-reply");
    write_pseudo_random(&reply.0, 50 << 10, 62);
    let got = TempFile::new("u6-got");
    let (v6, kv6) = v6_pair(medium, s0 + 1);
    let mut r = Rig::ipv6_only(medium, "u6l", s0 + 1);
    r.launch_v6(
        ToolSpec::ucat(&["listen", "6002"])
            .stdin(Input::File(reply.0.clone()))
            .stdout_to(got.path()),
        &v6,
        &kv6,
    );
    let out = r.python(
        py::UPLOAD,
        &[&v6, "6002", data.path(), "30"],
        Duration::from_secs(40),
    );
    let u = r.wait(Duration::from_secs(30));
    let ctx = format!("{medium:?}: ucat listen over IPv6\n{out}\n{u}");
    let f = |k| result_field(&out.stdout, k);
    assert!(
        f("sent") == Some(200 << 10) && f("received") == Some(50 << 10) && f("eof") == Some(1),
        "{ctx}"
    );
    assert!(u.code() == Some(0), "{ctx}");
    assert_eq!(sha256(got.path()), sha256(data.path()), "{ctx}");
    drop(r);

    // UDP connect: a datagram to a Linux UDP server on [::], its answer back.
    let (v6, kv6) = v6_pair(medium, s0 + 2);
    let mut r = Rig::ipv6_only(medium, "u6uc", s0 + 2);
    let mut server = r.python_server(UDP_ECHO, &["6003", "20"]);
    r.launch_v6(
        ToolSpec::ucat(&["--udp", "connect", &kv6, "6003"]).stdin(Input::Pipe),
        &v6,
        &kv6,
    );
    r.tool().write_stdin(b"over udp\n");
    r.tool().close_stdin();
    let u = r.wait(Duration::from_secs(20));
    let srv = server.stop();
    let ctx = format!("{medium:?}: ucat --udp connect over IPv6\n{u}\n{srv}");
    assert!(
        u.code() == Some(0) && u.stdout == "echo over udp\n",
        "{ctx}"
    );
    drop(r);

    // UDP bulk over IPv6: 50,000 bytes in datagrams that fit the MTU for
    // IPv6 (1452 bytes of payload at MTU 1500), one read of stdin per
    // datagram (not 1472-byte reads cut into 1452 + 20).
    let (v6, kv6) = v6_pair(medium, s0 + 4);
    let mut r = Rig::ipv6_only(medium, "u6ub", s0 + 4);
    let bulk = TempFile::new("u6-udp");
    write_pseudo_random(&bulk.0, 50_000, 63);
    let mut sink = r.python_server(py::UDP_SINK, &["6005", "50000", "20", "::"]);
    r.launch_v6(
        ToolSpec::ucat(&["--udp", "connect", &kv6, "6005"]).stdin(Input::Pipe),
        &v6,
        &kv6,
    );
    r.tool()
        .write_stdin(&std::fs::read(&bulk.0).expect("read data file"));
    r.tool().close_stdin();
    let u = r.wait(Duration::from_secs(20));
    let srv = sink.wait(Duration::from_secs(25));
    let ctx = format!("{medium:?}: ucat --udp bulk over IPv6\n{u}\n{srv}");
    assert_eq!(u.code(), Some(0), "{ctx}");
    assert_eq!(result_field(&srv.stdout, "bytes"), Some(50_000), "{ctx}");
    assert_eq!(
        result_str(&srv.stdout, "sha"),
        Some(sha256(bulk.path()).as_str()),
        "{ctx}"
    );
    assert_eq!(result_field(&srv.stdout, "biggest"), Some(1452), "{ctx}");
    let datagrams = result_field(&srv.stdout, "datagrams").unwrap_or(0);
    assert!(
        datagrams <= 40,
        "{datagrams} datagrams for 50,000 bytes\n{ctx}"
    );
    drop(r);

    // UDP listen: the first datagram (over IPv6) names the peer; ucat's
    // input goes back to it. ucat drops input until it has a peer, so the
    // test keeps feeding it until the client got an answer.
    let (v6, kv6) = v6_pair(medium, s0 + 3);
    let mut r = Rig::ipv6_only(medium, "u6ul", s0 + 3);
    r.launch_v6(
        ToolSpec::ucat(&["--udp", "listen", "6004"]).stdin(Input::Pipe),
        &v6,
        &kv6,
    );
    let mut client = r.python_server(UDP_PING, &[&v6, "6004"]);
    for _ in 0..200 {
        if !client.running() {
            break;
        }
        r.tool().write_stdin(b"reply\n");
        thread::sleep(Duration::from_millis(50));
    }
    let c = client.wait(Duration::from_secs(20));
    r.tool().close_stdin();
    let u = r.wait(Duration::from_secs(20));
    let ctx = format!("{medium:?}: ucat --udp listen over IPv6\n{c}\n{u}");
    assert_eq!(result_str(&c.stdout, "got"), Some("reply"), "{ctx}");
    assert_eq!(result_str(&c.stdout, "from"), Some(v6.as_str()), "{ctx}");
    assert!(
        u.code() == Some(0) && u.stdout.starts_with("hello\n"),
        "{ctx}"
    );
}

#[test]
fn ucat_ipv6_only_on_tun() {
    if preconditions("ipv6_tools::ucat_ipv6_only_on_tun", &["sha256sum"]) {
        ucat_ipv6_only(Medium::Tun);
    }
}

#[test]
fn ucat_ipv6_only_on_tap() {
    if preconditions("ipv6_tools::ucat_ipv6_only_on_tap", &["sha256sum"]) {
        ucat_ipv6_only(Medium::Tap);
    }
}

#[test]
fn ucat_ipv6_only_on_raw() {
    if preconditions("ipv6_tools::ucat_ipv6_only_on_raw", &["sha256sum"]) {
        ucat_ipv6_only(Medium::Raw);
    }
}

/// proxy, dual stack, relaying to an IPv6 server behind a veth: a client
/// over IPv6 and one over IPv4 both get through, half-close included.
#[test]
fn proxy_dual_stack_to_ipv6() {
    if !preconditions("ipv6_tools::proxy_dual_stack_to_ipv6", &[]) {
        return;
    }
    let s = S_PROXY6;
    let (v6, kv6) = v6_pair(Medium::Tun, s);
    let mut rig = Rig::new(Medium::Tun, "p6", s);
    let (srv, _srv_ip) = server_behind_veth(&rig, s);
    rig.kernel.add_ipv6("ustkv0", &format!("fd00:9:{s}::1/64"));
    srv.add_ipv6("ustkv1", &format!("fd00:9:{s}::2/64"));
    let _server = Tool::start(
        &srv,
        ToolSpec::python_server(HALF_SERVER, &["::", "9000", "2"]),
    );
    let to = format!("[fd00:9:{s}::2]:9000");
    rig.launch_v6(
        ToolSpec::new(&example("proxy"), &["--listen", "9000", "--to", &to])
            .ready("proxy: relaying"),
        &v6,
        &kv6,
    );
    for (host, len) in [(v6.clone(), "100000"), (rig.stack_ip.clone(), "50000")] {
        let out = rig.python(HALF_CLIENT, &[&host, "9000", len], Duration::from_secs(40));
        if !(out.success() && out.stdout.contains("RESULT ok=1")) {
            let stopped = rig.stop();
            panic!("through the proxy from {host} to {to}:\n{out}\n{stopped}");
        }
    }
    let logged = rig
        .tool()
        .wait_stderr("50000 B up, 50010 B down", Duration::from_secs(5));
    let stopped = rig.stop();
    assert!(
        logged && stopped.stderr.contains("100000 B up, 100011 B down"),
        "{stopped}"
    );
}

/// poll_loop, IPv6-only: 1 MiB TCP echo and 20 UDP datagrams over IPv6.
#[test]
fn poll_loop_ipv6_only() {
    if !preconditions("ipv6_tools::poll_loop_ipv6_only", &[]) {
        return;
    }
    let (v6, kv6) = v6_pair(Medium::Tun, S_POLL6);
    let mut rig = Rig::ipv6_only(Medium::Tun, "pl6", S_POLL6);
    rig.launch_v6(
        ToolSpec::new(&example("poll_loop"), &["--port", "7"]).ready("poll_loop: echoing"),
        &v6,
        &kv6,
    );
    let out = rig.python(ECHO_BOTH, &[&v6, "7"], Duration::from_secs(90));
    let stopped = rig.stop();
    assert!(
        out.success() && out.stdout.contains("RESULT tcp=1 udp=20"),
        "poll_loop over IPv6:\n{out}\n{stopped}"
    );
}

/// threaded_echo, dual stack on a TAP: a Linux client over IPv6 and one
/// over IPv4.
#[test]
fn threaded_echo_dual_stack_on_tap() {
    if !preconditions("ipv6_tools::threaded_echo_dual_stack_on_tap", &[]) {
        return;
    }
    let (v6, kv6) = v6_pair(Medium::Tap, S_THREADED6);
    let mut rig = Rig::new(Medium::Tap, "te6", S_THREADED6);
    rig.launch_v6(
        ToolSpec::new(&example("threaded_echo"), &["--port", "7"]).ready("threaded_echo: echoing"),
        &v6,
        &kv6,
    );
    for host in [v6.clone(), rig.stack_ip.clone()] {
        let out = rig.python(py::ONE, &[&host, "7"], Duration::from_secs(20));
        if !out.stdout.contains("RESULT echo=1") {
            let stopped = rig.stop();
            panic!("threaded_echo from {host}:\n{out}\n{stopped}");
        }
    }
}
