//! Access to the tree as a caller has it: paths walked with search permission, and old
//! states judged by their permissions then *and* now (docs/SECURITY.md). The rules for one
//! inode are `caller`'s; this module applies them along paths and through history.

use super::caller::{Caller, R, X, stricter};
use super::error::{FsError, Result};
use super::history::components;
use super::tree::{self, When};
use crate::meta::history::Snapshot;
use crate::meta::namespace::{FileKind, Revision};
use crate::meta::{Ino, Seq};
use rusqlite::Connection;

/// Deeper than this, a walk up the tree stops: no tree chunkfs makes is so deep, and a
/// damaged parent chain must not loop.
const MAX_DEPTH: usize = 4096;

/// The inode at `path` at `when`. With a caller, walked as they would walk it: search
/// permission on every directory on the way, checked before the next name is looked up
/// (`EACCES`), so a name in a directory they cannot search is neither found nor denied.
pub(super) fn walk(conn: &Connection, path: &str, when: When, who: Option<&Caller>) -> Result<Ino> {
    let mut ino = Ino::ROOT;
    for name in components(path)? {
        let dir = tree::rev_or_missing(conn, ino, when)?;
        if dir.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        if let Some(who) = who {
            who.check(&dir, X)?;
        }
        ino = tree::lookup(conn, ino, name, when)?
            .ok_or(FsError::NotFound)?
            .ino;
    }
    Ok(ino)
}

/// A revision of the past as access to it is judged: its attributes then, with permissions
/// no more open than the same inode's now, if it still exists (`caller::stricter`).
pub(super) fn judged_rev(conn: &Connection, then: &Revision) -> Result<Revision> {
    Ok(stricter(
        then,
        tree::rev(conn, then.ino, When::Now)?.as_ref(),
    ))
}

/// `ino` at `seq`, as access to it is judged (`judged_rev`).
pub(super) fn judged(conn: &Connection, ino: Ino, seq: Seq) -> Result<Revision> {
    judged_rev(conn, &tree::rev_or_missing(conn, ino, When::At(seq))?)
}

/// Whether `who` may search every directory above `ino` at `when`, up to `top` (not itself
/// checked) or the root. Directories of the past are judged then and now (`judged`).
pub(super) fn may_reach(
    conn: &Connection,
    who: &Caller,
    ino: Ino,
    top: Option<Ino>,
    when: When,
) -> Result<bool> {
    let mut at = ino;
    for _ in 0..MAX_DEPTH {
        if Some(at) == top {
            return Ok(true);
        }
        match tree::parent(conn, at, when)? {
            Some(p) if p != at => at = p,
            _ => return Ok(true),
        }
        let dir = match when {
            When::Now => tree::rev_or_missing(conn, at, When::Now)?,
            When::At(seq) => judged(conn, at, seq)?,
        };
        if !who.may(&dir, X) {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Whether `who` may read snapshot `s`: read and search its directory as it was and as it
/// is, and reach it, by the path it had then (judged then and now) and by its path now.
pub(super) fn snapshot_readable(conn: &Connection, who: &Caller, s: &Snapshot) -> Result<bool> {
    if who.is_root() {
        return Ok(true);
    }
    let (root, seq) = (Ino(s.root), Seq(s.seq));
    if !who.may(&judged(conn, root, seq)?, R | X) {
        return Ok(false);
    }
    Ok(may_reach(conn, who, root, None, When::At(seq))?
        && (tree::rev(conn, root, When::Now)?.is_none()
            || may_reach(conn, who, root, None, When::Now)?))
}
