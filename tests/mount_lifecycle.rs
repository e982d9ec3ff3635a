//! The mount's life through the CLI: refusals with actionable messages, read-only mounts,
//! every way of ending a mount committing unsynced writes, mount(8) integration, and stats.

mod mount_common;

use mount_common::{BIN, Mounted, chunkfs, generate_tree, random_bytes, root_or_skip, sh, stderr};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

#[test]
fn a_read_only_mount_refuses_writes_with_erofs() {
    let Some(mut m) = Mounted::new() else { return };
    fs::write(m.path("kept"), b"before").unwrap();
    m.umount();
    m.mount(&["ro"]);
    assert_eq!(fs::read(m.path("kept")).unwrap(), b"before");
    let err = fs::write(m.path("new"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = fs::OpenOptions::new()
        .append(true)
        .open(m.path("kept"))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
}

#[test]
fn mounting_a_mounted_store_fails_naming_the_daemon() {
    let Some(m) = Mounted::new() else { return };
    let other = m.dir.path().join("other");
    fs::create_dir(&other).unwrap();
    let o = chunkfs(&["mount".as_ref(), m.store.as_os_str(), other.as_os_str()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    let pid = m.daemon_pid();
    assert!(err.contains("is already mounted"), "{err}");
    assert!(err.contains(&format!("daemon pid {pid}")), "{err}");
    assert!(err.contains(&m.mnt.display().to_string()), "{err}");
}

#[test]
fn missing_non_directory_and_non_empty_mountpoints_are_refused_with_advice() {
    let Some(m) = Mounted::new() else { return };
    let dir = m.dir.path();
    let try_mount = |mp: &Path| {
        let o = chunkfs(&["mount".as_ref(), m.store.as_os_str(), mp.as_os_str()]);
        assert_eq!(o.status.code(), Some(1));
        stderr(&o)
    };
    let err = try_mount(&dir.join("nowhere"));
    assert!(
        err.starts_with("chunkfs: mountpoint") && err.contains("mkdir -p"),
        "{err}"
    );
    fs::write(dir.join("file"), b"").unwrap();
    assert!(try_mount(&dir.join("file")).contains("is not a directory"));
    fs::create_dir(dir.join("full")).unwrap();
    fs::write(dir.join("full/x"), b"").unwrap();
    let err = try_mount(&dir.join("full"));
    assert!(
        err.contains("is not empty") && err.contains("-o nonempty"),
        "{err}"
    );
    let not_store = chunkfs(&[
        "mount".as_ref(),
        dir.as_os_str(),
        dir.join("full").as_os_str(),
    ]);
    assert!(stderr(&not_store).contains("is not a chunkfs store"));
}

#[test]
fn nonempty_option_mounts_over_a_non_empty_directory() {
    let Some(mut m) = Mounted::new() else { return };
    m.umount();
    fs::write(m.path("hidden"), b"under").unwrap();
    m.mount(&["nonempty"]);
    assert!(!m.path("hidden").exists());
}

#[test]
fn mkfs_makes_the_store_private_and_mount_warns_about_one_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let Some(mut m) = Mounted::new() else { return };
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&m.store), 0o700);
    let quiet = stderr(&m.try_mount(&[]));
    assert!(!quiet.contains("warning"), "{quiet}"); // mounted already: fails, but warns not
    m.umount();
    fs::set_permissions(&m.store, fs::Permissions::from_mode(0o755)).unwrap();
    let warned = stderr(&m.mount(&["allow_other"]));
    assert!(
        warned.contains("is mode 0755") && warned.contains("chmod 700"),
        "{warned}"
    );
}

/// Write without fsync, end the mount with `how`, and find the data after remounting.
fn unsynced_writes_survive(how: &str) {
    let Some(mut m) = Mounted::new() else { return };
    let data = random_bytes(11, 3 << 20);
    let mut f = fs::File::create(m.path("unsynced")).unwrap();
    f.write_all(&data).unwrap();
    drop(f);
    fs::create_dir(m.path("dir")).unwrap();
    let pid = m.daemon_pid();
    match how {
        "fusermount3" => sh(&format!("fusermount3 -u '{}'", m.mnt.display())),
        sig => sh(&format!("kill -{sig} {pid}")),
    };
    m.wait_daemon_exit(pid);
    m.forget_mount();
    assert!(
        m.log().contains("all changes committed"),
        "log: {}",
        m.log()
    );
    m.mount(&[]);
    assert!(
        fs::read(m.path("unsynced")).unwrap() == data,
        "data lost after {how}"
    );
    assert!(m.path("dir").is_dir());
}

#[test]
fn sigterm_to_the_daemon_unmounts_and_commits_unsynced_writes() {
    unsynced_writes_survive("TERM");
}

#[test]
fn sigint_to_the_daemon_unmounts_and_commits_unsynced_writes() {
    unsynced_writes_survive("INT");
}

#[test]
fn fusermount3_u_ends_the_daemon_after_committing_unsynced_writes() {
    unsynced_writes_survive("fusermount3");
}

#[test]
fn umount_refuses_paths_that_are_not_chunkfs_mounts() {
    let Some(m) = Mounted::new() else { return };
    let o = chunkfs(&["umount".as_ref(), m.dir.path().as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not mounted"), "{}", stderr(&o));
    let o = chunkfs(&["umount", "/proc"]);
    assert!(
        stderr(&o).contains("is not a chunkfs mount"),
        "{}",
        stderr(&o)
    );
}

fn stats_json(target: &Path) -> serde_json::Value {
    let o = chunkfs(&["stats".as_ref(), target.as_os_str(), "--json".as_ref()]);
    assert!(o.status.success(), "stats failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn stats_after_copying_a_tree_twice_shows_double_logical_bytes_and_dedup() {
    let Some(mut m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    generate_tree(&src, 5);
    let tree_bytes: u64 = String::from_utf8(
        sh(&format!(
            "find '{}' -type f -links 1 -printf '%s\\n'",
            src.display()
        ))
        .stdout,
    )
    .unwrap()
    .lines()
    .map(|l| l.parse::<u64>().unwrap())
    .sum::<u64>()
        + fs::metadata(src.join("hard")).unwrap().len();
    sh(&format!(
        "cp -a '{}' '{}'",
        src.display(),
        m.path("one").display()
    ));
    sh(&format!(
        "cp -a '{}' '{}'",
        src.display(),
        m.path("two").display()
    ));
    m.remount(); // stats read committed metadata
    let mut inside = stats_json(&m.path("two/dir0"));
    let mut s = stats_json(&m.store);
    // Free space follows the host filesystem's, which other tests change meanwhile.
    for v in [&mut inside, &mut s] {
        for k in ["free_bytes", "unallocated_bytes"] {
            v.as_object_mut().unwrap().remove(k);
        }
    }
    assert_eq!(s, inside, "a path inside the mount names the same store");
    let logical = s["logical_bytes"].as_u64().unwrap();
    assert_eq!(logical, 2 * tree_bytes);
    assert!(s["dedup_ratio"].as_f64().unwrap() >= 1.9, "{s}");
    assert!(s["stored_bytes"].as_u64().unwrap() <= tree_bytes, "{s}");
    let human = chunkfs(&["stats".as_ref(), m.store.as_os_str()]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("dedup ratio") && text.contains(" MiB ("),
        "{text}"
    );
}

/// `mount -t fuse.chunkfs` runs /sbin/mount.fuse.chunkfs, installed by `install-helper`.
#[test]
fn mount_t_fuse_chunkfs_mounts_through_the_installed_helper() {
    let Some(mut m) = Mounted::new() else { return };
    if !root_or_skip("mount(8) and /sbin need root") {
        return;
    }
    m.umount();
    let exe = Path::new(BIN).canonicalize().unwrap();
    let links = ["/sbin/mount.chunkfs", "/sbin/mount.fuse.chunkfs"].map(Path::new);
    let ours = |l: &Path| l.canonicalize().ok().as_deref() == Some(exe.as_path());
    let created: Vec<_> = links.iter().filter(|l| !l.exists()).collect();
    // install-helper never replaces what it does not own (no --force here); the completions
    // and man pages it would also install are tested under a temp root (tests/cli_docs.rs).
    let o = chunkfs(&["install-helper", "--no-docs"]);
    if !o.status.success() {
        eprintln!("skipped: another mount helper is installed: {}", stderr(&o));
        return;
    }
    assert!(links.iter().all(|l| ours(l)));
    let o = Command::new("mount")
        .args(["-t", "fuse.chunkfs", "-o", "noatime"])
        .arg(&m.store)
        .arg(&m.mnt)
        .output()
        .unwrap();
    for l in created {
        let _ = fs::remove_file(l);
    }
    assert!(o.status.success(), "mount -t fuse.chunkfs: {}", stderr(&o));
    let line = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.contains(&format!(" {} ", m.mnt.display())))
        .map(String::from)
        .expect("mount listed");
    assert!(
        line.contains("fuse.chunkfs") && line.contains("noatime"),
        "{line}"
    );
    fs::write(m.path("via-mount8"), b"ok").unwrap();
    m.umount();
    m.mount(&[]);
    assert_eq!(fs::read(m.path("via-mount8")).unwrap(), b"ok");
}

#[test]
fn every_subcommand_help_has_an_about_and_examples() {
    for cmd in ["mkfs", "mount", "umount", "stats", "install-helper"] {
        let o = chunkfs(&[cmd, "--help"]);
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("Examples:"),
            "{cmd} --help lacks examples:\n{text}"
        );
    }
    let o = chunkfs(&["mount"]);
    assert_eq!(o.status.code(), Some(1), "usage errors exit 1");
}

#[test]
fn a_store_of_a_newer_format_or_schema_is_refused_with_a_clear_message_and_left_alone() {
    let Some(mut m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"data").unwrap();
    m.umount();
    // A newer on-device format: the superblock's version field says 2.
    let image = m.store.join("data.img");
    let original = fs::read(&image).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&image).unwrap();
        f.write_all_at(&2u32.to_le_bytes(), 8).unwrap();
    }
    let o = m.try_mount(&[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("format version 2"), "{}", stderr(&o));
    fs::write(&image, &original).unwrap();
    // A newer metadata schema.
    let db = m.store.join("meta.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let o = m.try_mount(&[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("schema version 99") && stderr(&o).contains("upgrade"),
        "{}",
        stderr(&o)
    );
    let v: u32 = rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99, "the database was left as it was");
}

#[test]
fn mounting_a_store_onto_its_own_live_mountpoint_says_it_is_mounted_there() {
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"x").unwrap(); // the mountpoint now shows a non-empty tree
    let err = stderr(&m.try_mount(&[]));
    let mnt = m.mnt.display().to_string();
    assert!(
        err.contains(&format!("is already mounted at {mnt}")) && err.contains("chunkfs umount"),
        "{err}"
    );
    assert!(!err.contains("not empty"), "{err}");
    // Also with -o nonempty, which would otherwise stack a second mount of the store there.
    let err = stderr(&m.try_mount(&["nonempty"]));
    assert!(err.contains("is already mounted at"), "{err}");
}

#[test]
fn mounting_over_another_non_empty_mount_names_what_is_mounted_there() {
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"x").unwrap();
    let other = m.dir.path().join("other");
    assert!(
        chunkfs(&["mkfs".as_ref(), other.as_os_str()])
            .status
            .success()
    );
    let o = chunkfs(&["mount".as_ref(), other.as_os_str(), m.mnt.as_os_str()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("is not empty")
            && err.contains(&format!(
                "chunkfs store {} is mounted there",
                m.store.display()
            )),
        "{err}"
    );
}

/// SIGKILL the mount's daemon and wait until it is gone.
fn kill_daemon(m: &Mounted) {
    let pid = m.daemon_pid();
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    m.wait_daemon_exit(pid);
}

/// A mount over a mount whose daemon died is refused with the way out, which works.
fn refused_as_dead_then_unmounted(m: &mut Mounted) {
    let err = stderr(&m.try_mount(&[]));
    assert!(
        err.contains("whose daemon has ended") && err.contains("chunkfs umount"),
        "{err}"
    );
    let o = chunkfs(&["umount".as_ref(), m.mnt.as_os_str()]);
    m.forget_mount();
    assert!(fs::metadata(&m.mnt).is_ok(), "umount left: {}", stderr(&o));
}

#[test]
fn mounting_on_a_mount_whose_daemon_died_says_to_unmount_it_first() {
    let Some(mut m) = Mounted::new() else { return };
    kill_daemon(&m);
    let err = fs::metadata(&m.mnt).unwrap_err();
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::ENOTCONN | libc::ECONNABORTED)
        ),
        "{err}"
    );
    refused_as_dead_then_unmounted(&mut m);
    m.mount(&[]);
}

/// A mount in use had its root's attributes cached by the kernel (for an hour): a stat of the
/// mountpoint still succeeds after its daemon died, and must not pass it for a live mount.
#[test]
fn mounting_on_a_dead_mount_that_was_in_use_says_to_unmount_it_first() {
    let Some(mut m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"used").unwrap();
    fs::read_dir(&m.mnt).unwrap().for_each(drop);
    fs::metadata(&m.mnt).unwrap();
    kill_daemon(&m);
    refused_as_dead_then_unmounted(&mut m);
}

#[test]
fn umount_by_a_user_who_did_not_mount_says_who_may_and_leaves_the_mount() {
    if !root_or_skip("runs umount as another user") {
        return;
    }
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"kept").unwrap();
    let o = as_nobody("umount").arg(&m.mnt).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("it was mounted by root (uid 0); only that user or root may unmount it"),
        "{err}"
    );
    assert!(!err.contains("/etc/mtab"), "{err}");
    assert_eq!(fs::read(m.path("f")).unwrap(), b"kept");
}

#[test]
fn mkfs_of_an_image_says_how_far_it_can_grow_and_warns_of_a_size_over_the_free_space() {
    let dir = tempfile::tempdir().unwrap();
    let mkfs = |name: &str, size: Option<&str>| {
        let store = dir.path().join(name);
        let mut args: Vec<&std::ffi::OsStr> = vec!["mkfs".as_ref(), store.as_os_str()];
        if let Some(s) = size {
            args.extend(["--size", s].map(std::ffi::OsStr::new));
        }
        let o = chunkfs(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        (String::from_utf8_lossy(&o.stdout).into_owned(), stderr(&o))
    };
    // The default capacity is the host filesystem's size, more than it has free.
    let (out, err) = mkfs("default", None);
    assert!(
        out.contains("a sparse file that grows as data is stored, to ")
            && out.contains("(the free space of the filesystem holding it) and at most"),
        "{out}"
    );
    assert!(err.is_empty(), "no --size, no warning: {err}");
    let (out, err) = mkfs("small", Some("64M"));
    assert!(out.contains("up to its capacity 64.0 MiB"), "{out}");
    assert!(err.is_empty(), "{err}");
    let (_, err) = mkfs("huge", Some("100T"));
    assert!(
        err.contains("warning: --size 100.0 TiB is more than the") && err.contains("ENOSPC"),
        "{err}"
    );
}

#[test]
fn a_read_only_mount_answers_queries_through_ask_for_whoever_asks() {
    if !root_or_skip("asks as another user too") {
        return;
    }
    let Some(mut m) = Mounted::with_options(&["allow_other"]) else {
        return;
    };
    // A path long enough that its log request takes several names under `ask`.
    let deep: String = (0..4).map(|i| format!("/{}{i}", "d".repeat(120))).collect();
    fs::create_dir_all(m.path(&deep[1..])).unwrap();
    let file = m.path(&format!("{}/f", &deep[1..]));
    fs::write(&file, b"two").unwrap();
    fs::create_dir(m.path("private")).unwrap();
    fs::write(m.path("private/f"), b"secret").unwrap();
    sh(&format!("chmod 700 '{}'", m.path("private").display()));
    m.snapshot("before");
    m.umount();
    m.mount(&["ro", "allow_other"]);
    let run = |args: &[&std::ffi::OsStr]| {
        let o = chunkfs(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let log = run(&["log".as_ref(), file.as_os_str(), "--json".as_ref()]);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert_eq!(log["revisions"][0]["size"], 3, "{log}");
    let stats = run(&["stats".as_ref(), m.mnt.as_os_str(), "--json".as_ref()]);
    assert!(stats.contains("\"files\""), "{stats}");
    assert!(run(&["snapshot".as_ref(), "list".as_ref(), m.mnt.as_os_str()]).contains("before"));
    assert!(
        run(&["config".as_ref(), "get".as_ref(), m.mnt.as_os_str()]).contains("history-window")
    );
    // A change is refused as on any read-only mount.
    let o = chunkfs(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "after".as_ref(),
        m.mnt.as_os_str(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("EROFS"), "{}", stderr(&o));
    // The request acts for whoever asks: another user may not search `private`.
    let o = as_nobody("log").arg(m.path("private/f")).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("EACCES"), "{}", stderr(&o));
    // The protocol by hand, as docs/CONTROL.md shows it: a request as one name.
    let asked = sh(&format!(
        "cat \"{}/.chunkfs/ask/$(printf '{{\"op\":\"config-get\"}}' | basenc --base64url | tr -d =)\"",
        m.mnt.display()
    ));
    let v: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    // Names that carry no request are not found, and nothing is listed.
    assert!(fs::metadata(m.path(".chunkfs/ask/not!base64")).is_err());
    assert_eq!(fs::read_dir(m.path(".chunkfs/ask")).unwrap().count(), 0);
}

/// The daemon's table of `ask` names is bounded; another user looking up thousands of long
/// requests must not drop the directory a walk holds open (its next name would be ESTALE).
#[test]
fn another_users_flood_of_ask_names_does_not_break_a_walk_in_progress() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    if !root_or_skip("floods ask as another user") {
        return;
    }
    let Some(m) = Mounted::with_options(&["allow_other"]) else {
        return;
    };
    let ask = m.path(".chunkfs/ask");
    let openat = |at: &OwnedFd, name: &str, flags: i32| {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: `at` is open and `c` NUL-terminated.
        let fd = unsafe { libc::openat(at.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC) };
        assert!(fd >= 0, "{name}: {}", std::io::Error::last_os_error());
        // SAFETY: openat just returned it.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let request = format!(
        r#"{{"op":"stats"{}}}"#,
        " ".repeat(2 * chunkfs::fs::ask::PIECE)
    );
    let names = chunkfs::fs::ask::names(request.as_bytes());
    assert_eq!(names.len(), 3);
    let dir = OwnedFd::from(fs::File::open(&ask).unwrap());
    let first = openat(&dir, &names[0], libc::O_PATH | libc::O_DIRECTORY);
    // User nobody stats more long requests than the table holds.
    let mut paths = Vec::new();
    for i in 0..400 {
        // Each request differs from its first name on.
        let padded = format!("{i}{}", "0".repeat(15 * chunkfs::fs::ask::PIECE));
        let walk: Vec<String> = chunkfs::fs::ask::names(padded.as_bytes());
        paths.push(ask.join(walk.join("/")));
    }
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "stat",
            "-c",
            "%i",
        ])
        .args(&paths)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let second = openat(&first, &names[1], libc::O_PATH | libc::O_DIRECTORY);
    let last = openat(&second, &names[2], libc::O_RDONLY);
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut fs::File::from(last), &mut answer).unwrap();
    assert!(answer.contains(r#""ok":true"#), "{answer}");
}

#[test]
fn reading_an_ask_name_changes_nothing_even_through_a_symlink_root_follows() {
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"x").unwrap();
    // A user plants a link to a request that would revert the whole tree, hoping a root
    // process (a backup following symlinks, an indexer) reads it.
    let name = |req: &str| {
        let o = sh(&format!(
            "printf '%s' '{req}' | basenc --base64url | tr -d '=\\n'"
        ));
        String::from_utf8(o.stdout).unwrap()
    };
    for req in [
        r#"{"op":"revert","path":"/","seq":1}"#,
        r#"{"op":"snapshot-create","name":"planted"}"#,
        r#"{"op":"config-set","key":"history-window","value":"0"}"#,
    ] {
        let link = m.path("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(m.mnt.join(".chunkfs/ask").join(name(req)), &link).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&link).unwrap()).unwrap();
        assert_eq!(v["ok"], false, "{req}: {v}");
        assert_eq!(v["errno"], libc::EPERM, "{req}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("may only look"),
            "{v}"
        );
    }
    assert_eq!(fs::read(m.path("f")).unwrap(), b"x");
    assert!(!m.path(".chunkfs/snapshots/planted").exists());
    let get = m.ctl(r#"{"op":"config-get","key":"history-window"}"#);
    assert_eq!(
        get,
        serde_json::json!([["history-window", "1w"]]),
        "the default is kept"
    );
    // A query through the same kind of link answers.
    let stats: serde_json::Value = serde_json::from_slice(
        &fs::read(m.mnt.join(".chunkfs/ask").join(name(r#"{"op":"stats"}"#))).unwrap(),
    )
    .unwrap();
    assert_eq!(stats["ok"], true, "{stats}");
}

/// `chunkfs CMD` run as user nobody (uid and gid 65534, no groups); add its arguments.
fn as_nobody(cmd: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, cmd]);
    c
}
