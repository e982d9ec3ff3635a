//! What a change of a file's content takes away: set-user-ID, and set-group-ID where group
//! execute is set (otherwise the bit marks mandatory locking, not privilege), as Linux's
//! `should_remove_suid` does for a write, truncate or fallocate by a caller without
//! CAP_FSETID. The FUSE adapter asks for it where the kernel leaves it to the filesystem
//! (`FUSE_HANDLE_KILLPRIV_V2`, docs/FUSE-TUNING.md); chown's own clearing is `setattr`'s.
//! The kernel does not know the mode changed under a write, fallocate or copy (their replies
//! carry no attributes), so it is told to drop the attributes it cached: else `stat` asking
//! for the mode alone, and `execve`, would go on seeing the bits for the attribute timeout.

use super::error::Result;
use super::{Inner, SetAttr};
use crate::meta::Ino;
use crate::meta::namespace::FileKind;

/// The bits a content change by an unprivileged caller clears from `mode`.
pub fn killed_by_write(mode: u32) -> u32 {
    let mut kill = mode & libc::S_ISUID;
    if mode & (libc::S_ISGID | libc::S_IXGRP) == libc::S_ISGID | libc::S_IXGRP {
        kill |= libc::S_ISGID;
    }
    kill
}

impl Inner {
    /// Clear `killed_by_write` bits of regular file `ino`, if it has any (one attribute read
    /// otherwise). Views and the control files have none to clear.
    pub fn drop_privileges(&self, ino: Ino) -> Result<()> {
        if super::special::is_special(ino) {
            return Ok(());
        }
        let a = self.getattr(ino)?;
        let mode = u32::from(a.perm);
        let kill = killed_by_write(mode);
        if a.kind != FileKind::File || kill == 0 {
            return Ok(());
        }
        let set = SetAttr {
            mode: Some(mode & !kill),
            ..SetAttr::default()
        };
        self.setattr(ino, &set)?;
        self.invalidate(&[super::Inval::Attr(ino)]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setuid_goes_and_setgid_goes_only_with_group_execute() {
        assert_eq!(killed_by_write(0o4755), libc::S_ISUID);
        assert_eq!(killed_by_write(0o6775), libc::S_ISUID | libc::S_ISGID);
        assert_eq!(
            killed_by_write(0o2745),
            0,
            "setgid without g+x is a locking mark"
        );
        assert_eq!(killed_by_write(0o1777), 0);
    }
}
