//! Moving chunks into fresh superchunks on an unmounted store: the one writer that healing
//! (`--repair-from`) and retiring damaged superchunks (`--repair`, `--repair-from`) share.
//! A mounted store does the same through the filesystem's own repack machinery
//! (`Inner::move_superchunks`), never through this writer.
//!
//! Order as everywhere: the new superchunks are written and the device synced before the
//! transaction that re-points the index rows, and frees the emptied superchunks, commits.
//! Offline nothing else reads the device, so the freed extents need no waiting.

use super::Result;
use super::data::chunk_is_good;
use crate::chunker::ChunkHash;
use crate::meta::chunks::{self, Location, SuperchunkRow};
use crate::store::device::Device;
use crate::store::freemap::{Extent, FreeMap};
use crate::store::superchunk::{self, ChunkEntry, Codec, SuperchunkBuilder, SuperchunkId};
use rusqlite::Connection;
use std::collections::HashMap;

/// An index row: a chunk and where the index places it.
type Indexed = (ChunkHash, Location);

/// A chunk in its stored form, ready to be packed.
pub(super) struct StoredChunk {
    pub hash: ChunkHash,
    pub codec: Codec,
    pub raw_len: u32,
    pub bytes: Vec<u8>,
}

/// Pack `stored` into fresh superchunks of about `target` bytes, write them, sync, and point
/// each chunk's index row at its new copy (inserting rows the index lacks). A re-pointed chunk
/// stops counting in its old superchunk's live bytes. Runs in the caller's transaction.
pub(super) fn write_chunks(
    conn: &Connection,
    dev: &dyn Device,
    target: u64,
    stored: Vec<StoredChunk>,
) -> Result<Vec<ChunkEntry>> {
    let mut groups: Vec<Vec<StoredChunk>> = Vec::new();
    let mut size = 0;
    let mut seen = std::collections::HashSet::new();
    for c in stored {
        if !seen.insert(c.hash) {
            continue; // one index row per hash: a second copy would be dead on arrival
        }
        let len = (superchunk::ENTRY_LEN + c.bytes.len()) as u64;
        if groups.is_empty() || size + len > target {
            groups.push(Vec::new());
            size = superchunk::header_len_for(0) as u64;
        }
        size += len;
        groups.last_mut().expect("pushed above").push(c);
    }
    let mut fm = FreeMap::from_extents(chunks::free_extents(conn)?)?;
    let mut written = Vec::new();
    let mut rows = Vec::new();
    for group in groups {
        let id = SuperchunkId(chunks::next_superchunk_id(conn)?);
        crate::meta::set_u64(conn, "superchunk_hwm", id.0)?;
        let mut b = SuperchunkBuilder::new(id);
        for c in group {
            b.push(c.hash, c.codec, c.raw_len, c.bytes);
        }
        let sealed = b.seal();
        let ext = fm
            .allocate(sealed.bytes.len() as u64)
            .ok_or(crate::store::StoreError::NoSpace)?;
        sealed.write_to(dev, ext.start)?;
        let row = SuperchunkRow::holding(id, ext, &sealed.entries);
        // Recorded now so the next id is fresh; the rows are re-pointed after the sync.
        chunks::insert_superchunk(conn, &row, crate::fs::now_ns() / 1_000_000_000)?;
        rows.push((id, sealed.entries));
    }
    dev.sync()?;
    for (id, entries) in rows {
        for e in &entries {
            let loc = Location::of_entry(id, e);
            if chunks::exists(conn, &e.hash)? {
                chunks::move_chunk(conn, &e.hash, &loc)?;
            } else {
                chunks::insert(conn, &e.hash, &loc)?;
            }
        }
        written.extend(entries);
    }
    chunks::apply_free_changes(conn, &fm.take_changes())?;
    Ok(written)
}

/// Move every chunk of the damaged superchunks `ids` that still verifies where the index
/// places it into fresh superchunks, and free each superchunk left holding no indexed chunk.
/// A damaged chunk nothing uses is dropped from the index (it is garbage); one that something
/// uses stays, named by fsck and healable from a good copy, and so does its superchunk.
/// Returns a line per change.
pub(super) fn retire(
    conn: &Connection,
    dev: &dyn Device,
    target: u64,
    ids: &[SuperchunkId],
) -> Result<Vec<String>> {
    crate::meta::in_transaction(conn, true, || retire_in(conn, dev, target, ids))
}

fn retire_in(
    conn: &Connection,
    dev: &dyn Device,
    target: u64,
    ids: &[SuperchunkId],
) -> Result<Vec<String>> {
    let mut fixes = Vec::new();
    let mut moving = Vec::new();
    let mut kept = Vec::new();
    let mut uses: Option<HashMap<ChunkHash, i64>> = None;
    for &id in ids {
        let Some(ext) = chunks::superchunk_extent(conn, id)? else {
            continue;
        };
        let (good, bad) = intact_chunks(conn, dev, id, ext)?;
        let mut left = 0;
        for (hash, loc) in bad {
            if uses.is_none() {
                uses = Some(crate::meta::check::counted_refcounts(conn)?.1);
            }
            if !drop_unused(conn, uses.as_ref().expect("set above"), hash, loc)? {
                left += 1;
                continue;
            }
            fixes.push(format!(
                "dropped damaged chunk {hash} from superchunk {}: nothing uses it",
                id.0
            ));
        }
        kept.push((id, ext, good.len(), left));
        moving.extend(good);
    }
    if !moving.is_empty() {
        write_chunks(conn, dev, target, moving)?;
    }
    for (id, ext, moved, left) in kept {
        if left > 0 {
            if moved > 0 {
                fixes.push(format!(
                    "moved {moved} intact chunks out of damaged superchunk {}; it keeps {left} damaged chunks",
                    id.0
                ));
            }
            continue;
        }
        chunks::delete_superchunk(conn, id)?;
        free_unshared(conn, id, ext)?;
        fixes.push(if moved > 0 {
            format!(
                "moved {moved} intact chunks out of damaged superchunk {} and freed it",
                id.0
            )
        } else {
            format!(
                "freed damaged superchunk {}: nothing in it is needed any more",
                id.0
            )
        });
    }
    Ok(fixes)
}

/// Remove a damaged chunk from the index when no list uses it and its refcount says so too:
/// it is garbage that GC would drop, and no copy of it is needed. Returns whether it went.
fn drop_unused(
    conn: &Connection,
    uses: &HashMap<ChunkHash, i64>,
    hash: ChunkHash,
    loc: Location,
) -> Result<bool> {
    if uses.get(&hash).copied().unwrap_or(0) != 0 || chunks::refcount(conn, &hash)? != Some(0) {
        return Ok(false);
    }
    crate::meta::gc::delete_chunk(
        conn,
        &crate::meta::gc::DeadChunk {
            hash,
            superchunk: loc.superchunk,
            stored_len: u64::from(loc.stored_len),
            raw_len: u64::from(loc.raw_len),
        },
    )?;
    Ok(true)
}

/// The chunks the index keeps in superchunk `id` whose stored bytes verify, and those that
/// do not.
fn intact_chunks(
    conn: &Connection,
    dev: &dyn Device,
    id: SuperchunkId,
    ext: Extent,
) -> Result<(Vec<StoredChunk>, Vec<Indexed>)> {
    let rows = crate::meta::gc::chunks_in(conn, id)?;
    let mut bytes = vec![0u8; ext.len as usize];
    let readable = ext.end() <= dev.len()? && dev.read_at(&mut bytes, ext.start).is_ok();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (hash, loc) in rows {
        let entry = ChunkEntry {
            hash,
            offset: loc.offset,
            stored_len: loc.stored_len,
            raw_len: loc.raw_len,
            codec: loc.codec,
        };
        if readable && chunk_is_good(&bytes, &entry) {
            let at = loc.offset as usize;
            good.push(StoredChunk {
                hash,
                codec: loc.codec,
                raw_len: loc.raw_len,
                bytes: bytes[at..at + loc.stored_len as usize].to_vec(),
            });
        } else {
            bad.push((hash, loc));
        }
    }
    Ok((good, bad))
}

/// Give a retired superchunk's extent back to the free map, except any part another
/// superchunk occupies (one written over it) or that is free already: freeing those would
/// hand out live data or free twice.
fn free_unshared(conn: &Connection, id: SuperchunkId, ext: Extent) -> Result<()> {
    let mut taken: Vec<Extent> = chunks::superchunks(conn)?
        .into_iter()
        .filter(|s| s.id != id)
        .map(|s| s.extent)
        .chain(chunks::free_extents(conn)?)
        .filter(|e| e.start < ext.end() && ext.start < e.end())
        .collect();
    taken.sort();
    let mut fm = FreeMap::from_extents(chunks::free_extents(conn)?)?;
    let mut pos = ext.start;
    for t in taken.iter().chain(std::iter::once(&Extent {
        start: ext.end(),
        len: 0,
    })) {
        if t.start > pos {
            fm.free(Extent {
                start: pos,
                len: t.start - pos,
            })?;
        }
        pos = pos.max(t.end());
    }
    chunks::apply_free_changes(conn, &fm.take_changes())?;
    Ok(())
}
