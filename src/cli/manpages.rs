//! `chunkfs manpages DIR`: section 8 man pages generated from the clap definitions
//! (clap_mangen): chunkfs.8, one page per subcommand at every depth (chunkfs-snapshot-create.8),
//! and mount.chunkfs.8 for the mount(8) helper. Each page carries its command's long
//! description, options, examples (the `after_help` text) and a SEE ALSO naming the others.

use anyhow::{Context, Result};
use clap_mangen::Man;
use roff::{Roff, bold, roman};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  chunkfs manpages /usr/share/man/man8
      install them for every user, then: man chunkfs-mount
  chunkfs manpages ~/.local/share/man/man8
      for one user (man searches ~/.local/share/man when ~/.local/bin is in PATH)
  chunkfs manpages /tmp/pages && man -l /tmp/pages/chunkfs-snapshot-create.8
      read one without installing

`chunkfs install-helper` installs them in /usr/share/man/man8, with the shell completions.";

const SECTION: &str = "8";

/// Write the man pages.
///
/// Writes chunkfs.8, a page per subcommand (chunkfs-mount.8, chunkfs-snapshot.8,
/// chunkfs-snapshot-create.8, ...) and mount.chunkfs.8 into DIR, creating it if missing and
/// replacing pages of the same names, and prints the path of each.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Directory to write the pages to, e.g. /usr/share/man/man8.
    dir: PathBuf,
}

/// One man page: its file name (e.g. `chunkfs-mount.8`) and its roff source.
pub struct Page {
    pub file: String,
    pub text: Vec<u8>,
}

/// Every page, chunkfs.8 first.
pub fn pages() -> Vec<Page> {
    let mut root = without_help_subcommand(super::command());
    root.build(); // names each subcommand chunkfs-PARENT-NAME (its display name)
    let mut commands = Vec::new();
    walk(&root, &mut commands);
    let names: Vec<String> = commands
        .iter()
        .map(|c| page_name(c))
        .chain([HELPER_PAGE.to_string()])
        .collect();
    let mut pages: Vec<Page> = commands
        .iter()
        .map(|c| Page {
            file: format!("{}.{SECTION}", page_name(c)),
            text: render(c, &see_also(&page_name(c), &names)),
        })
        .collect();
    pages.push(Page {
        file: format!("{HELPER_PAGE}.{SECTION}"),
        text: render_helper(&see_also(HELPER_PAGE, &names)),
    });
    pages
}

/// Write every page into `dir` (created if missing); returns the paths written.
pub fn write_all(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    pages()
        .into_iter()
        .map(|p| {
            let path = dir.join(&p.file);
            replace_file(&path, &p.text)?;
            Ok(path)
        })
        .collect()
}

/// Put `contents` at `path` as a new file (mode 0644) renamed over whatever is there: a
/// symlink already at `path` is replaced, never written through (as root into a staging
/// directory another user could write, it could point at any file).
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(a: Args) -> Result<()> {
    for path in write_all(&a.dir)? {
        println!("{}", path.display());
    }
    Ok(())
}

/// `chunkfs help` is clap's, not a page of its own.
fn without_help_subcommand(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help_subcommand)
}

fn walk<'a>(cmd: &'a clap::Command, out: &mut Vec<&'a clap::Command>) {
    out.push(cmd);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        walk(sub, out);
    }
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// Every page but `me`, as `name(8)`, chunkfs(8) first; plus the system pages that matter.
fn see_also(me: &str, names: &[String]) -> Vec<String> {
    let mut refs: Vec<String> = names
        .iter()
        .filter(|n| *n != me)
        .map(|n| format!("{n}({SECTION})"))
        .collect();
    if me == "chunkfs-mount" || me == HELPER_PAGE || me == "chunkfs-install-helper" {
        refs.extend(["mount(8)", "fstab(5)", "fusermount3(1)"].map(String::from));
    }
    refs
}

fn source() -> String {
    format!("chunkfs {}", env!("CARGO_PKG_VERSION"))
}

fn render(cmd: &clap::Command, see_also: &[String]) -> Vec<u8> {
    let name = page_name(cmd);
    // The examples are rendered below, laid out as typed, instead of clap_mangen's EXTRA
    // section, which would fill them into one paragraph.
    let after_help = cmd.get_after_help().map(|s| s.to_string());
    let mut cmd = cmd.clone().after_help(None::<&str>);
    // NAME reads `chunkfs - a content-addressed ...`, not `chunkfs - chunkfs: a ...`.
    let prefix = format!("{}: ", cmd.get_name());
    if let Some(about) = cmd.get_about().map(|a| a.to_string())
        && let Some(rest) = about.strip_prefix(&prefix)
    {
        cmd = cmd.about(rest.to_string());
    }
    let man = Man::new(cmd)
        .title(name.to_uppercase())
        .section(SECTION)
        .source(source());
    let mut out = Vec::new();
    man.render(&mut out).expect("writing to a Vec cannot fail");
    let mut roff = Roff::new();
    if let Some(text) = after_help {
        after_help_sections(&mut roff, &text);
    }
    if name == "chunkfs-mount" {
        roff.control("SH", ["MOUNT(8) AND FSTAB"]);
        roff.text([
            roman("After "),
            bold("chunkfs install-helper"),
            roman(
                ", mount(8) mounts a store with `mount -t fuse.chunkfs STORE MOUNTPOINT -o \
                 OPTIONS` and from /etc/fstab, taking the same options as -o here; see \
                 mount.chunkfs(8).",
            ),
        ]);
    }
    see_also_section(&mut roff, see_also);
    // Man's page already starts with roff's preamble.
    let preamble = Roff::new().render().len();
    out.extend(&roff.render().as_bytes()[preamble..]);
    out
}

/// An `after_help` text: its `Examples:` paragraph becomes an EXAMPLES section laid out as
/// typed; the paragraphs after it, prose, become NOTES.
fn after_help_sections(roff: &mut Roff, text: &str) {
    let mut notes = Vec::new();
    for para in text.split("\n\n") {
        if let Some(examples) = para.strip_prefix("Examples:\n") {
            roff.control("SH", ["EXAMPLES"]);
            roff.control("nf", []);
            for line in examples.lines() {
                roff.text([roman(line)]);
            }
            roff.control("fi", []);
        } else {
            notes.push(para);
        }
    }
    if !notes.is_empty() {
        roff.control("SH", ["NOTES"]);
        for (i, para) in notes.iter().enumerate() {
            if i > 0 {
                roff.control("PP", []);
            }
            roff.text([roman(para.replace('\n', " "))]);
        }
    }
}

fn see_also_section(roff: &mut Roff, refs: &[String]) {
    roff.control("SH", ["SEE ALSO"]);
    // Page names unbroken, left-aligned: hyphenating chunkfs-snapshot-create misleads.
    roff.control("nh", []).control("ad", ["l"]);
    for (i, r) in refs.iter().enumerate() {
        let (name, section) = r.split_once('(').unwrap_or((r, ""));
        let sep = if i + 1 < refs.len() { "," } else { "" };
        roff.text([bold(name), roman(format!("({section}{sep}"))]);
    }
}

const HELPER_PAGE: &str = "mount.chunkfs";

/// mount.chunkfs(8): the helper mount(8) runs; `chunkfs install-helper` links it.
fn render_helper(see_also: &[String]) -> Vec<u8> {
    let mut roff = Roff::new();
    roff.control("TH", ["MOUNT.CHUNKFS", SECTION, "", &source(), ""]);
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "mount.chunkfs, mount.fuse.chunkfs - mount a chunkfs store through mount(8)",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([
        bold("mount -t fuse.chunkfs"),
        roman(" STORE MOUNTPOINT [-o OPTIONS]"),
    ]);
    roff.control("br", []);
    roff.text([
        bold("mount.chunkfs"),
        roman(" STORE MOUNTPOINT [-sfnv] [-o OPTIONS] [-t TYPE]"),
    ]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "mount(8) runs mount.chunkfs (or mount.fuse.chunkfs) for filesystems of type \
         fuse.chunkfs, given on its command line or in /etc/fstab. Both are links to the \
         chunkfs executable, made by `chunkfs install-helper`; run under either name it mounts \
         as `chunkfs mount STORE MOUNTPOINT -o OPTIONS` does, taking the same options \
         (chunkfs-mount(8)). -f (fake) does everything but mount; -s, -n and -v change \
         nothing. Without the links, fuse3's mount.fuse3 runs `chunkfs` from PATH with the \
         same effect.",
    )]);
    roff.control("PP", []);
    roff.text([roman(
        "`mount -o remount,ro MOUNTPOINT` and `-o remount,rw` make a mounted store read-only \
         or writable again (root only).",
    )]);
    roff.control("SH", ["EXAMPLES"]);
    roff.control("nf", []);
    for line in [
        "  chunkfs install-helper",
        "  mount -t fuse.chunkfs /srv/backup /mnt/backup",
        "  mount -t fuse.chunkfs -o ro,allow_other /srv/backup /mnt/backup",
        "  /etc/fstab line:",
        "      /srv/backup  /mnt/backup  fuse.chunkfs  defaults,nofail  0  0",
    ] {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    see_also_section(&mut roff, see_also);
    roff.render().into_bytes()
}
