//! Running out of space and device failures through the core API: ENOSPC leaves every earlier
//! fsync'd file intact and the store consistent; after a device write error the store refuses
//! writes (EROFS, sticky) and a reopen finds every earlier fsync'd file intact.

mod common;
mod support;

use chunkfs::fs::{Fs, FsError, Ino};
use common::*;
use support::*;

/// Write `data` as a new file and fsync it; the first error is returned.
fn write_synced(fs: &Fs, name: &str, data: &[u8]) -> Result<Ino, FsError> {
    let (a, h) = fs.create(Ino::ROOT, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)?;
    let r = (|| {
        for (i, part) in data.chunks(20_000).enumerate() {
            fs.write(a.ino, h.fh, i as u64 * 20_000, part)?;
        }
        fs.fsync(a.ino, h.fh, false)
    })();
    let rel = fs.release(a.ino, h.fh);
    r.and(rel).map(|_| a.ino)
}

#[test]
fn a_full_device_gives_enospc_and_keeps_every_synced_file() {
    let ts = TestStore::new(2 << 20);
    let fs = ts.open();
    let mut synced = Vec::new();
    let mut err = None;
    for i in 0..100u64 {
        let data = random_bytes(1000 + i, 100_000);
        match write_synced(&fs, &format!("f{i}"), &data) {
            Ok(ino) => synced.push((format!("f{i}"), ino, data)),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("2 MiB never filled up");
    assert_eq!(err.errno(), libc::ENOSPC, "{err}");
    assert!(synced.len() >= 10, "only {} files fit", synced.len());
    assert_eq!(
        fs.failure(),
        None,
        "running out of space must not fail the store"
    );
    for (_, ino, data) in &synced {
        assert_eq!(&read_file(&fs, *ino), data);
    }
    // Small metadata operations and already-stored (deduplicated) content still work.
    fs.mkdir(Ino::ROOT, b"still", 0o755, 0, 0).unwrap();
    let dup = write_synced(&fs, "dup", &synced[0].2).unwrap();
    assert_eq!(read_file(&fs, dup), synced[0].2);
    // Further unique data keeps failing cleanly.
    let again = write_synced(&fs, "more", &random_bytes(7, 200_000));
    assert_eq!(errno(again), libc::ENOSPC);
    assert_consistent(&fs);
    let _ = fs.close();
    let fs = ts.open();
    assert_consistent(&fs);
    for (name, ino, data) in &synced {
        assert_eq!(fs.lookup(Ino::ROOT, name.as_bytes()).unwrap().ino, *ino);
        assert_eq!(&read_file(&fs, *ino), data);
    }
    assert_eq!(
        read_file(&fs, fs.lookup(Ino::ROOT, b"dup").unwrap().ino),
        synced[0].2
    );
    fs.close().unwrap();
}

#[test]
fn enospc_can_surface_at_write_at_release_and_at_fsync() {
    for how in ["write", "release", "fsync"] {
        let ts = TestStore::new(1 << 20);
        let fs = ts.open();
        // Fill most of the device.
        for i in 0.. {
            if write_synced(&fs, &format!("fill{i}"), &random_bytes(i, 50_000)).is_err() {
                break;
            }
        }
        let (a, h) = fs
            .create(Ino::ROOT, b"last", 0o644, libc::O_RDWR, 0, 0)
            .unwrap();
        let big = random_bytes(99, 500_000);
        let r = match how {
            // A write taken into the buffer succeeds; the next one that would pass the dirty
            // limit commits what is buffered first, meets the full device, and fails having
            // changed nothing.
            "write" => {
                fs.write(a.ino, h.fh, 0, &big).unwrap();
                let r = fs
                    .write(a.ino, h.fh, big.len() as u64, &big[..1000])
                    .map(|_| ());
                assert_eq!(
                    fs.getattr(a.ino).unwrap().size,
                    big.len() as u64,
                    "the failed write changed the size"
                );
                r
            }
            "release" => {
                fs.write(a.ino, h.fh, 0, &big[..30_000]).unwrap();
                fs.release(a.ino, h.fh)
            }
            _ => {
                fs.write(a.ino, h.fh, 0, &big[..30_000]).unwrap();
                fs.fsync(a.ino, h.fh, false)
            }
        };
        assert_eq!(errno(r), libc::ENOSPC, "at {how}");
        assert_eq!(fs.failure(), None);
        assert_consistent(&fs);
        drop(fs);
        let fs = ts.open();
        assert_consistent(&fs);
        fs.close().unwrap();
    }
}

#[test]
fn after_a_device_write_error_the_store_refuses_writes_and_a_reopen_keeps_synced_files() {
    let ts = TestStore::new(64 << 20);
    let fs = ts.open();
    let mut synced = Vec::new();
    for i in 0..5u64 {
        let data = random_bytes(i, 40_000);
        synced.push((write_synced(&fs, &format!("f{i}"), &data).unwrap(), data));
    }
    let held = fs.open(synced[1].0, libc::O_RDWR).unwrap();
    ts.dev.fail_write_after(0);
    let r = write_synced(&fs, "doomed", &random_bytes(50, 40_000));
    assert_eq!(errno(r), libc::EIO);
    assert!(fs.failure().is_some());
    // A handle opened before the failure cannot write either.
    assert_eq!(
        errno(fs.write(synced[1].0, held.fh, 0, b"late")),
        libc::EROFS
    );
    // Sticky: every later change is refused, even ones that need no device write.
    assert_eq!(errno(fs.mkdir(Ino::ROOT, b"d", 0o755, 0, 0)), libc::EROFS);
    assert_eq!(
        errno(fs.create(Ino::ROOT, b"n", 0o644, libc::O_RDWR, 0, 0)),
        libc::EROFS
    );
    assert_eq!(errno(fs.open(synced[0].0, libc::O_RDWR)), libc::EROFS);
    assert_eq!(errno(fs.unlink(Ino::ROOT, b"f0")), libc::EROFS);
    assert_eq!(
        errno(fs.setxattr(synced[0].0, b"user.x", b"1", 0)),
        libc::EROFS
    );
    assert_eq!(errno(fs.access(synced[0].0, libc::W_OK, 0, 0)), libc::EROFS);
    // Reading what was synced still works and returns the right bytes.
    for (ino, data) in &synced {
        assert_eq!(&read_file(&fs, *ino), data);
    }
    drop(fs);
    let fs = ts.open();
    assert_eq!(fs.failure(), None);
    assert_consistent(&fs);
    for (ino, data) in &synced {
        assert_eq!(&read_file(&fs, *ino), data);
    }
    assert_eq!(errno(fs.lookup(Ino::ROOT, b"doomed")), libc::ENOENT);
    // And the reopened store takes writes again.
    let ino = write_synced(&fs, "after", b"fine").unwrap();
    assert_eq!(read_file(&fs, ino), b"fine");
    assert_consistent(&fs);
    fs.close().unwrap();
}
