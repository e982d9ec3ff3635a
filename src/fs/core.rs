//! The state behind the metadata lock: the SQLite connection with its open group-commit
//! transaction, the free map, the open superchunk, and the seq counter. Every change to the
//! store goes through `Fs::write_op`, which gives it one seq and a savepoint.
//!
//! Lock order (documented once, here): files map → one file's state → `Core` → chunk cache.
//! Hashing, compression and device reads of chunk data happen with no `Core` lock held. The
//! read-ahead claims (`readahead::InFlight`) are a leaf: taken for a map update only. A reader
//! may wait for a claimed chunk while holding its file's state, never while holding `Core`,
//! which the job completing the claim needs for its lookups.

use super::error::{FsError, Result};
use super::readers::{ReadGuard, Readers};
use crate::chunker::ChunkHash;
use crate::meta::chunks::{self, Location, SuperchunkRow};
use crate::meta::{self, Ino, Seq};
use crate::store::device::Device;
use crate::store::freemap::FreeMap;
use crate::store::superchunk::{Codec, ENTRY_LEN, SuperchunkBuilder, SuperchunkId, header_len_for};
use crate::store::{SECTOR, StoreError};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Core {
    pub conn: Connection,
    /// A transaction is open (BEGIN issued, not yet committed).
    in_txn: bool,
    /// The open transaction holds changes.
    dirty: bool,
    /// The last seq given to an operation.
    pub seq: u64,
    /// `seq` is still open: the next operation joins it (see `op`).
    open: bool,
    /// Operations that succeeded since the store opened.
    changes: u64,
    pub freemap: FreeMap,
    builder: Option<SuperchunkBuilder>,
    next_superchunk: u64,
    superchunk_target: u64,
    /// Set after a device or database failure: the store refuses writes from then on.
    failed: Option<String>,
    pub read_only: bool,
    /// Chunks an in-flight file commit found in the index (or staged) and is about to
    /// reference: GC must not sweep them even at refcount zero. Counted, since two commits
    /// may share a chunk.
    pinned: HashMap<ChunkHash, u32>,
    /// Inodes a revert changed whose in-memory file state has not been reloaded yet
    /// (`Core::mark_reverted`).
    reverted: std::collections::HashSet<Ino>,
    /// A superchunk was written since the device was last synced.
    unsynced: bool,
    /// `check_writable` as a flag others read without this lock (`Inner::check_writable`).
    writable: Arc<AtomicBool>,
    /// Who may still read device locations looked up earlier (see `release_retired`).
    readers: Arc<Readers>,
    /// Bumped each time extents return to the free map (`space_freed`): a file commit that
    /// ran out of space is retried in the background only once this has moved.
    space_generation: u64,
}

impl Core {
    pub fn new(conn: Connection, superchunk_target: u64, read_only: bool) -> Result<Core> {
        let seq = meta::get_u64(&conn, "seq")?.unwrap_or(0);
        let mut freemap = FreeMap::from_extents(chunks::free_extents(&conn)?)?;
        // Loading merges neighbours the table kept apart: write the merged rows back now, so
        // the table and the map agree before anything allocates.
        let merged = freemap.take_changes();
        if !merged.is_empty() && !read_only {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            chunks::apply_free_changes(&conn, &merged)?;
            conn.execute_batch("COMMIT")?;
        }
        let next_superchunk = chunks::next_superchunk_id(&conn)?;
        Ok(Core {
            conn,
            in_txn: false,
            dirty: false,
            seq,
            open: false,
            changes: 0,
            freemap,
            builder: None,
            next_superchunk,
            superchunk_target,
            failed: None,
            read_only,
            pinned: HashMap::new(),
            reverted: Default::default(),
            unsynced: false,
            writable: Arc::new(AtomicBool::new(!read_only)),
            readers: Arc::default(),
            space_generation: 0,
        })
    }

    pub fn check_writable(&self) -> Result<()> {
        if self.read_only || self.failed.is_some() {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }

    /// Run `f` as one operation. A request error rolls back just this operation; a device or
    /// database error poisons the store (see `fail`).
    ///
    /// Operations share a seq until it is *closed*: by the group commit, or by anyone who
    /// observes it (`close_seq`: a view of the past, a snapshot, a clone, a revert, `log`).
    /// All the changes one seq makes to an inode are one revision (`namespace::put_revision`
    /// replaces in place), since the states in between were never visible at any seq. This is
    /// the one place a seq is handed out, and the rule it keeps: **no state at a seq anyone
    /// has been told of changes afterwards** — whoever learns a seq closes it first, under
    /// this same lock, so the next operation gets a new one.
    pub fn op<T>(
        &mut self,
        dev: &dyn Device,
        f: impl FnOnce(&mut Core, Seq) -> Result<T>,
    ) -> Result<T> {
        self.check_writable()?;
        if !self.in_txn {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_txn = true;
        }
        // Prepared once and cached: `execute_batch` parsed these twice per operation.
        self.conn.prepare_cached("SAVEPOINT op")?.execute([])?;
        let seq = self.next_seq();
        match f(self, seq) {
            Ok(v) => {
                self.conn.prepare_cached("RELEASE op")?.execute([])?;
                self.seq = seq.0;
                self.open = true;
                self.dirty = true;
                self.changes += 1;
                Ok(v)
            }
            Err(e) if e.is_request_error() => {
                if let Err(e2) = self.conn.execute_batch("ROLLBACK TO op; RELEASE op") {
                    self.fail(dev, &e2.to_string());
                    return Err(e2.into());
                }
                Err(e)
            }
            Err(e) => {
                self.fail(dev, &e.to_string());
                Err(e)
            }
        }
    }

    /// `op` with a seq of its own, closed before and after: `seq - 1` is everything before
    /// it, and `seq` exactly what it left (a revert, a clone or a snapshot, whose seq users
    /// are told and may go back to).
    pub fn op_alone<T>(
        &mut self,
        dev: &dyn Device,
        f: impl FnOnce(&mut Core, Seq) -> Result<T>,
    ) -> Result<T> {
        self.close_seq();
        let r = self.op(dev, f);
        self.close_seq();
        r
    }

    /// The seq the next operation will take: the open one, or the one after a closed one.
    /// Rows that end from now on end at it or later.
    pub fn next_seq(&self) -> Seq {
        Seq(if self.open { self.seq } else { self.seq + 1 })
    }

    /// Operations that succeeded since the store opened.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The last seq handed out, closed: later operations get a later seq, so the state at the
    /// returned seq no longer changes. Call it wherever a seq is shown or read from.
    pub fn close_seq(&mut self) -> Seq {
        self.open = false;
        Seq(self.seq)
    }

    /// Give up on the open transaction after a device or database failure: nothing since the
    /// last commit is kept, and every later write gets EROFS.
    fn fail(&mut self, _dev: &dyn Device, why: &str) {
        log::error!("chunkfs: store failed, refusing writes from now on: {why}");
        if self.in_txn {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.in_txn = false;
        }
        self.dirty = false;
        self.open = false;
        self.builder = None;
        self.failed = Some(why.to_string());
        self.writable.store(false, Ordering::SeqCst);
    }

    /// Refuse (or allow again) every change, as after a remount read-only (or read-write).
    /// A store that failed stays refusing.
    pub fn set_read_only(&mut self, ro: bool) {
        self.read_only = ro;
        let writable = !ro && self.failed.is_none();
        self.writable.store(writable, Ordering::SeqCst);
    }

    /// The flag that mirrors `check_writable`, for readers outside the lock.
    pub fn writable_flag(&self) -> Arc<AtomicBool> {
        self.writable.clone()
    }

    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Freed extents are allocatable again (committed, no reader left): call once per release
    /// into the free map, so commits that ran out of space are worth trying again.
    fn space_freed(&mut self) {
        self.space_generation += 1;
    }

    /// Moves each time space is freed: equal values mean no space came back in between.
    pub fn space_generation(&self) -> u64 {
        self.space_generation
    }

    /// Is `hash` already stored, or waiting in the open superchunk?
    pub fn has_chunk(&self, hash: &ChunkHash) -> Result<bool> {
        if self.builder.as_ref().is_some_and(|b| b.get(hash).is_some()) {
            return Ok(true);
        }
        Ok(chunks::exists(&self.conn, hash)?)
    }

    /// Stored bytes of a chunk still in the open superchunk.
    pub fn pending_chunk(&self, hash: &ChunkHash) -> Option<(Codec, u32, Vec<u8>)> {
        let (c, raw, stored) = self.builder.as_ref()?.get(hash)?;
        Some((c, raw, stored.to_vec()))
    }

    /// Stage new chunks: add them to the open superchunk and the index with refcount 0, outside
    /// any operation's savepoint (a seal must never be rolled back). Chunks staged by a commit
    /// that then fails are simply unreferenced. Running out of space fails cleanly here, before
    /// anything points at the chunk, because `add_chunk` reserves room for the seal.
    ///
    /// With `heal`, the chunks are known to the index but their stored copy is damaged: the
    /// new copy replaces the index row's location.
    pub fn stage_chunks(
        &mut self,
        dev: &dyn Device,
        new: Vec<(ChunkHash, Codec, u32, Vec<u8>)>,
        heal: bool,
    ) -> Result<()> {
        self.check_writable()?;
        if !self.in_txn {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_txn = true;
        }
        for (hash, codec, raw_len, stored) in new {
            let pending = self
                .builder
                .as_ref()
                .is_some_and(|b| b.get(&hash).is_some());
            if pending || (!heal && chunks::exists(&self.conn, &hash)?) {
                continue; // another file stored it meanwhile
            }
            match self.add_chunk(dev, hash, codec, raw_len, stored, heal) {
                Ok(()) => self.dirty = true,
                Err(FsError::NoSpace) => return Err(FsError::NoSpace),
                Err(e) => {
                    self.fail(dev, &e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn add_chunk(
        &mut self,
        dev: &dyn Device,
        hash: ChunkHash,
        codec: Codec,
        raw_len: u32,
        stored: Vec<u8>,
        heal: bool,
    ) -> Result<()> {
        // The table counts too: with tiny compressed chunks it is much of a superchunk.
        let full = self.builder.as_ref().is_some_and(|b| {
            !b.is_empty()
                && (b.encoded_len() + ENTRY_LEN + stored.len()) as u64 > self.superchunk_target
        });
        if full {
            self.seal(dev)?;
        }
        let fits = |core: &Core| {
            let (count, payload) = core
                .builder
                .as_ref()
                .map_or((0, 0), |b| (b.len(), b.payload_len()));
            let need = (header_len_for(count + 1) + payload + stored.len()) as u64;
            core.freemap.largest() >= need.div_ceil(SECTOR) * SECTOR
        };
        // On a nearly full device the open superchunk plus this chunk may fit in no free
        // extent while each alone does: seal what is open (its room was checked as it grew)
        // and start afresh before giving up.
        if !fits(self) && self.builder.as_ref().is_some_and(|b| !b.is_empty()) {
            self.seal(dev)?;
        }
        if !fits(self) {
            return Err(FsError::NoSpace);
        }
        let builder = self.builder.get_or_insert_with(|| {
            let id = SuperchunkId(self.next_superchunk);
            self.next_superchunk += 1;
            SuperchunkBuilder::new(id)
        });
        let loc = Location {
            superchunk: builder.id(),
            offset: 0, // known once sealed
            stored_len: stored.len() as u32,
            raw_len,
            codec,
        };
        builder.push(hash, codec, raw_len, stored);
        if heal {
            chunks::move_chunk(&self.conn, &hash, &loc)?;
        } else {
            chunks::insert(&self.conn, &hash, &loc)?;
        }
        Ok(())
    }

    /// Write the open superchunk to a free extent and record it. Not synced: `commit` syncs
    /// the device before the transaction that points at it commits.
    pub fn seal(&mut self, dev: &dyn Device) -> Result<()> {
        let Some(builder) = self.builder.take() else {
            return Ok(());
        };
        if builder.is_empty() {
            return Ok(());
        }
        let sealed = builder.seal();
        let extent = self
            .freemap
            .allocate(sealed.bytes.len() as u64)
            .ok_or(FsError::Store(StoreError::NoSpace))?;
        if dev.len()? < extent.end() {
            dev.grow(extent.end())?;
        }
        self.unsynced = true;
        dev.write_at(&sealed.bytes, extent.start)?;
        chunks::insert_superchunk(
            &self.conn,
            &SuperchunkRow::holding(sealed.id, extent, &sealed.entries),
            super::now_ns() / 1_000_000_000,
        )?;
        for e in &sealed.entries {
            chunks::set_offset(&self.conn, &e.hash, e.offset)?;
        }
        chunks::apply_free_changes(&self.conn, &self.freemap.take_changes())?;
        meta::set_u64(&self.conn, "superchunk_hwm", sealed.id.0)?;
        Ok(())
    }

    /// Make everything done so far durable: seal the open superchunk, sync the device, then
    /// commit the transaction. Data is on the device before any metadata points at it.
    pub fn commit(&mut self, dev: &dyn Device) -> Result<()> {
        if !self.in_txn {
            return Ok(());
        }
        if !self.dirty {
            self.conn.execute_batch("COMMIT")?;
            self.in_txn = false;
            return Ok(());
        }
        let r = (|| -> Result<()> {
            self.seal(dev)?;
            dev.sync()?;
            self.unsynced = false;
            meta::set_u64(&self.conn, "seq", self.seq)?;
            meta::record_commit(&self.conn, Seq(self.seq), super::now_ns())?;
            self.conn.execute_batch("COMMIT")?;
            Ok(())
        })();
        match r {
            Ok(()) => {
                self.in_txn = false;
                self.dirty = false;
                self.open = false;
                self.release_retired(dev);
                Ok(())
            }
            Err(e) => {
                self.fail(dev, &e.to_string());
                Err(e)
            }
        }
    }
}

/// Chunks still waiting in memory are readable; this is what a reader needs from `Core` to
/// fetch a chunk without holding the lock during device I/O. A device location comes with
/// the reader's registration: the bytes there stay as they are while it is held.
pub enum ChunkSource {
    Pending(Codec, u32, Vec<u8>),
    Device {
        start: u64,
        loc: Location,
        _reading: ReadGuard,
    },
}

impl Core {
    /// Register a reader of device locations looked up in this critical section: until the
    /// guard is dropped no extent is discarded or reused (`release_retired`). The holder must
    /// not take the core lock again before dropping it.
    pub fn reading(&self) -> ReadGuard {
        self.readers.enter()
    }

    pub fn chunk_source(&self, hash: &ChunkHash) -> Result<ChunkSource> {
        if let Some((c, raw, stored)) = self.pending_chunk(hash) {
            return Ok(ChunkSource::Pending(c, raw, stored));
        }
        let loc = chunks::location(&self.conn, hash)?
            .ok_or_else(|| FsError::Corrupt(format!("chunk {hash} is not in the index")))?;
        let extent = chunks::superchunk_extent(&self.conn, loc.superchunk)?.ok_or_else(|| {
            FsError::Corrupt(format!(
                "chunk {hash} points at missing superchunk {}",
                loc.superchunk.0
            ))
        })?;
        Ok(ChunkSource::Device {
            start: extent.start,
            loc,
            _reading: self.reading(),
        })
    }
}

/// Pins and GC transactions.
impl Core {
    /// A revert changed these inodes' revisions; their open files' states still hold the old
    /// content until `fs::Inner::after_external_change` reloads them (it waits for each
    /// file's lock, which a commit or copy may hold). Set inside the revert's operation, so
    /// that no commit or copy that takes the core lock after it can build on the old content,
    /// whose chunks GC may already have swept: they answer ESTALE (`check_not_reverted`), as
    /// the file's handles will once reloaded.
    pub fn mark_reverted(&mut self, inos: impl IntoIterator<Item = Ino>) {
        self.reverted.extend(inos);
    }

    /// The file's state has been reloaded after a revert.
    pub fn clear_reverted(&mut self, ino: Ino) {
        self.reverted.remove(&ino);
    }

    /// ESTALE if a revert changed `ino` and its open state is not reloaded yet.
    pub fn check_not_reverted(&self, ino: Ino) -> Result<()> {
        if self.reverted.contains(&ino) {
            return Err(FsError::Stale);
        }
        Ok(())
    }

    pub fn pin(&mut self, hashes: impl IntoIterator<Item = ChunkHash>) {
        for h in hashes {
            *self.pinned.entry(h).or_default() += 1;
        }
    }

    pub fn unpin(&mut self, hashes: &[ChunkHash]) {
        for h in hashes {
            if let Some(n) = self.pinned.get_mut(h) {
                *n -= 1;
                if *n == 0 {
                    self.pinned.remove(h);
                }
            }
        }
    }

    /// The split borrows a GC step needs: the connection, the free map and the pins.
    pub fn gc_parts(&mut self) -> (&Connection, &mut FreeMap, &HashMap<ChunkHash, u32>) {
        (&self.conn, &mut self.freemap, &self.pinned)
    }

    /// Run one GC batch as its own transaction: whatever the group transaction holds is
    /// committed first, then `f` runs, then anything it staged is sealed, the device synced
    /// and the batch committed. Extents `f` frees can therefore not be reused by a seal
    /// before the commit that frees them. Running out of space rolls the batch back and leaves
    /// the store writable; any other failure poisons it.
    pub fn gc_txn<T>(
        &mut self,
        dev: &dyn Device,
        f: impl FnOnce(&mut Core) -> Result<T>,
    ) -> Result<T> {
        self.check_writable()?;
        self.commit(dev)?;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.in_txn = true;
        let r = f(self).and_then(|v| {
            self.seal(dev)?;
            if self.unsynced {
                dev.sync()?;
                self.unsynced = false;
            }
            self.conn.execute_batch("COMMIT")?;
            Ok(v)
        });
        match r {
            Ok(v) => {
                self.in_txn = false;
                self.dirty = false;
                self.release_retired(dev);
                Ok(v)
            }
            Err(FsError::NoSpace | FsError::Store(StoreError::NoSpace)) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.in_txn = false;
                self.dirty = false;
                self.builder = None;
                self.reload_freemap()?;
                Err(FsError::NoSpace)
            }
            Err(e) => {
                self.fail(dev, &e.to_string());
                Err(e)
            }
        }
    }

    /// The one place where freed space becomes allocatable again. GC retires the extents of
    /// the superchunks it frees (`FreeMap::retire`: free in the table, so a crash frees them,
    /// but not allocatable), and after the transaction that freed them has committed, still
    /// under this lock:
    /// 1. wait until no reader holds a location it looked up before that commit (none can
    ///    look one up now: lookups take this lock, and after the commit none leads there);
    /// 2. discard the old bytes;
    /// 3. only then make the extents allocatable.
    ///
    /// Discarding before the commit could punch a hole into live data if the commit failed;
    /// making the extents allocatable before the discard let the discard punch a hole into a
    /// superchunk written there meanwhile, and before the readers were done let them read a
    /// new superchunk's bytes as the old chunk's. Allocation (`seal`) happens under this lock
    /// too, so nothing is allocated between the commit and step 3.
    fn release_retired(&mut self, dev: &dyn Device) {
        if self.freemap.retired().is_empty() {
            return;
        }
        self.readers.wait_idle();
        for e in self.freemap.retired() {
            if let Err(err) = dev.discard(e.start, e.len) {
                log::warn!(
                    "chunkfs: cannot discard {} bytes at {}: {err}",
                    e.len,
                    e.start
                );
            }
        }
        self.freemap.release_retired();
        self.space_freed();
    }

    /// The free map as the database has it (after a rolled-back batch). The table may hold
    /// neighbours not merged yet (released extents are rows of their own until a later
    /// transaction merges them); loading merges them and queues that merge for the next
    /// transaction, which must write it: an allocation from the merged extent is persisted
    /// against the merged row.
    fn reload_freemap(&mut self) -> Result<()> {
        self.freemap = FreeMap::from_extents(chunks::free_extents(&self.conn)?)?;
        Ok(())
    }

    /// The id the next superchunk will get: those below it exist or existed.
    pub fn next_superchunk_id(&self) -> SuperchunkId {
        SuperchunkId(self.next_superchunk)
    }
}
