//! `chunkfs defrag`: lay a file's chunks out in order in fresh superchunks.

use crate::fs::{Fs, FsOptions, Ino};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  chunkfs defrag /srv/backup vm/disk.img     a file of an unmounted store, by its path inside it";

/// Defragment a file.
///
/// Copies the file's chunks, in file order, into new superchunks so that reading it
/// sequentially reads the device sequentially; superchunks left empty are freed, sparse ones
/// are repacked by the next `chunkfs gc`.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The store directory.
    store: PathBuf,
    /// The file's path inside the store.
    file: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    // TODO(control file): a PATH inside a mounted chunkfs goes through /.chunkfs/ctl
    // ({"op": "defrag", "ino": ...}) once src/fs/control.rs exists.
    let fs = Fs::open(
        &a.store,
        FsOptions {
            background_gc: false,
            ..FsOptions::default()
        },
    )
    .with_context(|| format!("cannot open the store {}", a.store.display()))?;
    let mut ino = Ino::ROOT;
    for c in a.file.components() {
        use std::path::Component;
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => {
                ino = fs
                    .lookup(ino, n.as_encoded_bytes())
                    .with_context(|| format!("{} is not in the store", a.file.display()))?
                    .ino;
            }
            _ => bail!("{}: use a path without `..`", a.file.display()),
        }
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "defragmenting {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = fs
        .defrag(ino, &|done, total| {
            pb.set_length(total);
            pb.set_position(done);
        })
        .with_context(|| format!("cannot defragment {}", a.file.display()))?;
    pb.finish_and_clear();
    fs.close()?;
    println!(
        "moved {} into fresh superchunks; freed {} superchunks ({} bytes)",
        super::size::human(report.bytes_repacked),
        report.superchunks,
        report.bytes_freed
    );
    Ok(())
}
