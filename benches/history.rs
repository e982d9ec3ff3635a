//! Clone and snapshot cost against tree size, and reading a snapshot view against the live
//! tree. `cargo bench --bench history` prints a table (medians of several runs). Sizes:
//! CHUNKFS_BENCH_TREES="1000,10000,100000" (default).

mod common;

use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions, open};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A tree of `n` small files in directories of 1,000.
fn build(fs: &Fs, n: usize) {
    let src = fs.mkdir(Ino::ROOT, b"src", 0o755, 0, 0).unwrap().ino;
    let mut dir = src;
    for i in 0..n {
        if i % 1000 == 0 {
            dir = fs
                .mkdir(src, format!("d{}", i / 1000).as_bytes(), 0o755, 0, 0)
                .unwrap()
                .ino;
        }
        let (a, h) = fs
            .create(dir, format!("f{i}").as_bytes(), 0o644, libc::O_RDWR, 0, 0)
            .unwrap();
        fs.write(a.ino, h.fh, 0, format!("file {i}\n").as_bytes())
            .unwrap();
        fs.release(a.ino, h.fh).unwrap();
    }
    fs.sync_all().unwrap();
}

/// Walk a tree with readdirplus and read every file; returns (entries, bytes).
fn walk(fs: &Fs, dir: Ino) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    let mut off = 0;
    loop {
        let page = fs.readdirplus(dir, off, 512).unwrap();
        if page.is_empty() {
            return (n, bytes);
        }
        for (e, a) in page {
            off = e.next_offset;
            if e.name == b"." || e.name == b".." {
                continue;
            }
            n += 1;
            if a.kind == chunkfs::fs::FileKind::Dir {
                let (m, b) = walk(fs, a.ino);
                n += m;
                bytes += b;
            } else {
                let h = fs.open(a.ino, libc::O_RDONLY).unwrap();
                bytes += fs.read(a.ino, h.fh, 0, 1 << 20).unwrap().len() as u64;
                fs.release(a.ino, h.fh).unwrap();
            }
        }
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("CHUNKFS_BENCH_TREES")
        .unwrap_or_else(|_| {
            if common::bench_mode() {
                "1000,10000,100000".into()
            } else {
                "200".into()
            }
        })
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "| files | build | clone (median of 5) | snapshot (median of 5) | walk live | walk snapshot view |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s");
        open::mkfs(
            &store,
            &MkfsOptions {
                size: Some(8 << 30),
                ..MkfsOptions::default()
            },
        )
        .unwrap();
        let fs = Fs::open(&store, FsOptions::default()).unwrap();
        let t = Instant::now();
        build(&fs, n);
        let build_t = t.elapsed();
        let clones: Vec<Duration> = (0..5)
            .map(|i| {
                let t = Instant::now();
                fs.clone_path(&chunkfs::fs::Caller::root(), "/src", &format!("/clone{i}"))
                    .unwrap();
                t.elapsed()
            })
            .collect();
        let snaps: Vec<Duration> = (0..5)
            .map(|i| {
                let t = Instant::now();
                fs.snapshot_create(&chunkfs::fs::Caller::root(), &format!("s{i}"), "/")
                    .unwrap();
                t.elapsed()
            })
            .collect();
        let src = fs.lookup(Ino::ROOT, b"src").unwrap().ino;
        let t = Instant::now();
        let live = walk(&fs, src);
        let live_t = t.elapsed();
        let ctl = fs.lookup(Ino::ROOT, chunkfs::fs::CONTROL_NAME).unwrap().ino;
        let snaps_dir = fs.lookup(ctl, b"snapshots").unwrap().ino;
        let view = fs
            .lookup(fs.lookup(snaps_dir, b"s0").unwrap().ino, b"src")
            .unwrap()
            .ino;
        let t = Instant::now();
        let seen = walk(&fs, view);
        let view_t = t.elapsed();
        assert_eq!(live, seen, "the view shows the same tree");
        println!(
            "| {n} | {:.2} s | {:.2} ms | {:.2} ms | {:.0} ms | {:.0} ms |",
            build_t.as_secs_f64(),
            median(clones).as_secs_f64() * 1e3,
            median(snaps).as_secs_f64() * 1e3,
            live_t.as_secs_f64() * 1e3,
            view_t.as_secs_f64() * 1e3
        );
        fs.close().unwrap();
    }
}
