//! `chunkfs mkfs`: make a new store.

use super::size;
use crate::fs::{MkfsOptions, open};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  chunkfs mkfs /srv/backup
      store in /srv/backup, data in /srv/backup/data.img: a sparse file that grows as data is
      stored, up to the size of the host filesystem (so in practice to its free space)
  chunkfs mkfs /srv/backup --size 500G
      cap the image file at 500 GiB (it is sparse: it only takes what is written); a cap
      above the host's free space is allowed, with a warning
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
    /// image file the size of the filesystem it lives on. An image file is sparse: it can
    /// grow only as far as that filesystem's free space, which mkfs reports.
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

/// How large a data device that is a regular file can become: what it holds already plus
/// the host filesystem's free space. None for a block device, whose capacity is real.
fn room_to_grow(device: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(device).ok()?;
    if !md.is_file() {
        return None;
    }
    Some(md.blocks() * 512 + open::host_available(device)?)
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
    let device = opts
        .device
        .clone()
        .unwrap_or_else(|| a.store.join(open::IMAGE_FILE));
    let sb = open::mkfs(&a.store, &opts)
        .with_context(|| format!("cannot make a store in {}", a.store.display()))?;
    println!(
        "made chunkfs store {} (uuid {}, average chunk {})",
        a.store.display(),
        sb.uuid_string(),
        size::human(a.chunk_avg),
    );
    match room_to_grow(&device) {
        None => println!(
            "data on {}: capacity {}",
            device.display(),
            size::human(sb.capacity)
        ),
        Some(room) if room >= sb.capacity => println!(
            "data in {}: a sparse file that takes only what is stored, up to its capacity {}",
            device.display(),
            size::human(sb.capacity)
        ),
        Some(room) => {
            println!(
                "data in {}: a sparse file that grows as data is stored, to {} now (the free \
                 space of the filesystem holding it) and at most {} (its capacity)",
                device.display(),
                size::human(room),
                size::human(sb.capacity),
            );
            if a.size.is_some_and(|asked| asked > room) {
                eprintln!(
                    "chunkfs: warning: --size {} is more than the {} the image can grow to on \
                     its filesystem now: writes will fail with ENOSPC once that is full, before \
                     the store is full",
                    size::human(sb.capacity),
                    size::human(room),
                );
            }
        }
    }
    println!(
        "mount it with: chunkfs mount {} MOUNTPOINT",
        a.store.display()
    );
    Ok(())
}
