//! Everything at once through a real mount: writers deleting and copying whole trees
//! (`rm -rf M/c_X; cp -a SRC_X M/c_X`) while `chunkfs gc`, `snapshot create/delete`, `clone`
//! of a tree, online `fsck` and readers comparing files against their sources all run
//! concurrently, with background GC on. No operation may fail; afterwards (and after a
//! remount, which empties every cache) every tree equals its source, unmount succeeds, the
//! daemon logged no error and offline fsck finds the store clean.
//!
//! The source trees are generated (a few hundred files of mixed sizes, text-like and random,
//! some identical within and across trees, a few of several MiB). The history window is 0 so
//! that what the writers delete becomes garbage at once and GC frees and reuses space all the
//! time. CI runs the load for about 35 s; `CHUNKFS_STRESS_SECS=N` runs it longer (see
//! docs/TESTING.md).

mod fsx;
mod mount_common;

use mount_common::*;
use std::io::Read;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TREES: usize = 4;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Activities `CHUNKFS_STRESS_WITHOUT` (comma-separated: gc, snapshots, clones, fsck,
/// readers) leaves out, to find which one a failure needs.
fn without(what: &str) -> bool {
    std::env::var("CHUNKFS_STRESS_WITHOUT").is_ok_and(|v| v.split(',').any(|w| w.trim() == what))
}

fn spawn_unless<'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    what: &str,
    f: impl FnOnce() + Send + 'scope,
) {
    if without(what) {
        eprintln!("stress: without {what}");
    } else {
        s.spawn(f);
    }
}

fn load_secs() -> u64 {
    std::env::var("CHUNKFS_STRESS_SECS")
        .ok()
        .map(|s| s.trim().parse().expect("CHUNKFS_STRESS_SECS: a number"))
        .unwrap_or(35)
}

/// Source tree `x`: nested directories, ~240 files from empty to 250 KiB, a pool of files
/// shared by every tree, three of 1.5 to 4 MiB (one the same in every tree), a symlink and a
/// hard link.
fn generate_source(root: &Path, x: u64) {
    let mut r = fsx::Rng::new(0x57_0000 + x);
    let dirs: Vec<PathBuf> = (0..12)
        .map(|d| root.join(format!("d{}/s{}", d % 5, d)))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::create_dir_all(root.join("empty")).unwrap();
    for i in 0..240u64 {
        let (data, len) = match r.below(100) {
            0..=34 => (r.next(), r.below(4 * KIB)),
            35..=69 => (r.next(), 4 * KIB + r.below(60 * KIB)),
            70..=89 => (r.next(), 64 * KIB + r.below(190 * KIB)),
            // The shared pool: the same 12 files (by content) in every tree.
            _ => {
                let k = r.below(12);
                (1000 + k, 10 * KIB + k * 20 * KIB)
            }
        };
        let dir = &dirs[i as usize % dirs.len()];
        std::fs::write(dir.join(format!("f{i}")), fsx::content(data, len)).unwrap();
    }
    for (name, data, len) in [
        ("big-shared", 77, 4 * MIB),
        ("big-text", 4 * (x + 100), 3 * MIB),
        ("big-own", x + 200, 3 * MIB / 2),
    ] {
        std::fs::write(root.join("d1").join(name), fsx::content(data, len)).unwrap();
    }
    std::os::unix::fs::symlink("d0/s0/f0", root.join("link")).unwrap();
    std::fs::hard_link(root.join("d1/big-own"), root.join("d2/hard")).unwrap();
}

/// Regular files under `root`, relative.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let p = rel.join(e.file_name());
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Read `p` through the daemon (its cached pages dropped first) and compare with `src`.
fn compare_file(src: &Path, p: &Path) -> Result<(), String> {
    let want = std::fs::read(src).map_err(|e| format!("read source {}: {e}", src.display()))?;
    let mut f = std::fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?;
    // SAFETY: a valid descriptor; fadvise only drops clean cached pages.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let mut got = Vec::with_capacity(want.len());
    f.read_to_end(&mut got)
        .map_err(|e| format!("read {}: {e}", p.display()))?;
    if got == want {
        return Ok(());
    }
    let first = want.iter().zip(&got).position(|(a, b)| a != b);
    let zeros = first.is_some_and(|i| got[i..].iter().take(4096).all(|b| *b == 0));
    Err(format!(
        "{} differs from its source: {} bytes, expected {}; first difference at {:?}{}",
        p.display(),
        got.len(),
        want.len(),
        first,
        if zeros { " (reads as zeros there)" } else { "" }
    ))
}

fn compare_files(src: &Path, dst: &Path, rels: &[PathBuf]) -> Result<(), String> {
    for rel in rels {
        compare_file(&src.join(rel), &dst.join(rel))?;
    }
    Ok(())
}

/// Run a command; its failure (exit status and stderr) as the error.
fn run(cmd: &mut Command) -> Result<std::process::Output, String> {
    let o = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if o.status.success() {
        Ok(o)
    } else {
        Err(format!(
            "{cmd:?} exited {:?}: {}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        ))
    }
}

fn cf() -> Command {
    Command::new(BIN)
}

/// The run's shared state: when to stop and what went wrong.
struct Run {
    deadline: Instant,
    stop: AtomicBool,
    errors: Mutex<Vec<String>>,
    started: Instant,
}

impl Run {
    fn going(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }
    /// Record a failure of `who` and stop every loop.
    fn failed(&self, who: &str, e: String) {
        let at = self.started.elapsed().as_secs_f64();
        self.errors
            .lock()
            .unwrap()
            .push(format!("[{at:.1} s] {who}: {e}"));
        self.stop.store(true, Ordering::Relaxed);
    }
    /// Run `step` until the deadline or a failure, pausing `pause` between steps; count steps.
    fn repeat(
        &self,
        who: &str,
        pause: Duration,
        count: &AtomicU64,
        mut step: impl FnMut(u64) -> Result<(), String>,
    ) {
        let mut i = 0;
        while self.going() {
            if let Err(e) = step(i) {
                self.failed(who, e);
                return;
            }
            i += 1;
            count.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(pause);
        }
    }
}

#[test]
fn copies_deletes_gc_snapshots_clones_and_online_fsck_together_lose_nothing() {
    let Some(mut m) = Mounted::new() else { return };
    // Repack-age 0: background GC repacks superchunks the copies wrote moments ago.
    for key in ["history-window", "repack-age"] {
        let o = chunkfs(&[
            "config".as_ref(),
            "set".as_ref(),
            m.store.as_os_str(),
            key.as_ref(),
            "0".as_ref(),
        ]);
        assert!(o.status.success(), "config: {}", stderr(&o));
    }
    let srcdir = tempfile::tempdir().unwrap();
    let srcs: Vec<PathBuf> = (0..TREES)
        .map(|x| {
            let p = srcdir.path().join(format!("src{x}"));
            generate_source(&p, x as u64);
            p
        })
        .collect();
    let lists: Vec<Vec<PathBuf>> = srcs.iter().map(|s| files(s)).collect();
    let mnt = m.mnt.clone();
    // A tree nobody changes: readers, snapshots and clones look at it.
    let stable = mnt.join("stable");
    sh(&format!(
        "cp -a '{}' '{}'",
        srcs[0].display(),
        stable.display()
    ));
    let secs = load_secs();
    let started = Instant::now();
    let r = Run {
        deadline: started + Duration::from_secs(secs),
        stop: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
        started,
    };
    let counts: Vec<AtomicU64> = (0..6).map(|_| AtomicU64::new(0)).collect();
    let [copies, gcs, snaps, clones, fscks, reads] = &counts[..] else {
        unreachable!()
    };
    std::thread::scope(|s| {
        for x in 0..TREES {
            let (r, src, list, mnt) = (&r, &srcs[x], &lists[x], &mnt);
            s.spawn(move || {
                let dst = mnt.join(format!("c_{x}"));
                r.repeat(&format!("writer {x}"), Duration::ZERO, copies, |_| {
                    run(Command::new("rm").arg("-rf").arg(&dst))?;
                    run(Command::new("cp").arg("-a").arg(src).arg(&dst))?;
                    compare_files(src, &dst, list)
                });
            });
        }
        spawn_unless(s, "gc", || {
            r.repeat("gc", Duration::from_millis(300), gcs, |_| {
                run(cf().arg("gc").arg(&mnt)).map(drop)
            })
        });
        spawn_unless(s, "snapshots", || {
            let mut rng = fsx::Rng::new(1);
            r.repeat("snapshots", Duration::from_millis(200), snaps, |i| {
                run(cf()
                    .args(["snapshot", "create", &format!("s{i}")])
                    .arg(&mnt))?;
                let view = mnt.join(format!(".chunkfs/snapshots/s{i}/stable"));
                for _ in 0..5 {
                    let rel = &lists[0][rng.below(lists[0].len() as u64) as usize];
                    compare_file(&srcs[0].join(rel), &view.join(rel))?;
                }
                if i >= 2 {
                    run(cf()
                        .args(["snapshot", "delete", &format!("s{}", i - 2)])
                        .arg(&mnt))?;
                }
                Ok(())
            })
        });
        spawn_unless(s, "clones", || {
            let mut rng = fsx::Rng::new(2);
            r.repeat("clones", Duration::from_millis(200), clones, |i| {
                let c = mnt.join(format!("clone_{i}"));
                run(cf().arg("clone").arg(&stable).arg(&c))?;
                // Change the clone; the source must not see it.
                let rel = &lists[0][rng.below(lists[0].len() as u64) as usize];
                std::fs::write(c.join(rel), fsx::content(i, 100 * KIB))
                    .map_err(|e| format!("write into the clone: {e}"))?;
                std::fs::write(c.join("new"), fsx::content(i + 1, 200 * KIB))
                    .map_err(|e| format!("create in the clone: {e}"))?;
                compare_file(&srcs[0].join(rel), &stable.join(rel))?;
                for _ in 0..10 {
                    let rel = &lists[0][rng.below(lists[0].len() as u64) as usize];
                    compare_file(&srcs[0].join(rel), &stable.join(rel))?;
                }
                run(Command::new("rm").arg("-rf").arg(&c)).map(drop)
            })
        });
        spawn_unless(s, "fsck", || {
            r.repeat("online fsck", Duration::from_millis(500), fscks, |i| {
                let mut c = cf();
                c.arg("fsck").arg(&mnt);
                if i % 2 == 1 {
                    c.arg("--quick");
                }
                run(&mut c).map(drop)
            })
        });
        for k in 0..2 {
            let (r, lists, srcs, stable) = (&r, &lists, &srcs, &stable);
            spawn_unless(s, "readers", move || {
                let mut rng = fsx::Rng::new(10 + k);
                r.repeat(&format!("reader {k}"), Duration::ZERO, reads, |_| {
                    let rel = &lists[0][rng.below(lists[0].len() as u64) as usize];
                    compare_file(&srcs[0].join(rel), &stable.join(rel))
                });
            });
        }
    });
    let load = started.elapsed();
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let figures = format!(
        "{:.1} s: {} tree copies, {} gc, {} snapshots, {} clones, {} online fsck, {} file reads",
        load.as_secs_f64(),
        n(copies),
        n(gcs),
        n(snaps),
        n(clones),
        n(fscks),
        n(reads)
    );
    eprintln!("stress: {figures}");
    let mut errors = std::mem::take(&mut *r.errors.lock().unwrap());
    if errors.is_empty() {
        // After a remount nothing is cached: every byte comes from the device.
        if let Err(e) = run(cf().arg("umount").arg(&mnt)) {
            errors.push(format!("umount after the load: {e}"));
        } else {
            m.forget_mount();
            m.mount(&[]);
            for x in 0..TREES {
                let dst = mnt.join(format!("c_{x}"));
                if let Err(e) = compare_files(&srcs[x], &dst, &lists[x]).and_then(|()| {
                    run(Command::new("diff")
                        .arg("-r")
                        .arg("--no-dereference")
                        .arg(&srcs[x])
                        .arg(&dst))
                    .map(drop)
                }) {
                    errors.push(format!("after remount, tree {x}: {e}"));
                }
            }
            if let Err(e) = compare_files(&srcs[0], &stable, &lists[0]) {
                errors.push(format!("after remount, the stable tree: {e}"));
            }
        }
    }
    if errors.is_empty() {
        assert_same_files(&srcs[0], &stable);
        for (x, src) in srcs.iter().enumerate() {
            assert_same_files(src, &mnt.join(format!("c_{x}")));
        }
    }
    let umount = run(cf().arg("umount").arg(&mnt));
    if umount.is_ok() {
        m.forget_mount();
    }
    let fsck = run(cf().arg("fsck").arg(&m.store));
    // A clean run logs no error: an error line (a damaged chunk, a failed background or final
    // commit) means something was lost even when every command exited 0.
    let log = m.log();
    let logged_errors = log.lines().filter(|l| l.contains(" ERROR ")).count();
    if errors.is_empty() && umount.is_ok() && fsck.is_ok() && logged_errors == 0 {
        return;
    }
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("failed"))
        .collect();
    let fsck_text = match &fsck {
        Ok(_) => "clean".to_string(),
        Err(e) => e.lines().take(40).collect::<Vec<_>>().join("\n"),
    };
    panic!(
        "stress run failed ({figures})\nerrors:\n  {}\nfinal umount: {:?}\noffline fsck: {fsck_text}\n\
         daemon log: {logged_errors} errors, {} warnings/errors/failures; the first 20:\n{}",
        errors.join("\n  "),
        umount.err(),
        warnings.len(),
        warnings[..warnings.len().min(20)].join("\n")
    );
}
