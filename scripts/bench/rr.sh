# shellcheck shell=bash
# Cell rr of scripts/bench.sh (sourced from there; lib.sh is loaded):
# request/response side by side, interleaved (issue 8): the servers start
# once and the compiled client (examples/tcp_bench.rs) runs ROUNDS short
# cells against each in turn, so that the load of a shared machine falls on
# all of them alike; prints every cell and the medians.
#
#   sudo [PIN=same|cross] [MODE=rr|cps] [OLD=path/to/other/tcpecho] [BUSY=USEC] \
#        scripts/bench.sh rr [ROUNDS=6] [SECS=1]
#
# Servers: tcpecho (ustack's poll API), examples/threaded_echo.rs (ustack's
# threaded API), examples/smoltcp_echo.rs, each on a TUN in its own
# namespace; tcp_bench's Linux server on a veth pair, port 7 (one epoll
# thread) and port 8 (a thread per connection); OLD adds a second tcpecho
# build (before/after runs), BUSY a tcpecho with --busy-poll USEC. PIN as in bench.sh: same = servers and client
# on CPU 0, cross = servers on CPU 0 and the client on CPU 1.
#
# With COST=1 each server's CPU time, system calls and context switches per
# transaction are counted instead (perf stat on the server's pid during one
# SECS cell each; tracepoint counting makes system calls dearer, so compare
# servers with each other, not with the cells' rates).
ROUNDS=${1:-6}
SECS=${2:-1}
build --bin tcpecho
build --example smoltcp_echo --example tcp_bench --example threaded_echo
case ${PIN:-} in
    "" | none) S=() C=() ;;
    same) S=(taskset -c 0) C=(taskset -c 0) ;;
    cross) S=(taskset -c 0) C=(taskset -c 1) ;;
    *) echo "PIN: same or cross" >&2; exit 2 ;;
esac

# Every client namespace gets the same ephemeral port range (bench.sh's):
# the connection-rate client leaves thousands of TIME-WAIT sockets behind,
# and connect() slows down as they fill a narrower range.
mkns_wide() {
    mkns "$1"
    ip netns exec "$1" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
}

# tun NAME CMD...: CMD on a TUN ustk0 at 10.5.0.2 in namespace NAME; the
# kernel side is 10.5.0.1. ip netns exec and taskset exec the server, so
# the pid is the server's.
declare -A SPID
tun() {
    local ns=$1
    shift
    mkns_wide "$ns"
    ip netns exec "$ns" timeout 900 "${S[@]}" "$@" >"$OUT/$ns.out" 2>"$OUT/$ns.err" &
    PIDS+=($!)
    for _ in $(seq 100); do
        ip -n "$ns" link show ustk0 >/dev/null 2>&1 && grep -q echoing "$OUT/$ns.err" && break
        sleep 0.1
    done
    ip -n "$ns" link set ustk0 up
    tun_peer "$ns" 10.5.0.1/24
    SPID[$ns]=$(pgrep -P "$!" || echo "$!")
}
SERVERS=()
NA="ustk-rr-a-$$" NT="ustk-rr-t-$$" NS="ustk-rr-s-$$" NO="ustk-rr-o-$$"
NKC="ustk-rr-kc-$$" NKS="ustk-rr-ks-$$"
tun "$NA" "$T/tcpecho" --tun ustk0 --addr 10.5.0.2/24
SERVERS+=("ustack:$NA:10.5.0.2:7")
if [[ -n ${OLD:-} ]]; then
    tun "$NO" "$OLD" --tun ustk0 --addr 10.5.0.2/24
    SERVERS+=("ustack-old:$NO:10.5.0.2:7")
fi
# BUSY=USEC adds tcpecho with --busy-poll USEC.
NB="ustk-rr-b-$$"
if [[ -n ${BUSY:-} ]]; then
    tun "$NB" "$T/tcpecho" --tun ustk0 --addr 10.5.0.2/24 --busy-poll "$BUSY"
    SERVERS+=("ustack-busy:$NB:10.5.0.2:7")
fi
tun "$NT" "$T/examples/threaded_echo" --tun ustk0 --addr 10.5.0.2/24
SERVERS+=("ustack-threaded:$NT:10.5.0.2:7")
tun "$NS" "$T/examples/smoltcp_echo" ustk0 10.5.0.2/24 7 8
SERVERS+=("smoltcp:$NS:10.5.0.2:7")
mkns_wide "$NKC"
mkns "$NKS"
veth "$NKC" ustkk0 10.6.0.1/24 "$NKS" ustks0 10.6.0.2/24
ip netns exec "$NKS" "${S[@]}" "$T/examples/tcp_bench" server 10.6.0.2 900 2>"$OUT/linux.err" &
PIDS+=($!)
SPID[$NKS]=$!
sleep 0.5
SERVERS+=("linux-epoll:$NKC:10.6.0.2:7" "linux-thread:$NKC:10.6.0.2:8")

echo "bench.sh rr: $(date -u '+%Y-%m-%d %H:%M UTC'), PIN=${PIN:-none}, MODE=${MODE:-rr}, $ROUNDS x $SECS s, load $(cut -d' ' -f1-3 /proc/loadavg), git $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes)"
if [[ ${COST:-0} == 1 ]]; then
    for s in "${SERVERS[@]}"; do
        IFS=: read -r name ns host port <<<"$s"
        pid=${SPID[$ns]:-}
        [[ $ns == "$NKC" ]] && continue # the kernel's work runs in softirq, not in a pid
        perf stat -e task-clock,raw_syscalls:sys_enter,context-switches -p "$pid" -o "$OUT/perf.$name" &
        pp=$!
        sleep 0.2
        line=$(ip netns exec "$ns" "${C[@]}" "$T/examples/tcp_bench" "${MODE:-rr}" "$host" "$port" "$SECS")
        kill -INT "$pp"
        wait "$pp" 2>/dev/null || true
        awk -v n="$name" -v l="$line" '
            /task-clock/ { gsub(",", "", $1); tc = $1 }
            /raw_syscalls:sys_enter/ { gsub(",", "", $1); sc = $1 }
            /context-switches/ { gsub(",", "", $1); cs = $1 }
            END {
                match(l, /count=[0-9]+/); c = substr(l, RSTART + 6, RLENGTH - 6)
                match(l, /value=[0-9.]+/); v = substr(l, RSTART + 6, RLENGTH - 6)
                t = c + 0.3 * v  # the client warms up for 0.3 s before counting
                printf "%-16s cpu_us_per_tx=%.2f syscalls_per_tx=%.2f ctxsw_per_tx=%.2f | %s\n", n, tc * 1000 / t, sc / t, cs / t, l
            }' "$OUT/perf.$name"
    done
    return 0
fi
for _ in $(seq "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do
        IFS=: read -r name ns host port <<<"$s"
        echo "$name $(timeout $((SECS + 15)) ip netns exec "$ns" "${C[@]}" "$T/examples/tcp_bench" "${MODE:-rr}" "$host" "$port" "$SECS" 2>&1 | tail -1)"
    done
done | tee "$OUT/cells"
echo "medians:"
for s in "${SERVERS[@]}"; do
    name=${s%%:*}
    grep "^$name value=" "$OUT/cells" | grep ' ok=1' | awk -v n="$name" '
        { match($0, /value=[0-9.]+/); v[NR] = substr($0, RSTART + 6, RLENGTH - 6) + 0
          p50[NR] = 0; p99[NR] = 0
          if (match($0, /p50_us=[0-9.]+/)) p50[NR] = substr($0, RSTART + 7, RLENGTH - 7) + 0
          if (match($0, /p99_us=[0-9.]+/)) p99[NR] = substr($0, RSTART + 7, RLENGTH - 7) + 0 }
        function med(a, n,   i, j, t, b) { for (i = 1; i <= n; i++) b[i] = a[i]
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
            return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }
        END { if (NR) printf "  %-16s %9.0f /s  p50 %6.1f us  p99 %8.1f us  (%d cells)\n", n, med(v, NR), med(p50, NR), med(p99, NR), NR }'
done
