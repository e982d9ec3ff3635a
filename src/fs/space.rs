//! Space reclamation on a live filesystem: runs `gc` passes one short transaction at a time
//! under the core lock (a file operation waits behind at most one batch), repacks sparse
//! superchunks and defragments files by moving their live chunks into fresh superchunks.
//!
//! Moving chunks is crash-safe by order: the new superchunk is written and the device synced
//! before the transaction that re-points the index rows and frees the old extent commits, and
//! the old extent is discarded only after that commit. Readers that looked up an old location
//! just before a move retry once with the new one (`Inner::chunk`).

use super::error::{FsError, Result};
use super::{Fs, Inner, content};
use crate::chunker::ChunkHash;
use crate::gc::{self, GcReport, Live, Pass, Progress};
use crate::meta::chunks::Location;
use crate::meta::{self, Ino, namespace};
use crate::store::freemap::Extent;
use crate::store::superchunk::{self, Codec, SuperchunkId};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A pass in progress, kept between background batches.
pub(super) struct GcRun {
    pass: Pass,
    /// Superchunks made before the pass started; younger ones are its own output.
    older_than: SuperchunkId,
    /// Superchunks repacking skipped (unreadable chunks, no space): not retried this pass.
    skipped: HashSet<SuperchunkId>,
}

#[derive(Default)]
pub(super) struct GcState {
    run: Option<GcRun>,
    /// When the last pass started and the seq then: the background starts a new one only when
    /// something changed or time moved the window.
    last_start: Option<(Instant, u64)>,
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

    fn start_run(&self) -> Result<GcRun> {
        let core = self.lock_core();
        let ret = gc::retention(&core.conn, super::now_ns(), meta::Seq(core.seq))?;
        Ok(GcRun {
            pass: Pass::new(ret),
            older_than: core.next_superchunk_id(),
            skipped: HashSet::new(),
        })
    }

    /// One batch of `run`: a prune or sweep step, or one superchunk repacked. Returns false
    /// when the pass is complete.
    fn gc_batch(&self, run: &mut GcRun) -> Result<bool> {
        if !run.pass.swept() {
            let open = self.open_inodes();
            let freed = {
                let mut core = self.lock_core();
                core.gc_txn(&*self.dev, |core| {
                    let (conn, freemap, pins) = core.gc_parts();
                    let pinned = |h: &ChunkHash| pins.contains_key(h);
                    let live = Live {
                        open: &open,
                        pinned: &pinned,
                    };
                    Ok(run.pass.step(conn, freemap, &live)?)
                })?
            };
            self.discard(&freed);
            return Ok(true);
        }
        let victim = {
            let core = self.lock_core();
            meta::gc::sparse_superchunks(&core.conn, gc::REPACK_BELOW, 64)?
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

    /// Give freed extents back to the device. Only after the commit that freed them.
    fn discard(&self, freed: &[Extent]) {
        for e in freed {
            if let Err(err) = self.dev.discard(e.start, e.len) {
                log::warn!(
                    "chunkfs: cannot discard {} bytes at {}: {err}",
                    e.len,
                    e.start
                );
            }
        }
    }

    /// Copy every live chunk of `ids` into fresh superchunks and free them. Returns whether all
    /// of them were emptied (a chunk that fails its check is left where it is).
    fn move_superchunks(&self, ids: &[SuperchunkId], report: &mut GcReport) -> Result<bool> {
        let mut wanted = Vec::new();
        {
            let core = self.lock_core();
            for id in ids {
                let Some(s) = meta::gc::superchunk_space(&core.conn, *id)? else {
                    continue;
                };
                for (h, loc) in meta::gc::chunks_in(&core.conn, *id)? {
                    wanted.push((h, s.extent.start, loc));
                }
            }
        }
        let (moved, all) = self.move_chunks(wanted, report)?;
        let _ = moved;
        Ok(all)
    }

    /// Read chunks at their current locations (no lock held), then in one GC transaction move
    /// those still there into new superchunks, seal, free whatever superchunks that emptied,
    /// and commit. Returns (chunks moved, whether every chunk could be moved).
    fn move_chunks(
        &self,
        wanted: Vec<(ChunkHash, u64, Location)>,
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
        if copies.is_empty() {
            return Ok((0, all));
        }
        let mut core = self.lock_core();
        let (moved, bytes, freed) = core.gc_txn(&*self.dev, |core| {
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
            let mut freed = Vec::new();
            loop {
                let (f, done) = gc::sweep::superchunks(conn, freemap, gc::BATCH_ROWS, &mut r)?;
                freed.extend(f);
                if done {
                    break;
                }
            }
            report.superchunks += r.superchunks;
            report.bytes_freed += r.bytes_freed;
            Ok((n, bytes, freed))
        })?;
        drop(core);
        report.bytes_repacked += bytes;
        self.discard(&freed);
        Ok((moved, all))
    }

    /// Background GC between group commits: continue the pass in progress, or start one if
    /// something changed, for at most `budget`.
    pub(super) fn background_gc(&self, budget: Duration) {
        if self.check_writable().is_err() {
            return;
        }
        let started = Instant::now();
        let mut st = self.gc_state.lock().unwrap();
        if st.run.is_none() {
            let seq = self.current_seq().0;
            let due = match st.last_start {
                None => true,
                Some((t, s)) => {
                    t.elapsed() >= PASS_EVERY && (s != seq || t.elapsed() >= IDLE_RECHECK)
                }
            };
            if !due {
                return;
            }
            match self.start_run() {
                Ok(r) => st.run = Some(r),
                Err(e) => {
                    log::warn!("chunkfs: background gc cannot start: {e}");
                    return;
                }
            }
            st.last_start = Some((Instant::now(), seq));
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
        // A background pass in progress is replaced by this one.
        self.gc_state.lock().unwrap().run = None;
        let mut run = self.start_run()?;
        loop {
            progress.update(run.pass.phase.name(), &run.pass.report);
            if !self.gc_batch(&mut run)? {
                break;
            }
        }
        let mut st = self.gc_state.lock().unwrap();
        st.last_start = Some((Instant::now(), self.current_seq().0));
        drop(st);
        progress.update("done", &run.pass.report);
        Ok(run.pass.report)
    }

    /// Lay out `ino`'s chunks in file order in fresh superchunks. `progress` gets
    /// (bytes done, bytes total) of the file's stored bytes.
    pub fn defrag(&self, ino: Ino, progress: &dyn Fn(u64, u64)) -> Result<GcReport> {
        self.commit_ino(ino)?;
        self.lock_core().commit(&*self.dev)?;
        let mut order: Vec<(ChunkHash, u64, Location)> = Vec::new();
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
                let Some(loc) = meta::chunks::location(&core.conn, &e.hash)? else {
                    continue;
                };
                let Some(ext) = meta::chunks::superchunk_extent(&core.conn, loc.superchunk)? else {
                    continue;
                };
                order.push((e.hash, ext.start, loc));
            }
        }
        let total: u64 = order.iter().map(|(_, _, l)| l.stored_len as u64).sum();
        let target = self.sb.superchunk_target as u64;
        let mut report = GcReport::default();
        let mut done = 0;
        progress(0, total);
        let mut group = Vec::new();
        let mut group_bytes = 0;
        let mut it = order.into_iter().peekable();
        while let Some(item) = it.next() {
            group_bytes += item.2.stored_len as u64;
            group.push(item);
            if group_bytes >= target || it.peek().is_none() {
                self.move_chunks(std::mem::take(&mut group), &mut report)?;
                done += group_bytes;
                group_bytes = 0;
                progress(done, total);
                report.batches += 1;
            }
        }
        Ok(report)
    }
}

impl Fs {
    /// Whether a background pass is under way (tests wait for it to settle).
    pub fn gc_running(&self) -> bool {
        self.gc_state.lock().unwrap().run.is_some()
    }
}
