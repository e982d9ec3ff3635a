//! The `-o` mount options: which ones chunkfs handles itself, which go to the kernel.

use anyhow::{Result, bail};
use fuser::{MountOption, SessionACL};

#[derive(Clone, Debug, Default)]
pub struct MountOpts {
    pub read_only: bool,
    /// Mount over a non-empty directory.
    pub nonempty: bool,
    pub acl: SessionACL,
    /// Options for the kernel / fusermount3.
    pub kernel: Vec<MountOption>,
    /// The options as given, to hand to the daemon unchanged.
    pub given: Vec<String>,
    /// `chunkfs_admin_group=`: members may run gc, defrag, online fsck and config set.
    pub admin_group: Option<u32>,
    /// `fsname=`: the mount's source in the mount table instead of the store's path.
    pub fsname: Option<String>,
}

/// Options mount(8) and fstab use for themselves; they mean nothing to a mount.
fn is_userspace_only(o: &str) -> bool {
    matches!(
        o,
        "defaults"
            | "auto"
            | "noauto"
            | "nofail"
            | "_netdev"
            | "user"
            | "nouser"
            | "users"
            | "owner"
            | "group"
            | "loop"
    ) || o.starts_with("x-")
        || o.starts_with("comment=")
}

fn flag(o: &str) -> Option<MountOption> {
    Some(match o {
        "dev" => MountOption::Dev,
        "nodev" => MountOption::NoDev,
        "suid" => MountOption::Suid,
        "nosuid" => MountOption::NoSuid,
        "exec" => MountOption::Exec,
        "noexec" => MountOption::NoExec,
        "atime" => MountOption::Atime,
        "noatime" => MountOption::NoAtime,
        "sync" => MountOption::Sync,
        "async" => MountOption::Async,
        "dirsync" => MountOption::DirSync,
        _ => return None,
    })
}

impl MountOpts {
    pub fn parse(given: &[String]) -> Result<MountOpts> {
        let mut m = MountOpts {
            given: given.iter().filter(|o| !o.is_empty()).cloned().collect(),
            ..MountOpts::default()
        };
        let mut rw = false;
        let mut auto_unmount = false;
        for o in m.given.clone() {
            match o.as_str() {
                "ro" => m.read_only = true,
                "rw" => rw = true,
                "allow_other" => m.acl = SessionACL::All,
                "allow_root" if m.acl != SessionACL::All => m.acl = SessionACL::RootAndOwner,
                "allow_root" => {}
                "nonempty" => m.nonempty = true,
                "default_permissions" => {} // always on
                "auto_unmount" => auto_unmount = true,
                o if o.starts_with("chunkfs_admin_group=") => {
                    m.admin_group = Some(group_id(&o["chunkfs_admin_group=".len()..])?)
                }
                o if is_userspace_only(o) => {}
                o if o.starts_with("fsname=") => m.fsname = Some(fsname(&o["fsname=".len()..])?),
                o if o.starts_with("subtype=") => {
                    bail!("-o {o}: chunkfs sets the subtype itself (the type is fuse.chunkfs)")
                }
                o => m
                    .kernel
                    .push(flag(o).unwrap_or_else(|| MountOption::CUSTOM(o.into()))),
            }
        }
        if m.read_only && rw {
            bail!("-o ro and -o rw contradict each other; pass one");
        }
        m.kernel.push(if m.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        });
        if auto_unmount {
            // fusermount3's auto_unmount needs the mount to admit root (fuser enforces it).
            if m.acl == SessionACL::Owner {
                m.acl = SessionACL::RootAndOwner;
            }
            m.kernel.push(MountOption::AutoUnmount);
        }
        Ok(m)
    }
}

impl MountOpts {
    /// The mount's source in the mount table: `-o fsname=` if given, else the store's path.
    pub fn fsname_for(&self, store: &std::path::Path) -> String {
        match &self.fsname {
            Some(name) => name.clone(),
            None => store.to_string_lossy().into_owned(),
        }
    }
}

/// A name for the mount table: what `umount NAME` and `df` show. Not empty; no whitespace,
/// which mount(8) and fstab would split on.
fn fsname(name: &str) -> Result<String> {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        bail!("-o fsname={name:?}: give a name without spaces, e.g. -o fsname=backup");
    }
    Ok(name.to_string())
}

/// A group given by name (as in /etc/group) or by number.
fn group_id(name: &str) -> Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let c = std::ffi::CString::new(name)
        .map_err(|_| anyhow::anyhow!("-o chunkfs_admin_group={name:?}: not a group name"))?;
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 64 << 10];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getgrnam_r writes only into grp and buf.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        bail!(
            "-o chunkfs_admin_group={name}: no such group (name one in /etc/group, or give a number)"
        );
    }
    Ok(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> MountOpts {
        let v: Vec<String> = s.split(',').map(String::from).collect();
        MountOpts::parse(&v).unwrap()
    }

    #[test]
    fn ro_opens_read_only_and_tells_the_kernel() {
        let m = parse("ro,noatime");
        assert!(m.read_only);
        assert!(m.kernel.contains(&MountOption::RO));
        assert!(m.kernel.contains(&MountOption::NoAtime));
    }

    #[test]
    fn unknown_options_pass_through_and_fstab_words_are_dropped() {
        let m = parse("defaults,nofail,x-systemd.automount,max_read=131072,allow_other");
        assert_eq!(m.acl, SessionACL::All);
        assert!(
            m.kernel
                .contains(&MountOption::CUSTOM("max_read=131072".into()))
        );
        assert_eq!(m.kernel.len(), 2); // max_read and RW
    }

    #[test]
    fn the_admin_group_is_ours_by_name_or_number_and_not_the_kernels() {
        let m = parse("chunkfs_admin_group=4300,allow_other");
        assert_eq!(m.admin_group, Some(4300));
        assert_eq!(m.kernel.len(), 1); // only RW
        assert_eq!(parse("chunkfs_admin_group=root").admin_group, Some(0));
        let e = MountOpts::parse(&["chunkfs_admin_group=no-such-group-here".into()]);
        assert!(e.unwrap_err().to_string().contains("no such group"));
    }

    #[test]
    fn contradictions_and_reserved_options_are_refused() {
        assert!(MountOpts::parse(&["ro".into(), "rw".into()]).is_err());
        assert!(MountOpts::parse(&["subtype=x".into()]).is_err());
        assert!(MountOpts::parse(&["fsname=".into()]).is_err());
    }

    #[test]
    fn fsname_names_the_mount_instead_of_the_store_path() {
        let m = parse("fsname=backup,noatime");
        assert_eq!(m.fsname_for(std::path::Path::new("/srv/s")), "backup");
        assert_eq!(m.kernel.len(), 2); // noatime and RW: fsname goes to mount_config
        let plain = parse("noatime");
        assert_eq!(plain.fsname_for(std::path::Path::new("/srv/s")), "/srv/s");
    }
}
