//! Reading `/proc/self/mountinfo`: which chunkfs mounts exist, where, and of which store.

use anyhow::{Context, Result};
use std::path::{Component, Path, PathBuf};

/// The filesystem type a chunkfs mount shows.
pub const FSTYPE: &str = "fuse.chunkfs";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub mountpoint: PathBuf,
    pub fstype: String,
    /// For chunkfs: the store's canonical path (set with fsname at mount).
    pub source: PathBuf,
    /// The mount's device number, "MAJ:MIN" (for FUSE also the name of its bdi in sysfs).
    pub dev: String,
}

impl Mount {
    pub fn is_chunkfs(&self) -> bool {
        self.fstype == FSTYPE
    }
}

/// Every mount this process sees, in mount order.
pub fn all() -> Result<Vec<Mount>> {
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
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let source = right.next()?;
    Some(Mount {
        mountpoint: PathBuf::from(unescape(mountpoint)),
        fstype: unescape(fstype),
        source: PathBuf::from(unescape(source)),
        dev: dev.to_string(),
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

/// The topmost mount exactly at `path` (already absolute and canonical).
pub fn at(path: &Path) -> Result<Option<Mount>> {
    Ok(all()?.into_iter().rev().find(|m| m.mountpoint == path))
}

/// The chunkfs mount whose mountpoint is the longest prefix of `path`.
pub fn containing(path: &Path) -> Result<Option<Mount>> {
    Ok(all()?
        .into_iter()
        .filter(|m| m.is_chunkfs() && path.starts_with(&m.mountpoint))
        .max_by_key(|m| m.mountpoint.components().count()))
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
        assert!(m.is_chunkfs());
    }
}
