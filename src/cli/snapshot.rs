//! `chunkfs snapshot create|list|delete`: named points in history, through the conduit.

use super::control::{self, local_iso};
use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  chunkfs snapshot create before-upgrade /mnt/backup     the whole filesystem, now
  chunkfs snapshot create photos-2026 /mnt/backup/photos a subtree
  chunkfs snapshot list /mnt/backup
  ls /mnt/backup/.chunkfs/snapshots/before-upgrade/      browse it (read-only)
  diff -r /mnt/backup/.chunkfs/snapshots/before-upgrade/etc /mnt/backup/etc
  chunkfs revert /mnt/backup/etc --snapshot before-upgrade
  chunkfs snapshot delete before-upgrade /mnt/backup";

/// Create, list and delete snapshots.
///
/// A snapshot names the state of a directory tree at one moment. Taking one costs the same
/// whatever the tree's size: it records a seq, nothing is copied. The tree as it was stays
/// readable under MOUNT/.chunkfs/snapshots/NAME/ (read-only), and `chunkfs cat --snapshot`,
/// `chunkfs revert --snapshot` use it. Data a snapshot sees is kept while the snapshot exists.
///
/// On a shared mount, root and the owner of a directory may snapshot it, and each user but
/// root may hold at most `snapshot-limit` snapshots (`chunkfs config`); a snapshot is deleted
/// by root, whoever took it, or the owner of its directory; each user lists the snapshots they
/// could read (docs/SECURITY.md).
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Name the current state of PATH (a directory; default: the root of the mount holding
    /// the current directory).
    #[command(after_help = EXAMPLES)]
    Create {
        /// 1 to 255 bytes: no '/', not . or .., no control characters.
        name: String,
        /// A directory inside a mounted chunkfs, or the mountpoint.
        path: Option<PathBuf>,
        /// Print the new snapshot as JSON: name, seq, root, created_ns, owner.
        #[arg(long)]
        json: bool,
    },
    /// List the snapshots of the mount holding PATH (default: the current directory).
    #[command(after_help = EXAMPLES)]
    List {
        /// A path inside a mounted chunkfs: lists the snapshots of its whole mount.
        path: Option<PathBuf>,
        /// Print the list as JSON: name, seq, root (inode), created_ns and owner (uid) of each.
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot of the mount holding PATH (default: the current directory). The
    /// live tree is not touched; history only it kept becomes free to reclaim.
    #[command(after_help = EXAMPLES)]
    Delete {
        /// The snapshot's name, as `chunkfs snapshot list` shows it.
        name: String,
        /// A path inside the mounted chunkfs that holds the snapshot.
        path: Option<PathBuf>,
        /// Print what was deleted as JSON: name, mount.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Deserialize)]
struct Snapshot {
    name: String,
    seq: u64,
    root: u64,
    created_ns: i64,
    owner: u32,
}

pub fn run(a: Args) -> Result<()> {
    // Without PATH: the mount holding the current directory, named by its mountpoint.
    let mount_of = |path: Option<PathBuf>| -> Result<control::Target> {
        let explicit = path.is_some();
        let mut t = control::locate(&path.unwrap_or_else(|| PathBuf::from(".")))?;
        if !explicit {
            t.rel = "/".into();
            t.given = t.mount.clone();
        }
        Ok(t)
    };
    match a.command {
        Command::Create { name, path, json } => {
            let t = mount_of(path)?.live()?;
            let req = control::request("snapshot-create", json!({ "name": name, "path": t.rel }));
            let result = control::call(&t, req)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
                return Ok(());
            }
            let s: Snapshot = parse(result)?;
            println!(
                "snapshot {} of {} at seq {}; browse it at {}",
                s.name,
                t.given.display(),
                s.seq,
                t.mount
                    .join(control::CONTROL_DIR)
                    .join("snapshots")
                    .join(&s.name)
                    .display()
            );
        }
        Command::List { path, json } => {
            let t = mount_of(path)?;
            let result = control::call(&t, control::request("snapshot-list", json!({})))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
                return Ok(());
            }
            let snaps: Vec<Snapshot> = parse(result)?;
            println!(
                "{:<24} {:>10} {:<25} {:<12} ROOT",
                "NAME", "SEQ", "CREATED", "OWNER"
            );
            for s in snaps {
                let root = if s.root == 1 {
                    "/".to_string()
                } else {
                    format!("inode {}", s.root)
                };
                println!(
                    "{:<24} {:>10} {:<25} {:<12} {root}",
                    s.name,
                    s.seq,
                    local_iso(s.created_ns),
                    super::users::name(s.owner)
                );
            }
        }
        Command::Delete { name, path, json } => {
            let t = mount_of(path)?;
            control::call(
                &t,
                control::request("snapshot-delete", json!({ "name": name })),
            )?;
            if json {
                let shown = json!({ "name": name, "mount": t.mount });
                println!("{}", serde_json::to_string_pretty(&shown)?);
                return Ok(());
            }
            println!("deleted snapshot {name} of {}", t.mount.display());
        }
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).context("the daemon's response is malformed")
}
