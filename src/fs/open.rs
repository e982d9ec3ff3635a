//! Making and opening stores: `mkfs`, `Fs::open`, and their options.

use super::core::Core;
use super::error::{FsError, Result};
use super::{Fs, Inner, now_ns};
use crate::chunker::ChunkParams;
use crate::meta::namespace::{self, FileKind, Revision};
use crate::meta::{self, Ino, Seq, chunks};
use crate::store::cache::ChunkCache;
use crate::store::device::{Device, FileDevice};
use crate::store::freemap::{Extent, FreeMap};
use crate::store::lock::StoreLock;
use crate::store::superblock::{SUPERBLOCK_LEN, Superblock};
use crate::store::{SECTOR, StoreError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub use crate::meta::META_FILE;
pub const IMAGE_FILE: &str = "data.img";

#[derive(Clone, Debug)]
pub struct MkfsOptions {
    /// A block device or existing file to hold the data; default `STORE/data.img`.
    pub device: Option<PathBuf>,
    /// Capacity of the device; default: the whole block device or file, or for a new image
    /// file the size of the host filesystem it lives on.
    pub size: Option<u64>,
    pub chunk_avg: u32,
    pub superchunk_target: u32,
    pub force: bool,
    /// How long history is kept, in seconds (snapshots and clone bases are kept forever).
    pub history_window: u64,
}

impl Default for MkfsOptions {
    fn default() -> Self {
        MkfsOptions {
            device: None,
            size: None,
            chunk_avg: 64 * 1024,
            superchunk_target: 4 << 20,
            force: false,
            history_window: crate::gc::DEFAULT_WINDOW_SECS,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FsOptions {
    /// Decompressed chunks kept in memory (the LRU chunk cache). With SQLite's 64 MiB page
    /// cache, the 64 MiB of uncommitted data, read-ahead (at most a quarter of this) and a
    /// commit's working copies, this keeps the daemon under 256 MiB resident whatever the
    /// store's size (docs/BENCHMARKS.md, "Memory").
    pub cache_bytes: usize,
    /// Uncommitted bytes of one file that trigger a commit.
    pub dirty_limit: usize,
    /// Uncommitted bytes of all files together that make a writer commit (bounds memory).
    pub dirty_total_limit: usize,
    /// Uncommitted writes older than this are committed.
    pub dirty_age: Duration,
    /// Group commit interval for metadata operations.
    pub commit_interval: Duration,
    pub zstd_level: i32,
    pub read_only: bool,
    /// Where the data device lives, to bound free space by the host's (set by `open`).
    pub device_path: PathBuf,
    /// Reclaim space in the background between group commits (tests turn it off to be
    /// deterministic and call `Fs::gc`).
    pub background_gc: bool,
    /// The metadata database (set by `open_with`), for second connections (online fsck).
    pub meta_path: PathBuf,
    /// Who may run the store-wide operations: by default the user of this process, and root.
    pub admins: super::caller::Admins,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            cache_bytes: 64 << 20,
            dirty_limit: 16 << 20,
            dirty_total_limit: 64 << 20,
            dirty_age: Duration::from_secs(5),
            commit_interval: Duration::from_millis(100),
            zstd_level: 3,
            read_only: false,
            device_path: PathBuf::new(),
            background_gc: true,
            meta_path: PathBuf::new(),
            admins: Default::default(),
        }
    }
}

/// Free bytes of the host filesystem holding `path` (for sparse image files).
pub fn host_available(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().is_empty() {
        return None;
    }
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and s a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

fn host_total(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_blocks as u64 * s.f_frsize as u64)
}

fn setup(msg: String) -> FsError {
    FsError::Setup(msg)
}

/// Create a store in directory `store`.
pub fn mkfs(store: &Path, opts: &MkfsOptions) -> Result<Superblock> {
    let meta_path = store.join(META_FILE);
    if meta_path.exists() && !opts.force {
        return Err(setup(format!(
            "{} already holds a chunkfs store; pass --force to destroy it and make a new one",
            store.display()
        )));
    }
    if store.exists() && !store.is_dir() {
        return Err(setup(format!(
            "{} exists and is not a directory; a store is a directory (name a new or empty one)",
            store.display()
        )));
    }
    std::fs::create_dir_all(store)
        .map_err(|e| setup(format!("cannot create {}: {e}", store.display())))?;
    // The store holds every file's bytes and names, whatever their modes in the mount: only
    // its owner may look inside (docs/SECURITY.md).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(store, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| setup(format!("cannot make {} private: {e}", store.display())))?;
    let (dev, dev_path, default_size): (Arc<dyn Device>, PathBuf, u64) = match &opts.device {
        Some(path) => {
            let dev = FileDevice::open(path)
                .map_err(|e| setup(format!("cannot open device {}: {e}", path.display())))?;
            if !opts.force {
                match Superblock::read(&dev) {
                    Ok(sb) => {
                        return Err(setup(format!(
                            "{} already holds chunkfs store {}; pass --force to overwrite it",
                            path.display(),
                            sb.uuid_string()
                        )));
                    }
                    Err(StoreError::NewerFormat { .. } | StoreError::Corrupt { .. }) => {
                        return Err(setup(format!(
                            "{} holds what looks like a chunkfs superblock; pass --force to overwrite it",
                            path.display()
                        )));
                    }
                    Err(_) => {}
                }
            }
            let len = dev.len()?;
            let dflt = if dev.is_block_device() || len > 0 {
                len
            } else {
                host_total(store).unwrap_or(1 << 40)
            };
            (Arc::new(dev), path.canonicalize()?, dflt)
        }
        None => {
            let path = store.join(IMAGE_FILE);
            if path.exists() {
                if !opts.force {
                    return Err(setup(format!(
                        "{} exists; pass --force to overwrite it",
                        path.display()
                    )));
                }
                std::fs::remove_file(&path)?;
            }
            let dev = FileDevice::create(&path)
                .map_err(|e| setup(format!("cannot create {}: {e}", path.display())))?;
            (
                Arc::new(dev),
                PathBuf::from(IMAGE_FILE),
                host_total(store).unwrap_or(1 << 40),
            )
        }
    };
    let capacity = opts.size.unwrap_or(default_size) / SECTOR * SECTOR;
    if capacity < SUPERBLOCK_LEN + 16 * SECTOR {
        return Err(setup(format!(
            "a device of {capacity} bytes is too small for a store"
        )));
    }
    if opts.force {
        for f in [META_FILE, "meta.db-wal", "meta.db-shm"] {
            let _ = std::fs::remove_file(store.join(f));
        }
        // The old store's metadata backups describe a store that is gone: left beside the new
        // one, they would be offered as its backups (and take its space).
        for n in 1..=crate::meta::backup::KEEP {
            let _ = std::fs::remove_file(crate::meta::backup::path(&meta_path, n));
        }
    }
    mkfs_on(&meta_path, &*dev, &dev_path, capacity, opts)
}

/// Write a fresh superblock to `dev` and a fresh metadata database at `meta_path`.
pub fn mkfs_on(
    meta_path: &Path,
    dev: &dyn Device,
    dev_path: &Path,
    capacity: u64,
    opts: &MkfsOptions,
) -> Result<Superblock> {
    let chunk = ChunkParams::from_avg(opts.chunk_avg);
    if !(256..=(4 << 20)).contains(&opts.chunk_avg) {
        return Err(setup(
            "--chunk-avg must be between 256 bytes and 4 MiB".into(),
        ));
    }
    let sb = Superblock::new(chunk, opts.superchunk_target, capacity);
    let conn = meta::open(meta_path, true)?;
    conn.execute_batch("BEGIN")?;
    meta::set_value(&conn, "uuid", &sb.uuid)?;
    meta::set_value(&conn, "device", dev_path.as_os_str().as_encoded_bytes())?;
    let mut fm = FreeMap::new();
    fm.free(Extent {
        start: SUPERBLOCK_LEN,
        len: capacity - SUPERBLOCK_LEN,
    })?;
    chunks::apply_free_changes(&conn, &fm.take_changes())?;
    let now = now_ns();
    let seq = Seq(1);
    let root = namespace::new_inode(&conn, FileKind::Dir, seq)?;
    debug_assert_eq!(root, Ino::ROOT);
    let rev = Revision::new_dir(root, 2, seq, now);
    namespace::put_revision(&conn, &rev, seq, "mkfs")?;
    meta::set_u64(&conn, "seq", 1)?;
    meta::record_commit(&conn, seq, now)?;
    meta::gc::config_set(
        &conn,
        crate::gc::HISTORY_WINDOW,
        &opts.history_window.to_string(),
    )?;
    // The superblock is written last: a store is only a store once its metadata exists.
    sb.write(dev)?;
    conn.execute_batch("COMMIT")?;
    Ok(sb)
}

impl Fs {
    /// Open the store in directory `store`. A damaged metadata database is refused with one
    /// message that names the damage and the command that rebuilds it.
    pub fn open(store: &Path, opts: FsOptions) -> Result<Fs> {
        let meta_path = store.join(META_FILE);
        Fs::open_store(store, opts).map_err(|e| match e {
            FsError::Meta(m) if m.is_damage() => setup(
                meta::damaged_at(&meta_path, m)
                    .to_string()
                    .replace("STORE", &store.display().to_string()),
            ),
            e => e,
        })
    }

    fn open_store(store: &Path, mut opts: FsOptions) -> Result<Fs> {
        let meta_path = store.join(META_FILE);
        if !meta_path.exists() {
            return Err(setup(format!(
                "{} is not a chunkfs store (no {META_FILE}); make one with `chunkfs mkfs {}`",
                store.display(),
                store.display()
            )));
        }
        let lock = StoreLock::acquire(store).map_err(setup)?;
        let conn = meta::open_existing(&meta_path, opts.read_only)?;
        let dev_path = store.join(meta::device_path(&conn)?);
        drop(conn);
        let dev = if opts.read_only {
            FileDevice::open_read_only(&dev_path)
        } else {
            FileDevice::open(&dev_path)
        }
        .map_err(|e| {
            setup(format!(
                "cannot open the store's device {}: {e}",
                dev_path.display()
            ))
        })?;
        opts.device_path = dev_path;
        let fs = Fs::open_with(&meta_path, Arc::new(dev), opts)?;
        *fs.lock.lock().unwrap() = Some(lock);
        Ok(fs)
    }

    /// Open a store whose device is already at hand (tests pass memory or faulty devices).
    pub fn open_with(meta_path: &Path, dev: Arc<dyn Device>, mut opts: FsOptions) -> Result<Fs> {
        opts.meta_path = meta_path.to_path_buf();
        let sb = Superblock::read(&*dev).map_err(|e| {
            match e {
            StoreError::NoSuperblock => setup(
                "the device holds no chunkfs superblock: it is the wrong device, or was overwritten"
                    .to_string(),
            ),
            e => FsError::Store(e),
        }
        })?;
        let conn = meta::open_existing(meta_path, opts.read_only)?;
        meta::check_pages_at_open(&conn, meta_path)?;
        let uuid = meta::get_value(&conn, "uuid")?.unwrap_or_default();
        if uuid != sb.uuid {
            return Err(setup(format!(
                "the device belongs to another store (device UUID {}, this store expects {}); nothing was changed",
                sb.uuid_string(),
                uuid.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )));
        }
        let core = Core::new(conn, sb.superchunk_target as u64, opts.read_only)?;
        let writable = core.writable_flag();
        let backups = super::backup::Backups::new(crate::meta::backup::path(meta_path, 1).exists());
        let inner = Inner {
            core: Mutex::new(core),
            dev,
            cache: ChunkCache::new(opts.cache_bytes),
            sb,
            opts,
            files: Mutex::new(HashMap::new()),
            damaged: Mutex::new(Default::default()),
            dirty_bytes: Default::default(),
            lock: Mutex::new(None),
            views: Mutex::new(Default::default()),
            view_files: Mutex::new(HashMap::new()),
            list_data: Default::default(),
            conduits: Default::default(),
            asks: Default::default(),
            progress: Default::default(),
            maintenance: Mutex::new(()),
            invalidator: Mutex::new(None),
            request_counts: Default::default(),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            stop: (Mutex::new(false), Condvar::new()),
            closed: AtomicBool::new(false),
            gc_state: Mutex::new(Default::default()),
            inflight: Default::default(),
            me: std::sync::Weak::new(),
            writable,
            backups,
        };
        Ok(Fs::start(inner))
    }
}
