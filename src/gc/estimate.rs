//! How many device bytes pruning would add to what garbage collection can free now, without
//! changing anything: the pruning simulated in memory, for `chunkfs stats` only (statfs reads
//! counters and never runs this). What needs no pruning — superchunks with nothing
//! referenced, the dead part of sparse ones — is the `dead_bytes` counter
//! (`meta::counters`); this adds what releasing prunable revisions would leave dead.
//!
//! The cost grows with the history outside the window (prunable, or kept by a snapshot) and
//! unlinked files, not with the whole store, and is bounded by a row budget: past it the
//! figure is a lower bound.

use super::Retention;
use crate::chunker::ChunkHash;
use crate::meta::lists::{self, HOLE};
use crate::meta::{self, Ino, counters, gc};
use crate::store::superchunk::SuperchunkId;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};

const PAGE: usize = 4096;

/// What a full pass would free beyond the `dead_bytes` counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    pub beyond_dead: u64,
    /// False when the row budget ran out: `beyond_dead` is then a lower bound.
    pub complete: bool,
}

/// Simulate pruning every revision a pass would prune now (`open`: inodes whose unlinked
/// state stays), visiting at most about `budget` rows.
pub fn reclaimable(
    conn: &Connection,
    ret: &Retention,
    open: &HashSet<Ino>,
    budget: usize,
) -> meta::Result<Estimate> {
    let mut rows = 0usize;
    let mut roots = Vec::new();
    let mut cursor = (0, 0);
    let mut complete = true;
    'prunable: loop {
        let page = gc::ended_revisions(conn, ret.window, cursor, PAGE)?;
        for r in &page {
            cursor = r.cursor();
            if !r.retained {
                roots.extend(r.list);
            }
            rows += 1;
            if rows >= budget {
                complete = false;
                break 'prunable;
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    let mut after = (0, 0);
    while complete {
        let page = gc::unlinked_revisions(conn, ret.window, after, PAGE)?;
        for r in &page {
            after = r.cursor();
            if !open.contains(&r.ino) {
                roots.extend(r.list);
            }
            rows += 1;
            if rows >= budget {
                complete = false;
                break;
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    // References dropped, per list and per chunk. A list is expanded only once every one of
    // its references is dropped, so stopping early only under-counts.
    let mut list_drop: HashMap<ChunkHash, i64> = HashMap::new();
    let mut chunk_drop: HashMap<ChunkHash, i64> = HashMap::new();
    while let Some(h) = roots.pop() {
        rows += 1;
        if rows >= budget {
            complete = false;
            break;
        }
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
    // Stored bytes each superchunk would stop referencing.
    let mut dropped: HashMap<SuperchunkId, i64> = HashMap::new();
    for (h, d) in chunk_drop {
        if let Some((n, sc, len)) = gc::chunk_space(conn, &h)?
            && n > 0
            && n - d == 0
        {
            *dropped.entry(sc).or_default() += len as i64;
        }
    }
    let mut beyond_dead = 0;
    for (id, d) in dropped {
        let Some((len, referenced)) = counters::referenced(conn, id)? else {
            continue;
        };
        beyond_dead += counters::dead_share(len, referenced - d)
            .saturating_sub(counters::dead_share(len, referenced));
    }
    Ok(Estimate {
        beyond_dead,
        complete,
    })
}
