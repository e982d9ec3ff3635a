//! The client side of the conduit `MOUNT/.chunkfs/ctl` (docs/CONTROL.md): find the mount that
//! holds a path, send one JSON request, and turn the response into a result or an error a
//! person can act on. Every command that talks to a mounted chunkfs goes through [`call`].

use super::mounts;
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The control directory at every mount's root, and what it holds.
pub const CONTROL_DIR: &str = ".chunkfs";

/// A path inside a mounted chunkfs.
#[derive(Clone, Debug)]
pub struct Target {
    /// The path as the user gave it, for messages.
    pub given: PathBuf,
    /// The mountpoint (canonical).
    pub mount: PathBuf,
    /// The path from the mount's root as the filesystem reads it: "/" or "/a/b".
    pub rel: String,
}

impl Target {
    /// Refuse paths inside `/.chunkfs`: views are read-only history, not names the
    /// operations on the live tree (log, revert, clone, snapshot) understand.
    pub fn live(self) -> Result<Target> {
        let control = format!("/{CONTROL_DIR}");
        if self.rel == control || self.rel.starts_with(&format!("{control}/")) {
            bail!(
                "{} is inside {}/{CONTROL_DIR}, the read-only history views; name the live path instead",
                self.given.display(),
                self.mount.display()
            );
        }
        Ok(self)
    }
}

/// Find the chunkfs mount holding `path` and the path relative to its root. The final
/// component is not followed when it is a symlink (the command acts on the link itself, as
/// lstat does), and `path` need not exist (old revisions of deleted files).
pub fn locate(path: &Path) -> Result<Target> {
    let abs = entry_path(path)?;
    let Some(m) = mounts::containing(&abs)? else {
        bail!(
            "{} is not inside a mounted chunkfs{} (see `chunkfs mount --help`)",
            path.display(),
            if exists(&abs) {
                ""
            } else {
                " and does not exist"
            }
        );
    };
    // A mount nested below the chunkfs mount may hold the path instead.
    let dev = |p: &Path| {
        std::fs::symlink_metadata(p).map(|md| md.dev()).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                anyhow!(
                    "the chunkfs mount at {} is not responding (its daemon ended); run `chunkfs umount {}` and mount it again",
                    m.mountpoint.display(),
                    m.mountpoint.display()
                )
            } else {
                anyhow!(e).context(format!("cannot stat {}", p.display()))
            }
        })
    };
    let mount_dev = dev(&m.mountpoint)?;
    if let Some(near) = abs.ancestors().find(|p| exists(p))
        && dev(near)? != mount_dev
    {
        bail!(
            "{} is on another filesystem mounted inside the chunkfs mount at {}",
            path.display(),
            m.mountpoint.display()
        );
    }
    let mut rel = String::new();
    for c in abs.strip_prefix(&m.mountpoint).unwrap_or(Path::new("")) {
        let c = c.to_str().with_context(|| {
            format!(
                "{}: the control protocol carries paths as UTF-8 and this one is not",
                path.display()
            )
        })?;
        rel.push('/');
        rel.push_str(c);
    }
    if rel.is_empty() {
        rel.push('/');
    }
    Ok(Target {
        given: path.to_path_buf(),
        mount: m.mountpoint,
        rel,
    })
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// `path` absolute, with every existing directory on the way canonical and the final
/// component kept as it is.
fn entry_path(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path)
        .with_context(|| format!("cannot make {} absolute", path.display()))?;
    match (abs.parent(), abs.components().next_back()) {
        (Some(parent), Some(Component::Normal(name))) => Ok(canonical_prefix(parent).join(name)),
        _ => Ok(canonical_prefix(&abs)),
    }
}

/// Canonicalize the longest existing prefix of the absolute `p`; apply the rest lexically.
fn canonical_prefix(p: &Path) -> PathBuf {
    for base in p.ancestors() {
        if let Ok(mut out) = base.canonicalize() {
            for c in p.strip_prefix(base).unwrap_or(Path::new("")).components() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
    }
    p.to_path_buf()
}

/// Send `request` (a JSON object with at least "op") to the mount holding `target` and
/// return the response's `result`. A failure names the op and the path and says what to do.
pub fn call(target: &Target, request: Value) -> Result<Value> {
    call_watched(target, request, false)
}

/// [`call`], showing the request's progress on stderr while it runs if `show`
/// (`progress::wanted`): a second thread reads `MOUNT/.chunkfs/progress` (docs/CONTROL.md)
/// while this one waits for the response.
pub fn call_watched(target: &Target, request: Value, show: bool) -> Result<Value> {
    let op = request["op"].as_str().unwrap_or("?").to_string();
    let ctl = target.mount.join(CONTROL_DIR).join("ctl");
    let watch = show.then(|| target.mount.join(CONTROL_DIR).join("progress"));
    let response = exchange(&ctl, &request, watch).with_context(|| {
        format!(
            "{op} on {}: cannot talk to {}",
            target.given.display(),
            ctl.display()
        )
    })?;
    let envelope: Value = serde_json::from_slice(&response).with_context(|| {
        format!(
            "{op} on {}: {} answered something that is not JSON: {:?}",
            target.given.display(),
            ctl.display(),
            String::from_utf8_lossy(&response)
        )
    })?;
    if envelope["ok"].as_bool() == Some(true) {
        return Ok(envelope["result"].clone());
    }
    let errno = envelope["errno"].as_i64().unwrap_or(0) as i32;
    let message = envelope["error"].as_str().unwrap_or("unknown error");
    let mut text = format!(
        "{op} on {}: {message} ({})",
        target.given.display(),
        errno_name(errno)
    );
    if let Some(hint) = advice(&op, errno, message, &request, target) {
        text.push_str("; ");
        text.push_str(&hint);
    }
    Err(anyhow!(text))
}

/// One request per open: write it whole, then read the whole response from offset 0 (the
/// conduit keeps the response at the start of the file; reading executes the request). On a
/// read-only mount, where the kernel opens no file for writing, the request is asked through
/// `/.chunkfs/ask` instead. With `watch`, the progress file to show the request's progress
/// from while it runs.
fn exchange(ctl: &Path, request: &Value, watch: Option<PathBuf>) -> Result<Vec<u8>> {
    let bytes = serde_json::to_vec(request)?;
    let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(ctl) {
        Ok(mut f) => {
            f.write_all(&bytes).context("writing the request")?;
            f.seek(SeekFrom::Start(0))?;
            f
        }
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
            let dir = ctl.parent().unwrap_or(Path::new("/"));
            ask(dir, &bytes).context("asking through the read-only mount's ask directory")?
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => bail!(
            "no control file: the daemon serving this mount predates the control protocol; remount with this chunkfs"
        ),
        Err(e) => return Err(e.into()),
    };
    let op = request["op"].as_str().unwrap_or("?");
    // The daemon names the request by the thread that opened the conduit: this one.
    // SAFETY: gettid has no preconditions and cannot fail.
    let watcher = watch
        .map(|file| super::progress::Watcher::start(file, op, unsafe { libc::gettid() } as u32));
    let mut response = Vec::new();
    let read = f.read_to_end(&mut response);
    // Before the conduit closes: its request's final counts are there until then.
    if let Some(w) = watcher {
        w.finish();
    }
    read.context("reading the response")?;
    Ok(response)
}

/// Ask `request` through `CONTROL/ask` (`fs::ask`): walk its names one at a time, each opened
/// from the one before (so no path grows past PATH_MAX); the last, open to be read.
fn ask(control: &Path, request: &[u8]) -> Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;
    let mut at: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(control.join("ask"))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => anyhow!(
                "the daemon serving this read-only mount predates asking through names; remount it with this chunkfs, or read-write"
            ),
            _ => anyhow!(e),
        })?
        .into();
    let names = crate::fs::ask::names(request);
    for (i, name) in names.iter().enumerate() {
        let flags = if i + 1 == names.len() {
            libc::O_RDONLY
        } else {
            libc::O_PATH | libc::O_DIRECTORY
        };
        let c = std::ffi::CString::new(name.as_str())?;
        // SAFETY: `at` is an open descriptor and `c` a NUL-terminated name.
        let fd = unsafe { libc::openat(at.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: openat just returned this descriptor, owned by nobody else.
        at = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(std::fs::File::from(at))
}

/// What to do about a failure, where there is more to say than the errno.
fn advice(op: &str, errno: i32, message: &str, request: &Value, t: &Target) -> Option<String> {
    let mount = t.mount.display();
    let by_snapshot = request.get("snapshot").is_some();
    Some(match (op, errno) {
        (_, libc::EROFS) => format!(
            "{mount} is mounted read-only or its store has failed (see chunkfs.log in the store)"
        ),
        (_, libc::ENOSPC) => format!("the store is full; `chunkfs stats {mount}` shows its space"),
        (_, libc::EIO) => {
            "the store reported damage; unmount it and run `chunkfs fsck` on the store".into()
        }
        ("snapshot-create", libc::EEXIST) => {
            "pick another name, or delete the old snapshot with `chunkfs snapshot delete NAME`"
                .into()
        }
        ("snapshot-create", libc::EINVAL) => {
            "a snapshot name is 1 to 255 bytes, without '/', and not . or ..".into()
        }
        ("snapshot-create", libc::ENOTDIR) => "a snapshot names a directory tree".into(),
        ("snapshot-delete", libc::ENOENT) => format!(
            "there is no snapshot {}; `chunkfs snapshot list {mount}` lists them",
            request["name"]
        ),
        ("revert" | "resolve", libc::ENOENT) if by_snapshot => {
            format!("`chunkfs snapshot list {mount}` lists the snapshots")
        }
        ("revert" | "resolve", libc::ENOENT) => format!(
            "either the path existed neither then nor now, or that seq or time is not in the history; `chunkfs log {}` lists its revisions",
            t.given.display()
        ),
        ("log", libc::ENOENT) => {
            "it does not exist now; to find a deleted file, look under MOUNT/.chunkfs/at/SEQ/ or a snapshot"
                .into()
        }
        ("clone", libc::EEXIST) => "the destination exists; name a new path".into(),
        ("clone", libc::EINVAL) => "a directory cannot be cloned into itself".into(),
        ("clone", libc::ENOENT) => {
            "the source must exist, and so must the destination's parent directory".into()
        }
        (_, libc::EINVAL) if message.contains("unknown variant") => {
            "the daemon is older than this command: remount with this chunkfs".into()
        }
        ("gc" | "defrag" | "fsck" | "config-set", libc::EPERM) => format!(
            "only root, the user who mounted {mount} and its admin group (-o chunkfs_admin_group=) may; see docs/SECURITY.md"
        ),
        ("snapshot-create", libc::EPERM) => {
            "only root and the owner of the directory may snapshot it".into()
        }
        ("snapshot-create", libc::EDQUOT) => format!(
            "you hold as many snapshots as the store allows each user (`chunkfs config get {mount} snapshot-limit`); delete one first"
        ),
        ("snapshot-delete", libc::EPERM) => {
            "only root, whoever took it and the owner of its directory may delete a snapshot"
                .into()
        }
        ("clone", libc::EPERM) => {
            "a clone keeps owners, so everything in the source must be yours (cp -a makes copies you own)"
                .into()
        }
        (_, libc::EACCES) => "a directory on the way is not yours to search, or the change needs write permission you lack (docs/SECURITY.md)".into(),
        ("revert", libc::EPERM) => {
            "the revert would change what only the owner (or root) may change".into()
        }
        _ => return None,
    })
}

/// The symbolic name of the errnos the core reports (docs/CONTROL.md lists them).
fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EINVAL => "EINVAL",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EBADF => "EBADF",
        libc::ENODATA => "ENODATA",
        libc::ERANGE => "ERANGE",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EMLINK => "EMLINK",
        libc::EFBIG => "EFBIG",
        libc::ESTALE => "ESTALE",
        libc::EIO => "EIO",
        libc::EDQUOT => "EDQUOT",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// A point in history as the views (`/.chunkfs/at/NAME`) and requests ("time") accept it:
/// a seq, `@UNIXSECONDS`, or an ISO 8601 time. Times with a UTC offset (as `chunkfs log`
/// prints them, `2026-12-01T15:00:00+01:00`) become `@UNIXSECONDS`; ISO times without
/// one are UTC.
pub fn point(arg: &str) -> Result<String> {
    use crate::fs::{Point, parse_point};
    let bad = || {
        anyhow!(
            "cannot read {arg:?} as a point in history: give a seq (42), @UNIXSECONDS, or an ISO 8601 time (2026-12-01T14:00:00Z, 2026-12-01T15:00:00+01:00)"
        )
    };
    if let Some((base, offset)) = split_offset(arg) {
        let Some(Point::Time(ns)) = parse_point(base) else {
            return Err(bad());
        };
        let utc = ns - offset * 1_000_000_000;
        return Ok(format!(
            "@{}.{:09}",
            utc.div_euclid(1_000_000_000),
            utc.rem_euclid(1_000_000_000)
        ));
    }
    parse_point(arg).ok_or_else(bad)?;
    Ok(arg.to_string())
}

/// `2026-12-01T15:00:00+01:00` -> ("2026-12-01T15:00:00", 3600); only after a time of day.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    let t = s.find('T')?;
    let at = s[t..].rfind(['+', '-'])? + t;
    let (base, off) = s.split_at(at);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i64, i64) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    Some((base, sign * (h * 3600 + m * 60)))
}

/// A time in nanoseconds since the epoch as local ISO 8601 with its offset, to the second.
pub fn local_iso(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000) as libc::time_t;
    // SAFETY: localtime_r only writes the tm we pass; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return format!("@{secs}");
    }
    let off = tm.tm_gmtoff / 60;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if off < 0 { '-' } else { '+' },
        off.abs() / 60,
        off.abs() % 60
    )
}

/// `{"op": op}` plus `fields`.
pub fn request(op: &str, fields: Value) -> Value {
    let mut req = json!({ "op": op });
    if let (Some(r), Value::Object(f)) = (req.as_object_mut(), fields) {
        r.extend(f);
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_offsets_become_unix_seconds() {
        assert_eq!(point("1970-01-01T01:00:10+01:00").unwrap(), "@10.000000000");
        assert_eq!(
            point("1970-01-01T00:00:10-0130").unwrap(),
            "@5410.000000000"
        );
        assert_eq!(
            point("2026-12-01T14:00:00Z").unwrap(),
            "2026-12-01T14:00:00Z"
        );
        assert_eq!(point("2026-12-01").unwrap(), "2026-12-01");
        assert_eq!(point("42").unwrap(), "42");
        assert_eq!(point("@1700000000").unwrap(), "@1700000000");
        assert!(point("yesterday").is_err());
    }
}
