//! A full device through a real mount: the recipe of issue #11 (a 64 MiB store, ten 10 MiB
//! files copied in until ENOSPC, six deleted, `chunkfs gc`) must leave the freed space free and
//! writable, unmount cleanly and check clean; and data that cannot be committed at unmount
//! makes `chunkfs umount` fail, naming the file.

mod mount_common;

use mount_common::*;
use std::path::Path;
use std::process::Command;

const MIB: u64 = 1 << 20;

fn stats(m: &Mounted) -> serde_json::Value {
    let o = chunkfs(&["stats".as_ref(), m.mnt.as_os_str(), "--json".as_ref()]);
    assert!(o.status.success(), "stats: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `cp SRC DST`; true if it succeeded.
fn cp(src: &Path, dst: &Path) -> bool {
    let o = Command::new("cp").arg(src).arg(dst).output().unwrap();
    if !o.status.success() {
        eprintln!("cp {}: {}", dst.display(), stderr(&o).trim());
    }
    o.status.success()
}

fn same(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

#[test]
fn a_full_device_recovers_after_deleting_and_gc_while_mounted() {
    // No history window: deleted files are not kept for the past, so gc gives their space back.
    let Some(mut m) = Mounted::with_mkfs(&["--size", "64M", "--history-window", "0"], &[]) else {
        return;
    };
    let src = m.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..12u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(100 + i, 10 << 20)).unwrap();
    }
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for i in 0..10 {
        let name = format!("f{i}");
        if cp(&src.join(&name), &m.path(&name)) {
            ok.push(name);
        } else {
            failed.push(name);
        }
    }
    assert!(
        !failed.is_empty() && ok.len() >= 4,
        "copied {ok:?}, failed {failed:?}"
    );
    // Delete six: every file that failed, then the oldest good ones.
    let good_gone: Vec<String> = ok
        .drain(..(6usize.saturating_sub(failed.len())).min(ok.len()))
        .collect();
    let freed = good_gone.len() as u64 * 10 * MIB;
    let keep = ok;
    let delete = [failed, good_gone].concat();
    for name in &delete {
        std::fs::remove_file(m.path(name)).unwrap();
    }
    let o = chunkfs(&["gc".as_ref(), m.mnt.as_os_str()]);
    assert!(o.status.success(), "gc: {}", stderr(&o));
    let s = stats(&m);
    let free = s["free_bytes"].as_u64().unwrap();
    eprintln!("kept {keep:?}, deleted {delete:?} ({freed} bytes of good files); after gc: {s}");
    assert!(
        free + 2 * MIB >= freed,
        "{free} bytes free after deleting {freed} bytes of files and gc"
    );
    // The freed space takes new data: as many new 10 MiB files as it holds.
    let fit = (free.saturating_sub(MIB) / (10 * MIB)).max(1);
    for i in 0..fit {
        let name = format!("f{}", 10 + i);
        assert!(
            cp(&src.join(&name), &m.path(&format!("new{i}"))),
            "new file {i} of {fit} did not fit in {free} free bytes"
        );
        assert!(same(&src.join(&name), &m.path(&format!("new{i}"))));
    }
    for name in &keep {
        assert!(same(&src.join(name), &m.path(name)), "{name} changed");
    }
    m.umount();
    let o = chunkfs(&["fsck".as_ref(), m.store.as_os_str()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "fsck: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

#[test]
fn umount_fails_and_names_a_file_whose_data_could_not_be_committed() {
    let Some(mut m) = Mounted::with_mkfs(&["--size", "16M"], &[]) else {
        return;
    };
    let src = m.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(1, 10 << 20)).unwrap();
    std::fs::write(src.join("b"), random_bytes(2, 10 << 20)).unwrap();
    assert!(cp(&src.join("a"), &m.path("a")));
    std::fs::create_dir(m.path("dir")).unwrap();
    assert!(
        !cp(&src.join("b"), &m.path("dir/b")),
        "20 MiB fit in a 16 MiB store"
    );
    let o = chunkfs(&["umount".as_ref(), m.mnt.as_os_str()]);
    m.forget_mount();
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "umount succeeded although /dir/b was lost"
    );
    assert!(
        err.contains("/dir/b") && err.contains("no space"),
        "umount does not name the file: {err}"
    );
    // What was committed is intact.
    let o = chunkfs(&["fsck".as_ref(), m.store.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "fsck: {}", stderr(&o));
    m.mount(&[]);
    assert!(same(&src.join("a"), &m.path("a")));
    m.umount();
}
