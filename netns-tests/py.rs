//! The Linux side's UDP clients, run as `python3 -c SCRIPT ARGS...` inside
//! a namespace. Every loop in them is bounded in count and time.

/// `ECHO HOST PORT COUNT SEED`: sends COUNT datagrams whose sizes are spread
/// evenly over 1..=1472 (both ends included, shuffled) with random content
/// from a connected UDP socket, one at a time, and checks each echo byte for
/// byte: 2 s per datagram, at most one resend. Stops after 120 s in all.
/// Prints `MISSING`/`MISMATCH`/`ERROR` lines and a final
/// `RESULT sent=.. ok=.. missing=.. mismatch=.. resent=.. stale=..`.
pub const ECHO: &str = r#"
import random, socket, sys, time
host, port, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
LO, HI = 1, 1472
rng = random.Random(seed)
if count == 1:
    sizes = [HI]
else:
    sizes = [LO + (i * (HI - LO)) // (count - 1) for i in range(count)]
rng.shuffle(sizes)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
ok = missing = mismatch = resent = stale = sent = 0
seen = set()
give_up = time.monotonic() + 120
for i, n in enumerate(sizes):
    if time.monotonic() > give_up:
        print("ERROR overall time limit reached at datagram %d" % i)
        missing += count - i
        break
    data = rng.randbytes(n)
    done = False
    for attempt in range(2):
        if attempt:
            resent += 1
        s.send(data)
        sent += 1
        end = time.monotonic() + 2.0
        while not done:
            left = end - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                r = s.recv(65536)
            except socket.timeout:
                break
            except OSError as e:
                print("ERROR datagram %d (%d bytes): %r" % (i, n, e))
                break
            if r == data:
                ok += 1
                done = True
            elif r in seen:
                stale += 1
            else:
                diff = next((j for j in range(min(len(r), n)) if r[j] != data[j]), min(len(r), n))
                print("MISMATCH datagram %d: sent %d bytes, got %d, first difference at byte %d" % (i, n, len(r), diff))
                mismatch += 1
                done = True
        if done:
            break
    else:
        print("MISSING datagram %d (%d bytes)" % (i, n))
        missing += 1
    seen.add(data)
print("RESULT sent=%d ok=%d missing=%d mismatch=%d resent=%d stale=%d" % (sent, ok, missing, mismatch, resent, stale))
"#;

/// `REFUSED HOST PORT`: sends one datagram on a connected socket to a
/// closed port; prints `REFUSED` when the next recv raises
/// ConnectionRefusedError, `TIMEOUT` after 2 s, or `GOT n`.
pub const REFUSED: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
s.settimeout(2.0)
s.send(b"anyone there?")
try:
    r = s.recv(65536)
    print("GOT %d" % len(r))
except ConnectionRefusedError:
    print("REFUSED")
except socket.timeout:
    print("TIMEOUT")
"#;

/// Parses `key=value` from the RESULT line of [`ECHO`].
pub fn result_field(stdout: &str, key: &str) -> Option<u64> {
    let line = stdout.lines().rev().find(|l| l.starts_with("RESULT "))?;
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

// ----- TCP -----------------------------------------------------------------
//
// Every TCP snippet prints `ERROR ...` lines for what went wrong and one
// final `RESULT key=value ...` line (read with [`result_field`] or
// [`result_str`]); every loop is bounded by a deadline.

/// `BULK HOST PORT NBYTES SEED LIMIT_SECS`: one connection; a sender thread
/// streams NBYTES of `random.Random(SEED)` bytes in 64 KiB chunks, hashing
/// them on the fly, then `shutdown(SHUT_WR)`; the main thread reads the echo
/// until EOF, hashing it on the fly. Neither copy is held in memory.
/// The reader stops once it has all but the last min(64 KiB, NBYTES/2)
/// bytes until the sender has shut down (the buffers hold that much), so
/// at least those bytes are read in the half-closed state.
/// `RESULT sent= received= eof=0|1 match=0|1 tail= secs=` where `tail` is
/// what was read after the sender's SHUT_WR.
pub const BULK: &str = r#"
import hashlib, random, socket, sys, threading, time
host, port, total, seed, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
t0 = time.monotonic()
deadline = t0 + limit
s = socket.create_connection((host, port), timeout=10)
s.settimeout(limit)
sent_h = hashlib.sha256()
st = {"sent": 0, "err": None, "shut_at": None}
def sender():
    rng = random.Random(seed)
    try:
        while st["sent"] < total:
            if time.monotonic() > deadline:
                st["err"] = "deadline while sending"
                return
            chunk = rng.randbytes(min(65536, total - st["sent"]))
            s.sendall(chunk)
            sent_h.update(chunk)
            st["sent"] += len(chunk)
        st["shut_at"] = got[0]
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        st["err"] = "send: %r" % e
    finally:
        shut.set()
got = [0]
shut = threading.Event()
pause_at = total - min(total // 2, 65536)
recv_h = hashlib.sha256()
eof = False
t = threading.Thread(target=sender, daemon=True)
t.start()
try:
    while True:
        if time.monotonic() > deadline:
            print("ERROR deadline: received %d of %d" % (got[0], total))
            break
        want = 262144
        if got[0] < pause_at:
            want = min(want, pause_at - got[0])
        elif not shut.is_set():
            shut.wait(max(0.0, deadline - time.monotonic()))
        d = s.recv(want)
        if not d:
            eof = True
            break
        recv_h.update(d)
        got[0] += len(d)
except OSError as e:
    print("ERROR recv after %d bytes: %r" % (got[0], e))
t.join(max(0.1, deadline - time.monotonic()))
if st["err"]:
    print("ERROR " + st["err"])
secs = time.monotonic() - t0
match = int(st["sent"] == total and got[0] == total and sent_h.digest() == recv_h.digest())
tail = got[0] - st["shut_at"] if st["shut_at"] is not None else -1
print("RESULT sent=%d received=%d eof=%d match=%d tail=%d secs=%.2f" % (st["sent"], got[0], int(eof), match, tail, secs))
s.close()
"#;

/// Whether a [`MANY`] run of `n` connections succeeded: all connected,
/// all echoed their own message exactly, no error.
pub fn many_all_echoed(out: &crate::harness::Output, n: u64) -> bool {
    let f = |k| result_field(&out.stdout, k);
    out.success()
        && f("connected") == Some(n)
        && f("ok") == Some(n)
        && f("mismatch") == Some(0)
        && f("errors") == Some(0)
}

/// `MANY HOST PORT CONNS SEED LIMIT_SECS`: CONNS threads each connect; once
/// all are connected (a barrier) each sends its own message (2000 + 37*i
/// bytes of `random.Random(SEED + i)`), does `shutdown(SHUT_WR)` and reads
/// the echo until EOF. `RESULT conns= connected= ok= mismatch= errors= secs=`.
pub const MANY: &str = r#"
import random, socket, sys, threading, time
host, port, n, seed, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
t0 = time.monotonic()
deadline = t0 + limit
lock = threading.Lock()
res = {"connected": 0, "ok": 0, "mismatch": 0, "errors": 0}
barrier = threading.Barrier(n, timeout=limit / 2)
def one(i):
    msg = random.Random(seed + i).randbytes(2000 + 37 * i)
    s = None
    try:
        s = socket.create_connection((host, port), timeout=limit / 2)
        with lock:
            res["connected"] += 1
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        s.settimeout(max(0.1, deadline - time.monotonic()))
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        buf = bytearray()
        while len(buf) <= len(msg):
            d = s.recv(65536)
            if not d:
                break
            buf += d
        with lock:
            if bytes(buf) == msg:
                res["ok"] += 1
            else:
                res["mismatch"] += 1
                diff = next((j for j in range(min(len(buf), len(msg))) if buf[j] != msg[j]), min(len(buf), len(msg)))
                print("MISMATCH conn %d: sent %d, got %d, first difference at %d" % (i, len(msg), len(buf), diff))
    except (OSError, threading.BrokenBarrierError) as e:
        barrier.abort()
        with lock:
            res["errors"] += 1
            print("ERROR conn %d: %r" % (i, e))
    finally:
        if s is not None:
            s.close()
ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
for t in ts:
    t.start()
for t in ts:
    t.join(max(0.1, deadline - time.monotonic()))
alive = sum(t.is_alive() for t in ts)
if alive:
    print("ERROR %d connections still running at the deadline" % alive)
print("RESULT conns=%d connected=%d ok=%d mismatch=%d errors=%d secs=%.2f" % (n, res["connected"], res["ok"], res["mismatch"], res["errors"] + alive, time.monotonic() - t0))
"#;

/// `CONNECT_REFUSED HOST PORT`: one TCP connect (5 s); prints `REFUSED` on
/// ECONNREFUSED, else `CONNECTED`, `TIMEOUT` or `ERROR ...`.
pub const CONNECT_REFUSED: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    print("CONNECTED")
except ConnectionRefusedError:
    print("REFUSED")
except socket.timeout:
    print("TIMEOUT")
except OSError as e:
    print("ERROR %r" % e)
"#;

/// `SERVER PORT MODE ARG LIMIT_SECS [BIND]`: a one-connection Linux server
/// on BIND:PORT (default 0.0.0.0; `::` for IPv6) for ucat's `connect` mode. Prints `READY` on stderr once
/// listening, then serves one connection, by MODE:
/// * `sink REPLY`: reads until EOF, hashing; then sends REPLY + "\n" and
///   closes. `RESULT received= sha256= eof=1`.
/// * `late NBYTES`: reads until EOF (expects nothing), waits 0.3 s, then
///   sends NBYTES of `random.Random(1)` and closes.
///   `RESULT early= sent= sha256=` (sha256 of what it sent).
/// * `rst -`: reads one line, then SO_LINGER (1, 0) and close: an RST.
///   `RESULT line=... rst=1`.
pub const SERVER: &str = r#"
import hashlib, random, socket, struct, sys, time
port, mode, arg, limit = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
bind = sys.argv[5] if len(sys.argv) > 5 else "0.0.0.0"
deadline = time.monotonic() + limit
l = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((bind, port))
l.listen(1)
l.settimeout(limit)
print("READY", file=sys.stderr, flush=True)
try:
    c, peer = l.accept()
except socket.timeout:
    print("ERROR nobody connected within %.0f s" % limit)
    sys.exit(1)
c.settimeout(max(0.1, deadline - time.monotonic()))
def drain():
    h, n = hashlib.sha256(), 0
    while time.monotonic() < deadline:
        d = c.recv(262144)
        if not d:
            return h, n, True
        h.update(d)
        n += len(d)
    return h, n, False
try:
    if mode == "sink":
        h, n, eof = drain()
        c.sendall(arg.encode() + b"\n")
        c.close()
        print("RESULT received=%d sha256=%s eof=%d" % (n, h.hexdigest(), int(eof)))
    elif mode == "late":
        _, early, eof = drain()
        time.sleep(0.3)
        data = random.Random(1).randbytes(int(arg))
        c.sendall(data)
        c.close()
        print("RESULT early=%d eof=%d sent=%d sha256=%s" % (early, int(eof), len(data), hashlib.sha256(data).hexdigest()))
    elif mode == "rst":
        f = c.makefile("rb")
        line = f.readline(1000)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        f.close()
        c.close()
        print("RESULT line=%s rst=1" % line.decode(errors="replace").strip())
    else:
        print("ERROR unknown mode " + mode)
except OSError as e:
    print("ERROR %r" % e)
"#;

/// `UPLOAD HOST PORT FILE LIMIT_SECS`: connects (retrying refusals every
/// 50 ms until the deadline: ucat `listen` prints no ready line), sends FILE,
/// `shutdown(SHUT_WR)`, and reads until EOF.
/// `RESULT sent= received= eof=0|1 attempts= secs=`.
pub const UPLOAD: &str = r#"
import socket, sys, time
host, port, path, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
t0 = time.monotonic()
deadline = t0 + limit
attempts = 0
s = None
while time.monotonic() < deadline:
    attempts += 1
    try:
        s = socket.create_connection((host, port), timeout=2)
        break
    except (ConnectionRefusedError, socket.timeout, OSError) as e:
        last = e
        time.sleep(0.05)
if s is None:
    print("ERROR could not connect in %d attempts: %r" % (attempts, last))
    print("RESULT sent=0 received=0 eof=0 attempts=%d secs=%.2f" % (attempts, time.monotonic() - t0))
    sys.exit(1)
s.settimeout(max(0.1, deadline - time.monotonic()))
sent = received = 0
eof = False
try:
    with open(path, "rb") as f:
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            s.sendall(chunk)
            sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    while time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            eof = True
            break
        received += len(d)
except OSError as e:
    print("ERROR after sending %d: %r" % (sent, e))
s.close()
print("RESULT sent=%d received=%d eof=%d attempts=%d secs=%.2f" % (sent, received, int(eof), attempts, time.monotonic() - t0))
"#;

/// `ONE HOST PORT`: one short exchange (for captures): connects, sends
/// "hello\n", `shutdown(SHUT_WR)`, reads the echo to EOF.
/// `RESULT echo=0|1`.
pub const ONE: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.settimeout(5)
s.sendall(b"hello\n")
s.shutdown(socket.SHUT_WR)
buf = b""
while len(buf) < 100:
    d = s.recv(100)
    if not d:
        break
    buf += d
s.close()
print("RESULT echo=%d" % int(buf == b"hello\n"))
"#;

/// The string value of `key=value` on the RESULT line.
pub fn result_str<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    let line = stdout.lines().rev().find(|l| l.starts_with("RESULT "))?;
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `AT_EXIT HOST PORT idle|stuffed HOLD_SECS`: connects, has 5 bytes
/// echoed; `stuffed` then sends without reading until its send buffer
/// stays full (at most 10 s), so the server's echo is stuck behind a full
/// window. Prints `READY` on stderr, sleeps HOLD_SECS without reading,
/// then reads (10 s at most) until EOF or an error. `RESULT end=eof|reset|
/// timeout read=N` (`timeout`: the connection never ended: the peer hangs).
pub const AT_EXIT: &str = r#"
import socket, sys, time
host, port, mode, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"hello")
got = b""
while len(got) < 5:
    d = s.recv(5 - len(got))
    if not d:
        break
    got += d
sent = 0
if mode == "stuffed":
    s.setblocking(False)
    give_up = time.monotonic() + 10
    full = 0
    while time.monotonic() < give_up and full < 3:
        try:
            sent += s.send(b"x" * 65536)
            full = 0
        except BlockingIOError:
            full += 1
            time.sleep(0.2)
    s.setblocking(True)
print("READY echoed=%d stuffed=%d" % (len(got), sent), file=sys.stderr, flush=True)
time.sleep(hold)
s.settimeout(10)
end, n = "timeout", 0
give_up = time.monotonic() + 10
try:
    while time.monotonic() < give_up:
        d = s.recv(65536)
        if not d:
            end = "eof"
            break
        n += len(d)
except socket.timeout:
    pass
except ConnectionResetError:
    end = "reset"
print("RESULT end=%s read=%d echoed=%d stuffed=%d" % (end, n, len(got), sent))
"#;

/// `UDP_SINK PORT BYTES LIMIT_SECS [BIND]`: receives datagrams on PORT
/// (65,536-byte reads, 4 MiB receive buffer) until BYTES have come or
/// LIMIT_SECS pass; BIND `::` for IPv6 (default `0.0.0.0`).
/// `RESULT bytes= datagrams= biggest= sha=`.
pub const UDP_SINK: &str = r#"
import hashlib, socket, sys, time
port, want, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
bind = sys.argv[4] if len(sys.argv) > 4 else "0.0.0.0"
s = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((bind, port))
s.settimeout(0.5)
print("READY", file=sys.stderr, flush=True)
h = hashlib.sha256()
n = count = biggest = 0
give_up = time.monotonic() + limit
while n < want and time.monotonic() < give_up:
    try:
        d = s.recv(65536)
    except socket.timeout:
        continue
    h.update(d)
    n += len(d)
    count += 1
    biggest = max(biggest, len(d))
print("RESULT bytes=%d datagrams=%d biggest=%d sha=%s" % (n, count, biggest, h.hexdigest()))
"#;
