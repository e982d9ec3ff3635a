//! The daemon proper: open the store (which takes its lock), serve FUSE until unmounted, then
//! commit everything and close the store. SIGTERM and SIGINT unmount, which ends the session
//! the same way `fusermount3 -u` does.
//!
//! The outcome of the final commit goes to `STORE/chunkfs.exit` while the store lock is still
//! held, so whoever waits for the lock to be free (`chunkfs umount`) finds it there: `ok`, or
//! `failed` and a second line saying which files' data could not be committed.

use super::MountOpts;
use crate::fs::{Fs, FsOptions};
use crate::fuse::{ChunkFuse, Counted, mount_config, raise_readahead};
use anyhow::{Context, Result, bail};
use fuser::{Session, SessionUnmounter};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The daemon's report of its final commit, in the store directory.
pub const EXIT_FILE: &str = "chunkfs.exit";

pub fn serve(store: &Path, mountpoint: &Path, opts: &MountOpts) -> Result<()> {
    init_logging();
    // glibc gives every thread that allocates an arena of its own; with FUSE workers, rayon
    // and the committer that multiplies the resident size for the same live data.
    // SAFETY: mallopt only tunes the allocator; called before the threads start.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    // Fs::open takes the store lock and holds it until the final commit is done.
    let fs_opts = FsOptions {
        read_only: opts.read_only,
        admins: chunkfs_admins(opts),
        ..FsOptions::default()
    };
    let fs = Arc::new(
        Fs::open(store, fs_opts)
            .with_context(|| format!("cannot open store {}", store.display()))?,
    );
    // The store is ours now: a report left by an earlier daemon is stale.
    let _ = std::fs::remove_file(store.join(EXIT_FILE));
    let config = mount_config(&opts.fsname_for(store), opts.kernel.clone(), opts.acl);
    let abs_mountpoint = crate::cli::mounts::absolute(mountpoint)?;
    let served_fs = Counted::new(ChunkFuse::new(fs.clone()));
    let counts = served_fs.counts();
    let conduit_counts = counts.clone();
    fs.set_request_counts(Box::new(move || conduit_counts.snapshot()));
    let mut session = Session::new(served_fs, mountpoint, &config).with_context(|| {
        format!(
            "cannot mount {} on {}",
            store.display(),
            mountpoint.display()
        )
    })?;
    // The mount table, not the mountpoint, names the new mount: a stat of the mountpoint
    // would ask this very daemon, which does not serve yet.
    if let Ok(Some(m)) = crate::cli::mounts::at(&abs_mountpoint) {
        raise_readahead(&m.dev);
        super::remount::follow_read_only(Arc::downgrade(&fs), m.dev, m.mountpoint, opts.read_only)?;
    }
    unmount_on_signals(session.unmount_callable(), mountpoint.to_path_buf())?;
    crate::fuse::forward_invalidations(&fs, session.notifier())?;
    log::info!("serving {} on {}", store.display(), mountpoint.display());
    let served = session.run();
    log::info!("{} unmounted; committing", mountpoint.display());
    if crate::fuse::report_request_counts_at_unmount() {
        log::info!("requests served: {}", counts.summary());
    }
    let fs = sole_owner(fs)?;
    fs.close_then(|r| record_exit(store, r))
        .with_context(|| format!("final commit of {} failed", store.display()))?;
    served.context("the FUSE session ended with an error")?;
    log::info!("all changes committed; exiting");
    Ok(())
}

/// The filesystem once the session's threads let go of it. The remount follower holds it
/// for as long as a read-only flip takes (its commit), which may be racing the unmount: wait
/// for that, a while, rather than exit without the final commit and its report.
fn sole_owner(mut fs: Arc<Fs>) -> Result<Fs> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match Arc::try_unwrap(fs) {
            Ok(f) => return Ok(f),
            Err(still) if std::time::Instant::now() < deadline => {
                fs = still;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(_) => bail!("the filesystem is still referenced 30 s after the session ended"),
        }
    }
}

/// Write the final commit's outcome to `STORE/chunkfs.exit`, whole or not at all.
fn record_exit(store: &Path, r: &crate::fs::Result<()>) {
    let text = match r {
        Ok(()) => "ok\n".to_string(),
        Err(e) => format!("failed\nfinal commit of {} failed: {e}\n", store.display()),
    };
    let tmp = store.join(format!("{EXIT_FILE}.tmp"));
    let done =
        std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, store.join(EXIT_FILE)));
    if let Err(e) = done {
        log::error!(
            "chunkfs: cannot record the exit status in {}: {e}",
            store.display()
        );
    }
}

/// fuser logs a spurious umount failure at every clean unmount (its own second unmount of a
/// mount already gone) and a warning per unimplemented request; keep its errors only.
const DEFAULT_LOG: &str = "info,fuser=error";

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or(DEFAULT_LOG);
    let inner = env_logger::Builder::from_env(env).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(DaemonLog(inner))).is_ok() {
        log::set_max_level(max);
    }
}

/// The daemon's log, with one of fuser's errors told for what it is.
///
/// fuser answers every FUSE_INTERRUPT with ENOSYS (it does not implement interrupts). When
/// the interrupted request has already been answered, the kernel no longer knows it and the
/// answer fails with ENOENT, which fuser logs as an error: "Failed to send FUSE reply: No
/// such file or directory". Nothing is lost (the request itself was answered; only the note
/// about the interrupt had nowhere to go), so it is logged as information, saying so. An
/// ENOENT for an ordinary reply cannot happen short of a double reply, which fuser's reply
/// types rule out.
struct DaemonLog(env_logger::Logger);

fn is_late_interrupt_reply(target: &str, message: &str) -> bool {
    target == "fuser::reply"
        && message.starts_with("Failed to send FUSE reply: No such file or directory")
}

impl log::Log for DaemonLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        let message = record.args().to_string();
        if is_late_interrupt_reply(record.target(), &message) {
            let meta = log::Metadata::builder()
                .level(log::Level::Info)
                .target("chunkfs::fuse")
                .build();
            if self.0.enabled(&meta) {
                self.0.log(
                    &log::Record::builder()
                        .metadata(meta)
                        .args(format_args!(
                            "an interrupted request ended before its interrupt was answered ({message}); harmless"
                        ))
                        .build(),
                );
            }
            return;
        }
        self.0.log(record);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// A thread that turns SIGTERM/SIGINT into an unmount. If files are still open the unmount is
/// busy; then detach lazily, so the session ends (and commits) once the last one is closed.
fn unmount_on_signals(mut unmounter: SessionUnmounter, mountpoint: PathBuf) -> Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("chunkfs-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                log::info!("signal {sig}: unmounting {}", mountpoint.display());
                if let Err(e) = unmounter.unmount() {
                    log::warn!("unmount failed ({e}); detaching lazily");
                    detach(&mountpoint);
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

fn detach(mountpoint: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = std::io::Error::last_os_error();
        log::error!("cannot detach {}: {e}", mountpoint.display());
    }
}

/// Who may run the store-wide operations: root, the user mounting (this daemon runs as them),
/// and the admin group if one is given.
fn chunkfs_admins(opts: &MountOpts) -> crate::fs::Admins {
    crate::fs::Admins {
        mounter: crate::fs::Credentials::this_process().uid,
        group: opts.admin_group,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fusers_enoent_on_a_reply_is_told_as_a_late_interrupt() {
        let enoent = "Failed to send FUSE reply: No such file or directory (os error 2)";
        assert!(is_late_interrupt_reply("fuser::reply", enoent));
        let enodev = "Failed to send FUSE reply: No such device (os error 19)";
        assert!(!is_late_interrupt_reply("fuser::reply", enodev));
        assert!(!is_late_interrupt_reply("chunkfs::fs", enoent));
    }
}
