//! Garbage collection through the core API: space comes back when nothing retains it, stays
//! while a snapshot or the history window does, refcounts stay exact after every batch, and
//! crashes, concurrent I/O and a full device do not lose or leak anything.

mod common;

use chunkfs::fs::{Fs, Ino};
use chunkfs::gc::{GcReport, Progress};
use chunkfs::store::device::{Device, FaultyDevice};
use common::*;
use std::sync::Arc;

/// A tiny store keeping no history window (only the current state and snapshots).
fn store(capacity: u64, window: u64) -> TestStore {
    TestStore::with_window(capacity, window)
}

/// Checks refcounts and space between every two batches of a pass.
struct Checking<'a>(&'a Fs);

impl Progress for Checking<'_> {
    fn update(&self, phase: &str, _: &GcReport) {
        let f = self.0;
        assert_eq!(
            f.check_refcounts().unwrap(),
            Vec::<String>::new(),
            "{phase}"
        );
        assert_eq!(f.check_space().unwrap(), Vec::<String>::new(), "{phase}");
    }
}

fn used(fs: &Fs) -> u64 {
    fs.stats().unwrap().device_used_bytes
}

#[test]
fn deleting_files_and_collecting_gives_their_space_back() {
    let s = store(64 << 20, 0);
    let fs = s.open();
    let base = used(&fs);
    for i in 0..8 {
        write_file(&fs, Ino::ROOT, &format!("f{i}"), &random_bytes(i, 300_000));
    }
    fs.sync_all().unwrap();
    let full = used(&fs);
    assert!(full > base + 2_000_000);
    for i in 0..8 {
        fs.unlink(Ino::ROOT, format!("f{i}").as_bytes()).unwrap();
    }
    fs.sync_all().unwrap();
    assert!(fs.stats().unwrap().reclaimable_bytes > 2_000_000);
    let r = fs.gc(&Checking(&fs)).unwrap();
    assert!(r.chunks > 0 && r.superchunks > 0, "{r:?}");
    assert!(
        used(&fs) <= base + 64 * 1024,
        "used {} after gc, {base} before",
        used(&fs)
    );
    let st = fs.stats().unwrap();
    assert_eq!(
        (st.chunks, st.stored_bytes, st.reclaimable_bytes),
        (0, 0, 0)
    );
    assert_consistent(&fs);
}

#[test]
fn a_snapshot_keeps_deleted_files_readable_and_their_space_used() {
    let s = store(64 << 20, 0);
    let fs = s.open();
    let data = random_bytes(7, 400_000);
    write_file(&fs, Ino::ROOT, "kept", &data);
    fs.sync_all().unwrap();
    fs.snapshot_create(&chunkfs::fs::Caller::root(), "before", "/")
        .unwrap();
    let full = used(&fs);
    fs.unlink(Ino::ROOT, b"kept").unwrap();
    fs.gc(&Checking(&fs)).unwrap();
    assert!(
        used(&fs) >= full - 16 * 1024,
        "the snapshot's data was freed"
    );
    // Deleting the snapshot releases it.
    fs.snapshot_delete(&chunkfs::fs::Caller::root(), "before")
        .unwrap();
    fs.gc(&Checking(&fs)).unwrap();
    assert!(used(&fs) < full / 4);
    assert_consistent(&fs);
}

#[test]
fn history_inside_the_window_is_kept() {
    let s = store(64 << 20, 3600);
    let fs = s.open();
    write_file(&fs, Ino::ROOT, "f", &random_bytes(1, 200_000));
    fs.sync_all().unwrap();
    let full = used(&fs);
    fs.unlink(Ino::ROOT, b"f").unwrap();
    let r = fs.gc(&Checking(&fs)).unwrap();
    assert_eq!(r.chunks, 0, "{r:?}");
    assert!(used(&fs) >= full);
}

#[test]
fn overwrites_free_the_old_versions_and_repack_keeps_what_is_live() {
    let s = store(64 << 20, 0);
    let fs = s.open();
    let mut want = Vec::new();
    for i in 0..6u64 {
        let d = random_bytes(100 + i, 120_000);
        write_file(&fs, Ino::ROOT, &format!("f{i}"), &d);
        want.push(d);
    }
    fs.sync_all().unwrap();
    // Overwrite the middle of every other file: old chunks die inside shared superchunks.
    for i in (0..6).step_by(2) {
        let ino = fs
            .lookup(Ino::ROOT, format!("f{i}").as_bytes())
            .unwrap()
            .ino;
        let h = fs.open(ino, libc::O_RDWR).unwrap();
        let patch = random_bytes(900 + i as u64, 60_000);
        fs.write(ino, h.fh, 30_000, &patch).unwrap();
        fs.release(ino, h.fh).unwrap();
        want[i][30_000..90_000].copy_from_slice(&patch);
    }
    fs.sync_all().unwrap();
    let r = fs.gc(&Checking(&fs)).unwrap();
    assert!(r.chunks > 0, "{r:?}");
    for (i, d) in want.iter().enumerate() {
        let ino = fs
            .lookup(Ino::ROOT, format!("f{i}").as_bytes())
            .unwrap()
            .ino;
        assert_eq!(&read_file(&fs, ino), d, "f{i}");
    }
    assert_consistent(&fs);
    drop(fs);
    let fs = s.open();
    for (i, d) in want.iter().enumerate() {
        let ino = fs
            .lookup(Ino::ROOT, format!("f{i}").as_bytes())
            .unwrap()
            .ino;
        assert_eq!(&read_file(&fs, ino), d, "f{i} after reopen");
    }
}

#[test]
fn defrag_lays_a_file_out_in_fresh_superchunks_and_it_reads_back() {
    let s = store(64 << 20, 0);
    let fs = s.open();
    // Interleave two files so each one's chunks are scattered.
    let (a, b) = (random_bytes(1, 200_000), random_bytes(2, 200_000));
    let (ia, _) = fs
        .create(Ino::ROOT, b"a", 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    let (ib, _) = fs
        .create(Ino::ROOT, b"b", 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    let (ha, hb) = (
        fs.open(ia.ino, libc::O_RDWR).unwrap(),
        fs.open(ib.ino, libc::O_RDWR).unwrap(),
    );
    for k in 0..10 {
        let r = k * 20_000..(k + 1) * 20_000;
        fs.write(ia.ino, ha.fh, r.start as u64, &a[r.clone()])
            .unwrap();
        fs.fsync(ia.ino, ha.fh, false).unwrap();
        fs.write(ib.ino, hb.fh, r.start as u64, &b[r.clone()])
            .unwrap();
        fs.fsync(ib.ino, hb.fh, false).unwrap();
    }
    fs.release(ia.ino, ha.fh).unwrap();
    fs.release(ib.ino, hb.fh).unwrap();
    let calls = std::sync::Mutex::new(Vec::new());
    let r = fs
        .defrag(ia.ino, &|d, t| calls.lock().unwrap().push((d, t)))
        .unwrap();
    assert!(r.bytes_repacked > 150_000, "{r:?}");
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.last().map(|c| c.0), calls.last().map(|c| c.1));
    assert_eq!(read_file(&fs, ia.ino), a);
    assert_eq!(read_file(&fs, ib.ino), b);
    fs.gc(&Checking(&fs)).unwrap();
    assert_eq!(read_file(&fs, ib.ino), b);
    assert_consistent(&fs);
}

#[test]
fn a_full_device_has_room_again_after_deleting_and_collecting() {
    let s = store(2 << 20, 0);
    let fs = s.open();
    let mut written = Vec::new();
    let mut full = false;
    for i in 0..100u64 {
        let d = random_bytes(i, 100_000);
        let (attr, h) = fs
            .create(
                Ino::ROOT,
                format!("f{i}").as_bytes(),
                0o644,
                libc::O_RDWR,
                0,
                0,
            )
            .unwrap();
        let w = fs
            .write(attr.ino, h.fh, 0, &d)
            .and_then(|_| fs.fsync(attr.ino, h.fh, false));
        let rel = fs.release(attr.ino, h.fh);
        match w.and(rel) {
            Ok(()) => written.push((attr.ino, d)),
            Err(e) => {
                assert_eq!(e.errno(), libc::ENOSPC, "{e}");
                let _ = fs.unlink(Ino::ROOT, format!("f{i}").as_bytes());
                full = true;
                break;
            }
        }
    }
    assert!(full, "the device never filled");
    for (ino, d) in &written {
        assert_eq!(
            &read_file(&fs, *ino),
            d,
            "an earlier file was damaged by ENOSPC"
        );
    }
    for (i, _) in written.iter().enumerate().take(written.len() / 2 + 1) {
        fs.unlink(Ino::ROOT, format!("f{i}").as_bytes()).unwrap();
    }
    let r = fs.gc(&Checking(&fs)).unwrap();
    assert!(r.bytes_freed > 500_000, "{r:?}");
    let d = random_bytes(555, 100_000);
    let ino = write_file(&fs, Ino::ROOT, "after", &d);
    fs.sync_all().unwrap();
    assert_eq!(read_file(&fs, ino), d);
    assert_consistent(&fs);
}

#[test]
fn reads_and_writes_stay_exact_while_gc_runs() {
    let s = store(256 << 20, 0);
    let fs = Arc::new(s.open());
    let stable: Vec<(Ino, Vec<u8>)> = (0..4)
        .map(|i| {
            let d = random_bytes(50 + i, 150_000);
            (write_file(&fs, Ino::ROOT, &format!("s{i}"), &d), d)
        })
        .collect();
    fs.sync_all().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rounds: Arc<[std::sync::atomic::AtomicU64; 2]> = Arc::new(Default::default());
    let mut threads = Vec::new();
    for t in 0..2u64 {
        let (fs, stop, stable, rounds) = (fs.clone(), stop.clone(), stable.clone(), rounds.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Churn: write, overwrite and delete files so GC has work.
                let name = format!("churn{t}-{}", n % 3);
                let d = random_bytes(t * 1000 + n, 60_000);
                let _ = fs.unlink(Ino::ROOT, name.as_bytes());
                let ino = write_file(&fs, Ino::ROOT, &name, &d);
                assert_eq!(read_file(&fs, ino), d);
                let (ino, want) = &stable[(n % 4) as usize];
                assert_eq!(&read_file(&fs, *ino), want);
                n += 1;
                rounds[t as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            n
        }));
    }
    // At least 15 passes, and on until both threads have done real work beside them (the
    // scheduler owes no thread a turn by any deadline).
    let mut passes = 0;
    while passes < 15
        || (rounds
            .iter()
            .any(|r| r.load(std::sync::atomic::Ordering::Relaxed) < 3)
            && passes < 10_000)
    {
        fs.gc(&chunkfs::gc::Silent).unwrap();
        passes += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        assert!(t.join().unwrap() > 0);
    }
    fs.sync_all().unwrap();
    fs.gc(&Checking(&fs)).unwrap();
    for (ino, d) in &stable {
        assert_eq!(&read_file(&fs, *ino), d);
    }
    assert_consistent(&fs);
}

/// Copy a store's database as a power cut would leave it (the last commit) beside a device
/// image, and open it.
fn reopen_crashed(s: &TestStore, image: Vec<u8>) -> (tempfile::TempDir, Fs) {
    let dir = tempfile::tempdir().unwrap();
    for f in ["meta.db", "meta.db-wal"] {
        let from = s.dir.path().join(f);
        if from.exists() {
            std::fs::copy(&from, dir.path().join(f)).unwrap();
        }
    }
    let dev: Arc<dyn Device> = Arc::new(FaultyDevice::from_bytes(image));
    let fs = Fs::open_with(&dir.path().join("meta.db"), dev, tiny_opts()).unwrap();
    (dir, fs)
}

#[test]
fn a_crash_at_any_device_step_of_gc_loses_nothing_referenced_and_leaks_nothing() {
    // Count the device writes and syncs a pass makes, then fail each one in turn.
    let setup = || {
        let s = store(64 << 20, 0);
        let fs = s.open();
        let mut keep = Vec::new();
        for i in 0..6u64 {
            let d = random_bytes(i, 80_000);
            let ino = write_file(&fs, Ino::ROOT, &format!("f{i}"), &d);
            if i % 2 == 0 {
                keep.push((format!("f{i}"), d));
            } else {
                let _ = ino;
            }
        }
        fs.sync_all().unwrap();
        for i in (1..6).step_by(2) {
            fs.unlink(Ino::ROOT, format!("f{i}").as_bytes()).unwrap();
        }
        // Overwrite part of a kept file so repacking has live chunks to move.
        let ino = fs.lookup(Ino::ROOT, b"f0").unwrap().ino;
        let h = fs.open(ino, libc::O_RDWR).unwrap();
        fs.write(ino, h.fh, 0, &random_bytes(99, 50_000)).unwrap();
        fs.release(ino, h.fh).unwrap();
        keep[0].1[..50_000].copy_from_slice(&random_bytes(99, 50_000));
        fs.sync_all().unwrap();
        (s, fs, keep)
    };
    let (s, fs, _) = setup();
    let (w0, y0) = (s.dev.writes(), s.dev.syncs());
    let r = fs.gc(&chunkfs::gc::Silent).unwrap();
    let (writes, syncs) = (s.dev.writes() - w0, s.dev.syncs() - y0);
    assert!(r.superchunks_repacked > 0 || r.superchunks > 0, "{r:?}");
    drop(fs);
    let points: Vec<(bool, u64)> = (0..writes)
        .map(|n| (true, n))
        .chain((0..syncs).map(|n| (false, n)))
        .collect();
    for (write, n) in points {
        let (s, fs, keep) = setup();
        if write {
            s.dev.fail_write_after(n);
        } else {
            s.dev.fail_sync_after(n);
        }
        let _ = fs.gc(&chunkfs::gc::Silent);
        let image = s.dev.crash_image();
        drop(fs);
        let (_d, fs) = reopen_crashed(&s, image);
        assert_consistent(&fs);
        for (name, d) in &keep {
            let ino = fs.lookup(Ino::ROOT, name.as_bytes()).unwrap().ino;
            assert_eq!(
                &read_file(&fs, ino),
                d,
                "{name} after a crash at write={write} n={n}"
            );
        }
        // What the interrupted pass left is collected by the next one.
        fs.gc(&Checking(&fs)).unwrap();
        let st = fs.stats().unwrap();
        assert_eq!(st.reclaimable_bytes, 0, "write={write} n={n}");
        for (name, d) in &keep {
            let ino = fs.lookup(Ino::ROOT, name.as_bytes()).unwrap().ino;
            assert_eq!(&read_file(&fs, ino), d);
        }
    }
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Write { file: u8, seed: u64, len: usize },
        Patch { file: u8, seed: u64, at: usize },
        Delete { file: u8 },
        Snapshot { name: u8 },
        DropSnapshot { name: u8 },
        Gc,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..4u8, any::<u64>(), 0..40_000usize)
                .prop_map(|(file, seed, len)| Op::Write { file, seed, len }),
            2 => (0..4u8, any::<u64>(), 0..30_000usize)
                .prop_map(|(file, seed, at)| Op::Patch { file, seed, at }),
            2 => (0..4u8).prop_map(|file| Op::Delete { file }),
            1 => (0..2u8).prop_map(|name| Op::Snapshot { name }),
            1 => (0..2u8).prop_map(|name| Op::DropSnapshot { name }),
            2 => Just(Op::Gc),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Refcounts counted from scratch and the space map equal the stored ones after every
        /// GC batch, and every file reads back as the model says, whatever the interleaving.
        #[test]
        fn refcounts_and_space_stay_exact_through_random_operations_and_gc(
            ops in proptest::collection::vec(op(), 1..25)
        ) {
            let s = store(64 << 20, 0);
            let fs = s.open();
            let mut files: std::collections::HashMap<u8, Vec<u8>> = Default::default();
            for op in ops {
                match op {
                    Op::Write { file, seed, len } => {
                        let name = format!("f{file}");
                        let _ = fs.unlink(Ino::ROOT, name.as_bytes());
                        let d = random_bytes(seed, len);
                        write_file(&fs, Ino::ROOT, &name, &d);
                        files.insert(file, d);
                    }
                    Op::Patch { file, seed, at } => {
                        let Some(d) = files.get_mut(&file) else { continue };
                        let ino = fs.lookup(Ino::ROOT, format!("f{file}").as_bytes()).unwrap().ino;
                        let h = fs.open(ino, libc::O_RDWR).unwrap();
                        let p = random_bytes(seed, 5000);
                        fs.write(ino, h.fh, at as u64, &p).unwrap();
                        fs.release(ino, h.fh).unwrap();
                        if d.len() < at + p.len() {
                            d.resize(at + p.len(), 0);
                        }
                        d[at..at + p.len()].copy_from_slice(&p);
                    }
                    Op::Delete { file } => {
                        if files.remove(&file).is_some() {
                            fs.unlink(Ino::ROOT, format!("f{file}").as_bytes()).unwrap();
                        }
                    }
                    Op::Snapshot { name } => {
                        let _ = fs.snapshot_create(&chunkfs::fs::Caller::root(), &format!("s{name}"), "/");
                    }
                    Op::DropSnapshot { name } => {
                        let _ = fs.snapshot_delete(&chunkfs::fs::Caller::root(), &format!("s{name}"));
                    }
                    Op::Gc => {
                        fs.gc(&Checking(&fs)).unwrap();
                    }
                }
            }
            fs.gc(&Checking(&fs)).unwrap();
            for (file, d) in &files {
                let ino = fs.lookup(Ino::ROOT, format!("f{file}").as_bytes()).unwrap().ino;
                prop_assert_eq!(&read_file(&fs, ino), d);
            }
            assert_consistent(&fs);
        }
    }
}
