//! The pieces every namespace test uses: preconditions, a namespace guard,
//! a `udpecho` guard, bounded command runs, and the rigs (TUN, TAP, raw
//! socket on a veth pair) that put a Linux peer in front of the stack.
//!
//! Safety rules (shared/TESTING.md): everything happens in namespaces named
//! `ustk-<tag>-<pid>-<n>` that these guards create and delete on drop, even
//! when the test panics; devices and 10.x addresses exist only inside them;
//! every wait is bounded; only our own children are signalled, by pid.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const UDPECHO: &str = env!("CARGO_BIN_EXE_udpecho");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// True when the environment says we are in CI (netns tests must then run,
/// never skip).
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")),
        Err(_) => false,
    }
}

fn have_command(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Checks what namespace tests need: root, /dev/net/tun, `ip`, `python3`,
/// plus the extra tools named. Returns false (after printing "skipping: ...")
/// when something is missing outside CI; panics in CI.
pub fn preconditions(test: &str, extra_tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root privileges".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun".to_string());
    }
    if !have_command("ip", "-V") {
        missing.push("`ip` (iproute2)".to_string());
    }
    if !have_command("python3", "--version") {
        missing.push("`python3`".to_string());
    }
    for tool in extra_tools {
        if !have_command(tool, "--version") {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: needs {} (run as root after scripts/install-deps.sh)",
        missing.join(", ")
    );
    if in_ci() {
        panic!("CI is set, so not skipping: {msg}");
    }
    eprintln!("skipping: {msg}");
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

fn read_all_thread<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
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

const CMD_LIMIT: Duration = Duration::from_secs(20);

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

    /// `ip -n NS ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "-n", self.name.as_str()];
        v.extend_from_slice(args);
        run_ok(&v, CMD_LIMIT)
    }

    /// Starts `argv` in the namespace in the background; it is killed (by
    /// pid) when the namespace guard drops.
    #[allow(dead_code)]
    pub fn spawn(&self, argv: &[&str]) -> u32 {
        let child = Command::new("ip")
            .args(self.exec_argv(argv))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }

    /// Waits (bounded) until interface `dev` exists in the namespace.
    pub fn wait_for_link(&self, dev: &str, limit: Duration) {
        let start = Instant::now();
        for _ in 0..1000 {
            let out = run(
                &["ip", "-n", &self.name, "link", "show", "dev", dev],
                CMD_LIMIT,
            );
            if out.success() {
                return;
            }
            if start.elapsed() > limit {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("{dev} did not appear in {} within {limit:?}", self.name);
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

/// What udpecho left when it stopped.
#[derive(Debug)]
pub struct Stopped {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "udpecho status: {:?}\n--- udpecho stdout ---\n{}\n--- udpecho stderr ---\n{}",
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A running `udpecho` inside a namespace. Stopped with SIGINT on drop
/// (SIGKILL when it does not exit in time).
pub struct Udpecho {
    child: Option<Child>,
    stderr_lines: std::sync::Arc<Mutex<Vec<String>>>,
    stderr_thread: Option<thread::JoinHandle<()>>,
    stdout_thread: Option<thread::JoinHandle<String>>,
}

const READY: &str = "udpecho: echoing UDP port";

impl Udpecho {
    /// Starts udpecho with `args` in `ns` and waits (bounded) for its ready
    /// line on stderr.
    pub fn start(ns: &Netns, args: &[&str]) -> Udpecho {
        let mut argv = ns.exec_argv(&[UDPECHO]);
        argv.extend_from_slice(args);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<()>();
        let lines2 = lines.clone();
        let stderr_thread = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let ready = line.starts_with(READY);
                lines2.lock().unwrap().push(line);
                if ready {
                    let _ = tx.send(());
                }
            }
        });
        let mut echo = Udpecho {
            child: Some(child),
            stderr_lines: lines,
            stderr_thread: Some(stderr_thread),
            stdout_thread: Some(read_all_thread(stdout)),
        };
        if let Err(e) = rx.recv_timeout(Duration::from_secs(10)) {
            let why = match e {
                mpsc::RecvTimeoutError::Timeout => "did not become ready within 10 s",
                mpsc::RecvTimeoutError::Disconnected => "closed stderr (exited) before ready",
            };
            let stopped = echo.stop();
            panic!("udpecho {args:?} {why}\n{stopped}");
        }
        echo
    }

    /// The pid of our child (the udpecho process itself: `ip netns exec`
    /// execs it in place).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops udpecho with SIGINT, waits (bounded; SIGKILL after 5 s) and
    /// returns what it printed.
    pub fn stop(&mut self) -> Stopped {
        let mut status = None;
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                // SAFETY: kill(2) on the pid of our own, not yet reaped child.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            }
            let start = Instant::now();
            status = loop {
                match child.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if start.elapsed() < Duration::from_secs(5) => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        eprintln!("udpecho did not exit on SIGINT within 5 s: SIGKILL");
                        let _ = child.kill();
                        break child.wait().ok();
                    }
                }
            };
        }
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let stdout = self
            .stdout_thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        let stderr = self.stderr_lines.lock().unwrap().join("\n");
        Stopped {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Udpecho {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// A file in the temp directory, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(what: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!(
            "ustk-{what}-{}-{}",
            std::process::id(),
            unique()
        )))
    }
    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How the stack meets the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Tun,
    Tap,
    Raw,
}

impl Medium {
    /// Second octet of the test subnets for this medium.
    fn octet(self) -> u8 {
        match self {
            Medium::Tun => 1,
            Medium::Tap => 2,
            Medium::Raw => 3,
        }
    }
    fn tag(self) -> &'static str {
        match self {
            Medium::Tun => "tun",
            Medium::Tap => "tap",
            Medium::Raw => "raw",
        }
    }
}

/// The stack (udpecho) and a Linux peer, wired per medium:
/// * TUN/TAP: one namespace `ustk-<tag>-...`; udpecho creates `ustk0`, the
///   kernel side gets 10.M.S.1/24 on it, the stack is 10.M.S.2/24.
/// * raw: `ustk-rawk-...` holds the kernel end `ustkk0` (10.3.S.1/24, tx
///   checksum offload off), `ustk-raws-...` the stack's end `ustks0` (no
///   address), joined as a veth pair.
///
/// Fields drop in order: udpecho first, then the namespaces.
pub struct Rig {
    pub echo: Udpecho,
    /// Where the Linux peer (ping, python) runs.
    pub kernel: Netns,
    /// The stack's own namespace for raw; None when shared with `kernel`.
    pub stack_ns: Option<Netns>,
    pub stack_ip: String,
    pub kernel_ip: String,
}

impl Rig {
    /// Sets up `medium` on subnet 10.M.`subnet`.0/24 and starts udpecho
    /// with `extra` flags.
    pub fn start(medium: Medium, tag: &str, subnet: u8, extra: &[&str]) -> Rig {
        let m = medium.octet();
        let stack_ip = format!("10.{m}.{subnet}.2");
        let kernel_ip = format!("10.{m}.{subnet}.1");
        let stack_cidr = format!("{stack_ip}/24");
        let kernel_cidr = format!("{kernel_ip}/24");
        match medium {
            Medium::Tun | Medium::Tap => {
                let ns = Netns::new(&format!("{}{tag}", medium.tag()));
                let flag = if medium == Medium::Tun {
                    "--tun"
                } else {
                    "--tap"
                };
                let mut args = vec![flag, "ustk0", "--addr", &stack_cidr];
                args.extend_from_slice(extra);
                let echo = Udpecho::start(&ns, &args);
                ns.wait_for_link("ustk0", Duration::from_secs(5));
                let link = ns.ip(&["link", "show", "dev", "ustk0"]);
                assert!(
                    link.stdout.contains(",UP") || link.stdout.contains("<UP"),
                    "udpecho did not bring ustk0 up:\n{link}"
                );
                ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.ustk0.disable_ipv6=1"]);
                ns.ip(&["addr", "add", &kernel_cidr, "dev", "ustk0"]);
                Rig {
                    echo,
                    kernel: ns,
                    stack_ns: None,
                    stack_ip,
                    kernel_ip,
                }
            }
            Medium::Raw => {
                let k = Netns::new(&format!("rawk{tag}"));
                let s = Netns::new(&format!("raws{tag}"));
                k.ip(&[
                    "link",
                    "add",
                    "ustkk0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "ustks0",
                    "netns",
                    s.name(),
                ]);
                k.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.ustkk0.disable_ipv6=1"]);
                s.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.ustks0.disable_ipv6=1"]);
                // Otherwise AF_PACKET on the peer sees partial checksums.
                k.exec_ok(&["ethtool", "-K", "ustkk0", "tx", "off"]);
                k.ip(&["addr", "add", &kernel_cidr, "dev", "ustkk0"]);
                k.ip(&["link", "set", "ustkk0", "up"]);
                s.ip(&["link", "set", "ustks0", "up"]);
                let mut args = vec!["--raw", "ustks0", "--addr", &stack_cidr];
                args.extend_from_slice(extra);
                let echo = Udpecho::start(&s, &args);
                Rig {
                    echo,
                    kernel: k,
                    stack_ns: Some(s),
                    stack_ip,
                    kernel_ip,
                }
            }
        }
    }

    /// The namespace udpecho runs in.
    #[allow(dead_code)]
    pub fn stack_netns(&self) -> &Netns {
        self.stack_ns.as_ref().unwrap_or(&self.kernel)
    }

    /// Runs a python3 snippet in the kernel namespace with `args`.
    pub fn python(&self, script: &str, args: &[&str], limit: Duration) -> Output {
        let mut argv = vec!["python3", "-c", script];
        argv.extend_from_slice(args);
        self.kernel.exec(&argv, limit)
    }
}
