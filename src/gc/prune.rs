//! Pruning: deleting history rows no retention point can see, and releasing the chunk-list
//! references their revisions held. Each step reads a page of at most `limit` rows in
//! (seq, id) order and moves its cursor past every row it read, kept or not, so a row a
//! snapshot keeps is read once per pass.

use super::{GcReport, Live, Retention};
use crate::meta::gc::{self, Cursor, Entries};
use crate::meta::{self};
use rusqlite::Connection;

/// Prune ended revisions after `cursor` (died, id); returns whether none are left.
pub fn revisions(
    conn: &Connection,
    ret: &Retention,
    cursor: &mut Cursor,
    limit: usize,
    report: &mut GcReport,
) -> meta::Result<bool> {
    let page = gc::ended_revisions(conn, ret.window, *cursor, limit)?;
    let mut released = gc::Released::default();
    let mut done = page.len() < limit;
    for r in &page {
        *cursor = r.cursor();
        report.examined += 1;
        if r.retained {
            continue;
        }
        gc::delete_revision(conn, r.id)?;
        if let Some(list) = &r.list {
            gc::release_list(conn, list, &mut released)?;
        }
        report.revisions += 1;
        forget(conn, r.ino, report)?;
        if released.rows as usize >= limit {
            done = false;
            break;
        }
    }
    report.lists += released.lists;
    Ok(done)
}

/// Prune the current state of unlinked inodes no one has open, unlinked before the window
/// (cursor: (born, id)); an inode left with no revisions is forgotten with its attributes.
pub fn unlinked(
    conn: &Connection,
    ret: &Retention,
    live: &Live<'_>,
    cursor: &mut Cursor,
    limit: usize,
    report: &mut GcReport,
) -> meta::Result<bool> {
    let page = gc::unlinked_revisions(conn, ret.window, *cursor, limit)?;
    let mut released = gc::Released::default();
    let mut done = page.len() < limit;
    for r in &page {
        *cursor = r.cursor();
        report.examined += 1;
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
            done = false;
            break;
        }
    }
    report.lists += released.lists;
    Ok(done)
}

/// Prune ended directory entries or xattrs after `cursor` (died, id); returns whether none
/// are left.
pub fn entries(
    conn: &Connection,
    ret: &Retention,
    which: Entries,
    cursor: &mut Cursor,
    limit: usize,
    report: &mut GcReport,
) -> meta::Result<bool> {
    let page = gc::ended_entries(conn, which, ret.window, *cursor, limit)?;
    for &(at, retained) in &page {
        *cursor = at;
        report.examined += 1;
        if retained {
            continue;
        }
        gc::delete_entry(conn, which, at.1)?;
        match which {
            Entries::Dirents => report.dirents += 1,
            Entries::Xattrs => report.xattrs += 1,
        }
    }
    Ok(page.len() < limit)
}

/// Inodes whose every revision has been pruned by `revisions` (their ended history went and
/// the current state went earlier) are forgotten here.
pub fn forget(conn: &Connection, ino: crate::meta::Ino, report: &mut GcReport) -> meta::Result<()> {
    if gc::forget_inode_if_empty(conn, ino)? {
        report.inodes += 1;
    }
    Ok(())
}
