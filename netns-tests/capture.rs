//! `--pcap` captures are complete on every way a tool ends: the end of a
//! transfer, SIGINT, SIGTERM and an error (and for an example on the
//! threaded API, SIGTERM). Each capture must read to its end in tshark (no
//! "cut short" record) and hold the frames of the exchange.

use std::time::Duration;

use crate::examples::{http_rig, TempDir};
use crate::harness::{run, Medium, Rig, Stopped, TempFile, Tool, ToolSpec};

const S_CAP_END: u8 = 70;
const S_CAP_INT: u8 = 71;
const S_CAP_TERM: u8 = 72;
const S_CAP_ERR: u8 = 73;
const S_CAP_HTTP: u8 = 74;
const S_CAP_ASYNC: u8 = 75;

/// A Linux client: connects, sends `N` bytes, says READY, then holds the
/// connection open for `SECS` (reading what comes, past the peer's FIN)
/// and closes.
const CLIENT: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"x" * int(sys.argv[3]))
print("READY", file=sys.stderr, flush=True)
end = time.time() + float(sys.argv[4])
s.settimeout(0.2)
while time.time() < end:
    try:
        if not s.recv(65536):
            time.sleep(0.2)
    except socket.timeout:
        pass
    except OSError:
        break
s.close()
"#;

/// Checks that `pcap` reads to its end and has at least `min` frames
/// matching each filter (counted by [`crate::tshark_frames`], checksums
/// checked).
fn assert_complete(pcap: &str, wants: &[(&str, usize)], ctx: &str) {
    let all = run(&["tshark", "-n", "-r", pcap], Duration::from_secs(60));
    assert!(
        all.success() && !all.stderr.contains("cut short") && !all.stderr.contains("appears"),
        "tshark could not read the capture to its end:\n{all}\n{ctx}"
    );
    for (filter, min) in wants {
        let n = crate::tshark_frames(pcap, filter).len();
        assert!(
            n >= *min,
            "capture: {n} frames match '{filter}', want at least {min}\n--- capture ---\n{}\n{ctx}",
            all.stdout
        );
    }
}

fn client(rig: &Rig, port: &str, bytes: &str, secs: &str) -> Tool {
    let ip = rig.stack_ip.clone();
    Tool::start(
        &rig.kernel,
        ToolSpec::new("python3", &["-c", CLIENT, &ip, port, bytes, secs]).ready("READY"),
    )
}

/// `ucat listen --pcap` stopped by `sig` while a connection is open: exits
/// 128 + sig, and the capture holds the handshake and the data.
fn ucat_signalled(sig: libc::c_int, subnet: u8, tag: &str) {
    let pcap = TempFile::new("cap-sig");
    let mut rig = Rig::new(Medium::Tun, tag, subnet);
    rig.launch(ToolSpec::ucat(&["--pcap", pcap.path(), "listen", "7001"]));
    let mut c = client(&rig, "7001", "3000", "20");
    let u = rig.tool();
    // The data reached ucat (its stdout is captured).
    std::thread::sleep(Duration::from_millis(300));
    u.signal(sig);
    let stopped: Stopped = rig.wait(Duration::from_secs(10));
    let cl = c.wait(Duration::from_secs(25));
    let ctx = format!("--- ucat ---\n{stopped}\n--- client ---\n{cl}");
    assert_eq!(stopped.code(), Some(128 + sig), "ucat's exit status\n{ctx}");
    assert!(!stopped.killed, "{ctx}");
    assert_complete(
        pcap.path(),
        &[
            ("tcp.flags.syn == 1 && tcp.flags.ack == 0", 1),
            ("tcp.flags.syn == 1 && tcp.flags.ack == 1", 1),
            ("tcp.len > 0", 1),
        ],
        &ctx,
    );
}

pub fn ucat_capture_on_sigint() {
    ucat_signalled(libc::SIGINT, S_CAP_INT, "capint");
}

pub fn ucat_capture_on_sigterm() {
    ucat_signalled(libc::SIGTERM, S_CAP_TERM, "capterm");
}

/// `ucat listen --pcap` at the end of a transfer: the peer sends 200 KB
/// and closes, ucat (stdin at EOF) exits 0; the capture has both FINs.
pub fn ucat_capture_at_end_of_transfer() {
    let pcap = TempFile::new("cap-end");
    let mut rig = Rig::new(Medium::Tun, "capend", S_CAP_END);
    rig.launch(ToolSpec::ucat(&["--pcap", pcap.path(), "listen", "7001"]));
    let mut c = client(&rig, "7001", "200000", "0");
    let stopped = rig.wait(Duration::from_secs(20));
    let cl = c.wait(Duration::from_secs(10));
    let ctx = format!("--- ucat ---\n{}\n--- client ---\n{cl}", stopped.stderr);
    assert_eq!(stopped.code(), Some(0), "ucat's exit status\n{ctx}");
    assert_eq!(stopped.stdout.len(), 200_000, "{ctx}");
    assert_complete(
        pcap.path(),
        &[("tcp.flags.fin == 1", 2), ("tcp.len > 0", 1)],
        &ctx,
    );
}

/// `ucat connect --pcap` to a closed port: one line, exit 1, and the
/// capture holds the SYN and the kernel's RST.
pub fn ucat_capture_on_error() {
    let pcap = TempFile::new("cap-err");
    let mut rig = Rig::new(Medium::Tun, "caperr", S_CAP_ERR);
    let kip = rig.kernel_ip.clone();
    rig.launch(ToolSpec::ucat(&[
        "--pcap",
        pcap.path(),
        "connect",
        &kip,
        "9",
    ]));
    let stopped = rig.wait(Duration::from_secs(20));
    let ctx = format!("--- ucat ---\n{stopped}");
    assert_eq!(stopped.code(), Some(1), "{ctx}");
    assert_complete(
        pcap.path(),
        &[("tcp.flags.syn == 1", 1), ("tcp.flags.reset == 1", 1)],
        &ctx,
    );
}

/// `http_server --pcap` (threaded API, a monitor thread owning the
/// signals) stopped by SIGTERM after serving a page: exit 0, and the
/// capture holds the request and the answer.
pub fn http_server_capture_on_sigterm() {
    let root = TempDir::new("cap-root");
    std::fs::write(root.0.join("index.html"), b"<h1>hello</h1>\n").unwrap();
    let pcap = TempFile::new("cap-http");
    let mut rig = http_rig(S_CAP_HTTP, "caphttp", root.path(), &["--pcap", pcap.path()]);
    let url = format!("http://{}/index.html", rig.stack_ip);
    let out = rig.kernel.exec(
        &["curl", "-sS", "--max-time", "20", &url],
        Duration::from_secs(30),
    );
    rig.tool().signal(libc::SIGTERM);
    let stopped = rig.wait(Duration::from_secs(10));
    let ctx = format!("--- curl ---\n{out}\n--- http_server ---\n{stopped}");
    assert!(out.stdout.contains("hello"), "{ctx}");
    assert_eq!(stopped.code(), Some(0), "{ctx}");
    assert_complete(
        pcap.path(),
        &[
            ("http.request.method == \"GET\"", 1),
            ("http.response.code == 200", 1),
        ],
        &ctx,
    );
}

/// `async_echo --pcap` (tokio API; the monitor thread holds the stack too)
/// stopped by SIGINT after echoing: exit 0, and the capture holds the
/// echoed data both ways.
pub fn async_echo_capture_on_sigint() {
    let pcap = TempFile::new("cap-async");
    let mut rig = Rig::new(Medium::Tun, "capasync", S_CAP_ASYNC);
    rig.launch(
        ToolSpec::new(
            &crate::examples::async_echo_example(),
            &["--port", "7", "--pcap", pcap.path()],
        )
        .ready("async_echo: echoing"),
    );
    let mut c = client(&rig, "7", "5000", "1");
    let cl = c.wait(Duration::from_secs(10));
    let stopped = rig.stop();
    let ctx = format!("--- async_echo ---\n{stopped}\n--- client ---\n{cl}");
    assert_eq!(stopped.code(), Some(0), "{ctx}");
    let s = rig.stack_ip.clone();
    assert_complete(
        pcap.path(),
        &[
            ("tcp.flags.syn == 1 && tcp.flags.ack == 1", 1),
            (&format!("ip.dst == {s} && tcp.len > 0"), 1),
            (&format!("ip.src == {s} && tcp.len > 0"), 1),
        ],
        &ctx,
    );
}
