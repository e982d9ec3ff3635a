"""Table of bench/requests counts: per entry of the tree, per request type, for chunkfs and the
passthrough, first and second copy (the conduit exchange that reads the counts subtracted)."""
import json, sys
w, n = sys.argv[1], int(sys.argv[2])
def j(f): return json.load(open(f"{w}/{f}"))
def t(f):
    line = open(f"{w}/{f}").read().strip().split(": ",1)[1]
    return {k: int(v) for k, v in (p.split("=") for p in line.split())}
c0, c0b, c1, c2 = j("c0.json"), j("c0b.json"), j("c1.json"), j("c2.json")
p0, p1, p2 = t("p0.txt"), t("p1.txt"), t("p2.txt")
d = lambda a, b: {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
over = d(c0, c0b)  # one conduit call's own requests
cf1 = {k: v - over.get(k, 0) for k, v in d(c0b, c1).items()}
cf2 = {k: v - over.get(k, 0) for k, v in d(c1, c2).items()}
pt1, pt2 = d(p0, p1), d(p1, p2)
keys = sorted(k for k in set(cf1) | set(cf2) | set(pt1) | set(pt2)
              if any(x.get(k, 0) for x in (cf1, cf2, pt1, pt2)))
print(f"entries per copy: {n}; conduit call overhead subtracted: {over}")
print(f"| request | chunkfs 1st | chunkfs 2nd | passthrough 1st | passthrough 2nd |")
print("|---|---:|---:|---:|---:|")
tot = [0,0,0,0]
for k in keys:
    vals = [x.get(k, 0) for x in (cf1, cf2, pt1, pt2)]
    if ":" not in k:
        tot = [a + b for a, b in zip(tot, vals)]
    print(f"| {k} | " + " | ".join(f"{v/n:.3f}" for v in vals) + " |")
print("| **all** | " + " | ".join(f"**{v/n:.2f}**" for v in tot) + " |")
print("raw:", json.dumps({"cf1": cf1, "cf2": cf2, "pt1": pt1, "pt2": pt2}, sort_keys=True))
