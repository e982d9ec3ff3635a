//! Server-side copy through a real mount: `copy_file_range(2)`, which coreutils' `cp` (and
//! Rust's `std::fs::copy`) use by default, shares the source's chunks instead of reading the
//! bytes out and writing them back. 1 GiB as the issue asks; CHUNKFS_COPY_MIB=N to change it.

mod mount_common;

use mount_common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn mib() -> u64 {
    std::env::var("CHUNKFS_COPY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn count(counts: &Value, what: &str) -> u64 {
    counts.get(what).and_then(Value::as_u64).unwrap_or(0)
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

fn same(a: &Path, b: &Path) -> bool {
    sh(&format!("cmp {} {}", q(a), q(b))).status.success()
}

fn fsck_clean(m: &Mounted) {
    let o = chunkfs(&["fsck".as_ref(), m.mnt.as_os_str()]);
    assert!(
        o.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

#[test]
fn cp_of_a_large_file_inside_the_mount_stores_no_new_chunk_data() {
    let Some(m) = Mounted::new() else { return };
    let (big, copy) = (m.path("big"), m.path("big-copy"));
    sh(&format!(
        "head -c {}M /dev/urandom > {} && sync -f {}",
        mib(),
        q(&big),
        q(&big)
    ));
    let before = m.stats();
    let counts0 = m.request_counts();
    // coreutils' cp with its default options.
    let o = sh(&format!(
        "cp {} {} && sync -f {}",
        q(&big),
        q(&copy),
        q(&copy)
    ));
    assert!(o.status.success(), "cp: {}", stderr(&o));
    let counts1 = m.request_counts();
    let after = m.stats();
    eprintln!(
        "{} MiB: stored {} -> {}, chunks {} -> {}; copy_file_range {}, write {}, read {}",
        mib(),
        before["stored_bytes"],
        after["stored_bytes"],
        before["chunks"],
        after["chunks"],
        count(&counts1, "copy_file_range") - count(&counts0, "copy_file_range"),
        count(&counts1, "write") - count(&counts0, "write"),
        count(&counts1, "read") - count(&counts0, "read"),
    );
    assert!(count(&counts1, "copy_file_range") > count(&counts0, "copy_file_range"));
    // The one write is the conduit request that read `counts1`: cp wrote nothing.
    assert_eq!(count(&counts1, "write"), count(&counts0, "write") + 1);
    assert_eq!(after["stored_bytes"], before["stored_bytes"]);
    assert_eq!(after["chunks"], before["chunks"]);
    assert_eq!(
        fs::metadata(&copy).unwrap().len(),
        fs::metadata(&big).unwrap().len()
    );
    assert!(same(&big, &copy), "the copy differs");

    // Independent afterwards: a write to either does not show in the other.
    let original = {
        let mut b = vec![0u8; 4096];
        fs::File::open(&big)
            .unwrap()
            .read_exact_at(&mut b, 1 << 20)
            .unwrap();
        b
    };
    let w = fs::OpenOptions::new().write(true).open(&copy).unwrap();
    w.write_all_at(b"written to the copy", 1 << 20).unwrap();
    w.sync_all().unwrap();
    let w = fs::OpenOptions::new().write(true).open(&big).unwrap();
    w.write_all_at(b"written to the source", 5 << 20).unwrap();
    w.sync_all().unwrap();
    let mut b = vec![0u8; 4096];
    fs::File::open(&big)
        .unwrap()
        .read_exact_at(&mut b, 1 << 20)
        .unwrap();
    assert!(b == original, "a write to the copy shows in the source");
    let mut c = vec![0u8; 21];
    fs::File::open(&copy)
        .unwrap()
        .read_exact_at(&mut c, 5 << 20)
        .unwrap();
    assert_ne!(&c[..], b"written to the source");
    fs::File::open(&copy)
        .unwrap()
        .read_exact_at(&mut c[..19], 1 << 20)
        .unwrap();
    assert_eq!(&c[..19], b"written to the copy");
    fsck_clean(&m);
}

#[test]
fn a_file_of_a_snapshot_view_copies_into_the_live_tree_sharing_its_chunks() {
    let Some(m) = Mounted::new() else { return };
    let f = m.path("f");
    sh(&format!(
        "head -c 20M /dev/urandom > {} && sync -f {}",
        q(&f),
        q(&f)
    ));
    let old = fs::read(&f).unwrap();
    m.snapshot("s");
    let w = fs::OpenOptions::new().write(true).open(&f).unwrap();
    w.write_all_at(b"changed since", 0).unwrap();
    // fsync: the new chunk is in the index before the count (a commit nobody waited for
    // might land between the two counts otherwise).
    w.sync_all().unwrap();
    drop(w);
    let before = m.stats();
    let counts0 = m.request_counts();
    let back = m.path("back");
    {
        // copy_file_range itself (std::fs::copy would fall back to read and write on a
        // first answer of 0).
        let src = fs::File::open(m.path(".chunkfs/snapshots/s/f")).unwrap();
        let dst = fs::File::create(&back).unwrap();
        assert_eq!(
            copy_file_range(&src, 0, &dst, 0, 1 << 30).unwrap(),
            old.len()
        );
    }
    let counts1 = m.request_counts();
    sh(&format!("sync -f {}", q(&back)));
    assert!(fs::read(&back).unwrap() == old);
    let after = m.stats();
    // The one write is the conduit request that read `counts1`.
    let more = |what| count(&counts1, what) - count(&counts0, what);
    assert_eq!(
        (more("write"), after["chunks"].clone()),
        (1, before["chunks"].clone()),
        "copy_file_range {}, write {}, read {}",
        more("copy_file_range"),
        more("write"),
        more("read")
    );
    // The view is read-only as a destination.
    let e = fs::copy(&back, m.path(".chunkfs/snapshots/s/g")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    fsck_clean(&m);
}

#[test]
fn ranges_of_one_file_copy_unless_they_overlap_and_cp_copies_a_file_with_a_hole() {
    let Some(m) = Mounted::new() else { return };
    let f = m.path("f");
    let head = vec![7u8; 300_000];
    fs::write(&f, &head).unwrap();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f)
        .unwrap();
    file.write_all_at(b"tail", 10 << 20).unwrap();
    file.sync_all().unwrap();
    // Within one file, non-overlapping: the kernel passes it on.
    assert_eq!(
        copy_file_range(&file, 0, &file, 5 << 20, head.len()).unwrap(),
        head.len()
    );
    let mut b = vec![0u8; head.len()];
    file.read_exact_at(&mut b, 5 << 20).unwrap();
    assert!(b == head);
    // Overlapping ranges of one file: EINVAL, from the kernel.
    let e = copy_file_range(&file, 0, &file, 1000, 10_000).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    let g = m.path("g");
    assert!(sh(&format!("cp {} {}", q(&f), q(&g))).status.success());
    assert!(same(&f, &g));
    fsck_clean(&m);
}

/// Copies racing writers that replace and delete their sources while GC sweeps with no history
/// window: a chunk a copy shares must never be swept between the copy reading the source's list
/// and committing its own (the pin in `fs::copy::splice`).
#[test]
fn copies_racing_writers_and_gc_lose_nothing() {
    let Some(m) = Mounted::new() else { return };
    m.config_set("history-window", "0");
    let stop = Arc::new(AtomicBool::new(false));
    let gc = {
        let (stop, store) = (stop.clone(), m.store.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let o = chunkfs(&["gc".as_ref(), store.as_os_str()]);
                assert!(o.status.success(), "gc: {}", stderr(&o));
                runs += 1;
            }
            runs
        })
    };
    let rounds = 40;
    let workers: Vec<_> = (0..2u64)
        .map(|w| {
            let dir = m.mnt.clone();
            std::thread::spawn(move || {
                for r in 0..rounds {
                    let seed = w * 1000 + r;
                    let data = random_bytes(seed, 200_000 + (r as usize * 7919) % 300_000);
                    let src = dir.join(format!("src-{w}"));
                    fs::write(&src, &data).unwrap();
                    let dst = dir.join(format!("copy-{w}-{r}"));
                    fs::copy(&src, &dst).unwrap();
                    // Replace and delete the source at once: its chunks are the copy's alone.
                    fs::write(&src, random_bytes(seed + 500, 1000)).unwrap();
                    fs::remove_file(&src).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let runs = gc.join().unwrap();
    eprintln!("{runs} gc runs");
    let o = chunkfs(&["gc".as_ref(), m.store.as_os_str()]);
    assert!(o.status.success(), "gc: {}", stderr(&o));
    for w in 0..2u64 {
        for r in 0..rounds {
            let seed = w * 1000 + r;
            let want = random_bytes(seed, 200_000 + (r as usize * 7919) % 300_000);
            let got = fs::read(m.path(&format!("copy-{w}-{r}"))).unwrap();
            assert!(got == want, "copy-{w}-{r} differs");
        }
    }
    fsck_clean(&m);
}
