#!/usr/bin/env bash
# Reading a large file through `snapguard mount` against `snapguard restore` of the same file
# (issue 5: "cp from the mount runs near restore speed"). Backs up one file of pseudo-random
# data (incompressible, so every blob is decrypted and verified at full size), then alternates,
# ROUNDS times:
#   restore   snapguard restore SNAP:/path/big --target DIR
#   mount cp  cp MOUNT/latest/path/big DIR/   (a fresh mount each round, so nothing is cached
#             in the kernel's page cache or in the mount's blob cache)
# and prints wall and CPU seconds of each (CPU: the snapguard process, user + system; for the
# mount, what its process used during the cp) and the ratios mount/restore. The pack files are
# in the page cache for both, so this compares the two read paths, not the disk. Wall times on a
# shared machine are noisy; the CPU ratio is the steadier figure.
#
#   SG_MOUNT_MIB=512 SG_MOUNT_ROUNDS=3 bash bench/mount-read.sh
#   SG_BIN=target/debug/snapguard bash bench/mount-read.sh     # skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${SG_MOUNT_MIB:-512}
ROUNDS=${SG_MOUNT_ROUNDS:-3}
WORK=${SG_MOUNT_DIR:-/var/tmp/sg-mount-read}
if [ -z "${SG_BIN:-}" ]; then
    cargo build --release --locked -q --bin snapguard
    SG_BIN=$PWD/target/release/snapguard
fi
SG=$(realpath "$SG_BIN")

MNT_PID=
cleanup() {
    if [ -n "$MNT_PID" ]; then
        (fusermount3 -u -z "$WORK/mnt" || fusermount -u -z "$WORK/mnt") 2>/dev/null || true
        kill "$MNT_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/mnt" "$WORK/out"
trap cleanup EXIT

export SNAPGUARD_REPOSITORY=$WORK/repo SNAPGUARD_PASSWORD=bench SNAPGUARD_CACHE_DIR=$WORK/cache
export SNAPGUARD_CONFIG=$WORK/config.toml
: > "$SNAPGUARD_CONFIG"
"$SG" -q init --kdf-memory-kib 8192 --kdf-iterations 1 >/dev/null
python3 - "$WORK/src/big" "$MIB" <<'PY'
import random, sys
r = random.Random(5)
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(r.randbytes(1 << 20))
PY
"$SG" -q backup "$WORK/src" >/dev/null
SUM=$(sha256sum < "$WORK/src/big" | cut -d' ' -f1)

# CPU seconds (user + system) a process has used, from /proc/PID/stat.
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}
now() { date +%s.%N; }

printf '| round | restore wall s | restore CPU s | mount cp wall s | mount CPU s | wall ratio | CPU ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$WORK/out"/*
    # Restore: wall and CPU of the whole command (children's rusage).
    read -r rwall rcpu < <(python3 - "$SG" "$WORK/src/big" "$WORK/out/r" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run([sys.argv[1], "-q", "restore", "latest:" + sys.argv[2], "--target", sys.argv[3]], check=True)
wall = time.monotonic() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.2f} {ru.ru_utime + ru.ru_stime:.2f}")
PY
)
    [ "$(sha256sum < "$WORK/out/r/big" | cut -d' ' -f1)" = "$SUM" ] || { echo "restore: wrong content" >&2; exit 1; }
    rm -rf "$WORK/out/r"

    "$SG" -q mount "$WORK/mnt" 2>"$WORK/mount.log" &
    MNT_PID=$!
    for _ in $(seq 1 600); do [ -d "$WORK/mnt/snapshots" ] && break; sleep 0.05; done
    [ -d "$WORK/mnt/snapshots" ] || { cat "$WORK/mount.log" >&2; exit 1; }
    FILE=$WORK/mnt/latest${WORK}/src/big
    c0=$(cpu_of "$MNT_PID"); t0=$(now)
    cp "$FILE" "$WORK/out/m"
    t1=$(now); c1=$(cpu_of "$MNT_PID")
    [ "$(sha256sum < "$WORK/out/m" | cut -d' ' -f1)" = "$SUM" ] || { echo "mount: wrong content" >&2; exit 1; }
    kill -INT "$MNT_PID"; wait "$MNT_PID"; MNT_PID=
    mwall=$(echo "$t1 - $t0" | bc -l); mcpu=$(echo "$c1 - $c0" | bc -l)
    printf '| %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n' "$round" "$rwall" "$rcpu" "$mwall" "$mcpu" \
        "$(echo "$mwall / $rwall" | bc -l)" "$(echo "$mcpu / $rcpu" | bc -l)"
done
echo "($MIB MiB of random data; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg))"
