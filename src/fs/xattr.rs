//! Extended attributes: stored per inode with born/died seqs like everything else, so views
//! of the past show the xattrs of their time.

use super::error::{FsError, Result};
use super::ops::{current, current_mut};
use super::special;
use super::tree::{self, When};
use super::{Inner, now_ns};
use crate::meta::{Ino, namespace};

impl Inner {
    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], flags: i32) -> Result<()> {
        special::refuse_change(ino)?;
        check_xattr_name(name)?;
        if value.len() > 65536 {
            return Err(FsError::TooBig);
        }
        self.op(|core, seq| {
            let conn = &core.conn;
            let mut rev = current_mut(conn, ino, seq)?;
            let exists = namespace::get_xattr(conn, ino, name)?.is_some();
            if flags & libc::XATTR_CREATE != 0 && exists {
                return Err(FsError::Exists);
            }
            if flags & libc::XATTR_REPLACE != 0 && !exists {
                return Err(FsError::NoAttribute);
            }
            namespace::set_xattr(conn, ino, name, value, seq)?;
            rev.ctime = now_ns();
            namespace::put_revision(conn, &rev, seq, "setxattr")?;
            Ok(())
        })
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        if special::is_special(ino) {
            let all = self.special_xattrs(ino)?;
            return all
                .into_iter()
                .find_map(|(n, v)| (n == name).then_some(v))
                .ok_or(FsError::NoAttribute);
        }
        check_xattr_name(name)?;
        let core = self.lock_core();
        current(&core.conn, ino)?;
        tree::xattrs(&core.conn, ino, When::Now)?
            .into_iter()
            .find_map(|(n, v)| (n == name).then_some(v))
            .ok_or(FsError::NoAttribute)
    }

    pub fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        if special::is_special(ino) {
            return Ok(self
                .special_xattrs(ino)?
                .into_iter()
                .map(|(n, _)| n)
                .collect());
        }
        let core = self.lock_core();
        current(&core.conn, ino)?;
        Ok(tree::xattrs(&core.conn, ino, When::Now)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        special::refuse_change(ino)?;
        check_xattr_name(name)?;
        self.op(|core, seq| {
            let conn = &core.conn;
            let mut rev = current_mut(conn, ino, seq)?;
            if !namespace::remove_xattr(conn, ino, name, seq)? {
                return Err(FsError::NoAttribute);
            }
            rev.ctime = now_ns();
            namespace::put_revision(conn, &rev, seq, "removexattr")?;
            Ok(())
        })
    }
}

fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(if name.is_empty() {
            FsError::Invalid
        } else {
            FsError::Range
        });
    }
    if name.starts_with(b"system.posix_acl_") {
        // ACLs would be stored but not enforced; refuse rather than mislead.
        return Err(FsError::NotSupported);
    }
    Ok(())
}
