//! Server-side copy in the core (`Fs::copy_range`, what `copy_file_range(2)` reaches), without
//! FUSE, against the size of the source: a whole-file copy into a new file (the list is the
//! source's: shared by its root), the same copy to an offset one byte in (every chunk shared
//! but the list new, the two ends re-cut), and a 1 MiB range into the middle of a copy of the
//! file. Each iteration copies into a file of its own, so the store grows as it runs; the
//! sources are written once, outside the timing, from incompressible bytes.
//!
//! `cargo bench --bench copy` runs 64 MiB and 1 GiB sources; `CHUNKFS_BENCH_COPY_MIB=N` (one
//! or more, comma separated) picks other sizes.

mod common;

use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions, open};
use common::{MIB, Rng};
use criterion::{BenchmarkId, Criterion};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn write_source(fs: &Fs, name: &str, bytes: usize) -> Ino {
    let (a, h) = fs
        .create(Ino::ROOT, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    let mut rng = Rng::new(7);
    let mut off = 0;
    while off < bytes {
        let mut buf = Vec::with_capacity(MIB);
        rng.fill(&mut buf, MIB.min(bytes - off));
        fs.write(a.ino, h.fh, off as u64, &buf).unwrap();
        off += buf.len();
    }
    fs.release(a.ino, h.fh).unwrap();
    fs.sync_all().unwrap();
    a.ino
}

fn main() {
    let mut c: Criterion = common::criterion();
    let next = AtomicU64::new(0);
    for mib in common::sizes("CHUNKFS_BENCH_COPY_MIB", &[64, 1024], &[16]) {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s");
        open::mkfs(
            &store,
            &MkfsOptions {
                size: Some(16 << 30),
                ..MkfsOptions::default()
            },
        )
        .unwrap();
        let opts = FsOptions {
            background_gc: false,
            commit_interval: Duration::from_secs(3600),
            ..FsOptions::default()
        };
        let fs = Fs::open(&store, opts).unwrap();
        let bytes = mib as usize * MIB;
        let src = write_source(&fs, "src", bytes);
        let sfh = fs.open(src, libc::O_RDONLY).unwrap().fh;
        // The middle-range target: a copy of the whole source.
        let (big, bfh) = {
            let (a, h) = fs
                .create(Ino::ROOT, b"big", 0o644, libc::O_RDWR, 0, 0)
                .unwrap();
            fs.copy_range(src, sfh, 0, a.ino, h.fh, 0, bytes as u64)
                .unwrap();
            (a.ino, h.fh)
        };
        let copy_to = |off_out: u64, len: u64| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let (a, h) = fs
                .create(
                    Ino::ROOT,
                    format!("c{n}").as_bytes(),
                    0o644,
                    libc::O_RDWR,
                    0,
                    0,
                )
                .unwrap();
            let done = fs
                .copy_range(src, sfh, 0, a.ino, h.fh, off_out, len)
                .unwrap();
            assert_eq!(done, len);
            fs.release(a.ino, h.fh).unwrap();
        };
        let mut g = c.benchmark_group("copy_range");
        g.bench_function(BenchmarkId::new("whole_file", format!("{mib}MiB")), |b| {
            b.iter(|| copy_to(0, bytes as u64))
        });
        g.bench_function(
            BenchmarkId::new("whole_file_offset_1", format!("{mib}MiB")),
            |b| b.iter(|| copy_to(1, bytes as u64)),
        );
        let mut rng = Rng::new(3);
        g.bench_function(
            BenchmarkId::new("1MiB_into_middle", format!("{mib}MiB")),
            |b| {
                b.iter(|| {
                    let off_in = rng.next_u64() % (bytes as u64 - MIB as u64);
                    let off_out = rng.next_u64() % (bytes as u64 - MIB as u64);
                    let n = fs
                        .copy_range(src, sfh, off_in, big, bfh, off_out, MIB as u64)
                        .unwrap();
                    assert_eq!(n, MIB as u64);
                })
            },
        );
        g.finish();
        let st = fs.stats().unwrap();
        println!(
            "copy {mib} MiB: after the runs {} chunks, {} stored bytes, meta.db {} bytes",
            st.chunks,
            st.stored_bytes,
            std::fs::metadata(store.join(open::META_FILE))
                .unwrap()
                .len()
        );
        fs.release(src, sfh).unwrap();
        fs.release(big, bfh).unwrap();
    }
    c.final_summary();
}
