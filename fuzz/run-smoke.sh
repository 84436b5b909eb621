#!/usr/bin/env bash
# Fuzz smoke: build every target and run each for SECONDS seconds (default 60), one after
# the other, starting from the seed corpora. Prints per target the executions libFuzzer
# reports and whether it found a crash, a timeout or an out-of-memory input; exits 1 if any
# target found one. Installs cargo-fuzz when it is missing; skips (exit 0) when the nightly
# toolchain is missing or cargo-fuzz cannot be installed.
#
#   bash fuzz/run-smoke.sh 60          (make fuzz-smoke SECONDS=60)
#   TARGETS="delta version" bash fuzz/run-smoke.sh 30
set -u

SECS="${1:-60}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGETS="${TARGETS:-delta segment version where_filter dynamodb_event chroma_hnsw chroma_tar}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_FUZZ:-/var/tmp/strata-fuzz-target}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "skipping fuzz smoke: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
# cargo-fuzz itself builds on stable; a machine with nightly but without it gets it here
# (about a minute), or the smoke run is skipped when it cannot be installed.
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    if ! cargo install -q cargo-fuzz --locked; then
        echo "skipping fuzz smoke: cargo-fuzz could not be installed"
        exit 0
    fi
fi

# Address sanitizer off (the decoders are safe Rust; it costs 2-3x throughput); debug
# assertions and overflow checks on (cargo fuzz's default without -O).
FUZZ_FLAGS=(--sanitizer none)

max_len() {
    case "$1" in
        segment) echo 16384 ;;
        dynamodb_event) echo 8192 ;;
        chroma_hnsw | chroma_tar) echo 32768 ;;
        *) echo 4096 ;;
    esac
}

cd "$HERE" || exit 1
echo "building fuzz targets (target dir $CARGO_TARGET_DIR)"
if ! cargo +nightly fuzz build "${FUZZ_FLAGS[@]}" >"$CARGO_TARGET_DIR.build.log" 2>&1; then
    tail -30 "$CARGO_TARGET_DIR.build.log"
    echo "fuzz smoke: build failed"
    exit 1
fi

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/strata-fuzz-smoke.XXXXXX")"
status=0
printf '%-14s %8s %12s %10s %8s  %s\n' target seconds executions exec/s corpus result
for t in $TARGETS; do
    mkdir -p "corpus/$t" "artifacts/$t"
    # libFuzzer writes new inputs to the first corpus dir: use a scratch copy so the
    # smoke run leaves the checked-in seeds alone.
    work="$LOGDIR/corpus-$t"
    mkdir -p "$work"
    cp corpus/"$t"/* "$work"/ 2>/dev/null
    dict=()
    [ -f "$t.dict" ] && dict=("-dict=$HERE/$t.dict")
    log="$LOGDIR/$t.log"
    cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "$work" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -timeout=10 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
    rc=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    corpus="$(find "$work" -type f | wc -l)"
    if grep -qE '^SUMMARY: libFuzzer: (timeout|out-of-memory)|ERROR: libFuzzer: (timeout|out-of-memory)' "$log"; then
        result="TIMEOUT/OOM (see $log)"
        status=1
    elif [ "$rc" -ne 0 ] || grep -q 'Test unit written to' "$log"; then
        result="CRASH (see $log; input in fuzz/artifacts/$t/)"
        status=1
    else
        result="ok, no crashes"
    fi
    printf '%-14s %8s %12s %10s %8s  %s\n' "$t" "$SECS" "${execs:-?}" "${rate:-?}" "$corpus" "$result"
done
echo "logs: $LOGDIR"
exit "$status"
