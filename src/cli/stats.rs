//! `chunkfs stats`: how much the store holds and how much deduplication and compression save.
//!
//! Reads the metadata database read-only, so it works the same whether or not the store is
//! mounted (WAL lets a reader run beside the daemon's writer; the numbers are those of the last
//! group commit, a fraction of a second old).

use super::mounts;
use super::size::human;
use crate::fs::Stats;
use crate::fs::open::{META_FILE, host_available};
use crate::meta::{self, chunks, namespace};
use crate::store::device::FileDevice;
use crate::store::superblock::{SUPERBLOCK_LEN, Superblock};
use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  chunkfs stats /srv/backup          a store, mounted or not
  chunkfs stats /mnt/backup/2024     any path inside a mounted chunkfs
  chunkfs stats /srv/backup --json   for scripts: logical_bytes, stored_bytes, dedup_ratio, ...";

/// Show space usage and savings.
///
/// Prints logical bytes (the sizes of all files added up), stored bytes (what their unique
/// chunks take after compression), the deduplication and compression ratios, file, chunk and
/// superchunk counts, and free space. TARGET is a store directory or any path inside a mounted
/// chunkfs.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A store directory, or a path inside a mounted chunkfs.
    target: PathBuf,
    /// Print the numbers as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let store = resolve_store(&a.target)?;
    let stats = read_stats(&store)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print_human(&store, &stats);
    }
    Ok(())
}

fn resolve_store(target: &Path) -> Result<PathBuf> {
    let path = mounts::absolute(target)?;
    if path.join(META_FILE).is_file() {
        return Ok(path);
    }
    match mounts::containing(&path)? {
        Some(m) => Ok(m.source),
        None if !path.exists() => bail!("{} does not exist", target.display()),
        None => bail!(
            "{} is neither a chunkfs store nor inside a mounted chunkfs",
            target.display()
        ),
    }
}

/// The same numbers as `Fs::stats`, from a read-only connection (the daemon may hold the store).
fn read_stats(store: &Path) -> Result<Stats> {
    let meta_path = store.join(META_FILE);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&meta_path, flags)
        .with_context(|| format!("cannot open {} read-only", meta_path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let dev_path = device_path(&conn, store)?;
    let dev = FileDevice::open_read_only(&dev_path)
        .with_context(|| format!("cannot open the store's device {}", dev_path.display()))?;
    let sb = Superblock::read(&dev)
        .with_context(|| format!("cannot read the superblock of {}", dev_path.display()))?;
    let ctx = || format!("cannot read the metadata of {}", store.display());
    // One read transaction, so all numbers come from the same commit.
    conn.execute_batch("BEGIN").with_context(ctx)?;
    let (files, logical) = namespace::file_totals(&conn).with_context(ctx)?;
    let (chunk_count, unique, stored) = chunks::totals(&conn).with_context(ctx)?;
    let scs = chunks::superchunks(&conn).with_context(ctx)?;
    let free = chunks::free_extents(&conn).with_context(ctx)?;
    let seq = meta::get_u64(&conn, "seq").with_context(ctx)?.unwrap_or(0);
    conn.execute_batch("COMMIT").with_context(ctx)?;
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    Ok(Stats {
        logical_bytes: logical,
        stored_bytes: stored,
        unique_bytes: unique,
        files,
        chunks: chunk_count,
        superchunks: scs.len() as u64,
        device_used_bytes: scs.iter().map(|s| s.extent.len).sum(),
        free_bytes: free_bytes(&free, sb.capacity, &dev_path),
        capacity_bytes: sb.capacity,
        dedup_ratio: ratio(logical, unique),
        compression_ratio: ratio(unique, stored),
        seq,
    })
}

fn device_path(conn: &Connection, store: &Path) -> Result<PathBuf> {
    let rel = meta::get_value(conn, "device")
        .context("cannot read the store's device name")?
        .context("the store names no device; is meta.db damaged?")?;
    Ok(store.join(String::from_utf8_lossy(&rel).as_ref()))
}

/// Free bytes as the core counts them: the free map, bounded by what the host filesystem can
/// still give a sparse image file beyond the last used extent.
fn free_bytes(free: &[crate::store::freemap::Extent], capacity: u64, dev: &Path) -> u64 {
    let total: u64 = free.iter().map(|e| e.len).sum();
    let tail = free
        .iter()
        .max_by_key(|e| e.start)
        .filter(|e| e.end() == capacity)
        .map_or(0, |e| e.len.min(capacity - SUPERBLOCK_LEN));
    let host = host_available(dev).unwrap_or(u64::MAX);
    total.min((total - tail).saturating_add(host))
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
        format!("{} of {}", human(s.free_bytes), human(s.capacity_bytes)),
    );
}
