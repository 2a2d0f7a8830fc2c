# shellcheck shell=bash
# The scripts' shared library (sourced, not run): the namespaces they create
# and the processes they start, cleaned up on exit (one trap, a registry of
# what to undo), veth pairs, start-and-wait, and building the tools — the
# safety rules ("Namespace safety rules" in README.md) in one place.
#
#   source "$(dirname "$0")/lib.sh"     (sets ROOT, OUT, T and PATH)
#
# Registry: PIDS (our children: SIGTERM, then reaped), NAMESPACES (ours,
# all named ustk-*: the processes left in them are killed, then the
# namespace is deleted), AT_EXIT (commands, run in order after the children
# are stopped and before the namespaces go). OUT is a
# temporary directory of the script's own, removed on exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$PATH:$HOME/.cargo/bin:/usr/sbin:/sbin"
# The release build's directory (for the callers).
# shellcheck disable=SC2034
T="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ME=$(basename "$0")
PIDS=()
NAMESPACES=()
AT_EXIT=()
OUT=$(mktemp -d "/tmp/ustk-${ME%.sh}.XXXXXX")

cleanup() {
    local p ns c
    for p in "${PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    for c in "${AT_EXIT[@]}"; do
        eval "$c" || true
    done
    for ns in "${NAMESPACES[@]}"; do
        [[ $ns == ustk-* ]] || continue
        if ip netns list | grep -qw -- "$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
            ip netns del "$ns"
        fi
    done
    rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# die MESSAGE: the script's name and MESSAGE on stderr, exit 1.
die() {
    echo "$ME: $*" >&2
    exit 1
}

# need_root: exit unless root (namespaces, TUN).
need_root() {
    [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, TUN)"
}

# build CARGO-TARGET-ARGS...: a quiet release build, with the tools' feature
# (--bin X, --example Y);
# the binaries land in $T (examples in $T/examples).
build() {
    cargo build --release --quiet --features tools --manifest-path "$ROOT/Cargo.toml" "$@" >&2
}

# waitfor FILE PATTERN: wait (at most 10 s) for PATTERN in FILE, a tool's
# output; else print the file and exit 1.
waitfor() {
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$ME: '$2' not seen in $1:" >&2
    cat "$1" >&2
    exit 1
}

# bounded NAME VALUE LO HI: exit 2 (usage) unless VALUE is a whole number
# from LO to HI.
bounded() {
    if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
        echo "$ME: $1: $3..$4" >&2
        exit 2
    fi
}

# serve NS NAME READY CMD...: starts CMD in namespace NS in the background
# (stdout to $OUT/NAME.out, stderr to $OUT/NAME.err; its pid in SERVED and
# in PIDS), then waits for READY on its stderr (waitfor).
serve() {
    local ns=$1 name=$2 ready=$3
    shift 3
    ip netns exec "$ns" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
    SERVED=$!
    PIDS+=("$SERVED")
    waitfor "$OUT/$name.err" "$ready"
}

# stop PID: SIGINT to our child PID (a tool prints its counters and exits),
# SIGKILL after 5 s, then reaped.
stop() {
    kill -INT "$1" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$1" 2>/dev/null; then
        echo "$ME: pid $1 ignored SIGINT for 5 s: SIGKILL" >&2
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

# mkns NAME: a namespace of ours (ustk-*; deleted on exit), loopback up,
# no IPv6.
mkns() {
    [[ $1 == ustk-* ]] || die "namespace $1: ours are named ustk-*"
    ip netns add "$1"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
}

# veth KNS KDEV KCIDR SNS SDEV [SCIDR]: a veth pair from KDEV in namespace
# KNS (address KCIDR) to SDEV in SNS (address SCIDR, or none: a stack's
# raw socket takes it), both up, at the kernel's default offloads.
veth() {
    ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3" dev "$2"
    [[ -n ${6:-} ]] && ip -n "$4" addr add "$6" dev "$5"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}

# tun_peer NS CIDR: the kernel's end of the TUN ustk0 a tool made in NS
# gets CIDR (IPv6 off on it, so it sends nothing unasked).
tun_peer() {
    ip netns exec "$1" sysctl -qw net.ipv6.conf.ustk0.disable_ipv6=1
    ip -n "$1" addr add "$2" dev ustk0
}

# machine: one line on the machine (cores, CPU, kernel).
machine() {
    echo "$(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
}

# revision: the git revision, marked when the tree has local changes.
revision() {
    echo "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ', with local changes')"
}

# ratio A B: A / B with two decimals, "n/a" when B is not positive or A is
# missing (the benchmark tables' ratio columns).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2f", a / b; else print "n/a" }'; }
