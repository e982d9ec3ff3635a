//! From damaged chunks to what a person cares about: every path, revision (seq range and
//! time) and byte range that uses each chunk, current or historical.

use super::data::Damage;
use super::{DamagedChunk, Result};
use crate::chunker::ChunkHash;
use crate::meta::lists::{self, ListNode};
use crate::meta::{Ino, Seq, history, namespace};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// One use of a damaged chunk: a byte range of one revision of one file.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Affected {
    pub path: String,
    pub ino: u64,
    /// The revision is valid for seq_from <= seq < seq_to; seq_to is None while current.
    pub seq_from: u64,
    pub seq_to: Option<u64>,
    /// When the revision was committed (unix nanoseconds), if known.
    pub time_ns: Option<i64>,
    pub offset: u64,
    pub length: u64,
    /// Snapshots that see this revision.
    pub snapshots: Vec<String>,
}

struct Lists {
    nodes: HashMap<ChunkHash, ListNode>,
    /// Memo: does the node (transitively) use a damaged chunk?
    bad: HashMap<ChunkHash, bool>,
}

impl Lists {
    fn uses_damaged(&mut self, hash: &ChunkHash, damaged: &HashSet<ChunkHash>) -> bool {
        if let Some(b) = self.bad.get(hash) {
            return *b;
        }
        let Some(node) = self.nodes.get(hash) else {
            return false;
        };
        let Ok((leaf, kids)) = lists::children(node) else {
            return false;
        };
        // No short cut: `damaged_ranges` relies on every child's verdict being memoized.
        let b = if leaf {
            kids.iter().any(|k| damaged.contains(k))
        } else {
            kids.iter()
                .fold(false, |any, k| self.uses_damaged(k, damaged) | any)
        };
        self.bad.insert(*hash, b);
        b
    }

    /// (offset, length, hash) of every leaf entry under `hash` that is damaged.
    fn damaged_ranges(
        &self,
        hash: &ChunkHash,
        damaged: &HashSet<ChunkHash>,
        base: u64,
        out: &mut Vec<(u64, u64, ChunkHash)>,
    ) {
        let Some(node) = self.nodes.get(hash) else {
            return;
        };
        let Ok(entries) = lists::decode(&node.body) else {
            return;
        };
        let mut off = base;
        for (h, len) in entries {
            if node.depth == 0 {
                if damaged.contains(&h) {
                    out.push((off, len, h));
                }
            } else if self.bad.get(&h).copied().unwrap_or(false) {
                self.damaged_ranges(&h, damaged, off, out);
            }
            off += len;
        }
    }
}

/// The path of `ino` at `seq` (or now), "?" for parts that cannot be resolved.
pub fn path_at(conn: &Connection, ino: Ino, seq: Option<Seq>) -> Result<String> {
    let mut parts = Vec::new();
    let mut cur = ino;
    let mut guard = 0;
    while cur != Ino::ROOT && guard < 4096 {
        guard += 1;
        let row = namespace::name_of(conn, cur, seq)?;
        match row {
            Some((p, name)) => {
                parts.push(String::from_utf8_lossy(&name).into_owned());
                cur = p;
            }
            None => {
                parts.push(format!("<unlinked inode {}>", cur.0));
                break;
            }
        }
    }
    parts.reverse();
    Ok(format!("/{}", parts.join("/")))
}

pub(super) fn name_files(conn: &Connection, damage: Vec<Damage>) -> Result<Vec<DamagedChunk>> {
    if damage.is_empty() {
        return Ok(Vec::new());
    }
    let damaged: HashSet<ChunkHash> = damage.iter().map(|d| d.hash).collect();
    let mut lists = Lists {
        nodes: lists::all(conn)?.into_iter().collect(),
        bad: HashMap::new(),
    };
    let mut uses: HashMap<ChunkHash, Vec<Affected>> = HashMap::new();
    for (span, root) in namespace::all_content_spans(conn)? {
        let (ino, born, died) = (span.ino.0, span.born.0, span.died.map(|d| d.0));
        if !lists.uses_damaged(&root, &damaged) {
            continue;
        }
        let mut ranges = Vec::new();
        lists.damaged_ranges(&root, &damaged, 0, &mut ranges);
        let seq = if died.is_some() {
            Some(Seq(born))
        } else {
            None
        };
        let path = path_at(conn, Ino(ino), seq)?;
        let time_ns = history::time_of_seq(conn, span.born)?;
        let snapshots = history::snapshots_within(conn, span.born, span.died)?;
        for (offset, length, hash) in ranges {
            uses.entry(hash).or_default().push(Affected {
                path: path.clone(),
                ino,
                seq_from: born,
                seq_to: died,
                time_ns,
                offset,
                length,
                snapshots: snapshots.clone(),
            });
        }
    }
    Ok(damage
        .into_iter()
        .map(|d| DamagedChunk {
            hash: d.hash.to_hex(),
            superchunk: d.superchunk,
            problem: d.problem.to_string(),
            detail: d.detail,
            files: uses.remove(&d.hash).unwrap_or_default(),
        })
        .collect())
}
