//! Sparse files through a real mount: `SEEK_DATA` / `SEEK_HOLE` answered from the chunk list,
//! `st_blocks` counting data alone, and so `cp`, `tar -S` and `rsync -S` keeping holes
//! without reading them, inside the mount, out to the host and back.

mod mount_common;

use mount_common::{Mounted, random_bytes, sh};
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// The default store's largest chunk: holes are whole chunks, so a data run reported may
/// reach this far past the bytes written.
const MAX_CHUNK: u64 = 256 * KIB;

fn lseek(f: &File, off: u64, whence: i32) -> Result<u64, i32> {
    // SAFETY: lseek only reads its integer arguments; the fd is owned by `f`.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off as i64, whence) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        Ok(r as u64)
    }
}

/// The data runs a SEEK_DATA / SEEK_HOLE walk of the file finds.
fn runs(f: &File) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        let d = match lseek(f, p, libc::SEEK_DATA) {
            Ok(d) => d,
            Err(libc::ENXIO) => return out,
            Err(e) => panic!("SEEK_DATA at {p}: errno {e}"),
        };
        let h = lseek(f, d, libc::SEEK_HOLE).unwrap();
        assert!(h > d, "the data run at {d} ends at {h}");
        out.push((d, h));
        p = h;
    }
}

/// Whether the run `got` holds the bytes [from, to) written, reaching at most a chunk past.
fn holds(got: (u64, u64), from: u64, to: u64) -> bool {
    got.0 <= from && from - got.0 <= MAX_CHUNK && got.1 >= to && got.1 - to <= MAX_CHUNK
}

/// A file of `size` bytes, made with truncate and `pwrite`s of random data at `at`, closed.
fn sparse(path: &Path, size: u64, at: &[u64], len: u64) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (i, &off) in at.iter().enumerate() {
        f.write_all_at(&random_bytes(i as u64 + 1, len as usize), off)
            .unwrap();
    }
}

fn blocks(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks()
}

/// The two files hold the same bytes (`cmp`, which reads both whole: call after counting).
fn same(a: &Path, b: &Path) {
    sh(&format!("cmp '{}' '{}'", a.display(), b.display()));
}

/// The daemon's count of READ requests so far.
fn reads(m: &Mounted) -> u64 {
    m.request_counts()["read"].as_u64().unwrap_or(0)
}

#[test]
fn seek_data_and_seek_hole_follow_truncate_pwrite_and_punch() {
    let Some(m) = Mounted::new() else { return };
    let p = m.path("f");
    let size = 64 * MIB;
    sparse(&p, size, &[10 * MIB, 40 * MIB], 100 * KIB);
    let f = File::open(&p).unwrap();
    let r = runs(&f);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(holds(r[0], 10 * MIB, 10 * MIB + 100 * KIB), "{r:?}");
    assert!(holds(r[1], 40 * MIB, 40 * MIB + 100 * KIB), "{r:?}");
    assert_eq!(lseek(&f, 0, libc::SEEK_HOLE), Ok(0));
    assert_eq!(lseek(&f, size - 1, libc::SEEK_HOLE), Ok(size - 1));
    assert_eq!(lseek(&f, size, libc::SEEK_DATA), Err(libc::ENXIO));
    assert_eq!(lseek(&f, size, libc::SEEK_HOLE), Err(libc::ENXIO));
    let data: u64 = r.iter().map(|(d, h)| h - d).sum();
    assert_eq!(blocks(&p), data.div_ceil(512), "st_blocks counts the data");
    // What the walk calls holes reads as zeros.
    let all = fs::read(&p).unwrap();
    let mut at = 0;
    for &(d, h) in r.iter().chain([&(size, size)]) {
        assert!(all[at as usize..d as usize].iter().all(|&b| b == 0));
        at = h;
    }

    // Punching the second run away leaves one.
    let w = fs::OpenOptions::new().write(true).open(&p).unwrap();
    let (from, len) = (r[1].0, r[1].1 - r[1].0);
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate only reads its integer arguments; the fd is owned by `w`.
    let rc = unsafe { libc::fallocate(w.as_raw_fd(), mode, from as i64, len as i64) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(runs(&f), vec![r[0]]);

    // Bytes written and not yet committed (the writer still has the file open) are data
    // exactly where they were written.
    w.write_all_at(b"pending", 50 * MIB).unwrap();
    assert_eq!(lseek(&f, 20 * MIB, libc::SEEK_DATA), Ok(50 * MIB));
    assert_eq!(lseek(&f, 50 * MIB, libc::SEEK_HOLE), Ok(50 * MIB + 7));
    drop(w);

    // A file without holes is one run to its end.
    let dense = m.path("dense");
    fs::write(&dense, random_bytes(9, 300_000)).unwrap();
    let d = File::open(&dense).unwrap();
    assert_eq!(runs(&d), vec![(0, 300_000)]);
    assert_eq!(blocks(&dense), 300_000u64.div_ceil(512));

    // A file of only a hole has no data and no blocks.
    let empty = m.path("hole");
    File::create(&empty).unwrap().set_len(size).unwrap();
    let e = File::open(&empty).unwrap();
    assert_eq!(lseek(&e, 0, libc::SEEK_DATA), Err(libc::ENXIO));
    assert_eq!(lseek(&e, 0, libc::SEEK_HOLE), Ok(0));
    assert_eq!(blocks(&empty), 0);
}

#[test]
fn cp_keeps_a_sparse_file_sparse_inside_the_mount_and_to_the_host_without_reading_holes() {
    let Some(m) = Mounted::new() else { return };
    let src = m.path("src.img");
    let size = 256 * MIB;
    let at = [0, 100 * MIB, 200 * MIB + 12345];
    sparse(&src, size, &at, 64 * KIB);
    let data_blocks = blocks(&src);
    assert!(
        data_blocks * 512 <= 3 * (64 * KIB + 2 * MAX_CHUNK),
        "{data_blocks} blocks"
    );
    let host = m.dir.path().join("host");
    fs::create_dir(&host).unwrap();
    let cases = [
        ("", m.path("copy.img")),
        ("", host.join("copy.img")),
        ("--sparse=always", m.path("always.img")),
        ("--sparse=always", host.join("always.img")),
    ];
    for (opt, dst) in &cases {
        let before = reads(&m);
        sh(&format!("cp {opt} '{}' '{}'", src.display(), dst.display()));
        let n = reads(&m) - before;
        // Reading the whole file takes at least a request per MiB.
        assert!(n < 32, "cp {opt} to {} sent {n} reads", dst.display());
        assert_eq!(fs::metadata(dst).unwrap().len(), size);
        let b = blocks(dst);
        // The host rounds to its own blocks; either way the holes stay holes.
        assert!(
            b * 512 <= 3 * (64 * KIB + 2 * MAX_CHUNK) + 64 * KIB,
            "cp {opt} to {}: {b} blocks",
            dst.display()
        );
    }
    for (_, dst) in &cases {
        same(&src, dst);
    }
}

#[test]
fn tar_s_archives_only_the_data_of_a_sparse_file_and_extracts_it_sparse() {
    let Some(m) = Mounted::new() else { return };
    fs::create_dir(m.path("d")).unwrap();
    let src = m.path("d/disk.img");
    let size = 256 * MIB;
    sparse(&src, size, &[5 * MIB, 200 * MIB], 32 * KIB);
    let archive = m.dir.path().join("a.tar");
    let before = reads(&m);
    sh(&format!(
        "tar -S -cf '{}' -C '{}' disk.img",
        archive.display(),
        m.path("d").display()
    ));
    assert!(reads(&m) - before < 32, "tar read the holes");
    let len = fs::metadata(&archive).unwrap().len();
    assert!(len < 4 * MIB, "the archive holds the holes: {len} bytes");
    let host = m.dir.path().join("x");
    fs::create_dir(&host).unwrap();
    fs::create_dir(m.path("x")).unwrap();
    for dir in [host.clone(), m.path("x")] {
        sh(&format!(
            "tar -xf '{}' -C '{}'",
            archive.display(),
            dir.display()
        ));
        let out = dir.join("disk.img");
        assert_eq!(fs::metadata(&out).unwrap().len(), size);
        let b = blocks(&out);
        assert!(b * 512 < 4 * MIB, "{}: {b} blocks", out.display());
        same(&src, &out);
    }
}

/// rsync, if installed (CI installs it); elsewhere the test skips.
fn rsync_or_skip() -> bool {
    let ok = Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but rsync is not installed");
        }
        eprintln!("skipped: rsync is not installed");
    }
    ok
}

/// rsync reads the holes as zeros (it does not seek for data) and writes holes itself: what
/// chunkfs adds is a copy into it that stays sparse and shows so in `st_blocks`.
#[test]
fn rsync_s_round_trips_a_sparse_file_between_the_host_and_the_mount() {
    if !rsync_or_skip() {
        return;
    }
    let Some(m) = Mounted::new() else { return };
    let src = m.path("vm.img");
    let size = 256 * MIB;
    sparse(&src, size, &[MIB, 100 * MIB], 48 * KIB);
    let host = m.dir.path().join("vm.img");
    let back = m.path("back.img");
    sh(&format!(
        "rsync -S '{}' '{}'",
        src.display(),
        host.display()
    ));
    sh(&format!(
        "rsync -S '{}' '{}'",
        host.display(),
        back.display()
    ));
    for p in [&host, &back] {
        assert_eq!(fs::metadata(p).unwrap().len(), size);
        let b = blocks(p);
        assert!(b * 512 < 4 * MIB, "{}: {b} blocks", p.display());
        same(&src, p);
    }
}

#[test]
fn a_sparse_file_in_a_snapshot_keeps_its_holes_when_copied_out() {
    let Some(m) = Mounted::new() else { return };
    let src = m.path("f");
    let size = 128 * MIB;
    sparse(&src, size, &[64 * MIB], 16 * KIB);
    m.snapshot("s");
    // Filled in now: the snapshot keeps the old layout.
    fs::write(&src, random_bytes(3, size as usize / 16)).unwrap();
    let old = m.path(".chunkfs/snapshots/s/f");
    let r = runs(&File::open(&old).unwrap());
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(holds(r[0], 64 * MIB, 64 * MIB + 16 * KIB), "{r:?}");
    assert!(blocks(&old) * 512 <= 16 * KIB + 2 * MAX_CHUNK);
    let out = m.dir.path().join("old");
    let before = reads(&m);
    sh(&format!("cp '{}' '{}'", old.display(), out.display()));
    assert!(reads(&m) - before < 16, "cp read the holes");
    assert!(blocks(&out) * 512 <= 16 * KIB + 2 * MAX_CHUNK + 64 * KIB);
    same(&old, &out);
}
