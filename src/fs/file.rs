//! File content: reads through the chunk cache, writes into a per-file dirty overlay, and the
//! commit that turns dirty bytes into chunks, a chunk-list tree and a new revision.

use super::caller::Credentials;
use super::content::{self, Content, Entry, HOLE, push_entry};
use super::core::ChunkSource;
use super::error::{FsError, Result};
use super::overlay::{Overlay, Zeroed};
use super::readahead::{Ahead, Claim};
use super::{Fh, Handle, Inner, Opened, now_ns};
use crate::chunker::{self, ChunkHash};
use crate::meta::Ino;
use crate::meta::namespace::{self, FileKind};
use crate::store::superchunk::{self, Codec};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// ESTALE for a handle opened before a revert replaced the file's state.
pub(super) fn stale_check(st: &FileState, h: &Handle) -> Result<()> {
    if st.generation != h.generation {
        return Err(FsError::Stale);
    }
    Ok(())
}

/// The in-memory state of a file that is open or has uncommitted writes.
#[derive(Debug)]
pub struct FileState {
    handles: usize,
    /// The committed content (the current revision's chunk list).
    pub(super) base: Arc<Content>,
    /// Bytes written since the last commit.
    pub(super) overlay: Overlay,
    /// Committed bytes that now read as zeros.
    pub(super) zeroed: Zeroed,
    /// The size including uncommitted changes.
    pub(super) size: u64,
    dirty_since: Option<Instant>,
    pub(super) mtime: i64,
    /// Bumped when the file is reverted under its open handles (they then get ESTALE).
    generation: u64,
    /// Where reading ahead of a sequential reader stands.
    ahead: Ahead,
    /// The overlay bytes counted in `Inner::dirty_bytes`.
    accounted: usize,
    /// The space generation (`Core::space_generation`) when a commit last ran out of space;
    /// commits nobody asked for wait until it moves.
    no_space_at: Option<u64>,
}

impl FileState {
    pub(super) fn dirty(&self) -> bool {
        self.dirty_since.is_some()
    }

    fn touch(&mut self) {
        self.dirty_since.get_or_insert_with(Instant::now);
        self.mtime = now_ns();
    }
}

impl Inner {
    /// The state of `ino`, loaded from its current revision if no one holds it yet.
    fn file_state(&self, ino: Ino) -> Result<Arc<Mutex<FileState>>> {
        if let Some(f) = self.files.lock().unwrap().get(&ino) {
            return Ok(f.clone());
        }
        let (rev, base) = {
            let core = self.lock_core();
            let rev = super::tree::rev_or_missing(&core.conn, ino, super::tree::When::Now)?;
            if rev.kind != FileKind::File {
                return Err(if rev.kind == FileKind::Dir {
                    FsError::IsDir
                } else {
                    FsError::Invalid
                });
            }
            let base = content::load(&core.conn, rev.list)?;
            (rev, base)
        };
        let st = FileState {
            handles: 0,
            size: rev.size,
            base: Arc::new(base),
            overlay: Overlay::default(),
            zeroed: Zeroed::default(),
            dirty_since: None,
            mtime: rev.mtime,
            generation: 0,
            ahead: Ahead::default(),
            accounted: 0,
            no_space_at: None,
        };
        let mut files = self.files.lock().unwrap();
        Ok(files
            .entry(ino)
            .or_insert_with(|| Arc::new(Mutex::new(st)))
            .clone())
    }

    /// Drop the state of a file no one has open and that has nothing uncommitted.
    fn maybe_forget(&self, ino: Ino) {
        let mut files = self.files.lock().unwrap();
        let idle = files.get(&ino).is_some_and(|f| {
            Arc::strong_count(f) == 1 && f.try_lock().is_ok_and(|st| st.handles == 0 && !st.dirty())
        });
        if idle {
            files.remove(&ino);
        }
    }

    /// Attributes as of now: a revision with the file's uncommitted writes on top. `rev` was
    /// read before the file's state is looked at, so a commit of the file may have landed in
    /// between (the dirty size gone into a newer revision): for a file with in-memory state,
    /// clean now, the current revision is read again while its state is held, which any
    /// commit of it needs. Callers hold neither lock (order: file state, then core).
    pub(super) fn attr_of(&self, rev: &namespace::Revision) -> super::Attr {
        let Some(f) = self.files.lock().unwrap().get(&rev.ino).cloned() else {
            return self.attr_committed(rev);
        };
        let st = f.lock().unwrap();
        if st.dirty() {
            let mut a = super::ops::attr_from(rev, st.size, st.mtime);
            a.blocks = super::seek::blocks_now(&st);
            return a;
        }
        let now = super::ops::current(&self.lock_core().conn, rev.ino);
        match now {
            Ok(now) => self.attr_committed(&now),
            Err(_) => self.attr_committed(rev),
        }
    }

    pub fn open(&self, ino: Ino, flags: i32) -> Result<Opened> {
        self.open_as(&Credentials::this_process(), ino, flags)
    }

    /// `open` by the sender of a kernel request: the conduit acts for whoever opened it.
    pub fn open_as(&self, who: &Credentials, ino: Ino, flags: i32) -> Result<Opened> {
        if super::special::is_special(ino) {
            return self.special_open(who, ino, flags);
        }
        let acc = flags & libc::O_ACCMODE;
        let write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        if write {
            self.check_writable()?;
        }
        let f = self.file_state(ino)?;
        let generation = {
            let mut st = f.lock().unwrap();
            st.handles += 1;
            if write && flags & libc::O_TRUNC != 0 && st.size > 0 {
                st.overlay.clear();
                self.account(&mut st);
                st.zeroed.add(0, u64::MAX);
                st.size = 0;
                st.touch();
            }
            st.generation
        };
        let fh = self.new_fh(Handle {
            ino,
            write,
            dir: false,
            generation,
        });
        Ok(Opened {
            fh,
            keep_cache: true,
            direct_io: false,
        })
    }

    /// The state of the file a handle has open; `locked_state` locks it and gives ESTALE if a
    /// revert replaced it since.
    pub(super) fn state_for(&self, ino: Ino, h: &Handle) -> Result<Arc<Mutex<FileState>>> {
        if h.ino != ino || h.dir {
            return Err(FsError::BadHandle);
        }
        self.file_state(ino)
    }

    /// The locked state of the file a handle has open (one lock, for the hot paths).
    pub(super) fn locked_state<'a>(
        &self,
        f: &'a Mutex<FileState>,
        h: &Handle,
    ) -> Result<std::sync::MutexGuard<'a, FileState>> {
        let st = f.lock().unwrap();
        stale_check(&st, h)?;
        Ok(st)
    }

    /// After a revert: the file's committed state changed under its handles.
    pub(super) fn reload_after_revert(&self, ino: Ino) -> Result<()> {
        let Some(f) = self.files.lock().unwrap().get(&ino).cloned() else {
            return Ok(());
        };
        let mut st = f.lock().unwrap();
        let (rev, base) = {
            let core = self.lock_core();
            let rev = super::tree::rev_or_missing(&core.conn, ino, super::tree::When::Now)?;
            let base = content::load(&core.conn, rev.list)?;
            (rev, base)
        };
        st.base = Arc::new(base);
        st.size = rev.size;
        st.mtime = rev.mtime;
        st.overlay.clear();
        self.account(&mut st);
        st.zeroed.clear();
        st.dirty_since = None;
        st.generation += 1;
        Ok(())
    }

    pub fn read(&self, ino: Ino, fh: Fh, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.read_as(&Credentials::this_process(), ino, fh, offset, size)
    }

    pub fn read_as(
        &self,
        who: &Credentials,
        ino: Ino,
        fh: Fh,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>> {
        let h = self.handle(fh)?;
        if super::special::is_special(ino) {
            return self.special_read(who, fh, offset, size);
        }
        let f = self.state_for(ino, &h)?;
        let mut st = self.locked_state(&f, &h)?;
        let end = (offset + size as u64).min(st.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        if st.dirty() {
            return self.read_range(&st, offset, end);
        }
        let ahead = st.ahead.next(offset, end, self.read_ahead_window());
        // Nothing uncommitted: read the committed content without holding the file's lock,
        // so readers of one file run in parallel and never wait behind device I/O.
        let base = st.base.clone();
        drop(st);
        self.read_committed(&base, offset, end, ahead)
    }

    /// Committed bytes [from, to) (`to` within the file's size; past the content's end reads
    /// zeros), after starting the decode of `ahead` in the background.
    pub(super) fn read_committed(
        &self,
        c: &Content,
        from: u64,
        to: u64,
        ahead: Option<(u64, u64)>,
    ) -> Result<Vec<u8>> {
        if let Some((a, b)) = ahead {
            self.read_ahead(c, a, b.min(c.size()));
        }
        // Built by appending rather than zero-filled and then copied over.
        let mut out = Vec::with_capacity((to - from) as usize);
        self.visit_content(c, from, to.min(c.size()), |piece, n| match piece {
            Some(data) => out.extend_from_slice(data),
            None => out.resize(out.len() + n, 0),
        })?;
        out.resize((to - from) as usize, 0);
        Ok(out)
    }

    /// Bytes [from, to) of a file as it is now, uncommitted writes included.
    fn read_range(&self, st: &FileState, from: u64, to: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (to - from) as usize];
        let base_to = to.min(st.base.size());
        // Committed chunks that are wholly zeroed or overwritten are not read: a damaged one
        // must not stop a file from being rewritten, and reading them would be wasted work.
        let mut pos = from;
        while pos < base_to {
            let Some(i) = st.base.find(pos) else { break };
            let (s, e) = (st.base.start(i), st.base.end(i).min(base_to));
            let (a, b) = (pos.max(s), e);
            if !st.zeroed.covers(a, b) && !st.overlay.covers(a, b) {
                let dst = &mut buf[(a - from) as usize..(b - from) as usize];
                self.read_content(&st.base, a, dst)?;
            }
            pos = e;
        }
        if from < base_to {
            st.zeroed.apply(from, &mut buf[..(base_to - from) as usize]);
        }
        st.overlay.read_into(from, &mut buf);
        Ok(buf)
    }

    /// Fill `buf` with committed content starting at `off`.
    pub(super) fn read_content(&self, c: &Content, off: u64, buf: &mut [u8]) -> Result<()> {
        let mut at = 0;
        self.visit_content(c, off, off + buf.len() as u64, |piece, n| {
            match piece {
                Some(data) => buf[at..at + n].copy_from_slice(data),
                None => buf[at..at + n].fill(0),
            }
            at += n;
        })
    }

    /// Hand committed content [from, to) to `f` in order, piece by piece: chunk data, or
    /// `None` for a hole of `n` bytes. Stops at the content's end.
    fn visit_content(
        &self,
        c: &Content,
        from: u64,
        to: u64,
        mut f: impl FnMut(Option<&[u8]>, usize),
    ) -> Result<()> {
        let Some(mut i) = c.find(from) else {
            return Ok(());
        };
        while i < c.entries().len() && c.start(i) < to {
            let e = c.entries()[i];
            let (s, eend) = (c.start(i), c.end(i));
            let (a, b) = (s.max(from), eend.min(to));
            let n = (b - a) as usize;
            if e.is_hole() {
                f(None, n);
            } else {
                let data = self.chunk(&e.hash)?;
                if data.len() as u64 != e.len {
                    return Err(FsError::Corrupt(format!(
                        "chunk {} has the wrong length",
                        e.hash
                    )));
                }
                f(Some(&data[(a - s) as usize..(b - s) as usize]), n);
            }
            i += 1;
        }
        Ok(())
    }

    /// The plain bytes of a chunk, from the cache or the device; verified against its name.
    /// A chunk another reader (or a read-ahead job) is decoding is waited for, not decoded
    /// twice.
    pub(super) fn chunk(&self, hash: &ChunkHash) -> Result<Arc<Vec<u8>>> {
        if let Some(d) = self.cache.get(hash) {
            return Ok(d);
        }
        // Claim it, or wait for whoever has; if their decode failed, claim it again (once:
        // after that, fetch without a claim, which reports the failure to this reader too).
        let mut mine = None;
        for _ in 0..2 {
            let claim = self.inflight.claim(*hash);
            if let Some(d) = claim.wait() {
                return Ok(d);
            }
            if let Claim::Mine(c) = claim {
                // Whoever held the last claim may have finished between our two looks.
                if let Some(d) = self.cache.peek(hash) {
                    c.complete(d.clone());
                    return Ok(d);
                }
                mine = Some(c);
                break;
            }
        }
        let plain = Arc::new(self.fetch_verified(hash)?);
        self.cache.insert(*hash, plain.clone());
        if let Some(c) = mine {
            c.complete(plain.clone());
        }
        Ok(plain)
    }

    /// Fetch a chunk from wherever the index says it is, verified. The location stays
    /// readable while `source` is held, even if GC moves the chunk meanwhile (`readers`), so
    /// bytes that fail their check are damage, never a race.
    fn fetch_verified(&self, hash: &ChunkHash) -> Result<Vec<u8>> {
        let source = self.lock_core().chunk_source(hash)?;
        let fetched = self.fetch(hash, &source);
        drop(source);
        fetched.map_err(|err| match err {
            FetchError::Io(e) => e.into(),
            FetchError::Damaged(why) => self.damaged(hash, &why),
        })
    }

    /// Read and check a chunk's bytes from where `source` says they are.
    pub(super) fn fetch(
        &self,
        hash: &ChunkHash,
        source: &ChunkSource,
    ) -> Result<Vec<u8>, FetchError> {
        let (codec, raw_len, stored) = match source {
            ChunkSource::Pending(c, raw, stored) => (*c, *raw, std::borrow::Cow::Borrowed(stored)),
            ChunkSource::Device { start, loc, .. } => {
                let mut stored = vec![0u8; loc.stored_len as usize];
                self.dev
                    .read_at(&mut stored, start + loc.offset as u64)
                    .map_err(FetchError::Io)?;
                (loc.codec, loc.raw_len, std::borrow::Cow::Owned(stored))
            }
        };
        match superchunk::decompress_chunk(codec, &stored, raw_len) {
            Ok(p) if ChunkHash::of(&p) == *hash => Ok(p),
            Ok(_) => Err(FetchError::Damaged(
                "its bytes no longer match its name".into(),
            )),
            Err(e) => Err(FetchError::Damaged(e.to_string())),
        }
    }

    /// Keep the total of uncommitted bytes over all files current, which bounds memory.
    fn account(&self, st: &mut FileState) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = st.overlay.bytes();
        if now >= st.accounted {
            self.dirty_bytes.fetch_add(now - st.accounted, Relaxed);
        } else {
            self.dirty_bytes.fetch_sub(st.accounted - now, Relaxed);
        }
        st.accounted = now;
    }

    /// Remember a damaged chunk so that writing its bytes again heals it, and say so loudly.
    fn damaged(&self, hash: &ChunkHash, why: &str) -> FsError {
        log::error!("chunkfs: chunk {hash} is damaged ({why}); reads that need it fail with EIO");
        self.damaged.lock().unwrap().insert(*hash);
        FsError::Corrupt(format!("chunk {hash}: {why}"))
    }

    /// Store good copies of damaged chunks (`fsck --repair-from`): each must hash to its name.
    /// Returns the chunks healed; durable once this returns.
    pub fn heal_chunks(&self, found: Vec<(ChunkHash, Vec<u8>)>) -> Result<Vec<ChunkHash>> {
        let good: Vec<(ChunkHash, Vec<u8>)> = found
            .into_iter()
            .filter(|(h, d)| ChunkHash::of(d) == *h)
            .collect();
        let healed: Vec<ChunkHash> = good.iter().map(|(h, _)| *h).collect();
        let homes = self.homes_of(&healed)?;
        self.stage(good.iter().map(|(h, d)| (*h, d.as_slice())).collect(), true)?;
        self.lock_core().commit(&*self.dev)?;
        {
            let mut damaged = self.damaged.lock().unwrap();
            for h in &healed {
                damaged.remove(h);
                self.cache.remove(h);
            }
        }
        self.retire_damaged(&homes);
        Ok(healed)
    }

    pub fn write(&self, ino: Ino, fh: Fh, offset: u64, data: &[u8]) -> Result<u32> {
        self.write_as(&Credentials::this_process(), ino, fh, offset, data)
    }

    pub fn write_as(
        &self,
        who: &Credentials,
        ino: Ino,
        fh: Fh,
        offset: u64,
        data: &[u8],
    ) -> Result<u32> {
        let h = self.handle(fh)?;
        if ino == super::special::CTL_FILE {
            return self.conduit_write(fh, who, data); // offsets mean nothing to the conduit
        }
        super::special::refuse_change(ino)?;
        if !h.write {
            return Err(FsError::BadHandle);
        }
        offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= i64::MAX as u64)
            .ok_or(FsError::TooBig)?;
        self.check_writable()?;
        if data.is_empty() {
            return Ok(0); // POSIX: no other results, so the size stays too
        }
        let f = self.state_for(ino, &h)?;
        let mut st = self.locked_state(&f, &h)?;
        // A write that would pass the limit commits what is buffered first: if that commit fails
        // (ENOSPC, EIO), this write fails having changed nothing, as an error must mean.
        if !st.overlay.is_empty() && st.overlay.bytes() + data.len() > self.opts.dirty_limit {
            self.commit_file_if_room(ino, &mut st)?;
        }
        st.overlay.write(offset, data);
        self.account(&mut st);
        st.size = st.size.max(offset + data.len() as u64);
        st.touch();
        // Past a limit now, commit at once. The write itself has been taken, so a failure here
        // is reported where buffered data's failures belong: at fsync and close.
        let all_dirty = self.dirty_bytes.load(std::sync::atomic::Ordering::Relaxed);
        if (st.overlay.bytes() >= self.opts.dirty_limit || all_dirty >= self.opts.dirty_total_limit)
            && let Err(e) = self.commit_file_if_room(ino, &mut st)
        {
            log::debug!("chunkfs: commit at the dirty limit failed, retried at close: {e}");
        }
        Ok(data.len() as u32)
    }

    pub fn flush(&self, ino: Ino, fh: Fh) -> Result<()> {
        let h = self.handle(fh)?;
        if super::special::is_special(ino) {
            // close(2) waits for FLUSH, not for RELEASE: a finished request's progress goes
            // now, so that it is gone from /.chunkfs/progress when close returns.
            self.progress.closed(fh);
            return Ok(());
        }
        self.commit_handle(ino, &h)
    }

    pub fn fsync(&self, ino: Ino, fh: Fh, _datasync: bool) -> Result<()> {
        let h = self.handle(fh)?;
        if super::special::is_special(ino) {
            return Ok(());
        }
        self.commit_handle(ino, &h)?;
        self.lock_core().commit(&*self.dev)
    }

    /// Commit the content of the file `h` has open (ESTALE if reverted under it), checking
    /// and committing under one lock of its state.
    fn commit_handle(&self, ino: Ino, h: &Handle) -> Result<()> {
        let f = self.state_for(ino, h)?;
        let mut st = self.locked_state(&f, h)?;
        self.commit_file(ino, &mut st)
    }

    pub fn release(&self, ino: Ino, fh: Fh) -> Result<()> {
        let h = self
            .handles
            .lock()
            .unwrap()
            .remove(&fh.0)
            .ok_or(FsError::BadHandle)?;
        if h.dir {
            return Ok(());
        }
        if super::special::is_special(ino) {
            self.special_release(fh);
            return Ok(());
        }
        let r = match self.files.lock().unwrap().get(&ino).cloned() {
            Some(f) => {
                let mut st = f.lock().unwrap();
                st.handles = st.handles.saturating_sub(1);
                if st.handles == 0 {
                    self.commit_file(ino, &mut st)
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        };
        self.maybe_forget(ino);
        r
    }

    pub(super) fn commit_ino(&self, ino: Ino) -> Result<()> {
        let Some(f) = self.files.lock().unwrap().get(&ino).cloned() else {
            return Ok(());
        };
        let mut st = f.lock().unwrap();
        self.commit_file(ino, &mut st)
    }

    /// Set the size of a file (truncate or extend with a hole) and commit it.
    pub(super) fn truncate(&self, ino: Ino, size: u64) -> Result<()> {
        let f = self.file_state(ino)?;
        {
            let mut st = f.lock().unwrap();
            if size < st.size {
                st.overlay.clear_range(size, u64::MAX);
                self.account(&mut st);
                st.zeroed.add(size, u64::MAX);
            }
            st.size = size;
            st.touch();
            self.commit_file(ino, &mut st)?;
        }
        self.maybe_forget(ino);
        Ok(())
    }

    pub fn fallocate(&self, ino: Ino, fh: Fh, offset: u64, length: u64, mode: i32) -> Result<()> {
        let h = self.handle(fh)?;
        super::special::refuse_change(ino)?;
        if !h.write {
            return Err(FsError::BadHandle);
        }
        let f = self.state_for(ino, &h)?;
        self.check_writable()?;
        let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        let zero = mode & libc::FALLOC_FL_ZERO_RANGE != 0;
        let known =
            libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !known != 0 || (punch && (!keep || zero)) {
            return Err(FsError::NotSupported);
        }
        let end = offset
            .checked_add(length)
            .filter(|e| *e <= i64::MAX as u64)
            .ok_or(FsError::TooBig)?;
        if length == 0 {
            return Err(FsError::Invalid);
        }
        let mut st = self.locked_state(&f, &h)?;
        if punch || zero {
            let to = if keep { end.min(st.size) } else { end };
            if offset < to {
                st.overlay.clear_range(offset, to);
                self.account(&mut st);
                st.zeroed.add(offset, to);
            }
        }
        // Space is not reserved: stored data is deduplicated and compressed, so no fixed
        // reservation could promise a later write room (see docs/SEMANTICS.md).
        if !keep && end > st.size {
            st.size = end;
        }
        st.touch();
        self.commit_file(ino, &mut st)
    }

    /// What the committer thread does at each tick (public so tests can run one): commit the
    /// content of files dirty for longer than the age limit, skipping files in use right now
    /// (their writer commits them) and files whose last commit ran out of space while no space
    /// has been freed since (a retry could only fail again, and would stage chunks into what
    /// little room is left).
    pub fn commit_aged_files(&self) -> Result<()> {
        self.commit_files(false, |st| {
            st.dirty_since
                .is_some_and(|t| t.elapsed() >= self.opts.dirty_age)
        })
    }

    /// Commit every file `pick` chooses. With `wait`, every one, waiting for busy ones; without
    /// (the committer), files in use and files stuck for lack of space are skipped. One file
    /// that cannot commit does not hold up the others; the first error is returned.
    pub(super) fn commit_files(&self, wait: bool, pick: impl Fn(&FileState) -> bool) -> Result<()> {
        let failed = self.try_commit_files(wait, pick);
        failed.into_iter().next().map_or(Ok(()), |(_, e)| Err(e))
    }

    /// `commit_files`, returning every file that could not commit and why.
    pub(super) fn try_commit_files(
        &self,
        wait: bool,
        pick: impl Fn(&FileState) -> bool,
    ) -> Vec<(Ino, FsError)> {
        let retry = if wait {
            Retry::Always
        } else {
            Retry::IfSpaceFreed
        };
        let files: Vec<_> = self
            .files
            .lock()
            .unwrap()
            .iter()
            .map(|(i, f)| (*i, f.clone()))
            .collect();
        let mut failed = Vec::new();
        for (ino, f) in files {
            let mut st = if wait {
                f.lock().unwrap()
            } else {
                match f.try_lock() {
                    Ok(st) => st,
                    Err(_) => continue,
                }
            };
            if !pick(&st) {
                continue;
            }
            if let Err(e) = self.commit_file_with(ino, &mut st, retry) {
                failed.push((ino, e));
            }
            // A closed file committed (or dropped) here has nothing left to keep in memory,
            // and its state would keep GC from reclaiming it once unlinked.
            let idle = st.handles == 0 && !st.dirty();
            drop(st);
            drop(f);
            if idle {
                self.maybe_forget(ino);
            }
        }
        failed
    }

    /// `commit_file` for the commits nobody asked for (at the dirty limits): a file whose last
    /// commit ran out of space fails with ENOSPC at once, without re-chunking its buffer,
    /// until space has been freed.
    fn commit_file_if_room(&self, ino: Ino, st: &mut FileState) -> Result<()> {
        self.commit_file_with(ino, st, Retry::IfSpaceFreed)?;
        if st.dirty() {
            return Err(FsError::NoSpace);
        }
        Ok(())
    }

    /// Turn a file's uncommitted changes into a new revision (see `commit_file_with`).
    pub(super) fn commit_file(&self, ino: Ino, st: &mut FileState) -> Result<()> {
        self.commit_file_with(ino, st, Retry::Always)
    }

    /// Turn a file's uncommitted changes into a new revision, or drop them if the file is
    /// unlinked and no one has it open: no name, view or handle can ever read them, and
    /// committing them would only take space (a full device would retry them for ever).
    /// Remembers the space generation of a commit that ran out of space; with
    /// `Retry::IfSpaceFreed` such a file is left dirty, untried, until the generation moves.
    fn commit_file_with(&self, ino: Ino, st: &mut FileState, retry: Retry) -> Result<()> {
        if !st.dirty() {
            return Ok(());
        }
        let (orphan, generation) = {
            let core = self.lock_core();
            let orphan = st.handles == 0
                && super::tree::rev(&core.conn, ino, super::tree::When::Now)?
                    .is_none_or(|rev| rev.nlink == 0);
            (orphan, core.space_generation())
        };
        if orphan {
            self.drop_dirty(ino, st);
            return Ok(());
        }
        if retry == Retry::IfSpaceFreed && st.no_space_at == Some(generation) {
            return Ok(());
        }
        let r = self.commit_dirty(ino, st);
        st.no_space_at = match &r {
            Err(FsError::NoSpace | FsError::Store(crate::store::StoreError::NoSpace)) => {
                Some(generation)
            }
            _ => None,
        };
        r
    }

    /// Forget the uncommitted changes of a file no one can reach any more.
    fn drop_dirty(&self, ino: Ino, st: &mut FileState) {
        log::info!(
            "chunkfs: dropping {} uncommitted bytes of inode {}: it was unlinked and closed",
            st.overlay.bytes(),
            ino.0
        );
        st.overlay.clear();
        self.account(st);
        st.zeroed.clear();
        st.size = st.base.size();
        st.dirty_since = None;
        st.no_space_at = None;
    }

    /// Commit a dirty file's changes as a new revision.
    ///
    /// Only the affected parts are re-chunked: each written range, widened to the committed
    /// chunks it touches, and the chunk split by a truncation or punched hole. Everything else
    /// keeps its chunks, so the work and the new metadata follow the size of the change.
    fn commit_dirty(&self, ino: Ino, st: &mut FileState) -> Result<()> {
        let regions = affected_regions(st);
        let mut entries: Vec<Entry> = Vec::new();
        let mut pos = 0;
        // Every region's bytes are read first, and chunks are cut as slices of them: the data
        // of a commit exists once in memory, not once per stage.
        let mut buffers = Vec::with_capacity(regions.len());
        for &(a, b) in &regions {
            buffers.push(self.read_range(st, a, b)?);
        }
        let mut fresh: Vec<(ChunkHash, &[u8])> = Vec::new();
        for (&(a, b), buf) in regions.iter().zip(&buffers) {
            keep_between(st, pos, a, &mut entries);
            self.cut_into(buf, &mut fresh, &mut entries);
            pos = b;
        }
        keep_between(st, pos, st.size, &mut entries);
        let content = self.commit_content(ino, fresh, entries, st.size, st.mtime, "write")?;
        st.base = Arc::new(content);
        st.overlay.clear();
        self.account(st);
        st.zeroed.clear();
        st.dirty_since = None;
        Ok(())
    }

    /// Cut `buf` into chunks appended to `entries`; those holding data go to `fresh` too, as
    /// slices of `buf` (all-zero chunks become holes).
    pub(super) fn cut_into<'a>(
        &self,
        buf: &'a [u8],
        fresh: &mut Vec<(ChunkHash, &'a [u8])>,
        entries: &mut Vec<Entry>,
    ) {
        for (hash, range) in self.cut_and_hash(buf) {
            let len = range.len() as u64;
            if hash != HOLE {
                fresh.push((hash, &buf[range]));
            }
            push_entry(entries, Entry { hash, len });
        }
    }

    /// Store a new content's fresh chunks and commit `entries` as `ino`'s content: a revision
    /// by `op` of `size` bytes modified at `mtime`. Returns the content, its list's data size
    /// remembered. The fresh chunks are pinned from their staging until the operation has run:
    /// by then the new list references them on the connection GC reads (or the operation
    /// failed and they are garbage). The entries kept from the file's state are its current
    /// revision's unless a revert changed it and the state is not reloaded yet (the reload
    /// waits for the state's lock, which the caller holds): then ESTALE, as the file's handles
    /// will be, rather than a list naming chunks GC may have taken.
    pub(super) fn commit_content(
        &self,
        ino: Ino,
        fresh: Vec<(ChunkHash, &[u8])>,
        entries: Vec<Entry>,
        size: u64,
        mtime: i64,
        op: &str,
    ) -> Result<Content> {
        let pins = self.store_chunks(fresh)?;
        let tree = content::build(&entries);
        let r = self.op(|core, seq| {
            core.check_not_reverted(ino)?;
            let mut rev = super::ops::current_mut(&core.conn, ino, seq)?;
            tree.store(&core.conn)?;
            rev.list = tree.root;
            rev.size = size;
            rev.mtime = mtime;
            rev.ctime = mtime.max(rev.ctime);
            namespace::put_revision(&core.conn, &rev, seq, op)?;
            Ok(())
        });
        self.lock_core().unpin(&pins);
        r?;
        let content = Content::new(entries);
        self.remember_list_data(tree.root, &content);
        Ok(content)
    }

    /// Cut bytes into chunks and name them, in parallel; all-zero chunks become holes.
    pub(super) fn cut_and_hash(&self, bytes: &[u8]) -> Vec<(ChunkHash, std::ops::Range<usize>)> {
        let mut ranges = Vec::new();
        let mut off = 0;
        for l in chunker::cut(bytes, self.sb.chunk) {
            ranges.push(off..off + l);
            off += l;
        }
        ranges
            .into_par_iter()
            .map(|r| {
                let p = &bytes[r.clone()];
                let hash = if p.iter().all(|&b| b == 0) {
                    HOLE
                } else {
                    ChunkHash::of(p)
                };
                (hash, r)
            })
            .collect()
    }

    /// Store the chunks the index does not have yet: compressed on rayon with no lock held.
    /// Returns the chunks pinned against GC until the caller's operation references them.
    pub(super) fn store_chunks(&self, chunks: Vec<(ChunkHash, &[u8])>) -> Result<Vec<ChunkHash>> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let mut heal = Vec::new();
        let pins: Vec<ChunkHash>;
        let new: Vec<(ChunkHash, &[u8])> = {
            let damaged = self.damaged.lock().unwrap();
            let mut core = self.lock_core();
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for (h, d) in chunks {
                if !seen.insert(h) {
                    continue;
                }
                if !core.has_chunk(&h)? {
                    out.push((h, d));
                } else if damaged.contains(&h) {
                    heal.push((h, d)); // the same bytes again: a good copy of a damaged chunk
                }
            }
            pins = seen.into_iter().collect();
            core.pin(pins.iter().copied());
            out
        };
        let homes = if heal.is_empty() {
            Vec::new()
        } else {
            let hashes: Vec<ChunkHash> = heal.iter().map(|(h, _)| *h).collect();
            self.homes_of(&hashes)?
        };
        let r = self.stage_fresh(heal, new);
        if r.is_err() {
            self.lock_core().unpin(&pins);
        } else {
            self.retire_damaged(&homes);
        }
        r.map(|()| pins)
    }

    fn stage_fresh(
        &self,
        heal: Vec<(ChunkHash, &[u8])>,
        new: Vec<(ChunkHash, &[u8])>,
    ) -> Result<()> {
        if !heal.is_empty() {
            let healed: Vec<ChunkHash> = heal.iter().map(|(h, _)| *h).collect();
            self.stage(heal, true)?;
            let mut damaged = self.damaged.lock().unwrap();
            for h in healed {
                log::info!("chunkfs: chunk {h} healed by a write of the same bytes");
                damaged.remove(&h);
                self.cache.remove(&h);
            }
        }
        self.stage(new, false)
    }

    /// Compress on rayon with no lock held, then add to the open superchunk.
    fn stage(&self, new: Vec<(ChunkHash, &[u8])>, heal: bool) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let level = self.opts.zstd_level;
        let compressed: Vec<(ChunkHash, Codec, u32, Vec<u8>)> = new
            .into_par_iter()
            .map(|(h, d)| {
                let (codec, stored) = superchunk::compress_chunk(d, level);
                (h, codec, d.len() as u32, stored)
            })
            .collect();
        self.lock_core().stage_chunks(&*self.dev, compressed, heal)
    }
}

/// Whether a commit is tried again although the file's last one ran out of space and no space
/// has been freed since: explicit requests (close, fsync, sync, unmount) always try.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Always,
    IfSpaceFreed,
}

pub(super) enum FetchError {
    Io(std::io::Error),
    Damaged(String),
}

/// The ranges to re-chunk, sorted and disjoint, within [0, size).
fn affected_regions(st: &FileState) -> Vec<(u64, u64)> {
    let base = &st.base;
    // A hole entry is never widened into: its zeros stay a hole whatever is cut around them,
    // and re-reading them would cost the hole's size (one byte written into a 2 GiB hole read
    // and cut 2 GiB of zeros in memory). `keep_between` keeps the parts of it left over.
    let hole = |i: usize| base.entries()[i].is_hole();
    // An append re-cuts the last committed chunk too: it ended where the data ended, not at
    // a content-defined boundary, and a cut forced there would cost deduplication.
    let widen_start = |x: u64| match base.find(x) {
        Some(i) if hole(i) => x,
        Some(i) => base.start(i),
        None if x == base.size() && x > 0 && !hole(base.entries().len() - 1) => {
            base.start(base.entries().len() - 1)
        }
        None => x,
    };
    let widen_end = |y: u64| {
        if y == 0 {
            return 0;
        }
        match base.find(y - 1) {
            Some(i) if hole(i) => y,
            Some(i) => base.end(i),
            None => y,
        }
    };
    let mut regions: Vec<(u64, u64)> = st
        .overlay
        .ranges()
        .map(|(a, b)| (widen_start(a), widen_end(b)))
        .collect();
    // A committed chunk cut by the edge of a zeroed range keeps its other part as data.
    for &(z0, z1) in st.zeroed.ranges() {
        for edge in [z0, z1] {
            if let Some(i) = base.find(edge)
                && base.start(i) < edge
                && !hole(i)
            {
                regions.push((base.start(i), base.end(i)));
            }
        }
    }
    regions.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in regions {
        let (a, b) = (a.min(st.size), b.min(st.size));
        if a >= b {
            continue;
        }
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// Entries for [from, to) that need no re-chunking: committed chunks (or holes where the
/// content was zeroed) and holes past the committed end.
fn keep_between(st: &FileState, from: u64, to: u64, out: &mut Vec<Entry>) {
    if from >= to {
        return;
    }
    let base = &st.base;
    let base_to = to.min(base.size());
    if from < base_to {
        let mut i = base.find(from).expect("inside the base");
        while i < base.entries().len() && base.start(i) < base_to {
            let (s, e) = (base.start(i), base.end(i));
            let mut entry = base.entries()[i];
            if st.zeroed.covers(s, e) {
                entry.hash = HOLE;
            }
            if entry.is_hole() {
                // Regions may start and end inside a hole (`affected_regions`).
                entry.len = e.min(base_to) - s.max(from);
            }
            push_entry(out, entry);
            i += 1;
        }
    }
    let hole_from = from.max(base.size());
    if hole_from < to {
        push_entry(
            out,
            Entry {
                hash: HOLE,
                len: to - hole_from,
            },
        );
    }
}
