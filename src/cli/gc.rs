//! `chunkfs gc`: run a full garbage-collection pass now and say what it freed.

use super::size::human;
use super::stats::resolve_store;
use crate::fs::{Fs, FsOptions};
use crate::gc::{GcReport, Progress};
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  chunkfs gc /srv/backup             an unmounted store
  chunkfs gc /srv/backup --json      for scripts: revisions, chunks, bytes_freed, ...
  chunkfs config set /srv/backup history-window 1d    keep less history, then gc";

/// Reclaim space now.
///
/// Prunes history older than the store's history window (`chunkfs config`) that no snapshot
/// or clone needs, drops the chunks nothing references any more, frees empty superchunks
/// (punching holes in an image file) and repacks sparse ones. A mounted filesystem does the
/// same in the background between commits.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A store directory, or a path inside a mounted chunkfs.
    target: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let store = resolve_store(&a.target)?;
    let bar = Bar::new(super::progress::wanted(a.json));
    let report = run_on(&store, &bar)?;
    bar.0.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(())
}

fn run_on(store: &Path, bar: &Bar) -> Result<GcReport> {
    if let Some(m) = super::mounts::all()?
        .into_iter()
        .find(|m| m.is_chunkfs() && m.source == store)
    {
        // The daemon collects; its progress is drawn from the mount's progress file.
        let show = !bar.0.is_hidden();
        let target = super::control::locate(&m.mountpoint)?;
        let v = super::control::call_watched(&target, serde_json::json!({"op": "gc"}), show)?;
        return Ok(serde_json::from_value(v)?);
    }
    let fs = Fs::open(
        store,
        FsOptions {
            background_gc: false,
            ..FsOptions::default()
        },
    )
    .with_context(|| format!("cannot open the store {}", store.display()))?;
    let report = fs
        .gc(bar)
        .with_context(|| format!("garbage collection of {} failed", store.display()))?;
    fs.close()
        .with_context(|| format!("cannot close {}", store.display()))?;
    Ok(report)
}

/// A spinner on stderr naming the phase and what was freed so far, if `show`.
struct Bar(ProgressBar);

impl Bar {
    fn new(show: bool) -> Bar {
        let pb = super::progress::bar(show, ProgressBar::new_spinner());
        pb.set_style(super::progress::spinner_style());
        Bar(pb)
    }
}

impl Progress for Bar {
    fn update(&self, phase: &str, r: &GcReport) {
        self.0.set_message(format!(
            "{phase}: {} revisions, {} chunks pruned, {} freed, {} repacked",
            r.revisions,
            r.chunks,
            human(r.bytes_freed),
            human(r.bytes_repacked)
        ));
        self.0.tick();
    }
}

fn print_human(r: &GcReport) {
    println!(
        "pruned {} revisions, {} directory entries, {} xattrs, {} inodes",
        r.revisions, r.dirents, r.xattrs, r.inodes
    );
    println!(
        "dropped {} chunk lists and {} chunks ({} stored)",
        r.lists,
        r.chunks,
        human(r.chunk_bytes_freed)
    );
    println!(
        "freed {} superchunks ({}), repacked {} ({} copied), in {} batches",
        r.superchunks,
        human(r.bytes_freed),
        r.superchunks_repacked,
        human(r.bytes_repacked),
        r.batches
    );
}
