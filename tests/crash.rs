//! Crash tests. The device is a `FaultyDevice` (it keeps what was synced apart from what was
//! written); the metadata is SQLite in a real file in the store's temp dir. A process crash is
//! simulated by copying meta.db and meta.db-wal while the store is open, at the same instant as
//! the device's crash image, and reopening from the copies.
//!
//! Named crash points, around the steps of a commit (seal → device sync → SQLite COMMIT):
//! - before a superchunk write: the sealed bytes never reach the device;
//! - after a superchunk write, before the sync: the bytes may or may not have landed (both
//!   images are tried: only-synced, and every unsynced write landed);
//! - after the device sync, before the SQLite commit: the superchunk is durable but no
//!   metadata points at it, and its extent is still free in the committed free map;
//! - after the commit (fsync returned): the new state is durable.
//!
//! At each, the reopened store must hold exactly the state of the last completed fsync (a
//! group commit makes everything before it durable), read every file back exactly, and have
//! consistent refcounts and space. The fault loops fail the Nth device write or sync for every
//! N a workload reaches: the store must then answer with errors (EIO, then EROFS) and never with
//! wrong data, and the crash image must reopen to the last fsync'd state.

mod common;
mod support;

use chunkfs::fs::{FileKind, Fs, FsError, Ino, RenameFlags, SetAttr};
use chunkfs::store::device::{Device, FaultyDevice};
use common::*;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::*;

/// What the tests expect to find: path -> what it holds (the shape `support::tree` gives).
type Expect = BTreeMap<String, Found>;

#[derive(Clone, Copy, Debug)]
enum Point {
    BeforeWrite,
    AfterWriteBeforeSync,
    AfterSyncBeforeCommit,
    AfterCommit,
}

struct Snapshot {
    point: Point,
    db: DbSnapshot,
    synced: Vec<u8>,
    all_landed: Vec<u8>,
    expect: Expect,
}

type Hook = Box<dyn Fn(Point) + Send + Sync>;

/// A device that calls a hook around every write and after every sync, so a test can take
/// a crash snapshot between the steps of a commit.
#[derive(Clone)]
struct HookDevice {
    inner: FaultyDevice,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl std::fmt::Debug for HookDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookDevice")
            .field("inner", &self.inner)
            .finish()
    }
}

impl HookDevice {
    fn fire(&self, p: Point) {
        if let Some(h) = self.hook.lock().unwrap().as_ref() {
            h(p);
        }
    }
}

impl Device for HookDevice {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.inner.read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.fire(Point::BeforeWrite);
        self.inner.write_at(buf, off)?;
        self.fire(Point::AfterWriteBeforeSync);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.inner.sync()?;
        self.fire(Point::AfterSyncBeforeCommit);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn grow(&self, new_len: u64) -> io::Result<()> {
        self.inner.grow(new_len)
    }
}

/// One step of a workload. Every step that writes opens a handle and releases it, so at the
/// end of a step each file's content is committed to the open transaction; only `sync` steps
/// (and writes with `sync`) make it durable.
#[derive(Clone, Debug)]
enum Step {
    Mkdir(&'static str),
    Write {
        path: &'static str,
        off: u64,
        len: usize,
        seed: u64,
        sync: bool,
    },
    Truncate(&'static str, u64),
    Rename(&'static str, &'static str),
    Link(&'static str, &'static str),
    Unlink(&'static str),
    Sync(&'static str),
}

fn w(path: &'static str, off: u64, len: usize, seed: u64, sync: bool) -> Step {
    Step::Write {
        path,
        off,
        len,
        seed,
        sync,
    }
}

/// Several files in two directories: creates, overwrites in the middle, appends, sparse
/// writes, truncation, renames over existing files, hard links and unlinks, with fsyncs
/// between some steps and not others.
fn workload() -> Vec<Step> {
    vec![
        w("a", 0, 40_000, 1, true),
        Step::Mkdir("d"),
        w("d/b", 0, 70_000, 2, false),
        w("c", 0, 10_000, 3, false),
        Step::Sync("a"),
        w("a", 15_000, 3_000, 4, true),
        Step::Link("d/b", "b2"),
        w("d/b", 70_000, 20_000, 5, false),
        Step::Rename("c", "a"),
        Step::Sync("b2"),
        w("e", 100_000, 5_000, 6, true),
        Step::Truncate("d/b", 30_000),
        w("c", 0, 30_000, 1, false),
        Step::Unlink("b2"),
        Step::Sync("c"),
        w("d/f", 0, 120_000, 7, false),
        Step::Rename("d/f", "e"),
        w("a", 2_000, 50_000, 8, true),
    ]
}

/// The reference: paths to inode ids, ids to content.
#[derive(Clone, Default)]
struct Model {
    paths: BTreeMap<String, usize>,
    data: BTreeMap<usize, Vec<u8>>,
    dirs: Vec<String>,
    next: usize,
}

impl Model {
    fn expect(&self) -> Expect {
        let mut out = Expect::new();
        for d in &self.dirs {
            let subdirs = self
                .dirs
                .iter()
                .filter(|x| x.starts_with(&format!("{d}/")))
                .count() as u32;
            out.insert(d.clone(), Found::Dir { nlink: 2 + subdirs });
        }
        for (p, id) in &self.paths {
            let nlink = self.paths.values().filter(|x| *x == id).count() as u32;
            out.insert(
                p.clone(),
                Found::File {
                    data: self.data[id].clone(),
                    nlink,
                },
            );
        }
        out
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Mkdir(p) => self.dirs.push(p.to_string()),
            Step::Write {
                path,
                off,
                len,
                seed,
                ..
            } => {
                let id = *self.paths.entry(path.to_string()).or_insert_with(|| {
                    self.next += 1;
                    self.next
                });
                let d = self.data.entry(id).or_default();
                let (off, end) = (*off as usize, *off as usize + len);
                if d.len() < end {
                    d.resize(end, 0);
                }
                d[off..end].copy_from_slice(&random_bytes(*seed, *len));
            }
            Step::Truncate(p, size) => {
                let id = self.paths[*p];
                self.data.get_mut(&id).unwrap().resize(*size as usize, 0);
            }
            Step::Rename(from, to) => {
                let id = self.paths.remove(*from).unwrap();
                self.paths.insert(to.to_string(), id);
            }
            Step::Link(from, to) => {
                let id = self.paths[*from];
                self.paths.insert(to.to_string(), id);
            }
            Step::Unlink(p) => {
                self.paths.remove(*p);
            }
            Step::Sync(_) => {}
        }
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn run_step(fs: &Fs, step: &Step) -> Result<(), FsError> {
    match step {
        Step::Mkdir(p) => {
            let (dir, name) = split(p);
            fs.mkdir(resolve(fs, dir)?, name.as_bytes(), 0o755, 0, 0)?;
        }
        Step::Write {
            path,
            off,
            len,
            seed,
            sync,
        } => {
            let (dir, name) = split(path);
            let parent = resolve(fs, dir)?;
            let (ino, fh) = match fs.lookup(parent, name.as_bytes()) {
                Ok(a) => (a.ino, fs.open(a.ino, libc::O_RDWR)?.fh),
                Err(FsError::NotFound) => {
                    let (a, h) = fs.create(parent, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)?;
                    (a.ino, h.fh)
                }
                Err(e) => return Err(e),
            };
            let data = random_bytes(*seed, *len);
            let r = (|| -> Result<(), FsError> {
                for (i, part) in data.chunks(16_000).enumerate() {
                    fs.write(ino, fh, off + i as u64 * 16_000, part)?;
                }
                if *sync {
                    fs.fsync(ino, fh, false)?;
                }
                Ok(())
            })();
            let rel = fs.release(ino, fh);
            r?;
            rel?;
        }
        Step::Truncate(p, size) => {
            let set = SetAttr {
                size: Some(*size),
                ..SetAttr::default()
            };
            fs.setattr(resolve(fs, p)?, &set)?;
        }
        Step::Rename(from, to) => {
            let (fd, fname) = split(from);
            let (td, tname) = split(to);
            let (fd, td) = (resolve(fs, fd)?, resolve(fs, td)?);
            fs.rename(
                fd,
                fname.as_bytes(),
                td,
                tname.as_bytes(),
                RenameFlags::default(),
            )?;
        }
        Step::Link(from, to) => {
            let (td, tname) = split(to);
            fs.link(resolve(fs, from)?, resolve(fs, td)?, tname.as_bytes())?;
        }
        Step::Unlink(p) => {
            let (dir, name) = split(p);
            fs.unlink(resolve(fs, dir)?, name.as_bytes())?;
        }
        Step::Sync(p) => {
            let ino = resolve(fs, p)?;
            let h = fs.open(ino, libc::O_RDONLY)?;
            let r = fs.fsync(ino, h.fh, false);
            fs.release(ino, h.fh)?;
            r?;
        }
    }
    Ok(())
}

fn makes_durable(step: &Step) -> bool {
    matches!(step, Step::Sync(_) | Step::Write { sync: true, .. })
}

fn found_tree(fs: &Fs) -> Expect {
    tree(fs, Ino::ROOT)
        .into_iter()
        .map(|(p, (_, f))| (p, f))
        .collect()
}

fn describe(t: &Expect) -> Vec<String> {
    t.iter()
        .map(|(p, f)| match f {
            Found::File { data, nlink } => format!("{p}: {} bytes, nlink {nlink}", data.len()),
            f => format!("{p}: {f:?}"),
        })
        .collect()
}

/// Reopen a crashed store from its snapshot and check it holds exactly `expect`, consistently,
/// and still takes writes.
fn check_crashed(db: &DbSnapshot, image: Vec<u8>, expect: &Expect, what: &str) {
    let crashed = Crashed::new(db, image);
    let fs = crashed
        .open()
        .unwrap_or_else(|e| panic!("{what}: the crashed store does not open: {e}"));
    assert_consistent(&fs);
    let got = found_tree(&fs);
    if got != *expect {
        panic!(
            "{what}: the reopened store differs from the last fsync'd state\n got: {:?}\nwant: {:?}",
            describe(&got),
            describe(expect)
        );
    }
    let ino = write_file(&fs, Ino::ROOT, "after-crash", b"still writable");
    fs.sync_all().unwrap();
    assert_eq!(read_file(&fs, ino), b"still writable");
    assert_consistent(&fs);
    fs.close().unwrap();
}

struct Rig {
    ts: TestStore,
    dev: HookDevice,
}

impl Rig {
    fn new() -> Rig {
        let ts = TestStore::new(64 << 20);
        let dev = HookDevice {
            inner: ts.dev.clone(),
            hook: Arc::new(Mutex::new(None)),
        };
        Rig { ts, dev }
    }

    fn open(&self) -> Fs {
        let dev: Arc<dyn Device> = Arc::new(self.dev.clone());
        Fs::open_with(&self.ts.meta(), dev, tiny_opts()).unwrap()
    }
}

fn snapshot(dir: &Path, dev: &FaultyDevice, point: Point, expect: &Expect) -> Snapshot {
    Snapshot {
        point,
        db: DbSnapshot::take(dir),
        synced: dev.crash_image(),
        all_landed: dev.crash_image_keeping(|_| true),
        expect: expect.clone(),
    }
}

#[test]
fn a_crash_at_any_point_of_any_commit_keeps_exactly_the_last_fsynced_state() {
    let rig = Rig::new();
    let fs = rig.open();
    let durable: Arc<Mutex<Expect>> = Arc::new(Mutex::new(Expect::new()));
    let snaps: Arc<Mutex<Vec<Snapshot>>> = Arc::new(Mutex::new(Vec::new()));
    {
        let (dir, dev): (PathBuf, FaultyDevice) =
            (rig.ts.dir.path().to_owned(), rig.ts.dev.clone());
        let (durable, snaps) = (durable.clone(), snaps.clone());
        *rig.dev.hook.lock().unwrap() = Some(Box::new(move |p| {
            let s = snapshot(&dir, &dev, p, &durable.lock().unwrap());
            snaps.lock().unwrap().push(s);
        }));
    }
    let mut model = Model::default();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (i, step) in workload().iter().enumerate() {
        run_step(&fs, step).unwrap();
        model.apply(step);
        assert_eq!(
            found_tree(&fs),
            model.expect(),
            "step {i}: the live store is wrong"
        );
        if makes_durable(step) {
            *durable.lock().unwrap() = model.expect();
        }
        let after = snapshot(
            rig.ts.dir.path(),
            &rig.ts.dev,
            Point::AfterCommit,
            &durable.lock().unwrap(),
        );
        let mut taken = std::mem::take(&mut *snaps.lock().unwrap());
        taken.push(after);
        for (j, s) in taken.into_iter().enumerate() {
            let name = format!("{:?}", s.point);
            *counts
                .entry(match s.point {
                    Point::BeforeWrite => "before write",
                    Point::AfterWriteBeforeSync => "after write",
                    Point::AfterSyncBeforeCommit => "after sync",
                    Point::AfterCommit => "after step",
                })
                .or_default() += 1;
            let what = format!("step {i} ({step:?}), snapshot {j} {name}");
            check_crashed(&s.db, s.synced, &s.expect, &format!("{what}, synced image"));
            check_crashed(
                &s.db,
                s.all_landed,
                &s.expect,
                &format!("{what}, all writes landed"),
            );
        }
    }
    *rig.dev.hook.lock().unwrap() = None;
    // Every named crash point was reached many times.
    for point in ["before write", "after write", "after sync", "after step"] {
        assert!(
            counts.get(point).copied().unwrap_or(0) >= 5,
            "{point}: {counts:?}"
        );
    }
    assert_consistent(&fs);
    fs.close().unwrap();
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Write,
    Sync,
}

/// Run the workload with the Nth device write (or sync) failing. Returns whether the fault
/// was hit (the workload stopped with an error).
fn run_with_fault(fault: Fault, n: u64) -> bool {
    let ts = TestStore::new(64 << 20);
    let fs = ts.open();
    match fault {
        Fault::Write => ts.dev.fail_write_after(n),
        Fault::Sync => ts.dev.fail_sync_after(n),
    }
    let mut model = Model::default();
    let mut durable = Expect::new();
    let steps = workload();
    for (i, step) in steps.iter().enumerate() {
        let before = model.clone();
        let mut attempted = model.clone();
        attempted.apply(step);
        match run_step(&fs, step) {
            Ok(()) => {
                model = attempted;
                if makes_durable(step) {
                    durable = model.expect();
                }
            }
            Err(e) => {
                let what = format!("{fault:?} fault {n}, step {i} ({step:?})");
                assert_eq!(e.errno(), libc::EIO, "{what}: {e}");
                check_failed_store(
                    &fs,
                    &ts,
                    &durable,
                    &[before.expect(), attempted.expect()],
                    &what,
                );
                return true;
            }
        }
    }
    assert_eq!(found_tree(&fs), model.expect());
    fs.close().unwrap();
    false
}

/// After a device failure: writes are refused with EROFS, reads give right bytes or errors,
/// and both a process crash (snapshot now) and a clean close reopen to the durable state.
fn check_failed_store(fs: &Fs, ts: &TestStore, durable: &Expect, allowed: &[Expect], what: &str) {
    assert!(fs.failure().is_some(), "{what}: the store did not fail");
    assert_eq!(
        errno(fs.mkdir(Ino::ROOT, b"x", 0o755, 0, 0)),
        libc::EROFS,
        "{what}"
    );
    assert_eq!(
        errno(fs.create(Ino::ROOT, b"y", 0o644, libc::O_RDWR, 0, 0)),
        libc::EROFS,
        "{what}"
    );
    // What is visible is the last committed namespace; each file reads back one of the
    // versions it really had, or fails.
    for (path, (ino, _)) in names_only(fs) {
        if fs.getattr(ino).unwrap().kind != FileKind::File {
            continue;
        }
        let Ok(data) = try_read(fs, ino) else {
            continue;
        };
        let candidates: Vec<&Vec<u8>> = std::iter::once(durable)
            .chain(allowed)
            .filter_map(|t| match t.get(&path) {
                Some(Found::File { data, .. }) => Some(data),
                _ => None,
            })
            .collect();
        assert!(
            candidates.contains(&&data),
            "{what}: {path} reads {} bytes that it never held",
            data.len()
        );
    }
    let db = DbSnapshot::take(ts.dir.path());
    let image = ts.dev.crash_image();
    check_crashed(
        &db,
        image.clone(),
        durable,
        &format!("{what}, crash after the failure"),
    );
    check_crashed(
        &db,
        ts.dev.crash_image_keeping(|_| true),
        durable,
        &format!("{what}, crash after the failure, unsynced writes landed"),
    );
}

fn names_only(fs: &Fs) -> Vec<(String, (Ino, ()))> {
    let mut out = Vec::new();
    let mut stack = vec![(Ino::ROOT, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for (name, ino, kind) in list(fs, dir, 100) {
            let path = format!("{prefix}{}", String::from_utf8_lossy(&name));
            if kind == FileKind::Dir {
                stack.push((ino, format!("{path}/")));
            }
            out.push((path, (ino, ())));
        }
    }
    out
}

fn try_read(fs: &Fs, ino: Ino) -> Result<Vec<u8>, FsError> {
    let size = fs.getattr(ino)?.size;
    let h = fs.open(ino, libc::O_RDONLY)?;
    let mut out = Vec::new();
    let r = (|| -> Result<(), FsError> {
        while (out.len() as u64) < size {
            let part = fs.read(ino, h.fh, out.len() as u64, 1 << 20)?;
            assert!(!part.is_empty());
            out.extend_from_slice(&part);
        }
        Ok(())
    })();
    let _ = fs.release(ino, h.fh);
    r.map(|()| out)
}

fn count_ops(fault: Fault) -> u64 {
    let ts = TestStore::new(64 << 20);
    let fs = ts.open();
    let (w0, s0) = (ts.dev.writes(), ts.dev.syncs());
    for step in workload() {
        run_step(&fs, &step).unwrap();
    }
    let n = match fault {
        Fault::Write => ts.dev.writes() - w0,
        Fault::Sync => ts.dev.syncs() - s0,
    };
    fs.close().unwrap();
    n
}

fn fault_loop(fault: Fault) {
    let total = count_ops(fault);
    assert!(total >= 5, "the workload makes only {total} {fault:?}s");
    for n in 0..=total {
        let hit = run_with_fault(fault, n);
        assert_eq!(hit, n < total, "{fault:?} {n} of {total}: hit = {hit}");
    }
}

#[test]
fn failing_any_device_write_gives_errors_never_wrong_data_and_keeps_synced_files() {
    fault_loop(Fault::Write);
}

#[test]
fn failing_any_device_sync_gives_errors_never_wrong_data_and_keeps_synced_files() {
    fault_loop(Fault::Sync);
}
