//! Linux peers in network namespaces against `udpecho` (here) and
//! `tcpecho`/`ucat` (`tcp.rs`) — Linux peers in namespaces — on TUN,
//! TAP (with ARP) and an AF_PACKET raw socket on a veth pair.
//!
//! Needs root, /dev/net/tun, iproute2, python3 (and tshark for some
//! tests): `scripts/install-deps.sh` installs them. Without them the
//! tests print "skipping: ..." and pass, unless `CI` is set, where they fail.
//!
//! Each test owns its namespaces (`ustk-<tag>-<pid>-<n>`) and its subnet
//! 10.M.S.0/24 (M: 1 TUN, 2 TAP, 3 raw; S: the test), so they run in
//! parallel without meeting.

#[cfg(feature = "tokio")]
mod async_api;
mod capture;
mod examples;
mod harness;
mod ipv6;
mod ipv6_tools;
mod multiqueue;
mod pmtu;
mod py;
mod tcp;

use std::time::Duration;

use harness::{preconditions, run, Medium, Netns, Rig, TempFile, UDPECHO};

/// The async API's namespace tests (`async_api.rs`) are built only with
/// `--features tokio` (scripts/test.sh uses `--all-features`); in CI, a
/// build without them fails here instead of passing without them.
#[cfg(not(feature = "tokio"))]
#[test]
fn async_api_tests_need_the_tokio_feature() {
    harness::skip(
        "async_api_tests_need_the_tokio_feature",
        "the async API's namespace tests need `--features tokio` (or --all-features)",
    );
}

// Per-test third octet of the subnet.
const S_PING: u8 = 1;
const S_ECHO: u8 = 2;
const S_REFUSED: u8 = 3;
const S_PCAP: u8 = 4;
const S_IDLE: u8 = 5;

fn ping_gets_three_replies(medium: Medium) {
    let mut rig = Rig::start(medium, "ping", S_PING, &[]);
    let out = rig.kernel.exec(
        &[
            "ping",
            "-n",
            "-c",
            "3",
            "-W",
            "2",
            "-i",
            "0.2",
            "-w",
            "15",
            &rig.stack_ip,
        ],
        Duration::from_secs(20),
    );
    if !out.stdout.contains(" 3 received") {
        let stopped = rig.stop();
        panic!(
            "{medium:?}: expected 3 ping replies from {}:\n{out}\n{stopped}",
            rig.stack_ip
        );
    }
}

fn echo_500_datagrams(medium: Medium) {
    let mut rig = Rig::start(medium, "echo", S_ECHO, &[]);
    let count = 500;
    let out = rig.python(
        py::ECHO,
        &[&rig.stack_ip, "7", &count.to_string(), "5000"],
        Duration::from_secs(150),
    );
    let ok = py::result_field(&out.stdout, "ok");
    if !out.success() || ok != Some(count) {
        let stopped = rig.stop();
        panic!("{medium:?}: {count} datagrams of 1..=1472 bytes should all echo intact:\n{out}\n{stopped}");
    }
    let stopped = rig.stop();
    assert_eq!(
        stopped.status.and_then(|s| s.code()),
        Some(0),
        "udpecho should exit 0 on SIGINT\n{stopped}"
    );
}

fn closed_port_is_refused(medium: Medium) {
    let mut rig = Rig::start(medium, "refused", S_REFUSED, &[]);
    let out = rig.python(
        py::REFUSED,
        &[&rig.stack_ip, "9999"],
        Duration::from_secs(10),
    );
    if out.stdout.trim() != "REFUSED" {
        let stopped = rig.stop();
        panic!("{medium:?}: a datagram to closed port 9999 should bring ECONNREFUSED:\n{out}\n{stopped}");
    }
    // And the stack still echoes afterwards.
    let out = rig.python(
        py::ECHO,
        &[&rig.stack_ip, "7", "3", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(py::result_field(&out.stdout, "ok"), Some(3), "{out}");
}

/// tshark over a capture, with IP, UDP and TCP checksum checks on (ICMP's is
/// always checked), returning the lines of `-Y FILTER`'s frames.
fn tshark_frames(pcap: &str, filter: &str) -> Vec<String> {
    let out = run(
        &[
            "tshark",
            "-n",
            "-r",
            pcap,
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-Y",
            filter,
        ],
        Duration::from_secs(60),
    );
    assert!(out.success(), "tshark -Y '{filter}' failed:\n{out}");
    out.stdout.lines().map(str::to_owned).collect()
}

fn capture_is_clean(medium: Medium) {
    let pcap = TempFile::new("pcap");
    let mut rig = Rig::start(medium, "pcap", S_PCAP, &["--pcap", pcap.path()]);
    let ping = rig.kernel.exec(
        &[
            "ping",
            "-n",
            "-c",
            "3",
            "-W",
            "2",
            "-i",
            "0.2",
            "-w",
            "15",
            &rig.stack_ip,
        ],
        Duration::from_secs(20),
    );
    let echo = rig.python(
        py::ECHO,
        &[&rig.stack_ip, "7", "40", "7"],
        Duration::from_secs(60),
    );
    let refused = rig.python(
        py::REFUSED,
        &[&rig.stack_ip, "9999"],
        Duration::from_secs(10),
    );
    let stopped = rig.stop();
    let ctx = format!("{ping}\n{echo}\n{refused}\n{stopped}");
    assert!(
        ping.stdout.contains(" 3 received"),
        "{medium:?}: ping failed:\n{ctx}"
    );
    assert_eq!(
        py::result_field(&echo.stdout, "ok"),
        Some(40),
        "{medium:?}:\n{ctx}"
    );
    assert_eq!(refused.stdout.trim(), "REFUSED", "{medium:?}:\n{ctx}");
    assert_eq!(stopped.status.and_then(|s| s.code()), Some(0), "{ctx}");

    let file = pcap.path();
    let all = tshark_frames(file, "frame");
    let dump = all.join("\n");
    let bad = tshark_frames(
        file,
        "ip.checksum.status == \"Bad\" || udp.checksum.status == \"Bad\" \
         || icmp.checksum.status == \"Bad\" || _ws.malformed || _ws.expert.severity == error",
    );
    assert!(
        bad.is_empty(),
        "{medium:?}: capture has bad checksums / malformed frames:\n{}\n--- whole capture ---\n{dump}",
        bad.join("\n")
    );
    let s = &rig.stack_ip;
    let k = &rig.kernel_ip;
    let count = |f: &str| tshark_frames(file, f).len();
    let replies = count(&format!(
        "ip.src == {s} && ip.dst == {k} && icmp.type == 0 && icmp.checksum.status == \"Good\""
    ));
    assert!(
        replies >= 3,
        "{medium:?}: expected 3 ICMP echo replies, saw {replies}:\n{dump}"
    );
    let requests_in = count(&format!("ip.src == {k} && udp.dstport == 7"));
    let echoes = count(&format!(
        "ip.src == {s} && udp.srcport == 7 && ip.checksum.status == \"Good\" \
         && udp.checksum.status == \"Good\""
    ));
    assert!(
        requests_in >= 40,
        "{medium:?}: expected 40 UDP datagrams in, saw {requests_in}:\n{dump}"
    );
    assert_eq!(
        echoes, requests_in,
        "{medium:?}: every datagram in should have one echo with good IP/UDP checksums:\n{dump}"
    );
    let unreach = count(&format!(
        "ip.src == {s} && icmp.type == 3 && icmp.code == 3"
    ));
    assert!(
        unreach >= 1,
        "{medium:?}: expected an ICMP port unreachable:\n{dump}"
    );
    if medium != Medium::Tun {
        let arp = count(&format!("arp.opcode == 2 && arp.src.proto_ipv4 == {s}"));
        assert!(
            arp >= 1,
            "{medium:?}: expected the stack's ARP reply:\n{dump}"
        );
    }
}

/// utime + stime of `pid` in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `after` starts at field 3 (state).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn idle_uses_no_cpu(medium: Medium) {
    let mut rig = Rig::start(medium, "idle", S_IDLE, &[]);
    let pid = rig.tool().pid();
    // `ip netns exec` execs the command in place: our child is udpecho.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "udpecho", "pid {pid} is not udpecho");
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_ticks(pid);
    let window = Duration::from_secs(3);
    std::thread::sleep(window);
    let after = cpu_ticks(pid);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let used = (after - before) as f64 / hz;
    if used >= 0.01 * window.as_secs_f64() {
        let stopped = rig.stop();
        panic!(
            "{medium:?}: idle udpecho used {used:.3} s of CPU in {window:?} ({} ticks at {hz} Hz): busy polling?\n{stopped}",
            after - before
        );
    }
}

macro_rules! medium_tests {
    ($m:ident, $medium:expr, $($extra:literal),*) => {
        mod $m {
            use super::*;
            const TOOLS: &[&str] = &[$($extra),*];
            #[test]
            fn ping_gets_three_replies() {
                if preconditions(concat!(stringify!($m), "::ping_gets_three_replies"), TOOLS) {
                    super::ping_gets_three_replies($medium);
                }
            }
            #[test]
            fn echo_500_datagrams() {
                if preconditions(concat!(stringify!($m), "::echo_500_datagrams"), TOOLS) {
                    super::echo_500_datagrams($medium);
                }
            }
            #[test]
            fn closed_port_is_refused() {
                if preconditions(concat!(stringify!($m), "::closed_port_is_refused"), TOOLS) {
                    super::closed_port_is_refused($medium);
                }
            }
            #[test]
            fn capture_is_clean() {
                let mut tools = TOOLS.to_vec();
                tools.push("tshark");
                if preconditions(concat!(stringify!($m), "::capture_is_clean"), &tools) {
                    super::capture_is_clean($medium);
                }
            }
            #[test]
            fn idle_uses_no_cpu() {
                if preconditions(concat!(stringify!($m), "::idle_uses_no_cpu"), TOOLS) {
                    super::idle_uses_no_cpu($medium);
                }
            }
        }
    };
}

medium_tests!(tun, Medium::Tun,);
medium_tests!(tap, Medium::Tap,);
medium_tests!(raw, Medium::Raw,);

/// Exactly one line on stderr and a non-zero exit.
fn assert_one_line_failure(out: &harness::Output, what: &str) {
    assert!(!out.timed_out, "{what}: timed out\n{out}");
    assert!(
        out.status.is_some_and(|s| !s.success()),
        "{what}: should exit non-zero\n{out}"
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: want exactly one line on stderr\n{out}"
    );
    assert!(lines[0].starts_with("udpecho: "), "{what}: {out}");
}

#[test]
fn no_device_flag_is_one_line_error() {
    // Fails before touching any device, so it needs no namespace or root.
    let out = run(&[UDPECHO, "--addr", "10.9.0.2/24"], Duration::from_secs(10));
    assert_one_line_failure(&out, "udpecho without --tun/--tap/--raw");
}

#[test]
fn missing_raw_interface_is_one_line_error() {
    if !preconditions("missing_raw_interface_is_one_line_error", &[]) {
        return;
    }
    let ns = Netns::new("badraw");
    let argv = ns.exec_argv(&[UDPECHO, "--raw", "nosuchif0", "--addr", "10.9.1.2/24"]);
    let out = run(&argv, Duration::from_secs(10));
    assert_one_line_failure(&out, "udpecho --raw nosuchif0");
}

#[test]
fn no_privileges_is_one_line_error() {
    if !preconditions("no_privileges_is_one_line_error", &["setpriv"]) {
        return;
    }
    // Inside our namespace, so that nothing could ever be created outside.
    let ns = Netns::new("nopriv");
    let argv = ns.exec_argv(&[
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=-all",
        UDPECHO,
        "--tun",
        "ustk0",
        "--addr",
        "10.9.2.2/24",
    ]);
    let out = run(&argv, Duration::from_secs(10));
    assert_one_line_failure(&out, "udpecho --tun as an unprivileged user");
}

/// A TUN the tool creates vanishes when it exits, unless `--persist`: then
/// it stays, with the kernel-side address given to it, and the next run
/// attaches to it and leaves it there.
#[test]
fn persist_keeps_the_device_and_its_address() {
    if !preconditions("persist_keeps_the_device_and_its_address", &[]) {
        return;
    }
    let ns = Netns::new("persist");
    let has = |what: &str| {
        ns.ip(&["addr", "show", "dev", "ustkp0"])
            .stdout
            .contains(what)
    };
    let link_exists = || {
        run(
            &["ip", "-n", ns.name(), "link", "show", "dev", "ustkp0"],
            Duration::from_secs(10),
        )
        .success()
    };
    let udpecho = |persist: bool| {
        let mut argv = vec!["--tun", "ustkp0", "--addr", "10.9.3.2/24"];
        if persist {
            argv.push("--persist");
        }
        harness::Tool::start(&ns, harness::ToolSpec::udpecho(&argv))
    };
    let mut t = udpecho(false);
    let stopped = t.stop();
    assert_eq!(stopped.code(), Some(0), "{stopped}");
    assert!(
        !link_exists(),
        "without --persist the TUN should go with udpecho"
    );
    let mut t = udpecho(true);
    ns.ip(&["addr", "add", "10.9.3.1/24", "dev", "ustkp0"]);
    let stopped = t.stop();
    assert_eq!(stopped.code(), Some(0), "{stopped}");
    assert!(
        link_exists() && has("10.9.3.1/24"),
        "with --persist the TUN and its address should stay\n{stopped}"
    );
    // The next run (without the flag) attaches to it and leaves it there.
    let mut t = udpecho(false);
    let stopped = t.stop();
    assert!(
        link_exists() && has("10.9.3.1/24"),
        "a persistent TUN should outlive the next run too\n{stopped}"
    );
}

/// The examples and the tools' observability flags (`examples.rs`).
macro_rules! example_tests {
    ($([$test:ident, $($tool:literal),*]),* $(,)?) => {
        mod example_tests {
            $(
                #[test]
                fn $test() {
                    if crate::harness::preconditions(
                        concat!("examples::", stringify!($test)),
                        &[$($tool),*],
                    ) {
                        crate::examples::$test();
                    }
                }
            )*
        }
    };
}

example_tests!(
    [http_server_serves_files, "curl", "sha256sum"],
    [http_server_survives_wrk, "wrk"],
    [proxy_carries_iperf3, "iperf3", "ss"],
    [proxy_propagates_half_close, "ss"],
    [poll_loop_echoes_tcp_and_udp, "ping"],
    [stats_interval_prints_counters, "ping"],
    [sigusr1_prints_socket_table, "ping"],
    [ucat_progress_reports, "ping"],
);

/// `--pcap` captures complete on every way out (`capture.rs`).
macro_rules! capture_tests {
    ($([$test:ident, $($tool:literal),*]),* $(,)?) => {
        mod capture_tests {
            $(
                #[test]
                fn $test() {
                    if crate::harness::preconditions(
                        concat!("capture::", stringify!($test)),
                        &["tshark", $($tool),*],
                    ) {
                        crate::capture::$test();
                    }
                }
            )*
        }
    };
}

capture_tests!(
    [ucat_capture_at_end_of_transfer,],
    [ucat_capture_on_sigint,],
    [ucat_capture_on_sigterm,],
    [ucat_capture_on_error,],
    [http_server_capture_on_sigterm, "curl"],
    [async_echo_capture_on_sigint,],
);
