#!/usr/bin/env bash
# Build every fuzz target once, then run each for N seconds (default 20).
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET]
#
# Works from any directory. Needs only crates.io (for cargo-fuzz and the
# crates in fuzz/Cargo.lock). The stable toolchain is used with
# RUSTC_BOOTSTRAP=1, since cargo-fuzz passes nightly-only flags (-Zsanitizer).
# Exits non-zero if any target crashes, printing the artifact and how to
# reproduce it. Seeds from fuzz/seeds/<target>/ are copied into a fresh temp
# corpus per run, so the committed seeds are never modified.
set -euo pipefail

SECS="${1:-20}"
if ! [[ "$SECS" =~ ^[0-9]+$ ]] || [ "$SECS" -lt 1 ]; then
    echo "usage: bash fuzz/run.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$FUZZ_DIR/.." && pwd)"
cd "$ROOT"

export RUSTC_BOOTSTRAP=1
# Keep cargo-fuzz's own sanitizer flags; a stray RUSTFLAGS would rebuild everything.
unset RUSTFLAGS

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
echo "== $(cargo fuzz --version)"

# -O: optimised; -a: keep debug assertions and overflow checks (what the
# product's debug builds and tests run with), so arithmetic overflow panics.
BUILD_FLAGS=(-O -a)

echo "== building all fuzz targets"
start=$(date +%s)
cargo fuzz build "${BUILD_FLAGS[@]}"
echo "== build took $(( $(date +%s) - start )) s"

mapfile -t TARGETS < <(cargo fuzz list)
if [ "${#TARGETS[@]}" -eq 0 ]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/snapguard-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

failed=()
for t in "${TARGETS[@]}"; do
    corpus="$WORK/corpus/$t"
    artifacts="$FUZZ_DIR/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "$FUZZ_DIR/seeds/$t" ]; then
        cp -- "$FUZZ_DIR/seeds/$t"/* "$corpus"/ 2>/dev/null || true
    fi
    log="$WORK/$t.log"
    echo "== fuzzing $t for ${SECS}s"
    before=$(find "$artifacts" -type f | sort)
    set +e
    cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "$corpus" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | sed '/^$/d')
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$log" | sed "s/^/   $t: /" || true
    if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
        echo "!! $t FAILED (exit $rc)"
        grep -E -A1 'panicked at' "$log" | head -4 | sed 's/^/   /' || true
        grep -E '^==[0-9]+==ERROR|SUMMARY:' "$log" | head -2 | sed 's/^/   /' || true
        tail -n 40 "$log" >&2
        for a in $new; do
            echo "   artifact: $a"
            echo "   input (hex): $(head -c 512 "$a" | od -An -v -tx1 | tr -d ' \n')"
            echo "   reproduce: (cd $ROOT && RUSTC_BOOTSTRAP=1 cargo fuzz run ${BUILD_FLAGS[*]} $t $a)"
        done
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "== FAILED targets: ${failed[*]}"
    exit 1
fi
echo "== all ${#TARGETS[@]} fuzz targets ran ${SECS}s each without a crash"
