//! statfs at scale: a store of `common::store` (its metadata filled directly with SQL) in the
//! `Aged` mix: 80% current files, 10% unlinked (not yet collected) and 10% with a revision of
//! older content that the history window no longer keeps. Then `Fs::statfs` is timed warm
//! (nothing changed since the last call) and right after a commit (the seq moved). Prints how
//! long the rows took to insert (the triggers of the counters fire on every row) and the store
//! size.
//!
//! The counters' triggers fire on the write and GC paths too: first, `index_cost` times what
//! a commit and a GC pass do to the chunk index per chunk, so the same bench on the code
//! before the counters shows what they cost there.
//!
//! `cargo bench --bench statfs` runs 10 k and 1 M files; `CHUNKFS_BENCH_STATFS_FILES=N`
//! (one or more, comma separated) picks other sizes.

mod common;

use chunkfs::fs::{Fs, FsOptions, Ino};
use common::store::{self, Layout, Mix, PER_SUPERCHUNK, RAW, SC_LEN, STORED};
use criterion::{BatchSize, BenchmarkId, Criterion};
use std::time::{Duration, Instant};

/// Median seconds, over 3 fresh databases, of what a commit does to the chunk index for
/// `n` new chunks: insert each at refcount 0 into an open superchunk, insert the sealed
/// superchunk's row, add each chunk's first reference; then what GC does: drop the reference,
/// delete the chunk, take its bytes off the superchunk, delete the superchunk. Transactions
/// of one superchunk (64 chunks), synchronous=OFF so the device sync does not hide the cost.
fn index_cost(n: u64) -> (f64, f64) {
    use chunkfs::chunker::ChunkHash;
    use chunkfs::meta::{self, chunks, gc};
    use chunkfs::store::freemap::Extent;
    use chunkfs::store::superchunk::{Codec, SuperchunkId};
    let mut runs = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let conn = meta::open(&dir.path().join("meta.db"), true).unwrap();
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        let key = |i: u64| ChunkHash(*blake3::hash(&i.to_le_bytes()).as_bytes());
        let scs = n / PER_SUPERCHUNK;
        let t = Instant::now();
        for s in 0..scs {
            let id = SuperchunkId(s + 1);
            conn.execute_batch("BEGIN").unwrap();
            let ids = s * PER_SUPERCHUNK..(s + 1) * PER_SUPERCHUNK;
            for i in ids.clone() {
                let loc = chunks::Location {
                    superchunk: id,
                    offset: 0,
                    stored_len: STORED as u32,
                    raw_len: RAW as u32,
                    codec: Codec::Zstd,
                };
                chunks::insert(&conn, &key(i), &loc).unwrap();
            }
            let row = chunks::SuperchunkRow {
                id,
                extent: Extent {
                    start: 4096 + s * SC_LEN,
                    len: SC_LEN,
                },
                chunks: PER_SUPERCHUNK,
                raw_bytes: PER_SUPERCHUNK * RAW,
                live_bytes: PER_SUPERCHUNK * STORED,
            };
            chunks::insert_superchunk(&conn, &row, 0).unwrap();
            for i in ids {
                chunks::add_ref(&conn, &key(i), 1).unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
        }
        let write = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for s in 0..scs {
            let id = SuperchunkId(s + 1);
            conn.execute_batch("BEGIN").unwrap();
            for i in s * PER_SUPERCHUNK..(s + 1) * PER_SUPERCHUNK {
                chunks::add_ref(&conn, &key(i), -1).unwrap();
                let dead = gc::DeadChunk {
                    hash: key(i),
                    superchunk: id,
                    stored_len: STORED,
                    raw_len: RAW,
                };
                gc::delete_chunk(&conn, &dead).unwrap();
            }
            chunks::delete_superchunk(&conn, id).unwrap();
            conn.execute_batch("COMMIT").unwrap();
        }
        runs.push((write, t.elapsed().as_secs_f64()));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[1]
}

fn main() {
    let mut c: Criterion = common::criterion();
    let n = if common::bench_mode() { 256_000 } else { 640 };
    let (write, collect) = index_cost(n);
    println!(
        "chunk index, {n} chunks: commit path {:.2} µs per chunk, gc path {:.2} µs per chunk \
         (median of 3)",
        write * 1e6 / n as f64,
        collect * 1e6 / n as f64
    );
    let sizes = common::sizes("CHUNKFS_BENCH_STATFS_FILES", &[10_000, 1_000_000], &[1_000]);
    for files in sizes {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store::make(dir.path(), &Layout::new(files, Mix::Aged));
        let opts = FsOptions {
            background_gc: false,
            commit_interval: Duration::from_secs(3600),
            ..FsOptions::default()
        };
        let fs = Fs::open(&store, opts).unwrap();
        let t = Instant::now();
        let first = fs.statfs().unwrap();
        println!(
            "statfs {files} files: first call {:.3} ms, {} inodes, {} free blocks",
            t.elapsed().as_secs_f64() * 1e3,
            first.files - (1 << 32),
            first.bfree
        );
        let mut g = c.benchmark_group("statfs");
        g.bench_function(BenchmarkId::new("warm", files), |b| {
            b.iter(|| fs.statfs().unwrap())
        });
        let mut n = 0u64;
        g.bench_function(BenchmarkId::new("after_commit", files), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    fs.mkdir(Ino::ROOT, format!("m{n}").as_bytes(), 0o755, 0, 0)
                        .unwrap();
                    fs.sync_all().unwrap();
                },
                |()| fs.statfs().unwrap(),
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
    c.final_summary();
}
