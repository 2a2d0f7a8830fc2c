//! The async API (`ustack::net::tokio`, feature `tokio`) against Linux
//! clients: the stack runs in this test process on a TUN device created
//! inside a `ustk-` namespace, an async echo server (one tokio task per
//! connection) serves it, and python3 asyncio clients in that namespace
//! connect through the kernel's TCP. Subnet 10.1.S.0/24 with S from 40 up.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::tokio::{TcpListener, TcpStream};
use ustack::phy::tun::{TunDevice, TunKind, TunOptions};
use ustack::stack::Stack;

use crate::examples::async_echo_example;
use crate::harness::{preconditions, Medium, Netns, Output, Rig, ToolSpec};
use crate::py::{self, result_field};

const S_THOUSAND: u8 = 40;
const S_EXAMPLE: u8 = 41;
const S_EXAMPLE6: u8 = 71;
const S_EXAMPLE46: u8 = 72;

/// Opens TUN `name` inside namespace `ns` from a short-lived thread that
/// joins it (`setns` moves only that thread), so the device and the
/// kernel's side of it live in the namespace, never in ours.
fn tun_in(ns: &Netns, name: &str) -> TunDevice {
    let path = format!("/run/netns/{}", ns.name());
    let name = name.to_string();
    std::thread::spawn(move || {
        let f = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a namespace fd we hold open; it affects only
        // this thread, which ends right after opening the device.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!("setns {path}: {}", std::io::Error::last_os_error());
        }
        let opts = TunOptions {
            tx_queue_len: Some(TunOptions::DEFAULT_TX_QUEUE_LEN),
            ..TunOptions::default()
        };
        TunDevice::open(&name, TunKind::Tun, &opts)
            .unwrap_or_else(|e| panic!("open TUN {name} in {path}: {e}"))
    })
    .join()
    .expect("the thread opening the TUN device panicked")
}

/// `ASYNC_MANY HOST PORT CONNS SEED LIMIT_SECS`: python asyncio opens CONNS
/// connections at once (RLIMIT_NOFILE raised to fit); once every one is
/// open (or failed), each sends its own message (1000 + 13*(i % 400) bytes
/// of `random.Random(SEED + i)`), half-closes and reads the echo to EOF.
/// `RESULT conns= connected= peak_open= ok= mismatch= errors= secs=`.
const ASYNC_MANY: &str = r#"
import asyncio, random, resource, sys, time
host, port, n, seed, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 256
if soft != resource.RLIM_INFINITY and soft < want:
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))
res = {"connected": 0, "failed": 0, "open": 0, "peak": 0, "ok": 0, "mismatch": 0, "errors": 0}
t0 = time.monotonic()
deadline = t0 + limit
def left():
    return max(0.1, deadline - time.monotonic())
async def one(i, all_open):
    msg = random.Random(seed + i).randbytes(1000 + 13 * (i % 400))
    w = None
    try:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port), left() / 2)
        except BaseException:
            res["failed"] += 1
            if res["connected"] + res["failed"] == n:
                all_open.set()
            raise
        res["connected"] += 1
        res["open"] += 1
        res["peak"] = max(res["peak"], res["open"])
        if res["connected"] + res["failed"] == n:
            all_open.set()
        await asyncio.wait_for(all_open.wait(), left())
        w.write(msg)
        await asyncio.wait_for(w.drain(), left())
        w.write_eof()
        got = await asyncio.wait_for(r.read(), left())
        if got == msg:
            res["ok"] += 1
        else:
            res["mismatch"] += 1
            diff = next((j for j in range(min(len(got), len(msg))) if got[j] != msg[j]), min(len(got), len(msg)))
            print("MISMATCH conn %d: sent %d, got %d, first difference at %d" % (i, len(msg), len(got), diff))
    except BaseException as e:
        res["errors"] += 1
        if res["errors"] <= 20:
            print("ERROR conn %d: %r" % (i, e))
    finally:
        if w is not None:
            res["open"] -= 1
            w.close()
async def main():
    all_open = asyncio.Event()
    await asyncio.gather(*(one(i, all_open) for i in range(n)), return_exceptions=True)
asyncio.run(main())
print("RESULT conns=%d connected=%d peak_open=%d ok=%d mismatch=%d errors=%d secs=%.2f" % (
    n, res["connected"], res["peak"], res["ok"], res["mismatch"], res["errors"], time.monotonic() - t0))
"#;

/// The namespace with the stack's TUN `ustk0` in it, the kernel side at
/// 10.1.`subnet`.1/24 and the stack (in this process) at .2.
fn stack_in_namespace(tag: &str, subnet: u8) -> (Netns, Stack, String) {
    let ns = Netns::new(tag);
    let dev = tun_in(&ns, "ustk0");
    ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.ustk0.disable_ipv6=1"]);
    let kernel_cidr = format!("10.1.{subnet}.1/24");
    ns.ip(&["addr", "add", &kernel_cidr, "dev", "ustk0"]);
    ns.ip(&["link", "set", "ustk0", "up"]);
    let stack_ip = format!("10.1.{subnet}.2");
    let stack = Stack::builder(dev)
        .addr(format!("{stack_ip}/24").parse().unwrap())
        .build()
        .expect("start the stack");
    (ns, stack, stack_ip)
}

/// Echoes one connection until EOF, then half-closes.
async fn echo(mut s: TcpStream) -> std::io::Result<usize> {
    let mut buf = vec![0u8; 16384];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await?;
        total += n;
    }
    s.shutdown().await?;
    Ok(total)
}

fn check_many(out: &Output, n: u64) -> bool {
    py::many_all_echoed(out, n) && result_field(&out.stdout, "peak_open") == Some(n)
}

/// 1,000 Linux connections open at once (the client holds every one open
/// before any sends) against an async echo server on the stack, one task
/// per connection: every one echoes its own message exactly. (How many
/// server tasks were alive at once is reported, not asserted: it depends
/// on how fast the accept task runs on a busy machine.)
fn thousand_concurrent_async_connections() {
    let start = Instant::now();
    let n = 1000usize;
    let (ns, stack, stack_ip) = stack_in_namespace("async", S_THOUSAND);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind_with_backlog(&stack, "0.0.0.0:7", 1024).unwrap();
    {
        let (open, peak, served, failed) =
            (open.clone(), peak.clone(), served.clone(), failed.clone());
        rt.spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now_open, Ordering::SeqCst);
                let (open, served, failed) = (open.clone(), served.clone(), failed.clone());
                tokio::spawn(async move {
                    match echo(s).await {
                        Ok(_) => served.fetch_add(1, Ordering::SeqCst),
                        Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                    };
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    }
    let out = ns.exec(
        &[
            "python3",
            "-c",
            ASYNC_MANY,
            &stack_ip,
            "7",
            &n.to_string(),
            "1000",
            "100",
        ],
        Duration::from_secs(120),
    );
    // Let the last server tasks see their FIN-ACKs through.
    let wait_until = Instant::now() + Duration::from_secs(10);
    while served.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) < n
        && Instant::now() < wait_until
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let tx_drops = stack.counters().link.tx_queue_drops;
    let tcp = stack.with_interface(|i| i.tcp_counters().clone());
    let summary = format!(
        "server: peak_open={} served={} failed={}; stack tx_queue_drops={tx_drops} {tcp:?}",
        peak.load(Ordering::SeqCst),
        served.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
    drop(rt);
    assert!(
        check_many(&out, n as u64),
        "{n} concurrent Linux connections should all echo exactly:\n{out}\n{summary}"
    );
    assert_eq!(served.load(Ordering::SeqCst), n, "{summary}");
    assert_eq!(failed.load(Ordering::SeqCst), 0, "{summary}");
    assert!(tcp.passive_opens >= n as u64, "{summary}");
    eprintln!(
        "async_api::thousand_concurrent_async_connections: {} in {:.1} s ({summary})",
        out.stdout.lines().last().unwrap_or_default(),
        start.elapsed().as_secs_f64()
    );
    drop(stack);
    drop(ns);
}

#[test]
fn thousand_concurrent_connections() {
    if preconditions("async_api::thousand_concurrent_connections", &[]) {
        thousand_concurrent_async_connections();
    }
}

/// The example server as a process on a TUN in a namespace: 200 concurrent
/// Linux connections echo exactly, and it exits 0 on SIGINT with the
/// counts.
fn example_echoes_for_linux_clients() {
    let start = Instant::now();
    let n = 200u64;
    let mut rig = Rig::new(Medium::Tun, "aex", S_EXAMPLE);
    rig.launch(ToolSpec::new(&async_echo_example(), &["--port", "7"]).ready("async_echo: echoing"));
    let out = rig.python(
        py::MANY,
        &[&rig.stack_ip, "7", &n.to_string(), "77", "60"],
        Duration::from_secs(80),
    );
    let ok = py::many_all_echoed(&out, n);
    let stopped = rig.stop();
    assert!(
        ok,
        "{n} concurrent connections to async_echo should all echo exactly:\n{out}\n{stopped}"
    );
    assert_eq!(
        stopped.status.and_then(|s| s.code()),
        Some(0),
        "async_echo should exit 0 on SIGINT\n{stopped}"
    );
    assert!(
        stopped.stdout.contains(&format!("served={n} ")),
        "async_echo should report {n} connections served:\n{stopped}"
    );
    eprintln!(
        "async_api::example_echoes_for_linux_clients: {} in {:.1} s",
        stopped.stdout.trim(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn example_serves_linux_clients() {
    if preconditions("async_api::example_serves_linux_clients", &[]) {
        example_echoes_for_linux_clients();
    }
}

/// `examples/async_echo` IPv6-only on a TUN (only `--addr fd00:..::2/64`:
/// the threaded stack used to refuse a stack without IPv4), or dual stack
/// on a TAP (it used to listen on `0.0.0.0` only): 20 concurrent Linux
/// connections over IPv6, and over IPv4 too when dual, echo exactly.
fn async_echo_over_ipv6(medium: Medium, dual: bool, s: u8) {
    let n = 20u64;
    let net = format!("fd00:{s}:{}", medium as u8 + 1);
    let (v6, kv6) = (format!("{net}::2"), format!("{net}::1"));
    let mut rig = if dual {
        Rig::new(medium, "aex6", s)
    } else {
        Rig::ipv6_only(medium, "aex6", s)
    };
    rig.launch_v6(
        ToolSpec::new(&async_echo_example(), &["--port", "7"]).ready("async_echo: echoing"),
        &v6,
        &kv6,
    );
    let mut hosts = vec![v6.clone()];
    if dual {
        hosts.push(rig.stack_ip.clone());
    }
    for host in &hosts {
        let out = rig.python(
            py::MANY,
            &[host, "7", &n.to_string(), "78", "40"],
            Duration::from_secs(60),
        );
        let ok = py::many_all_echoed(&out, n);
        if !ok {
            let stopped = rig.stop();
            panic!("{medium:?} (dual: {dual}): {n} connections to async_echo at {host}:\n{out}\n{stopped}");
        }
    }
    let stopped = rig.stop();
    let served = n * hosts.len() as u64;
    assert!(
        stopped.code() == Some(0) && stopped.stdout.contains(&format!("served={served} ")),
        "async_echo should exit 0 having served {served}:\n{stopped}"
    );
}

#[test]
fn example_serves_ipv6_only() {
    if preconditions("async_api::example_serves_ipv6_only", &[]) {
        async_echo_over_ipv6(Medium::Tun, false, S_EXAMPLE6);
    }
}

#[test]
fn example_serves_dual_stack_on_tap() {
    if preconditions("async_api::example_serves_dual_stack_on_tap", &[]) {
        async_echo_over_ipv6(Medium::Tap, true, S_EXAMPLE46);
    }
}
