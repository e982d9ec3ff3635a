//! Garbage collection with nothing to collect, at scale: a store made with `open::mkfs` whose
//! metadata is then filled directly with SQL (rows as the core writes them: directories of
//! 1,000 files, one 64 KiB chunk per file, 64 chunks per superchunk, every superchunk full and
//! old). A snapshot at seq 1 keeps what changed since: 10% of the files have an older
//! revision and 10% an older name, both ended at seq 2, outside the 7-day window but visible
//! at the snapshot; 1% are unlinked files, collected by the first pass (not timed). After it
//! nothing can be collected, so a pass should cost next to nothing whatever the store's size.
//!
//! Timed: an explicit pass (`Fs::gc`, the same steps a background pass runs, judging all
//! history again; before #13 a background pass read all of it too), and a background pass
//! (`Fs::background_gc_pass`) with the committer's check before it, after a first complete one.
//!
//! `cargo bench --bench gc` runs 10 k and 1 M files; `CHUNKFS_BENCH_GC_FILES=N` (one or more,
//! comma separated) picks other sizes.

mod common;

use chunkfs::fs::{Fs, FsOptions, MkfsOptions, open};
use criterion::{BenchmarkId, Criterion};
use rusqlite::{Connection, params};
use std::path::Path;
use std::time::{Duration, Instant};

const PER_DIR: u64 = 1000;
const PER_SUPERCHUNK: u64 = 64;
const STORED: u64 = 40_000;
const RAW: u64 = 65_536;
const HEADER: u64 = 4096;

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
    // Seq 1 (mkfs) and seq 2 are long past the 7-day window, seq 3 is now: the window starts
    // at seq 2, so rows that ended at 2 are candidates, kept only by the snapshot at 1.
    let now: i64 = conn
        .query_row("SELECT time FROM commits WHERE seq = 1", [], |r| r.get(0))
        .unwrap();
    conn.execute("UPDATE commits SET time = 0 WHERE seq = 1", [])
        .unwrap();
    conn.execute("INSERT INTO commits(seq, time) VALUES (2, 1)", [])
        .unwrap();
    conn.execute("INSERT INTO commits(seq, time) VALUES (3, ?1)", [now])
        .unwrap();
    chunkfs::meta::set_u64(&conn, "seq", 3).unwrap();
    conn.execute(
        "INSERT INTO snapshots(name, seq, root, created) VALUES ('before', 1, 1, 0)",
        [],
    )
    .unwrap();
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
        .prepare(
            "INSERT INTO dirents(parent, name, ino, kind, born, died)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
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
            .execute(params![
                1,
                format!("d{d}").into_bytes(),
                ino,
                2,
                1,
                None::<i64>
            ])
            .unwrap();
    }
    let mut chunks = 0u64;
    let mut add_content = |domain: &[u8], i: u64| {
        let (c, l) = (hash(domain, i), hash(&[domain, b"list"].concat(), i));
        let sc = chunks / PER_SUPERCHUNK + 1;
        let off = HEADER + (chunks % PER_SUPERCHUNK) * STORED;
        chunk
            .execute(params![c, sc as i64, off as i64, STORED as i64, RAW as i64])
            .unwrap();
        list.execute(params![l, RAW as i64, body(&c)]).unwrap();
        chunks += 1;
        l
    };
    for i in 0..files {
        let ino = (2 + dirs + i) as i64;
        let dir = 2 + (i / PER_DIR) as i64;
        let name = format!("f{i}").into_bytes();
        inode.execute(params![ino, 1]).unwrap();
        let l = add_content(b"current", i);
        match i % 100 {
            // Unlinked inside the window: kept.
            3 => {
                rev.execute(params![ino, 3, None::<i64>, 0o100644, 0, RAW as i64, l])
                    .unwrap();
                continue;
            }
            // Older content, ended at seq 2: seen by the snapshot.
            n if n % 10 == 1 => {
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
        // An older name, ended at seq 2: seen by the snapshot.
        if i % 10 == 2 {
            let old = format!("old{i}").into_bytes();
            dirent.execute(params![dir, old, ino, 1, 1, 2]).unwrap();
            dirent
                .execute(params![dir, name, ino, 1, 2, None::<i64>])
                .unwrap();
        } else {
            dirent
                .execute(params![dir, name, ino, 1, 1, None::<i64>])
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
    let mut start = HEADER;
    for s in 0..scs {
        let n = PER_SUPERCHUNK.min(chunks - s * PER_SUPERCHUNK);
        // Each extent just holds its chunks: none is under half live.
        let len = HEADER + n * STORED;
        sc.execute(params![
            (s + 1) as i64,
            start as i64,
            len as i64,
            n as i64,
            (n * RAW) as i64,
            (n * STORED) as i64
        ])
        .unwrap();
        start += len.next_multiple_of(4096);
    }
    drop(sc);
    let (fstart, flen): (i64, i64) = conn
        .query_row("SELECT start, len FROM free_extents", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let used = start as i64 - fstart;
    conn.execute("DELETE FROM free_extents", []).unwrap();
    conn.execute(
        "INSERT INTO free_extents(start, len) VALUES (?1, ?2)",
        [start as i64, flen - used],
    )
    .unwrap();
    conn.execute_batch("COMMIT").unwrap();
    t.elapsed().as_secs_f64()
}

fn sizes() -> Vec<u64> {
    if let Ok(v) = std::env::var("CHUNKFS_BENCH_GC_FILES") {
        return v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if common::bench_mode() {
        vec![10_000, 1_000_000]
    } else {
        vec![1_000]
    }
}

fn main() {
    let mut c: Criterion = common::criterion();
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
            "gc {files} files: rows inserted in {secs:.2} s, meta.db {} MiB",
            db >> 20
        );
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
