//! Making and opening stores: mkfs refuses to destroy anything without --force, and opening a
//! store on the wrong device fails with a clear message and changes nothing.

use chunkfs::fs::{Fs, FsOptions, MkfsOptions, open};
use std::path::Path;

fn mkfs(store: &Path, opts: MkfsOptions) -> Result<(), String> {
    open::mkfs(store, &opts)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn small() -> MkfsOptions {
    MkfsOptions {
        size: Some(64 << 20),
        ..MkfsOptions::default()
    }
}

#[test]
fn mkfs_refuses_an_existing_store_without_force() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s");
    mkfs(&s, small()).unwrap();
    // The store was used: closing it leaves a backup of its metadata beside it.
    Fs::open(&s, FsOptions::default()).unwrap().close().unwrap();
    let backup = s.join("meta.db.bak.1");
    assert!(backup.exists());
    let e = mkfs(&s, small()).unwrap_err();
    assert!(
        e.contains("already holds a chunkfs store") && e.contains("--force"),
        "{e}"
    );
    mkfs(
        &s,
        MkfsOptions {
            force: true,
            ..small()
        },
    )
    .unwrap();
    // Backups of the store --force replaced are gone: they describe another store.
    assert!(
        !backup.exists(),
        "the old store's backup was left beside the new one"
    );
    Fs::open(&s, FsOptions::default()).unwrap().close().unwrap();
}

#[test]
fn mkfs_refuses_a_device_holding_a_superblock_without_force() {
    let d = tempfile::tempdir().unwrap();
    let dev = d.path().join("dev.img");
    std::fs::File::create(&dev)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    mkfs(
        &d.path().join("a"),
        MkfsOptions {
            device: Some(dev.clone()),
            ..small()
        },
    )
    .unwrap();
    let e = mkfs(
        &d.path().join("b"),
        MkfsOptions {
            device: Some(dev.clone()),
            ..small()
        },
    )
    .unwrap_err();
    assert!(
        e.contains("already holds chunkfs store") && e.contains("--force"),
        "{e}"
    );
    mkfs(
        &d.path().join("b"),
        MkfsOptions {
            device: Some(dev),
            force: true,
            ..small()
        },
    )
    .unwrap();
}

#[test]
fn a_store_opened_on_another_stores_device_fails_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    mkfs(&a, small()).unwrap();
    mkfs(&b, small()).unwrap();
    let before = std::fs::read(a.join("meta.db")).unwrap();
    let image_b = std::fs::read(b.join("data.img")).unwrap();
    std::fs::copy(b.join("data.img"), a.join("data.img")).unwrap();
    let e = Fs::open(&a, FsOptions::default())
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        e.contains("belongs to another store") && e.contains("nothing was changed"),
        "{e}"
    );
    assert!(std::fs::read(a.join("meta.db")).unwrap() == before);
    assert!(std::fs::read(a.join("data.img")).unwrap() == image_b);
}

#[test]
fn a_device_without_a_superblock_is_named_the_wrong_device() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    mkfs(&a, small()).unwrap();
    std::fs::write(a.join("data.img"), vec![0u8; 1 << 20]).unwrap();
    let e = Fs::open(&a, FsOptions::default())
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        e.contains("no chunkfs superblock") && e.contains("wrong device"),
        "{e}"
    );
}

#[test]
fn a_directory_that_is_not_a_store_says_how_to_make_one() {
    let d = tempfile::tempdir().unwrap();
    let e = Fs::open(d.path(), FsOptions::default())
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        e.contains("not a chunkfs store") && e.contains("chunkfs mkfs"),
        "{e}"
    );
}
