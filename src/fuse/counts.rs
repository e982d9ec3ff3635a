//! A debug count of the requests the kernel sends, per type: `Counted` wraps any fuser
//! filesystem (chunkfs's adapter, the benchmark passthrough), adds one to a relaxed atomic per
//! request and hands the request on unchanged. Always on: one uncontended `fetch_add` per
//! request is noise next to the round trip it counts. Read while mounted through the conduit
//! (`chunkfs stats --requests`), or at unmount with `CHUNKFS_REQUEST_COUNTS=1`
//! (docs/FUSE-TUNING.md, "Requests per file").
//!
//! Not counted, because fuser answers them itself without calling the filesystem: INTERRUPT
//! and the INIT handshake's own bytes (`init` is counted once). BATCH_FORGET is counted per
//! inode it forgets, as `forget` (fuser does not export the type a wrapper would need to see
//! the batch).

use fuser::{
    AccessFlags, CopyFileRangeFlags, FileHandle, Filesystem, INodeNo, IoctlFlags, KernelConfig,
    LockOwner, OpenFlags, PollEvents, PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyBmap,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Request types, in the order they are reported.
const OPS: [&str; 41] = [
    "init",
    "destroy",
    "lookup",
    "forget",
    "getattr",
    "setattr",
    "readlink",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "flush",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "readdirplus",
    "releasedir",
    "fsyncdir",
    "statfs",
    "setxattr",
    "getxattr",
    "listxattr",
    "removexattr",
    "access",
    "create",
    "getlk",
    "setlk",
    "bmap",
    "ioctl",
    "poll",
    "fallocate",
    "lseek",
    "copy_file_range",
    // Writes whose request asks the filesystem to drop suid/sgid (FUSE_WRITE_KILL_SUIDGID):
    // counted besides "write", to show what handle_killpriv_v2 moved onto the daemon.
    "write:kill_suidgid",
];

/// The xattr name classes counted apart for get/set/removexattr: the kernel's own probes
/// (`security.capability` before writes and chowns, ACLs) are what a copy sends most.
const XATTR_CLASSES: [&str; 9] = [
    "security.capability",
    "security.selinux",
    "security.*",
    "system.posix_acl_access",
    "system.posix_acl_default",
    "system.*",
    "user.*",
    "trusted.*",
    "other",
];

const XATTR_OPS: [&str; 3] = ["getxattr", "setxattr", "removexattr"];

const SLOTS: usize = OPS.len() + XATTR_OPS.len() * XATTR_CLASSES.len();

fn op(name: &str) -> usize {
    OPS.iter()
        .position(|o| *o == name)
        .expect("a request type listed in OPS")
}

fn xattr_class(name: &[u8]) -> usize {
    let exact = |s: &str| name == s.as_bytes();
    let prefix = |s: &str| name.starts_with(s.as_bytes());
    if exact("security.capability") {
        0
    } else if exact("security.selinux") {
        1
    } else if prefix("security.") {
        2
    } else if exact("system.posix_acl_access") {
        3
    } else if exact("system.posix_acl_default") {
        4
    } else if prefix("system.") {
        5
    } else if prefix("user.") {
        6
    } else if prefix("trusted.") {
        7
    } else {
        8
    }
}

/// One counter on a cache line of its own, so worker threads counting different request
/// types do not contend.
#[derive(Default)]
#[repr(align(64))]
struct Slot(AtomicU64);

/// Requests received so far, per type. Shared between the session and whoever reads them.
pub struct RequestCounts {
    slots: Box<[Slot]>,
}

impl Default for RequestCounts {
    fn default() -> RequestCounts {
        RequestCounts {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

impl RequestCounts {
    fn add(&self, i: usize) {
        self.slots[i].0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, name: &str) {
        self.add(op(name));
    }

    fn count_xattr(&self, xop: usize, name: &OsStr) {
        self.add(OPS.len() + xop * XATTR_CLASSES.len() + xattr_class(name.as_bytes()));
    }

    /// Every type with a non-zero count, as `(name, count)` in a fixed order; the xattr
    /// classes as `getxattr:security.capability` and so on (the plain `getxattr` counts them
    /// all).
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let get = |i: usize| self.slots[i].0.load(Ordering::Relaxed);
        let mut out = Vec::new();
        for (i, name) in OPS.iter().enumerate() {
            out.push((name.to_string(), get(i)));
        }
        for (x, xop) in XATTR_OPS.iter().enumerate() {
            for (c, class) in XATTR_CLASSES.iter().enumerate() {
                let n = get(OPS.len() + x * XATTR_CLASSES.len() + c);
                out.push((format!("{xop}:{class}"), n));
            }
        }
        out.retain(|(_, n)| *n > 0);
        out
    }

    /// The counts as one line of `name=count` pairs, for a log.
    pub fn summary(&self) -> String {
        let pairs: Vec<String> = self
            .snapshot()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join(" ")
    }
}

/// Whether `CHUNKFS_REQUEST_COUNTS` asks for the counts at unmount.
pub fn report_at_unmount() -> bool {
    std::env::var("CHUNKFS_REQUEST_COUNTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A filesystem whose requests are counted.
pub struct Counted<F> {
    inner: F,
    counts: Arc<RequestCounts>,
}

impl<F: Filesystem> Counted<F> {
    pub fn new(inner: F) -> Counted<F> {
        Counted {
            inner,
            counts: Arc::default(),
        }
    }

    /// The counts, to read while the session runs.
    pub fn counts(&self) -> Arc<RequestCounts> {
        self.counts.clone()
    }
}

impl<F: Filesystem> Filesystem for Counted<F> {
    fn init(&mut self, req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        self.counts.count("init");
        self.inner.init(req, config)
    }

    fn destroy(&mut self) {
        self.counts.count("destroy");
        self.inner.destroy()
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.counts.count("lookup");
        self.inner.lookup(req, parent, name, reply)
    }

    fn forget(&self, req: &Request, ino: INodeNo, nlookup: u64) {
        self.counts.count("forget");
        self.inner.forget(req, ino, nlookup)
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.counts.count("getattr");
        self.inner.getattr(req, ino, fh, reply)
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        crtime: Option<SystemTime>,
        chgtime: Option<SystemTime>,
        bkuptime: Option<SystemTime>,
        flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.counts.count("setattr");
        self.inner.setattr(
            req, ino, mode, uid, gid, size, atime, mtime, ctime, fh, crtime, chgtime, bkuptime,
            flags, reply,
        )
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        self.counts.count("readlink");
        self.inner.readlink(req, ino, reply)
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.counts.count("mknod");
        self.inner
            .mknod(req, parent, name, mode, umask, rdev, reply)
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.counts.count("mkdir");
        self.inner.mkdir(req, parent, name, mode, umask, reply)
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.counts.count("unlink");
        self.inner.unlink(req, parent, name, reply)
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.counts.count("rmdir");
        self.inner.rmdir(req, parent, name, reply)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.counts.count("symlink");
        self.inner.symlink(req, parent, link_name, target, reply)
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.counts.count("rename");
        self.inner
            .rename(req, parent, name, newparent, newname, flags, reply)
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.counts.count("link");
        self.inner.link(req, ino, newparent, newname, reply)
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.counts.count("open");
        self.inner.open(req, ino, flags, reply)
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.counts.count("read");
        self.inner
            .read(req, ino, fh, offset, size, flags, lock_owner, reply)
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.counts.count("write");
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            self.counts.count("write:kill_suidgid");
        }
        self.inner.write(
            req,
            ino,
            fh,
            offset,
            data,
            write_flags,
            flags,
            lock_owner,
            reply,
        )
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.counts.count("flush");
        self.inner.flush(req, ino, fh, lock_owner, reply)
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        flush: bool,
        reply: ReplyEmpty,
    ) {
        self.counts.count("release");
        self.inner
            .release(req, ino, fh, flags, lock_owner, flush, reply)
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.counts.count("fsync");
        self.inner.fsync(req, ino, fh, datasync, reply)
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.counts.count("opendir");
        self.inner.opendir(req, ino, flags, reply)
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        self.counts.count("readdir");
        self.inner.readdir(req, ino, fh, offset, reply)
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        self.counts.count("readdirplus");
        self.inner.readdirplus(req, ino, fh, offset, reply)
    }

    fn releasedir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.counts.count("releasedir");
        self.inner.releasedir(req, ino, fh, flags, reply)
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.counts.count("fsyncdir");
        self.inner.fsyncdir(req, ino, fh, datasync, reply)
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.counts.count("statfs");
        self.inner.statfs(req, ino, reply)
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        self.counts.count("setxattr");
        self.counts.count_xattr(1, name);
        self.inner
            .setxattr(req, ino, name, value, flags, position, reply)
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.counts.count("getxattr");
        self.counts.count_xattr(0, name);
        self.inner.getxattr(req, ino, name, size, reply)
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.counts.count("listxattr");
        self.inner.listxattr(req, ino, size, reply)
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.counts.count("removexattr");
        self.counts.count_xattr(2, name);
        self.inner.removexattr(req, ino, name, reply)
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.counts.count("access");
        self.inner.access(req, ino, mask, reply)
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.counts.count("create");
        self.inner
            .create(req, parent, name, mode, umask, flags, reply)
    }

    fn getlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        self.counts.count("getlk");
        self.inner
            .getlk(req, ino, fh, lock_owner, start, end, typ, pid, reply)
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        self.counts.count("setlk");
        self.inner
            .setlk(req, ino, fh, lock_owner, start, end, typ, pid, sleep, reply)
    }

    fn bmap(&self, req: &Request, ino: INodeNo, blocksize: u32, idx: u64, reply: ReplyBmap) {
        self.counts.count("bmap");
        self.inner.bmap(req, ino, blocksize, idx, reply)
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.counts.count("ioctl");
        self.inner
            .ioctl(req, ino, fh, flags, cmd, in_data, out_size, reply)
    }

    fn poll(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        self.counts.count("poll");
        self.inner.poll(req, ino, fh, ph, events, flags, reply)
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.counts.count("fallocate");
        self.inner
            .fallocate(req, ino, fh, offset, length, mode, reply)
    }

    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        self.counts.count("lseek");
        self.inner.lseek(req, ino, fh, offset, whence, reply)
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.counts.count("copy_file_range");
        self.inner.copy_file_range(
            req, ino_in, fh_in, offset_in, ino_out, fh_out, offset_out, len, flags, reply,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_names_fall_in_their_class() {
        let class = |n: &str| XATTR_CLASSES[xattr_class(n.as_bytes())];
        assert_eq!(class("security.capability"), "security.capability");
        assert_eq!(class("security.ima"), "security.*");
        assert_eq!(class("system.posix_acl_access"), "system.posix_acl_access");
        assert_eq!(class("system.nfs4_acl"), "system.*");
        assert_eq!(class("user.mime_type"), "user.*");
        assert_eq!(class("trusted.overlay.opaque"), "trusted.*");
        assert_eq!(class("securityx"), "other");
    }

    #[test]
    fn counts_are_reported_by_type_and_xattr_class_and_zeros_are_left_out() {
        let c = RequestCounts::default();
        c.count("lookup");
        c.count("lookup");
        c.count("getxattr");
        c.count_xattr(0, OsStr::new("security.capability"));
        let snap = c.snapshot();
        assert_eq!(
            snap,
            vec![
                ("lookup".to_string(), 2),
                ("getxattr".to_string(), 1),
                ("getxattr:security.capability".to_string(), 1),
            ]
        );
        assert_eq!(
            c.summary(),
            "lookup=2 getxattr=1 getxattr:security.capability=1"
        );
    }
}
