//! `chunkfs install-helper`: the symlinks mount(8) looks for, so that `mount -t fuse.chunkfs`
//! and fstab lines work.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const NAMES: [&str; 2] = ["mount.chunkfs", "mount.fuse.chunkfs"];

const EXAMPLES: &str = "\
Examples:
  sudo chunkfs install-helper
      then: mount -t fuse.chunkfs /srv/backup /mnt/backup
  sudo chunkfs install-helper --dir /usr/local/sbin
  /etc/fstab line:
      /srv/backup  /mnt/backup  fuse.chunkfs  defaults,nofail  0  0";

/// Install the mount(8) helper.
///
/// Creates the symlinks mount.chunkfs and mount.fuse.chunkfs in DIR pointing at this chunkfs
/// executable. mount(8) runs them for filesystems of type fuse.chunkfs (from the command line
/// or /etc/fstab); they mount like `chunkfs mount STORE MOUNTPOINT -o OPTIONS`. Existing links
/// to this executable are left alone; anything else is refused unless --force.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Directory to put the links in; mount(8) searches /sbin, /sbin/fs.d and /sbin/fs.
    #[arg(long, default_value = "/sbin")]
    dir: PathBuf,
    /// Replace files of the same names that are not links to this executable.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> Result<()> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find this chunkfs executable")?;
    for name in NAMES {
        let link = a.dir.join(name);
        install(&link, &exe, a.force)?;
        println!("{} -> {}", link.display(), exe.display());
    }
    Ok(())
}

fn install(link: &Path, exe: &Path, force: bool) -> Result<()> {
    if let Ok(meta) = link.symlink_metadata() {
        if link.canonicalize().is_ok_and(|t| t == exe) {
            return Ok(());
        }
        if !force {
            bail!(
                "{} exists and is not a link to {}; pass --force to replace it",
                link.display(),
                exe.display()
            );
        }
        if meta.is_dir() {
            bail!("{} is a directory; not replacing it", link.display());
        }
        std::fs::remove_file(link).with_context(|| format!("cannot remove {}", link.display()))?;
    }
    std::os::unix::fs::symlink(exe, link)
        .with_context(|| format!("cannot create {} (run as root?)", link.display()))
}
