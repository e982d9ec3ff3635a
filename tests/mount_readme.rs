//! The README's first two commands, verbatim: the setup line works in a root shell that has no
//! `sudo` and in a user's shell that has one, and ends with a live mount of a fresh store in
//! the user's home; the test line is what `.ci/run` runs.
//!
//! The line is run by bash as written, with `apt-get`, `cargo`, `curl` and `sudo` replaced by
//! stubs that record how they were called (nothing is installed or built; `./target/release/
//! chunkfs` is this build's binary), and every other program it needs reached through a PATH
//! of exactly those programs, so a `sudo` the machine happens to have cannot stand in for the
//! missing one. `mkfs` and `mount` are the real ones: the user's mount goes through the
//! setuid `fusermount3`, as it would for them.

mod mount_common;

use mount_common::{BIN, chunkfs, fuse_usable, root_or_skip, stderr};
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The uid and gid the user's shell runs as: `nobody`, since fusermount3 wants the user in
/// the password database (every Debian system has this one).
const USER: u32 = 65534;

/// The body of the first ```sh block after `heading` in the README.
fn readme_block(heading: &str, nth: usize) -> String {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find(heading).expect("README has the heading")..];
    let block = section
        .split("```sh\n")
        .nth(nth + 1)
        .expect("the block")
        .split("```")
        .next()
        .unwrap();
    block.trim().to_string()
}

/// Where the line runs: a home, a "repository" whose `target/release/chunkfs` is this build's
/// binary, stubs, and a PATH of only the stubs and the real programs the line may use.
struct Sandbox {
    // Dropped after the mount ends (fields drop in order).
    _dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
    path: String,
    calls: PathBuf,
}

const STUB: &str = r#"#!/bin/sh
echo "$(basename "$0") $* uid=$(id -u) via_sudo=${VIA_SUDO:-0}" >> "$CALLS"
"#;

impl Sandbox {
    fn new(owner: u32, with_sudo: bool) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let (home, repo, stubs, bin) = (
            dir.path().join("home"),
            dir.path().join("repo"),
            dir.path().join("stubs"),
            dir.path().join("bin"),
        );
        for d in [&home, &repo.join("target/release"), &stubs, &bin] {
            fs::create_dir_all(d).unwrap();
        }
        symlink(BIN, repo.join("target/release/chunkfs")).unwrap();
        let calls = dir.path().join("calls");
        fs::write(&calls, "").unwrap();
        fs::set_permissions(&calls, fs::Permissions::from_mode(0o666)).unwrap();
        let stub = |name: &str, body: &str| {
            let p = stubs.join(name);
            fs::write(&p, format!("{STUB}{body}\n")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        };
        // apt-get refuses anyone but root, as the real one does (it cannot take its lock).
        stub(
            "apt-get",
            r#"[ "$(id -u)" = 0 ] || [ "$VIA_SUDO" = 1 ] || { echo "E: are you root?" >&2; exit 100; }"#,
        );
        stub("cargo", "exit 0");
        stub("curl", "exit 1");
        if with_sudo {
            // Not a real privilege change: the test only needs to know what ran through it.
            stub("sudo", r#"VIA_SUDO=1 exec "$@""#);
        }
        for tool in [
            "sh",
            "bash",
            "id",
            "basename",
            "mkdir",
            "cat",
            "fusermount3",
        ] {
            let real = which(tool);
            symlink(&real, bin.join(tool)).unwrap();
        }
        chown(&home, Some(owner), Some(owner)).unwrap();
        let path = format!("{}:{}", stubs.display(), bin.display());
        Sandbox {
            _dir: dir,
            home,
            repo,
            path,
            calls,
        }
    }

    /// Run `line` with bash as `uid` (root: as is; else with setpriv, no groups).
    fn run(&self, uid: u32, line: &str) -> Output {
        let mut cmd = if uid == 0 {
            Command::new(which("bash"))
        } else {
            let id = uid.to_string();
            let mut c = Command::new(which("setpriv"));
            c.args(["--reuid", &id, "--regid", &id, "--clear-groups", "bash"]);
            c
        };
        cmd.arg("-c")
            .arg(line)
            .current_dir(&self.repo)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .env("CALLS", &self.calls)
            .output()
            .expect("run bash")
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.calls)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn mnt(&self) -> PathBuf {
        self.home.join("chunkfs-mnt")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if is_mounted(&self.mnt()) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(self.mnt())
                .status();
            let _ = chunkfs(&["umount".as_ref(), self.mnt().as_os_str()]);
        }
    }
}

/// /dev/fuse's mode, put back as found when dropped.
struct DevFuseMode(Option<u32>);

impl DevFuseMode {
    fn set(mode: u32) -> DevFuseMode {
        let found = fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
        fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(mode)).unwrap();
        DevFuseMode(Some(found))
    }

    /// Keep the mode set until the first guard puts back the original.
    fn forget(mut self) {
        self.0 = None;
    }
}

impl Drop for DevFuseMode {
    fn drop(&mut self) {
        if let Some(mode) = self.0 {
            let _ = fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(mode));
        }
    }
}

fn which(tool: &str) -> PathBuf {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} is not installed"))
}

fn is_mounted(mnt: &Path) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(&format!(" {} ", mnt.display())) && l.contains("fuse.chunkfs"))
}

/// The setup line ran end to end as `uid` and left a live, writable mount of a private store.
fn assert_mounted_for(s: &Sandbox, uid: u32, out: &Output) {
    assert!(
        out.status.success(),
        "the README's line failed as uid {uid}: {}\n{}",
        stderr(out),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(is_mounted(&s.mnt()), "nothing is mounted at {:?}", s.mnt());
    let store = s.home.join("chunkfs-store");
    let md = fs::metadata(&store).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((md.uid(), md.mode() & 0o777), (uid, 0o700));
    let w = s.run(uid, "echo hello > ~/chunkfs-mnt/f && cat ~/chunkfs-mnt/f");
    assert_eq!(
        String::from_utf8_lossy(&w.stdout),
        "hello\n",
        "{}",
        stderr(&w)
    );
    let calls = s.calls();
    assert!(
        calls.iter().any(|c| c.starts_with("cargo build --release")),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("curl")),
        "rustup ran though cargo exists: {calls:?}"
    );
    let un = s.run(uid, "./target/release/chunkfs umount ~/chunkfs-mnt");
    assert!(un.status.success(), "umount as {uid}: {}", stderr(&un));
    assert!(!is_mounted(&s.mnt()));
}

#[test]
fn the_setup_line_works_in_a_root_shell_without_sudo() {
    if !fuse_usable() || !root_or_skip("runs the README's line as root") {
        return;
    }
    let s = Sandbox::new(0, false);
    let line = readme_block("## Two commands", 0);
    let out = s.run(0, &line);
    assert_mounted_for(&s, 0, &out);
    let apt: Vec<String> = s
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("apt-get"))
        .collect();
    assert_eq!(apt.len(), 2, "{apt:?}");
    assert!(
        apt.iter().all(|c| c.ends_with("uid=0 via_sudo=0")),
        "{apt:?}"
    );
    assert!(apt[1].contains("install -y fuse3"), "{apt:?}");
}

#[test]
fn the_setup_line_works_in_a_user_shell_with_sudo() {
    if !fuse_usable() || !root_or_skip("switches to an unprivileged user") {
        return;
    }
    let s = Sandbox::new(USER, true);
    let line = readme_block("## Two commands", 0);
    // A user's mount needs /dev/fuse open to all, as udev makes it on Debian; a container
    // may make it 0600, and then the mount says what to do. Only this test changes the
    // mode (root's mounts do not care), and it puts back what it found.
    let _restore = DevFuseMode::set(0o600);
    let out = s.run(USER, &line);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot open /dev/fuse")
            && stderr(&out).contains("chmod 666 /dev/fuse"),
        "{}",
        stderr(&out)
    );
    fs::remove_dir_all(s.home.join("chunkfs-store")).unwrap();
    fs::write(&s.calls, "").unwrap();
    DevFuseMode::set(0o666).forget();
    let out = s.run(USER, &line);
    assert_mounted_for(&s, USER, &out);
    let calls = s.calls();
    let sudo: Vec<&String> = calls.iter().filter(|c| c.starts_with("sudo")).collect();
    let apt: Vec<&String> = calls.iter().filter(|c| c.starts_with("apt-get")).collect();
    assert_eq!((sudo.len(), apt.len()), (2, 2), "{calls:?}");
    assert!(
        apt.iter()
            .all(|c| c.ends_with(&format!("uid={USER} via_sudo=1"))),
        "{apt:?}"
    );
}

#[test]
fn the_setup_line_stops_at_apt_get_for_a_user_without_sudo() {
    if !root_or_skip("switches to an unprivileged user") {
        return;
    }
    let s = Sandbox::new(USER, false);
    let out = s.run(USER, &readme_block("## Two commands", 0));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("are you root"), "{}", stderr(&out));
    assert!(!s.calls().iter().any(|c| c.starts_with("cargo")));
    assert!(!s.home.join("chunkfs-store").exists());
}

#[test]
fn the_test_line_is_what_ci_runs() {
    assert_eq!(readme_block("## Two commands", 1), "cargo test");
    let ci = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    let last = ci.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(
        last, "cargo test --locked",
        "the README's test command, locked"
    );
}
