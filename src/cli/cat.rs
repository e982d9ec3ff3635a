//! `chunkfs cat`: print an old revision of a file, read through the read-only views
//! `MOUNT/.chunkfs/at/POINT/` and `MOUNT/.chunkfs/snapshots/NAME/`.

use super::control::{self, Target};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  chunkfs cat /mnt/backup/notes.txt --at 41                   as of seq 41
  chunkfs cat /mnt/backup/notes.txt --at 2026-12-01T14:00:00Z as of that time (UTC)
  chunkfs cat /mnt/backup/notes.txt --at 2026-12-01T15:00:00+01:00
  chunkfs cat /mnt/backup/notes.txt --at @1796137401          as of that Unix time
  chunkfs cat /mnt/backup/notes.txt --snapshot before-upgrade > notes.old
  chunkfs log /mnt/backup/notes.txt                           to find the seqs

The same bytes are at MOUNT/.chunkfs/at/41/notes.txt and
MOUNT/.chunkfs/snapshots/before-upgrade/notes.txt, for any tool.";

/// Print an old revision of a file.
///
/// Writes PATH's content as it was at a seq, a time, or a snapshot to standard output. PATH
/// need not exist now (a deleted file's old revisions stay readable).
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["at", "snapshot"])))]
pub struct Args {
    /// A file inside a mounted chunkfs.
    path: PathBuf,
    /// A seq, @UNIXSECONDS, or an ISO 8601 time (UTC unless it carries an offset).
    #[arg(long, value_name = "SEQ|TIME")]
    at: Option<String>,
    /// The name of a snapshot.
    #[arg(long, value_name = "NAME")]
    snapshot: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let t = control::locate(&a.path)?.live()?;
    let (view, rel, what) = match (&a.at, &a.snapshot) {
        (Some(at), _) => (
            format!("at/{}", control::point(at)?),
            t.rel.clone(),
            format!("at {at}"),
        ),
        (None, Some(name)) => {
            let (view, rel) = snapshot_view(&t, name)?;
            (view, rel, format!("in snapshot {name}"))
        }
        (None, None) => unreachable!("clap requires --at or --snapshot"),
    };
    let root = t.mount.join(control::CONTROL_DIR).join(&view);
    if std::fs::symlink_metadata(&root).is_err() {
        bail!(
            "{}: nothing {what} in the history (`chunkfs log {}` lists seqs and times)",
            a.path.display(),
            a.path.display()
        );
    }
    let old = root.join(rel.trim_start_matches('/'));
    let not_there = |e: std::io::Error| match e.kind() {
        ErrorKind::NotFound => anyhow!("{} did not exist {what}", a.path.display()),
        ErrorKind::IsADirectory => anyhow!(
            "{} was a directory {what}: list it with `ls {}`",
            a.path.display(),
            old.display()
        ),
        _ => anyhow!(e).context(format!("cannot read {}", old.display())),
    };
    let mut f = std::fs::File::open(&old).map_err(not_there)?;
    let mut out = std::io::stdout().lock();
    match std::io::copy(&mut f, &mut out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()), // `| head` is done reading
        Err(e) if e.kind() == ErrorKind::IsADirectory => Err(not_there(e)),
        Err(e) => Err(anyhow!(e).context(format!("cannot copy {} to stdout", old.display()))),
    }
}

/// `snapshots/NAME` and the path inside it: `t.rel`, made relative to the snapshot's root when the snapshot is
/// of a subtree (its root is an inode; find it among PATH's directories as they are now).
fn snapshot_view(t: &Target, name: &str) -> Result<(String, String)> {
    let list = control::call(t, control::request("snapshot-list", json!({})))?;
    let snaps = list
        .as_array()
        .context("snapshot-list did not return a list")?;
    let Some(snap) = snaps.iter().find(|s| s["name"] == name) else {
        bail!(
            "there is no snapshot {name:?} on {} (`chunkfs snapshot list {}` lists them)",
            t.mount.display(),
            t.mount.display()
        );
    };
    let root = snap["root"].as_u64().unwrap_or(1);
    if root == 1 {
        return Ok((format!("snapshots/{name}"), t.rel.clone()));
    }
    // The directory of PATH, from the mount's root down, whose inode is the snapshot's root.
    let mut dir = t.mount.clone();
    let mut rest: Vec<&str> = t.rel.split('/').filter(|c| !c.is_empty()).collect();
    while !rest.is_empty() {
        dir.push(rest.remove(0));
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.ino() == root) {
            return Ok((format!("snapshots/{name}"), rest.join("/")));
        }
    }
    bail!(
        "snapshot {name:?} is of a subtree that does not hold {} now; read it under {}",
        t.given.display(),
        t.mount
            .join(control::CONTROL_DIR)
            .join("snapshots")
            .join(name)
            .display()
    )
}
