//! The metadata layer: every line of SQL lives here. SQLite in WAL mode holds the namespace,
//! the chunk index, chunk lists, superchunks, the free map and refcounts. Functions take the
//! connection that the caller's open transaction runs on; transaction boundaries belong to `fs`.

pub mod backup;
pub mod check;
pub mod chunks;
pub mod counters;
pub mod gc;
pub mod history;
pub mod lists;
pub mod namespace;
pub mod schema;

use rusqlite::Connection;
use std::path::Path;

/// The metadata database's file name inside a store directory.
pub const META_FILE: &str = "meta.db";

/// The data device of the store, relative to the store directory unless absolute.
pub fn device_path(conn: &Connection) -> Result<std::path::PathBuf> {
    let v = get_value(conn, "device")?
        .ok_or_else(|| MetaError::Corrupt("the store names no device".into()))?;
    use std::os::unix::ffi::OsStrExt;
    Ok(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&v)))
}

/// An inode number. The root directory is `Ino::ROOT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u64);

impl Ino {
    pub const ROOT: Ino = Ino(1);
}

/// A point in the global operation order: every committed change gets the next seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(pub u64);

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// SQLite's error is in the message and so is no `source()`: a printer of the error's
    /// chain (`chunkfs: ...`) would say it twice, or three times with rusqlite's own source.
    #[error("metadata database error: {0}{hint}", hint = damage_hint(.0))]
    Sql(rusqlite::Error),
    #[error(
        "the metadata database has schema version {found}, newer than this chunkfs ({supported}); upgrade chunkfs"
    )]
    NewerSchema { found: u32, supported: u32 },
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The database file itself is unusable or damaged (empty, not SQLite, bad pages, a
    /// schema that is not the migrations'): nothing in it can be trusted until it is rebuilt.
    #[error("{0}; {REBUILD_ADVICE}")]
    Damaged(String),
}

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        MetaError::Sql(e)
    }
}

/// What to do about a damaged metadata database, in every message that reports one.
pub const REBUILD_ADVICE: &str = "with the store unmounted, `chunkfs fsck --rebuild-metadata STORE` \
rebuilds it from the newest good backup beside it (meta.db.bak.1..3) and the data device \
(docs/SEMANTICS.md, \"Metadata damage\")";

/// Does this SQLite error mean the database file is damaged (rather than busy, full, or a
/// query that is wrong)?
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

fn damage_hint(e: &rusqlite::Error) -> String {
    if is_damage(e) {
        format!(" (the metadata database is damaged; {REBUILD_ADVICE})")
    } else {
        String::new()
    }
}

impl MetaError {
    /// The message without the advice on what to do, for reports that give it once.
    pub fn detail(&self) -> String {
        match self {
            MetaError::Damaged(s) => s.clone(),
            MetaError::Sql(e) => format!("metadata database error: {e}"),
            e => e.to_string(),
        }
    }

    /// The database is damaged: this error is about the file, not about one query.
    pub fn is_damage(&self) -> bool {
        match self {
            MetaError::Damaged(_) => true,
            MetaError::Sql(e) => is_damage(e),
            MetaError::NewerSchema { .. } | MetaError::Corrupt(_) => false,
        }
    }
}

/// The 16 bytes every SQLite database file starts with.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Look at the file before SQLite does: SQLite takes an empty file for a new, empty database
/// (and would write a fresh schema into it), and names a foreign file only at the first query.
pub fn probe(path: &Path) -> Result<()> {
    use std::io::Read;
    let name = path.display();
    let mut f = std::fs::File::open(path).map_err(|e| {
        MetaError::Damaged(format!(
            "the metadata database {name} cannot be opened: {e}"
        ))
    })?;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(MetaError::Damaged(format!(
                    "the metadata database {name} cannot be read: {e}"
                )));
            }
        }
    }
    if n == 0 {
        return Err(MetaError::Damaged(format!(
            "the metadata database {name} is empty (0 bytes): the store's namespace and chunk index are lost"
        )));
    }
    if n < head.len() || &head != SQLITE_HEADER {
        return Err(MetaError::Damaged(format!(
            "the metadata database {name} is not a SQLite database (it does not start with the SQLite header)"
        )));
    }
    Ok(())
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// Open (creating if asked) the metadata database with the pragmas chunkfs relies on, and bring
/// its schema up to date. An existing database (`create` false) is probed first, and one that
/// holds no chunkfs schema at all is refused rather than given a fresh one.
pub fn open(path: &Path, create: bool) -> Result<Connection> {
    open_inner(path, create).map_err(|e| damaged_at(path, e))
}

fn open_inner(path: &Path, create: bool) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else {
        probe(path)?;
    }
    let mut conn = Connection::open_with_flags(path, flags)?;
    if !create && schema::is_empty(&conn)? {
        // Version 0 is a database no mkfs finished (or another program's): nothing to upgrade.
        return Err(MetaError::Damaged(format!(
            "the metadata database {} holds no chunkfs schema (user_version 0)",
            path.display()
        )));
    }
    // WAL lets readers run beside the writer. FULL makes each (group) commit durable, which
    // fsync relies on; group commit keeps the cost to one sync per batch.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -65536)?; // 64 MiB page cache, bounded
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Open an existing database; read-only opens change nothing, not even the schema version
/// (a store whose schema is older must be opened read-write once to be upgraded).
///
/// The file is probed first and the schema compared with the migrations' after opening, so a
/// damaged database is refused here with a message that names the damage and the fix, instead
/// of failing at the first write that touches it.
pub fn open_existing(path: &Path, read_only: bool) -> Result<Connection> {
    let conn = open_unchecked(path, read_only).map_err(|e| damaged_at(path, e))?;
    let problems = schema::differences(&conn).map_err(|e| damaged_at(path, e))?;
    if !problems.is_empty() {
        return Err(MetaError::Damaged(format!(
            "the metadata database {} does not hold the schema this chunkfs made: {}",
            path.display(),
            problems.join("; ")
        )));
    }
    Ok(conn)
}

/// Above this size the pages are left to fsck at open: SQLite's quick_check reads every page
/// (about 0.5 s per 200 MB of metadata), which would lengthen every mount of a big store.
pub const OPEN_CHECK_MAX_BYTES: u64 = 1 << 30;

/// SQLite's quick_check of every page, so that a store whose database has bad pages is
/// refused when it is opened rather than at the first write that reaches one. Skipped for a
/// database larger than `OPEN_CHECK_MAX_BYTES` (fsck still checks it).
pub fn check_pages_at_open(conn: &Connection, path: &Path) -> Result<()> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > OPEN_CHECK_MAX_BYTES {
        return Ok(());
    }
    let lines: Vec<String> = conn
        .prepare("PRAGMA quick_check(10)")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| damaged_at(path, e.into()))?;
    if lines.iter().any(|l| l != "ok") {
        // One line: a row may hold several, under a "*** in database main ***" heading.
        let problems: Vec<&str> = lines
            .iter()
            .flat_map(|l| l.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("***"))
            .collect();
        return Err(MetaError::Damaged(format!(
            "the metadata database {} has damaged pages (SQLite quick_check: {})",
            path.display(),
            problems.join("; ")
        )));
    }
    Ok(())
}

/// A damage error from SQLite said as damage to the file at `path`; other errors unchanged.
pub fn damaged_at(path: &Path, e: MetaError) -> MetaError {
    match e {
        MetaError::Sql(s) if is_damage(&s) => MetaError::Damaged(format!(
            "the metadata database {} is damaged ({s})",
            path.display()
        )),
        e => e,
    }
}

/// Open an existing database without comparing its schema: for fsck, which reports what is
/// wrong instead of refusing.
pub fn open_unchecked(path: &Path, read_only: bool) -> Result<Connection> {
    if !read_only {
        return open(path, false);
    }
    probe(path)?;
    open_read_only(path).map_err(|e| damaged_at(path, e))
}

fn open_read_only(path: &Path) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > schema::VERSION {
        return Err(MetaError::NewerSchema {
            found,
            supported: schema::VERSION,
        });
    }
    if found == 0 {
        return Err(MetaError::Damaged(format!(
            "the metadata database {} holds no chunkfs schema (user_version 0)",
            path.display()
        )));
    }
    if found < schema::VERSION {
        return Err(MetaError::Corrupt(format!(
            "the store has schema version {found} and needs upgrading to {}: open it read-write once",
            schema::VERSION
        )));
    }
    Ok(conn)
}

/// A hash column. A blob of the wrong length is an error, never a made-up hash (the all-zero
/// one names a hole).
pub(crate) fn hash_col(
    r: &rusqlite::Row<'_>,
    i: usize,
) -> rusqlite::Result<crate::chunker::ChunkHash> {
    let b: Vec<u8> = r.get(i)?;
    crate::chunker::ChunkHash::from_slice(&b).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            format!("a hash of {} bytes", b.len()).into(),
        )
    })
}

/// Run `f` in a transaction of its own (write-locking at once if `write`): committed if it
/// returns Ok, rolled back otherwise. For offline tools; a mounted store's transactions are
/// the group commit's (`fs::core`).
pub fn in_transaction<T, E: From<MetaError>>(
    conn: &Connection,
    write: bool,
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    conn.execute_batch(if write { "BEGIN IMMEDIATE" } else { "BEGIN" })
        .map_err(MetaError::from)?;
    match f() {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(MetaError::from)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Rows of (hash, count) from `sql`, which selects exactly those two columns.
fn hash_counts(conn: &Connection, sql: &str) -> Result<Vec<(crate::chunker::ChunkHash, i64)>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map([], |r| Ok((hash_col(r, 0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Read a value from the `store` key/value table.
pub fn get_value(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached("SELECT value FROM store WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub fn set_value(conn: &Connection, key: &str, value: &[u8]) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO store(key, value) VALUES (?1, ?2)")?
        .execute(rusqlite::params![key, value])?;
    Ok(())
}

pub fn get_u64(conn: &Connection, key: &str) -> Result<Option<u64>> {
    Ok(get_value(conn, key)?.and_then(|v| Some(u64::from_le_bytes(v.as_slice().try_into().ok()?))))
}

pub fn set_u64(conn: &Connection, key: &str, v: u64) -> Result<()> {
    set_value(conn, key, &v.to_le_bytes())
}

/// Record that everything up to `seq` committed at `time_ns`.
pub fn record_commit(conn: &Connection, seq: Seq, time_ns: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO commits(seq, time) VALUES (?1, ?2)")?
        .execute(rusqlite::params![seq.0 as i64, time_ns])?;
    Ok(())
}
