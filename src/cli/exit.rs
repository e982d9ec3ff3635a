//! How a command ends when something goes wrong: its error as one line on stderr, each cause
//! said once, and a closed stdout ending it quietly, as it ends coreutils.

use std::io::Write;

/// Print `err` as the one line `PROGRAM: <what failed>: <why>` on stderr. A failed write is
/// ignored: there is nobody left to tell (and a panic would print a backtrace).
pub fn print_error(program: &str, err: &anyhow::Error) {
    let _ = writeln!(std::io::stderr().lock(), "{program}: {}", error_line(err));
}

/// The error and its causes, outermost first, joined by ": ", leaving out every cause the
/// line already says.
///
/// A cause can repeat what is above it: an error that prints its source in its own message
/// and also returns it from `source()`. Our own error enums do not (`#[error(transparent)]`,
/// or the detail in the message and no source), but rusqlite's does: a `SqliteFailure` shows
/// SQLite's message, and its source shows the same again as "Error code 11: The database disk
/// image is malformed". Such a cause adds nothing a person can act on.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !already_said(&line, &text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn already_said(line: &str, cause: &str) -> bool {
    let line = line.to_lowercase();
    let cause = cause.trim().to_lowercase();
    cause.is_empty() || line.contains(&cause) || line.contains(sqlite_message(&cause))
}

/// SQLite's message in libsqlite3-sys's form of an error code: "error code N: the MESSAGE".
fn sqlite_message(cause: &str) -> &str {
    let Some(rest) = cause.strip_prefix("error code ") else {
        return cause;
    };
    let Some((code, message)) = rest.split_once(": ") else {
        return cause;
    };
    if message.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return cause;
    }
    message.strip_prefix("the ").unwrap_or(message)
}

/// How output fails for every command but `mount`: as it fails for coreutils. `code` is the
/// command's exit code for an error. The one place that decides it (called by `cli::main`).
///
/// A write to a closed pipe ends the process quietly, by SIGPIPE (`chunkfs log DIR --json |
/// head` exits 141 in a shell, with nothing on stderr). Rust ignores SIGPIPE, so such a write
/// fails with EPIPE instead, and `println!` panics on it ("failed printing to stdout: Broken
/// pipe", with a backtrace under RUST_BACKTRACE=1). Restoring the default disposition covers
/// every write a command makes, its own and its libraries' (clap, indicatif, clap_complete),
/// with no change to the commands; a writer that turned EPIPE into an exit would have to
/// replace every `println!` and would still miss the writes of the libraries.
///
/// `chunkfs mount` is the daemon, or starts it (without --foreground, and as the
/// mount.chunkfs helper, it re-runs itself with --foreground), and keeps SIGPIPE ignored: a
/// daemon serving a mount must not die of a closed pipe, say the end of a `--foreground 2>&1 |
/// tee LOG` whose reader went away, with writes not yet committed. It logs through
/// env_logger, which drops a write that fails, and reports its end through `print_error`.
/// chunkfs-passthrough, a daemon too, keeps it ignored for the same reason.
pub fn like_coreutils(code: i32) {
    // SAFETY: setting a signal's disposition to the default has no preconditions; no handler
    // of ours is replaced (nothing in chunkfs handles SIGPIPE).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    failed_output_is_an_error(code);
}

/// Any other failed write to stdout (a full disk: `chunkfs log F --json > /dev/full`) is an
/// error like any other: one line, and exit `code`. `println!` panics on it, which would print
/// "failed printing to stdout" and, under RUST_BACKTRACE=1, a backtrace; this hook says it as
/// an error instead and leaves every other panic (a bug) to the default hook. It ends the
/// process from whichever thread failed, which a serving daemon must not do: not for `mount`.
fn failed_output_is_an_error(code: i32) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(why) = message.strip_prefix("failed printing to stdout: ") {
            print_error("chunkfs", &anyhow::anyhow!("cannot write to stdout: {why}"));
            std::process::exit(code);
        }
        if message.starts_with("failed printing to stderr: ") {
            std::process::exit(code); // nowhere to say it
        }
        default(info)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("corrupt superblock: checksum mismatch")]
    struct Leaf;

    /// A wrapper that says its source in its message and returns it too.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Repeats(#[source] Leaf);

    #[test]
    fn each_cause_is_said_once() {
        let e = anyhow::Error::new(Repeats(Leaf)).context("cannot open store /srv/s");
        assert_eq!(
            error_line(&e),
            "cannot open store /srv/s: corrupt superblock: checksum mismatch"
        );
    }

    #[test]
    fn causes_that_add_something_are_kept_in_order() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let e = anyhow::Error::new(io)
            .context("cannot open /srv/s/meta.db")
            .context("cannot open store /srv/s");
        assert_eq!(
            error_line(&e),
            "cannot open store /srv/s: cannot open /srv/s/meta.db: Permission denied (os error 13)"
        );
    }

    #[test]
    fn sqlite_saying_its_message_again_with_the_error_code_is_left_out() {
        let damaged = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("database disk image is malformed".into()),
        );
        let e = anyhow::Error::new(damaged).context("cannot read the metadata of /srv/s");
        assert_eq!(e.chain().count(), 3, "rusqlite's error has a source");
        assert_eq!(
            error_line(&e),
            "cannot read the metadata of /srv/s: database disk image is malformed"
        );
    }

    #[test]
    fn an_error_code_with_a_message_not_yet_said_is_kept() {
        assert_eq!(
            sqlite_message("error code 11: the database disk image is malformed"),
            "database disk image is malformed"
        );
        assert_eq!(sqlite_message("error code x: what"), "error code x: what");
        assert!(!already_said(
            "cannot open",
            "Error code 14: Unable to open the database file"
        ));
    }
}
