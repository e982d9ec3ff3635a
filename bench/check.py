"""Correctness as a side effect: a tree on one filesystem must equal the same tree on ext4."""

import os
import stat
import subprocess
from pathlib import Path


class Mismatch(Exception):
    pass


def describe(root: Path) -> dict:
    """Path -> what must match: type, mode, size (not for directories, whose sizes are the
    filesystem's business), link count (not for directories: btrfs always says 1), owner,
    mtime to the nanosecond, symlink target."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            fmt = stat.S_IFMT(st.st_mode)
            d = (fmt, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if fmt != stat.S_IFDIR:
                d += (st.st_size, st.st_nlink, st.st_mtime_ns)
            if fmt == stat.S_IFLNK:
                d += (os.readlink(p),)
            out[rel] = d
    return out


def compare(got: Path, want: Path, what: str):
    """Fail loudly unless got and want hold the same tree (contents, modes, sizes, links)."""
    r = subprocess.run(["diff", "-r", "--no-dereference", str(got), str(want)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Mismatch(f"{what}: diff -r {got} {want} differs:\n{r.stdout[:4000]}{r.stderr[:2000]}")
    a, b = describe(got), describe(want)
    bad = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if bad:
        lines = [f"  {k}: got {a.get(k)} want {b.get(k)}" for k in bad[:20]]
        raise Mismatch(f"{what}: {len(bad)} entries differ in metadata "
                       f"(type, mode, uid, gid, size, nlink, mtime_ns, target):\n"
                       + "\n".join(lines))
    return len(a)
