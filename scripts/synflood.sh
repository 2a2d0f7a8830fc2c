#!/usr/bin/env bash
# Measures tcpecho under a SYN flood from Linux (hping3), in a namespace:
#   1. bulk echo rate of one established connection, no flood (baseline);
#   2. the same while `hping3 --flood -S` floods the echo port from spoofed
#      10.x sources for the duration;
#   3. whether new connections from a real client succeed during the flood;
#   4. tcpecho's resident memory before, during and after.
# Prints a markdown table. Bounded: each phase DURATION seconds (default 5).
#
#   sudo scripts/synflood.sh [DURATION]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_root
DUR=${1:-5}
NS="ustk-flood-$$"
BIN="$T/tcpecho"
build --bin tcpecho
mkns "$NS"
ip netns exec "$NS" "$BIN" --tun ustk0 --addr 10.77.0.2/16 >"$OUT/tcpecho.out" 2>&1 &
PID=$!
PIDS+=("$PID")
for _ in $(seq 1 100); do ip -n "$NS" link show ustk0 >/dev/null 2>&1 && break; sleep 0.05; done
ip -n "$NS" addr add 10.77.0.1/16 dev ustk0
ip -n "$NS" link set ustk0 up txqueuelen 2000

rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

bulk() { # seconds -> Mbit/s of echoed data (one connection)
    timeout $(($1 + 10)) ip netns exec "$NS" python3 - "$1" <<'PY'
import socket, sys, time, threading
dur = float(sys.argv[1])
s = socket.create_connection(("10.77.0.2", 7), timeout=10)
chunk = b"x" * 65536
got = 0
stop = time.time() + dur
def rx():
    global got
    while True:
        b = s.recv(1 << 20)
        if not b: return
        got += len(b)
t = threading.Thread(target=rx); t.start()
t0 = time.time()
while time.time() < stop:
    s.sendall(chunk)
s.shutdown(socket.SHUT_WR); t.join()
print("%.0f" % (got * 8 / (time.time() - t0) / 1e6))
PY
}

newconns() { # seconds -> "ok/attempted"
    timeout $(($1 + 10)) ip netns exec "$NS" python3 - "$1" <<'PY'
import socket, sys, time
dur = float(sys.argv[1]); ok = n = 0; stop = time.time() + dur
while time.time() < stop:
    n += 1
    try:
        s = socket.create_connection(("10.77.0.2", 7), timeout=3)
        s.sendall(b"ping"); ok += s.recv(4) == b"ping"; s.close()
    except OSError:
        pass
    time.sleep(0.05)
print("%d/%d" % (ok, n))
PY
}

rss0=$(rss)
base=$(bulk "$DUR")
timeout $((DUR * 2 + 5)) ip netns exec "$NS" hping3 --flood -S -p 7 --rand-source -q 10.77.0.2 >/dev/null 2>&1 &
FLOOD=$!
PIDS+=("$FLOOD")
sleep 0.5
rss1=$(rss)
during=$(bulk "$DUR")
conns=$(newconns "$DUR")
rss2=$(rss)
kill "$FLOOD" 2>/dev/null || true; wait "$FLOOD" 2>/dev/null || true
sleep 1
rss3=$(rss)
kill -INT "$PID"; wait "$PID" || true
cookies=$(awk '/SYN cookies sent/ {print $1}' "$OUT/tcpecho.out")

echo "Command: sudo scripts/synflood.sh $DUR — $(date -u +%F), $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo
echo "| measurement | value |"
echo "| --- | ---: |"
echo "| echo rate, no flood | $base Mbit/s |"
echo "| echo rate during hping3 --flood -S | $during Mbit/s ($(awk -v a="$during" -v b="$base" 'BEGIN {printf "%.0f", 100*a/b}') %) |"
echo "| new connections completed during the flood | $conns |"
echo "| SYN cookies sent | $cookies |"
echo "| tcpecho RSS before / during / after / 1 s later (KiB) | $rss0 / $rss1 / $rss2 / $rss3 |"
