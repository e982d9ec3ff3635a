//! Access control of the conduit (issue #12, docs/CONTROL.md): a second, unprivileged user
//! (uid 4242, gid 4242, no passwd entry needed) drives the special operations through a real
//! `-o allow_other` mount and is refused whatever the kernel would refuse for the equivalent
//! system calls, with that errno and with nothing changed; what the user may do with their
//! own files still works, and root may still do everything. Malformed requests are refused
//! with EINVAL (EFBIG when too big) whoever sends them.
//!
//! The user's processes get their groups, gid and uid in `pre_exec` (all three there: std's
//! `Command::uid`/`gid` would drop the supplementary groups the admin-group case needs).

mod mount_common;

use mount_common::{BIN, Mounted, assert_same_files, root_or_skip, sh, stderr};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The unprivileged user: uid and gid.
const USER: u32 = 4242;
/// A group the user is in only where a test says so: the admin group of
/// `-o chunkfs_admin_group=4300`.
const ADMIN_GROUP: u32 = 4300;

/// A mount open to other users, with a copy of chunkfs any user can run.
struct Env {
    m: Mounted,
    /// The copy of chunkfs, in a 0755 directory (target/ may sit where the user cannot go).
    bin: PathBuf,
    _bin_dir: tempfile::TempDir,
}

impl Env {
    /// A fresh store mounted with `opts` (`allow_other` among them) and the tree of
    /// [`populate`]; `None` when the test skips.
    fn new(opts: &[&str]) -> Option<Env> {
        if !root_or_skip("running processes as another user needs root") {
            return None;
        }
        let m = Mounted::with_options(opts)?;
        chmod(m.dir.path(), 0o755);
        chmod(&m.mnt, 0o755);
        let bin_dir = tempfile::tempdir().unwrap();
        chmod(bin_dir.path(), 0o755);
        let bin = bin_dir.path().join("chunkfs");
        fs::copy(BIN, &bin).unwrap();
        chmod(&bin, 0o755);
        for dir in [m.dir.path(), bin_dir.path()] {
            for a in dir.ancestors() {
                let mode = fs::metadata(a).unwrap().mode();
                assert!(
                    mode & 0o001 != 0,
                    "{} is not searchable by other users (mode {mode:o}): set TMPDIR elsewhere",
                    a.display()
                );
            }
        }
        let env = Env {
            m,
            bin,
            _bin_dir: bin_dir,
        };
        env.populate();
        Some(env)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.m.path(rel)
    }

    /// As root: /rootfile (0644), /rootdir (0700) holding secret, /pub (0755) holding file
    /// (0644) and private (0600), all root's; /home_u (0755) holding f and sub/{a,b,deeper/c},
    /// all the user's.
    fn populate(&self) {
        write(&self.path("rootfile"), "root's file\n", 0o644);
        mkdir(&self.path("rootdir"), 0o700);
        write(&self.path("rootdir/secret"), "secret v1\n", 0o600);
        mkdir(&self.path("pub"), 0o755);
        write(&self.path("pub/file"), "public\n", 0o644);
        write(&self.path("pub/private"), "private\n", 0o600);
        mkdir(&self.path("home_u"), 0o755);
        write(&self.path("home_u/f"), "old\n", 0o644);
        mkdir(&self.path("home_u/sub"), 0o755);
        write(&self.path("home_u/sub/a"), "a\n", 0o644);
        write(&self.path("home_u/sub/b"), "bbbbbbbb\n", 0o600);
        mkdir(&self.path("home_u/sub/deeper"), 0o750);
        write(&self.path("home_u/sub/deeper/c"), "c\n", 0o640);
        chown_tree(&self.path("home_u"), USER);
    }

    /// Run the chunkfs copy as root.
    fn root<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    }

    /// Run the chunkfs copy as root, require success, return stdout.
    fn root_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let o = self.root(args);
        assert!(
            o.status.success(),
            "chunkfs {:?} as root failed: {}",
            show(args),
            stderr(&o)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Run the chunkfs copy as the unprivileged user.
    fn user<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        as_user(USER, USER, &[], &self.bin, args)
    }

    /// Run the chunkfs copy as the unprivileged user, require success, return stdout.
    fn user_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        succeeded(self.user(args), args)
    }

    /// Run the chunkfs copy as the user, who is also in `ADMIN_GROUP`.
    fn admin<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        as_user(USER, USER, &[ADMIN_GROUP], &self.bin, args)
    }

    /// The newest seq: every change made so far is visible at `.chunkfs/at/SEQ`.
    fn seq_now(&self) -> u64 {
        let r = ctl_root(&self.m, &json!({"op": "sync"}).to_string());
        r["result"]["seq"].as_u64().unwrap_or_else(|| panic!("{r}"))
    }

    /// The snapshot names root lists, sorted.
    fn snapshots(&self) -> Vec<String> {
        let mut v = names(&self.root_ok(&["snapshot", "list", "--json", &self.s(".")]));
        v.sort();
        v
    }

    /// `rel` under the mount as a string argument (`.` for the mount itself).
    fn s(&self, rel: &str) -> String {
        let p = if rel == "." {
            self.m.mnt.clone()
        } else {
            self.path(rel)
        };
        p.to_str().unwrap().to_string()
    }

    /// Everything under the mount as root sees it: names, modes, owners, sizes, mtimes and
    /// contents. Equal listings before and after a refused request: it changed nothing.
    fn listing(&self) -> String {
        let o = sh(&format!(
            "cd '{}' && {{ find . -printf '%p %M %U %G %s %T@\\n'; \
             find . -type f -exec md5sum {{}} +; }} | sort",
            self.m.mnt.display()
        ));
        String::from_utf8(o.stdout).unwrap()
    }
}

fn show<S: AsRef<OsStr>>(args: &[S]) -> Vec<&OsStr> {
    args.iter().map(|a| a.as_ref()).collect()
}

fn succeeded<S: AsRef<OsStr>>(o: Output, args: &[S]) -> String {
    assert!(
        o.status.success(),
        "{:?} as the user failed: {}",
        show(args),
        stderr(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Run `program args` as `uid`:`gid` with exactly the supplementary `groups`, from `/`.
fn as_user<S: AsRef<OsStr>>(
    uid: u32,
    gid: u32,
    groups: &[u32],
    program: impl AsRef<OsStr>,
    args: &[S],
) -> Output {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir("/").env("HOME", "/");
    // SAFETY: the closure only makes async-signal-safe system calls (setgroups, setgid,
    // setuid) on memory allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run as the user")
}

/// Assert `o` failed and its message names `errno` (as "(EACCES)").
fn refused(o: &Output, errno: &str, what: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "{what}: expected {errno}, but it succeeded: {}{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains(&format!("({errno})")),
        "{what}: expected ({errno}) in the message, got: {err}"
    );
}

/// Assert a read failed for want of permission: `chunkfs cat` reports EACCES from the conduit
/// as "(EACCES)" and from reading a view as "Permission denied".
fn refused_read(o: &Output, what: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "{what}: expected EACCES, but it succeeded: {}{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains("(EACCES)") || err.contains("Permission denied"),
        "{what}: expected EACCES, got: {err}"
    );
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn write(p: &Path, data: &str, mode: u32) {
    fs::write(p, data).unwrap();
    chmod(p, mode);
}

fn mkdir(p: &Path, mode: u32) {
    fs::create_dir(p).unwrap();
    chmod(p, mode);
}

/// `chown -R uid:uid`.
fn chown_tree(p: &Path, uid: u32) {
    chown(p, Some(uid), Some(uid)).unwrap();
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for entry in fs::read_dir(p).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

fn names(snapshot_list_json: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(snapshot_list_json).unwrap();
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// One request through the conduit as root, from this process: open read+write, write the
/// request, read the response from offset 0.
fn ctl_root(m: &Mounted, request: &str) -> Value {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path(".chunkfs/ctl"))
        .unwrap();
    f.write_all(request.as_bytes()).unwrap();
    read_response(&mut f)
}

fn read_response(f: &mut fs::File) -> Value {
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut out = String::new();
    f.read_to_string(&mut out).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("response {out:?}: {e}"))
}

/// One raw request through the conduit as the user, the shell way docs/CONTROL.md shows.
fn ctl_user(m: &Mounted, request: &str) -> Value {
    let script = r#"exec 3<>"$1/.chunkfs/ctl" && printf %s "$2" >&3 && cat <&3"#;
    let o = as_user(
        USER,
        USER,
        &[],
        "sh",
        &[
            OsStr::new("-c"),
            OsStr::new(script),
            OsStr::new("sh"),
            m.mnt.as_os_str(),
            OsStr::new(request),
        ],
    );
    assert!(o.status.success(), "conduit as the user: {}", stderr(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("response {:?}: {e}", String::from_utf8_lossy(&o.stdout)))
}

/// Assert the response is a refusal with `errno`.
fn refused_with(resp: &Value, errno: i64, what: &str) {
    assert_eq!(
        resp["ok"],
        json!(false),
        "{what}: expected errno {errno}, got {resp}"
    );
    assert_eq!(
        resp["errno"],
        json!(errno),
        "{what}: expected errno {errno}, got {resp}"
    );
}

#[test]
fn an_unprivileged_user_cannot_revert_what_they_could_not_change_themselves() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let secret_v1 = e.seq_now();
    write(&e.path("rootdir/secret"), "secret v2\n", 0o600);
    write(&e.path("pub/file"), "public v2\n", 0o644);
    let before = e.listing();

    let o = e.user(&["revert", &e.s("."), "--to", "1"]);
    refused(&o, "EACCES", "revert / --to 1");
    for f in [
        "rootfile",
        "rootdir/secret",
        "pub/file",
        "pub/private",
        "home_u/f",
    ] {
        assert!(e.path(f).exists(), "{f} is gone after a refused revert");
    }

    let o = e.user(&[
        "revert",
        &e.s("rootdir/secret"),
        "--to",
        &secret_v1.to_string(),
    ]);
    refused(&o, "EACCES", "revert /rootdir/secret");
    assert_eq!(
        fs::read_to_string(e.path("rootdir/secret")).unwrap(),
        "secret v2\n"
    );

    // A file of root's the user may read but not write: the kernel refuses the write
    // (EACCES) and the change of its times (EPERM), whichever the check meets first.
    let o = e.user(&["revert", &e.s("pub/file"), "--to", &secret_v1.to_string()]);
    let err = stderr(&o);
    assert!(
        !o.status.success() && (err.contains("(EACCES)") || err.contains("(EPERM)")),
        "revert of root's /pub/file: expected EACCES or EPERM: {err}"
    );
    assert_eq!(e.listing(), before, "a refused revert changed the tree");
}

#[test]
fn an_unprivileged_user_may_revert_their_own_files_and_directories() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let a = e.seq_now();
    let f = e.s("home_u/f");
    let o = as_user(
        USER,
        USER,
        &[],
        "sh",
        &["-c", "printf new > \"$1\"", "sh", &f],
    );
    assert!(o.status.success(), "user writes f: {}", stderr(&o));
    assert_eq!(fs::read_to_string(&f).unwrap(), "new");

    e.user_ok(&["revert", &f, "--to", &a.to_string()]);
    let o = as_user(USER, USER, &[], "cat", &[&f]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "old\n");
    assert_eq!(fs::read_to_string(&f).unwrap(), "old\n");

    let added = e.s("home_u/added");
    let o = as_user(
        USER,
        USER,
        &[],
        "sh",
        &["-c", "echo x > \"$1\"", "sh", &added],
    );
    assert!(o.status.success(), "user adds a file: {}", stderr(&o));
    assert!(e.path("home_u/added").exists());
    e.user_ok(&["revert", &e.s("home_u"), "--to", &a.to_string()]);
    assert!(
        !e.path("home_u/added").exists(),
        "the file added after the seq reverted to is still there"
    );
    assert_eq!(fs::read_to_string(&f).unwrap(), "old\n");
    let md = fs::metadata(e.path("home_u")).unwrap();
    assert_eq!((md.uid(), md.gid()), (USER, USER));
}

#[test]
fn snapshots_are_created_and_deleted_only_by_root_or_the_owner_of_their_directory() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    e.root_ok(&["snapshot", "create", "rootsnap", &e.s(".")]);

    let o = e.user(&["snapshot", "delete", "rootsnap", &e.s(".")]);
    refused(&o, "EPERM", "snapshot delete rootsnap");
    let o = e.user(&["snapshot", "create", "x", &e.s(".")]);
    refused(&o, "EPERM", "snapshot create of /");
    let o = e.user(&["snapshot", "create", "y", &e.s("pub")]);
    refused(&o, "EPERM", "snapshot create of /pub (root's)");
    assert_eq!(e.snapshots(), ["rootsnap"]);

    e.user_ok(&["snapshot", "create", "mine", &e.s("home_u")]);
    assert_eq!(e.snapshots(), ["mine", "rootsnap"]);
    e.user_ok(&["snapshot", "delete", "mine", &e.s(".")]);
    assert_eq!(e.snapshots(), ["rootsnap"]);
}

#[test]
fn a_user_may_keep_only_as_many_snapshots_as_the_limit_and_root_is_not_limited() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    e.root_ok(&["config", "set", &e.s("."), "snapshot-limit", "2"]);
    e.user_ok(&["snapshot", "create", "s1", &e.s("home_u")]);
    e.user_ok(&["snapshot", "create", "s2", &e.s("home_u")]);
    let o = e.user(&["snapshot", "create", "s3", &e.s("home_u")]);
    refused(&o, "EDQUOT", "a third snapshot over a limit of 2");
    assert_eq!(e.snapshots(), ["s1", "s2"]);

    for name in ["r1", "r2", "r3"] {
        e.root_ok(&["snapshot", "create", name, &e.s(".")]);
    }

    // The limit counts the snapshots the user keeps: deleting one makes room.
    e.user_ok(&["snapshot", "delete", "s1", &e.s(".")]);
    e.user_ok(&["snapshot", "create", "s3", &e.s("home_u")]);
    assert_eq!(e.snapshots(), ["r1", "r2", "r3", "s2", "s3"]);
}

#[test]
fn an_unprivileged_user_cannot_clone_into_others_directories_or_clone_others_files() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let before = e.listing();
    let cases = [
        ("home_u/f", "newname", "EACCES"),
        ("home_u/f", "rootdir/x", "EACCES"),
        ("rootfile", "home_u/copy", "EPERM"),
        ("rootdir", "home_u/copy", "EACCES"),
    ];
    for (src, dst, errno) in cases {
        let o = e.user(&["clone", &e.s(src), &e.s(dst)]);
        refused(&o, errno, &format!("clone /{src} /{dst}"));
    }
    for dst in ["newname", "rootdir/x", "home_u/copy"] {
        assert!(!e.path(dst).exists(), "{dst} exists after a refused clone");
    }
    assert_eq!(e.listing(), before, "a refused clone changed the tree");

    e.user_ok(&["clone", &e.s("home_u/sub"), &e.s("home_u/sub2")]);
    assert_same_files(&e.path("home_u/sub"), &e.path("home_u/sub2"));
    let o = sh(&format!(
        "find '{}' -printf '%p %U:%G\\n'",
        e.path("home_u/sub2").display()
    ));
    let owners = String::from_utf8(o.stdout).unwrap();
    assert_eq!(owners.lines().count(), 5, "{owners}");
    for line in owners.lines() {
        assert!(
            line.ends_with(&format!(" {USER}:{USER}")),
            "not the user's: {line}"
        );
    }
}

#[test]
fn log_and_cat_at_need_search_permission_and_show_content_only_to_readers() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let then = e.seq_now();
    write(&e.path("pub/private"), "private v2\n", 0o600);

    let o = e.user(&["log", &e.s("rootdir/secret")]);
    refused(&o, "EACCES", "log /rootdir/secret");

    let revisions = |out: &str| -> Vec<Value> {
        let v: Value = serde_json::from_str(out).unwrap();
        v["revisions"].as_array().unwrap().clone()
    };
    let mine = revisions(&e.user_ok(&["log", "--json", &e.s("pub/private")]));
    assert!(mine.len() >= 2, "{mine:?}");
    for r in &mine {
        assert_eq!(r["content"], Value::Null, "the user sees a content id: {r}");
    }
    let roots = revisions(&e.root_ok(&["log", "--json", &e.s("pub/private")]));
    assert_eq!(roots.len(), mine.len());
    assert!(
        roots.last().unwrap()["content"].is_string(),
        "root sees no content id: {roots:?}"
    );
    let public = revisions(&e.user_ok(&["log", "--json", &e.s("pub/file")]));
    assert!(
        public.last().unwrap()["content"].is_string(),
        "a readable file's content id is hidden: {public:?}"
    );

    let o = e.user(&["cat", &e.s("pub/private"), "--at", &then.to_string()]);
    refused_read(&o, "cat --at of a file only root can read");
    let o = e.root_ok(&["cat", &e.s("pub/private"), "--at", &then.to_string()]);
    assert_eq!(o, "private\n");
}

#[test]
fn views_are_judged_by_the_permissions_then_and_now() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    mkdir(&e.path("opendir"), 0o755);
    write(&e.path("opendir/file"), "was open\n", 0o644);
    let a = e.seq_now().to_string();
    let view = e.s(&format!(".chunkfs/at/{a}/opendir/file"));

    let o = as_user(USER, USER, &[], "cat", &[&view]);
    assert!(
        o.status.success(),
        "user reads the open view: {}",
        stderr(&o)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "was open\n");
    let o = e.user_ok(&["cat", &e.s("opendir/file"), "--at", &a]);
    assert_eq!(o, "was open\n");

    chmod(&e.path("opendir"), 0o700);
    let o = as_user(USER, USER, &[], "cat", &[&view]);
    assert!(
        !o.status.success(),
        "user reads the view of a now closed directory"
    );
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    let o = e.user(&["cat", &e.s("opendir/file"), "--at", &a]);
    refused_read(&o, "cat --at below a now closed directory");

    assert_eq!(fs::read_to_string(&view).unwrap(), "was open\n");
    assert_eq!(
        e.root_ok(&["cat", &e.s("opendir/file"), "--at", &a]),
        "was open\n"
    );
}

#[test]
fn gc_fsck_defrag_and_config_set_are_for_root_only() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let mnt = e.s(".");
    let f = e.s("home_u/f");
    let admin_ops: [&[&str]; 4] = [
        &["gc", &mnt],
        &["fsck", &mnt],
        &["defrag", &f],
        &["config", "set", &mnt, "history-window", "1d"],
    ];
    let window = e.root_ok(&["config", "get", &mnt, "history-window"]);
    for args in admin_ops {
        refused(&e.user(args), "EPERM", &format!("{args:?} as the user"));
    }
    let o = e.root_ok(&["config", "get", &mnt, "history-window"]);
    assert_eq!(o, window, "a refused config set changed it");
    for args in admin_ops {
        e.root_ok(args);
    }
    let o = e.root_ok(&["config", "get", &mnt, "history-window"]);
    assert!(o.contains("1d"), "{o}");
}

#[test]
fn a_user_lists_only_the_snapshots_they_could_read() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let mnt = e.s(".");
    e.root_ok(&["snapshot", "create", "rootsnap", &mnt]);
    e.root_ok(&["snapshot", "create", "rootdirsnap", &e.s("rootdir")]);

    let listed = names(&e.user_ok(&["snapshot", "list", "--json", &mnt]));
    assert_eq!(listed, ["rootsnap"]);
    let o = as_user(USER, USER, &[], "ls", &[e.s(".chunkfs/snapshots")]);
    assert!(
        o.status.success(),
        "ls snapshots as the user: {}",
        stderr(&o)
    );
    let shown = String::from_utf8(o.stdout).unwrap();
    assert_eq!(shown.lines().collect::<Vec<_>>(), ["rootsnap"]);
    assert_eq!(e.snapshots(), ["rootdirsnap", "rootsnap"]);
}

#[test]
fn members_of_the_admin_group_may_gc_fsck_defrag_and_configure() {
    let Some(e) = Env::new(&["allow_other", &format!("chunkfs_admin_group={ADMIN_GROUP}")]) else {
        return;
    };
    let mnt = e.s(".");
    let f = e.s("home_u/f");
    let admin_ops: [&[&str]; 4] = [
        &["gc", &mnt],
        &["fsck", &mnt],
        &["defrag", &f],
        &["config", "set", &mnt, "history-window", "1d"],
    ];
    for args in admin_ops {
        refused(
            &e.user(args),
            "EPERM",
            &format!("{args:?} outside the group"),
        );
    }
    for args in admin_ops {
        succeeded(e.admin(args), args);
    }
    let o = e.root_ok(&["config", "get", &mnt, "history-window"]);
    assert!(o.contains("1d"), "{o}");
}

#[test]
fn the_admin_group_may_be_given_by_name() {
    // Any group /etc/group names will do: the user is put in it for the one command.
    let groups = fs::read_to_string("/etc/group").unwrap_or_default();
    let Some((name, gid)) = groups.lines().find_map(|l| {
        let mut fields = l.split(':');
        let name = fields.next()?;
        let gid: u32 = fields.nth(1)?.parse().ok()?;
        (gid != 0 && !name.is_empty()).then(|| (name.to_string(), gid))
    }) else {
        panic!("/etc/group names no group but root's");
    };
    let Some(e) = Env::new(&["allow_other", &format!("chunkfs_admin_group={name}")]) else {
        return;
    };
    let mnt = e.s(".");
    refused(&e.user(&["gc", &mnt]), "EPERM", "gc outside the group");
    succeeded(
        as_user(USER, USER, &[gid], &e.bin, &["gc", &mnt]),
        &["gc", &mnt],
    );
}

#[test]
fn root_may_still_revert_clone_and_collect_anything() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let a = e.seq_now();
    let tree = e.listing();
    fs::remove_file(e.path("home_u/f")).unwrap();
    fs::remove_dir_all(e.path("rootdir")).unwrap();
    write(&e.path("rootfile"), "changed\n", 0o644);
    e.root_ok(&["revert", &e.s("."), "--to", &a.to_string()]);
    assert_eq!(
        fs::read_to_string(e.path("rootdir/secret")).unwrap(),
        "secret v1\n"
    );
    assert_eq!(fs::read_to_string(e.path("home_u/f")).unwrap(), "old\n");
    assert_eq!(
        fs::read_to_string(e.path("rootfile")).unwrap(),
        "root's file\n"
    );
    assert_eq!(e.listing(), tree, "revert of / as root left differences");

    e.root_ok(&["clone", &e.s("rootdir"), &e.s("rootdir2")]);
    e.root_ok(&["clone", &e.s("home_u/f"), &e.s("newname")]);
    e.root_ok(&["clone", &e.s("rootfile"), &e.s("home_u/rootcopy")]);
    assert_same_files(&e.path("rootdir"), &e.path("rootdir2"));
    assert_eq!(fs::read_to_string(e.path("newname")).unwrap(), "old\n");
    e.root_ok(&["gc", &e.s(".")]);
}

#[test]
fn the_conduit_refuses_malformed_requests_from_anyone() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    e.user_ok(&["snapshot", "create", "u1", &e.s("home_u")]);

    let bad_names = [
        "a\0b".to_string(),
        "a\nb".into(),
        "a\u{1}b".into(),
        ".".into(),
        "..".into(),
        "a/b".into(),
        "".into(),
        "n".repeat(256),
    ];
    for name in &bad_names {
        let req = json!({"op": "snapshot-create", "name": name, "path": "/home_u"});
        refused_with(
            &ctl_user(&e.m, &req.to_string()),
            22,
            &format!("name {name:?}"),
        );
    }
    assert_eq!(e.snapshots(), ["u1"], "a refused name made a snapshot");
    // 255 bytes is still a name.
    let long = "n".repeat(255);
    e.root_ok(&["snapshot", "create", &long, &e.s(".")]);
    e.root_ok(&["snapshot", "delete", &long, &e.s(".")]);

    let seq = e.seq_now();
    let before = e.listing();

    let req = json!({"op": "revert", "path": "/home_u", "seq": seq, "snapshot": "u1"});
    refused_with(
        &ctl_user(&e.m, &req.to_string()),
        22,
        "revert with seq and snapshot",
    );
    refused_with(
        &ctl_root(&e.m, r#"{"op":"fsck","quick":"yes"}"#),
        22,
        "quick as a string (as root)",
    );
    refused_with(
        &ctl_user(&e.m, r#"{"op":"stats","op":"gc"}"#),
        22,
        "duplicate op",
    );
    refused_with(
        &ctl_user(&e.m, r#"{"op":"stats","bogus":1}"#),
        22,
        "an unknown field",
    );
    assert_eq!(e.listing(), before, "a refused request changed the tree");
    assert_eq!(e.seq_now(), seq, "a refused request committed something");

    // 10 MB in one write(2): the write may fail (EFBIG) or be taken short; the response
    // must say EFBIG either way.
    let big = vec![b' '; 10_000_000];
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(e.path(".chunkfs/ctl"))
        .unwrap();
    if let Err(err) = f.write(&big) {
        assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    }
    refused_with(&read_response(&mut f), 27, "10 MB in one write");
    drop(f);

    // The same in many small writes, as the user: tr writes a few KiB at a time; whether a
    // write past the limit fails or not, the response is EFBIG.
    let script =
        r#"exec 3<>"$1/.chunkfs/ctl"; head -c 10000000 /dev/zero | tr '\0' ' ' >&3; cat <&3"#;
    let o = as_user(
        USER,
        USER,
        &[],
        "sh",
        &[
            OsStr::new("-c"),
            OsStr::new(script),
            OsStr::new("sh"),
            e.m.mnt.as_os_str(),
        ],
    );
    let resp: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|err| {
        panic!(
            "{err}: {:?} {}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        )
    });
    refused_with(&resp, 27, "10 MB in many writes");
}

/// (mtime, ctime) of `p` in nanoseconds, as root sees them.
fn times(p: &Path) -> (i128, i128) {
    let md = fs::symlink_metadata(p).unwrap();
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    (
        ns(md.mtime(), md.mtime_nsec()),
        ns(md.ctime(), md.ctime_nsec()),
    )
}

#[test]
fn a_revert_below_a_directory_the_user_cannot_search_is_refused_whether_or_not_the_name_exists() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    // /old: root's 0700 directory then, the user's own directory now.
    mkdir(&e.path("old"), 0o700);
    write(&e.path("old/s"), "root's, in a closed directory\n", 0o600);
    let then = e.seq_now().to_string();
    fs::remove_dir_all(e.path("old")).unwrap();
    mkdir(&e.path("old"), 0o755);
    chown_tree(&e.path("old"), USER);
    let now = e.seq_now().to_string();
    let rootdir = times(&e.path("rootdir"));
    let before = e.listing();

    // Whether the name is there or not, the answer is the one stat(2) would give: EACCES.
    // A revert to now changes nothing, but must not tell that the file exists either.
    for (path, to) in [
        ("rootdir/secret", &now),
        ("rootdir/no-such-file", &now),
        ("old/s", &then),
        ("old/no-such-file", &then),
    ] {
        let o = e.user(&["revert", &e.s(path), "--to", to]);
        refused(&o, "EACCES", &format!("revert /{path} --to {to}"));
    }
    assert_eq!(e.listing(), before, "a refused revert changed the tree");
    assert_eq!(
        times(&e.path("rootdir")),
        rootdir,
        "a refused revert touched root's closed directory"
    );
}

#[test]
fn a_revert_that_changes_nothing_touches_no_one_elses_times() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    // The user's file in root's /pub (the user may write it, not /pub's entries).
    write(&e.path("pub/users"), "the user's v1\n", 0o644);
    chown_tree(&e.path("pub/users"), USER);
    let v1 = e.seq_now().to_string();
    let o = as_user(
        USER,
        USER,
        &[],
        "sh",
        &["-c", "printf 'v2\\n' > \"$1\"", "sh", &e.s("pub/users")],
    );
    assert!(o.status.success(), "user writes their file: {}", stderr(&o));
    let now = e.seq_now().to_string();
    let watched = ["", "rootfile", "pub", "pub/file"].map(|p| (p, times(&e.path(p))));

    // Nothing to change in root's file: no new ctime for it, no new mtime for /.
    e.user_ok(&["revert", &e.s("rootfile"), "--to", &now]);
    // Only the content of the user's own file changes: not /pub's mtime.
    e.user_ok(&["revert", &e.s("pub/users"), "--to", &v1]);
    assert_eq!(
        fs::read_to_string(e.path("pub/users")).unwrap(),
        "the user's v1\n"
    );
    for (p, t) in watched {
        assert_eq!(
            times(&e.path(p)),
            t,
            "/{p}: a revert by the user changed its times"
        );
    }
}

#[test]
fn a_snapshot_of_a_directory_below_one_the_user_cannot_search_is_hidden_from_them() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    mkdir(&e.path("rootdir/open"), 0o755);
    write(
        &e.path("rootdir/open/file"),
        "behind a closed door\n",
        0o644,
    );
    e.root_ok(&["snapshot", "create", "inner", &e.s("rootdir/open")]);

    let listed = names(&e.user_ok(&["snapshot", "list", "--json", &e.s(".")]));
    assert!(listed.is_empty(), "the user lists {listed:?}");
    let o = as_user(
        USER,
        USER,
        &[],
        "cat",
        &[e.s(".chunkfs/snapshots/inner/file")],
    );
    assert!(
        !o.status.success(),
        "the user reads a file below root's 0700 directory through a snapshot: {:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    refused_with(
        &ctl_user(&e.m, r#"{"op":"resolve","snapshot":"inner"}"#),
        libc::ENOENT as i64,
        "resolve of a snapshot the user may not read",
    );
    refused(
        &e.user(&["snapshot", "delete", "inner", &e.s(".")]),
        "ENOENT",
        "delete of a snapshot the user may not read",
    );
    assert_eq!(e.snapshots(), ["inner"]);
    assert_eq!(
        fs::read_to_string(e.path(".chunkfs/snapshots/inner/file")).unwrap(),
        "behind a closed door\n"
    );
}

#[test]
fn a_clone_into_a_directory_the_user_cannot_search_is_refused_whether_or_not_the_name_exists() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let before = e.listing();
    for dst in ["rootdir/secret", "rootdir/no-such-file"] {
        let o = e.user(&["clone", &e.s("home_u/f"), &e.s(dst)]);
        refused(&o, "EACCES", &format!("clone to /{dst}"));
    }
    assert_eq!(e.listing(), before, "a refused clone changed the tree");
}

#[test]
fn a_time_far_off_is_refused_and_the_daemon_keeps_serving() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let far = "9000000000000000000-01-01";
    let resp = ctl_user(&e.m, &json!({"op": "resolve", "time": far}).to_string());
    assert_eq!(resp["ok"], json!(false), "{resp}");
    let o = as_user(USER, USER, &[], "ls", &[e.s(&format!(".chunkfs/at/{far}"))]);
    assert!(!o.status.success(), "a view of year {far}");
    assert_eq!(
        fs::read_to_string(e.path("rootfile")).unwrap(),
        "root's file\n",
        "the daemon stopped serving"
    );
}

#[test]
fn a_revert_does_not_tell_whether_anything_changed_below_a_directory_the_user_cannot_read() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    let v1 = e.seq_now().to_string();
    // A new content of a file changes nothing in its directory's own attributes.
    write(&e.path("rootdir/secret"), "secret v2\n", 0o600);
    let v2 = e.seq_now().to_string();
    let before = e.listing();
    // Had /rootdir's files changed since the seq or not: the user may not know (or walk it).
    for to in [&v1, &v2] {
        let o = e.user(&["revert", &e.s("rootdir"), "--to", to]);
        refused(&o, "EACCES", &format!("revert /rootdir --to {to}"));
    }
    assert_eq!(e.listing(), before, "a refused revert changed the tree");
}

#[test]
fn a_revert_by_someone_other_than_the_owner_sets_no_times_of_the_past() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    // Root's sticky, world-writable /t, and a file of root's the user may write by group.
    mkdir(&e.path("t"), 0o1777);
    write(&e.path("t/roots"), "root's\n", 0o644);
    write(&e.path("pub/team"), "team v1\n", 0o664);
    chown(e.path("pub/team"), Some(0), Some(ADMIN_GROUP)).unwrap();
    let v1 = e.seq_now().to_string();
    let (team_v1, _) = times(&e.path("pub/team"));
    write(&e.path("pub/team"), "team v2\n", 0o664);
    let o = as_user(
        USER,
        USER,
        &[],
        "sh",
        &["-c", "echo mine > \"$1\"", "sh", &e.s("t/mine")],
    );
    assert!(o.status.success(), "the user writes in /t: {}", stderr(&o));
    let (t_now, _) = times(&e.path("t"));
    let (team_now, _) = times(&e.path("pub/team"));

    // utimes(2) with times of one's choosing is for the owner: whether the revert is refused
    // or takes effect with the times a write would give, no time goes back.
    let _ = e.user(&["revert", &e.s("t"), "--to", &v1]);
    let (t_after, _) = times(&e.path("t"));
    assert!(
        t_after >= t_now,
        "the user set root's /t back to an mtime of the past ({t_after} < {t_now})"
    );
    let _ = e.admin(&["revert", &e.s("pub/team"), "--to", &v1]);
    let (team_after, _) = times(&e.path("pub/team"));
    assert!(
        team_after >= team_now && team_after != team_v1,
        "a group member set root's file back to an mtime of the past ({team_after} < {team_now})"
    );
}

#[test]
fn a_user_no_longer_in_a_group_cannot_revert_a_file_back_to_setgid_in_it() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    // While in the group, the user makes two setgid files of that group: chmod(2) lets them.
    let script =
        r#"for f in "$1" "$2"; do echo prog > "$f" && chgrp 4300 "$f" && chmod 2755 "$f"; done"#;
    let o = as_user(
        USER,
        USER,
        &[ADMIN_GROUP],
        "sh",
        &["-c", script, "sh", &e.s("home_u/kept"), &e.s("home_u/gone")],
    );
    assert!(
        o.status.success(),
        "the user's setgid files: {}",
        stderr(&o)
    );
    assert_eq!(
        fs::metadata(e.path("home_u/kept")).unwrap().mode() & 0o7777,
        0o2755
    );
    let then = e.seq_now().to_string();
    // Out of the group now: root takes the bit off one, the user removes the other.
    chmod(&e.path("home_u/kept"), 0o755);
    fs::remove_file(e.path("home_u/gone")).unwrap();

    // chmod g+s by an owner outside the group would not set it, nor could the user make a
    // file of that group: neither may a revert.
    for f in ["home_u/kept", "home_u/gone"] {
        let o = e.user(&["revert", &e.s(f), "--to", &then]);
        refused(&o, "EPERM", &format!("revert /{f} to setgid {ADMIN_GROUP}"));
    }
    assert_eq!(
        fs::metadata(e.path("home_u/kept")).unwrap().mode() & 0o7777,
        0o755
    );
    assert!(!e.path("home_u/gone").exists());
}

#[test]
fn a_user_cannot_bring_back_a_file_of_roots_that_root_removed_from_a_sticky_directory() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    mkdir(&e.path("t"), 0o1777);
    write(&e.path("t/roots"), "root's, removed on purpose\n", 0o644);
    let then = e.seq_now().to_string();
    fs::remove_file(e.path("t/roots")).unwrap();
    let before = e.listing();

    // The user may add entries to /t, but no file of root's: the kernel makes new files theirs.
    let o = e.user(&["revert", &e.s("t/roots"), "--to", &then]);
    refused(&o, "EPERM", "revert of root's removed /t/roots");
    assert!(!e.path("t/roots").exists(), "root's removed file is back");
    assert_eq!(e.listing(), before, "a refused revert changed the tree");
}

#[test]
fn a_user_lists_their_snapshot_after_hundreds_they_may_not_read() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    // More than one listing batch of root's snapshots of its closed directory, then the user's.
    for i in 0..300 {
        let req = json!({"op": "snapshot-create", "name": format!("r{i:03}"), "path": "/rootdir"});
        let resp = ctl_root(&e.m, &req.to_string());
        assert_eq!(resp["ok"], json!(true), "{resp}");
    }
    e.user_ok(&["snapshot", "create", "zz-mine", &e.s("home_u")]);

    let o = as_user(USER, USER, &[], "ls", &[e.s(".chunkfs/snapshots")]);
    assert!(o.status.success(), "ls as the user: {}", stderr(&o));
    let shown = String::from_utf8(o.stdout).unwrap();
    assert_eq!(shown.lines().collect::<Vec<_>>(), ["zz-mine"]);
}

#[test]
fn the_admin_group_may_not_have_the_daemon_read_host_directories_for_them() {
    let Some(e) = Env::new(&["allow_other", &format!("chunkfs_admin_group={ADMIN_GROUP}")]) else {
        return;
    };
    // A directory of the host only root may search: whether it (or a name in it) exists is
    // not the group's to learn, nor its files the group's to have root read.
    let host = tempfile::tempdir().unwrap();
    chmod(host.path(), 0o700);
    let mnt = e.s(".");
    for dir in [host.path().to_path_buf(), host.path().join("no-such-dir")] {
        let dir = dir.to_str().unwrap().to_string();
        // Through the conduit: the CLI looks at DIR itself first, as the user.
        let req = json!({"op": "fsck", "quick": true, "repair_from": dir}).to_string();
        let script = r#"exec 3<>"$1/.chunkfs/ctl" && printf %s "$2" >&3 && cat <&3"#;
        let o = as_user(
            USER,
            USER,
            &[ADMIN_GROUP],
            "sh",
            &["-c", script, "sh", &mnt, &req],
        );
        let resp: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|err| {
            panic!(
                "{err}: {:?} {}",
                String::from_utf8_lossy(&o.stdout),
                stderr(&o)
            )
        });
        refused_with(
            &resp,
            libc::EPERM as i64,
            &format!("fsck --repair-from {dir}"),
        );
    }
    succeeded(e.admin(&["fsck", &mnt]), &["fsck", &mnt]);
    e.root_ok(&["fsck", "--repair-from", host.path().to_str().unwrap(), &mnt]);
}

#[test]
fn a_file_brought_back_by_its_owner_comes_without_the_trusted_xattrs_root_took_off() {
    let Some(e) = Env::new(&["allow_other"]) else {
        return;
    };
    // Root marks the user's file (trusted.*: root's namespace), then takes the mark off.
    let f = e.path("home_u/marked");
    write(&f, "mine\n", 0o644);
    chown(&f, Some(USER), Some(USER)).unwrap();
    sh(&format!(
        "setfattr -n trusted.grant -v yes '{}'",
        f.display()
    ));
    let then = e.seq_now().to_string();
    sh(&format!("setfattr -x trusted.grant '{}'", f.display()));
    // The user renames their file, then brings it back as it was under its old name: a
    // copy (the inode lives on elsewhere), which must not come with root's mark.
    let o = as_user(
        USER,
        USER,
        &[],
        "mv",
        &[f.clone(), e.path("home_u/renamed")],
    );
    assert!(
        o.status.success(),
        "the user renames their file: {}",
        stderr(&o)
    );
    let o = e.user(&["revert", &e.s("home_u/marked"), "--to", &then]);
    if o.status.success() {
        let o = Command::new("getfattr")
            .args(["-n", "trusted.grant"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "the revert brought back root's trusted.grant: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    } else {
        refused(&o, "EPERM", "revert of a file with root's trusted.* xattr");
    }
}
