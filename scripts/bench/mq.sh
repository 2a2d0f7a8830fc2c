# shellcheck shell=bash
# Multi-queue cells of the benchmarks (sourced, not run; issue 8): bulk
# throughput of tcpecho with 1 and with 2 queues of a multi-queue TUN
# (`--queues N`, one stack thread per queue), with several parallel
# connections from examples/tcp_bench.rs, both directions. Used by
# scripts/bench.sh: cell 7 of the side-by-side table, and cell mq on its own.
#
# Needs from the caller: lib.sh sourced (mkns, PIDS, OUT), TCPECHO and
# CLIENT (paths of the release binaries), SECS. Optional: MQ_QUEUES (default
# "1 2"), MQ_CONNS (default "4 8"), MQ_ROUNDS (default 1: each figure is the
# median of the rounds; the queue counts alternate within a round).
#
# Namespace ustk-perf-mq-$$: client (kernel 10.8.0.1) -- TUN ustk0 (multi-
# queue, made by tcpecho, gone when it exits) -- tcpecho 10.8.0.2.
#
# mq_cells fills MQV[Q,MODE,CONNS] (MB/s), MQSPLIT[Q,MODE,CONNS] (the
# connections each queue accepted), MQCPU (tcpecho's CPU, % of one core) and
# MQBUSY (the machine's busy share, %); mq_table prints the markdown section.

declare -A MQV MQSPLIT MQCPU MQBUSY

mq_median() { # "v1 v2 ..." -> the median
    tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}

# CPU time of a process, in clock ticks (user + system, all threads).
mq_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Busy and total ticks of the whole machine.
mq_machine() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

mq_one() { # NS QUEUES MODE CONNS -> MQ_LAST_V (MB/s), MQ_LAST_S (connections
    # per queue), MQ_LAST_CPU (tcpecho's CPU time over the cell, % of one
    # core), MQ_LAST_BUSY (the machine's busy share, %, all processes)
    local ns=$1 q=$2 mode=$3 conns=$4 port pid tpid line split t0 t1 m0 m1 s0 s1
    local hz
    hz=$(getconf CLK_TCK)
    case $mode in up) port=9 ;; *) port=19 ;; esac
    # The previous cell's device goes away when its tcpecho exits; a new
    # tcpecho must not find it (a single-queue one refuses --queues 2).
    for _ in $(seq 50); do
        ip -n "$ns" link show ustk0 >/dev/null 2>&1 || break
        sleep 0.1
    done
    # Emptied here, not only by the redirection below: that happens in the
    # background child, maybe after the first grep for the ready line,
    # which would then find the previous cell's.
    : >"$OUT/mq.out"
    : >"$OUT/mq.err"
    ip netns exec "$ns" timeout 120 "$TCPECHO" --tun ustk0 --addr 10.8.0.2/24 --queues "$q" \
        --discard-port 9 --source-port 19 >"$OUT/mq.out" 2>"$OUT/mq.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 300); do
        grep -q "tcpecho: echoing" "$OUT/mq.err" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    # tcpecho runs under timeout(1): its pid is the child's.
    tpid=$(pgrep -P "$pid" -x tcpecho || echo "$pid")
    if ! grep -q "tcpecho: echoing" "$OUT/mq.err" 2>/dev/null; then
        echo "  mq queues=$q $mode conns=$conns: tcpecho did not start in 30 s: $(tail -1 "$OUT/mq.err") (pid $tpid in $(cat "/proc/$tpid/wchan" 2>/dev/null || echo '?'))" >&2
        kill -INT "$tpid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        MQ_LAST_V="" MQ_LAST_S="failed" MQ_LAST_CPU="" MQ_LAST_BUSY=""
        return
    fi
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.ustk0.disable_ipv6=1 2>/dev/null || true
    ip -n "$ns" addr add 10.8.0.1/24 dev ustk0 2>/dev/null || true
    t0=$(mq_ticks "$tpid")
    read -r m0 s0 < <(mq_machine)
    line=$(timeout $((SECS + 20)) ip netns exec "$ns" "$CLIENT" "$mode" 10.8.0.2 "$port" "$SECS" "$conns" 2>&1 | tail -1) || true
    t1=$(mq_ticks "$tpid")
    read -r m1 s1 < <(mq_machine)
    [[ $line == value=* ]] || line="value=0 ok=0 (client failed: $line)"
    kill -INT "$tpid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    split=$(sed -nE 's/^ *queue [0-9]+: ([0-9]+) passive.*/\1/p' "$OUT/mq.out" | paste -sd/ -)
    # The client's time: SECS plus the warm-up (down) or the drain (up).
    local secs
    secs=$(sed -nE 's/.* secs=([0-9.]+).*/\1/p' <<<"$line")
    MQ_LAST_CPU=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="${secs:-0}" -v w="$([[ $mode == down ]] && echo 0.3 || echo 0)" 'BEGIN { if (s > 0) printf "%.0f", 100 * (b - a) / hz / (s + w); else print "" }')
    MQ_LAST_BUSY=$(awk -v a="$m0" -v b="$m1" -v x="$s0" -v y="$s1" 'BEGIN { if (y > x) printf "%.0f", 100 * (b - a) / (y - x); else print "" }')
    echo "  mq queues=$q $mode conns=$conns: $line${split:+ (connections per queue $split)}; tcpecho CPU ${MQ_LAST_CPU}% of a core, machine ${MQ_LAST_BUSY}% busy" >&2
    if grep -q ' ok=1' <<<"$line"; then
        MQ_LAST_V=$(sed -E 's/^value=([0-9.]+).*/\1/' <<<"$line")
        MQ_LAST_S=${split:-$conns}
    else
        # A failed cell counts for nothing (not as 0 in the medians).
        MQ_LAST_V="" MQ_LAST_S="failed" MQ_LAST_CPU="" MQ_LAST_BUSY=""
    fi
}

mq_cells() {
    local ns="ustk-perf-mq-$$" round q mode conns r
    local queues=${MQ_QUEUES:-1 2} connss=${MQ_CONNS:-4 8} rounds=${MQ_ROUNDS:-1}
    local -A vals cpus busys
    mkns "$ns"
    for ((round = 1; round <= rounds; round++)); do
        for mode in up down; do
            for conns in $connss; do
                for q in $queues; do
                    mq_one "$ns" "$q" "$mode" "$conns"
                    vals[$q,$mode,$conns]="${vals[$q,$mode,$conns]:-} $MQ_LAST_V"
                    cpus[$q,$mode,$conns]="${cpus[$q,$mode,$conns]:-} $MQ_LAST_CPU"
                    busys[$q,$mode,$conns]="${busys[$q,$mode,$conns]:-} $MQ_LAST_BUSY"
                    MQSPLIT[$q,$mode,$conns]="${MQSPLIT[$q,$mode,$conns]:+${MQSPLIT[$q,$mode,$conns]}; }$MQ_LAST_S"
                done
            done
        done
    done
    for r in "${!vals[@]}"; do
        MQV[$r]=$(mq_median "${vals[$r]}")
        MQCPU[$r]=$(mq_median "${cpus[$r]}")
        MQBUSY[$r]=$(mq_median "${busys[$r]}")
    done
}

mq_table() {
    local queues=${MQ_QUEUES:-1 2} connss=${MQ_CONNS:-4 8} rounds=${MQ_ROUNDS:-1}
    local first=${queues%% *} q mode conns head="" sep="" row
    for q in $queues; do
        head="$head | $q queue$( ((q > 1)) && echo s || true)"
        sep="$sep | ---:"
    done
    for q in $queues; do
        [[ $q == "$first" ]] && continue
        head="$head | $q / $first"
        sep="$sep | ---:"
    done
    cat <<EOF

Multi-queue TUN (\`tcpecho --queues N\`: one stack thread per queue, flows
hashed to queues by the kernel), bulk MB/s with parallel connections from
\`tcp_bench up|down HOST PORT ${SECS} CONNS\`; ${SECS} s per cell, median of ${rounds} round(s);
in brackets: the connections each queue accepted (per round); tcpecho's CPU
time over the cell as a share of one core (all its threads, the kernel work
its system calls do included); how busy the whole machine was (every
process: the client, the kernel's softirqs, anything else running).

| direction | connections$head |
| --- | ---:$sep |
EOF
    for mode in up down; do
        for conns in $connss; do
            if [[ $mode == up ]]; then row="| client → server | $conns"; else row="| server → client | $conns"; fi
            for q in $queues; do
                row="$row | ${MQV[$q,$mode,$conns]:-n/a} (${MQSPLIT[$q,$mode,$conns]:-?}; ${MQCPU[$q,$mode,$conns]:-?} %, ${MQBUSY[$q,$mode,$conns]:-?} %)"
            done
            for q in $queues; do
                [[ $q == "$first" ]] && continue
                row="$row | $(awk -v a="${MQV[$q,$mode,$conns]:-}" -v b="${MQV[$first,$mode,$conns]:-}" 'BEGIN { if (b > 0 && a != "") printf "%.2f", a / b; else print "n/a" }')"
            done
            echo "$row |"
        done
    done
}
