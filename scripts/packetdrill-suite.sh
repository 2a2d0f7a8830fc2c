#!/usr/bin/env bash
# Runs packetdrill scripts against ustack through the shared-object
# interface (target/release/libustack_packetdrill.so) and prints a pass
# rate per directory.
#
#   scripts/packetdrill-suite.sh PACKETDRILL SUITE_DIR [DIR...]
#
# PACKETDRILL: a packetdrill binary you built from its public source
#   (gtests/net/packetdrill: ./configure && make; needs bison and flex).
# SUITE_DIR: a checkout of the FreeBSD TCP test suite (tcp-testsuite).
# DIR: its directories to run (default: state-event-engine snippets
#   rcv-data-segments snd-syn socket-api rcv-icmp).
#
# Neither packetdrill nor the suite is fetched or built by this script.
# The IPv4 scripts run (IPV6=1: the IPv6 ones). Each script is
# first rewritten by scripts/packetdrill-prep.py (the judging rules in
# CONFORMANCE.md) and runs with a 20 s limit. Environment:
#   SO_FLAGS   stack settings (default: FreeBSD's buffer sizes); each
#              script's FreeBSD sysctls that have an equivalent are added
#              after them (see scripts/packetdrill-prep.py)
#   RESULTS    file for one "dir<TAB>script<TAB>PASS|FAIL<TAB>reason" line each
#   JOBS       scripts run at once (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
pd=$(realpath "${1:?packetdrill binary}")
suite=$(realpath "${2:?tcp-testsuite directory}")
shift 2
dirs=("$@")
((${#dirs[@]})) || dirs=(state-event-engine snippets rcv-data-segments snd-syn socket-api rcv-icmp)
so_flags=${SO_FLAGS:-rcvbuf=65536 sndbuf=32768}
# IPV6=1: the IPv6 scripts (*ipv6*) instead of the IPv4 ones.
if [[ ${IPV6:-0} == 1 ]]; then
    name_filter=(-name '*ipv6*')
else
    name_filter=('!' -name '*ipv6*')
fi
jobs=${JOBS:-2}

cargo build --release -p ustack-packetdrill >&2
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
so="$target/release/libustack_packetdrill.so"
[[ -f $so ]] || { echo "no $so" >&2; exit 1; }

work=$(mktemp -d /tmp/ustk-pd.XXXXXX)
trap 'rm -rf "$work"' EXIT
results=${RESULTS:-$work/results.tsv}
: >"$results"

run_one() {
    local dir=$1 f=$2 name out rc reason
    name=${f#"$suite/$dir/"}
    local tmp="$work/${name//\//_}"
    local extra
    extra=$(python3 scripts/packetdrill-prep.py "$f" "$tmp")
    local local_ip=192.168.0.2
    [[ $name == *ipv6* ]] && local_ip=fd3d:fa7b:d17d::2
    out=$(cd "$(dirname "$f")" && timeout 20 "$pd" --so_filename="$so" --local_ip="$local_ip" \
        --so_flags="$so_flags $extra" "$tmp" 2>&1) && rc=0 || rc=$?
    if ((rc == 0)); then
        printf '%s\t%s\tPASS\t\n' "$dir" "$name"
    else
        ((rc == 124)) && reason="timeout" || reason=$(printf '%s' "$out" | grep -v '^$' | tail -1 | sed "s|$tmp|$name|" | tr '\t' ' ')
        printf '%s\t%s\tFAIL\t%s\n' "$dir" "$name" "$reason"
    fi
}
export -f run_one
export pd so so_flags suite work

for d in "${dirs[@]}"; do
    find "$suite/$d" -name '*.pkt' "${name_filter[@]}" | sort | while read -r f; do printf '%s\0%s\0' "$d" "$f"; done
done | xargs -0 -n2 -P "$jobs" bash -c 'run_one "$0" "$1"' >>"$results"

printf '%-22s %6s %6s %7s\n' directory passed total rate
total_p=0 total_n=0
for d in "${dirs[@]}"; do
    p=$(awk -F'\t' -v d="$d" '$1==d && $3=="PASS"' "$results" | wc -l)
    n=$(awk -F'\t' -v d="$d" '$1==d' "$results" | wc -l)
    total_p=$((total_p + p)) total_n=$((total_n + n))
    printf '%-22s %6d %6d %6.1f%%\n' "$d" "$p" "$n" "$(python3 -c "print(100*$p/max($n,1))")"
done
printf '%-22s %6d %6d %6.1f%%\n' all "$total_p" "$total_n" "$(python3 -c "print(100*$total_p/max($total_n,1))")"
