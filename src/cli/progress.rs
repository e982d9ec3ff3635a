//! Progress bars on stderr: whether to show one, and where to draw it.
//!
//! A bar is shown when stderr is a terminal and the command prints no JSON; the environment
//! variable `CHUNKFS_PROGRESS=always` shows it anyway (on a pipe as one plain line per
//! change, for logs and tests), `CHUNKFS_PROGRESS=never` never.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// The environment variable that overrides when progress is shown.
pub const ENV: &str = "CHUNKFS_PROGRESS";

/// Whether a command printing JSON (`json`) or not shows progress.
pub fn wanted(json: bool) -> bool {
    match std::env::var(ENV).as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => !json && std::io::stderr().is_terminal(),
    }
}

/// A bar drawn to stderr if `show`, hidden otherwise.
pub fn bar(show: bool, pb: ProgressBar) -> ProgressBar {
    let target = if !show {
        ProgressDrawTarget::hidden()
    } else if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::term_like(Box::new(Lines::default()))
    };
    pb.set_draw_target(target);
    pb
}

/// A spinner with the time spent and a message; on a pipe the message alone, so that a line
/// is printed when it changes, not at every turn of the spinner.
pub fn spinner_style() -> ProgressStyle {
    let template = if std::io::stderr().is_terminal() {
        "{spinner} {elapsed} {msg}"
    } else {
        "{msg}"
    };
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Stderr when it is not a terminal: each frame as one plain line, without the cursor
/// movements that redraw a bar in place, and none twice in a row.
#[derive(Debug, Default)]
struct Lines {
    /// The frame being written, and the last one printed.
    state: Mutex<(String, String)>,
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)?;
        self.flush()
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.state.lock().unwrap().0.push_str(&s.replace('\r', ""));
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap();
        let line = std::mem::take(&mut st.0).trim_end().to_string();
        if !line.is_empty() && line != st.1 {
            // Progress is best effort: a closed stderr ends nothing.
            let _ = writeln!(std::io::stderr(), "{line}");
            st.1 = line;
        }
        Ok(())
    }
}
