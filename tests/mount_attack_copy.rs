//! `copy_file_range(2)` through a real mount, attacked: what the kernel caches of the
//! destination after a copy (pages mapped or cached before it, its mode after the copy drops
//! suid), and views of the past as sources for a user who could not read them.
//!
//! An unprivileged user (uid 4242) acts through an `-o allow_other` mount from a thread of its
//! own: raw setresuid/setresgid change only the calling thread's credentials, and dropping
//! uid 0 drops its capabilities (CAP_FSETID among them).

mod mount_common;

use mount_common::*;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const USER: u32 = 4242;

fn shared_mount() -> Option<Mounted> {
    if !root_or_skip("acting as another user needs root") {
        return None;
    }
    let m = Mounted::with_options(&["allow_other"])?;
    for p in [m.dir.path(), m.mnt.as_path()] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    Some(m)
}

/// Run `f` on a thread whose credentials are uid and gid 4242 with no groups.
fn as_user<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, USER, USER, USER), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, USER, USER, USER), 0);
        }
        f()
    })
    .join()
    .unwrap()
}

/// The mode as `stat -c %a` asks for it: statx for the mode alone, which the kernel answers
/// from its attribute cache unless that was invalidated.
fn cached_mode(p: &Path) -> u32 {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MODE, &mut st) };
    assert_eq!(r, 0, "statx: {}", std::io::Error::last_os_error());
    u32::from(st.stx_mode) & 0o7777
}

#[test]
fn a_copy_by_a_user_drops_suid_and_sgid_and_stat_shows_it_at_once() {
    let Some(m) = shared_mount() else { return };
    let pub_dir = m.path("pub");
    fs::create_dir(&pub_dir).unwrap();
    fs::set_permissions(&pub_dir, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(m.path("src"), random_bytes(1, 100_000)).unwrap();
    for (mode, after) in [(0o6755, 0o755), (0o2754, 0o754), (0o2744, 0o2744)] {
        let dst = pub_dir.join(format!("f{mode:o}"));
        let (src, d) = (m.path("src"), dst.clone());
        as_user(move || {
            fs::write(&d, random_bytes(2, 5000)).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(cached_mode(&d), mode);
            let from = fs::File::open(&src).unwrap();
            let to = fs::OpenOptions::new().write(true).open(&d).unwrap();
            assert_eq!(copy_file_range(&from, 10, &to, 20, 3000).unwrap(), 3000);
        });
        // No other request between: what the kernel shows must be what chunkfs did.
        assert_eq!(cached_mode(&dst), after, "{mode:o}");
        assert_eq!(
            fs::metadata(&dst).unwrap().permissions().mode() & 0o7777,
            after,
            "{mode:o}"
        );
    }
}

#[test]
fn a_write_by_a_user_drops_suid_and_stat_shows_it_at_once() {
    let Some(m) = shared_mount() else { return };
    let pub_dir = m.path("pub");
    fs::create_dir(&pub_dir).unwrap();
    fs::set_permissions(&pub_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let d = pub_dir.join("f");
    let d2 = d.clone();
    as_user(move || {
        fs::write(&d2, random_bytes(3, 5000)).unwrap();
        fs::set_permissions(&d2, fs::Permissions::from_mode(0o4755)).unwrap();
        let f = fs::OpenOptions::new().write(true).open(&d2).unwrap();
        f.write_all_at(b"changed", 100).unwrap();
    });
    assert_eq!(cached_mode(&d), 0o755);
}

#[test]
fn pages_mapped_and_cached_before_a_copy_show_the_copied_bytes() {
    let Some(m) = Mounted::new() else { return };
    let a = random_bytes(4, 300_000);
    let b = random_bytes(5, 300_000);
    fs::write(m.path("src"), &a).unwrap();
    fs::write(m.path("dst"), &b).unwrap();
    let dst = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("dst"))
        .unwrap();
    let len = b.len();
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            dst.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    let mapped = unsafe { std::slice::from_raw_parts(map as *const u8, len) };
    assert!(mapped == &b[..]); // every page faulted in
    let reader = fs::File::open(m.path("dst")).unwrap();
    let mut cached = vec![0u8; len];
    reader.read_exact_at(&mut cached, 0).unwrap();
    let src = fs::File::open(m.path("src")).unwrap();
    assert_eq!(
        copy_file_range(&src, 5_555, &dst, 12_345, 100_001).unwrap(),
        100_001
    );
    let mut want = b.clone();
    want[12_345..112_346].copy_from_slice(&a[5_555..105_556]);
    assert!(mapped == &want[..], "the mapping shows the old bytes");
    reader.read_exact_at(&mut cached, 0).unwrap();
    assert!(cached == want, "the page cache shows the old bytes");
    // Past the end: the size grows for every open file at once.
    assert_eq!(
        copy_file_range(&src, 0, &dst, 320_000, 50_000).unwrap(),
        50_000
    );
    want.resize(320_000, 0);
    want.extend_from_slice(&a[..50_000]);
    let mut all = vec![0u8; want.len()];
    reader.read_exact_at(&mut all, 0).unwrap();
    assert!(all == want);
    assert_eq!(reader.metadata().unwrap().len(), want.len() as u64);
    unsafe { libc::munmap(map, len) };
}

#[test]
fn views_of_the_past_a_user_could_not_read_cannot_be_copied_from() {
    let Some(m) = shared_mount() else { return };
    fs::create_dir(m.path("priv")).unwrap();
    fs::write(m.path("priv/secret"), random_bytes(6, 50_000)).unwrap();
    fs::set_permissions(m.path("priv"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(m.path("secret"), random_bytes(7, 50_000)).unwrap();
    fs::set_permissions(m.path("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    m.snapshot("s");
    // Readable now; not then.
    fs::set_permissions(m.path("priv"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(m.path("secret"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(m.path("pub")).unwrap();
    fs::set_permissions(m.path("pub"), fs::Permissions::from_mode(0o777)).unwrap();
    let paths: Vec<PathBuf> = ["priv/secret", "secret"]
        .iter()
        .map(|p| m.path(&format!(".chunkfs/snapshots/s/{p}")))
        .collect();
    let out = m.path("pub/out");
    as_user(move || {
        let to = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&out)
            .unwrap();
        for p in paths {
            let e = fs::File::open(&p).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{}", p.display());
        }
        drop(to);
    });
    assert_eq!(fs::metadata(m.path("pub/out")).unwrap().len(), 0);
}
