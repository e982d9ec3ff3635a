//! Pruning: deleting history rows no retention point can see, and releasing the chunk-list
//! references their revisions held.

use super::{GcReport, Live, Retention};
use crate::meta::{self, gc};
use rusqlite::Connection;

/// Prune ended revisions after `cursor` (died, id); returns whether none are left.
pub fn revisions(
    conn: &Connection,
    ret: &Retention,
    cursor: &mut (u64, i64),
    limit: usize,
    report: &mut GcReport,
) -> meta::Result<bool> {
    let batch = gc::prunable_revisions(conn, ret.window, *cursor, limit)?;
    let mut released = gc::Released::default();
    for r in &batch {
        gc::delete_revision(conn, r.id)?;
        if let Some(list) = &r.list {
            gc::release_list(conn, list, &mut released)?;
        }
        *cursor = (r.died.0, r.id);
        report.revisions += 1;
        forget(conn, r.ino, report)?;
        if released.rows as usize >= limit {
            break;
        }
    }
    report.lists += released.lists;
    Ok(batch.len() < limit && released.rows < limit as u64)
}

/// Prune the current state of unlinked inodes no one has open; an inode left with no
/// revisions is forgotten with its attributes.
pub fn unlinked(
    conn: &Connection,
    ret: &Retention,
    live: &Live<'_>,
    cursor: &mut i64,
    limit: usize,
    report: &mut GcReport,
) -> meta::Result<bool> {
    let batch = gc::unlinked_revisions(conn, ret.window, *cursor, limit)?;
    let mut released = gc::Released::default();
    for r in &batch {
        *cursor = r.id;
        if live.open.contains(&r.ino) {
            continue;
        }
        gc::delete_revision(conn, r.id)?;
        if let Some(list) = &r.list {
            gc::release_list(conn, list, &mut released)?;
        }
        report.revisions += 1;
        if gc::forget_inode_if_empty(conn, r.ino)? {
            report.inodes += 1;
        }
        if released.rows as usize >= limit {
            break;
        }
    }
    report.lists += released.lists;
    Ok(batch.len() < limit && released.rows < limit as u64)
}

/// Prune ended directory entries and xattrs; returns whether none are left.
pub fn entries(
    conn: &Connection,
    ret: &Retention,
    limit: usize,
    report: &mut GcReport,
) -> meta::Result<bool> {
    let d = gc::prune_dirents(conn, ret.window, limit)?;
    let x = gc::prune_xattrs(conn, ret.window, limit)?;
    report.dirents += d;
    report.xattrs += x;
    Ok(d < limit as u64 && x < limit as u64)
}

/// Inodes whose every revision has been pruned by `revisions` (their ended history went and
/// the current state went earlier) are forgotten here.
pub fn forget(conn: &Connection, ino: crate::meta::Ino, report: &mut GcReport) -> meta::Result<()> {
    if gc::forget_inode_if_empty(conn, ino)? {
        report.inodes += 1;
    }
    Ok(())
}
