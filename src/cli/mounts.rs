//! Reading `/proc/self/mountinfo`: which chunkfs mounts exist, where, and of which store.
//!
//! A chunkfs mount's source (its `fsname`) is the store's canonical path unless it was mounted
//! with `-o fsname=NAME`; then the store is what the daemon says in `MOUNT/.chunkfs/store`.

use crate::fs::open::META_FILE;
use anyhow::{Context, Result};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The filesystem type a chunkfs mount shows.
pub const FSTYPE: &str = "fuse.chunkfs";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub mountpoint: PathBuf,
    pub fstype: String,
    /// For chunkfs: the store's canonical path (see `with_store`); for others, as `fsname`.
    pub source: PathBuf,
    /// The source as the mount table shows it: for chunkfs the store's path or `-o fsname=`.
    pub fsname: String,
    /// The mount's device number, "MAJ:MIN" (for FUSE also the name of its bdi in sysfs).
    pub dev: String,
    /// This mount's own options ("rw,nosuid,nodev,relatime").
    pub options: String,
    /// The filesystem is read-only (the superblock's flag, shared by every mount of it).
    pub read_only: bool,
    /// For FUSE mounts, the uid that mounted it (`user_id=` of the super options): with root,
    /// the only one fusermount3 lets unmount it.
    pub owner: Option<u32>,
}

impl Mount {
    pub fn is_chunkfs(&self) -> bool {
        self.fstype == FSTYPE
    }

    /// Whether `source` names the store: the fsname was the store's path, or the daemon
    /// told us (`with_store`).
    pub fn knows_store(&self) -> bool {
        self.source.is_absolute() && self.source.join(META_FILE).is_file()
    }

    /// The mount with `source` set to its store: for a mount made with `-o fsname=NAME`, read
    /// from `MOUNT/.chunkfs/store`. When the daemon does not answer (it ended: ENOTCONN), the
    /// source stays the fsname and `knows_store` says so.
    pub fn with_store(mut self) -> Mount {
        if !self.is_chunkfs() || self.knows_store() {
            return self;
        }
        let file = self.mountpoint.join(".chunkfs").join("store");
        if let Ok(text) = std::fs::read(&file)
            && let Some(path) = text.strip_suffix(b"\n")
            && !path.is_empty()
        {
            self.source = PathBuf::from(std::ffi::OsStr::from_bytes(path));
        }
        self
    }
}

/// Every mount this process sees, in mount order, chunkfs mounts with their stores
/// (`Mount::with_store`, which asks the daemons of mounts made with `-o fsname=`).
pub fn all() -> Result<Vec<Mount>> {
    Ok(table()?.into_iter().map(Mount::with_store).collect())
}

/// Every mount as the mount table has it, asking no daemon (a daemon looking for its own
/// mount must not send itself a request it is not yet serving).
fn table() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo (is /proc mounted?)")?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`
fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ');
    let dev = left.nth(2)?;
    let mountpoint = left.nth(1)?;
    let options = left.next()?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let source = right.next()?;
    let super_options = right.next().unwrap_or("");
    let fsname = unescape(source);
    Some(Mount {
        mountpoint: PathBuf::from(unescape(mountpoint)),
        fstype: unescape(fstype),
        source: PathBuf::from(&fsname),
        fsname,
        dev: dev.to_string(),
        options: options.to_string(),
        read_only: super_options.split(',').any(|o| o == "ro"),
        owner: super_options
            .split(',')
            .find_map(|o| o.strip_prefix("user_id="))
            .and_then(|id| id.parse().ok()),
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The topmost mount exactly at `path` (already absolute and canonical), as the mount table
/// has it: its `source` is the fsname (`Mount::with_store` finds the store).
pub fn at(path: &Path) -> Result<Option<Mount>> {
    Ok(table()?.into_iter().rev().find(|m| m.mountpoint == path))
}

/// The mount table as of now, for `watch`: opened once, read again after each change.
pub struct Table(std::fs::File);

impl Table {
    pub fn open() -> Result<Table> {
        let f = std::fs::File::open("/proc/self/mountinfo")
            .context("cannot open /proc/self/mountinfo (is /proc mounted?)")?;
        Ok(Table(f))
    }

    /// Read the whole table from the start; reading is also what `wait` waits after.
    pub fn read(&mut self) -> Result<Vec<Mount>> {
        use std::io::{Read, Seek};
        self.0.rewind()?;
        let mut text = String::new();
        self.0.read_to_string(&mut text)?;
        Ok(text.lines().filter_map(parse_line).collect())
    }

    /// Block until the table changed since the last `read` (the kernel wakes pollers of
    /// mountinfo with POLLPRI on every mount, unmount and remount in the namespace).
    pub fn wait(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        loop {
            // SAFETY: p is one valid pollfd for the duration of the call.
            let r = unsafe { libc::poll(&mut p, 1, -1) };
            if r > 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("cannot wait for changes of /proc/self/mountinfo");
            }
        }
    }
}

/// The topmost chunkfs mount whose fsname is `name` (`umount NAME`), as the mount table has it.
pub fn named(name: &str) -> Result<Option<Mount>> {
    Ok(table()?
        .into_iter()
        .rev()
        .find(|m| m.is_chunkfs() && m.fsname == name))
}

/// The chunkfs mount whose mountpoint is the longest prefix of `path`.
pub fn containing(path: &Path) -> Result<Option<Mount>> {
    Ok(table()?
        .into_iter()
        .filter(|m| m.is_chunkfs() && path.starts_with(&m.mountpoint))
        .max_by_key(|m| m.mountpoint.components().count())
        .map(Mount::with_store))
}

/// The chunkfs mount of the store at `store` (canonical), if mounted.
pub fn of_store(store: &Path) -> Result<Option<Mount>> {
    Ok(all()?
        .into_iter()
        .rev()
        .find(|m| m.is_chunkfs() && m.source == store))
}

/// `path` made absolute and canonical; when that fails (a dead FUSE mount answers ENOTCONN),
/// made absolute lexically so the mount table can still be searched for it.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Ok(p);
    }
    let abs = std::path::absolute(path)
        .with_context(|| format!("cannot make {} absolute", path.display()))?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_escapes_and_optional_fields() {
        let line = "36 35 0:42 / /mnt/my\\040backup rw,nosuid shared:1 master:2 - fuse.chunkfs /srv/st\\134ore rw,user_id=0";
        let m = parse_line(line).unwrap();
        assert_eq!(m.mountpoint, PathBuf::from("/mnt/my backup"));
        assert_eq!(m.source, PathBuf::from("/srv/st\\ore"));
        assert_eq!(m.dev, "0:42");
        assert_eq!(m.options, "rw,nosuid");
        assert!(m.is_chunkfs() && !m.read_only);
        assert_eq!(m.owner, Some(0));
        let ro = parse_line("36 35 0:42 / /m ro - fuse.chunkfs backup ro,user_id=4242").unwrap();
        assert!(ro.read_only && ro.fsname == "backup");
        assert_eq!(ro.owner, Some(4242));
        let ext4 = parse_line("22 1 8:1 / / rw - ext4 /dev/sda1 rw,errors=remount-ro").unwrap();
        assert_eq!(ext4.owner, None);
    }
}
