#!/usr/bin/env bash
# Runs the cargo-fuzz targets of the frame input path for a bounded time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS is per target (default 60); the targets (default: all of them,
# one after the other) are in fuzz/fuzz_targets/. Needs the nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Crashes land in
# fuzz/artifacts/TARGET/; the corpus grows in fuzz/corpus/TARGET/. Each
# crash becomes a regression test in tests/fuzz_regressions.rs (the input
# goes to tests/fuzz-regressions/). Exit status: non-zero when any target
# found a crash or could not run.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/fuzz" || exit 1
export PATH="$PATH:$HOME/.cargo/bin"

SECONDS_EACH=${1:-60}
shift || true
if ! [[ $SECONDS_EACH =~ ^[0-9]+$ ]] || ((SECONDS_EACH < 1)); then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi
if (($# > 0)); then
    targets=("$@")
else
    targets=()
    for f in fuzz_targets/*.rs; do
        t=$(basename "$f" .rs)
        targets+=("$t")
    done
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz)" >&2
    exit 1
fi

# FUZZ_KEEP_GOING=1: keep fuzzing after a crash (libFuzzer's fork mode),
# collecting every crash in fuzz/artifacts/TARGET/ for the whole time.
extra=()
if [[ ${FUZZ_KEEP_GOING:-0} == 1 ]]; then
    extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "==> $t for ${SECONDS_EACH}s"
    # -timeout: a single input taking over 10 s is a hang, reported as such.
    cargo +nightly fuzz run "$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -len_control=20 -max_len=8192 "${extra[@]}"
    rc=$?
    if compgen -G "artifacts/$t/crash-*" >/dev/null; then
        echo "fuzz.sh: $t has crashes: $(ls artifacts/$t/crash-* | wc -l) in fuzz/artifacts/$t/" >&2
        status=1
    fi
    if ((rc != 0)); then
        echo "fuzz.sh: $t exited with $rc; crashes in fuzz/artifacts/$t/" >&2
        status=1
    fi
done
exit "$status"
