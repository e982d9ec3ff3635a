//! Extended attributes and statfs through the core API.

mod common;
mod support;

use chunkfs::fs::Ino;
use common::*;
use support::*;

#[test]
fn xattr_create_and_replace_flags_are_honoured() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"x");
    assert_eq!(errno(fs.getxattr(f, b"user.a")), libc::ENODATA);
    assert_eq!(
        errno(fs.setxattr(f, b"user.a", b"1", libc::XATTR_REPLACE)),
        libc::ENODATA
    );
    fs.setxattr(f, b"user.a", b"1", libc::XATTR_CREATE).unwrap();
    assert_eq!(
        errno(fs.setxattr(f, b"user.a", b"2", libc::XATTR_CREATE)),
        libc::EEXIST
    );
    assert_eq!(fs.getxattr(f, b"user.a").unwrap(), b"1");
    fs.setxattr(f, b"user.a", b"2", libc::XATTR_REPLACE)
        .unwrap();
    assert_eq!(fs.getxattr(f, b"user.a").unwrap(), b"2");
    fs.setxattr(f, b"user.a", b"", 0).unwrap();
    assert_eq!(fs.getxattr(f, b"user.a").unwrap(), b"");
}

#[test]
fn xattrs_are_listed_removed_and_kept_per_inode() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"x");
    let d = fs.mkdir(Ino::ROOT, b"d", 0o755, 0, 0).unwrap().ino;
    let value: Vec<u8> = (0..=255).collect();
    fs.setxattr(f, b"user.z", &value, 0).unwrap();
    fs.setxattr(f, b"trusted.b", b"2", 0).unwrap();
    fs.setxattr(d, b"user.dir", b"on a dir", 0).unwrap();
    assert_eq!(
        fs.listxattr(f).unwrap(),
        vec![b"trusted.b".to_vec(), b"user.z".to_vec()]
    );
    assert_eq!(fs.listxattr(d).unwrap(), vec![b"user.dir".to_vec()]);
    assert_eq!(fs.getxattr(f, b"user.z").unwrap(), value);
    fs.removexattr(f, b"user.z").unwrap();
    assert_eq!(errno(fs.removexattr(f, b"user.z")), libc::ENODATA);
    assert_eq!(errno(fs.getxattr(f, b"user.z")), libc::ENODATA);
    assert_eq!(fs.listxattr(f).unwrap(), vec![b"trusted.b".to_vec()]);
    // A hard link is the same inode, so it has the same attributes.
    fs.link(f, Ino::ROOT, b"g").unwrap();
    assert_eq!(
        fs.getxattr(fs.lookup(Ino::ROOT, b"g").unwrap().ino, b"trusted.b")
            .unwrap(),
        b"2"
    );
    assert_eq!(errno(fs.listxattr(Ino(12345))), libc::ENOENT);
}

#[test]
fn bad_xattr_names_and_values_are_refused() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"x");
    assert_eq!(errno(fs.setxattr(f, b"", b"v", 0)), libc::EINVAL);
    assert_eq!(errno(fs.setxattr(f, &[b'u'; 256], b"v", 0)), libc::ERANGE);
    assert_eq!(
        errno(fs.setxattr(f, b"user.big", &vec![0; 65537], 0)),
        libc::EFBIG
    );
    fs.setxattr(f, b"user.max", &vec![1; 65536], 0).unwrap();
    assert_eq!(
        errno(fs.setxattr(f, b"system.posix_acl_access", b"v", 0)),
        libc::EOPNOTSUPP
    );
}

#[test]
fn xattrs_survive_a_reopen_and_setting_one_moves_ctime() {
    let mut fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"x");
    let c0 = fs.getattr(f).unwrap().ctime;
    std::thread::sleep(std::time::Duration::from_millis(2));
    fs.setxattr(f, b"user.k", b"v", 0).unwrap();
    assert!(fs.getattr(f).unwrap().ctime > c0);
    fs.reopen();
    assert_eq!(fs.getxattr(f, b"user.k").unwrap(), b"v");
    assert_eq!(fs.listxattr(f).unwrap(), vec![b"user.k".to_vec()]);
}

#[test]
fn statfs_reports_the_capacity_and_free_space_falls_after_unique_writes() {
    let fs = Env::with_capacity(16 << 20);
    let s0 = fs.statfs().unwrap();
    assert_eq!(s0.bsize, 4096);
    assert_eq!(s0.frsize, 4096);
    assert_eq!(s0.namelen, 255);
    assert_eq!(s0.blocks, (16 << 20) / 4096);
    assert!(s0.bfree <= s0.blocks && s0.bfree > s0.blocks * 9 / 10);
    assert_eq!(s0.bavail, s0.bfree);
    assert!(s0.ffree > 0 && s0.files >= s0.ffree);
    write_file(&fs, Ino::ROOT, "a", &random_bytes(1, 1 << 20));
    fs.sync_all().unwrap();
    let s1 = fs.statfs().unwrap();
    let used = (s0.bfree - s1.bfree) * 4096;
    assert!(
        (1 << 20) <= used + 64 * 1024 && used < 2 << 20,
        "1 MiB of unique data took {used} bytes"
    );
    // The same data again costs nothing.
    write_file(&fs, Ino::ROOT, "b", &random_bytes(1, 1 << 20));
    fs.sync_all().unwrap();
    assert_eq!(fs.statfs().unwrap().bfree, s1.bfree);
    assert_eq!(fs.stats().unwrap().free_bytes / 4096, s1.bfree);
}
