//! History through a real mount: the conduit, snapshots and seq views, log and cat, revert,
//! clones and online fsck, all driven through the CLI and checked by reading through the
//! mount (so the kernel's caches must have been invalidated, not just the core updated).

mod mount_common;

use mount_common::{Mounted, assert_same_files, chunkfs, generate_tree, random_bytes, sh, stderr};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

/// Run chunkfs, require success, return stdout.
fn ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    let o = chunkfs(args);
    assert!(
        o.status.success(),
        "chunkfs {:?} failed: {}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        stderr(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Run chunkfs, require exit code 1, return stderr.
fn fails<S: AsRef<OsStr>>(args: &[S]) -> String {
    let o = chunkfs(args);
    assert_eq!(o.status.code(), Some(1), "expected failure: {}", stderr(&o));
    stderr(&o)
}

fn p(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// One request through the conduit, the way docs/CONTROL.md says: open read+write, write the
/// request, read the response from offset 0.
fn ctl(m: &Mounted, request: &Value) -> Value {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path(".chunkfs/ctl"))
        .unwrap();
    f.write_all(request.to_string().as_bytes()).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut out = String::new();
    f.read_to_string(&mut out).unwrap();
    serde_json::from_str(&out).unwrap()
}

/// The newest seq: every change made so far is visible at `.chunkfs/at/SEQ`.
fn seq_now(m: &Mounted) -> u64 {
    ctl(m, &json!({"op": "sync"}))["result"]["seq"]
        .as_u64()
        .unwrap()
}

fn cp_a(from: &Path, to: &Path) {
    sh(&format!("cp -a '{}' '{}'", from.display(), to.display()));
}

fn errno_of(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn in_dir(dir: &Path, args: &[&str]) -> Output {
    Command::new(mount_common::BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The seq `chunkfs revert` says undoes it.
fn undo_seq(revert_output: &str) -> String {
    let line = revert_output
        .lines()
        .find(|l| l.starts_with("undo with: "))
        .unwrap_or_else(|| panic!("no undo line in {revert_output:?}"));
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn snapshots_are_created_listed_and_deleted_through_the_cli() {
    let Some(m) = Mounted::new() else { return };
    fs::create_dir(m.path("docs")).unwrap();
    fs::write(m.path("docs/a"), b"one").unwrap();
    // Without PATH: the mount holding the current directory, whole.
    let o = in_dir(&m.path("docs"), &["snapshot", "create", "monday"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = ok(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "docs-only".as_ref(),
        p(&m.path("docs")),
    ]);
    assert!(out.contains("snapshot docs-only"), "{out}");
    let o = in_dir(&m.path("docs"), &["snapshot", "list"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("monday") && text.contains("docs-only"),
        "{text}"
    );
    let list: Value = serde_json::from_str(&ok(&[
        "snapshot".as_ref(),
        "list".as_ref(),
        "--json".as_ref(),
        p(&m.mnt),
    ]))
    .unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(names.contains(&"monday") && names.contains(&"docs-only"));
    assert_eq!(
        fs::read(m.path(".chunkfs/snapshots/monday/docs/a")).unwrap(),
        b"one"
    );
    assert_eq!(
        fs::read(m.path(".chunkfs/snapshots/docs-only/a")).unwrap(),
        b"one"
    );
    let mut listed: Vec<String> = fs::read_dir(m.path(".chunkfs/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, ["docs-only", "monday"]);

    let err = fails(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "monday".as_ref(),
        p(&m.mnt),
    ]);
    assert!(
        err.contains("EEXIST") && err.contains("snapshot delete"),
        "{err}"
    );
    let err = fails(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "x".as_ref(),
        p(&m.path("docs/a")),
    ]);
    assert!(err.contains("ENOTDIR"), "{err}");
    let err = fails(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "x".as_ref(),
        p(m.dir.path()),
    ]);
    assert!(err.contains("not inside a mounted chunkfs"), "{err}");

    ok(&[
        "snapshot".as_ref(),
        "delete".as_ref(),
        "monday".as_ref(),
        p(&m.mnt),
    ]);
    let err = fails(&[
        "snapshot".as_ref(),
        "delete".as_ref(),
        "monday".as_ref(),
        p(&m.mnt),
    ]);
    assert!(err.contains("no snapshot \"monday\""), "{err}");
    let text = ok(&["snapshot".as_ref(), "list".as_ref(), p(&m.mnt)]);
    assert!(
        !text.contains("monday") && text.contains("docs-only"),
        "{text}"
    );
}

/// The kernel caches names under /.chunkfs like any others: creating and deleting snapshots
/// must invalidate them, and a seq looked up before it existed must appear once it does.
#[test]
fn snapshot_and_seq_views_appear_and_disappear_at_once() {
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"x").unwrap();
    let view = m.path(".chunkfs/snapshots/s");
    assert_eq!(errno_of(fs::metadata(&view)), Some(libc::ENOENT));
    ok(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "s".as_ref(),
        p(&m.mnt),
    ]);
    assert_eq!(
        fs::read(view.join("f")).unwrap(),
        b"x",
        "a cached miss hides a new snapshot"
    );
    ok(&[
        "snapshot".as_ref(),
        "delete".as_ref(),
        "s".as_ref(),
        p(&m.mnt),
    ]);
    assert_eq!(
        errno_of(fs::metadata(&view)),
        Some(libc::ENOENT),
        "a deleted snapshot stays"
    );
    let next = seq_now(&m) + 1;
    let at = m.path(&format!(".chunkfs/at/{next}"));
    assert_eq!(errno_of(fs::metadata(&at)), Some(libc::ENOENT));
    fs::write(m.path("g"), b"y").unwrap();
    let now = seq_now(&m);
    assert!(now >= next);
    assert!(
        fs::metadata(&at).unwrap().is_dir(),
        "a cached miss hides a new seq"
    );
    let at_now = m.path(&format!(".chunkfs/at/{now}"));
    assert_eq!(fs::read(at_now.join("g")).unwrap(), b"y");
}

#[test]
fn a_snapshot_keeps_its_content_while_the_live_tree_changes() {
    let Some(m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    generate_tree(&src, 3);
    cp_a(&src, &m.path("t"));
    ok(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "s".as_ref(),
        p(&m.mnt),
    ]);
    let snap = m.path(".chunkfs/snapshots/s/t");
    // A reader in the middle of the snapshot's file while the live file is rewritten.
    let mut reader = fs::File::open(snap.join("dir0/sub0/f5")).unwrap();
    let mut first = vec![0; 100_000];
    reader.read_exact(&mut first).unwrap();
    fs::write(m.path("t/dir0/sub0/f5"), b"rewritten").unwrap();
    fs::remove_file(m.path("t/dir1/sub1/f4")).unwrap();
    fs::rename(m.path("t/dir2"), m.path("t/dir2-moved")).unwrap();
    fs::create_dir(m.path("t/new")).unwrap();
    fs::write(m.path("t/hard"), b"through the hard link").unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    first.extend(rest);
    assert_eq!(first, fs::read(src.join("dir0/sub0/f5")).unwrap());
    // The snapshot is the tree as it was, times and link counts included; the live tree moved on.
    mount_common::assert_same_tree(&src, &snap);
    assert_eq!(fs::read(m.path("t/dir0/sub0/f5")).unwrap(), b"rewritten");
    assert_eq!(
        fs::read(m.path("t/dir1/sub1/f5")).unwrap(),
        b"through the hard link"
    );
    assert!(!m.path("t/dir1/sub1/f4").exists() && m.path("t/dir2-moved").is_dir());
    assert!(!snap.join("new").exists() && snap.join("dir2").is_dir());
}

#[test]
fn seq_views_list_diff_and_copy_out_like_any_tree() {
    let Some(m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    generate_tree(&src, 4);
    cp_a(&src, &m.path("t"));
    let seq = seq_now(&m);
    sh(&format!("rm -rf '{}'", m.path("t/dir3").display()));
    fs::write(m.path("t/dir0/sub0/f1"), b"changed").unwrap();
    let view = m.path(&format!(".chunkfs/at/{seq}/t"));
    let ls = String::from_utf8(sh(&format!("ls -a '{}'", view.display())).stdout).unwrap();
    assert_eq!(
        ls.split_whitespace().collect::<Vec<_>>(),
        [".", "..", "dir0", "dir1", "dir2", "dir3", "hard", "link"]
    );
    mount_common::assert_same_tree(&src, &view);
    let out = m.dir.path().join("out");
    cp_a(&view, &out);
    mount_common::assert_same_tree(&src, &out);
    // Seq views also open by time: @UNIX and ISO 8601 name the newest seq committed by then.
    seq_now(&m);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let later = m.path(&format!(".chunkfs/at/@{now}/t"));
    assert_eq!(fs::read(later.join("dir0/sub0/f1")).unwrap(), b"changed");
    assert!(!later.join("dir3").exists());
    let old = m.path(".chunkfs/at/2000-01-01T00:00:00Z");
    assert_eq!(errno_of(fs::metadata(old)), Some(libc::ENOENT));
}

#[test]
fn writes_into_views_fail_with_erofs() {
    let Some(m) = Mounted::new() else { return };
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), b"content").unwrap();
    ok(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "s".as_ref(),
        p(&m.mnt),
    ]);
    let seq = seq_now(&m);
    for view in [
        m.path(".chunkfs/snapshots/s/d"),
        m.path(&format!(".chunkfs/at/{seq}/d")),
    ] {
        let f = view.join("f");
        let rofs = Some(libc::EROFS);
        assert_eq!(errno_of(fs::OpenOptions::new().write(true).open(&f)), rofs);
        assert_eq!(errno_of(fs::OpenOptions::new().append(true).open(&f)), rofs);
        assert_eq!(errno_of(fs::write(view.join("new"), b"x")), rofs);
        assert_eq!(errno_of(fs::create_dir(view.join("sub"))), rofs);
        assert_eq!(errno_of(fs::remove_file(&f)), rofs);
        assert_eq!(errno_of(fs::rename(&f, view.join("g"))), rofs);
        assert_eq!(
            errno_of(std::os::unix::fs::symlink("f", view.join("l"))),
            rofs
        );
        assert_eq!(errno_of(fs::hard_link(&f, view.join("h"))), rofs);
        let o = Command::new("rm").arg("-rf").arg(&view).output().unwrap();
        assert!(
            !o.status.success() && stderr(&o).contains("Read-only"),
            "{}",
            stderr(&o)
        );
        let o = Command::new("chmod").arg("000").arg(&f).output().unwrap();
        assert!(!o.status.success(), "chmod in a view succeeded");
        let o = Command::new("truncate")
            .args(["-s", "0"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(!o.status.success(), "truncate in a view succeeded");
        let o = Command::new("setfattr")
            .args(["-n", "user.x", "-v", "1"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(!o.status.success(), "setfattr in a view succeeded");
        assert_eq!(fs::read(&f).unwrap(), b"content");
    }
    // Nothing leaked into the live tree.
    assert_eq!(fs::read(m.path("d/f")).unwrap(), b"content");
    assert_eq!(fs::read_dir(m.path("d")).unwrap().count(), 1);
}

#[test]
fn the_control_directory_is_not_listed_but_is_reachable_by_name() {
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("file"), b"x").unwrap();
    let ls = String::from_utf8(sh(&format!("ls -a '{}'", m.mnt.display())).stdout).unwrap();
    assert_eq!(
        ls.split_whitespace().collect::<Vec<_>>(),
        [".", "..", "file"]
    );
    let ls =
        String::from_utf8(sh(&format!("ls '{}'", m.path(".chunkfs").display())).stdout).unwrap();
    assert_eq!(
        ls.split_whitespace().collect::<Vec<_>>(),
        ["ask", "at", "ctl", "progress", "snapshots", "store"]
    );
    assert!(m.path(".chunkfs").is_dir() && m.path(".chunkfs/ctl").is_file());
    assert_eq!(
        errno_of(fs::create_dir(m.path(".chunkfs"))),
        Some(libc::EEXIST)
    );
    assert_eq!(
        errno_of(fs::write(m.path(".chunkfs"), b"")),
        Some(libc::EISDIR)
    );
    assert_eq!(
        errno_of(fs::remove_dir(m.path(".chunkfs"))),
        Some(libc::EPERM)
    );
    assert_eq!(
        errno_of(fs::rename(m.path("file"), m.path(".chunkfs"))),
        Some(libc::EISDIR)
    );
    assert_eq!(
        errno_of(fs::remove_file(m.path(".chunkfs/ctl"))),
        Some(libc::EPERM)
    );
    assert_eq!(
        errno_of(fs::create_dir(m.path(".chunkfs/mine"))),
        Some(libc::EPERM)
    );
    // `find` and `du` over the mount do not wander into history.
    let found = String::from_utf8(sh(&format!("find '{}'", m.mnt.display())).stdout).unwrap();
    assert_eq!(found.lines().count(), 2, "{found}");
}

#[test]
fn the_conduit_speaks_the_documented_protocol() {
    let Some(m) = Mounted::new() else { return };
    let r = ctl(&m, &json!({"op": "stats"}));
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["result"]["capacity_bytes"].as_u64().unwrap() > 0);
    let r = ctl(&m, &json!({"op": "no-such-op"}));
    assert_eq!(
        (r["ok"].clone(), r["errno"].clone()),
        (json!(false), json!(libc::EINVAL)),
        "{r}"
    );
    let r = ctl(&m, &json!({"op": "log", "path": "/missing"}));
    assert_eq!(r["errno"], libc::ENOENT, "{r}");
    // A request may arrive in several writes; it runs on the first read; one per open.
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path(".chunkfs/ctl"))
        .unwrap();
    f.write_all(br#"{"op":"#).unwrap();
    f.write_all(br#""sync"}"#).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut out = String::new();
    f.read_to_string(&mut out).unwrap();
    let r: Value = serde_json::from_str(&out).unwrap();
    assert!(r["result"]["seq"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(errno_of(f.write_all(b"{}")), Some(libc::EINVAL));
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path(".chunkfs/ctl"))
        .unwrap();
    f.write_all(b"not json").unwrap();
    let mut out = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut out).unwrap();
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["errno"], libc::EINVAL, "{r}");
}

/// docs/CONTROL.md's shell example: one descriptor, write the request, `cat` the answer.
#[test]
fn the_conduit_answers_a_shell_that_reads_on_after_writing() {
    let Some(m) = Mounted::new() else { return };
    let o = sh(&format!(
        r#"cd '{}' && exec 3<>.chunkfs/ctl && printf '{{"op":"snapshot-list"}}' >&3 && cat <&3"#,
        m.mnt.display()
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.trim(), r#"{"ok":true,"result":[]}"#);
}

#[test]
fn log_shows_every_revision_and_cat_prints_each_old_content() {
    let Some(m) = Mounted::new() else { return };
    let f = m.path("notes.txt");
    let versions: Vec<Vec<u8>> = (0..3)
        .map(|i| random_bytes(i, 50_000 + i as usize))
        .collect();
    let mut seqs = Vec::new();
    for v in &versions {
        fs::write(&f, v).unwrap();
        seqs.push(seq_now(&m));
    }
    ok(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "last".as_ref(),
        p(&m.mnt),
    ]);
    fs::write(&f, b"now").unwrap();
    let log: Value =
        serde_json::from_str(&ok(&["log".as_ref(), p(&f), "--json".as_ref()])).unwrap();
    let revs = log["revisions"].as_array().unwrap();
    assert!(revs.len() >= 4, "{log}");
    assert_eq!(log["kind"], "file");
    let contents: Vec<&str> = revs.iter().filter_map(|r| r["content"].as_str()).collect();
    let mut distinct = contents.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 4,
        "four contents, each with its own id: {log}"
    );
    assert!(revs.iter().all(|r| r["time_ns"].as_i64().is_some()));
    assert_eq!(revs.last().unwrap()["seq_to"], Value::Null);
    let table = ok(&["log".as_ref(), p(&f)]);
    assert!(
        table.starts_with("SEQS") && table.contains("-rw-r--r--"),
        "{table}"
    );
    assert!(table.lines().count() > revs.len(), "{table}");
    let short = &contents.last().unwrap()[..12];
    assert!(table.lines().last().unwrap().ends_with(short), "{table}");

    for (v, seq) in versions.iter().zip(&seqs) {
        let out = chunkfs(&[
            "cat".as_ref(),
            p(&f),
            "--at".as_ref(),
            seq.to_string().as_ref(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(out.stdout == *v, "cat --at {seq} printed another revision");
    }
    let out = chunkfs(&[
        "cat".as_ref(),
        p(&f),
        "--snapshot".as_ref(),
        "last".as_ref(),
    ]);
    assert!(out.stdout == versions[2], "{}", stderr(&out));
    // By time: the revision's commit time, as @UNIX.
    let t = revs.last().unwrap()["time_ns"]
        .as_u64()
        .unwrap()
        .div_ceil(1_000_000_000);
    let out = chunkfs(&[
        "cat".as_ref(),
        p(&f),
        "--at".as_ref(),
        format!("@{t}").as_ref(),
    ]);
    assert_eq!(out.stdout, b"now", "{}", stderr(&out));
    // A deleted file's old revisions stay readable.
    fs::remove_file(&f).unwrap();
    let out = chunkfs(&[
        "cat".as_ref(),
        p(&f),
        "--at".as_ref(),
        seqs[0].to_string().as_ref(),
    ]);
    assert!(out.stdout == versions[0], "{}", stderr(&out));
    let err = fails(&["cat".as_ref(), p(&f), "--at".as_ref(), "1".as_ref()]);
    assert!(err.contains("did not exist at 1"), "{err}");
    let err = fails(&["cat".as_ref(), p(&f), "--at".as_ref(), "999999".as_ref()]);
    assert!(err.contains("nothing at 999999"), "{err}");
}

#[test]
fn reverting_a_file_restores_it_and_reverting_the_revert_goes_forward() {
    let Some(m) = Mounted::new() else { return };
    let f = m.path("f");
    fs::write(&f, b"old").unwrap();
    let seq = seq_now(&m);
    fs::write(&f, b"new and longer").unwrap();
    let out = ok(&[
        "revert".as_ref(),
        p(&f),
        "--to".as_ref(),
        seq.to_string().as_ref(),
    ]);
    assert!(out.contains(&format!("to seq {seq}")), "{out}");
    assert_eq!(fs::read(&f).unwrap(), b"old");
    assert_eq!(fs::metadata(&f).unwrap().len(), 3);
    let undo = undo_seq(&out);
    ok(&["revert".as_ref(), p(&f), "--to".as_ref(), undo.as_ref()]);
    assert_eq!(fs::read(&f).unwrap(), b"new and longer");
    assert_eq!(fs::metadata(&f).unwrap().len(), 14);
    // A file that did not exist then goes away; asking for a seq to come fails clearly.
    fs::write(m.path("later"), b"x").unwrap();
    ok(&[
        "revert".as_ref(),
        p(&m.path("later")),
        "--to".as_ref(),
        seq.to_string().as_ref(),
    ]);
    assert!(!m.path("later").exists());
    let err = fails(&["revert".as_ref(), p(&f), "--to".as_ref(), "999999".as_ref()]);
    assert!(
        err.contains("ENOENT") && err.contains("chunkfs log"),
        "{err}"
    );
    let err = fails(&["revert".as_ref(), p(&f), "--time".as_ref(), "12".as_ref()]);
    assert!(err.contains("--to 12"), "{err}");
}

/// A file's identity survives its revert: same inode number, and its log goes on.
#[test]
fn reverting_a_file_keeps_its_inode_and_its_log() {
    let Some(m) = Mounted::new() else { return };
    let f = m.path("f");
    fs::write(&f, b"old").unwrap();
    let seq = seq_now(&m);
    fs::write(&f, b"new").unwrap();
    let ino = fs::metadata(&f).unwrap().ino();
    let before = ok(&["log".as_ref(), p(&f)]).lines().count();
    let out = ok(&[
        "revert".as_ref(),
        p(&f),
        "--to".as_ref(),
        seq.to_string().as_ref(),
    ]);
    assert_eq!(
        fs::metadata(&f).unwrap().ino(),
        ino,
        "the revert replaced the inode: {out}"
    );
    let after = ok(&["log".as_ref(), p(&f)]).lines().count();
    assert_eq!(
        after,
        before + 1,
        "the revert is one more revision in the file's log"
    );
}

#[test]
fn reverting_a_tree_undoes_renames_deletes_and_hard_links_and_can_be_undone() {
    let Some(m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    generate_tree(&src, 6);
    let t = m.path("t");
    cp_a(&src, &t);
    let seq = seq_now(&m);
    // Renames (within and across directories), deletes (one name of a hard link, a whole
    // subtree), a new hard link, rewrites, new files and a new directory.
    fs::rename(t.join("dir0"), t.join("dir0-renamed")).unwrap();
    fs::rename(t.join("dir1/sub1/f2"), t.join("dir2/sub0/f2-moved")).unwrap();
    fs::remove_file(t.join("dir1/sub1/f5")).unwrap(); // "hard" is its other name
    sh(&format!("rm -rf '{}'", t.join("dir3").display()));
    fs::hard_link(t.join("dir2/sub0/f4"), t.join("dir1/new-hard")).unwrap();
    fs::write(t.join("hard"), b"rewritten through the remaining name").unwrap();
    fs::write(t.join("dir2/sub0/f0"), b"was empty").unwrap();
    fs::create_dir_all(t.join("fresh/deeper")).unwrap();
    fs::write(t.join("fresh/deeper/x"), b"x").unwrap();
    fs::remove_file(t.join("link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", t.join("link")).unwrap();
    let changed = m.dir.path().join("changed");
    cp_a(&t, &changed);
    // Prime the kernel's caches with the changed tree, so stale entries would show.
    sh(&format!(
        "ls -lR '{}' > /dev/null && cat '{}'/hard > /dev/null",
        t.display(),
        t.display()
    ));

    let out = ok(&[
        "revert".as_ref(),
        p(&t),
        "--to".as_ref(),
        seq.to_string().as_ref(),
    ]);
    mount_common::assert_same_tree(&src, &t);
    assert_eq!(
        fs::metadata(t.join("hard")).unwrap().ino(),
        fs::metadata(t.join("dir1/sub1/f5")).unwrap().ino(),
        "the hard link is one inode again"
    );
    assert!(!t.join("dir0-renamed").exists() && !t.join("fresh").exists());
    // The revert of the revert goes forward again.
    ok(&[
        "revert".as_ref(),
        p(&t),
        "--to".as_ref(),
        undo_seq(&out).as_ref(),
    ]);
    mount_common::assert_same_tree(&changed, &t);
    // Reverting the whole mount works the same way.
    let out = ok(&["revert".as_ref(), p(&m.mnt), "--to".as_ref(), "1".as_ref()]);
    assert_eq!(fs::read_dir(&m.mnt).unwrap().count(), 0, "{out}");
    ok(&[
        "revert".as_ref(),
        p(&m.mnt),
        "--to".as_ref(),
        undo_seq(&out).as_ref(),
    ]);
    mount_common::assert_same_tree(&changed, &t);
}

#[test]
fn an_open_file_under_a_reverted_directory_gets_estale() {
    let Some(m) = Mounted::new() else { return };
    fs::create_dir_all(m.path("d/sub")).unwrap();
    fs::write(m.path("d/sub/f"), b"first").unwrap();
    let seq = seq_now(&m);
    fs::write(m.path("d/sub/f"), b"second").unwrap();
    let mut open = fs::File::open(m.path("d/sub/f")).unwrap();
    let mut buf = Vec::new();
    open.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"second");
    ok(&[
        "revert".as_ref(),
        p(&m.path("d")),
        "--to".as_ref(),
        seq.to_string().as_ref(),
    ]);
    let mut buf = [0u8; 16];
    let err = open.read_at_start(&mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
}

/// The kernel must forget a reverted file's size and pages, even while it is open.
#[test]
fn a_file_open_during_a_revert_reads_back_reverted_by_path() {
    let Some(m) = Mounted::new() else { return };
    fs::create_dir_all(m.path("d/sub")).unwrap();
    fs::write(m.path("d/sub/f"), b"first").unwrap();
    let seq = seq_now(&m);
    fs::write(m.path("d/sub/f"), b"second").unwrap();
    let open = fs::File::open(m.path("d/sub/f")).unwrap();
    assert_eq!(fs::read(m.path("d/sub/f")).unwrap(), b"second");
    ok(&[
        "revert".as_ref(),
        p(&m.path("d")),
        "--to".as_ref(),
        seq.to_string().as_ref(),
    ]);
    assert_eq!(
        fs::metadata(m.path("d/sub/f")).unwrap().len(),
        5,
        "stale size"
    );
    assert_eq!(fs::read(m.path("d/sub/f")).unwrap(), b"first");
    drop(open);
}

trait ReadAtStart {
    fn read_at_start(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl ReadAtStart for fs::File {
    fn read_at_start(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, 0)
    }
}

/// Make the same change in the mount and in a reference copy.
fn both(mount_side: &Path, reference: &Path, change: impl Fn(&Path)) {
    change(mount_side);
    change(reference);
}

#[test]
fn clones_are_independent_at_depth_five_on_both_sides() {
    let Some(m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    let deep = "a/b/c/d/e";
    fs::create_dir_all(src.join(deep)).unwrap();
    for (i, dir) in ["a", "a/b", "a/b/c", "a/b/c/d", deep].iter().enumerate() {
        fs::write(src.join(dir).join("f"), random_bytes(i as u64, 70_000)).unwrap();
        fs::write(src.join(dir).join("g"), format!("g{i}")).unwrap();
    }
    fs::hard_link(src.join(deep).join("f"), src.join("a/hard")).unwrap();
    cp_a(&src, &m.path("orig"));
    let out = ok(&["clone".as_ref(), p(&m.path("orig")), p(&m.path("copy"))]);
    assert!(out.contains("directory tree"), "{out}");
    let (ref_orig, ref_copy) = (m.dir.path().join("ref-orig"), m.dir.path().join("ref-copy"));
    cp_a(&src, &ref_orig);
    cp_a(&src, &ref_copy);
    mount_common::assert_same_tree(&m.path("orig"), &m.path("copy"));

    // Each side changes at depth five; the other must not see it.
    both(&m.path("orig"), &ref_orig, |r| {
        let d = r.join(deep);
        fs::write(d.join("f"), b"orig rewrote f").unwrap(); // also a/hard
        fs::rename(d.join("g"), d.join("g-renamed")).unwrap();
        fs::write(d.join("new-in-orig"), b"o").unwrap();
    });
    both(&m.path("copy"), &ref_copy, |r| {
        let d = r.join(deep);
        fs::OpenOptions::new()
            .write(true)
            .open(d.join("f"))
            .unwrap()
            .set_len(10)
            .unwrap();
        fs::remove_file(d.join("g")).unwrap();
        fs::create_dir(d.join("new-dir-in-copy")).unwrap();
        fs::remove_file(r.join("a/b/c/d/f")).unwrap();
        fs::set_permissions(
            r.join("a/b/g"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    });
    assert_same_files(&ref_orig, &m.path("orig"));
    assert_same_files(&ref_copy, &m.path("copy"));
}

#[test]
fn reverting_a_file_inside_a_clone_leaves_the_clone_and_its_source_alone() {
    let Some(m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    generate_tree(&src, 7);
    cp_a(&src, &m.path("orig"));
    ok(&["clone".as_ref(), p(&m.path("orig")), p(&m.path("copy"))]);
    let seq = seq_now(&m);
    fs::write(m.path("copy/dir0/sub0/f1"), b"changed, then reverted").unwrap();
    let f1 = m.path("copy/dir0/sub0/f1");
    ok(&[
        "revert".as_ref(),
        p(&f1),
        "--to".as_ref(),
        seq.to_string().as_ref(),
    ]);
    assert_same_files(&src, &m.path("copy"));
    mount_common::assert_same_tree(&src, &m.path("orig"));
}

#[test]
fn a_clone_of_a_clone_and_a_clone_whose_source_was_deleted_stay_intact() {
    let Some(m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    generate_tree(&src, 8);
    cp_a(&src, &m.path("one"));
    ok(&["clone".as_ref(), p(&m.path("one")), p(&m.path("two"))]);
    fs::write(m.path("two/dir0/sub0/f3"), b"two changed").unwrap();
    ok(&["clone".as_ref(), p(&m.path("two")), p(&m.path("three"))]);
    fs::write(m.path("two/dir1/sub1/f1"), b"two changed after the clone").unwrap();
    fs::write(m.path("three/dir2/sub0/f2"), b"three changed").unwrap();
    assert_eq!(
        fs::read(m.path("three/dir0/sub0/f3")).unwrap(),
        b"two changed"
    );
    assert_eq!(
        fs::read(m.path("three/dir1/sub1/f1")).unwrap(),
        fs::read(src.join("dir1/sub1/f1")).unwrap()
    );
    assert_eq!(
        fs::read(m.path("two/dir2/sub0/f2")).unwrap(),
        fs::read(src.join("dir2/sub0/f2")).unwrap()
    );
    mount_common::assert_same_tree(&src, &m.path("one"));
    // Files clone too; then delete every source.
    ok(&[
        "clone".as_ref(),
        p(&m.path("one/dir3/sub1/f5")),
        p(&m.path("file-clone")),
    ]);
    let three = m.dir.path().join("three-before");
    cp_a(&m.path("three"), &three);
    sh(&format!(
        "rm -rf '{}' '{}'",
        m.path("one").display(),
        m.path("two").display()
    ));
    assert_same_files(&three, &m.path("three"));
    assert_eq!(
        fs::read(m.path("file-clone")).unwrap(),
        fs::read(src.join("dir3/sub1/f5")).unwrap()
    );
}

#[test]
fn clone_refuses_existing_destinations_other_mounts_and_its_own_inside() {
    let Some(m) = Mounted::new() else { return };
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("f"), b"x").unwrap();
    let err = fails(&["clone".as_ref(), p(&m.path("d")), p(&m.path("f"))]);
    assert!(err.contains("exists"), "{err}");
    let err = fails(&["clone".as_ref(), p(&m.path("d")), p(&m.path("d/inside"))]);
    assert!(
        err.contains("EINVAL") && err.contains("into itself"),
        "{err}"
    );
    let err = fails(&[
        "clone".as_ref(),
        p(&m.path("d")),
        p(&m.dir.path().join("out")),
    ]);
    assert!(err.contains("not inside a mounted chunkfs"), "{err}");
    let err = fails(&["clone".as_ref(), p(&m.path("missing")), p(&m.path("new"))]);
    assert!(err.contains("ENOENT"), "{err}");
    let Some(other) = Mounted::new() else { return };
    let err = fails(&["clone".as_ref(), p(&m.path("d")), p(&other.path("d"))]);
    assert!(err.contains("a clone stays in its mount"), "{err}");
    assert!(!m.path("d/inside").exists() && !other.path("d").exists());
}

#[test]
fn fsck_of_a_mounted_store_checks_online_and_is_clean() {
    let Some(m) = Mounted::new() else { return };
    let src = m.dir.path().join("src");
    generate_tree(&src, 9);
    cp_a(&src, &m.path("t"));
    fs::write(m.path("t/hard"), b"rewritten").unwrap();
    ok(&[
        "snapshot".as_ref(),
        "create".as_ref(),
        "s".as_ref(),
        p(&m.mnt),
    ]);
    sh(&format!("rm -rf '{}'", m.path("t/dir0").display()));
    for target in [m.mnt.clone(), m.path("t/dir1"), m.store.clone()] {
        let o = chunkfs(&["fsck".as_ref(), p(&target)]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
        assert!(out.trim_end().ends_with("clean"), "{out}");
    }
    let o = chunkfs(&[
        "fsck".as_ref(),
        p(&m.mnt),
        "--quick".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["quick"], true);
    let o = chunkfs(&["fsck".as_ref(), p(&m.mnt), "--repair".as_ref()]);
    assert_eq!(o.status.code(), Some(8));
    assert!(stderr(&o).contains("chunkfs umount"), "{}", stderr(&o));
    // The mount kept serving.
    assert_eq!(fs::read(m.path("t/hard")).unwrap(), b"rewritten");
}

#[test]
fn fsck_of_a_mounted_store_is_clean_after_a_directory_clone() {
    let Some(m) = Mounted::new() else { return };
    fs::create_dir_all(m.path("d/e")).unwrap();
    fs::write(m.path("d/e/f"), b"x").unwrap();
    ok(&["clone".as_ref(), p(&m.path("d")), p(&m.path("c"))]);
    let o = chunkfs(&["fsck".as_ref(), p(&m.mnt)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

#[test]
fn stats_of_a_path_inside_a_mount_come_from_the_daemon() {
    let Some(m) = Mounted::new() else { return };
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), random_bytes(1, 200_000)).unwrap();
    let json = |t: &Path| -> Value {
        serde_json::from_str(&ok(&["stats".as_ref(), p(t), "--json".as_ref()])).unwrap()
    };
    // free_bytes follows the host filesystem, which other tests are writing to.
    let without_free = |mut v: Value| {
        for k in ["free_bytes", "unallocated_bytes"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let inside = without_free(json(&m.path("d/f")));
    assert_eq!(inside["logical_bytes"], 200_000, "{inside}");
    assert_eq!(inside, without_free(json(&m.store)));
    assert_eq!(inside["seq"], json!(seq_now(&m)), "the daemon's own seq");
}

#[test]
fn history_commands_explain_paths_outside_a_mount_and_inside_views() {
    let Some(m) = Mounted::new() else { return };
    fs::write(m.path("f"), b"x").unwrap();
    let outside = m.dir.path().join("nowhere");
    let err = fails(&["log".as_ref(), p(&outside)]);
    assert!(
        err.contains("not inside a mounted chunkfs and does not exist"),
        "{err}"
    );
    fs::write(&outside, b"").unwrap();
    let err = fails(&["log".as_ref(), p(&outside)]);
    assert!(err.contains("not inside a mounted chunkfs"), "{err}");
    let seq = seq_now(&m);
    let err = fails(&["log".as_ref(), p(&m.path(&format!(".chunkfs/at/{seq}/f")))]);
    assert!(err.contains("read-only history views"), "{err}");
    let err = fails(&["cat".as_ref(), p(&m.path("f"))]);
    assert!(err.contains("--at") && err.contains("--snapshot"), "{err}");
    let err = fails(&["log".as_ref(), p(&m.path("gone"))]);
    assert!(
        err.starts_with("chunkfs: log on ") && err.contains("ENOENT"),
        "{err}"
    );
    for cmd in ["log", "cat", "snapshot", "revert", "clone"] {
        let o = chunkfs(&[cmd, "--help"]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("Examples:"),
            "{cmd}: {text}"
        );
    }
}
