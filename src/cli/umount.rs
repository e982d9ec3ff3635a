//! `chunkfs umount`: unmount, then wait for the daemon to commit and release the store, and
//! report what its final commit left: success means every write is durable; a failure names
//! the files whose data could not be committed.

use super::lock::{self, Holder};
use super::mount::EXIT_FILE;
use super::mounts;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

const EXAMPLES: &str = "\
Examples:
  chunkfs umount /mnt/backup
      unmount and wait until the daemon has committed everything and exited
  chunkfs umount backup
      the same for the mount made with -o fsname=backup
  umount /mnt/backup   or   fusermount3 -u /mnt/backup
      also end the daemon cleanly, but return before its final commit is done";

/// Unmount a chunkfs mount.
///
/// Unmounts MOUNTPOINT (with fusermount3, or umount(2) if fusermount3 is missing) and waits
/// until the daemon serving it has committed every write and exited. Fails, changing nothing,
/// if MOUNTPOINT is not a chunkfs mount or is busy (a process has files open or its working
/// directory under it). Fails after unmounting if the daemon's final commit failed, naming the
/// files whose data could not be committed (e.g. for lack of space), or if the daemon ended
/// without reporting.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Where the store is mounted, or the mount's name (-o fsname=).
    mountpoint: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let mp = mounts::absolute(&a.mountpoint)?;
    let m = match mounts::at(&mp)? {
        Some(m) => m,
        None => match mounts::named(&a.mountpoint.to_string_lossy())? {
            Some(m) => m,
            None => bail!("{} is not mounted", a.mountpoint.display()),
        },
    };
    let mp = m.mountpoint.clone();
    if !m.is_chunkfs() {
        bail!(
            "{} is not a chunkfs mount (it is {} from {}); use umount(8)",
            mp.display(),
            m.fstype,
            m.source.display()
        );
    }
    check_may_unmount(&m)?;
    let m = m.with_store();
    if !m.knows_store() {
        // Mounted with -o fsname= and the daemon does not answer: it has ended already.
        unmount(&mp)?;
        eprintln!(
            "chunkfs: unmounted {}; its daemon did not answer, so which store it served and how              its final commit went are unknown (see chunkfs.log in the store)",
            mp.display()
        );
        return Ok(());
    }
    let holder = lock::holder(&m.source).unwrap_or(Holder::Daemon(None));
    unmount(&mp)?;
    if wait_for_daemon(&m.source, holder)? {
        daemon_outcome(&m.source)?;
    }
    Ok(())
}

/// fusermount3 lets only root and the user who mounted a FUSE mount unmount it; anyone else
/// gets its "entry for MOUNTPOINT not found in /etc/mtab". Refuse first, saying who may.
/// (fusermount3 judges the real uid, as here.)
fn check_may_unmount(m: &mounts::Mount) -> Result<()> {
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    match m.owner {
        Some(owner) if me != 0 && owner != me => bail!(
            "cannot unmount {}: it was mounted by {} (uid {owner}); only that user or root may \
             unmount it",
            m.mountpoint.display(),
            super::users::name(owner)
        ),
        _ => Ok(()),
    }
}

/// What the daemon recorded of its final commit (`STORE/chunkfs.exit`) before it let go of
/// the store.
fn daemon_outcome(store: &Path) -> Result<()> {
    let path = store.join(EXIT_FILE);
    let log = store.join(super::mount::LOG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "unmounted, but the daemon ended without reporting its final commit (was it killed?); \
             writes since its last commit may be lost; see {} and run `chunkfs fsck {}`",
            log.display(),
            store.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut lines = text.lines();
    match lines.next() {
        Some("ok") => Ok(()),
        _ => {
            let why: Vec<&str> = lines.collect();
            bail!("unmounted, but {}; see {}", why.join(" "), log.display())
        }
    }
}

fn unmount(mp: &Path) -> Result<()> {
    match Command::new("fusermount3").arg("-u").arg(mp).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim();
            if err.contains("not found in /etc/mtab") || err.contains("Permission denied") {
                bail!(
                    "cannot unmount {}: only the user who mounted it or root may ({err})",
                    mp.display()
                );
            }
            if err.contains("busy") {
                bail!(
                    "{} is busy: a process has a file or its working directory under it (see `fuser -vm {}`); close them and retry",
                    mp.display(),
                    mp.display()
                );
            }
            bail!("fusermount3 -u {} failed: {err}", mp.display());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => umount_syscall(mp),
        Err(e) => Err(e).context("cannot run fusermount3"),
    }
}

fn umount_syscall(mp: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mp.as_os_str().as_bytes())?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount(c.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(e).with_context(|| {
            format!(
                "cannot unmount {} (fusermount3 is not installed; install fuse3, or run as root)",
                mp.display()
            )
        });
    }
    Ok(())
}

/// Wait until the daemon released the store lock, which it does only after its final commit
/// and the report of it. False if no daemon held the store.
fn wait_for_daemon(store: &Path, holder: Holder) -> Result<bool> {
    let pid = match holder {
        Holder::Free => return Ok(false),
        Holder::Daemon(pid) => pid,
    };
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while lock::holder(store)? != Holder::Free {
        if Instant::now() > deadline {
            let who = pid.map_or("the daemon".into(), |p| format!("daemon pid {p}"));
            bail!(
                "unmounted, but {who} has not finished committing after {} s; see {}",
                EXIT_TIMEOUT.as_secs(),
                store.join("chunkfs.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(true)
}
