//! The FUSE adapter: each fuser callback is one call into the core (`fs::Fs`) and one reply.
//! Nothing here decides filesystem behaviour; conversions live in `fuse/convert.rs` and the
//! kernel connection settings in `fuse/kernel.rs`.

mod convert;
mod counts;
mod kernel;

use crate::fs::{Credentials, Freshness, Fs, FsError, Ino, SetAttr, VIEW_TTL, freshness};
use convert::{fh, file_attr, file_type, ino, name, time_set, xattr_reply};
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation,
    INodeNo, KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use counts::{Counted, RequestCounts, report_at_unmount as report_request_counts_at_unmount};
pub use kernel::{PREFERRED_IO, mount_config, raise_readahead};

/// How long the kernel may cache attributes and entries. chunkfs is the only writer of its
/// store (the store lock guarantees it), so nothing changes behind the kernel's back.
const TTL: Duration = Duration::from_secs(3600);

/// Inode numbers are never reused, so the generation of the store's own inodes is always 0
/// (views of the past have the mount's own: `Fs::generation`).
const GENERATION: Generation = Generation(0);

/// Entries asked of the core per readdir call; the kernel's buffer usually fills first.
const READDIR_BATCH: usize = 256;

/// A chunkfs filesystem served over FUSE.
pub struct ChunkFuse {
    fs: Arc<Fs>,
}

impl ChunkFuse {
    pub fn new(fs: Arc<Fs>) -> ChunkFuse {
        ChunkFuse { fs }
    }
}

/// Tell the kernel to drop what it cached of inodes and names that changed behind its back
/// (a revert, a clone, a snapshot gone). The notifications go out from a thread of their own
/// (a notification written from inside the request handler that caused it may make the kernel
/// wait on itself), and the operation waits until they are out, so its caller sees the new
/// state as soon as it has its answer.
pub fn forward_invalidations(fs: &Fs, notifier: fuser::Notifier) -> std::io::Result<()> {
    type Batch = (Vec<crate::fs::Inval>, std::sync::mpsc::Sender<()>);
    let (tx, rx) = std::sync::mpsc::channel::<Batch>();
    std::thread::Builder::new()
        .name("chunkfs-inval".into())
        .spawn(move || {
            for (batch, done) in rx {
                for what in batch {
                    let r = match &what {
                        crate::fs::Inval::Inode(i) => notifier.inval_inode(INodeNo(i.0), 0, 0),
                        // A negative offset: the attributes alone.
                        crate::fs::Inval::Attr(i) => notifier.inval_inode(INodeNo(i.0), -1, 0),
                        crate::fs::Inval::Entry(p, name) => {
                            notifier.inval_entry(INodeNo(p.0), OsStr::from_bytes(name))
                        }
                    };
                    // ENOENT: the kernel has nothing cached to drop.
                    if let Err(e) = r
                        && e.raw_os_error() != Some(libc::ENOENT)
                    {
                        log::warn!("cannot tell the kernel to forget {what:?}: {e}");
                    }
                }
                let _ = done.send(());
            }
        })?;
    let tx = std::sync::Mutex::new(tx);
    fs.set_invalidator(Box::new(move |what| {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if tx.lock().unwrap().send((what.to_vec(), done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }));
    Ok(())
}

/// The sender of a request, for what the core decides by caller (the conduit, the list of
/// snapshots).
fn creds(req: &Request) -> Credentials {
    Credentials {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

/// Whether the sender of a truncate, O_TRUNC open or fallocate may lack CAP_FSETID, so that
/// the change drops suid/sgid (`Fs::drop_privileges`). With FUSE_HANDLE_KILLPRIV_V2 the kernel
/// leaves that to the filesystem and says when, per request: on writes through
/// `FUSE_WRITE_KILL_SUIDGID`, which fuser passes on; on truncate and open through
/// `FATTR_KILL_SUIDGID` and `FUSE_OPEN_KILL_SUIDGID`, which fuser 0.18 drops. There root
/// stands for the capability (docs/SEMANTICS.md). fallocate the kernel does not flag at all
/// (it would clear the bits itself without the flag), so it is judged the same way.
fn may_lack_fsetid(req: &Request) -> bool {
    req.uid() != 0
}

/// How long the kernel may cache an entry or attributes (`fs::freshness`).
fn ttl(parent: Option<Ino>, i: Ino) -> Duration {
    match freshness(parent, i) {
        Freshness::Long => TTL,
        Freshness::Short => VIEW_TTL,
        Freshness::None => Duration::ZERO,
    }
}

fn errno(e: &FsError) -> Errno {
    if e.errno() == libc::EIO {
        log::error!("I/O error: {e}");
    }
    Errno::from_i32(e.errno())
}

impl Filesystem for ChunkFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        kernel::configure(config);
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.fs.sync_all() {
            log::error!("final commit at unmount failed: {e}");
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, nm: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup_as(&creds(req), ino(parent), name(nm)) {
            Ok(a) => {
                let generation = Generation(self.fs.generation(a.ino));
                reply.entry(&ttl(Some(ino(parent)), a.ino), &file_attr(&a), generation)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino(i)) {
            Ok(a) => reply.attr(&ttl(None, a.ino), &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        i: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            ctime,
        };
        if size.is_some()
            && may_lack_fsetid(req)
            && let Err(e) = self.fs.drop_privileges(ino(i))
        {
            return reply.error(errno(&e));
        }
        match self.fs.setattr(ino(i), &set) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, i: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino(i)) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        nm: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let mode = mode & !umask;
        match self
            .fs
            .mknod(ino(parent), name(nm), mode, rdev, req.uid(), req.gid())
        {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        nm: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mode = mode & !umask;
        match self
            .fs
            .mkdir(ino(parent), name(nm), mode, req.uid(), req.gid())
        {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, nm: &OsStr, reply: ReplyEmpty) {
        match self.fs.unlink(ino(parent), name(nm)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, nm: &OsStr, reply: ReplyEmpty) {
        match self.fs.rmdir(ino(parent), name(nm)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = name(target.as_os_str());
        match self
            .fs
            .symlink(ino(parent), name(link_name), target, req.uid(), req.gid())
        {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        nm: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let Some(flags) = convert::rename_flags(flags) else {
            return reply.error(Errno::EINVAL);
        };
        match self
            .fs
            .rename(ino(parent), name(nm), ino(newparent), name(newname), flags)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        i: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.fs.link(ino(i), ino(newparent), name(newname)) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GENERATION),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let o = match self.fs.open_as(&creds(req), ino(i), flags.0) {
            Ok(o) => o,
            Err(e) => return reply.error(errno(&e)),
        };
        // O_TRUNC truncates in the open itself (FUSE_ATOMIC_O_TRUNC).
        let acc = flags.0 & libc::O_ACCMODE;
        let truncates = flags.0 & libc::O_TRUNC != 0 && acc != libc::O_RDONLY;
        if truncates
            && may_lack_fsetid(req)
            && let Err(e) = self.fs.drop_privileges(ino(i))
        {
            let _ = self.fs.release(ino(i), o.fh);
            return reply.error(errno(&e));
        }
        reply.opened(FileHandle(o.fh.0), convert::fopen_flags(&o))
    }

    fn read(
        &self,
        req: &Request,
        i: INodeNo,
        h: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read_as(&creds(req), ino(i), fh(h), offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        i: INodeNo,
        h: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            && let Err(e) = self.fs.drop_privileges(ino(i))
        {
            return reply.error(errno(&e));
        }
        match self.fs.write_as(&creds(req), ino(i), fh(h), offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(&self, _req: &Request, i: INodeNo, h: FileHandle, _lo: LockOwner, reply: ReplyEmpty) {
        match self.fs.flush(ino(i), fh(h)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        i: INodeNo,
        h: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.fs.release(ino(i), fh(h)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsync(&self, _req: &Request, i: INodeNo, h: FileHandle, datasync: bool, reply: ReplyEmpty) {
        match self.fs.fsync(ino(i), fh(h), datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, req: &Request, i: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.opendir_as(&creds(req), ino(i)) {
            Ok(h) => reply.opened(FileHandle(h.0), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self
            .fs
            .readdir_as(&creds(req), ino(i), offset, READDIR_BATCH)
        {
            Ok(entries) => {
                for e in entries {
                    let nm = OsStr::from_bytes(&e.name);
                    if reply.add(INodeNo(e.ino.0), e.next_offset, file_type(e.kind), nm) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        match self
            .fs
            .readdirplus_as(&creds(req), ino(i), offset, READDIR_BATCH)
        {
            Ok(entries) => {
                for (e, a) in entries {
                    let (nm, attr) = (OsStr::from_bytes(&e.name), file_attr(&a));
                    let ttl = ttl(Some(ino(i)), a.ino);
                    let ino = INodeNo(e.ino.0);
                    let generation = Generation(self.fs.generation(a.ino));
                    if reply.add(ino, e.next_offset, nm, &ttl, &attr, generation) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        i: INodeNo,
        h: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        match self.fs.releasedir(ino(i), fh(h)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Directory changes are metadata operations: committing the open group makes them durable.
    fn fsyncdir(&self, _req: &Request, _i: INodeNo, _h: FileHandle, _ds: bool, reply: ReplyEmpty) {
        match self.fs.sync_all() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _i: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        i: INodeNo,
        nm: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        if position != 0 {
            return reply.error(Errno::EINVAL); // resource forks are a macOS thing
        }
        match self.fs.setxattr(ino(i), name(nm), value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getxattr(&self, _req: &Request, i: INodeNo, nm: &OsStr, size: u32, reply: ReplyXattr) {
        match self.fs.getxattr(ino(i), name(nm)) {
            Ok(value) => xattr_reply(reply, size, &value),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.listxattr(ino(i)) {
            Ok(names) => xattr_reply(reply, size, &convert::nul_separated(&names)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, _req: &Request, i: INodeNo, nm: &OsStr, reply: ReplyEmpty) {
        match self.fs.removexattr(ino(i), name(nm)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Only reached without `default_permissions`; chunkfs always mounts with it, but answer
    /// correctly anyway.
    fn access(&self, req: &Request, i: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.fs.access(ino(i), mask.bits(), req.uid(), req.gid()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        nm: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (mode, p) = (mode & !umask, ino(parent));
        match self
            .fs
            .create(p, name(nm), mode, flags, req.uid(), req.gid())
        {
            Ok((a, o)) => {
                let flags = convert::fopen_flags(&o);
                reply.created(&TTL, &file_attr(&a), GENERATION, FileHandle(o.fh.0), flags)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// chunkfs has no ioctls of its own (its special operations go through the conduit,
    /// docs/CONTROL.md), and keeps no inode flags: FS_IOC_GETFLAGS (lsattr, chattr),
    /// FS_IOC_FSGETXATTR (qemu-img, xfs_io) and the rest get ENOTTY, "no such ioctl here", as
    /// from any filesystem without them, instead of fuser's ENOSYS and a log line each.
    fn ioctl(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn fallocate(
        &self,
        req: &Request,
        i: INodeNo,
        h: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if may_lack_fsetid(req)
            && let Err(e) = self.fs.drop_privileges(ino(i))
        {
            return reply.error(errno(&e));
        }
        match self.fs.fallocate(ino(i), fh(h), offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// A copy inside the mount shares the source's chunks (`fs::copy`); the kernel has already
    /// checked the handles' modes, the file types and that the ranges of one file do not
    /// overlap, and drops the destination's cached pages of the range after the answer.
    fn copy_file_range(
        &self,
        req: &Request,
        i_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        i_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        if may_lack_fsetid(req)
            && let Err(e) = self.fs.drop_privileges(ino(i_out))
        {
            return reply.error(errno(&e));
        }
        match self.fs.copy_range(
            ino(i_in),
            fh(fh_in),
            offset_in,
            ino(i_out),
            fh(fh_out),
            offset_out,
            len,
        ) {
            // At most `fs::MAX_COPY`, which fits.
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// The kernel sends only `SEEK_DATA` and `SEEK_HOLE`; it moves the file offset itself.
    fn lseek(
        &self,
        _req: &Request,
        i: INodeNo,
        h: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        match self.fs.lseek(ino(i), fh(h), offset, whence) {
            Ok(at) => reply.offset(at as i64),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

// FUSE's root nodeid is 1, as is the core's root inode: inode numbers pass through unchanged.
const _: () = assert!(Ino::ROOT.0 == INodeNo::ROOT.0);
