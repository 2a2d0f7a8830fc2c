#!/usr/bin/env bash
# Bulk throughput of tcpecho on an AF_PACKET raw socket (--raw on one end of
# a veth pair at its default offloads) against tcpecho on a TUN, with and
# without offload (issue 16): client -> stack (discard port 9) and
# stack -> client (source port 19), MB/s, from examples/tcp_bench.rs in the
# kernel namespace; prints a markdown table with ratios raw/TUN
# (BENCHMARKS.md is not touched).
#
#   sudo scripts/bench-raw.sh [SECS=3]
#
# Namespaces (deleted on exit, see "Namespace safety rules" in README.md), all ustk-perf-*-$$:
#   rt:  client 10.10.0.1 -- TUN ustk0 -- tcpecho 10.10.0.2 (offload on)
#   rto: client 10.11.0.1 -- TUN ustk0 -- tcpecho --offload off 10.11.0.2
#   rk/rs:   client 10.12.0.1 on ustkk0 -- veth -- ustks0: tcpecho --raw 10.12.0.2
#   rko/rso: the same with --offload off, 10.13.0.0/24
set -euo pipefail

SECS=${1:-3}
if ! [[ $SECS =~ ^[0-9]+$ ]] || ((SECS < 1 || SECS > 30)); then
    echo "SECS: 1..30" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[[ $(id -u) -eq 0 ]] || { echo "bench-raw.sh: needs root" >&2; exit 1; }
export PATH="$PATH:$HOME/.cargo/bin:/usr/sbin:/sbin"
echo "bench-raw.sh: building" >&2
cargo build --release --features tools --quiet --bin tcpecho --example tcp_bench >&2
T="${CARGO_TARGET_DIR:-$ROOT/target}/release"
TCPECHO="$T/tcpecho"
CLIENT="$T/examples/tcp_bench"
# shellcheck source=scripts/lib-bench.sh
source "$ROOT/scripts/lib-bench.sh"
LIFETIME=$((SECS * 8 + 60))

tun_rig() { # NS NET EXTRA...
    local ns=$1 net=$2
    shift 2
    mkns "$ns"
    ip netns exec "$ns" timeout "$LIFETIME" "$TCPECHO" --tun ustk0 --addr "$net.2/24" \
        --discard-port 9 --source-port 19 "$@" >"$OUT/$ns.out" 2>"$OUT/$ns.err" &
    PIDS+=($!)
    waitfor "$OUT/$ns.err" "tcpecho: echoing"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.ustk0.disable_ipv6=1
    ip -n "$ns" addr add "$net.1/24" dev ustk0
}

raw_rig() { # KNS SNS NET EXTRA...: the veth at its default offloads
    local k=$1 s=$2 net=$3
    shift 3
    mkns "$k"
    mkns "$s"
    ip -n "$k" link add ustkk0 type veth peer name ustks0 netns "$s"
    ip -n "$k" addr add "$net.1/24" dev ustkk0
    ip -n "$k" link set ustkk0 up
    ip -n "$s" link set ustks0 up
    ip netns exec "$s" timeout "$LIFETIME" "$TCPECHO" --raw ustks0 --addr "$net.2/24" \
        --discard-port 9 --source-port 19 "$@" >"$OUT/$s.out" 2>"$OUT/$s.err" &
    PIDS+=($!)
    waitfor "$OUT/$s.err" "tcpecho: echoing"
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# The raw sockets' drops, from tcpecho's report at SIGINT.
for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
sleep 1
drops() { sed -nE 's/^ *([0-9]+) frames dropped inside the device$/\1/p' "$OUT/$1.out" | tail -1; }

echo "- Command: \`sudo scripts/bench-raw.sh $SECS\` (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ', with local changes')), $(date -u '+%Y-%m-%d %H:%M UTC'), load average before: $LOAD"
echo "- Machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo
echo "| bulk, MB/s | TUN | raw (veth, default offloads) | raw / TUN | TUN --offload off | raw --offload off | raw / TUN, off |"
echo "|---|---|---|---|---|---|---|"
for mode in up down; do
    case $mode in up) what="client -> stack (port 9)" ;; down) what="stack -> client (port 19)" ;; esac
    echo "| $what | ${V[tun-$mode]} | ${V[raw-$mode]} | $(ratio "${V[raw-$mode]}" "${V[tun-$mode]}") | ${V[tuno-$mode]} | ${V[rawo-$mode]} | $(ratio "${V[rawo-$mode]}" "${V[tuno-$mode]}") |"
done
echo
echo "Frames dropped inside the raw devices (truncated, refused, kernel queue): offload $(drops "$NRS"), --offload off $(drops "$NRSO")."
