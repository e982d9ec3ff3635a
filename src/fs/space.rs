//! Space reclamation on a live filesystem: runs `gc` passes one short transaction at a time
//! under the core lock (a file operation waits behind at most one batch), repacks sparse
//! superchunks and defragments files by moving their live chunks into fresh superchunks.
//!
//! Moving chunks is crash-safe by order: the new superchunk is written and the device synced
//! before the transaction that re-points the index rows and frees the old extent commits. The
//! old extent is discarded and made allocatable only after that commit, once no reader can
//! still be reading it (`Core::release_retired`), so a reader that looked up an old location
//! just before a move still reads the old, intact bytes.
//!
//! Passes do not overlap: an explicit `gc`, `defrag` and online fsck hold the maintenance
//! lock for their whole run, and the background collector works only when it can take it.
//!
//! The background collector costs next to nothing when there is nothing to collect: before
//! it starts a pass, `gc::pending` looks with a handful of index seeks for anything a pass
//! could do, and a pass judges only history that ended since the last pass it completed
//! (when no snapshot or clone went away meanwhile). It repacks no superchunk younger than
//! the `repack-age` setting. An explicit pass judges all history and repacks whatever is
//! sparse, young or not.

use super::error::{FsError, Result};
use super::readers::ReadGuard;
use super::{Fs, Inner, content};
use crate::chunker::ChunkHash;
use crate::gc::{self, GcReport, Live, Pass, Progress};
use crate::meta::chunks::Location;
use crate::meta::{self, Ino, namespace};
use crate::store::superchunk::{self, Codec, SuperchunkId};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A chunk to move: its hash, its superchunk's device offset and its location in it.
type Wanted = (ChunkHash, u64, Location);

/// A pass in progress, kept between background batches.
pub(super) struct GcRun {
    pass: Pass,
    /// Superchunks made before the pass started; younger ones are its own output.
    older_than: SuperchunkId,
    /// Only superchunks created at or before this (unix seconds) are repacked.
    repack_before: i64,
    /// Superchunks repacking skipped (unreadable chunks, no space): not retried by this pass
    /// nor by the background passes after it (an explicit pass tries them again).
    skipped: HashSet<SuperchunkId>,
    /// What the pass will have judged once complete (see `Judged`).
    judged: Judged,
}

/// What a complete pass judged: every history row that ended before `before`, against
/// retention points that included `points`. A later pass need not read those rows again
/// while all of `points` are still retention points (a row kept then is kept now; one
/// pruned is gone).
#[derive(Clone, Debug)]
struct Judged {
    before: meta::Seq,
    points: Vec<meta::Seq>,
}

#[derive(Default)]
pub(super) struct GcState {
    run: Option<GcRun>,
    /// When the last pass started and `Core::changes` then: the background starts a new one only when
    /// something changed or time moved the window.
    last_start: Option<(Instant, u64)>,
    /// What the last complete pass judged.
    judged: Option<Judged>,
    /// Superchunks the last passes could not repack.
    skipped: HashSet<SuperchunkId>,
}

/// How long background GC may work per committer tick, and how often a pass may start.
const PASS_EVERY: Duration = Duration::from_secs(1);
const IDLE_RECHECK: Duration = Duration::from_secs(60);

impl Inner {
    /// Inodes with open handles or in-memory state: their current state must stay even when
    /// they are unlinked. Taken before the core lock (lock order).
    pub(super) fn open_inodes(&self) -> HashSet<Ino> {
        let mut open: HashSet<Ino> = self.files.lock().unwrap().keys().copied().collect();
        open.extend(self.handles.lock().unwrap().values().map(|h| h.ino));
        open
    }

    /// Start an explicit pass: all history, every sparse superchunk.
    fn start_run(&self) -> Result<GcRun> {
        let core = self.lock_core();
        let now = super::now_ns();
        let ret = gc::retention(&core.conn, now, meta::Seq(core.seq))?;
        let judged = Judged::by(&ret, core.next_seq());
        Ok(GcRun {
            pass: Pass::new(ret),
            older_than: core.next_superchunk_id(),
            repack_before: i64::MAX,
            skipped: HashSet::new(),
            judged,
        })
    }

    /// Start a background pass, or None when `gc::pending` finds nothing for one to do (what
    /// is judged moves on then, as if a pass had run). Reads only history ended since the
    /// last complete pass when its retention points are all still there.
    fn start_background_run(&self, st: &mut GcState) -> Result<Option<GcRun>> {
        let open = self.open_inodes();
        let core = self.lock_core();
        let now = super::now_ns();
        let ret = gc::retention(&core.conn, now, meta::Seq(core.seq))?;
        let since = match &st.judged {
            Some(j) if j.points.iter().all(|p| ret.points.contains(p)) => j.before,
            _ => meta::Seq(0),
        };
        let age = gc::repack_age(&core.conn)?;
        let repack_before = (now / 1_000_000_000).saturating_sub(age.min(i64::MAX as u64) as i64);
        let judged = Judged::by(&ret, core.next_seq());
        if !gc::pending(&core.conn, &ret, since, &open, repack_before, &st.skipped)? {
            st.judged = Some(judged);
            return Ok(None);
        }
        Ok(Some(GcRun {
            pass: Pass::since(ret, since),
            older_than: core.next_superchunk_id(),
            repack_before,
            skipped: st.skipped.clone(),
            judged,
        }))
    }

    /// A complete pass: remember what it judged and what it could not repack.
    fn finish_run(&self, st: &mut GcState, run: GcRun) {
        let mut judged = run.judged;
        // Points made while the pass ran kept rows too: they must stay for the next pass to
        // skip those rows.
        match meta::gc::retention_points(&self.lock_core().conn) {
            Ok(now) => {
                judged.points.extend(now);
                judged.points.sort_unstable();
                judged.points.dedup();
            }
            // Not knowing them, judge all history next time.
            Err(_) => {
                st.judged = None;
                st.skipped = run.skipped;
                return;
            }
        }
        st.judged = Some(judged);
        st.skipped = run.skipped;
    }

    /// One batch of `run`: a prune or sweep step, or one superchunk repacked. Returns false
    /// when the pass is complete.
    fn gc_batch(&self, run: &mut GcRun) -> Result<bool> {
        if !run.pass.swept() {
            let open = self.open_inodes();
            self.lock_core().gc_txn(&*self.dev, |core| {
                let (conn, freemap, pins) = core.gc_parts();
                let pinned = |h: &ChunkHash| pins.contains_key(h);
                let live = Live {
                    open: &open,
                    pinned: &pinned,
                };
                run.pass.step(conn, freemap, &live)?;
                Ok(())
            })?;
            return Ok(true);
        }
        let victim = {
            let core = self.lock_core();
            meta::gc::sparse_superchunks(&core.conn, run.repack_before, 64)?
                .into_iter()
                .find(|s| s.id < run.older_than && !run.skipped.contains(&s.id))
        };
        let Some(victim) = victim else {
            return Ok(false);
        };
        run.pass.report.batches += 1;
        match self.move_superchunks(&[victim.id], &mut run.pass.report) {
            Ok(true) => run.pass.report.superchunks_repacked += 1,
            Ok(false) | Err(FsError::NoSpace) => {
                run.skipped.insert(victim.id);
            }
            Err(e) => return Err(e),
        }
        Ok(true)
    }

    /// Copy every live chunk of `ids` into fresh superchunks and free them. Returns whether all
    /// of them were emptied (a chunk that fails its check is left where it is).
    pub(super) fn move_superchunks(
        &self,
        ids: &[SuperchunkId],
        report: &mut GcReport,
    ) -> Result<bool> {
        let mut wanted = Vec::new();
        let reading = {
            let core = self.lock_core();
            for id in ids {
                let Some(s) = meta::gc::superchunk_space(&core.conn, *id)? else {
                    continue;
                };
                for (h, loc) in meta::gc::chunks_in(&core.conn, *id)? {
                    wanted.push((h, s.extent.start, loc));
                }
            }
            core.reading()
        };
        let (_, all) = self.move_chunks(wanted, reading, report)?;
        Ok(all)
    }

    /// Read chunks at the locations `wanted` gives (looked up in the critical section that
    /// registered `reading`; no lock held now), then in one GC transaction move those still
    /// there into new superchunks, seal, free whatever superchunks that emptied, and commit.
    /// Returns (chunks moved, whether every chunk could be moved).
    fn move_chunks(
        &self,
        wanted: Vec<Wanted>,
        reading: ReadGuard,
        report: &mut GcReport,
    ) -> Result<(u64, bool)> {
        let mut copies: Vec<(ChunkHash, Location, Codec, u32, Vec<u8>)> = Vec::new();
        let mut all = true;
        for (h, start, loc) in wanted {
            let mut stored = vec![0u8; loc.stored_len as usize];
            let ok = self
                .dev
                .read_at(&mut stored, start + loc.offset as u64)
                .is_ok()
                && superchunk::decompress_chunk(loc.codec, &stored, loc.raw_len)
                    .is_ok_and(|p| ChunkHash::of(&p) == h);
            if ok {
                copies.push((h, loc, loc.codec, loc.raw_len, stored));
            } else {
                // A damaged copy stays for fsck to report and heal; its superchunk stays too.
                log::warn!("chunkfs: not moving chunk {h}: its stored copy fails its check");
                all = false;
            }
        }
        // Done reading: the transaction below may free what was read, and waits for readers.
        drop(reading);
        if copies.is_empty() {
            return Ok((0, all));
        }
        let mut core = self.lock_core();
        let (moved, bytes) = core.gc_txn(&*self.dev, |core| {
            let mut stage = Vec::new();
            let mut bytes = 0;
            for (h, loc, codec, raw, stored) in copies {
                // Moved or swept since it was read: leave it.
                if meta::chunks::location(&core.conn, &h)? != Some(loc) {
                    continue;
                }
                bytes += stored.len() as u64;
                stage.push((h, codec, raw, stored));
            }
            let n = stage.len() as u64;
            core.stage_chunks(&*self.dev, stage, true)?;
            // Seal before freeing: the new superchunk must not land on an extent this
            // transaction is about to free.
            core.seal(&*self.dev)?;
            let (conn, freemap, _) = core.gc_parts();
            let mut r = GcReport::default();
            loop {
                let (_, done) = gc::sweep::superchunks(conn, freemap, gc::BATCH_ROWS, &mut r)?;
                if done {
                    break;
                }
            }
            report.superchunks += r.superchunks;
            report.bytes_freed += r.bytes_freed;
            Ok((n, bytes))
        })?;
        drop(core);
        report.bytes_repacked += bytes;
        Ok((moved, all))
    }

    /// Background GC between group commits: continue the pass in progress, or start one if
    /// something changed, for at most `budget`.
    pub(super) fn background_gc(&self, budget: Duration) {
        if self.check_writable().is_err() {
            return;
        }
        // An explicit pass, a defrag or an online fsck is running: it has the store to itself.
        let Ok(_maintenance) = self.maintenance.try_lock() else {
            return;
        };
        let started = Instant::now();
        let mut st = self.gc_state.lock().unwrap();
        if st.run.is_none() {
            let seq = self.changes();
            let due = match st.last_start {
                None => true,
                Some((t, s)) => {
                    t.elapsed() >= PASS_EVERY && (s != seq || t.elapsed() >= IDLE_RECHECK)
                }
            };
            if !due {
                return;
            }
            st.last_start = Some((Instant::now(), seq));
            match self.start_background_run(&mut st) {
                Ok(Some(r)) => st.run = Some(r),
                Ok(None) => return,
                Err(e) => {
                    log::warn!("chunkfs: background gc cannot start: {e}");
                    return;
                }
            }
        }
        let mut run = st.run.take().expect("set above");
        drop(st);
        let mut more = true;
        while more && started.elapsed() < budget {
            match self.gc_batch(&mut run) {
                Ok(m) => more = m,
                Err(e) => {
                    log::warn!("chunkfs: background gc stopped: {e}");
                    more = false;
                }
            }
        }
        let mut st = self.gc_state.lock().unwrap();
        if more {
            st.run = Some(run);
        } else {
            self.finish_run(&mut st, run);
        }
    }

    /// One background pass run to its end now, as the committer starts one but without its
    /// time budget or its wait since the last (tests and benches): continues the pass in
    /// progress or starts one. None when the check before a pass found nothing to do.
    pub fn background_gc_pass(&self) -> Result<Option<GcReport>> {
        let _maintenance = self.maintenance.lock().unwrap();
        let mut st = self.gc_state.lock().unwrap();
        let mut run = match st.run.take() {
            Some(r) => r,
            None => match self.start_background_run(&mut st)? {
                Some(r) => r,
                None => return Ok(None),
            },
        };
        drop(st);
        while self.gc_batch(&mut run)? {}
        let report = run.pass.report.clone();
        self.finish_run(&mut self.gc_state.lock().unwrap(), run);
        Ok(Some(report))
    }
}

impl Judged {
    /// What a pass with retention `ret` judges once complete, started when `next` was the
    /// seq the next operation would take (`Core::next_seq`: the open seq, or the one after a
    /// closed one): rows that ended before the window and before `next`. A row ending later
    /// ends at `next` or after (in the open seq too), so the next pass reads it.
    fn by(ret: &gc::Retention, next: meta::Seq) -> Judged {
        Judged {
            before: meta::Seq(ret.window.0.min(next.0)),
            points: ret.points.clone(),
        }
    }
}

impl Inner {
    /// Run a full GC pass now: prune, sweep, free and repack. Durable when it returns.
    pub fn gc(&self, progress: &dyn Progress) -> Result<GcReport> {
        // A file that cannot commit for lack of space must not stop the pass that makes room.
        match self.sync_all() {
            Ok(()) | Err(FsError::NoSpace) => {}
            Err(e) => return Err(e),
        }
        // The background collector waits while this runs; its pass in progress is replaced.
        let _maintenance = self.maintenance.lock().unwrap();
        self.gc_state.lock().unwrap().run = None;
        let mut run = self.start_run()?;
        loop {
            progress.update(run.pass.phase.name(), &run.pass.report);
            if !self.gc_batch(&mut run)? {
                break;
            }
        }
        let report = run.pass.report.clone();
        let mut st = self.gc_state.lock().unwrap();
        st.last_start = Some((Instant::now(), self.changes()));
        self.finish_run(&mut st, run);
        drop(st);
        progress.update("done", &report);
        Ok(report)
    }

    /// Lay out `ino`'s chunks in file order in fresh superchunks. `progress` gets
    /// (bytes done, bytes total) of the file's stored bytes.
    pub fn defrag(&self, ino: Ino, progress: &dyn Fn(u64, u64)) -> Result<GcReport> {
        self.commit_ino(ino)?;
        self.lock_core().commit(&*self.dev)?;
        let _maintenance = self.maintenance.lock().unwrap();
        // The file's distinct stored chunks in file order, with their stored sizes.
        let mut order: Vec<(ChunkHash, u64)> = Vec::new();
        {
            let core = self.lock_core();
            let rev = namespace::current(&core.conn, ino)?.ok_or(FsError::NotFound)?;
            if rev.kind != namespace::FileKind::File {
                return Err(FsError::Invalid);
            }
            let c = content::load(&core.conn, rev.list)?;
            let mut seen = HashSet::new();
            for e in c.entries() {
                if e.is_hole() || !seen.insert(e.hash) {
                    continue;
                }
                if let Some(loc) = meta::chunks::location(&core.conn, &e.hash)? {
                    order.push((e.hash, loc.stored_len as u64));
                }
            }
        }
        let total: u64 = order.iter().map(|(_, n)| n).sum();
        let target = self.sb.superchunk_target as u64;
        let mut report = GcReport::default();
        let mut done = 0;
        progress(0, total);
        let mut group = Vec::new();
        let mut group_bytes = 0;
        let mut it = order.into_iter().peekable();
        while let Some((hash, len)) = it.next() {
            group_bytes += len;
            group.push(hash);
            if group_bytes >= target || it.peek().is_none() {
                let (wanted, reading) = self.locate(&std::mem::take(&mut group))?;
                self.move_chunks(wanted, reading, &mut report)?;
                done += group_bytes;
                group_bytes = 0;
                progress(done, total);
                report.batches += 1;
            }
        }
        Ok(report)
    }

    /// Where `hashes` are stored now (those on the device), registered as read.
    fn locate(&self, hashes: &[ChunkHash]) -> Result<(Vec<Wanted>, ReadGuard)> {
        let core = self.lock_core();
        let mut out = Vec::new();
        for h in hashes {
            let Some(loc) = meta::chunks::location(&core.conn, h)? else {
                continue;
            };
            if let Some(ext) = meta::chunks::superchunk_extent(&core.conn, loc.superchunk)? {
                out.push((*h, ext.start, loc));
            }
        }
        Ok((out, core.reading()))
    }
}

impl Fs {
    /// Whether a background pass is under way (tests wait for it to settle).
    pub fn gc_running(&self) -> bool {
        self.gc_state.lock().unwrap().run.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::super::open::{FsOptions, MkfsOptions, mkfs_on};
    use super::*;
    use crate::store::device::{Device, FaultyDevice};
    use std::path::Path;
    use std::sync::Arc;

    fn bytes(seed: u8, n: usize) -> Vec<u8> {
        crate::testdata::random_bytes(seed as u64, n)
    }

    fn put(fs: &Fs, name: &str, data: &[u8]) -> Ino {
        let (attr, h) = fs
            .create(Ino::ROOT, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
            .unwrap();
        fs.write(attr.ino, h.fh, 0, data).unwrap();
        fs.release(attr.ino, h.fh).unwrap();
        attr.ino
    }

    /// The ordering rule of `Core::release_retired`, step 1: a reader holding a location
    /// looked up before GC moved its chunk still reads the old, intact bytes, however long
    /// it takes, because the old extent is neither discarded nor reused until it is done.
    #[test]
    fn a_reader_holding_a_location_keeps_it_readable_while_gc_moves_the_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let dev = FaultyDevice::new();
        let mkfs = MkfsOptions {
            chunk_avg: 1024,
            superchunk_target: 64 * 1024,
            history_window: 0,
            ..MkfsOptions::default()
        };
        let meta = dir.path().join("meta.db");
        mkfs_on(&meta, &dev, Path::new("mem"), 16 << 20, &mkfs).unwrap();
        let opts = FsOptions {
            commit_interval: Duration::from_secs(3600),
            background_gc: false,
            ..FsOptions::default()
        };
        let handle: Arc<dyn Device> = Arc::new(dev.clone());
        let fs = Arc::new(Fs::open_with(&meta, handle, opts).unwrap());
        let keep = bytes(1, 6000);
        let ino = put(&fs, "keep", &keep);
        put(&fs, "gone", &bytes(2, 30_000));
        fs.sync_all().unwrap();
        fs.unlink(Ino::ROOT, b"gone").unwrap();
        fs.sync_all().unwrap();

        let hash = {
            let core = fs.lock_core();
            let rev = namespace::current(&core.conn, ino).unwrap().unwrap();
            content::load(&core.conn, rev.list).unwrap().entries()[0].hash
        };
        let source = fs.lock_core().chunk_source(&hash).unwrap();
        let old = match &source {
            super::super::core::ChunkSource::Device { start, loc, .. } => (*start, *loc),
            _ => panic!("the chunk is on the device"),
        };
        let gc = {
            let fs = fs.clone();
            std::thread::spawn(move || fs.gc(&gc::Silent).unwrap())
        };
        // Give GC every chance to move the chunk and, were it not waiting for this reader,
        // to discard the old extent (which zeroes it on this device).
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            fs.fetch(&hash, &source).is_ok(),
            "the old location no longer holds the chunk while a reader holds it"
        );
        drop(source);
        let report = gc.join().unwrap();
        assert!(report.superchunks_repacked >= 1, "{report:?}");
        let now = match fs.lock_core().chunk_source(&hash).unwrap() {
            super::super::core::ChunkSource::Device { start, loc, .. } => (start, loc),
            _ => panic!("the chunk is on the device"),
        };
        assert_ne!(now, old, "GC moved the chunk");
        let h = fs.open(ino, libc::O_RDONLY).unwrap();
        assert_eq!(fs.read(ino, h.fh, 0, 10_000).unwrap(), keep);
        fs.release(ino, h.fh).unwrap();
        // The old superchunk's extent was discarded once the reader let go.
        let mut buf = vec![0u8; old.1.stored_len as usize];
        dev.read_at(&mut buf, old.0 + old.1.offset as u64).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "the old extent is discarded");
    }

    /// A pass may stop after any batch (an unmount, a crash): no batch leaves a superchunk row
    /// without chunks behind, which offline fsck would report as an orphan. The sweep batch
    /// that empties a superchunk frees it in the same transaction.
    #[test]
    fn no_gc_batch_leaves_an_emptied_superchunk_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dev = FaultyDevice::new();
        let mkfs = MkfsOptions {
            chunk_avg: 1024,
            superchunk_target: 16 * 1024,
            history_window: 0,
            ..MkfsOptions::default()
        };
        let meta = dir.path().join("meta.db");
        mkfs_on(&meta, &dev, Path::new("mem"), 16 << 20, &mkfs).unwrap();
        let opts = FsOptions {
            commit_interval: Duration::from_secs(3600),
            background_gc: false,
            ..FsOptions::default()
        };
        let fs = Fs::open_with(&meta, Arc::new(dev.clone()), opts).unwrap();
        // Content filling superchunks of its own, then deleted: they empty as it is swept.
        put(&fs, "gone", &bytes(3, 100_000));
        fs.sync_all().unwrap();
        fs.unlink(Ino::ROOT, b"gone").unwrap();
        fs.sync_all().unwrap();
        let mut run = fs.start_run().unwrap();
        let mut batches = 0;
        while fs.gc_batch(&mut run).unwrap() {
            batches += 1;
            let core = fs.lock_core();
            let left = meta::gc::empty_superchunks(&core.conn, 10).unwrap();
            assert!(
                left.is_empty(),
                "after batch {batches} ({}): superchunks with no chunk left: {left:?}",
                run.pass.phase.name()
            );
        }
        assert!(run.pass.report.superchunks > 0, "{:?}", run.pass.report);
    }
}
