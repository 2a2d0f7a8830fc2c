//! http_server: an HTTP/1.1 static file server on the user-space stack,
//! written against the threaded, `std::net`-shaped API (`ustack::net`): one
//! thread per connection, blocking reads and writes.
//!
//! ```text
//! http_server --tun ustk0 --addr 10.0.0.2/24 --addr fd00::2/64 --port 80 --root ./public
//! curl http://10.0.0.2/index.html
//! curl 'http://[fd00::2]/index.html'
//! ```
//!
//! GET and HEAD, `Content-Length` on every response, keep-alive (HTTP/1.1
//! default, `Connection: close` honoured, HTTP/1.0 closes unless it asks
//! for keep-alive), 400 for malformed requests, 404 for missing files, 405
//! (with `Allow`) for other methods. Paths are percent-decoded and any `..`
//! segment is refused (403); the resolved file must lie under `--root`
//! after symlinks are followed. Files are streamed in 64 KiB pieces, never
//! loaded whole.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ustack::cli::{fail, parse_args, spawn_monitor, DeviceArgs, ObserveArgs, SignalFd};
use ustack::net::{TcpListener, TcpStream};
use ustack::stack::Stack;

const TOOL: &str = "http_server";
/// The longest request head accepted (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Connections served at once; more are closed at once after accept.
const MAX_CONNS: usize = 512;

/// Serve static files over HTTP/1.1 on a user-space TCP/IP stack.
#[derive(clap::Parser, Debug)]
#[command(name = "http_server", version, after_help = ustack::cli::SIGNALS_HELP)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// TCP port to serve on.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Directory whose files are served.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Congestion control: reno, cubic or bbr (the tools default to cubic).
    #[arg(long, default_value = "reno")]
    cc: String,
    /// Accept queue length.
    #[arg(long, default_value_t = 1024)]
    backlog: usize,
    /// Close a keep-alive connection after this many idle seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    idle_timeout: u64,
}

/// A parsed request head.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    target: String,
    /// HTTP/1.1 or later (keep-alive by default).
    http11: bool,
    keep_alive: bool,
    content_length: u64,
}

/// Why a request head is refused with 400.
#[derive(Debug, PartialEq)]
struct BadRequest(&'static str);

fn parse_head(head: &[u8]) -> Result<Request, BadRequest> {
    let text = std::str::from_utf8(head).map_err(|_| BadRequest("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().ok_or(BadRequest("empty request"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(BadRequest("malformed method"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(BadRequest("unsupported HTTP version")),
    };
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        http11,
        keep_alive: http11,
        content_length: 0,
    };
    let mut have_host = false;
    for h in lines {
        if h.is_empty() {
            continue;
        }
        let (name, value) = h.split_once(':').ok_or(BadRequest("malformed header"))?;
        if name.is_empty() || name.ends_with(' ') || name.ends_with('\t') {
            return Err(BadRequest("malformed header name"));
        }
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "host" => have_host = true,
            "connection" => {
                for token in value.split(',').map(|t| t.trim().to_ascii_lowercase()) {
                    match token.as_str() {
                        "close" => req.keep_alive = false,
                        "keep-alive" => req.keep_alive = true,
                        _ => {}
                    }
                }
            }
            "content-length" => {
                req.content_length = value
                    .parse()
                    .map_err(|_| BadRequest("bad Content-Length"))?;
            }
            "transfer-encoding" => return Err(BadRequest("request bodies are not supported")),
            _ => {}
        }
    }
    if http11 && !have_host {
        return Err(BadRequest("HTTP/1.1 request without Host"));
    }
    Ok(req)
}

/// Percent-decodes a path; None on a bad escape or a NUL.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    (!out.contains(&0)).then_some(out)
}

/// Where a request target leads under `root`.
#[derive(Debug, PartialEq)]
enum Resolved {
    File(PathBuf),
    Forbidden,
    NotFound,
    Bad,
}

/// Maps a request target to a file under `root` (canonical): only normal
/// path segments, no `..`, and the canonical result must stay under root.
fn resolve(root: &Path, target: &str) -> Resolved {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Resolved::Bad;
    }
    let Some(decoded) = percent_decode(path) else {
        return Resolved::Bad;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Resolved::Bad;
    };
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Resolved::Forbidden,
            s if s.contains('\\') => return Resolved::Forbidden,
            s => {
                // A segment must be one plain path component.
                let mut comps = Path::new(s).components();
                match (comps.next(), comps.next()) {
                    (Some(Component::Normal(_)), None) => rel.push(s),
                    _ => return Resolved::Forbidden,
                }
            }
        }
    }
    let mut full = root.join(&rel);
    if full.is_dir() {
        full.push("index.html");
    }
    match full.canonicalize() {
        Ok(c) if !c.starts_with(root) => Resolved::Forbidden,
        Ok(c) if c.is_file() => Resolved::File(c),
        _ => Resolved::NotFound,
    }
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Writes a response head (and a short text body for errors).
fn respond(
    s: &mut &TcpStream,
    status: &str,
    extra: &str,
    len: u64,
    ctype: &str,
    keep_alive: bool,
    body: Option<&[u8]>,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nServer: ustack-http_server\r\nContent-Length: {len}\r\nContent-Type: {ctype}\r\n{extra}Connection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    );
    match body {
        // One write for small responses: no Nagle stall between head and body.
        Some(b) => {
            let mut v = head.into_bytes();
            v.extend_from_slice(b);
            s.write_all(&v)
        }
        None => s.write_all(head.as_bytes()),
    }
}

fn error(
    s: &mut &TcpStream,
    status: &str,
    extra: &str,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let body = format!("{status}\n");
    respond(
        s,
        status,
        extra,
        body.len() as u64,
        "text/plain; charset=utf-8",
        keep_alive,
        (!head_only).then_some(body.as_bytes()),
    )
}

/// Streams `len` bytes of `f` through `buf` (64 KiB: the only copy of
/// the file in memory). Returns the bytes sent (less than `len` if the
/// file shrank).
fn send_file(mut f: File, len: u64, s: &mut &TcpStream, buf: &mut [u8]) -> io::Result<u64> {
    let mut sent = 0;
    while sent < len {
        let want = ((len - sent) as usize).min(buf.len());
        let n = match f.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        s.write_all(&buf[..n])?;
        sent += n as u64;
    }
    Ok(sent)
}

/// Closes gracefully: FIN after the queued response, then reads (and
/// discards) until the client's FIN, so that unread request bytes do not
/// turn the close into a reset that could destroy the response in flight.
/// Gives the client 5 s (per read) to close.
fn finish(stream: &mut TcpStream, buf: &mut [u8]) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) && matches!(stream.read(buf), Ok(n) if n > 0) {}
}

/// Serves requests on one connection until it closes, errs, or asks to
/// close; the caller then closes it with [`finish`].
fn serve(stream: &TcpStream, root: &Path, chunk: &mut [u8]) -> io::Result<()> {
    let mut s = stream;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Read until a full head is buffered (what follows it stays).
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                error(
                    &mut s,
                    "431 Request Header Fields Too Large",
                    "",
                    false,
                    false,
                )?;
                return Ok(());
            }
            let n = match s.read(chunk) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(()); // idle keep-alive connection
                }
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(()); // the client closed between requests
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head: Vec<u8> = buf.drain(..head_end).collect();
        let req = match parse_head(&head[..head_end - 4]) {
            Ok(r) => r,
            Err(BadRequest(why)) => {
                let _ = why;
                error(&mut s, "400 Bad Request", "", false, false)?;
                return Ok(());
            }
        };
        // Discard a request body (none is expected for GET/HEAD).
        let mut body_left = req.content_length;
        let take = (body_left as usize).min(buf.len());
        buf.drain(..take);
        body_left -= take as u64;
        while body_left > 0 {
            let want = (body_left as usize).min(chunk.len());
            let n = s.read(&mut chunk[..want])?;
            if n == 0 {
                return Ok(());
            }
            body_left -= n as u64;
        }
        let head_only = req.method == "HEAD";
        let keep = req.keep_alive;
        if req.method != "GET" && req.method != "HEAD" {
            error(
                &mut s,
                "405 Method Not Allowed",
                "Allow: GET, HEAD\r\n",
                false,
                keep,
            )?;
        } else {
            match resolve(root, &req.target) {
                Resolved::Bad => {
                    error(&mut s, "400 Bad Request", "", head_only, false)?;
                    return Ok(());
                }
                Resolved::Forbidden => error(&mut s, "403 Forbidden", "", head_only, keep)?,
                Resolved::NotFound => error(&mut s, "404 Not Found", "", head_only, keep)?,
                Resolved::File(path) => match File::open(&path).and_then(|f| {
                    let len = f.metadata()?.len();
                    Ok((f, len))
                }) {
                    Ok((f, len)) => {
                        respond(&mut s, "200 OK", "", len, content_type(&path), keep, None)?;
                        if !head_only && send_file(f, len, &mut s, chunk)? != len {
                            // The file shrank under us: the length we
                            // promised cannot be kept; end the connection.
                            return Ok(());
                        }
                    }
                    Err(_) => error(&mut s, "404 Not Found", "", head_only, keep)?,
                },
            }
        }
        if !keep {
            return Ok(());
        }
    }
}

fn main() {
    let args: Args = parse_args(TOOL);
    if let Err(e) = args.observe.init_logging() {
        fail(TOOL, e);
    }
    if !ustack::tcp::cc::AVAILABLE.contains(&args.cc.as_str()) {
        fail(TOOL, format!("unknown congestion control '{}'", args.cc));
    }
    let root = args
        .root
        .canonicalize()
        .ok()
        .filter(|r| r.is_dir())
        .unwrap_or_else(|| {
            fail(
                TOOL,
                format!("--root {}: not a directory", args.root.display()),
            )
        });
    let root: Arc<Path> = root.into();
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])
        .unwrap_or_else(|e| fail(TOOL, format!("cannot set up signals: {e}")));
    let (device, mut config) = args.device.open().unwrap_or_else(|e| fail(TOOL, e));
    config.tcp.congestion = args.cc.clone();
    let families = config.clone();
    let stack = Arc::new(
        Stack::builder(device)
            .config(config)
            .build()
            .unwrap_or_else(|e| fail(TOOL, e)),
    );
    // 0.0.0.0 and/or [::]: every address family given is served.
    let listeners = ustack::cli::listen_wildcards(&stack, &families, args.port, args.backlog)
        .unwrap_or_else(|e| fail(TOOL, e));
    spawn_monitor(TOOL, stack.clone(), signals, &args.observe)
        .unwrap_or_else(|e| fail(TOOL, format!("cannot start the monitor thread: {e}")));
    eprintln!(
        "{TOOL}: serving {} on port {} ({})",
        root.display(),
        args.port,
        ustack::cli::addr_list(&families)
    );
    let active = Arc::new(AtomicUsize::new(0));
    let idle = Duration::from_secs(args.idle_timeout.max(1));
    let mut threads = Vec::new();
    for listener in listeners {
        let (root, active) = (root.clone(), active.clone());
        let t = std::thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(listener, root, active, idle))
            .unwrap_or_else(|e| fail(TOOL, format!("cannot start an accept thread: {e}")));
        threads.push(t);
    }
    // The accept loops end only by failing the process.
    for t in threads {
        let _ = t.join();
    }
}

/// Accepts connections on one listener, a thread each (at most
/// `MAX_CONNS` at once over all listeners: more get a 503).
fn accept_loop(listener: TcpListener, root: Arc<Path>, active: Arc<AtomicUsize>, idle: Duration) {
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) => fail(TOOL, format!("accept: {e}")),
        };
        if active.load(Ordering::Acquire) >= MAX_CONNS {
            let _ = error(&mut &stream, "503 Service Unavailable", "", false, false);
            continue;
        }
        let _ = stream.set_read_timeout(Some(idle));
        let _ = stream.set_nodelay(true);
        active.fetch_add(1, Ordering::AcqRel);
        let (root, active2) = (root.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                let mut chunk = vec![0u8; 64 * 1024];
                let _ = serve(&stream, &root, &mut chunk);
                finish(&mut stream, &mut chunk);
                active2.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let r = parse_head(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close").unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/a");
        assert!(!r.keep_alive);
        let r = parse_head(b"HEAD / HTTP/1.0").unwrap();
        assert!(!r.keep_alive && !r.http11);
        let r = parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive").unwrap();
        assert!(r.keep_alive);
        assert!(parse_head(b"GET / HTTP/1.1").is_err(), "no Host");
        assert!(parse_head(b"GET /  HTTP/1.1\r\nHost: x").is_err());
        assert!(parse_head(b"GET / HTTP/2\r\nHost: x").is_err());
        assert!(parse_head(b"get / HTTP/1.1\r\nHost: x").is_err());
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost x").is_err());
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1").is_err());
        assert!(parse_head(b"\xff\xfe").is_err());
    }

    #[test]
    fn refuses_traversal() {
        let dir = std::env::temp_dir().join(format!("ustk-http-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f.txt"), b"x").unwrap();
        let root = dir.canonicalize().unwrap();
        assert_eq!(
            resolve(&root, "/sub/f.txt?q=1"),
            Resolved::File(root.join("sub/f.txt"))
        );
        assert_eq!(
            resolve(&root, "/sub/%66.txt"),
            Resolved::File(root.join("sub/f.txt"))
        );
        assert_eq!(resolve(&root, "/../etc/passwd"), Resolved::Forbidden);
        assert_eq!(
            resolve(&root, "/sub/%2e%2e/%2e%2e/etc/passwd"),
            Resolved::Forbidden
        );
        assert_eq!(resolve(&root, "/sub/..%2f..%2fetc"), Resolved::Forbidden);
        assert_eq!(resolve(&root, "/a\\..\\b"), Resolved::Forbidden);
        assert_eq!(resolve(&root, "/nope"), Resolved::NotFound);
        assert_eq!(resolve(&root, "/%zz"), Resolved::Bad);
        assert_eq!(resolve(&root, "/%00"), Resolved::Bad);
        assert_eq!(resolve(&root, "relative"), Resolved::Bad);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
