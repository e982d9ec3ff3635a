//! The rest of the VFS surface through a real mount: file handles (`name_to_handle_at` /
//! `open_by_handle_at`, what an NFS export needs), remounting read-only and back, a custom
//! `fsname`, and the clear errors for what chunkfs does not do (FIEMAP, FICLONE).

mod mount_common;

use mount_common::{Mounted, chunkfs, random_bytes, root_or_skip, stderr};
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

/// A file handle as `name_to_handle_at` gives it: `struct file_handle` (handle_bytes,
/// handle_type, then the opaque bytes).
struct Handle(Vec<u8>);

const MAX_HANDLE: usize = 128;

fn handle_of(path: &Path) -> Handle {
    let mut buf = vec![0u8; 8 + MAX_HANDLE];
    buf[..4].copy_from_slice(&(MAX_HANDLE as u32).to_ne_bytes());
    let mut mount_id = 0;
    // SAFETY: buf is a file_handle with room for MAX_HANDLE bytes, as handle_bytes says.
    let r = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            cstr(path).as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut mount_id,
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "name_to_handle_at {}: errno {}",
        path.display(),
        errno()
    );
    Handle(buf)
}

/// `open_by_handle_at` through the mount's root: the descriptor, or the errno.
fn open_handle(mnt: &Path, h: &Handle, flags: i32) -> Result<fs::File, i32> {
    let root = fs::File::open(mnt).unwrap();
    let mut buf = h.0.clone();
    // Close-on-exec: a process another test starts meanwhile (a mount daemon) must not keep
    // the file open, which would make this test's unmount busy.
    let flags = flags | libc::O_CLOEXEC;
    // SAFETY: buf is the file_handle name_to_handle_at filled in.
    let fd = unsafe { libc::open_by_handle_at(root.as_raw_fd(), buf.as_mut_ptr().cast(), flags) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fd is a descriptor we own.
    Ok(fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Make the kernel forget every inode and name nobody holds, so that opening a handle must
/// ask the daemon (LOOKUP of ".") instead of finding the inode cached.
fn drop_caches() {
    fs::write("/proc/sys/vm/drop_caches", "3").expect("write /proc/sys/vm/drop_caches");
}

fn read_all(mut f: fs::File) -> Vec<u8> {
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

/// A mount for handle tests, which need root (open_by_handle_at needs CAP_DAC_READ_SEARCH,
/// dropping caches needs root).
fn handle_mount() -> Option<Mounted> {
    if !root_or_skip("open_by_handle_at and drop_caches need root") {
        return None;
    }
    Mounted::new()
}

#[test]
fn a_file_handle_opens_the_same_file_after_the_kernel_forgot_it_and_after_a_remount() {
    let Some(mut m) = handle_mount() else { return };
    let data = random_bytes(7, 300_000);
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), &data).unwrap();
    let h = handle_of(&m.path("d/f"));
    drop_caches();
    let f = open_handle(&m.mnt, &h, libc::O_RDONLY).expect("open_by_handle_at after drop_caches");
    assert_eq!(read_all(f), data);
    // Inode numbers are stored and never reused: a handle outlives the daemon, as an NFS
    // client's handles outlive a server restart.
    m.remount();
    let f = open_handle(&m.mnt, &h, libc::O_RDONLY).expect("open_by_handle_at after remount");
    assert_eq!(read_all(f), data);
    // Opened by handle for writing, the file is the same file.
    let f = open_handle(&m.mnt, &h, libc::O_WRONLY | libc::O_APPEND).unwrap();
    std::io::Write::write_all(&mut &f, b"tail").unwrap();
    drop(f);
    assert_eq!(fs::read(m.path("d/f")).unwrap().len(), data.len() + 4);
}

#[test]
fn a_directory_handle_opens_the_directory_after_the_kernel_forgot_it() {
    let Some(m) = handle_mount() else { return };
    fs::create_dir_all(m.path("a/b/c")).unwrap();
    fs::write(m.path("a/b/c/x"), b"deep").unwrap();
    let h = handle_of(&m.path("a/b/c"));
    drop_caches();
    // A directory handle is reconnected to its path through "..": a, b and c are looked up
    // by the kernel from the inode up.
    let dir = open_handle(&m.mnt, &h, libc::O_RDONLY | libc::O_DIRECTORY).expect("open dir");
    let name = CString::new("x").unwrap();
    // SAFETY: dir is an open directory; name is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    assert!(
        fd >= 0,
        "openat in the directory opened by handle: {}",
        errno()
    );
    // SAFETY: fd is a descriptor we own.
    let f = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    assert_eq!(read_all(f), b"deep");
    let link = fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).unwrap();
    assert_eq!(
        link,
        m.path("a/b/c"),
        "the directory is connected to its path"
    );
}

#[test]
fn a_handle_of_an_unlinked_file_is_stale_once_nobody_holds_it() {
    let Some(m) = handle_mount() else { return };
    fs::write(m.path("gone"), b"bytes").unwrap();
    fs::write(m.path("kept"), b"other").unwrap();
    let h = handle_of(&m.path("gone"));
    let held = fs::File::open(m.path("gone")).unwrap();
    fs::remove_file(m.path("gone")).unwrap();
    // Held open, the unlinked file is still that file.
    let f = open_handle(&m.mnt, &h, libc::O_RDONLY).expect("open while held");
    assert_eq!(read_all(f), b"bytes");
    drop(held);
    drop_caches();
    assert_eq!(
        open_handle(&m.mnt, &h, libc::O_RDONLY).err(),
        Some(libc::ESTALE)
    );
    // Pruned by GC, it stays stale; other handles are unaffected.
    let o = chunkfs(&["gc".as_ref(), m.mnt.as_os_str()]);
    assert!(o.status.success(), "gc: {}", stderr(&o));
    drop_caches();
    assert_eq!(
        open_handle(&m.mnt, &h, libc::O_RDONLY).err(),
        Some(libc::ESTALE)
    );
    let kept = handle_of(&m.path("kept"));
    drop_caches();
    assert_eq!(
        read_all(open_handle(&m.mnt, &kept, libc::O_RDONLY).unwrap()),
        b"other"
    );
}

/// Views are numbered per mount: within it their handles work like any other; after a
/// remount the same number may be another view, so the handle is stale, never another file.
#[test]
fn a_handle_in_a_view_of_the_past_works_for_the_mount_and_is_stale_after_it() {
    let Some(mut m) = handle_mount() else { return };
    fs::write(m.path("f"), b"first").unwrap();
    let snap = |name: &str| {
        let o = chunkfs(&[
            "snapshot".as_ref(),
            "create".as_ref(),
            OsStr::new(name),
            m.mnt.as_os_str(),
        ]);
        assert!(o.status.success(), "snapshot: {}", stderr(&o));
    };
    snap("one");
    fs::write(m.path("f"), b"second").unwrap();
    snap("two");
    let h = handle_of(&m.path(".chunkfs/snapshots/one/f"));
    let dir = handle_of(&m.path(".chunkfs/snapshots/one"));
    drop_caches();
    // A directory handle inside /.chunkfs cannot be reconnected to its path (the root's
    // listing hides /.chunkfs): stale, as documented, not wrong. Only when the kernel still
    // holds the directory's dentry (drop_caches evicts what it can, not everything, on a
    // busy machine) does it open, and then it must be that directory.
    match open_handle(&m.mnt, &dir, libc::O_RDONLY | libc::O_DIRECTORY) {
        Err(e) => assert_eq!(e, libc::ESTALE),
        Ok(d) => {
            use std::os::unix::fs::MetadataExt;
            let want = fs::metadata(m.path(".chunkfs/snapshots/one")).unwrap();
            assert_eq!(d.metadata().unwrap().ino(), want.ino(), "another directory");
        }
    }
    let f = open_handle(&m.mnt, &h, libc::O_RDONLY).expect("view handle within the mount");
    assert_eq!(read_all(f), b"first");
    assert_eq!(
        open_handle(&m.mnt, &h, libc::O_RDWR).err(),
        Some(libc::EROFS),
        "views stay read-only by handle"
    );
    m.remount();
    // The first view this mount numbers is "two": the number "one" had before.
    assert_eq!(
        fs::read(m.path(".chunkfs/snapshots/two/f")).unwrap(),
        b"second"
    );
    assert_eq!(
        open_handle(&m.mnt, &h, libc::O_RDONLY).err(),
        Some(libc::ESTALE)
    );
}

/// The mount-table line of the mount at `mnt`.
fn mountinfo_line(mnt: &Path) -> Option<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap()))
        .map(String::from)
}

#[test]
fn a_mount_named_with_fsname_is_found_by_chunkfs_and_unmounted_by_that_name() {
    let name = format!("backup-vfs-{}", std::process::id());
    let Some(mut m) = Mounted::with_options(&[&format!("fsname={name}")]) else {
        return;
    };
    let line = mountinfo_line(&m.mnt).expect("mounted");
    assert!(line.contains(&format!(" - fuse.chunkfs {name} ")), "{line}");
    fs::write(m.path("f"), b"kept").unwrap();
    let store = m.store.canonicalize().unwrap();
    assert_eq!(
        fs::read(m.path(".chunkfs/store")).unwrap(),
        format!("{}\n", store.display()).into_bytes()
    );
    // Commands given a path in the mount, and commands given the store, find each other.
    let o = chunkfs(&["stats".as_ref(), m.mnt.as_os_str()]);
    assert!(o.status.success(), "stats: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&store.display().to_string()));
    // gc of a mounted store goes through its daemon (opening the store would find it locked).
    let o = chunkfs(&["gc".as_ref(), store.as_os_str()]);
    assert!(o.status.success(), "gc of the store: {}", stderr(&o));
    let other = m.dir.path().join("other");
    fs::create_dir(&other).unwrap();
    let o = chunkfs(&["mount".as_ref(), store.as_os_str(), other.as_os_str()]);
    assert!(
        stderr(&o).contains(&format!("mounted on {}", m.mnt.display())),
        "a second mount names the first: {}",
        stderr(&o)
    );
    // umount(8) by the name, as tools that unmount by device do.
    if root_or_skip("umount(8) needs root") {
        let pid = m.daemon_pid();
        let o = std::process::Command::new("umount")
            .arg(&name)
            .output()
            .unwrap();
        assert!(o.status.success(), "umount {name}: {}", stderr(&o));
        m.forget_mount();
        m.wait_daemon_exit(pid);
        assert_eq!(
            fs::read_to_string(m.store.join("chunkfs.exit")).unwrap(),
            "ok\n"
        );
        assert!(mountinfo_line(&m.mnt).is_none());
        m.mount(&[&format!("fsname={name}")]);
    }
    // chunkfs umount by the name waits for the daemon's final commit like by the mountpoint.
    let o = chunkfs(&["umount", &name]);
    assert!(o.status.success(), "chunkfs umount {name}: {}", stderr(&o));
    m.forget_mount();
    assert!(mountinfo_line(&m.mnt).is_none());
    m.mount(&[]);
    assert_eq!(fs::read(m.path("f")).unwrap(), b"kept");
}

/// Run the chunkfs executable as mount(8) runs its helper (`mount.fuse.chunkfs SOURCE
/// MOUNTPOINT -o OPTIONS`), through a link of that name in `dir`.
fn helper(dir: &Path, args: &[&OsStr]) -> std::process::Output {
    let link = dir.join("mount.fuse.chunkfs");
    if !link.exists() {
        std::os::unix::fs::symlink(mount_common::BIN, &link).unwrap();
    }
    std::process::Command::new(&link)
        .args(args)
        .output()
        .unwrap()
}

/// util-linux mount without helpers (`-i`): remount(2) as mount(8) itself makes it.
fn mount8_remount(mnt: &Path, how: &str) {
    let o = std::process::Command::new("mount")
        .args(["-i", "-o", &format!("remount,{how}")])
        .arg(mnt)
        .output()
        .unwrap();
    assert!(o.status.success(), "mount -o remount,{how}: {}", stderr(&o));
}

/// Wait (bounded) until the daemon's log has `line` `n` times: it follows the mount table.
fn wait_for_log(m: &Mounted, line: &str, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while m.log().matches(line).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never logged {line:?}: {}",
            m.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Size and mtime of each file of the store: what any write by the daemon changes. (Not the
/// WAL index, `meta.db-shm`, where SQLite readers take their read marks.)
fn store_state(store: &Path) -> Vec<(String, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<_> = fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with("meta.db") && !n.ends_with("-shm")) || n == "data.img"
        })
        .map(|e| {
            let md = e.metadata().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, md.len(), md.mtime(), md.mtime_nsec())
        })
        .collect();
    v.sort();
    v
}

fn errno_of<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
fn remount_read_only_refuses_every_change_and_read_write_allows_them_again() {
    if !root_or_skip("remount(2) needs root") {
        return;
    }
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("a"), b"before").unwrap();
    // As `mount -o remount,ro MNT` runs it once `chunkfs install-helper` linked it.
    let o = helper(
        m.dir.path(),
        &[
            m.store.as_os_str(),
            m.mnt.as_os_str(),
            OsStr::new("-o"),
            OsStr::new("remount,ro"),
        ],
    );
    assert!(
        o.status.success(),
        "remount,ro through the helper: {}",
        stderr(&o)
    );
    let line = mountinfo_line(&m.mnt).unwrap();
    assert!(
        line.contains(" ro,nosuid,nodev") && line.contains(" ro,user_id"),
        "read-only, the mount's other flags kept: {line}"
    );
    wait_for_log(&m, "remounted read-only", 1);
    let quiet = store_state(&m.store);
    let erofs = Some(libc::EROFS);
    assert_eq!(errno_of(fs::write(m.path("new"), b"x")), erofs);
    assert_eq!(
        errno_of(fs::OpenOptions::new().append(true).open(m.path("a"))),
        erofs
    );
    assert_eq!(errno_of(fs::create_dir(m.path("d"))), erofs);
    assert_eq!(errno_of(fs::rename(m.path("a"), m.path("b"))), erofs);
    assert_eq!(errno_of(fs::remove_file(m.path("a"))), erofs);
    assert_eq!(
        errno_of(fs::set_permissions(
            m.path("a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600)
        )),
        erofs
    );
    // The special operations are refused too (asked through /.chunkfs/ask, since the conduit
    // cannot be opened for writing).
    let o = chunkfs(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        OsStr::new("s"),
        m.mnt.as_os_str(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("(EROFS)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(m.path("a")).unwrap(), b"before");
    assert_eq!(fs::read_dir(&m.mnt).unwrap().count(), 1);
    assert_eq!(
        store_state(&m.store),
        quiet,
        "the daemon wrote to a read-only store"
    );
    // Back to read-write with util-linux's own remount(2): changes work again.
    mount8_remount(&m.mnt, "rw");
    wait_for_log(&m, "remounted read-write", 1);
    fs::write(m.path("new"), b"after").unwrap();
    let o = chunkfs(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        OsStr::new("s"),
        m.mnt.as_os_str(),
    ]);
    assert!(o.status.success(), "snapshot after rw: {}", stderr(&o));
    assert_eq!(
        fs::read(m.path(".chunkfs/snapshots/s/new")).unwrap(),
        b"after"
    );
    // And read-only again through `chunkfs mount -o remount,ro`.
    let o = chunkfs(&[
        "mount".as_ref(),
        m.store.as_os_str(),
        m.mnt.as_os_str(),
        OsStr::new("-o"),
        OsStr::new("remount,ro"),
    ]);
    assert!(
        o.status.success(),
        "chunkfs mount -o remount,ro: {}",
        stderr(&o)
    );
    wait_for_log(&m, "remounted read-only", 2);
    assert_eq!(errno_of(fs::write(m.path("new"), b"x")), erofs);
    mount8_remount(&m.mnt, "rw");
    wait_for_log(&m, "remounted read-write", 2);
    fs::write(m.path("new"), b"again").unwrap();
    // Without mount.fuse.chunkfs installed, mount(8) runs fuse3's mount.fuse3, which runs
    // `chunkfs SOURCE MOUNTPOINT -o OPTIONS` from PATH, repeating the mount's options.
    for (how, n) in [("ro", 3), ("rw", 3)] {
        let opts =
            format!("{how},nosuid,nodev,relatime,remount,user_id=0,group_id=0,default_permissions");
        let o = chunkfs(&[
            m.store.as_os_str(),
            m.mnt.as_os_str(),
            OsStr::new("-o"),
            OsStr::new(&opts),
        ]);
        assert!(
            o.status.success(),
            "chunkfs as run by mount.fuse3: {}",
            stderr(&o)
        );
        let word = if how == "ro" {
            "read-only"
        } else {
            "read-write"
        };
        wait_for_log(&m, &format!("remounted {word}"), n);
    }
    fs::write(m.path("new"), b"last").unwrap();
}

struct Quiet;

impl chunkfs::gc::Progress for Quiet {
    fn update(&self, _: &str, _: &chunkfs::gc::GcReport) {}
}

/// What the daemon does on a remount read-only, through the core: every change and every
/// GC batch (the background collector's included) is refused until it is writable again.
#[test]
fn a_filesystem_made_read_only_refuses_changes_and_collects_nothing_until_writable() {
    use chunkfs::fs::{Fs, FsOptions, Ino, MkfsOptions, open};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let mkfs = MkfsOptions {
        history_window: 0,
        ..MkfsOptions::default()
    };
    open::mkfs(&store, &mkfs).unwrap();
    let opts = FsOptions {
        background_gc: false,
        ..FsOptions::default()
    };
    let fs = Fs::open(&store, opts).unwrap();
    let (a, h) = fs
        .create(Ino::ROOT, b"a", 0o644, libc::O_RDWR, 0, 0)
        .unwrap();
    fs.write(a.ino, h.fh, 0, &random_bytes(1, 300_000)).unwrap();
    fs.release(a.ino, h.fh).unwrap();
    fs.unlink(Ino::ROOT, b"a").unwrap();
    fs.set_read_only(true).unwrap();
    let erofs = Some(libc::EROFS);
    assert_eq!(
        fs.mkdir(Ino::ROOT, b"d", 0o755, 0, 0)
            .err()
            .map(|e| e.errno()),
        erofs
    );
    assert_eq!(fs.gc(&Quiet).err().map(|e| e.errno()), erofs);
    assert_eq!(fs.background_gc_pass().err().map(|e| e.errno()), erofs);
    assert!(
        fs.stats().unwrap().reclaimable_bytes > 0,
        "nothing was collected"
    );
    fs.set_read_only(false).unwrap();
    let r = fs.gc(&Quiet).unwrap();
    assert!(r.chunks > 0, "{r:?}");
    fs.mkdir(Ino::ROOT, b"d", 0o755, 0, 0).unwrap();
}

/// A store mounted with `-o ro` is opened read-only: a remount read-write cannot make it
/// writable, so the daemon keeps refusing changes rather than failing on its own files.
#[test]
fn a_store_mounted_ro_stays_read_only_when_remounted_rw() {
    if !root_or_skip("remount(2) needs root") {
        return;
    }
    let Some(mut m) = Mounted::new() else { return };
    fs::write(m.path("a"), b"kept").unwrap();
    m.umount();
    m.mount(&["ro"]);
    mount8_remount(&m.mnt, "rw");
    wait_for_log(&m, "the store was opened read-only", 1);
    assert_eq!(errno_of(fs::write(m.path("b"), b"x")), Some(libc::EROFS));
    assert_eq!(fs::read(m.path("a")).unwrap(), b"kept");
}

const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B; // _IOWR('f', 11, struct fiemap)
const FICLONE: libc::c_ulong = 0x4004_9409; // _IOW(0x94, 9, int)

/// chunkfs has no extents to map and shares data by copy_file_range, not reflinks: both ask
/// clearly, EOPNOTSUPP, so tools fall back (filefrag to FIBMAP, cp --reflink=auto to copying).
#[test]
fn fiemap_and_ficlone_are_clearly_not_supported_and_tools_fall_back() {
    let Some(m) = Mounted::new() else { return };
    let data = random_bytes(11, 200_000);
    fs::write(m.path("f"), &data).unwrap();
    let f = fs::File::open(m.path("f")).unwrap();
    // struct fiemap: start, length, flags, mapped_extents, extent_count, reserved; no room
    // for extents (extent_count 0 asks only for the count).
    let mut fiemap = [0u64; 4];
    fiemap[1] = u64::MAX;
    // SAFETY: fiemap is a struct fiemap with extent_count 0, so the kernel writes no extents.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FIEMAP, fiemap.as_mut_ptr()) };
    assert_eq!((r, errno()), (-1, libc::EOPNOTSUPP), "FS_IOC_FIEMAP");
    let dst = fs::File::create(m.path("clone")).unwrap();
    // SAFETY: FICLONE takes the source descriptor as its argument.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE, f.as_raw_fd()) };
    assert_eq!((r, errno()), (-1, libc::EOPNOTSUPP), "FICLONE");
    let (src, to) = (m.path("f"), m.path("copy"));
    let o = std::process::Command::new("cp")
        .arg("--reflink=always")
        .args([&src, &to])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Operation not supported"),
        "{}",
        stderr(&o)
    );
    let o = std::process::Command::new("cp")
        .arg("--reflink=auto")
        .args([&src, &to])
        .output()
        .unwrap();
    assert!(o.status.success(), "cp --reflink=auto: {}", stderr(&o));
    assert_eq!(fs::read(&to).unwrap(), data);
    // filefrag falls back to FIBMAP, which FUSE answers with "not mapped" for every block.
    if let Ok(o) = std::process::Command::new("filefrag").arg(&src).output() {
        assert!(o.status.success(), "filefrag: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("0 extents found"));
    }
}

/// Inode flags (lsattr/chattr's FS_IOC_GETFLAGS, qemu-img's FS_IOC_FSGETXATTR) and any other
/// ioctl: chunkfs has none, and says so with ENOTTY, as a filesystem without them does.
#[test]
fn ioctls_chunkfs_does_not_have_give_enotty() {
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"x").unwrap();
    let f = fs::File::open(m.path("f")).unwrap();
    let mut buf = [0u8; 64];
    for cmd in [
        0x8008_6601u64, // FS_IOC_GETFLAGS
        0x801C_581F,    // FS_IOC_FSGETXATTR
        0x8004_7F01,    // _IOR(0x7f, 1, int): nobody's
    ] {
        // SAFETY: buf is larger than any of these ioctls' argument.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), cmd as libc::c_ulong, buf.as_mut_ptr()) };
        assert_eq!((r, errno()), (-1, libc::ENOTTY), "ioctl {cmd:#x}");
    }
}

/// `/.chunkfs/store` names the store, for anyone to read and no one to change.
#[test]
fn the_store_file_names_the_store_and_cannot_be_changed() {
    let Some(m) = Mounted::new() else { return };
    let store = m.store.canonicalize().unwrap();
    let f = m.path(".chunkfs/store");
    assert_eq!(
        fs::read(&f).unwrap(),
        format!("{}\n", store.display()).into_bytes()
    );
    assert_eq!(
        fs::metadata(&f).unwrap().len(),
        store.as_os_str().len() as u64 + 1
    );
    let eperm = Some(libc::EPERM);
    assert_eq!(errno_of(fs::OpenOptions::new().write(true).open(&f)), eperm);
    assert_eq!(errno_of(fs::remove_file(&f)), eperm);
    assert_eq!(errno_of(fs::rename(&f, m.path("x"))), eperm);
}
