#!/usr/bin/env bash
# Peak memory of SnapGuard as the repository's blob count grows (issue 4: "memory that does not
# grow with the repository"). For each count N (default 0, 1 million, 10 million) it creates a
# repository, fills its index with N synthetic entries (crates/engine/examples/synth_index.rs;
# the packs they name do not exist), then measures wall time and peak RSS of:
#   backup (cold)   the first backup of a small tree: builds the on-disk index cache
#   backup (warm)   a second backup after a change: reuses the cache
#   restore         restoring the latest snapshot
#   backup --no-cache  the same backup with the whole index in memory (the old behaviour)
# and prints a Markdown table. Needs about 3 GiB of disk per 10 million blobs. The repositories
# use a light Argon2 setting (8 MiB) so that the key derivation's default 64 MiB does not mask
# the index's share of peak RSS.
#
#   SG_RSS_COUNTS="0 1000000 10000000" SG_RSS_DIR=/var/tmp/sg-index-rss bash bench/index-rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${SG_RSS_COUNTS:-"0 1000000 10000000"}
WORK=${SG_RSS_DIR:-/var/tmp/sg-index-rss}

cargo build --release --locked -q --bin snapguard
cargo build --release --locked -q -p snapguard-engine --example synth_index
SG=$PWD/target/release/snapguard
SYNTH=$PWD/target/release/examples/synth_index

rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# Run a command; print "<peak RSS MiB> <wall s>" of it.
measure() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.monotonic() - t
if r.returncode != 0:
    sys.stderr.write(r.stderr.decode(errors="replace"))
    sys.exit(f"failed: {' '.join(sys.argv[1:])}")
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{rss:.0f} {wall:.1f}")
PY
}

# A small source tree: 300 files of 64 KiB of seeded random bytes in 10 directories.
python3 - "$WORK/data" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(4)
for d in range(10):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(30):
        with open(f"{root}/d{d}/f{f}", "wb") as out:
            out.write(rng.randbytes(65536))
PY

export SNAPGUARD_PASSWORD=rss SNAPGUARD_CONFIG=/dev/null
echo "| indexed blobs | step | peak RSS MiB | wall s | index cache on disk MiB |"
echo "| ---: | --- | ---: | ---: | ---: |"
for n in $COUNTS; do
    export SNAPGUARD_REPOSITORY=$WORK/repo-$n SNAPGUARD_CACHE_DIR=$WORK/cache-$n
    # A light key-derivation setting, so that Argon2's 64 MiB working set (freed before the
    # index is loaded, but counted in peak RSS) does not hide what the index costs.
    "$SG" init -q --kdf-memory-kib 8192 --kdf-iterations 1 >/dev/null
    "$SYNTH" "$SNAPGUARD_REPOSITORY" rss "$n" 2>/dev/null
    cache_mib() { du -sm "$SNAPGUARD_CACHE_DIR" 2>/dev/null | cut -f1; }
    read -r rss wall < <(measure "$SG" backup -q "$WORK/data")
    echo "| $n | backup (cold: builds the index cache) | $rss | $wall | $(cache_mib) |"
    echo "changed" > "$WORK/data/d0/new-file"
    read -r rss wall < <(measure "$SG" backup -q "$WORK/data")
    echo "| $n | backup (warm: cache reused) | $rss | $wall | $(cache_mib) |"
    rm -rf "$WORK/restore"
    read -r rss wall < <(measure "$SG" restore -q latest --target "$WORK/restore")
    echo "| $n | restore (warm) | $rss | $wall | $(cache_mib) |"
    echo "changed again" > "$WORK/data/d1/new-file"
    read -r rss wall < <(measure "$SG" backup -q --no-cache "$WORK/data")
    echo "| $n | backup --no-cache (index in memory) | $rss | $wall | - |"
    rm -rf "$SNAPGUARD_REPOSITORY" "$SNAPGUARD_CACHE_DIR" "$WORK/restore"
done
