//! `chunkfs log`: the revisions of a file or directory, through the conduit's "log" op.

use super::control::{self, local_iso};
use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  chunkfs log /mnt/backup/notes.txt            every revision, oldest first
  chunkfs log /mnt/backup/photos               a directory's revisions (entries added, removed)
  chunkfs log /mnt/backup/notes.txt --json | jq '.revisions[-2].seq_from'
  chunkfs cat /mnt/backup/notes.txt --at 41    print the revision valid at seq 41

SEQS is the half-open range of seqs for which a revision was the current one (`41..45` is
41 to 44; `45..` is still current). Any seq in the range names the revision for `chunkfs cat
--at`, `chunkfs revert --to` and MOUNT/.chunkfs/at/SEQ/.";

/// List the revisions of a file or directory.
///
/// Each change to PATH (a write, truncate, chmod, rename into place, entry added...) is a
/// revision. For each one prints the seqs it was current for, when it was committed (local
/// time), the operation that made it, the size, the mode, and for files the content's
/// identity (its chunk list's hash, shortened): two revisions with the same content show the
/// same id. A clone's history continues into its source's, before the clone.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A file or directory inside a mounted chunkfs.
    path: PathBuf,
    /// Print the result as JSON: path, ino, kind, and revisions with seq_from, seq_to, time_ns,
    /// op, size, mode, nlink, mtime_ns and content.
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct Log {
    kind: String,
    revisions: Vec<Revision>,
}

#[derive(Deserialize)]
struct Revision {
    seq_from: u64,
    seq_to: Option<u64>,
    time_ns: Option<i64>,
    op: String,
    size: u64,
    mode: u32,
    content: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let t = control::locate(&a.path)?.live()?;
    let result = control::call(&t, control::request("log", json!({ "path": t.rel })))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let log: Log = serde_json::from_value(result).context("the log response is malformed")?;
    println!(
        "{:<12} {:<25} {:<9} {:>14} {:<10} CONTENT",
        "SEQS", "TIME", "OP", "SIZE", "MODE"
    );
    for r in &log.revisions {
        let seqs = match r.seq_to {
            Some(to) => format!("{}..{to}", r.seq_from),
            None => format!("{}..", r.seq_from),
        };
        let time = r.time_ns.map_or("(uncommitted)".into(), local_iso);
        let content = r.content.as_deref().map_or("-", |c| &c[..c.len().min(12)]);
        println!(
            "{seqs:<12} {time:<25} {:<9} {:>14} {:<10} {content}",
            r.op,
            r.size,
            mode_string(&log.kind, r.mode)
        );
    }
    Ok(())
}

/// `-rw-r--r--` as ls prints it.
fn mode_string(kind: &str, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "fifo" => 'p',
        "socket" => 's',
        "chardev" => 'c',
        "blockdev" => 'b',
        _ => '-',
    });
    for (i, (r, w, x)) in [(0o400, 0o200, 0o100), (0o40, 0o20, 0o10), (0o4, 0o2, 0o1)]
        .into_iter()
        .enumerate()
    {
        s.push(if mode & r != 0 { 'r' } else { '-' });
        s.push(if mode & w != 0 { 'w' } else { '-' });
        let special = [0o4000, 0o2000, 0o1000][i] & mode != 0;
        let exec = mode & x != 0;
        s.push(match (special, exec, i) {
            (false, true, _) => 'x',
            (false, false, _) => '-',
            (true, true, 2) => 't',
            (true, false, 2) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
        });
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn modes_print_as_ls_does() {
        assert_eq!(super::mode_string("file", 0o644), "-rw-r--r--");
        assert_eq!(super::mode_string("dir", 0o1777), "drwxrwxrwt");
        assert_eq!(super::mode_string("file", 0o4754), "-rwsr-xr--");
    }
}
