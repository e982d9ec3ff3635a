//! The mount(8) helper: run as `mount.chunkfs` or `mount.fuse.chunkfs`, mount(8) calls
//! `HELPER STORE MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]`; we mount as
//! `chunkfs mount STORE MOUNTPOINT -o OPTIONS` would.

use anyhow::{Result, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const HELPER_NAMES: [&str; 2] = ["mount.chunkfs", "mount.fuse.chunkfs"];

pub fn invoked_as_helper() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a0| Path::new(&a0).file_name().map(|n| n.to_os_string()))
        .is_some_and(|n| HELPER_NAMES.iter().any(|h| n == *h))
}

/// mount.fuse3, which mount(8) runs for `-t fuse.chunkfs` (and for `-o remount` of such a
/// mount) when no `mount.fuse.chunkfs` is installed, runs `chunkfs SOURCE MOUNTPOINT -o
/// OPTIONS` from PATH. Recognized by exactly that shape: a first argument that is no
/// subcommand nor option, a second that is a directory, then `-o` (a mistyped subcommand
/// still gets clap's message).
pub fn invoked_by_mount_fuse(is_subcommand: impl Fn(&str) -> bool) -> bool {
    let args: Vec<OsString> = std::env::args_os().skip(1).take(3).collect();
    let [first, second, third] = args.as_slice() else {
        return false;
    };
    let first = first.to_string_lossy();
    !first.starts_with('-') && !is_subcommand(&first) && Path::new(second).is_dir() && third == "-o"
}

#[derive(Debug, Default, PartialEq)]
struct HelperArgs {
    positional: Vec<PathBuf>,
    options: Vec<String>,
    /// `-f`: mount(8)'s "fake" mode, do everything but mount.
    fake: bool,
}

fn parse(args: Vec<OsString>) -> Result<HelperArgs> {
    let mut out = HelperArgs::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        match s.as_str() {
            "-o" => match it.next() {
                Some(v) => out
                    .options
                    .extend(v.to_string_lossy().split(',').map(String::from)),
                None => bail!("-o needs a value"),
            },
            "-t" | "-N" => {
                it.next(); // the type is ours by definition; namespaces are not supported
            }
            _ if s.starts_with("-o") => out.options.extend(s[2..].split(',').map(String::from)),
            _ if s.starts_with('-') && s.len() > 1 => {
                // -s (sloppy), -n (no mtab), -v (verbose) change nothing for us.
                out.fake |= s[1..].contains('f');
            }
            _ => out.positional.push(PathBuf::from(a)),
        }
    }
    Ok(out)
}

pub fn run(args: Vec<OsString>) -> Result<()> {
    let h = parse(args)?;
    let [store, mountpoint] = h.positional.as_slice() else {
        bail!(
            "usage: mount.chunkfs STORE MOUNTPOINT [-o OPTIONS] (as run by mount -t fuse.chunkfs)"
        );
    };
    if h.fake {
        return Ok(());
    }
    super::mount::mount(store, mountpoint, false, &h.options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn helper_reads_mount8_arguments_in_any_order() {
        let h = parse(args("/srv/s /mnt/m -n -v -o rw,noatime -t fuse.chunkfs")).unwrap();
        assert_eq!(
            h.positional,
            vec![PathBuf::from("/srv/s"), PathBuf::from("/mnt/m")]
        );
        assert_eq!(h.options, vec!["rw", "noatime"]);
        assert!(!h.fake);
        assert!(parse(args("-sfv /a /b")).unwrap().fake);
    }
}
