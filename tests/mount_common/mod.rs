//! Real mounts for integration tests: a store in a temp dir made with `chunkfs mkfs`, mounted
//! with `chunkfs mount`, unmounted in `Drop` (even when the test panics).
#![allow(dead_code)]

#[path = "../common/data.rs"]
mod data;
#[allow(unused_imports)] // not every test binary uses it
pub use data::random_bytes;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_chunkfs");

/// Whether FUSE mounts can run here. Without FUSE a test skips, except under CI, where a
/// missing FUSE is a broken runner and must fail.
pub fn fuse_usable() -> bool {
    let dev = Path::new("/dev/fuse").exists();
    let fusermount = Command::new("fusermount3")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if dev && fusermount {
        return true;
    }
    if in_ci() {
        panic!("CI=true but FUSE is unusable (/dev/fuse: {dev}, fusermount3: {fusermount})");
    }
    eprintln!("skipped: no /dev/fuse or fusermount3");
    false
}

/// `CI=true`, as `.ci/run` sets: skipping is then a failure.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a test that needs root (`why`) can run: skips without root, except under CI,
/// which runs as root, so a missing root there fails.
pub fn root_or_skip(why: &str) -> bool {
    if is_root() {
        return true;
    }
    if in_ci() {
        panic!("CI=true but not root: {why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// Run chunkfs with `args`.
pub fn chunkfs<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(BIN).args(args).output().expect("run chunkfs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn sh(cmd: &str) -> Output {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh");
    assert!(o.status.success(), "`{cmd}` failed: {}", stderr(&o));
    o
}

pub struct Mounted {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub mnt: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// A fresh store mounted read-write, or `None` when FUSE is unusable (the test skips).
    pub fn new() -> Option<Mounted> {
        Self::with_options(&[])
    }

    pub fn with_options(opts: &[&str]) -> Option<Mounted> {
        Self::with_mkfs(&["--size", "64G"], opts)
    }

    /// A fresh store made with `chunkfs mkfs STORE MKFS_ARGS...`, mounted with `opts`.
    pub fn with_mkfs(mkfs_args: &[&str], opts: &[&str]) -> Option<Mounted> {
        if !fuse_usable() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut args = vec!["mkfs".as_ref(), store.as_os_str()];
        args.extend(mkfs_args.iter().map(|a| std::ffi::OsStr::new(*a)));
        let o = chunkfs(&args);
        assert!(o.status.success(), "mkfs failed: {}", stderr(&o));
        let mut m = Mounted {
            dir,
            store,
            mnt,
            mounted: false,
        };
        m.mount(opts);
        Some(m)
    }

    /// Mount with `opts`, which must succeed; what the command printed.
    pub fn mount(&mut self, opts: &[&str]) -> Output {
        let o = self.try_mount(opts);
        assert!(o.status.success(), "mount failed: {}", stderr(&o));
        self.mounted = true;
        o
    }

    pub fn try_mount(&self, opts: &[&str]) -> Output {
        let mut args = vec![
            "mount".into(),
            self.store.clone().into_os_string(),
            self.mnt.clone().into_os_string(),
        ];
        if !opts.is_empty() {
            args.push("-o".into());
            args.push(opts.join(",").into());
        }
        chunkfs(&args)
    }

    pub fn umount(&mut self) {
        let o = chunkfs(&["umount".as_ref(), self.mnt.as_os_str()]);
        assert!(o.status.success(), "umount failed: {}", stderr(&o));
        self.mounted = false;
    }

    pub fn remount(&mut self) {
        self.umount();
        self.mount(&[]);
    }

    /// Note that the mount was ended by other means (a signal, fusermount3).
    pub fn forget_mount(&mut self) {
        self.mounted = false;
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// One request through the mount's conduit (`.chunkfs/ctl`, docs/CONTROL.md), which must
    /// succeed; its result.
    pub fn ctl(&self, request: &str) -> serde_json::Value {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(".chunkfs/ctl"))
            .unwrap();
        f.write_all(request.as_bytes()).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut out = String::new();
        f.read_to_string(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ok"], true, "{request}: {v}");
        v["result"].clone()
    }

    /// The daemon's count of kernel requests per type so far (conduit op `request-counts`;
    /// the conduit's own write and read are counted too).
    pub fn request_counts(&self) -> serde_json::Value {
        self.ctl(r#"{"op":"request-counts"}"#)
    }

    /// `chunkfs config set STORE KEY VALUE`, which must succeed.
    pub fn config_set(&self, key: &str, value: &str) {
        let o = chunkfs(&[
            "config".as_ref(),
            "set".as_ref(),
            self.store.as_os_str(),
            key.as_ref(),
            value.as_ref(),
        ]);
        assert!(
            o.status.success(),
            "config set {key} {value}: {}",
            stderr(&o)
        );
    }

    /// A snapshot of the whole tree named `name` (conduit op `snapshot-create`).
    pub fn snapshot(&self, name: &str) {
        self.ctl(&format!(r#"{{"op":"snapshot-create","name":"{name}"}}"#));
    }

    /// `chunkfs stats STORE --json`.
    pub fn stats(&self) -> serde_json::Value {
        let o = chunkfs(&["stats".as_ref(), self.store.as_os_str(), "--json".as_ref()]);
        assert!(o.status.success(), "stats: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// The daemon's pid, from the store lock.
    pub fn daemon_pid(&self) -> i32 {
        let s = std::fs::read_to_string(self.store.join("lock")).unwrap();
        s.trim().parse().unwrap()
    }

    /// Wait until the daemon released the store lock (it exits after its final commit).
    pub fn wait_daemon_exit(&self, pid: i32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // SAFETY: kill with signal 0 only checks that the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid) {
            assert!(Instant::now() < deadline, "daemon {pid} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.store.join("chunkfs.log")).unwrap_or_default()
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let o = chunkfs(&["umount".as_ref(), self.mnt.as_os_str()]);
        if !o.status.success() {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .status();
        }
    }
}

/// A tree of nested directories, files of many sizes (some identical), a symlink and a hard
/// link, with old mtimes.
pub fn generate_tree(root: &Path, seed: u64) {
    for d in 0..4u64 {
        let dir = root.join(format!("dir{d}/sub{}", d % 2));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..6u64 {
            let len = [0, 1, 4095, 4096, 70_000, 300_000][f as usize];
            let data = random_bytes(seed + d * 10 + f, len);
            std::fs::write(dir.join(format!("f{f}")), &data).unwrap();
        }
        std::fs::write(dir.join("same"), random_bytes(seed, 100_000)).unwrap();
    }
    std::os::unix::fs::symlink("dir0/sub0/f4", root.join("link")).unwrap();
    std::fs::hard_link(root.join("dir1/sub1/f5"), root.join("hard")).unwrap();
    sh(&format!(
        "find '{}' -exec touch -h -d '2011-11-11 11:11:11.5' {{}} +",
        root.display()
    ));
}

/// `diff -r` of two trees (symlinks compared as links) plus a check of modes and mtimes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    compare_trees(a, b, true);
}

/// The same files, links, modes, sizes and link counts, times aside (directories changed at
/// different moments in a mount and in a reference copy).
pub fn assert_same_files(a: &Path, b: &Path) {
    compare_trees(a, b, false);
}

fn compare_trees(a: &Path, b: &Path, times: bool) {
    let o = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "trees differ: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let (t, td) = if times { (" %T@", " %T@") } else { ("", "") };
    let listing = |root: &Path| {
        let o = sh(&format!(
            "cd '{}' && {{ find . ! -type d -printf '%p %M %s %n{t} %l\\n'; \
             find . -type d -printf '%p %M{td}\\n'; }} | sort",
            root.display()
        ));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(
        listing(a),
        listing(b),
        "modes, sizes, link counts or times differ"
    );
}

/// `copy_file_range(2)` of `len` bytes from `off_in` of `from` to `off_out` of `to`: the bytes
/// copied, or the error.
pub fn copy_file_range(
    from: &std::fs::File,
    off_in: u64,
    to: &std::fs::File,
    off_out: u64,
    len: usize,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let (mut oi, mut oo) = (off_in as i64, off_out as i64);
    // SAFETY: two open descriptors and offsets that live across the call.
    let n = unsafe {
        libc::copy_file_range(from.as_raw_fd(), &mut oi, to.as_raw_fd(), &mut oo, len, 0)
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}
