//! Server-side copy through the core API (`Fs::copy_range`, what `copy_file_range(2)` reaches):
//! whole chunks are shared, the copy reads exactly like the bytes it copied, both files stay
//! independent, and the errors are the kernel's. Random ranges against a reference model run in
//! `model.rs` (`Op::Copy`). Tiny chunks (1 KiB average) so that ranges cut many of them.

mod common;
mod support;

use chunkfs::fs::Ino;
use common::*;
use support::*;

#[test]
fn a_whole_file_copy_stores_no_new_chunk() {
    let fs = Env::new();
    let data = random_bytes(1, 3 << 20);
    let src = create(&fs, "src");
    fs.write(src.0, src.1, 0, &data).unwrap();
    fs.fsync(src.0, src.1, false).unwrap();
    let before = fs.stats().unwrap();
    let dst = create(&fs, "dst");
    assert_eq!(copy(&fs, src, 0, dst, 0, 1 << 30), data.len() as u64);
    fs.fsync(dst.0, dst.1, false).unwrap();
    let after = fs.stats().unwrap();
    assert_eq!(after.chunks, before.chunks);
    assert_eq!(after.stored_bytes, before.stored_bytes);
    assert_eq!(fs.getattr(dst.0).unwrap().size, data.len() as u64);
    assert!(read_file(&fs, dst.0) == data);
    fs.release(src.0, src.1).unwrap();
    fs.release(dst.0, dst.1).unwrap();
}

#[test]
fn a_copy_in_many_calls_rebuilds_the_source_chunks_at_its_seams() {
    // No history window, so GC keeps only what the current files reference.
    let ts = TestStore::with_window(64 << 20, 0);
    let fs = ts.open();
    let data = random_bytes(2, 1 << 20);
    let src = create(&fs, "src");
    fs.write(src.0, src.1, 0, &data).unwrap();
    fs.fsync(src.0, src.1, false).unwrap();
    fs.gc(&chunkfs::gc::Silent).unwrap();
    let before = fs.stats().unwrap();
    let dst = create(&fs, "dst");
    // As cp does: successive calls, each going on where the last stopped, at offsets that
    // cut chunks.
    let mut at = 0;
    while at < data.len() as u64 {
        at += copy(&fs, src, at, dst, at, 100_003);
    }
    fs.release(dst.0, dst.1).unwrap();
    fs.release(src.0, src.1).unwrap();
    assert!(read_file(&fs, dst.0) == data);
    // Each call's seam chunk was cut again with the next call's bytes: the original chunk.
    // So the copy references exactly the source's chunks, and nothing else is left.
    fs.gc(&chunkfs::gc::Silent).unwrap();
    let after = fs.stats().unwrap();
    assert_eq!(after.chunks, before.chunks);
    assert_eq!(after.stored_bytes, before.stored_bytes);
    assert_consistent(&fs);
}

#[test]
fn a_range_lands_over_existing_data_and_past_the_end_with_a_hole_before_it() {
    let fs = Env::new();
    let a = random_bytes(3, 200_000);
    let b = random_bytes(4, 150_000);
    let src = create(&fs, "src");
    let dst = create(&fs, "dst");
    fs.write(src.0, src.1, 0, &a).unwrap();
    fs.write(dst.0, dst.1, 0, &b).unwrap();
    // Over the middle of the destination, from the middle of the source (both uncommitted).
    assert_eq!(copy(&fs, src, 12_345, dst, 54_321, 60_000), 60_000);
    let mut m = b.clone();
    m[54_321..114_321].copy_from_slice(&a[12_345..72_345]);
    assert!(read_file(&fs, dst.0) == m);
    // Past the destination's end: a hole, then the bytes.
    assert_eq!(copy(&fs, src, 190_000, dst, 300_000, 50_000), 10_000);
    m.resize(300_000, 0);
    m.extend_from_slice(&a[190_000..]);
    assert!(read_file(&fs, dst.0) == m);
    // At or past the source's end: nothing, and nothing changes.
    assert_eq!(copy(&fs, src, 200_000, dst, 0, 10), 0);
    assert_eq!(copy(&fs, src, 500_000, dst, 0, 10), 0);
    assert!(read_file(&fs, dst.0) == m);
    fs.release(src.0, src.1).unwrap();
    fs.release(dst.0, dst.1).unwrap();
}

#[test]
fn the_two_files_are_independent_after_a_copy() {
    let fs = Env::new();
    let data = random_bytes(5, 300_000);
    let src = create(&fs, "src");
    let dst = create(&fs, "dst");
    fs.write(src.0, src.1, 0, &data).unwrap();
    copy(&fs, src, 0, dst, 0, data.len() as u64);
    fs.write(src.0, src.1, 1000, b"source changed").unwrap();
    fs.write(dst.0, dst.1, 2000, b"copy changed").unwrap();
    let (mut s, mut d) = (data.clone(), data.clone());
    s[1000..1014].copy_from_slice(b"source changed");
    d[2000..2012].copy_from_slice(b"copy changed");
    fs.fsync(src.0, src.1, false).unwrap();
    fs.fsync(dst.0, dst.1, false).unwrap();
    assert!(read_file(&fs, src.0) == s);
    assert!(read_file(&fs, dst.0) == d);
    fs.release(src.0, src.1).unwrap();
    fs.release(dst.0, dst.1).unwrap();
}

#[test]
fn within_one_file_ranges_may_not_overlap() {
    let fs = Env::new();
    let data = random_bytes(6, 100_000);
    let f = create(&fs, "f");
    fs.write(f.0, f.1, 0, &data).unwrap();
    assert_eq!(
        errno(fs.copy_range(f.0, f.1, 0, f.0, f.1, 50_000, 50_001)),
        libc::EINVAL
    );
    assert_eq!(copy(&fs, f, 0, f, 50_000, 50_000), 50_000);
    let mut m = data.clone();
    m.copy_within(0..50_000, 50_000);
    assert!(read_file(&fs, f.0) == m);
    fs.release(f.0, f.1).unwrap();
}

#[test]
fn a_destination_opened_read_only_and_a_handle_of_another_file_are_refused() {
    let mut env = Env::new();
    let data = random_bytes(7, 10_000);
    let src = write_file(&env, Ino::ROOT, "src", &data);
    let dst = write_file(&env, Ino::ROOT, "dst", b"keep");
    let r_src = env.open(src, libc::O_RDONLY).unwrap().fh;
    let r_dst = env.open(dst, libc::O_RDONLY).unwrap().fh;
    assert_eq!(
        errno(env.copy_range(src, r_src, 0, dst, r_dst, 0, 100)),
        libc::EBADF
    );
    // A handle of another file than the one named.
    let w_dst = env.open(dst, libc::O_WRONLY).unwrap().fh;
    assert_eq!(
        errno(env.copy_range(src, r_src, 0, dst, r_src, 0, 100)),
        libc::EBADF
    );
    assert_eq!(copy(&env, (src, r_src), 0, (dst, w_dst), 0, 100), 100);
    for fh in [r_src, r_dst, w_dst] {
        let ino = if fh == r_src { src } else { dst };
        env.release(ino, fh).unwrap();
    }
    assert!(read_file(&env, dst) == data[..100]);
    env.reopen();
    assert!(read_file(&env, dst) == data[..100]);
}

#[test]
fn shared_chunks_outlive_the_source_through_gc() {
    // No history window: the source's chunks are garbage once it is gone, but for the copy.
    let ts = TestStore::with_window(64 << 20, 0);
    let fs = ts.open();
    let data = random_bytes(8, 500_000);
    let src = create(&fs, "src");
    let dst = create(&fs, "dst");
    fs.write(src.0, src.1, 0, &data).unwrap();
    copy(&fs, src, 0, dst, 0, data.len() as u64);
    fs.release(src.0, src.1).unwrap();
    fs.release(dst.0, dst.1).unwrap();
    fs.unlink(Ino::ROOT, b"src").unwrap();
    fs.gc(&chunkfs::gc::Silent).unwrap();
    assert!(read_file(&fs, dst.0) == data);
    assert_consistent(&fs);
    let r = fs.fsck_online(false).unwrap();
    assert!(!r.has_errors(), "{r:#?}");
    // Only the copy's data is left: about one copy of the file.
    let st = fs.stats().unwrap();
    assert!(st.unique_bytes <= data.len() as u64 + 4096, "{st:?}");
}

#[test]
fn a_clone_and_a_whole_file_copy_give_the_same_content() {
    let fs = Env::new();
    let data = random_bytes(9, 700_000);
    write_file(&fs, Ino::ROOT, "src", &data);
    let root = chunkfs::fs::Caller::root();
    fs.clone_path(&root, "/src", "/cloned").unwrap();
    let src = resolve(&fs, "src").unwrap();
    let s = fs.open(src, libc::O_RDONLY).unwrap().fh;
    let dst = create(&fs, "copied");
    assert_eq!(copy(&fs, (src, s), 0, dst, 0, 1 << 40), data.len() as u64);
    fs.release(src, s).unwrap();
    fs.release(dst.0, dst.1).unwrap();
    // A log entry's op is the first change of its seq: only the content is compared.
    let content = |p: &str| {
        let log = fs.log(&root, p).unwrap();
        log.revisions.last().unwrap().entry.content.clone().unwrap()
    };
    // The same chunk list: one content, stored once.
    assert_eq!(content("/cloned"), content("/src"));
    assert_eq!(content("/copied"), content("/src"));
}

#[test]
fn files_of_a_cloned_tree_copy_both_ways_before_and_after_they_materialize() {
    let fs = Env::new();
    let root = chunkfs::fs::Caller::root();
    let d = fs.mkdir(Ino::ROOT, b"d", 0o755, 0, 0).unwrap().ino;
    let a = random_bytes(10, 120_000);
    let b = random_bytes(11, 90_000);
    write_file(&fs, d, "a", &a);
    write_file(&fs, d, "b", &b);
    fs.clone_path(&root, "/d", "/c").unwrap();
    let before = fs.stats().unwrap();
    // Out of the clone, its file never changed (so never materialized).
    let ca = resolve(&fs, "c/a").unwrap();
    let s = fs.open(ca, libc::O_RDONLY).unwrap().fh;
    let out = create(&fs, "out");
    assert_eq!(copy(&fs, (ca, s), 0, out, 0, 1 << 20), a.len() as u64);
    fs.release(ca, s).unwrap();
    fs.release(out.0, out.1).unwrap();
    assert!(read_file(&fs, out.0) == a);
    // Into the clone: its file materializes; the source tree is untouched.
    let cb = resolve(&fs, "c/b").unwrap();
    let w = fs.open(cb, libc::O_RDWR).unwrap().fh;
    let da = resolve(&fs, "d/a").unwrap();
    let r = fs.open(da, libc::O_RDONLY).unwrap().fh;
    assert_eq!(copy(&fs, (da, r), 1000, (cb, w), 5000, 20_000), 20_000);
    fs.release(da, r).unwrap();
    fs.release(cb, w).unwrap();
    let mut m = b.clone();
    m[5000..25_000].copy_from_slice(&a[1000..21_000]);
    assert!(read_file(&fs, resolve(&fs, "c/b").unwrap()) == m);
    assert!(read_file(&fs, resolve(&fs, "d/b").unwrap()) == b);
    assert!(read_file(&fs, resolve(&fs, "d/a").unwrap()) == a);
    // Nothing but the chunks cut at the range's two ends is new.
    let after = fs.stats().unwrap();
    assert!(after.chunks <= before.chunks + 8, "{before:?} {after:?}");
}
