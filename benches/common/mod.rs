//! Data and harness helpers shared by the benches: deterministic "mixed" data (text-like,
//! random, zeros-ish thirds), real Rust sources as a text corpus, criterion defaults sized for
//! a shared 2-core machine, small readers of /proc for memory figures, and (`store`) a store
//! of many files filled directly with SQL.
#![allow(dead_code)]

pub mod store;

use criterion::Criterion;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// True when run by `cargo bench` (which passes `--bench`). Under `cargo test --benches` the
/// harness runs each routine once, so the benches shrink their data to stay quick there.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The store sizes (files) to run: the comma-separated list in the environment variable `var`
/// if set, else `full` under `cargo bench` and `quick` under `cargo test --benches`.
pub fn sizes(var: &str, full: &[u64], quick: &[u64]) -> Vec<u64> {
    if let Ok(v) = std::env::var(var) {
        return v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    if bench_mode() { full } else { quick }.to_vec()
}

/// Short runs by default (other engineers share the cores); command-line flags still override.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .without_plots()
        .configure_from_args()
}

/// xorshift64*: fast, deterministic, good enough to defeat a compressor.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 0..n (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn fill(&mut self, out: &mut Vec<u8>, len: usize) {
        let end = out.len() + len;
        while out.len() + 8 <= end {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = self.next_u64().to_le_bytes();
        out.extend_from_slice(&tail[..end - out.len()]);
    }
}

const WORDS: &[&str] = &[
    "self", "data", "len", "offset", "chunk", "hash", "store", "buf", "index", "value", "key",
    "result", "error", "entry", "table", "cache", "file", "path", "name", "size", "count", "start",
    "end", "next", "prev", "node", "tree", "list", "map", "set", "read", "write", "open", "close",
    "sync", "flush", "commit", "seal", "push", "pop", "get", "insert", "remove", "iter", "into",
    "from", "new", "default", "clone", "config", "options", "state", "inner", "header", "payload",
    "device", "sector", "extent", "block", "super", "meta", "seq", "revision", "inode", "parent",
    "child", "dir", "mode", "flags", "time", "the", "of", "and", "to", "a", "in", "is", "that",
    "for", "it", "with", "as", "on", "be", "at", "by", "this", "not", "or", "are", "which", "when",
    "every", "must", "once", "before",
];
const TYPES: &[&str] = &[
    "u8",
    "u32",
    "u64",
    "usize",
    "bool",
    "Vec<u8>",
    "&[u8]",
    "String",
    "Option<u64>",
    "Result<()>",
    "&mut Self",
    "Arc<Inner>",
    "ChunkHash",
    "Extent",
];

fn word(rng: &mut Rng, out: &mut Vec<u8>) {
    // Squaring skews the choice towards the front of the list, like real vocabularies.
    let r = rng.below(WORDS.len() as u64);
    let i = (r * r) / WORDS.len() as u64;
    out.extend_from_slice(WORDS[i as usize].as_bytes());
}

/// Source-like lines built from a small vocabulary: compresses a few times, as code does.
pub fn text_like(rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    while out.len() < end {
        let indent = 4 * rng.below(4) as usize;
        out.resize(out.len() + indent, b' ');
        match rng.below(7) {
            0 => {
                out.extend_from_slice(b"let ");
                word(rng, out);
                out.push(b'_');
                word(rng, out);
                out.extend_from_slice(b" = ");
                word(rng, out);
                out.push(b'(');
                word(rng, out);
                out.extend_from_slice(format!(", {});", rng.below(10_000)).as_bytes());
            }
            1 => {
                out.extend_from_slice(b"pub fn ");
                word(rng, out);
                out.push(b'_');
                word(rng, out);
                out.extend_from_slice(b"(&self, ");
                word(rng, out);
                out.extend_from_slice(b": ");
                out.extend_from_slice(TYPES[rng.below(TYPES.len() as u64) as usize].as_bytes());
                out.extend_from_slice(b") -> ");
                out.extend_from_slice(TYPES[rng.below(TYPES.len() as u64) as usize].as_bytes());
                out.extend_from_slice(b" {");
            }
            2 | 3 => {
                out.extend_from_slice(b"// ");
                for _ in 0..rng.range(4, 12) {
                    word(rng, out);
                    out.push(b' ');
                }
                word(rng, out);
                out.push(b'.');
            }
            4 => {
                out.extend_from_slice(b"if ");
                word(rng, out);
                out.push(b'.');
                word(rng, out);
                out.extend_from_slice(format!("() > {} {{", rng.below(1 << 16)).as_bytes());
            }
            5 => {
                word(rng, out);
                out.push(b'.');
                word(rng, out);
                out.push(b'(');
                word(rng, out);
                out.extend_from_slice(b", \"");
                word(rng, out);
                out.push(b' ');
                word(rng, out);
                out.extend_from_slice(b"\")?;");
            }
            _ => out.push(b'}'),
        }
        out.push(b'\n');
    }
    out.truncate(end);
}

/// Mostly zeros, as sparse images and preallocated database pages are: each 4 KiB page has a
/// small header (page number, a random word); one page in eight repeats a 16-byte pattern.
pub fn zeros_ish(rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    let mut page = 0u64;
    while out.len() < end {
        let start = out.len();
        out.extend_from_slice(&page.to_le_bytes());
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
        if rng.below(8) == 0 {
            let pat = rng.next_u64().to_le_bytes();
            while out.len() < start + 4096 {
                out.extend_from_slice(&pat);
            }
        }
        out.resize(start + 4096, 0);
        page += 1;
    }
    out.truncate(end);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Random,
    Zeros,
}

/// `len` bytes of mixed data: segments of 32 KiB–1 MiB taking turns text-like, random and
/// zeros-ish, so each kind is about a third and chunks are mostly (not all) of one kind.
pub fn mixed(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len);
    let kinds = [Kind::Text, Kind::Random, Kind::Zeros];
    let mut k = rng.below(3) as usize;
    while out.len() < len {
        let seg = (rng.range(32 * KIB as u64, MIB as u64) as usize).min(len - out.len());
        match kinds[k % 3] {
            Kind::Text => text_like(&mut rng, &mut out, seg),
            Kind::Random => rng.fill(&mut out, seg),
            Kind::Zeros => zeros_ish(&mut rng, &mut out, seg),
        }
        k += 1;
    }
    out
}

/// Up to `limit` bytes of real text: the Rust sources under ~/.cargo/registry/src, read in
/// sorted path order so the corpus is the same from run to run on one machine. Falls back to
/// generated text (and says so) when the registry is absent.
pub fn rust_sources(limit: usize) -> (Vec<u8>, String) {
    let root = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/registry/src"))
        .unwrap_or_default();
    let mut files = Vec::new();
    collect_rs(&root, &mut files);
    files.sort();
    let mut out = Vec::with_capacity(limit);
    let mut used = 0;
    for f in &files {
        if out.len() >= limit {
            break;
        }
        if let Ok(b) = std::fs::read(f) {
            let take = b.len().min(limit - out.len());
            out.extend_from_slice(&b[..take]);
            used += 1;
        }
    }
    if out.len() < limit / 2 {
        eprintln!(
            "note: few Rust sources under {}; using generated text",
            root.display()
        );
        let mut rng = Rng::new(99);
        out.clear();
        text_like(&mut rng, &mut out, limit);
        return (out, "generated text".into());
    }
    let what = format!("{used} .rs files from {}", root.display());
    (out, what)
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            collect_rs(&p, out);
        } else if ft.is_file() && p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A field of /proc/self/status in KiB (VmHWM = peak RSS, VmRSS = current).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Consecutive slices of `data` with the given lengths.
pub fn split<'a>(data: &'a [u8], lens: &[usize]) -> Vec<&'a [u8]> {
    let mut off = 0;
    lens.iter()
        .map(|&l| {
            let s = &data[off..off + l];
            off += l;
            s
        })
        .collect()
}
