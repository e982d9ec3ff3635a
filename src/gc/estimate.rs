//! How many device bytes a full pass would free now, without changing anything: the same
//! pruning simulated in memory, for `stats` and statfs.

use super::{REPACK_BELOW, Retention};
use crate::chunker::ChunkHash;
use crate::meta::lists::{self, HOLE};
use crate::meta::{self, Ino, gc};
use crate::store::SECTOR;
use crate::store::superchunk::SuperchunkId;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};

const PAGE: usize = 4096;

pub fn reclaimable(conn: &Connection, ret: &Retention, open: &HashSet<Ino>) -> meta::Result<u64> {
    let mut roots = Vec::new();
    let mut cursor = (0, 0);
    loop {
        let page = gc::prunable_revisions(conn, ret.window, cursor, PAGE)?;
        for r in &page {
            cursor = (r.died.0, r.id);
            roots.extend(r.list);
        }
        if page.len() < PAGE {
            break;
        }
    }
    let mut after = 0;
    loop {
        let page = gc::unlinked_revisions(conn, ret.window, after, PAGE)?;
        for r in &page {
            after = r.id;
            if !open.contains(&r.ino) {
                roots.extend(r.list);
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    // References dropped, per list and per chunk.
    let mut list_drop: HashMap<ChunkHash, i64> = HashMap::new();
    let mut chunk_drop: HashMap<ChunkHash, i64> = HashMap::new();
    while let Some(h) = roots.pop() {
        let d = list_drop.entry(h).or_default();
        *d += 1;
        let left = lists::get_refcount(conn, &h)?.unwrap_or(0) - *d;
        if left != 0 {
            continue;
        }
        let Some(node) = lists::get(conn, &h)? else {
            continue;
        };
        let (leaf, kids) = lists::children(&node)?;
        for k in kids {
            if !leaf {
                roots.push(k);
            } else if k != HOLE {
                *chunk_drop.entry(k).or_default() += 1;
            }
        }
    }
    let mut dead: HashMap<SuperchunkId, u64> = HashMap::new();
    for (h, d) in chunk_drop {
        if let Some((n, sc, len)) = gc::chunk_space(conn, &h)?
            && n - d == 0
        {
            *dead.entry(sc).or_default() += len;
        }
    }
    let mut after = Vec::new();
    loop {
        let page = gc::unreferenced_chunks(conn, &after, PAGE)?;
        for c in &page {
            after = c.hash.0.to_vec();
            *dead.entry(c.superchunk).or_default() += c.stored_len;
        }
        if page.len() < PAGE {
            break;
        }
    }
    for s in gc::sparse_superchunks(conn, REPACK_BELOW, usize::MAX >> 1)? {
        dead.entry(s.id).or_default();
    }
    let mut total = 0;
    for (id, d) in dead {
        let Some(s) = gc::superchunk_space(conn, id)? else {
            continue;
        };
        let live = s.live_bytes.saturating_sub(d);
        if live == 0 {
            total += s.extent.len;
        } else if (live as f64) < s.extent.len as f64 * REPACK_BELOW {
            total += s.extent.len.saturating_sub(live.div_ceil(SECTOR) * SECTOR);
        }
    }
    Ok(total)
}
