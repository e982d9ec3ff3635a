//! `chunkfs completions SHELL`: the shell completion script, generated from the clap
//! definitions (clap_complete), so it always knows every subcommand and option.

use anyhow::Result;
use std::io::Write;

const EXAMPLES: &str = "\
Examples:
  chunkfs completions bash > /usr/share/bash-completion/completions/chunkfs
      bash, for every user (needs the bash-completion package); or for one user:
      chunkfs completions bash > ~/.local/share/bash-completion/completions/chunkfs
  source <(chunkfs completions bash)
      bash, in this shell only (put it in ~/.bashrc to keep it)
  chunkfs completions zsh > /usr/share/zsh/vendor-completions/_chunkfs
      zsh: any directory in $fpath, named _chunkfs; start a new shell
  chunkfs completions fish > ~/.config/fish/completions/chunkfs.fish
      fish, for one user; /usr/share/fish/vendor_completions.d/ for every user

`chunkfs install-helper` installs all three system-wide, with the man pages.";

/// Print a shell completion script.
///
/// Writes to stdout the completion script for SHELL, which teaches the shell chunkfs's
/// subcommands, options and their values. Save it where the shell looks for completions (see
/// the examples), or source it for the current shell only.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The shell to complete for.
    shell: Shell,
}

/// The shells we generate completions for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash, with the bash-completion package.
    Bash,
    /// The Z shell.
    Zsh,
    /// The friendly interactive shell.
    Fish,
}

impl Shell {
    pub const ALL: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }

    /// Where distributions keep this shell's completion file for every user.
    pub fn system_path(self) -> &'static str {
        match self {
            Shell::Bash => "/usr/share/bash-completion/completions/chunkfs",
            Shell::Zsh => "/usr/share/zsh/vendor-completions/_chunkfs",
            Shell::Fish => "/usr/share/fish/vendor_completions.d/chunkfs.fish",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }
}

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(
        shell.generator(),
        &mut super::command(),
        "chunkfs",
        &mut out,
    );
    out
}

pub fn run(a: Args) -> Result<()> {
    std::io::stdout().lock().write_all(&script(a.shell))?;
    Ok(())
}
