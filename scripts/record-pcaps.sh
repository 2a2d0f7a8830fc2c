#!/usr/bin/env bash
# Records the replay corpus in pcaps/ from real sessions in network
# namespaces (see pcaps/README.md for what each capture holds). Needs root,
# python3, tcpdump, tshark (editcap), nft; the ustack tools are built in
# release mode first.
#
#   sudo scripts/record-pcaps.sh [OUTDIR]      (default: pcaps/)
#
# Linux to Linux: namespaces ustk-reca-PID (10.4.0.1) and ustk-recb-PID
# (10.4.0.2) joined by a veth pair; tcpdump runs on a's end, so a's
# outgoing TCP/UDP checksums are left unfinished (offload), as captures on
# a sending host are. Linux to ustack: namespace ustk-recu-PID holds the
# kernel side of a TUN (10.5.0.1) and tcpecho/udpecho on it (10.5.0.2).
# Loss comes from nft inside the namespaces (Linux-Linux) and from
# tcpecho's --impair (Linux-ustack); slow links from tbf. Every
# namespace is deleted on exit; nothing touches the root namespace.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
DEST=${1:-$ROOT/pcaps}
mkdir -p "$DEST"
need_root
for t in python3 tcpdump editcap nft ip ethtool tc; do
    command -v "$t" >/dev/null || die "needs $t"
done

build --bins
BIN=$T

A=ustk-reca-$$
B=ustk-recb-$$
U=ustk-recu-$$
mkns "$A"
mkns "$B"
veth "$A" ustkra 10.4.0.1/24 "$B" ustkrb 10.4.0.2/24
# No TSO/GSO: the kernel builds MSS-sized segments, so the capture shows
# wire-sized frames and nft drops single segments (checksum offload stays:
# a's outgoing checksums are unfinished in the capture).
ip netns exec "$A" ethtool -K ustkra tso off gso off gro off >/dev/null
ip netns exec "$B" ethtool -K ustkrb tso off gso off gro off >/dev/null
sleep 1

inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }

# capture NS IFACE FILE [tcpdump args...]: starts tcpdump, waits until it listens.
CAP_PID=
capture() {
    local ns=$1 dev=$2 file=$3
    shift 3
    ip netns exec "$ns" tcpdump -i "$dev" -s 0 -B 8192 -U -w "$file" "$@" 2>"$file.log" &
    CAP_PID=$!
    PIDS+=("$CAP_PID")
    for _ in $(seq 50); do
        grep -q "listening on" "$file.log" 2>/dev/null && break
        sleep 0.1
    done
    # tcpdump says it listens a moment before its filter is attached.
    sleep 1
}
stop_capture() {
    sleep 0.5
    kill -INT "$CAP_PID" 2>/dev/null || true
    wait "$CAP_PID" 2>/dev/null || true
    echo "  $(basename "$1"): $(grep -h 'captured\|dropped by kernel' "$1.log" | tr '\n' ' ')"
    rm -f "$1.log"
}

PY_SERVER='
import socket, sys, struct, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(4)
print("ready", flush=True)
c, _ = s.accept(); c.settimeout(20)
if mode == "sink":
    n = 0
    while True:
        d = c.recv(65536)
        if not d: break
        n += len(d)
    c.sendall(b"got %d\n" % n); c.close()
elif mode == "abort":
    d = c.recv(100); c.sendall(b"bye")
    time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
elif mode == "simclose":
    d = c.recv(100)
    at = float(d.decode())
    time.sleep(max(0, at - time.time()))
    c.shutdown(socket.SHUT_WR)
    while c.recv(100): pass
    c.close()
'
PY_CLIENT='
import socket, sys, time
host, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
c = socket.create_connection((host, port), timeout=20)
if mode == "sink":
    data = bytes((i * 7 + i // 251) & 0xff for i in range(n))
    c.sendall(data); c.shutdown(socket.SHUT_WR)
    r = b""
    while True:
        d = c.recv(100)
        if not d: break
        r += d
    print(r.decode().strip())
elif mode == "abort":
    c.sendall(b"hello"); print(c.recv(100)); time.sleep(0.5)
    try: print(c.recv(100))
    except OSError as e: print("reset:", e)
elif mode == "simclose":
    at = time.time() + 0.3
    c.sendall(b"%f" % at)
    time.sleep(max(0, at - time.time()))
    c.shutdown(socket.SHUT_WR)
    while c.recv(100): pass
c.close()
'
server() { # PORT MODE: a Python server in B, waits until it listens
    inB python3 -c "$PY_SERVER" "$1" "$2" >"$DEST/.srv.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do grep -q ready "$DEST/.srv.log" 2>/dev/null && break; sleep 0.1; done
}

echo "== linux_linux_bulk.pcap"
capture "$A" ustkra "$DEST/linux_linux_bulk.pcap" tcp port 5001
server 5001 sink
inA python3 -c "$PY_CLIENT" 10.4.0.2 5001 sink 200000
stop_capture "$DEST/linux_linux_bulk.pcap"

echo "== linux_linux_loss.pcap"
inB nft -f - <<'NFT'
table inet ustkloss {
    chain input {
        type filter hook input priority 0;
        tcp dport 5002 tcp flags & (syn|fin|rst) == 0 numgen random mod 25 == 0 counter drop
    }
}
NFT
capture "$A" ustkra "$DEST/linux_linux_loss.pcap" tcp port 5002
server 5002 sink
inA python3 -c "$PY_CLIENT" 10.4.0.2 5002 sink 200000
stop_capture "$DEST/linux_linux_loss.pcap"
echo "dropped: $(inB nft list table inet ustkloss | grep -o 'packets [0-9]*')"
inB nft delete table inet ustkloss

echo "== linux_linux_rst.pcap"
capture "$A" ustkra "$DEST/linux_linux_rst.pcap" tcp
inA python3 -c 'import socket
try: socket.create_connection(("10.4.0.2", 9), timeout=3)
except OSError as e: print("refused:", e)'
server 5003 abort
inA python3 -c "$PY_CLIENT" 10.4.0.2 5003 abort 0
stop_capture "$DEST/linux_linux_rst.pcap"

echo "== linux_linux_simclose.pcap"
# A slow link (tbf, 64 kbit/s both ways) keeps each FIN on the wire ~10 ms:
# FINs sent at the same moment cross. Retried (at most 3 times) until the
# capture holds both FINs.
inA tc qdisc add dev ustkra root tbf rate 64kbit burst 1600 latency 500ms
inB tc qdisc add dev ustkrb root tbf rate 64kbit burst 1600 latency 500ms
for try in 1 2 3; do
    capture "$A" ustkra "$DEST/linux_linux_simclose.pcap" tcp port 5004
    server 5004 simclose
    inA python3 -c "$PY_CLIENT" 10.4.0.2 5004 simclose 0
    sleep 1
    stop_capture "$DEST/linux_linux_simclose.pcap"
    fins=$(tshark -r "$DEST/linux_linux_simclose.pcap" -Y tcp.flags.fin==1 2>/dev/null | wc -l)
    ((fins >= 2)) && break
    echo "  only $fins FINs captured; again ($try)"
done
inA tc qdisc del dev ustkra root
inB tc qdisc del dev ustkrb root

echo "== linux_linux_udp_frag_cooked.pcapng (Linux cooked capture, pcapng)"
capture "$A" any "$DEST/.udp.pcap" udp or icmp
inB python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5005)); s.settimeout(5)
for _ in range(3):
    d, a = s.recvfrom(65535); s.sendto(d[::-1], a)
' &
PIDS+=($!)
sleep 0.3
inA python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
for n in (100, 3000, 5000):
    s.sendto(bytes(i & 0xff for i in range(n)), ("10.4.0.2", 5005)); print(len(s.recv(65535)))
'
stop_capture "$DEST/.udp.pcap"
editcap -F pcapng "$DEST/.udp.pcap" "$DEST/linux_linux_udp_frag_cooked.pcapng"
rm -f "$DEST/.udp.pcap"

echo "== linux_linux_icmp_echo.pcap"
capture "$A" ustkra "$DEST/linux_linux_icmp_echo.pcap" icmp
inA ping -c 3 -i 0.2 -s 1000 10.4.0.2 >/dev/null
inA ping -c 1 -s 3000 10.4.0.2 >/dev/null
stop_capture "$DEST/linux_linux_icmp_echo.pcap"

echo "== linux_ustack_tcpecho_loss.pcap (Linux client, ustack tcpecho on a TUN, loss)"
mkns "$U"
# Loss from ustack's own impairment layer (2% each way): an nft drop in the
# kernel's OUTPUT hook is not wire loss (the local TCP just retries), and
# ustack has no netfilter.
ip netns exec "$U" "$BIN/tcpecho" --tun ustkrt0 --addr 10.5.0.2/24 --impair loss=2% --seed 7 >"$DEST/.echo.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do ip -n "$U" link show dev ustkrt0 >/dev/null 2>&1 && break; sleep 0.1; done
ip -n "$U" addr add 10.5.0.1/24 dev ustkrt0
ip -n "$U" link set ustkrt0 up
ip netns exec "$U" ethtool -K ustkrt0 tso off gso off >/dev/null 2>&1 || true
sleep 0.5
capture "$U" ustkrt0 "$DEST/linux_ustack_tcpecho_loss.pcap" tcp
ip netns exec "$U" python3 -c '
import socket, threading
c = socket.create_connection(("10.5.0.2", 7), timeout=20)
data = bytes((i * 13) & 0xff for i in range(150000))
got = bytearray()
def rd():
    while len(got) < len(data):
        d = c.recv(65536)
        if not d: break
        got.extend(d)
t = threading.Thread(target=rd); t.start()
c.sendall(data); t.join(); c.shutdown(socket.SHUT_WR); c.recv(10); c.close()
print("echoed", len(got), bytes(got) == data)
'
stop_capture "$DEST/linux_ustack_tcpecho_loss.pcap"

rm -f "$DEST/.srv.log" "$DEST/.echo.log"
# What each capture should hold.
for f in linux_linux_loss linux_ustack_tcpecho_loss; do
    n=$(tshark -r "$DEST/$f.pcap" -d tcp.port==7,data -Y "tcp.analysis.retransmission or tcp.options.sack_le or tcp.analysis.lost_segment" 2>/dev/null | wc -l)
    echo "$f: $n frames show loss (retransmissions, SACK blocks or gaps)"
done
ls -l "$DEST"
