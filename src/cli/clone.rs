//! `chunkfs clone`: an instant, independent copy of a file or directory tree in the same
//! mount, through the conduit's "clone" op.

use super::control;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  chunkfs clone /mnt/vms/base.img /mnt/vms/test.img       a file: no data copied
  chunkfs clone /mnt/src/linux /mnt/src/linux-experiment  a whole tree, in constant time
  chunkfs clone /mnt/src/linux-experiment /mnt/src/again  clones of clones work

The two sides are independent from then on: writes, truncates, renames, deletes and
reverts in one never show in the other. Deleting the source leaves the clone intact.";

/// Clone a file or a directory tree.
///
/// Makes DST a copy of SRC without copying data: both share chunks until one of them
/// changes. Cloning a directory costs the same whatever the tree's size; entries get their
/// own metadata on their first change. SRC and DST must be in the same chunkfs mount and
/// DST must not exist (its parent must).
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The file or directory to clone.
    src: PathBuf,
    /// The new path.
    dst: PathBuf,
    /// Print the result as one JSON object: ino, kind, seq (docs/CONTROL.md).
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct Cloned {
    kind: String,
    seq: u64,
}

pub fn run(a: Args) -> Result<()> {
    let src = control::locate(&a.src)?.live()?;
    let dst = control::locate(&a.dst)?.live()?;
    if src.mount != dst.mount {
        bail!(
            "{} is in the chunkfs mount at {} and {} in the one at {}: a clone stays in its mount (use cp -a between mounts)",
            a.src.display(),
            src.mount.display(),
            a.dst.display(),
            dst.mount.display()
        );
    }
    if std::fs::symlink_metadata(&a.dst).is_ok() {
        bail!("{} exists; clone to a new path", a.dst.display());
    }
    if dst.rel == "/" {
        bail!(
            "{} is the mount's root; clone to a new path",
            a.dst.display()
        );
    }
    let req = control::request("clone", json!({ "src": src.rel, "dst": dst.rel }));
    let both = control::Target {
        given: format!("{} -> {}", a.src.display(), a.dst.display()).into(),
        ..src
    };
    let result = control::call_watched(&both, req, super::progress::wanted(a.json))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let c: Cloned = serde_json::from_value(result).context("the clone response is malformed")?;
    let kind = if c.kind == "dir" {
        "directory tree"
    } else {
        c.kind.as_str()
    };
    println!(
        "cloned {kind} {} to {} (as of seq {})",
        a.src.display(),
        a.dst.display(),
        c.seq
    );
    Ok(())
}
