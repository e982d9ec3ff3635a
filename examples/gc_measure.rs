//! Measures GC on a real image-file store (not a test: figures only, no assertions).
//! `cargo run --example gc_measure -- [MIB]` (default 64). Prints GC throughput (chunks/s,
//! bytes/s), the longest pause a concurrent reader saw during GC, and repack throughput.

use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions, open};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/common/data.rs"]
mod data;
use data::random_bytes as bytes;

fn write(fs: &Fs, name: &str, data: &[u8]) -> Ino {
    let (a, h) = fs
        .create(Ino::ROOT, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    for (i, part) in data.chunks(1 << 20).enumerate() {
        fs.write(a.ino, h.fh, (i << 20) as u64, part).unwrap();
    }
    fs.release(a.ino, h.fh).unwrap();
    a.ino
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    open::mkfs(
        &store,
        &MkfsOptions {
            size: Some(8 << 30),
            history_window: 0,
            ..MkfsOptions::default()
        },
    )
    .unwrap();
    let fs = Arc::new(
        Fs::open(
            &store,
            FsOptions {
                background_gc: false,
                ..FsOptions::default()
            },
        )
        .unwrap(),
    );
    let keep = bytes(1, 8 << 20);
    let kino = write(&fs, "keep", &keep);
    for i in 0..mib / 8 {
        write(&fs, &format!("f{i}"), &bytes(100 + i as u64, 8 << 20));
    }
    fs.sync_all().unwrap();
    for i in 0..mib / 8 {
        fs.unlink(Ino::ROOT, format!("f{i}").as_bytes()).unwrap();
    }
    fs.sync_all().unwrap();
    // A reader re-reading a kept file (cache too small to hold it) while GC runs.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (fs, stop) = (fs.clone(), stop.clone());
        std::thread::spawn(move || {
            let h = fs.open(kino, libc::O_RDONLY).unwrap();
            let (mut worst, mut n) = (Duration::ZERO, 0u64);
            let mut off = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _ = fs.read(kino, h.fh, off, 65536).unwrap();
                worst = worst.max(t.elapsed());
                n += 1;
                off = (off + 65536 * 7) % (8 << 20);
            }
            (worst, n)
        })
    };
    let t = Instant::now();
    let r = fs.gc(&chunkfs::gc::Silent).unwrap();
    let gc_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (worst, reads) = reader.join().unwrap();
    let s = gc_time.as_secs_f64();
    println!(
        "gc of {mib} MiB deleted: {:.2?}, {} chunks ({:.0} chunks/s), {:.1} MiB freed ({:.1} MiB/s), {} batches",
        gc_time,
        r.chunks,
        r.chunks as f64 / s,
        r.bytes_freed as f64 / 1048576.0,
        r.bytes_freed as f64 / 1048576.0 / s,
        r.batches
    );
    println!(
        "concurrent reader: {reads} reads of 64 KiB, longest {:.2?}",
        worst
    );
    // Repack: overwrite every other MiB of a fresh file, so its superchunks are half dead.
    let data = bytes(7, mib << 20);
    let ino = write(&fs, "r", &data);
    fs.sync_all().unwrap();
    let h = fs.open(ino, libc::O_RDWR).unwrap();
    for i in (0..mib).step_by(2) {
        fs.write(
            ino,
            h.fh,
            (i << 20) as u64,
            &bytes(9000 + i as u64, 3 << 19),
        )
        .unwrap();
    }
    fs.release(ino, h.fh).unwrap();
    fs.sync_all().unwrap();
    let t = Instant::now();
    let r = fs.gc(&chunkfs::gc::Silent).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "repack: {} superchunks, {:.1} MiB copied in {:.2?} ({:.1} MiB/s), {:.1} MiB freed",
        r.superchunks_repacked,
        r.bytes_repacked as f64 / 1048576.0,
        t.elapsed(),
        r.bytes_repacked as f64 / 1048576.0 / s,
        r.bytes_freed as f64 / 1048576.0
    );
}
