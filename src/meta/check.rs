//! Consistency checks recomputed from the metadata alone: refcounts and space. Tests run them
//! after every step; fsck builds on them.

use super::Result;
use super::lists::HOLE;
use super::{chunks, lists, namespace};
use crate::chunker::ChunkHash;
use crate::store::freemap::{Extent, FreeMap};
use crate::store::superblock::SUPERBLOCK_LEN;
use rusqlite::Connection;
use std::collections::HashMap;

/// Every chunk and list refcount recomputed from revisions and list bodies, compared with
/// the stored counts. Nodes with no references contribute nothing to their children.
pub fn refcounts(conn: &Connection) -> Result<Vec<String>> {
    let mut list_refs: HashMap<ChunkHash, i64> = HashMap::new();
    for h in namespace::all_list_refs(conn)? {
        *list_refs.entry(h).or_default() += 1;
    }
    let nodes = lists::all(conn)?;
    let mut chunk_refs: HashMap<ChunkHash, i64> = HashMap::new();
    for (_, node) in &nodes {
        let (leaf, kids) = lists::children(node)?;
        for k in kids {
            if leaf {
                if k != HOLE {
                    *chunk_refs.entry(k).or_default() += 1;
                }
            } else {
                *list_refs.entry(k).or_default() += 1;
            }
        }
    }
    let mut problems = Vec::new();
    for (h, stored) in lists::all_refcounts(conn)? {
        let want = list_refs.remove(&h).unwrap_or(0);
        if want != stored {
            problems.push(format!(
                "chunk list {h}: refcount {stored}, references {want}"
            ));
        }
    }
    for (h, n) in list_refs {
        problems.push(format!(
            "chunk list {h} is referenced {n} times but not stored"
        ));
    }
    for (h, stored) in chunks::all_refcounts(conn)? {
        let want = chunk_refs.remove(&h).unwrap_or(0);
        if want != stored {
            problems.push(format!("chunk {h}: refcount {stored}, references {want}"));
        }
    }
    for (h, n) in chunk_refs {
        problems.push(format!(
            "chunk {h} is referenced {n} times but not in the index"
        ));
    }
    problems.sort();
    Ok(problems)
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
