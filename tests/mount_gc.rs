//! Space through a real mount: deleting a lot of unique data and running `chunkfs gc` brings
//! stored bytes and the image file's allocated size back down, unless a snapshot holds it.
//! 1 GiB, as the issue asks (about 40 s for both tests in a debug build); CHUNKFS_GC_MOUNT_MIB=N to change it.

mod mount_common;

use mount_common::*;
use std::os::unix::fs::MetadataExt;

fn mib() -> u64 {
    std::env::var("CHUNKFS_GC_MOUNT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn allocated(m: &Mounted) -> u64 {
    std::fs::metadata(m.store.join("data.img"))
        .unwrap()
        .blocks()
        * 512
}

fn stored(m: &Mounted) -> u64 {
    let o = chunkfs(&["stats".as_ref(), m.store.as_os_str(), "--json".as_ref()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["stored_bytes"].as_u64().unwrap()
}

fn run(snapshot: bool) {
    let Some(m) = Mounted::new() else { return };
    let o = chunkfs(&[
        "config".as_ref(),
        "set".as_ref(),
        m.store.as_os_str(),
        "history-window".as_ref(),
        "0".as_ref(),
    ]);
    assert!(o.status.success(), "config: {}", stderr(&o));
    let (alloc0, stored0) = (allocated(&m), stored(&m));
    let n = mib();
    // Unique, incompressible data: an xorshift stream through dd.
    sh(&format!(
        "head -c {}M /dev/urandom > {}/big && sync -f {}/big",
        n,
        m.mnt.display(),
        m.mnt.display()
    ));
    let full = allocated(&m);
    assert!(
        full > alloc0 + (n << 20) * 9 / 10,
        "{full} allocated after {n} MiB"
    );
    if snapshot {
        use std::io::{Read, Seek, Write};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.mnt.join(".chunkfs/ctl"))
            .unwrap();
        f.write_all(br#"{"op":"snapshot-create","name":"keep"}"#)
            .unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        let mut out = String::new();
        f.read_to_string(&mut out).unwrap();
        assert!(out.contains("\"ok\":true"), "{out}");
    }
    std::fs::remove_file(m.mnt.join("big")).unwrap();
    let o = chunkfs(&["gc".as_ref(), m.store.as_os_str(), "--json".as_ref()]);
    assert!(o.status.success(), "gc: {}", stderr(&o));
    let (alloc1, stored1) = (allocated(&m), stored(&m));
    eprintln!(
        "{n} MiB: allocated {alloc0} -> {full} -> {alloc1}, stored {stored0} -> {stored1}; gc: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    if snapshot {
        assert!(alloc1 > full * 9 / 10, "the snapshot's data was freed");
        assert!(stored1 > (n << 20) * 9 / 10);
    } else {
        assert!(
            alloc1 < alloc0 + (8 << 20),
            "allocated {alloc1}, was {alloc0}"
        );
        assert!(
            stored1 < stored0 + (1 << 20),
            "stored {stored1}, was {stored0}"
        );
    }
}

#[test]
fn deleting_unique_data_and_running_gc_shrinks_the_image_back() {
    run(false);
}

#[test]
fn a_snapshot_taken_before_the_delete_keeps_the_space() {
    run(true);
}
