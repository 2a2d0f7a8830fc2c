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
