"""Tables and plots from a bench/run results JSON (medians; ratios to the passthrough)."""

import re
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


def per_version(metric):
    """A metric of one version of a backup series ("backup v2", "linux v3 CPU")."""
    return re.fullmatch(r"\w+ v\d+( CPU)?", metric) is not None


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
    if res["stored"]:
        out += ["", stored_table(res)]
    out.append("")
    for name in res.get("series", {}):
        if name != "backup":
            out += [series_table(res, name), ""]
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


def series_table(res, name):
    """Per version of a series measured at rest (the Linux series): medians of wall and CPU
    time, and the last round's store sizes; then how flat chunkfs's cost stays."""
    se = res["series"][name]
    st, times = se["stored"], res["times"]
    ks = [str(k) for k in range(1, len(se["versions"]) + 1)]
    tools = [f for f in res["filesystems"] + ["borg", "restic"]
             if f"{name} v1" in times.get(f, {})]
    cf = [f for f in tools if f.startswith("chunkfs") and f in st]
    out = [f"Series `{name}`: {se['title']}, {sum(se['files']):,} files, "
           f"{sum(se['logical']) / 1e9:.2f} GB in all. Wall time of `cp -a` + `sync` "
           "(borg, restic: the archive command + `sync`) and CPU time (FUSE daemons; borg and "
           "restic themselves), medians:", "",
           "| version | files | " + " | ".join(f"{f} wall / CPU" for f in tools) + " |",
           "|---|---:|" + "---:|" * len(tools)]
    for i, k in enumerate(ks):
        row = [f"v{k} ({se['versions'][i]})", f"{se['files'][i]:,}"]
        for f in tools:
            w = med(times[f].get(f"{name} v{k}", []))
            c = med(times[f].get(f"{name} v{k} CPU", []))
            row.append((secs(w) if w is not None else "") + (f" / {secs(c)}" if c is not None else ""))
        out.append("| " + " | ".join(row) + " |")
    cols = [(f"{f} store dir", f, "host_alloc") for f in cf]
    cols += [(f"{f} chunks (stats)", f, "stored_bytes") for f in cf]
    cols += [(f"{f} data.img", f, "data_img") for f in cf]
    cols += [(f"{f} meta.db", f, "meta_db") for f in cf]
    cols += [(f"{f} meta.db backups", f, "meta_backups") for f in cf]
    cols += [(f"{b} repo", b, "du_sb") for b in ("borg", "restic") if b in st]
    cols += [(f"{e} du", e, "du_alloc") for e in ("ext4", "btrfs") if e in st]
    out += ["", "On disk after each version (MB; last round); meta.db grown per file of the "
            "version (B):", "",
            "| after | logical | " + " | ".join(c[0] for c in cols)
            + "".join(f" | {f} meta.db B/file" for f in cf) + " |",
            "|---|---:|" + "---:|" * (len(cols) + len(cf))]
    for i, k in enumerate(ks):
        row = [f"v{k}", f"{sum(se['logical'][:i + 1]) / MB:,.0f}"]
        for _, f, key in cols:
            v = st.get(f, {}).get(k, {}).get(key)
            row.append("" if v is None else f"{v / MB:,.1f}")
        for f in cf:
            v = st[f].get(k, {}).get("meta_per_file")
            row.append("" if v is None else f"{v:,.0f}")
        out.append("| " + " | ".join(row) + " |")
    last = ks[-1]
    for f in tools:
        if len(ks) < 3:
            break
        r = [(what, med(times[f].get(f"{name} v{last}{m}", [])),
              med(times[f].get(f"{name} v2{m}", []))) for what, m in (("time", ""), ("CPU", " CPU"))]
        r = [f"{what} {a / b:.2f}×" for what, a, b in r if a and b]
        if r:
            out.append(f"- {f}: v{last} ÷ v2 " + ", ".join(r))
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
    # The Linux series has plots of its own (series_plots), not a bar here.
    others = {f"{n} total" for n in res.get("series", {}) if n != "backup"}
    groups = [("MB/s", [m for m in metrics(res) if "bytes" in res["work"].get(m, {})
                        and not per_version(m) and m not in others]),
              ("files/s", [m for m in metrics(res) if "files" in res["work"].get(m, {})
                           and "bytes" not in res["work"].get(m, {}) and not per_version(m)]),
              ("IOPS", [m for m in metrics(res) if "ops" in res["work"].get(m, {})])]
    groups = [g for g in groups if g[1]]
    if groups:
        throughput_plot(plt, res, fss, groups, outdir, png)
    stored_plot(plt, res, outdir, png)
    for name in res.get("series", {}):
        if name != "backup":
            series_plots(plt, res, name, outdir, png)
    for p in outdir.glob("*.svg"):
        print(f"plot {p} ({p.stat().st_size // 1024} KiB)")


def save(plt, fig, outdir, png, name):
    fig.tight_layout()
    fig.savefig(outdir / f"{name}.svg")
    if png:
        fig.savefig(png / f"{name}.png", dpi=90)
    plt.close(fig)


def throughput_plot(plt, res, fss, groups, outdir, png):
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
    save(plt, fig, outdir, png, "throughput")


def stored_plot(plt, res, outdir, png):
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
        save(plt, fig, outdir, png, "stored")


def series_plots(plt, res, name, outdir, png):
    """NAME-time.svg (wall and CPU time per version), NAME-stored.svg (bytes on disk after
    each version), NAME-meta.svg (meta.db growth per file of each version)."""
    se = res["series"][name]
    st, times = se["stored"], res["times"]
    ks = list(range(1, len(se["versions"]) + 1))
    labels = [f"v{k}\n{v}" for k, v in zip(ks, se["versions"])]
    tools = [f for f in res["filesystems"] + ["borg", "restic"]
             if f"{name} v1" in times.get(f, {})]

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, suffix, title in ((axes[0], "", "wall time of each version (cp -a + sync)"),
                              (axes[1], " CPU", "CPU time (FUSE daemon; borg, restic)")):
        for i, f in enumerate(tools):  # one colour per tool in both panels
            ys = [med(times[f].get(f"{name} v{k}{suffix}", [])) for k in ks]
            if any(y is not None for y in ys):
                ax.plot(ks, [y if y is not None else float("nan") for y in ys], "o-",
                        color=f"C{i}", label=f)
        ax.set_xticks(ks, labels)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("seconds (median of rounds)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{se['title']}: per-version cost (lower is better)")
    save(plt, fig, outdir, png, f"{name}-time")

    fig, ax = plt.subplots(figsize=(6.5, 4))
    cols = []
    for f in st:
        if f.startswith("chunkfs"):
            cols += [(f"{f}: store directory (du)", f, "host_alloc", "o-"),
                     (f"{f}: data.img", f, "data_img", "^--"),
                     (f"{f}: meta.db", f, "meta_db", "s--"),
                     (f"{f}: meta.db backups (.bak.N)", f, "meta_backups", "x:")]
    cols += [(f"{b} repository", b, "du_sb", "o-") for b in ("borg", "restic") if b in st]
    for label, f, key, style in cols:
        ys = [st[f].get(str(k), {}).get(key) for k in ks]
        if any(y is not None for y in ys):
            ax.plot(ks, [y / MB if y is not None else float("nan") for y in ys], style, label=label)
    ax.set_xticks(ks, labels)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("MB on disk")
    ax.set_title(f"stored after each version ({sum(se['logical']) / 1e9:.2f} GB logical in all)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(plt, fig, outdir, png, f"{name}-stored")

    cf = [f for f in st if f.startswith("chunkfs")]
    if any("meta_per_file" in v for f in cf for v in st[f].values()):
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        w = 0.8 / len(cf)
        for i, f in enumerate(cf):
            ys = [st[f].get(str(k), {}).get("meta_per_file", 0) for k in ks]
            ax.bar([k + (i - (len(cf) - 1) / 2) * w for k in ks], ys, w, label=f)
        ax.axhline(200, color="k", ls=":", label="goal of issue #13: 200 B")
        ax.set_xticks(ks, labels)
        ax.set_ylabel("bytes per file of the version")
        ax.set_title("meta.db growth per file, each version (store at rest)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        save(plt, fig, outdir, png, f"{name}-meta")


if __name__ == "__main__":
    # Re-render a saved run: python3 bench/report.py bench/out/latest.json [PLOT_DIR]
    import json
    import sys

    res = json.loads(Path(sys.argv[1]).read_text())
    print(markdown(res))
    if len(sys.argv) > 2:
        plots(res, Path(sys.argv[2]), Path(sys.argv[1]).parent)
