"""Workloads for bench/run, generated or downloaded once into the work directory.

Nothing here is committed: the Django sdists come from PyPI through `pip download`, the Linux
source trees from Debian's `linux-source-6.1` packages through `apt-get download`, the big
file and the small-file tarball are generated deterministically from a seed.
"""

import io
import os
import random
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20

# Six consecutive builds of Debian bookworm's linux-source-6.1 (the main archive keeps the two
# oldest, bookworm-security the rest). One tree: about 78,600 files, 1.3 GB.
LINUX_PACKAGE = "linux-source-6.1"
LINUX_VERSIONS = ["6.1.170-3", "6.1.176-1", "6.1.187-1", "6.1.190-1", "6.1.192-1", "6.1.192-3"]


@dataclass
class Series:
    """A backup series: consecutive versions of one tree, staged on the host, each copied in
    with `cp -a` to NAME/vK on every filesystem (and archived by borg and restic).

    at_rest: caches are dropped before every copy (for chunkfs: unmount, drop_caches, mount)
    and the chunkfs store is measured unmounted after it (du of the store directory, meta.db
    with its WAL checkpointed). snapshots: a chunkfs/btrfs snapshot after every copy."""

    name: str
    title: str
    versions: list  # (version, staged tree)
    at_rest: bool = False
    snapshots: bool = False
    files: list = field(default_factory=list)  # regular files per version
    logical: list = field(default_factory=list)  # their bytes per version
    stored: dict = field(default_factory=dict)  # filesystem or tool -> {k: measures after vK}

    def __post_init__(self):
        self.logical = [tree_bytes(p) for _, p in self.versions]
        self.files = [tree_files(p) for _, p in self.versions]


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


def linux_deb(debs: Path, ver: str) -> Path:
    """The linux-source .deb of version ver in debs, fetched with `apt-get download` if
    missing (kept: one is 139 MB)."""
    deb = debs / f"{LINUX_PACKAGE}_{ver}_all.deb"
    if deb.exists():
        return deb
    if not shutil.which("apt-get"):
        raise SystemExit(f"{deb} is missing and there is no apt-get to download it")
    debs.mkdir(parents=True, exist_ok=True)
    print(f"apt-get download {LINUX_PACKAGE}={ver} into {debs}", flush=True)
    r = subprocess.run(["apt-get", "download", f"{LINUX_PACKAGE}={ver}"], cwd=debs)
    if r.returncode != 0 or not deb.exists():
        raise SystemExit(f"apt-get download {LINUX_PACKAGE}={ver} failed: run `apt-get update` "
                         f"(bookworm and bookworm-security must be in the sources), or put "
                         f"{deb.name} into {debs} (--linux-debs)")
    return deb


def stage_linux(work: Path, n: int, debs: Path) -> list:
    """Unpack the first n LINUX_VERSIONS once each to work/stage-linux/VERSION (the .deb's
    usr/src/linux-source-6.1.tar.xz, top directory stripped), downloading missing .debs into
    debs. Staged trees are kept between runs."""
    if n > len(LINUX_VERSIONS):
        raise SystemExit(f"--linux-versions: at most {len(LINUX_VERSIONS)}")
    stage = work / "stage-linux"
    stage.mkdir(parents=True, exist_ok=True)
    out = []
    for ver in LINUX_VERSIONS[:n]:
        dst = stage / ver
        if not dst.exists():
            deb = linux_deb(debs, ver)
            print(f"unpacking {deb.name} into {dst}", flush=True)
            tmp = stage / f".{ver}.tmp"
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
            tmp.mkdir()
            # dpkg-deb -x, then the inner tarball, in one stream (nothing but the tree is written).
            inner = f"./usr/src/{LINUX_PACKAGE}.tar.xz"
            subprocess.run(["bash", "-o", "pipefail", "-c",
                            f"dpkg-deb --fsys-tarfile '{deb}' | tar -xOf - '{inner}' "
                            f"| tar -xJf - -C '{tmp}' --strip-components=1"], check=True)
            tmp.rename(dst)
        out.append((ver, dst))
    return out


def tree_files(root: Path) -> int:
    """Regular files under root."""
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        n += sum(1 for f in files if os.path.isfile(os.path.join(dirpath, f))
                 and not os.path.islink(os.path.join(dirpath, f)))
    return n


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
