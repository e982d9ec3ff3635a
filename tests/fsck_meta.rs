//! fsck against damage to the metadata database itself: garbage pages, a dropped table, an
//! empty file. Each is reported as database damage (exit 4) with what to do; opening the
//! store says the same; `--rebuild-metadata` brings the store back from its backups and the
//! device, or from the device alone.

mod common;

use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions};
use chunkfs::fsck::offline::{self, FsckOptions};
use chunkfs::fsck::{Report, Silent};
use common::*;
use rusqlite::Connection;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_chunkfs");

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
    fn open(&self) -> Result<Fs, chunkfs::fs::FsError> {
        Fs::open(&self.path(), FsOptions { ..tiny_opts() })
    }
    fn fsck_with(&self, o: FsckOptions) -> Report {
        offline::run(&self.path(), &o, &Silent).unwrap()
    }
    fn fsck(&self) -> Report {
        self.fsck_with(FsckOptions::default())
    }
    fn rebuild(&self) -> Report {
        self.fsck_with(FsckOptions {
            rebuild_metadata: true,
            ..Default::default()
        })
    }
    /// Rebuild, which must end clean or repaired, saying `how` (when given) among its
    /// repairs; then a check must find the store clean. That check's report.
    fn rebuild_clean(&self, how: Option<&str>) -> Report {
        let r = self.rebuild();
        assert!(r.exit_code() <= 1, "{r:#?}");
        if let Some(how) = how {
            assert!(
                r.repairs.iter().any(|l| l.contains(how)),
                "{:#?}",
                r.repairs
            );
        }
        let again = self.fsck();
        assert_eq!(again.exit_code(), 0, "{again:#?}");
        again
    }
    /// `chunkfs fsck ARGS STORE`: exit code and stdout + stderr.
    fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(BIN)
            .arg("fsck")
            .args(args)
            .arg(self.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
    /// Overwrite `len` bytes of meta.db at `at` with garbage.
    fn garble(&self, at: u64, len: usize) {
        use std::os::unix::fs::FileExt;
        assert!(
            !self.path().join("meta.db-wal").exists()
                || std::fs::metadata(self.path().join("meta.db-wal"))
                    .unwrap()
                    .len()
                    == 0,
            "the WAL must be checkpointed for the damage to land in meta.db"
        );
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.meta())
            .unwrap();
        f.write_all_at(&random_bytes(99, len), at).unwrap();
    }
    fn remove_backups(&self) {
        for n in 1..=3 {
            let _ = std::fs::remove_file(self.path().join(format!("meta.db.bak.{n}")));
        }
    }
}

fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = ["chunk ", "store ", "fsck ", "meta\n", "page ", "table "];
    let mut out = Vec::with_capacity(len + 8);
    for b in random_bytes(seed, len) {
        out.extend_from_slice(words[(b % 6) as usize].as_bytes());
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

/// Two files (one in a directory) and a snapshot; returns their contents.
fn populate(s: &Store) -> (Vec<u8>, Vec<u8>) {
    let fs = s.open().unwrap();
    let a = text(1, 300_000);
    let b = random_bytes(2, 150_000);
    let dir = fs.mkdir(Ino::ROOT, b"docs", 0o755, 0, 0).unwrap().ino;
    write_file(&fs, dir, "a.txt", &a);
    write_file(&fs, Ino::ROOT, "b.bin", &b);
    fs.snapshot_create(&chunkfs::fs::Caller::root(), "first", "/")
        .unwrap();
    fs.close().unwrap();
    (a, b)
}

fn assert_reads_back(s: &Store, a: &[u8], b: &[u8]) {
    let fs = s.open().unwrap();
    let dir = fs.lookup(Ino::ROOT, b"docs").unwrap().ino;
    assert_eq!(read_file(&fs, fs.lookup(dir, b"a.txt").unwrap().ino), a);
    assert_eq!(
        read_file(&fs, fs.lookup(Ino::ROOT, b"b.bin").unwrap().ino),
        b
    );
    fs.close().unwrap();
}

fn page_size(s: &Store) -> u64 {
    s.db()
        .pragma_query_value(None, "page_size", |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

#[test]
fn garbage_pages_in_meta_db_are_database_damage_with_exit_4() {
    let s = Store::new();
    populate(&s);
    let at = 2 * page_size(&s);
    s.garble(at, 8192);
    let r = s.fsck();
    assert_eq!(r.exit_code(), 4, "{r:#?}");
    assert!(
        r.database_errors
            .iter()
            .any(|e| e.contains("integrity_check")),
        "{r:#?}"
    );
    // The command says what is wrong and what to do; --repair does not pretend to fix it.
    for args in [&[][..], &["--repair"][..]] {
        let (code, out) = s.cli(args);
        assert_eq!(code, 4, "{out}");
        assert!(out.contains("damaged database"), "{out}");
        assert!(out.contains("--rebuild-metadata"), "{out}");
    }
    // Opening the store refuses it up front, instead of failing at the first write and
    // pointing at an fsck.
    let msg = s
        .open()
        .err()
        .expect("a store with garbage pages opened")
        .to_string();
    assert!(msg.contains("damaged"), "{msg}");
    assert!(msg.contains("--rebuild-metadata"), "{msg}");
    // --quick runs SQLite's quick_check instead, and still finds it.
    let q = s.fsck_with(FsckOptions {
        quick: true,
        ..Default::default()
    });
    assert_eq!(q.exit_code(), 4, "{q:#?}");
    assert!(q.database_errors.iter().any(|e| e.contains("quick_check")));
}

#[test]
fn a_dropped_snapshots_table_is_database_damage_with_exit_4() {
    let s = Store::new();
    populate(&s);
    s.db().execute_batch("DROP TABLE snapshots").unwrap();
    let r = s.fsck();
    assert_eq!(r.exit_code(), 4, "{r:#?}");
    assert!(
        r.database_errors
            .iter()
            .any(|e| e.contains("table snapshots is missing")),
        "{r:#?}"
    );
    // Opening refuses it up front, naming the damage and the fix, instead of failing at
    // the first write.
    let e = s
        .open()
        .err()
        .expect("a store without its snapshots table opened");
    let msg = e.to_string();
    assert!(msg.contains("table snapshots is missing"), "{msg}");
    assert!(msg.contains("--rebuild-metadata"), "{msg}");
}

#[test]
fn an_empty_meta_db_is_named_as_such_by_open_and_by_fsck() {
    let s = Store::new();
    populate(&s);
    std::fs::write(s.meta(), b"").unwrap();
    let msg = s.open().err().expect("an empty meta.db opened").to_string();
    assert!(msg.contains("is empty (0 bytes)"), "{msg}");
    assert!(msg.contains("--rebuild-metadata"), "{msg}");
    assert!(!msg.contains("names no device"), "{msg}");
    let (code, out) = s.cli(&[]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("is empty (0 bytes)"), "{out}");
    assert!(out.contains("--rebuild-metadata"), "{out}");
    // Nothing wrote a fresh schema into it.
    assert_eq!(std::fs::metadata(s.meta()).unwrap().len(), 0);
}

#[test]
fn a_file_that_is_not_sqlite_is_named_as_such() {
    let s = Store::new();
    populate(&s);
    std::fs::write(s.meta(), text(5, 20_000)).unwrap();
    let msg = s
        .open()
        .err()
        .expect("a text file opened as meta.db")
        .to_string();
    assert!(msg.contains("is not a SQLite database"), "{msg}");
    let r = s.fsck();
    assert_eq!(r.exit_code(), 4, "{r:#?}");
}

#[test]
fn closing_the_store_leaves_a_backup_that_checks_clean() {
    let s = Store::new();
    populate(&s);
    let b1 = s.path().join("meta.db.bak.1");
    assert!(b1.exists(), "no backup after close");
    let c = Connection::open(&b1).unwrap();
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'snapshots'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1);
    // A close with nothing committed since takes no new backup.
    let before = std::fs::metadata(&b1).unwrap().modified().unwrap();
    s.open().unwrap().close().unwrap();
    assert!(!s.path().join("meta.db.bak.2").exists());
    assert_eq!(std::fs::metadata(&b1).unwrap().modified().unwrap(), before);
}

#[test]
fn rebuild_metadata_from_a_backup_and_the_device_makes_a_damaged_store_clean() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let at = 2 * page_size(&s);
    s.garble(at, 8192);
    assert_eq!(s.fsck().exit_code(), 4);
    s.rebuild_clean(Some("meta.db.bak.1"));
    assert_reads_back(&s, &a, &b);
    // The damaged database was kept aside, not deleted.
    let aside = std::fs::read_dir(s.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("meta.db.damaged-")
        });
    assert!(aside);
    // The snapshot came back with the namespace.
    let fs = s.open().unwrap();
    assert!(
        fs.snapshot_list(&chunkfs::fs::Caller::root())
            .unwrap()
            .iter()
            .any(|sn| sn.name == "first")
    );
    fs.close().unwrap();
}

#[test]
fn rebuild_metadata_recovers_deleted_chunk_and_superchunk_rows_from_the_device() {
    let s = Store::new();
    let (a, b) = populate(&s);
    s.db()
        .execute_batch("DELETE FROM chunks; DELETE FROM superchunks; DELETE FROM free_extents;")
        .unwrap();
    assert_eq!(s.fsck().exit_code(), 4);
    let again = s.rebuild_clean(Some("scanned the device"));
    assert!(again.chunks_checked > 50);
    assert_reads_back(&s, &a, &b);
}

#[test]
fn rebuild_metadata_names_the_files_whose_chunks_the_device_lacks() {
    let s = Store::new();
    let (_a, _b) = populate(&s);
    // Zero the device past the first superchunk: what lived there is gone for good.
    let (start, len): (i64, i64) = s
        .db()
        .query_row(
            "SELECT start, len FROM superchunks ORDER BY start DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(s.path().join("data.img"))
            .unwrap();
        f.write_all_at(&vec![0u8; len as usize], start as u64)
            .unwrap();
    }
    s.db().execute_batch("DELETE FROM chunks").unwrap();
    let r = s.rebuild();
    assert_eq!(r.exit_code(), 4, "{r:#?}");
    let missing: Vec<&str> = r
        .corrupt_chunks
        .iter()
        .filter(|c| c.problem == "missing")
        .flat_map(|c| c.files.iter().map(|f| f.path.as_str()))
        .collect();
    assert!(!missing.is_empty(), "{r:#?}");
    assert!(
        missing
            .iter()
            .all(|p| p.ends_with("a.txt") || p.ends_with("b.bin")),
        "{missing:?}"
    );
}

#[test]
fn rebuild_metadata_without_any_backup_keeps_the_device_data_under_lost_found() {
    let s = Store::new();
    let (a, b) = populate(&s);
    s.remove_backups();
    std::fs::write(s.meta(), b"").unwrap();
    s.rebuild_clean(Some("no usable backup"));
    let fs = s.open().unwrap();
    assert!(fs.lookup(Ino::ROOT, b"docs").is_err());
    let lf = fs.lookup(Ino::ROOT, b"lost+found").unwrap().ino;
    let mut all = Vec::new();
    for e in fs.readdir(lf, 0, 1000).unwrap() {
        if e.name != b"." && e.name != b".." {
            all.extend(read_file(&fs, e.ino));
        }
    }
    fs.close().unwrap();
    // Every byte written is somewhere in lost+found (in superchunk order, so a file's run of
    // chunks shows up whole).
    let found = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(found(&b[..4096]), "the start of b.bin is not in lost+found");
    assert!(
        found(&a[a.len() - 4096..]),
        "the end of a.txt is not in lost+found"
    );
    assert!(all.len() >= a.len() + b.len());
}

#[test]
fn rebuild_metadata_from_an_older_backup_keeps_newer_data_under_lost_found() {
    let s = Store::new();
    let (a, b) = populate(&s);
    let old = std::fs::read(s.path().join("meta.db.bak.1")).unwrap();
    let c = random_bytes(3, 120_000);
    let fs = s.open().unwrap();
    write_file(&fs, Ino::ROOT, "c.bin", &c);
    fs.close().unwrap();
    // Only the backup from before c.bin was written is left.
    s.remove_backups();
    std::fs::write(s.path().join("meta.db.bak.1"), old).unwrap();
    s.garble(2 * page_size(&s), 8192);
    s.rebuild_clean(None);
    assert_reads_back(&s, &a, &b);
    let fs = s.open().unwrap();
    assert!(fs.lookup(Ino::ROOT, b"c.bin").is_err());
    let lf = fs.lookup(Ino::ROOT, b"lost+found").unwrap().ino;
    let mut all = Vec::new();
    for e in fs.readdir(lf, 0, 1000).unwrap() {
        if e.name != b"." && e.name != b".." {
            all.extend(read_file(&fs, e.ino));
        }
    }
    fs.close().unwrap();
    assert!(
        all.windows(4096).any(|w| w == &c[50_000..54_096]),
        "the data written after the backup is not under lost+found"
    );
}

#[test]
fn repair_saves_the_metadata_as_it_was_before_changing_it() {
    let s = Store::new();
    populate(&s);
    s.remove_backups();
    s.db()
        .execute(
            "UPDATE chunks SET refcount = refcount + 7 WHERE hash = (SELECT MIN(hash) FROM chunks)",
            [],
        )
        .unwrap();
    let r = s.fsck_with(FsckOptions {
        repair: true,
        ..Default::default()
    });
    assert_eq!(r.exit_code(), 1, "{r:#?}");
    assert!(
        r.repairs[0].contains("saved the metadata as it was before repairing"),
        "{:#?}",
        r.repairs
    );
    // The backup holds the state before the repair: the wrong refcount.
    let bak = Connection::open(s.path().join("meta.db.bak.1")).unwrap();
    let wrong: i64 = bak
        .query_row(
            "SELECT refcount FROM chunks WHERE hash = (SELECT MIN(hash) FROM chunks)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(wrong >= 8, "refcount {wrong}");
    // A clean check changes nothing and saves nothing.
    s.remove_backups();
    assert_eq!(s.fsck().exit_code(), 0);
    assert!(!s.path().join("meta.db.bak.1").exists());
}

#[test]
fn mounting_a_store_with_a_damaged_database_fails_naming_the_damage_and_the_rebuild() {
    let s = Store::new();
    populate(&s);
    s.garble(2 * page_size(&s), 8192);
    let mnt = s.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new(BIN)
        .arg("mount")
        .arg(s.path())
        .arg(&mnt)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mounted a damaged store: {err}");
    assert!(err.contains("is damaged"), "{err}");
    assert!(
        err.contains(&format!("--rebuild-metadata {}", s.path().display())),
        "{err}"
    );
    // And the fsck it points at agrees.
    assert_eq!(s.cli(&[]).0, 4);
}

#[test]
fn garbage_anywhere_in_meta_db_is_found_by_fsck() {
    for part in [3u64, 2, 1] {
        let s = Store::new();
        populate(&s);
        let len = std::fs::metadata(s.meta()).unwrap().len();
        let ps = page_size(&s);
        // A page-aligned 8 KiB run at 1/3, 1/2 and the end of the file.
        let at = (len / part / ps * ps).min(len - 2 * ps);
        s.garble(at, 8192);
        let r = s.fsck();
        assert_eq!(r.exit_code(), 4, "garbage at {at} of {len}: {r:#?}");
        assert!(!r.database_errors.is_empty());
    }
}

#[test]
fn rebuild_metadata_brings_back_a_store_whose_meta_db_is_empty_from_its_backup() {
    let s = Store::new();
    let (a, b) = populate(&s);
    std::fs::write(s.meta(), b"").unwrap();
    s.rebuild_clean(None);
    assert_reads_back(&s, &a, &b);
}
