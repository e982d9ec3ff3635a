//! `chunkfs install-helper`: the symlinks mount(8) looks for, so that `mount -t fuse.chunkfs`
//! and fstab lines work, and the shell completions and man pages where distributions keep
//! them.

use super::{completions, manpages};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const NAMES: [&str; 2] = ["mount.chunkfs", "mount.fuse.chunkfs"];

const EXAMPLES: &str = "\
Examples:
  sudo chunkfs install-helper
      then: mount -t fuse.chunkfs /srv/backup /mnt/backup
  sudo chunkfs install-helper --dir /usr/local/sbin
  chunkfs install-helper --root /tmp/stage
      everything under /tmp/stage (e.g. /tmp/stage/sbin/mount.chunkfs), as a package build does
  sudo chunkfs install-helper --no-docs
      only the mount(8) links
  /etc/fstab line:
      /srv/backup  /mnt/backup  fuse.chunkfs  defaults,nofail  0  0";

/// Install the mount(8) helper, shell completions and man pages.
///
/// Creates the symlinks mount.chunkfs and mount.fuse.chunkfs in DIR pointing at this chunkfs
/// executable. mount(8) runs them for filesystems of type fuse.chunkfs (from the command line
/// or /etc/fstab); they mount like `chunkfs mount STORE MOUNTPOINT -o OPTIONS`. Existing links
/// to this executable are left alone; anything else is refused unless --force.
///
/// Then writes the completions for bash (/usr/share/bash-completion/completions/chunkfs), zsh
/// (/usr/share/zsh/vendor-completions/_chunkfs) and fish
/// (/usr/share/fish/vendor_completions.d/chunkfs.fish), and the man pages
/// (/usr/share/man/man8/chunkfs.8, chunkfs-mount.8, ...), replacing older ones and creating
/// the directories if missing: what `chunkfs completions` and `chunkfs manpages` print. Every
/// path is under ROOT (--root, default /). Prints what it installed.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Directory to put the links in; mount(8) searches /sbin, /sbin/fs.d and /sbin/fs.
    #[arg(long, default_value = "/sbin")]
    dir: PathBuf,
    /// Replace files of the same names as the links that are not links to this executable.
    #[arg(long)]
    force: bool,
    /// Install under this directory instead of / (the links still point at this executable).
    #[arg(long, value_name = "ROOT", default_value = "/")]
    root: PathBuf,
    /// Install only the mount(8) links, no completions nor man pages.
    #[arg(long)]
    no_docs: bool,
}

pub fn run(a: Args) -> Result<()> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find this chunkfs executable")?;
    // Without --root a relative --dir stays relative to the current directory.
    let under_root = |p: &Path| match p.strip_prefix("/") {
        Ok(rel) => a.root.join(rel),
        Err(_) if a.root == Path::new("/") => p.to_path_buf(),
        Err(_) => a.root.join(p),
    };
    for name in NAMES {
        let link = under_root(&a.dir).join(name);
        install(&link, &exe, a.force)?;
        println!("{} -> {}", link.display(), exe.display());
    }
    if a.no_docs {
        return Ok(());
    }
    for shell in completions::Shell::ALL {
        let path = under_root(Path::new(shell.system_path()));
        write_file(&path, &completions::script(shell))?;
        println!("{} completion: {}", shell.name(), path.display());
    }
    for path in manpages::write_all(&under_root(Path::new(MAN_DIR)))? {
        println!("man page: {}", path.display());
    }
    Ok(())
}

const MAN_DIR: &str = "/usr/share/man/man8";

fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    manpages::replace_file(path, contents)
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
    if let Some(dir) = link.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::os::unix::fs::symlink(exe, link)
        .with_context(|| format!("cannot create {} (run as root?)", link.display()))
}
