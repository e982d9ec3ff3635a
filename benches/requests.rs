//! Per-request costs against the size of the store: one call of the core API each, as the
//! FUSE layer makes it (`src/fuse.rs`) while `cp -a` copies a backup in, on stores of 10 k and
//! 1 M files. Nothing per request may grow with the size of the store (issue #13).
//!
//! The store is `common::store`'s `Live` mix (its metadata filled directly with SQL: every
//! file current and named, 1,000 to a directory), opened with `Fs::open` and the daemon's
//! default options, so the background committer commits every 100 ms and background GC runs
//! between commits (with nothing to collect). No mount: the figures are the core's share of a
//! request, without the FUSE round trip. Timed, one call each:
//!
//! - `lookup`: an existing name (a random file in its directory), `lookup_as` as fuse.rs calls
//!   it; `lookup_missing`: a name absent from a random directory (the negative lookup the
//!   kernel makes before each create);
//! - `getattr` of a random file;
//! - `lookup_recent`, `getattr_recent`: the same on a random file among the last 10,000 of
//!   the store, a working set of one size at every store size (as a backup copy's requests
//!   mostly touch what it made recently), so their growth is the trees' depth alone;
//! - `create` of a new file in a random directory (its `release` follows, untimed);
//! - `chmod`, `chown`, `utimes`: the three `setattr`s of `cp -a`, each on a file just created
//!   and released (untimed);
//! - `write` of 16 KiB of fresh random data at offset 0 of a file just created (`write_as`),
//!   its `release` untimed; `release` of such a file, which commits its content;
//! - `statfs`.
//!
//! The read-only requests run first, with `common::criterion()`'s timing; the others add a
//! file per call, so they run short (0.2 s warm-up, 0.5 s measurement) to keep the small
//! store small; the number of files each size ends with is printed. Besides criterion's
//! figures, a Markdown table of the median of every single call (warm-up included) per request
//! and size is printed at the end, with the ratio of the largest size to the smallest.
//!
//! `cargo bench --bench requests`; `CHUNKFS_BENCH_REQUEST_FILES=N[,N…]` picks other sizes
//! (default 10000,1000000; 1000 under `cargo test --benches`); a criterion filter after `--`
//! (`cargo bench --bench requests -- getattr`) times only the requests it names.

mod common;

use chunkfs::fs::{Credentials, Fh, Fs, FsOptions, Ino, SetAttr, TimeSet};
use common::Rng;
use common::store::{self, Layout, Mix};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, black_box};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// The requests in the order of the printed table.
const REQUESTS: &[&str] = &[
    "lookup",
    "lookup_recent",
    "lookup_missing",
    "getattr",
    "getattr_recent",
    "statfs",
    "create",
    "chmod",
    "chown",
    "utimes",
    "write",
    "release",
];

/// Growth between the smallest and the largest size that is flagged as a defect.
const FLAG_RATIO: f64 = 1.5;

const WRITE_LEN: usize = 16 * 1024;

/// The working set of the `_recent` requests (files).
const RECENT: u64 = 10_000;

/// The duration of every single timed call, by request and store size.
type Calls = BTreeMap<(&'static str, u64), Vec<Duration>>;

/// Bench `op` as request `name` at size `files`: once per iteration, `setup` before it and
/// `after` after it, both untimed.
fn time<S, T>(
    g: &mut BenchmarkGroup<WallTime>,
    calls: &RefCell<Calls>,
    (name, files): (&'static str, u64),
    mut setup: impl FnMut() -> S,
    mut op: impl FnMut(S) -> T,
    mut after: impl FnMut(T),
) {
    g.bench_function(BenchmarkId::new(name, files), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut each = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                let s = setup();
                let t = Instant::now();
                let out = black_box(op(s));
                let d = t.elapsed();
                after(out);
                total += d;
                each.push(d);
            }
            calls
                .borrow_mut()
                .entry((name, files))
                .or_default()
                .extend(each);
            total
        })
    });
}

/// Everything the timed requests need besides the `Fs`: the layout, random choices and a
/// counter for new names.
struct Picks {
    layout: Layout,
    rng: RefCell<Rng>,
    made: Cell<u64>,
}

impl Picks {
    fn below(&self, n: u64) -> u64 {
        self.rng.borrow_mut().below(n)
    }

    fn random_dir(&self) -> Ino {
        self.layout.dir(self.below(self.layout.dirs))
    }

    fn random_file(&self) -> u64 {
        self.below(self.layout.files)
    }

    /// A random file among the last `RECENT` of the store: a working set of the same size at
    /// every store size, so the growth of the `_recent` figures is only the trees' depth.
    fn recent_file(&self) -> u64 {
        let n = self.layout.files.min(RECENT);
        self.layout.files - n + self.below(n)
    }

    /// A name never used before, in a random existing directory.
    fn new_name(&self) -> (Ino, Vec<u8>) {
        self.made.set(self.made.get() + 1);
        (
            self.random_dir(),
            format!("n{}", self.made.get()).into_bytes(),
        )
    }

    fn data(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(WRITE_LEN);
        self.rng.borrow_mut().fill(&mut v, WRITE_LEN);
        v
    }
}

/// A new empty file, open for writing as `cp` opens it.
fn fresh(fs: &Fs, p: &Picks) -> (Ino, Fh) {
    let (dir, name) = p.new_name();
    let me = Credentials::this_process();
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    let (a, o) = fs.create(dir, &name, 0o644, flags, me.uid, me.gid).unwrap();
    (a.ino, o.fh)
}

/// A new empty file, created and closed.
fn closed(fs: &Fs, p: &Picks) -> Ino {
    let (ino, fh) = fresh(fs, p);
    fs.release(ino, fh).unwrap();
    ino
}

fn read_only(fs: &Fs, p: &Picks, g: &mut BenchmarkGroup<WallTime>, calls: &RefCell<Calls>) {
    let files = p.layout.files;
    let who = Credentials::this_process();
    let random: &dyn Fn() -> u64 = &|| p.random_file();
    let recent: &dyn Fn() -> u64 = &|| p.recent_file();
    for (lookup, getattr, pick) in [
        ("lookup", "getattr", random),
        ("lookup_recent", "getattr_recent", recent),
    ] {
        time(
            g,
            calls,
            (lookup, files),
            || {
                let i = pick();
                (p.layout.dir_of(i), Layout::file_name(i))
            },
            |(dir, name)| fs.lookup_as(&who, dir, &name).unwrap(),
            drop,
        );
        time(
            g,
            calls,
            (getattr, files),
            || p.layout.file(pick()),
            |ino| fs.getattr(ino).unwrap(),
            drop,
        );
    }
    time(
        g,
        calls,
        ("lookup_missing", files),
        || {
            (
                p.random_dir(),
                format!("absent{}", p.random_file()).into_bytes(),
            )
        },
        |(dir, name)| fs.lookup_as(&who, dir, &name).unwrap_err(),
        drop,
    );
    time(
        g,
        calls,
        ("statfs", files),
        || (),
        |()| fs.statfs().unwrap(),
        drop,
    );
}

fn changing(fs: &Fs, p: &Picks, g: &mut BenchmarkGroup<WallTime>, calls: &RefCell<Calls>) {
    let files = p.layout.files;
    let me = Credentials::this_process();
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    time(
        g,
        calls,
        ("create", files),
        || p.new_name(),
        |(dir, name)| fs.create(dir, &name, 0o644, flags, me.uid, me.gid).unwrap(),
        |(a, o)| fs.release(a.ino, o.fh).unwrap(),
    );
    let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let sets = [
        (
            "chmod",
            SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            },
        ),
        (
            "chown",
            SetAttr {
                uid: Some(1000),
                gid: Some(1000),
                ..SetAttr::default()
            },
        ),
        (
            "utimes",
            SetAttr {
                atime: Some(TimeSet::At(stamp)),
                mtime: Some(TimeSet::At(stamp)),
                ..SetAttr::default()
            },
        ),
    ];
    for (name, set) in &sets {
        time(
            g,
            calls,
            (*name, files),
            || closed(fs, p),
            |ino| fs.setattr(ino, set).unwrap(),
            drop,
        );
    }
    time(
        g,
        calls,
        ("write", files),
        || (fresh(fs, p), p.data()),
        |((ino, fh), data)| (ino, fh, fs.write_as(&me, ino, fh, 0, &data).unwrap()),
        |(ino, fh, _)| fs.release(ino, fh).unwrap(),
    );
    time(
        g,
        calls,
        ("release", files),
        || {
            let (ino, fh) = fresh(fs, p);
            fs.write_as(&me, ino, fh, 0, &p.data()).unwrap();
            (ino, fh)
        },
        |(ino, fh)| fs.release(ino, fh).unwrap(),
        drop,
    );
}

fn median_us(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn thousands(files: u64) -> String {
    match files {
        f if f >= 1_000_000 && f % 1_000_000 == 0 => format!("{} M", f / 1_000_000),
        f if f >= 1_000 && f % 1_000 == 0 => format!("{} k", f / 1_000),
        f => f.to_string(),
    }
}

/// The medians as a Markdown table, a column per size and the ratio of the last to the first.
fn table(calls: &mut Calls, sizes: &[u64]) {
    let head: Vec<String> = sizes.iter().map(|&f| thousands(f)).collect();
    println!("\nmedian µs per request (every single call), by files in the store:\n");
    println!("| request | {} | ratio |", head.join(" | "));
    println!("|---|{}---:|", "---:|".repeat(sizes.len()));
    // A criterion filter (`cargo bench --bench requests -- getattr`) leaves the others out.
    let timed: Vec<&'static str> = REQUESTS
        .iter()
        .copied()
        .filter(|&r| sizes.iter().any(|&f| calls.contains_key(&(r, f))))
        .collect();
    for req in timed {
        let meds: Vec<f64> = sizes
            .iter()
            .map(|&f| calls.get_mut(&(req, f)).map_or(f64::NAN, |v| median_us(v)))
            .collect();
        let ratio = meds[meds.len() - 1] / meds[0];
        let flag = if ratio > FLAG_RATIO { " **grows**" } else { "" };
        let cells: Vec<String> = meds.iter().map(|m| format!("{m:.1}")).collect();
        println!("| {req} | {} | {ratio:.2}×{flag} |", cells.join(" | "));
    }
}

fn main() {
    let mut c: Criterion = common::criterion();
    let sizes = common::sizes(
        "CHUNKFS_BENCH_REQUEST_FILES",
        &[10_000, 1_000_000],
        &[1_000],
    );
    let calls = RefCell::new(Calls::new());
    for &files in &sizes {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(files, Mix::Live);
        let (store, _) = store::make(dir.path(), &layout);
        let t = Instant::now();
        let fs = Fs::open(&store, FsOptions::default()).unwrap();
        println!(
            "{files} files: Fs::open {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let picks = Picks {
            layout,
            rng: RefCell::new(Rng::new(files)),
            made: Cell::new(0),
        };
        let mut g = c.benchmark_group("requests");
        read_only(&fs, &picks, &mut g, &calls);
        g.finish();
        let mut g = c.benchmark_group("requests");
        g.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500));
        changing(&fs, &picks, &mut g, &calls);
        g.finish();
        let t = Instant::now();
        fs.sync_all().unwrap();
        println!(
            "{files} files: {} files created by the timed requests; final sync_all {:.1} ms",
            picks.made.get(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    table(&mut calls.borrow_mut(), &sizes);
    c.final_summary();
}
