#!/usr/bin/env bash
# ucat against Linux on a clean TUN, bulk both ways at once: ucat listens
# and sends SIZE bytes while a Linux `nc` sends it SIZE bytes, RUNS times,
# each in a fresh namespace ustk-bulk2-PID-N (deleted on exit). Prints per
# run ucat's retransmissions (its last --progress line) and the Linux
# side's counters: retransmitted segments, PAWS drops of established
# connections (TcpExtPAWSEstab) and D-SACKs received. Needs root and a
# release build (cargo build --release --features tools). The kernel's defaults everywhere.
#
#   [UCAT=path/to/ucat] scripts/bulk-both-ways.sh [RUNS] [SIZE_MB] [-- UCAT-FLAGS...]
#   e.g. scripts/bulk-both-ways.sh 10 100 -- --offload off
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_root
RUNS=${1:-10}
MB=${2:-100}
shift $(($# >= 2 ? 2 : $#))
[[ ${1:-} == -- ]] && shift
UCAT=${UCAT:-$T/ucat}
[[ -x $UCAT ]] || die "build first: cargo build --release --features tools"
command -v nc >/dev/null || die "needs nc (scripts/install-deps.sh)"
TMP=$OUT
head -c "${MB}M" /dev/urandom >"$TMP/in"
printf '%-4s %-20s %-10s %-16s %-12s %s\n' run 'ucat_rtx (fast rto tlp dsack)' linux_rtx linux_PAWSEstab linux_DSACK ms
for i in $(seq 1 "$RUNS"); do
    NS=ustk-bulk2-$$-$i
    mkns "$NS"
    ip netns exec "$NS" timeout 120 "$UCAT" --tun ustk0 --addr 10.77.0.2/24 "$@" --progress \
        listen 6001 <"$TMP/in" >"$TMP/got-ucat" 2>"$TMP/ucat.err" &
    upid=$!
    for _ in $(seq 1 100); do ip -n "$NS" link show ustk0 >/dev/null 2>&1 && break; sleep 0.05; done
    ip -n "$NS" addr add 10.77.0.1/24 dev ustk0
    ip -n "$NS" link set ustk0 up
    sleep 0.2
    start=$(date +%s%N)
    ip netns exec "$NS" timeout 120 nc -N 10.77.0.2 6001 <"$TMP/in" >"$TMP/got-linux"
    wait "$upid" || { echo "run $i: ucat failed: $(tail -2 "$TMP/ucat.err")" >&2; exit 1; }
    ms=$((($(date +%s%N) - start) / 1000000))
    cmp -s "$TMP/in" "$TMP/got-ucat" || { echo "run $i: ucat received other bytes" >&2; exit 1; }
    cmp -s "$TMP/in" "$TMP/got-linux" || { echo "run $i: Linux received other bytes" >&2; exit 1; }
    last=$(grep ' retransmits' "$TMP/ucat.err" | tail -1)
    urtx=$(grep -oE '[0-9]+ retransmits' <<<"$last" | cut -d' ' -f1)
    # By kind, when this ucat prints them.
    if [[ $last =~ \(([0-9]+)\ fast,\ ([0-9]+)\ timeouts,\ ([0-9]+)\ tail-loss\ probes,\ ([0-9]+)\ D-SACKs ]]; then
        urtx="$urtx (f${BASH_REMATCH[1]} t${BASH_REMATCH[2]} p${BASH_REMATCH[3]} d${BASH_REMATCH[4]})"
    fi
    stat() { ip netns exec "$NS" nstat -az "$1" | awk -v k="$1" '$1 == k {print $2}'; }
    printf '%-4s %-20s %-10s %-16s %-12s %s\n' "$i" "$urtx" "$(stat TcpRetransSegs)" \
        "$(stat TcpExtPAWSEstab)" "$(stat TcpExtTCPDSACKRecv)" "$ms"
    ip netns del "$NS"
done
