//! The namespace as operations see it, at any point in time, with clones resolved.
//!
//! A directory clone records only its source and seq (`clones`); the inodes inside it are
//! clone-side inodes (`clone_inos`) that read their source's state as of that seq until they
//! are first changed. Changing one *materializes* it: it gets an inode row, and a directory
//! also gets its own copy of its entries (pointing at further clone-side inodes), so the
//! cost of a change is one directory, never the tree. Every read here goes through the same
//! resolution, at `When::Now` or at a past seq (snapshot and seq views).

use super::error::{FsError, Result};
use crate::meta::history::{self, Clone};
use crate::meta::namespace::{self, Dirent, FileKind, Revision};
use crate::meta::{Ino, Seq};
use rusqlite::Connection;

/// The point in time a read looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Now,
    At(Seq),
}

/// The clone `ino` stands in, if it reads a source's state at `when` rather than its own
/// rows. Called only after a query of its own rows found nothing, so hot paths on ordinary
/// inodes pay nothing for clones.
fn clone_source(conn: &Connection, ino: Ino, when: When) -> Result<Option<(Clone, Ino)>> {
    let own_since = namespace::inode_exists(conn, ino)?;
    let own = match (own_since, when) {
        (Some(_), When::Now) => true,
        (Some(born), When::At(s)) => born <= s,
        (None, _) => false,
    };
    if own {
        return Ok(None);
    }
    Ok(history::clone_ino(conn, ino)?.filter(|(c, _)| match when {
        When::Now => true,
        When::At(s) => c.born <= s,
    }))
}

/// The state of `ino` at `when`.
pub fn rev(conn: &Connection, ino: Ino, when: When) -> Result<Option<Revision>> {
    let own = match when {
        When::Now => namespace::current(conn, ino)?,
        When::At(s) => namespace::at(conn, ino, s)?,
    };
    if own.is_some() {
        return Ok(own);
    }
    match clone_source(conn, ino, when)? {
        Some((c, src)) => {
            let Some(mut r) = rev(conn, src, When::At(c.seq))? else {
                return Ok(None);
            };
            r.ino = ino;
            if r.kind != FileKind::Dir && r.nlink > 1 {
                // Like `cp -a`, a clone keeps hard links inside the tree, not those to outside.
                // (At least one: it was reached through the tree, even if its names there are
                // themselves clone-side and have no rows to count.)
                r.nlink = names_within(conn, src, c.src, c.seq)?.max(1);
            }
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

/// How many names `ino` had at `seq` inside the tree under `top`.
fn names_within(conn: &Connection, ino: Ino, top: Ino, seq: Seq) -> Result<u32> {
    let mut n = 0;
    for p in namespace::parents_at(conn, ino, seq)? {
        let mut dir = p;
        for _ in 0..4096 {
            if dir == top {
                n += 1;
                break;
            }
            match parent(conn, dir, When::At(seq))? {
                Some(up) if up != dir => dir = up,
                _ => break,
            }
        }
    }
    Ok(n)
}

pub fn rev_or_missing(conn: &Connection, ino: Ino, when: When) -> Result<Revision> {
    rev(conn, ino, when)?.ok_or(FsError::NotFound)
}

/// Map an entry of a clone's source into the clone.
fn mapped(conn: &Connection, c: &Clone, mut d: Dirent) -> Result<Dirent> {
    d.ino = history::map_clone_ino(conn, c.id, d.ino)?;
    Ok(d)
}

pub fn lookup(conn: &Connection, dir: Ino, name: &[u8], when: When) -> Result<Option<Dirent>> {
    let own = match when {
        When::Now => namespace::lookup(conn, dir, name)?,
        When::At(s) => namespace::lookup_at(conn, dir, name, s)?,
    };
    if own.is_some() {
        return Ok(own);
    }
    match clone_source(conn, dir, when)? {
        Some((c, src)) => match lookup(conn, src, name, When::At(c.seq))? {
            Some(d) => Ok(Some(mapped(conn, &c, d)?)),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// Entries of `dir` after cookie `after`, in a stable order.
pub fn list(
    conn: &Connection,
    dir: Ino,
    when: When,
    after: u64,
    limit: usize,
) -> Result<Vec<Dirent>> {
    let own = match when {
        When::Now => namespace::list_dir(conn, dir, after, limit)?,
        When::At(s) => namespace::list_dir_at(conn, dir, s, after, limit)?,
    };
    if !own.is_empty() {
        return Ok(own);
    }
    match clone_source(conn, dir, when)? {
        Some((c, src)) => list(conn, src, When::At(c.seq), after, limit)?
            .into_iter()
            .map(|d| mapped(conn, &c, d))
            .collect(),
        None => Ok(own),
    }
}

pub fn is_empty(conn: &Connection, dir: Ino) -> Result<bool> {
    Ok(list(conn, dir, When::Now, 0, 1)?.is_empty())
}

/// The directory holding `dir` at `when`.
pub fn parent(conn: &Connection, dir: Ino, when: When) -> Result<Option<Ino>> {
    let own = match when {
        When::Now => namespace::parent_of(conn, dir)?,
        When::At(s) => namespace::parent_at(conn, dir, s)?,
    };
    if own.is_some() {
        return Ok(own);
    }
    match clone_source(conn, dir, when)? {
        Some((c, src)) => match parent(conn, src, When::At(c.seq))? {
            Some(p) => Ok(Some(history::map_clone_ino(conn, c.id, p)?)),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// (name, value) of every xattr of `ino` at `when`.
pub fn xattrs(conn: &Connection, ino: Ino, when: When) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    match clone_source(conn, ino, when)? {
        Some((c, src)) => xattrs(conn, src, When::At(c.seq)),
        None => {
            let seq = match when {
                When::Now => Seq(i64::MAX as u64),
                When::At(s) => s,
            };
            Ok(namespace::xattrs_at(conn, ino, seq)?)
        }
    }
}

/// Give a clone-side inode rows of its own before it changes: an inode row, its xattrs, and
/// for a directory its entries. The caller then writes the inode's first own revision (from
/// `rev`) in the same operation. A no-op for inodes that already have their own rows.
pub fn materialize(conn: &Connection, ino: Ino, seq: Seq) -> Result<Revision> {
    // The common case first, in one query: an inode with its own current revision.
    if let Some(rev) = namespace::current(conn, ino)? {
        return Ok(rev);
    }
    let rev = rev_or_missing(conn, ino, When::Now)?;
    if namespace::inode_exists(conn, ino)?.is_some() {
        return Ok(rev);
    }
    let Some((c, src)) = history::clone_ino(conn, ino)? else {
        return Err(FsError::NotFound);
    };
    namespace::insert_inode(conn, ino, rev.kind, seq)?;
    for (name, value) in xattrs(conn, src, When::At(c.seq))? {
        namespace::set_xattr(conn, ino, &name, &value, seq)?;
    }
    if rev.kind == FileKind::Dir {
        let mut after = 0;
        loop {
            let page = list(conn, src, When::At(c.seq), after, 1024)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for d in page {
                let child = history::map_clone_ino(conn, c.id, d.ino)?;
                namespace::add_dirent(conn, ino, &d.name, child, d.kind, seq)?;
            }
        }
    }
    Ok(rev)
}
