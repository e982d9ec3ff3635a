//! statfs at scale: a store made with `open::mkfs` whose metadata is then filled directly
//! with SQL (rows as the core writes them: directories of 1,000 files, one 64 KiB chunk per
//! file, 64 chunks per superchunk), 80% current files, 10% unlinked (not yet collected) and
//! 10% with a revision of older content that the history window no longer keeps. Then
//! `Fs::statfs` is timed warm (nothing changed since the last call) and right after a commit
//! (the seq moved). Prints how long the rows took to insert (the triggers of the counters fire
//! on every row) and the store size.
//!
//! The counters' triggers fire on the write and GC paths too: first, `index_cost` times what
//! a commit and a GC pass do to the chunk index per chunk, so the same bench on the code
//! before the counters shows what they cost there.
//!
//! `cargo bench --bench statfs` runs 10 k and 1 M files; `CHUNKFS_BENCH_STATFS_FILES=N`
//! (one or more, comma separated) picks other sizes.

mod common;

use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions, open};
use criterion::{BatchSize, BenchmarkId, Criterion};
use rusqlite::{Connection, params};
use std::path::Path;
use std::time::{Duration, Instant};

const PER_DIR: u64 = 1000;
const PER_SUPERCHUNK: u64 = 64;
const STORED: u64 = 40_000;
const RAW: u64 = 65_536;
/// The superchunk extent: 64 chunks and a 4 KiB header.
const SC_LEN: u64 = PER_SUPERCHUNK * STORED + 4096;

fn hash(domain: &[u8], i: u64) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(domain).update(&i.to_le_bytes());
    h.finalize().as_bytes().to_vec()
}

fn body(chunk: &[u8]) -> Vec<u8> {
    let mut b = chunk.to_vec();
    b.extend_from_slice(&RAW.to_le_bytes());
    b
}

/// Fill a freshly made store with `files` files; returns the seconds the inserts took.
fn populate(store: &Path, files: u64) -> f64 {
    let t = Instant::now();
    let conn = Connection::open(store.join(open::META_FILE)).unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF; BEGIN")
        .unwrap();
    // Seq 1 (mkfs) is long past the 7-day window, seq 2 is now: rows that died at 2 or
    // unlinked files born at 1 are collectable.
    let now: i64 = conn
        .query_row("SELECT time FROM commits WHERE seq = 1", [], |r| r.get(0))
        .unwrap();
    conn.execute("UPDATE commits SET time = 0 WHERE seq = 1", [])
        .unwrap();
    conn.execute("INSERT INTO commits(seq, time) VALUES (2, ?1)", [now])
        .unwrap();
    chunkfs::meta::set_u64(&conn, "seq", 2).unwrap();
    let dirs = files.div_ceil(PER_DIR);
    let mut inode = conn
        .prepare("INSERT INTO inodes(ino, kind, born) VALUES (?1, ?2, 1)")
        .unwrap();
    let mut rev = conn
        .prepare(
            "INSERT INTO revisions(ino, born, died, op, mode, uid, gid, nlink, size, rdev,
                                   atime, mtime, ctime, crtime, list)
             VALUES (?1, ?2, ?3, 'write', ?4, 0, 0, ?5, ?6, 0, 0, 0, 0, 0, ?7)",
        )
        .unwrap();
    let mut dirent = conn
        .prepare("INSERT INTO dirents(parent, name, ino, kind, born) VALUES (?1, ?2, ?3, ?4, 1)")
        .unwrap();
    let mut list = conn
        .prepare("INSERT INTO lists(hash, depth, size, body, refcount) VALUES (?1, 0, ?2, ?3, 1)")
        .unwrap();
    let mut chunk = conn
        .prepare(
            "INSERT INTO chunks(hash, superchunk, offset, stored_len, raw_len, codec, refcount)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, 1)",
        )
        .unwrap();
    for d in 0..dirs {
        let ino = 2 + d as i64;
        inode.execute(params![ino, 2]).unwrap();
        rev.execute(params![ino, 1, None::<i64>, 0o40755, 2, 0, None::<Vec<u8>>])
            .unwrap();
        dirent
            .execute(params![1, format!("d{d}").into_bytes(), ino, 2])
            .unwrap();
    }
    let mut chunks = 0u64;
    let mut add_content = |domain: &[u8], i: u64| {
        let (c, l) = (hash(domain, i), hash(&[domain, b"list"].concat(), i));
        let sc = chunks / PER_SUPERCHUNK + 1;
        let off = 4096 + (chunks % PER_SUPERCHUNK) * STORED;
        chunk
            .execute(params![c, sc as i64, off as i64, STORED as i64, RAW as i64])
            .unwrap();
        list.execute(params![l, RAW as i64, body(&c)]).unwrap();
        chunks += 1;
        l
    };
    for i in 0..files {
        let ino = (2 + dirs + i) as i64;
        inode.execute(params![ino, 1]).unwrap();
        let l = add_content(b"current", i);
        match i % 10 {
            // Unlinked: the current revision has no links and no name.
            0 => {
                rev.execute(params![ino, 1, None::<i64>, 0o100644, 0, RAW as i64, l])
                    .unwrap();
            }
            // Older content, ended at seq 2: outside the window.
            1 => {
                let old = add_content(b"old", i);
                rev.execute(params![ino, 1, 2, 0o100644, 1, RAW as i64, old])
                    .unwrap();
                rev.execute(params![ino, 2, None::<i64>, 0o100644, 1, RAW as i64, l])
                    .unwrap();
            }
            _ => {
                rev.execute(params![ino, 1, None::<i64>, 0o100644, 1, RAW as i64, l])
                    .unwrap();
            }
        }
        if i % 10 != 0 {
            let dir = 2 + (i / PER_DIR) as i64;
            dirent
                .execute(params![dir, format!("f{i}").into_bytes(), ino, 1])
                .unwrap();
        }
    }
    drop((inode, rev, dirent, list, chunk));
    let scs = chunks.div_ceil(PER_SUPERCHUNK);
    let mut sc = conn
        .prepare(
            "INSERT INTO superchunks(id, start, len, chunks, raw_bytes, live_bytes, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
        )
        .unwrap();
    for s in 0..scs {
        let n = PER_SUPERCHUNK.min(chunks - s * PER_SUPERCHUNK) as i64;
        let start = 4096 + s * SC_LEN;
        sc.execute(params![
            (s + 1) as i64,
            start as i64,
            SC_LEN as i64,
            n,
            n * RAW as i64,
            n * STORED as i64
        ])
        .unwrap();
    }
    drop(sc);
    let (fstart, flen): (i64, i64) = conn
        .query_row("SELECT start, len FROM free_extents", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let used = (scs * SC_LEN) as i64;
    conn.execute("DELETE FROM free_extents", []).unwrap();
    conn.execute(
        "INSERT INTO free_extents(start, len) VALUES (?1, ?2)",
        [fstart + used, flen - used],
    )
    .unwrap();
    conn.execute_batch("COMMIT").unwrap();
    t.elapsed().as_secs_f64()
}

fn sizes() -> Vec<u64> {
    if let Ok(v) = std::env::var("CHUNKFS_BENCH_STATFS_FILES") {
        return v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if common::bench_mode() {
        vec![10_000, 1_000_000]
    } else {
        vec![1_000]
    }
}

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
    for files in sizes() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let mk = MkfsOptions {
            size: Some(256 << 30),
            ..MkfsOptions::default()
        };
        open::mkfs(&store, &mk).unwrap();
        let secs = populate(&store, files);
        let db = std::fs::metadata(store.join(open::META_FILE))
            .unwrap()
            .len();
        println!(
            "statfs {files} files: rows inserted in {secs:.2} s ({:.1} µs per file), meta.db {} MiB",
            secs * 1e6 / files as f64,
            db >> 20
        );
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
