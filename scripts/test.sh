#!/usr/bin/env bash
# The README's test command:
#
#   scripts/test.sh        (as root; from an ordinary account: sudo scripts/test.sh)
#
# Installs the tools (scripts/install-deps.sh), then runs cargo fmt --check,
# cargo clippy (all targets, warnings are errors), cargo doc (warnings are
# errors) and cargo test --release (unit, property, simulation and
# network-namespace tests), all with --all-features so that the async API
# (feature `tokio`) and its tests are built and run. The namespace tests
# need root; without it they print "skipping" and pass, except when
# CI is set, where they fail. Every step runs even after a failure; the exit
# status is non-zero when any failed. Ends with a summary.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
export PATH="$PATH:$HOME/.cargo/bin:/usr/sbin:/sbin"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

LOG=$(mktemp /tmp/ustk-test.XXXXXX)
trap 'rm -f "$LOG"' EXIT

names=()
results=()
times=()
failed=0

step() { # NAME COMMAND...
    local name=$1 start rc
    shift
    printf '\n==> %s\n' "$*"
    start=$SECONDS
    "$@"
    rc=$?
    names+=("$name")
    times+=("$((SECONDS - start))s")
    if ((rc == 0)); then
        results+=("ok")
    else
        results+=("FAILED (exit $rc)")
        failed=1
    fi
    return $rc
}

if ! step install-deps scripts/install-deps.sh; then
    echo "test.sh: cannot install the tools; stopping" >&2
    exit 1
fi
step fmt cargo fmt --all --check
step clippy cargo clippy --all-targets --all-features -- -D warnings
step doc env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
# --release: the namespace tests run the optimised udpecho.
# --no-fail-fast: every test binary runs even after one fails; pipefail:
# the step fails with cargo test, not with tee.
step test bash -c 'set -o pipefail; cargo test --release --all-features --no-fail-fast 2>&1 | tee "$1"' _ "$LOG"

passed=$(grep -E '^test result:' "$LOG" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
nfailed=$(grep -E '^test result:' "$LOG" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk '{s+=$1} END {print s+0}')
ignored=$(grep -E '^test result:' "$LOG" | sed -E 's/.* ([0-9]+) ignored.*/\1/' | awk '{s+=$1} END {print s+0}')
binaries=$(grep -cE '^test result:' "$LOG")

echo
echo "==================== summary ===================="
for i in "${!names[@]}"; do
    printf '  %-13s %-20s %s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
done
echo "  test binaries: $binaries, ignored: $ignored, CI=${CI:-unset}, uid=$(id -u)"
if grep -qE '^test .* \.\.\. FAILED$' "$LOG"; then
    echo "  failing tests:"
    grep -E '^test .* \.\.\. FAILED$' "$LOG" | sed -E 's/^test (.*) \.\.\. FAILED$/    \1/'
fi
echo "================================================="
if ((failed)); then
    echo "RESULT: FAILED"
else
    echo "RESULT: all steps passed"
fi
echo "tests: $passed passed, $nfailed failed"
exit "$failed"
