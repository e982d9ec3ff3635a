//! The core API's content operations without a mount: read, write, handles, truncate, sparse
//! files, fallocate, deduplication and what survives a reopen. Tiny chunk (1 KiB average),
//! superchunk (16 KiB) and cache (32 KiB) sizes make sealing, trees and eviction run.
//! Every test ends with `Env`'s drop check (consistency, and the tree unchanged by a reopen).

mod common;
mod support;

use chunkfs::fs::{Fs, Ino, SetAttr};
use common::*;
use support::*;

const KEEP: i32 = libc::FALLOC_FL_KEEP_SIZE;
const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE;
const ZERO: i32 = libc::FALLOC_FL_ZERO_RANGE;

fn read_all(fs: &Fs, ino: Ino, fh: chunkfs::fs::Fh) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size;
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let part = fs.read(ino, fh, out.len() as u64, 64 * 1024).unwrap();
        assert!(!part.is_empty(), "short read at {}", out.len());
        out.extend_from_slice(&part);
    }
    assert!(fs.read(ino, fh, size, 100).unwrap().is_empty());
    out
}

fn truncate(fs: &Fs, ino: Ino, size: u64) {
    let a = fs
        .setattr(
            ino,
            &SetAttr {
                size: Some(size),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(a.size, size);
}

/// Apply a write to a reference buffer.
fn model_write(m: &mut Vec<u8>, off: usize, data: &[u8]) {
    if m.len() < off + data.len() {
        m.resize(off + data.len(), 0);
    }
    m[off..off + data.len()].copy_from_slice(data);
}

#[test]
fn writes_are_visible_through_a_second_handle_before_any_commit() {
    let fs = Env::new();
    let (ino, w) = create(&fs, "f");
    let r = fs.open(ino, libc::O_RDONLY).unwrap().fh;
    fs.write(ino, w, 0, b"hello").unwrap();
    fs.write(ino, w, 10, b"world").unwrap();
    assert_eq!(fs.read(ino, r, 0, 100).unwrap(), b"hello\0\0\0\0\0world");
    assert_eq!(fs.getattr(ino).unwrap().size, 15);
    // Nothing has been committed: the seq did not move for the content.
    let w2 = fs.open(ino, libc::O_WRONLY).unwrap().fh;
    fs.write(ino, w2, 3, b"P").unwrap();
    assert_eq!(fs.read(ino, r, 0, 5).unwrap(), b"helPo");
    assert_eq!(fs.read(ino, r, 12, 100).unwrap(), b"rld");
    assert!(fs.read(ino, r, 15, 100).unwrap().is_empty());
    assert!(fs.read(ino, r, 1000, 100).unwrap().is_empty());
    for h in [w, r, w2] {
        fs.release(ino, h).unwrap();
    }
    assert_eq!(read_file(&fs, ino), b"helPo\0\0\0\0\0world");
}

#[test]
fn handles_are_checked_for_their_file_and_access_mode() {
    let fs = Env::new();
    let (a, wa) = create(&fs, "a");
    let (b, wb) = create(&fs, "b");
    let ro = fs.open(a, libc::O_RDONLY).unwrap().fh;
    assert_eq!(errno(fs.write(a, ro, 0, b"x")), libc::EBADF);
    assert_eq!(errno(fs.write(b, wa, 0, b"x")), libc::EBADF);
    assert_eq!(errno(fs.read(a, wb, 0, 1)), libc::EBADF);
    assert_eq!(errno(fs.fallocate(a, ro, 0, 10, 0)), libc::EBADF);
    fs.release(a, ro).unwrap();
    assert_eq!(errno(fs.release(a, ro)), libc::EBADF);
    assert_eq!(errno(fs.read(a, ro, 0, 1)), libc::EBADF);
    assert_eq!(errno(fs.write(a, wa, i64::MAX as u64, b"x")), libc::EFBIG);
    fs.release(a, wa).unwrap();
    fs.release(b, wb).unwrap();
    assert_eq!(fs.getattr(a).unwrap().size, 0);
}

#[test]
fn open_with_o_trunc_empties_the_file() {
    let fs = Env::new();
    let ino = write_file(&fs, Ino::ROOT, "f", &random_bytes(1, 20_000));
    let h = fs.open(ino, libc::O_RDWR | libc::O_TRUNC).unwrap().fh;
    assert_eq!(fs.getattr(ino).unwrap().size, 0);
    fs.write(ino, h, 5, b"x").unwrap();
    fs.release(ino, h).unwrap();
    assert_eq!(read_file(&fs, ino), b"\0\0\0\0\0x");
    // O_TRUNC on a read-only open truncates nothing.
    let h = fs.open(ino, libc::O_RDONLY | libc::O_TRUNC).unwrap().fh;
    fs.release(ino, h).unwrap();
    assert_eq!(fs.getattr(ino).unwrap().size, 6);
}

#[test]
fn truncate_down_then_up_reads_zeros_in_the_extension() {
    let fs = Env::new();
    let data = random_bytes(2, 50_000);
    let ino = write_file(&fs, Ino::ROOT, "f", &data);
    truncate(&fs, ino, 12_345);
    assert_eq!(read_file(&fs, ino), &data[..12_345]);
    truncate(&fs, ino, 40_000);
    let mut want = data[..12_345].to_vec();
    want.resize(40_000, 0);
    assert_eq!(read_file(&fs, ino), want);
    truncate(&fs, ino, 0);
    assert!(read_file(&fs, ino).is_empty());
    truncate(&fs, ino, 3);
    assert_eq!(read_file(&fs, ino), [0, 0, 0]);
}

#[test]
fn truncate_with_pending_writes_cuts_them_and_later_writes_leave_a_hole() {
    let fs = Env::new();
    let data = random_bytes(3, 30_000);
    let ino = write_file(&fs, Ino::ROOT, "f", &data);
    let h = fs.open(ino, libc::O_RDWR).unwrap().fh;
    let mut m = data.clone();
    let extra = random_bytes(4, 10_000);
    fs.write(ino, h, 25_000, &extra).unwrap();
    model_write(&mut m, 25_000, &extra);
    truncate(&fs, ino, 27_000);
    m.truncate(27_000);
    assert_eq!(read_all(&fs, ino, h), m);
    fs.write(ino, h, 31_000, b"tail").unwrap();
    model_write(&mut m, 31_000, b"tail");
    assert_eq!(read_all(&fs, ino, h), m);
    fs.fsync(ino, h, false).unwrap();
    assert_eq!(read_all(&fs, ino, h), m);
    fs.release(ino, h).unwrap();
    assert_eq!(read_file(&fs, ino), m);
    assert_eq!(
        errno(fs.setattr(
            ino,
            &SetAttr {
                size: Some(u64::MAX),
                ..SetAttr::default()
            }
        )),
        libc::EFBIG
    );
}

#[test]
fn a_sparse_file_reads_zeros_in_its_holes_and_stores_no_bytes_for_them() {
    let fs = Env::new();
    let before = fs.stats().unwrap();
    let (ino, h) = create(&fs, "sparse");
    let far = 24 << 20;
    fs.write(ino, h, 1000, b"start").unwrap();
    fs.write(ino, h, far, b"end").unwrap();
    fs.release(ino, h).unwrap();
    let a = fs.getattr(ino).unwrap();
    assert_eq!(a.size, far + 3);
    let h = fs.open(ino, libc::O_RDONLY).unwrap().fh;
    assert_eq!(fs.read(ino, h, 0, 1010).unwrap()[1000..1005], *b"start");
    assert!(fs.read(ino, h, 0, 1000).unwrap().iter().all(|&b| b == 0));
    assert!(
        fs.read(ino, h, far / 2, 100_000)
            .unwrap()
            .iter()
            .all(|&b| b == 0)
    );
    assert_eq!(fs.read(ino, h, far - 2, 100).unwrap(), b"\0\0end");
    fs.release(ino, h).unwrap();
    let after = fs.stats().unwrap();
    assert_eq!(after.logical_bytes, far + 3);
    assert!(
        after.stored_bytes - before.stored_bytes < 8192,
        "holes were stored: {} bytes",
        after.stored_bytes - before.stored_bytes
    );
    // Writing zeros is the same as leaving a hole.
    let z = write_file(&fs, Ino::ROOT, "zeros", &vec![0u8; 1 << 20]);
    assert_eq!(fs.stats().unwrap().stored_bytes, after.stored_bytes);
    assert_eq!(read_file(&fs, z), vec![0u8; 1 << 20]);
}

#[test]
fn fallocate_without_flags_extends_the_size_with_zeros() {
    let fs = Env::new();
    let (ino, h) = create(&fs, "f");
    fs.write(ino, h, 0, b"abc").unwrap();
    fs.fallocate(ino, h, 0, 100_000, 0).unwrap();
    assert_eq!(fs.getattr(ino).unwrap().size, 100_000);
    // Within the size, nothing changes.
    fs.fallocate(ino, h, 10, 20, 0).unwrap();
    let mut want = b"abc".to_vec();
    want.resize(100_000, 0);
    assert_eq!(read_all(&fs, ino, h), want);
    // KEEP_SIZE leaves the size alone.
    fs.fallocate(ino, h, 100_000, 50_000, KEEP).unwrap();
    assert_eq!(fs.getattr(ino).unwrap().size, 100_000);
    assert_eq!(errno(fs.fallocate(ino, h, 0, 0, 0)), libc::EINVAL);
    assert_eq!(errno(fs.fallocate(ino, h, 0, 10, PUNCH)), libc::EOPNOTSUPP);
    assert_eq!(errno(fs.fallocate(ino, h, 0, 10, 0x40)), libc::EOPNOTSUPP);
    assert_eq!(
        errno(fs.fallocate(ino, h, u64::MAX - 5, 10, 0)),
        libc::EFBIG
    );
    fs.release(ino, h).unwrap();
}

#[test]
fn punch_hole_zeroes_a_range_inside_one_chunk_and_keeps_the_size() {
    let fs = Env::new();
    let data = random_bytes(5, 20_000);
    let ino = write_file(&fs, Ino::ROOT, "f", &data);
    let h = fs.open(ino, libc::O_RDWR).unwrap().fh;
    fs.fallocate(ino, h, 5_000, 10, PUNCH | KEEP).unwrap();
    let mut want = data.clone();
    want[5_000..5_010].fill(0);
    assert_eq!(read_all(&fs, ino, h), want);
    // Punching past the end does not grow the file.
    fs.fallocate(ino, h, 19_990, 1000, PUNCH | KEEP).unwrap();
    want[19_990..].fill(0);
    assert_eq!(fs.getattr(ino).unwrap().size, 20_000);
    fs.release(ino, h).unwrap();
    assert_eq!(read_file(&fs, ino), want);
}

#[test]
fn punch_hole_across_many_chunks_zeroes_exactly_that_range() {
    let fs = Env::new();
    let data = random_bytes(6, 400_000);
    let ino = write_file(&fs, Ino::ROOT, "f", &data);
    let h = fs.open(ino, libc::O_RDWR).unwrap().fh;
    fs.fallocate(ino, h, 1_234, 300_001, PUNCH | KEEP).unwrap();
    let mut want = data.clone();
    want[1_234..301_235].fill(0);
    assert_eq!(read_all(&fs, ino, h), want);
    fs.fsync(ino, h, false).unwrap();
    fs.release(ino, h).unwrap();
    assert_eq!(read_file(&fs, ino), want);
    // Writing into the hole again works chunk-wise as anywhere else.
    let h = fs.open(ino, libc::O_RDWR).unwrap().fh;
    fs.write(ino, h, 150_000, b"inside the hole").unwrap();
    model_write(&mut want, 150_000, b"inside the hole");
    fs.release(ino, h).unwrap();
    assert_eq!(read_file(&fs, ino), want);
}

#[test]
fn zero_range_zeroes_and_may_extend_the_file() {
    let fs = Env::new();
    let data = random_bytes(7, 30_000);
    let ino = write_file(&fs, Ino::ROOT, "f", &data);
    let h = fs.open(ino, libc::O_RDWR).unwrap().fh;
    let mut want = data.clone();
    fs.fallocate(ino, h, 10_000, 5_000, ZERO).unwrap();
    want[10_000..15_000].fill(0);
    assert_eq!(read_all(&fs, ino, h), want);
    fs.fallocate(ino, h, 28_000, 10_000, ZERO).unwrap();
    want[28_000..].fill(0);
    want.resize(38_000, 0);
    assert_eq!(fs.getattr(ino).unwrap().size, 38_000);
    fs.fallocate(ino, h, 37_000, 10_000, ZERO | KEEP).unwrap();
    want[37_000..].fill(0);
    assert_eq!(fs.getattr(ino).unwrap().size, 38_000);
    assert_eq!(read_all(&fs, ino, h), want);
    fs.release(ino, h).unwrap();
    assert_eq!(read_file(&fs, ino), want);
}

#[test]
fn overwriting_the_middle_of_a_large_file_stores_only_the_changed_chunks() {
    let fs = Env::new();
    let mut data = random_bytes(8, 4 << 20);
    let (ino, h) = create(&fs, "big");
    for (i, part) in data.chunks(100_000).enumerate() {
        fs.write(ino, h, i as u64 * 100_000, part).unwrap();
    }
    fs.fsync(ino, h, false).unwrap();
    let before = fs.stats().unwrap();
    assert!(before.stored_bytes >= data.len() as u64 * 9 / 10);
    let patch = random_bytes(9, 3000);
    let at = 2_000_123;
    fs.write(ino, h, at as u64, &patch).unwrap();
    model_write(&mut data, at, &patch);
    fs.fsync(ino, h, false).unwrap();
    let after = fs.stats().unwrap();
    let grew = after.stored_bytes - before.stored_bytes;
    assert!(grew > 0, "the patch was not stored");
    assert!(grew < 32 * 1024, "a 3 KB patch stored {grew} bytes");
    assert_eq!(read_all(&fs, ino, h), data);
    fs.release(ino, h).unwrap();
    assert_eq!(after.logical_bytes, data.len() as u64);
}

fn write_backwards(fs: &Fs, name: &str, data: &[u8]) -> Ino {
    let (ino, h) = create(fs, name);
    let mut pos = data.len();
    while pos > 0 {
        let from = pos.saturating_sub(7_777);
        fs.write(ino, h, from as u64, &data[from..pos]).unwrap();
        pos = from;
    }
    fs.release(ino, h).unwrap();
    ino
}

#[test]
fn identical_files_share_storage_however_they_were_written() {
    let fs = Env::new();
    let data = random_bytes(10, 300_000);
    write_file(&fs, Ino::ROOT, "a", &data);
    let one = fs.stats().unwrap();
    // The same bytes written backwards in odd pieces: commits at the dirty limit cut chunks
    // at the edges of what was written so far, so sharing is close to, not exactly, total.
    let b = write_backwards(&fs, "b", &data);
    let two = fs.stats().unwrap();
    let extra = two.stored_bytes - one.stored_bytes;
    assert!(
        extra < data.len() as u64 / 10,
        "{extra} bytes more for identical content"
    );
    // Written the same way again, not one byte more.
    let c = write_backwards(&fs, "c", &data);
    let three = fs.stats().unwrap();
    assert_eq!(three.stored_bytes, two.stored_bytes);
    assert_eq!(three.chunks, two.chunks);
    assert_eq!(three.logical_bytes, 3 * data.len() as u64);
    assert!(three.dedup_ratio > 2.5);
    assert_eq!(read_file(&fs, b), data);
    assert_eq!(read_file(&fs, c), data);
}

#[test]
fn content_shifted_by_an_insertion_still_shares_most_chunks() {
    let fs = Env::new();
    let data = random_bytes(11, 500_000);
    write_file(&fs, Ino::ROOT, "a", &data);
    let one = fs.stats().unwrap();
    let mut shifted = b"a few inserted bytes".to_vec();
    shifted.extend_from_slice(&data);
    let b = write_file(&fs, Ino::ROOT, "b", &shifted);
    let two = fs.stats().unwrap();
    let grew = two.unique_bytes - one.unique_bytes;
    assert!(
        grew < 20_000,
        "a 20-byte insertion cost {grew} new unique bytes"
    );
    assert_eq!(read_file(&fs, b), shifted);
}

#[test]
fn many_files_with_sealed_superchunks_read_back_after_a_reopen() {
    let mut fs = Env::new();
    let mut want = Vec::new();
    for i in 0..40u64 {
        let len = (i as usize * 7919) % 60_000;
        let data = random_bytes(100 + i, len);
        let ino = write_file(&fs, Ino::ROOT, &format!("f{i}"), &data);
        want.push((ino, data));
    }
    let stats = fs.stats().unwrap();
    assert!(
        stats.superchunks > 10,
        "only {} superchunks",
        stats.superchunks
    );
    fs.reopen();
    for (ino, data) in &want {
        assert_eq!(&read_file(&fs, *ino), data);
    }
    assert_eq!(fs.stats().unwrap().stored_bytes, stats.stored_bytes);
}

#[test]
fn a_write_larger_than_the_dirty_limit_commits_on_its_own_and_reads_back() {
    let mut fs = Env::new();
    let data = random_bytes(12, 300_000);
    let (ino, h) = create(&fs, "f");
    let seq = fs.current_seq();
    fs.write(ino, h, 0, &data).unwrap();
    assert!(
        fs.current_seq() > seq,
        "passing the dirty limit did not commit"
    );
    assert_eq!(read_all(&fs, ino, h), data);
    fs.release(ino, h).unwrap();
    fs.reopen();
    assert_eq!(read_file(&fs, ino), data);
}

#[test]
fn an_unlinked_file_keeps_its_content_out_of_the_logical_total() {
    let fs = Env::new();
    let a = write_file(&fs, Ino::ROOT, "a", &random_bytes(13, 10_000));
    write_file(&fs, Ino::ROOT, "b", &random_bytes(14, 5_000));
    assert_eq!(fs.stats().unwrap().logical_bytes, 15_000);
    assert_eq!(fs.stats().unwrap().files, 2);
    fs.unlink(Ino::ROOT, b"a").unwrap();
    assert_eq!(fs.stats().unwrap().logical_bytes, 5_000);
    assert_eq!(fs.stats().unwrap().files, 1);
    // Still reachable by inode number (as through /proc/self/fd), with its bytes.
    assert_eq!(read_file(&fs, a), random_bytes(13, 10_000));
}

#[test]
fn a_file_appended_in_pieces_ends_with_the_same_chunk_list_as_one_written_at_once() {
    let fs = Env::new();
    let data = random_bytes(12, 400_000);
    write_file(&fs, Ino::ROOT, "once", &data);
    let (ino, h) = create(&fs, "pieces");
    for (i, piece) in data.chunks(7_777).enumerate() {
        fs.write(ino, h, (i * 7_777) as u64, piece).unwrap();
    }
    fs.release(ino, h).unwrap();
    let last = |p: &str| {
        fs.log(&chunkfs::fs::Caller::root(), p)
            .unwrap()
            .revisions
            .last()
            .unwrap()
            .entry
            .content
            .clone()
    };
    assert!(last("/once").is_some());
    assert_eq!(
        last("/once"),
        last("/pieces"),
        "commits at the dirty limit must not force cuts"
    );
}

#[test]
fn uncommitted_bytes_of_all_files_together_stay_under_the_total_limit() {
    let ts = TestStore::new(64 << 20);
    let fs = ts.open_with(chunkfs::fs::FsOptions {
        dirty_limit: 1 << 20,
        dirty_total_limit: 256 << 10,
        ..tiny_opts()
    });
    let mut open = Vec::new();
    for i in 0..8 {
        let (ino, fh) = create(&fs, &format!("f{i}"));
        open.push((ino, fh, i));
    }
    let mut commits = 0;
    for &(ino, fh, i) in &open {
        // Observing the seq closes it: a content commit during the write takes the next one.
        let before = fs.current_seq();
        fs.write(ino, fh, 0, &random_bytes(i, 100_000)).unwrap();
        commits += usize::from(fs.current_seq() > before);
    }
    // No file reached its own limit, but together they passed the total: writers committed.
    assert!(commits >= 4, "only {commits} writes committed content");
    for (ino, fh, i) in open {
        fs.release(ino, fh).unwrap();
        assert_eq!(read_file(&fs, ino), random_bytes(i, 100_000));
    }
    assert_consistent(&fs);
}

#[test]
fn concurrent_sequential_readers_get_exact_bytes_and_each_chunk_is_read_from_the_device_once() {
    // A cache larger than the file, so nothing read ahead is evicted before it is used.
    let ts = TestStore::new(64 << 20);
    let opts = chunkfs::fs::FsOptions {
        cache_bytes: 32 << 20,
        ..tiny_opts()
    };
    let open = || ts.open_with(opts.clone());
    let data = random_bytes(77, 6 << 20);
    let fs = open();
    let ino = write_file(&fs, Ino::ROOT, "big", &data);
    fs.close().unwrap();

    // Device reads of `readers` sequential readers (and one random one) from a cold cache.
    let cold_read = |readers: u64| {
        let fs = open();
        let before = ts.dev.reads();
        std::thread::scope(|s| {
            for t in 0..readers {
                let (fs, data) = (&fs, &data);
                s.spawn(move || {
                    let h = fs.open(ino, libc::O_RDONLY).unwrap();
                    let mut off = 0;
                    while off < data.len() {
                        let part = fs.read(ino, h.fh, off as u64, 128 << 10).unwrap();
                        assert_eq!(
                            &part[..],
                            &data[off..off + part.len()],
                            "reader {t} at {off}"
                        );
                        off += part.len();
                    }
                    fs.release(ino, h.fh).unwrap();
                });
            }
            let (fs, data) = (&fs, &data);
            s.spawn(move || {
                let h = fs.open(ino, libc::O_RDONLY).unwrap();
                for i in 0..200u64 {
                    let off = (i * 7_919_993) % (data.len() as u64 - 4096);
                    let part = fs.read(ino, h.fh, off, 4096).unwrap();
                    assert_eq!(&part[..], &data[off as usize..off as usize + 4096]);
                }
                fs.release(ino, h.fh).unwrap();
            });
        });
        let after = ts.dev.reads();
        fs.close().unwrap();
        (after.0 - before.0, after.1 - before.1)
    };
    let (one_reads, one_bytes) = cold_read(1);
    let (reads, bytes) = cold_read(3);
    // Three readers at once must not make the device deliver a chunk twice.
    assert!(
        bytes <= one_bytes + one_bytes / 10,
        "three readers read {bytes} device bytes, one reader {one_bytes}"
    );
    // Read-ahead reads runs of neighbouring chunks at once, not one chunk per read.
    let chunks = data.len() as u64 / 1024;
    assert!(
        one_reads < chunks / 8 && reads < chunks / 8,
        "{one_reads} and {reads} device reads for ~{chunks} chunks"
    );
}

#[test]
fn a_store_closed_while_reading_ahead_can_be_opened_again_at_once() {
    use chunkfs::fs::{FsOptions, MkfsOptions, open};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let mkfs = MkfsOptions {
        size: Some(256 << 20),
        ..tiny_mkfs()
    };
    open::mkfs(&store, &mkfs).unwrap();
    let opts = FsOptions {
        cache_bytes: 32 << 20,
        ..tiny_opts()
    };
    let data = random_bytes(9, 6 << 20);
    let fs = Fs::open(&store, opts.clone()).unwrap();
    let ino = write_file(&fs, Ino::ROOT, "big", &data);
    fs.close().unwrap();
    for round in 0..20 {
        // The first read starts a read-ahead job over the whole file; close at once, while
        // it runs. The store lock must be free the moment close returns.
        let fs = Fs::open(&store, opts.clone()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let h = fs.open(ino, libc::O_RDONLY).unwrap();
        let part = fs.read(ino, h.fh, 0, 128 << 10).unwrap();
        assert_eq!(&part[..], &data[..128 << 10]);
        fs.release(ino, h.fh).unwrap();
        fs.close().unwrap();
    }
}
