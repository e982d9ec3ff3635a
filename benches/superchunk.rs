//! The superchunk design choices, measured (docs/FORMAT.md, "Measured choices"):
//!
//! (a) per-chunk zstd frames (what the store writes) against one frame per superchunk
//!     payload: the stored size on mixed data and on real Rust sources, and the CPU cost of a
//!     random 4 KiB read (one chunk decompressed, against a frame decompressed from its start
//!     to the offset) at superchunk targets of 1, 2, 4 and 8 MiB;
//! (b) the target size itself: header and sector-padding overhead, and the throughput of
//!     building, sealing and writing superchunks to an image file.
//!
//! The size figures are printed once (stderr) before criterion runs; the timings are
//! criterion's. `cargo bench --bench superchunk`.

mod common;

use chunkfs::chunker::{self, ChunkHash, ChunkParams};
use chunkfs::store::device::{Device, FileDevice};
use chunkfs::store::superchunk::{
    Codec, ENTRY_LEN, SuperchunkBuilder, SuperchunkId, compress_chunk, decompress_chunk,
    header_len_for,
};
use common::{MIB, Rng};
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, black_box};
use std::ops::Range;
use zstd::stream::raw::{Decoder, Operation};

const LEVEL: i32 = 3;
const SECTOR: usize = 4096;
const TARGETS_MIB: [usize; 4] = [1, 2, 4, 8];
const READ: usize = 4096;

struct Chunk {
    raw: Range<usize>,
    hash: ChunkHash,
    codec: Codec,
    stored: Vec<u8>,
}

/// One superchunk's worth of consecutive chunks, as the core would group them.
struct Group {
    chunks: Range<usize>,
    raw: Range<usize>,
    header_len: usize,
    payload_len: usize,
    /// Per-chunk layout on the device: header + payload, sector-padded.
    sealed_len: usize,
    /// The same plain bytes as one zstd frame, or None when that does not shrink them
    /// (the frame-per-superchunk design would store those raw).
    frame: Option<Vec<u8>>,
}

impl Group {
    fn frame_stored(&self) -> usize {
        self.frame.as_ref().map_or(self.raw.len(), Vec::len)
    }

    /// Whole-frame layout on the device: the same table, then the frame, sector-padded.
    fn frame_sealed_len(&self) -> usize {
        (self.header_len + self.frame_stored()).next_multiple_of(SECTOR)
    }
}

struct Dataset {
    name: &'static str,
    data: Vec<u8>,
    chunks: Vec<Chunk>,
}

impl Dataset {
    fn new(name: &'static str, data: Vec<u8>) -> Dataset {
        let lens = chunker::cut(&data, ChunkParams::default());
        let mut off = 0;
        let chunks = lens
            .iter()
            .map(|&l| {
                let raw = off..off + l;
                off += l;
                let (codec, stored) = compress_chunk(&data[raw.clone()], LEVEL);
                Chunk {
                    hash: ChunkHash::of(&data[raw.clone()]),
                    raw,
                    codec,
                    stored,
                }
            })
            .collect();
        Dataset { name, data, chunks }
    }

    /// Group chunks by the core's sealing rule: seal when the next chunk would take the
    /// encoded length (header + compressed payload) past the target.
    fn groups(&self, target: usize) -> Vec<Group> {
        let mut out = Vec::new();
        let mut first = 0;
        let mut payload = 0;
        for (i, c) in self.chunks.iter().enumerate() {
            let n = i - first;
            if n > 0 && header_len_for(n) + payload + ENTRY_LEN + c.stored.len() > target {
                out.push(self.group(first..i, payload));
                first = i;
                payload = 0;
            }
            payload += c.stored.len();
        }
        if first < self.chunks.len() {
            out.push(self.group(first..self.chunks.len(), payload));
        }
        out
    }

    fn group(&self, chunks: Range<usize>, payload_len: usize) -> Group {
        let raw = self.chunks[chunks.start].raw.start..self.chunks[chunks.end - 1].raw.end;
        let header_len = header_len_for(chunks.len());
        let plain = &self.data[raw.clone()];
        let frame = zstd::bulk::compress(plain, LEVEL).expect("zstd");
        Group {
            sealed_len: (header_len + payload_len).next_multiple_of(SECTOR),
            frame: (frame.len() < plain.len()).then_some(frame),
            chunks,
            raw,
            header_len,
            payload_len,
        }
    }
}

fn main() {
    let mut c = common::criterion();
    let len = if common::bench_mode() {
        64 * MIB
    } else {
        8 * MIB
    };
    let (src, what) = common::rust_sources(len);
    eprintln!("rust-src: {what}, {:.1} MiB", common::mib(src.len() as u64));
    let sets = [
        Dataset::new("mixed", common::mixed(7, len)),
        Dataset::new("rust-src", src),
    ];
    for set in &sets {
        print_sizes(set);
    }
    for set in &sets {
        print_spans(set);
    }
    for set in &sets {
        random_reads(&mut c, set);
    }
    sealing(&mut c, &sets[0]);
    c.final_summary();
}

fn print_sizes(set: &Dataset) {
    let raw = set.data.len() as f64;
    let raw_chunks = set.chunks.iter().filter(|c| c.codec == Codec::Raw).count();
    eprintln!(
        "\n{}: {:.1} MiB in {} chunks ({} stored raw)",
        set.name,
        raw / MIB as f64,
        set.chunks.len(),
        raw_chunks
    );
    eprintln!(
        "target | superchunks | raw/sc MiB | per-chunk ratio | whole-frame ratio | gain | \
         header % | padding % | pad/sc KiB | device bytes per 4K read: per-chunk, whole-frame"
    );
    for t in TARGETS_MIB {
        let groups = set.groups(t * MIB);
        let n = groups.len() as f64;
        let per: usize = groups.iter().map(|g| g.sealed_len).sum();
        let whole: usize = groups.iter().map(Group::frame_sealed_len).sum();
        let header: usize = groups.iter().map(|g| g.header_len).sum();
        let pad: usize = groups
            .iter()
            .map(|g| g.sealed_len - g.header_len - g.payload_len)
            .sum();
        // A uniformly random read lands in a chunk (or superchunk) in proportion to its
        // plain length; per-chunk reads its stored bytes, whole-frame on average half the frame.
        let per_read: f64 = set
            .chunks
            .iter()
            .map(|c| c.raw.len() as f64 * c.stored.len() as f64)
            .sum::<f64>()
            / raw;
        let whole_read: f64 = groups
            .iter()
            .map(|g| g.raw.len() as f64 * g.frame_stored() as f64 / 2.0)
            .sum::<f64>()
            / raw;
        eprintln!(
            "{t} MiB | {} | {:.2} | {:.3} | {:.3} | {:+.1}% | {:.2} | {:.3} | {:.2} | {:.0} KiB, {:.0} KiB",
            groups.len(),
            raw / n / MIB as f64,
            raw / per as f64,
            raw / whole as f64,
            100.0 * (per as f64 / whole as f64 - 1.0),
            100.0 * header as f64 / per as f64,
            100.0 * pad as f64 / per as f64,
            pad as f64 / n / 1024.0,
            per_read / 1024.0,
            whole_read / 1024.0,
        );
    }
}

/// Frames of consecutive chunks covering at least `span` plain bytes, never crossing a
/// superchunk: the middle ground between a frame per chunk and one per superchunk.
struct Spans {
    frames: Vec<(Range<usize>, Option<Vec<u8>>)>,
    /// Device bytes, the chunk table kept as is (a frame table would add ~16 bytes a frame).
    device: usize,
}

fn spans(set: &Dataset, groups: &[Group], span: usize) -> Spans {
    let (mut frames, mut device) = (Vec::new(), 0);
    for g in groups {
        let (mut start, mut stored) = (g.raw.start, 0);
        for i in g.chunks.clone() {
            let end = set.chunks[i].raw.end;
            if end - start >= span || i + 1 == g.chunks.end {
                let plain = &set.data[start..end];
                let f = zstd::bulk::compress(plain, LEVEL).expect("zstd");
                stored += f.len().min(plain.len());
                frames.push((start..end, (f.len() < plain.len()).then_some(f)));
                start = end;
            }
        }
        device += (g.header_len + stored).next_multiple_of(SECTOR);
    }
    Spans { frames, device }
}

const SPAN_TARGET_MIB: usize = 4;
const SPANS_KIB: [usize; 3] = [256, 1024, 2048];

fn print_spans(set: &Dataset) {
    let groups = set.groups(SPAN_TARGET_MIB * MIB);
    let raw = set.data.len() as f64;
    eprintln!(
        "\n{}: frames spanning several chunks, {SPAN_TARGET_MIB} MiB target\n\
         span | frames | ratio | device bytes per 4K read",
        set.name
    );
    for kib in SPANS_KIB {
        let sp = spans(set, &groups, kib * 1024);
        let read: f64 = sp
            .frames
            .iter()
            .map(|(r, f)| r.len() as f64 * f.as_ref().map_or(READ, Vec::len) as f64 / 2.0)
            .sum::<f64>()
            / raw;
        eprintln!(
            ">= {kib} KiB | {} | {:.3} | {:.0} KiB",
            sp.frames.len(),
            raw / sp.device as f64,
            read / 1024.0
        );
    }
}

/// 4 KiB-aligned offsets spread uniformly over the data.
fn read_offsets(len: usize, n: usize) -> Vec<usize> {
    let mut rng = Rng::new(42);
    let slots = (len / READ) as u64;
    (0..n).map(|_| rng.below(slots) as usize * READ).collect()
}

/// Index of the range in `starts` (sorted) that holds `off`.
fn find(starts: &[usize], off: usize) -> usize {
    starts.partition_point(|&s| s <= off) - 1
}

fn random_reads(c: &mut Criterion, set: &Dataset) {
    let offsets = read_offsets(set.data.len(), 4096);
    let chunk_starts: Vec<usize> = set.chunks.iter().map(|c| c.raw.start).collect();
    let mut g = c.benchmark_group(format!("random_4k_read/{}", set.name));
    g.throughput(Throughput::Elements(1));

    // Per-chunk frames: decompress the one chunk holding the offset (the size of the
    // superchunk around it does not matter). The read path also checks the chunk's hash.
    for verify in [false, true] {
        let name = if verify {
            "per_chunk+hash"
        } else {
            "per_chunk"
        };
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                let off = offsets[i % offsets.len()];
                i += 1;
                let ch = &set.chunks[find(&chunk_starts, off)];
                let plain = decompress_chunk(ch.codec, &ch.stored, ch.raw.len() as u32).unwrap();
                if verify {
                    assert_eq!(ChunkHash::of(&plain), ch.hash);
                }
                let at = off - ch.raw.start;
                black_box(plain[at..(at + READ).min(plain.len())].to_vec())
            })
        });
    }

    // One frame per superchunk: decompress from the frame's start until the read is covered,
    // reusing one context and a 128 KiB output window (the best case for this layout).
    let mut dec = Decoder::new().unwrap();
    let mut window = vec![0u8; 128 * 1024];
    for t in TARGETS_MIB {
        let groups = set.groups(t * MIB);
        let starts: Vec<usize> = groups.iter().map(|g| g.raw.start).collect();
        let mut i = 0;
        g.bench_function(BenchmarkId::new("whole_frame", format!("{t}MiB")), |b| {
            b.iter(|| {
                let off = offsets[i % offsets.len()];
                i += 1;
                let grp = &groups[find(&starts, off)];
                let want = (off - grp.raw.start + READ).min(grp.raw.len());
                match &grp.frame {
                    None => black_box(set.data[off..off + READ].to_vec()).len(),
                    Some(f) => black_box(frame_prefix(&mut dec, f, want, &mut window)),
                }
            })
        });
    }
    let groups = set.groups(SPAN_TARGET_MIB * MIB);
    for kib in SPANS_KIB {
        let sp = spans(set, &groups, kib * 1024);
        let starts: Vec<usize> = sp.frames.iter().map(|f| f.0.start).collect();
        let mut i = 0;
        let id = format!("{kib}KiB_in_{SPAN_TARGET_MIB}MiB");
        g.bench_function(BenchmarkId::new("frames", id), |b| {
            b.iter(|| {
                let off = offsets[i % offsets.len()];
                i += 1;
                let (r, f) = &sp.frames[find(&starts, off)];
                let want = (off - r.start + READ).min(r.len());
                match f {
                    None => black_box(set.data[off..off + READ].to_vec()).len(),
                    Some(f) => black_box(frame_prefix(&mut dec, f, want, &mut window)),
                }
            })
        });
    }
    g.finish();
}

/// Decompress `frame` until at least `want` plain bytes came out; returns how many did.
fn frame_prefix(dec: &mut Decoder, frame: &[u8], want: usize, window: &mut [u8]) -> usize {
    dec.reinit().unwrap();
    let (mut read, mut produced) = (0, 0);
    while produced < want {
        let st = dec.run_on_buffers(&frame[read..], window).unwrap();
        read += st.bytes_read;
        produced += st.bytes_written;
        if st.bytes_written == 0 && st.bytes_read == 0 {
            break;
        }
    }
    produced
}

/// Build + seal + write the whole dataset's superchunks to an image file (page cache; no
/// fsync, which the core pays once per group commit whatever the target).
fn sealing(c: &mut Criterion, set: &Dataset) {
    let dir = tempfile::tempdir().unwrap();
    let dev = FileDevice::create(&dir.path().join("data.img")).unwrap();
    let mut g = c.benchmark_group(format!("seal_write/{}", set.name));
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(set.data.len() as u64));
    for t in TARGETS_MIB {
        let target = t * MIB;
        g.bench_function(BenchmarkId::new("target", format!("{t}MiB")), |b| {
            b.iter_batched(
                || {
                    set.chunks
                        .iter()
                        .map(|c| c.stored.clone())
                        .collect::<Vec<_>>()
                },
                |stored| seal_all(set, stored, target, &dev),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
    dev.sync().unwrap();
}

fn seal_all(set: &Dataset, stored: Vec<Vec<u8>>, target: usize, dev: &dyn Device) -> u64 {
    let mut off = SECTOR as u64;
    let mut id = 1;
    let mut b = SuperchunkBuilder::new(SuperchunkId(id));
    let flush = |b: SuperchunkBuilder, off: &mut u64| {
        let sealed = b.seal();
        sealed.write_to(dev, *off).unwrap();
        *off += sealed.bytes.len() as u64;
    };
    for (c, s) in set.chunks.iter().zip(stored) {
        if !b.is_empty() && b.encoded_len() + ENTRY_LEN + s.len() > target {
            id += 1;
            flush(
                std::mem::replace(&mut b, SuperchunkBuilder::new(SuperchunkId(id))),
                &mut off,
            );
        }
        b.push(c.hash, c.codec, c.raw.len() as u32, s);
    }
    flush(b, &mut off);
    off
}
