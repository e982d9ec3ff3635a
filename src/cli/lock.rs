//! The store lock: `STORE/lock`, held (flock, exclusive) by the daemon serving a mount for its
//! whole life, with the daemon's pid written inside. The kernel drops the lock when the daemon
//! dies, however it dies, so a stale lock file never blocks a mount.

use super::mounts;
use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

pub const LOCK_FILE: &str = "lock";

/// Proof that this process serves the store. Dropping it releases the lock.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

fn open(store: &Path) -> Result<File> {
    let path = store.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path)) // a read-only store directory still locks
        .with_context(|| format!("cannot open the store lock {}", path.display()))
}

impl StoreLock {
    /// Take the lock for this process, or explain who holds it.
    pub fn acquire(store: &Path) -> Result<StoreLock> {
        let mut file = open(store)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!("{}", already_mounted(store, &mut file)),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", store.display()));
            }
        }
        // Best effort: the pid only helps `umount` and messages; the lock itself is the flock.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(StoreLock { _file: file })
    }

    /// Check that the lock is free without keeping it.
    pub fn probe(store: &Path) -> Result<()> {
        Self::acquire(store).map(drop)
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

fn already_mounted(store: &Path, file: &mut File) -> String {
    let pid = read_pid(file).map_or("unknown".into(), |p| p.to_string());
    let at = match mounts::of_store(store) {
        Ok(Some(m)) => format!(" on {}", m.mountpoint.display()),
        _ => String::new(),
    };
    format!(
        "{} is already mounted{at} (daemon pid {pid}); unmount it first with `chunkfs umount MOUNTPOINT`",
        store.display()
    )
}

/// Who holds the lock of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Free,
    /// Held; the pid is `None` if the lock file does not name it.
    Daemon(Option<u32>),
}

pub fn holder(store: &Path) -> Result<Holder> {
    let mut file = open(store)?;
    match file.try_lock() {
        Ok(()) => Ok(Holder::Free),
        Err(TryLockError::WouldBlock) => Ok(Holder::Daemon(read_pid(&mut file))),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot check the lock of {}", store.display()))
        }
    }
}
