//! What garbage collection asks of the metadata: retention points, prunable rows, reference
//! release down the chunk-list trees, dead chunks and empty or sparse superchunks. Every query
//! is bounded by a `limit` so a caller can keep each transaction short.

use super::chunks::{SUPERCHUNK_COLS, SuperchunkRow, superchunk_row};
use super::{Ino, Result, Seq};
use crate::chunker::ChunkHash;
use crate::meta::lists::{self, HOLE};
use crate::store::superchunk::SuperchunkId;
use rusqlite::{Connection, OptionalExtension, params};

/// The first seq of the history window: every seq committed at or after `cutoff_ns` is in it.
/// Seqs of a commit are those after the previous commit's seq, up to its own.
pub fn window_start(conn: &Connection, cutoff_ns: i64) -> Result<Seq> {
    let before: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM commits WHERE time < ?1")?
        .query_row([cutoff_ns], |r| r.get(0))?;
    Ok(Seq(before.map_or(0, |s| s as u64 + 1)))
}

/// Seqs that must stay readable whatever their age: snapshots and clone bases.
pub fn retention_points(conn: &Connection) -> Result<Vec<Seq>> {
    let mut st =
        conn.prepare_cached("SELECT seq FROM snapshots UNION SELECT seq FROM clones ORDER BY 1")?;
    let rows = st.query_map([], |r| Ok(Seq(r.get::<_, i64>(0)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A row [born, died) is kept while a retention point p has born <= p < died. This SQL
/// fragment says so for the table aliased `t`.
const RETAINED: &str = "EXISTS (SELECT 1 FROM snapshots s WHERE s.seq >= t.born AND s.seq < t.died)
     OR EXISTS (SELECT 1 FROM clones c WHERE c.seq >= t.born AND c.seq < t.died)";

/// An ended revision visible at no retention point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadRevision {
    pub id: i64,
    pub ino: Ino,
    pub died: Seq,
    pub list: Option<ChunkHash>,
}

fn list_col(v: Option<Vec<u8>>) -> Option<ChunkHash> {
    v.and_then(|l| ChunkHash::from_slice(&l))
}

/// Ended revisions with `died <= window`, visible at no retention point, after the cursor
/// (died, id) in that order.
pub fn prunable_revisions(
    conn: &Connection,
    window: Seq,
    after: (u64, i64),
    limit: usize,
) -> Result<Vec<DeadRevision>> {
    let sql = format!(
        "SELECT t.id, t.ino, t.died, t.list FROM revisions t
         WHERE t.died IS NOT NULL AND t.died <= ?1 AND (t.died, t.id) > (?2, ?3)
           AND NOT ({RETAINED})
         ORDER BY t.died, t.id LIMIT ?4"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(
        params![window.0 as i64, after.0 as i64, after.1, limit as i64],
        |r| {
            Ok(DeadRevision {
                id: r.get(0)?,
                ino: Ino(r.get::<_, i64>(1)? as u64),
                died: Seq(r.get::<_, i64>(2)? as u64),
                list: list_col(r.get(3)?),
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Current revisions of unlinked inodes born at or before `window`, after inode `after`.
/// Whether one is open is the caller's to decide.
pub fn unlinked_revisions(
    conn: &Connection,
    window: Seq,
    after: i64,
    limit: usize,
) -> Result<Vec<DeadRevision>> {
    let mut st = conn.prepare_cached(
        "SELECT id, ino, born, list FROM revisions
         WHERE died IS NULL AND nlink = 0 AND born <= ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = st.query_map(params![window.0 as i64, after, limit as i64], |r| {
        Ok(DeadRevision {
            id: r.get(0)?,
            ino: Ino(r.get::<_, i64>(1)? as u64),
            died: Seq(r.get::<_, i64>(2)? as u64),
            list: list_col(r.get(3)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_revision(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM revisions WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Once an inode has no revisions left, its row and attributes go. Clone-side inodes keep
/// their row: without it the number would read its clone source again.
pub fn forget_inode_if_empty(conn: &Connection, ino: Ino) -> Result<bool> {
    let left = conn
        .prepare_cached(
            "SELECT 1 FROM revisions WHERE ino = ?1 AND died IS NULL
             UNION ALL SELECT 1 FROM revisions WHERE ino = ?1 AND died IS NOT NULL LIMIT 1",
        )?
        .query_row([ino.0 as i64], |_| Ok(()))
        .optional()?
        .is_some();
    let clone_side = conn
        .prepare_cached("SELECT 1 FROM clone_inos WHERE ino = ?1")?
        .query_row([ino.0 as i64], |_| Ok(()))
        .optional()?
        .is_some();
    if left {
        return Ok(false);
    }
    conn.prepare_cached("DELETE FROM xattrs WHERE ino = ?1")?
        .execute([ino.0 as i64])?;
    if !clone_side {
        conn.prepare_cached("DELETE FROM inodes WHERE ino = ?1")?
            .execute([ino.0 as i64])?;
    }
    Ok(true)
}

/// Delete up to `limit` ended directory entries visible at no retention point.
pub fn prune_dirents(conn: &Connection, window: Seq, limit: usize) -> Result<u64> {
    prune_rows(conn, "dirents", "id", window, limit)
}

/// Delete up to `limit` ended xattr rows visible at no retention point.
pub fn prune_xattrs(conn: &Connection, window: Seq, limit: usize) -> Result<u64> {
    prune_rows(conn, "xattrs", "rowid", window, limit)
}

fn prune_rows(conn: &Connection, table: &str, key: &str, window: Seq, limit: usize) -> Result<u64> {
    let sql = format!(
        "DELETE FROM {table} WHERE {key} IN (SELECT t.{key} FROM {table} t
         WHERE t.died IS NOT NULL AND t.died <= ?1 AND NOT ({RETAINED}) LIMIT ?2)"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .execute(params![window.0 as i64, limit as i64])? as u64)
}

/// What releasing references freed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    pub lists: u64,
    /// Chunk references dropped (chunks reaching zero are swept separately).
    pub chunk_refs: u64,
    /// Rows touched, to bound a batch.
    pub rows: u64,
}

/// Drop one reference to list `root`. A list reaching zero is deleted and drops its
/// children's references in turn, in the same transaction, so refcounts counted from scratch
/// always agree with the stored ones.
pub fn release_list(conn: &Connection, root: &ChunkHash, out: &mut Released) -> Result<()> {
    let mut stack = vec![*root];
    while let Some(h) = stack.pop() {
        out.rows += 1;
        let n: Option<i64> = conn
            .prepare_cached(
                "UPDATE lists SET refcount = refcount - 1 WHERE hash = ?1 RETURNING refcount",
            )?
            .query_row([&h.0[..]], |r| r.get(0))
            .optional()?;
        match n {
            None => {
                return Err(super::MetaError::Corrupt(format!(
                    "released chunk list {h} is not stored"
                )));
            }
            Some(n) if n > 0 => continue,
            Some(_) => {}
        }
        let node = lists::get(conn, &h)?.expect("just updated");
        conn.prepare_cached("DELETE FROM lists WHERE hash = ?1")?
            .execute([&h.0[..]])?;
        out.lists += 1;
        let (leaf, kids) = lists::children(&node)?;
        for k in kids {
            if !leaf {
                stack.push(k);
            } else if k != HOLE {
                super::chunks::add_ref(conn, &k, -1)?;
                out.chunk_refs += 1;
                out.rows += 1;
            }
        }
    }
    Ok(())
}

/// A chunk no list references, in a sealed superchunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadChunk {
    pub hash: ChunkHash,
    pub superchunk: SuperchunkId,
    pub stored_len: u64,
    pub raw_len: u64,
}

pub fn unreferenced_chunks(
    conn: &Connection,
    after: &[u8],
    limit: usize,
) -> Result<Vec<DeadChunk>> {
    let mut st = conn.prepare_cached(
        "SELECT c.hash, c.superchunk, c.stored_len, c.raw_len FROM chunks c
         WHERE c.refcount = 0 AND c.hash > ?1
           AND EXISTS (SELECT 1 FROM superchunks s WHERE s.id = c.superchunk)
         ORDER BY c.hash LIMIT ?2",
    )?;
    let rows = st.query_map(params![after, limit as i64], |r| {
        Ok(DeadChunk {
            hash: super::hash_col(r, 0)?,
            superchunk: SuperchunkId(r.get::<_, i64>(1)? as u64),
            stored_len: r.get::<_, i64>(2)? as u64,
            raw_len: r.get::<_, i64>(3)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Remove a chunk from the index; its bytes stop counting as live in its superchunk.
pub fn delete_chunk(conn: &Connection, c: &DeadChunk) -> Result<()> {
    conn.prepare_cached("DELETE FROM chunks WHERE hash = ?1 AND refcount = 0")?
        .execute([&c.hash.0[..]])?;
    add_live_bytes(conn, c.superchunk, -(c.stored_len as i64))
}

pub fn add_live_bytes(conn: &Connection, id: SuperchunkId, delta: i64) -> Result<()> {
    conn.prepare_cached("UPDATE superchunks SET live_bytes = live_bytes + ?2 WHERE id = ?1")?
        .execute(params![id.0 as i64, delta])?;
    Ok(())
}

/// A superchunk with its live bytes, for sweeping and repacking.
/// Superchunks no index row points into any more.
pub fn empty_superchunks(conn: &Connection, limit: usize) -> Result<Vec<SuperchunkRow>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {SUPERCHUNK_COLS} FROM superchunks s
         WHERE s.live_bytes <= 0 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.superchunk = s.id)
         ORDER BY s.start LIMIT ?1"
    ))?;
    let rows = st.query_map([limit as i64], superchunk_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Superchunks whose live bytes are below `fraction` of their extent, emptiest first.
pub fn sparse_superchunks(
    conn: &Connection,
    fraction: f64,
    limit: usize,
) -> Result<Vec<SuperchunkRow>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {SUPERCHUNK_COLS} FROM superchunks
         WHERE live_bytes > 0 AND live_bytes < len * ?1
         ORDER BY CAST(live_bytes AS REAL) / len LIMIT ?2"
    ))?;
    let rows = st.query_map(params![fraction, limit as i64], superchunk_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn superchunk_space(conn: &Connection, id: SuperchunkId) -> Result<Option<SuperchunkRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SUPERCHUNK_COLS} FROM superchunks WHERE id = ?1"
        ))?
        .query_row([id.0 as i64], superchunk_row)
        .optional()?)
}

/// Every index row pointing into a superchunk, in device order.
pub fn chunks_in(
    conn: &Connection,
    id: SuperchunkId,
) -> Result<Vec<(ChunkHash, super::chunks::Location)>> {
    let mut st = conn.prepare_cached(
        "SELECT hash, superchunk, offset, stored_len, raw_len, codec FROM chunks
         WHERE superchunk = ?1 ORDER BY offset",
    )?;
    let rows = st.query_map([id.0 as i64], |r| {
        Ok((super::hash_col(r, 0)?, super::chunks::location_at(r, 1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Superchunks whose live bytes differ from the stored lengths of the rows pointing into
/// them: (id, stored live_bytes, counted).
pub fn live_bytes_mismatches(conn: &Connection) -> Result<Vec<(u64, i64, i64)>> {
    let mut st = conn.prepare(
        "SELECT s.id, s.live_bytes, COALESCE((SELECT SUM(c.stored_len) FROM chunks c
                                              WHERE c.superchunk = s.id), 0) AS counted
         FROM superchunks s WHERE s.live_bytes != counted",
    )?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Store settings (`chunkfs config`).
pub fn config_get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM config WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub fn config_set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO config(key, value) VALUES (?1, ?2)")?
        .execute([key, value])?;
    Ok(())
}

/// For the reclaimable estimate: every list's refcount and body, and every chunk's refcount,
/// superchunk and stored length are read on demand through these.
pub fn chunk_space(
    conn: &Connection,
    hash: &ChunkHash,
) -> Result<Option<(i64, SuperchunkId, u64)>> {
    Ok(conn
        .prepare_cached("SELECT refcount, superchunk, stored_len FROM chunks WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| {
            Ok((
                r.get(0)?,
                SuperchunkId(r.get::<_, i64>(1)? as u64),
                r.get::<_, i64>(2)? as u64,
            ))
        })
        .optional()?)
}
