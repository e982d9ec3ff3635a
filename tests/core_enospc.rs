//! A full device recovers while the store stays open: the dirty data of files deleted after
//! their commit ran out of space is dropped rather than retried into the space GC frees, a
//! failed commit is retried in the background only once space came back, and closing the store
//! names the files whose data could not be committed. Small image-file stores with no history
//! window, so deleting a file and running GC gives its space back.

mod common;
mod support;

use chunkfs::fs::{Fs, FsError, FsOptions, Ino, MkfsOptions};
use chunkfs::fsck::offline::{self, FsckOptions};
use common::*;
use std::time::Duration;
use support::*;

const FILE: usize = 100_000;

struct Store(DirStore);

impl std::ops::Deref for Store {
    type Target = DirStore;
    fn deref(&self) -> &DirStore {
        &self.0
    }
}

impl Store {
    fn new(capacity: u64) -> Store {
        Store(DirStore::mkfs(&MkfsOptions {
            size: Some(capacity),
            history_window: 0,
            ..tiny_mkfs()
        }))
    }

    /// Every dirty file counts as aged, so `commit_aged_files` is one committer tick.
    fn open(&self) -> Fs {
        let opts = FsOptions {
            dirty_age: Duration::ZERO,
            ..tiny_opts()
        };
        Fs::open(&self.path(), opts).unwrap()
    }

    fn fsck_exit(&self) -> i32 {
        offline::run(
            &self.path(),
            &FsckOptions::default(),
            &chunkfs::fsck::Silent,
        )
        .unwrap()
        .exit_code()
    }
}

/// Write `data` as a new file under `parent` and fsync it; the first error is returned.
fn write_synced(fs: &Fs, parent: Ino, name: &str, data: &[u8]) -> Result<Ino, FsError> {
    let (a, h) = fs.create(parent, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)?;
    let r = fs
        .write(a.ino, h.fh, 0, data)
        .and_then(|_| fs.fsync(a.ino, h.fh, false));
    let rel = fs.release(a.ino, h.fh);
    r.and(rel).map(|_| a.ino)
}

/// Write `data` as a new file and close it, expecting the close to run out of space: the file
/// exists, its data stays dirty.
fn write_stuck(fs: &Fs, parent: Ino, name: &str, data: &[u8]) -> Ino {
    let (a, h) = fs
        .create(parent, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    fs.write(a.ino, h.fh, 0, data).unwrap();
    assert_eq!(errno(fs.release(a.ino, h.fh)), libc::ENOSPC, "{name}");
    a.ino
}

/// Fill the store with synced files of `FILE` random bytes until one runs out of space; that
/// one is left dirty. Returns the names of the synced files and the path of the last one.
fn fill(fs: &Fs, seed: u64) -> (Vec<String>, String) {
    let mut synced = Vec::new();
    for i in 0..1000 {
        let name = format!("full{i}");
        match write_synced(fs, Ino::ROOT, &name, &random_bytes(seed + i, FILE)) {
            Ok(_) => synced.push(name),
            Err(e) => {
                assert_eq!(e.errno(), libc::ENOSPC, "{e}");
                return (synced, format!("/{name}"));
            }
        }
    }
    panic!("the store never filled up");
}

#[test]
fn deleted_files_that_could_not_commit_give_way_to_new_writes_after_gc() {
    let store = Store::new(2 << 20);
    let fs = store.open();
    let (synced, _) = fill(&fs, 1000);
    assert!(synced.len() >= 8, "only {} files fit", synced.len());
    // More files whose data cannot be committed: together more than GC will free below.
    let stuck: Vec<Ino> = (0..3)
        .map(|i| {
            write_stuck(
                &fs,
                Ino::ROOT,
                &format!("stuck{i}"),
                &random_bytes(50 + i, FILE),
            )
        })
        .collect();
    // One more, unlinked while still open: its holder keeps reading what it wrote.
    let (open_attr, open_h) = fs
        .create(Ino::ROOT, b"held", 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    let held = random_bytes(60, FILE);
    fs.write(open_attr.ino, open_h.fh, 0, &held).unwrap();
    fs.unlink(Ino::ROOT, b"held").unwrap();
    assert_eq!(
        fs.read(open_attr.ino, open_h.fh, 0, FILE as u32).unwrap(),
        held
    );
    assert_eq!(fs.getattr(open_attr.ino).unwrap().size, FILE as u64);
    fs.release(open_attr.ino, open_h.fh).unwrap();

    // Delete the stuck files and two synced ones, then let the committer tick: the stuck
    // files' data is dropped, not committed.
    for i in 0..3 {
        fs.unlink(Ino::ROOT, format!("stuck{i}").as_bytes())
            .unwrap();
    }
    for name in &synced[..2] {
        fs.unlink(Ino::ROOT, name.as_bytes()).unwrap();
    }
    fs.commit_aged_files().unwrap();
    for &ino in &stuck {
        assert_eq!(
            fs.getattr(ino).unwrap().size,
            0,
            "the dirty data of unlinked inode {} is still held",
            ino.0
        );
    }
    fs.gc(&chunkfs::gc::Silent).unwrap();
    // What the committer thread does next: nothing of the deleted files may take the space.
    fs.commit_aged_files().unwrap();
    let st = fs.statfs().unwrap();
    let free = st.bfree * st.frsize as u64;
    assert!(
        free >= 2 * FILE as u64 * 9 / 10,
        "{free} bytes free after deleting two files of {FILE} and gc"
    );
    // The freed space takes new data.
    write_synced(&fs, Ino::ROOT, "new", &random_bytes(70, FILE * 3 / 2))
        .expect("a new file fits in the space gc freed");
    assert_eq!(fs.failure(), None, "running out of space failed the store");
    fs.mkdir(Ino::ROOT, b"still-writable", 0o755, 0, 0).unwrap();
    assert_consistent(&fs);
    fs.close().expect("nothing linked is left uncommitted");
    assert_eq!(store.fsck_exit(), 0, "offline fsck after close");
    let fs = store.open();
    let ino = fs.lookup(Ino::ROOT, b"new").unwrap().ino;
    assert_eq!(read_file(&fs, ino), random_bytes(70, FILE * 3 / 2));
    for name in &synced[2..] {
        fs.lookup(Ino::ROOT, name.as_bytes()).unwrap();
    }
    fs.close().unwrap();
}

#[test]
fn a_commit_that_ran_out_of_space_is_retried_in_the_background_only_after_space_is_freed() {
    let store = Store::new(2 << 20);
    let fs = store.open();
    let (synced, _) = fill(&fs, 2000);
    let data = random_bytes(80, FILE);
    let kept = write_stuck(&fs, Ino::ROOT, "kept", &data);
    // Nothing changed: the committer leaves it alone (old code retried it at every tick,
    // failing each time and staging into what little room was left).
    fs.commit_aged_files()
        .expect("the committer retried a commit with no new space");
    // An explicit sync still tries, and still reports it.
    assert_eq!(errno(fs.sync_all()), libc::ENOSPC);
    fs.commit_aged_files()
        .expect("the committer retried a commit with no new space");
    // Deleting alone frees nothing yet; GC does, and then the committer retries.
    for name in &synced[..3] {
        fs.unlink(Ino::ROOT, name.as_bytes()).unwrap();
    }
    fs.gc(&chunkfs::gc::Silent).unwrap();
    fs.commit_aged_files().unwrap();
    assert_eq!(fs.failure(), None);
    fs.close().unwrap();
    assert_eq!(store.fsck_exit(), 0);
    let fs = store.open();
    assert_eq!(read_file(&fs, kept), data);
    fs.close().unwrap();
}

#[test]
fn closing_names_every_file_whose_data_could_not_be_committed() {
    let store = Store::new(1 << 20);
    let fs = store.open();
    let (_, last) = fill(&fs, 3000);
    let last_ino = resolve(&fs, &last).unwrap();
    let dir = fs.mkdir(Ino::ROOT, b"dir", 0o755, 0, 0).unwrap().ino;
    let kept = write_stuck(&fs, dir, "kept", &random_bytes(90, FILE));
    // Unlinked but still open at close: its data cannot be committed either.
    let (a, h) = fs
        .create(Ino::ROOT, b"gone", 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    fs.write(a.ino, h.fh, 0, &random_bytes(91, FILE)).unwrap();
    fs.unlink(Ino::ROOT, b"gone").unwrap();
    let err = fs.close().expect_err("close lost data and said nothing");
    let FsError::Unsaved(mut files) = err else {
        panic!("not a list of unsaved files: {err}");
    };
    files.sort_by_key(|u| u.ino.0);
    let named: Vec<(Ino, Option<&str>)> =
        files.iter().map(|u| (u.ino, u.path.as_deref())).collect();
    assert_eq!(
        named,
        vec![
            (last_ino, Some(last.as_str())),
            (kept, Some("/dir/kept")),
            (a.ino, None)
        ]
    );
    for u in &files {
        assert!(u.error.contains("no space"), "{u:?}");
    }
    let text = FsError::Unsaved(files).to_string();
    assert!(
        text.contains("/dir/kept") && text.contains(&format!("unlinked inode {}", a.ino.0)),
        "{text}"
    );
    assert_eq!(store.fsck_exit(), 0);
}
