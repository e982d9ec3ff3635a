//! GC and history together: what snapshots and clones still see survives a full pass with
//! no history window, and the namespace stays sound (fsck) afterwards.

mod common;

use chunkfs::fs::{Fs, Ino};
use chunkfs::gc::Silent;
use common::*;

fn no_window() -> TestStore {
    TestStore::with_window(64 << 20, 0)
}

fn read_path(fs: &Fs, path: &str) -> Vec<u8> {
    let mut ino = Ino::ROOT;
    for p in path.split('/').filter(|p| !p.is_empty()) {
        ino = fs.lookup(ino, p.as_bytes()).unwrap().ino;
    }
    read_file(fs, ino)
}

fn assert_sound(fs: &Fs) {
    assert_consistent(fs);
    let r = fs.fsck_online(false).unwrap();
    assert!(!r.has_errors(), "{r:#?}");
}

#[test]
fn gc_keeps_what_snapshots_and_clones_see_and_the_namespace_stays_sound() {
    let ts = no_window();
    let fs = ts.open();
    let d = fs.mkdir(Ino::ROOT, b"d", 0o755, 0, 0).unwrap().ino;
    let a = random_bytes(1, 50_000);
    let b = random_bytes(2, 50_000);
    write_file(&fs, d, "a", &a);
    write_file(&fs, d, "b", &b);
    fs.snapshot_create(&chunkfs::fs::Caller::root(), "s", "/")
        .unwrap();
    fs.clone_path(&chunkfs::fs::Caller::root(), "/d", "/c")
        .unwrap();
    // The source changes and loses files; the clone and the snapshot must not notice.
    fs.unlink(d, b"a").unwrap();
    let bi = fs.lookup(d, b"b").unwrap().ino;
    let h = fs.open(bi, libc::O_RDWR | libc::O_TRUNC).unwrap();
    fs.write(bi, h.fh, 0, b"new b").unwrap();
    fs.release(bi, h.fh).unwrap();
    fs.gc(&Silent).unwrap();
    assert_eq!(read_path(&fs, "/c/a"), a);
    assert_eq!(read_path(&fs, "/c/b"), b);
    assert_eq!(read_path(&fs, "/.chunkfs/snapshots/s/d/a"), a);
    assert_eq!(read_path(&fs, "/d/b"), b"new b");
    assert_sound(&fs);
    // Without the snapshot, the clone alone still holds the old data.
    fs.snapshot_delete(&chunkfs::fs::Caller::root(), "s")
        .unwrap();
    fs.gc(&Silent).unwrap();
    assert_eq!(read_path(&fs, "/c/a"), a);
    assert_eq!(read_path(&fs, "/c/b"), b);
    assert_sound(&fs);
    fs.close().unwrap();
    let fs = ts.open();
    assert_eq!(read_path(&fs, "/c/a"), a);
    assert_sound(&fs);
}

/// A clone whose files were changed (so they have rows of their own) and then deleted: GC
/// prunes their revisions but keeps the clone-side inode rows (else the numbers would read
/// their source again), and fsck must take that for the design it is, not "no revision".
#[test]
fn a_deleted_clone_leaves_a_store_fsck_finds_clean_after_gc() {
    let ts = no_window();
    let fs = ts.open();
    let d = fs.mkdir(Ino::ROOT, b"d", 0o755, 0, 0).unwrap().ino;
    write_file(&fs, d, "a", &random_bytes(3, 20_000));
    write_file(&fs, d, "b", &random_bytes(4, 20_000));
    fs.clone_path(&chunkfs::fs::Caller::root(), "/d", "/c")
        .unwrap();
    let c = fs.lookup(Ino::ROOT, b"c").unwrap().ino;
    for name in [&b"a"[..], b"b"] {
        let i = fs.lookup(c, name).unwrap().ino;
        let h = fs.open(i, libc::O_RDWR).unwrap();
        fs.write(i, h.fh, 0, b"changed in the clone").unwrap();
        fs.release(i, h.fh).unwrap();
        fs.unlink(c, name).unwrap();
    }
    fs.rmdir(Ino::ROOT, b"c").unwrap();
    fs.gc(&Silent).unwrap();
    assert_sound(&fs);
    fs.close().unwrap();
    let fs = ts.open();
    assert_sound(&fs);
    assert_eq!(read_path(&fs, "/d/a"), random_bytes(3, 20_000));
}
