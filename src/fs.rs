//! The filesystem core: the whole POSIX surface as a library, usable without any mount.
//! `fuse` only translates kernel requests into these calls.

mod access;
pub mod ask;
mod backup;
pub mod caller;
mod content;
mod core;
pub mod error;
mod file;
mod heal;
pub mod open;
mod ops;
mod overlay;
mod privileges;
mod progress;
mod readahead;
mod readers;
mod rename;
mod request;
mod seek;
pub mod settings;
mod space;
pub mod stats;
mod unsaved;

pub use clone::Cloned;
pub use history::Log;
pub use revert::Reverted;
pub use special::{CONTROL_NAME, Freshness, Point, VIEW_TTL, freshness, parse_point};
pub use tree::When;
mod clone;
mod control;
mod copy;
mod history;
mod revert;
mod special;
mod tree;
pub mod types;
mod xattr;

pub use crate::meta::{Ino, Seq};
pub use caller::{Admins, Caller, Credentials};
pub use error::{FsError, Result, Unsaved};
pub use open::{FsOptions, MkfsOptions};
pub use types::*;

use self::core::Core;
use crate::chunker::ChunkHash;
use crate::store::cache::ChunkCache;
use crate::store::device::Device;
use crate::store::superblock::Superblock;
use file::FileState;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A mounted-or-not chunkfs filesystem. Cheap to share: all state is behind locks.
pub struct Fs {
    inner: Arc<Inner>,
    committer: Option<JoinHandle<()>>,
}

pub struct Inner {
    core: Mutex<Core>,
    dev: Arc<dyn Device>,
    cache: ChunkCache,
    sb: Superblock,
    opts: FsOptions,
    files: Mutex<HashMap<Ino, Arc<Mutex<FileState>>>>,
    /// Uncommitted bytes over all files; past `FsOptions::dirty_total_limit` writers commit.
    dirty_bytes: std::sync::atomic::AtomicUsize,
    /// Chunks found damaged on read: a write of the same bytes stores a good copy.
    damaged: Mutex<HashSet<ChunkHash>>,
    /// Held while a store directory is open, so no second process opens it.
    lock: Mutex<Option<crate::store::lock::StoreLock>>,
    /// Views of the past handed out under /.chunkfs.
    views: Mutex<special::Views>,
    /// Open files of views: their content, fixed.
    view_files: Mutex<HashMap<u64, Arc<special::ViewFile>>>,
    /// The data size of chunk-list nodes, for `st_blocks` (`fs::seek`).
    list_data: seek::ListData,
    /// Open conduits: request and response per handle.
    conduits: Mutex<control::Conduits>,
    /// The nodes of `/.chunkfs/ask` handed out (requests carried by names).
    asks: Mutex<ask::Asks>,
    /// Progress of the requests conduits run, for `/.chunkfs/progress`.
    progress: progress::Board,
    /// Held by whole-store maintenance (online fsck, gc) so they do not overlap.
    maintenance: Mutex<()>,
    /// Told about changes the kernel's caches cannot know of (revert, clone).
    invalidator: Mutex<Option<Invalidator>>,
    /// The FUSE adapter's count of kernel requests, for the conduit's `request-counts`.
    request_counts: std::sync::OnceLock<RequestCountSource>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    stop: (Mutex<bool>, Condvar),
    closed: AtomicBool,
    /// Garbage collection between batches (taken after the core lock is released, never
    /// while holding it).
    gc_state: Mutex<space::GcState>,
    /// Chunks being decoded, and the read-ahead jobs decoding them.
    inflight: readahead::InFlight,
    /// This filesystem, for background jobs that outlive the request starting them.
    me: Weak<Inner>,
    /// Copies of the metadata database beside it (`fs::backup`).
    backups: backup::Backups,
    /// `Core::check_writable` without the core lock, for the hot paths (`Inner::check_writable`).
    writable: Arc<AtomicBool>,
}

#[derive(Clone, Copy, Debug)]
struct Handle {
    ino: Ino,
    write: bool,
    dir: bool,
    /// The file's generation when opened: a revert under it makes the handle stale.
    generation: u64,
}

/// Tells the kernel to drop cached state; set by the FUSE adapter.
pub type Invalidator = Box<dyn Fn(&[Inval]) + Send + Sync>;

/// Reads the count of kernel requests per type; set by the FUSE adapter.
pub type RequestCountSource = Box<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

/// Something the kernel may have cached that changed behind its back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inval {
    /// Attributes and data of an inode.
    Inode(Ino),
    /// Attributes alone of an inode (no cached page is touched, so it may be sent while the
    /// kernel holds pages of the file locked, as it does during a write).
    Attr(Ino),
    /// The name `name` in directory `parent`.
    Entry(Ino, Vec<u8>),
}

impl std::ops::Deref for Fs {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl Fs {
    fn start(mut inner: Inner) -> Fs {
        let inner = Arc::new_cyclic(|me| {
            inner.me = me.clone();
            inner
        });
        let weak = Arc::downgrade(&inner);
        let interval = inner.opts.commit_interval;
        let committer = std::thread::Builder::new()
            .name("chunkfs-commit".into())
            .spawn(move || committer(weak, interval))
            .expect("spawn commit thread");
        Fs {
            inner,
            committer: Some(committer),
        }
    }

    /// Commit everything and stop the background committer. Dropping does the same. Files
    /// whose data could not be committed are named in `FsError::Unsaved`.
    pub fn close(self) -> Result<()> {
        self.close_then(|_| {})
    }

    /// `close`, handing its outcome to `report` while the store lock is still held: what
    /// `report` records is in place before another process can open the store (the mount
    /// daemon's exit status, which `chunkfs umount` reads once the lock is free).
    pub fn close_then(mut self, report: impl FnOnce(&Result<()>)) -> Result<()> {
        let r = self.shutdown();
        report(&r);
        self.inner.lock.lock().unwrap().take();
        r
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        {
            let (m, cv) = &self.inner.stop;
            *m.lock().unwrap() = true;
            cv.notify_all();
        }
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
        // A read-ahead job holds the filesystem (and so the store lock) while it runs.
        self.inner.inflight.wait_idle();
        let r = self.inner.final_commit();
        if r.is_ok() {
            self.inner.final_backup();
        }
        r
    }
}

impl Drop for Fs {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::error!("chunkfs: final commit failed: {e}");
        }
        // Closed means another process may open the store now, whoever still holds `inner`.
        self.inner.lock.lock().unwrap().take();
    }
}

/// Group commit: every `interval`, commit what the operations since the last commit did, and
/// commit the content of files dirty for longer than the age limit.
fn committer(fs: Weak<Inner>, interval: Duration) {
    loop {
        let Some(fs) = fs.upgrade() else { return };
        {
            let (m, cv) = &fs.stop;
            // The flag is checked before waiting too: a stop signalled while a commit ran
            // must not wait out a whole interval.
            let stopped = m.lock().unwrap();
            if *stopped {
                return;
            }
            let (stopped, _) = cv.wait_timeout_while(stopped, interval, |s| !*s).unwrap();
            if *stopped {
                return;
            }
        }
        if let Err(e) = fs.commit_aged_files() {
            log::warn!("chunkfs: background commit of file content failed: {e}");
        }
        if let Err(e) = fs.lock_core().commit(&*fs.dev) {
            log::error!("chunkfs: group commit failed: {e}");
        }
        fs.maybe_backup();
        // Reclaim space between group commits, for a quarter of the interval at most, one
        // short transaction per batch.
        if fs.opts.background_gc && !fs.opts.read_only {
            fs.background_gc(interval / 4);
        }
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub(crate) fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

pub(crate) fn from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

impl Inner {
    fn lock_core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run one metadata operation under the core lock, in the open seq (`Core::op`).
    fn op<T>(&self, f: impl FnOnce(&mut Core, Seq) -> Result<T>) -> Result<T> {
        self.lock_core().op(&*self.dev, f)
    }

    /// Run one metadata operation in a seq of its own (`Core::op_alone`).
    fn op_alone<T>(&self, f: impl FnOnce(&mut Core, Seq) -> Result<T>) -> Result<T> {
        self.lock_core().op_alone(&*self.dev, f)
    }

    /// The store's superblock (its UUID and parameters).
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Commit every dirty file and the open transaction; durable when this returns.
    /// EROFS on a read-only store or one that failed: asked by every write before it buffers,
    /// so it reads a flag rather than waiting for the core lock behind a commit.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.writable.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(FsError::ReadOnly)
        }
    }

    pub fn sync_all(&self) -> Result<()> {
        let files = self.commit_files(true, |_| true);
        self.lock_core().commit(&*self.dev)?;
        files
    }

    /// Refuse every change from now on with EROFS, or allow changes again: what a remount
    /// read-only and back does (the daemon follows the superblock's flag). Going read-only
    /// first commits everything, so nothing is left to write; the background collector and
    /// the metadata backups stop while read-only, since both write. A store opened read-only
    /// (`FsOptions::read_only`: its files are open read-only) cannot be made writable.
    pub fn set_read_only(&self, ro: bool) -> Result<()> {
        if !ro && self.opts.read_only {
            return Err(FsError::ReadOnly);
        }
        // Read-only even when something could not be committed (ENOSPC): the kernel already
        // refuses changes, and so must the daemon's own work.
        let synced = if ro { self.sync_all() } else { Ok(()) };
        self.lock_core().set_read_only(ro);
        synced
    }

    /// The last seq given to an operation, closed (`Core::close_seq`): the state at it no
    /// longer changes, so it can be shown to a user and read from.
    pub fn current_seq(&self) -> Seq {
        self.lock_core().close_seq()
    }

    /// Operations run since the store opened: for noticing change (the last seq does not
    /// move while operations join an open one).
    pub(crate) fn changes(&self) -> u64 {
        self.lock_core().changes()
    }

    /// Why the store refuses writes, if it does.
    pub fn failure(&self) -> Option<String> {
        self.lock_core().failure().map(str::to_string)
    }

    /// Register the function that tells the kernel to drop cached state (the FUSE adapter's).
    pub fn set_invalidator(&self, f: Invalidator) {
        *self.invalidator.lock().unwrap() = Some(f);
    }

    /// Register where the conduit's `request-counts` reads from (the FUSE adapter's counter).
    /// Only the first registration counts: one filesystem is served by one session.
    pub fn set_request_counts(&self, f: RequestCountSource) {
        let _ = self.request_counts.set(f);
    }

    /// The kernel requests counted so far, per type; `None` when not served over FUSE.
    pub(crate) fn request_counts(&self) -> Option<Vec<(String, u64)>> {
        self.request_counts.get().map(|f| f())
    }

    fn invalidate(&self, what: &[Inval]) {
        if let Some(f) = &*self.invalidator.lock().unwrap() {
            f(what);
        }
    }

    /// Content or entries changed under open files (a revert): their handles become stale,
    /// their state is reloaded on next use, and the kernel drops what it cached.
    fn after_external_change(&self, what: &[Inval]) {
        for w in what {
            if let Inval::Inode(ino) = w {
                if let Err(e) = self.reload_after_revert(*ino) {
                    log::warn!("chunkfs: reloading inode {} after a revert: {e}", ino.0);
                }
                self.lock_core().clear_reverted(*ino);
            }
        }
        self.invalidate(what);
    }

    fn new_fh(&self, h: Handle) -> Fh {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().unwrap().insert(fh, h);
        Fh(fh)
    }

    fn handle(&self, fh: Fh) -> Result<Handle> {
        self.handles
            .lock()
            .unwrap()
            .get(&fh.0)
            .copied()
            .ok_or(FsError::BadHandle)
    }
}
