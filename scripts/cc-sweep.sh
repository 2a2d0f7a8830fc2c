#!/usr/bin/env bash
# Congestion control against Linux over the same impaired path (issue 4):
# bulk goodput with ustack as the sender versus Linux as the sender, same
# algorithm (Linux's via TCP_CONGESTION), the receive side measuring.
#
#   sudo scripts/cc-sweep.sh [SECONDS=8] [ALGOS="cubic bbr"] [RATE=100mbit] > table.md
#
# The path: ucat on a TUN in namespace ustk-ccs-$$ (10.9.0.2), the kernel on
# the TUN's other side (10.9.0.1). ucat's impairment layer impairs both
# directions: one-way delay D, random loss L, a RATE bottleneck with one
# bandwidth-delay product of buffer (rate x 2D). Every cell is one fresh
# connection:
#   ustack sends:  ucat --cc ALGO connect 10.9.0.1 < /dev/zero; a python3
#                  receiver on the kernel side counts the bytes it reads
#                  in SECONDS from the first byte.
#   Linux sends:   a python3 sender with TCP_CONGESTION=ALGO streams to
#                  `ucat listen`; a python3 counter reads ucat's output for
#                  SECONDS from the first byte.
# Retransmissions are counted in segments by the sender (ucat's TcpInfo,
# Linux's tcpi_total_retrans) over the connection's life (a second or so
# longer than the measured window), so they compare like with like.
#
# Grid: delay {5, 20, 50} ms one way x loss {0, 0.1, 1, 3} % (DELAYS="..."
# and LOSSES="..." in the environment pick a part of it). Writes a
# markdown table to stdout, progress to stderr. Namespaces and processes of
# its own only, deleted and killed on exit (README.md, "Namespace safety rules").
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

SECS=${1:-8}
ALGOS=${2:-"cubic bbr"}
RATE=${3:-100mbit}
bounded SECONDS "$SECS" 2 60
RATE_BPS=$(python3 -c '
import re, sys
m = re.fullmatch(r"(\d+)(kbit|mbit|gbit)", sys.argv[1])
if not m: sys.exit(1)
print(int(m[1]) * {"kbit": 10**3, "mbit": 10**6, "gbit": 10**9}[m[2]])' "$RATE") || {
    echo "RATE: e.g. 100mbit" >&2
    exit 2
}
for a in $ALGOS; do
    case $a in reno|cubic|bbr) ;; *) echo "ALGOS: reno, cubic, bbr" >&2; exit 2 ;; esac
done

cd "$ROOT"
need_root

scripts/install-deps.sh >&2
build --bin ucat
UCAT="$T/ucat"

for a in $ALGOS; do
    grep -qw "$a" /proc/sys/net/ipv4/tcp_available_congestion_control || {
        echo "cc-sweep.sh: the kernel has no '$a' (tcp_available_congestion_control: $(cat /proc/sys/net/ipv4/tcp_available_congestion_control))" >&2
        exit 1
    }
done

NS="ustk-ccs-$$"
mkns "$NS"
# A persistent TUN, so that the kernel side keeps its address between the
# cells (each cell's ucat attaches to it and goes away).
ip -n "$NS" tuntap add dev ustk0 mode tun
ip -n "$NS" link set ustk0 up txqueuelen 4096
ip -n "$NS" addr add 10.9.0.1/24 dev ustk0

# The kernel-side receiver: accept one connection, count SECS seconds from
# its first byte, print "bytes seconds".
RECV='
import socket, sys, time
secs = float(sys.argv[1])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.9.0.1", 5001))
l.listen(1)
l.settimeout(30)
c, _ = l.accept()
c.settimeout(secs + 30)
buf = bytearray(1 << 20)
n = c.recv_into(buf)
t0 = time.monotonic()
total = 0
while n > 0:
    left = t0 + secs - time.monotonic()
    if left <= 0:
        break
    c.settimeout(left)
    try:
        n = c.recv_into(buf)
    except socket.timeout:
        break
    total += n
print(total, time.monotonic() - t0, flush=True)
'
# The kernel-side sender: TCP_CONGESTION, stream zeros until the peer goes
# (or a bound), print the retransmitted segments (tcpi_total_retrans).
SEND='
import socket, struct, sys, time
algo, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, algo.encode())
s.settimeout(30)
for _ in range(50):
    try:
        s.connect(("10.9.0.2", 5001))
        break
    except (ConnectionRefusedError, socket.timeout):
        time.sleep(0.1)
got = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
assert got == algo, got
s.settimeout(secs + 30)
chunk = bytes(1 << 16)
end = time.monotonic() + secs + 2
def retrans():
    # struct tcp_info: tcpi_total_retrans is the u32 at offset 100.
    return struct.unpack_from("I", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 100)[0]
r = 0
try:
    while time.monotonic() < end:
        s.send(chunk)
        r = retrans()
except OSError:
    pass
print(r, flush=True)
'
# Counts what ucat writes to stdout: SECS seconds from the first byte.
COUNT='
import sys, time
secs = float(sys.argv[1])
f = sys.stdin.buffer.raw
buf = bytearray(1 << 20)
n = f.readinto(buf)
t0 = time.monotonic()
total = 0
while n and time.monotonic() < t0 + secs:
    n = f.readinto(buf)
    total += n or 0
print(total, time.monotonic() - t0, flush=True)
'

# ucat's last progress line's retransmit count.
ucat_retrans() {
    sed -n 's/.* \([0-9]\+\) retransmits,.*/\1/p' "$1" | tail -1
}

# cell ALGO DELAY_MS LOSS -> "ours_mbit ours_rtx linux_mbit linux_rtx"
cell() {
    local algo=$1 d=$2 loss=$3
    local bdp=$((RATE_BPS / 8 * 2 * d / 1000))
    ((bdp < 30000)) && bdp=30000
    local spec="delay=${d}ms,loss=${loss}%,rate=${RATE},queue=${bdp}"
    local buf=$((4 * bdp + (4 << 20)))
    local bytes secs ours_rtx linux_rtx

    # ustack sends.
    ip netns exec "$NS" timeout $((SECS + 40)) python3 -c "$RECV" "$SECS" >"$OUT/recv.out" 2>"$OUT/recv.err" &
    local rp=$!
    PIDS+=("$rp")
    # Until the receiver listens (python's start can take a while on a
    # busy machine), at most 10 s.
    for _ in $(seq 100); do
        ip netns exec "$NS" ss -Hltn 'sport = :5001' | grep -q 5001 && break
        sleep 0.1
    done
    ip netns exec "$NS" timeout $((SECS + 40)) "$UCAT" --tun ustk0 --addr 10.9.0.2/24 \
        --impair "$spec" --cc "$algo" --buffer "$buf" --progress \
        connect 10.9.0.1 5001 </dev/zero >/dev/null 2>"$OUT/ucat.err" &
    local up=$!
    PIDS+=("$up")
    wait "$rp" || true
    kill -TERM "$up" 2>/dev/null || true
    wait "$up" 2>/dev/null || true
    read -r bytes secs <"$OUT/recv.out" || { cat "$OUT/recv.err" "$OUT/ucat.err" >&2; return 1; }
    ours_rtx=$(ucat_retrans "$OUT/ucat.err")
    local ours
    ours=$(python3 -c "print(f'{$bytes * 8 / $secs / 1e6:.1f}')")

    # Linux sends.
    ip netns exec "$NS" bash -c "timeout $((SECS + 40)) '$UCAT' --tun ustk0 --addr 10.9.0.2/24 \
        --impair '$spec' --buffer $buf listen 5001 </dev/null 2>'$OUT/ucatl.err' \
        | python3 -c '$COUNT' $SECS >'$OUT/count.out'" &
    local lp=$!
    PIDS+=("$lp")
    sleep 0.3
    ip netns exec "$NS" timeout $((SECS + 40)) python3 -c "$SEND" "$algo" "$SECS" >"$OUT/send.out" 2>"$OUT/send.err" &
    local sp=$!
    PIDS+=("$sp")
    wait "$lp" || true
    wait "$sp" || true
    read -r bytes secs <"$OUT/count.out" || { cat "$OUT/ucatl.err" "$OUT/send.err" >&2; return 1; }
    read -r linux_rtx <"$OUT/send.out" || linux_rtx=NA
    local linux
    linux=$(python3 -c "print(f'{$bytes * 8 / $secs / 1e6:.1f}')")
    echo "$ours ${ours_rtx:-NA} $linux $linux_rtx"
}

KERNEL=$(uname -r)
CPU=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo "## Congestion control against Linux (\`scripts/cc-sweep.sh $SECS \"$ALGOS\" $RATE\`)"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($CPU), kernel $KERNEL. Path: ucat's"
echo "impairment layer on a TUN, both directions: one-way delay, random loss, a $RATE bottleneck"
echo "with one BDP of buffer. Goodput counted by the receiver over $SECS s from the first byte;"
echo "retransmissions in segments, counted by the sender. ratio = ustack / Linux."
echo
echo "| algo | delay | loss | ustack Mbit/s | Linux Mbit/s | ratio | ustack rtx | Linux rtx | rtx ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for algo in $ALGOS; do
    for d in ${DELAYS:-5 20 50}; do
        for loss in ${LOSSES:-0 0.1 1 3}; do
            echo "cc-sweep: $algo delay ${d}ms loss ${loss}% ..." >&2
            if ! cell "$algo" "$d" "$loss" >"$OUT/cell.out"; then
                echo "| $algo | $d ms | $loss % | failed | | | | | |"
                echo "cc-sweep: $algo ${d}ms ${loss}%: the cell failed (see above)" >&2
                continue
            fi
            read -r ours orx linux lrx <"$OUT/cell.out"
            ratio=$(python3 -c "print(f'{$ours / $linux:.2f}' if $linux > 0 else 'NA')")
            rratio=$(python3 -c "
o, l = '$orx', '$lrx'
print('NA' if 'NA' in (o, l) else ('-' if int(l) == 0 and int(o) == 0 else (f'{int(o) / int(l):.2f}' if int(l) else 'inf')))")
            echo "| $algo | $d ms | $loss % | $ours | $linux | $ratio | $orx | $lrx | $rratio |"
            echo "cc-sweep: $algo ${d}ms ${loss}%: ustack $ours Mbit/s ($orx rtx), Linux $linux Mbit/s ($lrx rtx)" >&2
        done
    done
done
