//! The chunk index at scale, through the real metadata layer: `meta::open` on a file in a
//! temp dir (WAL, synchronous=FULL, 64 MiB page cache), rows added with `chunks::insert` in
//! transactions of 10,000, then random `exists` and `location` lookups of present and absent
//! hashes. Prints insert rates, the database size and the process's peak RSS; criterion times
//! the lookups.
//!
//! `cargo bench --bench index` builds 1 M rows; `CHUNKFS_BENCH_10M=1` adds 10 M (several
//! minutes to build). Each index is built once per run, outside criterion's iterations.

mod common;

use chunkfs::chunker::ChunkHash;
use chunkfs::meta::{self, chunks};
use chunkfs::store::superchunk::{Codec, SuperchunkId};
use common::Rng;
use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use rusqlite::Connection;
use std::path::Path;
use std::time::{Duration, Instant};

const BATCH: u64 = 10_000;
const LOOKUP_KEYS: usize = 100_000;

/// Present keys are H(i) for i < n; absent keys come from another domain, so they are
/// never in the index and need no list of what was inserted.
fn key(i: u64) -> ChunkHash {
    ChunkHash(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn absent_key(i: u64) -> ChunkHash {
    let mut h = blake3::Hasher::new();
    h.update(b"absent").update(&i.to_le_bytes());
    ChunkHash(*h.finalize().as_bytes())
}

fn location(i: u64) -> chunks::Location {
    // About 64 chunks of ~64 KiB per 4 MiB superchunk, as the store writes them.
    chunks::Location {
        superchunk: SuperchunkId(i / 64 + 1),
        offset: 4096 + (i % 64) as u32 * 40_000,
        stored_len: 40_000,
        raw_len: 65_536,
        codec: Codec::Zstd,
    }
}

fn main() {
    let mut c = common::criterion();
    let mut sizes = vec![if common::bench_mode() {
        1_000_000
    } else {
        20_000
    }];
    if common::bench_mode() && std::env::var("CHUNKFS_BENCH_10M").is_ok_and(|v| v == "1") {
        sizes.push(10_000_000);
    }
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let conn = build(&dir.path().join("meta.db"), n);
        lookups(&mut c, &conn, n);
        report_memory(&format!("{} after lookups", label(n)));
    }
    c.final_summary();
}

fn label(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else {
        format!("{}k", n / 1000)
    }
}

fn build(path: &Path, n: u64) -> Connection {
    let conn = meta::open(path, true).unwrap();
    let mut total = Duration::ZERO;
    let (mut last_tenth, mut last_rows) = (Duration::ZERO, 0);
    let mut keys = Vec::with_capacity(BATCH as usize);
    let wall = Instant::now();
    for start in (0..n).step_by(BATCH as usize) {
        let end = (start + BATCH).min(n);
        keys.clear();
        keys.extend((start..end).map(key));
        let t = Instant::now();
        conn.execute_batch("BEGIN").unwrap();
        for (i, k) in (start..end).zip(&keys) {
            chunks::insert(&conn, k, &location(i)).unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        let d = t.elapsed();
        total += d;
        if start >= n - n / 10 {
            last_tenth += d;
            last_rows += end - start;
        }
    }
    let rate = |rows: u64, d: Duration| rows as f64 / d.as_secs_f64();
    eprintln!(
        "\nindex {}: inserted {n} rows in {:.1} s of transactions ({:.1} s wall): {:.0} rows/s \
         overall, {:.0} rows/s over the last tenth (the largest tree)",
        label(n),
        total.as_secs_f64(),
        wall.elapsed().as_secs_f64(),
        rate(n, total),
        rate(last_rows, last_tenth),
    );
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = path.with_extension("db-wal");
    eprintln!(
        "index {}: meta.db {:.1} MiB + WAL {:.1} MiB before checkpoint",
        label(n),
        common::mib(size(path)),
        common::mib(size(&wal))
    );
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    eprintln!(
        "index {}: meta.db {:.1} MiB after checkpoint ({:.1} bytes per row)",
        label(n),
        common::mib(size(path)),
        size(path) as f64 / n as f64
    );
    if let Some(trees) = btree_sizes(&conn) {
        eprintln!("index {}: by b-tree: {trees}", label(n));
    }
    report_memory(&format!("{} after build", label(n)));
    conn
}

/// Bytes per table and index (the dbstat virtual table, compiled into bundled SQLite).
fn btree_sizes(conn: &Connection) -> Option<String> {
    let mut st = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 3")
        .ok()?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .ok()?;
    let parts: Vec<String> = rows
        .flatten()
        .map(|(name, bytes)| format!("{name} {:.1} MiB", common::mib(bytes as u64)))
        .collect();
    Some(parts.join(", "))
}

fn report_memory(when: &str) {
    eprintln!(
        "index {when}: peak RSS (VmHWM) {:.1} MiB, current RSS {:.1} MiB",
        common::proc_status_kib("VmHWM").unwrap_or(0) as f64 / 1024.0,
        common::proc_status_kib("VmRSS").unwrap_or(0) as f64 / 1024.0
    );
}

fn lookups(c: &mut Criterion, conn: &Connection, n: u64) {
    let mut rng = Rng::new(n);
    let present: Vec<ChunkHash> = (0..LOOKUP_KEYS).map(|_| key(rng.below(n))).collect();
    let absent: Vec<ChunkHash> = (0..LOOKUP_KEYS as u64).map(absent_key).collect();
    // Spot-check outside the timed loops (debug assertions are off in bench builds).
    for k in &present[..100] {
        assert!(chunks::exists(conn, k).unwrap());
    }
    for k in &absent[..100] {
        assert!(chunks::location(conn, k).unwrap().is_none());
    }
    let mut g = c.benchmark_group(format!("index_{}", label(n)));
    g.throughput(Throughput::Elements(1));
    for (what, keys) in [("present", &present), ("absent", &absent)] {
        let mut i = 0;
        g.bench_function(BenchmarkId::new("exists", what), |b| {
            b.iter(|| {
                let k = &keys[i % keys.len()];
                i += 1;
                chunks::exists(conn, black_box(k)).unwrap()
            })
        });
        let mut i = 0;
        g.bench_function(BenchmarkId::new("location", what), |b| {
            b.iter(|| {
                let k = &keys[i % keys.len()];
                i += 1;
                chunks::location(conn, black_box(k)).unwrap()
            })
        });
    }
    g.finish();
}
