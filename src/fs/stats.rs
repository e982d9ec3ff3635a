//! Space accounting for `chunkfs stats` and statfs, computed one way from the metadata,
//! whether the store is open in this process or read beside a mount daemon.
//!
//! statfs reports `Space`: the free map's running total and the `dead_bytes` counter the
//! metadata's triggers keep, both O(1). `stats` reports the same free figure and, beside it,
//! figures that walk the store (held bytes, the reclaimable estimate).

use super::error::Result;
use super::tree::When;
use super::types::FileKind;
use super::types::Stats;
use crate::chunker::ChunkHash;
use crate::gc;
use crate::meta::{self, Ino, Seq, chunks, counters, history, lists, namespace};
use crate::store::freemap::Extent;
use crate::store::superblock::SUPERBLOCK_LEN;
use rusqlite::Connection;
use std::collections::HashSet;
use std::path::Path;

/// Rows the reclaimable estimate may visit before it settles for a lower bound.
pub const ESTIMATE_ROWS: usize = 250_000;

/// Free space as statfs reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    /// Free extents of the free map, bounded by the host (`unallocated_bytes`): usable at once.
    pub unallocated: u64,
    /// Device bytes garbage collection gives back without pruning (`counters::dead_share`).
    pub dead: u64,
}

impl Space {
    /// What statfs calls free and available.
    pub fn free(&self) -> u64 {
        self.unallocated + self.dead
    }
}

/// Free bytes of a free map holding `total` bytes whose highest extent is `last`, bounded by
/// what the host filesystem can still give a sparse image file beyond its last used extent.
/// O(1): one statvfs of the host.
pub fn unallocated_bytes(total: u64, last: Option<Extent>, capacity: u64, device: &Path) -> u64 {
    let tail = last
        .filter(|e| e.end() == capacity)
        .map_or(0, |e| e.len.min(capacity - SUPERBLOCK_LEN));
    let host = super::open::host_available(device).unwrap_or(u64::MAX);
    total.min((total - tail).saturating_add(host))
}

/// `unallocated_bytes` of persisted free extents (a store read beside its daemon or offline).
pub fn unallocated_of(free: &[Extent], capacity: u64, device: &Path) -> u64 {
    let total = free.iter().map(|e| e.len).sum();
    let last = free.iter().max_by_key(|e| e.start).copied();
    unallocated_bytes(total, last, capacity, device)
}

/// Every figure of `Stats` from one connection, with `space` as statfs reports it (`open`:
/// inodes held open, whose unlinked state is not reclaimable yet); run it inside a read
/// transaction for a consistent answer.
pub fn compute(
    conn: &Connection,
    capacity: u64,
    space: Space,
    open: &HashSet<Ino>,
) -> Result<Stats> {
    let (files, logical) = namespace::file_totals(conn)?;
    let (chunk_count, unique, stored) = chunks::totals(conn)?;
    let scs = chunks::superchunks(conn)?;
    let seq = meta::get_u64(conn, "seq")?.unwrap_or(0);
    let ret = gc::retention(conn, super::now_ns(), Seq(seq))?;
    let est = gc::estimate::reclaimable(conn, &ret, open, ESTIMATE_ROWS)?;
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let h = held_by(conn)?;
    Ok(Stats {
        current_bytes: h.current,
        snapshot_only_bytes: h.snapshots,
        clone_only_bytes: h.clones,
        history_only_bytes: stored.saturating_sub(h.current + h.snapshots + h.clones),
        logical_bytes: logical,
        stored_bytes: stored,
        unique_bytes: unique,
        files,
        chunks: chunk_count,
        superchunks: scs.len() as u64,
        device_used_bytes: scs.iter().map(|s| s.extent.len).sum(),
        free_bytes: space.free(),
        unallocated_bytes: space.unallocated,
        dead_bytes: space.dead,
        reclaimable_bytes: space.dead + est.beyond_dead,
        reclaimable_complete: est.complete,
        capacity_bytes: capacity,
        dedup_ratio: ratio(logical, unique),
        compression_ratio: ratio(unique, stored),
        seq,
    })
}

/// `Space` of a store read from its database alone: the persisted free map and the counters
/// (recounted for a store whose schema predates them).
pub fn space_of(conn: &Connection, capacity: u64, device: &Path) -> Result<Space> {
    let free = chunks::free_extents(conn)?;
    Ok(Space {
        unallocated: unallocated_of(&free, capacity, device),
        dead: counters::get_or_recount(conn)?.dead_bytes,
    })
}

/// Stored bytes the current tree holds by its own content, what it holds only through clones
/// that still read their source's past (clone bases), and what snapshots hold beyond both.
struct Held {
    current: u64,
    snapshots: u64,
    clones: u64,
}

fn held_by(conn: &Connection) -> Result<Held> {
    use crate::meta::history;
    let mut w = Walker {
        conn,
        follow_clones: false,
        lists: HashSet::new(),
        chunks: HashSet::new(),
        bytes: 0,
    };
    w.tree(Ino::ROOT, When::Now, 0)?;
    let current = w.bytes;
    w.follow_clones = true;
    w.lists.clear(); // lists already seen may lead to clone-side content on this pass
    w.tree(Ino::ROOT, When::Now, 0)?;
    let clones = w.bytes - current;
    for s in history::snapshots(conn)? {
        w.tree(Ino(s.root), When::At(Seq(s.seq)), 0)?;
    }
    Ok(Held {
        current,
        clones,
        snapshots: w.bytes - current - clones,
    })
}

/// Visits the content of a tree at a point in time without allocating clone-side inode
/// numbers (it may run on a read-only connection): a directory that reads its clone source
/// is walked as that source, at the clone's seq.
struct Walker<'c> {
    conn: &'c Connection,
    /// Walk into clone-side inodes that still read their source.
    follow_clones: bool,
    lists: HashSet<ChunkHash>,
    chunks: HashSet<ChunkHash>,
    bytes: u64,
}

impl Walker<'_> {
    fn tree(&mut self, dir: Ino, when: When, depth: u32) -> Result<()> {
        if depth > 4096 {
            return Ok(());
        }
        let (dir, when) = match self.clone_base(dir)? {
            Some(_) if !self.follow_clones => return Ok(()),
            Some((src, seq)) => (src, When::At(seq)),
            None => (dir, when),
        };
        let mut after = 0;
        loop {
            let page = match when {
                When::Now => namespace::list_dir(self.conn, dir, after, 1024)?,
                When::At(s) => namespace::list_dir_at(self.conn, dir, s, after, 1024)?,
            };
            if page.is_empty() {
                // A clone-side directory with rows of its own but none yet at this seq.
                break;
            }
            after = page.last().map_or(after, |d| d.id);
            for d in page {
                match d.kind {
                    FileKind::Dir => self.tree(d.ino, when, depth + 1)?,
                    FileKind::File => {
                        if !self.follow_clones && self.clone_base(d.ino)?.is_some() {
                            continue;
                        }
                        if let Some(rev) = super::tree::rev(self.conn, d.ino, when)?
                            && let Some(root) = rev.list
                        {
                            self.list(&root)?;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The source and seq a clone-side inode without rows of its own reads.
    fn clone_base(&self, ino: Ino) -> Result<Option<(Ino, Seq)>> {
        Ok(match history::clone_ino(self.conn, ino)? {
            Some((c, src)) if namespace::inode_exists(self.conn, ino)?.is_none() => {
                Some((src, c.seq))
            }
            _ => None,
        })
    }

    fn list(&mut self, hash: &ChunkHash) -> Result<()> {
        if !self.lists.insert(*hash) {
            return Ok(());
        }
        let Some(node) = lists::get(self.conn, hash)? else {
            return Ok(());
        };
        let (leaf, kids) = lists::children(&node)?;
        for k in kids {
            if !leaf {
                self.list(&k)?;
            } else if k != lists::HOLE
                && self.chunks.insert(k)
                && let Some(loc) = chunks::location(self.conn, &k)?
            {
                self.bytes += loc.stored_len as u64;
            }
        }
        Ok(())
    }
}
