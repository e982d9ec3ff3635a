//! Consistency checks recomputed from the metadata alone: the database file itself (pages,
//! schema, foreign keys), refcounts and space. Tests run them after every step; fsck builds
//! on them.

use super::Result;
use super::lists::HOLE;
use super::{chunks, lists, namespace};
use crate::chunker::ChunkHash;
use crate::store::freemap::{Extent, FreeMap};
use crate::store::superblock::SUPERBLOCK_LEN;
use rusqlite::Connection;
use std::collections::HashMap;

/// The database file itself: SQLite's own check of every page and index (`integrity_check`,
/// or `quick_check` with `quick`, which skips comparing indexes with their tables), the schema
/// against the migrations, and the declared foreign keys. One line per problem; empty when
/// the file is sound. When this finds anything, no other check can be trusted.
pub fn database(conn: &Connection, quick: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    match pragma_lines(conn, &format!("PRAGMA {pragma}(100)")) {
        Ok(lines) => out.extend(
            lines
                .into_iter()
                .filter(|l| l != "ok")
                .map(|l| format!("SQLite {pragma}: {l}")),
        ),
        Err(e) => out.push(format!("SQLite {pragma} cannot read the pages: {e}")),
    }
    match super::schema::differences(conn) {
        Ok(d) => out.extend(d.into_iter().map(|l| format!("schema: {l}"))),
        Err(e) => out.push(format!("schema: cannot be read: {e}")),
    }
    // Only meaningful once the tables it names exist.
    if out.is_empty() {
        let mut st = conn.prepare("PRAGMA foreign_key_check")?;
        let rows = st.query_map([], |r| {
            Ok(format!(
                "foreign key: row {} of {} refers to a missing row of {}",
                r.get::<_, Option<i64>>(1)?
                    .map_or("?".to_string(), |v| v.to_string()),
                r.get::<_, String>(0)?,
                r.get::<_, String>(2)?
            ))
        })?;
        for l in rows {
            out.push(l?);
        }
    }
    Ok(out)
}

fn pragma_lines(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// What a refcount counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    List,
    Chunk,
}

/// A stored refcount that differs from the references counted from scratch. `stored` is None
/// when something references a list or chunk that is not stored at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefcountMismatch {
    pub what: Counted,
    pub hash: ChunkHash,
    pub stored: Option<i64>,
    pub counted: i64,
}

impl std::fmt::Display for RefcountMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.what {
            Counted::List => "chunk list",
            Counted::Chunk => "chunk",
        };
        match self.stored {
            Some(n) => write!(
                f,
                "{what} {}: refcount {n}, counted {}",
                self.hash, self.counted
            ),
            None => write!(
                f,
                "{what} {} is referenced {} times but not stored",
                self.hash, self.counted
            ),
        }
    }
}

/// References counted from scratch: revisions reference lists; lists that are themselves
/// referenced reference their children. Unreferenced nodes count for nothing, so a node
/// waiting for garbage collection does not keep its children alive.
pub fn counted_refcounts(
    conn: &Connection,
) -> Result<(HashMap<ChunkHash, i64>, HashMap<ChunkHash, i64>)> {
    let mut list_refs: HashMap<ChunkHash, i64> = HashMap::new();
    for h in namespace::all_list_refs(conn)? {
        *list_refs.entry(h).or_default() += 1;
    }
    let mut nodes = lists::all(conn)?;
    // Parents have greater depth than their children: visit top down.
    nodes.sort_by_key(|n| std::cmp::Reverse(n.1.depth));
    let mut chunk_refs: HashMap<ChunkHash, i64> = HashMap::new();
    for (hash, node) in &nodes {
        if list_refs.get(hash).copied().unwrap_or(0) == 0 {
            continue;
        }
        let (leaf, kids) = lists::children(node)?;
        for k in kids {
            if !leaf {
                *list_refs.entry(k).or_default() += 1;
            } else if k != HOLE {
                *chunk_refs.entry(k).or_default() += 1;
            }
        }
    }
    Ok((list_refs, chunk_refs))
}

/// Every stored refcount compared with the references counted from scratch.
pub fn refcounts(conn: &Connection) -> Result<Vec<RefcountMismatch>> {
    let (mut list_refs, mut chunk_refs) = counted_refcounts(conn)?;
    let mut out = Vec::new();
    for (what, stored, counted) in [
        (Counted::List, lists::all_refcounts(conn)?, &mut list_refs),
        (
            Counted::Chunk,
            chunks::all_refcounts(conn)?,
            &mut chunk_refs,
        ),
    ] {
        for (hash, n) in stored {
            let c = counted.remove(&hash).unwrap_or(0);
            if c != n {
                out.push(RefcountMismatch {
                    what,
                    hash,
                    stored: Some(n),
                    counted: c,
                });
            }
        }
        for (hash, c) in counted.drain() {
            if c > 0 {
                out.push(RefcountMismatch {
                    what,
                    hash,
                    stored: None,
                    counted: c,
                });
            }
        }
    }
    out.sort_by_key(|m| (m.what as u8, m.hash));
    Ok(out)
}

/// The free map and superchunk extents must tile the data area exactly: no overlap, no leak.
pub fn space(conn: &Connection, freemap: &FreeMap, capacity: u64) -> Result<Vec<String>> {
    let mut used: Vec<(Extent, String)> = chunks::superchunks(conn)?
        .into_iter()
        .map(|s| (s.extent, format!("superchunk {}", s.id.0)))
        .collect();
    used.extend(freemap.extents().map(|e| (e, "free extent".to_string())));
    let stored = chunks::free_extents(conn)?;
    let mut problems = Vec::new();
    let mem: Vec<Extent> = freemap.extents().collect();
    if FreeMap::from_extents(stored.clone())
        .map(|m| m.extents().collect::<Vec<_>>())
        .ok()
        != Some(mem)
    {
        problems.push("the free map in memory differs from the one in the database".to_string());
    }
    for (id, stored, counted) in super::gc::live_bytes_mismatches(conn)? {
        problems.push(format!(
            "superchunk {id} records {stored} live bytes, its chunks add up to {counted}"
        ));
    }
    used.sort_by_key(|(e, _)| e.start);
    let mut pos = SUPERBLOCK_LEN;
    for (e, what) in &used {
        if e.start < pos {
            problems.push(format!(
                "{what} at {} overlaps the extent before it",
                e.start
            ));
        } else if e.start > pos {
            problems.push(format!(
                "bytes {pos}..{} are neither free nor used (leaked)",
                e.start
            ));
        }
        pos = pos.max(e.end());
    }
    if pos != capacity {
        problems.push(format!(
            "space from {pos} to the capacity {capacity} is unaccounted for"
        ));
    }
    Ok(problems)
}
