//! The pieces every namespace test uses: preconditions, a namespace guard
//! and bounded command runs (`src/testkit/netns.rs`, shared with the
//! crate's unit tests and included here by path), a `Tool` guard (any of
//! our binaries, or a python server, in a namespace, optionally waiting for
//! its ready line on stderr), and the rigs (TUN, TAP, raw socket on a veth
//! pair) that put a Linux peer in front of the stack.
//!
//! Safety rules ("Namespace safety rules" in README.md): everything happens in namespaces named
//! `ustk-<tag>-<pid>-<n>` that these guards create and delete on drop, even
//! when the test panics; devices and 10.x addresses exist only inside them;
//! every wait is bounded; only our own children are signalled, by pid.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Paths of the binaries under test.
pub const UDPECHO: &str = env!("CARGO_BIN_EXE_udpecho");
pub const TCPECHO: &str = env!("CARGO_BIN_EXE_tcpecho");
pub const UCAT: &str = env!("CARGO_BIN_EXE_ucat");

#[path = "../src/testkit/netns.rs"]
mod netns;
pub use netns::*;

/// Where a tool's standard input comes from.
#[derive(Debug)]
pub enum Input {
    /// /dev/null: end of input at once.
    Null,
    /// A file.
    File(PathBuf),
    /// A pipe the test writes with [`Tool::write_stdin`]; closed when the
    /// tool is stopped or waited for.
    Pipe,
}

/// How to start one of our binaries (or any command): argv, the prefix of
/// its ready line on stderr (if it prints one), stdin and where stdout goes.
#[derive(Debug)]
pub struct ToolSpec {
    pub argv: Vec<String>,
    pub ready: Option<String>,
    pub stdin: Input,
    /// None: captured into [`Stopped::stdout`]; Some: written to that file.
    pub stdout_file: Option<PathBuf>,
}

impl ToolSpec {
    pub fn new(program: &str, args: &[&str]) -> ToolSpec {
        let mut argv = vec![program.to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        ToolSpec {
            argv,
            ready: None,
            stdin: Input::Null,
            stdout_file: None,
        }
    }
    /// `tool ARGS`: one of our binaries, by path.
    pub fn udpecho(args: &[&str]) -> ToolSpec {
        ToolSpec::new(UDPECHO, args).ready("udpecho: echoing UDP port")
    }
    pub fn tcpecho(args: &[&str]) -> ToolSpec {
        ToolSpec::new(TCPECHO, args).ready("tcpecho: echoing")
    }
    /// ucat prints no ready line.
    pub fn ucat(args: &[&str]) -> ToolSpec {
        ToolSpec::new(UCAT, args)
    }
    /// `python3 -c SCRIPT ARGS`, ready when it prints `READY` on stderr.
    pub fn python_server(script: &str, args: &[&str]) -> ToolSpec {
        let mut v = vec!["-c", script];
        v.extend_from_slice(args);
        ToolSpec::new("python3", &v).ready("READY")
    }
    pub fn ready(mut self, prefix: &str) -> ToolSpec {
        self.ready = Some(prefix.to_string());
        self
    }
    pub fn stdin(mut self, input: Input) -> ToolSpec {
        self.stdin = input;
        self
    }
    pub fn stdout_to(mut self, path: &str) -> ToolSpec {
        self.stdout_file = Some(PathBuf::from(path));
        self
    }
    /// A short name for messages: the program's file name and the rest of
    /// argv (python's script left out).
    fn label(&self) -> String {
        let prog = Path::new(&self.argv[0])
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rest: Vec<&str> = self.argv[1..]
            .iter()
            .map(|a| {
                if a.contains('\n') {
                    "SCRIPT"
                } else {
                    a.as_str()
                }
            })
            .collect();
        format!("{prog} {}", rest.join(" "))
    }
}

/// What a tool left when it ended.
#[derive(Debug)]
pub struct Stopped {
    pub label: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// It did not end by itself (or on SIGINT) in time and was SIGKILLed.
    pub killed: bool,
}

impl Stopped {
    /// The exit code, when it exited (rather than being killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] status: {:?}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.label,
            self.status,
            if self.killed { " (SIGKILLed)" } else { "" },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A running process inside a namespace (`ip netns exec` execs it in
/// place, so our child is the tool itself). Stopped with SIGINT on drop
/// (SIGKILL when it does not exit in time).
pub struct Tool {
    label: String,
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    stderr_lines: std::sync::Arc<Mutex<Vec<String>>>,
    stderr_thread: Option<thread::JoinHandle<()>>,
    stdout_thread: Option<thread::JoinHandle<String>>,
}

impl Tool {
    /// Starts `spec` in `ns`; when it has a ready line, waits (10 s at most)
    /// for it on stderr.
    pub fn start(ns: &Netns, spec: ToolSpec) -> Tool {
        let label = spec.label();
        let argv: Vec<&str> = spec.argv.iter().map(String::as_str).collect();
        let argv = ns.exec_argv(&argv);
        let stdin = match &spec.stdin {
            Input::Null => Stdio::null(),
            Input::Pipe => Stdio::piped(),
            Input::File(p) => Stdio::from(
                std::fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display())),
            ),
        };
        let stdout = match &spec.stdout_file {
            None => Stdio::piped(),
            Some(p) => Stdio::from(
                std::fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display())),
            ),
        };
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<()>();
        let lines2 = lines.clone();
        let ready = spec.ready.clone();
        let stderr_thread = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let is_ready = ready.as_deref().is_some_and(|r| line.starts_with(r));
                lines2.lock().unwrap().push(line);
                if is_ready {
                    let _ = tx.send(());
                }
            }
        });
        let mut tool = Tool {
            label,
            stdin: child.stdin.take(),
            child: Some(child),
            stderr_lines: lines,
            stderr_thread: Some(stderr_thread),
            stdout_thread: stdout.map(|s| read_all_thread(Some(s))),
        };
        if spec.ready.is_some() {
            if let Err(e) = rx.recv_timeout(Duration::from_secs(10)) {
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => "did not become ready within 10 s",
                    mpsc::RecvTimeoutError::Disconnected => "closed stderr (exited) before ready",
                };
                let stopped = tool.stop();
                panic!("{} {why}\n{stopped}", tool.label);
            }
        }
        tool
    }

    /// The pid of our child.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// True while it has not exited.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits (bounded by `limit`) until a line it printed on stderr
    /// contains `needle`; true when one did.
    pub fn wait_stderr(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self
                .stderr_lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes to its stdin (an [`Input::Pipe`]).
    pub fn write_stdin(&mut self, data: &[u8]) {
        use std::io::Write;
        let w = self.stdin.as_mut().expect("stdin is a pipe, still open");
        w.write_all(data).expect("write to tool's stdin");
        w.flush().expect("flush tool's stdin");
    }

    /// Closes its stdin (an [`Input::Pipe`]): end of input for the tool.
    #[allow(dead_code)]
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends `sig` to our child, if it still runs.
    pub fn signal(&mut self, sig: libc::c_int) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                // SAFETY: kill(2) on the pid of our own, not yet reaped child.
                unsafe { libc::kill(child.id() as libc::pid_t, sig) };
            }
        }
    }

    /// Waits (bounded by `limit`) for it to exit by itself; SIGKILLs it
    /// after that. Returns what it printed.
    pub fn wait(&mut self, limit: Duration) -> Stopped {
        self.finish(None, limit)
    }

    /// Stops it with SIGINT, waits (bounded; SIGKILL after 5 s) and returns
    /// what it printed.
    pub fn stop(&mut self) -> Stopped {
        self.finish(Some(libc::SIGINT), Duration::from_secs(5))
    }

    fn finish(&mut self, sig: Option<libc::c_int>, limit: Duration) -> Stopped {
        let mut status = None;
        let mut killed = false;
        if let Some(sig) = sig {
            self.signal(sig);
        }
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            status = loop {
                match child.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if start.elapsed() < limit => thread::sleep(Duration::from_millis(10)),
                    _ => {
                        eprintln!("{} did not exit within {limit:?}: SIGKILL", self.label);
                        killed = true;
                        let _ = child.kill();
                        break child.wait().ok();
                    }
                }
            };
        }
        self.stdin = None;
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
            label: self.label.clone(),
            status,
            stdout,
            stderr,
            killed,
        }
    }
}

impl Drop for Tool {
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

/// One of our tools on the stack side and a Linux peer, wired per medium:
/// * TUN/TAP: one namespace `ustk-<tag>-...`; the tool creates `ustk0`
///   (gone again when it exits, with the kernel side's address), the kernel
///   side gets 10.M.S.1/24 on it, the stack is 10.M.S.2/24.
/// * raw: `ustk-rawk-...` holds the kernel end `ustkk0` (10.3.S.1/24, the
///   veth's default offloads: Linux sends TSO super-segments with partial
///   checksums), `ustk-raws-...` the stack's end `ustks0` (no address),
///   joined as a veth pair.
///
/// [`Rig::new`] makes the namespaces, [`Rig::launch`] starts the tool with
/// the device flags in front of its own arguments. Fields drop in order:
/// the tool first, then the namespaces.
pub struct Rig {
    tool: Option<Tool>,
    /// Where the Linux peer (ping, python) runs.
    pub kernel: Netns,
    /// The stack's own namespace for raw; None when shared with `kernel`.
    pub stack_ns: Option<Netns>,
    pub medium: Medium,
    pub stack_ip: String,
    pub kernel_ip: String,
    /// The stack gets its IPv4 address (`--addr 10.M.S.2/24`); false for
    /// an IPv6-only stack ([`Rig::ipv6_only`]), whose tool is given its
    /// IPv6 `--addr` by the test.
    pub ipv4: bool,
}

impl Rig {
    /// The namespaces (and for raw the veth pair and the kernel side's
    /// address) for `medium` on subnet 10.M.`subnet`.0/24; no tool yet.
    pub fn new(medium: Medium, tag: &str, subnet: u8) -> Rig {
        let m = medium.octet();
        let stack_ip = format!("10.{m}.{subnet}.2");
        let kernel_ip = format!("10.{m}.{subnet}.1");
        match medium {
            Medium::Tun | Medium::Tap => Rig {
                tool: None,
                kernel: Netns::new(&format!("{}{tag}", medium.tag())),
                stack_ns: None,
                medium,
                stack_ip,
                kernel_ip,
                ipv4: true,
            },
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
                k.ip(&["addr", "add", &format!("{kernel_ip}/24"), "dev", "ustkk0"]);
                k.ip(&["link", "set", "ustkk0", "up"]);
                s.ip(&["link", "set", "ustks0", "up"]);
                Rig {
                    tool: None,
                    kernel: k,
                    stack_ns: Some(s),
                    medium,
                    stack_ip,
                    kernel_ip,
                    ipv4: true,
                }
            }
        }
    }

    /// Like [`Rig::new`], for a stack with no IPv4 address: the tool gets
    /// only the device flag (the test adds its IPv6 `--addr`), and on
    /// TUN/TAP the kernel side gets no IPv4 address either.
    pub fn ipv6_only(medium: Medium, tag: &str, subnet: u8) -> Rig {
        let mut rig = Rig::new(medium, tag, subnet);
        rig.ipv4 = false;
        rig
    }

    /// The kernel's end of the link: `ustk0` (TUN/TAP) or `ustkk0` (raw).
    pub fn kernel_dev(&self) -> &'static str {
        match self.medium {
            Medium::Tun | Medium::Tap => "ustk0",
            Medium::Raw => "ustkk0",
        }
    }

    /// Gives the kernel's end of the link the IPv6 `cidr` (IPv6 turned
    /// on there, no duplicate address detection); after [`Rig::launch`].
    pub fn kernel_ipv6(&self, cidr: &str) {
        self.kernel.add_ipv6(self.kernel_dev(), cidr);
    }

    /// [`Rig::launch`] with the stack's IPv6 address `--addr V6/64` added
    /// to the tool's flags, then the kernel's end given `KV6/64`
    /// ([`Rig::kernel_ipv6`]).
    pub fn launch_v6(&mut self, mut spec: ToolSpec, v6: &str, kv6: &str) {
        spec.argv
            .splice(1..1, ["--addr".to_string(), format!("{v6}/64")]);
        self.launch(spec);
        self.kernel_ipv6(&format!("{kv6}/64"));
    }

    /// `udpecho` on a new rig, with `extra` flags (ready when it says so).
    pub fn start(medium: Medium, tag: &str, subnet: u8, extra: &[&str]) -> Rig {
        let mut rig = Rig::new(medium, tag, subnet);
        rig.launch(ToolSpec::udpecho(extra));
        rig
    }

    /// `tcpecho` on a new rig, with `extra` flags (ready when it says so).
    pub fn tcpecho(medium: Medium, tag: &str, subnet: u8, extra: &[&str]) -> Rig {
        let mut rig = Rig::new(medium, tag, subnet);
        rig.launch(ToolSpec::tcpecho(extra));
        rig
    }

    /// The device flags for this rig's medium.
    pub fn device_args(&self) -> Vec<String> {
        let (flag, dev) = match self.medium {
            Medium::Tun => ("--tun", "ustk0"),
            Medium::Tap => ("--tap", "ustk0"),
            Medium::Raw => ("--raw", "ustks0"),
        };
        let mut v = vec![flag.to_string(), dev.to_string()];
        if self.ipv4 {
            v.push("--addr".into());
            v.push(format!("{}/24", self.stack_ip));
        }
        v
    }

    /// Starts `spec` in the stack's namespace with the device flags inserted
    /// after the program, waits for its ready line (if any), and for
    /// TUN/TAP for its `ustk0` to be up, then gives the kernel side its
    /// address. Panics (with the tool's output) if any of it fails.
    pub fn launch(&mut self, mut spec: ToolSpec) {
        assert!(self.tool.is_none(), "one tool per rig");
        let dev = self.device_args();
        spec.argv.splice(1..1, dev);
        let tool = Tool::start(self.stack_netns(), spec);
        self.tool = Some(tool);
        if self.medium == Medium::Raw {
            return;
        }
        let start = Instant::now();
        let limit = Duration::from_secs(5);
        loop {
            let link = run(
                &[
                    "ip",
                    "-n",
                    self.kernel.name(),
                    "link",
                    "show",
                    "dev",
                    "ustk0",
                ],
                CMD_LIMIT,
            );
            if link.success() && (link.stdout.contains(",UP") || link.stdout.contains("<UP")) {
                break;
            }
            let running = self.tool().running();
            if !running || start.elapsed() > limit {
                let stopped = self.stop();
                panic!(
                    "ustk0 was not up in {} within {limit:?} (tool {}):\n{link}\n{stopped}",
                    self.kernel.name(),
                    if running { "running" } else { "exited" },
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.kernel
            .exec_ok(&["sysctl", "-qw", "net.ipv6.conf.ustk0.disable_ipv6=1"]);
        if self.ipv4 {
            let cidr = format!("{}/24", self.kernel_ip);
            self.kernel.ip(&["addr", "add", &cidr, "dev", "ustk0"]);
        }
    }

    /// The running tool.
    pub fn tool(&mut self) -> &mut Tool {
        self.tool.as_mut().expect("a tool was launched")
    }

    /// Stops the tool with SIGINT (see [`Tool::stop`]).
    pub fn stop(&mut self) -> Stopped {
        self.tool().stop()
    }

    /// Waits for the tool to exit by itself (see [`Tool::wait`]).
    pub fn wait(&mut self, limit: Duration) -> Stopped {
        self.tool().wait(limit)
    }

    /// The namespace the tool runs in.
    pub fn stack_netns(&self) -> &Netns {
        self.stack_ns.as_ref().unwrap_or(&self.kernel)
    }

    /// Runs a python3 snippet in the kernel namespace with `args`.
    pub fn python(&self, script: &str, args: &[&str], limit: Duration) -> Output {
        let mut argv = vec!["python3", "-c", script];
        argv.extend_from_slice(args);
        self.kernel.exec(&argv, limit)
    }

    /// Starts a python3 server snippet in the kernel namespace and waits
    /// for its `READY` on stderr.
    pub fn python_server(&self, script: &str, args: &[&str]) -> Tool {
        Tool::start(&self.kernel, ToolSpec::python_server(script, args))
    }
}

/// Fills `path` with `len` deterministic pseudo-random bytes (xorshift64*).
pub fn write_pseudo_random(path: &Path, len: usize, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        data.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).expect("write data file");
}

/// The file's SHA-256, in hex (`sha256sum`).
pub fn sha256(path: &str) -> String {
    let out = run(&["sha256sum", path], Duration::from_secs(30));
    assert!(out.success(), "sha256sum {path}:\n{out}");
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}
