//! `chunkfs-passthrough SRC_DIR MOUNTPOINT`: a minimal passthrough FUSE filesystem that serves
//! a host directory, for the whole-mount benchmarks (`bench/run`). It exists to measure what
//! FUSE alone costs, so it asks the kernel for the same settings as chunkfs
//! (`src/fuse/kernel.rs`, `src/fuse.rs`): 1 h TTLs, keep_cache, no writeback cache, 1 MiB
//! max_write and st_blksize of files, 4 MiB readahead, readdirplus, one worker per CPU (2..8),
//! cloned fds. It does not take FUSE_HANDLE_KILLPRIV_V2 (the host clears nothing for a daemon
//! running as root), so it gets the kernel's capability probe before every write.
//!
//! A baseline, not a product: inodes are the host's inode numbers (the source root is 1) mapped
//! to one current path each; the daemon acts with its own credentials (run it as root, as the
//! harness does, so `cp -a` can chown); `forget` is ignored, so the map only grows.
//! Foreground only; SIGTERM or SIGINT unmounts. Requests are counted as chunkfs counts them
//! (`chunkfs::fuse::Counted`): SIGUSR1 prints the counts so far to stderr, and
//! `CHUNKFS_REQUEST_COUNTS=1` prints them at unmount.
//!
//! The environment switches of docs/FUSE-TUNING.md apply here too: CHUNKFS_TTL_SECS,
//! CHUNKFS_NO_KEEP_CACHE, CHUNKFS_WRITEBACK (on, where chunkfs leaves it off), CHUNKFS_MAX_WRITE.

use anyhow::{Context, Result, bail};
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, Session, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_WRITE: u32 = 1 << 20;
const MAX_READAHEAD: u32 = 4 << 20;
const MAX_BACKGROUND: u16 = 64;
const GEN: Generation = Generation(0);

/// The kernel settings, chunkfs's defaults unless an environment switch says otherwise.
#[derive(Clone, Copy)]
struct Tuning {
    ttl: Duration,
    keep_cache: bool,
    writeback: bool,
    max_write: u32,
}

impl Tuning {
    fn from_env() -> Tuning {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty() && v != "0");
        let num = |k: &str| var(k).and_then(|v| v.parse::<u64>().ok());
        Tuning {
            ttl: Duration::from_secs(num("CHUNKFS_TTL_SECS").unwrap_or(3600)),
            keep_cache: var("CHUNKFS_NO_KEEP_CACHE").is_none(),
            writeback: var("CHUNKFS_WRITEBACK").is_some(),
            max_write: num("CHUNKFS_MAX_WRITE").map_or(MAX_WRITE, |n| n as u32),
        }
    }
}

/// A directory as taken at opendir: (inode, or 0 for "." and ".."; kind; name).
type Listing = Vec<(u64, FileType, OsString)>;

struct Passthrough {
    root: PathBuf,
    root_ino: u64,
    tuning: Tuning,
    /// FUSE inode → one current host path of it.
    paths: Mutex<HashMap<u64, PathBuf>>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    /// Directory handles: the listing taken at opendir, served by offset.
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
    next_fh: AtomicU64,
}

fn io_err(e: std::io::Error) -> Errno {
    let n = e.raw_os_error().unwrap_or(libc::EIO);
    Errno::from_i32(n)
}

fn last_err() -> Errno {
    io_err(std::io::Error::last_os_error())
}

fn cstr(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// 0 from a libc call is success; anything else is errno.
fn check(rc: libc::c_int) -> Result<(), Errno> {
    if rc < 0 { Err(last_err()) } else { Ok(()) }
}

fn kind(m: &Metadata) -> FileType {
    let ft = m.file_type();
    FileType::from_std(ft).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsecs as u64)
    }
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let (s, n) = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i64),
                Err(e) => {
                    let d = e.duration();
                    let (s, n) = (-(d.as_secs() as i64), d.subsec_nanos() as i64);
                    if n == 0 {
                        (s, 0)
                    } else {
                        (s - 1, 1_000_000_000 - n)
                    }
                }
            };
            libc::timespec {
                tv_sec: s,
                tv_nsec: n,
            }
        }
    }
}

impl Passthrough {
    fn new(root: PathBuf) -> Result<Passthrough> {
        let meta = std::fs::metadata(&root)
            .with_context(|| format!("cannot stat source directory {}", root.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        let mut paths = HashMap::new();
        paths.insert(1, root.clone());
        Ok(Passthrough {
            root,
            root_ino: meta.ino(),
            tuning: Tuning::from_env(),
            paths: Mutex::new(paths),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        })
    }

    /// The host's inode number, except that the source root is FUSE's root (1). Host inode 1
    /// is never a visible file on ext4 or btrfs.
    fn fuse_ino(&self, host: u64) -> u64 {
        if host == self.root_ino { 1 } else { host }
    }

    fn attr(&self, m: &Metadata) -> FileAttr {
        FileAttr {
            ino: INodeNo(self.fuse_ino(m.ino())),
            size: m.size(),
            blocks: m.blocks(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind(m),
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            // As chunkfs reports it (src/fuse/kernel.rs), so cp writes in the same requests.
            blksize: if m.is_file() {
                (m.blksize() as u32).max(chunkfs::fuse::PREFERRED_IO)
            } else {
                m.blksize() as u32
            },
            flags: 0,
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths
            .lock()
            .unwrap()
            .get(&ino.0)
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// lstat `path` and remember it as the current path of its inode.
    fn remember(&self, path: PathBuf) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(&path).map_err(io_err)?;
        let a = self.attr(&m);
        self.paths.lock().unwrap().insert(a.ino.0, path);
        Ok(a)
    }

    fn entry(&self, path: Result<PathBuf, Errno>, reply: ReplyEntry) {
        match path.and_then(|p| self.remember(p)) {
            Ok(a) => reply.entry(&self.tuning.ttl, &a, GEN),
            Err(e) => reply.error(e),
        }
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.files
            .lock()
            .unwrap()
            .get(&fh.0)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// Open flags as the host should see them. With the writeback cache the kernel reads
    /// pages of write-only files and does O_APPEND itself (as libfuse's passthrough_ll does).
    fn host_flags(&self, flags: i32) -> i32 {
        let mut f = flags & !libc::O_NOFOLLOW;
        if self.tuning.writeback {
            if f & libc::O_ACCMODE == libc::O_WRONLY {
                f = (f & !libc::O_ACCMODE) | libc::O_RDWR;
            }
            f &= !libc::O_APPEND;
        }
        f | libc::O_CLOEXEC
    }

    fn open_fd(&self, path: &Path, flags: i32, mode: u32) -> Result<u64, Errno> {
        let c = cstr(path)?;
        // SAFETY: c is NUL-terminated; the fd returned is owned by the File below.
        let fd = unsafe { libc::open(c.as_ptr(), self.host_flags(flags), mode) };
        if fd < 0 {
            return Err(last_err());
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let fh = self.new_fh();
        self.files.lock().unwrap().insert(fh, Arc::new(file));
        Ok(fh)
    }

    fn open_flags(&self) -> FopenFlags {
        if self.tuning.keep_cache {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        }
    }

    /// After a rename, every remembered path at or under `from` moves to `to`.
    fn moved(&self, from: &Path, to: &Path) {
        let mut paths = self.paths.lock().unwrap();
        for p in paths.values_mut() {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    fn listing(&self, path: &Path) -> Result<Listing, Errno> {
        let mut out = vec![
            (0, FileType::Directory, ".".into()),
            (0, FileType::Directory, "..".into()),
        ];
        for e in std::fs::read_dir(path).map_err(io_err)? {
            let e = e.map_err(io_err)?;
            let ft = e.file_type().map_err(io_err)?;
            let kind = FileType::from_std(ft).unwrap_or(FileType::RegularFile);
            out.push((self.fuse_ino(e.ino()), kind, e.file_name()));
        }
        Ok(out)
    }
}

fn reply_empty(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn xattr_reply(r: Result<Vec<u8>, Errno>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() <= size as usize => reply.data(&v),
        Ok(_) => reply.error(Errno::ERANGE),
        Err(e) => reply.error(e),
    }
}

/// Call an l*xattr function that fills a buffer, twice: once for the size, once for the data.
fn xattr_get(f: impl Fn(*mut libc::c_void, usize) -> isize) -> Result<Vec<u8>, Errno> {
    let n = f(std::ptr::null_mut(), 0);
    if n < 0 {
        return Err(last_err());
    }
    let mut buf = vec![0u8; n as usize];
    let n = f(buf.as_mut_ptr().cast(), buf.len());
    if n < 0 {
        return Err(last_err());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

impl Filesystem for Passthrough {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_write(self.tuning.max_write) {
            let _ = config.set_max_write(max);
        }
        if let Err(max) = config.set_max_readahead(MAX_READAHEAD) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
        let mut wanted = vec![
            InitFlags::FUSE_ASYNC_READ,
            InitFlags::FUSE_BIG_WRITES,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_CACHE_SYMLINKS,
        ];
        if self.tuning.writeback {
            wanted.push(InitFlags::FUSE_WRITEBACK_CACHE);
        }
        for flag in wanted {
            let _ = config.add_capabilities(flag);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(self.child(parent, name), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = match fh.map(|h| self.file(h)) {
            Some(Ok(f)) => f.metadata().map_err(io_err),
            _ => self
                .path(ino)
                .and_then(|p| std::fs::symlink_metadata(p).map_err(io_err)),
        };
        match m {
            Ok(m) => reply.attr(&self.tuning.ttl, &self.attr(&m)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = (|| {
            let path = self.path(ino)?;
            let c = cstr(&path)?;
            // SAFETY (all calls below): c is a valid NUL-terminated path, fds are open.
            if let Some(mode) = mode {
                check(unsafe { libc::chmod(c.as_ptr(), mode & 0o7777) })?;
            }
            if uid.is_some() || gid.is_some() {
                let (u, g) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
                check(unsafe { libc::lchown(c.as_ptr(), u, g) })?;
            }
            if let Some(size) = size {
                match fh.map(|h| self.file(h)) {
                    Some(Ok(f)) => f.set_len(size).map_err(io_err)?,
                    _ => check(unsafe { libc::truncate(c.as_ptr(), size as i64) })?,
                }
            }
            if atime.is_some() || mtime.is_some() {
                let ts = [timespec(atime), timespec(mtime)];
                let flags = libc::AT_SYMLINK_NOFOLLOW;
                check(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), flags) })?;
            }
            self.remember(path)
        })();
        match r {
            Ok(a) => reply.attr(&self.tuning.ttl, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .path(ino)
            .and_then(|p| std::fs::read_link(p).map_err(io_err))
        {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = self.child(parent, name).and_then(|p| {
            let c = cstr(&p)?;
            // SAFETY: c is a valid NUL-terminated path.
            check(unsafe { libc::mknod(c.as_ptr(), mode & !umask, rdev as libc::dev_t) })?;
            Ok(p)
        });
        self.entry(r, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.child(parent, name).and_then(|p| {
            let c = cstr(&p)?;
            // SAFETY: c is a valid NUL-terminated path.
            check(unsafe { libc::mkdir(c.as_ptr(), mode & !umask) })?;
            Ok(p)
        });
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .child(parent, name)
            .and_then(|p| std::fs::remove_file(p).map_err(io_err));
        reply_empty(r, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .child(parent, name)
            .and_then(|p| std::fs::remove_dir(p).map_err(io_err));
        reply_empty(r, reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self.child(parent, link_name).and_then(|p| {
            std::os::unix::fs::symlink(target, &p).map_err(io_err)?;
            Ok(p)
        });
        self.entry(r, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            let (from, to) = (self.child(parent, name)?, self.child(newparent, newname)?);
            let (cf, ct) = (cstr(&from)?, cstr(&to)?);
            let (at, bits) = (libc::AT_FDCWD, flags.bits());
            // SAFETY: both are valid NUL-terminated paths.
            check(unsafe { libc::renameat2(at, cf.as_ptr(), at, ct.as_ptr(), bits) })?;
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                let tmp = from.with_file_name(".chunkfs-passthrough-exchange");
                self.moved(&from, &tmp);
                self.moved(&to, &from);
                self.moved(&tmp, &to);
            } else {
                self.moved(&from, &to);
            }
            Ok(())
        })();
        reply_empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let (old, new) = (self.path(ino)?, self.child(newparent, newname)?);
            std::fs::hard_link(old, &new).map_err(io_err)?;
            Ok(new)
        })();
        self.entry(r, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.path(ino).and_then(|p| self.open_fd(&p, flags.0, 0)) {
            Ok(fh) => reply.opened(FileHandle(fh), self.open_flags()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.file(fh).and_then(|f| {
            let mut buf = vec![0u8; size as usize];
            let mut n = 0;
            while n < buf.len() {
                match f.read_at(&mut buf[n..], offset + n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
            buf.truncate(n);
            Ok(buf)
        });
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self
            .file(fh)
            .and_then(|f| f.write_all_at(data, offset).map_err(io_err))
        {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.file(fh).and_then(|f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
            .map_err(io_err)
        });
        reply_empty(r, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.path(ino).and_then(|p| self.listing(&p)) {
            Ok(list) => {
                let fh = self.new_fh();
                self.dirs.lock().unwrap().insert(fh, Arc::new(list));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(list) = self.dirs.lock().unwrap().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        for (i, (child, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            let child = if *child == 0 { ino.0 } else { *child };
            if reply.add(INodeNo(child), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let list = self.dirs.lock().unwrap().get(&fh.0).cloned();
        let (Some(list), Ok(dir)) = (list, self.path(ino)) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (_, _, name)) in list.iter().enumerate().skip(offset as usize) {
            // The kernel ignores the attributes of "." and ".."; any valid ones will do.
            let a = if i < 2 {
                std::fs::symlink_metadata(&dir)
                    .map(|m| self.attr(&m))
                    .map_err(io_err)
            } else {
                self.remember(dir.join(name))
            };
            let Ok(a) = a else { continue }; // removed since opendir
            if reply.add(a.ino, i as u64 + 1, name, &self.tuning.ttl, &a, GEN) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _ds: bool,
        reply: ReplyEmpty,
    ) {
        let r = self
            .path(ino)
            .and_then(|p| File::open(p).and_then(|d| d.sync_all()).map_err(io_err));
        reply_empty(r, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let r = (|| {
            let c = cstr(&self.root)?;
            // SAFETY: c is a valid path and s a writable statvfs.
            let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
            check(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
            Ok(s)
        })();
        match r {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            let (c, n) = (cstr(&self.path(ino)?)?, cstr(Path::new(name))?);
            let v = value.as_ptr().cast();
            // SAFETY: valid NUL-terminated strings and a buffer of value.len() bytes.
            check(unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), v, value.len(), flags) })
        })();
        reply_empty(r, reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = (|| {
            let (c, n) = (cstr(&self.path(ino)?)?, cstr(Path::new(name))?);
            // SAFETY: valid NUL-terminated strings; the buffer is as long as said.
            xattr_get(|b, l| unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), b, l) })
        })();
        xattr_reply(r, size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = (|| {
            let c = cstr(&self.path(ino)?)?;
            // SAFETY: a valid NUL-terminated path; the buffer is as long as said.
            xattr_get(|b, l| unsafe { libc::llistxattr(c.as_ptr(), b.cast(), l) })
        })();
        xattr_reply(r, size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            let (c, n) = (cstr(&self.path(ino)?)?, cstr(Path::new(name))?);
            // SAFETY: valid NUL-terminated strings.
            check(unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) })
        })();
        reply_empty(r, reply);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = (|| {
            let p = self.child(parent, name)?;
            let fh = self.open_fd(&p, flags | libc::O_CREAT, mode & !umask)?;
            Ok((self.remember(p)?, fh))
        })();
        match r {
            Ok((a, fh)) => {
                reply.created(&self.tuning.ttl, &a, GEN, FileHandle(fh), self.open_flags())
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = self.file(fh).and_then(|f| {
            // SAFETY: the fd is open for as long as f lives.
            check(unsafe { libc::fallocate(f.as_raw_fd(), mode, offset as i64, length as i64) })
        });
        reply_empty(r, reply);
    }
}

fn mount_config(src: &Path) -> Config {
    let subtype = "chunkfs-passthrough";
    // SAFETY: geteuid has no preconditions. As in src/fuse/kernel.rs: fuser's direct mount(2)
    // as root ignores Subtype, so pass it as a kernel option there.
    let subtype = if unsafe { libc::geteuid() } == 0 {
        MountOption::CUSTOM(format!("subtype={subtype}"))
    } else {
        MountOption::Subtype(subtype.into())
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(src.to_string_lossy().into_owned()),
        MountOption::DefaultPermissions,
        subtype,
    ];
    config.n_threads =
        Some(std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)));
    config.clone_fd = true;
    config
}

/// Give the mount the 4 MiB bdi readahead chunkfs gives its own (src/fuse/kernel.rs), so the
/// two compare under the same kernel settings; `CHUNKFS_READ_AHEAD_KB` overrides it for both.
/// Found through the mount table, since a stat of the mountpoint would ask this daemon, which
/// does not serve yet. Only root may write it; anyone else keeps the kernel's 128 KiB.
fn raise_readahead(mountpoint: &Path) {
    let kb = std::env::var("CHUNKFS_READ_AHEAD_KB").unwrap_or_else(|_| "4096".into());
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let want = mountpoint.to_string_lossy();
    let dev = table.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 4 && f[4] == want).then(|| f[2].to_string())
    });
    if let Some(dev) = dev {
        let _ = std::fs::write(
            format!("/sys/class/bdi/{dev}/read_ahead_kb"),
            format!("{kb}\n"),
        );
    }
}

/// Errors end the daemon with one line on stderr and exit code 1, as chunkfs's do; SIGPIPE
/// stays ignored, as for chunkfs's daemon (src/cli/exit.rs): a closed stderr must not kill a
/// mount that is serving, and its writes to stderr ignore failure.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            chunkfs::cli::print_error("chunkfs-passthrough", &e);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Say `what` on stderr, if anyone is listening.
fn tell(what: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{what}");
}

fn run() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [src, mountpoint] = args.as_slice() else {
        bail!(
            "usage: chunkfs-passthrough SRC_DIR MOUNTPOINT  (foreground; SIGTERM/SIGINT unmount)"
        );
    };
    let src = src
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", src.display()))?;
    // Modes arrive with the caller's umask already applied (mode & !umask above).
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0) };
    let fs = chunkfs::fuse::Counted::new(Passthrough::new(src.clone())?);
    let counts = fs.counts();
    let abs_mountpoint = mountpoint
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", mountpoint.display()))?;
    let mut session = Session::new(fs, mountpoint, &mount_config(&src))
        .with_context(|| format!("cannot mount {} on {}", src.display(), mountpoint.display()))?;
    raise_readahead(&abs_mountpoint);
    let mut unmounter = session.unmount_callable();
    let sigs = [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1];
    let mut signals = signal_hook::iterator::Signals::new(sigs)?;
    let on_signal = counts.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == libc::SIGUSR1 {
                tell(format_args!("requests served: {}", on_signal.summary()));
            } else if let Err(e) = unmounter.unmount() {
                tell(format_args!("chunkfs-passthrough: unmount failed: {e}"));
            }
        }
    });
    let served = session.run();
    if chunkfs::fuse::report_request_counts_at_unmount() {
        tell(format_args!("requests served: {}", counts.summary()));
    }
    served.context("the FUSE session ended with an error")
}
