#!/usr/bin/env bash
# Incremental backups of a large btrfs subvolume: change detection by btrfs generation (the
# default) against comparing every file with `stat` (--no-btrfs-generations), both reading a
# read-only snapshot. Issue 6: "files untouched since the parent's generation are not even
# stat-compared, with a measured speed-up on a large tree".
#
# Makes a btrfs filesystem on a loop file, copies a source tree into a subvolume (default: the
# Linux 6.1 source from Debian's linux-source-6.1, as bench/compare.sh unpacks it), takes a first
# backup, then for each round changes 20 files in 20 directories and backs up once with each
# method, alternating, with the page cache dropped before each backup (cold) and again without
# dropping it (warm). restic (if installed) backs up the same tree in the same rounds, for
# comparison (it compares every file with its parent by stat, like --no-btrfs-generations).
# Prints a Markdown table of median wall times and ratios. Needs root.
#
#   SG_GEN_SRC=/tmp/sg-bench/full/kernel/linux-source-6.1 SG_GEN_ROUNDS=3 bash bench/btrfs-generations.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${SG_GEN_SRC:-/tmp/sg-bench/full/kernel/linux-source-6.1}
ROUNDS=${SG_GEN_ROUNDS:-3}
WORK=${SG_GEN_DIR:-/var/tmp/sg-btrfs-gen}
SG=${SG_BIN:-}
if [ -z "$SG" ]; then
    cargo build --release --locked -q --bin snapguard
    SG=$PWD/target/release/snapguard
fi
[ -d "$SRC" ] || { echo "no source tree at $SRC (set SG_GEN_SRC)" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK/mnt"
LOOP=""
cleanup() {
    umount "$WORK/mnt" 2>/dev/null || umount -l "$WORK/mnt" 2>/dev/null || true
    [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
size=$(( $(du -sm "$SRC" | cut -f1) * 3 + 1024 ))
truncate -s "${size}M" "$WORK/fs.img"
mkfs.btrfs -q -f "$WORK/fs.img" >/dev/null 2>&1
LOOP=$(losetup -f --show "$WORK/fs.img")
mount "$LOOP" "$WORK/mnt"
DATA=$WORK/mnt/data
btrfs -q subvolume create "$DATA"
cp -a "$SRC/." "$DATA/"
sync
files=$(find "$DATA" -type f | wc -l)
dirs=$(find "$DATA" -type d | wc -l)

export SNAPGUARD_REPOSITORY=$WORK/repo SNAPGUARD_PASSWORD=gen SNAPGUARD_CACHE_DIR=$WORK/cache SNAPGUARD_CONFIG=/dev/null
"$SG" init -q --kdf-memory-kib 8192 --kdf-iterations 1
"$SG" backup -q "$DATA" >/dev/null
methods="generations stat"
if command -v restic >/dev/null; then
    export RESTIC_REPOSITORY=$WORK/restic RESTIC_PASSWORD=gen
    restic init -q >/dev/null
    restic backup -q "$DATA" >/dev/null
    methods="$methods restic"
fi

# 20 files in 20 different directories, chosen once.
mapfile -t victims < <(find "$DATA" -type f -name '*.c' | awk -F/ '{d=$0; sub("/[^/]*$","",d); if (!(d in seen)) {seen[d]=1; print}}' | head -20)

# Run one backup; print its wall time in seconds.
timed() {
    python3 - "$@" <<'PY'
import subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
if r.returncode != 0:
    sys.stderr.write(r.stderr.decode(errors="replace"))
    sys.exit(f"failed: {' '.join(sys.argv[1:])}")
print(f"{time.monotonic() - t:.3f}")
PY
}

declare -A T
n=0
for cache in cold warm; do
    for r in $(seq 1 "$ROUNDS"); do
        for method in $methods; do
            n=$((n + 1))
            for v in "${victims[@]}"; do printf '/* change %s */\n' "$n" >>"$v"; done
            flag=""
            [ "$method" = stat ] && flag=--no-btrfs-generations
            if [ "$cache" = cold ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
            if [ "$method" = restic ]; then
                t=$(timed restic backup -q "$DATA")
            else
                t=$(timed "$SG" backup -q $flag "$DATA")
            fi
            T[$cache-$method]+="$t "
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "Tree: $SRC ($files files, $dirs directories) on btrfs; 20 files changed per backup; $ROUNDS rounds; median wall seconds."
echo
echo "| page cache | SnapGuard, stat every file | SnapGuard, btrfs generations | speed-up | restic 0.14 | restic / generations |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for cache in cold warm; do
    s=$(echo "${T[$cache-stat]}" | median)
    g=$(echo "${T[$cache-generations]}" | median)
    r=$(echo "${T[$cache-restic]:-}" | median)
    if [ -n "$r" ]; then rr=$(python3 -c "print(f'{$r/$g:.1f}x')"); else r="-"; rr="-"; fi
    echo "| $cache | $s | $g | $(python3 -c "print(f'{$s/$g:.1f}x')") | $r | $rr |"
done
