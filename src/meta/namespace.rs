//! Inodes, their revisions, directory entries and xattrs. Every change appends: a changed row
//! gets `died = seq` and its successor `born = seq`. Queries of the current state use the
//! partial indexes on `died IS NULL`.

use super::{Ino, MetaError, Result, Seq};
use crate::chunker::ChunkHash;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// What an inode is. Stored as its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    File = 1,
    Dir = 2,
    Symlink = 3,
    Fifo = 4,
    Socket = 5,
    CharDev = 6,
    BlockDev = 7,
}

impl FileKind {
    pub fn from_u8(v: u8) -> Option<FileKind> {
        Some(match v {
            1 => FileKind::File,
            2 => FileKind::Dir,
            3 => FileKind::Symlink,
            4 => FileKind::Fifo,
            5 => FileKind::Socket,
            6 => FileKind::CharDev,
            7 => FileKind::BlockDev,
            _ => return None,
        })
    }
}

/// One state of one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    pub ino: Ino,
    pub kind: FileKind,
    pub born: Seq,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub rdev: u32,
    /// Nanoseconds since the epoch.
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub crtime: i64,
    /// Root of the chunk list of a regular file; None for empty content.
    pub list: Option<ChunkHash>,
    pub target: Option<Vec<u8>>,
}

impl Revision {
    /// A fresh, empty directory (mode 0755) owned by this process's user, as mkfs and a
    /// metadata rebuild make them; `now` in nanoseconds since the epoch.
    pub fn new_dir(ino: Ino, nlink: u32, seq: Seq, now: i64) -> Revision {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Revision {
            ino,
            kind: FileKind::Dir,
            born: seq,
            mode: 0o755,
            uid,
            gid,
            nlink,
            size: 0,
            rdev: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            list: None,
            target: None,
        }
    }
}

fn kind_of(v: u8) -> rusqlite::Result<FileKind> {
    FileKind::from_u8(v).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, v as i64))
}

fn revision_from_row(r: &Row<'_>) -> rusqlite::Result<Revision> {
    revision_at(r, 0)
}

/// A revision from the `REVISION_COLUMNS` starting at column `c`.
fn revision_at(r: &Row<'_>, c: usize) -> rusqlite::Result<Revision> {
    let list: Option<Vec<u8>> = r.get(c + 13)?;
    Ok(Revision {
        ino: Ino(r.get::<_, i64>(c)? as u64),
        kind: kind_of(r.get(c + 1)?)?,
        born: Seq(r.get::<_, i64>(c + 2)? as u64),
        mode: r.get(c + 3)?,
        uid: r.get(c + 4)?,
        gid: r.get(c + 5)?,
        nlink: r.get(c + 6)?,
        size: r.get::<_, i64>(c + 7)? as u64,
        rdev: r.get(c + 8)?,
        atime: r.get(c + 9)?,
        mtime: r.get(c + 10)?,
        ctime: r.get(c + 11)?,
        crtime: r.get(c + 12)?,
        list: list.and_then(|l| ChunkHash::from_slice(&l)),
        target: r.get(c + 14)?,
    })
}

macro_rules! revision_columns {
    () => {
        "r.ino, i.kind, r.born, r.mode, r.uid, r.gid, r.nlink, r.size, \
         r.rdev, r.atime, r.mtime, r.ctime, r.crtime, r.list, r.target"
    };
}
const REVISION_COLUMNS: &str = revision_columns!();

/// Allocate an inode number for a new inode of `kind`.
pub fn new_inode(conn: &Connection, kind: FileKind, seq: Seq) -> Result<Ino> {
    let ino = next_ino(conn)?;
    insert_inode(conn, ino, kind, seq)?;
    Ok(ino)
}

/// The next unused inode number: real inodes and clone-side (virtual) ones share one space.
///
/// Numbers are never reused, even after GC removes an inode (the kernel may still know the
/// old one): `sqlite_sequence` remembers the highest inode number ever inserted, since
/// `inodes` is AUTOINCREMENT; clone-side numbers are never deleted.
pub fn next_ino(conn: &Connection) -> Result<Ino> {
    let max: i64 = conn
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'inodes'), 0),
                        COALESCE((SELECT MAX(ino) FROM inodes), 0),
                        COALESCE((SELECT MAX(ino) FROM clone_inos), 0))",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(Ino(max as u64 + 1))
}

/// Record an inode under a number chosen by the caller (a clone-side inode materializing).
pub fn insert_inode(conn: &Connection, ino: Ino, kind: FileKind, seq: Seq) -> Result<()> {
    conn.prepare_cached("INSERT INTO inodes(ino, kind, born) VALUES (?1, ?2, ?3)")?
        .execute(params![ino.0 as i64, kind as u8, seq.0 as i64])?;
    Ok(())
}

/// Does `ino` have rows of its own (as opposed to a clone-side inode not yet changed)?
pub fn inode_exists(conn: &Connection, ino: Ino) -> Result<Option<Seq>> {
    Ok(conn
        .prepare_cached("SELECT born FROM inodes WHERE ino = ?1")?
        .query_row([ino.0 as i64], |r| Ok(Seq(r.get::<_, i64>(0)? as u64)))
        .optional()?)
}

/// The current revision of `ino`, if the inode exists.
pub fn current(conn: &Connection, ino: Ino) -> Result<Option<Revision>> {
    let sql = format!(
        "SELECT {REVISION_COLUMNS} FROM revisions r JOIN inodes i ON i.ino = r.ino
         WHERE r.ino = ?1 AND r.died IS NULL"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([ino.0 as i64], revision_from_row)
        .optional()?)
}

/// The revision of `ino` valid at `seq`: the current one if born by then, else the last
/// ended one born by then if it was still alive (an inode's revisions follow each other
/// without gaps). Two index seeks, whatever the length of the inode's history.
pub fn at(conn: &Connection, ino: Ino, seq: Seq) -> Result<Option<Revision>> {
    Ok(conn
        .prepare_cached(AT)?
        .query_row([ino.0 as i64, seq.0 as i64], revision_from_row)
        .optional()?)
}

const AT: &str = concat!(
    "WITH r AS (
         SELECT * FROM revisions WHERE ino = ?1 AND died IS NULL AND born <= ?2
         UNION ALL
         SELECT * FROM (SELECT * FROM revisions
                        WHERE ino = ?1 AND died IS NOT NULL AND born <= ?2
                        ORDER BY born DESC LIMIT 1)
         WHERE died > ?2)
     SELECT ",
    revision_columns!(),
    " FROM r JOIN inodes i ON i.ino = r.ino LIMIT 1"
);

/// Make `rev` the current state of its inode as of `seq`, ending the previous revision.
/// Every revision holds one reference to its chunk list, added here; the list must be stored.
///
/// A seq is open until it is committed or observed (`fs::core::Core::op`): the states an
/// inode passes through within one seq were never visible at any seq, so a second change in
/// the same seq replaces the revision it made in place (keeping its `op`, the first change's)
/// rather than appending one, and drops the replaced revision's list reference.
pub fn put_revision(conn: &Connection, rev: &Revision, seq: Seq, op: &str) -> Result<()> {
    if let Some(list) = &rev.list
        && !super::lists::add_ref(conn, list, 1)?
    {
        return Err(MetaError::Corrupt(format!(
            "inode {} would point at chunk list {list}, which is not stored",
            rev.ino.0
        )));
    }
    let current: Option<(i64, i64, Option<Vec<u8>>)> = conn
        .prepare_cached("SELECT id, born, list FROM revisions WHERE ino = ?1 AND died IS NULL")?
        .query_row([rev.ino.0 as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let list = rev.list.as_ref().map(|h| &h.0[..]);
    let (ino, at) = (rev.ino.0 as i64, seq.0 as i64);
    // The state itself, in the column order both statements below name it.
    let state = params![
        rev.mode,
        rev.uid,
        rev.gid,
        rev.nlink,
        rev.size as i64,
        rev.rdev,
        rev.atime,
        rev.mtime,
        rev.ctime,
        rev.crtime,
        list,
        rev.target.as_deref(),
    ];
    match current {
        Some((id, born, old_list)) if born == at => {
            conn.prepare_cached(
                "UPDATE revisions SET mode = ?2, uid = ?3, gid = ?4, nlink = ?5, size = ?6,
                        rdev = ?7, atime = ?8, mtime = ?9, ctime = ?10, crtime = ?11,
                        list = ?12, target = ?13
                 WHERE id = ?1",
            )?
            .execute(&*joined(&[&id], state))?;
            if let Some(old) = old_list.as_deref().and_then(ChunkHash::from_slice) {
                super::gc::release_list(conn, &old, &mut super::gc::Released::default())?;
            }
            return Ok(());
        }
        Some((_, born, _)) if born > at => {
            return Err(MetaError::Corrupt(format!(
                "inode {} has a revision born at seq {born}, after seq {}",
                rev.ino.0, seq.0
            )));
        }
        Some((id, _, _)) => {
            conn.prepare_cached("UPDATE revisions SET died = ?2 WHERE id = ?1")?
                .execute(params![id, at])?;
        }
        None => {}
    }
    conn.prepare_cached(
        "INSERT INTO revisions(ino, born, died, op, mode, uid, gid, nlink, size, rdev,
                               atime, mtime, ctime, crtime, list, target)
         VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(&*joined(&[&ino, &at, &op], state))?;
    Ok(())
}

/// Statement parameters: `first`, then `rest`.
fn joined<'a>(
    first: &[&'a dyn rusqlite::ToSql],
    rest: &[&'a dyn rusqlite::ToSql],
) -> Vec<&'a dyn rusqlite::ToSql> {
    first.iter().chain(rest).copied().collect()
}

/// Every revision's list reference, current and historical, for refcount checks.
pub fn all_list_refs(conn: &Connection) -> Result<Vec<ChunkHash>> {
    let mut st = conn.prepare("SELECT list FROM revisions WHERE list IS NOT NULL")?;
    let rows = st.query_map([], |r| super::hash_col(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A current directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    /// Stable, never reused: the readdir cookie.
    pub id: u64,
    pub name: Vec<u8>,
    pub ino: Ino,
    pub kind: FileKind,
}

fn dirent_from_row(r: &Row<'_>) -> rusqlite::Result<Dirent> {
    Ok(Dirent {
        id: r.get::<_, i64>(0)? as u64,
        name: r.get(1)?,
        ino: Ino(r.get::<_, i64>(2)? as u64),
        kind: kind_of(r.get(3)?)?,
    })
}

pub fn lookup(conn: &Connection, parent: Ino, name: &[u8]) -> Result<Option<Dirent>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, name, ino, kind FROM dirents
             WHERE parent = ?1 AND name = ?2 AND died IS NULL",
        )?
        .query_row(params![parent.0 as i64, name], dirent_from_row)
        .optional()?)
}

pub fn add_dirent(
    conn: &Connection,
    parent: Ino,
    name: &[u8],
    ino: Ino,
    kind: FileKind,
    seq: Seq,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO dirents(parent, name, ino, kind, born) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        parent.0 as i64,
        name,
        ino.0 as i64,
        kind as u8,
        seq.0 as i64
    ])?;
    Ok(())
}

/// The entry `name` of `parent` as it was at `seq`.
pub fn lookup_at(conn: &Connection, parent: Ino, name: &[u8], seq: Seq) -> Result<Option<Dirent>> {
    Ok(conn
        .prepare_cached(LOOKUP_AT)?
        .query_row(
            params![parent.0 as i64, name, seq.0 as i64],
            dirent_from_row,
        )
        .optional()?)
}

/// Entries of `parent` at `seq` with id greater than `after`, in id order.
pub fn list_dir_at(
    conn: &Connection,
    parent: Ino,
    seq: Seq,
    after: u64,
    limit: usize,
) -> Result<Vec<Dirent>> {
    let mut st = conn.prepare_cached(LIST_DIR_AT)?;
    let rows = st.query_map(
        params![parent.0 as i64, seq.0 as i64, after as i64, limit as i64],
        dirent_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The directory holding `ino` at `seq`.
pub fn parent_at(conn: &Connection, ino: Ino, seq: Seq) -> Result<Option<Ino>> {
    Ok(conn
        .prepare_cached(PARENT_AT)?
        .query_row([ino.0 as i64, seq.0 as i64], |r| {
            Ok(Ino(r.get::<_, i64>(0)? as u64))
        })
        .optional()?)
}

/// Xattrs of `ino` at `seq`: (name, value).
pub fn xattrs_at(conn: &Connection, ino: Ino, seq: Seq) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut st = conn.prepare_cached(XATTRS_AT)?;
    let rows = st.query_map([ino.0 as i64, seq.0 as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One revision as `chunkfs log` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    pub seq_from: u64,
    pub seq_to: Option<u64>,
    pub op: String,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime_ns: i64,
    /// The content's identity: the root chunk-list hash (hex), None for empty content.
    pub content: Option<String>,
}

pub fn log(conn: &Connection, ino: Ino) -> Result<Vec<LogEntry>> {
    let mut st = conn.prepare_cached(LOG)?;
    let rows = st.query_map([ino.0 as i64], |r| {
        let list: Option<Vec<u8>> = r.get(7)?;
        Ok(LogEntry {
            seq_from: r.get::<_, i64>(0)? as u64,
            seq_to: r.get::<_, Option<i64>>(1)?.map(|d| d as u64),
            op: r.get(2)?,
            size: r.get::<_, i64>(3)? as u64,
            mode: r.get(4)?,
            uid: r.get(8)?,
            gid: r.get(9)?,
            nlink: r.get(5)?,
            mtime_ns: r.get(6)?,
            content: list
                .and_then(|l| ChunkHash::from_slice(&l))
                .map(|h| h.to_hex()),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// End the current entry `name` of `parent` at `seq`. An entry made in the same (open) seq was
/// never visible at any seq: it is deleted rather than ended.
pub fn remove_dirent(conn: &Connection, parent: Ino, name: &[u8], seq: Seq) -> Result<()> {
    let p = params![parent.0 as i64, name, seq.0 as i64];
    conn.prepare_cached(
        "DELETE FROM dirents WHERE parent = ?1 AND name = ?2 AND died IS NULL AND born = ?3",
    )?
    .execute(p)?;
    conn.prepare_cached(
        "UPDATE dirents SET died = ?3 WHERE parent = ?1 AND name = ?2 AND died IS NULL",
    )?
    .execute(p)?;
    Ok(())
}

/// Current entries of `parent` with id greater than `after`, in id order.
pub fn list_dir(conn: &Connection, parent: Ino, after: u64, limit: usize) -> Result<Vec<Dirent>> {
    let mut st = conn.prepare_cached(LIST_DIR)?;
    let rows = st.query_map(
        params![parent.0 as i64, after as i64, limit as i64],
        dirent_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `list_dir` with each entry's current revision, in one query (readdirplus): None for an
/// entry whose inode has no rows of its own (a clone-side inode, resolved by the caller).
pub fn list_dir_plus(
    conn: &Connection,
    parent: Ino,
    after: u64,
    limit: usize,
) -> Result<Vec<(Dirent, Option<Revision>)>> {
    let sql = format!(
        "SELECT d.id, d.name, d.ino, d.kind, {REVISION_COLUMNS} FROM dirents d
         LEFT JOIN revisions r ON r.ino = d.ino AND r.died IS NULL
         LEFT JOIN inodes i ON i.ino = r.ino
         WHERE d.parent = ?1 AND d.died IS NULL AND d.id > ?2 ORDER BY d.id LIMIT ?3"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params![parent.0 as i64, after as i64, limit as i64], |r| {
        let d = dirent_from_row(r)?;
        let has_rev = r.get::<_, Option<i64>>(4)?.is_some();
        Ok((
            d,
            if has_rev {
                Some(revision_at(r, 4)?)
            } else {
                None
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The directory holding `ino` (for a directory, its only parent).
pub fn parent_of(conn: &Connection, ino: Ino) -> Result<Option<Ino>> {
    Ok(conn
        .prepare_cached("SELECT parent FROM dirents WHERE ino = ?1 AND died IS NULL LIMIT 1")?
        .query_row([ino.0 as i64], |r| Ok(Ino(r.get::<_, i64>(0)? as u64)))
        .optional()?)
}

/// All current entries, for invariant checks: (parent, name, ino, kind).
pub fn all_dirents(conn: &Connection) -> Result<Vec<(Ino, Dirent)>> {
    let mut st =
        conn.prepare("SELECT id, name, ino, kind, parent FROM dirents WHERE died IS NULL")?;
    let rows = st.query_map([], |r| {
        Ok((Ino(r.get::<_, i64>(4)? as u64), dirent_from_row(r)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Current revisions of all inodes.
pub fn all_current(conn: &Connection) -> Result<Vec<Revision>> {
    let sql = format!(
        "SELECT {REVISION_COLUMNS} FROM revisions r JOIN inodes i ON i.ino = r.ino WHERE r.died IS NULL"
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map([], revision_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_xattr(conn: &Connection, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2 AND died IS NULL")?
        .query_row(params![ino.0 as i64, name], |r| r.get(0))
        .optional()?)
}

pub fn set_xattr(conn: &Connection, ino: Ino, name: &[u8], value: &[u8], seq: Seq) -> Result<()> {
    remove_xattr(conn, ino, name, seq)?;
    conn.prepare_cached("INSERT INTO xattrs(ino, name, value, born) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![ino.0 as i64, name, value, seq.0 as i64])?;
    Ok(())
}

/// Returns whether an attribute was removed. One set in the same (open) seq was never
/// visible at any seq: it is deleted rather than ended.
pub fn remove_xattr(conn: &Connection, ino: Ino, name: &[u8], seq: Seq) -> Result<bool> {
    let p = params![ino.0 as i64, name, seq.0 as i64];
    let deleted = conn
        .prepare_cached(
            "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2 AND died IS NULL AND born = ?3",
        )?
        .execute(p)?;
    let ended = conn
        .prepare_cached(
            "UPDATE xattrs SET died = ?3 WHERE ino = ?1 AND name = ?2 AND died IS NULL",
        )?
        .execute(p)?;
    Ok(deleted + ended > 0)
}

/// Counts for `stats`: (regular files, logical bytes of current regular files). The bytes are
/// summed as a float (`TOTAL`): sizes of up to 2^63 − 1 each add up past what SQLite's integer
/// `SUM` holds (it fails), and the float is exact while the total stays under 2^53 (8 PiB);
/// past 2^64 it saturates.
pub fn file_totals(conn: &Connection) -> Result<(u64, u64)> {
    Ok(conn.query_row(
        "SELECT COUNT(*), TOTAL(r.size) FROM revisions r JOIN inodes i ON i.ino = r.ino
         WHERE r.died IS NULL AND i.kind = 1 AND r.nlink > 0",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, f64>(1)? as u64)),
    )?)
}

/// Current names of `ino`.
pub fn count_links(conn: &Connection, ino: Ino) -> Result<u32> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM dirents WHERE ino = ?1 AND died IS NULL")?
        .query_row([ino.0 as i64], |r| r.get(0))?)
}

/// Current subdirectories of `dir`.
pub fn count_subdirs(conn: &Connection, dir: Ino) -> Result<u32> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM dirents WHERE parent = ?1 AND kind = 2 AND died IS NULL",
        )?
        .query_row([dir.0 as i64], |r| r.get(0))?)
}

/// Current names of `ino`: (parent, name).
pub fn names_of(conn: &Connection, ino: Ino) -> Result<Vec<(Ino, Vec<u8>)>> {
    let mut st =
        conn.prepare_cached("SELECT parent, name FROM dirents WHERE ino = ?1 AND died IS NULL")?;
    let rows = st.query_map([ino.0 as i64], |r| {
        Ok((Ino(r.get::<_, i64>(0)? as u64), r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Parents of every name `ino` had at `seq`.
pub fn parents_at(conn: &Connection, ino: Ino, seq: Seq) -> Result<Vec<Ino>> {
    let mut st = conn.prepare_cached(PARENTS_AT)?;
    let rows = st.query_map([ino.0 as i64, seq.0 as i64], |r| {
        Ok(Ino(r.get::<_, i64>(0)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The parent and name of one current (`seq` None) or past name of `ino`.
pub fn name_of(conn: &Connection, ino: Ino, seq: Option<Seq>) -> Result<Option<(Ino, Vec<u8>)>> {
    let row = |r: &Row<'_>| Ok((Ino(r.get::<_, i64>(0)? as u64), r.get(1)?));
    Ok(match seq {
        None => conn
            .prepare_cached(
                "SELECT parent, name FROM dirents WHERE ino = ?1 AND died IS NULL LIMIT 1",
            )?
            .query_row([ino.0 as i64], row)
            .optional()?,
        Some(s) => conn
            .prepare_cached(NAME_AT)?
            .query_row([ino.0 as i64, s.0 as i64], row)
            .optional()?,
    })
}

/// One revision's seq range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub ino: Ino,
    pub born: Seq,
    pub died: Option<Seq>,
}

fn span_from_row(r: &Row<'_>) -> rusqlite::Result<Span> {
    Ok(Span {
        ino: Ino(r.get::<_, i64>(0)? as u64),
        born: Seq(r.get::<_, i64>(1)? as u64),
        died: r.get::<_, Option<i64>>(2)?.map(|d| Seq(d as u64)),
    })
}

/// Every revision's range, by inode then born: the chains fsck checks.
pub fn all_spans(conn: &Connection) -> Result<Vec<Span>> {
    let mut st = conn.prepare("SELECT ino, born, died FROM revisions ORDER BY ino, born, id")?;
    let rows = st.query_map([], span_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every revision with content: its range and root list, by inode then born.
pub fn all_content_spans(conn: &Connection) -> Result<Vec<(Span, ChunkHash)>> {
    let mut st = conn.prepare(
        "SELECT ino, born, died, list FROM revisions WHERE list IS NOT NULL ORDER BY ino, born",
    )?;
    let rows = st.query_map([], |r| Ok((span_from_row(r)?, super::hash_col(r, 3)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Inodes with a row but no revision. A clone-side inode whose revisions GC pruned keeps its
/// row on purpose (without it the number would read its clone source again): not listed.
pub fn inodes_without_revisions(conn: &Connection) -> Result<Vec<Ino>> {
    let mut st = conn.prepare(
        "SELECT ino FROM inodes WHERE ino NOT IN (SELECT ino FROM revisions)
           AND ino NOT IN (SELECT ino FROM clone_inos)",
    )?;
    let rows = st.query_map([], |r| Ok(Ino(r.get::<_, i64>(0)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn inode_count(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM inodes", [], |r| r.get::<_, i64>(0))? as u64)
}

// The queries of the past (and readdir), named so a test can check how SQLite plans them:
// each must find its rows through an index, whatever the size of the store.
const LOOKUP_AT: &str = "SELECT id, name, ino, kind FROM dirents
             WHERE parent = ?1 AND name = ?2 AND died IS NULL AND born <= ?3
             UNION ALL
             SELECT id, name, ino, kind FROM dirents
             WHERE parent = ?1 AND name = ?2 AND died IS NOT NULL AND born <= ?3 AND died > ?3
             LIMIT 1";
const LIST_DIR_AT: &str = "SELECT id, name, ino, kind FROM dirents
         WHERE parent = ?1 AND died IS NULL AND born <= ?2 AND id > ?3
         UNION ALL
         SELECT id, name, ino, kind FROM dirents
         WHERE parent = ?1 AND died IS NOT NULL AND born <= ?2 AND died > ?2 AND id > ?3
         ORDER BY 1 LIMIT ?4";
const PARENT_AT: &str = "SELECT parent FROM dirents WHERE ino = ?1 AND died IS NULL AND born <= ?2
             UNION ALL
             SELECT parent FROM dirents
             WHERE ino = ?1 AND died IS NOT NULL AND born <= ?2 AND died > ?2
             LIMIT 1";
const LOG: &str = "SELECT born, died, op, size, mode, nlink, mtime, list, uid, gid FROM revisions
         WHERE ino = ?1 AND died IS NOT NULL
         UNION ALL
         SELECT born, died, op, size, mode, nlink, mtime, list, uid, gid FROM revisions
         WHERE ino = ?1 AND died IS NULL
         ORDER BY 1";
const LIST_DIR: &str = "SELECT id, name, ino, kind FROM dirents
         WHERE parent = ?1 AND died IS NULL AND id > ?2 ORDER BY id LIMIT ?3";
const PARENTS_AT: &str = "SELECT parent FROM dirents WHERE ino = ?1 AND died IS NULL AND born <= ?2
         UNION ALL
         SELECT parent FROM dirents WHERE ino = ?1 AND died IS NOT NULL AND born <= ?2 AND died > ?2";
const NAME_AT: &str =
    "SELECT parent, name FROM dirents WHERE ino = ?1 AND died IS NULL AND born <= ?2
                 UNION ALL
                 SELECT parent, name FROM dirents
                 WHERE ino = ?1 AND died IS NOT NULL AND born <= ?2 AND died > ?2
                 LIMIT 1";
const XATTRS_AT: &str = "SELECT name, value FROM xattrs WHERE ino = ?1 AND born <= ?2
         AND (died IS NULL OR died > ?2) ORDER BY name";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_change_within_one_seq_replaces_the_revision_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::meta::open(&dir.path().join("meta.db"), true).unwrap();
        let ino = Ino(1000);
        insert_inode(&conn, ino, FileKind::File, Seq(5)).unwrap();
        let rev = Revision {
            ino,
            kind: FileKind::File,
            born: Seq(5),
            mode: 0o644,
            uid: 0,
            gid: 0,
            nlink: 1,
            size: 0,
            rdev: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            crtime: 0,
            list: None,
            target: None,
        };
        put_revision(&conn, &rev, Seq(5), "create").unwrap();
        let chmod = Revision {
            mode: 0o600,
            ..rev.clone()
        };
        put_revision(&conn, &chmod, Seq(5), "setattr").unwrap();
        let entries = log(&conn, ino).unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!((entries[0].op.as_str(), entries[0].mode), ("create", 0o600));
        // A later seq ends the current revision and adds the next one.
        put_revision(&conn, &rev, Seq(6), "chmod").unwrap();
        assert_eq!(current(&conn, ino).unwrap().unwrap().born, Seq(6));
        assert_eq!(log(&conn, ino).unwrap().len(), 2);
        // An earlier seq than the current revision's is a bug, refused.
        let back = put_revision(&conn, &rev, Seq(4), "chmod").unwrap_err();
        assert!(
            matches!(&back, MetaError::Corrupt(m) if m.contains("after seq 4")),
            "{back:?}"
        );
    }
}

#[cfg(test)]
mod plans {
    use super::*;
    use crate::meta::counters::tests::plan;

    /// Every query of the past, readdir, and the current-state reads on the hot paths find
    /// their rows through an index: none scans a table, and only the one-row arm of `LOG` and
    /// an inode's few xattrs are sorted.
    #[test]
    fn history_and_readdir_queries_search_indexes_and_scan_no_table() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::meta::open(&dir.path().join("meta.db"), true).unwrap();
        let list_dir_plus = format!(
            "SELECT d.id, d.name, d.ino, d.kind, {REVISION_COLUMNS} FROM dirents d
             LEFT JOIN revisions r ON r.ino = d.ino AND r.died IS NULL
             LEFT JOIN inodes i ON i.ino = r.ino
             WHERE d.parent = ?1 AND d.died IS NULL AND d.id > ?2 ORDER BY d.id LIMIT ?3"
        );
        let expected: &[(&str, &str, &[&str])] = &[
            ("AT", AT, &["revisions_current", "revisions_ended"]),
            (
                "LOOKUP_AT",
                LOOKUP_AT,
                &["dirents_current", "dirents_ended"],
            ),
            (
                "LIST_DIR_AT",
                LIST_DIR_AT,
                &["dirents_live_by_parent", "dirents_ended_by_parent"],
            ),
            ("LIST_DIR", LIST_DIR, &["dirents_live_by_parent"]),
            ("list_dir_plus", &list_dir_plus, &["dirents_live_by_parent"]),
            (
                "PARENT_AT",
                PARENT_AT,
                &["dirents_current_by_ino", "dirents_ended_by_ino"],
            ),
            (
                "PARENTS_AT",
                PARENTS_AT,
                &["dirents_current_by_ino", "dirents_ended_by_ino"],
            ),
            (
                "NAME_AT",
                NAME_AT,
                &["dirents_current_by_ino", "dirents_ended_by_ino"],
            ),
            ("LOG", LOG, &["revisions_current", "revisions_ended"]),
            ("XATTRS_AT", XATTRS_AT, &["xattrs_by_ino"]),
        ];
        for (name, sql, indexes) in expected {
            let steps = plan(&conn, sql);
            for s in &steps {
                for table in ["dirents", "revisions", "xattrs", "inodes"] {
                    assert!(
                        !s.starts_with(&format!("SCAN {table}")),
                        "{name} scans {table}: {steps:?}"
                    );
                }
                let sorted_ok = matches!(*name, "LOG" | "XATTRS_AT");
                assert!(
                    sorted_ok || !s.contains("TEMP B-TREE"),
                    "{name} sorts: {steps:?}"
                );
            }
            for index in *indexes {
                assert!(
                    steps.iter().any(|s| s.contains(&format!("INDEX {index} "))),
                    "{name} does not use {index}: {steps:?}"
                );
            }
        }
    }
}
