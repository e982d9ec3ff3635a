//! Reading ahead of sequential readers, and one decode per chunk however many readers want it.
//!
//! The kernel reads a FUSE file in readahead-sized requests (128 KiB unless the mount's bdi
//! readahead is raised) with few of them ahead of the reader, so a read path that decodes only
//! what each request asks for serializes the device read, the decompression and the hash check
//! of every chunk behind the request round trip.
//! Instead a sequential reader keeps a window of chunks decoding in the background, on threads
//! of its own so it never queues behind a parallel commit or fsck on rayon's pool: the chunks
//! are claimed in `InFlight`, looked up under one core lock, read from the device in runs of
//! adjacent chunks (one `pread` per run, not per chunk), and decompressed and verified in
//! parallel into the cache. A request for a claimed chunk waits for its claim instead of
//! decoding it a second time.
//!
//! A claim that fails (device error, damage, a chunk GC moved meanwhile) completes empty, and
//! its waiters fetch the chunk themselves through `Inner::chunk`, which reports damage and
//! retries a moved chunk: the background path never decides an error.

use super::Inner;
use super::content::Content;
use super::core::ChunkSource;
use crate::chunker::ChunkHash;
use crate::store::superchunk;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

/// The most of a file kept decoding ahead of a sequential reader (windows grow to it from
/// `FIRST_WINDOW`).
const WINDOW: u64 = 8 << 20;
/// Longest device read of one run of adjacent chunks.
const MAX_RUN: u64 = 4 << 20;
/// Two chunks this close on the device are read in one run (the gap is read and dropped).
const MAX_GAP: u64 = 64 << 10;

type Slots = Mutex<HashMap<ChunkHash, Arc<Slot>>>;

/// Decoded data, or `None` when the claimant failed and the waiter must fetch it itself.
type Outcome = Option<Arc<Vec<u8>>>;

#[derive(Default)]
pub struct Slot {
    done: Mutex<Option<Outcome>>,
    cv: Condvar,
}

impl Slot {
    fn wait(&self) -> Outcome {
        let mut done = self.done.lock().unwrap();
        loop {
            if let Some(o) = done.as_ref() {
                return o.clone();
            }
            done = self.cv.wait(done).unwrap();
        }
    }
}

/// Chunks being decoded right now, and the background jobs doing it.
#[derive(Default)]
pub struct InFlight {
    slots: Arc<Slots>,
    jobs: Arc<Jobs>,
}

/// Running background jobs, counted apart from the filesystem: a job reports itself done only
/// after it has let go of the filesystem, so a close that waited for the jobs is the last
/// holder (and releases the store).
#[derive(Default)]
struct Jobs {
    running: Mutex<usize>,
    idle: Condvar,
}

impl Jobs {
    fn started(&self) {
        *self.running.lock().unwrap() += 1;
    }

    fn done(&self) {
        let mut n = self.running.lock().unwrap();
        *n -= 1;
        if *n == 0 {
            self.idle.notify_all();
        }
    }
}

/// The result of asking to decode a chunk.
pub enum Claim {
    /// Nobody was decoding it: the caller must, and complete the claim.
    Mine(Claimed),
    /// Somebody is: wait for their outcome.
    Theirs(Arc<Slot>),
}

impl Claim {
    /// The other claimant's outcome (`None` for a `Mine` claim, which is the caller's to do).
    pub fn wait(&self) -> Outcome {
        match self {
            Claim::Mine(_) => None,
            Claim::Theirs(slot) => slot.wait(),
        }
    }
}

/// An exclusive claim on decoding one chunk. Dropped without `complete`, it completes empty,
/// so a waiter never waits on a claimant that panicked or gave up.
pub struct Claimed {
    slots: Arc<Slots>,
    hash: ChunkHash,
    slot: Arc<Slot>,
}

impl Claimed {
    pub fn complete(self, data: Arc<Vec<u8>>) {
        self.finish(Some(data));
    }

    fn finish(&self, outcome: Outcome) {
        let mut done = self.slot.done.lock().unwrap();
        if done.is_none() {
            *done = Some(outcome);
            self.slot.cv.notify_all();
            drop(done);
            self.slots.lock().unwrap().remove(&self.hash);
        }
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl InFlight {
    pub fn claim(&self, hash: ChunkHash) -> Claim {
        let mut slots = self.slots.lock().unwrap();
        if let Some(s) = slots.get(&hash) {
            return Claim::Theirs(s.clone());
        }
        let slot = Arc::new(Slot::default());
        slots.insert(hash, slot.clone());
        Claim::Mine(Claimed {
            slots: self.slots.clone(),
            hash,
            slot,
        })
    }

    #[cfg(test)]
    fn is_claimed(&self, hash: &ChunkHash) -> bool {
        self.slots.lock().unwrap().contains_key(hash)
    }

    /// Wait until no background job runs (at close: a job holds the filesystem alive).
    pub fn wait_idle(&self) {
        let mut n = self.jobs.running.lock().unwrap();
        while *n > 0 {
            n = self.jobs.idle.wait(n).unwrap();
        }
    }
}

/// Where the background decoding of a file stands, kept with the file's state.
#[derive(Debug, Default)]
pub struct Ahead {
    /// Where the last read ended: a read starting near it is sequential.
    last_end: u64,
    /// Everything before this offset has been issued to a background job.
    issued_to: u64,
    /// The window last issued (0: none yet): it starts at `FIRST_WINDOW` and doubles with
    /// every refill up to the most the caller allows, so reading the head of many files
    /// decodes little of each.
    window: u64,
}

/// How far from the last read's end a read may start and still count as sequential: the
/// kernel's readahead sends several requests at once, out of order across worker threads.
const SEQUENTIAL_SLACK: u64 = 4 << 20;
/// The first window of a sequential reader.
const FIRST_WINDOW: u64 = 1 << 20;

impl Ahead {
    /// Note a read of [offset, end) and return the range to decode ahead, if any. A sequential
    /// reader gets the window past the last one issued once it comes near its end; the first
    /// sequential read issues its own range too, so that it is decoded in parallel. `max` is
    /// the largest window allowed; below 64 KiB there is no read-ahead.
    pub fn next(&mut self, offset: u64, end: u64, max: u64) -> Option<(u64, u64)> {
        let last = std::mem::replace(&mut self.last_end, end);
        if offset.abs_diff(last) > SEQUENTIAL_SLACK || max < 64 << 10 {
            self.issued_to = end;
            self.window = 0;
            return None;
        }
        let current = self.window.clamp(FIRST_WINDOW.min(max), max);
        // Refill once less than half a window is left ahead: jobs then decode half a window
        // or more at a time, which keeps their device reads long.
        if self.issued_to >= offset && self.issued_to >= end + current / 2 {
            return None;
        }
        let next = if self.window == 0 {
            current
        } else {
            (current * 2).min(max)
        };
        let from = self.issued_to.max(offset);
        self.issued_to = end + next;
        self.window = next;
        Some((from, end + next))
    }
}

/// The threads read-ahead jobs run on: their own, so a reader waiting for its window never
/// queues behind a parallel commit or an online fsck on rayon's global pool.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("chunkfs-ahead-{i}"))
            .build()
            .expect("start the read-ahead threads")
    })
}

impl Inner {
    /// The window a sequential reader decodes ahead: at most a quarter of the cache, so read-
    /// ahead never evicts what it is about to be asked for. From the options the cache was
    /// made with (the filesystem never resizes it), so a read does not lock the cache for it.
    pub(super) fn read_ahead_window(&self) -> u64 {
        WINDOW.min(self.opts.cache_bytes as u64 / 4)
    }

    /// Decode the chunks of `c` in [from, to) that are neither cached nor being decoded, in
    /// the background. Returns at once; the chunks are claimed before it does, so a reader
    /// asking for one of them from now on waits for this decode instead of starting its own.
    pub(super) fn read_ahead(&self, c: &Content, from: u64, to: u64) {
        let Some(mut i) = c.find(from) else { return };
        let mut claims = Vec::new();
        while i < c.entries().len() && c.start(i) < to {
            let e = c.entries()[i];
            i += 1;
            if e.is_hole() || self.cache.contains(&e.hash) {
                continue;
            }
            // Theirs (another job's, a reader's, or this window's own repeat of a chunk):
            // somebody is on it already.
            if let Claim::Mine(claim) = self.inflight.claim(e.hash) {
                // Its decoder may have finished between the look at the cache and the claim.
                match self.cache.peek(&e.hash) {
                    Some(d) => claim.complete(d),
                    None => claims.push(claim),
                }
            }
        }
        if claims.is_empty() {
            return;
        }
        // Counted before the closing check: a close that sets `closed` and then finds no job
        // running can no longer be followed by a job (this one sees `closed` and gives up).
        let jobs = self.inflight.jobs.clone();
        jobs.started();
        let me = match self.me.upgrade() {
            Some(me) if !self.closed.load(std::sync::atomic::Ordering::SeqCst) => me,
            _ => {
                jobs.done(); // the claims complete empty as they drop: readers fetch themselves
                return;
            }
        };
        pool().spawn(move || {
            decode_ahead(&me, claims);
            drop(me);
            jobs.done();
        });
    }
}

/// One background job: look up, read in runs, decode and verify in parallel.
fn decode_ahead(fs: &Inner, claims: Vec<Claimed>) {
    let sources: Vec<(Claimed, ChunkSource)> = {
        let core = fs.lock_core();
        claims
            .into_iter()
            .filter_map(|c| core.chunk_source(&c.hash).ok().map(|s| (c, s)))
            .collect()
    };
    runs(sources)
        .into_par_iter()
        .for_each(|run| decode_run(fs, run));
}

/// Chunks read with one device read: `start` is the device offset of the first byte read.
struct Run {
    start: u64,
    len: u64,
    chunks: Vec<(Claimed, ChunkSource)>,
}

/// Group chunks into runs of neighbours on the device, in device order. Chunks still in the
/// open superchunk are a run of their own each, with nothing to read.
fn runs(mut sources: Vec<(Claimed, ChunkSource)>) -> Vec<Run> {
    let at = |s: &ChunkSource| match s {
        ChunkSource::Device { start, loc, .. } => {
            (start + loc.offset as u64, loc.stored_len as u64)
        }
        ChunkSource::Pending(..) => (0, 0),
    };
    sources.sort_by_key(|(_, s)| at(s).0);
    let mut out: Vec<Run> = Vec::new();
    for (claim, src) in sources {
        let (off, len) = at(&src);
        if let Some(r) = out.last_mut()
            && len > 0
            && r.len > 0
            && off >= r.start + r.len
            && off - (r.start + r.len) <= MAX_GAP
            && off + len - r.start <= MAX_RUN
        {
            r.len = off + len - r.start;
            r.chunks.push((claim, src));
            continue;
        }
        out.push(Run {
            start: off,
            len,
            chunks: vec![(claim, src)],
        });
    }
    out
}

fn decode_run(fs: &Inner, run: Run) {
    let mut buf = vec![0u8; run.len as usize];
    if run.len > 0 && fs.dev.read_at(&mut buf, run.start).is_err() {
        return; // the claims complete empty; each waiter's own read reports the error
    }
    run.chunks.into_par_iter().for_each(|(claim, src)| {
        let (codec, raw_len, stored) = match &src {
            ChunkSource::Pending(c, raw, stored) => (*c, *raw, &stored[..]),
            ChunkSource::Device { start, loc, .. } => {
                let at = (start + loc.offset as u64 - run.start) as usize;
                (
                    loc.codec,
                    loc.raw_len,
                    &buf[at..at + loc.stored_len as usize],
                )
            }
        };
        if let Ok(plain) = superchunk::decompress_chunk(codec, stored, raw_len)
            && ChunkHash::of(&plain) == claim.hash
        {
            let plain = Arc::new(plain);
            fs.cache.insert(claim.hash, plain.clone());
            claim.complete(plain);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claimant_waits_for_the_first_and_a_dropped_claim_releases_its_waiters() {
        let f = InFlight::default();
        let h = ChunkHash([7; 32]);
        let Claim::Mine(mine) = f.claim(h) else {
            panic!("the first claim is the caller's")
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| f.claim(h).wait());
            std::thread::sleep(std::time::Duration::from_millis(20));
            mine.complete(Arc::new(vec![1, 2, 3]));
            assert_eq!(waiter.join().unwrap().as_deref(), Some(&vec![1, 2, 3]));
        });
        // Completed claims are forgotten: the next one is the caller's again.
        let Claim::Mine(again) = f.claim(h) else {
            panic!("a completed claim is gone")
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| f.claim(h).wait());
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(again); // gave up: the waiter must fetch for itself
            assert_eq!(waiter.join().unwrap(), None);
        });
        assert!(!f.is_claimed(&h));
    }

    #[test]
    fn a_sequential_reader_issues_growing_windows_in_batches_and_a_seek_issues_none() {
        let (k, m) = (1u64 << 10, 1u64 << 20);
        let max = 8 * m;
        let mut a = Ahead::default();
        // The first window is 1 MiB, its own range included.
        assert_eq!(a.next(0, 128 * k, max), Some((0, 128 * k + m)));
        // Within the window: nothing new until less than half of it is left.
        assert_eq!(a.next(128 * k, 256 * k, max), None);
        // Then the next one, twice as large, from where the last one ended.
        let got = a.next(640 * k, 768 * k, max).expect("refill");
        assert_eq!(got, (128 * k + m, 768 * k + 2 * m));
        let got = a.next(2 * m, 2 * m + 128 * k, max).expect("refill");
        assert_eq!(got, (768 * k + 2 * m, 2 * m + 128 * k + 4 * m));
        // A jump far away is random access: no window, and the next sequential read starts
        // from where it is, with the first window again.
        let far = 900 * m;
        assert_eq!(a.next(far, far + 4 * k, max), None);
        assert_eq!(
            a.next(far + 4 * k, far + 8 * k, max),
            Some((far + 4 * k, far + 8 * k + m))
        );
        // Windows never grow past the maximum, and a tiny maximum means no read-ahead.
        let mut a = Ahead::default();
        let mut pos = 0;
        for _ in 0..200 {
            if let Some((_, to)) = a.next(pos, pos + 128 * k, max) {
                assert!(to - (pos + 128 * k) <= max);
            }
            pos += 128 * k;
        }
        let mut a = Ahead::default();
        assert_eq!(a.next(0, 4 * k, 32 * k), None);
    }
}
