//! fsck: prove a store intact, or name every file, revision and byte range a damaged chunk
//! touches; repair what needs no guessing and heal damaged chunks from a good copy. Damaged
//! superchunks are retired once their chunks are safe (`relocate`): the intact chunks move
//! into fresh superchunks and the damaged one is freed, so a healed store checks clean.
//!
//! Checks read one consistent state: the caller passes a connection inside a read
//! transaction (a WAL snapshot), so a mounted store keeps serving while it is checked.

mod affected;
mod data;
pub mod heal;
mod namespace;
pub mod offline;
pub mod rebuild;
mod relocate;
pub mod repair;

use crate::chunker::ChunkHash;
use crate::meta::{self, check};
use crate::store::device::Device;
use crate::store::freemap::FreeMap;
use crate::store::superblock::Superblock;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

pub use affected::Affected;

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error(transparent)]
    Meta(#[from] meta::MetaError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    // SQLite's and the I/O error are in the message and so are no `source()`: a printer of
    // the error's chain (`chunkfs: ...`) would say them twice.
    #[error("metadata database error: {0}")]
    Sql(rusqlite::Error),
    #[error("device I/O error: {0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Setup(String),
}

pub type Result<T, E = FsckError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for FsckError {
    fn from(e: rusqlite::Error) -> Self {
        FsckError::Sql(e)
    }
}

impl From<std::io::Error> for FsckError {
    fn from(e: std::io::Error) -> Self {
        FsckError::Io(e)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Check metadata only; read no chunk data.
    pub quick: bool,
}

/// Progress of the data pass: bytes read so far of a total.
pub trait Progress: Sync {
    fn start(&self, total_bytes: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// No feedback.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// A chunk that cannot be read back as its name says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DamagedChunk {
    pub hash: String,
    pub superchunk: u64,
    /// Why: "corrupt" (bytes fail their hash or do not decompress), "missing" (no superchunk,
    /// device too short, or not indexed while a list uses it).
    pub problem: String,
    pub detail: String,
    pub files: Vec<Affected>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub store_uuid: String,
    pub schema_version: u32,
    pub superchunks_checked: u64,
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub quick: bool,
    /// Damage to the metadata database itself (pages, schema, foreign keys). When there is
    /// any, the other checks did not run: nothing the database says can be trusted.
    #[serde(default)]
    pub database_errors: Vec<String>,
    pub corrupt_chunks: Vec<DamagedChunk>,
    /// Superchunks whose header or payload checksum fails.
    pub damaged_superchunks: Vec<String>,
    /// The ids of those superchunks, in the same order.
    #[serde(default)]
    pub damaged_superchunk_ids: Vec<u64>,
    /// Index rows that disagree with the superchunk header (offset, length or codec).
    pub misplaced_chunks: Vec<String>,
    /// Chunks a superchunk header lists that the index does not know.
    pub unindexed_chunks: Vec<String>,
    /// Superchunks no index row points into.
    pub orphan_superchunks: Vec<String>,
    pub refcount_errors: Vec<String>,
    pub space_errors: Vec<String>,
    pub namespace_errors: Vec<String>,
    /// What `--repair` or `--repair-from` changed.
    pub repairs: Vec<String>,
}

impl Report {
    /// Anything wrong at all.
    pub fn has_errors(&self) -> bool {
        !(self.database_errors.is_empty()
            && self.corrupt_chunks.is_empty()
            && self.damaged_superchunks.is_empty()
            && self.misplaced_chunks.is_empty()
            && self.unindexed_chunks.is_empty()
            && self.orphan_superchunks.is_empty()
            && self.refcount_errors.is_empty()
            && self.space_errors.is_empty()
            && self.namespace_errors.is_empty())
    }

    /// e2fsck's exit codes: 0 clean, 1 errors corrected, 4 errors left.
    pub fn exit_code(&self) -> i32 {
        match (self.has_errors(), self.repairs.is_empty()) {
            (true, _) => 4,
            (false, true) => 0,
            (false, false) => 1,
        }
    }

    pub fn damaged_hashes(&self) -> Vec<ChunkHash> {
        self.corrupt_chunks
            .iter()
            .filter_map(|c| parse_hash(&c.hash))
            .collect()
    }
}

pub(crate) fn parse_hash(hex: &str) -> Option<ChunkHash> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(ChunkHash(out))
}

/// Check everything. `conn` should be inside a read transaction so every query sees one state.
pub fn check(
    conn: &Connection,
    dev: &dyn Device,
    sb: &Superblock,
    opts: CheckOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    let mut report = Report {
        store_uuid: sb.uuid_string(),
        schema_version: conn.pragma_query_value(None, "user_version", |r| r.get(0))?,
        quick: opts.quick,
        ..Report::default()
    };
    // The database first: every later check reads it.
    report.database_errors = check::database(conn, opts.quick)?;
    if !report.database_errors.is_empty() {
        return Ok(report);
    }
    let damaged = data::check(conn, dev, opts, progress, &mut report)?;
    report.corrupt_chunks = affected::name_files(conn, damaged)?;
    report.refcount_errors = check::refcounts(conn)?
        .iter()
        .map(ToString::to_string)
        .collect();
    let freemap = FreeMap::from_extents(meta::chunks::free_extents(conn)?);
    match freemap {
        Ok(fm) => report.space_errors = check::space(conn, &fm, sb.capacity)?,
        Err(e) => report.space_errors.push(format!("free map: {e}")),
    }
    report.namespace_errors = namespace::check(conn)?;
    Ok(report)
}
