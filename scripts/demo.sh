#!/usr/bin/env bash
# The README's demo: udpecho on a TUN device in a network namespace, with the
# Linux kernel on the other side pinging it and sending it UDP.
#
#   sudo scripts/demo.sh
#
# Installs the tools (scripts/install-deps.sh), builds the release binary,
# then everything happens in namespace ustk-demo-$$, deleted on exit.
# Bounded: every wait has a limit; the demo itself takes a few seconds.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_root

scripts/install-deps.sh >/dev/null
echo "+ cargo build --release --features tools"
build --bin udpecho
UDPECHO="$T/udpecho"

SUFFIX="demo-$$"
NS="ustk-$SUFFIX"
# netns.sh makes the namespace and the TUN's addresses (as the README's
# hand-run steps do); it goes on exit, after udpecho.
AT_EXIT+=("\"\$ROOT/scripts/netns.sh\" down tun $SUFFIX")

step() { printf '\n$ %s\n' "$*"; }

"$ROOT/scripts/netns.sh" up tun "$SUFFIX" >/dev/null
step "ip netns exec $NS udpecho --tun ustk0 --addr 10.1.0.2/24 &"
ip netns exec "$NS" "$UDPECHO" --tun ustk0 --addr 10.1.0.2/24 >"$OUT/stdout" 2>"$OUT/stderr" &
ECHO_PID=$! # `ip netns exec` execs udpecho in place: this is udpecho's pid
PIDS+=("$ECHO_PID")
for _ in $(seq 100); do
    grep -q "echoing UDP port" "$OUT/stderr" && break
    kill -0 "$ECHO_PID" 2>/dev/null || break
    sleep 0.1
done
cat "$OUT/stderr"
grep -q "echoing UDP port" "$OUT/stderr" || { echo "demo.sh: udpecho did not start" >&2; exit 1; }

step "ip -n $NS addr add 10.1.0.1/24 dev ustk0    # the kernel's side of the TUN"
"$ROOT/scripts/netns.sh" addr "$NS" ustk0 10.1.0.1/24

step "ping -c 3 10.1.0.2"
ip netns exec "$NS" ping -n -c 3 -i 0.2 -W 2 -w 10 10.1.0.2

step "python3: UDP datagrams to 10.1.0.2:7 and their echoes"
timeout 20 ip netns exec "$NS" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.1.0.2", 7))
s.settimeout(2)
for msg in [b"hello, ustack", b"x" * 1, bytes(range(256)) * 5]:
    s.send(msg)
    r = s.recv(65536)
    show = lambda b: repr(b) if len(b) <= 40 else "%r... (%d bytes)" % (b[:16], len(b))
    print("sent     %5d bytes: %s" % (len(msg), show(msg)))
    print("received %5d bytes: %s  %s" % (len(r), show(r), "(identical)" if r == msg else "(DIFFERENT)"))
'

step "python3: a datagram to closed port 10.1.0.2:9999 on a connected socket"
timeout 20 ip netns exec "$NS" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.1.0.2", 9999))
s.settimeout(2)
s.send(b"anyone there?")
try:
    s.recv(65536)
    print("unexpected reply")
except ConnectionRefusedError as e:
    print("recv: ConnectionRefusedError:", e, "(the stack sent ICMP port unreachable)")
except socket.timeout:
    print("recv: timed out (no ICMP port unreachable)")
'

step "kill -INT $ECHO_PID    # udpecho prints its counters and exits"
kill -INT "$ECHO_PID"
for _ in $(seq 50); do
    kill -0 "$ECHO_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$ECHO_PID" 2>/dev/null && { echo "udpecho ignored SIGINT for 5 s: SIGKILL"; kill -KILL "$ECHO_PID"; }
rc=0
wait "$ECHO_PID" || rc=$?
cat "$OUT/stdout"
echo "(udpecho exit status $rc)"
