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
/// Seqs of a commit are those after the previous commit's seq, up to its own. One seek on
/// `commits_by_time`: the commit latest in time before the cutoff. Commit times follow seqs
/// unless the clock stepped back; then this is an earlier seq than the highest before the
/// cutoff, and the window starts earlier (keeps more), never later.
pub fn window_start(conn: &Connection, cutoff_ns: i64) -> Result<Seq> {
    let before: Option<i64> = conn
        .prepare_cached(WINDOW_START)?
        .query_row([cutoff_ns], |r| r.get(0))
        .optional()?;
    Ok(Seq(before.map_or(0, |s| s as u64 + 1)))
}

const WINDOW_START: &str = "SELECT seq FROM commits WHERE time < ?1 ORDER BY time DESC LIMIT 1";

/// Seqs that must stay readable whatever their age: snapshots and clone bases. As many rows
/// as there are snapshots and clones (each pass reads them).
pub fn retention_points(conn: &Connection) -> Result<Vec<Seq>> {
    let mut st =
        conn.prepare_cached("SELECT seq FROM snapshots UNION SELECT seq FROM clones ORDER BY 1")?;
    let rows = st.query_map([], |r| Ok(Seq(r.get::<_, i64>(0)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A row [born, died) is kept while a retention point p has born <= p < died. This SQL
/// expression says so for the table aliased `t` (two seeks, on `snapshots_by_seq` and
/// `clones_by_seq`).
const RETAINED: &str = "EXISTS (SELECT 1 FROM snapshots s WHERE s.seq >= t.born AND s.seq < t.died)
     OR EXISTS (SELECT 1 FROM clones c WHERE c.seq >= t.born AND c.seq < t.died)";

/// A position in (seq, id) order, where pages of history rows resume: rows after it come
/// next. Ended rows are ordered by `died`, unlinked files by `born`.
pub type Cursor = (u64, i64);

/// The cursor before every row whose seq is `from` or later.
pub fn before(from: Seq) -> Cursor {
    match from.0 {
        0 => (0, 0),
        n => (n - 1, i64::MAX),
    }
}

/// A revision a pass judges: an ended one (`seq` is when it ended) or the current state of
/// an unlinked inode (`seq` is when it was unlinked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadRevision {
    pub id: i64,
    pub ino: Ino,
    pub seq: Seq,
    pub list: Option<ChunkHash>,
    /// Visible at a snapshot or clone base (ended revisions only): it stays.
    pub retained: bool,
}

impl DeadRevision {
    pub fn cursor(&self) -> Cursor {
        (self.seq.0, self.id)
    }
}

fn list_col(v: Option<Vec<u8>>) -> Option<ChunkHash> {
    v.and_then(|l| ChunkHash::from_slice(&l))
}

/// Rows of `table t` (selecting `cols`) with `cond` (the partial index's condition, ending
/// in AND), paged in (t.seq, t.id) order.
struct Paged {
    cols: String,
    table: &'static str,
    cond: &'static str,
    seq: &'static str,
    id: &'static str,
}

impl Paged {
    /// The two queries of `paged`: the rest of one seq (?1 the seq, ?2 the id after which,
    /// ?3 the limit), and the seqs after it (?1 after, ?2 up to, ?3 the limit).
    fn sql(&self) -> [String; 2] {
        let Paged {
            cols,
            table,
            cond,
            seq,
            id,
        } = self;
        [
            format!(
                "SELECT {cols} FROM {table} t WHERE {cond} t.{seq} = ?1 AND t.{id} > ?2
                 ORDER BY t.{id} LIMIT ?3"
            ),
            format!(
                "SELECT {cols} FROM {table} t WHERE {cond} t.{seq} > ?1 AND t.{seq} <= ?2
                 ORDER BY t.{seq}, t.{id} LIMIT ?3"
            ),
        ]
    }

    fn ended_revisions() -> Paged {
        Paged {
            cols: format!("t.id, t.ino, t.died, t.list, {RETAINED}"),
            table: "revisions",
            cond: "t.died IS NOT NULL AND",
            seq: "died",
            id: "id",
        }
    }

    fn unlinked() -> Paged {
        Paged {
            cols: "t.id, t.ino, t.born, t.list".into(),
            table: "revisions",
            cond: "t.died IS NULL AND t.nlink = 0 AND",
            seq: "born",
            id: "id",
        }
    }

    fn ended_entries(which: Entries) -> Paged {
        let (table, id) = which.table();
        Paged {
            cols: format!("t.died, t.{id}, {RETAINED}"),
            table,
            cond: "t.died IS NOT NULL AND",
            seq: "died",
            id,
        }
    }
}

/// Up to `limit` rows of `q` after `after`, with a seq up to `upto`. Two seeks on an index
/// of (seq) whose rows end with the rowid `id`: the rest of `after`'s seq, then the later
/// seqs. One row-value range would not do: SQLite ranges such an index on its first column
/// only, and rereads every row of a seq shared by many.
fn paged<T>(
    conn: &Connection,
    q: &Paged,
    upto: Seq,
    after: Cursor,
    limit: usize,
    mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let [same, later] = q.sql();
    let mut out = Vec::new();
    if after.0 <= upto.0 {
        let mut st = conn.prepare_cached(&same)?;
        let rows = st.query_map(params![after.0 as i64, after.1, limit as i64], &mut row)?;
        for r in rows {
            out.push(r?);
        }
    }
    if out.len() < limit {
        let mut st = conn.prepare_cached(&later)?;
        let left = (limit - out.len()) as i64;
        let rows = st.query_map(params![after.0 as i64, upto.0 as i64, left], &mut row)?;
        for r in rows {
            out.push(r?);
        }
    }
    Ok(out)
}

/// Ended revisions with `died <= window`, after the cursor (died, id), each marked whether a
/// retention point keeps it: `limit` rows read, whatever they turn out to be.
pub fn ended_revisions(
    conn: &Connection,
    window: Seq,
    after: Cursor,
    limit: usize,
) -> Result<Vec<DeadRevision>> {
    paged(conn, &Paged::ended_revisions(), window, after, limit, |r| {
        Ok(DeadRevision {
            id: r.get(0)?,
            ino: Ino(r.get::<_, i64>(1)? as u64),
            seq: Seq(r.get::<_, i64>(2)? as u64),
            list: list_col(r.get(3)?),
            retained: r.get(4)?,
        })
    })
}

/// Current revisions of unlinked inodes, unlinked at or before `window`, after the cursor
/// (born, id). Whether one is open is the caller's to decide.
pub fn unlinked_revisions(
    conn: &Connection,
    window: Seq,
    after: Cursor,
    limit: usize,
) -> Result<Vec<DeadRevision>> {
    paged(conn, &Paged::unlinked(), window, after, limit, |r| {
        Ok(DeadRevision {
            id: r.get(0)?,
            ino: Ino(r.get::<_, i64>(1)? as u64),
            seq: Seq(r.get::<_, i64>(2)? as u64),
            list: list_col(r.get(3)?),
            retained: false,
        })
    })
}

/// Whether any revision, directory entry or xattr ended in [from, upto]: history a pass that
/// judged everything ended before `from` has still to judge. Three seeks.
pub fn ended_between(conn: &Connection, from: Seq, upto: Seq) -> Result<bool> {
    for table in ["revisions", "dirents", "xattrs"] {
        let found = conn
            .prepare_cached(&ended_between_sql(table))?
            .query_row(params![from.0 as i64, upto.0 as i64], |_| Ok(()))
            .optional()?;
        if found.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
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

fn ended_between_sql(table: &str) -> String {
    format!("SELECT 1 FROM {table} WHERE died >= ?1 AND died <= ?2 LIMIT 1")
}

/// History rows other than revisions: directory entries and xattrs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entries {
    Dirents,
    Xattrs,
}

impl Entries {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Entries::Dirents => ("dirents", "id"),
            Entries::Xattrs => ("xattrs", "rowid"),
        }
    }
}

/// Ended rows of `which` with `died <= window` after the cursor (died, id): each row's
/// cursor and whether a retention point keeps it.
pub fn ended_entries(
    conn: &Connection,
    which: Entries,
    window: Seq,
    after: Cursor,
    limit: usize,
) -> Result<Vec<(Cursor, bool)>> {
    paged(
        conn,
        &Paged::ended_entries(which),
        window,
        after,
        limit,
        |r| Ok(((r.get::<_, i64>(0)? as u64, r.get(1)?), r.get(2)?)),
    )
}

pub fn delete_entry(conn: &Connection, which: Entries, id: i64) -> Result<()> {
    let (table, key) = which.table();
    conn.prepare_cached(&format!("DELETE FROM {table} WHERE {key} = ?1"))?
        .execute([id])?;
    Ok(())
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

/// Up to `limit` chunks at refcount zero after `after` (superchunk, hash), in sealed
/// superchunks. A seek on `chunks_unreferenced`: as many rows read as there are dead chunks.
pub fn unreferenced_chunks(
    conn: &Connection,
    after: &(u64, Vec<u8>),
    limit: usize,
) -> Result<Vec<DeadChunk>> {
    let mut st = conn.prepare_cached(UNREFERENCED)?;
    let rows = st.query_map(params![after.0 as i64, after.1, limit as i64], |r| {
        Ok(DeadChunk {
            hash: super::hash_col(r, 0)?,
            superchunk: SuperchunkId(r.get::<_, i64>(1)? as u64),
            stored_len: r.get::<_, i64>(2)? as u64,
            raw_len: r.get::<_, i64>(3)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

const UNREFERENCED: &str = "SELECT c.hash, c.superchunk, c.stored_len, c.raw_len FROM chunks c
     WHERE c.refcount = 0 AND (c.superchunk, c.hash) > (?1, ?2)
       AND EXISTS (SELECT 1 FROM superchunks s WHERE s.id = c.superchunk)
     ORDER BY c.superchunk, c.hash LIMIT ?3";

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

/// Superchunks no index row points into any more: a range of `superchunks_by_live`.
pub fn empty_superchunks(conn: &Connection, limit: usize) -> Result<Vec<SuperchunkRow>> {
    let mut st = conn.prepare_cached(&empty_sql())?;
    let rows = st.query_map([limit as i64], superchunk_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn empty_sql() -> String {
    format!(
        "SELECT {SUPERCHUNK_COLS} FROM superchunks s
         WHERE s.live_bytes <= 0 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.superchunk = s.id)
         ORDER BY s.start LIMIT ?1"
    )
}

/// Superchunks less than half live (`gc::REPACK_BELOW`) and created at or before
/// `created_before` (unix seconds), emptiest first: the repack candidates. A range of
/// `superchunks_sparse`, which holds only superchunks under half live.
pub fn sparse_superchunks(
    conn: &Connection,
    created_before: i64,
    limit: usize,
) -> Result<Vec<SuperchunkRow>> {
    let mut st = conn.prepare_cached(&sparse_sql())?;
    let rows = st.query_map(params![created_before, limit as i64], superchunk_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The condition is the partial index's, word for word (SQLite matches it so, and does not
/// match `live_bytes * 2 < len`); `+` keeps `superchunks_by_live` out of the plan.
fn sparse_sql() -> String {
    format!(
        "SELECT {SUPERCHUNK_COLS} FROM superchunks
         WHERE live_bytes < len - live_bytes AND created <= ?1 AND +live_bytes > 0
         ORDER BY CAST(live_bytes AS REAL) / len LIMIT ?2"
    )
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

#[cfg(test)]
mod tests {
    use super::super::counters::tests::plan;
    use super::*;

    /// Every query a GC pass runs (and the check before one), with the index each must
    /// seek. A step may also be a correlated lookup or a sort of the (bounded) rows found;
    /// never a scan. These plans are recorded in docs/FORMAT.md ("Garbage collection").
    #[test]
    fn every_query_of_a_gc_pass_seeks_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::meta::open(&dir.path().join("meta.db"), true).unwrap();
        let [rev_same, rev_later] = Paged::ended_revisions().sql();
        let [unl_same, unl_later] = Paged::unlinked().sql();
        let [dir_same, dir_later] = Paged::ended_entries(Entries::Dirents).sql();
        let [xat_same, xat_later] = Paged::ended_entries(Entries::Xattrs).sql();
        let retained = [
            "CORRELATED SCALAR SUBQUERY 1",
            "SEARCH s USING COVERING INDEX snapshots_by_seq (seq>? AND seq<?)",
            "CORRELATED SCALAR SUBQUERY 2",
            "SEARCH c USING COVERING INDEX clones_by_seq (seq>? AND seq<?)",
        ];
        let with = |first: &str, rest: &[&str]| {
            let mut v = vec![first.to_string()];
            v.extend(rest.iter().map(|s| s.to_string()));
            v
        };
        let cases: Vec<(String, Vec<String>)> = vec![
            (
                WINDOW_START.into(),
                with(
                    "SEARCH commits USING COVERING INDEX commits_by_time (time<?)",
                    &[],
                ),
            ),
            (
                rev_same,
                with(
                    "SEARCH t USING INDEX revisions_dead (died=? AND rowid>?)",
                    &retained,
                ),
            ),
            (
                rev_later,
                with(
                    "SEARCH t USING INDEX revisions_dead (died>? AND died<?)",
                    &retained,
                ),
            ),
            (
                unl_same,
                with(
                    "SEARCH t USING INDEX revisions_unlinked (born=? AND rowid>?)",
                    &[],
                ),
            ),
            (
                unl_later,
                with(
                    "SEARCH t USING INDEX revisions_unlinked (born>? AND born<?)",
                    &[],
                ),
            ),
            (
                dir_same,
                with(
                    "SEARCH t USING INDEX dirents_dead (died=? AND rowid>?)",
                    &retained,
                ),
            ),
            (
                dir_later,
                with(
                    "SEARCH t USING INDEX dirents_dead (died>? AND died<?)",
                    &retained,
                ),
            ),
            (
                xat_same,
                with(
                    "SEARCH t USING INDEX xattrs_dead (died=? AND rowid>?)",
                    &retained,
                ),
            ),
            (
                xat_later,
                with(
                    "SEARCH t USING INDEX xattrs_dead (died>? AND died<?)",
                    &retained,
                ),
            ),
            (
                UNREFERENCED.into(),
                with(
                    "SEARCH c USING INDEX chunks_unreferenced ((superchunk,hash)>(?,?))",
                    &[
                        "CORRELATED SCALAR SUBQUERY 1",
                        "SEARCH s USING INTEGER PRIMARY KEY (rowid=?)",
                    ],
                ),
            ),
            (
                empty_sql(),
                with(
                    "SEARCH s USING INDEX superchunks_by_live (live_bytes<?)",
                    &[
                        "CORRELATED SCALAR SUBQUERY 1",
                        "SEARCH c USING COVERING INDEX chunks_by_superchunk (superchunk=?)",
                        "USE TEMP B-TREE FOR ORDER BY",
                    ],
                ),
            ),
            (
                sparse_sql(),
                with(
                    "SEARCH superchunks USING INDEX superchunks_sparse (created<?)",
                    &["USE TEMP B-TREE FOR ORDER BY"],
                ),
            ),
        ];
        let mut cases = cases;
        for t in ["revisions", "dirents", "xattrs"] {
            cases.push((
                ended_between_sql(t),
                with(
                    &format!("SEARCH {t} USING COVERING INDEX {t}_dead (died>? AND died<?)"),
                    &[],
                ),
            ));
        }
        for (sql, want) in cases {
            assert_eq!(plan(&conn, &sql), want, "{sql}");
        }
    }
}
