//! fsck against stores damaged on purpose: each damage is found, the right files, revisions
//! and byte ranges are named, repairs do what they claim, and a good copy heals.

mod common;

use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions};
use chunkfs::fsck::offline::{self, FsckOptions};
use chunkfs::fsck::{Report, Silent};
use common::*;
use std::path::{Path, PathBuf};

struct Store(DirStore);

impl std::ops::Deref for Store {
    type Target = DirStore;
    fn deref(&self) -> &DirStore {
        &self.0
    }
}

impl Store {
    fn new() -> Store {
        Store(DirStore::mkfs(&MkfsOptions {
            size: Some(256 << 20),
            ..tiny_mkfs()
        }))
    }
    fn open(&self) -> Fs {
        Fs::open(&self.path(), FsOptions { ..tiny_opts() }).unwrap()
    }
    fn image(&self) -> PathBuf {
        self.path().join("data.img")
    }
    /// Id and device offset of the first (or, with `last`, the last) superchunk on the device.
    fn superchunk(&self, last: bool) -> (i64, i64) {
        let order = if last { "DESC" } else { "ASC" };
        let sql = format!("SELECT id, start FROM superchunks ORDER BY start {order} LIMIT 1");
        self.db()
            .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    }
    fn fsck(&self, repair: bool, from: Option<&Path>) -> Report {
        let o = FsckOptions {
            repair,
            repair_from: from.map(Path::to_path_buf),
            ..Default::default()
        };
        offline::run(&self.path(), &o, &Silent).unwrap()
    }
    /// Device offset and stored length of a chunk of `file` (the `nth` entry of its content).
    fn chunk_of(&self, nth: usize, codec: Option<u8>) -> (String, u64, u64) {
        let db = self.db();
        let sql = "SELECT hex(c.hash), s.start + c.offset, c.stored_len FROM chunks c
                   JOIN superchunks s ON s.id = c.superchunk WHERE (?1 IS NULL OR c.codec = ?1)
                   ORDER BY s.start + c.offset LIMIT 1 OFFSET ?2";
        db.query_row(sql, rusqlite::params![codec, nth as i64], |r| {
            Ok((
                r.get::<_, String>(0)?.to_lowercase(),
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })
        .unwrap()
    }
    /// Write the last superchunk B that fits over the first one, A, as a GC that handed out
    /// space twice would, and record B there (its old extent becomes free): A's row now
    /// points at B's bytes. Returns (A, B).
    fn write_one_superchunk_over_another(&self) -> (i64, i64) {
        let s = self;
        let db = s.db();
        let (id_a, start_a, len_a): (i64, i64, i64) = db
            .query_row(
                "SELECT id, start, len FROM superchunks ORDER BY start LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        let (id_b, start_b, len_b): (i64, i64, i64) = db
            .query_row(
                "SELECT id, start, len FROM superchunks WHERE id != ?1 AND len <= ?2
                 ORDER BY start DESC LIMIT 1",
                [id_a, len_a],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(s.image())
                .unwrap();
            let mut bytes = vec![0u8; len_b as usize];
            f.read_exact_at(&mut bytes, start_b as u64).unwrap();
            f.write_all_at(&bytes, start_a as u64).unwrap();
        }
        db.execute(
            "UPDATE superchunks SET start = ?1 WHERE id = ?2",
            [start_a, id_b],
        )
        .unwrap();
        db.execute(
            "INSERT INTO free_extents(start, len) VALUES (?1, ?2)",
            [start_b, len_b],
        )
        .unwrap();
        drop(db);
        (id_a, id_b)
    }

    fn flip(&self, at: u64) {
        flip_byte(&self.image(), at);
    }
}

/// Text-like, compressible data.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "chunk", "store", "fsck ", "data ", "tree ", "hash\n", "list ", "seq  ",
    ];
    let r = random_bytes(seed, len);
    let mut out = Vec::with_capacity(len + 8);
    for b in r {
        out.extend_from_slice(words[(b % 8) as usize].as_bytes());
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

/// Both files `populate` wrote read back exactly.
fn assert_reads_back(s: &Store, a: &[u8], b: &[u8]) {
    let fs = s.open();
    let dir = fs.lookup(Ino::ROOT, b"docs").unwrap().ino;
    assert_eq!(read_file(&fs, fs.lookup(dir, b"a.txt").unwrap().ino), a);
    assert_eq!(
        read_file(&fs, fs.lookup(Ino::ROOT, b"b.bin").unwrap().ino),
        b
    );
}

fn populate(s: &Store) -> (Vec<u8>, Vec<u8>) {
    let fs = s.open();
    let a = text(1, 200_000);
    let b = random_bytes(2, 100_000);
    let dir = fs.mkdir(Ino::ROOT, b"docs", 0o755, 0, 0).unwrap().ino;
    write_file(&fs, dir, "a.txt", &a);
    write_file(&fs, Ino::ROOT, "b.bin", &b);
    fs.close().unwrap();
    (a, b)
}

#[test]
fn a_clean_store_checks_clean() {
    let s = Store::new();
    populate(&s);
    let r = s.fsck(false, None);
    assert!(!r.has_errors(), "{r:#?}");
    assert_eq!(r.exit_code(), 0);
    assert!(r.chunks_checked > 50);
}

#[test]
fn fsck_names_the_file_and_byte_range_of_a_corrupt_compressed_chunk() {
    let s = Store::new();
    let (a, _) = populate(&s);
    let (hash, at, len) = s.chunk_of(3, Some(1));
    s.flip(at + len / 2);
    let r = s.fsck(false, None);
    assert_eq!(r.exit_code(), 4);
    let c = r
        .corrupt_chunks
        .iter()
        .find(|c| c.hash == hash)
        .expect("the flipped chunk is reported");
    assert_eq!(c.problem, "corrupt");
    let f = &c.files[0];
    assert_eq!(f.path, "/docs/a.txt");
    assert!(f.seq_to.is_none(), "the current revision is affected");
    assert!(f.offset + f.length <= a.len() as u64 && f.length > 0);
    assert!(
        !r.damaged_superchunks.is_empty(),
        "the payload checksum fails too"
    );
}

/// Flip a byte inside a chunk of docs/a.txt (content `a`); read the file, which must fail
/// with EIO at the damage and never give wrong bytes; then write the same bytes again as a
/// new file (a backup run), which gives the chunk a good copy that the old file reads.
fn damage_a_and_rewrite_it(s: &Store, a: &[u8]) {
    let (_, at, len) = s.chunk_of(3, Some(1));
    s.flip(at + len / 2);
    let fs = s.open();
    let dir = fs.lookup(Ino::ROOT, b"docs").unwrap().ino;
    let ino = fs.lookup(dir, b"a.txt").unwrap().ino;
    let h = fs.open(ino, libc::O_RDONLY).unwrap();
    let mut saw_eio = false;
    for off in (0..a.len() as u64).step_by(4096) {
        match fs.read(ino, h.fh, off, 4096) {
            Ok(d) => assert_eq!(
                &d[..],
                &a[off as usize..off as usize + d.len()],
                "never wrong bytes"
            ),
            Err(e) => {
                assert_eq!(e.errno(), libc::EIO);
                saw_eio = true;
            }
        }
    }
    fs.release(ino, h.fh).unwrap();
    assert!(saw_eio, "the damage is seen by a read first");
    write_file(&fs, Ino::ROOT, "again.txt", a);
    assert_eq!(read_file(&fs, ino), a);
    fs.close().unwrap();
}

#[test]
fn reading_a_corrupt_chunk_fails_with_eio_and_identical_data_heals_it() {
    let s = Store::new();
    let (a, _) = populate(&s);
    damage_a_and_rewrite_it(&s, &a);
    let r = s.fsck(true, None);
    assert!(r.corrupt_chunks.is_empty(), "{:#?}", r.corrupt_chunks);
}

#[test]
fn fsck_finds_a_flipped_byte_in_a_raw_chunk() {
    let s = Store::new();
    populate(&s);
    let (hash, at, len) = s.chunk_of(0, Some(0));
    s.flip(at + len / 3);
    let r = s.fsck(false, None);
    let c = r
        .corrupt_chunks
        .iter()
        .find(|c| c.hash == hash)
        .expect("reported");
    assert_eq!(c.files[0].path, "/b.bin");
}

#[test]
fn a_damaged_header_is_reported_while_its_chunks_still_verify() {
    let s = Store::new();
    populate(&s);
    let (_, start) = s.superchunk(false);
    s.flip(start as u64 + 20);
    let r = s.fsck(false, None);
    assert_eq!(
        r.damaged_superchunks.len(),
        1,
        "{:#?}",
        r.damaged_superchunks
    );
    assert!(r.corrupt_chunks.is_empty());
    assert_eq!(r.exit_code(), 4);
}

#[test]
fn a_truncated_device_reports_missing_chunks_of_every_file_past_the_end() {
    let s = Store::new();
    populate(&s);
    let (_, last) = s.superchunk(true);
    std::fs::OpenOptions::new()
        .write(true)
        .open(s.image())
        .unwrap()
        .set_len(last as u64 + 100)
        .unwrap();
    let r = s.fsck(false, None);
    assert!(!r.corrupt_chunks.is_empty());
    assert!(r.corrupt_chunks.iter().all(|c| c.problem == "missing"));
    let orphans: Vec<_> = r
        .corrupt_chunks
        .iter()
        .filter(|c| c.files.is_empty())
        .collect();
    assert!(orphans.is_empty(), "{orphans:#?}");
    assert_eq!(r.exit_code(), 4);
}

#[test]
fn deleted_index_rows_are_rebuilt_from_superchunk_headers() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let n = s.db().execute("DELETE FROM chunks WHERE rowid IN (SELECT rowid FROM chunks LIMIT 5)", []).unwrap_or_else(|_| {
        s.db().execute("DELETE FROM chunks WHERE hash IN (SELECT hash FROM chunks ORDER BY hash LIMIT 5)", []).unwrap()
    });
    assert_eq!(n, 5);
    let r = s.fsck(false, None);
    assert!(
        r.corrupt_chunks
            .iter()
            .filter(|c| c.problem == "missing")
            .count()
            >= 5
    );
    assert_eq!(r.unindexed_chunks.len(), 5);
    let r = s.fsck(true, None);
    assert_eq!(r.exit_code(), 1, "{r:#?}");
    assert!(r.repairs.iter().any(|f| f.contains("indexed chunk")));
    assert_reads_back(&s, &a, &b);
}

#[test]
fn wrong_refcounts_are_found_and_set_right() {
    let s = Store::new();
    populate(&s);
    s.db().execute("UPDATE chunks SET refcount = refcount + 7 WHERE hash IN (SELECT hash FROM chunks LIMIT 3)", []).unwrap();
    s.db()
        .execute(
            "UPDATE lists SET refcount = 0 WHERE hash IN (SELECT hash FROM lists LIMIT 1)",
            [],
        )
        .unwrap();
    let r = s.fsck(false, None);
    assert_eq!(r.refcount_errors.len(), 4, "{:#?}", r.refcount_errors);
    let r = s.fsck(true, None);
    assert_eq!(r.exit_code(), 1);
    assert_eq!(s.fsck(false, None).exit_code(), 0);
}

#[test]
fn a_free_extent_overlapping_a_superchunk_is_found_and_removed() {
    let s = Store::new();
    populate(&s);
    let (_, start) = s.superchunk(false);
    s.db()
        .execute(
            "INSERT OR REPLACE INTO free_extents(start, len) VALUES (?1, 4096)",
            [start],
        )
        .unwrap();
    let r = s.fsck(false, None);
    assert!(!r.space_errors.is_empty());
    let r = s.fsck(true, None);
    assert_eq!(r.exit_code(), 1, "{r:#?}");
    assert!(s.fsck(false, None).space_errors.is_empty());
    // And the store still works: new data does not land on the superchunk.
    let fs = s.open();
    write_file(&fs, Ino::ROOT, "new", &random_bytes(9, 50_000));
    fs.close().unwrap();
    assert_eq!(s.fsck(false, None).exit_code(), 0);
}

#[test]
fn leaked_space_is_given_back_to_the_free_map() {
    let s = Store::new();
    populate(&s);
    s.db()
        .execute(
            "DELETE FROM free_extents WHERE start = (SELECT MAX(start) FROM free_extents)",
            [],
        )
        .unwrap();
    let r = s.fsck(false, None);
    assert!(
        r.space_errors
            .iter()
            .any(|e| e.contains("unaccounted") || e.contains("leaked")),
        "{:#?}",
        r.space_errors
    );
    assert_eq!(s.fsck(true, None).exit_code(), 1);
    assert_eq!(s.fsck(false, None).exit_code(), 0);
}

#[test]
fn repair_from_a_good_copy_makes_every_affected_file_read_back_exactly() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("a copy"), &a).unwrap();
    std::fs::write(good.path().join("b copy"), &b).unwrap();
    for nth in [1, 5, 9] {
        let (_, at, len) = s.chunk_of(nth, None);
        s.flip(at + len / 2);
    }
    let r = s.fsck(false, None);
    assert_eq!(r.corrupt_chunks.len(), 3);
    let r = s.fsck(true, Some(good.path()));
    assert!(r.corrupt_chunks.is_empty(), "{:#?}", r.corrupt_chunks);
    assert_eq!(
        r.repairs
            .iter()
            .filter(|f| f.contains("restored chunk"))
            .count(),
        3
    );
    assert_reads_back(&s, &a, &b);
}

#[test]
fn damage_that_no_copy_can_restore_stays_reported() {
    let s = Store::new();
    populate(&s);
    let (hash, at, len) = s.chunk_of(2, None);
    s.flip(at + len / 2);
    let empty = tempfile::tempdir().unwrap();
    let r = s.fsck(true, Some(empty.path()));
    assert!(r.corrupt_chunks.iter().any(|c| c.hash == hash));
    assert_eq!(r.exit_code(), 4);
}

#[test]
fn fsck_names_old_revisions_that_use_a_damaged_chunk() {
    let s = Store::new();
    let fs = s.open();
    let v1 = random_bytes(3, 60_000);
    let ino = write_file(&fs, Ino::ROOT, "f", &v1);
    fs.sync_all().unwrap();
    // The second revision replaces the whole content: v1's chunks live on only in history.
    // (Committed first: the states of one group commit are one revision.)
    let h = fs.open(ino, libc::O_RDWR).unwrap();
    fs.write(ino, h.fh, 0, &random_bytes(4, 60_000)).unwrap();
    fs.release(ino, h.fh).unwrap();
    fs.close().unwrap();
    let (hash, at, len) = s.chunk_of(0, None);
    s.flip(at + len / 2);
    let r = s.fsck(false, None);
    let c = r.corrupt_chunks.iter().find(|c| c.hash == hash).unwrap();
    assert!(c.files.iter().all(|f| f.path == "/f"));
    assert!(c.files.iter().any(|f| f.seq_to.is_some()), "{:#?}", c.files);
}

#[test]
fn fsck_refuses_a_store_that_is_open() {
    let s = Store::new();
    populate(&s);
    let _fs = s.open();
    let e = offline::run(&s.path(), &FsckOptions::default(), &Silent).unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
}

#[test]
fn a_file_with_a_damaged_chunk_can_still_be_rewritten_whole() {
    let s = Store::new();
    populate(&s);
    let (_, at, len) = s.chunk_of(3, Some(1));
    s.flip(at + len / 2);
    let fs = s.open();
    let dir = fs.lookup(Ino::ROOT, b"docs").unwrap().ino;
    let ino = fs.lookup(dir, b"a.txt").unwrap().ino;
    let h = fs.open(ino, libc::O_RDWR | libc::O_TRUNC).unwrap();
    let fresh = text(7, 150_000);
    fs.write(ino, h.fh, 0, &fresh).unwrap();
    fs.release(ino, h.fh).unwrap();
    assert_eq!(read_file(&fs, ino), fresh);
}

#[test]
fn a_read_only_open_changes_nothing_in_the_store() {
    let s = Store::new();
    let (a, _) = populate(&s);
    let before = std::fs::read(s.path().join("meta.db")).unwrap();
    let wal = |p: &Path| std::fs::read(p.join("meta.db-wal")).unwrap_or_default();
    let wal_before = wal(&s.path());
    let fs = Fs::open(
        &s.path(),
        FsOptions {
            read_only: true,
            ..tiny_opts()
        },
    )
    .unwrap();
    let dir = fs.lookup(Ino::ROOT, b"docs").unwrap().ino;
    assert_eq!(read_file(&fs, fs.lookup(dir, b"a.txt").unwrap().ino), a);
    assert_eq!(
        fs.mkdir(Ino::ROOT, b"x", 0o755, 0, 0).unwrap_err().errno(),
        libc::EROFS
    );
    fs.close().unwrap();
    assert!(std::fs::read(s.path().join("meta.db")).unwrap() == before);
    assert!(wal(&s.path()) == wal_before);
}

#[test]
fn a_lost_superchunk_row_is_recovered_from_the_device_by_repair() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let db = s.db();
    let (id, _) = s.superchunk(false);
    db.execute("DELETE FROM chunks WHERE superchunk = ?1", [id])
        .unwrap();
    db.execute("DELETE FROM superchunks WHERE id = ?1", [id])
        .unwrap();
    drop(db);
    let r = s.fsck(false, None);
    assert!(
        r.corrupt_chunks.iter().any(|c| c.problem == "missing"),
        "{r:#?}"
    );
    let r = s.fsck(true, None);
    assert_eq!(r.exit_code(), 1, "{r:#?}");
    assert!(
        r.repairs.iter().any(|f| f.contains("recovered superchunk")),
        "{:#?}",
        r.repairs
    );
    assert_eq!(s.fsck(false, None).exit_code(), 0);
    assert_reads_back(&s, &a, &b);
}

#[test]
fn a_store_healed_from_a_good_copy_checks_clean_afterwards() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("a copy"), &a).unwrap();
    std::fs::write(good.path().join("b copy"), &b).unwrap();
    let (_, at, len) = s.chunk_of(3, Some(1));
    s.flip(at + len / 2);
    let r = s.fsck(false, Some(good.path()));
    assert_eq!(r.exit_code(), 1, "{r:#?}");
    let r = s.fsck(false, None);
    assert_eq!(r.exit_code(), 0, "{r:#?}");
    assert_reads_back(&s, &a, &b);
}

#[test]
fn a_damaged_header_whose_chunks_verify_is_moved_out_by_repair() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let (id, start) = s.superchunk(false);
    s.flip(start as u64 + 20);
    assert_eq!(s.fsck(false, None).exit_code(), 4);
    let r = s.fsck(true, None);
    assert_eq!(r.exit_code(), 1, "{r:#?}");
    let r = s.fsck(false, None);
    assert_eq!(r.exit_code(), 0, "{r:#?}");
    let left: i64 = s
        .db()
        .query_row(
            "SELECT COUNT(*) FROM superchunks WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the damaged superchunk is freed");
    assert_reads_back(&s, &a, &b);
}

#[test]
fn a_heal_by_rewrite_leaves_a_store_that_checks_clean() {
    let s = Store::new();
    let (a, b) = populate(&s);
    damage_a_and_rewrite_it(&s, &a);
    let r = s.fsck(false, None);
    assert_eq!(r.exit_code(), 0, "{r:#?}");
    assert_reads_back(&s, &a, &b);
}

fn flip_byte(image: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x55;
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn a_chunk_no_copy_restores_stays_reported_by_file_while_its_neighbours_move_out() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("a copy"), &a).unwrap();
    let (hash, at, len) = s.chunk_of(3, Some(1));
    s.flip(at + len / 2);
    let empty = tempfile::tempdir().unwrap();
    let r = s.fsck(true, Some(empty.path()));
    assert_eq!(r.exit_code(), 4, "{r:#?}");
    assert!(
        r.repairs
            .iter()
            .any(|f| f.contains("keeps 1 damaged chunks")),
        "{:#?}",
        r.repairs
    );
    for r in [r, s.fsck(false, None)] {
        let c = r.corrupt_chunks.iter().find(|c| c.hash == hash).unwrap();
        assert!(c.files.iter().any(|f| f.path == "/docs/a.txt"), "{c:#?}");
        assert_eq!(r.exit_code(), 4);
    }
    {
        let fs = s.open();
        assert_eq!(
            read_file(&fs, fs.lookup(Ino::ROOT, b"b.bin").unwrap().ino),
            b
        );
        fs.close().unwrap();
    }
    // The copy turns up later: the store heals and is clean.
    assert_eq!(s.fsck(false, Some(good.path())).exit_code(), 1);
    assert_eq!(s.fsck(false, None).exit_code(), 0);
    assert_reads_back(&s, &a, &b);
}

#[test]
fn a_damaged_header_over_a_damaged_chunk_keeps_it_until_a_good_copy_comes() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("a copy"), &a).unwrap();
    std::fs::write(good.path().join("b copy"), &b).unwrap();
    let (id, start) = s.superchunk(false);
    let (hash, at, len) = s.chunk_of(0, None);
    assert!(
        at >= start as u64,
        "the first chunk lives in the first superchunk"
    );
    s.flip(start as u64 + 20);
    s.flip(at + len / 2);
    let r = s.fsck(true, None);
    assert_eq!(r.exit_code(), 4, "{r:#?}");
    assert!(
        r.corrupt_chunks
            .iter()
            .any(|c| c.hash == hash && !c.files.is_empty())
    );
    let kept: i64 = s
        .db()
        .query_row(
            "SELECT COUNT(*) FROM superchunks WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        kept, 1,
        "the superchunk keeps the chunk nothing could restore"
    );
    let r = s.fsck(false, Some(good.path()));
    assert_eq!(r.exit_code(), 1, "{r:#?}");
    assert_eq!(s.fsck(false, None).exit_code(), 0);
    assert_reads_back(&s, &a, &b);
}

/// `chunkfs fsck ARGS` on a store: exit code, and stdout followed by stderr.
fn cli_fsck(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_chunkfs"))
        .args(args)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (
        o.status.code().unwrap_or(-1),
        out + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn fsck_suggests_only_what_can_repair_the_damage_left() {
    let s = Store::new();
    let (a, _) = populate(&s);
    let (_, at, len) = s.chunk_of(3, Some(1));
    s.flip(at + len / 2);
    let store = s.path();
    let fsck = "fsck".as_ref();
    let (code, out) = cli_fsck(&[fsck, store.as_os_str()]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("--repair-from DIR") && out.contains("/docs/a.txt"),
        "{out}"
    );
    let plain_repair =
        |out: &str| out.matches("--repair").count() > out.matches("--repair-from").count();
    assert!(!plain_repair(&out), "--repair cannot restore data: {out}");
    let empty = tempfile::tempdir().unwrap();
    let (code, out) = cli_fsck(&[
        fsck,
        store.as_os_str(),
        "--repair".as_ref(),
        "--repair-from".as_ref(),
        empty.path().as_os_str(),
    ]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("held no good copy") && out.contains("/docs/a.txt"),
        "{out}"
    );
    assert!(!plain_repair(&out), "{out}");
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("a"), &a).unwrap();
    let (code, out) = cli_fsck(&[
        fsck,
        store.as_os_str(),
        "--repair-from".as_ref(),
        good.path().as_os_str(),
    ]);
    assert_eq!(code, 1, "{out}");
    // A damaged header over intact chunks is what --repair fixes, and fsck says so.
    let (_, start) = s.superchunk(false);
    s.flip(start as u64 + 20);
    let (code, out) = cli_fsck(&[fsck, store.as_os_str()]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("--repair` fixes 1 damaged superchunks"),
        "{out}"
    );
    assert!(!out.contains("--repair-from"), "no data is damaged: {out}");
    let (code, out) = cli_fsck(&[fsck, store.as_os_str(), "--repair".as_ref()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(cli_fsck(&[fsck, store.as_os_str()]).0, 0);
}

#[test]
fn a_superchunk_written_over_another_is_healed_without_freeing_the_live_one() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("a copy"), &a).unwrap();
    std::fs::write(good.path().join("b copy"), &b).unwrap();
    let (_, id_b) = s.write_one_superchunk_over_another();
    let r = s.fsck(false, None);
    assert_eq!(r.exit_code(), 4);
    assert!(
        r.damaged_superchunks
            .iter()
            .any(|d| d.contains(&format!("holds the header of superchunk {id_b}"))),
        "{:#?}",
        r.damaged_superchunks
    );
    assert!(!r.corrupt_chunks.is_empty());
    let r = s.fsck(true, Some(good.path()));
    assert_eq!(r.exit_code(), 1, "{r:#?}");
    assert_eq!(s.fsck(false, None).exit_code(), 0);
    assert_reads_back(&s, &a, &b);
    // New data does not land on B.
    let fs = s.open();
    write_file(&fs, Ino::ROOT, "new", &random_bytes(9, 200_000));
    fs.close().unwrap();
    assert_eq!(s.fsck(false, None).exit_code(), 0);
    assert_reads_back(&s, &a, &b);
}

#[test]
fn a_heal_by_rewrite_never_frees_a_superchunk_written_over_the_damaged_one() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let (id_a, id_b) = s.write_one_superchunk_over_another();
    read_everything_then_write_it_again(&s, &a, &b);
    let r = s.fsck(false, None);
    assert!(r.corrupt_chunks.is_empty(), "{r:#?}");
    // A and B still overlap (a space error until A goes), but none of B is free.
    let b_free: i64 = s
        .db()
        .query_row(
            "SELECT COUNT(*) FROM free_extents f JOIN superchunks s ON s.id = ?1
             WHERE f.start < s.start + s.len AND s.start < f.start + f.len",
            [id_b],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(b_free, 0, "B's space stays allocated");
    let damaged = |id: i64| {
        r.damaged_superchunks
            .iter()
            .any(|d| d.starts_with(&format!("superchunk {id} ")))
    };
    assert!(damaged(id_a) && !damaged(id_b), "{r:#?}");
    // Offline repair frees A's extent, less the part B lives in.
    assert_eq!(s.fsck(true, None).exit_code(), 1);
    assert_eq!(s.fsck(false, None).exit_code(), 0);
    assert_reads_back(&s, &a, &b);
}

/// Read both files `populate` wrote in small pieces, so that each damaged chunk fails a read
/// of its own and is remembered (a read stops at its first damaged chunk), then write their
/// bytes again as new files: a heal by rewrite of every damaged chunk.
fn read_everything_then_write_it_again(s: &Store, a: &[u8], b: &[u8]) {
    let fs = s.open();
    let docs = fs.lookup(Ino::ROOT, b"docs").unwrap().ino;
    for (parent, name, data) in [(docs, "a.txt", a), (Ino::ROOT, "b.bin", b)] {
        let ino = fs.lookup(parent, name.as_bytes()).unwrap().ino;
        let h = fs.open(ino, libc::O_RDONLY).unwrap();
        for off in (0..data.len() as u64).step_by(128) {
            let _ = fs.read(ino, h.fh, off, 128);
        }
        fs.release(ino, h.fh).unwrap();
        write_file(&fs, Ino::ROOT, &format!("again {name}"), data);
    }
    fs.close().unwrap();
}

#[test]
fn a_superchunk_whose_every_chunk_is_healed_by_rewrite_is_freed() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let (id, _) = s.superchunk(false);
    let spots: Vec<i64> = {
        let db = s.db();
        let mut st = db
            .prepare(
                "SELECT s.start + c.offset + c.stored_len / 2 FROM chunks c
                 JOIN superchunks s ON s.id = c.superchunk WHERE s.id = ?1",
            )
            .unwrap();
        st.query_map([id], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(spots.len() > 1);
    for at in spots {
        s.flip(at as u64);
    }
    read_everything_then_write_it_again(&s, &a, &b);
    let r = s.fsck(false, None);
    assert_eq!(r.exit_code(), 0, "{r:#?}");
    assert_reads_back(&s, &a, &b);
}
