//! `chunkfs config`: settings that can change after mkfs (`history-window`,
//! `snapshot-limit`, `repack-age`). A mounted store is asked through its conduit (ops `config-get` and
//! `config-set`; changing needs root, the mounting user or the admin group); an unmounted one
//! is read and written in its metadata database.

use super::control;
use super::stats::{Source, locate};
use crate::fs::open::META_FILE;
use crate::fs::settings;
use crate::meta;
use anyhow::{Context, Result, anyhow};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  chunkfs config get /srv/backup                      every setting
  chunkfs config set /srv/backup history-window 30d   keep a month of history
  chunkfs config set /srv/backup history-window 0     keep only the current state
                                                      (and snapshots and clone bases)
  chunkfs config set /mnt/backup snapshot-limit 10    each user but root: 10 snapshots
  chunkfs config set /srv/backup repack-age 1h        background GC repacks nothing younger";

/// Show or change store settings.
///
/// history-window: how long every past state stays readable (s, m, h, d or w; default 7d).
/// Older history is reclaimed by garbage collection unless a snapshot or clone needs it.
///
/// snapshot-limit: how many snapshots each user other than root may hold (default 64).
///
/// repack-age: background garbage collection repacks no superchunk younger than this (s, m,
/// h, d or w; default 10m), so data written moments ago is not copied while it may still
/// change; `chunkfs gc` repacks whatever is sparse, young or not.
///
/// TARGET is a store directory or a path inside a mounted chunkfs. On a mounted store only
/// root, the user who mounted it and the mount's admin group (-o chunkfs_admin_group=) may
/// change settings; the mount uses a change from its next GC pass.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// Print the settings as one JSON object: each key and its value as `config get` prints it.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print settings (all, or one).
    Get {
        /// A store directory, or a path inside a mounted chunkfs.
        target: PathBuf,
        /// The setting to print (history-window, snapshot-limit or repack-age); default: all.
        key: Option<String>,
    },
    /// Change a setting.
    Set {
        /// A store directory, or a path inside a mounted chunkfs.
        target: PathBuf,
        /// The setting: history-window, snapshot-limit or repack-age.
        key: String,
        /// Its new value: a duration (30d, 12h, 0) or, for snapshot-limit, a count.
        value: String,
    },
}

pub fn run(a: Args) -> Result<()> {
    let (target, key, value) = match &a.action {
        Action::Get { target, key } => (target, key.as_deref(), None),
        Action::Set { target, key, value } => (target, Some(key.as_str()), Some(value.as_str())),
    };
    if let Some(k) = key {
        match value {
            Some(v) => settings::parse(k, v).map(drop),
            None if settings::KEYS.contains(&k) => Ok(()),
            None => Err(settings::unknown(k)),
        }
        .map_err(|e| anyhow!(e))?;
    }
    let shown = match locate(target)? {
        Source::Mounted(m) => {
            let t = control::locate(&m.mountpoint)?;
            let request = match value {
                Some(v) => control::request("config-set", json!({"key": key, "value": v})),
                None => control::request("config-get", json!({"key": key})),
            };
            serde_json::from_value(control::call(&t, request)?)
                .context("the config response is malformed")?
        }
        Source::Store(store) => {
            let path = store.join(META_FILE);
            let conn = meta::open(&path, false)
                .with_context(|| format!("cannot open {}", path.display()))?;
            conn.busy_timeout(Duration::from_secs(10))?;
            if let (Some(k), Some(v)) = (key, value) {
                let stored = settings::parse(k, v).map_err(|e| anyhow!(e))?;
                meta::gc::config_set(&conn, k, &stored)
                    .with_context(|| format!("cannot change {k} in {}", store.display()))?;
            }
            settings::all(&conn, key)?
        }
    };
    let shown: Vec<(String, String)> = shown;
    if a.json {
        let object: serde_json::Map<String, serde_json::Value> =
            shown.into_iter().map(|(k, v)| (k, v.into())).collect();
        println!("{}", serde_json::to_string_pretty(&object)?);
        return Ok(());
    }
    for (k, v) in shown {
        println!("{k} = {v}");
    }
    Ok(())
}
