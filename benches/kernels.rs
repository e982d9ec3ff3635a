//! The data-path kernels on 64 MiB of mixed data: FastCDC cutting at three average sizes,
//! BLAKE3, zstd compression of chunks at levels 1 and 3, and decompression. Single-threaded:
//! the core runs hashing and compression on rayon, so multiply by the cores it gets.
//!
//! `cargo bench --bench kernels`; results in docs/BENCHMARKS.md ("Kernels and core").

mod common;

use chunkfs::chunker::{self, ChunkHash, ChunkParams};
use chunkfs::store::superchunk::{Codec, compress_chunk, decompress_chunk};
use common::{KIB, MIB};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, black_box};

fn main() {
    let mut c = common::criterion();
    let len = if common::bench_mode() {
        64 * MIB
    } else {
        4 * MIB
    };
    let data = common::mixed(1, len);
    cutting(&mut c, &data);
    hashing(&mut c, &data);
    compression(&mut c, &data);
    c.final_summary();
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    bytes: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    // Every iteration is tens of milliseconds or more: flat sampling keeps ten samples
    // inside the short measurement time instead of criterion's 55 linear iterations.
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(bytes as u64));
    g
}

fn cutting(c: &mut Criterion, data: &[u8]) {
    let mut g = group(c, "fastcdc_cut", data.len());
    for avg in [16, 64, 256] {
        let p = ChunkParams::from_avg((avg * KIB) as u32);
        let n = chunker::cut(data, p).len();
        eprintln!(
            "fastcdc avg {avg} KiB: {n} chunks, mean {:.1} KiB",
            data.len() as f64 / n as f64 / KIB as f64
        );
        g.bench_function(BenchmarkId::new("avg", format!("{avg}KiB")), |b| {
            b.iter(|| chunker::cut(black_box(data), p))
        });
    }
    g.finish();
}

fn chunks64(data: &[u8]) -> Vec<&[u8]> {
    common::split(data, &chunker::cut(data, ChunkParams::default()))
}

fn hashing(c: &mut Criterion, data: &[u8]) {
    let chunks = chunks64(data);
    let mut g = group(c, "blake3", data.len());
    // What the write path and fsck do: one hash per ~64 KiB chunk.
    g.bench_function("per_chunk_64KiB", |b| {
        b.iter(|| {
            for ch in &chunks {
                black_box(ChunkHash::of(black_box(ch)));
            }
        })
    });
    // The same bytes as one input: the single-thread ceiling (BLAKE3's SIMD tree mode).
    g.bench_function("whole_buffer", |b| b.iter(|| blake3::hash(black_box(data))));
    g.finish();
}

fn compression(c: &mut Criterion, data: &[u8]) {
    let chunks = chunks64(data);
    let mut g = group(c, "zstd", data.len());
    for level in [1, 3] {
        let stored: usize = chunks
            .iter()
            .map(|ch| compress_chunk(ch, level).1.len())
            .sum();
        eprintln!(
            "compress_chunk level {level}: {:.1} MiB -> {:.1} MiB (ratio {:.2})",
            common::mib(data.len() as u64),
            common::mib(stored as u64),
            data.len() as f64 / stored as f64
        );
        g.bench_function(
            BenchmarkId::new("compress_chunk", format!("level{level}")),
            |b| {
                b.iter(|| {
                    for ch in &chunks {
                        black_box(compress_chunk(black_box(ch), level));
                    }
                })
            },
        );
    }
    let compressed: Vec<(Codec, Vec<u8>, u32)> = chunks
        .iter()
        .map(|ch| {
            let (codec, s) = compress_chunk(ch, 3);
            (codec, s, ch.len() as u32)
        })
        .collect();
    let zstd_frames = compressed.iter().filter(|c| c.0 == Codec::Zstd).count();
    eprintln!(
        "decompress input: {zstd_frames} of {} chunks are zstd frames, the rest raw",
        compressed.len()
    );
    // Throughput counts plain bytes out, as a reader sees them; raw chunks are copies.
    g.bench_function("decompress_chunk/level3", |b| {
        b.iter(|| {
            for (codec, s, raw) in &compressed {
                black_box(decompress_chunk(*codec, black_box(s), *raw).unwrap());
            }
        })
    });
    g.finish();
}
