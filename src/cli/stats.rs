//! `chunkfs stats`: how much the store holds and how much deduplication and compression save.
//!
//! A mounted store answers through its conduit (`MOUNT/.chunkfs/ctl`, op "stats"): the
//! daemon's own numbers, as of its latest operation. An unmounted store is read from its
//! metadata database, read-only.

use super::control;
use super::mounts;
use super::size::human;
use crate::fs::Stats;
use crate::fs::open::META_FILE;
use crate::fs::stats;
use crate::meta;
use crate::store::device::FileDevice;
use crate::store::superblock::Superblock;
use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  chunkfs stats /srv/backup          a store, mounted or not
  chunkfs stats /mnt/backup/2024     any path inside a mounted chunkfs
  chunkfs stats /srv/backup --json   for scripts: logical_bytes, stored_bytes, dedup_ratio, ...
  chunkfs stats --requests /mnt/backup
      the kernel requests the daemon has served since it mounted, per type (root, the
      mounting user and the admin group; docs/FUSE-TUNING.md)";

/// Show space usage and savings.
///
/// Prints logical bytes (the sizes of all files added up), stored bytes (what their unique
/// chunks take after compression), the deduplication and compression ratios, file, chunk and
/// superchunk counts, and free space. TARGET is a store directory or any path inside a mounted
/// chunkfs; a mounted store answers through its control file.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A store directory, or a path inside a mounted chunkfs.
    target: PathBuf,
    /// Print the numbers as one JSON object.
    #[arg(long)]
    json: bool,
    /// Instead of space usage: the FUSE requests the daemon has served since it mounted, per
    /// type (a mounted store only).
    #[arg(long)]
    requests: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.requests {
        return print_requests(&a.target, a.json);
    }
    let (store, stats) = match locate(&a.target)? {
        Source::Mounted(m) => {
            let t = control::locate(&m.mountpoint)?;
            let result = control::call(&t, control::request("stats", serde_json::json!({})))?;
            let stats = Stats::deserialize(result).context("the stats response is malformed")?;
            (m.source, stats)
        }
        Source::Store(store) => {
            let stats = read_stats(&store)?;
            (store, stats)
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print_human(&store, &stats);
    }
    Ok(())
}

/// Where the numbers come from: a live mount, or a store's files.
pub(super) enum Source {
    Mounted(mounts::Mount),
    Store(PathBuf),
}

/// A store directory (mounted or not) or a path inside a mounted chunkfs.
pub(super) fn locate(target: &Path) -> Result<Source> {
    let path = mounts::absolute(target)?;
    if path.join(META_FILE).is_file() {
        return Ok(match mounts::of_store(&path)? {
            Some(m) => Source::Mounted(m),
            None => Source::Store(path),
        });
    }
    match mounts::containing(&path)? {
        Some(m) => Ok(Source::Mounted(m)),
        None => Err(not_a_store(target, &path)),
    }
}

/// Why `path` (as the user named it, `target`) is no store we can read. A store is open to
/// its owner only (mkfs makes it 0700), so anyone else cannot even see its meta.db: say so,
/// rather than that it is no store or does not exist.
fn not_a_store(target: &Path, path: &Path) -> anyhow::Error {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    let denied = |p: &Path| matches!(std::fs::metadata(p), Err(e) if e.kind() == PermissionDenied);
    match std::fs::metadata(path) {
        Err(e) if e.kind() == NotFound => anyhow!("{} does not exist", target.display()),
        _ if denied(path) || denied(&path.join(META_FILE)) => anyhow!(
            "cannot look inside {}: permission denied (a store is open to its owner only: run \
             this as root or as the user who made it)",
            target.display()
        ),
        _ => anyhow!(
            "{} is neither a chunkfs store nor inside a mounted chunkfs",
            target.display()
        ),
    }
}

/// The store's directory, whether mounted or not.
pub(super) fn resolve_store(target: &Path) -> Result<PathBuf> {
    Ok(match locate(target)? {
        Source::Mounted(m) => m.source,
        Source::Store(store) => store,
    })
}

/// The same numbers as `Fs::stats`, from a read-only connection (the daemon may hold the store).
fn read_stats(store: &Path) -> Result<Stats> {
    let meta_path = store.join(META_FILE);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&meta_path, flags)
        .with_context(|| format!("cannot open {} read-only", meta_path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let dev_path = store.join(meta::device_path(&conn).with_context(|| {
        format!(
            "cannot read the store's device name from {}",
            meta_path.display()
        )
    })?);
    let dev = FileDevice::open_read_only(&dev_path)
        .with_context(|| format!("cannot open the store's device {}", dev_path.display()))?;
    let sb = Superblock::read(&dev)
        .with_context(|| format!("cannot read the superblock of {}", dev_path.display()))?;
    let ctx = || format!("cannot read the metadata of {}", store.display());
    // One read transaction, so all numbers come from the same commit.
    meta::in_transaction(&conn, false, || {
        let space = stats::space_of(&conn, sb.capacity, &dev_path).with_context(ctx)?;
        let open = Default::default(); // the daemon's open files are unknown from here
        stats::compute(&conn, sb.capacity, space, &open).with_context(ctx)
    })
}

/// The daemon's count of kernel requests, from its conduit.
fn print_requests(target: &Path, json: bool) -> Result<()> {
    let Source::Mounted(m) = locate(target)? else {
        bail!(
            "{} is not mounted: request counts come from a running daemon",
            target.display()
        );
    };
    let t = control::locate(&m.mountpoint)?;
    let result = control::call(
        &t,
        control::request("request-counts", serde_json::json!({})),
    )?;
    let counts = result
        .as_object()
        .context("the request-counts response is malformed")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    for (name, n) in counts {
        println!("{name:<32}{n}");
    }
    Ok(())
}

fn print_human(store: &Path, s: &Stats) {
    let row = |k: &str, v: String| println!("{k:<18}{v}");
    row("store", store.display().to_string());
    row(
        "logical bytes",
        format!("{} ({})", human(s.logical_bytes), s.logical_bytes),
    );
    row(
        "stored bytes",
        format!("{} ({})", human(s.stored_bytes), s.stored_bytes),
    );
    row("dedup ratio", format!("{:.2}x", s.dedup_ratio));
    row("compression", format!("{:.2}x", s.compression_ratio));
    row("files", s.files.to_string());
    row("chunks", s.chunks.to_string());
    row("superchunks", s.superchunks.to_string());
    row(
        "free space",
        format!(
            "{} of {} (what df shows)",
            human(s.free_bytes),
            human(s.capacity_bytes)
        ),
    );
    row(
        "  unallocated",
        format!("{} (usable at once)", human(s.unallocated_bytes)),
    );
    row(
        "  dead",
        format!(
            "{} (garbage no file uses; gc gives it back without pruning)",
            human(s.dead_bytes)
        ),
    );
    let at_least = if s.reclaimable_complete {
        ""
    } else {
        "at least "
    };
    row(
        "reclaimable",
        format!(
            "{at_least}{} by a full `chunkfs gc` now (estimate: dead plus what pruning would \
             leave dead; only dead counts as free)",
            human(s.reclaimable_bytes)
        ),
    );
}
