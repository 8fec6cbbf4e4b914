#!/usr/bin/env python3
"""Measure SnapGuard's tuning parameters on real data: pack size, average chunk size, zstd level
and compression threads (issue 4: "pack size, chunk size parameters, thread counts: chosen by
measurement and documented").

Data: version 1 = the Linux 6.1 source (Debian's linux-source-6.1) plus RANDOM_MIB of seeded
incompressible bytes, version 2 = the Linux 6.12 source plus the same random file. For every
variant, in a fresh repository: back up v1, back up v2 (the same paths, so v1 is the parent),
then restore v2 into a fresh tmpfs. Records wall time and peak RSS of each step and the
repository size after both versions; prints medians over ROUNDS as a Markdown table.

    SG_PARAMS_ROUNDS=2 SG_PARAMS_RANDOM_MIB=1024 python3 bench/params.py

Needs root (for the tmpfs restore target), the two linux-source packages in /usr/src (the script
installs them with apt-get if missing) and about 12 GiB of free space in SG_PARAMS_DIR.
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.environ.get("SG_PARAMS_DIR", "/var/tmp/sg-params")
ROUNDS = int(os.environ.get("SG_PARAMS_ROUNDS", "2"))
RANDOM_MIB = int(os.environ.get("SG_PARAMS_RANDOM_MIB", "1024"))
SG = os.path.join(ROOT, "target/release/snapguard")

# (label, init options, backup options). The first is the default configuration.
VARIANTS = [
    ("defaults (pack 16 MiB, chunk 1 MiB, zstd 3, threads = cores)", [], []),
    ("pack 4 MiB", ["--pack-size", "4"], []),
    ("pack 8 MiB", ["--pack-size", "8"], []),
    ("pack 32 MiB", ["--pack-size", "32"], []),
    ("chunk 512 KiB", ["--chunk-size", "512"], []),
    ("chunk 2 MiB", ["--chunk-size", "2048"], []),
    ("zstd 1", [], ["--compression", "1"]),
    ("zstd 2", [], ["--compression", "2"]),
    ("zstd 6", [], ["--compression", "6"]),
    ("1 compression thread", [], ["--threads", "1"]),
    ("4 compression threads", [], ["--threads", "4"]),
]


def run(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def measure(cmd):
    """Wall seconds and peak RSS (MiB) of one command (a fresh child each time)."""
    t = time.monotonic()
    # A separate Python process, so that ru_maxrss is this command's alone.
    probe = (
        "import resource,subprocess,sys;"
        "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "sys.exit(r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return time.monotonic() - t, int(out.strip().splitlines()[-1]) / 1024


def du_mib(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(d, f)).st_size
    return total / 1048576


def prepare():
    os.makedirs(WORK, exist_ok=True)
    for pkg in ("linux-source-6.1", "linux-source-6.12"):
        tarball = f"/usr/src/{pkg}.tar.xz"
        if not os.path.exists(tarball):
            run(["apt-get", "install", "-y", "-q", pkg], stdout=subprocess.DEVNULL)
        dest = os.path.join(WORK, "kernels", pkg)
        marker = os.path.join(WORK, "src", ".version")
        in_src = (os.path.exists(marker) and open(marker).read().strip() == pkg
                  and os.path.isdir(os.path.join(WORK, "src", "linux")))
        if not in_src and not os.path.isdir(os.path.join(dest, "linux")):
            shutil.rmtree(dest + ".tmp", ignore_errors=True)
            os.makedirs(dest + ".tmp")
            run(["tar", "-C", dest + ".tmp", "-xf", tarball])
            os.rename(os.path.join(dest + ".tmp", pkg), os.path.join(dest + ".tmp", "linux"))
            os.rename(dest + ".tmp", dest)
    src = os.path.join(WORK, "src")
    os.makedirs(src, exist_ok=True)
    rnd = os.path.join(src, "random.bin")
    if not os.path.exists(rnd) or os.path.getsize(rnd) != RANDOM_MIB << 20:
        with open(rnd + ".tmp", "wb") as out:
            zero = subprocess.Popen(["head", "-c", str(RANDOM_MIB << 20), "/dev/zero"],
                                    stdout=subprocess.PIPE)
            run(["openssl", "enc", "-aes-128-ctr", "-nosalt", "-pbkdf2", "-pass",
                 "pass:snapguard-bench-seed"], stdin=zero.stdout, stdout=out)
            zero.wait()
        os.rename(rnd + ".tmp", rnd)
    return src


def use_version(src, pkg):
    """Put kernel `pkg` at src/linux (by rename)."""
    link = os.path.join(src, "linux")
    marker = os.path.join(src, ".version")
    if os.path.isdir(link):
        cur = open(marker).read().strip()
        if cur == pkg:
            return
        os.rename(link, os.path.join(WORK, "kernels", cur, "linux"))
    os.rename(os.path.join(WORK, "kernels", pkg, "linux"), link)
    with open(marker, "w") as f:
        f.write(pkg)


def one_round(src, init_opts, backup_opts):
    repo = os.path.join(WORK, "repo")
    cache = os.path.join(WORK, "cache")
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, SNAPGUARD_PASSWORD="bench", SNAPGUARD_REPOSITORY=repo,
               SNAPGUARD_CACHE_DIR=cache, SNAPGUARD_CONFIG="/dev/null")
    os.environ.update(env)
    run([SG, "init", "-q", *init_opts], stdout=subprocess.DEVNULL)
    res = {}
    use_version(src, "linux-source-6.1")
    run(["sync"])
    res["v1_s"], res["v1_rss"] = measure([SG, "backup", "-q", *backup_opts, src])
    use_version(src, "linux-source-6.12")
    run(["sync"])
    res["v2_s"], res["v2_rss"] = measure([SG, "backup", "-q", *backup_opts, src])
    res["repo_mib"] = du_mib(repo)
    target = os.path.join(WORK, "restore")
    os.makedirs(target, exist_ok=True)
    run(["mount", "-t", "tmpfs", "-o", "size=8g", "tmpfs", target])
    try:
        res["restore_s"], res["restore_rss"] = measure(
            [SG, "restore", "-q", "latest", "--target", target])
    finally:
        run(["umount", target])
    return res


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (the restore target is a fresh tmpfs)")
    run(["cargo", "build", "--release", "--locked", "-q", "--bin", "snapguard"], cwd=ROOT)
    src = prepare()
    # One untimed round first, so that no variant pays for a cold page cache.
    one_round(src, [], [])
    rows = []
    for label, init_opts, backup_opts in VARIANTS:
        rounds = [one_round(src, init_opts, backup_opts) for _ in range(ROUNDS)]
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        rows.append((label, med))
        print(f"{label}: {med}", file=sys.stderr)
    base = rows[0][1]
    print(f"Medians of {ROUNDS} round(s); v1 = linux 6.1 + {RANDOM_MIB} MiB random, "
          "v2 = linux 6.12 + the same random file; restore of v2 into tmpfs.\n")
    print("| variant | backup v1 s | RSS MiB | backup v2 s | RSS MiB | repo MiB | "
          "restore s | RSS MiB | time v1+v2+restore ×default |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, m in rows:
        total = m["v1_s"] + m["v2_s"] + m["restore_s"]
        base_total = base["v1_s"] + base["v2_s"] + base["restore_s"]
        print(f"| {label} | {m['v1_s']:.1f} | {m['v1_rss']:.0f} | {m['v2_s']:.1f} | "
              f"{m['v2_rss']:.0f} | {m['repo_mib']:.0f} | {m['restore_s']:.1f} | "
              f"{m['restore_rss']:.0f} | {total / base_total:.2f} |")


if __name__ == "__main__":
    main()
