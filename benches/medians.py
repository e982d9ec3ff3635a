#!/usr/bin/env python3
"""Print criterion's median per benchmark (and the throughput it implies) as a Markdown table.

Criterion's console line shows the mean's confidence interval; the docs quote medians, which
it stores in target/criterion/<id>/new/estimates.json.

    python3 benches/medians.py [FILTER]     # e.g. FILTER=fastcdc_cut
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
want = sys.argv[1] if len(sys.argv) > 1 else ""


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


print("| benchmark | median | throughput |")
print("|---|---:|---:|")
for bench in sorted(root.glob("**/new/benchmark.json")):
    meta = json.loads(bench.read_text())
    ident = meta["full_id"]
    if want not in ident:
        continue
    est = json.loads((bench.parent / "estimates.json").read_text())
    ns = est["median"]["point_estimate"]
    thr = meta.get("throughput") or {}
    if "Bytes" in thr:
        rate = f"{thr['Bytes'] / ns * 1e9 / 2**20:,.0f} MiB/s"
    elif "Elements" in thr:
        rate = f"{thr['Elements'] / ns * 1e9:,.0f} /s"
    else:
        rate = ""
    print(f"| {ident} | {fmt_time(ns)} | {rate} |")
