//! The metadata layer: every line of SQL lives here. SQLite in WAL mode holds the namespace,
//! the chunk index, chunk lists, superchunks, the free map and refcounts. Functions take the
//! connection that the caller's open transaction runs on; transaction boundaries belong to `fs`.

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
    #[error("metadata database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the metadata database has schema version {found}, newer than this chunkfs ({supported}); upgrade chunkfs"
    )]
    NewerSchema { found: u32, supported: u32 },
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// Open (creating if asked) the metadata database with the pragmas chunkfs relies on, and bring
/// its schema up to date.
pub fn open(path: &Path, create: bool) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut conn = Connection::open_with_flags(path, flags)?;
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
pub fn open_existing(path: &Path, read_only: bool) -> Result<Connection> {
    if !read_only {
        return open(path, false);
    }
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
