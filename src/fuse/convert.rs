//! Value conversions between the core's types and fuser's.

use crate::fs::{Attr, Fh, FileKind, Ino, Opened, RenameFlags, TimeSet};
use fuser::{FileAttr, FileHandle, FileType, FopenFlags, INodeNo, ReplyXattr, TimeOrNow};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub fn ino(i: INodeNo) -> Ino {
    Ino(i.0)
}

pub fn fh(h: FileHandle) -> Fh {
    Fh(h.0)
}

pub fn name(n: &OsStr) -> &[u8] {
    n.as_bytes()
}

pub fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

pub fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.crtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: match a.kind {
            FileKind::File => a.blksize.max(super::kernel::PREFERRED_IO),
            _ => a.blksize,
        },
        flags: 0,
    }
}

pub fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(t),
    }
}

/// `None` for flags the core does not implement (RENAME_WHITEOUT, unknown bits).
pub fn rename_flags(flags: fuser::RenameFlags) -> Option<RenameFlags> {
    let known = fuser::RenameFlags::RENAME_NOREPLACE | fuser::RenameFlags::RENAME_EXCHANGE;
    if !known.contains(flags) {
        return None;
    }
    Some(RenameFlags {
        noreplace: flags.contains(fuser::RenameFlags::RENAME_NOREPLACE),
        exchange: flags.contains(fuser::RenameFlags::RENAME_EXCHANGE),
    })
}

pub fn fopen_flags(o: &Opened) -> FopenFlags {
    let mut f = FopenFlags::empty();
    if o.keep_cache {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.direct_io {
        f |= FopenFlags::FOPEN_DIRECT_IO;
    }
    f
}

/// The xattr protocol: a zero `size` asks how big the value is; a value larger than a
/// non-zero `size` is ERANGE.
pub fn xattr_reply(reply: ReplyXattr, size: u32, value: &[u8]) {
    match u32::try_from(value.len()) {
        Ok(len) if size == 0 => reply.size(len),
        Ok(len) if len <= size => reply.data(value),
        _ => reply.error(fuser::Errno::ERANGE),
    }
}

/// listxattr's wire format: every name followed by a NUL.
pub fn nul_separated(names: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(names.iter().map(|n| n.len() + 1).sum());
    for n in names {
        out.extend_from_slice(n);
        out.push(0);
    }
    out
}
