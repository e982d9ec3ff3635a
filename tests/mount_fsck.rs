//! Healing a mounted store: a write of the same bytes, or `fsck --repair-from` through the
//! conduit, restores a damaged chunk and retires its damaged superchunk, so that fsck (online
//! and offline) finds the store clean afterwards.

mod mount_common;

use mount_common::{Mounted, chunkfs, root_or_skip, stderr};
use rusqlite::Connection;
use std::path::Path;

/// Text-like, compressible data.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "chunk", "store", "fsck ", "data ", "tree ", "hash\n", "list ", "seq  ",
    ];
    let mut out = Vec::with_capacity(len + 8);
    for b in mount_common::random_bytes(seed, len) {
        out.extend_from_slice(words[(b % 8) as usize].as_bytes());
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

/// Flip one byte in the middle of the fourth compressed chunk on the device of an unmounted
/// store.
fn damage_a_chunk(m: &Mounted) {
    use std::os::unix::fs::FileExt;
    let db = Connection::open(m.store.join("meta.db")).unwrap();
    let at: i64 = db
        .query_row(
            "SELECT s.start + c.offset + c.stored_len / 2 FROM chunks c
             JOIN superchunks s ON s.id = c.superchunk WHERE c.codec = 1
             ORDER BY s.start + c.offset LIMIT 1 OFFSET 3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.store.join("data.img"))
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at as u64).unwrap();
    b[0] ^= 0x55;
    f.write_all_at(&b, at as u64).unwrap();
}

/// `chunkfs fsck ARGS`: exit code, and stdout followed by stderr.
fn cli_fsck(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let o = chunkfs(args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (o.status.code().unwrap_or(-1), out + &stderr(&o))
}

fn fsck_of(p: &Path) -> (i32, String) {
    cli_fsck(&["fsck".as_ref(), p.as_os_str()])
}

#[test]
fn a_heal_by_rewrite_through_a_mount_leaves_a_clean_store() {
    if !root_or_skip("mounts need root") {
        return;
    }
    let Some(mut m) = Mounted::new() else {
        return;
    };
    let data = text(11, 1 << 20);
    std::fs::write(m.path("a.txt"), &data).unwrap();
    m.umount();
    damage_a_chunk(&m);
    m.mount(&[]);
    let e = std::fs::read(m.path("a.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    // A backup run writes the same bytes again: the damaged chunk gets a good copy.
    std::fs::write(m.path("again.txt"), &data).unwrap();
    assert!(std::fs::read(m.path("a.txt")).unwrap() == data);
    let (code, out) = fsck_of(&m.mnt);
    assert_eq!(code, 0, "online fsck after the heal: {out}");
    m.umount();
    let (code, out) = fsck_of(&m.store);
    assert_eq!(code, 0, "offline fsck after the heal: {out}");
    m.mount(&[]);
    assert!(std::fs::read(m.path("a.txt")).unwrap() == data);
}

#[test]
fn repair_from_heals_a_mounted_store_online() {
    if !root_or_skip("mounts need root") {
        return;
    }
    let Some(mut m) = Mounted::new() else {
        return;
    };
    let data = text(12, 1 << 20);
    std::fs::write(m.path("a.txt"), &data).unwrap();
    m.umount();
    damage_a_chunk(&m);
    m.mount(&[]);
    let (code, out) = fsck_of(&m.mnt);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("/a.txt") && out.contains("--repair-from DIR"),
        "{out}"
    );
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("a"), &data).unwrap();
    let (code, out) = cli_fsck(&[
        "fsck".as_ref(),
        m.mnt.as_os_str(),
        "--repair-from".as_ref(),
        good.path().as_os_str(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(std::fs::read(m.path("a.txt")).unwrap() == data);
    let (code, out) = fsck_of(&m.mnt);
    assert_eq!(code, 0, "{out}");
    m.umount();
    let (code, out) = fsck_of(&m.store);
    assert_eq!(code, 0, "{out}");
}
