//! Who asks, and what they may do: the credentials behind a request and the permission checks
//! the special operations make (docs/SECURITY.md). Plain file access is checked by the kernel
//! (`default_permissions`); the conduit's operations act on many inodes at once, so the core
//! checks them itself with the same rules, here.

use super::error::{FsError, Result};
use super::types::FileKind;
use crate::meta::namespace::Revision;

/// Read, write and search/execute, as in `access(2)`'s mask and the mode's rwx triplets.
pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

/// What a FUSE request header says about its sender: the thread's filesystem uid and gid, and
/// its thread id (0 when it is in a pid namespace the daemon cannot see).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl Credentials {
    /// The calling process itself: what the core API (no kernel in between) acts as.
    /// Taken once: the core API's callers do not change their credentials under it.
    pub fn this_process() -> Credentials {
        static ME: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();
        *ME.get_or_init(|| {
            // SAFETY: these have no preconditions and cannot fail.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            Credentials {
                uid,
                gid,
                pid: std::process::id(),
            }
        })
    }

    /// The full caller, with the supplementary groups of the sending thread.
    ///
    /// The kernel sends only the uid and gid; the groups come from `/proc/PID/status`. That is
    /// safe enough because the sender is blocked in its system call while its request is served
    /// (so the thread, and its pid, cannot be gone and reused in between, short of a fatal
    /// signal), and because the groups are used only when the file's own `Uid`/`Gid` fs fields
    /// match the request header. A mismatch (a reused pid, a thread that changed credentials
    /// since) or an unreadable file (pid 0: a pid namespace the daemon cannot see) leaves the
    /// groups unknown, and `may` then judges a file of a group not the caller's primary one by
    /// the stricter of its group and other bits: unknown groups can only deny, never grant.
    pub fn caller(&self) -> Caller {
        let groups = (self.pid != 0)
            .then(|| std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok())
            .flatten()
            .and_then(|s| groups_if_matching(&s, self.uid, self.gid));
        Caller {
            uid: self.uid,
            gid: self.gid,
            groups_known: groups.is_some(),
            groups: groups.unwrap_or_default(),
        }
    }
}

/// The `Groups:` of a `/proc/PID/status`, if its filesystem uid and gid are `uid` and `gid`.
fn groups_if_matching(status: &str, uid: u32, gid: u32) -> Option<Vec<u32>> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| rest.split_whitespace().filter_map(|v| v.parse().ok()))
    };
    // Uid: real effective saved filesystem
    let fsuid: u32 = field("Uid:")?.nth(3)?;
    let fsgid: u32 = field("Gid:")?.nth(3)?;
    if (fsuid, fsgid) != (uid, gid) {
        return None;
    }
    Some(field("Groups:")?.collect())
}

/// The user a request acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Whether `groups` is all of them (see `Credentials::caller`).
    pub groups_known: bool,
}

impl Caller {
    pub fn root() -> Caller {
        Caller {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            groups_known: true,
        }
    }

    pub fn user(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller {
            uid,
            gid,
            groups: groups.to_vec(),
            groups_known: true,
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Whether the caller may do `mask` (of `R`, `W`, `X`) to an inode with these attributes,
    /// as the kernel's `generic_permission` decides (no ACLs: chunkfs stores none it enforces).
    pub fn may(&self, rev: &Revision, mask: u32) -> bool {
        if self.is_root() {
            // root may do anything but execute a file no one may execute
            return mask & X == 0 || rev.kind == FileKind::Dir || rev.mode & 0o111 != 0;
        }
        let bits = if self.uid == rev.uid {
            rev.mode >> 6
        } else if self.in_group(rev.gid) {
            rev.mode >> 3
        } else if !self.groups_known {
            // A member or not: either class could apply, so only what both grant.
            (rev.mode >> 3) & rev.mode
        } else {
            rev.mode
        } & 7;
        mask & !bits == 0
    }

    /// `may`, as an error: `EACCES`.
    pub fn check(&self, rev: &Revision, mask: u32) -> Result<()> {
        if self.may(rev, mask) {
            Ok(())
        } else {
            Err(FsError::AccessDenied)
        }
    }

    /// Whether the caller owns the inode (or is root), as chmod and utimes ask.
    pub fn owns(&self, rev: &Revision) -> bool {
        self.is_root() || self.uid == rev.uid
    }

    /// `owns`, as an error: `EPERM`.
    pub fn check_owner(&self, rev: &Revision) -> Result<()> {
        if self.owns(rev) {
            Ok(())
        } else {
            Err(FsError::NotPermitted)
        }
    }

    /// The sticky-bit rule for removing or replacing an entry of `dir` naming `victim`.
    pub fn check_sticky(&self, dir: &Revision, victim: &Revision) -> Result<()> {
        if dir.mode & libc::S_ISVTX != 0
            && !self.is_root()
            && self.uid != dir.uid
            && self.uid != victim.uid
        {
            return Err(FsError::NotPermitted);
        }
        Ok(())
    }
}

/// Who may run the store-wide operations (gc, defrag, online fsck, config set): root, the
/// user who mounted, and the members of the admin group (`-o chunkfs_admin_group=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admins {
    pub mounter: u32,
    pub group: Option<u32>,
}

impl Default for Admins {
    fn default() -> Admins {
        Admins {
            mounter: Credentials::this_process().uid,
            group: None,
        }
    }
}

impl Admins {
    /// Whether `who` may have the daemon act on the host with the daemon's own rights (read
    /// a directory for `fsck --repair-from`): root and the mounting user, whose rights they are.
    pub fn check_host(&self, who: &Caller) -> Result<()> {
        if who.is_root() || who.uid == self.mounter {
            Ok(())
        } else {
            Err(FsError::NotPermitted)
        }
    }

    pub fn check(&self, who: &Caller) -> Result<()> {
        let admitted =
            who.is_root() || who.uid == self.mounter || self.group.is_some_and(|g| who.in_group(g));
        if admitted {
            Ok(())
        } else {
            Err(FsError::NotPermitted)
        }
    }
}

/// The attributes to judge an old revision by: what it had then, made no more permissive
/// than what the same inode has now (`now`, if it still exists). When owner and group are
/// the same the rwx bits are intersected, which is exact; when ownership changed, every
/// class gets at most what *every* user may do now, which errs toward refusing.
pub fn stricter(then: &Revision, now: Option<&Revision>) -> Revision {
    let mut r = then.clone();
    if let Some(now) = now {
        let mask = if (now.uid, now.gid) == (then.uid, then.gid) {
            now.mode | !0o777
        } else {
            let every = (now.mode >> 6) & (now.mode >> 3) & now.mode & 7;
            (every * 0o111) | !0o777
        };
        r.mode &= mask;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(uid: u32, gid: u32, mode: u32, kind: FileKind) -> Revision {
        let mut r = Revision::new_dir(crate::meta::Ino(9), 2, crate::meta::Seq(1), 0);
        (r.uid, r.gid, r.mode, r.kind) = (uid, gid, mode, kind);
        r
    }

    #[test]
    fn owner_group_and_other_bits_apply_in_that_order() {
        let f = rev(10, 20, 0o640, FileKind::File);
        assert!(Caller::user(10, 99, &[]).may(&f, R | W));
        assert!(Caller::user(11, 20, &[]).may(&f, R));
        assert!(!Caller::user(11, 20, &[]).may(&f, W));
        assert!(
            Caller::user(11, 99, &[20]).may(&f, R),
            "supplementary group"
        );
        assert!(!Caller::user(11, 99, &[]).may(&f, R));
        // the owner class applies even when it grants less than the group's
        let g = rev(10, 20, 0o070, FileKind::File);
        assert!(!Caller::user(10, 20, &[]).may(&g, R));
    }

    #[test]
    fn unknown_groups_can_only_deny() {
        let mut who = Caller::user(11, 99, &[]);
        who.groups_known = false;
        // 0604: group members are kept out, others let in; either could be the caller.
        assert!(!who.may(&rev(10, 20, 0o604, FileKind::File), R));
        assert!(who.may(&rev(10, 20, 0o644, FileKind::File), R));
        assert!(
            who.may(&rev(10, 99, 0o640, FileKind::File), R),
            "primary group"
        );
    }

    #[test]
    fn root_may_do_anything_but_execute_a_file_no_one_may_execute() {
        let f = rev(10, 20, 0o600, FileKind::File);
        assert!(Caller::root().may(&f, R | W));
        assert!(!Caller::root().may(&f, X));
        assert!(Caller::root().may(&rev(10, 20, 0, FileKind::Dir), R | W | X));
    }

    #[test]
    fn the_sticky_bit_lets_only_owners_remove() {
        let dir = rev(0, 0, 0o1777, FileKind::Dir);
        let theirs = rev(10, 10, 0o644, FileKind::File);
        assert!(
            Caller::user(11, 11, &[])
                .check_sticky(&dir, &theirs)
                .is_err()
        );
        assert!(
            Caller::user(10, 10, &[])
                .check_sticky(&dir, &theirs)
                .is_ok()
        );
        assert!(Caller::root().check_sticky(&dir, &theirs).is_ok());
    }

    #[test]
    fn stricter_takes_the_intersection_or_what_everyone_may_do_now() {
        let then = rev(10, 20, 0o755, FileKind::Dir);
        let now = rev(10, 20, 0o700, FileKind::Dir);
        assert_eq!(stricter(&then, Some(&now)).mode & 0o777, 0o700);
        assert_eq!(stricter(&then, None).mode & 0o777, 0o755);
        let chowned = rev(0, 0, 0o751, FileKind::Dir);
        assert_eq!(stricter(&then, Some(&chowned)).mode & 0o777, 0o111);
    }

    #[test]
    fn groups_come_from_proc_only_when_its_credentials_match() {
        let status = "Name:\tsh\nUid:\t1\t1\t1\t1\nGid:\t2\t2\t2\t2\nGroups:\t5 6 \n";
        assert_eq!(groups_if_matching(status, 1, 2), Some(vec![5, 6]));
        assert_eq!(groups_if_matching(status, 1, 3), None);
        let none = "Uid:\t1\t1\t1\t1\nGid:\t2\t2\t2\t2\nGroups:\t\n";
        assert_eq!(groups_if_matching(none, 1, 2), Some(vec![]));
    }

    #[test]
    fn admins_are_root_the_mounter_and_the_admin_group() {
        let a = Admins {
            mounter: 1000,
            group: Some(50),
        };
        assert!(a.check(&Caller::root()).is_ok());
        assert!(a.check(&Caller::user(1000, 1000, &[])).is_ok());
        assert!(a.check(&Caller::user(1001, 1001, &[50])).is_ok());
        assert!(matches!(
            a.check(&Caller::user(1001, 1001, &[])),
            Err(FsError::NotPermitted)
        ));
    }
}
