//! `chunkfs config`: settings that can change after mkfs (today: `history-window`).

use super::stats::resolve_store;
use crate::fs::open::META_FILE;
use crate::gc::{self, HISTORY_WINDOW};
use crate::meta;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  chunkfs config get /srv/backup                      every setting
  chunkfs config set /srv/backup history-window 30d   keep a month of history
  chunkfs config set /srv/backup history-window 0     keep only the current state
                                                      (and snapshots and clone bases)";

/// Show or change store settings.
///
/// history-window: how long every past state stays readable (s, m, h, d or w; default 7d).
/// Older history is reclaimed by garbage collection unless a snapshot or clone needs it.
/// Works on a mounted store too; the mount picks the change up at its next GC pass.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print settings (all, or one).
    Get {
        /// A store directory, or a path inside a mounted chunkfs.
        target: PathBuf,
        key: Option<String>,
    },
    /// Change a setting.
    Set {
        target: PathBuf,
        key: String,
        value: String,
    },
}

pub fn run(a: Args) -> Result<()> {
    let (target, key) = match &a.action {
        Action::Get { target, key } => (target, key.as_deref()),
        Action::Set { target, key, .. } => (target, Some(key.as_str())),
    };
    if let Some(k) = key
        && k != HISTORY_WINDOW
    {
        bail!("unknown setting {k:?}; the settings are: {HISTORY_WINDOW}");
    }
    let store = resolve_store(target)?;
    let path = store.join(META_FILE);
    let conn =
        meta::open(&path, false).with_context(|| format!("cannot open {}", path.display()))?;
    // A mounted store's daemon holds write transactions for a commit interval at most.
    conn.busy_timeout(Duration::from_secs(10))?;
    match a.action {
        Action::Get { key, .. } => {
            for (k, v) in meta::gc::config_all(&conn)? {
                if key.as_deref().is_none_or(|want| want == k) {
                    println!("{k} = {}", show(&k, &v));
                }
            }
        }
        Action::Set { key, value, .. } => {
            let secs = gc::parse_duration(&value).map_err(anyhow::Error::msg)?;
            meta::gc::config_set(&conn, &key, &secs.to_string())
                .with_context(|| format!("cannot change {key} in {}", store.display()))?;
            println!("{key} = {}", gc::format_duration(secs));
        }
    }
    Ok(())
}

fn show(key: &str, v: &str) -> String {
    match (key, v.parse::<u64>()) {
        (HISTORY_WINDOW, Ok(s)) => gc::format_duration(s),
        _ => v.to_string(),
    }
}
