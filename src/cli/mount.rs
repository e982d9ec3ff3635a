//! `chunkfs mount`: check everything a user can get wrong, then serve the store over FUSE,
//! in the foreground or as a daemon that outlives the command.

mod options;
mod remount;
mod serve;
mod spawn;

use super::lock::StoreLock;
use super::mounts;
use crate::fs::open::META_FILE;
use anyhow::{Context, Result, bail};
pub use options::MountOpts;
pub use serve::EXIT_FILE;
pub use spawn::LOG_FILE;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  chunkfs mount /srv/backup /mnt/backup
      mount in the background; returns once /mnt/backup is live
  chunkfs mount /srv/backup /mnt/backup -o ro
      read-only: every write fails with EROFS; log, stats, snapshot list, cat --at and fsck
      still answer
  chunkfs mount /srv/backup /mnt/backup -o allow_other
      let other users in (the kernel still checks permissions, and every special command
      checks what the kernel would; needs user_allow_other in /etc/fuse.conf when not root)
  chunkfs mount /srv/backup /mnt/backup -o allow_other,chunkfs_admin_group=backup
      members of group backup may also run gc, defrag, online fsck and config set
  chunkfs mount /srv/backup /mnt/backup -o remount,ro
      make a mounted store read-only (root only; mount -o remount,ro /mnt/backup does the
      same after `chunkfs install-helper`); -o remount,rw makes it writable again
  chunkfs mount /srv/backup /mnt/backup --foreground
      serve in this terminal, logging to stderr (RUST_LOG=debug for more); Ctrl-C unmounts
  mount -t fuse.chunkfs /srv/backup /mnt/backup
      the same through mount(8), after `chunkfs install-helper` (or with chunkfs in PATH,
      which fuse3's mount.fuse3 runs); in /etc/fstab:
      /srv/backup  /mnt/backup  fuse.chunkfs  defaults,nofail  0  0

Options for -o (comma separated): ro, rw, allow_other, allow_root, nonempty (mount over a
non-empty directory, hiding its contents), auto_unmount (unmount if the daemon dies; implies
allow_root), default_permissions (always on), chunkfs_admin_group=NAME|GID (who besides
root and the mounting user may run the store-wide operations; docs/SECURITY.md), fsname=NAME
(the mount's source in the mount table and df instead of the store's path; `umount NAME` and
`chunkfs umount NAME` then work), dev, nodev,
suid, nosuid, exec, noexec, atime, noatime, sync, async, dirsync; anything else is passed to
the kernel as is.

The daemon logs to STORE/chunkfs.log. Stop it with `chunkfs umount MOUNTPOINT`, `fusermount3 -u
MOUNTPOINT`, or SIGTERM/SIGINT to its pid (in STORE/lock): each unmounts and commits every
write before the daemon exits. Before releasing the store, the daemon records the outcome of
its final commit in STORE/chunkfs.exit; `chunkfs umount` reports it and fails if data could not
be committed.";

/// Mount a store.
///
/// Serves the store STORE at the directory MOUNTPOINT through FUSE. Without --foreground the
/// command starts a daemon (logging to STORE/chunkfs.log) and returns once the mount is live,
/// or fails with the daemon's error. A store is served by one daemon at a time: a second
/// mount of the same store is refused, naming the daemon that holds it.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Directory of the store (made with `chunkfs mkfs`).
    store: PathBuf,
    /// Existing, empty directory to mount on.
    mountpoint: PathBuf,
    /// Serve in this process and log to stderr instead of starting a daemon.
    #[arg(short, long)]
    foreground: bool,
    /// Mount options, comma separated (see below).
    #[arg(short = 'o', value_name = "OPT,OPT", value_delimiter = ',')]
    options: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    mount(&a.store, &a.mountpoint, a.foreground, &a.options)
}

/// Mount `store` on `mountpoint`; shared with the `mount.chunkfs` helper.
pub fn mount(store: &Path, mountpoint: &Path, foreground: bool, options: &[String]) -> Result<()> {
    if remount::is_remount(options) {
        // mount(8) names the mount's source as STORE, which may be an fsname: the mountpoint
        // alone says which mount.
        return remount::remount(mountpoint, options);
    }
    let opts = MountOpts::parse(options)?;
    let store = check_store(store)?;
    warn_if_open(&store, &opts);
    let mounted_there = check_no_live_mount(&store, mountpoint)?;
    let mountpoint = check_mountpoint(mountpoint, &opts, mounted_there.as_ref())?;
    check_dev_fuse()?;
    if foreground {
        serve::serve(&store, &mountpoint, &opts)
    } else {
        StoreLock::probe(&store)?;
        spawn::spawn(&store, &mountpoint, &opts)
    }
}

/// The store's canonical path: it names the mount in the mount table.
fn check_store(store: &Path) -> Result<PathBuf> {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    let denied = || {
        anyhow::anyhow!(
            "cannot look inside store {}: permission denied (a store is open to its owner only: \
             mount it as root or as the user who made it)",
            store.display()
        )
    };
    let canon = match store.canonicalize() {
        Ok(c) => c,
        Err(e) if e.kind() == NotFound => bail!(
            "store {} does not exist; make one with `chunkfs mkfs {}`",
            store.display(),
            store.display()
        ),
        Err(e) if e.kind() == PermissionDenied => return Err(denied()),
        Err(e) => return Err(e).with_context(|| format!("cannot resolve {}", store.display())),
    };
    if matches!(std::fs::metadata(canon.join(META_FILE)), Err(e) if e.kind() == PermissionDenied) {
        return Err(denied());
    }
    if !canon.join(META_FILE).is_file() {
        bail!(
            "{} is not a chunkfs store (it has no {META_FILE}); make one with `chunkfs mkfs {}`",
            store.display(),
            store.display()
        );
    }
    Ok(canon)
}

/// A store readable by others gives away every file whatever its mode in the mount (mkfs
/// makes it 0700; stores made before that are not). Say so, loudest when sharing the mount.
fn warn_if_open(store: &Path, opts: &MountOpts) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(mode) = std::fs::metadata(store).map(|m| m.permissions().mode() & 0o777) else {
        return;
    };
    if mode & 0o077 != 0 {
        // Not eprintln: mount keeps SIGPIPE ignored (cli/exit.rs), and a closed stderr must
        // not make the warning a panic.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "chunkfs: warning: store {} is mode {mode:04o}: other users can read every file's \
             contents and names from it, whatever their modes in the mount{}; run \
             `chmod 700 {}` (docs/SECURITY.md)",
            store.display(),
            if opts.acl == fuser::SessionACL::All {
                ", which -o allow_other shares"
            } else {
                ""
            },
            store.display()
        );
    }
}

/// What is mounted at `mp` already, refusing what cannot be mounted over: this store itself
/// (the directory then shows the store's own tree, which is no reason to ask for -o nonempty)
/// and a FUSE mount whose daemon has ended (any access fails with ENOTCONN). Another mount
/// there is returned, to be named if the directory it shows is not empty.
fn check_no_live_mount(store: &Path, mp: &Path) -> Result<Option<mounts::Mount>> {
    let Some(m) = mounts::at(&mounts::absolute(mp)?)? else {
        return Ok(None);
    };
    // ENOTCONN, or ECONNABORTED for the first access after the daemon died. The kernel may
    // answer a stat of the mountpoint from its cache (the root's attributes live an hour):
    // opening the directory always asks the daemon.
    if let Err(e) = std::fs::metadata(mp).and_then(|_| std::fs::read_dir(mp).map(drop))
        && matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED))
    {
        bail!(
            "{} is a {} mount whose daemon has ended; unmount it first with `chunkfs umount {}` \
             (or `fusermount3 -u {}`)",
            mp.display(),
            m.fstype,
            mp.display(),
            mp.display()
        );
    }
    let m = m.with_store();
    if m.is_chunkfs() && m.source == store {
        bail!(
            "store {} is already mounted at {}: use it there, or unmount it first with \
             `chunkfs umount {}`",
            store.display(),
            m.mountpoint.display(),
            m.mountpoint.display()
        );
    }
    Ok(Some(m))
}

fn check_mountpoint(
    mp: &Path,
    opts: &MountOpts,
    mounted_there: Option<&mounts::Mount>,
) -> Result<PathBuf> {
    let meta = match std::fs::metadata(mp) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "mountpoint {} does not exist; create it with `mkdir -p {}`",
            mp.display(),
            mp.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot stat mountpoint {}", mp.display()));
        }
    };
    if !meta.is_dir() {
        bail!("mountpoint {} is not a directory", mp.display());
    }
    let mut entries = std::fs::read_dir(mp)
        .with_context(|| format!("cannot list mountpoint {}", mp.display()))?;
    if !opts.nonempty && entries.next().is_some() {
        let what = match mounted_there {
            Some(m) if m.is_chunkfs() => {
                format!(" (chunkfs store {} is mounted there)", m.source.display())
            }
            Some(m) => format!(" ({} from {} is mounted there)", m.fstype, m.fsname),
            None => String::new(),
        };
        bail!(
            "mountpoint {} is not empty{what}; mount on an empty directory, or pass -o nonempty to hide its contents while mounted",
            mp.display()
        );
    }
    mp.canonicalize()
        .with_context(|| format!("cannot resolve mountpoint {}", mp.display()))
}

fn check_dev_fuse() -> Result<()> {
    let dev = Path::new("/dev/fuse");
    if !dev.exists() {
        bail!(
            "/dev/fuse does not exist: install fuse3 (e.g. `apt-get install fuse3`) and load the fuse module (`modprobe fuse`); in a container, pass the device in (`--device /dev/fuse`)"
        );
    }
    // A user's mount opens /dev/fuse itself before fusermount3 mounts it, as libfuse does;
    // udev makes it mode 0666 on Debian, a container may not.
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(dev)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        bail!(
            "cannot open /dev/fuse: {e}; a user can mount only when it is readable and writable \
             by all (mode 0666, as udev makes it on Debian: `chmod 666 /dev/fuse` as root), or \
             mount as root"
        );
    }
    Ok(())
}
