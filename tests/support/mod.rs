//! Helpers for the core API, model and crash tests beyond `common`: errno checks, whole-tree
//! listings, and snapshots of a store's metadata files taken while it is open.
#![allow(dead_code)]

use crate::common::{read_file, tiny_opts};
use chunkfs::fs::{Attr, Fh, FileKind, Fs, FsError, Ino};
use chunkfs::store::device::{Device, FaultyDevice};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A new file `name` in the root directory, open read-write: its inode and handle.
pub fn create(fs: &Fs, name: &str) -> (Ino, Fh) {
    let (a, h) = fs
        .create(Ino::ROOT, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    (a.ino, h.fh)
}

/// `Fs::copy_range` between two open files, which must succeed: the bytes copied.
pub fn copy(fs: &Fs, from: (Ino, Fh), off_in: u64, to: (Ino, Fh), off_out: u64, len: u64) -> u64 {
    fs.copy_range(from.0, from.1, off_in, to.0, to.1, off_out, len)
        .unwrap()
}

/// The errno of a call that must fail.
#[track_caller]
pub fn errno<T: std::fmt::Debug>(r: Result<T, FsError>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.errno(),
    }
}

/// Every entry of `dir` (without "." and ".."), read in pages of `page` entries.
pub fn list(fs: &Fs, dir: Ino, page: usize) -> Vec<(Vec<u8>, Ino, FileKind)> {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let part = fs.readdir(dir, off, page).unwrap();
        if part.is_empty() {
            return out;
        }
        for e in part {
            off = e.next_offset;
            if e.name != b"." && e.name != b".." {
                out.push((e.name, e.ino, e.kind));
            }
        }
    }
}

pub fn names(fs: &Fs, dir: Ino) -> Vec<Vec<u8>> {
    let mut n: Vec<_> = list(fs, dir, 1000).into_iter().map(|(n, _, _)| n).collect();
    n.sort();
    n
}

/// What a path holds, as the tests compare it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Dir { nlink: u32 },
    File { data: Vec<u8>, nlink: u32 },
    Other { kind: FileKind },
}

/// The whole tree under `dir`: "a/b" -> (ino, what it holds).
pub fn tree(fs: &Fs, dir: Ino) -> BTreeMap<String, (Ino, Found)> {
    let mut out = BTreeMap::new();
    walk(fs, dir, "", &mut out);
    out
}

fn walk(fs: &Fs, dir: Ino, prefix: &str, out: &mut BTreeMap<String, (Ino, Found)>) {
    for (name, ino, kind) in list(fs, dir, 3) {
        let path = format!("{prefix}{}", String::from_utf8_lossy(&name));
        let attr: Attr = fs.getattr(ino).unwrap();
        assert_eq!(
            attr.kind, kind,
            "{path}: readdir and getattr disagree on the kind"
        );
        let found = match kind {
            FileKind::Dir => Found::Dir { nlink: attr.nlink },
            FileKind::File => Found::File {
                data: read_file(fs, ino),
                nlink: attr.nlink,
            },
            kind => Found::Other { kind },
        };
        let is_dir = kind == FileKind::Dir;
        out.insert(path.clone(), (ino, found));
        if is_dir {
            walk(fs, ino, &format!("{path}/"), out);
        }
    }
}

/// The metadata database files of a store as they are on disk at one instant, taken while the
/// store is open: what a process crash leaves behind. The -shm index is not taken; SQLite
/// rebuilds it from the WAL.
#[derive(Clone, Debug)]
pub struct DbSnapshot {
    files: Vec<(&'static str, Vec<u8>)>,
}

impl DbSnapshot {
    pub fn take(dir: &Path) -> DbSnapshot {
        let mut files = Vec::new();
        for name in ["meta.db", "meta.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                files.push((name, bytes));
            }
        }
        assert!(
            files.iter().any(|(n, _)| *n == "meta.db"),
            "no meta.db in {dir:?}"
        );
        DbSnapshot { files }
    }

    /// Write the files into a fresh directory.
    pub fn restore(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in &self.files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        dir
    }
}

/// A crashed store: its metadata files and a device image, reopened from copies.
pub struct Crashed {
    pub dir: tempfile::TempDir,
    pub dev: FaultyDevice,
}

impl Crashed {
    pub fn new(db: &DbSnapshot, image: Vec<u8>) -> Crashed {
        Crashed {
            dir: db.restore(),
            dev: FaultyDevice::from_bytes(image),
        }
    }

    pub fn open(&self) -> Result<Fs, FsError> {
        let dev: Arc<dyn Device> = Arc::new(self.dev.clone());
        Fs::open_with(&self.dir.path().join("meta.db"), dev, tiny_opts())
    }
}

/// Resolve a slash-separated path from the root.
pub fn resolve(fs: &Fs, path: &str) -> Result<Ino, FsError> {
    let mut ino = Ino::ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = fs.lookup(ino, part.as_bytes())?.ino;
    }
    Ok(ino)
}

/// A store for one test. On drop (unless the test panicked) it checks refcounts and space,
/// closes the store, reopens it and checks that the whole tree (names, kinds, link counts,
/// file contents) survived and is still consistent: every test ends with that check.
pub struct Env {
    fs: Option<Fs>,
    pub ts: crate::common::TestStore,
}

impl Env {
    pub fn new() -> Env {
        Env::with_capacity(64 << 20)
    }

    pub fn with_capacity(capacity: u64) -> Env {
        let ts = crate::common::TestStore::new(capacity);
        Env {
            fs: Some(ts.open()),
            ts,
        }
    }

    /// Close and reopen the store; returns the reopened filesystem's tree for convenience.
    pub fn reopen(&mut self) {
        self.fs.take().unwrap().close().unwrap();
        self.fs = Some(self.ts.open());
    }

    /// Take the filesystem out (to close it by hand); the final check then does nothing.
    pub fn take(&mut self) -> Fs {
        self.fs.take().unwrap()
    }

    /// Put a (re)opened filesystem back for the final check.
    pub fn put(&mut self, fs: Fs) {
        self.fs = Some(fs);
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl std::ops::Deref for Env {
    type Target = Fs;
    fn deref(&self) -> &Fs {
        self.fs.as_ref().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let Some(fs) = self.fs.take() else { return };
        if std::thread::panicking() {
            return;
        }
        crate::common::assert_consistent(&fs);
        let before = tree(&fs, Ino::ROOT);
        fs.close().expect("closing the store");
        let fs = self.ts.open();
        assert_eq!(
            tree(&fs, Ino::ROOT),
            before,
            "the tree changed across a reopen"
        );
        crate::common::assert_consistent(&fs);
        fs.close().unwrap();
    }
}
