//! The documentation generated from the clap definitions, and the help texts it is made of:
//! shell completions, man pages, what `install-helper` installs, and the README's command
//! table. Every expectation comes from walking `chunkfs::cli::command()`, so a new option or
//! subcommand without help, completion, man page or README entry fails here.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_chunkfs");

/// One command of the tree: its path below `chunkfs` and its clap definition.
struct Cmd {
    path: Vec<String>,
    cmd: clap::Command,
}

impl Cmd {
    /// `chunkfs-snapshot-create`, the page name.
    fn page(&self) -> String {
        std::iter::once("chunkfs")
            .chain(self.path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// `snapshot create`, as typed after `chunkfs`.
    fn words(&self) -> String {
        self.path.join(" ")
    }

    /// The long options we define (not clap's --help and --version).
    fn longs(&self) -> Vec<String> {
        self.cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .filter(|l| !["help", "version"].contains(l))
            .map(String::from)
            .collect()
    }

    fn subcommands(&self) -> Vec<String> {
        self.cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect()
    }
}

/// Every command, the root first, depth first.
fn tree() -> Vec<Cmd> {
    fn walk(path: Vec<String>, cmd: &clap::Command, out: &mut Vec<Cmd>) {
        out.push(Cmd {
            path: path.clone(),
            cmd: cmd.clone(),
        });
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(p, sub, out);
        }
    }
    let mut out = Vec::new();
    walk(Vec::new(), &chunkfs::cli::command(), &mut out);
    out
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run chunkfs")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn has_text(s: Option<&clap::builder::StyledStr>) -> bool {
    s.is_some_and(|s| !s.to_string().trim().is_empty())
}

#[test]
fn every_argument_option_and_subcommand_has_help_text() {
    let mut missing = Vec::new();
    for c in tree() {
        if !c.path.is_empty() && !has_text(c.cmd.get_about()) && !has_text(c.cmd.get_long_about()) {
            missing.push(format!("`chunkfs {}` has no about", c.words()));
        }
        for a in c.cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if !has_text(a.get_help()) && !has_text(a.get_long_help()) {
                missing.push(format!(
                    "`chunkfs {}`: {} has no help",
                    c.words(),
                    a.get_id()
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    // The case the issue found: `help snapshot list` showed `[PATH]` bare.
    let help = stdout(&run(&["help", "snapshot", "list"]));
    let line = help
        .lines()
        .find(|l| l.contains("[PATH]") && !l.contains("Usage"));
    assert!(
        line.is_some_and(|l| l.trim().len() > "[PATH]".len()),
        "{help}"
    );
}

#[test]
fn completions_of_every_shell_name_every_subcommand_and_long_option() {
    let cmds = tree();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&run(&["completions", shell]));
        for c in &cmds {
            for long in c.longs() {
                let found = match shell {
                    // zsh: '--json[help]' or '(--other)--at=[help]:SEQ'
                    "zsh" => {
                        script.contains(&format!("--{long}["))
                            || script.contains(&format!("--{long}=["))
                    }
                    "fish" => script.lines().any(|l| {
                        let words: Vec<&str> = l.split_whitespace().collect();
                        words.windows(2).any(|w| w == ["-l", long.as_str()])
                    }),
                    _ => script.contains(&format!("--{long}")),
                };
                assert!(found, "{shell} completion lacks `{}` --{long}", c.words());
            }
            for sub in c.subcommands() {
                let found = match shell {
                    "zsh" => script.contains(&format!("'{sub}:")),
                    "fish" => script.contains(&format!("-a \"{sub}\"")),
                    _ => script.contains(&format!(",{sub})")),
                };
                assert!(found, "{shell} completion lacks `{} {sub}`", c.words());
            }
        }
        if shell == "bash" {
            // Per command, the words offered after it: its options and subcommands.
            for c in &cmds {
                let want: Vec<String> = c
                    .longs()
                    .iter()
                    .map(|l| format!("--{l}"))
                    .chain(c.subcommands())
                    .collect();
                let offered = script.lines().any(|l| {
                    l.trim().strip_prefix("opts=\"").is_some_and(|o| {
                        let words: BTreeSet<&str> = o.trim_end_matches('"').split(' ').collect();
                        want.iter().all(|w| words.contains(w.as_str()))
                    })
                });
                assert!(offered, "bash offers no `{}` with {want:?}", c.words());
            }
        }
    }
}

#[test]
fn bash_loads_the_completion_and_completes_subcommands_and_options() {
    if Command::new("bash").arg("--version").output().is_err() {
        eprintln!("skipped: no bash");
        return;
    }
    // As the help says: source <(chunkfs completions bash); then complete as bash would at
    // `chunkfs snapshot l<TAB>` and `chunkfs mkfs --hi<TAB>`.
    let script = format!(
        r#"set -e
source <("{BIN}" completions bash)
spec=$(complete -p chunkfs)
echo "$spec"
fn=$(echo "$spec" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
try() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
    COMPREPLY=(); "$fn" chunkfs "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    echo "${{COMPREPLY[*]}}"; }}
try chunkfs snapshot l
try chunkfs mkfs --hi
try chunkfs compl
"#
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("complete ") && lines[0].ends_with(" chunkfs"),
        "{out}"
    );
    assert_eq!(
        lines[1..],
        ["list", "--history-window", "completions"],
        "{out}"
    );
}

fn installed(shell: &str) -> bool {
    let there = Command::new(shell).arg("--version").output().is_ok();
    if !there {
        eprintln!("note: {shell} is not installed; its completion is not loaded");
    }
    there
}

#[test]
fn zsh_loads_the_completion_and_registers_it_for_chunkfs() {
    if !installed("zsh") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let script = format!(
        r#"autoload -Uz compinit && compinit -u -D
source <("{BIN}" completions zsh)
print -r -- "${{_comps[chunkfs]}}""#
    );
    let o = Command::new("zsh")
        .args(["-f", "-c", &script])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(stdout(&o).trim(), "_chunkfs");
}

#[test]
fn fish_loads_the_completion_and_completes_subcommands_and_options() {
    if !installed("fish") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let script = format!(
        r#""{BIN}" completions fish | source
complete -C'chunkfs snapshot l'
complete -C'chunkfs mkfs --hi'"#
    );
    let o = Command::new("fish")
        .args(["--no-config", "-c", &script])
        .env("HOME", home.path())
        .output()
        .unwrap();
    let out = stdout(&o);
    let words: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(words, ["list", "--history-window"], "{out}");
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error_naming_the_choices() {
    let o = run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

/// A page's text as a reader sees it, roff escapes and font changes undone.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\*(Aq", "'")
        .replace("\\(aq", "'")
        .replace("\\&", "")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\\\", "\\")
}

/// The pages `chunkfs manpages DIR` writes: one per command of the tree, plus mount.chunkfs.
fn expected_pages() -> BTreeSet<String> {
    tree()
        .iter()
        .map(|c| format!("{}.8", c.page()))
        .chain(["mount.chunkfs.8".to_string()])
        .collect()
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn man_pages_cover_every_subcommand_with_its_options_examples_and_see_also() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/man8"); // created if missing
    let out = stdout(&run(&["manpages", dir.to_str().unwrap()]));
    let pages = expected_pages();
    assert_eq!(files_in(&dir), pages);
    let printed: BTreeSet<String> = out.lines().map(String::from).collect();
    let written: BTreeSet<String> = pages
        .iter()
        .map(|p| dir.join(p).display().to_string())
        .collect();
    assert_eq!(printed, written, "it prints what it wrote");
    for c in tree() {
        let file = format!("{}.8", c.page());
        let text = plain(&fs::read_to_string(dir.join(&file)).unwrap());
        assert!(text.starts_with(".") && text.contains(".TH "), "{file}");
        for long in c.longs() {
            assert!(text.contains(&format!("--{long}")), "{file} lacks --{long}");
        }
        for sub in c.subcommands() {
            assert!(
                text.contains(&format!("{}-{sub}(8)", c.page())),
                "{file} lacks its subcommand {sub}"
            );
        }
        let about = c.cmd.get_long_about().or(c.cmd.get_about());
        for line in about.map(|a| a.to_string()).unwrap_or_default().lines() {
            assert!(
                text.contains(line.trim()),
                "{file} lacks its description: {line}"
            );
        }
        if let Some(after) = c.cmd.get_after_help() {
            assert!(text.contains(".SH EXAMPLES"), "{file}");
            for line in after.to_string().lines().filter(|l| *l != "Examples:") {
                assert!(text.contains(line.trim()), "{file} lacks: {line}");
            }
        }
        let see_also = &text[text.find(".SH \"SEE ALSO\"").expect(&file)..];
        for other in pages.iter().filter(|p| **p != file) {
            let name = other.trim_end_matches(".8");
            assert!(
                see_also.contains(&format!("{name}(8)")),
                "{file}: no {name}(8)"
            );
        }
    }
    let helper = plain(&fs::read_to_string(dir.join("mount.chunkfs.8")).unwrap());
    assert!(helper.contains("mount -t fuse.chunkfs") && helper.contains("fstab"));
    assert!(
        plain(&fs::read_to_string(dir.join("chunkfs-mount.8")).unwrap())
            .contains("mount.chunkfs(8)")
    );
    render_without_warnings(&dir);
}

/// `man -l` (or groff) formats every page without a warning; skipped, saying so, without
/// either.
fn render_without_warnings(dir: &Path) {
    let has = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    let (tool, args): (&str, &[&str]) = if has("man") {
        ("man", &["--warnings", "-l"])
    } else if has("groff") {
        ("groff", &["-man", "-Tutf8", "-ww", "-z"])
    } else {
        eprintln!("note: neither man nor groff is installed; pages not rendered");
        return;
    };
    for page in files_in(dir) {
        let o = Command::new(tool)
            .args(args)
            .arg(dir.join(&page))
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.is_empty(), "{tool} {page}: {err}");
        if tool == "man" {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text.contains("SEE ALSO"), "{page} renders empty:\n{text}");
        }
    }
}

#[test]
fn install_helper_into_a_root_installs_links_completions_and_man_pages_as_generated() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let out = stdout(&run(&["install-helper", "--root", root.to_str().unwrap()]));
    let exe = Path::new(BIN).canonicalize().unwrap();
    for link in ["sbin/mount.chunkfs", "sbin/mount.fuse.chunkfs"] {
        let path = root.join(link);
        assert_eq!(fs::read_link(&path).unwrap(), exe);
        assert!(out.contains(&path.display().to_string()), "{out}");
    }
    for (shell, file) in [
        ("bash", "usr/share/bash-completion/completions/chunkfs"),
        ("zsh", "usr/share/zsh/vendor-completions/_chunkfs"),
        ("fish", "usr/share/fish/vendor_completions.d/chunkfs.fish"),
    ] {
        let path = root.join(file);
        let generated = run(&["completions", shell]).stdout;
        assert_eq!(fs::read(&path).unwrap(), generated, "{file}");
        assert!(out.contains(&path.display().to_string()), "{out}");
    }
    let man = root.join("usr/share/man/man8");
    let generated = tmp.path().join("generated");
    stdout(&run(&["manpages", generated.to_str().unwrap()]));
    assert_eq!(files_in(&man), expected_pages());
    for page in expected_pages() {
        assert_eq!(
            fs::read(man.join(&page)).unwrap(),
            fs::read(generated.join(&page)).unwrap(),
            "{page}"
        );
        assert!(
            out.contains(&man.join(&page).display().to_string()),
            "{out}"
        );
    }
    // Again: the links are ours, the files replaced.
    stdout(&run(&["install-helper", "--root", root.to_str().unwrap()]));

    let bare = tmp.path().join("bare");
    stdout(&run(&[
        "install-helper",
        "--no-docs",
        "--root",
        bare.to_str().unwrap(),
    ]));
    assert_eq!(files_in(&bare), BTreeSet::from(["sbin".to_string()]));
    assert_eq!(files_in(&bare.join("sbin")).len(), 2);
}

/// A page or completion already there as a symlink (planted in a staging root, or a distro's
/// alias) is replaced, not written through: the file it points at is left as it was.
#[test]
fn installing_replaces_symlinks_instead_of_writing_through_them() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let man = tmp.path().join("man");
    fs::create_dir(&man).unwrap();
    std::os::unix::fs::symlink(&victim, man.join("chunkfs.8")).unwrap();
    stdout(&run(&["manpages", man.to_str().unwrap()]));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        fs::symlink_metadata(man.join("chunkfs.8"))
            .unwrap()
            .is_file()
    );

    let root = tmp.path().join("root");
    let bash = root.join("usr/share/bash-completion/completions/chunkfs");
    fs::create_dir_all(bash.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&victim, &bash).unwrap();
    stdout(&run(&["install-helper", "--root", root.to_str().unwrap()]));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(fs::read(&bash).unwrap() == run(&["completions", "bash"]).stdout);
    assert!(fs::symlink_metadata(&bash).unwrap().is_file());
}

/// The README's table of commands, from `| command |` to the end of the table.
fn readme_table() -> String {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("| command |")
        .expect("README has a command table");
    readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each command of the tree that takes arguments has a row whose first cell has a `code span`
/// starting with the command's words and naming each of its long options.
#[test]
fn the_readme_command_table_names_every_subcommand_and_long_option() {
    let table = readme_table();
    let spans: Vec<String> = table
        .lines()
        .filter_map(|row| row.split(" | ").next())
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(|s| s.replace("\\|", "|"))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut missing = Vec::new();
    for c in tree().iter().filter(|c| !c.path.is_empty()) {
        if !c.subcommands().is_empty() {
            continue; // `snapshot`, `config`: their subcommands have the rows
        }
        let words = c.words();
        let span = spans
            .iter()
            .find(|s| *s == &words || s.starts_with(&format!("{words} ")));
        let Some(span) = span else {
            missing.push(format!("no `{words} ...` in the table"));
            continue;
        };
        for long in c.longs() {
            if !span.contains(&format!("--{long}")) {
                missing.push(format!("`{span}` lacks --{long}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README command table:\n{}",
        missing.join("\n")
    );
}
