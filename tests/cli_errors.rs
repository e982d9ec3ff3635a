//! How the binaries end: an ordinary error is one line `chunkfs: <what>: <why>` and its exit
//! code, with no backtrace even under RUST_BACKTRACE=1; each cause is said once; and a closed
//! stdout ends every command quietly, as it ends coreutils (by SIGPIPE, nothing on stderr).

mod mount_common;

use mount_common::{BIN, Mounted, root_or_skip};
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PASSTHROUGH: &str = env!("CARGO_BIN_EXE_chunkfs-passthrough");

/// Run `bin ARGS` as a developer's shell would, with backtraces asked for.
fn run<S: AsRef<OsStr>>(bin: &str, args: &[S]) -> Output {
    Command::new(bin)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The command failed with exit code `code` and said so in one line starting with `prefix`.
/// That line.
fn one_line_error(o: &Output, prefix: &str, code: i32) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "exit status; stderr: {err}");
    assert!(
        !err.contains("acktrace") && !err.contains("panicked"),
        "a backtrace or panic: {err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with(prefix), "{err}");
    lines[0].to_string()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// A fresh unmounted store made by `chunkfs mkfs`, in a temp dir.
fn store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = run(
        BIN,
        &[
            OsStr::new("mkfs"),
            store.as_os_str(),
            "--size".as_ref(),
            "1G".as_ref(),
        ],
    );
    assert!(o.status.success(), "mkfs: {}", text(&o.stderr));
    (dir, store)
}

fn chunkfs_at(args: &[&str], path: &Path) -> Output {
    let mut v: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    v.push(path.as_os_str());
    run(BIN, &v)
}

// ---- one line, no backtrace ----

#[test]
fn a_usage_error_of_chunkfs_passthrough_is_one_line_without_a_backtrace() {
    let o = run::<&str>(PASSTHROUGH, &[]);
    let line = one_line_error(&o, "chunkfs-passthrough: usage: chunkfs-passthrough", 1);
    assert!(line.contains("SRC_DIR MOUNTPOINT"), "{line}");
}

#[test]
fn a_missing_source_of_chunkfs_passthrough_is_one_line_naming_it_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let o = run(PASSTHROUGH, &[missing.as_os_str(), dir.path().as_os_str()]);
    let line = one_line_error(&o, "chunkfs-passthrough: cannot resolve", 1);
    assert!(
        line.contains("missing: No such file or directory"),
        "{line}"
    );
}

#[test]
fn errors_about_a_missing_store_are_one_line_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for cmd in [&["stats"][..], &["gc"], &["config", "get"]] {
        let line = one_line_error(&chunkfs_at(cmd, &missing), "chunkfs: ", 1);
        assert!(line.ends_with("missing does not exist"), "{cmd:?}: {line}");
    }
    let line = one_line_error(&chunkfs_at(&["fsck"], &missing), "chunkfs: fsck: ", 8);
    assert!(line.ends_with("missing does not exist"), "{line}");
    let o = run(
        BIN,
        &[
            OsStr::new("mount"),
            missing.as_os_str(),
            dir.path().as_os_str(),
        ],
    );
    let line = one_line_error(&o, "chunkfs: store ", 1);
    assert!(line.contains("does not exist"), "{line}");
    assert!(line.ends_with("`"), "the advice comes last: {line}");
}

#[test]
fn a_store_path_that_is_a_file_is_one_line_saying_what_it_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a store").unwrap();
    for cmd in [&["stats"][..], &["gc"], &["config", "get"]] {
        let line = one_line_error(&chunkfs_at(cmd, &file), "chunkfs: ", 1);
        assert!(
            line.contains("is neither a chunkfs store"),
            "{cmd:?}: {line}"
        );
    }
    let o = run(
        BIN,
        &[
            OsStr::new("mount"),
            file.as_os_str(),
            dir.path().as_os_str(),
        ],
    );
    let line = one_line_error(&o, "chunkfs: ", 1);
    assert!(line.contains("not a chunkfs store"), "{line}");
    let o = run(BIN, &[OsStr::new("mkfs"), file.as_os_str()]);
    let line = one_line_error(&o, "chunkfs: ", 1);
    assert!(line.contains("not a directory"), "{line}");
    let line = one_line_error(&chunkfs_at(&["defrag"], &file), "chunkfs: ", 1);
    assert!(
        line.contains("file is not inside a mounted chunkfs"),
        "{line}"
    );
    assert!(
        line.ends_with("chunkfs defrag STORE FILE"),
        "the advice comes last: {line}"
    );
}

#[test]
fn the_mount_helper_says_its_usage_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("mount.chunkfs");
    std::os::unix::fs::symlink(BIN, &helper).unwrap();
    let o = run(helper.to_str().unwrap(), &["/only-one-argument"]);
    one_line_error(&o, "chunkfs: usage: mount.chunkfs STORE MOUNTPOINT", 1);
}

// ---- each cause once ----

/// Overwrite the superblock's first bytes, so that its checksum no longer matches.
fn damage_superblock(store: &Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(store.join("data.img"))
        .unwrap();
    f.write_all_at(b"XXXX", 60).unwrap();
}

/// The one error line of each command that opens `store` (fsck, gc, stats, and mount when
/// FUSE is usable), each checked to be one line with its exit code.
fn errors_of_every_opener(dir: &Path, store: &Path) -> Vec<String> {
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut lines = vec![
        one_line_error(&chunkfs_at(&["fsck"], store), "chunkfs: fsck: ", 8),
        one_line_error(&chunkfs_at(&["gc"], store), "chunkfs: ", 1),
        one_line_error(&chunkfs_at(&["stats"], store), "chunkfs: ", 1),
    ];
    if mount_common::fuse_usable() {
        let o = run(
            BIN,
            &[OsStr::new("mount"), store.as_os_str(), mnt.as_os_str()],
        );
        lines.push(one_line_error(&o, "chunkfs: ", 1));
    }
    lines
}

#[test]
fn a_corrupt_superblock_is_named_once_by_every_command_that_opens_the_store() {
    let (dir, store) = store();
    damage_superblock(&store);
    for line in errors_of_every_opener(dir.path(), &store) {
        assert_eq!(count(&line, "checksum mismatch"), 1, "{line}");
        assert_eq!(count(&line, "corrupt superblock"), 1, "{line}");
    }
}

#[test]
fn a_device_without_a_superblock_is_named_once_as_the_wrong_device() {
    let (dir, store) = store();
    std::fs::write(store.join("data.img"), vec![0u8; 1 << 20]).unwrap();
    for line in errors_of_every_opener(dir.path(), &store) {
        assert_eq!(count(&line, "no chunkfs superblock"), 1, "{line}");
        assert_eq!(count(&line, "wrong device"), 1, "{line}");
    }
}

/// A store with some history, unmounted and checkpointed, so that meta.db has pages beyond
/// the schema's to damage.
fn store_with_history() -> (tempfile::TempDir, PathBuf) {
    let (dir, store) = store();
    let fs = chunkfs::fs::Fs::open(&store, chunkfs::fs::FsOptions::default()).unwrap();
    for i in 0..200 {
        let name = format!("f{i}");
        let (a, h) = fs
            .create(
                chunkfs::fs::Ino::ROOT,
                name.as_bytes(),
                0o644,
                libc::O_RDWR,
                0,
                0,
            )
            .unwrap();
        fs.write(a.ino, h.fh, 0, name.repeat(500).as_bytes())
            .unwrap();
        fs.release(a.ino, h.fh).unwrap();
    }
    fs.close().unwrap();
    (dir, store)
}

fn assert_damage_named_once_with_the_way_out(line: &str) {
    assert!(count(line, "malformed") <= 1, "{line}");
    assert!(line.contains("damaged"), "{line}");
    assert!(line.contains("--rebuild-metadata"), "{line}");
    assert!(!line.contains("Error code"), "{line}");
}

#[test]
fn garbage_in_the_middle_of_meta_db_is_named_once_with_the_way_out() {
    use std::os::unix::fs::FileExt;
    let (_dir, store) = store_with_history();
    let meta = store.join("meta.db");
    let len = std::fs::metadata(&meta).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&meta).unwrap();
    f.write_all_at(&vec![0xde; 16384], len / 2 / 4096 * 4096)
        .unwrap();
    for cmd in [&["stats"][..], &["gc"]] {
        let o = chunkfs_at(cmd, &store);
        let line = one_line_error(&o, "chunkfs: ", 1);
        assert_damage_named_once_with_the_way_out(&line);
    }
}

#[test]
fn a_truncated_meta_db_is_named_once_with_the_way_out() {
    let (_dir, store) = store_with_history();
    let meta = store.join("meta.db");
    let len = std::fs::metadata(&meta).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&meta).unwrap();
    f.set_len(len / 3).unwrap();
    for cmd in [&["stats"][..], &["gc"], &["config", "get"]] {
        let o = chunkfs_at(cmd, &store);
        let line = one_line_error(&o, "chunkfs: ", 1);
        assert_damage_named_once_with_the_way_out(&line);
    }
}

// ---- a closed pipe ----

/// Output that cannot be written for another reason than a closed pipe is an error like any
/// other: one line, the command's exit code.
#[test]
fn a_full_disk_under_stdout_is_one_line_and_the_error_exit_code() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("skipped: no /dev/full");
        return;
    };
    let (_dir, store) = store();
    let s = store.to_str().unwrap();
    for (args, code) in [
        (&["stats", s][..], 1),
        (&["stats", s, "--json"], 1),
        (&["config", "get", s], 1),
        (&["fsck", s], 8),
        (&["--help"], 1),
    ] {
        let o = Command::new(BIN)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        let line = one_line_error(&o, "chunkfs: cannot write to stdout: ", code);
        assert!(line.contains("No space left on device"), "{args:?}: {line}");
    }
}

/// Run chunkfs with stdout a pipe whose reader is already gone: it must end quietly, by
/// SIGPIPE or with success, and print nothing on stderr.
fn ends_quietly_on_a_closed_pipe<S: AsRef<OsStr>>(args: &[S]) {
    ends_quietly_saying(args, "");
}

/// The same, for a command that says `notes` on stderr as it works (fsck online says what it
/// checks): nothing more.
fn ends_quietly_saying<S: AsRef<OsStr>>(args: &[S], notes: &str) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert_eq!(text(&o.stderr), notes, "chunkfs {shown:?} on a closed pipe");
    assert!(
        o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
        "chunkfs {shown:?} on a closed pipe: {:?}",
        o.status
    );
}

/// Run chunkfs with stdout a pipe whose reader reads `n` bytes and goes away, as `| head -c
/// N` does, for a command that prints more than a pipe holds (so it is still writing then).
fn ends_quietly_after_a_few_bytes<S: AsRef<OsStr>>(args: &[S], n: usize) {
    use std::io::Read;
    let (mut reader, writer) = std::io::pipe().unwrap();
    let child = Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = vec![0; n];
    reader.read_exact(&mut head).unwrap();
    drop(reader);
    let o = child.wait_with_output().unwrap();
    assert_eq!(text(&o.stderr), "", "after {n} bytes");
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}", o.status);
}

/// The command prints something when its stdout is open (else the closed pipe tests nothing);
/// what it says on stderr.
fn prints<S: AsRef<OsStr>>(args: &[S]) -> String {
    let o = run(BIN, args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!o.stdout.is_empty(), "prints nothing");
    text(&o.stderr)
}

fn both<S: AsRef<OsStr>>(args: &[S]) {
    let notes = prints(args);
    ends_quietly_saying(args, &notes);
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn help_ends_quietly_on_a_closed_pipe() {
    both(&["--help"]);
    both(&["help", "stats"]);
    both(&["stats", "--help"]);
    both(&["mount", "--help"]);
    both(&["--version"]);
}

#[test]
fn commands_on_an_unmounted_store_end_quietly_on_a_closed_pipe() {
    let (dir, store) = store_with_history();
    let s = p(&store);
    for args in [
        &["stats", s][..],
        &["stats", s, "--json"],
        &["fsck", s],
        &["fsck", s, "--json"],
        &["gc", s],
        &["gc", s, "--json"],
        &["config", "get", s],
        &["config", "get", s, "history-window"],
        &["defrag", s, "f1"],
    ] {
        both(args);
    }
    let other = dir.path().join("other");
    ends_quietly_on_a_closed_pipe(&["mkfs", p(&other), "--size", "1G"]);
    assert!(other.join("meta.db").is_file(), "mkfs did its work first");
}

#[test]
fn commands_on_a_mount_end_quietly_on_a_closed_pipe() {
    if !root_or_skip("snapshots of the whole tree and gc through the conduit need root") {
        return;
    }
    let Some(m) = Mounted::new() else { return };
    let mnt = p(&m.mnt);
    let file = m.path("notes.txt");
    for i in 0..5 {
        write_a_revision(&file, format!("revision {i}\n").repeat(100).as_bytes());
    }
    let f = p(&file);
    let log: serde_json::Value =
        serde_json::from_slice(&run(BIN, &["log", f, "--json"]).stdout).unwrap();
    let old = log["revisions"].as_array().unwrap().iter().rev().nth(1);
    let seq = old.expect("an older revision")["seq_from"].to_string();
    for args in [
        &["stats", mnt][..],
        &["stats", mnt, "--json"],
        &["stats", mnt, "--requests"],
        &["log", f],
        &["log", f, "--json"],
        &["cat", f, "--at", &seq],
        &["fsck", mnt],
        &["fsck", mnt, "--json"],
        &["gc", mnt],
        &["config", "get", mnt],
        &["defrag", f],
    ] {
        both(args);
    }
    let big = m.path("big");
    write_a_revision(&big, &mount_common::random_bytes(7, 1 << 20));
    write_a_revision(&big, b"small now");
    let log: serde_json::Value =
        serde_json::from_slice(&run(BIN, &["log", p(&big), "--json"]).stdout).unwrap();
    let revisions = log["revisions"].as_array().unwrap();
    let one_mib = revisions
        .iter()
        .find(|r| r["size"] == 1 << 20)
        .expect("the 1 MiB one");
    let at = one_mib["seq_from"].to_string();
    ends_quietly_after_a_few_bytes(&["cat", p(&big), "--at", &at], 600);
    prints(&["snapshot", "create", "one", mnt]);
    ends_quietly_on_a_closed_pipe(&["snapshot", "create", "two", mnt]);
    both(&["snapshot", "list", mnt]);
    let listed = text(&run(BIN, &["snapshot", "list", mnt]).stdout);
    assert!(listed.contains("two"), "snapshot create did its work first");
    ends_quietly_on_a_closed_pipe(&["snapshot", "delete", "two", mnt]);
    let copy = m.path("copy.txt");
    ends_quietly_on_a_closed_pipe(&["clone", f, p(&copy)]);
    assert!(copy.exists(), "clone did its work first");
    ends_quietly_on_a_closed_pipe(&["revert", f, "--to", "5"]);
    prints(&["revert", f, "--to", "7"]);
}

/// Replace the file's content and commit it: a revision of its own.
fn write_a_revision(path: &Path, data: &[u8]) {
    let mut w = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut w, data).unwrap();
    w.sync_all().unwrap();
}

/// The mount daemon keeps serving when the reader of its stdout and stderr goes away (say a
/// `--foreground 2>&1 | tee LOG` whose tee died): a closed pipe must not kill a mount with
/// writes not yet committed. It logs to stderr, so the log of its start already meets the
/// closed pipe.
#[test]
fn a_foreground_daemon_keeps_serving_after_its_output_pipe_closes() {
    if !mount_common::fuse_usable() {
        return;
    }
    let (dir, store) = store();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let (out_r, out_w) = std::io::pipe().unwrap();
    let (err_r, err_w) = std::io::pipe().unwrap();
    drop((out_r, err_r));
    let mut daemon = Command::new(BIN)
        .args([OsStr::new("mount"), store.as_os_str(), mnt.as_os_str()])
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(out_w)
        .stderr(err_w)
        .spawn()
        .unwrap();
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            if mounted_at(self.0) {
                let _ = Command::new("fusermount3").arg("-uz").arg(self.0).status();
            }
        }
    }
    let canon = mnt.canonicalize().unwrap();
    let _guard = Unmount(&canon);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !mounted_at(&canon) {
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon died");
        assert!(std::time::Instant::now() < deadline, "no mount after 30 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(mnt.join("kept"), b"still serving").unwrap();
    assert_eq!(std::fs::read(mnt.join("kept")).unwrap(), b"still serving");
    let o = run(BIN, &[OsStr::new("umount"), mnt.as_os_str()]);
    assert!(o.status.success(), "umount: {}", text(&o.stderr));
    let status = daemon.wait().unwrap();
    assert!(status.success(), "the daemon ended with {status:?}");
}

fn mounted_at(mnt: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = mnt.to_str().unwrap();
    table
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want) && l.contains("fuse.chunkfs"))
}

/// Someone who is not the store's owner is told that they may not look inside it, not that
/// it is no store or does not exist.
#[test]
fn a_store_of_another_user_is_named_permission_denied() {
    if !root_or_skip("running chunkfs as another user needs root") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (dir, store) = store();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let nobody = |args: &[&OsStr]| {
        Command::new(BIN)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    for cmd in ["stats", "gc"] {
        let o = nobody(&[OsStr::new(cmd), store.as_os_str()]);
        let line = one_line_error(&o, "chunkfs: cannot look inside", 1);
        assert!(line.contains("permission denied"), "{line}");
    }
    let o = nobody(&[OsStr::new("fsck"), store.as_os_str()]);
    one_line_error(&o, "chunkfs: fsck: cannot look inside", 8);
    let o = nobody(&[OsStr::new("mount"), store.as_os_str(), mnt.as_os_str()]);
    let line = one_line_error(&o, "chunkfs: cannot look inside store", 1);
    assert!(line.contains("permission denied"), "{line}");
}
