//! The special operations' permission rules through the core API (docs/SECURITY.md), for the
//! cases a mount test reaches only with effort: the sticky bit, chown and chmod rules in a
//! revert, bringing back another user's inode, trusted xattrs, clones of mixed ownership,
//! the snapshot limit, views judged then and now, and the conduit's per-caller handles.

mod common;
mod support;

use chunkfs::fs::{Caller, Credentials, Fs, Ino, Seq, SetAttr};
use common::*;
use support::{Env, errno, resolve};

const ALICE: u32 = 1000;
const BOB: u32 = 1001;
const STAFF: u32 = 50;

fn alice() -> Caller {
    Caller::user(ALICE, ALICE, &[STAFF])
}

fn bob() -> Caller {
    Caller::user(BOB, BOB, &[])
}

fn root() -> Caller {
    Caller::root()
}

/// Bob as a kernel request names him (pid 0: his groups are unknown, which only denies).
fn bob_creds() -> Credentials {
    Credentials {
        uid: BOB,
        gid: BOB,
        pid: 0,
    }
}

/// The conduit's attributes.
fn ctl(fs: &Fs) -> chunkfs::fs::Attr {
    let dir = fs.lookup(Ino::ROOT, b".chunkfs").unwrap();
    fs.lookup(dir.ino, b"ctl").unwrap()
}

fn dir(fs: &Fs, parent: Ino, name: &str, mode: u32, uid: u32, gid: u32) -> Ino {
    fs.mkdir(parent, name.as_bytes(), mode, uid, gid)
        .unwrap()
        .ino
}

fn file(fs: &Fs, parent: Ino, name: &str, data: &[u8], mode: u32, uid: u32) -> Ino {
    let (a, h) = fs
        .create(parent, name.as_bytes(), mode, libc::O_RDWR, uid, uid)
        .unwrap();
    fs.write(a.ino, h.fh, 0, data).unwrap();
    fs.release(a.ino, h.fh).unwrap();
    a.ino
}

fn seq(fs: &Fs) -> Seq {
    fs.sync_all().unwrap();
    fs.current_seq()
}

fn chmod(fs: &Fs, ino: Ino, mode: u32) {
    let set = SetAttr {
        mode: Some(mode),
        ..Default::default()
    };
    fs.setattr(ino, &set).unwrap();
}

#[test]
fn the_sticky_bit_keeps_a_revert_from_removing_another_users_file() {
    let env = Env::new();
    let tmp = dir(&env, Ino::ROOT, "tmp", 0o1777, 0, 0);
    let before = seq(&env);
    file(&env, tmp, "alices", b"a", 0o644, ALICE);
    file(&env, tmp, "bobs", b"b", 0o644, BOB);
    // Reverting tmp would remove both: bob may not remove alice's file.
    assert_eq!(
        errno(env.revert(&bob(), "/tmp", before)),
        libc::EPERM,
        "sticky"
    );
    assert!(resolve(&env, "/tmp/alices").is_ok() && resolve(&env, "/tmp/bobs").is_ok());
    // Bob may revert his own entry away.
    env.revert(&bob(), "/tmp/bobs", before).unwrap();
    assert!(resolve(&env, "/tmp/bobs").is_err());
    assert!(resolve(&env, "/tmp/alices").is_ok());
}

#[test]
fn a_revert_changes_owner_only_for_root_and_mode_only_for_the_owner() {
    let env = Env::new();
    let shared = dir(&env, Ino::ROOT, "shared", 0o777, 0, 0);
    let f = file(&env, shared, "f", b"one", 0o666, ALICE);
    let before = seq(&env);
    chmod(&env, f, 0o600);
    // Bob may not chmod alice's file back, even with write permission on the directory.
    assert_eq!(errno(env.revert(&bob(), "/shared/f", before)), libc::EPERM);
    assert_eq!(env.getattr(f).unwrap().perm, 0o600);
    env.revert(&alice(), "/shared/f", before).unwrap();
    assert_eq!(env.getattr(f).unwrap().perm, 0o666);

    let before_chown = seq(&env);
    let set = SetAttr {
        uid: Some(BOB),
        gid: Some(BOB),
        ..Default::default()
    };
    env.setattr(f, &set).unwrap();
    // Giving the file back to alice is a chown: root's alone, even for bob, who owns it now.
    assert_eq!(
        errno(env.revert(&bob(), "/shared/f", before_chown)),
        libc::EPERM
    );
    env.revert(&root(), "/shared/f", before_chown).unwrap();
    assert_eq!(env.getattr(f).unwrap().uid, ALICE);
}

#[test]
fn content_comes_back_with_write_permission_and_a_deleted_file_only_for_its_owner() {
    let env = Env::new();
    let shared = dir(&env, Ino::ROOT, "shared", 0o777, 0, 0);
    let f = file(&env, shared, "groupfile", b"old", 0o666, ALICE);
    file(&env, shared, "alices", b"mine", 0o644, ALICE);
    let before = seq(&env);
    let h = env.open(f, libc::O_RDWR | libc::O_TRUNC).unwrap();
    env.write(f, h.fh, 0, b"new").unwrap();
    env.release(f, h.fh).unwrap();
    // Bob may write the file (0666), so he may put its old content back.
    env.revert(&bob(), "/shared/groupfile", before).unwrap();
    assert_eq!(read_file(&env, f), b"old");

    // Alice's file deleted: bringing it back would make a file of alice's; bob may not.
    let a = resolve(&env, "/shared/alices").unwrap();
    env.unlink(shared, b"alices").unwrap();
    let gone = seq(&env);
    assert_eq!(
        errno(env.revert(&bob(), "/shared/alices", Seq(gone.0 - 1))),
        libc::EPERM
    );
    env.revert(&alice(), "/shared/alices", Seq(gone.0 - 1))
        .unwrap();
    assert_eq!(
        read_file(&env, resolve(&env, "/shared/alices").unwrap()),
        b"mine"
    );
    assert_eq!(env.getattr(a).unwrap().uid, ALICE);
}

#[test]
fn trusted_attributes_come_back_only_for_root() {
    let env = Env::new();
    let home = dir(&env, Ino::ROOT, "home", 0o755, ALICE, ALICE);
    let f = file(&env, home, "f", b"x", 0o644, ALICE);
    env.setxattr(f, b"trusted.mark", b"1", 0).unwrap();
    let before = seq(&env);
    env.removexattr(f, b"trusted.mark").unwrap();
    assert_eq!(errno(env.revert(&alice(), "/home/f", before)), libc::EPERM);
    env.revert(&root(), "/home/f", before).unwrap();
    assert_eq!(env.getxattr(f, b"trusted.mark").unwrap(), b"1");
}

#[test]
fn a_clone_needs_everything_readable_and_owned_by_the_caller() {
    let env = Env::new();
    let home = dir(&env, Ino::ROOT, "home", 0o755, ALICE, ALICE);
    let src = dir(&env, home, "src", 0o755, ALICE, ALICE);
    file(&env, src, "a", b"a", 0o644, ALICE);
    let deep = dir(&env, src, "deep", 0o755, ALICE, ALICE);
    let f = file(&env, deep, "b", b"b", 0o600, ALICE);
    env.clone_path(&alice(), "/home/src", "/home/copy").unwrap();
    // Bob cannot read b (0600): EACCES before anything is made.
    let bobs = dir(&env, Ino::ROOT, "bob", 0o755, BOB, BOB);
    assert_eq!(
        errno(env.clone_path(&bob(), "/home/src", "/bob/copy")),
        libc::EACCES
    );
    // Readable but not his: a clone would keep alice as owner.
    chmod(&env, f, 0o644);
    assert_eq!(
        errno(env.clone_path(&bob(), "/home/src", "/bob/copy")),
        libc::EPERM
    );
    // Alice cannot put a clone into bob's directory.
    assert_eq!(
        errno(env.clone_path(&alice(), "/home/src", "/bob/x")),
        libc::EACCES
    );
    assert_eq!(support::names(&env, bobs), Vec::<Vec<u8>>::new());
    // A file of root's inside alice's tree makes it uncloneable for her.
    file(&env, deep, "roots", b"r", 0o644, 0);
    assert_eq!(
        errno(env.clone_path(&alice(), "/home/src", "/home/copy2")),
        libc::EPERM
    );
}

#[test]
fn log_hides_content_ids_of_revisions_the_caller_cannot_read_then_or_now() {
    let env = Env::new();
    let pub_ = dir(&env, Ino::ROOT, "pub", 0o755, 0, 0);
    let f = file(&env, pub_, "f", b"secret then", 0o600, 0);
    seq(&env);
    chmod(&env, f, 0o644);
    let h = env.open(f, libc::O_RDWR | libc::O_TRUNC).unwrap();
    env.write(f, h.fh, 0, b"public now").unwrap();
    env.release(f, h.fh).unwrap();
    let theirs = env.log(&bob(), "/pub/f").unwrap();
    let mine = env.log(&root(), "/pub/f").unwrap();
    assert_eq!(theirs.revisions.len(), mine.revisions.len());
    let shown = |l: &chunkfs::fs::Log| -> Vec<bool> {
        l.revisions
            .iter()
            .map(|r| r.entry.content.is_some())
            .collect()
    };
    // Root sees every id of content; bob only those of revisions readable at 0644.
    let (b, r) = (shown(&theirs), shown(&mine));
    assert!(r.iter().filter(|s| **s).count() > b.iter().filter(|s| **s).count());
    for (rev, seen) in theirs.revisions.iter().zip(&b) {
        assert_eq!(*seen, rev.entry.content.is_some());
        if rev.entry.mode & 0o004 == 0 {
            assert!(
                !seen,
                "a revision bob could not read shows its content: {rev:?}"
            );
        }
    }
    // Closed now: no id at all for bob, and a closed directory is EACCES.
    chmod(&env, f, 0o600);
    let closed = env.log(&bob(), "/pub/f").unwrap();
    assert!(closed.revisions.iter().all(|r| r.entry.content.is_none()));
    chmod(&env, pub_, 0o700);
    assert_eq!(errno(env.log(&bob(), "/pub/f")), libc::EACCES);
}

#[test]
fn each_user_but_root_holds_at_most_the_snapshot_limit() {
    let env = Env::new();
    dir(&env, Ino::ROOT, "home", 0o755, ALICE, ALICE);
    env.config_set("snapshot-limit", "2").unwrap();
    env.snapshot_create(&alice(), "a1", "/home").unwrap();
    env.snapshot_create(&alice(), "a2", "/home").unwrap();
    assert_eq!(
        errno(env.snapshot_create(&alice(), "a3", "/home")),
        libc::EDQUOT
    );
    for i in 0..3 {
        env.snapshot_create(&root(), &format!("r{i}"), "/").unwrap();
    }
    env.snapshot_delete(&alice(), "a1").unwrap();
    env.snapshot_create(&alice(), "a3", "/home").unwrap();
    // Bob may neither take nor delete snapshots of alice's directory.
    assert_eq!(
        errno(env.snapshot_create(&bob(), "b", "/home")),
        libc::EPERM
    );
    assert_eq!(errno(env.snapshot_delete(&bob(), "a2")), libc::EPERM);
    // Alice may delete root's snapshot of her directory: she owns what it shows.
    env.snapshot_create(&root(), "of-alice", "/home").unwrap();
    env.snapshot_delete(&alice(), "of-alice").unwrap();
}

#[test]
fn views_show_permissions_no_more_open_than_now() {
    let env = Env::new();
    let d = dir(&env, Ino::ROOT, "d", 0o755, 0, 0);
    file(&env, d, "f", b"x", 0o644, 0);
    let then = seq(&env);
    chmod(&env, d, 0o711);
    let at = env
        .lookup(env.lookup(Ino::ROOT, b".chunkfs").unwrap().ino, b"at")
        .unwrap();
    let view = env.lookup(at.ino, then.0.to_string().as_bytes()).unwrap();
    let vd = env.lookup(view.ino, b"d").unwrap();
    assert_eq!(vd.perm, 0o711, "0755 then, 0711 now");
    // Opening through the view checks the path now as well: with d at 0700, bob may not.
    chmod(&env, d, 0o700);
    let vf = env.lookup(vd.ino, b"f").unwrap();
    let bob = bob_creds();
    assert_eq!(
        errno(env.open_as(&bob, vf.ino, libc::O_RDONLY)),
        libc::EACCES
    );
    assert_eq!(errno(env.opendir_as(&bob, vd.ino)), libc::EACCES);
    let h = env.open(vf.ino, libc::O_RDONLY).unwrap(); // root (this test) may
    env.release(vf.ino, h.fh).unwrap();
}

#[test]
fn a_conduit_handle_acts_only_for_whoever_opened_it() {
    let env = Env::new();
    let ctl = ctl(&env);
    let bob = bob_creds();
    let me = Credentials::this_process();
    // Opened by "root", written by bob: refused; bob's own handle works for bob.
    let h = env.open_as(&me, ctl.ino, libc::O_RDWR).unwrap();
    assert_eq!(
        errno(env.write_as(&bob, ctl.ino, h.fh, 0, br#"{"op":"gc"}"#)),
        libc::EPERM
    );
    env.release(ctl.ino, h.fh).unwrap();
    let h = env.open_as(&bob, ctl.ino, libc::O_RDWR).unwrap();
    env.write_as(&bob, ctl.ino, h.fh, 0, br#"{"op":"gc"}"#)
        .unwrap();
    assert_eq!(errno(env.read_as(&me, ctl.ino, h.fh, 0, 4096)), libc::EPERM);
    let reply = env.read_as(&bob, ctl.ino, h.fh, 0, 4096).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["errno"], libc::EPERM, "gc is not bob's: {reply}");
    env.release(ctl.ino, h.fh).unwrap();
}

#[test]
fn an_oversized_request_is_efbig_however_it_arrives() {
    let env = Env::new();
    let ctl = ctl(&env);
    let h = env.open(ctl.ino, libc::O_RDWR).unwrap();
    let piece = vec![b' '; 1 << 20];
    env.write(ctl.ino, h.fh, 0, &piece).unwrap(); // exactly the limit: taken
    assert_eq!(
        errno(env.write(ctl.ino, h.fh, 1 << 20, br#"{"op":"stats"}"#)),
        libc::EFBIG
    );
    let reply = env.read(ctl.ino, h.fh, 0, 4096).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["errno"], libc::EFBIG, "{reply}");
    env.release(ctl.ino, h.fh).unwrap();
}

#[test]
fn a_user_cannot_make_the_daemon_hold_unbounded_requests_in_open_conduits() {
    let env = Env::new();
    let ctl = ctl(&env);
    let bob = bob_creds();
    let piece = vec![b' '; 1 << 20];
    let mut held = Vec::new();
    let refused = loop {
        let h = env.open_as(&bob, ctl.ino, libc::O_RDWR).unwrap();
        held.push(h.fh);
        match env.write_as(&bob, ctl.ino, h.fh, 0, &piece) {
            Ok(_) => assert!(held.len() <= 64, "no budget after {} MiB", held.len()),
            Err(e) => break e.errno(),
        }
    };
    assert_eq!(refused, libc::EDQUOT);
    // Root is not limited, and closing frees the budget.
    let h = env.open(ctl.ino, libc::O_RDWR).unwrap();
    env.write(ctl.ino, h.fh, 0, &piece).unwrap();
    env.release(ctl.ino, h.fh).unwrap();
    for fh in held.drain(..) {
        env.release(ctl.ino, fh).unwrap();
    }
    let h = env.open_as(&bob, ctl.ino, libc::O_RDWR).unwrap();
    env.write_as(&bob, ctl.ino, h.fh, 0, br#"{"op":"stats"}"#)
        .unwrap();
    let reply = env.read_as(&bob, ctl.ino, h.fh, 0, 1 << 16).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    env.release(ctl.ino, h.fh).unwrap();
}

#[test]
fn reads_racing_on_one_conduit_execute_its_request_once() {
    let env = Env::new();
    let ctl = ctl(&env);
    for i in 0..100 {
        let h = env.open(ctl.ino, libc::O_RDWR).unwrap();
        let request = format!(r#"{{"op":"snapshot-create","name":"race{i}"}}"#);
        env.write(ctl.ino, h.fh, 0, request.as_bytes()).unwrap();
        // Two readers at once: one executes; the other is refused (EINVAL) or reads the
        // same answer. Neither may run the request again or answer for an empty one.
        let answers: Vec<Result<Vec<u8>, i32>> = std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| s.spawn(|| env.read(ctl.ino, h.fh, 0, 1 << 16).map_err(|e| e.errno())))
                .collect();
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut got = Vec::new();
        for a in answers {
            match a {
                Ok(bytes) => got.extend(bytes),
                Err(errno) => assert_eq!(errno, libc::EINVAL),
            }
        }
        let rest = env.read(ctl.ino, h.fh, 0, 1 << 16).unwrap();
        got.extend(rest);
        let reply: serde_json::Value = serde_json::from_slice(&got)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&got)));
        assert_eq!(reply["ok"], true, "request {i}: {reply}");
        env.release(ctl.ino, h.fh).unwrap();
    }
    let names = env.snapshot_list(&root()).unwrap();
    assert_eq!(names.len(), 100);
}
