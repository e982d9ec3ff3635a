//! Values the core API takes and returns.

use crate::meta::Ino;
pub use crate::meta::namespace::FileKind;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// Attributes of an inode as `stat` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits (07777).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub size: u64,
    /// 512-byte blocks of a regular file's data, holes excluded (`fs::seek`); the size
    /// rounded up for anything else.
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
    pub blksize: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(SystemTime),
}

/// A setattr request; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub ctime: Option<SystemTime>,
}

/// An open file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fh(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    pub fh: Fh,
    /// The kernel may keep its page cache: the content is what it was at the last open.
    pub keep_cache: bool,
    /// Bypass the kernel's page cache (the control conduit).
    pub direct_io: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: Ino,
    pub kind: FileKind,
    pub name: Vec<u8>,
    /// Pass this to the next readdir to continue after this entry.
    pub next_offset: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

fn yes() -> bool {
    true
}

/// What `chunkfs stats` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Bytes of all current regular files, as their sizes add up.
    pub logical_bytes: u64,
    /// Bytes of unique chunks as stored (after compression).
    pub stored_bytes: u64,
    /// Bytes of unique chunks before compression.
    pub unique_bytes: u64,
    pub files: u64,
    pub chunks: u64,
    pub superchunks: u64,
    /// Bytes the superchunks occupy on the device, headers and padding included.
    pub device_used_bytes: u64,
    /// Free space as statfs (`df`) reports it: `unallocated_bytes + dead_bytes`.
    pub free_bytes: u64,
    /// Free extents of the free map, bounded by host space for an image file: usable at once.
    #[serde(default)]
    pub unallocated_bytes: u64,
    /// Device bytes garbage collection gives back without pruning anything: superchunks no
    /// list references, and the dead part of sparse ones (repacked). Counted free.
    #[serde(default)]
    pub dead_bytes: u64,
    /// Device bytes a full GC pass would free now (`chunkfs gc`), an estimate that simulates
    /// the prune: `dead_bytes` plus what pruning history past the window and unlinked files
    /// would leave dead. Only `dead_bytes` of it counts as free.
    pub reclaimable_bytes: u64,
    /// False when the estimate stopped at its row budget: `reclaimable_bytes` is at least this.
    #[serde(default = "yes")]
    pub reclaimable_complete: bool,
    pub capacity_bytes: u64,
    /// logical / unique.
    pub dedup_ratio: f64,
    /// unique / stored.
    pub compression_ratio: f64,
    pub seq: u64,
    /// Stored bytes the current tree uses.
    pub current_bytes: u64,
    /// Stored bytes only snapshots still use (not the current tree).
    pub snapshot_only_bytes: u64,
    /// Stored bytes only clone bases still use (neither the current tree nor snapshots).
    pub clone_only_bytes: u64,
    /// Stored bytes only older history uses: what a history window of 0 would give back.
    pub history_only_bytes: u64,
}
