//! Snapshots, clones and the seq ↔ time map.

use super::{Ino, Result, Seq};
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub name: String,
    pub seq: u64,
    pub root: u64,
    pub created_ns: i64,
    /// The uid that took it (0 for snapshots older than the column).
    pub owner: u32,
}

pub fn create_snapshot(
    conn: &Connection,
    name: &str,
    seq: Seq,
    root: Ino,
    now: i64,
    owner: u32,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "INSERT OR IGNORE INTO snapshots(name, seq, root, created, owner) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![name, seq.0 as i64, root.0 as i64, now, owner])?
        == 1)
}

/// How many snapshots `owner` took (indexed: `snapshots_by_owner`).
pub fn snapshots_owned(conn: &Connection, owner: u32) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM snapshots WHERE owner = ?1")?
        .query_row([owner], |r| r.get::<_, i64>(0))? as u64)
}

pub fn snapshot(conn: &Connection, name: &str) -> Result<Option<Snapshot>> {
    Ok(conn
        .prepare_cached("SELECT name, seq, root, created, owner FROM snapshots WHERE name = ?1")?
        .query_row([name], snapshot_row)
        .optional()?)
}

fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Snapshot> {
    Ok(Snapshot {
        name: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        root: r.get::<_, i64>(2)? as u64,
        created_ns: r.get(3)?,
        owner: r.get(4)?,
    })
}

pub fn snapshots(conn: &Connection) -> Result<Vec<Snapshot>> {
    let mut st = conn.prepare_cached(
        "SELECT name, seq, root, created, owner FROM snapshots ORDER BY seq, name",
    )?;
    let rows = st.query_map([], snapshot_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Up to `limit` snapshots with a rowid above `after`, in rowid order, each with its rowid: a
/// listing in pages that costs one index step per row, and survives deletions (a rowid is
/// never taken by a later snapshot while a higher one exists).
pub fn snapshots_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, Snapshot)>> {
    let mut st = conn.prepare_cached(
        "SELECT name, seq, root, created, owner, rowid FROM snapshots
         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let rows = st.query_map(params![after, limit as i64], |r| {
        Ok((r.get(5)?, snapshot_row(r)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_snapshot(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM snapshots WHERE name = ?1")?
        .execute([name])?
        == 1)
}

/// The last seq committed at or before `time_ns`.
pub fn seq_at_time(conn: &Connection, time_ns: i64) -> Result<Option<Seq>> {
    Ok(conn
        .prepare_cached("SELECT seq FROM commits WHERE time <= ?1 ORDER BY seq DESC LIMIT 1")?
        .query_row([time_ns], |r| Ok(Seq(r.get::<_, i64>(0)? as u64)))
        .optional()?)
}

/// When `seq` was committed (the first commit at or after it).
pub fn time_of_seq(conn: &Connection, seq: Seq) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT time FROM commits WHERE seq >= ?1 ORDER BY seq LIMIT 1")?
        .query_row([seq.0 as i64], |r| r.get(0))
        .optional()?)
}

/// A clone of a directory tree as of a seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clone {
    pub id: u64,
    pub src: Ino,
    pub seq: Seq,
    pub born: Seq,
}

pub fn create_clone(conn: &Connection, src: Ino, seq: Seq, born: Seq) -> Result<u64> {
    conn.prepare_cached("INSERT INTO clones(src, seq, born) VALUES (?1, ?2, ?3)")?
        .execute(params![src.0 as i64, seq.0 as i64, born.0 as i64])?;
    Ok(conn.last_insert_rowid() as u64)
}

pub fn clones(conn: &Connection) -> Result<Vec<Clone>> {
    let mut st = conn.prepare_cached("SELECT id, src, seq, born FROM clones ORDER BY id")?;
    let rows = st.query_map([], |r| {
        Ok(Clone {
            id: r.get::<_, i64>(0)? as u64,
            src: Ino(r.get::<_, i64>(1)? as u64),
            seq: Seq(r.get::<_, i64>(2)? as u64),
            born: Seq(r.get::<_, i64>(3)? as u64),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What a clone-side inode stands for: its clone and the source inode.
pub fn clone_ino(conn: &Connection, ino: Ino) -> Result<Option<(Clone, Ino)>> {
    Ok(conn
        .prepare_cached(
            "SELECT c.id, c.src, c.seq, c.born, ci.src FROM clone_inos ci JOIN clones c ON c.id = ci.clone
             WHERE ci.ino = ?1",
        )?
        .query_row([ino.0 as i64], |r| {
            Ok((
                Clone {
                    id: r.get::<_, i64>(0)? as u64,
                    src: Ino(r.get::<_, i64>(1)? as u64),
                    seq: Seq(r.get::<_, i64>(2)? as u64),
                    born: Seq(r.get::<_, i64>(3)? as u64),
                },
                Ino(r.get::<_, i64>(4)? as u64),
            ))
        })
        .optional()?)
}

/// The clone-side inode standing for `src` in clone `clone`, allocated on first sight.
pub fn map_clone_ino(conn: &Connection, clone: u64, src: Ino) -> Result<Ino> {
    if let Some(ino) = conn
        .prepare_cached("SELECT ino FROM clone_inos WHERE clone = ?1 AND src = ?2")?
        .query_row([clone as i64, src.0 as i64], |r| r.get::<_, i64>(0))
        .optional()?
    {
        return Ok(Ino(ino as u64));
    }
    let ino = super::namespace::next_ino(conn)?;
    conn.prepare_cached("INSERT INTO clone_inos(ino, clone, src) VALUES (?1, ?2, ?3)")?
        .execute(params![ino.0 as i64, clone as i64, src.0 as i64])?;
    Ok(ino)
}

/// Every clone-side inode number.
pub fn all_clone_inos(conn: &Connection) -> Result<std::collections::HashSet<Ino>> {
    let mut st = conn.prepare("SELECT ino FROM clone_inos")?;
    let rows = st.query_map([], |r| Ok(Ino(r.get::<_, i64>(0)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Names of the snapshots whose seq falls in [from, to) (to None: no end).
pub fn snapshots_within(conn: &Connection, from: Seq, to: Option<Seq>) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT name FROM snapshots WHERE seq >= ?1 AND (?2 IS NULL OR seq < ?2) ORDER BY seq",
    )?;
    let rows = st.query_map(params![from.0 as i64, to.map(|t| t.0 as i64)], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
