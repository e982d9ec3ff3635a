//! `chunkfs revert`: make a file or tree what it was at a seq, a time or a snapshot, through
//! the conduit's "revert" op.

use super::control;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  chunkfs revert /mnt/backup/notes.txt --to 41             the file as of seq 41
  chunkfs revert /mnt/backup/etc --snapshot before-upgrade  a whole tree
  chunkfs revert /mnt/backup --time 2026-12-01T14:00:00Z    everything, as of that time
  chunkfs revert /mnt/backup/etc --to 56                    undo a revert (it prints the seq)

A revert is itself history: it appends a new state equal to the old one and prints the
command that undoes it. Processes with files open under a reverted directory get ESTALE
on their next read or write of a file the revert replaced; they reopen by path.";

/// Revert a file, a directory tree or the whole filesystem.
///
/// Makes PATH what it was at a seq (`chunkfs log PATH` lists them), a time or a snapshot:
/// content, attributes, xattrs and, for a directory, every entry below it (files deleted
/// since come back, files created since go, renames are undone, hard links restored).
/// Nothing outside PATH changes. PATH need not exist now.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("point").required(true).args(["to", "time", "snapshot"])))]
pub struct Args {
    /// A file or directory inside a mounted chunkfs (the mountpoint for everything).
    path: PathBuf,
    /// The seq to go back (or forward) to.
    #[arg(long, value_name = "SEQ")]
    to: Option<u64>,
    /// A time: @UNIXSECONDS or ISO 8601 (UTC unless it carries an offset).
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    /// The name of a snapshot.
    #[arg(long, value_name = "NAME")]
    snapshot: Option<String>,
    /// Print the result as one JSON object: path, to, seq, inodes_changed, entries_added,
    /// entries_removed (docs/CONTROL.md).
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct Reverted {
    to: u64,
    seq: u64,
    inodes_changed: usize,
    entries_added: usize,
    entries_removed: usize,
}

pub fn run(a: Args) -> Result<()> {
    let t = control::locate(&a.path)?.live()?;
    let point = match (a.to, &a.time, &a.snapshot) {
        (Some(seq), _, _) => json!({ "seq": seq }),
        (None, Some(time), _) => {
            if time.parse::<u64>().is_ok() {
                bail!(
                    "--time {time}: a bare number is a seq; use --to {time}, or @{time} for a Unix time"
                );
            }
            json!({ "time": control::point(time)? })
        }
        (None, None, Some(name)) => json!({ "snapshot": name }),
        (None, None, None) => unreachable!("clap requires one of --to, --time, --snapshot"),
    };
    let mut fields = json!({ "path": t.rel });
    if let (Some(f), serde_json::Value::Object(p)) = (fields.as_object_mut(), point) {
        f.extend(p);
    }
    let show = super::progress::wanted(a.json);
    let result = control::call_watched(&t, control::request("revert", fields), show)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let r: Reverted = serde_json::from_value(result).context("the revert response is malformed")?;
    let path = a.path.display();
    if r.inodes_changed + r.entries_added + r.entries_removed == 0 {
        println!(
            "{path} was already as at seq {}: nothing changed (seq {})",
            r.to, r.seq
        );
    } else {
        println!(
            "reverted {path} to seq {}: {} inode{} changed, {} entr{} added, {} removed (seq {})",
            r.to,
            r.inodes_changed,
            if r.inodes_changed == 1 { "" } else { "s" },
            r.entries_added,
            if r.entries_added == 1 { "y" } else { "ies" },
            r.entries_removed,
            r.seq
        );
    }
    println!("undo with: chunkfs revert {path} --to {}", r.seq - 1);
    Ok(())
}
