#!/usr/bin/env python3
"""Turn bench/compare.sh's raw measurements into a small JSON file and BENCHMARKS.md.

raw.tsv lines: tool, round, step, wall_s, user_s, sys_s, max_rss_kib, bytes
           or: tool, round, repo_size, bytes
           or: tool, round, restored_bytes, restored, expected
           or: tool, round, step, FAILED
Everything between "<!-- analysis -->" and the end of an existing BENCHMARKS.md is kept, so the
hand-written analysis survives a re-run.
"""
import argparse
import json
import statistics
from collections import defaultdict

STEPS = ["first", "nochange", "second", "restore"]
STEP_NAMES = {
    "first": "first backup (v1)",
    "nochange": "no-change backup",
    "second": "second version (v2)",
    "restore": "full restore (v2)",
}
MARK = "<!-- analysis -->"


def load(raw_path):
    runs = defaultdict(lambda: defaultdict(list))  # tool -> step -> [dict]
    repo = defaultdict(list)
    failed = defaultdict(set)
    tools = []
    with open(raw_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            tool, _round, step = parts[0], parts[1], parts[2]
            if tool not in tools:
                tools.append(tool)
            if parts[3] == "FAILED":
                failed[tool].add(step)
            elif step == "repo_size":
                repo[tool].append(int(parts[3]))
            elif step in STEPS:
                wall, user, sys_, rss, nbytes = parts[3:8]
                runs[tool][step].append(
                    {
                        "wall": float(wall),
                        "cpu": float(user) + float(sys_),
                        "user": float(user),
                        "sys": float(sys_),
                        "rss_mib": int(rss) / 1024,
                        "bytes": int(nbytes),
                    }
                )
    return tools, runs, repo, failed


def med(xs):
    return statistics.median(xs) if xs else None


def summarize(tools, runs, repo, failed):
    out = {}
    for tool in tools:
        t = {}
        for step in STEPS:
            rs = runs[tool][step]
            if not rs:
                continue
            wall = med([r["wall"] for r in rs])
            t[step] = {
                "wall_s": round(wall, 2),
                "cpu_s": round(med([r["cpu"] for r in rs]), 2),
                "user_s": round(med([r["user"] for r in rs]), 2),
                "sys_s": round(med([r["sys"] for r in rs]), 2),
                "peak_rss_mib": round(med([r["rss_mib"] for r in rs]), 1),
                "mib_per_s": round(rs[0]["bytes"] / 1048576 / wall, 1) if wall > 0 else None,
                "wall_all_s": [r["wall"] for r in rs],
            }
        if repo[tool]:
            t["repo_mib"] = round(med(repo[tool]) / 1048576, 1)
        if failed[tool]:
            t["failed"] = sorted(failed[tool])
        out[tool] = t
    return out


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def markdown(meta, res):
    base = res.get("restic", {})
    lines = []
    q = " (QUICK mode: small data set)" if meta["quick"] else ""
    lines.append("# Benchmarks")
    lines.append("")
    lines.append(
        f"End-to-end comparison produced by `bash bench/compare.sh` on {meta['date'][:10]}{q}. "
        f"Medians of {meta['rounds']} round(s); raw numbers in `bench/results-{meta['date'][:10]}.json`. "
        "Micro-benchmarks: `cargo bench -p snapguard-crypto`, `-p snapguard-engine`, `-p snapguard-chunker`."
    )
    lines.append("")
    lines.append("## Machine")
    lines.append("")
    lines.append(f"- CPU: {meta['cpu']}, {meta['cores']} cores (shared VM; other builds may run at the same time)")
    lines.append(f"- RAM: {meta['ram']}; kernel {meta['kernel']}; filesystem {meta['filesystem']}")
    lines.append("- Tools: " + "; ".join(f"{v}" for v in meta["versions"].values()))
    lines.append(
        f"- Data v1: {meta['v1']['name']} ({meta['random_mib']} MiB), "
        f"{meta['v1']['bytes'] / 1048576:.0f} MiB in {meta['v1']['files']} files; "
        f"v2: {meta['v2']['name']}, {meta['v2']['bytes'] / 1048576:.0f} MiB in {meta['v2']['files']} files. "
        "The random data is the same file in both versions."
    )
    lines.append(
        "- Each tool with its defaults (password and repository from the environment; borg with "
        "`init -e repokey`, its default lz4 compression); repositories on the same local disk; "
        "page cache warm (the data fits in RAM); restores into a freshly mounted tmpfs, so that "
        "they measure the tools rather than ext4's inode allocator."
    )
    for n in meta.get("notes", []):
        lines.append(f"- Note: {n}")
    lines.append("")
    lines.append("## Results")
    lines.append("")
    lines.append(
        "Wall time, throughput, CPU time (user+sys) and peak RSS per step; "
        "`×restic` is restic's wall time / this tool's (higher is faster) and this tool's RSS / restic's."
    )
    lines.append("")
    lines.append("| tool | step | wall s | MiB/s | ×restic speed | CPU s (user+sys) | peak RSS MiB | RSS ×restic |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for tool, t in res.items():
        for step in STEPS:
            s = t.get(step)
            if s is None:
                lines.append(f"| {tool} | {STEP_NAMES[step]} | failed | | | | | |")
                continue
            b = base.get(step, {})
            sp = ratio(b.get("wall_s"), s["wall_s"])
            rr = ratio(s["peak_rss_mib"], b.get("peak_rss_mib"))
            lines.append(
                f"| {tool} | {STEP_NAMES[step]} | {s['wall_s']:.1f} | {fmt(s['mib_per_s'])} | {fmt(sp, 2)} | "
                f"{s['cpu_s']:.1f} ({s['user_s']:.1f}+{s['sys_s']:.1f}) | {s['peak_rss_mib']:.0f} | {fmt(rr, 2)} |"
            )
    lines.append("")
    lines.append("Repository size after both versions:")
    lines.append("")
    lines.append("| tool | MiB | ×restic |")
    lines.append("| --- | ---: | ---: |")
    for tool, t in res.items():
        r = ratio(t.get("repo_mib"), base.get("repo_mib"))
        lines.append(f"| {tool} | {fmt(t.get('repo_mib'))} | {fmt(r, 2)} |")
    lines.append("")
    sg = res.get("snapguard")
    if sg and base:
        lines.append("## SnapGuard against the targets")
        lines.append("")
        lines.append("| target | measured | met? |")
        lines.append("| --- | --- | --- |")

        def row(name, value, ok, text):
            lines.append(f"| {name} | {text} | {'yes' if ok else 'no'} |" if value is not None else f"| {name} | n/a | – |")

        def speed(tool, step):
            a, b = res.get(tool, {}).get(step), sg.get(step)
            return ratio(a["wall_s"], b["wall_s"]) if a and b else None

        v = speed("restic", "first")
        row("first backup ≥ 2× restic throughput", v, v is not None and v >= 2, f"{fmt(v, 2)}× restic")
        v = speed("borg", "first")
        row("first backup ≥ 3× borg throughput", v, v is not None and v >= 3, f"{fmt(v, 2)}× borg")
        v = speed("restic", "nochange")
        row(
            "no-change backup ≤ 1/3 of restic's time",
            v,
            v is not None and v >= 3,
            f"{fmt(None if not v else 1 / v, 2)}× restic's time",
        )
        v = speed("restic", "restore")
        row("restore ≥ 2× restic throughput", v, v is not None and v >= 2, f"{fmt(v, 2)}× restic")
        for step in STEPS:
            a, b = sg.get(step), base.get(step)
            v = ratio(a["peak_rss_mib"], b["peak_rss_mib"]) if a and b else None
            row(f"peak RSS ≤ ½ restic's, {STEP_NAMES[step]}", v, v is not None and v <= 0.5, f"{fmt(v, 2)}× restic's")
        v = ratio(sg.get("repo_mib"), base.get("repo_mib"))
        row("repository size ≤ restic's", v, v is not None and v <= 1, f"{fmt(v, 3)}× restic's")
        lines.append("")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meta", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--markdown", required=True)
    a = ap.parse_args()
    with open(a.meta) as f:
        meta = json.load(f)
    tools, runs, repo, failed = load(a.raw)
    res = summarize(tools, runs, repo, failed)
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "results": res}, f, indent=1)
        f.write("\n")
    md = markdown(meta, res)
    try:
        with open(a.markdown) as f:
            old = f.read()
        if MARK in old:
            md += "\n" + old[old.index(MARK):]
    except FileNotFoundError:
        pass
    with open(a.markdown, "w") as f:
        f.write(md)


if __name__ == "__main__":
    main()
