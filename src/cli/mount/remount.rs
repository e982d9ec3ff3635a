//! `mount -o remount,ro` and back to `rw`. The kernel flips the superblock's read-only flag
//! without telling a FUSE daemon, so each side has a part here:
//!
//! - the daemon watches its line of the mount table and follows the flag
//!   (`follow_read_only`): read-only, it refuses every change itself too (the conduit's
//!   operations, the background collector, metadata backups), since the kernel only stops
//!   system calls;
//! - `mount.chunkfs` (which mount(8) runs for `-o remount`) and `chunkfs mount -o remount,...`
//!   call remount(2) on the mountpoint, keeping the mount's other flags, instead of starting a
//!   daemon.

use crate::cli::mounts::{self, Table};
use crate::fs::Fs;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Weak;

/// Whether the options ask for a remount rather than a mount.
pub fn is_remount(options: &[String]) -> bool {
    options.iter().any(|o| o == "remount")
}

/// Change the flags of the chunkfs mount at `mountpoint`: `ro`/`rw` and the per-mount flags
/// (nosuid, nodev, noexec, atime ones, sync). Everything else is fixed at mount time.
pub fn remount(mountpoint: &Path, options: &[String]) -> Result<()> {
    let mp = mounts::absolute(mountpoint)?;
    let Some(m) = mounts::at(&mp)?.filter(|m| m.is_chunkfs()) else {
        bail!(
            "{} is not a chunkfs mount; nothing to remount (mount it with `chunkfs mount STORE {}`)",
            mp.display(),
            mp.display()
        );
    };
    let mut flags = libc::MS_REMOUNT;
    for o in m
        .options
        .split(',')
        .chain(options.iter().map(String::as_str))
    {
        flags = apply(flags, o).with_context(|| {
            format!("-o {o} cannot change on a mounted chunkfs; unmount and mount again with it")
        })?;
    }
    let target = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(mp.as_os_str()))?;
    // SAFETY: target is a valid NUL-terminated path; remount ignores source, type and data.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) => {
                "; remounting needs root (fusermount3 cannot remount): as a user, unmount and mount again with or without -o ro"
            }
            Some(libc::EBUSY) => "; files are open for writing under it: close them first",
            _ => "",
        };
        bail!("cannot remount {}: {e}{hint}", mp.display());
    }
    Ok(())
}

/// Options of the form `NAME=VALUE` fixed when the mount was made (FUSE's own and chunkfs's).
const MOUNT_TIME: [&str; 9] = [
    "user_id=",
    "group_id=",
    "rootmode=",
    "max_read=",
    "blksize=",
    "fd=",
    "fsname=",
    "subtype=",
    "chunkfs_admin_group=",
];

/// `flags` with option `o` applied; an error for an option remount cannot change.
fn apply(flags: libc::c_ulong, o: &str) -> Result<libc::c_ulong> {
    const ATIME: libc::c_ulong = libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_STRICTATIME;
    Ok(match o {
        "remount" | "" | "defaults" => flags,
        "ro" => flags | libc::MS_RDONLY,
        "rw" => flags & !libc::MS_RDONLY,
        "nosuid" => flags | libc::MS_NOSUID,
        "suid" => flags & !libc::MS_NOSUID,
        "nodev" => flags | libc::MS_NODEV,
        "dev" => flags & !libc::MS_NODEV,
        "noexec" => flags | libc::MS_NOEXEC,
        "exec" => flags & !libc::MS_NOEXEC,
        "noatime" => flags & !ATIME | libc::MS_NOATIME,
        "relatime" => flags & !ATIME | libc::MS_RELATIME,
        "strictatime" | "atime" => flags & !ATIME | libc::MS_STRICTATIME,
        "nodiratime" => flags | libc::MS_NODIRATIME,
        "diratime" => flags & !libc::MS_NODIRATIME,
        "sync" => flags | libc::MS_SYNCHRONOUS,
        "async" => flags & !libc::MS_SYNCHRONOUS,
        "dirsync" => flags | libc::MS_DIRSYNC,
        // mount(8) hands fstab's own words to helpers; they mean nothing to the kernel.
        o if o.starts_with("x-") || o.starts_with("comment=") => flags,
        "auto" | "noauto" | "nofail" | "_netdev" | "user" | "nouser" | "users" => flags,
        // What the mount was made with, which mount(8) (through mount.fuse3) repeats from the
        // mount table: kept as they are, since only a new mount can change them.
        "default_permissions" | "allow_other" | "allow_root" | "nonempty" | "auto_unmount" => flags,
        o if MOUNT_TIME.iter().any(|p| o.starts_with(p)) => flags,
        _ => bail!("not a flag remount changes"),
    })
}

/// In the daemon: follow the read-only flag of the mount whose device is `dev` ("MAJ:MIN") at
/// `mountpoint` for as long as it is mounted, telling the filesystem (`Fs::set_read_only`)
/// each time it flips. Waits on the mount table (woken by the kernel on every change), never
/// on a timer. Both must match: once this mount is gone, another FUSE mount may get its
/// device number at once (and, read-only, would otherwise pass for a remount of this one).
pub fn follow_read_only(
    fs: Weak<Fs>,
    dev: String,
    mountpoint: std::path::PathBuf,
    mut ro: bool,
) -> Result<()> {
    let mut table = Table::open()?;
    std::thread::Builder::new()
        .name("chunkfs-remount".into())
        .spawn(move || {
            loop {
                let now = match table.read() {
                    Ok(t) => t
                        .into_iter()
                        .find(|m| m.dev == dev && m.mountpoint == mountpoint)
                        .map(|m| m.read_only),
                    Err(e) => {
                        log::warn!("cannot follow remounts any more: {e:#}");
                        return;
                    }
                };
                let Some(now) = now else { return }; // unmounted
                if now != ro {
                    let Some(fs) = fs.upgrade() else { return };
                    match fs.set_read_only(now) {
                        Ok(()) if now => log::info!("remounted read-only: refusing every change"),
                        Ok(()) => log::info!("remounted read-write: changes allowed again"),
                        Err(crate::fs::FsError::ReadOnly) if !now => log::warn!(
                            "remounted read-write, but the store was opened read-only (-o ro): \
                             changes stay refused (EROFS) until it is mounted again without ro"
                        ),
                        Err(e) => log::error!(
                            "remounted read-only; committing what was pending failed: {e}"
                        ),
                    }
                    ro = now;
                }
                if let Err(e) = table.wait() {
                    log::warn!("cannot follow remounts any more: {e:#}");
                    return;
                }
            }
        })
        .context("cannot start the remount thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remount_keeps_the_mounts_flags_and_changes_only_what_is_asked() {
        let mut f = libc::MS_REMOUNT;
        for o in [
            "rw", "nosuid", "nodev", "relatime", "remount", "ro", "noatime",
        ] {
            f = apply(f, o).unwrap();
        }
        assert_eq!(
            f,
            libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOATIME
        );
        // What mount(8) repeats from the mount table is kept; anything else is refused.
        assert_eq!(apply(f, "user_id=0").unwrap(), f);
        assert_eq!(apply(f, "default_permissions").unwrap(), f);
        assert!(apply(f, "max_readahead=1").is_err());
        assert!(apply(f, "nosuchflag").is_err());
    }
}
