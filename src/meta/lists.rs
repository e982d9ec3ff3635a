//! Chunk-list tree nodes: content-addressed, refcounted blobs, and their body encoding. The
//! tree shape belongs to `fs::content`; this module stores, encodes and counts nodes.

use super::Result;
use crate::chunker::ChunkHash;
use rusqlite::{Connection, OptionalExtension, params};

/// The name of a hole in a leaf: a run of zeros that is not stored.
pub const HOLE: ChunkHash = ChunkHash([0; 32]);

/// Each entry of a node body: a child hash (chunk or list) and the bytes it covers.
const ENTRY_LEN: usize = 40;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListNode {
    pub depth: u32,
    pub size: u64,
    pub body: Vec<u8>,
}

/// Most children a node holds.
pub const NODE_MAX: usize = 256;

/// The tree of chunk lists over `level` (each chunk's hash and length, in file order; never
/// empty): every node from the leaves up, and the root with its size. The shape is fixed by
/// content alone (docs/FORMAT.md, "Tree shape"): a node ends after a child whose hash's first
/// byte has its low 6 bits clear (one in 64), after `NODE_MAX` children, or at the end; upper
/// levels are cut the same way over child hashes. So changing one chunk changes one leaf and
/// the path above it, and identical runs of chunks anywhere give identical nodes. The
/// filesystem and a metadata rebuild both cut trees here, so their nodes deduplicate.
pub fn shape(mut level: Vec<(ChunkHash, u64)>) -> ((ChunkHash, u64), Vec<(ChunkHash, ListNode)>) {
    assert!(!level.is_empty(), "an empty content has no tree");
    let mut nodes = Vec::new();
    let mut depth = 0u32;
    loop {
        let mut parents = Vec::new();
        let mut start = 0;
        for i in 0..level.len() {
            let last = i + 1 == level.len();
            if last || level[i].0.0[0] & 0x3f == 0 || i + 1 - start == NODE_MAX {
                let group = &level[start..=i];
                let body = encode(group);
                let hash = ChunkHash::of(&body);
                let size = group.iter().map(|(_, l)| l).sum();
                nodes.push((hash, ListNode { depth, size, body }));
                parents.push((hash, size));
                start = i + 1;
            }
        }
        if parents.len() == 1 {
            return (parents[0], nodes);
        }
        level = parents;
        depth += 1;
    }
}

/// Encode a node body: for each child, its hash then its length (u64 LE).
pub fn encode(entries: &[(ChunkHash, u64)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for (h, len) in entries {
        body.extend_from_slice(&h.0);
        body.extend_from_slice(&len.to_le_bytes());
    }
    body
}

pub fn decode(body: &[u8]) -> Result<Vec<(ChunkHash, u64)>> {
    if !body.len().is_multiple_of(ENTRY_LEN) {
        return Err(super::MetaError::Corrupt(
            "chunk list body has a partial entry".into(),
        ));
    }
    Ok(body
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let h = ChunkHash(e[..32].try_into().unwrap());
            (h, u64::from_le_bytes(e[32..].try_into().unwrap()))
        })
        .collect())
}

pub fn get(conn: &Connection, hash: &ChunkHash) -> Result<Option<ListNode>> {
    Ok(conn
        .prepare_cached("SELECT depth, size, body FROM lists WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| {
            Ok(ListNode {
                depth: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                body: r.get(2)?,
            })
        })
        .optional()?)
}

pub fn get_refcount(conn: &Connection, hash: &ChunkHash) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT refcount FROM lists WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| r.get(0))
        .optional()?)
}

/// Add `delta` references to an existing node; returns false if the node does not exist.
pub fn add_ref(conn: &Connection, hash: &ChunkHash, delta: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE lists SET refcount = refcount + ?2 WHERE hash = ?1")?
        .execute(params![&hash.0[..], delta])?
        == 1)
}

/// Insert a new node with no references yet. The caller references its children, and its
/// referrers add theirs.
pub fn insert(conn: &Connection, hash: &ChunkHash, node: &ListNode) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO lists(hash, depth, size, body, refcount) VALUES (?1, ?2, ?3, ?4, 0)",
    )?
    .execute(params![
        &hash.0[..],
        node.depth,
        node.size as i64,
        &node.body
    ])?;
    Ok(())
}

pub fn all_refcounts(conn: &Connection) -> Result<Vec<(ChunkHash, i64)>> {
    super::hash_counts(conn, "SELECT hash, refcount FROM lists")
}

/// The children a stored node references: (is_leaf, child hashes).
pub fn children(node: &ListNode) -> Result<(bool, Vec<ChunkHash>)> {
    Ok((
        node.depth == 0,
        decode(&node.body)?.into_iter().map(|(h, _)| h).collect(),
    ))
}

pub fn all(conn: &Connection) -> Result<Vec<(ChunkHash, ListNode)>> {
    let mut st = conn.prepare("SELECT hash, depth, size, body FROM lists")?;
    let rows = st.query_map([], |r| {
        Ok((
            super::hash_col(r, 0)?,
            ListNode {
                depth: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                body: r.get(3)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn set_refcount(conn: &Connection, hash: &ChunkHash, n: i64) -> Result<()> {
    conn.prepare_cached("UPDATE lists SET refcount = ?2 WHERE hash = ?1")?
        .execute(params![&hash.0[..], n])?;
    Ok(())
}
