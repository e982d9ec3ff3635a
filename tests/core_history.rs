//! History through the core API: views of the past under /.chunkfs, snapshots, revert and
//! clones — each side of a clone independent of the other at any depth.

mod common;
mod support;

use chunkfs::fs::{CONTROL_NAME, FileKind, Fs, Ino, Seq};
use common::*;
use support::{Env, errno, names, resolve, tree};

fn mkdir(fs: &Fs, parent: Ino, name: &str) -> Ino {
    fs.mkdir(parent, name.as_bytes(), 0o755, 0, 0).unwrap().ino
}

fn overwrite(fs: &Fs, ino: Ino, data: &[u8]) {
    let h = fs.open(ino, libc::O_RDWR | libc::O_TRUNC).unwrap();
    fs.write(ino, h.fh, 0, data).unwrap();
    fs.release(ino, h.fh).unwrap();
}

fn read_path(fs: &Fs, path: &str) -> Vec<u8> {
    read_file(fs, resolve(fs, path).unwrap())
}

/// The namespace must stay sound: fsck's quick pass on the committed state.
fn assert_fsck_clean(fs: &Fs) {
    let r = fs.fsck_online(true).unwrap();
    assert!(!r.has_errors(), "{r:#?}");
}

#[test]
fn the_control_directory_is_hidden_but_reachable() {
    let env = Env::new();
    write_file(&env, Ino::ROOT, "a", b"x");
    assert_eq!(names(&env, Ino::ROOT), vec![b"a".to_vec()]);
    let ctl = env.lookup(Ino::ROOT, CONTROL_NAME).unwrap();
    assert_eq!(ctl.kind, FileKind::Dir);
    let mut inside = names(&env, ctl.ino);
    inside.sort();
    assert_eq!(
        inside,
        vec![
            b"ask".to_vec(),
            b"at".to_vec(),
            b"ctl".to_vec(),
            b"progress".to_vec(),
            b"snapshots".to_vec(),
            b"store".to_vec()
        ]
    );
    assert_eq!(
        errno(env.mkdir(Ino::ROOT, CONTROL_NAME, 0o755, 0, 0)),
        libc::EEXIST
    );
    assert_eq!(errno(env.rmdir(Ino::ROOT, CONTROL_NAME)), libc::EPERM);
}

#[test]
fn the_conduit_answers_json_requests() {
    let env = Env::new();
    write_file(&env, Ino::ROOT, "a", b"hello");
    let ctl_dir = env.lookup(Ino::ROOT, CONTROL_NAME).unwrap().ino;
    let ctl = env.lookup(ctl_dir, b"ctl").unwrap().ino;
    let h = env.open(ctl, libc::O_RDWR).unwrap();
    assert!(h.direct_io);
    let req = br#"{"op": "log", "path": "/a"}"#;
    env.write(ctl, h.fh, 0, req).unwrap();
    let resp = env.read(ctl, h.fh, 0, 1 << 20).unwrap();
    env.release(ctl, h.fh).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["result"]["kind"], "file");
    assert!(!v["result"]["revisions"].as_array().unwrap().is_empty());
    let bad = env.control(br#"{"op": "log", "path": "/missing"}"#);
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["errno"], libc::ENOENT);
    assert_eq!(env.control(b"not json")["errno"], libc::EINVAL);
}

#[test]
fn a_snapshot_view_keeps_showing_the_old_tree_while_the_live_tree_changes() {
    let env = Env::new();
    let d = mkdir(&env, Ino::ROOT, "d");
    let f = write_file(&env, d, "f", b"version one");
    write_file(&env, Ino::ROOT, "gone", b"will be deleted");
    let before = tree(&env, Ino::ROOT);
    let snap = env
        .snapshot_create(&chunkfs::fs::Caller::root(), "monday", "/")
        .unwrap();
    overwrite(&env, f, b"version two, longer");
    env.unlink(Ino::ROOT, b"gone").unwrap();
    write_file(&env, d, "new", b"new file");
    let view = resolve(&env, "/.chunkfs/snapshots/monday").unwrap();
    let seen = tree(&env, view);
    let strip = |t: std::collections::BTreeMap<String, (Ino, support::Found)>| {
        t.into_iter().map(|(k, (_, f))| (k, f)).collect::<Vec<_>>()
    };
    assert_eq!(strip(seen), strip(before));
    assert_eq!(read_path(&env, "/d/f"), b"version two, longer");
    assert_eq!(
        read_path(&env, "/.chunkfs/snapshots/monday/d/f"),
        b"version one"
    );
    // The same state by seq.
    assert_eq!(
        read_path(&env, &format!("/.chunkfs/at/{}/d/f", snap.seq)),
        b"version one"
    );
    assert_eq!(
        env.snapshot_list(&chunkfs::fs::Caller::root())
            .unwrap()
            .len(),
        1
    );
    env.snapshot_delete(&chunkfs::fs::Caller::root(), "monday")
        .unwrap();
    assert_eq!(
        errno(env.lookup(resolve(&env, "/.chunkfs/snapshots").unwrap(), b"monday")),
        libc::ENOENT
    );
}

#[test]
fn views_refuse_every_change_with_erofs() {
    let env = Env::new();
    write_file(&env, Ino::ROOT, "f", b"data");
    let s = env
        .snapshot_create(&chunkfs::fs::Caller::root(), "s", "/")
        .unwrap();
    let view = resolve(&env, "/.chunkfs/snapshots/s").unwrap();
    let f = resolve(&env, "/.chunkfs/snapshots/s/f").unwrap();
    assert_eq!(errno(env.open(f, libc::O_RDWR)), libc::EROFS);
    assert_eq!(errno(env.mkdir(view, b"x", 0o755, 0, 0)), libc::EROFS);
    assert_eq!(errno(env.unlink(view, b"f")), libc::EROFS);
    assert_eq!(
        errno(env.create(view, b"n", 0o644, libc::O_RDWR, 0, 0)),
        libc::EROFS
    );
    assert_eq!(errno(env.setxattr(f, b"user.a", b"1", 0)), libc::EROFS);
    assert_eq!(errno(env.setattr(f, &Default::default())), libc::EROFS);
    let _ = s;
}

#[test]
fn views_by_time_resolve_to_the_last_commit_before_it() {
    let env = Env::new();
    let f = write_file(&env, Ino::ROOT, "f", b"old");
    env.sync_all().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(std::time::Duration::from_millis(20));
    overwrite(&env, f, b"new");
    env.sync_all().unwrap();
    assert_eq!(read_path(&env, &format!("/.chunkfs/at/@{t}/f")), b"old");
    assert_eq!(read_path(&env, "/f"), b"new");
}

#[test]
fn log_lists_every_revision_of_a_file() {
    let env = Env::new();
    let f = write_file(&env, Ino::ROOT, "f", b"one");
    env.sync_all().unwrap();
    overwrite(&env, f, b"two!");
    env.sync_all().unwrap();
    overwrite(&env, f, b"three");
    let log = env.log(&chunkfs::fs::Caller::root(), "/f").unwrap();
    // One revision per committed state: the create and first write were one group commit.
    let sizes: Vec<(&str, u64)> = log
        .revisions
        .iter()
        .map(|r| (r.entry.op.as_str(), r.entry.size))
        .collect();
    assert_eq!(sizes, [("create", 3), ("write", 4), ("write", 5)]);
    assert!(log.revisions.iter().all(|r| r.time_ns.is_some()));
    let contents: std::collections::HashSet<_> = log
        .revisions
        .iter()
        .filter_map(|r| r.entry.content.clone())
        .collect();
    assert_eq!(contents.len(), 3, "three distinct contents");
}

/// A seq is open until committed or observed: every change it makes to an inode is one
/// revision, and no state anyone was told of changes afterwards.
#[test]
fn the_changes_of_one_seq_are_one_revision_until_someone_observes_it() {
    let env = Env::new();
    let f = write_file(&env, Ino::ROOT, "f", b"one");
    overwrite(&env, f, b"two!");
    let attr = env.getattr(f).unwrap();
    env.setattr(
        f,
        &chunkfs::fs::SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
    )
    .unwrap();
    let seen = env.current_seq();
    assert_eq!(attr.size, 4);
    overwrite(&env, f, b"three");
    let log = env.log(&chunkfs::fs::Caller::root(), "/f").unwrap();
    let states: Vec<(u64, Option<u64>, u64, u32)> = log
        .revisions
        .iter()
        .map(|r| {
            (
                r.entry.seq_from,
                r.entry.seq_to,
                r.entry.size,
                r.entry.mode & 0o777,
            )
        })
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(states[0].1, Some(states[1].0));
    assert!(
        states[0].0 <= seen.0 && seen.0 < states[1].0,
        "{states:?} {seen:?}"
    );
    assert_eq!(
        (states[0].2, states[0].3),
        (4, 0o600),
        "the last state of the first seq"
    );
    assert_eq!((states[1].2, states[1].3), (5, 0o600));
    // The seq observed shows the state it was observed in, after more changes.
    let view = format!("/.chunkfs/at/{}/f", seen.0);
    assert_eq!(read_path(&env, &view), b"two!");
}

/// A view of the open seq closes it: the view keeps showing what it showed, whatever the
/// same batch does next (a seq can be named without being told it, e.g. one past the last).
#[test]
fn a_view_of_the_open_seq_closes_it() {
    let env = Env::new();
    let f = write_file(&env, Ino::ROOT, "f", b"one");
    let s = env.current_seq();
    overwrite(&env, f, b"two!");
    let next = format!("/.chunkfs/at/{}/f", s.0 + 1);
    assert_eq!(read_path(&env, &next), b"two!");
    overwrite(&env, f, b"three");
    assert_eq!(read_path(&env, &next), b"two!");
    assert_eq!(read_file(&env, f), b"three");
}

#[test]
fn reverting_a_file_restores_its_content_and_can_itself_be_reverted() {
    let env = Env::new();
    let f = write_file(&env, Ino::ROOT, "f", b"first");
    let s1 = env.current_seq();
    overwrite(&env, f, b"second");
    let r = env.revert(&chunkfs::fs::Caller::root(), "/f", s1).unwrap();
    assert_eq!(read_path(&env, "/f"), b"first");
    assert_eq!(
        resolve(&env, "/f").unwrap(),
        f,
        "the inode keeps its identity"
    );
    env.revert(&chunkfs::fs::Caller::root(), "/f", Seq(r.seq - 1))
        .unwrap();
    assert_eq!(read_path(&env, "/f"), b"second");
    assert_fsck_clean(&env);
}

#[test]
fn reverting_a_tree_undoes_renames_deletes_and_new_hard_links() {
    let env = Env::new();
    let d = mkdir(&env, Ino::ROOT, "d");
    let sub = mkdir(&env, d, "sub");
    let a = write_file(&env, sub, "a", b"aaa");
    env.link(a, d, b"a-link").unwrap();
    write_file(&env, d, "b", b"bbb");
    write_file(&env, Ino::ROOT, "outside", b"untouched");
    let before = tree(&env, d);
    let s = env.current_seq();
    env.rename(d, b"b", sub, b"b-moved", Default::default())
        .unwrap();
    env.unlink(sub, b"a").unwrap();
    env.link(a, Ino::ROOT, b"escaped").unwrap();
    env.rmdir(d, b"sub").unwrap_err(); // not empty
    write_file(&env, d, "c", b"new");
    overwrite(&env, resolve(&env, "/d/a-link").unwrap(), b"changed");
    overwrite(&env, resolve(&env, "/outside").unwrap(), b"changed outside");
    env.revert(&chunkfs::fs::Caller::root(), "/d", s).unwrap();
    let after = tree(&env, resolve(&env, "/d").unwrap());
    let strip = |t: std::collections::BTreeMap<String, (Ino, support::Found)>| {
        t.into_iter().map(|(k, (_, f))| (k, f)).collect::<Vec<_>>()
    };
    assert_eq!(strip(after), strip(before));
    // Outside the reverted path nothing changed.
    assert_eq!(read_path(&env, "/outside"), b"changed outside");
    assert_eq!(read_path(&env, "/escaped"), b"changed");
    assert_fsck_clean(&env);
}

#[test]
fn reverting_the_root_brings_back_deleted_trees() {
    let env = Env::new();
    let d = mkdir(&env, Ino::ROOT, "d");
    let e = mkdir(&env, d, "e");
    write_file(&env, e, "f", b"deep");
    let before = tree(&env, Ino::ROOT);
    let s = env.current_seq();
    env.unlink(e, b"f").unwrap();
    env.rmdir(d, b"e").unwrap();
    env.rmdir(Ino::ROOT, b"d").unwrap();
    write_file(&env, Ino::ROOT, "later", b"x");
    env.revert(&chunkfs::fs::Caller::root(), "/", s).unwrap();
    let strip = |t: std::collections::BTreeMap<String, (Ino, support::Found)>| {
        t.into_iter().map(|(k, (_, f))| (k, f)).collect::<Vec<_>>()
    };
    assert_eq!(strip(tree(&env, Ino::ROOT)), strip(before));
    assert_fsck_clean(&env);
}

#[test]
fn an_open_file_under_a_reverted_directory_goes_stale() {
    let env = Env::new();
    let d = mkdir(&env, Ino::ROOT, "d");
    let f = write_file(&env, d, "f", b"one");
    let s = env.current_seq();
    overwrite(&env, f, b"two");
    let h = env.open(f, libc::O_RDONLY).unwrap();
    env.revert(&chunkfs::fs::Caller::root(), "/d", s).unwrap();
    assert_eq!(errno(env.read(f, h.fh, 0, 10)), libc::ESTALE);
    env.release(f, h.fh).unwrap();
    assert_eq!(read_file(&env, f), b"one");
}

#[test]
fn cloning_a_file_shares_data_and_then_diverges() {
    let env = Env::new();
    let data = random_bytes(5, 200_000);
    let f = write_file(&env, Ino::ROOT, "f", &data);
    let before = env.stats().unwrap().stored_bytes;
    env.clone_path(&chunkfs::fs::Caller::root(), "/f", "/g")
        .unwrap();
    assert_eq!(env.stats().unwrap().stored_bytes, before, "no data copied");
    let g = resolve(&env, "/g").unwrap();
    assert_ne!(f, g);
    overwrite(&env, g, b"clone changed");
    assert_eq!(read_file(&env, f), data);
    assert_eq!(read_file(&env, g), b"clone changed");
}

/// A tree five levels deep with a file at each level.
fn deep_tree(fs: &Fs) -> Vec<Ino> {
    let mut dirs = vec![mkdir(fs, Ino::ROOT, "src")];
    for i in 0..5 {
        let d = *dirs.last().unwrap();
        write_file(fs, d, &format!("f{i}"), format!("level {i}").as_bytes());
        dirs.push(mkdir(fs, d, &format!("d{i}")));
    }
    dirs
}

#[test]
fn a_cloned_tree_and_its_source_are_independent_at_depth_five() {
    let env = Env::new();
    deep_tree(&env);
    let src_before = tree(&env, resolve(&env, "/src").unwrap());
    env.clone_path(&chunkfs::fs::Caller::root(), "/src", "/copy")
        .unwrap();
    let strip = |t: std::collections::BTreeMap<String, (Ino, support::Found)>| {
        t.into_iter().map(|(k, (_, f))| (k, f)).collect::<Vec<_>>()
    };
    assert_eq!(
        strip(tree(&env, resolve(&env, "/copy").unwrap())),
        strip(src_before.clone())
    );
    let deep = "/d0/d1/d2/d3/d4";
    // Change the clone at depth 5: new file, overwrite, rename, delete.
    let cd = resolve(&env, &format!("/copy{deep}")).unwrap();
    write_file(&env, cd, "only-in-copy", b"c");
    overwrite(
        &env,
        resolve(&env, "/copy/d0/d1/d2/f3").unwrap(),
        b"copy changed",
    );
    let (copy, copy_d0) = (
        resolve(&env, "/copy").unwrap(),
        resolve(&env, "/copy/d0").unwrap(),
    );
    env.rename(copy_d0, b"f1", copy, b"f1-moved", Default::default())
        .unwrap();
    env.unlink(copy, b"f0").unwrap();
    // Change the source too.
    write_file(
        &env,
        resolve(&env, &format!("/src{deep}")).unwrap(),
        "only-in-src",
        b"s",
    );
    overwrite(&env, resolve(&env, "/src/f0").unwrap(), b"src changed");
    assert_eq!(read_path(&env, "/src/d0/d1/d2/f3"), b"level 3");
    assert_eq!(read_path(&env, "/copy/d0/d1/d2/f3"), b"copy changed");
    assert_eq!(read_path(&env, "/src/f0"), b"src changed");
    assert_eq!(errno(resolve(&env, "/copy/f0")), libc::ENOENT);
    assert_eq!(read_path(&env, "/src/f0"), b"src changed");
    assert_eq!(read_path(&env, "/copy/f1-moved"), b"level 1");
    assert_eq!(read_path(&env, "/src/d0/f1"), b"level 1");
    assert!(resolve(&env, &format!("/src{deep}/only-in-copy")).is_err());
    assert!(resolve(&env, &format!("/copy{deep}/only-in-src")).is_err());
    assert_fsck_clean(&env);
}

#[test]
fn a_clone_of_a_clone_and_a_clone_whose_source_is_deleted_stay_readable() {
    let env = Env::new();
    deep_tree(&env);
    let want = tree(&env, resolve(&env, "/src").unwrap());
    env.clone_path(&chunkfs::fs::Caller::root(), "/src", "/c1")
        .unwrap();
    overwrite(&env, resolve(&env, "/c1/d0/f1").unwrap(), b"c1 changed");
    assert_eq!(read_path(&env, "/src/d0/f1"), b"level 1");
    env.clone_path(&chunkfs::fs::Caller::root(), "/c1", "/c2")
        .unwrap();
    // Delete the whole source tree.
    let mut dirs = vec![resolve(&env, "/src").unwrap()];
    for i in 0..5 {
        dirs.push(
            env.lookup(*dirs.last().unwrap(), format!("d{i}").as_bytes())
                .unwrap()
                .ino,
        );
    }
    for i in (0..5).rev() {
        env.unlink(dirs[i], format!("f{i}").as_bytes()).unwrap();
        env.rmdir(dirs[i], format!("d{i}").as_bytes()).unwrap();
    }
    env.rmdir(Ino::ROOT, b"src").unwrap();
    let strip = |t: std::collections::BTreeMap<String, (Ino, support::Found)>| {
        t.into_iter().map(|(k, (_, f))| (k, f)).collect::<Vec<_>>()
    };
    let mut want_c2 = strip(want);
    for (k, f) in want_c2.iter_mut() {
        if k == "d0/f1" {
            *f = support::Found::File {
                data: b"c1 changed".to_vec(),
                nlink: 1,
            };
        }
    }
    assert_eq!(strip(tree(&env, resolve(&env, "/c2").unwrap())), want_c2);
    overwrite(&env, resolve(&env, "/c2/d0/d1/f2").unwrap(), b"c2 changed");
    assert_eq!(read_path(&env, "/c1/d0/d1/f2"), b"level 2");
    assert_eq!(read_path(&env, "/c2/d0/d1/f2"), b"c2 changed");
    assert_fsck_clean(&env);
}

#[test]
fn cloning_a_big_tree_does_not_touch_its_entries() {
    let env = Env::new();
    let src = mkdir(&env, Ino::ROOT, "big");
    for i in 0..300 {
        env.mknod(
            src,
            format!("n{i}").as_bytes(),
            libc::S_IFREG | 0o644,
            0,
            0,
            0,
        )
        .unwrap();
    }
    let rows_before = env.stats().unwrap().seq;
    env.clone_path(&chunkfs::fs::Caller::root(), "/big", "/big2")
        .unwrap();
    assert_eq!(env.stats().unwrap().seq, rows_before + 1, "one operation");
    assert_eq!(names(&env, resolve(&env, "/big2").unwrap()).len(), 300);
}

#[test]
fn stats_split_stored_bytes_between_the_current_tree_snapshots_clones_and_history() {
    let env = Env::new();
    let d = mkdir(&env, Ino::ROOT, "d");
    let f = write_file(&env, d, "f", &random_bytes(1, 100_000));
    let g = write_file(&env, d, "g", &random_bytes(2, 100_000));
    let h = write_file(&env, Ino::ROOT, "h", &random_bytes(3, 100_000));
    env.snapshot_create(&chunkfs::fs::Caller::root(), "s", "/")
        .unwrap();
    overwrite(&env, f, &random_bytes(4, 1000)); // f's old data: held by the snapshot
    env.clone_path(&chunkfs::fs::Caller::root(), "/d", "/d2")
        .unwrap();
    overwrite(&env, g, &random_bytes(5, 1000)); // g's old data: snapshot and clone both see it
    env.clone_path(&chunkfs::fs::Caller::root(), "/h", "/h2")
        .unwrap(); // a file clone shares the current content
    overwrite(&env, h, &random_bytes(6, 1000));
    let s = env.stats().unwrap();
    assert!(
        s.current_bytes >= 100_000,
        "h2 still holds h's old data: {s:#?}"
    );
    assert!(
        s.clone_only_bytes >= 100_000,
        "d2 reads g's old data from its base: {s:#?}"
    );
    assert!(
        s.snapshot_only_bytes >= 100_000,
        "only the snapshot holds f's old data: {s:#?}"
    );
    assert_eq!(
        s.current_bytes + s.snapshot_only_bytes + s.clone_only_bytes + s.history_only_bytes,
        s.stored_bytes
    );
    env.snapshot_delete(&chunkfs::fs::Caller::root(), "s")
        .unwrap();
    let s = env.stats().unwrap();
    assert!(
        s.clone_only_bytes >= 100_000,
        "the clone base holds g's old data: {s:#?}"
    );
    assert!(
        s.history_only_bytes >= 100_000,
        "f's old data is only history now: {s:#?}"
    );
}

#[test]
fn reverting_a_directory_rename_keeps_the_directory_and_its_entries() {
    let env = Env::new();
    let d = mkdir(&env, Ino::ROOT, "d");
    // "sub" sorts before "sub-renamed", so the old name is restored before the new one goes.
    let sub = mkdir(&env, d, "sub");
    write_file(&env, sub, "f", b"inside");
    let s = env.current_seq();
    env.rename(d, b"sub", d, b"sub-renamed", Default::default())
        .unwrap();
    env.revert(&chunkfs::fs::Caller::root(), "/d", s).unwrap();
    assert_eq!(resolve(&env, "/d/sub").unwrap(), sub);
    assert_eq!(read_path(&env, "/d/sub/f"), b"inside");
    assert!(resolve(&env, "/d/sub-renamed").is_err());
    // And the other order: the new name sorts first.
    env.rename(d, b"sub", d, b"a-sub", Default::default())
        .unwrap();
    let s2 = env.current_seq();
    env.rename(d, b"a-sub", d, b"z-sub", Default::default())
        .unwrap();
    env.revert(&chunkfs::fs::Caller::root(), "/d", s2).unwrap();
    assert_eq!(read_path(&env, "/d/a-sub/f"), b"inside");
    assert_fsck_clean(&env);
}

/// Every path under `dir` as seen at each of `seqs` (through `/.chunkfs/at/SEQ`), with what
/// it held, and the log of each file now.
fn past_and_logs(fs: &Fs, seqs: &[Seq], files: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for s in seqs {
        let at = resolve(fs, &format!("/.chunkfs/at/{}", s.0)).unwrap();
        for (path, (_, found)) in tree(fs, at) {
            out.push(format!("@{} {path} {found:?}", s.0));
        }
    }
    for f in files {
        let log = fs.log(&chunkfs::fs::Caller::root(), f).unwrap();
        for r in log.revisions {
            let e = r.entry;
            out.push(format!(
                "{f} {}..{:?} {} {} {:?}",
                e.seq_from, e.seq_to, e.op, e.size, e.content
            ));
        }
    }
    out
}

/// A store whose schema is that of the migrations before 0006 (the indexes that version 5
/// had) upgrades in place when opened, and answers every question about its past the same.
#[test]
fn a_store_from_before_the_lean_indexes_upgrades_and_reads_its_past_the_same() {
    let mut env = Env::new();
    let d = mkdir(&env, Ino::ROOT, "d");
    let f = write_file(&env, d, "f", b"one");
    env.setxattr(f, b"user.k", b"v1", 0).unwrap();
    let s1 = env.current_seq();
    overwrite(&env, f, b"two!");
    env.setxattr(f, b"user.k", b"v2", 0).unwrap();
    write_file(&env, d, "g", b"gone soon");
    let s2 = env.current_seq();
    env.rename(d, b"f", Ino::ROOT, b"moved", Default::default())
        .unwrap();
    env.unlink(d, b"g").unwrap();
    write_file(&env, d, "g", b"again");
    let s3 = env.current_seq();
    let seqs = [s1, s2, s3];
    let files = ["/moved", "/d/g"];
    let want = past_and_logs(&env, &seqs, &files);
    let fs = env.take();
    fs.close().unwrap();
    {
        // Back to schema 5: the indexes 0006 replaces, none of those it (or 0007) adds.
        let conn = rusqlite::Connection::open(env.ts.meta()).unwrap();
        conn.execute_batch(UNDO_MIGRATION_7).unwrap();
        conn.execute_batch(UNDO_MIGRATION_6).unwrap();
        conn.execute_batch("PRAGMA user_version = 5").unwrap();
    }
    env.put(env.ts.open());
    assert_eq!(past_and_logs(&env, &seqs, &files), want);
    let conn = rusqlite::Connection::open(env.ts.meta()).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, chunkfs::meta::schema::VERSION);
    assert_fsck_clean(&env);
}
