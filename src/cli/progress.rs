//! Progress bars on stderr: whether to show one, and where to draw it.
//!
//! A bar is shown when stderr is a terminal and the command prints no JSON; the environment
//! variable `CHUNKFS_PROGRESS=always` shows it anyway (on a pipe as one plain line per
//! change, for logs and tests), `CHUNKFS_PROGRESS=never` never.
//!
//! A request to a mount blocks in the read of its conduit; [`Watcher`] shows its progress
//! meanwhile from the mount's `.chunkfs/progress` (docs/CONTROL.md, "Progress").

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
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

/// Shows the progress of one request from the daemon's progress file, polled by a second
/// thread while the first waits for the response.
pub struct Watcher {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Watcher {
    pub fn start(file: PathBuf, op: &str, pid: u32) -> Watcher {
        let pb = bar(true, indicatif::ProgressBar::new_spinner());
        pb.set_style(spinner_style());
        pb.set_message(op.to_string());
        pb.tick();
        let op = op.to_string();
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            loop {
                let last = !matches!(
                    stopped.recv_timeout(std::time::Duration::from_millis(100)),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                );
                // An older daemon has no progress file: the spinner shows the op alone.
                if let Some(e) = own_entry(&file, pid) {
                    show_entry(&pb, &op, &e);
                } else {
                    pb.tick();
                }
                if last {
                    break;
                }
            }
            pb.finish_and_clear();
        });
        Watcher { stop, thread }
    }

    /// Draw the final counts and take the bar away.
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// This process's request (opened by thread `pid`) in the progress file, if listed.
fn own_entry(file: &Path, pid: u32) -> Option<Value> {
    let text = std::fs::read(file).ok()?;
    let list: Vec<Value> = serde_json::from_slice(&text).ok()?;
    list.into_iter()
        .find(|e| e["pid"].as_u64() == Some(pid as u64))
}

/// One entry of the progress file (docs/CONTROL.md) as a bar when its total is known, as
/// a spinner with the count otherwise.
fn show_entry(pb: &indicatif::ProgressBar, op: &str, e: &Value) {
    let phase = e["phase"].as_str().unwrap_or("");
    let unit = e["unit"].as_str().unwrap_or("");
    let done = e["done"].as_u64().unwrap_or(0);
    let label = if phase.is_empty() {
        op.to_string()
    } else {
        format!("{op}: {phase}")
    };
    match e["total"].as_u64() {
        Some(total) => {
            // Rates and ETAs change at every poll: on a terminal only, not in a log.
            let tty = std::io::stderr().is_terminal();
            let counts = match (unit == "bytes", tty) {
                (true, true) => {
                    "{binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}"
                }
                (true, false) => "{binary_bytes}/{binary_total_bytes}",
                (false, true) => "{pos}/{len} ETA {eta}",
                (false, false) => "{pos}/{len}",
            };
            let template = format!("{{msg}} {{bar:30}} {counts}");
            pb.set_message(label);
            pb.set_style(
                indicatif::ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb.set_length(total);
            pb.set_position(done);
        }
        None => {
            pb.set_style(spinner_style());
            pb.set_message(match unit {
                "" => label,
                "bytes" => format!("{label}: {}", super::size::human(done)),
                _ => format!("{label}: {done} {unit}"),
            });
            pb.tick();
        }
    }
}
