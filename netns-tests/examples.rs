//! The examples (`examples/`) and the tools' observability flags against
//! Linux peers: `http_server` with curl and wrk, `proxy` carrying iperf3 to
//! a server in another namespace, `poll_loop` echoing TCP and UDP, and
//! `--stats-interval` / SIGUSR1 reports. Subnets 10.1.S.0/24 with S from 40.
//!
//! The examples are not `[[bin]]`s, so Cargo gives no `CARGO_BIN_EXE_*` for
//! them: [`example`] builds them once per test run with the same cargo, the
//! same profile and the same target directory as this test binary, and
//! every feature (`tools` for the tools' flags, `tokio` for `async_echo`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    run, sha256, write_pseudo_random, Medium, Netns, Rig, TempFile, Tool, ToolSpec,
};

const S_HTTP: u8 = 40;
const S_WRK: u8 = 41;
const S_PROXY: u8 = 42;
const S_HALF: u8 = 43;
const S_POLL: u8 = 44;
const S_STATS: u8 = 45;
const S_USR1: u8 = 46;
const S_PROG: u8 = 47;

/// The path of example `name`, built (once) for this test run.
pub fn example(name: &str) -> String {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // .../target/<profile>/deps/netns-HASH
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("unexpected test binary path")?;
        let target_dir = profile_dir.parent().ok_or("unexpected test binary path")?;
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let target = target_dir.to_str().ok_or("non-UTF-8 target dir")?;
        let mut argv = vec![
            env!("CARGO"),
            "build",
            "--examples",
            "--all-features",
            "--manifest-path",
            manifest,
            "--target-dir",
            target,
        ];
        if release {
            argv.push("--release");
        }
        let out = run(&argv, Duration::from_secs(1200));
        if !out.success() {
            return Err(format!("building the examples failed:\n{out}"));
        }
        Ok(profile_dir.join("examples"))
    });
    match dir {
        Ok(d) => d.join(name).to_str().expect("UTF-8 path").to_string(),
        Err(e) => panic!("{e}"),
    }
}

/// `examples/async_echo` (the tokio API), built with the others (every
/// feature on), so the tests that run it as a process need no `tokio`
/// feature of their own.
pub(crate) fn async_echo_example() -> String {
    example("async_echo")
}

/// A directory in the temp dir, removed (with its files) on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> TempDir {
        let f = TempFile::new(what);
        let p = f.0.clone();
        drop(f);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub(crate) fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A document root with `big.bin` (10 MiB), `index.html` and a secret file
/// beside (outside) the root.
fn docroot() -> (TempDir, TempDir) {
    let outer = TempDir::new("http-outer");
    std::fs::write(outer.0.join("secret.txt"), b"not for the web\n").unwrap();
    let root = TempDir::new("http-root");
    write_pseudo_random(&root.0.join("big.bin"), 10 << 20, 42);
    std::fs::write(root.0.join("index.html"), b"<h1>hello from ustack</h1>\n").unwrap();
    (root, outer)
}

pub(crate) fn http_rig(subnet: u8, tag: &str, root: &str, extra: &[&str]) -> Rig {
    let mut rig = Rig::new(Medium::Tun, tag, subnet);
    let mut args = vec!["--port", "80", "--root", root, "--cc", "cubic"];
    args.extend_from_slice(extra);
    rig.launch(ToolSpec::new(&example("http_server"), &args).ready("http_server: serving"));
    rig
}

/// `curl` in the kernel namespace: (exit status ok, stdout).
fn curl(rig: &Rig, args: &[&str]) -> (bool, String, String) {
    let mut argv = vec!["curl", "-sS", "--max-time", "60"];
    argv.extend_from_slice(args);
    let out = rig.kernel.exec(&argv, Duration::from_secs(70));
    (out.success(), out.stdout, out.stderr)
}

/// http_server: a 10 MiB file reaches Linux curl intact (SHA-256), HEAD
/// gives the length and no body, and 404 / 403 (traversal) / 405 / 400
/// come back as they should.
pub fn http_server_serves_files() {
    let (root, outer) = docroot();
    let mut rig = http_rig(S_HTTP, "ehttp", root.path(), &[]);
    let base = format!("http://{}", rig.stack_ip);
    let got = TempFile::new("http-got");
    let start = Instant::now();
    let (ok, _, err) = curl(&rig, &["-o", got.path(), &format!("{base}/big.bin")]);
    let secs = start.elapsed().as_secs_f64();
    if !ok {
        let stopped = rig.stop();
        panic!("curl of big.bin failed: {err}\n{stopped}");
    }
    let want = sha256(root.0.join("big.bin").to_str().unwrap());
    assert_eq!(sha256(got.path()), want, "10 MiB body differs");
    eprintln!(
        "http_server: 10 MiB in {secs:.2} s ({:.0} Mbit/s)",
        80.0 * 1.048_576 / secs
    );

    // HEAD: headers with the length, no body.
    let (ok, out, err) = curl(&rig, &["-I", &format!("{base}/big.bin")]);
    assert!(ok, "HEAD: {err}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("content-length: 10485760"),
        "{out}"
    );
    // Status codes: -w prints the code; keep-alive over several URLs on
    // one connection (curl reuses it).
    let code = |path: &str, extra: &[&str]| {
        let url = format!("{base}{path}");
        let mut a: Vec<&str> = vec!["-o", "/dev/null", "-w", "%{http_code}\n", "--path-as-is"];
        a.extend_from_slice(extra);
        a.push(&url);
        let (ok, out, err) = curl(&rig, &a);
        assert!(ok, "curl {path}: {err}");
        out.trim().to_string()
    };
    assert_eq!(code("/", &[]), "200");
    assert_eq!(code("/index.html", &[]), "200");
    assert_eq!(code("/missing", &[]), "404");
    assert_eq!(code("/../secret.txt", &[]), "403");
    assert_eq!(code("/%2e%2e/secret.txt", &[]), "403");
    assert_eq!(code("/index.html", &["-X", "POST", "-d", "x=1"]), "405");
    assert_eq!(code("/index.html", &["-X", "bad method"]), "400");
    // Several files on one connection: curl says it reused it.
    let (ok, _, err) = curl(
        &rig,
        &[
            "-v",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            &format!("{base}/index.html"),
            &format!("{base}/big.bin"),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "keep-alive: the second request should reuse the connection:\n{err}"
    );
    let stopped = rig.stop();
    assert_eq!(stopped.code(), Some(0), "{stopped}");
    drop(outer);
}

/// http_server under `wrk` for 10 s: no socket errors, no non-2xx
/// responses, some requests done.
pub fn http_server_survives_wrk() {
    let (root, _outer) = docroot();
    let mut rig = http_rig(S_WRK, "ewrk", root.path(), &[]);
    let url = format!("http://{}/index.html", rig.stack_ip);
    let out = rig.kernel.exec(
        &[
            "wrk",
            "-t",
            "2",
            "-c",
            "32",
            "-d",
            "10s",
            "--timeout",
            "5s",
            &url,
        ],
        Duration::from_secs(40),
    );
    if !out.success() {
        let stopped = rig.stop();
        panic!("wrk failed:\n{out}\n{stopped}");
    }
    let text = &out.stdout;
    eprintln!("wrk: {}", text.trim());
    let requests: u64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let ok = requests > 0 && !text.contains("Socket errors") && !text.contains("Non-2xx");
    if !ok {
        let stopped = rig.stop();
        panic!("wrk should complete requests with no errors:\n{text}\n{stopped}");
    }
    let stopped = rig.stop();
    assert_eq!(stopped.code(), Some(0), "{stopped}");
}

/// A second namespace behind a veth pair from the rig's kernel namespace:
/// `<K> ustkv0 10.9.S.1/24 <-> ustkv1 10.9.S.2/24 <server ns>`.
pub(crate) fn server_behind_veth(rig: &Rig, subnet: u8) -> (Netns, String) {
    let srv = Netns::new("esrv");
    rig.kernel.ip(&[
        "link",
        "add",
        "ustkv0",
        "type",
        "veth",
        "peer",
        "name",
        "ustkv1",
        "netns",
        srv.name(),
    ]);
    let k_ip = format!("10.9.{subnet}.1/24");
    let s_ip = format!("10.9.{subnet}.2");
    rig.kernel.ip(&["addr", "add", &k_ip, "dev", "ustkv0"]);
    rig.kernel.ip(&["link", "set", "ustkv0", "up"]);
    srv.ip(&["addr", "add", &format!("{s_ip}/24"), "dev", "ustkv1"]);
    srv.ip(&["link", "set", "ustkv1", "up"]);
    (srv, s_ip)
}

/// Waits (5 s at most) for a TCP listener on `port` in `ns`.
fn wait_listening(ns: &Netns, port: u16) {
    let start = Instant::now();
    let needle = format!(":{port} ");
    while start.elapsed() < Duration::from_secs(5) {
        let out = ns.exec(&["ss", "-ltnH"], Duration::from_secs(5));
        if out.stdout.contains(&needle) {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port} in {}", ns.name());
}

/// A field of iperf3's JSON, as a number (e.g. `"bytes":\s*123`), from the
/// "end" section's `sum_received`.
fn iperf_received_bytes(json: &str) -> Option<u64> {
    let end = json.find("\"sum_received\"")?;
    let rest = &json[end..];
    let b = rest.find("\"bytes\"")?;
    let rest = rest[b + 7..].trim_start_matches([':', ' ', '\t']);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// proxy: iperf3 client (kernel namespace) -> TUN -> stack -> proxy ->
/// kernel socket -> veth -> iperf3 server in another namespace; both
/// directions (-R), the client's JSON must show bytes and no error.
pub fn proxy_carries_iperf3() {
    let mut rig = Rig::new(Medium::Tun, "eprx", S_PROXY);
    let (srv, srv_ip) = server_behind_veth(&rig, S_PROXY);
    srv.spawn(&["iperf3", "-s", "-B", &srv_ip, "-p", "5201"]);
    wait_listening(&srv, 5201);
    let to = format!("{srv_ip}:5201");
    rig.launch(
        ToolSpec::new(
            &example("proxy"),
            &["--listen", "5201", "--to", &to, "--cc", "cubic"],
        )
        .ready("proxy: relaying"),
    );
    for reverse in [false, true] {
        let mut argv = vec![
            "iperf3",
            "-c",
            &rig.stack_ip,
            "-p",
            "5201",
            "-t",
            "3",
            "-J",
            "--connect-timeout",
            "5000",
        ];
        if reverse {
            argv.push("-R");
        }
        let out = rig.kernel.exec(&argv, Duration::from_secs(30));
        let bytes = iperf_received_bytes(&out.stdout);
        let ok = out.success() && !out.stdout.contains("\"error\"") && bytes.is_some_and(|b| b > 0);
        if !ok {
            let stopped = rig.stop();
            panic!("iperf3 through the proxy (reverse: {reverse}) failed:\n{out}\n{stopped}");
        }
        eprintln!(
            "proxy iperf3 (reverse: {reverse}): {} bytes received in 3 s ({:.0} Mbit/s)",
            bytes.unwrap_or(0),
            bytes.unwrap_or(0) as f64 * 8.0 / 3.0 / 1e6
        );
    }
    let stopped = rig.stop();
    assert_eq!(stopped.code(), Some(0), "{stopped}");
}

/// Server (python, in the server namespace) on `ADDR PORT [COUNT]` (IPv4
/// or IPv6 by the address): for each of COUNT (default 1) connections in
/// turn, reads to EOF, then sends back `got N\n` and the data reversed,
/// then closes.
pub(crate) const HALF_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
s.settimeout(30)
sys.stderr.write("READY\n"); sys.stderr.flush()
for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
    c, _ = s.accept()
    c.settimeout(30)
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.sendall(b"got %d\n" % len(data) + data[::-1])
    c.close()
"#;

/// Client (python, kernel namespace): sends N bytes, half-closes, reads to
/// EOF, checks the reply.
pub(crate) const HALF_CLIENT: &str = r#"
import socket, sys, random
data = random.Random(7).randbytes(int(sys.argv[3]))
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    got += b
want = b"got %d\n" % len(data) + data[::-1]
print("RESULT ok=%d len=%d" % (got == want, len(got)))
"#;

/// proxy: the client's half-close reaches the server (which only answers
/// after EOF), and the server's close reaches the client as EOF; its
/// `--stats-interval` reports.
pub fn proxy_propagates_half_close() {
    let mut rig = Rig::new(Medium::Tun, "ehalf", S_HALF);
    let (srv, srv_ip) = server_behind_veth(&rig, S_HALF);
    let _server = Tool::start(
        &srv,
        ToolSpec::python_server(HALF_SERVER, &[&srv_ip, "9000"]),
    );
    let to = format!("{srv_ip}:9000");
    rig.launch(
        ToolSpec::new(
            &example("proxy"),
            &["--listen", "9000", "--to", &to, "--stats-interval", "0.5"],
        )
        .ready("proxy: relaying"),
    );
    let out = rig.python(
        HALF_CLIENT,
        &[&rig.stack_ip, "9000", "300000"],
        Duration::from_secs(40),
    );
    if !(out.success() && out.stdout.contains("RESULT ok=1")) {
        let stopped = rig.stop();
        panic!("half-close through the proxy:\n{out}\n{stopped}");
    }
    // The proxy logs the connection once both directions are done, and
    // (threaded-stack tools too) prints its counters every 0.5 s.
    let logged = rig
        .tool()
        .wait_stderr("300000 B up, 300011 B down", Duration::from_secs(5));
    let stats = rig
        .tool()
        .wait_stderr("proxy: stats at", Duration::from_secs(5));
    let stopped = rig.stop();
    assert!(logged, "the proxy should log the relayed bytes:\n{stopped}");
    assert!(
        stats && stopped.stderr.contains("passive connection openings"),
        "--stats-interval in a threaded-stack tool:\n{stopped}"
    );
}

/// TCP (1 MiB, half-close, echo to EOF) and UDP (20 datagrams) echo.
pub(crate) const ECHO_BOTH: &str = r#"
import socket, sys, random, threading
host, port = sys.argv[1], int(sys.argv[2])
data = random.Random(3).randbytes(1 << 20)
c = socket.create_connection((host, port), timeout=30)
got = []
def rd():
    while True:
        b = c.recv(65536)
        if not b:
            break
        got.append(b)
t = threading.Thread(target=rd); t.start()
c.sendall(data)
c.shutdown(socket.SHUT_WR)
t.join(60)
tcp_ok = b"".join(got) == data
u = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
u.connect((host, port))
udp_ok = 0
for i in range(20):
    m = random.Random(i).randbytes(1 + i * 60)
    for attempt in range(3):
        u.send(m)
        try:
            if u.recv(65536) == m:
                udp_ok += 1
                break
        except socket.timeout:
            pass
print("RESULT tcp=%d udp=%d" % (tcp_ok, udp_ok))
"#;

/// poll_loop: echoes a 1 MiB TCP stream (with half-close) and 20 UDP
/// datagrams; exits 0 on SIGINT with its counters; `--log` shows the
/// connection's state transitions.
pub fn poll_loop_echoes_tcp_and_udp() {
    let mut rig = Rig::new(Medium::Tun, "epoll", S_POLL);
    rig.launch(
        ToolSpec::new(
            &example("poll_loop"),
            &["--port", "7", "--log", "ustack::tcp=debug"],
        )
        .ready("poll_loop: echoing"),
    );
    let out = rig.python(ECHO_BOTH, &[&rig.stack_ip, "7"], Duration::from_secs(90));
    if !(out.success() && out.stdout.contains("RESULT tcp=1 udp=20")) {
        let stopped = rig.stop();
        panic!("poll_loop echo:\n{out}\n{stopped}");
    }
    let stopped = rig.stop();
    assert_eq!(stopped.code(), Some(0), "{stopped}");
    assert!(
        stopped.stdout.contains("passive connection openings"),
        "{stopped}"
    );
    // --log: the connection's state changes were logged, nothing at trace.
    assert!(
        stopped.stderr.contains("tcp state transition")
            && stopped.stderr.contains("from=Established to=CloseWait")
            && stopped.stderr.contains("from=CloseWait to=LastAck"),
        "{stopped}"
    );
    assert!(!stopped.stderr.contains("ustack::drop"), "{stopped}");
    eprintln!(
        "poll_loop --log: {}",
        stopped
            .stderr
            .lines()
            .find(|l| l.contains("to=LastAck"))
            .unwrap_or("")
    );
}

/// `--stats-interval 0.5` prints the counters about twice a second.
pub fn stats_interval_prints_counters() {
    let mut rig = Rig::new(Medium::Tun, "estat", S_STATS);
    rig.launch(ToolSpec::tcpecho(&["--stats-interval", "0.5"]));
    let ping = rig.kernel.exec(
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", &rig.stack_ip],
        Duration::from_secs(10),
    );
    assert!(ping.success(), "{ping}");
    thread::sleep(Duration::from_millis(1600));
    let stopped = rig.stop();
    let reports = stopped.stderr.matches("tcpecho: stats at").count();
    assert!(reports >= 2, "expected periodic reports:\n{stopped}");
    assert!(stopped.stderr.contains("segments received"), "{stopped}");
    // A report after the pings counted them.
    assert!(
        stopped.stderr.contains("in type 8 (echo request): 2"),
        "{stopped}"
    );
}

/// SIGUSR1 prints the counters and the socket table on stderr in every
/// tool and in every example that runs the stack on a device, and they keep
/// running (the default action of SIGUSR1 would end them, status 138); then
/// SIGINT ends each with status 0.
pub fn sigusr1_prints_socket_table() {
    let root = TempDir::new("usr1root");
    let async_echo = async_echo_example();
    let programs: Vec<(&str, ToolSpec)> = vec![
        (
            "ucat",
            ToolSpec::ucat(&["listen", "7000"]).stdin(crate::harness::Input::Pipe),
        ),
        ("udpecho", ToolSpec::udpecho(&["--port", "7000"])),
        ("tcpecho", ToolSpec::tcpecho(&["--port", "7000"])),
        (
            "poll_loop",
            ToolSpec::new(&example("poll_loop"), &["--port", "7000"]).ready("poll_loop: echoing"),
        ),
        (
            "threaded_echo",
            ToolSpec::new(&example("threaded_echo"), &["--port", "7000"])
                .ready("threaded_echo: echoing"),
        ),
        (
            "async_echo",
            ToolSpec::new(&async_echo, &["--port", "7000"]).ready("async_echo: echoing"),
        ),
        (
            "http_server",
            ToolSpec::new(
                &example("http_server"),
                &["--port", "7000", "--root", root.path()],
            )
            .ready("http_server: serving"),
        ),
        (
            "proxy",
            ToolSpec::new(
                &example("proxy"),
                &["--listen", "7000", "--to", "10.9.9.9:1"],
            )
            .ready("proxy: relaying"),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (name, spec)) in programs.into_iter().enumerate() {
        let mut rig = Rig::new(Medium::Tun, &format!("eusr{i}"), S_USR1);
        // Each blocks SIGUSR1 before it opens the device, and launch waited
        // for the device: the signal cannot arrive too early.
        rig.launch(spec);
        rig.tool().signal(libc::SIGUSR1);
        let printed = rig.tool().wait_stderr(":7000", Duration::from_secs(5));
        thread::sleep(Duration::from_millis(200));
        let alive = rig.tool().running();
        let stopped = rig.stop();
        let ok = printed
            && alive
            && stopped.stderr.contains("Netid")
            && stopped.stderr.contains("segments received")
            // ucat, like netcat, just dies of SIGINT.
            && (name == "ucat" || stopped.code() == Some(0));
        eprintln!(
            "{name}: SIGUSR1 report {}, alive after it: {alive}, exit {:?}",
            if printed { "printed" } else { "missing" },
            stopped.status
        );
        if !ok {
            failures.push(format!(
                "{name} should print the counters and its socket table on SIGUSR1, \
                 keep running and exit 0 on SIGINT:\n{stopped}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `ucat --progress` on a 6 MiB upload through a 20 Mbit/s impaired link
/// (about 2.5 s): progress lines each second, the last one with every byte.
pub fn ucat_progress_reports() {
    let data = TempFile::new("prog");
    let len: u64 = 6 << 20;
    write_pseudo_random(&data.0, len as usize, 9);
    let mut rig = Rig::new(Medium::Tun, "eprog", S_PROG);
    let mut server = rig.python_server(crate::py::SERVER, &["5001", "sink", "thanks", "60"]);
    let kip = rig.kernel_ip.clone();
    rig.launch(
        ToolSpec::ucat(&[
            "--progress",
            "--impair",
            "rate=20mbit",
            "connect",
            &kip,
            "5001",
        ])
        .stdin(crate::harness::Input::File(data.0.clone())),
    );
    let u = rig.wait(Duration::from_secs(60));
    let s = server.wait(Duration::from_secs(10));
    assert_eq!(
        crate::py::result_field(&s.stdout, "received"),
        Some(len),
        "{u}\n{s}"
    );
    assert_eq!(u.code(), Some(0), "{u}");
    let lines: Vec<&str> = u
        .stderr
        .lines()
        .filter(|l| l.starts_with("ucat: ") && l.contains(" sent "))
        .collect();
    assert!(lines.len() >= 2, "expected progress lines:\n{u}");
    let last_sent: u64 = lines
        .last()
        .and_then(|l| l.split(" sent ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        last_sent >= len,
        "the last line should count every byte:\n{u}"
    );
    assert!(lines.iter().all(|l| l.contains("retransmits")), "{u}");
    eprintln!("ucat --progress:\n{}", lines.join("\n"));
}
