//! Space accounting for `chunkfs stats` and statfs, computed one way from the metadata,
//! whether the store is open in this process or read beside a mount daemon.

use super::error::Result;
use super::types::Stats;
use crate::gc;
use crate::meta::{self, Ino, Seq, chunks, namespace};
use crate::store::freemap::Extent;
use crate::store::superblock::SUPERBLOCK_LEN;
use rusqlite::Connection;
use std::collections::HashSet;
use std::path::Path;

/// Free bytes: the free map, bounded by what the host filesystem can still give a sparse
/// image file beyond its last used extent.
pub fn free_bytes(free: impl Iterator<Item = Extent>, capacity: u64, device: &Path) -> u64 {
    let (mut total, mut tail) = (0u64, 0u64);
    for e in free {
        total += e.len;
        if e.end() == capacity {
            tail = e.len.min(capacity - SUPERBLOCK_LEN);
        }
    }
    let host = super::open::host_available(device).unwrap_or(u64::MAX);
    total.min((total - tail).saturating_add(host))
}

/// Every figure of `Stats` from one connection (`open`: inodes held open, whose unlinked
/// state is not reclaimable yet); run it inside a read transaction for a
/// consistent answer.
pub fn compute(
    conn: &Connection,
    capacity: u64,
    free_bytes: u64,
    open: &HashSet<Ino>,
) -> Result<Stats> {
    let (files, logical) = namespace::file_totals(conn)?;
    let (chunk_count, unique, stored) = chunks::totals(conn)?;
    let scs = chunks::superchunks(conn)?;
    let seq = meta::get_u64(conn, "seq")?.unwrap_or(0);
    let ret = gc::retention(conn, super::now_ns(), Seq(seq))?;
    let reclaimable_bytes = gc::estimate::reclaimable(conn, &ret, open)?;
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    Ok(Stats {
        logical_bytes: logical,
        stored_bytes: stored,
        unique_bytes: unique,
        files,
        chunks: chunk_count,
        superchunks: scs.len() as u64,
        device_used_bytes: scs.iter().map(|s| s.extent.len).sum(),
        free_bytes,
        reclaimable_bytes,
        capacity_bytes: capacity,
        dedup_ratio: ratio(logical, unique),
        compression_ratio: ratio(unique, stored),
        seq,
    })
}
