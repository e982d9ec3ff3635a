//! The filesystem core end to end, without FUSE: mkfs a store on an image file in a temp dir,
//! write files of mixed sizes (a few of 64–256 MiB, many of 4 KiB–1 MiB) through
//! `Fs::create`/`write`/`release`, `sync_all`, then read everything back three ways: with the
//! chunk cache cold (store reopened; the OS page cache still holds the image), with the image
//! also dropped from the OS page cache (`POSIX_FADV_DONTNEED`), and warm (second pass with a
//! chunk cache larger than the data). Prints a table.
//!
//! `cargo bench --bench core`; `CHUNKFS_BENCH_BYTES=256M` (or a plain byte count) shrinks
//! the default 1 GiB; `CHUNKFS_BENCH_RUNS` (default 3) sets how many fresh stores are timed.

mod common;

use chunkfs::fs::open::{IMAGE_FILE, META_FILE};
use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions, Stats, open};
use common::{KIB, MIB, Rng};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const IO_SIZE: usize = MIB;
const DIRS: usize = 16;

struct FileSpec {
    dir: Option<usize>,
    name: String,
    size: usize,
    seed: u64,
}

struct Written {
    ino: Ino,
    size: usize,
    hash: blake3::Hash,
}

fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()?.to_ascii_uppercase() {
        'K' => (&s[..s.len() - 1], KIB),
        'M' => (&s[..s.len() - 1], MIB),
        'G' => (&s[..s.len() - 1], 1024 * MIB),
        _ => (s, 1),
    };
    Some(num.parse::<usize>().ok()? * mul)
}

/// Half the bytes in large files of 64–256 MiB, the rest in small files whose sizes are
/// log-uniform between 4 KiB and 1 MiB (many small, a few near 1 MiB, as in a source tree).
fn plan(total: usize) -> Vec<FileSpec> {
    let mut rng = Rng::new(2024);
    let mut files = Vec::new();
    let mut large_left = total / 2;
    while large_left > 0 {
        let size = (rng.range(64, 256) as usize * MIB).min(large_left);
        large_left -= size;
        files.push((None, size));
    }
    let mut small_left = total - total / 2;
    let (lo, hi) = ((4 * KIB) as f64, MIB as f64);
    while small_left > 0 {
        let u = rng.below(1 << 30) as f64 / (1u64 << 30) as f64;
        let size = ((lo.ln() + u * (hi.ln() - lo.ln())).exp() as usize).min(small_left);
        small_left -= size;
        files.push((Some(files.len() % DIRS), size));
    }
    files
        .into_iter()
        .enumerate()
        .map(|(i, (dir, size))| FileSpec {
            dir,
            name: format!("f{i:05}"),
            size,
            seed: 1000 + i as u64,
        })
        .collect()
}

fn main() {
    let total = std::env::var("CHUNKFS_BENCH_BYTES")
        .ok()
        .map(|v| parse_bytes(&v).expect("CHUNKFS_BENCH_BYTES: a byte count, or with K/M/G"))
        .unwrap_or(if common::bench_mode() {
            1024 * MIB
        } else {
            8 * MIB
        });
    let files = plan(total);
    let large = files.iter().filter(|f| f.dir.is_none()).count();
    println!(
        "core: {:.0} MiB of mixed data in {} files ({large} of 64–256 MiB, {} of 4 KiB–1 MiB), \
         {} KiB write/read calls",
        common::mib(total as u64),
        files.len(),
        files.len() - large,
        IO_SIZE / KIB
    );
    let runs: usize = std::env::var("CHUNKFS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if common::bench_mode() { 3 } else { 1 });
    let results: Vec<Run> = (0..runs).map(|_| run_once(total, &files)).collect();

    let mibps = |d: Duration| common::mib(total as u64) / d.as_secs_f64();
    println!("\n{runs} runs, each on a fresh store; median (min–max) of the runs");
    println!("\n| phase | seconds | MiB/s |");
    println!("|---|---:|---:|");
    for (i, what) in PHASES.iter().enumerate() {
        let mut d: Vec<Duration> = results.iter().map(|r| r.phases[i]).collect();
        d.sort();
        println!(
            "| {what} | {:.2} | {:.0} ({:.0}–{:.0}) |",
            d[d.len() / 2].as_secs_f64(),
            mibps(d[d.len() / 2]),
            mibps(d[d.len() - 1]),
            mibps(d[0]),
        );
    }

    let Run {
        stats,
        img,
        db,
        peak_after_write,
        ..
    } = &results[0];
    let ratio = |a: u64, b: u64| a as f64 / b as f64;
    println!("\n| measure (first run) | value |");
    println!("|---|---:|");
    println!(
        "| logical bytes | {:.1} MiB |",
        common::mib(stats.logical_bytes)
    );
    println!(
        "| unique chunk bytes | {:.1} MiB |",
        common::mib(stats.unique_bytes)
    );
    println!(
        "| stored chunk bytes | {:.1} MiB |",
        common::mib(stats.stored_bytes)
    );
    println!(
        "| device used (superchunks with headers and padding) | {:.1} MiB |",
        common::mib(stats.device_used_bytes)
    );
    println!(
        "| stored / logical | {:.3} |",
        ratio(stats.stored_bytes, stats.logical_bytes)
    );
    println!(
        "| device used / logical | {:.3} |",
        ratio(stats.device_used_bytes, stats.logical_bytes)
    );
    println!(
        "| chunks, superchunks (mean superchunk) | {}, {} ({:.2} MiB) |",
        stats.chunks,
        stats.superchunks,
        common::mib(stats.device_used_bytes) / stats.superchunks.max(1) as f64
    );
    println!(
        "| image file allocated on the host | {:.1} MiB |",
        common::mib(*img)
    );
    println!("| meta.db | {:.1} MiB |", common::mib(*db));
    println!(
        "| peak RSS after writing; at the end (large cache) | {:.0} MiB; {:.0} MiB |",
        *peak_after_write as f64 / 1024.0,
        common::proc_status_kib("VmHWM").unwrap_or(0) as f64 / 1024.0
    );
}

const PHASES: [&str; 5] = [
    "write (create/write/release, then sync_all)",
    "read, chunk cache cold, OS page cache warm",
    "read, chunk cache cold, image dropped from OS cache",
    "read, first pass with a large cache (fills it)",
    "read, warm (second pass, all chunks cached)",
];

struct Run {
    phases: [Duration; 5],
    stats: Stats,
    /// Bytes the image occupies on the host, and the size of meta.db.
    img: u64,
    db: u64,
    peak_after_write: u64,
}

fn run_once(total: usize, files: &[FileSpec]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mk = MkfsOptions {
        size: Some((4 * total as u64).max(1 << 30)),
        ..MkfsOptions::default()
    };
    open::mkfs(&store, &mk).unwrap();

    let fs = Fs::open(&store, FsOptions::default()).unwrap();
    let (written, write_time) = write_all(&fs, files);
    let stats = fs.stats().unwrap();
    fs.close().unwrap();
    let peak_after_write = common::proc_status_kib("VmHWM").unwrap_or(0);

    let fs = Fs::open(&store, FsOptions::default()).unwrap();
    let cold = read_all(&fs, &written);
    fs.close().unwrap();

    drop_os_cache(&store.join(IMAGE_FILE));
    drop_os_cache(&store.join(META_FILE));
    let fs = Fs::open(&store, FsOptions::default()).unwrap();
    let device_cold = read_all(&fs, &written);
    fs.close().unwrap();

    let big_cache = FsOptions {
        cache_bytes: total + 256 * MIB,
        ..FsOptions::default()
    };
    let fs = Fs::open(&store, big_cache).unwrap();
    let first = read_all(&fs, &written);
    let warm = read_all(&fs, &written);
    fs.close().unwrap();

    Run {
        phases: [write_time, cold, device_cold, first, warm],
        stats,
        img: std::fs::metadata(store.join(IMAGE_FILE)).unwrap().blocks() * 512,
        db: std::fs::metadata(store.join(META_FILE)).unwrap().len(),
        peak_after_write,
    }
}

/// Returns what was written and the time spent in the fs calls (data generation excluded).
fn write_all(fs: &Fs, files: &[FileSpec]) -> (Vec<Written>, Duration) {
    let mut spent = Duration::ZERO;
    let t = Instant::now();
    let dirs: Vec<Ino> = (0..DIRS)
        .map(|d| {
            fs.mkdir(Ino::ROOT, format!("d{d:02}").as_bytes(), 0o755, 0, 0)
                .unwrap()
                .ino
        })
        .collect();
    spent += t.elapsed();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let data = common::mixed(f.seed, f.size);
        let hash = blake3::hash(&data);
        let parent = f.dir.map_or(Ino::ROOT, |d| dirs[d]);
        let t = Instant::now();
        let (attr, h) = fs
            .create(parent, f.name.as_bytes(), 0o644, libc::O_WRONLY, 0, 0)
            .unwrap();
        for (i, piece) in data.chunks(IO_SIZE).enumerate() {
            fs.write(attr.ino, h.fh, (i * IO_SIZE) as u64, piece)
                .unwrap();
        }
        fs.release(attr.ino, h.fh).unwrap();
        spent += t.elapsed();
        out.push(Written {
            ino: attr.ino,
            size: f.size,
            hash,
        });
    }
    let t = Instant::now();
    fs.sync_all().unwrap();
    spent += t.elapsed();
    (out, spent)
}

/// Read every file through open/read/release; checks the bytes (outside the timing).
fn read_all(fs: &Fs, files: &[Written]) -> Duration {
    let mut spent = Duration::ZERO;
    for f in files {
        let mut hasher = blake3::Hasher::new();
        let t = Instant::now();
        let h = fs.open(f.ino, libc::O_RDONLY).unwrap();
        spent += t.elapsed();
        let mut off = 0;
        while off < f.size {
            let t = Instant::now();
            let part = fs.read(f.ino, h.fh, off as u64, IO_SIZE as u32).unwrap();
            spent += t.elapsed();
            assert!(!part.is_empty(), "short read at {off} of {}", f.size);
            hasher.update(&part);
            off += part.len();
        }
        let t = Instant::now();
        fs.release(f.ino, h.fh).unwrap();
        spent += t.elapsed();
        assert_eq!(
            hasher.finalize(),
            f.hash,
            "file {:?} reads back wrong",
            f.ino
        );
    }
    spent
}

/// Evict a (clean, synced) file from the OS page cache, so the next reads reach the disk.
/// Touches only this file, not the cache other processes rely on.
fn drop_os_cache(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: a valid open descriptor; fadvise only affects caching.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise failed");
}
