//! `chunkfs defrag`: lay a file's chunks out in order in fresh superchunks.

use crate::fs::{Fs, FsOptions, Ino};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  chunkfs defrag /mnt/backup/vm/disk.img     a file of a mounted chunkfs
  chunkfs defrag /srv/backup vm/disk.img     a file of an unmounted store, by its path inside it";

/// Defragment a file.
///
/// Copies the file's chunks, in file order, into new superchunks so that reading it
/// sequentially reads the device sequentially; superchunks left empty are freed, sparse ones
/// are repacked by the next `chunkfs gc`.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A file inside a mounted chunkfs, or the directory of an unmounted store.
    target: PathBuf,
    /// With a store directory: the file's path inside the store.
    file: Option<PathBuf>,
    /// Print the report as one JSON object (the counts `gc --json` prints).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let Some(file) = a.file else {
        // The advice follows what is wrong, rather than leading it as a context would.
        let target = super::control::locate(&a.target).map_err(|e| {
            anyhow::anyhow!(
                "{}; for an unmounted store, name the store and the file: chunkfs defrag STORE FILE",
                super::error_line(&e)
            )
        })?;
        let rel = target.rel.clone();
        let request = serde_json::json!({"op": "defrag", "path": rel});
        let v = super::control::call_watched(&target, request, super::progress::wanted(a.json))?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        let moved = v
            .get("bytes_repacked")
            .and_then(|b| b.as_u64())
            .unwrap_or(0);
        println!("moved {} into fresh superchunks", super::size::human(moved));
        return Ok(());
    };
    let json = a.json;
    let a = Opened {
        store: a.target,
        file,
    };
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
    let pb = super::progress::bar(super::progress::wanted(json), ProgressBar::new(0));
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
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "moved {} into fresh superchunks; freed {} superchunks ({} bytes)",
        super::size::human(report.bytes_repacked),
        report.superchunks,
        report.bytes_freed
    );
    Ok(())
}

struct Opened {
    store: PathBuf,
    file: PathBuf,
}
