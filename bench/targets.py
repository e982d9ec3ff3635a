"""The filesystems bench/run compares, each behind the same small interface:
fresh() makes it empty and mounted, root is where the work happens, cold() drops every cache
it has, stored() measures what it keeps on disk, cpu() is its daemon's CPU time so far (FUSE
targets), stop() unmounts."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def out(cmd):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


def drop_caches():
    sh("sync")
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def mounted(path: Path) -> bool:
    p = str(path.resolve())
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == p for line in f)


def allocated(path: Path) -> int:
    return int(out(f"du -s -B1 '{path}'").split()[0])


def apparent(path: Path) -> int:
    return int(out(f"du -sb '{path}'").split()[0])


def cpu_seconds(pid) -> float:
    """utime + stime of process pid (all its threads), from /proc/PID/stat; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, TypeError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    name = "?"
    kind = "?"
    root: Path

    def fresh(self):
        raise NotImplementedError

    def cold(self):
        drop_caches()

    def stop(self):
        pass

    def daemon_pid(self):
        return None

    def cpu(self):
        """The daemon's CPU seconds so far, or None (no daemon)."""
        pid = self.daemon_pid()
        return cpu_seconds(pid) if pid else None

    def stored(self, backup: Path) -> dict:
        return {"du_sb": apparent(backup), "du_alloc": allocated(backup)}


class Ext4(Target):
    """The host filesystem directly (a directory of the work dir's ext4)."""

    kind = "ext4"

    def __init__(self, work: Path, name="ext4"):
        self.name, self.root = name, work / "ext4"

    def fresh(self):
        sh(f"rm -rf '{self.root}'")
        self.root.mkdir(parents=True)


class Chunkfs(Target):
    """A chunkfs store on the host's ext4 (data.img and meta.db), mounted by its daemon."""

    kind = "chunkfs"

    def __init__(self, work: Path, bin_dir: Path, name="chunkfs", env=None):
        self.name, self.bin = name, bin_dir / "chunkfs"
        tag = "".join(c if c.isalnum() else "-" for c in name)
        self.store, self.root = work / f"store-{tag}", work / f"mnt-{tag}"
        self.env = {**os.environ, **(env or {})}
        self.hwm = 0

    def cf(self, *args, check=True):
        return subprocess.run([str(self.bin), *map(str, args)], check=check, env=self.env,
                              capture_output=True, text=True)

    def mount(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.cf("mount", self.store, self.root)

    def umount(self):
        if mounted(self.root):
            self.sample_rss()
            self.cf("umount", self.root)

    def fresh(self):
        self.umount()
        # A new directory: `mkfs --force` leaves an earlier store's meta.db.bak.N behind, and
        # the store directory's size is measured whole.
        sh(f"rm -rf '{self.store}'")
        self.cf("mkfs", self.store, "--force", "--size", "32G")
        self.mount()

    def cold(self):
        self.umount()
        drop_caches()
        self.mount()

    def stop(self):
        self.umount()

    def daemon_pid(self):
        try:
            return int((self.store / "lock").read_text().strip())
        except (OSError, ValueError):
            return None

    def sample_rss(self) -> int:
        """The daemon's peak RSS (VmHWM, bytes); the maximum over its lives is kept."""
        pid = self.daemon_pid()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.hwm = max(self.hwm, int(line.split()[1]) * 1024)
        except (OSError, TypeError):
            pass
        return self.hwm

    def stats(self) -> dict:
        return json.loads(self.cf("stats", self.store, "--json").stdout)

    def stored(self, backup: Path) -> dict:
        s = self.stats()
        host = allocated(self.store)
        return {"stored_bytes": s["stored_bytes"], "logical_bytes": s["logical_bytes"],
                "host_alloc": host}

    def at_rest(self) -> dict:
        """The store measured unmounted, every commit done and the WAL checkpointed into
        meta.db (the daemon closes the database at exit): host_alloc is `du -B1` of the whole
        store directory (data.img, meta.db and everything beside them), meta_db the size of
        meta.db, meta_wal what is left of its WAL (0 when the close checkpointed it),
        meta_backups the copies of meta.db the daemon keeps beside it (meta.db.bak.N, one more
        made at every unmount), data_img the image's allocation. Mounted again afterwards if
        it was."""
        was = mounted(self.root)
        self.umount()
        meta = self.store / "meta.db"
        wal = self.store / "meta.db-wal"
        d = {"host_alloc": allocated(self.store), "meta_db": meta.stat().st_size,
             "meta_wal": wal.stat().st_size if wal.exists() else 0,
             "meta_backups": sum(b.stat().st_size for b in self.store.glob("meta.db.bak.*")),
             "data_img": allocated(self.store / "data.img")}
        if was:
            self.mount()
        return d


class Passthrough(Target):
    """ext4 through chunkfs-passthrough (src/bin/chunkfs-passthrough.rs): FUSE's own cost."""

    kind = "passthrough"

    def __init__(self, work: Path, bin_dir: Path, name="passthrough", env=None):
        self.name, self.bin = name, bin_dir / "chunkfs-passthrough"
        tag = "".join(c if c.isalnum() else "-" for c in name.removeprefix("passthrough"))
        self.src, self.root = work / f"pt-src{tag}", work / f"mnt-pt{tag}"
        self.env = {**os.environ, **(env or {})}
        self.proc = None

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(self.bin), str(self.src), str(self.root)],
                                     env=self.env)
        for _ in range(200):
            if mounted(self.root):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("chunkfs-passthrough exited at mount")
            time.sleep(0.02)
        raise RuntimeError("chunkfs-passthrough did not mount")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def fresh(self):
        self.stop()
        sh(f"rm -rf '{self.src}'")
        self.src.mkdir(parents=True)
        self.start()

    def daemon_pid(self):
        return self.proc.pid if self.proc else None


class Btrfs(Target):
    """btrfs (default mount options) on a loop device over a sparse image in the work dir."""

    kind = "btrfs"

    def __init__(self, work: Path, name="btrfs"):
        self.name, self.img, self.root = name, work / "btrfs.img", work / "mnt-btrfs"
        self.loop = None

    def fresh(self):
        self.stop()
        self.root.mkdir(parents=True, exist_ok=True)
        sh(f"rm -f '{self.img}' && truncate -s 32G '{self.img}'")
        self.loop = out(f"losetup -f --show '{self.img}'").strip()
        sh(f"mkfs.btrfs -q -f {self.loop} > /dev/null 2>&1 && mount {self.loop} '{self.root}'")
        sh(f"btrfs -q subvolume create '{self.root}/backup'")

    def stop(self):
        if mounted(self.root):
            sh(f"umount '{self.root}'")
        if self.loop:
            sh(f"losetup -d {self.loop}")
            self.loop = None

    def stored(self, backup: Path) -> dict:
        d = super().stored(backup)
        line = out(f"btrfs filesystem du -s --raw '{backup}'").splitlines()[-1].split()
        d["btrfs_du_total"], d["btrfs_du_exclusive"] = int(line[0]), int(line[1])
        return d
