"""Tables and plots from a bench/run results JSON (medians; ratios to the passthrough)."""

import statistics
from pathlib import Path

MB = 1e6
MIB = 1 << 20


def med(xs):
    return statistics.median(xs) if xs else None


def secs(s):
    return f"{s * 1000:.1f} ms" if s < 0.1 else f"{s:.2f} s"


def rate(metric, seconds, work):
    w = work.get(metric, {})
    if "bytes" in w:
        return f"{w['bytes'] / MB / seconds:,.0f} MB/s"
    if "files" in w:
        return f"{w['files'] / seconds:,.0f} files/s"
    if "ops" in w:
        return f"{w['ops'] / seconds:,.0f} IOPS"
    return ""


def metrics(res):
    seen = []
    for fs in res["filesystems"] + ["borg", "restic"]:
        for m in res["times"].get(fs, {}):
            if m not in seen:
                seen.append(m)
    return seen


def markdown(res):
    fss = [f for f in res["filesystems"] + ["borg", "restic"] if f in res["times"]]
    rounds = max(len(v) for t in res["times"].values() for v in t.values())
    mach = res["machine"]
    out = [f"Run `{res['label'] or 'default'}` of {res['date']}, rev {res['rev']}, {rounds} rounds, "
           f"{res['wall_seconds'] / 60:.1f} min; {mach['nproc']} CPUs ({mach['cpu']}), "
           f"{mach['mem_kib'] / MIB:.1f} GiB RAM, kernel {mach['kernel']}, host fs {mach['host_fs']}.",
           "", "Medians (throughput); the last columns divide each time by the passthrough's "
           "(below 1 is faster than FUSE-over-ext4).", ""]
    others = [f for f in fss if f != "passthrough" and "passthrough" in fss]
    hdr = ["phase"] + fss + [f"{f} ÷ pt" for f in others if f not in ("borg", "restic")]
    out += ["| " + " | ".join(hdr) + " |", "|" + "---|" + "---:|" * (len(hdr) - 1)]
    for m in metrics(res):
        row = [m]
        meds = {f: med(res["times"].get(f, {}).get(m, [])) for f in fss}
        for f in fss:
            s = meds[f]
            r = "" if s is None else rate(m, s, res["work"])
            row.append("" if s is None else secs(s) + (f" ({r})" if r else ""))
        for f in hdr[len(fss) + 1:]:
            f = f.removesuffix(" ÷ pt")
            a, b = meds.get(f), meds.get("passthrough")
            row.append(f"{a / b:.2f}" if a and b else "")
        out.append("| " + " | ".join(row) + " |")
    out += ["", stored_table(res), ""]
    if res.get("peak_rss"):
        out.append("Daemon peak RSS (VmHWM, max over the run): " + ", ".join(
            f"{k} {v / MIB:.0f} MiB" for k, v in res["peak_rss"].items()))
    for k, v in res.get("notes", {}).items():
        out.append(f"- {k}: {v}")
    out.append(f"- correctness checks passed: {len(res.get('checks', []))}")
    return "\n".join(out) + "\n"


def stored_cols(res):
    st = res["stored"]
    cols = []
    if "chunkfs" in st:
        cols += [("chunkfs stored", "chunkfs", "stored_bytes"),
                 ("chunkfs on host (image+meta)", "chunkfs", "host_alloc")]
    if "ext4" in st:
        cols.append(("ext4 du", "ext4", "du_alloc"))
    if "btrfs" in st:
        cols.append(("btrfs fi du", "btrfs", "btrfs_du_total"))
    for b in ("borg", "restic"):
        if b in st:
            cols.append((f"{b} repo", b, "du_sb"))
    return cols


def stored_table(res):
    st = res["stored"]
    cols = stored_cols(res)
    if not cols:
        return ""
    first = st[cols[0][1]]
    out = ["Stored bytes after each daily copy (MiB; last round):", "",
           "| after | logical | " + " | ".join(c[0] for c in cols) + " |",
           "|---|---:|" + "---:|" * len(cols)]
    for k in sorted(first, key=int):
        row = [f"v{k} ({first[k]['version']})", f"{first[k]['logical'] / MIB:,.1f}"]
        for _, fs, key in cols:
            v = st.get(fs, {}).get(k, {}).get(key)
            row.append("" if v is None else f"{v / MIB:,.1f}")
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def compare(old, new):
    """Chunkfs medians of a saved run against this one (A/B of two builds)."""
    out = [f"A/B: chunkfs in `{old['rev']}` ({old['date']}) against `{new['rev']}`:", "",
           "| phase | before s | after s | after ÷ before |", "|---|---:|---:|---:|"]
    for f in [x for x in new["filesystems"] if x.startswith("chunkfs")]:
        for m in new["times"].get(f, {}):
            a = med(old["times"].get("chunkfs", {}).get(m, []))
            b = med(new["times"][f][m])
            if a and b:
                out.append(f"| {f} {m} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    return "\n".join(out) + "\n"


def plots(res, outdir: Path, png: Path = None):
    """SVGs into outdir (committed, small); PNG copies into png (bench/out) if given."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install matplotlib): no plots")
        return
    outdir.mkdir(parents=True, exist_ok=True)
    plt.rcParams.update({"font.size": 8, "svg.fonttype": "none"})
    fss = [f for f in res["filesystems"] if f in res["times"]]
    groups = [("MB/s", [m for m in metrics(res) if "bytes" in res["work"].get(m, {})
                        and not m.startswith("backup v")]),
              ("files/s", [m for m in metrics(res) if "files" in res["work"].get(m, {})
                           and "bytes" not in res["work"].get(m, {})]),
              ("IOPS", [m for m in metrics(res) if "ops" in res["work"].get(m, {})])]
    groups = [g for g in groups if g[1]]
    fig, axes = plt.subplots(1, len(groups), figsize=(11, 3.6),
                             gridspec_kw={"width_ratios": [len(g[1]) + 0.5 for g in groups]})
    axes = axes if len(groups) > 1 else [axes]
    for ax, (unit, ms) in zip(axes, groups):
        w = 0.8 / len(fss)
        for i, f in enumerate(fss):
            ys = []
            for m in ms:
                s = med(res["times"].get(f, {}).get(m, []))
                work = res["work"][m]
                n = work.get("bytes", 0) / MB if unit == "MB/s" else work.get(
                    "files" if unit == "files/s" else "ops", 0)
                ys.append(n / s if s else 0)
            ax.bar([j + i * w for j in range(len(ms))], ys, w, label=f)
        ax.set_xticks([j + 0.4 - w / 2 for j in range(len(ms))], ms, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel(unit + " (log)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("throughput per phase (median of rounds; higher is better)")
    fig.tight_layout()
    fig.savefig(outdir / "throughput.svg")
    if png:
        fig.savefig(png / "throughput.png", dpi=90)
    plt.close(fig)

    cols = stored_cols(res)
    if cols:
        fig, ax = plt.subplots(figsize=(6, 4))
        first = res["stored"][cols[0][1]]
        ks = sorted(first, key=int)
        xs = [first[k]["logical"] / MIB for k in ks]
        ax.plot(xs, xs, "k:", label="logical (y = x)")
        for label, fs, key in cols:
            ys = [res["stored"].get(fs, {}).get(k, {}).get(key, 0) / MIB for k in ks]
            ax.plot(xs, ys, "o-", label=label)
        ax.set_xlabel("logical bytes of the backup series (MiB)")
        ax.set_ylabel("stored (MiB)")
        ax.set_title("stored vs logical bytes as daily copies accumulate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(outdir / "stored.svg")
        if png:
            fig.savefig(png / "stored.png", dpi=90)
        plt.close(fig)
    for p in outdir.glob("*.svg"):
        print(f"plot {p} ({p.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    # Re-render a saved run: python3 bench/report.py bench/out/latest.json [PLOT_DIR]
    import json
    import sys

    res = json.loads(Path(sys.argv[1]).read_text())
    print(markdown(res))
    if len(sys.argv) > 2:
        plots(res, Path(sys.argv[2]), Path(sys.argv[1]).parent)
