//! The store lock: one process at a time owns a store (a mount daemon, or an offline fsck).
//! An exclusive `flock` on `STORE/lock`, which also records the owner's pid; the kernel
//! releases it when the owner dies, so a killed daemon never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

pub const LOCK_FILE: &str = "lock";

#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Take the lock or say who holds it.
    pub fn acquire(store: &Path) -> Result<StoreLock, String> {
        let path = store.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: a valid open fd.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let who = holder_pid(&mut file).map_or(String::new(), |p| format!(" (pid {p})"));
            return Err(format!(
                "{} is in use by another chunkfs process{who}: it is mounted or being checked; \
                 unmount it first (chunkfs umount MOUNTPOINT)",
                store.display()
            ));
        }
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .map_err(|e| e.to_string())?;
        let _ = writeln!(file, "{}", std::process::id());
        let _ = file.sync_data();
        Ok(StoreLock { _file: file })
    }
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// The pid of the process holding the store's lock, if one does.
pub fn holder(store: &Path) -> Option<u32> {
    let mut file = File::open(store.join(LOCK_FILE)).ok()?;
    // SAFETY: a valid open fd. A shared lock we can take means no one holds it exclusively.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    holder_pid(&mut file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let l = StoreLock::acquire(d.path()).unwrap();
        let e = StoreLock::acquire(d.path()).unwrap_err();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert_eq!(holder(d.path()), Some(std::process::id()));
        drop(l);
        assert_eq!(holder(d.path()), None);
        StoreLock::acquire(d.path()).unwrap();
    }
}
