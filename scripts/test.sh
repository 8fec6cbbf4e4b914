#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/integration tests, a short fuzz run.
# Usage: bash scripts/test.sh            (SG_FUZZ_SECONDS=0 skips fuzzing; default 10 s per target)
# Integration tests that need root (devices, tmpfs mounts, other users) skip with a note when
# not run as root; CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
t0=$SECONDS
step() { echo; echo "==> $* ($((SECONDS - t0)) s)"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, property and integration tests)"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
# A closing line in the plain format CI understands, summed over all test binaries.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' target/test-output.txt

if [ "${SG_FUZZ_SECONDS:-10}" != 0 ] && [ -f fuzz/run.sh ]; then
  step "fuzz smoke run (${SG_FUZZ_SECONDS:-10} s per target)"
  bash fuzz/run.sh "${SG_FUZZ_SECONDS:-10}"
fi
step "all tests passed"
