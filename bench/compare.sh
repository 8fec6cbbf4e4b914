#!/usr/bin/env bash
# End-to-end comparison of SnapGuard with restic, borg and rustic.
#
#   bash bench/compare.sh                 # full run (kernel 6.1 -> 6.12 + 2 GiB random, 3 rounds)
#   SG_BENCH_QUICK=1 bash bench/compare.sh   # small smoke run (kernel subset, 128 MiB random, 1 round)
#
# Settings (environment):
#   SG_BENCH_DIR        scratch directory (default /tmp/sg-bench); repositories, data and
#                       restores live here, all on local disk
#   SG_BENCH_RANDOM_MIB incompressible data in MiB (default 2048; quick: 128)
#   SG_BENCH_ROUNDS     rounds; the report shows medians (default 3; quick: 1)
#   SG_BENCH_MAX_MINUTES  start no further round once the next would likely end past this
#   SG_BENCH_TOOLS      tools to run (default "snapguard restic borg rustic")
#   SG_BENCH_SKIP_INSTALL=1  do not apt-get / cargo install anything, use what is on PATH
#   SG_BENCH_SKIP_BUILD=1    use the existing target/release/snapguard
#   SG_BENCH_RUSTIC_VERSIONS  rustic-rs versions to try in order (default "latest 0.9.5")
#
# Each tool runs with its defaults (only the password and repository are given, via the
# environment); the repository is a fresh local directory per tool and round. Steps per round:
#   first     back up version 1 (linux-source-6.1 + random data)
#   nochange  back up again, nothing changed
#   second    replace the kernel tree by version 2 (linux-source-6.12), back up into the same repo
#   restore   restore the latest snapshot (version 2) into an empty, freshly mounted tmpfs (as
#             root; otherwise an empty directory). Restoring onto the disk measured mostly ext4:
#             creating ~90,000 files right after deleting as many made the kernel's inode
#             allocator (find_inode_bit, recently_deleted) take 10-40 s of system time, varying
#             fourfold between identical runs, for every tool alike.
# GNU time records wall time, user+sys CPU and peak RSS of each step; `du -sb` the repository
# size after both versions. Page cache is warm (data fits in RAM; caches are not dropped).
# Results: bench/results-<date>.json and BENCHMARKS.md in the workspace root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
QUICK=${SG_BENCH_QUICK:-0}
SCRATCH=${SG_BENCH_DIR:-/tmp/sg-bench}
if [ "$QUICK" = 1 ]; then
    RANDOM_MIB=${SG_BENCH_RANDOM_MIB:-128}
    ROUNDS=${SG_BENCH_ROUNDS:-1}
else
    RANDOM_MIB=${SG_BENCH_RANDOM_MIB:-2048}
    ROUNDS=${SG_BENCH_ROUNDS:-3}
fi
TOOLS=${SG_BENCH_TOOLS:-"snapguard restic borg rustic"}
RUSTIC_VERSIONS=${SG_BENCH_RUSTIC_VERSIONS:-"latest 0.9.5"}
V1_PKG=linux-source-6.1
V2_PKG=linux-source-6.12
PASSWORD=snapguard-bench-password

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$SCRATCH"
NOTES="$SCRATCH/notes.txt"
: > "$NOTES"
note() { log "$*"; printf '%s\n' "$*" >> "$NOTES"; }

# ---------------------------------------------------------------- tools
apt_install() {
    [ "${SG_BENCH_SKIP_INSTALL:-0}" = 1 ] && return 0
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$SCRATCH/apt.log" 2>&1; then
        apt-get update -q >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$SCRATCH/apt.log" 2>&1
    fi
}

apt_install time restic borgbackup "$V1_PKG" "$V2_PKG" xz-utils openssl
[ -x /usr/bin/time ] || { log "GNU time (/usr/bin/time) is missing"; exit 1; }

RUSTIC=""
find_rustic() {
    if command -v rustic >/dev/null 2>&1; then RUSTIC=$(command -v rustic); return 0; fi
    if [ -x "$HOME/.cargo/bin/rustic" ]; then RUSTIC="$HOME/.cargo/bin/rustic"; return 0; fi
    return 1
}
if [[ " $TOOLS " == *" rustic "* ]] && ! find_rustic && [ "${SG_BENCH_SKIP_INSTALL:-0}" != 1 ]; then
    # The default features (tui, webdav, opentelemetry, prometheus, jq) do not touch the
    # backup path and roughly double the build; leave them out.
    for v in $RUSTIC_VERSIONS; do
        spec=rustic-rs; [ "$v" != latest ] && spec="rustic-rs@$v"
        log "cargo install --locked --no-default-features $spec (log: $SCRATCH/rustic-install.log)"
        if timeout 2400 cargo install --locked --no-default-features "$spec" >"$SCRATCH/rustic-install.log" 2>&1; then
            break
        fi
        note "rustic: \`cargo install --locked --no-default-features $spec\` failed: $(grep -m1 -E '^error' "$SCRATCH/rustic-install.log" || tail -1 "$SCRATCH/rustic-install.log")"
    done
    find_rustic || true
fi
if [[ " $TOOLS " == *" rustic "* ]] && [ -z "$RUSTIC" ]; then
    note "rustic could not be installed with this toolchain; skipped."
    TOOLS=${TOOLS//rustic/}
fi

if [ "${SG_BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release -p snapguard"
    (cd "$ROOT" && cargo build --release -q -p snapguard)
fi
SNAPGUARD="$ROOT/target/release/snapguard"

version_of() {
    case $1 in
        snapguard) "$SNAPGUARD" --version ;;
        restic) restic version | head -1 ;;
        borg) borg --version ;;
        rustic) "$RUSTIC" --version ;;
    esac
}

# ---------------------------------------------------------------- data
# Extract each kernel once into $SCRATCH/full/kernel/<pkg> (quick mode copies a subset to
# $SCRATCH/quick/kernel/<pkg>); the backup source is $SCRATCH/{full,quick}/src with
# `linux/` (moved in from the extracted version by rename, so switching costs nothing and
# file inodes stay stable within a round) and `random.bin`.
tree_of() { # MODE PKG: where that tree is now (it may be moved into MODE/src), or nothing
    if [ -d "$SCRATCH/$1/kernel/$2/linux" ]; then echo "$SCRATCH/$1/kernel/$2/linux"
    elif [ "$(cat "$SCRATCH/$1/src/.version" 2>/dev/null)" = "$2" ] && [ -d "$SCRATCH/$1/src/linux" ]; then
        echo "$SCRATCH/$1/src/linux"
    fi
}
extract_kernel() {
    local pkg=$1
    local full="$SCRATCH/full/kernel/$pkg" quick="$SCRATCH/quick/kernel/$pkg"
    if [ -z "$(tree_of full "$pkg")" ] && { [ "$QUICK" != 1 ] || [ -z "$(tree_of quick "$pkg")" ]; }; then
        local tarball=/usr/src/$pkg.tar.xz
        [ -f "$tarball" ] || { log "missing $tarball"; exit 1; }
        log "extracting $tarball"
        rm -rf "$full.tmp"; mkdir -p "$full.tmp"
        tar -C "$full.tmp" -xf "$tarball"
        mv "$full.tmp"/linux-source-* "$full.tmp/linux"
        mv "$full.tmp" "$full"
    fi
    if [ "$QUICK" = 1 ] && [ -z "$(tree_of quick "$pkg")" ]; then
        # A subset of the kernel: a few subtrees, about a tenth of it.
        local src; src=$(tree_of full "$pkg")
        rm -rf "$quick.tmp"; mkdir -p "$quick.tmp/linux"
        for d in fs kernel net/ipv4 include Documentation/admin-guide; do
            mkdir -p "$quick.tmp/linux/$(dirname "$d")"
            cp -a "$src/$d" "$quick.tmp/linux/$d"
        done
        mv "$quick.tmp" "$quick"
    fi
}
if [ "$QUICK" = 1 ]; then SCRATCH_DATA="$SCRATCH/quick"; else SCRATCH_DATA="$SCRATCH/full"; fi
extract_kernel "$V1_PKG"
extract_kernel "$V2_PKG"
SCRATCH_SAVED=$SCRATCH; SCRATCH=$SCRATCH_DATA; mkdir -p "$SCRATCH"
mkdir -p "$SCRATCH/src"
if [ ! -f "$SCRATCH/src/random.bin" ] || [ "$(stat -c %s "$SCRATCH/src/random.bin")" != $((RANDOM_MIB * 1048576)) ]; then
    log "generating $RANDOM_MIB MiB of incompressible data (AES-128-CTR keystream, fixed key)"
    head -c $((RANDOM_MIB * 1048576)) /dev/zero \
        | openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:snapguard-bench-seed > "$SCRATCH/src/random.bin.tmp"
    mv "$SCRATCH/src/random.bin.tmp" "$SCRATCH/src/random.bin"
fi
SCRATCH=$SCRATCH_SAVED
SRC="$SCRATCH_DATA/src"
KDIR="$SCRATCH_DATA/kernel"

use_version() { # 1 or 2: put that kernel at $SRC/linux
    local want=$V1_PKG; [ "$1" = 2 ] && want=$V2_PKG
    if [ -d "$SRC/linux" ]; then
        local cur; cur=$(cat "$SRC/.version")
        [ "$cur" = "$want" ] && return 0
        mv "$SRC/linux" "$KDIR/$cur/linux"
    fi
    mv "$KDIR/$want/linux" "$SRC/linux"
    echo "$want" > "$SRC/.version"
}
# Recover from an interrupted run.
if [ -d "$SRC/linux" ] && [ ! -f "$SRC/.version" ]; then log "unknown $SRC/linux; remove $SCRATCH_DATA"; exit 1; fi

data_bytes() { du -sb --apparent-size "$SRC" | cut -f1; }
data_files() { find "$SRC" -type f | wc -l; }

# ---------------------------------------------------------------- runs
RAW="$SCRATCH/raw.tsv"
: > "$RAW"
export SNAPGUARD_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD BORG_PASSPHRASE=$PASSWORD RUSTIC_PASSWORD=$PASSWORD
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=YES
export XDG_CACHE_HOME="$SCRATCH/cache" XDG_CONFIG_HOME="$SCRATCH/config" XDG_DATA_HOME="$SCRATCH/share"
export BORG_BASE_DIR="$SCRATCH/borgbase"

# run TOOL ROUND STEP BYTES -- command...
run() {
    local tool=$1 round=$2 step=$3 bytes=$4; shift 5
    local tf="$SCRATCH/time.out" out="$SCRATCH/logs/$tool-$round-$step.log"
    mkdir -p "$SCRATCH/logs"
    if ! /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$out" 2>&1; then
        log "$tool $step failed (round $round), see $out"; tail -5 "$out" >&2
        printf '%s\t%s\t%s\tFAILED\n' "$tool" "$round" "$step" >> "$RAW"
        return 1
    fi
    read -r wall user sys rss_kib < <(tail -1 "$tf")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$round" "$step" "$wall" "$user" "$sys" "$rss_kib" "$bytes" >> "$RAW"
    log "$(printf '%-9s r%s %-8s wall %6ss  cpu %6ss  rss %6d MiB' "$tool" "$round" "$step" "$wall" "$(echo "$user + $sys" | bc)" $((rss_kib / 1024)))"
}

backup_cmd() { # TOOL NAME
    case $1 in
        snapguard) echo "$SNAPGUARD" backup "$SRC" ;;
        restic) echo restic backup "$SRC" ;;
        borg) echo borg create "::$2" "$SRC" ;;
        rustic) echo "$RUSTIC" backup "$SRC" ;;
    esac
}

one_round() {
    local tool=$1 round=$2 repo="$SCRATCH/repos/$1" target="$SCRATCH/restore/$1"
    rm -rf "$repo" "$target" "$XDG_CACHE_HOME" "$BORG_BASE_DIR"
    mkdir -p "$SCRATCH/repos" "$SCRATCH/logs" "$target"
    export SNAPGUARD_REPOSITORY=$repo RESTIC_REPOSITORY=$repo BORG_REPO=$repo RUSTIC_REPOSITORY=$repo
    use_version 1
    local b1; b1=$(data_bytes)
    case $tool in
        snapguard) "$SNAPGUARD" init -q >"$SCRATCH/logs/$tool-init.log" 2>&1 ;;
        restic) restic init >"$SCRATCH/logs/$tool-init.log" 2>&1 ;;
        borg) borg init -e repokey >"$SCRATCH/logs/$tool-init.log" 2>&1 ;;
        rustic) "$RUSTIC" init >"$SCRATCH/logs/$tool-init.log" 2>&1 ;;
    esac
    sync
    # shellcheck disable=SC2046
    run "$tool" "$round" first "$b1" -- $(backup_cmd "$tool" v1) && sync
    # shellcheck disable=SC2046
    run "$tool" "$round" nochange "$b1" -- $(backup_cmd "$tool" v1b) && sync
    use_version 2
    local b2; b2=$(data_bytes)
    # shellcheck disable=SC2046
    run "$tool" "$round" second "$b2" -- $(backup_cmd "$tool" v2) && sync
    local size; size=$(du -sb "$repo" | cut -f1)
    printf '%s\t%s\trepo_size\t%s\n' "$tool" "$round" "$size" >> "$RAW"
    log "$tool r$round repository after both versions: $((size / 1048576)) MiB"
    local mounted=0
    if [ "$(id -u)" = 0 ] && mount -t tmpfs -o "size=$((b2 * 2 / 1048576 + 256))m" tmpfs "$target"; then
        mounted=1
    fi
    case $tool in
        snapguard) run "$tool" "$round" restore "$b2" -- "$SNAPGUARD" restore latest --target "$target" ;;
        restic) run "$tool" "$round" restore "$b2" -- restic restore latest --target "$target" ;;
        borg) run "$tool" "$round" restore "$b2" -- sh -c 'cd "$1" && exec borg extract ::v2' sh "$target" ;;
        rustic) run "$tool" "$round" restore "$b2" -- "$RUSTIC" restore latest "$target" ;;
    esac
    sync
    # Sanity check: the restore holds as many bytes as the source.
    local restored; restored=$(du -sb --apparent-size "$target" | cut -f1)
    printf '%s\t%s\trestored_bytes\t%s\t%s\n' "$tool" "$round" "$restored" "$b2" >> "$RAW"
    if [ "$restored" -lt $((b2 * 99 / 100)) ]; then
        log "WARNING: $tool restored $restored bytes of $b2"
    fi
    if [ "$mounted" = 1 ]; then umount "$target"; fi
    rm -rf "$target" "$repo"
}

trap 'for m in "$SCRATCH"/restore/*; do mountpoint -q "$m" && umount "$m"; done; true' EXIT
log "tools: $TOOLS; rounds: $ROUNDS; random data: $RANDOM_MIB MiB; scratch: $SCRATCH"
START=$SECONDS
DONE_ROUNDS=0
for round in $(seq 1 "$ROUNDS"); do
    if [ -n "${SG_BENCH_MAX_MINUTES:-}" ] && [ "$DONE_ROUNDS" -gt 0 ]; then
        per=$(( (SECONDS - START) / DONE_ROUNDS ))
        if [ $(( SECONDS - START + per )) -gt $(( SG_BENCH_MAX_MINUTES * 60 )) ]; then
            note "stopped after $DONE_ROUNDS of $ROUNDS rounds to stay within SG_BENCH_MAX_MINUTES=$SG_BENCH_MAX_MINUTES."
            break
        fi
    fi
    for tool in $TOOLS; do
        one_round "$tool" "$round"
    done
    DONE_ROUNDS=$round
done
ROUNDS=$DONE_ROUNDS
use_version 1

# ---------------------------------------------------------------- report
META="$SCRATCH/meta.json"
{
    use_version 1; v1_bytes=$(data_bytes); v1_files=$(data_files)
    use_version 2; v2_bytes=$(data_bytes); v2_files=$(data_files)
    use_version 1
    printf '{\n'
    printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '  "quick": %s,\n' "$([ "$QUICK" = 1 ] && echo true || echo false)"
    printf '  "rounds": %s,\n' "$ROUNDS"
    printf '  "random_mib": %s,\n' "$RANDOM_MIB"
    printf '  "v1": {"name": "%s %s + random.bin", "bytes": %s, "files": %s},\n' "$V1_PKG" "$(dpkg-query -W -f '${Version}' "$V1_PKG")" "$v1_bytes" "$v1_files"
    printf '  "v2": {"name": "%s %s + random.bin", "bytes": %s, "files": %s},\n' "$V2_PKG" "$(dpkg-query -W -f '${Version}' "$V2_PKG")" "$v2_bytes" "$v2_files"
    printf '  "cpu": "%s",\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    printf '  "cores": %s,\n' "$(nproc)"
    printf '  "ram": "%s",\n' "$(free -h | awk '/^Mem:/ {print $2}')"
    printf '  "kernel": "%s",\n' "$(uname -r)"
    printf '  "filesystem": "%s",\n' "$(df -T "$SCRATCH" | awk 'NR==2 {print $2 " on " $1}')"
    printf '  "versions": {'
    sep=""
    for tool in $TOOLS; do printf '%s"%s": "%s"' "$sep" "$tool" "$(version_of "$tool" | tr -d '"')"; sep=", "; done
    printf '},\n'
    printf '  "notes": %s\n' "$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read().splitlines()))' "$NOTES")"
    printf '}\n'
} > "$META"
python3 "$HERE/report.py" --meta "$META" --raw "$RAW" \
    --json "$HERE/results-$(date +%Y-%m-%d).json" --markdown "$ROOT/BENCHMARKS.md"
log "wrote $HERE/results-$(date +%Y-%m-%d).json and $ROOT/BENCHMARKS.md"
