//! Hostile use of server-side copy (`Fs::copy_range`) through the core API: copies racing each
//! other, writers, truncation and GC; sources that are unlinked or views whose chunks are gone;
//! a store too full for the seams; offsets at the i64 limit; and the accounting afterwards
//! (refcounts exact, everything reclaimed once every file is gone). Tiny chunks (1 KiB).

mod common;
mod support;

use chunkfs::fs::{Caller, Fh, Fs, Ino};
use common::*;
use std::sync::Arc;
use support::*;

/// fsck, refcounts and space all clean.
fn assert_clean(fs: &Fs) {
    assert_consistent(fs);
    let r = fs.fsck_online(false).unwrap();
    assert!(!r.has_errors(), "{r:#?}");
}

/// With no history window, once every file is gone GC leaves no chunk and no stored byte.
fn assert_all_reclaimed(fs: &Fs) {
    fs.gc(&chunkfs::gc::Silent).unwrap();
    fs.gc(&chunkfs::gc::Silent).unwrap();
    let st = fs.stats().unwrap();
    assert_eq!((st.chunks, st.stored_bytes), (0, 0), "{st:?}");
    assert_clean(fs);
}

/// A deterministic pseudo-random stream for the threads.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn opposite_copies_writes_truncates_and_gc_in_threads_deadlock_nowhere_and_leak_nothing() {
    let ts = TestStore::with_window(256 << 20, 0);
    let fs = Arc::new(ts.open());
    let a = create(&fs, "a");
    let b = create(&fs, "b");
    fs.write(a.0, a.1, 0, &random_bytes(1, 300_000)).unwrap();
    fs.write(b.0, b.1, 0, &random_bytes(2, 200_000)).unwrap();
    let mut threads = Vec::new();
    // a -> b and b -> a at once, each with its own handles (and the ones above).
    for (seed, from, to) in [(11, a, b), (12, b, a)] {
        let fs = fs.clone();
        threads.push(std::thread::spawn(move || {
            let mut r = Rng(seed);
            for _ in 0..300 {
                let (oi, oo, n) = (r.below(400_000), r.below(400_000), r.below(150_000));
                fs.copy_range(from.0, from.1, oi, to.0, to.1, oo, n)
                    .unwrap();
            }
        }));
    }
    // Within each file too.
    for (seed, f) in [(21, a), (22, b)] {
        let fs = fs.clone();
        threads.push(std::thread::spawn(move || {
            let mut r = Rng(seed);
            for _ in 0..200 {
                let (oi, n) = (r.below(300_000), r.below(50_000));
                let oo = oi + n + r.below(100_000);
                match fs.copy_range(f.0, f.1, oi, f.0, f.1, oo, n) {
                    Ok(_) => {}
                    // The file may have shrunk under us, making the ranges overlap? No: they
                    // never overlap by construction; any error is a defect.
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    // Writers, truncation, punching.
    for (seed, f) in [(31, a), (32, b)] {
        let fs = fs.clone();
        threads.push(std::thread::spawn(move || {
            let mut r = Rng(seed);
            for i in 0..300 {
                match r.below(4) {
                    0 => {
                        let d = random_bytes(i, r.below(20_000) as usize + 1);
                        fs.write(f.0, f.1, r.below(400_000), &d).unwrap();
                    }
                    1 => {
                        let set = chunkfs::fs::SetAttr {
                            size: Some(r.below(400_000)),
                            ..Default::default()
                        };
                        fs.setattr(f.0, &set).unwrap();
                    }
                    2 => fs
                        .fallocate(
                            f.0,
                            f.1,
                            r.below(400_000),
                            r.below(50_000) + 1,
                            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        )
                        .unwrap(),
                    _ => fs.fsync(f.0, f.1, false).unwrap(),
                }
            }
        }));
    }
    {
        let fs = fs.clone();
        threads.push(std::thread::spawn(move || {
            for _ in 0..30 {
                fs.gc(&chunkfs::gc::Silent).unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    fs.release(a.0, a.1).unwrap();
    fs.release(b.0, b.1).unwrap();
    // Both files read whole (every chunk they reference is there).
    read_file(&fs, a.0);
    read_file(&fs, b.0);
    assert_clean(&fs);
    fs.unlink(Ino::ROOT, b"a").unwrap();
    fs.unlink(Ino::ROOT, b"b").unwrap();
    assert_all_reclaimed(&fs);
}

#[test]
fn an_unlinked_open_source_copies_after_gc() {
    let ts = TestStore::with_window(64 << 20, 0);
    let fs = ts.open();
    let data = random_bytes(3, 400_000);
    let src = create(&fs, "src");
    fs.write(src.0, src.1, 0, &data).unwrap();
    fs.unlink(Ino::ROOT, b"src").unwrap();
    fs.gc(&chunkfs::gc::Silent).unwrap();
    let dst = create(&fs, "dst");
    assert_eq!(copy(&fs, src, 777, dst, 0, 1 << 30), 400_000 - 777);
    fs.release(src.0, src.1).unwrap();
    fs.release(dst.0, dst.1).unwrap();
    fs.gc(&chunkfs::gc::Silent).unwrap();
    assert!(read_file(&fs, dst.0) == data[777..]);
    assert_clean(&fs);
    fs.unlink(Ino::ROOT, b"dst").unwrap();
    assert_all_reclaimed(&fs);
}

#[test]
fn a_copy_into_an_unlinked_open_destination_is_reclaimed_at_its_close() {
    let ts = TestStore::with_window(64 << 20, 0);
    let fs = ts.open();
    let data = random_bytes(4, 300_000);
    let src = create(&fs, "src");
    fs.write(src.0, src.1, 0, &data).unwrap();
    let dst = create(&fs, "dst");
    fs.unlink(Ino::ROOT, b"dst").unwrap();
    assert_eq!(copy(&fs, src, 5, dst, 3, 200_000), 200_000);
    let h = fs.read(dst.0, dst.1, 0, 300_000).unwrap();
    let mut m = vec![0u8; 3];
    m.extend_from_slice(&data[5..200_005]);
    assert!(h == m);
    fs.release(dst.0, dst.1).unwrap();
    fs.release(src.0, src.1).unwrap();
    fs.unlink(Ino::ROOT, b"src").unwrap();
    assert_all_reclaimed(&fs);
}

#[test]
fn a_view_whose_chunks_gc_took_is_refused_as_a_source_and_nothing_changes() {
    let ts = TestStore::with_window(64 << 20, 0);
    let fs = ts.open();
    let root = Caller::root();
    let old = random_bytes(5, 200_000);
    write_file(&fs, Ino::ROOT, "f", &old);
    fs.snapshot_create(&root, "s", "/").unwrap();
    let view = resolve(&fs, "/.chunkfs/snapshots/s/f").unwrap();
    let vh = fs.open(view, libc::O_RDONLY).unwrap().fh;
    // The snapshot goes, the file is rewritten: with no window, GC takes the old chunks.
    fs.snapshot_delete(&root, "s").unwrap();
    let f = resolve(&fs, "f").unwrap();
    fs.unlink(Ino::ROOT, b"f").unwrap();
    let _ = f;
    fs.gc(&chunkfs::gc::Silent).unwrap();
    let keep = random_bytes(6, 100_000);
    let dst = create(&fs, "dst");
    fs.write(dst.0, dst.1, 0, &keep).unwrap();
    fs.fsync(dst.0, dst.1, false).unwrap();
    // Whole chunks only (aligned at both ends would need knowing the cuts): a large range.
    let r = fs.copy_range(view, vh, 0, dst.0, dst.1, 0, 200_000);
    assert!(r.is_err(), "copied {r:?} from chunks that are gone");
    fs.release(view, vh).unwrap();
    fs.release(dst.0, dst.1).unwrap();
    assert!(read_file(&fs, dst.0) == keep);
    assert_clean(&fs);
    fs.unlink(Ino::ROOT, b"dst").unwrap();
    assert_all_reclaimed(&fs);
}

#[test]
fn a_view_copied_from_keeps_its_chunks_once_the_snapshot_is_gone() {
    let ts = TestStore::with_window(64 << 20, 0);
    let fs = ts.open();
    let root = Caller::root();
    let old = random_bytes(7, 250_000);
    write_file(&fs, Ino::ROOT, "f", &old);
    fs.snapshot_create(&root, "s", "/").unwrap();
    fs.unlink(Ino::ROOT, b"f").unwrap();
    let view = resolve(&fs, "/.chunkfs/snapshots/s/f").unwrap();
    let vh = fs.open(view, libc::O_RDONLY).unwrap().fh;
    let dst = create(&fs, "dst");
    let mut at = 0;
    while at < old.len() as u64 {
        at += copy(&fs, (view, vh), at, dst, at, 33_333);
    }
    fs.release(view, vh).unwrap();
    fs.release(dst.0, dst.1).unwrap();
    fs.snapshot_delete(&root, "s").unwrap();
    fs.gc(&chunkfs::gc::Silent).unwrap();
    assert!(read_file(&fs, dst.0) == old);
    assert_clean(&fs);
    fs.unlink(Ino::ROOT, b"dst").unwrap();
    assert_all_reclaimed(&fs);
}

#[test]
fn offsets_at_the_i64_limit() {
    // Not `Env`: its final check would read the huge file whole.
    let ts = TestStore::new(64 << 20);
    let fs = ts.open();
    let data = random_bytes(8, 5000);
    let src = create(&fs, "src");
    let dst = create(&fs, "dst");
    fs.write(src.0, src.1, 0, &data).unwrap();
    let max = i64::MAX as u64;
    // Past the limit: EFBIG, nothing changes.
    assert_eq!(
        errno(fs.copy_range(src.0, src.1, 0, dst.0, dst.1, max - 10, 100)),
        libc::EFBIG
    );
    assert_eq!(fs.getattr(dst.0).unwrap().size, 0);
    // Up to it exactly.
    assert_eq!(copy(&fs, src, 0, dst, max - 100, 100), 100);
    assert_eq!(fs.getattr(dst.0).unwrap().size, max);
    assert!(fs.read(dst.0, dst.1, max - 100, 100).unwrap() == data[..100]);
    assert!(fs.read(dst.0, dst.1, max - 200, 100).unwrap() == [0u8; 100]);
    // A length of everything is the bytes there are.
    let d2 = create(&fs, "d2");
    assert_eq!(copy(&fs, src, 1, d2, 0, u64::MAX), 4999);
    // Copying the huge file's tail within itself, and to its start.
    assert_eq!(copy(&fs, dst, max - 100, dst, 7, 100), 100);
    assert!(fs.read(dst.0, dst.1, 7, 100).unwrap() == data[..100]);
    // From the huge file to another: the hole stays a hole.
    let d3 = create(&fs, "d3");
    assert_eq!(copy(&fs, dst, max - 1000, d3, 0, 1000), 1000);
    let mut m = vec![0u8; 900];
    m.extend_from_slice(&data[..100]);
    assert!(fs.read(d3.0, d3.1, 0, 2000).unwrap() == m);
    for f in [src, dst, d2, d3] {
        fs.release(f.0, f.1).unwrap();
    }
    assert_clean(&fs);
}

/// Outside copy: `stats` summed the sizes of files with SQLite's integer SUM, which failed once
/// two files together passed i64::MAX bytes (each may be that large); now it saturates.
#[test]
fn stats_of_two_files_at_the_size_limit() {
    let ts = TestStore::new(64 << 20);
    let fs = ts.open();
    for n in ["a", "b"] {
        let f = create(&fs, n);
        let set = chunkfs::fs::SetAttr {
            size: Some(i64::MAX as u64),
            ..Default::default()
        };
        fs.setattr(f.0, &set).unwrap();
        fs.release(f.0, f.1).unwrap();
    }
    let st = fs.stats().unwrap();
    assert_eq!(st.files, 2);
    assert!(st.logical_bytes >= i64::MAX as u64, "{st:?}");
}

#[test]
fn a_copy_the_store_has_no_room_for_fails_cleanly() {
    let ts = TestStore::with_window(2 << 20, 0);
    let fs = ts.open();
    let keep = random_bytes(9, 30_000);
    let dst = create(&fs, "dst");
    fs.write(dst.0, dst.1, 0, &keep).unwrap();
    fs.fsync(dst.0, dst.1, false).unwrap();
    // Fill the store with incompressible data until it refuses more.
    let src = create(&fs, "src");
    let mut size = 0u64;
    for i in 0.. {
        let d = random_bytes(100 + i, 64 * 1024);
        if fs.write(src.0, src.1, size, &d).is_err() || fs.fsync(src.0, src.1, false).is_err() {
            break;
        }
        size += d.len() as u64;
    }
    // What was written but could not commit is cut off again.
    let set = chunkfs::fs::SetAttr {
        size: Some(size),
        ..Default::default()
    };
    fs.setattr(src.0, &set).unwrap();
    assert!(size > 100_000, "{size}");
    assert!(read_file(&fs, dst.0) == keep);
    // Seams at odd offsets everywhere: each call needs new chunks.
    let mut failures = 0;
    for k in 0..40u64 {
        let (oi, oo, n) = (k * 1237 + 3, k * 997 + 1, 5_001 + k * 31);
        let now = read_file(&fs, dst.0);
        match fs.copy_range(src.0, src.1, oi, dst.0, dst.1, oo, n) {
            Ok(c) => {
                let mut m = now.clone();
                let end = (oo + c) as usize;
                if m.len() < end {
                    m.resize(end, 0);
                }
                let sb = fs.read(src.0, src.1, oi, c as u32).unwrap();
                m[oo as usize..end].copy_from_slice(&sb);
                assert!(read_file(&fs, dst.0) == m, "call {k}");
            }
            Err(e) => {
                assert_eq!(e.errno(), libc::ENOSPC, "{e}");
                failures += 1;
                assert!(
                    read_file(&fs, dst.0) == now,
                    "a failed copy changed the file"
                );
            }
        }
    }
    assert!(failures > 0, "the store never ran out of room");
    fs.release(src.0, src.1).unwrap();
    fs.release(dst.0, dst.1).unwrap();
    assert_clean(&fs);
    fs.unlink(Ino::ROOT, b"src").unwrap();
    fs.unlink(Ino::ROOT, b"dst").unwrap();
    assert_all_reclaimed(&fs);
}

#[test]
fn odd_copies_between_three_files_and_a_view_leave_exact_refcounts_and_reclaim_to_zero() {
    let ts = TestStore::with_window(64 << 20, 0);
    let fs = ts.open();
    let root = Caller::root();
    let files: Vec<(Ino, Fh)> = ["x", "y", "z"].iter().map(|n| create(&fs, n)).collect();
    let mut model: Vec<Vec<u8>> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let mut d = random_bytes(40 + i as u64, 150_000 + i * 10_000);
        // A hole and a run of zeros inside.
        d[20_000..60_000].fill(0);
        fs.write(f.0, f.1, 0, &d).unwrap();
        fs.fallocate(
            f.0,
            f.1,
            90_000,
            7_000,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        )
        .unwrap();
        d[90_000..97_000].fill(0);
        model.push(d);
    }
    fs.snapshot_create(&root, "s", "/").unwrap();
    let view = resolve(&fs, "/.chunkfs/snapshots/s/y").unwrap();
    let vh = fs.open(view, libc::O_RDONLY).unwrap().fh;
    let snap_y = model[1].clone();
    let mut r = Rng(99);
    for step in 0..200 {
        let (i, j) = (r.below(4) as usize, r.below(3) as usize);
        let (oi, oo, n) = (r.below(250_000), r.below(250_000), r.below(120_000));
        let (from, src): ((Ino, Fh), Vec<u8>) = if i == 3 {
            ((view, vh), snap_y.clone())
        } else {
            (files[i], model[i].clone())
        };
        let res = fs.copy_range(from.0, from.1, oi, files[j].0, files[j].1, oo, n);
        let avail = (src.len() as u64).saturating_sub(oi).min(n);
        if i == j && avail > 0 && oi < oo + avail && oo < oi + avail {
            assert_eq!(errno(res), libc::EINVAL);
            continue;
        }
        let c = res.unwrap();
        assert_eq!(c, avail, "step {step}");
        if c > 0 {
            let m = &mut model[j];
            let end = (oo + c) as usize;
            if m.len() < end {
                m.resize(end, 0);
            }
            m[oo as usize..end].copy_from_slice(&src[oi as usize..(oi + c) as usize]);
        }
        if step % 50 == 0 {
            fs.gc(&chunkfs::gc::Silent).unwrap();
        }
    }
    fs.release(view, vh).unwrap();
    for (k, f) in files.iter().enumerate() {
        fs.release(f.0, f.1).unwrap();
        assert!(read_file(&fs, f.0) == model[k], "file {k}");
    }
    assert_clean(&fs);
    fs.snapshot_delete(&root, "s").unwrap();
    for n in ["x", "y", "z"] {
        fs.unlink(Ino::ROOT, n.as_bytes()).unwrap();
    }
    assert_all_reclaimed(&fs);
}

/// A copy racing a revert of its source while GC runs in the background with no history
/// window: the revert replaces the source's list without the source's lock (it reloads the
/// state afterwards, waiting for the lock), so the chunks the copy took from it could be swept
/// before it pins them. The revert marks what it changed until the states are reloaded
/// (`Core::mark_reverted`), and a copy or commit that finds its file marked answers ESTALE.
/// What must not happen: the store failing (a copy referencing a chunk that is gone poisons
/// the core) or a list naming a missing chunk.
#[test]
#[ignore = "a stress run (minutes), for hunting the revert race by hand"]
fn copies_racing_reverts_of_their_source_under_background_gc() {
    let ts = TestStore::with_window(256 << 20, 0);
    let fs = Arc::new(ts.open_with(chunkfs::fs::FsOptions {
        background_gc: true,
        commit_interval: std::time::Duration::from_millis(1),
        ..tiny_opts()
    }));
    let root = Caller::root();
    write_file(&fs, Ino::ROOT, "a", &random_bytes(50, 400_000));
    fs.snapshot_create(&root, "s", "/").unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let copier = {
        let (fs, stop) = (fs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut r = Rng(5);
            let b = create(&fs, "b");
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let a = resolve(&fs, "a").unwrap();
                let h = fs.open(a, libc::O_RDONLY).unwrap().fh;
                for _ in 0..20 {
                    match fs.copy_range(a, h, r.below(1000), b.0, b.1, r.below(1000), 1 << 20) {
                        Ok(_) => n += 1,
                        Err(e) if e.errno() == libc::ESTALE => break,
                        Err(e) => panic!("copy: {e} after {n} copies"),
                    }
                }
                let _ = fs.release(a, h);
            }
            fs.release(b.0, b.1).unwrap();
            n
        })
    };
    for i in 0..400u64 {
        let a = resolve(&fs, "a").unwrap();
        let h = fs.open(a, libc::O_RDWR).unwrap().fh;
        fs.write(a, h, 0, &random_bytes(1000 + i, 400_000)).unwrap();
        let _ = fs.release(a, h);
        let to = fs.snapshot_seq(&root, "s").unwrap();
        fs.revert(&root, "/a", to).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = copier.join().unwrap();
    assert!(n > 0);
    assert_clean(&fs);
}

#[test]
fn views_and_a_read_only_store_refuse_to_be_copied_into() {
    let ts = TestStore::new(64 << 20);
    let data = random_bytes(60, 50_000);
    {
        let fs = ts.open();
        let root = Caller::root();
        write_file(&fs, Ino::ROOT, "f", &data);
        write_file(&fs, Ino::ROOT, "g", b"g");
        fs.snapshot_create(&root, "s", "/").unwrap();
        let f = resolve(&fs, "f").unwrap();
        let fh = fs.open(f, libc::O_RDONLY).unwrap().fh;
        let view = resolve(&fs, "/.chunkfs/snapshots/s/g").unwrap();
        let vh = fs.open(view, libc::O_RDONLY).unwrap().fh;
        assert_eq!(
            errno(fs.copy_range(f, fh, 0, view, vh, 0, 100)),
            libc::EROFS
        );
        // A view into itself too.
        assert_eq!(
            errno(fs.copy_range(view, vh, 0, view, vh, 10, 1)),
            libc::EROFS
        );
        fs.release(view, vh).unwrap();
        fs.release(f, fh).unwrap();
        fs.close().unwrap();
    }
    let fs = ts.open_with(chunkfs::fs::FsOptions {
        read_only: true,
        ..tiny_opts()
    });
    let f = resolve(&fs, "f").unwrap();
    let g = resolve(&fs, "g").unwrap();
    let fh = fs.open(f, libc::O_RDONLY).unwrap().fh;
    // No handle for writing can be had; the copy itself refuses too.
    assert_eq!(errno(fs.open(g, libc::O_RDWR)), libc::EROFS);
    let gh = fs.open(g, libc::O_RDONLY).unwrap().fh;
    assert!(fs.copy_range(f, fh, 0, g, gh, 0, 100).is_err());
    fs.release(f, fh).unwrap();
    fs.release(g, gh).unwrap();
    assert!(read_file(&fs, g) == b"g");
}

/// A handle opened before a revert of its file is stale: reading through it is ESTALE, and so
/// is copying from it, also into the same file through a fresh handle.
#[test]
fn a_stale_handle_cannot_be_copied_from_even_within_its_file() {
    let fs = Env::new();
    let root = Caller::root();
    let old = random_bytes(70, 100_000);
    write_file(&fs, Ino::ROOT, "f", &old);
    fs.snapshot_create(&root, "s", "/").unwrap();
    let f = resolve(&fs, "f").unwrap();
    let stale = fs.open(f, libc::O_RDWR).unwrap().fh;
    fs.write(f, stale, 0, &random_bytes(71, 100_000)).unwrap();
    fs.fsync(f, stale, false).unwrap();
    let to = fs.snapshot_seq(&root, "s").unwrap();
    fs.revert(&root, "/f", to).unwrap();
    assert_eq!(errno(fs.read(f, stale, 0, 10)), libc::ESTALE);
    let fresh = fs.open(f, libc::O_RDWR).unwrap().fh;
    let other = create(&fs, "other");
    assert_eq!(
        errno(fs.copy_range(f, stale, 0, other.0, other.1, 0, 1000)),
        libc::ESTALE
    );
    assert_eq!(
        errno(fs.copy_range(f, stale, 0, f, fresh, 50_000, 1000)),
        libc::ESTALE
    );
    assert_eq!(
        errno(fs.copy_range(f, fresh, 0, f, stale, 50_000, 1000)),
        libc::ESTALE
    );
    assert!(read_file(&fs, f) == old);
    let _ = fs.release(f, stale);
    fs.release(f, fresh).unwrap();
    fs.release(other.0, other.1).unwrap();
}
