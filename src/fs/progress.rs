//! Progress of the long conduit operations (clone, revert, gc, fsck, defrag), for the
//! read-only special file `/.chunkfs/progress` (docs/CONTROL.md).
//!
//! A request blocks in the read of its conduit until it is done, so its progress is told
//! another way: the conduit that runs it holds an [`Entry`] of counters (phase, done, total)
//! that the operation bumps as it goes, with relaxed atomics and no SQL; opening
//! `/.chunkfs/progress` copies the entries of the opener's own requests (all of them for root)
//! as JSON into that handle. Nothing here takes the core lock, so the file answers while a
//! revert holds it; nothing is done for anyone who does not ask, beyond the counters.
//!
//! An entry lives as long as its conduit: after the response is read it stays, finished
//! (`running: false`) with its last counts, until the conduit is closed (gone when close(2)
//! returns: it goes at FLUSH, as RELEASE is asynchronous). A client that wants the final
//! figures reads the file before it closes the conduit.

use super::Fh;
use super::caller::Credentials;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// `total` when it is not known.
const UNKNOWN: u64 = u64::MAX;

/// The counters of one request, shared by the conduit running it and the readers.
pub struct Entry {
    uid: u32,
    /// The thread that opened the conduit, as the FUSE request named it: a client finds its
    /// own request by it.
    pid: u32,
    started_ns: i64,
    /// Set when the operation is one that reports; until then the entry is not listed.
    op: OnceLock<&'static str>,
    stage: Mutex<Stage>,
    done: AtomicU64,
    total: AtomicU64,
    running: AtomicBool,
}

#[derive(Clone, Default)]
struct Stage {
    phase: String,
    unit: &'static str,
}

/// One entry as `/.chunkfs/progress` shows it.
#[derive(Serialize)]
struct Shown {
    op: &'static str,
    pid: u32,
    uid: u32,
    started_ns: i64,
    running: bool,
    phase: String,
    done: u64,
    total: Option<u64>,
    unit: &'static str,
}

/// Where an operation reports its progress; `Meter::NONE` for calls that nobody watches
/// (the core API, tests).
#[derive(Clone, Copy)]
pub struct Meter<'a>(Option<&'a Entry>);

impl<'a> Meter<'a> {
    pub const NONE: Meter<'static> = Meter(None);

    /// Show the entry as operation `op`, from now on.
    pub fn start(&self, op: &'static str) {
        if let Some(e) = self.0 {
            let _ = e.op.set(op);
        }
    }

    /// Enter a phase counted in `unit` (`""` when it counts nothing), of `total` if known.
    /// The count carries on from where it was; `set` restarts it.
    pub fn phase(&self, phase: &str, unit: &'static str, total: Option<u64>) {
        if let Some(e) = self.0 {
            let mut s = e.stage.lock().unwrap();
            if s.phase != phase {
                s.phase = phase.to_string();
            }
            s.unit = unit;
            e.total.store(total.unwrap_or(UNKNOWN), Relaxed);
        }
    }

    /// `n` more items done.
    pub fn add(&self, n: u64) {
        if let Some(e) = self.0 {
            e.done.fetch_add(n, Relaxed);
        }
    }

    /// `done` items done so far.
    pub fn set(&self, done: u64) {
        if let Some(e) = self.0 {
            e.done.store(done, Relaxed);
        }
    }
}

/// GC reports per batch: its phase, and the batches run so far.
impl crate::gc::Progress for Meter<'_> {
    fn update(&self, phase: &str, so_far: &crate::gc::GcReport) {
        self.phase(phase, "batches", None);
        self.set(so_far.batches);
    }
}

/// fsck reports the bytes of its data pass.
impl crate::fsck::Progress for Meter<'_> {
    fn start(&self, total_bytes: u64) {
        self.phase("verifying data", "bytes", Some(total_bytes));
        self.set(0);
    }
    fn advance(&self, bytes: u64) {
        self.add(bytes);
    }
    fn finish(&self) {}
}

/// The entries of the conduits that ran a request, and what each open `/.chunkfs/progress`
/// was given to read.
#[derive(Default)]
pub struct Board {
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
    reads: Mutex<HashMap<u64, Arc<[u8]>>>,
}

impl Board {
    /// The entry of the request conduit `fh` is about to run for `who`.
    pub(super) fn begin(&self, fh: Fh, who: &Credentials) -> Arc<Entry> {
        let e = Arc::new(Entry {
            uid: who.uid,
            pid: who.pid,
            started_ns: super::now_ns(),
            op: OnceLock::new(),
            stage: Mutex::new(Stage::default()),
            done: AtomicU64::new(0),
            total: AtomicU64::new(UNKNOWN),
            running: AtomicBool::new(true),
        });
        self.entries.lock().unwrap().insert(fh.0, e.clone());
        e
    }

    /// What an open of `/.chunkfs/progress` by `who` reads: their requests (everyone's for
    /// root) as a JSON array, oldest first, and a newline.
    pub(super) fn open(&self, fh: Fh, who: &Credentials) {
        let text = self.listing(who);
        self.reads.lock().unwrap().insert(fh.0, text.into());
    }

    pub(super) fn read(&self, fh: Fh, offset: u64, size: u32) -> Option<Vec<u8>> {
        let text = self.reads.lock().unwrap().get(&fh.0)?.clone();
        let from = (offset as usize).min(text.len());
        let to = from.saturating_add(size as usize).min(text.len());
        Some(text[from..to].to_vec())
    }

    /// A descriptor of conduit `fh` was closed (FLUSH, which close(2) waits for; RELEASE comes
    /// later, on its own): a finished request's entry goes now. A running one stays until
    /// RELEASE, as another descriptor (a dup, a fork) may still be waiting for its answer.
    pub(super) fn closed(&self, fh: Fh) {
        let mut entries = self.entries.lock().unwrap();
        if entries.get(&fh.0).is_some_and(|e| !e.running.load(Relaxed)) {
            entries.remove(&fh.0);
        }
    }

    /// Forget what handle `fh` held: a conduit's entry, or a reader's copy.
    pub(super) fn release(&self, fh: Fh) {
        self.entries.lock().unwrap().remove(&fh.0);
        self.reads.lock().unwrap().remove(&fh.0);
    }

    fn listing(&self, who: &Credentials) -> Vec<u8> {
        let entries: Vec<Arc<Entry>> = self
            .entries
            .lock()
            .unwrap()
            .values()
            .filter(|e| who.uid == 0 || e.uid == who.uid)
            .cloned()
            .collect();
        let mut shown: Vec<Shown> = entries
            .iter()
            .filter_map(|e| {
                let stage = e.stage.lock().unwrap().clone();
                let total = e.total.load(Relaxed);
                Some(Shown {
                    op: e.op.get()?,
                    pid: e.pid,
                    uid: e.uid,
                    started_ns: e.started_ns,
                    running: e.running.load(Relaxed),
                    phase: stage.phase,
                    done: e.done.load(Relaxed),
                    total: (total != UNKNOWN).then_some(total),
                    unit: stage.unit,
                })
            })
            .collect();
        shown.sort_by_key(|s| (s.started_ns, s.pid));
        let mut text = serde_json::to_vec(&shown).unwrap_or_default();
        text.push(b'\n');
        text
    }
}

impl Entry {
    pub fn meter(&self) -> Meter<'_> {
        Meter(Some(self))
    }

    /// The request is done; its last counts stay until the conduit closes.
    pub(super) fn finish(&self) {
        self.running.store(false, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn who(uid: u32, pid: u32) -> Credentials {
        Credentials { uid, gid: uid, pid }
    }

    fn list(p: &Board, w: &Credentials) -> Value {
        serde_json::from_slice(&p.listing(w)).unwrap()
    }

    #[test]
    fn a_user_sees_only_their_own_requests_and_root_sees_all() {
        let p = Board::default();
        let a = p.begin(Fh(7), &who(1000, 42));
        let b = p.begin(Fh(8), &who(1001, 43));
        a.meter().start("revert");
        a.meter().phase("reverting", "inodes", None);
        a.meter().add(3);
        a.meter().add(2);
        b.meter().start("clone");
        let mine = list(&p, &who(1000, 99));
        assert_eq!(mine.as_array().unwrap().len(), 1);
        let e = &mine[0];
        assert_eq!(e["op"], "revert");
        assert_eq!(e["pid"], 42);
        assert_eq!(e["phase"], "reverting");
        assert_eq!(e["done"], 5);
        assert_eq!(e["total"], Value::Null);
        assert_eq!(e["unit"], "inodes");
        assert_eq!(e["running"], true);
        assert_eq!(list(&p, &who(0, 1)).as_array().unwrap().len(), 2);
        assert_eq!(list(&p, &who(1002, 1)), serde_json::json!([]));
    }

    #[test]
    fn a_request_that_does_not_report_is_not_listed_and_a_closed_one_is_gone() {
        let p = Board::default();
        let a = p.begin(Fh(7), &who(0, 42));
        assert_eq!(list(&p, &who(0, 1)), serde_json::json!([]));
        a.meter().start("gc");
        a.finish();
        assert_eq!(list(&p, &who(0, 1))[0]["running"], false);
        p.release(Fh(7));
        assert_eq!(list(&p, &who(0, 1)), serde_json::json!([]));
    }

    #[test]
    fn a_closed_conduit_drops_a_finished_entry_at_once_and_a_running_one_at_release() {
        let p = Board::default();
        let done = p.begin(Fh(7), &who(0, 42));
        done.meter().start("revert");
        done.finish();
        let running = p.begin(Fh(8), &who(0, 43));
        running.meter().start("gc");
        p.closed(Fh(7));
        p.closed(Fh(8));
        let left = list(&p, &who(0, 1));
        assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
        assert_eq!(left[0]["op"], "gc");
        p.release(Fh(8));
        assert_eq!(list(&p, &who(0, 1)), serde_json::json!([]));
    }

    #[test]
    fn a_reader_keeps_what_it_opened() {
        let p = Board::default();
        let a = p.begin(Fh(7), &who(0, 42));
        a.meter().start("fsck");
        p.open(Fh(9), &who(0, 1));
        a.meter().add(100);
        let first = p.read(Fh(9), 0, 1 << 16).unwrap();
        let v: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(v[0]["done"], 0);
        assert_eq!(p.read(Fh(9), 5, 3).unwrap(), first[5..8].to_vec());
        p.release(Fh(9));
        assert!(p.read(Fh(9), 0, 10).is_none());
    }
}
