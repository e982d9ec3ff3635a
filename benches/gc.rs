//! Garbage collection with nothing to collect, at scale: a store made by
//! `common::store::make` with the `Mix::Kept` history (a snapshot at seq 1 keeps what changed
//! since: 10% of the files have an older revision and 10% an older name, both ended at seq 2,
//! outside the 7-day window but visible at the snapshot; 1% are unlinked files, collected by
//! the first pass, not timed; every superchunk just holds its chunks). After it
//! nothing can be collected, so a pass should cost next to nothing whatever the store's size.
//!
//! Timed: an explicit pass (`Fs::gc`, the same steps a background pass runs, judging all
//! history again; before #13 a background pass read all of it too), and a background pass
//! (`Fs::background_gc_pass`) with the committer's check before it, after a first complete one.
//!
//! `cargo bench --bench gc` runs 10 k and 1 M files; `CHUNKFS_BENCH_GC_FILES=N` (one or more,
//! comma separated) picks other sizes.

mod common;

use chunkfs::fs::{Fs, FsOptions};
use common::store::{self, Layout, Mix};
use criterion::{BenchmarkId, Criterion};
use std::time::{Duration, Instant};

fn main() {
    let mut c: Criterion = common::criterion();
    for files in common::sizes("CHUNKFS_BENCH_GC_FILES", &[10_000, 1_000_000], &[1_000]) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store::make(dir.path(), &Layout::new(files, Mix::Kept));
        let opts = FsOptions {
            background_gc: false,
            commit_interval: Duration::from_secs(3600),
            ..FsOptions::default()
        };
        let fs = Fs::open(&store, opts).unwrap();
        let t = Instant::now();
        let first = fs.gc(&chunkfs::gc::Silent).unwrap();
        println!(
            "gc {files} files: first explicit pass {:.3} ms: {first:?}",
            t.elapsed().as_secs_f64() * 1e3
        );
        let mut g = c.benchmark_group("gc_idle");
        g.bench_function(BenchmarkId::new("explicit_pass", files), |b| {
            b.iter(|| fs.gc(&chunkfs::gc::Silent).unwrap())
        });
        assert_eq!(fs.background_gc_pass().unwrap(), None, "nothing to collect");
        g.bench_function(BenchmarkId::new("background_pass", files), |b| {
            b.iter(|| fs.background_gc_pass().unwrap())
        });
        g.finish();
    }
    c.final_summary();
}
