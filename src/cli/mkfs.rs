//! `chunkfs mkfs`: make a new store.

use super::size;
use crate::fs::{MkfsOptions, open};
use anyhow::{Context, Result};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  chunkfs mkfs /srv/backup
      store in /srv/backup, data in /srv/backup/data.img, as large as the host filesystem
  chunkfs mkfs /srv/backup --size 500G
      cap the image file at 500 GiB (it is sparse: it only takes what is written)
  chunkfs mkfs /srv/backup --device /dev/sdb1
      keep the data on a block device; meta.db stays in /srv/backup
  chunkfs mkfs /srv/vms --chunk-avg 256K
      larger chunks for big files: less metadata, coarser deduplication";

/// Make a new chunkfs store.
///
/// Creates the store directory STORE with its metadata database (meta.db) and writes a
/// superblock to the data device: by default a sparse image file STORE/data.img, or the block
/// device or file given with --device. The chunk size is fixed for the life of the store.
/// An existing store is never overwritten unless --force is given.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Directory of the new store (created if missing).
    store: PathBuf,
    /// Block device or existing file to hold the data, instead of STORE/data.img.
    #[arg(long, value_name = "PATH")]
    device: Option<PathBuf>,
    /// Capacity of the data device (e.g. 64G, 1T); default: the whole device, or for an
    /// image file the size of the filesystem it lives on.
    #[arg(long, value_name = "SIZE", value_parser = size::parse)]
    size: Option<u64>,
    /// Average chunk size for content-defined chunking (256 bytes to 4M).
    #[arg(long, value_name = "SIZE", value_parser = size::parse, default_value = "64K")]
    chunk_avg: u64,
    /// How long every past state stays readable (s, m, h, d, w); 0 keeps only the current
    /// state, snapshots and clone bases. Changeable later with `chunkfs config`.
    #[arg(long, value_name = "DURATION", value_parser = crate::gc::parse_duration, default_value = "7d")]
    history_window: u64,
    /// Destroy whatever store is already at STORE or on the device.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> Result<()> {
    let chunk_avg = u32::try_from(a.chunk_avg)
        .ok()
        .context("--chunk-avg must be between 256 bytes and 4M")?;
    let opts = MkfsOptions {
        device: a.device,
        size: a.size,
        chunk_avg,
        force: a.force,
        history_window: a.history_window,
        ..MkfsOptions::default()
    };
    let sb = open::mkfs(&a.store, &opts)
        .with_context(|| format!("cannot make a store in {}", a.store.display()))?;
    println!(
        "made chunkfs store {} (uuid {}, capacity {}, average chunk {})",
        a.store.display(),
        sb.uuid_string(),
        size::human(sb.capacity),
        size::human(a.chunk_avg),
    );
    println!(
        "mount it with: chunkfs mount {} MOUNTPOINT",
        a.store.display()
    );
    Ok(())
}
