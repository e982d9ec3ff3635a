//! `chunkfs fsck`: check a store, name what damage touches, repair and heal. An unmounted
//! store is checked here; a mounted one by its daemon, through the conduit (op "fsck"), on a
//! committed snapshot of its metadata while it keeps serving.

use super::control;
use super::mounts::Mount;
use super::stats::{Source, locate};
use crate::fsck::offline::{self, FsckOptions};
use crate::fsck::{Progress, Report};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  chunkfs fsck /srv/backup                       check everything, data included
  chunkfs fsck /srv/backup --quick               metadata only: refcounts, space, namespace
  chunkfs fsck /srv/backup --repair              also fix what needs no guessing
  chunkfs fsck /srv/backup --repair-from /mnt/usb/photos
                                                 restore damaged chunks from a good copy
  chunkfs fsck /srv/backup --rebuild-metadata    rebuild the chunk index from the device, the
                                                 namespace from meta.db or its newest backup
  chunkfs fsck /srv/backup --json | jq '.corrupt_chunks[].files[].path'
  chunkfs fsck /mnt/backup                       a mounted store, checked online
  chunkfs fsck /mnt/backup --repair-from /mnt/usb/photos
                                                 ... and healed online

Exit codes (as e2fsck): 0 clean, 1 errors corrected, 4 errors left, 8 operational error.";

/// Check a store and name every file a damaged chunk touches.
///
/// Verifies the metadata database first (SQLite's integrity check, the schema against the
/// migrations, foreign keys), then the superblock, every superchunk header and payload checksum, every
/// chunk's BLAKE3 against its name, the chunk index against the device, every refcount
/// (recomputed from scratch), the free map against the superchunks, and the namespace (entries,
/// link counts, cycles, revision ranges). For each corrupt or missing chunk it lists every
/// path, revision (seq range and time) and byte range that uses it, current or historical.
/// A mounted store (its directory, or any path inside the mount) is checked online by its
/// daemon, which keeps serving; it heals there with --repair-from, while --repair needs it
/// unmounted. A damaged superchunk is retired (its intact chunks moved out, then freed) by
/// --repair, and by --repair-from once its damaged chunks are restored.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The store directory, or a path inside a mounted chunkfs.
    store: PathBuf,
    /// Fix refcounts, leaked or doubly used space, index rows (rebuilt from superchunk
    /// headers), superchunks nothing uses, and damaged superchunks whose chunks verify.
    /// Damaged data is never replaced by a guess.
    #[arg(long)]
    repair: bool,
    /// Chunk every file under DIR and restore each damaged chunk whose hash matches (also on
    /// a mounted store, whose daemon reads DIR).
    #[arg(long, value_name = "DIR")]
    repair_from: Option<PathBuf>,
    /// Rebuild the chunk index, superchunk table and free map from the device's superchunk
    /// headers. The namespace is kept from meta.db if it is sound, else taken from its newest
    /// good backup (meta.db.bak.1..3; later changes are lost), else started empty with what
    /// the device holds kept under /lost+found. Files whose chunks the device lacks are named.
    #[arg(long, conflicts_with_all = ["repair", "repair_from", "quick"])]
    rebuild_metadata: bool,
    /// Skip reading chunk data: check the metadata only (SQLite's quick_check instead of its
    /// integrity_check).
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> ExitCode {
    match check(&a) {
        Ok((report, mounted)) => {
            if a.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("chunkfs: {e}"),
                }
            } else {
                print_human(&report, &a.store);
                for line in advice(&report, &a, mounted.as_ref()) {
                    println!("  {line}");
                }
            }
            ExitCode::from(report.exit_code() as u8)
        }
        Err(e) => {
            super::print_error("chunkfs: fsck", &e);
            ExitCode::from(8)
        }
    }
}

/// The report, and the mount when the store was checked online.
fn check(a: &Args) -> Result<(Report, Option<Mount>)> {
    if let Some(dir) = &a.repair_from
        && !dir.is_dir()
    {
        bail!("--repair-from {}: not a directory", dir.display());
    }
    let store = match locate(&a.store)? {
        Source::Mounted(m) => return Ok((check_online(a, &m)?, Some(m))),
        Source::Store(store) => store,
    };
    let opts = FsckOptions {
        quick: a.quick,
        repair: a.repair,
        repair_from: a.repair_from.clone(),
        rebuild_metadata: a.rebuild_metadata,
    };
    let bar = Bar::new(super::progress::wanted(a.json));
    Ok((offline::run(&store, &opts, &bar)?, None))
}

/// Ask the daemon of a mounted store to check it, and to heal it with `--repair-from`.
fn check_online(a: &Args, m: &Mount) -> Result<Report> {
    if a.repair || a.rebuild_metadata {
        bail!(
            "{} is mounted at {}; --repair needs the store to itself: run `chunkfs umount {}`, then `chunkfs fsck {} --repair`{}",
            m.source.display(),
            m.mountpoint.display(),
            m.mountpoint.display(),
            m.source.display(),
            if a.rebuild_metadata {
                " (with --rebuild-metadata instead of --repair)"
            } else if a.repair_from.is_some() {
                " (--repair-from DIR works on the mounted store)"
            } else {
                ""
            }
        );
    }
    if !a.json {
        eprintln!(
            "checking {} online, through its mount at {}",
            m.source.display(),
            m.mountpoint.display()
        );
    }
    let mut args = serde_json::json!({ "quick": a.quick });
    if let Some(dir) = &a.repair_from {
        // The daemon reads the directory itself: give it a path that does not depend on
        // this process's working directory.
        let dir = dir
            .canonicalize()
            .with_context(|| format!("--repair-from {}", dir.display()))?;
        args["repair_from"] = serde_json::Value::from(dir.to_string_lossy().into_owned());
    }
    let t = control::locate(&m.mountpoint)?;
    let show = super::progress::wanted(a.json);
    let result = control::call_watched(&t, control::request("fsck", args), show)?;
    Report::deserialize(result).context("the fsck response is malformed")
}

/// A progress bar on stderr with bytes, rate and ETA, if `show` (`progress::wanted`).
struct Bar(ProgressBar);

impl Bar {
    fn new(show: bool) -> Bar {
        let pb = super::progress::bar(show, ProgressBar::new(0));
        let style = ProgressStyle::with_template(
            "verifying {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        pb.set_style(style);
        Bar(pb)
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn print_human(r: &Report, store: &std::path::Path) {
    if !r.database_errors.is_empty() {
        println!("store {}: its metadata database is damaged", r.store_uuid);
        for l in &r.database_errors {
            println!("damaged database: {l}");
        }
        println!(
            "errors left: nothing else was checked, since nothing the database says can be trusted; {}",
            crate::meta::REBUILD_ADVICE.replace("STORE", &store.display().to_string())
        );
        return;
    }
    println!(
        "store {}: {} superchunks, {} chunks, {} bytes checked{}",
        r.store_uuid,
        r.superchunks_checked,
        r.chunks_checked,
        r.bytes_checked,
        if r.quick {
            " (quick: no data read)"
        } else {
            ""
        }
    );
    // Damaged chunks, grouped by the file they hurt.
    let mut by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in &r.corrupt_chunks {
        if c.files.is_empty() {
            by_file
                .entry("(no file uses it)")
                .or_default()
                .push(format!(
                    "chunk {} {}: {}",
                    &c.hash[..16],
                    c.problem,
                    c.detail
                ));
        }
        for f in &c.files {
            let when = match f.seq_to {
                None => format!("current revision (since seq {})", f.seq_from),
                Some(to) => format!("revision seq {}..{}", f.seq_from, to),
            };
            let snaps = if f.snapshots.is_empty() {
                String::new()
            } else {
                format!(", snapshots {}", f.snapshots.join(" "))
            };
            by_file.entry(&f.path).or_default().push(format!(
                "bytes {}..{} of the {when}{snaps}: chunk {} {} ({})",
                f.offset,
                f.offset + f.length,
                &c.hash[..16],
                c.problem,
                c.detail
            ));
        }
    }
    for (path, lines) in &by_file {
        println!("DAMAGED {path}");
        for l in lines {
            println!("    {l}");
        }
    }
    let sections: [(&str, &[String]); 8] = [
        ("damaged superchunk", &r.damaged_superchunks),
        ("misplaced chunk", &r.misplaced_chunks),
        ("unindexed chunk", &r.unindexed_chunks),
        ("orphan superchunk", &r.orphan_superchunks),
        ("refcount", &r.refcount_errors),
        ("space", &r.space_errors),
        ("namespace", &r.namespace_errors),
        ("repaired", &r.repairs),
    ];
    for (what, lines) in sections {
        for l in lines {
            println!("{what}: {l}");
        }
    }
    println!(
        "{}",
        match r.exit_code() {
            0 => "clean",
            1 => "errors corrected; the store is now clean",
            _ => "errors left: see above",
        }
    );
}

/// What a person can do about the errors left: only what can work. Damaged chunks that a
/// file uses come back only from a good copy of that file (`--repair-from`); what `--repair`
/// fixes is suggested unless it just ran, and then what it left is said to need a person.
fn advice(r: &Report, a: &Args, mounted: Option<&Mount>) -> Vec<String> {
    let mut out = Vec::new();
    if r.exit_code() < 4 {
        return out;
    }
    let target = a.store.display();
    let mut paths: BTreeSet<&str> = BTreeSet::new();
    for c in &r.corrupt_chunks {
        paths.extend(c.files.iter().map(|f| f.path.as_str()));
    }
    if !paths.is_empty() {
        let list: Vec<&str> = paths.iter().copied().take(10).collect();
        let more = paths.len() - list.len();
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        if a.repair_from.is_some() {
            out.push(
                "the files under --repair-from held no good copy of the damaged chunks left".into(),
            );
        }
        out.push(format!(
            "damaged data: only a good copy restores it. Run `chunkfs fsck {target} --repair-from DIR`, \
             DIR holding good copies (from a backup, say) of the files named above, as of the revisions named, \
             one file per damaged chunk: {}{more}. Healing also frees the damaged superchunks",
            list.join(", ")
        ));
    }
    let unindexed = r
        .corrupt_chunks
        .iter()
        .any(|c| c.problem == "missing" && c.superchunk == 0);
    if unindexed && !a.repair {
        out.push(
            "chunks missing from the index may still be on the device: `--repair` looks for them there first"
                .into(),
        );
    }
    let bad_homes: HashSet<u64> = r
        .corrupt_chunks
        .iter()
        .filter(|c| !c.files.is_empty())
        .map(|c| c.superchunk)
        .collect();
    let mut fixable = Vec::new();
    let unused = r
        .corrupt_chunks
        .iter()
        .filter(|c| c.files.is_empty())
        .count();
    if unused > 0 {
        fixable.push(format!("{unused} damaged chunks no file uses (dropped)"));
    }
    let intact = r
        .damaged_superchunk_ids
        .iter()
        .filter(|id| !bad_homes.contains(id))
        .count();
    if intact > 0 {
        fixable.push(format!(
            "{intact} damaged superchunks whose chunks verify (moved out, then freed)"
        ));
    }
    for (n, what) in [
        (r.misplaced_chunks.len(), "misplaced chunks"),
        (r.unindexed_chunks.len(), "unindexed chunks"),
        (r.orphan_superchunks.len(), "orphan superchunks"),
        (r.refcount_errors.len(), "refcount errors"),
        (r.space_errors.len(), "space errors"),
    ] {
        if n > 0 {
            fixable.push(format!("{n} {what}"));
        }
    }
    if !fixable.is_empty() {
        let what = fixable.join(", ");
        out.push(match (a.repair, mounted) {
            (true, _) => format!(
                "left by --repair, which would have to guess: {what}; see the lines above"
            ),
            (false, Some(m)) => format!(
                "`--repair` fixes {what}, on the unmounted store: `chunkfs umount {}`, then `chunkfs fsck {} --repair`",
                m.mountpoint.display(),
                m.source.display()
            ),
            (false, None) => format!("`chunkfs fsck {target} --repair` fixes {what}"),
        });
    }
    if !r.namespace_errors.is_empty() {
        out.push(format!(
            "{} namespace errors: fsck does not repair the namespace; \
             the files named above can be copied out, or reverted (`chunkfs revert`) to a revision from before",
            r.namespace_errors.len()
        ));
    }
    out
}
