//! Garbage collection: which history is retained, and the batched steps that prune what no
//! retention point can see, release its references, sweep dead chunks and free empty
//! superchunks. Each step works inside a transaction its caller opened and is bounded in rows,
//! so the filesystem (`fs::space`) can run steps one short transaction at a time between
//! normal operations. Repacking needs the superchunk builder and device I/O outside the lock,
//! so `fs::space` drives it; this module only chooses what to repack.
//!
//! Layering: `fs` → `gc` → `meta` + `store`.

pub mod estimate;
mod pass;
pub mod prune;
pub mod sweep;

pub use pass::{Pass, Phase};

use crate::meta::{self, Ino, Seq};
use rusqlite::Connection;
use std::collections::HashSet;

/// The setting that holds the history window, in seconds.
pub const HISTORY_WINDOW: &str = "history-window";
pub const DEFAULT_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// A superchunk whose live bytes fall below this fraction of its extent is repacked (the
/// triggers of migration 0004 and the index of 0007 spell it out as 1/2).
pub const REPACK_BELOW: f64 = 0.5;
/// The setting that holds the repack age, in seconds: background GC repacks no superchunk
/// younger than this (data still being written, or written moments ago, often loses more of
/// its chunks soon; repacking it now would copy bytes that die anyway).
pub const REPACK_AGE: &str = "repack-age";
pub const DEFAULT_REPACK_AGE_SECS: u64 = 600;
/// Rows one batch may touch (a pruned revision releasing a large file counts all its nodes).
pub const BATCH_ROWS: usize = 1000;

/// What a GC pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub revisions: u64,
    pub inodes: u64,
    pub dirents: u64,
    pub xattrs: u64,
    pub lists: u64,
    pub chunks: u64,
    pub superchunks: u64,
    pub superchunks_repacked: u64,
    /// Device bytes returned to the free map.
    pub bytes_freed: u64,
    /// Stored chunk bytes copied into new superchunks by repacking.
    pub bytes_repacked: u64,
    /// Stored bytes of chunks removed from the index.
    pub chunk_bytes_freed: u64,
    pub batches: u64,
    /// History rows read and judged (ended revisions, entries and xattrs, unlinked files):
    /// a background pass reads only what ended since the last pass it completed.
    #[serde(default)]
    pub examined: u64,
}

/// Feedback while a pass runs: the phase, and the report so far.
pub trait Progress: Sync {
    fn update(&self, phase: &str, so_far: &GcReport);
}

/// No feedback.
pub struct Silent;

impl Progress for Silent {
    fn update(&self, _: &str, _: &GcReport) {}
}

/// The retention points of one pass: nothing visible at or after `window` (which includes the
/// current state) or at a snapshot or clone base is pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub window: Seq,
    pub points: Vec<Seq>,
}

impl Retention {
    /// Is a row valid for [born, died) visible at some retention point?
    pub fn keeps(&self, born: Seq, died: Option<Seq>) -> bool {
        let Some(died) = died else { return true };
        died > self.window || self.points.iter().any(|p| born <= *p && *p < died)
    }
}

/// The history window in seconds, as configured.
pub fn history_window(conn: &Connection) -> meta::Result<u64> {
    Ok(meta::gc::config_get(conn, HISTORY_WINDOW)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_WINDOW_SECS))
}

/// The repack age in seconds, as configured.
pub fn repack_age(conn: &Connection) -> meta::Result<u64> {
    Ok(meta::gc::config_get(conn, REPACK_AGE)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_REPACK_AGE_SECS))
}

/// Whether a pass could find work, without changing anything: history ended at or after
/// `from` (what the last complete pass did not judge) up to the window, an unlinked file
/// outside the window no one has open, a dead chunk, an empty superchunk, or a sparse one
/// created at or before `repack_before` (unix seconds) and not in `skip`. A handful of index
/// seeks: the background collector's check before it starts a pass.
pub fn pending(
    conn: &Connection,
    ret: &Retention,
    from: Seq,
    open: &HashSet<Ino>,
    repack_before: i64,
    skip: &HashSet<crate::store::superchunk::SuperchunkId>,
) -> meta::Result<bool> {
    use meta::gc;
    if gc::ended_between(conn, from, ret.window)? {
        return Ok(true);
    }
    let mut cursor = (0, 0);
    loop {
        let page = gc::unlinked_revisions(conn, ret.window, cursor, BATCH_ROWS)?;
        if page.iter().any(|r| !open.contains(&r.ino)) {
            return Ok(true);
        }
        match page.last() {
            Some(r) if page.len() == BATCH_ROWS => cursor = r.cursor(),
            _ => break,
        }
    }
    Ok(
        !gc::unreferenced_chunks(conn, &(0, Vec::new()), 1)?.is_empty()
            || !gc::empty_superchunks(conn, 1)?.is_empty()
            || gc::sparse_superchunks(conn, repack_before, 64)?
                .iter()
                .any(|s| !skip.contains(&s.id)),
    )
}

/// Retention as of `now_ns`, never reaching past the last seq given out (`current`), so the
/// current state is always kept.
pub fn retention(conn: &Connection, now_ns: i64, current: Seq) -> meta::Result<Retention> {
    let secs = history_window(conn)?;
    let cutoff = now_ns.saturating_sub((secs as i64).saturating_mul(1_000_000_000));
    let window = meta::gc::window_start(conn, cutoff)?.min(Seq(current.0 + 1));
    Ok(Retention {
        window,
        points: meta::gc::retention_points(conn)?,
    })
}

/// Parse a duration as `chunkfs config` and `mkfs --history-window` take it: a number with an
/// optional unit s, m, h, d or w (seconds without one).
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 7d, 12h, 30m, 0)"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        u => return Err(format!("unknown unit {u:?} in {s:?} (use s, m, h, d or w)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long a duration"))
}

/// Show a number of seconds the way `parse_duration` reads it back.
pub fn format_duration(secs: u64) -> String {
    for (unit, n) in [("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// What the filesystem knows that the metadata does not: which inodes are open (their
/// current state must stay even when unlinked) and which chunks an in-flight commit is about
/// to reference (they must not be swept at refcount zero).
pub struct Live<'a> {
    pub open: &'a HashSet<Ino>,
    pub pinned: &'a dyn Fn(&crate::chunker::ChunkHash) -> bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_print_back() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86400));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert!(parse_duration("7x").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(format_duration(7 * 86400), "1w");
        assert_eq!(format_duration(86400), "1d");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(61), "61s");
    }

    #[test]
    fn a_row_is_kept_when_a_retention_point_falls_inside_it() {
        let r = Retention {
            window: Seq(100),
            points: vec![Seq(10)],
        };
        assert!(r.keeps(Seq(5), None));
        assert!(r.keeps(Seq(5), Some(Seq(11))));
        assert!(!r.keeps(Seq(5), Some(Seq(10))));
        assert!(!r.keeps(Seq(11), Some(Seq(50))));
        assert!(r.keeps(Seq(11), Some(Seq(101))));
    }
}
