//! statfs through the core API: its figures follow writes, deletes and garbage collection as
//! they happen, `stats` reports the same free space, and the counters behind statfs equal a
//! recount at every step (also for a store made before they existed).

mod common;

use chunkfs::fs::{Fs, Ino, StatFs};
use chunkfs::gc::{GcReport, Progress};
use chunkfs::meta::counters;
use common::*;
use std::sync::Mutex;

/// A tiny store keeping no history window, so deleted files are collectable at once.
fn store(capacity: u64) -> TestStore {
    TestStore::with_window(capacity, 0)
}

fn free(s: &StatFs) -> u64 {
    s.bfree * s.bsize as u64
}

/// statfs and `stats` give the same free figure, and the counters equal a recount.
fn assert_agree(fs: &Fs, when: &str) {
    let st = fs.stats().unwrap();
    let sf = fs.statfs().unwrap();
    assert_eq!(st.free_bytes, free(&sf), "{when}: stats {st:?}");
    assert_eq!(
        st.free_bytes,
        st.unallocated_bytes + st.dead_bytes,
        "{when}"
    );
    assert_eq!(sf.bavail, sf.bfree, "{when}");
    assert_eq!(fs.check_space().unwrap(), Vec::<String>::new(), "{when}");
}

#[test]
fn statfs_and_stats_agree_on_free_space_after_deleting_files() {
    // The case of issue 11: `df` counted what a GC pass would free, `stats` did not.
    let s = store(64 << 20);
    let fs = s.open();
    for i in 0..6 {
        write_file(&fs, Ino::ROOT, &format!("f{i}"), &random_bytes(i, 300_000));
    }
    fs.sync_all().unwrap();
    assert_agree(&fs, "written");
    for i in 0..6 {
        fs.unlink(Ino::ROOT, format!("f{i}").as_bytes()).unwrap();
    }
    fs.sync_all().unwrap();
    let st = fs.stats().unwrap();
    assert!(st.reclaimable_bytes > 1_500_000, "{st:?}");
    assert_agree(&fs, "deleted, not yet collected");
    fs.gc(&chunkfs::gc::Silent).unwrap();
    assert_agree(&fs, "collected");
}

#[test]
fn statfs_free_space_and_inodes_follow_writes_deletes_and_gc() {
    let s = store(64 << 20);
    let fs = s.open();
    let s0 = fs.statfs().unwrap();
    for i in 0..8 {
        write_file(&fs, Ino::ROOT, &format!("f{i}"), &random_bytes(i, 300_000));
    }
    fs.sync_all().unwrap();
    let s1 = fs.statfs().unwrap();
    assert_eq!(s1.files, s0.files + 8, "eight inodes more");
    let used = free(&s0) - free(&s1);
    assert!(
        (2_400_000..3_200_000).contains(&used),
        "2.4 MB of random data took {used} bytes"
    );
    // Deleting does not free anything until GC prunes the files: statfs counts only what
    // is already garbage, and the files are not yet.
    for i in 0..8 {
        fs.unlink(Ino::ROOT, format!("f{i}").as_bytes()).unwrap();
    }
    fs.sync_all().unwrap();
    let s2 = fs.statfs().unwrap();
    assert_eq!(free(&s2), free(&s1));
    assert_eq!(fs.stats().unwrap().dead_bytes, 0);
    // During the pass, once pruning is done, the freed superchunks count as free before a
    // single extent is returned: the free figure reaches its final value early.
    let seen = Seen {
        fs: &fs,
        at: Mutex::new(Vec::new()),
    };
    fs.gc(&seen).unwrap();
    let s3 = fs.statfs().unwrap();
    assert_eq!(s3.files, s0.files, "the inodes are forgotten");
    assert!(
        free(&s3) + 64 * 1024 >= free(&s0),
        "all but a little came back: {} then {}",
        free(&s0),
        free(&s3)
    );
    let at = seen.at.into_inner().unwrap();
    let swept = at
        .iter()
        .find(|(phase, ..)| phase == "sweeping chunks")
        .expect("the pass sweeps");
    assert!(
        swept.2 > 2_000_000 && swept.1 + swept.2 + 64 * 1024 >= free(&s3),
        "after pruning: {swept:?}, at the end {}",
        free(&s3)
    );
    assert_eq!(fs.stats().unwrap().dead_bytes, 0, "nothing left to collect");
    assert_agree(&fs, "after gc");
}

/// Free space (unallocated, dead) at every step of a pass, with the checks of `assert_agree`.
struct Seen<'a> {
    fs: &'a Fs,
    at: Mutex<Vec<(String, u64, u64)>>,
}

impl Progress for Seen<'_> {
    fn update(&self, phase: &str, _: &GcReport) {
        assert_agree(self.fs, phase);
        let st = self.fs.stats().unwrap();
        self.at
            .lock()
            .unwrap()
            .push((phase.to_string(), st.unallocated_bytes, st.dead_bytes));
    }
}

#[test]
fn overwriting_a_file_frees_its_old_content_once_history_is_pruned() {
    let s = store(64 << 20);
    let fs = s.open();
    write_file(&fs, Ino::ROOT, "a", &random_bytes(1, 400_000));
    fs.sync_all().unwrap();
    let before = free(&fs.statfs().unwrap());
    let ino = fs.lookup(Ino::ROOT, b"a").unwrap().ino;
    let h = fs.open(ino, libc::O_RDWR | libc::O_TRUNC).unwrap();
    fs.write(ino, h.fh, 0, &random_bytes(2, 400_000)).unwrap();
    fs.release(ino, h.fh).unwrap();
    fs.sync_all().unwrap();
    let both = free(&fs.statfs().unwrap());
    assert!(before - both > 350_000, "the new content takes space");
    assert_agree(&fs, "overwritten");
    fs.gc(&chunkfs::gc::Silent).unwrap();
    let after = free(&fs.statfs().unwrap());
    assert!(
        after + 64 * 1024 >= before,
        "the old content's space came back: {before} {both} {after}"
    );
    assert_agree(&fs, "collected");
}

#[test]
fn a_store_made_before_the_counters_gets_them_right_when_opened() {
    let s = store(64 << 20);
    let fs = s.open();
    for i in 0..4 {
        write_file(&fs, Ino::ROOT, &format!("f{i}"), &random_bytes(i, 200_000));
    }
    fs.unlink(Ino::ROOT, b"f0").unwrap();
    fs.sync_all().unwrap();
    let want = fs.statfs().unwrap();
    drop(fs);
    // Take the store back to schema 3: no counters, no dead_bytes column, no triggers (and
    // none of what later migrations add).
    {
        let conn = rusqlite::Connection::open(s.meta()).unwrap();
        let triggers: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(triggers.len() >= 8, "{triggers:?}");
        for t in triggers {
            conn.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
        }
        conn.execute_batch(UNDO_MIGRATION_7).unwrap();
        conn.execute_batch(UNDO_MIGRATION_6).unwrap();
        conn.execute_batch(
            "DROP TABLE counters;
             ALTER TABLE superchunks DROP COLUMN dead_bytes;
             DROP INDEX snapshots_by_owner;
             ALTER TABLE snapshots DROP COLUMN owner;
             PRAGMA user_version = 3;",
        )
        .unwrap();
        // A reader of the old schema (`chunkfs stats` beside an older daemon) recounts.
        assert_eq!(
            counters::get_or_recount(&conn).unwrap().inodes,
            want.files - (1 << 32)
        );
    }
    let fs = s.open();
    let got = fs.statfs().unwrap();
    assert_eq!((got.bfree, got.files), (want.bfree, want.files));
    assert_agree(&fs, "migrated");
    fs.gc(&chunkfs::gc::Silent).unwrap();
    assert_agree(&fs, "migrated and collected");
}

#[test]
fn statfs_counts_pruned_content_free_before_it_is_swept() {
    // Pruning leaves chunks at refcount zero (a pass interrupted there leaves them so for
    // good, until the next): statfs counts their superchunks free at once.
    let s = store(64 << 20);
    let fs = s.open();
    let s0 = fs.statfs().unwrap();
    write_file(&fs, Ino::ROOT, "a", &random_bytes(9, 500_000));
    fs.sync_all().unwrap();
    fs.unlink(Ino::ROOT, b"a").unwrap();
    fs.sync_all().unwrap();
    struct AtSweep<'a>(&'a Fs, Mutex<Option<(u64, u64)>>);
    impl Progress for AtSweep<'_> {
        fn update(&self, phase: &str, _: &GcReport) {
            let mut got = self.1.lock().unwrap();
            if phase == "sweeping chunks" && got.is_none() {
                let st = self.0.stats().unwrap();
                *got = Some((st.dead_bytes, st.free_bytes));
                assert_eq!(st.free_bytes, free(&self.0.statfs().unwrap()));
            }
        }
    }
    let stop = AtSweep(&fs, Mutex::new(None));
    fs.gc(&stop).unwrap();
    let (dead, at_sweep) = stop.1.into_inner().unwrap().expect("the pass sweeps");
    assert!(dead > 450_000, "dead {dead}");
    assert!(
        at_sweep + 64 * 1024 >= free(&s0),
        "all but a little counted free before the sweep: {at_sweep} of {}",
        free(&s0)
    );
}

#[test]
fn the_reclaimable_estimate_stops_at_its_budget_and_says_so() {
    let s = store(64 << 20);
    let fs = s.open();
    for i in 0..4 {
        write_file(&fs, Ino::ROOT, &format!("f{i}"), &random_bytes(i, 200_000));
        fs.unlink(Ino::ROOT, format!("f{i}").as_bytes()).unwrap();
    }
    fs.sync_all().unwrap();
    let conn = rusqlite::Connection::open(s.meta()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let seq = chunkfs::meta::get_u64(&conn, "seq").unwrap().unwrap();
    let ret = chunkfs::gc::retention(&conn, now, chunkfs::meta::Seq(seq)).unwrap();
    let open = Default::default();
    let full = chunkfs::gc::estimate::reclaimable(&conn, &ret, &open, usize::MAX).unwrap();
    assert!(full.complete && full.beyond_dead > 700_000, "{full:?}");
    let cut = chunkfs::gc::estimate::reclaimable(&conn, &ret, &open, 2).unwrap();
    assert!(
        !cut.complete && cut.beyond_dead < full.beyond_dead,
        "{cut:?}"
    );
    let st = fs.stats().unwrap();
    assert!(st.reclaimable_complete);
    assert_eq!(st.reclaimable_bytes, st.dead_bytes + full.beyond_dead);
}
