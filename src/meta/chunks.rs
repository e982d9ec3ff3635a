//! The chunk index, superchunk records and the persisted free map.

use super::Result;
use crate::chunker::ChunkHash;
use crate::store::freemap::{Extent, FreeChange};
use crate::store::superchunk::{ChunkEntry, Codec, SuperchunkId};
use rusqlite::{Connection, OptionalExtension, params};

/// Where a chunk's stored bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub superchunk: SuperchunkId,
    /// Byte offset from the superchunk's start.
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    pub codec: Codec,
}

impl Location {
    /// Where a chunk listed in a superchunk's header lives.
    pub fn of_entry(superchunk: SuperchunkId, e: &ChunkEntry) -> Location {
        Location {
            superchunk,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
            codec: e.codec,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuperchunkRow {
    pub id: SuperchunkId,
    pub extent: Extent,
    pub chunks: u64,
    pub raw_bytes: u64,
    pub live_bytes: u64,
}

pub fn exists(conn: &Connection, hash: &ChunkHash) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM chunks WHERE hash = ?1")?
        .query_row([&hash.0[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn location(conn: &Connection, hash: &ChunkHash) -> Result<Option<Location>> {
    Ok(conn
        .prepare_cached(
            "SELECT superchunk, offset, stored_len, raw_len, codec FROM chunks WHERE hash = ?1",
        )?
        .query_row([&hash.0[..]], |r| location_at(r, 0))
        .optional()?)
}

/// Insert a new chunk with refcount 0; its referrers add their references.
pub fn insert(conn: &Connection, hash: &ChunkHash, loc: &Location) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO chunks(hash, superchunk, offset, stored_len, raw_len, codec, refcount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
    )?
    .execute(params![
        &hash.0[..],
        loc.superchunk.0 as i64,
        loc.offset,
        loc.stored_len,
        loc.raw_len,
        loc.codec as u8
    ])?;
    Ok(())
}

/// Point a chunk row at a (new) offset inside its superchunk, once the superchunk is sealed.
pub fn set_offset(conn: &Connection, hash: &ChunkHash, offset: u32) -> Result<()> {
    conn.prepare_cached("UPDATE chunks SET offset = ?2 WHERE hash = ?1")?
        .execute(params![&hash.0[..], offset])?;
    Ok(())
}

pub fn add_ref(conn: &Connection, hash: &ChunkHash, delta: i64) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE chunks SET refcount = refcount + ?2 WHERE hash = ?1")?
        .execute(params![&hash.0[..], delta])?;
    if n == 0 {
        return Err(super::MetaError::Corrupt(format!(
            "reference to unknown chunk {hash}"
        )));
    }
    Ok(())
}

pub fn refcount(conn: &Connection, hash: &ChunkHash) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT refcount FROM chunks WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| r.get(0))
        .optional()?)
}

/// Every chunk with its stored refcount, for checks that recompute them.
pub fn all_refcounts(conn: &Connection) -> Result<Vec<(ChunkHash, i64)>> {
    super::hash_counts(conn, "SELECT hash, refcount FROM chunks")
}

pub fn insert_superchunk(conn: &Connection, row: &SuperchunkRow, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO superchunks(id, start, len, chunks, raw_bytes, live_bytes, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        row.id.0 as i64,
        row.extent.start as i64,
        row.extent.len as i64,
        row.chunks as i64,
        row.raw_bytes as i64,
        row.live_bytes as i64,
        now
    ])?;
    Ok(())
}

pub fn superchunk_extent(conn: &Connection, id: SuperchunkId) -> Result<Option<Extent>> {
    Ok(conn
        .prepare_cached("SELECT start, len FROM superchunks WHERE id = ?1")?
        .query_row([id.0 as i64], |r| {
            Ok(Extent {
                start: r.get::<_, i64>(0)? as u64,
                len: r.get::<_, i64>(1)? as u64,
            })
        })
        .optional()?)
}

/// The columns `superchunk_row` reads, in its order.
pub(super) const SUPERCHUNK_COLS: &str = "id, start, len, chunks, raw_bytes, live_bytes";

/// A superchunk row selected as `SUPERCHUNK_COLS`.
pub(super) fn superchunk_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SuperchunkRow> {
    Ok(SuperchunkRow {
        id: SuperchunkId(r.get::<_, i64>(0)? as u64),
        extent: Extent {
            start: r.get::<_, i64>(1)? as u64,
            len: r.get::<_, i64>(2)? as u64,
        },
        chunks: r.get::<_, i64>(3)? as u64,
        raw_bytes: r.get::<_, i64>(4)? as u64,
        live_bytes: r.get::<_, i64>(5)? as u64,
    })
}

pub fn superchunks(conn: &Connection) -> Result<Vec<SuperchunkRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {SUPERCHUNK_COLS} FROM superchunks ORDER BY start"
    ))?;
    let rows = st.query_map([], superchunk_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn max_superchunk_id(conn: &Connection) -> Result<u64> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM superchunks", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

pub fn free_extents(conn: &Connection) -> Result<Vec<Extent>> {
    let mut st = conn.prepare("SELECT start, len FROM free_extents ORDER BY start")?;
    let rows = st.query_map([], |r| {
        Ok(Extent {
            start: r.get::<_, i64>(0)? as u64,
            len: r.get::<_, i64>(1)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Persist free-map changes in the caller's transaction, beside the allocation they back.
pub fn apply_free_changes(conn: &Connection, changes: &[FreeChange]) -> Result<()> {
    for c in changes {
        match *c {
            FreeChange::Remove { start } => {
                conn.prepare_cached("DELETE FROM free_extents WHERE start = ?1")?
                    .execute([start as i64])?;
            }
            FreeChange::Put { start, len } => {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO free_extents(start, len) VALUES (?1, ?2)",
                )?
                .execute([start as i64, len as i64])?;
            }
        }
    }
    Ok(())
}

/// Totals for `stats`: (chunks, raw bytes of unique chunks, stored bytes of unique chunks).
pub fn totals(conn: &Connection) -> Result<(u64, u64, u64)> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(raw_len), 0), COALESCE(SUM(stored_len), 0) FROM chunks",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        },
    )?)
}

/// Point an existing chunk row at another stored copy.
pub fn set_location(conn: &Connection, hash: &ChunkHash, loc: &Location) -> Result<()> {
    conn.prepare_cached(
        "UPDATE chunks SET superchunk = ?2, offset = ?3, stored_len = ?4, raw_len = ?5, codec = ?6
         WHERE hash = ?1",
    )?
    .execute(params![
        &hash.0[..],
        loc.superchunk.0 as i64,
        loc.offset,
        loc.stored_len,
        loc.raw_len,
        loc.codec as u8
    ])?;
    Ok(())
}

pub fn set_refcount(conn: &Connection, hash: &ChunkHash, n: i64) -> Result<()> {
    conn.prepare_cached("UPDATE chunks SET refcount = ?2 WHERE hash = ?1")?
        .execute(params![&hash.0[..], n])?;
    Ok(())
}

pub fn delete_superchunk(conn: &Connection, id: SuperchunkId) -> Result<()> {
    conn.prepare_cached("DELETE FROM superchunks WHERE id = ?1")?
        .execute([id.0 as i64])?;
    Ok(())
}

/// Replace the whole persisted free map.
pub fn replace_free_extents(conn: &Connection, extents: &[Extent]) -> Result<()> {
    conn.execute("DELETE FROM free_extents", [])?;
    for e in extents {
        conn.prepare_cached("INSERT INTO free_extents(start, len) VALUES (?1, ?2)")?
            .execute([e.start as i64, e.len as i64])?;
    }
    Ok(())
}

/// Superchunks that no index row points into.
pub fn orphan_superchunks(conn: &Connection) -> Result<Vec<SuperchunkId>> {
    let mut st = conn.prepare(
        "SELECT id FROM superchunks s WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.superchunk = s.id)",
    )?;
    let rows = st.query_map([], |r| Ok(SuperchunkId(r.get::<_, i64>(0)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Point a chunk at a new copy (repack, defrag, heal): its old superchunk loses its bytes.
pub fn move_chunk(conn: &Connection, hash: &ChunkHash, to: &Location) -> Result<()> {
    if let Some(old) = location(conn, hash)? {
        super::gc::add_live_bytes(conn, old.superchunk, -(old.stored_len as i64))?;
    }
    set_location(conn, hash, to)
}

/// The next unused superchunk id: ids are never reused, even after GC frees the newest
/// superchunk, so an old header left in free space never passes for a live one.
pub fn next_superchunk_id(conn: &Connection) -> Result<u64> {
    let hwm = super::get_u64(conn, "superchunk_hwm")?.unwrap_or(0);
    Ok(max_superchunk_id(conn)?.max(hwm) + 1)
}

/// Set a superchunk's live bytes (repair, after recounting).
pub fn set_live_bytes(conn: &Connection, id: SuperchunkId, bytes: i64) -> Result<()> {
    conn.prepare_cached("UPDATE superchunks SET live_bytes = ?2 WHERE id = ?1")?
        .execute([id.0 as i64, bytes])?;
    Ok(())
}

impl SuperchunkRow {
    /// The row of a superchunk holding `entries`, all live.
    pub fn holding(
        id: SuperchunkId,
        extent: Extent,
        entries: &[crate::store::superchunk::ChunkEntry],
    ) -> SuperchunkRow {
        SuperchunkRow {
            id,
            extent,
            chunks: entries.len() as u64,
            raw_bytes: entries.iter().map(|e| e.raw_len as u64).sum(),
            live_bytes: entries.iter().map(|e| e.stored_len as u64).sum(),
        }
    }
}

/// Every index row with its location, for the data pass of fsck.
pub fn all_locations(conn: &Connection) -> Result<Vec<(ChunkHash, Location)>> {
    let mut st =
        conn.prepare("SELECT hash, superchunk, offset, stored_len, raw_len, codec FROM chunks")?;
    let rows = st.query_map([], |r| Ok((super::hash_col(r, 0)?, location_at(r, 1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A location from (superchunk, offset, stored_len, raw_len, codec) starting at column `c`.
/// An unknown codec reads as raw, whose hash check then fails: reported as damage.
pub(crate) fn location_at(r: &rusqlite::Row<'_>, c: usize) -> rusqlite::Result<Location> {
    Ok(Location {
        superchunk: SuperchunkId(r.get::<_, i64>(c)? as u64),
        offset: r.get(c + 1)?,
        stored_len: r.get(c + 2)?,
        raw_len: r.get(c + 3)?,
        codec: Codec::from_u8(r.get::<_, u8>(c + 4)?).unwrap_or(Codec::Raw),
    })
}

/// Forget every chunk row, superchunk row and free extent: `fsck --rebuild-metadata` then
/// records what the device holds.
pub fn forget_space(conn: &Connection) -> Result<()> {
    conn.execute_batch("DELETE FROM chunks; DELETE FROM superchunks; DELETE FROM free_extents;")?;
    Ok(())
}
