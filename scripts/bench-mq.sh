#!/usr/bin/env bash
# The multi-queue cells of scripts/bench.sh on their own (issue 8): tcpecho
# with 1 and 2 queues of a multi-queue TUN, bulk both ways with 4 and 8
# parallel connections; prints the markdown section (BENCHMARKS.md is not
# touched). See scripts/lib-bench-mq.sh.
#
#   sudo scripts/bench-mq.sh [SECS=3] [ROUNDS=1]
#   MQ_QUEUES="1 2" MQ_CONNS="4 8" sudo -E scripts/bench-mq.sh 5 3
set -euo pipefail

SECS=${1:-3}
MQ_ROUNDS=${2:-${MQ_ROUNDS:-1}}
if ! [[ $SECS =~ ^[0-9]+$ && $MQ_ROUNDS =~ ^[0-9]+$ ]] || ((SECS < 1 || SECS > 30 || MQ_ROUNDS < 1 || MQ_ROUNDS > 9)); then
    echo "SECS: 1..30, ROUNDS: 1..9" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[[ $(id -u) -eq 0 ]] || { echo "bench-mq.sh: needs root" >&2; exit 1; }
export PATH="$PATH:$HOME/.cargo/bin:/usr/sbin:/sbin"
echo "bench-mq.sh: building" >&2
cargo build --release --features tools --quiet --bin tcpecho --example tcp_bench >&2
T="${CARGO_TARGET_DIR:-$ROOT/target}/release"
TCPECHO="$T/tcpecho"
CLIENT="$T/examples/tcp_bench"
# shellcheck source=scripts/lib-bench.sh
source "$ROOT/scripts/lib-bench.sh"
# shellcheck source=scripts/lib-bench-mq.sh
source "$ROOT/scripts/lib-bench-mq.sh"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
mq_cells
echo "- Command: \`sudo scripts/bench-mq.sh $SECS $MQ_ROUNDS\` (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ', with local changes')), $(date -u '+%Y-%m-%d %H:%M UTC'), load average before: $LOAD"
echo "- Machine: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
mq_table
