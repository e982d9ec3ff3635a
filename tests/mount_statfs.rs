//! `df` and `chunkfs stats` through a real mount: the same free space, as files are written,
//! deleted and collected (issue 11, case 2: 6872 KiB against 28 KiB).

mod mount_common;

use mount_common::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What `df` shows as available, in bytes.
fn df_avail(mnt: &Path) -> u64 {
    let c = CString::new(mnt.as_os_str().as_bytes()).unwrap();
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and s a valid out-pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_bavail as u64 * s.f_frsize as u64
}

fn stats(m: &Mounted) -> serde_json::Value {
    let o = chunkfs(&["stats".as_ref(), m.mnt.as_os_str(), "--json".as_ref()]);
    assert!(o.status.success(), "stats: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `df` equals `stats`' free space. Background GC may move space between two samples, so
/// compare only when `stats` gave the same figure before and after `df`.
fn assert_agree(m: &Mounted, when: &str) {
    for _ in 0..20 {
        let a = stats(m);
        let df = df_avail(&m.mnt);
        let b = stats(m);
        if a["free_bytes"] != b["free_bytes"] {
            continue;
        }
        assert_eq!(Some(df), a["free_bytes"].as_u64(), "{when}: df; stats {a}");
        return;
    }
    panic!("{when}: free space never held still between two stats calls");
}

#[test]
fn df_and_stats_show_the_same_free_space() {
    let Some(mut m) = Mounted::new() else { return };
    // A small device, so that the host's free space never bounds what df shows.
    m.umount();
    std::fs::remove_dir_all(&m.store).unwrap();
    let o = chunkfs(&[
        "mkfs".as_ref(),
        m.store.as_os_str(),
        "--size".as_ref(),
        "64M".as_ref(),
        "--history-window".as_ref(),
        "0".as_ref(),
    ]);
    assert!(o.status.success(), "mkfs: {}", stderr(&o));
    m.mount(&[]);
    assert_agree(&m, "empty");
    for i in 0..6 {
        std::fs::write(m.path(&format!("f{i}")), random_bytes(i, 2 << 20)).unwrap();
    }
    sh(&format!("sync -f {}", m.mnt.display()));
    assert_agree(&m, "written");
    for i in 0..4 {
        std::fs::remove_file(m.path(&format!("f{i}"))).unwrap();
    }
    sh(&format!("sync -f {}", m.mnt.display()));
    assert_agree(&m, "deleted");
    let o = chunkfs(&["gc".as_ref(), m.mnt.as_os_str()]);
    assert!(o.status.success(), "gc: {}", stderr(&o));
    assert_agree(&m, "collected");
    let st = stats(&m);
    assert_eq!(st["dead_bytes"], 0, "{st}");
    let free = st["free_bytes"].as_u64().unwrap();
    assert!(
        free > (64 << 20) - (5 << 20),
        "two 2 MiB files left, {free} free"
    );
    m.umount();
    // The store read offline gives the same figure.
    let o = chunkfs(&["stats".as_ref(), m.store.as_os_str(), "--json".as_ref()]);
    assert!(o.status.success(), "stats: {}", stderr(&o));
    let off: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(off["free_bytes"], free, "offline {off}");
}
