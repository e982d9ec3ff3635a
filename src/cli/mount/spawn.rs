//! Starting the daemon: re-run ourselves with `--foreground` in a new session, output to
//! `STORE/chunkfs.log`, and wait until the mount shows up in the mount table, or the daemon
//! dies (then its error becomes ours).

use super::MountOpts;
use crate::cli::mounts;
use anyhow::{Context, Result, bail};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const LOG_FILE: &str = "chunkfs.log";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn spawn(store: &Path, mountpoint: &Path, opts: &MountOpts) -> Result<()> {
    let log_path = store.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open the daemon log {}", log_path.display()))?;
    let log_start = log.metadata().map_or(0, |m| m.len());
    let exe = std::env::current_exe().context("cannot find the chunkfs executable to start")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("mount")
        .arg(store)
        .arg(mountpoint)
        .arg("--foreground");
    if !opts.given.is_empty() {
        cmd.arg("-o").arg(opts.given.join(","));
    }
    cmd.current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from our terminal and
    // process group, so closing the terminal or Ctrl-C here does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start the daemon {}", exe.display()))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if is_live(mountpoint, &opts.fsname_for(store))? {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let why = daemon_error(&log_path, log_start)
                .unwrap_or_else(|| format!("the daemon exited ({status})"));
            bail!("{why} (daemon log: {})", log_path.display());
        }
        if Instant::now() > deadline {
            bail!(
                "the mount did not appear within {} s; the daemon (pid {}) is still starting or stuck; see {}",
                READY_TIMEOUT.as_secs(),
                child.id(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The mount is in the table, under the fsname the daemon was given.
fn is_live(mountpoint: &Path, fsname: &str) -> Result<bool> {
    Ok(mounts::at(mountpoint)?.is_some_and(|m| m.is_chunkfs() && m.fsname == fsname))
}

/// The daemon's own error message: its last `chunkfs: ` line in the log since it started.
fn daemon_error(log_path: &Path, from: u64) -> Option<String> {
    let mut f = std::fs::File::open(log_path).ok()?;
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("chunkfs: "))?;
    Some(line.to_string())
}
