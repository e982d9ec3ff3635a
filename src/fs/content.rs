//! A file's content: a flat sequence of entries (chunk or hole) and the content-addressed tree
//! of chunk lists it is stored as.
//! The tree's shape is `meta::lists::shape`'s.

use crate::chunker::ChunkHash;
use crate::meta::lists::{self, ListNode};
use crate::meta::{self, chunks};
use rusqlite::Connection;
use std::collections::HashMap;

/// The name of a hole: a run of zeros that is not stored.
pub use crate::meta::lists::HOLE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub hash: ChunkHash,
    pub len: u64,
}

impl Entry {
    pub fn is_hole(&self) -> bool {
        self.hash == HOLE
    }
}

/// A file's entries with their end offsets, for binary search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    entries: Vec<Entry>,
    ends: Vec<u64>,
}

impl Content {
    pub fn new(entries: Vec<Entry>) -> Content {
        let mut ends = Vec::with_capacity(entries.len());
        let mut end = 0;
        for e in &entries {
            end += e.len;
            ends.push(end);
        }
        Content { entries, ends }
    }

    pub fn size(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn start(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    pub fn end(&self, i: usize) -> u64 {
        self.ends[i]
    }

    /// Index of the entry holding byte `off`, if `off` is inside the content.
    pub fn find(&self, off: u64) -> Option<usize> {
        let i = self.ends.partition_point(|&e| e <= off);
        (i < self.entries.len()).then_some(i)
    }
}

/// Append an entry, merging holes and dropping empty entries.
pub fn push_entry(out: &mut Vec<Entry>, e: Entry) {
    if e.len == 0 {
        return;
    }
    if let Some(last) = out.last_mut()
        && last.is_hole()
        && e.is_hole()
    {
        last.len += e.len;
        return;
    }
    out.push(e);
}

/// Tree nodes built for one content, keyed by hash, ready to be referenced.
pub struct Tree {
    pub root: Option<ChunkHash>,
    nodes: HashMap<ChunkHash, ListNode>,
}

/// Build the tree of chunk lists for `entries`.
pub fn build(entries: &[Entry]) -> Tree {
    if entries.is_empty() {
        return Tree {
            root: None,
            nodes: HashMap::new(),
        };
    }
    let ((root, _), nodes) = lists::shape(entries.iter().map(|e| (e.hash, e.len)).collect());
    Tree {
        root: Some(root),
        nodes: nodes.into_iter().collect(),
    }
}

impl Tree {
    /// Store the nodes the database lacks, each referencing its children. The root gets its
    /// references from the revisions that point at it (`namespace::put_revision`).
    pub fn store(&self, conn: &Connection) -> meta::Result<()> {
        match &self.root {
            Some(root) => self.store_node(conn, root),
            None => Ok(()),
        }
    }

    fn store_node(&self, conn: &Connection, hash: &ChunkHash) -> meta::Result<()> {
        if lists::get_refcount(conn, hash)?.is_some() {
            return Ok(());
        }
        let node = self.nodes.get(hash).ok_or_else(|| {
            meta::MetaError::Corrupt(format!("chunk list {hash} is neither stored nor built"))
        })?;
        lists::insert(conn, hash, node)?;
        for (child, _) in lists::decode(&node.body)? {
            if node.depth == 0 {
                if child != HOLE {
                    chunks::add_ref(conn, &child, 1)?;
                }
            } else {
                self.store_node(conn, &child)?;
                lists::add_ref(conn, &child, 1)?;
            }
        }
        Ok(())
    }
}

/// Load a file's entries from its root list.
pub fn load(conn: &Connection, root: Option<ChunkHash>) -> meta::Result<Content> {
    let mut out = Vec::new();
    if let Some(root) = root {
        load_into(conn, &root, &mut out)?;
    }
    Ok(Content::new(out))
}

fn load_into(conn: &Connection, hash: &ChunkHash, out: &mut Vec<Entry>) -> meta::Result<()> {
    let node = lists::get(conn, hash)?
        .ok_or_else(|| meta::MetaError::Corrupt(format!("missing chunk list {hash}")))?;
    for (child, len) in lists::decode(&node.body)? {
        if node.depth == 0 {
            out.push(Entry { hash: child, len });
        } else {
            load_into(conn, &child, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: u32) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                hash: ChunkHash::of(&i.to_le_bytes()),
                len: 1000 + i as u64,
            })
            .collect()
    }

    #[test]
    fn a_large_list_becomes_a_tree_with_one_root() {
        let t = build(&entries(5000));
        assert!(t.root.is_some());
        assert!(t.nodes.len() > 50);
        let root = &t.nodes[&t.root.unwrap()];
        assert!(root.depth >= 1);
        assert_eq!(root.size, (0..5000u64).map(|i| 1000 + i).sum::<u64>());
    }

    #[test]
    fn changing_one_entry_changes_few_nodes() {
        let a = entries(5000);
        let mut b = a.clone();
        b[2500].hash = ChunkHash::of(b"changed");
        let (ta, tb) = (build(&a), build(&b));
        let new = tb
            .nodes
            .keys()
            .filter(|h| !ta.nodes.contains_key(h))
            .count();
        assert!(new <= 4, "{new} new nodes");
    }

    #[test]
    fn content_find_locates_entries() {
        let c = Content::new(vec![
            Entry {
                hash: HOLE,
                len: 10,
            },
            Entry { hash: HOLE, len: 5 },
        ]);
        assert_eq!(c.find(0), Some(0));
        assert_eq!(c.find(9), Some(0));
        assert_eq!(c.find(10), Some(1));
        assert_eq!(c.find(15), None);
        assert_eq!(c.size(), 15);
    }
}
