# Shared by the benchmark scripts (sourced, not run): the namespaces they
# create and the processes they start, and cleaning both up on exit — the
# safety rules ("Namespace safety rules" in README.md) in one place.

PIDS=()
NAMESPACES=()
OUT=$(mktemp -d /tmp/ustk-bench.XXXXXX)

cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    for ns in "${NAMESPACES[@]}"; do
        if ip netns list | grep -qw -- "$ns"; then ip netns del "$ns"; fi
    done
    rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# waitfor FILE PATTERN: wait (at most 10 s) for PATTERN in FILE, a tool's
# output; else print the file and exit 1.
waitfor() {
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$(basename "$0"): '$2' not seen in $1:" >&2
    cat "$1" >&2
    exit 1
}

# mkns NAME: a namespace of ours (deleted on exit), loopback up, no IPv6.
mkns() {
    ip netns add "$1"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
}
