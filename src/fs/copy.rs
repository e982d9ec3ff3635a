//! Server-side copy (`copy_file_range(2)`): the destination's new chunk list is spliced from
//! the source's. Whole chunks of the copied range are shared by reference (their refcounts go
//! up when the new list is stored); only the chunks cut by the two ends of the range are read,
//! and their pieces are cut again together with the destination's bytes they now adjoin. So a
//! copy costs the metadata of the new list and at most a few chunks of new data, whatever its
//! size, and copying a file in several calls rebuilds its original chunks at the seams.

use super::content::{Content, Entry, HOLE, push_entry};
use super::error::{FsError, Result};
use super::file::FileState;
use super::{Fh, Inner, now_ns};
use crate::chunker::ChunkHash;
use crate::meta::Ino;
use std::sync::{Arc, MutexGuard};

/// The most one call copies: its count must fit the kernel's 32-bit reply, and callers loop
/// (as they must for any copy_file_range).
pub const MAX_COPY: u64 = (u32::MAX as u64) & !0xfff;

/// A piece of the destination's new content: an entry kept as it is, or bytes to cut again.
enum Piece {
    Keep(Entry),
    Bytes(Vec<u8>),
}

/// Where the copied bytes come from.
enum Source {
    /// The destination file itself.
    Same,
    /// Another live file, its state locked by the caller.
    File,
    /// A file of a read-only view of the past: fixed content.
    View(Arc<super::special::ViewFile>),
}

impl Inner {
    /// Copy `len` bytes at `off_in` of the file `fh_in` has open to `off_out` of the file
    /// `fh_out` has open for writing, as `copy_file_range(2)`. Returns the bytes copied: fewer
    /// than `len` at the source's end (0 at or past it), and at most `MAX_COPY`. Both files'
    /// uncommitted writes are committed first, so the copy sees them; the destination's new
    /// revision is committed by the copy itself.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_range(
        &self,
        ino_in: Ino,
        fh_in: Fh,
        off_in: u64,
        ino_out: Ino,
        fh_out: Fh,
        off_out: u64,
        len: u64,
    ) -> Result<u64> {
        let h_in = self.handle(fh_in)?;
        let h_out = self.handle(fh_out)?;
        super::special::refuse_change(ino_out)?;
        if h_in.ino != ino_in || h_out.ino != ino_out {
            return Err(FsError::BadHandle);
        }
        if h_in.dir || h_out.dir {
            return Err(FsError::IsDir);
        }
        if !h_out.write {
            return Err(FsError::BadHandle);
        }
        let len = len.min(MAX_COPY);
        for (off, n) in [(off_in, len), (off_out, len)] {
            off.checked_add(n)
                .filter(|e| *e <= i64::MAX as u64)
                .ok_or(if off == off_out {
                    FsError::TooBig
                } else {
                    FsError::Invalid
                })?;
        }
        self.check_writable()?;
        let source = if super::special::is_special(ino_in) {
            let view = self.view_files.lock().unwrap().get(&fh_in.0).cloned();
            Source::View(view.ok_or(FsError::Invalid)?)
        } else if ino_in == ino_out {
            Source::Same
        } else {
            Source::File
        };
        let f_out = self.state_for(ino_out, &h_out)?;
        let f_in = match source {
            Source::File => Some(self.state_for(ino_in, &h_in)?),
            _ => None,
        };
        // Two files' states are locked in inode order, so two copies in opposite directions
        // cannot each hold the lock the other waits for (the core lock always comes after).
        let (mut out, mut inp) = match &f_in {
            Some(f_in) if ino_in < ino_out => {
                let i = self.locked_state(f_in, &h_in)?;
                (self.locked_state(&f_out, &h_out)?, Some(i))
            }
            Some(f_in) => {
                let o = self.locked_state(&f_out, &h_out)?;
                (o, Some(self.locked_state(f_in, &h_in)?))
            }
            None => (self.locked_state(&f_out, &h_out)?, None),
        };
        // Within one file, the source's handle is checked as its own reads would check it.
        if matches!(source, Source::Same) {
            super::file::stale_check(&out, &h_in)?;
        }
        if let Some(st) = inp.as_mut() {
            self.commit_file(ino_in, st)?;
        }
        self.commit_file(ino_out, &mut out)?;
        let held: Arc<Content>;
        let (src, src_size): (&Content, u64) = match (&source, &inp) {
            (Source::View(v), _) => (v.content(), v.content().size()),
            (Source::File, Some(st)) => {
                held = st.base.clone();
                (&held, st.size)
            }
            _ => {
                held = out.base.clone();
                (&held, out.size)
            }
        };
        let copied = len.min(src_size.saturating_sub(off_in));
        if copied == 0 {
            return Ok(0);
        }
        // Overlapping ranges of one file, judged on what would be copied, as the kernel does.
        if ino_in == ino_out && off_in < off_out + copied && off_out < off_in + copied {
            return Err(FsError::Invalid);
        }
        let live_source = match source {
            Source::View(_) => None,
            _ => Some(ino_in),
        };
        self.splice(
            ino_out,
            &mut out,
            src,
            src_size,
            off_in,
            off_out,
            copied,
            live_source,
        )?;
        drop(inp);
        Ok(copied)
    }

    /// Replace [off_out, off_out + n) of the destination (its state `out`, committed) with
    /// [off_in, off_in + n) of `src` and commit the result as its new revision. `live_source`
    /// is the source's inode when it is a file (its state locked by the caller); otherwise the
    /// source is a view, which nothing holds in the store, and every shared chunk is checked
    /// to be stored still.
    #[allow(clippy::too_many_arguments)]
    fn splice(
        &self,
        ino_out: Ino,
        out: &mut MutexGuard<'_, FileState>,
        src: &Content,
        src_size: u64,
        off_in: u64,
        off_out: u64,
        n: u64,
        live_source: Option<Ino>,
    ) -> Result<()> {
        let dst = out.base.clone();
        let dst_size = out.size;
        let end_out = off_out + n;
        let new_size = dst_size.max(end_out);
        // An append re-cuts the destination's last chunk with the copied bytes after it, as a
        // commit does: it ended where the data ended, not at a content-defined boundary.
        let left = match dst.find(off_out) {
            Some(i) => dst.start(i),
            None if off_out == dst.size() && off_out > 0 => dst.start(dst.entries().len() - 1),
            None => off_out.min(dst_size),
        };
        // Past its end, up to the new size, the destination reads as a hole.
        let mut pieces = Vec::new();
        self.take(&dst, new_size, 0, left, false, &mut pieces)?;
        self.take(&dst, new_size, left, off_out, true, &mut pieces)?;
        self.take(src, src_size, off_in, off_in + n, false, &mut pieces)?;
        self.take(&dst, new_size, end_out, new_size, false, &mut pieces)?;

        // Adjacent byte pieces are cut as one: the seams of the copy get content-defined
        // boundaries, and the chunks they cut are found again when the same bytes meet.
        let mut buffers: Vec<Vec<u8>> = Vec::new();
        let mut order: Vec<Result<Entry, usize>> = Vec::new();
        for p in pieces {
            match p {
                Piece::Keep(e) => order.push(Ok(e)),
                Piece::Bytes(b) => match order.last() {
                    Some(Err(i)) => buffers[*i].extend_from_slice(&b),
                    _ => {
                        order.push(Err(buffers.len()));
                        buffers.push(b);
                    }
                },
            }
        }
        let mut entries = Vec::new();
        let mut fresh: Vec<(ChunkHash, &[u8])> = Vec::new();
        let mut shared: Vec<ChunkHash> = Vec::new();
        for o in order {
            match o {
                Ok(e) => {
                    if !e.is_hole() {
                        shared.push(e.hash);
                    }
                    push_entry(&mut entries, e);
                }
                Err(i) => self.cut_into(&buffers[i], &mut fresh, &mut entries),
            }
        }
        shared.sort_unstable();
        shared.dedup();
        // Ordering rule: the shared chunks are referenced by the source's current revision
        // (its state is locked, so no commit replaces it, and a revert since is marked until
        // the state is reloaded: then the copy is stale) or, for a view, checked here; they are
        // pinned, under the same core lock, from here until the new list references them: GC
        // never sweeps a pinned chunk. (`tests/attack_copy.rs` races copies with reverts.)
        {
            let mut core = self.lock_core();
            if let Some(ino) = live_source {
                core.check_not_reverted(ino)?;
            }
            for h in shared.iter().filter(|_| live_source.is_none()) {
                if !core.has_chunk(h)? {
                    return Err(FsError::Corrupt(format!(
                        "chunk {h} of the copied range is gone from the store"
                    )));
                }
            }
            core.pin(shared.iter().copied());
        }
        let now = now_ns();
        let r = self.commit_content(ino_out, fresh, entries, new_size, now, "copy");
        self.lock_core().unpin(&shared);
        out.base = Arc::new(r?);
        out.size = new_size;
        out.mtime = now;
        Ok(())
    }

    /// Append the pieces of `c` (a file of `size` bytes; past the content's end it reads as a
    /// hole) for [from, to): whole entries kept, entries cut by an end of the range read as
    /// bytes (holes stay holes), and with `bytes`, every data entry read as bytes.
    fn take(
        &self,
        c: &Content,
        size: u64,
        from: u64,
        to: u64,
        bytes: bool,
        out: &mut Vec<Piece>,
    ) -> Result<()> {
        let to = to.min(size);
        if from >= to {
            return Ok(());
        }
        let data_to = to.min(c.size());
        if from < data_to {
            let mut i = c.find(from).expect("inside the content");
            while i < c.entries().len() && c.start(i) < data_to {
                let e = c.entries()[i];
                let (s, end) = (c.start(i), c.end(i));
                let (a, b) = (s.max(from), end.min(data_to));
                if e.is_hole() {
                    out.push(Piece::Keep(Entry {
                        hash: HOLE,
                        len: b - a,
                    }));
                } else if a == s && b == end && !bytes {
                    out.push(Piece::Keep(e));
                } else {
                    let mut buf = vec![0u8; (b - a) as usize];
                    self.read_content(c, a, &mut buf)?;
                    out.push(Piece::Bytes(buf));
                }
                i += 1;
            }
        }
        let hole_from = from.max(c.size());
        if hole_from < to {
            out.push(Piece::Keep(Entry {
                hash: HOLE,
                len: to - hole_from,
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::open::{FsOptions, MkfsOptions, mkfs_on};
    use super::super::{Fs, FsError};
    use crate::meta::Ino;
    use crate::store::device::FaultyDevice;
    use std::path::Path;
    use std::sync::Arc;

    /// The ordering rule a revert sets (`Core::mark_reverted`): between its operation and the
    /// reload of an open file's state (which waits for that state's lock), a commit or copy
    /// of the file answers ESTALE rather than build on the content the revert replaced. The
    /// window cannot be held open from outside, so the mark is set here as the revert sets it.
    #[test]
    fn a_commit_or_copy_of_a_file_a_revert_changed_is_stale_until_its_state_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let dev = FaultyDevice::new();
        let meta = dir.path().join("meta.db");
        let mkfs = MkfsOptions {
            chunk_avg: 1024,
            ..MkfsOptions::default()
        };
        mkfs_on(&meta, &dev, Path::new("mem"), 16 << 20, &mkfs).unwrap();
        let fs = Fs::open_with(&meta, Arc::new(dev.clone()), FsOptions::default()).unwrap();
        let open = |name: &str| {
            let (a, h) = fs
                .create(Ino::ROOT, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
                .unwrap();
            (a.ino, h.fh)
        };
        let (a, b) = (open("a"), open("b"));
        fs.write(a.0, a.1, 0, &[1u8; 10_000]).unwrap();
        fs.fsync(a.0, a.1, false).unwrap();
        // The source changed by a revert: the copy is stale.
        fs.lock_core().mark_reverted([a.0]);
        let copied = fs.copy_range(a.0, a.1, 0, b.0, b.1, 0, 5000);
        assert!(matches!(copied, Err(FsError::Stale)), "{copied:?}");
        fs.lock_core().clear_reverted(a.0);
        // The destination: its pending writes cannot commit, nor can a copy into it.
        fs.write(b.0, b.1, 0, &[2u8; 100]).unwrap();
        fs.lock_core().mark_reverted([b.0]);
        let synced = fs.fsync(b.0, b.1, false);
        assert!(matches!(synced, Err(FsError::Stale)), "{synced:?}");
        let copied = fs.copy_range(a.0, a.1, 0, b.0, b.1, 200, 5000);
        assert!(matches!(copied, Err(FsError::Stale)), "{copied:?}");
        fs.lock_core().clear_reverted(b.0);
        // Reloaded (here: never changed), both go through.
        assert_eq!(
            fs.copy_range(a.0, a.1, 0, b.0, b.1, 200, 5000).unwrap(),
            5000
        );
        let mut want = vec![2u8; 100];
        want.extend_from_slice(&[0u8; 100]);
        want.extend_from_slice(&[1u8; 5000]);
        assert!(fs.read(b.0, b.1, 0, 6000).unwrap() == want);
        fs.release(a.0, a.1).unwrap();
        fs.release(b.0, b.1).unwrap();
    }
}
