# shellcheck shell=bash
# Cell tcp of scripts/bench.sh (sourced from there; lib.sh is loaded). TCP
# echo: tcpecho on a TUN device against the Linux kernel's TCP (a python3
# selectors echo server, one thread, like tcpecho's one event loop) on a veth
# pair, side by side in one run, driven by the same python3 client:
#   bulk  one connection, a sender thread streams MIB MiB while the main
#         thread reads the echo (SHA-256 checked); time until the last echoed
#         byte; reported as MB/s each way
#   rr    one connection, TCP_NODELAY, 1-byte request/response for DURATION s
#   cps   connect, send 1 byte, read it back, close; for DURATION s
#
#   sudo scripts/bench.sh tcp [DURATION=5] [MIB=256]   > table.md
#
# Setups (namespaces deleted on exit, see "Namespace safety rules" in README.md):
#   tcpecho: ustk-btcp-$$ : client (kernel 10.5.0.1) -- TUN ustk0 -- tcpecho 10.5.0.2
#   kernel:  ustk-btcpk-$$ (client, 10.6.0.1) -- veth -- ustk-btcps-$$ (python3 echo, 10.6.0.2)
# Writes a markdown table to stdout, progress to stderr.
DURATION=${1:-5}
MIB=${2:-256}
bounded DURATION "$DURATION" 1 60
bounded MIB "$MIB" 1 4096

scripts/install-deps.sh >&2
build --bin tcpecho
build --example smoltcp_echo
TCPECHO="$T/tcpecho"
SMOLECHO="$T/examples/smoltcp_echo"

NS="ustk-btcp-$$"
NSK="ustk-btcpk-$$"
NSS="ustk-btcps-$$"
NSM="ustk-btcpm-$$"

# --- the stack: tcpecho on a TUN -------------------------------------------
mkns "$NS"
serve "$NS" echo "tcpecho: echoing" "$TCPECHO" --tun ustk0 --addr 10.5.0.2/24
ECHO_PID=$SERVED
tun_peer "$NS" 10.5.0.1/24

# --- the user-space reference: smoltcp on a TUN ----------------------------
mkns "$NSM"
serve "$NSM" smol "smoltcp_echo: echoing" "$SMOLECHO" ustk0 10.7.0.2/24 7 32
ip -n "$NSM" link set ustk0 up txqueuelen 4096
tun_peer "$NSM" 10.7.0.1/24

# --- the reference: Linux TCP, python3 selectors echo, over a veth pair ----
mkns "$NSK"
mkns "$NSS"
veth "$NSK" ustkk0 10.6.0.1/24 "$NSS" ustks0 10.6.0.2/24
# Serves for at most the whole run's length, then exits by itself.
LIFETIME=$((6 * DURATION + 4 * 60 + 10))
ip netns exec "$NSS" python3 -c '
import selectors, socket, sys, time
sel = selectors.DefaultSelector()
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.6.0.2", 7))
l.listen(1024)
l.setblocking(False)
sel.register(l, selectors.EVENT_READ, None)
pending = {}                      # conn -> bytes not yet sent back
eof = set()
deadline = time.monotonic() + float(sys.argv[1])
def close(c):
    sel.unregister(c)
    pending.pop(c, None)
    eof.discard(c)
    c.close()
while time.monotonic() < deadline:
    for key, ev in sel.select(0.5):
        c = key.fileobj
        if c is l:
            while True:
                try:
                    n, _ = l.accept()
                except BlockingIOError:
                    break
                n.setblocking(False)
                n.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending[n] = b""
                sel.register(n, selectors.EVENT_READ, None)
            continue
        try:
            if ev & selectors.EVENT_READ and not pending[c]:
                d = c.recv(262144)
                if not d:
                    eof.add(c)
                else:
                    pending[c] = d
            if pending[c]:
                k = c.send(pending[c])
                pending[c] = pending[c][k:]
        except BlockingIOError:
            pass
        except OSError:
            close(c)
            continue
        if not pending[c] and c in eof:
            close(c)
        else:
            sel.modify(c, selectors.EVENT_WRITE if pending[c] else selectors.EVENT_READ, None)
' "$LIFETIME" &
PIDS+=($!)
sleep 0.5

CLIENT='
import hashlib, random, socket, sys, threading, time
mode, host, port, arg = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
if mode == "bulk":
    total = int(arg) << 20
    deadline = time.monotonic() + 60
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(60)
    hs, hr, err = hashlib.sha256(), hashlib.sha256(), []
    chunk = random.Random(1).randbytes(1 << 20)
    def sender():
        try:
            for _ in range(total >> 20):
                s.sendall(chunk)
                hs.update(chunk)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(repr(e))
    t0 = time.monotonic()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    got = 0
    while time.monotonic() < deadline:
        d = s.recv(1 << 20)
        if not d:
            break
        hr.update(d)
        got += len(d)
    el = time.monotonic() - t0
    th.join(1)
    ok = got == total and hs.digest() == hr.digest() and not err
    print("value=%.1f unit=MB/s ok=%d bytes=%d secs=%.2f %s" % (got / el / 1e6, ok, got, el, " ".join(err)))
elif mode == "rr":
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(2)
    n = bad = 0
    start = time.monotonic() + 0.5
    end = start + arg
    counting = False
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if not counting and now >= start:
            counting, n, t0 = True, 0, now
        s.send(b"x")
        if s.recv(1) != b"x":
            bad += 1
            break
        n += 1
    el = time.monotonic() - t0
    print("value=%.0f unit=tx/s ok=%d count=%d secs=%.2f" % (n / el, int(bad == 0), n, el))
elif mode == "cps":
    n = bad = 0
    start = time.monotonic() + 0.5
    end = start + arg
    counting = False
    while True:
        now = time.monotonic()
        if now >= end or n > 500000:
            break
        if not counting and now >= start:
            counting, n, t0 = True, 0, now
        try:
            s = socket.create_connection((host, port), timeout=2)
            s.settimeout(2)
            s.sendall(b"x")
            if s.recv(1) == b"x":
                n += 1
            else:
                bad += 1
            s.close()
        except OSError:
            bad += 1
    el = time.monotonic() - t0
    print("value=%.0f unit=conn/s ok=%d count=%d failed=%d secs=%.2f" % (n / el, int(bad == 0), n, bad, el))
'

bench() { # NS HOST MODE ARG -> "value ok"
    local line
    line=$(timeout 75 ip netns exec "$1" python3 -c "$CLIENT" "$3" "$2" 7 "$4" || echo "value=0 ok=0 (client failed)")
    echo "  $3 $1 -> $2: $line" >&2
    sed -E 's/^value=([0-9.]+) .*ok=([01]).*/\1 \2/' <<<"$line"
}

declare -A V OK
for mode in bulk rr cps; do
    arg=$DURATION
    [[ $mode == bulk ]] && arg=$MIB
    read -r V[u$mode] OK[u$mode] < <(bench "$NS" 10.5.0.2 "$mode" "$arg")
    read -r V[k$mode] OK[k$mode] < <(bench "$NSK" 10.6.0.2 "$mode" "$arg")
    read -r V[s$mode] OK[s$mode] < <(bench "$NSM" 10.7.0.2 "$mode" "$arg")
done

stop "$ECHO_PID"
grep -E "segments retransmitted|fragmentation failed|outgoing packets dropped|transmit queue drops|accept queue full" "$OUT/echo.out" >&2 || true

cat <<EOF
### TCP echo: tcpecho (TUN) vs smoltcp (TUN) vs Linux kernel TCP (veth, python3 selectors echo)

- Command: \`sudo scripts/bench.sh tcp $DURATION $MIB\` (git $(revision))
- Date: $(date -u '+%Y-%m-%d %H:%M UTC')
- Machine: $(machine)
- Client: python3 on the kernel's TCP, the same for both. bulk: one connection, $MIB MiB sent by one thread and echoed back to another (SHA-256 checked), MB/s each way until the last byte is back; rr: one connection, TCP_NODELAY, 1-byte ping-pong for ${DURATION} s; conn/s: connect, 1 byte there and back, close, for ${DURATION} s (both after 0.5 s warm-up).

| test | tcpecho on TUN | smoltcp 0.14 echo on TUN | Linux TCP + python3 echo on veth | tcpecho / smoltcp | tcpecho / Linux |
| --- | ---: | ---: | ---: | ---: | ---: |
EOF
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$3")" "$(ratio "$2" "$4")"; }
row "bulk echo (MB/s each way)" "${V[ubulk]}" "${V[sbulk]}" "${V[kbulk]}"
row "1-byte request/response (tx/s)" "${V[urr]}" "${V[srr]}" "${V[krr]}"
row "connections (conn/s)" "${V[ucps]}" "${V[scps]}" "${V[kcps]}"
for key in ubulk sbulk kbulk urr srr krr ucps scps kcps; do
    if [[ ${OK[$key]} != 1 ]]; then
        echo
        echo "**Warning:** run $key had errors (corrupt echo, failed connections or client failure); see stderr."
    fi
done
cat <<EOF

The python3 client (and for Linux the python3 server) share the machine's
cores with the echo side; the figures compare the two echo paths under the
same client, not peak rates. The TUN adds a user/kernel crossing per packet
that veth does not have.
EOF
