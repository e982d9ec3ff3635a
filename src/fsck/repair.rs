//! `--repair`: fix what needs no guessing. Index rows are rebuilt from superchunk headers
//! (only for chunks that verify), superchunks no index row uses are dropped, refcounts are
//! set to the counted references, and the free map becomes the exact complement of the
//! superchunks. Damaged chunk data is never replaced here: only `heal` does that, from bytes
//! that hash to the chunk's name.

use super::Result;
use super::data::{chunk_is_good, read_headers};
use crate::chunker::ChunkHash;
use crate::meta::check::{self, Counted};
use crate::meta::chunks::{self, Location, SuperchunkRow};
use crate::meta::lists;
use crate::store::device::Device;
use crate::store::freemap::Extent;
use crate::store::superblock::{SUPERBLOCK_LEN, Superblock};
use crate::store::superchunk;
use rusqlite::Connection;
use std::collections::HashSet;

/// Repair in one transaction; returns a line per fix.
pub fn repair(conn: &Connection, dev: &dyn Device, sb: &Superblock) -> Result<Vec<String>> {
    crate::meta::in_transaction(conn, true, || repair_in(conn, dev, sb))
}

fn repair_in(conn: &Connection, dev: &dyn Device, sb: &Superblock) -> Result<Vec<String>> {
    let mut fixes = Vec::new();
    recover_superchunks(conn, dev, &mut fixes)?;
    reindex(conn, dev, &mut fixes)?;
    for id in chunks::orphan_superchunks(conn)? {
        chunks::delete_superchunk(conn, id)?;
        fixes.push(format!(
            "dropped superchunk {} (no indexed chunk lives in it)",
            id.0
        ));
    }
    fix_refcounts(conn, &mut fixes)?;
    fix_live_bytes(conn, &mut fixes)?;
    rebuild_free_map(conn, sb, &mut fixes)?;
    Ok(fixes)
}

/// Chunks the lists use but the index lacks: look for them on the device in superchunks the
/// metadata has lost, and take those superchunks back.
fn recover_superchunks(conn: &Connection, dev: &dyn Device, fixes: &mut Vec<String>) -> Result<()> {
    let (_, counted) = check::counted_refcounts(conn)?;
    let mut wanted: HashSet<ChunkHash> = HashSet::new();
    for h in counted.keys() {
        if chunks::location(conn, h)?.is_none() {
            wanted.insert(*h);
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let known = chunks::superchunks(conn)?;
    let mut found = Vec::new();
    superchunk::scan(dev, SUPERBLOCK_LEN, |off, h| {
        if let Ok(h) = h {
            let ext = Extent {
                start: off,
                len: h.total_len(),
            };
            let overlaps = known
                .iter()
                .any(|s| s.extent.start < ext.end() && ext.start < s.extent.end());
            if !overlaps && h.entries.iter().any(|e| wanted.contains(&e.hash)) {
                found.push((ext, h));
            }
        }
    })?;
    let mut next_id = chunks::next_superchunk_id(conn)?;
    for (ext, h) in found {
        let mut bytes = vec![0u8; ext.len as usize];
        dev.read_at(&mut bytes, ext.start)?;
        // The id in the header may since have been given to another superchunk.
        let id = if known.iter().any(|s| s.id == h.id) {
            next_id += 1;
            crate::meta::set_u64(conn, "superchunk_hwm", next_id - 1)?;
            superchunk::SuperchunkId(next_id - 1)
        } else {
            h.id
        };
        // Live bytes are recounted from the chunks taken back (fix_live_bytes, below).
        let row = SuperchunkRow::holding(id, ext, &h.entries);
        chunks::insert_superchunk(conn, &row, crate::fs::now_ns() / 1_000_000_000)?;
        let mut n = 0;
        for e in &h.entries {
            if wanted.contains(&e.hash) && chunk_is_good(&bytes, e) {
                let loc = Location::of_entry(id, e);
                chunks::insert(conn, &e.hash, &loc)?;
                wanted.remove(&e.hash);
                n += 1;
            }
        }
        fixes.push(format!(
            "recovered superchunk at {} from the device: {n} chunks indexed again",
            ext.start
        ));
    }
    Ok(())
}

/// Index rows from the headers of known superchunks: add chunks the index lacks, and point
/// rows whose location fails at a copy that verifies.
fn reindex(conn: &Connection, dev: &dyn Device, fixes: &mut Vec<String>) -> Result<()> {
    for (sc, header, bytes) in read_headers(conn, dev)? {
        if header.id != sc.id {
            continue;
        }
        for e in &header.entries {
            if !chunk_is_good(&bytes, e) {
                continue;
            }
            let loc = Location::of_entry(sc.id, e);
            match chunks::location(conn, &e.hash)? {
                None => {
                    chunks::insert(conn, &e.hash, &loc)?;
                    fixes.push(format!(
                        "indexed chunk {} from the header of superchunk {}",
                        e.hash, sc.id.0
                    ));
                }
                Some(cur) if cur != loc && !location_is_good(conn, dev, &e.hash, &cur)? => {
                    chunks::set_location(conn, &e.hash, &loc)?;
                    fixes.push(format!(
                        "pointed chunk {} at its good copy in superchunk {}",
                        e.hash, sc.id.0
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn location_is_good(
    conn: &Connection,
    dev: &dyn Device,
    hash: &ChunkHash,
    loc: &Location,
) -> Result<bool> {
    let Some(ext) = chunks::superchunk_extent(conn, loc.superchunk)? else {
        return Ok(false);
    };
    let entry = superchunk::ChunkEntry {
        hash: *hash,
        offset: loc.offset,
        stored_len: loc.stored_len,
        raw_len: loc.raw_len,
        codec: loc.codec,
    };
    Ok(superchunk::read_chunk(dev, ext.start, &entry).is_ok())
}

fn fix_refcounts(conn: &Connection, fixes: &mut Vec<String>) -> Result<()> {
    for m in check::refcounts(conn)? {
        let Some(stored) = m.stored else { continue }; // missing data: nothing to set
        match m.what {
            Counted::List => lists::set_refcount(conn, &m.hash, m.counted)?,
            Counted::Chunk => chunks::set_refcount(conn, &m.hash, m.counted)?,
        }
        fixes.push(format!("set refcount of {m} (was {stored})"));
    }
    Ok(())
}

/// Each superchunk's live bytes become the sum of the chunks the index keeps in it.
fn fix_live_bytes(conn: &Connection, fixes: &mut Vec<String>) -> Result<()> {
    for (id, stored, counted) in crate::meta::gc::live_bytes_mismatches(conn)? {
        chunks::set_live_bytes(conn, superchunk::SuperchunkId(id), counted)?;
        fixes.push(format!(
            "set the live bytes of superchunk {id} to {counted} (was {stored})"
        ));
    }
    Ok(())
}

/// The free map becomes exactly the space no superchunk occupies. Refused when superchunks
/// overlap each other: which one is right would be a guess.
fn rebuild_free_map(conn: &Connection, sb: &Superblock, fixes: &mut Vec<String>) -> Result<()> {
    let mut used: Vec<Extent> = chunks::superchunks(conn)?
        .iter()
        .map(|s| s.extent)
        .collect();
    used.sort();
    let mut free = Vec::new();
    let mut pos = SUPERBLOCK_LEN;
    for e in &used {
        if e.start < pos {
            return Ok(());
        }
        if e.start > pos {
            free.push(Extent {
                start: pos,
                len: e.start - pos,
            });
        }
        pos = e.end();
    }
    if pos < sb.capacity {
        free.push(Extent {
            start: pos,
            len: sb.capacity - pos,
        });
    }
    let current = chunks::free_extents(conn)?;
    if current != free {
        let before: u64 = current.iter().map(|e| e.len).sum();
        let after: u64 = free.iter().map(|e| e.len).sum();
        chunks::replace_free_extents(conn, &free)?;
        fixes.push(format!(
            "rebuilt the free map from the superchunks: {} extents, {after} bytes free (was {} extents, {before} bytes)",
            free.len(),
            current.len()
        ));
    }
    Ok(())
}
