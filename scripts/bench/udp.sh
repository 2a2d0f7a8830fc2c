# shellcheck shell=bash
# Cell udp of scripts/bench.sh (sourced from there; lib.sh is loaded). UDP
# echo rate (datagrams/s) of udpecho on a TUN device against the Linux
# kernel's own UDP with a python3 echo loop on a veth pair, side by side in
# one run, for 64 B and 1400 B payloads. Both are driven by the same python3
# client: one connected UDP socket keeping WINDOW datagrams in flight for
# DURATION seconds (after a 0.5 s warm-up); a window that sees no echo for
# 200 ms is counted lost and refilled.
#
#   sudo scripts/bench.sh udp [DURATION=5] [WINDOW=32]   > table.md
#
# Setups (namespaces deleted on exit, see "Namespace safety rules" in README.md):
#   udpecho: ustk-bench-$$ : client (kernel 10.1.0.1) -- TUN ustk0 -- udpecho 10.1.0.2
#   kernel:  ustk-benchk-$$ (client, 10.4.0.1) -- veth -- ustk-benchs-$$ (python3 echo, 10.4.0.2)
# Writes a markdown table to stdout, progress to stderr.
DURATION=${1:-5}
WINDOW=${2:-32}
bounded DURATION "$DURATION" 1 60
bounded WINDOW "$WINDOW" 1 1024

scripts/install-deps.sh >&2
build --bin udpecho
build --example udp_bench
UDPECHO="$T/udpecho"
UDPBENCH="$T/examples/udp_bench"

NS="ustk-bench-$$"
NSK="ustk-benchk-$$"
NSS="ustk-benchs-$$"

# --- the stack: udpecho on a TUN -------------------------------------------
mkns "$NS"
serve "$NS" echo "echoing UDP port" "$UDPECHO" --tun ustk0 --addr 10.1.0.2/24
ECHO_PID=$SERVED
tun_peer "$NS" 10.1.0.1/24

# --- the reference: Linux UDP, python3 echo loop, over a veth pair ---------
mkns "$NSK"
mkns "$NSS"
veth "$NSK" ustkk0 10.4.0.1/24 "$NSS" ustks0 10.4.0.2/24
# Serves for at most the whole run's length, then exits by itself.
LIFETIME=$((4 * (DURATION + 3) + 10))
ip netns exec "$NSS" python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("10.4.0.2", 7))
s.settimeout(0.5)
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    try:
        d, a = s.recvfrom(65536)
    except socket.timeout:
        continue
    s.sendto(d, a)
' "$LIFETIME" &
PIDS+=($!)
# A compiled echo on the same kernel socket path (port 9), the fair reference
# for the compiled client below.
ip netns exec "$NSS" "$UDPBENCH" echo 10.4.0.2:9 "$LIFETIME" &
PIDS+=($!)
sleep 0.3

CLIENT='
import select, socket, sys, time
host, port, size, window, dur = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.connect((host, port))
s.setblocking(False)
pad = b"\x5a" * (size - 8)
seq = inflight = lost = bad = counted = 0
t0 = time.monotonic()
start = t0 + 0.5           # warm-up not counted
end = start + dur
last_rx = t0
while True:
    now = time.monotonic()
    if now >= end:
        break
    while inflight < window:
        try:
            s.send(seq.to_bytes(8, "big") + pad)
        except BlockingIOError:
            break
        seq += 1
        inflight += 1
    select.select([s], [], [], 0.05)
    got = 0
    while True:
        try:
            d = s.recv(65536)
        except BlockingIOError:
            break
        except ConnectionRefusedError:
            bad += 1
            continue
        got += 1
        if len(d) != size:
            bad += 1
    now = time.monotonic()
    if got:
        inflight = max(0, inflight - got)
        last_rx = now
        if now >= start:
            counted += got
    elif now - last_rx > 0.2:
        lost += inflight
        inflight = 0
        last_rx = now
el = time.monotonic() - start
print("received=%d rate=%.0f lost=%d bad=%d sent=%d" % (counted, counted / el, lost, bad, seq))
'

bench() { # NS HOST SIZE -> "rate lost"
    local line
    line=$(timeout $((DURATION + 10)) ip netns exec "$1" python3 -c "$CLIENT" "$2" 7 "$3" "$WINDOW" "$DURATION")
    echo "  $1 -> $2, $3 B: $line" >&2
    sed -E 's/.*rate=([0-9]+) lost=([0-9]+) bad=([0-9]+).*/\1 \2 \3/' <<<"$line"
}

cbench() { # NS HOST:PORT SIZE -> "rate lost bad" with the compiled client
    local line
    line=$(timeout $((DURATION + 10)) ip netns exec "$1" "$UDPBENCH" client "$2" "$3" "$WINDOW" "$DURATION")
    echo "  compiled $1 -> $2 ${3}B: $line" >&2
    sed -E 's/.*rate=([0-9]+) lost=([0-9]+) bad=([0-9]+).*/\1 \2 \3/' <<<"$line"
}

declare -A RATE LOST BAD
for size in 64 1400; do
    read -r RATE[u$size] LOST[u$size] BAD[u$size] < <(bench "$NS" 10.1.0.2 "$size")
    read -r RATE[k$size] LOST[k$size] BAD[k$size] < <(bench "$NSK" 10.4.0.2 "$size")
    read -r RATE[cu$size] LOST[cu$size] BAD[cu$size] < <(cbench "$NS" 10.1.0.2:7 "$size")
    read -r RATE[ck$size] LOST[ck$size] BAD[ck$size] < <(cbench "$NSK" 10.4.0.2:9 "$size")
done

stop "$ECHO_PID"
grep -E "echoes dropped|frames refused|transmit queue drops|receive buffer errors" "$OUT/echo.out" >&2 || true

cat <<EOF
### UDP echo rate: udpecho (TUN) vs Linux kernel UDP (veth, python3 echo loop)

- Command: \`sudo scripts/bench.sh udp $DURATION $WINDOW\` (git $(revision))
- Date: $(date -u '+%Y-%m-%d %H:%M UTC')
- Machine: $(machine)
- Client: one python3 connected UDP socket, $WINDOW datagrams in flight, ${DURATION} s after 0.5 s warm-up, same client for both.

| payload | udpecho on TUN (datagrams/s) | Linux UDP + python3 echo on veth (datagrams/s) | udpecho / Linux | lost (udpecho / Linux) |
| ---: | ---: | ---: | ---: | ---: |
EOF
for size in 64 1400; do
    printf '| %s B | %s | %s | %s | %s / %s |\n' "$size" "${RATE[u$size]}" "${RATE[k$size]}" \
        "$(ratio "${RATE[u$size]}" "${RATE[k$size]}")" "${LOST[u$size]}" "${LOST[k$size]}"
done
echo
echo "With a compiled client (examples/udp_bench.rs) against udpecho and a compiled echo on a kernel socket:"
echo
echo "| payload | udpecho on TUN (datagrams/s) | Linux UDP + compiled echo on veth (datagrams/s) | udpecho / Linux | lost (udpecho / Linux) |"
echo "| ---: | ---: | ---: | ---: | ---: |"
for size in 64 1400; do
    printf '| %s B | %s | %s | %s | %s / %s |\n' "$size" "${RATE[cu$size]}" "${RATE[ck$size]}" \
        "$(ratio "${RATE[cu$size]}" "${RATE[ck$size]}")" "${LOST[cu$size]}" "${LOST[ck$size]}"
done
for key in u64 k64 u1400 k1400 cu64 ck64 cu1400 ck1400; do
    if ((BAD[$key] > 0)); then
        echo
        echo "**Warning:** ${BAD[$key]} wrong-sized echoes or ICMP errors in run $key."
    fi
done
cat <<EOF

Both sides share the machine with the python3 client, which is likely the
bottleneck at these rates; the figures compare the echo paths, not peak rates.
EOF
