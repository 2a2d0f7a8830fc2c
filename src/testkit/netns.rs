//! The network-namespace harness, one copy for two users: the crate's unit
//! tests (`crate::testkit::netns`, the phy devices' namespace tests) and
//! the namespace integration tests (`netns-tests/harness.rs` includes this
//! file by path). Only std and libc, so it compiles in both.
//!
//! What it gives: the "skip unless CI, fail in CI" rule ([`skip`],
//! [`preconditions`]), bounded command runs ([`run`], [`run_ok`]) and a
//! namespace guard ([`Netns`]). Safety rules ("Namespace safety rules" in
//! README.md): namespaces are named `ustk-<tag>-<pid>-<n>` and deleted on
//! drop, even when the test panics; every wait is bounded; only our own
//! children are signalled, by pid.

#![allow(dead_code)] // each user takes its own part

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number no other call in this process returns (for unique names).
pub fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// True when the environment says this is CI (`CI` set and not empty,
/// `0` or `false`): a test that cannot run here must then fail, never skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")))
}

/// Test `test` cannot run here because `what` is missing: with `CI` set
/// that fails the test; otherwise it prints "skipping: ..." and returns,
/// and the caller returns too.
pub fn skip(test: &str, what: &str) {
    let msg = format!("{test}: {what}");
    assert!(!in_ci(), "CI is set, so not skipping: {msg}");
    eprintln!("skipping: {msg}");
}

/// Whether `cmd` is on PATH and runs.
pub fn installed(cmd: &str) -> bool {
    // Installed is enough: some tools (wrk) exit 1 on --version.
    Command::new(cmd)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Checks what namespace tests need: root, /dev/net/tun, `ip`, `python3`
/// (the Linux peer's scripts), plus the extra tools named. True when all
/// are there; otherwise [`skip`]s (false outside CI, a failure in CI).
pub fn preconditions(test: &str, extra_tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root privileges".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun".to_string());
    }
    for tool in ["ip", "python3"].iter().chain(extra_tools) {
        if !installed(tool) {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let what = format!(
        "needs {} (run as root after scripts/install-deps.sh)",
        missing.join(", ")
    );
    skip(test, &what);
    false
}

/// What a bounded command run produced.
#[derive(Debug)]
pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {:?}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            if self.timed_out {
                " (timed out, killed)"
            } else {
                ""
            },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Reads `r` to its end on a thread of its own; the thread returns the text.
pub fn read_all_thread<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Runs `argv` to completion, killing it (our child, by pid) after `limit`.
pub fn run(argv: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    let out = read_all_thread(child.stdout.take());
    let err = read_all_thread(child.stderr.take());
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < limit => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Err(e) => panic!("waiting for {argv:?}: {e}"),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
    }
}

/// Runs `argv` and panics with its output unless it succeeds.
pub fn run_ok(argv: &[&str], limit: Duration) -> Output {
    let out = run(argv, limit);
    assert!(out.success(), "{argv:?} failed:\n{out}");
    out
}

/// How long an `ip` or `sysctl` run may take.
pub const CMD_LIMIT: Duration = Duration::from_secs(20);

/// A network namespace this test created; deleted (after killing the
/// children started in it) on drop.
pub struct Netns {
    name: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Creates `ustk-<tag>-<pid>-<n>` with loopback up and IPv6 disabled by
    /// default (so captures hold only what the test sends).
    pub fn new(tag: &str) -> Netns {
        let name = format!("ustk-{tag}-{}-{}", std::process::id(), unique());
        assert!(name.len() <= 64, "namespace name too long: {name}");
        run_ok(&["ip", "netns", "add", &name], CMD_LIMIT);
        // From here on, drop deletes it.
        let ns = Netns {
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The argv that runs `argv` inside this namespace.
    pub fn exec_argv<'a>(&'a self, argv: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["ip", "netns", "exec", self.name.as_str()];
        v.extend_from_slice(argv);
        v
    }

    /// Runs `argv` inside the namespace, bounded by `limit`.
    pub fn exec(&self, argv: &[&str], limit: Duration) -> Output {
        run(&self.exec_argv(argv), limit)
    }

    /// Runs `argv` inside the namespace and panics unless it succeeds.
    pub fn exec_ok(&self, argv: &[&str]) -> Output {
        run_ok(&self.exec_argv(argv), CMD_LIMIT)
    }

    /// Turns IPv6 on for `dev` (the namespaces start with it off) and
    /// gives it `cidr` without duplicate address detection, so the
    /// address works at once.
    pub fn add_ipv6(&self, dev: &str, cidr: &str) {
        self.exec_ok(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
        ]);
        self.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
    }

    /// `ip -n NS ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "-n", self.name.as_str()];
        v.extend_from_slice(args);
        run_ok(&v, CMD_LIMIT)
    }

    /// Runs `f` on a thread of its own that has entered the namespace
    /// (setns), so the test process's other threads stay where they are.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        let h = thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path).expect("open netns file");
            // SAFETY: setns on a namespace fd; affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Starts `argv` in the namespace in the background; it is killed (by
    /// pid) when the namespace guard drops.
    pub fn spawn(&self, argv: &[&str]) -> u32 {
        let full = self.exec_argv(argv);
        let child = Command::new(full[0])
            .args(&full[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for child in children.iter_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let out = run(&["ip", "netns", "del", &self.name], CMD_LIMIT);
        if !out.success() {
            eprintln!("warning: could not delete namespace {}:\n{out}", self.name);
        }
    }
}
