//! The `chunkfs` command line: one file per subcommand under `cli/`, plus the `mount.chunkfs`
//! helper entry point that mount(8) runs for `-t fuse.chunkfs`. Errors reach the user here, as
//! `chunkfs: <what failed>: <why>` with exit code 1.

mod cat;
mod clone;
mod completions;
mod config;
mod control;
mod defrag;
mod exit;
mod fsck;
mod gc;
mod helper;
mod install_helper;
mod lock;
mod log;
mod manpages;
mod mkfs;
mod mount;
mod mounts;
mod progress;
mod revert;
mod size;
mod snapshot;
mod stats;
mod umount;
mod users;

pub use exit::{error_line, print_error};

use clap::{Parser, Subcommand};
use std::process::ExitCode;

const ABOUT: &str = "chunkfs: a content-addressed, deduplicating filesystem for Linux";

const LONG_ABOUT: &str = "\
chunkfs stores files as lists of content-defined chunks, so identical data (a second backup of
the same tree, a copied VM image) is stored once. A store is a directory holding the metadata
database (meta.db) and a data device (data.img beside it, or a block device named at mkfs).
Make a store with `chunkfs mkfs`, mount it with `chunkfs mount`, and see how much deduplication
saves with `chunkfs stats`. Every change is kept as history: `chunkfs log` lists a file's
revisions, `chunkfs cat --at` prints one, `chunkfs snapshot` names a moment, `chunkfs revert`
goes back to one, and `chunkfs clone` copies a tree instantly. The history is browsable,
read-only, under MOUNT/.chunkfs/ (docs/CONTROL.md describes its control file).";

const EXAMPLES: &str = "\
Examples:
  chunkfs mkfs /srv/backup                    make a store in /srv/backup
  chunkfs mount /srv/backup /mnt/backup       mount it (returns once the mount is live)
  cp -a ~/photos /mnt/backup/                 use it like any directory
  chunkfs stats /mnt/backup                   logical vs stored bytes, dedup ratio
  chunkfs snapshot create monday /mnt/backup  name this moment (instant)
  chunkfs log /mnt/backup/notes.txt           a file's revisions
  chunkfs revert /mnt/backup/etc --snapshot monday
  chunkfs clone /mnt/backup/src /mnt/backup/src-test   an instant copy
  chunkfs gc /srv/backup                      reclaim deleted data's space now
  chunkfs umount /mnt/backup                  unmount; returns when everything is committed

Run `chunkfs help <command>` for each command's options and examples (`man chunkfs-<command>`
once `chunkfs install-helper` has installed the man pages and shell completions).";

#[derive(Parser)]
#[command(name = "chunkfs", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Mkfs(mkfs::Args),
    Mount(mount::Args),
    Umount(umount::Args),
    Stats(stats::Args),
    Fsck(fsck::Args),
    Log(log::Args),
    Cat(cat::Args),
    Snapshot(snapshot::Args),
    Revert(revert::Args),
    Clone(clone::Args),
    Gc(gc::Args),
    Config(config::Args),
    Defrag(defrag::Args),
    InstallHelper(install_helper::Args),
    Completions(completions::Args),
    Manpages(manpages::Args),
}

/// The command line as clap defines it: what completions, man pages and the tests that keep
/// them and the help texts complete are made from.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Entry point of the `chunkfs` binary (and of `mount.chunkfs`, chosen by argv[0]).
pub fn main() -> ExitCode {
    let is_subcommand = |name: &str| {
        name == "help"
            || <Cli as clap::CommandFactory>::command()
                .find_subcommand(name)
                .is_some()
    };
    if helper::invoked_as_helper() || helper::invoked_by_mount_fuse(is_subcommand) {
        return report(helper::run(std::env::args_os().skip(1).collect()));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    // Output fails for every command as it fails for coreutils, but for the mount daemon
    // (src/cli/exit.rs). fsck's exit code for an error is e2fsck's 8.
    if !matches!(cli.command, Command::Mount(_)) {
        exit::like_coreutils(if matches!(cli.command, Command::Fsck(_)) {
            8
        } else {
            1
        });
    }
    if let Command::Fsck(a) = cli.command {
        return fsck::run(a); // e2fsck exit codes, not just 0/1
    }
    report(match cli.command {
        Command::Mkfs(a) => mkfs::run(a),
        Command::Mount(a) => mount::run(a),
        Command::Umount(a) => umount::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Log(a) => log::run(a),
        Command::Cat(a) => cat::run(a),
        Command::Snapshot(a) => snapshot::run(a),
        Command::Revert(a) => revert::run(a),
        Command::Clone(a) => clone::run(a),
        Command::Gc(a) => gc::run(a),
        Command::Config(a) => config::run(a),
        Command::Defrag(a) => defrag::run(a),
        Command::InstallHelper(a) => install_helper::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Manpages(a) => manpages::run(a),
        Command::Fsck(_) => unreachable!("handled above"),
    })
}

/// `--help` and `--version` succeed; a usage error is an error like any other (exit 1). Help
/// that cannot be written fails, except to a closed pipe (`chunkfs --help | head`).
fn usage(e: clap::Error) -> ExitCode {
    if let Err(w) = e.print()
        && w.kind() != std::io::ErrorKind::BrokenPipe
        && !e.use_stderr()
    {
        print_error("chunkfs", &anyhow::anyhow!("cannot write to stdout: {w}"));
        return ExitCode::FAILURE;
    }
    if e.use_stderr() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            exit::print_error("chunkfs", &e);
            ExitCode::FAILURE
        }
    }
}
