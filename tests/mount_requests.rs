//! The kernel requests a real mount is sent, counted by the daemon (`request-counts`,
//! docs/FUSE-TUNING.md), and the behaviour each cut of them could break: with
//! FUSE_HANDLE_KILLPRIV_V2 the kernel no longer clears suid/sgid itself on write, truncate,
//! fallocate and chown, so chunkfs must, exactly where Linux would.
//!
//! An unprivileged user (uid 4242, no CAP_FSETID) writes through an `-o allow_other` mount,
//! run with `setpriv`.

mod mount_common;

use mount_common::{BIN, Mounted, root_or_skip, stderr};
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::Path;
use std::process::{Command, Output};

const USER: u32 = 4242;

/// A mount other users may enter, or `None` when the test skips.
fn shared_mount() -> Option<Mounted> {
    if !root_or_skip("running processes as another user needs root") {
        return None;
    }
    let m = Mounted::with_options(&["allow_other"])?;
    chmod(m.dir.path(), 0o755);
    chmod(&m.mnt, 0o755);
    Some(m)
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

/// A file holding "data" with exactly `mode` (suid and sgid included), made by root.
fn file(p: &Path, mode: u32) {
    fs::write(p, "data").unwrap();
    chmod(p, mode);
    assert_eq!(self::mode(p), mode);
}

/// `sh -c script` as the unprivileged user, which must succeed.
fn as_user(script: &str) -> Output {
    let id = USER.to_string();
    let o = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "sh", "-c"])
        .arg(script)
        .current_dir("/")
        .output()
        .expect("run setpriv");
    assert!(o.status.success(), "`{script}` as {USER}: {}", stderr(&o));
    o
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// The daemon's request counts, through the conduit.
fn counts(m: &Mounted) -> Value {
    m.request_counts()
}

/// How many more requests of type `what` `after` counted than `before`.
fn more(before: &Value, after: &Value, what: &str) -> u64 {
    let n = |v: &Value| v.get(what).and_then(Value::as_u64).unwrap_or(0);
    n(after) - n(before)
}

#[test]
fn a_write_by_a_user_without_fsetid_drops_setuid_and_setgid_that_has_group_execute() {
    let Some(m) = shared_mount() else { return };
    let (both, sgid_nox, plain) = (m.path("both"), m.path("sgid-nox"), m.path("plain"));
    file(&both, 0o6777);
    file(&sgid_nox, 0o2767); // setgid without group execute marks locking, not privilege
    file(&plain, 0o0666);
    for f in [&both, &sgid_nox, &plain] {
        as_user(&format!("printf more >> {}", q(f)));
        assert_eq!(fs::read_to_string(f).unwrap(), "datamore");
    }
    assert_eq!(mode(&both), 0o0777);
    assert_eq!(mode(&sgid_nox), 0o2767);
    assert_eq!(mode(&plain), 0o0666);
    // Each write asks again: set again, it goes again.
    chmod(&both, 0o6777);
    as_user(&format!("printf x >> {}", q(&both)));
    assert_eq!(mode(&both), 0o0777);
}

#[test]
fn a_write_by_root_keeps_setuid_as_cap_fsetid_allows() {
    let Some(m) = shared_mount() else { return };
    let f = m.path("tool");
    file(&f, 0o4755);
    fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .unwrap()
        .write_all(b"more")
        .unwrap();
    assert_eq!(mode(&f), 0o4755);
}

#[test]
fn truncate_o_trunc_and_fallocate_by_a_user_drop_setuid_and_setgid() {
    let Some(m) = shared_mount() else { return };
    let (t, o, a) = (m.path("t"), m.path("o"), m.path("a"));
    for f in [&t, &o, &a] {
        file(f, 0o6777);
    }
    as_user(&format!("truncate -s 2 {}", q(&t)));
    as_user(&format!(": > {}", q(&o)));
    as_user(&format!("fallocate -l 8192 {}", q(&a)));
    assert_eq!(fs::read(&t).unwrap(), b"da");
    assert_eq!(fs::read(&o).unwrap(), b"");
    assert_eq!(fs::metadata(&a).unwrap().len(), 8192);
    for f in [&t, &o, &a] {
        assert_eq!(mode(f), 0o0777, "{}", f.display());
    }
}

#[test]
fn chown_drops_setuid_and_setgid_of_files_and_not_of_directories() {
    let Some(m) = shared_mount() else { return };
    let (f, d) = (m.path("f"), m.path("d"));
    file(&f, 0o6755);
    fs::create_dir(&d).unwrap();
    chmod(&d, 0o2775);
    chown(&f, Some(USER), Some(USER)).unwrap();
    chown(&d, Some(USER), Some(USER)).unwrap();
    assert_eq!(mode(&f), 0o0755);
    assert_eq!(mode(&d), 0o2775);
    assert_eq!(fs::metadata(&f).unwrap().uid(), USER);
    // Set-group-ID without group execute marks mandatory locking: Linux keeps it.
    let lock = m.path("lock");
    file(&lock, 0o6644);
    chown(&lock, Some(USER), Some(USER)).unwrap();
    assert_eq!(mode(&lock), 0o2644);
}

#[test]
fn a_file_is_probed_for_capabilities_once_not_before_every_write_and_chown_asks_no_attributes() {
    let Some(m) = shared_mount() else { return };
    let f = m.path("big");
    // What asking costs by itself (the conduit's own open, write, reads...).
    let idle = {
        let a = counts(&m);
        let b = counts(&m);
        move |what: &str| more(&a, &b, what)
    };
    let sent = |before: &Value, after: &Value, what: &str| more(before, after, what) - idle(what);
    let before = counts(&m);
    let mut h = fs::File::create(&f).unwrap();
    for _ in 0..8 {
        h.write_all(&[7u8; 65536]).unwrap();
    }
    drop(h);
    let after = counts(&m);
    // At least the 8 writes (the kernel may split one; under load it did, once).
    let writes = sent(&before, &after, "write");
    assert!(writes >= 8, "{writes} writes: {after}");
    let probes = sent(&before, &after, "getxattr:security.capability");
    assert!(probes <= 1, "{probes} capability probes for 8 writes");

    fs::metadata(m.mnt.as_path()).unwrap(); // the parent's attributes, fresh again
    fs::metadata(&f).unwrap();
    let before = counts(&m);
    chown(&f, Some(USER), Some(USER)).unwrap();
    let after = counts(&m);
    assert_eq!(sent(&before, &after, "setattr"), 1);
    assert_eq!(sent(&before, &after, "getattr"), 0, "{after}");
}

#[test]
fn request_counts_are_for_admins_and_are_logged_at_unmount_when_asked() {
    let Some(mut m) = shared_mount() else { return };
    let script = format!(
        r#"exec 3<>{}/.chunkfs/ctl && printf '{{"op":"request-counts"}}' >&3 && cat <&3"#,
        q(&m.mnt)
    );
    let reply: Value = serde_json::from_slice(&as_user(&script).stdout).unwrap();
    assert_eq!(reply["errno"], libc::EPERM, "{reply}");

    let o = Command::new(BIN)
        .arg("stats")
        .arg("--requests")
        .arg(&m.mnt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("lookup"));

    m.umount();
    let o = Command::new(BIN)
        .env("CHUNKFS_REQUEST_COUNTS", "1")
        .arg("mount")
        .arg(&m.store)
        .arg(&m.mnt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    fs::write(m.path("one"), "x").unwrap();
    m.umount();
    let log = m.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("requests served:"))
        .unwrap_or_else(|| panic!("no counts in the log:\n{log}"));
    assert!(line.split_whitespace().any(|w| w == "create=1"), "{line}");
}

#[test]
fn cp_writes_a_large_file_in_requests_of_max_write_as_st_blksize_asks() {
    let Some(m) = shared_mount() else { return };
    let src = m.dir.path().join("src");
    fs::write(&src, mount_common::random_bytes(5, 4 << 20)).unwrap();
    let idle = {
        let a = counts(&m);
        let b = counts(&m);
        more(&a, &b, "write")
    };
    let before = counts(&m);
    let o = Command::new("cp")
        .arg(&src)
        .arg(m.path("dst"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let after = counts(&m);
    assert_eq!(fs::metadata(m.path("dst")).unwrap().blksize(), 1 << 20);
    assert_eq!(fs::read(m.path("dst")).unwrap(), fs::read(&src).unwrap());
    // 4 MiB in 1 MiB requests (it was 32 of 128 KiB with st_blksize 4096).
    let writes = more(&before, &after, "write") - idle;
    assert!(writes <= 4, "{writes} write requests for 4 MiB");
}

#[test]
fn a_copy_file_range_by_a_user_drops_setuid_and_setgid_and_by_root_keeps_them() {
    let Some(m) = shared_mount() else { return };
    let (src, by_user, by_root) = (m.path("src"), m.path("by-user"), m.path("by-root"));
    file(&src, 0o0644);
    fs::write(&src, "copy").unwrap();
    file(&by_user, 0o6777);
    file(&by_root, 0o4755);
    // Through copy_file_range alone (an O_TRUNC open would drop the bits by itself): cat
    // copies with it to a descriptor opened read-write, not appending, at offset 0.
    as_user(&format!("cat {} 1<> {}", q(&src), q(&by_user)));
    assert_eq!(fs::read(&by_user).unwrap(), b"copy");
    assert_eq!(mode(&by_user), 0o0777);
    let s = fs::File::open(&src).unwrap();
    let d = fs::OpenOptions::new().write(true).open(&by_root).unwrap();
    assert_eq!(mount_common::copy_file_range(&s, 0, &d, 4, 4).unwrap(), 4);
    assert_eq!(mode(&by_root), 0o4755);
    assert_eq!(fs::read(&by_root).unwrap(), b"datacopy");
}
