"""Workloads for bench/run, generated or downloaded once into the work directory.

Nothing here is committed: the Django sdists come from PyPI through `pip download`, the big
file and the small-file tarball are generated deterministically from a seed.
"""

import io
import os
import random
import subprocess
import tarfile
from pathlib import Path

MIB = 1 << 20


def django_versions(n, first=1):
    return [f"4.2.{first + i}" for i in range(n)]


def stage_backups(work: Path, n: int) -> list:
    """Download n consecutive Django sdists and unpack each to work/stage/vK (top directory
    stripped, so every version lands at the same relative paths, as daily backups would)."""
    dl, stage = work / "dl", work / "stage"
    dl.mkdir(parents=True, exist_ok=True)
    stage.mkdir(parents=True, exist_ok=True)
    out = []
    for k, ver in enumerate(django_versions(n), 1):
        tgz = dl / f"Django-{ver}.tar.gz"
        if not tgz.exists():
            subprocess.run(["pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            f"django=={ver}", "-d", str(dl)], check=True)
        dst = stage / f"v{k}"
        if not dst.exists():
            tmp = stage / f".v{k}.tmp"
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
            tmp.mkdir()
            subprocess.run(["tar", "xzf", str(tgz), "-C", str(tmp), "--strip-components=1"],
                           check=True)
            tmp.rename(dst)
        out.append((ver, dst))
    return out


def tree_bytes(root: Path) -> int:
    """Logical bytes: the sizes of the regular files under root."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_mode & 0o170000) == 0o100000:
                total += st.st_size
    return total


def mixed_file(path: Path, mib: int, seed: int = 7):
    """mib MiB of mixed content, like benches/common::mixed: segments of 32 KiB-1 MiB taking
    turns between unique source-like text, random bytes, and mostly-zero 4 KiB pages (each
    with a unique header). No segment repeats, so dedup finds nothing inside the file."""
    if path.exists() and path.stat().st_size == mib * MIB:
        return
    rng = random.Random(seed)
    words = [w.encode() for w in "fn let mut self impl struct return match Some None Ok Err "
             "use pub mod const static if else for while loop break continue async await "
             "where trait type enum crate super move ref dyn".split()]
    tmp = path.with_suffix(".tmp")
    line_no = 0
    with open(tmp, "wb") as f:
        left, kind = mib * MIB, 0
        while left > 0:
            n = min(left, rng.randint(32 << 10, 1 << 20))
            if kind == 0:
                parts, size = [], 0
                while size < n:
                    line_no += 1
                    ln = b"    %s v%d = %s(%x);\n" % (rng.choice(words), line_no,
                                                    rng.choice(words), rng.getrandbits(32))
                    parts.append(ln)
                    size += len(ln)
                buf = b"".join(parts)[:n]
            elif kind == 1:
                buf = rng.randbytes(n)
            else:
                pages = []
                for _ in range((n + 4095) // 4096):
                    line_no += 1
                    hdr = b"page %d\n" % line_no
                    fill = b"\xa5" * 64 if rng.random() < 0.125 else b"\0" * 64
                    pages.append(hdr + fill * ((4096 - len(hdr)) // 64)
                                 + b"\0" * ((4096 - len(hdr)) % 64))
                buf = b"".join(pages)[:n]
            f.write(buf)
            left -= len(buf)
            kind = (kind + 1) % 3
    tmp.rename(path)


def small_tar(path: Path, n: int, seed: int = 11):
    """A tarball of n small files, 100 to a directory, sizes log-uniform 64 B-16 KiB of
    unique text; 1% symlinks and 1% hard links, modes 0644/0600/0755."""
    if path.exists():
        return
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        dirs = set()
        prev = None
        for i in range(n):
            d = f"d{i // 10000:02d}/d{i // 100:04d}"
            for p in (d.split("/")[0], d):
                if p not in dirs:
                    dirs.add(p)
                    ti = tarfile.TarInfo(p)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                    tar.addfile(ti)
            name = f"{d}/f{i:06d}.txt"
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000 + i
            r = rng.random()
            if r < 0.01 and prev:
                ti.type, ti.linkname = tarfile.SYMTYPE, "../" + prev.split("/", 1)[1]
                tar.addfile(ti)
                continue
            if r < 0.02 and prev:
                ti.type, ti.linkname = tarfile.LNKTYPE, prev
                tar.addfile(ti)
                continue
            size = int(64 * (256 ** rng.random()))
            line = b"file %d line %%d: %x\n" % (i, rng.getrandbits(64))
            body = b"".join(line % k for k in range(size // (len(line) - 1) + 1))[:size]
            ti.size = size
            ti.mode = rng.choice([0o644, 0o644, 0o644, 0o600, 0o755])
            tar.addfile(ti, io.BytesIO(body))
            prev = name
    tmp.rename(path)
