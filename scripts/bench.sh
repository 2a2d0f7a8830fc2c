#!/usr/bin/env bash
# The one benchmark entry: `bench.sh CELL [ARGS]`, every setup in namespaces
# of its own (deleted on exit, see "Namespace safety rules" in README.md),
# every step bounded in time; progress on stderr.
#
#   sudo scripts/bench.sh [side] [--no-write] [SECS=3]   the side-by-side table
#   sudo scripts/bench.sh tcp [DURATION=5] [MIB=256]      TCP echo, python3 client
#   sudo scripts/bench.sh udp [DURATION=5] [WINDOW=32]    UDP echo rate
#   sudo scripts/bench.sh rr [ROUNDS=6] [SECS=1]          request/response, interleaved
#   sudo scripts/bench.sh mq [SECS=3] [ROUNDS=1]          multi-queue cells alone
#   sudo scripts/bench.sh raw [SECS=3]                    raw socket vs TUN bulk
#   sudo scripts/bench.sh all                             each of them in turn, defaults
#
# Each cell's setup and options are at the top of scripts/bench/CELL.sh
# (sourced from here); the side-by-side table is below.
#
# side: ustack against smoltcp and Linux, one namespace setup, a markdown
# table with absolute figures and ratios written into BENCHMARKS.md
# (between the "bench.sh" markers; appended the first time) and printed on
# stdout.
#
#   sudo CELLS=rr,cps PIN=same scripts/bench.sh side [SECS]
#
# CELLS (comma-separated, default all): up, down, rr, cps (cells 1-3), mem
# (4), pipe (5), tun (6), mq (7). With CELLS set, nothing is written to
# BENCHMARKS.md: the cells' lines go to stderr and the table to stdout.
# PIN: unset (the scheduler places everything), "same" (servers and client
# all on CPU 0, taskset -c 0) or "cross" (servers on CPU 0, the client on
# CPU 1). The kernel-side work runs where the process that enters the
# kernel runs: the Linux server's on its CPU, the TUN's receive path in the
# writing stack's.
#
# Cells (SECS each, after a 0.3 s warm-up where it applies):
#   1. bulk, client -> server (discard port 9) and server -> client (source
#      port 19), MB/s;
#   2. 1-byte request/response on one connection (port 7 echo): tx/s, p50
#      and p99 latency;
#   3. connection rate: connect, 1 byte there and back, close;
#      all three from the compiled client examples/tcp_bench.rs, against
#      tcpecho on a TUN, examples/smoltcp_echo.rs on a TUN, and
#      examples/tcp_bench.rs's Linux server on a veth pair (port 7: one
#      thread, epoll); request/response and connection rate also against
#      the Linux server's thread-per-connection echo (port 8) and ustack's
#      threaded API (examples/threaded_echo.rs on a TUN), listed under the
#      table;
#   4. tcpecho's resident memory per idle established connection with 10,000
#      and 100,000 connections;
#   5. in memory, no device: examples/pipe_bench.rs (ustack over the pipe
#      device vs smoltcp over an in-memory link, MTU 1500);
#   6. the raw TUN rate, one 1500-byte frame per read()/write()
#      (examples/tun_rate.rs);
#   7. multi-queue: tcpecho --queues 1 vs 2 (one stack thread per queue of a
#      multi-queue TUN), bulk both ways with 4 and 8 parallel connections
#      (scripts/bench/mq.sh; on its own: scripts/bench.sh mq).
#
# Namespaces (deleted on exit, see "Namespace safety rules" in README.md), all ustk-perf-*-$$:
#   u:  client (kernel 10.5.0.1, .11-.14, .21-.28) -- TUN ustk0 -- tcpecho 10.5.0.2
#       (TUN offload on, the tools' default)
#   o:  client (kernel 10.4.0.1) -- TUN ustk0 -- tcpecho --offload off 10.4.0.2
#   s:  client (kernel 10.7.0.1) -- TUN ustk0 -- smoltcp_echo 10.7.0.2
#   ut: client (kernel 10.8.0.1) -- TUN ustk0 -- threaded_echo 10.8.0.2
#   kc: client 10.6.0.1 -- veth -- ks: tcp_bench server 10.6.0.2
#   t:  tun_rate (TUN ustk0, 10.99.0.1)
#   mq: client (kernel 10.8.0.1) -- multi-queue TUN ustk0 -- tcpecho --queues N 10.8.0.2
# Progress on stderr.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_root
# The multi-queue cells' functions (mq_cells, mq_table): cell mq and cell 7.
# shellcheck source=scripts/bench/mq.sh
source "$ROOT/scripts/bench/mq.sh"

CELL=side
case ${1:-} in
    side | tcp | udp | rr | mq | raw | all)
        CELL=$1
        shift
        ;;
esac
case $CELL in
    all)
        rc=0
        for c in side tcp udp rr raw; do "$0" "$c" || rc=1; done
        exit "$rc"
        ;;
    tcp | udp | rr | raw)
        # shellcheck source=/dev/null
        source "$ROOT/scripts/bench/$CELL.sh"
        exit 0
        ;;
    mq)
        SECS=${1:-3}
        MQ_ROUNDS=${2:-${MQ_ROUNDS:-1}}
        bounded SECS "$SECS" 1 30
        bounded ROUNDS "$MQ_ROUNDS" 1 9
        echo "bench.sh mq: building" >&2
        build --bin tcpecho --example tcp_bench
        TCPECHO="$T/tcpecho"
        CLIENT="$T/examples/tcp_bench"
        LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
        mq_cells
        echo "- Command: \`sudo scripts/bench.sh mq $SECS $MQ_ROUNDS\` (git $(revision)), $(date -u '+%Y-%m-%d %H:%M UTC'), load average before: $LOAD"
        echo "- Machine: $(machine)"
        mq_table
        exit 0
        ;;
esac

WRITE=1
if [[ ${1:-} == --no-write ]]; then
    WRITE=0
    shift
fi
SECS=${1:-3}
CELLS=${CELLS:-}
[[ -n $CELLS ]] && WRITE=0
want() { [[ -z $CELLS || ,$CELLS, == *,$1,* ]]; }
PIN=${PIN:-}
case $PIN in
    "") SRV_PIN=() CLI_PIN=() ;;
    same) SRV_PIN=(taskset -c 0) CLI_PIN=(taskset -c 0) ;;
    cross) SRV_PIN=(taskset -c 0) CLI_PIN=(taskset -c 1) ;;
    *)
        echo "PIN: same or cross" >&2
        exit 2
        ;;
esac
bounded SECS "$SECS" 1 30
START=$(date +%s)

echo "bench.sh: building" >&2
build --bin tcpecho
build --example smoltcp_echo --example tcp_bench --example pipe_bench --example tun_rate --example threaded_echo
# TCPECHO, THREADED: other builds of the two ustack servers (A/B runs).
TCPECHO=${TCPECHO:-$T/tcpecho}
THREADED=${THREADED:-$T/examples/threaded_echo}
SMOLECHO="$T/examples/smoltcp_echo"
CLIENT="$T/examples/tcp_bench"

NSU="ustk-perf-u-$$"
NSO="ustk-perf-o-$$"
NSS="ustk-perf-s-$$"
NSUT="ustk-perf-ut-$$"
NSKC="ustk-perf-kc-$$"
NSKS="ustk-perf-ks-$$"
NST="ustk-perf-t-$$"

# --- one setup for everything ------------------------------------------------
LIFETIME=$((60 * 5))
mkns "$NSU"
# Room for 100,000 client connections from 8 source addresses.
ip netns exec "$NSU" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
serve "$NSU" echo "tcpecho: echoing" timeout "$LIFETIME" "${SRV_PIN[@]}" "$TCPECHO" --tun ustk0 \
    --addr 10.5.0.2/24 --discard-port 9 --source-port 19 --backlog 4096
ECHO_PID=$SERVED
tun_peer "$NSU" 10.5.0.1/24
for a in 11 12 13 14 21 22 23 24 25 26 27 28; do ip -n "$NSU" addr add "10.5.0.$a/24" dev ustk0; done
# tcpecho runs under timeout(1): its pid is the child's.
TCPECHO_PID=$(pgrep -P "$ECHO_PID" -x tcpecho || echo "$ECHO_PID")

mkns "$NSO"
ip netns exec "$NSO" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
serve "$NSO" echo-off "tcpecho: echoing" timeout "$LIFETIME" "${SRV_PIN[@]}" "$TCPECHO" --tun ustk0 \
    --addr 10.4.0.2/24 --discard-port 9 --source-port 19 --offload off
tun_peer "$NSO" 10.4.0.1/24

mkns "$NSS"
# Every client namespace gets the same ephemeral port range: connect()
# slows down as the connection-rate cell's TIME-WAIT sockets fill a
# narrower one (the Linux cell measured 3,600 conn/s with the default range
# and 12,000 with this one).
ip netns exec "$NSS" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
serve "$NSS" smol "smoltcp_echo: echoing" timeout "$LIFETIME" "${SRV_PIN[@]}" "$SMOLECHO" ustk0 10.7.0.2/24 7 8 9 19
ip -n "$NSS" link set ustk0 up txqueuelen 4096
tun_peer "$NSS" 10.7.0.1/24

mkns "$NSUT"
ip netns exec "$NSUT" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
serve "$NSUT" techo "threaded_echo: echoing" timeout "$LIFETIME" "${SRV_PIN[@]}" "$THREADED" --tun ustk0 --addr 10.8.0.2/24
tun_peer "$NSUT" 10.8.0.1/24

mkns "$NSKC"
ip netns exec "$NSKC" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
mkns "$NSKS"
veth "$NSKC" ustkk0 10.6.0.1/24 "$NSKS" ustks0 10.6.0.2/24
serve "$NSKS" linux "tcp_bench server: serving" "${SRV_PIN[@]}" "$CLIENT" server 10.6.0.2 "$LIFETIME"

mkns "$NST"

# --- 1-3: bulk, request/response, connection rate ----------------------------
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A V OK P50 P99
cell() { # KEY NS MODE HOST PORT
    local line
    line=$(timeout $((SECS + 15)) ip netns exec "$2" "${CLI_PIN[@]}" "$CLIENT" "$3" "$4" "$5" "$SECS" 2>&1 | tail -1) || true
    [[ $line == value=* ]] || line="value=0 ok=0 (client failed: $line)"
    echo "  $1: $line" >&2
    V[$1]=$(sed -E 's/^value=([0-9.]+).*/\1/' <<<"$line")
    OK[$1]=$(sed -nE 's/.* ok=([01]).*/\1/p' <<<"$line")
    P50[$1]=$(sed -nE 's/.* p50_us=([0-9.]+).*/\1/p' <<<"$line")
    P99[$1]=$(sed -nE 's/.* p99_us=([0-9.]+).*/\1/p' <<<"$line")
}
for mode in up down rr cps; do
    want $mode || continue
    case $mode in up) port=9 ;; down) port=19 ;; *) port=7 ;; esac
    cell "u$mode" "$NSU" "$mode" 10.5.0.2 "$port"
    cell "o$mode" "$NSO" "$mode" 10.4.0.2 "$port"
    cell "s$mode" "$NSS" "$mode" 10.7.0.2 "$port"
    cell "k$mode" "$NSKC" "$mode" 10.6.0.2 "$port"
    if [[ $mode == rr || $mode == cps ]]; then
        cell "t$mode" "$NSUT" "$mode" 10.8.0.2 7
        cell "k8$mode" "$NSKC" "$mode" 10.6.0.2 8
    fi
done

# --- 4: memory per idle connection ------------------------------------------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
declare -A MEM
hold() { # N SRC...: one client process per source address (each below
    # the 20,000-descriptor limit a container may impose), N split evenly.
    local n=$1
    shift
    local per=$(((n + $# - 1) / $#))
    local before fifo after src i=0 cpids=() held=0 line errs=""
    before=$(rss_kib "$TCPECHO_PID")
    fifo="$OUT/hold.$n"
    mkfifo "$fifo"
    for src in "$@"; do
        # The client keeps its connections until its stdin (the fifo) closes.
        timeout 120 ip netns exec "$NSU" "$CLIENT" hold 10.5.0.2 7 "$per" 90 "$src" <"$fifo" >"$OUT/hold.$n.$i.out" 2>&1 &
        cpids+=($!)
        PIDS+=($!)
        i=$((i + 1))
    done
    exec 7>"$fifo"
    for _ in $(seq 1200); do
        local done=0 c
        for ((c = 0; c < i; c++)); do
            grep -q '^held=' "$OUT/hold.$n.$c.out" 2>/dev/null && done=$((done + 1))
        done
        ((done == i)) && break
        sleep 0.1
    done
    sleep 1
    after=$(rss_kib "$TCPECHO_PID")
    for ((c = 0; c < i; c++)); do
        line=$(grep '^held=' "$OUT/hold.$n.$c.out" || echo "held=0 err=$(tail -1 "$OUT/hold.$n.$c.out")")
        held=$((held + $(sed -nE 's/^held=([0-9]+).*/\1/p' <<<"$line")))
        grep -q 'err=None' <<<"$line" || errs="$errs $line;"
    done
    exec 7>&-
    for c in "${cpids[@]}"; do wait "$c" 2>/dev/null || true; done
    echo "  hold $n: held=$held in $i processes; tcpecho RSS $before -> $after KiB${errs:+; errors:$errs}" >&2
    MEM[$n]="$before $after $held"
    MEMLINE[$n]="held=$held${errs:+; errors:$errs}"
    # Let the closes finish before the next step.
    sleep 2
}
declare -A MEMLINE
if want mem; then
hold 10000 10.5.0.11 10.5.0.12 10.5.0.13 10.5.0.14
hold 100000 10.5.0.21 10.5.0.22 10.5.0.23 10.5.0.24 10.5.0.25 10.5.0.26 10.5.0.27 10.5.0.28
fi

# --- 5: in memory ------------------------------------------------------------
PIPE=
want pipe && PIPE=$(timeout $((5 * SECS + 30)) "$T/examples/pipe_bench" all "$SECS" || true)
echo "  pipe: $PIPE" >&2
pipev() { sed -nE "s/^stack=$1 value=([0-9.]+).*/\\1/p" <<<"$PIPE"; }
PU=$(pipev ustack)
PUO=$(pipev ustack-offload)
PS=$(pipev smoltcp)
PSZ=$(pipev smoltcp-zerocopy)
PS64=$(pipev smoltcp-64k)

# --- 6: raw TUN rate -----------------------------------------------------------
TUN=
want tun && TUN=$(timeout $((2 * SECS + 20)) ip netns exec "$NST" "$T/examples/tun_rate" ustk0 "$SECS" || true)
echo "  tun: $TUN" >&2
TW=$(sed -nE 's/.*write_fps=([0-9]+).*/\1/p' <<<"$TUN")
TR=$(sed -nE 's/.*read_fps=([0-9]+).*/\1/p' <<<"$TUN")

# --- 7: multi-queue: 1 vs 2 queues, 4 and 8 parallel connections ---------------
want mq && mq_cells
# --- end multi-queue ------------------------------------------------------------

# tcpecho's drop/retransmit counters (stdout at SIGINT).
kill -INT "$TCPECHO_PID" 2>/dev/null || true
for _ in $(seq 50); do kill -0 "$TCPECHO_PID" 2>/dev/null || break; sleep 0.1; done
grep -E "segments retransmitted|outgoing packets dropped|transmit queue drops|accept queue full" "$OUT/echo.out" >&2 || true

# --- the table -----------------------------------------------------------------
num() { # VALUE [DECIMALS] -> 12,345.6
    [[ -n ${1:-} ]] || { echo "n/a"; return; }
    awk -v x="$1" -v d="${2:-0}" 'BEGIN {
        s = sprintf("%." d "f", x); n = split(s, p, "."); i = p[1]; o = ""
        while (length(i) > 3) { o = "," substr(i, length(i) - 2) o; i = substr(i, 1, length(i) - 3) }
        printf "%s%s%s", i, o, (n > 1 ? "." p[2] : "")
    }'
}
ELAPSED=$(($(date +%s) - START))
case $PIN in
    same) PLACE="PIN=same: servers and client all on CPU 0 (taskset -c 0)" ;;
    cross) PLACE="PIN=cross: servers on CPU 0, the client on CPU 1 (taskset)" ;;
    *) PLACE="not pinned (the scheduler's choice)" ;;
esac
{
    cat <<EOF
<!-- bench.sh begin: written by scripts/bench.sh, replaced on every run -->
## Side by side: ustack vs smoltcp vs Linux (scripts/bench.sh, issue 8)

- Command: \`sudo scripts/bench.sh $SECS\` (git $(revision)), ${ELAPSED} s in all
- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average before the cells: $LOAD
- Machine: $(machine)
- Client: \`examples/tcp_bench.rs\` (compiled, std::net on the kernel's TCP), the same for all three servers; ${SECS} s per cell.
- Servers: \`tcpecho --tun\` (ustack's poll API, one thread; \`--discard-port 9 --source-port 19\`), with TUN offload (the default: TSO/GRO/checksum through the virtio-net header) and with \`--offload off\` (one frame per system call); \`examples/smoltcp_echo.rs\` (smoltcp 0.14 on a TUN, 1 MiB buffers); \`tcp_bench server\` (Linux TCP on a veth pair: echo in one epoll thread, bulk a thread per connection).
- Placement: $PLACE.

| test | ustack, offload (TUN) | ustack, no offload (TUN) | smoltcp (TUN) | Linux (veth) | offload / smoltcp | no offload / smoltcp | offload / Linux |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
EOF
    row() { printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(num "$2" "${6:-0}")" "$(num "$3" "${6:-0}")" "$(num "$4" "${6:-0}")" "$(num "$5" "${6:-0}")" "$(ratio "$2" "$4")" "$(ratio "$3" "$4")" "$(ratio "$2" "$5")"; }
    row "bulk client → server (MB/s)" "${V[uup]:-}" "${V[oup]:-}" "${V[sup]:-}" "${V[kup]:-}" 1
    row "bulk server → client (MB/s)" "${V[udown]:-}" "${V[odown]:-}" "${V[sdown]:-}" "${V[kdown]:-}" 1
    row "1-byte request/response (tx/s)" "${V[urr]:-}" "${V[orr]:-}" "${V[srr]:-}" "${V[krr]:-}"
    row "request/response p50 (µs)" "${P50[urr]:-}" "${P50[orr]:-}" "${P50[srr]:-}" "${P50[krr]:-}" 1
    row "request/response p99 (µs)" "${P99[urr]:-}" "${P99[orr]:-}" "${P99[srr]:-}" "${P99[krr]:-}" 1
    row "connect + 1 byte echoed + close (conn/s)" "${V[ucps]:-}" "${V[ocps]:-}" "${V[scps]:-}" "${V[kcps]:-}"
    cat <<EOF

Also measured (request/response; connection rate): ustack's threaded API
(\`examples/threaded_echo.rs\`, a thread per connection on \`ustack::net\`)
$(num "${V[trr]:-}") tx/s, p50 $(num "${P50[trr]:-}" 1) µs, p99 $(num "${P99[trr]:-}" 1) µs; $(num "${V[tcps]:-}") conn/s.
Linux with a thread per connection (port 8): $(num "${V[k8rr]:-}") tx/s, p50 $(num "${P50[k8rr]:-}" 1) µs, p99 $(num "${P99[k8rr]:-}" 1) µs; $(num "${V[k8cps]:-}") conn/s.
EOF
    for key in uup oup sup kup udown odown sdown kdown urr orr srr krr ucps ocps scps kcps trr tcps k8rr k8cps; do
        m=${key#k8}
        m=${m#[uskto]}
        if want "$m" && [[ ${OK[$key]:-0} != 1 ]]; then
            echo
            echo "**Warning:** cell $key had errors (see the run's stderr)."
        fi
    done
    cat <<EOF

Memory: tcpecho's resident set (VmRSS) before and while the client holds
N idle established connections (each echoed one byte, then left open).

| connections | held | RSS before | RSS with them | per connection |
| ---: | ---: | ---: | ---: | ---: |
EOF
    for n in 10000 100000; do
        read -r b a h <<<"${MEM[$n]:-0 0 0}"
        per=$(awk -v b="$b" -v a="$a" -v h="$h" 'BEGIN { if (h > 0) printf "%.2f KiB", (a - b) / h; else print "n/a" }')
        printf '| %s | %s | %s KiB | %s KiB | %s |\n' "$(num "$n")" "$(num "$h")" "$(num "$b")" "$(num "$a")" "$per"
    done
    for n in 10000 100000; do
        read -r _ _ h <<<"${MEM[$n]:-0 0 0}"
        if want mem && [[ $h != "$n" ]]; then
            echo
            echo "**$n connections not reached:** \`${MEMLINE[$n]:-no output}\`"
        fi
    done
    cat <<EOF

In memory, no device (\`examples/pipe_bench.rs all\`, one connection, one
thread driving both ends, ${SECS} s each; both applications copy their data
in and out, as a \`std::net\` application does, except in the zero-copy row):

| bulk, MB/s | ustack ↔ ustack (pipe device) | smoltcp ↔ smoltcp (in-memory link) | ustack / smoltcp |
| --- | ---: | ---: | ---: |
| MTU 1500 | $(num "$PU" 1) | $(num "$PS" 1) | $(ratio "$PU" "$PS") |
| 64 KiB frames (ustack: pipe with offload, super-segments; smoltcp: MTU 65,535) | $(num "$PUO" 1) | $(num "$PS64" 1) | $(ratio "$PUO" "$PS64") |
| MTU 1500, smoltcp's zero-copy closures (its application copies nothing) | $(num "$PU" 1) | $(num "$PSZ" 1) | $(ratio "$PU" "$PSZ") |

Raw TUN, one 1500-byte frame per system call (\`examples/tun_rate.rs\`, ${SECS} s each):

| direction | frames/s | Gbit/s | × MSS 1460 (MB/s) |
| --- | ---: | ---: | ---: |
| write (stack → kernel) | $(num "$TW") | $(awk -v f="${TW:-0}" 'BEGIN { printf "%.2f", f * 1500 * 8 / 1e9 }') | $(awk -v f="${TW:-0}" 'BEGIN { printf "%.1f", f * 1460 / 1e6 }') |
| read (kernel → stack) | $(num "$TR") | $(awk -v f="${TR:-0}" 'BEGIN { printf "%.2f", f * 1500 * 8 / 1e9 }') | $(awk -v f="${TR:-0}" 'BEGIN { printf "%.1f", f * 1460 / 1e6 }') |

ustack's bulk rates without offload (one frame per system call, the path
this ceiling bounds) as a share of it: server → client (the stack
writes the TUN) $(awk -v u="${V[odown]:-0}" -v f="${TW:-0}" 'BEGIN { if (f > 0) printf "%.0f %%", 100 * u * 1e6 / (f * 1460); else print "n/a" }'),
client → server (the stack reads the TUN) $(awk -v u="${V[oup]:-0}" -v f="${TR:-0}" 'BEGIN { if (f > 0) printf "%.0f %%", 100 * u * 1e6 / (f * 1460); else print "n/a" }').
The TUN write rate is for UDP frames the kernel drops at once (no socket);
the read rate is bounded by the kernel-side sender thread on the other core.
EOF
    # --- multi-queue (7): its table ---
    mq_table
    # --- end multi-queue ---
    echo "<!-- bench.sh end -->"
} >"$OUT/table.md"

cat "$OUT/table.md"
if ((WRITE)); then
    if grep -q '^<!-- bench.sh begin' BENCHMARKS.md; then
        awk -v f="$OUT/table.md" '
            /^<!-- bench.sh begin/ { while ((getline l < f) > 0) print l; skip = 1; next }
            /^<!-- bench.sh end/ { skip = 0; next }
            !skip' BENCHMARKS.md >"$OUT/B.md"
        cat "$OUT/B.md" >BENCHMARKS.md
    else
        { echo; cat "$OUT/table.md"; } >>BENCHMARKS.md
    fi
    echo "bench.sh: written to BENCHMARKS.md (${ELAPSED} s)" >&2
fi
