//! Background garbage collection when there is little or nothing to collect: it repacks no
//! superchunk younger than the `repack-age` setting, a pass judges only history that ended
//! since the last pass it completed, and when nothing could have become garbage it does not
//! start a pass at all.

mod common;

use chunkfs::fs::{Caller, Fs, Ino};
use common::*;

fn overwrite(fs: &Fs, name: &str, data: &[u8]) {
    let ino = fs.lookup(Ino::ROOT, name.as_bytes()).unwrap().ino;
    let h = fs.open(ino, libc::O_RDWR | libc::O_TRUNC).unwrap();
    fs.write(ino, h.fh, 0, data).unwrap();
    fs.release(ino, h.fh).unwrap();
}

/// A file "keep" that shared its superchunk with a file just deleted ("gone"): with history
/// window 0 the deleted file is garbage at once, and the superchunk is left under half live.
/// Returns the kept file's inode and content.
fn keep_beside_a_deleted_file(fs: &Fs) -> (Ino, Vec<u8>) {
    let keep = random_bytes(1, 3_000);
    let ino = write_file(fs, Ino::ROOT, "keep", &keep);
    write_file(fs, Ino::ROOT, "gone", &random_bytes(2, 12_000));
    fs.sync_all().unwrap();
    fs.unlink(Ino::ROOT, b"gone").unwrap();
    (ino, keep)
}

#[test]
fn background_gc_repacks_no_superchunk_younger_than_the_repack_age() {
    let s = TestStore::with_window(64 << 20, 0);
    let fs = s.open();
    let (ino, keep) = keep_beside_a_deleted_file(&fs);
    fs.sync_all().unwrap();

    let r = fs
        .background_gc_pass()
        .unwrap()
        .expect("the deletion left work");
    assert!(r.chunks > 0, "the deleted file's chunks are swept: {r:?}");
    assert_eq!(
        (r.superchunks_repacked, r.bytes_repacked),
        (0, 0),
        "a superchunk written moments ago was repacked: {r:?}"
    );
    assert!(
        fs.stats().unwrap().dead_bytes > 0,
        "the sparse superchunk stays"
    );

    // With the age at 0 (what tests that want background repacks set) it is repacked.
    fs.config_set("repack-age", "0").unwrap();
    let r = fs
        .background_gc_pass()
        .unwrap()
        .expect("a sparse superchunk to repack");
    assert!(r.superchunks_repacked >= 1, "{r:?}");
    assert_eq!(read_file(&fs, ino), keep);
    assert_consistent(&fs);
}

#[test]
fn an_explicit_gc_repacks_young_superchunks_too() {
    let s = TestStore::with_window(64 << 20, 0);
    let fs = s.open();
    let (ino, keep) = keep_beside_a_deleted_file(&fs);
    let r = fs.gc(&chunkfs::gc::Silent).unwrap();
    assert!(r.superchunks_repacked >= 1, "{r:?}");
    assert_eq!(fs.stats().unwrap().dead_bytes, 0);
    assert_eq!(read_file(&fs, ino), keep);
}

#[test]
fn no_background_pass_starts_over_a_store_holding_only_fresh_data() {
    // The default history window: nothing written now is garbage.
    let s = TestStore::new(64 << 20);
    let fs = s.open();
    let mut files = Vec::new();
    for i in 0..20 {
        let d = random_bytes(10 + i, 5_000);
        files.push((write_file(&fs, Ino::ROOT, &format!("f{i}"), &d), d));
    }
    fs.sync_all().unwrap();
    let before = fs.stats().unwrap();
    // Nothing a pass could do: none starts (before, one ran six batches over the store).
    assert_eq!(fs.background_gc_pass().unwrap(), None);
    assert_eq!(
        fs.stats().unwrap().device_used_bytes,
        before.device_used_bytes
    );
    // Overwritten: the old states are inside the history window; still nothing to do.
    for (i, (ino, d)) in files.iter().enumerate().take(5) {
        overwrite(&fs, &format!("f{i}"), &d[..1000]);
        assert_eq!(read_file(&fs, *ino), d[..1000]);
    }
    fs.sync_all().unwrap();
    assert_eq!(fs.background_gc_pass().unwrap(), None);
    assert_eq!(fs.background_gc_pass().unwrap(), None);
    assert_consistent(&fs);
}

#[test]
fn a_background_pass_reads_only_history_ended_since_the_last_pass() {
    // Window 0 and a snapshot: every overwritten state is outside the window and kept by the
    // snapshot, so a pass over all history reads it all and prunes nothing.
    let s = TestStore::with_window(64 << 20, 0);
    let fs = s.open();
    for i in 0..40 {
        write_file(&fs, Ino::ROOT, &format!("f{i}"), &random_bytes(i, 2_000));
    }
    fs.sync_all().unwrap();
    fs.snapshot_create(&Caller::root(), "before", "/").unwrap();
    for i in 0..40 {
        overwrite(&fs, &format!("f{i}"), &random_bytes(100 + i, 2_000));
    }
    fs.sync_all().unwrap();
    let first = fs
        .background_gc_pass()
        .unwrap()
        .expect("the first pass runs");
    assert!(first.examined >= 40, "{first:?}");

    // One more change ends a few rows (the file's and its directory's): the next pass reads
    // those, not the history the first one judged.
    overwrite(&fs, "f0", b"new");
    fs.sync_all().unwrap();
    let next = fs.background_gc_pass().unwrap().expect("a row ended");
    assert!(next.examined < 10, "read again what was judged: {next:?}");

    // An explicit pass judges everything again, and finds every row still kept.
    let all = fs.gc(&chunkfs::gc::Silent).unwrap();
    assert!(all.examined >= 40, "{all:?}");
    assert_eq!(fs.background_gc_pass().unwrap(), None);

    // Once the snapshot goes, what it kept is judged again, and collected.
    fs.snapshot_delete(&Caller::root(), "before").unwrap();
    let freed = fs
        .background_gc_pass()
        .unwrap()
        .expect("the snapshot's rows");
    assert!(freed.revisions >= 40, "{freed:?}");
    assert_consistent(&fs);
}
