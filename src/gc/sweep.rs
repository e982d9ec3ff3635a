//! Sweeping: chunks no list references leave the index (their bytes stop counting as live in
//! their superchunk), and superchunks with nothing live return their extent to the free map.

use super::{GcReport, Live};
use crate::meta::{self, chunks, gc};
use crate::store::freemap::{Extent, FreeMap};
use rusqlite::Connection;

/// Delete up to `limit` unreferenced chunks after `cursor` (superchunk, hash). Chunks an
/// in-flight commit has pinned are skipped; a later pass finds them if they are still
/// unreferenced.
pub fn chunks(
    conn: &Connection,
    live: &Live<'_>,
    cursor: &mut (u64, Vec<u8>),
    limit: usize,
    report: &mut GcReport,
) -> meta::Result<bool> {
    let batch = gc::unreferenced_chunks(conn, cursor, limit)?;
    for c in &batch {
        *cursor = (c.superchunk.0, c.hash.0.to_vec());
        if (live.pinned)(&c.hash) {
            continue;
        }
        gc::delete_chunk(conn, c)?;
        report.chunks += 1;
        report.chunk_bytes_freed += c.stored_len;
    }
    Ok(batch.len() < limit)
}

/// Free up to `limit` superchunks nothing points into: their rows go and their extents are
/// retired in the free map, persisted as free in this transaction. The free map's owner makes
/// them allocatable after the commit, once no reader can still be reading them and their old
/// bytes are discarded (`fs::core::Core::release_retired`). Returns the extents freed.
pub fn superchunks(
    conn: &Connection,
    freemap: &mut FreeMap,
    limit: usize,
    report: &mut GcReport,
) -> meta::Result<(Vec<Extent>, bool)> {
    let batch = gc::empty_superchunks(conn, limit)?;
    let mut freed = Vec::new();
    for s in &batch {
        chunks::delete_superchunk(conn, s.id)?;
        freemap
            .retire(s.extent)
            .map_err(|e| meta::MetaError::Corrupt(format!("superchunk {}: {e}", s.id.0)))?;
        freed.push(s.extent);
        report.superchunks += 1;
        report.bytes_freed += s.extent.len;
    }
    chunks::apply_free_changes(conn, &freemap.take_changes())?;
    Ok((freed, batch.len() < limit))
}
