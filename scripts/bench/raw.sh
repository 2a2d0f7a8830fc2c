# shellcheck shell=bash
# Cell raw of scripts/bench.sh (sourced from there; lib.sh is loaded): bulk
# throughput of tcpecho on an AF_PACKET raw socket (--raw on one end of
# a veth pair at its default offloads) against tcpecho on a TUN, with and
# without offload (issue 16): client -> stack (discard port 9) and
# stack -> client (source port 19), MB/s, from examples/tcp_bench.rs in the
# kernel namespace; prints a markdown table with ratios raw/TUN
# (BENCHMARKS.md is not touched).
#
#   sudo scripts/bench.sh raw [SECS=3]
#
# Namespaces (deleted on exit, see "Namespace safety rules" in README.md), all ustk-perf-*-$$:
#   rt:  client 10.10.0.1 -- TUN ustk0 -- tcpecho 10.10.0.2 (offload on)
#   rto: client 10.11.0.1 -- TUN ustk0 -- tcpecho --offload off 10.11.0.2
#   rk/rs:   client 10.12.0.1 on ustkk0 -- veth -- ustks0: tcpecho --raw 10.12.0.2
#   rko/rso: the same with --offload off, 10.13.0.0/24
SECS=${1:-3}
bounded SECS "$SECS" 1 30
echo "bench.sh raw: building" >&2
build --bin tcpecho --example tcp_bench
TCPECHO="$T/tcpecho"
CLIENT="$T/examples/tcp_bench"
LIFETIME=$((SECS * 8 + 60))

tun_rig() { # NS NET EXTRA...
    local ns=$1 net=$2
    shift 2
    mkns "$ns"
    serve "$ns" "$ns" "tcpecho: echoing" timeout "$LIFETIME" "$TCPECHO" --tun ustk0 --addr "$net.2/24" \
        --discard-port 9 --source-port 19 "$@"
    tun_peer "$ns" "$net.1/24"
}

raw_rig() { # KNS SNS NET EXTRA...: the veth at its default offloads
    local k=$1 s=$2 net=$3
    shift 3
    mkns "$k"
    mkns "$s"
    veth "$k" ustkk0 "$net.1/24" "$s" ustks0
    serve "$s" "$s" "tcpecho: echoing" timeout "$LIFETIME" "$TCPECHO" --raw ustks0 --addr "$net.2/24" \
        --discard-port 9 --source-port 19 "$@"
}

NRT="ustk-perf-rt-$$" NRTO="ustk-perf-rto-$$"
NRK="ustk-perf-rk-$$" NRS="ustk-perf-rs-$$"
NRKO="ustk-perf-rko-$$" NRSO="ustk-perf-rso-$$"
tun_rig "$NRT" 10.10.0
tun_rig "$NRTO" 10.11.0 --offload off
raw_rig "$NRK" "$NRS" 10.12.0
raw_rig "$NRKO" "$NRSO" 10.13.0 --offload off

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A V
cell() { # KEY NS MODE HOST PORT
    local line
    line=$(timeout $((SECS + 15)) ip netns exec "$2" "$CLIENT" "$3" "$4" "$5" "$SECS" 2>&1 | tail -1) || true
    [[ $line == value=* ]] || line="value=0 ok=0 (client failed: $line)"
    echo "  $1: $line" >&2
    V[$1]=$(sed -E 's/^value=([0-9.]+).*/\1/' <<<"$line")
}
for mode in up down; do
    case $mode in up) port=9 ;; down) port=19 ;; esac
    cell "tun-$mode" "$NRT" "$mode" 10.10.0.2 "$port"
    cell "raw-$mode" "$NRK" "$mode" 10.12.0.2 "$port"
    cell "tuno-$mode" "$NRTO" "$mode" 10.11.0.2 "$port"
    cell "rawo-$mode" "$NRKO" "$mode" 10.13.0.2 "$port"
done

# The raw sockets' drops, from tcpecho's report at SIGINT.
for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
sleep 1
drops() { sed -nE 's/^ *([0-9]+) frames dropped inside the device$/\1/p' "$OUT/$1.out" | tail -1; }

echo "- Command: \`sudo scripts/bench.sh raw $SECS\` (git $(revision)), $(date -u '+%Y-%m-%d %H:%M UTC'), load average before: $LOAD"
echo "- Machine: $(machine)"
echo
echo "| bulk, MB/s | TUN | raw (veth, default offloads) | raw / TUN | TUN --offload off | raw --offload off | raw / TUN, off |"
echo "|---|---|---|---|---|---|---|"
for mode in up down; do
    case $mode in up) what="client -> stack (port 9)" ;; down) what="stack -> client (port 19)" ;; esac
    echo "| $what | ${V[tun-$mode]} | ${V[raw-$mode]} | $(ratio "${V[raw-$mode]}" "${V[tun-$mode]}") | ${V[tuno-$mode]} | ${V[rawo-$mode]} | $(ratio "${V[rawo-$mode]}" "${V[tuno-$mode]}") |"
done
echo
echo "Frames dropped inside the raw devices (truncated, refused, kernel queue): offload $(drops "$NRS"), --offload off $(drops "$NRSO")."
