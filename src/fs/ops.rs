//! Namespace operations: lookup, attributes, directories, links, renames, xattrs, statfs.

use super::caller::Credentials;
use super::error::{FsError, Result};
use super::special;
use super::tree::{self, When};
use super::types::*;
use super::{Handle, Inner, from_ns, now_ns, to_ns};
use crate::meta::namespace::{self, Revision};
use crate::meta::{Ino, Seq};
use rusqlite::Connection;

const NAME_MAX: usize = 255;
const LINK_MAX: u32 = 65_000;

pub(super) fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(FsError::Invalid);
    }
    Ok(())
}

pub(super) fn current(conn: &Connection, ino: Ino) -> Result<Revision> {
    tree::rev_or_missing(conn, ino, When::Now)
}

/// The current state of an inode this operation is about to change (materialized first if it
/// is a clone-side inode).
pub(super) fn current_mut(conn: &Connection, ino: Ino, seq: Seq) -> Result<Revision> {
    tree::materialize(conn, ino, seq)
}

fn current_dir(conn: &Connection, ino: Ino) -> Result<Revision> {
    check_dir(current(conn, ino)?)
}

pub(super) fn current_dir_mut(conn: &Connection, ino: Ino, seq: Seq) -> Result<Revision> {
    check_dir(current_mut(conn, ino, seq)?)
}

fn check_dir(rev: Revision) -> Result<Revision> {
    if rev.kind != FileKind::Dir {
        return Err(FsError::NotDir);
    }
    if rev.nlink == 0 {
        return Err(FsError::NotFound); // removed while someone held it
    }
    Ok(rev)
}

/// A directory's entries changed: new mtime/ctime, and `dlink` more subdirectories.
pub(super) fn touch_dir(
    conn: &Connection,
    dir: &mut Revision,
    seq: Seq,
    now: i64,
    dlink: i32,
    op: &str,
) -> Result<()> {
    dir.mtime = now;
    dir.ctime = now;
    dir.nlink = (dir.nlink as i64 + dlink as i64) as u32;
    namespace::put_revision(conn, dir, seq, op)?;
    Ok(())
}

/// What a new inode is made of.
pub(super) struct NewNode<'a> {
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub target: Option<&'a [u8]>,
}

/// Attributes of one committed revision (views of the past use it as it is).
pub(super) fn attr_from(rev: &Revision, size: u64, mtime: i64) -> Attr {
    Attr {
        ino: rev.ino,
        kind: rev.kind,
        perm: (rev.mode & 0o7777) as u16,
        nlink: rev.nlink,
        uid: rev.uid,
        gid: rev.gid,
        rdev: rev.rdev,
        size,
        blocks: size.div_ceil(512),
        atime: from_ns(rev.atime),
        mtime: from_ns(mtime),
        ctime: from_ns(rev.ctime.max(mtime)),
        crtime: from_ns(rev.crtime),
        blksize: 4096,
    }
}

impl Inner {
    pub fn getattr(&self, ino: Ino) -> Result<Attr> {
        if special::is_special(ino) {
            return self.special_getattr(ino);
        }
        let rev = current(&self.lock_core().conn, ino)?;
        Ok(self.attr_of(&rev))
    }

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        if special::is_special(parent) {
            return self.special_lookup(None, parent, name);
        }
        if parent == Ino::ROOT && name == special::CONTROL_NAME {
            return self.special_getattr(special::CTL_DIR);
        }
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        if name == b"." {
            return self.lookup_self(parent);
        }
        let rev = {
            let core = self.lock_core();
            let conn = &core.conn;
            current_dir(conn, parent)?;
            let ino = match name {
                b".." => tree::parent(conn, parent, When::Now)?.unwrap_or(Ino::ROOT),
                _ => {
                    tree::lookup(conn, parent, name, When::Now)?
                        .ok_or(FsError::NotFound)?
                        .ino
                }
            };
            current(conn, ino)?
        };
        Ok(self.attr_of(&rev))
    }

    /// `lookup(ino, ".")`: the inode itself, of any kind. The kernel asks this to open a file
    /// handle (`open_by_handle_at`, an NFS export) whose inode it no longer caches. Inode
    /// numbers are never reused, so the number alone names the inode; one with no name left
    /// is gone (ENOENT, which the kernel turns into ESTALE), even while GC has yet to prune
    /// it: a handle, like a path, does not reach a deleted file nobody holds open.
    fn lookup_self(&self, ino: Ino) -> Result<Attr> {
        let rev = current(&self.lock_core().conn, ino)?;
        if rev.nlink == 0 {
            return Err(FsError::NotFound);
        }
        Ok(self.attr_of(&rev))
    }

    pub(super) fn make_node(&self, parent: Ino, name: &[u8], node: NewNode<'_>) -> Result<Attr> {
        special::refuse_name(parent, name)?;
        check_name(name)?;
        let rev = self.op(|core, seq| {
            let conn = &core.conn;
            let mut dir = current_dir_mut(conn, parent, seq)?;
            if tree::lookup(conn, parent, name, When::Now)?.is_some() {
                return Err(FsError::Exists);
            }
            let is_dir = node.kind == FileKind::Dir;
            if is_dir && dir.nlink >= LINK_MAX {
                return Err(FsError::TooManyLinks);
            }
            let now = now_ns();
            let ino = namespace::new_inode(conn, node.kind, seq)?;
            let target = node.target.map(<[u8]>::to_vec);
            let rev = Revision {
                ino,
                kind: node.kind,
                born: seq,
                mode: node.mode & 0o7777,
                uid: node.uid,
                gid: if dir.mode & libc::S_ISGID != 0 {
                    dir.gid
                } else {
                    node.gid
                },
                nlink: if is_dir { 2 } else { 1 },
                size: target.as_ref().map_or(0, |t| t.len() as u64),
                rdev: node.rdev,
                atime: now,
                mtime: now,
                ctime: now,
                crtime: now,
                list: None,
                target,
            };
            let mut rev = rev;
            if is_dir && dir.mode & libc::S_ISGID != 0 {
                rev.mode |= libc::S_ISGID;
            }
            namespace::put_revision(conn, &rev, seq, "create")?;
            namespace::add_dirent(conn, parent, name, ino, node.kind, seq)?;
            touch_dir(conn, &mut dir, seq, now, is_dir as i32, "create")?;
            Ok(rev)
        })?;
        Ok(self.attr_of(&rev))
    }

    pub fn mkdir(&self, parent: Ino, name: &[u8], mode: u32, uid: u32, gid: u32) -> Result<Attr> {
        self.make_node(
            parent,
            name,
            NewNode {
                kind: FileKind::Dir,
                mode,
                uid,
                gid,
                rdev: 0,
                target: None,
            },
        )
    }

    /// Make a regular file, fifo, socket or device node; `mode` carries the type bits.
    pub fn mknod(
        &self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Attr> {
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => FileKind::File,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            libc::S_IFDIR => FileKind::Dir,
            _ => return Err(FsError::Invalid),
        };
        let rdev = if matches!(kind, FileKind::CharDev | FileKind::BlockDev) {
            rdev
        } else {
            0
        };
        self.make_node(
            parent,
            name,
            NewNode {
                kind,
                mode,
                uid,
                gid,
                rdev,
                target: None,
            },
        )
    }

    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        flags: i32,
        uid: u32,
        gid: u32,
    ) -> Result<(Attr, Opened)> {
        let attr = self.make_node(
            parent,
            name,
            NewNode {
                kind: FileKind::File,
                mode,
                uid,
                gid,
                rdev: 0,
                target: None,
            },
        )?;
        let opened = self.open(attr.ino, flags & !libc::O_TRUNC)?;
        Ok((attr, opened))
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<Attr> {
        if target.is_empty() {
            return Err(FsError::NotFound);
        }
        if target.len() > 4095 {
            return Err(FsError::NameTooLong);
        }
        self.make_node(
            parent,
            name,
            NewNode {
                kind: FileKind::Symlink,
                mode: 0o777,
                uid,
                gid,
                rdev: 0,
                target: Some(target),
            },
        )
    }

    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        if special::is_special(ino) {
            return self.special_readlink(ino);
        }
        let rev = current(&self.lock_core().conn, ino)?;
        match rev.kind {
            FileKind::Symlink => Ok(rev.target.unwrap_or_default()),
            _ => Err(FsError::Invalid),
        }
    }

    pub fn link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> Result<Attr> {
        special::refuse_change(ino)?;
        special::refuse_name(newparent, newname)?;
        check_name(newname)?;
        let rev = self.op(|core, seq| {
            let conn = &core.conn;
            let mut rev = current_mut(conn, ino, seq)?;
            if rev.kind == FileKind::Dir {
                return Err(FsError::NotPermitted);
            }
            if rev.nlink >= LINK_MAX {
                return Err(FsError::TooManyLinks);
            }
            let mut dir = current_dir_mut(conn, newparent, seq)?;
            if tree::lookup(conn, newparent, newname, When::Now)?.is_some() {
                return Err(FsError::Exists);
            }
            let now = now_ns();
            namespace::add_dirent(conn, newparent, newname, ino, rev.kind, seq)?;
            rev.nlink += 1;
            rev.ctime = now;
            namespace::put_revision(conn, &rev, seq, "link")?;
            touch_dir(conn, &mut dir, seq, now, 0, "link")?;
            Ok(rev)
        })?;
        Ok(self.attr_of(&rev))
    }

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        special::refuse_removal(parent, name)?;
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        self.op(|core, seq| {
            let conn = &core.conn;
            let mut dir = current_dir_mut(conn, parent, seq)?;
            let ent = tree::lookup(conn, parent, name, When::Now)?.ok_or(FsError::NotFound)?;
            if ent.kind == FileKind::Dir {
                return Err(FsError::IsDir);
            }
            let now = now_ns();
            namespace::remove_dirent(conn, parent, name, seq)?;
            let mut rev = current_mut(conn, ent.ino, seq)?;
            rev.nlink = rev.nlink.saturating_sub(1);
            rev.ctime = now;
            namespace::put_revision(conn, &rev, seq, "unlink")?;
            touch_dir(conn, &mut dir, seq, now, 0, "unlink")
        })
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        special::refuse_removal(parent, name)?;
        match name {
            b"." => return Err(FsError::Invalid),
            b".." => return Err(FsError::NotEmpty),
            _ if name.len() > NAME_MAX => return Err(FsError::NameTooLong),
            _ => {}
        }
        self.op(|core, seq| {
            let conn = &core.conn;
            let mut dir = current_dir_mut(conn, parent, seq)?;
            let ent = tree::lookup(conn, parent, name, When::Now)?.ok_or(FsError::NotFound)?;
            if ent.kind != FileKind::Dir {
                return Err(FsError::NotDir);
            }
            if !tree::is_empty(conn, ent.ino)? {
                return Err(FsError::NotEmpty);
            }
            let now = now_ns();
            namespace::remove_dirent(conn, parent, name, seq)?;
            let mut rev = current_mut(conn, ent.ino, seq)?;
            rev.nlink = 0;
            rev.ctime = now;
            namespace::put_revision(conn, &rev, seq, "rmdir")?;
            touch_dir(conn, &mut dir, seq, now, -1, "rmdir")
        })
    }

    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        special::refuse_removal(parent, name)?;
        special::refuse_removal(newparent, newname)?;
        if flags.exchange && flags.noreplace {
            return Err(FsError::Invalid);
        }
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        check_name(newname)?;
        self.op(|core, seq| {
            super::rename::rename(&core.conn, seq, parent, name, newparent, newname, flags)
        })
    }

    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        special::refuse_change(ino)?;
        if let Some(size) = set.size {
            let kind = current(&self.lock_core().conn, ino)?.kind;
            match kind {
                FileKind::File => {}
                FileKind::Dir => return Err(FsError::IsDir),
                _ => return Err(FsError::Invalid),
            }
            if size > i64::MAX as u64 {
                return Err(FsError::TooBig);
            }
            self.check_writable()?;
            self.truncate(ino, size)?;
        }
        let attrs_only = SetAttr {
            size: None,
            ..set.clone()
        };
        let has_attrs = attrs_only.mode.is_some()
            || attrs_only.uid.is_some()
            || attrs_only.gid.is_some()
            || attrs_only.atime.is_some()
            || attrs_only.mtime.is_some()
            || attrs_only.ctime.is_some();
        if has_attrs {
            // Commit pending writes first, so an explicit mtime is not overwritten by them.
            if set.mtime.is_some() {
                self.commit_pending(ino)?;
            }
            let rev = self.op(|core, seq| {
                let mut rev = current_mut(&core.conn, ino, seq)?;
                let now = now_ns();
                let time = |t: TimeSet| match t {
                    TimeSet::Now => now,
                    TimeSet::At(t) => to_ns(t),
                };
                if let Some(m) = set.mode {
                    rev.mode = m & 0o7777;
                }
                if let Some(u) = set.uid {
                    rev.uid = u;
                }
                if let Some(g) = set.gid {
                    rev.gid = g;
                }
                if (set.uid.is_some() || set.gid.is_some())
                    && set.mode.is_none()
                    && rev.kind != FileKind::Dir
                {
                    // As Linux's chown: setuid goes; setgid only where group execute is set
                    // (without it, setgid marks mandatory locking, not privilege).
                    rev.mode &= !libc::S_ISUID;
                    if rev.mode & libc::S_IXGRP != 0 {
                        rev.mode &= !libc::S_ISGID;
                    }
                }
                if let Some(t) = set.atime {
                    rev.atime = time(t);
                }
                if let Some(t) = set.mtime {
                    rev.mtime = time(t);
                }
                rev.ctime = set.ctime.map_or(now, to_ns);
                namespace::put_revision(&core.conn, &rev, seq, "setattr")?;
                Ok(rev)
            })?;
            // The revision just written is the current one: no need to load it again.
            return Ok(self.attr_of(&rev));
        }
        self.getattr(ino)
    }

    pub(super) fn commit_pending(&self, ino: Ino) -> Result<()> {
        let Some(f) = self.files.lock().unwrap().get(&ino).cloned() else {
            return Ok(());
        };
        let mut st = f.lock().unwrap();
        self.commit_file(ino, &mut st)
    }

    /// `opendir` by the sender of a kernel request: a view's directory also needs read
    /// permission as it is now (`view_access`).
    pub fn opendir_as(&self, who: &Credentials, ino: Ino) -> Result<Fh> {
        self.view_access(who, ino, super::caller::R)?;
        self.opendir(ino)
    }

    pub fn opendir(&self, ino: Ino) -> Result<Fh> {
        if special::is_special(ino) {
            self.special_getattr(ino)?;
            return Ok(self.new_fh(Handle {
                ino,
                write: false,
                dir: true,
                generation: 0,
            }));
        }
        current_dir(&self.lock_core().conn, ino)?;
        Ok(self.new_fh(Handle {
            ino,
            write: false,
            dir: true,
            generation: 0,
        }))
    }

    pub fn releasedir(&self, _ino: Ino, fh: Fh) -> Result<()> {
        self.handles
            .lock()
            .unwrap()
            .remove(&fh.0)
            .ok_or(FsError::BadHandle)?;
        Ok(())
    }

    /// `readdir` by the sender of a kernel request: `/.chunkfs/snapshots` lists only the
    /// snapshots they may read.
    pub fn readdir_as(
        &self,
        who: &Credentials,
        ino: Ino,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        if ino != special::SNAPSHOTS_DIR {
            return self.readdir(ino, offset, limit); // no attributes asked for
        }
        Ok(self
            .readdirplus_as(who, ino, offset, limit)?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    pub fn readdirplus_as(
        &self,
        who: &Credentials,
        ino: Ino,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<(DirEntry, Attr)>> {
        if ino == special::SNAPSHOTS_DIR {
            return self.special_readdir(Some(&who.caller()), ino, offset, limit);
        }
        self.readdirplus(ino, offset, limit)
    }

    /// `lookup` by the sender of a kernel request: a snapshot they may not read is not there.
    pub fn lookup_as(&self, who: &Credentials, parent: Ino, name: &[u8]) -> Result<Attr> {
        if parent == special::SNAPSHOTS_DIR {
            return self.special_lookup(Some(&who.caller()), parent, name);
        }
        if matches!(
            special::classify(parent),
            Some(special::Node::AskDir | special::Node::Ask(_))
        ) {
            return self.ask_lookup(who.uid, parent, name);
        }
        self.lookup(parent, name)
    }

    /// Entries after `offset` (0 to start): ".", "..", then the entries in creation order.
    /// Offsets are entry ids, never reused, so a listing survives concurrent changes.
    pub fn readdir(&self, ino: Ino, offset: u64, limit: usize) -> Result<Vec<DirEntry>> {
        if special::is_special(ino) {
            return Ok(self
                .special_readdir(None, ino, offset, limit)?
                .into_iter()
                .map(|(e, _)| e)
                .collect());
        }
        Ok(self
            .readdir_inner(ino, offset, limit, false)?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    /// readdir with each entry's attributes.
    pub fn readdirplus(
        &self,
        ino: Ino,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<(DirEntry, Attr)>> {
        if special::is_special(ino) {
            return self.special_readdir(None, ino, offset, limit);
        }
        Ok(self
            .readdir_inner(ino, offset, limit, true)?
            .into_iter()
            .map(|(e, a)| (e, a.expect("attrs asked for")))
            .collect())
    }

    fn readdir_inner(
        &self,
        ino: Ino,
        offset: u64,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<(DirEntry, Option<Attr>)>> {
        let mut out = Vec::new();
        let revs = {
            let core = self.lock_core();
            let conn = &core.conn;
            let dir = current_dir(conn, ino)?;
            let mut revs = Vec::new();
            if offset == 0 {
                revs.push((
                    DirEntry {
                        ino,
                        kind: FileKind::Dir,
                        name: b".".to_vec(),
                        next_offset: 1,
                    },
                    Some(dir.clone()),
                ));
            }
            if offset <= 1 {
                let p = tree::parent(conn, ino, When::Now)?.unwrap_or(Ino::ROOT);
                let prev = if plus { Some(current(conn, p)?) } else { None };
                revs.push((
                    DirEntry {
                        ino: p,
                        kind: FileKind::Dir,
                        name: b"..".to_vec(),
                        next_offset: 2,
                    },
                    prev,
                ));
            }
            let want = limit.saturating_sub(revs.len());
            let after = offset.saturating_sub(2);
            // readdirplus of a directory with entries of its own: entries and attributes in one
            // query; a clone-side directory (or inode) resolves through `tree`.
            let listed: Vec<(namespace::Dirent, Option<Revision>)> = match plus {
                true => namespace::list_dir_plus(conn, ino, after, want)?,
                false => Vec::new(),
            };
            // Nothing of its own: a clone-side directory lists through `tree`; an ordinary one
            // is at its end (the last page of every listing), with nothing more to look up.
            let clone_side = || Ok::<_, FsError>(namespace::inode_exists(conn, ino)?.is_none());
            let listed = if listed.is_empty() && (!plus || clone_side()?) {
                tree::list(conn, ino, When::Now, after, want)?
                    .into_iter()
                    .map(|d| (d, None))
                    .collect()
            } else {
                listed
            };
            for (d, rev) in listed {
                let rev = match (plus, rev) {
                    (true, Some(r)) => Some(r),
                    (true, None) => Some(current(conn, d.ino)?),
                    (false, _) => None,
                };
                revs.push((
                    DirEntry {
                        ino: d.ino,
                        kind: d.kind,
                        name: d.name,
                        next_offset: d.id + 2,
                    },
                    rev,
                ));
            }
            revs
        };
        for (e, rev) in revs {
            let attr = if plus {
                rev.map(|r| self.attr_of(&r))
            } else {
                None
            };
            out.push((e, attr));
        }
        Ok(out)
    }

    /// O(1): the free map's running total and the counters the metadata keeps, read under
    /// one lock so both describe the same moment. Never scans (see `meta::counters`).
    pub fn statfs(&self) -> Result<StatFs> {
        let (space, inodes, _) = self.space()?;
        let bsize = 4096u64;
        let free = space.free();
        Ok(StatFs {
            blocks: self.sb.capacity / bsize,
            bfree: free / bsize,
            bavail: free / bsize,
            files: inodes + (1 << 32),
            ffree: 1 << 32,
            bsize: bsize as u32,
            namelen: NAME_MAX as u32,
            frsize: bsize as u32,
        })
    }

    /// Free space as statfs reports it, the inodes in use, and the last seq given out.
    fn space(&self) -> Result<(super::stats::Space, u64, u64)> {
        let (c, total, last, seq) = {
            let core = self.lock_core();
            let c = crate::meta::counters::get(&core.conn)?;
            (c, core.freemap.free_bytes(), core.freemap.last(), core.seq)
        };
        // The host's free space (a statvfs) is asked with no lock held.
        let unallocated =
            super::stats::unallocated_bytes(total, last, self.sb.capacity, &self.opts.device_path);
        Ok((
            super::stats::Space {
                unallocated,
                dead: c.dead_bytes,
            },
            c.inodes,
            seq,
        ))
    }

    /// Space figures: free space exactly as statfs reports it (taken with the commit point
    /// under the core lock), the rest from a walk that runs on a read-only connection over
    /// what was last committed (everything, after the commit here), so the filesystem keeps
    /// serving meanwhile.
    pub fn stats(&self) -> Result<Stats> {
        if let Err(e) = self.sync_all() {
            log::warn!("chunkfs: stats shows the last commit: committing now failed: {e}");
        }
        let open = self.open_inodes();
        let (space, _, seq) = self.space()?;
        let conn = self.read_connection()?;
        let mut s = crate::meta::in_transaction(&conn, false, || {
            super::stats::compute(&conn, self.sb.capacity, space, &open)
        })?;
        s.seq = seq;
        Ok(s)
    }

    /// A second, read-only connection to the metadata, for long reads beside the writer.
    pub(super) fn read_connection(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.opts.meta_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(conn)
    }

    /// Permission check as the kernel's `default_permissions` does it.
    pub fn access(&self, ino: Ino, mask: i32, uid: u32, gid: u32) -> Result<()> {
        if special::is_special(ino) {
            self.special_getattr(ino)?;
            if mask & libc::W_OK != 0 && ino != special::CTL_FILE {
                return Err(FsError::ReadOnly);
            }
            return Ok(());
        }
        let rev = current(&self.lock_core().conn, ino)?;
        if mask == libc::F_OK {
            return Ok(());
        }
        if mask & libc::W_OK != 0 {
            // Read-only by mount or because the store failed: writing would be refused.
            self.check_writable()?;
        }
        let mode = rev.mode;
        if uid == 0 {
            // root may do anything but execute a file no one may execute
            if mask & libc::X_OK != 0 && rev.kind != FileKind::Dir && mode & 0o111 == 0 {
                return Err(FsError::AccessDenied);
            }
            return Ok(());
        }
        let bits = if uid == rev.uid {
            (mode >> 6) & 7
        } else if gid == rev.gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        if (mask as u32) & 7 & !bits != 0 {
            return Err(FsError::AccessDenied);
        }
        Ok(())
    }

    /// Recount every refcount from scratch and compare with the stored ones. Returns the
    /// mismatches as human-readable lines (empty when consistent). Used by tests and fsck.
    pub fn check_refcounts(&self) -> Result<Vec<String>> {
        let core = self.lock_core();
        Ok(crate::meta::check::refcounts(&core.conn)?
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    /// Check free map against superchunk extents, and the counters statfs reads against a
    /// recount: returns problems found.
    pub fn check_space(&self) -> Result<Vec<String>> {
        use crate::meta::counters;
        let core = self.lock_core();
        let mut problems = crate::meta::check::space(&core.conn, &core.freemap, self.sb.capacity)?;
        let (kept, counted) = (counters::get(&core.conn)?, counters::recount(&core.conn)?);
        if kept != counted {
            problems.push(format!(
                "the space counters say {kept:?}, recounted they are {counted:?}"
            ));
        }
        Ok(problems)
    }
}
