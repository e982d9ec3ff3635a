//! Helpers shared by the integration tests.
#![allow(dead_code)]

mod data;
use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions, open};
use chunkfs::store::device::{Device, FaultyDevice};
#[allow(unused_imports)] // not every test binary uses it
pub use data::random_bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Tiny sizes so sealing, eviction and tree paths run on small data.
pub fn tiny_mkfs() -> MkfsOptions {
    MkfsOptions {
        chunk_avg: 1024,
        superchunk_target: 16 * 1024,
        ..MkfsOptions::default()
    }
}

pub fn tiny_opts() -> FsOptions {
    FsOptions {
        cache_bytes: 32 * 1024,
        dirty_limit: 64 * 1024,
        commit_interval: Duration::from_secs(3600),
        background_gc: false,
        ..FsOptions::default()
    }
}

/// A store on a fault-injecting device, with its metadata in a temp dir.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub dev: FaultyDevice,
}

impl TestStore {
    pub fn new(capacity: u64) -> TestStore {
        TestStore::with_window(capacity, tiny_mkfs().history_window)
    }

    /// A tiny store keeping `window` seconds of history (0: deleted data is garbage at once).
    pub fn with_window(capacity: u64, window: u64) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let dev = FaultyDevice::new();
        let opts = MkfsOptions {
            history_window: window,
            ..tiny_mkfs()
        };
        open::mkfs_on(
            &dir.path().join("meta.db"),
            &dev,
            Path::new("mem"),
            capacity,
            &opts,
        )
        .unwrap();
        TestStore { dir, dev }
    }

    pub fn meta(&self) -> PathBuf {
        self.dir.path().join("meta.db")
    }

    pub fn open(&self) -> Fs {
        self.open_with(tiny_opts())
    }

    pub fn open_with(&self, opts: FsOptions) -> Fs {
        let dev: Arc<dyn Device> = Arc::new(self.dev.clone());
        Fs::open_with(&self.meta(), dev, opts).unwrap()
    }
}

pub fn write_file(fs: &Fs, parent: Ino, name: &str, data: &[u8]) -> Ino {
    let (attr, h) = fs
        .create(parent, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    if !data.is_empty() {
        fs.write(attr.ino, h.fh, 0, data).unwrap();
    }
    fs.release(attr.ino, h.fh).unwrap();
    attr.ino
}

pub fn read_file(fs: &Fs, ino: Ino) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size;
    let h = fs.open(ino, libc::O_RDONLY).unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let part = fs.read(ino, h.fh, out.len() as u64, 1 << 20).unwrap();
        assert!(!part.is_empty());
        out.extend_from_slice(&part);
    }
    fs.release(ino, h.fh).unwrap();
    out
}

/// Refcounts and space must be exact.
pub fn assert_consistent(fs: &Fs) {
    assert_eq!(fs.check_refcounts().unwrap(), Vec::<String>::new());
    assert_eq!(fs.check_space().unwrap(), Vec::<String>::new());
}

/// A store in a directory of its own, `s/` with its meta.db and data.img, made by `mkfs` as the
/// CLI makes it (tests that run the binary or damage files on disk use it).
pub struct DirStore {
    pub dir: tempfile::TempDir,
}

impl DirStore {
    pub fn mkfs(opts: &MkfsOptions) -> DirStore {
        let dir = tempfile::tempdir().unwrap();
        open::mkfs(&dir.path().join("s"), opts).unwrap();
        DirStore { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("s")
    }

    pub fn meta(&self) -> PathBuf {
        self.path().join("meta.db")
    }

    /// A connection to the store's database, for tests that change it behind its back.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.meta()).unwrap()
    }
}

/// Take a store's schema back from 6 to 5: the indexes migration 0006 replaced, none of those
/// it added (the rows are the same), for tests that a store of an older schema upgrades.
pub const UNDO_MIGRATION_6: &str = "DROP INDEX dirents_live_by_parent;
     DROP INDEX dirents_ended;
     DROP INDEX dirents_ended_by_parent;
     DROP INDEX dirents_ended_by_ino;
     DROP INDEX revisions_ended;
     DROP INDEX xattrs_by_ino;
     CREATE INDEX dirents_history ON dirents(parent, name, born);
     CREATE INDEX dirents_by_parent_born ON dirents(parent, born);
     CREATE INDEX revisions_by_ino ON revisions(ino, born);";

/// Take a store's schema back from 7 to 6: migration 0007's GC indexes (`revisions_unlinked`
/// back on `id`, as 0004 made it).
pub const UNDO_MIGRATION_7: &str = "DROP INDEX superchunks_sparse;
     DROP INDEX snapshots_by_seq;
     DROP INDEX clones_by_seq;
     DROP INDEX revisions_unlinked;
     CREATE INDEX revisions_unlinked ON revisions(id) WHERE died IS NULL AND nlink = 0;";
