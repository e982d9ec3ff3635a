//! GC racing writers and readers through the core API, on a fault-injecting device whose
//! discards zero their range and take a while (as a slow unmap does). Background GC runs
//! between group commits while another thread runs explicit passes and online fsck; writers
//! create, overwrite and delete files and read them back; a reader keeps checking files that
//! never change. Nothing may read back wrong, no fsck may find damage, and the store must be
//! exact when closed and reopened.
//!
//! The ordering rule under test (`fs::core::Core::release_retired`): freed space becomes
//! allocatable only after the commit that freed it, after every reader that could still read
//! it is done, and after its discard. On the code before that rule, a discard issued after the
//! core lock was dropped punched holes into superchunks sealed there meanwhile.
//!
//! CHUNKFS_GC_RACE_ROUNDS sets the rounds per writer (default 40).

mod common;
mod support;

use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions, open};
use chunkfs::store::device::{Device, FaultyDevice};
use common::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn rounds() -> u64 {
    std::env::var("CHUNKFS_GC_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

#[test]
fn gc_discard_and_repack_racing_writers_and_readers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dev = FaultyDevice::new();
    let mkfs = MkfsOptions {
        history_window: 0,
        ..tiny_mkfs()
    };
    let meta = dir.path().join("meta.db");
    open::mkfs_on(&meta, &dev, Path::new("mem"), 256 << 20, &mkfs).unwrap();
    dev.set_discard_delay(Duration::from_millis(2));
    let opts = FsOptions {
        commit_interval: Duration::from_millis(20),
        background_gc: true,
        cache_bytes: 64 * 1024,
        ..tiny_opts()
    };
    let handle: Arc<dyn Device> = Arc::new(dev.clone());
    let fs = Arc::new(Fs::open_with(&meta, handle, opts.clone()).unwrap());
    // Background GC repacks superchunks the writers sealed moments ago, racing them.
    fs.config_set("repack-age", "0").unwrap();

    // Files that never change, checked by the reader throughout.
    let stable: Arc<Vec<(Ino, Vec<u8>)>> = Arc::new(
        (0..4)
            .map(|i| {
                let d = random_bytes(900 + i, 50_000);
                (write_file(&fs, Ino::ROOT, &format!("stable{i}"), &d), d)
            })
            .collect(),
    );
    fs.sync_all().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..3u64 {
        let fs = fs.clone();
        let b = std::thread::Builder::new().name(format!("writer{t}"));
        writers.push(
            b.spawn(move || {
                let dir = fs
                    .mkdir(Ino::ROOT, format!("w{t}").as_bytes(), 0o755, 0, 0)
                    .unwrap()
                    .ino;
                let mut kept = std::collections::BTreeMap::new();
                for n in 0..rounds() {
                    // New files, some sharing content, then overwrites and deletes, so GC has
                    // superchunks to free and to repack while new ones are sealed.
                    let seed = t * 1_000_000 + n;
                    let len = 2_000 + (seed * 7919 % 120_000) as usize;
                    let d = random_bytes(seed % 50, len);
                    let name = format!("f{}", n % 6);
                    let _ = fs.unlink(dir, name.as_bytes());
                    let ino = write_file(&fs, dir, &name, &d);
                    assert_eq!(read_file(&fs, ino), d, "writer {t} round {n}");
                    if n % 3 == 0 {
                        let h = fs.open(ino, libc::O_RDWR).unwrap();
                        fs.fsync(ino, h.fh, false).unwrap();
                        fs.release(ino, h.fh).unwrap();
                    }
                    // Reread through names: an unlinked inode is no longer reachable.
                    kept.insert(name, d);
                    for (name, want) in &kept {
                        let ino = fs.lookup(dir, name.as_bytes()).unwrap().ino;
                        assert_eq!(&read_file(&fs, ino), want, "writer {t} rereading {name}");
                    }
                }
            })
            .unwrap(),
        );
    }
    let reader = {
        let (fs, stop, stable) = (fs.clone(), stop.clone(), stable.clone());
        std::thread::Builder::new()
            .name("reader".into())
            .spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (ino, want) = &stable[(n % 4) as usize];
                    assert_eq!(&read_file(&fs, *ino), want, "stable file changed");
                    n += 1;
                }
            })
            .unwrap()
    };
    let maintenance = {
        let (fs, stop) = (fs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if n % 4 == 3 {
                    let report = fs.fsck_online(true).unwrap();
                    assert!(!report.has_errors(), "online fsck: {report:?}");
                } else {
                    fs.gc(&chunkfs::gc::Silent).unwrap();
                }
                n += 1;
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    maintenance.join().unwrap();

    fs.sync_all().unwrap();
    fs.gc(&chunkfs::gc::Silent).unwrap();
    let report = fs.fsck_online(false).unwrap();
    assert!(!report.has_errors(), "full online fsck: {report:?}");
    assert_consistent(&fs);
    let before = tree(&fs);
    Arc::into_inner(fs).unwrap().close().unwrap();

    let handle: Arc<dyn Device> = Arc::new(dev.clone());
    let fs = Fs::open_with(&meta, handle, tiny_opts()).unwrap();
    assert_eq!(tree(&fs), before, "the tree changed across a reopen");
    let report = fs.fsck_online(false).unwrap();
    assert!(!report.has_errors(), "fsck after reopen: {report:?}");
    assert_consistent(&fs);
    fs.close().unwrap();
}

/// Every path with what it holds (support::tree reads every file's content).
fn tree(fs: &Fs) -> std::collections::BTreeMap<String, (Ino, support::Found)> {
    support::tree(fs, Ino::ROOT)
}

/// getattr while another handle of the same file commits it: the size is always what was
/// written, never the committed size of the moment before (the commit took the dirty size
/// away between getattr's read of the revision and its look at the file's state).
#[test]
fn getattr_sees_every_write_while_another_handle_commits_the_file() {
    let ts = TestStore::new(64 << 20);
    let fs = Arc::new(ts.open());
    let (attr, h) = fs
        .create(Ino::ROOT, b"f", 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    let ino = attr.ino;
    let stop = Arc::new(AtomicBool::new(false));
    let syncer = {
        let (fs, stop) = (fs.clone(), stop.clone());
        std::thread::spawn(move || {
            let h = fs.open(ino, libc::O_RDWR).unwrap();
            while !stop.load(Ordering::Relaxed) {
                fs.fsync(ino, h.fh, false).unwrap();
            }
            fs.release(ino, h.fh).unwrap();
        })
    };
    let mut size = 0u64;
    for i in 0..3000u64 {
        fs.write(ino, h.fh, size, &[(i % 251) as u8 + 1; 100])
            .unwrap();
        size += 100;
        assert_eq!(fs.getattr(ino).unwrap().size, size, "after write {i}");
    }
    stop.store(true, Ordering::Relaxed);
    syncer.join().unwrap();
    fs.release(ino, h.fh).unwrap();
    Arc::into_inner(fs).unwrap().close().unwrap();
}
