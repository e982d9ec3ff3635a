//! Where a file's data and holes are, known without reading a byte of it: `lseek` with
//! `SEEK_DATA` / `SEEK_HOLE`, and `st_blocks` (the size of the data alone).
//!
//! Both answer from the file as it is now: its committed chunk list (hole entries are holes;
//! chunks of zeros became hole entries when they were committed), minus the committed ranges
//! zeroed since (truncate, punch hole, `O_TRUNC`), plus the bytes written since, which count
//! as data whatever they hold. Only the file's own list is walked: from memory for a file
//! with in-memory state, else from its list nodes, whose data sizes are remembered by hash
//! (a node's hash names its body, so a remembered size is never stale).

use super::content::Content;
use super::error::{FsError, Result};
use super::file::FileState;
use super::overlay::Overlay;
use super::types::{Attr, FileKind};
use super::{Fh, Inner};
use crate::chunker::ChunkHash;
use crate::meta::Ino;
use crate::meta::lists::{self, HOLE};
use crate::meta::namespace::Revision;
use rusqlite::Connection;
use std::sync::Mutex;

/// List nodes whose data size is remembered: enough for the trees of several 10 GiB files
/// (about 2,600 nodes each), at about 100 bytes a node.
const LIST_DATA_NODES: usize = 1 << 15;

/// The data size of list nodes, by hash.
pub struct ListData(Mutex<lru::LruCache<ChunkHash, u64>>);

impl Default for ListData {
    fn default() -> ListData {
        let cap = std::num::NonZeroUsize::new(LIST_DATA_NODES).unwrap();
        ListData(Mutex::new(lru::LruCache::new(cap)))
    }
}

/// A file's data and holes as of now.
struct Layout<'a> {
    base: &'a Content,
    /// Committed ranges that read as zeros, sorted and disjoint.
    zeroed: &'a [(u64, u64)],
    written: Option<&'a Overlay>,
    size: u64,
}

impl<'a> Layout<'a> {
    fn of_state(st: &'a FileState) -> Layout<'a> {
        Layout {
            base: &st.base,
            zeroed: st.zeroed.ranges(),
            written: Some(&st.overlay),
            size: st.size,
        }
    }

    fn of_content(c: &'a Content) -> Layout<'a> {
        Layout {
            base: c,
            zeroed: &[],
            written: None,
            size: c.size(),
        }
    }

    /// The first zeroed range that ends after `p` (it may hold `p` or start later).
    fn zeroed_from(&self, p: u64) -> Option<(u64, u64)> {
        let i = self.zeroed.partition_point(|&(_, e)| e <= p);
        self.zeroed.get(i).copied()
    }

    fn written_from(&self, p: u64) -> Option<(u64, u64)> {
        self.written.and_then(|o| o.range_from(p))
    }

    /// The first committed data byte in [p, to) that is not zeroed. Each step passes a hole
    /// entry or a zeroed range, so the walk follows the file's holes, not its size.
    fn committed_data(&self, mut p: u64, to: u64) -> Option<u64> {
        let to = to.min(self.base.size());
        while p < to {
            if let Some((s, e)) = self.zeroed_from(p)
                && s <= p
            {
                p = e;
                continue;
            }
            let i = self.base.find(p)?;
            if !self.base.entries()[i].is_hole() {
                return Some(p);
            }
            p = self.base.end(i);
        }
        None
    }

    /// The first data byte at or after `p`, if there is one before the end.
    fn next_data(&self, p: u64) -> Option<u64> {
        let written = self.written_from(p).map(|(s, _)| s.max(p));
        let to = written.unwrap_or(self.size).min(self.size);
        self.committed_data(p, to)
            .or(written)
            .filter(|&d| d < self.size)
    }

    /// The first byte at or after `p` that is in a hole; the end of the file if none is
    /// (every file ends in a hole, as lseek(2) says).
    fn next_hole(&self, mut p: u64) -> u64 {
        loop {
            if p >= self.size {
                return self.size;
            }
            if let Some((s, e)) = self.written_from(p)
                && s <= p
            {
                p = e;
                continue;
            }
            if p >= self.base.size() {
                return p;
            }
            let next_zeroed = match self.zeroed_from(p) {
                Some((s, _)) if s <= p => return p,
                Some((s, _)) => s,
                None => u64::MAX,
            };
            let Some(i) = self.base.find(p) else {
                return p;
            };
            if self.base.entries()[i].is_hole() {
                return p;
            }
            p = self.base.end(i).min(next_zeroed);
        }
    }

    /// Bytes of data in the file.
    fn data_bytes(&self) -> u64 {
        let mut total = 0;
        let mut p = 0;
        while let Some(d) = self.next_data(p) {
            let h = self.next_hole(d);
            total += h - d;
            p = h;
        }
        total
    }

    /// `lseek` in this layout.
    fn seek(&self, off: u64, whence: Whence) -> Result<u64> {
        if off >= self.size {
            return Err(FsError::NoSuchOffset);
        }
        match whence {
            Whence::Data => self.next_data(off).ok_or(FsError::NoSuchOffset),
            Whence::Hole => Ok(self.next_hole(off)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Whence {
    Data,
    Hole,
}

/// 512-byte blocks holding `bytes`.
fn blocks(bytes: u64) -> u64 {
    bytes.div_ceil(512)
}

/// The `st_blocks` of a file with uncommitted changes: its data as of now.
pub(super) fn blocks_now(st: &FileState) -> u64 {
    blocks(Layout::of_state(st).data_bytes())
}

impl Inner {
    /// `lseek(2)` with `SEEK_DATA` (the first data offset at or after `offset`) or `SEEK_HOLE`
    /// (the first hole offset at or after it, the end of the file counting as one), on the
    /// file `fh` has open, as it is now. ENXIO at or past the end, or for `SEEK_DATA` when
    /// only holes follow; EINVAL for a negative offset or another `whence` (the kernel handles
    /// `SEEK_SET`, `SEEK_CUR` and `SEEK_END` itself). A directory reads as all data up to its
    /// size, as the kernel's generic lseek treats a file without holes; the conduit as an
    /// empty file.
    pub fn lseek(&self, ino: Ino, fh: Fh, offset: i64, whence: i32) -> Result<u64> {
        let h = self.handle(fh)?;
        let whence = match whence {
            libc::SEEK_DATA => Whence::Data,
            libc::SEEK_HOLE => Whence::Hole,
            _ => return Err(FsError::Invalid),
        };
        let off = u64::try_from(offset).map_err(|_| FsError::Invalid)?;
        if h.ino != ino {
            return Err(FsError::BadHandle);
        }
        if h.dir {
            let size = self.getattr(ino)?.size;
            if off >= size {
                return Err(FsError::NoSuchOffset);
            }
            return Ok(if whence == Whence::Data { off } else { size });
        }
        if super::special::is_special(ino) {
            // A file of a view of the past: its content, fixed when it was opened.
            let view = self.view_files.lock().unwrap().get(&fh.0).cloned();
            return match view {
                Some(v) => Layout::of_content(v.content()).seek(off, whence),
                None => Err(FsError::NoSuchOffset),
            };
        }
        let f = self.state_for(ino, &h)?;
        let st = self.locked_state(&f, &h)?;
        Layout::of_state(&st).seek(off, whence)
    }

    /// The attributes of a committed revision, `st_blocks` counting its data alone. The core
    /// is locked only when the data size of its list is not remembered: callers hold no lock
    /// but at most the file's state (lock order: file state, then core).
    pub(super) fn attr_committed(&self, rev: &Revision) -> Attr {
        let mut a = super::ops::attr_from(rev, rev.size, rev.mtime);
        a.blocks = match self.remembered_blocks(rev) {
            Some(b) => b,
            None => self.blocks_committed(&self.lock_core().conn, rev),
        };
        a
    }

    /// `blocks_committed` if it needs no list read.
    fn remembered_blocks(&self, rev: &Revision) -> Option<u64> {
        if rev.kind != FileKind::File {
            return Some(blocks(rev.size));
        }
        let Some(root) = rev.list else {
            return Some(0);
        };
        let known = self.list_data.0.lock().unwrap().get(&root).copied();
        known.map(blocks)
    }

    /// Remember the data size of a list just committed, whose entries are `content`, so that
    /// the attributes asked for after a commit need not read it back.
    pub(super) fn remember_list_data(&self, root: Option<ChunkHash>, content: &Content) {
        if let Some(root) = root {
            let bytes = content
                .entries()
                .iter()
                .filter(|e| !e.is_hole())
                .map(|e| e.len);
            self.list_data.0.lock().unwrap().put(root, bytes.sum());
        }
    }

    /// The `st_blocks` of a committed revision: its data bytes for a regular file (the
    /// apparent size for anything else, and if its list cannot be read).
    pub(super) fn blocks_committed(&self, conn: &Connection, rev: &Revision) -> u64 {
        if rev.kind != FileKind::File {
            return blocks(rev.size);
        }
        let Some(root) = rev.list else {
            return 0;
        };
        match self.list_data(conn, &root) {
            Ok(bytes) => blocks(bytes),
            Err(e) => {
                log::debug!("chunkfs: st_blocks of inode {} unknown: {e}", rev.ino.0);
                blocks(rev.size)
            }
        }
    }

    /// The data bytes under a list node: remembered, or summed over its children.
    fn list_data(&self, conn: &Connection, hash: &ChunkHash) -> Result<u64> {
        if let Some(b) = self.list_data.0.lock().unwrap().get(hash) {
            return Ok(*b);
        }
        let node = lists::get(conn, hash)?
            .ok_or_else(|| FsError::Corrupt(format!("missing chunk list {hash}")))?;
        let mut total = 0;
        for (child, len) in lists::decode(&node.body)? {
            total += match (node.depth, child) {
                (0, HOLE) => 0,
                (0, _) => len,
                _ => self.list_data(conn, &child)?,
            };
        }
        self.list_data.0.lock().unwrap().put(*hash, total);
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::super::content::Entry;
    use super::super::open::{FsOptions, MkfsOptions, mkfs_on};
    use super::super::overlay::Zeroed;
    use super::super::{Caller, Fs, SetAttr};
    use super::*;
    use crate::store::device::{Device, FaultyDevice};
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    /// The test store's largest chunk: a hole (or data) found at commit may be off by this
    /// much from the bytes written, since holes are whole chunks.
    const SLACK: u64 = 4 * KIB;

    struct Env {
        _dir: tempfile::TempDir,
        dev: FaultyDevice,
        fs: Fs,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let dev = FaultyDevice::new();
        let mkfs = MkfsOptions {
            chunk_avg: 1024,
            superchunk_target: 16 * 1024,
            ..MkfsOptions::default()
        };
        let meta = dir.path().join("meta.db");
        mkfs_on(&meta, &dev, Path::new("mem"), 64 << 20, &mkfs).unwrap();
        let fs = open(&meta, &dev);
        Env { _dir: dir, dev, fs }
    }

    fn open(meta: &Path, dev: &FaultyDevice) -> Fs {
        let opts = FsOptions {
            commit_interval: Duration::from_secs(3600),
            background_gc: false,
            ..FsOptions::default()
        };
        let handle: Arc<dyn Device> = Arc::new(dev.clone());
        Fs::open_with(meta, handle, opts).unwrap()
    }

    fn random(seed: u64, n: u64) -> Vec<u8> {
        crate::testdata::random_bytes(seed, n as usize)
    }

    fn create(fs: &Fs, name: &str) -> (Ino, Fh) {
        let (a, o) = fs
            .create(Ino::ROOT, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
            .unwrap();
        (a.ino, o.fh)
    }

    fn truncate(fs: &Fs, ino: Ino, size: u64) {
        let set = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        fs.setattr(ino, &set).unwrap();
    }

    fn data(fs: &Fs, ino: Ino, fh: Fh, off: u64) -> std::result::Result<u64, i32> {
        fs.lseek(ino, fh, off as i64, libc::SEEK_DATA)
            .map_err(|e| e.errno())
    }

    fn hole(fs: &Fs, ino: Ino, fh: Fh, off: u64) -> std::result::Result<u64, i32> {
        fs.lseek(ino, fh, off as i64, libc::SEEK_HOLE)
            .map_err(|e| e.errno())
    }

    /// The data runs a SEEK_DATA / SEEK_HOLE walk reports, as a copying tool would walk them.
    fn runs(fs: &Fs, ino: Ino, fh: Fh) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut p = 0;
        while let Ok(d) = data(fs, ino, fh, p) {
            let h = hole(fs, ino, fh, d).unwrap();
            assert!(h > d, "a data run at {d} ends at {h}");
            out.push((d, h));
            p = h;
        }
        out
    }

    /// Everything outside the reported runs reads as zeros: a copy that skips the holes
    /// loses nothing.
    fn assert_holes_read_zero(fs: &Fs, ino: Ino, fh: Fh, runs: &[(u64, u64)]) {
        let size = fs.getattr(ino).unwrap().size;
        let bytes = fs.read(ino, fh, 0, size as u32).unwrap();
        let mut p = 0;
        for &(d, h) in runs.iter().chain([&(size, size)]) {
            assert!(
                bytes[p as usize..d as usize].iter().all(|&b| b == 0),
                "a byte of [{p}, {d}) reported as a hole is not zero"
            );
            p = h;
        }
    }

    fn near(got: u64, want: u64) -> bool {
        got.abs_diff(want) <= SLACK
    }

    #[test]
    fn a_file_of_only_a_hole_has_no_data_and_no_blocks() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        truncate(&e.fs, ino, 5 * MIB);
        assert_eq!(data(&e.fs, ino, fh, 0), Err(libc::ENXIO));
        assert_eq!(hole(&e.fs, ino, fh, 0), Ok(0));
        assert_eq!(hole(&e.fs, ino, fh, 5 * MIB - 1), Ok(5 * MIB - 1));
        assert_eq!(hole(&e.fs, ino, fh, 5 * MIB), Err(libc::ENXIO));
        assert_eq!(e.fs.getattr(ino).unwrap().blocks, 0);
        e.fs.release(ino, fh).unwrap();
        assert_eq!(e.fs.getattr(ino).unwrap().blocks, 0);
    }

    #[test]
    fn an_empty_file_has_neither_data_nor_hole() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        assert_eq!(data(&e.fs, ino, fh, 0), Err(libc::ENXIO));
        assert_eq!(hole(&e.fs, ino, fh, 0), Err(libc::ENXIO));
    }

    #[test]
    fn holes_at_the_start_and_the_end_surround_committed_data() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        truncate(&e.fs, ino, 3 * MIB);
        e.fs.write(ino, fh, MIB, &random(1, 64 * KIB)).unwrap();
        e.fs.release(ino, fh).unwrap();
        let fh = e.fs.open(ino, libc::O_RDONLY).unwrap().fh;
        let r = runs(&e.fs, ino, fh);
        assert_eq!(r.len(), 1, "one data run: {r:?}");
        let (d, h) = r[0];
        assert!(d <= MIB && near(d, MIB), "data starts at {d}");
        assert!(
            h >= MIB + 64 * KIB && near(h, MIB + 64 * KIB),
            "data ends at {h}"
        );
        assert_eq!(hole(&e.fs, ino, fh, 0), Ok(0));
        assert_eq!(data(&e.fs, ino, fh, h), Err(libc::ENXIO));
        assert_eq!(hole(&e.fs, ino, fh, 3 * MIB - 1), Ok(3 * MIB - 1));
        assert_holes_read_zero(&e.fs, ino, fh, &r);
        assert_eq!(e.fs.getattr(ino).unwrap().blocks, (h - d).div_ceil(512));
    }

    #[test]
    fn uncommitted_writes_are_data_exactly_where_written_even_zeros() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        truncate(&e.fs, ino, 4 * MIB);
        let fh2 = e.fs.open(ino, libc::O_RDWR).unwrap().fh;
        e.fs.release(ino, fh).unwrap();
        let fh = fh2;
        e.fs.write(ino, fh, 2 * MIB, &random(2, 10_000)).unwrap();
        e.fs.write(ino, fh, 0, &[0; 8192]).unwrap();
        // Not committed: the written ranges are the data, byte for byte.
        assert_eq!(
            runs(&e.fs, ino, fh),
            vec![(0, 8192), (2 * MIB, 2 * MIB + 10_000)]
        );
        assert_eq!(
            e.fs.getattr(ino).unwrap().blocks,
            (8192 + 10_000u64).div_ceil(512)
        );
        // Committed, the zeros are a hole like any other.
        e.fs.fsync(ino, fh, false).unwrap();
        let r = runs(&e.fs, ino, fh);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            near(r[0].0, 2 * MIB) && near(r[0].1, 2 * MIB + 10_000),
            "{r:?}"
        );
        assert_holes_read_zero(&e.fs, ino, fh, &r);
        assert!(e.fs.getattr(ino).unwrap().blocks <= (10_000 + 2 * SLACK) / 512);
    }

    #[test]
    fn a_write_into_a_committed_hole_is_data_exactly_where_written() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        // 1 TiB: re-cutting the hole around the write would have to hold it in memory.
        let size = 1 << 40;
        truncate(&e.fs, ino, size);
        let at = size / 2 + 777;
        e.fs.write(ino, fh, at, &random(10, 100)).unwrap();
        e.fs.fsync(ino, fh, false).unwrap();
        assert_eq!(runs(&e.fs, ino, fh), vec![(at, at + 100)]);
        // An append to a file ending in a hole too.
        e.fs.write(ino, fh, size, &random(11, 100)).unwrap();
        e.fs.fsync(ino, fh, false).unwrap();
        assert_eq!(
            runs(&e.fs, ino, fh),
            vec![(at, at + 100), (size, size + 100)]
        );
        let got = e.fs.read(ino, fh, at - 10, 120).unwrap();
        assert_eq!(&got[..10], &[0; 10]);
        assert_eq!(&got[10..110], &random(10, 100)[..]);
        assert_eq!(&got[110..], &[0; 10]);
        e.fs.release(ino, fh).unwrap();
        assert_eq!(e.fs.check_refcounts().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_punched_hole_is_a_hole_and_the_rest_stays_data() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        e.fs.write(ino, fh, 0, &random(3, 512 * KIB)).unwrap();
        e.fs.fsync(ino, fh, false).unwrap();
        assert_eq!(runs(&e.fs, ino, fh), vec![(0, 512 * KIB)]);
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        e.fs.fallocate(ino, fh, 100 * KIB, 300 * KIB, punch)
            .unwrap();
        let r = runs(&e.fs, ino, fh);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].0, 0);
        assert!(r[0].1 >= 100 * KIB && near(r[0].1, 100 * KIB), "{r:?}");
        assert!(r[1].0 <= 400 * KIB && near(r[1].0, 400 * KIB), "{r:?}");
        assert_eq!(r[1].1, 512 * KIB);
        assert_holes_read_zero(&e.fs, ino, fh, &r);
    }

    #[test]
    fn truncating_down_and_extending_leaves_a_hole_from_the_cut() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        e.fs.write(ino, fh, 0, &random(4, 64 * KIB)).unwrap();
        e.fs.fsync(ino, fh, false).unwrap();
        truncate(&e.fs, ino, MIB);
        assert_eq!(runs(&e.fs, ino, fh), vec![(0, 64 * KIB)]);
        truncate(&e.fs, ino, 10_000);
        truncate(&e.fs, ino, 2 * MIB);
        assert_eq!(runs(&e.fs, ino, fh), vec![(0, 10_000)]);
        assert_eq!(hole(&e.fs, ino, fh, 0), Ok(10_000));
        assert_eq!(data(&e.fs, ino, fh, 10_000), Err(libc::ENXIO));
        assert_eq!(e.fs.getattr(ino).unwrap().blocks, 10_000u64.div_ceil(512));
    }

    #[test]
    fn an_o_trunc_open_zeroes_the_committed_data_until_written_again() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        e.fs.write(ino, fh, 0, &random(5, 256 * KIB)).unwrap();
        e.fs.release(ino, fh).unwrap();
        let fh = e.fs.open(ino, libc::O_RDWR | libc::O_TRUNC).unwrap().fh;
        assert_eq!(data(&e.fs, ino, fh, 0), Err(libc::ENXIO));
        e.fs.write(ino, fh, 300 * KIB, b"after the cut").unwrap();
        // The old chunks are still the committed list, zeroed: none of them is data.
        assert_eq!(runs(&e.fs, ino, fh), vec![(300 * KIB, 300 * KIB + 13)]);
        assert_eq!(hole(&e.fs, ino, fh, 0), Ok(0));
        assert_eq!(e.fs.getattr(ino).unwrap().blocks, 1);
    }

    #[test]
    fn views_of_the_past_and_clones_answer_from_their_own_content() {
        let e = env();
        let fs = &e.fs;
        let (ino, fh) = create(fs, "f");
        truncate(fs, ino, 2 * MIB);
        fs.write(ino, fh, MIB, &random(6, 32 * KIB)).unwrap();
        fs.release(ino, fh).unwrap();
        fs.sync_all().unwrap();
        let then = fs.current_seq();
        let root = Caller::root();
        fs.clone_path(&root, "/f", "/g").unwrap();
        // The file is then filled: no holes left.
        let fh = fs.open(ino, libc::O_RDWR).unwrap().fh;
        fs.write(ino, fh, 0, &random(7, 2 * MIB)).unwrap();
        fs.release(ino, fh).unwrap();
        fs.sync_all().unwrap();
        let fh = fs.open(ino, libc::O_RDONLY).unwrap().fh;
        assert_eq!(runs(fs, ino, fh), vec![(0, 2 * MIB)]);
        assert_eq!(fs.getattr(ino).unwrap().blocks, 2 * MIB / 512);

        let old_runs = |ino: Ino, fh: Fh| {
            let r = runs(fs, ino, fh);
            assert_eq!(r.len(), 1, "{r:?}");
            assert!(near(r[0].0, MIB) && near(r[0].1, MIB + 32 * KIB), "{r:?}");
            assert_holes_read_zero(fs, ino, fh, &r);
            assert!(fs.getattr(ino).unwrap().blocks <= (32 * KIB + 2 * SLACK) / 512);
        };
        let clone = fs.lookup(Ino::ROOT, b"g").unwrap().ino;
        old_runs(clone, fs.open(clone, libc::O_RDONLY).unwrap().fh);
        let ctl = fs
            .lookup(Ino::ROOT, super::super::CONTROL_NAME)
            .unwrap()
            .ino;
        let at = fs.lookup(ctl, b"at").unwrap().ino;
        let view = fs.lookup(at, then.0.to_string().as_bytes()).unwrap().ino;
        let old = fs.lookup(view, b"f").unwrap().ino;
        old_runs(old, fs.open(old, libc::O_RDONLY).unwrap().fh);
    }

    #[test]
    fn seeking_reads_no_chunk_from_the_device() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        truncate(&e.fs, ino, 8 * MIB);
        for i in 0..8 {
            e.fs.write(ino, fh, i * MIB + 4096, &random(8 + i, 20 * KIB))
                .unwrap();
        }
        e.fs.release(ino, fh).unwrap();
        let meta = e._dir.path().join("meta.db");
        let Env { _dir, dev, fs } = e;
        drop(fs);
        // A fresh mount: nothing cached.
        let fs = open(&meta, &dev);
        let reads = dev.reads();
        let fh = fs.open(ino, libc::O_RDONLY).unwrap().fh;
        assert_eq!(runs(&fs, ino, fh).len(), 8);
        assert!(fs.getattr(ino).unwrap().blocks < 8 * (20 * KIB + 2 * SLACK) / 512);
        assert_eq!(dev.reads(), reads, "the device was read");
    }

    #[test]
    fn offsets_past_the_end_negative_offsets_and_other_whences_are_refused() {
        let e = env();
        let (ino, fh) = create(&e.fs, "f");
        e.fs.write(ino, fh, 0, b"some bytes").unwrap();
        assert_eq!(data(&e.fs, ino, fh, 10), Err(libc::ENXIO));
        assert_eq!(hole(&e.fs, ino, fh, 10), Err(libc::ENXIO));
        assert_eq!(data(&e.fs, ino, fh, 9), Ok(9));
        assert_eq!(hole(&e.fs, ino, fh, 3), Ok(10));
        for (off, whence) in [(-1, libc::SEEK_DATA), (-1, libc::SEEK_HOLE)] {
            let r = e.fs.lseek(ino, fh, off, whence);
            assert_eq!(r.map_err(|e| e.errno()), Err(libc::EINVAL));
        }
        for whence in [libc::SEEK_SET, libc::SEEK_CUR, libc::SEEK_END, 5] {
            let r = e.fs.lseek(ino, fh, 0, whence);
            assert_eq!(r.map_err(|e| e.errno()), Err(libc::EINVAL));
        }
        // A directory reads as data up to its size, as on ext4.
        let dir = e.fs.opendir(Ino::ROOT).unwrap();
        let size = e.fs.getattr(Ino::ROOT).unwrap().size;
        if size > 0 {
            assert_eq!(data(&e.fs, Ino::ROOT, dir, 0), Ok(0));
            assert_eq!(hole(&e.fs, Ino::ROOT, dir, 0), Ok(size));
        }
        assert_eq!(data(&e.fs, Ino::ROOT, dir, size), Err(libc::ENXIO));
        // Another file's handle.
        let (other, _) = create(&e.fs, "g");
        assert_eq!(data(&e.fs, other, fh, 0), Err(libc::EBADF));
    }

    #[test]
    fn a_layout_with_zeroed_ranges_and_writes_over_committed_chunks() {
        let chunk = |len| Entry {
            hash: ChunkHash::of(&[len as u8]),
            len,
        };
        let gap = |len| Entry { hash: HOLE, len };
        // [0,100) data, [100,200) hole, [200,300) data, [300,400) data
        let base = Content::new(vec![chunk(100), gap(100), chunk(100), chunk(100)]);
        let mut zeroed = Zeroed::default();
        zeroed.add(50, 120);
        zeroed.add(250, 320);
        let mut written = Overlay::default();
        written.write(150, &[0; 10]);
        written.write(310, &[1; 5]);
        let l = Layout {
            base: &base,
            zeroed: zeroed.ranges(),
            written: Some(&written),
            size: 500,
        };
        // data: [0,50) [150,160) [200,250) [310,315) [320,400); holes elsewhere, to 500.
        let want = [(0, 50), (150, 160), (200, 250), (310, 315), (320, 400)];
        let mut got = Vec::new();
        let mut p = 0;
        while let Some(d) = l.next_data(p) {
            let h = l.next_hole(d);
            got.push((d, h));
            p = h;
        }
        assert_eq!(got, want);
        assert_eq!(l.data_bytes(), 50 + 10 + 50 + 5 + 80);
        assert_eq!(l.seek(60, Whence::Data).unwrap(), 150);
        assert_eq!(l.seek(60, Whence::Hole).unwrap(), 60);
        assert_eq!(l.seek(399, Whence::Hole).unwrap(), 400);
        assert!(matches!(
            l.seek(400, Whence::Data),
            Err(FsError::NoSuchOffset)
        ));
        assert_eq!(l.seek(450, Whence::Hole).unwrap(), 450);
    }
}
