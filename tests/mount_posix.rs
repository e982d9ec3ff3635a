//! POSIX behaviour through a real FUSE mount: trees copied in with cp -a and tar, links,
//! special files, xattrs, sparse and huge files, renames over open files, concurrent writers,
//! mtimes, and all of it again after a remount.

mod mount_common;

use mount_common::{
    Mounted, assert_same_tree, chunkfs, generate_tree, is_root, random_bytes, root_or_skip, sh,
    stderr,
};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[test]
fn cp_a_of_real_trees_reads_back_identical_before_and_after_remount() {
    let Some(mut m) = Mounted::new() else { return };
    let generated = m.dir.path().join("generated");
    generate_tree(&generated, 1);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    sh(&format!(
        "cp -a '{}' '{}'",
        generated.display(),
        m.path("generated").display()
    ));
    sh(&format!(
        "cp -a '{}' '{}'",
        src.display(),
        m.path("src").display()
    ));
    assert_same_tree(&generated, &m.path("generated"));
    assert_same_tree(&src, &m.path("src"));
    m.remount();
    assert_same_tree(&generated, &m.path("generated"));
    assert_same_tree(&src, &m.path("src"));
}

#[test]
fn tar_in_and_tar_out_round_trips_a_tree() {
    let Some(m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    generate_tree(&src, 2);
    let (mnt, out) = (m.path(""), m.dir.path().join("out"));
    fs::create_dir(&out).unwrap();
    sh(&format!(
        "tar --format=posix -C '{}' -cf - . | tar -C '{}' -xpf -",
        src.display(),
        mnt.display()
    ));
    sh(&format!(
        "tar --format=posix -C '{}' -cf - . | tar -C '{}' -xpf -",
        mnt.display(),
        out.display()
    ));
    assert_same_tree(&src, &out);
}

#[test]
fn hard_links_share_one_inode_and_count_their_names() {
    let Some(mut m) = Mounted::new() else { return };
    fs::write(m.path("a"), b"shared").unwrap();
    fs::hard_link(m.path("a"), m.path("b")).unwrap();
    fs::hard_link(m.path("a"), m.path("c")).unwrap();
    fs::remove_file(m.path("c")).unwrap();
    for _ in 0..2 {
        let (a, b) = (
            fs::metadata(m.path("a")).unwrap(),
            fs::metadata(m.path("b")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
        assert_eq!((a.nlink(), b.nlink()), (2, 2));
        assert_eq!(fs::read(m.path("b")).unwrap(), b"shared");
        m.remount();
    }
}

#[test]
fn symlinks_read_back_their_targets() {
    let Some(mut m) = Mounted::new() else { return };
    let long = "x/".repeat(1000) + "end";
    std::os::unix::fs::symlink("target/file", m.path("rel")).unwrap();
    std::os::unix::fs::symlink(&long, m.path("long")).unwrap();
    for _ in 0..2 {
        assert_eq!(
            fs::read_link(m.path("rel")).unwrap(),
            Path::new("target/file")
        );
        assert_eq!(fs::read_link(m.path("long")).unwrap(), Path::new(&long));
        assert!(
            fs::symlink_metadata(m.path("rel"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        m.remount();
    }
}

#[test]
fn device_nodes_and_fifos_keep_their_type_and_device_number() {
    let Some(mut m) = Mounted::new() else { return };
    if !root_or_skip("mknod of devices needs root") {
        return;
    }
    let (c, b, p) = (m.path("null"), m.path("loop"), m.path("fifo"));
    // SAFETY: valid paths; mknod has no memory preconditions.
    unsafe {
        assert_eq!(
            libc::mknod(
                cstr(&c).as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, 3)
            ),
            0
        );
        assert_eq!(
            libc::mknod(
                cstr(&b).as_ptr(),
                libc::S_IFBLK | 0o660,
                libc::makedev(7, 9)
            ),
            0
        );
        assert_eq!(libc::mkfifo(cstr(&p).as_ptr(), 0o644), 0);
    }
    for _ in 0..2 {
        let (cm, bm) = (fs::metadata(&c).unwrap(), fs::metadata(&b).unwrap());
        assert!(cm.file_type().is_char_device());
        assert_eq!(cm.rdev(), libc::makedev(1, 3));
        assert!(bm.file_type().is_block_device());
        assert_eq!(bm.rdev(), libc::makedev(7, 9));
        assert!(fs::metadata(&p).unwrap().file_type().is_fifo());
        m.remount();
    }
}

fn getxattr(p: &Path, name: &str, buf: &mut [u8]) -> isize {
    let n = CString::new(name).unwrap();
    // SAFETY: buf is valid for buf.len() bytes (or null with length 0).
    unsafe {
        let ptr = if buf.is_empty() {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr()
        };
        libc::getxattr(cstr(p).as_ptr(), n.as_ptr(), ptr.cast(), buf.len())
    }
}

fn listxattr(p: &Path) -> Vec<u8> {
    // SAFETY: a zero-length probe, then a buffer of the probed size.
    unsafe {
        let len = libc::listxattr(cstr(p).as_ptr(), std::ptr::null_mut(), 0);
        assert!(
            len >= 0,
            "listxattr probe: {}",
            std::io::Error::last_os_error()
        );
        let mut buf = vec![0u8; len as usize];
        let got = libc::listxattr(cstr(p).as_ptr(), buf.as_mut_ptr().cast(), buf.len());
        assert_eq!(got, len);
        buf
    }
}

#[test]
fn xattrs_round_trip_with_size_probe_erange_and_removal() {
    let Some(mut m) = Mounted::new() else { return };
    let f = m.path("f");
    fs::write(&f, b"x").unwrap();
    sh(&format!("setfattr -n user.a -v hello '{}'", f.display()));
    sh(&format!(
        "setfattr -n user.bb -v 0x00ff00 '{}'",
        f.display()
    ));
    for _ in 0..2 {
        assert_eq!(getxattr(&f, "user.a", &mut []), 5, "size probe");
        let mut small = [0u8; 2];
        assert_eq!(getxattr(&f, "user.a", &mut small), -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ERANGE)
        );
        let mut buf = [0u8; 16];
        assert_eq!(getxattr(&f, "user.bb", &mut buf), 3);
        assert_eq!(&buf[..3], &[0, 0xff, 0]);
        assert_eq!(listxattr(&f), b"user.a\0user.bb\0");
        assert_eq!(getxattr(&f, "user.missing", &mut buf), -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENODATA)
        );
        m.remount();
    }
    sh(&format!("setfattr -x user.a '{}'", f.display()));
    assert_eq!(listxattr(&f), b"user.bb\0");
}

#[test]
fn sparse_files_read_zeros_in_holes_and_report_their_size() {
    let Some(mut m) = Mounted::new() else { return };
    let p = m.path("sparse");
    let mut f = File::create(&p).unwrap();
    f.seek(SeekFrom::Start(10 << 20)).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    for _ in 0..2 {
        assert_eq!(fs::metadata(&p).unwrap().len(), (10 << 20) + 4);
        let mut f = File::open(&p).unwrap();
        let mut hole = vec![1u8; 1 << 20];
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.read_exact(&mut hole).unwrap();
        assert!(hole.iter().all(|&b| b == 0));
        let mut tail = [0u8; 4];
        f.seek(SeekFrom::Start(10 << 20)).unwrap();
        f.read_exact(&mut tail).unwrap();
        assert_eq!(&tail, b"tail");
        drop(f);
        m.remount();
    }
}

#[test]
fn a_file_past_4_gib_reads_back_at_its_offset() {
    let Some(mut m) = Mounted::new() else { return };
    let p = m.path("huge");
    let off = 4u64 * (1 << 30) + (1 << 29);
    let data = random_bytes(7, 1 << 20);
    let mut f = File::create(&p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    for _ in 0..2 {
        assert_eq!(fs::metadata(&p).unwrap().len(), off + data.len() as u64);
        let mut f = File::open(&p).unwrap();
        let mut back = vec![0u8; data.len()];
        f.seek(SeekFrom::Start(off)).unwrap();
        f.read_exact(&mut back).unwrap();
        assert!(back == data, "data past 4 GiB differs");
        drop(f);
        m.remount();
    }
}

#[test]
fn renaming_over_an_open_file_leaves_the_open_descriptor_on_the_old_content() {
    let Some(m) = Mounted::new() else { return };
    let old = random_bytes(3, 200_000);
    fs::write(m.path("target"), &old).unwrap();
    fs::write(m.path("new"), b"replacement").unwrap();
    let mut open = File::open(m.path("target")).unwrap();
    fs::rename(m.path("new"), m.path("target")).unwrap();
    let mut back = Vec::new();
    open.read_to_end(&mut back).unwrap();
    assert!(back == old, "the open descriptor lost the replaced content");
    assert_eq!(fs::read(m.path("target")).unwrap(), b"replacement");
}

#[test]
fn four_threads_writing_different_files_all_land_intact() {
    let Some(mut m) = Mounted::new() else { return };
    let mnt = m.mnt.clone();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let mnt = mnt.clone();
            std::thread::spawn(move || {
                let mut f = File::create(mnt.join(format!("t{t}"))).unwrap();
                for i in 0..16 {
                    f.write_all(&random_bytes(t * 100 + i, 64 * 1024)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for round in 0..2 {
        for t in 0..4u64 {
            let want: Vec<u8> = (0..16)
                .flat_map(|i| random_bytes(t * 100 + i, 64 * 1024))
                .collect();
            assert!(
                fs::read(mnt.join(format!("t{t}"))).unwrap() == want,
                "t{t} round {round}"
            );
        }
        m.remount();
    }
}

fn mtime(p: &Path) -> SystemTime {
    fs::symlink_metadata(p).unwrap().modified().unwrap()
}

/// With the writeback cache the kernel owns mtime while pages are dirty and sends it in
/// setattr; an explicit time set by cp -a, touch or futimens must win over the data's own.
#[test]
fn mtimes_set_by_cp_a_touch_and_futimens_survive_remount() {
    let Some(mut m) = Mounted::new() else { return };
    let src = m.dir.path().join("old");
    fs::write(&src, random_bytes(4, 300_000)).unwrap();
    sh(&format!(
        "touch -d '2001-02-03 04:05:06.789' '{}'",
        src.display()
    ));
    sh(&format!(
        "cp -a '{}' '{}'",
        src.display(),
        m.path("copied").display()
    ));
    fs::write(m.path("touched"), b"x").unwrap();
    sh(&format!(
        "touch -d '1999-12-31 23:59:59' '{}'",
        m.path("touched").display()
    ));
    // Set the time while writes are still dirty in the page cache, then write no more.
    let when = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let mut f = File::create(m.path("open")).unwrap();
    f.write_all(&random_bytes(5, 100_000)).unwrap();
    f.set_modified(when).unwrap();
    drop(f);
    for _ in 0..2 {
        assert_eq!(mtime(&m.path("copied")), mtime(&src));
        assert_eq!(
            mtime(&m.path("touched")),
            UNIX_EPOCH + Duration::from_secs(946_684_799)
        );
        assert_eq!(mtime(&m.path("open")), when);
        m.remount();
    }
}

#[test]
fn o_append_appends_and_truncate_and_ftruncate_resize() {
    let Some(mut m) = Mounted::new() else { return };
    let p = m.path("log");
    fs::write(&p, b"one\n").unwrap();
    for line in [&b"two\n"[..], b"3\n\n"] {
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(line).unwrap();
    }
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"end\n").unwrap(); // O_APPEND ignores the seek
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"one\ntwo\n3\n\nend\n");
    sh(&format!("truncate -s 3 '{}'", p.display()));
    assert_eq!(fs::read(&p).unwrap(), b"one");
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(8192).unwrap(); // ftruncate up: a hole
    drop(f);
    m.remount();
    let back = fs::read(&p).unwrap();
    assert_eq!(back.len(), 8192);
    assert_eq!(&back[..3], b"one");
    assert!(back[3..].iter().all(|&b| b == 0));
}

/// The bdi readahead of the mount at `p`, in KiB, found through its device number.
fn read_ahead_kb(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(p).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    fs::read_to_string(&path).unwrap().trim().parse().unwrap()
}

#[test]
fn a_large_file_reads_back_sequentially_through_the_mount_and_a_snapshot_view() {
    let Some(m) = Mounted::new() else { return };
    if is_root() {
        // chunkfs raises the readahead the kernel caps at 128 KiB, so reads come in 1 MiB
        // requests with several in flight (docs/FUSE-TUNING.md).
        assert_eq!(read_ahead_kb(&m.mnt), 4096);
    }
    let data = random_bytes(5, 24 << 20);
    fs::write(m.path("big"), &data).unwrap();
    let o = chunkfs(&["snapshot", "create", "s1", m.mnt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut m = m;
    m.remount(); // an empty chunk cache: every chunk comes from the device
    for p in ["big", ".chunkfs/snapshots/s1/big"] {
        let got = fs::read(m.path(p)).unwrap();
        assert!(got == data, "{p} read back different bytes");
    }
}
