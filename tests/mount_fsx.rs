//! The file exerciser (tests/fsx) through a real mount: random writes, truncates, every
//! fallocate mode, copy_file_range between and within the files, mmap reads and writes,
//! reopens and remounts on a small (≤ 256 KiB) and a
//! large (8 MiB) file, against an in-memory model, with background GC running; then the
//! daemon's log must hold no error and offline fsck must find the store clean.
//!
//! CI runs a few thousand ops per test. Longer runs and replays (see docs/TESTING.md):
//! `CHUNKFS_FSX_OPS=1000000 CHUNKFS_FSX_SEED=0x... cargo test --release --test mount_fsx`.

mod fsx;
mod mount_common;

use fsx::Fsx;
use mount_common::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Ops per test in CI: about a minute each in a debug build on a loaded 2-core machine.
const CI_OPS: u64 = 6_000;

fn exercise(default_seed: u64, history_window: Option<&str>) {
    let Some(mut m) = Mounted::new() else { return };
    if let Some(w) = history_window {
        // Repack-age 0: background GC repacks what the exerciser writes moments later.
        m.config_set("history-window", w);
        m.config_set("repack-age", "0");
    }
    let seed = fsx::seed_from_env(default_seed);
    let ops = fsx::ops_from_env(CI_OPS);
    eprintln!("fsx: seed {seed:#x}, {ops} ops, history window {history_window:?}");
    let mut x = Fsx::new(
        seed,
        &m.mnt,
        &[
            ("small", 256 * KIB, 64 * KIB),
            ("large", 8 * MIB, 256 * KIB),
        ],
    );
    // About one remount in 3,000 ops: each drops every cache, the daemon's included.
    x.remount_every = 3_000;
    let started = std::time::Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        x.run(ops, &mut || remount(&mut m))
    }));
    if let Err(panic) = outcome {
        // What the store holds after the failure, to tell a model mismatch from damage.
        drop(x);
        for _ in 0..20 {
            if chunkfs(&["umount".as_ref(), m.mnt.as_os_str()])
                .status
                .success()
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        m.forget_mount();
        let o = chunkfs(&["fsck".as_ref(), m.store.as_os_str()]);
        let out = String::from_utf8_lossy(&o.stdout);
        let lines: Vec<&str> = out.lines().take(30).collect();
        eprintln!(
            "after the failure: offline fsck exited {:?}:\n{}\ndaemon log tail:\n{}",
            o.status.code(),
            lines.join("\n"),
            log_tail(&m)
        );
        std::panic::resume_unwind(panic);
    }
    eprintln!(
        "fsx: {} in {:.1} s",
        x.summary(),
        started.elapsed().as_secs_f64()
    );
    drop(x);
    umount(&mut m);
    let log = m.log();
    let logged: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        logged.is_empty(),
        "the daemon logged {} errors (seed {seed:#x}), the first: {:?}",
        logged.len(),
        &logged[..logged.len().min(5)]
    );
    let o = chunkfs(&["fsck".as_ref(), m.store.as_os_str()]);
    assert!(
        o.status.success(),
        "offline fsck after {ops} ops (seed {seed:#x}) exited {:?}:\n{}{}\ndaemon log tail:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        stderr(&o),
        log_tail(&m)
    );
}

fn remount(m: &mut Mounted) {
    umount(m);
    m.mount(&[]);
}

/// Test threads share one process, so a child another test forks holds copies of this test's
/// descriptors until it execs: `umount` may find the mount busy for that moment, and is
/// retried.
fn umount(m: &mut Mounted) {
    for _ in 0..100 {
        let o = chunkfs(&["umount".as_ref(), m.mnt.as_os_str()]);
        if o.status.success() {
            m.forget_mount();
            return;
        }
        assert!(stderr(&o).contains("busy"), "umount failed: {}", stderr(&o));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{} stayed busy", m.mnt.display());
}

fn log_tail(m: &Mounted) -> String {
    let log = m.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn random_file_operations_match_a_reference_model_through_the_mount() {
    exercise(0x5eed_f5c0_0001, None);
}

/// History window 0 and repack age 0: every overwrite makes the old data garbage at once, so
/// background GC frees and repacks extents all the time while the exerciser writes.
#[test]
fn random_file_operations_match_the_model_while_background_gc_reclaims_constantly() {
    exercise(0x5eed_f5c0_0002, Some("0"));
}
